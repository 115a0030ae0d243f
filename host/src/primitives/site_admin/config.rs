//! The `[site_admin]` and `[tls]` sections of the site config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[site_admin]`: where the update-package key lives and how much log is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteAdminSettings {
    /// The AES-256 key of update packages and debug bundles: 64 hex digits
    /// in a file. Default `<data_dir>/update.key`, made on first start.
    #[serde(default)]
    pub update_key_file: Option<PathBuf>,
    /// The kernel's log file is rotated past this size.
    #[serde(default = "default_log_max_bytes")]
    pub log_max_bytes: u64,
    /// Rotated log files kept beside the current one.
    #[serde(default = "default_log_keep")]
    pub log_keep: u32,
}

impl Default for SiteAdminSettings {
    fn default() -> Self {
        SiteAdminSettings {
            update_key_file: None,
            log_max_bytes: default_log_max_bytes(),
            log_keep: default_log_keep(),
        }
    }
}

impl SiteAdminSettings {
    pub fn key_file(&self, data_dir: &Path) -> PathBuf {
        self.update_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("update.key"))
    }
}

fn default_log_max_bytes() -> u64 {
    4 * 1024 * 1024
}
fn default_log_keep() -> u32 {
    4
}

/// `[tls]`: an HTTPS listener beside the plain one. Without `cert` and `key`
/// it serves the certificate last installed through `site-admin`, else a
/// self-signed one made at first start (both under `<data_dir>/tls/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub listen: SocketAddr,
    /// PEM certificate chain.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1).
    #[serde(default)]
    pub key: Option<PathBuf>,
}
