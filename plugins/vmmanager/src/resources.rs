//! `/vm/v3/node`, `cluster`, `os`, `disk` and `task`: lists with the filter language, get-by-id, and clusters made and edited by admins.

use serde::Deserialize;
use serde_json::{Value, json};
use tessera_sdk::storage::{self, Collection, Filter};
use tessera_sdk::{Params, Request, Response};

use crate::auth::{Caller, authenticate};
use crate::errors::{ApiError, ApiResult};
use crate::hosts::{self, path_id};
use crate::inventory::{self, by_id, cluster_document};
use crate::listing::ListQuery;
use crate::meta;
use crate::model::collection::{CLUSTER, DISK, NODE, OS, TASK};
use crate::model::{self, CLUSTER_FIELDS, DISK_FIELDS, NODE_FIELDS, OS_FIELDS, TASK_FIELDS, key};
use crate::schema::Field;

/// Everything a list or get of one resource needs to know about it.
struct Resource {
    name: &'static str,
    collection: Collection,
    fields: &'static [Field],
    /// Brings the projection up to date before it is read.
    sync: fn() -> ApiResult<()>,
    /// Who may see which objects: admins only, or each user their own.
    visibility: Visibility,
}

enum Visibility {
    Everyone,
    Admins,
    /// Objects whose `internal.<path>` is the caller's account id.
    Owner(&'static str),
}

const NODES: Resource = Resource {
    name: "node",
    collection: NODE,
    fields: NODE_FIELDS,
    sync: inventory::sync_nodes,
    visibility: Visibility::Admins,
};
const CLUSTERS: Resource = Resource {
    name: "cluster",
    collection: CLUSTER,
    fields: CLUSTER_FIELDS,
    sync: inventory::sync_nodes,
    visibility: Visibility::Everyone,
};
const OSES: Resource = Resource {
    name: "os",
    collection: OS,
    fields: OS_FIELDS,
    sync: inventory::sync_images,
    visibility: Visibility::Everyone,
};
const DISKS: Resource = Resource {
    name: "disk",
    collection: DISK,
    fields: DISK_FIELDS,
    sync: crate::projection::follow_hypervisor,
    visibility: Visibility::Owner("internal.account"),
};
const TASKS: Resource = Resource {
    name: "task",
    collection: TASK,
    fields: TASK_FIELDS,
    sync: meta::ensure_schema,
    visibility: Visibility::Owner("internal.account"),
};

impl Resource {
    /// The filter that narrows what `caller` sees; `Err` when they see nothing.
    fn scope(&self, caller: &Caller) -> ApiResult<Option<Filter>> {
        if caller.is_admin() {
            return Ok(None);
        }
        match self.visibility {
            Visibility::Everyone => Ok(None),
            Visibility::Admins => Err(ApiError::forbidden()),
            Visibility::Owner(path) => Ok(Some(Filter::eq(path, caller.account.id.as_str()))),
        }
    }

    fn list(&self, req: &Request) -> ApiResult<Response> {
        let caller = authenticate(req)?;
        let scope = self.scope(&caller)?;
        let query = ListQuery::parse(&req.query, self.fields)?;
        (self.sync)()?;
        Ok(Response::json(200, &query.run(self.collection, scope)?))
    }

    fn get(&self, req: &Request, params: &Params) -> ApiResult<Response> {
        let caller = authenticate(req)?;
        let scope = self.scope(&caller)?;
        let id = path_id(params, self.name)?;
        (self.sync)()?;
        let mut filter = Filter::eq("id", id);
        if let Some(scope) = scope {
            filter = Filter::and(vec![filter, scope]);
        }
        let page = self
            .collection
            .query()
            .filter(filter)
            .limit(1)
            .fetch::<Value>()?;
        let found = page
            .items
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found(self.name, &id.to_string()))?;
        Ok(Response::json(200, &model::item_view(found.value)))
    }
}

macro_rules! list_and_get {
    ($resource:ident, $list:ident, $get:ident) => {
        pub fn $list(req: &Request, _: &Params) -> ApiResult<Response> {
            $resource.list(req)
        }
        pub fn $get(req: &Request, params: &Params) -> ApiResult<Response> {
            $resource.get(req, params)
        }
    };
}

list_and_get!(NODES, list_nodes, get_node);
list_and_get!(CLUSTERS, list_clusters, get_cluster);
list_and_get!(OSES, list_os, get_os);
list_and_get!(DISKS, list_disks, get_disk);
list_and_get!(TASKS, list_tasks, get_task);

#[derive(Deserialize)]
struct ClusterForm {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    virtualization_type: Option<String>,
    comment: Option<String>,
}

fn body<T: for<'de> Deserialize<'de>>(req: &Request) -> ApiResult<T> {
    let bytes: &[u8] = if req.body.is_empty() {
        b"{}"
    } else {
        &req.body
    };
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_body(e.to_string()))
}

