//! ListNetworks, GetNetwork, ListNetworkIPs, GetNetworkIP, UpdateNetworkIP.
//!
//! The networks an account can use are the hypervisor primitive's public networks and
//! those it owns, plus its fabric networks (`fabrics`). An address's state is put
//! together from the network (its gateway and broadcast address are managed), the
//! machines' NICs (who holds it), and the reservations kept in plugin storage, one
//! document per network and address: two requests reserving the same address write the
//! same key, so an address is never held twice (the second insert or stale put loses
//! and is retried on the fresh document).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::hypervisor as hv;
use tessera_sdk::storage::{self, Collection, Filter, StorageError, Versioned};

use crate::compute::hv_error;
use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;
use crate::protocol::inputs::paging;
use crate::resources::fabrics::{self, FabricNetwork};
use crate::vms;

/// Reservations, keyed `NETWORK/IP`.
pub const IPS: Collection = Collection::new("network_ips");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpRecord {
    pub network: String,
    pub ip: String,
    pub reserved: bool,
    /// The account that set it.
    pub account: String,
    /// What holds it besides a NIC (a volume's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

/// A network as the account sees it.
pub enum Network {
    Site(hv::Network),
    Fabric(FabricNetwork),
}

impl Network {
    pub fn id(&self) -> &str {
        match self {
            Network::Site(n) => &n.id,
            Network::Fabric(n) => &n.id,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Network::Site(n) => &n.name,
            Network::Fabric(n) => &n.name,
        }
    }

    pub fn public(&self) -> bool {
        matches!(self, Network::Site(n) if n.public)
    }

    fn subnet(&self) -> Option<IpNet> {
        match self {
            Network::Site(n) => n.subnet.parse().ok(),
            Network::Fabric(n) => n.subnet.parse().ok(),
        }
    }

    fn gateway(&self) -> Option<IpAddr> {
        match self {
            Network::Site(n) => n.gateway.as_deref(),
            Network::Fabric(n) => n.gateway.as_deref(),
        }
        .and_then(|g| g.parse().ok())
    }

    pub fn to_json(&self) -> Value {
        match self {
            Network::Fabric(n) => n.to_json(),
            Network::Site(n) => {
                let mut out = json!({
                    "id": n.id,
                    "name": n.name,
                    "public": n.public,
                    "fabric": false,
                    "subnet": n.subnet,
                });
                if let Some(gateway) = &n.gateway {
                    out["gateway"] = json!(gateway);
                }
                if let Some(vlan) = n.vlan {
                    out["vlan_id"] = json!(vlan);
                }
                out
            }
        }
    }
}

/// Every network the account may use: the site's public and own networks, then its fabric.
pub fn visible(ctx: &Ctx<'_>) -> ApiResult<Vec<Network>> {
    let account = &ctx.account;
    let fabric = fabrics::networks_of(&account.id, None)?;
    let mut out: Vec<Network> = hv::list_networks()
        .map_err(hv_error)?
        .into_iter()
        // A fabric network is the primitive's network of the same id, shown from its record.
        .filter(|n| !fabric.iter().any(|f| f.value.id == n.id))
        .filter(|n| {
            n.public
                || n.owner.is_none()
                || n.owner.as_deref() == Some(account.id.as_str())
                || n.owner.as_deref() == Some(account.login.as_str())
        })
        .map(Network::Site)
        .collect();
    out.extend(fabric.into_iter().map(|n| Network::Fabric(n.value)));
    Ok(out)
}

/// A usable network by id (or, as the CLIs also send, by name).
pub fn find(ctx: &Ctx<'_>, id_or_name: &str) -> ApiResult<Network> {
    let mut all = visible(ctx)?;
    let at = all
        .iter()
        .position(|n| n.id() == id_or_name)
        .or_else(|| all.iter().position(|n| n.name() == id_or_name))
        .ok_or_else(|| ApiError::not_found(format!("network {id_or_name} does not exist")))?;
    Ok(all.swap_remove(at))
}

pub fn list(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let networks: Vec<Value> = visible(ctx)?.iter().map(Network::to_json).collect();
    Ok(Reply::ok(Value::Array(networks)))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    Ok(Reply::ok(
        find(ctx, p.get("id").unwrap_or_default())?.to_json(),
    ))
}

pub fn records_of(network: &str) -> ApiResult<Vec<Versioned<IpRecord>>> {
    Ok(IPS
        .query()
        .filter(Filter::eq("network", network))
        .fetch::<IpRecord>()?
        .items)
}

/// One address as the account sees it.
#[derive(Debug, Clone, Default)]
struct IpState {
    reserved: bool,
    managed: bool,
    owner: Option<String>,
    belongs_to: Option<String>,
}

fn ip_json(ip: &IpAddr, state: &IpState, account_id: &str) -> Value {
    let mut out =
        json!({"ip": ip.to_string(), "reserved": state.reserved, "managed": state.managed});
    if let Some(owner) = &state.owner {
        out["owner_uuid"] = json!(owner);
        if owner == account_id
            && let Some(vm) = &state.belongs_to
        {
            out["belongs_to_uuid"] = json!(vm);
        }
    }
    out
}

/// The managed addresses: the gateway, and an IPv4 subnet's network and broadcast addresses.
fn managed(network: &Network) -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Some(gateway) = network.gateway() {
        out.push(gateway);
    }
    if let Some(IpNet::V4(net)) = network.subnet()
        && net.prefix_len() < 31
    {
        out.push(IpAddr::V4(net.network()));
        out.push(IpAddr::V4(net.broadcast()));
    }
    out
}

