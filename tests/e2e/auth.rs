//! The auth primitive end to end: the operator CLI writes identities while
//! the server runs, and the hello plugin authenticates requests through the
//! WIT interface (passwords, tokens, throttling, grants), with no secret in
//! any log.

use serde_json::json;

use crate::harness::{Server, cli_ok, client, json, test_site};

const PASSWORD: &str = "correct horse battery staple";

fn add_alice(server: &Server) {
    let out = cli_ok(
        &server.data_dir(),
        &[
            "user",
            "add",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.starts_with("created alice ("), "{out}");
}

/// `GET /hello/whoami` with Basic credentials.
fn whoami(server: &Server, user: &str, password: &str) -> reqwest::blocking::Response {
    client()
        .get(server.url("/hello/whoami"))
        .basic_auth(user, Some(password))
        .send()
        .unwrap()
}

/// `POST /hello/tokens` with Basic credentials: a session token.
fn login_token(server: &Server, user: &str, password: &str) -> reqwest::blocking::Response {
    client()
        .post(server.url("/hello/tokens"))
        .basic_auth(user, Some(password))
        .send()
        .unwrap()
}

#[test]
fn basic_credentials_are_checked_by_the_kernel() {
    let server = Server::with_site(&test_site());
    add_alice(&server);
    let http = client();
    let ok = whoami(&server, "alice", PASSWORD);
    assert_eq!(ok.status(), 200);
    assert_eq!(json(ok)["login"], "alice");
    // By email too.
    let by_email = whoami(&server, "alice@example.com", PASSWORD);
    assert_eq!(by_email.status(), 200);
    let wrong = whoami(&server, "alice", "nope");
    assert_eq!(wrong.status(), 401);
    let unknown = whoami(&server, "bob", "x");
    assert_eq!(unknown.status(), 401);
    let none = http.get(server.url("/hello/whoami")).send().unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Basic realm=\"hello\"");
}

#[test]
fn a_disabled_account_is_refused_and_can_be_enabled_again() {
    let server = Server::with_site(&test_site());
    add_alice(&server);
    cli_ok(&server.data_dir(), &["user", "disable", "alice"], "");
    let refused = whoami(&server, "alice", PASSWORD);
    assert_eq!(refused.status(), 403);
    cli_ok(&server.data_dir(), &["user", "enable", "alice"], "");
    let ok = whoami(&server, "alice", PASSWORD);
    assert_eq!(ok.status(), 200);
}

#[test]
fn a_session_token_works_until_it_is_revoked() {
    let server = Server::with_site(&test_site());
    add_alice(&server);
    let http = client();
    let issued = login_token(&server, "alice", PASSWORD);
    assert_eq!(issued.status(), 201);
    let issued = json(issued);
    let token = issued["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 43, "base64url of 32 bytes");

    let me = http
        .get(server.url("/hello/me"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(me.status(), 200);
    let me = json(me);
    assert_eq!(
        (me["account"]["login"].as_str(), me["scope"].as_str()),
        (Some("alice"), Some("hello:session"))
    );

    let listed = cli_ok(
        &server.data_dir(),
        &["token", "list", "alice", "--json"],
        "",
    );
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["id"], issued["id"]);
    assert!(
        !listed.to_string().contains(&token),
        "listings never show a value"
    );

    let id = issued["id"].as_str().unwrap();
    cli_ok(&server.data_dir(), &["token", "revoke", id], "");
    let after = http
        .get(server.url("/hello/me"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(after.status(), 401);
    let garbage = http
        .get(server.url("/hello/me"))
        .bearer_auth("not-a-token")
        .send()
        .unwrap();
    assert_eq!(garbage.status(), 401);
}

#[test]
fn a_token_from_the_cli_is_checked_by_scope() {
    let server = Server::with_site(&test_site());
    add_alice(&server);
    let dir = server.data_dir();
    let value = cli_ok(
        &dir,
        &[
            "token",
            "create",
            "alice",
            "--scope",
            "hello:cli",
            "--ttl",
            "1h",
        ],
        "",
    );
    let value = value.trim();
    assert_eq!(value.lines().count(), 1, "only the value on stdout");
    let ok = client()
        .get(server.url("/hello/me"))
        .bearer_auth(value)
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200, "hello:* admits hello:cli");

    let other = cli_ok(
        &dir,
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
    let other = other.trim();
    assert!(
        other.len() == 32 && other.chars().all(|c| c.is_ascii_alphanumeric()),
        "{other}"
    );
    let refused = client()
        .get(server.url("/hello/me"))
        .bearer_auth(other)
        .send()
        .unwrap();
    assert_eq!(refused.status(), 401, "another family's scope is refused");
}

#[test]
fn repeated_failures_are_throttled_even_with_the_right_password() {
    let server = Server::with_site(&test_site());
    add_alice(&server);
    for _ in 0..5 {
        let wrong = whoami(&server, "alice", "wrong");
        assert_eq!(wrong.status(), 401);
    }
    let throttled = whoami(&server, "alice", PASSWORD);
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
    let audit = cli_ok(&server.data_dir(), &["audit", "--json"], "");
    assert!(audit.contains("throttled"), "{audit}");
}

#[test]
fn account_changes_need_the_auth_admin_grant() {
    let without = Server::with_site(&test_site());
    let body = json!({"login": "carol", "email": "carol@example.com", "password": "pw-123456"});
    let refused = client()
        .post(without.url("/hello/signup"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(refused.status(), 403);

    let site = test_site().replace(
        r#"grants = ["storage", "auth", "jobs", "hypervisor"]"#,
        r#"grants = ["storage", "auth", "jobs", "hypervisor", "auth-admin"]"#,
    );
    let with = Server::with_site(&site);
    let created = client()
        .post(with.url("/hello/signup"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let again = client()
        .post(with.url("/hello/signup"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(again.status(), 409);
    let bad = client()
        .post(with.url("/hello/signup"))
        .json(&json!({"login": "1bad login", "email": "x@example.com", "password": "pw"}))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    let login = client()
        .get(with.url("/hello/whoami"))
        .basic_auth("carol", Some("pw-123456"))
        .send()
        .unwrap();
    assert_eq!(login.status(), 200);
}

#[test]
fn no_secret_reaches_the_log() {
    let site = test_site().replace("log = \"info\"", "log = \"debug\"");
    let server = Server::with_site(&site);
    add_alice(&server);
    let http = client();
    whoami(&server, "alice", "wrong-password-xyz");
    let issued = json(login_token(&server, "alice", PASSWORD));
    let token = issued["token"].as_str().unwrap().to_string();
    http.get(server.url("/hello/me"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    let cli_token = cli_ok(
        &server.data_dir(),
        &["token", "create", "alice", "--scope", "hello:x"],
        "",
    );
    http.get(server.url("/hello/me"))
        .bearer_auth(cli_token.trim())
        .send()
        .unwrap();
    let audit = cli_ok(&server.data_dir(), &["audit", "--json"], "");

    let log = server.log();
    assert!(log.contains("DEBUG"), "the log ran at debug level");
    for secret in [
        PASSWORD,
        "wrong-password-xyz",
        token.as_str(),
        cli_token.trim(),
    ] {
        assert!(!log.contains(secret), "a secret reached the server log");
        assert!(!audit.contains(secret), "a secret reached the audit trail");
    }
}
