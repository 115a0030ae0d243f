//! Triton CloudAPI, mounted at `/` (the catch-all): `/--ping`, `/my/...`, `/:login/...`.
//!
//! Route table, in the spec's order (action names are what policy rules say `CAN` to):
//!
//! | method | path | action |
//! | --- | --- | --- |
//! | GET | `/--ping` | (no auth) |
//! | GET, HEAD | `/:account` | getaccount |
//! | POST | `/:account` | updateaccount |
//! | GET, HEAD | `/:account/limits` | getaccountlimits |
//! | GET, HEAD | `/:account/keys` | listkeys |
//! | POST | `/:account/keys` | createkey |
//! | GET, HEAD | `/:account/keys/:key` | getkey |
//! | DELETE | `/:account/keys/:key` | deletekey |
//! | GET, HEAD | `/:account/users` | listusers |
//! | POST | `/:account/users` | createuser |
//! | GET, HEAD | `/:account/users/:user` | getuser |
//! | POST | `/:account/users/:user` | updateuser |
//! | POST | `/:account/users/:user/change_password` | changeuserpassword |
//! | DELETE | `/:account/users/:user` | deleteuser |
//! | GET, HEAD | `/:account/roles` | listroles |
//! | POST | `/:account/roles` | createrole |
//! | GET, HEAD | `/:account/roles/:role` | getrole |
//! | POST | `/:account/roles/:role` | updaterole |
//! | DELETE | `/:account/roles/:role` | deleterole |
//! | PUT | `/:account[/any/resource/path]` | setroletags |
//! | GET, HEAD | `/:account/policies` | listpolicies |
//! | POST | `/:account/policies` | createpolicy |
//! | GET, HEAD | `/:account/policies/:policy` | getpolicy |
//! | POST | `/:account/policies/:policy` | updatepolicy |
//! | DELETE | `/:account/policies/:policy` | deletepolicy |
//! | GET, HEAD | `/:account/users/:user/keys` | listuserkeys |
//! | POST | `/:account/users/:user/keys` | createuserkey |
//! | GET, HEAD | `/:account/users/:user/keys/:key` | getuserkey |
//! | DELETE | `/:account/users/:user/keys/:key` | deleteuserkey |
//! | GET, HEAD | `/:account/config` | getconfig |
//! | PUT | `/:account/config` | updateconfig |
//! | GET, HEAD | `/:account/datacenters` | listdatacenters |
//! | GET, HEAD | `/:account/datacenters/:name` | getdatacenter |
//! | GET, HEAD | `/:account/services` | listservices |
//!
//! Part 2 (images, packages, machines, tags, metadata, snapshots, disks, audit,
//! migrations) is in `compute_routes`, its table in the README.
//!
//! A request goes through the layers in this order: version negotiation (`protocol`),
//! routing, authentication (`auth`), the path's account check, throttling, inputs,
//! RBAC for sub-users (`rbac`), the resource family's handler (`resources::*`), and the
//! protocol's response headers.

mod affinity;
mod auth;
mod compute;
mod context;
mod errors;
#[doc(hidden)]
pub mod fuzzing;
mod fwrule;
mod ids;
mod model;
mod network_routes;
mod predicate;
mod protocol;
mod rbac;
mod resources;
mod settings;
mod vms;

use serde_json::json;
use tessera_sdk::{Params, Plugin, Request, Response, RouteMatch, Router};

use context::Ctx;
use errors::{ApiError, ApiResult};
use protocol::inputs::Inputs;
use protocol::{Finish, Reply, clock, version};
use resources::{account, config, datacenters, keys, policies, role_tags, roles, users};
use resources::{audit, disks, images, machines, metadata, migrations, packages, snapshots, tags};
use settings::Settings;

