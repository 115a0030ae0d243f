//! VMmanager 6, mounted at `/vm/v3`, `/auth/v4` and `/api/auth/v4`: session auth, the list-filter language, and hosts, nodes, clusters, OS images, disks and tasks on the site's hypervisor.
//!
//! Routes (relative to each mount; a trailing `/` is ignored):
//!
//! ```text
//! /auth/v4 and /api/auth/v4
//!   POST   /public/token          {email, password} -> {id, token, confirmed, expires_at}
//!   POST   /public/key            {key} -> a session for the key's user (one use)
//!   POST   /token                 {expires_at, description} -> a token with a fixed end
//!   DELETE /token                 logout: the presented session or token dies
//!   GET    /setting/token_ttl     minutes a session lives unused
//!   POST   /setting/token_ttl     {value} (admins)
//!   POST   /user/:email/key       (admins) -> {id, key}
//!   GET    /whoami
//! /vm/v3                          lists take ?where=&orderby=&limit=
//!   GET    /host                  POST /host (create, a task)
//!   GET    /host/:id              POST /host/:id (edit)      DELETE /host/:id (a task)
//!   POST   /host/:id/start|stop|restart (tasks)   POST /host/:id/resource (a task)
//!   POST   /host/:id/migrate {node?} (admins, a task)   GET /host/:id/history
//!   GET    /node   /node/:id      POST /node/:id {cluster} (admins)
//!   GET    /cluster /cluster/:id  POST /cluster, POST /cluster/:id (admins)
//!   GET    /os     /os/:id
//!   GET    /disk   /disk/:id
//!   GET    /task   /task/:id
//! ```

mod auth;
mod errors;
mod filter;
#[doc(hidden)]
pub mod fuzzing;
mod hosts;
mod inventory;
mod listing;
mod meta;
mod model;
mod placement;
mod projection;
mod resources;
mod schema;
mod tasks;

use errors::{ApiError, ApiResult, code};
use tessera_sdk::{Job, JobOutcome, Params, Plugin, Request, Response, RouteMatch, Router};

type Handler = fn(&Request, &Params) -> ApiResult<Response>;

fn auth_routes() -> Router<Handler> {
    Router::<Handler>::new()
        .add("POST", "/public/token", auth::login)
        .add("POST", "/public/key", auth::login_with_key)
        .add("POST", "/token", auth::create_token)
        .add("DELETE", "/token", auth::logout)
        .add("GET", "/setting/token_ttl", auth::get_token_ttl)
        .add("POST", "/setting/token_ttl", auth::set_token_ttl)
        .add("POST", "/user/:email/key", auth::create_key)
        .add("GET", "/whoami", auth::whoami)
}

fn vm_routes() -> Router<Handler> {
    Router::<Handler>::new()
        .add("GET", "/host", hosts::list)
        .add("POST", "/host", hosts::create)
        .add("GET", "/host/:id", hosts::get)
        .add("POST", "/host/:id", hosts::edit)
        .add("DELETE", "/host/:id", hosts::delete)
        .add("POST", "/host/:id/start", hosts::start)
        .add("POST", "/host/:id/stop", hosts::stop)
        .add("POST", "/host/:id/restart", hosts::restart)
        .add("POST", "/host/:id/resource", hosts::resize)
        .add("POST", "/host/:id/migrate", hosts::migrate)
        .add("GET", "/host/:id/history", hosts::history)
        .add("GET", "/node", resources::list_nodes)
        .add("GET", "/node/:id", resources::get_node)
        .add("POST", "/node/:id", resources::edit_node)
        .add("GET", "/cluster", resources::list_clusters)
        .add("POST", "/cluster", resources::create_cluster)
        .add("GET", "/cluster/:id", resources::get_cluster)
        .add("POST", "/cluster/:id", resources::edit_cluster)
        .add("GET", "/os", resources::list_os)
        .add("GET", "/os/:id", resources::get_os)
        .add("GET", "/disk", resources::list_disks)
        .add("GET", "/disk/:id", resources::get_disk)
        .add("GET", "/task", resources::list_tasks)
        .add("GET", "/task/:id", resources::get_task)
}

struct VmManager;

impl Plugin for VmManager {
    fn handle(req: Request) -> Response {
        let routes = if req.mount.trim_end_matches('/').ends_with("/auth/v4") {
            auth_routes()
        } else {
            vm_routes()
        };
        // `/vm/v3/host/` is the spec's own spelling of the list.
        let path = match req.subpath.trim_end_matches('/') {
            "" => "/",
            trimmed => trimmed,
        };
        let result = match routes.route(&req.method, path) {
            RouteMatch::Found(handler, params) => {
                check_body(&req).and_then(|()| handler(&req, &params))
            }
            RouteMatch::MethodNotAllowed(allowed) => {
                Err(
                    ApiError::new(405, code::METHOD_NOT_ALLOWED, "Method not allowed")
                        .with_header("allow", allowed.join(", ")),
                )
            }
            RouteMatch::NotFound => Err(ApiError::new(404, code::NOT_FOUND, "Unknown function")
                .with_value(serde_json::json!({ "path": req.path }))),
        };
        result.unwrap_or_else(ApiError::into_response)
    }

    fn refuse(_: &Request, refusal: &tessera_sdk::Refusal) -> Response {
        ApiError::new(refusal.status, code::BAD_BODY, &refusal.message).into_response()
    }

    fn run_job(job: Job) -> JobOutcome {
        match job.kind.as_str() {
            "host_create" | "host_start" | "host_stop" | "host_restart" | "host_delete"
            | "host_edit_resource" | "host_migrate" => tasks::run(&job),
            other => JobOutcome::Failed(("UnknownKind".into(), format!("no task kind {other}"))),
        }
    }
}

/// Every request body, whether or not its route reads one, is a JSON object
/// without NUL or other control characters (tabs and line breaks aside): a
/// malformed body is refused before anything changes.
fn check_body(req: &Request) -> ApiResult<()> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let value: serde_json::Value =
        serde_json::from_slice(&req.body).map_err(|e| ApiError::bad_body(e.to_string()))?;
    if !value.is_object() {
        return Err(ApiError::bad_body("the body must be a JSON object"));
    }
    if has_control_characters(&value) {
        return Err(ApiError::bad_body(
            "strings may not hold control characters",
        ));
    }
    Ok(())
}

fn has_control_characters(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    let bad = |s: &str| {
        s.chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    };
    match value {
        Value::String(s) => bad(s),
        Value::Array(items) => items.iter().any(has_control_characters),
        Value::Object(map) => map.iter().any(|(k, v)| bad(k) || has_control_characters(v)),
        _ => false,
    }
}

tessera_sdk::export_plugin!(VmManager);

/// The `/vm/v3` routes as `(method, pattern)`: what tests visit route by route.
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    vm_routes().table()
}

/// The `/auth/v4` (and `/api/auth/v4`) routes as `(method, pattern)`.
pub fn auth_route_table() -> Vec<(&'static str, &'static str)> {
    auth_routes().table()
}

#[cfg(test)]
mod tests {
    use super::has_control_characters;
    use serde_json::json;

    #[test]
    fn control_characters_are_found_anywhere_in_a_body() {
        assert!(!has_control_characters(
            &json!({"name": "a b", "comment": "line\nbreak\ttab", "n": [1, "ü"]})
        ));
        assert!(has_control_characters(&json!({"name": "a\u{0}b"})));
        assert!(has_control_characters(&json!({"x": [{"y": "\u{1b}[2J"}]})));
        assert!(has_control_characters(&json!({"a\u{7}": 1})));
    }
}
