//! Routes the kernel answers itself, before any plugin: `/_tessera/health`
//! and `/_tessera/metrics`.

use serde_json::json;

use super::Kernel;
use super::dispatch::{Reply, error_reply};

pub const PREFIX: &str = "/_tessera/";

pub fn handle(kernel: &Kernel, method: &hyper::Method, path: &str, request_id: &str) -> Reply {
    let get = method == hyper::Method::GET || method == hyper::Method::HEAD;
    match (path, get) {
        ("/_tessera/health", true) => health(kernel),
        ("/_tessera/metrics", true) => Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/plain; version=0.0.4".into())],
            body: (kernel.metrics.render(kernel.runtime.live_instances())
                + &crate::runtime::sandbox::render(kernel.runtime.plugins()))
                .into_bytes(),
        },
        ("/_tessera/health" | "/_tessera/metrics", false) => error_reply(
            405,
            "MethodNotAllowed",
            "only GET is allowed here",
            request_id,
        ),
        _ => error_reply(404, "NotFound", "no such kernel route", request_id),
    }
}

fn health(kernel: &Kernel) -> Reply {
    let plugins: Vec<_> = kernel
        .runtime
        .plugins()
        .iter()
        .map(|p| {
            json!({
                "name": &*p.ctx.name,
                "mounts": p.mounts,
                "status": "running",
            })
        })
        .collect();
    let body = json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": kernel.started.elapsed().as_secs(),
        "plugins": plugins,
    });
    Reply::json(200, &body)
}
