//! ListMachines, GetMachine, CreateMachine, the machine actions (start, stop, reboot,
//! resize, rename, enable/disable firewall and deletion protection) and DeleteMachine,
//! on the hypervisor primitive's VMs. A machine belongs to the account whose id is its
//! VM's owner. Listing pages and filters in the primitive's SQL (`query-vms`), never in
//! the plugin; the few CloudAPI fields the primitive does not keep (package, brand,
//! firewall) are in the `machine_extras` collection, read once per page.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tessera_sdk::Params;
use tessera_sdk::hypervisor::{
    self as hv, Image, Network, Vm, VmAction, VmFilter, VmQuery, VmSpec,
};
use tessera_sdk::storage::{self, Collection, Filter};

use crate::affinity;
use crate::compute::{self, api_state, hv_error, object};
use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;
use crate::protocol::clock::iso8601;
use crate::protocol::inputs::paging;
use crate::resources::{images, packages};

/// Per machine, what CloudAPI shows that the hypervisor does not keep; key: the VM id.
pub const EXTRAS: Collection = Collection::new("machine_extras");

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Extras {
    pub vm: String,
    pub account: String,
    /// The package's id.
    #[serde(default)]
    pub package: Option<String>,
    /// `kvm` or `bhyve` when asked for at create.
    #[serde(default)]
    pub brand: Option<String>,
    #[serde(default)]
    pub firewall_enabled: bool,
    /// The package a resize under way moves to: shown once its job has completed,
    /// which is what `triton instance resize -w` waits for.
    #[serde(default)]
    pub resizing: Option<String>,
}

/// Whether the machine's newest resize has completed (its audit entry succeeded).
fn resize_done(vm: &Vm) -> bool {
    hv::audit(&vm.id)
        .ok()
        .and_then(|entries| entries.into_iter().find(|e| e.action == "resize"))
        .is_some_and(|e| e.success)
}

/// The package the machine has: a finished resize's target, else the one it was made with.
fn package_of(vm: &Vm, extras: &Extras) -> Option<String> {
    match &extras.resizing {
        Some(target) if resize_done(vm) => Some(target.clone()),
        _ => extras.package.clone(),
    }
}

/// Records a finished resize's package as the machine's own.
fn settle_resize(vm: &Vm, extras: &mut Extras, version: Option<u64>) -> ApiResult<()> {
    if extras.resizing.is_some() && resize_done(vm) {
        extras.package = extras.resizing.take();
        save_extras(extras, version)?;
    }
    Ok(())
}

fn ensure_indexes() -> ApiResult<()> {
    EXTRAS.ensure_index("by_vm", &["vm"], true)?;
    EXTRAS.ensure_index("by_account_brand", &["account", "brand"], false)?;
    Ok(())
}

/// The extras of many machines in one query.
pub fn extras_of(ids: &[String]) -> ApiResult<HashMap<String, Extras>> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(500) {
        let values = chunk.iter().map(|id| json!(id)).collect();
        let page = EXTRAS
            .query()
            .filter(Filter::is_in("vm", values))
            .fetch::<Extras>()?;
        for item in page.items {
            found.insert(item.value.vm.clone(), item.value);
        }
    }
    Ok(found)
}

pub fn extras(vm: &str) -> ApiResult<(Extras, Option<u64>)> {
    Ok(match EXTRAS.get::<Extras>(vm)? {
        Some(stored) => (stored.value, Some(stored.version)),
        None => (
            Extras {
                vm: vm.to_string(),
                ..Extras::default()
            },
            None,
        ),
    })
}

fn save_extras(extras: &Extras, version: Option<u64>) -> ApiResult<()> {
    ensure_indexes()?;
    let op = EXTRAS.put_op(&extras.vm, extras, Some(version.unwrap_or(0)))?;
    storage::batch(&[op])?;
    Ok(())
}

/// What rendering a page of machines needs once: images (for brand and type),
/// networks (netmask, gateway) and the request's `credentials` flag.
pub struct Lookup {
    images: HashMap<String, Image>,
    packages: Vec<packages::Package>,
    networks: HashMap<String, Network>,
    credentials: bool,
}

