//! The `hypervisor` interface: converts WIT values and calls [`Hypervisor`];
//! each transition's completion is queued as a kernel job whose id is returned.

use super::{
    AuditEntry, Compute, Disk, HvError, Image, ImageChanges, Network, NewImage, NewNetwork, Nic,
    NicAddress, Node, Package, Placement, Snapshot, Vm, VmAction, VmFilter, VmPage, VmQuery,
    VmSpec, VmState,
};
use crate::runtime::bindings::tessera::kernel::hypervisor as wit;
use crate::runtime::state::InstanceState;

type WitResult<T> = Result<T, wit::HvError>;

impl InstanceState {
    fn compute(&self) -> WitResult<&Compute> {
        self.plugin
            .compute
            .as_ref()
            .ok_or_else(|| wit::HvError::Unsupported(crate::primitives::unsupported("hypervisor")))
    }
}

fn list<T, U: From<T>>(items: Vec<T>) -> Vec<U> {
    items.into_iter().map(Into::into).collect()
}

impl wit::Host for InstanceState {
    fn list_nodes(&mut self) -> WitResult<Vec<wit::Node>> {
        Ok(list(self.compute()?.hypervisor.list_nodes()?))
    }
    fn list_images(&mut self) -> WitResult<Vec<wit::Image>> {
        Ok(list(self.compute()?.hypervisor.list_images()?))
    }
    fn get_image(&mut self, id: String) -> WitResult<Option<wit::Image>> {
        Ok(self.compute()?.hypervisor.get_image(&id)?.map(Into::into))
    }
    fn list_networks(&mut self) -> WitResult<Vec<wit::Network>> {
        Ok(list(self.compute()?.hypervisor.list_networks()?))
    }
    fn list_vms(&mut self, filter: wit::VmFilter) -> WitResult<wit::VmPage> {
        Ok(self.compute()?.hypervisor.list_vms(&filter.into())?.into())
    }
    fn get_vm(&mut self, id: String) -> WitResult<Option<wit::Vm>> {
        Ok(self.compute()?.hypervisor.get_vm(&id)?.map(Into::into))
    }
    fn create_vm(&mut self, spec: wit::VmSpec, caller: String) -> WitResult<(wit::Vm, String)> {
        let compute = self.compute()?;
        let (vm, transition) =
            compute
                .hypervisor
                .create_vm(&spec.into(), &caller, &self.plugin.name)?;
        Ok((vm.into(), compute.schedule(&transition)?))
    }
    fn act(&mut self, id: String, action: wit::VmAction, caller: String) -> WitResult<String> {
        let compute = self.compute()?;
        let transition = compute.hypervisor.act(&id, action.into(), &caller)?;
        Ok(compute.schedule(&transition)?)
    }
    fn resize(
        &mut self,
        id: String,
        cpus: u32,
        ram_mib: u64,
        disk_mib: u64,
        caller: String,
    ) -> WitResult<String> {
        let compute = self.compute()?;
        let transition = compute
            .hypervisor
            .resize(&id, cpus, ram_mib, disk_mib, &caller)?;
        Ok(compute.schedule(&transition)?)
    }
    fn rename(&mut self, id: String, name: String, caller: String) -> WitResult<wit::Vm> {
        Ok(self
            .compute()?
            .hypervisor
            .rename(&id, &name, &caller)?
            .into())
    }
    fn add_disk(&mut self, id: String, size_mib: u64, caller: String) -> WitResult<wit::Disk> {
        Ok(self
            .compute()?
            .hypervisor
            .add_disk(&id, size_mib, &caller)?
            .into())
    }
    fn remove_disk(&mut self, id: String, disk: String, caller: String) -> WitResult<()> {
        Ok(self
            .compute()?
            .hypervisor
            .remove_disk(&id, &disk, &caller)?)
    }
    fn snapshot_create(
        &mut self,
        id: String,
        name: String,
        caller: String,
    ) -> WitResult<wit::Snapshot> {
        Ok(self
            .compute()?
            .hypervisor
            .snapshot_create(&id, &name, &caller)?
            .into())
    }
    fn snapshot_rollback(&mut self, id: String, name: String, caller: String) -> WitResult<String> {
        let compute = self.compute()?;
        let transition = compute.hypervisor.snapshot_rollback(&id, &name, &caller)?;
        Ok(compute.schedule(&transition)?)
    }
    fn snapshot_delete(&mut self, id: String, name: String, caller: String) -> WitResult<()> {
        Ok(self
            .compute()?
            .hypervisor
            .snapshot_delete(&id, &name, &caller)?)
    }
    fn list_snapshots(&mut self, id: String) -> WitResult<Vec<wit::Snapshot>> {
        Ok(list(self.compute()?.hypervisor.list_snapshots(&id)?))
    }
    fn add_nic(&mut self, id: String, network: String, caller: String) -> WitResult<wit::Nic> {
        Ok(self
            .compute()?
            .hypervisor
            .add_nic(&id, &network, &caller)?
            .into())
    }
    fn add_nic_at(
        &mut self,
        id: String,
        network: String,
        ip: String,
        caller: String,
    ) -> WitResult<wit::Nic> {
        Ok(self
            .compute()?
            .hypervisor
            .add_nic_at(&id, &network, Some(&ip), &caller)?
            .into())
    }
    fn remove_nic(&mut self, id: String, mac: String, caller: String) -> WitResult<()> {
        Ok(self.compute()?.hypervisor.remove_nic(&id, &mac, &caller)?)
    }
    fn audit(&mut self, id: String) -> WitResult<Vec<wit::AuditEntry>> {
        Ok(list(self.compute()?.hypervisor.audit(&id)?))
    }
    fn import_image(&mut self, image: wit::NewImage) -> WitResult<wit::Image> {
        Ok(self
            .compute()?
            .hypervisor
            .import_image(&image.into())?
            .into())
    }
    fn query_vms(&mut self, query: wit::VmQuery) -> WitResult<wit::VmPage> {
        let query = VmQuery {
            filter: query.filter.into(),
            tags: query.tags,
            ram_mib: query.ram_mib,
            tombstone: query.tombstone,
            ..VmQuery::default()
        };
        Ok(self.compute()?.hypervisor.query_vms(&query)?.into())
    }
    fn set_vm_data(
        &mut self,
        id: String,
        tags: Option<String>,
        metadata: Option<String>,
        caller: String,
    ) -> WitResult<wit::Vm> {
        Ok(self
            .compute()?
            .hypervisor
            .set_vm_data(&id, tags.as_deref(), metadata.as_deref(), &caller)?
            .into())
    }
    fn set_deletion_protection(
        &mut self,
        id: String,
        on: bool,
        caller: String,
    ) -> WitResult<wit::Vm> {
        Ok(self
            .compute()?
            .hypervisor
            .set_deletion_protection(&id, on, &caller)?
            .into())
    }
    fn update_image(
        &mut self,
        id: String,
        name: Option<String>,
        version: Option<String>,
        extra: Option<String>,
    ) -> WitResult<wit::Image> {
        let changes = ImageChanges {
            name,
            version,
            extra,
        };
        Ok(self
            .compute()?
            .hypervisor
            .update_image(&id, &changes)?
            .into())
    }
    fn delete_image(&mut self, id: String) -> WitResult<()> {
        Ok(self.compute()?.hypervisor.delete_image(&id)?)
    }
    fn create_image_from_vm(
        &mut self,
        id: String,
        image: wit::NewImage,
        caller: String,
    ) -> WitResult<wit::Image> {
        Ok(self
            .compute()?
            .hypervisor
            .create_image_from_vm(&id, &image.into(), &caller)?
            .into())
    }
    fn migrate_vm(
        &mut self,
        id: String,
        node: Option<String>,
        caller: String,
    ) -> WitResult<wit::Vm> {
        Ok(self
            .compute()?
            .hypervisor
            .migrate_vm(&id, node.as_deref(), &caller)?
            .into())
    }
    fn list_packages(&mut self) -> WitResult<Vec<wit::HvPackage>> {
        Ok(list(self.compute()?.hypervisor.list_packages()?))
    }
    fn resize_disk(
        &mut self,
        id: String,
        disk: String,
        size_mib: u64,
        allow_shrink: bool,
        caller: String,
    ) -> WitResult<wit::Disk> {
        Ok(self
            .compute()?
            .hypervisor
            .resize_disk(&id, &disk, size_mib, allow_shrink, &caller)?
            .into())
    }
    fn create_image_from_vm_job(
        &mut self,
        id: String,
        image: wit::NewImage,
        caller: String,
    ) -> WitResult<(wit::Image, String)> {
        let compute = self.compute()?;
        let (image, transition) =
            compute
                .hypervisor
                .create_image_from_vm_job(&id, &image.into(), &caller)?;
        Ok((image.into(), compute.schedule(&transition)?))
    }
    fn query_vms_more(
        &mut self,
        query: wit::VmQuery,
        more: wit::VmQueryMore,
    ) -> WitResult<wit::VmPage> {
        let query = VmQuery {
            filter: query.filter.into(),
            tags: query.tags,
            ram_mib: query.ram_mib,
            tombstone: query.tombstone,
            images: more.images,
            ids: more.ids,
            not_ids: more.not_ids,
        };
        Ok(self.compute()?.hypervisor.query_vms(&query)?.into())
    }
    fn migration_target(&mut self, id: String, placement: wit::Placement) -> WitResult<String> {
        Ok(self
            .compute()?
            .hypervisor
            .migration_target(&id, &placement.into())?)
    }
    fn clone_image(&mut self, id: String, owner: String) -> WitResult<wit::Image> {
        Ok(self.compute()?.hypervisor.clone_image(&id, &owner)?.into())
    }
    fn list_packages_info(&mut self) -> WitResult<Vec<wit::HvPackageInfo>> {
        let packages = self.compute()?.hypervisor.list_packages()?;
        Ok(packages
            .into_iter()
            .map(|p| wit::HvPackageInfo {
                version: p.version.clone(),
                group: p.group.clone(),
                description: p.description.clone(),
                package: p.into(),
            })
            .collect())
    }
    fn create_vm_placed(
        &mut self,
        spec: wit::VmSpec,
        placement: wit::Placement,
        caller: String,
    ) -> WitResult<(wit::Vm, String)> {
        let compute = self.compute()?;
        let (vm, transition) = compute.hypervisor.create_vm_placed(
            &spec.into(),
            &placement.into(),
            &caller,
            &self.plugin.name,
        )?;
        Ok((vm.into(), compute.schedule(&transition)?))
    }
    fn create_network(&mut self, network: wit::NewNetwork) -> WitResult<wit::Network> {
        Ok(self
            .compute()?
            .hypervisor
            .create_network(&network.into())?
            .into())
    }
    fn update_network(&mut self, id: String, network: wit::NewNetwork) -> WitResult<wit::Network> {
        Ok(self
            .compute()?
            .hypervisor
            .update_network(&id, &network.into())?
            .into())
    }
    fn delete_network(&mut self, id: String) -> WitResult<()> {
        Ok(self.compute()?.hypervisor.delete_network(&id)?)
    }
    fn reserve_ip(
        &mut self,
        network: String,
        ip: Option<String>,
        holder: String,
    ) -> WitResult<String> {
        Ok(self
            .compute()?
            .hypervisor
            .reserve_ip(&network, ip.as_deref(), &holder)?)
    }
    fn unreserve_ip(&mut self, network: String, ip: String) -> WitResult<()> {
        Ok(self.compute()?.hypervisor.unreserve_ip(&network, &ip)?)
    }
    fn vm_changes_since(&mut self, after: u64, limit: u32) -> WitResult<wit::VmChanges> {
        let page = self.compute()?.hypervisor.vm_changes_since(after, limit)?;
        Ok(wit::VmChanges {
            changes: page
                .changes
                .into_iter()
                .map(|change| wit::VmChange {
                    id: change.id,
                    vm: change.vm.map(Into::into),
                })
                .collect(),
            cursor: page.cursor,
            more: page.more,
        })
    }
}

