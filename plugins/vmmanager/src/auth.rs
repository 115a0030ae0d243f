//! VMmanager's authentication: password sessions, long-lived tokens, one-use login keys, the session lifetime setting, and who the caller is.
//!
//! Sessions and tokens are the auth primitive's `id-uuid` tokens; the kernel keeps
//! only their hashes and slides a session's idle expiry on every use. A token comes
//! back in the `x-xsrf-token` header or the web UI's `ses6` cookie.

use serde::Deserialize;
use serde_json::{Value, json};
use tessera_sdk::auth::{self, Account, AuthError, TokenFormat, TokenRequest};
use tessera_sdk::{Params, Request, Response};

use crate::errors::{ApiError, ApiResult, code};
use crate::meta;
use crate::model::{format_time, now_ms, parse_time};

/// Password and key sessions: they die after `token_ttl` minutes unused.
const SESSION_SCOPE: &str = "vmmanager:session";
/// Tokens made with `POST /auth/v4/token`: a fixed end, no idle expiry.
const TOKEN_SCOPE: &str = "vmmanager:token";
/// What authenticates API calls: both of the above.
const API_SCOPES: &str = "vmmanager:*";
/// Login keys: outside `vmmanager:*`, so a key never authenticates a call itself.
const KEY_SCOPE: &str = "vmmanager-key:login";
/// How long an unused login key lives (the product: one hour).
const KEY_TTL_SECONDS: u64 = 3600;

/// The authenticated caller.
pub struct Caller {
    pub account: Account,
    /// The id of the session or token the request came with.
    pub token_id: String,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.account.admin
    }

    /// Only admins may go on.
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// How the caller is named in the hypervisor's audit trail.
    pub fn audit_name(&self) -> String {
        format!("vmmanager:{}", self.account.login)
    }
}

/// The session token of a request: `x-xsrf-token`, else the `ses6` cookie.
fn presented_token(req: &Request) -> Option<String> {
    req.header("x-xsrf-token")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .or_else(|| req.cookie("ses6").filter(|v| !v.is_empty()))
}

/// The caller of an API request, or 3001.
pub fn authenticate(req: &Request) -> ApiResult<Caller> {
    let token = presented_token(req).ok_or_else(ApiError::unauthorized)?;
    match auth::check_token(&token, API_SCOPES, &req.peer) {
        Ok(claims) => Ok(Caller {
            account: claims.owner,
            token_id: claims.id,
        }),
        Err(AuthError::InvalidCredentials | AuthError::NotFound(_) | AuthError::Disabled) => {
            Err(ApiError::unauthorized())
        }
        Err(other) => Err(other.into()),
    }
}

fn body<T: for<'de> Deserialize<'de>>(req: &Request) -> ApiResult<T> {
    let bytes: &[u8] = if req.body.is_empty() {
        b"{}"
    } else {
        &req.body
    };
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_body(e.to_string()))
}

/// A new session for `account`, answered as the product does.
fn session_for(account: &Account, description: &str) -> ApiResult<Response> {
    let idle = meta::token_ttl_minutes()?.saturating_mul(60);
    let issued = auth::issue_token(&TokenRequest {
        owner: account.login.clone(),
        scope: SESSION_SCOPE.into(),
        binding: None,
        ttl_seconds: None,
        idle_ttl_seconds: Some(idle),
        description: Some(description.into()),
        format: TokenFormat::IdUuid,
        one_use: false,
    })?;
    let body = json!({
        "id": issued.id,
        "token": issued.value,
        "confirmed": true,
        "expires_at": Value::Null,
    });
    Ok(Response::json(201, &body).with_cookie(
        "ses6",
        &issued.value,
        "Path=/; HttpOnly; SameSite=Strict",
    ))
}

#[derive(Deserialize)]
struct PasswordLogin {
    email: String,
    password: String,
}

