//! The `hypervisor` interface; every call answers `unsupported` for now.

use crate::primitives::unsupported;
use crate::runtime::bindings::tessera::kernel::hypervisor::{
    AuditEntry, Disk, Host, HvError, Image, Network, Nic, Node, Snapshot, Vm, VmAction, VmFilter,
    VmPage, VmSpec,
};
use crate::runtime::state::InstanceState;

fn not_yet<T>() -> Result<T, HvError> {
    Err(HvError::Unsupported(unsupported("hypervisor")))
}

impl Host for InstanceState {
    fn list_nodes(&mut self) -> Result<Vec<Node>, HvError> {
        not_yet()
    }
    fn list_images(&mut self) -> Result<Vec<Image>, HvError> {
        not_yet()
    }
    fn get_image(&mut self, _id: String) -> Result<Option<Image>, HvError> {
        not_yet()
    }
    fn list_networks(&mut self) -> Result<Vec<Network>, HvError> {
        not_yet()
    }
    fn list_vms(&mut self, _filter: VmFilter) -> Result<VmPage, HvError> {
        not_yet()
    }
    fn get_vm(&mut self, _id: String) -> Result<Option<Vm>, HvError> {
        not_yet()
    }
    fn create_vm(&mut self, _spec: VmSpec, _caller: String) -> Result<(Vm, String), HvError> {
        not_yet()
    }
    fn act(&mut self, _id: String, _action: VmAction, _caller: String) -> Result<String, HvError> {
        not_yet()
    }
    fn resize(
        &mut self,
        _id: String,
        _cpus: u32,
        _ram_mib: u64,
        _disk_mib: u64,
        _caller: String,
    ) -> Result<String, HvError> {
        not_yet()
    }
    fn rename(&mut self, _id: String, _name: String, _caller: String) -> Result<Vm, HvError> {
        not_yet()
    }
    fn add_disk(&mut self, _id: String, _size_mib: u64, _caller: String) -> Result<Disk, HvError> {
        not_yet()
    }
    fn remove_disk(&mut self, _id: String, _disk: String, _caller: String) -> Result<(), HvError> {
        not_yet()
    }
    fn snapshot_create(
        &mut self,
        _id: String,
        _name: String,
        _caller: String,
    ) -> Result<Snapshot, HvError> {
        not_yet()
    }
    fn snapshot_rollback(
        &mut self,
        _id: String,
        _name: String,
        _caller: String,
    ) -> Result<String, HvError> {
        not_yet()
    }
    fn snapshot_delete(
        &mut self,
        _id: String,
        _name: String,
        _caller: String,
    ) -> Result<(), HvError> {
        not_yet()
    }
    fn list_snapshots(&mut self, _id: String) -> Result<Vec<Snapshot>, HvError> {
        not_yet()
    }
    fn add_nic(&mut self, _id: String, _network: String, _caller: String) -> Result<Nic, HvError> {
        not_yet()
    }
    fn remove_nic(&mut self, _id: String, _mac: String, _caller: String) -> Result<(), HvError> {
        not_yet()
    }
    fn audit(&mut self, _id: String) -> Result<Vec<AuditEntry>, HvError> {
        not_yet()
    }
}
