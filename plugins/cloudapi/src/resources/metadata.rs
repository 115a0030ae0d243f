//! UpdateMachineMetadata, ListMachineMetadata, GetMachineMetadata,
//! DeleteMachineMetadata, DeleteAllMachineMetadata. Values are strings (anything else
//! is stored JSON-encoded). The `credentials` key holds generated passwords: shown only
//! with `credentials=true`, and never set or deleted through the API.

use serde_json::{Map, Value};
use tessera_sdk::Params;
use tessera_sdk::hypervisor as hv;

use crate::compute::{self, hv_error, object};
use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;
use crate::resources::machines::metadata_value;

const CREDENTIALS: &str = "credentials";
/// Request inputs that are protocol, not metadata.
const NOT_METADATA: [&str; 2] = ["as-role", "role-tag"];

fn machine_id(p: &Params) -> &str {
    p.get("machine").unwrap_or_default()
}

/// The metadata as shown: without `credentials` unless asked for.
fn shown(ctx: &Ctx<'_>, mut metadata: Map<String, Value>) -> ApiResult<Value> {
    if ctx.inputs.boolean("credentials")? != Some(true) {
        metadata.remove(CREDENTIALS);
    }
    Ok(Value::Object(metadata))
}

fn store(ctx: &Ctx<'_>, id: &str, metadata: Map<String, Value>) -> ApiResult<Map<String, Value>> {
    let text = Value::Object(metadata).to_string();
    let vm = hv::set_vm_data(id, None, Some(&text), &compute::caller(ctx)).map_err(hv_error)?;
    Ok(object(&vm.metadata))
}

pub fn list(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    Ok(Reply::ok(shown(ctx, object(&vm.metadata))?))
}

pub fn update(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let mut metadata = object(&vm.metadata);
    for (key, value) in ctx.inputs.all() {
        if NOT_METADATA.contains(&key.as_str()) || value.is_null() {
            continue;
        }
        if key == CREDENTIALS {
            return Err(ApiError::invalid_argument(
                "metadata key credentials cannot be set",
            ));
        }
        metadata.insert(key.clone(), metadata_value(value));
    }
    let stored = store(ctx, &vm.id, metadata)?;
    Ok(Reply::ok(shown(ctx, stored)?))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let key = p.get("key").unwrap_or_default();
    let hidden = key == CREDENTIALS && ctx.inputs.boolean("credentials")? != Some(true);
    let value = object(&vm.metadata)
        .remove(key)
        .filter(|_| !hidden)
        .ok_or_else(|| ApiError::not_found(format!("metadata key {key} does not exist")))?;
    Ok(Reply::ok(value))
}

pub fn delete(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let key = p.get("key").unwrap_or_default();
    if key == CREDENTIALS {
        return Err(ApiError::invalid_argument(
            "metadata key credentials cannot be deleted",
        ));
    }
    let mut metadata = object(&vm.metadata);
    if metadata.remove(key).is_none() {
        return Err(ApiError::not_found(format!(
            "metadata key {key} does not exist"
        )));
    }
    store(ctx, &vm.id, metadata)?;
    Ok(Reply::no_content())
}

/// Every key but `credentials` goes.
pub fn delete_all(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let mut kept = Map::new();
    if let Some(credentials) = object(&vm.metadata).remove(CREDENTIALS) {
        kept.insert(CREDENTIALS.into(), credentials);
    }
    store(ctx, &vm.id, kept)?;
    Ok(Reply::no_content())
}
