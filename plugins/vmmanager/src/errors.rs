//! VMmanager's error envelope `{"error":{"code","msg","value"}}` and the codes this plugin answers with.

use serde_json::{Value, json};
use tessera_sdk::Response;
use tessera_sdk::auth::AuthError;
use tessera_sdk::hypervisor::HvError;
use tessera_sdk::jobs::JobError;
use tessera_sdk::storage::{self, StorageError};

/// The product's own codes, then this plugin's (listed in its README).
pub mod code {
    pub const BAD_BODY: u32 = 2001;
    pub const BAD_FILTER: u32 = 2002;
    pub const INVALID_FIELD: u32 = 2003;
    pub const NOT_FOUND: u32 = 2004;
    pub const CONFLICT: u32 = 2005;
    pub const NO_CAPACITY: u32 = 2006;
    pub const METHOD_NOT_ALLOWED: u32 = 2007;
    pub const UNAVAILABLE: u32 = 2008;
    pub const THROTTLED: u32 = 2009;
    pub const INTERNAL: u32 = 2010;
    pub const UNAUTHORIZED: u32 = 3001;
    pub const INVALID_PASSWORD: u32 = 22013;
    pub const INVALID_KEY: u32 = 22014;
}

/// An answer other than success.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: u32,
    pub msg: String,
    pub value: Option<Value>,
    headers: Vec<(String, String)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: u16, code: u32, msg: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            msg: msg.into(),
            value: None,
            headers: Vec::new(),
        }
    }

    pub fn with_value(mut self, value: Value) -> Self {
        self.value = Some(value);
        self
    }

    pub fn with_header(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_owned(), value));
        self
    }

    /// No session, a dead one, or too few rights: the product answers them all alike.
    pub fn unauthorized() -> Self {
        ApiError::new(401, code::UNAUTHORIZED, "Unauthorized")
    }

    pub fn forbidden() -> Self {
        ApiError::new(403, code::UNAUTHORIZED, "Unauthorized")
    }

    pub fn not_found(resource: &str, id: &str) -> Self {
        ApiError::new(404, code::NOT_FOUND, format!("{resource} not found"))
            .with_value(json!({ "resource": resource, "id": id }))
    }

    pub fn bad_body(detail: impl Into<String>) -> Self {
        ApiError::new(400, code::BAD_BODY, "Invalid request body")
            .with_value(json!({ "detail": detail.into() }))
    }

    pub fn invalid_field(field: &str, detail: impl Into<String>) -> Self {
        ApiError::new(
            400,
            code::INVALID_FIELD,
            format!("Invalid value of '{field}'"),
        )
        .with_value(json!({ "field": field, "detail": detail.into() }))
    }

    pub fn bad_filter(param: &str, position: usize, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        ApiError::new(
            400,
            code::BAD_FILTER,
            format!("Invalid {param} at position {position}: {detail}"),
        )
        .with_value(json!({ "param": param, "position": position, "detail": detail }))
    }

    pub fn conflict(msg: impl Into<String>) -> Self {
        ApiError::new(409, code::CONFLICT, msg)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        ApiError::new(503, code::UNAVAILABLE, "Service temporarily unavailable")
            .with_value(json!({ "detail": detail.into() }))
            .with_header("retry-after", "1".into())
    }

    pub fn internal(what: &str) -> Self {
        ApiError::new(500, code::INTERNAL, format!("Internal error: {what}"))
    }

    pub fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "msg": self.msg });
        if let Some(value) = self.value {
            error["value"] = value;
        }
        let mut response = Response::json(self.status, &json!({ "error": error }));
        for (name, value) in &self.headers {
            response = response.with_header(name, value);
        }
        response
    }
}

impl From<storage::Error> for ApiError {
    fn from(error: storage::Error) -> Self {
        match error {
            storage::Error::Storage(StorageError::Invalid(detail)) => {
                ApiError::new(400, code::INVALID_FIELD, "Invalid request")
                    .with_value(json!({ "detail": detail }))
            }
            storage::Error::Storage(StorageError::Conflict(_))
            | storage::Error::Storage(StorageError::AlreadyExists)
            | storage::Error::Storage(StorageError::UniqueViolation(_)) => {
                ApiError::conflict("The object was changed or already exists")
            }
            storage::Error::Storage(StorageError::Backend(detail)) => {
                tessera_sdk::warn!("storage unavailable: {detail}");
                ApiError::unavailable("storage")
            }
            other => {
                tessera_sdk::error!("storage failed: {other}");
                ApiError::internal("storage")
            }
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        storage::Error::Storage(error).into()
    }
}

impl From<HvError> for ApiError {
    fn from(error: HvError) -> Self {
        match error {
            HvError::NotFound(what) => ApiError::new(404, code::NOT_FOUND, "Not found")
                .with_value(json!({ "detail": what })),
            HvError::IllegalTransition(state) => {
                ApiError::conflict("The action is not allowed in the host's current state")
                    .with_value(json!({ "state": crate::model::host_state_name(&state) }))
            }
            HvError::Capacity(detail) => {
                ApiError::new(409, code::NO_CAPACITY, "No node has room for the host")
                    .with_value(json!({ "detail": detail }))
            }
            HvError::Protected => ApiError::conflict("The host is protected from deletion"),
            HvError::Invalid(detail) => ApiError::new(400, code::INVALID_FIELD, "Invalid request")
                .with_value(json!({ "detail": detail })),
            HvError::Conflict(detail) => {
                ApiError::conflict("Conflict").with_value(json!({ "detail": detail }))
            }
            // Unsupported or a failing backend: the hypervisor is not ready; the spec's
            // clients retry on 503.
            HvError::Unsupported(u) => ApiError::unavailable(u.message),
            HvError::Backend(detail) => {
                tessera_sdk::warn!("hypervisor unavailable: {detail}");
                ApiError::unavailable("hypervisor")
            }
        }
    }
}

impl From<JobError> for ApiError {
    fn from(error: JobError) -> Self {
        match error {
            JobError::NotFound => ApiError::new(404, code::NOT_FOUND, "Task not found"),
            JobError::ExclusiveBusy(id) => {
                ApiError::conflict("Another task is running").with_value(json!({ "task": id }))
            }
            JobError::Invalid(detail) => ApiError::new(400, code::INVALID_FIELD, "Invalid request")
                .with_value(json!({ "detail": detail })),
            JobError::Unsupported(u) => ApiError::unavailable(u.message),
            JobError::Backend(detail) => {
                tessera_sdk::warn!("jobs unavailable: {detail}");
                ApiError::unavailable("jobs")
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidCredentials | AuthError::NotFound(_) | AuthError::Disabled => {
                ApiError::unauthorized()
            }
            AuthError::Forbidden => ApiError::forbidden(),
            AuthError::Throttled(seconds) => {
                ApiError::new(429, code::THROTTLED, "Too many failed attempts")
                    .with_value(json!({ "retry_after": seconds }))
                    .with_header("retry-after", seconds.to_string())
            }
            AuthError::Invalid(detail) => {
                ApiError::new(400, code::INVALID_FIELD, "Invalid request")
                    .with_value(json!({ "detail": detail }))
            }
            AuthError::Conflict(detail) => {
                ApiError::conflict("Already exists").with_value(json!({ "detail": detail }))
            }
            AuthError::Unsupported(u) => ApiError::unavailable(u.message),
            AuthError::Backend(detail) => {
                tessera_sdk::warn!("auth unavailable: {detail}");
                ApiError::unavailable("auth")
            }
        }
    }
}
