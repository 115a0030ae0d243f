//! A request's parameters, from the query string and the body — JSON, form-urlencoded or
//! empty — merged into one object as restify's parsers do, with typed accessors that
//! answer CloudAPI's own errors.

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{Map, Value};
use tessera_sdk::Request;

use crate::errors::{ApiError, ApiResult};

/// The merged parameters. Body fields win over query fields of the same name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs(Map<String, Value>);

impl Inputs {
    pub fn from_request(request: &Request) -> ApiResult<Inputs> {
        check_content_md5(request)?;
        let mut map = Map::new();
        for (name, value) in tessera_sdk::query::pairs(&request.query) {
            map.entry(name).or_insert(Value::String(value));
        }
        if request.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Inputs(map));
        }
        let body = match request.content_type().as_deref() {
            None
            | Some("application/json")
            | Some("text/plain")
            | Some("application/octet-stream") => {
                match serde_json::from_slice::<Value>(&request.body) {
                    Ok(Value::Object(object)) => object,
                    Ok(_) => return Err(ApiError::bad_request("the body must be a JSON object")),
                    Err(e) => return Err(ApiError::bad_request(format!("Invalid JSON: {e}"))),
                }
            }
            Some("application/x-www-form-urlencoded") => {
                let text = std::str::from_utf8(&request.body)
                    .map_err(|_| ApiError::bad_request("the form body is not UTF-8"))?;
                tessera_sdk::query::pairs(text)
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect()
            }
            Some(other) => {
                return Err(ApiError::unsupported_media_type(format!(
                    "{other} is not supported; send application/json or application/x-www-form-urlencoded"
                )));
            }
        };
        map.extend(body);
        if let Some(name) = map.iter().find_map(|(k, v)| holds_nul(v).then_some(k)) {
            return Err(ApiError::invalid_argument(format!(
                "{name} may not hold a NUL character"
            )));
        }
        Ok(Inputs(map))
    }

    #[cfg(test)]
    pub fn from_value(value: Value) -> Inputs {
        match value {
            Value::Object(map) => Inputs(map),
            _ => Inputs::default(),
        }
    }

    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// Every input whose name starts with `prefix` (`tag.`, `metadata.`), the prefix cut off.
    pub fn prefixed(&self, prefix: &str) -> Vec<(String, Value)> {
        self.0
            .iter()
            .filter_map(|(name, value)| {
                let key = name.strip_prefix(prefix)?;
                (!key.is_empty()).then(|| (key.to_string(), value.clone()))
            })
            .collect()
    }

    /// Every input, in name order.
    pub fn all(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The names of the parameters sent.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn has(&self, name: &str) -> bool {
        self.raw(name).is_some()
    }

    /// An optional string; numbers and booleans are read as their text.
    pub fn string(&self, name: &str) -> ApiResult<Option<String>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(ApiError::invalid_argument(format!(
                "{name} must be a string"
            ))),
        }
    }

    /// A required, non-empty string, else 409 `MissingParameter`.
    pub fn required(&self, name: &str) -> ApiResult<String> {
        match self.string(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(ApiError::missing_parameter(format!(
                "Request is missing required parameter: {name}"
            ))),
        }
    }

    /// A boolean from JSON or from `true`/`false` text.
    pub fn boolean(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid_argument(format!(
                "{name} must be a boolean"
            ))),
        }
    }

    /// A non-negative integer from JSON or text.
    pub fn integer(&self, name: &str) -> ApiResult<Option<u64>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(Value::String(s)) if s.parse::<u64>().is_ok() => Ok(s.parse().ok()),
            Some(_) => Err(ApiError::invalid_argument(format!(
                "{name} must be a non-negative integer"
            ))),
        }
    }

    /// A list: a JSON array, or text holding a JSON array or comma-separated items
    /// (what `sdc-*` tools send in forms).
    pub fn list(&self, name: &str) -> ApiResult<Option<Vec<Value>>> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items.clone())),
            Some(Value::String(text)) => {
                if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) {
                    return Ok(Some(items));
                }
                Ok(Some(
                    text.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_string()))
                        .collect(),
                ))
            }
            Some(_) => Err(ApiError::invalid_argument(format!(
                "{name} must be an array"
            ))),
        }
    }

    /// A list of strings.
    pub fn strings(&self, name: &str) -> ApiResult<Option<Vec<String>>> {
        let Some(items) = self.list(name)? else {
            return Ok(None);
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::invalid_argument(format!(
                    "{name} must be an array of strings"
                ))),
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Some)
    }
}

