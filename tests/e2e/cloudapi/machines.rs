//! CloudAPI part 2 over real HTTP: images, packages, machines and what is on a machine
//! (tags, metadata, snapshots, disks, audit), on the sim hypervisor.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Signer, account_with_key, assert_error, site, status_json};
use crate::harness::Server;

/// Packages of the test site: a small one, a default, and one no node can hold.
const SETTINGS: &str = r#"
[plugins.cloudapi.settings.packages.small]
memory = 512
disk = 10240
vcpus = 1
[plugins.cloudapi.settings.packages.medium]
memory = 1024
disk = 20480
vcpus = 2
default = true
[plugins.cloudapi.settings.packages.huge]
memory = 10000000
disk = 10240
vcpus = 1

[hypervisor.sim]
transition_delay_ms = 150
"#;

fn setup() -> (Server, Signer) {
    let server = site(SETTINGS);
    let alice = account_with_key(&server, "alice");
    (server, alice)
}

/// The id of the shipped image `name`.
fn image_id(api: &Signer, name: &str) -> String {
    let (status, _, body) = status_json(api.get(&format!("/my/images?name={name}")));
    assert_eq!(status, 200, "{body}");
    body[0]["id"].as_str().expect("image id").to_string()
}

/// Polls GetMachine until `state` (a deleted machine answers 410).
fn wait_state(api: &Signer, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, body) = status_json(api.get(&format!("/my/machines/{id}")));
        assert!(status == 200 || status == 410, "{status} {body}");
        if body["state"] == state {
            return body;
        }
        assert!(Instant::now() < deadline, "never {state}: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create(api: &Signer, body: Value) -> Value {
    let (status, headers, machine) = status_json(api.post("/my/machines", &body));
    assert_eq!(status, 201, "{machine}");
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .ends_with(machine["id"].as_str().unwrap())
    );
    machine
}

fn running(api: &Signer, name: &str, image: &str) -> String {
    let machine = create(
        api,
        json!({"name": name, "image": image, "package": "small"}),
    );
    let id = machine["id"].as_str().unwrap().to_string();
    wait_state(api, &id, "running");
    id
}

fn action(api: &Signer, id: &str, body: Value) -> u16 {
    api.post(&format!("/my/machines/{id}"), &body)
        .status()
        .as_u16()
}

#[test]
fn images_list_filter_and_get() {
    let (_server, api) = setup();
    let (status, headers, images) = status_json(api.get("/my/images"));
    assert_eq!(status, 200);
    assert_eq!(headers["x-resource-count"], "4");
    let alpine = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "alpine-3.20")
        .expect("alpine");
    for field in [
        "id",
        "name",
        "version",
        "os",
        "requirements",
        "type",
        "files",
        "published_at",
        "owner",
        "public",
        "state",
    ] {
        assert!(alpine.get(field).is_some(), "{field} in {alpine}");
    }
    let (_, _, smartos) = status_json(api.get("/my/images?os=smartos"));
    assert_eq!(smartos.as_array().unwrap().len(), 1);
    let (_, _, zvols) = status_json(api.get("/my/images?type=zvol&public=true"));
    assert_eq!(zvols.as_array().unwrap().len(), 3);
    let (_, _, none) = status_json(api.get("/my/images?state=disabled"));
    assert_eq!(none, json!([]));
    let (_, _, fuzzy) = status_json(api.get("/my/images?name=~ubuntu"));
    assert_eq!(fuzzy.as_array().unwrap().len(), 1);
    let id = alpine["id"].as_str().unwrap();
    let (status, _, one) = status_json(api.get(&format!("/my/images/{id}")));
    assert_eq!((status, &one["name"]), (200, &json!("alpine-3.20")));
    assert_error(api.get("/my/images/nope"), 404, "ResourceNotFound");
    // Public images are the operator's, not the account's.
    assert_error(
        api.send("DELETE", &format!("/my/images/{id}"), None),
        403,
        "NotAuthorized",
    );
    assert_error(
        api.post(&format!("/my/images/{id}?action=export"), &json!({})),
        409,
        "MissingParameter",
    );
    assert_error(
        api.post(&format!("/my/images/{id}"), &json!({"action": "bogus"})),
        409,
        "InvalidArgument",
    );
}

#[test]
fn packages_list_filter_and_get() {
    let (_server, api) = setup();
    let (status, _, packages) = status_json(api.get("/my/packages"));
    assert_eq!(status, 200);
    let names: Vec<&str> = packages
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["huge", "medium", "small"]);
    let medium = &packages[1];
    assert_eq!(
        (&medium["memory"], &medium["vcpus"], &medium["default"]),
        (&json!(1024), &json!(2), &json!(true))
    );
    let (_, _, filtered) = status_json(api.get("/my/packages?memory=512"));
    assert_eq!(filtered[0]["name"], "small");
    let (_, _, wild) = status_json(api.get("/my/packages?name=s*"));
    assert_eq!(wild.as_array().unwrap().len(), 1);
    let id = medium["id"].as_str().unwrap();
    let (_, _, by_id) = status_json(api.get(&format!("/my/packages/{id}")));
    assert_eq!(by_id["name"], "medium");
    let (_, _, by_name) = status_json(api.get("/my/packages/medium"));
    assert_eq!(by_name["id"], id);
    assert_error(api.get("/my/packages/nope"), 404, "ResourceNotFound");
    assert_error(api.get("/my/packages?memory=lots"), 409, "InvalidArgument");
}

#[test]
fn default_site_ships_sample_packages() {
    let server = Server::default_site();
    let api = account_with_key(&server, "carol");
    let (status, _, packages) = status_json(api.get("/my/packages"));
    assert_eq!(status, 200, "{packages}");
    assert!(packages.as_array().unwrap().len() >= 3, "{packages}");
    assert!(
        packages
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["default"] == true)
    );
}

