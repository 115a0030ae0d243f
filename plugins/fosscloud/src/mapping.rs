//! FC4School: thin clients known by their MAC address get the dynamic VM
//! mapped to them, through the shared `dynvmuser` login. The MAC is the path
//! parameter (only with `macByParameter`), else the one the peer table gives
//! for the request's remote address (upstream asks ARP; a sandbox has none).

use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::storage::Filter;

use crate::Ctx;
use crate::errors::{ApiError, Reply, code};
use crate::login::Caller;
use crate::mac;
use crate::model::{Holder, MAPPINGS, Mapping, PEERS, Peer, Pool, PoolKind, VmEntry};
use crate::pools::{self, ClaimFailure, Inventory, Pinned};

/// The codes one FC4School request answers with.
struct Codes {
    no_module: u32,
    mac_param_off: u32,
    mac_param_off_dev: &'static str,
    not_dynvmuser: u32,
}

const LIST: Codes = Codes {
    no_module: code::MAPPING_LIST_NO_MODULE,
    mac_param_off: code::MAPPING_LIST_MAC_PARAM_OFF,
    mac_param_off_dev: "MacByParameter is disabled in config",
    not_dynvmuser: code::MAPPING_LIST_NOT_DYNVMUSER,
};

const ASSIGN: Codes = Codes {
    no_module: code::MAPPING_ASSIGN_NO_MODULE,
    mac_param_off: code::MAPPING_ASSIGN_MAC_PARAM_OFF,
    mac_param_off_dev: "MacByParameter is disabled in config",
    not_dynvmuser: code::MAPPING_ASSIGN_NOT_DYNVMUSER,
};

/// Login, module, MAC parameter and dynvmuser checks shared by both
/// requests, in upstream's order; returns the caller and the MAC path parameter.
fn preflight<'p>(
    ctx: &Ctx,
    params: &'p Params,
    codes: &Codes,
) -> Result<(Caller, Option<&'p str>), ApiError> {
    let caller = ctx.login()?;
    if !ctx.settings.fc4school {
        return Err(ApiError::new(
            codes.no_module,
            "The school module isn't available",
        ));
    }
    let mac_param = params.get("mac");
    if mac_param.is_some() && !ctx.settings.mac_by_parameter {
        return Err(ApiError::new(codes.mac_param_off, codes.mac_param_off_dev));
    }
    if caller.login != ctx.settings.dyn_vm_user {
        return Err(ApiError::new(
            codes.not_dynvmuser,
            "You've to authenticate with the dynvmuser",
        ));
    }
    Ok((caller, mac_param))
}

/// The MAC of the request: the parameter, else the peer table's entry for the remote address.
fn resolve_mac(ctx: &Ctx, param: Option<&str>, unknown: u32) -> Result<String, ApiError> {
    let unknown = |dev: &str| ApiError::new(unknown, dev);
    if let Some(text) = param {
        return mac::normalize(text).ok_or_else(|| unknown("Invalid mac address"));
    }
    let ip = mac::peer_ip(&ctx.req.peer)
        .ok_or_else(|| unknown("Cannot determine the mac address of the remote host"))?;
    match PEERS.get::<Peer>(&ip)? {
        Some(peer) => Ok(peer.value.mac),
        None => Err(unknown(
            "Invalid mac address or not connected locally (no mac known for this address)",
        )),
    }
}

fn holder(ctx: &Ctx, mac: &str) -> Holder {
    Holder {
        login: ctx.settings.dyn_vm_user.clone(),
        mac: Some(mac.to_string()),
    }
}

fn dynamic_pool(id: &str) -> Result<Option<Pool>, ApiError> {
    Ok(pools::get_pool(id)?.filter(|p| p.kind == PoolKind::Dynamic))
}

