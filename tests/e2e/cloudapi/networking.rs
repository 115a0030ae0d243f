//! CloudAPI part 3 over real HTTP: networks and their addresses, fabric VLANs and
//! networks, firewall rules, volumes and their state machine.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Signer, account_with_key, assert_error, site, status_json};
use crate::harness::client;

fn id_of(list: &Value, name: &str) -> String {
    list.as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn put(api: &Signer, path: &str, body: &Value) -> reqwest::blocking::Response {
    api.send("PUT", path, Some(body))
}

fn delete(api: &Signer, path: &str) -> reqwest::blocking::Response {
    api.send("DELETE", path, None)
}

#[test]
fn networks_and_their_addresses() {
    let server = site("");
    let api = account_with_key(&server, "alice");

    let (status, _, list) = status_json(api.get("/my/networks"));
    assert_eq!(status, 200, "{list}");
    let public = id_of(&list, "public");
    let private = id_of(&list, "private");
    let shown = list
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == public.as_str())
        .unwrap();
    assert_eq!(
        (shown["public"].as_bool(), shown["fabric"].as_bool()),
        (Some(true), Some(false))
    );

    let (status, _, one) = status_json(api.get(&format!("/my/networks/{private}")));
    assert_eq!((status, one["name"].as_str()), (200, Some("private")));
    assert_error(
        api.get("/my/networks/00000000-0000-4000-8000-000000000000"),
        404,
        "ResourceNotFound",
    );
    let unsigned = client()
        .get(format!("{}/alice/networks", server.base))
        .send()
        .unwrap();
    assert_eq!(unsigned.status(), 401);

    // The managed addresses of a private network: gateway, network and broadcast.
    let (status, headers, ips) = status_json(api.get(&format!("/my/networks/{private}/ips")));
    assert_eq!(status, 200, "{ips}");
    let managed: Vec<&str> = ips
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["managed"] == true)
        .map(|i| i["ip"].as_str().unwrap())
        .collect();
    assert_eq!(
        managed,
        vec!["192.168.128.0", "192.168.128.1", "192.168.131.255"]
    );
    assert_eq!(headers["x-resource-count"], "3");
    let (_, _, paged) =
        status_json(api.get(&format!("/my/networks/{private}/ips?offset=1&limit=1")));
    assert_eq!(paged.as_array().unwrap().len(), 1);

    let ip_path = format!("/my/networks/{private}/ips/192.168.128.50");
    let (status, _, free) = status_json(api.get(&ip_path));
    assert_eq!(status, 200);
    assert_eq!(
        free,
        json!({"ip": "192.168.128.50", "reserved": false, "managed": false})
    );
    assert_error(
        api.get(&format!("/my/networks/{private}/ips/10.0.0.1")),
        404,
        "ResourceNotFound",
    );
    assert_error(
        api.get(&format!("/my/networks/{private}/ips/not-an-ip")),
        404,
        "ResourceNotFound",
    );

    let (status, _, reserved) = status_json(put(&api, &ip_path, &json!({"reserved": true})));
    assert_eq!(
        (status, reserved["reserved"].as_bool()),
        (200, Some(true)),
        "{reserved}"
    );
    let (_, _, ips) = status_json(api.get(&format!("/my/networks/{private}/ips")));
    assert!(
        ips.as_array()
            .unwrap()
            .iter()
            .any(|i| i["ip"] == "192.168.128.50" && i["reserved"] == true)
    );
    let (_, _, freed) = status_json(put(&api, &ip_path, &json!({"reserved": false})));
    assert_eq!(freed["reserved"], false);
    assert_error(put(&api, &ip_path, &json!({})), 409, "MissingParameter");
    assert_error(
        put(&api, &ip_path, &json!({"reserved": "maybe"})),
        409,
        "InvalidArgument",
    );
    assert_error(
        put(
            &api,
            &format!("/my/networks/{private}/ips/192.168.128.1"),
            &json!({"reserved": false}),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(
        put(
            &api,
            &format!("/my/networks/{public}/ips/10.88.0.9"),
            &json!({"reserved": true}),
        ),
        409,
        "InvalidArgument",
    );

    // Many clients reserving the same few addresses at once: each is held once.
    let addresses: Vec<String> = (60..68).map(|n| format!("192.168.128.{n}")).collect();
    std::thread::scope(|scope| {
        for round in 0..3 {
            for ip in &addresses {
                let (api, private) = (&api, &private);
                scope.spawn(move || {
                    let path = format!("/my/networks/{private}/ips/{ip}");
                    let (status, _, body) =
                        status_json(put(api, &path, &json!({"reserved": true})));
                    assert!(
                        status == 200 || (status == 409 && body["code"] == "InUseError"),
                        "{round}: {status} {body}"
                    );
                });
            }
        }
    });
    let (_, _, ips) = status_json(api.get(&format!("/my/networks/{private}/ips")));
    let listed: Vec<&str> = ips
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ip"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(
        listed.len(),
        unique.len(),
        "an address listed twice: {listed:?}"
    );
    for ip in &addresses {
        assert!(
            ips.as_array()
                .unwrap()
                .iter()
                .any(|i| i["ip"] == ip.as_str() && i["reserved"] == true),
            "{ip}"
        );
    }

    // Another account sees the shared network's reservations but cannot change them away
    // from the network's rules, and never sees alice's fabric.
    let bob = account_with_key(&server, "bob");
    let (_, _, seen) = status_json(bob.get(&format!("/bob/networks/{private}/ips/192.168.128.60")));
    assert_eq!(seen["reserved"], true);
}

