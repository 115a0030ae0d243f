//! VM pools: who may use which pool, the VMs of a pool, and the atomic claim
//! of a dynamic VM (an existing free one, or one made through the hypervisor
//! while the pool has room).
//!
//! A claim is one storage batch: the pool VM's document is written from the
//! version that showed it free, and the holder's key (`POOL/LOGIN`) is
//! inserted. Two requests racing for one VM cannot both pass the version
//! check, and one user cannot hold two VMs of a pool; the loser looks again.

use std::collections::HashMap;

use tessera_sdk::auth;
use tessera_sdk::hypervisor::{self as hv, HvError, Image, Node, Vm, VmAction, VmSpec, VmState};
use tessera_sdk::storage::{self, Filter, StorageError, Versioned};

use crate::errors::{ApiError, code};
use crate::model::{Claim, GROUPS, Group, HOLDERS, Holder, POOL_VMS, POOLS, Pool, PoolVm, VmEntry};
use crate::settings::Settings;

/// How often a claim is retried when other requests keep winning.
const CLAIM_ATTEMPTS: usize = 16;
/// First SPICE/VNC port of a node; the first VM gets 5901.
const SPICE_BASE_PORT: u64 = 5900;
const PASSWORD_LEN: usize = 12;

pub fn get_pool(id: &str) -> Result<Option<Pool>, ApiError> {
    Ok(POOLS.get::<Pool>(id)?.map(|p| p.value))
}

pub fn all_pools() -> Result<Vec<Pool>, ApiError> {
    let page = POOLS.query().order_by("name", false).fetch::<Pool>()?;
    Ok(page.items.into_iter().map(|p| p.value).collect())
}

pub fn groups_of(login: &str) -> Result<Vec<Group>, ApiError> {
    let page = GROUPS.query().fetch::<Group>()?;
    Ok(page
        .items
        .into_iter()
        .map(|g| g.value)
        .filter(|g| g.members.iter().any(|m| m == login))
        .collect())
}

/// Whether `login` (member of `groups`) may use `pool`.
pub fn may_use(pool: &Pool, login: &str, groups: &[Group]) -> bool {
    pool.users.iter().any(|u| u == login) || groups.iter().any(|g| pool.groups.contains(&g.name))
}

pub fn pool_vms(pool: &str) -> Result<Vec<Versioned<PoolVm>>, ApiError> {
    let page = POOL_VMS
        .query()
        .filter(Filter::eq("pool", pool))
        .order_by("_created", false)
        .fetch::<PoolVm>()?;
    Ok(page.items)
}

/// A VM that no longer serves anyone: gone, deleted or failed.
pub fn is_dead(vm: Option<&Vm>) -> bool {
    vm.is_none_or(|vm| matches!(vm.state, VmState::Deleted | VmState::Failed))
}

/// How long a slot may stay reserved without a VM before it counts as
/// orphaned: far beyond any request's time budget, so only a request that
/// died between reserving and `create-vm` leaves one.
const ORPHAN_AFTER_MS: u64 = 60_000;

/// A reservation whose creating request is long over.
fn is_orphan(record: &Versioned<PoolVm>, now: u64) -> bool {
    record.value.vm.is_none() && now.saturating_sub(record.updated) > ORPHAN_AFTER_MS
}

/// Milliseconds since the Unix epoch (0 if the clock is unavailable, which
/// makes nothing look orphaned).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The hypervisor's name of a VM state.
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

/// The hypervisor's view of the pool VMs a request touches, fetched once each.
pub struct Inventory<'a> {
    settings: &'a Settings,
    nodes: Option<Vec<Node>>,
    images: Option<Vec<Image>>,
    vms: HashMap<String, Option<Vm>>,
}

impl<'a> Inventory<'a> {
    pub fn new(settings: &'a Settings) -> Self {
        Inventory {
            settings,
            nodes: None,
            images: None,
            vms: HashMap::new(),
        }
    }

