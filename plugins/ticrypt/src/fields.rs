//! Reading JSON request bodies field by field, so every refusal names the
//! field at fault. Numbers may arrive as JSON numbers or numeric strings (the
//! spec's own curl examples send `"vcores": "1"`); `null` counts as absent.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tessera_sdk::Request;

use crate::errors::{ApiError, ApiResult};

/// A JSON object under validation; `path` prefixes field names in messages.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    map: Map<String, Value>,
    path: String,
}

impl Fields {
    /// The request body as an object; an empty body is an empty object.
    pub fn from_body(req: &Request) -> ApiResult<Fields> {
        if req.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields::default());
        }
        let value: Value = serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::new(400, "InvalidJson", format!("the body is not JSON: {e}")))?;
        Fields::from_value("body", value, "")
    }

    pub fn from_value(name: &str, value: Value, path: &str) -> ApiResult<Fields> {
        match value {
            Value::Object(map) => Ok(Fields {
                map,
                path: path.to_string(),
            }),
            _ => Err(ApiError::invalid(format!("{name} must be a JSON object"))),
        }
    }

    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.path)
    }

    /// Refuse fields outside `allowed`, so a misspelt field is not silently dropped.
    pub fn only(&self, allowed: &[&str]) -> ApiResult<()> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(key) => Err(ApiError::invalid(format!(
                "unknown field {}; expected one of {}",
                self.name(key),
                allowed.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// How many fields are given (`null` ones included).
    pub fn field_count(&self) -> usize {
        self.map.len()
    }

    pub fn has(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    pub fn raw(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn opt_str(&self, key: &str, max_chars: usize) -> ApiResult<Option<String>> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= max_chars => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(ApiError::invalid(format!(
                "{} is longer than {max_chars} characters",
                self.name(key)
            ))),
            Some(_) => Err(ApiError::invalid(format!(
                "{} must be a string",
                self.name(key)
            ))),
        }
    }

    /// A required string that is not blank.
    pub fn text(&self, key: &str, max_chars: usize) -> ApiResult<String> {
        match self.opt_str(key, max_chars)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(ApiError::invalid(format!(
                "{} must not be empty",
                self.name(key)
            ))),
            None => Err(ApiError::missing(&self.name(key))),
        }
    }

    /// An optional string that, when given, is one of `choices` (case-insensitive);
    /// returns the choice as spelt in `choices`.
    pub fn opt_choice(&self, key: &str, choices: &[&'static str]) -> ApiResult<Option<String>> {
        let Some(value) = self.opt_str(key, 64)? else {
            return Ok(None);
        };
        choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(&value))
            .map(|c| Some(c.to_string()))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "{} must be one of {}",
                    self.name(key),
                    choices.join(", ")
                ))
            })
    }

    pub fn opt_u64(&self, key: &str) -> ApiResult<Option<u64>> {
        self.raw(key)
            .map(|v| integer(v).ok_or_else(|| self.not_integer(key)))
            .transpose()
    }

    /// An optional integer within `min..=max`.
    pub fn opt_range(&self, key: &str, min: u64, max: u64) -> ApiResult<Option<u64>> {
        match self.opt_u64(key)? {
            Some(n) if n < min || n > max => Err(ApiError::invalid(format!(
                "{} must be between {min} and {max}",
                self.name(key)
            ))),
            other => Ok(other),
        }
    }

    fn not_integer(&self, key: &str) -> ApiError {
        ApiError::invalid(format!("{} must be a non-negative integer", self.name(key)))
    }

    pub fn opt_bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(_) => Err(ApiError::invalid(format!(
                "{} must be true or false",
                self.name(key)
            ))),
        }
    }

    /// A nested object, validated with a path like `params.libvirt.`.
    pub fn opt_object(&self, key: &str) -> ApiResult<Option<Fields>> {
        self.raw(key)
            .map(|v| {
                let name = self.name(key);
                Fields::from_value(&name, v.clone(), &format!("{name}."))
            })
            .transpose()
    }

    /// Any JSON object, kept as it is (frontend settings).
    pub fn opt_json_object(&self, key: &str) -> ApiResult<Option<Value>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
            Some(_) => Err(ApiError::invalid(format!(
                "{} must be a JSON object",
                self.name(key)
            ))),
        }
    }

    pub fn opt_str_list(&self, key: &str, max_items: usize) -> ApiResult<Option<Vec<String>>> {
        let Some(value) = self.raw(key) else {
            return Ok(None);
        };
        let bad = || {
            ApiError::invalid(format!(
                "{} must be a list of at most {max_items} strings",
                self.name(key)
            ))
        };
        let items = value.as_array().ok_or_else(bad)?;
        if items.len() > max_items {
            return Err(bad());
        }
        items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<ApiResult<Vec<_>>>()
            .map(Some)
    }

    /// A map of name to count (`devices`, `storage`).
    pub fn opt_counts(&self, key: &str) -> ApiResult<Option<BTreeMap<String, u64>>> {
        let Some(object) = self.opt_object(key)? else {
            return Ok(None);
        };
        object
            .map
            .iter()
            .map(|(name, v)| {
                if name.is_empty() || name.len() > 64 {
                    return Err(ApiError::invalid(format!(
                        "{}: keys must have 1 to 64 characters",
                        self.name(key)
                    )));
                }
                integer(v)
                    .map(|n| (name.clone(), n))
                    .ok_or_else(|| object.not_integer(name))
            })
            .collect::<ApiResult<_>>()
            .map(Some)
    }
}

