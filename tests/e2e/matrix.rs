//! The bad-input and authorization matrix: every route of every shipped plugin, taken
//! from the plugins' own route tables (`plugin_*::route_table()`, the SDK `Router`'s
//! `(method, pattern)` list), so a route added to a plugin is visited without touching
//! this file. Each route gets:
//!
//! - no credentials, another family's credential scheme, another account's credentials,
//!   a disabled account's credentials;
//! - with the owner's credentials: every path parameter replaced by traversal, SQL,
//!   unicode + control characters, over-long and out-of-range values;
//! - with the owner's credentials, on write methods: malformed JSON, wrong top-level and
//!   field types, an over-long field, control characters, a body over the site's limit.
//!
//! Every answer must be 4xx in the family's own error envelope (never 5xx, never another
//! envelope), may not show another account's data, and no record of the owner may change
//! (snapshots before and after). Afterwards no secret of the run (passwords, tokens,
//! private keys) may appear in any answer or in the server's whole log.

use std::collections::BTreeMap;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};

use crate::cloudapi::{KeyPair, Signer, add_key};
use crate::harness::{Server, cli_ok};

const PASSWORD: &str = "mx-pass-Secret-7351";
const APPLIANCE_TOKEN: &str = "mx-appliance-Token-9917";
/// Site body limit for the matrix: small so the over-limit case stays cheap.
const BODY_LIMIT: usize = 256 * 1024;
/// Names of the owner's records: a non-owner's answer must never contain them.
const MARKERS: &[&str] = &[
    "mxalice@example.com",
    "mx-alice-machine",
    "mx-alice-rule-comment",
    "mxalicehost",
    "mx-alice-drive",
    "mx-alice-role",
];

fn site() -> String {
    let grants = |g: &[&str]| {
        g.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all = grants(&["storage", "auth", "auth-admin", "jobs", "hypervisor"]);
    format!(
        r#"
log = "info,tessera=debug"
[limits]
body_limit_bytes = {BODY_LIMIT}
[auth]
max_failures = 1000000
argon2_m_kib = 64
argon2_t = 1
[hypervisor.sim]
transition_delay_ms = 0

[plugins.cloudapi]
source = "cloudapi"
mounts = ["/"]
grants = [{all}]
[plugins.cloudapi.settings]
throttle = {{ rate = 0.0, burst = 0.0 }}

[plugins.ticrypt]
source = "ticrypt"
mounts = ["/api"]
grants = [{ticrypt}]

[plugins.vmmanager]
source = "vmmanager"
mounts = ["/vm/v3", "/auth/v4", "/api/auth/v4"]
grants = [{all}]

[plugins.fosscloud]
source = "fosscloud"
mounts = ["/vm-manager/api"]
grants = [{fosscloud}]
[plugins.fosscloud.settings]
fc4school = true
macByParameter = true

[plugins.appliance-admin]
source = "appliance-admin"
mounts = ["/api/v1/admin"]
grants = [{appliance}]
"#,
        ticrypt = grants(&["storage", "auth", "hypervisor"]),
        fosscloud = grants(&["storage", "auth", "hypervisor"]),
        appliance = grants(&[
            "storage",
            "auth",
            "auth-admin",
            "jobs",
            "files",
            "site-admin"
        ]),
    )
}

/// Whose credentials a request carries.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Nobody,
    /// The owner's credentials in another family's scheme.
    Foreign,
    /// The owner (an admin account), in the family's own scheme.
    Owner,
    /// Another (non-admin) account.
    Other,
    /// A disabled account whose credentials were valid before.
    Disabled,
}

/// One account's credentials in every family's scheme.
struct Identity {
    login: &'static str,
    signer: Signer,
    vmmanager: String,
    /// tiCrypt tokens by type (`drive`, `vm`, `team`, `project`, `admin`).
    ticrypt: BTreeMap<&'static str, String>,
    private_key: String,
}

struct World {
    server: Server,
    http: Client,
    alice: Identity,
    bob: Identity,
    carol: Identity,
    /// Ids of the owner's records, by what they are.
    ids: BTreeMap<&'static str, String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Family {
    CloudApi,
    TiCrypt,
    VmManagerAuth,
    VmManager,
    FossCloud,
    Appliance,
}

