//! Query filters: parses the JSON filter AST into a typed [`Filter`] under strict limits, and renders it as a parameterised SQLite fragment.
//!
//! Grammar (one operator per object):
//!
//! ```text
//! {"and": [F, ...]}  {"or": [F, ...]}  {"not": F}
//! {"eq": ["path", v]}  and likewise ne, gt, ge, lt, le
//! {"like": ["path", "pat%"]}  {"in": ["path", [v, ...]]}  {"exists": "path"}
//! ```
//!
//! Semantics, chosen to be SQL's own so that indexes apply and a future PostgreSQL
//! backend can agree:
//! - A path is dotted field names (`[A-Za-z_][A-Za-z0-9_]*`) and all-digit array
//!   indexes (`nics.0.mac`). `_key`, `_version`, `_created` and `_updated` alone name
//!   the document's own fields, so a document field of those names is unreachable.
//! - Comparisons follow SQL three-valued logic: a document lacking the field (or
//!   holding `null` there) matches no `eq`/`ne`/`gt`/... on it, and neither does
//!   `not` of one. So `ne` matches only documents that *have* the field with another
//!   value; add `{"not": {"exists": p}}` under an `or` to include the rest.
//!   `{"eq": [p, null]}` means "missing or null", `{"ne": [p, null]}` its negation.
//! - Values compare as SQLite values: strings as text, numbers numerically, `true`
//!   and `false` as 1 and 0 (which is what the stored booleans read as), and arrays
//!   and objects as minified JSON text (so members must be written in the same
//!   order). Mixed types never compare equal; every number sorts before every string.
//! - `like` is SQLite's LIKE: `%` and `_` are wildcards, `\` escapes them, and ASCII
//!   letters match regardless of case.
//! - `exists` is true when the field is present, even if it holds `null`.
//! - `{"and": []}` is true, `{"or": []}` and `{"in": [p, []]}` are false.

use std::fmt::{self, Write as _};

use rusqlite::types::Value;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{MAX_NAME_BYTES, StorageError, invalid};

/// Deepest nesting of filter operators.
pub const MAX_DEPTH: usize = 32;
/// Most filter operators in one filter.
pub const MAX_NODES: usize = 1000;
/// Most values in one `in` list.
pub const MAX_IN_VALUES: usize = 1000;
/// Most values in one filter; SQLite allows 32 766 bound parameters per statement.
pub const MAX_VALUES: usize = 10_000;
/// Longest filter text, in bytes.
pub const MAX_FILTER_BYTES: usize = 1 << 20;
/// Most segments in one path.
pub const MAX_PATH_SEGMENTS: usize = 16;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare(Field, CompareOp, Literal),
    Like(Field, String),
    In(Field, Vec<Literal>),
    Exists(Field),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A value a filter compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Integer(i64),
    Real(f64),
    Text(String),
    /// An array or object, as minified JSON text in the order written.
    Json(String),
}

/// What a path names: one of the document's own fields, or a place inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Key,
    Version,
    Created,
    Updated,
    Document(Vec<Segment>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Name(String),
    Index(u32),
}

/// SQL text with `?` placeholders, and the values they bind, in order.
#[derive(Debug, Default, PartialEq)]
pub struct SqlFragment {
    pub sql: String,
    pub params: Vec<Value>,
}

impl Filter {
    /// Parses a filter's JSON text; anything outside the grammar or the limits is `Invalid`.
    pub fn parse(text: &str) -> Result<Filter, StorageError> {
        if text.len() > MAX_FILTER_BYTES {
            return Err(invalid(format!(
                "a filter is at most {MAX_FILTER_BYTES} bytes"
            )));
        }
        let json: Json = serde_json::from_str(text)
            .map_err(|error| invalid(format!("filter is not valid JSON: {error}")))?;
        FilterParser::default().filter(json, 1)
    }

    /// Appends this filter as a boolean SQL expression over a document table's row.
    pub fn render(&self, out: &mut SqlFragment) {
        match self {
            Filter::And(items) => render_joined(items, " AND ", "1", out),
            Filter::Or(items) => render_joined(items, " OR ", "0", out),
            Filter::Not(inner) => {
                out.sql.push_str("NOT (");
                inner.render(out);
                out.sql.push(')');
            }
            Filter::Compare(field, op, literal) => render_compare(field, *op, literal, out),
            Filter::Like(field, pattern) => {
                let _ = write!(out.sql, "{} LIKE ? ESCAPE '\\'", field.sql());
                out.params.push(Value::Text(pattern.clone()));
            }
            Filter::In(field, values) => render_in(field, values, out),
            Filter::Exists(field) => out.sql.push_str(&field.exists_sql()),
        }
    }
}

