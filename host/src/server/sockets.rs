//! WebSockets for plugins. A plugin accepts an upgrade by answering the
//! upgrade request with 101; the kernel completes the handshake (RFC 6455),
//! then runs the socket in a task of its own: every open, client message and
//! subscribed kernel event becomes one `on-socket` call in a fresh instance
//! under the mount's time budget and memory cap, as a request does. Only the
//! socket's `state` string lives between calls, so a socket costs no instance
//! while it idles, and a trapping call closes its socket (1011), never the kernel.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::broadcast;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::Kernel;
use super::dispatch::{Reply, count_failure};
use crate::events::{Event, grant_for};
use crate::runtime::{Socket, SocketEvent, SocketKernelEvent, SocketMessage, SocketReply};

/// The header of the plugin's 101 that seeds the socket's state; the kernel
/// strips it from the handshake.
pub const STATE_HEADER: &str = "tessera-socket-state";
/// The header of the plugin's 101 that asks the kernel to splice the socket to
/// a stream it owns: `vm-console <vm id>` (needs the `hypervisor` grant) joins
/// it to the VM's console (RFB) when the backend runs real VMs. The kernel
/// strips it from the handshake.
pub const SPLICE_HEADER: &str = "tessera-socket-splice";
/// Largest read from a spliced stream sent as one binary frame.
const SPLICE_CHUNK: usize = 64 * 1024;
/// Bound on the state a plugin keeps on a socket.
const MAX_STATE_BYTES: usize = 64 * 1024;

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(1);

/// The `Sec-WebSocket-Key` of a well-formed upgrade request (RFC 6455 §4.2.1),
/// or `None` when the request does not ask for a WebSocket.
pub fn upgrade_key<B>(req: &hyper::Request<B>) -> Option<String> {
    let headers = req.headers();
    let has_token = |name: &str, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    let ok = req.method() == hyper::Method::GET
        && req.version() == hyper::Version::HTTP_11
        && has_token("upgrade", "websocket")
        && has_token("connection", "upgrade")
        && headers
            .get("sec-websocket-version")
            .is_some_and(|v| v.as_bytes() == b"13");
    let key = headers.get("sec-websocket-key")?.to_str().ok()?.trim();
    // The key is 16 random bytes in base64.
    (ok && key.len() == 24).then(|| key.to_string())
}

/// Turns the plugin's 101 into the handshake answer and starts the socket.
pub fn accept(
    kernel: Arc<Kernel>,
    index: usize,
    on_upgrade: OnUpgrade,
    key: &str,
    plugin_reply: Reply,
    request: &crate::runtime::Request,
) -> Reply {
    let mut state = String::new();
    let mut splice = None;
    let mut headers = vec![
        ("upgrade".to_string(), "websocket".to_string()),
        ("connection".to_string(), "Upgrade".to_string()),
        (
            "sec-websocket-accept".to_string(),
            derive_accept_key(key.as_bytes()),
        ),
    ];
    for (name, value) in plugin_reply.headers {
        let lower = name.to_ascii_lowercase();
        if lower == STATE_HEADER {
            state = value;
        } else if lower == SPLICE_HEADER {
            splice = Some(value);
        } else if !matches!(
            lower.as_str(),
            "upgrade" | "connection" | "sec-websocket-accept" | "content-length"
        ) {
            headers.push((name, value));
        }
    }
    if state.len() > MAX_STATE_BYTES {
        return super::dispatch::error_reply(
            500,
            "PluginFailed",
            "the plugin's socket state is too large",
            &request.request_id,
        );
    }
    let socket = Socket {
        id: NEXT_SOCKET.fetch_add(1, Ordering::Relaxed).to_string(),
        path: request.path.clone(),
        query: request.query.clone(),
        peer: request.peer.clone(),
        state,
    };
    let limit = kernel.runtime.plugins()[index].ctx.limits.body_limit_bytes as usize;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(limit))
                    .max_frame_size(Some(limit));
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                kernel.metrics.socket_open(1);
                match splice {
                    Some(target) => match console(&kernel, index, &target).await {
                        Ok(Some(stream)) => pump(ws, stream).await,
                        // A backend with no real consoles: the plugin serves it.
                        Ok(None) => run(&kernel, index, ws, socket).await,
                        Err((code, reason)) => {
                            let frame = CloseFrame {
                                code,
                                reason: reason.into(),
                            };
                            let mut ws = ws;
                            let _ = ws.close(Some(frame)).await;
                        }
                    },
                    None => run(&kernel, index, ws, socket).await,
                }
                kernel.metrics.socket_open(-1);
            }
            Err(e) => tracing::debug!(error = %e, "the upgrade did not complete"),
        }
    });
    Reply {
        status: 101,
        headers,
        body: Vec::new(),
    }
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Whether the socket goes on after a reply.
enum Next {
    Continue,
    Close(CloseCode, String),
}

