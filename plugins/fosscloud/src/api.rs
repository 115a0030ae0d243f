//! The spec's core requests: login, realms, the VM list and the assignment
//! of a dynamic VM.

use std::collections::HashMap;

use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::auth;
use tessera_sdk::storage::Filter;

use crate::Ctx;
use crate::errors::{ApiError, Reply, code};
use crate::login::{self, Caller};
use crate::model::{Holder, POOL_VMS, Pool, PoolKind, PoolVm, VmEntry};
use crate::pools::{self, ClaimFailure, Inventory};

/// `/user/login`: the credentials are right.
pub fn user_login(ctx: &Ctx, _: &Params) -> Result<Reply, ApiError> {
    ctx.login()?;
    Ok(Reply::new(code::LOGIN_OK))
}

/// `/server/realms`: every realm of the identity store; no login needed.
pub fn server_realms(ctx: &Ctx, _: &Params) -> Result<Reply, ApiError> {
    let default = match &ctx.settings.default_realm {
        Some(realm) => Some(realm.clone()),
        None => login::store_default_realm()?,
    };
    let realms: Vec<Value> = auth::list_realms()?
        .into_iter()
        .map(|realm| {
            let display = if realm.description.is_empty() {
                realm.name.clone()
            } else {
                realm.description.clone()
            };
            json!({
                "uid": numeric_if_digits(&realm.name),
                "displayName": display,
                "default": Some(&realm.name) == default.as_ref(),
            })
        })
        .collect();
    Ok(Reply::new(code::REALMS_OK).with("realms", json!(realms)))
}

/// Upstream encodes with `JSON_NUMERIC_CHECK`: a realm id of digits is a number.
fn numeric_if_digits(text: &str) -> Value {
    match text.parse::<u64>() {
        Ok(n) if n.to_string() == text => json!(n),
        _ => json!(text),
    }
}

/// `/vm/list/(owner|dynamic|persistent|all)`.
pub fn vm_list(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    let caller = ctx.login()?;
    let mut inv = Inventory::new(&ctx.settings);
    let vms = match params.get("type").unwrap_or("owner") {
        "owner" => {
            let mut vms = dynamic_entries(&mut inv, &caller)?;
            vms.extend(persistent_entries(&mut inv, &caller)?);
            vms
        }
        "dynamic" => dynamic_entries(&mut inv, &caller)?,
        "persistent" => persistent_entries(&mut inv, &caller)?,
        "all" => {
            if !may_list_all(&caller)? {
                return Err(ApiError::new(
                    code::LIST_ALL_FORBIDDEN,
                    "The user doesn't have permission to list all vms (persistentVM.access = all)",
                ));
            }
            all_entries(&mut inv)?
        }
        _ => {
            return Err(ApiError::new(
                code::UNKNOWN_LIST_TYPE,
                "Unknown type - use nothing or owner (default), dynamic, persistent or all",
            ));
        }
    };
    let vms: Vec<Value> = vms.iter().map(VmEntry::to_json).collect();
    Ok(Reply::new(code::LIST_OK).with("vms", json!(vms)))
}

/// Admins, and members of a group with `listAll`, hold `persistentVM.access = all`.
fn may_list_all(caller: &Caller) -> Result<bool, ApiError> {
    Ok(caller.account.admin || pools::groups_of(&caller.login)?.iter().any(|g| g.list_all))
}

/// For each dynamic pool the caller may use: the VM it holds (`assigned`),
/// else an `assignable` entry while the pool has a VM to give.
fn dynamic_entries(inv: &mut Inventory, caller: &Caller) -> Result<Vec<VmEntry>, ApiError> {
    let groups = pools::groups_of(&caller.login)?;
    let mut entries = Vec::new();
    for pool in pools::all_pools()? {
        if pool.kind != PoolKind::Dynamic || !pools::may_use(&pool, &caller.login, &groups) {
            continue;
        }
        match pools::held(&pool.id, &Holder::user(&caller.login))? {
            Some(record) => {
                entries.push(inv.entry(&pool, &record, Some(&pool.name), Some("assigned"))?)
            }
            None if inv.has_room(&pool)? => entries.push(VmEntry::assignable(&pool)),
            None => {}
        }
    }
    Ok(entries)
}

/// The caller's own VMs of persistent pools, `online` or `offline`.
fn persistent_entries(inv: &mut Inventory, caller: &Caller) -> Result<Vec<VmEntry>, ApiError> {
    let owned = POOL_VMS
        .query()
        .filter(Filter::eq("owner", caller.login.as_str()))
        .order_by("_created", false)
        .fetch::<PoolVm>()?;
    let mut pools: HashMap<String, Option<Pool>> = HashMap::new();
    let mut entries = Vec::new();
    for record in owned.items {
        let record = record.value;
        if record.vm.is_none() {
            continue;
        }
        if !pools.contains_key(&record.pool) {
            pools.insert(record.pool.clone(), pools::get_pool(&record.pool)?);
        }
        if let Some(Some(pool)) = pools.get(&record.pool)
            && pool.kind == PoolKind::Persistent
        {
            entries.push(inv.entry(pool, &record, None, None)?);
        }
    }
    Ok(entries)
}

/// Every VM of every pool.
fn all_entries(inv: &mut Inventory) -> Result<Vec<VmEntry>, ApiError> {
    let mut entries = Vec::new();
    for pool in pools::all_pools()? {
        for record in pools::pool_vms(&pool.id)? {
            let record = record.value;
            if record.vm.is_none() {
                continue;
            }
            let status = match (pool.kind, &record.holder) {
                (PoolKind::Persistent, _) => None,
                (PoolKind::Dynamic, Some(_)) => Some("assigned"),
                (PoolKind::Dynamic, None) => Some("assignable"),
            };
            entries.push(inv.entry(&pool, &record, None, status)?);
        }
    }
    Ok(entries)
}

/// `/vm/assign/<pool>`: the caller gets a VM of the dynamic pool (the one it
/// already holds, a free one, or a new one while the pool has room).
pub fn vm_assign(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    let caller = ctx.login()?;
    let id = params.get("pool").unwrap_or_default();
    let groups = pools::groups_of(&caller.login)?;
    let pool = pools::get_pool(id)?
        .filter(|p| p.kind == PoolKind::Dynamic)
        .filter(|p| caller.account.admin || pools::may_use(p, &caller.login, &groups))
        .ok_or_else(|| ApiError::new(code::NO_SUCH_POOL, "VM pool not found"))?;
    let mut inv = Inventory::new(&ctx.settings);
    match pools::claim(&mut inv, &pool, &Holder::user(&caller.login), &caller.login) {
        Ok(assigned) => {
            let entry = inv.entry(&pool, &assigned.record, Some(&pool.name), Some("assigned"))?;
            Ok(Reply::new(code::ASSIGN_OK).with("vm", entry.to_json()))
        }
        Err(ClaimFailure::Exhausted(why)) => Err(ApiError::new(code::POOL_EXHAUSTED, why)),
        Err(ClaimFailure::Api(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_realm_ids_are_numbers_like_upstream() {
        assert_eq!(numeric_if_digits("4000020"), json!(4000020));
        assert_eq!(numeric_if_digits("default"), json!("default"));
        assert_eq!(numeric_if_digits("007"), json!("007"));
    }
}
