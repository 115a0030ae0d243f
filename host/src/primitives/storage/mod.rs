//! The storage primitive: per-plugin JSON document collections with versions, queries, atomic batches, sequences and indexes.
//!
//! This is the plain Rust API that mirrors `wit/storage.wit` one-to-one; the WIT glue,
//! the CLI and the tests all call it. Everything a plugin sends is validated here,
//! then handed to a backend (SQLite today, see `sqlite.rs`).

mod filter;
mod sqlite;
mod wit;

use std::sync::Arc;

use crate::db::{Database, DbError};
use filter::{Field, Filter};

/// Longest collection name, key, sequence name, or dotted path, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest index name, in bytes.
pub const MAX_INDEX_NAME_BYTES: usize = 64;
/// Most paths one index may cover.
pub const MAX_INDEX_PATHS: usize = 8;
/// Most sort keys one query may give.
pub const MAX_ORDER_KEYS: usize = 16;
/// Longest plugin name, in bytes (`[a-z][a-z0-9_-]{0,62}`).
pub const MAX_PLUGIN_NAME_BYTES: usize = 63;

/// The site's document storage; hands out each plugin's private view.
#[derive(Clone)]
pub struct Storage {
    backend: Arc<dyn Backend>,
}

/// One plugin's documents, sequences and indexes. Cheap to clone.
#[derive(Clone)]
pub struct PluginStorage {
    backend: Arc<dyn PluginBackend>,
}

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub key: String,
    /// 1 on creation, one more on each write.
    pub version: u64,
    /// The document as JSON text.
    pub value: String,
    /// Milliseconds since the Unix epoch.
    pub created: u64,
    pub updated: u64,
}

/// One sort key of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Dotted path; `_key`, `_version`, `_created` and `_updated` name the document's own fields.
    pub path: String,
    pub descending: bool,
}

/// A query over one collection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub collection: String,
    /// Filter AST as JSON (see `filter.rs`); `None` matches every document.
    pub filter: Option<String>,
    /// Sort keys, most significant first. Ties are always broken by key (running
    /// the way the last sort key runs), so pages are stable.
    pub order_by: Vec<Order>,
    pub offset: u64,
    /// `None` returns every match past `offset`; callers serving clients should page.
    pub limit: Option<u64>,
}

/// A page of matches and how many there are in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    pub documents: Vec<Document>,
    /// Matches of the filter, ignoring offset and limit.
    pub total: u64,
}

/// One write of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Insert {
        collection: String,
        key: String,
        value: String,
    },
    Put {
        collection: String,
        key: String,
        value: String,
        expected_version: Option<u64>,
    },
    Delete {
        collection: String,
        key: String,
        expected_version: Option<u64>,
    },
}

/// Why a storage call failed; mirrors the WIT `storage-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    /// Carries the current version, 0 when the document is absent.
    #[error("version conflict: the current version is {0}")]
    Conflict(u64),
    #[error("invalid: {0}")]
    Invalid(String),
    /// Carries the index name as the plugin declared it.
    #[error("unique index {0} refused the write")]
    UniqueViolation(String),
    #[error("storage backend failed: {0}")]
    Backend(String),
}

/// A batch failed at write `index` (0-based); nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("write {index} of the batch failed: {error}")]
pub struct BatchError {
    pub index: u32,
    pub error: StorageError,
}

impl From<DbError> for StorageError {
    fn from(error: DbError) -> Self {
        StorageError::Backend(error.to_string())
    }
}

impl Storage {
    /// Storage kept in the site database.
    pub fn new(db: Database) -> Self {
        Storage {
            backend: Arc::new(sqlite::SqliteBackend::new(db)),
        }
    }

    /// The private storage of `plugin`, creating its tables on first use.
    pub fn for_plugin(&self, plugin: &str) -> Result<PluginStorage, StorageError> {
        check_plugin_name(plugin)?;
        Ok(PluginStorage {
            backend: self.backend.open_plugin(plugin)?,
        })
    }
}

impl PluginStorage {
    /// A key no document can have (empty, over-long) is simply absent: plugins pass
    /// ids from URLs straight through, and a hostile id is "not found", not a failure.
    pub fn get(&self, collection: &str, key: &str) -> Result<Option<Document>, StorageError> {
        check_collection(collection)?;
        if check_name("key", key).is_err() {
            return Ok(None);
        }
        self.backend.get(collection, key)
    }

