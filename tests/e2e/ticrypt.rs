//! The tiCrypt token API (`plugins/ticrypt`) on the default site: typed
//! tokens per route family, where tokens are read from, the admin routes,
//! every validation error, team quotas enforced at VM creation, and the JSON
//! shapes of the spec's interfaces field by field.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, cli_ok, client};

const ROOT_PASSWORD: &str = "root password 1234";
const ALICE_PASSWORD: &str = "alice password 1234";
const GIB: u64 = 1 << 30;
/// The size of the seeded `alpine-3.20` image (1024 MiB).
const ALPINE_BYTES: u64 = GIB;

struct Site {
    server: Server,
    alice_id: String,
    drive: String,
    vm: String,
    team: String,
    project: String,
}

fn add_user(server: &Server, login: &str, password: &str, admin: bool) {
    let email = format!("{login}@example.com");
    let mut args = vec!["user", "add", login, "--email", &email, "--password-stdin"];
    if admin {
        args.push("--admin");
    }
    cli_ok(&server.data_dir(), &args, &format!("{password}\n"));
}

/// The default site with an admin `root`, a user `alice`, and one token of
/// each type for alice, minted through the admin route.
fn site() -> Site {
    let server = Server::default_site();
    add_user(&server, "root", ROOT_PASSWORD, true);
    add_user(&server, "alice", ALICE_PASSWORD, false);
    let mint = |kind: &str| -> (String, String) {
        let (status, body) = admin_call(
            &server,
            Method::POST,
            "/api/admin/tokens",
            Some(json!({"login": "alice", "type": kind})),
        );
        assert_eq!(status, 200, "{body}");
        (
            body["token"].as_str().unwrap().to_string(),
            body["owner"].as_str().unwrap().to_string(),
        )
    };
    let (drive, alice_id) = mint("drive");
    Site {
        drive,
        vm: mint("vm").0,
        team: mint("team").0,
        project: mint("project").0,
        alice_id,
        server,
    }
}

fn body_of(resp: reqwest::blocking::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, value)
}

fn with_token(path: &str, token: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}token={token}")
}

