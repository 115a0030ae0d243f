//! The site config: one TOML file naming the listener, the data dir, and each
//! plugin's source, mounts, grants, limits and settings. With no file, the
//! built-in default site.

mod defaults;
#[cfg(test)]
mod proptests;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use defaults::default_site;
pub use validate::Grant;

/// A refused site config: which file, which key, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {problem}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub problem: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Address the HTTP listener binds.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Where the database, compile cache and plugin files live.
    #[serde(default = "defaults::data_dir")]
    pub data_dir: PathBuf,
    /// A tracing filter (`info`, `warn,tessera::access=debug`, ...).
    #[serde(default = "defaults::log")]
    pub log: String,
    /// Limits for every mount that does not set its own.
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub runtime: RuntimeSettings,
    /// Brute-force thresholds and password hashing cost.
    #[serde(default)]
    pub auth: crate::primitives::auth::AuthSettings,
    /// Job workers, leases and retention.
    #[serde(default)]
    pub jobs: crate::primitives::jobs::JobSettings,
    /// The compute backend and, for `sim`, its seeded inventory.
    #[serde(default)]
    pub hypervisor: crate::primitives::hypervisor::HypervisorSettings,
    /// An HTTPS listener beside the plain one (off unless configured).
    #[serde(default)]
    pub tls: Option<crate::primitives::site_admin::TlsSettings>,
    /// The update-package key and the kernel's log files.
    #[serde(default)]
    pub site_admin: crate::primitives::site_admin::SiteAdminSettings,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    /// The file this came from (for messages), or `<default site>`.
    #[serde(skip)]
    pub origin: String,
}

/// Per-mount limits. Each is optional in a plugin's table and falls back to
/// the site's `[limits]`, then to the built-in defaults.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Time budget of one request, in milliseconds.
    #[serde(default = "defaults::time_budget_ms")]
    pub time_budget_ms: u64,
    /// Time budget of one job step, in milliseconds.
    #[serde(default = "defaults::job_time_budget_ms")]
    pub job_time_budget_ms: u64,
    /// Linear memory cap of one instance, in MiB.
    #[serde(default = "defaults::memory_mib")]
    pub memory_mib: u64,
    /// Request body cap, in bytes.
    #[serde(default = "defaults::body_limit_bytes")]
    pub body_limit_bytes: u64,
    /// Response body cap, in bytes: a bigger answer is a plugin failure.
    #[serde(default = "defaults::response_limit_bytes")]
    pub response_limit_bytes: u64,
    /// Lines one call may write through `log` (and its output streams);
    /// the rest are dropped and counted.
    #[serde(default = "defaults::log_lines_per_call")]
    pub log_lines_per_call: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time_budget_ms: defaults::time_budget_ms(),
            job_time_budget_ms: defaults::job_time_budget_ms(),
            memory_mib: defaults::memory_mib(),
            body_limit_bytes: defaults::body_limit_bytes(),
            response_limit_bytes: defaults::response_limit_bytes(),
            log_lines_per_call: defaults::log_lines_per_call(),
        }
    }
}

impl Limits {
    pub fn memory_bytes(&self) -> usize {
        (self.memory_mib as usize) * 1024 * 1024
    }
}

/// A plugin's own overrides of the site limits.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    pub time_budget_ms: Option<u64>,
    pub job_time_budget_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub body_limit_bytes: Option<u64>,
    pub response_limit_bytes: Option<u64>,
    pub log_lines_per_call: Option<u64>,
}

impl LimitOverrides {
    pub fn over(&self, site: &Limits) -> Limits {
        Limits {
            time_budget_ms: self.time_budget_ms.unwrap_or(site.time_budget_ms),
            job_time_budget_ms: self.job_time_budget_ms.unwrap_or(site.job_time_budget_ms),
            memory_mib: self.memory_mib.unwrap_or(site.memory_mib),
            body_limit_bytes: self.body_limit_bytes.unwrap_or(site.body_limit_bytes),
            response_limit_bytes: self
                .response_limit_bytes
                .unwrap_or(site.response_limit_bytes),
            log_lines_per_call: self.log_lines_per_call.unwrap_or(site.log_lines_per_call),
        }
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSettings {
    /// Plugin instances that may exist at once (requests + jobs in flight).
    #[serde(default = "defaults::max_instances")]
    pub max_instances: u32,
    /// The largest memory cap any mount may ask for, in MiB.
    #[serde(default = "defaults::max_memory_mib")]
    pub max_memory_mib: u64,
    /// Pool slots kept warm for reuse.
    #[serde(default = "defaults::warm_slots")]
    pub warm_slots: u32,
    /// Keep compiled plugins under `<data_dir>/cache`.
    #[serde(default = "defaults::yes")]
    pub compile_cache: bool,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            max_instances: defaults::max_instances(),
            max_memory_mib: defaults::max_memory_mib(),
            warm_slots: defaults::warm_slots(),
            compile_cache: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// A built-in plugin name, or a path to a `.wasm` component (relative to
    /// the config file).
    pub source: String,
    /// Path prefixes this plugin serves.
    pub mounts: Vec<String>,
    /// Interfaces this plugin may import beyond `log` and `config`.
    #[serde(default)]
    pub grants: Vec<String>,
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Free-form settings the plugin reads through the `config` interface.
    #[serde(default)]
    pub settings: toml::Table,
}

impl SiteConfig {
    /// Read and validate a site file.
    pub fn load(path: &Path) -> Result<SiteConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: "(file)".into(),
            problem: format!("cannot read: {e}"),
        })?;
        let mut site = Self::parse(&text, &file)?;
        site.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        site.validate()?;
        Ok(site)
    }

    /// Parse TOML text; `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<SiteConfig, ConfigError> {
        let deserializer = toml::de::Deserializer::parse(text).map_err(|e| ConfigError {
            file: file.to_string(),
            key: "(syntax)".into(),
            problem: e.message().to_string(),
        })?;
        let mut site: SiteConfig =
            serde_path_to_error::deserialize(deserializer).map_err(|e| ConfigError {
                file: file.to_string(),
                key: e.path().to_string(),
                problem: e.inner().message().to_string(),
            })?;
        site.origin = file.to_string();
        Ok(site)
    }

    /// Plugin paths and the data dir are relative to the config file.
    fn resolve_paths(&mut self, base: &Path) {
        if self.data_dir.is_relative() && self.data_dir != defaults::data_dir() {
            self.data_dir = base.join(&self.data_dir);
        }
        for plugin in self.plugins.values_mut() {
            if looks_like_path(&plugin.source) && Path::new(&plugin.source).is_relative() {
                plugin.source = base.join(&plugin.source).display().to_string();
            }
        }
    }

    /// The enabled plugins, in name order.
    pub fn enabled_plugins(&self) -> impl Iterator<Item = (&String, &PluginConfig)> {
        self.plugins.iter().filter(|(_, p)| p.enabled)
    }

    pub(crate) fn error(&self, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.origin.clone(),
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A source naming a file rather than a built-in plugin.
pub fn looks_like_path(source: &str) -> bool {
    source.ends_with(".wasm") || source.contains('/')
}