async fn run(kernel: &Kernel, index: usize, mut ws: Ws, mut socket: Socket) {
    let plugin = &kernel.runtime.plugins()[index];
    let mut topics: HashSet<String> = HashSet::new();
    let mut events: Option<broadcast::Receiver<Event>> = None;
    let mut pending = Some(SocketEvent::Opened);
    loop {
        if let Some(event) = pending.take() {
            kernel.metrics.socket_call();
            let next = match kernel.runtime.on_socket(index, &socket, &event).await {
                Ok(reply) => apply(kernel, index, &mut ws, &mut socket, &mut topics, reply).await,
                Err(error) => {
                    count_failure(kernel, index, &error, &format!("socket:{}", socket.id));
                    Next::Close(CloseCode::Error, "the plugin failed".into())
                }
            };
            if topics.is_empty() {
                events = None;
            } else if events.is_none() {
                events = Some(kernel.runtime.events().subscribe());
            }
            if let Next::Close(code, reason) = next {
                let frame = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                let _ = ws.close(Some(frame)).await;
                return;
            }
        }
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Frame::Text(text))) => {
                    pending = Some(SocketEvent::Message(SocketMessage::Text(text.to_string())));
                }
                Some(Ok(Frame::Binary(data))) => {
                    pending = Some(SocketEvent::Message(SocketMessage::Binary(data.to_vec())));
                }
                // tungstenite answers pings itself on the next flush.
                Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_))) => {
                    let _ = ws.flush().await;
                }
                Some(Ok(Frame::Close(_))) | None => return,
                Some(Err(e)) => {
                    tracing::debug!(plugin = %plugin.ctx.name, error = %e, "socket read failed");
                    return;
                }
            },
            event = next_event(&mut events) => match event {
                Ok(event) if topics.contains(event.topic) => {
                    pending = Some(SocketEvent::Event(SocketKernelEvent {
                        topic: event.topic.to_string(),
                        payload: event.payload,
                    }));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(plugin = %plugin.ctx.name, missed, "a socket fell behind its events");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// The stream a splice names, connected; `None` when the backend has no real
/// console (the plugin's `on-socket` serves the socket then).
async fn console(
    kernel: &Kernel,
    index: usize,
    target: &str,
) -> Result<Option<UnixStream>, (CloseCode, String)> {
    let plugin = &kernel.runtime.plugins()[index];
    let Some(vm) = target.strip_prefix("vm-console ").map(str::trim) else {
        return Err((CloseCode::Policy, format!("no splice target {target:?}")));
    };
    let Some(compute) = plugin.ctx.compute.clone() else {
        return Err((
            CloseCode::Policy,
            "vm-console needs the hypervisor grant".into(),
        ));
    };
    let vm = vm.to_string();
    let found = tokio::task::spawn_blocking(move || compute.hypervisor.console(&vm))
        .await
        .map_err(|e| (CloseCode::Error, format!("console lookup failed: {e}")))?;
    let path = match found {
        Ok(Some(path)) => path,
        Ok(None) => return Ok(None),
        Err(e) => return Err((CloseCode::Error, format!("no console: {e}"))),
    };
    match UnixStream::connect(&path).await {
        Ok(stream) => Ok(Some(stream)),
        Err(e) => {
            tracing::warn!(plugin = %plugin.ctx.name, path = %path.display(), error = %e,
                "cannot reach a VM console");
            Err((CloseCode::Error, "the console is not reachable".into()))
        }
    }
}

/// Moves bytes both ways between the WebSocket (binary frames) and the stream
/// with no plugin call: one bounded chunk in flight each way, so a slow side
/// holds the other back. Ends, closing both, when either side closes.
async fn pump(ws: Ws, stream: UnixStream) {
    let (mut sink, mut frames) = ws.split();
    let (mut reader, mut writer) = stream.into_split();
    let inbound = async {
        while let Some(frame) = frames.next().await {
            match frame {
                Ok(Frame::Binary(data)) => {
                    if writer.write_all(&data).await.is_err() {
                        return (CloseCode::Away, "the console closed");
                    }
                }
                Ok(Frame::Text(_)) => return (CloseCode::Unsupported, "binary frames only"),
                Ok(Frame::Close(_)) | Err(_) => return (CloseCode::Normal, ""),
                Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_)) => {}
            }
        }
        (CloseCode::Normal, "")
    };
    let outbound = async {
        let mut chunk = vec![0_u8; SPLICE_CHUNK];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return (CloseCode::Away, "the console closed"),
                Ok(n) => {
                    if sink.send(Frame::binary(chunk[..n].to_vec())).await.is_err() {
                        return (CloseCode::Normal, "");
                    }
                }
            }
        }
    };
    let (code, reason) = tokio::select! {
        end = inbound => end,
        end = outbound => end,
    };
    let _ = sink
        .send(Frame::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
    let _ = sink.close().await;
    let _ = writer.shutdown().await;
}