impl From<HvError> for wit::HvError {
    fn from(e: HvError) -> Self {
        match e {
            HvError::NotFound(m) => wit::HvError::NotFound(m),
            HvError::IllegalTransition(s) => wit::HvError::IllegalTransition(s),
            HvError::Capacity(m) => wit::HvError::Capacity(m),
            HvError::Protected => wit::HvError::Protected,
            HvError::Invalid(m) => wit::HvError::Invalid(m),
            HvError::Conflict(m) => wit::HvError::Conflict(m),
            HvError::Backend(detail) => {
                tracing::error!(error = %detail, "hypervisor backend failure");
                wit::HvError::Backend("the hypervisor backend failed; see the kernel log".into())
            }
        }
    }
}

/// `From` between a kernel type and its WIT twin whose fields are the same.
macro_rules! same_fields {
    ($from:ty => $to:ty { $($field:ident),* $(,)? }) => {
        impl From<$from> for $to {
            fn from(v: $from) -> Self {
                Self { $($field: v.$field.into()),* }
            }
        }
    };
}

same_fields!(Node => wit::Node { id, name, cpus, ram_mib, disk_mib, state });
same_fields!(Image => wit::Image {
    id, name, version, os, image_type, size_mib, state, owner, public, extra, created
});
same_fields!(Network => wit::Network { id, name, vlan, subnet, gateway, public, owner });
same_fields!(Nic => wit::Nic { mac, network, ip, primary, state });
same_fields!(Disk => wit::Disk { id, size_mib, boot });
same_fields!(Package => wit::HvPackage {
    id, name, cpus, ram_mib, disk_mib, swap_mib, lwps, is_default, created
});
same_fields!(Snapshot => wit::Snapshot { name, state, created });
same_fields!(AuditEntry => wit::AuditEntry { action, caller, time, success, parameters, pending });
same_fields!(wit::NewImage => NewImage {
    name, version, os, image_type, size_mib, owner, public, extra
});
impl From<wit::Placement> for Placement {
    fn from(v: wit::Placement) -> Self {
        Placement {
            only_nodes: v.only_nodes,
            avoid_nodes: v.avoid_nodes,
            prefer_nodes: v.prefer_nodes,
            shun_nodes: v.shun_nodes,
            vm_id: v.vm_id,
            spread: v.spread,
            addresses: v.addresses.into_iter().map(Into::into).collect(),
        }
    }
}
same_fields!(wit::NicAddress => NicAddress { network, ip });
same_fields!(wit::NewNetwork => NewNetwork {
    name, owner, vlan, subnet, provision_start, provision_end, gateway, resolvers, routes
});
same_fields!(wit::VmSpec => VmSpec {
    name, owner, image, cpus, ram_mib, disk_mib, networks, tags, metadata, deletion_protection,
    data_disks
});