/// Renders `items` joined by `op` as a balanced tree: SQLite limits expression
/// depth to 1000, and a flat chain of a thousand terms would parse that deep.
fn render_joined(items: &[Filter], op: &str, empty: &str, out: &mut SqlFragment) {
    match items {
        [] => out.sql.push_str(empty),
        [only] => only.render(out),
        _ => {
            let (left, right) = items.split_at(items.len() / 2);
            out.sql.push('(');
            render_joined(left, op, empty, out);
            out.sql.push_str(op);
            render_joined(right, op, empty, out);
            out.sql.push(')');
        }
    }
}

fn render_compare(field: &Field, op: CompareOp, literal: &Literal, out: &mut SqlFragment) {
    let column = field.sql();
    let Some((placeholder, value)) = literal.bind() else {
        // The parser lets null through only for eq and ne.
        let test = if op == CompareOp::Ne {
            "IS NOT NULL"
        } else {
            "IS NULL"
        };
        let _ = write!(out.sql, "{column} {test}");
        return;
    };
    let _ = write!(out.sql, "{column} {} {placeholder}", op.sql());
    out.params.push(value);
}

fn render_in(field: &Field, values: &[Literal], out: &mut SqlFragment) {
    let column = field.sql();
    let bound: Vec<_> = values.iter().filter_map(Literal::bind).collect();
    let has_null = bound.len() < values.len();
    let placeholders: Vec<&str> = bound.iter().map(|(placeholder, _)| *placeholder).collect();
    out.params.extend(bound.into_iter().map(|(_, value)| value));
    // `x IN (NULL)` is never true, so a listed null becomes its own IS NULL test.
    let sql = match (placeholders.is_empty(), has_null) {
        (true, false) => "0".to_owned(),
        (true, true) => format!("{column} IS NULL"),
        (false, false) => format!("{column} IN ({})", placeholders.join(", ")),
        (false, true) => format!(
            "({column} IN ({}) OR {column} IS NULL)",
            placeholders.join(", ")
        ),
    };
    out.sql.push_str(&sql);
}

impl CompareOp {
    fn from_name(name: &str) -> Option<CompareOp> {
        Some(match name {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "<>",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
        }
    }
}

impl Literal {
    /// The placeholder and bound value that stand for this literal; `None` for null,
    /// which SQL tests with IS NULL instead. Arrays and objects go through `json()`
    /// so they compare as the minified text that `json_extract` returns for them.
    fn bind(&self) -> Option<(&'static str, Value)> {
        Some(match self {
            Literal::Null => return None,
            Literal::Bool(flag) => ("?", Value::Integer(i64::from(*flag))),
            Literal::Integer(number) => ("?", Value::Integer(*number)),
            Literal::Real(number) => ("?", Value::Real(*number)),
            Literal::Text(text) => ("?", Value::Text(text.clone())),
            Literal::Json(text) => ("json(?)", Value::Text(text.clone())),
        })
    }
}

impl Field {
    /// Parses a dotted path; see the module documentation for the grammar.
    pub fn parse(path: &str) -> Result<Field, StorageError> {
        match path {
            "_key" => return Ok(Field::Key),
            "_version" => return Ok(Field::Version),
            "_created" => return Ok(Field::Created),
            "_updated" => return Ok(Field::Updated),
            _ => {}
        }
        if path.is_empty() || path.len() > MAX_NAME_BYTES {
            return Err(invalid(format!("a path is 1 to {MAX_NAME_BYTES} bytes")));
        }
        let segments: Vec<Segment> = path
            .split('.')
            .map(Segment::parse)
            .collect::<Option<_>>()
            .ok_or_else(|| {
                invalid(format!(
                    "bad path {path:?}: segments are names ([A-Za-z_][A-Za-z0-9_]*) \
                     or array indexes (digits), separated by dots"
                ))
            })?;
        if segments.len() > MAX_PATH_SEGMENTS {
            return Err(invalid(format!(
                "a path has at most {MAX_PATH_SEGMENTS} segments"
            )));
        }
        Ok(Field::Document(segments))
    }

