//! The appliance admin API v1.24.0 (`/api/v1/admin`): administering the
//! Tessera site itself with curl. Spec: `appliance-admin-api.txt`.
//!
//! Routes (relative to the mount), in the spec's order:
//!
//! | method | path | handler | |
//! | --- | --- | --- | --- |
//! | POST | /setup | setup::change_token | open on first run, else token/hash |
//! | POST | /update | update::start | 202, a job |
//! | GET | /update | update::status | |
//! | GET | /update/log | update::log | |
//! | GET | /logs | support::logs | logs.tar.gz |
//! | GET | /debug | support::debug | debug-bundle.tar, sealed |
//! | GET | /reboot | info::reboot | 202, backup then graceful restart |
//! | GET | /services | info::services | |
//! | GET | /version, /changelog, /build, /health, /endpoints | info::* | |
//! | POST, GET | /settings | network::* | optional |
//! | POST, GET | /certs | certs::* | optional |
//! | POST, GET | /license | license::* | optional |
//! | POST, GET | /storage | storage::* | optional |
//! | POST, GET | /backup; GET /backup/download, /backup/log; POST /backup/restore | backup::* | optional |
//!
//! Every endpoint but a first-run `POST /setup` needs `?token=` or `?hash=`
//! (`auth.rs`); errors are `{"Status","Error-Message"}` (`errors.rs`).

mod auth;
mod errors;
#[doc(hidden)]
pub mod fuzzing;
mod routes;
mod settings;
mod state;
mod validate;

use tessera_sdk::{Job, JobOutcome, Plugin, Request, Response, RouteMatch, Router};

use errors::{ApiError, ApiResult};
use routes::{backup, certs, info, license, network, setup, storage, support, update};

type Handler = fn(&Request) -> ApiResult;

/// (method, path, handler, needs auth)
const ROUTES: &[(&str, &str, Handler, bool)] = &[
    ("POST", "/setup", setup::change_token, false),
    ("POST", "/update", update::start, true),
    ("GET", "/update", update::status, true),
    ("GET", "/update/log", update::log, true),
    ("GET", "/logs", support::logs, true),
    ("GET", "/debug", support::debug, true),
    ("GET", "/reboot", info::reboot, true),
    ("GET", "/services", info::services, true),
    ("GET", "/version", info::version, true),
    ("GET", "/changelog", info::changelog, true),
    ("GET", "/build", info::build, true),
    ("GET", "/health", info::health, true),
    ("GET", "/endpoints", info::endpoints, true),
    ("POST", "/settings", network::update, true),
    ("GET", "/settings", network::get, true),
    ("POST", "/certs", certs::install, true),
    ("GET", "/certs", certs::status, true),
    ("POST", "/license", license::update, true),
    ("GET", "/license", license::get, true),
    ("POST", "/storage", storage::update, true),
    ("GET", "/storage", storage::get, true),
    ("POST", "/backup", backup::action, true),
    ("GET", "/backup", backup::status, true),
    ("GET", "/backup/download", backup::download_archive, true),
    ("GET", "/backup/log", backup::log, true),
    ("POST", "/backup/restore", backup::restore, true),
];

fn router() -> Router<(Handler, bool)> {
    ROUTES
        .iter()
        .fold(Router::new(), |r, (method, path, handler, auth)| {
            r.add(method, path, (*handler, *auth))
        })
}

struct ApplianceAdmin;

impl Plugin for ApplianceAdmin {
    fn handle(req: Request) -> Response {
        answer(&req).unwrap_or_else(ApiError::into_response)
    }

    fn refuse(_: &Request, refusal: &tessera_sdk::Refusal) -> Response {
        ApiError::new(refusal.status, &refusal.message).into_response()
    }

    fn run_job(job: Job) -> JobOutcome {
        match job.kind.as_str() {
            update::JOB_KIND => update::run(&job),
            backup::JOB_KIND => backup::run(&job),
            other => JobOutcome::Failed(("UnknownKind".into(), format!("no job kind {other}"))),
        }
    }
}

fn answer(req: &Request) -> ApiResult {
    let endpoint = req
        .subpath
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    let known = settings::DEFAULT.contains(&endpoint) || settings::OPTIONAL.contains(&endpoint);
    if !known
        || (settings::OPTIONAL.contains(&endpoint)
            && !settings::enabled_optional().iter().any(|e| e == endpoint))
    {
        return Err(ApiError::not_found("Endpoint not found"));
    }
    setup::ensure_first_run_token()?;
    match router().route(&req.method, req.subpath.trim_end_matches('/')) {
        RouteMatch::Found((handler, needs_auth), _) => {
            if *needs_auth {
                auth::require(req)?;
            }
            handler(req)
        }
        RouteMatch::MethodNotAllowed(_) => {
            auth::require(req)?;
            Err(ApiError::bad_request("Invalid method"))
        }
        RouteMatch::NotFound => Err(ApiError::not_found("Endpoint not found")),
    }
}

tessera_sdk::export_plugin!(ApplianceAdmin);

/// Every route as `(method, pattern)`: what tests visit route by route.
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    router().table()
}
