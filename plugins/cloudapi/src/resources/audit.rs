//! MachineAudit: the hypervisor primitive's audit trail of the machine, newest first,
//! with CloudAPI's action names and `{type, ip, keyId}` callers.

use serde_json::{Value, json};
use tessera_sdk::Params;
use tessera_sdk::hypervisor as hv;

use crate::compute::{self, hv_error, object};
use crate::context::Ctx;
use crate::errors::ApiResult;
use crate::protocol::Reply;
use crate::protocol::clock::iso8601;

/// The primitive's operation as CloudAPI's audit names it.
fn action_name(action: &str, parameters: &serde_json::Map<String, Value>) -> String {
    match action {
        "create" => "provision".into(),
        "delete" => "destroy".into(),
        "set-deletion-protection" => {
            if parameters.get("enabled") == Some(&json!(true)) {
                "enable_deletion_protection".into()
            } else {
                "disable_deletion_protection".into()
            }
        }
        "add-disk" => "create_disk".into(),
        "remove-disk" => "delete_disk".into(),
        "resize-disk" => "resize_disk".into(),
        "snapshot-create" => "create_snapshot".into(),
        "snapshot-rollback" => "rollback_snapshot".into(),
        "snapshot-delete" => "delete_snapshot".into(),
        other => other.replace('-', "_"),
    }
}

pub fn list(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let vm = compute::machine(ctx, p.get("machine").unwrap_or_default())?;
    let entries = hv::audit(&vm.id).map_err(hv_error)?;
    let out: Vec<Value> = entries
        .iter()
        .map(|entry| {
            let parameters = object(&entry.parameters);
            let caller: Value = serde_json::from_str::<Value>(&entry.caller)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({"type": "operator", "user": entry.caller}));
            json!({
                "action": action_name(&entry.action, &parameters),
                "parameters": parameters,
                "success": if entry.success { "yes" } else { "no" },
                "caller": caller,
                "time": iso8601(entry.time),
            })
        })
        .collect();
    Ok(Reply::ok(Value::Array(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_take_cloudapi_names() {
        let none = serde_json::Map::new();
        assert_eq!(action_name("create", &none), "provision");
        assert_eq!(action_name("reboot", &none), "reboot");
        assert_eq!(action_name("set-tags", &none), "set_tags");
        let on = object(r#"{"enabled":true}"#);
        assert_eq!(
            action_name("set-deletion-protection", &on),
            "enable_deletion_protection"
        );
    }
}