/// The addresses of the network that are managed, held or reserved. On a public network
/// only the account's own.
fn addresses(ctx: &Ctx<'_>, network: &Network) -> ApiResult<BTreeMap<IpAddr, IpState>> {
    addresses_of(&ctx.account.id, ctx.login(), network)
}

fn addresses_of(
    account_id: &str,
    login: &str,
    network: &Network,
) -> ApiResult<BTreeMap<IpAddr, IpState>> {
    let mut out: BTreeMap<IpAddr, IpState> = BTreeMap::new();
    let public = network.public();
    if !public {
        for ip in managed(network) {
            out.insert(
                ip,
                IpState {
                    reserved: true,
                    managed: true,
                    ..IpState::default()
                },
            );
        }
    }
    let machines = if public {
        vms::of_account(account_id, login)?
    } else {
        vms::all()?
    };
    for vm in &machines {
        for nic in vm.nics.iter().filter(|n| n.network == network.id()) {
            if let Some(ip) = nic.ip.as_deref().and_then(|i| i.parse().ok()) {
                let owner = if vms::owned_by(vm, account_id, login) {
                    account_id.to_string()
                } else {
                    vm.owner.clone()
                };
                let entry = out.entry(ip).or_default();
                entry.owner = Some(owner);
                entry.belongs_to = Some(vm.id.clone());
            }
        }
    }
    for record in records_of(network.id())? {
        let Ok(ip) = record.value.ip.parse::<IpAddr>() else {
            continue;
        };
        if public && record.value.account != account_id {
            continue;
        }
        if record.value.reserved || out.contains_key(&ip) {
            let entry = out.entry(ip).or_default();
            entry.reserved |= record.value.reserved;
            if let Some(holder) = &record.value.holder {
                entry.owner = Some(record.value.account.clone());
                entry.belongs_to = Some(holder.clone());
            }
        }
    }
    Ok(out)
}

pub fn list_ips(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let network = find(ctx, p.get("id").unwrap_or_default())?;
    let (offset, limit) = paging(&ctx.inputs)?;
    let all = addresses(ctx, &network)?;
    let page: Vec<Value> = all
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|(ip, state)| ip_json(ip, state, &ctx.account.id))
        .collect();
    Ok(Reply::ok(Value::Array(page))
        .with_header("x-resource-count", all.len().to_string())
        .with_header("x-query-limit", limit.to_string()))
}

/// The address from the path, which must lie in the network's subnet.
fn address(network: &Network, text: &str) -> ApiResult<IpAddr> {
    let ip: IpAddr = text
        .parse()
        .map_err(|_| ApiError::not_found(format!("IP {text} does not exist")))?;
    if !network.subnet().is_some_and(|net| net.contains(&ip)) {
        return Err(ApiError::not_found(format!(
            "IP {text} does not exist on network {}",
            network.id()
        )));
    }
    Ok(ip)
}

pub fn get_ip(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let network = find(ctx, p.get("id").unwrap_or_default())?;
    let ip = address(&network, p.get("ip_address").unwrap_or_default())?;
    let all = addresses(ctx, &network)?;
    let state = match all.get(&ip) {
        Some(state) => state.clone(),
        None if network.public() => {
            return Err(ApiError::not_found(format!("IP {ip} does not exist")));
        }
        None => IpState::default(),
    };
    Ok(Reply::ok(ip_json(&ip, &state, &ctx.account.id)))
}

