//! Firewall rules: ListFirewallRules, GetFirewallRule, CreateFirewallRule,
//! UpdateFirewallRule, EnableFirewallRule, DisableFirewallRule, DeleteFirewallRule,
//! ListMachineFirewallRules, ListFirewallRuleMachines.
//!
//! A rule is stored parsed (`fwrule::Rule`) beside its canonical text; a rule that does
//! not parse is refused with 409 `InvalidArgument` naming the character where it broke.
//! Which machines a rule applies to is resolved against the account's machines in the
//! hypervisor primitive: `vm UUID`, `tag NAME[=VALUE]` and `all vms` on either side.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::storage::{self, Collection, Filter, Versioned};

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::fwrule::{self, Rule};
use crate::ids::new_uuid;
use crate::protocol::Reply;
use crate::resources::machines;
use crate::vms;

pub const FWRULES: Collection = Collection::new("fwrules");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRule {
    pub id: String,
    pub account: String,
    /// The canonical text.
    pub rule: String,
    pub parsed: Rule,
    pub enabled: bool,
    #[serde(default)]
    pub log: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created: u64,
    pub updated: u64,
}

impl StoredRule {
    fn to_json(&self) -> Value {
        let mut out = json!({
            "id": self.id,
            "rule": self.rule,
            "enabled": self.enabled,
            "global": false,
            "log": self.log,
        });
        if let Some(description) = &self.description {
            out["description"] = json!(description);
        }
        out
    }
}

fn rules_of(account: &str) -> ApiResult<Vec<Versioned<StoredRule>>> {
    Ok(FWRULES
        .query()
        .filter(Filter::eq("account", account))
        .order_by("created", false)
        .fetch::<StoredRule>()?
        .items)
}

pub(crate) fn existing(ctx: &Ctx<'_>, id: &str) -> ApiResult<Versioned<StoredRule>> {
    FWRULES
        .get::<StoredRule>(id)?
        .filter(|r| r.value.account == ctx.account.id)
        .ok_or_else(|| ApiError::not_found(format!("firewall rule {id} does not exist")))
}

/// Parse rule text, or 409 `InvalidArgument` with the position.
pub fn parse_rule(text: &str) -> ApiResult<Rule> {
    fwrule::parse(text).map_err(|e| ApiError::invalid_argument(format!("rule: {e}")))
}

fn description(ctx: &Ctx<'_>) -> ApiResult<Option<String>> {
    let description = ctx.inputs.string("description")?;
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 255)
    {
        return Err(ApiError::invalid_argument(
            "description has at most 255 characters",
        ));
    }
    Ok(description)
}

pub fn list(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let rules: Vec<Value> = rules_of(&ctx.account.id)?
        .iter()
        .map(|r| r.value.to_json())
        .collect();
    Ok(Reply::ok(Value::Array(rules)))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    Ok(Reply::ok(
        existing(ctx, p.get("id").unwrap_or_default())?
            .value
            .to_json(),
    ))
}

pub fn create(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let text = ctx.inputs.required("rule")?;
    let parsed = parse_rule(&text)?;
    let rule = StoredRule {
        id: new_uuid(),
        account: ctx.account.id.clone(),
        rule: parsed.to_string(),
        parsed,
        enabled: ctx.inputs.boolean("enabled")?.unwrap_or(false),
        log: ctx.inputs.boolean("log")?.unwrap_or(false),
        description: description(ctx)?,
        created: ctx.now_ms,
        updated: ctx.now_ms,
    };
    FWRULES.ensure_index("fwrules_by_account", &["account"], false)?;
    storage::batch(&[FWRULES.insert_op(&rule.id, &rule)?])?;
    let location = format!("/{}/fwrules/{}", ctx.login(), rule.id);
    Ok(Reply::created(rule.to_json(), location))
}

pub fn update(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let stored = existing(ctx, p.get("id").unwrap_or_default())?;
    let mut rule = stored.value;
    let mut changed = false;
    if let Some(text) = ctx.inputs.string("rule")? {
        let parsed = parse_rule(&text)?;
        rule.rule = parsed.to_string();
        rule.parsed = parsed;
        changed = true;
    }
    if let Some(description) = description(ctx)? {
        rule.description = Some(description);
        changed = true;
    }
    if let Some(enabled) = ctx.inputs.boolean("enabled")? {
        rule.enabled = enabled;
        changed = true;
    }
    if let Some(log) = ctx.inputs.boolean("log")? {
        rule.log = log;
        changed = true;
    }
    if !changed {
        return Err(ApiError::missing_parameter(
            "rule, description, enabled or log is required",
        ));
    }
    rule.updated = ctx.now_ms;
    storage::batch(&[FWRULES.put_op(&stored.key, &rule, Some(stored.version))?])?;
    Ok(Reply::ok(rule.to_json()))
}

fn set_enabled(ctx: &Ctx<'_>, p: &Params, enabled: bool) -> ApiResult<Reply> {
    let stored = existing(ctx, p.get("id").unwrap_or_default())?;
    let mut rule = stored.value;
    if rule.enabled != enabled {
        rule.enabled = enabled;
        rule.updated = ctx.now_ms;
        storage::batch(&[FWRULES.put_op(&stored.key, &rule, Some(stored.version))?])?;
    }
    Ok(Reply::ok(rule.to_json()))
}

pub fn enable(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    set_enabled(ctx, p, true)
}

pub fn disable(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    set_enabled(ctx, p, false)
}

pub fn delete(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let stored = existing(ctx, p.get("id").unwrap_or_default())?;
    storage::batch(&[FWRULES.delete_op(&stored.key, Some(stored.version))])?;
    Ok(Reply::no_content())
}

/// The machines the rule applies to, as ListMachines shows them.
pub fn machines(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let rule = existing(ctx, p.get("id").unwrap_or_default())?.value;
    let affected: Vec<_> = vms::of_account(&ctx.account.id, ctx.login())?
        .into_iter()
        .filter(|vm| rule.parsed.affects(&vm.id, &vms::json_object(&vm.tags)))
        .collect();
    let ids: Vec<String> = affected.iter().map(|vm| vm.id.clone()).collect();
    let extras = machines::extras_of(&ids)?;
    let lookup = machines::Lookup::load(ctx)?;
    let out: Vec<Value> = affected
        .iter()
        .map(|vm| machines::machine_json(vm, extras.get(&vm.id), &lookup))
        .collect();
    let count = out.len();
    Ok(Reply::ok(Value::Array(out))
        .with_header("x-resource-count", count.to_string())
        .with_header("x-query-limit", "1000"))
}

/// The rules that apply to one machine.
pub fn of_machine(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = vms::owned(
        &ctx.account.id,
        ctx.login(),
        p.get("id").unwrap_or_default(),
    )?;
    let tags = vms::json_object(&vm.tags);
    let out: Vec<Value> = rules_of(&ctx.account.id)?
        .iter()
        .filter(|r| r.value.parsed.affects(&vm.id, &tags))
        .map(|r| r.value.to_json())
        .collect();
    Ok(Reply::ok(Value::Array(out)))
}