#[test]
fn create_machine_runs_through_a_job_and_validates_inputs() {
    let (_server, api) = setup();
    let image = image_id(&api, "alpine-3.20");
    let machine = create(
        &api,
        json!({
            "name": "web-1", "image": image, "package": "small",
            "tag.role": "web", "tag.count": 3, "metadata.user-script": "echo hi",
            "firewall_enabled": true,
        }),
    );
    assert_eq!(machine["state"], "provisioning");
    assert_eq!(machine["package"], "small");
    assert_eq!(machine["tags"], json!({"role": "web", "count": 3}));
    assert_eq!(machine["metadata"]["user-script"], "echo hi");
    assert_eq!(machine["firewall_enabled"], true);
    assert_eq!(
        (&machine["memory"], &machine["brand"]),
        (&json!(512), &json!("bhyve"))
    );
    let id = machine["id"].as_str().unwrap();
    let ready = wait_state(&api, id, "running");
    assert!(ready["primaryIp"].as_str().unwrap().starts_with("10.88."));
    assert_eq!(ready["nics"][0]["netmask"], "255.255.0.0");
    assert!(ready["compute_node"].is_string());
    // The default package when none is named.
    let defaulted = create(&api, json!({"name": "web-2", "image": image}));
    assert_eq!(defaulted["package"], "medium");

    assert_error(
        api.post("/my/machines", &json!({"package": "small"})),
        409,
        "MissingParameter",
    );
    assert_error(
        api.post("/my/machines", &json!({"image": image, "package": "nope"})),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post(
            "/my/machines",
            &json!({"image": "00000000-0000-0000-0000-000000000001", "package": "small"}),
        ),
        404,
        "ResourceNotFound",
    );
    assert_error(
        api.post(
            "/my/machines",
            &json!({"name": "bad name", "image": image, "package": "small"}),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post(
            "/my/machines",
            &json!({"name": "web-1", "image": image, "package": "small"}),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post("/my/machines", &json!({"image": image, "package": "huge"})),
        503,
        "InsufficientCapacity",
    );
    assert_error(
        api.post(
            "/my/machines",
            &json!({"image": image, "package": "small", "metadata.credentials": "x"}),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post(
            "/my/machines",
            &json!({"image": image, "package": "small", "affinity": ["instance==no-such-one"]}),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post(
            "/my/machines",
            &json!({"image": image, "package": "small", "networks": ["no-such-net"]}),
        ),
        409,
        "InvalidArgument",
    );
}

#[test]
fn machines_are_private_to_their_account() {
    let (server, api) = setup();
    let bob = account_with_key(&server, "bob");
    let image = image_id(&api, "alpine-3.20");
    let id = running(&api, "mine", &image);
    assert_error(
        bob.get(&format!("/my/machines/{id}")),
        404,
        "ResourceNotFound",
    );
    assert_error(
        bob.send("DELETE", &format!("/my/machines/{id}"), None),
        404,
        "ResourceNotFound",
    );
    let (_, headers, list) = status_json(bob.get("/my/machines"));
    assert_eq!(
        (headers["x-resource-count"].to_str().unwrap(), list),
        ("0", json!([]))
    );
}

#[test]
fn list_machines_filters_and_pages_in_the_primitive() {
    let (_server, api) = setup();
    let alpine = image_id(&api, "alpine-3.20");
    let debian = image_id(&api, "debian-12");
    for i in 0..5 {
        let role = if i % 2 == 0 { "db" } else { "web" };
        let image = if i == 4 { &debian } else { &alpine };
        let package = if i == 3 { "medium" } else { "small" };
        create(
            &api,
            json!({"name": format!("m{i}"), "image": image, "package": package,
                   "tag.role": role, "tag.env": if i < 2 { "prod" } else { "dev" }}),
        );
    }
    let names = |path: &str| -> (Vec<String>, String, String) {
        let (status, headers, body) = status_json(api.get(path));
        assert_eq!(status, 200, "{path}: {body}");
        let names = body
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect();
        let header = |h: &str| headers[h].to_str().unwrap().to_string();
        (names, header("x-resource-count"), header("x-query-limit"))
    };
    let (all, count, limit) = names("/my/machines");
    assert_eq!(
        (all.len(), count.as_str(), limit.as_str()),
        (5, "5", "1000")
    );
    let (page, count, limit) = names("/my/machines?limit=2&offset=2");
    assert_eq!(page, ["m2", "m3"]);
    assert_eq!((count.as_str(), limit.as_str()), ("5", "2"));
    assert_eq!(names("/my/machines?tag.role=db").0, ["m0", "m2", "m4"]);
    assert_eq!(names("/my/machines?tag.role=db&tag.env=prod").0, ["m0"]);
    assert_eq!(names("/my/machines?name=m3").0, ["m3"]);
    assert_eq!(names(&format!("/my/machines?image={debian}")).0, ["m4"]);
    assert_eq!(names("/my/machines?memory=1024").0, ["m3"]);
    assert_eq!(names("/my/machines?tags=*&name=ignored").0.len(), 5);
    assert_eq!(names("/my/machines?docker=true").0.len(), 0);
    assert_eq!(
        names("/my/machines?brand=bhyve&type=virtualmachine")
            .0
            .len(),
        5
    );
    assert_eq!(names("/my/machines?brand=lx").0.len(), 0);
    // HEAD answers the count without a body.
    let head = api.send("HEAD", "/my/machines?tag.role=web", None);
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-resource-count"], "2");
    assert_error(api.get("/my/machines?state=bogus"), 409, "InvalidArgument");
    assert_error(api.get("/my/machines?limit=5000"), 409, "InvalidArgument");
    // A deleted machine is only listed as a tombstone.
    let id = wait_state(&api, &first_id(&api, "m1"), "running")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        api.send("DELETE", &format!("/my/machines/{id}"), None)
            .status(),
        204
    );
    wait_state(&api, &id, "deleted");
    assert_eq!(names("/my/machines").0.len(), 4);
    assert_eq!(names("/my/machines?tombstone=true").0.len(), 5);
    assert_eq!(names("/my/machines?state=deleted").0, ["m1"]);
}

fn first_id(api: &Signer, name: &str) -> String {
    let (_, _, body) = status_json(api.get(&format!("/my/machines?name={name}")));
    body[0]["id"].as_str().expect("machine").to_string()
}

#[test]
fn machine_actions_move_states_and_are_audited() {
    let (_server, api) = setup();
    let image = image_id(&api, "alpine-3.20");
    let id = running(&api, "box", &image);
    assert_error(
        api.post(&format!("/my/machines/{id}"), &json!({"action": "start"})),
        409,
        "InvalidState",
    );
    assert_eq!(action(&api, &id, json!({"action": "stop"})), 202);
    wait_state(&api, &id, "stopped");
    assert_error(
        api.post(&format!("/my/machines/{id}"), &json!({"action": "stop"})),
        409,
        "InvalidState",
    );
    // Resize needs a known package.
    assert_error(
        api.post(
            &format!("/my/machines/{id}"),
            &json!({"action": "resize", "package": "nope"}),
        ),
        409,
        "InvalidArgument",
    );
    assert_eq!(
        action(&api, &id, json!({"action": "resize", "package": "medium"})),
        202
    );
    let resized = wait_state(&api, &id, "stopped");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut resized = resized;
    // The package changes when the resize's job completes.
    while (resized["memory"] != 1024 || resized["package"] != "medium") && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
        resized = status_json(api.get(&format!("/my/machines/{id}"))).2;
    }
    assert_eq!(
        (&resized["memory"], &resized["package"]),
        (&json!(1024), &json!("medium"))
    );
    wait_idle(&api, &id);
    assert_eq!(action(&api, &id, json!({"action": "start"})), 202);
    wait_state(&api, &id, "running");
    wait_idle(&api, &id);
    assert_eq!(action(&api, &id, json!({"action": "reboot"})), 202);
    wait_idle(&api, &id);
    assert_eq!(
        action(&api, &id, json!({"action": "rename", "name": "box-2"})),
        202
    );
    let (_, _, renamed) = status_json(api.get(&format!("/my/machines/{id}")));
    assert_eq!(renamed["name"], "box-2");
    assert_error(
        api.post(&format!("/my/machines/{id}"), &json!({"action": "rename"})),
        409,
        "MissingParameter",
    );
    assert_eq!(
        action(&api, &id, json!({"action": "disable_firewall"})),
        202
    );
    assert_eq!(action(&api, &id, json!({"action": "enable_firewall"})), 202);
    let (_, _, fw) = status_json(api.get(&format!("/my/machines/{id}")));
    assert_eq!(fw["firewall_enabled"], true);
    assert_error(
        api.post(&format!("/my/machines/{id}"), &json!({})),
        409,
        "MissingParameter",
    );
    assert_error(
        api.post(&format!("/my/machines/{id}"), &json!({"action": "fly"})),
        409,
        "InvalidArgument",
    );

    // Deletion protection refuses DeleteMachine until it is turned off.
    assert_eq!(
        action(&api, &id, json!({"action": "enable_deletion_protection"})),
        202
    );
    let (_, _, protected) = status_json(api.get(&format!("/my/machines/{id}")));
    assert_eq!(protected["deletion_protection"], true);
    assert_error(
        api.send("DELETE", &format!("/my/machines/{id}"), None),
        409,
        "CannotDestroyMachine",
    );
    assert_eq!(
        action(&api, &id, json!({"action": "disable_deletion_protection"})),
        202
    );

    let (status, _, audit) = status_json(api.get(&format!("/my/machines/{id}/audit")));
    assert_eq!(status, 200);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "disable_deletion_protection",
            "enable_deletion_protection",
            "rename",
            "reboot",
            "start",
            "resize",
            "stop",
            "provision"
        ]
    );
    let newest_reboot = &audit[3];
    assert_eq!(newest_reboot["success"], "yes");
    assert_eq!(newest_reboot["caller"]["type"], "signature");
    assert!(
        newest_reboot["caller"]["keyId"]
            .as_str()
            .unwrap()
            .starts_with("/alice/keys/")
    );
    assert!(newest_reboot["time"].as_str().unwrap().ends_with('Z'));

    assert_eq!(
        api.send("DELETE", &format!("/my/machines/{id}"), None)
            .status(),
        204
    );
    let gone = wait_state(&api, &id, "deleted");
    assert_eq!(gone["id"], id.as_str());
    assert_eq!(api.get(&format!("/my/machines/{id}")).status(), 410);
    assert_error(
        api.post(&format!("/my/machines/{id}"), &json!({"action": "start"})),
        410,
        "ResourceGone",
    );
    assert_error(
        api.get("/my/machines/00000000-0000-0000-0000-000000000000"),
        404,
        "ResourceNotFound",
    );
}

