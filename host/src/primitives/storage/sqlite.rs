//! The SQLite storage backend: each plugin's tables, versioned writes, compiled queries, sequences and expression indexes.
//!
//! A plugin `my-app` owns `doc_my_app` (documents, keyed by collection and key),
//! `seq_my_app` (sequences), `idx_my_app` (its index declarations) and indexes named
//! `ix_my_app:<name>`. Table names are the only text built from a name, and only from
//! a validated plugin name; every key, collection and value is a bound parameter.
//! Writes run in `BEGIN IMMEDIATE` transactions, so read-check-write sequences
//! (versions, sequences) stay correct with several processes on one file.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::filter::{Field, SqlFragment};
use super::{
    Backend, BatchError, Document, IndexSpec, PluginBackend, QueryResult, StorageError, ValidQuery,
    Write, Written, batch_error, check_version, invalid,
};
use crate::db::Database;

/// Which plugin owns which table identifier. Names map to identifiers by turning
/// `-` into `_`, so `my-app` and `my_app` would meet; the first to open keeps it.
const CLAIMS_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS storage_plugins (ident TEXT PRIMARY KEY, plugin TEXT NOT NULL)";
const CLAIM: &str =
    "INSERT INTO storage_plugins (ident, plugin) VALUES (?1, ?2) ON CONFLICT (ident) DO NOTHING";
const CLAIMANT: &str = "SELECT plugin FROM storage_plugins WHERE ident = ?1";

/// The document columns, in the order `read_document` reads them.
const DOCUMENT_COLUMNS: &str = "key, version, value, created, updated";

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        StorageError::Backend(error.to_string())
    }
}

/// Storage in the site's SQLite database.
pub struct SqliteBackend {
    db: Database,
}

impl SqliteBackend {
    pub fn new(db: Database) -> Self {
        SqliteBackend { db }
    }
}

impl Backend for SqliteBackend {
    fn open_plugin(&self, plugin: &str) -> Result<Arc<dyn PluginBackend>, StorageError> {
        Ok(Arc::new(SqlitePlugin::open(&self.db, plugin)?))
    }
}

/// One plugin's storage.
struct SqlitePlugin {
    db: Database,
    sql: PluginSql,
}

/// A plugin's statements, built once when its storage opens.
struct PluginSql {
    /// Prefix of its indexes' SQL names; the plugin's own index name follows.
    index_prefix: String,
    /// Its quoted document table name.
    docs: String,
    schema: String,
    get: String,
    current: String,
    insert: String,
    update: String,
    delete: String,
    next_id: String,
    select: String,
    count: String,
    declared_index: String,
    declare_index: String,
}

impl PluginSql {
    fn new(ident: &str) -> Self {
        let docs = format!("\"doc_{ident}\"");
        let seqs = format!("\"seq_{ident}\"");
        let indexes = format!("\"idx_{ident}\"");
        PluginSql {
            index_prefix: format!("ix_{ident}:"),
            schema: format!(
                "CREATE TABLE IF NOT EXISTS {docs} (collection TEXT NOT NULL, key TEXT NOT NULL, \
                   version INTEGER NOT NULL, value TEXT NOT NULL, created INTEGER NOT NULL, \
                   updated INTEGER NOT NULL, PRIMARY KEY (collection, key));
                 CREATE TABLE IF NOT EXISTS {seqs} (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS {indexes} (name TEXT PRIMARY KEY COLLATE NOCASE, \
                   collection TEXT NOT NULL, paths TEXT NOT NULL, is_unique INTEGER NOT NULL);"
            ),
            get: format!(
                "SELECT {DOCUMENT_COLUMNS} FROM {docs} WHERE collection = ?1 AND key = ?2"
            ),
            current: format!(
                "SELECT version, created FROM {docs} WHERE collection = ?1 AND key = ?2"
            ),
            insert: format!(
                "INSERT INTO {docs} (collection, key, version, value, created, updated) \
                 VALUES (?1, ?2, 1, ?3, ?4, ?4) ON CONFLICT (collection, key) DO NOTHING"
            ),
            update: format!(
                "UPDATE {docs} SET version = ?3, value = ?4, updated = ?5 \
                 WHERE collection = ?1 AND key = ?2"
            ),
            delete: format!("DELETE FROM {docs} WHERE collection = ?1 AND key = ?2"),
            next_id: format!(
                "INSERT INTO {seqs} (name, value) VALUES (?1, 1) \
                 ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value"
            ),
            select: format!("SELECT {DOCUMENT_COLUMNS} FROM {docs}"),
            count: format!("SELECT count(*) FROM {docs}"),
            declared_index: format!(
                "SELECT collection, paths, is_unique FROM {indexes} WHERE name = ?1"
            ),
            declare_index: format!(
                "INSERT INTO {indexes} (name, collection, paths, is_unique) VALUES (?1, ?2, ?3, ?4)"
            ),
            docs,
        }
    }
}

impl SqlitePlugin {
    /// Claims the plugin's identifier and creates its tables; `plugin` is validated.
    fn open(db: &Database, plugin: &str) -> Result<SqlitePlugin, StorageError> {
        let ident = plugin.replace('-', "_");
        let sql = PluginSql::new(&ident);
        db.with_write_tx(|tx| {
            claim_ident(tx, plugin, &ident)?;
            tx.execute_batch(&sql.schema)?;
            Ok::<_, StorageError>(())
        })?;
        Ok(SqlitePlugin {
            db: db.clone(),
            sql,
        })
    }

