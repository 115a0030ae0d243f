//! The `sim` hypervisor backend: a deterministic simulated site whose whole inventory lives in `hv_` tables of the site database.
//!
//! Nothing runs: a VM is a row, a transition is a pending audit row, and node
//! capacity is the sum of the sizes of the node's VMs that are not `deleted`. Every
//! change runs in one `BEGIN IMMEDIATE` transaction, so placement, address and MAC
//! allocation stay right with several kernels on one database. Determinism: seeded
//! rows have ids derived from their names, placement picks the node with the most
//! free RAM (then by name), addresses are the lowest free host of the subnet, MACs
//! count up from `52:54:00:00:00:01`. VM, disk and transition ids are random UUIDs.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use rusqlite::types::{Type, Value};
use rusqlite::{Connection, OptionalExtension, Params, Row, params, params_from_iter};
use serde_json::json;
use uuid::Uuid;

use super::api::{
    AuditEntry, CREATE, Disk, HvError, HypervisorBackend, Image, ImageChanges, MAX_DEVICES,
    Network, NewImage, NewNetwork, NewPackage, Nic, NicAddress, Node, Operation, Package,
    Placement, Rule, SETTLED, STOPPED_JOB, Size, Snapshot, Transition, Vm, VmAction, VmChange,
    VmChanges, VmFilter, VmPage, VmQuery, VmSpec, VmState, split_tag,
};
use super::config::{ImageSeed, NetworkSeed, NodeSeed, SimSettings};
use crate::db::Database;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hv_nodes (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE,
    cpus INTEGER NOT NULL, ram_mib INTEGER NOT NULL, disk_mib INTEGER NOT NULL,
    state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hv_images (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    version TEXT NOT NULL, os TEXT NOT NULL, image_type TEXT NOT NULL,
    size_mib INTEGER NOT NULL, state TEXT NOT NULL, owner TEXT, public INTEGER NOT NULL,
    extra TEXT NOT NULL, created INTEGER NOT NULL);
-- Name and version are unique per owner: a clone keeps both under its new owner.
CREATE UNIQUE INDEX IF NOT EXISTS hv_images_owner_name_version
    ON hv_images (ifnull(owner, ''), name, version);
CREATE TABLE IF NOT EXISTS hv_networks (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE,
    vlan INTEGER, subnet TEXT NOT NULL, gateway TEXT, public INTEGER NOT NULL, owner TEXT);
CREATE TABLE IF NOT EXISTS hv_vms (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    owner TEXT NOT NULL, node TEXT REFERENCES hv_nodes (id), image TEXT NOT NULL,
    cpus INTEGER NOT NULL, ram_mib INTEGER NOT NULL, disk_mib INTEGER NOT NULL,
    state TEXT NOT NULL, tags TEXT NOT NULL, metadata TEXT NOT NULL,
    deletion_protection INTEGER NOT NULL, created INTEGER NOT NULL,
    updated INTEGER NOT NULL, creator TEXT NOT NULL,
    -- The id of the transition under way, if any.
    pending TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS hv_vms_owner_name ON hv_vms (owner, name)
    WHERE state <> 'deleted';
CREATE INDEX IF NOT EXISTS hv_vms_node ON hv_vms (node, state);
-- Spreading counts an owner's live VMs per node from this index alone.
CREATE INDEX IF NOT EXISTS hv_vms_owner_node ON hv_vms (owner, node) WHERE state <> 'deleted';
CREATE TABLE IF NOT EXISTS hv_disks (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
    vm TEXT NOT NULL REFERENCES hv_vms (id), size_mib INTEGER NOT NULL,
    boot INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS hv_disks_vm ON hv_disks (vm);
CREATE TABLE IF NOT EXISTS hv_snapshots (
    seq INTEGER PRIMARY KEY, vm TEXT NOT NULL REFERENCES hv_vms (id),
    name TEXT NOT NULL, state TEXT NOT NULL, created INTEGER NOT NULL,
    UNIQUE (vm, name));
CREATE TABLE IF NOT EXISTS hv_nics (
    seq INTEGER PRIMARY KEY, mac TEXT NOT NULL UNIQUE,
    vm TEXT NOT NULL REFERENCES hv_vms (id),
    network TEXT NOT NULL REFERENCES hv_networks (id), ip TEXT,
    is_primary INTEGER NOT NULL, state TEXT NOT NULL, UNIQUE (network, ip));
CREATE INDEX IF NOT EXISTS hv_nics_vm ON hv_nics (vm);
CREATE TABLE IF NOT EXISTS hv_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS hv_audit (
    seq INTEGER PRIMARY KEY, vm TEXT NOT NULL REFERENCES hv_vms (id),
    action TEXT NOT NULL, caller TEXT NOT NULL, time INTEGER NOT NULL,
    -- NULL while the transition is pending, then 1 or 0.
    success INTEGER, parameters TEXT NOT NULL,
    transition TEXT UNIQUE, target_state TEXT);
CREATE INDEX IF NOT EXISTS hv_audit_vm ON hv_audit (vm, seq);
CREATE TABLE IF NOT EXISTS hv_packages (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE,
    cpus INTEGER NOT NULL, ram_mib INTEGER NOT NULL, disk_mib INTEGER NOT NULL,
    swap_mib INTEGER, lwps INTEGER, is_default INTEGER NOT NULL, created INTEGER NOT NULL);
-- The networks create_network made: their provision range, resolvers and routes.
CREATE TABLE IF NOT EXISTS hv_network_plans (
    network TEXT PRIMARY KEY REFERENCES hv_networks (id), provision_start TEXT,
    provision_end TEXT, resolvers TEXT NOT NULL, routes TEXT NOT NULL);
-- Addresses no new NIC is given.
CREATE TABLE IF NOT EXISTS hv_reserved_ips (
    network TEXT NOT NULL REFERENCES hv_networks (id), ip TEXT NOT NULL,
    holder TEXT NOT NULL, PRIMARY KEY (network, ip));
-- A package's descriptive fields; a table of its own so older sites gain it.
CREATE TABLE IF NOT EXISTS hv_package_info (
    package TEXT PRIMARY KEY, version TEXT, grp TEXT, description TEXT);
";

/// The change feed behind `vm_changes_since`: triggers give a VM the next
/// revision whenever its row, a disk or a NIC of it is written, whoever writes
/// (this backend, `qemu` on the same inventory, a second kernel on the same
/// database). VMs that existed before the feed get revision 1 (once: the
/// counter's row says the feed exists).
const CHANGE_FEED_TABLES: &str = "
CREATE TABLE IF NOT EXISTS hv_vm_changes (vm TEXT PRIMARY KEY, rev INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS hv_vm_changes_rev ON hv_vm_changes (rev);
INSERT OR IGNORE INTO hv_vm_changes (vm, rev) SELECT id, 1 FROM hv_vms
    WHERE NOT EXISTS (SELECT 1 FROM hv_counters WHERE name = 'vm_rev');
INSERT OR IGNORE INTO hv_counters (name, value) VALUES ('vm_rev', 1);
";

/// The feed's tables plus one trigger per write (insert, update, delete) on
/// each table that makes up a VM, named `hv_<table>_rev_<write>`.
fn change_feed() -> String {
    let mut sql = CHANGE_FEED_TABLES.to_string();
    for (table, vm) in [("vms", "id"), ("disks", "vm"), ("nics", "vm")] {
        for (write, row) in [("insert", "NEW"), ("update", "NEW"), ("delete", "OLD")] {
            let event = write.to_uppercase();
            sql += &format!(
                "CREATE TRIGGER IF NOT EXISTS hv_{table}_rev_{write} AFTER {event} ON hv_{table} BEGIN
    UPDATE hv_counters SET value = value + 1 WHERE name = 'vm_rev';
    INSERT OR REPLACE INTO hv_vm_changes (vm, rev)
        SELECT {row}.{vm}, value FROM hv_counters WHERE name = 'vm_rev';
END;
"
            );
        }
    }
    sql
}

const UPSERT_NODE: &str = "
INSERT INTO hv_nodes (id, name, cpus, ram_mib, disk_mib, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (name) DO UPDATE SET cpus = excluded.cpus, ram_mib = excluded.ram_mib,
    disk_mib = excluded.disk_mib, state = excluded.state";
const UPSERT_IMAGE: &str = "
INSERT INTO hv_images (id, name, version, os, image_type, size_mib, state, owner, public, extra, created)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
ON CONFLICT (ifnull(owner, ''), name, version) DO UPDATE SET os = excluded.os, image_type = excluded.image_type,
    size_mib = excluded.size_mib, state = excluded.state, owner = excluded.owner,
    public = excluded.public, extra = excluded.extra";
const UPSERT_NETWORK: &str = "
INSERT INTO hv_networks (id, name, vlan, subnet, gateway, public, owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (name) DO UPDATE SET vlan = excluded.vlan, subnet = excluded.subnet,
    gateway = excluded.gateway, public = excluded.public, owner = excluded.owner";

const SELECT_PACKAGES: &str = "SELECT id, name, cpus, ram_mib, disk_mib, swap_mib, lwps, \
    is_default, created, i.version, i.grp, i.description FROM hv_packages \
    LEFT JOIN hv_package_info i ON i.package = hv_packages.id";
const SELECT_NODES: &str = "SELECT id, name, cpus, ram_mib, disk_mib, state FROM hv_nodes";
const SELECT_IMAGES: &str = "SELECT id, name, version, os, image_type, size_mib, state, owner, \
    public, extra, created FROM hv_images";
const SELECT_NETWORKS: &str =
    "SELECT id, name, vlan, subnet, gateway, public, owner FROM hv_networks";
const SELECT_VMS: &str = "SELECT id, name, owner, node, image, cpus, ram_mib, disk_mib, state, \
    tags, metadata, deletion_protection, created, updated, creator FROM hv_vms";
const INSERT_VM: &str = "INSERT INTO hv_vms (id, name, owner, node, image, cpus, ram_mib, \
    disk_mib, state, tags, metadata, deletion_protection, created, updated, creator) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14)";
/// Each node's capacity less what its VMs that are not deleted take.
const FREE: &str = "SELECT n.id, n.cpus - COALESCE(SUM(v.cpus), 0) AS free_cpus, \
    n.ram_mib - COALESCE(SUM(v.ram_mib), 0) AS free_ram, \
    n.disk_mib - COALESCE(SUM(v.disk_mib), 0) AS free_disk \
    FROM hv_nodes n LEFT JOIN hv_vms v ON v.node = n.id AND v.state <> 'deleted'";
/// A tag whose value, written as text, equals the filter's.
const TAG_MATCH: &str = "EXISTS (SELECT 1 FROM json_each(hv_vms.tags) AS t WHERE t.key = ? AND \
    (CASE t.type WHEN 'text' THEN t.value WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
    WHEN 'null' THEN 'null' ELSE CAST(t.value AS TEXT) END) = ?)";
const NEXT_MAC: &str = "INSERT INTO hv_counters (name, value) VALUES ('mac', 1) \
    ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value";
/// An image a job is still making.
const IMAGE_CREATING: &str = "creating";
/// QEMU's prefix; the counter fills the last three bytes.
const MAC_PREFIX: &str = "52:54:00";

impl From<rusqlite::Error> for HvError {
    fn from(error: rusqlite::Error) -> Self {
        HvError::Backend(error.to_string())
    }
}

/// The simulated site, kept in the site database.
pub struct SimBackend {
    db: Database,
    delay: Duration,
}

impl SimBackend {
    /// Creates the `hv_` tables if needed and upserts the seeds.
    pub fn open(db: Database, settings: &SimSettings) -> Result<SimBackend, HvError> {
        settings.check()?;
        db.with_write_tx(|tx| {
            rekey_images(tx)?;
            tx.execute_batch(SCHEMA)?;
            tx.execute_batch(&change_feed())?;
            seed(tx, settings)
        })?;
        Ok(SimBackend {
            db,
            delay: settings.transition_delay(),
        })
    }

    /// What a transition does, for a backend that does real work before it
    /// completes (the `qemu` backend).
    pub fn pending_transition(&self, transition: &str) -> Result<PendingTransition, HvError> {
        self.db.with_read_tx(|tx| {
            let sql = "SELECT vm, action, success, parameters FROM hv_audit WHERE transition = ?1";
            let found = query_opt(tx, sql, [transition], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<bool>>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })?;
            let (vm, action, success, parameters) =
                found.ok_or_else(|| HvError::NotFound(format!("transition {transition}")))?;
            Ok(PendingTransition {
                vm,
                action: action.parse()?,
                done: success.is_some(),
                parameters: serde_json::from_str(&parameters).unwrap_or_default(),
            })
        })
    }

    /// Runs a change that needs no job on a VM in one of `from`, audited as succeeded.
    /// `apply` returns its result and the audited parameters.
    fn change<T>(
        &self,
        id: &str,
        caller: &str,
        action: Operation,
        from: &[VmState],
        apply: impl FnOnce(&Connection, &Vm) -> Result<(T, serde_json::Value), HvError>,
    ) -> Result<T, HvError> {
        self.db.with_write_tx(|tx| {
            let vm = existing_vm(tx, id)?;
            require(tx, &vm, from)?;
            let now = now_ms();
            tx.prepare_cached("UPDATE hv_vms SET updated = ?2 WHERE id = ?1")?
                .execute(params![vm.id, now])?;
            let (value, parameters) = apply(tx, &vm)?;
            record(tx, &entry(&vm.id, action, caller, &parameters, now))?;
            Ok(value)
        })
    }

    /// Starts a job on a VM per `rule`: checks, `apply` (which returns the audited
    /// parameters), the intermediate state and a pending audit row.
    fn job(
        &self,
        id: &str,
        caller: &str,
        action: Operation,
        rule: Rule,
        apply: impl FnOnce(&Connection, &Vm) -> Result<serde_json::Value, HvError>,
    ) -> Result<Transition, HvError> {
        self.db.with_write_tx(|tx| {
            let vm = existing_vm(tx, id)?;
            require(tx, &vm, rule.from)?;
            let parameters = apply(tx, &vm)?;
            let now = now_ms();
            set_state(tx, &vm.id, rule.via, now)?;
            begin(
                tx,
                &entry(&vm.id, action, caller, &parameters, now),
                rule.to,
            )
        })
    }

    /// Ends a pending transition as `success` says, in the state `end` returns after
    /// doing its part. One already ended the same way returns the VM as it is; one
    /// ended the other way conflicts.
    fn finish(
        &self,
        transition: &str,
        success: bool,
        end: impl FnOnce(&Connection, &PendingJob) -> Result<VmState, HvError>,
    ) -> Result<Vm, HvError> {
        self.db.with_write_tx(|tx| {
            let job = pending_job(tx, transition)?;
            match job.success {
                Some(done) if done == success => return existing_vm(tx, &job.vm),
                Some(done) => {
                    let how = if done { "completed" } else { "failed" };
                    return Err(HvError::Conflict(format!(
                        "transition {transition} has already {how}"
                    )));
                }
                None => {}
            }
            let state = end(tx, &job)?;
            let now = now_ms();
            tx.prepare_cached(
                "UPDATE hv_vms SET state = ?2, pending = NULL, updated = ?3 WHERE id = ?1",
            )?
            .execute(params![job.vm, state.as_str(), now])?;
            tx.prepare_cached("UPDATE hv_audit SET success = ?2, time = ?3 WHERE transition = ?1")?
                .execute(params![transition, success, now])?;
            existing_vm(tx, &job.vm)
        })
    }
}

impl HypervisorBackend for SimBackend {
    fn transition_delay(&self) -> Duration {
        self.delay
    }

    fn list_nodes(&self) -> Result<Vec<Node>, HvError> {
        let sql = format!("{SELECT_NODES} ORDER BY seq");
        self.db
            .with_conn(|conn| query_all(conn, &sql, [], node_from))
    }

    fn list_images(&self) -> Result<Vec<Image>, HvError> {
        let sql = format!("{SELECT_IMAGES} ORDER BY seq");
        self.db
            .with_conn(|conn| query_all(conn, &sql, [], image_from))
    }

    fn get_image(&self, id: &str) -> Result<Option<Image>, HvError> {
        self.db.with_conn(|conn| image_by_id(conn, id))
    }

    fn import_image(&self, image: &NewImage) -> Result<Image, HvError> {
        let id = Uuid::new_v4().to_string();
        self.db.with_write_tx(|tx| {
            check_image_free(tx, image)?;
            insert_image(tx, &id, image, now_ms())?;
            image_by_id(tx, &id)?.ok_or_else(|| HvError::NotFound(format!("image {id}")))
        })
    }

    fn list_networks(&self) -> Result<Vec<Network>, HvError> {
        let sql = format!("{SELECT_NETWORKS} ORDER BY seq");
        self.db
            .with_conn(|conn| query_all(conn, &sql, [], network_from))
    }

    fn list_vms(&self, filter: &VmFilter) -> Result<VmPage, HvError> {
        self.query_vms(&VmQuery {
            filter: filter.clone(),
            ..VmQuery::default()
        })
    }

    fn query_vms(&self, query: &VmQuery) -> Result<VmPage, HvError> {
        let filter = &query.filter;
        let (condition, mut values) = vm_condition(query)?;
        self.db.with_read_tx(|tx| {
            let count = format!("SELECT count(*) FROM hv_vms WHERE {condition}");
            let total: u64 = tx
                .prepare_cached(&count)?
                .query_row(params_from_iter(&values), |row| row.get(0))?;
            values.push(Value::Integer(filter.limit.map_or(-1, clamp)));
            values.push(Value::Integer(clamp(filter.offset)));
            let page = format!("{SELECT_VMS} WHERE {condition} ORDER BY seq LIMIT ? OFFSET ?");
            let vms = query_all(tx, &page, params_from_iter(&values), vm_from)?;
            let vms = with_devices_of_page(tx, vms)?;
            Ok(VmPage { vms, total })
        })
    }

    fn set_vm_data(
        &self,
        id: &str,
        tags: Option<&str>,
        metadata: Option<&str>,
        caller: &str,
    ) -> Result<Vm, HvError> {
        let action = if tags.is_some() {
            Operation::SetTags
        } else {
            Operation::SetMetadata
        };
        let from = &[VmState::Running, VmState::Stopped, VmState::Failed];
        self.change(id, caller, action, from, |conn, vm| {
            let mut parameters = serde_json::Map::new();
            if let Some(tags) = tags {
                conn.prepare_cached("UPDATE hv_vms SET tags = ?2 WHERE id = ?1")?
                    .execute([&vm.id, tags])?;
                parameters.insert("tags".into(), parsed(tags));
            }
            if let Some(metadata) = metadata {
                conn.prepare_cached("UPDATE hv_vms SET metadata = ?2 WHERE id = ?1")?
                    .execute([&vm.id, metadata])?;
                // Metadata may hold secrets: the audit names the keys only.
                let keys: Vec<String> = match parsed(metadata) {
                    serde_json::Value::Object(map) => map.keys().cloned().collect(),
                    _ => Vec::new(),
                };
                parameters.insert("metadata_keys".into(), json!(keys));
            }
            Ok((
                existing_vm(conn, &vm.id)?,
                serde_json::Value::Object(parameters),
            ))
        })
    }

    fn migration_target(&self, id: &str, placement: &Placement) -> Result<String, HvError> {
        self.db.with_read_tx(|tx| {
            let vm = existing_vm(tx, id)?;
            let mut away = placement.clone();
            away.avoid_nodes.extend(vm.node.clone());
            let size = Size {
                cpus: vm.cpus,
                ram_mib: vm.ram_mib,
                disk_mib: vm.disk_mib,
            };
            place(tx, size, &away, &vm.owner)
        })
    }

    fn migrate_vm(&self, id: &str, node: Option<&str>, caller: &str) -> Result<Vm, HvError> {
        self.change(id, caller, Operation::Migrate, SETTLED, |conn, vm| {
            let current = vm.node.clone().unwrap_or_default();
            if let Some(wanted) = node {
                let found: Option<String> = conn
                    .prepare_cached("SELECT id FROM hv_nodes WHERE id = ?1 OR name = ?1")?
                    .query_row([wanted], |row| row.get(0))
                    .optional()?;
                match found {
                    None => return Err(HvError::NotFound(format!("node {wanted}"))),
                    Some(id) if id == current => {
                        return Err(HvError::Invalid(format!(
                            "vm {} is on node {wanted}",
                            vm.id
                        )));
                    }
                    Some(_) => {}
                }
            }
            let sql = format!(
                "{FREE} WHERE n.state = 'running' AND n.id <> ?4 \
                 AND (?5 IS NULL OR n.id = ?5 OR n.name = ?5) GROUP BY n.id \
                 HAVING free_cpus >= ?1 AND free_ram >= ?2 AND free_disk >= ?3 \
                 ORDER BY free_ram DESC, n.name LIMIT 1"
            );
            let target: String = conn
                .prepare_cached(&sql)?
                .query_row(
                    params![vm.cpus, vm.ram_mib, vm.disk_mib, current, node],
                    |row| row.get(0),
                )
                .optional()?
                .ok_or_else(|| {
                    HvError::Capacity(format!(
                        "no other node has {} vcpus, {} MiB of RAM and {} MiB of disk free",
                        vm.cpus, vm.ram_mib, vm.disk_mib
                    ))
                })?;
            conn.prepare_cached("UPDATE hv_vms SET node = ?2 WHERE id = ?1")?
                .execute([&vm.id, &target])?;
            let parameters = json!({ "from": current, "to": target });
            Ok((existing_vm(conn, &vm.id)?, parameters))
        })
    }

    fn resize_disk(
        &self,
        id: &str,
        disk: &str,
        size_mib: u64,
        allow_shrink: bool,
        caller: &str,
    ) -> Result<Disk, HvError> {
        let from = &[VmState::Stopped];
        self.change(id, caller, Operation::ResizeDisk, from, |conn, vm| {
            let found = vm
                .disks
                .iter()
                .find(|d| d.id == disk)
                .ok_or_else(|| HvError::NotFound(format!("disk {disk} of vm {}", vm.id)))?;
            if size_mib < found.size_mib && !allow_shrink {
                return Err(HvError::Invalid(format!(
                    "disk {disk} is {} MiB; shrinking needs allow-shrink",
                    found.size_mib
                )));
            }
            let grow = Delta {
                disk: signed(size_mib) - signed(found.size_mib),
                ..Delta::default()
            };
            check_room(conn, vm, grow)?;
            conn.prepare_cached("UPDATE hv_disks SET size_mib = ?2 WHERE id = ?1")?
                .execute(params![found.id, signed(size_mib)])?;
            add_disk_mib(conn, &vm.id, grow.disk)?;
            let parameters =
                json!({ "disk": found.id, "size_mib": size_mib, "previous": found.size_mib });
            Ok((
                Disk {
                    size_mib,
                    ..found.clone()
                },
                parameters,
            ))
        })
    }

    fn list_packages(&self) -> Result<Vec<Package>, HvError> {
        let sql = format!("{SELECT_PACKAGES} ORDER BY seq");
        self.db
            .with_conn(|conn| query_all(conn, &sql, [], package_from))
    }

    fn add_package(&self, package: &NewPackage) -> Result<Package, HvError> {
        let id = Uuid::new_v4().to_string();
        self.db.with_write_tx(|tx| {
            let taken: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM hv_packages WHERE name = ?1)")?
                .query_row([&package.name], |row| row.get(0))?;
            if taken {
                return Err(HvError::Conflict(format!(
                    "package {} exists",
                    package.name
                )));
            }
            if package.is_default {
                tx.prepare_cached("UPDATE hv_packages SET is_default = 0")?
                    .execute([])?;
            }
            tx.prepare_cached(
                "INSERT INTO hv_packages (id, name, cpus, ram_mib, disk_mib, swap_mib, lwps, \
                 is_default, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                id,
                package.name,
                package.cpus,
                signed(package.ram_mib),
                signed(package.disk_mib),
                package.swap_mib.map(signed),
                package.lwps.map(signed),
                package.is_default,
                signed(now_ms()),
            ])?;
            if package.version.is_some() || package.group.is_some() || package.description.is_some()
            {
                tx.prepare_cached(
                    "INSERT INTO hv_package_info (package, version, grp, description) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    id,
                    package.version,
                    package.group,
                    package.description
                ])?;
            }
            let sql = format!("{SELECT_PACKAGES} WHERE id = ?1");
            query_opt(tx, &sql, [&id], package_from)?
                .ok_or_else(|| HvError::NotFound(format!("package {id}")))
        })
    }

    fn remove_package(&self, package: &str) -> Result<(), HvError> {
        self.db.with_write_tx(|tx| {
            tx.prepare_cached(
                "DELETE FROM hv_package_info WHERE package IN \
                 (SELECT id FROM hv_packages WHERE id = ?1 OR name = ?1)",
            )?
            .execute([package])?;
            let removed = tx
                .prepare_cached("DELETE FROM hv_packages WHERE id = ?1 OR name = ?1")?
                .execute([package])?;
            if removed == 0 {
                return Err(HvError::NotFound(format!("package {package}")));
            }
            Ok(())
        })
    }

    fn update_image(&self, id: &str, changes: &ImageChanges) -> Result<Image, HvError> {
        self.db.with_write_tx(|tx| {
            let image =
                image_by_id(tx, id)?.ok_or_else(|| HvError::NotFound(format!("image {id}")))?;
            let name = changes.name.as_ref().unwrap_or(&image.name);
            let version = changes.version.as_ref().unwrap_or(&image.version);
            let extra = changes.extra.as_ref().unwrap_or(&image.extra);
            check_image_name_free(tx, image.owner.as_deref(), name, version, Some(&image.id))?;
            tx.prepare_cached(
                "UPDATE hv_images SET name = ?2, version = ?3, extra = ?4 WHERE id = ?1",
            )?
            .execute([&image.id, name, version, extra])?;
            image_by_id(tx, id)?.ok_or_else(|| HvError::NotFound(format!("image {id}")))
        })
    }

    fn delete_image(&self, id: &str) -> Result<(), HvError> {
        self.db.with_write_tx(|tx| {
            if image_by_id(tx, id)?.is_none() {
                return Err(HvError::NotFound(format!("image {id}")));
            }
            let used: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM hv_vms WHERE image = ?1 AND state <> 'deleted')",
                )?
                .query_row([id], |row| row.get(0))?;
            if used {
                return Err(HvError::Conflict(format!("image {id} is used by a vm")));
            }
            tx.prepare_cached("DELETE FROM hv_images WHERE id = ?1")?
                .execute([id])?;
            Ok(())
        })
    }

    fn clone_image(&self, id: &str, owner: &str) -> Result<Image, HvError> {
        let clone_id = Uuid::new_v4().to_string();
        self.db.with_write_tx(|tx| {
            let source =
                image_by_id(tx, id)?.ok_or_else(|| HvError::NotFound(format!("image {id}")))?;
            if source.state != "active" {
                return Err(HvError::Conflict(format!(
                    "image {id} is {}, only an active image can be cloned",
                    source.state
                )));
            }
            // The copy is the new owner's alone: private, and shared with no one.
            let mut extra: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&source.extra).unwrap_or_default();
            extra.remove("acl");
            let copy = NewImage {
                name: source.name,
                version: source.version,
                os: source.os,
                image_type: source.image_type,
                size_mib: source.size_mib,
                owner: Some(owner.to_string()),
                public: false,
                extra: serde_json::Value::Object(extra).to_string(),
            };
            check_image_free(tx, &copy)?;
            insert_image(tx, &clone_id, &copy, now_ms())?;
            image_by_id(tx, &clone_id)?
                .ok_or_else(|| HvError::NotFound(format!("image {clone_id}")))
        })
    }

    fn create_image_from_vm(
        &self,
        id: &str,
        image: &NewImage,
        caller: &str,
    ) -> Result<Image, HvError> {
        let image_id = Uuid::new_v4().to_string();
        self.change(id, caller, Operation::CreateImage, SETTLED, |conn, vm| {
            check_image_free(conn, image)?;
            let boot = vm
                .disks
                .iter()
                .find(|d| d.boot)
                .map_or(vm.disk_mib, |d| d.size_mib);
            let made = NewImage {
                size_mib: boot,
                ..image.clone()
            };
            insert_image(conn, &image_id, &made, now_ms())?;
            let created = image_by_id(conn, &image_id)?
                .ok_or_else(|| HvError::NotFound(format!("image {image_id}")))?;
            let parameters =
                json!({ "image": image_id, "name": image.name, "version": image.version });
            Ok((created, parameters))
        })
    }

    fn create_image_from_vm_job(
        &self,
        id: &str,
        image: &NewImage,
        caller: &str,
    ) -> Result<(Image, Transition), HvError> {
        let image_id = Uuid::new_v4().to_string();
        self.db.with_write_tx(|tx| {
            let vm = existing_vm(tx, id)?;
            require(tx, &vm, SETTLED)?;
            check_image_free(tx, image)?;
            let made = NewImage {
                size_mib: boot_disk_mib(&vm),
                ..image.clone()
            };
            let now = now_ms();
            tx.prepare_cached(
                "INSERT INTO hv_images (id, name, version, os, image_type, size_mib, state, \
                 owner, public, extra, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(image_params(&image_id, &made, IMAGE_CREATING, now))?;
            let parameters =
                json!({ "image": image_id, "name": image.name, "version": image.version });
            // The VM keeps its state; the pending transition keeps it busy.
            let entry = entry(&vm.id, Operation::CreateImage, caller, &parameters, now);
            let transition = begin(tx, &entry, vm.state)?;
            let created = image_by_id(tx, &image_id)?
                .ok_or_else(|| HvError::NotFound(format!("image {image_id}")))?;
            Ok((created, transition))
        })
    }

    fn get_vm(&self, id: &str) -> Result<Option<Vm>, HvError> {
        self.db.with_read_tx(|tx| vm_by_id(tx, id))
    }

    fn create_vm(
        &self,
        spec: &VmSpec,
        caller: &str,
        plugin: &str,
    ) -> Result<(Vm, Transition), HvError> {
        self.create_vm_placed(spec, &Placement::default(), caller, plugin)
    }

    fn create_vm_placed(
        &self,
        spec: &VmSpec,
        placement: &Placement,
        caller: &str,
        plugin: &str,
    ) -> Result<(Vm, Transition), HvError> {
        let id = placement
            .vm_id
            .clone()
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        self.db.with_write_tx(|tx| {
            if vm_by_id(tx, &id)?.is_some() {
                return Err(HvError::Conflict(format!("vm {id} exists")));
            }
            let image = usable_image(tx, &spec.image, &spec.owner)?;
            if spec.disk_mib < image.size_mib {
                return Err(HvError::Invalid(format!(
                    "the disk ({} MiB) is smaller than image {} ({} MiB)",
                    spec.disk_mib, image.id, image.size_mib
                )));
            }
            let networks = spec_networks(tx, spec)?;
            check_name_free(tx, &spec.owner, &spec.name, &id)?;
            let node = place(tx, spec_size(spec), placement, &spec.owner)?;
            let now = now_ms();
            insert_vm(tx, &id, spec, &node, plugin, now)?;
            insert_disk(tx, &id, spec.disk_mib, true)?;
            for size in &spec.data_disks {
                insert_disk(tx, &id, *size, false)?;
            }
            let named = |a: &NicAddress, n: &Network| a.network == n.id || a.network == n.name;
            if let Some(stray) = placement
                .addresses
                .iter()
                .find(|a| !networks.iter().any(|n| named(a, n)))
            {
                return Err(HvError::Invalid(format!(
                    "address {} is for network {}, which the vm is not on",
                    stray.ip, stray.network
                )));
            }
            for (index, network) in networks.iter().enumerate() {
                let ip = placement.addresses.iter().find(|a| named(a, network));
                attach_nic(tx, &id, network, index == 0, ip.map(|a| a.ip.as_str()))?;
            }
            let parameters = create_parameters(spec, &node, &networks);
            let entry = entry(&id, Operation::Create, caller, &parameters, now);
            let transition = begin(tx, &entry, CREATE.to)?;
            Ok((existing_vm(tx, &id)?, transition))
        })
    }

    fn act(&self, id: &str, action: VmAction, caller: &str) -> Result<Transition, HvError> {
        self.job(id, caller, action.operation(), action.rule(), |_, vm| {
            if action == VmAction::Delete && vm.deletion_protection {
                return Err(HvError::Protected);
            }
            Ok(json!({}))
        })
    }

    fn resize(&self, id: &str, size: Size, caller: &str) -> Result<Transition, HvError> {
        self.job(id, caller, Operation::Resize, STOPPED_JOB, |conn, vm| {
            resize_in_place(conn, vm, size)
        })
    }

    fn rename(&self, id: &str, name: &str, caller: &str) -> Result<Vm, HvError> {
        self.change(id, caller, Operation::Rename, SETTLED, |conn, vm| {
            check_name_free(conn, &vm.owner, name, &vm.id)?;
            conn.prepare_cached("UPDATE hv_vms SET name = ?2 WHERE id = ?1")?
                .execute([&vm.id, name])?;
            let parameters = json!({ "name": name, "previous": vm.name });
            Ok((existing_vm(conn, &vm.id)?, parameters))
        })
    }

    fn set_deletion_protection(&self, id: &str, on: bool, caller: &str) -> Result<Vm, HvError> {
        let from = &[VmState::Running, VmState::Stopped, VmState::Failed];
        self.change(
            id,
            caller,
            Operation::SetDeletionProtection,
            from,
            |conn, vm| {
                conn.prepare_cached("UPDATE hv_vms SET deletion_protection = ?2 WHERE id = ?1")?
                    .execute(params![vm.id, on])?;
                Ok((existing_vm(conn, &vm.id)?, json!({ "enabled": on })))
            },
        )
    }

    fn add_disk(&self, id: &str, size_mib: u64, caller: &str) -> Result<Disk, HvError> {
        self.change(id, caller, Operation::AddDisk, SETTLED, |conn, vm| {
            if vm.disks.len() >= MAX_DEVICES {
                return Err(HvError::Invalid(format!(
                    "a vm has at most {MAX_DEVICES} disks"
                )));
            }
            let grow = Delta {
                disk: signed(size_mib),
                ..Delta::default()
            };
            check_room(conn, vm, grow)?;
            let disk = insert_disk(conn, &vm.id, size_mib, false)?;
            add_disk_mib(conn, &vm.id, grow.disk)?;
            let parameters = json!({ "disk": disk.id, "size_mib": size_mib });
            Ok((disk, parameters))
        })
    }

    fn remove_disk(&self, id: &str, disk: &str, caller: &str) -> Result<(), HvError> {
        self.change(id, caller, Operation::RemoveDisk, SETTLED, |conn, vm| {
            let found = vm
                .disks
                .iter()
                .find(|d| d.id == disk)
                .ok_or_else(|| HvError::NotFound(format!("disk {disk} of vm {}", vm.id)))?;
            if found.boot {
                return Err(HvError::Invalid("the boot disk cannot be removed".into()));
            }
            conn.prepare_cached("DELETE FROM hv_disks WHERE id = ?1")?
                .execute([disk])?;
            add_disk_mib(conn, &vm.id, -signed(found.size_mib))?;
            Ok(((), json!({ "disk": disk, "size_mib": found.size_mib })))
        })
    }

    fn snapshot_create(&self, id: &str, name: &str, caller: &str) -> Result<Snapshot, HvError> {
        self.change(
            id,
            caller,
            Operation::SnapshotCreate,
            SETTLED,
            |conn, vm| {
                if snapshot(conn, &vm.id, name)?.is_some() {
                    return Err(HvError::Conflict(format!(
                        "vm {} has a snapshot named {name:?}",
                        vm.id
                    )));
                }
                let taken = Snapshot {
                    name: name.to_owned(),
                    state: "created".into(),
                    created: now_ms(),
                };
                conn.prepare_cached(
                    "INSERT INTO hv_snapshots (vm, name, state, created) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    vm.id,
                    taken.name,
                    taken.state,
                    taken.created
                ])?;
                Ok((taken, json!({ "name": name })))
            },
        )
    }

    fn snapshot_rollback(&self, id: &str, name: &str, caller: &str) -> Result<Transition, HvError> {
        self.job(
            id,
            caller,
            Operation::SnapshotRollback,
            STOPPED_JOB,
            |conn, vm| {
                existing_snapshot(conn, &vm.id, name)?;
                Ok(json!({ "name": name }))
            },
        )
    }

    fn snapshot_delete(&self, id: &str, name: &str, caller: &str) -> Result<(), HvError> {
        self.change(
            id,
            caller,
            Operation::SnapshotDelete,
            SETTLED,
            |conn, vm| {
                existing_snapshot(conn, &vm.id, name)?;
                conn.prepare_cached("DELETE FROM hv_snapshots WHERE vm = ?1 AND name = ?2")?
                    .execute([&vm.id, name])?;
                Ok(((), json!({ "name": name })))
            },
        )
    }

    fn list_snapshots(&self, id: &str) -> Result<Vec<Snapshot>, HvError> {
        self.db.with_read_tx(|tx| {
            existing_vm(tx, id)?;
            let sql = "SELECT name, state, created FROM hv_snapshots WHERE vm = ?1 ORDER BY seq";
            query_all(tx, sql, [id], snapshot_from)
        })
    }

    fn add_nic_at(
        &self,
        id: &str,
        network: &str,
        ip: Option<&str>,
        caller: &str,
    ) -> Result<Nic, HvError> {
        self.change(id, caller, Operation::AddNic, SETTLED, |conn, vm| {
            if vm.nics.len() >= MAX_DEVICES {
                return Err(HvError::Invalid(format!(
                    "a vm has at most {MAX_DEVICES} nics"
                )));
            }
            let network = usable_network(conn, network, &vm.owner)?;
            let nic = attach_nic(conn, &vm.id, &network, vm.nics.is_empty(), ip)?;
            let parameters = json!({ "mac": nic.mac, "network": nic.network, "ip": nic.ip });
            Ok((nic, parameters))
        })
    }

    fn create_network(&self, network: &NewNetwork) -> Result<Network, HvError> {
        let id = Uuid::new_v4().to_string();
        self.db.with_write_tx(|tx| {
            let taken = "SELECT EXISTS (SELECT 1 FROM hv_networks WHERE name = ?1 OR id = ?1)";
            if tx.query_row(taken, [&network.name], |row| row.get::<_, bool>(0))? {
                return Err(HvError::Conflict(format!(
                    "a network named {} exists",
                    network.name
                )));
            }
            tx.prepare_cached(
                "INSERT INTO hv_networks (id, name, vlan, subnet, gateway, public, owner) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
            )?
            .execute(params![
                id,
                network.name,
                network.vlan,
                network.subnet,
                network.gateway,
                network.owner
            ])?;
            write_plan(tx, &id, network)?;
            network_by_id(tx, &id)
        })
    }

    fn update_network(&self, id: &str, network: &NewNetwork) -> Result<Network, HvError> {
        self.db.with_write_tx(|tx| {
            let existing = planned_network(tx, id)?;
            let same = existing.name == network.name
                && existing.owner.as_deref() == Some(network.owner.as_str())
                && existing.vlan == network.vlan
                && existing.subnet == network.subnet
                && existing.gateway == network.gateway;
            if !same {
                return Err(HvError::Invalid(format!(
                    "only the provision range, resolvers and routes of network {id} change"
                )));
            }
            write_plan(tx, id, network)?;
            Ok(existing)
        })
    }

    fn delete_network(&self, id: &str) -> Result<(), HvError> {
        self.db.with_write_tx(|tx| {
            planned_network(tx, id)?;
            let used = "SELECT EXISTS (SELECT 1 FROM hv_nics WHERE network = ?1)";
            if tx.query_row(used, [id], |row| row.get::<_, bool>(0))? {
                return Err(HvError::Conflict(format!("network {id} has NICs on it")));
            }
            for sql in [
                "DELETE FROM hv_reserved_ips WHERE network = ?1",
                "DELETE FROM hv_network_plans WHERE network = ?1",
                "DELETE FROM hv_networks WHERE id = ?1",
            ] {
                tx.prepare_cached(sql)?.execute([id])?;
            }
            Ok(())
        })
    }

    fn reserve_ip(&self, network: &str, ip: Option<&str>, holder: &str) -> Result<String, HvError> {
        self.db.with_write_tx(|tx| {
            let network = network_by_id(tx, network)?;
            let ip = match ip {
                Some(ip) => host_address(tx, &network, ip)?,
                None => allocate_ip(tx, &network)?,
            };
            tx.prepare_cached(
                "INSERT INTO hv_reserved_ips (network, ip, holder) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (network, ip) DO UPDATE SET holder = excluded.holder",
            )?
            .execute(params![network.id, ip, holder])?;
            Ok(ip)
        })
    }

    fn unreserve_ip(&self, network: &str, ip: &str) -> Result<(), HvError> {
        self.db.with_write_tx(|tx| {
            let network = network_by_id(tx, network)?;
            // Stored as allocate_ip writes it: the address's canonical text.
            let ip = ip
                .parse::<IpAddr>()
                .map_err(|_| HvError::Invalid(format!("{ip:?} is not an IP address")))?;
            tx.prepare_cached("DELETE FROM hv_reserved_ips WHERE network = ?1 AND ip = ?2")?
                .execute(params![network.id, ip.to_string()])?;
            Ok(())
        })
    }

    fn remove_nic(&self, id: &str, mac: &str, caller: &str) -> Result<(), HvError> {
        self.change(id, caller, Operation::RemoveNic, SETTLED, |conn, vm| {
            let nic = vm
                .nics
                .iter()
                .find(|nic| nic.mac.eq_ignore_ascii_case(mac))
                .ok_or_else(|| HvError::NotFound(format!("nic {mac} of vm {}", vm.id)))?;
            if nic.primary {
                return Err(HvError::Invalid("the primary nic cannot be removed".into()));
            }
            conn.prepare_cached("DELETE FROM hv_nics WHERE mac = ?1")?
                .execute([&nic.mac])?;
            Ok(((), json!({ "mac": nic.mac, "ip": nic.ip })))
        })
    }

    fn audit(&self, id: &str) -> Result<Vec<AuditEntry>, HvError> {
        self.db.with_read_tx(|tx| {
            existing_vm(tx, id)?;
            let sql = "SELECT action, caller, time, success, parameters FROM hv_audit \
                       WHERE vm = ?1 ORDER BY seq DESC";
            query_all(tx, sql, [id], audit_from)
        })
    }

    fn vm_changes_since(&self, after: u64, limit: u32) -> Result<VmChanges, HvError> {
        self.db.with_read_tx(|tx| {
            // One more than asked says whether more wait.
            let sql = "SELECT vm, rev FROM hv_vm_changes WHERE rev > ?1 ORDER BY rev LIMIT ?2";
            let mut found = query_all(tx, sql, params![clamp(after), limit + 1], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            let more = found.len() > limit as usize;
            found.truncate(limit as usize);
            let cursor = found
                .last()
                .map_or(after, |(_, rev)| u64::try_from(*rev).unwrap_or(after));
            let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
            let mut vms = std::collections::HashMap::new();
            for chunk in ids.chunks(500) {
                let marks = vec!["?"; chunk.len()].join(",");
                let sql = format!("{SELECT_VMS} WHERE id IN ({marks})");
                let page = query_all(tx, &sql, params_from_iter(chunk), vm_from)?;
                for vm in with_devices_of_page(tx, page)? {
                    vms.insert(vm.id.clone(), vm);
                }
            }
            let changes = found
                .into_iter()
                .map(|(id, _)| VmChange {
                    vm: vms.remove(&id),
                    id,
                })
                .collect();
            Ok(VmChanges {
                changes,
                cursor,
                more,
            })
        })
    }

    fn complete(&self, transition: &str) -> Result<Vm, HvError> {
        self.finish(transition, true, |conn, job| {
            if let Some(image) = image_of_job(conn, transition)? {
                conn.prepare_cached("UPDATE hv_images SET state = 'active' WHERE id = ?1")?
                    .execute([image])?;
            }
            if job.target == VmState::Deleted {
                // Its addresses go back to their networks; its MACs are never reused.
                conn.prepare_cached("DELETE FROM hv_nics WHERE vm = ?1")?
                    .execute([&job.vm])?;
            }
            Ok(job.target)
        })
    }

    fn fail(&self, transition: &str, reason: &str) -> Result<Vm, HvError> {
        self.finish(transition, false, |conn, job| {
            conn.prepare_cached(
                "UPDATE hv_audit SET parameters = json_set(parameters, '$.error', ?2) \
                 WHERE transition = ?1",
            )?
            .execute([transition, reason])?;
            // A failed image leaves the VM as it was; only the image fails.
            if let Some(image) = image_of_job(conn, transition)? {
                conn.prepare_cached(
                    "UPDATE hv_images SET state = 'failed', \
                     extra = json_set(extra, '$.error', ?2) WHERE id = ?1",
                )?
                .execute([image.as_str(), reason])?;
                return Ok(job.target);
            }
            Ok(VmState::Failed)
        })
    }
}

