//! ConnectMachineVNC on the `qemu` backend: the kernel splices the WebSocket to the
//! VM's real VNC socket, so a real client (tokio-tungstenite) speaks RFB with QEMU
//! itself — QEMU's banner, its security types, and a ServerInit named after the VM's
//! QEMU guest name (`QEMU (<id>)`), which the plugin's canned handshake never sends. Skipped
//! where QEMU is missing.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::machine_networking::{block_on, connect, next, off_runtime};
use super::{Signer, account_with_key, assert_error, site, status_json};
use crate::qemu::{import_boot_image, qemu_present};

const SETTINGS: &str = r#"
[plugins.cloudapi.settings.packages.tiny]
memory = 64
disk = 16
vcpus = 1
default = true

[hypervisor]
backend = "qemu"

[hypervisor.qemu]
shutdown_timeout_ms = 300
boot_timeout_ms = 60000
"#;

fn wait_state(api: &Signer, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, _, body) = status_json(api.get(&format!("/my/machines/{id}")));
        if body["state"] == state || (state == "deleted" && status == 410) {
            return body;
        }
        assert!(Instant::now() < deadline, "never {state}: {status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn binary(message: Message) -> Vec<u8> {
    match message {
        Message::Binary(data) => data.to_vec(),
        other => panic!("expected binary, got {other:?}"),
    }
}

/// Binary frames until `len` bytes have come (QEMU may split or join RFB messages).
async fn read_exact(ws: &mut super::machine_networking::Ws, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < len {
        out.extend(binary(next(ws).await));
    }
    out
}

#[test]
fn vnc_reaches_the_real_qemu_console() {
    if !qemu_present() {
        return;
    }
    let server = site(SETTINGS);
    import_boot_image(&server);
    let api = account_with_key(&server, "alice");
    let (_, _, images) = status_json(api.get("/my/images?name=tiny-boot"));
    let image_id = images[0]["id"]
        .as_str()
        .expect("the imported image")
        .to_string();
    let (status, _, machine) = status_json(api.post(
        "/my/machines",
        &json!({"name": "console", "image": image_id}),
    ));
    assert_eq!(status, 201, "{machine}");
    let id = machine["id"].as_str().unwrap().to_string();
    wait_state(&api, &id, "running");

    // Not an upgrade: refused before any console is touched.
    assert_error(
        api.get(&format!("/my/machines/{id}/vnc")),
        426,
        "UpgradeRequired",
    );

    block_on(async {
        let mut ws = connect(&server, &api, &format!("/alice/machines/{id}/vnc")).await;
        assert_eq!(read_exact(&mut ws, 12).await, b"RFB 003.008\n");
        ws.send(Message::binary(b"RFB 003.008\n".to_vec()))
            .await
            .unwrap();
        // QEMU with no password offers exactly security type None.
        assert_eq!(read_exact(&mut ws, 2).await, vec![1, 1]);
        ws.send(Message::binary(vec![1])).await.unwrap();
        assert_eq!(read_exact(&mut ws, 4).await, vec![0, 0, 0, 0]);
        ws.send(Message::binary(vec![1])).await.unwrap();
        let init = read_exact(&mut ws, 24).await;
        let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
        let mut name = init[24..].to_vec();
        if name.len() < name_len {
            name.extend(read_exact(&mut ws, name_len - name.len()).await);
        }
        // QEMU names the desktop after its guest: the VM's id, not the machine's name.
        assert_eq!(
            String::from_utf8_lossy(&name[..name_len]),
            format!("QEMU ({id})")
        );
        let (width, height) = (
            u16::from_be_bytes([init[0], init[1]]),
            u16::from_be_bytes([init[2], init[3]]),
        );
        assert!(width > 0 && height > 0, "{width}x{height}");
        // A full framebuffer update request gets real pixels back.
        let mut request = vec![3, 0, 0, 0, 0, 0];
        request.extend_from_slice(&width.to_be_bytes());
        request.extend_from_slice(&height.to_be_bytes());
        ws.send(Message::binary(request)).await.unwrap();
        let update = read_exact(&mut ws, 4).await;
        assert_eq!(update[0], 0, "FramebufferUpdate");

        // Deleting the machine ends QEMU, and with it the socket.
        let status = off_runtime(|| {
            api.send("DELETE", &format!("/my/machines/{id}"), None)
                .status()
        });
        assert!(status.is_success(), "{status}");
        loop {
            match tokio::time::timeout(
                Duration::from_secs(60),
                futures_util::StreamExt::next(&mut ws),
            )
            .await
            .expect("the socket closes in time")
            {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            }
        }
    });
    wait_state(&api, &id, "deleted");
    assert_error(
        api.get(&format!("/my/machines/{id}/vnc")),
        404,
        "ResourceNotFound",
    );
}
