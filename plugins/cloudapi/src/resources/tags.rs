//! AddMachineTags, ReplaceMachineTags, ListMachineTags, GetMachineTag,
//! DeleteMachineTag, DeleteMachineTags: the VM's tags in the hypervisor primitive (so
//! ListMachines filters on them in SQL), replaced whole on every change.

use serde_json::{Map, Value};
use tessera_sdk::Params;
use tessera_sdk::hypervisor as hv;

use crate::compute::{self, hv_error, object};
use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;
use crate::resources::machines::tag_value;

/// Request inputs that are protocol, not tags.
const NOT_TAGS: [&str; 2] = ["as-role", "role-tag"];

fn machine_id(p: &Params) -> &str {
    p.get("machine").unwrap_or_default()
}

fn given(ctx: &Ctx<'_>) -> ApiResult<Map<String, Value>> {
    let mut tags = Map::new();
    for (key, value) in ctx.inputs.all() {
        if NOT_TAGS.contains(&key.as_str()) || value.is_null() {
            continue;
        }
        tags.insert(key.clone(), tag_value(key, value)?);
    }
    Ok(tags)
}

fn store(ctx: &Ctx<'_>, id: &str, tags: Map<String, Value>) -> ApiResult<Map<String, Value>> {
    let text = Value::Object(tags).to_string();
    let vm = hv::set_vm_data(id, Some(&text), None, &compute::caller(ctx)).map_err(hv_error)?;
    Ok(object(&vm.tags))
}

pub fn list(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    Ok(Reply::ok(Value::Object(object(&vm.tags))))
}

pub fn add(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let mut tags = object(&vm.tags);
    tags.extend(given(ctx)?);
    Ok(Reply::ok(Value::Object(store(ctx, &vm.id, tags)?)))
}

pub fn replace(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let tags = given(ctx)?;
    Ok(Reply::ok(Value::Object(store(ctx, &vm.id, tags)?)))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let tag = p.get("tag").unwrap_or_default();
    let value = object(&vm.tags)
        .remove(tag)
        .ok_or_else(|| ApiError::not_found(format!("tag {tag} does not exist")))?;
    Ok(Reply::ok(value))
}

pub fn delete(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let tag = p.get("tag").unwrap_or_default();
    let mut tags = object(&vm.tags);
    if tags.remove(tag).is_none() {
        return Err(ApiError::not_found(format!("tag {tag} does not exist")));
    }
    store(ctx, &vm.id, tags)?;
    Ok(Reply::no_content())
}

pub fn delete_all(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    store(ctx, &vm.id, Map::new())?;
    Ok(Reply::no_content())
}
