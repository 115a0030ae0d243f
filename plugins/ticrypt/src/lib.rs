//! The tiCrypt token API, mounted at `/api`. This first version routes
//! nothing yet: every request gets the family's `{"error","code"}` envelope.

use tessera_sdk::{Plugin, Request, Response};

struct TiCrypt;

impl Plugin for TiCrypt {
    fn handle(req: Request) -> Response {
        Response::json(
            501,
            &serde_json::json!({
                "error": format!("{} {} is not implemented yet", req.method, req.path),
                "code": "NotImplemented",
            }),
        )
    }
}

tessera_sdk::export_plugin!(TiCrypt);
