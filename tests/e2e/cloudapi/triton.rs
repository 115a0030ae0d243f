//! The real `triton` CLI (npm `triton`, 7.x), unchanged, against the server on loopback:
//! an unencrypted key in `$HOME/.ssh`, no ssh-agent, `-U/-a/-k`. `.ci/run` installs it
//! under `target/triton`; elsewhere these tests skip with a message when it is absent
//! (or `TRITON_CLI` names the binary to use).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::{KeyPair, Signer, add_account, add_key, site, status_json};
use crate::harness::Server;

fn triton_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TRITON_CLI") {
        return Some(PathBuf::from(path));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .to_path_buf();
    let installed = workspace.join("target/triton/node_modules/.bin/triton");
    if installed.exists() {
        return Some(installed);
    }
    let on_path = Command::new("sh")
        .args(["-c", "command -v triton"])
        .output()
        .ok()?;
    on_path
        .status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&on_path.stdout).trim()))
}

/// A HOME with `.ssh/id_rsa(.pub)` (PEM, as the spec's set-up makes it), the account
/// `alice` holding that key, and the CLI.
struct Triton {
    bin: PathBuf,
    home: tempfile::TempDir,
    md5: String,
    server: Server,
}

impl Triton {
    fn setup() -> Option<Triton> {
        let Some(bin) = triton_bin() else {
            eprintln!(
                "SKIPPED: the triton CLI is not installed (`npm install --prefix target/triton triton@7`, or set TRITON_CLI)"
            );
            return None;
        };
        let server = site("");
        add_account(&server, "alice");
        let home = tempfile::tempdir().expect("temp home");
        let ssh = home.path().join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        let status = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "rsa",
                "-b",
                "2048",
                "-m",
                "PEM",
                "-N",
                "",
                "-C",
                "triton-e2e",
                "-f",
            ])
            .arg(ssh.join("id_rsa"))
            .status()
            .expect("ssh-keygen");
        assert!(status.success());
        let file = ssh.join("id_rsa.pub");
        let out = crate::harness::cli_ok(
            &server.data_dir(),
            &[
                "key",
                "add",
                "alice",
                "--name",
                "id_rsa",
                "--file",
                file.to_str().unwrap(),
            ],
            "",
        );
        let md5 = out.lines().next().unwrap().trim().to_string();
        Some(Triton {
            bin,
            home,
            md5,
            server,
        })
    }

    /// Run `triton -U URL -a alice -k MD5 ARGS…`; asserts exit 0 and returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(
            code, 0,
            "triton {args:?} failed:\nstdout: {out}\nstderr: {err}"
        );
        out
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(&self.bin)
            .args(["-U", &self.server.base, "-a", "alice", "-k", &self.md5])
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("TRITON_PROFILE")
            .env_remove("TRITON_URL")
            .env_remove("TRITON_ACCOUNT")
            .env_remove("TRITON_KEY_ID")
            .env_remove("TRITON_USER")
            .env_remove("SDC_URL")
            .env_remove("SDC_ACCOUNT")
            .env_remove("SDC_KEY_ID")
            .env_remove("SDC_USER")
            .env("NO_COLOR", "1")
            .output()
            .expect("run triton");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// A signer with the same key, for setting up through the API.
    fn api(&self) -> Signer {
        let key = KeyPair::generate("ed25519");
        add_key(&self.server, "alice", "api", &key);
        Signer::new(&self.server, &format!("/alice/keys/{}", key.md5), key)
    }
}

#[test]
fn triton_account_get_and_update() {
    let Some(t) = Triton::setup() else { return };
    let out = t.ok(&["account", "get"]);
    assert!(out.contains("login: alice"), "{out}");
    assert!(out.contains("email: alice@example.com"), "{out}");
    let out = t.ok(&[
        "account",
        "update",
        "postalCode=12345",
        "phone=1 (234) 567 890",
    ]);
    assert!(out.contains("Updated account \"alice\""), "{out}");
    let json = t.ok(&["account", "get", "-j"]);
    let account: serde_json::Value = serde_json::from_str(json.trim()).expect("JSON");
    assert_eq!(account["postalCode"], "12345");
    assert_eq!(account["phone"], "1 (234) 567 890");
}

