//! VMmanager 6, mounted at `/vm/v3`, `/auth/v4` and `/api/auth/v4`. This
//! first version routes nothing yet: every request gets VMmanager's
//! `{"error":{"code","msg","value"}}` envelope.

use tessera_sdk::{Plugin, Request, Response};

struct VmManager;

/// Error code for a function this server does not offer (yet).
const NOT_IMPLEMENTED: u32 = 1000;

impl Plugin for VmManager {
    fn handle(req: Request) -> Response {
        Response::json(
            501,
            &serde_json::json!({
                "error": {
                    "code": NOT_IMPLEMENTED,
                    "msg": "Not implemented",
                    "value": format!("{} {}", req.method, req.path),
                }
            }),
        )
    }
}

tessera_sdk::export_plugin!(VmManager);