    fn apply(&self, conn: &Connection, write: &Write, now: u64) -> Result<Written, StorageError> {
        match write {
            Write::Insert {
                collection,
                key,
                value,
            } => self
                .insert(conn, collection, key, value, now)
                .map(Written::Document),
            Write::Put {
                collection,
                key,
                value,
                expected_version,
            } => self
                .put(conn, collection, key, value, *expected_version, now)
                .map(Written::Document),
            Write::Delete {
                collection,
                key,
                expected_version,
            } => self
                .delete(conn, collection, key, *expected_version)
                .map(Written::Deleted),
        }
    }

    fn insert(
        &self,
        conn: &Connection,
        collection: &str,
        key: &str,
        value: &str,
        now: u64,
    ) -> Result<Document, StorageError> {
        let inserted = conn
            .prepare_cached(&self.sql.insert)?
            .execute(params![collection, key, value, now])
            .map_err(|error| self.write_error(error))?;
        if inserted == 0 {
            return Err(StorageError::AlreadyExists);
        }
        Ok(document(key, 1, value, now, now))
    }

    fn put(
        &self,
        conn: &Connection,
        collection: &str,
        key: &str,
        value: &str,
        expected_version: Option<u64>,
        now: u64,
    ) -> Result<Document, StorageError> {
        let current = self.current(conn, collection, key)?;
        check_version(expected_version, current.map(|(version, _)| version))?;
        let Some((version, created)) = current else {
            return self.insert(conn, collection, key, value, now);
        };
        let next = version
            .checked_add(1)
            .ok_or_else(|| StorageError::Backend("document version overflowed".into()))?;
        conn.prepare_cached(&self.sql.update)?
            .execute(params![collection, key, next, value, now])
            .map_err(|error| self.write_error(error))?;
        Ok(document(key, next, value, created, now))
    }

    fn delete(
        &self,
        conn: &Connection,
        collection: &str,
        key: &str,
        expected_version: Option<u64>,
    ) -> Result<bool, StorageError> {
        let current = self.current(conn, collection, key)?;
        check_version(expected_version, current.map(|(version, _)| version))?;
        if current.is_none() {
            return Ok(false);
        }
        conn.prepare_cached(&self.sql.delete)?
            .execute([collection, key])?;
        Ok(true)
    }

    /// The stored (version, created) of a document, if it exists.
    fn current(
        &self,
        conn: &Connection,
        collection: &str,
        key: &str,
    ) -> Result<Option<(u64, u64)>, StorageError> {
        let mut statement = conn.prepare_cached(&self.sql.current)?;
        let row = statement.query_row([collection, key], |row| Ok((row.get(0)?, row.get(1)?)));
        Ok(row.optional()?)
    }

    /// A failed document write: a unique index's refusal is reported with the
    /// index's name as the plugin declared it.
    fn write_error(&self, error: rusqlite::Error) -> StorageError {
        let declared =
            unique_index_name(&error).and_then(|name| name.strip_prefix(&self.sql.index_prefix));
        match declared {
            Some(name) => StorageError::UniqueViolation(name.to_owned()),
            None => error.into(),
        }
    }

