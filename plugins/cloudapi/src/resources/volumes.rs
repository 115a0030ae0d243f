//! Volumes (experimental in the spec): ListVolumes, CreateVolume, GetVolume, DeleteVolume,
//! UpdateVolume, ListVolumeSizes.
//!
//! A volume is a document in plugin storage. Its life is the spec's state machine, run as
//! kernel jobs: CreateVolume stores it `creating` and submits `volume.create`, which takes
//! an address on the volume's first fabric network (`networks::claim`, never the same
//! address twice) and makes it `ready` — or `failed` when no address is free.
//! DeleteVolume makes it `deleting` and submits `volume.delete`, which gives the address
//! back and removes the document (GetVolume then answers 404).
//!
//! Machines mount volumes through `refs` (machine ids): [`attach`] is how machine
//! creation records a mount. A volume is in use while a ref is a live machine.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tessera_sdk::hypervisor::{self as hv, VmState};
use tessera_sdk::jobs::{self, JobSubmission, OnRestart};
use tessera_sdk::storage::{self, Collection, Filter, StorageError, Versioned};
use tessera_sdk::{Job, JobOutcome, Params};

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::ids::{is_uuid, new_uuid};
use crate::predicate::{self, Field};
use crate::protocol::Reply;
use crate::protocol::clock::iso8601;
use crate::resources::{fabrics, networks};

pub const VOLUMES: Collection = Collection::new("volumes");

pub const JOB_CREATE: &str = "volume.create";
pub const JOB_DELETE: &str = "volume.delete";

const TYPE_NFS: &str = "tritonnfs";
const DEFAULT_SIZE: u64 = 10240;
const MAX_NAME: usize = 256;

/// What ListVolumeSizes offers, in MiB.
pub const SIZES: [u64; 19] = [
    10240, 20480, 30720, 40960, 51200, 61440, 71680, 81920, 92160, 102400, 204800, 307200, 409600,
    512000, 614400, 716800, 819200, 921600, 1024000,
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub id: String,
    /// The owner's account id (`owner_uuid`).
    pub account: String,
    pub login: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    pub state: String,
    pub networks: Vec<String>,
    #[serde(default)]
    pub refs: Vec<String>,
    #[serde(default)]
    pub tags: Map<String, Value>,
    pub created: u64,
    /// `network/ip` taken for it once ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem_path: Option<String>,
}

impl Volume {
    fn to_json(&self) -> Value {
        let mut out = json!({
            "id": self.id,
            "owner_uuid": self.account,
            "name": self.name,
            "type": self.kind,
            "size": self.size,
            "created": iso8601(self.created),
            "state": self.state,
            "networks": self.networks,
            "refs": self.refs,
            "tags": self.tags,
        });
        if let Some(path) = &self.filesystem_path {
            out["filesystem_path"] = json!(path);
        }
        out
    }
}

fn volume_error(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(409, code, message)
}

fn ensure_indexes() -> ApiResult<()> {
    VOLUMES.ensure_index("volumes_by_name", &["account", "name"], true)?;
    Ok(())
}

fn check_name(name: &str) -> ApiResult<()> {
    let mut chars = name.chars();
    let ok = name.len() >= 2
        && name.len() <= MAX_NAME
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!(
            "volume name {name:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]+$ and have at most {MAX_NAME} characters"
        )))
    }
}

/// Whether a machine that references a volume still counts as a user of it.
fn is_active(id: &str) -> bool {
    match hv::get_vm(id) {
        Ok(Some(vm)) => !matches!(vm.state, VmState::Deleted | VmState::Failed),
        Ok(None) => false,
        // When the hypervisor cannot say, keep the ref: refusing a delete is the safe side.
        Err(_) => true,
    }
}

pub(crate) fn existing(ctx: &Ctx<'_>, id: &str) -> ApiResult<Versioned<Volume>> {
    VOLUMES
        .get::<Volume>(id)?
        .filter(|v| v.value.account == ctx.account.id)
        // CloudAPI's own code for it: `triton volume delete -w` waits for exactly this.
        .ok_or_else(|| ApiError::new(404, "VolumeNotFound", format!("volume {id} does not exist")))
}

