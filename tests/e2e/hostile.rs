//! A misbehaving plugin costs only its own request: loops hit the time
//! budget, memory bombs the memory cap, traps become 500s, and nothing leaks
//! from one request to the next.

use std::thread;

use crate::harness::{Server, assert_metrics, client, get_status, json, test_site};

#[test]
fn an_infinite_loop_gets_503_while_other_plugins_keep_serving() {
    let server = Server::with_site(&test_site());
    let looping = {
        let url = server.url("/hostile/loop");
        thread::spawn(move || client().get(url).send().unwrap())
    };
    // While the loop burns its budget, another plugin answers.
    for _ in 0..5 {
        let ok = client().get(server.url("/hello/hello")).send().unwrap();
        assert_eq!(ok.status(), 200);
    }
    let resp = looping.join().unwrap();
    assert_eq!(resp.status(), 503);
    let body = json(resp);
    assert_eq!(body["code"], "PluginTimeout");
    assert!(body["message"].as_str().unwrap().contains("500 ms"));
    // And the kernel is still fine afterwards.
    assert_eq!(get_status(&server, "/hostile/ok"), 200);
}

#[test]
fn several_loops_at_once_do_not_starve_the_kernel() {
    let server = Server::with_site(&test_site());
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let url = server.url("/hostile/loop");
            thread::spawn(move || client().get(url).send().unwrap().status())
        })
        .collect();
    let ok = client().get(server.url("/_tessera/health")).send().unwrap();
    assert_eq!(ok.status(), 200);
    let ok = client().get(server.url("/hello/hello")).send().unwrap();
    assert_eq!(ok.status(), 200);
    for handle in loops {
        assert_eq!(handle.join().unwrap(), 503);
    }
}

#[test]
fn a_memory_bomb_hits_the_cap_and_is_refused() {
    let server = Server::with_site(&test_site());
    let resp = client().get(server.url("/hostile/bomb")).send().unwrap();
    assert_eq!(resp.status(), 503);
    let body = json(resp);
    assert_eq!(body["code"], "PluginMemoryLimit");
    assert_eq!(get_status(&server, "/hostile/ok"), 200);
}

#[test]
fn a_trap_becomes_a_500_and_a_log_line_with_plugin_and_request_id() {
    let server = Server::with_site(&test_site());
    let resp = client()
        .get(server.url("/hostile/trap"))
        .header("x-request-id", "trap-req-1")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 500);
    let body = json(resp);
    assert_eq!(body["code"], "PluginFailed");
    assert_eq!(body["request_id"], "trap-req-1");
    let log = server.log();
    assert!(
        log.lines().any(|l| l.contains("plugin call failed")
            && l.contains("hostile")
            && l.contains("trap-req-1")),
        "{log}"
    );
    // The panic message the plugin printed reached the log, tagged.
    assert!(log.contains("hostile plugin traps on purpose"), "{log}");
}

#[test]
fn failures_are_counted_in_metrics() {
    let server = Server::with_site(&test_site());
    let http = client();
    for path in ["/hostile/trap", "/hostile/bomb", "/hostile/loop"] {
        http.get(server.url(path)).send().unwrap();
    }
    assert_metrics(
        &server,
        &[
            "tessera_plugin_traps_total{plugin=\"hostile\"} 1",
            "tessera_plugin_memory_limit_total{plugin=\"hostile\"} 1",
            "tessera_plugin_timeouts_total{plugin=\"hostile\"} 1",
        ],
    );
}

#[test]
fn global_state_does_not_leak_between_requests() {
    let server = Server::with_site(&test_site());
    for _ in 0..5 {
        let body = client()
            .get(server.url("/hostile/global"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert_eq!(body, "1", "each request runs in a fresh instance");
    }
}

#[test]
fn plugin_stdout_goes_to_the_log_tagged_with_the_plugin() {
    let server = Server::with_site(&test_site());
    let resp = client().get(server.url("/hostile/print")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("hello from hostile stdout") && l.contains("hostile")),
        "{log}"
    );
}

#[test]
fn a_log_flood_is_cut_at_the_call_budget_and_counted() {
    let server = Server::with_site(&test_site());
    // Within the budget: every line kept, the 20 000-byte one cut at 8 KiB.
    let few = client()
        .get(server.url("/hostile/log-flood?lines=10"))
        .send()
        .unwrap();
    assert_eq!(few.status(), 200);
    let log = server.log();
    assert_eq!(log.matches("flood line").count(), 10);
    assert!(log.contains("bytes cut]"), "the long line is cut");
    assert!(!log.contains(&"x".repeat(9000)));

    let flood = client()
        .get(server.url("/hostile/log-flood"))
        .send()
        .unwrap();
    assert_eq!(flood.status(), 200);
    assert_eq!(get_status(&server, "/hello/hello"), 200);
    let log = server.log();
    assert_eq!(
        log.matches("flood line").count(),
        110,
        "log_lines_per_call = 100 in the test site"
    );
    assert!(log.contains("log lines dropped"), "one warning says so");
    // 100 000 lines and one printed line asked, 100 kept.
    assert_metrics(
        &server,
        &["tessera_plugin_log_dropped_total{plugin=\"hostile\"} 99901"],
    );
}

#[test]
fn a_response_past_the_limit_is_refused_and_counted() {
    let server = Server::with_site(&test_site());
    let small = client()
        .get(server.url("/hostile/huge?mib=0"))
        .send()
        .unwrap();
    assert_eq!(small.status(), 200);
    let resp = client()
        .get(server.url("/hostile/huge?mib=2"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 500);
    let body = json(resp);
    assert_eq!(body["code"], "PluginResponseTooLarge");
    assert!(
        body["message"].as_str().unwrap().contains("1048576"),
        "{body}"
    );
    assert_metrics(
        &server,
        &["tessera_plugin_response_too_large_total{plugin=\"hostile\"} 1"],
    );
    assert_eq!(get_status(&server, "/hostile/ok"), 200);
}

#[test]
fn the_environment_offers_a_plugin_nothing() {
    let server = Server::with_site(&test_site());
    let resp = client().get(server.url("/hostile/env")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "vars=0 args=0");
}

#[test]
fn storage_in_a_tight_loop_is_stopped_by_the_time_budget() {
    let server = Server::with_site(&test_site());
    let looping = {
        let url = server.url("/hostile/storage-loop");
        thread::spawn(move || client().get(url).send().unwrap())
    };
    assert_eq!(get_status(&server, "/hello/hello"), 200);
    let resp = looping.join().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(json(resp)["code"], "PluginTimeout");
    assert_metrics(
        &server,
        &["tessera_plugin_timeouts_total{plugin=\"hostile\"} 1"],
    );
    assert_eq!(get_status(&server, "/hostile/ok"), 200);
}
