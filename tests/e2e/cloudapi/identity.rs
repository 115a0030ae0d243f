//! Account, keys, users, user keys, roles, policies, config, datacenters, services,
//! limits: every endpoint of part 1 with its success and error cases.

use serde_json::json;

use super::{KeyPair, Signer, account_with_key, add_key, assert_error, site, status_json};
use crate::harness::cli_ok;

#[test]
fn get_account_shows_the_identity_store_s_account() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let (status, _, body) = status_json(alice.get("/my"));
    assert_eq!(status, 200);
    assert_eq!(body["login"], "alice");
    assert_eq!(body["email"], "alice@example.com");
    assert!(body["id"].as_str().unwrap().len() >= 32);
    assert!(body["created"].as_str().unwrap().ends_with('Z'));
    let (status, _, by_login) = status_json(alice.get("/alice"));
    assert_eq!((status, &by_login["id"]), (200, &body["id"]));
}

#[test]
fn update_account_changes_store_and_profile_fields() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let (status, _, body) = status_json(alice.post(
        "/my",
        &json!({"firstName": "Alice", "companyName": "Example", "postalCode": "12345",
                "phone": "1 (234) 567 890", "triton_cns_enabled": true}),
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["firstName"], "Alice");
    assert_eq!(body["postalCode"], "12345");
    assert_eq!(body["triton_cns_enabled"], true);
    let (_, _, again) = status_json(alice.get("/my"));
    assert_eq!(again["companyName"], "Example");
    assert_eq!(again["phone"], "1 (234) 567 890");
    assert_eq!(again["postalCode"], "12345");
    // The operator CLI sees the store's fields.
    let shown = cli_ok(&server.data_dir(), &["user", "show", "alice", "--json"], "");
    assert!(shown.contains("Alice"), "{shown}");
    assert_error(
        alice.post("/my", &json!({"email": "not-an-email"})),
        409,
        "InvalidArgument",
    );
    assert_error(
        alice.post("/my", &json!({"triton_cns_enabled": "maybe"})),
        409,
        "InvalidArgument",
    );
}

#[test]
fn account_limits_come_from_the_site_settings() {
    let server = site(
        r#"limits = [{ by = "machines", value = 100 }, { by = "ram", value = 1024, check = "os", os = "linux" }]"#,
    );
    let alice = account_with_key(&server, "alice");
    let (status, _, body) = status_json(alice.get("/my/limits"));
    assert_eq!(status, 200);
    assert_eq!(body[0], json!({"by": "machines", "value": 100, "used": 0}));
    assert_eq!(body[1]["os"], "linux");
    let plain = site("");
    let bob = account_with_key(&plain, "bob");
    assert_eq!(status_json(bob.get("/my/limits")).2, json!([]));
}

#[test]
fn account_limits_count_the_account_s_live_machines() {
    let server = site(
        r#"limits = [
  { by = "machines", value = 10 },
  { by = "ram", value = 4096, check = "os", os = "linux" },
  { by = "quota", value = 100 },
  { by = "machines", value = 2, check = "image", image = "base-64-lts" },
]
[plugins.cloudapi.settings.packages.small]
memory = 512
disk = 10240
vcpus = 1"#,
    );
    let alice = account_with_key(&server, "alice");
    let (_, _, images) = status_json(alice.get("/my/images?name=alpine-3.20"));
    let image = images[0]["id"].as_str().expect("the shipped alpine image");
    let created = alice.post("/my/machines", &json!({"image": image, "package": "small"}));
    assert_eq!(created.status(), 201);
    let (status, _, limits) = status_json(alice.get("/my/limits"));
    assert_eq!(status, 200, "{limits}");
    let used: Vec<u64> = (0..4)
        .map(|i| limits[i]["used"].as_u64().unwrap())
        .collect();
    assert_eq!(used, [1, 512, 10, 0], "{limits}");
    // Another account's machines are not counted.
    let bob = account_with_key(&server, "bob");
    assert_eq!(status_json(bob.get("/my/limits")).2[0]["used"], 0);
}