/// Whether any of the account's volumes is reachable on the network.
pub fn on_network(account: &str, network: &str) -> ApiResult<bool> {
    Ok(VOLUMES
        .query()
        .filter(Filter::eq("account", account))
        .fetch::<Volume>()?
        .items
        .iter()
        .any(|v| v.value.networks.iter().any(|n| n == network)))
}

/// CreateMachine's `volumes`: `[{"name", "type", "mode", "mountpoint"}]` (what
/// `triton instance create --volume` sends) or names; each must be a `ready` volume of
/// the account. Returns the names to [`attach`] once the machine exists.
pub fn mounts(ctx: &Ctx<'_>) -> ApiResult<Vec<String>> {
    let Some(items) = ctx.inputs.list("volumes")? else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for item in items {
        let name = match &item {
            Value::String(name) => name.clone(),
            Value::Object(o) => {
                if let Some(kind) = o.get("type").and_then(Value::as_str)
                    && kind != TYPE_NFS
                {
                    return Err(ApiError::invalid_argument(format!(
                        "volume type {kind:?} is not supported: only {TYPE_NFS}"
                    )));
                }
                if let Some(mode) = o.get("mode").and_then(Value::as_str)
                    && mode != "rw"
                    && mode != "ro"
                {
                    return Err(ApiError::invalid_argument(format!(
                        "volume mode {mode:?} must be rw or ro"
                    )));
                }
                if let Some(mountpoint) = o.get("mountpoint").and_then(Value::as_str)
                    && !mountpoint.starts_with('/')
                {
                    return Err(ApiError::invalid_argument(format!(
                        "mountpoint {mountpoint:?} must be an absolute path"
                    )));
                }
                o.get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::invalid_argument("a volume needs a name"))?
                    .to_string()
            }
            _ => return Err(ApiError::invalid_argument("volumes must be objects")),
        };
        let found = VOLUMES
            .query()
            .filter(Filter::and(vec![
                Filter::eq("account", ctx.account.id.as_str()),
                Filter::eq("name", name.as_str()),
            ]))
            .limit(1)
            .fetch::<Volume>()?
            .items
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::invalid_argument(format!("volume {name} does not exist")))?;
        if found.value.state != "ready" {
            return Err(volume_error(
                "VolumeNotReady",
                format!("volume {name} is {}", found.value.state),
            ));
        }
        names.push(name);
    }
    Ok(names)
}

/// Records that machine `vm` mounts the account's volumes named (or with ids) `names`;
/// each must be `ready`. For machine creation (part 2's `volumes` argument).
pub fn attach(account: &str, names: &[String], vm: &str) -> ApiResult<Vec<Volume>> {
    let mut writes = Vec::new();
    let mut out = Vec::new();
    for name in names {
        let found = VOLUMES
            .query()
            .filter(Filter::and(vec![
                Filter::eq("account", account),
                Filter::or(vec![
                    Filter::eq("name", name.as_str()),
                    Filter::eq("id", name.as_str()),
                ]),
            ]))
            .limit(1)
            .fetch::<Volume>()?
            .items
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found(format!("volume {name} does not exist")))?;
        if found.value.state != "ready" {
            return Err(volume_error(
                "VolumeNotReady",
                format!("volume {name} is {}", found.value.state),
            ));
        }
        let mut volume = found.value;
        if !volume.refs.iter().any(|r| r == vm) {
            volume.refs.push(vm.to_string());
        }
        writes.push(VOLUMES.put_op(&found.key, &volume, Some(found.version))?);
        out.push(volume);
    }
    storage::batch(&writes)?;
    Ok(out)
}

