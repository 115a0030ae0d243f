//! `/vm/v3/host`: VMs of the site's hypervisor as VMmanager hosts — list, get, create, delete, power actions, edit and resize — with a projection kept in step for indexed lists.

use serde::Deserialize;
use serde_json::{Value, json};
use tessera_sdk::hypervisor::{self as hv, Vm, VmAction, VmSpec, VmState};
use tessera_sdk::storage::{self, Filter, Write};
use tessera_sdk::{Params, Request, Response};

use crate::auth::{Caller, authenticate};
use crate::errors::{ApiError, ApiResult};
use crate::inventory::{self, by_id};
use crate::listing::ListQuery;
use crate::meta;
use crate::model::collection::{CLUSTER, DISK, HOST, OS};
use crate::model::{self, HOST_FIELDS, HostContext, host_document, key, reference};
use crate::tasks::{self, Target, TaskPayload};

/// Only admins see every host; a user sees their own.
pub fn owner_scope(caller: &Caller) -> Option<Filter> {
    (!caller.is_admin()).then(|| Filter::eq("account.id", caller.account.id.as_str()))
}

pub fn list(req: &Request, _: &Params) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    let query = ListQuery::parse(&req.query, HOST_FIELDS)?;
    meta::ensure_schema()?;
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

/// `GET /vm/v3/host/<id>`: the host without associated items, fresh from the hypervisor.
pub fn get(req: &Request, params: &Params) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    let id = path_id(params, "host")?;
    let stored = owned_host(&caller, id)?;
    let hv_id = model::internal(&stored.value, "hv_id")
        .unwrap_or_default()
        .to_owned();
    let vm = hv::get_vm(&hv_id)?;
    let writes = refresh_writes(id, vm.as_ref())?;
    let current = if writes.is_empty() {
        stored.value
    } else {
        let mut batch = writes;
        batch.push(meta::notify_op()?);
        storage::batch(&batch).map_err(|e| ApiError::from(e.error))?;
        match HOST.get::<Value>(&key(id))? {
            Some(now) => now.value,
            None => return Err(ApiError::not_found("host", &id.to_string())),
        }
    };
    Ok(Response::json(200, &model::item_view(current)))
}

/// Writes that bring host `id`'s projection (and its disks) in line with `vm`;
/// none when nothing changed.
pub fn refresh_writes(id: u64, vm: Option<&Vm>) -> ApiResult<Vec<Write>> {
    let key = key(id);
    let Some(stored) = HOST.get::<Value>(&key)? else {
        return Ok(Vec::new());
    };
    let vm = match vm {
        Some(vm) if vm.state != VmState::Deleted => vm,
        _ => return tasks::removal_writes(id),
    };
    let old = &stored.value;
    let (node, node_cluster) = inventory::node_reference(vm.node.as_deref())?;
    let cluster = match (&old["cluster"], node_cluster) {
        (Value::Null, Some(cluster)) => cluster,
        (cluster, _) => cluster.clone(),
    };
    let context = HostContext {
        id,
        cluster,
        node,
        os: old["os"].clone(),
        account: old["account"].clone(),
        domain: old["domain"].as_str().unwrap_or_default().to_owned(),
        comment: old["comment"].as_str().unwrap_or_default().to_owned(),
    };
    let document = host_document(vm, &context);
    let mut writes = disk_writes(&document, vm)?;
    if &document != old {
        writes.push(HOST.put_op(&key, &document, Some(stored.version))?);
    }
    Ok(writes)
}

/// Writes that make the `disk` objects of a host match the VM's disks.
fn disk_writes(host: &Value, vm: &Vm) -> ApiResult<Vec<Write>> {
    let host_id = host["id"].as_u64().unwrap_or(0);
    let existing = DISK
        .query()
        .filter(Filter::eq("host.id", host_id))
        .limit(64)
        .fetch::<Value>()?;
    let mut writes = Vec::new();
    for (index, disk) in vm.disks.iter().enumerate() {
        let known = existing
            .items
            .iter()
            .find(|d| model::internal(&d.value, "hv_id") == Some(disk.id.as_str()));
        let id = match known {
            Some(d) => d.value["id"].as_u64().unwrap_or(0),
            None => storage::next_id("disk")?,
        };
        let document = json!({
            "id": id,
            "name": format!("{}_disk{}", vm.name, index + 1),
            "size_mib": disk.size_mib,
            "boot": disk.boot,
            "host": { "id": host_id, "name": vm.name },
            "internal": { "hv_id": disk.id, "account": host["account"]["id"] },
        });
        if known.map(|d| &d.value) != Some(&document) {
            writes.push(DISK.put_op(&key(id), &document, None)?);
        }
    }
    for gone in existing.items.iter().filter(|d| {
        let hv_id = model::internal(&d.value, "hv_id");
        !vm.disks.iter().any(|disk| Some(disk.id.as_str()) == hv_id)
    }) {
        writes.push(DISK.delete_op(&gone.key, None));
    }
    Ok(writes)
}