#[test]
fn keys_are_listed_created_fetched_and_deleted() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let (status, _, keys) = status_json(alice.get("/my/keys"));
    assert_eq!(status, 200);
    assert_eq!(keys[0]["name"], "id_rsa");
    assert_eq!(keys[0]["fingerprint"], alice.key.md5);
    assert!(keys[0]["key"].as_str().unwrap().starts_with("ssh-rsa "));

    let extra = KeyPair::generate("ecdsa");
    let (status, headers, created) =
        status_json(alice.post("/my/keys", &json!({"name": "laptop", "key": extra.public})));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["fingerprint"], extra.md5);
    assert_eq!(headers["location"], "/alice/keys/laptop");
    // By name, MD5 and SHA256 fingerprint.
    for id in [
        "laptop".to_string(),
        extra.md5.clone(),
        extra.sha256.clone(),
    ] {
        let path = format!("/my/keys/{}", id.replace('/', "%2F").replace('+', "%2B"));
        let (status, _, got) = status_json(alice.get(&path));
        assert_eq!((status, &got["name"]), (200, &json!("laptop")), "{id}");
    }
    // The operator CLI sees it: one store.
    let listed = cli_ok(&server.data_dir(), &["key", "list", "alice"], "");
    assert!(listed.contains("laptop"), "{listed}");

    assert_error(
        alice.post("/my/keys", &json!({"name": "x"})),
        409,
        "MissingParameter",
    );
    assert_error(
        alice.post("/my/keys", &json!({"key": "ssh-rsa garbage"})),
        409,
        "InvalidArgument",
    );
    assert_error(
        alice.post("/my/keys", &json!({"name": "again", "key": extra.public})),
        409,
        "InvalidArgument",
    );
    assert_error(alice.get("/my/keys/nope"), 404, "ResourceNotFound");

    assert_eq!(alice.send("DELETE", "/my/keys/laptop", None).status(), 204);
    assert_error(alice.get("/my/keys/laptop"), 404, "ResourceNotFound");
    assert_error(
        alice.send("DELETE", "/my/keys/laptop", None),
        404,
        "ResourceNotFound",
    );
}

#[test]
fn a_key_added_through_cloudapi_signs_requests() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let second = KeyPair::generate("ed25519");
    assert_eq!(
        alice
            .post("/my/keys", &json!({"key": second.public}))
            .status(),
        201
    );
    let signer = Signer::new(&server, &format!("/alice/keys/{}", second.md5), second);
    assert_eq!(signer.get("/my").status(), 200);
}

