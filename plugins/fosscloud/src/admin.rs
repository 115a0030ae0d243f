//! Admin routes (`/admin/...`, admin accounts only): pools and their VMs,
//! groups, FC4School mappings and peer addresses. Same envelope as the spec,
//! with this plugin's own codes 200101-500107.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::auth;
use tessera_sdk::hypervisor::{self as hv, HvError, VmAction};
use tessera_sdk::storage::{self, Filter};

use crate::Ctx;
use crate::errors::{ApiError, Reply, code};
use crate::login::Caller;
use crate::mac;
use crate::model::{
    GROUPS, Group, HOLDERS, MAPPINGS, Mapping, PEERS, POOL_VMS, POOLS, Peer, Pool, PoolKind, PoolVm,
};
use crate::pools::{self, ClaimFailure, Inventory};
use crate::settings::PoolSeed;

const MAX_NAME_CHARS: usize = 128;
const MAX_POOL_SIZE: u32 = 10_000;

fn admin(ctx: &Ctx) -> Result<Caller, ApiError> {
    let caller = ctx.login()?;
    if !caller.account.admin {
        return Err(ApiError::new(
            code::ADMIN_FORBIDDEN,
            "Only admin accounts may use the admin routes",
        ));
    }
    Ok(caller)
}

fn bad(dev: impl Into<String>) -> ApiError {
    ApiError::new(code::ADMIN_BAD_REQUEST, dev)
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(code::ADMIN_NOT_FOUND, format!("No such {what}"))
}

/// The JSON body; an empty body reads as `{}`.
fn body<T: DeserializeOwned>(ctx: &Ctx) -> Result<T, ApiError> {
    let bytes: &[u8] = if ctx.req.body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &ctx.req.body
    };
    serde_json::from_slice(bytes).map_err(|e| bad(format!("Invalid JSON body: {e}")))
}

fn param<'p>(params: &'p Params, name: &str) -> &'p str {
    params.get(name).unwrap_or_default()
}

/// A name used in a storage key: non-empty, bounded, no `/`.
fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(bad(format!(
            "{what} must be 1 to {MAX_NAME_CHARS} characters without '/'"
        )));
    }
    Ok(())
}

/// A pool from admin or seed input, checked; images must exist.
pub fn pool_from_input(
    input: &PoolSeed,
    id: String,
    inv: &mut Inventory,
) -> Result<Pool, ApiError> {
    check_name("id", &id)?;
    check_name("name", &input.name)?;
    let kind =
        PoolKind::parse(&input.kind).ok_or_else(|| bad("type must be dynamic or persistent"))?;
    let image = match &input.image {
        Some(reference) => Some(
            inv.image(reference)?
                .ok_or_else(|| bad(format!("No image {reference}")))?,
        ),
        None if kind == PoolKind::Dynamic => {
            return Err(bad("A dynamic pool needs an image (its golden image)"));
        }
        None => None,
    };
    let size = match kind {
        PoolKind::Dynamic => input
            .size
            .filter(|s| (1..=MAX_POOL_SIZE).contains(s))
            .ok_or_else(|| {
                bad(format!(
                    "A dynamic pool needs a size of 1 to {MAX_POOL_SIZE}"
                ))
            })?,
        PoolKind::Persistent => input.size.unwrap_or(0),
    };
    for user in &input.users {
        check_name("user", user.split('/').next_back().unwrap_or_default())?;
    }
    for group in &input.groups {
        check_name("group", group)?;
    }
    let default_disk = image.as_ref().map_or(10_240, |i| i.size_mib.max(1));
    Ok(Pool {
        id,
        name: input.name.trim().to_string(),
        kind,
        image: input.image.clone(),
        size,
        cpus: input.cpus.unwrap_or(1),
        ram_mib: input.ram_mib.unwrap_or(1024),
        disk_mib: input.disk_mib.unwrap_or(default_disk),
        subtype: input.subtype.clone().unwrap_or_else(|| "Desktop".into()),
        os: input.os.clone(),
        users: input.users.clone(),
        groups: input.groups.clone(),
    })
}

fn pool_json(pool: &Pool) -> Value {
    serde_json::to_value(pool).unwrap_or(Value::Null)
}

fn vm_json(inv: &mut Inventory, key: &str, record: &PoolVm) -> Result<Value, ApiError> {
    let state = inv.vm_of(record)?.map(|vm| pools::state_name(vm.state));
    Ok(json!({
        "key": key, "slot": record.slot, "uuid": record.vm, "state": state,
        "owner": record.owner, "holder": record.holder, "port": record.port,
    }))
}

