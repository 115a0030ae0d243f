//! Bricks, the hardware setups VMs are made from: `PATCH /api/vms/bricks`
//! (also `/api/vm/bricks`) creates a brick when its id is new and changes only
//! the given fields when it exists; `GET /api/vms/bricks` lists them.

use tessera_sdk::{Params, Request, Response};

use crate::auth::Caller;
use crate::errors::{ApiError, ApiResult};
use crate::fields::Fields;
use crate::model::{
    BrickInfo, BrickWhitelist, Driver, LibvirtBrickConfig, LibvirtImageRef, MIB,
    NutanixBrickConfig, VmType, new_id, now_millis,
};
use crate::routes::images;
use crate::store::{self, BRICKS};

/// Most vCPUs a brick may give a VM (the hypervisor's own limit).
const MAX_VCORES: u64 = 1024;
/// Most memory a brick may give a VM: 1 EiB.
const MAX_MEM_BYTES: u64 = 1 << 60;

const PARAM_FIELDS: &[&str] = &[
    "name",
    "description",
    "vcores",
    "maxMemBytes",
    "setup",
    "realmID",
    "libvirt",
    "nutanix",
    "whitelist",
    "externalServers",
    "format",
    "imageID",
    "noQuota",
    "params",
    "settings",
    "vmType",
];

pub fn list(_: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    Ok(Response::json(200, &store::all::<BrickInfo>(BRICKS)?))
}

pub fn edit(req: &Request, caller: &Caller, _: &Params) -> ApiResult<Response> {
    let body = Fields::from_body(req)?;
    body.only(&["brick", "id", "params"])?;
    let id = match (body.opt_str("brick", 64)?, body.opt_str("id", 64)?) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid("brick and id name different bricks"));
        }
        (Some(id), _) | (None, Some(id)) if !id.trim().is_empty() => Some(id),
        (None, None) => None,
        _ => return Err(ApiError::invalid("brick must not be empty")),
    };
    let params = body
        .opt_object("params")?
        .ok_or_else(|| ApiError::missing("params"))?;
    params.only(PARAM_FIELDS)?;
    let existing = match &id {
        Some(id) => BRICKS.get::<BrickInfo>(id)?,
        None => None,
    };
    let now = now_millis();
    let (mut brick, version) = match existing {
        Some(found) => (found.value, found.version),
        None => (
            new_brick(id.unwrap_or_else(new_id), caller, &params, now)?,
            0,
        ),
    };
    apply(&mut brick, &params)?;
    if version > 0 {
        brick.modified = Some(now);
    }
    BRICKS.put(&brick.id, &brick, Some(version))?;
    Ok(Response::json(200, &brick))
}

/// A brick with the fields a new one must be given.
fn new_brick(id: String, caller: &Caller, params: &Fields, now: u64) -> ApiResult<BrickInfo> {
    for required in ["name", "vcores", "maxMemBytes", "realmID"] {
        if !params.has(required) {
            return Err(ApiError::missing(&format!("params.{required}")));
        }
    }
    Ok(BrickInfo {
        id,
        name: String::new(),
        description: String::new(),
        setup: None,
        vcores: 0,
        max_mem_bytes: 0,
        realm_id: String::new(),
        libvirt: None,
        nutanix: None,
        whitelist: None,
        creator_id: caller.account.id.clone(),
        external_servers: Vec::new(),
        format: None,
        image_id: None,
        created: now,
        modified: None,
        no_quota: false,
        params: None,
        settings: None,
        vm_type: VmType::Secure,
    })
}

