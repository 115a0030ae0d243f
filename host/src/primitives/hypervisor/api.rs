//! The hypervisor primitive's plain Rust API: the site's compute inventory, its types, its transition rules and the backend trait behind it.
//!
//! It mirrors `wit/hypervisor.wit` one-to-one (plus `complete`/`fail` for the job
//! worker, and `import_image`/`set_deletion_protection` for operators); the WIT glue,
//! the CLI and the tests call it. Input is validated here, so a backend receives
//! checked arguments.
//!
//! A state change is two steps. The operation validates, applies the intermediate
//! state (`stopped` → `starting`) in one transaction, records a pending audit row and
//! returns a [`Transition`]. The kernel's job worker later calls [`Hypervisor::complete`]
//! (after [`Hypervisor::transition_delay`]) to reach the target state, or
//! [`Hypervisor::fail`]. While a transition is pending no other operation may start on
//! that VM. Changes with no job (rename, disks, NICs, snapshot create/delete) apply
//! at once and are audited as succeeded.
//!
//! Calls block on the site database; async callers run them on a blocking thread.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use super::sim::SimBackend;

use super::config::{HypervisorSettings, QEMU_BACKEND};
use super::qemu::QemuBackend;
use crate::db::{Database, DbError};
use crate::events::{EventBus, HYPERVISOR_VM};

/// Longest VM, snapshot or image name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest owner, caller or plugin name, in bytes.
pub const MAX_PRINCIPAL_BYTES: usize = 1024;
/// Largest `tags`, `metadata` or image `extra` JSON text, in bytes.
pub const MAX_JSON_BYTES: usize = 64 * 1024;
/// Most vCPUs one VM may ask for.
pub const MAX_CPUS: u32 = 1024;
/// Largest RAM or disk size one request may give, in MiB (1 EiB).
pub const MAX_MIB: u64 = 1 << 40;
/// Most NICs, and most disks, one VM may have.
pub const MAX_DEVICES: usize = 16;
/// Longest package version, group or description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Most ids one list of a VM query may name.
pub const MAX_QUERY_IDS: usize = 100_000;
/// Most nodes one list of a placement may name.
pub const MAX_PLACEMENT_NODES: usize = 1024;
/// Longest failure reason kept in the audit trail, in characters.
pub const MAX_REASON_CHARS: usize = 1024;

/// Why a hypervisor call failed; mirrors the WIT `hv-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HvError {
    #[error("not found: {0}")]
    NotFound(String),
    /// Carries the VM's current state.
    #[error("illegal in state {0}")]
    IllegalTransition(String),
    #[error("no capacity: {0}")]
    Capacity(String),
    #[error("the vm is protected from deletion")]
    Protected,
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("hypervisor backend failed: {0}")]
    Backend(String),
}

impl From<DbError> for HvError {
    fn from(error: DbError) -> Self {
        HvError::Backend(error.to_string())
    }
}

/// The life of a VM. `provisioning`, `starting`, `stopping` and `rebooting` are
/// transitional: only the job that put the VM there moves it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VmState {
    Provisioning,
    Running,
    Stopped,
    Stopping,
    Starting,
    Rebooting,
    Deleted,
    Failed,
}

impl VmState {
    pub const ALL: [VmState; 8] = [
        VmState::Provisioning,
        VmState::Running,
        VmState::Stopped,
        VmState::Stopping,
        VmState::Starting,
        VmState::Rebooting,
        VmState::Deleted,
        VmState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
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

    pub fn is_transitional(self) -> bool {
        matches!(
            self,
            VmState::Provisioning | VmState::Starting | VmState::Stopping | VmState::Rebooting
        )
    }
}

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VmState {
    type Err = HvError;

    fn from_str(text: &str) -> Result<Self, HvError> {
        VmState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| HvError::Invalid(format!("{text:?} is not a vm state")))
    }
}

/// The power actions of `act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VmAction {
    Start,
    Stop,
    Reboot,
    Delete,
}

/// Which states an operation may start from, the state it holds the VM in while
/// its job runs, and the state `complete` leaves it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub from: &'static [VmState],
    pub via: VmState,
    pub to: VmState,
}

/// States in which a VM takes changes that need no job (rename, disks, NICs, snapshots).
pub const SETTLED: &[VmState] = &[VmState::Running, VmState::Stopped];

impl VmAction {
    /// The legal transitions. Delete has no state of its own in the WIT enum, so a
    /// VM being deleted shows `stopping`, as Triton shows a destroy.
    pub fn rule(self) -> Rule {
        use VmState::*;
        match self {
            VmAction::Start => Rule {
                from: &[Stopped],
                via: Starting,
                to: Running,
            },
            VmAction::Stop => Rule {
                from: &[Running],
                via: Stopping,
                to: Stopped,
            },
            VmAction::Reboot => Rule {
                from: &[Running],
                via: Rebooting,
                to: Running,
            },
            VmAction::Delete => Rule {
                from: &[Running, Stopped, Failed],
                via: Stopping,
                to: Deleted,
            },
        }
    }

    pub fn operation(self) -> Operation {
        match self {
            VmAction::Start => Operation::Start,
            VmAction::Stop => Operation::Stop,
            VmAction::Reboot => Operation::Reboot,
            VmAction::Delete => Operation::Delete,
        }
    }
}

/// Resize and snapshot rollback keep the VM `stopped` while their job runs.
pub const STOPPED_JOB: Rule = Rule {
    from: &[VmState::Stopped],
    via: VmState::Stopped,
    to: VmState::Stopped,
};

/// Create: a new VM is `provisioning` until its job completes.
pub const CREATE: Rule = Rule {
    from: &[],
    via: VmState::Provisioning,
    to: VmState::Running,
};

/// Everything the inventory audits; `as_str` is the audit entry's `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Start,
    Stop,
    Reboot,
    Delete,
    Resize,
    Rename,
    AddDisk,
    RemoveDisk,
    SnapshotCreate,
    SnapshotRollback,
    SnapshotDelete,
    AddNic,
    RemoveNic,
    SetDeletionProtection,
    SetTags,
    SetMetadata,
    CreateImage,
    Migrate,
    ResizeDisk,
}

