//! Part 3's routes: networks, fabrics, NICs, firewall rules, volumes, and the WebSocket
//! endpoints (changefeed, VNC), added to the route table by `lib.rs`.
//!
//! | method | path | action |
//! | --- | --- | --- |
//! | GET, HEAD | `/:account/networks` | listnetworks |
//! | GET, HEAD | `/:account/networks/:id` | getnetwork |
//! | GET, HEAD | `/:account/networks/:id/ips` | listnetworkips |
//! | GET, HEAD | `/:account/networks/:id/ips/:ip_address` | getnetworkip |
//! | PUT | `/:account/networks/:id/ips/:ip_address` | updatenetworkip |
//! | GET, HEAD / POST | `/:account/fabrics/default/vlans` | listfabricvlans / createfabricvlan |
//! | GET, HEAD / PUT / DELETE | `/:account/fabrics/default/vlans/:vlan_id` | getfabricvlan / updatefabricvlan / deletefabricvlan |
//! | GET, HEAD / POST | `/:account/fabrics/default/vlans/:vlan_id/networks` | listfabricnetworks / createfabricnetwork |
//! | GET, HEAD / PUT / DELETE | `/:account/fabrics/default/vlans/:vlan_id/networks/:id` | getfabricnetwork / updatefabricnetwork / deletefabricnetwork |
//! | GET, HEAD / POST | `/:account/machines/:id/nics` | listnics / addnic |
//! | GET, HEAD / DELETE | `/:account/machines/:id/nics/:mac` | getnic / removenic |
//! | GET, HEAD / POST | `/:account/fwrules` | listfirewallrules / createfirewallrule |
//! | GET, HEAD / POST / DELETE | `/:account/fwrules/:id` | getfirewallrule / updatefirewallrule / deletefirewallrule |
//! | POST | `/:account/fwrules/:id/enable`, `/disable` | enablefirewallrule / disablefirewallrule |
//! | GET, HEAD | `/:account/fwrules/:id/machines` | listfirewallrulemachines |
//! | GET, HEAD | `/:account/machines/:id/fwrules` | listmachinefirewallrules |
//! | GET, HEAD / POST | `/:account/volumes` | listvolumes / createvolume |
//! | GET, HEAD / POST / DELETE | `/:account/volumes/:id` | getvolume / updatevolume / deletevolume |
//! | GET, HEAD | `/:account/volumesizes` | listvolumesizes |
//! | GET (WebSocket) | `/:account/changefeed` | getchangefeed |
//! | GET (WebSocket) | `/:account/machines/:id/vnc` | connectmachinevnc |

use tessera_sdk::Router;

use crate::context::Ctx;
use crate::errors::ApiResult;
use crate::resources::{changefeed, fabrics, firewall, networks, nics, vnc, volumes};
use crate::{Endpoint, ep};

/// The resource families whose role-tag paths `canonical` resolves.
pub const FAMILIES: [&str; 4] = ["networks", "fabrics", "fwrules", "volumes"];

/// The canonical path role tags of a part-3 object are kept under (after the login),
/// and whether the object exists. Sub-paths are their object (`fwrules/ID/machines`
/// is the rule, `networks/ID/ips/IP` the network); a network is `networks/ID` whether
/// named by name, by id or by its fabric path, so one tag covers every way to it.
pub fn canonical(ctx: &Ctx<'_>, segs: &[&str]) -> ApiResult<(Vec<String>, bool)> {
    let out =
        |parts: &[&str], exists: bool| Ok((parts.iter().map(|s| s.to_string()).collect(), exists));
    let account = &ctx.account.id;
    match segs {
        ["networks"] | ["fwrules"] | ["volumes"] | ["fabrics", "default", "vlans"] => {
            out(segs, true)
        }
        ["networks", id, ..] => match networks::find(ctx, id) {
            Ok(network) => out(&["networks", network.id()], true),
            Err(_) => out(segs, false),
        },
        ["fabrics", "default", "vlans", vlan, tail @ ..] => {
            let found = match vlan.parse::<u16>() {
                Ok(id) if id <= 4095 => fabrics::vlan(account, id)?,
                _ => None,
            };
            let Some(found) = found else {
                return out(segs, false);
            };
            let vlan_id = found.vlan_id.to_string();
            match tail {
                [] => out(&["fabrics", "default", "vlans", &vlan_id], true),
                ["networks"] => out(&["fabrics", "default", "vlans", &vlan_id, "networks"], true),
                ["networks", id] => match fabrics::network(account, id)? {
                    Some(n) if n.value.vlan_id == found.vlan_id => {
                        out(&["networks", &n.value.id], true)
                    }
                    _ => out(segs, false),
                },
                _ => out(segs, false),
            }
        }
        ["fwrules", id, ..] => match firewall::existing(ctx, id) {
            Ok(rule) => out(&["fwrules", &rule.key], true),
            Err(_) => out(segs, false),
        },
        ["volumes", id] => match volumes::existing(ctx, id) {
            Ok(volume) => out(&["volumes", &volume.key], true),
            Err(_) => out(segs, false),
        },
        _ => out(segs, false),
    }
}

