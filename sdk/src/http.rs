//! Request accessors (headers, cookies, query, bodies) and the response builder.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Request, Response};

impl Request {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in arrival order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A cookie from the `Cookie` header(s), by exact name.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.header_all("cookie")
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.split_once('='))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
    }

    /// The first query parameter with this name, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        crate::query::get(&self.query, name)
    }

    /// The query string deserialized into `T`.
    pub fn query_as<T: DeserializeOwned>(&self) -> Result<T, crate::query::Error> {
        crate::query::parse_as(&self.query)
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body parsed as `application/x-www-form-urlencoded`.
    pub fn form<T: DeserializeOwned>(&self) -> Result<T, crate::query::Error> {
        serde_urlencoded::from_bytes(&self.body)
    }

    /// The media type of the body without parameters, lower-cased.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }
}

impl Response {
    /// An empty response with a status.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON response. Serializing plain data cannot fail; if it does the
    /// answer is a 500 rather than a panic.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response::new(status)
                .with_header("content-type", "application/json")
                .with_body(body),
            Err(_) => Response::text(500, "response serialization failed"),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, text: &str) -> Self {
        Response::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(text.as_bytes().to_vec())
    }

    /// Add a header (several with one name are allowed).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Replace the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Add a `Set-Cookie` header.
    pub fn with_cookie(self, name: &str, value: &str, attributes: &str) -> Self {
        let cookie = if attributes.is_empty() {
            format!("{name}={value}")
        } else {
            format!("{name}={value}; {attributes}")
        };
        self.with_header("set-cookie", &cookie)
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
