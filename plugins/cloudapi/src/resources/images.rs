//! ListImages, GetImage, DeleteImage, UpdateImage (and sharing: `acl`, `action=share`
//! / `unshare`), CreateImageFromMachine (a kernel job: `creating`, then `active` or
//! `failed`), and the refusals of ExportImage, ImportImageFromDatacenter and
//! CloneImage (no Manta, no link to a peer datacenter, and the primitive keys images
//! by name and version site-wide, so an owned copy of the same name and version
//! cannot exist). Images are the hypervisor primitive's; the CloudAPI fields it has
//! no column for (description, homepage, tags, requirements, eula, acl, …) live in
//! the image's `extra` JSON object.

use serde_json::{Map, Value, json};
use tessera_sdk::Params;
use tessera_sdk::hypervisor::{self as hv, Image, NewImage};

use crate::compute::{self, hv_error, object};
use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;
use crate::protocol::clock::iso8601;

/// The owner shown for an image with none (the operator's), as Triton's admin UUID.
const NO_OWNER: &str = "00000000-0000-0000-0000-000000000000";

/// Fields of `extra` that UpdateImage and CreateImageFromMachine may set.
const EXTRA_FIELDS: [&str; 5] = ["description", "homepage", "eula", "acl", "tags"];

/// Whether the account may see (and provision from) the image: public, unowned,
/// owned by the account's id (machines' owner), or shared with it (`acl`).
fn may_see(ctx: &Ctx<'_>, image: &Image) -> bool {
    image.public
        || image.owner.as_deref().is_none_or(|o| o == ctx.account.id)
        || shared_with(image, &ctx.account.id)
}

/// Whether the image's `acl` names the account.
fn shared_with(image: &Image, account: &str) -> bool {
    acl(image).iter().any(|a| a == account)
}

