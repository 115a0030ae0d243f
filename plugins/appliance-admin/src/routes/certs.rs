//! TLS: `POST /certs` (public, private, optional ca) validates the pair and
//! installs it on the kernel's TLS listener without dropping connections;
//! `GET /certs` shows how the last install went (nulls before any).

use serde_json::json;
use tessera_sdk::site_admin as admin;
use tessera_sdk::{Request, Response};

use super::{form, location, part};
use crate::errors::{ApiError, ApiResult, accepted};
use crate::state::{self, TaskStatus};

const TASK: &str = "certs";
const SOURCE: &str = "SYSTEM";

pub fn install(req: &Request) -> ApiResult {
    let form = form(req)?;
    let text = |name: &str| -> Result<String, ApiError> {
        String::from_utf8(part(&form, name)?.data.clone())
            .map_err(|_| ApiError::bad_request(format!("{name} is not PEM text")))
    };
    let (public, private) = (text("public")?, text("private")?);
    let ca = match form.get("ca") {
        Some(_) => Some(text("ca")?),
        None => None,
    };
    let mut status = TaskStatus::running(None);
    status.log(SOURCE, "Validating and adding TLS certificates");
    state::save_task(TASK, &status)?;
    match admin::install_certificate(&public, &private, ca.as_deref()) {
        Ok(fingerprint) => {
            status.status = "success".into();
            status.log(
                SOURCE,
                &format!("TLS certificates installed (sha256 {fingerprint})"),
            );
            state::save_task(TASK, &status)?;
            Ok(accepted(&location(req, "certs")))
        }
        Err(e) => {
            let message = match e {
                admin::AdminError::Invalid(m) | admin::AdminError::Failed(m) => m,
                other => format!("{other:?}"),
            };
            status.status = "failed".into();
            status.log(
                SOURCE,
                &format!("Failed adding TLS certificates: {message}"),
            );
            state::save_task(TASK, &status)?;
            Err(ApiError::bad_request(format!(
                "Invalid TLS certificates: {message}"
            )))
        }
    }
}

pub fn status(_: &Request) -> ApiResult {
    let body = match state::task(TASK)? {
        Some(task) => json!({ "status": task.status, "log": task.tail(10) }),
        None => json!({ "status": null, "log": null }),
    };
    Ok(Response::json(200, &body))
}
