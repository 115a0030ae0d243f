//! Fabric networks live in the hypervisor primitive: machines are created on them and
//! NICs added to them, reserved addresses are never handed out, concurrent NICs get
//! distinct addresses, and a network with NICs on it is not deleted. Also: the machines
//! a firewall rule lists are rendered as GetMachine renders them (firewall flag,
//! package, brand).

use std::collections::HashSet;

use serde_json::{Value, json};

use super::machine_networking::{SETTINGS, image_id, running, wait_state};
use super::{Signer, account_with_key, assert_error, site, status_json};

const VLANS: &str = "/my/fabrics/default/vlans";

/// A fabric network on a new VLAN: `10.N.0.0/24`, addresses `.10`–`.last`, gateway `.1`.
fn fabric(api: &Signer, vlan: u16, last: u8) -> Value {
    let (status, _, created) =
        status_json(api.post(VLANS, &json!({"name": format!("v{vlan}"), "vlan_id": vlan})));
    assert_eq!(status, 201, "{created}");
    let (status, _, network) = status_json(api.post(
        &format!("{VLANS}/{vlan}/networks"),
        &json!({
            "name": format!("net{vlan}"),
            "subnet": format!("10.{vlan}.0.0/24"),
            "provision_start_ip": format!("10.{vlan}.0.10"),
            "provision_end_ip": format!("10.{vlan}.0.{last}"),
            "gateway": format!("10.{vlan}.0.1"),
            "resolvers": ["8.8.8.8"],
        }),
    ));
    assert_eq!(status, 201, "{network}");
    network
}

fn add_nic(api: &Signer, machine: &str, network: &str) -> Value {
    let (status, _, nic) = status_json(api.post(
        &format!("/my/machines/{machine}/nics"),
        &json!({"network": network}),
    ));
    assert_eq!(status, 201, "{nic}");
    nic
}

