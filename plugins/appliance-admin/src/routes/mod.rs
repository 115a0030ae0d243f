//! One module per section of the spec.

pub mod backup;
pub mod certs;
pub mod info;
pub mod license;
pub mod network;
pub mod setup;
pub mod storage;
pub mod support;
pub mod update;

use tessera_sdk::multipart::{Form, Part};
use tessera_sdk::{Request, Response};

use crate::errors::ApiError;

/// The multipart form of a request, or 400.
pub fn form(req: &Request) -> Result<Form, ApiError> {
    req.multipart()
        .map_err(|e| ApiError::bad_request(format!("Invalid multipart/form-data: {e}")))
}

/// A required part, or 400 naming it.
pub fn part<'a>(form: &'a Form, name: &str) -> Result<&'a Part, ApiError> {
    form.get(name)
        .ok_or_else(|| ApiError::bad_request(format!("Missing parameter: {name}")))
}

/// A file download as upstream sends it.
pub fn download(bytes: Vec<u8>, filename: &str) -> Response {
    Response::new(200)
        .with_header("content-type", "application/octet-stream")
        .with_header("filename", filename)
        .with_header(
            "content-disposition",
            &format!("attachment; filename=\"{filename}\""),
        )
        .with_body(bytes)
}

/// `{mount}/{endpoint}` for `Location` headers.
pub fn location(req: &Request, endpoint: &str) -> String {
    format!("{}/{endpoint}", req.mount.trim_end_matches('/'))
}