impl Operation {
    pub const ALL: [Operation; 20] = [
        Operation::Create,
        Operation::Start,
        Operation::Stop,
        Operation::Reboot,
        Operation::Delete,
        Operation::Resize,
        Operation::Rename,
        Operation::AddDisk,
        Operation::RemoveDisk,
        Operation::SnapshotCreate,
        Operation::SnapshotRollback,
        Operation::SnapshotDelete,
        Operation::AddNic,
        Operation::RemoveNic,
        Operation::SetDeletionProtection,
        Operation::SetTags,
        Operation::SetMetadata,
        Operation::CreateImage,
        Operation::Migrate,
        Operation::ResizeDisk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::Reboot => "reboot",
            Operation::Delete => "delete",
            Operation::Resize => "resize",
            Operation::Rename => "rename",
            Operation::AddDisk => "add-disk",
            Operation::RemoveDisk => "remove-disk",
            Operation::SnapshotCreate => "snapshot-create",
            Operation::SnapshotRollback => "snapshot-rollback",
            Operation::SnapshotDelete => "snapshot-delete",
            Operation::AddNic => "add-nic",
            Operation::RemoveNic => "remove-nic",
            Operation::SetDeletionProtection => "set-deletion-protection",
            Operation::SetTags => "set-tags",
            Operation::SetMetadata => "set-metadata",
            Operation::CreateImage => "create-image",
            Operation::Migrate => "migrate",
            Operation::ResizeDisk => "resize-disk",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operation {
    type Err = HvError;

    fn from_str(text: &str) -> Result<Self, HvError> {
        Operation::ALL
            .into_iter()
            .find(|op| op.as_str() == text)
            .ok_or_else(|| HvError::Invalid(format!("{text:?} is not an operation")))
    }
}

/// A state change under way: the job worker completes or fails it by `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The job id of the WIT calls; unique site-wide.
    pub id: String,
    pub vm_id: String,
    pub action: Operation,
    /// The state `complete` leaves the VM in.
    pub target_state: VmState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub cpus: u32,
    pub ram_mib: u64,
    pub disk_mib: u64,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub version: String,
    pub os: String,
    pub image_type: String,
    pub size_mib: u64,
    pub state: String,
    pub owner: Option<String>,
    pub public: bool,
    /// Extra fields as a JSON object (tags, requirements, description...).
    pub extra: String,
    /// Milliseconds since the Unix epoch.
    pub created: u64,
}

/// What `import_image` needs; the image is `active` at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImage {
    pub name: String,
    pub version: String,
    pub os: String,
    pub image_type: String,
    pub size_mib: u64,
    pub owner: Option<String>,
    pub public: bool,
    /// A JSON object; empty means `{}`.
    pub extra: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub vlan: Option<u16>,
    pub subnet: String,
    pub gateway: Option<String>,
    pub public: bool,
    pub owner: Option<String>,
}

/// What `create_network` needs: a network only `owner`'s VMs attach to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewNetwork {
    /// Unique site-wide.
    pub name: String,
    pub owner: String,
    pub vlan: Option<u16>,
    /// IPv4 CIDR without host bits.
    pub subnet: String,
    /// The addresses NICs are given, inclusive; `None`: the whole subnet.
    pub provision_start: Option<String>,
    pub provision_end: Option<String>,
    pub gateway: Option<String>,
    pub resolvers: Vec<String>,
    /// A JSON object: destination to gateway; empty means `{}`.
    pub routes: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub mac: String,
    /// The network's id.
    pub network: String,
    pub ip: Option<String>,
    pub primary: bool,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub id: String,
    pub size_mib: u64,
    pub boot: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub name: String,
    pub state: String,
    pub created: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vm {
    pub id: String,
    pub name: String,
    pub owner: String,
    /// The id of the node it is placed on.
    pub node: Option<String>,
    /// The image's id.
    pub image: String,
    pub cpus: u32,
    pub ram_mib: u64,
    /// The sum of its disks' sizes: what it takes of its node's disk.
    pub disk_mib: u64,
    pub state: VmState,
    /// The NICs' addresses, primary first.
    pub ips: Vec<String>,
    pub nics: Vec<Nic>,
    /// Boot disk first.
    pub disks: Vec<Disk>,
    /// JSON objects.
    pub tags: String,
    pub metadata: String,
    pub deletion_protection: bool,
    pub created: u64,
    pub updated: u64,
    /// The plugin that created it.
    pub creator: String,
}

/// What `create_vm` needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmSpec {
    pub name: String,
    pub owner: String,
    /// The image's id.
    pub image: String,
    pub cpus: u32,
    pub ram_mib: u64,
    /// The boot disk; at least the image's size.
    pub disk_mib: u64,
    /// Network ids or names, one NIC each, the first primary. Empty: one NIC on
    /// the first public network.
    pub networks: Vec<String>,
    /// JSON objects; empty means `{}`.
    pub tags: String,
    pub metadata: String,
    pub deletion_protection: bool,
    /// Sizes of data disks made with the VM beside the boot disk.
    pub data_disks: Vec<u64>,
}

/// Where `create_vm_placed` may put a VM; nodes by id or name. Unknown
/// nodes match nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The VM must go to one of these; empty: any node.
    pub only_nodes: Vec<String>,
    /// The VM must not go to any of these.
    pub avoid_nodes: Vec<String>,
    /// Best effort: one of these if any has room.
    pub prefer_nodes: Vec<String>,
    /// Best effort: none of these if another node has room.
    pub shun_nodes: Vec<String>,
    /// The new VM's id, a UUID the caller chose; `None`: a new one.
    pub vm_id: Option<String>,
    /// Within each rank, nodes holding fewer of the owner's live VMs first,
    /// then the most free RAM (Triton's default spreading).
    pub spread: bool,
    /// Chosen addresses of the new VM's NICs.
    pub addresses: Vec<NicAddress>,
}

/// The address the NIC on `network` (id or name) gets instead of the next
/// free one: a host address of the subnet no other NIC holds (reserved ones
/// included: only an explicit request takes those).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicAddress {
    pub network: String,
    pub ip: String,
}

/// Which VMs `list_vms` returns; every field set narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmFilter {
    pub owner: Option<String>,
    /// `None` lists every state but `deleted`.
    pub state: Option<VmState>,
    pub name: Option<String>,
    /// Image id.
    pub image: Option<String>,
    /// Node id.
    pub node: Option<String>,
    /// `key=value`: the tag `key` whose value, as text, is `value`
    /// (`true`, `42` and `"42"` all match `42` or `true` as written).
    pub tag: Option<String>,
    pub offset: u64,
    /// `None` returns every match past `offset`.
    pub limit: Option<u64>,
}

