//! The hypervisor primitive's machines as networks, NICs, firewall rules and volumes
//! look them up: an account's machines (owner = account id) and every live machine.
//! Errors and rendering are part 2's (`compute::hv_error`, `machines::machine_json`).

use serde_json::{Map, Value};
use tessera_sdk::hypervisor::{self as hv, Vm, VmFilter, VmState};

use crate::compute::hv_error;
use crate::errors::{ApiError, ApiResult};

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
    let mut out = live(Some(account_id))?;
    if account_id != login {
        out.extend(live(Some(login))?);
    }
    Ok(out)
}

/// Every live machine of the site (for who holds an address on a shared network).
pub fn all() -> ApiResult<Vec<Vm>> {
    live(None)
}

/// Every machine not deleted, of `owner` or of everyone, a page of 1000 at a time.
fn live(owner: Option<&str>) -> ApiResult<Vec<Vm>> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = hv::list_vms(&VmFilter {
            owner: owner.map(str::to_string),
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
