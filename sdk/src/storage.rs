//! Typed access to the plugin's document collections, and a builder for the
//! storage filter AST.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::bindings::tessera::kernel::storage as wit;
pub use wit::{
    BatchError, DeleteOp, Document, InsertOp, Order, PutOp, QueryResult, StorageError, Write,
};

/// What a typed storage call can fail with.
#[derive(Debug)]
pub enum Error {
    Storage(StorageError),
    /// A stored document did not have the shape the plugin asked for.
    Decode(serde_json::Error),
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        Error::Storage(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Storage(e) => write!(f, "storage: {e:?}"),
            Error::Decode(e) => write!(f, "stored document has an unexpected shape: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// A document decoded into `T`, with the version to send back on update.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub key: String,
    pub version: u64,
    pub value: T,
    pub created: u64,
    pub updated: u64,
}

impl<T: DeserializeOwned> TryFrom<Document> for Versioned<T> {
    type Error = Error;
    fn try_from(doc: Document) -> Result<Self, Error> {
        Ok(Versioned {
            value: serde_json::from_str(&doc.value).map_err(Error::Decode)?,
            key: doc.key,
            version: doc.version,
            created: doc.created,
            updated: doc.updated,
        })
    }
}

/// One page of a query.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<Versioned<T>>,
    pub total: u64,
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(Error::Decode)
}

/// A named collection of the plugin's documents.
#[derive(Debug, Clone, Copy)]
pub struct Collection {
    name: &'static str,
}

impl Collection {
    pub const fn new(name: &'static str) -> Self {
        Collection { name }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>, Error> {
        wit::get(self.name, key)?
            .map(Versioned::try_from)
            .transpose()
    }

    /// Create; fails with `AlreadyExists` when the key is taken.
    pub fn insert<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Document, Error> {
        Ok(wit::insert(self.name, key, &to_json(value)?)?)
    }

    /// Create or replace; with `expected_version`, only from that version.
    pub fn put<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        expected_version: Option<u64>,
    ) -> Result<Document, Error> {
        Ok(wit::put(
            self.name,
            key,
            &to_json(value)?,
            expected_version,
        )?)
    }

    pub fn delete(&self, key: &str, expected_version: Option<u64>) -> Result<bool, Error> {
        Ok(wit::delete(self.name, key, expected_version)?)
    }

    /// Declare an index on dotted paths (idempotent).
    pub fn ensure_index(&self, name: &str, paths: &[&str], unique: bool) -> Result<(), Error> {
        let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        Ok(wit::ensure_index(self.name, name, &paths, unique)?)
    }

    /// Start a query on this collection.
    pub fn query(&self) -> QueryBuilder {
        QueryBuilder {
            query: wit::QueryRequest {
                collection: self.name.to_string(),
                filter: None,
                order_by: Vec::new(),
                offset: 0,
                limit: None,
            },
        }
    }

    /// A write of an atomic batch (see [`batch`]).
    pub fn insert_op<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Write, Error> {
        Ok(Write::Insert(InsertOp {
            collection: self.name.to_string(),
            key: key.to_string(),
            value: to_json(value)?,
        }))
    }

    pub fn put_op<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        expected_version: Option<u64>,
    ) -> Result<Write, Error> {
        Ok(Write::Put(PutOp {
            collection: self.name.to_string(),
            key: key.to_string(),
            value: to_json(value)?,
            expected_version,
        }))
    }

    pub fn delete_op(&self, key: &str, expected_version: Option<u64>) -> Write {
        Write::Delete(DeleteOp {
            collection: self.name.to_string(),
            key: key.to_string(),
            expected_version,
        })
    }
}

/// Run several writes atomically: all or none.
pub fn batch(writes: &[Write]) -> Result<Vec<Option<Document>>, BatchError> {
    wit::batch(writes)
}

/// The next value of a named sequence (1, 2, 3, ...).
pub fn next_id(sequence: &str) -> Result<u64, Error> {
    Ok(wit::next_id(sequence)?)
}

/// Builds a query; see [`Collection::query`].
pub struct QueryBuilder {
    query: wit::QueryRequest,
}

impl QueryBuilder {
    pub fn filter(mut self, filter: Filter) -> Self {
        self.query.filter = Some(filter.to_json());
        self
    }

    pub fn order_by(mut self, path: &str, descending: bool) -> Self {
        self.query.order_by.push(Order {
            path: path.to_string(),
            descending,
        });
        self
    }

    pub fn offset(mut self, offset: u64) -> Self {
        self.query.offset = offset;
        self
    }

    pub fn limit(mut self, limit: u64) -> Self {
        self.query.limit = Some(limit);
        self
    }

    /// Run it, decoding each document into `T`.
    pub fn fetch<T: DeserializeOwned>(self) -> Result<Page<T>, Error> {
        let result = wit::query(&self.query)?;
        let items = result
            .documents
            .into_iter()
            .map(Versioned::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            total: result.total,
        })
    }
}

/// The storage filter AST (see `wit/storage.wit`).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Value);

macro_rules! comparison {
    ($($name:ident => $op:literal),* $(,)?) => {
        $(
            pub fn $name(path: &str, value: impl Into<Value>) -> Filter {
                Filter(json!({ $op: [path, value.into()] }))
            }
        )*
    };
}

impl Filter {
    comparison!(eq => "eq", ne => "ne", gt => "gt", ge => "ge", lt => "lt", le => "le");

    /// SQL `LIKE` with `%` and `_` wildcards and `\` as escape.
    pub fn like(path: &str, pattern: &str) -> Filter {
        Filter(json!({ "like": [path, pattern] }))
    }

    pub fn is_in(path: &str, values: Vec<Value>) -> Filter {
        Filter(json!({ "in": [path, values] }))
    }

    pub fn exists(path: &str) -> Filter {
        Filter(json!({ "exists": path }))
    }

    pub fn and(filters: Vec<Filter>) -> Filter {
        Filter(json!({ "and": filters.into_iter().map(|f| f.0).collect::<Vec<_>>() }))
    }

    pub fn or(filters: Vec<Filter>) -> Filter {
        Filter(json!({ "or": filters.into_iter().map(|f| f.0).collect::<Vec<_>>() }))
    }

    #[allow(clippy::should_implement_trait)]
    pub fn not(filter: Filter) -> Filter {
        Filter(json!({ "not": filter.0 }))
    }

    pub fn to_json(&self) -> String {
        self.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_render_the_documented_ast() {
        let f = Filter::and(vec![
            Filter::eq("owner", "alice"),
            Filter::not(Filter::is_in(
                "state",
                vec![json!("deleted"), json!("failed")],
            )),
            Filter::exists("tags.env"),
            Filter::ge("memory", 512),
        ]);
        assert_eq!(
            f.to_json(),
            r#"{"and":[{"eq":["owner","alice"]},{"not":{"in":["state",["deleted","failed"]]}},{"exists":"tags.env"},{"ge":["memory",512]}]}"#
        );
    }
}
