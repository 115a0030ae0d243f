//! A plugin that misbehaves on purpose, so the kernel's isolation tests can
//! prove a bad plugin costs only its own request.

use std::sync::atomic::{AtomicU64, Ordering};

use tessera_sdk::sockets::{self, Socket, SocketEvent, SocketReply};
use tessera_sdk::{Plugin, Request, Response};

/// Global state: must start at zero in every request (fresh instance).
static CALLS: AtomicU64 = AtomicU64::new(0);

struct Hostile;

impl Plugin for Hostile {
    fn handle(req: Request) -> Response {
        match req.subpath.as_str() {
            "/ok" => Response::text(200, "ok"),
            "/loop" => spin_forever(),
            "/bomb" => memory_bomb(),
            "/trap" => panic!("hostile plugin traps on purpose"),
            "/global" => {
                let n = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
                Response::text(200, &n.to_string())
            }
            "/echo" => Response::new(200).with_body(req.body),
            "/bad-header" => Response::text(200, "ok").with_header("bad header\n", "x"),
            // With the `files` grant `/` is the plugin's own dir; without it
            // there is no filesystem at all. Either way nothing escapes.
            "/fs-write" => {
                let path = req.query_param("path").unwrap_or_default();
                match std::fs::write(&path, &req.body) {
                    Ok(()) => Response::text(200, "written"),
                    Err(e) => Response::text(403, &e.to_string()),
                }
            }
            "/fs-read" => {
                let path = req.query_param("path").unwrap_or_default();
                match std::fs::read(&path) {
                    Ok(bytes) => Response::new(200).with_body(bytes),
                    Err(e) => Response::text(403, &e.to_string()),
                }
            }
            // A socket whose state names the topic it subscribes to on open.
            "/ws" => sockets::accept(&req.query_param("topic").unwrap_or_default()),
            // Far more log lines than a call may write.
            "/log-flood" => {
                let lines: u64 = req
                    .query_param("lines")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(100_000);
                for n in 0..lines {
                    tessera_sdk::info!("flood line {n}");
                }
                // One long printed line (under the 64 KiB output pipe).
                println!("{}", "x".repeat(20_000));
                Response::text(200, "flooded")
            }
            // A body of `mib` MiB.
            "/huge" => {
                let mib: usize = req
                    .query_param("mib")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(8);
                Response::new(200).with_body(vec![b'x'; mib << 20])
            }
            // What the environment offers: nothing.
            "/env" => {
                let vars = std::env::vars().count();
                let args = std::env::args().count();
                Response::text(200, &format!("vars={vars} args={args}"))
            }
            // Storage calls in a tight loop: only the time budget stops it.
            "/storage-loop" => loop {
                let _ = tessera_sdk::storage::Collection::new("spin").get::<String>("key");
            },
            "/print" => {
                println!("hello from hostile stdout");
                Response::text(200, "printed")
            }
            _ => Response::text(404, "no such route"),
        }
    }

    /// Subscribes to whatever topic it was told, granted or not.
    fn on_socket(socket: Socket, event: SocketEvent) -> SocketReply {
        match event {
            SocketEvent::Opened => SocketReply::new().subscribe(socket.state),
            _ => SocketReply::new(),
        }
    }
}

fn spin_forever() -> Response {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn memory_bomb() -> Response {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
    }
}

tessera_sdk::export_plugin!(Hostile);