/// Apply the given fields, then check the brick as a whole against its realm.
fn apply(brick: &mut BrickInfo, p: &Fields) -> ApiResult<()> {
    if p.has("name") {
        brick.name = p.text("name", 256)?;
    }
    if let Some(description) = p.opt_str("description", 65_536)? {
        brick.description = description;
    }
    if let Some(setup) = p.opt_str("setup", 65_536)? {
        brick.setup = Some(setup);
    }
    if let Some(vcores) = p.opt_range("vcores", 1, MAX_VCORES)? {
        brick.vcores = vcores;
    }
    if let Some(memory) = p.opt_range("maxMemBytes", MIB, MAX_MEM_BYTES)? {
        brick.max_mem_bytes = memory;
    }
    if let Some(format) = p.opt_choice("format", &["linux", "windows"])? {
        brick.format = Some(format);
    }
    if let Some(vm_type) = p.opt_choice("vmType", &VmType::NAMES)? {
        brick.vm_type = VmType::parse(&vm_type).unwrap_or(VmType::Secure);
    }
    if let Some(servers) = p.opt_str_list("externalServers", 256)? {
        brick.external_servers = servers;
    }
    if let Some(no_quota) = p.opt_bool("noQuota")? {
        brick.no_quota = no_quota;
    }
    if let Some(params) = p.opt_str("params", 65_536)? {
        brick.params = Some(params);
    }
    if let Some(settings) = p.opt_str("settings", 65_536)? {
        brick.settings = Some(settings);
    }
    if let Some(whitelist) = p.opt_object("whitelist")? {
        brick.whitelist = Some(validate_whitelist(&whitelist)?);
    }
    let realm_changed = p.has("realmID");
    if realm_changed {
        brick.realm_id = p.text("realmID", 64)?;
    }
    let realm = store::realm(&brick.realm_id)?;
    let (own, other) = match realm.driver {
        Driver::Libvirt => ("libvirt", "nutanix"),
        Driver::Nutanix => ("nutanix", "libvirt"),
    };
    if p.has(other) {
        return Err(ApiError::invalid(format!(
            "params.{other} is not for realm {} (driver {own})",
            realm.id
        )));
    }
    if let Some(config) = p.opt_object("libvirt")? {
        brick.libvirt = Some(validate_libvirt(&config, brick.format.as_deref())?);
    }
    if let Some(config) = p.opt_object("nutanix")? {
        brick.nutanix = Some(validate_nutanix(&config)?);
    }
    // A config of the other driver can only be left from a former realm.
    match realm.driver {
        Driver::Libvirt => brick.nutanix = None,
        Driver::Nutanix => brick.libvirt = None,
    }
    if brick.libvirt.is_none() && brick.nutanix.is_none() {
        return Err(ApiError::missing(&format!(
            "params.{own} (realm {} has driver {own})",
            realm.id
        )));
    }
    if let Some(image_id) = p.opt_str("imageID", 64)? {
        brick.image_id = Some(images::find(&realm.id, &image_id)?.info.id);
    } else if realm_changed || p.has("libvirt") || p.has("nutanix") {
        brick.image_id = matching_image(brick, &realm.id)?;
    }
    Ok(())
}

/// The realm image the driver config names: a libvirt pool and volume, or a
/// Nutanix image id that is also one of the realm's images.
fn matching_image(brick: &BrickInfo, realm: &str) -> ApiResult<Option<String>> {
    let images = images::realm_images(realm)?;
    let found = images
        .iter()
        .find(|i| match (&brick.libvirt, &brick.nutanix) {
            (Some(l), _) => {
                i.info.info["pool"] == l.image.pool.as_str()
                    && i.info.info["volume"] == l.image.volume.as_str()
            }
            (_, Some(n)) => i.info.id == n.image_id,
            _ => false,
        });
    Ok(found.map(|i| i.info.id.clone()))
}

fn validate_libvirt(c: &Fields, format: Option<&str>) -> ApiResult<LibvirtBrickConfig> {
    c.only(&[
        "image",
        "video",
        "pty",
        "clockOffset",
        "nic",
        "devices",
        "extraXML",
        "headfullGPU",
        "deviceBusType",
    ])?;
    let image = c
        .opt_object("image")?
        .ok_or_else(|| ApiError::missing("params.libvirt.image"))?;
    image.only(&["pool", "volume"])?;
    let default_clock = if format == Some("windows") {
        "localtime"
    } else {
        "utc"
    };
    Ok(LibvirtBrickConfig {
        image: LibvirtImageRef {
            pool: image.text("pool", 256)?,
            volume: image.text("volume", 256)?,
        },
        video: c.opt_choice("video", &["vnc", "spice"])?,
        pty: c.opt_bool("pty")?.unwrap_or(false),
        clock_offset: c
            .opt_choice("clockOffset", &["utc", "localtime"])?
            .unwrap_or_else(|| default_clock.to_string()),
        nic: c
            .opt_choice("nic", &["virtio", "rtl8139"])?
            .unwrap_or_else(|| "virtio".to_string()),
        devices: c.opt_counts("devices")?.unwrap_or_default(),
        extra_xml: c.opt_str("extraXML", 65_536)?,
        headfull_gpu: c.opt_str("headfullGPU", 256)?,
        device_bus_type: c.opt_choice("deviceBusType", &["scsi", "virtio"])?,
    })
}

