//! GetChangefeed: a WebSocket on which the account's machine changes arrive.
//!
//! The client registers with one text message, `{"resource": "vm", "subResources":
//! [...], "vms": [...]}` (what `triton changefeed` sends); the socket then subscribes to
//! the kernel's `hypervisor.vm` events and forwards those of the account's machines (of
//! `vms` only, when given) whose changed parts intersect `subResources`, as change
//! objects: `changeKind`, `changedResourceId`, `published` (ms), `resourceState`,
//! `resourceObject` (the machine as ListMachines shows it). Sending another registration
//! replaces the first.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::hypervisor as hv;
use tessera_sdk::sockets::{Event, Message, Socket, SocketEvent, SocketReply};

use crate::context::Ctx;
use crate::errors::ApiResult;
use crate::ids::is_uuid;
use crate::protocol::Reply;
use crate::resources::machines;
use crate::resources::sockets::{accept, require_upgrade};
use crate::settings::Settings;

/// The sub-resources a registration may name (VMAPI's change kinds).
pub const SUB_RESOURCES: [&str; 13] = [
    "alias",
    "customer_metadata",
    "destroyed",
    "firewall_enabled",
    "max_physical_memory",
    "nics",
    "owner_uuid",
    "server_uuid",
    "snapshots",
    "state",
    "tags",
    "deletion_protection",
    "quota",
];

/// What the socket keeps between calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedState {
    pub kind: String,
    pub account: String,
    pub login: String,
    #[serde(default)]
    pub registered: bool,
    #[serde(default)]
    pub sub_resources: Vec<String>,
    #[serde(default)]
    pub vms: Vec<String>,
}

pub const KIND: &str = "changefeed";

pub fn open(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    require_upgrade(ctx)?;
    let state = FeedState {
        kind: KIND.into(),
        account: ctx.account.id.clone(),
        login: ctx.login().to_string(),
        ..FeedState::default()
    };
    Ok(accept(&serde_json::to_string(&state).unwrap_or_default()))
}

/// Close code for a registration the feed cannot take.
const BAD_REGISTRATION: u16 = 4400;

pub fn on_socket(socket: &Socket, event: SocketEvent) -> SocketReply {
    let Ok(mut state) = serde_json::from_str::<FeedState>(&socket.state) else {
        return SocketReply::new().close(1011, "lost the socket's state");
    };
    match event {
        SocketEvent::Opened => SocketReply::new(),
        SocketEvent::Message(Message::Text(text)) => match registration(&text) {
            Ok((sub_resources, vms)) => {
                let first = !state.registered;
                state.registered = true;
                state.sub_resources = sub_resources;
                state.vms = vms;
                let reply =
                    SocketReply::new().state(serde_json::to_string(&state).unwrap_or_default());
                if first {
                    reply.subscribe("hypervisor.vm")
                } else {
                    reply
                }
            }
            Err(why) => SocketReply::new().close(BAD_REGISTRATION, why),
        },
        SocketEvent::Message(Message::Binary(_)) => {
            SocketReply::new().close(1003, "the changefeed takes JSON text messages")
        }
        SocketEvent::Event(event) => forward(&state, &event),
    }
}

/// The registration's sub-resources and machine ids, or why it is refused.
pub fn registration(text: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let Ok(Value::Object(message)) = serde_json::from_str::<Value>(text) else {
        return Err("the registration must be a JSON object".into());
    };
    match message.get("resource").and_then(Value::as_str) {
        Some("vm") => {}
        Some(other) => return Err(format!("resource {other:?} is not supported: only \"vm\"")),
        None => return Err("the registration needs resource: \"vm\"".into()),
    }
    let strings = |name: &str| -> Result<Vec<String>, String> {
        match message.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(String::from)
                        .ok_or_else(|| format!("{name} must be an array of strings"))
                })
                .collect(),
            Some(_) => Err(format!("{name} must be an array of strings")),
        }
    };
    let sub_resources = strings("subResources")?;
    if let Some(bad) = sub_resources
        .iter()
        .find(|s| !SUB_RESOURCES.contains(&s.as_str()))
    {
        return Err(format!("subResource {bad:?} is not supported"));
    }
    let vms: Vec<String> = strings("vms")?
        .into_iter()
        .map(|v| v.to_ascii_lowercase())
        .collect();
    if let Some(bad) = vms.iter().find(|v| !is_uuid(v)) {
        return Err(format!("vm {bad:?} is not a UUID"));
    }
    Ok((sub_resources, vms))
}