const PREDICATE_FIELDS: [Field; 5] = [
    Field {
        name: "id",
        path: "id",
        numeric: false,
    },
    Field {
        name: "name",
        path: "name",
        numeric: false,
    },
    Field {
        name: "size",
        path: "size",
        numeric: true,
    },
    Field {
        name: "state",
        path: "state",
        numeric: false,
    },
    Field {
        name: "type",
        path: "type",
        numeric: false,
    },
];

pub fn list(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let mut filters = vec![Filter::eq("account", ctx.account.id.as_str())];
    let mut used = std::collections::BTreeSet::new();
    let predicate = ctx.inputs.string("predicate")?;
    if let Some(text) = &predicate {
        let compiled = predicate::compile(text, &PREDICATE_FIELDS)
            .map_err(|e| ApiError::invalid_argument(e.0))?;
        used = compiled.fields;
        filters.push(compiled.filter);
    }
    for field in ["name", "size", "state", "type"] {
        if !ctx.inputs.has(field) {
            continue;
        }
        if used.contains(field) {
            return Err(ApiError::invalid_argument(format!(
                "{field} cannot be both in the predicate and a query parameter"
            )));
        }
        match field {
            "size" => {
                let size = ctx.inputs.integer("size")?.unwrap_or_default();
                filters.push(Filter::eq("size", size));
            }
            "name" => {
                let name = ctx.inputs.string("name")?.unwrap_or_default();
                if name.contains('*') {
                    filters.push(Filter::like("name", &predicate::wildcard_to_like(&name)));
                } else {
                    filters.push(Filter::eq("name", name));
                }
            }
            other => {
                let value = ctx.inputs.string(other)?.unwrap_or_default();
                if other == "state"
                    && !["creating", "ready", "deleting", "deleted", "failed"]
                        .contains(&value.as_str())
                {
                    return Err(ApiError::invalid_argument(format!(
                        "state {value:?} is not one of creating, ready, deleting, deleted, failed"
                    )));
                }
                filters.push(Filter::eq(other, value));
            }
        }
    }
    if predicate.is_none() && !ctx.inputs.has("state") {
        filters.push(Filter::ne("state", "failed"));
    }
    let found = VOLUMES
        .query()
        .filter(Filter::and(filters))
        .order_by("created", false)
        .fetch::<Volume>()?;
    let out: Vec<Value> = found.items.iter().map(|v| v.value.to_json()).collect();
    Ok(Reply::ok(Value::Array(out)))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let stored = existing(ctx, p.get("id").unwrap_or_default())?;
    Ok(Reply::ok(stored.value.to_json()))
}

pub fn sizes(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    if let Some(other) = ctx.inputs.keys().find(|k| *k != "type") {
        return Err(ApiError::invalid_argument(format!(
            "{other} is not a parameter of ListVolumeSizes"
        )));
    }
    let kind = ctx
        .inputs
        .string("type")?
        .unwrap_or_else(|| TYPE_NFS.into());
    if kind != TYPE_NFS {
        return Err(ApiError::invalid_argument(format!(
            "volume type {kind:?} is not supported: only {TYPE_NFS}"
        )));
    }
    let out: Vec<Value> = SIZES
        .iter()
        .map(|size| json!({"size": size, "type": TYPE_NFS}))
        .collect();
    Ok(Reply::ok(Value::Array(out)))
}

/// The fabric networks a new volume is reachable on: the ones asked for, else the
/// account's default network when it is a fabric one, else its first fabric network.
fn volume_networks(ctx: &Ctx<'_>) -> ApiResult<Vec<String>> {
    let account = &ctx.account.id;
    if let Some(asked) = ctx.inputs.strings("networks")? {
        if asked.is_empty() {
            return Err(ApiError::invalid_argument("networks must not be empty"));
        }
        let mut out = Vec::new();
        for id in asked {
            let found = fabrics::network(account, &id)?.ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "network {id} is not a fabric network of this account"
                ))
            })?;
            if !out.contains(&found.value.id) {
                out.push(found.value.id);
            }
        }
        return Ok(out);
    }
    let fabric = fabrics::networks_of(account, None)?;
    let default = crate::resources::config::default_network(account)?;
    let chosen = fabric
        .iter()
        .find(|n| Some(&n.value.id) == default.as_ref())
        .or_else(|| fabric.first())
        .ok_or_else(|| {
            ApiError::invalid_argument(
                "this account has no fabric network for the volume: create one first",
            )
        })?;
    Ok(vec![chosen.value.id.clone()])
}