    /// The page of a query and its bound values. A query's own SQL text varies
    /// with its filter's shape only, never with the values, so `prepare_cached`
    /// reuses it across calls that differ in values.
    fn page_sql(&self, query: &ValidQuery, filter: &SqlFragment) -> (String, Vec<Value>) {
        let sql = format!(
            "{}{} ORDER BY {} LIMIT ? OFFSET ?",
            self.sql.select,
            filter.sql,
            order_sql(&query.order_by)
        );
        let limit = query.limit.map_or(-1, clamp_to_i64);
        let mut params = filter.params.clone();
        params.extend([
            Value::Integer(limit),
            Value::Integer(clamp_to_i64(query.offset)),
        ]);
        (sql, params)
    }

    fn page(
        &self,
        conn: &Connection,
        query: &ValidQuery,
        filter: &SqlFragment,
    ) -> Result<Vec<Document>, StorageError> {
        let (sql, params) = self.page_sql(query, filter);
        let mut statement = conn.prepare_cached(&sql)?;
        let rows = statement.query_map(params_from_iter(params), read_document)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn count(&self, conn: &Connection, filter: &SqlFragment) -> Result<u64, StorageError> {
        let sql = format!("{}{}", self.sql.count, filter.sql);
        let mut statement = conn.prepare_cached(&sql)?;
        Ok(statement.query_row(params_from_iter(&filter.params), |row| row.get(0))?)
    }

    /// The declaration recorded under `index.name`: Ok(false) if none, Ok(true)
    /// if the same, Invalid if different.
    fn declared(
        &self,
        conn: &Connection,
        index: &IndexSpec,
        paths: &str,
    ) -> Result<bool, StorageError> {
        let mut statement = conn.prepare_cached(&self.sql.declared_index)?;
        let read = |row: &Row<'_>| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, bool>(2)?,
            ))
        };
        let Some((collection, declared_paths, unique)) =
            statement.query_row([&index.name], read).optional()?
        else {
            return Ok(false);
        };
        if collection == index.collection && declared_paths == paths && unique == index.unique {
            return Ok(true);
        }
        let kind = if unique { "unique index" } else { "index" };
        Err(invalid(format!(
            "index {:?} is already declared as a {kind} on {collection} ({declared_paths})",
            index.name
        )))
    }

    /// The index for a declaration. It is partial, restricted to its collection,
    /// so a unique index does not also bind same-named fields of other
    /// collections. Its columns match how queries read: `collection = ?` first,
    /// then the paths, then (unless unique, where it would make every row
    /// distinct) the key, so a filter on the paths pages in key order without a
    /// sort and the planner prefers it over the primary key. (SQLite proves a
    /// bound `collection = ?` matches the literal by re-preparing a statement
    /// when that parameter changes: a few microseconds per call.) DDL takes no
    /// parameters, so the collection is a literal; it was validated to
    /// `[A-Za-z0-9_.-]`, which holds no quote.
    fn index_ddl(&self, index: &IndexSpec) -> String {
        let paths = index.fields.iter().map(Field::sql);
        let key = (!index.unique).then(|| "key".to_owned());
        let columns: Vec<String> = std::iter::once("collection".to_owned())
            .chain(paths)
            .chain(key)
            .collect();
        format!(
            "CREATE {}INDEX IF NOT EXISTS \"{}{}\" ON {} ({}) WHERE collection = '{}'",
            if index.unique { "UNIQUE " } else { "" },
            self.sql.index_prefix,
            index.name,
            self.sql.docs,
            columns.join(", "),
            index.collection,
        )
    }
}

impl PluginBackend for SqlitePlugin {
    fn get(&self, collection: &str, key: &str) -> Result<Option<Document>, StorageError> {
        self.db.with_conn(|conn| {
            let mut statement = conn.prepare_cached(&self.sql.get)?;
            Ok(statement
                .query_row([collection, key], read_document)
                .optional()?)
        })
    }

