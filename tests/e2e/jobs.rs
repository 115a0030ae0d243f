//! Background jobs end to end: a plugin submits through the WIT interface, a
//! kernel worker runs each step in a fresh instance, progress, logs and the
//! result come back; failures and traps fail the job, never the kernel; jobs
//! survive a restart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, cli_ok, client, json, test_site};

fn submit(server: &Server, body: Value) -> reqwest::blocking::Response {
    client()
        .post(server.url("/hello/jobs"))
        .json(&body)
        .send()
        .unwrap()
}

/// Poll the job until it reaches a final state (bounded).
fn wait_final(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = json(
            client()
                .get(server.url(&format!("/hello/jobs/{id}")))
                .send()
                .unwrap(),
        );
        if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap_or("")) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_multi_step_job_reports_progress_log_and_result() {
    let server = Server::with_site(&test_site());
    let accepted = submit(&server, json!({"kind": "count", "steps": 4}));
    assert_eq!(accepted.status(), 202);
    let id = json(accepted)["id"].as_str().unwrap().to_string();
    let job = wait_final(&server, &id);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["progress"], 100);
    assert_eq!(job["result"], json!({"counted": 4}));
    assert_eq!(job["attempts"], 4, "one fresh instance per step");
    assert_eq!(
        job["log"],
        json!(["step 1 of 4", "step 2 of 4", "step 3 of 4", "step 4 of 4"])
    );

    // The operator sees the same job from the command line.
    let dir = server.data_dir();
    let shown = cli_ok(
        &dir,
        &["job", "show", &id, "--plugin", "hello", "--json"],
        "",
    );
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        (shown["state"].as_str(), shown["plugin"].as_str()),
        (Some("succeeded"), Some("hello"))
    );
    assert_eq!(shown["log"].as_array().unwrap().len(), 4);
    let listed = cli_ok(
        &dir,
        &["job", "list", "--plugin", "hello", "--state", "succeeded"],
        "",
    );
    assert!(listed.contains(&id) && listed.contains("count"), "{listed}");
}

#[test]
fn failing_and_trapping_jobs_fail_without_hurting_the_kernel() {
    let server = Server::with_site(&test_site());
    let failed = json(submit(&server, json!({"kind": "fail"})))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let trapped = json(submit(&server, json!({"kind": "trap"})))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let failed = wait_final(&server, &failed);
    assert_eq!(
        (failed["state"].as_str(), failed["error_code"].as_str()),
        (Some("failed"), Some("Boom"))
    );
    let trapped = wait_final(&server, &trapped);
    assert_eq!(
        (trapped["state"].as_str(), trapped["error_code"].as_str()),
        (Some("failed"), Some("JobTrapped"))
    );
    assert_eq!(
        client()
            .get(server.url("/hello/hello"))
            .send()
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn an_exclusive_key_admits_one_live_job() {
    let server = Server::with_site(&test_site());
    let first = submit(
        &server,
        json!({"kind": "count", "steps": 20, "key": "update"}),
    );
    assert_eq!(first.status(), 202);
    let id = json(first)["id"].as_str().unwrap().to_string();
    let second = submit(&server, json!({"kind": "count", "key": "update"}));
    assert_eq!(second.status(), 409);
    assert_eq!(json(second)["detail"]["job"], id.as_str());
    let cancelled = client()
        .delete(server.url(&format!("/hello/jobs/{id}")))
        .send()
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    assert_eq!(wait_final(&server, &id)["state"], "cancelled");
    assert_eq!(
        submit(
            &server,
            json!({"kind": "count", "steps": 1, "key": "update"})
        )
        .status(),
        202
    );
}

#[test]
fn bad_submissions_and_unknown_jobs_are_refused() {
    let server = Server::with_site(&test_site());
    assert_eq!(submit(&server, json!({"kind": "Bad Kind!"})).status(), 400);
    let missing = client()
        .get(server.url("/hello/jobs/00000000-0000-4000-8000-000000000000"))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[test]
fn jobs_running_when_the_kernel_dies_are_resumed_or_failed_as_declared() {
    let dir = tempfile::tempdir().unwrap();
    let site = test_site();
    let server = Server::start_in(dir.path(), Some(&site));
    let resumable = json(submit(
        &server,
        json!({"kind": "spin", "ms": 1500, "resume": true}),
    ));
    let doomed = json(submit(&server, json!({"kind": "spin", "ms": 1500})));
    // Both are mid-step (two workers) when the kernel is killed without warning.
    std::thread::sleep(Duration::from_millis(400));
    drop(server);

    let again = Server::start_in(dir.path(), Some(&site));
    let doomed = wait_final(&again, doomed["id"].as_str().unwrap());
    assert_eq!(
        (doomed["state"].as_str(), doomed["error_code"].as_str()),
        (Some("failed"), Some("KernelRestart")),
        "{doomed}"
    );
    let resumed = wait_final(&again, resumable["id"].as_str().unwrap());
    assert_eq!(resumed["state"], "succeeded", "{resumed}");
    assert_eq!(
        resumed["result"]["attempt"], 2,
        "run again after the restart"
    );
}
