//! CreateMachineDisk, GetMachineDisk, ListMachineDisks, DeleteMachineDisk: the extra
//! disks of a bhyve machine, on the hypervisor primitive (which applies them at once).
//! ResizeMachineDisk is not served: the primitive cannot grow a disk yet.

use serde_json::Value;
use tessera_sdk::Params;
use tessera_sdk::hypervisor::{self as hv, Vm};

use crate::compute::{self, hv_error};
use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;
use crate::resources::machines::disk_json;

fn machine_id(p: &Params) -> &str {
    p.get("machine").unwrap_or_default()
}

fn disk_of<'v>(vm: &'v Vm, id: &str) -> ApiResult<&'v hv::Disk> {
    vm.disks
        .iter()
        .find(|d| d.id == id)
        .ok_or_else(|| ApiError::not_found(format!("disk {id} does not exist")))
}

pub fn list(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    Ok(Reply::ok(Value::Array(
        vm.disks.iter().map(|d| disk_json(d, &vm)).collect(),
    )))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let disk = disk_of(&vm, p.get("disk").unwrap_or_default())?;
    Ok(Reply::ok(disk_json(disk, &vm)))
}

pub fn create(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let size = match ctx.inputs.raw("size") {
        None => {
            return Err(ApiError::missing_parameter(
                "Request is missing required parameter: size",
            ));
        }
        Some(Value::String(s)) if s == "remaining" => {
            return Err(ApiError::invalid_argument(
                "size \"remaining\" needs a flexible-disk package",
            ));
        }
        Some(_) => ctx
            .inputs
            .integer("size")?
            .filter(|s| *s > 0)
            .ok_or_else(|| ApiError::invalid_argument("size must be a positive number of MiB"))?,
    };
    let disk = hv::add_disk(&vm.id, size, &compute::caller(ctx)).map_err(hv_error)?;
    let vm = compute::live_machine(ctx, &vm.id)?;
    Ok(Reply::created(
        disk_json(&disk, &vm),
        format!("/{}/machines/{}/disks/{}", ctx.login(), vm.id, disk.id),
    ))
}

pub fn delete(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let disk = disk_of(&vm, p.get("disk").unwrap_or_default())?;
    if disk.boot {
        return Err(ApiError::invalid_argument(
            "the boot disk cannot be deleted",
        ));
    }
    hv::remove_disk(&vm.id, &disk.id, &compute::caller(ctx)).map_err(hv_error)?;
    Ok(Reply::no_content())
}
