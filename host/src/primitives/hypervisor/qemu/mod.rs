//! The `qemu` backend: real VMs on this machine. The inventory and its state
//! machine are the `sim` backend's (same tables, same rules, same audit); this
//! backend adds the work behind each transition, done by the transition's job
//! before it completes: qcow2 overlay disks on base images (`img.rs`), one
//! daemonized `qemu-system-x86_64` per running VM (`process.rs`), and QMP for
//! stop, reboot and status (`qmp.rs`). A failure fails the job, and the VM
//! goes `failed` as on `sim`.

mod img;
mod process;
mod qmp;

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::api::{
    AuditEntry, Disk, HvError, HypervisorBackend, Image, ImageChanges, Network, NewImage,
    NewNetwork, NewPackage, Nic, Node, Operation, Package, Placement, Size, Snapshot, Transition,
    Vm, VmAction, VmChanges, VmFilter, VmPage, VmQuery, VmSpec, VmState,
};
use super::config::QemuSettings;
use super::sim::SimBackend;
use crate::db::Database;

use img::QemuImg;

/// Who the audit names for changes the backend observed rather than was asked for.
const RECONCILER: &str = "hypervisor";
use process::{Launch, VmFiles};

pub struct QemuBackend {
    inventory: SimBackend,
    settings: QemuSettings,
    images_dir: PathBuf,
    vms_dir: PathBuf,
    /// VMs whose process is down on purpose for a moment (an image copy):
    /// `reconcile` leaves them alone.
    busy: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl QemuBackend {
    /// Opens the inventory and makes the image and VM folders.
    pub fn open(
        db: Database,
        settings: &QemuSettings,
        data_dir: &Path,
    ) -> Result<QemuBackend, HvError> {
        let inventory = SimBackend::open(db, &settings.inventory())?;
        let root = data_dir.join(&settings.dir);
        let images_dir = root.join("images");
        let vms_dir = root.join("vms");
        for dir in [&images_dir, &vms_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| HvError::Backend(format!("{}: {e}", dir.display())))?;
        }
        Ok(QemuBackend {
            inventory,
            settings: settings.clone(),
            images_dir,
            vms_dir,
            busy: Default::default(),
        })
    }