    /// The SQL expression for this field. Indexes are built from the very same
    /// text: SQLite uses an expression index only for an identical expression.
    /// Only validated segments reach the quoted path, so it holds no quote.
    pub fn sql(&self) -> String {
        match self {
            Field::Key => "key".to_owned(),
            Field::Version => "version".to_owned(),
            Field::Created => "created".to_owned(),
            Field::Updated => "updated".to_owned(),
            Field::Document(segments) => format!("json_extract(value, '{}')", json_path(segments)),
        }
    }

    /// SQL that is true when the field is present. `json_type` rather than
    /// `json_extract`, which cannot tell a stored `null` from a missing field.
    fn exists_sql(&self) -> String {
        match self {
            Field::Document(segments) => {
                format!("json_type(value, '{}') IS NOT NULL", json_path(segments))
            }
            column => format!("{} IS NOT NULL", column.sql()),
        }
    }
}

/// The canonical dotted spelling (`a.b.0`), used to compare index declarations.
impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let segments = match self {
            Field::Key => return f.write_str("_key"),
            Field::Version => return f.write_str("_version"),
            Field::Created => return f.write_str("_created"),
            Field::Updated => return f.write_str("_updated"),
            Field::Document(segments) => segments,
        };
        for (i, segment) in segments.iter().enumerate() {
            let dot = if i == 0 { "" } else { "." };
            match segment {
                Segment::Name(name) => write!(f, "{dot}{name}")?,
                Segment::Index(index) => write!(f, "{dot}{index}")?,
            }
        }
        Ok(())
    }
}

impl Segment {
    fn parse(text: &str) -> Option<Segment> {
        let mut bytes = text.bytes();
        let first = bytes.next()?;
        if first.is_ascii_digit() {
            // Digits only; `parse` also bounds the index to u32.
            return text.parse().ok().map(Segment::Index);
        }
        let name_ok = (first.is_ascii_alphabetic() || first == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        name_ok.then(|| Segment::Name(text.to_owned()))
    }
}

/// A SQLite JSON path (`$.a.b[0]`) for validated segments.
fn json_path(segments: &[Segment]) -> String {
    let mut path = String::from("$");
    for segment in segments {
        let _ = match segment {
            Segment::Name(name) => write!(path, ".{name}"),
            Segment::Index(index) => write!(path, "[{index}]"),
        };
    }
    path
}

/// Turns parsed JSON into a [`Filter`], counting what it builds against the limits.
#[derive(Default)]
struct FilterParser {
    nodes: usize,
    values: usize,
}

impl FilterParser {
    fn filter(&mut self, json: Json, depth: usize) -> Result<Filter, StorageError> {
        if depth > MAX_DEPTH {
            return Err(invalid(format!(
                "filter nests deeper than {MAX_DEPTH} levels"
            )));
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(invalid(format!(
                "filter has more than {MAX_NODES} operators"
            )));
        }
        let (operator, operand) = json.into_operator()?;
        match operator.as_str() {
            "and" => Ok(Filter::And(self.children(&operator, operand, depth)?)),
            "or" => Ok(Filter::Or(self.children(&operator, operand, depth)?)),
            "not" => Ok(Filter::Not(Box::new(self.filter(operand, depth + 1)?))),
            "like" => self.like(operand),
            "in" => self.in_list(operand),
            "exists" => Ok(Filter::Exists(path_operand(&operator, operand)?)),
            name => match CompareOp::from_name(name) {
                Some(op) => self.compare(name, op, operand),
                None => Err(invalid(format!(
                    "unknown filter operator {:?}",
                    shorten(name)
                ))),
            },
        }
    }

    fn children(
        &mut self,
        operator: &str,
        operand: Json,
        depth: usize,
    ) -> Result<Vec<Filter>, StorageError> {
        let Json::Array(items) = operand else {
            return Err(invalid(format!("{operator:?} takes an array of filters")));
        };
        items
            .into_iter()
            .map(|item| self.filter(item, depth + 1))
            .collect()
    }

    fn compare(
        &mut self,
        name: &str,
        op: CompareOp,
        operand: Json,
    ) -> Result<Filter, StorageError> {
        let (field, value) = pair_operand(name, operand)?;
        let literal = self.literal(value)?;
        if matches!(literal, Literal::Null) && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
            return Err(invalid(format!("{name:?} cannot compare with null")));
        }
        Ok(Filter::Compare(field, op, literal))
    }

    fn like(&mut self, operand: Json) -> Result<Filter, StorageError> {
        match pair_operand("like", operand)? {
            (field, Json::Text(pattern)) => {
                self.count_values(1)?;
                Ok(Filter::Like(field, pattern))
            }
            _ => Err(invalid(
                r#""like" takes ["path", "pattern"] with a string pattern"#,
            )),
        }
    }

