//! What the plugin remembers between requests, in its storage: the status of
//! each background task (update, certs, backup) with its log, the settings
//! documents, and the license. Files live in the plugin's files dir.

use serde::{Deserialize, Serialize};
use tessera_sdk::storage::Collection;

use crate::errors::ApiError;

const STATE: Collection = Collection::new("state");
/// Log lines kept per task.
const MAX_LOG_LINES: usize = 1000;

/// The status of one background task, as the `GET` endpoints report it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskStatus {
    /// `running`, `success` or `failed`.
    pub status: String,
    #[serde(default)]
    pub percentage: u8,
    #[serde(default)]
    pub log: Vec<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    /// The job running it, if any.
    #[serde(default)]
    pub job: Option<String>,
    /// Task-specific results (a backup's size and hash).
    #[serde(default)]
    pub extra: serde_json::Value,
}

impl TaskStatus {
    pub fn running(job: Option<String>) -> Self {
        TaskStatus {
            status: "running".into(),
            job,
            ..Default::default()
        }
    }

    /// Append `[unix time][SOURCE] message`.
    pub fn log(&mut self, source: &str, message: &str) {
        self.log
            .push(format!("[{}][{source}] {message}", unix_now()));
        if self.log.len() > MAX_LOG_LINES {
            let excess = self.log.len() - MAX_LOG_LINES;
            self.log.drain(..excess);
        }
    }

    /// The last `n` log lines as one text, or `None` without a log.
    pub fn tail(&self, n: usize) -> Option<String> {
        (!self.log.is_empty()).then(|| self.log[self.log.len().saturating_sub(n)..].join("\n"))
    }
}

/// A task's status. One still `running` whose job has ended without saying
/// so (the kernel died under it, or a restore brought back an older record)
/// reads as failed.
pub fn task(name: &str) -> Result<Option<TaskStatus>, ApiError> {
    let task = STATE.get::<TaskStatus>(&format!("task:{name}"))?;
    Ok(task.map(|d| settled(d.value)))
}

fn settled(mut task: TaskStatus) -> TaskStatus {
    use tessera_sdk::jobs::{self, JobState};
    let Some(job) = task.job.clone().filter(|_| task.status == "running") else {
        return task;
    };
    let ended = match jobs::get(&job) {
        Ok(Some(info)) => !matches!(info.state, JobState::Queued | JobState::Running),
        Ok(None) => true,
        Err(_) => false,
    };
    if ended {
        task.status = "failed".into();
        task.error_code.get_or_insert_with(|| "E1002".into());
        task.error_message
            .get_or_insert_with(|| "The process was interrupted".into());
    }
    task
}

pub fn save_task(name: &str, status: &TaskStatus) -> Result<(), ApiError> {
    STATE.put(&format!("task:{name}"), status, None)?;
    Ok(())
}

/// Start a task's status for job `status.job`, unless that job already
/// did: the POST that submitted a job and the job itself both call this,
/// and whichever comes second leaves the first one's record alone.
pub fn claim_task(name: &str, status: &TaskStatus) -> Result<(), ApiError> {
    let key = format!("task:{name}");
    let current = STATE.get::<TaskStatus>(&key)?;
    if current.as_ref().is_some_and(|d| d.value.job == status.job) {
        return Ok(());
    }
    let version = current.map_or(0, |d| d.version);
    match STATE.put(&key, status, Some(version)) {
        Ok(_) => Ok(()),
        Err(tessera_sdk::storage::Error::Storage(
            tessera_sdk::storage::StorageError::Conflict(_),
        )) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Change a task's stored status in place (a fresh one if there is none).
pub fn update_task(
    name: &str,
    change: impl FnOnce(&mut TaskStatus),
) -> Result<TaskStatus, ApiError> {
    let mut status = task(name)?.unwrap_or_default();
    change(&mut status);
    save_task(name, &status)?;
    Ok(status)
}

pub fn document(name: &str) -> Result<Option<serde_json::Value>, ApiError> {
    Ok(STATE
        .get::<serde_json::Value>(&format!("doc:{name}"))?
        .map(|d| d.value))
}

pub fn save_document(name: &str, value: &serde_json::Value) -> Result<(), ApiError> {
    STATE.put(&format!("doc:{name}"), value, None)?;
    Ok(())
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The plugin's files dir is its WASI root.
pub fn file_path(name: &str) -> String {
    format!("/{name}")
}

/// Human sizes as upstream prints them: `128.0K`, `3.4G`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_log_tails_read_as_upstream() {
        assert_eq!(human_size(131072), "128.0K");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(3_650_722_201), "3.4G");
        let mut t = TaskStatus::running(None);
        assert_eq!(t.tail(10), None);
        for n in 0..12 {
            t.log("SYSTEM", &format!("line {n}"));
        }
        let tail = t.tail(10).unwrap();
        assert_eq!(tail.lines().count(), 10);
        assert!(tail.ends_with("[SYSTEM] line 11"));
    }
}
