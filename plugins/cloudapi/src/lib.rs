//! Triton CloudAPI, mounted at `/`. This first version routes nothing yet:
//! every request gets CloudAPI's own error envelope (`{"code","message"}`).

use tessera_sdk::{Plugin, Request, Response};

struct CloudApi;

impl Plugin for CloudApi {
    fn handle(req: Request) -> Response {
        Response::json(
            501,
            &serde_json::json!({
                "code": "NotImplemented",
                "message": format!("{} {} is not implemented yet", req.method, req.path),
            }),
        )
        .with_header("server", "cloudapi/9.20.0 (tessera)")
    }
}

tessera_sdk::export_plugin!(CloudApi);
