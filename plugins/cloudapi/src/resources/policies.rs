//! ListPolicies, GetPolicy, CreatePolicy, UpdatePolicy, DeletePolicy. Every rule is
//! parsed when it is stored; a rule that does not parse is a 409 `InvalidArgument`.

use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::storage;

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::ids::new_uuid;
use crate::protocol::Reply;
use crate::protocol::inputs::paging;
use crate::rbac::aperture::Rule;
use crate::rbac::store::{self, POLICIES, Policy, ROLES};
use crate::resources::roles::check_name;

fn policy_json(policy: &Policy) -> Value {
    let mut out = json!({"id": policy.id, "name": policy.name, "rules": policy.rules});
    if let Some(description) = &policy.description {
        out["description"] = json!(description);
    }
    out
}

pub fn list(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let (offset, limit) = paging(&ctx.inputs)?;
    let policies = store::policies_of(&ctx.account.id)?;
    let page: Vec<Value> = policies
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|p| policy_json(&p.value))
        .collect();
    Ok(Reply::ok(Value::Array(page))
        .with_header("x-resource-count", policies.len().to_string())
        .with_header("x-query-limit", limit.to_string()))
}

fn existing(ctx: &Ctx<'_>, id_or_name: &str) -> ApiResult<storage::Versioned<Policy>> {
    store::find_policy(&ctx.account.id, id_or_name)?
        .ok_or_else(|| ApiError::not_found(format!("policy {id_or_name} does not exist")))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let policy = existing(ctx, p.get("policy").unwrap_or_default())?;
    Ok(Reply::ok(policy_json(&policy.value)))
}

pub fn create(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let name = ctx.inputs.required("name")?;
    let mut policy = Policy {
        id: new_uuid(),
        account: ctx.account.id.clone(),
        name: String::new(),
        rules: Vec::new(),
        description: None,
    };
    apply(ctx, &mut policy, Some(name))?;
    store::ensure_indexes()?;
    storage::batch(&[POLICIES.insert_op(&policy.id, &policy)?])?;
    let location = format!("/{}/policies/{}", ctx.login(), policy.id);
    Ok(Reply::created(policy_json(&policy), location))
}

pub fn update(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let stored = existing(ctx, p.get("policy").unwrap_or_default())?;
    let mut policy = stored.value;
    apply(ctx, &mut policy, ctx.inputs.string("name")?)?;
    store::ensure_indexes()?;
    storage::batch(&[POLICIES.put_op(&policy.id, &policy, Some(stored.version))?])?;
    Ok(Reply::ok(policy_json(&policy)))
}

/// Deletes the policy and, in the same batch, removes it from the roles that list it.
pub fn delete(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let stored = existing(ctx, p.get("policy").unwrap_or_default())?;
    let mut writes = vec![POLICIES.delete_op(&stored.key, Some(stored.version))];
    for mut role in store::roles_of(&ctx.account.id)? {
        if role.value.policies.contains(&stored.value.id) {
            role.value.policies.retain(|id| id != &stored.value.id);
            writes.push(ROLES.put_op(&role.key, &role.value, Some(role.version))?);
        }
    }
    storage::batch(&writes)?;
    Ok(Reply::no_content())
}

fn apply(ctx: &Ctx<'_>, policy: &mut Policy, name: Option<String>) -> ApiResult<()> {
    if let Some(name) = name {
        check_name(&name)?;
        policy.name = name;
    }
    // JSON sends an array; a form or query one rule (or a JSON array as text). A rule's
    // own commas never split it.
    let rules = match ctx.inputs.raw("rules") {
        Some(Value::String(text)) if !text.trim_start().starts_with('[') => {
            Some(vec![text.clone()])
        }
        _ => ctx.inputs.strings("rules")?,
    };
    if let Some(rules) = rules {
        for (i, rule) in rules.iter().enumerate() {
            Rule::parse(rule).map_err(|e| {
                ApiError::invalid_argument(format!("rule {} ({rule:?}) is invalid: {e}", i + 1))
            })?;
        }
        policy.rules = rules;
    }
    if let Some(description) = ctx.inputs.string("description")? {
        if description.len() > 1024 {
            return Err(ApiError::invalid_argument("description is too long"));
        }
        policy.description = Some(description);
    }
    Ok(())
}
