//! The FOSS-Cloud vm-manager API, mounted at `/vm-manager/api`. This first
//! version knows no action yet: every request gets the spec's general code
//! 404000 "Unknown action" in the `{"status","code","devDescription"}` envelope.

use tessera_sdk::{Plugin, Request, Response};

struct FossCloud;

impl Plugin for FossCloud {
    fn handle(req: Request) -> Response {
        Response::json(
            404,
            &serde_json::json!({
                "status": 404,
                "code": 404000,
                "devDescription": format!("Unknown action: {}", req.subpath),
            }),
        )
    }
}

tessera_sdk::export_plugin!(FossCloud);
