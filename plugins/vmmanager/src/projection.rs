//! The host projection follows the hypervisor: before hosts or disks are read, the VMs changed since the last look — by this plugin, the `tessera` CLI or another family — are written into the `host` and `disk` collections, in one batch with the cursor, so lists stay one indexed SQL query over storage.
//!
//! The hypervisor's change feed (`vm-changes-since`) answers from an index, so a
//! look when nothing changed costs one call. Who owns a VM made elsewhere: the
//! account whose login is the VM's hypervisor `owner` (admins see every host);
//! a VM whose owner is no account is seen by admins only.

use std::collections::HashMap;

use serde_json::{Value, json};
use tessera_sdk::auth;
use tessera_sdk::hypervisor::{self as hv, Vm, VmChange, VmState};
use tessera_sdk::storage::{self, Filter, StorageError, Write};

use crate::errors::{ApiError, ApiResult};
use crate::inventory::{self, by_hv_id, by_id};
use crate::meta;
use crate::model::collection::{CLUSTER, DISK, HOST, OS};
use crate::model::{self, HostContext, host_document, key, reference};
use crate::tasks;

/// Changes asked for at once.
const PAGE: u32 = 500;
/// Most changes one request applies before it answers: a fresh plugin on a
/// large site catches up over several requests instead of stalling one.
const MAX_PER_REQUEST: usize = 20_000;
/// Times a look starts over after another request moved the cursor first.
const MAX_RACES: u32 = 8;
/// The plugin's name in the hypervisor's `creator` field.
pub const CREATOR: &str = "vmmanager";

/// What this plugin writes into a VM's metadata (under `vmmanager`) when it
/// creates one, so the projection can be made from the VM alone.
pub mod marks {
    pub const KEY: &str = "vmmanager";
    pub const HOST: &str = "host";
    pub const CLUSTER: &str = "cluster";
    pub const DOMAIN: &str = "domain";
    pub const COMMENT: &str = "comment";
}

/// Brings `host` and `disk` up to date with every VM changed since the last look.
pub fn follow_hypervisor() -> ApiResult<()> {
    meta::ensure_schema()?;
    let mut applied = 0;
    let mut races = 0;
    let mut lookups = Lookups::default();
    loop {
        let (after, version) = meta::hv_cursor()?;
        let page = hv::vm_changes_since(after, PAGE)?;
        if page.changes.is_empty() {
            return Ok(());
        }
        let mut writes = Vec::new();
        for change in &page.changes {
            writes.extend(change_writes(change, &mut lookups)?);
        }
        writes.push(meta::hv_cursor_op(page.cursor, version)?);
        writes.push(meta::notify_op()?);
        match storage::batch(&writes) {
            Ok(_) => {}
            // Another request applied these changes first: look again from its cursor.
            Err(e) if is_race(&e.error) && races < MAX_RACES => {
                races += 1;
                continue;
            }
            Err(e) => return Err(ApiError::from(e.error)),
        }
        applied += page.changes.len();
        if !page.more || applied >= MAX_PER_REQUEST {
            return Ok(());
        }
    }
}

fn is_race(error: &StorageError) -> bool {
    matches!(
        error,
        StorageError::Conflict(_) | StorageError::AlreadyExists | StorageError::UniqueViolation(_)
    )
}

/// Accounts and images looked up once per look.
#[derive(Default)]
struct Lookups {
    accounts: HashMap<String, Value>,
    images_synced: bool,
}

impl Lookups {
    /// `{id, email}` of the account whose login is `owner`; nulls when none is.
    fn account(&mut self, owner: &str) -> ApiResult<Value> {
        if let Some(found) = self.accounts.get(owner) {
            return Ok(found.clone());
        }
        let account = match auth::get_account(owner) {
            Ok(Some(account)) => json!({ "id": account.id, "email": account.email }),
            Ok(None) | Err(auth::AuthError::Invalid(_) | auth::AuthError::NotFound(_)) => {
                json!({ "id": Value::Null, "email": Value::Null })
            }
            Err(other) => return Err(other.into()),
        };
        self.accounts.insert(owner.to_owned(), account.clone());
        Ok(account)
    }

    /// The `os` reference of image `hv_image`; null for an image gone since.
    fn os(&mut self, hv_image: &str) -> ApiResult<Value> {
        let mut found = by_hv_id(OS, hv_image)?;
        if found.is_none() && !self.images_synced {
            self.images_synced = true;
            inventory::sync_images()?;
            found = by_hv_id(OS, hv_image)?;
        }
        Ok(found.map_or(Value::Null, |os| {
            reference(
                os["id"].as_u64().unwrap_or(0),
                os["name"].as_str().unwrap_or(""),
            )
        }))
    }
}

/// The stored host of VM `hv_id`: its id, document and version.
fn stored_host(hv_id: &str) -> ApiResult<Option<(u64, storage::Versioned<Value>)>> {
    let page = HOST
        .query()
        .filter(Filter::eq("internal.hv_id", hv_id))
        .limit(1)
        .fetch::<Value>()?;
    Ok(page.items.into_iter().next().map(|item| {
        let id = item.value["id"].as_u64().unwrap_or(0);
        (id, item)
    }))
}

/// This plugin's marks in a VM it created; empty for any other VM (another
/// family may write metadata, so only our own VMs are trusted with them).
fn own_marks(vm: &Vm) -> Value {
    if vm.creator != CREATOR {
        return Value::Null;
    }
    serde_json::from_str::<Value>(&vm.metadata)
        .ok()
        .and_then(|m| m.get(marks::KEY).cloned())
        .unwrap_or(Value::Null)
}

