//! Migrate, ListMigrations, GetMigration: moving a machine to another compute node.
//! The phases are CloudAPI's — `begin` (a target node is chosen), `sync` (the disks are
//! copied), `switch` (the machine moves: the hypervisor primitive's `migrate-vm`, which
//! checks the target's room) — run one by one (on demand) or all at once (`automatic`),
//! then `finalize` forgets a successful migration; `abort` ends a paused one. Each phase
//! completes within its request, so a migration is never left `running`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::hypervisor::{self as hv, Vm};
use tessera_sdk::storage::{self, Collection, Filter};

use crate::compute::{self, hv_error, invalid_state};
use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;
use crate::protocol::clock::iso8601;

/// One migration per machine; key: the VM id.
const MIGRATIONS: Collection = Collection::new("migrations");

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
    fn record(&mut self, phase: &str, message: &str, total: u64, now_ms: u64) {
        self.phase = phase.to_string();
        self.progress_history.push(json!({
            "type": "progress",
            "phase": phase,
            "state": "running",
            "current_progress": total,
            "total_progress": total,
            "message": message,
            "started_timestamp": iso8601(now_ms),
            "duration_ms": 0,
        }));
    }
}

fn load(vm: &str) -> ApiResult<(Option<Migration>, Option<u64>)> {
    Ok(match MIGRATIONS.get::<Migration>(vm)? {
        Some(stored) => (Some(stored.value), Some(stored.version)),
        None => (None, None),
    })
}

fn save(migration: &Migration, version: Option<u64>) -> ApiResult<()> {
    MIGRATIONS.ensure_index("by_account", &["account", "created"], false)?;
    let op = MIGRATIONS.put_op(&migration.vm, migration, Some(version.unwrap_or(0)))?;
    storage::batch(&[op])?;
    Ok(())
}

pub fn list(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    MIGRATIONS.ensure_index("by_account", &["account", "created"], false)?;
    let page = MIGRATIONS
        .query()
        .filter(Filter::eq("account", ctx.account.id.clone()))
        .order_by("created", false)
        .fetch::<Migration>()?;
    Ok(Reply::ok(Value::Array(
        page.items.iter().map(|m| m.value.json()).collect(),
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

/// The phases `begin`, `sync` and `switch` on a migration.
fn begin(vm: &Vm, ctx: &Ctx<'_>, automatic: bool) -> Migration {
    let mut migration = Migration {
        vm: vm.id.clone(),
        account: ctx.account.id.clone(),
        automatic,
        created: ctx.now_ms,
        phase: "begin".into(),
        state: "paused".into(),
        progress_history: Vec::new(),
        error: None,
    };
    migration.record("begin", "reserving instance", 100, ctx.now_ms);
    migration
}

fn sync(migration: &mut Migration, vm: &Vm, now_ms: u64) {
    migration.record("sync", "syncing data", vm.disk_mib * 1024 * 1024, now_ms);
    migration.state = "paused".into();
}

fn switch(migration: &mut Migration, ctx: &Ctx<'_>) -> ApiResult<()> {
    match hv::migrate_vm(&migration.vm, None, &compute::caller(ctx)) {
        Ok(moved) => {
            let node = moved.node.unwrap_or_default();
            migration.record(
                "switch",
                &format!("switched to node {node}"),
                100,
                ctx.now_ms,
            );
            migration.state = "successful".into();
            Ok(())
        }
        Err(hv::HvError::Capacity(why)) | Err(hv::HvError::Invalid(why)) => {
            migration.phase = "switch".into();
            migration.state = "failed".into();
            migration.error = Some(why);
            Ok(())
        }
        Err(other) => Err(hv_error(other)),
    }
}

/// POST /:account/machines/:machine/migrate with `action`.
pub fn migrate(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, p.get("machine").unwrap_or_default())?;
    let action = ctx.inputs.required("action")?;
    let (existing, version) = load(&vm.id)?;
    let active = existing
        .as_ref()
        .filter(|m| m.state == "paused" || m.state == "running");
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
            if let Some(rules) = ctx.inputs.strings("affinity")?
                && !rules.is_empty()
            {
                return Err(ApiError::invalid_argument(
                    "affinity rules cannot be honoured for a migration here",
                ));
            }
            let mut migration = begin(&vm, ctx, action == "automatic");
            if action == "automatic" {
                sync(&mut migration, &vm, ctx.now_ms);
                switch(&mut migration, ctx)?;
            }
            (migration, 201)
        }
        "sync" | "switch" => {
            let Some(mut migration) = active.cloned() else {
                return Err(invalid_state("the machine has no paused migration"));
            };
            if action == "sync" {
                sync(&mut migration, &vm, ctx.now_ms);
            } else {
                switch(&mut migration, ctx)?;
            }
            (migration, 200)
        }
        "pause" => {
            // Every phase finishes within its request: nothing is ever left to pause.
            return Err(invalid_state("the migration is not running"));
        }
        "abort" => {
            let Some(mut migration) = active.cloned() else {
                return Err(invalid_state("the machine has no paused migration"));
            };
            migration.record("abort", "aborted", 100, ctx.now_ms);
            migration.state = "aborted".into();
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
            let Some(migration) = existing else {
                return Err(ApiError::not_found("the machine has no migration"));
            };
            let mut events = migration.progress_history.clone();
            events.push(json!({"type": "end", "phase": migration.phase, "state": migration.state}));
            return Ok(Reply::ok(Value::Array(events)));
        }
        other => {
            return Err(ApiError::invalid_argument(format!(
                "{other} is not a valid migration action"
            )));
        }
    };
    save(&migration, version)?;
    let reply = Reply::ok(migration.json());
    Ok(Reply { status, ..reply })
}
