//! What the machine, image, snapshot, disk, tag and metadata endpoints share: the
//! hypervisor primitive's errors as CloudAPI's, the audited caller, and looking up the
//! account's own machine.

use serde_json::{Value, json};
use tessera_sdk::hypervisor::{self as hv, HvError, Vm, VmState};

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::peer_ip;

/// The hypervisor's refusal as CloudAPI words it.
pub fn hv_error(error: HvError) -> ApiError {
    match error {
        HvError::NotFound(what) => ApiError::not_found(format!("{what} does not exist")),
        HvError::IllegalTransition(state) => invalid_state(format!(
            "the instance is {}; that is not allowed in this state",
            api_state(parse_state(&state))
        )),
        HvError::Capacity(why) => ApiError::new(
            503,
            "InsufficientCapacity",
            format!("there is not enough capacity in this datacenter: {why}"),
        ),
        HvError::Protected => ApiError::new(
            409,
            "CannotDestroyMachine",
            "Instance has \"deletion_protection\" enabled, preventing deletion",
        ),
        HvError::Invalid(why) => ApiError::invalid_argument(why),
        HvError::Conflict(why) if why.contains("under way") => {
            invalid_state(format!("another action is under way: {why}"))
        }
        HvError::Conflict(why) => ApiError::invalid_argument(why),
        HvError::Unsupported(u) => ApiError::new(501, "NotImplemented", u.message),
        HvError::Backend(why) => {
            tessera_sdk::error!("hypervisor: {why}");
            ApiError::internal("the hypervisor failed")
        }
    }
}

pub fn invalid_state(message: impl Into<String>) -> ApiError {
    ApiError::new(409, "InvalidState", message)
}

/// The audit trail's caller: CloudAPI's `{type, ip, keyId[, user]}`, as JSON text.
pub fn caller(ctx: &Ctx<'_>) -> String {
    let mut out = json!({"type": "signature", "ip": peer_ip(ctx.request)});
    if let Some(key_id) = key_id(ctx.request.header("authorization").unwrap_or("")) {
        out["keyId"] = json!(key_id);
    }
    if let Some(user) = &ctx.caller.user {
        out["user"] = json!(user.login);
    }
    out.to_string()
}

/// The `keyId="…"` of an `Authorization: Signature` header.
fn key_id(authorization: &str) -> Option<String> {
    let start = authorization.find("keyId=\"")? + "keyId=\"".len();
    let rest = &authorization[start..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The account's machine `id`, in any state; 404 for another account's or none.
pub fn machine(ctx: &Ctx<'_>, id: &str) -> ApiResult<Vm> {
    match hv::get_vm(id).map_err(hv_error)? {
        Some(vm) if vm.owner == ctx.account.id => Ok(vm),
        _ => Err(ApiError::not_found(format!("VM {id} does not exist"))),
    }
}

/// The account's machine, refusing a deleted one with 410 as CloudAPI does.
pub fn live_machine(ctx: &Ctx<'_>, id: &str) -> ApiResult<Vm> {
    let vm = machine(ctx, id)?;
    if vm.state == VmState::Deleted {
        return Err(ApiError::new(
            410,
            "ResourceGone",
            format!("VM {id} was deleted"),
        ));
    }
    Ok(vm)
}

/// A state as CloudAPI names it. Triton has no `starting`/`rebooting`: a VM starting
/// shows `stopped` until it runs, one rebooting shows `running`.
pub fn api_state(state: VmState) -> &'static str {
    match state {
        VmState::Provisioning => "provisioning",
        VmState::Running | VmState::Rebooting => "running",
        VmState::Stopped | VmState::Starting => "stopped",
        VmState::Stopping => "stopping",
        VmState::Deleted => "deleted",
        VmState::Failed => "failed",
    }
}

fn parse_state(text: &str) -> VmState {
    match text {
        "provisioning" => VmState::Provisioning,
        "running" => VmState::Running,
        "stopped" => VmState::Stopped,
        "stopping" => VmState::Stopping,
        "starting" => VmState::Starting,
        "rebooting" => VmState::Rebooting,
        "deleted" => VmState::Deleted,
        _ => VmState::Failed,
    }
}

/// The hypervisor state a CloudAPI state filter names.
pub fn state_filter(text: &str) -> ApiResult<VmState> {
    match text {
        "provisioning" => Ok(VmState::Provisioning),
        "running" => Ok(VmState::Running),
        "stopped" => Ok(VmState::Stopped),
        "stopping" => Ok(VmState::Stopping),
        "deleted" => Ok(VmState::Deleted),
        "failed" => Ok(VmState::Failed),
        other => Err(ApiError::invalid_argument(format!(
            "{other} is not a valid instance state"
        ))),
    }
}

/// A JSON object text from the hypervisor as a map (`{}` when unreadable).
pub fn object(text: &str) -> serde_json::Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_read_from_the_signature_header() {
        let header = r#"Signature keyId="/alice/keys/aa:bb",algorithm="rsa-sha256",signature="x""#;
        assert_eq!(key_id(header).as_deref(), Some("/alice/keys/aa:bb"));
        assert_eq!(key_id("Basic x"), None);
    }

    #[test]
    fn transitional_states_read_as_triton_shows_them() {
        assert_eq!(api_state(VmState::Starting), "stopped");
        assert_eq!(api_state(VmState::Rebooting), "running");
        assert_eq!(state_filter("running").unwrap(), VmState::Running);
        assert_eq!(state_filter("bogus").unwrap_err().status, 409);
        assert_eq!(
            hv_error(HvError::IllegalTransition("stopped".into())).code,
            "InvalidState"
        );
        assert_eq!(hv_error(HvError::Protected).code, "CannotDestroyMachine");
        assert_eq!(hv_error(HvError::Capacity("x".into())).status, 503);
    }
}
