//! The plugin's own state in the `meta` collection: the change counter behind `last_notify`, the session lifetime, and the indexes its lists rely on.

use serde::{Deserialize, Serialize};
use tessera_sdk::storage::{self, Collection};

use crate::errors::ApiResult;
use crate::model::collection::{CLUSTER, DISK, HOST, META, NODE, OS, TASK};

/// Bump when the index list below changes.
const SCHEMA_VERSION: u64 = 3;

/// Indexes per collection: name and dotted paths. Each list filters and sorts on
/// these in SQL; an index ends in the document key, so a sorted page needs no sort.
const INDEXES: &[(Collection, &str, &[&str])] = &[
    (HOST, "host_id", &["id"]),
    (HOST, "host_name", &["name"]),
    (HOST, "host_state", &["state"]),
    (HOST, "host_cpu", &["cpu_number"]),
    // State with a size: the usual "active hosts with at least N CPUs / MiB"
    // filters count from the index alone, without reading a document.
    (HOST, "host_state_cpu", &["state", "cpu_number"]),
    (HOST, "host_state_ram", &["state", "ram_mib"]),
    (HOST, "host_ram", &["ram_mib"]),
    (HOST, "host_cluster_id", &["cluster.id"]),
    (HOST, "host_cluster_name", &["cluster.name"]),
    (HOST, "host_node_id", &["node.id"]),
    (HOST, "host_os_id", &["os.id"]),
    (HOST, "host_account", &["account.id", "id"]),
    (HOST, "host_hv", &["internal.hv_id"]),
    (NODE, "node_id", &["id"]),
    (NODE, "node_hv", &["internal.hv_id"]),
    (CLUSTER, "cluster_id", &["id"]),
    (OS, "os_id", &["id"]),
    (OS, "os_hv", &["internal.hv_id"]),
    (DISK, "disk_id", &["id"]),
    (DISK, "disk_host", &["host.id"]),
    (TASK, "task_id", &["id"]),
    (TASK, "task_consul", &["consul_id"]),
    (TASK, "task_account", &["internal.account", "id"]),
    (TASK, "task_host", &["host.id", "id"]),
];

#[derive(Serialize, Deserialize, Default)]
struct Counter {
    value: u64,
}

/// Declares the indexes once per schema version.
pub fn ensure_schema() -> ApiResult<()> {
    let current = META.get::<Counter>("schema")?.map(|c| c.value.value);
    if current == Some(SCHEMA_VERSION) {
        return Ok(());
    }
    for (collection, name, paths) in INDEXES {
        collection.ensure_index(name, paths, false)?;
    }
    META.put(
        "schema",
        &Counter {
            value: SCHEMA_VERSION,
        },
        None,
    )?;
    Ok(())
}

/// The change counter clients see as `last_notify`.
pub fn last_notify() -> ApiResult<u64> {
    Ok(META.get::<Counter>("notify")?.map_or(0, |c| c.value.value))
}

/// Counts one change; the number only grows.
pub fn notify_op() -> ApiResult<storage::Write> {
    let value = storage::next_id("notify")?;
    Ok(META.put_op("notify", &Counter { value }, None)?)
}

/// Where the host projection stands in the hypervisor's change feed, and the
/// version of that record (none before the first look).
pub fn hv_cursor() -> ApiResult<(u64, Option<u64>)> {
    Ok(META
        .get::<Counter>("hv_cursor")?
        .map_or((0, None), |c| (c.value.value, Some(c.version))))
}

/// Moves the cursor, only if nobody moved it since it was read at `version`.
pub fn hv_cursor_op(value: u64, version: Option<u64>) -> ApiResult<storage::Write> {
    let counter = Counter { value };
    Ok(match version {
        Some(version) => META.put_op("hv_cursor", &counter, Some(version))?,
        None => META.insert_op("hv_cursor", &counter)?,
    })
}

/// Minutes a session lives unused (the product's `token_ttl`, default 60).
pub fn token_ttl_minutes() -> ApiResult<u64> {
    Ok(META
        .get::<Counter>("token_ttl")?
        .map_or(DEFAULT_TOKEN_TTL_MINUTES, |c| c.value.value))
}

pub const DEFAULT_TOKEN_TTL_MINUTES: u64 = 60;

pub fn set_token_ttl_minutes(minutes: u64) -> ApiResult<()> {
    META.put("token_ttl", &Counter { value: minutes }, None)?;
    Ok(())
}