#[test]
fn triton_key_list_add_and_delete() {
    let Some(t) = Triton::setup() else { return };
    let out = t.ok(&["key", "list"]);
    assert!(out.contains(&t.md5) && out.contains("id_rsa"), "{out}");
    let extra = KeyPair::generate("ed25519");
    let out = t.ok(&[
        "key",
        "add",
        "--name=extra",
        extra.public_file.to_str().unwrap(),
    ]);
    assert!(out.contains("Added key \"extra\""), "{out}");
    let out = t.ok(&["key", "list", "-j"]);
    assert!(out.contains(&extra.md5), "{out}");
    let out = t.ok(&["key", "delete", "-y", "extra"]);
    assert!(out.contains("Deleted key \"extra\""), "{out}");
    assert!(!t.ok(&["key", "list"]).contains("extra"));
}

#[test]
fn triton_datacenters_and_services() {
    let Some(t) = Triton::setup() else { return };
    let out = t.ok(&["datacenters"]);
    assert!(
        out.contains("NAME") && out.contains("tessera") && out.contains(&t.server.base),
        "{out}"
    );
    let out = t.ok(&["services"]);
    assert!(
        out.contains("cloudapi") && out.contains(&t.server.base),
        "{out}"
    );
}

#[test]
fn triton_rbac_users_user_roles_policies_and_info() {
    let Some(t) = Triton::setup() else { return };
    let api = t.api();
    let created = api.post(
        "/my/users",
        &json!({"login": "bob", "email": "bob@example.com", "password": "secret123secret", "firstName": "Bob"}),
    );
    assert_eq!(created.status(), 201);
    let key = KeyPair::generate("rsa");
    assert_eq!(
        api.post("/my/users/bob/keys", &json!({"key": key.public}))
            .status(),
        201
    );
    let (status, _, body) = status_json(api.post(
        "/my/policies",
        &json!({"name": "readonly", "description": "cloudapi read-only", "rules": ["can listmachines and getmachine"]}),
    ));
    assert_eq!(status, 201, "{body}");
    let role = api.post(
        "/my/roles",
        &json!({"name": "readers", "members": [{"type": "subuser", "login": "bob", "default": true}], "policies": [{"name": "readonly"}]}),
    );
    assert_eq!(role.status(), 201);

    let out = t.ok(&["rbac", "users"]);
    assert!(
        out.contains("LOGIN") && out.contains("bob") && out.contains("bob@example.com"),
        "{out}"
    );
    let out = t.ok(&["rbac", "user", "bob"]);
    assert!(
        out.contains("login: bob") && out.contains("email: bob@example.com"),
        "{out}"
    );
    let out = t.ok(&["rbac", "user", "--roles", "--keys", "bob"]);
    assert!(
        out.contains("roles:") && out.contains("    readers") && out.contains(&key.md5),
        "{out}"
    );
    let out = t.ok(&["rbac", "roles"]);
    assert!(
        out.contains("readers") && out.contains("readonly") && out.contains("alice/bob"),
        "{out}"
    );
    let out = t.ok(&["rbac", "policies"]);
    assert!(
        out.contains("readonly") && out.contains("cloudapi read-only"),
        "{out}"
    );
    let out = t.ok(&["rbac", "info"]);
    assert!(out.contains("users (1):"), "{out}");
    // triton 7.17 prints roles it cannot tell are default as `[, name]`, and an API 9
    // role's policy objects as `[object Object]`: its own formatting of the spec's shapes.
    assert!(
        out.contains("bob (Bob): role") && out.contains("readers"),
        "{out}"
    );
    assert!(
        out.contains("roles (1):") && out.contains("readers: policy"),
        "{out}"
    );
    assert!(
        out.contains("policies (1):") && out.contains("readonly (cloudapi read-only) rules:"),
        "{out}"
    );
    assert!(out.contains("can listmachines and getmachine"), "{out}");
}