const VLANS: &str = "/:account/fabrics/default/vlans";
const VLAN: &str = "/:account/fabrics/default/vlans/:vlan_id";
const FABRIC_NETWORKS: &str = "/:account/fabrics/default/vlans/:vlan_id/networks";
const FABRIC_NETWORK: &str = "/:account/fabrics/default/vlans/:vlan_id/networks/:id";

pub fn add(router: Router<Endpoint>) -> Router<Endpoint> {
    router
        .add(
            "GET",
            "/:account/networks",
            ep("listnetworks", networks::list),
        )
        .add(
            "GET",
            "/:account/networks/:id",
            ep("getnetwork", networks::get),
        )
        .add(
            "GET",
            "/:account/networks/:id/ips",
            ep("listnetworkips", networks::list_ips),
        )
        .add(
            "GET",
            "/:account/networks/:id/ips/:ip_address",
            ep("getnetworkip", networks::get_ip),
        )
        .add(
            "PUT",
            "/:account/networks/:id/ips/:ip_address",
            ep("updatenetworkip", networks::update_ip),
        )
        .add("GET", VLANS, ep("listfabricvlans", fabrics::list_vlans))
        .add("POST", VLANS, ep("createfabricvlan", fabrics::create_vlan))
        .add("GET", VLAN, ep("getfabricvlan", fabrics::get_vlan))
        .add("PUT", VLAN, ep("updatefabricvlan", fabrics::update_vlan))
        .add("DELETE", VLAN, ep("deletefabricvlan", fabrics::delete_vlan))
        .add(
            "GET",
            FABRIC_NETWORKS,
            ep("listfabricnetworks", fabrics::list_networks),
        )
        .add(
            "POST",
            FABRIC_NETWORKS,
            ep("createfabricnetwork", fabrics::create_network),
        )
        .add(
            "GET",
            FABRIC_NETWORK,
            ep("getfabricnetwork", fabrics::get_network),
        )
        .add(
            "PUT",
            FABRIC_NETWORK,
            ep("updatefabricnetwork", fabrics::update_network),
        )
        .add(
            "DELETE",
            FABRIC_NETWORK,
            ep("deletefabricnetwork", fabrics::delete_network),
        )
        .add(
            "GET",
            "/:account/machines/:id/nics",
            ep("listnics", nics::list),
        )
        .add(
            "POST",
            "/:account/machines/:id/nics",
            ep("addnic", nics::add),
        )
        .add(
            "GET",
            "/:account/machines/:id/nics/:mac",
            ep("getnic", nics::get),
        )
        .add(
            "DELETE",
            "/:account/machines/:id/nics/:mac",
            ep("removenic", nics::remove),
        )
        .add(
            "GET",
            "/:account/fwrules",
            ep("listfirewallrules", firewall::list),
        )
        .add(
            "POST",
            "/:account/fwrules",
            ep("createfirewallrule", firewall::create),
        )
        .add(
            "GET",
            "/:account/fwrules/:id",
            ep("getfirewallrule", firewall::get),
        )
        .add(
            "POST",
            "/:account/fwrules/:id",
            ep("updatefirewallrule", firewall::update),
        )
        .add(
            "DELETE",
            "/:account/fwrules/:id",
            ep("deletefirewallrule", firewall::delete),
        )
        .add(
            "POST",
            "/:account/fwrules/:id/enable",
            ep("enablefirewallrule", firewall::enable),
        )
        .add(
            "POST",
            "/:account/fwrules/:id/disable",
            ep("disablefirewallrule", firewall::disable),
        )
        .add(
            "GET",
            "/:account/fwrules/:id/machines",
            ep("listfirewallrulemachines", firewall::machines),
        )
        .add(
            "GET",
            "/:account/machines/:id/fwrules",
            ep("listmachinefirewallrules", firewall::of_machine),
        )
        .add("GET", "/:account/volumes", ep("listvolumes", volumes::list))
        .add(
            "POST",
            "/:account/volumes",
            ep("createvolume", volumes::create),
        )
        .add(
            "GET",
            "/:account/volumes/:id",
            ep("getvolume", volumes::get),
        )
        .add(
            "POST",
            "/:account/volumes/:id",
            ep("updatevolume", volumes::update),
        )
        .add(
            "DELETE",
            "/:account/volumes/:id",
            ep("deletevolume", volumes::delete),
        )
        .add(
            "GET",
            "/:account/volumesizes",
            ep("listvolumesizes", volumes::sizes),
        )
        .add(
            "GET",
            "/:account/changefeed",
            ep("getchangefeed", changefeed::open),
        )
        .add(
            "GET",
            "/:account/machines/:id/vnc",
            ep("connectmachinevnc", vnc::open),
        )
}