/// `/vm/mapping/list/(MAC)`: the VMs mapped to the MAC, `assigned` when the
/// MAC holds one, else `assignable`.
pub fn list(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    let (_caller, param) = preflight(ctx, params, &LIST)?;
    let mac = resolve_mac(ctx, param, code::MAPPING_LIST_UNKNOWN_MAC)?;
    let mappings = MAPPINGS
        .query()
        .filter(Filter::eq("mac", mac.as_str()))
        .order_by("_created", false)
        .fetch::<Mapping>()?;
    if mappings.items.is_empty() {
        return Err(ApiError::new(
            code::MAPPING_LIST_UNKNOWN_MAC,
            "Unknown mac address",
        ));
    }
    let holder = holder(ctx, &mac);
    let mut inv = Inventory::new(&ctx.settings);
    let mut entries: Vec<Value> = Vec::new();
    for mapping in mappings.items {
        let Some(pool) = dynamic_pool(&mapping.value.pool)? else {
            continue;
        };
        if let Some(record) = pools::held(&pool.id, &holder)? {
            let entry = inv.entry(&pool, &record, Some(&pool.name), Some("assigned"))?;
            entries.push(entry.to_json());
        } else if mapped_vm_available(&mut inv, &pool, &mapping.value)? {
            entries.push(VmEntry::assignable(&pool).to_json());
        }
    }
    let Some(first) = entries.first().cloned() else {
        return Err(ApiError::new(
            code::MAPPING_LIST_NO_VM,
            "There's no vm for this mac available",
        ));
    };
    // The spec says "same as /vm/list" (`vms`); upstream answers `vm`: serve both.
    Ok(Reply::new(code::MAPPING_LIST_OK)
        .with("vm", first)
        .with("vms", json!(entries)))
}

/// Whether the mapping's VM (or, unpinned, any VM of its pool) can be assigned.
fn mapped_vm_available(
    inv: &mut Inventory,
    pool: &Pool,
    mapping: &Mapping,
) -> Result<bool, ApiError> {
    if let Some(key) = &mapping.vm_key
        && let Some(record) = crate::model::POOL_VMS.get::<crate::model::PoolVm>(key)?
    {
        let record = record.value;
        return Ok(record.holder.is_none() && !pools::is_dead(inv.vm_of(&record)?.as_ref()));
    }
    inv.has_room(pool)
}

/// `/vm/mapping/assign/<pool>/(MAC)`: the dynvmuser gets the VM mapped to the
/// MAC in the pool (pinned to the MAC from then on).
pub fn assign(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    let (caller, param) = preflight(ctx, params, &ASSIGN)?;
    let pool = dynamic_pool(params.get("pool").unwrap_or_default())?
        .ok_or_else(|| ApiError::new(code::MAPPING_ASSIGN_BAD_POOL, "This pool isn't valid"))?;
    let mac = resolve_mac(ctx, param, code::MAPPING_ASSIGN_NO_VM)?;
    let no_vm = || {
        ApiError::new(
            code::MAPPING_ASSIGN_NO_VM,
            "There's no vm for this mac available",
        )
    };
    let key = Mapping::key(&mac, &pool.id);
    let mapping = MAPPINGS.get::<Mapping>(&key)?.ok_or_else(no_vm)?;
    let holder = holder(ctx, &mac);
    if pools::held(&pool.id, &holder)?.is_some() {
        return Err(already_assigned());
    }
    let mut inv = Inventory::new(&ctx.settings);
    let pinned = match &mapping.value.vm_key {
        Some(vm_key) => pools::claim_pinned(&mut inv, vm_key, &holder, &caller.login)?,
        None => Pinned::Gone,
    };
    let record = match pinned {
        Pinned::Claimed(record) => record,
        Pinned::Yours => return Err(already_assigned()),
        Pinned::Unavailable => return Err(no_vm()),
        Pinned::Gone => {
            let assigned = match pools::claim(&mut inv, &pool, &holder, &caller.login) {
                Ok(assigned) if assigned.fresh => assigned,
                Ok(_) => return Err(already_assigned()),
                Err(ClaimFailure::Exhausted(why)) => {
                    return Err(ApiError::new(code::MAPPING_ASSIGN_NO_VM, why));
                }
                Err(ClaimFailure::Api(e)) => return Err(e),
            };
            pin(&key, mapping.version, &mapping.value, &assigned.record);
            assigned.record
        }
    };
    let entry = inv.entry(&pool, &record, Some(&pool.name), Some("assigned"))?;
    Ok(Reply::new(code::MAPPING_ASSIGN_OK).with("vm", entry.to_json()))
}

fn already_assigned() -> ApiError {
    ApiError::new(
        code::MAPPING_ASSIGN_ALREADY,
        "The user is already assigned to this mapped vm",
    )
}

/// Pins the VM just claimed to the mapping, so the MAC gets it again later.
fn pin(key: &str, version: u64, mapping: &Mapping, record: &crate::model::PoolVm) {
    let pinned = Mapping {
        vm_key: Some(crate::model::PoolVm::key(&record.pool, &record.slot)),
        ..mapping.clone()
    };
    if let Err(e) = MAPPINGS.put(key, &pinned, Some(version)) {
        tessera_sdk::warn!("could not pin mapping {key}: {e}");
    }
}