    /// Creates a document; `AlreadyExists` if the key is taken.
    pub fn insert(
        &self,
        collection: &str,
        key: &str,
        value: &str,
    ) -> Result<Document, StorageError> {
        let write = Write::Insert {
            collection: collection.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.write_one(write)?.into_document()
    }

    /// Creates or replaces a document. With `expected_version` the write happens
    /// only if the stored version equals it (`Some(0)`: must not exist yet), else
    /// `Conflict(current)`.
    pub fn put(
        &self,
        collection: &str,
        key: &str,
        value: &str,
        expected_version: Option<u64>,
    ) -> Result<Document, StorageError> {
        let write = Write::Put {
            collection: collection.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
            expected_version,
        };
        self.write_one(write)?.into_document()
    }

    /// Removes a document; `true` if it existed. `expected_version` as for [`put`](Self::put),
    /// except that an absent document with `Some(0)` is simply not deleted.
    pub fn delete(
        &self,
        collection: &str,
        key: &str,
        expected_version: Option<u64>,
    ) -> Result<bool, StorageError> {
        if check_name("key", key).is_err() {
            // As for `get`: no document has this key, so there is nothing to delete.
            check_collection(collection)?;
            return match expected_version {
                None | Some(0) => Ok(false),
                Some(_) => Err(StorageError::Conflict(0)),
            };
        }
        let write = Write::Delete {
            collection: collection.to_owned(),
            key: key.to_owned(),
            expected_version,
        };
        match self.write_one(write)? {
            Written::Deleted(existed) => Ok(existed),
            Written::Document(_) => Err(unexpected_result()),
        }
    }

    pub fn query(&self, query: &Query) -> Result<QueryResult, StorageError> {
        self.backend.query(&ValidQuery::new(query)?)
    }

    /// All writes or none, in one transaction. Returns, per write, the document
    /// written (`None` for a delete).
    pub fn batch(&self, writes: &[Write]) -> Result<Vec<Option<Document>>, BatchError> {
        for (index, write) in writes.iter().enumerate() {
            check_write(write).map_err(|error| batch_error(index, error))?;
        }
        let written = self.backend.write(writes)?;
        Ok(written.into_iter().map(Written::document).collect())
    }

    /// The next value of a named sequence: 1 first, never repeated.
    pub fn next_id(&self, sequence: &str) -> Result<u64, StorageError> {
        check_name("sequence name", sequence)?;
        self.backend.next_id(sequence)
    }

    /// Declares an index on dotted paths of a collection, so filters and orders on
    /// exactly those paths use it. Idempotent; redeclaring a name differently is
    /// `Invalid`. With `unique`, writes that would give two documents of the
    /// collection the same indexed values fail with `UniqueViolation(name)`;
    /// documents lacking an indexed field never collide.
    pub fn ensure_index(
        &self,
        collection: &str,
        name: &str,
        paths: &[String],
        unique: bool,
    ) -> Result<(), StorageError> {
        let index = IndexSpec::new(collection, name, paths, unique)?;
        self.backend.ensure_index(&index)
    }

    fn write_one(&self, write: Write) -> Result<Written, StorageError> {
        check_write(&write)?;
        let mut written = self
            .backend
            .write(std::slice::from_ref(&write))
            .map_err(|failure| failure.error)?;
        written.pop().ok_or_else(unexpected_result)
    }
}

/// What a database must provide to hold plugins' documents.
trait Backend: Send + Sync {
    /// Prepares (creating if needed) the plugin's private tables; `plugin` is validated.
    fn open_plugin(&self, plugin: &str) -> Result<Arc<dyn PluginBackend>, StorageError>;
}

/// One plugin's storage in a backend. Arguments arrive validated.
trait PluginBackend: Send + Sync {
    fn get(&self, collection: &str, key: &str) -> Result<Option<Document>, StorageError>;
    /// Applies every write in one transaction, or none of them.
    fn write(&self, writes: &[Write]) -> Result<Vec<Written>, BatchError>;
    fn query(&self, query: &ValidQuery) -> Result<QueryResult, StorageError>;
    fn next_id(&self, sequence: &str) -> Result<u64, StorageError>;
    fn ensure_index(&self, index: &IndexSpec) -> Result<(), StorageError>;
}

/// The outcome of one write.
#[derive(Debug)]
enum Written {
    Document(Document),
    /// Whether the document existed.
    Deleted(bool),
}

impl Written {
    fn document(self) -> Option<Document> {
        match self {
            Written::Document(document) => Some(document),
            Written::Deleted(_) => None,
        }
    }

