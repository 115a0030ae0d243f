//! The VMmanager 6 plugin end to end: sessions, tokens and keys (idle expiry on a
//! clock moved through the site config), both auth path spellings, the list-filter
//! language over real hosts on the sim hypervisor, and the spec's example requests
//! sent byte for byte.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, cli_ok, client};

const ADMIN_EMAIL: &str = "admin@example.com";
const USER_EMAIL: &str = "user@example.com";
const PASSWORD: &str = "s3cret-pass";

/// A kernel with the vmmanager plugin, instant VM transitions and a movable auth clock.
struct Site {
    server: Server,
    clock: PathBuf,
    _dir: tempfile::TempDir,
}

fn site() -> Site {
    site_with("")
}

/// The hello example too, at `/hello`: another family making VMs (as owner
/// `hello`, an account here) through the same hypervisor.
const HELLO_MOUNT: &str = r#"
[plugins.hello]
source = "hello"
mounts = ["/hello"]
grants = ["storage", "auth", "jobs", "hypervisor"]
"#;
const HELLO_EMAIL: &str = "hello@example.com";

fn site_with(extra: &str) -> Site {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = dir.path().join("clock-offset-ms");
    let toml = format!(
        r#"
log = "info"
[auth]
clock_offset_file = {clock:?}
argon2_m_kib = 64
argon2_t = 1
[hypervisor.sim]
transition_delay_ms = 0
[plugins.vmmanager]
source = "vmmanager"
mounts = ["/vm/v3", "/auth/v4", "/api/auth/v4"]
grants = ["storage", "auth", "auth-admin", "jobs", "hypervisor"]
{extra}"#,
        clock = clock.display().to_string()
    );
    let server = Server::start_in(dir.path(), Some(&toml));
    let mut accounts = vec![("admin", ADMIN_EMAIL, true), ("user", USER_EMAIL, false)];
    if extra.contains("[plugins.hello]") {
        accounts.push(("hello", HELLO_EMAIL, false));
    }
    for (login, email, admin) in accounts {
        let mut args = vec!["user", "add", login, "--email", email, "--password-stdin"];
        if admin {
            args.push("--admin");
        }
        cli_ok(&server.data_dir(), &args, &format!("{PASSWORD}\n"));
    }
    Site {
        server,
        clock,
        _dir: dir,
    }
}

/// A status and a JSON body (Null when the body is not JSON).
type Answer = (u16, Value);

fn answer(response: reqwest::blocking::Response) -> Answer {
    let status = response.status().as_u16();
    let body = response.json().unwrap_or(Value::Null);
    (status, body)
}

impl Site {
    /// Moves the auth clock `minutes` ahead of the system clock.
    fn clock_ahead(&self, minutes: u64) {
        std::fs::write(&self.clock, (minutes * 60_000).to_string()).expect("write clock");
    }

    fn login_at(&self, prefix: &str, email: &str, password: &str) -> Answer {
        answer(
            client()
                .post(self.server.url(&format!("{prefix}/public/token")))
                .json(&json!({ "email": email, "password": password }))
                .send()
                .expect("login"),
        )
    }

    fn login(&self, email: &str) -> String {
        let (status, body) = self.login_at("/auth/v4", email, PASSWORD);
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }

    fn get(&self, path: &str, token: &str) -> Answer {
        answer(
            client()
                .get(self.server.url(path))
                .header("x-xsrf-token", token)
                .send()
                .expect("get"),
        )
    }

    fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        answer(
            client()
                .post(self.server.url(path))
                .header("x-xsrf-token", token)
                .json(&body)
                .send()
                .expect("post"),
        )
    }

    fn delete(&self, path: &str, token: &str) -> Answer {
        answer(
            client()
                .delete(self.server.url(path))
                .header("x-xsrf-token", token)
                .send()
                .expect("delete"),
        )
    }

    /// `GET` with the request target written exactly as given (no URL encoding).
    fn raw_get(&self, target: &str, token: &str) -> Answer {
        let address = self.server.base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {address}\r\nx-xsrf-token: {token}\r\n\
             isp-box-instance: true\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// The `list` of a list answer, asserting success.
    fn list(&self, target: &str, token: &str) -> Vec<Value> {
        let (status, body) = self.raw_get(target, token);
        assert_eq!(status, 200, "{target}: {body}");
        body["list"].as_array().expect("list").clone()
    }

    /// The names in a host list answer, in order.
    fn names(&self, target: &str, token: &str) -> Vec<String> {
        self.list(target, token)
            .iter()
            .map(|h| h["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits for the task with `consul_id` to finish; returns it.
    fn wait_task(&self, consul_id: u64, token: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let tasks = self.list(
                &format!("/vm/v3/task?where=consul_id+EQ+{consul_id}"),
                token,
            );
            if let Some(task) = tasks.first()
                && task["status"] != "running"
            {
                return task.clone();
            }
            assert!(Instant::now() < deadline, "task {consul_id} never finished");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Moves the node named `name` into cluster `cluster`; returns its id.
    fn move_node(&self, name: &str, cluster: u64, admin: &str) -> u64 {
        let nodes = self.list(&format!("/vm/v3/node?where=name+EQ+'{name}'"), admin);
        let id = nodes[0]["id"].as_u64().expect("node id");
        let (status, body) = self.post(
            &format!("/vm/v3/node/{id}"),
            admin,
            json!({ "cluster": cluster }),
        );
        assert_eq!(status, 200, "{body}");
        id
    }

    /// A VM made by the hello example (owner `hello`), running.
    fn hello_vm(&self, name: &str) -> String {
        let (status, created) = answer(
            client()
                .post(self.server.url("/hello/vms"))
                .json(&json!({ "name": name, "image": "alpine-3.20" }))
                .send()
                .expect("hello create"),
        );
        assert_eq!(status, 202, "{created}");
        let id = created["id"].as_str().expect("vm id").to_owned();
        self.hello_wait(&id, "running");
        id
    }

    fn hello_act(&self, id: &str, action: &str) {
        let (status, body) = answer(
            client()
                .post(self.server.url(&format!("/hello/vms/{id}/{action}")))
                .send()
                .expect("hello act"),
        );
        assert_eq!(status, 202, "{action}: {body}");
    }

    fn hello_wait(&self, id: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, vm) = answer(
                client()
                    .get(self.server.url(&format!("/hello/vms/{id}")))
                    .send()
                    .expect("hello get"),
            );
            if vm["state"] == state {
                return;
            }
            assert!(Instant::now() < deadline, "vm {id} never {state}: {vm}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn create_host(&self, token: &str, body: Value) -> u64 {
        let (status, created) = self.post("/vm/v3/host", token, body);
        assert_eq!(status, 200, "{created}");
        let task = self.wait_task(created["task"].as_u64().expect("task"), token);
        assert_eq!(task["status"], "complete", "{task}");
        assert_eq!(task["name"], "host_create");
        created["id"].as_u64().expect("id")
    }
}

fn error_code(body: &Value) -> u64 {
    body["error"]["code"].as_u64().unwrap_or(0)
}

fn host_spec(name: &str, cpu: u32, ram: u64, cluster: u64) -> Value {
    json!({
        "name": name, "os": 1, "cluster": cluster, "cpu_number": cpu,
        "ram_mib": ram, "hdd_mib": 10240, "password": "guest-pass-1"
    })
}

// ---------------------------------------------------------------- auth

#[test]
fn a_password_login_answers_a_session_in_the_products_shape_on_both_paths() {
    let site = site();
    for prefix in ["/auth/v4", "/api/auth/v4"] {
        let (status, body) = site.login_at(prefix, ADMIN_EMAIL, PASSWORD);
        assert_eq!(status, 201, "{body}");
        let token = body["token"].as_str().expect("token");
        let (id, uuid) = token.split_once('-').expect("id-uuid");
        assert_eq!(body["id"], id, "{body}");
        assert_eq!(uuid.len(), 36);
        assert_eq!(body["confirmed"], true);
        assert!(body["expires_at"].is_null());
        let (status, me) = site.get(&format!("{prefix}/whoami"), token);
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["email"], ADMIN_EMAIL);
        assert_eq!(me["roles"], json!(["@admin"]));
    }
}

#[test]
fn a_wrong_password_or_unknown_email_is_22013_and_a_bad_body_is_refused() {
    let site = site();
    let expected = json!({"error": {"code": 22013, "msg": "Invalid password"}});
    let (status, body) = site.login_at("/auth/v4", ADMIN_EMAIL, "wrong");
    assert_eq!((status, &body), (401, &expected));
    let (status, body) = site.login_at("/api/auth/v4", "nobody@example.com", PASSWORD);
    assert_eq!((status, &body), (401, &expected));
    let (status, body) = answer(
        client()
            .post(site.server.url("/auth/v4/public/token"))
            .body("{not json")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), 2001, "{body}");
}

#[test]
fn requests_without_a_live_session_are_3001() {
    let site = site();
    let unauthorized = json!({"error": {"code": 3001, "msg": "Unauthorized"}});
    let (status, body) = answer(client().get(site.server.url("/vm/v3/host")).send().unwrap());
    assert_eq!((status, &body), (401, &unauthorized));
    let (status, body) = site.get("/vm/v3/host", "4-e9726dd9-61d9-2940-add3-914851d2cb8a");
    assert_eq!((status, &body), (401, &unauthorized));
    let (status, body) = site.get("/auth/v4/whoami", "");
    assert_eq!((status, &body), (401, &unauthorized));
}

#[test]
fn the_web_uis_ses6_cookie_authenticates_too() {
    let site = site();
    let token = site.login(USER_EMAIL);
    let (status, body) = answer(
        client()
            .get(site.server.url("/vm/v3/host"))
            .header("cookie", format!("other=1; ses6={token}"))
            .header("isp-box-instance", "true")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["size"], 0);
}

#[test]
fn a_session_dies_after_60_minutes_idle_and_each_use_slides_it() {
    let site = site();
    let token = site.login(USER_EMAIL);
    site.clock_ahead(59);
    assert_eq!(
        site.get("/auth/v4/whoami", &token).0,
        200,
        "59 minutes idle"
    );
    site.clock_ahead(59 + 59);
    assert_eq!(
        site.get("/auth/v4/whoami", &token).0,
        200,
        "used again after 59"
    );
    site.clock_ahead(59 + 59 + 61);
    let (status, body) = site.get("/auth/v4/whoami", &token);
    assert_eq!((status, error_code(&body)), (401, 3001), "61 minutes idle");
}

#[test]
fn token_ttl_is_an_admin_setting_that_new_sessions_follow() {
    let site = site();
    let admin = site.login(ADMIN_EMAIL);
    let user = site.login(USER_EMAIL);
    let (status, body) = site.post("/auth/v4/setting/token_ttl", &user, json!({"value": "5"}));
    assert_eq!((status, error_code(&body)), (403, 3001));
    let (status, body) = site.post("/auth/v4/setting/token_ttl", &admin, json!({"value": "x"}));
    assert_eq!((status, error_code(&body)), (400, 2003), "{body}");
    let (status, body) = site.post("/auth/v4/setting/token_ttl", &admin, json!({"value": "5"}));
    assert_eq!(status, 200, "{body}");
    let (_, body) = site.get("/auth/v4/setting/token_ttl", &admin);
    assert_eq!(body["value"], "5");
    let short = site.login(USER_EMAIL);
    site.clock_ahead(4);
    assert_eq!(site.get("/auth/v4/whoami", &short).0, 200);
    site.clock_ahead(4 + 6);
    assert_eq!(site.get("/auth/v4/whoami", &short).0, 401);
}

#[test]
fn a_token_with_an_expiry_date_outlives_idleness_and_ends_on_its_date() {
    let site = site();
    let session = site.login(USER_EMAIL);
    let (status, body) = site.post(
        "/auth/v4/token",
        &session,
        json!({"expires_at": "2030-01-31 00:00:00", "description": "Token for integration"}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["expires_at"], "2030-01-31 00:00:00");
    let token = body["token"].as_str().unwrap().to_owned();
    site.clock_ahead(24 * 60);
    assert_eq!(site.get("/vm/v3/host", &token).0, 200, "a day idle");
    let now_minutes = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60;
    let end_minutes = 1_896_048_000 / 60; // 2030-01-31 00:00:00 UTC
    site.clock_ahead(end_minutes - now_minutes + 1);
    assert_eq!(site.get("/vm/v3/host", &token).0, 401, "past its date");
}

#[test]
fn a_token_needs_a_session_and_a_future_date_in_the_products_format() {
    let site = site();
    let session = site.login(USER_EMAIL);
    let (status, body) = site.post(
        "/auth/v4/token",
        "",
        json!({"expires_at": "2030-01-31 00:00:00"}),
    );
    assert_eq!((status, error_code(&body)), (401, 3001));
    for bad in ["2001-01-01 00:00:00", "2030-01-31", "soon"] {
        let (status, body) = site.post("/auth/v4/token", &session, json!({"expires_at": bad}));
        assert_eq!((status, error_code(&body)), (400, 2003), "{bad}: {body}");
        assert_eq!(body["error"]["value"]["field"], "expires_at");
    }
}

#[test]
fn an_admin_key_logs_a_user_in_once() {
    let site = site();
    let admin = site.login(ADMIN_EMAIL);
    let (status, key) = site.post(
        &format!("/api/auth/v4/user/{USER_EMAIL}/key"),
        &admin,
        json!({}),
    );
    assert_eq!(status, 201, "{key}");
    let value = key["key"].as_str().unwrap().to_owned();
    assert_eq!(
        value.split_once('-').unwrap().0,
        key["id"].as_str().unwrap()
    );
    let exchange = |key: &str| {
        answer(
            client()
                .post(site.server.url("/api/auth/v4/public/key"))
                .header("isp-box-instance", "true")
                .json(&json!({ "key": key }))
                .send()
                .unwrap(),
        )
    };
    let (status, session) = exchange(&value);
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["confirmed"], true);
    assert!(session["expires_at"].is_null());
    let token = session["token"].as_str().unwrap();
    let (_, me) = site.get("/auth/v4/whoami", token);
    assert_eq!(me["email"], USER_EMAIL);
    let (status, again) = exchange(&value);
    assert_eq!((status, error_code(&again)), (401, 22014), "one use");
    // A key is not a session.
    assert_eq!(site.get("/vm/v3/host", &value).0, 401);
}

#[test]
fn keys_are_for_admins_known_users_and_expire_after_an_hour() {
    let site = site();
    let admin = site.login(ADMIN_EMAIL);
    let user = site.login(USER_EMAIL);
    let (status, body) = site.post(
        &format!("/auth/v4/user/{ADMIN_EMAIL}/key"),
        &user,
        json!({}),
    );
    assert_eq!((status, error_code(&body)), (403, 3001));
    let (status, body) = site.post("/auth/v4/user/ghost@example.com/key", &admin, json!({}));
    assert_eq!((status, error_code(&body)), (404, 2004), "{body}");
    let (_, key) = site.post(
        &format!("/auth/v4/user/{USER_EMAIL}/key"),
        &admin,
        json!({}),
    );
    site.clock_ahead(61);
    let (status, body) = answer(
        client()
            .post(site.server.url("/auth/v4/public/key"))
            .json(&json!({ "key": key["key"] }))
            .send()
            .unwrap(),
    );
    assert_eq!((status, error_code(&body)), (401, 22014), "{body}");
}

// ---------------------------------------------------------------- resources

/// A site with a second cluster and six hosts:
///
/// | name   | cpu | ram  | cluster | comment        |
/// | alpha  | 1   | 512  | default | ""             |
/// | beta   | 2   | 1024 | default | "it's 50% done"|
/// | gamma  | 4   | 2048 | zeta    | "a_b"          |
/// | delta  | 2   | 4096 | zeta    | "axb"          |
/// | eps-1  | 8   | 1024 | default | ""             |
/// | eps-2  | 1   | 768  | zeta    | ""             |
fn fleet() -> (Site, String) {
    let site = site();
    let admin = site.login(ADMIN_EMAIL);
    let (status, cluster) = site.post("/vm/v3/cluster", &admin, json!({"name": "zeta"}));
    assert_eq!(status, 200, "{cluster}");
    let zeta = cluster["id"].as_u64().unwrap();
    // Hosts go on their cluster's nodes: zeta gets the second node.
    site.move_node("sim-node-2", zeta, &admin);
    let hosts = [
        ("alpha", 1, 512, 1, ""),
        ("beta", 2, 1024, 1, "it's 50% done"),
        ("gamma", 4, 2048, zeta, "a_b"),
        ("delta", 2, 4096, zeta, "axb"),
        ("eps-1", 8, 1024, 1, ""),
        ("eps-2", 1, 768, zeta, ""),
    ];
    for (name, cpu, ram, cluster, comment) in hosts {
        let id = site.create_host(&admin, host_spec(name, cpu, ram, cluster));
        if !comment.is_empty() {
            let (status, body) = site.post(
                &format!("/vm/v3/host/{id}"),
                &admin,
                json!({"comment": comment}),
            );
            assert_eq!(status, 200, "{body}");
        }
    }
    (site, admin)
}

#[test]
fn the_specs_three_example_requests_work_verbatim() {
    let (site, admin) = fleet();
    let (status, clusters) = site.raw_get("/vm/v3/cluster?where=(id+EQ+1)", &admin);
    assert_eq!(status, 200, "{clusters}");
    assert_eq!(clusters["size"], 1);
    assert_eq!(clusters["list"][0]["name"], "default");
    assert!(clusters["last_notify"].as_u64().unwrap() > 0);

    let (_, created) = site.post("/vm/v3/host", &admin, host_spec("zed", 1, 512, 1));
    let consul_id = created["task"].as_u64().unwrap();
    site.wait_task(consul_id, &admin);
    let target =
        format!("/vm/v3/task?where=(consul_id+EQ+'{consul_id}')+AND+(name+EQ+'host_create')");
    let (status, tasks) = site.raw_get(&target, &admin);
    assert_eq!(status, 200, "{tasks}");
    assert_eq!(tasks["size"], 1, "{tasks}");
    assert_eq!(tasks["list"][0]["status"], "complete");
    assert_eq!(tasks["list"][0]["host"]["id"], created["id"]);

    let (status, hosts) = site.raw_get("/vm/v3/host?orderby=cluster.name+desc&limit=0,50", &admin);
    assert_eq!(status, 200, "{hosts}");
    assert_eq!(hosts["size"], 7);
    let clusters: Vec<&str> = hosts["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["cluster"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        clusters,
        [
            "zeta", "zeta", "zeta", "default", "default", "default", "default"
        ]
    );
}

#[test]
fn every_operator_selects_the_right_hosts() {
    let (site, admin) = fleet();
    let cases = [
        ("cpu_number+EQ+2", vec!["beta", "delta"]),
        ("cpu_number+NE+2", vec!["alpha", "gamma", "eps-1", "eps-2"]),
        ("cpu_number+GT+2", vec!["gamma", "eps-1"]),
        ("cpu_number+GE+2", vec!["beta", "gamma", "delta", "eps-1"]),
        ("cpu_number+LT+2", vec!["alpha", "eps-2"]),
        ("cpu_number+LE+2", vec!["alpha", "beta", "delta", "eps-2"]),
        ("name+CP+'eps%25'", vec!["eps-1", "eps-2"]),
        ("name+CP+'%25t%25'", vec!["beta", "delta"]),
        ("name+CP+'_lpha'", vec!["alpha"]),
        ("name%20EQ%20'gamma'", vec!["gamma"]),
        ("name EQ 'gamma'", vec!["gamma"]),
        ("ram_mib+GE+'1024'", vec!["beta", "gamma", "delta", "eps-1"]),
    ];
    for (filter, expected) in cases {
        let names = site.names(
            &format!("/vm/v3/host?where={}", filter.replace(' ', "%20")),
            &admin,
        );
        assert_eq!(names, expected, "where={filter}");
    }
}

#[test]
fn and_or_not_and_parentheses_combine() {
    let (site, admin) = fleet();
    let cases = [
        ("cpu_number+EQ+2+AND+ram_mib+GT+2000", vec!["delta"]),
        ("name+EQ+'alpha'+OR+name+EQ+'gamma'", vec!["alpha", "gamma"]),
        ("NOT+cluster.name+EQ+'zeta'", vec!["alpha", "beta", "eps-1"]),
        (
            "cpu_number+EQ+1+OR+cpu_number+EQ+8+AND+cluster.name+EQ+'zeta'",
            vec!["alpha", "eps-2"],
        ),
        (
            "(cpu_number+EQ+1+OR+cpu_number+EQ+8)+AND+cluster.name+EQ+'zeta'",
            vec!["eps-2"],
        ),
        (
            "not+(name+CP+'eps%25'+or+cpu_number+lt+2)+and+(ram_mib+le+2048)",
            vec!["beta", "gamma"],
        ),
        (
            "((id+GE+1))",
            vec!["alpha", "beta", "gamma", "delta", "eps-1", "eps-2"],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            site.names(&format!("/vm/v3/host?where={filter}"), &admin),
            expected,
            "{filter}"
        );
    }
    // Several filters are joined with `&`: two `where`s both hold.
    let names = site.names(
        "/vm/v3/host?where=cluster.name+EQ+'zeta'&where=cpu_number+LT+4&orderby=name+desc",
        &admin,
    );
    assert_eq!(names, ["eps-2", "delta"]);
}

#[test]
fn quoted_text_takes_escapes_and_cp_masks_escape_their_wildcards() {
    let (site, admin) = fleet();
    let cases = [
        (r"comment+EQ+'it\'s%2050%25%20done'", vec!["beta"]),
        ("comment+EQ+'it''s+50%25+done'", vec!["beta"]),
        (r"comment+CP+'%25\%25%25'", vec!["beta"]),
        (r"comment+CP+'a\_b'", vec!["gamma"]),
        ("comment+CP+'a_b'", vec!["gamma", "delta"]),
    ];
    for (filter, expected) in cases {
        let target = format!("/vm/v3/host?where={}", filter.replace('\\', "%5C"));
        assert_eq!(site.names(&target, &admin), expected, "{filter}");
    }
}

#[test]
fn orderby_sorts_on_nested_fields_and_several_keys() {
    let (site, admin) = fleet();
    assert_eq!(
        site.names(
            "/vm/v3/host?orderby=cluster.name+asc,cpu_number+desc,name",
            &admin
        ),
        ["eps-1", "beta", "alpha", "gamma", "delta", "eps-2"]
    );
    assert_eq!(
        site.names("/vm/v3/host?orderby=ram_mib+desc&limit=0,3", &admin),
        ["delta", "gamma", "eps-1"],
        "ties (beta and eps-1 have 1024) go by id, the way the last key runs"
    );
    assert_eq!(
        site.names("/vm/v3/host", &admin),
        ["alpha", "beta", "gamma", "delta", "eps-1", "eps-2"],
        "ascending by id by default"
    );
}

#[test]
fn limit_pages_and_size_counts_everything_before_the_limit() {
    let (site, admin) = fleet();
    let (_, page) = site.raw_get("/vm/v3/host?limit=0,0", &admin);
    assert_eq!(
        (page["size"].as_u64(), page["list"].as_array().map(Vec::len)),
        (Some(6), Some(0))
    );
    let (_, page) = site.raw_get("/vm/v3/host?limit=4,10", &admin);
    assert_eq!(page["size"], 6);
    assert_eq!(page["list"].as_array().unwrap().len(), 2);
    let (_, page) = site.raw_get("/vm/v3/host?limit=100,10", &admin);
    assert_eq!(
        (page["size"].as_u64(), page["list"].as_array().map(Vec::len)),
        (Some(6), Some(0))
    );
    let (_, page) = site.raw_get(
        "/vm/v3/host?where=cpu_number+GE+2&orderby=name&limit=1,2",
        &admin,
    );
    assert_eq!(page["size"], 4);
    let names: Vec<&str> = page["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["delta", "eps-1"]);
}

#[test]
fn malformed_filters_are_2002_with_the_position() {
    let (site, admin) = fleet();
    let cases = [
        ("/vm/v3/host?where=(id+EQ+1", "where", 1),
        ("/vm/v3/host?where=id+XX+1", "where", 4),
        ("/vm/v3/host?where=id+EQ", "where", 6),
        ("/vm/v3/host?where=name+EQ+'open", "where", 9),
        ("/vm/v3/host?where=id+EQ+1+AND+bogus+EQ+2", "where", 13),
        ("/vm/v3/host?where=id+EQ+'abc'", "where", 7),
        ("/vm/v3/host?where=id+EQ+1)", "where", 8),
        ("/vm/v3/host?orderby=name+sideways", "orderby", 6),
        ("/vm/v3/host?orderby=nope", "orderby", 1),
        ("/vm/v3/host?limit=0,x", "limit", 3),
        ("/vm/v3/task?where=internal.account+EQ+'x'", "where", 1),
    ];
    for (target, param, position) in cases {
        let (status, body) = site.raw_get(target, &admin);
        assert_eq!(status, 400, "{target}: {body}");
        assert_eq!(error_code(&body), 2002, "{target}: {body}");
        assert_eq!(body["error"]["value"]["param"], param, "{target}");
        assert_eq!(
            body["error"]["value"]["position"], position,
            "{target}: {body}"
        );
    }
}

#[test]
fn lists_carry_associated_items_and_get_by_id_does_not() {
    let (site, admin) = fleet();
    let list = site.list("/vm/v3/host?where=name+EQ+'gamma'", &admin);
    let host = &list[0];
    assert_eq!(host["cluster"]["name"], "zeta");
    assert!(host["node"]["id"].as_u64().is_some(), "{host}");
    assert_eq!(host["os"]["id"], 1);
    assert_eq!(host["state"], "active");
    assert_eq!(host["ip4"].as_array().unwrap().len(), 1, "{host}");
    assert!(host.get("internal").is_none());
    let (status, item) = site.get(&format!("/vm/v3/host/{}/", host["id"]), &admin);
    assert_eq!(status, 200, "{item}");
    assert_eq!(item["name"], "gamma");
    assert_eq!(item["cpu_number"], 4);
    assert!(
        item.get("cluster").is_none() && item.get("ip4").is_none(),
        "{item}"
    );
    let (status, body) = site.get("/vm/v3/host/999", &admin);
    assert_eq!((status, error_code(&body)), (404, 2004));
}

#[test]
fn nodes_clusters_os_and_disks_list_and_get() {
    let (site, admin) = fleet();
    let nodes = site.list("/vm/v3/node?orderby=name", &admin);
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["cluster"]["id"], 1);
    let (status, node) = site.get(&format!("/vm/v3/node/{}", nodes[0]["id"]), &admin);
    assert_eq!((status, &node["name"]), (200, &nodes[0]["name"]));
    let os = site.list("/vm/v3/os?where=name+CP+'alpine%25'", &admin);
    assert_eq!(os.len(), 1, "{os:?}");
    assert_eq!(
        site.get(&format!("/vm/v3/os/{}", os[0]["id"]), &admin).0,
        200
    );
    let disks = site.list("/vm/v3/disk?where=host.name+EQ+'delta'", &admin);
    assert_eq!(disks.len(), 1);
    assert_eq!(disks[0]["size_mib"], 10240);
    assert_eq!(
        site.get(&format!("/vm/v3/disk/{}", disks[0]["id"]), &admin)
            .0,
        200
    );
    let (status, cluster) = site.get("/vm/v3/cluster/1", &admin);
    assert_eq!((status, &cluster["name"]), (200, &json!("default")));
    let user = site.login(USER_EMAIL);
    let (status, body) = site.get("/vm/v3/node", &user);
    assert_eq!(
        (status, error_code(&body)),
        (403, 3001),
        "nodes are for admins"
    );
    assert_eq!(site.get("/vm/v3/os", &user).0, 200);
}

#[test]
fn renaming_a_cluster_renames_it_in_its_hosts_and_only_admins_may() {
    let (site, admin) = fleet();
    let user = site.login(USER_EMAIL);
    let (status, body) = site.post("/vm/v3/cluster/2", &user, json!({"name": "x"}));
    assert_eq!((status, error_code(&body)), (403, 3001));
    let (status, body) = site.post("/vm/v3/cluster", &user, json!({"name": "x"}));
    assert_eq!((status, error_code(&body)), (403, 3001));
    let (status, body) = site.post("/vm/v3/cluster", &admin, json!({"name": "zeta"}));
    assert_eq!((status, error_code(&body)), (409, 2005), "{body}");
    let (status, body) = site.post("/vm/v3/cluster", &admin, json!({}));
    assert_eq!((status, error_code(&body)), (400, 2003), "{body}");
    let (status, body) = site.post("/vm/v3/cluster/2", &admin, json!({"name": "aaa"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        site.names("/vm/v3/host?where=cluster.name+EQ+'aaa'", &admin),
        ["gamma", "delta", "eps-2"]
    );
    assert_eq!(
        site.post("/vm/v3/cluster/99", &admin, json!({"name": "q"}))
            .0,
        404
    );
}

#[test]
fn a_host_is_stopped_started_restarted_and_deleted_through_tasks() {
    let site = site();
    let user = site.login(USER_EMAIL);
    let id = site.create_host(&user, host_spec("web-1", 2, 1024, 1));
    for (action, task_name, state) in [
        ("stop", "host_stop", "stopped"),
        ("start", "host_start", "active"),
        ("restart", "host_restart", "active"),
    ] {
        let (status, body) = site.post(&format!("/vm/v3/host/{id}/{action}"), &user, json!({}));
        assert_eq!(status, 200, "{action}: {body}");
        let task = site.wait_task(body["task"].as_u64().unwrap(), &user);
        assert_eq!(
            (task["name"].as_str(), task["status"].as_str()),
            (Some(task_name), Some("complete"))
        );
        let (_, host) = site.get(&format!("/vm/v3/host/{id}"), &user);
        assert_eq!(host["state"], state, "after {action}");
    }
    let (status, body) = site.post(&format!("/vm/v3/host/{id}/start"), &user, json!({}));
    assert_eq!(
        (status, error_code(&body)),
        (409, 2005),
        "start a running host: {body}"
    );
    let (status, body) = site.post(
        &format!("/vm/v3/host/{id}/resource"),
        &user,
        json!({"cpu_number": 3}),
    );
    assert_eq!(
        (status, error_code(&body)),
        (409, 2005),
        "resize a running host: {body}"
    );
    let (_, body) = site.post(&format!("/vm/v3/host/{id}/stop"), &user, json!({}));
    site.wait_task(body["task"].as_u64().unwrap(), &user);
    let (status, body) = site.post(
        &format!("/vm/v3/host/{id}/resource"),
        &user,
        json!({"cpu_number": 3}),
    );
    assert_eq!(status, 200, "{body}");
    site.wait_task(body["task"].as_u64().unwrap(), &user);
    assert_eq!(site.list("/vm/v3/host", &user)[0]["cpu_number"], 3);
    let (status, body) = site.delete(&format!("/vm/v3/host/{id}"), &user);
    assert_eq!(status, 200, "{body}");
    let task = site.wait_task(body["task"].as_u64().unwrap(), &user);
    assert_eq!(task["name"], "host_delete");
    assert_eq!(site.get(&format!("/vm/v3/host/{id}"), &user).0, 404);
    assert_eq!(site.list("/vm/v3/host", &user).len(), 0);
}

#[test]
fn host_creation_validates_its_fields() {
    let site = site();
    let user = site.login(USER_EMAIL);
    let cases = [
        (
            json!({"os": 1, "cpu_number": 1, "ram_mib": 512, "hdd_mib": 10240}),
            "name",
        ),
        (
            json!({"name": "a b", "os": 1, "cpu_number": 1, "ram_mib": 512, "hdd_mib": 10240}),
            "name",
        ),
        (
            json!({"name": "a", "os": 99, "cpu_number": 1, "ram_mib": 512, "hdd_mib": 10240}),
            "os",
        ),
        (
            json!({"name": "a", "os": 1, "cpu_number": 0, "ram_mib": 512, "hdd_mib": 10240}),
            "cpu_number",
        ),
        (
            json!({"name": "a", "os": 1, "cpu_number": 1, "ram_mib": 512, "hdd_mib": 10240, "cluster": 9}),
            "cluster",
        ),
        (
            json!({"name": "a", "os": 1, "cpu_number": 1, "ram_mib": 512, "hdd_mib": 10240, "password": "x"}),
            "password",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = site.post("/vm/v3/host", &user, body);
        assert_eq!((status, error_code(&answer)), (400, 2003), "{answer}");
        assert_eq!(answer["error"]["value"]["field"], field);
    }
    let (status, answer) = site.post(
        "/vm/v3/host",
        &user,
        json!({"name": "huge", "os": 1, "cpu_number": 1000, "ram_mib": 512, "hdd_mib": 10240}),
    );
    assert_eq!((status, error_code(&answer)), (409, 2006), "{answer}");
    assert_eq!(site.post("/vm/v3/host", "", json!({})).0, 401);
}

#[test]
fn users_see_only_their_own_hosts_and_tasks() {
    let site = site();
    let admin = site.login(ADMIN_EMAIL);
    let user = site.login(USER_EMAIL);
    let mine = site.create_host(&user, host_spec("mine", 1, 512, 1));
    let theirs = site.create_host(&admin, host_spec("theirs", 1, 512, 1));
    assert_eq!(site.names("/vm/v3/host", &user), ["mine"]);
    assert_eq!(site.names("/vm/v3/host", &admin), ["mine", "theirs"]);
    assert_eq!(site.list("/vm/v3/task", &user).len(), 1);
    assert_eq!(site.get(&format!("/vm/v3/host/{theirs}"), &user).0, 404);
    assert_eq!(
        site.post(&format!("/vm/v3/host/{theirs}/stop"), &user, json!({}))
            .0,
        404
    );
    assert_eq!(site.get(&format!("/vm/v3/host/{mine}"), &admin).0, 200);
}

#[test]
fn unknown_functions_and_methods_answer_in_the_envelope() {
    let site = site();
    let admin = site.login(ADMIN_EMAIL);
    let (status, body) = site.get("/vm/v3/nothing", &admin);
    assert_eq!((status, error_code(&body)), (404, 2004));
    let (status, body) = site.delete("/vm/v3/cluster", &admin);
    assert_eq!((status, error_code(&body)), (405, 2007));
}

// ---------------------------------------------------------------- the hypervisor's other VMs

#[test]
fn vms_made_by_other_families_appear_change_state_and_disappear_in_host_lists() {
    let site = site_with(HELLO_MOUNT);
    let admin = site.login(ADMIN_EMAIL);
    let user = site.login(USER_EMAIL);
    let owner = site.login(HELLO_EMAIL);
    // Lists are read once before, so the projection has a cursor to move on from.
    assert!(site.list("/vm/v3/host", &admin).is_empty());
    let vm = site.hello_vm("outside-1");
    let listed = site.list("/vm/v3/host?where=name+EQ+'outside-1'", &admin);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let host = &listed[0];
    assert_eq!(host["state"], "active");
    assert_eq!(host["uuid"], vm.as_str());
    assert_eq!(host["account"]["email"], HELLO_EMAIL, "{host}");
    assert_eq!(host["cluster"]["id"], 1);
    assert!(host["node"]["id"].as_u64().is_some(), "{host}");
    assert_eq!(host["os"]["name"], "alpine-3.20", "{host}");
    assert_eq!(host["ip4"].as_array().map(Vec::len), Some(1));
    let id = host["id"].as_u64().unwrap();
    // The owner's account sees it; another user does not.
    assert_eq!(site.names("/vm/v3/host", &owner), ["outside-1"]);
    assert!(site.list("/vm/v3/host", &user).is_empty());
    assert_eq!(site.get(&format!("/vm/v3/host/{id}"), &user).0, 404);
    // Its disk is listed with it.
    let disks = site.list(&format!("/vm/v3/disk?where=host.id+EQ+{id}"), &owner);
    assert_eq!(disks.len(), 1, "{disks:?}");
    // A state change made elsewhere shows in the next list.
    site.hello_act(&vm, "stop");
    site.hello_wait(&vm, "stopped");
    let listed = site.list("/vm/v3/host?where=state+EQ+'stopped'", &admin);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (status, item) = site.get(&format!("/vm/v3/host/{id}"), &owner);
    assert_eq!((status, &item["state"]), (200, &json!("stopped")));
    // The owner can drive it from here too.
    let (status, body) = site.post(&format!("/vm/v3/host/{id}/start"), &owner, json!({}));
    assert_eq!(status, 200, "{body}");
    let task = site.wait_task(body["task"].as_u64().unwrap(), &owner);
    assert_eq!(task["status"], "complete", "{task}");
    // Deleted elsewhere: gone from lists, get and disks.
    site.hello_act(&vm, "delete");
    site.hello_wait(&vm, "deleted");
    assert!(site.list("/vm/v3/host", &admin).is_empty());
    assert_eq!(site.get(&format!("/vm/v3/host/{id}"), &admin).0, 404);
    assert!(site.list("/vm/v3/disk", &admin).is_empty());
    // A VM whose owner is no account here: admins see it, nobody else does.
    let (status, made) = site.post("/vm/v3/host", &admin, host_spec("mine", 1, 512, 1));
    assert_eq!(status, 200, "{made}");
    assert_eq!(site.list("/vm/v3/host", &admin).len(), 1);
    assert!(site.list("/vm/v3/host", &owner).is_empty());
}

#[test]
fn hosts_are_placed_on_nodes_of_their_cluster_or_refused_for_room() {
    let site = site();
    let admin = site.login(ADMIN_EMAIL);
    let (_, edge) = site.post("/vm/v3/cluster", &admin, json!({"name": "edge"}));
    let edge = edge["id"].as_u64().unwrap();
    let (_, empty) = site.post("/vm/v3/cluster", &admin, json!({"name": "empty"}));
    let empty = empty["id"].as_u64().unwrap();
    let edge_node = site.move_node("sim-node-2", edge, &admin);
    for name in ["e1", "e2", "e3"] {
        let id = site.create_host(&admin, host_spec(name, 4, 1024, edge));
        let (_, host) = site.get(&format!("/vm/v3/host/{id}"), &admin);
        assert_eq!(host["name"], name);
    }
    let on_edge = site.list(&format!("/vm/v3/host?where=node.id+EQ+{edge_node}"), &admin);
    assert_eq!(on_edge.len(), 3);
    assert!(
        on_edge.iter().all(|h| h["cluster"]["id"] == edge),
        "{on_edge:?}"
    );
    // sim-node-2 has 4 of 16 CPUs left; sim-node-1 has all 16, but is not in edge.
    let (status, body) = site.post("/vm/v3/host", &admin, host_spec("e4", 8, 1024, edge));
    assert_eq!((status, error_code(&body)), (409, 2006), "{body}");
    let id = site.create_host(&admin, host_spec("d1", 8, 1024, 1));
    let (_, host) = site.get(&format!("/vm/v3/host/{id}"), &admin);
    assert_eq!(host["name"], "d1");
    let listed = site.list("/vm/v3/host?where=name+EQ+'d1'", &admin);
    assert_ne!(listed[0]["node"]["id"], edge_node, "{listed:?}");
    // A cluster without nodes takes no host.
    let (status, body) = site.post("/vm/v3/host", &admin, host_spec("x", 1, 512, empty));
    assert_eq!((status, error_code(&body)), (409, 2006), "{body}");
    assert_eq!(site.list("/vm/v3/host", &admin).len(), 4);
}

#[test]
fn the_guest_password_reaches_the_hypervisor_only_sealed_and_no_answer_carries_it() {
    let site = site();
    let admin = site.login(ADMIN_EMAIL);
    let secret = "Guest-Root-Pw-7a3c19";
    let mut spec = host_spec("sealed", 1, 512, 1);
    spec["password"] = json!(secret);
    let (status, created) = site.post("/vm/v3/host", &admin, spec);
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_u64().unwrap();
    let task = site.wait_task(created["task"].as_u64().unwrap(), &admin);
    let mut answers = vec![created.to_string(), task.to_string()];
    for path in [
        "/vm/v3/host".to_owned(),
        format!("/vm/v3/host/{id}"),
        format!("/vm/v3/host/{id}/history"),
        "/vm/v3/task".to_owned(),
        "/vm/v3/disk".to_owned(),
    ] {
        let (status, body) = site.get(&path, &admin);
        assert_eq!(status, 200, "{path}: {body}");
        answers.push(body.to_string());
    }
    for text in &answers {
        assert!(
            !text.contains(secret),
            "an answer carries the password: {text}"
        );
        assert!(
            !text.contains("root_password"),
            "an answer carries the sealed password: {text}"
        );
    }
    assert!(
        !site.server.log().contains(secret),
        "the log carries the password"
    );
    // The hypervisor has it sealed in the VM's metadata under `guest`.
    let db = rusqlite::Connection::open(site.server.data_dir().join("tessera.db")).expect("db");
    let metadata: String = db
        .query_row(
            "SELECT metadata FROM hv_vms WHERE name = 'sealed'",
            [],
            |row| row.get(0),
        )
        .expect("the vm");
    assert!(!metadata.contains(secret), "{metadata}");
    let metadata: Value = serde_json::from_str(&metadata).expect("json");
    let sealed = metadata["guest"]["root_password_sealed"]
        .as_str()
        .unwrap_or_default();
    assert!(sealed.len() > secret.len(), "{metadata}");
    assert_eq!(metadata["guest"]["sealed_by"], "vmmanager");
    // A password that is no text is refused without being echoed.
    let mut spec = host_spec("bad-pw", 1, 512, 1);
    spec["password"] = json!(987_654_321);
    let (status, body) = site.post("/vm/v3/host", &admin, spec);
    assert_eq!((status, error_code(&body)), (400, 2003), "{body}");
    assert!(!body.to_string().contains("987654321"), "{body}");
}

// ---------------------------------------------------------------- migrate, history, logout

#[test]
fn an_admin_migrates_a_host_to_another_node_of_its_cluster_as_a_task() {
    let site = site_with(HELLO_MOUNT);
    let admin = site.login(ADMIN_EMAIL);
    let user = site.login(USER_EMAIL);
    let id = site.create_host(&user, host_spec("mover", 2, 1024, 1));
    let node_of = |site: &Site| {
        site.list(&format!("/vm/v3/host?where=id+EQ+{id}"), &admin)[0]["node"]["id"]
            .as_u64()
            .unwrap()
    };
    let before = node_of(&site);
    let other = site
        .list("/vm/v3/node", &admin)
        .iter()
        .map(|n| n["id"].as_u64().unwrap())
        .find(|n| *n != before)
        .unwrap();
    let (status, body) = site.post(
        &format!("/vm/v3/host/{id}/migrate"),
        &admin,
        json!({ "node": other }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], id);
    let task = site.wait_task(body["task"].as_u64().unwrap(), &admin);
    assert_eq!(
        (task["name"].as_str(), task["status"].as_str()),
        (Some("host_migrate"), Some("complete"))
    );
    assert_eq!(node_of(&site), other);
    // Without a node: the other node of the cluster.
    let (status, body) = site.post(&format!("/vm/v3/host/{id}/migrate"), &admin, json!({}));
    assert_eq!(status, 200, "{body}");
    site.wait_task(body["task"].as_u64().unwrap(), &admin);
    assert_eq!(node_of(&site), before);
    // Refusals.
    let path = format!("/vm/v3/host/{id}/migrate");
    let (status, body) = site.post(&path, &user, json!({ "node": other }));
    assert_eq!(
        (status, error_code(&body)),
        (403, 3001),
        "users may not migrate"
    );
    let (status, body) = site.post(&path, &admin, json!({ "node": 99 }));
    assert_eq!((status, error_code(&body)), (400, 2003), "{body}");
    assert_eq!(body["error"]["value"]["field"], "node");
    let (status, body) = site.post(&path, &admin, json!({ "node": before }));
    assert_eq!(
        (status, error_code(&body)),
        (400, 2003),
        "already there: {body}"
    );
    let (status, body) = site.post(&path, &admin, json!({ "node": "x" }));
    assert_eq!((status, error_code(&body)), (400, 2003), "{body}");
    let (status, cluster) = site.post("/vm/v3/cluster", &admin, json!({"name": "far"}));
    assert_eq!(status, 200);
    site.move_node("sim-node-2", cluster["id"].as_u64().unwrap(), &admin);
    let far = site.list("/vm/v3/node?where=name+EQ+'sim-node-2'", &admin)[0]["id"].clone();
    if far != json!(before) {
        let (status, body) = site.post(&path, &admin, json!({ "node": far }));
        assert_eq!(
            (status, error_code(&body)),
            (400, 2003),
            "other cluster: {body}"
        );
    }
    let (status, body) = site.post("/vm/v3/host/999/migrate", &admin, json!({}));
    assert_eq!((status, error_code(&body)), (404, 2004), "{body}");
    assert_eq!(site.post(&path, "", json!({})).0, 401);
}

#[test]
fn a_hosts_history_lists_its_tasks_and_changes_made_elsewhere() {
    let site = site_with(HELLO_MOUNT);
    let admin = site.login(ADMIN_EMAIL);
    let user = site.login(USER_EMAIL);
    let id = site.create_host(&user, host_spec("storied", 1, 512, 1));
    let (_, body) = site.post(&format!("/vm/v3/host/{id}/stop"), &user, json!({}));
    let stop_task = body["task"].as_u64().unwrap();
    site.wait_task(stop_task, &user);
    // Started again by another family, through the hypervisor.
    let uuid = site.list(&format!("/vm/v3/host?where=id+EQ+{id}"), &user)[0]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    site.hello_act(&uuid, "start");
    site.hello_wait(&uuid, "running");
    let (status, history) = site.get(&format!("/vm/v3/host/{id}/history"), &user);
    assert_eq!(status, 200, "{history}");
    let list = history["list"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["host_create", "host_stop", "host_start"],
        "{history}"
    );
    assert_eq!(history["size"], 3);
    assert_eq!(history["max_id"], 3);
    assert_eq!(list[1]["task"], stop_task);
    assert_eq!(list[1]["state"], "complete");
    assert_eq!(list[2]["initiator"], "hello");
    assert_eq!(list[2]["state"], "complete", "a finished foreign change");
    assert!(list[2]["task"].is_null());
    assert!(
        list.iter()
            .all(|e| e["date_create"].as_str().is_some_and(|d| d.len() == 19))
    );
    let (_, page) = site.get(&format!("/vm/v3/host/{id}/history?limit=1,1"), &user);
    assert_eq!(page["list"][0]["name"], "host_stop", "{page}");
    assert_eq!(page["size"], 3);
    // Refusals: filters it does not take, another user's host, no session.
    let (status, body) = site.get(&format!("/vm/v3/host/{id}/history?where=id+EQ+1"), &user);
    assert_eq!((status, error_code(&body)), (400, 2002), "{body}");
    let (status, body) = site.get(&format!("/vm/v3/host/{id}/history?limit=x"), &user);
    assert_eq!((status, error_code(&body)), (400, 2002), "{body}");
    let theirs = site.create_host(&admin, host_spec("theirs", 1, 512, 1));
    assert_eq!(
        site.get(&format!("/vm/v3/host/{theirs}/history"), &user).0,
        404
    );
    assert_eq!(site.get(&format!("/vm/v3/host/{id}/history"), "").0, 401);
}

#[test]
fn logout_ends_the_session_or_token_it_is_sent_with_on_both_paths() {
    let site = site();
    for prefix in ["/auth/v4", "/api/auth/v4"] {
        let session = site.login(USER_EMAIL);
        let other = site.login(USER_EMAIL);
        let (status, body) = answer(
            client()
                .delete(site.server.url(&format!("{prefix}/token")))
                .header("x-xsrf-token", &session)
                .send()
                .expect("logout"),
        );
        assert_eq!(status, 200, "{body}");
        let (status, body) = site.get("/vm/v3/host", &session);
        assert_eq!((status, error_code(&body)), (401, 3001), "{prefix}");
        // Only that session ended.
        assert_eq!(site.get("/vm/v3/host", &other).0, 200);
        let (status, body) = site.delete(&format!("{prefix}/token"), &session);
        assert_eq!(
            (status, error_code(&body)),
            (401, 3001),
            "logged out already"
        );
    }
    // A long-lived token logs out the same way; the ses6 cookie is cleared.
    let session = site.login(USER_EMAIL);
    let (status, token) = site.post(
        "/auth/v4/token",
        &session,
        json!({"expires_at": "2099-01-01 00:00:00", "description": "ci"}),
    );
    assert_eq!(status, 201, "{token}");
    let token = token["token"].as_str().unwrap().to_owned();
    let response = client()
        .delete(site.server.url("/auth/v4/token"))
        .header("x-xsrf-token", &token)
        .send()
        .expect("logout");
    assert_eq!(response.status().as_u16(), 200);
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        cookie.starts_with("ses6=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
    assert_eq!(site.get("/vm/v3/host", &token).0, 401);
    assert_eq!(site.get("/vm/v3/host", &session).0, 200);
    assert_eq!(site.delete("/auth/v4/token", "").0, 401);
}

// ---------------------------------------------------------------- readiness

#[test]
fn while_the_kernel_loads_its_plugins_requests_get_503_with_retry_after() {
    // Without a compile cache every plugin compiles at start: seconds here.
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let toml = r#"
log = "info"
[runtime]
compile_cache = false
[plugins.vmmanager]
source = "vmmanager"
mounts = ["/vm/v3", "/auth/v4", "/api/auth/v4"]
grants = ["storage", "auth", "auth-admin", "jobs", "hypervisor"]
"#;
    std::fs::write(dir.path().join("site.toml"), toml).expect("site");
    let mut child = std::process::Command::new(crate::harness::TESSERA)
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(dir.path().join("site.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn tessera");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut unavailable = 0;
    let last = loop {
        assert!(Instant::now() < deadline, "the kernel never became ready");
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let request = format!(
            "GET /vm/v3/host HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        );
        if stream.write_all(request.as_bytes()).is_err() {
            continue;
        }
        let mut response = String::new();
        if stream.read_to_string(&mut response).is_err() || response.is_empty() {
            continue;
        }
        if response.starts_with("HTTP/1.1 503") {
            assert!(
                response
                    .to_ascii_lowercase()
                    .contains("\r\nretry-after: 1\r\n"),
                "{response}"
            );
            unavailable += 1;
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        break response;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(unavailable > 0, "no request came while the plugins loaded");
    // Once ready the plugin answers itself: no session here.
    assert!(last.starts_with("HTTP/1.1 401"), "{last}");
    assert!(last.contains("3001"), "{last}");
}