/// A transition as a backend doing the real work needs it.
#[derive(Debug, Clone)]
pub struct PendingTransition {
    pub vm: String,
    pub action: Operation,
    /// Completed or failed already.
    pub done: bool,
    /// The audited parameters (a snapshot rollback's `name`, ...).
    pub parameters: serde_json::Value,
}

/// A transition as its audit row keeps it.
struct PendingJob {
    vm: String,
    target: VmState,
    /// `None` while pending.
    success: Option<bool>,
}

/// An audit row about to be written.
struct Entry<'a> {
    vm: &'a str,
    action: Operation,
    caller: &'a str,
    parameters: String,
    now: u64,
}

fn entry<'a>(
    vm: &'a str,
    action: Operation,
    caller: &'a str,
    parameters: &serde_json::Value,
    now: u64,
) -> Entry<'a> {
    Entry {
        vm,
        action,
        caller,
        parameters: parameters.to_string(),
        now,
    }
}

/// A change in each resource a VM takes of its node; negative frees.
#[derive(Debug, Clone, Copy, Default)]
struct Delta {
    cpus: i64,
    ram: i64,
    disk: i64,
}

fn seed(conn: &Connection, settings: &SimSettings) -> Result<(), HvError> {
    let now = now_ms();
    settings
        .nodes
        .iter()
        .try_for_each(|node| seed_node(conn, node))?;
    settings
        .images
        .iter()
        .try_for_each(|image| seed_image(conn, image, now))?;
    settings
        .networks
        .iter()
        .try_for_each(|network| seed_network(conn, network))
}

