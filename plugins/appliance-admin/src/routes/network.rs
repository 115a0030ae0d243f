//! Network: `POST /settings` (a settings.json checked by the spec's rules)
//! and `GET /settings` (404 until set). Tessera keeps them for the
//! appliance's own tooling; it does not reconfigure the host's network.

use tessera_sdk::{Request, Response};

use super::{form, location, part};
use crate::errors::{ApiError, ApiResult, accepted};
use crate::{state, validate};

const DOC: &str = "settings";

pub fn update(req: &Request) -> ApiResult {
    let form = form(req)?;
    let settings: serde_json::Value = serde_json::from_slice(&part(&form, "settings")?.data)
        .map_err(|e| ApiError::bad_request(format!("settings is not valid JSON: {e}")))?;
    validate::network_settings(&settings).map_err(ApiError::bad_request)?;
    state::save_document(DOC, &settings)?;
    Ok(accepted(&location(req, "settings")))
}

pub fn get(_: &Request) -> ApiResult {
    match state::document(DOC)? {
        Some(settings) => Ok(Response::json(200, &settings)),
        None => Err(ApiError::not_found("Network settings not found")),
    }
}
