//! Updates: `POST /update` stores the package and starts a job (one at a
//! time: E1004); the job has the kernel decrypt, check, stage and hot-swap
//! it; `GET /update` and `GET /update/log` report on it.
//!
//! Error codes: E1000 bad manifest, E1001 versions, E1002 update failed
//! (hashes, plugins; the old plugins stay), E1003 package missing, E1004
//! already running, E1005 cannot decrypt or extract.

use serde_json::{Value, json};
use tessera_sdk::jobs::{self, JobError, JobSubmission, OnRestart};
use tessera_sdk::site_admin::{self as admin, AdminError};
use tessera_sdk::{Job, JobOutcome, Request, Response};

use super::{form, location};
use crate::errors::{ApiError, ApiResult, accepted};
use crate::state::{self, TaskStatus, file_path};

pub const JOB_KIND: &str = "update";
const TASK: &str = "update";
const SOURCE: &str = "SYSTEM";

pub fn start(req: &Request) -> ApiResult {
    let form = form(req)?;
    let package = match form.get("update") {
        Some(part) if !part.data.is_empty() => part,
        _ => {
            refuse_without_job("E1003", "Missing update package")?;
            return Err(ApiError::bad_request("E1003: Missing update package"));
        }
    };
    let file = format!("update-{}.enc", hex(&tessera_sdk::auth::random_bytes(8)));
    std::fs::write(file_path(&file), &package.data)?;
    let submitted = jobs::submit(&JobSubmission {
        kind: JOB_KIND.into(),
        payload: json!({ "file": file }).to_string(),
        exclusive_key: Some(TASK.into()),
        on_restart: OnRestart::Fail,
        delay_ms: None,
    });
    let job = match submitted {
        Ok(job) => job,
        Err(JobError::ExclusiveBusy(_)) => {
            let _ = std::fs::remove_file(file_path(&file));
            state::update_task(TASK, |t| {
                t.log(SOURCE, "E1004: The update process was already running")
            })?;
            return Err(ApiError::bad_request(
                "E1004: The update process was already running",
            ));
        }
        Err(e) => {
            let _ = std::fs::remove_file(file_path(&file));
            return Err(e.into());
        }
    };
    state::claim_task(TASK, &started(&job.id))?;
    Ok(accepted(&location(req, "update")))
}

fn started(job: &str) -> TaskStatus {
    let mut status = TaskStatus::running(Some(job.to_string()));
    status.log(SOURCE, "Updating system. Please wait..");
    status
}

/// A POST that starts nothing still records why, unless an update is running.
fn refuse_without_job(code: &str, message: &str) -> Result<(), ApiError> {
    if state::task(TASK)?.is_some_and(|t| t.status == "running") {
        return Ok(());
    }
    let mut status = TaskStatus {
        status: "failed".into(),
        error_code: Some(code.into()),
        error_message: Some(message.into()),
        ..Default::default()
    };
    status.log(SOURCE, &format!("Failed updating: {message}"));
    state::save_task(TASK, &status)
}

pub fn status(_: &Request) -> ApiResult {
    let Some(task) = state::task(TASK)? else {
        return Ok(Response::json(
            200,
            &json!({ "status": null, "percentage": null, "log": null }),
        ));
    };
    let mut body = json!({
        "status": task.status,
        "percentage": task.percentage,
        "log": task.tail(10),
    });
    if task.status == "failed" {
        body["error-message"] = json!(task.error_message);
        body["error-code"] = json!(task.error_code);
    }
    Ok(Response::json(200, &body))
}

pub fn log(_: &Request) -> ApiResult {
    match state::task(TASK)?.filter(|t| !t.log.is_empty()) {
        Some(task) => Ok(Response::text(200, &(task.log.join("\n") + "\n"))),
        None => Err(ApiError::not_found("Update log not found")),
    }
}

/// The job: stage (decrypt, extract, versions, hashes, compile), then swap.
pub fn run(job: &Job) -> JobOutcome {
    let file = serde_json::from_str::<Value>(&job.payload)
        .ok()
        .and_then(|p| p["file"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let _ = state::claim_task(TASK, &started(&job.id));
    let outcome = apply(job, &file);
    let _ = std::fs::remove_file(file_path(&file));
    match outcome {
        Ok(version) => {
            let _ = state::update_task(TASK, |t| {
                t.status = "success".into();
                t.percentage = 100;
                t.log(
                    SOURCE,
                    &format!("Updating system successful (version {version})"),
                );
            });
            JobOutcome::Done(json!({ "version": version }).to_string())
        }
        Err((code, message)) => {
            let _ = state::update_task(TASK, |t| {
                t.status = "failed".into();
                t.error_code = Some(code.to_string());
                t.error_message = Some(message.clone());
                t.log(SOURCE, &format!("Failed updating: {message}"));
            });
            JobOutcome::Failed((code.to_string(), message))
        }
    }
}

fn apply(job: &Job, file: &str) -> Result<String, (&'static str, String)> {
    let step = |percent: u8, line: &str| {
        let _ = jobs::progress(&job.id, percent);
        let _ = jobs::append_log(&job.id, line);
        let _ = state::update_task(TASK, |t| {
            t.percentage = percent;
            t.log(SOURCE, line);
        });
    };
    if file.is_empty() || std::fs::metadata(file_path(file)).is_err() {
        return Err(("E1003", "Missing update package".into()));
    }
    step(10, "Decrypting and verifying the update package");
    let manifest = admin::stage_update(file).map_err(code_of)?;
    step(
        60,
        &format!(
            "Update package verified: version {}, plugins: {}",
            manifest.version,
            manifest.plugins.join(", ")
        ),
    );
    let manifest = admin::apply_update().map_err(code_of)?;
    step(
        90,
        &format!("Plugins swapped in: {}", manifest.plugins.join(", ")),
    );
    Ok(manifest.version)
}

fn code_of(e: AdminError) -> (&'static str, String) {
    match e {
        AdminError::Undecryptable(m) => (
            "E1005",
            format!("Unable to decrypt or extract the update package: {m}"),
        ),
        AdminError::Version(m) => ("E1001", format!("Version error: {m}")),
        AdminError::Invalid(m) => ("E1000", format!("Invalid update package: {m}")),
        AdminError::NotFound(m) => ("E1003", format!("Missing update package: {m}")),
        AdminError::Failed(m) => ("E1002", format!("Update failed: {m}")),
        AdminError::Unsupported(u) => ("E1002", format!("Update failed: {}", u.message)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
