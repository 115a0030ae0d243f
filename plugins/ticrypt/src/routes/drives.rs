//! Drives: `GET /api/drives` for drive tokens, and the admin routes that
//! create, attach (as a hypervisor disk of a VM), detach and delete them.

use tessera_sdk::hypervisor as hv;
use tessera_sdk::{Params, Request, Response};

use crate::auth::{Caller, find_account};
use crate::errors::{ApiError, ApiResult};
use crate::fields::Fields;
use crate::lock::TeamLock;
use crate::model::{Attachment, DriveInfo, DriveState, MIB, StoredDrive, new_id, now_millis};
use crate::quota::{self, DRIVE_STORAGE, Usage};
use crate::store::{self, DRIVES, PROJECTS};

/// Largest drive: 1 PiB.
const MAX_CAPACITY: u64 = 1 << 50;

pub fn list(_: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    let drives: Vec<DriveInfo> = store::all::<StoredDrive>(DRIVES)?
        .into_iter()
        .map(|d| d.info)
        .collect();
    Ok(Response::json(200, &drives))
}

const CREATE_FIELDS: &[&str] = &[
    "name", "owner", "capacity", "format", "realmID", "team", "project", "poolID", "diskType",
    "cache", "io", "noBackup", "settings", "writable",
];

pub fn create(req: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    let body = Fields::from_body(req)?;
    body.only(CREATE_FIELDS)?;
    let name = body.text("name", 256)?;
    let owner = find_account(&body.text("owner", 256)?)?;
    let capacity = body
        .opt_range("capacity", 1, MAX_CAPACITY)?
        .ok_or_else(|| ApiError::missing("capacity"))?;
    let realm_id = body
        .opt_str("realmID", 64)?
        .unwrap_or_else(store::default_realm_id);
    store::realm(&realm_id)?;
    let team = body.opt_str("team", 64)?;
    // Held until the drive is stored, so its capacity is seen by the next check.
    let _lock = match &team {
        Some(team_id) => {
            let (team, _) = store::team(team_id)?;
            let lock = TeamLock::acquire(&team.id)?;
            check_team_storage(&team, &owner.id, capacity)?;
            Some(lock)
        }
        None => None,
    };
    let project = body.opt_str("project", 64)?;
    if let Some(project) = &project
        && PROJECTS.get::<serde_json::Value>(project)?.is_none()
    {
        return Err(ApiError::not_found("ProjectNotFound", "project", project));
    }
    let now = now_millis();
    let drive = StoredDrive {
        info: DriveInfo {
            id: new_id(),
            name,
            owner: owner.id,
            capacity,
            format: body.opt_str("format", 32)?.unwrap_or_else(|| "ext4".into()),
            no_backup: body.opt_bool("noBackup")?.unwrap_or(true),
            settings: body.opt_json_object("settings")?,
            writer: None,
            readers: Vec::new(),
            created: now,
            changed: None,
            attached: None,
            writable: body.opt_bool("writable")?.unwrap_or(true),
            pool_id: body.opt_str("poolID", 256)?,
            team,
            project,
            realm_id,
            disk_type: body.opt_choice("diskType", &["qcow2", "raw"])?,
            cache: body.opt_choice(
                "cache",
                &[
                    "default",
                    "none",
                    "writethrough",
                    "writeback",
                    "directsync",
                    "unsafe",
                ],
            )?,
            io: body.opt_choice("io", &["native", "threads", "io_uring"])?,
            state: DriveState::Ready,
            state_change: Some(now),
            has_snapshot: false,
        },
        attachments: Vec::new(),
    };
    DRIVES.insert(&drive.info.id, &drive)?;
    Ok(Response::json(200, &drive.info))
}

/// A team drive counts against the team's and its owner's `drives` storage.
fn check_team_storage(
    team: &crate::model::TeamInfo,
    owner_id: &str,
    capacity: u64,
) -> ApiResult<()> {
    let drives = store::all::<StoredDrive>(DRIVES)?;
    let sum = |owner: Option<&str>| {
        drives
            .iter()
            .filter(|d| d.info.team.as_deref() == Some(team.id.as_str()))
            .filter(|d| owner.is_none_or(|o| d.info.owner == o))
            .map(|d| d.info.capacity)
            .sum::<u64>()
    };
    let asked = Usage::storage(DRIVE_STORAGE, capacity);
    quota::check(
        &team.team_quotas,
        &Usage::storage(DRIVE_STORAGE, sum(None)),
        &asked,
        "team",
    )?;
    quota::check(
        &team.per_user_quotas,
        &Usage::storage(DRIVE_STORAGE, sum(Some(owner_id))),
        &asked,
        "per-user",
    )
}

