//! `POST /setup`: set the API token (open on first run) or change it. A
//! refused change is audited by the kernel and answered after a 2 s pause.

use tessera_sdk::Request;
use tessera_sdk::site_admin as admin;

use super::form;
use crate::errors::{ApiError, ApiResult, ok};
use crate::{auth, settings, state, validate};

/// File (in the plugin's files dir) holding a first-run token for the operator.
pub const FIRST_RUN_FILE: &str = "first-run-token";

pub fn change_token(req: &Request) -> ApiResult {
    let first_setup = !admin::api_token_exists();
    if !first_setup && let Err(e) = auth::require(req) {
        return Err(refuse(e, "authentication failed"));
    }
    let form = form(req).map_err(|e| refuse(e, "malformed form"))?;
    let Some(token) = form.text("newtoken") else {
        return Err(refuse(
            ApiError::bad_request("Missing parameter: newtoken"),
            "newtoken missing",
        ));
    };
    validate::token(token).map_err(|m| refuse(ApiError::bad_request(m), "newtoken invalid"))?;
    admin::api_token_set(token).map_err(|e| {
        tessera_sdk::error!("setting the API token failed: {e:?}");
        refuse(
            ApiError::bad_request("Unable to set the API token"),
            "token store failed",
        )
    })?;
    // A first-run token stops being needed once the operator chose one.
    let _ = std::fs::remove_file(state::file_path(FIRST_RUN_FILE));
    Ok(ok())
}

/// Audit, pause, then answer with `error`.
fn refuse(error: ApiError, reason: &str) -> ApiError {
    admin::api_token_refused(reason);
    error
}

/// With `first-run` enabled and no token yet, make one of random words and
/// leave it for the operator in the plugin's files dir (never in a log).
pub fn ensure_first_run_token() -> Result<(), ApiError> {
    let first_run = settings::first_run();
    if !first_run.enabled || admin::api_token_exists() {
        return Ok(());
    }
    let token = auth::first_run_token(first_run.word_length);
    std::fs::write(state::file_path(FIRST_RUN_FILE), format!("{token}\n"))?;
    admin::api_token_set(&token)
        .map_err(|e| ApiError::internal(format!("first-run token: {e:?}")))?;
    tessera_sdk::warn!(
        "first run: an API token was made; it is in the plugin's files dir as {FIRST_RUN_FILE}"
    );
    Ok(())
}