fn cluster_name(name: Option<&str>) -> ApiResult<String> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid_field("name", "1 to 100 characters"));
    }
    Ok(name.to_owned())
}

/// A cluster name no other cluster has.
fn check_unique_name(name: &str, except: Option<u64>) -> ApiResult<()> {
    let same = CLUSTER
        .query()
        .filter(Filter::eq("name", name))
        .limit(2)
        .fetch::<Value>()?;
    if same.items.iter().any(|c| c.value["id"].as_u64() != except) {
        return Err(ApiError::conflict("A cluster with this name exists")
            .with_value(json!({ "field": "name" })));
    }
    Ok(())
}

/// `POST /vm/v3/cluster` (admins): `{name, type?, comment?}` → `{id}`.
pub fn create_cluster(req: &Request, _: &Params) -> ApiResult<Response> {
    authenticate(req)?.require_admin()?;
    let form: ClusterForm = body(req)?;
    let name = cluster_name(form.name.as_deref())?;
    let kind = form
        .virtualization_type
        .or(form.kind)
        .unwrap_or_else(|| "kvm".into());
    if kind != "kvm" {
        return Err(ApiError::invalid_field(
            "type",
            "this site runs kvm clusters",
        ));
    }
    inventory::sync_nodes()?;
    check_unique_name(&name, None)?;
    // The sequence starts at 1, which the default cluster holds.
    let id = storage::next_id("cluster")? + inventory::DEFAULT_CLUSTER_ID;
    let document = cluster_document(id, &name, &kind, form.comment.as_deref().unwrap_or(""));
    storage::batch(&[CLUSTER.insert_op(&key(id), &document)?, meta::notify_op()?])
        .map_err(|e| ApiError::from(e.error))?;
    Ok(Response::json(200, &json!({ "id": id })))
}

/// `POST /vm/v3/cluster/<id>` (admins): rename or comment; hosts and nodes follow.
pub fn edit_cluster(req: &Request, params: &Params) -> ApiResult<Response> {
    authenticate(req)?.require_admin()?;
    let id = path_id(params, "cluster")?;
    let form: ClusterForm = body(req)?;
    inventory::sync_nodes()?;
    let stored = CLUSTER
        .get::<Value>(&key(id))?
        .ok_or_else(|| ApiError::not_found("cluster", &id.to_string()))?;
    let mut cluster = stored.value;
    let mut writes = Vec::new();
    if let Some(name) = form.name.as_deref() {
        let name = cluster_name(Some(name))?;
        check_unique_name(&name, Some(id))?;
        cluster["name"] = json!(name);
        writes.extend(hosts::cluster_rename_writes(id, &name)?);
        writes.extend(node_rename_writes(id, &name)?);
    }
    if let Some(comment) = form.comment {
        cluster["comment"] = json!(comment);
    }
    writes.push(CLUSTER.put_op(&key(id), &cluster, Some(stored.version))?);
    writes.push(meta::notify_op()?);
    storage::batch(&writes).map_err(|e| ApiError::from(e.error))?;
    Ok(Response::json(200, &json!({ "id": id })))
}

fn node_rename_writes(cluster: u64, name: &str) -> ApiResult<Vec<storage::Write>> {
    let nodes = NODE
        .query()
        .filter(Filter::eq("cluster.id", cluster))
        .limit(10_000)
        .fetch::<Value>()?;
    nodes
        .items
        .into_iter()
        .map(|item| {
            let mut node = item.value;
            node["cluster"]["name"] = json!(name);
            Ok(NODE.put_op(&item.key, &node, Some(item.version))?)
        })
        .collect()
}

#[derive(Deserialize)]
struct NodeForm {
    cluster: Option<Value>,
}

/// `POST /vm/v3/node/<id>` (admins): `{cluster}` moves the node to another cluster.
pub fn edit_node(req: &Request, params: &Params) -> ApiResult<Response> {
    authenticate(req)?.require_admin()?;
    let id = path_id(params, "node")?;
    let form: NodeForm = body(req)?;
    inventory::sync_nodes()?;
    let stored = NODE
        .get::<Value>(&key(id))?
        .ok_or_else(|| ApiError::not_found("node", &id.to_string()))?;
    let mut node = stored.value;
    if let Some(value) = form.cluster {
        let cluster_id = match &value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| ApiError::invalid_field("cluster", "an id, a whole number"))?;
        let cluster = by_id(CLUSTER, cluster_id)?
            .ok_or_else(|| ApiError::invalid_field("cluster", "no such cluster"))?;
        node["cluster"] = model::reference(cluster_id, cluster["name"].as_str().unwrap_or(""));
    }
    // Its hosts move with it: a host's cluster is its node's.
    let mut writes = hosts::node_move_writes(id, &node["cluster"])?;
    writes.push(NODE.put_op(&key(id), &node, Some(stored.version))?);
    writes.push(meta::notify_op()?);
    storage::batch(&writes).map_err(|e| ApiError::from(e.error))?;
    Ok(Response::json(200, &json!({ "id": id })))
}
