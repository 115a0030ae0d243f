//! CloudAPI part 3 on real machines (created with CreateMachine): NICs, which machines a
//! firewall rule applies to, volumes mounted by machines, and the WebSockets — a
//! changefeed that sees a machine stop and start, and the VNC handshake — opened with
//! pre-signed URLs by a real client (tokio-tungstenite).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::protocol::presigned_url;
use super::{Signer, account_with_key, assert_error, site, status_json};
use crate::harness::Server;

pub const SETTINGS: &str = r#"
[plugins.cloudapi.settings.packages.small]
memory = 512
disk = 10240
vcpus = 1
default = true

[hypervisor.sim]
transition_delay_ms = 150
"#;

pub fn image_id(api: &Signer) -> String {
    let (_, _, body) = status_json(api.get("/my/images?name=alpine-3.20"));
    body[0]["id"].as_str().expect("image id").to_string()
}

pub fn wait_state(api: &Signer, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, body) = status_json(api.get(&format!("/my/machines/{id}")));
        if body["state"] == state || (state == "deleted" && status == 410) {
            return body;
        }
        assert!(Instant::now() < deadline, "never {state}: {status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn running(api: &Signer, body: Value) -> String {
    let (status, _, machine) = status_json(api.post("/my/machines", &body));
    assert_eq!(status, 201, "{machine}");
    let id = machine["id"].as_str().unwrap().to_string();
    wait_state(api, &id, "running");
    id
}

