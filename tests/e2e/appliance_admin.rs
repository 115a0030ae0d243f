//! The appliance admin API (`/api/v1/admin`) over real HTTP: setup and
//! auth, the information endpoints, update packages end to end, backups and
//! restores, TLS certificate install, optional endpoints and their rules.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{HOSTILE_WASM, Server, TESSERA, client, json, run_cli};

const PREFIX: &str = "/api/v1/admin";
const TOKEN: &str = "testtoken";

/// A site with the admin API (optional endpoints as given), the hello
/// example at /hello (data written through another plugin) and a second
/// copy of hello at /greeter for updates to replace.
fn site(endpoints: &[&str], extra: &str) -> String {
    site_with(endpoints, "", extra)
}

/// `site`, with more lines in the admin plugin's settings table.
fn site_with(endpoints: &[&str], admin_settings: &str, extra: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    format!(
        r#"
log = "info"
[hypervisor.sim]
transition_delay_ms = 0

[plugins.appliance-admin]
source = "appliance-admin"
mounts = ["{PREFIX}"]
grants = ["storage", "auth", "auth-admin", "jobs", "files", "site-admin"]
[plugins.appliance-admin.settings]
endpoints = [{}]
{admin_settings}

[plugins.hello]
source = "hello"
mounts = ["/hello"]
grants = ["storage", "auth", "jobs", "hypervisor"]

[plugins.greeter]
source = "hello"
mounts = ["/greeter"]
grants = ["storage", "auth", "jobs", "hypervisor"]
{extra}
"#,
        endpoints.join(", ")
    )
}

const ALL: &[&str] = &["settings", "certs", "license", "storage", "backup"];

/// `multipart/form-data` by hand, so tests control every byte.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----tessera-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn hmac_hex(token: &str, message: &str) -> String {
    let key = hex::encode(Sha256::digest(token.as_bytes()));
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The admin API of one server, authenticating with HMAC hashes.
struct Admin {
    server: Server,
}

impl Admin {
    fn start(site_toml: &str) -> Admin {
        Admin::set_up(Server::with_site(site_toml))
    }

    /// Set the token of a fresh server.
    fn set_up(server: Server) -> Admin {
        let admin = Admin { server };
        let resp = admin.post_form_with("/setup", "", &[("newtoken", None, TOKEN.as_bytes())]);
        assert_eq!(resp.status(), 200, "first setup");
        admin
    }

    fn url(&self, endpoint: &str, auth: &str) -> String {
        self.server.url(&format!("{PREFIX}{endpoint}{auth}"))
    }

    fn hash(method: &str, endpoint: &str) -> String {
        format!(
            "?hash={}",
            hmac_hex(TOKEN, &format!("{method}{PREFIX}{endpoint}"))
        )
    }

    fn get(&self, endpoint: &str) -> reqwest::blocking::Response {
        client()
            .get(self.url(endpoint, &Self::hash("GET", endpoint)))
            .send()
            .unwrap()
    }

    fn post_form(
        &self,
        endpoint: &str,
        parts: &[(&str, Option<&str>, &[u8])],
    ) -> reqwest::blocking::Response {
        self.post_form_with(endpoint, &Self::hash("POST", endpoint), parts)
    }

    fn post_form_with(
        &self,
        endpoint: &str,
        auth: &str,
        parts: &[(&str, Option<&str>, &[u8])],
    ) -> reqwest::blocking::Response {
        let (content_type, body) = multipart(parts);
        client()
            .post(self.url(endpoint, auth))
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap()
    }