#[test]
fn triton_reports_a_missing_resource_as_an_error() {
    let Some(t) = Triton::setup() else { return };
    let (code, _, err) = t.run(&["rbac", "user", "nobody"]);
    assert_ne!(code, 0);
    assert!(err.contains("nobody"), "{err}");
}

#[test]
fn triton_images_and_packages() {
    let Some(t) = Triton::setup() else { return };
    let out = t.ok(&["image", "list"]);
    assert!(
        out.contains("alpine-3.20") && out.contains("debian-12"),
        "{out}"
    );
    let out = t.ok(&["image", "get", "alpine-3.20"]);
    assert!(out.contains("\"name\": \"alpine-3.20\""), "{out}");
    let out = t.ok(&["package", "list"]);
    assert!(
        out.contains("sample-1G") && out.contains("sample-512M"),
        "{out}"
    );
}

/// `triton instance …` end to end, every wait polling the real endpoints.
#[test]
fn triton_instance_lifecycle() {
    let Some(t) = Triton::setup() else { return };
    let out = t.ok(&[
        "instance",
        "create",
        "-w",
        "alpine-3.20",
        "sample-512M",
        "-n",
        "web1",
        "-t",
        "role=web",
        "-m",
        "greeting=hello",
    ]);
    assert!(out.contains("Created instance web1"), "{out}");
    let out = t.ok(&["instance", "list", "-o", "name,state,package,memory"]);
    assert!(
        out.contains("web1") && out.contains("running") && out.contains("sample-512M"),
        "{out}"
    );
    let out = t.ok(&["instance", "list", "state=running", "-H", "-o", "name"]);
    assert_eq!(out.trim(), "web1");
    let out = t.ok(&["instance", "list", "state=stopped", "-H", "-o", "name"]);
    assert_eq!(out.trim(), "");
    let json = t.ok(&["instance", "get", "-j", "web1"]);
    let machine: serde_json::Value = serde_json::from_str(json.trim()).expect("JSON");
    assert_eq!(machine["tags"]["role"], "web");
    assert_eq!(machine["metadata"]["greeting"], "hello");

    // Tags and metadata.
    let out = t.ok(&["instance", "tag", "set", "web1", "env=prod"]);
    assert!(out.contains("env"), "{out}");
    let out = t.ok(&["instance", "tag", "list", "web1"]);
    assert!(
        out.contains("\"role\": \"web\"") && out.contains("\"env\": \"prod\""),
        "{out}"
    );
    t.ok(&["instance", "tag", "delete", "web1", "env"]);
    assert!(!t.ok(&["instance", "tag", "list", "web1"]).contains("env"));
    t.ok(&["instance", "metadata", "set", "web1", "color=blue"]);
    let out = t.ok(&["instance", "metadata", "list", "web1"]);
    assert!(out.contains("\"color\": \"blue\""), "{out}");
    t.ok(&["instance", "metadata", "delete", "-f", "web1", "color"]);
    assert!(
        !t.ok(&["instance", "metadata", "list", "web1"])
            .contains("color")
    );

    // Snapshots and disks.
    t.ok(&["instance", "snapshot", "create", "--name", "snap1", "web1"]);
    let out = t.ok(&["instance", "snapshot", "list", "web1"]);
    assert!(out.contains("snap1") && out.contains("created"), "{out}");
    t.ok(&[
        "instance", "snapshot", "delete", "-w", "-f", "web1", "snap1",
    ]);
    assert!(
        !t.ok(&["instance", "snapshot", "list", "web1"])
            .contains("snap1")
    );

    // Power, disks (a stopped machine's) and size.
    t.ok(&["instance", "stop", "-w", "web1"]);
    assert!(
        t.ok(&["instance", "get", "web1"])
            .contains("\"state\": \"stopped\"")
    );
    t.ok(&["instance", "disk", "add", "web1", "1024"]);
    let out = t.ok(&["instance", "disk", "list", "web1"]);
    assert!(
        out.contains("1024") && out.contains("10240") && out.contains("0:4:1"),
        "{out}"
    );
    let out = t.ok(&["instance", "resize", "-w", "web1", "sample-1G"]);
    assert!(out.contains("Resized instance web1"), "{out}");
    t.ok(&["instance", "start", "-w", "web1"]);
    t.ok(&["instance", "reboot", "-w", "web1"]);
    t.ok(&["instance", "rename", "-w", "web1", "web2"]);
    let json = t.ok(&["instance", "get", "-j", "web2"]);
    let machine: serde_json::Value = serde_json::from_str(json.trim()).expect("JSON");
    assert_eq!(
        (&machine["state"], &machine["memory"]),
        (&json!("running"), &json!(1024))
    );
    let out = t.ok(&["instance", "audit", "web2"]);
    for action in ["provision", "stop", "resize", "start", "reboot", "rename"] {
        assert!(out.contains(action), "{action} in {out}");
    }

    // Deletion protection, then delete.
    t.ok(&["instance", "enable-deletion-protection", "-w", "web2"]);
    let (code, _, err) = t.run(&["instance", "delete", "-w", "-f", "web2"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("deletion_protection") || err.contains("CannotDestroyMachine"),
        "{err}"
    );
    t.ok(&["instance", "disable-deletion-protection", "-w", "web2"]);
    let out = t.ok(&["instance", "delete", "-w", "-f", "web2"]);
    assert!(out.contains("Delete instance web2"), "{out}");
    assert_eq!(t.ok(&["instance", "list", "-H", "-o", "name"]).trim(), "");
    let (code, _, err) = t.run(&["instance", "get", "web2"]);
    assert_eq!(code, 3, "{err}");
}

/// JSON lines (what `-j` lists print) as values.
fn json_lines(out: &str) -> Vec<serde_json::Value> {
    let trimmed = out.trim();
    if trimmed.starts_with('[') {
        return serde_json::from_str::<Vec<serde_json::Value>>(trimmed).expect("JSON array");
    }
    trimmed
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn triton_networks_vlans_and_fabric_networks() {
    let Some(t) = Triton::setup() else { return };
    let out = t.ok(&["network", "list"]);
    assert!(out.contains("public") && out.contains("private"), "{out}");
    let out = t.ok(&["network", "get", "private"]);
    assert!(out.contains("192.168.128.0/22"), "{out}");
    let out = t.ok(&["network", "ip", "list", "private"]);
    assert!(out.contains("192.168.128.1"), "{out}");

    let out = t.ok(&["vlan", "create", "--name=web", "--description=front", "100"]);
    assert!(out.contains("Created vlan web (100)"), "{out}");
    let vlans = json_lines(&t.ok(&["vlan", "list", "-j"]));
    assert_eq!(vlans.len(), 1);
    assert_eq!(vlans[0]["name"], "web");
    let out = t.ok(&[
        "network",
        "create",
        "--name=webnet",
        "--subnet=10.50.1.0/24",
        "--start-ip=10.50.1.5",
        "--end-ip=10.50.1.20",
        "--gateway=10.50.1.1",
        "--resolver=8.8.8.8",
        "100",
    ]);
    assert!(out.contains("Created network webnet"), "{out}");
    let nets = json_lines(&t.ok(&["network", "list", "-j"]));
    let webnet = nets
        .iter()
        .find(|n| n["name"] == "webnet")
        .expect("webnet listed");
    assert_eq!(
        (webnet["fabric"].as_bool(), webnet["vlan_id"].as_u64()),
        (Some(true), Some(100))
    );
    let (code, _, err) = t.run(&["vlan", "delete", "100"]);
    assert_ne!(code, 0, "a VLAN with a network is not deleted");
    assert!(err.contains("InUse") || err.contains("networks"), "{err}");
    let out = t.ok(&["network", "delete", "webnet"]);
    assert!(out.contains("Deleted network"), "{out}");
    let out = t.ok(&["vlan", "delete", "100"]);
    assert!(out.contains("Deleted vlan 100"), "{out}");
    assert!(json_lines(&t.ok(&["vlan", "list", "-j"])).is_empty());
}

#[test]
fn triton_fwrules() {
    let Some(t) = Triton::setup() else { return };
    let out = t.ok(&[
        "fwrule",
        "create",
        "-D",
        "ssh in",
        "FROM any TO all vms ALLOW tcp port 22",
    ]);
    assert!(out.contains("Created firewall rule"), "{out}");
    let rules = json_lines(&t.ok(&["fwrule", "list", "-j"]));
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["rule"], "FROM any TO all vms ALLOW tcp PORT 22");
    assert_eq!(rules[0]["enabled"], true);
    let id = rules[0]["id"].as_str().unwrap().to_string();
    let out = t.ok(&["fwrule", "disable", &id]);
    assert!(out.contains("Disabled firewall rule"), "{out}");
    let got: serde_json::Value =
        serde_json::from_str(t.ok(&["fwrule", "get", "-j", &id]).trim()).unwrap();
    assert_eq!(got["enabled"], false);
    let out = t.ok(&["fwrule", "enable", &id]);
    assert!(out.contains("Enabled firewall rule"), "{out}");
    let (code, _, err) = t.run(&["fwrule", "create", "FROM any TO all vms ALLOW tcp PORT 0"]);
    assert_ne!(code, 0);
    assert!(err.contains("character"), "{err}");
    let out = t.ok(&["fwrule", "delete", "-f", &id]);
    assert!(out.contains("Deleted rule"), "{out}");
    assert!(json_lines(&t.ok(&["fwrule", "list", "-j"])).is_empty());
}

#[test]
fn triton_volumes() {
    let Some(t) = Triton::setup() else { return };
    let out = t.ok(&["volume", "sizes"]);
    assert!(out.contains("10G") || out.contains("10240"), "{out}");
    t.ok(&["vlan", "create", "--name=storage", "10"]);
    t.ok(&[
        "network",
        "create",
        "--name=storage",
        "--subnet=10.10.0.0/24",
        "--start-ip=10.10.0.10",
        "--end-ip=10.10.0.20",
        "--no-nat",
        "10",
    ]);
    let out = t.ok(&["volume", "create", "-n", "data", "-s", "20G", "-w"]);
    assert!(out.contains("Created volume data"), "{out}");
    let listed = json_lines(&t.ok(&["volume", "list", "-j"]));
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0]["name"].as_str(), listed[0]["state"].as_str()),
        (Some("data"), Some("ready"))
    );
    let got: serde_json::Value =
        serde_json::from_str(t.ok(&["volume", "get", "data"]).trim()).unwrap();
    assert_eq!(got["size"], 20480);
    let out = t.ok(&["volume", "delete", "-y", "-w", "data"]);
    assert!(out.contains("Deleted volume"), "{out}");
    assert!(json_lines(&t.ok(&["volume", "list", "-j"])).is_empty());
}

