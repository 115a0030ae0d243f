//! ConnectMachineVNC: a WebSocket speaking RFB (VNC) for a running machine.
//!
//! The 101 asks the kernel to splice the socket to the VM's console
//! (`tessera-socket-splice: vm-console <id>`): on the `qemu` backend the kernel then
//! pumps the client's binary frames to and from the VM's real VNC socket
//! (`<data>/qemu/vms/<id>/vnc.sock`) with no plugin call per frame. A backend with no
//! real consoles (`sim`) hands the socket back to this plugin, which serves the RFB 3.8
//! handshake itself — ProtocolVersion, security type None, SecurityResult OK,
//! ServerInit with the machine's name — and answers each FramebufferUpdateRequest
//! with an empty update: a console that connects and stays blank, and closes when the
//! machine stops.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_sdk::Params;
use tessera_sdk::hypervisor::VmState;
use tessera_sdk::sockets::{Message, Socket, SocketEvent, SocketReply};

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;
use crate::resources::sockets::{accept, require_upgrade};
use crate::vms;

pub const KIND: &str = "vnc";

const WIDTH: u16 = 1024;
const HEIGHT: u16 = 768;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Waiting for the client's ProtocolVersion.
    Version,
    /// Waiting for the client's security type.
    Security,
    /// Waiting for ClientInit.
    Init,
    /// Handshake done.
    Normal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VncState {
    pub kind: String,
    pub vm: String,
    pub name: String,
    pub phase: Phase,
}

pub fn open(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = vms::owned(
        &ctx.account.id,
        ctx.login(),
        p.get("id").unwrap_or_default(),
    )?;
    if vm.state != VmState::Running {
        return Err(ApiError::new(
            409,
            "MachineStopped",
            format!(
                "machine {} is {}; VNC needs it running",
                vm.id,
                crate::compute::api_state(vm.state)
            ),
        ));
    }
    require_upgrade(ctx)?;
    let splice = format!("vm-console {}", vm.id);
    let state = VncState {
        kind: KIND.into(),
        vm: vm.id,
        name: vm.name,
        phase: Phase::Version,
    };
    Ok(accept(&serde_json::to_string(&state).unwrap_or_default())
        .with_header(tessera_sdk::sockets::SPLICE_HEADER, splice))
}

/// The server's first message.
pub const SERVER_VERSION: &[u8] = b"RFB 003.008\n";

/// ServerInit: the framebuffer's size, a 32-bit true-colour pixel format, the name.
pub fn server_init(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + name.len());
    out.extend_from_slice(&WIDTH.to_be_bytes());
    out.extend_from_slice(&HEIGHT.to_be_bytes());
    // bits-per-pixel, depth, big-endian, true-colour
    out.extend_from_slice(&[32, 24, 0, 1]);
    // red, green, blue max
    for _ in 0..3 {
        out.extend_from_slice(&255u16.to_be_bytes());
    }
    // red, green, blue shift, 3 bytes padding
    out.extend_from_slice(&[16, 8, 0, 0, 0, 0]);
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out
}

/// One step of the handshake: what to send and the next phase, or why to close.
pub fn step(phase: Phase, data: &[u8], name: &str) -> Result<(Vec<Vec<u8>>, Phase), String> {
    match phase {
        Phase::Version => {
            if data.len() != 12 || !data.starts_with(b"RFB 003.") {
                return Err("expected an RFB ProtocolVersion".into());
            }
            // One security type: None (1).
            Ok((vec![vec![1, 1]], Phase::Security))
        }
        Phase::Security => {
            if data != [1] {
                return Err("only security type None (1) is offered".into());
            }
            Ok((vec![0u32.to_be_bytes().to_vec()], Phase::Init))
        }
        Phase::Init => {
            if data.len() != 1 {
                return Err("expected ClientInit".into());
            }
            Ok((vec![server_init(name)], Phase::Normal))
        }
        Phase::Normal => {
            // FramebufferUpdateRequest (3) gets an update with no rectangles; input
            // events (4, 5), SetPixelFormat (0), SetEncodings (2) and cut text (6) need none.
            let mut out = Vec::new();
            if data.first() == Some(&3) {
                out.push(vec![0, 0, 0, 0]);
            }
            Ok((out, Phase::Normal))
        }
    }
}

pub fn on_socket(socket: &Socket, event: SocketEvent) -> SocketReply {
    let Ok(mut state) = serde_json::from_str::<VncState>(&socket.state) else {
        return SocketReply::new().close(1011, "lost the socket's state");
    };
    match event {
        SocketEvent::Opened => SocketReply::new()
            .binary(SERVER_VERSION.to_vec())
            .subscribe("hypervisor.vm"),
        SocketEvent::Message(message) => {
            let data = match message {
                Message::Binary(data) => data,
                Message::Text(text) => text.into_bytes(),
            };
            match step(state.phase, &data, &state.name) {
                Ok((frames, next)) => {
                    let mut reply = SocketReply::new();
                    for frame in frames {
                        reply = reply.binary(frame);
                    }
                    if next != state.phase {
                        state.phase = next;
                        reply = reply.state(serde_json::to_string(&state).unwrap_or_default());
                    }
                    reply
                }
                Err(why) => SocketReply::new().close(1002, why),
            }
        }
        SocketEvent::Event(event) => {
            let payload: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
            let this = payload["id"].as_str() == Some(state.vm.as_str());
            let running = matches!(payload["state"].as_str(), Some("running" | "rebooting"));
            if this && !running {
                SocketReply::new().close(1000, "the machine stopped")
            } else {
                SocketReply::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_runs_to_server_init() {
        let (out, phase) = step(Phase::Version, b"RFB 003.008\n", "vm").unwrap();
        assert_eq!((out, phase), (vec![vec![1, 1]], Phase::Security));
        let (out, phase) = step(phase, &[1], "vm").unwrap();
        assert_eq!((out, phase), (vec![vec![0, 0, 0, 0]], Phase::Init));
        let (out, phase) = step(phase, &[1], "web-1").unwrap();
        assert_eq!(phase, Phase::Normal);
        assert_eq!(out[0].len(), 24 + 5);
        assert_eq!(&out[0][0..4], &[4, 0, 3, 0]);
        assert_eq!(&out[0][24..], b"web-1");
        let (out, _) = step(Phase::Normal, &[3, 0, 0, 0, 0, 0, 4, 0, 3, 0], "x").unwrap();
        assert_eq!(out, vec![vec![0, 0, 0, 0]]);
    }

    #[test]
    fn bad_handshakes_close() {
        assert!(step(Phase::Version, b"HTTP/1.1 200", "x").is_err());
        assert!(step(Phase::Security, &[2], "x").is_err());
        assert!(step(Phase::Init, &[], "x").is_err());
    }
}