    fn into_document(self) -> Result<Document, StorageError> {
        self.document().ok_or_else(unexpected_result)
    }
}

/// A query whose filter and sort keys parsed.
#[derive(Debug)]
struct ValidQuery {
    collection: String,
    filter: Option<Filter>,
    /// (field, descending)
    order_by: Vec<(Field, bool)>,
    offset: u64,
    limit: Option<u64>,
}

impl ValidQuery {
    fn new(query: &Query) -> Result<Self, StorageError> {
        check_collection(&query.collection)?;
        if query.order_by.len() > MAX_ORDER_KEYS {
            return Err(invalid(format!("at most {MAX_ORDER_KEYS} sort keys")));
        }
        let order_by = query
            .order_by
            .iter()
            .map(|order| Ok((Field::parse(&order.path)?, order.descending)))
            .collect::<Result<_, StorageError>>()?;
        Ok(ValidQuery {
            collection: query.collection.clone(),
            filter: query.filter.as_deref().map(Filter::parse).transpose()?,
            order_by,
            offset: query.offset,
            limit: query.limit,
        })
    }
}

/// A validated index declaration.
#[derive(Debug)]
struct IndexSpec {
    collection: String,
    name: String,
    fields: Vec<Field>,
    unique: bool,
}

impl IndexSpec {
    fn new(
        collection: &str,
        name: &str,
        paths: &[String],
        unique: bool,
    ) -> Result<Self, StorageError> {
        check_collection(collection)?;
        check_index_name(name)?;
        if paths.is_empty() || paths.len() > MAX_INDEX_PATHS {
            return Err(invalid(format!(
                "an index covers 1 to {MAX_INDEX_PATHS} paths"
            )));
        }
        Ok(IndexSpec {
            collection: collection.to_owned(),
            name: name.to_owned(),
            fields: paths
                .iter()
                .map(|path| Field::parse(path))
                .collect::<Result<_, _>>()?,
            unique,
        })
    }

    /// The paths in canonical spelling, comma-separated (no path contains a comma).
    fn paths(&self) -> String {
        let paths: Vec<String> = self.fields.iter().map(Field::to_string).collect();
        paths.join(",")
    }
}

/// Whether a write expecting `expected` may go ahead over a document now at
/// `current` (`None` = absent). Shared by every backend so they agree exactly.
fn check_version(expected: Option<u64>, current: Option<u64>) -> Result<(), StorageError> {
    match (expected, current) {
        (None, _) | (Some(0), None) => Ok(()),
        (Some(expected), Some(current)) if expected == current => Ok(()),
        (_, current) => Err(StorageError::Conflict(current.unwrap_or(0))),
    }
}

fn check_write(write: &Write) -> Result<(), StorageError> {
    let (collection, key, value) = match write {
        Write::Insert {
            collection,
            key,
            value,
        }
        | Write::Put {
            collection,
            key,
            value,
            ..
        } => (collection, key, Some(value)),
        Write::Delete {
            collection, key, ..
        } => (collection, key, None),
    };
    check_collection(collection)?;
    check_name("key", key)?;
    value.map_or(Ok(()), |value| check_json(value))
}

fn check_json(value: &str) -> Result<(), StorageError> {
    serde_json::from_str::<serde::de::IgnoredAny>(value)
        .map(|_| ())
        .map_err(|error| invalid(format!("value is not valid JSON: {error}")))
}

/// Keys and sequence names: any UTF-8, non-empty, bounded (they are only ever bound parameters).
fn check_name(what: &str, name: &str) -> Result<(), StorageError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(invalid(format!("a {what} is 1 to {MAX_NAME_BYTES} bytes")));
    }
    Ok(())
}

fn check_collection(collection: &str) -> Result<(), StorageError> {
    check_name("collection name", collection)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if !collection.chars().all(allowed) {
        return Err(invalid(format!(
            "collection name {collection:?} may hold only A-Z a-z 0-9 _ . -"
        )));
    }
    Ok(())
}

fn check_index_name(name: &str) -> Result<(), StorageError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if name.is_empty() || name.len() > MAX_INDEX_NAME_BYTES || !name.chars().all(allowed) {
        return Err(invalid(format!(
            "index name {name:?} must be 1 to {MAX_INDEX_NAME_BYTES} of A-Z a-z 0-9 _"
        )));
    }
    Ok(())
}

fn check_plugin_name(plugin: &str) -> Result<(), StorageError> {
    let mut chars = plugin.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if !first_ok || !rest_ok || plugin.len() > MAX_PLUGIN_NAME_BYTES {
        return Err(invalid(format!(
            "plugin name {plugin:?} must match [a-z][a-z0-9_-]{{0,62}}"
        )));
    }
    Ok(())
}

fn invalid(message: impl Into<String>) -> StorageError {
    StorageError::Invalid(message.into())
}

fn batch_error(index: usize, error: StorageError) -> BatchError {
    BatchError {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        error,
    }
}

