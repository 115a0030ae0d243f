//! The FOSS-Cloud envelope: `{"status", "code", ["devDescription",] ...data}`
//! for answers and errors alike, with the spec's six-digit codes.

use serde_json::{Map, Value, json};
use tessera_sdk::Response;
use tessera_sdk::auth::AuthError;
use tessera_sdk::hypervisor::HvError;
use tessera_sdk::storage;

/// The codes of the spec (and of the admin routes this plugin adds), by name.
/// The HTTP status is always the code's first three digits.
pub mod code {
    // General.
    pub const UNKNOWN_ACTION: u32 = 404_000;
    /// The body is over the site's limit (the kernel refused it unread).
    pub const BODY_TOO_LARGE: u32 = 413_000;
    pub const INTERNAL: u32 = 500_000;
    pub const API_DISABLED: u32 = 500_022;
    pub const NO_DEFAULT_REALM: u32 = 500_023;
    // Login (1-10): may answer any request that needs a login.
    pub const LOGIN_OK: u32 = 200_001;
    pub const NO_BASIC_AUTH: u32 = 400_002;
    pub const BAD_CREDENTIALS: u32 = 401_003;
    pub const UNKNOWN_REALM: u32 = 401_004;
    pub const EMPTY_CREDENTIALS: u32 = 400_005;
    // Realms (11-20).
    pub const REALMS_OK: u32 = 200_011;
    // VM list (31-40).
    pub const LIST_OK: u32 = 200_031;
    pub const UNKNOWN_LIST_TYPE: u32 = 400_032;
    pub const LIST_ALL_FORBIDDEN: u32 = 403_033;
    // Assign (41-50).
    pub const ASSIGN_OK: u32 = 200_041;
    pub const NO_SUCH_POOL: u32 = 400_042;
    pub const POOL_EXHAUSTED: u32 = 500_043;
    // FC4School mapping list (51-60).
    pub const MAPPING_LIST_OK: u32 = 200_051;
    pub const MAPPING_LIST_NO_MODULE: u32 = 500_052;
    pub const MAPPING_LIST_NOT_DYNVMUSER: u32 = 400_053;
    pub const MAPPING_LIST_NO_VM: u32 = 400_054;
    pub const MAPPING_LIST_UNKNOWN_MAC: u32 = 400_055;
    pub const MAPPING_LIST_MAC_PARAM_OFF: u32 = 403_056;
    // FC4School mapping assign (61-70).
    pub const MAPPING_ASSIGN_OK: u32 = 200_061;
    pub const MAPPING_ASSIGN_NO_MODULE: u32 = 500_062;
    pub const MAPPING_ASSIGN_NOT_DYNVMUSER: u32 = 400_063;
    pub const MAPPING_ASSIGN_NO_VM: u32 = 400_064;
    pub const MAPPING_ASSIGN_BAD_POOL: u32 = 400_065;
    pub const MAPPING_ASSIGN_ALREADY: u32 = 400_067;
    pub const MAPPING_ASSIGN_MAC_PARAM_OFF: u32 = 400_068;
    // Admin routes (101-120), this plugin's own range.
    pub const ADMIN_OK: u32 = 200_101;
    pub const ADMIN_CREATED: u32 = 201_102;
    pub const ADMIN_BAD_REQUEST: u32 = 400_103;
    pub const ADMIN_FORBIDDEN: u32 = 403_104;
    pub const ADMIN_NOT_FOUND: u32 = 404_105;
    pub const ADMIN_CONFLICT: u32 = 409_106;
    pub const ADMIN_HYPERVISOR: u32 = 500_107;
}

/// The HTTP status of a six-digit code.
pub fn status_of(code: u32) -> u16 {
    (code / 1000) as u16
}

/// A successful answer: a code and the data keys merged into the envelope.
pub struct Reply {
    code: u32,
    data: Map<String, Value>,
}

impl Reply {
    pub fn new(code: u32) -> Self {
        Reply {
            code,
            data: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.data.insert(key.to_string(), value);
        self
    }

    pub fn into_response(self) -> Response {
        envelope(self.code, None, self.data, Vec::new())
    }
}

/// A refusal: a code, the developer description, and any extra headers.
#[derive(Debug)]
pub struct ApiError {
    pub code: u32,
    pub dev: String,
    headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(code: u32, dev: impl Into<String>) -> Self {
        ApiError {
            code,
            dev: dev.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_string(), value));
        self
    }

    /// A 500000 whose details go to the log, not the client.
    pub fn internal(what: &str, detail: impl std::fmt::Debug) -> Self {
        tessera_sdk::error!("{what}: {detail:?}");
        ApiError::new(code::INTERNAL, format!("{what}; see the server log"))
    }

    pub fn into_response(self) -> Response {
        envelope(self.code, Some(self.dev), Map::new(), self.headers)
    }
}

fn envelope(
    code: u32,
    dev: Option<String>,
    data: Map<String, Value>,
    headers: Vec<(String, String)>,
) -> Response {
    let status = status_of(code);
    let mut body = Map::new();
    body.insert("status".into(), json!(status));
    body.insert("code".into(), json!(code));
    if let Some(dev) = dev {
        body.insert("devDescription".into(), json!(dev));
    }
    body.extend(data);
    let mut response = Response::json(status, &Value::Object(body));
    for (name, value) in &headers {
        response = response.with_header(name, value);
    }
    response
}

impl From<storage::Error> for ApiError {
    fn from(e: storage::Error) -> Self {
        ApiError::internal("storage failed", e)
    }
}

impl From<HvError> for ApiError {
    fn from(e: HvError) -> Self {
        ApiError::internal("hypervisor failed", e)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::internal("identity store failed", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_the_codes_first_three_digits() {
        assert_eq!(status_of(code::LOGIN_OK), 200);
        assert_eq!(status_of(code::NO_BASIC_AUTH), 400);
        assert_eq!(status_of(code::LIST_ALL_FORBIDDEN), 403);
        assert_eq!(status_of(code::UNKNOWN_ACTION), 404);
        assert_eq!(status_of(code::NO_DEFAULT_REALM), 500);
        assert_eq!(status_of(code::ADMIN_CREATED), 201);
    }
}