impl From<Vm> for wit::Vm {
    fn from(v: Vm) -> Self {
        wit::Vm {
            id: v.id,
            name: v.name,
            owner: v.owner,
            node: v.node,
            image: v.image,
            cpus: v.cpus,
            ram_mib: v.ram_mib,
            disk_mib: v.disk_mib,
            state: v.state.into(),
            ips: v.ips,
            nics: list(v.nics),
            disks: list(v.disks),
            tags: v.tags,
            metadata: v.metadata,
            deletion_protection: v.deletion_protection,
            created: v.created,
            updated: v.updated,
            creator: v.creator,
        }
    }
}

impl From<VmPage> for wit::VmPage {
    fn from(p: VmPage) -> Self {
        wit::VmPage {
            vms: list(p.vms),
            total: p.total,
        }
    }
}

impl From<wit::VmFilter> for VmFilter {
    fn from(f: wit::VmFilter) -> Self {
        VmFilter {
            owner: f.owner,
            state: f.state.map(Into::into),
            name: f.name,
            image: f.image,
            node: f.node,
            tag: f.tag,
            offset: f.offset,
            limit: f.limit,
        }
    }
}

macro_rules! same_variants {
    ($a:ty, $b:ty { $($variant:ident),* $(,)? }) => {
        impl From<$a> for $b {
            fn from(v: $a) -> Self {
                match v { $(<$a>::$variant => <$b>::$variant),* }
            }
        }
        impl From<$b> for $a {
            fn from(v: $b) -> Self {
                match v { $(<$b>::$variant => <$a>::$variant),* }
            }
        }
    };
}

same_variants!(
    VmState,
    wit::VmState {
        Provisioning,
        Running,
        Stopped,
        Stopping,
        Starting,
        Rebooting,
        Deleted,
        Failed
    }
);
same_variants!(
    VmAction,
    wit::VmAction {
        Start,
        Stop,
        Reboot,
        Delete
    }
);