impl Lookup {
    pub fn load(ctx: &Ctx<'_>) -> ApiResult<Lookup> {
        Lookup::new(
            &ctx.settings,
            ctx.inputs.boolean("credentials")?.unwrap_or(false),
        )
    }

    /// Outside a request (the changefeed): `credentials` says whether to show them.
    pub fn new(settings: &crate::settings::Settings, credentials: bool) -> ApiResult<Lookup> {
        let images = hv::list_images()
            .map_err(hv_error)?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let networks = hv::list_networks()
            .map_err(hv_error)?
            .into_iter()
            .map(|n| (n.id.clone(), n))
            .collect();
        Ok(Lookup {
            images,
            packages: packages::all(settings),
            networks,
            credentials,
        })
    }
}

/// `(type, brand)` for a machine: the brand asked for, else from its image's type.
fn brand(image: Option<&Image>, extras: Option<&Extras>) -> (&'static str, String) {
    let image_type = image.map(|i| i.image_type.as_str()).unwrap_or("zvol");
    let derived = match image_type {
        "zone-dataset" | "smartmachine" => "joyent",
        "lx-dataset" => "lx",
        "docker" => "lx",
        _ => "bhyve",
    };
    let brand = extras
        .and_then(|e| e.brand.clone())
        .unwrap_or_else(|| derived.to_string());
    let kind = if brand == "bhyve" || brand == "kvm" {
        "virtualmachine"
    } else {
        "smartmachine"
    };
    (kind, brand)
}

/// A machine as CloudAPI shows it.
pub fn machine_json(vm: &Vm, extras: Option<&Extras>, lookup: &Lookup) -> Value {
    let image = lookup.images.get(&vm.image);
    let (kind, brand) = brand(image, extras);
    let package = extras
        .and_then(|e| package_of(vm, e))
        .and_then(|p| packages::find_in(&lookup.packages, &p))
        .or_else(|| packages::matching(&lookup.packages, vm.cpus, vm.ram_mib, vm.disk_mib))
        .map(|p| p.name)
        .unwrap_or_default();
    let mut metadata = object(&vm.metadata);
    if !lookup.credentials {
        metadata.remove("credentials");
    }
    let nics: Vec<Value> = vm
        .nics
        .iter()
        .map(|nic| {
            let network = lookup.networks.get(&nic.network);
            let mut out = json!({
                "mac": nic.mac,
                "primary": nic.primary,
                "network": nic.network,
                "state": nic.state,
            });
            if let Some(ip) = &nic.ip {
                out["ip"] = json!(ip);
            }
            if let Some(network) = network {
                if let Some(mask) = netmask(&network.subnet) {
                    out["netmask"] = json!(mask);
                }
                if let Some(gateway) = &network.gateway {
                    out["gateway"] = json!(gateway);
                }
            }
            out
        })
        .collect();
    let disks: Vec<Value> = vm.disks.iter().map(|d| disk_json(d, vm)).collect();
    let mut out = json!({
        "id": vm.id,
        "name": vm.name,
        "type": kind,
        "brand": brand,
        "state": api_state(vm.state),
        "image": vm.image,
        "ips": vm.ips,
        "memory": vm.ram_mib,
        "disk": vm.disk_mib,
        "metadata": metadata,
        "tags": object(&vm.tags),
        "created": iso8601(vm.created),
        "updated": iso8601(vm.updated),
        "docker": false,
        "networks": vm.nics.iter().map(|n| n.network.clone()).collect::<Vec<_>>(),
        "primaryIp": vm.ips.first().cloned().unwrap_or_default(),
        "nics": nics,
        "firewall_enabled": extras.is_some_and(|e| e.firewall_enabled),
        "deletion_protection": vm.deletion_protection,
        "compute_node": vm.node.clone().unwrap_or_default(),
        "package": package,
        "dns_names": [],
    });
    if kind == "virtualmachine" {
        out["disks"] = Value::Array(disks);
        out["flexible"] = json!(false);
    }
    out
}

