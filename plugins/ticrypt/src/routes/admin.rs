//! Admin routes (`/api/admin/...`, admin accounts only): mint typed tokens
//! for a user, and manage realms. Drives and projects have their admin
//! routes beside their token routes.

use serde_json::json;
use tessera_sdk::auth::{self, TokenFormat, TokenRequest};
use tessera_sdk::storage::{self as st, StorageError};
use tessera_sdk::{Params, Request, Response};

use crate::auth::{Caller, TokenType, find_account};
use crate::errors::{ApiError, ApiResult};
use crate::fields::Fields;
use crate::model::{Driver, RealmInfo, now_millis};
use crate::store::{self, REALMS};

/// Longest token lifetime an admin may ask for: one year.
const MAX_TTL_SECONDS: u64 = 366 * 24 * 3600;

/// `{login, type, ttlSeconds?, idleTtlSeconds?, description?}` -> the token, shown once.
pub fn mint_token(req: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    let body = Fields::from_body(req)?;
    body.only(&[
        "login",
        "type",
        "ttlSeconds",
        "idleTtlSeconds",
        "description",
    ])?;
    let account = find_account(&body.text("login", 256)?)?;
    let names: Vec<&str> = TokenType::ALL.iter().map(|t| t.name()).collect();
    let kind = body
        .opt_choice("type", &names)?
        .and_then(|n| TokenType::parse(&n))
        .ok_or_else(|| ApiError::missing("type"))?;
    if kind == TokenType::Admin && !account.admin {
        return Err(ApiError::new(
            403,
            "AdminRequired",
            "admin tokens are issued to admin accounts only",
        ));
    }
    let owner = match &account.parent {
        Some(parent) => format!("{parent}/{}", account.login),
        None => account.login.clone(),
    };
    let issued = auth::issue_token(&TokenRequest {
        owner,
        scope: kind.scope(),
        binding: None,
        ttl_seconds: body.opt_range("ttlSeconds", 1, MAX_TTL_SECONDS)?,
        idle_ttl_seconds: body.opt_range("idleTtlSeconds", 1, MAX_TTL_SECONDS)?,
        description: body.opt_str("description", 256)?,
        format: TokenFormat::Alnum32,
        one_use: false,
    })?;
    Ok(Response::json(
        200,
        &json!({
            "id": issued.id,
            "token": issued.value,
            "type": kind.name(),
            "scope": kind.scope(),
            "owner": account.id,
            "login": account.login,
            "expires": issued.expires_at,
        }),
    ))
}

pub fn list_realms(_: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    Ok(Response::json(200, &store::all::<RealmInfo>(REALMS)?))
}

/// `{id, driver: "libvirt" | "nutanix", name?, description?}`.
pub fn create_realm(req: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    let body = Fields::from_body(req)?;
    body.only(&["id", "name", "driver", "description"])?;
    let id = body.text("id", 64)?;
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ApiError::invalid(
            "id may hold only letters, digits, - _ and .",
        ));
    }
    let driver = match body
        .opt_choice("driver", &["libvirt", "nutanix"])?
        .as_deref()
    {
        Some("libvirt") => Driver::Libvirt,
        Some(_) => Driver::Nutanix,
        None => return Err(ApiError::missing("driver")),
    };
    let realm = RealmInfo {
        name: body.opt_str("name", 256)?.unwrap_or_else(|| id.clone()),
        id,
        driver,
        description: body.opt_str("description", 4096)?.unwrap_or_default(),
        created: now_millis(),
    };
    match REALMS.insert(&realm.id, &realm) {
        Ok(_) => Ok(Response::json(200, &realm)),
        Err(st::Error::Storage(StorageError::AlreadyExists)) => Err(ApiError::new(
            409,
            "RealmExists",
            format!("realm {} exists", realm.id),
        )),
        Err(e) => Err(e.into()),
    }
}
