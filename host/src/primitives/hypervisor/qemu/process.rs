//! One `qemu-system-x86_64` process per running VM, daemonized so VMs outlive
//! a kernel restart as they would on a real hypervisor. Each VM has a folder
//! with its disks, pid file and serial log; its QMP and VNC sockets sit there
//! too, or under the temp dir when that path would pass the 108-byte limit of
//! a unix socket address.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::qmp::Qmp;
use crate::primitives::hypervisor::Vm;

/// Longest unix socket path we use (sun_path is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 100;
const POLL: Duration = Duration::from_millis(50);

/// Where a VM's files live.
#[derive(Debug, Clone)]
pub struct VmFiles {
    pub dir: PathBuf,
    pub qmp: PathBuf,
    pub vnc: PathBuf,
}

impl VmFiles {
    pub fn new(vms_dir: &Path, id: &str) -> VmFiles {
        let dir = vms_dir.join(id);
        let qmp = dir.join("qmp.sock");
        let sockets = if qmp.as_os_str().len() <= MAX_SOCKET_PATH {
            dir.clone()
        } else {
            // Stable per data dir and VM, so a restarted kernel finds the sockets.
            let digest = crate::primitives::hypervisor::qemu::short_hash(&dir.to_string_lossy());
            std::env::temp_dir().join(format!("tessera-qemu-{digest}"))
        };
        VmFiles {
            qmp: sockets.join("qmp.sock"),
            vnc: sockets.join("vnc.sock"),
            dir,
        }
    }

    pub fn boot_disk(&self) -> PathBuf {
        self.dir.join("disk.qcow2")
    }

    pub fn data_disk(&self, disk_id: &str) -> PathBuf {
        self.dir.join(format!("disk-{disk_id}.qcow2"))
    }

    pub fn serial_log(&self) -> PathBuf {
        self.dir.join("serial.log")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }

    /// The VM's process id, if its process is alive (and is this VM's: the
    /// pid file may be stale and the pid reused).
    pub fn running_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The state follows the parenthesised command name; a zombie has exited.
        let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
        if state == 'Z' || state == 'X' {
            return None;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let pid_file = self.pid_file();
        let ours = String::from_utf8_lossy(&cmdline).contains(pid_file.to_string_lossy().as_ref());
        ours.then_some(pid)
    }
}

/// How the machine runs.
pub struct Launch<'a> {
    pub program: &'a str,
    pub accel: &'a str,
    pub machine: &'a str,
    pub boot_timeout: Duration,
}

impl Launch<'_> {
    /// Starts the VM's process and waits until QMP reports it running.
    pub fn start(&self, vm: &Vm, files: &VmFiles) -> Result<(), String> {
        if files.running_pid().is_some() {
            return Ok(());
        }
        if let Some(parent) = files.qmp.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        for stale in [&files.qmp, &files.vnc] {
            let _ = std::fs::remove_file(stale);
        }
        let mut cmd = Command::new(self.program);
        cmd.args(["-name", &format!("guest={},process=tessera-vm", vm.id)])
            .args([
                "-machine",
                &format!("{},accel={}", self.machine, self.accel),
            ])
            .args(["-m", &vm.ram_mib.to_string()])
            .args(["-smp", &vm.cpus.max(1).to_string()]);
        if uuid::Uuid::parse_str(&vm.id).is_ok() {
            cmd.args(["-uuid", &vm.id]);
        }
        for (index, disk) in vm.disks.iter().enumerate() {
            let file = if index == 0 {
                files.boot_disk()
            } else {
                files.data_disk(&disk.id)
            };
            cmd.arg("-drive").arg(format!(
                "file={},format=qcow2,if=virtio,index={index}",
                escape_opt(&file.to_string_lossy())
            ));
        }
        if vm.nics.is_empty() {
            cmd.args(["-nic", "none"]);
        }
        for nic in &vm.nics {
            // User-mode networking needs no privileges; the inventory's
            // address is what the guest is told to use.
            cmd.args([
                "-nic",
                &format!("user,model=virtio-net-pci,mac={}", nic.mac),
            ]);
        }
        cmd.arg("-qmp").arg(format!(
            "unix:{},server=on,wait=off",
            escape_opt(&files.qmp.to_string_lossy())
        ));
        cmd.arg("-vnc")
            .arg(format!("unix:{}", escape_opt(&files.vnc.to_string_lossy())));
        cmd.arg("-serial")
            .arg(format!("file:{}", files.serial_log().display()));
        cmd.arg("-daemonize").arg("-pidfile").arg(files.pid_file());
        close_inherited_on_exec();
        // With -daemonize the parent exits once the machine is set up, so
        // errors in the command line come back here.
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.program))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(format!("{} failed: {}", self.program, stderr.trim()));
        }
        let deadline = Instant::now() + self.boot_timeout;
        loop {
            match Qmp::connect(&files.qmp).and_then(|mut q| q.status()) {
                Ok(status) if status == "running" => return Ok(()),
                Ok(_) | Err(_) if Instant::now() < deadline => std::thread::sleep(POLL),
                Ok(status) => return Err(format!("the VM is {status} after its start")),
                Err(e) => return Err(format!("the VM did not come up: {e}")),
            }
        }
    }
}