    fn img(&self) -> QemuImg<'_> {
        QemuImg {
            program: &self.settings.qemu_img,
        }
    }

    fn files(&self, vm: &str) -> VmFiles {
        VmFiles::new(&self.vms_dir, vm)
    }

    fn base_image(&self, image: &str) -> Option<PathBuf> {
        let file = self.images_dir.join(format!("{image}.qcow2"));
        file.exists().then_some(file)
    }

    fn launch(&self) -> Launch<'_> {
        Launch {
            program: &self.settings.qemu_system,
            accel: &self.settings.accel,
            machine: &self.settings.machine,
            boot_timeout: Duration::from_millis(self.settings.boot_timeout_ms),
        }
    }

    fn vm(&self, id: &str) -> Result<Vm, HvError> {
        self.inventory
            .get_vm(id)?
            .ok_or_else(|| HvError::NotFound(format!("vm {id}")))
    }

    /// The real work of a transition, before the inventory records it done.
    fn perform(
        &self,
        action: Operation,
        vm: &Vm,
        parameters: &serde_json::Value,
    ) -> Result<(), String> {
        let files = self.files(&vm.id);
        let grace = Duration::from_millis(self.settings.shutdown_timeout_ms);
        match action {
            Operation::Create => {
                self.make_disks(vm, &files)?;
                self.launch().start(vm, &files)
            }
            Operation::Start => self.launch().start(vm, &files),
            Operation::Stop => process::stop(&files, grace),
            Operation::Reboot => match files.running_pid() {
                Some(_) => process::reset(&files),
                None => self.launch().start(vm, &files),
            },
            Operation::Delete => {
                process::stop(&files, Duration::ZERO)?;
                match std::fs::remove_dir_all(&files.dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(format!("{}: {e}", files.dir.display()))
                    }
                    _ => Ok(()),
                }
            }
            Operation::Resize => match vm.disks.first() {
                Some(boot) => self.img().resize(&files.boot_disk(), boot.size_mib),
                None => Ok(()),
            },
            Operation::SnapshotRollback => {
                let name = parameters["name"].as_str().unwrap_or_default();
                self.img().snapshot('a', name, &files.boot_disk())
            }
            // `create-image-from-vm-job`: the copy the synchronous call makes,
            // done by the job; a failure fails the (`creating`) image only.
            Operation::CreateImage => {
                let image = parameters["image"].as_str().unwrap_or_default();
                let pending = self.images_dir.join(format!(".pending-{image}.qcow2"));
                let file = self.images_dir.join(format!("{image}.qcow2"));
                let copied = self.copy_boot_disk(vm, &pending).and_then(|()| {
                    std::fs::rename(&pending, &file).map_err(|e| format!("{}: {e}", file.display()))
                });
                if copied.is_err() {
                    let _ = std::fs::remove_file(&pending);
                }
                copied
            }
            // Everything else changes only the inventory.
            _ => Ok(()),
        }
    }

    /// The boot disk, an overlay on the image's base file (blank when the
    /// image has none), and any data disks.
    fn make_disks(&self, vm: &Vm, files: &VmFiles) -> Result<(), String> {
        std::fs::create_dir_all(&files.dir).map_err(|e| format!("{}: {e}", files.dir.display()))?;
        let img = self.img();
        for (index, disk) in vm.disks.iter().enumerate() {
            let (file, base) = if index == 0 {
                (files.boot_disk(), self.base_image(&vm.image))
            } else {
                (files.data_disk(&disk.id), None)
            };
            if !file.exists() {
                img.create(&file, base.as_deref(), disk.size_mib)?;
            }
        }
        Ok(())
    }

    /// Copies the VM's boot disk, backing chain flattened, into `to`.
    fn copy_boot_disk(&self, vm: &Vm, to: &Path) -> Result<(), String> {
        let files = self.files(&vm.id);
        let running = files.running_pid().is_some();
        let _busy = Busy::hold(&self.busy, &vm.id);
        if running {
            process::stop(
                &files,
                Duration::from_millis(self.settings.shutdown_timeout_ms),
            )?;
        }
        let copied = self.img().convert(&files.boot_disk(), "qcow2", to);
        if running {
            self.launch().start(vm, &files)?;
        }
        copied
    }

    /// Runs `work` on a snapshot of the VM's boot disk: through the monitor
    /// while it runs (`savevm`/`delvm`), with qemu-img while it is stopped.
    fn snapshot_work(&self, vm: &str, op: char, name: &str) -> Result<(), String> {
        let files = self.files(vm);
        if files.running_pid().is_some() {
            let verb = if op == 'c' { "savevm" } else { "delvm" };
            let mut qmp = qmp::Qmp::connect(&files.qmp)?;
            return qmp.human(&format!("{verb} {name}")).map(drop);
        }
        let disk = files.boot_disk();
        if op == 'd' && !self.img().snapshots(&disk)?.iter().any(|s| s == name) {
            return Ok(());
        }
        self.img().snapshot(op, name, &disk)
    }
}

/// Marks a VM busy until dropped.
struct Busy<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<String>>,
    vm: String,
}

