//! WebSockets through a plugin, with a real client (tokio-tungstenite): the
//! hello example greets, echoes, keeps a count in the socket's state, streams
//! the site's VM changes after `watch`, and the kernel closes a socket whose
//! call trapped or that subscribes to an ungranted topic.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::harness::{Server, client, json, metrics, test_site};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

async fn connect(server: &Server, path: &str) -> Ws {
    let url = server.url(path).replacen("http://", "ws://", 1);
    let (ws, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// The next frame, bounded in time.
async fn next(ws: &mut Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(20), ws.next())
        .await
        .expect("a frame in time")
        .expect("the socket is open")
        .expect("a good frame")
}

async fn text(ws: &mut Ws) -> String {
    match next(ws).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

async fn close_code(ws: &mut Ws) -> CloseCode {
    match next(ws).await {
        Message::Close(Some(frame)) => frame.code,
        other => panic!("expected a close, got {other:?}"),
    }
}

#[test]
fn a_socket_greets_echoes_keeps_state_and_closes() {
    let server = Server::with_site(&test_site());
    block_on(async {
        let mut ws = connect(&server, "/hello/ws").await;
        assert_eq!(text(&mut ws).await, "welcome");
        ws.send(Message::text("hello there")).await.unwrap();
        assert_eq!(text(&mut ws).await, "hello there");
        ws.send(Message::binary(vec![0, 1, 2, 255])).await.unwrap();
        assert_eq!(next(&mut ws).await, Message::binary(vec![0, 1, 2, 255]));
        // Each text message is a fresh instance; the count lives in the state.
        ws.send(Message::text("again")).await.unwrap();
        assert_eq!(text(&mut ws).await, "again");
        ws.send(Message::text("count")).await.unwrap();
        assert_eq!(text(&mut ws).await, "3");
        ws.send(Message::text("bye")).await.unwrap();
        assert_eq!(close_code(&mut ws).await, CloseCode::Normal);
    });
    let text = metrics(&server);
    assert!(text.contains("tessera_socket_calls_total 6"), "{text}");
}

#[test]
fn a_watching_socket_sees_a_vm_provisioned_and_running() {
    let server = Server::with_site(&test_site());
    let base = server.url("/hello/vms");
    block_on(async {
        let mut ws = connect(&server, "/hello/ws").await;
        assert_eq!(text(&mut ws).await, "welcome");
        ws.send(Message::text("watch")).await.unwrap();
        assert_eq!(text(&mut ws).await, "watching");
        let created = tokio::task::spawn_blocking(move || {
            json(
                client()
                    .post(base)
                    .json(&json!({"name": "watched", "image": "alpine-3.20"}))
                    .send()
                    .unwrap(),
            )
        })
        .await
        .unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        let mut states = Vec::new();
        while states.last().map(String::as_str) != Some("running") {
            let event: Value = serde_json::from_str(&text(&mut ws).await).unwrap();
            if event["id"] == id.as_str() {
                assert_eq!(event["name"], "watched");
                states.push(event["state"].as_str().unwrap().to_string());
            }
        }
        assert_eq!(states, ["provisioning", "running"]);
    });
}

#[test]
fn routes_that_do_not_accept_refuse_the_upgrade() {
    let server = Server::with_site(&test_site());
    // A plain GET of the socket route is told to upgrade.
    let plain = client().get(server.url("/hello/ws")).send().unwrap();
    assert_eq!(plain.status(), 426);
    block_on(async {
        let url = server.url("/hello/notes").replacen("http://", "ws://", 1);
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 200, "the route's own answer");
            }
            other => panic!("expected an HTTP answer, got {:?}", other.map(|_| ())),
        }
    });
}

#[test]
fn a_trapping_call_closes_its_socket_and_the_kernel_serves_on() {
    let server = Server::with_site(&test_site());
    block_on(async {
        let mut ws = connect(&server, "/hello/ws").await;
        assert_eq!(text(&mut ws).await, "welcome");
        ws.send(Message::text("trap")).await.unwrap();
        assert_eq!(close_code(&mut ws).await, CloseCode::Error);
    });
    let hello = client().get(server.url("/hello/hello")).send().unwrap();
    assert_eq!(hello.status(), 200);
    let text = metrics(&server);
    assert!(
        text.contains("tessera_plugin_traps_total{plugin=\"hello\"} 1"),
        "{text}"
    );
}

#[test]
fn a_topic_the_mount_is_not_granted_or_unknown_closes_the_socket() {
    // The hostile plugin's mount grants nothing.
    let server = Server::with_site(&test_site());
    block_on(async {
        for topic in ["hypervisor.vm", "no.such.topic"] {
            let mut ws = connect(&server, &format!("/hostile/ws?topic={topic}")).await;
            assert_eq!(close_code(&mut ws).await, CloseCode::Policy, "{topic}");
        }
    });
}