/// A non-negative integer from a JSON number or a numeric string.
pub fn integer(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A parameter from the JSON body or, failing that, the query string (GET
/// requests carry the realm or team either way in the spec's examples).
pub fn body_or_query(req: &Request, body: &Fields, key: &str) -> ApiResult<Option<String>> {
    match body.opt_str(key, 256)? {
        Some(v) => Ok(Some(v)),
        None => Ok(req.query_param(key).filter(|v| !v.is_empty())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        Fields::from_value("body", v, "params.").unwrap()
    }

    #[test]
    fn integers_come_from_numbers_or_numeric_strings() {
        let f = fields(
            json!({"a": 5, "b": "5368709120", "c": -1, "d": 1.5, "e": "x", "f": null, "g": 2.0}),
        );
        assert_eq!(f.opt_u64("a").unwrap(), Some(5));
        assert_eq!(f.opt_u64("b").unwrap(), Some(5_368_709_120));
        assert_eq!(f.opt_u64("g").unwrap(), Some(2));
        assert_eq!(f.opt_u64("f").unwrap(), None);
        assert_eq!(f.opt_u64("missing").unwrap(), None);
        for bad in ["c", "d", "e"] {
            let e = f.opt_u64(bad).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(
                e.message.contains(&format!("params.{bad}")),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn ranges_choices_and_unknown_fields_are_refused_by_name() {
        let f = fields(json!({"vcores": 0, "video": "VNC", "bogus": 1}));
        assert!(
            f.opt_range("vcores", 1, 8)
                .unwrap_err()
                .message
                .contains("params.vcores")
        );
        assert_eq!(
            f.opt_choice("video", &["vnc", "spice"]).unwrap().as_deref(),
            Some("vnc")
        );
        assert!(f.opt_choice("video", &["spice"]).is_err());
        assert!(
            f.only(&["vcores", "video"])
                .unwrap_err()
                .message
                .contains("params.bogus")
        );
        assert_eq!(f.text("missing", 10).unwrap_err().code, "MissingParameter");
    }

    #[test]
    fn counts_and_lists_are_typed() {
        let f = fields(json!({"devices": {"gpu": 2}, "bad": {"gpu": "x"}, "list": ["a", 1]}));
        assert_eq!(f.opt_counts("devices").unwrap().unwrap()["gpu"], 2);
        assert!(
            f.opt_counts("bad")
                .unwrap_err()
                .message
                .contains("params.bad.gpu")
        );
        assert!(f.opt_str_list("list", 10).is_err());
    }
}
