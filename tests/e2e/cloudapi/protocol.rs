//! The protocol every endpoint inherits: signatures, versions, headers, inputs, errors,
//! throttling, pre-signed URLs.

use base64::Engine;
use serde_json::json;

use super::{
    Form, KeyPair, Signer, account_with_key, add_account, add_key, assert_error, content_md5, site,
    status_json,
};
use crate::harness::{cli_ok, client};

#[test]
fn ping_needs_no_auth_and_lists_the_api_versions() {
    let server = site("");
    let response = client()
        .get(server.url("/--ping"))
        .header("accept-version", "~8")
        .send()
        .unwrap();
    let (status, headers, body) = status_json(response);
    assert_eq!(status, 200);
    assert_eq!(body["ping"], "pong");
    assert_eq!(body["cloudapi"]["versions"][5], "9.0.0");
    assert_eq!(headers["api-version"], "8.0.0");
    assert!(
        headers["server"]
            .to_str()
            .unwrap()
            .starts_with("cloudapi/9.")
    );
    assert_eq!(headers["triton-datacenter-name"], "tessera");
}

#[test]
fn every_answer_carries_cloudapi_s_headers_and_a_correct_content_md5() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let response = alice.get("/my");
    let headers = response.headers().clone();
    let body = response.bytes().unwrap();
    for name in [
        "date",
        "api-version",
        "request-id",
        "response-time",
        "server",
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-expose-headers",
    ] {
        assert!(headers.contains_key(name), "missing {name}");
    }
    assert_eq!(headers["api-version"], "9.0.0");
    assert_eq!(headers["content-md5"].to_str().unwrap(), content_md5(&body));
    assert_eq!(
        headers["content-length"].to_str().unwrap(),
        body.len().to_string()
    );
    assert!(httpdate::parse_http_date(headers["date"].to_str().unwrap()).is_ok());
    // Errors carry them too.
    let error = client().get(server.url("/my")).send().unwrap();
    assert!(error.headers().contains_key("api-version"));
    assert!(error.headers().contains_key("content-md5"));
}

#[test]
fn rsa_ecdsa_and_ed25519_keys_all_sign_requests() {
    let server = site("");
    add_account(&server, "alice");
    for (kind, algorithms) in [
        ("rsa", &["rsa-sha1", "rsa-sha256", "rsa-sha512"][..]),
        ("ecdsa", &["ecdsa-sha256"][..]),
        ("ed25519", &["ed25519-sha512", "ed25519"][..]),
    ] {
        let key = KeyPair::generate(kind);
        add_key(&server, "alice", kind, &key);
        let mut signer = Signer::new(&server, &format!("/alice/keys/{}", key.md5), key);
        for algorithm in algorithms {
            signer.algorithm = algorithm.to_string();
            let (status, _, body) = status_json(signer.get("/alice"));
            assert_eq!(status, 200, "{kind} {algorithm}: {body}");
            assert_eq!(body["login"], "alice");
        }
    }
}

#[test]
fn triton_smartdc_and_legacy_signature_forms_are_accepted() {
    let server = site("");
    let mut alice = account_with_key(&server, "alice");
    for form in [Form::Triton, Form::Smartdc, Form::Legacy] {
        alice.form = form;
        assert_eq!(alice.get("/my/keys").status(), 200, "{form:?}");
    }
}

#[test]
fn a_key_id_may_name_the_key_or_its_sha256_fingerprint() {
    let server = site("");
    let mut alice = account_with_key(&server, "alice");
    alice.key_id = "/alice/keys/id_rsa".into();
    assert_eq!(alice.get("/my").status(), 200);
    alice.key_id = format!("/alice/keys/{}", alice.key.sha256);
    assert_eq!(alice.get("/my").status(), 200);
}

#[test]
fn a_request_without_credentials_is_401() {
    let server = site("");
    let body = assert_error(
        client().get(server.url("/my")).send().unwrap(),
        401,
        "InvalidCredentials",
    );
    assert_eq!(
        body["message"],
        "You must make authenticated requests to use CloudAPI"
    );
}

#[test]
fn a_date_more_than_300_seconds_off_is_refused() {
    let server = site("");
    let mut alice = account_with_key(&server, "alice");
    alice.skew = 400;
    assert_error(alice.get("/my"), 401, "InvalidCredentials");
    alice.skew = -400;
    assert_error(alice.get("/my"), 401, "InvalidCredentials");
    alice.skew = 200;
    assert_eq!(alice.get("/my").status(), 200);
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let server = site("");
    let mut alice = account_with_key(&server, "alice");
    alice.key = KeyPair::generate("rsa");
    let body = assert_error(alice.get("/my"), 401, "InvalidCredentials");
    assert!(body["message"].as_str().unwrap().contains("signature"));
}

