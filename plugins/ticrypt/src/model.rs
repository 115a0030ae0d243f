//! The wire types of the spec, field for field (`DriveInfo`, `ImageInfo`,
//! `BrickInfo`, `TeamInfo`, `QuotasTyped`, `ProjectInfo`), plus the realm the
//! spec names but does not describe. Every instant is epoch milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const MIB: u64 = 1 << 20;

/// Now, in milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh resource id: a random UUID (v4) from the kernel's random source.
pub fn new_id() -> String {
    tessera_sdk::ids::new_uuid()
}

/// Which kind of hypervisor a realm drives; decides the shape of image
/// `info` and brick configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Libvirt,
    Nutanix,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Libvirt => "libvirt",
            Driver::Nutanix => "nutanix",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RealmInfo {
    pub id: String,
    pub name: String,
    pub driver: Driver,
    pub description: String,
    pub created: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DriveState {
    Ready,
    ReadOnly,
    ReadWrite,
    Transferring,
    Initializing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveInfo {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub capacity: u64,
    pub format: String,
    pub no_backup: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    pub readers: Vec<String>,
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<u64>,
    pub writable: bool,
    #[serde(rename = "poolID", default, skip_serializing_if = "Option::is_none")]
    pub pool_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(rename = "realmID")]
    pub realm_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io: Option<String>,
    pub state: DriveState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_change: Option<u64>,
    pub has_snapshot: bool,
}

/// A drive attached to a VM: the hypervisor disk that backs it there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub vm: String,
    pub disk: String,
    pub writable: bool,
}

/// A drive as stored: the wire fields plus where it is attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDrive {
    #[serde(flatten)]
    pub info: DriveInfo,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_type: Option<String>,
    pub info: Value,
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<u64>,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Value>,
}

/// What this plugin keeps about an image in the hypervisor image's `extra`
/// object, under the key `ticrypt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageMeta {
    pub realm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_type: Option<String>,
    pub info: Value,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The id of the base image (version 0) of this image's family.
    pub base: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LibvirtImageRef {
    pub pool: String,
    pub volume: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LibvirtBrickConfig {
    pub image: LibvirtImageRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    pub pty: bool,
    pub clock_offset: String,
    pub nic: String,
    pub devices: BTreeMap<String, u64>,
    #[serde(rename = "extraXML", default, skip_serializing_if = "Option::is_none")]
    pub extra_xml: Option<String>,
    #[serde(
        rename = "headfullGPU",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub headfull_gpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_bus_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NutanixBrickConfig {
    #[serde(rename = "imageID")]
    pub image_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    pub devices: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    pub debug: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrickWhitelist {
    #[serde(rename = "teamIDs")]
    pub team_ids: Vec<String>,
    #[serde(rename = "userIDs")]
    pub user_ids: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmType {
    Secure,
    Service,
    Data,
    Worker,
}

impl VmType {
    pub const NAMES: [&'static str; 4] = ["Secure", "Service", "Data", "Worker"];

    pub fn parse(name: &str) -> Option<VmType> {
        match name {
            "Secure" => Some(VmType::Secure),
            "Service" => Some(VmType::Service),
            "Data" => Some(VmType::Data),
            "Worker" => Some(VmType::Worker),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrickInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    pub vcores: u64,
    pub max_mem_bytes: u64,
    #[serde(rename = "realmID")]
    pub realm_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libvirt: Option<LibvirtBrickConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nutanix: Option<NutanixBrickConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whitelist: Option<BrickWhitelist>,
    #[serde(rename = "creatorID")]
    pub creator_id: String,
    pub external_servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(rename = "imageID", default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<u64>,
    pub no_quota: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
    pub vm_type: VmType,
}

impl BrickInfo {
    /// The devices a VM of this brick takes, whichever driver it uses.
    pub fn devices(&self) -> BTreeMap<String, u64> {
        match (&self.libvirt, &self.nutanix) {
            (Some(l), _) => l.devices.clone(),
            (_, Some(n)) => n.devices.clone(),
            _ => BTreeMap::new(),
        }
    }
}

/// Limits on resources; `None` and absent map entries mean no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotasTyped {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(default)]
    pub storage: BTreeMap<String, u64>,
    #[serde(default)]
    pub devices: BTreeMap<String, u64>,
}

impl QuotasTyped {
    /// The old flat representation: `cores`, `memory`, `storage.TYPE`, `devices.TYPE`.
    pub fn legacy(&self) -> BTreeMap<String, u64> {
        let mut flat = BTreeMap::new();
        if let Some(cores) = self.cores {
            flat.insert("cores".to_string(), cores);
        }
        if let Some(memory) = self.memory {
            flat.insert("memory".to_string(), memory);
        }
        for (kind, n) in &self.storage {
            flat.insert(format!("storage.{kind}"), *n);
        }
        for (kind, n) in &self.devices {
            flat.insert(format!("devices.{kind}"), *n);
        }
        flat
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamInfo {
    pub id: String,
    pub name: String,
    pub desc: String,
    pub created: u64,
    pub modified: u64,
    pub quotas: BTreeMap<String, u64>,
    pub team_quotas: QuotasTyped,
    pub per_user_quotas: QuotasTyped,
    pub settings: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<u64>,
}

impl TeamInfo {
    /// Whether the team may use resources at `now`.
    pub fn active_at(&self, now: u64) -> bool {
        self.start_date.is_none_or(|s| s <= now) && self.end_date.is_none_or(|e| now < e)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectInfo {
    pub id: String,
    pub name: String,
    pub desc: String,
    pub security_level: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub settings: Value,
    pub created: u64,
    pub modified: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legacy_quotas_flatten_the_typed_ones() {
        let q = QuotasTyped {
            cores: Some(10),
            memory: None,
            storage: BTreeMap::from([("vault".to_string(), 5)]),
            devices: BTreeMap::from([("gpu-nvidia".to_string(), 2)]),
        };
        assert_eq!(
            serde_json::to_value(q.legacy()).unwrap(),
            json!({"cores": 10, "storage.vault": 5, "devices.gpu-nvidia": 2})
        );
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"cores": 10, "storage": {"vault": 5}, "devices": {"gpu-nvidia": 2}})
        );
    }

    #[test]
    fn a_team_is_active_between_its_dates() {
        let mut team: TeamInfo = serde_json::from_value(json!({
            "id": "t", "name": "n", "desc": "", "created": 0, "modified": 0, "quotas": {},
            "teamQuotas": {}, "perUserQuotas": {}, "settings": {}
        }))
        .unwrap();
        assert!(team.active_at(5));
        team.start_date = Some(10);
        team.end_date = Some(20);
        assert!(!team.active_at(9));
        assert!(team.active_at(10));
        assert!(!team.active_at(20));
    }
}
