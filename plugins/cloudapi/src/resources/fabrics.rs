//! The account's fabric: VLANs (0–4095) and the layer-3 IPv4 networks on them, in plugin
//! storage. ListFabricVLANs, Create/Get/Update/DeleteFabricVLAN, ListFabricNetworks,
//! Create/Get/Update/DeleteFabricNetwork. Subnets must be private (RFC 1918), must not
//! overlap another network on the same VLAN, and hold the provision range, gateway and
//! route gateways.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tessera_sdk::Params;
use tessera_sdk::hypervisor as hv;
use tessera_sdk::storage::{self, Collection, Filter, Versioned};

use crate::compute::hv_error;
use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::ids::new_uuid;
use crate::protocol::Reply;

pub const VLANS: Collection = Collection::new("fabric_vlans");
pub const NETWORKS: Collection = Collection::new("fabric_networks");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vlan {
    pub account: String,
    pub vlan_id: u16,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FabricNetwork {
    pub id: String,
    pub account: String,
    pub vlan_id: u16,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub subnet: String,
    pub provision_start_ip: String,
    pub provision_end_ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default)]
    pub resolvers: Vec<String>,
    #[serde(default)]
    pub routes: Map<String, Value>,
    pub internet_nat: bool,
}

impl FabricNetwork {
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "id": self.id,
            "name": self.name,
            "public": false,
            "fabric": true,
            "subnet": self.subnet,
            "provision_start_ip": self.provision_start_ip,
            "provision_end_ip": self.provision_end_ip,
            "resolvers": self.resolvers,
            "internet_nat": self.internet_nat,
            "vlan_id": self.vlan_id,
        });
        if let Some(gateway) = &self.gateway {
            out["gateway"] = json!(gateway);
        }
        if let Some(description) = &self.description {
            out["description"] = json!(description);
        }
        if !self.routes.is_empty() {
            out["routes"] = Value::Object(self.routes.clone());
        }
        out
    }

    pub fn net(&self) -> Option<Ipv4Net> {
        self.subnet.parse().ok()
    }
}

fn vlan_json(vlan: &Vlan) -> Value {
    let mut out = json!({"name": vlan.name, "vlan_id": vlan.vlan_id});
    if let Some(description) = &vlan.description {
        out["description"] = json!(description);
    }
    out
}

fn vlan_key(account: &str, vlan_id: u16) -> String {
    format!("{account}:{vlan_id}")
}

fn ensure_indexes() -> ApiResult<()> {
    VLANS.ensure_index("fabric_vlans_by_name", &["account", "name"], true)?;
    NETWORKS.ensure_index("fabric_networks_by_name", &["account", "name"], true)?;
    NETWORKS.ensure_index("fabric_networks_by_vlan", &["account", "vlan_id"], false)?;
    Ok(())
}

pub fn vlans_of(account: &str) -> ApiResult<Vec<Versioned<Vlan>>> {
    Ok(VLANS
        .query()
        .filter(Filter::eq("account", account))
        .order_by("vlan_id", false)
        .fetch::<Vlan>()?
        .items)
}

/// The account's fabric networks, on one VLAN or all.
pub fn networks_of(
    account: &str,
    vlan_id: Option<u16>,
) -> ApiResult<Vec<Versioned<FabricNetwork>>> {
    let mut filters = vec![Filter::eq("account", account)];
    if let Some(vlan_id) = vlan_id {
        filters.push(Filter::eq("vlan_id", vlan_id));
    }
    Ok(NETWORKS
        .query()
        .filter(Filter::and(filters))
        .order_by("name", false)
        .fetch::<FabricNetwork>()?
        .items)
}

/// One of the account's fabric networks by id.
pub fn network(account: &str, id: &str) -> ApiResult<Option<Versioned<FabricNetwork>>> {
    Ok(NETWORKS
        .get::<FabricNetwork>(id)?
        .filter(|n| n.value.account == account))
}

fn vlan_param(p: &Params) -> ApiResult<u16> {
    let text = p.get("vlan_id").unwrap_or_default();
    text.parse::<u16>()
        .ok()
        .filter(|id| *id <= 4095)
        .ok_or_else(|| ApiError::not_found(format!("VLAN {text} does not exist")))
}

/// The account's VLAN `vlan_id`, if it has one.
pub fn vlan(account: &str, vlan_id: u16) -> ApiResult<Option<Vlan>> {
    Ok(VLANS
        .get::<Vlan>(&vlan_key(account, vlan_id))?
        .map(|v| v.value))
}