#[test]
fn an_unknown_key_or_account_is_refused() {
    let server = site("");
    let mut alice = account_with_key(&server, "alice");
    alice.key_id = "/alice/keys/00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff".into();
    assert_error(alice.get("/my"), 401, "InvalidCredentials");
    alice.key_id = "/nobody/keys/id_rsa".into();
    assert_error(alice.get("/my"), 401, "InvalidCredentials");
    alice.key_id = "alice-keys-id_rsa".into();
    assert_error(alice.get("/my"), 401, "InvalidCredentials");
}

#[test]
fn malformed_authorization_headers_are_invalid_header() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let date = alice.date();
    for bad in [
        "Signature keyId",
        "Signature keyId=\"/alice/keys/id_rsa\",algorithm=\"rsa-sha256\",signature=\"unterminated",
        "Signature keyId=\"/alice/keys/id_rsa\",algorithm=\"rsa-sha256\",headers=\"date\",signature=\"%%%\"",
    ] {
        let response = client()
            .get(server.url("/my"))
            .header("date", &date)
            .header("authorization", bad)
            .send()
            .unwrap();
        assert_error(response, 401, "InvalidHeader");
    }
    let basic = client()
        .get(server.url("/my"))
        .basic_auth("alice", Some("x"))
        .send()
        .unwrap();
    assert_error(basic, 401, "InvalidCredentials");
}

#[test]
fn a_missing_date_is_a_missing_parameter() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let authorization = alice.authorization("GET", "/my", &alice.date());
    let response = client()
        .get(server.url("/my"))
        .header("authorization", authorization)
        .send()
        .unwrap();
    assert_error(response, 401, "MissingParameter");
}

#[test]
fn another_account_s_path_is_not_authorized() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    add_account(&server, "bob");
    for path in [
        "/bob",
        "/bob/limits",
        "/bob/keys",
        "/bob/users",
        "/bob/roles",
        "/bob/policies",
        "/bob/config",
        "/bob/datacenters",
        "/bob/services",
    ] {
        assert_error(alice.get(path), 403, "NotAuthorized");
    }
    assert_error(
        alice.post("/bob", &json!({"phone": "1"})),
        403,
        "NotAuthorized",
    );
    assert_eq!(alice.get("/alice/keys").status(), 200);
}

#[test]
fn an_unknown_account_in_the_path_is_not_found() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    for path in [
        "/nobody",
        "/nobody/keys",
        "/nobody/datacenters",
        "/nobody/services",
        "/nobody/limits",
    ] {
        assert_error(alice.get(path), 404, "ResourceNotFound");
    }
}

#[test]
fn a_disabled_account_is_not_authorized() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    cli_ok(&server.data_dir(), &["user", "disable", "alice"], "");
    let body = assert_error(alice.get("/my"), 403, "NotAuthorized");
    assert_eq!(body["message"], "Account or user is disabled");
}

#[test]
fn versions_are_negotiated_and_unsatisfiable_ranges_refused() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    for (range, answer) in [
        ("~9||~8", "9.0.0"),
        ("~8", "8.0.0"),
        ("7.0.0", "7.0.0"),
        ("~7.2", "7.2.0"),
        ("*", "9.0.0"),
    ] {
        let response = alice.send_with("GET", "/my", None, &[("accept-version", range)]);
        assert_eq!(response.status(), 200, "{range}");
        assert_eq!(response.headers()["api-version"], answer, "{range}");
    }
    let legacy = client()
        .get(server.url("/--ping"))
        .header("api-version", "~7.2")
        .send()
        .unwrap();
    assert_eq!(legacy.headers()["api-version"], "7.2.0");
    let refused = client()
        .get(server.url("/--ping"))
        .header("accept-version", "~10")
        .send()
        .unwrap();
    assert_error(refused, 400, "InvalidVersion");
}

#[test]
fn head_answers_the_headers_of_get_without_a_body() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let get = alice.get("/my/keys");
    let md5 = get.headers()["content-md5"].clone();
    let head = alice.send("HEAD", "/my/keys", None);
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-md5"], md5);
    assert!(head.bytes().unwrap().is_empty());
}

