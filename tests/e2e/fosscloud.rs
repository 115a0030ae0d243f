//! The FOSS-Cloud vm-manager API over real HTTP: one test per code of the
//! spec, the admin routes, sealed VNC passwords, and assignment races.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, cli_ok, client};

const PASSWORD: &str = "correct horse battery staple";
const LAB: &str = "57e3bd10-1934-4b4f-3d4c-6e31473bddab";
const SOLO: &str = "11111111-2222-4333-8444-555555555555";
const OFFICE: &str = "5750786d-045c-4d3c-85c3-4c169aabcc7b";
const CLASSROOM: &str = "c1a55000-0000-4000-8000-000000000001";
const MAC_1: &str = "52:54:00:00:00:01";
const MAC_2: &str = "52:54:00:00:00:02";

/// The test site: fosscloud at its product path with seeded pools, groups,
/// mappings and peers; `flags` are extra lines of its settings table.
fn site_toml(flags: &str) -> String {
    format!(
        r#"
log = "info"
[hypervisor.sim]
transition_delay_ms = 0

[plugins.fosscloud]
source = "fosscloud"
mounts = ["/vm-manager/api"]
grants = ["storage", "auth", "hypervisor"]

[plugins.fosscloud.settings]
{flags}

[[plugins.fosscloud.settings.pools]]
id = "{LAB}"
name = "DynVm-Test"
type = "dynamic"
image = "alpine-3.20"
size = 2
users = ["alice"]
groups = ["students"]
os = "windows"

[[plugins.fosscloud.settings.pools]]
id = "{SOLO}"
name = "Solo"
type = "dynamic"
image = "alpine-3.20"
size = 1
users = ["alice", "bob", "carol"]

[[plugins.fosscloud.settings.pools]]
id = "{OFFICE}"
name = "Office"
type = "persistent"
image = "alpine-3.20"
subtype = "Desktop"
vms = [{{ name = "Test_Machine", owner = "alice" }}]

[[plugins.fosscloud.settings.pools]]
id = "{CLASSROOM}"
name = "Classroom"
type = "dynamic"
image = "alpine-3.20"
size = 1
users = ["dynvmuser"]

[[plugins.fosscloud.settings.groups]]
name = "students"
members = ["bob"]

[[plugins.fosscloud.settings.groups]]
name = "auditors"
members = ["lister"]
listAll = true

[[plugins.fosscloud.settings.mappings]]
mac = "{MAC_1}"
pool = "Classroom"

[[plugins.fosscloud.settings.mappings]]
mac = "52-54-00-00-00-02"
pool = "{CLASSROOM}"

[[plugins.fosscloud.settings.peers]]
ip = "127.0.0.1"
mac = "{MAC_1}"
"#
    )
}

struct Site {
    server: Server,
}

impl Site {
    fn start(flags: &str) -> Site {
        Site {
            server: Server::with_site(&site_toml(flags)),
        }
    }

    fn user(&self, login: &str, extra: &[&str]) {
        let email = format!("{login}@example.com");
        let mut args = vec!["user", "add", login, "--email", &email, "--password-stdin"];
        args.extend_from_slice(extra);
        cli_ok(&self.server.data_dir(), &args, &format!("{PASSWORD}\n"));
    }

    fn url(&self, path: &str) -> String {
        self.server.url(&format!("/vm-manager/api{path}"))
    }

    /// `GET` with basic credentials (the shared test password).
    fn get(&self, path: &str, login: &str) -> (u16, Value) {
        self.get_as(path, Some((login, PASSWORD)))
    }

    fn get_as(&self, path: &str, credentials: Option<(&str, &str)>) -> (u16, Value) {
        let mut request = client().get(self.url(path));
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        answer(request.send().expect("request"))
    }

    fn send(&self, method: &str, path: &str, login: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = client()
            .request(method, self.url(path))
            .basic_auth(login, Some(PASSWORD));
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().expect("request"))
    }
}

fn answer(response: reqwest::blocking::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    (status, response.json().expect("a JSON body"))
}

