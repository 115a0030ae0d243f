//! The appliance admin API v1.24.0, mounted at `/api/v1/admin`. This first
//! version offers no endpoint yet: each answers as the spec's disabled
//! endpoints do, 404 with `{"Status","Error-Message"}` and the header.

use tessera_sdk::{Plugin, Request, Response};

struct ApplianceAdmin;

impl Plugin for ApplianceAdmin {
    fn handle(req: Request) -> Response {
        let message = format!("Endpoint {} is not implemented yet", req.subpath);
        Response::json(
            404,
            &serde_json::json!({ "Status": "404 Not Found", "Error-Message": message }),
        )
        .with_header("error-message", &message)
    }
}

tessera_sdk::export_plugin!(ApplianceAdmin);
