//! What every CloudAPI endpoint inherits: version negotiation, the request's inputs
//! (JSON, form or query), and the response headers CloudAPI puts on every answer.

pub mod clock;
pub mod inputs;
pub mod signature;
pub mod throttle;
pub mod version;

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::Value;
use tessera_sdk::{Request, Response};

use crate::errors::ApiError;

/// A handler's successful answer, before the protocol headers are added.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Reply {
            status: 200,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    pub fn created(body: Value, location: String) -> Self {
        Reply {
            status: 201,
            body: Some(body),
            headers: vec![("location".into(), location)],
        }
    }

    pub fn no_content() -> Self {
        Reply {
            status: 204,
            body: None,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Self {
        Reply {
            status: error.status,
            body: Some(error.body()),
            headers: error.headers,
        }
    }
}

/// The content type of a body of newline-separated JSON values (migration `watch`):
/// a reply with this `content-type` header and an array body sends one element a line.
pub const JSON_STREAM: &str = "application/x-json-stream";

/// The headers CORS clients may send, as CloudAPI lists them.
const ALLOW_HEADERS: &str = "Accept, Accept-Version, Content-Length, Content-MD5, Content-Type, Date, Api-Version, Response-Time";

/// The protocol facts `finish` needs about the request.
pub struct Finish<'a> {
    pub request: &'a Request,
    pub api_version: &'a str,
    pub datacenter: &'a str,
    /// The methods this path answers, for `Access-Control-Allow-Methods`.
    pub methods: &'a [&'static str],
    pub started_ms: u64,
}

/// The response with CloudAPI's headers: `Date`, `Api-Version`, `Server`, `Response-Time`,
/// `Content-MD5` of the body, `Access-Control-*`, `Triton-Datacenter-Name`. A `HEAD`
/// answer keeps the headers (with the body's length and digest) and drops the body.
pub fn finish(reply: Reply, facts: &Finish<'_>) -> Response {
    let stream = reply
        .headers
        .iter()
        .any(|(name, value)| name == "content-type" && value == JSON_STREAM);
    let body = match &reply.body {
        Some(Value::Array(items)) if stream => items
            .iter()
            .flat_map(|item| {
                let mut line = serde_json::to_vec(item).unwrap_or_default();
                line.push(b'\n');
                line
            })
            .collect(),
        Some(value) => serde_json::to_vec(value).unwrap_or_default(),
        None => Vec::new(),
    };
    let mut response = Response::new(reply.status);
    for (name, value) in &reply.headers {
        response = response.with_header(name, value);
    }
    if reply.body.is_some() {
        let digest = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
        if !stream {
            response = response.with_header("content-type", "application/json");
        }
        response = response.with_header("content-md5", &digest);
    }
    let now = clock::now_ms();
    response = response
        .with_header("date", &httpdate::fmt_http_date(clock::system_time(now)))
        .with_header("server", &format!("cloudapi/{}", version::SERVER_VERSION))
        .with_header("api-version", facts.api_version)
        .with_header(
            "response-time",
            &now.saturating_sub(facts.started_ms).to_string(),
        )
        .with_header("triton-datacenter-name", facts.datacenter)
        .with_header("access-control-allow-origin", "*")
        .with_header("access-control-allow-headers", ALLOW_HEADERS)
        .with_header("access-control-allow-methods", &facts.methods.join(", "))
        .with_header(
            "access-control-expose-headers",
            "Api-Version, Request-Id, Response-Time",
        );
    if facts.request.method == "HEAD" {
        return response.with_header("content-length", &body.len().to_string());
    }
    response.with_body(body)
}

/// The requested range from `Accept-Version`, else the legacy `Api-Version`, else any.
pub fn requested_version(request: &Request) -> &str {
    request
        .header("accept-version")
        .or_else(|| request.header("api-version"))
        .unwrap_or("*")
}

/// The negotiated API version, or 400 `InvalidVersion`.
pub fn negotiate(request: &Request) -> Result<&'static str, ApiError> {
    let range = requested_version(request);
    version::negotiate(range).map_err(|e| {
        ApiError::invalid_version(format!(
            "{range} is not supported by this server ({}); supported versions: {}",
            e.0,
            version::API_VERSIONS.join(", ")
        ))
    })
}

/// The client's IP without its port.
pub fn peer_ip(request: &Request) -> &str {
    let peer = request.peer.as_str();
    match peer.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            host.trim_start_matches('[').trim_end_matches(']')
        }
        _ => peer,
    }
}
