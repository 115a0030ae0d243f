//! The wire shapes of VMmanager's objects, as stored in this plugin's projection collections, and the conversions from the hypervisor's types.
//!
//! Every stored object is exactly what a list returns, plus an `internal` member
//! (hypervisor ids, the owner's login) that responses never show. Get-by-id
//! answers the same object without its associated items (the spec's rule).

use serde_json::{Map, Value, json};
use tessera_sdk::hypervisor::{Vm, VmState};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::schema::{Field, boolean, int, text};

/// Collections of the projection.
pub mod collection {
    use tessera_sdk::storage::Collection;
    pub const HOST: Collection = Collection::new("host");
    pub const NODE: Collection = Collection::new("node");
    pub const CLUSTER: Collection = Collection::new("cluster");
    pub const OS: Collection = Collection::new("os");
    pub const DISK: Collection = Collection::new("disk");
    pub const TASK: Collection = Collection::new("task");
    /// Plugin state: settings, counters, the schema version.
    pub const META: Collection = Collection::new("meta");
}

pub const HOST_FIELDS: &[Field] = &[
    int("id"),
    text("name"),
    text("state"),
    int("cpu_number"),
    int("ram_mib"),
    int("hdd_mib"),
    text("domain"),
    text("comment"),
    text("uuid"),
    text("ip_addr"),
    text("created"),
    int("cluster.id"),
    text("cluster.name"),
    int("node.id"),
    text("node.name"),
    int("os.id"),
    text("os.name"),
    text("account.id"),
    text("account.email"),
];

pub const NODE_FIELDS: &[Field] = &[
    int("id"),
    text("name"),
    text("state"),
    int("cpu_number"),
    int("ram_mib"),
    int("hdd_mib"),
    int("cluster.id"),
    text("cluster.name"),
];

pub const CLUSTER_FIELDS: &[Field] = &[
    int("id"),
    text("name"),
    text("type"),
    text("virtualization_type"),
    text("comment"),
];

pub const OS_FIELDS: &[Field] = &[
    int("id"),
    text("name"),
    text("state"),
    text("os_type"),
    text("version"),
    int("size_mib"),
    boolean("public"),
];

pub const DISK_FIELDS: &[Field] = &[
    int("id"),
    text("name"),
    int("size_mib"),
    boolean("boot"),
    int("host.id"),
    text("host.name"),
];

pub const TASK_FIELDS: &[Field] = &[
    int("id"),
    int("consul_id"),
    text("name"),
    text("status"),
    text("registration_time"),
    text("update_time"),
    int("host.id"),
    text("host.name"),
];

/// The product's name for a hypervisor state.
pub fn host_state(state: VmState) -> &'static str {
    match state {
        VmState::Provisioning => "creating",
        VmState::Running => "active",
        VmState::Stopped => "stopped",
        VmState::Stopping => "stopping",
        VmState::Starting => "starting",
        VmState::Rebooting => "restarting",
        VmState::Deleted => "deleted",
        VmState::Failed => "failed",
    }
}

/// The product's name for a hypervisor state given as text (`running` → `active`).
pub fn host_state_name(state: &str) -> &'static str {
    match state {
        "provisioning" => "creating",
        "running" => "active",
        "stopped" => "stopped",
        "stopping" => "stopping",
        "starting" => "starting",
        "rebooting" => "restarting",
        "deleted" => "deleted",
        _ => "failed",
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, as the product writes times.
pub fn format_time(ms: u64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let seconds = i64::try_from(ms / 1000).unwrap_or(0);
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Parses `YYYY-MM-DD HH:MM:SS` (UTC) into milliseconds since the epoch.
pub fn parse_time(text: &str) -> Option<u64> {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let parsed = time::PrimitiveDateTime::parse(text.trim(), &format).ok()?;
    let seconds = parsed.assume_utc().unix_timestamp();
    u64::try_from(seconds).ok()?.checked_mul(1000)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    elapsed.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

/// The storage key of object `id`: zero-padded, so key order is id order and a
/// list sorted by id (the default) reads the primary key in order.
pub fn key(id: u64) -> String {
    format!("{id:020}")
}

/// A reference to an associated object: `{"id", "name"}`.
pub fn reference(id: u64, name: &str) -> Value {
    json!({ "id": id, "name": name })
}

/// What a host document is built from besides the VM itself.
pub struct HostContext {
    pub id: u64,
    pub cluster: Value,
    pub node: Value,
    pub os: Value,
    pub account: Value,
    pub domain: String,
    pub comment: String,
}

/// The list shape of a host.
pub fn host_document(vm: &Vm, context: &HostContext) -> Value {
    let ip4: Vec<Value> = vm
        .ips
        .iter()
        .filter(|ip| !ip.contains(':'))
        .map(|ip| json!({ "ip": ip }))
        .collect();
    let ip6: Vec<Value> = vm
        .ips
        .iter()
        .filter(|ip| ip.contains(':'))
        .map(|ip| json!({ "ip": ip }))
        .collect();
    let disks: Vec<Value> = vm
        .disks
        .iter()
        .map(|d| json!({ "uuid": d.id, "size_mib": d.size_mib, "boot": d.boot }))
        .collect();
    json!({
        "id": context.id,
        "name": vm.name,
        "state": host_state(vm.state),
        "cpu_number": vm.cpus,
        "ram_mib": vm.ram_mib,
        "hdd_mib": vm.disk_mib,
        "domain": context.domain,
        "comment": context.comment,
        "uuid": vm.id,
        "ip_addr": vm.ips.first().cloned().unwrap_or_default(),
        "created": format_time(vm.created),
        "cluster": context.cluster,
        "node": context.node,
        "os": context.os,
        "account": context.account,
        "ip4": ip4,
        "ip6": ip6,
        "disks": disks,
        "internal": { "hv_id": vm.id, "owner": vm.owner },
    })
}

/// What a client sees of a stored object in a list: everything but `internal`.
pub fn list_view(mut stored: Value) -> Value {
    if let Some(object) = stored.as_object_mut() {
        object.remove("internal");
    }
    stored
}

/// What get-by-id shows: no associated items (objects and lists), no `internal`.
pub fn item_view(stored: Value) -> Value {
    match stored {
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .filter(|(name, value)| {
                    name != "internal" && !value.is_object() && !value.is_array()
                })
                .collect::<Map<String, Value>>(),
        ),
        other => other,
    }
}

/// A stored object's `internal.NAME` as text.
pub fn internal<'a>(stored: &'a Value, name: &str) -> Option<&'a str> {
    stored.get("internal")?.get(name)?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_in_the_products_format() {
        let ms = parse_time("2030-01-31 00:00:00").expect("parses");
        assert_eq!(format_time(ms), "2030-01-31 00:00:00");
        assert_eq!(parse_time("2030-01-31"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn item_view_drops_associated_items() {
        let stored = json!({"id": 1, "name": "a", "cluster": {"id": 1}, "ip4": [], "internal": {}});
        assert_eq!(item_view(stored.clone()), json!({"id": 1, "name": "a"}));
        assert_eq!(
            list_view(stored),
            json!({"id": 1, "name": "a", "cluster": {"id": 1}, "ip4": []})
        );
    }
}