type Handler = fn(&Ctx<'_>, &Params) -> ApiResult<Reply>;

/// A route's handler and the action name RBAC rules grant.
pub struct Endpoint {
    action: &'static str,
    handler: Handler,
}

const fn ep(action: &'static str, handler: Handler) -> Endpoint {
    Endpoint { action, handler }
}

fn routes() -> Router<Endpoint> {
    let router = Router::new()
        .add("GET", "/:account", ep("getaccount", account::get))
        .add("POST", "/:account", ep("updateaccount", account::update))
        .add(
            "GET",
            "/:account/limits",
            ep("getaccountlimits", account::limits),
        )
        .add("GET", "/:account/keys", ep("listkeys", keys::list))
        .add("POST", "/:account/keys", ep("createkey", keys::create))
        .add("GET", "/:account/keys/:key", ep("getkey", keys::get))
        .add(
            "DELETE",
            "/:account/keys/:key",
            ep("deletekey", keys::delete),
        )
        .add("GET", "/:account/users", ep("listusers", users::list))
        .add("POST", "/:account/users", ep("createuser", users::create))
        .add("GET", "/:account/users/:user", ep("getuser", users::get))
        .add(
            "POST",
            "/:account/users/:user",
            ep("updateuser", users::update),
        )
        .add(
            "POST",
            "/:account/users/:user/change_password",
            ep("changeuserpassword", users::change_password),
        )
        .add(
            "DELETE",
            "/:account/users/:user",
            ep("deleteuser", users::delete),
        )
        .add("GET", "/:account/roles", ep("listroles", roles::list))
        .add("POST", "/:account/roles", ep("createrole", roles::create))
        .add("GET", "/:account/roles/:role", ep("getrole", roles::get))
        .add(
            "POST",
            "/:account/roles/:role",
            ep("updaterole", roles::update),
        )
        .add(
            "DELETE",
            "/:account/roles/:role",
            ep("deleterole", roles::delete),
        )
        .add(
            "GET",
            "/:account/policies",
            ep("listpolicies", policies::list),
        )
        .add(
            "POST",
            "/:account/policies",
            ep("createpolicy", policies::create),
        )
        .add(
            "GET",
            "/:account/policies/:policy",
            ep("getpolicy", policies::get),
        )
        .add(
            "POST",
            "/:account/policies/:policy",
            ep("updatepolicy", policies::update),
        )
        .add(
            "DELETE",
            "/:account/policies/:policy",
            ep("deletepolicy", policies::delete),
        )
        .add(
            "GET",
            "/:account/users/:user/keys",
            ep("listuserkeys", keys::list_user),
        )
        .add(
            "POST",
            "/:account/users/:user/keys",
            ep("createuserkey", keys::create_user),
        )
        .add(
            "GET",
            "/:account/users/:user/keys/:key",
            ep("getuserkey", keys::get_user),
        )
        .add(
            "DELETE",
            "/:account/users/:user/keys/:key",
            ep("deleteuserkey", keys::delete_user),
        )
        .add("GET", "/:account/config", ep("getconfig", config::get))
        .add(
            "PUT",
            "/:account/config",
            ep("updateconfig", config::update),
        )
        .add(
            "GET",
            "/:account/datacenters",
            ep("listdatacenters", datacenters::list),
        )
        .add(
            "GET",
            "/:account/datacenters/:name",
            ep("getdatacenter", datacenters::get),
        )
        .add(
            "GET",
            "/:account/services",
            ep("listservices", datacenters::services),
        );
    network_routes::add(compute_routes(router))
}

/// Part 2: images, packages, machines and everything on a machine.
fn compute_routes(router: Router<Endpoint>) -> Router<Endpoint> {
    const M: &str = "/:account/machines/:machine";
    router
        .add("GET", "/:account/images", ep("listimages", images::list))
        .add(
            "POST",
            "/:account/images",
            ep("createimagefrommachine", images::create),
        )
        .add(
            "GET",
            "/:account/images/:image",
            ep("getimage", images::get),
        )
        .add(
            "POST",
            "/:account/images/:image",
            ep("updateimage", images::action),
        )
        .add(
            "DELETE",
            "/:account/images/:image",
            ep("deleteimage", images::delete),
        )
        .add(
            "GET",
            "/:account/packages",
            ep("listpackages", packages::list),
        )
        .add(
            "GET",
            "/:account/packages/:package",
            ep("getpackage", packages::get),
        )
        .add(
            "GET",
            "/:account/machines",
            ep("listmachines", machines::list),
        )
        .add(
            "POST",
            "/:account/machines",
            ep("createmachine", machines::create),
        )
        .add("GET", M, ep("getmachine", machines::get))
        .add("POST", M, ep("updatemachine", machines::action))
        .add("DELETE", M, ep("deletemachine", machines::delete))
        .add(
            "GET",
            "/:account/machines/:machine/audit",
            ep("machineaudit", audit::list),
        )
        .add(
            "GET",
            "/:account/machines/:machine/tags",
            ep("listmachinetags", tags::list),
        )
        .add(
            "POST",
            "/:account/machines/:machine/tags",
            ep("addmachinetags", tags::add),
        )
        .add(
            "PUT",
            "/:account/machines/:machine/tags",
            ep("replacemachinetags", tags::replace),
        )
        .add(
            "DELETE",
            "/:account/machines/:machine/tags",
            ep("deletemachinetags", tags::delete_all),
        )
        .add(
            "GET",
            "/:account/machines/:machine/tags/:tag",
            ep("getmachinetag", tags::get),
        )
        .add(
            "DELETE",
            "/:account/machines/:machine/tags/:tag",
            ep("deletemachinetag", tags::delete),
        )
        .add(
            "GET",
            "/:account/machines/:machine/metadata",
            ep("listmachinemetadata", metadata::list),
        )
        .add(
            "POST",
            "/:account/machines/:machine/metadata",
            ep("updatemachinemetadata", metadata::update),
        )
        .add(
            "DELETE",
            "/:account/machines/:machine/metadata",
            ep("deleteallmachinemetadata", metadata::delete_all),
        )
        .add(
            "GET",
            "/:account/machines/:machine/metadata/:key",
            ep("getmachinemetadata", metadata::get),
        )
        .add(
            "DELETE",
            "/:account/machines/:machine/metadata/:key",
            ep("deletemachinemetadata", metadata::delete),
        )
        .add(
            "GET",
            "/:account/machines/:machine/snapshots",
            ep("listmachinesnapshots", snapshots::list),
        )
        .add(
            "POST",
            "/:account/machines/:machine/snapshots",
            ep("createmachinesnapshot", snapshots::create),
        )
        .add(
            "GET",
            "/:account/machines/:machine/snapshots/:name",
            ep("getmachinesnapshot", snapshots::get),
        )
        .add(
            "POST",
            "/:account/machines/:machine/snapshots/:name",
            ep("startmachinefromsnapshot", snapshots::start_from),
        )
        .add(
            "DELETE",
            "/:account/machines/:machine/snapshots/:name",
            ep("deletemachinesnapshot", snapshots::delete),
        )
        .add(
            "GET",
            "/:account/machines/:machine/disks",
            ep("listmachinedisks", disks::list),
        )
        .add(
            "POST",
            "/:account/machines/:machine/disks",
            ep("createmachinedisk", disks::create),
        )
        .add(
            "GET",
            "/:account/machines/:machine/disks/:disk",
            ep("getmachinedisk", disks::get),
        )
        .add(
            "POST",
            "/:account/machines/:machine/disks/:disk",
            ep("resizemachinedisk", disks::resize),
        )
        .add(
            "DELETE",
            "/:account/machines/:machine/disks/:disk",
            ep("deletemachinedisk", disks::delete),
        )
        .add(
            "POST",
            "/:account/machines/:machine/migrate",
            ep("migrate", migrations::migrate),
        )
        .add(
            "GET",
            "/:account/migrations",
            ep("listmigrations", migrations::list),
        )
        .add(
            "GET",
            "/:account/migrations/:machine",
            ep("getmigration", migrations::get),
        )
}

/// SetRoleTags answers a `PUT` on any resource path no other `PUT` route claims.
const SET_ROLE_TAGS: Endpoint = ep("setroletags", role_tags::set);

const METHODS: [&str; 5] = ["GET", "HEAD", "POST", "PUT", "DELETE"];

struct CloudApi;

impl Plugin for CloudApi {
    fn handle(request: Request) -> Response {
        let started_ms = clock::now_ms();
        let settings = Settings::load(&request);
        let routes = routes();
        let methods = allowed_methods(&routes, &request.subpath);
        let (reply, api_version) = match protocol::negotiate(&request) {
            Ok(api_version) => (
                serve(&request, &routes, settings.clone(), api_version, started_ms)
                    .unwrap_or_else(Reply::from),
                api_version,
            ),
            Err(e) => (
                Reply::from(e),
                version::API_VERSIONS[version::API_VERSIONS.len() - 1],
            ),
        };
        protocol::finish(
            reply,
            &Finish {
                request: &request,
                api_version,
                datacenter: &settings.datacenter_name,
                methods: &methods,
                started_ms,
            },
        )
    }

    fn refuse(_: &Request, refusal: &tessera_sdk::Refusal) -> Response {
        // restify's name for a body over the limit.
        let error = ApiError::new(refusal.status, "RequestEntityTooLarge", &refusal.message);
        Response::json(error.status, &error.body())
    }

    fn run_job(job: tessera_sdk::Job) -> tessera_sdk::JobOutcome {
        match job.kind.split('.').next() {
            Some("volume") => resources::volumes::run_job(&job),
            Some("migration") => migrations::run_job(&job),
            _ => tessera_sdk::JobOutcome::Failed((
                "NotSupported".into(),
                format!("cloudapi runs no job of kind {}", job.kind),
            )),
        }
    }

    fn on_socket(
        socket: tessera_sdk::sockets::Socket,
        event: tessera_sdk::sockets::SocketEvent,
    ) -> tessera_sdk::sockets::SocketReply {
        resources::sockets::on_socket(socket, event)
    }
}

tessera_sdk::export_plugin!(CloudApi);

/// Every route as `(method, pattern)`, with the two answered outside the
/// router: `/--ping` and SetRoleTags (`PUT` on any resource path, listed once
/// as `PUT /:account/*path`). Tests visit the table route by route.
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    let mut table = vec![("GET", "/--ping")];
    table.extend(routes().table());
    table.push(("PUT", "/:account/*path"));
    table
}