/// A disk as the disk endpoints and a bhyve machine's `disks` show it.
pub fn disk_json(disk: &tessera_sdk::hypervisor::Disk, vm: &Vm) -> Value {
    let state = match api_state(vm.state) {
        "deleted" => "deleted",
        "failed" => "failed",
        _ => "running",
    };
    // Boot disk first, each on the next PCI function, as bhyve numbers them.
    let slot = vm.disks.iter().position(|d| d.id == disk.id).unwrap_or(0);
    json!({"id": disk.id, "size": disk.size_mib, "boot": disk.boot, "state": state,
           "pci_slot": format!("0:4:{slot}")})
}

/// `255.255.0.0` for `10.88.0.0/16`.
fn netmask(subnet: &str) -> Option<String> {
    let bits: u32 = subnet.split_once('/')?.1.parse().ok()?;
    if bits > 32 || subnet.contains(':') {
        return None;
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Some(std::net::Ipv4Addr::from(mask).to_string())
}

pub fn list(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let inputs = &ctx.inputs;
    let (offset, limit) = paging(inputs)?;
    let empty = |limit: u64| {
        Ok(Reply::ok(json!([]))
            .with_header("x-resource-count", "0")
            .with_header("x-query-limit", limit.to_string()))
    };
    if inputs.boolean("docker")? == Some(true) {
        // No instance here is a Docker container.
        return empty(limit);
    }
    let mut query = VmQuery {
        filter: VmFilter {
            owner: Some(ctx.account.id.clone()),
            state: None,
            name: None,
            image: None,
            node: None,
            tag: None,
            offset,
            limit: Some(limit),
        },
        tags: Vec::new(),
        ram_mib: None,
        tombstone: inputs.boolean("tombstone")?.unwrap_or(false),
    };
    if inputs.string("tags")?.as_deref() == Some("*") {
        // `tags=*` ignores every other filter.
        query.tags.push("*".into());
    } else {
        query.filter.name = inputs.string("name")?;
        query.filter.image = inputs.string("image")?;
        if let Some(state) = inputs.string("state")? {
            query.filter.state = Some(compute::state_filter(&state)?);
        }
        query.ram_mib = inputs.integer("memory")?;
        for (key, value) in inputs.prefixed("tag.") {
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            query.tags.push(format!("{key}={value}"));
        }
    }
    let lookup = Lookup::load(ctx)?;
    let more = kind_conditions(
        ctx,
        &lookup,
        inputs.string("brand")?.as_deref(),
        inputs.string("type")?.as_deref(),
    )?;
    let page = match more {
        Some(more) => hv::query_vms_more(&query, &more),
        None => hv::query_vms(&query),
    }
    .map_err(hv_error)?;
    let ids: Vec<String> = page.vms.iter().map(|vm| vm.id.clone()).collect();
    let extras = extras_of(&ids)?;
    let out: Vec<Value> = page
        .vms
        .iter()
        .map(|vm| machine_json(vm, extras.get(&vm.id), &lookup))
        .collect();
    Ok(Reply::ok(Value::Array(out))
        .with_header("x-resource-count", page.total.to_string())
        .with_header("x-query-limit", limit.to_string()))
}

/// The `brand` and `type` filters as conditions the primitive's SQL applies,
/// so paging and `x-resource-count` honour them. Both follow from the image's
/// type, except `kvm` and `bhyve`, which the machine's extras tell apart.
fn kind_conditions(
    ctx: &Ctx<'_>,
    lookup: &Lookup,
    brand_filter: Option<&str>,
    type_filter: Option<&str>,
) -> ApiResult<Option<hv::VmQueryMore>> {
    if brand_filter.is_none() && type_filter.is_none() {
        return Ok(None);
    }
    let images: Vec<String> = lookup
        .images
        .values()
        .filter(|image| {
            let (kind, derived) = brand(Some(image), None);
            let brand_ok = match brand_filter {
                None => true,
                // Only a virtual machine's image can give either.
                Some("kvm" | "bhyve") => kind == "virtualmachine",
                Some(b) => derived == b,
            };
            brand_ok && type_filter.is_none_or(|t| t == kind)
        })
        .map(|image| image.id.clone())
        .collect();
    let mut more = hv::VmQueryMore {
        images: Some(images),
        ids: None,
        not_ids: Vec::new(),
    };
    if let Some(b @ ("kvm" | "bhyve")) = brand_filter {
        ensure_indexes()?;
        let kvm: Vec<String> = EXTRAS
            .query()
            .filter(Filter::and(vec![
                Filter::eq("account", ctx.account.id.clone()),
                Filter::eq("brand", "kvm"),
            ]))
            .fetch::<Extras>()?
            .items
            .into_iter()
            .map(|item| item.value.vm)
            .collect();
        if b == "kvm" {
            more.ids = Some(kvm);
        } else {
            more.not_ids = kvm;
        }
    }
    Ok(Some(more))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::machine(ctx, p.get("machine").unwrap_or_default())?;
    let (mut extras, version) = extras(&vm.id)?;
    settle_resize(&vm, &mut extras, version)?;
    let body = machine_json(&vm, Some(&extras), &Lookup::load(ctx)?);
    if vm.state == hv::VmState::Deleted {
        // What `triton instance delete -w` waits for.
        return Ok(Reply {
            status: 410,
            body: Some(body),
            headers: Vec::new(),
        });
    }
    Ok(Reply::ok(body))
}

/// Names CloudAPI accepts: letters, digits, `_`, `.`, `-`, starting with a letter or digit.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() <= 189
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A metadata value as stored: strings as given, anything else JSON-encoded.
pub fn metadata_value(value: &Value) -> Value {
    match value {
        Value::String(_) => value.clone(),
        other => Value::String(other.to_string()),
    }
}

/// A tag value as stored: strings, numbers and booleans as given.
pub fn tag_value(key: &str, value: &Value) -> ApiResult<Value> {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(value.clone()),
        _ => Err(ApiError::invalid_argument(format!(
            "tag {key} must be a string, number or boolean"
        ))),
    }
}

