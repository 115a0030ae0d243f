//! CreateMachineSnapshot, StartMachineFromSnapshot, ListMachineSnapshots,
//! GetMachineSnapshot, DeleteMachineSnapshot on the hypervisor primitive's snapshots.
//! Rolling back needs a stopped machine and starts it again (a job), as Triton does.

use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::hypervisor::{self as hv, Snapshot};

use crate::compute::{self, hv_error};
use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;
use crate::protocol::clock::iso8601;

fn machine_id(p: &Params) -> &str {
    p.get("machine").unwrap_or_default()
}

fn snapshot_json(snapshot: &Snapshot) -> Value {
    let state = match snapshot.state.as_str() {
        "active" | "ready" | "done" => "created",
        other => other,
    };
    json!({
        "name": snapshot.name,
        "state": state,
        "created": iso8601(snapshot.created),
        "updated": iso8601(snapshot.created),
    })
}

fn find(id: &str, name: &str) -> ApiResult<Snapshot> {
    hv::list_snapshots(id)
        .map_err(hv_error)?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::not_found(format!("snapshot {name} does not exist")))
}

pub fn create(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    // Triton names an unnamed snapshot by its time.
    let name = match ctx.inputs.string("name")? {
        Some(name) => name,
        None => iso8601(ctx.now_ms).replace([':', '-'], "").replace(".", ""),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(ApiError::invalid_argument(format!(
            "snapshot name {name:?} is invalid"
        )));
    }
    let snapshot =
        hv::snapshot_create(&vm.id, &name, &compute::caller(ctx)).map_err(|e| match e {
            hv::HvError::Conflict(why) if !why.contains("under way") => {
                ApiError::invalid_argument(format!("snapshot {name} already exists"))
            }
            other => hv_error(other),
        })?;
    Ok(Reply::created(
        snapshot_json(&snapshot),
        format!("/{}/machines/{}/snapshots/{name}", ctx.login(), vm.id),
    ))
}

pub fn start_from(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let name = p.get("name").unwrap_or_default();
    find(&vm.id, name)?;
    hv::snapshot_rollback(&vm.id, name, &compute::caller(ctx)).map_err(hv_error)?;
    Ok(Reply {
        status: 202,
        body: None,
        headers: Vec::new(),
    })
}

pub fn list(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let snapshots = hv::list_snapshots(&vm.id).map_err(hv_error)?;
    Ok(Reply::ok(Value::Array(
        snapshots.iter().map(snapshot_json).collect(),
    )))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let snapshot = find(&vm.id, p.get("name").unwrap_or_default())?;
    Ok(Reply::ok(snapshot_json(&snapshot)))
}

pub fn delete(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let name = p.get("name").unwrap_or_default();
    find(&vm.id, name)?;
    hv::snapshot_delete(&vm.id, name, &compute::caller(ctx)).map_err(hv_error)?;
    Ok(Reply::no_content())
}
