//! `qemu-img`: base images, overlay and data disks, resizes and internal
//! snapshots of stopped VMs.

use std::path::Path;
use std::process::Command;

/// A disk image's format and size as `qemu-img info` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: String,
    pub virtual_size: u64,
}

pub struct QemuImg<'a> {
    pub program: &'a str,
}

impl QemuImg<'_> {
    pub fn info(&self, file: &Path) -> Result<ImageInfo, String> {
        let out = self.run(&["info", "--output=json"], &[file])?;
        let value: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("qemu-img info: {e}"))?;
        Ok(ImageInfo {
            format: value["format"].as_str().unwrap_or("raw").to_string(),
            virtual_size: value["virtual-size"].as_u64().unwrap_or(0),
        })
    }

    /// Copies `from` (of `format`) into a new qcow2 file `to`.
    pub fn convert(&self, from: &Path, format: &str, to: &Path) -> Result<(), String> {
        self.run(&["convert", "-f", format, "-O", "qcow2"], &[from, to])
            .map(drop)
    }

    /// A new qcow2 disk of `size_mib`, on top of `base` when given.
    pub fn create(&self, file: &Path, base: Option<&Path>, size_mib: u64) -> Result<(), String> {
        let size = format!("{size_mib}M");
        match base {
            Some(base) => {
                let backing = base.to_string_lossy();
                let mut cmd = self.command();
                cmd.args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
                    .arg(backing.as_ref())
                    .arg(file)
                    .arg(&size);
                output(cmd, "create")
            }
            None => {
                let mut cmd = self.command();
                cmd.args(["create", "-q", "-f", "qcow2"])
                    .arg(file)
                    .arg(&size);
                output(cmd, "create")
            }
        }
        .map(drop)
    }

    pub fn resize(&self, file: &Path, size_mib: u64) -> Result<(), String> {
        let size = format!("{size_mib}M");
        let mut cmd = self.command();
        cmd.args(["resize", "-q", "--shrink", "-f", "qcow2"])
            .arg(file)
            .arg(&size);
        output(cmd, "resize").map(drop)
    }

    /// `-c` create, `-a` apply, `-d` delete an internal snapshot.
    pub fn snapshot(&self, op: char, name: &str, file: &Path) -> Result<(), String> {
        let flag = format!("-{op}");
        let mut cmd = self.command();
        cmd.args(["snapshot", "-q", &flag, name]).arg(file);
        output(cmd, "snapshot").map(drop)
    }

    /// The names of a disk's internal snapshots.
    pub fn snapshots(&self, file: &Path) -> Result<Vec<String>, String> {
        let out = self.run(&["info", "--output=json"], &[file])?;
        let value: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("qemu-img info: {e}"))?;
        Ok(value["snapshots"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|s| s["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn command(&self) -> Command {
        Command::new(self.program)
    }

    fn run(&self, args: &[&str], files: &[&Path]) -> Result<String, String> {
        let mut cmd = self.command();
        cmd.args(args);
        for file in files {
            cmd.arg(file);
        }
        output(cmd, args[0])
    }
}

fn output(mut cmd: Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("qemu-img {what}: cannot run it: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("qemu-img {what}: {}", stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
