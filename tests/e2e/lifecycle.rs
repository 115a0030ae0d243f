//! Start, graceful stop and restart: data persists, in-flight requests finish.

use serde_json::json;

use crate::harness::{Server, client, json, test_site};

#[test]
fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let site = test_site();
    let server = Server::start_in(dir.path(), Some(&site));
    let created = client()
        .post(server.url("/hello/notes"))
        .json(&json!({"title": "persistent"}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = json(created)["id"].as_str().unwrap().to_string();
    assert!(server.stop().success(), "SIGTERM is a clean exit");

    let again = Server::start_in(dir.path(), Some(&site));
    let read = client()
        .get(again.url(&format!("/hello/notes/{id}")))
        .send()
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(json(read)["title"], "persistent");
    // Sequences continue rather than restart.
    let next = json(
        client()
            .post(again.url("/hello/notes"))
            .json(&json!({"title": "next"}))
            .send()
            .unwrap(),
    );
    assert_ne!(next["id"].as_str().unwrap(), id);
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let server = Server::with_site(&test_site());
    let url = server.url("/hostile/loop");
    // The loop runs for its whole 500 ms budget; stop the server meanwhile.
    let in_flight =
        std::thread::spawn(move || client().get(url).send().map(|r| r.status().as_u16()));
    std::thread::sleep(std::time::Duration::from_millis(150));
    let status = server.stop();
    assert!(status.success());
    assert_eq!(
        in_flight.join().unwrap().expect("answered, not dropped"),
        503
    );
}

#[test]
fn a_restart_reuses_the_compile_cache() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start_in(dir.path(), None);
    first.stop();
    let cache = dir.path().join("data").join("cache");
    let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert_eq!(entries.len(), 5, "one compiled artifact per shipped plugin");
    let modified: Vec<_> = entries
        .iter()
        .map(|e| e.metadata().unwrap().modified().unwrap())
        .collect();
    let second = Server::start_in(dir.path(), None);
    second.stop();
    let after: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().modified().unwrap())
        .collect();
    assert_eq!(modified.len(), after.len());
    assert!(
        modified.iter().all(|m| after.contains(m)),
        "nothing was recompiled"
    );
}