pub fn create(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let inputs = &ctx.inputs;
    let image_id = inputs.required("image")?;
    let package = match inputs.string("package")? {
        Some(wanted) => packages::find(&ctx.settings, &wanted).ok_or_else(|| {
            ApiError::invalid_argument(format!("package {wanted} does not exist"))
        })?,
        None => packages::all(&ctx.settings)
            .into_iter()
            .find(|p| p.spec.default)
            .ok_or_else(|| {
                ApiError::missing_parameter("Request is missing required parameter: package")
            })?,
    };
    let image = images::visible(ctx, &image_id)?
        .ok_or_else(|| ApiError::not_found(format!("image {image_id} does not exist")))?;
    if image.state != "active" {
        return Err(ApiError::invalid_argument(format!(
            "image {image_id} is {}, not active",
            image.state
        )));
    }
    // The id is chosen here so the name can use it, as Triton's does.
    let vm_id = crate::ids::new_uuid();
    let name = match inputs.string("name")? {
        Some(name) => {
            let name = name.replace("{{shortId}}", &vm_id[..8]);
            if !valid_name(&name) {
                return Err(ApiError::invalid_argument(format!(
                    "name {name:?} is invalid: use letters, digits, '_', '.' and '-', starting with a letter or digit"
                )));
            }
            name
        }
        None => vm_id[..8].to_string(),
    };
    let brand = match inputs.string("brand")? {
        None => None,
        Some(b) if (b == "bhyve" || b == "kvm") && image.image_type == "zvol" => Some(b),
        Some(b) => {
            return Err(ApiError::invalid_argument(format!(
                "brand {b} is not valid for image {} (type {})",
                image.id, image.image_type
            )));
        }
    };
    let mut tags = Map::new();
    if let Some(Value::Object(given)) = inputs.raw("tags") {
        for (key, value) in given {
            tags.insert(key.clone(), tag_value(key, value)?);
        }
    }
    for (key, value) in inputs.prefixed("tag.") {
        let value = tag_value(&key, &value)?;
        tags.insert(key, value);
    }
    let mut metadata = Map::new();
    if let Some(Value::Object(given)) = inputs.raw("metadata") {
        for (key, value) in given {
            metadata.insert(key.clone(), metadata_value(value));
        }
    }
    for (key, value) in inputs.prefixed("metadata.") {
        metadata.insert(key, metadata_value(&value));
    }
    if metadata.contains_key("credentials") {
        return Err(ApiError::invalid_argument(
            "metadata key credentials is reserved",
        ));
    }
    if let Some(credentials) = images::generated_credentials(&image) {
        metadata.insert("credentials".into(), credentials);
    }
    let (networks, addresses) = networks(ctx)?;
    let mut placement = placement(ctx)?;
    placement.vm_id = Some(vm_id);
    placement.addresses = addresses;
    // Checked before the VM exists; recorded on the volumes once it does.
    let mounts = crate::resources::volumes::mounts(ctx)?;
    let (disk_mib, data_disks) = disks(ctx, &package, &image, brand.as_deref())?;
    let spec = VmSpec {
        name,
        owner: ctx.account.id.clone(),
        image: image.id.clone(),
        cpus: package.spec.vcpus,
        ram_mib: package.spec.memory,
        disk_mib,
        networks,
        tags: Value::Object(tags).to_string(),
        metadata: Value::Object(metadata).to_string(),
        deletion_protection: inputs.boolean("deletion_protection")?.unwrap_or(false),
        data_disks,
    };
    let created = hv::create_vm_placed(&spec, &placement, &compute::caller(ctx));
    let (vm, _job) = created.map_err(|e| match e {
        hv::HvError::Conflict(why) if why.contains("in use") => ApiError::invalid_argument(why),
        hv::HvError::Conflict(why) => ApiError::invalid_argument(format!(
            "an instance named {} already exists: {why}",
            spec.name
        )),
        // The image was checked above: what is missing is a network.
        hv::HvError::NotFound(what) => ApiError::invalid_argument(format!("{what} does not exist")),
        other => hv_error(other),
    })?;
    let extras = Extras {
        vm: vm.id.clone(),
        account: ctx.account.id.clone(),
        package: Some(package.id.clone()),
        brand,
        firewall_enabled: inputs.boolean("firewall_enabled")?.unwrap_or(false),
        resizing: None,
    };
    save_extras(&extras, None)?;
    crate::resources::volumes::attach(&ctx.account.id, &mounts, &vm.id)?;
    let body = machine_json(&vm, Some(&extras), &Lookup::load(ctx)?);
    Ok(Reply::created(
        body,
        format!("/{}/machines/{}", ctx.login(), vm.id),
    ))
}