/// A body whose `Content-MD5` does not match is refused, as restify's body parser does.
/// Whether a value holds a NUL anywhere: no stored text may (clients get 409, not a
/// record a later reader chokes on).
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

fn check_content_md5(request: &Request) -> ApiResult<()> {
    let Some(sent) = request.header("content-md5") else {
        return Ok(());
    };
    let actual = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&request.body));
    if sent.trim() != actual {
        return Err(ApiError::bad_request("Content-MD5 does not match the body"));
    }
    Ok(())
}

/// `offset` and `limit` of a list endpoint (limit 1..=1000, default 1000).
pub fn paging(inputs: &Inputs) -> ApiResult<(u64, u64)> {
    let offset = inputs.integer("offset")?.unwrap_or(0);
    let limit = inputs.integer("limit")?.unwrap_or(1000);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid_argument(
            "limit must be between 1 and 1000",
        ));
    }
    Ok((offset, limit))
}

#[cfg(test)]
mod tests {
    #[test]
    fn nul_characters_are_found_in_keys_and_nested_values() {
        use serde_json::json;
        assert!(!super::holds_nul(&json!({"a": ["b", {"c": "d"}], "e": 1})));
        assert!(super::holds_nul(&json!("a\u{0}")));
        assert!(super::holds_nul(&json!({"a": [{"c": "\u{0}"}]})));
        assert!(super::holds_nul(&json!({"a\u{0}": 1})));
    }

    use super::*;

    fn request(content_type: Option<&str>, query: &str, body: &str) -> Request {
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("content-type".to_string(), ct.to_string()));
        }
        Request {
            method: "POST".into(),
            path: "/my/keys".into(),
            mount: "/".into(),
            subpath: "/my/keys".into(),
            query: query.into(),
            headers,
            body: body.as_bytes().to_vec(),
            peer: "127.0.0.1:1".into(),
            request_id: "r".into(),
        }
    }

    #[test]
    fn query_form_and_json_inputs_are_all_accepted() {
        let q = Inputs::from_request(&request(None, "name=rsa&key=ssh-rsa%20AAA", "")).unwrap();
        assert_eq!(q.required("key").unwrap(), "ssh-rsa AAA");
        let f = Inputs::from_request(&request(
            Some("application/x-www-form-urlencoded"),
            "",
            "name=rsa&key=ssh-rsa+AAA",
        ))
        .unwrap();
        assert_eq!(f.required("key").unwrap(), "ssh-rsa AAA");
        let j = Inputs::from_request(&request(
            Some("application/json; charset=utf-8"),
            "name=fromquery",
            r#"{"name":"rsa","key":"ssh-rsa AAA"}"#,
        ))
        .unwrap();
        assert_eq!(j.required("name").unwrap(), "rsa");
    }

    #[test]
    fn bad_bodies_get_cloudapi_errors() {
        let bad =
            Inputs::from_request(&request(Some("application/json"), "", "{nope")).unwrap_err();
        assert_eq!((bad.status, bad.code), (400, "BadRequest"));
        let array =
            Inputs::from_request(&request(Some("application/json"), "", "[1]")).unwrap_err();
        assert_eq!(array.code, "BadRequest");
        let xml = Inputs::from_request(&request(Some("application/xml"), "", "<a/>")).unwrap_err();
        assert_eq!(xml.status, 415);
        let mut digest = request(Some("application/json"), "", "{}");
        digest
            .headers
            .push(("content-md5".into(), "AAAAAAAAAAAAAAAAAAAAAA==".into()));
        assert_eq!(Inputs::from_request(&digest).unwrap_err().status, 400);
    }

    #[test]
    fn typed_accessors_read_text_forms() {
        let i = Inputs::from_value(serde_json::json!({
            "b": "true", "n": "12", "l": "a, b", "j": "[\"x\"]", "o": {"x": 1}
        }));
        assert_eq!(i.boolean("b").unwrap(), Some(true));
        assert_eq!(i.integer("n").unwrap(), Some(12));
        assert_eq!(i.strings("l").unwrap(), Some(vec!["a".into(), "b".into()]));
        assert_eq!(i.strings("j").unwrap(), Some(vec!["x".into()]));
        assert_eq!(i.string("o").unwrap_err().code, "InvalidArgument");
        assert_eq!(i.required("missing").unwrap_err().code, "MissingParameter");
        assert_eq!(
            paging(&Inputs::from_value(serde_json::json!({"limit": "0"})))
                .unwrap_err()
                .status,
            409
        );
    }
}