fn load(params: &Params) -> ApiResult<(StoredDrive, u64)> {
    let id = params.get("id").unwrap_or_default();
    DRIVES
        .get::<StoredDrive>(id)?
        .map(|v| (v.value, v.version))
        .ok_or_else(|| ApiError::not_found("DriveNotFound", "drive", id))
}

pub fn delete(_: &Request, _: &Caller, params: &Params) -> ApiResult<Response> {
    let (drive, version) = load(params)?;
    if !drive.attachments.is_empty() {
        return Err(ApiError::new(
            409,
            "DriveAttached",
            "detach the drive from its VMs first",
        ));
    }
    DRIVES.delete(&drive.info.id, Some(version))?;
    Ok(Response::new(204))
}

/// Attach to a VM as a new hypervisor disk of the drive's capacity:
/// `{"vm": ID, "mode": "ReadWrite" | "ReadOnly"}`. One writer, or any readers.
pub fn attach(req: &Request, caller: &Caller, params: &Params) -> ApiResult<Response> {
    let body = Fields::from_body(req)?;
    body.only(&["vm", "mode"])?;
    let vm = body.text("vm", 128)?;
    let writable = body
        .opt_choice("mode", &["ReadWrite", "ReadOnly"])?
        .as_deref()
        != Some("ReadOnly");
    let (mut drive, version) = load(params)?;
    if drive.attachments.iter().any(|a| a.vm == vm) {
        return Err(ApiError::new(
            409,
            "DriveAttached",
            "the drive is attached to that VM already",
        ));
    }
    if writable && !drive.info.writable {
        return Err(ApiError::new(
            409,
            "DriveReadOnly",
            "the drive cannot be written to",
        ));
    }
    if drive.info.writer.is_some() || (writable && !drive.attachments.is_empty()) {
        return Err(ApiError::new(
            409,
            "DriveBusy",
            "a drive has one read-write VM or any number of read-only VMs",
        ));
    }
    let disk = hv::add_disk(
        &vm,
        drive.info.capacity.div_ceil(MIB),
        &caller.account.login,
    )?;
    let now = now_millis();
    drive.attachments.push(Attachment {
        vm: vm.clone(),
        disk: disk.id,
        writable,
    });
    if writable {
        drive.info.writer = Some(vm);
    } else {
        drive.info.readers.push(vm);
    }
    drive.info.attached = Some(now);
    settle(&mut drive, now);
    DRIVES.put(&drive.info.id, &drive, Some(version))?;
    Ok(Response::json(200, &drive.info))
}

/// Detach from a VM (`{"vm": ID}`), removing the disk that backed it there.
pub fn detach(req: &Request, caller: &Caller, params: &Params) -> ApiResult<Response> {
    let body = Fields::from_body(req)?;
    body.only(&["vm"])?;
    let vm = body.text("vm", 128)?;
    let (mut drive, version) = load(params)?;
    let at = drive
        .attachments
        .iter()
        .position(|a| a.vm == vm)
        .ok_or_else(|| {
            ApiError::new(
                409,
                "DriveNotAttached",
                "the drive is not attached to that VM",
            )
        })?;
    let attachment = drive.attachments.remove(at);
    match hv::remove_disk(&vm, &attachment.disk, &caller.account.login) {
        // A VM that is gone took its disks with it.
        Ok(()) | Err(hv::HvError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    drive.info.readers.retain(|r| r != &vm);
    if drive.info.writer.as_deref() == Some(vm.as_str()) {
        drive.info.writer = None;
    }
    settle(&mut drive, now_millis());
    DRIVES.put(&drive.info.id, &drive, Some(version))?;
    Ok(Response::json(200, &drive.info))
}

/// The state that follows from the attachments, stamped when it changes.
fn settle(drive: &mut StoredDrive, now: u64) {
    let state = if drive.info.writer.is_some() {
        DriveState::ReadWrite
    } else if !drive.info.readers.is_empty() {
        DriveState::ReadOnly
    } else {
        DriveState::Ready
    };
    if state != drive.info.state {
        drive.info.state = state;
        drive.info.state_change = Some(now);
    }
    drive.info.changed = Some(now);
}