fn acl(image: &Image) -> Vec<String> {
    object(&image.extra)
        .get("acl")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn owns(ctx: &Ctx<'_>, image: &Image) -> bool {
    image.owner.as_deref() == Some(ctx.account.id.as_str())
}

/// The image of that id if the account may see it.
pub fn visible(ctx: &Ctx<'_>, id: &str) -> ApiResult<Option<Image>> {
    Ok(hv::get_image(id)
        .map_err(hv_error)?
        .filter(|image| may_see(ctx, image)))
}

fn existing(ctx: &Ctx<'_>, id: &str) -> ApiResult<Image> {
    visible(ctx, id)?.ok_or_else(|| ApiError::not_found(format!("image {id} does not exist")))
}

/// An image as CloudAPI shows it.
pub fn image_json(image: &Image) -> Value {
    let extra = object(&image.extra);
    let mut file = json!({
        "compression": extra.get("compression").cloned().unwrap_or(json!("none")),
        "size": image.size_mib * 1024 * 1024,
    });
    if let Some(sha1) = extra.get("sha1") {
        file["sha1"] = sha1.clone();
    }
    let mut out = json!({
        "id": image.id,
        "name": image.name,
        "version": image.version,
        "os": image.os,
        "requirements": extra.get("requirements").cloned().unwrap_or(json!({})),
        "type": image.image_type,
        "files": [file],
        "published_at": iso8601(image.created),
        "owner": image.owner.clone().unwrap_or_else(|| NO_OWNER.to_string()),
        "public": image.public,
        "state": image.state,
    });
    for field in ["description", "homepage", "eula", "acl", "tags"] {
        if let Some(value) = extra.get(field) {
            out[field] = value.clone();
        }
    }
    // A failed creation's reason, as IMGAPI's error object.
    match extra.get("error") {
        Some(Value::String(message)) => {
            out["error"] = json!({"code": "InternalError", "message": message});
        }
        Some(error) => out["error"] = error.clone(),
        None => {}
    }
    out
}

pub fn list(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let inputs = &ctx.inputs;
    let state = inputs.string("state")?.unwrap_or_else(|| "active".into());
    let public = inputs.boolean("public")?;
    let texts = [
        ("name", inputs.string("name")?),
        ("os", inputs.string("os")?),
        ("version", inputs.string("version")?),
        ("owner", inputs.string("owner")?),
        ("type", inputs.string("type")?),
    ];
    let mut out = Vec::new();
    for image in hv::list_images().map_err(hv_error)? {
        if !may_see(ctx, &image)
            || (state != "all" && image.state != state)
            || public.is_some_and(|p| p != image.public)
        {
            continue;
        }
        let shown = image_json(&image);
        let matches = texts.iter().all(|(field, wanted)| match wanted {
            None => true,
            // `~text`: a substring match, as the name filter allows.
            Some(w) if *field == "name" && w.starts_with('~') => {
                shown[*field].as_str().is_some_and(|v| v.contains(&w[1..]))
            }
            Some(w) => shown[*field] == w.as_str(),
        });
        if matches {
            out.push(shown);
        }
    }
    let count = out.len();
    Ok(Reply::ok(Value::Array(out)).with_header("x-resource-count", count.to_string()))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let image = existing(ctx, p.get("image").unwrap_or_default())?;
    Ok(Reply::ok(image_json(&image)))
}

pub fn delete(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let image = existing(ctx, p.get("image").unwrap_or_default())?;
    if !owns(ctx, &image) {
        return Err(ApiError::not_authorized(format!(
            "image {} is not yours to delete",
            image.id
        )));
    }
    hv::delete_image(&image.id).map_err(|e| match e {
        hv::HvError::Conflict(why) => ApiError::in_use(why),
        other => hv_error(other),
    })?;
    Ok(Reply::no_content())
}

/// `extra` with the settable fields of the request written over it.
fn extra_with_inputs(
    ctx: &Ctx<'_>,
    mut extra: Map<String, Value>,
) -> ApiResult<Map<String, Value>> {
    for field in EXTRA_FIELDS {
        if let Some(value) = ctx.inputs.raw(field) {
            if field == "acl" {
                extra.insert(field.to_string(), acl_input(value)?);
                continue;
            }
            let ok = match field {
                "tags" => value.is_object(),
                _ => value.is_string(),
            };
            if !ok {
                return Err(ApiError::invalid_argument(format!(
                    "{field} has the wrong type"
                )));
            }
            extra.insert(field.to_string(), value.clone());
        }
    }
    Ok(extra)
}

/// `acl`: account ids, as an array or (as the spec types it) a comma-separated string.
fn acl_input(value: &Value) -> ApiResult<Value> {
    let ids: Vec<&str> = match value {
        Value::Array(items) => items.iter().map(|i| i.as_str().unwrap_or("")).collect(),
        Value::String(text) if text.trim().is_empty() => Vec::new(),
        Value::String(text) => text.split(',').map(str::trim).collect(),
        _ => vec![""],
    };
    if let Some(bad) = ids.iter().find(|id| !crate::ids::is_uuid(id)) {
        return Err(ApiError::invalid_argument(format!(
            "acl must list account ids; {bad:?} is not one"
        )));
    }
    Ok(json!(ids))
}

/// POST /:account/images: CreateImageFromMachine, or `action=import-from-datacenter`.
pub fn create(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    if let Some(action) = ctx.inputs.string("action")? {
        return match action.as_str() {
            "import-from-datacenter" => import_from_datacenter(ctx),
            other => Err(ApiError::invalid_argument(format!(
                "{other} is not a valid action"
            ))),
        };
    }
    let machine = ctx.inputs.required("machine")?;
    let name = ctx.inputs.required("name")?;
    let version = ctx
        .inputs
        .string("version")?
        .unwrap_or_else(|| "1.0.0".into());
    let vm = compute::live_machine(ctx, &machine)?;
    let origin = hv::get_image(&vm.image).map_err(hv_error)?;
    let mut extra = Map::new();
    extra.insert("origin".into(), json!(vm.image));
    if let Some(origin) = &origin
        && let Some(requirements) = object(&origin.extra).get("requirements")
    {
        extra.insert("requirements".into(), requirements.clone());
    }
    let extra = extra_with_inputs(ctx, extra)?;
    let new = NewImage {
        name,
        version,
        os: origin.as_ref().map_or("other".into(), |o| o.os.clone()),
        image_type: origin
            .as_ref()
            .map_or("zvol".into(), |o| o.image_type.clone()),
        size_mib: vm.disk_mib,
        owner: Some(ctx.account.id.clone()),
        public: false,
        extra: Value::Object(extra).to_string(),
    };
    // A job copies the disk: the image is `creating` until it is done.
    let started = hv::create_image_from_vm_job(&vm.id, &new, &compute::caller(ctx));
    let (image, job) = started.map_err(|e| match e {
        hv::HvError::Conflict(why) if !why.contains("under way") => ApiError::invalid_argument(why),
        hv::HvError::Invalid(why) if why.contains("cannot make images") => {
            ApiError::new(422, "NotAvailable", why)
        }
        other => hv_error(other),
    })?;
    Ok(Reply::created(
        image_json(&image),
        format!("/{}/images/{}", ctx.login(), image.id),
    )
    .with_header("x-joyent-jobid", job))
}

/// CloudAPI's checks, then IMGAPI's answer for a datacenter it has no image
/// store URL for: a Tessera site has none (plugins are sandboxed without
/// outbound HTTP, and the kernel keeps no peer image stores), so every
/// datacenter is unsupported, as in a Triton whose IMGAPI has no
/// `imgapiUrlFromDatacenter` entries.
fn import_from_datacenter(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let datacenter = ctx.inputs.required("datacenter")?;
    let id = ctx.inputs.required("id")?;
    if !crate::ids::is_uuid(&id) {
        return Err(ApiError::invalid_argument(format!(
            "id {id} must be a UUID"
        )));
    }
    let why = if datacenter == ctx.settings.datacenter_name {
        "cannot import into the same datacenter".to_string()
    } else {
        format!("datacenter \"{datacenter}\" is not supported")
    };
    Err(ApiError::new(
        422,
        "ValidationFailed",
        format!("{why}, valid datacenters names are: (none: this site has no peer image stores)"),
    ))
}

/// POST /:account/images/:image with `action` update, export, clone, share or unshare.
pub fn action(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let image = existing(ctx, p.get("image").unwrap_or_default())?;
    let action = ctx.inputs.required("action")?;
    match action.as_str() {
        "update" => {
            if !owns(ctx, &image) {
                return Err(ApiError::not_authorized(format!(
                    "image {} is not yours to update",
                    image.id
                )));
            }
            let extra = extra_with_inputs(ctx, object(&image.extra))?;
            let name = ctx.inputs.string("name")?;
            let version = ctx.inputs.string("version")?;
            let updated = hv::update_image(
                &image.id,
                name.as_deref(),
                version.as_deref(),
                Some(&Value::Object(extra).to_string()),
            )
            .map_err(|e| match e {
                hv::HvError::Conflict(why) => ApiError::invalid_argument(why),
                other => hv_error(other),
            })?;
            Ok(Reply::ok(image_json(&updated)))
        }
        "export" => {
            let manta_path = ctx.inputs.required("manta_path")?;
            if !owns(ctx, &image) {
                return Err(ApiError::not_authorized(format!(
                    "image {} is not yours to export",
                    image.id
                )));
            }
            // `/USER/stor/...`: the first segment names the Manta user.
            let user = manta_path
                .strip_prefix('/')
                .and_then(|p| p.split('/').next());
            if user.is_none_or(str::is_empty) {
                return Err(ApiError::invalid_argument(format!(
                    "invalid manta_path prefix {manta_path:?}, not a valid manta path"
                )));
            }
            // What IMGAPI answers in a datacenter without Manta storage.
            Err(ApiError::new(
                503,
                "StorageUnsupported",
                "storage type is unsupported: this datacenter has no Manta object store to export images to",
            ))
        }
        "share" | "unshare" => {
            if !owns(ctx, &image) {
                return Err(ApiError::new(
                    403,
                    "NotImageOwnerError",
                    format!("image {} is not yours to share", image.id),
                ));
            }
            let account = ctx.inputs.required("account")?;
            if !crate::ids::is_uuid(&account) {
                return Err(ApiError::invalid_argument(format!(
                    "account {account:?} is not an account id"
                )));
            }
            let mut ids = acl(&image);
            ids.retain(|a| *a != account);
            if action == "share" {
                ids.push(account);
            }
            let mut extra = object(&image.extra);
            extra.insert("acl".into(), json!(ids));
            let updated = hv::update_image(
                &image.id,
                None,
                None,
                Some(&Value::Object(extra).to_string()),
            )
            .map_err(hv_error)?;
            Ok(Reply::ok(image_json(&updated)))
        }
        "clone" => {
            if owns(ctx, &image) {
                return Err(ApiError::invalid_argument(format!(
                    "image {} is yours already",
                    image.id
                )));
            }
            if !shared_with(&image, &ctx.account.id) {
                return Err(ApiError::new(
                    409,
                    "ImageNotShared",
                    format!("image {} is not shared with your account", image.id),
                ));
            }
            // Flattened images have no origin chain, so the one copy is all.
            let cloned = hv::clone_image(&image.id, &ctx.account.id).map_err(hv_error)?;
            Ok(Reply::ok(image_json(&cloned)))
        }
        other => Err(ApiError::invalid_argument(format!(
            "{other} is not a valid action"
        ))),
    }
}

/// Passwords for the users an image asks to have generated (`generate_passwords` and
/// `users` in its extra fields), as CreateMachine's `metadata.credentials`.
pub fn generated_credentials(image: &Image) -> Option<Value> {
    let extra = object(&image.extra);
    if extra.get("generate_passwords").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let mut credentials = Map::new();
    for user in extra.get("users").and_then(Value::as_array)? {
        let Some(name) = user.get("name").and_then(Value::as_str) else {
            continue;
        };
        let bytes = tessera_sdk::auth::random_bytes(8);
        let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        credentials.insert(name.to_string(), json!(password));
    }
    Some(Value::Object(credentials))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(extra: &str) -> Image {
        Image {
            id: "i".into(),
            name: "alpine".into(),
            version: "1".into(),
            os: "linux".into(),
            image_type: "zvol".into(),
            size_mib: 2,
            state: "active".into(),
            owner: None,
            public: true,
            extra: extra.into(),
            created: 0,
        }
    }

    #[test]
    fn images_show_the_spec_fields() {
        let shown = image_json(&image(r#"{"description":"d","tags":{"role":"os"}}"#));
        assert_eq!(shown["files"][0]["size"], 2 * 1024 * 1024);
        assert_eq!(shown["owner"], NO_OWNER);
        assert_eq!(shown["description"], "d");
        assert_eq!(shown["tags"]["role"], "os");
        assert_eq!(shown["requirements"], json!({}));
        assert_eq!(shown["published_at"], "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn credentials_only_for_images_that_ask() {
        assert!(generated_credentials(&image("{}")).is_none());
    }
}
