//! The FOSS-Cloud vm-manager API (`foss-cloud-api.txt`), mounted at
//! `/vm-manager/api`. Every path may end in `/realm/<id>` to log in to that
//! realm. Every answer is the spec's `{"status","code",["devDescription"],...}`.
//!
//! Routes (relative to the mount), in the order of the spec:
//!
//! | method | path                                   | handler             | codes |
//! | ------ | -------------------------------------- | ------------------- | ----- |
//! | GET    | /user/login                            | api::user_login     | 200001 + login codes |
//! | GET    | /server/realms                         | api::server_realms  | 200011 (no login) |
//! | GET    | /vm/list[/owner\|dynamic\|persistent\|all] | api::vm_list    | 200031, 400032, 403033 |
//! | GET    | /vm/assign/:pool                       | api::vm_assign      | 200041, 400042, 500043 |
//! | GET    | /vm/mapping/list[/:mac]                | mapping::list       | 200051, 500052, 400053-55, 403056 |
//! | GET    | /vm/mapping/assign/:pool[/:mac]        | mapping::assign     | 200061, 500062, 400063-68 |
//!
//! Admin routes (admin accounts only; see README.md), codes 200101-500107:
//! `/admin/pools[/:pool[/vms[/:slot[/release]]]]`, `/admin/groups[/:name]`,
//! `/admin/mappings[/:mac/:pool]`, `/admin/peers[/:ip]`.
//!
//! Before any route: `enable = false` → 500022, an empty `defaultRealm` →
//! 500023, an unknown path or method → 404000.

mod admin;
mod api;
mod errors;
mod login;
mod mac;
mod mapping;
mod model;
mod pools;
mod seed;
mod settings;

use tessera_sdk::{Params, Plugin, Request, Response, RouteMatch, Router};

use errors::{ApiError, Reply, code};
use login::Caller;
use settings::Settings;

type Handler = fn(&Ctx, &Params) -> Result<Reply, ApiError>;

fn routes() -> Router<Handler> {
    Router::<Handler>::new()
        .add("GET", "/user/login", api::user_login)
        .add("GET", "/server/realms", api::server_realms)
        .add("GET", "/vm/list", api::vm_list)
        .add("GET", "/vm/list/:type", api::vm_list)
        .add("GET", "/vm/assign/:pool", api::vm_assign)
        .add("GET", "/vm/mapping/list", mapping::list)
        .add("GET", "/vm/mapping/list/:mac", mapping::list)
        .add("GET", "/vm/mapping/assign/:pool", mapping::assign)
        .add("GET", "/vm/mapping/assign/:pool/:mac", mapping::assign)
        .add("GET", "/admin/pools", admin::list_pools)
        .add("POST", "/admin/pools", admin::create_pool)
        .add("GET", "/admin/pools/:pool", admin::get_pool)
        .add("PUT", "/admin/pools/:pool", admin::update_pool)
        .add("DELETE", "/admin/pools/:pool", admin::delete_pool)
        .add("POST", "/admin/pools/:pool/vms", admin::add_vm)
        .add("DELETE", "/admin/pools/:pool/vms/:slot", admin::remove_vm)
        .add(
            "POST",
            "/admin/pools/:pool/vms/:slot/release",
            admin::release_vm,
        )
        .add("GET", "/admin/groups", admin::list_groups)
        .add("PUT", "/admin/groups/:name", admin::put_group)
        .add("DELETE", "/admin/groups/:name", admin::delete_group)
        .add("GET", "/admin/mappings", admin::list_mappings)
        .add("PUT", "/admin/mappings/:mac/:pool", admin::put_mapping)
        .add(
            "DELETE",
            "/admin/mappings/:mac/:pool",
            admin::delete_mapping,
        )
        .add("GET", "/admin/peers", admin::list_peers)
        .add("PUT", "/admin/peers/:ip", admin::put_peer)
        .add("DELETE", "/admin/peers/:ip", admin::delete_peer)
}