    pub fn vm(&mut self, id: &str) -> Result<Option<Vm>, ApiError> {
        if let Some(vm) = self.vms.get(id) {
            return Ok(vm.clone());
        }
        let vm = hv::get_vm(id)?;
        self.vms.insert(id.to_string(), vm.clone());
        Ok(vm)
    }

    /// The VM behind a pool VM document (`None` while it is being made or once gone).
    pub fn vm_of(&mut self, record: &PoolVm) -> Result<Option<Vm>, ApiError> {
        match &record.vm {
            Some(id) => self.vm(id),
            None => Ok(None),
        }
    }

    fn forget(&mut self, id: &str) {
        self.vms.remove(id);
    }

    fn node_name(&mut self, id: &str) -> Result<String, ApiError> {
        if self.nodes.is_none() {
            self.nodes = Some(hv::list_nodes()?);
        }
        let nodes = self.nodes.as_deref().unwrap_or_default();
        Ok(nodes
            .iter()
            .find(|n| n.id == id)
            .map_or_else(|| id.to_string(), |n| n.name.clone()))
    }

    fn images(&mut self) -> Result<&[Image], ApiError> {
        if self.images.is_none() {
            self.images = Some(hv::list_images()?);
        }
        Ok(self.images.as_deref().unwrap_or_default())
    }

    /// An image by id, else the newest active image of that name.
    pub fn image(&mut self, reference: &str) -> Result<Option<Image>, ApiError> {
        let images = self.images()?;
        if let Some(image) = images.iter().find(|i| i.id == reference) {
            return Ok(Some(image.clone()));
        }
        Ok(images
            .iter()
            .filter(|i| i.name == reference && i.state == "active")
            .max_by_key(|i| i.created)
            .cloned())
    }

    /// The spec's fields of one pool VM.
    pub fn entry(
        &mut self,
        pool: &Pool,
        record: &PoolVm,
        name: Option<&str>,
        status: Option<&str>,
    ) -> Result<VmEntry, ApiError> {
        let vm = self.vm_of(record)?;
        let node = match vm.as_ref().and_then(|vm| vm.node.clone()) {
            Some(id) => Some(self.node_name(&id)?),
            None => None,
        };
        let ip = node
            .as_ref()
            .map(|n| self.settings.spice_addresses.get(n).unwrap_or(n).clone());
        let os = match (&pool.os, &vm) {
            (Some(os), _) => Some(os.clone()),
            (None, Some(vm)) => self
                .images()?
                .iter()
                .find(|i| i.id == vm.image)
                .map(|i| i.os.clone()),
            (None, None) => None,
        };
        let status = match status {
            Some(status) => status.to_string(),
            None if vm.as_ref().is_some_and(|vm| vm.state == VmState::Running) => "online".into(),
            None => "offline".into(),
        };
        let name = match (name, &vm) {
            (Some(name), _) => name.to_string(),
            (None, Some(vm)) => vm.name.clone(),
            (None, None) => pool.name.clone(),
        };
        Ok(VmEntry {
            uuid: record.vm.clone(),
            name,
            ip,
            node,
            port: record.port,
            password: record.sealed_password.as_deref().and_then(unseal_password),
            status,
            kind: pool.kind.as_str(),
            subtype: Some(pool.subtype.clone()),
            os,
            pool: pool.id.clone(),
        })
    }

    /// Whether a dynamic pool could hand out a VM now: one is free, or a slot is open.
    pub fn has_room(&mut self, pool: &Pool) -> Result<bool, ApiError> {
        let records = pool_vms(&pool.id)?;
        for record in &records {
            if record.value.holder.is_none() && !is_dead(self.vm_of(&record.value)?.as_ref()) {
                return Ok(true);
            }
        }
        Ok(self.open_slot(pool, &records)?.is_some())
    }

