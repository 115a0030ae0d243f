//! Support: `GET /logs` (logs.tar.gz) and `GET /debug` (an encrypted
//! debug-bundle.tar the developers open with `tessera update unseal`).

use tessera_sdk::Request;
use tessera_sdk::site_admin::{self as admin, AdminError};

use super::download;
use crate::errors::{ApiError, ApiResult};
use crate::state::file_path;

pub fn logs(_: &Request) -> ApiResult {
    served("logs.tar.gz", admin::write_logs_archive("logs.tar.gz"))
}

pub fn debug(_: &Request) -> ApiResult {
    served(
        "debug-bundle.tar",
        admin::write_debug_bundle("debug-bundle.tar"),
    )
}

/// The file the kernel just wrote, as a download; 404 if there was nothing
/// to write, 400 if writing failed.
fn served(name: &str, written: Result<admin::FileInfo, AdminError>) -> ApiResult {
    match written {
        Ok(_) => {
            let bytes = std::fs::read(file_path(name))
                .map_err(|_| ApiError::not_found(format!("{name} not found")))?;
            let _ = std::fs::remove_file(file_path(name));
            Ok(download(bytes, name))
        }
        Err(AdminError::NotFound(m)) => Err(ApiError::not_found(m)),
        Err(e) => Err(ApiError::bad_request(format!(
            "Unable to create {name}: {e:?}"
        ))),
    }
}
