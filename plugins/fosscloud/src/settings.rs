//! The plugin's settings (`[plugins.fosscloud.settings]`): upstream's
//! `api_config.php` switches plus the pools, groups and FC4School tables the
//! site seeds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Every setting; each has a default so an empty table serves a useful API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Settings {
    /// `false` answers every request with 500022, as upstream's default does;
    /// Tessera ships the API on.
    pub enable: bool,
    /// The realm of requests without `/realm/<id>`. Absent: the identity
    /// store's default realm. Present but empty: every request is 500023.
    pub default_realm: Option<String>,
    /// Allows a MAC address in the path of the FC4School requests.
    pub mac_by_parameter: bool,
    /// Whether the FC4School module is "installed" (else 500052 / 500062).
    pub fc4school: bool,
    /// The only login the FC4School requests accept.
    pub dyn_vm_user: String,
    /// Node name → the address clients reach its SPICE/VNC server on
    /// (default: the node's name).
    pub spice_addresses: BTreeMap<String, String>,
    pub pools: Vec<PoolSeed>,
    pub groups: Vec<GroupSeed>,
    pub mappings: Vec<MappingSeed>,
    pub peers: Vec<PeerSeed>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enable: true,
            default_realm: None,
            mac_by_parameter: false,
            fc4school: false,
            dyn_vm_user: "dynvmuser".into(),
            spice_addresses: BTreeMap::new(),
            pools: Vec::new(),
            groups: Vec::new(),
            mappings: Vec::new(),
            peers: Vec::new(),
        }
    }
}

/// A pool the site config declares; upserted by id (or by name when no id).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoolSeed {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub size: Option<u32>,
    #[serde(default)]
    pub cpus: Option<u32>,
    #[serde(default)]
    pub ram_mib: Option<u64>,
    #[serde(default)]
    pub disk_mib: Option<u64>,
    #[serde(default)]
    pub subtype: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Persistent pools: VMs made once, each owned by a user.
    #[serde(default)]
    pub vms: Vec<VmSeed>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VmSeed {
    pub name: String,
    pub owner: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupSeed {
    pub name: String,
    #[serde(default)]
    pub members: Vec<String>,
    /// FOSS-Cloud's `persistentVM.access = all`: may `/vm/list/all`.
    #[serde(default)]
    pub list_all: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MappingSeed {
    pub mac: String,
    /// Pool id or name.
    pub pool: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeerSeed {
    pub ip: String,
    pub mac: String,
}

impl Settings {
    /// The site's settings, or why they cannot be read.
    pub fn load() -> Result<Settings, String> {
        Self::parse(tessera_sdk::config::all())
    }

    pub fn parse(table: serde_json::Value) -> Result<Settings, String> {
        if table.is_null() {
            return Ok(Settings::default());
        }
        serde_json::from_value(table).map_err(|e| format!("invalid fosscloud settings: {e}"))
    }

    /// The seed tables, as one JSON value whose hash says whether they changed.
    pub fn seeds(&self) -> serde_json::Value {
        serde_json::json!({
            "pools": self.pools, "groups": self.groups,
            "mappings": self.mappings, "peers": self.peers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_table_serves_the_api_with_the_stores_default_realm() {
        let s = Settings::parse(json!({})).unwrap();
        assert!(s.enable);
        assert_eq!(s.default_realm, None);
        assert!(!s.mac_by_parameter && !s.fc4school);
        assert_eq!(s.dyn_vm_user, "dynvmuser");
    }

    #[test]
    fn upstream_names_are_read() {
        let s = Settings::parse(json!({
            "enable": false, "defaultRealm": "4000013", "macByParameter": true, "fc4school": true,
            "pools": [{"name": "Lab", "type": "dynamic", "image": "alpine-3.20", "size": 2}],
        }))
        .unwrap();
        assert!(!s.enable && s.mac_by_parameter && s.fc4school);
        assert_eq!(s.default_realm.as_deref(), Some("4000013"));
        assert_eq!(s.pools[0].size, Some(2));
    }

    #[test]
    fn a_misspelt_setting_is_refused() {
        let e = Settings::parse(json!({"macByParamter": true})).unwrap_err();
        assert!(e.contains("macByParamter"), "{e}");
    }
}
