//! Seeds pools, groups, FC4School mappings and peers from the site config.
//! The seed tables are applied when their hash changes (the first request
//! after a start with new settings); seeded rows are upserted, and admin-made
//! rows the config does not name stay.

use serde::{Deserialize, Serialize};
use tessera_sdk::auth;
use tessera_sdk::storage::{self, StorageError};

use crate::admin::pool_from_input;
use crate::errors::{ApiError, code};
use crate::mac;
use crate::model::{
    GROUPS, Group, MAPPINGS, META, Mapping, PEERS, POOL_VMS, POOLS, Peer, Pool, PoolKind, PoolVm,
};
use crate::pools::{self, ClaimFailure, Inventory};
use crate::settings::{PoolSeed, Settings};

const SEED_KEY: &str = "seed";
/// Who the hypervisor's audit trail names for seeded VMs.
const SEED_CALLER: &str = "fosscloud:seed";

#[derive(Serialize, Deserialize)]
struct SeedMark {
    hash: String,
}

/// Applies the config's seeds unless this exact set was applied already.
pub fn ensure(settings: &Settings) -> Result<(), ApiError> {
    let hash = pools::hex(&auth::sha256(settings.seeds().to_string().as_bytes()));
    let mark = META.get::<SeedMark>(SEED_KEY)?;
    if mark.as_ref().is_some_and(|m| m.value.hash == hash) {
        return Ok(());
    }
    ensure_indexes()?;
    apply(settings).map_err(|why| {
        ApiError::new(
            code::INTERNAL,
            format!("The fosscloud settings cannot be applied: {why}"),
        )
    })?;
    let version = mark.map_or(0, |m| m.version);
    match META.put(SEED_KEY, &SeedMark { hash }, Some(version)) {
        // Another request applied the same seeds at the same time.
        Ok(_) | Err(storage::Error::Storage(StorageError::Conflict(_))) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn ensure_indexes() -> Result<(), ApiError> {
    POOL_VMS.ensure_index("pool_vms_pool", &["pool"], false)?;
    POOL_VMS.ensure_index("pool_vms_owner", &["owner"], false)?;
    MAPPINGS.ensure_index("mappings_mac", &["mac"], false)?;
    Ok(())
}

fn apply(settings: &Settings) -> Result<(), String> {
    for group in &settings.groups {
        let stored = Group {
            name: group.name.clone(),
            members: group.members.clone(),
            list_all: group.list_all,
        };
        GROUPS
            .put(&group.name, &stored, None)
            .map_err(|e| e.to_string())?;
    }
    let mut inv = Inventory::new(settings);
    let mut seeded = Vec::new();
    for seed in &settings.pools {
        let id = seed
            .id
            .clone()
            .unwrap_or_else(|| pools::uuid_from_name(&seed.name));
        let pool = pool_from_input(seed, id, &mut inv)
            .map_err(|e| format!("pool {}: {}", seed.name, e.dev))?;
        POOLS
            .put(&pool.id, &pool, None)
            .map_err(|e| e.to_string())?;
        seed_vms(&mut inv, &pool, seed)?;
        seeded.push(pool);
    }
    for mapping in &settings.mappings {
        let mac = mac::normalize(&mapping.mac)
            .ok_or_else(|| format!("mapping {}: not a mac address", mapping.mac))?;
        let pool = seeded
            .iter()
            .find(|p| p.id == mapping.pool || p.name == mapping.pool)
            .map(|p| p.id.clone())
            .or_else(|| {
                pools::get_pool(&mapping.pool)
                    .ok()
                    .flatten()
                    .map(|p: Pool| p.id)
            })
            .ok_or_else(|| format!("mapping {}: no pool {}", mapping.mac, mapping.pool))?;
        let stored = Mapping {
            mac: mac.clone(),
            pool: pool.clone(),
            vm_key: None,
        };
        // An existing mapping keeps the VM it is pinned to.
        match MAPPINGS.insert(&Mapping::key(&mac, &pool), &stored) {
            Ok(_) | Err(storage::Error::Storage(StorageError::AlreadyExists)) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    for peer in &settings.peers {
        let ip =
            mac::normalize_ip(&peer.ip).ok_or_else(|| format!("peer {}: not an ip", peer.ip))?;
        let mac = mac::normalize(&peer.mac)
            .ok_or_else(|| format!("peer {}: {} is not a mac address", peer.ip, peer.mac))?;
        PEERS
            .put(
                &ip,
                &Peer {
                    ip: ip.clone(),
                    mac,
                },
                None,
            )
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A persistent pool's seeded VMs, each made once (its key is claimed first,
/// so two requests seeding at once make it once).
fn seed_vms(inv: &mut Inventory, pool: &Pool, seed: &PoolSeed) -> Result<(), String> {
    if seed.vms.is_empty() {
        return Ok(());
    }
    if pool.kind != PoolKind::Persistent {
        return Err(format!(
            "pool {}: only persistent pools list vms",
            pool.name
        ));
    }
    for vm in &seed.vms {
        let slot = format!("seed-{}", vm.name);
        let key = PoolVm::key(&pool.id, &slot);
        let reserved = PoolVm {
            pool: pool.id.clone(),
            slot: slot.clone(),
            vm: None,
            owner: Some(vm.owner.clone()),
            holder: None,
            port: None,
            sealed_password: None,
        };
        let doc = match POOL_VMS.insert(&key, &reserved) {
            Ok(doc) => doc,
            Err(storage::Error::Storage(StorageError::AlreadyExists)) => continue,
            Err(e) => return Err(e.to_string()),
        };
        match pools::provision(inv, pool, &vm.name, &vm.owner, SEED_CALLER) {
            Ok(made) => {
                let record = PoolVm {
                    vm: Some(made.vm.id),
                    port: Some(made.port),
                    sealed_password: Some(made.sealed_password),
                    ..reserved
                };
                POOL_VMS
                    .put(&key, &record, Some(doc.version))
                    .map_err(|e| e.to_string())?;
            }
            Err(failure) => {
                let _ = POOL_VMS.delete(&key, Some(doc.version));
                return Err(match failure {
                    ClaimFailure::Exhausted(why) => format!("vm {}: {why}", vm.name),
                    ClaimFailure::Api(e) => format!("vm {}: {}", vm.name, e.dev),
                });
            }
        }
    }
    Ok(())
}