impl Family {
    fn mount(self) -> &'static str {
        match self {
            Family::CloudApi => "",
            Family::TiCrypt => "/api",
            Family::VmManagerAuth => "/auth/v4",
            Family::VmManager => "/vm/v3",
            Family::FossCloud => "/vm-manager/api",
            Family::Appliance => "/api/v1/admin",
        }
    }

    fn routes(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Family::CloudApi => plugin_cloudapi::route_table(),
            Family::TiCrypt => plugin_ticrypt::route_table(),
            Family::VmManagerAuth => plugin_vmmanager::auth_route_table(),
            Family::VmManager => plugin_vmmanager::route_table(),
            Family::FossCloud => plugin_fosscloud::route_table(),
            Family::Appliance => plugin_appliance_admin::route_table(),
        }
    }

    /// Whether `body` is this family's error envelope (from its spec).
    fn is_error_envelope(self, status: u16, body: &Value) -> bool {
        match self {
            // {"code": "ResourceNotFound", "message": "..."}
            Family::CloudApi => body["code"].is_string() && body["message"].is_string(),
            // {"error": "...", "code": "WrongTokenType"}
            Family::TiCrypt => body["error"].is_string() && body["code"].is_string(),
            // {"error": {"code": 1, "msg": "..."}}
            Family::VmManager | Family::VmManagerAuth => {
                body["error"]["code"].is_u64() && body["error"]["msg"].is_string()
            }
            // {"status": 400, "code": 400032, "devDescription": "..."}
            Family::FossCloud => {
                body["status"].as_u64() == Some(u64::from(status))
                    && body["code"]
                        .as_u64()
                        .is_some_and(|c| c / 1000 == u64::from(status))
            }
            // {"Status": "400 Bad Request", "Error-Message": "..."}
            Family::Appliance => {
                body["Status"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(&status.to_string()))
                    && body["Error-Message"].is_string()
            }
        }
    }

    /// Routes that answer without credentials by design (the spec's open routes).
    fn is_open(self, method: &str, pattern: &str) -> bool {
        matches!(
            (self, method, pattern),
            (Family::CloudApi, "GET", "/--ping")
                | (Family::FossCloud, "GET", "/server/realms")
                | (Family::VmManagerAuth, "POST", "/public/token")
                | (Family::VmManagerAuth, "POST", "/public/key")
                | (Family::Appliance, "POST", "/setup")
        )
    }

    /// The tiCrypt token type a route takes, from its path.
    fn ticrypt_type(pattern: &str) -> &'static str {
        let first = pattern
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        match first {
            "drives" => "drive",
            "vms" | "vm" => "vm",
            "teams" => "team",
            "projects" => "project",
            _ => "admin",
        }
    }
}

// VMmanager's auth routes after its others: another account's `DELETE /token` ends
// that account's own session (see `visit_credentials`).
const FAMILIES: [Family; 6] = [
    Family::CloudApi,
    Family::TiCrypt,
    Family::VmManager,
    Family::VmManagerAuth,
    Family::FossCloud,
    Family::Appliance,
];

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Hostile path-parameter values (percent-encoded into one segment).
fn hostile_params() -> Vec<String> {
    [
        "../../../../etc/passwd".to_string(),
        "..\\..\\windows\\win.ini".to_string(),
        "' OR '1'='1' --".to_string(),
        "1; DROP TABLE accounts; --".to_string(),
        "\" UNION SELECT password FROM accounts --".to_string(),
        "\u{0}\r\nX-Injected: yes".to_string(),
        "ünï\u{202e}😀\u{feff}".to_string(),
        "-1".to_string(),
        "184467440737095516161844674407370955161".to_string(),
        "A".repeat(4096),
    ]
    .iter()
    .map(|v| enc(v))
    .collect()
}

/// Query parameters the families read (VMmanager's filter language, CloudAPI's
/// paging and predicate, tiCrypt's and the appliance's `token` aside), all hostile.
const HOSTILE_QUERY: &str = "where=%27%20OR%201%3D1--&orderby=%3BDROP%20TABLE%20x&limit=-1,x\
    &offset=-5&predicate=%7B%22and%22%3A%5B&name=%00%0D%0A&state=%E2%80%AE&sort=..%2F..\
    &memory=1e999&tombstone=-1&credentials=maybe";