fn existing_vlan(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Versioned<Vlan>> {
    let vlan_id = vlan_param(p)?;
    VLANS
        .get::<Vlan>(&vlan_key(&ctx.account.id, vlan_id))?
        .ok_or_else(|| ApiError::not_found(format!("VLAN {vlan_id} does not exist")))
}

fn check_vlan_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!(
            "name {name:?} must be 1 to 64 of A-Z a-z 0-9 _ - ."
        )))
    }
}

fn description(ctx: &Ctx<'_>) -> ApiResult<Option<String>> {
    let description = ctx.inputs.string("description")?;
    if description.as_ref().is_some_and(|d| d.len() > 255) {
        return Err(ApiError::invalid_argument(
            "description has at most 255 characters",
        ));
    }
    Ok(description)
}

fn name_taken(e: storage::BatchError, what: &str) -> ApiError {
    match e.error {
        storage::StorageError::UniqueViolation(_) | storage::StorageError::AlreadyExists => {
            ApiError::invalid_argument(format!("{what} is already in use"))
        }
        _ => ApiError::from(e),
    }
}

pub fn list_vlans(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let vlans: Vec<Value> = vlans_of(&ctx.account.id)?
        .iter()
        .map(|v| vlan_json(&v.value))
        .collect();
    Ok(Reply::ok(Value::Array(vlans)))
}

pub fn create_vlan(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let name = ctx.inputs.required("name")?;
    check_vlan_name(&name)?;
    if !ctx.inputs.has("vlan_id") {
        return Err(ApiError::missing_parameter("vlan_id is required"));
    }
    let vlan_id = ctx
        .inputs
        .integer("vlan_id")?
        .filter(|id| *id <= 4095)
        .ok_or_else(|| ApiError::invalid_argument("vlan_id must be a number from 0 to 4095"))?
        as u16;
    let vlan = Vlan {
        account: ctx.account.id.clone(),
        vlan_id,
        name,
        description: description(ctx)?,
    };
    ensure_indexes()?;
    storage::batch(&[VLANS.insert_op(&vlan_key(&vlan.account, vlan_id), &vlan)?])
        .map_err(|e| name_taken(e, &format!("VLAN {vlan_id} or name {:?}", vlan.name)))?;
    let location = format!("/{}/fabrics/default/vlans/{vlan_id}", ctx.login());
    Ok(Reply::created(vlan_json(&vlan), location))
}

pub fn get_vlan(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    Ok(Reply::ok(vlan_json(&existing_vlan(ctx, p)?.value)))
}

pub fn update_vlan(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let stored = existing_vlan(ctx, p)?;
    let mut vlan = stored.value;
    if let Some(name) = ctx.inputs.string("name")? {
        check_vlan_name(&name)?;
        vlan.name = name;
    }
    if let Some(description) = description(ctx)? {
        vlan.description = Some(description);
    }
    ensure_indexes()?;
    storage::batch(&[VLANS.put_op(&stored.key, &vlan, Some(stored.version))?])
        .map_err(|e| name_taken(e, &format!("name {:?}", vlan.name)))?;
    Ok(Reply {
        status: 202,
        ..Reply::ok(vlan_json(&vlan))
    })
}

pub fn delete_vlan(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let stored = existing_vlan(ctx, p)?;
    if !networks_of(&ctx.account.id, Some(stored.value.vlan_id))?.is_empty() {
        return Err(ApiError::in_use(format!(
            "VLAN {} has networks on it; delete them first",
            stored.value.vlan_id
        )));
    }
    storage::batch(&[VLANS.delete_op(&stored.key, Some(stored.version))])?;
    Ok(Reply::no_content())
}

pub fn list_networks(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vlan = existing_vlan(ctx, p)?;
    let networks: Vec<Value> = networks_of(&ctx.account.id, Some(vlan.value.vlan_id))?
        .iter()
        .map(|n| n.value.to_json())
        .collect();
    Ok(Reply::ok(Value::Array(networks)))
}

