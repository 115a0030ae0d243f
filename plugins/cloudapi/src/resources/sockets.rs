//! What the WebSocket endpoints (GetChangefeed, ConnectMachineVNC) share: the upgrade
//! check, the 101 that hands the socket to the kernel, and the dispatch of a socket's
//! calls by the `kind` its state names.

use serde_json::Value;
use tessera_sdk::sockets::{self, Socket, SocketEvent, SocketReply};

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;
use crate::resources::{changefeed, vnc};

/// 426 `UpgradeRequired` unless the request asks for a WebSocket.
pub fn require_upgrade(ctx: &Ctx<'_>) -> ApiResult<()> {
    if sockets::is_upgrade(ctx.request) {
        return Ok(());
    }
    Err(ApiError::new(
        426,
        "UpgradeRequired",
        "this endpoint speaks WebSocket: send an Upgrade request",
    )
    .with_header("upgrade", "websocket"))
}

/// The 101: the kernel finishes the handshake and keeps `state` on the socket.
pub fn accept(state: &str) -> Reply {
    Reply {
        status: 101,
        body: None,
        headers: vec![(sockets::STATE_HEADER.to_string(), state.to_string())],
    }
}

pub fn on_socket(socket: Socket, event: SocketEvent) -> SocketReply {
    let kind = serde_json::from_str::<Value>(&socket.state)
        .ok()
        .and_then(|s| s["kind"].as_str().map(String::from))
        .unwrap_or_default();
    match kind.as_str() {
        changefeed::KIND => changefeed::on_socket(&socket, event),
        vnc::KIND => vnc::on_socket(&socket, event),
        _ => SocketReply::new().close(1011, "unknown socket"),
    }
}