fn seed_node(conn: &Connection, node: &NodeSeed) -> Result<(), HvError> {
    let id = seed_id("node", &node.name);
    conn.prepare_cached(UPSERT_NODE)?.execute(params![
        id,
        node.name,
        node.cpus,
        node.ram_mib,
        node.disk_mib,
        node.state
    ])?;
    Ok(())
}

fn seed_image(conn: &Connection, seed: &ImageSeed, now: u64) -> Result<(), HvError> {
    let id = seed_id("image", &format!("{}@{}", seed.name, seed.version));
    let image = NewImage {
        name: seed.name.clone(),
        version: seed.version.clone(),
        os: seed.os.clone(),
        image_type: seed.image_type.clone(),
        size_mib: seed.size_mib,
        owner: seed.owner.clone(),
        public: seed.public,
        extra: serde_json::Value::Object(seed.extra.clone()).to_string(),
    };
    conn.prepare_cached(UPSERT_IMAGE)?
        .execute(image_params(&id, &image, &seed.state, now))?;
    Ok(())
}

fn seed_network(conn: &Connection, seed: &NetworkSeed) -> Result<(), HvError> {
    let (subnet, gateway) = seed.parse()?;
    conn.prepare_cached(UPSERT_NETWORK)?.execute(params![
        seed_id("network", &seed.name),
        seed.name,
        seed.vlan,
        subnet.to_string(),
        gateway.map(|ip| ip.to_string()),
        seed.public,
        seed.owner
    ])?;
    Ok(())
}

/// The image a pending `create-image` job makes, if the transition is one.
fn image_of_job(conn: &Connection, transition: &str) -> Result<Option<String>, HvError> {
    let sql = "SELECT json_extract(parameters, '$.image') FROM hv_audit \
               WHERE transition = ?1 AND action = ?2";
    let found = query_opt(
        conn,
        sql,
        [transition, Operation::CreateImage.as_str()],
        |row| row.get::<_, Option<String>>(0),
    )?;
    Ok(found.flatten())
}

/// `Conflict` if the image's owner has one of that name and version.
fn check_image_free(conn: &Connection, image: &NewImage) -> Result<(), HvError> {
    check_image_name_free(
        conn,
        image.owner.as_deref(),
        &image.name,
        &image.version,
        None,
    )
}

/// `Conflict` if `owner` (`None`: the operator) has an image named `name` at
/// `version` other than `except`.
fn check_image_name_free(
    conn: &Connection,
    owner: Option<&str>,
    name: &str,
    version: &str,
    except: Option<&str>,
) -> Result<(), HvError> {
    let taken: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM hv_images WHERE ifnull(owner, '') = ifnull(?1, '') \
             AND name = ?2 AND version = ?3 AND id <> ifnull(?4, ''))",
        )?
        .query_row(params![owner, name, version, except], |row| row.get(0))?;
    if taken {
        return Err(HvError::Conflict(format!(
            "image {name} version {version} exists"
        )));
    }
    Ok(())
}

/// Sites made before images were keyed per owner have `UNIQUE (name, version)`
/// on the table itself; SQLite cannot drop that, so the table is rebuilt
/// (same columns, same rows) and `SCHEMA` then adds the per-owner index.
fn rekey_images(tx: &Connection) -> Result<(), HvError> {
    let ddl = query_opt(
        tx,
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'hv_images'",
        [],
        |row| row.get::<_, String>(0),
    )?;
    if !ddl.is_some_and(|ddl| ddl.contains("UNIQUE (name, version)")) {
        return Ok(());
    }
    tx.execute_batch(
        "CREATE TABLE hv_images_rekeyed (
            seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
            version TEXT NOT NULL, os TEXT NOT NULL, image_type TEXT NOT NULL,
            size_mib INTEGER NOT NULL, state TEXT NOT NULL, owner TEXT, public INTEGER NOT NULL,
            extra TEXT NOT NULL, created INTEGER NOT NULL);
        INSERT INTO hv_images_rekeyed SELECT seq, id, name, version, os, image_type, size_mib,
            state, owner, public, extra, created FROM hv_images;
        DROP TABLE hv_images;
        ALTER TABLE hv_images_rekeyed RENAME TO hv_images;",
    )?;
    Ok(())
}

/// The size of the VM's boot disk.
fn boot_disk_mib(vm: &Vm) -> u64 {
    vm.disks
        .iter()
        .find(|d| d.boot)
        .map_or(vm.disk_mib, |d| d.size_mib)
}

fn insert_image(conn: &Connection, id: &str, image: &NewImage, now: u64) -> Result<(), HvError> {
    let sql = "INSERT INTO hv_images (id, name, version, os, image_type, size_mib, state, owner, \
               public, extra, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
    conn.prepare_cached(sql)?
        .execute(image_params(id, image, "active", now))?;
    Ok(())
}

fn image_params<'a>(
    id: &'a str,
    image: &'a NewImage,
    state: &'a str,
    now: u64,
) -> impl Params + 'a {
    (
        id,
        image.name.as_str(),
        image.version.as_str(),
        image.os.as_str(),
        image.image_type.as_str(),
        image.size_mib,
        state,
        image.owner.as_deref(),
        image.public,
        image.extra.as_str(),
        now,
    )
}

/// A stable UUID (version 8) for a seeded row, from its kind and name, so every
/// fresh site gives the default inventory the same ids.
fn seed_id(kind: &str, name: &str) -> String {
    let text = format!("{kind}\0{name}");
    let high = fnv1a(0xcbf2_9ce4_8422_2325, &text);
    let low = fnv1a(high ^ 0x9e37_79b9_7f4a_7c15, &text);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn fnv1a(basis: u64, text: &str) -> u64 {
    text.bytes().fold(basis, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    read: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, HvError> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(params, read)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    read: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, HvError> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params, read)
        .optional()?)
}

fn package_from(row: &Row<'_>) -> rusqlite::Result<Package> {
    Ok(Package {
        id: row.get(0)?,
        name: row.get(1)?,
        cpus: row.get(2)?,
        ram_mib: row.get(3)?,
        disk_mib: row.get(4)?,
        swap_mib: row.get(5)?,
        lwps: row.get(6)?,
        is_default: row.get(7)?,
        created: row.get(8)?,
        version: row.get(9)?,
        group: row.get(10)?,
        description: row.get(11)?,
    })
}

fn node_from(row: &Row<'_>) -> rusqlite::Result<Node> {
    Ok(Node {
        id: row.get(0)?,
        name: row.get(1)?,
        cpus: row.get(2)?,
        ram_mib: row.get(3)?,
        disk_mib: row.get(4)?,
        state: row.get(5)?,
    })
}

fn image_from(row: &Row<'_>) -> rusqlite::Result<Image> {
    Ok(Image {
        id: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        os: row.get(3)?,
        image_type: row.get(4)?,
        size_mib: row.get(5)?,
        state: row.get(6)?,
        owner: row.get(7)?,
        public: row.get(8)?,
        extra: row.get(9)?,
        created: row.get(10)?,
    })
}

fn network_from(row: &Row<'_>) -> rusqlite::Result<Network> {
    Ok(Network {
        id: row.get(0)?,
        name: row.get(1)?,
        vlan: row.get(2)?,
        subnet: row.get(3)?,
        gateway: row.get(4)?,
        public: row.get(5)?,
        owner: row.get(6)?,
    })
}

/// A VM's own columns; `with_devices` adds its NICs and disks.
fn vm_from(row: &Row<'_>) -> rusqlite::Result<Vm> {
    Ok(Vm {
        id: row.get(0)?,
        name: row.get(1)?,
        owner: row.get(2)?,
        node: row.get(3)?,
        image: row.get(4)?,
        cpus: row.get(5)?,
        ram_mib: row.get(6)?,
        disk_mib: row.get(7)?,
        state: state_at(row, 8)?,
        ips: Vec::new(),
        nics: Vec::new(),
        disks: Vec::new(),
        tags: row.get(9)?,
        metadata: row.get(10)?,
        deletion_protection: row.get(11)?,
        created: row.get(12)?,
        updated: row.get(13)?,
        creator: row.get(14)?,
    })
}

fn nic_from(row: &Row<'_>) -> rusqlite::Result<Nic> {
    Ok(Nic {
        mac: row.get(0)?,
        network: row.get(1)?,
        ip: row.get(2)?,
        primary: row.get(3)?,
        state: row.get(4)?,
    })
}

fn disk_from(row: &Row<'_>) -> rusqlite::Result<Disk> {
    Ok(Disk {
        id: row.get(0)?,
        size_mib: row.get(1)?,
        boot: row.get(2)?,
    })
}

fn snapshot_from(row: &Row<'_>) -> rusqlite::Result<Snapshot> {
    Ok(Snapshot {
        name: row.get(0)?,
        state: row.get(1)?,
        created: row.get(2)?,
    })
}

fn audit_from(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    let success: Option<bool> = row.get(3)?;
    Ok(AuditEntry {
        action: row.get(0)?,
        caller: row.get(1)?,
        time: row.get(2)?,
        success: success.unwrap_or(false),
        pending: success.is_none(),
        parameters: row.get(4)?,
    })
}

fn pending_job_from(row: &Row<'_>) -> rusqlite::Result<PendingJob> {
    Ok(PendingJob {
        vm: row.get(0)?,
        target: state_at(row, 1)?,
        success: row.get(2)?,
    })
}

fn state_at(row: &Row<'_>, index: usize) -> rusqlite::Result<VmState> {
    let text: String = row.get(index)?;
    text.parse().map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
    })
}

fn image_by_id(conn: &Connection, id: &str) -> Result<Option<Image>, HvError> {
    query_opt(
        conn,
        &format!("{SELECT_IMAGES} WHERE id = ?1"),
        [id],
        image_from,
    )
}

fn vm_by_id(conn: &Connection, id: &str) -> Result<Option<Vm>, HvError> {
    let sql = format!("{SELECT_VMS} WHERE id = ?1");
    query_opt(conn, &sql, [id], vm_from)?
        .map(|vm| with_devices(conn, vm))
        .transpose()
}

fn existing_vm(conn: &Connection, id: &str) -> Result<Vm, HvError> {
    vm_by_id(conn, id)?.ok_or_else(|| HvError::NotFound(format!("vm {id}")))
}

/// `with_devices` for a whole page in two queries per 500 VMs (not two per VM).
fn with_devices_of_page(conn: &Connection, mut vms: Vec<Vm>) -> Result<Vec<Vm>, HvError> {
    let mut nics_of: std::collections::HashMap<String, Vec<Nic>> = Default::default();
    let mut disks_of: std::collections::HashMap<String, Vec<Disk>> = Default::default();
    for chunk in vms.chunks(500) {
        let ids: Vec<&str> = chunk.iter().map(|vm| vm.id.as_str()).collect();
        let marks = vec!["?"; ids.len()].join(",");
        let nics = format!(
            "SELECT vm, mac, network, ip, is_primary, state FROM hv_nics WHERE vm IN ({marks}) \
             ORDER BY vm, is_primary DESC, seq"
        );
        let found = query_all(conn, &nics, params_from_iter(&ids), |row| {
            Ok((
                row.get::<_, String>(0)?,
                Nic {
                    mac: row.get(1)?,
                    network: row.get(2)?,
                    ip: row.get(3)?,
                    primary: row.get(4)?,
                    state: row.get(5)?,
                },
            ))
        })?;
        for (vm, nic) in found {
            nics_of.entry(vm).or_default().push(nic);
        }
        let disks = format!(
            "SELECT vm, id, size_mib, boot FROM hv_disks WHERE vm IN ({marks}) \
             ORDER BY vm, boot DESC, seq"
        );
        let found = query_all(conn, &disks, params_from_iter(&ids), |row| {
            Ok((
                row.get::<_, String>(0)?,
                Disk {
                    id: row.get(1)?,
                    size_mib: row.get(2)?,
                    boot: row.get(3)?,
                },
            ))
        })?;
        for (vm, disk) in found {
            disks_of.entry(vm).or_default().push(disk);
        }
    }
    for vm in &mut vms {
        vm.nics = nics_of.remove(&vm.id).unwrap_or_default();
        vm.disks = disks_of.remove(&vm.id).unwrap_or_default();
        vm.ips = vm.nics.iter().filter_map(|nic| nic.ip.clone()).collect();
    }
    Ok(vms)
}

fn with_devices(conn: &Connection, mut vm: Vm) -> Result<Vm, HvError> {
    let nics = "SELECT mac, network, ip, is_primary, state FROM hv_nics WHERE vm = ?1 \
                ORDER BY is_primary DESC, seq";
    let disks = "SELECT id, size_mib, boot FROM hv_disks WHERE vm = ?1 ORDER BY boot DESC, seq";
    vm.nics = query_all(conn, nics, [&vm.id], nic_from)?;
    vm.disks = query_all(conn, disks, [&vm.id], disk_from)?;
    vm.ips = vm.nics.iter().filter_map(|nic| nic.ip.clone()).collect();
    Ok(vm)
}

