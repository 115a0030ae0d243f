//! Migrate, ListMigrations, GetMigration: moving a machine to another compute node.
//! The phases are CloudAPI's — `begin` (a target node is chosen), `sync` (the disks are
//! copied), `switch` (the machine moves: the hypervisor primitive's `migrate-vm`, which
//! checks the target's room). Each action runs its phases as the steps of one plugin
//! job (`migration.run`), so a migration is `running` while they do: `pause` stops it
//! after the phase under way (`paused`), `abort` ends it there and puts the machine
//! back on its source node if it had moved (`aborted`), `automatic` runs all three.
//! `watch` answers `application/x-json-stream` progress events, waiting for the
//! running action within the request's time budget; `finalize` forgets a successful
//! migration.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::hypervisor::{self as hv, Vm};
use tessera_sdk::jobs::{self, JobSubmission, OnRestart};
use tessera_sdk::storage::{self, Collection, Filter, StorageError};
use tessera_sdk::{Job, JobOutcome};

use crate::compute::{self, hv_error, invalid_state};
use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::clock::{iso8601, now_ms};
use crate::protocol::{JSON_STREAM, Reply};

/// One migration per machine; key: the VM id.
const MIGRATIONS: Collection = Collection::new("migrations");
/// The job kind that runs a migration's phases.
pub const JOB_RUN: &str = "migration.run";
/// The pause between two phases of one action, in which `pause` and `abort` land.
const STEP_MS: u64 = 300;
/// How long `watch` waits for a running action to end; under the request budget.
const WATCH_WAIT: Duration = Duration::from_millis(3_500);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Migration {
    vm: String,
    account: String,
    automatic: bool,
    created: u64,
    phase: String,
    state: String,
    #[serde(default)]
    progress_history: Vec<Value>,
    #[serde(default)]
    error: Option<String>,
    /// Phases the running job still has to do, in order.
    #[serde(default)]
    pending: Vec<String>,
    /// The job running the phases.
    #[serde(default)]
    job: Option<String>,
    #[serde(default)]
    pause_requested: bool,
    #[serde(default)]
    abort_requested: bool,
    /// The audited caller of the action, for the primitive's calls.
    #[serde(default)]
    caller: String,
    #[serde(default)]
    source_node: Option<String>,
    #[serde(default)]
    target_node: Option<String>,
    /// Whether `switch` moved the machine (what `abort` has to undo).
    #[serde(default)]
    switched: bool,
    /// The `affinity` rules `begin` chooses the target node by.
    #[serde(default)]
    affinity: Vec<String>,
}

impl Migration {
    fn json(&self) -> Value {
        let mut out = json!({
            "machine": self.vm,
            "vm_uuid": self.vm,
            "automatic": self.automatic,
            "created_timestamp": iso8601(self.created),
            "phase": self.phase,
            "state": self.state,
            "progress_history": self.progress_history,
        });
        if let Some(error) = &self.error {
            out["error"] = json!(error);
        }
        out
    }

    /// A finished phase as a progress event.
    fn record(&mut self, phase: &str, message: &str, total: u64, started_ms: u64) {
        self.phase = phase.to_string();
        let now = now_ms();
        self.progress_history.push(json!({
            "type": "progress",
            "phase": phase,
            "state": "running",
            "current_progress": total,
            "total_progress": total,
            "message": message,
            "started_timestamp": iso8601(started_ms),
            "duration_ms": now.saturating_sub(started_ms),
        }));
    }

    fn active(&self) -> bool {
        self.state == "paused" || self.state == "running"
    }
}

fn load(vm: &str) -> ApiResult<(Option<Migration>, Option<u64>)> {
    Ok(match MIGRATIONS.get::<Migration>(vm)? {
        Some(stored) => (Some(job_checked(stored.value)), Some(stored.version)),
        None => (None, None),
    })
}

