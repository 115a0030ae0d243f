//! Health figures of the machine and the site: uptime, load, memory, disk
//! free under the data dir, database size. Read from `/proc` and `statvfs`
//! (zeros where the platform has neither).

use std::path::Path;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub uptime_seconds: u64,
    pub load: Vec<f64>,
    pub cpus: u32,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    pub disk_total_bytes: u64,
    pub disk_free_bytes: u64,
    pub database_bytes: u64,
}

pub fn measure(data_dir: &Path, database: &Path, uptime_seconds: u64) -> Health {
    let (memory_total_bytes, memory_used_bytes) = memory();
    let (disk_total_bytes, disk_free_bytes) = disk(data_dir);
    let database_bytes = ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut name = database.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(name).ok().map(|m| m.len())
        })
        .sum();
    Health {
        uptime_seconds,
        load: load(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        memory_total_bytes,
        memory_used_bytes,
        disk_total_bytes,
        disk_free_bytes,
        database_bytes,
    }
}

fn load() -> Vec<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    if load.len() == 3 { load } else { vec![0.0; 3] }
}

/// (total, used) from `/proc/meminfo`; used = total - available.
fn memory() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
    };
    let total = field("MemTotal:").unwrap_or(0);
    let available = field("MemAvailable:").unwrap_or(total);
    (total, total.saturating_sub(available))
}

/// (total, free to unprivileged users) of the filesystem holding `dir`.
fn disk(dir: &Path) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
            return (0, 0);
        };
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is a valid C string and `stat` a writable statvfs.
        if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
            return (0, 0);
        }
        let block = stat.f_frsize as u64;
        (stat.f_blocks as u64 * block, stat.f_bavail as u64 * block)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_read_from_the_machine() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), vec![0u8; 1000]).unwrap();
        let h = measure(dir.path(), &dir.path().join("db"), 7);
        assert_eq!(h.uptime_seconds, 7);
        assert_eq!(h.database_bytes, 1000);
        assert_eq!(h.load.len(), 3);
        assert!(h.cpus >= 1);
        if cfg!(target_os = "linux") {
            assert!(h.memory_total_bytes > 0 && h.memory_used_bytes <= h.memory_total_bytes);
            assert!(h.disk_total_bytes > 0 && h.disk_free_bytes <= h.disk_total_bytes);
        }
    }
}
