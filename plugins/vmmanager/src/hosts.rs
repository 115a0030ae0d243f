//! `/vm/v3/host`: VMs of the site's hypervisor as VMmanager hosts — list, get, create, delete, power actions, edit and resize — with a projection kept in step for indexed lists.

use serde::Deserialize;
use serde_json::{Value, json};
use tessera_sdk::hypervisor::{self as hv, VmAction, VmSpec, VmState};
use tessera_sdk::storage::{self, Filter, Write};
use tessera_sdk::{Params, Request, Response};

use crate::auth::{Caller, authenticate};
use crate::errors::{ApiError, ApiResult};
use crate::inventory::{self, by_id};
use crate::listing::ListQuery;
use crate::meta;
use crate::model::collection::{CLUSTER, HOST, NODE, OS, TASK};
use crate::model::{self, HOST_FIELDS, key};
use crate::placement;
use crate::projection::{self, marks};
use crate::tasks::{self, Target, TaskPayload};

/// Only admins see every host; a user sees their own.
pub fn owner_scope(caller: &Caller) -> Option<Filter> {
    (!caller.is_admin()).then(|| Filter::eq("account.id", caller.account.id.as_str()))
}

pub fn list(req: &Request, _: &Params) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    let query = ListQuery::parse(&req.query, HOST_FIELDS)?;
    projection::follow_hypervisor()?;
    Ok(Response::json(200, &query.run(HOST, owner_scope(&caller))?))
}

/// The id in the path as a number, or 404.
pub fn path_id(params: &Params, resource: &str) -> ApiResult<u64> {
    let raw = params.get("id").unwrap_or_default();
    raw.parse::<u64>()
        .map_err(|_| ApiError::not_found(resource, raw))
}

/// The caller's stored host, or 404 (another user's host is not found either).
fn owned_host(caller: &Caller, id: u64) -> ApiResult<storage::Versioned<Value>> {
    let stored = HOST
        .get::<Value>(&key(id))?
        .ok_or_else(|| ApiError::not_found("host", &id.to_string()))?;
    let mine = caller.is_admin()
        || stored.value["account"]["id"].as_str() == Some(caller.account.id.as_str());
    if !mine {
        return Err(ApiError::not_found("host", &id.to_string()));
    }
    Ok(stored)
}

/// The hypervisor's id of a stored host.
fn hv_id(host: &Value) -> String {
    model::internal(host, "hv_id")
        .unwrap_or_default()
        .to_owned()
}

/// `GET /vm/v3/host/<id>`: the host without associated items, as the hypervisor has it now.
pub fn get(req: &Request, params: &Params) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    let id = path_id(params, "host")?;
    projection::follow_hypervisor()?;
    let stored = owned_host(&caller, id)?;
    Ok(Response::json(200, &model::item_view(stored.value)))
}