/// Waits until the machine's newest audit entry has finished.
fn wait_idle(api: &Signer, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, audit) = status_json(api.get(&format!("/my/machines/{id}/audit")));
        let (_, _, machine) = status_json(api.get(&format!("/my/machines/{id}")));
        let settled = machine["state"] == "running" || machine["state"] == "stopped";
        if audit[0]["success"] == "yes" && settled {
            return;
        }
        assert!(Instant::now() < deadline, "{audit}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tags_add_replace_get_and_delete() {
    let (_server, api) = setup();
    let image = image_id(&api, "alpine-3.20");
    let id = running(&api, "tagged", &image);
    let path = format!("/my/machines/{id}/tags");
    let (status, _, tags) = status_json(api.post(&path, &json!({"a": "1", "b": true})));
    assert_eq!((status, tags), (200, json!({"a": "1", "b": true})));
    let (_, _, tags) = status_json(api.post(&path, &json!({"c": 3})));
    assert_eq!(tags, json!({"a": "1", "b": true, "c": 3}));
    let (_, _, one) = status_json(api.get(&format!("{path}/c")));
    assert_eq!(one, json!(3));
    assert_error(api.get(&format!("{path}/zz")), 404, "ResourceNotFound");
    let (_, _, replaced) = status_json(api.send("PUT", &path, Some(&json!({"only": "x"}))));
    assert_eq!(replaced, json!({"only": "x"}));
    assert_eq!(
        api.send("DELETE", &format!("{path}/only"), None).status(),
        204
    );
    assert_error(
        api.send("DELETE", &format!("{path}/only"), None),
        404,
        "ResourceNotFound",
    );
    api.post(&path, &json!({"x": "1", "y": "2"}));
    assert_eq!(api.send("DELETE", &path, None).status(), 204);
    let (_, _, empty) = status_json(api.get(&path));
    assert_eq!(empty, json!({}));
    assert_error(
        api.post(&path, &json!({"bad": {"nested": 1}})),
        409,
        "InvalidArgument",
    );
    let (_, _, audit) = status_json(api.get(&format!("/my/machines/{id}/audit")));
    assert_eq!(audit[0]["action"], "set_tags");
    assert_error(
        api.get("/my/machines/00000000-0000-0000-0000-000000000000/tags"),
        404,
        "ResourceNotFound",
    );
}

#[test]
fn metadata_update_list_get_delete_and_credentials() {
    let (_server, api) = setup();
    let image = image_id(&api, "alpine-3.20");
    let id = running(&api, "meta", &image);
    let path = format!("/my/machines/{id}/metadata");
    let (status, _, md) = status_json(api.post(&path, &json!({"k": "v", "n": {"j": 1}})));
    assert_eq!(status, 200);
    assert_eq!(md, json!({"k": "v", "n": "{\"j\":1}"}));
    let (_, _, value) = status_json(api.get(&format!("{path}/k")));
    assert_eq!(value, json!("v"));
    assert_error(api.get(&format!("{path}/none")), 404, "ResourceNotFound");
    assert_error(
        api.post(&path, &json!({"credentials": "x"})),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.send("DELETE", &format!("{path}/credentials"), None),
        409,
        "InvalidArgument",
    );
    assert_eq!(api.send("DELETE", &format!("{path}/k"), None).status(), 204);
    let (_, _, md) = status_json(api.get(&path));
    assert_eq!(md, json!({"n": "{\"j\":1}"}));
    assert_eq!(api.send("DELETE", &path, None).status(), 204);
    let (_, _, md) = status_json(api.get(&format!("{path}?credentials=true")));
    assert_eq!(md, json!({}));
}

