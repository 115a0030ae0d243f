//! Tasks: each host operation is a plugin job that follows the hypervisor's transition to its end, keeps the host projection in step, and records a `task` object with the product's `consul_id`, `name` and `status`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_sdk::hypervisor::{self as hv, Vm, VmState};
use tessera_sdk::jobs::{self, JobSubmission, OnRestart};
use tessera_sdk::storage::{self, Write};
use tessera_sdk::{Job, JobOutcome};

use crate::errors::{ApiError, ApiResult};
use crate::meta;
use crate::model::collection::{DISK, HOST, TASK};
use crate::model::{format_time, key, now_ms};

/// Consul task ids of the product are large numbers; ours start here.
const CONSUL_BASE: u64 = 1_000_000_000;
/// How often a task looks at its host, in milliseconds.
const POLL_MS: u64 = 200;
/// A task gives up after this many looks (10 minutes).
const MAX_POLLS: u32 = 3000;

/// Where a host operation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Running,
    Stopped,
    Gone,
}

impl Target {
    fn reached(self, vm: Option<&Vm>) -> bool {
        matches!(
            (self, vm.map(|vm| vm.state)),
            (Target::Gone, None | Some(VmState::Deleted))
                | (Target::Running, Some(VmState::Running))
                | (Target::Stopped, Some(VmState::Stopped))
        )
    }
}

/// What a task job carries.
#[derive(Debug, Serialize, Deserialize)]
pub struct TaskPayload {
    pub task: u64,
    pub host: u64,
    pub hv_id: String,
    pub target: Target,
}

/// A new task: its id and consul id, the stored object, and the write that stores it.
pub struct NewTask {
    pub id: u64,
    pub consul_id: u64,
    pub write: Write,
}

/// Prepares the `task` object of an operation on `host` (written with the host's change).
pub fn new_task(name: &str, host: &Value, account: &str) -> ApiResult<NewTask> {
    let id = storage::next_id("task")?;
    let consul_id = CONSUL_BASE + id;
    let now = format_time(now_ms());
    let task = json!({
        "id": id,
        "consul_id": consul_id,
        "name": name,
        "status": "running",
        "output": "",
        "registration_time": now,
        "update_time": now,
        "host": { "id": host["id"], "name": host["name"] },
        "internal": { "account": account },
    });
    Ok(NewTask {
        id,
        consul_id,
        write: TASK.insert_op(&key(id), &task)?,
    })
}

/// Queues the job that follows the operation to its end.
pub fn follow(kind: &str, payload: &TaskPayload) -> ApiResult<()> {
    let payload = serde_json::to_string(payload).map_err(|_| ApiError::internal("task"))?;
    jobs::submit(&JobSubmission {
        kind: kind.into(),
        payload,
        exclusive_key: None,
        on_restart: OnRestart::Resume,
        delay_ms: Some(POLL_MS),
    })?;
    Ok(())
}

/// One step of a task job.
pub fn run(job: &Job) -> JobOutcome {
    let payload: TaskPayload = match serde_json::from_str(&job.payload) {
        Ok(payload) => payload,
        Err(e) => return JobOutcome::Failed(("InvalidPayload".into(), e.to_string())),
    };
    match step(&payload, job.attempt) {
        Ok(Some(outcome)) => outcome,
        Ok(None) => JobOutcome::ContinueAfter((POLL_MS, String::new())),
        // Storage or the hypervisor is not answering: look again later.
        Err(error) if error.status == 503 => {
            JobOutcome::ContinueAfter((POLL_MS * 5, String::new()))
        }
        Err(error) => JobOutcome::Failed(("TaskFailed".into(), error.msg)),
    }
}

fn step(payload: &TaskPayload, attempt: u32) -> ApiResult<Option<JobOutcome>> {
    let vm = hv::get_vm(&payload.hv_id)?;
    if payload.target.reached(vm.as_ref()) {
        finish(payload, "complete", "")?;
        return Ok(Some(JobOutcome::Done(
            json!({ "host": payload.host }).to_string(),
        )));
    }
    let failed = match vm.as_ref().map(|vm| vm.state) {
        Some(VmState::Failed) => Some("the host failed"),
        None | Some(VmState::Deleted) => Some("the host is gone"),
        Some(state) if !is_transitional(state) => Some("the host did not reach its target state"),
        _ if attempt > MAX_POLLS => Some("timed out"),
        _ => None,
    };
    if let Some(reason) = failed {
        finish(payload, "failed", reason)?;
        return Ok(Some(JobOutcome::Failed((
            "TaskFailed".into(),
            reason.into(),
        ))));
    }
    Ok(None)
}

fn is_transitional(state: VmState) -> bool {
    matches!(
        state,
        VmState::Provisioning | VmState::Starting | VmState::Stopping | VmState::Rebooting
    )
}

/// Brings the host projection up to date, then ends the task.
fn finish(payload: &TaskPayload, status: &str, output: &str) -> ApiResult<()> {
    crate::projection::follow_hypervisor()?;
    let mut writes = Vec::new();
    let key = key(payload.task);
    if let Some(stored) = TASK.get::<Value>(&key)? {
        let mut task = stored.value;
        task["status"] = json!(status);
        task["output"] = json!(output);
        task["update_time"] = json!(format_time(now_ms()));
        writes.push(TASK.put_op(&key, &task, Some(stored.version))?);
    }
    writes.push(meta::notify_op()?);
    storage::batch(&writes).map_err(|e| ApiError::from(e.error))?;
    Ok(())
}

/// Writes that remove a host's projection and its disks.
pub fn removal_writes(host: u64) -> ApiResult<Vec<Write>> {
    let mut writes = vec![HOST.delete_op(&key(host), None)];
    let disks = DISK
        .query()
        .filter(tessera_sdk::storage::Filter::eq("host.id", host))
        .limit(hv_disk_cap())
        .fetch::<Value>()?;
    writes.extend(disks.items.iter().map(|d| DISK.delete_op(&d.key, None)));
    Ok(writes)
}

/// A VM has at most this many disks (the hypervisor's device cap, with room).
fn hv_disk_cap() -> u64 {
    64
}