/// `VmFilter` with more conditions (`query_vms`): every one must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmQuery {
    pub filter: VmFilter,
    /// More `key=value` tag conditions; `*` alone: the VM has any tag.
    pub tags: Vec<String>,
    pub ram_mib: Option<u64>,
    /// With no state in `filter`: `deleted` VMs too.
    pub tombstone: bool,
    /// The VM's image is one of these ids.
    pub images: Option<Vec<String>>,
    /// The VM's id is one of these.
    pub ids: Option<Vec<String>>,
    /// The VM's id is none of these.
    pub not_ids: Vec<String>,
}

/// A named size preset (`tessera package add`); plugins offer them as their
/// families' sizes (CloudAPI packages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub id: String,
    pub name: String,
    pub cpus: u32,
    pub ram_mib: u64,
    pub disk_mib: u64,
    pub swap_mib: Option<u64>,
    pub lwps: Option<u64>,
    pub is_default: bool,
    pub created: u64,
    pub version: Option<String>,
    pub group: Option<String>,
    pub description: Option<String>,
}

/// What `add_package` needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewPackage {
    pub name: String,
    pub cpus: u32,
    pub ram_mib: u64,
    pub disk_mib: u64,
    pub swap_mib: Option<u64>,
    pub lwps: Option<u64>,
    /// Makes it the only default.
    pub is_default: bool,
    pub version: Option<String>,
    pub group: Option<String>,
    pub description: Option<String>,
}

/// What `update_image` changes; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageChanges {
    pub name: Option<String>,
    pub version: Option<String>,
    /// A JSON object replacing the extra fields.
    pub extra: Option<String>,
}

/// A page of VMs in creation order and how many match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPage {
    pub vms: Vec<Vm>,
    pub total: u64,
}

/// A VM that changed, as it is now; `None` when it no longer exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmChange {
    pub id: String,
    pub vm: Option<Vm>,
}

/// A page of [`Hypervisor::vm_changes_since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmChanges {
    /// Oldest change first; each VM once, as it is now.
    pub changes: Vec<VmChange>,
    /// The revision to ask after next time (`after` when nothing changed).
    pub cursor: u64,
    /// More changes wait past `cursor`.
    pub more: bool,
}

/// Most changes one `vm_changes_since` call returns.
pub const MAX_CHANGES_PAGE: u32 = 1000;

/// One audited operation on a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub action: String,
    pub caller: String,
    /// When it finished, or while `pending` when it was asked for (ms since the epoch).
    pub time: u64,
    pub success: bool,
    /// Its job has not finished yet (`success` is then false).
    pub pending: bool,
    /// JSON parameters of the action; a failed job's reason is under `error`.
    pub parameters: String,
}

/// What a hypervisor must provide. Arguments arrive validated (sizes in range,
/// JSON normalised, names checked); ids and names of existing things do not.
pub trait HypervisorBackend: Send + Sync {
    fn transition_delay(&self) -> Duration;
    fn list_nodes(&self) -> Result<Vec<Node>, HvError>;
    fn list_images(&self) -> Result<Vec<Image>, HvError>;
    fn get_image(&self, id: &str) -> Result<Option<Image>, HvError>;
    fn import_image(&self, image: &NewImage) -> Result<Image, HvError>;
    /// Imports an image whose content is `file` (any format `qemu-img` reads).
    /// A backend that runs nothing needs only the record.
    fn import_image_file(
        &self,
        image: &NewImage,
        file: &std::path::Path,
    ) -> Result<Image, HvError> {
        let _ = file;
        self.import_image(image)
    }
    fn list_networks(&self) -> Result<Vec<Network>, HvError>;
    fn list_vms(&self, filter: &VmFilter) -> Result<VmPage, HvError>;
    fn get_vm(&self, id: &str) -> Result<Option<Vm>, HvError>;
    fn create_vm(
        &self,
        spec: &VmSpec,
        caller: &str,
        plugin: &str,
    ) -> Result<(Vm, Transition), HvError>;
    /// `create_vm` on a node the placement allows (`Capacity` if none has
    /// room); the placement's id arrives checked as a UUID.
    fn create_vm_placed(
        &self,
        spec: &VmSpec,
        placement: &Placement,
        caller: &str,
        plugin: &str,
    ) -> Result<(Vm, Transition), HvError>;
    fn act(&self, id: &str, action: VmAction, caller: &str) -> Result<Transition, HvError>;
    fn resize(&self, id: &str, size: Size, caller: &str) -> Result<Transition, HvError>;
    fn rename(&self, id: &str, name: &str, caller: &str) -> Result<Vm, HvError>;
    fn set_deletion_protection(&self, id: &str, on: bool, caller: &str) -> Result<Vm, HvError>;
    fn query_vms(&self, query: &VmQuery) -> Result<VmPage, HvError>;
    /// Replaces the tags and/or metadata (normalised JSON objects).
    fn set_vm_data(
        &self,
        id: &str,
        tags: Option<&str>,
        metadata: Option<&str>,
        caller: &str,
    ) -> Result<Vm, HvError>;
    fn update_image(&self, id: &str, changes: &ImageChanges) -> Result<Image, HvError>;
    fn delete_image(&self, id: &str) -> Result<(), HvError>;
    /// Where a migration of `id` would go under `placement` (see `place`).
    fn migration_target(&self, id: &str, placement: &Placement) -> Result<String, HvError> {
        let _ = (id, placement);
        Err(HvError::Invalid(
            "this hypervisor backend has one node and migrates nothing".into(),
        ))
    }
    /// A private copy of an `active` image owned by `owner`, with the same
    /// name, version and content and an empty ACL; `Conflict` if `owner` has
    /// an image of that name and version.
    fn clone_image(&self, id: &str, owner: &str) -> Result<Image, HvError>;
    fn create_image_from_vm(
        &self,
        id: &str,
        image: &NewImage,
        caller: &str,
    ) -> Result<Image, HvError>;
    /// The image `creating`, and the transition that makes it `active`
    /// (`complete`) or `failed` (`fail`, which leaves the VM as it was). A
    /// backend that cannot copy a VM's disk refuses.
    fn create_image_from_vm_job(
        &self,
        id: &str,
        image: &NewImage,
        caller: &str,
    ) -> Result<(Image, Transition), HvError> {
        let _ = (id, image, caller);
        Err(HvError::Invalid(
            "this hypervisor backend cannot make images from VMs".into(),
        ))
    }
    fn migrate_vm(&self, id: &str, node: Option<&str>, caller: &str) -> Result<Vm, HvError>;
    fn list_packages(&self) -> Result<Vec<Package>, HvError>;
    /// `Conflict` if the name is taken.
    fn add_package(&self, package: &NewPackage) -> Result<Package, HvError>;
    /// By id or name.
    fn remove_package(&self, package: &str) -> Result<(), HvError>;
    fn resize_disk(
        &self,
        id: &str,
        disk: &str,
        size_mib: u64,
        allow_shrink: bool,
        caller: &str,
    ) -> Result<Disk, HvError>;
    fn add_disk(&self, id: &str, size_mib: u64, caller: &str) -> Result<Disk, HvError>;
    fn remove_disk(&self, id: &str, disk: &str, caller: &str) -> Result<(), HvError>;
    fn snapshot_create(&self, id: &str, name: &str, caller: &str) -> Result<Snapshot, HvError>;
    fn snapshot_rollback(&self, id: &str, name: &str, caller: &str) -> Result<Transition, HvError>;
    fn snapshot_delete(&self, id: &str, name: &str, caller: &str) -> Result<(), HvError>;
    fn list_snapshots(&self, id: &str) -> Result<Vec<Snapshot>, HvError>;
    /// A NIC on `network`, at `ip` if given (see [`NicAddress`]).
    fn add_nic_at(
        &self,
        id: &str,
        network: &str,
        ip: Option<&str>,
        caller: &str,
    ) -> Result<Nic, HvError>;
    /// The unix socket of a running VM's console (VNC/RFB), for a backend
    /// that runs VMs; `None` for one that only simulates them.
    fn console(&self, id: &str) -> Result<Option<std::path::PathBuf>, HvError> {
        let _ = id;
        Ok(None)
    }
    fn create_network(&self, network: &NewNetwork) -> Result<Network, HvError>;
    fn update_network(&self, id: &str, network: &NewNetwork) -> Result<Network, HvError>;
    fn delete_network(&self, id: &str) -> Result<(), HvError>;
    fn reserve_ip(&self, network: &str, ip: Option<&str>, holder: &str) -> Result<String, HvError>;
    fn unreserve_ip(&self, network: &str, ip: &str) -> Result<(), HvError>;
    fn remove_nic(&self, id: &str, mac: &str, caller: &str) -> Result<(), HvError>;
    fn audit(&self, id: &str) -> Result<Vec<AuditEntry>, HvError>;
    /// VMs changed after revision `after`, at most `limit` (already checked).
    fn vm_changes_since(&self, after: u64, limit: u32) -> Result<VmChanges, HvError>;
    fn complete(&self, transition: &str) -> Result<Vm, HvError>;
    fn fail(&self, transition: &str, reason: &str) -> Result<Vm, HvError>;
    /// Brings the records in line with what really runs: the stop transitions
    /// of VMs recorded `running` whose machine is gone (a guest that powered
    /// itself off, a host that rebooted). The `sim` backend never drifts.
    fn reconcile(&self) -> Result<Vec<Transition>, HvError> {
        Ok(Vec::new())
    }
}