pub fn create(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let kind = ctx
        .inputs
        .string("type")?
        .unwrap_or_else(|| TYPE_NFS.into());
    if kind != TYPE_NFS {
        return Err(ApiError::invalid_argument(format!(
            "volume type {kind:?} is not supported: only {TYPE_NFS}"
        )));
    }
    let id = new_uuid();
    let name = match ctx.inputs.string("name")? {
        Some(name) => name,
        None => format!("volume-{}", &id[..8]),
    };
    check_name(&name)?;
    let size = ctx.inputs.integer("size")?.unwrap_or(DEFAULT_SIZE);
    if !SIZES.contains(&size) {
        return Err(volume_error(
            "VolumeSizeNotAvailable",
            format!("volume size {size} is not available; see ListVolumeSizes"),
        ));
    }
    let tags = match ctx.inputs.raw("tags") {
        None => Map::new(),
        Some(Value::Object(map)) if map.values().all(|v| !v.is_object() && !v.is_array()) => {
            map.clone()
        }
        Some(_) => {
            return Err(ApiError::invalid_argument(
                "tags must be an object of strings, numbers or booleans",
            ));
        }
    };
    if ctx.inputs.has("affinity") {
        ctx.inputs.strings("affinity")?;
    }
    let volume = Volume {
        id: id.clone(),
        account: ctx.account.id.clone(),
        login: ctx.login().to_string(),
        name,
        kind,
        size,
        state: "creating".into(),
        networks: volume_networks(ctx)?,
        refs: Vec::new(),
        tags,
        created: ctx.now_ms,
        address: None,
        filesystem_path: None,
    };
    ensure_indexes()?;
    storage::batch(&[VOLUMES.insert_op(&id, &volume)?]).map_err(|e| match e.error {
        StorageError::UniqueViolation(_) | StorageError::AlreadyExists => volume_error(
            "VolumeAlreadyExists",
            format!("a volume named {:?} already exists", volume.name),
        ),
        _ => ApiError::from(e),
    })?;
    submit(JOB_CREATE, &id)?;
    let location = format!("/{}/volumes/{id}", ctx.login());
    Ok(Reply::created(volume.to_json(), location))
}

fn submit(kind: &str, id: &str) -> ApiResult<()> {
    jobs::submit(&JobSubmission {
        kind: kind.into(),
        payload: json!({"id": id}).to_string(),
        exclusive_key: Some(format!("volume:{id}")),
        on_restart: OnRestart::Resume,
        delay_ms: None,
    })
    .map_err(|e| {
        tessera_sdk::error!("jobs: {e:?}");
        ApiError::internal("the volume job could not be queued")
    })?;
    Ok(())
}

pub fn update(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let stored = existing(ctx, p.get("id").unwrap_or_default())?;
    if let Some(other) = ctx.inputs.keys().find(|k| *k != "name" && *k != "id") {
        return Err(ApiError::invalid_argument(format!(
            "{other} cannot be updated: only name"
        )));
    }
    let mut volume = stored.value;
    if let Some(name) = ctx.inputs.string("name")? {
        check_name(&name)?;
        if name != volume.name && volume.refs.iter().any(|r| is_active(r)) {
            return Err(volume_error(
                "VolumeInUse",
                "a volume referenced by active machines cannot be renamed",
            ));
        }
        volume.name = name;
    }
    ensure_indexes()?;
    storage::batch(&[VOLUMES.put_op(&stored.key, &volume, Some(stored.version))?]).map_err(
        |e| match e.error {
            StorageError::UniqueViolation(_) => volume_error(
                "VolumeAlreadyExists",
                format!("a volume named {:?} already exists", volume.name),
            ),
            _ => ApiError::from(e),
        },
    )?;
    Ok(Reply::no_content())
}