#[test]
fn snapshots_create_list_get_rollback_and_delete() {
    let (_server, api) = setup();
    let image = image_id(&api, "alpine-3.20");
    let id = running(&api, "snappy", &image);
    let path = format!("/my/machines/{id}/snapshots");
    let (status, headers, snap) = status_json(api.post(&path, &json!({"name": "before"})));
    assert_eq!(
        (status, &snap["name"], &snap["state"]),
        (201, &json!("before"), &json!("created"))
    );
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .ends_with("/snapshots/before")
    );
    assert_error(
        api.post(&path, &json!({"name": "before"})),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post(&path, &json!({"name": "no spaces"})),
        409,
        "InvalidArgument",
    );
    let (_, _, unnamed) = status_json(api.post(&path, &json!({})));
    assert!(
        unnamed["name"].as_str().unwrap().starts_with("20"),
        "{unnamed}"
    );
    let (_, _, list) = status_json(api.get(&path));
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (_, _, one) = status_json(api.get(&format!("{path}/before")));
    assert_eq!(one["name"], "before");
    assert_error(api.get(&format!("{path}/nope")), 404, "ResourceNotFound");
    // Rolling back needs a stopped machine.
    assert_error(
        api.post(&format!("{path}/before"), &json!({})),
        409,
        "InvalidState",
    );
    action(&api, &id, json!({"action": "stop"}));
    wait_state(&api, &id, "stopped");
    wait_idle(&api, &id);
    assert_eq!(
        api.post(&format!("{path}/before"), &json!({})).status(),
        202
    );
    wait_idle(&api, &id);
    assert_eq!(
        api.send("DELETE", &format!("{path}/before"), None).status(),
        204
    );
    assert_error(
        api.send("DELETE", &format!("{path}/before"), None),
        404,
        "ResourceNotFound",
    );
}

/// `disks` at create: a bhyve machine of a `flexible_disk` package gets its
/// boot disk and data disks at once, within the package's quota.
#[test]
fn create_machine_with_disks_of_a_flexible_package() {
    let server = site(&format!(
        "{SETTINGS}\n[plugins.cloudapi.settings.packages.flexible]\n\
         memory = 512\ndisk = 20480\nvcpus = 1\nflexible_disk = true\n"
    ));
    let api = account_with_key(&server, "alice");
    let image = image_id(&api, "alpine-3.20");
    let body = |disks: Value| json!({"image": image, "package": "flexible", "brand": "bhyve", "disks": disks});
    let machine = create(
        &api,
        body(json!([{"boot": true, "size": 4096}, {"size": 2048}, {"size": "remaining"}])),
    );
    let id = machine["id"].as_str().unwrap();
    wait_state(&api, id, "running");
    let (_, _, disks) = status_json(api.get(&format!("/my/machines/{id}/disks")));
    let sizes: Vec<(bool, u64)> = disks
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["boot"].as_bool().unwrap(), d["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        sizes,
        [(true, 4096), (false, 2048), (false, 14336)],
        "{disks}"
    );
    // The boot disk defaults to the image's size.
    let machine = create(&api, body(json!([{}, {"size": 1024}])));
    let id = machine["id"].as_str().unwrap();
    wait_state(&api, id, "running");
    let (_, _, disks) = status_json(api.get(&format!("/my/machines/{id}/disks")));
    assert_eq!(disks.as_array().unwrap().len(), 2, "{disks}");
    assert_eq!(disks[1]["size"], 1024);

    for (bad, why) in [
        (
            body(json!([{"size": 20000}, {"size": 1000}])),
            "over the quota",
        ),
        (
            body(json!([{"size": 20480}, {"size": "remaining"}])),
            "nothing remains",
        ),
        (
            body(json!([{"size": "remaining"}, {"size": "remaining"}])),
            "two remaining",
        ),
        (body(json!([{"size": -1}])), "negative"),
        (
            body(json!([{"size": 1024}, {"size": 1024, "boot": true}])),
            "a second boot disk",
        ),
        (body(json!(["disk"])), "not an object"),
        (body(json!([])), "empty"),
        (
            json!({"image": image, "package": "small", "disks": [{"size": 1024}]}),
            "not a flexible package",
        ),
    ] {
        let response = api.post("/my/machines", &bad);
        let body = assert_error(response, 409, "InvalidArgument");
        assert!(body["message"].is_string(), "{why}: {body}");
    }
}

#[test]
fn disks_add_resize_list_get_and_delete() {
    let (_server, api) = setup();
    let image = image_id(&api, "alpine-3.20");
    let id = running(&api, "disky", &image);
    let path = format!("/my/machines/{id}/disks");
    let (_, _, disks) = status_json(api.get(&path));
    assert_eq!(disks.as_array().unwrap().len(), 1);
    assert_eq!(
        (&disks[0]["boot"], &disks[0]["size"], &disks[0]["pci_slot"]),
        (&json!(true), &json!(10240), &json!("0:4:0"))
    );
    // Disks change only while the machine is stopped.
    assert_error(api.post(&path, &json!({"size": 2048})), 409, "InvalidState");
    action(&api, &id, json!({"action": "stop"}));
    wait_state(&api, &id, "stopped");
    wait_idle(&api, &id);
    let added = api.post(&path, &json!({"size": 2048}));
    assert_eq!(added.status(), 202);
    let (_, _, disks) = status_json(api.get(&path));
    assert_eq!(disks[1]["size"], 2048);
    let disk_id = disks[1]["id"].as_str().unwrap().to_string();
    let (status, headers, slotted) =
        status_json(api.post(&path, &json!({"size": 512, "pci_slot": "0:4:2"})));
    assert_eq!((status, &slotted["pci_slot"]), (200, &json!("0:4:2")));
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .ends_with(slotted["id"].as_str().unwrap())
    );
    assert_error(
        api.post(&path, &json!({"size": 512, "pci_slot": "0:4:0"})),
        409,
        "InvalidArgument",
    );
    let (_, _, one) = status_json(api.get(&format!("{path}/{disk_id}")));
    assert_eq!(one["id"], disk_id.as_str());
    assert_error(api.post(&path, &json!({})), 409, "MissingParameter");
    assert_error(
        api.post(&path, &json!({"size": "big"})),
        409,
        "InvalidArgument",
    );
    // Resize: grow; shrink only when allowed.
    let (status, _, resizing) =
        status_json(api.post(&format!("{path}/{disk_id}"), &json!({"size": 4096})));
    assert_eq!(
        (status, &resizing["state"], &resizing["size"]),
        (200, &json!("resizing"), &json!(2048))
    );
    let (_, _, grown) = status_json(api.get(&format!("{path}/{disk_id}")));
    assert_eq!(grown["size"], 4096);
    assert_error(
        api.post(&format!("{path}/{disk_id}"), &json!({"size": 1024})),
        409,
        "InvalidArgument",
    );
    let (status, _, _) = status_json(api.post(
        &format!("{path}/{disk_id}"),
        &json!({"size": 1024, "dangerous_allow_shrink": true}),
    ));
    assert_eq!(status, 200);
    let boot = disks[0]["id"].as_str().unwrap();
    assert_error(
        api.send("DELETE", &format!("{path}/{boot}"), None),
        409,
        "InvalidArgument",
    );
    assert_eq!(
        api.send("DELETE", &format!("{path}/{disk_id}"), None)
            .status(),
        204
    );
    assert_error(
        api.get(&format!("{path}/{disk_id}")),
        404,
        "ResourceNotFound",
    );
    let (_, _, audit) = status_json(api.get(&format!("/my/machines/{id}/audit")));
    assert_eq!(audit[1]["action"], "resize_disk");
}

