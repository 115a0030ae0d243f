//! RBAC end to end: a sub-user's requests are allowed only by an active role that is
//! tagged on the resource and has a rule for the action; the owner bypasses it.

use serde_json::json;

use super::{KeyPair, Signer, account_with_key, assert_error, site};
use crate::harness::Server;

pub struct Rbac {
    pub _server: Server,
    pub alice: Signer,
    pub bob: Signer,
}

/// alice (owner) with sub-user bob, who has his own key; roles and policies as given.
pub fn setup(
    policies: &[(&str, &[&str])],
    roles: &[(&str, bool, &[&str])],
    tags: &[(&str, &[&str])],
) -> Rbac {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let created = alice.post(
        "/my/users",
        &json!({"login": "bob", "email": "bob@example.com", "password": "secret123secret"}),
    );
    assert_eq!(created.status(), 201);
    let key = KeyPair::generate("ecdsa");
    assert_eq!(
        alice
            .post("/my/users/bob/keys", &json!({"key": key.public}))
            .status(),
        201
    );
    for (name, rules) in policies {
        let r = alice.post("/my/policies", &json!({"name": name, "rules": rules}));
        assert_eq!(r.status(), 201, "policy {name}");
    }
    for (name, default, policies) in roles {
        let r = alice.post(
            "/my/roles",
            &json!({"name": name, "members": [{"type": "subuser", "login": "bob", "default": default}], "policies": policies}),
        );
        assert_eq!(r.status(), 201, "role {name}");
    }
    for (path, roles) in tags {
        let r = alice.send("PUT", path, Some(&json!({"role-tag": roles})));
        assert_eq!(r.status(), 200, "tag {path}");
    }
    let bob = Signer::new(&server, &format!("/alice/users/bob/keys/{}", key.md5), key);
    Rbac {
        _server: server,
        alice,
        bob,
    }
}

#[track_caller]
pub fn expect(signer: &Signer, method: &str, path: &str, status: u16) {
    let body = (method == "POST").then(|| json!({}));
    let got = signer.send(method, path, body.as_ref()).status().as_u16();
    assert_eq!(got, status, "{method} {path}");
}

#[test]
fn a_sub_user_needs_a_tagged_role_with_a_matching_rule() {
    let t = setup(
        &[("read", &["CAN getaccount and listkeys", "can getkey"])],
        &[("reader", true, &["read"])],
        &[("/my", &["reader"]), ("/my/keys", &["reader"])],
    );
    // Allowed: tagged and a rule names the action.
    expect(&t.bob, "GET", "/alice", 200);
    expect(&t.bob, "GET", "/my", 200);
    expect(&t.bob, "GET", "/alice/keys", 200);
    // Not tagged: the key itself carries no tag.
    expect(&t.bob, "GET", "/alice/keys/id_rsa", 403);
    // Tagged but no rule for the action.
    expect(&t.bob, "POST", "/alice/keys", 403);
    expect(&t.bob, "POST", "/alice", 403);
    // Neither.
    expect(&t.bob, "GET", "/alice/users", 403);
    expect(&t.bob, "GET", "/alice/roles", 403);
    // The owner bypasses RBAC.
    for path in [
        "/my",
        "/my/keys",
        "/my/users",
        "/my/roles",
        "/my/keys/id_rsa",
    ] {
        expect(&t.alice, "GET", path, 200);
    }
    // Tagging the key lets the getkey rule apply.
    assert_eq!(
        t.alice
            .send(
                "PUT",
                "/my/keys/id_rsa",
                Some(&json!({"role-tag": ["reader"]}))
            )
            .status(),
        200
    );
    expect(&t.bob, "GET", "/alice/keys/id_rsa", 200);
    let body = assert_error(t.bob.get("/alice/users"), 403, "NotAuthorized");
    assert!(
        body["message"].as_str().unwrap().contains("listusers"),
        "{body}"
    );
}