    fn in_list(&mut self, operand: Json) -> Result<Filter, StorageError> {
        let (field, Json::Array(items)) = pair_operand("in", operand)? else {
            return Err(invalid(r#""in" takes ["path", [value, ...]]"#));
        };
        if items.len() > MAX_IN_VALUES {
            return Err(invalid(format!(
                "an \"in\" list has at most {MAX_IN_VALUES} values"
            )));
        }
        let values = items
            .into_iter()
            .map(|item| self.literal(item))
            .collect::<Result<_, _>>()?;
        Ok(Filter::In(field, values))
    }

    fn literal(&mut self, json: Json) -> Result<Literal, StorageError> {
        self.count_values(1)?;
        Ok(match json {
            Json::Null => Literal::Null,
            Json::Bool(flag) => Literal::Bool(flag),
            Json::Integer(number) => Literal::Integer(number),
            Json::Real(number) => Literal::Real(number),
            Json::Text(text) => Literal::Text(text),
            composite => Literal::Json(composite.to_text()),
        })
    }

    fn count_values(&mut self, count: usize) -> Result<(), StorageError> {
        self.values += count;
        if self.values > MAX_VALUES {
            return Err(invalid(format!("filter has more than {MAX_VALUES} values")));
        }
        Ok(())
    }
}

/// `["path", value]`, the operand of a comparison, `like` and `in`.
fn pair_operand(operator: &str, operand: Json) -> Result<(Field, Json), StorageError> {
    let wrong = || invalid(format!("{operator:?} takes [\"path\", value]"));
    let Json::Array(items) = operand else {
        return Err(wrong());
    };
    let Ok([path, value]) = <[Json; 2]>::try_from(items) else {
        return Err(wrong());
    };
    Ok((path_operand(operator, path)?, value))
}

fn path_operand(operator: &str, operand: Json) -> Result<Field, StorageError> {
    match operand {
        Json::Text(path) => Field::parse(&path),
        _ => Err(invalid(format!("{operator:?} needs a path string"))),
    }
}

/// At most 64 characters of something a client sent, for an error message.
fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

/// JSON as parsed from a filter. Unlike `serde_json::Value`, objects keep their
/// members in the order written (that one sorts them), which comparing objects as
/// text needs, and duplicate operator keys stay visible so they can be refused.
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Integer(i64),
    Real(f64),
    Text(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The operator and operand of a filter object: exactly one member.
    fn into_operator(self) -> Result<(String, Json), StorageError> {
        if let Json::Object(members) = self
            && let Ok([member]) = <[(String, Json); 1]>::try_from(members)
        {
            return Ok(member);
        }
        Err(invalid(
            r#"a filter is an object with exactly one operator, like {"eq": ["path", value]}"#,
        ))
    }

    /// Minified JSON text.
    fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
            Json::Integer(number) => out.push_str(&number.to_string()),
            // serde_json writes floats so they read back the same (1.0 stays 1.0).
            Json::Real(number) => out.push_str(&serde_json::Value::from(*number).to_string()),
            Json::Text(text) => out.push_str(&serde_json::Value::from(text.as_str()).to_string()),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_text(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (name, item)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::from(name.as_str()).to_string());
                    out.push(':');
                    item.write_text(out);
                }
                out.push('}');
            }
        }
    }
}

