//! VMs made from bricks for a team (`POST /api/vms`, `GET /api/vms`,
//! `DELETE /api/vms/<id>`). Creation goes through the hypervisor primitive
//! after the team's dates, the brick's whitelist, the image's launch limit
//! and the team and per-user quotas allow it.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_sdk::hypervisor::{self as hv, Vm, VmAction, VmFilter, VmSpec};
use tessera_sdk::storage;
use tessera_sdk::{Params, Request, Response};

use crate::auth::Caller;
use crate::errors::{ApiError, ApiResult};
use crate::fields::Fields;
use crate::lock::TeamLock;
use crate::model::{BrickInfo, MIB, TeamInfo, now_millis};
use crate::quota::{self, Usage, VM_STORAGE};
use crate::routes::images;
use crate::store::{self, BRICKS};

/// What this plugin records in a VM's `metadata` under `ticrypt`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VmRecord {
    team: String,
    brick: String,
    #[serde(rename = "realmID")]
    realm_id: String,
    vm_type: String,
    /// What the VM takes of its team's quotas.
    usage: Usage,
    /// False for a `noQuota` brick: the VM takes nothing of the quotas.
    counted: bool,
}

fn filter(tag: String, owner: Option<String>) -> VmFilter {
    VmFilter {
        owner,
        state: None,
        name: None,
        image: None,
        node: None,
        tag: Some(tag),
        offset: 0,
        limit: None,
    }
}

fn record(vm: &Vm) -> Option<VmRecord> {
    let metadata: Value = serde_json::from_str(&vm.metadata).ok()?;
    serde_json::from_value(metadata.get("ticrypt")?.clone()).ok()
}

/// What the team's live VMs (of `owner`, when given) take of its quotas.
fn team_usage(team: &str, owner: Option<&str>) -> ApiResult<Usage> {
    let page = hv::list_vms(&filter(
        format!("ticryptTeam={team}"),
        owner.map(str::to_string),
    ))?;
    let mut used = Usage::default();
    for vm in &page.vms {
        if let Some(r) = record(vm).filter(|r| r.counted) {
            used.add(&r.usage);
        }
    }
    Ok(used)
}

fn vm_json(vm: &Vm, job: Option<&str>) -> Value {
    let r = record(vm);
    let mut out = json!({
        "id": vm.id,
        "name": vm.name,
        "owner": vm.owner,
        "imageID": vm.image,
        "vcores": vm.cpus,
        "state": vm.state_name(),
        "created": vm.created,
        "modified": vm.updated,
    });
    if let Some(r) = r {
        out["team"] = json!(r.team);
        out["brick"] = json!(r.brick);
        out["realmID"] = json!(r.realm_id);
        out["vmType"] = json!(r.vm_type);
        out["maxMemBytes"] = json!(r.usage.memory);
        out["devices"] = json!(r.usage.devices);
    }
    if let Some(job) = job {
        out["job"] = json!(job);
    }
    out
}

trait StateName {
    fn state_name(&self) -> &'static str;
}

impl StateName for Vm {
    fn state_name(&self) -> &'static str {
        use hv::VmState::*;
        match self.state {
            Provisioning => "provisioning",
            Running => "running",
            Stopped => "stopped",
            Stopping => "stopping",
            Starting => "starting",
            Rebooting => "rebooting",
            Deleted => "deleted",
            Failed => "failed",
        }
    }
}

/// `?team=` narrows the list to one team's VMs.
pub fn list(req: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    let tag = match req.query_param("team") {
        Some(team) => format!("ticryptTeam={team}"),
        None => "ticrypt=true".to_string(),
    };
    let page = hv::list_vms(&filter(tag, None))?;
    let vms: Vec<Value> = page.vms.iter().map(|vm| vm_json(vm, None)).collect();
    Ok(Response::json(200, &vms))
}