#[test]
fn sub_users_are_created_listed_updated_and_deleted() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let (status, headers, bob) = status_json(alice.post(
        "/my/users",
        &json!({"login": "bob", "email": "bob@example.com", "password": "secret123secret",
                "firstName": "Bob", "city": "Paris"}),
    ));
    assert_eq!(status, 201, "{bob}");
    assert_eq!(headers["location"], "/alice/users/bob");
    assert_eq!(
        (bob["login"].as_str(), bob["city"].as_str()),
        (Some("bob"), Some("Paris"))
    );
    let id = bob["id"].as_str().unwrap().to_string();

    let (status, headers, list) = status_json(alice.get("/my/users"));
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(headers["x-resource-count"], "1");
    assert_eq!(
        status_json(alice.get(&format!("/my/users/{id}"))).2["login"],
        "bob"
    );
    assert_eq!(status_json(alice.get("/my/users/bob")).2["id"], id.as_str());

    let (status, _, updated) = status_json(alice.post(
        "/my/users/bob",
        &json!({"lastName": "Builder", "country": "FR"}),
    ));
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        (updated["lastName"].as_str(), updated["country"].as_str()),
        (Some("Builder"), Some("FR"))
    );
    // Renamed, the user keeps its id; the old login is gone, the new one taken.
    let (status, _, renamed) =
        status_json(alice.post("/my/users/bob", &json!({"login": "robert"})));
    assert_eq!(
        (status, renamed["id"].as_str()),
        (200, Some(id.as_str())),
        "{renamed}"
    );
    assert_error(alice.get("/my/users/bob"), 404, "ResourceNotFound");
    alice.post(
        "/my/users",
        &json!({"login": "bob", "email": "bob3@example.com", "password": "secret123secret"}),
    );
    assert_error(
        alice.post("/my/users/robert", &json!({"login": "bob"})),
        409,
        "InvalidArgument",
    );
    assert_eq!(alice.send("DELETE", "/my/users/bob", None).status(), 204);
    assert_eq!(
        alice
            .post("/my/users/robert", &json!({"login": "bob"}))
            .status(),
        200
    );

    let (status, _, changed) = status_json(alice.post(
        "/my/users/bob/change_password",
        &json!({"password": "another-secret-1", "password_confirmation": "another-secret-1"}),
    ));
    assert_eq!((status, changed["login"].as_str()), (200, Some("bob")));
    assert_error(
        alice.post(
            "/my/users/bob/change_password",
            &json!({"password": "a-secret-123", "password_confirmation": "different"}),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(
        alice.post(
            "/my/users/bob/change_password",
            &json!({"password": "a-secret-123"}),
        ),
        409,
        "MissingParameter",
    );

    assert_error(
        alice.post(
            "/my/users",
            &json!({"login": "carl", "email": "c@example.com"}),
        ),
        409,
        "MissingParameter",
    );
    assert_error(
        alice.post(
            "/my/users",
            &json!({"login": "bob", "email": "bob2@example.com", "password": "secret123secret"}),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(alice.get("/my/users/nobody"), 404, "ResourceNotFound");

    assert_eq!(alice.send("DELETE", "/my/users/bob", None).status(), 204);
    assert_error(alice.get("/my/users/bob"), 404, "ResourceNotFound");
    assert_error(
        alice.send("DELETE", "/my/users/bob", None),
        404,
        "ResourceNotFound",
    );
}

#[test]
fn user_keys_belong_to_the_sub_user_and_sign_as_it() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    alice.post(
        "/my/users",
        &json!({"login": "bob", "email": "bob@example.com", "password": "secret123secret"}),
    );
    let key = KeyPair::generate("ed25519");
    let (status, headers, created) = status_json(alice.post(
        "/my/users/bob/keys",
        &json!({"name": "bobkey", "key": key.public}),
    ));
    assert_eq!(status, 201, "{created}");
    assert_eq!(headers["location"], "/alice/users/bob/keys/bobkey");
    assert_eq!(
        status_json(alice.get("/my/users/bob/keys")).2[0]["fingerprint"],
        key.md5.as_str()
    );
    assert_eq!(
        status_json(alice.get("/my/users/bob/keys/bobkey")).2["name"],
        "bobkey"
    );
    assert!(
        status_json(alice.get("/my/keys"))
            .2
            .as_array()
            .unwrap()
            .len()
            == 1,
        "not the account's"
    );
    // The sub-user signs with /alice/users/bob/keys/FP.
    let bob = Signer::new(&server, &format!("/alice/users/bob/keys/{}", key.md5), key);
    assert_error(bob.get("/my"), 403, "NotAuthorized");
    assert_error(
        alice.get("/my/users/bob/keys/nope"),
        404,
        "ResourceNotFound",
    );
    assert_error(alice.get("/my/users/nobody/keys"), 404, "ResourceNotFound");
    assert_eq!(
        alice
            .send("DELETE", "/my/users/bob/keys/bobkey", None)
            .status(),
        204
    );
    assert_eq!(status_json(alice.get("/my/users/bob/keys")).2, json!([]));
}

#[test]
fn a_sub_user_key_added_with_the_cli_signs_too() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    alice.post(
        "/my/users",
        &json!({"login": "bob", "email": "bob@example.com", "password": "secret123secret"}),
    );
    let key = KeyPair::generate("rsa");
    add_key(&server, "alice/bob", "cli", &key);
    let bob = Signer::new(&server, &format!("/alice/users/bob/keys/{}", key.md5), key);
    // Authenticated (not 401) but without a role: 403.
    assert_error(bob.get("/alice/keys"), 403, "NotAuthorized");
}

#[test]
fn config_holds_the_default_network() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    assert_eq!(status_json(alice.get("/my/config")).2, json!({}));
    let network = "c00cbe98-7dea-44d3-b644-5bd078700bf8";
    let (status, _, body) = status_json(alice.send(
        "PUT",
        "/my/config",
        Some(&json!({"default_network": network})),
    ));
    assert_eq!(
        (status, body["default_network"].as_str()),
        (200, Some(network))
    );
    assert_eq!(
        status_json(alice.get("/my/config")).2["default_network"],
        network
    );
    assert_error(
        alice.send(
            "PUT",
            "/my/config",
            Some(&json!({"default_network": "nope"})),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(
        alice.send("PUT", "/my/config", Some(&json!({}))),
        409,
        "InvalidArgument",
    );
}

#[test]
fn datacenters_and_services_come_from_settings() {
    let server = site(
        r#"datacenter_name = "us-west-1"
url = "https://west.example.com"
[plugins.cloudapi.settings.datacenters]
us-east-1 = "https://east.example.com"
[plugins.cloudapi.settings.services]
docker = "tcp://docker.example.com:2376""#,
    );
    let alice = account_with_key(&server, "alice");
    let (status, headers, dcs) = status_json(alice.get("/my/datacenters"));
    assert_eq!(status, 200);
    assert_eq!(
        dcs,
        json!({"us-east-1": "https://east.example.com", "us-west-1": "https://west.example.com"})
    );
    assert_eq!(headers["triton-datacenter-name"], "us-west-1");

    let (status, headers, moved) = status_json(alice.get("/my/datacenters/us-east-1"));
    assert_eq!(status, 302);
    assert_eq!(headers["location"], "https://east.example.com");
    assert_eq!(moved["code"], "ResourceMoved");
    assert_error(alice.get("/my/datacenters/mars-1"), 404, "ResourceNotFound");

    let (_, _, services) = status_json(alice.get("/my/services"));
    assert_eq!(
        services,
        json!({"cloudapi": "https://west.example.com", "docker": "tcp://docker.example.com:2376"})
    );
}

#[test]
fn a_fresh_site_names_one_datacenter_at_the_url_used() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let (_, _, dcs) = status_json(alice.get("/my/datacenters"));
    assert_eq!(dcs, json!({"tessera": server.base}));
    assert_eq!(
        status_json(alice.get("/my/services")).2,
        json!({"cloudapi": server.base})
    );
}

#[test]
fn policies_are_created_with_parsed_rules_and_managed() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let (status, headers, policy) = status_json(alice.post(
        "/my/policies",
        &json!({"name": "readinstance", "rules": ["can listmachines and getmachine"], "description": "read"}),
    ));
    assert_eq!(status, 201, "{policy}");
    let id = policy["id"].as_str().unwrap().to_string();
    assert_eq!(
        headers["location"].to_str().unwrap(),
        format!("/alice/policies/{id}")
    );
    assert_eq!(policy["rules"][0], "can listmachines and getmachine");

    let (status, _, updated) = status_json(alice.post(
        &format!("/my/policies/{id}"),
        &json!({"rules": ["CAN rebootmachine if requesttime::time > 07:30:00 and requesttime::day in (Mon, Tue)"]}),
    ));
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["description"], "read");
    let (_, headers, list) = status_json(alice.get("/my/policies"));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(headers["x-resource-count"], "1");
    assert_eq!(
        status_json(alice.get("/my/policies/readinstance")).2["id"],
        id.as_str()
    );

    for bad in [
        "listmachines",
        "CAN",
        "CAN x if time > 25:00",
        "CAN x if color = red",
    ] {
        assert_error(
            alice.post("/my/policies", &json!({"name": "bad", "rules": [bad]})),
            409,
            "InvalidArgument",
        );
    }
    assert_error(
        alice.post("/my/policies", &json!({"rules": ["CAN x"]})),
        409,
        "MissingParameter",
    );
    assert_error(
        alice.post(
            "/my/policies",
            &json!({"name": "readinstance", "rules": []}),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(alice.get("/my/policies/nope"), 404, "ResourceNotFound");
    assert_eq!(
        alice
            .send("DELETE", &format!("/my/policies/{id}"), None)
            .status(),
        204
    );
    assert_error(
        alice.send("DELETE", &format!("/my/policies/{id}"), None),
        404,
        "ResourceNotFound",
    );
}

#[test]
fn roles_list_members_and_policies_in_the_shape_of_the_api_version() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    alice.post(
        "/my/users",
        &json!({"login": "bob", "email": "bob@example.com", "password": "secret123secret"}),
    );
    alice.post(
        "/my/users",
        &json!({"login": "fred", "email": "fred@example.com", "password": "secret123secret"}),
    );
    alice.post(
        "/my/policies",
        &json!({"name": "readinstance", "rules": ["can getmachine"]}),
    );
    let (status, headers, role) = status_json(alice.post(
        "/my/roles",
        &json!({"name": "readable",
                "members": [{"type": "subuser", "login": "bob", "default": true}, {"type": "subuser", "login": "fred"}],
                "policies": [{"name": "readinstance"}]}),
    ));
    assert_eq!(status, 201, "{role}");
    let id = role["id"].as_str().unwrap().to_string();
    assert_eq!(
        headers["location"].to_str().unwrap(),
        format!("/alice/roles/{id}")
    );
    assert_eq!(role["members"][0]["login"], "bob");
    assert_eq!(role["members"][0]["default"], true);
    assert_eq!(role["members"][1]["default"], false);
    assert_eq!(role["policies"][0]["name"], "readinstance");

    let v8 = alice.send_with(
        "GET",
        &format!("/my/roles/{id}"),
        None,
        &[("accept-version", "~8")],
    );
    let (_, _, old) = status_json(v8);
    assert_eq!(old["members"], json!(["bob", "fred"]));
    assert_eq!(old["default_members"], json!(["bob"]));
    assert_eq!(old["policies"], json!(["readinstance"]));

    let (status, _, updated) = status_json(alice.post(
        "/my/roles/readable",
        &json!({"members": ["fred"], "default_members": ["fred"], "name": "readers"}),
    ));
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "readers");
    assert_eq!(
        updated["members"],
        json!([{"type": "subuser", "id": updated["members"][0]["id"], "login": "fred", "default": true}])
    );

    let (_, _, membership) = status_json(alice.get("/my/users/fred?membership=true"));
    assert_eq!(membership["roles"], json!(["readers"]));
    assert_eq!(membership["default_roles"], json!(["readers"]));

    assert_error(
        alice.post("/my/roles", &json!({"members": ["bob"]})),
        409,
        "MissingParameter",
    );
    assert_error(
        alice.post("/my/roles", &json!({"name": "x", "members": ["nobody"]})),
        409,
        "InvalidArgument",
    );
    assert_error(
        alice.post("/my/roles", &json!({"name": "x", "policies": ["nope"]})),
        409,
        "InvalidArgument",
    );
    assert_error(
        alice.post("/my/roles", &json!({"name": "readers"})),
        409,
        "InvalidArgument",
    );
    assert_error(alice.get("/my/roles/nope"), 404, "ResourceNotFound");
    let (_, headers, _) = status_json(alice.get("/my/roles"));
    assert_eq!(headers["x-resource-count"], "1");
    assert_eq!(
        alice
            .send("DELETE", &format!("/my/roles/{id}"), None)
            .status(),
        204
    );
    assert_error(
        alice.send("DELETE", &format!("/my/roles/{id}"), None),
        404,
        "ResourceNotFound",
    );
}