fn allowed_methods(routes: &Router<Endpoint>, path: &str) -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = METHODS
        .into_iter()
        .filter(|m| *m != "PUT" && matches!(routes.route(m, path), RouteMatch::Found(..)))
        .collect();
    if path != "/--ping" && path != "/" {
        methods.push("PUT");
    }
    methods
}

fn serve(
    request: &Request,
    routes: &Router<Endpoint>,
    settings: Settings,
    api_version: &'static str,
    now_ms: u64,
) -> ApiResult<Reply> {
    if request.subpath == "/--ping" {
        return match request.method.as_str() {
            "GET" | "HEAD" => Ok(ping()),
            other => Err(ApiError::method_not_allowed(other, &["GET", "HEAD"])),
        };
    }
    let (endpoint, params) = match routes.route(&request.method, &request.subpath) {
        RouteMatch::Found(endpoint, params) => (endpoint, params),
        _ if request.method == "PUT" && request.subpath.len() > 1 => {
            (&SET_ROLE_TAGS, Params::default())
        }
        RouteMatch::MethodNotAllowed(allowed) => {
            return Err(ApiError::method_not_allowed(&request.method, &allowed));
        }
        RouteMatch::NotFound => {
            return Err(ApiError::not_found(format!(
                "{} does not exist",
                request.path
            )));
        }
    };
    let caller = auth::authenticate(request, now_ms)?;
    let named = first_segment(&request.subpath);
    if named != "my" && named != caller.account.login {
        // As upstream loads the path's account before authorizing: an unknown login is
        // 404 (the spec's "ResourceNotFound if :login does not exist"), another's 403.
        let exists = !named.contains('/') && tessera_sdk::auth::get_account(&named)?.is_some();
        return Err(if exists {
            ApiError::not_authorized(format!("You do not have permission to access /{named}"))
        } else {
            ApiError::not_found(format!("{named} does not exist"))
        });
    }
    protocol::throttle::check(&caller.account.id, settings.throttle, now_ms)?;
    let inputs = Inputs::from_request(request)?;
    let ctx = Ctx {
        request,
        inputs,
        account: caller.account.clone(),
        caller,
        settings,
        api_version,
        now_ms,
    };
    // SetRoleTags on a path whose own `PUT` updates the object (a fabric VLAN or
    // network, an address, the config): the `role-tag` body says which is meant.
    let endpoint = if request.method == "PUT" && ctx.inputs.has("role-tag") {
        &SET_ROLE_TAGS
    } else {
        endpoint
    };
    let reads = matches!(request.method.as_str(), "GET" | "HEAD");
    let resource = if ctx.caller.user.is_some() || reads {
        Some(resources::resolve(&ctx, &rest_segments(&request.subpath))?)
    } else {
        None
    };
    if let Some(resource) = resource.as_ref().filter(|_| ctx.caller.user.is_some()) {
        let action = specific_action(endpoint.action, &ctx.inputs);
        rbac::authorize(&ctx, action, &resource.path)?;
    }
    let reply = (endpoint.handler)(&ctx, &params)?;
    match resource {
        // A read of a tagged resource shows its tags, as clients' getRoleTags expects.
        Some(resource) if reads && reply.status == 200 => {
            let names = rbac::store::tag_names(&ctx.account.id, &resource.path)?;
            Ok(if names.is_empty() {
                reply
            } else {
                reply.with_header("role-tag", names.join(", "))
            })
        }
        _ => Ok(reply),
    }
}