/// `networks`: network ids, or objects with `ipv4_uuid` and optionally
/// `ipv4_ips` (the NIC's chosen address, on a network of the account's own).
fn networks(ctx: &Ctx<'_>) -> ApiResult<(Vec<String>, Vec<hv::NicAddress>)> {
    let Some(items) = ctx.inputs.list("networks")? else {
        return Ok((Vec::new(), Vec::new()));
    };
    let (mut ids, mut addresses) = (Vec::new(), Vec::new());
    for item in items {
        let (id, ip) = match item {
            Value::String(id) => (id, None),
            Value::Object(object) => crate::resources::nics::network_object(&object)?,
            _ => {
                return Err(ApiError::invalid_argument(
                    "networks must be network ids or objects",
                ));
            }
        };
        if let Some(ip) = ip {
            let network = crate::resources::networks::find(ctx, &id)
                .map_err(|_| ApiError::invalid_argument(format!("network {id} does not exist")))?;
            crate::resources::nics::check_address_choosable(&network)?;
            addresses.push(hv::NicAddress {
                network: id.clone(),
                ip,
            });
        }
        ids.push(id);
    }
    Ok((ids, addresses))
}

/// `affinity` and `locality` resolved against the account's machines to the
/// nodes the new machine may (hard rules) or should (soft rules) go to.
fn placement(ctx: &Ctx<'_>) -> ApiResult<hv::Placement> {
    let rules = ctx
        .inputs
        .strings("affinity")?
        .unwrap_or_default()
        .iter()
        .map(|rule| affinity::Rule::parse(rule))
        .collect::<ApiResult<Vec<_>>>()?;
    let locality = ctx
        .inputs
        .raw("locality")
        .filter(|l| !l.is_null())
        .map(affinity::Locality::parse)
        .transpose()?;
    affinity::resolve(
        &ctx.account.id,
        &ctx.account.login,
        &rules,
        locality.as_ref(),
        None,
    )
}