/// Writes that make the projection of one changed VM match it.
fn change_writes(change: &VmChange, lookups: &mut Lookups) -> ApiResult<Vec<Write>> {
    let stored = stored_host(&change.id)?;
    let vm = match &change.vm {
        Some(vm) if vm.state != VmState::Deleted => vm,
        _ => {
            return match stored {
                Some((id, _)) => tasks::removal_writes(id),
                None => Ok(Vec::new()),
            };
        }
    };
    let marks = own_marks(vm);
    let old = stored.as_ref().map(|(_, item)| &item.value);
    let id = match &stored {
        Some((id, _)) => *id,
        None => match marks[marks::HOST].as_u64() {
            Some(id) if HOST.get::<Value>(&key(id))?.is_none() => id,
            _ => storage::next_id("host")?,
        },
    };
    let (node, node_cluster) = inventory::node_reference(vm.node.as_deref())?;
    // A host's cluster is its node's; without a node, what it was or was asked for.
    let cluster = match node_cluster.filter(|c| !c.is_null()) {
        Some(cluster) => cluster,
        None => match old.map(|o| &o["cluster"]).filter(|c| !c.is_null()) {
            Some(cluster) => cluster.clone(),
            None => cluster_reference(
                marks[marks::CLUSTER]
                    .as_u64()
                    .unwrap_or(inventory::DEFAULT_CLUSTER_ID),
            )?,
        },
    };
    let os = match old.map(|o| &o["os"]).filter(|o| !o.is_null()) {
        Some(os) => os.clone(),
        None => lookups.os(&vm.image)?,
    };
    let account = match old.map(|o| &o["account"]).filter(|a| !a["id"].is_null()) {
        Some(account) => account.clone(),
        None => lookups.account(&vm.owner)?,
    };
    let text = |field: &str| -> String {
        old.and_then(|o| o[field].as_str())
            .or_else(|| marks[field].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let context = HostContext {
        id,
        cluster,
        node,
        os,
        account,
        domain: text(marks::DOMAIN),
        comment: text(marks::COMMENT),
    };
    let document = host_document(vm, &context);
    let mut writes = disk_writes(&document, vm)?;
    match &stored {
        Some((_, item)) if item.value == document => {}
        Some((_, item)) => writes.push(HOST.put_op(&key(id), &document, Some(item.version))?),
        None => writes.push(HOST.insert_op(&key(id), &document)?),
    }
    Ok(writes)
}

fn cluster_reference(id: u64) -> ApiResult<Value> {
    let id = match by_id(CLUSTER, id)? {
        Some(_) => id,
        None => inventory::DEFAULT_CLUSTER_ID,
    };
    let name = by_id(CLUSTER, id)?
        .and_then(|c| c["name"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(reference(id, &name))
}

/// Writes that make the `disk` objects of a host match the VM's disks.
fn disk_writes(host: &Value, vm: &Vm) -> ApiResult<Vec<Write>> {
    let host_id = host["id"].as_u64().unwrap_or(0);
    let existing = DISK
        .query()
        .filter(Filter::eq("host.id", host_id))
        .limit(64)
        .fetch::<Value>()?;
    let mut writes = Vec::new();
    for (index, disk) in vm.disks.iter().enumerate() {
        let known = existing
            .items
            .iter()
            .find(|d| model::internal(&d.value, "hv_id") == Some(disk.id.as_str()));
        let id = match known {
            Some(d) => d.value["id"].as_u64().unwrap_or(0),
            None => storage::next_id("disk")?,
        };
        let document = json!({
            "id": id,
            "name": format!("{}_disk{}", vm.name, index + 1),
            "size_mib": disk.size_mib,
            "boot": disk.boot,
            "host": { "id": host_id, "name": vm.name },
            "internal": { "hv_id": disk.id, "account": host["account"]["id"] },
        });
        match known {
            Some(d) if d.value == document => {}
            Some(d) => writes.push(DISK.put_op(&key(id), &document, Some(d.version))?),
            None => writes.push(DISK.insert_op(&key(id), &document)?),
        }
    }
    for gone in existing.items.iter().filter(|d| {
        let hv_id = model::internal(&d.value, "hv_id");
        !vm.disks.iter().any(|disk| Some(disk.id.as_str()) == hv_id)
    }) {
        writes.push(DISK.delete_op(&gone.key, Some(gone.version)));
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(creator: &str, metadata: &str) -> Vm {
        Vm {
            id: "v".into(),
            name: "n".into(),
            owner: "o".into(),
            node: None,
            image: "i".into(),
            cpus: 1,
            ram_mib: 512,
            disk_mib: 1024,
            state: VmState::Running,
            ips: Vec::new(),
            nics: Vec::new(),
            disks: Vec::new(),
            tags: "{}".into(),
            metadata: metadata.into(),
            deletion_protection: false,
            created: 0,
            updated: 0,
            creator: creator.into(),
        }
    }

    #[test]
    fn only_this_plugins_own_vms_are_trusted_with_its_marks() {
        let metadata = r#"{"vmmanager": {"host": 7, "cluster": 2}}"#;
        assert_eq!(own_marks(&vm(CREATOR, metadata))[marks::HOST], 7);
        // Another family may write any metadata: it must not pick a host id or cluster.
        assert!(own_marks(&vm("cloudapi", metadata)).is_null());
        assert!(own_marks(&vm(CREATOR, "not json")).is_null());
        assert!(own_marks(&vm(CREATOR, "{}")).is_null());
    }
}
