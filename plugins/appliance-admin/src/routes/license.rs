//! License: `POST /license` takes a license file sealed with the site's
//! package key (`tessera update seal`), holding `{app, users, expires, name,
//! contact}`; `GET /license` shows it. Invalid or absent: 404.

use serde::{Deserialize, Serialize};
use tessera_sdk::site_admin as admin;
use tessera_sdk::{Request, Response};

use super::form;
use crate::errors::{ApiError, ApiResult};
use crate::state::{self, file_path};

const DOC: &str = "license";
const UPLOAD: &str = "license.asc";

#[derive(Debug, Serialize, Deserialize)]
struct License {
    app: String,
    users: u64,
    expires: String,
    name: String,
    contact: String,
}

pub fn update(req: &Request) -> ApiResult {
    let form = form(req)?;
    let file = form
        .get("license")
        .filter(|p| !p.data.is_empty())
        .ok_or_else(|| ApiError::not_found("License file not found"))?;
    std::fs::write(file_path(UPLOAD), &file.data)?;
    let opened = admin::open_sealed(UPLOAD);
    let _ = std::fs::remove_file(file_path(UPLOAD));
    let plain = opened.map_err(|_| ApiError::not_found("Invalid license file"))?;
    let license: License =
        serde_json::from_slice(&plain).map_err(|_| ApiError::not_found("Invalid license file"))?;
    let value = serde_json::to_value(&license).map_err(|e| ApiError::bad_request(e.to_string()))?;
    state::save_document(DOC, &value)
        .map_err(|_| ApiError::bad_request("Unable to update the license"))?;
    Ok(Response::json(200, &value))
}

pub fn get(_: &Request) -> ApiResult {
    match state::document(DOC)? {
        Some(license) => Ok(Response::json(200, &license)),
        None => Err(ApiError::not_found("License not found")),
    }
}