/// The resources a VM asks of its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub cpus: u32,
    pub ram_mib: u64,
    pub disk_mib: u64,
}

/// The site's compute inventory. Cheap to clone; clones share one backend.
#[derive(Clone)]
pub struct Hypervisor {
    backend: Arc<dyn HypervisorBackend>,
    /// Where VM changes are announced (`hypervisor.vm`), when the kernel listens.
    events: Option<EventBus>,
}

impl fmt::Debug for Hypervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hypervisor").finish_non_exhaustive()
    }
}

impl Hypervisor {
    /// The backend the settings name, over the site database (both backends
    /// create their tables and upsert their seeds); the `qemu` backend keeps its
    /// files under `data_dir`.
    pub fn open(
        db: Database,
        settings: &HypervisorSettings,
        data_dir: &std::path::Path,
    ) -> Result<Self, HvError> {
        settings.check()?;
        let backend: Arc<dyn HypervisorBackend> = if settings.backend == QEMU_BACKEND {
            Arc::new(QemuBackend::open(db, &settings.qemu, data_dir)?)
        } else {
            Arc::new(SimBackend::open(db, &settings.sim)?)
        };
        Ok(Hypervisor::with_backend(backend))
    }

    pub fn with_backend(backend: Arc<dyn HypervisorBackend>) -> Self {
        Hypervisor {
            backend,
            events: None,
        }
    }

    /// Announce every VM change on `events`.
    pub fn with_events(mut self, events: EventBus) -> Self {
        self.events = Some(events);
        self
    }

    /// Publishes the VM as it is now, if anyone listens.
    fn changed(&self, id: &str, change: &str) {
        let Some(events) = self.events.as_ref().filter(|e| e.has_subscribers()) else {
            return;
        };
        if let Ok(Some(vm)) = self.backend.get_vm(id) {
            publish(events, &vm, change);
        }
    }

    /// Publishes `vm` as the change left it: read again later, a fast job
    /// could already have moved it on (a create announced as `running`).
    fn announce_vm<T>(
        &self,
        result: Result<T, HvError>,
        vm: impl Fn(&T) -> &Vm,
        change: &'static str,
    ) -> Result<T, HvError> {
        let events = self.events.as_ref().filter(|e| e.has_subscribers());
        if let (Ok(value), Some(events)) = (&result, events) {
            publish(events, vm(value), change);
        }
        result
    }

    /// `changed` for a result that names the VM.
    /// `change` is the operation asked for, or `completed` / `failed` when
    /// its job ends.
    fn announce<T>(
        &self,
        result: Result<T, HvError>,
        id: impl Fn(&T) -> &str,
        change: impl Fn(&T) -> &'static str,
    ) -> Result<T, HvError> {
        if let Ok(value) = &result {
            self.changed(id(value), change(value));
        }
        result
    }

    /// How long the job worker should wait before calling `complete`.
    pub fn transition_delay(&self) -> Duration {
        self.backend.transition_delay()
    }

    pub fn list_nodes(&self) -> Result<Vec<Node>, HvError> {
        self.backend.list_nodes()
    }

    pub fn list_images(&self) -> Result<Vec<Image>, HvError> {
        self.backend.list_images()
    }

    pub fn get_image(&self, id: &str) -> Result<Option<Image>, HvError> {
        self.backend.get_image(id)
    }

    /// Adds an `active` image; `Conflict` if its name and version exist.
    pub fn import_image(&self, image: &NewImage) -> Result<Image, HvError> {
        self.backend.import_image(&checked_image(image)?)
    }

    /// Like `import_image`, with the image's content from `file` (the CLI's
    /// `tessera image import FILE`): the `qemu` backend keeps a qcow2 copy.
    pub fn import_image_file(
        &self,
        image: &NewImage,
        file: &std::path::Path,
    ) -> Result<Image, HvError> {
        self.backend.import_image_file(&checked_image(image)?, file)
    }

