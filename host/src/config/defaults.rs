//! Every default of the site config, in one place, and the built-in site.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::{LimitOverrides, Limits, PluginConfig, RuntimeSettings, SiteConfig};

pub fn listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
pub fn data_dir() -> PathBuf {
    PathBuf::from("./tessera-data")
}
pub fn log() -> String {
    "info".into()
}
pub fn time_budget_ms() -> u64 {
    5_000
}
pub fn job_time_budget_ms() -> u64 {
    600_000
}
pub fn memory_mib() -> u64 {
    64
}
pub fn body_limit_bytes() -> u64 {
    10 * 1024 * 1024
}
pub fn response_limit_bytes() -> u64 {
    16 * 1024 * 1024
}
pub fn log_lines_per_call() -> u64 {
    1000
}
pub fn max_instances() -> u32 {
    256
}
pub fn max_memory_mib() -> u64 {
    256
}
pub fn warm_slots() -> u32 {
    64
}
pub fn yes() -> bool {
    true
}

/// The shipped families at their products' own paths (ARCHITECTURE.md).
/// `auth-admin` goes to the families whose APIs manage users (CloudAPI
/// sub-users, VMmanager users, the appliance's own token); `site-admin`
/// (administering the site itself) only to the appliance admin API.
const SHIPPED: &[(&str, &[&str], &[&str])] = &[
    (
        "cloudapi",
        &["/"],
        &["storage", "auth", "auth-admin", "jobs", "hypervisor"],
    ),
    ("ticrypt", &["/api"], &["storage", "auth", "hypervisor"]),
    (
        "vmmanager",
        &["/vm/v3", "/auth/v4", "/api/auth/v4"],
        &["storage", "auth", "auth-admin", "jobs", "hypervisor"],
    ),
    (
        "fosscloud",
        &["/vm-manager/api"],
        &["storage", "auth", "hypervisor"],
    ),
    (
        "appliance-admin",
        &["/api/v1/admin"],
        &[
            "storage",
            "auth",
            "auth-admin",
            "jobs",
            "files",
            "site-admin",
        ],
    ),
];

/// The admin API receives update packages and backup archives whole.
fn shipped_limits(plugin: &str) -> LimitOverrides {
    match plugin {
        "appliance-admin" => LimitOverrides {
            body_limit_bytes: Some(64 * 1024 * 1024),
            memory_mib: Some(256),
            ..LimitOverrides::default()
        },
        _ => LimitOverrides::default(),
    }
}

/// The site `tessera serve` runs with no config file.
pub fn default_site() -> SiteConfig {
    let plugins: BTreeMap<String, PluginConfig> = SHIPPED
        .iter()
        .map(|(name, mounts, grants)| {
            let plugin = PluginConfig {
                enabled: true,
                source: name.to_string(),
                mounts: mounts.iter().map(|m| m.to_string()).collect(),
                grants: grants.iter().map(|g| g.to_string()).collect(),
                limits: shipped_limits(name),
                settings: toml::Table::new(),
            };
            (name.to_string(), plugin)
        })
        .collect();
    SiteConfig {
        listen: listen(),
        data_dir: data_dir(),
        log: log(),
        limits: Limits::default(),
        runtime: RuntimeSettings::default(),
        auth: Default::default(),
        jobs: Default::default(),
        hypervisor: Default::default(),
        tls: None,
        site_admin: Default::default(),
        plugins,
        origin: "<default site>".into(),
    }
}