async fn next_event(
    events: &mut Option<broadcast::Receiver<Event>>,
) -> Result<Event, broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends the reply's messages and takes its state, subscriptions and close.
async fn apply(
    kernel: &Kernel,
    index: usize,
    ws: &mut Ws,
    socket: &mut Socket,
    topics: &mut HashSet<String>,
    reply: SocketReply,
) -> Next {
    for message in reply.send {
        let frame = match message {
            SocketMessage::Text(text) => Frame::text(text),
            SocketMessage::Binary(data) => Frame::binary(data),
        };
        if ws.send(frame).await.is_err() {
            return Next::Close(CloseCode::Away, String::new());
        }
    }
    if let Some(state) = reply.state {
        if state.len() > MAX_STATE_BYTES {
            return Next::Close(CloseCode::Error, "socket state too large".into());
        }
        socket.state = state;
    }
    let grants = &kernel.runtime.plugins()[index].ctx.grants;
    for topic in reply.subscribe {
        match grant_for(&topic) {
            Some(grant) if grants.contains(&grant) => {
                topics.insert(topic);
            }
            Some(_) => return Next::Close(CloseCode::Policy, format!("{topic} is not granted")),
            None => return Next::Close(CloseCode::Policy, format!("no topic {topic}")),
        }
    }
    match reply.close {
        Some((code, reason)) => Next::Close(CloseCode::from(code), reason),
        None => Next::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> hyper::Request<()> {
        let mut builder = hyper::Request::get("/ws");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn a_well_formed_upgrade_gives_its_key() {
        let req = request(&[
            ("upgrade", "WebSocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", KEY),
        ]);
        assert_eq!(upgrade_key(&req).as_deref(), Some(KEY));
        // RFC 6455's own example.
        assert_eq!(
            derive_accept_key(KEY.as_bytes()),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn anything_short_of_an_upgrade_is_a_plain_request() {
        let full = [
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", KEY),
        ];
        for skip in 0..full.len() {
            let some: Vec<_> = full
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, h)| *h)
                .collect();
            assert_eq!(
                upgrade_key(&request(&some)),
                None,
                "without {:?}",
                full[skip]
            );
        }
        let mut old = full;
        old[2] = ("sec-websocket-version", "8");
        assert_eq!(upgrade_key(&request(&old)), None);
        let mut short = full;
        short[3] = ("sec-websocket-key", "abc");
        assert_eq!(upgrade_key(&request(&short)), None);
        let mut post = request(&full);
        *post.method_mut() = hyper::Method::POST;
        assert_eq!(upgrade_key(&post), None);
    }
}
