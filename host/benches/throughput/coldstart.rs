//! Kernel start-up on the default site: time to first health answer (warm cache), idle RSS.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::proc;
use super::targets::{self, ChildServer};

const HEALTH: &str = "/_tessera/health";
/// Requests sent to each mount before reading the idle RSS.
const REQUESTS_PER_MOUNT: u32 = 5;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ColdStart {
    /// The first start on an empty data dir: compiles every plugin.
    pub first_start_ms: f64,
    /// The second start on the same data dir: compiled plugins come from the cache.
    pub warm_start_ms: f64,
    pub plugins: usize,
    pub requests_served: u32,
    pub idle_rss_kib: u64,
}

pub fn measure(dir: &Path) -> anyhow::Result<ColdStart> {
    let data_dir = dir.join("default-site");
    let (first, server) = timed_start(&data_dir)?;
    drop(server);
    let (warm, server) = timed_start(&data_dir)?;
    let (plugins, requests_served) = exercise(&server)?;
    // Let the request tasks finish and the allocator settle before reading RSS.
    std::thread::sleep(Duration::from_millis(500));
    Ok(ColdStart {
        first_start_ms: first.as_secs_f64() * 1e3,
        warm_start_ms: warm.as_secs_f64() * 1e3,
        plugins,
        requests_served,
        idle_rss_kib: proc::rss_kib(server.child.pid())?,
    })
}

/// Spawn `tessera serve` with no config and time it to its first 200 on the health route.
fn timed_start(data_dir: &Path) -> anyhow::Result<(Duration, ChildServer)> {
    let started = Instant::now();
    let server = targets::start_tessera(None, data_dir)?;
    let ready = proc::await_ready(server.addr, HEALTH, Duration::from_secs(30))?;
    Ok((ready - started, server))
}

/// Hit every mount the health route lists a few times (any status will do: the
/// point is to have made instances); returns (plugins, requests sent).
fn exercise(server: &ChildServer) -> anyhow::Result<(usize, u32)> {
    let (_, body) = proc::fetch(server.addr, "GET", HEALTH)?;
    let health: serde_json::Value = serde_json::from_str(&body)?;
    let plugins = health["plugins"].as_array().cloned().unwrap_or_default();
    let mounts: Vec<String> = plugins
        .iter()
        .flat_map(|p| p["mounts"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect();
    let mut sent = 1;
    for mount in &mounts {
        for _ in 0..REQUESTS_PER_MOUNT {
            proc::fetch(server.addr, "GET", mount)?;
            sent += 1;
        }
    }
    Ok((plugins.len(), sent))
}