/// What a kernel change touched, in VMAPI's words.
pub fn changed_parts(change: &str, state: &str) -> Vec<&'static str> {
    match change {
        "rename" => vec!["alias"],
        "resize" => vec!["max_physical_memory", "quota", "state"],
        "add-nic" | "remove-nic" => vec!["nics"],
        "set-tags" => vec!["tags"],
        "set-metadata" => vec!["customer_metadata"],
        "set-deletion-protection" => vec!["deletion_protection"],
        "snapshot-create" | "snapshot-delete" => vec!["snapshots"],
        _ if state == "deleted" => vec!["destroyed", "state"],
        _ => vec!["state"],
    }
}

/// VMAPI's name for a state: `deleted` is `destroyed`.
fn resource_state(state: &str) -> &str {
    match state {
        "deleted" => "destroyed",
        other => other,
    }
}

fn forward(state: &FeedState, event: &Event) -> SocketReply {
    if !state.registered || event.topic != "hypervisor.vm" {
        return SocketReply::new();
    }
    let Ok(payload) = serde_json::from_str::<Value>(&event.payload) else {
        return SocketReply::new();
    };
    let text = |name: &str| payload[name].as_str().unwrap_or_default().to_string();
    let (id, owner, vm_state, change) = (text("id"), text("owner"), text("state"), text("change"));
    if owner != state.account && owner != state.login {
        return SocketReply::new();
    }
    if !state.vms.is_empty() && !state.vms.contains(&id) {
        return SocketReply::new();
    }
    let parts: Vec<&str> = changed_parts(&change, &vm_state)
        .into_iter()
        .filter(|p| state.sub_resources.is_empty() || state.sub_resources.iter().any(|s| s == p))
        .collect();
    if parts.is_empty() {
        return SocketReply::new();
    }
    let object = match hv::get_vm(&id) {
        Ok(Some(vm)) => machine_object(&vm),
        _ => None,
    }
    .unwrap_or_else(|| json!({"id": id, "name": text("name"), "state": vm_state}));
    let message = json!({
        "changeKind": {"resource": "vm", "subResources": parts},
        "changedResourceId": id,
        "published": crate::protocol::clock::now_ms().to_string(),
        "resourceState": resource_state(&vm_state),
        "resourceObject": object,
    });
    SocketReply::new().text(message.to_string())
}

/// The machine as GetMachine shows it (credentials left out).
fn machine_object(vm: &hv::Vm) -> Option<Value> {
    let lookup = machines::Lookup::new(&Settings::current(), false).ok()?;
    let (extras, _) = machines::extras(&vm.id).ok()?;
    Some(machines::machine_json(vm, Some(&extras), &lookup))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triton_registration_is_taken() {
        let text = r#"{"resource":"vm","subResources":["alias","customer_metadata","destroyed","nics","owner_uuid","server_uuid","state","tags"],"vms":["98CBD3D0-5D6F-429D-8535-BF6BA5AFE1E3"]}"#;
        let (subs, vms) = registration(text).unwrap();
        assert_eq!(subs.len(), 8);
        assert_eq!(vms, vec!["98cbd3d0-5d6f-429d-8535-bf6ba5afe1e3"]);
        assert_eq!(
            registration(r#"{"resource":"vm"}"#).unwrap(),
            (vec![], vec![])
        );
    }

    #[test]
    fn bad_registrations_are_refused() {
        for bad in [
            "nope",
            "[]",
            r#"{"subResources":["state"]}"#,
            r#"{"resource":"image"}"#,
            r#"{"resource":"vm","subResources":["colour"]}"#,
            r#"{"resource":"vm","subResources":"state"}"#,
            r#"{"resource":"vm","vms":["not-a-uuid"]}"#,
        ] {
            assert!(registration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn changes_map_to_vmapi_parts() {
        assert_eq!(changed_parts("stop", "stopping"), vec!["state"]);
        assert_eq!(
            changed_parts("completed", "deleted"),
            vec!["destroyed", "state"]
        );
        assert_eq!(changed_parts("rename", "running"), vec!["alias"]);
    }
}
