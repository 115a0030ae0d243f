//! Crash safety: a mixed write workload across families — notes and atomic
//! note batches (storage), VMmanager logins (auth tokens), VM creates
//! (hypervisor + kernel jobs) and plugin jobs — while the server is killed
//! with SIGKILL at random moments and started again on the same data dir.
//! After every restart: each write the client saw acknowledged is there, each
//! batch is all or nothing, jobs and VM transitions that were in flight
//! finish, and SQLite's `integrity_check` passes.
//!
//! CI runs 5 kills; `TESSERA_CRASH_KILLS=20 cargo test --test e2e crash -- --nocapture`
//! runs the long variant.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, cli_ok, client, test_site};

const EMAIL: &str = "crash@example.com";
const PASSWORD: &str = "crash-test-pw-1";

fn site() -> String {
    format!(
        "{}\n[plugins.vmmanager]\nsource = \"vmmanager\"\nmounts = [\"/auth/v4\", \"/vm/v3\"]\n\
         grants = [\"storage\", \"auth\", \"auth-admin\", \"jobs\", \"hypervisor\"]\n",
        test_site()
    )
}

/// What the client sent, and what it saw acknowledged.
#[derive(Default)]
struct Writes {
    notes: Vec<String>,
    /// Every batch sent, with whether it was acknowledged.
    batches: Vec<(Vec<String>, bool)>,
    tokens: Vec<String>,
    vms: Vec<String>,
    jobs: Vec<String>,
}

/// Writes until a request fails (the server died) or `stop` is set.
fn workload(base: String, round: usize, writes: Arc<Mutex<Writes>>, stop: Arc<AtomicBool>) {
    let http = client();
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let tag = format!("r{round}-{i}");
        let result = match i % 5 {
            0 => http
                .post(format!("{base}/hello/notes"))
                .json(&json!({"title": tag}))
                .send()
                .map(|r| {
                    if r.status() == 201 {
                        let id = r.json::<Value>().unwrap()["id"].as_str().unwrap().to_string();
                        writes.lock().unwrap().notes.push(id);
                    }
                }),
            1 => {
                let ids: Vec<String> = (0..3).map(|k| format!("b-{tag}-{k}")).collect();
                let body: Vec<Value> = ids.iter().map(|id| json!({"id": id, "title": id})).collect();
                let at = {
                    let mut w = writes.lock().unwrap();
                    w.batches.push((ids, false));
                    w.batches.len() - 1
                };
                http.post(format!("{base}/hello/notes/batch"))
                    .json(&body)
                    .send()
                    .map(|r| {
                        if r.status() == 201 {
                            writes.lock().unwrap().batches[at].1 = true;
                        }
                    })
            }
            2 => http
                .post(format!("{base}/auth/v4/public/token"))
                .json(&json!({"email": EMAIL, "password": PASSWORD}))
                .send()
                .map(|r| {
                    if r.status() == 201 {
                        let token = r.json::<Value>().unwrap()["token"].as_str().unwrap().to_string();
                        writes.lock().unwrap().tokens.push(token);
                    }
                }),
            3 => http
                .post(format!("{base}/hello/vms"))
                .json(&json!({"name": format!("vm-{tag}"), "image": "alpine-3.20", "cpus": 1, "ram_mib": 256, "disk_mib": 2048}))
                .send()
                .map(|r| {
                    if r.status() == 202 {
                        let id = r.json::<Value>().unwrap()["id"].as_str().unwrap().to_string();
                        writes.lock().unwrap().vms.push(id);
                    }
                }),
            _ => http
                .post(format!("{base}/hello/jobs"))
                .json(&json!({"kind": "count", "steps": 3, "resume": true}))
                .send()
                .map(|r| {
                    if r.status() == 202 {
                        let id = r.json::<Value>().unwrap()["id"].as_str().unwrap().to_string();
                        writes.lock().unwrap().jobs.push(id);
                    }
                }),
        };
        if result.is_err() {
            return;
        }
    }
}

fn status(url: String, token: Option<&str>) -> u16 {
    let mut req = client().get(url);
    if let Some(token) = token {
        req = req.header("x-xsrf-token", token);
    }
    req.send().unwrap().status().as_u16()
}

/// Polls `url` until its JSON `field` is `want` (bounded).
fn eventually(url: &str, field: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body: Value = client().get(url).send().unwrap().json().unwrap();
        if body[field] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: {field} never became {want}: {body}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn verify(server: &Server, writes: &Writes) {
    for id in &writes.notes {
        assert_eq!(
            status(server.url(&format!("/hello/notes/{id}")), None),
            200,
            "acked note {id}"
        );
    }
    for (ids, acked) in &writes.batches {
        let present = ids
            .iter()
            .filter(|id| status(server.url(&format!("/hello/notes/{id}")), None) == 200)
            .count();
        assert!(
            present == 0 || present == ids.len(),
            "batch {ids:?} is half written"
        );
        if *acked {
            assert_eq!(present, ids.len(), "acked batch {ids:?}");
        }
    }
    for token in &writes.tokens {
        assert_eq!(
            status(server.url("/vm/v3/host"), Some(token)),
            200,
            "an acked session"
        );
    }
    for id in &writes.vms {
        eventually(&server.url(&format!("/hello/vms/{id}")), "state", "running");
    }
    for id in &writes.jobs {
        eventually(
            &server.url(&format!("/hello/jobs/{id}")),
            "state",
            "succeeded",
        );
    }
    let db = rusqlite::Connection::open_with_flags(
        server.data_dir().join("tessera.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn acknowledged_writes_survive_sigkill_at_random_moments() {
    let kills: usize = std::env::var("TESSERA_CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    cli_ok(
        &data,
        &["user", "add", "crash", "--email", EMAIL, "--password-stdin"],
        PASSWORD,
    );
    let writes = Arc::new(Mutex::new(Writes::default()));
    let mut starts = Vec::new();
    for round in 0..kills {
        let started = Instant::now();
        let server = Server::start_in(dir.path(), Some(&site()));
        starts.push(started.elapsed());
        verify(&server, &writes.lock().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let load = {
            let (base, writes, stop) = (server.base.clone(), writes.clone(), stop.clone());
            thread::spawn(move || workload(base, round, writes, stop))
        };
        thread::sleep(Duration::from_millis(fastrand::u64(100..600)));
        drop(server); // SIGKILL, mid-workload
        stop.store(true, Ordering::Relaxed);
        load.join().unwrap();
    }
    let server = Server::start_in(dir.path(), Some(&site()));
    let writes = writes.lock().unwrap();
    verify(&server, &writes);
    let acked = writes.notes.len()
        + writes.batches.iter().filter(|(_, a)| *a).count()
        + writes.tokens.len()
        + writes.vms.len()
        + writes.jobs.len();
    eprintln!(
        "crash: {kills} kills, {acked} acknowledged writes kept, restarts took {:?}",
        starts
    );
    assert!(acked > 0, "the workload wrote something");
}