/// The boot disk and the data disks. Without `disks`: the package's disk.
/// With `disks` (a bhyve machine of a `flexible_disk` package, as the spec
/// says): the first is the boot disk (its `size`, else the image's), the
/// others data disks; one size may be `"remaining"` (the package's quota less
/// the others), and together they may not pass the quota.
fn disks(
    ctx: &Ctx<'_>,
    package: &packages::Package,
    image: &Image,
    brand: Option<&str>,
) -> ApiResult<(u64, Vec<u64>)> {
    let Some(disks) = ctx.inputs.list("disks")? else {
        return Ok((package.spec.disk, Vec::new()));
    };
    if !package.spec.flexible_disk {
        return Err(ApiError::invalid_argument(format!(
            "disks may only be given with a flexible_disk package; {} is not one",
            package.name
        )));
    }
    if brand == Some("kvm") || image.image_type != "zvol" {
        return Err(ApiError::invalid_argument(
            "disks may only be given for a bhyve instance",
        ));
    }
    if disks.is_empty() {
        return Err(ApiError::invalid_argument(
            "disks must list the boot disk first",
        ));
    }
    let mut sizes = Vec::with_capacity(disks.len());
    for (index, disk) in disks.iter().enumerate() {
        let Some(disk) = disk.as_object() else {
            return Err(ApiError::invalid_argument(format!(
                "disks[{index}] must be an object"
            )));
        };
        if index > 0 && disk.get("boot") == Some(&Value::Bool(true)) {
            return Err(ApiError::invalid_argument(
                "only the first of disks is the boot disk",
            ));
        }
        sizes.push(match disk.get("size") {
            None if index == 0 => Some(image.size_mib),
            Some(Value::String(s)) if s == "remaining" => None,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => n.as_u64(),
            _ => {
                return Err(ApiError::invalid_argument(format!(
                    "disks[{index}].size must be a number of MiB or \"remaining\""
                )));
            }
        });
    }
    if sizes.iter().filter(|s| s.is_none()).count() > 1 {
        return Err(ApiError::invalid_argument(
            "only one of disks may have the size \"remaining\"",
        ));
    }
    let quota = package.spec.disk;
    let given: u64 = sizes.iter().flatten().sum();
    let Some(rest) = quota.checked_sub(given) else {
        return Err(ApiError::invalid_argument(format!(
            "the disks ({given} MiB) are more than package {}'s {quota} MiB",
            package.name
        )));
    };
    if rest == 0 && sizes.contains(&None) {
        return Err(ApiError::invalid_argument(
            "no space remains for the \"remaining\" disk",
        ));
    }
    let sizes: Vec<u64> = sizes.into_iter().map(|s| s.unwrap_or(rest)).collect();
    Ok((sizes[0], sizes[1..].to_vec()))
}