#[test]
fn non_default_roles_are_active_only_with_as_role() {
    let t = setup(
        &[("users", &["CAN listusers"]), ("read", &["CAN getaccount"])],
        &[("ops", false, &["users"]), ("reader", true, &["read"])],
        &[("/my/users", &["ops"]), ("/my", &["reader", "ops"])],
    );
    expect(&t.bob, "GET", "/alice/users", 403);
    expect(&t.bob, "GET", "/alice/users?as-role=ops", 200);
    expect(&t.bob, "GET", "/alice/users?as-role=reader,ops", 200);
    // as-role replaces the defaults: reader is not active here.
    expect(&t.bob, "GET", "/alice?as-role=ops", 403);
    expect(&t.bob, "GET", "/alice", 200);
    // A role the user is not a member of cannot be taken up.
    t.alice.post("/my/roles", &json!({"name": "admins"}));
    expect(&t.bob, "GET", "/alice/users?as-role=admins", 403);
}

#[test]
fn rule_conditions_on_source_ip_time_and_day_are_evaluated() {
    use std::time::{SystemTime, UNIX_EPOCH};
    let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let today = ((secs / 86_400 + 4) % 7) as usize;
    let not_today = format!(
        "CAN listroles if requesttime::day in ({}, {})",
        days[(today + 2) % 7],
        days[(today + 3) % 7]
    );
    let today_rule = format!(
        "CAN listpolicies if day = {} and time >= 00:00:00",
        days[today]
    );
    let t = setup(
        &[
            ("lan", &["CAN getconfig if sourceip = 10.0.0.0/8"]),
            (
                "local",
                &["CAN listkeys when sourceip = 127.0.0.1 or sourceip = ::1"],
            ),
            ("weekday", &[not_today.as_str()]),
            ("everyday", &[today_rule.as_str()]),
        ],
        &[("r", true, &["lan", "local", "weekday", "everyday"])],
        &[
            ("/my/config", &["r"]),
            ("/my/keys", &["r"]),
            ("/my/roles", &["r"]),
            ("/my/policies", &["r"]),
        ],
    );
    expect(&t.bob, "GET", "/alice/config", 403);
    expect(&t.bob, "GET", "/alice/keys", 200);
    expect(&t.bob, "GET", "/alice/roles", 403);
    expect(&t.bob, "GET", "/alice/policies", 200);
}

#[test]
fn role_tags_follow_the_object_not_its_spelling() {
    let t = setup(
        &[("self", &["CAN getuser and listuserkeys"])],
        &[("me", true, &["self"])],
        &[("/my/users/bob", &["me"])],
    );
    // Tagged by login, checked by id and by login.
    let (_, _, user) = super::status_json(t.alice.get("/my/users/bob"));
    let id = user["id"].as_str().unwrap();
    expect(&t.bob, "GET", "/alice/users/bob", 200);
    expect(&t.bob, "GET", &format!("/alice/users/{id}"), 200);
    // Keys under the user are their own resource.
    expect(&t.bob, "GET", "/alice/users/bob/keys", 403);
    assert_eq!(
        t.alice
            .send(
                "PUT",
                "/my/users/bob/keys",
                Some(&json!({"role-tag": ["me"]}))
            )
            .status(),
        200
    );
    expect(&t.bob, "GET", "/alice/users/bob/keys", 200);
    // Removing the role drops its tags: the access goes with it.
    assert_eq!(t.alice.send("DELETE", "/my/roles/me", None).status(), 204);
    expect(&t.bob, "GET", "/alice/users/bob", 403);
}

#[test]
fn a_policy_s_rules_take_effect_when_updated() {
    let t = setup(
        &[("p", &["CAN listkeys"])],
        &[("r", true, &["p"])],
        &[("/my/users", &["r"])],
    );
    expect(&t.bob, "GET", "/alice/users", 403);
    let r = t.alice.post(
        "/my/policies/p",
        &json!({"rules": ["CAN listkeys", "CAN listusers"]}),
    );
    assert_eq!(r.status(), 200);
    expect(&t.bob, "GET", "/alice/users", 200);
}