/// One request with the site's settings and the realm its path named.
pub struct Ctx<'a> {
    pub req: &'a Request,
    pub settings: Settings,
    pub realm: Option<String>,
}

impl Ctx<'_> {
    /// The caller, logged in with basic auth to the request's realm.
    pub fn login(&self) -> Result<Caller, ApiError> {
        let realm = login::effective_realm(&self.settings, self.realm.as_deref())?;
        login::authenticate(self.req, &realm)
    }
}

struct FossCloud;

impl Plugin for FossCloud {
    fn handle(req: Request) -> Response {
        match serve(&req) {
            Ok(reply) => reply.into_response(),
            Err(error) => error.into_response(),
        }
    }

    fn refuse(_: &Request, refusal: &tessera_sdk::Refusal) -> Response {
        let code = match refusal.status {
            413 => code::BODY_TOO_LARGE,
            status => u32::from(status) * 1000,
        };
        ApiError::new(code, refusal.message.clone()).into_response()
    }
}

fn serve(req: &Request) -> Result<Reply, ApiError> {
    let settings = Settings::load().map_err(|e| ApiError::new(code::INTERNAL, e))?;
    if !settings.enable {
        return Err(ApiError::new(
            code::API_DISABLED,
            "You have to enable the api (enable = true in the plugin settings)",
        ));
    }
    login::check_default_realm(&settings)?;
    let (path, realm) = split_realm(&req.subpath);
    let routes = routes();
    let (handler, params) = match routes.route(&req.method, path) {
        RouteMatch::Found(handler, params) => (handler, params),
        RouteMatch::MethodNotAllowed(_) | RouteMatch::NotFound => {
            return Err(ApiError::new(code::UNKNOWN_ACTION, "Unknown action"));
        }
    };
    seed::ensure(&settings)?;
    let ctx = Ctx {
        req,
        settings,
        realm,
    };
    handler(&ctx, &params)
}

/// Splits a trailing `/realm/<id>` off a path.
fn split_realm(path: &str) -> (&str, Option<String>) {
    let trimmed = path.trim_end_matches('/');
    if let Some((head, id)) = trimmed.rsplit_once('/')
        && let Some(rest) = head.strip_suffix("/realm")
        && !id.is_empty()
    {
        let rest = if rest.is_empty() { "/" } else { rest };
        return (rest, Some(tessera_sdk::query::decode_segment(id)));
    }
    (path, None)
}

tessera_sdk::export_plugin!(FossCloud);

/// Every route as `(method, pattern)`: what tests visit route by route (each
/// also answers with a `/realm/<id>` suffix).
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    routes().table()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_realm_suffix_is_split_off_any_path() {
        assert_eq!(
            split_realm("/vm/list/dynamic/realm/4000020"),
            ("/vm/list/dynamic", Some("4000020".to_string()))
        );
        assert_eq!(
            split_realm("/user/login/realm/default/"),
            ("/user/login", Some("default".to_string()))
        );
        assert_eq!(
            split_realm("/vm/list/realm/x"),
            ("/vm/list", Some("x".to_string()))
        );
        assert_eq!(split_realm("/user/login"), ("/user/login", None));
        assert_eq!(split_realm("/realm/x"), ("/", Some("x".to_string())));
        assert_eq!(split_realm("/vm/list/realm"), ("/vm/list/realm", None));
    }

    #[test]
    fn every_spec_route_is_in_the_table() {
        let r = routes();
        for path in [
            "/user/login",
            "/server/realms",
            "/vm/list",
            "/vm/list/all",
            "/vm/assign/p",
            "/vm/mapping/list",
            "/vm/mapping/list/52:54:00:00:00:01",
            "/vm/mapping/assign/p",
            "/vm/mapping/assign/p/52:54:00:00:00:01",
        ] {
            assert!(
                matches!(r.route("GET", path), RouteMatch::Found(..)),
                "{path}"
            );
        }
        assert!(matches!(
            r.route("POST", "/user/login"),
            RouteMatch::MethodNotAllowed(_)
        ));
    }
}