/// A running migration whose job ended without finishing it (failed, cancelled,
/// gone) is shown as failed, so no client waits on it forever.
fn job_checked(mut migration: Migration) -> Migration {
    if migration.state != "running" {
        return migration;
    }
    let Some(job) = migration.job.clone() else {
        return migration;
    };
    let ended = match jobs::get(&job) {
        Ok(Some(info)) => match info.state {
            jobs::JobState::Failed | jobs::JobState::Cancelled => Some(
                info.error_message
                    .unwrap_or_else(|| "the migration job ended early".into()),
            ),
            // Done while the record says running: the job's last write was lost.
            jobs::JobState::Succeeded => Some("the migration job ended early".into()),
            _ => None,
        },
        Ok(None) => Some("the migration job is gone".into()),
        Err(_) => None,
    };
    if let Some(why) = ended {
        let phase = migration.phase.clone();
        migration.fail(&phase, &why);
    }
    migration
}

/// Writes the migration if nobody changed it since `version`; `false` if someone did.
fn save(migration: &Migration, version: Option<u64>) -> ApiResult<bool> {
    MIGRATIONS.ensure_index("by_account", &["account", "created"], false)?;
    let op = MIGRATIONS.put_op(&migration.vm, migration, Some(version.unwrap_or(0)))?;
    match storage::batch(&[op]) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.error, StorageError::Conflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Saves a change a request made, or 409 when the job changed it meanwhile.
fn save_request(migration: &Migration, version: Option<u64>) -> ApiResult<()> {
    if save(migration, version)? {
        Ok(())
    } else {
        Err(invalid_state("the migration changed meanwhile; try again"))
    }
}

pub fn list(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    MIGRATIONS.ensure_index("by_account", &["account", "created"], false)?;
    let page = MIGRATIONS
        .query()
        .filter(Filter::eq("account", ctx.account.id.clone()))
        .order_by("created", false)
        .fetch::<Migration>()?;
    Ok(Reply::ok(Value::Array(
        page.items
            .into_iter()
            .map(|m| job_checked(m.value).json())
            .collect(),
    )))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::machine(ctx, p.get("machine").unwrap_or_default())?;
    match load(&vm.id)?.0 {
        Some(migration) => Ok(Reply::ok(migration.json())),
        None => Err(ApiError::not_found(format!(
            "machine {} has no migration",
            vm.id
        ))),
    }
}

/// Queues the job that runs the migration's pending phases.
fn submit(migration: &mut Migration) -> ApiResult<()> {
    let job = jobs::submit(&JobSubmission {
        kind: JOB_RUN.into(),
        payload: json!({"vm": migration.vm}).to_string(),
        exclusive_key: None,
        on_restart: OnRestart::Resume,
        delay_ms: Some(STEP_MS),
    })
    .map_err(|e| {
        tessera_sdk::error!("jobs: {e:?}");
        ApiError::internal("the migration job could not be queued")
    })?;
    migration.job = Some(job.id);
    Ok(())
}

/// POST /:account/machines/:machine/migrate with `action`.
pub fn migrate(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, p.get("machine").unwrap_or_default())?;
    let action = ctx.inputs.required("action")?;
    let (existing, version) = load(&vm.id)?;
    let active = existing.as_ref().filter(|m| m.active());
    let settled = matches!(vm.state, hv::VmState::Running | hv::VmState::Stopped);
    let (migration, status) = match action.as_str() {
        "begin" | "automatic" => {
            if active.is_some() {
                return Err(invalid_state(
                    "the machine already has a migration under way",
                ));
            }
            if !settled {
                return Err(invalid_state("the machine must be running or stopped"));
            }
            // Checked now so a bad rule is refused, applied by `begin`.
            let affinity = ctx.inputs.strings("affinity")?.unwrap_or_default();
            for rule in &affinity {
                crate::affinity::Rule::parse(rule)?;
            }
            let automatic = action == "automatic";
            let mut migration = Migration {
                vm: vm.id.clone(),
                account: ctx.account.id.clone(),
                automatic,
                created: ctx.now_ms,
                phase: "begin".into(),
                state: "running".into(),
                progress_history: Vec::new(),
                error: None,
                pending: if automatic {
                    vec!["begin".into(), "sync".into(), "switch".into()]
                } else {
                    vec!["begin".into()]
                },
                job: None,
                pause_requested: false,
                abort_requested: false,
                caller: compute::caller(ctx),
                source_node: vm.node.clone(),
                target_node: None,
                switched: false,
                affinity,
            };
            submit(&mut migration)?;
            // A finished migration of this machine is replaced by the new one.
            save_request(&migration, Some(version.unwrap_or(0)))?;
            (migration, 201)
        }
        "sync" | "switch" => {
            let Some(mut migration) = active.cloned() else {
                return Err(invalid_state("the machine has no paused migration"));
            };
            if migration.state != "paused" {
                return Err(invalid_state("the migration is running; pause it first"));
            }
            if migration.phase == "begin" && action == "switch" && migration.pending.is_empty() {
                // Switching straight after begin syncs first, as Triton's switch does.
                migration.pending = vec!["sync".into(), "switch".into()];
            } else {
                migration.pending = vec![action.clone()];
            }
            migration.state = "running".into();
            migration.caller = compute::caller(ctx);
            migration.pause_requested = false;
            migration.abort_requested = false;
            submit(&mut migration)?;
            save_request(&migration, version)?;
            (migration, 200)
        }
        "pause" => {
            let Some(mut migration) = active.cloned().filter(|m| m.state == "running") else {
                return Err(invalid_state("the migration is not running"));
            };
            migration.pause_requested = true;
            save_request(&migration, version)?;
            (migration, 200)
        }
        "abort" => {
            let Some(mut migration) = active.cloned() else {
                return Err(invalid_state("the machine has no migration to abort"));
            };
            if migration.state == "running" {
                // The job ends it after the phase under way.
                migration.abort_requested = true;
            } else {
                abort(&mut migration)?;
            }
            save_request(&migration, version)?;
            (migration, 200)
        }
        "finalize" => {
            return match existing {
                Some(m) if m.state == "successful" => {
                    storage::batch(&[MIGRATIONS.delete_op(&vm.id, version)])?;
                    Ok(Reply::ok(json!({"machine": vm.id, "state": "finalized"})))
                }
                _ => Err(invalid_state(
                    "only a successful migration can be finalized",
                )),
            };
        }
        "watch" => {
            if existing.is_none() {
                return Err(ApiError::not_found("the machine has no migration"));
            }
            return watch(&vm.id);
        }
        other => {
            return Err(ApiError::invalid_argument(format!(
                "{other} is not a valid migration action"
            )));
        }
    };
    let reply = Reply::ok(migration.json());
    Ok(Reply { status, ..reply })
}

