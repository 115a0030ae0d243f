//! The family's error type: every failure renders `{"error": message, "code": Code}`
//! with the status that goes with it.

use serde_json::json;
use tessera_sdk::Response;
use tessera_sdk::auth::AuthError;
use tessera_sdk::hypervisor::HvError;
use tessera_sdk::storage::{self, StorageError};

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    headers: Vec<(&'static str, String)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 400 for a body or parameter that fails validation; the message names the field.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(400, "InvalidParameter", message)
    }

    /// 400 for a required field that is absent.
    pub fn missing(field: &str) -> Self {
        ApiError::new(400, "MissingParameter", format!("{field} is required"))
    }

    /// 404 for a named resource that does not exist.
    pub fn not_found(code: &'static str, what: &str, id: &str) -> Self {
        ApiError::new(404, code, format!("no {what} with id {id:?}"))
    }

    pub fn internal(what: &str) -> Self {
        ApiError::new(
            500,
            "InternalError",
            format!("{what} failed; see the server log"),
        )
    }

    pub fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "code": self.code });
        self.headers
            .iter()
            .fold(Response::json(self.status, &body), |r, (name, value)| {
                r.with_header(name, value)
            })
    }
}

impl From<storage::Error> for ApiError {
    fn from(e: storage::Error) -> Self {
        match e {
            storage::Error::Storage(StorageError::Conflict(_)) => ApiError::new(
                409,
                "Conflict",
                "the resource changed while this request ran; retry it",
            ),
            storage::Error::Storage(StorageError::AlreadyExists) => {
                ApiError::new(409, "AlreadyExists", "a resource with that id exists")
            }
            other => {
                tessera_sdk::error!("storage failed: {other}");
                ApiError::internal("storage")
            }
        }
    }
}

impl From<HvError> for ApiError {
    fn from(e: HvError) -> Self {
        match e {
            HvError::NotFound(m) => ApiError::new(404, "NotFound", m),
            HvError::IllegalTransition(state) => ApiError::new(
                409,
                "IllegalState",
                format!("not allowed while the vm is {state}"),
            ),
            HvError::Capacity(m) => ApiError::new(503, "NoCapacity", m),
            HvError::Protected => ApiError::new(409, "Protected", "the vm is protected"),
            HvError::Invalid(m) => ApiError::invalid(m),
            HvError::Conflict(m) => ApiError::new(409, "Conflict", m),
            other => {
                tessera_sdk::error!("hypervisor failed: {other:?}");
                ApiError::internal("the hypervisor")
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials => {
                ApiError::new(401, "InvalidToken", "invalid or expired credentials")
            }
            AuthError::NotFound(m) => ApiError::new(404, "UserNotFound", m),
            AuthError::Disabled => ApiError::new(403, "AccountDisabled", "the account is disabled"),
            AuthError::Throttled(secs) => {
                ApiError::new(429, "Throttled", "too many failed attempts")
                    .with_header("retry-after", secs.to_string())
            }
            AuthError::Invalid(m) => ApiError::invalid(m),
            AuthError::Conflict(m) => ApiError::new(409, "Conflict", m),
            AuthError::Forbidden => ApiError::new(403, "Forbidden", "not allowed on this site"),
            other => {
                tessera_sdk::error!("auth failed: {other:?}");
                ApiError::internal("authentication")
            }
        }
    }
}
