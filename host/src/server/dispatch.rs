//! One request, end to end: request id, kernel routes, mount lookup, body
//! cap, a fresh plugin instance, and the response with its metrics and span.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use tracing::Instrument;

use super::{Kernel, kernel_routes, sockets};
use crate::metrics::Failure;
use crate::runtime::{CallError, Request};

/// A response before it becomes a hyper response.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
        }
    }
}

/// The kernel's own error envelope (plugins answer in their family's).
pub fn error_reply(status: u16, code: &str, message: &str, request_id: &str) -> Reply {
    Reply::json(
        status,
        &serde_json::json!({ "code": code, "message": message, "request_id": request_id }),
    )
}

pub async fn handle(
    kernel: Arc<Kernel>,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let request_id = request_id_for(&req);
    let span = tracing::debug_span!(target: "tessera::access", "request",
        method = %req.method(), path = %req.uri().path(), %request_id,
        plugin = tracing::field::Empty, status = tracing::field::Empty);
    let (slot, reply) = route(&kernel, peer, req, &request_id)
        .instrument(span.clone())
        .await;
    let latency = started.elapsed();
    kernel.metrics.record(slot, reply.status, latency);
    span.record("status", reply.status);
    tracing::debug!(target: "tessera::access", parent: &span, latency_us = latency.as_micros() as u64, "done");
    Ok(into_hyper(reply, &request_id))
}

/// Pick the responder; returns the metrics slot and the reply.
async fn route(
    kernel: &Arc<Kernel>,
    peer: SocketAddr,
    mut req: hyper::Request<Incoming>,
    request_id: &Arc<str>,
) -> (usize, Reply) {
    let kernel_slot = kernel.metrics.kernel_slot();
    let path = req.uri().path();
    if path.starts_with(kernel_routes::PREFIX) {
        return (
            kernel_slot,
            kernel_routes::handle(kernel, req.method(), path, request_id),
        );
    }
    let Some(route) = kernel.router.route(path) else {
        return (
            kernel_slot,
            error_reply(
                404,
                "NotFound",
                "no plugin is mounted at this path",
                request_id,
            ),
        );
    };
    let index = *route.target;
    let plugin = &kernel.runtime.plugins()[index];
    tracing::Span::current().record("plugin", &*plugin.ctx.name);
    let (mount, subpath) = (route.mount.to_string(), route.subpath.to_string());
    // Taken before the request is consumed; used only if the plugin answers 101.
    let upgrade = sockets::upgrade_key(&req).map(|key| (key, hyper::upgrade::on(&mut req)));
    let (parts, body) = req.into_parts();
    let body = match read_body(body, plugin.ctx.limits.body_limit_bytes, &parts.headers).await {
        Ok(body) => body,
        Err(refused) if refused(request_id).status == 413 => {
            let request = refusal_request(
                wit_request(&parts, mount, subpath, Vec::new(), peer, request_id),
                &refused(request_id),
            );
            return (
                index,
                refuse(kernel, index, &request, refused(request_id)).await,
            );
        }
        Err(reply) => return (index, reply(request_id)),
    };
    let request = wit_request(&parts, mount, subpath, body, peer, request_id);
    kernel.metrics.instance_created();
    let reply = match kernel
        .runtime
        .handle(index, &request, request_id.clone())
        .await
    {
        Ok(response) => Reply {
            status: response.status,
            headers: response.headers,
            body: response.body,
        },
        Err(error) => failure_reply(kernel, index, &error, request_id),
    };
    if reply.status != 101 {
        return (index, reply);
    }
    let reply = match upgrade {
        Some((key, on_upgrade)) => {
            sockets::accept(kernel.clone(), index, on_upgrade, &key, reply, &request)
        }
        None => {
            tracing::error!(plugin = %plugin.ctx.name, request_id = &**request_id,
                "the plugin answered 101 to a request that is not a WebSocket upgrade");
            error_reply(
                500,
                "PluginFailed",
                "the plugin failed while handling this request",
                request_id,
            )
        }
    };
    (index, reply)
}

/// How an HTTP request becomes the WIT request a plugin's `handle` gets: header
/// values that are not UTF-8 are converted lossily, never refused.
pub fn wit_request(
    parts: &hyper::http::request::Parts,
    mount: String,
    subpath: String,
    body: Vec<u8>,
    peer: SocketAddr,
    request_id: &str,
) -> Request {
    Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        mount,
        subpath,
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        peer: peer.to_string(),
        request_id: request_id.to_string(),
    }
}

