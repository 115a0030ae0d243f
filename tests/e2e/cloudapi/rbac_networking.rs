//! Role tags on part 3's objects: a fabric VLAN, a fabric network (one tag on its
//! fabric path covers `/networks/ID`, its name and its addresses), a firewall rule (and
//! its machines) and a volume are tagged by id, and a sub-user reaches only the tagged
//! ones; tagging what does not exist is a 404.

use serde_json::{Value, json};

use super::rbac::{expect, setup};
use super::{Signer, status_json};

fn created(signer: &Signer, path: &str, body: Value) -> Value {
    let (status, _, out) = status_json(signer.post(path, &body));
    assert_eq!(status, 201, "{path}: {out}");
    out
}

fn tag(signer: &Signer, path: &str, status: u16) {
    let got = signer.send("PUT", path, Some(&json!({"role-tag": ["reader"]})));
    assert_eq!(got.status().as_u16(), status, "tag {path}");
}

#[test]
fn role_tags_on_fabrics_firewall_rules_and_volumes_are_keyed_by_id() {
    let t = setup(
        &[(
            "read",
            &[
                "CAN getfabricvlan",
                "CAN getnetwork",
                "CAN getfabricnetwork",
                "CAN listnetworkips",
                "CAN getfirewallrule",
                "CAN listfirewallrulemachines",
                "CAN getvolume",
            ],
        )],
        &[("reader", true, &["read"])],
        &[],
    );
    let vlans = "/my/fabrics/default/vlans";
    created(&t.alice, vlans, json!({"name": "tagged", "vlan_id": 9}));
    created(&t.alice, vlans, json!({"name": "plain", "vlan_id": 10}));
    let network = created(
        &t.alice,
        &format!("{vlans}/9/networks"),
        json!({"name": "tagged-net", "subnet": "10.9.0.0/24",
               "provision_start_ip": "10.9.0.10", "provision_end_ip": "10.9.0.50"}),
    );
    let net = network["id"].as_str().unwrap().to_string();
    let rule = |text: &str| -> String {
        created(&t.alice, "/my/fwrules", json!({ "rule": text }))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (tagged_rule, plain_rule) = (
        rule("FROM any TO all vms ALLOW tcp PORT 22"),
        rule("FROM any TO all vms ALLOW tcp PORT 80"),
    );
    let volume = |name: &str| -> String {
        created(&t.alice, "/my/volumes", json!({ "name": name }))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (tagged_volume, plain_volume) = (volume("tagged-vol"), volume("plain-vol"));

    // Tags by the VLAN's number written differently, by the network's fabric path, by id.
    tag(&t.alice, "/my/fabrics/default/vlans/09", 200);
    tag(&t.alice, &format!("{vlans}/9/networks/{net}"), 200);
    tag(&t.alice, &format!("/my/fwrules/{tagged_rule}"), 200);
    tag(&t.alice, &format!("/my/volumes/{tagged_volume}"), 200);
    // The tag set on the fabric path is the network's, read back on `/networks/ID`.
    let (_, headers, _) = status_json(t.alice.get(&format!("/my/networks/{net}")));
    assert_eq!(
        headers.get("role-tag").and_then(|v| v.to_str().ok()),
        Some("reader")
    );

    let bob = &t.bob;
    expect(bob, "GET", "/alice/fabrics/default/vlans/9", 200);
    expect(bob, "GET", "/alice/fabrics/default/vlans/10", 403);
    // One tag on the network, whichever path names it.
    expect(
        bob,
        "GET",
        &format!("/alice/fabrics/default/vlans/9/networks/{net}"),
        200,
    );
    expect(bob, "GET", &format!("/alice/networks/{net}"), 200);
    expect(bob, "GET", "/alice/networks/tagged-net", 200);
    expect(bob, "GET", &format!("/alice/networks/{net}/ips"), 200);
    expect(
        bob,
        "GET",
        &format!("/alice/networks/{net}/ips/10.9.0.20"),
        403,
    );
    // A rule's machines are the rule.
    expect(bob, "GET", &format!("/alice/fwrules/{tagged_rule}"), 200);
    expect(
        bob,
        "GET",
        &format!("/alice/fwrules/{tagged_rule}/machines"),
        200,
    );
    expect(bob, "GET", &format!("/alice/fwrules/{plain_rule}"), 403);
    expect(
        bob,
        "GET",
        &format!("/alice/fwrules/{plain_rule}/machines"),
        403,
    );
    expect(bob, "GET", &format!("/alice/volumes/{tagged_volume}"), 200);
    expect(bob, "GET", &format!("/alice/volumes/{plain_volume}"), 403);
    // Tagged, but no rule for the action.
    expect(bob, "DELETE", &format!("/alice/fwrules/{tagged_rule}"), 403);
    expect(
        bob,
        "DELETE",
        &format!("/alice/volumes/{tagged_volume}"),
        403,
    );

    // Nothing to tag.
    let none = "00000000-0000-4000-8000-000000000000";
    tag(&t.alice, "/my/fabrics/default/vlans/77", 404);
    tag(&t.alice, &format!("{vlans}/9/networks/{none}"), 404);
    tag(&t.alice, &format!("{vlans}/10/networks/{net}"), 404);
    tag(&t.alice, &format!("/my/networks/{none}"), 404);
    tag(&t.alice, &format!("/my/fwrules/{none}"), 404);
    tag(&t.alice, &format!("/my/volumes/{none}"), 404);
}
