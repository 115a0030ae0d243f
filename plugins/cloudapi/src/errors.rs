//! CloudAPI's error envelope, `{"code","message"}`, with the HTTP status the spec's table gives each code.

use tessera_sdk::auth::AuthError;
use tessera_sdk::storage;

/// One failed request: the status, the spec's code, a message for people, and extra headers
/// (a 302's `Location`, a 405's `Allow`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }
    pub fn in_use(message: impl Into<String>) -> Self {
        Self::new(409, "InUseError", message)
    }
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(409, "InvalidArgument", message)
    }
    pub fn invalid_credentials(message: impl Into<String>) -> Self {
        Self::new(401, "InvalidCredentials", message)
    }
    pub fn invalid_header(message: impl Into<String>) -> Self {
        Self::new(401, "InvalidHeader", message)
    }
    pub fn invalid_version(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidVersion", message)
    }
    pub fn missing_parameter(message: impl Into<String>) -> Self {
        Self::new(409, "MissingParameter", message)
    }
    /// A missing authentication input (a `Date` header): 401, not the 409 of a missing body field.
    pub fn missing_auth_parameter(message: impl Into<String>) -> Self {
        Self::new(401, "MissingParameter", message)
    }
    pub fn not_authorized(message: impl Into<String>) -> Self {
        Self::new(403, "NotAuthorized", message)
    }
    pub fn throttled(retry_after_secs: u64) -> Self {
        Self::new(
            429,
            "RequestThrottled",
            "You have exceeded your request rate",
        )
        .with_header("retry-after", retry_after_secs.max(1).to_string())
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "ResourceNotFound", message)
    }
    pub fn method_not_allowed(method: &str, allowed: &[&str]) -> Self {
        Self::new(405, "BadMethod", format!("{method} is not allowed"))
            .with_header("allow", allowed.join(", "))
    }
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"code": self.code, "message": self.message})
    }
}

/// Storage failures are the kernel's problem, never the client's: 500 with no details.
impl From<storage::Error> for ApiError {
    fn from(error: storage::Error) -> Self {
        tessera_sdk::error!("storage: {error}");
        ApiError::internal("storage failed")
    }
}

impl From<storage::BatchError> for ApiError {
    fn from(error: storage::BatchError) -> Self {
        match error.error {
            storage::StorageError::UniqueViolation(_) | storage::StorageError::AlreadyExists => {
                ApiError::invalid_argument("the name is already in use")
            }
            storage::StorageError::Conflict(_) => {
                ApiError::in_use("the object was changed by another request; try again")
            }
            other => ApiError::from(storage::Error::Storage(other)),
        }
    }
}

/// The identity store's answers for account, user and key management.
impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::NotFound(what) => ApiError::not_found(format!("{what} does not exist")),
            AuthError::InvalidCredentials => ApiError::invalid_credentials("invalid credentials"),
            AuthError::Disabled => ApiError::not_authorized("Account or user is disabled"),
            AuthError::Throttled(secs) => ApiError::throttled(u64::from(secs)),
            AuthError::Forbidden => ApiError::internal("this mount lacks the auth-admin grant"),
            AuthError::Invalid(why) => ApiError::invalid_argument(why),
            AuthError::Conflict(what) => {
                ApiError::invalid_argument(format!("{what} already exists"))
            }
            AuthError::Unsupported(u) => ApiError::internal(u.message),
            AuthError::Backend(why) => {
                tessera_sdk::error!("auth backend: {why}");
                ApiError::internal("identity store failed")
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