#[test]
fn images_from_machines_update_and_delete() {
    let (_server, api) = setup();
    let image = image_id(&api, "alpine-3.20");
    let id = running(&api, "golden", &image);
    let (status, _, made) = status_json(api.post(
        "/my/images",
        &json!({"machine": id, "name": "golden", "version": "1.0.0", "description": "mine"}),
    ));
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (&made["public"], &made["state"]),
        (&json!(false), &json!("creating"))
    );
    assert_eq!(made["description"], "mine");
    let made_id = made["id"].as_str().unwrap();
    wait_image(&api, made_id, "active");
    let (_, _, updated) = status_json(api.post(
        &format!("/my/images/{made_id}?action=update"),
        &json!({"version": "1.0.1", "tags": {"k": "v"}}),
    ));
    assert_eq!(
        (&updated["version"], &updated["tags"]["k"]),
        (&json!("1.0.1"), &json!("v"))
    );
    assert_error(
        api.post("/my/images", &json!({"name": "x"})),
        409,
        "MissingParameter",
    );
    assert_error(
        api.post(
            "/my/images?action=import-from-datacenter",
            &json!({"datacenter": "nowhere", "id": made_id}),
        ),
        422,
        "ValidationFailed",
    );
    assert_error(
        api.post(
            "/my/images?action=import-from-datacenter",
            &json!({"datacenter": "nowhere", "id": "not-a-uuid"}),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post(
            "/my/images?action=import-from-datacenter",
            &json!({"id": made_id}),
        ),
        409,
        "MissingParameter",
    );
    // A machine made from it keeps it in use.
    let user = create(
        &api,
        json!({"name": "child", "image": made_id, "package": "small"}),
    );
    assert_error(
        api.send("DELETE", &format!("/my/images/{made_id}"), None),
        409,
        "InUseError",
    );
    let child = user["id"].as_str().unwrap();
    wait_state(&api, child, "running");
    api.send("DELETE", &format!("/my/machines/{child}"), None);
    wait_state(&api, child, "deleted");
    assert_eq!(
        api.send("DELETE", &format!("/my/images/{made_id}"), None)
            .status(),
        204
    );
    assert_error(
        api.get(&format!("/my/images/{made_id}")),
        404,
        "ResourceNotFound",
    );
}

