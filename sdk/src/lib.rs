//! The Tessera plugin SDK: WIT bindings plus the helpers every plugin needs.
//!
//! A plugin implements [`Plugin`] and names its type in [`export_plugin!`]:
//!
//! ```ignore
//! struct Hello;
//! impl tessera_sdk::Plugin for Hello {
//!     fn handle(req: tessera_sdk::Request) -> tessera_sdk::Response {
//!         tessera_sdk::Response::json(200, &serde_json::json!({"hello": "world"}))
//!     }
//! }
//! tessera_sdk::export_plugin!(Hello);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` and mount the
//! resulting `.wasm` in a site config.

pub mod auth;
pub mod config;
#[cfg(not(target_arch = "wasm32"))]
pub mod corpus;
pub mod http;
pub mod hypervisor;
pub mod ids;
pub mod jobs;
pub mod log;
pub mod multipart;
pub mod query;
pub mod router;
pub mod site_admin;
pub mod sockets;
pub mod storage;

/// Raw bindings generated from the `tessera:kernel` WIT package.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "tessera_sdk::bindings",
    });
}

pub use bindings::exports::tessera::kernel::jobs_runner::{Job, JobOutcome};
pub use bindings::tessera::kernel::types::{Request, Response};
pub use router::{Params, RouteMatch, Router};

/// What a plugin implements. `handle` answers one request in a fresh
/// instance; `run_job` runs one step of a background job.
pub trait Plugin {
    fn handle(req: Request) -> Response;

    /// Plugins without background work keep this default, which fails the job.
    fn run_job(job: Job) -> JobOutcome {
        JobOutcome::Failed((
            "NotSupported".to_string(),
            format!("this plugin runs no jobs (kind {})", job.kind),
        ))
    }

    /// The kernel refused the request before the plugin saw it whole (a body over
    /// the mount's limit: 413); answer in the family's own error envelope.
    /// `req` is the request without its body. The default is the kernel's
    /// envelope `{"code", "message", "request_id"}`.
    fn refuse(req: &Request, refusal: &Refusal) -> Response {
        Response::json(
            refusal.status,
            &serde_json::json!({
                "code": refusal.code,
                "message": refusal.message,
                "request_id": req.request_id,
            }),
        )
    }

    /// Plugins that accept no WebSockets keep this default (they never
    /// answer an upgrade with 101, so it is not called).
    fn on_socket(socket: sockets::Socket, event: sockets::SocketEvent) -> sockets::SocketReply {
        let _ = (socket, event);
        sockets::SocketReply::new().close(1011, "this plugin takes no sockets")
    }
}

/// The method the kernel calls `handle` with to have a refusal phrased (see
/// [`Plugin::refuse`]); no route answers it. The kernel keeps the same names.
pub const REFUSAL_METHOD: &str = "TESSERA-REFUSAL";
const REFUSAL_STATUS: &str = "tessera-refusal-status";
const REFUSAL_CODE: &str = "tessera-refusal-code";
const REFUSAL_MESSAGE: &str = "tessera-refusal-message";

/// A request the kernel refused: the status, the kernel's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// The refusal a request carries, if the kernel sent one.
pub fn refusal(req: &Request) -> Option<Refusal> {
    if req.method != REFUSAL_METHOD {
        return None;
    }
    let status = req.header(REFUSAL_STATUS)?.parse().ok()?;
    Some(Refusal {
        status,
        code: req.header(REFUSAL_CODE).unwrap_or("Refused").to_string(),
        message: req.header(REFUSAL_MESSAGE).unwrap_or_default().to_string(),
    })
}

/// Export a [`Plugin`] implementation as the component's `handler`,
/// `jobs-runner` and `socket-handler`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        // The component exports exist only in the wasm build: natively the
        // plugin is an ordinary library (unit tests, and the e2e tests read
        // its route table), and several plugins may link into one binary.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct TesseraExports;
            impl $crate::bindings::exports::tessera::kernel::handler::Guest for TesseraExports {
                fn handle(req: $crate::Request) -> $crate::Response {
                    match $crate::refusal(&req) {
                        Some(refusal) => <$plugin as $crate::Plugin>::refuse(&req, &refusal),
                        None => <$plugin as $crate::Plugin>::handle(req),
                    }
                }
            }
            impl $crate::bindings::exports::tessera::kernel::jobs_runner::Guest for TesseraExports {
                fn run_job(job: $crate::Job) -> $crate::JobOutcome {
                    <$plugin as $crate::Plugin>::run_job(job)
                }
            }
            impl $crate::bindings::exports::tessera::kernel::socket_handler::Guest for TesseraExports {
                fn on_socket(
                    socket: $crate::sockets::Socket,
                    event: $crate::sockets::SocketEvent,
                ) -> $crate::sockets::SocketReply {
                    <$plugin as $crate::Plugin>::on_socket(socket, event)
                }
            }
    $crate::bindings::__export_plugin_world!(TesseraExports with_types_in $crate::bindings);
        };
        // Natively nothing calls the entry points; keep them (and every
        // handler they reach) live so dead-code analysis stays meaningful.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            #[allow(dead_code)]
            fn entry_points() {
                let _ = <$plugin as $crate::Plugin>::handle;
                let _ = <$plugin as $crate::Plugin>::refuse;
                let _ = <$plugin as $crate::Plugin>::run_job;
                let _ = <$plugin as $crate::Plugin>::on_socket;
            }
        };
    };
}
