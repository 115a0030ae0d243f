//! Backup: `POST /backup` (`action=START` runs a backup job of the site
//! database, `STOP` stops it or deletes the archive), `GET /backup` (status),
//! `GET /backup/download` (backup.tar), `GET /backup/log`, and
//! `POST /backup/restore` (validated, swapped in atomically; the kernel then
//! restarts).

use serde_json::json;
use tessera_sdk::jobs::{self, JobError, JobSubmission, OnRestart};
use tessera_sdk::site_admin as admin;
use tessera_sdk::{Job, JobOutcome, Request, Response};

use super::{download, form, location, part};
use crate::errors::{ApiError, ApiResult, accepted, ok};
use crate::state::{self, TaskStatus, file_path, human_size};

pub const JOB_KIND: &str = "backup";
const TASK: &str = "backup";
const ARCHIVE: &str = "backup.tar";
const UPLOAD: &str = "restore.tar";
const SOURCE: &str = "LIVE IMAGE";

pub fn action(req: &Request) -> ApiResult {
    let form = form(req)?;
    let action = part(&form, "action")?
        .text()
        .unwrap_or("")
        .trim()
        .to_string();
    match action.as_str() {
        "START" => start(req),
        "STOP" => stop(req),
        _ => Err(ApiError::bad_request("action must be START or STOP")),
    }
}

fn start(req: &Request) -> ApiResult {
    let submitted = jobs::submit(&JobSubmission {
        kind: JOB_KIND.into(),
        payload: "{}".into(),
        exclusive_key: Some(TASK.into()),
        on_restart: OnRestart::Fail,
        delay_ms: None,
    });
    let job = match submitted {
        Ok(job) => job,
        Err(JobError::ExclusiveBusy(_)) => {
            return Err(ApiError::bad_request("A backup is already running"));
        }
        Err(e) => return Err(e.into()),
    };
    state::claim_task(TASK, &started(&job.id))?;
    Ok(accepted(&location(req, "backup")))
}

fn started(job: &str) -> TaskStatus {
    let mut status = TaskStatus::running(Some(job.to_string()));
    status.log(SOURCE, "Validating backup file size");
    status.log(SOURCE, "Starting backup");
    status
}

fn stop(req: &Request) -> ApiResult {
    let task = state::task(TASK)?;
    if let Some(job) = task
        .as_ref()
        .filter(|t| t.status == "running")
        .and_then(|t| t.job.clone())
    {
        let _ = jobs::cancel(&job);
    }
    let _ = std::fs::remove_file(file_path(ARCHIVE));
    state::update_task(TASK, |t| {
        // No status: the backup is gone, only its log stays.
        t.status = String::new();
        t.extra = serde_json::Value::Null;
        t.log(SOURCE, "Deleting backup archive");
    })?;
    Ok(accepted(&location(req, "backup")))
}

pub fn status(_: &Request) -> ApiResult {
    let task = state::task(TASK)?
        .filter(|t| !t.status.is_empty())
        .ok_or_else(|| ApiError::not_found("Backup status not found"))?;
    let mut body = json!({ "status": task.status });
    if task.status == "success" {
        body["filesize"] = task.extra["filesize"].clone();
        body["sha256"] = task.extra["sha256"].clone();
    }
    Ok(Response::json(200, &body))
}

pub fn download_archive(_: &Request) -> ApiResult {
    let bytes = std::fs::read(file_path(ARCHIVE))
        .map_err(|_| ApiError::not_found("backup.tar not found"))?;
    Ok(download(bytes, ARCHIVE))
}

pub fn log(_: &Request) -> ApiResult {
    match state::task(TASK)?.filter(|t| !t.log.is_empty()) {
        Some(task) => Ok(Response::text(200, &(task.log.join("\n") + "\n"))),
        None => Err(ApiError::not_found("Backup log not found")),
    }
}

pub fn restore(req: &Request) -> ApiResult {
    let form = form(req)?;
    let archive = part(&form, "archive")?;
    if archive.data.is_empty() {
        return Err(ApiError::bad_request("The backup archive is empty"));
    }
    std::fs::write(file_path(UPLOAD), &archive.data)?;
    let restored = admin::restore(UPLOAD);
    let _ = std::fs::remove_file(file_path(UPLOAD));
    match restored {
        Ok(()) => Ok(ok()),
        Err(e) => Err(ApiError::bad_request(format!(
            "Invalid backup archive: {}",
            message(e)
        ))),
    }
}

fn message(e: admin::AdminError) -> String {
    match e {
        admin::AdminError::NotFound(m)
        | admin::AdminError::Invalid(m)
        | admin::AdminError::Undecryptable(m)
        | admin::AdminError::Version(m)
        | admin::AdminError::Failed(m) => m,
        admin::AdminError::Unsupported(u) => u.message,
    }
}

/// The job: an online backup of the site database into backup.tar.
pub fn run(job: &Job) -> JobOutcome {
    let _ = state::claim_task(TASK, &started(&job.id));
    let result = admin::backup(ARCHIVE);
    // A STOP while the job ran took the status away: leave nothing behind.
    let stopped = state::task(TASK)
        .ok()
        .flatten()
        .is_none_or(|t| t.job.as_deref() != Some(&job.id) || t.status != "running");
    if stopped {
        let _ = std::fs::remove_file(file_path(ARCHIVE));
        return JobOutcome::Failed(("Stopped".into(), "the backup was stopped".into()));
    }
    match result {
        Ok(file) => {
            let size = human_size(file.size);
            let _ = state::update_task(TASK, |t| {
                t.status = "success".into();
                t.percentage = 100;
                t.extra = json!({ "filesize": size, "sha256": file.sha256 });
                t.log.push(format!(
                    "Created file: {ARCHIVE} - size: {size} - hash: {}",
                    file.sha256
                ));
                t.log(SOURCE, "Backup complete");
            });
            JobOutcome::Done(json!({ "size": file.size, "sha256": file.sha256 }).to_string())
        }
        Err(e) => {
            let message = message(e);
            let _ = state::update_task(TASK, |t| {
                t.status = "failed".into();
                t.log(SOURCE, &format!("Backup failed: {message}"));
            });
            JobOutcome::Failed(("BackupFailed".into(), message))
        }
    }
}