/// The product's create fields but `password` (taken apart, see `create`); others
/// its clients send (preset, recipes, pools…) are accepted and ignored.
#[derive(Deserialize)]
struct NewHost {
    name: Option<String>,
    os: Option<Value>,
    cluster: Option<Value>,
    cpu_number: Option<u32>,
    ram_mib: Option<u64>,
    hdd_mib: Option<u64>,
    domain: Option<String>,
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

/// An integer id given as a number or as digits.
fn id_value(field: &str, value: Option<&Value>) -> ApiResult<u64> {
    let value = value.ok_or_else(|| ApiError::invalid_field(field, "required"))?;
    let id = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    id.ok_or_else(|| ApiError::invalid_field(field, "an id, a whole number"))
}

fn check_name(name: Option<&str>) -> ApiResult<String> {
    let name = name.map(str::trim).unwrap_or_default();
    let fine = !name.is_empty()
        && name.chars().count() <= 100
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !fine {
        return Err(ApiError::invalid_field(
            "name",
            "1 to 100 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(name.to_owned())
}

fn check_range<T: PartialOrd + Copy + std::fmt::Display>(
    field: &str,
    value: Option<T>,
    min: T,
    max: T,
) -> ApiResult<T> {
    let value = value.ok_or_else(|| ApiError::invalid_field(field, "required"))?;
    if value < min || value > max {
        return Err(ApiError::invalid_field(
            field,
            format!("from {min} to {max}"),
        ));
    }
    Ok(value)
}

/// `POST /vm/v3/host`: creates a VM on a node of the cluster asked for; answers
/// `{id, task}` while a task follows it. The guest password goes to the
/// hypervisor only sealed (see [`guest_data`]).
pub fn create(req: &Request, _: &Params) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    let mut raw: Value = body(req)?;
    // The guest's root password is taken out first, so no parse error can echo it.
    let password = match raw.as_object_mut().and_then(|o| o.remove("password")) {
        None | Some(Value::Null) => None,
        Some(Value::String(password)) => Some(password),
        Some(_) => return Err(ApiError::invalid_field("password", "6 to 128 characters")),
    };
    let form: NewHost =
        serde_json::from_value(raw).map_err(|e| ApiError::bad_body(e.to_string()))?;
    let name = check_name(form.name.as_deref())?;
    let cpus = check_range("cpu_number", form.cpu_number, 1, 1024)?;
    let ram_mib = check_range("ram_mib", form.ram_mib, 128, 1 << 30)?;
    let hdd_mib = check_range("hdd_mib", form.hdd_mib, 512, 1 << 32)?;
    if let Some(password) = &password
        && !(6..=128).contains(&password.chars().count())
    {
        return Err(ApiError::invalid_field("password", "6 to 128 characters"));
    }
    for (field, value) in [("domain", &form.domain), ("comment", &form.comment)] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 1024) {
            return Err(ApiError::invalid_field(field, "at most 1024 characters"));
        }
    }
    inventory::sync_images()?;
    inventory::sync_nodes()?;
    let os_id = id_value("os", form.os.as_ref())?;
    let os = by_id(OS, os_id)?.ok_or_else(|| ApiError::invalid_field("os", "no such os"))?;
    let cluster_id = match form.cluster.as_ref() {
        Some(value) => id_value("cluster", Some(value))?,
        None => inventory::DEFAULT_CLUSTER_ID,
    };
    by_id(CLUSTER, cluster_id)?
        .ok_or_else(|| ApiError::invalid_field("cluster", "no such cluster"))?;
    let id = storage::next_id("host")?;
    let mut metadata = json!({
        marks::KEY: {
            marks::HOST: id,
            marks::CLUSTER: cluster_id,
            marks::DOMAIN: form.domain.unwrap_or_default(),
            marks::COMMENT: form.comment.unwrap_or_default(),
        }
    });
    if let Some(password) = &password {
        metadata[GUEST_KEY] = guest_data(password);
    }
    let spec = VmSpec {
        name: name.clone(),
        owner: caller.account.login.clone(),
        image: model::internal(&os, "hv_id").unwrap_or_default().to_owned(),
        cpus,
        ram_mib,
        disk_mib: hdd_mib,
        networks: Vec::new(),
        tags: "{}".into(),
        metadata: metadata.to_string(),
        deletion_protection: false,
        data_disks: Vec::new(),
    };
    let (vm, _transition) = placement::create_in_cluster(&spec, cluster_id, &caller.audit_name())?;
    projection::follow_hypervisor()?;
    let host = HOST
        .get::<Value>(&key(id))?
        .map(|stored| stored.value)
        .unwrap_or_else(|| json!({ "id": id, "name": vm.name }));
    let task = tasks::new_task("host_create", &host, &caller.account.id)?;
    storage::batch(&[task.write, meta::notify_op()?]).map_err(|e| ApiError::from(e.error))?;
    tasks::follow(
        "host_create",
        &TaskPayload {
            task: task.id,
            host: id,
            hv_id: vm.id.clone(),
            target: Target::Running,
        },
    )?;
    Ok(Response::json(
        200,
        &json!({ "id": id, "task": task.consul_id, "task_id": task.id, "name": name }),
    ))
}

/// The VM metadata key that carries data for the guest.
pub const GUEST_KEY: &str = "guest";

/// What the guest needs at first boot, for the hypervisor: the root password
/// sealed by the auth primitive (AES-256-GCM under the site key, this
/// plugin's name bound in), so only the kernel's backend can open it and no
/// response, list or log carries it in the clear.
fn guest_data(password: &str) -> Value {
    json!({
        "root_password_sealed": tessera_sdk::auth::seal_text(password),
        "sealed_by": projection::CREATOR,
    })
}

/// Records a task on `host`, queues the job that follows it to `target` and
/// answers `{id, task, task_id}`.
fn start_task(
    caller: &Caller,
    name: &str,
    host: &Value,
    hv_id: String,
    target: Target,
) -> ApiResult<Response> {
    let id = host["id"].as_u64().unwrap_or(0);
    let task = tasks::new_task(name, host, &caller.account.id)?;
    storage::batch(&[task.write, meta::notify_op()?]).map_err(|e| ApiError::from(e.error))?;
    tasks::follow(
        name,
        &TaskPayload {
            task: task.id,
            host: id,
            hv_id,
            target,
        },
    )?;
    Ok(Response::json(
        200,
        &json!({ "id": id, "task": task.consul_id, "task_id": task.id }),
    ))
}

/// Runs a power action or delete on a host and answers `{id, task}`.
fn act(req: &Request, params: &Params, action: VmAction) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    let id = path_id(params, "host")?;
    let stored = owned_host(&caller, id)?;
    let hv_id = hv_id(&stored.value);
    let (name, target) = match action {
        VmAction::Start => ("host_start", Target::Running),
        VmAction::Stop => ("host_stop", Target::Stopped),
        VmAction::Reboot => ("host_restart", Target::Running),
        VmAction::Delete => ("host_delete", Target::Gone),
    };
    hv::act(&hv_id, action, &caller.audit_name())?;
    projection::follow_hypervisor()?;
    start_task(&caller, name, &stored.value, hv_id, target)
}