pub fn list_pools(ctx: &Ctx, _: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let mut out = Vec::new();
    for pool in pools::all_pools()? {
        let records = pools::pool_vms(&pool.id)?;
        let held = records.iter().filter(|r| r.value.holder.is_some()).count();
        let mut value = pool_json(&pool);
        value["vms"] = json!(records.len());
        value["assigned"] = json!(held);
        out.push(value);
    }
    Ok(Reply::new(code::ADMIN_OK).with("pools", json!(out)))
}

pub fn create_pool(ctx: &Ctx, _: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let input: PoolSeed = body(ctx)?;
    if !input.vms.is_empty() {
        return Err(bad("Add vms with POST /admin/pools/<id>/vms"));
    }
    let id = input.id.clone().unwrap_or_else(pools::new_uuid);
    let mut inv = Inventory::new(&ctx.settings);
    let pool = pool_from_input(&input, id, &mut inv)?;
    match POOLS.insert(&pool.id, &pool) {
        Ok(_) => Ok(Reply::new(code::ADMIN_CREATED).with("pool", pool_json(&pool))),
        Err(storage::Error::Storage(storage::StorageError::AlreadyExists)) => Err(ApiError::new(
            code::ADMIN_CONFLICT,
            format!("A pool {} exists", pool.id),
        )),
        Err(e) => Err(e.into()),
    }
}

pub fn get_pool(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let pool = pools::get_pool(param(params, "pool"))?.ok_or_else(|| not_found("pool"))?;
    let mut inv = Inventory::new(&ctx.settings);
    let mut vms = Vec::new();
    for record in pools::pool_vms(&pool.id)? {
        vms.push(vm_json(&mut inv, &record.key, &record.value)?);
    }
    let mut value = pool_json(&pool);
    value["vms"] = json!(vms);
    Ok(Reply::new(code::ADMIN_OK).with("pool", value))
}

pub fn update_pool(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let id = param(params, "pool");
    let current = POOLS.get::<Pool>(id)?.ok_or_else(|| not_found("pool"))?;
    let input: PoolSeed = body(ctx)?;
    let mut inv = Inventory::new(&ctx.settings);
    let pool = pool_from_input(&input, id.to_string(), &mut inv)?;
    if pool.kind != current.value.kind && !pools::pool_vms(id)?.is_empty() {
        return Err(ApiError::new(
            code::ADMIN_CONFLICT,
            "The type of a pool with vms cannot change",
        ));
    }
    POOLS.put(id, &pool, Some(current.version)).map_err(|_| {
        ApiError::new(
            code::ADMIN_CONFLICT,
            "The pool changed meanwhile; try again",
        )
    })?;
    Ok(Reply::new(code::ADMIN_OK).with("pool", pool_json(&pool)))
}