/// `{brick, team, name?}`.
pub fn create(req: &Request, caller: &Caller, _: &Params) -> ApiResult<Response> {
    let body = Fields::from_body(req)?;
    body.only(&["brick", "team", "name"])?;
    let brick_id = body.text("brick", 64)?;
    let brick = BRICKS
        .get::<BrickInfo>(&brick_id)?
        .ok_or_else(|| ApiError::not_found("BrickNotFound", "brick", &brick_id))?
        .value;
    let (team, _) = store::team(&body.text("team", 64)?)?;
    admit(&brick, &team, caller)?;
    // Held until the VM exists, so its usage is seen by the next check.
    let _lock = TeamLock::acquire(&team.id)?;
    let image_id = brick.image_id.clone().ok_or_else(|| {
        ApiError::new(
            409,
            "BrickHasNoImage",
            "the brick names no image of its realm; set params.imageID",
        )
    })?;
    let image = images::find(&brick.realm_id, &image_id)?;
    if let Some(limit) = image.info.limit {
        let running = hv::list_vms(&filter(format!("ticryptImage={image_id}"), None))?.total;
        if running >= limit {
            return Err(ApiError::new(
                409,
                "ImageLimitReached",
                format!("image {image_id} allows {limit} VMs at once"),
            ));
        }
    }
    let usage = Usage {
        cores: brick.vcores,
        memory: brick.max_mem_bytes,
        storage: Usage::storage(VM_STORAGE, image.hv.size_mib * MIB).storage,
        devices: brick.devices(),
    };
    if !brick.no_quota {
        quota::check(
            &team.team_quotas,
            &team_usage(&team.id, None)?,
            &usage,
            "team",
        )?;
        let mine = team_usage(&team.id, Some(&caller.account.login))?;
        quota::check(&team.per_user_quotas, &mine, &usage, "per-user")?;
    }
    let name = match body.opt_str("name", 128)? {
        Some(name) => name,
        None => {
            let prefix: String = brick.name.chars().take(100).collect();
            format!("{prefix}-{}", storage::next_id("vm-names")?)
        }
    };
    let record = VmRecord {
        team: team.id.clone(),
        brick: brick.id.clone(),
        realm_id: brick.realm_id.clone(),
        vm_type: format!("{:?}", brick.vm_type),
        usage,
        counted: !brick.no_quota,
    };
    let spec = VmSpec {
        name,
        owner: caller.account.login.clone(),
        image: image.hv.id.clone(),
        cpus: brick.vcores as u32,
        ram_mib: brick.max_mem_bytes.div_ceil(MIB),
        disk_mib: image.hv.size_mib,
        networks: Vec::new(),
        tags: json!({
            "ticrypt": true,
            "ticryptTeam": team.id,
            "ticryptBrick": brick.id,
            "ticryptImage": image_id,
        })
        .to_string(),
        metadata: json!({ "ticrypt": record }).to_string(),
        deletion_protection: false,
        data_disks: Vec::new(),
    };
    let (vm, job) = hv::create_vm(&spec, &caller.account.login)?;
    Ok(Response::json(200, &vm_json(&vm, Some(&job))))
}

/// The team must be within its dates and the caller on the brick's whitelist.
fn admit(brick: &BrickInfo, team: &TeamInfo, caller: &Caller) -> ApiResult<()> {
    if !team.active_at(now_millis()) {
        return Err(ApiError::new(
            403,
            "TeamInactive",
            "the team may not use resources outside its start and end dates",
        ));
    }
    if let Some(w) = &brick.whitelist {
        let allowed = w.user_ids.contains(&caller.account.id) || w.team_ids.contains(&team.id);
        if !allowed {
            return Err(ApiError::new(
                403,
                "NotWhitelisted",
                "neither you nor the team is on the brick's whitelist",
            ));
        }
    }
    Ok(())
}

pub fn delete(_: &Request, caller: &Caller, params: &Params) -> ApiResult<Response> {
    let id = params.get("id").unwrap_or_default();
    let vm = hv::get_vm(id)?
        .filter(|vm| record(vm).is_some())
        .ok_or_else(|| ApiError::not_found("VmNotFound", "vm", id))?;
    let job = hv::act(&vm.id, VmAction::Delete, &caller.account.login)?;
    let vm = hv::get_vm(id)?.unwrap_or(vm);
    Ok(Response::json(200, &vm_json(&vm, Some(&job))))
}