    fn write(&self, writes: &[Write]) -> Result<Vec<Written>, BatchError> {
        // One timestamp for the whole batch: its writes happen at once.
        let now = now_ms();
        // The write being applied; a failing begin or commit is reported at the last one.
        let mut at = 0;
        self.db
            .with_write_tx(|tx| {
                let apply_at = |(index, write): (usize, &Write)| {
                    at = index;
                    self.apply(tx, write, now)
                };
                writes.iter().enumerate().map(apply_at).collect()
            })
            .map_err(|error| batch_error(at, error))
    }

    fn query(&self, query: &ValidQuery) -> Result<QueryResult, StorageError> {
        let filter = where_clause(query);
        // One snapshot, so the count agrees with the page.
        self.db.with_read_tx(|tx| {
            let documents = self.page(tx, query, &filter)?;
            let total = match total_from_page(query, documents.len()) {
                Some(total) => total,
                None => self.count(tx, &filter)?,
            };
            Ok(QueryResult { documents, total })
        })
    }

    fn next_id(&self, sequence: &str) -> Result<u64, StorageError> {
        self.db.with_write_tx(|tx| {
            let mut statement = tx.prepare_cached(&self.sql.next_id)?;
            Ok(statement.query_row([sequence], |row| row.get(0))?)
        })
    }

    fn ensure_index(&self, index: &IndexSpec) -> Result<(), StorageError> {
        let paths = index.paths();
        self.db.with_write_tx(|tx| {
            let new = !self.declared(tx, index, &paths)?;
            if new {
                let record = params![index.name, index.collection, paths, index.unique];
                tx.prepare_cached(&self.sql.declare_index)?
                    .execute(record)?;
            }
            // Run even when declared before, so a dropped index comes back. On existing
            // duplicates a unique index fails to build, which rolls back the declaration.
            tx.execute(&self.index_ddl(index), [])
                .map_err(|error| self.write_error(error))?;
            if new {
                // Statistics for the new index, so the planner can weigh it against the
                // others (an index that sorts against one that filters) from the start.
                tx.execute_batch(&format!(
                    "PRAGMA analysis_limit = {}; ANALYZE \"{}{}\"",
                    crate::db::ANALYSIS_LIMIT,
                    self.sql.index_prefix,
                    index.name
                ))?;
            }
            Ok(())
        })
    }
}

fn claim_ident(conn: &Connection, plugin: &str, ident: &str) -> Result<(), StorageError> {
    conn.execute_batch(CLAIMS_SCHEMA)?;
    conn.prepare_cached(CLAIM)?.execute([ident, plugin])?;
    let owner: String = conn
        .prepare_cached(CLAIMANT)?
        .query_row([ident], |row| row.get(0))?;
    if owner != plugin {
        return Err(invalid(format!(
            "plugin {plugin:?} would share storage tables with plugin {owner:?}; rename one"
        )));
    }
    Ok(())
}

/// SQLite reports a unique expression index's refusal as
/// `UNIQUE constraint failed: index 'NAME'`.
fn unique_index_name(error: &rusqlite::Error) -> Option<&str> {
    let rusqlite::Error::SqliteFailure(failure, Some(message)) = error else {
        return None;
    };
    if failure.extended_code != rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE {
        return None;
    }
    message
        .strip_prefix("UNIQUE constraint failed: index '")?
        .strip_suffix('\'')
}

/// ` WHERE ...` for a query: its collection, and its filter if any.
fn where_clause(query: &ValidQuery) -> SqlFragment {
    let mut out = SqlFragment {
        sql: " WHERE collection = ?".to_owned(),
        params: vec![Value::Text(query.collection.clone())],
    };
    if let Some(filter) = &query.filter {
        out.sql.push_str(" AND (");
        filter.render(&mut out);
        out.sql.push(')');
    }
    out
}

/// The sort keys, then the key itself so that equal rows keep one order across
/// pages. The key runs the way the last sort key does, so an index on that path
/// (which ends in the key) can be read backwards for a descending order.
fn order_sql(order_by: &[(Field, bool)]) -> String {
    let direction = |descending: bool| if descending { "DESC" } else { "ASC" };
    let last = order_by.last().is_some_and(|(_, descending)| *descending);
    let keys = order_by
        .iter()
        .map(|(field, descending)| format!("{} {}", field.sql(), direction(*descending)));
    let keys: Vec<String> = keys.chain([format!("key {}", direction(last))]).collect();
    keys.join(", ")
}