pub fn delete_pool(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let id = param(params, "pool");
    if pools::get_pool(id)?.is_none() {
        return Err(not_found("pool"));
    }
    if !pools::pool_vms(id)?.is_empty() {
        return Err(ApiError::new(
            code::ADMIN_CONFLICT,
            "The pool still has vms; remove them first",
        ));
    }
    let mappings = MAPPINGS
        .query()
        .filter(Filter::eq("pool", id))
        .fetch::<Mapping>()?;
    let mut writes = vec![POOLS.delete_op(id, None)];
    writes.extend(
        mappings
            .items
            .iter()
            .map(|m| MAPPINGS.delete_op(&m.key, None)),
    );
    storage::batch(&writes).map_err(|e| ApiError::internal("deleting a pool failed", e))?;
    Ok(Reply::new(code::ADMIN_OK))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewPoolVm {
    /// Adopt this existing hypervisor VM instead of making one.
    vm: Option<String>,
    /// Persistent pools: the owning login.
    owner: Option<String>,
    /// Persistent pools: the new VM's name.
    name: Option<String>,
}

/// Adds a VM to a pool: a dynamic pool gets a free VM in its lowest open slot;
/// a persistent pool a VM owned by `owner`. With `vm`, an existing VM is adopted.
pub fn add_vm(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    let caller = admin(ctx)?;
    let pool = pools::get_pool(param(params, "pool"))?.ok_or_else(|| not_found("pool"))?;
    let input: NewPoolVm = body(ctx)?;
    let mut inv = Inventory::new(&ctx.settings);
    let (slot, version, owner) = match pool.kind {
        PoolKind::Dynamic => {
            let records = pools::pool_vms(&pool.id)?;
            let (slot, version) = inv
                .open_slot(&pool, &records)?
                .ok_or_else(|| ApiError::new(code::ADMIN_CONFLICT, "The pool is full"))?;
            (slot, version, None)
        }
        PoolKind::Persistent => {
            let owner = input
                .owner
                .clone()
                .ok_or_else(|| bad("A persistent pool's vm needs an owner"))?;
            if auth::get_account(&owner).ok().flatten().is_none() {
                return Err(bad(format!("No account {owner}")));
            }
            let n = storage::next_id(&format!("slot/{}", pool.id))?;
            (format!("vm-{n}"), None, Some(owner))
        }
    };
    let key = PoolVm::key(&pool.id, &slot);
    let reserved = PoolVm {
        pool: pool.id.clone(),
        slot: slot.clone(),
        vm: None,
        owner: owner.clone(),
        holder: None,
        port: None,
        sealed_password: None,
    };
    let written = match version {
        None => POOL_VMS.insert(&key, &reserved),
        Some(v) => POOL_VMS.put(&key, &reserved, Some(v)),
    }
    .map_err(|_| {
        ApiError::new(
            code::ADMIN_CONFLICT,
            "The slot was taken meanwhile; try again",
        )
    })?;
    let made = match &input.vm {
        Some(id) => adopt(id),
        None => {
            let name = match (&input.name, pool.kind) {
                (Some(name), _) => name.clone(),
                (None, PoolKind::Dynamic) => format!(
                    "{}-{slot}-{}",
                    pool.name,
                    pools::hex(&auth::random_bytes(2))
                ),
                (None, PoolKind::Persistent) => Err(bad("A new persistent vm needs a name"))?,
            };
            let hv_owner = owner
                .clone()
                .unwrap_or_else(|| format!("fosscloud:{}", pool.id));
            pools::provision(&mut inv, &pool, &name, &hv_owner, &caller.login).map_err(
                |f| match f {
                    ClaimFailure::Exhausted(why) => ApiError::new(code::ADMIN_HYPERVISOR, why),
                    ClaimFailure::Api(e) => e,
                },
            )
        }
    };
    let made = match made {
        Ok(made) => made,
        Err(e) => {
            let _ = POOL_VMS.delete(&key, Some(written.version));
            return Err(e);
        }
    };
    let record = PoolVm {
        vm: Some(made.vm.id.clone()),
        port: Some(made.port),
        sealed_password: Some(made.sealed_password),
        ..reserved
    };
    POOL_VMS.put(&key, &record, Some(written.version))?;
    let value = vm_json(&mut inv, &key, &record)?;
    Ok(Reply::new(code::ADMIN_CREATED).with("vm", value))
}

/// An existing hypervisor VM joins a pool, with a fresh display port and password.
fn adopt(id: &str) -> Result<pools::Made, ApiError> {
    let vm = hv::get_vm(id)?.ok_or_else(|| bad(format!("No vm {id}")))?;
    let taken = POOL_VMS
        .query()
        .filter(Filter::eq("vm", id))
        .limit(1)
        .fetch::<PoolVm>()?;
    if taken.total > 0 {
        return Err(ApiError::new(
            code::ADMIN_CONFLICT,
            format!("The vm {id} is in a pool already"),
        ));
    }
    pools::credentials_for(vm)
}

#[derive(Deserialize, Default)]
struct RemoveQuery {
    #[serde(default)]
    destroy: Option<String>,
}

/// Takes a VM out of its pool; `?destroy=true` also deletes it in the hypervisor.
pub fn remove_vm(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    let caller = admin(ctx)?;
    let key = PoolVm::key(param(params, "pool"), param(params, "slot"));
    let record = POOL_VMS
        .get::<PoolVm>(&key)?
        .ok_or_else(|| not_found("pool vm"))?;
    let query: RemoveQuery = ctx.req.query_as().unwrap_or_default();
    let destroy = matches!(query.destroy.as_deref(), Some("true" | "1" | "yes"));
    if destroy && let Some(id) = &record.value.vm {
        match hv::act(id, VmAction::Delete, &caller.login) {
            Ok(_) | Err(HvError::NotFound(_)) => {}
            Err(HvError::IllegalTransition(state)) if state == "deleted" => {}
            Err(e) => {
                return Err(ApiError::new(
                    code::ADMIN_HYPERVISOR,
                    format!("The hypervisor refused to delete the vm: {e:?}"),
                ));
            }
        }
    }
    let mut writes = vec![POOL_VMS.delete_op(&key, Some(record.version))];
    if let Some(holder) = &record.value.holder {
        writes.push(HOLDERS.delete_op(&holder.key(&record.value.pool), None));
    }
    storage::batch(&writes)
        .map_err(|_| ApiError::new(code::ADMIN_CONFLICT, "The vm changed meanwhile; try again"))?;
    Ok(Reply::new(code::ADMIN_OK))
}

/// Frees a dynamic VM from its holder.
pub fn release_vm(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let key = PoolVm::key(param(params, "pool"), param(params, "slot"));
    if !pools::release(&key)? {
        return Err(not_found("pool vm"));
    }
    Ok(Reply::new(code::ADMIN_OK))
}

pub fn list_groups(ctx: &Ctx, _: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let page = GROUPS.query().order_by("name", false).fetch::<Group>()?;
    let groups: Vec<Group> = page.items.into_iter().map(|g| g.value).collect();
    Ok(Reply::new(code::ADMIN_OK).with("groups", json!(groups)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GroupInput {
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    list_all: bool,
}

pub fn put_group(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let name = param(params, "name");
    check_name("group name", name)?;
    let input: GroupInput = body(ctx)?;
    let group = Group {
        name: name.to_string(),
        members: input.members,
        list_all: input.list_all,
    };
    GROUPS.put(name, &group, None)?;
    Ok(Reply::new(code::ADMIN_OK).with("group", json!(group)))
}

pub fn delete_group(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    if !GROUPS.delete(param(params, "name"), None)? {
        return Err(not_found("group"));
    }
    Ok(Reply::new(code::ADMIN_OK))
}

pub fn list_mappings(ctx: &Ctx, _: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let page = MAPPINGS.query().order_by("mac", false).fetch::<Mapping>()?;
    let mappings: Vec<Mapping> = page.items.into_iter().map(|m| m.value).collect();
    Ok(Reply::new(code::ADMIN_OK).with("mappings", json!(mappings)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MappingInput {
    /// Pin the mapping to this VM of the pool (its slot or hypervisor id).
    vm: Option<String>,
}

pub fn put_mapping(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let mac = mac::normalize(param(params, "mac")).ok_or_else(|| bad("Not a mac address"))?;
    let pool = pools::get_pool(param(params, "pool"))?
        .filter(|p| p.kind == PoolKind::Dynamic)
        .ok_or_else(|| not_found("dynamic pool"))?;
    let input: MappingInput = body(ctx)?;
    let vm_key = match &input.vm {
        None => None,
        Some(vm) => Some(
            pools::pool_vms(&pool.id)?
                .into_iter()
                .find(|r| r.value.slot == *vm || r.value.vm.as_deref() == Some(vm))
                .map(|r| r.key)
                .ok_or_else(|| bad(format!("The pool has no vm {vm}")))?,
        ),
    };
    let mapping = Mapping {
        mac: mac.clone(),
        pool: pool.id.clone(),
        vm_key,
    };
    MAPPINGS.put(&Mapping::key(&mac, &pool.id), &mapping, None)?;
    Ok(Reply::new(code::ADMIN_OK).with("mapping", json!(mapping)))
}

pub fn delete_mapping(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let mac = mac::normalize(param(params, "mac")).ok_or_else(|| bad("Not a mac address"))?;
    if !MAPPINGS.delete(&Mapping::key(&mac, param(params, "pool")), None)? {
        return Err(not_found("mapping"));
    }
    Ok(Reply::new(code::ADMIN_OK))
}

pub fn list_peers(ctx: &Ctx, _: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let page = PEERS.query().order_by("ip", false).fetch::<Peer>()?;
    let peers: Vec<Peer> = page.items.into_iter().map(|p| p.value).collect();
    Ok(Reply::new(code::ADMIN_OK).with("peers", json!(peers)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerInput {
    mac: String,
}

pub fn put_peer(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let ip = mac::normalize_ip(param(params, "ip")).ok_or_else(|| bad("Not an ip address"))?;
    let input: PeerInput = body(ctx)?;
    let mac = mac::normalize(&input.mac).ok_or_else(|| bad("Not a mac address"))?;
    let peer = Peer {
        ip: ip.clone(),
        mac,
    };
    PEERS.put(&ip, &peer, None)?;
    Ok(Reply::new(code::ADMIN_OK).with("peer", json!(peer)))
}

pub fn delete_peer(ctx: &Ctx, params: &Params) -> Result<Reply, ApiError> {
    admin(ctx)?;
    let ip = mac::normalize_ip(param(params, "ip")).ok_or_else(|| bad("Not an ip address"))?;
    if !PEERS.delete(&ip, None)? {
        return Err(not_found("peer"));
    }
    Ok(Reply::new(code::ADMIN_OK))
}