#[test]
fn role_tags_are_set_on_resources_by_role_name() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    alice.post("/my/roles", &json!({"name": "ops"}));
    let put = |path: &str, tags: serde_json::Value| {
        alice.send("PUT", path, Some(&json!({"role-tag": tags})))
    };
    let (status, _, body) = status_json(put("/my/machines", json!(["ops"])));
    assert_eq!(
        (status, body),
        (200, json!({"name": "/my/machines", "role-tag": ["ops"]}))
    );
    // A machine that does not exist cannot be tagged (part 2 knows the machines).
    assert_error(
        put(
            "/alice/machines/b6979942-7d5d-4fe6-a2ec-b812e950625a",
            json!(["ops"]),
        ),
        404,
        "ResourceNotFound",
    );
    assert_eq!(put("/my/keys/id_rsa", json!(["ops"])).status(), 200);
    // A read of a tagged resource shows its tags in the `role-tag` header.
    let tagged = alice.get(&format!("/my/keys/{}", alice.key.md5));
    assert_eq!(tagged.headers()["role-tag"], "ops");
    assert!(!alice.get("/my/users").headers().contains_key("role-tag"));
    assert_eq!(put("/my", json!(["ops"])).status(), 200);
    assert_eq!(put("/my/roles/ops", json!([])).status(), 200);
    assert_error(put("/my/machines", json!(["nope"])), 409, "InvalidArgument");
    assert_error(
        put("/my/keys/nope", json!(["ops"])),
        404,
        "ResourceNotFound",
    );
    assert_error(
        put("/my/spaceships", json!(["ops"])),
        409,
        "InvalidArgument",
    );
    assert_error(
        alice.send("PUT", "/my/machines", Some(&json!({}))),
        409,
        "MissingParameter",
    );
}