impl<'a> Busy<'a> {
    fn hold(set: &'a std::sync::Mutex<std::collections::HashSet<String>>, vm: &str) -> Busy<'a> {
        if let Ok(mut held) = set.lock() {
            held.insert(vm.to_string());
        }
        Busy {
            set,
            vm: vm.to_string(),
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Ok(mut held) = self.set.lock() {
            held.remove(&self.vm);
        }
    }
}

/// A short stable digest of `text` (FNV-1a, hex) for file names.
pub fn short_hash(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

fn backend(error: String) -> HvError {
    HvError::Backend(error)
}

impl HypervisorBackend for QemuBackend {
    fn transition_delay(&self) -> Duration {
        Duration::ZERO
    }

    fn list_nodes(&self) -> Result<Vec<Node>, HvError> {
        self.inventory.list_nodes()
    }

    fn list_images(&self) -> Result<Vec<Image>, HvError> {
        self.inventory.list_images()
    }

    fn get_image(&self, id: &str) -> Result<Option<Image>, HvError> {
        self.inventory.get_image(id)
    }

    fn import_image(&self, image: &NewImage) -> Result<Image, HvError> {
        self.inventory.import_image(image)
    }

    /// Converts the file to qcow2 first, so a bad file leaves no record; the
    /// record's size is the image's virtual size.
    fn import_image_file(&self, image: &NewImage, file: &Path) -> Result<Image, HvError> {
        let img = self.img();
        let info = img.info(file).map_err(HvError::Invalid)?;
        let staged = self
            .images_dir
            .join(format!(".import-{}.qcow2", uuid::Uuid::new_v4()));
        img.convert(file, &info.format, &staged).map_err(backend)?;
        let sized = NewImage {
            size_mib: info.virtual_size.div_ceil(1024 * 1024).max(1),
            ..image.clone()
        };
        let imported = match self.inventory.import_image(&sized) {
            Ok(imported) => imported,
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                return Err(e);
            }
        };
        let target = self.images_dir.join(format!("{}.qcow2", imported.id));
        std::fs::rename(&staged, &target)
            .map_err(|e| HvError::Backend(format!("{}: {e}", target.display())))?;
        Ok(imported)
    }

    fn list_networks(&self) -> Result<Vec<Network>, HvError> {
        self.inventory.list_networks()
    }

    fn list_vms(&self, filter: &VmFilter) -> Result<VmPage, HvError> {
        self.inventory.list_vms(filter)
    }

    fn get_vm(&self, id: &str) -> Result<Option<Vm>, HvError> {
        self.inventory.get_vm(id)
    }

    fn vm_changes_since(&self, after: u64, limit: u32) -> Result<VmChanges, HvError> {
        self.inventory.vm_changes_since(after, limit)
    }

    fn create_vm(
        &self,
        spec: &VmSpec,
        caller: &str,
        plugin: &str,
    ) -> Result<(Vm, Transition), HvError> {
        self.inventory.create_vm(spec, caller, plugin)
    }

    /// Placement is inventory work; the disks are made when the job runs.
    fn create_vm_placed(
        &self,
        spec: &VmSpec,
        placement: &Placement,
        caller: &str,
        plugin: &str,
    ) -> Result<(Vm, Transition), HvError> {
        self.inventory
            .create_vm_placed(spec, placement, caller, plugin)
    }

    fn act(&self, id: &str, action: VmAction, caller: &str) -> Result<Transition, HvError> {
        self.inventory.act(id, action, caller)
    }

    fn resize(&self, id: &str, size: Size, caller: &str) -> Result<Transition, HvError> {
        self.inventory.resize(id, size, caller)
    }

    fn rename(&self, id: &str, name: &str, caller: &str) -> Result<Vm, HvError> {
        self.inventory.rename(id, name, caller)
    }

    fn set_deletion_protection(&self, id: &str, on: bool, caller: &str) -> Result<Vm, HvError> {
        self.inventory.set_deletion_protection(id, on, caller)
    }

    fn query_vms(&self, query: &VmQuery) -> Result<VmPage, HvError> {
        self.inventory.query_vms(query)
    }

    fn set_vm_data(
        &self,
        id: &str,
        tags: Option<&str>,
        metadata: Option<&str>,
        caller: &str,
    ) -> Result<Vm, HvError> {
        self.inventory.set_vm_data(id, tags, metadata, caller)
    }

    fn update_image(&self, id: &str, changes: &ImageChanges) -> Result<Image, HvError> {
        self.inventory.update_image(id, changes)
    }

    /// The inventory row goes; a kept qcow2 copy stays on disk for the operator.
    fn delete_image(&self, id: &str) -> Result<(), HvError> {
        self.inventory.delete_image(id)
    }

    /// The copy shares the source's qcow2 file through a hard link (image
    /// files are never written once made), or gets a copy where links fail.
    fn clone_image(&self, id: &str, owner: &str) -> Result<Image, HvError> {
        let source = self.images_dir.join(format!("{id}.qcow2"));
        let cloned = self.inventory.clone_image(id, owner)?;
        let target = self.images_dir.join(format!("{}.qcow2", cloned.id));
        let linked = std::fs::hard_link(&source, &target)
            .or_else(|_| std::fs::copy(&source, &target).map(|_| ()));
        if let Err(e) = linked {
            let _ = self.inventory.delete_image(&cloned.id);
            return Err(backend(format!("{}: {e}", source.display())));
        }
        Ok(cloned)
    }

    /// The VM's boot disk, flattened onto its base, becomes the image's qcow2
    /// file. A running VM is stopped for the copy and started again, as
    /// Triton's image creation does. The file is written under a temporary
    /// name first, so no image record ever points at a half-copied file.
    fn create_image_from_vm(
        &self,
        id: &str,
        image: &NewImage,
        caller: &str,
    ) -> Result<Image, HvError> {
        let vm = self.vm(id)?;
        let pending = self
            .images_dir
            .join(format!(".pending-{}.qcow2", uuid::Uuid::new_v4()));
        self.copy_boot_disk(&vm, &pending).map_err(|e| {
            let _ = std::fs::remove_file(&pending);
            backend(e)
        })?;
        let created = match self.inventory.create_image_from_vm(id, image, caller) {
            Ok(created) => created,
            Err(e) => {
                let _ = std::fs::remove_file(&pending);
                return Err(e);
            }
        };
        let file = self.images_dir.join(format!("{}.qcow2", created.id));
        if let Err(e) = std::fs::rename(&pending, &file) {
            let _ = std::fs::remove_file(&pending);
            let _ = self.inventory.delete_image(&created.id);
            return Err(backend(format!("{}: {e}", file.display())));
        }
        Ok(created)
    }

    /// The image record (`creating`) now; its job copies the disk (`perform`).
    fn create_image_from_vm_job(
        &self,
        id: &str,
        image: &NewImage,
        caller: &str,
    ) -> Result<(Image, Transition), HvError> {
        self.inventory.create_image_from_vm_job(id, image, caller)
    }

    /// Grows or shrinks the disk's qcow2 file after the inventory agreed
    /// (stopped VMs only); if the file cannot follow, the record goes back.
    fn resize_disk(
        &self,
        id: &str,
        disk: &str,
        size_mib: u64,
        allow_shrink: bool,
        caller: &str,
    ) -> Result<Disk, HvError> {
        let before = self.vm(id)?;
        let previous = before.disks.iter().find(|d| d.id == disk).cloned();
        let resized = self
            .inventory
            .resize_disk(id, disk, size_mib, allow_shrink, caller)?;
        let files = self.files(id);
        let file = if resized.boot {
            files.boot_disk()
        } else {
            files.data_disk(&resized.id)
        };
        if let Err(e) = self.img().resize(&file, size_mib) {
            if let Some(previous) = previous {
                let _ = self
                    .inventory
                    .resize_disk(id, disk, previous.size_mib, true, caller);
            }
            return Err(backend(e));
        }
        Ok(resized)
    }

    fn list_packages(&self) -> Result<Vec<Package>, HvError> {
        self.inventory.list_packages()
    }

    fn add_package(&self, package: &NewPackage) -> Result<Package, HvError> {
        self.inventory.add_package(package)
    }

    fn remove_package(&self, package: &str) -> Result<(), HvError> {
        self.inventory.remove_package(package)
    }

    /// One machine runs every VM: there is no other node to move to.
    fn migrate_vm(&self, _id: &str, _node: Option<&str>, _caller: &str) -> Result<Vm, HvError> {
        Err(HvError::Invalid(
            "the qemu backend has one node; there is nowhere to migrate to".into(),
        ))
    }

    /// The disk file is made at once; a running VM sees it from its next start.
    fn add_disk(&self, id: &str, size_mib: u64, caller: &str) -> Result<Disk, HvError> {
        let disk = self.inventory.add_disk(id, size_mib, caller)?;
        let files = self.files(id);
        let made = std::fs::create_dir_all(&files.dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                self.img()
                    .create(&files.data_disk(&disk.id), None, size_mib)
            });
        if let Err(e) = made {
            let _ = self.inventory.remove_disk(id, &disk.id, caller);
            return Err(backend(e));
        }
        Ok(disk)
    }

    fn remove_disk(&self, id: &str, disk: &str, caller: &str) -> Result<(), HvError> {
        self.inventory.remove_disk(id, disk, caller)?;
        let _ = std::fs::remove_file(self.files(id).data_disk(disk));
        Ok(())
    }

    fn snapshot_create(&self, id: &str, name: &str, caller: &str) -> Result<Snapshot, HvError> {
        let snapshot = self.inventory.snapshot_create(id, name, caller)?;
        if let Err(e) = self.snapshot_work(id, 'c', name) {
            let _ = self.inventory.snapshot_delete(id, name, caller);
            return Err(backend(e));
        }
        Ok(snapshot)
    }

    fn snapshot_rollback(&self, id: &str, name: &str, caller: &str) -> Result<Transition, HvError> {
        self.inventory.snapshot_rollback(id, name, caller)
    }

    fn snapshot_delete(&self, id: &str, name: &str, caller: &str) -> Result<(), HvError> {
        self.inventory.snapshot_delete(id, name, caller)?;
        if let Err(e) = self.snapshot_work(id, 'd', name) {
            // The record is gone; the orphan only takes space in the qcow2.
            tracing::warn!(vm = id, snapshot = name, error = %e, "could not delete a qemu snapshot");
        }
        Ok(())
    }

    fn list_snapshots(&self, id: &str) -> Result<Vec<Snapshot>, HvError> {
        self.inventory.list_snapshots(id)
    }

    fn add_nic_at(
        &self,
        id: &str,
        network: &str,
        ip: Option<&str>,
        caller: &str,
    ) -> Result<Nic, HvError> {
        self.inventory.add_nic_at(id, network, ip, caller)
    }

    fn remove_nic(&self, id: &str, mac: &str, caller: &str) -> Result<(), HvError> {
        self.inventory.remove_nic(id, mac, caller)
    }

    fn console(&self, id: &str) -> Result<Option<PathBuf>, HvError> {
        let vm = self.vm(id)?;
        let files = self.files(&vm.id);
        if vm.state != VmState::Running || files.running_pid().is_none() {
            return Err(HvError::IllegalTransition(vm.state.as_str().into()));
        }
        Ok(Some(files.vnc))
    }

    // Networks are inventory only: a VM's NICs are user-mode networking.
    fn create_network(&self, network: &NewNetwork) -> Result<Network, HvError> {
        self.inventory.create_network(network)
    }

    fn update_network(&self, id: &str, network: &NewNetwork) -> Result<Network, HvError> {
        self.inventory.update_network(id, network)
    }

    fn delete_network(&self, id: &str) -> Result<(), HvError> {
        self.inventory.delete_network(id)
    }

    fn reserve_ip(&self, network: &str, ip: Option<&str>, holder: &str) -> Result<String, HvError> {
        self.inventory.reserve_ip(network, ip, holder)
    }

    fn unreserve_ip(&self, network: &str, ip: &str) -> Result<(), HvError> {
        self.inventory.unreserve_ip(network, ip)
    }

    fn audit(&self, id: &str) -> Result<Vec<AuditEntry>, HvError> {
        self.inventory.audit(id)
    }

    fn complete(&self, transition: &str) -> Result<Vm, HvError> {
        let pending = self.inventory.pending_transition(transition)?;
        if !pending.done {
            let vm = self.vm(&pending.vm)?;
            self.perform(pending.action, &vm, &pending.parameters)
                .map_err(backend)?;
        }
        self.inventory.complete(transition)
    }

    /// A `running` VM without its process exited on its own (the guest
    /// powered off, the host rebooted): it is stopped through the usual
    /// transition, audited as the hypervisor's doing.
    fn reconcile(&self) -> Result<Vec<Transition>, HvError> {
        let running = self.inventory.list_vms(&VmFilter {
            owner: None,
            state: Some(VmState::Running),
            name: None,
            image: None,
            node: None,
            tag: None,
            offset: 0,
            limit: None,
        })?;
        let mut stops = Vec::new();
        for vm in running.vms {
            let busy = self.busy.lock().map_or(true, |b| b.contains(&vm.id));
            if busy || self.files(&vm.id).running_pid().is_some() {
                continue;
            }
            tracing::info!(vm = %vm.id, "the VM's process is gone; recording it stopped");
            match self.inventory.act(&vm.id, VmAction::Stop, RECONCILER) {
                Ok(stop) => stops.push(stop),
                // It moved on meanwhile (a user's stop or delete): nothing to fix.
                Err(HvError::IllegalTransition(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(stops)
    }

    /// A failed create or start leaves no process behind.
    fn fail(&self, transition: &str, reason: &str) -> Result<Vm, HvError> {
        let vm = self.inventory.fail(transition, reason)?;
        if vm.state == VmState::Failed {
            let _ = process::stop(&self.files(&vm.id), Duration::ZERO);
        }
        Ok(vm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::hypervisor::Hypervisor;

    /// The backend over a temp data dir, or `None` (with a message) without QEMU.
    fn site(dir: &Path) -> Option<Hypervisor> {
        let present = ["qemu-system-x86_64", "qemu-img"].iter().all(|program| {
            std::process::Command::new(program)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
        if !present {
            eprintln!("skipped: qemu-system-x86_64 or qemu-img is not installed");
            return None;
        }
        let db = Database::open_in_memory_for_tests().unwrap();
        let settings = QemuSettings {
            shutdown_timeout_ms: 0,
            ..QemuSettings::default()
        };
        let backend = QemuBackend::open(db, &settings, dir).unwrap();
        Some(Hypervisor::with_backend(std::sync::Arc::new(backend)))
    }

    fn import_blank(hv: &Hypervisor, dir: &Path) -> Image {
        let raw = dir.join("blank.img");
        std::fs::write(&raw, vec![0_u8; 2 * 1024 * 1024]).unwrap();
        let image = NewImage {
            name: "blank".into(),
            version: "1".into(),
            os: "other".into(),
            image_type: "zvol".into(),
            size_mib: 99,
            owner: None,
            public: true,
            extra: String::new(),
        };
        hv.import_image_file(&image, &raw).unwrap()
    }

    /// One CPU, 64 MiB of RAM and an 8 MiB boot disk on `image`, for alice.
    fn small_vm(name: &str, image: &str) -> VmSpec {
        VmSpec {
            name: name.into(),
            owner: "alice".into(),
            image: image.into(),
            cpus: 1,
            ram_mib: 64,
            disk_mib: 8,
            tags: "{}".into(),
            metadata: "{}".into(),
            ..VmSpec::default()
        }
    }

    fn finish(hv: &Hypervisor, transition: &Transition) -> Vm {
        hv.complete(&transition.id).unwrap()
    }

    #[test]
    fn disks_snapshots_and_resizes_are_real_files() {
        let dir = tempfile::tempdir().unwrap();
        let Some(hv) = site(dir.path()) else { return };
        let image = import_blank(&hv, dir.path());
        assert_eq!(
            image.size_mib, 2,
            "the size is the file's, not the caller's"
        );
        let base = dir.path().join(format!("qemu/images/{}.qcow2", image.id));
        assert!(base.exists());

        let spec = small_vm("box", &image.id);
        let (vm, create) = hv.create_vm(&spec, "alice", "test").unwrap();
        assert_eq!(finish(&hv, &create).state, VmState::Running);
        let files = VmFiles::new(&dir.path().join("qemu/vms"), &vm.id);
        assert!(files.running_pid().is_some());

        // A snapshot of a running VM goes through the monitor.
        hv.snapshot_create(&vm.id, "live", "alice").unwrap();
        let stop = hv.act(&vm.id, VmAction::Stop, "alice").unwrap();
        assert_eq!(finish(&hv, &stop).state, VmState::Stopped);
        assert!(files.running_pid().is_none());
        let img = QemuImg {
            program: "qemu-img",
        };
        assert_eq!(img.snapshots(&files.boot_disk()).unwrap(), vec!["live"]);

        // Stopped: qemu-img does the snapshot work.
        hv.snapshot_create(&vm.id, "cold", "alice").unwrap();
        let rollback = hv.snapshot_rollback(&vm.id, "live", "alice").unwrap();
        assert_eq!(finish(&hv, &rollback).state, VmState::Stopped);
        hv.snapshot_delete(&vm.id, "cold", "alice").unwrap();
        assert_eq!(img.snapshots(&files.boot_disk()).unwrap(), vec!["live"]);

        let disk = hv.add_disk(&vm.id, 4, "alice").unwrap();
        assert!(files.data_disk(&disk.id).exists());
        let resize = hv.resize(&vm.id, 1, 64, 32, "alice").unwrap();
        finish(&hv, &resize);
        let boot = img.info(&files.boot_disk()).unwrap();
        let vm_now = hv.get_vm(&vm.id).unwrap().unwrap();
        assert_eq!(boot.virtual_size, vm_now.disks[0].size_mib * 1024 * 1024);

        // Started again with both disks; then deleted, files and all.
        let start = hv.act(&vm.id, VmAction::Start, "alice").unwrap();
        assert_eq!(finish(&hv, &start).state, VmState::Running);
        let delete = hv.act(&vm.id, VmAction::Delete, "alice").unwrap();
        assert_eq!(finish(&hv, &delete).state, VmState::Deleted);
        assert!(files.running_pid().is_none());
        assert!(!files.dir.exists());
    }

    #[test]
    fn images_from_vms_disk_resizes_and_dead_processes_are_real() {
        let dir = tempfile::tempdir().unwrap();
        let Some(hv) = site(dir.path()) else { return };
        let image = import_blank(&hv, dir.path());
        let spec = small_vm("source", &image.id);
        let (vm, create) = hv.create_vm(&spec, "alice", "test").unwrap();
        assert_eq!(finish(&hv, &create).state, VmState::Running);
        let files = VmFiles::new(&dir.path().join("qemu/vms"), &vm.id);
        let img = QemuImg {
            program: "qemu-img",
        };

        // A running VM is stopped for the copy and runs again afterwards;
        // the image is a standalone qcow2 (its base flattened in).
        let made = NewImage {
            name: "copy".into(),
            version: "1".into(),
            os: "other".into(),
            image_type: "zvol".into(),
            size_mib: 1,
            owner: Some("alice".into()),
            public: false,
            extra: String::new(),
        };
        let copy = hv.create_image_from_vm(&vm.id, &made, "alice").unwrap();
        let file = dir.path().join(format!("qemu/images/{}.qcow2", copy.id));
        let info = img.info(&file).unwrap();
        assert_eq!(info.format, "qcow2");
        assert_eq!(info.virtual_size, 8 * 1024 * 1024);
        assert!(files.running_pid().is_some(), "the VM runs again");
        assert_eq!(hv.get_vm(&vm.id).unwrap().unwrap().state, VmState::Running);
        // A name and version that exist: refused, and no file is left behind.
        assert!(matches!(
            hv.create_image_from_vm(&vm.id, &made, "alice"),
            Err(HvError::Conflict(_))
        ));
        let leftovers = std::fs::read_dir(dir.path().join("qemu/images"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".pending")
            })
            .count();
        assert_eq!(leftovers, 0);

        // The job variant CloudAPI uses: `creating` at once, the copy in the job.
        let later = NewImage {
            version: "2".into(),
            ..made.clone()
        };
        let (creating, job) = hv
            .create_image_from_vm_job(&vm.id, &later, "alice")
            .unwrap();
        assert_eq!(creating.state, "creating");
        finish(&hv, &job);
        let done = hv.get_image(&creating.id).unwrap().unwrap();
        assert_eq!(done.state, "active");
        let file = dir
            .path()
            .join(format!("qemu/images/{}.qcow2", creating.id));
        assert_eq!(img.info(&file).unwrap().virtual_size, 8 * 1024 * 1024);
        assert!(
            files.running_pid().is_some(),
            "the VM runs again after the job"
        );

        // The guest's process dies behind the kernel's back: the record follows.
        let pid = files.running_pid().unwrap();
        kill_now(pid);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while files.running_pid().is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let stops = hv.reconcile().unwrap();
        assert_eq!(stops.len(), 1);
        assert_eq!(finish(&hv, &stops[0]).state, VmState::Stopped);
        let audit = hv.audit(&vm.id).unwrap();
        assert_eq!(audit[0].caller, RECONCILER);
        assert!(hv.reconcile().unwrap().is_empty(), "nothing left to fix");

        // Stopped: a data disk's file grows with its record.
        let disk = hv.add_disk(&vm.id, 4, "alice").unwrap();
        let grown = hv
            .resize_disk(&vm.id, &disk.id, 12, false, "alice")
            .unwrap();
        assert_eq!(grown.size_mib, 12);
        let size = img.info(&files.data_disk(&disk.id)).unwrap().virtual_size;
        assert_eq!(size, 12 * 1024 * 1024);
    }

    fn kill_now(pid: i32) {
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    }

    #[test]
    fn a_cloned_image_shares_the_file_and_outlives_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let Some(hv) = site(dir.path()) else { return };
        let source = import_blank(&hv, dir.path());
        let clone = hv.clone_image(&source.id, "bob").unwrap();
        let images = dir.path().join(&QemuSettings::default().dir).join("images");
        let file = |id: &str| images.join(format!("{id}.qcow2"));
        assert!(file(&clone.id).is_file());
        assert_eq!(
            std::fs::read(file(&clone.id)).unwrap(),
            std::fs::read(file(&source.id)).unwrap()
        );
        // The copy boots after its source is gone (and its file with it).
        hv.delete_image(&source.id).unwrap();
        let _ = std::fs::remove_file(file(&source.id));
        let mut spec = small_vm("from-clone", &clone.id);
        spec.owner = "bob".into();
        let (vm, _) = hv.create_vm(&spec, "bob", "test").unwrap();
        assert_eq!(vm.image, clone.id);
    }

    #[test]
    fn a_vm_whose_emulator_cannot_run_fails_its_job() {
        let dir = tempfile::tempdir().unwrap();
        if site(dir.path()).is_none() {
            return;
        }
        let db = Database::open_in_memory_for_tests().unwrap();
        let settings = QemuSettings {
            qemu_system: "/nonexistent/qemu-system-x86_64".into(),
            ..QemuSettings::default()
        };
        let backend = QemuBackend::open(db, &settings, dir.path()).unwrap();
        let hv = Hypervisor::with_backend(std::sync::Arc::new(backend));
        let image = import_blank(&hv, dir.path());
        let spec = small_vm("nope", &image.id);
        let (_, create) = hv.create_vm(&spec, "alice", "test").unwrap();
        let error = hv.complete(&create.id).unwrap_err();
        assert!(
            matches!(&error, HvError::Backend(m) if m.contains("cannot run")),
            "{error:?}"
        );
        let failed = hv.fail(&create.id, &error.to_string()).unwrap();
        assert_eq!(failed.state, VmState::Failed);
    }
}