/// The RBAC action of a route that multiplexes on `action` (`POST /machines/:id`,
/// `POST /images[/:id]`): what the spec names the endpoint, e.g. `stopmachine`.
fn specific_action(route_action: &'static str, inputs: &Inputs) -> &'static str {
    let asked = inputs.string("action").ok().flatten().unwrap_or_default();
    match (route_action, asked.as_str()) {
        ("updatemachine", "start") => "startmachine",
        ("updatemachine", "stop") => "stopmachine",
        ("updatemachine", "reboot") => "rebootmachine",
        ("updatemachine", "resize") => "resizemachine",
        ("updatemachine", "rename") => "renamemachine",
        ("updatemachine", "enable_firewall") => "enablemachinefirewall",
        ("updatemachine", "disable_firewall") => "disablemachinefirewall",
        ("updatemachine", "enable_deletion_protection") => "enablemachinedeletionprotection",
        ("updatemachine", "disable_deletion_protection") => "disablemachinedeletionprotection",
        ("updateimage", "export") => "exportimage",
        ("updateimage", "clone") => "cloneimage",
        ("updateimage", "share") => "shareimage",
        ("updateimage", "unshare") => "unshareimage",
        ("createimagefrommachine", "import-from-datacenter") => "importimagefromdatacenter",
        (action, _) => action,
    }
}

fn ping() -> Reply {
    Reply::ok(json!({
        "ping": "pong",
        "cloudapi": {"versions": version::API_VERSIONS},
    }))
}

/// The account segment of a path (`my` or a login), percent-decoded.
fn first_segment(path: &str) -> String {
    let segment = path.split('/').find(|s| !s.is_empty()).unwrap_or("");
    tessera_sdk::query::decode_segment(segment)
}

/// The percent-decoded segments after the account.
fn rest_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .skip(1)
        .map(tessera_sdk::query::decode_segment)
        .collect()
}