fn reserve(api: &Signer, network: &str, ip: &str, reserved: bool) -> Value {
    let (status, _, body) = status_json(api.send(
        "PUT",
        &format!("/my/networks/{network}/ips/{ip}"),
        Some(&json!({ "reserved": reserved })),
    ));
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn machines_and_nics_on_fabric_networks_honour_reservations() {
    let server = site(SETTINGS);
    let api = account_with_key(&server, "alice");
    let image = image_id(&api);
    let network = fabric(&api, 7, 40);
    let net = network["id"].as_str().unwrap().to_string();

    // The network is one network to the account, not a fabric twin plus a site one.
    let (_, _, all) = status_json(api.get("/my/networks"));
    let same: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["id"] == net.as_str())
        .collect();
    assert_eq!(same.len(), 1, "{all}");
    assert_eq!(same[0]["fabric"], true);

    // A reserved address is never a new machine's or a new NIC's.
    let body = reserve(&api, &net, "10.7.0.10", true);
    assert_eq!(body["reserved"], true);
    let id = running(
        &api,
        json!({"name": "on-fabric", "image": image, "networks": [net]}),
    );
    let machine = wait_state(&api, &id, "running");
    assert_eq!(machine["ips"], json!(["10.7.0.11"]), "{machine}");
    assert_eq!(machine["nics"][0]["netmask"], "255.255.255.0");
    assert_eq!(machine["nics"][0]["gateway"], "10.7.0.1");
    let other = running(&api, json!({"name": "public-one", "image": image}));
    let nic = add_nic(&api, &other, &net);
    assert_eq!(
        (nic["ip"].as_str(), nic["primary"].as_bool()),
        (Some("10.7.0.12"), Some(false))
    );
    assert_eq!(nic["gateway"], "10.7.0.1");
    assert_eq!(nic["resolvers"], json!(["8.8.8.8"]));
    let (_, _, ip) = status_json(api.get(&format!("/my/networks/{net}/ips/10.7.0.12")));
    assert_eq!(ip["belongs_to_uuid"].as_str(), Some(other.as_str()), "{ip}");

    // Concurrent NIC adds on two machines: every address distinct, none reserved.
    let ips: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..6)
            .map(|i| {
                let (api, net) = (&api, &net);
                let machine = if i % 2 == 0 { &id } else { &other };
                scope.spawn(move || {
                    add_nic(api, machine, net)["ip"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let distinct: HashSet<&String> = ips.iter().collect();
    assert_eq!(distinct.len(), 6, "{ips:?}");
    assert!(!distinct.contains(&"10.7.0.10".to_string()), "{ips:?}");
    assert!(!distinct.contains(&"10.7.0.11".to_string()), "{ips:?}");

    // Freed again, the reserved address is the next one handed out.
    reserve(&api, &net, "10.7.0.10", false);
    assert_eq!(add_nic(&api, &other, &net)["ip"], "10.7.0.10");

    // A changed provision range is where the next NIC's address comes from.
    let (status, _, updated) = status_json(api.send(
        "PUT",
        &format!("{VLANS}/7/networks/{net}"),
        Some(&json!({"provision_start_ip": "10.7.0.100", "provision_end_ip": "10.7.0.120"})),
    ));
    assert_eq!(status, 202, "{updated}");
    assert_eq!(add_nic(&api, &other, &net)["ip"], "10.7.0.100");

    // A chosen address (`ipv4_ips`), at AddNic and at CreateMachine.
    let nics = format!("/my/machines/{other}/nics");
    let at = |ips: Value| json!({"network": {"ipv4_uuid": net, "ipv4_ips": ips}});
    let (status, _, chosen) = status_json(api.post(&nics, &at(json!(["10.7.0.30"]))));
    assert_eq!(
        (status, &chosen["ip"]),
        (201, &json!("10.7.0.30")),
        "{chosen}"
    );
    let placed = running(
        &api,
        json!({"name": "placed", "image": image,
               "networks": [{"ipv4_uuid": net, "ipv4_ips": ["10.7.0.31"]}]}),
    );
    assert_eq!(
        wait_state(&api, &placed, "running")["ips"],
        json!(["10.7.0.31"])
    );
    let (_, _, ip) = status_json(api.get(&format!("/my/networks/{net}/ips/10.7.0.31")));
    assert_eq!(
        ip["belongs_to_uuid"].as_str(),
        Some(placed.as_str()),
        "{ip}"
    );
    let public = status_json(api.get("/my/networks"))
        .2
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["public"] == true)
        .unwrap()["id"]
        .clone();
    for bad in [
        at(json!(["10.7.0.30"])),              // another NIC's
        at(json!(["10.8.0.3"])),               // off the subnet
        at(json!(["10.7.0.1"])),               // the gateway
        at(json!(["10.7.0.32", "10.7.0.33"])), // more than one
        at(json!("10.7.0.32")),                // not an array
        json!({"network": {"ipv4_uuid": public, "ipv4_ips": ["10.88.0.50"]}}),
    ] {
        assert_error(api.post(&nics, &bad), 409, "InvalidArgument");
    }
    assert_error(
        api.post(
            "/my/machines",
            &json!({"name": "clash", "image": image,
                    "networks": [{"ipv4_uuid": net, "ipv4_ips": ["10.7.0.31"]}]}),
        ),
        409,
        "InvalidArgument",
    );

    // Bad input and other accounts.
    assert_error(
        api.send(
            "PUT",
            &format!("/my/networks/{net}/ips/10.7.0.1"),
            Some(&json!({"reserved": true})),
        ),
        409,
        "InvalidArgument",
    );
    let bob = account_with_key(&server, "bob");
    let bob_machine = running(&bob, json!({"name": "bobs", "image": image}));
    assert_error(
        bob.post(
            &format!("/bob/machines/{bob_machine}/nics"),
            &json!({ "network": net }),
        ),
        409,
        "InvalidArgument",
    );
    let refused = bob.post(
        "/bob/machines",
        &json!({"name": "sneaky", "image": image, "networks": [net]}),
    );
    assert_eq!(refused.status(), 409);
    assert_error(
        bob.post(
            &format!("/bob/machines/{id}/nics"),
            &json!({ "network": net }),
        ),
        404,
        "ResourceNotFound",
    );

    // A full range: the hypervisor has no address left.
    let small = fabric(&api, 8, 10);
    let small_id = small["id"].as_str().unwrap();
    add_nic(&api, &other, small_id);
    let full = api.post(
        &format!("/my/machines/{id}/nics"),
        &json!({ "network": small_id }),
    );
    assert_eq!(full.status(), 503, "{}", full.text().unwrap_or_default());

    // A NIC's state follows its machine's.
    let stopped = api.post(&format!("/my/machines/{id}?action=stop"), &json!({}));
    assert!(stopped.status().is_success());
    wait_state(&api, &id, "stopped");
    let (_, _, nics) = status_json(api.get(&format!("/my/machines/{id}/nics")));
    let states: Vec<&str> = nics
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert!(states.iter().all(|s| *s == "stopped"), "{nics}");
    let (_, _, nics) = status_json(api.get(&format!("/my/machines/{other}/nics")));
    assert_eq!(nics[0]["state"], "running", "{nics}");

    // In use while a machine has a NIC on it; deleted once none has.
    assert_error(
        api.send("DELETE", &format!("{VLANS}/7/networks/{net}"), None),
        409,
        "InUseError",
    );
    for machine in [&id, &other, &placed] {
        assert!(
            api.send("DELETE", &format!("/my/machines/{machine}"), None)
                .status()
                .is_success()
        );
        wait_state(&api, machine, "deleted");
    }
    assert_eq!(
        api.send("DELETE", &format!("{VLANS}/7/networks/{net}"), None)
            .status(),
        204
    );
    assert_error(
        api.get(&format!("/my/networks/{net}")),
        404,
        "ResourceNotFound",
    );
    let gone = api.post(
        "/my/machines",
        &json!({"name": "late", "image": image, "networks": [net]}),
    );
    assert_eq!(gone.status(), 409);
    // The name is free again, for a network the primitive makes afresh.
    let (status, _, again) = status_json(api.post(
        &format!("{VLANS}/7/networks"),
        &json!({"name": "net7", "subnet": "10.7.0.0/24",
                "provision_start_ip": "10.7.0.10", "provision_end_ip": "10.7.0.40"}),
    ));
    assert_eq!(status, 201, "{again}");
    assert_ne!(again["id"], net.as_str());
}

#[test]
fn rule_machines_show_the_firewall_as_get_machine_does() {
    let server = site(SETTINGS);
    let api = account_with_key(&server, "alice");
    let image = image_id(&api);
    let id = running(&api, json!({"name": "guarded", "image": image}));
    let (status, _, rule) = status_json(api.post(
        "/my/fwrules",
        &json!({"rule": "FROM any TO all vms ALLOW tcp PORT 22", "enabled": true}),
    ));
    assert_eq!(status, 201, "{rule}");
    let rule = rule["id"].as_str().unwrap().to_string();
    let listed = |api: &Signer| -> Value {
        let (status, _, list) = status_json(api.get(&format!("/my/fwrules/{rule}/machines")));
        assert_eq!(status, 200, "{list}");
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
        list[0].clone()
    };
    let before = listed(&api);
    let (_, _, machine) = status_json(api.get(&format!("/my/machines/{id}")));
    assert_eq!(before["firewall_enabled"], false);
    for field in ["brand", "type", "package", "firewall_enabled", "primaryIp"] {
        assert_eq!(
            before[field], machine[field],
            "{field}: {before} vs {machine}"
        );
    }
    assert_eq!(before["package"], "small");

    let enabled = api.post(
        &format!("/my/machines/{id}?action=enable_firewall"),
        &json!({}),
    );
    assert_eq!(enabled.status(), 202);
    assert_eq!(listed(&api)["firewall_enabled"], true);
    let disabled = api.post(
        &format!("/my/machines/{id}?action=disable_firewall"),
        &json!({}),
    );
    assert_eq!(disabled.status(), 202);
    assert_eq!(listed(&api)["firewall_enabled"], false);

    assert_error(
        api.post(
            "/my/machines/00000000-0000-4000-8000-000000000000?action=enable_firewall",
            &json!({}),
        ),
        404,
        "ResourceNotFound",
    );
    assert_error(
        api.get("/my/fwrules/00000000-0000-4000-8000-000000000000/machines"),
        404,
        "ResourceNotFound",
    );
    let bob = account_with_key(&server, "bob");
    assert_error(
        bob.get(&format!("/bob/fwrules/{rule}/machines")),
        404,
        "ResourceNotFound",
    );
}