pub fn start(req: &Request, params: &Params) -> ApiResult<Response> {
    act(req, params, VmAction::Start)
}

pub fn stop(req: &Request, params: &Params) -> ApiResult<Response> {
    act(req, params, VmAction::Stop)
}

pub fn restart(req: &Request, params: &Params) -> ApiResult<Response> {
    act(req, params, VmAction::Reboot)
}

pub fn delete(req: &Request, params: &Params) -> ApiResult<Response> {
    act(req, params, VmAction::Delete)
}

#[derive(Deserialize)]
struct HostEdit {
    name: Option<String>,
    comment: Option<String>,
    domain: Option<String>,
}

/// `POST /vm/v3/host/<id>`: name, comment and domain.
pub fn edit(req: &Request, params: &Params) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    let id = path_id(params, "host")?;
    let form: HostEdit = body(req)?;
    let name = form
        .name
        .as_deref()
        .map(|n| check_name(Some(n)))
        .transpose()?;
    for (field, value) in [("comment", &form.comment), ("domain", &form.domain)] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 1024) {
            return Err(ApiError::invalid_field(field, "at most 1024 characters"));
        }
    }
    let stored = owned_host(&caller, id)?;
    if let Some(name) = &name {
        hv::rename(&hv_id(&stored.value), name, &caller.audit_name())?;
        projection::follow_hypervisor()?;
    }
    // Comment and domain are this plugin's own; kept by every later projection.
    let stored = owned_host(&caller, id)?;
    let mut host = stored.value;
    for (field, value) in [("comment", &form.comment), ("domain", &form.domain)] {
        if let Some(value) = value {
            host[field] = json!(value);
        }
    }
    let writes = [
        HOST.put_op(&key(id), &host, Some(stored.version))?,
        meta::notify_op()?,
    ];
    storage::batch(&writes).map_err(|e| ApiError::from(e.error))?;
    Ok(Response::json(200, &json!({ "id": id })))
}

#[derive(Deserialize)]
struct Resources {
    cpu_number: Option<u32>,
    ram_mib: Option<u64>,
    hdd_mib: Option<u64>,
}

