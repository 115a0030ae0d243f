//! Nodes, clusters and OS images: the hypervisor's small inventories projected with VMmanager's integer ids, kept in step on each read.

use serde_json::{Value, json};
use tessera_sdk::hypervisor as hv;
use tessera_sdk::storage::{self, Filter};

use crate::errors::{ApiError, ApiResult};
use crate::meta;
use crate::model::collection::{CLUSTER, NODE, OS};
use crate::model::{key, reference};

/// The cluster every node starts in.
pub const DEFAULT_CLUSTER_ID: u64 = 1;
const DEFAULT_CLUSTER_NAME: &str = "default";

/// Most objects of a small inventory read at once.
const INVENTORY_PAGE: u64 = 10_000;

/// A stored object looked up by its `internal.hv_id`.
pub fn by_hv_id(collection: storage::Collection, hv_id: &str) -> ApiResult<Option<Value>> {
    let page = collection
        .query()
        .filter(Filter::eq("internal.hv_id", hv_id))
        .limit(1)
        .fetch::<Value>()?;
    Ok(page.items.into_iter().next().map(|item| item.value))
}

/// A stored object by its integer id.
pub fn by_id(collection: storage::Collection, id: u64) -> ApiResult<Option<Value>> {
    Ok(collection.get::<Value>(&key(id))?.map(|item| item.value))
}

/// The default cluster, created on first use.
fn ensure_default_cluster() -> ApiResult<()> {
    if by_id(CLUSTER, DEFAULT_CLUSTER_ID)?.is_some() {
        return Ok(());
    }
    let cluster = cluster_document(DEFAULT_CLUSTER_ID, DEFAULT_CLUSTER_NAME, "kvm", "");
    match CLUSTER.insert(&key(DEFAULT_CLUSTER_ID), &cluster) {
        Ok(_) | Err(storage::Error::Storage(storage::StorageError::AlreadyExists)) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

pub fn cluster_document(id: u64, name: &str, virtualization: &str, comment: &str) -> Value {
    json!({
        "id": id,
        "name": name,
        "type": virtualization,
        "virtualization_type": virtualization,
        "comment": comment,
    })
}

/// Projects every hypervisor node not seen before into the default cluster and
/// refreshes the sizes and states of the others.
pub fn sync_nodes() -> ApiResult<()> {
    meta::ensure_schema()?;
    ensure_default_cluster()?;
    let stored = NODE.query().limit(INVENTORY_PAGE).fetch::<Value>()?;
    let mut writes = Vec::new();
    for node in hv::list_nodes()? {
        let known = stored
            .items
            .iter()
            .find(|item| crate::model::internal(&item.value, "hv_id") == Some(node.id.as_str()));
        let (id, cluster) = match known {
            Some(item) => (
                item.value["id"].as_u64().unwrap_or(0),
                item.value["cluster"].clone(),
            ),
            None => {
                let cluster = by_id(CLUSTER, DEFAULT_CLUSTER_ID)?
                    .map(|c| reference(DEFAULT_CLUSTER_ID, c["name"].as_str().unwrap_or("")))
                    .unwrap_or(Value::Null);
                (storage::next_id("node")?, cluster)
            }
        };
        let document = json!({
            "id": id,
            "name": node.name,
            "state": if node.state == "running" { "active" } else { node.state.as_str() },
            "cpu_number": node.cpus,
            "ram_mib": node.ram_mib,
            "hdd_mib": node.disk_mib,
            "cluster": cluster,
            "internal": { "hv_id": node.id },
        });
        if known.map(|item| &item.value) != Some(&document) {
            writes.push(NODE.put_op(&key(id), &document, None)?);
        }
    }
    commit(writes)
}

/// Projects the hypervisor's images as VMmanager's OS list.
pub fn sync_images() -> ApiResult<()> {
    meta::ensure_schema()?;
    let stored = OS.query().limit(INVENTORY_PAGE).fetch::<Value>()?;
    let mut writes = Vec::new();
    for image in hv::list_images()? {
        let known = stored
            .items
            .iter()
            .find(|item| crate::model::internal(&item.value, "hv_id") == Some(image.id.as_str()));
        let id = match known {
            Some(item) => item.value["id"].as_u64().unwrap_or(0),
            None => storage::next_id("os")?,
        };
        let document = json!({
            "id": id,
            "name": image.name,
            "state": image.state,
            "os_type": image.os,
            "version": image.version,
            "size_mib": image.size_mib,
            "public": image.public,
            "internal": { "hv_id": image.id },
        });
        if known.map(|item| &item.value) != Some(&document) {
            writes.push(OS.put_op(&key(id), &document, None)?);
        }
    }
    commit(writes)
}

fn commit(mut writes: Vec<storage::Write>) -> ApiResult<()> {
    if writes.is_empty() {
        return Ok(());
    }
    writes.push(meta::notify_op()?);
    storage::batch(&writes).map_err(|e| ApiError::from(e.error))?;
    Ok(())
}

/// The projected node of a hypervisor node id, as a reference, and its cluster.
pub fn node_reference(hv_node: Option<&str>) -> ApiResult<(Value, Option<Value>)> {
    let Some(hv_node) = hv_node else {
        return Ok((Value::Null, None));
    };
    let mut found = by_hv_id(NODE, hv_node)?;
    if found.is_none() {
        sync_nodes()?;
        found = by_hv_id(NODE, hv_node)?;
    }
    Ok(match found {
        Some(node) => (
            reference(
                node["id"].as_u64().unwrap_or(0),
                node["name"].as_str().unwrap_or(""),
            ),
            Some(node["cluster"].clone()),
        ),
        None => (Value::Null, None),
    })
}
