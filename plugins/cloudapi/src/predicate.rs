//! Triton's JSON predicate language (what `triton volume list` sends as `?predicate=`):
//! `{"eq": [field, value]}`, `ne`, `lt`, `le`, `gt`, `ge`, and `{"and": [p, ...]}`,
//! `{"or": [p, ...]}`, compiled to the storage filter AST. An `eq`/`ne` value with `*`
//! matches as a wildcard, like the LDAP filter the real service builds.

use std::collections::BTreeSet;

use serde_json::Value;
use tessera_sdk::storage::Filter;

/// A predicate that cannot be used: the message says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredicateError(pub String);

/// A field a predicate may name: its wire name, the storage path, and whether its values
/// are numbers.
pub struct Field {
    pub name: &'static str,
    pub path: &'static str,
    pub numeric: bool,
}

/// A compiled predicate and the fields it names.
pub struct Compiled {
    pub filter: Filter,
    pub fields: BTreeSet<String>,
}

const MAX_DEPTH: usize = 16;

/// Compile a predicate given as JSON text.
pub fn compile(text: &str, fields: &[Field]) -> Result<Compiled, PredicateError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| PredicateError(format!("predicate is not valid JSON: {e}")))?;
    let mut named = BTreeSet::new();
    let filter = node(&value, fields, &mut named, 0)?;
    Ok(Compiled {
        filter,
        fields: named,
    })
}

fn node(
    value: &Value,
    fields: &[Field],
    named: &mut BTreeSet<String>,
    depth: usize,
) -> Result<Filter, PredicateError> {
    if depth > MAX_DEPTH {
        return Err(PredicateError("predicate is nested too deeply".into()));
    }
    let Value::Object(object) = value else {
        return Err(PredicateError("a predicate must be an object".into()));
    };
    if object.len() != 1 {
        return Err(PredicateError(
            "a predicate object has exactly one operator".into(),
        ));
    }
    let (op, args) = object.iter().next().expect("one entry");
    match op.as_str() {
        "and" | "or" => {
            let Value::Array(parts) = args else {
                return Err(PredicateError(format!("{op} takes an array of predicates")));
            };
            if parts.is_empty() {
                return Err(PredicateError(format!("{op} takes at least one predicate")));
            }
            let compiled = parts
                .iter()
                .map(|p| node(p, fields, named, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if op == "and" {
                Filter::and(compiled)
            } else {
                Filter::or(compiled)
            })
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            let pair: Option<&[Value; 2]> = args
                .as_array()
                .map(Vec::as_slice)
                .and_then(|a| a.try_into().ok());
            let Some([Value::String(name), operand]) = pair else {
                return Err(PredicateError(format!(
                    "{op} takes [field, value], a field name and a value"
                )));
            };
            let field = fields.iter().find(|f| f.name == name).ok_or_else(|| {
                let allowed: Vec<&str> = fields.iter().map(|f| f.name).collect();
                PredicateError(format!(
                    "{name} cannot be searched; searchable fields: {}",
                    allowed.join(", ")
                ))
            })?;
            named.insert(name.clone());
            comparison(op, field, operand)
        }
        other => Err(PredicateError(format!(
            "unknown predicate operator {other:?}: use eq, ne, lt, le, gt, ge, and, or"
        ))),
    }
}

fn comparison(op: &str, field: &Field, operand: &Value) -> Result<Filter, PredicateError> {
    let value = if field.numeric {
        match operand {
            Value::Number(n) if n.is_u64() || n.is_i64() || n.is_f64() => operand.clone(),
            Value::String(s) => s.parse::<u64>().map(Value::from).map_err(|_| {
                PredicateError(format!("{} must be compared with a number", field.name))
            })?,
            _ => {
                return Err(PredicateError(format!(
                    "{} must be compared with a number",
                    field.name
                )));
            }
        }
    } else {
        match operand {
            Value::String(_) | Value::Bool(_) | Value::Number(_) => operand.clone(),
            _ => {
                return Err(PredicateError(format!(
                    "{} must be compared with a string",
                    field.name
                )));
            }
        }
    };
    let path = field.path;
    if let Value::String(text) = &value
        && text.contains('*')
        && matches!(op, "eq" | "ne")
    {
        let like = Filter::like(path, &wildcard_to_like(text));
        return Ok(if op == "eq" { like } else { Filter::not(like) });
    }
    Ok(match op {
        "eq" => Filter::eq(path, value),
        "ne" => Filter::ne(path, value),
        "lt" => Filter::lt(path, value),
        "le" => Filter::le(path, value),
        "gt" => Filter::gt(path, value),
        _ => Filter::ge(path, value),
    })
}

/// `*` → `%`, with SQL `LIKE`'s own wildcards escaped.
pub fn wildcard_to_like(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::fuzzing::PREDICATE_FIELDS as FIELDS;

    fn filter(text: &str) -> Value {
        serde_json::from_str(&compile(text, &FIELDS).unwrap().filter.to_json()).unwrap()
    }

    #[test]
    fn what_triton_sends() {
        assert_eq!(
            filter(r#"{"ne":["state","failed"]}"#),
            json!({"ne": ["state", "failed"]})
        );
    }

    #[test]
    fn nested_and_or_and_every_comparison() {
        let text = r#"{"and":[{"or":[{"eq":["state","ready"]},{"eq":["state","creating"]}]},
            {"ge":["size",10240]},{"lt":["size","20480"]},{"le":["size",1]},{"gt":["size",0]}]}"#;
        assert_eq!(
            filter(text),
            json!({"and": [
                {"or": [{"eq": ["state", "ready"]}, {"eq": ["state", "creating"]}]},
                {"ge": ["size", 10240]}, {"lt": ["size", 20480]},
                {"le": ["size", 1]}, {"gt": ["size", 0]},
            ]})
        );
        let compiled = compile(text, &FIELDS).unwrap();
        assert_eq!(
            compiled.fields.into_iter().collect::<Vec<_>>(),
            vec!["size", "state"]
        );
    }

    #[test]
    fn wildcards_become_like() {
        assert_eq!(
            filter(r#"{"eq":["name","my_vol*"]}"#),
            json!({"like": ["name", "my\\_vol%"]})
        );
        assert_eq!(
            filter(r#"{"ne":["name","*x"]}"#),
            json!({"not": {"like": ["name", "%x"]}})
        );
    }

    #[test]
    fn bad_predicates_are_refused() {
        for bad in [
            "",
            "[]",
            r#"{"eq":["state"]}"#,
            r#"{"eq":["owner","x"]}"#,
            r#"{"xor":[]}"#,
            r#"{"and":[]}"#,
            r#"{"and":{}}"#,
            r#"{"eq":["size","big"]}"#,
            r#"{"eq":["state",{"a":1}]}"#,
            r#"{"eq":["state","a"],"ne":["state","b"]}"#,
        ] {
            assert!(compile(bad, &FIELDS).is_err(), "{bad}");
        }
        let deep = (0..40).fold(r#"{"eq":["state","a"]}"#.to_string(), |acc, _| {
            format!(r#"{{"and":[{acc}]}}"#)
        });
        assert!(compile(&deep, &FIELDS).is_err());
    }
}
