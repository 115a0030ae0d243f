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

    /// Plugins that accept no WebSockets keep this default (they never
    /// answer an upgrade with 101, so it is not called).
    fn on_socket(socket: sockets::Socket, event: sockets::SocketEvent) -> sockets::SocketReply {
        let _ = (socket, event);
        sockets::SocketReply::new().close(1011, "this plugin takes no sockets")
    }
}

/// Export a [`Plugin`] implementation as the component's `handler`,
/// `jobs-runner` and `socket-handler`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            struct TesseraExports;
            impl $crate::bindings::exports::tessera::kernel::handler::Guest for TesseraExports {
                fn handle(req: $crate::Request) -> $crate::Response {
                    <$plugin as $crate::Plugin>::handle(req)
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
    };
}
