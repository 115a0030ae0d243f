//! The tiCrypt token API, mounted at `/api`. Each family of routes takes its
//! own type of token (`?token=`, else the `TC_TOKEN` cookie, else a
//! `TC_TOKEN` header); `/api/admin/...` takes an admin's Basic credentials or
//! admin token. Every error is `{"error": message, "code": Code}`.
//!
//! Routes (relative to the mount), in the order of the spec:
//!
//! | Method | Path                           | Access        | Handler                  |
//! |--------|--------------------------------|---------------|--------------------------|
//! | GET    | /drives                        | drive token   | drives::list             |
//! | GET    | /vms/images, /vm/images        | vm token      | images::list             |
//! | POST   | /vms/images, /vm/images        | vm token      | images::create           |
//! | PATCH  | /vms/bricks, /vm/bricks        | vm token      | bricks::edit             |
//! | GET    | /vms/bricks, /vm/bricks        | vm token      | bricks::list             |
//! | GET    | /vms                           | vm token      | vms::list                |
//! | POST   | /vms                           | vm token      | vms::create              |
//! | DELETE | /vms/:id                       | vm token      | vms::delete              |
//! | GET    | /teams                         | team token    | teams::list              |
//! | POST   | /teams                         | team token    | teams::create            |
//! | GET    | /teams/quotas                  | team token    | teams::get_quotas        |
//! | PATCH  | /teams/quotas                  | team token    | teams::edit_quotas       |
//! | GET    | /projects                      | project token | projects::list           |
//! | GET    | /projects/:id                  | project token | projects::get            |
//! | POST   | /admin/tokens                  | admin         | admin::mint_token        |
//! | GET    | /admin/realms                  | admin         | admin::list_realms       |
//! | POST   | /admin/realms                  | admin         | admin::create_realm      |
//! | POST   | /admin/drives                  | admin         | drives::create           |
//! | DELETE | /admin/drives/:id              | admin         | drives::delete           |
//! | POST   | /admin/drives/:id/attach       | admin         | drives::attach           |
//! | POST   | /admin/drives/:id/detach       | admin         | drives::detach           |
//! | POST   | /admin/projects                | admin         | projects::create         |

mod auth;
mod errors;
mod fields;
mod lock;
mod model;
mod quota;
mod routes;
mod store;

use tessera_sdk::{Params, Plugin, Request, Response, RouteMatch, Router};

use crate::auth::{Caller, TokenType};
use crate::errors::{ApiError, ApiResult};
use crate::routes::{admin, bricks, drives, images, projects, teams, vms};

type Handler = fn(&Request, &Caller, &Params) -> ApiResult<Response>;

/// Who may call a route.
#[derive(Clone, Copy)]
enum Access {
    Token(TokenType),
    Admin,
}

struct Route {
    access: Access,
    handler: Handler,
}

fn drive(handler: Handler) -> Route {
    Route {
        access: Access::Token(TokenType::Drive),
        handler,
    }
}
fn vm(handler: Handler) -> Route {
    Route {
        access: Access::Token(TokenType::Vm),
        handler,
    }
}
fn team(handler: Handler) -> Route {
    Route {
        access: Access::Token(TokenType::Team),
        handler,
    }
}
fn project(handler: Handler) -> Route {
    Route {
        access: Access::Token(TokenType::Project),
        handler,
    }
}
fn admin(handler: Handler) -> Route {
    Route {
        access: Access::Admin,
        handler,
    }
}

fn routes() -> Router<Route> {
    Router::new()
        .add("GET", "/drives", drive(drives::list))
        .add("GET", "/vms/images", vm(images::list))
        .add("POST", "/vms/images", vm(images::create))
        .add("GET", "/vm/images", vm(images::list))
        .add("POST", "/vm/images", vm(images::create))
        .add("PATCH", "/vms/bricks", vm(bricks::edit))
        .add("GET", "/vms/bricks", vm(bricks::list))
        .add("PATCH", "/vm/bricks", vm(bricks::edit))
        .add("GET", "/vm/bricks", vm(bricks::list))
        .add("GET", "/vms", vm(vms::list))
        .add("POST", "/vms", vm(vms::create))
        .add("DELETE", "/vms/:id", vm(vms::delete))
        .add("GET", "/teams", team(teams::list))
        .add("POST", "/teams", team(teams::create))
        .add("GET", "/teams/quotas", team(teams::get_quotas))
        .add("PATCH", "/teams/quotas", team(teams::edit_quotas))
        .add("GET", "/projects", project(projects::list))
        .add("GET", "/projects/:id", project(projects::get))
        .add("POST", "/admin/tokens", admin(admin::mint_token))
        .add("GET", "/admin/realms", admin(admin::list_realms))
        .add("POST", "/admin/realms", admin(admin::create_realm))
        .add("POST", "/admin/drives", admin(drives::create))
        .add("DELETE", "/admin/drives/:id", admin(drives::delete))
        .add("POST", "/admin/drives/:id/attach", admin(drives::attach))
        .add("POST", "/admin/drives/:id/detach", admin(drives::detach))
        .add("POST", "/admin/projects", admin(projects::create))
}

struct TiCrypt;

impl Plugin for TiCrypt {
    fn handle(req: Request) -> Response {
        dispatch(&req).unwrap_or_else(ApiError::into_response)
    }

    fn refuse(_: &Request, refusal: &tessera_sdk::Refusal) -> Response {
        ApiError::new(refusal.status, "PayloadTooLarge", &refusal.message).into_response()
    }
}

fn dispatch(req: &Request) -> ApiResult<Response> {
    let table = routes();
    let (route, params) = match table.route(&req.method, &req.subpath) {
        RouteMatch::Found(route, params) => (route, params),
        RouteMatch::MethodNotAllowed(allowed) => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{} is not allowed on {}", req.method, req.path),
            )
            .with_header("allow", allowed.join(", ")));
        }
        RouteMatch::NotFound => {
            return Err(ApiError::new(
                404,
                "RouteNotFound",
                format!("no route {} {}", req.method, req.path),
            ));
        }
    };
    let caller = match route.access {
        Access::Token(kind) => auth::token_caller(req, kind)?,
        Access::Admin => auth::admin_caller(req)?,
    };
    store::ensure_seeded()?;
    (route.handler)(req, &caller, &params)
}

tessera_sdk::export_plugin!(TiCrypt);

/// Every route as `(method, pattern)`: what tests visit route by route.
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    routes().table()
}
