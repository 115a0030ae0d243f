//! Roles, policies and role tags in plugin storage, each scoped to its account by id.

use serde::{Deserialize, Serialize};
use tessera_sdk::storage::{Collection, Filter, Versioned};

use crate::errors::ApiResult;

pub const ROLES: Collection = Collection::new("roles");
pub const POLICIES: Collection = Collection::new("policies");
/// Keyed by the canonical resource path (`/alice/users/<id>`).
pub const ROLE_TAGS: Collection = Collection::new("role_tags");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    /// The owning account's id.
    pub account: String,
    pub name: String,
    #[serde(default)]
    pub members: Vec<Member>,
    /// Policy ids.
    #[serde(default)]
    pub policies: Vec<String>,
}

/// A sub-user in a role; `default` makes the role active for it without `as-role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    #[serde(default)]
    pub default: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub id: String,
    pub account: String,
    pub name: String,
    #[serde(default)]
    pub rules: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleTags {
    pub account: String,
    pub path: String,
    /// Role ids.
    pub roles: Vec<String>,
}

/// Names are unique per account: a unique index refuses a duplicate in the same write.
pub fn ensure_indexes() -> ApiResult<()> {
    ROLES.ensure_index("roles_by_name", &["account", "name"], true)?;
    POLICIES.ensure_index("policies_by_name", &["account", "name"], true)?;
    ROLE_TAGS.ensure_index("role_tags_by_account", &["account"], false)?;
    Ok(())
}

pub fn roles_of(account_id: &str) -> ApiResult<Vec<Versioned<Role>>> {
    Ok(ROLES
        .query()
        .filter(Filter::eq("account", account_id))
        .order_by("name", false)
        .fetch::<Role>()?
        .items)
}

pub fn policies_of(account_id: &str) -> ApiResult<Vec<Versioned<Policy>>> {
    Ok(POLICIES
        .query()
        .filter(Filter::eq("account", account_id))
        .order_by("name", false)
        .fetch::<Policy>()?
        .items)
}

/// A role of the account by id or by name.
pub fn find_role(account_id: &str, id_or_name: &str) -> ApiResult<Option<Versioned<Role>>> {
    if let Some(role) = ROLES.get::<Role>(id_or_name)?
        && role.value.account == account_id
    {
        return Ok(Some(role));
    }
    let found = ROLES
        .query()
        .filter(Filter::and(vec![
            Filter::eq("account", account_id),
            Filter::eq("name", id_or_name),
        ]))
        .limit(1)
        .fetch::<Role>()?;
    Ok(found.items.into_iter().next())
}

pub fn find_policy(account_id: &str, id_or_name: &str) -> ApiResult<Option<Versioned<Policy>>> {
    if let Some(policy) = POLICIES.get::<Policy>(id_or_name)?
        && policy.value.account == account_id
    {
        return Ok(Some(policy));
    }
    let found = POLICIES
        .query()
        .filter(Filter::and(vec![
            Filter::eq("account", account_id),
            Filter::eq("name", id_or_name),
        ]))
        .limit(1)
        .fetch::<Policy>()?;
    Ok(found.items.into_iter().next())
}

/// The role ids a resource is tagged with.
pub fn tags_of(path: &str) -> ApiResult<Vec<String>> {
    Ok(ROLE_TAGS
        .get::<RoleTags>(path)?
        .map(|t| t.value.roles)
        .unwrap_or_default())
}

/// The names of the roles a resource is tagged with (roles deleted since are skipped).
pub fn tag_names(account_id: &str, path: &str) -> ApiResult<Vec<String>> {
    let ids = tags_of(path)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(roles_of(account_id)?
        .into_iter()
        .filter(|role| ids.contains(&role.value.id))
        .map(|role| role.value.name)
        .collect())
}
