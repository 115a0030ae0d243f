//! One module per resource family, and the mapping from a request path to the canonical
//! path of the object it names (ids instead of names), which role tags are keyed by.
//! Parts 2 and 3 (machines, images, packages, networks, firewall rules, volumes) add
//! their families here and in `canonical_tail`.

pub mod account;
pub mod audit;
pub mod changefeed;
pub mod config;
pub mod datacenters;
pub mod disks;
pub mod fabrics;
pub mod firewall;
pub mod images;
pub mod keys;
pub mod machines;
pub mod metadata;
pub mod migrations;
pub mod networks;
pub mod nics;
pub mod packages;
pub mod policies;
pub mod role_tags;
pub mod roles;
pub mod snapshots;
pub mod sockets;
pub mod tags;
pub mod users;
pub mod vnc;
pub mod volumes;

use tessera_sdk::auth;

use crate::context::Ctx;
use crate::errors::ApiResult;
use crate::rbac::store;

/// A resource path with its object identified.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// `/LOGIN/kind/ID[/...]`: what role tags are stored under.
    pub path: String,
    /// Whether the named object exists (collections and known singletons always do).
    pub exists: bool,
}

/// The canonical resource for the segments after the account: users, roles and policies
/// by id, keys by MD5 fingerprint; an action on an object (`change_password`) is the
/// object itself.
pub fn resolve(ctx: &Ctx<'_>, rest: &[String]) -> ApiResult<Resource> {
    let login = ctx.login();
    let (tail, exists) = canonical_tail(ctx, rest)?;
    let path = if tail.is_empty() {
        format!("/{login}")
    } else {
        format!("/{login}/{}", tail.join("/"))
    };
    Ok(Resource { path, exists })
}

fn canonical_tail(ctx: &Ctx<'_>, rest: &[String]) -> ApiResult<(Vec<String>, bool)> {
    let account = &ctx.account;
    let segs: Vec<&str> = rest.iter().map(String::as_str).collect();
    let out =
        |parts: &[&str], exists: bool| Ok((parts.iter().map(|s| s.to_string()).collect(), exists));
    match segs.as_slice() {
        []
        | ["keys"]
        | ["users"]
        | ["roles"]
        | ["policies"]
        | ["config"]
        | ["limits"]
        | ["datacenters"]
        | ["services"] => out(&segs, true),
        ["keys", key] => match auth::get_key(&account.login, key).ok().flatten() {
            Some(found) => out(&["keys", &found.fingerprint_md5], true),
            None => out(&segs, false),
        },
        ["users", user, tail @ ..] => {
            let Some(found) = users::find(ctx, user)? else {
                return out(&segs, false);
            };
            match tail {
                [] | ["change_password"] => out(&["users", &found.id], true),
                ["keys"] => out(&["users", &found.id, "keys"], true),
                ["keys", key] => {
                    let owner = ctx.sub_login(&found.login);
                    match auth::get_key(&owner, key).ok().flatten() {
                        Some(k) => out(&["users", &found.id, "keys", &k.fingerprint_md5], true),
                        None => out(&["users", &found.id, "keys", key], false),
                    }
                }
                _ => out(&segs, false),
            }
        }
        ["roles", role] => match store::find_role(&account.id, role)? {
            Some(found) => out(&["roles", &found.value.id], true),
            None => out(&segs, false),
        },
        ["policies", policy] => match store::find_policy(&account.id, policy)? {
            Some(found) => out(&["policies", &found.value.id], true),
            None => out(&segs, false),
        },
        ["datacenters", name] => out(&segs, ctx.settings.datacenters.contains_key(*name)),
        // Everything on a machine (tags, metadata, snapshots, disks, audit) is the machine.
        ["machines", id, ..] => {
            let owned = tessera_sdk::hypervisor::get_vm(id)
                .ok()
                .flatten()
                .is_some_and(|vm| vm.owner == account.id);
            out(&["machines", id], owned)
        }
        ["migrations"] => out(&segs, true),
        ["migrations", id] => out(&["machines", id], true),
        ["images", id, ..] => out(&["images", id], images::visible(ctx, id)?.is_some()),
        ["packages", id] => match packages::find(&ctx.settings, id) {
            Some(found) => out(&["packages", &found.id], true),
            None => out(&segs, false),
        },
        // Part 3's networks, fabrics, firewall rules and volumes.
        [kind, ..] if crate::network_routes::FAMILIES.contains(kind) => {
            crate::network_routes::canonical(ctx, &segs)
        }
        // Families served by later parts: the path as given; a well-formed id is taken
        // to exist until those families can check it.
        [kind, ..] if OTHER_FAMILIES.contains(kind) => out(&segs, segs.len() <= 2),
        _ => out(&segs, false),
    }
}

/// Resource families SetRoleTags accepts before their endpoints exist.
const OTHER_FAMILIES: [&str; 7] = [
    "machines", "images", "packages", "networks", "fwrules", "volumes", "fabrics",
];
