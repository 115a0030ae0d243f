//! The kernel's own routes and per-request behaviour: health, metrics,
//! request ids, HTTP/2 without TLS, body caps.

use crate::harness::{Server, assert_metrics, client, json, test_site};

#[test]
fn health_reports_version_and_loaded_plugins() {
    let server = Server::default_site();
    let resp = client().get(server.url("/_tessera/health")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let body = json(resp);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let names: Vec<&str> = body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "appliance-admin",
            "cloudapi",
            "fosscloud",
            "ticrypt",
            "vmmanager"
        ]
    );
}

#[test]
fn kernel_routes_cannot_be_shadowed_and_refuse_other_methods() {
    // cloudapi is mounted at "/", yet /_tessera/health is the kernel's.
    let server = Server::default_site();
    let post = client()
        .post(server.url("/_tessera/health"))
        .send()
        .unwrap();
    assert_eq!(post.status(), 405);
    let unknown = client().get(server.url("/_tessera/nope")).send().unwrap();
    assert_eq!(unknown.status(), 404);
}

#[test]
fn metrics_count_requests_by_plugin_and_status() {
    let server = Server::with_site(&test_site());
    let http = client();
    for _ in 0..3 {
        assert_eq!(
            http.get(server.url("/hello/hello"))
                .send()
                .unwrap()
                .status(),
            200
        );
    }
    http.get(server.url("/hello/notes/404")).send().unwrap();
    assert_metrics(
        &server,
        &[
            "tessera_requests_total{plugin=\"hello\",status=\"200\"} 3",
            "tessera_requests_total{plugin=\"hello\",status=\"404\"} 1",
            "tessera_request_duration_seconds_count{plugin=\"hello\"} 4",
            "tessera_instances_total 4",
            "# TYPE tessera_request_duration_seconds histogram",
        ],
    );
}

#[test]
fn request_id_is_echoed_when_well_formed_and_generated_otherwise() {
    let server = Server::with_site(&test_site());
    let http = client();
    let echoed = http
        .get(server.url("/hello/hello"))
        .header("x-request-id", "trace-123")
        .send()
        .unwrap();
    assert_eq!(echoed.headers()["request-id"], "trace-123");
    let fresh = http
        .get(server.url("/hello/hello"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .unwrap();
    let id = fresh.headers()["request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
}

#[test]
fn http2_without_tls_is_served() {
    let server = Server::with_site(&test_site());
    let h2 = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2.get(server.url("/hello/hello")).send().unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(json(resp)["hello"], "world");
}

#[test]
fn bodies_over_the_mount_cap_get_413_before_the_plugin_runs() {
    let server = Server::with_site(&test_site());
    let http = client();
    let small = http
        .post(server.url("/hostile/echo"))
        .body(vec![b'x'; 4096])
        .send()
        .unwrap();
    assert_eq!(small.status(), 200);
    assert_eq!(small.bytes().unwrap().len(), 4096);
    let big = http
        .post(server.url("/hostile/echo"))
        .body(vec![b'x'; 4097])
        .send()
        .unwrap();
    assert_eq!(big.status(), 413);
    assert_eq!(json(big)["code"], "PayloadTooLarge");
}

#[test]
fn invalid_response_headers_from_a_plugin_are_dropped_not_fatal() {
    let server = Server::with_site(&test_site());
    let resp = client()
        .get(server.url("/hostile/bad-header"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "ok");
}