/// The total when the page shows it, saving a count: a page that stops short of
/// its limit holds every match past the offset (if it holds any, or starts at 0).
fn total_from_page(query: &ValidQuery, found: usize) -> Option<u64> {
    let found = found as u64;
    let short = query.limit.is_none_or(|limit| found < limit);
    (short && (found > 0 || query.offset == 0)).then(|| query.offset.saturating_add(found))
}

fn read_document(row: &Row<'_>) -> rusqlite::Result<Document> {
    Ok(Document {
        key: row.get(0)?,
        version: row.get(1)?,
        value: row.get(2)?,
        created: row.get(3)?,
        updated: row.get(4)?,
    })
}

fn document(key: &str, version: u64, value: &str, created: u64, updated: u64) -> Document {
    Document {
        key: key.to_owned(),
        version,
        value: value.to_owned(),
        created,
        updated,
    }
}

/// SQLite integers are i64; an offset or limit past that means "all" anyway.
fn clamp_to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_ms() -> u64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH);
    elapsed.map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::storage::{Order, Query, filter};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn open(plugin: &str) -> Result<SqlitePlugin, StorageError> {
        SqlitePlugin::open(&Database::open_in_memory_for_tests()?, plugin)
    }

    fn index(
        collection: &str,
        name: &str,
        paths: &[&str],
        unique: bool,
    ) -> Result<IndexSpec, StorageError> {
        let paths: Vec<String> = paths.iter().map(|path| path.to_string()).collect();
        IndexSpec::new(collection, name, &paths, unique)
    }

    /// SQLite's plan for the page query of `query`, one line per step.
    fn plan(plugin: &SqlitePlugin, query: &Query) -> Result<String, StorageError> {
        let query = ValidQuery::new(query)?;
        let (sql, params) = plugin.page_sql(&query, &where_clause(&query));
        plugin.db.with_conn(|conn| {
            let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let rows =
                statement.query_map(params_from_iter(params), |row| row.get::<_, String>(3))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?.join("\n"))
        })
    }

    fn table_names(plugin: &SqlitePlugin) -> Result<Vec<String>, StorageError> {
        plugin.db.with_conn(|conn| {
            let mut statement =
                conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")?;
            let rows = statement.query_map([], |row| row.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    #[test]
    fn a_filter_on_an_indexed_path_uses_the_index() -> TestResult {
        let plugin = open("p")?;
        plugin.ensure_index(&index("vms", "by_owner", &["owner"], false)?)?;
        let query = Query {
            collection: "vms".into(),
            filter: Some(r#"{"eq": ["owner", "alice"]}"#.into()),
            ..Query::default()
        };
        let plan = plan(&plugin, &query)?;
        assert!(plan.contains("ix_p:by_owner"), "{plan}");
        Ok(())
    }

    #[test]
    fn an_order_on_an_indexed_path_uses_the_index() -> TestResult {
        let plugin = open("p")?;
        plugin.ensure_index(&index("vms", "by_size", &["size"], false)?)?;
        let query = Query {
            collection: "vms".into(),
            order_by: vec![Order {
                path: "size".into(),
                descending: false,
            }],
            limit: Some(10),
            ..Query::default()
        };
        let plan = plan(&plugin, &query)?;
        assert!(
            plan.contains("ix_p:by_size") && !plan.contains("B-TREE"),
            "{plan}"
        );
        Ok(())
    }

    #[test]
    fn a_descending_order_reads_the_index_backwards() -> TestResult {
        let plugin = open("p")?;
        plugin.ensure_index(&index("vms", "by_size", &["size"], false)?)?;
        let query = Query {
            collection: "vms".into(),
            order_by: vec![Order {
                path: "size".into(),
                descending: true,
            }],
            limit: Some(10),
            ..Query::default()
        };
        let plan = plan(&plugin, &query)?;
        assert!(
            plan.contains("ix_p:by_size") && !plan.contains("B-TREE"),
            "{plan}"
        );
        Ok(())
    }

    #[test]
    fn a_lookup_on_a_unique_index_uses_it() -> TestResult {
        let plugin = open("p")?;
        plugin.ensure_index(&index("users", "by_email", &["email"], true)?)?;
        let query = Query {
            collection: "users".into(),
            filter: Some(r#"{"eq": ["email", "a@x"]}"#.into()),
            ..Query::default()
        };
        let plan = plan(&plugin, &query)?;
        assert!(plan.contains("ix_p:by_email"), "{plan}");
        Ok(())
    }

    #[test]
    fn an_index_of_another_collection_is_not_used() -> TestResult {
        let plugin = open("p")?;
        plugin.ensure_index(&index("users", "by_owner", &["owner"], false)?)?;
        let query = Query {
            collection: "vms".into(),
            filter: Some(r#"{"eq": ["owner", "alice"]}"#.into()),
            ..Query::default()
        };
        let plan = plan(&plugin, &query)?;
        assert!(!plan.contains("by_owner"), "{plan}");
        Ok(())
    }

    #[test]
    fn a_new_index_gets_planner_statistics_at_once() -> TestResult {
        let plugin = open("p")?;
        let writes: Vec<Write> = (0..50)
            .map(|i| Write::Insert {
                collection: "vms".into(),
                key: format!("k{i}"),
                value: format!(r#"{{"size": {}}}"#, i % 5),
            })
            .collect();
        plugin.write(&writes)?;
        plugin.ensure_index(&index("vms", "by_size", &["size"], false)?)?;
        let stat: String = plugin.db.with_conn(|conn| {
            conn.query_row(
                "SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_p:by_size'",
                [],
                |row| row.get(0),
            )
            .map_err(StorageError::from)
        })?;
        assert!(stat.starts_with("50 "), "{stat}");
        plugin.db.optimize()?;
        Ok(())
    }

    #[test]
    fn a_plugins_tables_carry_its_name() -> TestResult {
        let plugin = open("appliance-admin")?;
        let tables = table_names(&plugin)?;
        let expected = [
            "doc_appliance_admin",
            "idx_appliance_admin",
            "seq_appliance_admin",
            "storage_plugins",
        ];
        assert_eq!(tables, expected);
        Ok(())
    }

    #[test]
    fn filters_at_every_limit_run_in_sqlite() -> TestResult {
        let plugin = open("p")?;
        let ors = vec![r#"{"eq": ["a", 1]}"#; filter::MAX_NODES - 1].join(",");
        let list = vec!["1"; filter::MAX_IN_VALUES].join(",");
        let mut deep = r#"{"exists": "a"}"#.to_owned();
        for _ in 1..filter::MAX_DEPTH {
            deep = format!(r#"{{"not": {deep}}}"#);
        }
        let wide_in = format!(
            r#"{{"or": [{}]}}"#,
            vec![format!(r#"{{"in": ["a", [{list}]]}}"#); 9].join(",")
        );
        for filter in [format!(r#"{{"or": [{ors}]}}"#), wide_in, deep] {
            let query = Query {
                collection: "c".into(),
                filter: Some(filter),
                ..Query::default()
            };
            plugin.query(&ValidQuery::new(&query)?)?;
        }
        Ok(())
    }

    #[test]
    fn unique_failures_are_read_from_sqlites_message() {
        let failure = rusqlite::ffi::Error {
            code: rusqlite::ErrorCode::ConstraintViolation,
            extended_code: rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE,
        };
        let message = "UNIQUE constraint failed: index 'ix_p:by_email'".to_owned();
        let error = rusqlite::Error::SqliteFailure(failure, Some(message));
        assert_eq!(unique_index_name(&error), Some("ix_p:by_email"));
    }

    #[test]
    fn a_page_short_of_its_limit_gives_the_total() {
        let query = |offset, limit| ValidQuery {
            collection: "c".into(),
            filter: None,
            order_by: Vec::new(),
            offset,
            limit,
        };
        assert_eq!(total_from_page(&query(0, None), 3), Some(3));
        assert_eq!(total_from_page(&query(5, Some(10)), 3), Some(8));
        assert_eq!(total_from_page(&query(0, Some(3)), 3), None);
        assert_eq!(total_from_page(&query(5, Some(10)), 0), None);
        assert_eq!(total_from_page(&query(0, Some(10)), 0), Some(0));
    }
}
