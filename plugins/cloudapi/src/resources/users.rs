//! ListUsers, GetUser, CreateUser, UpdateUser, ChangeUserPassword, DeleteUser: the
//! account's sub-users, kept in the kernel's identity store (`ACCOUNT/SUB`).

use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::auth::{self, Account, AccountUpdate, AuthError, NewAccount};
use tessera_sdk::storage;

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::ids::is_uuid;
use crate::model::{self, PROFILES, Profile};
use crate::protocol::Reply;
use crate::protocol::inputs::paging;
use crate::rbac::store::{self, ROLE_TAGS, ROLES};
use crate::resources::account::{apply_update, read_profile};

/// A sub-user of the account by login or id.
pub fn find(ctx: &Ctx<'_>, login_or_id: &str) -> ApiResult<Option<Account>> {
    if login_or_id.is_empty() || login_or_id.contains('/') {
        return Ok(None);
    }
    match auth::get_account(&ctx.sub_login(login_or_id)) {
        Ok(Some(user)) => return Ok(Some(user)),
        Ok(None) | Err(AuthError::Invalid(_)) | Err(AuthError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    if !is_uuid(login_or_id) {
        return Ok(None);
    }
    let by_id = auth::get_account_by_id(login_or_id)?;
    Ok(by_id.filter(|user| user.parent.as_deref() == Some(ctx.login())))
}

/// Like [`find`], or 404.
pub fn existing(ctx: &Ctx<'_>, login_or_id: &str) -> ApiResult<Account> {
    find(ctx, login_or_id)?
        .ok_or_else(|| ApiError::not_found(format!("User {login_or_id} does not exist")))
}

fn user_json(user: &Account) -> ApiResult<Value> {
    Ok(model::account_json(user, &model::profile(&user.id)?))
}

pub fn list(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let (offset, limit) = paging(&ctx.inputs)?;
    let mut users = auth::list_accounts(None, Some(ctx.login()))?;
    users.sort_by(|a, b| a.login.cmp(&b.login));
    let total = users.len();
    let page = users
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(user_json)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Reply::ok(Value::Array(page))
        .with_header("x-resource-count", total.to_string())
        .with_header("x-query-limit", limit.to_string()))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let user = existing(ctx, p.get("user").unwrap_or_default())?;
    let mut body = user_json(&user)?;
    if ctx.inputs.boolean("membership")?.unwrap_or(false) {
        let roles = store::roles_of(&ctx.account.id)?;
        let mut all = Vec::new();
        let mut defaults = Vec::new();
        for role in &roles {
            if let Some(member) = role.value.members.iter().find(|m| m.id == user.id) {
                all.push(role.value.name.clone());
                if member.default {
                    defaults.push(role.value.name.clone());
                }
            }
        }
        body["roles"] = json!(all);
        body["default_roles"] = json!(defaults);
    }
    Ok(Reply::ok(body))
}

pub fn create(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let inputs = &ctx.inputs;
    let login = inputs.required("login")?;
    let email = inputs.required("email")?;
    let password = inputs.required("password")?;
    let user = auth::create_account(&NewAccount {
        login: login.clone(),
        email,
        password: Some(password),
        first_name: inputs.string("firstName")?,
        last_name: inputs.string("lastName")?,
        company: inputs.string("companyName")?,
        phone: inputs.string("phone")?,
        realm: None,
        admin: false,
        parent: Some(ctx.login().to_string()),
    })
    .map_err(|e| match e {
        AuthError::Conflict(what) => {
            ApiError::invalid_argument(format!("{what} is already in use"))
        }
        other => other.into(),
    })?;
    let mut profile = Profile::default();
    if read_profile(inputs, &mut profile, false)? {
        profile.updated = user.updated;
        PROFILES.put(&user.id, &profile, Some(0))?;
    }
    let location = format!("/{}/users/{}", ctx.login(), user.login);
    Ok(Reply::created(
        model::account_json(&user, &profile),
        location,
    ))
}

pub fn update(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let user = existing(ctx, p.get("user").unwrap_or_default())?;
    if ctx.inputs.has("password") {
        return Err(ApiError::invalid_argument(
            "use ChangeUserPassword (POST .../change_password) to change a password",
        ));
    }
    let user = match ctx.inputs.string("login")? {
        Some(login) if login != user.login => {
            auth::rename_account(&ctx.sub_login(&user.login), &login).map_err(|e| match e {
                AuthError::Conflict(_) => {
                    ApiError::invalid_argument(format!("login {login} is already in use"))
                }
                other => other.into(),
            })?
        }
        _ => user,
    };
    let (user, profile) = apply_update(ctx, &user, &ctx.sub_login(&user.login), false)?;
    Ok(Reply::ok(model::account_json(&user, &profile)))
}

pub fn change_password(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let user = existing(ctx, p.get("user").unwrap_or_default())?;
    let password = ctx.inputs.required("password")?;
    let confirmation = ctx.inputs.required("password_confirmation")?;
    if password != confirmation {
        return Err(ApiError::invalid_argument(
            "password and password_confirmation do not match",
        ));
    }
    let user = auth::update_account(
        &ctx.sub_login(&user.login),
        &AccountUpdate {
            email: None,
            first_name: None,
            last_name: None,
            company: None,
            phone: None,
            disabled: None,
            admin: None,
            password: Some(password),
        },
    )?;
    Ok(Reply::ok(user_json(&user)?))
}

/// Removes the sub-user, then (in one batch) its profile, its role memberships and the
/// role tags on it.
pub fn delete(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let user = existing(ctx, p.get("user").unwrap_or_default())?;
    auth::delete_account(&ctx.sub_login(&user.login))?;
    let mut writes = vec![PROFILES.delete_op(&user.id, None)];
    for mut role in store::roles_of(&ctx.account.id)? {
        let before = role.value.members.len();
        role.value.members.retain(|m| m.id != user.id);
        if role.value.members.len() != before {
            writes.push(ROLES.put_op(&role.key, &role.value, Some(role.version))?);
        }
    }
    let path = format!("/{}/users/{}", ctx.login(), user.id);
    writes.push(ROLE_TAGS.delete_op(&path, None));
    storage::batch(&writes)?;
    Ok(Reply::no_content())
}