    pub fn list_networks(&self) -> Result<Vec<Network>, HvError> {
        self.backend.list_networks()
    }

    pub fn list_vms(&self, filter: &VmFilter) -> Result<VmPage, HvError> {
        if let Some(tag) = &filter.tag {
            split_tag(tag)?;
        }
        self.backend.list_vms(filter)
    }

    /// A VM in any state, `deleted` included.
    pub fn get_vm(&self, id: &str) -> Result<Option<Vm>, HvError> {
        self.backend.get_vm(id)
    }

    /// Places the VM, allocates its addresses and leaves it `provisioning`.
    /// `caller` is who asked (audited), `plugin` the creator.
    pub fn create_vm(
        &self,
        spec: &VmSpec,
        caller: &str,
        plugin: &str,
    ) -> Result<(Vm, Transition), HvError> {
        let spec = checked_spec(spec)?;
        check_principal("caller", caller)?;
        check_principal("plugin", plugin)?;
        let created = self.backend.create_vm(&spec, caller, plugin);
        self.announce_vm(created, |(vm, _)| vm, Operation::Create.as_str())
    }

    /// `create_vm` constrained to the nodes `placement` allows, preferring
    /// its soft choices; optionally with the caller's UUID as the VM's id.
    pub fn create_vm_placed(
        &self,
        spec: &VmSpec,
        placement: &Placement,
        caller: &str,
        plugin: &str,
    ) -> Result<(Vm, Transition), HvError> {
        let spec = checked_spec(spec)?;
        check_principal("caller", caller)?;
        check_principal("plugin", plugin)?;
        let placement = checked_placement(placement)?;
        let created = self
            .backend
            .create_vm_placed(&spec, &placement, caller, plugin);
        self.announce_vm(created, |(vm, _)| vm, Operation::Create.as_str())
    }

    /// Starts, stops, reboots or deletes a VM per [`VmAction::rule`].
    pub fn act(&self, id: &str, action: VmAction, caller: &str) -> Result<Transition, HvError> {
        check_principal("caller", caller)?;
        let acted = self.backend.act(id, action, caller);
        self.announce(acted, |t| &t.vm_id, |t| t.action.as_str())
    }

    /// A stopped VM's new size, checked against its node; its disk cannot shrink.
    pub fn resize(
        &self,
        id: &str,
        cpus: u32,
        ram_mib: u64,
        disk_mib: u64,
        caller: &str,
    ) -> Result<Transition, HvError> {
        let size = Size {
            cpus,
            ram_mib,
            disk_mib,
        };
        check_size(size)?;
        check_principal("caller", caller)?;
        let resized = self.backend.resize(id, size, caller);
        self.announce(resized, |t| &t.vm_id, |t| t.action.as_str())
    }

    /// `Conflict` if the owner has another VM, not deleted, of that name.
    pub fn rename(&self, id: &str, name: &str, caller: &str) -> Result<Vm, HvError> {
        check_text("vm name", name, MAX_NAME_CHARS)?;
        check_principal("caller", caller)?;
        let renamed = self.backend.rename(id, name, caller);
        self.announce(renamed, |vm| &vm.id, |_| Operation::Rename.as_str())
    }

    /// CloudAPI's Enable/DisableMachineDeletionProtection.
    pub fn set_deletion_protection(&self, id: &str, on: bool, caller: &str) -> Result<Vm, HvError> {
        check_principal("caller", caller)?;
        let set = self.backend.set_deletion_protection(id, on, caller);
        self.announce(
            set,
            |vm| &vm.id,
            |_| Operation::SetDeletionProtection.as_str(),
        )
    }

    /// `list_vms` with the query's extra conditions.
    pub fn query_vms(&self, query: &VmQuery) -> Result<VmPage, HvError> {
        for tag in query.filter.tag.iter().chain(&query.tags) {
            if tag != "*" {
                split_tag(tag)?;
            }
        }
        if let Some(ram) = query.ram_mib {
            check_mib("ram", ram)?;
        }
        let lists = [
            query.images.as_ref(),
            query.ids.as_ref(),
            Some(&query.not_ids),
        ];
        if lists.into_iter().flatten().any(|l| l.len() > MAX_QUERY_IDS) {
            return Err(HvError::Invalid(format!(
                "a vm query names at most {MAX_QUERY_IDS} ids per list"
            )));
        }
        self.backend.query_vms(query)
    }

    /// Replaces the VM's tags and/or metadata, each a JSON object.
    pub fn set_vm_data(
        &self,
        id: &str,
        tags: Option<&str>,
        metadata: Option<&str>,
        caller: &str,
    ) -> Result<Vm, HvError> {
        check_principal("caller", caller)?;
        let tags = tags.map(|t| json_object("tags", t)).transpose()?;
        let metadata = metadata.map(|m| json_object("metadata", m)).transpose()?;
        let set = self
            .backend
            .set_vm_data(id, tags.as_deref(), metadata.as_deref(), caller);
        // Named by what changed, so a subscriber can tell tags from metadata.
        let change = if tags.is_none() && metadata.is_some() {
            Operation::SetMetadata
        } else {
            Operation::SetTags
        };
        self.announce(set, |vm| &vm.id, move |_| change.as_str())
    }

    /// Renames, re-versions or replaces the extra fields of an image.
    pub fn update_image(&self, id: &str, changes: &ImageChanges) -> Result<Image, HvError> {
        if let Some(name) = &changes.name {
            check_text("image name", name, MAX_NAME_CHARS)?;
        }
        if let Some(version) = &changes.version {
            check_text("version", version, MAX_NAME_CHARS)?;
        }
        let changes = ImageChanges {
            extra: changes
                .extra
                .as_deref()
                .map(|e| json_object("extra", e))
                .transpose()?,
            ..changes.clone()
        };
        self.backend.update_image(id, &changes)
    }

    /// Removes an image that no live VM uses.
    pub fn delete_image(&self, id: &str) -> Result<(), HvError> {
        self.backend.delete_image(id)
    }

    /// An `active` image of a settled VM's boot disk.
    pub fn create_image_from_vm(
        &self,
        id: &str,
        image: &NewImage,
        caller: &str,
    ) -> Result<Image, HvError> {
        check_principal("caller", caller)?;
        self.backend
            .create_image_from_vm(id, &checked_image(image)?, caller)
    }

    /// A private copy of an image for `owner` (CloudAPI's CloneImage).
    pub fn clone_image(&self, id: &str, owner: &str) -> Result<Image, HvError> {
        check_principal("owner", owner)?;
        self.backend.clone_image(id, owner)
    }

