//! VM images (`GET`/`POST /api/vms/images`, also under `/api/vm/images`).
//! Images are the hypervisor's images: this plugin adds them with
//! `import-image` and keeps the tiCrypt fields in the image's `extra` object
//! under `ticrypt`. Images the site was seeded with belong to the default realm.

use serde_json::{Value, json};
use tessera_sdk::hypervisor::{self as hv, NewImage};
use tessera_sdk::{Params, Request, Response};

use crate::auth::Caller;
use crate::errors::{ApiError, ApiResult};
use crate::fields::{Fields, body_or_query};
use crate::model::{Driver, ImageInfo, ImageMeta, MIB, now_millis};
use crate::store;

/// Largest image: 64 TiB.
const MAX_SIZE: u64 = 1 << 46;
/// Hypervisor size of an image created without a size.
const DEFAULT_SIZE_MIB: u64 = 1024;

/// An image of a realm, with what the hypervisor knows of it.
pub struct RealmImage {
    pub hv: hv::Image,
    pub info: ImageInfo,
    /// The id of the version-0 image of its family.
    pub base: String,
}

pub fn list(req: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    let body = Fields::from_body(req)?;
    let realm = body_or_query(req, &body, "realm")?.ok_or_else(|| ApiError::missing("realm"))?;
    store::realm(&realm)?;
    let images: Vec<ImageInfo> = realm_images(&realm)?.into_iter().map(|i| i.info).collect();
    Ok(Response::json(200, &images))
}

/// Every image of a realm, oldest first.
pub fn realm_images(realm: &str) -> ApiResult<Vec<RealmImage>> {
    let default_realm = store::default_realm_id();
    let mut images: Vec<RealmImage> = hv::list_images()?
        .into_iter()
        .map(|image| describe(image, &default_realm))
        .filter(|(_, image_realm)| image_realm == realm)
        .map(|(image, _)| image)
        .collect();
    images.sort_by_key(|i| i.info.created);
    Ok(images)
}

pub fn find(realm: &str, id: &str) -> ApiResult<RealmImage> {
    realm_images(realm)?
        .into_iter()
        .find(|i| i.info.id == id)
        .ok_or_else(|| ApiError::not_found("ImageNotFound", "image in this realm", id))
}

/// The image as `ImageInfo`, with its realm. A hypervisor image this plugin
/// did not create is a base image of the default realm in pool `tessera`.
fn describe(image: hv::Image, default_realm: &str) -> (RealmImage, String) {
    let extra: Value = serde_json::from_str(&image.extra).unwrap_or(Value::Null);
    let meta = extra
        .get("ticrypt")
        .and_then(|m| serde_json::from_value::<ImageMeta>(m.clone()).ok());
    let (info, realm, base) = match meta {
        Some(meta) => (
            ImageInfo {
                id: image.id.clone(),
                name: meta.name,
                description: meta.description,
                size: meta.size,
                image_type: meta.image_type,
                info: meta.info,
                created: image.created,
                modified: Some(image.created),
                version: meta.version,
                parent: meta.parent,
                limit: meta.limit,
                settings: meta.settings,
            },
            meta.realm,
            if meta.base.is_empty() {
                image.id.clone()
            } else {
                meta.base
            },
        ),
        None => (
            ImageInfo {
                id: image.id.clone(),
                name: Some(image.name.clone()),
                description: extra
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                size: Some(image.size_mib * MIB),
                image_type: matches!(image.os.as_str(), "linux" | "windows")
                    .then(|| image.os.clone()),
                info: json!({
                    "pool": "tessera",
                    "volume": format!("{}-{}", image.name, image.version),
                    "deviceBusType": "virtio",
                }),
                created: image.created,
                modified: Some(image.created),
                version: 0,
                parent: None,
                limit: None,
                settings: None,
            },
            default_realm.to_string(),
            image.id.clone(),
        ),
    };
    (
        RealmImage {
            hv: image,
            info,
            base,
        },
        realm,
    )
}

const CREATE_FIELDS: &[&str] = &[
    "realm",
    "name",
    "description",
    "size",
    "imageType",
    "info",
    "limit",
    "parent",
    "settings",
];