/// Bad bodies for write methods: what, the bytes, what the route may answer.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let wrong_types = json!({
        "name": [1], "id": {"a": 1}, "email": 7, "password": 7, "login": [],
        "value": [], "action": 7, "image": 7, "package": [], "rule": 7, "type": 7,
        "token": 7, "key": 7, "members": "x", "vm": 7, "mode": 7, "capacity": "x",
        "size": "x", "owner": 7, "enabled": "x", "description": 7, "cluster": "x",
        "cpu_number": "x", "ram_mib": "x", "expires_at": [], "newtoken": 7,
    });
    // Every string holds a NUL: no route may store one.
    let control = json!({
        "name": "a\u{0}b\r\nX-Injected: 1\u{1b}[2J", "login": "a\u{0}b\r\n",
        "email": "a\u{0}@example.com\r\n", "description": "\u{0}\u{7}\u{1b}",
        "rule": "FROM any TO all vms ALLOW tcp PORT 22\u{0}", "value": "\u{0}",
        "newtoken": "tok\u{0}en", "members": ["a\u{0}"], "env": "\u{0}",
    });
    let long = "L".repeat(BODY_LIMIT / 8);
    let over_long = json!({"name": long, "login": long, "email": long, "description": long});
    let unparsable = Expect::Refused;
    let fields = Expect::RefusedOrAccepted;
    vec![
        ("malformed JSON", br#"{"name": "x", "#.to_vec(), unparsable),
        ("not JSON", b"\x00\xff\xfe garbage".to_vec(), unparsable),
        ("array body", b"[1, 2, 3]".to_vec(), unparsable),
        ("string body", br#""just a string""#.to_vec(), unparsable),
        (
            "wrong field types",
            wrong_types.to_string().into_bytes(),
            fields,
        ),
        (
            "control characters",
            control.to_string().into_bytes(),
            fields,
        ),
        (
            "over-long fields",
            over_long.to_string().into_bytes(),
            fields,
        ),
    ]
}

impl World {
    fn setup() -> World {
        let server = Server::with_site(&site());
        let data = server.data_dir();
        let http = crate::harness::client();
        let alice = identity(&server, &http, "mxalice", true);
        let bob = identity(&server, &http, "mxbob", false);
        let carol = identity(&server, &http, "mxcarol", true);
        let mut world = World {
            server,
            http,
            alice,
            bob,
            carol,
            ids: BTreeMap::new(),
        };
        world.make_records();
        cli_ok(&data, &["user", "disable", "mxcarol"], "");
        world
    }

    /// One record of each kind the owner has, to aim at and to snapshot.
    fn make_records(&mut self) {
        let api = &self.alice.signer;
        // CloudAPI: a machine, a firewall rule, a role.
        let images: Value = api.get("/my/images?name=alpine-3.20").json().unwrap();
        let image = images[0]["id"].as_str().expect("alpine image").to_string();
        let (status, machine) = answer(api.post(
            "/my/machines",
            &json!({"name": "mx-alice-machine", "image": image, "package": "sample-512M"}),
        ));
        assert_eq!(status, 201, "{machine}");
        let machine = machine["id"].as_str().unwrap().to_string();
        wait_running(api, &machine);
        let (status, rule) = answer(api.post(
            "/my/fwrules",
            &json!({"rule": "FROM any TO all vms ALLOW tcp PORT 22", "enabled": true,
                    "description": "mx-alice-rule-comment"}),
        ));
        assert_eq!(status, 201, "{rule}");
        let (status, role) = answer(api.post("/my/roles", &json!({"name": "mx-alice-role"})));
        assert_eq!(status, 201, "{role}");
        let (status, _) = answer(api.post(
            &format!("/my/machines/{machine}/tags"),
            &json!({"env": "mx"}),
        ));
        assert_eq!(status, 200);
        self.ids.insert("image", image);
        self.ids.insert("machine", machine);
        self.ids
            .insert("fwrule", rule["id"].as_str().unwrap().to_string());
        // VMmanager: a host of alice's.
        let token = self.alice.vmmanager.clone();
        let (status, host) = answer(
            self.http
                .post(self.server.url("/vm/v3/host"))
                .header("x-xsrf-token", &token)
                .json(
                    &json!({"name": "mxalicehost", "os": 1, "cluster": 1, "cpu_number": 1,
                              "ram_mib": 512, "hdd_mib": 10240, "password": PASSWORD}),
                )
                .send()
                .unwrap(),
        );
        assert_eq!(status, 200, "{host}");
        self.ids.insert("host", host["id"].to_string());
        self.wait_host_active(&host["id"].to_string());
        // tiCrypt: a drive of alice's, made by an admin (alice is one).
        let (status, drive) = answer(
            self.http
                .post(self.server.url("/api/admin/drives"))
                .basic_auth("mxalice", Some(PASSWORD))
                .json(&json!({"name": "mx-alice-drive", "owner": "mxalice",
                              "capacity": 1u64 << 30}))
                .send()
                .unwrap(),
        );
        assert_eq!(status, 200, "{drive}");
        self.ids
            .insert("drive", drive["id"].as_str().unwrap().to_string());
        // The appliance admin API's token.
        let status = crate::harness::appliance_setup(&self.http, &self.server, APPLIANCE_TOKEN);
        assert!(status.is_success(), "appliance setup: {status}");
    }

    fn wait_host_active(&self, id: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, body) = answer(
                self.http
                    .get(self.server.url(&format!("/vm/v3/host/{id}")))
                    .header("x-xsrf-token", &self.alice.vmmanager)
                    .send()
                    .unwrap(),
            );
            if body["state"] == "active" {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{body}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn identity(&self, who: Who) -> Option<&Identity> {
        match who {
            Who::Owner | Who::Foreign => Some(&self.alice),
            Who::Other => Some(&self.bob),
            Who::Disabled => Some(&self.carol),
            Who::Nobody => None,
        }
    }

    /// A request of `family` to `path` (mount included) carrying `who`'s credentials.
    fn request(
        &self,
        family: Family,
        pattern: &str,
        who: Who,
        method: &str,
        path: &str,
    ) -> RequestBuilder {
        let mut path = path.to_string();
        let id = self.identity(who);
        // The appliance API and tiCrypt take tokens in the query.
        if let (Some(id), Family::Appliance) = (id, family)
            && who != Who::Foreign
        {
            let token = if who == Who::Owner {
                APPLIANCE_TOKEN
            } else {
                // Another account's valid token (the appliance has one operator).
                &id.ticrypt["drive"]
            };
            let join = if path.contains('?') { '&' } else { '?' };
            path = format!("{path}{join}token={token}");
        }
        let url = self.server.url(&path);
        let builder = self.http.request(method.parse().unwrap(), &url);
        let Some(id) = id else { return builder };
        if who == Who::Foreign {
            // The owner's valid credentials, in the scheme of the next family over.
            return match family {
                Family::CloudApi => builder.basic_auth(id.login, Some(PASSWORD)),
                Family::TiCrypt => builder.header("x-xsrf-token", &id.vmmanager),
                Family::VmManager | Family::VmManagerAuth => {
                    builder.query(&[("token", &id.ticrypt["vm"])])
                }
                Family::FossCloud => {
                    let date = id.signer.date();
                    builder.header("date", &date).header(
                        "authorization",
                        id.signer.authorization(method, &path, &date),
                    )
                }
                Family::Appliance => builder.basic_auth(id.login, Some(PASSWORD)),
            };
        }
        match family {
            Family::CloudApi => {
                let date = id.signer.date();
                builder
                    .header("date", &date)
                    .header("accept-version", "~9||~8")
                    .header(
                        "authorization",
                        id.signer.authorization(method, &path, &date),
                    )
            }
            Family::TiCrypt => {
                let kind = Family::ticrypt_type(pattern);
                if kind == "admin" {
                    builder.basic_auth(id.login, Some(PASSWORD))
                } else {
                    builder.header("TC_TOKEN", &id.ticrypt[kind])
                }
            }
            Family::VmManager | Family::VmManagerAuth => {
                builder.header("x-xsrf-token", &id.vmmanager)
            }
            Family::FossCloud => builder.basic_auth(id.login, Some(PASSWORD)),
            Family::Appliance => builder,
        }
    }

    /// The owner's value for a path parameter, by what the pattern names.
    fn param(&self, family: Family, pattern: &str, name: &str) -> String {
        let id = |k: &str| self.ids.get(k).cloned().unwrap_or_else(|| "x".into());
        match (family, name) {
            (Family::CloudApi, "account") => "my".into(),
            (Family::CloudApi, "machine") => id("machine"),
            (Family::CloudApi, "id") if pattern.contains("/machines/:id") => id("machine"),
            (Family::CloudApi, "id") if pattern.contains("/fwrules/:id") => id("fwrule"),
            (Family::CloudApi, "image") => id("image"),
            (Family::CloudApi, "key") if pattern.contains("/keys/") => "id_rsa".into(),
            (Family::CloudApi, "key") => "mx-key".into(),
            (Family::CloudApi, "role") => "mx-alice-role".into(),
            (Family::CloudApi, "package") => "sample-512M".into(),
            (Family::CloudApi, "tag") => "env".into(),
            (Family::CloudApi, "name") if pattern.contains("datacenters") => "tessera".into(),
            (Family::CloudApi, "path") => format!("machines/{}", id("machine")),
            (Family::VmManager, "id") if pattern.starts_with("/host") => id("host"),
            (Family::VmManager, "id") => "1".into(),
            (Family::VmManagerAuth, "email") => "mxbob@example.com".into(),
            (Family::TiCrypt, "id") if pattern.contains("drives") => id("drive"),
            (Family::FossCloud, "type") => "owner".into(),
            (Family::FossCloud, "mac") => "52:54:00:00:00:01".into(),
            _ => "mx-none".into(),
        }
    }

    fn fill(&self, family: Family, pattern: &str, hostile: Option<(&str, &str)>) -> String {
        let path: Vec<String> = pattern
            .split('/')
            .map(|segment| match segment.strip_prefix([':', '*']) {
                Some(name) => match hostile {
                    Some((target, value)) if target == name => value.to_string(),
                    _ => self.param(family, pattern, name),
                },
                None => segment.to_string(),
            })
            .collect();
        format!("{}{}", family.mount(), path.join("/"))
    }

    /// What the owner's records look like, read as the owner.
    fn snapshot(&self) -> Vec<(String, u16, String)> {
        let machine = &self.ids["machine"];
        let reads: Vec<(Family, &str, String)> = vec![
            (Family::CloudApi, "", "/my".into()),
            (Family::CloudApi, "", "/my/keys".into()),
            (Family::CloudApi, "", "/my/users".into()),
            (Family::CloudApi, "", "/my/roles".into()),
            (Family::CloudApi, "", "/my/policies".into()),
            (Family::CloudApi, "", "/my/config".into()),
            (Family::CloudApi, "", "/my/machines".into()),
            (Family::CloudApi, "", format!("/my/machines/{machine}/tags")),
            (
                Family::CloudApi,
                "",
                format!("/my/machines/{machine}/metadata"),
            ),
            (
                Family::CloudApi,
                "",
                format!("/my/machines/{machine}/snapshots"),
            ),
            (
                Family::CloudApi,
                "",
                format!("/my/machines/{machine}/disks"),
            ),
            (Family::CloudApi, "", "/my/fwrules".into()),
            (Family::CloudApi, "", "/my/volumes".into()),
            (Family::CloudApi, "", "/my/images".into()),
            (Family::CloudApi, "", "/my/fabrics/default/vlans".into()),
            (Family::VmManager, "", "/vm/v3/host".into()),
            (Family::VmManager, "", "/vm/v3/cluster".into()),
            (
                Family::VmManagerAuth,
                "",
                "/auth/v4/setting/token_ttl".into(),
            ),
            (Family::TiCrypt, "/drives", "/api/drives".into()),
            (Family::TiCrypt, "/teams", "/api/teams".into()),
            (Family::TiCrypt, "/projects", "/api/projects".into()),
            (Family::TiCrypt, "/vms", "/api/vms".into()),
            (Family::TiCrypt, "/admin", "/api/admin/realms".into()),
            (Family::FossCloud, "", "/vm-manager/api/admin/pools".into()),
            (Family::FossCloud, "", "/vm-manager/api/admin/groups".into()),
            (
                Family::FossCloud,
                "",
                "/vm-manager/api/admin/mappings".into(),
            ),
            (Family::FossCloud, "", "/vm-manager/api/admin/peers".into()),
            (Family::Appliance, "", "/api/v1/admin/update".into()),
        ];
        reads
            .into_iter()
            .map(|(family, pattern, path)| {
                let response = self
                    .request(family, pattern, Who::Owner, "GET", &path)
                    .send()
                    .unwrap();
                let status = response.status().as_u16();
                let mut text = response.text().unwrap();
                // VMmanager's change counter moves with any change on the site.
                if let Ok(mut body) = serde_json::from_str::<Value>(&text)
                    && body.get("last_notify").is_some()
                {
                    body["last_notify"] = Value::Null;
                    text = body.to_string();
                }
                (path, status, text)
            })
            .collect()
    }
}

fn identity(server: &Server, http: &Client, login: &'static str, admin: bool) -> Identity {
    let data = server.data_dir();
    let email = format!("{login}@example.com");
    let mut args = vec!["user", "add", login, "--email", &email, "--password-stdin"];
    if admin {
        args.push("--admin");
    }
    cli_ok(&data, &args, &format!("{PASSWORD}\n"));
    let key = KeyPair::generate("ed25519");
    add_key(server, login, "id_rsa", &key);
    let private_key =
        std::fs::read_to_string(key.public_file.with_extension("")).expect("private key");
    let signer = Signer::new(server, &format!("/{login}/keys/{}", key.md5), key);
    let (status, session) = answer(
        http.post(server.url("/auth/v4/public/token"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "{session}");
    let mut ticrypt = BTreeMap::new();
    for kind in ["drive", "vm", "team", "project", "admin"] {
        if kind == "admin" && !admin {
            continue;
        }
        let token = cli_ok(
            &data,
            &[
                "token",
                "create",
                login,
                "--scope",
                &format!("ticrypt:{kind}"),
                "--format",
                "alnum32",
            ],
            "",
        );
        ticrypt.insert(kind, token.trim().to_string());
    }
    Identity {
        login,
        signer,
        vmmanager: session["token"].as_str().unwrap().to_string(),
        ticrypt,
        private_key,
    }
}

fn answer(response: reqwest::blocking::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn wait_running(api: &Signer, machine: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, body) = answer(api.get(&format!("/my/machines/{machine}")));
        if body["state"] == "running" {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// What a visit may answer.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// 4xx in the family's envelope.
    Refused,
    /// 4xx in the envelope, or 2xx without the owner's data: another account reading
    /// its own view, or acting on a route that names no record (its own session,
    /// its own lists); the owner's snapshot shows whether it touched the owner's.
    RefusedOrOwnView,
    /// 4xx in the envelope, or 2xx: the route may ignore or accept the fields (what
    /// it stored is checked afterwards: never a NUL character).
    RefusedOrAccepted,
}

struct Visit<'a> {
    family: Family,
    method: &'a str,
    pattern: &'a str,
    case: String,
    who: Who,
    expect: Expect,
}

/// `None` when the answer is what the visit may get, else what went wrong.
fn judge(visit: &Visit<'_>, status: u16, text: &str) -> Option<String> {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let what = format!(
        "{:?} {} {} [{}] as {:?}: {status} {}",
        visit.family,
        visit.method,
        visit.pattern,
        visit.case,
        visit.who,
        text.chars().take(300).collect::<String>()
    );
    // tiCrypt's token API lists everything on the system (its spec: "Lists all
    // drives on the system"): a valid token of any account sees every drive.
    let system_wide = visit.family == Family::TiCrypt && visit.method == "GET";
    if visit.who != Who::Owner && !system_wide && MARKERS.iter().any(|m| text.contains(m)) {
        return Some(format!("another account's data: {what}"));
    }
    let success_allowed = match visit.expect {
        Expect::Refused => false,
        Expect::RefusedOrOwnView => visit.method == "GET" || !visit.pattern.contains([':', '*']),
        Expect::RefusedOrAccepted => true,
    };
    if (200..300).contains(&status) && success_allowed {
        return None;
    }
    if !(400..500).contains(&status) {
        return Some(what);
    }
    if visit.method != "HEAD" && !visit.family.is_error_envelope(status, &body) {
        return Some(format!("not the family's envelope: {what}"));
    }
    None
}

/// Answers kept for the secrets check, and failures.
#[derive(Default)]
struct Log {
    bodies: Vec<String>,
    failures: Vec<String>,
}

impl Log {
    fn record(&mut self, visit: Visit<'_>, (status, text): (u16, String)) {
        if let Some(failure) = judge(&visit, status, &text) {
            self.failures.push(failure);
        }
        self.bodies.push(text);
    }
}

/// Every route with no credentials, another scheme's, another account's and a
/// disabled account's, aimed at the owner's records.
fn visit_credentials(world: &World, family: Family, log: &mut Log) {
    // Deletes last: another account's logout ends the session its later visits use.
    let mut routes = family.routes();
    routes.sort_by_key(|(method, _)| *method == "DELETE");
    for (method, pattern) in routes {
        if family.is_open(method, pattern) {
            continue;
        }
        let method = if method == "*" { "POST" } else { method };
        let own_path = world.fill(family, pattern, None);
        for who in [Who::Nobody, Who::Foreign, Who::Other, Who::Disabled] {
            let path = match (family, who) {
                // CloudAPI names the account in the path: aim at the owner's.
                (Family::CloudApi, Who::Other | Who::Disabled) => {
                    own_path.replacen("/my", "/mxalice", 1)
                }
                _ => own_path.clone(),
            };
            let expect = match (family, who) {
                (Family::CloudApi, _) => Expect::Refused,
                (_, Who::Other) => Expect::RefusedOrOwnView,
                _ => Expect::Refused,
            };
            let visit = Visit {
                family,
                method,
                pattern,
                case: "credentials".into(),
                who,
                expect,
            };
            let request = world.request(family, pattern, who, method, &path);
            log.record(visit, send(with_json(request, method, b"{}")));
        }
    }
}

/// Every route as the owner, with hostile path parameters and (write methods) bad bodies.
fn visit_bad_input(world: &World, family: Family, log: &mut Log) {
    for (method, pattern) in family.routes() {
        let method = if method == "*" { "POST" } else { method };
        let own_path = world.fill(family, pattern, None);
        let params: Vec<&str> = pattern
            .split('/')
            .filter_map(|s| s.strip_prefix([':', '*']))
            .collect();
        // A `PUT` creates or replaces the resource it names, so it may accept any
        // name it stores as given (then so may the `DELETE` of that name).
        let names_resource =
            |m: &str| m == "PUT" || (m == "DELETE" && family.routes().contains(&("PUT", pattern)));
        let expect = if names_resource(method) {
            Expect::RefusedOrAccepted
        } else {
            Expect::Refused
        };
        for name in &params {
            for value in hostile_params() {
                let path = world.fill(family, pattern, Some((name, &value)));
                let visit = Visit {
                    family,
                    method,
                    pattern,
                    case: format!(":{name}={}", value.chars().take(40).collect::<String>()),
                    who: Who::Owner,
                    expect,
                };
                let request = world.request(family, pattern, Who::Owner, method, &path);
                log.record(visit, send(with_json(request, method, b"{}")));
            }
        }
        if method == "GET" {
            // Hostile query parameters (filters, paging, predicates): a route may
            // ignore what it does not read, but never fail on it.
            let visit = Visit {
                family,
                method,
                pattern,
                case: "hostile query".into(),
                who: Who::Owner,
                expect: Expect::RefusedOrAccepted,
            };
            let path = format!("{own_path}?{HOSTILE_QUERY}");
            let request = world.request(family, pattern, Who::Owner, method, &path);
            log.record(visit, send(request));
        }
        if !matches!(method, "POST" | "PUT" | "PATCH") {
            continue;
        }
        for (what, body, expect) in hostile_bodies() {
            let visit = Visit {
                family,
                method,
                pattern,
                case: what.into(),
                who: Who::Owner,
                expect,
            };
            let request = world.request(family, pattern, Who::Owner, method, &own_path);
            log.record(visit, send(with_json(request, method, &body)));
        }
        // A body over the site's limit: refused on its declared length, before the
        // plugin reads it (sent by hand: the answer comes before the body is read).
        let visit = Visit {
            family,
            method,
            pattern,
            case: "body over the limit".into(),
            who: Who::Owner,
            expect: Expect::Refused,
        };
        log.record(visit, over_limit(&world.server, method, &own_path));
    }
}

fn send(request: RequestBuilder) -> (u16, String) {
    match request.send() {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().unwrap_or_default())
        }
        Err(e) => (0, format!("no answer: {e}")),
    }
}

/// `method path` declaring a JSON body over the limit and sending its first bytes;
/// returns the status and body of the answer.
fn over_limit(server: &Server, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{{\"name\": \"",
        BODY_LIMIT + 1024
    );
    let _ = stream.write_all(head.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn with_json(request: RequestBuilder, method: &str, body: &[u8]) -> RequestBuilder {
    if matches!(method, "GET" | "HEAD" | "DELETE") {
        return request;
    }
    request
        .header("content-type", "application/json")
        .body(body.to_vec())
}

fn secrets(world: &World) -> Vec<(String, String)> {
    let mut secrets = vec![
        ("password".to_string(), PASSWORD.to_string()),
        ("appliance token".into(), APPLIANCE_TOKEN.to_string()),
    ];
    for id in [&world.alice, &world.bob, &world.carol] {
        secrets.push((format!("{} session", id.login), id.vmmanager.clone()));
        for (kind, token) in &id.ticrypt {
            secrets.push((format!("{} {kind} token", id.login), token.clone()));
        }
        // Any 32-character run of the private key's base64 body.
        for line in id.private_key.lines().filter(|l| !l.starts_with("-----")) {
            for chunk in line.as_bytes().chunks(32).filter(|c| c.len() == 32) {
                secrets.push((
                    format!("{} private key", id.login),
                    String::from_utf8_lossy(chunk).into_owned(),
                ));
            }
        }
    }
    secrets
}

fn leaked<'a>(secrets: &'a [(String, String)], text: &str) -> Vec<&'a str> {
    secrets
        .iter()
        .filter(|(_, value)| text.contains(value.as_str()))
        .map(|(what, _)| what.as_str())
        .collect()
}

#[test]
fn every_route_refuses_bad_input_and_foreign_credentials_in_its_own_envelope() {
    let world = World::setup();
    let before = world.snapshot();
    for (path, status, body) in &before {
        assert_eq!(*status, 200, "snapshot {path}: {body}");
    }
    let mut log = Log::default();
    let mut visited = 0;
    for family in FAMILIES {
        let routes = family.routes();
        assert!(!routes.is_empty(), "{family:?} lists no routes");
        visited += routes.len();
        visit_credentials(&world, family, &mut log);
    }
    // Nobody but the owner may change the owner's records.
    let after = world.snapshot();
    for ((path, _, old), (_, status, new)) in before.iter().zip(&after) {
        if old != new {
            log.failures.push(format!(
                "{path} changed without the owner ({status}):\n  before {old}\n  after  {new}"
            ));
        }
    }
    for family in FAMILIES {
        visit_bad_input(&world, family, &mut log);
    }
    // What the owner's bad input left behind: never a NUL character.
    for (path, _, body) in world.snapshot() {
        if body.contains("\\u0000") {
            log.failures.push(format!("{path} stored a NUL: {body}"));
        }
    }
    // Secrets: no answer of the matrix, and nothing the server logged all run.
    let secrets = secrets(&world);
    for body in &log.bodies {
        let found = leaked(&secrets, body);
        if !found.is_empty() {
            log.failures
                .push(format!("an answer shows {found:?}: {body}"));
        }
    }
    let server_log = world.server.log();
    let found = leaked(&secrets, &server_log);
    if !found.is_empty() {
        log.failures.push(format!("the server log shows {found:?}"));
    }
    eprintln!(
        "matrix: {visited} routes, {} requests, {} failures",
        log.bodies.len(),
        log.failures.len()
    );
    assert!(
        log.failures.is_empty(),
        "{} failures:\n{}",
        log.failures.len(),
        log.failures.join("\n")
    );
}
