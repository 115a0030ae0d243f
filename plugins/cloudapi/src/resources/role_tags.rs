//! SetRoleTags: `PUT` on any resource path with `{"role-tag": [role names]}`. Tags are
//! stored under the resource's canonical path (ids, not names) with the roles' ids, so
//! renaming a user or role keeps them.

use serde_json::json;
use tessera_sdk::Params;
use tessera_sdk::storage::{self, Versioned};

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;
use crate::rbac::store::{self, ROLE_TAGS, RoleTags};
use crate::resources::resolve;

/// The resource kinds a role tag may name (the first segment after the account).
const TAGGABLE: [&str; 16] = [
    "keys",
    "users",
    "roles",
    "policies",
    "config",
    "limits",
    "datacenters",
    "services",
    "machines",
    "images",
    "packages",
    "networks",
    "fwrules",
    "volumes",
    "fabrics",
    "",
];

pub fn set(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let rest: Vec<String> = ctx
        .request
        .subpath
        .split('/')
        .filter(|s| !s.is_empty())
        .skip(1)
        .map(tessera_sdk::query::decode_segment)
        .collect();
    let kind = rest.first().map(String::as_str).unwrap_or("");
    if !TAGGABLE.contains(&kind) {
        return Err(ApiError::invalid_argument(format!(
            "{} is not a valid resource path",
            ctx.request.path
        )));
    }
    let resource = resolve(ctx, &rest)?;
    if !resource.exists {
        return Err(ApiError::not_found(format!(
            "{} does not exist",
            ctx.request.path
        )));
    }
    let names = ctx.inputs.strings("role-tag")?.ok_or_else(|| {
        ApiError::missing_parameter("Request is missing required parameter: role-tag")
    })?;
    let roles = store::roles_of(&ctx.account.id)?;
    let mut ids = Vec::new();
    let mut shown = Vec::new();
    for name in &names {
        let role = roles
            .iter()
            .find(|r| &r.value.name == name || &r.value.id == name)
            .ok_or_else(|| ApiError::invalid_argument(format!("Role {name} does not exist")))?;
        if !ids.contains(&role.value.id) {
            ids.push(role.value.id.clone());
            shown.push(role.value.name.clone());
        }
    }
    let stored: Option<Versioned<RoleTags>> = ROLE_TAGS.get(&resource.path)?;
    let write = if ids.is_empty() {
        ROLE_TAGS.delete_op(&resource.path, stored.as_ref().map(|s| s.version))
    } else {
        let tags = RoleTags {
            account: ctx.account.id.clone(),
            path: resource.path.clone(),
            roles: ids,
        };
        ROLE_TAGS.put_op(
            &resource.path,
            &tags,
            Some(stored.as_ref().map_or(0, |s| s.version)),
        )?
    };
    store::ensure_indexes()?;
    if stored.is_some() || !shown.is_empty() {
        storage::batch(&[write])?;
    }
    Ok(Reply::ok(
        json!({"name": ctx.request.path, "role-tag": shown}),
    ))
}
