//! What each resource's list may filter and sort on, and the translation of a parsed filter into the storage primitive's filter AST.
//!
//! A field the client names maps to a dotted path in the stored projection
//! (`cluster.name` lives inside the host document), so filtering, ordering and
//! paging run in the storage primitive's SQL, on its indexes.

use serde_json::{Value, json};
use tessera_sdk::storage::Filter;

use crate::filter::{Comparison, Expr, Literal, Op};

/// How a field's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Bool,
}

/// One field a list can filter and sort on.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The name clients write (`cluster.name`); also the stored path.
    pub name: &'static str,
    pub kind: Kind,
}

pub const fn int(name: &'static str) -> Field {
    Field {
        name,
        kind: Kind::Int,
    }
}

pub const fn text(name: &'static str) -> Field {
    Field {
        name,
        kind: Kind::Text,
    }
}

pub const fn boolean(name: &'static str) -> Field {
    Field {
        name,
        kind: Kind::Bool,
    }
}

/// A field error: which field or value, where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub position: usize,
    pub message: String,
}

/// Looks a field up by the name a client wrote (ASCII case-insensitive).
pub fn find(fields: &'static [Field], name: &str) -> Option<&'static Field> {
    fields.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

fn unknown(fields: &[Field], name: &str, position: usize) -> FieldError {
    let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
    FieldError {
        position,
        message: format!(
            "unknown field '{}'; this list has {}",
            name.chars().take(64).collect::<String>(),
            known.join(", ")
        ),
    }
}

/// Checks every field of `expr` against `fields` and builds the storage filter.
pub fn compile(expr: &Expr, fields: &'static [Field]) -> Result<Filter, FieldError> {
    Ok(match expr {
        Expr::And(items) => Filter::and(compile_all(items, fields)?),
        Expr::Or(items) => Filter::or(compile_all(items, fields)?),
        Expr::Not(inner) => Filter::not(compile(inner, fields)?),
        Expr::Compare(comparison) => compare(comparison, fields)?,
    })
}

fn compile_all(items: &[Expr], fields: &'static [Field]) -> Result<Vec<Filter>, FieldError> {
    items.iter().map(|item| compile(item, fields)).collect()
}

fn compare(c: &Comparison, fields: &'static [Field]) -> Result<Filter, FieldError> {
    let field = find(fields, &c.field).ok_or_else(|| unknown(fields, &c.field, c.field_at))?;
    let path = field.name;
    if c.op == Op::Cp {
        return Ok(Filter::like(path, &mask(&c.value)));
    }
    let value = typed(field, &c.value).map_err(|message| FieldError {
        position: c.value_at,
        message,
    })?;
    if value.is_null() && !matches!(c.op, Op::Eq | Op::Ne) {
        return Err(FieldError {
            position: c.value_at,
            message: format!("{} cannot compare with null", c.op.name()),
        });
    }
    Ok(match c.op {
        Op::Eq => Filter::eq(path, value),
        Op::Ne => Filter::ne(path, value),
        Op::Gt => Filter::gt(path, value),
        Op::Ge => Filter::ge(path, value),
        Op::Lt => Filter::lt(path, value),
        Op::Le => Filter::le(path, value),
        Op::Cp => Filter::like(path, &mask(&c.value)),
    })
}

/// The LIKE pattern of a `CP` value: quoted text keeps its wildcards; a bare
/// number or word is matched as written, its `%` and `_` literal.
fn mask(value: &Literal) -> String {
    match value {
        Literal::Text { pattern, .. } => pattern.clone(),
        Literal::Number(text) | Literal::Word(text) => text.clone(),
    }
}

/// The value as the field's kind: quoted digits compare with a number field as a
/// number (`consul_id EQ '1341774670'`), a bare number with a text field as text.
fn typed(field: &Field, literal: &Literal) -> Result<Value, String> {
    let written = match literal {
        Literal::Word(word) if word.eq_ignore_ascii_case("null") => return Ok(Value::Null),
        Literal::Text { value, .. } => value.as_str(),
        Literal::Number(text) | Literal::Word(text) => text.as_str(),
    };
    match field.kind {
        Kind::Text => Ok(json!(written)),
        Kind::Int => {
            if let Ok(number) = written.trim().parse::<i64>() {
                return Ok(json!(number));
            }
            match written.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => Ok(json!(number)),
                _ => Err(format!(
                    "'{}' is a number field; '{}' is not a number",
                    field.name,
                    written.chars().take(64).collect::<String>()
                )),
            }
        }
        Kind::Bool => match written.to_ascii_lowercase().as_str() {
            "true" | "1" | "on" => Ok(json!(true)),
            "false" | "0" | "off" => Ok(json!(false)),
            _ => Err(format!(
                "'{}' is a true/false field; '{}' is neither",
                field.name,
                written.chars().take(64).collect::<String>()
            )),
        },
    }
}

/// Resolves `orderby` keys to stored paths.
pub fn order_paths(
    keys: &[crate::filter::OrderKey],
    fields: &'static [Field],
) -> Result<Vec<(&'static str, bool)>, FieldError> {
    keys.iter()
        .map(|key| {
            find(fields, &key.field)
                .map(|f| (f.name, key.descending))
                .ok_or_else(|| unknown(fields, &key.field, key.field_at))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse_where;

    const FIELDS: &[Field] = &[
        int("id"),
        text("name"),
        int("consul_id"),
        text("cluster.name"),
        boolean("ha"),
    ];

    fn compiled(text: &str) -> String {
        let expr = parse_where(text).expect("parses");
        compile(&expr, FIELDS).expect("compiles").to_json()
    }

    fn refused(text: &str) -> FieldError {
        let expr = parse_where(text).expect("parses");
        compile(&expr, FIELDS).expect_err("refused")
    }

    #[test]
    fn quoted_digits_compare_as_numbers_on_number_fields() {
        assert_eq!(
            compiled("consul_id EQ '1341774670'"),
            r#"{"eq":["consul_id",1341774670]}"#
        );
        assert_eq!(compiled("name EQ 42"), r#"{"eq":["name","42"]}"#);
    }

    #[test]
    fn operators_map_to_the_storage_ast() {
        assert_eq!(
            compiled("NOT (id GT 1 OR id LE 0) AND name NE 'x' AND name CP 'a%'"),
            r#"{"and":[{"not":{"or":[{"gt":["id",1]},{"le":["id",0]}]}},{"ne":["name","x"]},{"like":["name","a%"]}]}"#
        );
        assert_eq!(compiled("id GE 1.5"), r#"{"ge":["id",1.5]}"#);
        assert_eq!(compiled("id LT -2"), r#"{"lt":["id",-2]}"#);
        assert_eq!(compiled("ha EQ true"), r#"{"eq":["ha",true]}"#);
        assert_eq!(compiled("name EQ null"), r#"{"eq":["name",null]}"#);
    }

    #[test]
    fn field_names_ignore_case_and_reach_nested_paths() {
        assert_eq!(
            compiled("Cluster.Name EQ 'c'"),
            r#"{"eq":["cluster.name","c"]}"#
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_point_at_themselves() {
        let e = refused("id EQ 1 AND nope EQ 2");
        assert_eq!(e.position, 13);
        assert!(e.message.contains("unknown field 'nope'"), "{}", e.message);
        let e = refused("id EQ 'abc'");
        assert_eq!(e.position, 7);
        assert!(e.message.contains("not a number"));
        assert!(refused("ha EQ 'maybe'").message.contains("true/false"));
        assert!(refused("id GT null").message.contains("null"));
    }
}
