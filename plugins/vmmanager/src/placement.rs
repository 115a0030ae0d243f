//! Where hosts go: a host created in a cluster is placed by the hypervisor on one of that cluster's nodes, never elsewhere.

use serde_json::{Value, json};
use tessera_sdk::hypervisor::{self as hv, Vm, VmSpec};
use tessera_sdk::storage::Filter;

use crate::errors::{ApiError, ApiResult, code};
use crate::model;
use crate::model::collection::NODE;

/// Most nodes one cluster is read with.
const MAX_NODES: u64 = 10_000;

/// The projected nodes of cluster `cluster`, in id order.
pub fn cluster_nodes(cluster: u64) -> ApiResult<Vec<Value>> {
    let page = NODE
        .query()
        .filter(Filter::eq("cluster.id", cluster))
        .order_by("id", false)
        .limit(MAX_NODES)
        .fetch::<Value>()?;
    Ok(page.items.into_iter().map(|item| item.value).collect())
}

/// The hypervisor ids of cluster `cluster`'s nodes.
pub fn cluster_node_ids(cluster: u64) -> ApiResult<Vec<String>> {
    Ok(cluster_nodes(cluster)?
        .iter()
        .filter_map(|node| model::internal(node, "hv_id").map(str::to_owned))
        .collect())
}

/// No node of the cluster can take the host: the envelope's capacity error.
pub fn no_room(detail: impl Into<String>) -> ApiError {
    ApiError::new(409, code::NO_CAPACITY, "No node has room for the host")
        .with_value(json!({ "detail": detail.into() }))
}

/// Creates the VM on a node of cluster `cluster`; a capacity error when the
/// cluster has no node or none of its nodes has room.
pub fn create_in_cluster(spec: &VmSpec, cluster: u64, caller: &str) -> ApiResult<(Vm, String)> {
    let nodes = cluster_node_ids(cluster)?;
    if nodes.is_empty() {
        return Err(no_room("the cluster has no node"));
    }
    let placement = hv::Placement {
        only_nodes: nodes,
        avoid_nodes: Vec::new(),
        prefer_nodes: Vec::new(),
        shun_nodes: Vec::new(),
        vm_id: None,
        // VMmanager places on the node with the most free resources.
        spread: false,
        addresses: Vec::new(),
    };
    Ok(hv::create_vm_placed(spec, &placement, caller)?)
}