pub fn delete(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let stored = existing(ctx, p.get("id").unwrap_or_default())?;
    let mut volume = stored.value;
    let users: Vec<&String> = volume.refs.iter().filter(|r| is_active(r)).collect();
    if !users.is_empty() {
        return Err(volume_error(
            "VolumeInUse",
            format!(
                "volume {} is used by machines: {}",
                volume.id,
                users
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    match volume.state.as_str() {
        "ready" | "failed" => {}
        "deleting" => return Ok(Reply::no_content()),
        other => {
            return Err(ApiError::invalid_argument(format!(
                "volume {} is {other}; wait until it is ready",
                volume.id
            )));
        }
    }
    volume.state = "deleting".into();
    storage::batch(&[VOLUMES.put_op(&stored.key, &volume, Some(stored.version))?])?;
    submit(JOB_DELETE, &volume.id)?;
    Ok(Reply::no_content())
}

/// One step of `volume.create` or `volume.delete`.
pub fn run_job(job: &Job) -> JobOutcome {
    let id = serde_json::from_str::<Value>(&job.payload)
        .ok()
        .and_then(|p| p["id"].as_str().map(String::from))
        .unwrap_or_default();
    if !is_uuid(&id) {
        return JobOutcome::Failed(("InvalidJob".into(), "no volume id".into()));
    }
    let outcome = match job.kind.as_str() {
        JOB_CREATE => provision(&id),
        JOB_DELETE => destroy(&id),
        other => Err(ApiError::internal(format!("unknown job kind {other}"))),
    };
    match outcome {
        Ok(result) => JobOutcome::Done(result.to_string()),
        Err(e) => JobOutcome::Failed((e.code.to_string(), e.message)),
    }
}

/// `creating` → `ready` with an address on the first network, or `failed`.
fn provision(id: &str) -> ApiResult<Value> {
    for _ in 0..8 {
        let Some(stored) = VOLUMES.get::<Volume>(id)? else {
            return Ok(json!({"state": "deleted"}));
        };
        let mut volume = stored.value;
        if volume.state != "creating" {
            return Ok(json!({"state": volume.state}));
        }
        match take_address(&volume)? {
            Some((network, ip)) => {
                volume.filesystem_path = Some(format!("{ip}:/exports/data"));
                volume.address = Some((network, ip));
                volume.state = "ready".into();
            }
            None => volume.state = "failed".into(),
        }
        match storage::batch(&[VOLUMES.put_op(&stored.key, &volume, Some(stored.version))?]) {
            Ok(_) => return Ok(json!({"state": volume.state})),
            Err(e) if matches!(e.error, StorageError::Conflict(_)) => {
                if let Some((network, ip)) = &volume.address {
                    networks::release(network, ip)?;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::in_use(
        "the volume kept changing while being created",
    ))
}

/// The first free address of the volume's first network, claimed for it.
fn take_address(volume: &Volume) -> ApiResult<Option<(String, String)>> {
    let Some(network_id) = volume.networks.first() else {
        return Ok(None);
    };
    let Some(network) = fabrics::network(&volume.account, network_id)? else {
        return Ok(None);
    };
    Ok(
        networks::claim_next(&network.value, &volume.account, &volume.id)?
            .map(|ip| (network.value.id.clone(), ip)),
    )
}

/// `deleting` → gone, its address given back.
fn destroy(id: &str) -> ApiResult<Value> {
    let Some(stored) = VOLUMES.get::<Volume>(id)? else {
        return Ok(json!({"state": "deleted"}));
    };
    if let Some((network, ip)) = &stored.value.address {
        networks::release(network, ip)?;
    }
    storage::batch(&[VOLUMES.delete_op(&stored.key, Some(stored.version))])?;
    Ok(json!({"state": "deleted"}))
}
