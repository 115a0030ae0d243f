//! Longest-prefix routing over the default site and each shipped plugin's
//! own error envelope on its mount.

use crate::harness::{Server, client, json};

#[test]
fn each_shipped_plugin_answers_on_its_mount_in_its_own_envelope() {
    let server = Server::default_site();
    let http = client();

    let cloudapi = http.get(server.url("/my")).send().unwrap();
    assert_eq!(cloudapi.status(), 401);
    assert_eq!(json(cloudapi)["code"], "InvalidCredentials");

    // Without credentials each family refuses in its own envelope.
    let ticrypt = http.get(server.url("/api/drives")).send().unwrap();
    assert_eq!(ticrypt.status(), 401);
    let body = json(ticrypt);
    assert!(
        body["error"].is_string() && body["code"].is_string(),
        "{body}"
    );

    for path in ["/vm/v3/host", "/auth/v4/whoami", "/api/auth/v4/whoami"] {
        let body = json(http.get(server.url(path)).send().unwrap());
        assert!(body["error"]["code"].is_number(), "{path}: {body}");
        assert!(body["error"]["msg"].is_string(), "{path}: {body}");
    }

    let fosscloud = http
        .get(server.url("/vm-manager/api/user/login"))
        .send()
        .unwrap();
    let status = fosscloud.status().as_u16();
    let body = json(fosscloud);
    assert!((400..500).contains(&status), "{status} {body}");
    assert_eq!(body["status"].as_u64(), Some(u64::from(status)), "{body}");
    assert!(
        body["code"]
            .as_u64()
            .is_some_and(|c| c / 1000 == u64::from(status)),
        "{body}"
    );
    assert!(body["devDescription"].is_string(), "{body}");

    let admin = http
        .get(server.url("/api/v1/admin/version"))
        .send()
        .unwrap();
    assert_eq!(admin.status(), 403, "no token, no access");
    assert!(admin.headers().contains_key("error-message"));
    assert_eq!(json(admin)["Status"], "403 Forbidden");
}

#[test]
fn longest_prefix_wins_on_segment_boundaries() {
    let server = Server::default_site();
    let http = client();
    let who = |path: &str| -> String {
        let body = json(http.get(server.url(path)).send().unwrap());
        if body.get("Status").is_some() {
            "appliance-admin"
        } else if body["error"]["msg"].is_string() {
            "vmmanager"
        } else if body.get("devDescription").is_some() {
            "fosscloud"
        } else if body["error"].is_string() {
            "ticrypt"
        } else {
            "cloudapi"
        }
        .to_string()
    };
    assert_eq!(who("/api/v1/admin/settings"), "appliance-admin");
    assert_eq!(who("/api/v1/admin"), "appliance-admin");
    assert_eq!(who("/api/auth/v4/public/token"), "vmmanager");
    assert_eq!(who("/api/drives"), "ticrypt");
    assert_eq!(who("/api"), "ticrypt");
    assert_eq!(who("/apix"), "cloudapi");
    assert_eq!(who("/api/v1/adminx"), "ticrypt");
    assert_eq!(who("/vm-manager/api/no/such/action"), "fosscloud");
    assert_eq!(who("/--ping"), "cloudapi");
}

#[test]
fn a_path_no_mount_covers_is_a_json_404() {
    let server = Server::with_site(&crate::harness::test_site());
    let resp = client().get(server.url("/nothing/here")).send().unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().contains_key("request-id"));
    assert_eq!(json(resp)["code"], "NotFound");
    // A mount matches on whole segments only.
    assert_eq!(
        client()
            .get(server.url("/hellox/hello"))
            .send()
            .unwrap()
            .status(),
        404
    );
}

#[test]
fn the_plugin_sees_mount_subpath_and_query() {
    let server = Server::with_site(&crate::harness::test_site());
    let resp = client()
        .get(server.url("/hello/notes?limit=bogus"))
        .send()
        .unwrap();
    assert_eq!(
        resp.status(),
        400,
        "the query reached the plugin and was parsed there"
    );
    let ok = client().get(server.url("/hello/hello")).send().unwrap();
    assert_eq!(json(ok), serde_json::json!({"hello": "world"}));
}