/// Polls GetImage until `state`.
pub(super) fn wait_image(api: &Signer, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, body) = status_json(api.get(&format!("/my/images/{id}")));
        assert_eq!(status, 200, "{body}");
        if body["state"] == state {
            return body;
        }
        assert!(Instant::now() < deadline, "never {state}: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn node_of(api: &Signer, id: &str) -> String {
    wait_state(api, id, "running")["compute_node"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn create_machine_places_by_affinity_and_locality() {
    let (_server, api) = setup();
    let image = image_id(&api, "alpine-3.20");
    let anchor = create(
        &api,
        json!({"name": "anchor", "image": image, "package": "small", "tag.role": "db"}),
    );
    let anchor_id = anchor["id"].as_str().unwrap();
    let home = node_of(&api, anchor_id);
    let placed = |body: Value| -> String {
        let mut body = body;
        body["image"] = json!(image);
        body["package"] = json!("small");
        let machine = create(&api, body);
        node_of(&api, machine["id"].as_str().unwrap())
    };
    // The two sim nodes: hard rules pin or keep away, whatever the free RAM says.
    assert_eq!(placed(json!({"affinity": ["instance==anchor"]})), home);
    assert_eq!(placed(json!({"affinity": ["instance==anchor"]})), home);
    assert_ne!(placed(json!({"affinity": ["instance!=anchor"]})), home);
    assert_ne!(placed(json!({"affinity": ["instance!=anch*"]})), home);
    assert_ne!(placed(json!({"affinity": ["container!=/^anc/"]})), home);
    assert_eq!(placed(json!({"affinity": ["role==db"]})), home);
    assert_ne!(placed(json!({"affinity": ["role!=db"]})), home);
    assert_eq!(
        placed(json!({"affinity": [format!("instance=={anchor_id}")]})),
        home
    );
    // Soft rules steer but never fail.
    assert_ne!(placed(json!({"affinity": ["instance!=~anchor"]})), home);
    assert_eq!(placed(json!({"affinity": ["instance==~anchor"]})), home);
    placed(json!({"affinity": ["instance==~nothing-by-this-name"]}));
    // Locality: near/far, strict or not, one id or a list.
    assert_eq!(
        placed(json!({"locality": {"near": anchor_id, "strict": true}})),
        home
    );
    assert_ne!(
        placed(json!({"locality": {"far": [anchor_id], "strict": true}})),
        home
    );
    assert_ne!(placed(json!({"locality": {"far": anchor_id}})), home);

    for (affinity, code) in [
        (
            json!(["instance==anchor", "instance!=anchor"]),
            "InvalidArgument",
        ),
        (json!(["instance==nobody"]), "InvalidArgument"),
        (json!(["instance"]), "InvalidArgument"),
        (json!(["instance==/(/"]), "InvalidArgument"),
    ] {
        assert_error(
            api.post(
                "/my/machines",
                &json!({"image": image, "package": "small", "affinity": affinity}),
            ),
            409,
            code,
        );
    }
    assert_error(
        api.post(
            "/my/machines",
            &json!({"image": image, "package": "small", "locality": {"near": 5}}),
        ),
        409,
        "InvalidArgument",
    );
    // A pinned machine too big for its node is a capacity error, not a move elsewhere.
    assert_error(
        api.post(
            "/my/machines",
            &json!({"image": image, "package": "huge", "affinity": ["instance==anchor"]}),
        ),
        503,
        "InsufficientCapacity",
    );
}

#[test]
fn machine_names_default_to_the_short_id() {
    let (_server, api) = setup();
    let image = image_id(&api, "alpine-3.20");
    let unnamed = create(&api, json!({"image": image, "package": "small"}));
    let id = unnamed["id"].as_str().unwrap();
    assert_eq!(unnamed["name"], &id[..8]);
    let templated = create(
        &api,
        json!({"name": "db-{{shortId}}", "image": image, "package": "small"}),
    );
    let id = templated["id"].as_str().unwrap();
    assert_eq!(templated["name"], format!("db-{}", &id[..8]));
    assert_error(
        api.post(
            "/my/machines",
            &json!({"name": "{{longId}}", "image": image, "package": "small"}),
        ),
        409,
        "InvalidArgument",
    );
}

#[test]
fn list_machines_counts_with_brand_and_type_filters() {
    let (_server, api) = setup();
    let image = image_id(&api, "alpine-3.20");
    for (name, brand) in [("b1", "bhyve"), ("k1", "kvm"), ("b2", "bhyve")] {
        create(
            &api,
            json!({"name": name, "image": image, "package": "small", "brand": brand}),
        );
    }
    let page = |path: &str| -> (Vec<String>, String) {
        let (status, headers, body) = status_json(api.get(path));
        assert_eq!(status, 200, "{path}: {body}");
        let names = body
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect();
        (
            names,
            headers["x-resource-count"].to_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        page("/my/machines?brand=kvm"),
        (vec!["k1".into()], "1".into())
    );
    assert_eq!(
        page("/my/machines?brand=bhyve&limit=1"),
        (vec!["b1".into()], "2".into())
    );
    assert_eq!(
        page("/my/machines?brand=bhyve&limit=1&offset=1"),
        (vec!["b2".into()], "2".into())
    );
    assert_eq!(page("/my/machines?type=virtualmachine").1, "3");
    assert_eq!(page("/my/machines?type=smartmachine"), (vec![], "0".into()));
    assert_eq!(page("/my/machines?brand=joyent").1, "0");
    assert_eq!(page("/my/machines?brand=kvm&type=smartmachine").1, "0");
    let head = api.send("HEAD", "/my/machines?brand=bhyve", None);
    assert_eq!(head.headers()["x-resource-count"], "2");
}

#[test]
fn image_creation_is_a_job_and_images_are_shared_by_acl() {
    let (server, api) = setup();
    let bob = super::account_with_key(&server, "bob");
    let carol = super::account_with_key(&server, "carol");
    let bob_id = status_json(bob.get("/my")).2["id"]
        .as_str()
        .unwrap()
        .to_string();
    let image = image_id(&api, "alpine-3.20");
    let id = running(&api, "golden", &image);
    let (status, headers, made) = status_json(api.post(
        "/my/images",
        &json!({"machine": id, "name": "shared", "version": "1.0.0"}),
    ));
    assert_eq!(
        (status, &made["state"]),
        (201, &json!("creating")),
        "{made}"
    );
    assert!(headers.contains_key("x-joyent-jobid"));
    let made_id = made["id"].as_str().unwrap().to_string();
    // Only the owner sees a private image, even while it is being made.
    assert_error(
        bob.get(&format!("/my/images/{made_id}")),
        404,
        "ResourceNotFound",
    );
    let (_, _, creating) = status_json(api.get("/my/images?state=creating"));
    assert!(
        creating
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == made_id.as_str())
    );
    let active = wait_image(&api, &made_id, "active");
    assert!(active.get("error").is_none());
    let (_, _, audit) = status_json(api.get(&format!("/my/machines/{id}/audit")));
    assert_eq!(
        (&audit[0]["action"], &audit[0]["success"]),
        (&json!("create_image"), &json!("yes"))
    );
    // The same name and version again is refused.
    assert_error(
        api.post(
            "/my/images",
            &json!({"machine": id, "name": "shared", "version": "1.0.0"}),
        ),
        409,
        "InvalidArgument",
    );

    let listed = |who: &Signer| -> bool {
        let (_, _, images) = status_json(who.get("/my/images"));
        images
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == made_id.as_str())
    };
    assert!(!listed(&bob));
    let share = format!("/my/images/{made_id}?action=share");
    let (status, _, shared) = status_json(api.post(&share, &json!({"account": bob_id})));
    assert_eq!(
        (status, &shared["acl"]),
        (200, &json!([bob_id])),
        "{shared}"
    );
    assert!(listed(&bob) && !listed(&carol));
    let (status, _, seen) = status_json(bob.get(&format!("/my/images/{made_id}")));
    assert_eq!((status, &seen["state"]), (200, &json!("active")));
    // Sharing twice keeps one entry; only the owner shares; the account must be an id.
    let (_, _, again) = status_json(api.post(&share, &json!({"account": bob_id})));
    assert_eq!(again["acl"], json!([bob_id]));
    assert_error(
        bob.post(&share, &json!({"account": bob_id})),
        403,
        "NotImageOwnerError",
    );
    assert_error(
        api.post(&share, &json!({"account": "bob"})),
        409,
        "InvalidArgument",
    );
    assert_error(api.post(&share, &json!({})), 409, "MissingParameter");
    assert_error(
        api.post(
            &format!("/my/images/{made_id}?action=update"),
            &json!({"acl": ["x"]}),
        ),
        409,
        "InvalidArgument",
    );
    // Export: the owner's, to a Manta path; this datacenter has no Manta, and
    // answers as IMGAPI does without it.
    let export = |path: &str| format!("/my/images/{made_id}?action=export&manta_path={path}");
    assert_error(
        carol.post(&export("/carol/stor/x"), &json!({})),
        404,
        "ResourceNotFound",
    );
    assert_error(
        bob.post(&export("/bob/stor/x"), &json!({})),
        403,
        "NotAuthorized",
    );
    assert_error(
        api.post(&export("stor"), &json!({})),
        409,
        "InvalidArgument",
    );
    assert_error(
        api.post(&export("/alice/stor/golden"), &json!({})),
        503,
        "StorageUnsupported",
    );
    // Clone: a shared image only, and the refusal says why.
    assert_error(
        carol.post(&format!("/my/images/{made_id}?action=clone"), &json!({})),
        404,
        "ResourceNotFound",
    );
    let clone_url = format!("/my/images/{made_id}?action=clone");
    assert_error(api.post(&clone_url, &json!({})), 409, "InvalidArgument");
    let (status, _, cloned) = status_json(bob.post(&clone_url, &json!({})));
    assert_eq!(status, 200, "{cloned}");
    let cloned_id = cloned["id"].as_str().unwrap().to_string();
    assert_ne!(cloned_id, made_id);
    assert_eq!(
        (
            &cloned["name"],
            &cloned["version"],
            &cloned["owner"],
            &cloned["state"],
            &cloned["public"]
        ),
        (
            &json!("shared"),
            &json!("1.0.0"),
            &json!(bob_id),
            &json!("active"),
            &json!(false)
        ),
        "{cloned}"
    );
    assert!(
        cloned.get("acl").is_none_or(|acl| acl == &json!([])),
        "{cloned}"
    );
    // One copy per name and version per owner.
    assert_error(bob.post(&clone_url, &json!({})), 409, "InvalidArgument");
    let (_, _, bobs) = status_json(bob.get("/my/images"));
    assert!(
        bobs.as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == cloned_id.as_str())
    );
    let (_, _, owners) = status_json(api.get("/my/images"));
    assert!(
        !owners
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == cloned_id.as_str())
    );
    // A shared image provisions for the account it is shared with.
    let (status, _, child) = status_json(bob.post(
        "/my/machines",
        &json!({"image": made_id, "package": "small"}),
    ));
    assert_eq!(status, 201, "{child}");
    let unshare = format!("/my/images/{made_id}?action=unshare");
    let (_, _, unshared) = status_json(api.post(&unshare, &json!({"account": bob_id})));
    assert_eq!(unshared["acl"], json!([]));
    assert!(!listed(&bob));
    // The clone is independent: it still provisions once the share is gone,
    // and its owner may delete it.
    let (status, _, from_clone) = status_json(bob.post(
        "/my/machines",
        &json!({"image": cloned_id, "package": "small"}),
    ));
    assert_eq!(status, 201, "{from_clone}");
    assert_error(bob.post(&clone_url, &json!({})), 404, "ResourceNotFound");
    // Import from another datacenter: this site has no peer image stores, so
    // IMGAPI's answer for an unsupported datacenter, its own name included.
    let refused = assert_error(
        api.post(
            &format!("/my/images?action=import-from-datacenter&datacenter=tessera&id={made_id}"),
            &json!({}),
        ),
        422,
        "ValidationFailed",
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("same datacenter"),
        "{refused}"
    );
}

