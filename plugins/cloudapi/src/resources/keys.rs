//! ListKeys, GetKey, CreateKey, DeleteKey, and the same four for a sub-user's keys.
//! Keys live in the kernel's identity store, so a key added with `tessera key add`
//! signs CloudAPI requests and a key added here shows in `tessera key list`.

use serde_json::Value;
use tessera_sdk::Params;
use tessera_sdk::auth::{self, AuthError};

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::model::key_json;
use crate::protocol::Reply;
use crate::resources::users;

pub fn list(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    list_of(&ctx.account.login)
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    get_of(&ctx.account.login, p.get("key").unwrap_or_default())
}

pub fn create(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    create_for(ctx, &ctx.account.login, &format!("/{}/keys", ctx.login()))
}

pub fn delete(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    delete_of(&ctx.account.login, p.get("key").unwrap_or_default())
}

pub fn list_user(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    list_of(&user_owner(ctx, p)?.0)
}

pub fn get_user(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    get_of(&user_owner(ctx, p)?.0, p.get("key").unwrap_or_default())
}

pub fn create_user(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let (owner, login) = user_owner(ctx, p)?;
    create_for(ctx, &owner, &format!("/{}/users/{login}/keys", ctx.login()))
}

pub fn delete_user(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    delete_of(&user_owner(ctx, p)?.0, p.get("key").unwrap_or_default())
}

/// The identity-store owner (`ACCOUNT/SUB`) and login of the path's sub-user.
fn user_owner(ctx: &Ctx<'_>, p: &Params) -> ApiResult<(String, String)> {
    let user = users::existing(ctx, p.get("user").unwrap_or_default())?;
    Ok((ctx.sub_login(&user.login), user.login))
}

fn list_of(owner: &str) -> ApiResult<Reply> {
    let keys = auth::list_keys(owner)?;
    Ok(Reply::ok(Value::Array(keys.iter().map(key_json).collect())))
}

fn get_of(owner: &str, key: &str) -> ApiResult<Reply> {
    let key = find(owner, key)?;
    Ok(Reply::ok(key_json(&key)))
}

fn find(owner: &str, key: &str) -> ApiResult<auth::SshKey> {
    match auth::get_key(owner, key) {
        Ok(Some(found)) => Ok(found),
        Ok(None) | Err(AuthError::Invalid(_)) => {
            Err(ApiError::not_found(format!("key {key} does not exist")))
        }
        Err(e) => Err(e.into()),
    }
}

fn create_for(ctx: &Ctx<'_>, owner: &str, collection_path: &str) -> ApiResult<Reply> {
    let key = ctx.inputs.required("key")?;
    let name = ctx.inputs.string("name")?.unwrap_or_default();
    let created = auth::add_key(owner, &name, &key).map_err(|e| match e {
        AuthError::Invalid(why) => ApiError::invalid_argument(format!("key is invalid: {why}")),
        AuthError::Conflict(what) => ApiError::invalid_argument(format!("{what} already exists")),
        other => other.into(),
    })?;
    let location = format!(
        "{collection_path}/{}",
        percent_encoding::utf8_percent_encode(&created.name, percent_encoding::NON_ALPHANUMERIC)
    );
    Ok(Reply::created(key_json(&created), location))
}

fn delete_of(owner: &str, key: &str) -> ApiResult<Reply> {
    let found = find(owner, key)?;
    auth::delete_key(owner, &found.fingerprint_sha256)?;
    Ok(Reply::no_content())
}