/// The method and headers with which the kernel asks a plugin to phrase a refusal in
/// its family's envelope (the SDK's `Plugin::refuse`; the same names as the SDK's).
const REFUSAL_METHOD: &str = "TESSERA-REFUSAL";

/// `request` (without its body) turned into a refusal for the plugin to phrase.
pub fn refusal_request(mut request: Request, refusal: &Reply) -> Request {
    let body: serde_json::Value = serde_json::from_slice(&refusal.body).unwrap_or_default();
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_string();
    request.method = REFUSAL_METHOD.to_string();
    request.body.clear();
    request
        .headers
        .retain(|(name, _)| !name.to_ascii_lowercase().starts_with("tessera-refusal-"));
    request.headers.extend([
        ("tessera-refusal-status".into(), refusal.status.to_string()),
        ("tessera-refusal-code".into(), field("code")),
        ("tessera-refusal-message".into(), field("message")),
    ]);
    request
}

/// The plugin's phrasing of a refusal, if it answers with the refusal's status;
/// else (a plugin built without the SDK's `refuse`, a failure) the kernel's own.
async fn refuse(kernel: &Arc<Kernel>, index: usize, request: &Request, own: Reply) -> Reply {
    kernel.metrics.instance_created();
    let request_id: Arc<str> = Arc::from(request.request_id.as_str());
    match kernel.runtime.handle(index, request, request_id).await {
        Ok(response) if response.status == own.status => Reply {
            status: response.status,
            headers: response.headers,
            body: response.body,
        },
        _ => own,
    }
}

type ReplyFn = fn(&str) -> Reply;

async fn read_body(
    body: Incoming,
    limit: u64,
    headers: &hyper::HeaderMap,
) -> Result<Vec<u8>, ReplyFn> {
    let too_large: ReplyFn = |id| {
        error_reply(
            413,
            "PayloadTooLarge",
            "the request body exceeds this mount's limit",
            id,
        )
    };
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large);
    }
    match Limited::new(body, limit as usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes().into()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large)
        }
        Err(_) => {
            Err(|id| error_reply(400, "BadRequest", "the request body could not be read", id))
        }
    }
}

fn failure_reply(kernel: &Kernel, index: usize, error: &CallError, request_id: &str) -> Reply {
    let (status, code) = count_failure(kernel, index, error, request_id);
    let message = match error {
        // Trap details stay in the log; the client learns only that it failed.
        CallError::Trap(_) => "the plugin failed while handling this request".to_string(),
        other => other.to_string(),
    };
    error_reply(status, code, &message, request_id)
}

/// Counts and logs a failed plugin call; the status and code to answer with.
pub fn count_failure(
    kernel: &Kernel,
    index: usize,
    error: &CallError,
    request_id: &str,
) -> (u16, &'static str) {
    let plugin = &*kernel.runtime.plugins()[index].ctx.name;
    let (status, code, failure) = match error {
        CallError::Trap(_) => (500, "PluginFailed", Some(Failure::Trap)),
        CallError::Timeout(_) => (503, "PluginTimeout", Some(Failure::Timeout)),
        CallError::MemoryCap(_) => (503, "PluginMemoryLimit", Some(Failure::MemoryCap)),
        CallError::Busy => (503, "Busy", Some(Failure::Busy)),
        // Counted by the runtime's sandbox counters.
        CallError::ResponseTooLarge { .. } => (500, "PluginResponseTooLarge", None),
    };
    if let Some(failure) = failure {
        kernel.metrics.failure(index, failure);
    }
    tracing::error!(plugin, request_id, error = %error, "plugin call failed");
    (status, code)
}

fn into_hyper(reply: Reply, request_id: &str) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = hyper::StatusCode::from_u16(reply.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in reply.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => {
                tracing::warn!(request_id, header = %name, "dropping an invalid response header from a plugin")
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("request-id"), value);
    }
    response
}

/// Echo a well-formed `x-request-id`, else make a fresh UUID.
fn request_id_for(req: &hyper::Request<Incoming>) -> Arc<str> {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map(Arc::from)
        .unwrap_or_else(new_request_id)
}

fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// A random v4 UUID from a fast thread-local generator: request ids need to
/// be unique, not secret.
fn new_request_id() -> Arc<str> {
    let bytes: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    Arc::from(
        &*id.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_checked_before_echoing() {
        assert!(valid_request_id("abc-123_x.y:z"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("has space"));
        assert!(!valid_request_id("new\nline"));
        assert!(!valid_request_id(&"a".repeat(129)));
        assert_eq!(new_request_id().len(), 36);
    }
}