/// Marks every descriptor this process inherited without close-on-exec (a
/// build lock `flock` holds for the test run, a parent's pipe) close-on-exec,
/// so a daemonized VM, which outlives us, does not keep them open.
fn close_inherited_on_exec() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if fd <= 2 {
            continue;
        }
        // SAFETY: F_GETFD/F_SETFD only read and set the descriptor's
        // close-on-exec flag; one closed meanwhile just fails.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// A graceful stop: the ACPI power button, then `quit` after `grace`, then
/// SIGKILL if the process is still there.
pub fn stop(files: &VmFiles, grace: Duration) -> Result<(), String> {
    let Some(pid) = files.running_pid() else {
        return Ok(());
    };
    if let Ok(mut qmp) = Qmp::connect(&files.qmp) {
        if !grace.is_zero()
            && qmp.execute("system_powerdown", None).is_ok()
            && wait_exit(files, grace)
        {
            return Ok(());
        }
        let _ = qmp.execute("quit", None);
    }
    if wait_exit(files, Duration::from_secs(5)) {
        return Ok(());
    }
    kill(pid);
    if wait_exit(files, Duration::from_secs(5)) {
        Ok(())
    } else {
        Err(format!("the VM's process {pid} did not exit"))
    }
}

/// A hard reset (the guest does not shut down first), or a start when the
/// process is gone.
pub fn reset(files: &VmFiles) -> Result<(), String> {
    let mut qmp = Qmp::connect(&files.qmp)?;
    qmp.execute("system_reset", None).map(drop)
}

fn wait_exit(files: &VmFiles, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while files.running_pid().is_some() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}

fn kill(pid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// QEMU option values double a comma to keep it literal.
fn escape_opt(value: &str) -> String {
    value.replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_move_the_sockets_to_the_temp_dir() {
        let short = VmFiles::new(Path::new("/d/qemu/vms"), "vm-1");
        assert_eq!(short.qmp, Path::new("/d/qemu/vms/vm-1/qmp.sock"));
        let deep = "/x".repeat(60);
        let long = VmFiles::new(Path::new(&deep), "vm-1");
        assert!(long.qmp.starts_with(std::env::temp_dir()));
        assert!(long.qmp.as_os_str().len() <= MAX_SOCKET_PATH);
        assert_eq!(long.boot_disk(), Path::new(&deep).join("vm-1/disk.qcow2"));
        // The same VM finds the same sockets again.
        assert_eq!(VmFiles::new(Path::new(&deep), "vm-1").qmp, long.qmp);
    }

    #[test]
    fn commas_in_option_values_are_doubled() {
        assert_eq!(escape_opt("/a,b/c"), "/a,,b/c");
    }

    #[test]
    fn a_missing_or_foreign_pid_file_means_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let files = VmFiles::new(dir.path(), "vm");
        assert_eq!(files.running_pid(), None);
        std::fs::create_dir_all(&files.dir).unwrap();
        // Our own pid is alive but is not a QEMU of this VM.
        std::fs::write(files.pid_file(), std::process::id().to_string()).unwrap();
        assert_eq!(files.running_pid(), None);
    }
}