    /// An image of a settled VM's boot disk made by a job: `creating` until
    /// the returned transition completes.
    pub fn create_image_from_vm_job(
        &self,
        id: &str,
        image: &NewImage,
        caller: &str,
    ) -> Result<(Image, Transition), HvError> {
        check_principal("caller", caller)?;
        let started = self
            .backend
            .create_image_from_vm_job(id, &checked_image(image)?, caller);
        self.announce(
            started,
            |(_, t)| &t.vm_id,
            |_| Operation::CreateImage.as_str(),
        )
    }

    pub fn list_packages(&self) -> Result<Vec<Package>, HvError> {
        self.backend.list_packages()
    }

    /// A new size preset; a default one becomes the only default.
    pub fn add_package(&self, package: &NewPackage) -> Result<Package, HvError> {
        check_text("package name", &package.name, MAX_NAME_CHARS)?;
        check_size(Size {
            cpus: package.cpus,
            ram_mib: package.ram_mib,
            disk_mib: package.disk_mib,
        })?;
        for (what, mib) in [("swap", package.swap_mib), ("lwps", package.lwps)] {
            if let Some(value) = mib {
                check_mib(what, value)?;
            }
        }
        for (what, text) in [
            ("package version", &package.version),
            ("package group", &package.group),
            ("package description", &package.description),
        ] {
            if let Some(text) = text {
                check_text(what, text, MAX_DESCRIPTION_CHARS)?;
            }
        }
        self.backend.add_package(package)
    }

    pub fn remove_package(&self, package: &str) -> Result<(), HvError> {
        self.backend.remove_package(package)
    }

    /// A stopped VM's disk at a new size; shrinking only with `allow_shrink`.
    pub fn resize_disk(
        &self,
        id: &str,
        disk: &str,
        size_mib: u64,
        allow_shrink: bool,
        caller: &str,
    ) -> Result<Disk, HvError> {
        check_mib("disk size", size_mib)?;
        check_principal("caller", caller)?;
        self.backend
            .resize_disk(id, disk, size_mib, allow_shrink, caller)
    }

    /// Moves a settled VM to another node (`node`, or the roomiest).
    /// The node a migration of `id` would go to under `placement`.
    pub fn migration_target(&self, id: &str, placement: &Placement) -> Result<String, HvError> {
        self.backend
            .migration_target(id, &checked_placement(placement)?)
    }

    pub fn migrate_vm(&self, id: &str, node: Option<&str>, caller: &str) -> Result<Vm, HvError> {
        check_principal("caller", caller)?;
        let moved = self.backend.migrate_vm(id, node, caller);
        self.announce(moved, |vm| &vm.id, |_| Operation::Migrate.as_str())
    }

    pub fn add_disk(&self, id: &str, size_mib: u64, caller: &str) -> Result<Disk, HvError> {
        check_mib("disk size", size_mib)?;
        check_principal("caller", caller)?;
        self.backend.add_disk(id, size_mib, caller)
    }

    /// Any disk but the boot disk.
    pub fn remove_disk(&self, id: &str, disk: &str, caller: &str) -> Result<(), HvError> {
        check_principal("caller", caller)?;
        self.backend.remove_disk(id, disk, caller)
    }

    pub fn snapshot_create(&self, id: &str, name: &str, caller: &str) -> Result<Snapshot, HvError> {
        check_text("snapshot name", name, MAX_NAME_CHARS)?;
        check_principal("caller", caller)?;
        self.backend.snapshot_create(id, name, caller)
    }

    /// Only a stopped VM rolls back.
    pub fn snapshot_rollback(
        &self,
        id: &str,
        name: &str,
        caller: &str,
    ) -> Result<Transition, HvError> {
        check_principal("caller", caller)?;
        let rolled = self.backend.snapshot_rollback(id, name, caller);
        self.announce(rolled, |t| &t.vm_id, |t| t.action.as_str())
    }

    pub fn snapshot_delete(&self, id: &str, name: &str, caller: &str) -> Result<(), HvError> {
        check_principal("caller", caller)?;
        self.backend.snapshot_delete(id, name, caller)
    }

    pub fn list_snapshots(&self, id: &str) -> Result<Vec<Snapshot>, HvError> {
        self.backend.list_snapshots(id)
    }

    /// A NIC on a network (id or name) the VM's owner may use, with the lowest free address.
    pub fn add_nic(&self, id: &str, network: &str, caller: &str) -> Result<Nic, HvError> {
        self.add_nic_at(id, network, None, caller)
    }

    /// `add_nic` with the NIC's address chosen.
    pub fn add_nic_at(
        &self,
        id: &str,
        network: &str,
        ip: Option<&str>,
        caller: &str,
    ) -> Result<Nic, HvError> {
        check_principal("caller", caller)?;
        let nic = self.backend.add_nic_at(id, network, ip, caller)?;
        self.changed(id, Operation::AddNic.as_str());
        Ok(nic)
    }

    /// Any NIC but the primary one; its address is free again at once.
    pub fn remove_nic(&self, id: &str, mac: &str, caller: &str) -> Result<(), HvError> {
        check_principal("caller", caller)?;
        self.backend.remove_nic(id, mac, caller)?;
        self.changed(id, Operation::RemoveNic.as_str());
        Ok(())
    }

    /// Where a running VM's console (RFB) listens, or `None` when the backend
    /// runs no real VMs; `IllegalTransition` when the VM is not running.
    pub fn console(&self, id: &str) -> Result<Option<std::path::PathBuf>, HvError> {
        self.backend.console(id)
    }

    /// An owner-scoped network (checked: subnet, range, gateway, routes).
    pub fn create_network(&self, network: &NewNetwork) -> Result<Network, HvError> {
        self.backend.create_network(&checked_network(network)?)
    }

    /// New provision range, resolvers and routes for a network `create_network` made.
    pub fn update_network(&self, id: &str, network: &NewNetwork) -> Result<Network, HvError> {
        self.backend.update_network(id, &checked_network(network)?)
    }

    /// Removes a network `create_network` made; `Conflict` while a NIC is on it.
    pub fn delete_network(&self, id: &str) -> Result<(), HvError> {
        self.backend.delete_network(id)
    }

    /// Holds `ip` (or the lowest free address of the provision range) of a
    /// network so no new NIC is given it; returns the address.
    pub fn reserve_ip(
        &self,
        network: &str,
        ip: Option<&str>,
        holder: &str,
    ) -> Result<String, HvError> {
        check_principal("holder", holder)?;
        if let Some(ip) = ip {
            ip.parse::<std::net::IpAddr>()
                .map_err(|_| HvError::Invalid(format!("{ip:?} is not an IP address")))?;
        }
        self.backend.reserve_ip(network, ip, holder)
    }