/// The product's create fields; others its clients send (preset, recipes, pools…)
/// are accepted and ignored.
#[derive(Deserialize)]
struct NewHost {
    name: Option<String>,
    os: Option<Value>,
    cluster: Option<Value>,
    cpu_number: Option<u32>,
    ram_mib: Option<u64>,
    hdd_mib: Option<u64>,
    /// The guest's root password: the sim backend has no guest to set it on, so it
    /// is checked and dropped, never stored.
    password: Option<String>,
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

/// `POST /vm/v3/host`: creates a VM; answers `{id, task}` while a task follows it.
pub fn create(req: &Request, _: &Params) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    let form: NewHost = body(req)?;
    let name = check_name(form.name.as_deref())?;
    let cpus = check_range("cpu_number", form.cpu_number, 1, 1024)?;
    let ram_mib = check_range("ram_mib", form.ram_mib, 128, 1 << 30)?;
    let hdd_mib = check_range("hdd_mib", form.hdd_mib, 512, 1 << 32)?;
    if let Some(password) = &form.password
        && (password.len() < 6 || password.len() > 128)
    {
        return Err(ApiError::invalid_field("password", "6 to 128 characters"));
    }
    inventory::sync_images()?;
    inventory::sync_nodes()?;
    let os_id = id_value("os", form.os.as_ref())?;
    let os = by_id(OS, os_id)?.ok_or_else(|| ApiError::invalid_field("os", "no such os"))?;
    let cluster_id = match form.cluster.as_ref() {
        Some(value) => id_value("cluster", Some(value))?,
        None => inventory::DEFAULT_CLUSTER_ID,
    };
    let cluster = by_id(CLUSTER, cluster_id)?
        .ok_or_else(|| ApiError::invalid_field("cluster", "no such cluster"))?;
    let spec = VmSpec {
        name: name.clone(),
        owner: caller.account.login.clone(),
        image: model::internal(&os, "hv_id").unwrap_or_default().to_owned(),
        cpus,
        ram_mib,
        disk_mib: hdd_mib,
        networks: Vec::new(),
        tags: "{}".into(),
        metadata: json!({ "vmmanager": { "cluster": cluster_id } }).to_string(),
        deletion_protection: false,
    };
    let (vm, _transition) = hv::create_vm(&spec, &caller.audit_name())?;
    let id = storage::next_id("host")?;
    let (node, _) = inventory::node_reference(vm.node.as_deref())?;
    let context = HostContext {
        id,
        cluster: reference(cluster_id, cluster["name"].as_str().unwrap_or("")),
        node,
        os: reference(os_id, os["name"].as_str().unwrap_or("")),
        account: json!({ "id": caller.account.id, "email": caller.account.email }),
        domain: form.domain.unwrap_or_default(),
        comment: form.comment.unwrap_or_default(),
    };
    let document = host_document(&vm, &context);
    let task = tasks::new_task("host_create", &document, &caller.account.id)?;
    let mut writes = vec![HOST.insert_op(&key(id), &document)?, task.write];
    writes.extend(disk_writes(&document, &vm)?);
    writes.push(meta::notify_op()?);
    storage::batch(&writes).map_err(|e| ApiError::from(e.error))?;
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

/// Runs a power action or delete on a host and answers `{id, task}`.
fn act(req: &Request, params: &Params, action: VmAction) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    let id = path_id(params, "host")?;
    let stored = owned_host(&caller, id)?;
    let hv_id = model::internal(&stored.value, "hv_id")
        .unwrap_or_default()
        .to_owned();
    let (name, target, state) = match action {
        VmAction::Start => ("host_start", Target::Running, "starting"),
        VmAction::Stop => ("host_stop", Target::Stopped, "stopping"),
        VmAction::Reboot => ("host_restart", Target::Running, "restarting"),
        VmAction::Delete => ("host_delete", Target::Gone, "deleting"),
    };
    hv::act(&hv_id, action, &caller.audit_name())?;
    let task = tasks::new_task(name, &stored.value, &caller.account.id)?;
    let mut host = stored.value;
    host["state"] = json!(state);
    let writes = [
        HOST.put_op(&key(id), &host, None)?,
        task.write,
        meta::notify_op()?,
    ];
    storage::batch(&writes).map_err(|e| ApiError::from(e.error))?;
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
    let stored = owned_host(&caller, id)?;
    let mut host = stored.value;
    if let Some(name) = &form.name {
        let name = check_name(Some(name))?;
        let hv_id = model::internal(&host, "hv_id")
            .unwrap_or_default()
            .to_owned();
        hv::rename(&hv_id, &name, &caller.audit_name())?;
        host["name"] = json!(name);
    }
    for (field, value) in [("comment", &form.comment), ("domain", &form.domain)] {
        if let Some(value) = value {
            if value.chars().count() > 1024 {
                return Err(ApiError::invalid_field(field, "at most 1024 characters"));
            }
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
    let hv_id = model::internal(host, "hv_id")
        .unwrap_or_default()
        .to_owned();
    let vm = hv::get_vm(&hv_id)?.ok_or_else(|| ApiError::not_found("host", &id.to_string()))?;
    let target = if vm.state == VmState::Running {
        Target::Running
    } else {
        Target::Stopped
    };
    hv::resize(&hv_id, cpus, ram, hdd, &caller.audit_name())?;
    let task = tasks::new_task("host_edit_resource", host, &caller.account.id)?;
    storage::batch(&[task.write, meta::notify_op()?]).map_err(|e| ApiError::from(e.error))?;
    tasks::follow(
        "host_edit_resource",
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