    /// The lowest slot (1..=size) that is unused, or whose VM died and nobody holds.
    pub fn open_slot(
        &mut self,
        pool: &Pool,
        records: &[Versioned<PoolVm>],
    ) -> Result<Option<(String, Option<u64>)>, ApiError> {
        for slot in 1..=pool.size {
            let slot = slot.to_string();
            match records.iter().find(|r| r.value.slot == slot) {
                None => return Ok(Some((slot, None))),
                Some(r)
                    if r.value.holder.is_none()
                        && r.value.vm.is_some()
                        && is_dead(self.vm_of(&r.value)?.as_ref()) =>
                {
                    return Ok(Some((slot, Some(r.version))));
                }
                Some(r) if is_orphan(r, now_ms()) => return Ok(Some((slot, Some(r.version)))),
                Some(_) => {}
            }
        }
        Ok(None)
    }
}

fn unseal_password(sealed: &str) -> Option<String> {
    match auth::unseal_text(sealed) {
        Ok(password) => Some(password),
        Err(e) => {
            tessera_sdk::error!("cannot unseal a VM password: {e:?}");
            None
        }
    }
}

/// What a claim found.
pub struct Assigned {
    pub record: PoolVm,
    /// False when the holder already had this VM.
    pub fresh: bool,
}

/// Why a claim gave nothing.
pub enum ClaimFailure {
    /// No free VM and no room (or the hypervisor could not make one).
    Exhausted(String),
    Api(ApiError),
}

impl From<ApiError> for ClaimFailure {
    fn from(e: ApiError) -> Self {
        ClaimFailure::Api(e)
    }
}

impl From<storage::Error> for ClaimFailure {
    fn from(e: storage::Error) -> Self {
        ClaimFailure::Api(e.into())
    }
}

/// The VM `holder` has in `pool`, if any.
pub fn held(pool: &str, holder: &Holder) -> Result<Option<PoolVm>, ApiError> {
    let key = holder.key(pool);
    let Some(claim) = HOLDERS.get::<Claim>(&key)? else {
        return Ok(None);
    };
    match POOL_VMS.get::<PoolVm>(&claim.value.vm_key)? {
        Some(record)
            if record.value.holder.as_ref() == Some(holder) && is_orphan(&record, now_ms()) =>
        {
            // The request that reserved it died before the VM was made: give the slot back.
            let undo = [
                POOL_VMS.delete_op(&record.key, Some(record.version)),
                HOLDERS.delete_op(&key, Some(claim.version)),
            ];
            if let Err(e) = storage::batch(&undo) {
                tessera_sdk::warn!("could not drop orphaned reservation {}: {e:?}", record.key);
            }
            Ok(None)
        }
        Some(record) if record.value.holder.as_ref() == Some(holder) => Ok(Some(record.value)),
        _ => {
            // The VM was removed by an admin: the claim no longer holds anything.
            HOLDERS.delete(&key, Some(claim.version))?;
            Ok(None)
        }
    }
}

/// Gives `holder` a VM of the dynamic `pool`: the one it holds, else a free
/// one, else a new one while the pool has room. `caller` is audited by the
/// hypervisor.
pub fn claim(
    inv: &mut Inventory,
    pool: &Pool,
    holder: &Holder,
    caller: &str,
) -> Result<Assigned, ClaimFailure> {
    let holder_key = holder.key(&pool.id);
    for _ in 0..CLAIM_ATTEMPTS {
        if let Some(record) = held(&pool.id, holder)? {
            return Ok(Assigned {
                record,
                fresh: false,
            });
        }
        let records = pool_vms(&pool.id)?;
        let mut lost_race = false;
        for candidate in &records {
            if candidate.value.holder.is_some() || is_dead(inv.vm_of(&candidate.value)?.as_ref()) {
                continue;
            }
            let mut record = candidate.value.clone();
            record.holder = Some(holder.clone());
            let claim = Claim {
                vm_key: candidate.key.clone(),
            };
            let writes = [
                POOL_VMS.put_op(&candidate.key, &record, Some(candidate.version))?,
                HOLDERS.insert_op(&holder_key, &claim)?,
            ];
            match storage::batch(&writes) {
                Ok(_) => {
                    start_if_stopped(inv, &record, caller);
                    return Ok(Assigned {
                        record,
                        fresh: true,
                    });
                }
                Err(e) if is_race(&e.error) => {
                    lost_race = true;
                    break;
                }
                Err(e) => return Err(ApiError::internal("claim failed", e).into()),
            }
        }
        if lost_race {
            continue;
        }
        let Some((slot, version)) = inv.open_slot(pool, &records)? else {
            return Err(ClaimFailure::Exhausted("No free vm available".into()));
        };
        match reserve_and_make(inv, pool, &slot, version, holder, caller)? {
            Some(record) => {
                return Ok(Assigned {
                    record,
                    fresh: true,
                });
            }
            None => continue,
        }
    }
    Err(ClaimFailure::Exhausted(
        "No free vm available (the pool is too contended; try again)".into(),
    ))
}