/// The progress events so far, once the running action has ended (or the wait is
/// over), one JSON object a line, the last an `end` event if it has ended.
fn watch(vm: &str) -> ApiResult<Reply> {
    let started = std::time::Instant::now();
    let migration = loop {
        let (Some(migration), _) = load(vm)? else {
            return Err(ApiError::not_found("the machine has no migration"));
        };
        if migration.state != "running" || started.elapsed() >= WATCH_WAIT {
            break migration;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut events = migration.progress_history.clone();
    if migration.state != "running" {
        let mut end = json!({"type": "end", "phase": migration.phase, "state": migration.state});
        if let Some(error) = &migration.error {
            end["error"] = json!(error);
        }
        events.push(end);
    }
    Ok(Reply::ok(Value::Array(events)).with_header("content-type", JSON_STREAM))
}

/// Ends the migration as aborted, putting the machine back if `switch` moved it.
fn abort(migration: &mut Migration) -> ApiResult<()> {
    let started = now_ms();
    if migration.switched
        && let Some(source) = migration.source_node.clone()
    {
        hv::migrate_vm(&migration.vm, Some(&source), &migration.caller).map_err(hv_error)?;
        migration.switched = false;
    }
    migration.pending.clear();
    migration.abort_requested = false;
    migration.record("abort", "aborted", 100, started);
    migration.state = "aborted".into();
    Ok(())
}

/// The node `begin` picks, or why there is none (which fails the migration).
fn begin_target(migration: &Migration, vm: &Vm) -> Result<String, String> {
    let rules = migration
        .affinity
        .iter()
        .map(|rule| crate::affinity::Rule::parse(rule))
        .collect::<ApiResult<Vec<_>>>()
        .map_err(|e| e.message)?;
    let placement =
        crate::affinity::resolve(&migration.account, &vm.owner, &rules, None, Some(&vm.id))
            .map_err(|e| e.message)?;
    hv::migration_target(&vm.id, &placement).map_err(|e| match e {
        hv::HvError::Capacity(why) => {
            format!("no other compute node can take the instance: {why}")
        }
        other => hv_error(other).message,
    })
}

/// Runs one phase; a refusal of the primitive fails the migration.
fn run_phase(migration: &mut Migration, phase: &str, vm: &Vm) -> ApiResult<()> {
    let started = now_ms();
    match phase {
        "begin" => {
            // Another node with room that the affinity rules allow, chosen as
            // CreateMachine chooses; `switch` checks its room again.
            let target = begin_target(migration, vm);
            let target = match target {
                Ok(target) => target,
                Err(why) => {
                    migration.fail("begin", &why);
                    return Ok(());
                }
            };
            migration.source_node = vm.node.clone();
            migration.target_node = Some(target);
            migration.record("begin", "reserving instance", 100, started);
        }
        "sync" => {
            let bytes = vm.disk_mib * 1024 * 1024;
            migration.record("sync", "syncing data", bytes, started);
        }
        "switch" => {
            let target = migration.target_node.clone();
            match hv::migrate_vm(&migration.vm, target.as_deref(), &migration.caller) {
                Ok(moved) => {
                    migration.switched = true;
                    let node = moved.node.unwrap_or_default();
                    migration.record("switch", &format!("switched to node {node}"), 100, started);
                }
                Err(hv::HvError::Capacity(why))
                | Err(hv::HvError::Invalid(why))
                | Err(hv::HvError::Conflict(why))
                | Err(hv::HvError::IllegalTransition(why)) => migration.fail("switch", &why),
                Err(other) => return Err(hv_error(other)),
            }
        }
        other => migration.fail(other, "unknown migration phase"),
    }
    Ok(())
}

impl Migration {
    fn fail(&mut self, phase: &str, why: &str) {
        self.phase = phase.to_string();
        self.state = "failed".into();
        self.error = Some(why.to_string());
        self.pending.clear();
    }
}

/// `migration.run`: one phase per call, `continue-after` between phases.
pub fn run_job(job: &Job) -> JobOutcome {
    let vm = serde_json::from_str::<Value>(&job.payload)
        .ok()
        .and_then(|p| p["vm"].as_str().map(String::from))
        .unwrap_or_default();
    match step(&job.id, &vm) {
        // The saved state must be JSON; the record in storage is the real state.
        Ok(Some(delay)) => JobOutcome::ContinueAfter((delay, "{}".into())),
        Ok(None) => JobOutcome::Done(json!({"vm": vm}).to_string()),
        Err(e) => JobOutcome::Failed((e.code.to_string(), e.message)),
    }
}

/// Does the migration's next step; `Some(delay)` when more phases follow.
fn step(job: &str, vm_id: &str) -> ApiResult<Option<u64>> {
    let (Some(mut migration), mut version) = load(vm_id)? else {
        return Ok(None);
    };
    // A newer action's job owns it now, or it has ended.
    if migration.job.as_deref() != Some(job) || migration.state != "running" {
        return Ok(None);
    }
    let more = if migration.abort_requested {
        abort(&mut migration)?;
        false
    } else if migration.pause_requested || migration.pending.is_empty() {
        pause(&mut migration);
        false
    } else {
        let phase = migration.pending.remove(0);
        match hv::get_vm(vm_id).map_err(hv_error)? {
            Some(vm) if vm.state != hv::VmState::Deleted => {
                run_phase(&mut migration, &phase, &vm)?;
            }
            _ => migration.fail(&phase, "the instance is gone"),
        }
        if migration.state == "running" && migration.pending.is_empty() {
            migration.state = if migration.phase == "switch" {
                "successful".into()
            } else {
                "paused".into()
            };
        }
        migration.state == "running"
    };
    // The phase is done and must not run twice: a request that changed the
    // record meanwhile (pause, abort) only adds its flag.
    for _ in 0..16 {
        if save(&migration, version)? {
            return Ok(more.then_some(STEP_MS));
        }
        let (Some(fresh), fresh_version) = load(vm_id)? else {
            return Ok(None);
        };
        migration.pause_requested |= fresh.pause_requested;
        migration.abort_requested |= fresh.abort_requested;
        version = fresh_version;
        if !more && migration.abort_requested && migration.state == "paused" {
            abort(&mut migration)?;
        }
    }
    Err(ApiError::internal(
        "the migration kept changing while it ran",
    ))
}

/// Stops after the phase that has just run.
fn pause(migration: &mut Migration) {
    migration.pause_requested = false;
    migration.pending.clear();
    migration.state = "paused".into();
}