/// Creates an image; a body with nothing but `realm` lists the realm's
/// images instead, as the spec's "Get VM Images" curl example sends a POST.
pub fn create(req: &Request, caller: &Caller, params: &Params) -> ApiResult<Response> {
    let body = Fields::from_body(req)?;
    if body.has("realm") && body.field_count() == 1 {
        return list(req, caller, params);
    }
    body.only(CREATE_FIELDS)?;
    let realm = store::realm(&body.text("realm", 64)?)?;
    let info = body
        .opt_object("info")?
        .ok_or_else(|| ApiError::missing("info"))?;
    let info = validate_info(realm.driver, &info)?;
    let name = body.opt_str("name", 128)?;
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::invalid("name must not be empty"));
    }
    let size = body.opt_range("size", 1, MAX_SIZE)?;
    let parent = match body.opt_str("parent", 64)? {
        Some(id) => Some(find(&realm.id, &id)?),
        None => None,
    };
    let (version, base) = match &parent {
        Some(parent) => {
            let family_max = realm_images(&realm.id)?
                .iter()
                .filter(|i| i.base == parent.base)
                .map(|i| i.info.version)
                .max()
                .unwrap_or(0);
            (family_max + 1, Some(parent.base.clone()))
        }
        None => (0, None),
    };
    let meta = ImageMeta {
        realm: realm.id.clone(),
        name: name.clone(),
        description: body.opt_str("description", 4096)?,
        size,
        image_type: body.opt_choice("imageType", &["windows", "linux"])?,
        info: info.clone(),
        version,
        parent: parent.as_ref().map(|p| p.info.id.clone()),
        // A base image is its own family; its id is known only once created,
        // so an empty base is filled in below.
        base: base.clone().unwrap_or_default(),
        limit: body.opt_range("limit", 1, 1_000_000)?,
        settings: body.opt_json_object("settings")?,
    };
    let hv_name = name
        .or_else(|| parent.as_ref().map(|p| p.hv.name.clone()))
        .or_else(|| {
            info.get("volume")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("{}-image-{}", realm.id, now_millis()));
    let new = NewImage {
        name: hv_name.clone(),
        version: version.to_string(),
        os: meta.image_type.clone().unwrap_or_else(|| "linux".into()),
        image_type: realm.driver.name().to_string(),
        size_mib: size
            .map(|s| s.div_ceil(MIB))
            .or_else(|| parent.as_ref().map(|p| p.hv.size_mib))
            .unwrap_or(DEFAULT_SIZE_MIB),
        owner: None,
        public: true,
        extra: json!({ "ticrypt": meta, "description": meta.description }).to_string(),
    };
    let image = hv::import_image(&new).map_err(|e| match e {
        hv::HvError::Conflict(_) => ApiError::new(
            409,
            "ImageExists",
            format!("an image named {hv_name:?} with version {version} exists"),
        ),
        other => other.into(),
    })?;
    let (created, _) = describe(image, &store::default_realm_id());
    Ok(Response::json(200, &created.info))
}

/// `info` must be the realm driver's shape: `LibvirtExtraInfo` or `NutanixExtraInfo`.
fn validate_info(driver: Driver, info: &Fields) -> ApiResult<Value> {
    match driver {
        Driver::Libvirt => {
            info.only(&["pool", "volume", "deviceBusType"])
                .map_err(|e| for_driver(e, driver))?;
            Ok(json!({
                "pool": info.text("pool", 256)?,
                "volume": info.text("volume", 256)?,
                "deviceBusType": info
                    .opt_choice("deviceBusType", &["scsi", "virtio"])?
                    .ok_or_else(|| ApiError::missing("info.deviceBusType"))?,
            }))
        }
        Driver::Nutanix => {
            info.only(&["sourceType", "timezone"])
                .map_err(|e| for_driver(e, driver))?;
            let mut out = json!({
                "sourceType": info
                    .opt_choice("sourceType", &["NDFS", "VolumeGroup", "VMDisk"])?
                    .ok_or_else(|| ApiError::missing("info.sourceType"))?,
            });
            if let Some(tz) = info.opt_str("timezone", 64)? {
                out["timezone"] = json!(tz);
            }
            Ok(out)
        }
    }
}

fn for_driver(e: ApiError, driver: Driver) -> ApiError {
    ApiError::invalid(format!(
        "{} (the realm's driver is {})",
        e.message,
        driver.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(v: Value) -> Fields {
        Fields::from_value("info", v, "info.").unwrap()
    }

    #[test]
    fn libvirt_info_needs_pool_volume_and_a_known_bus() {
        let ok = validate_info(
            Driver::Libvirt,
            &info(json!({"pool": "p", "volume": "v", "deviceBusType": "SCSI"})),
        )
        .unwrap();
        assert_eq!(
            ok,
            json!({"pool": "p", "volume": "v", "deviceBusType": "scsi"})
        );
        for (bad, code) in [
            (json!({"pool": "p", "volume": "v"}), "MissingParameter"),
            (
                json!({"pool": "p", "volume": "v", "deviceBusType": "ide"}),
                "InvalidParameter",
            ),
            (
                json!({"pool": "", "volume": "v", "deviceBusType": "scsi"}),
                "InvalidParameter",
            ),
            (json!({"sourceType": "NDFS"}), "InvalidParameter"),
        ] {
            let e = validate_info(Driver::Libvirt, &info(bad.clone())).unwrap_err();
            assert_eq!(e.code, code, "{bad}: {}", e.message);
        }
    }

    #[test]
    fn nutanix_info_needs_a_known_source_type() {
        let ok =
            validate_info(Driver::Nutanix, &info(json!({"sourceType": "VolumeGroup"}))).unwrap();
        assert_eq!(ok, json!({"sourceType": "VolumeGroup"}));
        let e = validate_info(
            Driver::Nutanix,
            &info(json!({"pool": "p", "volume": "v", "deviceBusType": "scsi"})),
        )
        .unwrap_err();
        assert!(e.message.contains("driver is nutanix"), "{}", e.message);
        assert!(validate_info(Driver::Nutanix, &info(json!({"sourceType": "Tape"}))).is_err());
    }
}