/// Refuses `vm` unless its state is one of `from` and no transition is under way on it.
fn require(conn: &Connection, vm: &Vm, from: &[VmState]) -> Result<(), HvError> {
    if !from.contains(&vm.state) {
        return Err(HvError::IllegalTransition(vm.state.to_string()));
    }
    let pending: Option<String> = conn
        .prepare_cached("SELECT pending FROM hv_vms WHERE id = ?1")?
        .query_row([&vm.id], |row| row.get(0))?;
    match pending {
        Some(job) => Err(HvError::Conflict(format!(
            "vm {} has transition {job} under way",
            vm.id
        ))),
        None => Ok(()),
    }
}

fn set_state(conn: &Connection, id: &str, state: VmState, now: u64) -> Result<(), HvError> {
    conn.prepare_cached("UPDATE hv_vms SET state = ?2, updated = ?3 WHERE id = ?1")?
        .execute(params![id, state.as_str(), now])?;
    Ok(())
}

/// Records a change that needed no job, as succeeded.
fn record(conn: &Connection, entry: &Entry<'_>) -> Result<(), HvError> {
    let sql = "INSERT INTO hv_audit (vm, action, caller, time, success, parameters) \
               VALUES (?1, ?2, ?3, ?4, 1, ?5)";
    conn.prepare_cached(sql)?.execute(params![
        entry.vm,
        entry.action.as_str(),
        entry.caller,
        entry.now,
        entry.parameters
    ])?;
    Ok(())
}

/// Records a pending transition and marks the VM busy with it.
fn begin(conn: &Connection, entry: &Entry<'_>, target: VmState) -> Result<Transition, HvError> {
    let id = Uuid::new_v4().to_string();
    let sql = "INSERT INTO hv_audit (vm, action, caller, time, success, parameters, transition, \
               target_state) VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?7)";
    conn.prepare_cached(sql)?.execute(params![
        entry.vm,
        entry.action.as_str(),
        entry.caller,
        entry.now,
        entry.parameters,
        id,
        target.as_str()
    ])?;
    conn.prepare_cached("UPDATE hv_vms SET pending = ?2 WHERE id = ?1")?
        .execute([entry.vm, &id])?;
    Ok(Transition {
        id,
        vm_id: entry.vm.to_owned(),
        action: entry.action,
        target_state: target,
    })
}

fn pending_job(conn: &Connection, transition: &str) -> Result<PendingJob, HvError> {
    let sql = "SELECT vm, target_state, success FROM hv_audit WHERE transition = ?1";
    query_opt(conn, sql, [transition], pending_job_from)?
        .ok_or_else(|| HvError::NotFound(format!("transition {transition}")))
}

/// The image, if `owner` may provision from it and it is active.
fn usable_image(conn: &Connection, id: &str, owner: &str) -> Result<Image, HvError> {
    let image = image_by_id(conn, id)?
        .filter(|image| {
            image.public
                || image.owner.as_deref().is_none_or(|o| o == owner)
                || shared_with(image, owner)
        })
        .ok_or_else(|| HvError::NotFound(format!("image {id}")))?;
    if image.state != "active" {
        return Err(HvError::Invalid(format!(
            "image {id} is {}, not active",
            image.state
        )));
    }
    Ok(image)
}

/// Whether the image's `extra.acl` (a list of owners it is shared with) names `owner`.
fn shared_with(image: &Image, owner: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(&image.extra)
        .ok()
        .and_then(|extra| {
            extra["acl"]
                .as_array()
                .map(|acl| acl.iter().any(|a| a == owner))
        })
        .unwrap_or(false)
}

/// The network of that id or name, if `owner` may attach to it.
fn usable_network(conn: &Connection, key: &str, owner: &str) -> Result<Network, HvError> {
    let sql = format!("{SELECT_NETWORKS} WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1");
    query_opt(conn, &sql, [key], network_from)?
        .filter(|network| network.owner.as_deref().is_none_or(|o| o == owner))
        .ok_or_else(|| HvError::NotFound(format!("network {key}")))
}

/// The spec's networks, or the first public network when it names none.
fn spec_networks(conn: &Connection, spec: &VmSpec) -> Result<Vec<Network>, HvError> {
    if spec.networks.is_empty() {
        let sql = format!("{SELECT_NETWORKS} WHERE public = 1 ORDER BY seq LIMIT 1");
        return Ok(query_opt(conn, &sql, [], network_from)?
            .into_iter()
            .collect());
    }
    spec.networks
        .iter()
        .map(|key| usable_network(conn, key, &spec.owner))
        .collect()
}

fn check_name_free(
    conn: &Connection,
    owner: &str,
    name: &str,
    except: &str,
) -> Result<(), HvError> {
    let sql = "SELECT EXISTS (SELECT 1 FROM hv_vms WHERE owner = ?1 AND name = ?2 \
               AND state <> 'deleted' AND id <> ?3)";
    let taken: bool = conn
        .prepare_cached(sql)?
        .query_row([owner, name, except], |row| row.get(0))?;
    if taken {
        return Err(HvError::Conflict(format!(
            "{owner} already has a vm named {name:?}"
        )));
    }
    Ok(())
}

/// What the VM takes of a node: its disk is the boot disk and the data disks.
fn spec_size(spec: &VmSpec) -> Size {
    Size {
        cpus: spec.cpus,
        ram_mib: spec.ram_mib,
        disk_mib: spec.disk_mib + spec.data_disks.iter().sum::<u64>(),
    }
}

