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

    /// Credentials of an `Authorization: Basic` header: (user, password).
    /// `None` when absent or malformed.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        use base64::Engine;
        let encoded = strip_scheme(self.header("authorization")?, "basic")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_string(), password.to_string()))
    }

    /// The token of an `Authorization: Bearer` header.
    pub fn bearer_token(&self) -> Option<&str> {
        strip_scheme(self.header("authorization")?, "bearer").map(str::trim)
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

/// The credentials after an auth scheme name (case-insensitive).
fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = value.trim_start().split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then_some(rest)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/x".into(),
            mount: "/".into(),
            subpath: "/x".into(),
            query: "a=1&b=two%20words".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: br#"{"k": 1}"#.to_vec(),
            peer: "127.0.0.1:1".into(),
            request_id: "r".into(),
        }
    }

    #[test]
    fn basic_auth_is_decoded_and_malformed_values_are_none() {
        // "alice:s3cret:with:colons"
        let r = request(&[("authorization", "Basic YWxpY2U6czNjcmV0OndpdGg6Y29sb25z")]);
        assert_eq!(
            r.basic_auth(),
            Some(("alice".into(), "s3cret:with:colons".into()))
        );
        assert_eq!(
            request(&[("authorization", "Basic !!!")]).basic_auth(),
            None
        );
        assert_eq!(
            request(&[("authorization", "Bearer abc")]).basic_auth(),
            None
        );
        assert_eq!(request(&[]).basic_auth(), None);
        assert_eq!(
            request(&[("Authorization", "bearer abc ")]).bearer_token(),
            Some("abc")
        );
    }

    #[test]
    fn headers_cookies_query_and_body_are_read() {
        let r = request(&[
            ("Cookie", "a=1; TC_TOKEN=tok; b=\"q\""),
            ("content-type", "Application/JSON; charset=utf-8"),
            ("x-multi", "1"),
            ("X-Multi", "2"),
        ]);
        assert_eq!(r.cookie("TC_TOKEN").as_deref(), Some("tok"));
        assert_eq!(r.cookie("b").as_deref(), Some("q"));
        assert_eq!(r.cookie("missing"), None);
        assert_eq!(r.header_all("x-multi").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(r.content_type().as_deref(), Some("application/json"));
        assert_eq!(r.query_param("b").as_deref(), Some("two words"));
        let body: serde_json::Value = r.json().unwrap();
        assert_eq!(body["k"], 1);
    }

    #[test]
    fn responses_are_built_with_headers_and_cookies() {
        let r = Response::json(201, &serde_json::json!({"id": 1}))
            .with_header("X-Thing", "v")
            .with_cookie("ses6", "tok", "HttpOnly");
        assert_eq!(r.status, 201);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-thing"), Some("v"));
        assert_eq!(r.header("set-cookie"), Some("ses6=tok; HttpOnly"));
        assert_eq!(r.body, br#"{"id":1}"#);
    }
}