/// A backend answered a write with the wrong kind of outcome: a bug, not a plugin's fault.
fn unexpected_result() -> StorageError {
    StorageError::Backend("the backend returned no outcome for the write".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn open(plugin: &str) -> Result<PluginStorage, StorageError> {
        Storage::new(Database::open_in_memory_for_tests()?).for_plugin(plugin)
    }

    fn keys(result: &QueryResult) -> Vec<&str> {
        result
            .documents
            .iter()
            .map(|doc| doc.key.as_str())
            .collect()
    }

    fn query(collection: &str, filter: &str) -> Query {
        Query {
            collection: collection.to_owned(),
            filter: Some(filter.to_owned()),
            ..Query::default()
        }
    }

    fn put_write(key: &str, value: &str) -> Write {
        Write::Put {
            collection: "vms".into(),
            key: key.into(),
            value: value.into(),
            expected_version: None,
        }
    }

    /// Four machines: owners alice/bob, sizes 1..4, one with a NIC list.
    fn machines() -> Result<PluginStorage, StorageError> {
        let storage = open("cloudapi")?;
        let rows = [
            ("m1", r#"{"owner":"alice","size":3,"on":true}"#),
            ("m2", r#"{"owner":"bob","size":1,"on":false}"#),
            (
                "m3",
                r#"{"owner":"alice","size":2,"nics":[{"mac":"aa:01"}]}"#,
            ),
            ("m4", r#"{"owner":"alice","size":4,"tag":null}"#),
        ];
        for (key, value) in rows {
            storage.insert("vms", key, value)?;
        }
        Ok(storage)
    }

    #[test]
    fn insert_creates_version_1_and_get_reads_it() -> TestResult {
        let storage = open("p")?;
        let doc = storage.insert("vms", "a", r#"{"n": 1}"#)?;
        assert_eq!((doc.version, doc.value.as_str()), (1, r#"{"n": 1}"#));
        assert_eq!(doc.created, doc.updated);
        assert_eq!(storage.get("vms", "a")?, Some(doc));
        assert_eq!(storage.get("vms", "b")?, None);
        Ok(())
    }

    #[test]
    fn insert_of_a_taken_key_is_already_exists() -> TestResult {
        let storage = open("p")?;
        storage.insert("vms", "a", "1")?;
        assert_eq!(
            storage.insert("vms", "a", "2"),
            Err(StorageError::AlreadyExists)
        );
        assert_eq!(
            storage.get("vms", "a")?.map(|doc| doc.value),
            Some("1".into())
        );
        Ok(())
    }

    #[test]
    fn put_creates_then_adds_one_to_the_version_and_keeps_created() -> TestResult {
        let storage = open("p")?;
        let first = storage.put("vms", "a", "1", None)?;
        let second = storage.put("vms", "a", "2", None)?;
        assert_eq!((first.version, second.version), (1, 2));
        assert_eq!(second.created, first.created);
        assert!(second.updated >= first.updated);
        assert_eq!(storage.get("vms", "a")?, Some(second));
        Ok(())
    }

    #[test]
    fn put_with_a_stale_version_conflicts_with_the_current_one() -> TestResult {
        let storage = open("p")?;
        storage.put("vms", "a", "1", None)?;
        storage.put("vms", "a", "2", Some(1))?;
        assert_eq!(
            storage.put("vms", "a", "3", Some(1)),
            Err(StorageError::Conflict(2))
        );
        assert_eq!(
            storage.get("vms", "a")?.map(|doc| doc.value),
            Some("2".into())
        );
        Ok(())
    }

    #[test]
    fn put_expecting_version_0_requires_the_key_to_be_absent() -> TestResult {
        let storage = open("p")?;
        assert_eq!(storage.put("vms", "a", "1", Some(0))?.version, 1);
        assert_eq!(
            storage.put("vms", "a", "2", Some(0)),
            Err(StorageError::Conflict(1))
        );
        Ok(())
    }

    #[test]
    fn put_expecting_a_version_of_an_absent_key_conflicts_with_0() -> TestResult {
        let storage = open("p")?;
        assert_eq!(
            storage.put("vms", "a", "1", Some(3)),
            Err(StorageError::Conflict(0))
        );
        assert_eq!(storage.get("vms", "a")?, None);
        Ok(())
    }

    #[test]
    fn delete_reports_whether_the_document_existed() -> TestResult {
        let storage = open("p")?;
        storage.insert("vms", "a", "1")?;
        assert!(storage.delete("vms", "a", None)?);
        assert!(!storage.delete("vms", "a", None)?);
        assert_eq!(storage.get("vms", "a")?, None);
        Ok(())
    }

    #[test]
    fn delete_checks_the_expected_version() -> TestResult {
        let storage = open("p")?;
        storage.put("vms", "a", "1", None)?;
        storage.put("vms", "a", "2", None)?;
        assert_eq!(
            storage.delete("vms", "a", Some(1)),
            Err(StorageError::Conflict(2))
        );
        assert_eq!(
            storage.delete("vms", "a", Some(0)),
            Err(StorageError::Conflict(2))
        );
        assert!(storage.delete("vms", "a", Some(2))?);
        assert_eq!(
            storage.delete("vms", "a", Some(2)),
            Err(StorageError::Conflict(0))
        );
        assert_eq!(storage.delete("vms", "a", Some(0)), Ok(false));
        Ok(())
    }

    #[test]
    fn a_deleted_key_starts_again_at_version_1() -> TestResult {
        let storage = open("p")?;
        storage.put("vms", "a", "1", None)?;
        storage.put("vms", "a", "2", None)?;
        storage.delete("vms", "a", None)?;
        assert_eq!(storage.insert("vms", "a", "3")?.version, 1);
        Ok(())
    }

    #[test]
    fn values_must_be_json() -> TestResult {
        let storage = open("p")?;
        for value in ["", "{", "{'a': 1}", "nan", "[1,]", "1 2"] {
            let result = storage.put("vms", "a", value, None);
            assert!(
                matches!(result, Err(StorageError::Invalid(_))),
                "{value:?}: {result:?}"
            );
        }
        for value in ["1", "\"s\"", "null", " [1, {\"a\": [true]}] "] {
            storage.put("vms", "a", value, None)?;
        }
        Ok(())
    }

    #[test]
    fn collection_names_are_checked() -> TestResult {
        let storage = open("p")?;
        let long = "c".repeat(MAX_NAME_BYTES + 1);
        for collection in ["", "a b", "a'b", "a\"b", "a/b", "é", long.as_str()] {
            let result = storage.insert(collection, "k", "1");
            assert!(
                matches!(result, Err(StorageError::Invalid(_))),
                "{collection:?}"
            );
        }
        storage.insert("My_vms.v2-x", "k", "1")?;
        Ok(())
    }

    #[test]
    fn keys_are_any_nonempty_bounded_utf8() -> TestResult {
        let storage = open("p")?;
        for key in [
            "'); DROP TABLE doc_p; --",
            "a\"b",
            "é/✓",
            "nul\0byte",
            "%_\\",
        ] {
            storage.insert("vms", key, "1")?;
            assert_eq!(
                storage.get("vms", key)?.map(|doc| doc.key),
                Some(key.to_owned())
            );
        }
        let long = "k".repeat(MAX_NAME_BYTES + 1);
        assert!(matches!(
            storage.insert("vms", "", "1"),
            Err(StorageError::Invalid(_))
        ));
        assert!(matches!(
            storage.insert("vms", &long, "1"),
            Err(StorageError::Invalid(_))
        ));
        // Reads and deletes of a key no document can have find nothing.
        assert_eq!(storage.get("vms", &long)?, None);
        assert_eq!(storage.get("vms", "")?, None);
        assert!(!storage.delete("vms", &long, None)?);
        assert!(matches!(
            storage.delete("vms", &long, Some(3)),
            Err(StorageError::Conflict(0))
        ));
        Ok(())
    }

    #[test]
    fn batch_applies_every_write_and_returns_what_it_wrote() -> TestResult {
        let storage = open("p")?;
        storage.insert("vms", "old", "0")?;
        let writes = [
            put_write("a", "1"),
            Write::Insert {
                collection: "vms".into(),
                key: "b".into(),
                value: "2".into(),
            },
            Write::Delete {
                collection: "vms".into(),
                key: "old".into(),
                expected_version: Some(1),
            },
        ];
        let written = storage.batch(&writes)?;
        let versions: Vec<Option<u64>> = written
            .iter()
            .map(|doc| doc.as_ref().map(|d| d.version))
            .collect();
        assert_eq!(versions, vec![Some(1), Some(1), None]);
        assert_eq!(storage.get("vms", "old")?, None);
        assert!(storage.get("vms", "b")?.is_some());
        Ok(())
    }

    #[test]
    fn a_failing_write_rolls_back_the_whole_batch_and_is_named() -> TestResult {
        let storage = open("p")?;
        storage.insert("vms", "taken", "0")?;
        let writes = [
            put_write("a", "1"),
            Write::Insert {
                collection: "vms".into(),
                key: "taken".into(),
                value: "2".into(),
            },
            put_write("c", "3"),
        ];
        let failure = storage.batch(&writes).err();
        assert_eq!(
            failure,
            Some(BatchError {
                index: 1,
                error: StorageError::AlreadyExists
            })
        );
        assert_eq!(storage.get("vms", "a")?, None);
        Ok(())
    }

    #[test]
    fn a_batch_sees_its_own_earlier_writes() -> TestResult {
        let storage = open("p")?;
        let writes = [
            put_write("a", "1"),
            Write::Put {
                collection: "vms".into(),
                key: "a".into(),
                value: "2".into(),
                expected_version: Some(1),
            },
        ];
        let written = storage.batch(&writes)?;
        assert_eq!(written[1].as_ref().map(|doc| doc.version), Some(2));
        Ok(())
    }

    #[test]
    fn an_invalid_write_fails_the_batch_before_anything_is_written() -> TestResult {
        let storage = open("p")?;
        let writes = [
            put_write("a", "1"),
            put_write("b", "2"),
            put_write("c", "{bad"),
        ];
        let failure = storage.batch(&writes).err();
        assert!(matches!(
            failure,
            Some(BatchError {
                index: 2,
                error: StorageError::Invalid(_)
            })
        ));
        assert_eq!(storage.get("vms", "a")?, None);
        Ok(())
    }

    #[test]
    fn an_empty_batch_writes_nothing() -> TestResult {
        assert_eq!(open("p")?.batch(&[])?, Vec::new());
        Ok(())
    }

    #[test]
    fn query_filters_orders_and_counts_all_matches() -> TestResult {
        let storage = machines()?;
        let mut q = query("vms", r#"{"eq": ["owner", "alice"]}"#);
        q.order_by = vec![Order {
            path: "size".into(),
            descending: true,
        }];
        let result = storage.query(&q)?;
        assert_eq!(keys(&result), vec!["m4", "m1", "m3"]);
        assert_eq!(result.total, 3);
        Ok(())
    }

    #[test]
    fn offset_and_limit_page_while_total_counts_every_match() -> TestResult {
        let storage = machines()?;
        let mut q = query("vms", r#"{"ge": ["size", 1]}"#);
        q.order_by = vec![Order {
            path: "size".into(),
            descending: false,
        }];
        q.offset = 1;
        q.limit = Some(2);
        let result = storage.query(&q)?;
        assert_eq!((keys(&result), result.total), (vec!["m3", "m1"], 4));
        q.offset = 10;
        let past_end = storage.query(&q)?;
        assert_eq!((past_end.documents.len(), past_end.total), (0, 4));
        Ok(())
    }

    #[test]
    fn no_filter_and_no_limit_returns_the_collection_in_key_order() -> TestResult {
        let storage = machines()?;
        storage.insert("other", "m0", "{}")?;
        let result = storage.query(&Query {
            collection: "vms".into(),
            ..Query::default()
        })?;
        assert_eq!(
            (keys(&result), result.total),
            (vec!["m1", "m2", "m3", "m4"], 4)
        );
        Ok(())
    }

    #[test]
    fn equal_sort_values_are_ordered_by_key_in_the_last_keys_direction() -> TestResult {
        let storage = machines()?;
        let mut q = Query {
            collection: "vms".into(),
            ..Query::default()
        };
        q.order_by = vec![Order {
            path: "owner".into(),
            descending: false,
        }];
        assert_eq!(keys(&storage.query(&q)?), vec!["m1", "m3", "m4", "m2"]);
        q.order_by[0].descending = true;
        assert_eq!(keys(&storage.query(&q)?), vec!["m2", "m4", "m3", "m1"]);
        Ok(())
    }

    #[test]
    fn filters_reach_into_arrays_booleans_and_row_fields() -> TestResult {
        let storage = machines()?;
        let cases = [
            (r#"{"eq": ["nics.0.mac", "aa:01"]}"#, vec!["m3"]),
            (r#"{"eq": ["on", true]}"#, vec!["m1"]),
            (r#"{"in": ["_key", ["m2", "m4", "zz"]]}"#, vec!["m2", "m4"]),
            (r#"{"ge": ["_version", 1]}"#, vec!["m1", "m2", "m3", "m4"]),
            (
                r#"{"or": [{"lt": ["size", 2]}, {"gt": ["size", 3]}]}"#,
                vec!["m2", "m4"],
            ),
            (r#"{"not": {"eq": ["owner", "alice"]}}"#, vec!["m2"]),
            (r#"{"like": ["owner", "AL%"]}"#, vec!["m1", "m3", "m4"]),
            (r#"{"eq": ["nics", [{"mac": "aa:01"}]]}"#, vec!["m3"]),
        ];
        for (filter, expected) in cases {
            assert_eq!(
                keys(&storage.query(&query("vms", filter))?),
                expected,
                "{filter}"
            );
        }
        Ok(())
    }

    #[test]
    fn ne_and_not_skip_documents_lacking_the_field() -> TestResult {
        let storage = machines()?;
        assert_eq!(
            keys(&storage.query(&query("vms", r#"{"ne": ["on", true]}"#))?),
            vec!["m2"]
        );
        let missing = r#"{"or": [{"ne": ["on", true]}, {"not": {"exists": "on"}}]}"#;
        assert_eq!(
            keys(&storage.query(&query("vms", missing))?),
            vec!["m2", "m3", "m4"]
        );
        Ok(())
    }

    #[test]
    fn exists_counts_a_null_field_as_present_and_eq_null_as_missing() -> TestResult {
        let storage = machines()?;
        assert_eq!(
            keys(&storage.query(&query("vms", r#"{"exists": "tag"}"#))?),
            vec!["m4"]
        );
        let null = storage.query(&query("vms", r#"{"eq": ["tag", null]}"#))?;
        assert_eq!(null.total, 4);
        Ok(())
    }

    #[test]
    fn hostile_values_match_only_themselves() -> TestResult {
        let storage = open("p")?;
        let names = [
            "it's",
            "100%",
            "a_b",
            "nul\0x",
            "'); DROP TABLE doc_p; --",
            "\"q\"",
        ];
        for (i, name) in names.iter().enumerate() {
            storage.insert(
                "c",
                &i.to_string(),
                &serde_json::json!({ "name": name }).to_string(),
            )?;
        }
        for (i, name) in names.iter().enumerate() {
            let filter = serde_json::json!({"eq": ["name", name]}).to_string();
            assert_eq!(
                keys(&storage.query(&query("c", &filter))?),
                vec![i.to_string()],
                "{name:?}"
            );
        }
        let literal_percent = storage.query(&query("c", r#"{"like": ["name", "100\\%"]}"#))?;
        assert_eq!(keys(&literal_percent), vec!["1"]);
        Ok(())
    }

    #[test]
    fn bad_filters_and_sort_paths_are_invalid() -> TestResult {
        let storage = machines()?;
        let bad_filter = storage.query(&query("vms", r#"{"eq": ["a'); DROP TABLE x;--", 1]}"#));
        assert!(matches!(bad_filter, Err(StorageError::Invalid(_))));
        let mut bad_order = Query {
            collection: "vms".into(),
            ..Query::default()
        };
        bad_order.order_by = vec![Order {
            path: "size DESC; --".into(),
            descending: false,
        }];
        assert!(matches!(
            storage.query(&bad_order),
            Err(StorageError::Invalid(_))
        ));
        Ok(())
    }

    #[test]
    fn plugins_cannot_see_each_others_documents() -> TestResult {
        let db = Database::open_in_memory_for_tests()?;
        let storage = Storage::new(db);
        let (a, b) = (storage.for_plugin("a")?, storage.for_plugin("b")?);
        a.insert("vms", "k", r#"{"owner": "a"}"#)?;
        assert_eq!(b.get("vms", "k")?, None);
        assert_eq!(
            b.query(&Query {
                collection: "vms".into(),
                ..Query::default()
            })?
            .total,
            0
        );
        assert!(!b.delete("vms", "k", None)?);
        assert_eq!(b.insert("vms", "k", "{}")?.version, 1);
        assert_eq!(
            a.get("vms", "k")?.map(|doc| doc.value),
            Some(r#"{"owner": "a"}"#.into())
        );
        Ok(())
    }

    #[test]
    fn plugin_names_are_checked() -> TestResult {
        let storage = Storage::new(Database::open_in_memory_for_tests()?);
        let long = format!("a{}", "b".repeat(MAX_PLUGIN_NAME_BYTES));
        for name in ["", "A", "1a", "-a", "a b", "a\"", "a;b", long.as_str()] {
            assert!(
                matches!(storage.for_plugin(name), Err(StorageError::Invalid(_))),
                "{name:?}"
            );
        }
        storage.for_plugin("appliance-admin")?;
        Ok(())
    }

    #[test]
    fn names_that_map_to_the_same_tables_cannot_both_open() -> TestResult {
        let storage = Storage::new(Database::open_in_memory_for_tests()?);
        storage.for_plugin("my-app")?;
        storage.for_plugin("my-app")?;
        assert!(matches!(
            storage.for_plugin("my_app"),
            Err(StorageError::Invalid(_))
        ));
        Ok(())
    }

    #[test]
    fn sequences_start_at_1_and_count_per_name_and_plugin() -> TestResult {
        let db = Database::open_in_memory_for_tests()?;
        let storage = Storage::new(db);
        let (a, b) = (storage.for_plugin("a")?, storage.for_plugin("b")?);
        assert_eq!(
            (a.next_id("vm")?, a.next_id("vm")?, a.next_id("vm")?),
            (1, 2, 3)
        );
        assert_eq!(a.next_id("disk")?, 1);
        assert_eq!(b.next_id("vm")?, 1);
        assert!(matches!(a.next_id(""), Err(StorageError::Invalid(_))));
        Ok(())
    }

    #[test]
    fn sequences_never_repeat_across_threads() -> TestResult {
        let storage = open("p")?;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let storage = storage.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|_| storage.next_id("s"))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut ids = Vec::new();
        for thread in threads {
            ids.extend(thread.join().map_err(|_| "thread panicked")??);
        }
        ids.sort_unstable();
        assert_eq!(ids, (1..=100).collect::<Vec<u64>>());
        Ok(())
    }

    #[test]
    fn a_unique_index_refuses_duplicates_by_its_name() -> TestResult {
        let storage = open("p")?;
        storage.ensure_index("users", "by_email", &["email".into()], true)?;
        storage.insert("users", "u1", r#"{"email": "a@x"}"#)?;
        let duplicate = storage.insert("users", "u2", r#"{"email": "a@x"}"#);
        assert_eq!(
            duplicate,
            Err(StorageError::UniqueViolation("by_email".into()))
        );
        storage.insert("users", "u2", r#"{"email": "b@x"}"#)?;
        let onto = storage.put("users", "u2", r#"{"email": "a@x"}"#, None);
        assert_eq!(onto, Err(StorageError::UniqueViolation("by_email".into())));
        Ok(())
    }

    #[test]
    fn a_unique_index_binds_only_its_own_collection() -> TestResult {
        let storage = open("p")?;
        storage.ensure_index("users", "by_email", &["email".into()], true)?;
        storage.insert("users", "u1", r#"{"email": "a@x"}"#)?;
        storage.insert("audit", "e1", r#"{"email": "a@x"}"#)?;
        storage.insert("audit", "e2", r#"{"email": "a@x"}"#)?;
        Ok(())
    }

    #[test]
    fn documents_lacking_a_uniquely_indexed_field_do_not_collide() -> TestResult {
        let storage = open("p")?;
        storage.ensure_index("users", "by_email", &["email".into()], true)?;
        storage.insert("users", "u1", "{}")?;
        storage.insert("users", "u2", "{}")?;
        Ok(())
    }

    #[test]
    fn a_unique_violation_in_a_batch_names_the_write_and_the_index() -> TestResult {
        let storage = open("p")?;
        storage.ensure_index("vms", "by_name", &["name".into(), "owner".into()], true)?;
        let writes = [
            put_write("a", r#"{"name": "x", "owner": "o"}"#),
            put_write("b", r#"{"name": "x", "owner": "o"}"#),
        ];
        let failure = storage.batch(&writes).err();
        let expected = BatchError {
            index: 1,
            error: StorageError::UniqueViolation("by_name".into()),
        };
        assert_eq!(failure, Some(expected));
        assert_eq!(storage.get("vms", "a")?, None);
        Ok(())
    }

    #[test]
    fn ensure_index_is_idempotent_but_refuses_a_changed_declaration() -> TestResult {
        let storage = open("p")?;
        let paths = ["owner".to_owned(), "size".to_owned()];
        storage.ensure_index("vms", "by_owner", &paths, false)?;
        storage.ensure_index("vms", "by_owner", &paths, false)?;
        storage.ensure_index("vms", "BY_OWNER", &paths, false)?;
        for (collection, paths, unique) in [
            ("vms", &paths[..1], false),
            ("vms", &paths[..], true),
            ("other", &paths[..], false),
        ] {
            let result = storage.ensure_index(collection, "by_owner", paths, unique);
            assert!(
                matches!(result, Err(StorageError::Invalid(_))),
                "{collection} {paths:?} {unique}"
            );
        }
        Ok(())
    }

    #[test]
    fn ensure_index_checks_its_arguments() -> TestResult {
        let storage = open("p")?;
        let one = ["a".to_owned()];
        let nine: Vec<String> = (0..=MAX_INDEX_PATHS).map(|i| format!("f{i}")).collect();
        let cases: [(&str, &[String]); 5] = [
            ("", &one),
            ("bad-name", &one),
            ("x\"; DROP", &one),
            ("ok", &[]),
            ("ok", &nine),
        ];
        for (name, paths) in cases {
            let result = storage.ensure_index("vms", name, paths, false);
            assert!(
                matches!(result, Err(StorageError::Invalid(_))),
                "{name:?} {paths:?}"
            );
        }
        let bad_path = storage.ensure_index("vms", "ok", &["a'); --".into()], false);
        assert!(matches!(bad_path, Err(StorageError::Invalid(_))));
        Ok(())
    }

    #[test]
    fn a_unique_index_over_existing_duplicates_fails_and_is_not_recorded() -> TestResult {
        let storage = open("p")?;
        storage.insert("users", "u1", r#"{"email": "a@x"}"#)?;
        storage.insert("users", "u2", r#"{"email": "a@x"}"#)?;
        let built = storage.ensure_index("users", "by_email", &["email".into()], true);
        assert_eq!(built, Err(StorageError::UniqueViolation("by_email".into())));
        storage.delete("users", "u2", None)?;
        storage.ensure_index("users", "by_email", &["email".into()], true)?;
        Ok(())
    }

    #[test]
    fn check_version_is_the_contract() {
        assert_eq!(check_version(None, Some(4)), Ok(()));
        assert_eq!(check_version(Some(0), None), Ok(()));
        assert_eq!(check_version(Some(4), Some(4)), Ok(()));
        assert_eq!(
            check_version(Some(0), Some(4)),
            Err(StorageError::Conflict(4))
        );
        assert_eq!(
            check_version(Some(3), Some(4)),
            Err(StorageError::Conflict(4))
        );
        assert_eq!(check_version(Some(3), None), Err(StorageError::Conflict(0)));
    }
}