/// The running node with room for `size` the placement allows: a preferred
/// one if any, else one not shunned if any; within that, with `spread`, the
/// one holding the fewest of `owner`'s live VMs; then the most free RAM (ties
/// by name).
fn place(
    conn: &Connection,
    size: Size,
    placement: &Placement,
    owner: &str,
) -> Result<String, HvError> {
    let sql = format!(
        "{FREE} WHERE n.state = 'running' GROUP BY n.id \
         HAVING free_cpus >= ?1 AND free_ram >= ?2 AND free_disk >= ?3 \
         ORDER BY free_ram DESC, n.name"
    );
    let candidates = conn
        .prepare_cached(&sql)?
        .query_map(params![size.cpus, size.ram_mib, size.disk_mib], |row| {
            row.get::<_, String>(0)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let names: std::collections::HashMap<String, String> =
        query_all(conn, "SELECT id, name FROM hv_nodes", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .into_iter()
        .collect();
    let named = |nodes: &[String], id: &String| {
        nodes
            .iter()
            .any(|n| n == id || names.get(id).is_some_and(|name| name == n))
    };
    let allowed = candidates.into_iter().filter(|id| {
        (placement.only_nodes.is_empty() || named(&placement.only_nodes, id))
            && !named(&placement.avoid_nodes, id)
    });
    let owned: std::collections::HashMap<String, u64> = if placement.spread {
        query_all(
            conn,
            "SELECT node, count(*) FROM hv_vms WHERE owner = ?1 AND state <> 'deleted' \
             AND node IS NOT NULL GROUP BY node",
            [owner],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?
        .into_iter()
        .collect()
    } else {
        std::collections::HashMap::new()
    };
    // A stable sort keeps the most-free-RAM order within each rank.
    let mut ranked: Vec<(u8, u64, String)> = allowed
        .map(|id| {
            let rank = if named(&placement.prefer_nodes, &id) {
                0
            } else if named(&placement.shun_nodes, &id) {
                2
            } else {
                1
            };
            (rank, owned.get(&id).copied().unwrap_or(0), id)
        })
        .collect();
    ranked.sort_by_key(|(rank, owned, _)| (*rank, *owned));
    let constrained = !placement.only_nodes.is_empty() || !placement.avoid_nodes.is_empty();
    ranked
        .into_iter()
        .next()
        .map(|(_, _, id)| id)
        .ok_or_else(|| {
            HvError::Capacity(format!(
                "no {}node has {} vcpus, {} MiB of RAM and {} MiB of disk free",
                if constrained { "allowed " } else { "" },
                size.cpus,
                size.ram_mib,
                size.disk_mib
            ))
        })
}

/// Refuses a growth of `vm` its node has no room for; shrinking always fits.
fn check_room(conn: &Connection, vm: &Vm, grow: Delta) -> Result<(), HvError> {
    let Some(node) = &vm.node else {
        return Ok(());
    };
    let sql = format!("{FREE} WHERE n.id = ?1 GROUP BY n.id");
    let free = conn.prepare_cached(&sql)?.query_row([node], |row| {
        Ok(Delta {
            cpus: row.get(1)?,
            ram: row.get(2)?,
            disk: row.get(3)?,
        })
    })?;
    let short = [
        ("vcpus", grow.cpus, free.cpus),
        ("MiB of RAM", grow.ram, free.ram),
        ("MiB of disk", grow.disk, free.disk),
    ]
    .into_iter()
    .find(|(_, want, free)| *want > 0 && want > free);
    match short {
        Some((what, want, free)) => Err(HvError::Capacity(format!(
            "node {node} has {} {what} free, {want} more asked",
            free.max(0)
        ))),
        None => Ok(()),
    }
}

fn insert_vm(
    conn: &Connection,
    id: &str,
    spec: &VmSpec,
    node: &str,
    plugin: &str,
    now: u64,
) -> Result<(), HvError> {
    conn.prepare_cached(INSERT_VM)?.execute(params![
        id,
        spec.name,
        spec.owner,
        node,
        spec.image,
        spec.cpus,
        spec.ram_mib,
        spec_size(spec).disk_mib,
        CREATE.via.as_str(),
        spec.tags,
        spec.metadata,
        spec.deletion_protection,
        now,
        plugin
    ])?;
    Ok(())
}

fn insert_disk(conn: &Connection, vm: &str, size_mib: u64, boot: bool) -> Result<Disk, HvError> {
    let disk = Disk {
        id: Uuid::new_v4().to_string(),
        size_mib,
        boot,
    };
    conn.prepare_cached("INSERT INTO hv_disks (id, vm, size_mib, boot) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![disk.id, vm, disk.size_mib, disk.boot])?;
    Ok(disk)
}

fn add_disk_mib(conn: &Connection, vm: &str, by: i64) -> Result<(), HvError> {
    conn.prepare_cached("UPDATE hv_vms SET disk_mib = disk_mib + ?2 WHERE id = ?1")?
        .execute(params![vm, by])?;
    Ok(())
}

/// A NIC with the next MAC and the network's lowest free address.
/// A NIC of `vm` on `network`, at `ip` if given, else the next free address.
fn attach_nic(
    conn: &Connection,
    vm: &str,
    network: &Network,
    primary: bool,
    ip: Option<&str>,
) -> Result<Nic, HvError> {
    let ip = match ip {
        Some(ip) => chosen_ip(conn, network, ip)?,
        None => allocate_ip(conn, network)?,
    };
    let nic = Nic {
        mac: next_mac(conn)?,
        network: network.id.clone(),
        ip: Some(ip),
        primary,
        state: "running".into(),
    };
    let sql = "INSERT INTO hv_nics (mac, vm, network, ip, is_primary, state) \
               VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    conn.prepare_cached(sql)?.execute(params![
        nic.mac,
        vm,
        nic.network,
        nic.ip,
        nic.primary,
        nic.state
    ])?;
    Ok(nic)
}

fn next_mac(conn: &Connection) -> Result<String, HvError> {
    let value: u64 = conn
        .prepare_cached(NEXT_MAC)?
        .query_row([], |row| row.get(0))?;
    if value >= 1 << 24 {
        return Err(HvError::Capacity(
            "the simulated MAC range is used up".into(),
        ));
    }
    let [.., a, b, c] = value.to_be_bytes();
    Ok(format!("{MAC_PREFIX}:{a:02x}:{b:02x}:{c:02x}"))
}

/// Where a network's NICs get their addresses: its subnet, narrowed to the
/// provision range of a network `create_network` made.
struct Pool {
    subnet: IpNet,
    gateway: Option<IpAddr>,
    start: Option<IpAddr>,
    end: Option<IpAddr>,
}

impl Pool {
    fn of(conn: &Connection, network: &Network) -> Result<Pool, HvError> {
        let subnet: IpNet = network
            .subnet
            .parse()
            .map_err(|_| HvError::Backend(format!("network {} has a bad subnet", network.id)))?;
        let sql = "SELECT provision_start, provision_end FROM hv_network_plans WHERE network = ?1";
        let (start, end) = query_opt(conn, sql, [&network.id], |row| {
            Ok((
                row.get::<_, Option<String>>(0)?,
                row.get::<_, Option<String>>(1)?,
            ))
        })?
        .unwrap_or_default();
        Ok(Pool {
            subnet,
            gateway: network.gateway.as_deref().and_then(|ip| ip.parse().ok()),
            start: start.and_then(|ip| ip.parse().ok()),
            end: end.and_then(|ip| ip.parse().ok()),
        })
    }

    /// The gateway, and an IPv4 subnet's network and broadcast addresses.
    fn managed(&self, ip: IpAddr) -> bool {
        Some(ip) == self.gateway
            || matches!(self.subnet, IpNet::V4(net) if net.prefix_len() < 31
                && (ip == IpAddr::V4(net.network()) || ip == IpAddr::V4(net.broadcast())))
    }

    /// The addresses NICs may be given, lowest first (gateway excluded).
    fn candidates(&self) -> Box<dyn Iterator<Item = IpAddr> + '_> {
        let usable = move |ip: &IpAddr| !self.managed(*ip);
        match self.subnet {
            IpNet::V4(net) => {
                let (mut low, mut high) = (u32::from(net.network()), u32::from(net.broadcast()));
                if let Some(IpAddr::V4(start)) = self.start {
                    low = low.max(u32::from(start));
                }
                if let Some(IpAddr::V4(end)) = self.end {
                    high = high.min(u32::from(end));
                }
                Box::new((low..=high).map(|n| IpAddr::V4(n.into())).filter(usable))
            }
            IpNet::V6(_) => Box::new(self.subnet.hosts().filter(usable).filter(|ip| {
                self.start.is_none_or(|start| *ip >= start) && self.end.is_none_or(|end| *ip <= end)
            })),
        }
    }
}

/// `ip` in canonical form if it is a host address of the network's subnet
/// (not its gateway, network or broadcast address); `Invalid` otherwise.
fn host_address(conn: &Connection, network: &Network, ip: &str) -> Result<String, HvError> {
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| HvError::Invalid(format!("{ip:?} is not an IP address")))?;
    let pool = Pool::of(conn, network)?;
    if !pool.subnet.contains(&ip) || pool.managed(ip) {
        return Err(HvError::Invalid(format!(
            "{ip} is not a host address of network {}",
            network.name
        )));
    }
    Ok(ip.to_string())
}

/// `ip` as a NIC's address on `network`: a host address of its subnet that
/// no NIC holds. Reserved addresses are allowed: reserving keeps an address
/// from being handed out, not from being asked for.
fn chosen_ip(conn: &Connection, network: &Network, ip: &str) -> Result<String, HvError> {
    let ip = host_address(conn, network, ip)?;
    let held = "SELECT EXISTS (SELECT 1 FROM hv_nics WHERE network = ?1 AND ip = ?2)";
    if conn.query_row(held, [&network.id, &ip], |row| row.get::<_, bool>(0))? {
        return Err(HvError::Conflict(format!(
            "{ip} on network {} is in use",
            network.name
        )));
    }
    Ok(ip)
}

/// The lowest host address of the network's provision range that is neither
/// its gateway, held by a NIC nor reserved.
fn allocate_ip(conn: &Connection, network: &Network) -> Result<String, HvError> {
    let pool = Pool::of(conn, network)?;
    let sql = "SELECT ip FROM hv_nics WHERE network = ?1 AND ip IS NOT NULL \
               UNION SELECT ip FROM hv_reserved_ips WHERE network = ?1";
    let used: HashSet<IpAddr> = query_all(conn, sql, [&network.id], |row| row.get::<_, String>(0))?
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    pool.candidates()
        .find(|ip| !used.contains(ip))
        .map(|ip| ip.to_string())
        .ok_or_else(|| HvError::Capacity(format!("network {} has no free address", network.name)))
}

fn network_by_id(conn: &Connection, id: &str) -> Result<Network, HvError> {
    let sql = format!("{SELECT_NETWORKS} WHERE id = ?1");
    query_opt(conn, &sql, [id], network_from)?
        .ok_or_else(|| HvError::NotFound(format!("network {id}")))
}

/// A network `create_network` made; `Invalid` for a site network.
fn planned_network(conn: &Connection, id: &str) -> Result<Network, HvError> {
    let network = network_by_id(conn, id)?;
    let sql = "SELECT EXISTS (SELECT 1 FROM hv_network_plans WHERE network = ?1)";
    if !conn.query_row(sql, [id], |row| row.get::<_, bool>(0))? {
        return Err(HvError::Invalid(format!(
            "network {id} is a site network; only networks made by create-network change"
        )));
    }
    Ok(network)
}

fn write_plan(conn: &Connection, id: &str, network: &NewNetwork) -> Result<(), HvError> {
    let resolvers = serde_json::to_string(&network.resolvers)
        .map_err(|error| HvError::Backend(error.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO hv_network_plans (network, provision_start, provision_end, resolvers, routes) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (network) DO UPDATE SET \
         provision_start = excluded.provision_start, provision_end = excluded.provision_end, \
         resolvers = excluded.resolvers, routes = excluded.routes",
    )?
    .execute(params![
        id,
        network.provision_start,
        network.provision_end,
        resolvers,
        network.routes
    ])?;
    Ok(())
}

fn snapshot(conn: &Connection, vm: &str, name: &str) -> Result<Option<Snapshot>, HvError> {
    let sql = "SELECT name, state, created FROM hv_snapshots WHERE vm = ?1 AND name = ?2";
    query_opt(conn, sql, [vm, name], snapshot_from)
}

fn existing_snapshot(conn: &Connection, vm: &str, name: &str) -> Result<Snapshot, HvError> {
    snapshot(conn, vm, name)?
        .ok_or_else(|| HvError::NotFound(format!("snapshot {name:?} of vm {vm}")))
}

/// Applies a new size to a stopped VM at once (its boot disk takes any disk
/// growth), so the node's capacity is right while the job runs.
fn resize_in_place(conn: &Connection, vm: &Vm, size: Size) -> Result<serde_json::Value, HvError> {
    if size.disk_mib < vm.disk_mib {
        return Err(HvError::Invalid(format!(
            "a disk cannot shrink: {} MiB asked, {} MiB now",
            size.disk_mib, vm.disk_mib
        )));
    }
    let grow = Delta {
        cpus: i64::from(size.cpus) - i64::from(vm.cpus),
        ram: signed(size.ram_mib) - signed(vm.ram_mib),
        disk: signed(size.disk_mib) - signed(vm.disk_mib),
    };
    check_room(conn, vm, grow)?;
    conn.prepare_cached("UPDATE hv_vms SET cpus = ?2, ram_mib = ?3 WHERE id = ?1")?
        .execute(params![vm.id, size.cpus, size.ram_mib])?;
    add_disk_mib(conn, &vm.id, grow.disk)?;
    conn.prepare_cached("UPDATE hv_disks SET size_mib = size_mib + ?2 WHERE vm = ?1 AND boot = 1")?
        .execute(params![vm.id, grow.disk])?;
    Ok(json!({ "cpus": size.cpus, "ram_mib": size.ram_mib, "disk_mib": size.disk_mib }))
}

fn create_parameters(spec: &VmSpec, node: &str, networks: &[Network]) -> serde_json::Value {
    let networks: Vec<&str> = networks.iter().map(|n| n.id.as_str()).collect();
    json!({
        "name": spec.name,
        "image": spec.image,
        "cpus": spec.cpus,
        "ram_mib": spec.ram_mib,
        "disk_mib": spec.disk_mib,
        "data_disks": spec.data_disks,
        "networks": networks,
        "node": node,
    })
}

/// The filter as a SQL condition over fixed column names, with its values bound.
fn vm_condition(query: &VmQuery) -> Result<(String, Vec<Value>), HvError> {
    let filter = &query.filter;
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    match filter.state {
        Some(state) => {
            clauses.push("state = ?");
            values.push(Value::Text(state.as_str().to_owned()));
        }
        None if query.tombstone => {}
        None => clauses.push("state <> 'deleted'"),
    }
    let columns = [
        ("owner = ?", &filter.owner),
        ("name = ?", &filter.name),
        ("image = ?", &filter.image),
        ("node = ?", &filter.node),
    ];
    for (clause, value) in columns {
        if let Some(value) = value {
            clauses.push(clause);
            values.push(Value::Text(value.clone()));
        }
    }
    if let Some(ram) = query.ram_mib {
        clauses.push("ram_mib = ?");
        values.push(Value::Integer(signed(ram)));
    }
    for tag in filter.tag.iter().chain(&query.tags) {
        if tag == "*" {
            clauses.push("tags <> '{}'");
            continue;
        }
        let (key, value) = split_tag(tag)?;
        if plain_text(value) {
            // A cheap necessary condition first: a text value must appear as
            // written in the tags' JSON, so most other rows skip `json_each`.
            clauses.push("instr(tags, ?) > 0");
            values.push(Value::Text(value.to_owned()));
        }
        clauses.push(TAG_MATCH);
        values.push(Value::Text(key.to_owned()));
        values.push(Value::Text(value.to_owned()));
    }
    // One JSON array parameter per list, however long it is.
    let lists = [
        (
            "image IN (SELECT value FROM json_each(?))",
            query.images.as_ref(),
        ),
        ("id IN (SELECT value FROM json_each(?))", query.ids.as_ref()),
        (
            "id NOT IN (SELECT value FROM json_each(?))",
            Some(&query.not_ids).filter(|ids| !ids.is_empty()),
        ),
    ];
    for (clause, list) in lists {
        if let Some(list) = list {
            clauses.push(clause);
            values.push(Value::Text(json!(list).to_string()));
        }
    }
    if clauses.is_empty() {
        clauses.push("1");
    }
    Ok((clauses.join(" AND "), values))
}

/// Whether `value` appears verbatim in any JSON text holding it as a tag
/// value: not empty, nothing JSON escapes, and not a number (whose text SQLite
/// may render differently).
fn plain_text(value: &str) -> bool {
    !value.is_empty()
        && value.parse::<f64>().is_err()
        && !value
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
}

/// A normalised JSON text as a value (it was checked on the way in).
fn parsed(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// A size as SQLite's signed integer; sizes are validated far below the limit.
fn signed(mib: u64) -> i64 {
    i64::try_from(mib).unwrap_or(i64::MAX)
}

fn clamp(count: u64) -> i64 {
    signed(count)
}

fn now_ms() -> u64 {
    // A clock before 1970 reads as the epoch.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::api::{Hypervisor, NewImage};
    use super::super::config::{HypervisorSettings, SIM_BACKEND};
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const TABLES: [&str; 8] = [
        "hv_nodes",
        "hv_images",
        "hv_networks",
        "hv_vms",
        "hv_disks",
        "hv_snapshots",
        "hv_nics",
        "hv_audit",
    ];

    /// A simulated site whose transitions complete on demand.
    struct Site {
        hv: Hypervisor,
        db: Database,
        /// The alpine image's id (1 GiB).
        image: String,
    }

    fn instant() -> SimSettings {
        SimSettings {
            transition_delay_ms: 0,
            ..SimSettings::default()
        }
    }

    impl Site {
        fn open() -> Result<Site, HvError> {
            Site::with(instant())
        }

        fn with(sim: SimSettings) -> Result<Site, HvError> {
            let db = Database::open_in_memory_for_tests()?;
            let settings = HypervisorSettings {
                backend: SIM_BACKEND.into(),
                sim,
                ..HypervisorSettings::default()
            };
            let hv = Hypervisor::open(db.clone(), &settings, std::path::Path::new("."))?;
            let image = image_id(&hv, "alpine-3.20")?;
            Ok(Site { hv, db, image })
        }

        /// Alice's private image `name`, version 1, with these extra fields.
        fn alices_image(&self, name: &str, extra: &str) -> Result<Image, HvError> {
            self.hv.import_image(&NewImage {
                name: name.into(),
                version: "1".into(),
                os: "linux".into(),
                image_type: "zvol".into(),
                size_mib: 1024,
                owner: Some("alice".into()),
                public: false,
                extra: extra.into(),
            })
        }

        /// Alice's VM of 1 vCPU, 1 GiB of RAM and 2 GiB of disk.
        fn spec(&self, name: &str) -> VmSpec {
            VmSpec {
                name: name.into(),
                owner: "alice".into(),
                image: self.image.clone(),
                cpus: 1,
                ram_mib: 1024,
                disk_mib: 2048,
                ..VmSpec::default()
            }
        }

        fn spec_with(&self, name: &str, change: impl FnOnce(&mut VmSpec)) -> VmSpec {
            let mut spec = self.spec(name);
            change(&mut spec);
            spec
        }

        /// Creates the VM and completes its provisioning.
        fn create(&self, spec: &VmSpec) -> Result<Vm, HvError> {
            let (_, transition) = self.hv.create_vm(spec, "alice", "cloudapi")?;
            self.hv.complete(&transition.id)
        }

        fn running(&self, name: &str) -> Result<Vm, HvError> {
            self.create(&self.spec(name))
        }

        fn stopped(&self, name: &str) -> Result<Vm, HvError> {
            let vm = self.running(name)?;
            self.act(&vm.id, VmAction::Stop)
        }

        /// Runs the action through to its target state.
        fn act(&self, id: &str, action: VmAction) -> Result<Vm, HvError> {
            let transition = self.hv.act(id, action, "alice")?;
            self.hv.complete(&transition.id)
        }

        fn vm(&self, id: &str) -> Result<Vm, HvError> {
            self.hv
                .get_vm(id)?
                .ok_or_else(|| HvError::NotFound(id.into()))
        }

        /// The names on the page, and the total.
        fn names(&self, filter: &VmFilter) -> Result<(Vec<String>, u64), HvError> {
            let page = self.hv.list_vms(filter)?;
            Ok((page.vms.into_iter().map(|vm| vm.name).collect(), page.total))
        }

        /// Every row of every `hv_` table, to show that a refused call wrote nothing.
        fn dump(&self) -> Result<Vec<String>, HvError> {
            self.db.with_conn(|conn| {
                let mut rows = Vec::new();
                for table in TABLES {
                    let mut statement = conn.prepare(&format!("SELECT * FROM {table}"))?;
                    let width = statement.column_count();
                    let mut query = statement.query([])?;
                    while let Some(row) = query.next()? {
                        let values = (0..width)
                            .map(|i| row.get::<_, Value>(i))
                            .collect::<Result<Vec<_>, _>>()?;
                        rows.push(format!("{table} {values:?}"));
                    }
                }
                Ok(rows)
            })
        }
    }

    fn filter(change: impl FnOnce(&mut VmFilter)) -> VmFilter {
        let mut filter = VmFilter::default();
        change(&mut filter);
        filter
    }

    fn image_id(hv: &Hypervisor, name: &str) -> Result<String, HvError> {
        hv.list_images()?
            .into_iter()
            .find(|image| image.name == name)
            .map(|image| image.id)
            .ok_or_else(|| HvError::NotFound(name.into()))
    }

    fn actions(entries: &[AuditEntry]) -> Vec<&str> {
        entries.iter().map(|entry| entry.action.as_str()).collect()
    }

    #[test]
    fn a_fresh_site_has_the_default_inventory() -> TestResult {
        let site = Site::open()?;
        let nodes = site.hv.list_nodes()?;
        let names: Vec<&str> = nodes.iter().map(|node| node.name.as_str()).collect();
        assert_eq!(names, ["sim-node-1", "sim-node-2"]);
        assert_eq!((nodes[0].cpus, nodes[0].ram_mib), (16, 65_536));
        assert_eq!(site.hv.list_images()?.len(), 4);
        let networks = site.hv.list_networks()?;
        assert_eq!(networks[0].subnet, "10.88.0.0/16");
        assert_eq!(networks[1].vlan, Some(100));
        assert_eq!(Uuid::parse_str(&nodes[0].id)?.get_version_num(), 8);
        Ok(())
    }

    #[test]
    fn seeding_again_duplicates_nothing_and_keeps_ids() -> TestResult {
        let site = Site::open()?;
        let before = site.dump()?;
        SimBackend::open(site.db.clone(), &instant())?;
        SimBackend::open(site.db.clone(), &instant())?;
        assert_eq!(site.dump()?, before);
        Ok(())
    }

    #[test]
    fn every_fresh_site_gives_seeds_the_same_ids() -> TestResult {
        let (one, two) = (Site::open()?, Site::open()?);
        assert_eq!(one.hv.list_nodes()?, two.hv.list_nodes()?);
        assert_eq!(one.hv.list_networks()?, two.hv.list_networks()?);
        assert_eq!(one.image, two.image);
        Ok(())
    }

    #[test]
    fn a_changed_seed_updates_its_row_in_place() -> TestResult {
        let site = Site::open()?;
        let before = site.hv.list_nodes()?;
        let mut sim = instant();
        sim.nodes[0].cpus = 64;
        SimBackend::open(site.db.clone(), &sim)?;
        let after = site.hv.list_nodes()?;
        assert_eq!(after.len(), 2);
        assert_eq!((&after[0].id, after[0].cpus), (&before[0].id, 64));
        Ok(())
    }

    #[test]
    fn transition_delay_comes_from_the_settings() -> TestResult {
        assert_eq!(Site::open()?.hv.transition_delay(), Duration::ZERO);
        let slow = Site::with(SimSettings::default())?;
        assert_eq!(slow.hv.transition_delay(), Duration::from_secs(1));
        Ok(())
    }

    #[test]
    fn create_provisions_and_complete_runs_the_vm() -> TestResult {
        let site = Site::open()?;
        let (vm, transition) = site.hv.create_vm(&site.spec("web"), "alice", "cloudapi")?;
        assert_eq!(
            (vm.state, vm.creator.as_str()),
            (VmState::Provisioning, "cloudapi")
        );
        assert_eq!(transition.action, Operation::Create);
        assert_eq!(
            (transition.vm_id.as_str(), transition.target_state),
            (vm.id.as_str(), VmState::Running)
        );
        assert_eq!(vm.node, Some(site.hv.list_nodes()?[0].id.clone()));
        assert_eq!(vm.ips, ["10.88.0.2"]);
        assert_eq!(
            (vm.nics[0].mac.as_str(), vm.nics[0].primary),
            ("52:54:00:00:00:01", true)
        );
        assert_eq!(
            (vm.disks.len(), vm.disks[0].size_mib, vm.disks[0].boot),
            (1, 2048, true)
        );
        let pending = &site.hv.audit(&vm.id)?[0];
        assert_eq!((pending.pending, pending.success), (true, false));
        assert_eq!(site.hv.complete(&transition.id)?.state, VmState::Running);
        let done = &site.hv.audit(&vm.id)?[0];
        assert_eq!(
            (done.action.as_str(), done.caller.as_str()),
            ("create", "alice")
        );
        assert_eq!((done.pending, done.success), (false, true));
        Ok(())
    }

    #[test]
    fn power_actions_pass_through_their_intermediate_states() -> TestResult {
        use VmAction::*;
        use VmState::*;
        let site = Site::open()?;
        let cases = [
            (Stopped, Start, Starting, Running),
            (Running, Stop, Stopping, Stopped),
            (Running, Reboot, Rebooting, Running),
            (Running, Delete, Stopping, Deleted),
            (Stopped, Delete, Stopping, Deleted),
        ];
        for (index, (from, action, via, to)) in cases.into_iter().enumerate() {
            let name = format!("vm{index}");
            let vm = if from == Stopped {
                site.stopped(&name)?
            } else {
                site.running(&name)?
            };
            let transition = site.hv.act(&vm.id, action, "bob")?;
            assert_eq!(transition.target_state, to, "{action:?}");
            assert_eq!(site.vm(&vm.id)?.state, via, "{action:?}");
            assert_eq!(site.hv.complete(&transition.id)?.state, to, "{action:?}");
            let audit = &site.hv.audit(&vm.id)?[0];
            assert_eq!((audit.caller.as_str(), audit.success), ("bob", true));
        }
        Ok(())
    }

    #[test]
    fn a_failed_vm_can_only_be_deleted() -> TestResult {
        let site = Site::open()?;
        let (vm, transition) = site.hv.create_vm(&site.spec("web"), "alice", "cloudapi")?;
        site.hv.fail(&transition.id, "no bootable disk")?;
        let start = site.hv.act(&vm.id, VmAction::Start, "alice");
        assert_eq!(start, Err(HvError::IllegalTransition("failed".into())));
        assert_eq!(site.act(&vm.id, VmAction::Delete)?.state, VmState::Deleted);
        Ok(())
    }

    #[test]
    fn illegal_transitions_are_typed_and_write_nothing() -> TestResult {
        let site = Site::open()?;
        let on = site.running("running")?.id;
        let off = site.stopped("stopped")?.id;
        let new = site
            .hv
            .create_vm(&site.spec("new"), "alice", "cloudapi")?
            .0
            .id;
        let gone = site.act(&site.running("gone")?.id, VmAction::Delete)?.id;
        let (hv, a) = (&site.hv, "alice");
        let before = site.dump()?;
        let cases: [(Result<(), HvError>, &str); 12] = [
            (hv.act(&on, VmAction::Start, a).map(drop), "running"),
            (hv.act(&off, VmAction::Stop, a).map(drop), "stopped"),
            (hv.act(&off, VmAction::Reboot, a).map(drop), "stopped"),
            (hv.act(&new, VmAction::Stop, a).map(drop), "provisioning"),
            (hv.act(&new, VmAction::Delete, a).map(drop), "provisioning"),
            (hv.act(&gone, VmAction::Delete, a).map(drop), "deleted"),
            (hv.resize(&on, 2, 2048, 4096, a).map(drop), "running"),
            (hv.snapshot_rollback(&on, "s", a).map(drop), "running"),
            (hv.rename(&new, "x", a).map(drop), "provisioning"),
            (hv.add_disk(&gone, 10, a).map(drop), "deleted"),
            (hv.add_nic(&new, "public", a).map(drop), "provisioning"),
            (hv.snapshot_create(&gone, "s", a).map(drop), "deleted"),
        ];
        for (index, (result, state)) in cases.into_iter().enumerate() {
            assert_eq!(
                result,
                Err(HvError::IllegalTransition(state.into())),
                "case {index}"
            );
        }
        assert_eq!(site.dump()?, before);
        Ok(())
    }

    #[test]
    fn a_transition_under_way_blocks_other_changes_until_it_ends() -> TestResult {
        let site = Site::open()?;
        let vm = site.stopped("web")?;
        let resize = site.hv.resize(&vm.id, 2, 2048, 2048, "alice")?;
        let start = site.hv.act(&vm.id, VmAction::Start, "alice");
        assert!(matches!(start, Err(HvError::Conflict(_))), "{start:?}");
        let rename = site.hv.rename(&vm.id, "other", "alice");
        assert!(matches!(rename, Err(HvError::Conflict(_))), "{rename:?}");
        site.hv.complete(&resize.id)?;
        assert_eq!(site.act(&vm.id, VmAction::Start)?.state, VmState::Running);
        Ok(())
    }

    #[test]
    fn a_protected_vm_is_not_deleted_until_protection_is_lifted() -> TestResult {
        let site = Site::open()?;
        let vm = site.create(&site.spec_with("keep", |s| s.deletion_protection = true))?;
        let before = site.dump()?;
        let delete = site.hv.act(&vm.id, VmAction::Delete, "alice");
        assert_eq!(delete, Err(HvError::Protected));
        assert_eq!(site.dump()?, before);
        let vm = site.hv.set_deletion_protection(&vm.id, false, "alice")?;
        assert!(!vm.deletion_protection);
        assert_eq!(site.act(&vm.id, VmAction::Delete)?.state, VmState::Deleted);
        Ok(())
    }

    #[test]
    fn a_create_that_fits_nowhere_is_a_capacity_error_and_writes_nothing() -> TestResult {
        let site = Site::open()?;
        site.running("small")?;
        let before = site.dump()?;
        let huge = [
            site.spec_with("cpu", |s| s.cpus = 17),
            site.spec_with("ram", |s| s.ram_mib = 65_537),
            site.spec_with("disk", |s| s.disk_mib = 1_048_577),
        ];
        for spec in huge {
            let result = site.hv.create_vm(&spec, "alice", "cloudapi");
            assert!(matches!(result, Err(HvError::Capacity(_))), "{}", spec.name);
        }
        assert_eq!(site.dump()?, before);
        Ok(())
    }

    #[test]
    fn placement_picks_the_node_with_the_most_free_ram_then_by_name() -> TestResult {
        let site = Site::open()?;
        let nodes: Vec<Option<String>> = site
            .hv
            .list_nodes()?
            .into_iter()
            .map(|n| Some(n.id))
            .collect();
        let big = site.create(&site.spec_with("big", |s| s.ram_mib = 8192))?;
        let second = site.running("second")?;
        let third = site.running("third")?;
        assert_eq!(
            [big.node, second.node, third.node],
            [&nodes[0], &nodes[1], &nodes[1]].map(Clone::clone)
        );
        Ok(())
    }

    #[test]
    fn a_placement_restricts_and_prefers_nodes_by_id_or_name() -> TestResult {
        let site = Site::open()?;
        let nodes: Vec<Node> = site.hv.list_nodes()?;
        let (one, two) = (&nodes[0], &nodes[1]);
        let placed = |name: &str, placement: Placement| -> Result<Option<String>, HvError> {
            let (vm, transition) =
                site.hv
                    .create_vm_placed(&site.spec(name), &placement, "alice", "cloudapi")?;
            site.hv.complete(&transition.id)?;
            Ok(vm.node)
        };
        // Unconstrained, both nodes are empty and node 1 wins by name.
        let only_two = Placement {
            only_nodes: vec![two.name.clone()],
            ..Placement::default()
        };
        assert_eq!(placed("a", only_two)?, Some(two.id.clone()));
        let avoid_two = Placement {
            avoid_nodes: vec![two.id.clone()],
            ..Placement::default()
        };
        assert_eq!(placed("b", avoid_two)?, Some(one.id.clone()));
        // Node 2 has more free RAM now; a preference for node 1 wins.
        site.create(&site.spec_with("big", |s| s.ram_mib = 8192))?;
        let prefer_one = Placement {
            prefer_nodes: vec![one.name.clone()],
            ..Placement::default()
        };
        assert_eq!(placed("c", prefer_one)?, Some(one.id.clone()));
        let shun_two = Placement {
            shun_nodes: vec![two.id.clone()],
            ..Placement::default()
        };
        assert_eq!(placed("d", shun_two)?, Some(one.id.clone()));
        // A soft rule never fails a create: shunning both still places it.
        let shun_both = Placement {
            shun_nodes: vec![one.id.clone(), two.id.clone()],
            prefer_nodes: vec!["no-such-node".into()],
            ..Placement::default()
        };
        assert!(placed("e", shun_both)?.is_some());
        Ok(())
    }

    #[test]
    fn a_placement_no_allowed_node_fits_is_a_capacity_error_and_writes_nothing() -> TestResult {
        let site = Site::open()?;
        let nodes = site.hv.list_nodes()?;
        let before = site.dump()?;
        let refused = [
            Placement {
                only_nodes: vec!["no-such-node".into()],
                ..Placement::default()
            },
            Placement {
                avoid_nodes: nodes.iter().map(|n| n.name.clone()).collect(),
                ..Placement::default()
            },
            Placement {
                only_nodes: vec![nodes[0].id.clone()],
                avoid_nodes: vec![nodes[0].name.clone()],
                ..Placement::default()
            },
        ];
        for placement in refused {
            let result = site
                .hv
                .create_vm_placed(&site.spec("x"), &placement, "alice", "cloudapi");
            assert!(matches!(result, Err(HvError::Capacity(_))), "{placement:?}");
        }
        // Room on node 1 only for the ask: a too-big VM pinned there is refused.
        let pinned = Placement {
            only_nodes: vec![nodes[0].id.clone()],
            ..Placement::default()
        };
        let huge = site.spec_with("huge", |s| s.ram_mib = nodes[0].ram_mib + 1);
        let result = site
            .hv
            .create_vm_placed(&huge, &pinned, "alice", "cloudapi");
        assert!(matches!(result, Err(HvError::Capacity(_))));
        assert_eq!(site.dump()?, before);
        Ok(())
    }

    #[test]
    fn a_placement_may_choose_the_vm_id_once() -> TestResult {
        let site = Site::open()?;
        let chosen = "0A1B2C3D-0000-4000-8000-00000000000A";
        let placement = Placement {
            vm_id: Some(chosen.into()),
            ..Placement::default()
        };
        let (vm, _) = site
            .hv
            .create_vm_placed(&site.spec("a"), &placement, "alice", "cloudapi")?;
        assert_eq!(vm.id, chosen.to_lowercase());
        let again = site
            .hv
            .create_vm_placed(&site.spec("b"), &placement, "alice", "cloudapi");
        assert!(matches!(again, Err(HvError::Conflict(_))));
        let bad = Placement {
            vm_id: Some("not-a-uuid".into()),
            ..Placement::default()
        };
        let refused = site
            .hv
            .create_vm_placed(&site.spec("c"), &bad, "alice", "cloudapi");
        assert!(matches!(refused, Err(HvError::Invalid(_))));
        Ok(())
    }

    #[test]
    fn deleting_frees_capacity_only_once_the_vm_is_deleted() -> TestResult {
        let mut sim = instant();
        sim.nodes.truncate(1);
        sim.nodes[0].cpus = 4;
        let site = Site::with(sim)?;
        let first = site.create(&site.spec_with("whole", |s| s.cpus = 4))?;
        let next = site.spec_with("next", |s| s.cpus = 4);
        let refused = site.hv.create_vm(&next, "alice", "p");
        assert!(matches!(refused, Err(HvError::Capacity(_))), "{refused:?}");
        let delete = site.hv.act(&first.id, VmAction::Delete, "alice")?;
        let still = site.hv.create_vm(&next, "alice", "p");
        assert!(matches!(still, Err(HvError::Capacity(_))), "{still:?}");
        site.hv.complete(&delete.id)?;
        assert_eq!(site.create(&next)?.state, VmState::Running);
        Ok(())
    }

    #[test]
    fn addresses_are_the_lowest_free_and_come_back_when_a_vm_is_deleted() -> TestResult {
        let site = Site::open()?;
        let vms = ["a", "b", "c"]
            .map(|name| site.running(name))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let ips: Vec<&str> = vms.iter().map(|vm| vm.ips[0].as_str()).collect();
        assert_eq!(ips, ["10.88.0.2", "10.88.0.3", "10.88.0.4"]);
        let deleted = site.act(&vms[1].id, VmAction::Delete)?;
        assert_eq!((deleted.nics.len(), deleted.ips.len()), (0, 0));
        assert_eq!(site.running("d")?.ips, ["10.88.0.3"]);
        Ok(())
    }

    #[test]
    fn concurrent_creates_never_share_an_address_or_a_mac() -> TestResult {
        let site = Site::open()?;
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let hv = site.hv.clone();
                let specs: Vec<VmSpec> = (0..8)
                    .map(|i| site.spec(&format!("t{thread}-{i}")))
                    .collect();
                std::thread::spawn(move || -> Result<Vec<Vm>, HvError> {
                    specs
                        .iter()
                        .map(|spec| Ok(hv.create_vm(spec, "alice", "p")?.0))
                        .collect()
                })
            })
            .collect();
        let mut vms = Vec::new();
        for thread in threads {
            vms.extend(thread.join().map_err(|_| "thread panicked")??);
        }
        let ips: HashSet<&str> = vms
            .iter()
            .flat_map(|vm| &vm.ips)
            .map(String::as_str)
            .collect();
        let macs: HashSet<&str> = vms.iter().map(|vm| vm.nics[0].mac.as_str()).collect();
        // 32 one-vCPU VMs fill both 16-vCPU nodes exactly.
        assert_eq!((vms.len(), ips.len(), macs.len()), (32, 32, 32));
        assert!(ips.contains("10.88.0.2") && ips.contains("10.88.0.33"));
        Ok(())
    }

    #[test]
    fn an_exhausted_network_is_a_capacity_error() -> TestResult {
        let mut sim = instant();
        sim.networks[0].subnet = "10.9.9.0/30".into();
        sim.networks[0].gateway = Some("10.9.9.1".into());
        let site = Site::with(sim)?;
        assert_eq!(site.running("only")?.ips, ["10.9.9.2"]);
        let before = site.dump()?;
        let full = site.hv.create_vm(&site.spec("more"), "alice", "p");
        assert!(matches!(full, Err(HvError::Capacity(_))), "{full:?}");
        assert_eq!(site.dump()?, before);
        Ok(())
    }

    #[test]
    fn macs_count_up_from_the_counter() -> TestResult {
        let site = Site::open()?;
        let first = site.running("a")?;
        let second = site.running("b")?;
        let third = site.hv.add_nic(&first.id, "private", "alice")?;
        let macs = [&first.nics[0].mac, &second.nics[0].mac, &third.mac];
        assert_eq!(
            macs,
            [
                "52:54:00:00:00:01",
                "52:54:00:00:00:02",
                "52:54:00:00:00:03"
            ]
        );
        Ok(())
    }

    #[test]
    fn networks_are_named_by_id_or_name_and_default_to_the_first_public_one() -> TestResult {
        let site = Site::open()?;
        let private = site.hv.list_networks()?[1].id.clone();
        let two = site.spec_with("two", |s| {
            s.networks = vec![private.clone(), "public".into()]
        });
        let vm = site.create(&two)?;
        assert_eq!(vm.ips, ["192.168.128.2", "10.88.0.2"]);
        assert_eq!(
            (&vm.nics[0].network, vm.nics[0].primary, vm.nics[1].primary),
            (&private, true, false)
        );
        let unknown = site.spec_with("x", |s| s.networks = vec!["nowhere".into()]);
        let result = site.hv.create_vm(&unknown, "alice", "p");
        assert!(matches!(result, Err(HvError::NotFound(_))), "{result:?}");
        Ok(())
    }

    #[test]
    fn a_disk_smaller_than_its_image_is_invalid() -> TestResult {
        let site = Site::open()?;
        let result = site
            .hv
            .create_vm(&site.spec_with("tiny", |s| s.disk_mib = 512), "alice", "p");
        assert!(matches!(result, Err(HvError::Invalid(_))), "{result:?}");
        Ok(())
    }

    #[test]
    fn invalid_input_is_refused_before_anything_is_written() -> TestResult {
        let site = Site::open()?;
        let before = site.dump()?;
        let specs = [
            site.spec(""),
            site.spec_with("x", |s| s.owner = "a\nb".into()),
            site.spec_with("x", |s| s.cpus = 0),
            site.spec_with("x", |s| s.ram_mib = 0),
            site.spec_with("x", |s| s.tags = "[1]".into()),
            site.spec_with("x", |s| s.metadata = "{".into()),
        ];
        for spec in &specs {
            let result = site.hv.create_vm(spec, "alice", "p");
            assert!(matches!(result, Err(HvError::Invalid(_))), "{spec:?}");
        }
        let no_caller = site.hv.create_vm(&site.spec("x"), "", "p");
        assert!(matches!(no_caller, Err(HvError::Invalid(_))));
        let bad_tag = site.hv.list_vms(&filter(|f| f.tag = Some("role".into())));
        assert!(matches!(bad_tag, Err(HvError::Invalid(_))));
        assert_eq!(site.dump()?, before);
        Ok(())
    }

    #[test]
    fn an_unknown_vm_or_transition_is_not_found() -> TestResult {
        let site = Site::open()?;
        let hv = &site.hv;
        assert_eq!(hv.get_vm("nope")?, None);
        let results = [
            hv.act("nope", VmAction::Start, "a").map(drop),
            hv.rename("nope", "x", "a").map(drop),
            hv.list_snapshots("nope").map(drop),
            hv.audit("nope").map(drop),
            hv.complete("nope").map(drop),
            hv.fail("nope", "why").map(drop),
        ];
        for result in results {
            assert!(matches!(result, Err(HvError::NotFound(_))), "{result:?}");
        }
        Ok(())
    }

    #[test]
    fn list_filters_by_owner_state_name_image_and_node() -> TestResult {
        let site = Site::open()?;
        let a = site.create(&site.spec_with("a", |s| s.ram_mib = 8192))?;
        let b = site.stopped("b")?;
        let ubuntu = image_id(&site.hv, "ubuntu-24.04")?;
        site.create(&site.spec_with("c", |s| {
            (s.owner, s.image, s.disk_mib) = ("bob".into(), ubuntu.clone(), 10_240);
        }))?;
        let cases = [
            (filter(|f| f.owner = Some("alice".into())), vec!["a", "b"]),
            (filter(|f| f.state = Some(VmState::Stopped)), vec!["b"]),
            (filter(|f| f.name = Some("c".into())), vec!["c"]),
            (filter(|f| f.image = Some(ubuntu)), vec!["c"]),
            (filter(|f| f.node = a.node), vec!["a"]),
            (
                filter(|f| (f.node, f.owner) = (b.node, Some("bob".into()))),
                vec!["c"],
            ),
        ];
        for (filter, expected) in cases {
            let (names, total) = site.names(&filter)?;
            assert_eq!(
                (names, total),
                (
                    expected.iter().map(|n| n.to_string()).collect(),
                    expected.len() as u64
                ),
                "{filter:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn list_pages_in_creation_order_and_counts_every_match() -> TestResult {
        let site = Site::open()?;
        for name in ["v1", "v2", "v3", "v4", "v5"] {
            site.running(name)?;
        }
        let (page, total) = site.names(&filter(|f| (f.offset, f.limit) = (1, Some(2))))?;
        assert_eq!((page, total), (vec!["v2".into(), "v3".into()], 5));
        let (past_end, total) = site.names(&filter(|f| f.offset = 9))?;
        assert_eq!((past_end.len(), total), (0, 5));
        let all = site.hv.list_vms(&VmFilter::default())?;
        assert_eq!((all.vms.len(), all.vms[4].disks.len()), (5, 1));
        Ok(())
    }

    #[test]
    fn deleted_vms_are_listed_only_when_asked_for() -> TestResult {
        let site = Site::open()?;
        site.running("live")?;
        let gone = site.running("gone")?;
        site.act(&gone.id, VmAction::Delete)?;
        assert_eq!(site.names(&VmFilter::default())?, (vec!["live".into()], 1));
        let deleted = filter(|f| f.state = Some(VmState::Deleted));
        assert_eq!(site.names(&deleted)?, (vec!["gone".into()], 1));
        assert_eq!(site.vm(&gone.id)?.state, VmState::Deleted);
        Ok(())
    }

    #[test]
    fn the_change_feed_follows_every_write_to_a_vm_whoever_makes_it() -> TestResult {
        let site = Site::open()?;
        let changed = |after: u64| -> Result<(Vec<String>, u64, bool), HvError> {
            let page = site.hv.vm_changes_since(after, 1000)?;
            let names = page
                .changes
                .iter()
                .map(|c| c.vm.as_ref().map_or("?".into(), |vm| vm.name.clone()))
                .collect();
            Ok((names, page.cursor, page.more))
        };
        let (none, start, more) = changed(0)?;
        assert!(none.is_empty() && !more);
        let a = site.running("a")?;
        let b = site.running("b")?;
        let (both, after_create, _) = changed(start)?;
        assert_eq!(both, vec!["a", "b"]);
        // Nothing changed: the same cursor back, nothing listed.
        assert_eq!(changed(after_create)?, (vec![], after_create, false));
        // A state change, a rename, a disk: each moves the VM to the end once.
        site.act(&a.id, VmAction::Stop)?;
        assert_eq!(changed(after_create)?.0, vec!["a"]);
        site.hv.rename(&b.id, "b2", "alice")?;
        let (order, cursor, _) = changed(after_create)?;
        assert_eq!(order, vec!["a", "b2"]);
        site.hv.add_disk(&a.id, 512, "alice")?;
        let (disk, _, _) = changed(cursor)?;
        assert_eq!(disk, vec!["a"]);
        let page = site.hv.vm_changes_since(cursor, 10)?;
        assert_eq!(
            page.changes[0].vm.as_ref().map(|vm| vm.disks.len()),
            Some(2)
        );
        // Deleted VMs come back as `deleted`.
        site.act(&b.id, VmAction::Delete)?;
        let page = site.hv.vm_changes_since(page.cursor, 10)?;
        let states: Vec<_> = page
            .changes
            .iter()
            .filter_map(|c| c.vm.as_ref().map(|vm| vm.state))
            .collect();
        assert_eq!(states, vec![VmState::Deleted]);
        // Paging: `more` until the last one.
        let first = site.hv.vm_changes_since(0, 1)?;
        assert!(first.more && first.changes.len() == 1);
        let rest = site.hv.vm_changes_since(first.cursor, 1000)?;
        assert!(!rest.more && rest.changes.len() == 1);
        assert!(matches!(
            site.hv.vm_changes_since(0, 0),
            Err(HvError::Invalid(_))
        ));
        assert!(matches!(
            site.hv.vm_changes_since(0, 1001),
            Err(HvError::Invalid(_))
        ));
        Ok(())
    }

    #[test]
    fn vms_made_before_the_change_feed_are_in_it_from_revision_one() -> TestResult {
        let site = Site::open()?;
        site.running("old")?;
        site.db.with_write_tx(|tx| {
            tx.execute_batch(
                "DELETE FROM hv_vm_changes; DELETE FROM hv_counters WHERE name = 'vm_rev';",
            )?;
            tx.execute_batch(&change_feed())?;
            Ok::<_, HvError>(())
        })?;
        let page = site.hv.vm_changes_since(0, 10)?;
        assert_eq!((page.changes.len(), page.cursor), (1, 1));
        assert!(site.hv.vm_changes_since(1, 10)?.changes.is_empty());
        // Opening again backfills nothing: the feed exists.
        site.db.with_write_tx(|tx| {
            tx.execute_batch("DELETE FROM hv_vm_changes;")?;
            tx.execute_batch(&change_feed())?;
            Ok::<_, HvError>(())
        })?;
        assert!(site.hv.vm_changes_since(0, 10)?.changes.is_empty());
        Ok(())
    }

    #[test]
    fn the_tag_filter_matches_key_equals_value_as_text() -> TestResult {
        let site = Site::open()?;
        site.create(&site.spec_with("db", |s| {
            s.tags = r#"{"role": "db", "n": 42, "on": true}"#.into()
        }))?;
        site.create(&site.spec_with("web", |s| s.tags = r#"{"role": "web"}"#.into()))?;
        let cases: [(&str, &[&str]); 7] = [
            ("role=db", &["db"]),
            ("role=web", &["web"]),
            ("n=42", &["db"]),
            ("on=true", &["db"]),
            ("role=", &[]),
            ("missing=db", &[]),
            ("role=db' OR 1=1 --", &[]),
        ];
        for (tag, expected) in cases {
            let (names, _) = site.names(&filter(|f| f.tag = Some(tag.into())))?;
            assert_eq!(names, expected, "{tag}");
        }
        Ok(())
    }

    #[test]
    fn names_are_unique_per_owner_among_vms_not_deleted() -> TestResult {
        let site = Site::open()?;
        let web = site.running("web")?;
        let db = site.running("db")?;
        let twin = site.hv.create_vm(&site.spec("web"), "alice", "p");
        assert!(matches!(twin, Err(HvError::Conflict(_))), "{twin:?}");
        site.create(&site.spec_with("web", |s| s.owner = "bob".into()))?;
        let onto = site.hv.rename(&db.id, "web", "alice");
        assert!(matches!(onto, Err(HvError::Conflict(_))), "{onto:?}");
        assert_eq!(site.hv.rename(&db.id, "db", "alice")?.name, "db");
        site.act(&web.id, VmAction::Delete)?;
        assert_eq!(site.hv.rename(&db.id, "web", "alice")?.name, "web");
        let audit = site.hv.audit(&db.id)?;
        assert_eq!(actions(&audit)[..2], ["rename", "rename"]);
        assert_eq!(audit[0].parameters, r#"{"name":"web","previous":"db"}"#);
        Ok(())
    }

    #[test]
    fn resize_changes_a_stopped_vm_at_once_and_grows_its_boot_disk() -> TestResult {
        let site = Site::open()?;
        let vm = site.stopped("web")?;
        site.hv.add_disk(&vm.id, 100, "alice")?;
        let transition = site.hv.resize(&vm.id, 4, 8192, 4196, "alice")?;
        assert_eq!(
            (transition.action, transition.target_state),
            (Operation::Resize, VmState::Stopped)
        );
        let resized = site.vm(&vm.id)?;
        assert_eq!(
            (resized.cpus, resized.ram_mib, resized.disk_mib),
            (4, 8192, 4196)
        );
        assert_eq!(
            (resized.disks[0].size_mib, resized.disks[1].size_mib),
            (4096, 100)
        );
        assert_eq!(site.hv.complete(&transition.id)?.state, VmState::Stopped);
        assert!(site.hv.audit(&vm.id)?[0].success);
        Ok(())
    }

    #[test]
    fn resize_refuses_a_shrinking_disk_and_a_size_the_node_lacks() -> TestResult {
        let site = Site::open()?;
        let vm = site.stopped("web")?;
        let before = site.dump()?;
        let shrink = site.hv.resize(&vm.id, 1, 1024, 1024, "alice");
        assert!(matches!(shrink, Err(HvError::Invalid(_))), "{shrink:?}");
        let too_big = site.hv.resize(&vm.id, 17, 1024, 2048, "alice");
        assert!(matches!(too_big, Err(HvError::Capacity(_))), "{too_big:?}");
        assert_eq!(site.dump()?, before);
        site.hv.resize(&vm.id, 16, 512, 2048, "alice")?;
        Ok(())
    }

    #[test]
    fn snapshots_are_taken_listed_rolled_back_when_stopped_and_deleted() -> TestResult {
        let site = Site::open()?;
        let vm = site.running("web")?;
        let taken = site.hv.snapshot_create(&vm.id, "before-upgrade", "alice")?;
        assert_eq!(taken.state, "created");
        let twice = site.hv.snapshot_create(&vm.id, "before-upgrade", "alice");
        assert!(matches!(twice, Err(HvError::Conflict(_))), "{twice:?}");
        assert_eq!(site.hv.list_snapshots(&vm.id)?, vec![taken]);
        site.act(&vm.id, VmAction::Stop)?;
        let missing = site.hv.snapshot_rollback(&vm.id, "other", "alice");
        assert!(matches!(missing, Err(HvError::NotFound(_))), "{missing:?}");
        let rollback = site
            .hv
            .snapshot_rollback(&vm.id, "before-upgrade", "alice")?;
        assert_eq!(rollback.action, Operation::SnapshotRollback);
        assert_eq!(site.hv.complete(&rollback.id)?.state, VmState::Stopped);
        site.hv.snapshot_delete(&vm.id, "before-upgrade", "alice")?;
        assert_eq!(site.hv.list_snapshots(&vm.id)?, vec![]);
        let gone = site.hv.snapshot_delete(&vm.id, "before-upgrade", "alice");
        assert!(matches!(gone, Err(HvError::NotFound(_))), "{gone:?}");
        let audit = site.hv.audit(&vm.id)?;
        assert_eq!(
            actions(&audit)[..3],
            ["snapshot-delete", "snapshot-rollback", "stop"]
        );
        Ok(())
    }

    #[test]
    fn disks_are_added_and_removed_but_never_the_boot_disk() -> TestResult {
        let site = Site::open()?;
        let vm = site.running("web")?;
        let data = site.hv.add_disk(&vm.id, 10_240, "alice")?;
        assert!(!data.boot);
        let grown = site.vm(&vm.id)?;
        assert_eq!((grown.disk_mib, grown.disks.len()), (2048 + 10_240, 2));
        let boot = site.hv.remove_disk(&vm.id, &grown.disks[0].id, "alice");
        assert!(matches!(boot, Err(HvError::Invalid(_))), "{boot:?}");
        site.hv.remove_disk(&vm.id, &data.id, "alice")?;
        assert_eq!(site.vm(&vm.id)?.disk_mib, 2048);
        let again = site.hv.remove_disk(&vm.id, &data.id, "alice");
        assert!(matches!(again, Err(HvError::NotFound(_))), "{again:?}");
        let huge = site.hv.add_disk(&vm.id, 2 * 1024 * 1024, "alice");
        assert!(matches!(huge, Err(HvError::Capacity(_))), "{huge:?}");
        Ok(())
    }

    #[test]
    fn nics_are_added_and_removed_but_never_the_primary() -> TestResult {
        let site = Site::open()?;
        let vm = site.running("web")?;
        let nic = site.hv.add_nic(&vm.id, "private", "alice")?;
        assert_eq!(
            (nic.ip.as_deref(), nic.primary),
            (Some("192.168.128.2"), false)
        );
        assert_eq!(site.vm(&vm.id)?.ips, ["10.88.0.2", "192.168.128.2"]);
        let primary = site.hv.remove_nic(&vm.id, &vm.nics[0].mac, "alice");
        assert!(matches!(primary, Err(HvError::Invalid(_))), "{primary:?}");
        site.hv
            .remove_nic(&vm.id, &nic.mac.to_uppercase(), "alice")?;
        assert_eq!(site.vm(&vm.id)?.ips, ["10.88.0.2"]);
        let again = site.hv.remove_nic(&vm.id, &nic.mac, "alice");
        assert!(matches!(again, Err(HvError::NotFound(_))), "{again:?}");
        let reused = site
            .hv
            .add_nic(&site.running("db")?.id, "private", "alice")?;
        assert_eq!(reused.ip.as_deref(), Some("192.168.128.2"));
        Ok(())
    }

    #[test]
    fn private_images_and_networks_serve_their_owner_only() -> TestResult {
        let mut sim = instant();
        sim.networks[1].owner = Some("bob".into());
        let site = Site::with(sim)?;
        let image = site.hv.import_image(&NewImage {
            name: "bobs".into(),
            version: "1".into(),
            os: "linux".into(),
            image_type: "zvol".into(),
            size_mib: 100,
            owner: Some("bob".into()),
            public: false,
            extra: String::new(),
        })?;
        let alice = site.spec_with("a", |s| s.image = image.id.clone());
        assert!(matches!(
            site.hv.create_vm(&alice, "alice", "p"),
            Err(HvError::NotFound(_))
        ));
        let private = site.spec_with("b", |s| s.networks = vec!["private".into()]);
        assert!(matches!(
            site.hv.create_vm(&private, "alice", "p"),
            Err(HvError::NotFound(_))
        ));
        let bob = VmSpec {
            owner: "bob".into(),
            image: image.id,
            ..private
        };
        assert_eq!(site.create(&bob)?.ips, ["192.168.128.2"]);
        Ok(())
    }

    #[test]
    fn import_image_adds_an_active_image_once() -> TestResult {
        let site = Site::open()?;
        let new = NewImage {
            name: "centos-9".into(),
            version: "20250101".into(),
            os: "linux".into(),
            image_type: "zvol".into(),
            size_mib: 8192,
            owner: None,
            public: true,
            extra: r#"{"description": "CentOS Stream 9"}"#.into(),
        };
        let image = site.hv.import_image(&new)?;
        assert_eq!(image.state, "active");
        assert_eq!(image.extra, r#"{"description":"CentOS Stream 9"}"#);
        assert_eq!(site.hv.get_image(&image.id)?, Some(image));
        assert!(matches!(
            site.hv.import_image(&new),
            Err(HvError::Conflict(_))
        ));
        let seeded = NewImage {
            name: "alpine-3.20".into(),
            version: "20240722".into(),
            ..new
        };
        assert!(matches!(
            site.hv.import_image(&seeded),
            Err(HvError::Conflict(_))
        ));
        assert_eq!(site.hv.list_images()?.len(), 5);
        Ok(())
    }

    #[test]
    fn fail_leaves_the_vm_failed_and_records_why() -> TestResult {
        let site = Site::open()?;
        let vm = site.running("web")?;
        let stop = site.hv.act(&vm.id, VmAction::Stop, "alice")?;
        assert_eq!(site.hv.fail(&stop.id, "guest hung")?.state, VmState::Failed);
        let entry = &site.hv.audit(&vm.id)?[0];
        assert_eq!(
            (entry.action.as_str(), entry.success, entry.pending),
            ("stop", false, false)
        );
        assert_eq!(entry.parameters, r#"{"error":"guest hung"}"#);
        Ok(())
    }

    #[test]
    fn a_transition_ends_once_and_ending_it_the_same_way_again_is_harmless() -> TestResult {
        let site = Site::open()?;
        let (vm, create) = site.hv.create_vm(&site.spec("web"), "alice", "p")?;
        let done = site.hv.complete(&create.id)?;
        assert_eq!(site.hv.complete(&create.id)?, done);
        assert!(matches!(
            site.hv.fail(&create.id, "late"),
            Err(HvError::Conflict(_))
        ));
        let stop = site.hv.act(&vm.id, VmAction::Stop, "alice")?;
        let failed = site.hv.fail(&stop.id, "hung")?;
        assert_eq!(site.hv.fail(&stop.id, "hung")?, failed);
        assert!(matches!(
            site.hv.complete(&stop.id),
            Err(HvError::Conflict(_))
        ));
        assert_eq!(site.hv.audit(&vm.id)?.len(), 2);
        Ok(())
    }

    #[test]
    fn the_audit_trail_lists_every_change_newest_first() -> TestResult {
        let site = Site::open()?;
        let vm = site.running("web")?;
        site.hv.add_nic(&vm.id, "private", "bob")?;
        site.hv.snapshot_create(&vm.id, "s1", "alice")?;
        site.act(&vm.id, VmAction::Reboot)?;
        let audit = site.hv.audit(&vm.id)?;
        assert_eq!(
            actions(&audit),
            ["reboot", "snapshot-create", "add-nic", "create"]
        );
        assert!(audit.iter().all(|entry| entry.success && !entry.pending));
        assert_eq!(audit[2].caller, "bob");
        assert!(audit.windows(2).all(|pair| pair[0].time >= pair[1].time));
        Ok(())
    }

    #[test]
    fn queries_combine_tags_ram_and_tombstones() -> TestResult {
        let site = Site::open()?;
        let tagged = |name: &str, tags: &str, ram: u64| {
            site.create(&site.spec_with(name, |s| {
                s.tags = tags.into();
                s.ram_mib = ram;
            }))
        };
        tagged("a", r#"{"role":"db","env":"prod"}"#, 1024)?;
        tagged("b", r#"{"role":"db","env":"dev"}"#, 2048)?;
        let gone = tagged("c", r#"{}"#, 1024)?;
        site.act(&gone.id, VmAction::Delete)?;
        let names = |query: VmQuery| -> Result<Vec<String>, HvError> {
            Ok(site
                .hv
                .query_vms(&query)?
                .vms
                .into_iter()
                .map(|v| v.name)
                .collect())
        };
        let two_tags = VmQuery {
            filter: filter(|f| f.tag = Some("role=db".into())),
            tags: vec!["env=prod".into()],
            ..VmQuery::default()
        };
        assert_eq!(names(two_tags)?, ["a"]);
        let by_ram = VmQuery {
            ram_mib: Some(2048),
            ..VmQuery::default()
        };
        assert_eq!(names(by_ram)?, ["b"]);
        let any_tag = VmQuery {
            tags: vec!["*".into()],
            tombstone: true,
            ..VmQuery::default()
        };
        assert_eq!(names(any_tag)?, ["a", "b"]);
        let all = VmQuery {
            tombstone: true,
            ..VmQuery::default()
        };
        assert_eq!(names(all)?, ["a", "b", "c"]);
        let bad = VmQuery {
            tags: vec!["novalue".into()],
            ..VmQuery::default()
        };
        assert!(matches!(site.hv.query_vms(&bad), Err(HvError::Invalid(_))));
        Ok(())
    }

    #[test]
    fn only_plain_text_tag_values_get_the_substring_prefilter() {
        for plain in ["web", "true", "é/x y"] {
            assert!(plain_text(plain), "{plain}");
        }
        for not in ["", "42", "0.1", "-1e3", "a\"b", "a\\b", "tab\t"] {
            assert!(!plain_text(not), "{not}");
        }
    }

    #[test]
    fn queries_narrow_to_images_and_id_lists() -> TestResult {
        let site = Site::open()?;
        let a = site.running("a")?;
        let b = site.running("b")?;
        let other = image_id(&site.hv, "ubuntu-24.04")?;
        let c = site.create(&site.spec_with("c", |s| {
            s.image = other.clone();
            s.disk_mib = 20_480;
        }))?;
        let names = |query: VmQuery| -> Result<(Vec<String>, u64), HvError> {
            let page = site.hv.query_vms(&query)?;
            Ok((page.vms.into_iter().map(|v| v.name).collect(), page.total))
        };
        let by_image = VmQuery {
            images: Some(vec![other.clone()]),
            ..VmQuery::default()
        };
        assert_eq!(names(by_image)?, (vec!["c".to_string()], 1));
        let no_image = VmQuery {
            images: Some(Vec::new()),
            ..VmQuery::default()
        };
        assert_eq!(names(no_image)?.1, 0);
        let only = VmQuery {
            ids: Some(vec![a.id.clone(), c.id.clone()]),
            not_ids: vec![c.id.clone()],
            ..VmQuery::default()
        };
        assert_eq!(names(only)?, (vec!["a".to_string()], 1));
        let not_b = VmQuery {
            not_ids: vec![b.id.clone()],
            filter: filter(|f| f.limit = Some(1)),
            ..VmQuery::default()
        };
        assert_eq!(names(not_b)?, (vec!["a".to_string()], 2));
        Ok(())
    }

    #[test]
    fn a_private_image_serves_the_owners_its_acl_names() -> TestResult {
        let site = Site::open()?;
        let private = site.alices_image("private", r#"{"acl":["bob"]}"#)?;
        let spec = |owner: &str| {
            site.spec_with(owner, |s| {
                s.owner = owner.into();
                s.image = private.id.clone();
            })
        };
        site.hv.create_vm(&spec("bob"), "bob", "cloudapi")?;
        let carol = site.hv.create_vm(&spec("carol"), "carol", "cloudapi");
        assert!(matches!(carol, Err(HvError::NotFound(_))));
        Ok(())
    }

    #[test]
    fn spreading_puts_an_owners_vms_on_the_nodes_holding_fewest_of_them() -> TestResult {
        let site = Site::open()?;
        let spread = Placement {
            spread: true,
            ..Placement::default()
        };
        let mut placed = Vec::new();
        for name in ["a", "b", "c", "d"] {
            let (vm, transition) =
                site.hv
                    .create_vm_placed(&site.spec(name), &spread, "alice", "cloudapi")?;
            site.hv.complete(&transition.id)?;
            placed.push(vm.node.ok_or("placed")?);
        }
        // Two nodes: alternating, whatever the free RAM says.
        assert_ne!(placed[0], placed[1]);
        assert_eq!((&placed[2], &placed[3]), (&placed[0], &placed[1]));
        // Bob's first VM counts only bob's: the most free RAM decides.
        let bob = site.spec_with("bob-1", |s| s.owner = "bob".into());
        let (vm, _) = site.hv.create_vm_placed(&bob, &spread, "bob", "cloudapi")?;
        assert!(vm.node.is_some());
        // A preference still wins over spreading.
        let prefer = Placement {
            prefer_nodes: vec![placed[0].clone()],
            ..spread.clone()
        };
        let (vm, _) = site
            .hv
            .create_vm_placed(&site.spec("e"), &prefer, "alice", "cloudapi")?;
        assert_eq!(vm.node.as_ref(), Some(&placed[0]));
        Ok(())
    }

    #[test]
    fn a_migration_target_is_another_node_the_placement_allows() -> TestResult {
        let site = Site::open()?;
        let nodes: Vec<Node> = site.hv.list_nodes()?;
        let vm = site.running("moving")?;
        let here = vm.node.clone().ok_or("placed")?;
        let other = nodes.iter().find(|n| n.id != here).ok_or("two nodes")?;
        let target = site.hv.migration_target(&vm.id, &Placement::default())?;
        assert_eq!(target, other.id);
        // Only its own node allowed: nowhere to go.
        let only_here = Placement {
            only_nodes: vec![here.clone()],
            ..Placement::default()
        };
        let nowhere = site.hv.migration_target(&vm.id, &only_here);
        assert!(matches!(nowhere, Err(HvError::Capacity(_))), "{nowhere:?}");
        let avoid = Placement {
            avoid_nodes: vec![other.name.clone()],
            ..Placement::default()
        };
        assert!(matches!(
            site.hv.migration_target(&vm.id, &avoid),
            Err(HvError::Capacity(_))
        ));
        let missing = site
            .hv
            .migration_target("no-such-vm", &Placement::default());
        assert!(matches!(missing, Err(HvError::NotFound(_))), "{missing:?}");
        // Nothing moved.
        assert_eq!(site.hv.get_vm(&vm.id)?.ok_or("vm")?.node, Some(here));
        Ok(())
    }

    #[test]
    fn data_disks_are_made_with_the_vm_and_count_against_the_node() -> TestResult {
        let site = Site::open()?;
        let vm = site.create(&site.spec_with("disks", |s| s.data_disks = vec![512, 1024]))?;
        let sizes: Vec<(bool, u64)> = vm.disks.iter().map(|d| (d.boot, d.size_mib)).collect();
        assert_eq!(sizes, [(true, 2048), (false, 512), (false, 1024)]);
        assert_eq!(vm.disk_mib, 3584, "the VM's disk is all of its disks");
        // No node has room for this many: refused before anything is written.
        let huge = site.spec_with("huge", |s| {
            s.data_disks = vec![super::super::api::MAX_MIB / 2; 3]
        });
        let refused = site.hv.create_vm(&huge, "alice", "cloudapi");
        assert!(matches!(refused, Err(HvError::Capacity(_))), "{refused:?}");
        let many = site.spec_with("many", |s| s.data_disks = vec![1; MAX_DEVICES]);
        let refused = site.hv.create_vm(&many, "alice", "cloudapi");
        assert!(matches!(refused, Err(HvError::Invalid(_))), "{refused:?}");
        let zero = site.spec_with("zero", |s| s.data_disks = vec![0]);
        let refused = site.hv.create_vm(&zero, "alice", "cloudapi");
        assert!(matches!(refused, Err(HvError::Invalid(_))), "{refused:?}");
        assert_eq!(site.hv.list_vms(&VmFilter::default())?.total, 1);
        Ok(())
    }

    #[test]
    fn a_clone_is_a_private_copy_under_its_new_owner() -> TestResult {
        let site = Site::open()?;
        let shared =
            site.alices_image("golden", r#"{"acl":["bob","carol"],"description":"base"}"#)?;
        let clone = site.hv.clone_image(&shared.id, "bob")?;
        assert_ne!(clone.id, shared.id);
        assert_eq!(
            (clone.name.as_str(), clone.version.as_str()),
            ("golden", "1")
        );
        assert_eq!(clone.owner.as_deref(), Some("bob"));
        assert!(!clone.public);
        assert_eq!(clone.state, "active");
        let extra: serde_json::Value = serde_json::from_str(&clone.extra)?;
        assert_eq!(
            extra,
            json!({ "description": "base" }),
            "no acl on the copy"
        );
        // Names are unique per owner: bob has this one now, carol not yet.
        let again = site.hv.clone_image(&shared.id, "bob");
        assert!(matches!(again, Err(HvError::Conflict(_))), "{again:?}");
        site.hv.clone_image(&shared.id, "carol")?;
        let renamed = site.hv.update_image(
            &clone.id,
            &ImageChanges {
                version: Some("2".into()),
                ..ImageChanges::default()
            },
        )?;
        assert_eq!(renamed.version, "2");
        let missing = site.hv.clone_image("no-such-image", "bob");
        assert!(matches!(missing, Err(HvError::NotFound(_))), "{missing:?}");
        // The copy serves its owner at create like any image of theirs.
        let spec = site.spec_with("from-clone", |s| {
            s.owner = "bob".into();
            s.image = clone.id.clone();
        });
        site.hv.create_vm(&spec, "bob", "cloudapi")?;
        Ok(())
    }

    #[test]
    fn a_site_keyed_by_name_and_version_is_rekeyed_per_owner_keeping_its_rows() -> TestResult {
        let db = Database::open_in_memory_for_tests()?;
        db.with_write_tx(|tx| {
            tx.execute_batch(
                "CREATE TABLE hv_images (
                    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
                    version TEXT NOT NULL, os TEXT NOT NULL, image_type TEXT NOT NULL,
                    size_mib INTEGER NOT NULL, state TEXT NOT NULL, owner TEXT, public INTEGER NOT NULL,
                    extra TEXT NOT NULL, created INTEGER NOT NULL, UNIQUE (name, version));
                INSERT INTO hv_images (id, name, version, os, image_type, size_mib, state, owner,
                    public, extra, created)
                    VALUES ('old-1', 'kept', '1', 'linux', 'zvol', 10, 'active', 'alice', 0, '{}', 1);",
            )?;
            Ok::<_, HvError>(())
        })?;
        let settings = HypervisorSettings {
            backend: SIM_BACKEND.into(),
            sim: instant(),
            ..HypervisorSettings::default()
        };
        let hv = Hypervisor::open(db.clone(), &settings, std::path::Path::new("."))?;
        let kept = hv.get_image("old-1")?.ok_or("the old row is kept")?;
        assert_eq!(
            (kept.name.as_str(), kept.owner.as_deref()),
            ("kept", Some("alice"))
        );
        let bobs = hv.clone_image("old-1", "bob")?;
        assert_eq!(bobs.name, "kept");
        // Opening again is a no-op, and the seeds still upsert on the new key.
        let again = Hypervisor::open(db, &settings, std::path::Path::new("."))?;
        assert_eq!(again.list_images()?.len(), hv.list_images()?.len());
        Ok(())
    }

    #[test]
    fn an_image_job_makes_a_creating_image_active_or_failed() -> TestResult {
        let site = Site::open()?;
        let vm = site.running("golden")?;
        let spec = |version: &str| NewImage {
            name: "golden".into(),
            version: version.into(),
            os: "linux".into(),
            image_type: "zvol".into(),
            size_mib: 1,
            owner: Some("alice".into()),
            public: false,
            extra: String::new(),
        };
        let (image, job) = site
            .hv
            .create_image_from_vm_job(&vm.id, &spec("1"), "alice")?;
        assert_eq!((image.state.as_str(), image.size_mib), ("creating", 2048));
        // The VM is busy while the image is made.
        assert!(matches!(
            site.hv.act(&vm.id, VmAction::Stop, "alice"),
            Err(HvError::Conflict(_))
        ));
        assert!(matches!(
            site.hv
                .create_image_from_vm_job(&vm.id, &spec("1"), "alice"),
            Err(HvError::Conflict(_))
        ));
        let after = site.hv.complete(&job.id)?;
        assert_eq!(after.state, VmState::Running);
        assert_eq!(
            site.hv.get_image(&image.id)?.map(|i| i.state),
            Some("active".to_string())
        );
        let entries = site.hv.audit(&vm.id)?;
        assert_eq!(
            (entries[0].action.as_str(), entries[0].success),
            ("create-image", true)
        );
        let (second, job) = site
            .hv
            .create_image_from_vm_job(&vm.id, &spec("2"), "alice")?;
        let after = site.hv.fail(&job.id, "disk unreadable")?;
        assert_eq!(after.state, VmState::Running);
        let failed = site.hv.get_image(&second.id)?.ok_or("no image")?;
        assert_eq!(failed.state, "failed");
        assert!(failed.extra.contains("disk unreadable"), "{}", failed.extra);
        assert!(matches!(
            site.hv
                .create_image_from_vm_job(&vm.id, &spec("1"), "alice"),
            Err(HvError::Conflict(_))
        ));
        Ok(())
    }

    #[test]
    fn tags_and_metadata_are_replaced_and_audited() -> TestResult {
        let site = Site::open()?;
        let vm = site.running("web")?;
        let changed = site
            .hv
            .set_vm_data(&vm.id, Some(r#"{"a":1}"#), None, "alice")?;
        assert_eq!(
            (changed.tags.as_str(), changed.metadata.as_str()),
            (r#"{"a":1}"#, "{}")
        );
        let changed = site
            .hv
            .set_vm_data(&vm.id, None, Some(r#"{"secret":"x"}"#), "alice")?;
        assert_eq!(changed.tags, r#"{"a":1}"#);
        let audit = site.hv.audit(&vm.id)?;
        assert_eq!(actions(&audit)[..2], ["set-metadata", "set-tags"]);
        assert!(
            !audit[0].parameters.contains("\"x\""),
            "{}",
            audit[0].parameters
        );
        let bad = site.hv.set_vm_data(&vm.id, Some("[1]"), None, "alice");
        assert!(matches!(bad, Err(HvError::Invalid(_))));
        let protected = site.hv.set_deletion_protection(&vm.id, true, "alice")?;
        assert!(protected.deletion_protection);
        Ok(())
    }

    #[test]
    fn images_are_updated_deleted_and_made_from_vms() -> TestResult {
        let site = Site::open()?;
        let vm = site.stopped("golden")?;
        let made = site.hv.create_image_from_vm(
            &vm.id,
            &NewImage {
                name: "golden".into(),
                version: "1.0".into(),
                os: "linux".into(),
                image_type: "zvol".into(),
                size_mib: 1,
                owner: Some("alice".into()),
                public: false,
                extra: String::new(),
            },
            "alice",
        )?;
        assert_eq!((made.state.as_str(), made.size_mib), ("active", 2048));
        assert_eq!(actions(&site.hv.audit(&vm.id)?)[0], "create-image");
        let changes = ImageChanges {
            version: Some("1.1".into()),
            extra: Some(r#"{"description":"d"}"#.into()),
            ..ImageChanges::default()
        };
        let updated = site.hv.update_image(&made.id, &changes)?;
        assert_eq!(
            (updated.name.as_str(), updated.version.as_str()),
            ("golden", "1.1")
        );
        assert_eq!(updated.extra, r#"{"description":"d"}"#);
        site.hv.delete_image(&made.id)?;
        assert!(site.hv.get_image(&made.id)?.is_none());
        assert!(matches!(
            site.hv.delete_image(&made.id),
            Err(HvError::NotFound(_))
        ));
        assert!(matches!(
            site.hv.delete_image(&site.image),
            Err(HvError::Conflict(_))
        ));
        Ok(())
    }

    #[test]
    fn packages_are_added_listed_with_one_default_and_removed() -> TestResult {
        let site = Site::open()?;
        assert!(site.hv.list_packages()?.is_empty());
        let small = NewPackage {
            name: "small".into(),
            cpus: 1,
            ram_mib: 512,
            disk_mib: 10_240,
            is_default: true,
            ..NewPackage::default()
        };
        site.hv.add_package(&small)?;
        let big = NewPackage {
            name: "big".into(),
            cpus: 4,
            ram_mib: 8192,
            disk_mib: 102_400,
            swap_mib: Some(16_384),
            lwps: Some(8000),
            is_default: true,
            version: Some("1.0.0".into()),
            group: Some("memory".into()),
            description: Some("For databases".into()),
        };
        let added = site.hv.add_package(&big)?;
        assert_eq!((added.swap_mib, added.lwps), (Some(16_384), Some(8000)));
        assert_eq!(
            (added.version.as_deref(), added.group.as_deref()),
            (Some("1.0.0"), Some("memory"))
        );
        assert_eq!(added.description.as_deref(), Some("For databases"));
        let blank_group = NewPackage {
            name: "blank".into(),
            group: Some(" ".into()),
            ..big.clone()
        };
        assert!(matches!(
            site.hv.add_package(&blank_group),
            Err(HvError::Invalid(_))
        ));
        let listed = site.hv.list_packages()?;
        let defaults: Vec<&str> = listed
            .iter()
            .filter(|p| p.is_default)
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(defaults, ["big"]);
        assert!(matches!(
            site.hv.add_package(&small),
            Err(HvError::Conflict(_))
        ));
        let zero = NewPackage {
            name: "zero".into(),
            ..NewPackage::default()
        };
        assert!(matches!(
            site.hv.add_package(&zero),
            Err(HvError::Invalid(_))
        ));
        site.hv.remove_package("small")?;
        site.hv.remove_package(&added.id)?;
        assert!(site.hv.list_packages()?.is_empty());
        assert!(matches!(
            site.hv.remove_package("small"),
            Err(HvError::NotFound(_))
        ));
        Ok(())
    }

    #[test]
    fn a_stopped_vm_s_disk_grows_and_shrinks_only_when_allowed() -> TestResult {
        let site = Site::open()?;
        let vm = site.running("disky")?;
        let boot = vm.disks[0].id.clone();
        let running = site.hv.resize_disk(&vm.id, &boot, 4096, false, "alice");
        assert!(matches!(running, Err(HvError::IllegalTransition(_))));
        site.act(&vm.id, VmAction::Stop)?;
        let grown = site.hv.resize_disk(&vm.id, &boot, 4096, false, "alice")?;
        assert_eq!(grown.size_mib, 4096);
        assert_eq!(site.vm(&vm.id)?.disk_mib, 4096);
        let shrink = site.hv.resize_disk(&vm.id, &boot, 3072, false, "alice");
        assert!(matches!(shrink, Err(HvError::Invalid(_))));
        site.hv.resize_disk(&vm.id, &boot, 3072, true, "alice")?;
        assert_eq!(site.vm(&vm.id)?.disk_mib, 3072);
        let nowhere = site.hv.resize_disk(&vm.id, "no-disk", 1, true, "alice");
        assert!(matches!(nowhere, Err(HvError::NotFound(_))));
        let huge = site.hv.resize_disk(&vm.id, &boot, 1 << 39, false, "alice");
        assert!(matches!(huge, Err(HvError::Capacity(_))));
        assert_eq!(actions(&site.hv.audit(&vm.id)?)[0], "resize-disk");
        Ok(())
    }

    #[test]
    fn migration_moves_a_vm_to_another_node_with_room() -> TestResult {
        let site = Site::open()?;
        let vm = site.running("mover")?;
        let from = vm.node.clone().ok_or("placed")?;
        let moved = site.hv.migrate_vm(&vm.id, None, "alice")?;
        let to = moved.node.clone().ok_or("placed")?;
        assert_ne!(from, to);
        assert_eq!(actions(&site.hv.audit(&vm.id)?)[0], "migrate");
        let same = site.hv.migrate_vm(&vm.id, Some(&to), "alice");
        assert!(matches!(same, Err(HvError::Invalid(_))));
        let nowhere = site.hv.migrate_vm(&vm.id, Some("no-such-node"), "alice");
        assert!(matches!(nowhere, Err(HvError::NotFound(_))));
        let back = site.hv.migrate_vm(&vm.id, Some(&from), "alice")?;
        assert_eq!(back.node.as_deref(), Some(from.as_str()));
        // One big VM on each node: neither fits beside the other.
        let huge = site.create(&site.spec_with("huge-1", |s| s.ram_mib = 40_000))?;
        site.create(&site.spec_with("huge-2", |s| s.ram_mib = 40_000))?;
        let full = site.hv.migrate_vm(&huge.id, None, "alice");
        assert!(matches!(full, Err(HvError::Capacity(_))));
        Ok(())
    }

    fn fabric(name: &str, owner: &str) -> NewNetwork {
        NewNetwork {
            name: name.into(),
            owner: owner.into(),
            vlan: Some(2),
            subnet: "10.50.1.0/24".into(),
            provision_start: Some("10.50.1.5".into()),
            provision_end: Some("10.50.1.8".into()),
            gateway: Some("10.50.1.1".into()),
            resolvers: vec!["8.8.8.8".into()],
            routes: r#"{"10.25.1.0/21":"10.50.1.2"}"#.into(),
        }
    }

    #[test]
    fn an_owner_s_network_gives_its_provision_range_to_that_owner_only() -> TestResult {
        let site = Site::open()?;
        let net = site.hv.create_network(&fabric("alice-net", "alice"))?;
        assert_eq!(
            (net.owner.as_deref(), net.public, net.vlan),
            (Some("alice"), false, Some(2))
        );
        assert!(site.hv.list_networks()?.contains(&net));
        let vm = site.create(&site.spec_with("f", |s| s.networks = vec![net.id.clone()]))?;
        assert_eq!(vm.ips, ["10.50.1.5"]);
        let nic = site.hv.add_nic(&vm.id, "alice-net", "alice")?;
        assert_eq!(nic.ip.as_deref(), Some("10.50.1.6"));
        let bob = site.spec_with("b", |s| {
            s.owner = "bob".into();
            s.networks = vec![net.id.clone()];
        });
        let refused = site.hv.create_vm(&bob, "bob", "p");
        assert!(matches!(refused, Err(HvError::NotFound(_))), "{refused:?}");
        let again = site.hv.create_network(&fabric("alice-net", "bob"));
        assert!(matches!(again, Err(HvError::Conflict(_))), "{again:?}");
        Ok(())
    }

    #[test]
    fn bad_networks_are_refused_before_anything_is_written() -> TestResult {
        let site = Site::open()?;
        let before = site.dump()?;
        let cases: [fn(&mut NewNetwork); 8] = [
            |n| n.subnet = "10.50.1.1/24".into(),
            |n| n.subnet = "nonsense".into(),
            |n| n.provision_start = Some("10.50.2.5".into()),
            |n| n.provision_end = Some("10.50.1.4".into()),
            |n| n.gateway = Some("10.9.9.1".into()),
            |n| n.resolvers = vec!["dns".into()],
            |n| n.routes = r#"{"10.1.0.0/16":"nowhere"}"#.into(),
            |n| n.vlan = Some(5000),
        ];
        for change in cases {
            let mut network = fabric("bad", "alice");
            change(&mut network);
            let result = site.hv.create_network(&network);
            assert!(matches!(result, Err(HvError::Invalid(_))), "{network:?}");
        }
        assert_eq!(site.dump()?, before);
        Ok(())
    }

    #[test]
    fn a_network_is_updated_and_deleted_only_when_no_nic_is_on_it() -> TestResult {
        let site = Site::open()?;
        let net = site.hv.create_network(&fabric("n", "alice"))?;
        let mut wider = fabric("n", "alice");
        wider.provision_start = Some("10.50.1.100".into());
        let backwards = site.hv.update_network(&net.id, &wider);
        assert!(
            matches!(backwards, Err(HvError::Invalid(_))),
            "{backwards:?}"
        );
        wider.provision_end = Some("10.50.1.200".into());
        site.hv.update_network(&net.id, &wider)?;
        let mut moved = wider.clone();
        moved.subnet = "10.60.1.0/24".into();
        moved.provision_start = None;
        moved.provision_end = None;
        moved.gateway = None;
        let refused = site.hv.update_network(&net.id, &moved);
        assert!(matches!(refused, Err(HvError::Invalid(_))), "{refused:?}");
        let vm = site.running("v")?;
        let nic = site.hv.add_nic(&vm.id, &net.id, "alice")?;
        assert_eq!(nic.ip.as_deref(), Some("10.50.1.100"));
        let busy = site.hv.delete_network(&net.id);
        assert!(matches!(busy, Err(HvError::Conflict(_))), "{busy:?}");
        site.hv
            .reserve_ip(&net.id, Some("10.50.1.150"), "volume-1")?;
        site.hv.remove_nic(&vm.id, &nic.mac, "alice")?;
        site.hv.delete_network(&net.id)?;
        assert!(!site.hv.list_networks()?.iter().any(|n| n.id == net.id));
        let gone = site.hv.reserve_ip(&net.id, None, "x");
        assert!(matches!(gone, Err(HvError::NotFound(_))), "{gone:?}");
        let public = site.hv.list_networks()?[0].id.clone();
        let seeded = site.hv.delete_network(&public);
        assert!(matches!(seeded, Err(HvError::Invalid(_))), "{seeded:?}");
        Ok(())
    }

    #[test]
    fn reserved_addresses_are_never_given_to_a_nic() -> TestResult {
        let site = Site::open()?;
        let net = site.hv.create_network(&fabric("n", "alice"))?;
        site.hv.reserve_ip(&net.id, Some("10.50.1.5"), "alice")?;
        site.hv.reserve_ip(&net.id, Some("10.50.1.5"), "again")?;
        let vm = site.create(&site.spec_with("f", |s| s.networks = vec![net.id.clone()]))?;
        assert_eq!(vm.ips, ["10.50.1.6"]);
        // The next free address, for a holder that is not a NIC.
        assert_eq!(site.hv.reserve_ip(&net.id, None, "volume")?, "10.50.1.7");
        // An address a NIC holds may be reserved (it stays out once freed).
        assert_eq!(
            site.hv.reserve_ip(&net.id, Some("10.50.1.6"), "alice")?,
            "10.50.1.6"
        );
        let nic = site.hv.add_nic(&vm.id, &net.id, "alice")?;
        assert_eq!(nic.ip.as_deref(), Some("10.50.1.8"));
        let full = site.hv.reserve_ip(&net.id, None, "volume");
        assert!(matches!(full, Err(HvError::Capacity(_))), "{full:?}");
        site.hv.unreserve_ip(&net.id, "10.50.1.5")?;
        site.hv.unreserve_ip(&net.id, "10.50.1.5")?;
        assert_eq!(site.hv.reserve_ip(&net.id, None, "volume")?, "10.50.1.5");
        for bad in ["10.50.1.1", "10.50.1.0", "10.50.1.255", "10.50.2.9", "x"] {
            let result = site.hv.reserve_ip(&net.id, Some(bad), "alice");
            assert!(
                matches!(result, Err(HvError::Invalid(_))),
                "{bad}: {result:?}"
            );
        }
        // A site network honours reservations too.
        let public = site.hv.list_networks()?[0].id.clone();
        site.hv.reserve_ip(&public, Some("10.88.0.2"), "alice")?;
        assert_eq!(site.running("p")?.ips, ["10.88.0.3"]);
        Ok(())
    }

    #[test]
    fn a_nic_may_ask_for_its_address_at_create_or_later() -> TestResult {
        let site = Site::open()?;
        let net = site.hv.create_network(&fabric("n", "alice"))?;
        site.hv.reserve_ip(&net.id, Some("10.50.1.40"), "alice")?;
        let at = |network: &str, ip: &str| Placement {
            addresses: vec![NicAddress {
                network: network.into(),
                ip: ip.into(),
            }],
            ..Placement::default()
        };
        let spec = site.spec_with("chosen", |s| s.networks = vec![net.id.clone()]);
        // By network name or id; a reserved address may be asked for.
        let (vm, transition) =
            site.hv
                .create_vm_placed(&spec, &at("n", "10.50.1.40"), "alice", "cloudapi")?;
        assert_eq!(vm.ips, ["10.50.1.40"]);
        site.hv.complete(&transition.id)?;
        let nic = site
            .hv
            .add_nic_at(&vm.id, &net.id, Some("10.50.1.041"), "alice");
        assert!(
            matches!(nic, Err(HvError::Invalid(_))),
            "not canonical text: {nic:?}"
        );
        let nic = site
            .hv
            .add_nic_at(&vm.id, &net.id, Some("10.50.1.41"), "alice")?;
        assert_eq!(nic.ip.as_deref(), Some("10.50.1.41"));
        // Taken, outside the subnet, the gateway, or a network the VM is not on.
        let other = site.spec_with("other", |s| s.networks = vec![net.id.clone()]);
        for (placement, what) in [
            (at(&net.id, "10.50.1.41"), "taken"),
            (at(&net.id, "10.50.2.9"), "outside"),
            (at(&net.id, "10.50.1.1"), "gateway"),
            (at("elsewhere", "10.88.0.9"), "not on it"),
        ] {
            let refused = site
                .hv
                .create_vm_placed(&other, &placement, "alice", "cloudapi");
            let expected = match what {
                "taken" => matches!(refused, Err(HvError::Conflict(_))),
                _ => matches!(refused, Err(HvError::Invalid(_))),
            };
            assert!(expected, "{what}: {refused:?}");
        }
        // Nothing was written by the refusals, and the next free address skips
        // the chosen ones.
        let (next, _) =
            site.hv
                .create_vm_placed(&other, &Placement::default(), "alice", "cloudapi")?;
        assert_eq!(next.ips, ["10.50.1.5"], "the start of the provision range");
        Ok(())
    }

    #[test]
    fn concurrent_nics_and_reservations_never_share_an_address() -> TestResult {
        let site = Site::open()?;
        let mut network = fabric("n", "alice");
        network.provision_end = Some("10.50.1.250".into());
        let net = site.hv.create_network(&network)?;
        let vms = (0..4)
            .map(|i| site.running(&format!("v{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut threads = Vec::new();
        for vm in &vms {
            let (hv, vm, net) = (site.hv.clone(), vm.id.clone(), net.id.clone());
            threads.push(std::thread::spawn(
                move || -> Result<Vec<String>, HvError> {
                    (0..6)
                        .map(|_| Ok(hv.add_nic(&vm, &net, "alice")?.ip.unwrap_or_default()))
                        .collect()
                },
            ));
        }
        for holder in 0..2 {
            let (hv, net) = (site.hv.clone(), net.id.clone());
            threads.push(std::thread::spawn(
                move || -> Result<Vec<String>, HvError> {
                    (0..6)
                        .map(|_| hv.reserve_ip(&net, None, &format!("h{holder}")))
                        .collect()
                },
            ));
        }
        let mut all = Vec::new();
        for thread in threads {
            all.extend(thread.join().map_err(|_| "thread panicked")??);
        }
        let distinct: HashSet<&String> = all.iter().collect();
        assert_eq!((all.len(), distinct.len()), (36, 36));
        Ok(())
    }

    #[test]
    fn a_simulated_vm_has_no_console_to_splice() -> TestResult {
        let site = Site::open()?;
        let vm = site.running("quiet")?;
        assert_eq!(site.hv.console(&vm.id)?, None);
        Ok(())
    }
}