/// What claiming one given pool VM (an FC4School mapping's) found.
pub enum Pinned {
    Claimed(PoolVm),
    /// The holder already has it.
    Yours,
    /// Someone else holds it, or it died.
    Unavailable,
    /// No such pool VM any more.
    Gone,
}

/// Gives `holder` the pool VM under `key`, if it is free and alive.
pub fn claim_pinned(
    inv: &mut Inventory,
    key: &str,
    holder: &Holder,
    caller: &str,
) -> Result<Pinned, ApiError> {
    for _ in 0..CLAIM_ATTEMPTS {
        let Some(record) = POOL_VMS.get::<PoolVm>(key)? else {
            return Ok(Pinned::Gone);
        };
        match &record.value.holder {
            Some(h) if h == holder => return Ok(Pinned::Yours),
            Some(_) => return Ok(Pinned::Unavailable),
            None => {}
        }
        if is_dead(inv.vm_of(&record.value)?.as_ref()) {
            return Ok(Pinned::Unavailable);
        }
        let mut updated = record.value.clone();
        updated.holder = Some(holder.clone());
        let claim = Claim {
            vm_key: key.to_string(),
        };
        let writes = [
            POOL_VMS.put_op(key, &updated, Some(record.version))?,
            HOLDERS.insert_op(&holder.key(&updated.pool), &claim)?,
        ];
        match storage::batch(&writes) {
            Ok(_) => {
                start_if_stopped(inv, &updated, caller);
                return Ok(Pinned::Claimed(updated));
            }
            Err(e) if is_race(&e.error) => continue,
            Err(e) => return Err(ApiError::internal("claim failed", e)),
        }
    }
    Ok(Pinned::Unavailable)
}

fn is_race(error: &StorageError) -> bool {
    matches!(
        error,
        StorageError::Conflict(_) | StorageError::AlreadyExists | StorageError::UniqueViolation(_)
    )
}

/// Reserves `slot` for `holder` (one batch with the holder's key), then makes
/// its VM. `None` when another request took the slot or the holder's key first.
fn reserve_and_make(
    inv: &mut Inventory,
    pool: &Pool,
    slot: &str,
    version: Option<u64>,
    holder: &Holder,
    caller: &str,
) -> Result<Option<PoolVm>, ClaimFailure> {
    let key = PoolVm::key(&pool.id, slot);
    let reserved = PoolVm {
        pool: pool.id.clone(),
        slot: slot.to_string(),
        vm: None,
        owner: None,
        holder: Some(holder.clone()),
        port: None,
        sealed_password: None,
    };
    let reserve = match version {
        None => POOL_VMS.insert_op(&key, &reserved)?,
        Some(v) => POOL_VMS.put_op(&key, &reserved, Some(v))?,
    };
    let holder_key = holder.key(&pool.id);
    let claim = HOLDERS.insert_op(
        &holder_key,
        &Claim {
            vm_key: key.clone(),
        },
    )?;
    let written = match storage::batch(&[reserve, claim]) {
        Ok(docs) => docs,
        Err(e) if is_race(&e.error) => return Ok(None),
        Err(e) => return Err(ApiError::internal("reserving a slot failed", e).into()),
    };
    let reserved_version = written
        .first()
        .and_then(|d| d.as_ref())
        .map_or(1, |d| d.version);
    let owner = format!("fosscloud:{}", pool.id);
    // The random tail keeps names unique when a dead slot is refilled.
    let name = format!("{}-{slot}-{}", pool.name, hex(&auth::random_bytes(2)));
    match provision(inv, pool, &name, &owner, caller) {
        Ok(made) => {
            let record = PoolVm {
                vm: Some(made.vm.id.clone()),
                port: Some(made.port),
                sealed_password: Some(made.sealed_password),
                ..reserved
            };
            POOL_VMS.put(&key, &record, Some(reserved_version))?;
            inv.vms.insert(made.vm.id.clone(), Some(made.vm));
            Ok(Some(record))
        }
        Err(reason) => {
            // Give the slot back so the next request can try again.
            let undo = [
                POOL_VMS.delete_op(&key, Some(reserved_version)),
                HOLDERS.delete_op(&holder_key, None),
            ];
            if let Err(e) = storage::batch(&undo) {
                tessera_sdk::error!("could not release slot {key}: {e:?}");
            }
            Err(reason)
        }
    }
}

