//! The family's error type: `{"Status": "<code> <reason>", "Error-Message": "..."}`
//! with the message repeated in an `Error-Message` header, as upstream answers.

use serde_json::json;
use tessera_sdk::Response;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }

    /// Every authentication failure looks the same.
    pub fn forbidden() -> Self {
        Self::new(403, "Authentication error")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }

    pub fn into_response(self) -> Response {
        let body = json!({ "Status": status_line(self.status), "Error-Message": self.message });
        // A header value cannot hold line breaks.
        let header: String = self
            .message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Response::json(self.status, &body).with_header("error-message", &header)
    }
}

/// `200 OK`, `202 Accepted`, ...
pub fn status_line(status: u16) -> String {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        _ => "",
    };
    format!("{status} {reason}")
}

impl From<tessera_sdk::storage::Error> for ApiError {
    fn from(e: tessera_sdk::storage::Error) -> Self {
        tessera_sdk::error!("storage failed: {e}");
        ApiError::internal("Storage error")
    }
}

impl From<tessera_sdk::jobs::JobError> for ApiError {
    fn from(e: tessera_sdk::jobs::JobError) -> Self {
        tessera_sdk::error!("jobs failed: {e:?}");
        ApiError::internal("Job error")
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        tessera_sdk::error!("file access failed: {e}");
        ApiError::internal("File error")
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// `{"Status":"200 OK"}`.
pub fn ok() -> Response {
    Response::json(200, &json!({ "Status": status_line(200) }))
}

/// 202 with a `Location` header and the same in the body.
pub fn accepted(location: &str) -> Response {
    Response::json(
        202,
        &json!({ "Status": status_line(202), "Location": location }),
    )
    .with_header("location", location)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_status_message_and_header() {
        let r = ApiError::forbidden().into_response();
        assert_eq!(r.status, 403);
        assert_eq!(r.header("error-message"), Some("Authentication error"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            json!({"Status": "403 Forbidden", "Error-Message": "Authentication error"})
        );
        let a = accepted("/api/v1/admin/update");
        assert_eq!(a.header("location"), Some("/api/v1/admin/update"));
    }
}