fn existing_network(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Versioned<FabricNetwork>> {
    let vlan = existing_vlan(ctx, p)?;
    let id = p.get("id").unwrap_or_default();
    network(&ctx.account.id, id)?
        .filter(|n| n.value.vlan_id == vlan.value.vlan_id)
        .ok_or_else(|| ApiError::not_found(format!("network {id} does not exist")))
}

pub fn get_network(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    Ok(Reply::ok(existing_network(ctx, p)?.value.to_json()))
}

pub fn create_network(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vlan = existing_vlan(ctx, p)?;
    let name = ctx.inputs.required("name")?;
    check_vlan_name(&name)?;
    let subnet = ctx.inputs.required("subnet")?;
    let start = ctx.inputs.required("provision_start_ip")?;
    let end = ctx.inputs.required("provision_end_ip")?;
    let mut network = FabricNetwork {
        id: new_uuid(),
        account: ctx.account.id.clone(),
        vlan_id: vlan.value.vlan_id,
        name,
        description: description(ctx)?,
        subnet,
        provision_start_ip: start,
        provision_end_ip: end,
        gateway: ctx.inputs.string("gateway")?.filter(|g| !g.is_empty()),
        resolvers: resolvers(ctx)?.unwrap_or_default(),
        routes: routes(ctx)?.unwrap_or_default(),
        internet_nat: ctx.inputs.boolean("internet_nat")?.unwrap_or(true),
    };
    validate(&mut network)?;
    let others = networks_of(&ctx.account.id, Some(network.vlan_id))?;
    check_overlap(&network, &others)?;
    ensure_indexes()?;
    // The primitive's network (what NICs attach to) first; its id is the record's.
    // Its name only has to be unique site-wide, and stays put when this one's is changed.
    let made = hv::create_network(&primitive_network(
        &network,
        &format!("fabric-{}", network.id),
    ))
    .map_err(hv_error)?;
    network.id = made.id.clone();
    let written = NETWORKS
        .insert_op(&network.id, &network)
        .map_err(ApiError::from)
        .and_then(|op| {
            storage::batch(&[op])
                .map_err(|e| name_taken(e, &format!("network name {:?}", network.name)))
        });
    if let Err(e) = written {
        // No half-made network: the primitive's goes again.
        let _ = hv::delete_network(&made.id);
        return Err(e);
    }
    let location = format!(
        "/{}/fabrics/default/vlans/{}/networks/{}",
        ctx.login(),
        network.vlan_id,
        network.id
    );
    Ok(Reply::created(network.to_json(), location))
}

pub fn update_network(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let stored = existing_network(ctx, p)?;
    let mut network = stored.value.clone();
    for fixed in ["subnet", "gateway", "vlan_id", "internet_nat"] {
        if ctx.inputs.has(fixed) {
            let now = network.to_json()[fixed].clone();
            let asked = ctx.inputs.raw(fixed).cloned().unwrap_or(Value::Null);
            let same = now == asked
                || now.as_u64().map(|n| n.to_string()) == asked.as_str().map(String::from);
            if !same {
                return Err(ApiError::invalid_argument(format!(
                    "{fixed} of a fabric network cannot be changed"
                )));
            }
        }
    }
    if let Some(name) = ctx.inputs.string("name")? {
        check_vlan_name(&name)?;
        network.name = name;
    }
    if let Some(description) = description(ctx)? {
        network.description = Some(description);
    }
    if let Some(start) = ctx.inputs.string("provision_start_ip")? {
        network.provision_start_ip = start;
    }
    if let Some(end) = ctx.inputs.string("provision_end_ip")? {
        network.provision_end_ip = end;
    }
    if let Some(resolvers) = resolvers(ctx)? {
        network.resolvers = resolvers;
    }
    if let Some(routes) = routes(ctx)? {
        network.routes = routes;
    }
    validate(&mut network)?;
    ensure_indexes()?;
    let twin = twin_of(&network.id)?;
    if let Some(twin) = &twin {
        hv::update_network(&twin.id, &primitive_network(&network, &twin.name)).map_err(hv_error)?;
    }
    let written = NETWORKS
        .put_op(&stored.key, &network, Some(stored.version))
        .map_err(ApiError::from)
        .and_then(|op| {
            storage::batch(&[op])
                .map_err(|e| name_taken(e, &format!("network name {:?}", network.name)))
        });
    if let Err(e) = written {
        if let Some(twin) = &twin {
            let _ = hv::update_network(&twin.id, &primitive_network(&stored.value, &twin.name));
        }
        return Err(e);
    }
    Ok(Reply {
        status: 202,
        ..Reply::ok(network.to_json())
    })
}

/// Refused while a machine has a NIC on it or a volume is reachable on it.
pub fn delete_network(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let stored = existing_network(ctx, p)?;
    let id = &stored.value.id;
    if crate::vms::all()?
        .iter()
        .any(|vm| vm.nics.iter().any(|n| &n.network == id))
    {
        return Err(ApiError::in_use(format!("network {id} has machines on it")));
    }
    if crate::resources::volumes::on_network(&ctx.account.id, id)? {
        return Err(ApiError::in_use(format!("network {id} has volumes on it")));
    }
    let ips = crate::resources::networks::records_of(id)?;
    let mut writes = vec![NETWORKS.delete_op(&stored.key, Some(stored.version))];
    for ip in &ips {
        writes.push(crate::resources::networks::IPS.delete_op(&ip.key, Some(ip.version)));
    }
    storage::batch(&writes)?;
    // The record goes first so no new machine finds the network by it; if the
    // primitive still has a NIC on it (a machine created meanwhile), it comes back.
    match hv::delete_network(id) {
        Ok(()) | Err(hv::HvError::NotFound(_)) => Ok(Reply::no_content()),
        Err(e) => {
            let mut restore = vec![NETWORKS.insert_op(&stored.key, &stored.value)?];
            for ip in &ips {
                restore.push(crate::resources::networks::IPS.insert_op(&ip.key, &ip.value)?);
            }
            if let Err(lost) = storage::batch(&restore) {
                tessera_sdk::error!("network {id} could not be restored: {:?}", lost.error);
            }
            Err(match e {
                hv::HvError::Conflict(_) => {
                    ApiError::in_use(format!("network {id} has machines on it"))
                }
                other => hv_error(other),
            })
        }
    }
}

/// The primitive's network behind a fabric network, if it has one (networks made
/// before fabric networks lived in the primitive have none).
fn twin_of(id: &str) -> ApiResult<Option<hv::Network>> {
    Ok(hv::list_networks()
        .map_err(hv_error)?
        .into_iter()
        .find(|n| n.id == id))
}

/// The fabric network as the primitive keeps it (`name` is the primitive's own).
fn primitive_network(network: &FabricNetwork, name: &str) -> hv::NewNetwork {
    hv::NewNetwork {
        name: name.to_string(),
        owner: network.account.clone(),
        vlan: Some(network.vlan_id),
        subnet: network.subnet.clone(),
        provision_start: Some(network.provision_start_ip.clone()),
        provision_end: Some(network.provision_end_ip.clone()),
        gateway: network.gateway.clone(),
        resolvers: network.resolvers.clone(),
        routes: Value::Object(network.routes.clone()).to_string(),
    }
}

fn resolvers(ctx: &Ctx<'_>) -> ApiResult<Option<Vec<String>>> {
    let Some(list) = ctx.inputs.strings("resolvers")? else {
        return Ok(None);
    };
    if list.len() > 8 {
        return Err(ApiError::invalid_argument("at most 8 resolvers"));
    }
    for ip in &list {
        ip.parse::<Ipv4Addr>().map_err(|_| {
            ApiError::invalid_argument(format!("resolver {ip:?} is not an IPv4 address"))
        })?;
    }
    Ok(Some(list))
}

fn routes(ctx: &Ctx<'_>) -> ApiResult<Option<Map<String, Value>>> {
    let routes = match ctx.inputs.raw("routes") {
        None => return Ok(None),
        Some(Value::Object(map)) => map.clone(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => return Err(ApiError::invalid_argument("routes must be an object")),
        },
        Some(_) => return Err(ApiError::invalid_argument("routes must be an object")),
    };
    Ok(Some(routes))
}

fn ip_in(text: &str, what: &str, net: &Ipv4Net) -> ApiResult<Ipv4Addr> {
    let ip: Ipv4Addr = text.parse().map_err(|_| {
        ApiError::invalid_argument(format!("{what} {text:?} is not an IPv4 address"))
    })?;
    let usable = net.contains(&ip)
        && (net.prefix_len() >= 31 || (ip != net.network() && ip != net.broadcast()));
    if !usable {
        return Err(ApiError::invalid_argument(format!(
            "{what} {ip} is not a usable address of subnet {net}"
        )));
    }
    Ok(ip)
}

/// Whether the subnet lies in the private ranges of RFC 1918.
fn is_private(net: &Ipv4Net) -> bool {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
        .iter()
        .filter_map(|r| r.parse::<Ipv4Net>().ok())
        .any(|range| range.contains(net))
}

/// Checks the subnet and every address against it; normalises the subnet's text.
fn validate(network: &mut FabricNetwork) -> ApiResult<()> {
    let net: Ipv4Net = network.subnet.parse().map_err(|_| {
        ApiError::invalid_argument(format!(
            "subnet {:?} is not an IPv4 subnet in CIDR notation",
            network.subnet
        ))
    })?;
    if net.trunc() != net {
        return Err(ApiError::invalid_argument(format!(
            "subnet {net} has host bits set: use {}",
            net.trunc()
        )));
    }
    if !(8..=30).contains(&net.prefix_len()) {
        return Err(ApiError::invalid_argument(
            "subnet prefix length must be between 8 and 30",
        ));
    }
    if !is_private(&net) {
        return Err(ApiError::invalid_argument(format!(
            "subnet {net} must be within 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
        )));
    }
    network.subnet = net.to_string();
    let start = ip_in(&network.provision_start_ip, "provision_start_ip", &net)?;
    let end = ip_in(&network.provision_end_ip, "provision_end_ip", &net)?;
    if u32::from(start) > u32::from(end) {
        return Err(ApiError::invalid_argument(
            "provision_start_ip must not be after provision_end_ip",
        ));
    }
    if let Some(gateway) = &network.gateway {
        ip_in(gateway, "gateway", &net)?;
    }
    for (destination, via) in &network.routes {
        let ok_destination =
            destination.parse::<Ipv4Net>().is_ok() || destination.parse::<Ipv4Addr>().is_ok();
        if !ok_destination {
            return Err(ApiError::invalid_argument(format!(
                "route destination {destination:?} is not an IPv4 subnet or address"
            )));
        }
        let Some(via) = via.as_str() else {
            return Err(ApiError::invalid_argument("route gateways must be strings"));
        };
        via.parse::<Ipv4Addr>().map_err(|_| {
            ApiError::invalid_argument(format!("route gateway {via:?} is not an IPv4 address"))
        })?;
    }
    Ok(())
}

fn check_overlap(network: &FabricNetwork, others: &[Versioned<FabricNetwork>]) -> ApiResult<()> {
    let Some(net) = network.net() else {
        return Ok(());
    };
    for other in others {
        if let Some(theirs) = other.value.net()
            && (theirs.contains(&net) || net.contains(&theirs))
        {
            return Err(ApiError::invalid_argument(format!(
                "subnet {net} overlaps network {} ({theirs}) on VLAN {}",
                other.value.name, other.value.vlan_id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(subnet: &str, start: &str, end: &str, gateway: Option<&str>) -> FabricNetwork {
        FabricNetwork {
            id: "n".into(),
            account: "a".into(),
            vlan_id: 2,
            name: "n".into(),
            description: None,
            subnet: subnet.into(),
            provision_start_ip: start.into(),
            provision_end_ip: end.into(),
            gateway: gateway.map(String::from),
            resolvers: vec![],
            routes: Map::new(),
            internet_nat: true,
        }
    }

    #[test]
    fn spec_example_is_valid() {
        let mut n = network("10.50.1.0/24", "10.50.1.5", "10.50.1.20", Some("10.50.1.1"));
        n.routes = serde_json::from_str(r#"{"10.25.1.0/21":"10.50.1.2"}"#).unwrap();
        validate(&mut n).unwrap();
    }

    #[test]
    fn bad_networks_are_refused() {
        for (subnet, start, end, gateway) in [
            ("10.50.1.0/33", "10.50.1.5", "10.50.1.20", None),
            ("10.50.1.1/24", "10.50.1.5", "10.50.1.20", None),
            ("8.8.8.0/24", "8.8.8.5", "8.8.8.20", None),
            ("10.50.1.0/24", "10.50.2.5", "10.50.1.20", None),
            ("10.50.1.0/24", "10.50.1.20", "10.50.1.5", None),
            ("10.50.1.0/24", "10.50.1.0", "10.50.1.5", None),
            ("10.50.1.0/24", "10.50.1.5", "10.50.1.255", None),
            ("10.50.1.0/24", "10.50.1.5", "10.50.1.20", Some("10.50.9.1")),
            ("10.0.0.0/7", "10.0.0.5", "10.0.0.20", None),
            ("nonsense", "10.0.0.5", "10.0.0.20", None),
        ] {
            assert!(
                validate(&mut network(subnet, start, end, gateway)).is_err(),
                "{subnet} {start} {end} {gateway:?}"
            );
        }
    }

    #[test]
    fn overlapping_subnets_are_refused() {
        let existing = Versioned {
            key: "x".into(),
            version: 1,
            created: 0,
            updated: 0,
            value: network("10.50.0.0/16", "10.50.1.5", "10.50.1.20", None),
        };
        let inside = network("10.50.1.0/24", "10.50.1.5", "10.50.1.20", None);
        assert!(check_overlap(&inside, std::slice::from_ref(&existing)).is_err());
        let apart = network("10.51.1.0/24", "10.51.1.5", "10.51.1.20", None);
        assert!(check_overlap(&apart, &[existing]).is_ok());
    }
}