/// `POST /vm/v3/host/<id>/resource`: CPUs, RAM and disk, as a task.
pub fn resize(req: &Request, params: &Params) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    let id = path_id(params, "host")?;
    let form: Resources = body(req)?;
    let stored = owned_host(&caller, id)?;
    let host = &stored.value;
    let cpus = check_range(
        "cpu_number",
        form.cpu_number
            .or(host["cpu_number"].as_u64().map(|n| n as u32)),
        1,
        1024,
    )?;
    let ram = check_range(
        "ram_mib",
        form.ram_mib.or(host["ram_mib"].as_u64()),
        128,
        1 << 30,
    )?;
    let hdd = check_range(
        "hdd_mib",
        form.hdd_mib.or(host["hdd_mib"].as_u64()),
        512,
        1 << 32,
    )?;
    let hv_id = hv_id(host);
    let vm = hv::get_vm(&hv_id)?.ok_or_else(|| ApiError::not_found("host", &id.to_string()))?;
    let target = settled_target(vm.state);
    hv::resize(&hv_id, cpus, ram, hdd, &caller.audit_name())?;
    projection::follow_hypervisor()?;
    start_task(&caller, "host_edit_resource", host, hv_id, target)
}

/// Where a VM in `state` rests once an operation that keeps its power ends.
fn settled_target(state: VmState) -> Target {
    if matches!(
        state,
        VmState::Running | VmState::Starting | VmState::Rebooting
    ) {
        Target::Running
    } else {
        Target::Stopped
    }
}

#[derive(Deserialize)]
struct Migration {
    node: Option<Value>,
}

/// `POST /vm/v3/host/<id>/migrate {node?}` (admins): moves the host to another
/// node of its cluster — `node`, or the first of the others with room.
pub fn migrate(req: &Request, params: &Params) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    caller.require_admin()?;
    let id = path_id(params, "host")?;
    let form: Migration = body(req)?;
    let wanted = form
        .node
        .as_ref()
        .filter(|v| !v.is_null())
        .map(|v| id_value("node", Some(v)))
        .transpose()?;
    projection::follow_hypervisor()?;
    let stored = owned_host(&caller, id)?;
    let host = &stored.value;
    let cluster = host["cluster"]["id"].as_u64().unwrap_or(0);
    let current = host["node"]["id"].as_u64();
    let candidates = match wanted {
        Some(node_id) => {
            let node = by_id(NODE, node_id)?
                .ok_or_else(|| ApiError::invalid_field("node", "no such node"))?;
            if node["cluster"]["id"].as_u64() != Some(cluster) {
                return Err(ApiError::invalid_field(
                    "node",
                    "the node is not in the host's cluster",
                ));
            }
            if Some(node_id) == current {
                return Err(ApiError::invalid_field("node", "the host is on this node"));
            }
            vec![node]
        }
        None => placement::cluster_nodes(cluster)?
            .into_iter()
            .filter(|node| node["id"].as_u64() != current)
            .collect(),
    };
    let hv_id = hv_id(host);
    let mut last = None;
    for node in &candidates {
        let node_hv = model::internal(node, "hv_id").unwrap_or_default();
        match hv::migrate_vm(&hv_id, Some(node_hv), &caller.audit_name()) {
            Ok(vm) => {
                projection::follow_hypervisor()?;
                return start_task(
                    &caller,
                    "host_migrate",
                    host,
                    hv_id,
                    settled_target(vm.state),
                );
            }
            // This node has no room: try the next one of the cluster.
            Err(error @ hv::HvError::Capacity(_)) => last = Some(error),
            Err(other) => return Err(other.into()),
        }
    }
    Err(last.map_or_else(
        || placement::no_room("no other node in the host's cluster"),
        ApiError::from,
    ))
}

/// `GET /vm/v3/host/<id>/history`: what was done to the host, oldest first —
/// this plugin's tasks (with their `task` consul ids) and the changes others
/// made through the hypervisor (the CLI, other families). `limit=offset,count`
/// pages it; `max_id` is the newest entry's id.
pub fn history(req: &Request, params: &Params) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    let id = path_id(params, "host")?;
    let mut limit = None;
    for (name, value) in tessera_sdk::query::pairs(&req.query) {
        match name.as_str() {
            "limit" => {
                limit = Some(
                    crate::filter::parse_limit(&value)
                        .map_err(|e| ApiError::bad_filter("limit", e.position, e.message))?,
                )
            }
            "where" | "orderby" => {
                return Err(ApiError::bad_filter(&name, 1, "history takes only limit"));
            }
            _ => {}
        }
    }
    projection::follow_hypervisor()?;
    let stored = owned_host(&caller, id)?;
    let entries = history_entries(&stored.value)?;
    let size = entries.len() as u64;
    let max_id = size;
    let (offset, count) = limit.map_or((0, u64::MAX), |l| (l.offset, l.count));
    let list: Vec<Value> = entries
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(count).unwrap_or(usize::MAX))
        .collect();
    Ok(Response::json(
        200,
        &json!({ "last_notify": meta::last_notify()?, "list": list, "size": size, "max_id": max_id }),
    ))
}