    /// Poll `GET endpoint` until `done` says so (bounded).
    fn wait_for(&self, endpoint: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let body = json(self.get(endpoint));
            if done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{endpoint} never got there: {body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn key_file(&self) -> std::path::PathBuf {
        self.server.data_dir().join("update.key")
    }
}

fn status_body(resp: reqwest::blocking::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

// Setup and authentication.

#[test]
fn setup_then_token_and_hash_authenticate_and_everything_else_is_403() {
    let server = Server::with_site(&site(&[], ""));
    let admin = Admin { server };
    // First run: authenticated endpoints answer 403, even with a guess.
    assert_eq!(admin.get("/version").status(), 403);
    assert_eq!(
        client()
            .get(admin.url("/version", "?token=x"))
            .send()
            .unwrap()
            .status(),
        403
    );
    let (status, body) =
        status_body(admin.post_form_with("/setup", "", &[("newtoken", None, b"testtoken")]));
    assert_eq!((status, body), (200, json!({"Status": "200 OK"})));

    // The CLIENTS.md vector: token `testtoken`, GET/api/v1/admin/version.
    let hash = "39791be66bfbce4966b6c3feb7bfcb9118c285fa952b030a9af2fcf64f1a67ac";
    assert_eq!(hmac_hex(TOKEN, "GET/api/v1/admin/version"), hash);
    let resp = client()
        .get(admin.url("/version", &format!("?hash={hash}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(json(resp)["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        client()
            .get(admin.url("/version", "?token=testtoken"))
            .send()
            .unwrap()
            .status(),
        200
    );

    for auth in [
        "",
        "?token=wrong",
        "?token=",
        "?hash=39791be66bfbce4966b6c3feb7bfcb9118c285fa952b030a9af2fcf64f1a67ad",
        "?hash=nothex",
    ] {
        let resp = client().get(admin.url("/version", auth)).send().unwrap();
        assert_eq!(resp.status(), 403, "{auth:?}");
        assert_eq!(resp.headers()["error-message"], "Authentication error");
        assert_eq!(
            json(resp),
            json!({"Status": "403 Forbidden", "Error-Message": "Authentication error"})
        );
    }
    // A hash is per endpoint: the version hash does not open /build.
    let resp = client()
        .get(admin.url("/build", &format!("?hash={hash}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    // Setup is closed once a token is set.
    let resp = admin.post_form_with("/setup", "", &[("newtoken", None, b"takeover")]);
    assert_eq!(resp.status(), 403);
}

#[test]
fn changing_the_token_takes_the_old_one_away() {
    let admin = Admin::start(&site(&[], ""));
    let resp = admin.post_form_with(
        "/setup",
        "?token=testtoken",
        &[("newtoken", None, b"n3w~token!")],
    );
    assert_eq!(resp.status(), 200);
    assert_eq!(
        client()
            .get(admin.url("/version", "?token=testtoken"))
            .send()
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        client()
            .get(admin.url("/version", "?token=n3w~token!"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let hash = hmac_hex("n3w~token!", "POST/api/v1/admin/setup");
    let resp = admin.post_form_with(
        "/setup",
        &format!("?hash={hash}"),
        &[("newtoken", None, TOKEN.as_bytes())],
    );
    assert_eq!(resp.status(), 200);
    assert_eq!(admin.get("/version").status(), 200);
}

#[test]
fn a_failed_token_update_pauses_two_seconds_and_is_audited() {
    let admin = Admin::start(&site(&[], ""));
    let bad_tokens: [&[u8]; 3] = [b"has space", b"", &[b'a'; 256]];
    for bad in bad_tokens {
        let started = Instant::now();
        let resp = admin.post_form("/setup", &[("newtoken", None, bad)]);
        let elapsed = started.elapsed();
        assert_eq!(resp.status(), 400, "{:?}", String::from_utf8_lossy(bad));
        assert!(
            elapsed >= Duration::from_millis(1900),
            "no pause: {elapsed:?}"
        );
    }
    let started = Instant::now();
    let resp = admin.post_form_with("/setup", "?token=wrong", &[("newtoken", None, b"x")]);
    assert_eq!(resp.status(), 403);
    assert!(started.elapsed() >= Duration::from_millis(1900));
    // The token still works, and the kernel's audit trail has the refusals.
    assert_eq!(admin.get("/version").status(), 200);
    let data = admin.server.data_dir();
    let (code, out, err) = run_cli(&[
        "audit",
        "--json",
        "--limit",
        "50",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("token.update").count(), 4, "{out}");
    assert!(
        !out.contains("has space"),
        "the refused value is not audited"
    );
}

#[test]
fn malformed_multipart_bodies_are_400() {
    let admin = Admin::start(&site(ALL, ""));
    let hash = Admin::hash("POST", "/settings");
    for (content_type, body) in [
        ("application/json", &b"{}"[..]),
        ("multipart/form-data", b"--x\r\n"),
        (
            "multipart/form-data; boundary=x",
            b"garbage without a boundary",
        ),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data; name=\"settings\"\r\n\r\nno end",
        ),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nno-colon\r\n\r\nv\r\n--x--",
        ),
    ] {
        let resp = client()
            .post(admin.url("/settings", &hash))
            .header("content-type", content_type)
            .body(body.to_vec())
            .send()
            .unwrap();
        assert_eq!(
            resp.status(),
            400,
            "{content_type} {:?}",
            String::from_utf8_lossy(body)
        );
        assert!(resp.headers().contains_key("error-message"));
    }
    // A well-formed form without the parameter is 400 too.
    assert_eq!(
        admin
            .post_form("/settings", &[("other", None, b"x")])
            .status(),
        400
    );
}

#[test]
fn first_run_makes_a_token_for_the_operator_and_closes_open_setup() {
    let admin = Admin {
        server: Server::with_site(&site(
            &[],
            "[plugins.appliance-admin.settings.first-run]\nenabled = true\nword-length = 5\n",
        )),
    };
    let resp = admin.post_form_with("/setup", "", &[("newtoken", None, b"mine")]);
    assert_eq!(resp.status(), 403, "setup is not open with first-run");
    let file = admin
        .server
        .data_dir()
        .join("files/appliance-admin/first-run-token");
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(token.split('-').count(), 5, "{token}");
    assert!(
        !admin.server.log().contains(&token),
        "the token is never logged"
    );
    let resp = admin.post_form_with(
        "/setup",
        &format!("?token={token}"),
        &[("newtoken", None, b"mine")],
    );
    assert_eq!(resp.status(), 200);
    assert!(!file.exists());
    assert_eq!(
        client()
            .get(admin.url("/version", "?token=mine"))
            .send()
            .unwrap()
            .status(),
        200
    );
}

// Information, support and administration.

#[test]
fn information_endpoints_answer_in_the_spec_shapes() {
    let admin = Admin::start(&site(&["backup", "certs"], ""));
    let changelog = admin.get("/changelog");
    assert_eq!(changelog.status(), 200);
    assert!(
        changelog.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(changelog.text().unwrap().contains("# Changelog"));
    let build = json(admin.get("/build"));
    assert!(
        build["builddate"].as_str().unwrap().parse::<u64>().unwrap() > 1_600_000_000,
        "{build}"
    );
    let health = json(admin.get("/health"));
    for (section, field) in [
        ("disk", "used"),
        ("disk", "total"),
        ("memory", "used"),
        ("memory", "total"),
    ] {
        assert!(
            health[section][field].as_str().is_some(),
            "{section}.{field}: {health}"
        );
    }
    assert!(health["disk"]["percentage"].as_u64().unwrap() <= 100);
    assert!(health["cpu"]["num"].as_u64().unwrap() >= 1);
    assert_eq!(
        health["cpu"]["load"].as_str().unwrap().split(", ").count(),
        3
    );
    assert!(health["cpu"]["cpu5min"].is_u64());

    let services = json(admin.get("/services"));
    let services: Vec<(String, String)> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        })
        .collect();
    for name in [
        "http-listener",
        "job-workers",
        "hypervisor-sim",
        "plugin-appliance-admin",
        "plugin-hello",
    ] {
        assert!(
            services.contains(&(name.to_string(), "running".to_string())),
            "{name}: {services:?}"
        );
    }
    assert!(services.contains(&("https-listener".into(), "stopped".into())));

    let endpoints = json(admin.get("/endpoints"));
    let expected: Vec<String> = [
        "backup",
        "build",
        "certs",
        "changelog",
        "debug",
        "endpoints",
        "health",
        "logs",
        "reboot",
        "services",
        "setup",
        "update",
        "version",
    ]
    .iter()
    .map(|e| format!("{PREFIX}/{e}"))
    .collect();
    assert_eq!(endpoints, json!({ "endpoints": expected }));
    // A wrong method is 400; an unknown endpoint 404.
    let resp = client()
        .delete(admin.url("/version", &Admin::hash("DELETE", "/version")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(admin.get("/nonsense").status(), 404);
}

#[test]
fn disabled_optional_endpoints_are_404_and_enabled_ones_answer() {
    let admin = Admin::start(&site(&[], ""));
    for endpoint in [
        "/settings",
        "/certs",
        "/license",
        "/storage",
        "/backup",
        "/backup/log",
        "/backup/download",
    ] {
        let resp = admin.get(endpoint);
        assert_eq!(resp.status(), 404, "{endpoint}");
        assert_eq!(json(resp)["Status"], "404 Not Found");
    }
    assert_eq!(
        admin
            .post_form("/backup", &[("action", None, b"START")])
            .status(),
        404
    );
    let listed = json(admin.get("/endpoints"));
    assert!(!listed.to_string().contains("/backup"), "{listed}");
}

#[test]
fn logs_and_debug_bundles_download_and_the_bundle_is_sealed() {
    let admin = Admin::start(&site(
        &[],
        "[plugins.hello.settings]\napi_key = \"do-not-ship-me\"\n",
    ));
    let resp = admin.get("/logs");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["filename"], "logs.tar.gz");
    let bytes = resp.bytes().unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut names = Vec::new();
    let mut text = String::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        names.push(entry.path().unwrap().display().to_string());
        entry.read_to_string(&mut text).unwrap();
    }
    assert!(names.contains(&"logs/tessera.log".to_string()), "{names:?}");
    assert!(text.contains("listening"), "the kernel's log is in it");

    let resp = admin.get("/debug");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["filename"], "debug-bundle.tar");
    let sealed = resp.bytes().unwrap();
    assert!(
        !sealed.windows(6).any(|w| w == b"config"),
        "the bundle is encrypted"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bundle.enc"), &sealed).unwrap();
    let out = dir.path().join("bundle.tar");
    let key = admin.key_file();
    let (code, _, err) = run_cli(&[
        "update",
        "unseal",
        "--key",
        key.to_str().unwrap(),
        dir.path().join("bundle.enc").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let mut files = std::collections::BTreeMap::new();
    for entry in tar::Archive::new(std::fs::File::open(&out).unwrap())
        .entries()
        .unwrap()
    {
        let mut entry = entry.unwrap();
        let mut body = String::new();
        entry.read_to_string(&mut body).unwrap();
        files.insert(entry.path().unwrap().display().to_string(), body);
    }
    assert!(files["debug/config.json"].contains("[removed]"));
    assert!(
        !files["debug/config.json"].contains("do-not-ship-me"),
        "secrets are removed"
    );
    assert!(files["debug/status.json"].contains("plugin-hello"));
    assert!(files["debug/recent.log"].contains("listening"));
}

#[test]
fn reboot_backs_up_then_restarts_on_the_same_port() {
    let admin = Admin::start(&site(&[], ""));
    let (status, body) = status_body(admin.get("/reboot"));
    assert_eq!((status, body), (202, json!({"Status": "202 Accepted"})));
    // The kernel re-executes and comes back on the same socket.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(admin.server.data_dir().join("logs/tessera.log"))
            .unwrap_or_default();
        let started_twice = log.matches("tessera::server: listening").count() == 2;
        let fresh = reqwest::blocking::Client::new()
            .get(admin.server.url("/_tessera/health"))
            .send();
        if started_twice && fresh.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the kernel did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
    let backups: Vec<_> = std::fs::read_dir(admin.server.data_dir().join("backups"))
        .unwrap()
        .collect();
    assert_eq!(backups.len(), 1, "a backup before the restart");
    assert_eq!(admin.get("/version").status(), 200, "the token survived");
}

// Updates.

fn pack(admin: &Admin, version: &str, min: &str, plugins: &[&str], key: &Path) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("update.enc");
    let mut args = vec![
        "update",
        "pack",
        "--key",
        key.to_str().unwrap(),
        "--version",
        version,
        "--min-version",
        min,
    ];
    let changelog = dir.path().join("CHANGELOG");
    std::fs::write(
        &changelog,
        format!("# Changelog\n\n## {version}\n\n  * greeter replaced\n"),
    )
    .unwrap();
    args.extend([
        "--changelog",
        changelog.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    args.extend(plugins);
    let (code, _, err) = run_cli(&args);
    assert_eq!(code, 0, "pack: {err}");
    let _ = admin;
    std::fs::read(out).unwrap()
}

fn post_update(admin: &Admin, package: &[u8]) -> reqwest::blocking::Response {
    admin.post_form("/update", &[("update", Some("update.enc"), package)])
}

fn wait_update(admin: &Admin) -> Value {
    admin.wait_for("/update", |b| b["status"] != "running")
}

#[test]
fn an_update_package_hot_swaps_the_plugin_and_reports_its_progress() {
    let temp = tempfile::tempdir().unwrap();
    let site_toml = site(&[], "");
    let admin = Admin::set_up(Server::start_in(temp.path(), Some(&site_toml)));
    // Before any update: 200 with nulls, and no log.
    assert_eq!(
        json(admin.get("/update")),
        json!({"status": null, "percentage": null, "log": null})
    );
    assert_eq!(admin.get("/update/log").status(), 404);
    assert_eq!(
        json(
            client()
                .get(admin.server.url("/greeter/hello"))
                .send()
                .unwrap()
        ),
        json!({"hello": "world"})
    );

    let greeter = format!("greeter={HOSTILE_WASM}");
    let package = pack(&admin, "0.2.0", "0.1.0", &[&greeter], &admin.key_file());
    let resp = post_update(&admin, &package);
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["location"], "/api/v1/admin/update");
    assert_eq!(
        json(resp),
        json!({"Status": "202 Accepted", "Location": "/api/v1/admin/update"})
    );
    let done = wait_update(&admin);
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["percentage"], 100);
    assert!(
        done["log"]
            .as_str()
            .unwrap()
            .contains("Updating system successful"),
        "{done}"
    );
    // The new code answers at the same mount; the version and changelog moved.
    let resp = client()
        .get(admin.server.url("/greeter/ok"))
        .send()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "ok");
    assert_eq!(
        client()
            .get(admin.server.url("/hello/hello"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(json(admin.get("/version"))["version"], "0.2.0");
    assert!(
        admin
            .get("/changelog")
            .text()
            .unwrap()
            .contains("greeter replaced")
    );
    let log = admin.get("/update/log");
    assert!(
        log.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let log = log.text().unwrap();
    assert!(
        log.contains("[SYSTEM] Updating system. Please wait.."),
        "{log}"
    );
    assert!(log.lines().all(|l| l.starts_with('[')), "{log}");

    // The installed update outlives a restart.
    admin.server.stop();
    let server = Server::start_in(temp.path(), Some(&site_toml));
    assert_eq!(
        client()
            .get(server.url("/greeter/ok"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "ok"
    );
}

#[test]
fn each_update_error_code_is_reported() {
    let admin = Admin::start(&site(&[], ""));
    let greeter = format!("greeter={HOSTILE_WASM}");
    let failed = |package: &[u8]| {
        assert_eq!(post_update(&admin, package).status(), 202);
        let body = wait_update(&admin);
        assert_eq!(body["status"], "failed", "{body}");
        (body["error-code"].as_str().unwrap().to_string(), body)
    };
    // E1005: another key, and bytes that are no package.
    let dir = tempfile::tempdir().unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, "ab".repeat(32)).unwrap();
    assert_eq!(
        failed(&pack(&admin, "0.2.0", "0.1.0", &[&greeter], &other_key)).0,
        "E1005"
    );
    assert_eq!(failed(b"not an update package").0, "E1005");
    // E1001: not newer, or needing a newer site.
    assert_eq!(
        failed(&pack(
            &admin,
            "0.1.0",
            "0.0.1",
            &[&greeter],
            &admin.key_file()
        ))
        .0,
        "E1001"
    );
    assert_eq!(
        failed(&pack(
            &admin,
            "0.3.0",
            "0.2.0",
            &[&greeter],
            &admin.key_file()
        ))
        .0,
        "E1001"
    );
    // E1002: a plugin the site does not have, or a file that is no component;
    // the old plugins stay.
    let missing = format!("nosuch={HOSTILE_WASM}");
    let (code, body) = failed(&pack(
        &admin,
        "0.2.0",
        "0.1.0",
        &[&missing],
        &admin.key_file(),
    ));
    assert_eq!(code, "E1002", "{body}");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm junk").unwrap();
    let junk_arg = format!("greeter={}", junk.display());
    assert_eq!(
        failed(&pack(
            &admin,
            "0.2.0",
            "0.1.0",
            &[&junk_arg],
            &admin.key_file()
        ))
        .0,
        "E1002"
    );
    assert_eq!(
        json(
            client()
                .get(admin.server.url("/greeter/hello"))
                .send()
                .unwrap()
        ),
        json!({"hello": "world"})
    );
    // E1000: a package whose manifest is broken.
    let key = tessera::primitives::site_admin::sealed::PackageKey::read(&admin.key_file()).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(9);
    header.set_cksum();
    tar.append_data(&mut header, "manifest.json", &b"{not json"[..])
        .unwrap();
    let broken = key.seal(&tar.into_inner().unwrap().finish().unwrap());
    assert_eq!(failed(&broken).0, "E1000");
    // E1003: no package in the form.
    let resp = admin.post_form("/update", &[("other", None, b"x")]);
    assert_eq!(resp.status(), 400);
    let body = json(admin.get("/update"));
    assert_eq!(
        (body["status"].as_str(), body["error-code"].as_str()),
        (Some("failed"), Some("E1003")),
        "{body}"
    );
    assert_eq!(body["error-message"], "Missing update package");
    assert_eq!(
        json(admin.get("/version"))["version"],
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn a_second_update_while_one_runs_is_refused_with_e1004() {
    // One job worker, busy with a long step of hello's, keeps the update queued.
    let admin = Admin::start(&site(
        &[],
        "[jobs]\nworkers = 1\n[limits]\njob_time_budget_ms = 600000\n",
    ));
    let resp = client()
        .post(admin.server.url("/hello/jobs"))
        .json(&json!({"kind": "spin", "ms": 3000}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let greeter = format!("greeter={HOSTILE_WASM}");
    let package = pack(&admin, "0.2.0", "0.1.0", &[&greeter], &admin.key_file());
    assert_eq!(post_update(&admin, &package).status(), 202);
    assert_eq!(json(admin.get("/update"))["status"], "running");
    let resp = post_update(&admin, &package);
    assert_eq!(resp.status(), 400);
    assert!(
        json(resp)["Error-Message"]
            .as_str()
            .unwrap()
            .starts_with("E1004")
    );
    assert!(admin.get("/update/log").text().unwrap().contains("E1004"));
    // The first one still completes.
    assert_eq!(wait_update(&admin)["status"], "success");
}

// Backup and restore.

fn notes(server: &Server) -> Vec<String> {
    let body: Value = reqwest::blocking::Client::new()
        .get(server.url("/hello/notes"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_string())
        .collect()
}

fn add_note(server: &Server, title: &str) {
    let resp = client()
        .post(server.url("/hello/notes"))
        .json(&json!({"title": title}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
}

#[test]
fn backup_download_restore_round_trip_brings_back_another_plugins_data() {
    let admin = Admin::start(&site(&["backup"], ""));
    assert_eq!(
        admin.get("/backup").status(),
        404,
        "no status before a backup"
    );
    assert_eq!(admin.get("/backup/download").status(), 404);
    assert_eq!(admin.get("/backup/log").status(), 404);
    add_note(&admin.server, "kept by the backup");

    let resp = admin.post_form("/backup", &[("action", None, b"START")]);
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["location"], "/api/v1/admin/backup");
    let done = admin.wait_for("/backup", |b| b["status"] != "running");
    assert_eq!(done["status"], "success", "{done}");
    let resp = admin.get("/backup/download");
    assert_eq!(resp.headers()["filename"], "backup.tar");
    let archive = resp.bytes().unwrap().to_vec();
    assert_eq!(done["sha256"], hex::encode(Sha256::digest(&archive)));
    assert!(done["filesize"].as_str().unwrap().ends_with('K'), "{done}");
    let log = admin.get("/backup/log").text().unwrap();
    assert!(
        log.contains("[LIVE IMAGE] Starting backup") && log.contains("Backup complete"),
        "{log}"
    );

    // Later writes, then the restore takes the site back to the backup.
    add_note(&admin.server, "written after the backup");
    assert_eq!(notes(&admin.server).len(), 2);
    let (status, body) = status_body(admin.post_form(
        "/backup/restore",
        &[("archive", Some("backup.tar"), &archive)],
    ));
    assert_eq!((status, body), (200, json!({"Status": "200 OK"})));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = std::panic::catch_unwind(|| notes(&admin.server));
        if now
            .as_ref()
            .is_ok_and(|n| n == &["kept by the backup".to_string()])
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restore did not bring the data back: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // STOP deletes the archive.
    let resp = reqwest::blocking::Client::new()
        .post(admin.url("/backup", &Admin::hash("POST", "/backup")))
        .header("content-type", multipart(&[("action", None, b"STOP")]).0)
        .body(multipart(&[("action", None, b"STOP")]).1)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(admin.get("/backup/download").status(), 404);
    assert!(
        admin
            .get("/backup/log")
            .text()
            .unwrap()
            .contains("Deleting backup archive")
    );
}

#[test]
fn bad_backup_requests_and_archives_are_400() {
    let admin = Admin::start(&site(&["backup"], ""));
    assert_eq!(
        admin
            .post_form("/backup", &[("action", None, b"PAUSE")])
            .status(),
        400
    );
    assert_eq!(admin.post_form("/backup", &[]).status(), 400);
    assert_eq!(admin.post_form("/backup/restore", &[]).status(), 400);
    for archive in [&b"not a tar"[..], &[0u8; 1024][..]] {
        let resp = admin.post_form(
            "/backup/restore",
            &[("archive", Some("backup.tar"), archive)],
        );
        assert_eq!(resp.status(), 400);
    }
    // A tar of a foreign database.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let bytes = std::fs::read(&db).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let manifest = json!({"format": "tessera-backup-1", "kernel_version": "0.1.0", "created_ms": 1,
        "database": "tessera.db", "size": bytes.len(), "sha256": hex::encode(Sha256::digest(&bytes))});
    for (name, data) in [
        ("manifest.json", manifest.to_string().into_bytes()),
        ("tessera.db", bytes),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_cksum();
        tar.append_data(&mut header, name, &data[..]).unwrap();
    }
    let resp = admin.post_form(
        "/backup/restore",
        &[("archive", Some("backup.tar"), &tar.into_inner().unwrap())],
    );
    assert_eq!(resp.status(), 400);
    assert!(
        json(resp)["Error-Message"]
            .as_str()
            .unwrap()
            .contains("site database")
    );
    assert_eq!(admin.get("/version").status(), 200, "nothing was swapped");
}

// TLS.

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The leaf certificate the server shows to a client trusting only `root_pem`;
/// `None` if the handshake fails.
fn tls_get(port: u16, root_pem: &str) -> Option<(Vec<u8>, String)> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"GET /_tessera/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    let leaf = tls.conn.peer_certificates()?.first()?.to_vec();
    Some((leaf, String::from_utf8_lossy(&response).into_owned()))
}

#[test]
fn an_installed_certificate_is_served_by_the_tls_listener() {
    let port = free_port();
    let admin = Admin::start(&site(
        &["certs"],
        &format!("[tls]\nlisten = \"127.0.0.1:{port}\"\n"),
    ));
    assert_eq!(
        json(admin.get("/certs")),
        json!({"status": null, "log": null})
    );
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (made.cert.pem(), made.key_pair.serialize_pem());
    // Before: the self-signed default, which this client does not trust.
    assert!(
        tls_get(port, &cert).is_none(),
        "the new certificate is not served yet"
    );

    // A key that does not match the certificate is refused and nothing changes.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let resp = admin.post_form(
        "/certs",
        &[
            ("public", Some("c.pem"), cert.as_bytes()),
            (
                "private",
                Some("k.pem"),
                other.key_pair.serialize_pem().as_bytes(),
            ),
        ],
    );
    assert_eq!(resp.status(), 400);
    assert_eq!(json(admin.get("/certs"))["status"], "failed");
    assert_eq!(
        admin
            .post_form("/certs", &[("public", Some("c.pem"), cert.as_bytes())])
            .status(),
        400
    );

    let resp = admin.post_form(
        "/certs",
        &[
            ("public", Some("c.pem"), cert.as_bytes()),
            ("private", Some("k.pem"), key.as_bytes()),
        ],
    );
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["location"], "/api/v1/admin/certs");
    let status = json(admin.get("/certs"));
    assert_eq!(status["status"], "success");
    assert!(
        status["log"]
            .as_str()
            .unwrap()
            .contains("Validating and adding TLS certificates")
    );
    let (leaf, response) =
        tls_get(port, &cert).expect("a TLS client trusting the new certificate connects");
    assert_eq!(leaf, made.cert.der().to_vec());
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let services = json(admin.get("/services")).to_string();
    assert!(
        services.contains(r#"{"https-listener":"running"}"#),
        "{services}"
    );
}

#[test]
fn certs_without_a_tls_listener_fail_clearly() {
    let admin = Admin::start(&site(&["certs"], ""));
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let resp = admin.post_form(
        "/certs",
        &[
            ("public", None, made.cert.pem().as_bytes()),
            ("private", None, made.key_pair.serialize_pem().as_bytes()),
        ],
    );
    assert_eq!(resp.status(), 400);
    assert!(
        json(resp)["Error-Message"]
            .as_str()
            .unwrap()
            .contains("no TLS listener")
    );
}

// Optional endpoints: network settings, license, storage.

#[test]
fn network_settings_are_validated_stored_and_shown() {
    let admin = Admin::start(&site(ALL, ""));
    assert_eq!(admin.get("/settings").status(), 404);
    let settings = json!({"network": {"interface": "eth0", "hostname": "test.host", "ip_address": "192.168.1.100",
        "netmask": "255.255.255.0", "gateway": "192.168.1.1", "dns1": "192.168.1.2", "dns2": "192.168.1.3",
        "ntpserver": "pool.ntp.org"}, "app": {"name": "testapp"}});
    let post = |doc: &Value| {
        admin.post_form(
            "/settings",
            &[(
                "settings",
                Some("settings.json"),
                doc.to_string().as_bytes(),
            )],
        )
    };
    let resp = post(&settings);
    assert_eq!(resp.status(), 202);
    assert_eq!(
        json(resp),
        json!({"Status": "202 Accepted", "Location": "/api/v1/admin/settings"})
    );
    assert_eq!(json(admin.get("/settings")), settings);
    // One bad value per rule; each is refused and leaves the stored settings alone.
    for (field, bad) in [
        ("interface", json!("e0")),
        ("interface", json!("eth-0")),
        ("hostname", json!("a_b")),
        ("ip_address", json!("192.168.1.x")),
        ("netmask", json!("8")),
        ("gateway", json!("1")),
        ("dns1", json!("host.name")),
        ("dns2", json!("1".repeat(46))),
        ("ntpserver", json!("pool ntp")),
    ] {
        let mut doc = settings.clone();
        doc["network"][field] = bad.clone();
        assert_eq!(post(&doc).status(), 400, "{field} = {bad}");
    }
    let mut no_hostname = settings.clone();
    no_hostname["network"]
        .as_object_mut()
        .unwrap()
        .remove("hostname");
    assert_eq!(post(&no_hostname).status(), 400);
    assert_eq!(
        admin
            .post_form("/settings", &[("settings", None, b"{not json")])
            .status(),
        400
    );
    assert_eq!(json(admin.get("/settings")), settings);
}

#[test]
fn storage_options_are_validated_per_type() {
    let admin = Admin::start(&site_with(
        ALL,
        "storage-options = [\"local\", \"nfs\", \"iscsi\", \"nbd\"]",
        "",
    ));
    assert_eq!(admin.get("/storage").status(), 404);
    let post = |doc: Value| {
        admin.post_form(
            "/storage",
            &[(
                "settings",
                Some("settings.json"),
                doc.to_string().as_bytes(),
            )],
        )
    };
    let nfs = json!({"type": "nfs", "mount_options": "noacl,sync", "ip": "192.168.1.100", "share": "/nfs/storage"});
    let resp = post(json!({ "storage": nfs }));
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["location"], "/api/v1/admin/storage");
    assert_eq!(
        json(admin.get("/storage")),
        json!({"storage": nfs, "options": ["local", "nfs", "iscsi", "nbd"]})
    );
    for bad in [
        json!({"type": "aoe", "device": "e0.1"}), // not offered on this site
        json!({"type": "floppy"}),
        json!({"type": "nfs", "ip": "192.168.1.100", "share": "/nfs/storage"}),
        json!({"type": "nfs", "mount_options": "no acl", "ip": "192.168.1.100", "share": "/nfs/storage"}),
        json!({"type": "nfs", "mount_options": "noacl", "ip": "192.168.1.100", "share": "/nfs:x"}),
        json!({"type": "iscsi", "target": "iqn.x:y", "ip": "10.0.0.1", "username": "us er", "password": "pass"}),
        json!({"type": "iscsi", "target": "iq", "ip": "10.0.0.1", "username": "user", "password": "pass"}),
        json!({"type": "nbd", "export_name": "exp", "ip": "10.0.0.1", "port": "123456"}),
        json!({"type": "nbd", "export_name": "exp", "ip": "10.0.0.z", "port": "80"}),
    ] {
        assert_eq!(post(json!({ "storage": bad })).status(), 400, "{bad}");
    }
    assert_eq!(post(json!({"storage": {"type": "local"}})).status(), 202);
    assert_eq!(
        json(admin.get("/storage"))["storage"],
        json!({"type": "local"})
    );
}

#[test]
fn a_sealed_license_is_installed_and_shown() {
    let admin = Admin::start(&site(ALL, ""));
    assert_eq!(admin.get("/license").status(), 404);
    let license = json!({"app": "enterprise", "users": 20, "expires": "19 January 2038",
        "name": "Enterprise Company", "contact": "cto@enterprise"});
    let dir = tempfile::tempdir().unwrap();
    let (plain, sealed) = (
        dir.path().join("license.json"),
        dir.path().join("license.asc"),
    );
    std::fs::write(&plain, license.to_string()).unwrap();
    let key = admin.key_file();
    let (code, _, err) = run_cli(&[
        "update",
        "seal",
        "--key",
        key.to_str().unwrap(),
        plain.to_str().unwrap(),
        "-o",
        sealed.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let resp = admin.post_form(
        "/license",
        &[(
            "license",
            Some("license.asc"),
            &std::fs::read(&sealed).unwrap(),
        )],
    );
    assert_eq!(resp.status(), 200);
    assert_eq!(json(resp), license);
    assert_eq!(json(admin.get("/license")), license);
    // Not sealed with this site's key, or absent: 404.
    assert_eq!(
        admin
            .post_form(
                "/license",
                &[("license", Some("l.asc"), license.to_string().as_bytes())]
            )
            .status(),
        404
    );
    assert_eq!(admin.post_form("/license", &[]).status(), 404);
    assert_eq!(json(admin.get("/license")), license);
}

#[test]
fn the_default_site_serves_the_admin_api() {
    let server = Server::default_site();
    let admin = Admin { server };
    assert_eq!(
        admin
            .post_form_with("/setup", "", &[("newtoken", None, TOKEN.as_bytes())])
            .status(),
        200
    );
    assert_eq!(admin.get("/version").status(), 200);
    assert_eq!(
        admin.get("/settings").status(),
        404,
        "optional endpoints are off by default"
    );
    assert_eq!(
        json(admin.get("/endpoints"))["endpoints"]
            .as_array()
            .unwrap()
            .len(),
        12,
        "the defaults and backup"
    );
    let _ = TESSERA;
}
