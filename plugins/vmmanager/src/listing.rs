//! Lists in the product's shape `{"last_notify", "list", "size"}`: the query string's `where`, `orderby` and `limit` become one storage query.

use serde_json::{Value, json};
use tessera_sdk::storage::{Collection, Filter};

use crate::errors::{ApiError, ApiResult};
use crate::filter::{self, SyntaxError};
use crate::meta;
use crate::model;
use crate::schema::{self, Field, FieldError};

/// Most objects one list answers without an explicit `limit`.
pub const DEFAULT_PAGE: u64 = 10_000;

/// A list request, checked against the resource's fields.
#[derive(Debug)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub order: Vec<(&'static str, bool)>,
    pub offset: u64,
    pub count: u64,
}

impl ListQuery {
    /// Reads `where` (several are ANDed), `orderby` and `limit` from the raw query string.
    pub fn parse(query: &str, fields: &'static [Field]) -> ApiResult<ListQuery> {
        let mut filters = Vec::new();
        let mut order = Vec::new();
        let mut limit = None;
        for (name, value) in tessera_sdk::query::pairs(query) {
            match name.as_str() {
                "where" => {
                    let expr = filter::parse_where(&value).map_err(|e| syntax("where", e))?;
                    filters.push(schema::compile(&expr, fields).map_err(|e| field("where", e))?);
                }
                "orderby" => {
                    let keys = filter::parse_orderby(&value).map_err(|e| syntax("orderby", e))?;
                    order = schema::order_paths(&keys, fields).map_err(|e| field("orderby", e))?;
                }
                "limit" => {
                    limit = Some(filter::parse_limit(&value).map_err(|e| syntax("limit", e))?)
                }
                _ => {}
            }
        }
        // Ids are the zero-padded keys: sorting on the key is sorting on id, on the
        // primary key. The storage primitive breaks every tie by key too.
        for (path, _) in order.iter_mut() {
            if *path == "id" {
                *path = "_key";
            }
        }
        if order.is_empty() {
            order.push(("_key", false));
        }
        let filter = match filters.len() {
            0 => None,
            1 => filters.pop(),
            _ => Some(Filter::and(filters)),
        };
        let (offset, count) = limit.map_or((0, DEFAULT_PAGE), |l| (l.offset, l.count));
        Ok(ListQuery {
            filter,
            order,
            offset,
            count,
        })
    }

    /// Runs on `collection`, narrowed by `scope` (the caller's own objects), and
    /// answers the product's list shape.
    pub fn run(self, collection: Collection, scope: Option<Filter>) -> ApiResult<Value> {
        let filter = match (self.filter, scope) {
            (Some(f), Some(s)) => Some(Filter::and(vec![s, f])),
            (f, s) => f.or(s),
        };
        let mut query = collection.query();
        if let Some(filter) = filter {
            query = query.filter(filter);
        }
        for (path, descending) in &self.order {
            query = query.order_by(path, *descending);
        }
        let page = query
            .offset(self.offset)
            .limit(self.count)
            .fetch::<Value>()?;
        let list: Vec<Value> = page
            .items
            .into_iter()
            .map(|item| model::list_view(item.value))
            .collect();
        Ok(json!({
            "last_notify": meta::last_notify()?,
            "list": list,
            "size": page.total,
        }))
    }
}

fn syntax(param: &str, error: SyntaxError) -> ApiError {
    ApiError::bad_filter(param, error.position, error.message)
}

fn field(param: &str, error: FieldError) -> ApiError {
    ApiError::bad_filter(param, error.position, error.message)
}
