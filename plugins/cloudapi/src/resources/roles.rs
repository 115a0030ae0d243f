//! ListRoles, GetRole, CreateRole, UpdateRole, DeleteRole. A role lists sub-users
//! (members, some of them default members) and policies. API 9 answers members as
//! `{type, id, login, default}` and policies as `{id, name}`; API 7 and 8 as
//! `members`/`default_members` logins and policy names.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::auth::{self, Account};
use tessera_sdk::storage;

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::ids::new_uuid;
use crate::protocol::Reply;
use crate::protocol::inputs::paging;
use crate::rbac::store::{self, Member, Policy, ROLE_TAGS, ROLES, Role};

/// Lookups shared by every role rendered in one answer.
struct Names {
    users: BTreeMap<String, Account>,
    policies: BTreeMap<String, Policy>,
}

impl Names {
    fn load(ctx: &Ctx<'_>) -> ApiResult<Names> {
        let users = auth::list_accounts(None, Some(ctx.login()))?
            .into_iter()
            .map(|u| (u.id.clone(), u))
            .collect();
        let policies = store::policies_of(&ctx.account.id)?
            .into_iter()
            .map(|p| (p.value.id.clone(), p.value))
            .collect();
        Ok(Names { users, policies })
    }

    fn render(&self, ctx: &Ctx<'_>, role: &Role) -> Value {
        let members: Vec<(&Member, &Account)> = role
            .members
            .iter()
            .filter_map(|m| self.users.get(&m.id).map(|u| (m, u)))
            .collect();
        let policies: Vec<&Policy> = role
            .policies
            .iter()
            .filter_map(|id| self.policies.get(id))
            .collect();
        if ctx.v9() {
            json!({
                "id": role.id,
                "name": role.name,
                "members": members.iter().map(|(m, u)| json!({
                    "type": "subuser", "id": u.id, "login": u.login, "default": m.default,
                })).collect::<Vec<_>>(),
                "policies": policies.iter().map(|p| json!({"id": p.id, "name": p.name})).collect::<Vec<_>>(),
            })
        } else {
            json!({
                "id": role.id,
                "name": role.name,
                "members": members.iter().map(|(_, u)| &u.login).collect::<Vec<_>>(),
                "default_members": members.iter().filter(|(m, _)| m.default).map(|(_, u)| &u.login).collect::<Vec<_>>(),
                "policies": policies.iter().map(|p| &p.name).collect::<Vec<_>>(),
            })
        }
    }
}

pub fn list(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let (offset, limit) = paging(&ctx.inputs)?;
    let names = Names::load(ctx)?;
    let roles = store::roles_of(&ctx.account.id)?;
    let page: Vec<Value> = roles
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|r| names.render(ctx, &r.value))
        .collect();
    Ok(Reply::ok(Value::Array(page))
        .with_header("x-resource-count", roles.len().to_string())
        .with_header("x-query-limit", limit.to_string()))
}

fn existing(ctx: &Ctx<'_>, id_or_name: &str) -> ApiResult<storage::Versioned<Role>> {
    store::find_role(&ctx.account.id, id_or_name)?
        .ok_or_else(|| ApiError::not_found(format!("role {id_or_name} does not exist")))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let role = existing(ctx, p.get("role").unwrap_or_default())?;
    Ok(Reply::ok(Names::load(ctx)?.render(ctx, &role.value)))
}

pub fn create(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let name = ctx.inputs.required("name")?;
    let names = Names::load(ctx)?;
    let mut role = Role {
        id: new_uuid(),
        account: ctx.account.id.clone(),
        name: String::new(),
        members: Vec::new(),
        policies: Vec::new(),
    };
    apply(ctx, &names, &mut role, Some(name))?;
    store::ensure_indexes()?;
    storage::batch(&[ROLES.insert_op(&role.id, &role)?])?;
    let location = format!("/{}/roles/{}", ctx.login(), role.id);
    Ok(Reply::created(names.render(ctx, &role), location))
}

pub fn update(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let stored = existing(ctx, p.get("role").unwrap_or_default())?;
    let names = Names::load(ctx)?;
    let mut role = stored.value;
    apply(ctx, &names, &mut role, ctx.inputs.string("name")?)?;
    store::ensure_indexes()?;
    storage::batch(&[ROLES.put_op(&role.id, &role, Some(stored.version))?])?;
    Ok(Reply::ok(names.render(ctx, &role)))
}