/// `POST /auth/v4/public/token {email, password}`.
pub fn login(req: &Request, _: &Params) -> ApiResult<Response> {
    let form: PasswordLogin = body(req)?;
    match auth::verify_password(&form.email, &form.password, None, &req.peer) {
        Ok(account) => session_for(&account, "password session"),
        Err(AuthError::InvalidCredentials | AuthError::NotFound(_)) => Err(ApiError::new(
            401,
            code::INVALID_PASSWORD,
            "Invalid password",
        )),
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
struct KeyLogin {
    key: String,
}

/// `POST /auth/v4/public/key {key}`: trades a one-use key for a session.
pub fn login_with_key(req: &Request, _: &Params) -> ApiResult<Response> {
    let form: KeyLogin = body(req)?;
    match auth::check_token(form.key.trim(), KEY_SCOPE, &req.peer) {
        Ok(claims) => session_for(&claims.owner, "key session"),
        Err(AuthError::InvalidCredentials | AuthError::NotFound(_)) => Err(ApiError::new(
            401,
            code::INVALID_KEY,
            "Invalid or expired key",
        )),
        Err(other) => Err(other.into()),
    }
}

/// `POST /auth/v4/user/<email>/key` (admins): a one-use key for that user.
pub fn create_key(req: &Request, params: &Params) -> ApiResult<Response> {
    authenticate(req)?.require_admin()?;
    let email = params.get("email").unwrap_or_default();
    let account =
        account_by_email_or_login(email)?.ok_or_else(|| ApiError::not_found("user", email))?;
    let issued = auth::issue_token(&TokenRequest {
        owner: account.login,
        scope: KEY_SCOPE.into(),
        binding: None,
        ttl_seconds: Some(KEY_TTL_SECONDS),
        idle_ttl_seconds: None,
        description: Some("login key".into()),
        format: TokenFormat::IdUuid,
        one_use: true,
    })?;
    Ok(Response::json(
        201,
        &json!({ "id": issued.id, "key": issued.value }),
    ))
}

fn account_by_email_or_login(name: &str) -> ApiResult<Option<Account>> {
    if let Some(account) = auth::list_accounts(None, None)?
        .into_iter()
        .find(|a| a.email.eq_ignore_ascii_case(name))
    {
        return Ok(Some(account));
    }
    match auth::get_account(name) {
        Ok(found) => Ok(found),
        Err(AuthError::Invalid(_)) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
struct NewToken {
    expires_at: Option<String>,
    description: Option<String>,
}

/// `POST /auth/v4/token {expires_at, description}`: a token with a fixed end.
pub fn create_token(req: &Request, _: &Params) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    let form: NewToken = body(req)?;
    let text = form
        .expires_at
        .ok_or_else(|| ApiError::invalid_field("expires_at", "required: YYYY-MM-DD HH:MM:SS"))?;
    let ends = parse_time(&text).ok_or_else(|| {
        ApiError::invalid_field("expires_at", "expected YYYY-MM-DD HH:MM:SS (UTC)")
    })?;
    let now = now_ms();
    if ends <= now {
        return Err(ApiError::invalid_field(
            "expires_at",
            "must be in the future",
        ));
    }
    let description = form.description.unwrap_or_default();
    let issued = auth::issue_token(&TokenRequest {
        owner: caller.account.login,
        scope: TOKEN_SCOPE.into(),
        binding: None,
        ttl_seconds: Some((ends - now).div_ceil(1000)),
        idle_ttl_seconds: None,
        description: (!description.is_empty()).then(|| description.clone()),
        format: TokenFormat::IdUuid,
        one_use: false,
    })?;
    Ok(Response::json(
        201,
        &json!({
            "id": issued.id,
            "token": issued.value,
            "confirmed": true,
            "expires_at": format_time(ends),
            "description": description,
        }),
    ))
}

#[derive(Deserialize)]
struct Setting {
    value: Value,
}

/// `POST /auth/v4/setting/token_ttl {value}` (admins): minutes a new session lives unused.
pub fn set_token_ttl(req: &Request, _: &Params) -> ApiResult<Response> {
    authenticate(req)?.require_admin()?;
    let form: Setting = body(req)?;
    let minutes = match &form.value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .filter(|m| (1..=525_600).contains(m))
    .ok_or_else(|| ApiError::invalid_field("value", "minutes, a whole number from 1 to 525600"))?;
    meta::set_token_ttl_minutes(minutes)?;
    Ok(Response::json(
        200,
        &json!({ "value": minutes.to_string() }),
    ))
}

/// `GET /auth/v4/setting/token_ttl`.
pub fn get_token_ttl(req: &Request, _: &Params) -> ApiResult<Response> {
    authenticate(req)?;
    let minutes = meta::token_ttl_minutes()?;
    Ok(Response::json(
        200,
        &json!({ "value": minutes.to_string() }),
    ))
}

/// `DELETE /auth/v4/token`: logs out — the session or token the request came
/// with dies at once, and the `ses6` cookie is cleared.
pub fn logout(req: &Request, _: &Params) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    auth::revoke_token(&caller.token_id)?;
    Ok(
        Response::json(200, &json!({ "id": caller.token_id })).with_cookie(
            "ses6",
            "",
            "Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    )
}

/// `GET /auth/v4/whoami`.
pub fn whoami(req: &Request, _: &Params) -> ApiResult<Response> {
    let caller = authenticate(req)?;
    let account = &caller.account;
    let role = if account.admin { "@admin" } else { "@user" };
    Ok(Response::json(
        200,
        &json!({
            "id": account.id,
            "email": account.email,
            "login": account.login,
            "roles": [role],
            "state": if account.disabled { "disabled" } else { "active" },
        }),
    ))
}
