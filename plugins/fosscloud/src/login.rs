//! FOSS-Cloud's login: HTTP basic auth checked against the site identity
//! store in a realm (the `/realm/<id>` suffix, else the configured default).

use tessera_sdk::Request;
use tessera_sdk::auth::{self, Account, AuthError};

use crate::errors::{ApiError, code};
use crate::settings::Settings;

/// The authenticated user of a request.
pub struct Caller {
    pub account: Account,
    /// The login as the identity store names it (`PARENT/SUB` for a sub-user);
    /// pools, groups and owners use this name.
    pub login: String,
}

/// Refuses a config whose `defaultRealm` is set but empty (upstream 500023).
pub fn check_default_realm(settings: &Settings) -> Result<(), ApiError> {
    match &settings.default_realm {
        Some(realm) if realm.trim().is_empty() => Err(no_default_realm()),
        _ => Ok(()),
    }
}

fn no_default_realm() -> ApiError {
    ApiError::new(
        code::NO_DEFAULT_REALM,
        "You have to set a default realm (defaultRealm) in the plugin settings",
    )
}

/// The realm a request logs in to: its `/realm/<id>` suffix, else the
/// configured default, else the identity store's default realm.
pub fn effective_realm(settings: &Settings, suffix: Option<&str>) -> Result<String, ApiError> {
    if let Some(realm) = suffix.filter(|r| !r.is_empty()) {
        return Ok(realm.to_string());
    }
    if let Some(realm) = &settings.default_realm {
        return Ok(realm.clone());
    }
    store_default_realm()?.ok_or_else(no_default_realm)
}

/// The identity store's default realm.
pub fn store_default_realm() -> Result<Option<String>, ApiError> {
    Ok(auth::list_realms()?
        .into_iter()
        .find(|r| r.is_default)
        .map(|r| r.name))
}

/// Checks the request's basic credentials in `realm`, with the spec's login codes.
pub fn authenticate(req: &Request, realm: &str) -> Result<Caller, ApiError> {
    let (user, password) = req
        .basic_auth()
        .ok_or_else(|| ApiError::new(code::NO_BASIC_AUTH, "HTTP-Auth missing"))?;
    if user.trim().is_empty() || password.trim().is_empty() {
        return Err(ApiError::new(
            code::EMPTY_CREDENTIALS,
            "Password or username empty",
        ));
    }
    let known = auth::list_realms()?.into_iter().any(|r| r.name == realm);
    if !known {
        return Err(ApiError::new(code::UNKNOWN_REALM, "Incorrect realm"));
    }
    match auth::verify_password(user.trim(), &password, Some(realm), &req.peer) {
        Ok(account) => Ok(Caller {
            login: qualified_login(&account),
            account,
        }),
        Err(e) => Err(login_error(e)),
    }
}

fn login_error(e: AuthError) -> ApiError {
    let incorrect = |dev: &str| ApiError::new(code::BAD_CREDENTIALS, dev);
    match e {
        AuthError::InvalidCredentials | AuthError::NotFound(_) | AuthError::Invalid(_) => {
            incorrect("Incorrect credentials")
        }
        AuthError::Disabled => incorrect("Incorrect credentials: the account is disabled"),
        AuthError::Throttled(secs) => {
            incorrect(&format!("Too many failed logins; retry in {secs} s"))
                .with_header("retry-after", secs.to_string())
        }
        other => ApiError::from(other),
    }
}

/// `LOGIN`, or `PARENT/SUB` for a sub-user.
pub fn qualified_login(account: &Account) -> String {
    match &account.parent {
        Some(parent) => format!("{parent}/{}", account.login),
        None => account.login.clone(),
    }
}