/// Reserve or free an address of a private network.
pub fn update_ip(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let network = find(ctx, p.get("id").unwrap_or_default())?;
    let ip = address(&network, p.get("ip_address").unwrap_or_default())?;
    if network.public() {
        return Err(ApiError::invalid_argument(format!(
            "network {} is public: its addresses cannot be changed",
            network.id()
        )));
    }
    let Some(reserved) = ctx.inputs.boolean("reserved")? else {
        return Err(ApiError::missing_parameter("reserved is required"));
    };
    let all = addresses(ctx, &network)?;
    let mut state = all.get(&ip).cloned().unwrap_or_default();
    if state.managed {
        return Err(ApiError::invalid_argument(format!(
            "IP {ip} is managed by the network and cannot be changed"
        )));
    }
    if let Some(owner) = &state.owner
        && owner != &ctx.account.id
    {
        return Err(ApiError::invalid_argument(format!(
            "IP {ip} is in use by another account"
        )));
    }
    if !reserved
        && let Some(holder) = records_of(network.id())?
            .into_iter()
            .find(|r| r.value.ip == ip.to_string())
            .and_then(|r| r.value.holder)
    {
        return Err(ApiError::in_use(format!(
            "IP {ip} is held by volume {holder}; delete the volume to free it"
        )));
    }
    set_reserved(&network, ip, reserved, &ctx.account.id)?;
    state.reserved = reserved;
    Ok(Reply::ok(ip_json(&ip, &state, &ctx.account.id)))
}

/// Holds or frees the address in the primitive (so its NIC allocator skips it), then
/// records who set it; if the record cannot be written the primitive is put back.
fn set_reserved(network: &Network, ip: IpAddr, reserved: bool, account: &str) -> ApiResult<()> {
    let text = ip.to_string();
    let apply = |on: bool| -> ApiResult<()> {
        let done = if on {
            hv::reserve_ip(network.id(), Some(&text), account).map(|_| ())
        } else {
            hv::unreserve_ip(network.id(), &text)
        };
        done.map_err(hv_error)
    };
    apply(reserved)?;
    if let Err(e) = write_reservation(network, ip, reserved, account) {
        let _ = apply(!reserved);
        return Err(e);
    }
    Ok(())
}

/// Writes the reservation with optimistic versions; a concurrent writer makes it retry.
fn write_reservation(
    network: &Network,
    ip: IpAddr,
    reserved: bool,
    account: &str,
) -> ApiResult<()> {
    let key = format!("{}/{ip}", network.id());
    let record = IpRecord {
        network: network.id().to_string(),
        ip: ip.to_string(),
        reserved,
        account: account.to_string(),
        holder: None,
    };
    for _ in 0..8 {
        let write = match IPS.get::<IpRecord>(&key)? {
            Some(existing) if existing.value == record => return Ok(()),
            Some(existing) => IPS.put_op(&key, &record, Some(existing.version))?,
            None => IPS.insert_op(&key, &record)?,
        };
        match storage::batch(&[write]) {
            Ok(_) => return Ok(()),
            Err(e)
                if matches!(
                    e.error,
                    StorageError::Conflict(_) | StorageError::AlreadyExists
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::in_use(format!(
        "IP {ip} is being changed by another request; try again"
    )))
}

/// Takes the lowest free address of a fabric network's provision range for `holder`
/// (a volume): the primitive picks and reserves it in one transaction, so no NIC or
/// other holder gets it; `None` when the range is full.
pub fn claim_next(
    network: &FabricNetwork,
    account: &str,
    holder: &str,
) -> ApiResult<Option<String>> {
    let ip = match hv::reserve_ip(&network.id, None, holder) {
        Ok(ip) => ip,
        Err(hv::HvError::Capacity(_)) => return Ok(None),
        Err(e) => return Err(hv_error(e)),
    };
    let key = format!("{}/{ip}", network.id);
    let record = IpRecord {
        network: network.id.clone(),
        ip: ip.clone(),
        reserved: true,
        account: account.to_string(),
        holder: Some(holder.to_string()),
    };
    let written = IPS
        .put_op(&key, &record, None)
        .map_err(ApiError::from)
        .and_then(|op| storage::batch(&[op]).map_err(ApiError::from));
    if let Err(e) = written {
        // No half-written claim: the primitive lets go of it again.
        let _ = hv::unreserve_ip(&network.id, &ip);
        return Err(e);
    }
    Ok(Some(ip))
}

/// Gives back what `claim_next` took.
pub fn release(network: &str, ip: &str) -> ApiResult<()> {
    let key = format!("{network}/{ip}");
    if let Some(existing) = IPS.get::<IpRecord>(&key)? {
        storage::batch(&[IPS.delete_op(&key, Some(existing.version))])?;
    }
    match hv::unreserve_ip(network, ip) {
        Ok(()) | Err(hv::HvError::NotFound(_)) => Ok(()),
        Err(e) => Err(hv_error(e)),
    }
}
