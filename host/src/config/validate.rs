//! Checks a parsed site config before anything is started: mounts, grants,
//! sources and limits. Each refusal names the key and the problem.

use std::collections::HashMap;
use std::path::Path;

use super::{ConfigError, SiteConfig, looks_like_path};
use crate::runtime::builtin;

/// An interface a mount may grant to its plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    Storage,
    Auth,
    AuthAdmin,
    Jobs,
    Hypervisor,
    Files,
    SiteAdmin,
}

impl Grant {
    pub const ALL: &[Grant] = &[
        Grant::Storage,
        Grant::Auth,
        Grant::AuthAdmin,
        Grant::Jobs,
        Grant::Hypervisor,
        Grant::Files,
        Grant::SiteAdmin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Grant::Storage => "storage",
            Grant::Auth => "auth",
            Grant::AuthAdmin => "auth-admin",
            Grant::Jobs => "jobs",
            Grant::Hypervisor => "hypervisor",
            Grant::Files => "files",
            Grant::SiteAdmin => "site-admin",
        }
    }

    pub fn parse(name: &str) -> Option<Grant> {
        Grant::ALL.iter().copied().find(|g| g.name() == name)
    }
}

impl SiteConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_limits("limits", &self.limits)?;
        if self.runtime.max_instances == 0 || self.runtime.max_instances > 10_000 {
            return Err(self.error("runtime.max_instances", "must be between 1 and 10000"));
        }
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (name, plugin) in self.enabled_plugins() {
            let key = |k: &str| format!("plugins.{name}.{k}");
            if name == crate::primitives::jobs::KERNEL_JOBS {
                return Err(self.error(
                    format!("plugins.{name}"),
                    "this name is reserved for the kernel",
                ));
            }
            if !valid_plugin_name(name) {
                return Err(self.error(
                    format!("plugins.{name}"),
                    "plugin names are 1-63 of [a-z0-9-], starting with a letter",
                ));
            }
            self.validate_source(&key("source"), &plugin.source)?;
            if plugin.mounts.is_empty() {
                return Err(self.error(key("mounts"), "an enabled plugin needs at least one mount"));
            }
            for mount in &plugin.mounts {
                check_mount(mount).map_err(|p| self.error(key("mounts"), p))?;
                if let Some(other) = seen.insert(mount.as_str(), name.as_str()) {
                    return Err(self.error(
                        key("mounts"),
                        format!("mount {mount} is already used by plugin {other}"),
                    ));
                }
            }
            for grant in &plugin.grants {
                if Grant::parse(grant).is_none() {
                    let known: Vec<_> = Grant::ALL.iter().map(|g| g.name()).collect();
                    return Err(self.error(
                        key("grants"),
                        format!("unknown grant {grant:?} (known: {})", known.join(", ")),
                    ));
                }
            }
            let limits = plugin.limits.over(&self.limits);
            self.validate_limits(&key("limits"), &limits)?;
            if limits.memory_mib > self.runtime.max_memory_mib {
                return Err(self.error(
                    key("limits.memory_mib"),
                    format!(
                        "{} MiB is above runtime.max_memory_mib ({})",
                        limits.memory_mib, self.runtime.max_memory_mib
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_source(&self, key: &str, source: &str) -> Result<(), ConfigError> {
        if looks_like_path(source) {
            if !Path::new(source).is_file() {
                return Err(self.error(key, format!("wasm file {source} does not exist")));
            }
        } else if builtin::get(source).is_none() {
            return Err(self.error(
                key,
                format!(
                    "unknown built-in plugin {source:?} (built-in: {}); a file source must end in .wasm",
                    builtin::names().join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn validate_limits(&self, key: &str, limits: &super::Limits) -> Result<(), ConfigError> {
        let checks = [
            ("time_budget_ms", limits.time_budget_ms, 1, 3_600_000),
            (
                "job_time_budget_ms",
                limits.job_time_budget_ms,
                1,
                86_400_000,
            ),
            ("memory_mib", limits.memory_mib, 1, 4096),
            ("body_limit_bytes", limits.body_limit_bytes, 0, 1 << 32),
            (
                "response_limit_bytes",
                limits.response_limit_bytes,
                0,
                1 << 32,
            ),
            (
                "log_lines_per_call",
                limits.log_lines_per_call,
                0,
                1_000_000,
            ),
        ];
        for (name, value, min, max) in checks {
            if value < min || value > max {
                return Err(self.error(
                    format!("{key}.{name}"),
                    format!("{value} is outside {min}..={max}"),
                ));
            }
        }
        Ok(())
    }
}

fn valid_plugin_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() < 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A mount is `/` or `/seg/seg` of URL-safe segments, without a trailing slash.
fn check_mount(mount: &str) -> Result<(), String> {
    if mount == "/" {
        return Ok(());
    }
    if !mount.starts_with('/') || mount.ends_with('/') {
        return Err(format!(
            "mount {mount:?} must start with / and must not end with /"
        ));
    }
    let ok = mount[1..].split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
    });
    if !ok {
        return Err(format!("mount {mount:?} has an empty or invalid segment"));
    }
    if mount == "/_tessera" || mount.starts_with("/_tessera/") {
        return Err("mounts under /_tessera are reserved for the kernel".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(toml: &str) -> Result<SiteConfig, ConfigError> {
        let site = SiteConfig::parse(toml, "site.toml")?;
        site.validate()?;
        Ok(site)
    }

    #[test]
    fn the_default_site_is_valid() {
        crate::config::default_site().validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let e = site("[plugins.a]\nsource='hello'\nmounts=['/a']\nmount_point='/x'\n").unwrap_err();
        assert_eq!(e.key, "plugins.a.mount_point");
        assert!(e.problem.contains("mount_point"), "{e}");
    }

    #[test]
    fn duplicate_mounts_name_both_plugins() {
        let e = site(
            "[plugins.a]\nsource='hello'\nmounts=['/x']\n[plugins.b]\nsource='hello'\nmounts=['/x']\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "plugins.b.mounts");
        assert!(e.problem.contains("already used by plugin a"), "{e}");
    }

    #[test]
    fn bad_mounts_grants_and_sources_are_refused() {
        for (toml, key) in [
            (
                "[plugins.a]\nsource='hello'\nmounts=['x']\n",
                "plugins.a.mounts",
            ),
            (
                "[plugins.a]\nsource='hello'\nmounts=['/x/']\n",
                "plugins.a.mounts",
            ),
            (
                "[plugins.a]\nsource='hello'\nmounts=['/_tessera']\n",
                "plugins.a.mounts",
            ),
            (
                "[plugins.a]\nsource='hello'\nmounts=['/x']\ngrants=['root']\n",
                "plugins.a.grants",
            ),
            (
                "[plugins.a]\nsource='nope'\nmounts=['/x']\n",
                "plugins.a.source",
            ),
            (
                "[plugins.a]\nsource='/no/such.wasm'\nmounts=['/x']\n",
                "plugins.a.source",
            ),
            ("[limits]\nmemory_mib=0\n", "limits.memory_mib"),
        ] {
            let e = site(toml).unwrap_err();
            assert_eq!(e.key, key, "{toml}: {e}");
        }
    }

    #[test]
    fn mount_segments_are_checked() {
        assert!(check_mount("/api/v1/admin").is_ok());
        assert!(check_mount("/").is_ok());
        assert!(check_mount("/a//b").is_err());
        assert!(check_mount("/a/../b").is_err());
        assert!(check_mount("/a b").is_err());
    }
}