/// The envelope's status and code (and that the HTTP status matches).
#[track_caller]
fn assert_code(answer: &(u16, Value), code: u64) {
    let (status, body) = answer;
    let expected_status = code / 1000;
    assert_eq!(u64::from(*status), expected_status, "{body}");
    assert_eq!(body["status"], json!(expected_status), "{body}");
    assert_eq!(body["code"], json!(code), "{body}");
    if code / 1000 >= 400 {
        assert!(body["devDescription"].is_string(), "{body}");
    } else {
        assert!(body.get("devDescription").is_none(), "{body}");
    }
}

fn alice_site(flags: &str) -> Site {
    let site = Site::start(flags);
    site.user("alice", &[]);
    site
}

// General codes.

#[test]
fn an_unknown_action_is_404000() {
    let site = alice_site("");
    assert_code(&site.get("/vm/destroy", "alice"), 404_000);
    assert_code(&site.get_as("/", None), 404_000);
    let post = site.send("POST", "/user/login", "alice", None);
    assert_code(&post, 404_000);
}

#[test]
fn unreadable_settings_are_500000() {
    let site = alice_site("macByParamter = true");
    let answer = site.get("/user/login", "alice");
    assert_code(&answer, 500_000);
    assert!(
        answer.1["devDescription"]
            .as_str()
            .unwrap()
            .contains("macByParamter"),
        "{}",
        answer.1
    );
}

#[test]
fn a_disabled_api_is_500022_on_every_request() {
    let site = alice_site("enable = false");
    assert_code(&site.get("/user/login", "alice"), 500_022);
    assert_code(&site.get_as("/server/realms", None), 500_022);
    assert_code(&site.get_as("/no/such/action", None), 500_022);
}