/// Without rules, an account's machines spread over the nodes (Triton's
/// default); a migration's `affinity` rules choose its target as
/// CreateMachine's choose a node, and a bad rule is refused up front.
#[test]
fn machines_spread_by_default_and_migrations_honour_affinity() {
    let (server, api) = setup();
    let image = image_id(&api, "alpine-3.20");
    let a = running(&api, "spread-a", &image);
    let b = running(&api, "spread-b", &image);
    assert_ne!(
        node_of(&api, &a),
        node_of(&api, &b),
        "one machine per node first"
    );
    // Another account's machines do not count for this one's spreading.
    let bob = super::account_with_key(&server, "bob");
    let bobs = running(&bob, "bobs", &image);
    assert!(!node_of(&bob, &bobs).is_empty());

    let path = format!("/my/machines/{a}/migrate");
    assert_error(
        api.post(&path, &json!({"action": "begin", "affinity": ["bogus"]})),
        409,
        "InvalidArgument",
    );
    // Away from spread-b leaves only spread-a's own node: begin fails, saying why.
    let (status, _, begun) = status_json(api.post(
        &path,
        &json!({"action": "begin", "affinity": ["instance!=spread-b"]}),
    ));
    assert_eq!(status, 201, "{begun}");
    let failed = wait_migration(&server, &api, &a, "failed");
    assert_eq!(failed["phase"], "begin");
    assert!(
        failed["error"]
            .to_string()
            .contains("no other compute node"),
        "{failed}"
    );
    // Together with spread-b: the migration moves spread-a onto its node.
    let (status, _, begun) = status_json(api.post(
        &path,
        &json!({"action": "automatic", "affinity": ["instance==spread-b"]}),
    ));
    assert_eq!(status, 201, "{begun}");
    wait_migration(&server, &api, &a, "successful");
    assert_eq!(node_of(&api, &a), node_of(&api, &b));
}