/// Most tasks of one host read for its history.
const HISTORY_TASKS: u64 = 10_000;

fn history_entries(host: &Value) -> ApiResult<Vec<Value>> {
    let host_id = host["id"].as_u64().unwrap_or(0);
    let tasks = TASK
        .query()
        .filter(Filter::eq("host.id", host_id))
        .order_by("id", false)
        .limit(HISTORY_TASKS)
        .fetch::<Value>()?;
    // (time for ordering, entry without id)
    let mut entries: Vec<(String, Value)> = tasks
        .items
        .into_iter()
        .map(|item| {
            let task = item.value;
            let created = task["registration_time"].as_str().unwrap_or("").to_owned();
            let state = match task["status"].as_str() {
                Some("complete") => "complete",
                Some("failed") => "failed",
                _ => "running",
            };
            let entry = json!({
                "name": task["name"],
                "state": state,
                "task": task["consul_id"],
                "date_create": created,
                "date_update": task["update_time"],
                "initiator": "vmmanager",
                "output": task["output"],
            });
            (created, entry)
        })
        .collect();
    let hv_id = hv_id(host);
    if !hv_id.is_empty() {
        let audit = match hv::audit(&hv_id) {
            Ok(audit) => audit,
            Err(hv::HvError::NotFound(_)) => Vec::new(),
            Err(other) => return Err(other.into()),
        };
        // This plugin's own changes are its tasks above; the rest came from elsewhere.
        for entry in audit
            .into_iter()
            .filter(|e| !e.caller.starts_with("vmmanager:"))
        {
            let when = model::format_time(entry.time);
            let action = match entry.action.as_str() {
                "reboot" => "restart".to_owned(),
                "resize" => "edit_resource".to_owned(),
                other => other.replace('-', "_"),
            };
            let state = match (entry.pending, entry.success) {
                (true, _) => "running",
                (false, true) => "complete",
                (false, false) => "failed",
            };
            let entry = json!({
                "name": format!("host_{action}"),
                "state": state,
                "task": Value::Null,
                "date_create": when,
                "date_update": when,
                "initiator": entry.caller,
                "output": "",
            });
            entries.push((when, entry));
        }
    }
    // Oldest first; a stable sort keeps tasks in id order within a second.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries
        .into_iter()
        .enumerate()
        .map(|(index, (_, mut entry))| {
            entry["id"] = json!(index + 1);
            entry
        })
        .collect())
}

/// Writes that move the hosts of node `node` into `cluster` (a reference).
pub fn node_move_writes(node: u64, cluster: &Value) -> ApiResult<Vec<Write>> {
    let hosts = HOST
        .query()
        .filter(Filter::eq("node.id", node))
        .limit(100_000)
        .fetch::<Value>()?;
    hosts
        .items
        .into_iter()
        .map(|item| {
            let mut host = item.value;
            host["cluster"] = cluster.clone();
            Ok(HOST.put_op(&item.key, &host, Some(item.version))?)
        })
        .collect()
}

/// Writes that put `cluster`'s new name into every host of it, a page at a time.
pub fn cluster_rename_writes(cluster: u64, name: &str) -> ApiResult<Vec<Write>> {
    let mut writes = Vec::new();
    let mut offset = 0;
    loop {
        let page = HOST
            .query()
            .filter(Filter::eq("cluster.id", cluster))
            .order_by("id", false)
            .offset(offset)
            .limit(500)
            .fetch::<Value>()?;
        let count = page.items.len() as u64;
        for item in page.items {
            let mut host = item.value;
            host["cluster"]["name"] = json!(name);
            writes.push(HOST.put_op(&item.key, &host, Some(item.version))?);
        }
        if count < 500 {
            return Ok(writes);
        }
        offset += count;
    }
}