    pub fn unreserve_ip(&self, network: &str, ip: &str) -> Result<(), HvError> {
        self.backend.unreserve_ip(network, ip)
    }

    /// The VM's audit trail, newest first.
    /// The VMs created, changed or removed after revision `after` (0: all),
    /// oldest change first, at most `limit` (1 to [`MAX_CHANGES_PAGE`]).
    pub fn vm_changes_since(&self, after: u64, limit: u32) -> Result<VmChanges, HvError> {
        if limit == 0 || limit > MAX_CHANGES_PAGE {
            return Err(HvError::Invalid(format!(
                "limit must be from 1 to {MAX_CHANGES_PAGE}"
            )));
        }
        self.backend.vm_changes_since(after, limit)
    }

    pub fn audit(&self, id: &str) -> Result<Vec<AuditEntry>, HvError> {
        self.backend.audit(id)
    }

    /// Finishes a transition: the VM reaches its target state and the audit entry
    /// succeeds. Completing a completed transition again returns the VM unchanged.
    pub fn complete(&self, transition: &str) -> Result<Vm, HvError> {
        let done = self.backend.complete(transition);
        self.announce_vm(done, |vm| vm, "completed")
    }

    /// The transitions that bring drifted VMs back in line (see
    /// [`HypervisorBackend::reconcile`]); the caller schedules them.
    pub fn reconcile(&self) -> Result<Vec<Transition>, HvError> {
        let transitions = self.backend.reconcile()?;
        for t in &transitions {
            self.changed(&t.vm_id, t.action.as_str());
        }
        Ok(transitions)
    }

    /// Fails a transition: the VM becomes `failed` and the audit entry records the
    /// reason. Failing a failed transition again returns the VM unchanged.
    pub fn fail(&self, transition: &str, reason: &str) -> Result<Vm, HvError> {
        let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
        let failed = self.backend.fail(transition, &reason);
        self.announce_vm(failed, |vm| vm, "failed")
    }
}

/// One `hypervisor.vm` event: the VM's identity and state, and what changed.
fn publish(events: &EventBus, vm: &Vm, change: &str) {
    let payload = serde_json::json!({
        "id": vm.id, "name": vm.name, "owner": vm.owner, "state": vm.state.as_str(),
        "change": change, "creator": vm.creator,
    });
    events.publish(HYPERVISOR_VM, payload.to_string());
}

/// The spec with its JSON normalised, or why it is refused.
fn checked_image(image: &NewImage) -> Result<NewImage, HvError> {
    for (field, value) in [
        ("image name", &image.name),
        ("version", &image.version),
        ("os", &image.os),
        ("image type", &image.image_type),
    ] {
        check_text(field, value, MAX_NAME_CHARS)?;
    }
    check_mib("image size", image.size_mib)?;
    if let Some(owner) = &image.owner {
        check_principal("owner", owner)?;
    }
    let image = NewImage {
        extra: json_object("extra", &image.extra)?,
        ..image.clone()
    };
    Ok(image)
}

/// The network with its addresses checked against its subnet and its routes
/// normalised.
fn checked_network(network: &NewNetwork) -> Result<NewNetwork, HvError> {
    use std::net::Ipv4Addr;
    check_text("network name", &network.name, MAX_NAME_CHARS)?;
    check_principal("owner", &network.owner)?;
    if network.vlan.is_some_and(|vlan| vlan > 4095) {
        return Err(HvError::Invalid("vlan must be between 0 and 4095".into()));
    }
    let subnet: ipnet::Ipv4Net = network.subnet.parse().map_err(|_| {
        HvError::Invalid(format!("subnet {:?} is not an IPv4 CIDR", network.subnet))
    })?;
    if subnet.trunc() != subnet {
        return Err(HvError::Invalid(format!(
            "subnet {subnet} has host bits set"
        )));
    }
    let inside = |what: &str, text: &str| -> Result<Ipv4Addr, HvError> {
        let ip: Ipv4Addr = text
            .parse()
            .map_err(|_| HvError::Invalid(format!("{what} {text:?} is not an IPv4 address")))?;
        if !subnet.contains(&ip) {
            return Err(HvError::Invalid(format!("{what} {ip} is outside {subnet}")));
        }
        Ok(ip)
    };
    let start = network
        .provision_start
        .as_deref()
        .map(|ip| inside("provision start", ip))
        .transpose()?;
    let end = network
        .provision_end
        .as_deref()
        .map(|ip| inside("provision end", ip))
        .transpose()?;
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        return Err(HvError::Invalid(
            "the provision range starts after it ends".into(),
        ));
    }
    if let Some(gateway) = &network.gateway {
        inside("gateway", gateway)?;
    }
    if network.resolvers.len() > MAX_DEVICES {
        return Err(HvError::Invalid(format!(
            "a network has at most {MAX_DEVICES} resolvers"
        )));
    }
    for resolver in &network.resolvers {
        resolver
            .parse::<std::net::IpAddr>()
            .map_err(|_| HvError::Invalid(format!("resolver {resolver:?} is not an address")))?;
    }
    let routes = json_object("routes", &network.routes)?;
    let parsed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&routes).unwrap_or_default();
    for (destination, via) in &parsed {
        let ok = destination.parse::<ipnet::IpNet>().is_ok()
            || destination.parse::<std::net::IpAddr>().is_ok();
        let via_ok = via
            .as_str()
            .is_some_and(|v| v.parse::<std::net::IpAddr>().is_ok());
        if !ok || !via_ok {
            return Err(HvError::Invalid(format!(
                "route {destination:?} is not a destination and a gateway address"
            )));
        }
    }
    Ok(NewNetwork {
        subnet: subnet.to_string(),
        routes,
        ..network.clone()
    })
}

fn checked_spec(spec: &VmSpec) -> Result<VmSpec, HvError> {
    check_text("vm name", &spec.name, MAX_NAME_CHARS)?;
    check_principal("owner", &spec.owner)?;
    check_size(Size {
        cpus: spec.cpus,
        ram_mib: spec.ram_mib,
        disk_mib: spec.disk_mib,
    })?;
    if spec.networks.len() > MAX_DEVICES {
        return Err(HvError::Invalid(format!(
            "a vm has at most {MAX_DEVICES} networks"
        )));
    }
    if spec.data_disks.len() >= MAX_DEVICES {
        return Err(HvError::Invalid(format!(
            "a vm has at most {MAX_DEVICES} disks"
        )));
    }
    for size in &spec.data_disks {
        check_mib("data disk size", *size)?;
    }
    Ok(VmSpec {
        tags: json_object("tags", &spec.tags)?,
        metadata: json_object("metadata", &spec.metadata)?,
        ..spec.clone()
    })
}