/// A VM made for a pool, with its display port and sealed password.
pub struct Made {
    pub vm: Vm,
    pub port: u32,
    pub sealed_password: String,
}

/// Makes a VM named `name` for `pool` through the hypervisor.
pub fn provision(
    inv: &mut Inventory,
    pool: &Pool,
    name: &str,
    owner: &str,
    caller: &str,
) -> Result<Made, ClaimFailure> {
    let reference = pool
        .image
        .as_deref()
        .ok_or_else(|| ClaimFailure::Exhausted("The pool has no golden image".into()))?;
    let image = inv.image(reference)?.ok_or_else(|| {
        ClaimFailure::Exhausted(format!(
            "The pool's golden image {reference} does not exist"
        ))
    })?;
    let spec = VmSpec {
        name: name.to_string(),
        owner: owner.to_string(),
        image: image.id,
        cpus: pool.cpus,
        ram_mib: pool.ram_mib,
        disk_mib: pool.disk_mib,
        networks: Vec::new(),
        tags: serde_json::json!({ "fosscloud-pool": pool.id }).to_string(),
        metadata: "{}".into(),
        deletion_protection: false,
        data_disks: Vec::new(),
    };
    let (vm, _job) = hv::create_vm(&spec, caller).map_err(|e| match e {
        HvError::Capacity(m) => ClaimFailure::Exhausted(format!("No free vm available: {m}")),
        HvError::Invalid(m) | HvError::Conflict(m) | HvError::NotFound(m) => {
            ClaimFailure::Exhausted(format!("The pool cannot make a vm: {m}"))
        }
        other => ClaimFailure::Api(other.into()),
    })?;
    credentials_for(vm).map_err(ClaimFailure::Api)
}

/// A display port on the VM's node and a fresh sealed password for it.
pub fn credentials_for(vm: Vm) -> Result<Made, ApiError> {
    let node = vm.node.clone().unwrap_or_default();
    let port = display_port(storage::next_id(&format!("spice-port/{node}"))?);
    let sealed_password = auth::seal_text(&new_password());
    Ok(Made {
        vm,
        port,
        sealed_password,
    })
}

/// Ports 5901.. per node, wrapping before 65535.
fn display_port(n: u64) -> u32 {
    let span = 65_535 - SPICE_BASE_PORT;
    (SPICE_BASE_PORT + 1 + (n.saturating_sub(1) % span)) as u32
}

/// A VM that was stopped is started for its new holder (best effort).
fn start_if_stopped(inv: &mut Inventory, record: &PoolVm, caller: &str) {
    let Some(id) = &record.vm else { return };
    if let Ok(Some(vm)) = inv.vm(id)
        && vm.state == VmState::Stopped
    {
        if let Err(e) = hv::act(id, VmAction::Start, caller) {
            tessera_sdk::warn!("could not start assigned vm {id}: {e:?}");
        }
        inv.forget(id);
    }
}

