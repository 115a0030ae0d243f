//! Storage: `POST /storage` (a settings.json whose `storage.type` is one of
//! the offered options, with that type's fields checked) and `GET /storage`
//! (404 until set). Applied by the appliance at its next reboot.

use serde_json::json;
use tessera_sdk::{Request, Response};

use super::{form, location, part};
use crate::errors::{ApiError, ApiResult, accepted};
use crate::{settings, state, validate};

const DOC: &str = "storage";

pub fn update(req: &Request) -> ApiResult {
    let form = form(req)?;
    let doc: serde_json::Value = serde_json::from_slice(&part(&form, "settings")?.data)
        .map_err(|e| ApiError::bad_request(format!("settings is not valid JSON: {e}")))?;
    validate::storage_settings(&doc, &settings::storage_options())
        .map_err(ApiError::bad_request)?;
    state::save_document(DOC, &json!({ "storage": doc["storage"] }))?;
    Ok(accepted(&location(req, "storage")))
}

pub fn get(_: &Request) -> ApiResult {
    match state::document(DOC)? {
        Some(doc) => Ok(Response::json(
            200,
            &json!({ "storage": doc["storage"], "options": settings::storage_options() }),
        )),
        None => Err(ApiError::not_found("Storage settings not found")),
    }
}
