//! CreateMachineDisk, ResizeMachineDisk, GetMachineDisk, ListMachineDisks,
//! DeleteMachineDisk: the disks of a bhyve machine, on the hypervisor primitive (which
//! applies changes at once). Creating and resizing need a stopped machine, as the spec
//! says; disks sit on PCI functions `0:4:N` in order, boot disk first.

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

/// `size` in MiB (a positive number); "remaining" needs a flexible-disk package.
fn size_input(ctx: &Ctx<'_>) -> ApiResult<u64> {
    match ctx.inputs.raw("size") {
        None => Err(ApiError::missing_parameter(
            "Request is missing required parameter: size",
        )),
        Some(Value::String(s)) if s == "remaining" => Err(ApiError::invalid_argument(
            "size \"remaining\" needs a flexible-disk package",
        )),
        Some(_) => ctx
            .inputs
            .integer("size")?
            .filter(|s| *s > 0)
            .ok_or_else(|| ApiError::invalid_argument("size must be a positive number of MiB")),
    }
}

fn require_stopped(vm: &Vm) -> ApiResult<()> {
    if vm.state != hv::VmState::Stopped {
        return Err(compute::invalid_state(
            "disks are changed only while the instance is stopped",
        ));
    }
    Ok(())
}

/// Without `pci_slot`: 202 and no body (poll ListMachineDisks). With it — it must be the
/// next free slot — 200 with the disk and its `Location`.
pub fn create(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let size = size_input(ctx)?;
    let slot = ctx.inputs.string("pci_slot")?;
    let next = format!("0:4:{}", vm.disks.len());
    if let Some(slot) = &slot
        && *slot != next
    {
        return Err(ApiError::invalid_argument(format!(
            "pci_slot {slot} is not free; the next free slot is {next}"
        )));
    }
    require_stopped(&vm)?;
    let disk = hv::add_disk(&vm.id, size, &compute::caller(ctx)).map_err(hv_error)?;
    if slot.is_none() {
        return Ok(Reply {
            status: 202,
            body: None,
            headers: Vec::new(),
        });
    }
    let vm = compute::live_machine(ctx, &vm.id)?;
    let location = format!("/{}/machines/{}/disks/{}", ctx.login(), vm.id, disk.id);
    Ok(Reply::ok(disk_json(&disk, &vm)).with_header("location", location))
}

/// Answers the disk as it was, `state: resizing`, as the spec's asynchronous resize does.
pub fn resize(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, machine_id(p))?;
    let before = disk_of(&vm, p.get("disk").unwrap_or_default())?.clone();
    let size = size_input(ctx)?;
    let allow_shrink = ctx
        .inputs
        .boolean("dangerous_allow_shrink")?
        .unwrap_or(false);
    if size < before.size_mib && !allow_shrink {
        return Err(ApiError::invalid_argument(
            "shrinking a disk needs dangerous_allow_shrink=true",
        ));
    }
    require_stopped(&vm)?;
    hv::resize_disk(
        &vm.id,
        &before.id,
        size,
        allow_shrink,
        &compute::caller(ctx),
    )
    .map_err(hv_error)?;
    let mut body = disk_json(&before, &vm);
    body["state"] = Value::String("resizing".into());
    Ok(Reply::ok(body))
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
