//! The hypervisor primitive through a plugin and the CLI: VMs on the `sim`
//! backend move through their states as kernel jobs; illegal transitions and
//! impossible sizes get typed errors.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, cli_ok, client, hello_vm_act, json, test_site, wait_hello_vm};

fn wait_state(server: &Server, id: &str, state: &str) -> Value {
    wait_hello_vm(server, id, state, Duration::from_secs(30))
}

fn act(server: &Server, id: &str, action: &str) -> reqwest::blocking::Response {
    hello_vm_act(server, id, action)
}

#[test]
fn a_vm_is_provisioned_stopped_started_and_deleted() {
    let server = Server::with_site(&test_site());
    let created = client()
        .post(server.url("/hello/vms"))
        .json(&json!({"name": "web-1", "image": "alpine-3.20"}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 202);
    let created = json(created);
    let id = created["id"].as_str().unwrap().to_string();
    assert!(created["job"].is_string());
    let running = wait_state(&server, &id, "running");
    assert_eq!(running["ips"].as_array().unwrap().len(), 1, "{running}");

    assert_eq!(
        act(&server, &id, "start").status(),
        409,
        "start a running vm"
    );
    assert_eq!(act(&server, &id, "stop").status(), 202);
    wait_state(&server, &id, "stopped");
    assert_eq!(act(&server, &id, "stop").status(), 409, "stop a stopped vm");
    assert_eq!(act(&server, &id, "start").status(), 202);
    wait_state(&server, &id, "running");

    let listed = cli_ok(
        &server.data_dir(),
        &["vm", "list", "--owner", "hello", "--json"],
        "",
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());

    assert_eq!(act(&server, &id, "delete").status(), 202);
    wait_state(&server, &id, "deleted");
}

#[test]
fn impossible_requests_get_typed_errors() {
    let server = Server::with_site(&test_site());
    let too_big = client()
        .post(server.url("/hello/vms"))
        .json(&json!({"name": "huge", "image": "alpine-3.20", "cpus": 512, "ram_mib": 99999999}))
        .send()
        .unwrap();
    assert_eq!(too_big.status(), 503, "no node has room");
    let no_image = client()
        .post(server.url("/hello/vms"))
        .json(&json!({"name": "x", "image": "no-such-image"}))
        .send()
        .unwrap();
    assert_eq!(no_image.status(), 400);
    let absurd = client()
        .post(server.url("/hello/vms"))
        .json(&json!({"name": "y", "image": "alpine-3.20", "cpus": 100000}))
        .send()
        .unwrap();
    assert_eq!(
        absurd.status(),
        400,
        "beyond any machine: invalid, not capacity"
    );
    assert_eq!(
        act(&server, "00000000-0000-4000-8000-000000000000", "start").status(),
        404
    );
    assert_eq!(act(&server, "whatever", "dance").status(), 400);
}

#[test]
fn the_cli_shows_the_seeded_inventory_and_imports_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nodes = cli_ok(d, &["node", "list", "--json"], "");
    let nodes: Value = serde_json::from_str(&nodes).unwrap();
    assert!(
        !nodes.as_array().unwrap().is_empty(),
        "a fresh site has nodes"
    );
    let file = d.join("disk.img");
    std::fs::write(&file, vec![0u8; 3 * 1024 * 1024]).unwrap();
    let out = cli_ok(
        d,
        &[
            "image",
            "import",
            file.to_str().unwrap(),
            "--name",
            "custom",
            "--version",
            "1.0",
            "--public",
        ],
        "",
    );
    assert!(out.starts_with("imported "), "{out}");
    let images: Value = serde_json::from_str(&cli_ok(d, &["image", "list", "--json"], "")).unwrap();
    let custom = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "custom")
        .expect("imported");
    assert_eq!(custom["size_mib"], 3);
}