#[test]
fn json_form_and_query_inputs_are_all_accepted() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let encode = |v: &str| url_escape(v);
    let rsa = KeyPair::generate("ed25519");
    let query = format!("/my/keys?name=viaquery&key={}", encode(&rsa.public));
    let (status, _, body) = status_json(alice.send("POST", &query, None));
    assert_eq!((status, body["name"].as_str()), (201, Some("viaquery")));

    let form_key = KeyPair::generate("ed25519");
    let form = format!("name=viaform&key={}", encode(&form_key.public));
    let date = alice.date();
    let response = client()
        .post(server.url("/my/keys"))
        .header("date", &date)
        .header(
            "authorization",
            alice.authorization("POST", "/my/keys", &date),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .unwrap();
    let (status, _, body) = status_json(response);
    assert_eq!((status, body["name"].as_str()), (201, Some("viaform")));

    let json_key = KeyPair::generate("ed25519");
    let (status, _, body) = status_json(alice.post(
        "/my/keys",
        &json!({"name": "viajson", "key": json_key.public}),
    ));
    assert_eq!((status, body["name"].as_str()), (201, Some("viajson")));

    let bad = alice.send_with(
        "POST",
        "/my/keys",
        None,
        &[("content-type", "application/json")],
    );
    assert_eq!(bad.status(), 409, "an empty body has no key");
    let date = alice.date();
    let broken = client()
        .post(server.url("/my/keys"))
        .header("date", &date)
        .header(
            "authorization",
            alice.authorization("POST", "/my/keys", &date),
        )
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_error(broken, 400, "BadRequest");
}

fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn unknown_routes_and_methods_get_cloudapi_errors() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    assert_error(alice.get("/my/nonsense/here"), 404, "ResourceNotFound");
    assert_error(alice.send("DELETE", "/my/users", None), 405, "BadMethod");
}

#[test]
fn requests_beyond_the_account_s_bucket_are_throttled() {
    let server = site("throttle = { rate = 0.5, burst = 3.0 }");
    let alice = account_with_key(&server, "alice");
    let statuses: Vec<u16> = (0..5).map(|_| alice.get("/my").status().as_u16()).collect();
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert_eq!(statuses[4], 429);
    let body = assert_error(alice.get("/my"), 429, "RequestThrottled");
    assert!(body["message"].is_string());
    // Another account has its own bucket.
    let bob = account_with_key(&server, "bob");
    assert_eq!(bob.get("/my").status(), 200);
}

pub(super) fn presigned_url(
    signer: &Signer,
    host: &str,
    path: &str,
    expires: u64,
    method: Option<&str>,
) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("algorithm".into(), signer.algorithm.clone()),
        ("expires".into(), expires.to_string()),
        ("keyId".into(), signer.key_id.clone()),
    ];
    if let Some(method) = method {
        params.push(("method".into(), method.to_string()));
    }
    params.sort();
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", url_escape(v)))
        .collect();
    let query = query.join("&");
    let signed = format!("{}\n{host}\n{path}\n{query}", method.unwrap_or("GET"));
    let signature = base64::engine::general_purpose::STANDARD
        .encode(signer.key.sign(&signer.algorithm, signed.as_bytes()));
    format!("{path}?{query}&signature={}", url_escape(&signature))
}

#[test]
fn a_pre_signed_url_works_until_it_expires() {
    let server = site("");
    let alice = account_with_key(&server, "alice");
    let host = server.base.trim_start_matches("http://").to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let fresh = presigned_url(&alice, &host, "/alice/keys", now + 60, None);
    let (status, _, body) = status_json(client().get(server.url(&fresh)).send().unwrap());
    assert_eq!(status, 200, "{body}");
    let with_methods = presigned_url(&alice, &host, "/alice/keys", now + 60, Some("GET,HEAD"));
    assert_eq!(
        client()
            .get(server.url(&with_methods))
            .send()
            .unwrap()
            .status(),
        200
    );
    let expired = presigned_url(&alice, &host, "/alice/keys", now - 10, None);
    assert_error(
        client().get(server.url(&expired)).send().unwrap(),
        401,
        "InvalidCredentials",
    );
    let tampered = fresh.replace("/alice/keys", "/alice/users");
    assert_error(
        client().get(server.url(&tampered)).send().unwrap(),
        401,
        "InvalidCredentials",
    );
}
