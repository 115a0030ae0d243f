//! WebSockets: accept an upgrade in `handle` with [`accept`], then answer
//! each [`SocketEvent`] in [`crate::Plugin::on_socket`] with a [`SocketReply`].
//!
//! ```ignore
//! fn handle(req: Request) -> Response {
//!     if tessera_sdk::sockets::is_upgrade(&req) {
//!         return tessera_sdk::sockets::accept("{}");
//!     }
//!     // ...
//! }
//! fn on_socket(socket: Socket, event: SocketEvent) -> SocketReply {
//!     match event {
//!         SocketEvent::Message(Message::Text(t)) => SocketReply::new().text(t),
//!         _ => SocketReply::new(),
//!     }
//! }
//! ```

pub use crate::bindings::tessera::kernel::sockets::{
    Event, Message, Socket, SocketEvent, SocketReply,
};
use crate::{Request, Response};

/// The header of the 101 that seeds the socket's state.
pub const STATE_HEADER: &str = "tessera-socket-state";

/// The header of the 101 that asks the kernel to splice the socket to a stream
/// it owns (see [`splice_vm_console`]).
pub const SPLICE_HEADER: &str = "tessera-socket-splice";

/// Ask the kernel to join the accepted socket to VM `vm`'s console (RFB/VNC):
/// when the hypervisor runs real VMs the kernel pumps binary frames both ways
/// itself and `on_socket` is never called; on a backend with no real consoles
/// (`sim`) the socket runs through `on_socket` as usual. Needs the
/// `hypervisor` grant.
pub fn splice_vm_console(mut response: Response, vm: &str) -> Response {
    response
        .headers
        .push((SPLICE_HEADER.to_string(), format!("vm-console {vm}")));
    response
}

/// Whether the request asks for a WebSocket (the kernel checks the rest of
/// the handshake itself).
pub fn is_upgrade(req: &Request) -> bool {
    req.header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Accept the upgrade, keeping `state` on the socket for its first call.
pub fn accept(state: &str) -> Response {
    Response {
        status: 101,
        headers: vec![(STATE_HEADER.to_string(), state.to_string())],
        body: Vec::new(),
    }
}

impl SocketReply {
    /// Nothing to send, state kept, no new subscription.
    pub fn new() -> Self {
        SocketReply {
            send: Vec::new(),
            state: None,
            subscribe: Vec::new(),
            close: None,
        }
    }

    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.send.push(Message::Text(text.into()));
        self
    }

    pub fn binary(mut self, data: Vec<u8>) -> Self {
        self.send.push(Message::Binary(data));
        self
    }

    pub fn state(mut self, state: impl Into<String>) -> Self {
        self.state = Some(state.into());
        self
    }

    /// Receive the kernel events of `topic` from now on (`hypervisor.vm`).
    pub fn subscribe(mut self, topic: impl Into<String>) -> Self {
        self.subscribe.push(topic.into());
        self
    }

    pub fn close(mut self, code: u16, reason: impl Into<String>) -> Self {
        self.close = Some((code, reason.into()));
        self
    }
}

impl Default for SocketReply {
    fn default() -> Self {
        SocketReply::new()
    }
}