fn network_id(api: &Signer, name: &str) -> String {
    let (_, _, list) = status_json(api.get("/my/networks"));
    list.as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn nics_firewall_rules_and_volumes_on_machines() {
    let server = site(SETTINGS);
    let api = account_with_key(&server, "alice");
    let image = image_id(&api);
    let id = running(
        &api,
        json!({"name": "web-1", "image": image, "tag.role": "web"}),
    );
    let other = running(
        &api,
        json!({"name": "db-1", "image": image, "tag.role": "db"}),
    );

    // NICs.
    let (status, _, nics) = status_json(api.get(&format!("/my/machines/{id}/nics")));
    assert_eq!(status, 200, "{nics}");
    assert_eq!(nics.as_array().unwrap().len(), 1);
    let primary = nics[0].clone();
    assert_eq!(primary["primary"], true);
    assert_eq!(primary["netmask"], "255.255.0.0");
    let mac = primary["mac"].as_str().unwrap().to_string();
    let bare = mac.replace(':', "");
    let (status, _, one) = status_json(api.get(&format!("/my/machines/{id}/nics/{bare}")));
    assert_eq!((status, one["mac"].as_str()), (200, Some(mac.as_str())));
    assert_error(
        api.get(&format!("/my/machines/{id}/nics/000000000000")),
        404,
        "ResourceNotFound",
    );
    assert_error(
        api.get("/my/machines/00000000-0000-4000-8000-000000000000/nics"),
        404,
        "ResourceNotFound",
    );

    let private = network_id(&api, "private");
    let (status, headers, added) = status_json(api.post(
        &format!("/my/machines/{id}/nics"),
        &json!({"network": private}),
    ));
    assert_eq!(status, 201, "{added}");
    assert_eq!(
        (added["primary"].as_bool(), added["network"].as_str()),
        (Some(false), Some(private.as_str()))
    );
    assert!(added["ip"].as_str().unwrap().starts_with("192.168.128."));
    assert_eq!(added["gateway"], "192.168.128.1");
    assert!(headers["location"].to_str().unwrap().contains("/nics/"));
    let added_ip = added["ip"].as_str().unwrap().to_string();
    let added_mac = added["mac"].as_str().unwrap().replace(':', "");
    let (_, _, nics) = status_json(api.get(&format!("/my/machines/{id}/nics")));
    assert_eq!(nics.as_array().unwrap().len(), 2);
    assert_error(
        api.post(&format!("/my/machines/{id}/nics"), &json!({})),
        409,
        "MissingParameter",
    );
    assert_error(
        api.post(
            &format!("/my/machines/{id}/nics"),
            &json!({"network": "nope"}),
        ),
        409,
        "InvalidArgument",
    );

    // The NIC's address shows on the network as the machine's.
    let (_, _, ip) = status_json(api.get(&format!("/my/networks/{private}/ips/{added_ip}")));
    assert_eq!(ip["belongs_to_uuid"].as_str(), Some(id.as_str()), "{ip}");
    let bob = account_with_key(&server, "bob");
    let (_, _, seen) = status_json(bob.get(&format!("/bob/networks/{private}/ips/{added_ip}")));
    assert!(
        seen["owner_uuid"].is_string() && seen["belongs_to_uuid"].is_null(),
        "{seen}"
    );
    assert_error(
        bob.send(
            "PUT",
            &format!("/bob/networks/{private}/ips/{added_ip}"),
            Some(&json!({"reserved": true})),
        ),
        409,
        "InvalidArgument",
    );
    assert_error(
        bob.get(&format!("/bob/machines/{id}/nics")),
        404,
        "ResourceNotFound",
    );

    assert_error(
        api.send("DELETE", &format!("/my/machines/{id}/nics/{bare}"), None),
        409,
        "InvalidArgument",
    );
    assert_eq!(
        api.send(
            "DELETE",
            &format!("/my/machines/{id}/nics/{added_mac}"),
            None
        )
        .status(),
        204
    );
    let (_, _, nics) = status_json(api.get(&format!("/my/machines/{id}/nics")));
    assert_eq!(nics.as_array().unwrap().len(), 1);

    // Firewall rules resolved against the machines and their tags.
    let rule = |text: String| -> String {
        let (status, _, created) =
            status_json(api.post("/my/fwrules", &json!({"rule": text, "enabled": true})));
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_string()
    };
    let by_tag = rule("FROM any TO tag role=web ALLOW tcp PORT 80".into());
    let by_vm = rule(format!("FROM vm {other} TO any BLOCK udp PORT 53"));
    let all = rule("FROM all vms TO any ALLOW icmp TYPE 8".into());
    let none = rule("FROM any TO tag role=cache ALLOW tcp PORT 6379".into());
    let names = |rule: &str| -> Vec<String> {
        let (status, _, list) = status_json(api.get(&format!("/my/fwrules/{rule}/machines")));
        assert_eq!(status, 200, "{list}");
        let mut names: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&by_tag), vec!["web-1"]);
    assert_eq!(names(&by_vm), vec!["db-1"]);
    assert_eq!(names(&all), vec!["db-1", "web-1"]);
    assert!(names(&none).is_empty());
    let (_, _, of_web) = status_json(api.get(&format!("/my/machines/{id}/fwrules")));
    let mut ids: Vec<&str> = of_web
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![by_tag.as_str(), all.as_str()];
    expected.sort();
    assert_eq!(ids, expected);

    // A machine that mounts a volume keeps it from being deleted.
    let vlans = "/my/fabrics/default/vlans";
    assert_eq!(
        api.post(vlans, &json!({"name": "st", "vlan_id": 5}))
            .status(),
        201
    );
    let (_, _, net) = status_json(api.post(&format!("{vlans}/5/networks"), &json!({"name": "st", "subnet": "10.5.0.0/24", "provision_start_ip": "10.5.0.10", "provision_end_ip": "10.5.0.50"})));
    assert!(net["id"].is_string(), "{net}");
    let (_, _, volume) = status_json(api.post("/my/volumes", &json!({"name": "shared"})));
    let volume_id = volume["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_json(api.get(&format!("/my/volumes/{volume_id}"))).2["state"] != "ready" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_error(
        api.post("/my/machines", &json!({"image": image, "volumes": [{"name": "missing", "type": "tritonnfs", "mode": "rw", "mountpoint": "/data"}]})),
        409,
        "InvalidArgument",
    );
    let mounter = running(
        &api,
        json!({"name": "app-1", "image": image, "volumes": [{"name": "shared", "type": "tritonnfs", "mode": "rw", "mountpoint": "/data"}]}),
    );
    let (_, _, volume) = status_json(api.get(&format!("/my/volumes/{volume_id}")));
    assert_eq!(volume["refs"], json!([mounter]));
    assert_error(
        api.send("DELETE", &format!("/my/volumes/{volume_id}"), None),
        409,
        "VolumeInUse",
    );
    assert_error(
        api.post(
            &format!("/my/volumes/{volume_id}"),
            &json!({"name": "renamed"}),
        ),
        409,
        "VolumeInUse",
    );
    assert!(
        api.send("DELETE", &format!("/my/machines/{mounter}"), None)
            .status()
            .is_success()
    );
    wait_state(&api, &mounter, "deleted");
    assert_eq!(
        api.send("DELETE", &format!("/my/volumes/{volume_id}"), None)
            .status(),
        204
    );
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Blocking HTTP from inside the async test: on a plain thread, outside the runtime.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub async fn connect(server: &Server, api: &Signer, path: &str) -> Ws {
    let host = server.base.trim_start_matches("http://").to_string();
    let url = format!(
        "{}{}",
        server.base,
        presigned_url(api, &host, path, now_secs() + 60, None)
    )
    .replacen("http://", "ws://", 1);
    let (ws, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

pub async fn next(ws: &mut Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(20), ws.next())
        .await
        .expect("a frame in time")
        .expect("the socket is open")
        .expect("a good frame")
}

/// Change messages until one says the machine reached `state`.
async fn until_state(ws: &mut Ws, id: &str, state: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let Message::Text(text) = next(ws).await else {
            continue;
        };
        let change: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(change["changedResourceId"], id, "{change}");
        assert_eq!(change["changeKind"]["resource"], "vm");
        assert!(change["published"].as_str().unwrap().parse::<u64>().is_ok());
        assert_eq!(change["resourceObject"]["id"], id);
        let done = change["resourceState"] == state;
        seen.push(change);
        if done {
            return seen;
        }
    }
}

#[test]
fn changefeed_sees_a_machine_stop_and_start() {
    let server = site(SETTINGS);
    let api = account_with_key(&server, "alice");
    let image = image_id(&api);
    let id = running(&api, json!({"name": "watched", "image": image}));
    let quiet = running(&api, json!({"name": "ignored", "image": image}));
    block_on(async {
        let mut ws = connect(&server, &api, "/alice/changefeed").await;
        let registration = json!({"resource": "vm", "subResources": ["alias", "customer_metadata", "destroyed", "nics", "owner_uuid", "server_uuid", "state", "tags"], "vms": [id]});
        ws.send(Message::text(registration.to_string()))
            .await
            .unwrap();
        // Give the registration its turn before the changes start.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let act = |vm: String, action: &'static str| {
            let api = &api;
            off_runtime(move || {
                let path = format!("/my/machines/{vm}?action={action}");
                let (status, _, body) = status_json(api.post(&path, &json!({})));
                assert!(status == 202 || status == 200, "{action}: {status} {body}");
            })
        };
        act(quiet.clone(), "stop");
        act(id.clone(), "stop");
        let stopping = until_state(&mut ws, &id, "stopped").await;
        assert!(
            stopping
                .iter()
                .all(|c| c["changeKind"]["subResources"] == json!(["state"])),
            "{stopping:?}"
        );
        act(id.clone(), "start");
        let starting = until_state(&mut ws, &id, "running").await;
        assert_eq!(
            starting.last().unwrap()["resourceObject"]["state"],
            "running"
        );
        ws.close(None).await.unwrap();

        // A registration for something other than machines closes the feed.
        let mut bad = connect(&server, &api, "/alice/changefeed").await;
        bad.send(Message::text(r#"{"resource":"image"}"#))
            .await
            .unwrap();
        match next(&mut bad).await {
            Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4400),
            other => panic!("expected a close, got {other:?}"),
        }
    });
    // Without an upgrade, the endpoint says so; unsigned, it refuses.
    assert_error(api.get("/my/changefeed"), 426, "UpgradeRequired");
    let unsigned = block_on(tokio_tungstenite::connect_async(
        format!("{}/alice/changefeed", server.base).replacen("http://", "ws://", 1),
    ));
    assert!(unsigned.is_err());
}

#[test]
fn vnc_speaks_the_rfb_handshake_for_a_running_machine() {
    let server = site(SETTINGS);
    let api = account_with_key(&server, "alice");
    let image = image_id(&api);
    let id = running(&api, json!({"name": "console", "image": image}));
    block_on(async {
        let mut ws = connect(&server, &api, &format!("/alice/machines/{id}/vnc")).await;
        let binary = |m: Message| match m {
            Message::Binary(data) => data.to_vec(),
            other => panic!("expected binary, got {other:?}"),
        };
        assert_eq!(binary(next(&mut ws).await), b"RFB 003.008\n");
        ws.send(Message::binary(b"RFB 003.008\n".to_vec()))
            .await
            .unwrap();
        assert_eq!(binary(next(&mut ws).await), vec![1, 1]);
        ws.send(Message::binary(vec![1])).await.unwrap();
        assert_eq!(binary(next(&mut ws).await), vec![0, 0, 0, 0]);
        ws.send(Message::binary(vec![1])).await.unwrap();
        let init = binary(next(&mut ws).await);
        assert_eq!(&init[0..4], &[4, 0, 3, 0]);
        assert_eq!(&init[24..], b"console");
        ws.send(Message::binary(vec![3, 0, 0, 0, 0, 0, 4, 0, 3, 0]))
            .await
            .unwrap();
        assert_eq!(binary(next(&mut ws).await), vec![0, 0, 0, 0]);
        // Stopping the machine ends the console.
        let (status, _, _) = off_runtime(|| {
            status_json(api.post(&format!("/my/machines/{id}?action=stop"), &json!({})))
        });
        assert!(status == 202 || status == 200);
        loop {
            match next(&mut ws).await {
                Message::Close(_) => break,
                Message::Binary(_) => continue,
                other => panic!("expected a close, got {other:?}"),
            }
        }
    });
    wait_state(&api, &id, "stopped");
    assert_error(
        api.get(&format!("/my/machines/{id}/vnc")),
        409,
        "MachineStopped",
    );
    assert_error(
        api.get("/my/machines/00000000-0000-4000-8000-000000000000/vnc"),
        404,
        "ResourceNotFound",
    );
}