#[test]
fn fabric_vlans_and_networks() {
    let server = site("");
    let api = account_with_key(&server, "alice");
    let vlans = "/my/fabrics/default/vlans";

    let (status, headers, vlan) = status_json(api.post(
        vlans,
        &json!({"name": "web", "vlan_id": 100, "description": "front"}),
    ));
    assert_eq!(status, 201, "{vlan}");
    assert_eq!(
        vlan,
        json!({"name": "web", "vlan_id": 100, "description": "front"})
    );
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .ends_with("/fabrics/default/vlans/100")
    );
    assert_error(
        api.post(vlans, &json!({"name": "again", "vlan_id": 100})),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post(vlans, &json!({"name": "web", "vlan_id": 101})),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post(vlans, &json!({"name": "big", "vlan_id": 4096})),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post(vlans, &json!({"vlan_id": 7})),
        409,
        "MissingParameter",
    );
    assert_error(
        api.post(vlans, &json!({"name": "x"})),
        409,
        "MissingParameter",
    );
    let (_, _, list) = status_json(api.get(vlans));
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, _, got) = status_json(api.get(&format!("{vlans}/100")));
    assert_eq!((status, got["name"].as_str()), (200, Some("web")));
    assert_error(api.get(&format!("{vlans}/101")), 404, "ResourceNotFound");
    assert_error(api.get(&format!("{vlans}/nope")), 404, "ResourceNotFound");
    let (status, _, updated) = status_json(put(
        &api,
        &format!("{vlans}/100"),
        &json!({"description": "new"}),
    ));
    assert_eq!(
        (status, updated["description"].as_str()),
        (202, Some("new"))
    );

    let nets = format!("{vlans}/100/networks");
    let example = json!({
        "name": "newnet",
        "provision_end_ip": "10.50.1.20",
        "provision_start_ip": "10.50.1.5",
        "gateway": "10.50.1.1",
        "resolvers": ["8.8.8.8", "8.8.4.4"],
        "routes": {"10.25.1.0/21": "10.50.1.2", "10.27.1.0/21": "10.50.1.3"},
        "subnet": "10.50.1.0/24"
    });
    let (status, _, net) = status_json(api.post(&nets, &example));
    assert_eq!(status, 201, "{net}");
    for field in [
        "name",
        "provision_end_ip",
        "provision_start_ip",
        "gateway",
        "resolvers",
        "routes",
        "subnet",
    ] {
        assert_eq!(net[field], example[field], "{field}");
    }
    assert_eq!(
        (
            net["fabric"].as_bool(),
            net["public"].as_bool(),
            net["internet_nat"].as_bool(),
            net["vlan_id"].as_u64()
        ),
        (Some(true), Some(false), Some(true), Some(100))
    );
    let id = net["id"].as_str().unwrap().to_string();

    for (bad, why) in [
        (json!({"subnet": "10.60.1.0/33"}), "prefix"),
        (json!({"subnet": "10.60.1.7/24"}), "host bits"),
        (
            json!({"subnet": "8.8.8.0/24", "provision_start_ip": "8.8.8.5", "provision_end_ip": "8.8.8.9"}),
            "public",
        ),
        (json!({"provision_start_ip": "10.60.2.5"}), "start outside"),
        (
            json!({"provision_start_ip": "10.60.1.30"}),
            "start after end",
        ),
        (json!({"gateway": "10.60.9.1"}), "gateway outside"),
        (json!({"resolvers": ["dns"]}), "resolver"),
        (json!({"routes": {"nowhere": "10.60.1.1"}}), "route"),
        (
            json!({"subnet": "10.50.0.0/16", "provision_start_ip": "10.50.2.5", "provision_end_ip": "10.50.2.9"}),
            "overlap",
        ),
        (
            json!({"name": "newnet", "subnet": "10.70.1.0/24", "provision_start_ip": "10.70.1.5", "provision_end_ip": "10.70.1.9"}),
            "name in use",
        ),
    ] {
        let mut body = json!({"name": "other", "subnet": "10.60.1.0/24", "provision_start_ip": "10.60.1.5", "provision_end_ip": "10.60.1.20"});
        for (k, v) in bad.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, _, err) = status_json(api.post(&nets, &body));
        assert_eq!(
            (status, err["code"].as_str()),
            (409, Some("InvalidArgument")),
            "{why}: {err}"
        );
    }
    assert_error(
        api.post(&nets, &json!({"name": "x", "subnet": "10.60.1.0/24"})),
        409,
        "MissingParameter",
    );
    assert_error(
        api.post(&format!("{vlans}/555/networks"), &example),
        404,
        "ResourceNotFound",
    );

    let (_, _, on_vlan) = status_json(api.get(&nets));
    assert_eq!(on_vlan.as_array().unwrap().len(), 1);
    let (_, _, all) = status_json(api.get("/my/networks"));
    assert_eq!(id_of(&all, "newnet"), id);
    let (status, _, via_networks) = status_json(api.get(&format!("/my/networks/{id}")));
    assert_eq!(
        (status, via_networks["fabric"].as_bool()),
        (200, Some(true))
    );
    let (status, _, got) = status_json(api.get(&format!("{nets}/{id}")));
    assert_eq!((status, got["id"].as_str()), (200, Some(id.as_str())));
    assert_error(
        api.get(&format!(
            "{vlans}/100/networks/00000000-0000-4000-8000-000000000000"
        )),
        404,
        "ResourceNotFound",
    );

    let (status, _, updated) = status_json(put(
        &api,
        &format!("{nets}/{id}"),
        &json!({"name": "updatenet", "description": "d", "resolvers": ["8.8.4.4"], "provision_end_ip": "10.50.1.30"}),
    ));
    assert_eq!(status, 202, "{updated}");
    assert_eq!(
        (
            updated["name"].as_str(),
            updated["resolvers"].clone(),
            updated["provision_end_ip"].as_str()
        ),
        (Some("updatenet"), json!(["8.8.4.4"]), Some("10.50.1.30"))
    );
    assert_error(
        put(
            &api,
            &format!("{nets}/{id}"),
            &json!({"subnet": "10.51.0.0/24"}),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(
        put(
            &api,
            &format!("{nets}/{id}"),
            &json!({"provision_end_ip": "10.50.2.1"}),
        ),
        409,
        "InvalidArgument",
    );

    // The fabric is the account's own.
    let bob = account_with_key(&server, "bob");
    assert_error(
        bob.get(&format!("/bob/networks/{id}")),
        404,
        "ResourceNotFound",
    );
    assert_error(
        bob.get("/bob/fabrics/default/vlans/100"),
        404,
        "ResourceNotFound",
    );
    assert_error(
        bob.get(&format!("/alice/fabrics/default/vlans/100/networks/{id}")),
        403,
        "NotAuthorized",
    );

    assert_error(delete(&api, &format!("{vlans}/100")), 409, "InUseError");
    assert_eq!(delete(&api, &format!("{nets}/{id}")).status(), 204);
    assert_error(api.get(&format!("{nets}/{id}")), 404, "ResourceNotFound");
    assert_eq!(delete(&api, &format!("{vlans}/100")).status(), 204);
    assert_error(
        delete(&api, &format!("{vlans}/100")),
        404,
        "ResourceNotFound",
    );
}

const SPEC_RULES: [&str; 5] = [
    "FROM any TO vm 0abeae82-c040-4080-ac60-b60d3e3890a7 ALLOW tcp port 80",
    "FROM vm 0abeae82-c040-4080-ac60-b60d3e3890a7 TO subnet 10.99.99.0/24 BLOCK tcp port 25",
    "FROM ip 10.99.99.7 TO (tag www OR tag testwww) ALLOW tcp (port 80 AND port 443)",
    "FROM tag group=www TO tag group=mon ALLOW udp port 514",
    "FROM all vms TO any ALLOW tcp PORT 22 PRIORITY 1",
];

#[test]
fn firewall_rules() {
    let server = site("");
    let api = account_with_key(&server, "alice");
    let mut ids = Vec::new();
    for (n, rule) in SPEC_RULES.iter().enumerate() {
        let (status, headers, created) = status_json(api.post(
            "/my/fwrules",
            &json!({"rule": rule, "enabled": n % 2 == 0, "description": format!("rule {n}")}),
        ));
        assert_eq!(status, 201, "{rule}: {created}");
        assert_eq!(created["enabled"].as_bool(), Some(n % 2 == 0));
        assert_eq!(created["global"], false);
        assert!(headers["location"].to_str().unwrap().contains("/fwrules/"));
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    let (_, _, first) = status_json(api.get(&format!("/my/fwrules/{}", ids[0])));
    assert_eq!(
        first["rule"],
        "FROM any TO vm 0abeae82-c040-4080-ac60-b60d3e3890a7 ALLOW tcp PORT 80"
    );
    let (_, _, third) = status_json(api.get(&format!("/my/fwrules/{}", ids[2])));
    assert_eq!(
        third["rule"],
        "FROM ip 10.99.99.7 TO (tag \"www\" OR tag \"testwww\") ALLOW tcp (PORT 80 AND PORT 443)"
    );
    let (_, _, list) = status_json(api.get("/my/fwrules"));
    assert_eq!(list.as_array().unwrap().len(), SPEC_RULES.len());

    let err = assert_error(
        api.post(
            "/my/fwrules",
            &json!({"rule": "FROM any TO all vms ALLOW tcp PORT 99999"}),
        ),
        409,
        "InvalidArgument",
    );
    assert!(
        err["message"].as_str().unwrap().contains("character 36"),
        "{err}"
    );
    assert_error(
        api.post(
            "/my/fwrules",
            &json!({"rule": "FROM any TO any ALLOW tcp PORT 80"}),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post("/my/fwrules", &json!({"enabled": true})),
        409,
        "MissingParameter",
    );

    let path = format!("/my/fwrules/{}", ids[1]);
    let (status, _, enabled) = status_json(api.post(&format!("{path}/enable"), &json!({})));
    assert_eq!((status, enabled["enabled"].as_bool()), (200, Some(true)));
    let (_, _, disabled) = status_json(api.post(&format!("{path}/disable"), &json!({})));
    assert_eq!(disabled["enabled"], false);
    let (status, _, updated) = status_json(api.post(&path, &json!({"rule": "FROM vm 0abeae82-c040-4080-ac60-b60d3e3890a7 TO subnet 10.99.99.0/24 BLOCK tcp (PORT 25 AND PORT 80)"})));
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["rule"],
        "FROM vm 0abeae82-c040-4080-ac60-b60d3e3890a7 TO subnet 10.99.99.0/24 BLOCK tcp (PORT 25 AND PORT 80)"
    );
    assert_eq!(updated["description"], "rule 1");
    assert_error(
        api.post(&path, &json!({"rule": "FROM nowhere"})),
        409,
        "InvalidArgument",
    );
    assert_error(api.post(&path, &json!({})), 409, "MissingParameter");

    // No machines yet: the rule applies to none; an unknown machine has no rules.
    let (status, headers, machines) = status_json(api.get(&format!("{path}/machines")));
    assert_eq!((status, machines), (200, json!([])));
    assert_eq!(headers["x-resource-count"], "0");
    assert_error(
        api.get("/my/machines/0abeae82-c040-4080-ac60-b60d3e3890a7/fwrules"),
        404,
        "ResourceNotFound",
    );

    let bob = account_with_key(&server, "bob");
    assert_error(
        bob.get(&format!("/bob/fwrules/{}", ids[0])),
        404,
        "ResourceNotFound",
    );
    assert_eq!(delete(&api, &path).status(), 204);
    assert_error(api.get(&path), 404, "ResourceNotFound");
    assert_error(delete(&api, &path), 404, "ResourceNotFound");
    assert_error(
        api.post(&format!("{path}/enable"), &json!({})),
        404,
        "ResourceNotFound",
    );
}

/// Polls the volume until `done` holds for its answer (status, body).
fn wait_volume(api: &Signer, id: &str, done: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    let started = Instant::now();
    loop {
        let (status, _, body) = status_json(api.get(&format!("/my/volumes/{id}")));
        if done(status, &body) {
            return (status, body);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "volume {id} stuck: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn fabric_network(
    api: &Signer,
    vlan: u16,
    name: &str,
    subnet: &str,
    start: &str,
    end: &str,
) -> String {
    let vlans = "/my/fabrics/default/vlans";
    let _ = api.post(
        vlans,
        &json!({"name": format!("vlan{vlan}"), "vlan_id": vlan}),
    );
    let (status, _, net) = status_json(api.post(&format!("{vlans}/{vlan}/networks"), &json!({"name": name, "subnet": subnet, "provision_start_ip": start, "provision_end_ip": end})));
    assert_eq!(status, 201, "{net}");
    net["id"].as_str().unwrap().to_string()
}

#[test]
fn volumes_and_their_state_machine() {
    let server = site("");
    let api = account_with_key(&server, "alice");

    let (status, _, sizes) = status_json(api.get("/my/volumesizes"));
    assert_eq!(status, 200);
    assert_eq!(sizes[0], json!({"size": 10240, "type": "tritonnfs"}));
    assert_eq!(sizes.as_array().unwrap().len(), 19);
    assert_error(api.get("/my/volumesizes?type=ebs"), 409, "InvalidArgument");
    assert_error(
        api.get("/my/volumesizes?colour=red"),
        409,
        "InvalidArgument",
    );

    assert_error(
        api.post("/my/volumes", &json!({"name": "data"})),
        409,
        "InvalidArgument",
    );
    let net = fabric_network(
        &api,
        10,
        "storage",
        "10.10.0.0/24",
        "10.10.0.10",
        "10.10.0.200",
    );

    let (status, headers, created) = status_json(api.post(
        "/my/volumes",
        &json!({"name": "data", "size": 20480, "tags": {"role": "db"}}),
    ));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "creating");
    assert_eq!(
        (
            created["type"].as_str(),
            created["size"].as_u64(),
            created["networks"].clone()
        ),
        (Some("tritonnfs"), Some(20480), json!([net]))
    );
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .ends_with(created["id"].as_str().unwrap())
    );
    let id = created["id"].as_str().unwrap().to_string();
    let (_, ready) = wait_volume(&api, &id, |_, v| v["state"] != "creating");
    assert_eq!(ready["state"], "ready", "{ready}");
    assert_eq!(ready["filesystem_path"], "10.10.0.10:/exports/data");
    assert_eq!(ready["refs"], json!([]));
    assert_eq!(ready["tags"], json!({"role": "db"}));
    // Its address shows on the network as held by the volume.
    let (_, _, ip) = status_json(api.get(&format!("/my/networks/{net}/ips/10.10.0.10")));
    assert_eq!(
        (ip["reserved"].as_bool(), ip["belongs_to_uuid"].as_str()),
        (Some(true), Some(id.as_str())),
        "{ip}"
    );

    assert_error(
        api.post("/my/volumes", &json!({"name": "data"})),
        409,
        "VolumeAlreadyExists",
    );
    assert_error(
        api.post("/my/volumes", &json!({"name": "xx", "size": 12345})),
        409,
        "VolumeSizeNotAvailable",
    );
    assert_error(
        api.post("/my/volumes", &json!({"name": "-bad"})),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post("/my/volumes", &json!({"name": "a".repeat(257)})),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post("/my/volumes", &json!({"name": "ebs", "type": "ebs"})),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post(
            "/my/volumes",
            &json!({"name": "yy", "networks": ["00000000-0000-4000-8000-000000000000"]}),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.get("/my/volumes/00000000-0000-4000-8000-000000000000"),
        404,
        "VolumeNotFound",
    );

    // Many volumes at once on one network: each gets its own address.
    let created: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|n| {
                let api = &api;
                scope.spawn(move || {
                    let (status, _, v) =
                        status_json(api.post("/my/volumes", &json!({"name": format!("par{n}")})));
                    assert_eq!(status, 201, "{v}");
                    v["id"].as_str().unwrap().to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut paths = BTreeSet::new();
    for id in &created {
        let (_, v) = wait_volume(&api, id, |_, v| v["state"] != "creating");
        assert_eq!(v["state"], "ready", "{v}");
        assert!(
            paths.insert(v["filesystem_path"].as_str().unwrap().to_string()),
            "address given twice: {v}"
        );
    }

    // A network with one free address: the second volume on it fails.
    let tiny = fabric_network(&api, 11, "tiny", "10.11.0.0/24", "10.11.0.10", "10.11.0.10");
    let (_, _, one) =
        status_json(api.post("/my/volumes", &json!({"name": "one", "networks": [tiny]})));
    let (_, one) = wait_volume(&api, one["id"].as_str().unwrap(), |_, v| {
        v["state"] != "creating"
    });
    assert_eq!(one["state"], "ready");
    let (_, _, two) =
        status_json(api.post("/my/volumes", &json!({"name": "two", "networks": [tiny]})));
    let two_id = two["id"].as_str().unwrap().to_string();
    let (_, two) = wait_volume(&api, &two_id, |_, v| v["state"] != "creating");
    assert_eq!(two["state"], "failed", "{two}");

    // Listing: failed volumes only when asked for; the predicate triton sends.
    let names = |body: &Value| -> BTreeSet<String> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, _, all) = status_json(api.get("/my/volumes"));
    assert_eq!(status, 200);
    assert_eq!(all.as_array().unwrap().len(), 8);
    assert!(!names(&all).contains("two"));
    let (_, _, failed) = status_json(api.get("/my/volumes?state=failed"));
    assert_eq!(names(&failed), BTreeSet::from(["two".to_string()]));
    let predicate = |p: &str| format!("/my/volumes?predicate={}", percent(p));
    let (status, _, not_failed) = status_json(api.get(&predicate(r#"{"ne":["state","failed"]}"#)));
    assert_eq!(
        (status, not_failed.as_array().unwrap().len()),
        (200, 8),
        "{not_failed}"
    );
    let (_, _, either) = status_json(api.get(&predicate(
        r#"{"or":[{"eq":["name","data"]},{"eq":["name","two"]}]}"#,
    )));
    assert_eq!(
        names(&either),
        BTreeSet::from(["data".to_string(), "two".to_string()])
    );
    let (_, _, big) = status_json(api.get(&predicate(r#"{"gt":["size",10240]}"#)));
    assert_eq!(names(&big), BTreeSet::from(["data".to_string()]));
    let (_, _, wild) = status_json(api.get("/my/volumes?name=par*"));
    assert_eq!(wild.as_array().unwrap().len(), 6);
    let (_, _, sized) = status_json(api.get("/my/volumes?size=20480"));
    assert_eq!(names(&sized), BTreeSet::from(["data".to_string()]));
    assert_error(
        api.get(&format!(
            "{}&state=ready",
            predicate(r#"{"eq":["state","ready"]}"#)
        )),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.get(&predicate(r#"{"eq":["owner","x"]}"#)),
        409,
        "InvalidArgument",
    );
    assert_error(api.get(&predicate("not json")), 409, "InvalidArgument");
    assert_error(api.get("/my/volumes?state=melted"), 409, "InvalidArgument");

    // Update: only the name.
    assert_eq!(
        api.post(&format!("/my/volumes/{id}"), &json!({"name": "data2"}))
            .status(),
        204
    );
    let (_, _, renamed) = status_json(api.get(&format!("/my/volumes/{id}")));
    assert_eq!(renamed["name"], "data2");
    assert_error(
        api.post(&format!("/my/volumes/{id}"), &json!({"size": 30720})),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post(&format!("/my/volumes/{id}"), &json!({"name": "par0"})),
        409,
        "VolumeAlreadyExists",
    );

    // A network with volumes on it stays.
    assert_error(
        delete(
            &api,
            &format!("/my/fabrics/default/vlans/10/networks/{net}"),
        ),
        409,
        "InUseError",
    );

    // Delete: deleting, then gone, its address back.
    assert_eq!(delete(&api, &format!("/my/volumes/{id}")).status(), 204);
    let (status, _) = wait_volume(&api, &id, |status, _| status == 404);
    assert_eq!(status, 404);
    let (_, _, ip) = status_json(api.get(&format!("/my/networks/{net}/ips/10.10.0.10")));
    assert_eq!(ip["reserved"], false, "{ip}");
    assert_eq!(delete(&api, &format!("/my/volumes/{two_id}")).status(), 204);
    wait_volume(&api, &two_id, |status, _| status == 404);
    assert_error(
        delete(&api, &format!("/my/volumes/{id}")),
        404,
        "VolumeNotFound",
    );

    let bob = account_with_key(&server, "bob");
    let (_, _, theirs) = status_json(bob.get("/bob/volumes"));
    assert_eq!(theirs, json!([]));
    assert_error(
        bob.get(&format!("/bob/volumes/{}", created[0])),
        404,
        "VolumeNotFound",
    );
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