/// `triton image create -w` (the image is `creating` until its job ends),
/// `image share` / `unshare` (UpdateImage with `acl`) and a hard-affinity
/// `instance create -a`.
#[test]
fn triton_image_create_share_and_affinity() {
    let Some(t) = Triton::setup() else { return };
    t.ok(&[
        "instance",
        "create",
        "-w",
        "alpine-3.20",
        "sample-512M",
        "-n",
        "golden",
    ]);
    let out = t.ok(&["image", "create", "-w", "golden", "golden-img", "1.0.0"]);
    assert!(out.contains("Created image"), "{out}");
    let json = t.ok(&["image", "get", "-j", "golden-img"]);
    let image: serde_json::Value = serde_json::from_str(json.trim()).expect("JSON");
    assert_eq!(image["state"], "active");
    let image_id = image["id"].as_str().unwrap().to_string();
    // An image of that name and version exists: the CLI reports the refusal.
    let (code, _, err) = t.run(&["image", "create", "-w", "golden", "golden-img", "1.0.0"]);
    assert_ne!(code, 0, "{err}");

    let bob = super::account_with_key(&t.server, "bob");
    let bob_id = status_json(bob.get("/my")).2["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = t.ok(&["image", "share", &image_id, &bob_id]);
    assert!(out.contains("Shared image"), "{out}");
    let (_, _, seen) = status_json(bob.get(&format!("/my/images/{image_id}")));
    assert_eq!(seen["acl"], json!([bob_id]));
    let json = t.ok(&["image", "get", "-j", &image_id]);
    assert!(json.contains(&bob_id), "{json}");
    t.ok(&["image", "unshare", &image_id, &bob_id]);
    let (status, _, _) = status_json(bob.get(&format!("/my/images/{image_id}")));
    assert_eq!(status, 404);

    // `triton image clone`: bob's image, shared with the CLI's account, becomes its own.
    let alpine = super::machine_networking::image_id(&bob);
    let bobs_vm = super::machine_networking::running(
        &bob,
        json!({"image": alpine, "package": "sample-512M", "name": "bobs"}),
    );
    let (status, _, made) = status_json(bob.post(
        "/my/images",
        &json!({"machine": bobs_vm, "name": "bobs-img", "version": "2.0.0"}),
    ));
    assert_eq!(status, 201, "{made}");
    let bobs_image = made["id"].as_str().unwrap().to_string();
    super::machines::wait_image(&bob, &bobs_image, "active");
    let alice_id = status_json(t.api().get("/my")).2["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, _) = status_json(bob.post(
        &format!("/my/images/{bobs_image}?action=share"),
        &json!({"account": alice_id}),
    ));
    assert_eq!(status, 200);
    let out = t.ok(&["image", "clone", "-j", &bobs_image]);
    let clone: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(
        (&clone["name"], &clone["owner"], &clone["state"]),
        (&json!("bobs-img"), &json!(alice_id), &json!("active")),
        "{clone}"
    );
    assert_ne!(clone["id"], json!(bobs_image));
    let (code, _, err) = t.run(&["image", "clone", &bobs_image]);
    assert_ne!(code, 0, "a second copy of the same name and version: {err}");

    // Hard affinity: away from golden, so on the other sim node.
    t.ok(&[
        "instance",
        "create",
        "-w",
        "-a",
        "instance!=golden",
        "alpine-3.20",
        "sample-512M",
        "-n",
        "apart",
    ]);
    let node = |name: &str| -> String {
        let json = t.ok(&["instance", "get", "-j", name]);
        let machine: serde_json::Value = serde_json::from_str(json.trim()).expect("JSON");
        machine["compute_node"].as_str().unwrap().to_string()
    };
    assert_ne!(node("apart"), node("golden"));
    let (code, _, err) = t.run(&[
        "instance",
        "create",
        "-a",
        "instance==nobody",
        "alpine-3.20",
        "sample-512M",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("affinity"), "{err}");
}

#[test]
fn triton_instance_nics_fwrules_and_changefeed() {
    let Some(t) = Triton::setup() else { return };
    let api = t.api();
    let out = t.ok(&[
        "instance",
        "create",
        "-w",
        "alpine-3.20",
        "sample-512M",
        "-n",
        "web1",
        "-t",
        "role=web",
    ]);
    assert!(out.contains("Created instance web1"), "{out}");
    let machine: serde_json::Value =
        serde_json::from_str(t.ok(&["instance", "get", "-j", "web1"]).trim()).unwrap();
    let id = machine["id"].as_str().unwrap().to_string();
    let (status, _, _) = status_json(api.post(
        "/my/fabrics/default/vlans",
        &json!({"name": "back", "vlan_id": 5}),
    ));
    assert_eq!(status, 201);
    let (status, _, net) = status_json(api.post(
        "/my/fabrics/default/vlans/5/networks",
        &json!({"name": "fab5", "subnet": "10.5.0.0/24",
                "provision_start_ip": "10.5.0.10", "provision_end_ip": "10.5.0.20"}),
    ));
    assert_eq!(status, 201, "{net}");

    // NICs: list, create on the fabric network (by name) and wait, get, delete.
    let nics = json_lines(&t.ok(&["instance", "nic", "list", "-j", "web1"]));
    assert_eq!(nics.len(), 1, "{nics:?}");
    assert!(nics[0]["ip"].as_str().unwrap().starts_with("10.88."));
    let out = t.ok(&["instance", "nic", "create", "-w", "web1", "fab5"]);
    assert!(out.contains("Created NIC"), "{out}");
    let nics = json_lines(&t.ok(&["instance", "nic", "list", "-j", "web1"]));
    let added = nics
        .iter()
        .find(|n| n["ip"] == "10.5.0.10")
        .unwrap_or_else(|| panic!("a NIC on fab5: {nics:?}"));
    let mac = added["mac"].as_str().unwrap().to_string();
    let got: serde_json::Value =
        serde_json::from_str(t.ok(&["instance", "nic", "get", "web1", &mac]).trim()).unwrap();
    assert_eq!(
        (&got["network"], &got["netmask"]),
        (&net["id"], &json!("255.255.255.0"))
    );
    let (code, _, err) = t.run(&["instance", "nic", "create", "web1", "no-such-net"]);
    assert_ne!(code, 0, "{err}");
    let out = t.ok(&["instance", "nic", "delete", "-f", "web1", &mac]);
    assert!(out.contains("Deleted NIC"), "{out}");
    assert_eq!(
        json_lines(&t.ok(&["instance", "nic", "list", "-j", "web1"])).len(),
        1
    );
    // A chosen address: `ipv4_uuid=… ipv4_ips=…`.
    let net_id = net["id"].as_str().unwrap();
    let out = t.ok(&[
        "instance",
        "nic",
        "create",
        "-w",
        "web1",
        &format!("ipv4_uuid={net_id}"),
        "ipv4_ips=10.5.0.15",
    ]);
    assert!(out.contains("Created NIC"), "{out}");
    let nics = json_lines(&t.ok(&["instance", "nic", "list", "-j", "web1"]));
    let chosen = nics
        .iter()
        .find(|n| n["ip"] == "10.5.0.15")
        .unwrap_or_else(|| panic!("a NIC at 10.5.0.15: {nics:?}"));
    let chosen_mac = chosen["mac"].as_str().unwrap().to_string();
    t.ok(&["instance", "nic", "delete", "-f", "web1", &chosen_mac]);

    // Which instances a rule applies to, and which rules an instance has.
    t.ok(&[
        "fwrule",
        "create",
        "FROM any TO tag role=web ALLOW tcp PORT 80",
    ]);
    t.ok(&[
        "fwrule",
        "create",
        "FROM any TO tag role=db ALLOW tcp PORT 5432",
    ]);
    let rules = json_lines(&t.ok(&["fwrule", "list", "-j"]));
    let rule_id = |port: &str| -> String {
        rules
            .iter()
            .find(|r| r["rule"].as_str().unwrap().ends_with(port))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (web_rule, db_rule) = (rule_id("PORT 80"), rule_id("PORT 5432"));
    let out = t.ok(&["fwrule", "instances", "-H", "-o", "name", &web_rule]);
    assert_eq!(out.trim(), "web1");
    let out = t.ok(&["fwrule", "instances", "-H", "-o", "name", &db_rule]);
    assert_eq!(out.trim(), "");
    let out = t.ok(&["instance", "fwrules", "-H", "-o", "id", "web1"]);
    assert_eq!(out.trim(), web_rule);
    let (code, _, _) = t.run(&["instance", "fwrules", "no-such-instance"]);
    assert_ne!(code, 0);

    // The changefeed: registered for web1, it sees web1 stop.
    let mut feed = std::process::Command::new(&t.bin)
        .args(["-U", &t.server.base, "-a", "alice", "-k", &t.md5])
        .args(["changefeed", "--json", "--instances", &id])
        .env("HOME", t.home.path())
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("TRITON_PROFILE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("triton changefeed");
    let stdout = feed.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Touch the tags until the feed reports a change: it is registered from then on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let first = loop {
        let touched = api.post(
            &format!("/my/machines/{id}/tags"),
            &json!({"touched": "yes"}),
        );
        assert!(touched.status().is_success());
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(1)) {
            break line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the changefeed said nothing"
        );
    };
    let change: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(change["changedResourceId"], id.as_str(), "{change}");
    assert_eq!(change["changeKind"]["subResources"], json!(["tags"]));
    // Drain what the touching loop caused, then a NIC and metadata change each arrive
    // as their own sub-resource.
    while rx
        .recv_timeout(std::time::Duration::from_millis(500))
        .is_ok()
    {}
    let next_change = || -> serde_json::Value {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a change in time");
        serde_json::from_str(&line).unwrap()
    };
    t.ok(&["instance", "nic", "create", "-w", "web1", "fab5"]);
    assert_eq!(next_change()["changeKind"]["subResources"], json!(["nics"]));
    t.ok(&["instance", "metadata", "set", "web1", "color=blue"]);
    assert_eq!(
        next_change()["changeKind"]["subResources"],
        json!(["customer_metadata"])
    );
    t.ok(&["instance", "stop", "-w", "web1"]);
    let mut states = Vec::new();
    while !states.iter().any(|s| s == "stopped") {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no stop in the changefeed: {states:?}"));
        let change: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(change["changedResourceId"], id.as_str(), "{change}");
        states.push(change["resourceState"].as_str().unwrap_or("").to_string());
    }
    assert!(states.contains(&"stopping".to_string()), "{states:?}");
    let _ = feed.kill();
    let _ = feed.wait();
}

/// `triton instance migration begin|sync|switch -w`, `list`, `get` and `finalize`:
/// each action runs as a job and `-w` follows the `watch` stream.
#[test]
fn triton_instance_migration() {
    let Some(t) = Triton::setup() else { return };
    t.ok(&[
        "instance",
        "create",
        "-w",
        "alpine-3.20",
        "sample-512M",
        "-n",
        "mover",
    ]);
    let node = || -> String {
        let json = t.ok(&["instance", "get", "-j", "mover"]);
        let machine: serde_json::Value = serde_json::from_str(json.trim()).expect("JSON");
        machine["compute_node"].as_str().unwrap().to_string()
    };
    let before = node();
    let out = t.ok(&["instance", "migration", "begin", "-w", "mover"]);
    assert!(out.contains("Done - begin finished"), "{out}");
    let out = t.ok(&["instance", "migration", "sync", "-w", "mover"]);
    assert!(out.contains("Done - sync finished"), "{out}");
    let out = t.ok(&["instance", "migration", "switch", "-w", "mover"]);
    assert!(out.contains("Done - switch finished"), "{out}");
    assert_ne!(node(), before);
    let out = t.ok(&["instance", "migration", "list"]);
    assert!(out.contains("successful"), "{out}");
    let out = t.ok(&["instance", "migration", "get", "mover"]);
    assert!(out.contains("successful"), "{out}");
    t.ok(&["instance", "migration", "finalize", "mover"]);
    let (code, _, _) = t.run(&["instance", "migration", "get", "mover"]);
    assert_ne!(code, 0);
    let out = t.ok(&["instance", "migration", "automatic", "-w", "mover"]);
    assert!(out.contains("Done - switch finished"), "{out}");
    assert_eq!(node(), before);
}