/// Polls GetMigration until `state`.
fn wait_migration(server: &Server, api: &Signer, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, body) = status_json(api.get(&format!("/my/migrations/{id}")));
        assert_eq!(status, 200, "{body}");
        if body["state"] == state {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "never {state}: {body}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn migrations_run_their_phases_as_jobs() {
    let (server, api) = setup();
    let image = image_id(&api, "alpine-3.20");
    let id = running(&api, "mover", &image);
    let node = |api: &Signer| {
        status_json(api.get(&format!("/my/machines/{id}"))).2["compute_node"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = node(&api);
    let path = format!("/my/machines/{id}/migrate");
    assert_error(api.post(&path, &json!({})), 409, "MissingParameter");
    assert_error(
        api.post(&path, &json!({"action": "switch"})),
        409,
        "InvalidState",
    );
    assert_error(
        api.post(&path, &json!({"action": "watch"})),
        404,
        "ResourceNotFound",
    );
    // On demand: each action runs as a job; the migration is `running` meanwhile.
    let (status, _, begun) = status_json(api.post(&path, &json!({"action": "begin"})));
    assert_eq!(
        (status, &begun["phase"], &begun["state"]),
        (201, &json!("begin"), &json!("running"))
    );
    assert_eq!(begun["automatic"], false);
    assert_error(
        api.post(&path, &json!({"action": "begin"})),
        409,
        "InvalidState",
    );
    assert_error(
        api.post(&path, &json!({"action": "sync"})),
        409,
        "InvalidState",
    );
    let paused = wait_migration(&server, &api, &id, "paused");
    assert_eq!(paused["phase"], "begin");
    assert_error(
        api.post(&path, &json!({"action": "pause"})),
        409,
        "InvalidState",
    );
    let (_, _, syncing) = status_json(api.post(&path, &json!({"action": "sync"})));
    assert_eq!(syncing["state"], "running");
    let synced = wait_migration(&server, &api, &id, "paused");
    assert_eq!(synced["phase"], "sync");
    assert_eq!(node(&api), before);
    api.post(&path, &json!({"action": "switch"}));
    // `watch` waits for the action and streams its events, one JSON object a line.
    let watched = api.post(&path, &json!({"action": "watch"}));
    assert_eq!(watched.status(), 200);
    assert_eq!(
        watched.headers()["content-type"],
        "application/x-json-stream"
    );
    let text = watched.text().unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(events.len(), 4, "{text}");
    assert_eq!(
        (&events[3]["type"], &events[3]["state"]),
        (&json!("end"), &json!("successful"))
    );
    let switched = wait_migration(&server, &api, &id, "successful");
    assert_eq!(switched["phase"], "switch");
    assert_eq!(switched["progress_history"].as_array().unwrap().len(), 3);
    assert_ne!(node(&api), before);
    let (_, _, list) = status_json(api.get("/my/migrations"));
    assert_eq!(list[0]["machine"], id.as_str());
    let (_, _, audit) = status_json(api.get(&format!("/my/machines/{id}/audit")));
    assert_eq!(audit[0]["action"], "migrate");
    assert_eq!(
        api.post(&path, &json!({"action": "finalize"})).status(),
        200
    );
    assert_error(
        api.get(&format!("/my/migrations/{id}")),
        404,
        "ResourceNotFound",
    );

    // Aborting a paused one leaves the machine where it was.
    let here = node(&api);
    api.post(&path, &json!({"action": "begin"}));
    wait_migration(&server, &api, &id, "paused");
    let (_, _, aborted) = status_json(api.post(&path, &json!({"action": "abort"})));
    assert_eq!(aborted["state"], "aborted");
    assert_eq!(node(&api), here);
    assert_error(
        api.post(&path, &json!({"action": "finalize"})),
        409,
        "InvalidState",
    );
    // Automatic runs every phase; a pause stops it between two phases.
    let (status, _, auto) = status_json(api.post(&path, &json!({"action": "automatic"})));
    assert_eq!(
        (status, &auto["state"], &auto["automatic"]),
        (201, &json!("running"), &json!(true))
    );
    let (status, _, pausing) = status_json(api.post(&path, &json!({"action": "pause"})));
    assert_eq!((status, &pausing["state"]), (200, &json!("running")));
    let stopped = wait_migration(&server, &api, &id, "paused");
    assert_ne!(stopped["phase"], "switch");
    assert_eq!(node(&api), here);
    api.post(&path, &json!({"action": "switch"}));
    wait_migration(&server, &api, &id, "successful");
    assert_ne!(node(&api), here);
    api.post(&path, &json!({"action": "finalize"}));
    // An abort while running ends it at the next phase boundary, machine unmoved.
    let there = node(&api);
    api.post(&path, &json!({"action": "automatic"}));
    let (status, _, _) = status_json(api.post(&path, &json!({"action": "abort"})));
    assert_eq!(status, 200);
    let ended = wait_migration(&server, &api, &id, "aborted");
    assert_eq!(ended["phase"], "abort");
    assert_eq!(node(&api), there);
    // Automatic to the end, watched.
    api.post(&path, &json!({"action": "automatic"}));
    let text = api.post(&path, &json!({"action": "watch"})).text().unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        (&last["type"], &last["state"]),
        (&json!("end"), &json!("successful"))
    );
    assert_ne!(node(&api), there);
    assert_error(
        api.post(&path, &json!({"action": "fly"})),
        409,
        "InvalidArgument",
    );
}

#[test]
fn operator_packages_from_the_cli_join_the_settings_packages() {
    let (server, api) = setup();
    let out = crate::harness::cli_ok(
        &server.data_dir(),
        &[
            "package",
            "add",
            "cli-2G",
            "--memory",
            "2048",
            "--disk",
            "20480",
            "--vcpus",
            "2",
            "--swap",
            "4096",
            "--version",
            "2.1.0",
            "--group",
            "general",
            "--description",
            "Two gigabytes",
        ],
        "",
    );
    assert!(out.contains("cli-2G"), "{out}");
    let listed = crate::harness::cli_ok(&server.data_dir(), &["package", "list", "--json"], "");
    assert!(listed.contains("\"cli-2G\""), "{listed}");
    let (_, _, packages) = status_json(api.get("/my/packages"));
    let names: Vec<&str> = packages
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cli-2G", "huge", "medium", "small"]);
    let (_, _, one) = status_json(api.get("/my/packages/cli-2G"));
    assert_eq!(
        (&one["memory"], &one["swap"], &one["vcpus"]),
        (&json!(2048), &json!(4096), &json!(2))
    );
    assert_eq!(
        (&one["version"], &one["group"], &one["description"]),
        (&json!("2.1.0"), &json!("general"), &json!("Two gigabytes"))
    );
    let (_, _, grouped) = status_json(api.get("/my/packages?group=general"));
    assert_eq!(grouped.as_array().unwrap().len(), 1);
    let image = image_id(&api, "alpine-3.20");
    let made = create(&api, json!({"image": image, "package": "cli-2G"}));
    assert_eq!(
        (&made["memory"], &made["package"]),
        (&json!(2048), &json!("cli-2G"))
    );
    crate::harness::cli_ok(&server.data_dir(), &["package", "remove", "cli-2G"], "");
    assert_error(api.get("/my/packages/cli-2G"), 404, "ResourceNotFound");
    let (code, _, _) = crate::harness::run_cli(&[
        "package",
        "add",
        "zero",
        "--memory",
        "0",
        "--disk",
        "1",
        "--data-dir",
        server.data_dir().to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
}

/// RBAC from part 1 on machines: a sub-user acts on a machine only through a role
/// tagged on it (which covers its tags, metadata and audit) with a rule for the action.
#[test]
fn role_tagged_machines_and_images_gate_sub_users() {
    let (server, alice) = setup();
    let image = image_id(&alice, "alpine-3.20");
    let tagged = running(&alice, "tagged", &image);
    let other = running(&alice, "other", &image);
    let created = alice.post(
        "/my/users",
        &json!({"login": "bob", "email": "bob@example.com", "password": "secret123secret"}),
    );
    assert_eq!(created.status(), 201);
    let key = super::KeyPair::generate("ecdsa");
    assert_eq!(
        alice
            .post("/my/users/bob/keys", &json!({"key": key.public}))
            .status(),
        201
    );
    let policy = alice.post(
        "/my/policies",
        &json!({"name": "ops", "rules": ["CAN getmachine, listmachinetags, machineaudit and stopmachine", "CAN getimage"]}),
    );
    assert_eq!(policy.status(), 201);
    let role = alice.post(
        "/my/roles",
        &json!({"name": "ops", "members": [{"type": "subuser", "login": "bob", "default": true}], "policies": [{"name": "ops"}]}),
    );
    assert_eq!(role.status(), 201);
    for path in [
        format!("/my/machines/{tagged}"),
        format!("/my/images/{image}"),
    ] {
        let r = alice.send("PUT", &path, Some(&json!({"role-tag": ["ops"]})));
        assert_eq!(r.status(), 200, "{path}");
    }
    let bob = Signer::new(&server, &format!("/alice/users/bob/keys/{}", key.md5), key);
    let status = |method: &str, path: &str, body: Option<Value>| {
        bob.send(method, path, body.as_ref()).status().as_u16()
    };
    assert_eq!(
        status("GET", &format!("/alice/machines/{tagged}"), None),
        200
    );
    assert_eq!(
        status("GET", &format!("/alice/machines/{tagged}/tags"), None),
        200
    );
    assert_eq!(
        status("GET", &format!("/alice/machines/{tagged}/audit"), None),
        200
    );
    assert_eq!(status("GET", &format!("/alice/images/{image}"), None), 200);
    // Not tagged, or no rule for the action.
    assert_eq!(
        status("GET", &format!("/alice/machines/{other}"), None),
        403
    );
    assert_eq!(status("GET", "/alice/machines", None), 403);
    assert_eq!(
        status("DELETE", &format!("/alice/machines/{tagged}"), None),
        403
    );
    assert_eq!(
        status(
            "POST",
            &format!("/alice/machines/{tagged}/tags"),
            Some(json!({"a": "b"}))
        ),
        403
    );
    // Each machine action is its own RBAC action: stop is allowed, start is not.
    assert_eq!(
        status(
            "POST",
            &format!("/alice/machines/{tagged}"),
            Some(json!({"action": "reboot"}))
        ),
        403
    );
    assert_eq!(
        status(
            "POST",
            &format!("/alice/machines/{tagged}"),
            Some(json!({"action": "stop"}))
        ),
        202
    );
    wait_state(&alice, &tagged, "stopped");
}