/// POST /:account/machines/:machine with `action`.
pub fn action(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let id = p.get("machine").unwrap_or_default();
    let action = ctx.inputs.required("action")?;
    let vm = compute::live_machine(ctx, id)?;
    let caller = compute::caller(ctx);
    match action.as_str() {
        "start" | "stop" | "reboot" => {
            let act = match action.as_str() {
                "start" => VmAction::Start,
                "stop" => VmAction::Stop,
                _ => VmAction::Reboot,
            };
            hv::act(&vm.id, act, &caller).map_err(hv_error)?;
        }
        "resize" => {
            let wanted = ctx.inputs.required("package")?;
            let all = packages::all(&ctx.settings);
            let package = packages::find_in(&all, &wanted).ok_or_else(|| {
                ApiError::invalid_argument(format!("package {wanted} does not exist"))
            })?;
            // A finished earlier resize becomes the package before this one starts.
            let (mut extras, version) = extras(&vm.id)?;
            settle_resize(&vm, &mut extras, version)?;
            let version = EXTRAS.get::<Extras>(&vm.id)?.map(|v| v.version);
            hv::resize(
                &vm.id,
                package.spec.vcpus,
                package.spec.memory,
                package.spec.disk.max(vm.disk_mib),
                &caller,
            )
            .map_err(hv_error)?;
            extras.account = ctx.account.id.clone();
            if extras.package.is_none() {
                // Made outside CloudAPI: its package until now is the size it had.
                extras.package =
                    packages::matching(&all, vm.cpus, vm.ram_mib, vm.disk_mib).map(|p| p.id);
            }
            extras.resizing = Some(package.id);
            save_extras(&extras, version)?;
        }
        "rename" => {
            let name = ctx.inputs.required("name")?;
            if !valid_name(&name) {
                return Err(ApiError::invalid_argument(format!(
                    "name {name:?} is invalid"
                )));
            }
            hv::rename(&vm.id, &name, &caller).map_err(|e| match e {
                hv::HvError::Conflict(why) if !why.contains("under way") => {
                    ApiError::invalid_argument(format!("an instance named {name} already exists"))
                }
                other => hv_error(other),
            })?;
        }
        "enable_firewall" | "disable_firewall" => {
            let (mut extras, version) = extras(&vm.id)?;
            settle_resize(&vm, &mut extras, version)?;
            let version = EXTRAS.get::<Extras>(&vm.id)?.map(|v| v.version);
            extras.account = ctx.account.id.clone();
            extras.firewall_enabled = action == "enable_firewall";
            save_extras(&extras, version)?;
        }
        "enable_deletion_protection" | "disable_deletion_protection" => {
            let on = action == "enable_deletion_protection";
            hv::set_deletion_protection(&vm.id, on, &caller).map_err(hv_error)?;
        }
        other => {
            return Err(ApiError::invalid_argument(format!(
                "{other} is not a valid action"
            )));
        }
    }
    Ok(Reply {
        status: 202,
        body: None,
        headers: Vec::new(),
    })
}

pub fn delete(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::live_machine(ctx, p.get("machine").unwrap_or_default())?;
    hv::act(&vm.id, VmAction::Delete, &compute::caller(ctx)).map_err(hv_error)?;
    Ok(Reply::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_cloudapi_rules() {
        assert!(valid_name("web-01.example_a"));
        assert!(!valid_name("-web"));
        assert!(!valid_name("web 1"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(190)));
    }

    #[test]
    fn netmasks_come_from_prefix_lengths() {
        assert_eq!(netmask("10.88.0.0/16").as_deref(), Some("255.255.0.0"));
        assert_eq!(netmask("192.168.1.0/24").as_deref(), Some("255.255.255.0"));
        assert_eq!(netmask("fd00::/64"), None);
    }

    #[test]
    fn brands_come_from_the_image_type_unless_asked_for() {
        assert_eq!(brand(None, None), ("virtualmachine", "bhyve".to_string()));
        let kvm = Extras {
            brand: Some("kvm".into()),
            ..Extras::default()
        };
        assert_eq!(brand(None, Some(&kvm)).1, "kvm");
    }

    #[test]
    fn metadata_values_are_strings_and_tags_are_scalars() {
        assert_eq!(metadata_value(&json!({"a": 1})), json!("{\"a\":1}"));
        assert_eq!(metadata_value(&json!("x")), json!("x"));
        assert!(tag_value("k", &json!(true)).is_ok());
        assert_eq!(tag_value("k", &json!([1])).unwrap_err().status, 409);
    }
}
