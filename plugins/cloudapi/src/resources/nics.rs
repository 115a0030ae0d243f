//! ListNics, GetNic, AddNic, RemoveNic: a machine's NICs in the hypervisor primitive.
//! A NIC is named by its MAC, with or without colons (`90b8d0575370` is what the CLI
//! sends). Its state is the primitive's (`provisioning`, `running`, `stopped`).

use ipnet::IpNet;
use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::hypervisor::{self as hv, Nic, VmState};

use crate::compute::hv_error;
use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;
use crate::resources::networks::{self, Network};
use crate::vms;

/// The MAC's hex digits, lower case: what two spellings of one MAC share.
fn mac_digits(mac: &str) -> String {
    mac.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A NIC's state as the spec names it: it follows its machine (`provisioning`, `running`,
/// `stopped`); the primitive's own state when the machine is in none of those.
fn nic_state(nic: &Nic, machine: VmState) -> String {
    match machine {
        VmState::Provisioning => "provisioning".into(),
        VmState::Running | VmState::Rebooting | VmState::Stopping => "running".into(),
        VmState::Stopped | VmState::Starting => "stopped".into(),
        VmState::Deleted | VmState::Failed => nic.state.clone(),
    }
}

fn nic_json(nic: &Nic, network: Option<&Network>, machine: VmState) -> Value {
    let mut out = json!({
        "mac": nic.mac,
        "primary": nic.primary,
        "ip": nic.ip,
        "state": nic_state(nic, machine),
        "network": nic.network,
    });
    if let Some(network) = network {
        let shape = network.to_json();
        if let Some(IpNet::V4(net)) = shape["subnet"].as_str().and_then(|s| s.parse().ok()) {
            out["netmask"] = json!(net.netmask().to_string());
        }
        if let Some(gateway) = shape.get("gateway") {
            out["gateway"] = gateway.clone();
        }
        if let Some(resolvers) = shape.get("resolvers") {
            out["resolvers"] = resolvers.clone();
        }
    }
    out
}

fn render(ctx: &Ctx<'_>, nics: &[Nic], machine: VmState) -> ApiResult<Vec<Value>> {
    let all = networks::visible(ctx)?;
    Ok(nics
        .iter()
        .map(|nic| nic_json(nic, all.iter().find(|n| n.id() == nic.network), machine))
        .collect())
}

fn machine_id(p: &Params) -> &str {
    p.get("id").unwrap_or_default()
}

pub fn list(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = vms::owned(&ctx.account.id, ctx.login(), machine_id(p))?;
    Ok(Reply::ok(Value::Array(render(ctx, &vm.nics, vm.state)?)))
}

fn find<'a>(nics: &'a [Nic], mac: &str) -> ApiResult<&'a Nic> {
    let wanted = mac_digits(mac);
    nics.iter()
        .find(|n| wanted.len() == 12 && mac_digits(&n.mac) == wanted)
        .ok_or_else(|| ApiError::not_found(format!("NIC {mac} does not exist")))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = vms::owned(&ctx.account.id, ctx.login(), machine_id(p))?;
    let nic = find(&vm.nics, p.get("mac").unwrap_or_default())?;
    Ok(Reply::ok(
        render(ctx, std::slice::from_ref(nic), vm.state)?.remove(0),
    ))
}

/// `network` is a network id or name, or (newer clients) `{"ipv4_uuid": …,
/// "ipv4_ips": [one address]}`.
pub fn add(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = vms::owned(&ctx.account.id, ctx.login(), machine_id(p))?;
    let (asked, ip) = match ctx.inputs.raw("network") {
        None => return Err(ApiError::missing_parameter("network is required")),
        Some(Value::String(id)) => match serde_json::from_str::<Value>(id) {
            Ok(Value::Object(object)) => network_object(&object)?,
            _ => (id.clone(), None),
        },
        Some(Value::Object(object)) => network_object(object)?,
        Some(_) => {
            return Err(ApiError::invalid_argument(
                "network must be a network id or an object with ipv4_uuid",
            ));
        }
    };
    let network = networks::find(ctx, &asked)
        .map_err(|_| ApiError::invalid_argument(format!("network {asked} does not exist")))?;
    if ip.is_some() {
        check_address_choosable(&network)?;
    }
    let caller = crate::compute::caller(ctx);
    let nic = match &ip {
        Some(ip) => hv::add_nic_at(&vm.id, network.id(), ip, &caller),
        None => hv::add_nic(&vm.id, network.id(), &caller),
    }
    .map_err(address_error)?;
    let location = format!(
        "/{}/machines/{}/nics/{}",
        ctx.login(),
        vm.id,
        mac_digits(&nic.mac)
    );
    Ok(Reply::created(
        nic_json(&nic, Some(&network), vm.state),
        location,
    ))
}

/// A network object of CreateMachine's `networks` or AddNic's `network`:
/// `ipv4_uuid`, and optionally `ipv4_ips`, an array of the one address the
/// NIC is to have.
pub fn network_object(
    object: &serde_json::Map<String, Value>,
) -> ApiResult<(String, Option<String>)> {
    let id = object
        .get("ipv4_uuid")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| ApiError::invalid_argument("a network object needs ipv4_uuid"))?;
    let ip = match object.get("ipv4_ips") {
        None | Some(Value::Null) => None,
        Some(Value::Array(ips)) => match ips.as_slice() {
            [Value::String(ip)] => Some(ip.clone()),
            _ => {
                return Err(ApiError::invalid_argument(
                    "ipv4_ips must be an array of one IP address",
                ));
            }
        },
        Some(_) => {
            return Err(ApiError::invalid_argument(
                "ipv4_ips must be an array of one IP address",
            ));
        }
    };
    Ok((id, ip))
}

/// The spec: an address may be chosen on the account's own networks only,
/// not on a public one.
pub fn check_address_choosable(network: &networks::Network) -> ApiResult<()> {
    if network.public() {
        return Err(ApiError::invalid_argument(format!(
            "network {} is public: its addresses cannot be chosen (ipv4_ips)",
            network.id()
        )));
    }
    Ok(())
}

/// A chosen address that is taken or off the subnet is the client's mistake.
pub fn address_error(error: hv::HvError) -> ApiError {
    match error {
        hv::HvError::Conflict(why) if why.contains("in use") => ApiError::invalid_argument(why),
        other => hv_error(other),
    }
}

pub fn remove(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = vms::owned(&ctx.account.id, ctx.login(), machine_id(p))?;
    let nic = find(&vm.nics, p.get("mac").unwrap_or_default())?;
    hv::remove_nic(&vm.id, &nic.mac, &crate::compute::caller(ctx)).map_err(hv_error)?;
    Ok(Reply::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nic_s_state_follows_its_machine() {
        let nic = Nic {
            mac: "90:b8:d0:57:53:70".into(),
            network: "n".into(),
            ip: None,
            primary: true,
            state: "running".into(),
        };
        assert_eq!(nic_state(&nic, VmState::Stopped), "stopped");
        assert_eq!(nic_state(&nic, VmState::Starting), "stopped");
        assert_eq!(nic_state(&nic, VmState::Provisioning), "provisioning");
        assert_eq!(nic_state(&nic, VmState::Rebooting), "running");
    }

    #[test]
    fn macs_match_with_or_without_colons() {
        assert_eq!(mac_digits("90:B8:d0:57:53:70"), "90b8d0575370");
        assert_eq!(mac_digits("90b8d0575370"), "90b8d0575370");
    }
}
