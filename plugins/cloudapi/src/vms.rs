//! The hypervisor primitive's machines as networks, NICs, firewall rules, volumes and the
//! changefeed see them: an account's machines (owner = account id), the hypervisor's
//! errors in CloudAPI's envelope, and a machine in ListMachines' shape.

use serde_json::{Map, Value, json};
use tessera_sdk::hypervisor::{self as hv, HvError, Vm, VmFilter, VmState};

use crate::errors::{ApiError, ApiResult};
use crate::protocol::clock::iso8601;

pub fn hv_error(error: HvError) -> ApiError {
    match error {
        HvError::NotFound(what) => ApiError::not_found(format!("{what} does not exist")),
        HvError::IllegalTransition(state) => ApiError::new(
            409,
            "InvalidState",
            format!("the machine is {state}; the operation is not allowed"),
        ),
        HvError::Capacity(why) => ApiError::new(409, "InsufficientCapacity", why),
        HvError::Protected => ApiError::invalid_argument("the machine has deletion protection"),
        HvError::Invalid(why) => ApiError::invalid_argument(why),
        HvError::Conflict(why) => ApiError::in_use(why),
        HvError::Unsupported(u) => ApiError::new(501, "NotImplemented", u.message),
        HvError::Backend(why) => {
            tessera_sdk::error!("hypervisor: {why}");
            ApiError::internal("the hypervisor failed")
        }
    }
}

/// Whether a VM belongs to the account (by id; the login is accepted for VMs other
/// families created).
pub fn owned_by(vm: &Vm, account_id: &str, login: &str) -> bool {
    vm.owner == account_id || vm.owner == login
}

/// One of the account's machines, not deleted; 404 otherwise.
pub fn owned(account_id: &str, login: &str, id: &str) -> ApiResult<Vm> {
    let vm = hv::get_vm(id).map_err(hv_error)?;
    match vm {
        Some(vm) if owned_by(&vm, account_id, login) && vm.state != VmState::Deleted => Ok(vm),
        _ => Err(ApiError::not_found(format!("machine {id} does not exist"))),
    }
}

/// Every live machine of the account.
pub fn of_account(account_id: &str, login: &str) -> ApiResult<Vec<Vm>> {
    let mut out = Vec::new();
    for owner in [account_id, login] {
        let mut offset = 0;
        loop {
            let page = hv::list_vms(&VmFilter {
                owner: Some(owner.to_string()),
                state: None,
                name: None,
                image: None,
                node: None,
                tag: None,
                offset,
                limit: Some(1000),
            })
            .map_err(hv_error)?;
            let got = page.vms.len() as u64;
            out.extend(
                page.vms
                    .into_iter()
                    .filter(|vm| vm.state != VmState::Deleted),
            );
            offset += got;
            if got == 0 || offset >= page.total {
                break;
            }
        }
        if account_id == login {
            break;
        }
    }
    Ok(out)
}

/// Every live machine of the site (for who holds an address on a shared network).
pub fn all() -> ApiResult<Vec<Vm>> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = hv::list_vms(&VmFilter {
            owner: None,
            state: None,
            name: None,
            image: None,
            node: None,
            tag: None,
            offset,
            limit: Some(1000),
        })
        .map_err(hv_error)?;
        let got = page.vms.len() as u64;
        out.extend(
            page.vms
                .into_iter()
                .filter(|vm| vm.state != VmState::Deleted),
        );
        offset += got;
        if got == 0 || offset >= page.total {
            break;
        }
    }
    Ok(out)
}

pub fn json_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// CloudAPI's name for a primitive state.
pub fn state_name(state: VmState) -> &'static str {
    match state {
        VmState::Provisioning => "provisioning",
        VmState::Running => "running",
        VmState::Stopped => "stopped",
        VmState::Stopping => "stopping",
        VmState::Starting => "starting",
        VmState::Rebooting => "rebooting",
        VmState::Deleted => "deleted",
        VmState::Failed => "failed",
    }
}

/// A machine as ListMachines shows it (the fields the primitive knows).
pub fn machine_json(vm: &Vm) -> Value {
    let mut networks: Vec<&str> = Vec::new();
    for nic in &vm.nics {
        if !networks.contains(&nic.network.as_str()) {
            networks.push(&nic.network);
        }
    }
    let primary_ip = vm
        .nics
        .iter()
        .find(|n| n.primary)
        .and_then(|n| n.ip.clone())
        .or_else(|| vm.ips.first().cloned());
    let metadata = json_object(&vm.metadata);
    json!({
        "id": vm.id,
        "name": vm.name,
        "type": "virtualmachine",
        "brand": "kvm",
        "state": state_name(vm.state),
        "image": vm.image,
        "memory": vm.ram_mib,
        "disk": vm.disk_mib,
        "metadata": metadata,
        "tags": json_object(&vm.tags),
        "created": iso8601(vm.created),
        "updated": iso8601(vm.updated),
        "docker": false,
        "ips": vm.ips,
        "networks": networks,
        "primaryIp": primary_ip,
        "firewall_enabled": metadata.get("firewall_enabled").and_then(Value::as_bool).unwrap_or(false),
        "compute_node": vm.node,
        "package": "",
    })
}

/// Who the hypervisor's audit records as doing it: the signer's login.
pub fn caller(ctx: &crate::context::Ctx<'_>) -> String {
    ctx.caller
        .user
        .as_ref()
        .map(|u| u.login.clone())
        .unwrap_or_else(|| ctx.caller.account.login.clone())
}
