//! The plugin's settings (`[plugins.appliance-admin.settings]`), the
//! counterpart of upstream's `jidoteki-admin-api.json`:
//!
//! ```toml
//! endpoints = ["settings", "certs", "license", "storage", "backup"]   # default ["backup"]
//! first-run = { enabled = false, word-length = 4 }
//! storage-options = ["local", "nfs", "aoe", "iscsi", "nbd"]           # default: all five
//! ```

use serde::Deserialize;

/// The optional endpoints upstream knows.
pub const OPTIONAL: &[&str] = &["settings", "certs", "license", "storage", "backup"];
/// The endpoints that cannot be disabled.
pub const DEFAULT: &[&str] = &[
    "build",
    "changelog",
    "debug",
    "endpoints",
    "health",
    "logs",
    "reboot",
    "services",
    "setup",
    "update",
    "version",
];
pub const STORAGE_TYPES: &[&str] = &["local", "nfs", "aoe", "iscsi", "nbd"];

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
pub struct FirstRun {
    #[serde(default)]
    pub enabled: bool,
    #[serde(rename = "word-length", default = "default_words")]
    pub word_length: u32,
}

fn default_words() -> u32 {
    4
}

/// The endpoints switched on: the site's list, else `backup` alone.
pub fn enabled_optional() -> Vec<String> {
    tessera_sdk::config::get::<Vec<String>>("endpoints")
        .unwrap_or_else(|| vec!["backup".to_string()])
        .into_iter()
        .filter(|e| OPTIONAL.contains(&e.as_str()))
        .collect()
}

pub fn first_run() -> FirstRun {
    tessera_sdk::config::get("first-run").unwrap_or(FirstRun {
        enabled: false,
        word_length: 4,
    })
}

pub fn storage_options() -> Vec<String> {
    tessera_sdk::config::get::<Vec<String>>("storage-options")
        .unwrap_or_else(|| STORAGE_TYPES.iter().map(|s| s.to_string()).collect())
        .into_iter()
        .filter(|o| STORAGE_TYPES.contains(&o.as_str()))
        .collect()
}
