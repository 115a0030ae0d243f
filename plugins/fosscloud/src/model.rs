//! Stored documents (pools, pool VMs and their holders, groups, FC4School
//! mappings and peers) and the wire shape of one VM in the spec's answers.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_sdk::storage::Collection;

pub const POOLS: Collection = Collection::new("pools");
/// One document per VM of a pool, keyed `POOL/SLOT`.
pub const POOL_VMS: Collection = Collection::new("pool_vms");
/// Who holds which dynamic VM, keyed by [`Holder::key`]: its unique key
/// is what makes a claim atomic (one VM per user and pool).
pub const HOLDERS: Collection = Collection::new("holders");
pub const GROUPS: Collection = Collection::new("groups");
/// FC4School MAC → pool mappings, keyed `MAC/POOL`.
pub const MAPPINGS: Collection = Collection::new("mappings");
/// FC4School peer address → MAC (what ARP would tell upstream).
pub const PEERS: Collection = Collection::new("peers");
pub const META: Collection = Collection::new("meta");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    /// VMs made from a golden image, handed to whoever asks first.
    Dynamic,
    /// VMs each owned by one user.
    Persistent,
}

impl PoolKind {
    pub fn parse(text: &str) -> Option<PoolKind> {
        match text {
            "dynamic" => Some(PoolKind::Dynamic),
            "persistent" => Some(PoolKind::Persistent),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Dynamic => "dynamic",
            PoolKind::Persistent => "persistent",
        }
    }
}

/// A VM pool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    pub id: String,
    /// The display name (upstream `sstDisplayName`).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: PoolKind,
    /// The golden image (id or name) new VMs are made from.
    pub image: Option<String>,
    /// Dynamic pools: how many VMs the pool may hold.
    pub size: u32,
    pub cpus: u32,
    pub ram_mib: u64,
    pub disk_mib: u64,
    /// `Desktop`, `Server`, ...
    pub subtype: String,
    /// The profile group shown as `os`; `None`: the image's os.
    pub os: Option<String>,
    /// Logins allowed to use the pool.
    pub users: Vec<String>,
    /// Groups whose members may use the pool.
    pub groups: Vec<String>,
}

/// Who holds a dynamic VM: a user, or for FC4School the dynvmuser for one MAC.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub login: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl Holder {
    pub fn user(login: &str) -> Holder {
        Holder {
            login: login.to_string(),
            mac: None,
        }
    }

    /// The key of the claim in [`HOLDERS`] for `pool`.
    pub fn key(&self, pool: &str) -> String {
        match &self.mac {
            None => format!("{pool}/{}", self.login),
            Some(mac) => format!("{pool}/{}/{mac}", self.login),
        }
    }
}

/// The document under [`HOLDERS`]: which pool VM the holder has.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claim {
    pub vm_key: String,
}

/// One VM of a pool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolVm {
    pub pool: String,
    pub slot: String,
    /// The hypervisor's VM id; `None` while the claiming request creates it.
    pub vm: Option<String>,
    /// Persistent pools: the owning login.
    pub owner: Option<String>,
    pub holder: Option<Holder>,
    /// SPICE/VNC port on the VM's node.
    pub port: Option<u32>,
    /// SPICE/VNC password, sealed by the kernel (never stored in clear).
    pub sealed_password: Option<String>,
}

impl PoolVm {
    pub fn key(pool: &str, slot: &str) -> String {
        format!("{pool}/{slot}")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub name: String,
    pub members: Vec<String>,
    pub list_all: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mapping {
    pub mac: String,
    pub pool: String,
    /// The pool VM (its key) pinned to this MAC once first assigned.
    pub vm_key: Option<String>,
}

impl Mapping {
    pub fn key(mac: &str, pool: &str) -> String {
        format!("{mac}/{pool}")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Peer {
    pub ip: String,
    pub mac: String,
}

/// One VM as the spec lists it; `None` fields are JSON `null`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VmEntry {
    pub uuid: Option<String>,
    pub name: String,
    pub ip: Option<String>,
    pub node: Option<String>,
    pub port: Option<u32>,
    pub password: Option<String>,
    pub status: String,
    pub kind: &'static str,
    pub subtype: Option<String>,
    pub os: Option<String>,
    pub pool: String,
}

impl VmEntry {
    /// A dynamic pool the user may be assigned to, as the spec's example.
    pub fn assignable(pool: &Pool) -> VmEntry {
        VmEntry {
            name: pool.name.clone(),
            status: "assignable".into(),
            kind: "dynamic",
            pool: pool.id.clone(),
            ..VmEntry::default()
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "uuid": self.uuid, "name": self.name, "ip": self.ip, "node": self.node,
            "port": self.port, "password": self.password, "status": self.status,
            "type": self.kind, "subtype": self.subtype, "os": self.os, "pool": self.pool,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assignable_entry_matches_the_spec_example() {
        let pool = Pool {
            id: "57e3bd10-1934-4b4f-3d4c-6e31473bddab".into(),
            name: "DynVm-Test".into(),
            kind: PoolKind::Dynamic,
            image: None,
            size: 1,
            cpus: 1,
            ram_mib: 1,
            disk_mib: 1,
            subtype: "Desktop".into(),
            os: None,
            users: vec![],
            groups: vec![],
        };
        assert_eq!(
            VmEntry::assignable(&pool).to_json(),
            json!({"uuid": null, "name": "DynVm-Test", "ip": null, "node": null, "port": null,
                   "password": null, "status": "assignable", "type": "dynamic", "subtype": null,
                   "os": null, "pool": "57e3bd10-1934-4b4f-3d4c-6e31473bddab"})
        );
    }

    #[test]
    fn holder_keys_separate_users_and_macs() {
        assert_eq!(Holder::user("alice").key("p"), "p/alice");
        let school = Holder {
            login: "dynvmuser".into(),
            mac: Some("52:54:00:00:00:01".into()),
        };
        assert_eq!(school.key("p"), "p/dynvmuser/52:54:00:00:00:01");
    }
}