/// Gives a held dynamic VM back to its pool.
pub fn release(key: &str) -> Result<bool, ApiError> {
    let Some(record) = POOL_VMS.get::<PoolVm>(key)? else {
        return Ok(false);
    };
    let Some(holder) = record.value.holder.clone() else {
        return Ok(true);
    };
    let freed = PoolVm {
        holder: None,
        ..record.value.clone()
    };
    let writes = [
        POOL_VMS.put_op(key, &freed, Some(record.version))?,
        HOLDERS.delete_op(&holder.key(&record.value.pool), None),
    ];
    storage::batch(&writes).map_err(|e| {
        ApiError::new(
            code::ADMIN_CONFLICT,
            format!("the vm changed meanwhile; try again ({:?})", e.error),
        )
    })?;
    Ok(true)
}

/// A SPICE/VNC password: 12 characters of `[A-Za-z0-9]` with at least one
/// letter (upstream's JSON encoder would turn an all-digit one into a number).
pub fn new_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    loop {
        let mut out = String::with_capacity(PASSWORD_LEN);
        while out.len() < PASSWORD_LEN {
            for byte in auth::random_bytes(32) {
                // Rejection sampling keeps the characters uniform.
                if byte < 248 && out.len() < PASSWORD_LEN {
                    out.push(ALPHABET[(byte % 62) as usize] as char);
                }
            }
        }
        if out.chars().any(|c| c.is_ascii_alphabetic()) {
            return out;
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A v4 UUID from the kernel's random source.
pub fn new_uuid() -> String {
    tessera_sdk::ids::new_uuid()
}

/// A stable UUID-shaped id derived from a name (for pools seeded without an id).
pub fn uuid_from_name(name: &str) -> String {
    let mut b = auth::sha256(format!("fosscloud-pool:{name}").as_bytes());
    b.truncate(16);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(&b)
}

fn uuid_text(b: &[u8]) -> String {
    let h = hex(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PoolKind;

    #[test]
    fn display_ports_start_at_5901_and_stay_in_range() {
        assert_eq!(display_port(1), 5901);
        assert_eq!(display_port(2), 5902);
        assert!(display_port(u64::MAX) <= 65_535);
        assert_eq!(display_port(65_535 - 5900 + 1), 5901);
    }

    #[test]
    fn only_old_reservations_without_a_vm_are_orphans() {
        let record = |vm: Option<&str>, updated: u64| Versioned {
            key: "p/1".into(),
            version: 1,
            value: PoolVm {
                pool: "p".into(),
                slot: "1".into(),
                vm: vm.map(str::to_string),
                owner: None,
                holder: Some(Holder::user("alice")),
                port: None,
                sealed_password: None,
            },
            created: updated,
            updated,
        };
        let now = 1_000_000;
        assert!(is_orphan(&record(None, now - 60_001), now));
        assert!(!is_orphan(&record(None, now - 1_000), now));
        assert!(!is_orphan(&record(Some("vm"), now - 600_000), now));
        assert!(
            !is_orphan(&record(None, now), 0),
            "no clock: nothing is orphaned"
        );
    }

    #[test]
    fn uuid_text_has_the_canonical_shape() {
        let text = uuid_text(&[0xab; 16]);
        assert_eq!(text, "abababab-abab-abab-abab-abababababab");
    }

    #[test]
    fn pool_use_is_by_login_or_group() {
        let pool = Pool {
            id: "p".into(),
            name: "P".into(),
            kind: PoolKind::Dynamic,
            image: None,
            size: 1,
            cpus: 1,
            ram_mib: 1,
            disk_mib: 1,
            subtype: "Desktop".into(),
            os: None,
            users: vec!["alice".into()],
            groups: vec!["students".into()],
        };
        let students = Group {
            name: "students".into(),
            members: vec!["bob".into()],
            list_all: false,
        };
        assert!(may_use(&pool, "alice", &[]));
        assert!(may_use(&pool, "bob", std::slice::from_ref(&students)));
        assert!(!may_use(&pool, "carol", &[]));
    }
}