/// Deletes the role and, in the same batch, drops it from every role tag of the account.
pub fn delete(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let stored = existing(ctx, p.get("role").unwrap_or_default())?;
    let mut writes = vec![ROLES.delete_op(&stored.key, Some(stored.version))];
    let tags = ROLE_TAGS
        .query()
        .filter(storage::Filter::eq("account", ctx.account.id.as_str()))
        .fetch::<store::RoleTags>()?;
    for mut tag in tags.items {
        if tag.value.roles.contains(&stored.value.id) {
            tag.value.roles.retain(|r| r != &stored.value.id);
            writes.push(ROLE_TAGS.put_op(&tag.key, &tag.value, Some(tag.version))?);
        }
    }
    storage::batch(&writes)?;
    Ok(Reply::no_content())
}

/// Apply `name`, `members`, `default_members` and `policies` from the request.
fn apply(ctx: &Ctx<'_>, names: &Names, role: &mut Role, name: Option<String>) -> ApiResult<()> {
    if let Some(name) = name {
        check_name(&name)?;
        role.name = name;
    }
    let by_login: BTreeMap<&str, &Account> = names
        .users
        .values()
        .map(|u| (u.login.as_str(), u))
        .collect();
    let user_id = |key: &str| -> ApiResult<String> {
        names
            .users
            .get(key)
            .or_else(|| by_login.get(key).copied())
            .map(|u| u.id.clone())
            .ok_or_else(|| ApiError::invalid_argument(format!("Invalid user {key}")))
    };
    let default_members = ctx.inputs.strings("default_members")?;
    if let Some(members) = ctx.inputs.list("members")? {
        let mut out: Vec<Member> = Vec::new();
        for member in members {
            let (key, default) = match &member {
                Value::String(login) => (login.clone(), false),
                Value::Object(object) => {
                    if let Some(kind) = object.get("type").and_then(Value::as_str)
                        && kind != "subuser"
                    {
                        return Err(ApiError::invalid_argument(format!(
                            "member type {kind} is not supported: only subuser"
                        )));
                    }
                    let key = object
                        .get("id")
                        .or_else(|| object.get("login"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            ApiError::invalid_argument("a member needs an id or a login")
                        })?;
                    let default = object
                        .get("default")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    (key.to_string(), default)
                }
                _ => {
                    return Err(ApiError::invalid_argument(
                        "members must be logins or objects",
                    ));
                }
            };
            let id = user_id(&key)?;
            if !out.iter().any(|m| m.id == id) {
                out.push(Member { id, default });
            }
        }
        role.members = out;
    }
    if let Some(defaults) = default_members {
        let ids = defaults
            .iter()
            .map(|d| user_id(d))
            .collect::<ApiResult<Vec<_>>>()?;
        for id in &ids {
            if !role.members.iter().any(|m| &m.id == id) {
                role.members.push(Member {
                    id: id.clone(),
                    default: true,
                });
            }
        }
        for member in &mut role.members {
            member.default = member.default || ids.contains(&member.id);
        }
    }
    if let Some(policies) = ctx.inputs.list("policies")? {
        let mut ids = Vec::new();
        for policy in policies {
            let key = match &policy {
                Value::String(name) => name.clone(),
                Value::Object(object) => object
                    .get("id")
                    .or_else(|| object.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::invalid_argument("a policy needs an id or a name"))?
                    .to_string(),
                _ => {
                    return Err(ApiError::invalid_argument(
                        "policies must be names or objects",
                    ));
                }
            };
            let found = names
                .policies
                .get(&key)
                .or_else(|| names.policies.values().find(|p| p.name == key))
                .ok_or_else(|| ApiError::invalid_argument(format!("Invalid policy {key}")))?;
            if !ids.contains(&found.id) {
                ids.push(found.id.clone());
            }
        }
        role.policies = ids;
    }
    Ok(())
}

/// Role and policy names: 1 to 64 of `A-Z a-z 0-9 _ . -`, and not a UUID-like id.
pub fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ' '))
        && !crate::ids::is_uuid(name);
    if !ok {
        return Err(ApiError::invalid_argument(format!(
            "name {name:?} must be 1 to 64 of A-Z a-z 0-9 _ . - and space"
        )));
    }
    Ok(())
}