/// Bounded node lists and, if given, a VM id that is a UUID (kept lower-case).
fn checked_placement(placement: &Placement) -> Result<Placement, HvError> {
    for nodes in [
        &placement.only_nodes,
        &placement.avoid_nodes,
        &placement.prefer_nodes,
        &placement.shun_nodes,
    ] {
        if nodes.len() > MAX_PLACEMENT_NODES {
            return Err(HvError::Invalid(format!(
                "a placement names at most {MAX_PLACEMENT_NODES} nodes per list"
            )));
        }
        for node in nodes {
            check_principal("node", node)?;
        }
    }
    if placement.addresses.len() > MAX_DEVICES {
        return Err(HvError::Invalid(format!(
            "a placement chooses at most {MAX_DEVICES} addresses"
        )));
    }
    let vm_id = match &placement.vm_id {
        None => None,
        Some(id) => Some(
            uuid::Uuid::parse_str(id)
                .map_err(|_| HvError::Invalid(format!("vm id {id:?} is not a UUID")))?
                .hyphenated()
                .to_string(),
        ),
    };
    Ok(Placement {
        vm_id,
        ..placement.clone()
    })
}

fn check_size(size: Size) -> Result<(), HvError> {
    if size.cpus == 0 || size.cpus > MAX_CPUS {
        return Err(HvError::Invalid(format!(
            "cpus must be between 1 and {MAX_CPUS}"
        )));
    }
    check_mib("ram", size.ram_mib)?;
    check_mib("disk", size.disk_mib)
}

fn check_mib(what: &str, mib: u64) -> Result<(), HvError> {
    if mib == 0 || mib > MAX_MIB {
        return Err(HvError::Invalid(format!(
            "{what} must be between 1 and {MAX_MIB} MiB"
        )));
    }
    Ok(())
}

/// A name: 1 to `max` characters, no control characters, not blank.
fn check_text(what: &str, text: &str, max: usize) -> Result<(), HvError> {
    if text.trim().is_empty() || text.chars().count() > max {
        return Err(HvError::Invalid(format!(
            "{what} must have 1 to {max} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(HvError::Invalid(format!("{what} has a control character")));
    }
    Ok(())
}

fn check_principal(what: &str, text: &str) -> Result<(), HvError> {
    if text.len() > MAX_PRINCIPAL_BYTES {
        return Err(HvError::Invalid(format!(
            "{what} is longer than {MAX_PRINCIPAL_BYTES} bytes"
        )));
    }
    check_text(what, text, MAX_PRINCIPAL_BYTES)
}

/// `text` as a compact JSON object; empty text is `{}`.
fn json_object(what: &str, text: &str) -> Result<String, HvError> {
    if text.trim().is_empty() {
        return Ok("{}".into());
    }
    if text.len() > MAX_JSON_BYTES {
        return Err(HvError::Invalid(format!(
            "{what} is longer than {MAX_JSON_BYTES} bytes"
        )));
    }
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|error| HvError::Invalid(format!("{what} is not a JSON object: {error}")))?;
    serde_json::to_string(&object).map_err(|error| HvError::Backend(error.to_string()))
}

/// A tag filter's key and value.
pub fn split_tag(tag: &str) -> Result<(&str, &str), HvError> {
    match tag.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key, value)),
        _ => Err(HvError::Invalid(format!(
            "tag filter {tag:?} is not key=value"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_operations_read_back_from_their_names() -> Result<(), HvError> {
        for state in VmState::ALL {
            assert_eq!(state.as_str().parse::<VmState>()?, state);
        }
        for op in Operation::ALL {
            assert_eq!(op.as_str().parse::<Operation>()?, op);
        }
        assert!(matches!(
            "deleting".parse::<VmState>(),
            Err(HvError::Invalid(_))
        ));
        Ok(())
    }

    #[test]
    fn every_rule_passes_through_a_transitional_state_or_stays_settled() {
        for action in [
            VmAction::Start,
            VmAction::Stop,
            VmAction::Reboot,
            VmAction::Delete,
        ] {
            let rule = action.rule();
            assert!(rule.via.is_transitional(), "{action:?}");
            assert!(rule.from.iter().all(|state| !state.is_transitional()));
            assert!(!rule.to.is_transitional());
        }
        assert!(!STOPPED_JOB.via.is_transitional());
        assert!(CREATE.via.is_transitional());
    }

    #[test]
    fn json_fields_are_normalised_objects() -> Result<(), HvError> {
        assert_eq!(json_object("tags", "")?, "{}");
        assert_eq!(
            json_object("tags", r#" { "b": 1, "a": "x" } "#)?,
            r#"{"a":"x","b":1}"#
        );
        for bad in ["[]", "1", "{", "\"s\"", "null"] {
            assert!(
                matches!(json_object("tags", bad), Err(HvError::Invalid(_))),
                "{bad}"
            );
        }
        Ok(())
    }

    #[test]
    fn names_must_be_printable_and_bounded() {
        let long = "n".repeat(MAX_NAME_CHARS + 1);
        for bad in ["", "  ", "a\nb", "tab\there", long.as_str()] {
            assert!(matches!(
                check_text("n", bad, MAX_NAME_CHARS),
                Err(HvError::Invalid(_))
            ));
        }
        assert_eq!(check_text("n", "web-1 (é)", MAX_NAME_CHARS), Ok(()));
    }

    #[test]
    fn tag_filters_need_a_key_and_an_equals_sign() -> Result<(), HvError> {
        assert_eq!(split_tag("role=db")?, ("role", "db"));
        assert_eq!(split_tag("empty=")?, ("empty", ""));
        assert_eq!(split_tag("a=b=c")?, ("a", "b=c"));
        for bad in ["role", "=db", ""] {
            assert!(matches!(split_tag(bad), Err(HvError::Invalid(_))), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn sizes_must_be_in_range() {
        let ok = Size {
            cpus: 1,
            ram_mib: 1,
            disk_mib: 1,
        };
        assert_eq!(check_size(ok), Ok(()));
        for bad in [
            Size { cpus: 0, ..ok },
            Size {
                cpus: MAX_CPUS + 1,
                ..ok
            },
            Size { ram_mib: 0, ..ok },
            Size {
                disk_mib: MAX_MIB + 1,
                ..ok
            },
        ] {
            assert!(
                matches!(check_size(bad), Err(HvError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