// serde_json bounds nesting (128 levels) while it drives this visitor, so a
// hostile filter cannot recurse deeply here.
impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Json, E> {
        Ok(Json::Bool(flag))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Json, E> {
        Ok(Json::Integer(number))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Json, E> {
        // Beyond i64 SQLite itself stores the number as a float.
        Ok(i64::try_from(number).map_or(Json::Real(number as f64), Json::Integer))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Json, E> {
        Ok(Json::Real(number))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Json, E> {
        Ok(Json::Text(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Json, E> {
        Ok(Json::Text(text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<SqlFragment, StorageError> {
        let mut out = SqlFragment::default();
        Filter::parse(text)?.render(&mut out);
        Ok(out)
    }

    fn refused(text: &str) -> String {
        match compile(text) {
            Err(StorageError::Invalid(message)) => message,
            other => panic!("{text} was not refused as invalid: {other:?}"),
        }
    }

    fn text(value: &str) -> Value {
        Value::Text(value.to_owned())
    }

    #[test]
    fn eq_renders_json_extract_and_binds_the_value() -> Result<(), StorageError> {
        let out = compile(r#"{"eq": ["owner", "alice"]}"#)?;
        assert_eq!(out.sql, "json_extract(value, '$.owner') = ?");
        assert_eq!(out.params, vec![text("alice")]);
        Ok(())
    }

    #[test]
    fn digit_segments_are_array_indexes() -> Result<(), StorageError> {
        let out = compile(r#"{"eq": ["nics.0.mac", "aa"]}"#)?;
        assert_eq!(out.sql, "json_extract(value, '$.nics[0].mac') = ?");
        Ok(())
    }

    #[test]
    fn underscore_names_are_the_row_columns() -> Result<(), StorageError> {
        let out = compile(
            r#"{"and": [{"ge": ["_version", 2]}, {"lt": ["_created", 5]}, {"like": ["_key", "a%"]}]}"#,
        )?;
        assert_eq!(
            out.sql,
            "(version >= ? AND (created < ? AND key LIKE ? ESCAPE '\\'))"
        );
        Ok(())
    }

    #[test]
    fn values_are_typed_parameters() -> Result<(), StorageError> {
        let out = compile(r#"{"in": ["x", [1, 2.5, "s", true, false, [1, {"b": 1, "a": 2}]]]}"#)?;
        assert_eq!(
            out.sql,
            "json_extract(value, '$.x') IN (?, ?, ?, ?, ?, json(?))"
        );
        let expected = vec![
            Value::Integer(1),
            Value::Real(2.5),
            text("s"),
            Value::Integer(1),
            Value::Integer(0),
            text(r#"[1,{"b":1,"a":2}]"#),
        ];
        assert_eq!(out.params, expected);
        Ok(())
    }

    #[test]
    fn eq_and_ne_null_test_for_null() -> Result<(), StorageError> {
        assert_eq!(
            compile(r#"{"eq": ["a", null]}"#)?.sql,
            "json_extract(value, '$.a') IS NULL"
        );
        assert_eq!(
            compile(r#"{"ne": ["a", null]}"#)?.sql,
            "json_extract(value, '$.a') IS NOT NULL"
        );
        Ok(())
    }

    #[test]
    fn null_in_a_list_becomes_is_null() -> Result<(), StorageError> {
        let out = compile(r#"{"in": ["a", [1, null]]}"#)?;
        let expected = "(json_extract(value, '$.a') IN (?) OR json_extract(value, '$.a') IS NULL)";
        assert_eq!(out.sql, expected);
        Ok(())
    }

    #[test]
    fn ordering_against_null_is_refused() {
        assert!(refused(r#"{"gt": ["a", null]}"#).contains("null"));
    }

    #[test]
    fn empty_and_or_in_are_true_false_false() -> Result<(), StorageError> {
        assert_eq!(compile(r#"{"and": []}"#)?.sql, "1");
        assert_eq!(compile(r#"{"or": []}"#)?.sql, "0");
        assert_eq!(compile(r#"{"in": ["a", []]}"#)?.sql, "0");
        Ok(())
    }

    #[test]
    fn not_and_exists_render() -> Result<(), StorageError> {
        let out = compile(r#"{"not": {"exists": "a.b"}}"#)?;
        assert_eq!(out.sql, "NOT (json_type(value, '$.a.b') IS NOT NULL)");
        Ok(())
    }

    #[test]
    fn hostile_values_are_only_parameters() -> Result<(), StorageError> {
        let hostile = "x'); DROP TABLE doc_a; -- \" % _ \0 end";
        let filter = serde_json::json!({"eq": ["a", hostile]}).to_string();
        let out = compile(&filter)?;
        assert_eq!(out.sql, "json_extract(value, '$.a') = ?");
        assert_eq!(out.params, vec![text(hostile)]);
        Ok(())
    }

    #[test]
    fn hostile_paths_are_refused() {
        let paths = [
            "a'); DROP TABLE x;--",
            "a\"b",
            "$..",
            "$.a",
            "a..b",
            ".a",
            "a.",
            "",
            "a b",
            "a[0]",
            "a.-1",
            "é",
            "a.99999999999",
            "a\u{0}b",
        ];
        for path in paths {
            let filter = serde_json::json!({"exists": path}).to_string();
            refused(&filter);
        }
    }

    #[test]
    fn long_paths_are_refused() {
        let many = vec!["a"; MAX_PATH_SEGMENTS + 1].join(".");
        assert!(refused(&serde_json::json!({"exists": many}).to_string()).contains("segments"));
        let long = "a".repeat(MAX_NAME_BYTES + 1);
        assert!(refused(&serde_json::json!({"exists": long}).to_string()).contains("bytes"));
    }

    #[test]
    fn index_spellings_are_canonical() -> Result<(), StorageError> {
        let field = Field::parse("a.007.b")?;
        assert_eq!(field.to_string(), "a.7.b");
        assert_eq!(field.sql(), "json_extract(value, '$.a[7].b')");
        Ok(())
    }

    #[test]
    fn nesting_beyond_the_cap_is_refused() {
        let mut filter = r#"{"exists": "a"}"#.to_owned();
        for _ in 0..MAX_DEPTH {
            filter = format!(r#"{{"not": {filter}}}"#);
        }
        assert!(refused(&filter).contains("deeper"));
    }

    #[test]
    fn nesting_at_the_cap_is_accepted() {
        let mut filter = r#"{"exists": "a"}"#.to_owned();
        for _ in 1..MAX_DEPTH {
            filter = format!(r#"{{"not": {filter}}}"#);
        }
        assert!(compile(&filter).is_ok());
    }

    #[test]
    fn json_nesting_beyond_serde_limit_is_refused_not_overflowed() {
        let filter = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(refused(&filter).contains("JSON"));
    }

    #[test]
    fn too_many_operators_are_refused() {
        let leaves = vec![r#"{"exists": "a"}"#; MAX_NODES];
        let filter = format!(r#"{{"or": [{}]}}"#, leaves.join(","));
        assert!(refused(&filter).contains("operators"));
    }

    #[test]
    fn wide_or_renders_as_a_shallow_tree() -> Result<(), StorageError> {
        let leaves = vec![r#"{"eq": ["a", 1]}"#; MAX_NODES - 1];
        let out = compile(&format!(r#"{{"or": [{}]}}"#, leaves.join(",")))?;
        let mut depth: i32 = 0;
        let mut deepest = 0;
        for c in out.sql.chars() {
            depth += match c {
                '(' => 1,
                ')' => -1,
                _ => 0,
            };
            deepest = deepest.max(depth);
        }
        assert!(deepest < 20, "depth {deepest}");
        assert_eq!(out.params.len(), MAX_NODES - 1);
        Ok(())
    }

    #[test]
    fn huge_in_lists_are_refused() {
        let values = vec!["1"; MAX_IN_VALUES + 1].join(",");
        assert!(refused(&format!(r#"{{"in": ["a", [{values}]]}}"#)).contains("at most"));
    }

    #[test]
    fn too_many_values_in_all_are_refused() {
        let list = format!(
            r#"{{"in": ["a", [{}]]}}"#,
            vec!["1"; MAX_IN_VALUES].join(",")
        );
        let lists = [list.as_str(); MAX_VALUES / MAX_IN_VALUES + 1];
        assert!(refused(&format!(r#"{{"or": [{}]}}"#, lists.join(","))).contains("values"));
    }

    #[test]
    fn oversized_filter_text_is_refused() {
        let filter = format!(r#"{{"eq": ["a", "{}"]}}"#, "x".repeat(MAX_FILTER_BYTES));
        assert!(refused(&filter).contains("bytes"));
    }

    #[test]
    fn malformed_operators_are_refused_with_a_reason() {
        let cases = [
            (r#"{"drop": "a"}"#, "unknown filter operator"),
            (r#"{"eq": ["a"]}"#, "takes"),
            (r#"{"eq": ["a", 1, 2]}"#, "takes"),
            (r#"{"eq": "a"}"#, "takes"),
            (r#"{"eq": [1, 1]}"#, "path"),
            (r#"{"like": ["a", 1]}"#, "string pattern"),
            (r#"{"in": ["a", 1]}"#, "in"),
            (r#"{"and": {"exists": "a"}}"#, "array of filters"),
            (r#"{"exists": "a", "eq": ["a", 1]}"#, "exactly one operator"),
            (r#"{}"#, "exactly one operator"),
            (r#"[]"#, "exactly one operator"),
            (r#""eq""#, "exactly one operator"),
            (r#"{"eq": ["a", 1]"#, "JSON"),
        ];
        for (filter, reason) in cases {
            let message = refused(filter);
            assert!(message.contains(reason), "{filter}: {message}");
        }
    }

    #[test]
    fn long_unknown_operators_are_shortened_in_messages() {
        let name = "x".repeat(10_000);
        let message = refused(&format!(r#"{{"{name}": 1}}"#));
        assert!(message.len() < 200);
    }
}
