//! GetAccount, UpdateAccount, GetAccountLimits.

use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::auth::{self, Account, AccountUpdate};
use tessera_sdk::hypervisor::{self as hv, Image, Vm, VmFilter, VmState};

use crate::compute::hv_error;
use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::model::{self, PROFILE_FIELDS, PROFILES, Profile};
use crate::protocol::Reply;
use crate::protocol::inputs::Inputs;

pub fn get(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let profile = model::profile(&ctx.account.id)?;
    Ok(Reply::ok(model::account_json(&ctx.account, &profile)))
}

pub fn update(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let (account, profile) = apply_update(ctx, &ctx.account, &ctx.account.login, true)?;
    Ok(Reply::ok(model::account_json(&account, &profile)))
}

/// Apply the account fields of the request to an account or sub-user (`login` as the
/// identity store names it): the store's fields first (it validates the email), then
/// CloudAPI's extra profile fields.
pub fn apply_update(
    ctx: &Ctx<'_>,
    account: &Account,
    login: &str,
    with_cns: bool,
) -> ApiResult<(Account, Profile)> {
    let inputs = &ctx.inputs;
    let update = AccountUpdate {
        email: inputs.string("email")?,
        first_name: inputs.string("firstName")?,
        last_name: inputs.string("lastName")?,
        company: inputs.string("companyName")?,
        phone: inputs.string("phone")?,
        disabled: None,
        admin: None,
        password: None,
    };
    let changes_store = update.email.is_some()
        || update.first_name.is_some()
        || update.last_name.is_some()
        || update.company.is_some()
        || update.phone.is_some();
    let account = if changes_store {
        auth::update_account(login, &update)?
    } else {
        account.clone()
    };
    let stored = PROFILES.get::<Profile>(&account.id)?;
    let version = stored.as_ref().map_or(0, |p| p.version);
    let mut profile = stored.map(|p| p.value).unwrap_or_default();
    if read_profile(inputs, &mut profile, with_cns)? {
        profile.updated = ctx.now_ms;
        PROFILES
            .put(&account.id, &profile, Some(version))
            .map_err(|e| match e {
                tessera_sdk::storage::Error::Storage(
                    tessera_sdk::storage::StorageError::Conflict(_),
                ) => ApiError::in_use("the account was changed by another request; try again"),
                other => other.into(),
            })?;
    }
    Ok((account, profile))
}

/// Copy the profile fields present in the inputs; whether any was given.
pub fn read_profile(inputs: &Inputs, profile: &mut Profile, with_cns: bool) -> ApiResult<bool> {
    let mut changed = false;
    for name in PROFILE_FIELDS {
        let Some(value) = inputs.string(name)? else {
            continue;
        };
        if value.len() > 1024 {
            return Err(ApiError::invalid_argument(format!("{name} is too long")));
        }
        let slot = match name {
            "address" => &mut profile.address,
            "postalCode" => &mut profile.postal_code,
            "city" => &mut profile.city,
            "state" => &mut profile.state,
            _ => &mut profile.country,
        };
        *slot = Some(value);
        changed = true;
    }
    if with_cns && let Some(enabled) = inputs.boolean("triton_cns_enabled")? {
        profile.triton_cns_enabled = Some(enabled);
        changed = true;
    }
    Ok(changed)
}

/// The provisioning limits configured for the site (`limits` setting), each with `used`
/// counted over the account's live machines: their number, RAM in MiB, or disk ("quota")
/// in GiB — only those of the limit's image `os` or image `name` when it has a `check`.
pub fn limits(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let configured: Vec<&Value> = ctx
        .settings
        .limits
        .iter()
        .filter(|limit| limit.get("by").is_some() && limit.get("value").is_some())
        .collect();
    if configured.is_empty() {
        return Ok(Reply::ok(json!([])));
    }
    let vms: Vec<Vm> = hv::list_vms(&VmFilter {
        owner: Some(ctx.account.id.clone()),
        state: None,
        name: None,
        image: None,
        node: None,
        tag: None,
        offset: 0,
        limit: None,
    })
    .map_err(hv_error)?
    .vms
    .into_iter()
    .filter(|vm| !matches!(vm.state, VmState::Deleted | VmState::Failed))
    .collect();
    let images = if configured.iter().any(|l| l.get("check").is_some()) {
        hv::list_images().map_err(hv_error)?
    } else {
        Vec::new()
    };
    let limits = configured
        .into_iter()
        .map(|limit| {
            let counted = vms.iter().filter(|vm| counts_for(limit, vm, &images));
            let used = match limit["by"].as_str() {
                Some("ram") => counted.map(|vm| vm.ram_mib).sum::<u64>(),
                Some("quota") => counted.map(|vm| vm.disk_mib).sum::<u64>() / 1024,
                _ => counted.count() as u64,
            };
            let mut limit = limit.clone();
            if let Some(object) = limit.as_object_mut() {
                object.insert("used".into(), json!(used));
            }
            limit
        })
        .collect();
    Ok(Reply::ok(Value::Array(limits)))
}

/// Whether a machine falls under a limit's `check` (`os` or `image` name); all do without one.
fn counts_for(limit: &Value, vm: &Vm, images: &[Image]) -> bool {
    let image = || images.iter().find(|image| image.id == vm.image);
    match limit.get("check").and_then(Value::as_str) {
        Some("os") => image().is_some_and(|i| Some(i.os.as_str()) == limit["os"].as_str()),
        Some("image") => image().is_some_and(|i| Some(i.name.as_str()) == limit["image"].as_str()),
        _ => true,
    }
}