fn send(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
    build: impl FnOnce(reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder,
) -> (u16, Value) {
    let mut req = client().request(method, server.url(path));
    if let Some(body) = body {
        req = req.json(&body);
    }
    body_of(build(req).send().expect("request"))
}

/// A request with the token in `?token=`.
fn call(site: &Site, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    send(&site.server, method, &with_token(path, token), body, |r| r)
}

fn admin_call(server: &Server, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    send(server, method, path, body, |r| {
        r.basic_auth("root", Some(ROOT_PASSWORD))
    })
}

fn admin(site: &Site, method: Method, path: &str, body: Value) -> Value {
    let (status, value) = admin_call(&site.server, method, path, Some(body));
    assert_eq!(status, 200, "{path}: {value}");
    value
}

/// The error envelope: status, `code`, and a non-empty `error` message.
fn assert_error(got: (u16, Value), status: u16, code: &str) {
    let (s, body) = got;
    assert_eq!((s, body["code"].as_str()), (status, Some(code)), "{body}");
    assert!(
        body["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Str,
    Num,
    Bool,
    Arr,
    Obj,
}

fn kind_of(v: &Value) -> Option<Kind> {
    match v {
        Value::String(_) => Some(Kind::Str),
        Value::Number(n) if n.is_u64() => Some(Kind::Num),
        Value::Bool(_) => Some(Kind::Bool),
        Value::Array(_) => Some(Kind::Arr),
        Value::Object(_) => Some(Kind::Obj),
        _ => None,
    }
}

/// Every listed field is present with its type; no field outside `required`
/// and `optional` appears, and optional ones, when present, have their type.
fn assert_shape(v: &Value, required: &[(&str, Kind)], optional: &[(&str, Kind)]) {
    let object = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    for (field, kind) in required {
        let got = object.get(*field).and_then(kind_of);
        assert!(
            matches!((got, kind), (Some(a), b) if std::mem::discriminant(&a) == std::mem::discriminant(b)),
            "{field} should be {kind:?} in {v}"
        );
    }
    for (field, value) in object {
        let spec = required
            .iter()
            .chain(optional)
            .find(|(name, _)| name == field)
            .unwrap_or_else(|| panic!("unexpected field {field} in {v}"));
        let got = kind_of(value);
        assert!(
            got.is_some_and(|g| std::mem::discriminant(&g) == std::mem::discriminant(&spec.1)),
            "{field} should be {:?} in {v}",
            spec.1
        );
    }
}

use Kind::*;

const DRIVE_REQUIRED: &[(&str, Kind)] = &[
    ("id", Str),
    ("name", Str),
    ("owner", Str),
    ("capacity", Num),
    ("format", Str),
    ("readers", Arr),
    ("created", Num),
    ("realmID", Str),
    ("state", Str),
    ("hasSnapshot", Bool),
];
const DRIVE_OPTIONAL: &[(&str, Kind)] = &[
    ("noBackup", Bool),
    ("settings", Obj),
    ("writer", Str),
    ("changed", Num),
    ("attached", Num),
    ("writable", Bool),
    ("poolID", Str),
    ("team", Str),
    ("project", Str),
    ("diskType", Str),
    ("cache", Str),
    ("io", Str),
    ("stateChange", Num),
];
const IMAGE_REQUIRED: &[(&str, Kind)] = &[("id", Str), ("info", Obj)];
const IMAGE_OPTIONAL: &[(&str, Kind)] = &[
    ("name", Str),
    ("description", Str),
    ("size", Num),
    ("imageType", Str),
    ("created", Num),
    ("modified", Num),
    ("version", Num),
    ("parent", Str),
    ("limit", Num),
    ("settings", Obj),
];
const BRICK_REQUIRED: &[(&str, Kind)] = &[
    ("id", Str),
    ("name", Str),
    ("description", Str),
    ("vcores", Num),
    ("maxMemBytes", Num),
    ("realmID", Str),
    ("creatorID", Str),
    ("externalServers", Arr),
    ("created", Num),
    ("noQuota", Bool),
    ("vmType", Str),
];
const BRICK_OPTIONAL: &[(&str, Kind)] = &[
    ("setup", Str),
    ("libvirt", Obj),
    ("nutanix", Obj),
    ("whitelist", Obj),
    ("format", Str),
    ("imageID", Str),
    ("modified", Num),
    ("params", Str),
    ("settings", Str),
];
const TEAM_REQUIRED: &[(&str, Kind)] = &[
    ("id", Str),
    ("name", Str),
    ("desc", Str),
    ("created", Num),
    ("modified", Num),
    ("quotas", Obj),
    ("teamQuotas", Obj),
    ("perUserQuotas", Obj),
    ("settings", Obj),
];
const TEAM_OPTIONAL: &[(&str, Kind)] = &[("startDate", Num), ("endDate", Num)];
const QUOTAS_REQUIRED: &[(&str, Kind)] = &[("storage", Obj), ("devices", Obj)];
const QUOTAS_OPTIONAL: &[(&str, Kind)] = &[("cores", Num), ("memory", Num)];
const PROJECT_REQUIRED: &[(&str, Kind)] = &[
    ("id", Str),
    ("name", Str),
    ("desc", Str),
    ("securityLevel", Str),
    ("settings", Obj),
    ("created", Num),
    ("modified", Num),
];
const PROJECT_OPTIONAL: &[(&str, Kind)] = &[("parent", Str)];

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn assert_recent(millis: &Value) {
    let t = millis.as_u64().expect("epoch millis");
    let now = now_millis();
    assert!(
        t <= now && now - t < 600_000,
        "{t} is not a recent epoch-millis instant"
    );
}

fn create_team(site: &Site, name: &str) -> String {
    let (status, team) = call(
        site,
        Method::POST,
        "/api/teams",
        &site.team,
        Some(json!({"name": name, "desc": "d"})),
    );
    assert_eq!(status, 200, "{team}");
    team["id"].as_str().unwrap().to_string()
}

fn set_quotas(site: &Site, team: &str, quotas: Value, per_user: Option<Value>) {
    let mut body = json!({"teamID": team, "quotas": quotas});
    if let Some(per_user) = per_user {
        body["perUserQuotas"] = per_user;
    }
    let (status, value) = call(
        site,
        Method::PATCH,
        "/api/teams/quotas",
        &site.team,
        Some(body),
    );
    assert_eq!(status, 200, "{value}");
}

/// The id of the seeded alpine image, as the libvirt realm lists it.
fn alpine(site: &Site) -> Value {
    let (status, images) = call(
        site,
        Method::GET,
        "/api/vms/images?realm=libvirt",
        &site.vm,
        None,
    );
    assert_eq!(status, 200, "{images}");
    images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "alpine-3.20")
        .cloned()
        .expect("the seeded alpine image")
}

/// A libvirt brick on the alpine image.
fn brick(site: &Site, id: &str, vcores: u64, mem: u64, extra: Value) -> Value {
    let image = alpine(site);
    let mut params = json!({
        "name": id, "description": "", "vcores": vcores, "maxMemBytes": mem, "realmID": "libvirt",
        "libvirt": {"image": {"pool": image["info"]["pool"], "volume": image["info"]["volume"]}},
    });
    for (k, v) in extra.as_object().unwrap() {
        params[k] = v.clone();
    }
    let (status, brick) = call(
        site,
        Method::PATCH,
        "/api/vms/bricks",
        &site.vm,
        Some(json!({"brick": id, "params": params})),
    );
    assert_eq!(status, 200, "{brick}");
    assert_eq!(brick["imageID"], image["id"], "{brick}");
    brick
}

fn create_vm(site: &Site, brick: &str, team: &str) -> (u16, Value) {
    call(
        site,
        Method::POST,
        "/api/vms",
        &site.vm,
        Some(json!({"brick": brick, "team": team})),
    )
}

fn wait_vm(site: &Site, id: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, vms) = call(site, Method::GET, "/api/vms", &site.vm, None);
        let current = vms
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .cloned();
        if current.as_ref().is_some_and(|v| v["state"] == state)
            || (state == "deleted" && current.is_none())
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "vm {id} never reached {state}: {current:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn each_token_type_reaches_only_its_own_route_family() {
    let site = site();
    let routes: [(&str, &str); 7] = [
        ("/api/drives", "drive"),
        ("/api/vms/images?realm=libvirt", "vm"),
        ("/api/vm/images?realm=libvirt", "vm"),
        ("/api/vms/bricks", "vm"),
        ("/api/teams", "team"),
        ("/api/projects", "project"),
        ("/api/vms", "vm"),
    ];
    let tokens = [
        ("drive", &site.drive),
        ("vm", &site.vm),
        ("team", &site.team),
        ("project", &site.project),
    ];
    for (path, family) in routes {
        for (kind, token) in tokens {
            let got = call(&site, Method::GET, path, token, None);
            if kind == family {
                assert_eq!(got.0, 200, "{kind} token on {path}: {}", got.1);
                assert!(got.1.is_array(), "{path}: {}", got.1);
            } else {
                assert_error(got, 403, "WrongTokenType");
            }
        }
    }
    // Writes too: the type is checked before the body.
    for (method, path) in [
        (Method::POST, "/api/vms/images"),
        (Method::POST, "/api/vm/images"),
        (Method::PATCH, "/api/vms/bricks"),
        (Method::PATCH, "/api/vm/bricks"),
        (Method::POST, "/api/vms"),
    ] {
        assert_error(
            call(&site, method, path, &site.team, Some(json!({}))),
            403,
            "WrongTokenType",
        );
    }
    assert_error(
        call(
            &site,
            Method::POST,
            "/api/teams",
            &site.vm,
            Some(json!({"name": "x"})),
        ),
        403,
        "WrongTokenType",
    );
    assert_error(
        call(
            &site,
            Method::GET,
            "/api/teams/quotas?teamID=x",
            &site.drive,
            None,
        ),
        403,
        "WrongTokenType",
    );
    assert_error(
        call(
            &site,
            Method::PATCH,
            "/api/teams/quotas",
            &site.project,
            Some(json!({})),
        ),
        403,
        "WrongTokenType",
    );
    assert_error(
        call(&site, Method::GET, "/api/projects/x", &site.team, None),
        403,
        "WrongTokenType",
    );
}

#[test]
fn missing_unknown_and_expired_tokens_get_401() {
    let site = site();
    assert_error(
        send(&site.server, Method::GET, "/api/drives", None, |r| r),
        401,
        "MissingToken",
    );
    assert_error(
        call(
            &site,
            Method::GET,
            "/api/drives",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            None,
        ),
        401,
        "InvalidToken",
    );
    let (status, minted) = admin_call(
        &site.server,
        Method::POST,
        "/api/admin/tokens",
        Some(json!({"login": "alice", "type": "drive", "ttlSeconds": 1})),
    );
    assert_eq!(status, 200, "{minted}");
    let short = minted["token"].as_str().unwrap();
    assert_eq!(call(&site, Method::GET, "/api/drives", short, None).0, 200);
    std::thread::sleep(Duration::from_millis(2100));
    assert_error(
        call(&site, Method::GET, "/api/drives", short, None),
        401,
        "InvalidToken",
    );
    // An admin token is no token for the tiCrypt routes.
    let (_, admin_token) = admin_call(
        &site.server,
        Method::POST,
        "/api/admin/tokens",
        Some(json!({"login": "root", "type": "admin"})),
    );
    assert_error(
        call(
            &site,
            Method::GET,
            "/api/drives",
            admin_token["token"].as_str().unwrap(),
            None,
        ),
        403,
        "WrongTokenType",
    );
}

#[test]
fn the_url_parameter_beats_the_cookie_and_the_header_works() {
    let site = site();
    let cookie = |t: &str| format!("TC_TOKEN={t}");
    let with_cookie = |path: &str, c: String| {
        send(&site.server, Method::GET, path, None, move |r| {
            r.header("cookie", c)
        })
    };
    assert_eq!(with_cookie("/api/drives", cookie(&site.drive)).0, 200);
    assert_eq!(
        with_cookie(&with_token("/api/drives", &site.drive), cookie(&site.team)).0,
        200
    );
    assert_error(
        with_cookie(&with_token("/api/drives", &site.team), cookie(&site.drive)),
        403,
        "WrongTokenType",
    );
    assert_error(
        with_cookie("/api/drives?token=nonsense", cookie(&site.drive)),
        401,
        "InvalidToken",
    );
    let drive = site.drive.clone();
    let header = send(&site.server, Method::GET, "/api/drives", None, move |r| {
        r.header("TC_TOKEN", drive)
    });
    assert_eq!(header.0, 200, "{}", header.1);
    // The spec's curl example: POST with the header and a JSON body.
    let vm = site.vm.clone();
    let (status, listed) = send(
        &site.server,
        Method::GET,
        "/api/vms/images",
        Some(json!({"realm": "libvirt"})),
        move |r| r.header("TC_TOKEN", vm),
    );
    assert_eq!(status, 200, "{listed}");
    assert!(!listed.as_array().unwrap().is_empty());
}

#[test]
fn admin_routes_take_basic_auth_or_an_admin_token_of_an_admin() {
    let site = site();
    let realms = |build: Box<
        dyn FnOnce(reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder,
    >| { send(&site.server, Method::GET, "/api/admin/realms", None, build) };
    let (status, listed) = realms(Box::new(|r| r.basic_auth("root", Some(ROOT_PASSWORD))));
    assert_eq!(status, 200);
    assert_eq!(listed[0]["id"], "libvirt");
    assert_eq!(listed[0]["driver"], "libvirt");
    let (_, t) = admin_call(
        &site.server,
        Method::POST,
        "/api/admin/tokens",
        Some(json!({"login": "root", "type": "admin"})),
    );
    let token = t["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 32);
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(realms(Box::new(move |r| r.bearer_auth(token))).0, 200);
    assert_error(realms(Box::new(|r| r)), 401, "Unauthorized");
    assert_error(
        realms(Box::new(|r| r.basic_auth("root", Some("wrong")))),
        401,
        "Unauthorized",
    );
    assert_error(
        realms(Box::new(|r| r.basic_auth("alice", Some(ALICE_PASSWORD)))),
        403,
        "AdminRequired",
    );
    let vm = site.vm.clone();
    assert_error(
        realms(Box::new(move |r| r.bearer_auth(vm))),
        401,
        "Unauthorized",
    );

    // Minting: every type, and its refusals.
    for kind in ["drive", "vm", "team", "project"] {
        let (status, minted) = admin_call(
            &site.server,
            Method::POST,
            "/api/admin/tokens",
            Some(json!({"login": "alice", "type": kind})),
        );
        assert_eq!(status, 200);
        assert_eq!(minted["type"], kind);
        assert_eq!(minted["scope"], format!("ticrypt:{kind}"));
        assert_eq!(minted["owner"], site.alice_id.as_str());
    }
    let mint =
        |body: Value| admin_call(&site.server, Method::POST, "/api/admin/tokens", Some(body));
    assert_error(
        mint(json!({"login": "alice", "type": "bogus"})),
        400,
        "InvalidParameter",
    );
    assert_error(mint(json!({"login": "alice"})), 400, "MissingParameter");
    assert_error(mint(json!({"type": "vm"})), 400, "MissingParameter");
    assert_error(
        mint(json!({"login": "nobody", "type": "vm"})),
        404,
        "UserNotFound",
    );
    assert_error(
        mint(json!({"login": "alice", "type": "admin"})),
        403,
        "AdminRequired",
    );
    assert_error(
        mint(json!({"login": "alice", "type": "vm", "ttlSeconds": 0})),
        400,
        "InvalidParameter",
    );
    let alice_basic = send(
        &site.server,
        Method::POST,
        "/api/admin/tokens",
        Some(json!({"login": "alice", "type": "vm"})),
        |r| r.basic_auth("alice", Some(ALICE_PASSWORD)),
    );
    assert_error(alice_basic, 403, "AdminRequired");

    // Realms: create, duplicate, bad driver.
    let nutanix = admin(
        &site,
        Method::POST,
        "/api/admin/realms",
        json!({"id": "ntnx", "driver": "nutanix"}),
    );
    assert_eq!(nutanix["driver"], "nutanix");
    let create =
        |body: Value| admin_call(&site.server, Method::POST, "/api/admin/realms", Some(body));
    assert_error(
        create(json!({"id": "ntnx", "driver": "nutanix"})),
        409,
        "RealmExists",
    );
    assert_error(
        create(json!({"id": "x", "driver": "vmware"})),
        400,
        "InvalidParameter",
    );
    assert_error(
        create(json!({"id": "a b", "driver": "libvirt"})),
        400,
        "InvalidParameter",
    );
    assert_error(create(json!({"id": "y"})), 400, "MissingParameter");
}

#[test]
fn the_cli_mints_tokens_for_a_ticrypt_scope() {
    let site = site();
    let token = cli_ok(
        &site.server.data_dir(),
        &[
            "token",
            "create",
            "alice",
            "--scope",
            "ticrypt:drive",
            "--format",
            "alnum32",
        ],
        "",
    );
    let token = token.trim();
    assert_eq!(token.len(), 32);
    assert_eq!(call(&site, Method::GET, "/api/drives", token, None).0, 200);
    let plain = cli_ok(
        &site.server.data_dir(),
        &["token", "create", "alice", "--scope", "ticrypt:project"],
        "",
    );
    assert_eq!(
        call(&site, Method::GET, "/api/projects", plain.trim(), None).0,
        200
    );
    assert_error(
        call(&site, Method::GET, "/api/drives", plain.trim(), None),
        403,
        "WrongTokenType",
    );
}

#[test]
fn drives_list_every_field_of_drive_info_and_follow_attachments() {
    let site = site();
    let project = admin(
        &site,
        Method::POST,
        "/api/admin/projects",
        json!({"name": "p"}),
    );
    let team = create_team(&site, "t");
    let drive = admin(
        &site,
        Method::POST,
        "/api/admin/drives",
        json!({
            "name": "data", "owner": "alice", "capacity": 10 * GIB, "format": "ext4",
            "team": team, "project": project["id"], "poolID": "pool-1", "diskType": "qcow2",
            "cache": "none", "io": "native", "settings": {"color": "blue"},
        }),
    );
    let (status, drives) = call(&site, Method::GET, "/api/drives", &site.drive, None);
    assert_eq!(status, 200);
    let listed = &drives.as_array().unwrap()[0];
    assert_eq!(listed, &drive);
    assert_shape(listed, DRIVE_REQUIRED, DRIVE_OPTIONAL);
    assert_eq!(listed["owner"], site.alice_id.as_str());
    assert_eq!(listed["capacity"], 10 * GIB);
    assert_eq!(listed["realmID"], "libvirt");
    assert_eq!(listed["state"], "Ready");
    assert_eq!(listed["readers"], json!([]));
    assert_eq!(listed["noBackup"], true);
    assert_eq!(listed["hasSnapshot"], false);
    assert_eq!(listed["team"], team.as_str());
    assert_eq!(listed["project"], project["id"]);
    assert_eq!(listed["settings"], json!({"color": "blue"}));
    assert!(listed.get("writer").is_none());
    assert_recent(&listed["created"]);

    // Attach read-write to a VM: the drive becomes a disk of that VM.
    brick(&site, "small", 1, GIB, json!({}));
    let (status, vm) = create_vm(&site, "small", &team);
    assert_eq!(status, 200, "{vm}");
    let vm_id = vm["id"].as_str().unwrap();
    wait_vm(&site, vm_id, "running");
    let id = drive["id"].as_str().unwrap();
    let attach = |mode: &str| {
        admin_call(
            &site.server,
            Method::POST,
            &format!("/api/admin/drives/{id}/attach"),
            Some(json!({"vm": vm_id, "mode": mode})),
        )
    };
    let (status, attached) = attach("ReadWrite");
    assert_eq!(status, 200, "{attached}");
    assert_shape(&attached, DRIVE_REQUIRED, DRIVE_OPTIONAL);
    assert_eq!(
        (attached["writer"].as_str(), attached["state"].as_str()),
        (Some(vm_id), Some("ReadWrite"))
    );
    assert_recent(&attached["attached"]);
    assert_recent(&attached["stateChange"]);
    assert_error(attach("ReadOnly"), 409, "DriveAttached");
    assert_error(
        admin_call(
            &site.server,
            Method::DELETE,
            &format!("/api/admin/drives/{id}"),
            None,
        ),
        409,
        "DriveAttached",
    );
    let detach = || {
        admin_call(
            &site.server,
            Method::POST,
            &format!("/api/admin/drives/{id}/detach"),
            Some(json!({"vm": vm_id})),
        )
    };
    let (status, detached) = detach();
    assert_eq!(status, 200, "{detached}");
    assert_eq!(detached["state"], "Ready");
    assert!(detached.get("writer").is_none());
    assert_error(detach(), 409, "DriveNotAttached");
    let (status, ro) = attach("ReadOnly");
    assert_eq!(status, 200, "{ro}");
    assert_eq!(
        (ro["readers"].clone(), ro["state"].as_str()),
        (json!([vm_id]), Some("ReadOnly"))
    );
    assert_eq!(detach().0, 200);
    let (status, _) = admin_call(
        &site.server,
        Method::DELETE,
        &format!("/api/admin/drives/{id}"),
        None,
    );
    assert_eq!(status, 204);
    assert_eq!(
        call(&site, Method::GET, "/api/drives", &site.drive, None).1,
        json!([])
    );
}

#[test]
fn drive_creation_is_validated() {
    let site = site();
    let create =
        |body: Value| admin_call(&site.server, Method::POST, "/api/admin/drives", Some(body));
    let ok = json!({"name": "d", "owner": "alice", "capacity": GIB});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    assert_error(
        create(json!({"owner": "alice", "capacity": 1})),
        400,
        "MissingParameter",
    );
    assert_error(create(with("capacity", json!(0))), 400, "InvalidParameter");
    assert_error(
        create(with("capacity", json!("big"))),
        400,
        "InvalidParameter",
    );
    assert_error(create(with("owner", json!("nobody"))), 404, "UserNotFound");
    assert_error(
        create(with("realmID", json!("nowhere"))),
        404,
        "RealmNotFound",
    );
    assert_error(create(with("team", json!("noteam"))), 404, "TeamNotFound");
    assert_error(
        create(with("project", json!("noproject"))),
        404,
        "ProjectNotFound",
    );
    assert_error(
        create(with("diskType", json!("vmdk"))),
        400,
        "InvalidParameter",
    );
    assert_error(
        create(with("colour", json!("red"))),
        400,
        "InvalidParameter",
    );
    assert_error(
        admin_call(
            &site.server,
            Method::POST,
            "/api/admin/drives/nope/attach",
            Some(json!({"vm": "x"})),
        ),
        404,
        "DriveNotFound",
    );
    let (status, _) = create(ok);
    assert_eq!(status, 200);
}

#[test]
fn images_are_listed_and_created_per_the_spec_examples() {
    let site = site();
    // The spec's curl example, verbatim body, on /api/vm/images with the header.
    let example = json!({
        "realm": "libvirt", "name": "newImage", "description": "My new image",
        "size": 5368709120u64, "imageType": "linux",
        "info": {"pool": "ticrypt-vm-drives", "volume": "rocky8-prod.qcow2", "deviceBusType": "virtio"},
        "limit": 5,
    });
    let vm = site.vm.clone();
    let (status, created) = send(
        &site.server,
        Method::POST,
        "/api/vm/images",
        Some(example),
        move |r| r.header("TC_TOKEN", vm),
    );
    assert_eq!(status, 200, "{created}");
    assert_shape(&created, IMAGE_REQUIRED, IMAGE_OPTIONAL);
    assert_eq!(created["name"], "newImage");
    assert_eq!(created["description"], "My new image");
    assert_eq!(created["size"], 5368709120u64);
    assert_eq!(created["imageType"], "linux");
    assert_eq!(created["limit"], 5);
    assert_eq!(created["version"], 0);
    assert!(created.get("parent").is_none());
    assert_eq!(
        created["info"],
        json!({"pool": "ticrypt-vm-drives", "volume": "rocky8-prod.qcow2", "deviceBusType": "virtio"})
    );
    assert_recent(&created["created"]);

    // Listed by the realm in the body (GET with a body, as the spec shows) or in the query.
    let vm = site.vm.clone();
    let (status, by_body) = send(
        &site.server,
        Method::GET,
        "/api/vms/images",
        Some(json!({"realm": "libvirt"})),
        move |r| r.header("TC_TOKEN", vm),
    );
    assert_eq!(status, 200);
    let (_, by_query) = call(
        &site,
        Method::GET,
        "/api/vms/images?realm=libvirt",
        &site.vm,
        None,
    );
    assert_eq!(by_body, by_query);
    let images = by_body.as_array().unwrap();
    assert!(images.iter().any(|i| i == &created), "{by_body}");
    assert!(
        images.iter().any(|i| i["name"] == "alpine-3.20"),
        "the seeded images belong to the default realm"
    );
    for image in images {
        assert_shape(image, IMAGE_REQUIRED, IMAGE_OPTIONAL);
        assert_eq!(image["info"].as_object().unwrap().len(), 3, "{image}");
    }

    // Versions: children of a base image count up within its family.
    let child = |parent: &Value, volume: &str| {
        call(
            &site,
            Method::POST,
            "/api/vms/images",
            &site.vm,
            Some(json!({
                "realm": "libvirt", "parent": parent["id"],
                "info": {"pool": "ticrypt-vm-drives", "volume": volume, "deviceBusType": "scsi"},
            })),
        )
    };
    let (status, v1) = child(&created, "rocky8-v1.qcow2");
    assert_eq!(status, 200, "{v1}");
    assert_eq!(
        (v1["version"].as_u64(), v1["parent"].clone()),
        (Some(1), created["id"].clone())
    );
    let (_, v2) = child(&v1, "rocky8-v2.qcow2");
    assert_eq!(
        (v2["version"].as_u64(), v2["parent"].clone()),
        (Some(2), v1["id"].clone())
    );
    let (_, v3) = child(&created, "rocky8-v3.qcow2");
    assert_eq!(
        v3["version"], 3,
        "a second child of the base gets the family's next version"
    );

    // A Nutanix realm takes NutanixExtraInfo.
    admin(
        &site,
        Method::POST,
        "/api/admin/realms",
        json!({"id": "ntnx", "driver": "nutanix"}),
    );
    let (status, ntnx) = call(
        &site,
        Method::POST,
        "/api/vms/images",
        &site.vm,
        Some(json!({
            "realm": "ntnx", "name": "win", "imageType": "windows",
            "info": {"sourceType": "VMDisk", "timezone": "UTC"},
        })),
    );
    assert_eq!(status, 200, "{ntnx}");
    assert_eq!(
        ntnx["info"],
        json!({"sourceType": "VMDisk", "timezone": "UTC"})
    );
    let (_, listed) = call(
        &site,
        Method::GET,
        "/api/vms/images?realm=ntnx",
        &site.vm,
        None,
    );
    assert_eq!(listed, json!([ntnx]));
}

#[test]
fn image_requests_are_validated_against_the_realm_driver() {
    let site = site();
    admin(
        &site,
        Method::POST,
        "/api/admin/realms",
        json!({"id": "ntnx", "driver": "nutanix"}),
    );
    let post = |body: Value| call(&site, Method::POST, "/api/vms/images", &site.vm, Some(body));
    let libvirt_info = json!({"pool": "p", "volume": "v.qcow2", "deviceBusType": "virtio"});
    let ok = json!({"realm": "libvirt", "name": "n", "info": libvirt_info});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    assert_error(
        call(&site, Method::GET, "/api/vms/images", &site.vm, None),
        400,
        "MissingParameter",
    );
    assert_error(
        call(
            &site,
            Method::GET,
            "/api/vms/images?realm=nowhere",
            &site.vm,
            None,
        ),
        404,
        "RealmNotFound",
    );
    assert_error(
        post(json!({"name": "n", "info": libvirt_info})),
        400,
        "MissingParameter",
    );
    assert_error(post(with("realm", json!("nowhere"))), 404, "RealmNotFound");
    assert_error(
        post(json!({"realm": "libvirt", "name": "n"})),
        400,
        "MissingParameter",
    );
    assert_error(post(json!({"realm": "nowhere"})), 404, "RealmNotFound");
    assert_error(
        post(with("info", json!({"sourceType": "NDFS"}))),
        400,
        "InvalidParameter",
    );
    assert_error(
        post(with(
            "info",
            json!({"pool": "p", "volume": "v", "deviceBusType": "ide"}),
        )),
        400,
        "InvalidParameter",
    );
    assert_error(
        post(with("info", json!({"pool": "p", "deviceBusType": "scsi"}))),
        400,
        "MissingParameter",
    );
    assert_error(post(with("info", json!("pool"))), 400, "InvalidParameter");
    assert_error(
        post(json!({"realm": "ntnx", "info": libvirt_info})),
        400,
        "InvalidParameter",
    );
    assert_error(
        post(json!({"realm": "ntnx", "info": {"sourceType": "Floppy"}})),
        400,
        "InvalidParameter",
    );
    assert_error(
        post(with("imageType", json!("macos"))),
        400,
        "InvalidParameter",
    );
    assert_error(post(with("size", json!(0))), 400, "InvalidParameter");
    assert_error(post(with("size", json!(-5))), 400, "InvalidParameter");
    assert_error(post(with("limit", json!(0))), 400, "InvalidParameter");
    assert_error(post(with("limit", json!("many"))), 400, "InvalidParameter");
    assert_error(
        post(with("parent", json!("no-such-image"))),
        404,
        "ImageNotFound",
    );
    assert_error(post(with("settings", json!([1]))), 400, "InvalidParameter");
    assert_error(post(with("flavour", json!("x"))), 400, "InvalidParameter");
    let bad_json = send(
        &site.server,
        Method::POST,
        &with_token("/api/vms/images", &site.vm),
        None,
        |r| {
            r.header("content-type", "application/json")
                .body("{not json")
        },
    );
    assert_error(bad_json, 400, "InvalidJson");
    assert_eq!(post(ok.clone()).0, 200);
    assert_error(post(ok), 409, "ImageExists");
}

/// The spec's Edit Brick example, with a real team and user in the whitelist.
fn spec_brick_params(team: &str, user: &str) -> Value {
    json!({
        "name": "New Brick Name", "description": "My updated brick",
        "vcores": "1", "maxMemBytes": "5368709120",
        "setup": "These are instructions to set up the VM...", "realmID": "libvirt",
        "libvirt": {
            "image": {"pool": "ticrypt-vm-drives", "volume": "new-volume.qcow2"},
            "video": "vnc", "pty": true, "clockOffset": "localtime", "nic": "virtio",
            "devices": {"gpu-nvidia": 1}, "extraXML": "<body></body>", "deviceBusType": "scsi",
        },
        "whitelist": {"teamIDs": [team], "userIDs": [user]},
        "externalServers": ["server1"], "format": "linux",
    })
}

#[test]
fn bricks_are_created_when_new_and_patched_when_they_exist() {
    let site = site();
    let team = create_team(&site, "t");
    let image = call(&site, Method::POST, "/api/vms/images", &site.vm, Some(json!({
        "realm": "libvirt", "name": "nv", "size": GIB,
        "info": {"pool": "ticrypt-vm-drives", "volume": "new-volume.qcow2", "deviceBusType": "scsi"},
    }))).1;
    let vm = site.vm.clone();
    let (status, created) = send(
        &site.server,
        Method::PATCH,
        "/api/vms/bricks",
        Some(json!({"id": "brickID", "params": spec_brick_params(&team, "alice")})),
        move |r| r.header("TC_TOKEN", vm),
    );
    assert_eq!(status, 200, "{created}");
    assert_shape(&created, BRICK_REQUIRED, BRICK_OPTIONAL);
    assert_eq!(created["id"], "brickID");
    assert_eq!(created["vcores"], 1);
    assert_eq!(created["maxMemBytes"], 5368709120u64);
    assert_eq!(created["creatorID"], site.alice_id.as_str());
    assert_eq!(created["vmType"], "Secure");
    assert_eq!(created["noQuota"], false);
    assert_eq!(created["format"], "linux");
    assert_eq!(created["externalServers"], json!(["server1"]));
    assert_eq!(
        created["imageID"], image["id"],
        "the libvirt image is matched by pool and volume"
    );
    assert_eq!(
        created["whitelist"],
        json!({"teamIDs": [team], "userIDs": [site.alice_id]})
    );
    assert_eq!(created["libvirt"]["devices"], json!({"gpu-nvidia": 1}));
    assert_eq!(created["libvirt"]["extraXML"], "<body></body>");
    assert_eq!(created["libvirt"]["clockOffset"], "localtime");
    assert!(created.get("modified").is_none());
    assert!(created.get("nutanix").is_none());
    assert_recent(&created["created"]);

    // Only the given fields change; the other route spelling works the same.
    let (status, patched) = call(
        &site,
        Method::PATCH,
        "/api/vm/bricks",
        &site.vm,
        Some(json!({
            "brick": "brickID", "params": {"name": "Renamed", "vmType": "Worker", "noQuota": true},
        })),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (
            patched["name"].as_str(),
            patched["vmType"].as_str(),
            patched["noQuota"].as_bool()
        ),
        (Some("Renamed"), Some("Worker"), Some(true))
    );
    assert_eq!(patched["vcores"], 1);
    assert_eq!(patched["libvirt"], created["libvirt"]);
    assert_eq!(patched["created"], created["created"]);
    assert_recent(&patched["modified"]);
    let (_, listed) = call(&site, Method::GET, "/api/vms/bricks", &site.vm, None);
    assert_eq!(listed, json!([patched]));

    // Defaults of a minimal libvirt config, and a brick with no id gets one.
    let (status, minimal) = call(
        &site,
        Method::PATCH,
        "/api/vms/bricks",
        &site.vm,
        Some(json!({"params": {
            "name": "m", "vcores": 2, "maxMemBytes": GIB, "realmID": "libvirt",
            "libvirt": {"image": {"pool": "x", "volume": "y"}},
        }})),
    );
    assert_eq!(status, 200, "{minimal}");
    assert_eq!(
        minimal["libvirt"],
        json!({"image": {"pool": "x", "volume": "y"}, "pty": false, "clockOffset": "utc", "nic": "virtio", "devices": {}})
    );
    assert!(minimal["id"].as_str().is_some_and(|id| id.len() == 36));
    assert!(minimal.get("imageID").is_none());

    // A Nutanix realm takes a nutanix config; moving a brick there drops the libvirt one.
    admin(
        &site,
        Method::POST,
        "/api/admin/realms",
        json!({"id": "ntnx", "driver": "nutanix"}),
    );
    let (status, moved) = call(
        &site,
        Method::PATCH,
        "/api/vms/bricks",
        &site.vm,
        Some(json!({"brick": "brickID", "params": {
            "realmID": "ntnx", "nutanix": {"imageID": "ntnx-img-1", "osType": "linux", "devices": {"gpu": 2}},
        }})),
    );
    assert_eq!(status, 200, "{moved}");
    assert!(moved.get("libvirt").is_none());
    assert_eq!(
        moved["nutanix"],
        json!({"imageID": "ntnx-img-1", "osType": "linux", "devices": {"gpu": 2}, "debug": false})
    );
}

#[test]
fn brick_parameters_are_validated() {
    let site = site();
    admin(
        &site,
        Method::POST,
        "/api/admin/realms",
        json!({"id": "ntnx", "driver": "nutanix"}),
    );
    let patch = |params: Value| {
        call(
            &site,
            Method::PATCH,
            "/api/vms/bricks",
            &site.vm,
            Some(json!({"brick": "b1", "params": params})),
        )
    };
    let base = json!({"name": "b", "vcores": 1, "maxMemBytes": GIB, "realmID": "libvirt", "libvirt": {"image": {"pool": "p", "volume": "v"}}});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let libvirt_with = |k: &str, v: Value| {
        let mut b = base.clone();
        b["libvirt"][k] = v;
        b
    };
    assert_error(
        call(
            &site,
            Method::PATCH,
            "/api/vms/bricks",
            &site.vm,
            Some(json!({"brick": "b1"})),
        ),
        400,
        "MissingParameter",
    );
    assert_error(
        patch(json!({"name": "b", "maxMemBytes": GIB, "realmID": "libvirt"})),
        400,
        "MissingParameter",
    );
    for bad in [json!(0), json!("abc"), json!(2000), json!(1.5), json!(-1)] {
        assert_error(patch(with("vcores", bad)), 400, "InvalidParameter");
    }
    assert_error(
        patch(with("maxMemBytes", json!(100))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(with("maxMemBytes", json!("lots"))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(with("realmID", json!("nowhere"))),
        404,
        "RealmNotFound",
    );
    let mut no_libvirt = base.clone();
    no_libvirt.as_object_mut().unwrap().remove("libvirt");
    assert_error(patch(no_libvirt), 400, "MissingParameter");
    assert_error(
        patch(with("nutanix", json!({"imageID": "x"}))),
        400,
        "InvalidParameter",
    );
    let mut ntnx = base.clone();
    ntnx["realmID"] = json!("ntnx");
    assert_error(patch(ntnx.clone()), 400, "InvalidParameter");
    ntnx.as_object_mut().unwrap().remove("libvirt");
    assert_error(patch(ntnx.clone()), 400, "MissingParameter");
    ntnx["nutanix"] = json!({"timezone": "UTC"});
    assert_error(patch(ntnx.clone()), 400, "MissingParameter");
    ntnx["nutanix"] = json!({"imageID": "i", "osType": "beos"});
    assert_error(patch(ntnx), 400, "InvalidParameter");
    assert_error(
        patch(libvirt_with("video", json!("vga"))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(libvirt_with("clockOffset", json!("mars"))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(libvirt_with("nic", json!("e1000"))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(libvirt_with("pty", json!("yes"))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(libvirt_with("devices", json!({"gpu": -1}))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(libvirt_with("image", json!({"pool": "p"}))),
        400,
        "MissingParameter",
    );
    assert_error(
        patch(libvirt_with("deviceBusType", json!("ide"))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(with("whitelist", json!({"teamIDs": [""]}))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(with("whitelist", json!({"userIDs": [1]}))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(with("whitelist", json!({"groups": []}))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(with("whitelist", json!(["alice"]))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(with("whitelist", json!({"teamIDs": "t"}))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(with("vmType", json!("Gaming"))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(with("format", json!("macos"))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(with("externalServers", json!("s1"))),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(with("imageID", json!("no-image"))),
        404,
        "ImageNotFound",
    );
    assert_error(patch(with("name", json!(""))), 400, "InvalidParameter");
    assert_error(patch(with("speed", json!(9))), 400, "InvalidParameter");
    // Nothing above was stored; the valid brick is.
    assert_eq!(
        call(&site, Method::GET, "/api/vms/bricks", &site.vm, None).1,
        json!([])
    );
    assert_eq!(patch(base).0, 200);
}

#[test]
fn teams_and_their_quotas_have_the_spec_shapes() {
    let site = site();
    let (status, team) = call(
        &site,
        Method::POST,
        "/api/teams",
        &site.team,
        Some(json!({"name": "New Team", "desc": "Description of the new team"})),
    );
    assert_eq!(status, 200, "{team}");
    assert_shape(&team, TEAM_REQUIRED, TEAM_OPTIONAL);
    assert_eq!(
        (team["name"].as_str(), team["desc"].as_str()),
        (Some("New Team"), Some("Description of the new team"))
    );
    assert_eq!(team["quotas"], json!({}));
    assert_eq!(team["teamQuotas"], json!({"storage": {}, "devices": {}}));
    assert_recent(&team["created"]);
    let id = team["id"].as_str().unwrap();
    let (_, teams) = call(&site, Method::GET, "/api/teams", &site.team, None);
    assert_eq!(teams, json!([team]));

    let (status, quotas) = send(
        &site.server,
        Method::GET,
        &with_token("/api/teams/quotas", &site.team),
        Some(json!({"teamID": id})),
        |r| r,
    );
    assert_eq!(status, 200);
    assert_shape(&quotas, QUOTAS_REQUIRED, QUOTAS_OPTIONAL);

    // The spec's Edit Team Quotas example.
    let example = json!({
        "cores": 10, "memory": 10737418240u64,
        "storage": {"vault": 53687091200u64, "drives": 107374182400u64},
        "devices": {"gpu-nvidia": 2},
    });
    let (status, edited) = call(
        &site,
        Method::PATCH,
        "/api/teams/quotas",
        &site.team,
        Some(json!({"teamID": id, "quotas": example})),
    );
    assert_eq!(status, 200, "{edited}");
    assert_shape(&edited, TEAM_REQUIRED, TEAM_OPTIONAL);
    assert_eq!(edited["teamQuotas"], example);
    assert_shape(&edited["teamQuotas"], QUOTAS_REQUIRED, QUOTAS_OPTIONAL);
    assert_shape(&edited["perUserQuotas"], QUOTAS_REQUIRED, QUOTAS_OPTIONAL);
    assert_eq!(
        edited["quotas"],
        json!({
            "cores": 10, "memory": 10737418240u64, "storage.vault": 53687091200u64,
            "storage.drives": 107374182400u64, "devices.gpu-nvidia": 2,
        })
    );
    let (_, by_query) = call(
        &site,
        Method::GET,
        &format!("/api/teams/quotas?teamID={id}"),
        &site.team,
        None,
    );
    assert_eq!(by_query, example);

    // Start and end dates, and settings, when given at creation.
    let (status, dated) = call(
        &site,
        Method::POST,
        "/api/teams",
        &site.team,
        Some(json!({
            "name": "dated", "desc": "", "startDate": 1_000, "endDate": 2_000, "settings": {"a": 1},
            "perUserQuotas": {"cores": 2},
        })),
    );
    assert_eq!(status, 200, "{dated}");
    assert_shape(&dated, TEAM_REQUIRED, TEAM_OPTIONAL);
    assert_eq!(
        (dated["startDate"].as_u64(), dated["endDate"].as_u64()),
        (Some(1_000), Some(2_000))
    );
    assert_eq!(
        dated["perUserQuotas"],
        json!({"cores": 2, "storage": {}, "devices": {}})
    );
}

#[test]
fn team_requests_are_validated() {
    let site = site();
    let id = create_team(&site, "t");
    let post = |body: Value| call(&site, Method::POST, "/api/teams", &site.team, Some(body));
    let patch = |body: Value| {
        call(
            &site,
            Method::PATCH,
            "/api/teams/quotas",
            &site.team,
            Some(body),
        )
    };
    assert_error(post(json!({"desc": "x"})), 400, "MissingParameter");
    assert_error(post(json!({"name": "  "})), 400, "InvalidParameter");
    assert_error(post(json!({"name": 5})), 400, "InvalidParameter");
    assert_error(
        post(json!({"name": "x", "startDate": 5, "endDate": 4})),
        400,
        "InvalidParameter",
    );
    assert_error(
        post(json!({"name": "x", "members": []})),
        400,
        "InvalidParameter",
    );
    assert_error(
        call(&site, Method::GET, "/api/teams/quotas", &site.team, None),
        400,
        "MissingParameter",
    );
    assert_error(
        call(
            &site,
            Method::GET,
            "/api/teams/quotas?teamID=nope",
            &site.team,
            None,
        ),
        404,
        "TeamNotFound",
    );
    assert_error(
        patch(json!({"teamID": "nope", "quotas": {}})),
        404,
        "TeamNotFound",
    );
    assert_error(patch(json!({"teamID": id})), 400, "MissingParameter");
    assert_error(patch(json!({"quotas": {}})), 400, "MissingParameter");
    assert_error(
        patch(json!({"teamID": id, "quotas": {"cores": "x"}})),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(json!({"teamID": id, "quotas": {"cores": -1}})),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(json!({"teamID": id, "quotas": {"storage": {"vault": "big"}}})),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(json!({"teamID": id, "quotas": {"devices": [1]}})),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(json!({"teamID": id, "quotas": {"disks": 1}})),
        400,
        "InvalidParameter",
    );
    assert_error(
        patch(json!({"teamID": id, "quotas": 5})),
        400,
        "InvalidParameter",
    );
}

#[test]
fn team_quotas_are_enforced_when_a_team_vm_is_created() {
    let site = site();
    let team = create_team(&site, "q");
    brick(&site, "small", 1, GIB, json!({}));
    brick(
        &site,
        "gpu",
        1,
        GIB,
        json!({"libvirt": {
            "image": {"pool": "tessera", "volume": alpine(&site)["info"]["volume"]}, "devices": {"gpu-nvidia": 1},
        }}),
    );
    set_quotas(
        &site,
        &team,
        json!({"cores": 10, "memory": 3 * GIB, "devices": {"gpu-nvidia": 1}}),
        None,
    );

    let (status, first) = create_vm(&site, "small", &team);
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (
            first["team"].as_str(),
            first["brick"].as_str(),
            first["vcores"].as_u64()
        ),
        (Some(team.as_str()), Some("small"), Some(1))
    );
    assert_eq!(first["maxMemBytes"], GIB);
    let (status, gpu) = create_vm(&site, "gpu", &team);
    assert_eq!(status, 200, "{gpu}");
    assert_error(create_vm(&site, "gpu", &team), 403, "QuotaExceeded");
    assert_eq!(create_vm(&site, "small", &team).0, 200);
    let (status, refused) = create_vm(&site, "small", &team);
    assert_error((status, refused.clone()), 403, "QuotaExceeded");
    assert!(
        refused["error"].as_str().unwrap().contains("memory"),
        "{refused}"
    );

    // Storage per type: VM boot disks count as `vms`.
    set_quotas(
        &site,
        &team,
        json!({"storage": {"vms": 3 * ALPINE_BYTES}}),
        None,
    );
    let (_, refused) = create_vm(&site, "small", &team);
    assert!(
        refused["error"].as_str().unwrap().contains("storage vms"),
        "{refused}"
    );
    // Cores.
    set_quotas(&site, &team, json!({"cores": 3}), None);
    let (_, refused) = create_vm(&site, "small", &team);
    assert!(
        refused["error"].as_str().unwrap().contains("cores"),
        "{refused}"
    );

    // Per-user quotas count only the caller's VMs in the team.
    set_quotas(&site, &team, json!({}), Some(json!({"cores": 3})));
    assert_error(create_vm(&site, "small", &team), 403, "QuotaExceeded");
    let other_team = create_team(&site, "other");
    assert_eq!(
        create_vm(&site, "small", &other_team).0,
        200,
        "another team has its own usage"
    );

    // A deleted VM frees its share.
    let first_id = first["id"].as_str().unwrap();
    wait_vm(&site, first_id, "running");
    let (status, deleting) = call(
        &site,
        Method::DELETE,
        &format!("/api/vms/{first_id}"),
        &site.vm,
        None,
    );
    assert_eq!(status, 200, "{deleting}");
    wait_vm(&site, first_id, "deleted");
    assert_eq!(create_vm(&site, "small", &team).0, 200);
    assert_error(
        call(&site, Method::DELETE, "/api/vms/nope", &site.vm, None),
        404,
        "VmNotFound",
    );

    // A noQuota brick takes nothing of the quotas.
    brick(&site, "free", 1, GIB, json!({"noQuota": true}));
    assert_eq!(create_vm(&site, "free", &team).0, 200);
}

#[test]
fn vm_creation_checks_dates_whitelists_and_image_limits() {
    let site = site();
    let team = create_team(&site, "t");
    let other = create_team(&site, "other");
    let (_, expired) = call(
        &site,
        Method::POST,
        "/api/teams",
        &site.team,
        Some(json!({"name": "old", "endDate": 1_000})),
    );
    let expired = expired["id"].as_str().unwrap().to_string();
    brick(&site, "open", 1, GIB, json!({}));
    assert_error(create_vm(&site, "open", &expired), 403, "TeamInactive");

    brick(
        &site,
        "listed",
        1,
        GIB,
        json!({"whitelist": {"teamIDs": [team], "userIDs": []}}),
    );
    assert_eq!(create_vm(&site, "listed", &team).0, 200);
    assert_error(create_vm(&site, "listed", &other), 403, "NotWhitelisted");
    brick(
        &site,
        "mine",
        1,
        GIB,
        json!({"whitelist": {"teamIDs": [], "userIDs": ["alice"]}}),
    );
    assert_eq!(
        create_vm(&site, "mine", &other).0,
        200,
        "alice herself is listed"
    );

    // An image's limit caps the VMs running it at once.
    let (_, image) = call(
        &site,
        Method::POST,
        "/api/vms/images",
        &site.vm,
        Some(json!({
            "realm": "libvirt", "name": "limited", "size": GIB, "limit": 1,
            "info": {"pool": "p", "volume": "limited.qcow2", "deviceBusType": "virtio"},
        })),
    );
    let (status, _) = call(
        &site,
        Method::PATCH,
        "/api/vms/bricks",
        &site.vm,
        Some(json!({"brick": "lim", "params": {
            "name": "lim", "vcores": 1, "maxMemBytes": GIB, "realmID": "libvirt",
            "libvirt": {"image": {"pool": "p", "volume": "limited.qcow2"}},
        }})),
    );
    assert_eq!(status, 200);
    let (status, vm) = create_vm(&site, "lim", &team);
    assert_eq!(status, 200, "{vm}");
    assert_eq!(vm["imageID"], image["id"]);
    assert_error(create_vm(&site, "lim", &team), 409, "ImageLimitReached");

    // Bad requests.
    let (status, _) = call(
        &site,
        Method::PATCH,
        "/api/vms/bricks",
        &site.vm,
        Some(json!({"brick": "noimage", "params": {
            "name": "n", "vcores": 1, "maxMemBytes": GIB, "realmID": "libvirt",
            "libvirt": {"image": {"pool": "nowhere", "volume": "none"}},
        }})),
    );
    assert_eq!(status, 200);
    assert_error(create_vm(&site, "noimage", &team), 409, "BrickHasNoImage");
    assert_error(create_vm(&site, "nobrick", &team), 404, "BrickNotFound");
    assert_error(create_vm(&site, "open", "noteam"), 404, "TeamNotFound");
    assert_error(
        call(
            &site,
            Method::POST,
            "/api/vms",
            &site.vm,
            Some(json!({"team": team})),
        ),
        400,
        "MissingParameter",
    );
    let (_, listed) = call(
        &site,
        Method::GET,
        &format!("/api/vms?team={team}"),
        &site.vm,
        None,
    );
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}

#[test]
fn projects_have_the_spec_fields() {
    let site = site();
    let parent = admin(
        &site,
        Method::POST,
        "/api/admin/projects",
        json!({"name": "root project", "desc": "top", "securityLevel": "high", "settings": {"k": true}}),
    );
    assert_shape(&parent, PROJECT_REQUIRED, PROJECT_OPTIONAL);
    let child = admin(
        &site,
        Method::POST,
        "/api/admin/projects",
        json!({"name": "sub", "parent": parent["id"]}),
    );
    assert_shape(&child, PROJECT_REQUIRED, PROJECT_OPTIONAL);
    assert_eq!(child["parent"], parent["id"]);
    assert_eq!(
        (
            child["desc"].as_str(),
            child["securityLevel"].as_str(),
            child["settings"].clone()
        ),
        (Some(""), Some(""), json!({}))
    );
    assert_recent(&child["created"]);

    let (status, all) = call(&site, Method::GET, "/api/projects", &site.project, None);
    assert_eq!(status, 200);
    assert_eq!(all, json!([parent, child]));
    let id = parent["id"].as_str().unwrap();
    let (status, one) = call(
        &site,
        Method::GET,
        &format!("/api/projects/{id}"),
        &site.project,
        None,
    );
    assert_eq!((status, one), (200, parent));
    assert_error(
        call(
            &site,
            Method::GET,
            "/api/projects/nope",
            &site.project,
            None,
        ),
        404,
        "ProjectNotFound",
    );

    let create = |body: Value| {
        admin_call(
            &site.server,
            Method::POST,
            "/api/admin/projects",
            Some(body),
        )
    };
    assert_error(create(json!({"desc": "x"})), 400, "MissingParameter");
    assert_error(
        create(json!({"name": "x", "parent": "nope"})),
        404,
        "ProjectNotFound",
    );
    assert_error(
        create(json!({"name": "x", "settings": "s"})),
        400,
        "InvalidParameter",
    );
}

#[test]
fn unknown_routes_and_methods_get_the_envelope() {
    let site = site();
    assert_error(
        call(&site, Method::GET, "/api/nothing", &site.drive, None),
        404,
        "RouteNotFound",
    );
    let (status, body) = call(&site, Method::PUT, "/api/drives", &site.drive, None);
    assert_error((status, body), 405, "MethodNotAllowed");
}

#[test]
fn concurrent_vm_creations_cannot_pass_a_team_quota_together() {
    let site = site();
    let team = create_team(&site, "race");
    brick(&site, "one", 1, GIB, json!({}));
    set_quotas(&site, &team, json!({"cores": 2}), None);
    let statuses: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| s.spawn(|| create_vm(&site, "one", &team)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = statuses.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(created, 2, "{statuses:?}");
    for (status, body) in statuses.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(
            (*status, body["code"].as_str()),
            (403, Some("QuotaExceeded")),
            "{body}"
        );
    }
}

#[test]
fn team_drives_count_against_the_drives_storage_quota() {
    let site = site();
    add_user(&site.server, "bob", "bob password 1234", false);
    let team = create_team(&site, "storage");
    set_quotas(
        &site,
        &team,
        json!({"storage": {"drives": 3 * GIB}}),
        Some(json!({"storage": {"drives": 2 * GIB}})),
    );
    let drive = |owner: &str, gib: u64| {
        admin_call(
            &site.server,
            Method::POST,
            "/api/admin/drives",
            Some(json!({"name": "d", "owner": owner, "capacity": gib * GIB, "team": team})),
        )
    };
    assert_eq!(drive("alice", 2).0, 200);
    let (status, refused) = drive("alice", 1);
    assert_error((status, refused.clone()), 403, "QuotaExceeded");
    assert!(
        refused["error"].as_str().unwrap().starts_with("per-user"),
        "{refused}"
    );
    assert_eq!(drive("bob", 1).0, 200);
    let (status, refused) = drive("bob", 1);
    assert_error((status, refused.clone()), 403, "QuotaExceeded");
    assert!(
        refused["error"].as_str().unwrap().starts_with("team"),
        "{refused}"
    );
    let (status, _) = admin_call(
        &site.server,
        Method::POST,
        "/api/admin/drives",
        Some(json!({"name": "d", "owner": "bob", "capacity": 5 * GIB})),
    );
    assert_eq!(status, 200, "a drive of no team has no team quota");
}

/// The spec's curl requests as written (token in the URL and the header),
/// on a fresh server.
#[test]
fn the_spec_curl_examples_work_on_a_fresh_server() {
    let site = site();
    let curl = |method: Method, path: &str, token: &str, body: Option<Value>| {
        let token = token.to_string();
        send(
            &site.server,
            method,
            &with_token(path, &token),
            body,
            move |r| r.header("TC_TOKEN", token),
        )
    };
    // Get VM Images: the example sends a POST with only the realm.
    let (status, images) = curl(
        Method::POST,
        "/api/vms/images",
        &site.vm,
        Some(json!({"realm": "libvirt"})),
    );
    assert_eq!(status, 200, "{images}");
    assert!(images.as_array().is_some_and(|a| !a.is_empty()), "{images}");
    let (status, image) = curl(
        Method::POST,
        "/api/vm/images",
        &site.vm,
        Some(json!({
            "realm": "libvirt", "name": "newImage", "description": "My new image", "size": 5368709120u64,
            "imageType": "linux", "limit": 5,
            "info": {"pool": "ticrypt-vm-drives", "volume": "rocky8-prod.qcow2", "deviceBusType": "virtio"},
        })),
    );
    assert_eq!(status, 200, "{image}");
    // Edit Brick, verbatim (its whitelist names ids nobody holds yet).
    let mut params = spec_brick_params("team1", "user1");
    params["whitelist"]["userIDs"] = json!(["user1", "user2"]);
    let (status, brick) = curl(
        Method::PATCH,
        "/api/vms/bricks",
        &site.vm,
        Some(json!({"id": "brickID", "params": params})),
    );
    assert_eq!(status, 200, "{brick}");
    assert_eq!(
        brick["whitelist"],
        json!({"teamIDs": ["team1"], "userIDs": ["user1", "user2"]})
    );
    // Teams.
    assert_eq!(
        curl(Method::GET, "/api/teams", &site.team, None),
        (200, json!([]))
    );
    let (status, team) = curl(
        Method::POST,
        "/api/teams",
        &site.team,
        Some(json!({"name": "New Team", "desc": "Description of the new team"})),
    );
    assert_eq!(status, 200, "{team}");
    let (status, quotas) = curl(
        Method::GET,
        "/api/teams/quotas",
        &site.team,
        Some(json!({"teamID": team["id"]})),
    );
    assert_eq!(
        (status, quotas),
        (200, json!({"storage": {}, "devices": {}}))
    );
    let (status, edited) = curl(
        Method::PATCH,
        "/api/teams/quotas",
        &site.team,
        Some(json!({"teamID": team["id"], "quotas": {
            "cores": 10, "memory": 10737418240u64,
            "storage": {"vault": 53687091200u64, "drives": 107374182400u64}, "devices": {"gpu-nvidia": 2},
        }})),
    );
    assert_eq!(
        (status, edited["teamQuotas"]["cores"].as_u64()),
        (200, Some(10)),
        "{edited}"
    );
    // Projects.
    let project = admin(
        &site,
        Method::POST,
        "/api/admin/projects",
        json!({"name": "p"}),
    );
    assert_eq!(
        curl(Method::GET, "/api/projects", &site.project, None),
        (200, json!([project]))
    );
    let path = format!("/api/projects/{}", project["id"].as_str().unwrap());
    assert_eq!(
        curl(Method::GET, &path, &site.project, None),
        (200, project)
    );
}
