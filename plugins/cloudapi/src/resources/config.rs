//! GetConfig, UpdateConfig: per-account settings, today `default_network`.

use serde_json::{Map, Value};
use tessera_sdk::Params;
use tessera_sdk::storage::{self, Collection, StorageError};

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::ids::is_uuid;
use crate::protocol::Reply;

const CONFIGS: Collection = Collection::new("configs");

/// The keys UpdateConfig accepts.
const KEYS: [&str; 1] = ["default_network"];

pub fn get(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let config = CONFIGS
        .get::<Map<String, Value>>(&ctx.account.id)?
        .map(|c| c.value)
        .unwrap_or_default();
    Ok(Reply::ok(Value::Object(config)))
}

/// `PUT /:login/config` is also the config's SetRoleTags: a body with only `role-tag`.
pub fn update(ctx: &Ctx<'_>, params: &Params) -> ApiResult<Reply> {
    if ctx.inputs.has("role-tag") && !KEYS.iter().any(|key| ctx.inputs.has(key)) {
        return crate::resources::role_tags::set(ctx, params);
    }
    let stored = CONFIGS.get::<Map<String, Value>>(&ctx.account.id)?;
    let version = stored.as_ref().map_or(0, |c| c.version);
    let mut config = stored.map(|c| c.value).unwrap_or_default();
    let mut changed = false;
    for key in KEYS {
        let Some(value) = ctx.inputs.string(key)? else {
            continue;
        };
        if !is_uuid(&value) {
            return Err(ApiError::invalid_argument(format!(
                "{key} must be a network UUID"
            )));
        }
        config.insert(key.to_string(), Value::String(value));
        changed = true;
    }
    if !changed {
        return Err(ApiError::invalid_argument(format!(
            "nothing to update: the configurable values are {}",
            KEYS.join(", ")
        )));
    }
    CONFIGS
        .put(&ctx.account.id, &config, Some(version))
        .map_err(|e| match e {
            storage::Error::Storage(StorageError::Conflict(_)) => {
                ApiError::in_use("the config was changed by another request; try again")
            }
            other => other.into(),
        })?;
    Ok(Reply::ok(Value::Object(config)))
}

/// The account's `default_network`, if set.
pub fn default_network(account_id: &str) -> ApiResult<Option<String>> {
    Ok(CONFIGS
        .get::<Map<String, Value>>(account_id)?
        .and_then(|c| {
            c.value
                .get("default_network")
                .and_then(Value::as_str)
                .map(String::from)
        }))
}