fn validate_nutanix(c: &Fields) -> ApiResult<NutanixBrickConfig> {
    c.only(&["imageID", "timezone", "devices", "osType", "debug"])?;
    Ok(NutanixBrickConfig {
        image_id: c.text("imageID", 256)?,
        timezone: c.opt_str("timezone", 64)?,
        devices: c.opt_counts("devices")?.unwrap_or_default(),
        os_type: c.opt_choice("osType", &["linux", "windows"])?,
        debug: c.opt_bool("debug")?.unwrap_or(false),
    })
}

/// Lists of ids. A user given by an existing login is kept by account id;
/// other entries are kept as given (the spec's own example whitelists ids
/// that need not exist yet, and an id nobody holds admits nobody).
fn validate_whitelist(w: &Fields) -> ApiResult<BrickWhitelist> {
    w.only(&["teamIDs", "userIDs"])?;
    let ids = |key: &str| -> ApiResult<Vec<String>> {
        let list = w.opt_str_list(key, 1024)?.unwrap_or_default();
        if list.iter().any(|id| id.trim().is_empty() || id.len() > 64) {
            return Err(ApiError::invalid(format!(
                "params.whitelist.{key}: every id has 1 to 64 characters"
            )));
        }
        Ok(list)
    };
    let team_ids = ids("teamIDs")?;
    let user_ids = ids("userIDs")?
        .into_iter()
        .map(|u| match tessera_sdk::auth::get_account(&u) {
            Ok(Some(account)) => account.id,
            _ => u,
        })
        .collect();
    Ok(BrickWhitelist { team_ids, user_ids })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn config(v: Value) -> Fields {
        Fields::from_value("libvirt", v, "params.libvirt.").unwrap()
    }

    #[test]
    fn libvirt_defaults_follow_the_spec() {
        let c = validate_libvirt(
            &config(json!({"image": {"pool": "p", "volume": "v"}})),
            None,
        )
        .unwrap();
        assert_eq!(
            (c.pty, c.clock_offset.as_str(), c.nic.as_str()),
            (false, "utc", "virtio")
        );
        assert!(c.video.is_none() && c.devices.is_empty());
        let windows = validate_libvirt(
            &config(json!({"image": {"pool": "p", "volume": "v"}})),
            Some("windows"),
        )
        .unwrap();
        assert_eq!(windows.clock_offset, "localtime");
    }

    #[test]
    fn libvirt_and_nutanix_configs_refuse_bad_fields_by_name() {
        for bad in [
            json!({"image": {"pool": "p"}}),
            json!({"image": {"pool": "p", "volume": "v"}, "video": "vga"}),
            json!({"image": {"pool": "p", "volume": "v"}, "devices": {"gpu": -2}}),
            json!({"image": {"pool": "p", "volume": "v"}, "cpuModel": "host"}),
        ] {
            let e = validate_libvirt(&config(bad.clone()), None).unwrap_err();
            assert!(
                e.message.contains("params.libvirt."),
                "{bad}: {}",
                e.message
            );
        }
        let n = Fields::from_value(
            "nutanix",
            json!({"imageID": "i", "debug": "true"}),
            "params.nutanix.",
        )
        .unwrap();
        assert!(validate_nutanix(&n).unwrap().debug);
        let n =
            Fields::from_value("nutanix", json!({"osType": "linux"}), "params.nutanix.").unwrap();
        assert_eq!(validate_nutanix(&n).unwrap_err().code, "MissingParameter");
    }
}