#[test]
fn an_empty_default_realm_is_500023() {
    let site = alice_site(r#"defaultRealm = """#);
    assert_code(&site.get("/user/login", "alice"), 500_023);
    assert_code(&site.get_as("/server/realms", None), 500_023);
}

// Login (1-10).

#[test]
fn right_credentials_log_in_with_200001() {
    let site = alice_site("");
    assert_code(&site.get("/user/login", "alice"), 200_001);
}

#[test]
fn the_realm_suffix_selects_the_realm_on_any_path() {
    let site = Site::start("");
    cli_ok(&site.server.data_dir(), &["realm", "add", "school"], "");
    site.user("carol", &["--realm", "school"]);
    assert_code(&site.get("/user/login/realm/school", "carol"), 200_001);
    assert_code(&site.get("/vm/list/realm/school", "carol"), 200_031);
    assert_code(
        &site.get(&format!("/vm/assign/{SOLO}/realm/school"), "carol"),
        200_041,
    );
    // Without the suffix carol is looked for in the default realm.
    assert_code(&site.get("/user/login", "carol"), 401_003);
}

#[test]
fn the_configured_default_realm_is_used_without_a_suffix() {
    let site = Site::start(r#"defaultRealm = "school""#);
    cli_ok(&site.server.data_dir(), &["realm", "add", "school"], "");
    site.user("carol", &["--realm", "school"]);
    site.user("alice", &[]);
    assert_code(&site.get("/user/login", "carol"), 200_001);
    assert_code(&site.get("/user/login", "alice"), 401_003);
    assert_code(&site.get("/user/login/realm/default", "alice"), 200_001);
}

#[test]
fn no_basic_auth_is_400002() {
    let site = alice_site("");
    assert_code(&site.get_as("/user/login", None), 400_002);
    assert_code(&site.get_as("/vm/list", None), 400_002);
    let bearer = client()
        .get(site.url("/user/login"))
        .bearer_auth("x")
        .send()
        .unwrap();
    assert_code(&answer(bearer), 400_002);
}

#[test]
fn wrong_credentials_are_401003() {
    let site = alice_site("");
    assert_code(
        &site.get_as("/user/login", Some(("alice", "wrong password"))),
        401_003,
    );
    assert_code(
        &site.get_as("/user/login", Some(("nobody", PASSWORD))),
        401_003,
    );
    assert_code(
        &site.get_as(&format!("/vm/assign/{LAB}"), Some(("alice", "nope"))),
        401_003,
    );
}

#[test]
fn a_disabled_account_is_401003() {
    let site = alice_site("");
    cli_ok(&site.server.data_dir(), &["user", "disable", "alice"], "");
    assert_code(&site.get("/user/login", "alice"), 401_003);
}

#[test]
fn an_unknown_realm_is_401004() {
    let site = alice_site("");
    assert_code(&site.get("/user/login/realm/4000020", "alice"), 401_004);
    assert_code(&site.get("/vm/list/dynamic/realm/nosuch", "alice"), 401_004);
}

#[test]
fn an_empty_user_or_password_is_400005() {
    let site = alice_site("");
    assert_code(&site.get_as("/user/login", Some(("alice", ""))), 400_005);
    assert_code(&site.get_as("/user/login", Some(("  ", PASSWORD))), 400_005);
}

// Realms (11-20).

#[test]
fn realms_are_listed_without_a_login_with_200011() {
    let site = Site::start("");
    cli_ok(
        &site.server.data_dir(),
        &[
            "realm",
            "add",
            "4000020",
            "--description",
            "Active Directory",
        ],
        "",
    );
    let answer = site.get_as("/server/realms", None);
    assert_code(&answer, 200_011);
    let realms = answer.1["realms"].as_array().unwrap().clone();
    assert!(
        realms
            .contains(&json!({"uid": "default", "displayName": "Default realm", "default": true})),
        "{realms:?}"
    );
    assert!(
        realms.contains(
            &json!({"uid": 4000020, "displayName": "Active Directory", "default": false})
        ),
        "{realms:?}"
    );
    // Credentials, even wrong ones, do not matter here.
    assert_code(&site.get_as("/server/realms", Some(("x", "y"))), 200_011);
}

// VM list (31-40).

fn vms(answer: &(u16, Value)) -> Vec<Value> {
    answer.1["vms"].as_array().cloned().unwrap_or_default()
}

fn wait_online(site: &Site, login: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = vms(&site.get("/vm/list/persistent", login));
        if listed.iter().all(|vm| vm["status"] == "online") && !listed.is_empty() {
            return listed;
        }
        assert!(Instant::now() < deadline, "never online: {listed:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_owner_list_has_assignable_dynamic_pools_and_own_persistent_vms() {
    let site = alice_site("");
    let answer = site.get("/vm/list", "alice");
    assert_code(&answer, 200_031);
    let listed = vms(&answer);
    assert!(
        listed.contains(&json!({
            "uuid": null, "name": "DynVm-Test", "ip": null, "node": null, "port": null,
            "password": null, "status": "assignable", "type": "dynamic", "subtype": null,
            "os": null, "pool": LAB,
        })),
        "{listed:?}"
    );
    let persistent: Vec<_> = listed
        .iter()
        .filter(|v| v["type"] == "persistent")
        .collect();
    assert_eq!(persistent.len(), 1, "{listed:?}");
    let vm = persistent[0];
    assert_eq!(vm["name"], "Test_Machine");
    assert_eq!(vm["pool"], OFFICE);
    assert_eq!(vm["subtype"], "Desktop");
    assert_eq!(vm["os"], "linux");
    assert!(vm["port"].as_u64().unwrap() > 5900);
    assert_eq!(vm["password"].as_str().unwrap().len(), 12);
    assert!(vm["node"].as_str().unwrap().starts_with("sim-node-"));
    assert_eq!(vm["ip"], vm["node"]);
    assert_eq!(
        site.get("/vm/list/owner", "alice").1["vms"]
            .as_array()
            .unwrap()
            .len(),
        listed.len()
    );
}

#[test]
fn a_running_persistent_vm_is_online() {
    let site = alice_site("");
    let listed = wait_online(&site, "alice");
    assert_eq!(listed.len(), 1);
    let uuid = listed[0]["uuid"].as_str().unwrap();
    let out = cli_ok(
        &site.server.data_dir(),
        &["vm", "list", "--owner", "alice"],
        "",
    );
    assert!(out.contains(uuid), "the hypervisor's record: {out}");
    let dynamic = vms(&site.get("/vm/list/dynamic", "alice"));
    assert!(
        dynamic.iter().all(|v| v["type"] == "dynamic"),
        "{dynamic:?}"
    );
}

#[test]
fn a_persistent_vm_not_yet_running_is_offline() {
    let toml = site_toml("").replace("transition_delay_ms = 0", "transition_delay_ms = 600000");
    let site = Site {
        server: Server::with_site(&toml),
    };
    site.user("alice", &[]);
    let listed = vms(&site.get("/vm/list/persistent", "alice"));
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["status"], "offline");
}

#[test]
fn an_unknown_list_type_is_400032() {
    let site = alice_site("");
    assert_code(&site.get("/vm/list/mine", "alice"), 400_032);
}

#[test]
fn listing_all_without_the_right_is_403033() {
    let site = alice_site("");
    assert_code(&site.get("/vm/list/all", "alice"), 403_033);
}

#[test]
fn listing_all_with_the_group_right_or_as_admin_gives_every_vm() {
    let site = alice_site("");
    site.user("lister", &[]);
    site.user("root", &["--admin"]);
    assert_code(&site.get(&format!("/vm/assign/{LAB}"), "alice"), 200_041);
    for login in ["lister", "root"] {
        let answer = site.get("/vm/list/all", login);
        assert_code(&answer, 200_031);
        let listed = vms(&answer);
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(
            listed
                .iter()
                .any(|v| v["type"] == "dynamic" && v["status"] == "assigned")
        );
        assert!(listed.iter().any(|v| v["name"] == "Test_Machine"));
    }
}

// Assign (41-50).

#[test]
fn assigning_gives_the_user_a_vm_with_200041_and_the_list_shows_it() {
    let site = alice_site("");
    let answer = site.get(&format!("/vm/assign/{LAB}"), "alice");
    assert_code(&answer, 200_041);
    let vm = answer.1["vm"].clone();
    assert_eq!(vm["status"], "assigned");
    assert_eq!(vm["name"], "DynVm-Test");
    assert_eq!(vm["type"], "dynamic");
    assert_eq!(vm["os"], "windows");
    assert_eq!(vm["pool"], LAB);
    assert!(vm["uuid"].as_str().unwrap().len() == 36);
    assert!(vm["port"].is_u64() && vm["password"].is_string() && vm["node"].is_string());

    // The list now shows the assigned VM instead of the assignable pool.
    let listed = vms(&site.get("/vm/list/dynamic", "alice"));
    let lab: Vec<_> = listed.iter().filter(|v| v["pool"] == LAB).collect();
    assert_eq!(lab, vec![&vm]);
    // Asking again gives the same VM, not a second one.
    let again = site.get(&format!("/vm/assign/{LAB}"), "alice");
    assert_code(&again, 200_041);
    assert_eq!(again.1["vm"], vm);
}

#[test]
fn group_members_may_use_a_pool() {
    let site = alice_site("");
    site.user("bob", &[]);
    let listed = vms(&site.get("/vm/list/dynamic", "bob"));
    assert!(listed.iter().any(|v| v["pool"] == LAB), "{listed:?}");
    assert_code(&site.get(&format!("/vm/assign/{LAB}"), "bob"), 200_041);
}

#[test]
fn an_unknown_or_forbidden_pool_is_400042() {
    let site = alice_site("");
    site.user("dave", &[]);
    assert_code(&site.get("/vm/assign/no-such-pool", "alice"), 400_042);
    // Not dynamic.
    assert_code(&site.get(&format!("/vm/assign/{OFFICE}"), "alice"), 400_042);
    // Not one of dave's pools.
    assert_code(&site.get(&format!("/vm/assign/{LAB}"), "dave"), 400_042);
}

#[test]
fn a_full_pool_is_500043_and_no_longer_assignable() {
    let site = alice_site("");
    site.user("bob", &[]);
    assert_code(&site.get(&format!("/vm/assign/{SOLO}"), "alice"), 200_041);
    assert_code(&site.get(&format!("/vm/assign/{SOLO}"), "bob"), 500_043);
    let listed = vms(&site.get("/vm/list/dynamic", "bob"));
    assert!(!listed.iter().any(|v| v["pool"] == SOLO), "{listed:?}");
}

#[test]
fn a_released_vm_is_free_again_for_the_next_user() {
    let site = alice_site("");
    site.user("bob", &[]);
    site.user("root", &["--admin"]);
    let first = site.get(&format!("/vm/assign/{SOLO}"), "alice");
    assert_code(&first, 200_041);
    let pool = site.get(&format!("/admin/pools/{SOLO}"), "root");
    let slot = pool.1["pool"]["vms"][0]["slot"]
        .as_str()
        .unwrap()
        .to_string();
    let released = site.send(
        "POST",
        &format!("/admin/pools/{SOLO}/vms/{slot}/release"),
        "root",
        None,
    );
    assert_code(&released, 200_101);
    let second = site.get(&format!("/vm/assign/{SOLO}"), "bob");
    assert_code(&second, 200_041);
    assert_eq!(
        second.1["vm"]["uuid"], first.1["vm"]["uuid"],
        "the same VM, reused"
    );
}

/// Two users race for the one free VM of a pool (made beforehand by the
/// admin, so neither request creates one): one wins, the other gets 500043.
#[test]
fn two_concurrent_assigns_to_one_free_vm_give_one_success_and_one_500043() {
    let site = alice_site("");
    site.user("bob", &[]);
    site.user("root", &["--admin"]);
    for round in 0..5 {
        let made = site.send("POST", &format!("/admin/pools/{SOLO}/vms"), "root", None);
        assert_code(&made, 201_102);
        let slot = made.1["vm"]["slot"].as_str().unwrap().to_string();
        let answers = race(&site, &[SOLO, SOLO], &["alice", "bob"]);
        let codes: Vec<u64> = answers
            .iter()
            .map(|a| a.1["code"].as_u64().unwrap())
            .collect();
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(sorted, vec![200_041, 500_043], "round {round}: {answers:?}");
        let pool = site.get(&format!("/admin/pools/{SOLO}"), "root");
        let pool_vms = pool.1["pool"]["vms"].as_array().unwrap().clone();
        assert_eq!(pool_vms.len(), 1, "no second VM was made: {pool_vms:?}");
        let removed = site.send(
            "DELETE",
            &format!("/admin/pools/{SOLO}/vms/{slot}?destroy=true"),
            "root",
            None,
        );
        assert_code(&removed, 200_101);
    }
}

/// Many users race for a pool that makes its VMs on demand: exactly `size`
/// win, each on a different VM.
#[test]
fn concurrent_assigns_never_put_two_users_on_one_vm() {
    let site = alice_site("");
    let users: Vec<String> = (0..6).map(|i| format!("student{i}")).collect();
    for user in &users {
        site.user(user, &[]);
    }
    site.user("root", &["--admin"]);
    let members: Vec<Value> = users.iter().map(|u| json!(u)).collect();
    let put = site.send(
        "PUT",
        "/admin/groups/students",
        "root",
        Some(json!({ "members": members })),
    );
    assert_code(&put, 200_101);
    let logins: Vec<&str> = users.iter().map(String::as_str).collect();
    let answers = race(&site, &[LAB; 6], &logins);
    let winners: Vec<&Value> = answers
        .iter()
        .filter(|a| a.1["code"] == 200_041)
        .map(|a| &a.1["vm"])
        .collect();
    let losers = answers.iter().filter(|a| a.1["code"] == 500_043).count();
    assert_eq!((winners.len(), losers), (2, 4), "{answers:?}");
    let uuids: HashSet<&str> = winners
        .iter()
        .map(|v| v["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(uuids.len(), 2, "two users on one VM: {winners:?}");
}

/// The requests all start together, one thread each.
fn race(site: &Site, pools: &[&str], logins: &[&str]) -> Vec<(u16, Value)> {
    let barrier = std::sync::Barrier::new(logins.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = logins
            .iter()
            .zip(pools)
            .map(|(login, pool)| {
                let barrier = &barrier;
                let url = site.url(&format!("/vm/assign/{pool}"));
                s.spawn(move || {
                    let request = client().get(url).basic_auth(*login, Some(PASSWORD));
                    barrier.wait();
                    answer(request.send().expect("request"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn vnc_passwords_are_stored_sealed() {
    let site = alice_site("");
    let listed = wait_online(&site, "alice");
    let password = listed[0]["password"].as_str().unwrap().to_string();
    let assigned = site.get(&format!("/vm/assign/{LAB}"), "alice");
    let dynamic_password = assigned.1["vm"]["password"].as_str().unwrap().to_string();
    assert_ne!(password, dynamic_password);
    let data = site.server.data_dir();
    let key = std::fs::metadata(data.join("seal.key")).expect("the site key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            for secret in [&password, &dynamic_password] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} in clear in {}",
                    path.display()
                );
            }
        }
    }
}

// FC4School mapping list (51-60).

const SCHOOL: &str = "fc4school = true\nmacByParameter = true";

fn school_site(flags: &str) -> Site {
    let site = Site::start(flags);
    site.user("dynvmuser", &[]);
    site.user("alice", &[]);
    site
}

#[test]
fn mapped_vms_are_listed_by_mac_parameter_with_200051() {
    let site = school_site(SCHOOL);
    let answer = site.get(&format!("/vm/mapping/list/{MAC_1}"), "dynvmuser");
    assert_code(&answer, 200_051);
    assert_eq!(answer.1["vm"]["status"], "assignable");
    assert_eq!(answer.1["vm"]["pool"], CLASSROOM);
    assert_eq!(answer.1["vms"], json!([answer.1["vm"]]));
}

#[test]
fn without_a_parameter_the_mac_comes_from_the_peer_table() {
    let site = school_site("fc4school = true");
    let answer = site.get("/vm/mapping/list", "dynvmuser");
    assert_code(&answer, 200_051);
    assert_eq!(answer.1["vm"]["name"], "Classroom");
    let assigned = site.get(&format!("/vm/mapping/assign/{CLASSROOM}"), "dynvmuser");
    assert_code(&assigned, 200_061);
    let listed = site.get("/vm/mapping/list", "dynvmuser");
    assert_eq!(listed.1["vm"]["status"], "assigned");
    assert_eq!(listed.1["vm"]["uuid"], assigned.1["vm"]["uuid"]);
}

#[test]
fn the_mapping_list_without_the_module_is_500052() {
    let site = school_site("");
    assert_code(&site.get("/vm/mapping/list", "dynvmuser"), 500_052);
}

#[test]
fn the_mapping_list_for_another_user_is_400053() {
    let site = school_site(SCHOOL);
    assert_code(
        &site.get(&format!("/vm/mapping/list/{MAC_1}"), "alice"),
        400_053,
    );
}

#[test]
fn a_mac_whose_vm_is_taken_is_400054() {
    let site = school_site(SCHOOL);
    // MAC 1 takes the classroom's only VM; MAC 2 is mapped to the same pool.
    assert_code(
        &site.get(
            &format!("/vm/mapping/assign/{CLASSROOM}/{MAC_1}"),
            "dynvmuser",
        ),
        200_061,
    );
    assert_code(
        &site.get(&format!("/vm/mapping/list/{MAC_2}"), "dynvmuser"),
        400_054,
    );
}

#[test]
fn an_unknown_mac_is_400055() {
    let site = school_site(SCHOOL);
    assert_code(
        &site.get("/vm/mapping/list/52:54:00:99:99:99", "dynvmuser"),
        400_055,
    );
    assert_code(
        &site.get("/vm/mapping/list/not-a-mac", "dynvmuser"),
        400_055,
    );
}

#[test]
fn an_unknown_peer_without_a_parameter_is_400055() {
    let site = school_site("fc4school = true");
    site.user("root", &["--admin"]);
    let removed = site.send("DELETE", "/admin/peers/127.0.0.1", "root", None);
    assert_code(&removed, 200_101);
    assert_code(&site.get("/vm/mapping/list", "dynvmuser"), 400_055);
}

#[test]
fn a_mac_parameter_with_mac_by_parameter_off_is_403056() {
    let site = school_site("fc4school = true");
    assert_code(
        &site.get(&format!("/vm/mapping/list/{MAC_1}"), "dynvmuser"),
        403_056,
    );
}

// FC4School mapping assign (61-70).

#[test]
fn the_mapped_vm_is_assigned_with_200061_and_pinned_to_the_mac() {
    let site = school_site(SCHOOL);
    site.user("root", &["--admin"]);
    let answer = site.get(
        &format!("/vm/mapping/assign/{CLASSROOM}/{MAC_1}"),
        "dynvmuser",
    );
    assert_code(&answer, 200_061);
    assert_eq!(answer.1["vm"]["status"], "assigned");
    assert_eq!(answer.1["vm"]["name"], "Classroom");
    let mappings = site.get("/admin/mappings", "root");
    let pinned = mappings.1["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mac"] == MAC_1)
        .cloned()
        .unwrap();
    assert!(pinned["vm_key"].is_string(), "{pinned}");
}

#[test]
fn mapping_assign_without_the_module_is_500062() {
    let site = school_site("");
    assert_code(
        &site.get(&format!("/vm/mapping/assign/{CLASSROOM}"), "dynvmuser"),
        500_062,
    );
}

#[test]
fn mapping_assign_for_another_user_is_400063() {
    let site = school_site(SCHOOL);
    assert_code(
        &site.get(&format!("/vm/mapping/assign/{CLASSROOM}/{MAC_1}"), "alice"),
        400_063,
    );
}

#[test]
fn mapping_assign_for_a_mac_without_a_mapping_or_vm_is_400064() {
    let site = school_site(SCHOOL);
    assert_code(
        &site.get(
            &format!("/vm/mapping/assign/{CLASSROOM}/52:54:00:99:99:99"),
            "dynvmuser",
        ),
        400_064,
    );
    assert_code(
        &site.get(
            &format!("/vm/mapping/assign/{CLASSROOM}/{MAC_1}"),
            "dynvmuser",
        ),
        200_061,
    );
    // The classroom's only VM is MAC 1's now.
    assert_code(
        &site.get(
            &format!("/vm/mapping/assign/{CLASSROOM}/{MAC_2}"),
            "dynvmuser",
        ),
        400_064,
    );
}

#[test]
fn mapping_assign_to_an_invalid_pool_is_400065() {
    let site = school_site(SCHOOL);
    assert_code(
        &site.get(&format!("/vm/mapping/assign/nosuch/{MAC_1}"), "dynvmuser"),
        400_065,
    );
    assert_code(
        &site.get(&format!("/vm/mapping/assign/{OFFICE}/{MAC_1}"), "dynvmuser"),
        400_065,
    );
}

#[test]
fn mapping_assign_twice_is_400067() {
    let site = school_site(SCHOOL);
    let path = format!("/vm/mapping/assign/{CLASSROOM}/{MAC_1}");
    assert_code(&site.get(&path, "dynvmuser"), 200_061);
    assert_code(&site.get(&path, "dynvmuser"), 400_067);
}

#[test]
fn mapping_assign_with_a_mac_parameter_and_the_option_off_is_400068() {
    let site = school_site("fc4school = true");
    assert_code(
        &site.get(
            &format!("/vm/mapping/assign/{CLASSROOM}/{MAC_1}"),
            "dynvmuser",
        ),
        400_068,
    );
}

// Admin routes.

#[test]
fn admin_routes_refuse_other_accounts_with_403104() {
    let site = alice_site("");
    assert_code(&site.get("/admin/pools", "alice"), 403_104);
    assert_code(&site.get_as("/admin/pools", None), 400_002);
}

#[test]
fn an_admin_makes_a_pool_that_users_then_get_vms_from() {
    let site = alice_site("");
    site.user("root", &["--admin"]);
    let created = site.send(
        "POST",
        "/admin/pools",
        "root",
        Some(
            json!({"name": "Exam", "type": "dynamic", "image": "debian-12", "size": 1,
                    "users": ["alice"], "subtype": "Server"}),
        ),
    );
    assert_code(&created, 201_102);
    let id = created.1["pool"]["id"].as_str().unwrap().to_string();
    let assigned = site.get(&format!("/vm/assign/{id}"), "alice");
    assert_code(&assigned, 200_041);
    assert_eq!(assigned.1["vm"]["subtype"], "Server");
    assert_eq!(assigned.1["vm"]["os"], "linux");
    let listed = site.get("/admin/pools", "root");
    assert_code(&listed, 200_101);
    let exam = listed.1["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        (exam["vms"].clone(), exam["assigned"].clone()),
        (json!(1), json!(1))
    );
    // A pool with VMs is not deleted.
    assert_code(
        &site.send("DELETE", &format!("/admin/pools/{id}"), "root", None),
        409_106,
    );
}

#[test]
fn admin_input_errors_have_their_own_codes() {
    let site = alice_site("");
    site.user("root", &["--admin"]);
    let no_image = site.send(
        "POST",
        "/admin/pools",
        "root",
        Some(json!({"name": "X", "type": "dynamic", "size": 1})),
    );
    assert_code(&no_image, 400_103);
    let bad_type = site.send(
        "POST",
        "/admin/pools",
        "root",
        Some(json!({"name": "X", "type": "weird"})),
    );
    assert_code(&bad_type, 400_103);
    assert_code(
        &site.send("GET", "/admin/pools/nosuch", "root", None),
        404_105,
    );
    assert_code(
        &site.send(
            "PUT",
            "/admin/peers/not-an-ip",
            "root",
            Some(json!({"mac": MAC_1})),
        ),
        400_103,
    );
}

#[test]
fn an_admin_adds_a_persistent_vm_for_a_user() {
    let site = alice_site("");
    site.user("root", &["--admin"]);
    site.user("bob", &[]);
    let made = site.send(
        "POST",
        &format!("/admin/pools/{OFFICE}/vms"),
        "root",
        Some(json!({"owner": "bob", "name": "bob-desktop"})),
    );
    assert_code(&made, 201_102);
    let listed = wait_online(&site, "bob");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "bob-desktop");
    let nobody = site.send(
        "POST",
        &format!("/admin/pools/{OFFICE}/vms"),
        "root",
        Some(json!({"owner": "nobody", "name": "x"})),
    );
    assert_code(&nobody, 400_103);
}

#[test]
fn a_fresh_default_site_serves_the_api() {
    let server = Server::default_site();
    let site = Site { server };
    site.user("alice", &[]);
    assert_code(&site.get("/user/login", "alice"), 200_001);
    assert_code(&site.get_as("/server/realms", None), 200_011);
    let listed = site.get("/vm/list", "alice");
    assert_code(&listed, 200_031);
    assert_eq!(listed.1["vms"], json!([]));
}

#[test]
fn a_pool_the_hypervisor_cannot_place_is_500043_for_users_and_500107_for_admins() {
    let site = alice_site("");
    site.user("root", &["--admin"]);
    let created = site.send(
        "POST",
        "/admin/pools",
        "root",
        Some(
            json!({"name": "Huge", "type": "dynamic", "image": "alpine-3.20", "size": 1,
                    "cpus": 512, "users": ["alice"]}),
        ),
    );
    assert_code(&created, 201_102);
    let id = created.1["pool"]["id"].as_str().unwrap().to_string();
    let assigned = site.get(&format!("/vm/assign/{id}"), "alice");
    assert_code(&assigned, 500_043);
    let made = site.send("POST", &format!("/admin/pools/{id}/vms"), "root", None);
    assert_code(&made, 500_107);
    // Nothing was left half-made: the slot is free for the next try.
    let pool = site.get(&format!("/admin/pools/{id}"), "root");
    assert_eq!(pool.1["pool"]["vms"], json!([]));
}

/// What the spec's clients do: `https://user:pass@host/vm-manager/api/...`.
#[test]
fn credentials_in_the_url_log_in() {
    let site = alice_site("");
    let url = site.url("/user/login").replacen(
        "http://",
        "http://alice:correct%20horse%20battery%20staple@",
        1,
    );
    assert_code(&answer(client().get(url).send().unwrap()), 200_001);
}
