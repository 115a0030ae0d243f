//! The site database: one SQLite file in WAL mode, shared by every primitive through a small connection pool.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// Idle connections kept for reuse; a busier moment opens more and closes the surplus.
const MAX_IDLE: usize = 8;
/// Prepared statements kept per connection for `prepare_cached`.
const STATEMENT_CACHE: usize = 64;
/// How long a statement waits for another connection's lock before failing with "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the database could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the database cannot use WAL mode (journal_mode stayed {0:?})")]
    NoWal(String),
}

/// A handle on the site database; clones share one pool.
#[derive(Clone)]
pub struct Database {
    pool: Arc<Pool>,
}

struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Serialises this process's write transactions. SQLite allows one writer;
    /// a second one would wait in SQLite's busy handler, which sleeps in
    /// growing steps (1, 2, 5 ... 25 ms) on an async worker thread. Queued on
    /// this mutex it is woken the moment the first commits. Other processes
    /// (the CLI) still meet `busy_timeout`.
    writer: Mutex<()>,
    /// Set for test databases, whose files go when the last handle does.
    remove_on_drop: bool,
}

/// Rows `ANALYZE` reads per index: enough for the planner's estimates, bounded in time.
pub const ANALYSIS_LIMIT: u32 = 1000;

impl Database {
    /// Refreshes the query planner's statistics where tables grew or shrank a lot
    /// since they were last gathered (SQLite's `PRAGMA optimize`), reading at most
    /// [`ANALYSIS_LIMIT`] rows per index. Cheap when nothing changed; the kernel runs
    /// it periodically.
    pub fn optimize(&self) -> Result<(), DbError> {
        let _writer = self
            .pool
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.with_pooled(|conn| {
            conn.execute_batch(&format!(
                "PRAGMA analysis_limit = {ANALYSIS_LIMIT}; PRAGMA optimize = 0x10002;"
            ))
            .map_err(DbError::from)
        })
    }

    /// Opens (creating if needed) the database file at `path` and its parent directories.
    pub fn open(path: &Path) -> Result<Database, DbError> {
        Self::open_file(path, false)
    }

    /// A private, empty database for tests. It is a file under the temp directory,
    /// removed when the last handle drops, rather than shared-cache memory: shared
    /// cache has no WAL and fails lock waits at once instead of honouring the busy
    /// timeout, so tests would not run the locking that production runs.
    pub fn open_in_memory_for_tests() -> Result<Database, DbError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "tessera-test-{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        // A crashed earlier process with the same pid may have left one behind.
        remove_database_files(&path);
        Self::open_file(&path, true)
    }

    fn open_file(path: &Path, remove_on_drop: bool) -> Result<Database, DbError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let pool = Pool {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            writer: Mutex::new(()),
            remove_on_drop,
        };
        // Opening one connection now creates the file and switches it to WAL,
        // so a bad path or an unsupported filesystem fails at startup.
        let first = pool.connect()?;
        pool.give_back(first);
        Ok(Database {
            pool: Arc::new(pool),
        })
    }

    /// The directory holding the database file (the site's data dir).
    pub fn dir(&self) -> &Path {
        self.pool
            .path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.pool.path
    }

    /// An online, consistent copy of the whole database into a new file at
    /// `dest` (SQLite's backup API: readers and writers carry on meanwhile).
    pub fn backup_to(&self, dest: &Path) -> Result<(), DbError> {
        let source = self.pool.take()?;
        let result = (|| {
            let mut target = Connection::open(dest)?;
            let backup = rusqlite::backup::Backup::new(&source, &mut target)?;
            backup.run_to_completion(1024, Duration::ZERO, None)?;
            Ok(())
        })();
        self.pool.give_back(source);
        result
    }

    /// Replace the whole database with the one in `source`, atomically: one
    /// backup step of every page into the live file, under this process's
    /// writer lock, so every connection sees either the old or the new data.
    pub fn restore_from(&self, source: &Path) -> Result<(), DbError> {
        let _writer = self
            .pool
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let from = Connection::open_with_flags(source, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut live = self.pool.connect()?;
        let backup = rusqlite::backup::Backup::new(&from, &mut live)?;
        // -1: every page in one step, so the swap is one transaction. Another
        // process's lock is waited for as long as a statement would wait.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => return Ok(()),
                rusqlite::backup::StepResult::More => continue,
                _ if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    return Err(DbError::Sqlite(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("the database stayed locked".into()),
                    )));
                }
            }
        }
    }

    /// Runs `f` on a pooled connection, outside any explicit transaction.
    pub fn with_conn<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, E>,
    ) -> Result<R, E> {
        self.with_pooled(|conn| f(conn))
    }

    /// Runs `f` in a read transaction, so several reads see one snapshot.
    pub fn with_read_tx<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        self.with_tx(TransactionBehavior::Deferred, f)
    }

    /// Runs `f` in a write transaction that commits if `f` succeeds and rolls back
    /// if it fails. `BEGIN IMMEDIATE` takes the write lock up front, so a
    /// read-then-write inside `f` cannot be overtaken by another writer (another
    /// process included) and never fails half-way with a lock upgrade error.
    pub fn with_write_tx<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let _writer = self
            .pool
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.with_tx(TransactionBehavior::Immediate, f)
    }

    fn with_tx<R, E: From<DbError>>(
        &self,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Transaction<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        self.with_pooled(|conn| {
            let tx = conn
                .transaction_with_behavior(behavior)
                .map_err(DbError::from)?;
            // On an error `tx` drops here, which rolls it back.
            let value = f(&tx)?;
            tx.commit().map_err(DbError::from)?;
            Ok(value)
        })
    }

    /// Lends a connection for the length of `f`. The pool gets it back when `f`
    /// returns; if `f` panics the connection is dropped instead of reused, since
    /// its state is then unknown.
    fn with_pooled<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut conn = self.pool.take()?;
        let result = f(&mut conn);
        self.pool.give_back(conn);
        result
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.pool.path)
            .finish_non_exhaustive()
    }
}

impl Pool {
    fn take(&self) -> Result<Connection, DbError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    fn give_back(&self, conn: Connection) {
        // A connection still inside a transaction would hand its locks to the next user.
        if !conn.is_autocommit() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    fn connect(&self) -> Result<Connection, DbError> {
        let conn = Connection::open(&self.path)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Set before switching to WAL: the switch itself needs a lock that a
        // concurrently opening connection may hold.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::NoWal(mode));
        }
        // With WAL, NORMAL syncs only at checkpoints: a process crash loses
        // nothing, and a power loss can lose at most the last few commits,
        // never corrupt the file. FULL would fsync on every commit.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(conn)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if self.remove_on_drop {
            // Close every connection before deleting the files under them.
            self.idle
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            remove_database_files(&self.path);
        }
    }
}

/// Best-effort removal of a database and its WAL side files.
fn remove_database_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        // Missing files are the usual case, and a leftover temp file harms nothing.
        let _ = std::fs::remove_file(name);
    }
}

/// Statement helpers every store uses (cached prepared statements), generic
/// over the store's own error type.
pub mod query {
    use rusqlite::{Connection, OptionalExtension, Params, Row};

    /// Run a statement; the number of rows changed.
    pub fn execute<E: From<rusqlite::Error>>(
        conn: &Connection,
        sql: &str,
        params: impl Params,
    ) -> Result<usize, E> {
        Ok(conn.prepare_cached(sql)?.execute(params)?)
    }

    /// The first row, if any.
    pub fn one<T, E: From<rusqlite::Error>>(
        conn: &Connection,
        sql: &str,
        params: impl Params,
        read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, E> {
        Ok(conn
            .prepare_cached(sql)?
            .query_row(params, read)
            .optional()?)
    }

    /// Every row.
    pub fn all<T, E: From<rusqlite::Error>>(
        conn: &Connection,
        sql: &str,
        params: impl Params,
        read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, E> {
        let mut statement = conn.prepare_cached(sql)?;
        let rows = statement.query_map(params, read)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(conn: &Connection) -> Result<i64, DbError> {
        Ok(conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0))?)
    }

    fn make_table(db: &Database) -> Result<(), DbError> {
        db.with_conn(|conn| Ok(conn.execute_batch("CREATE TABLE t (x INTEGER)")?))
    }

    #[test]
    fn connections_use_wal_and_normal_sync() -> Result<(), DbError> {
        let db = Database::open_in_memory_for_tests()?;
        db.with_conn(|conn| {
            let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
            let sync: i64 = conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
            let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
            assert_eq!((mode.as_str(), sync, fk), ("wal", 1, 1));
            Ok(())
        })
    }

    #[test]
    fn write_tx_commits_on_success() -> Result<(), DbError> {
        let db = Database::open_in_memory_for_tests()?;
        make_table(&db)?;
        db.with_write_tx(|tx| Ok::<_, DbError>(tx.execute("INSERT INTO t VALUES (1)", [])?))?;
        assert_eq!(db.with_conn(count)?, 1);
        Ok(())
    }

    #[test]
    fn write_tx_rolls_back_on_error() -> Result<(), DbError> {
        let db = Database::open_in_memory_for_tests()?;
        make_table(&db)?;
        let result: Result<(), DbError> = db.with_write_tx(|tx| {
            tx.execute("INSERT INTO t VALUES (1)", [])?;
            Err(DbError::Io(std::io::Error::other("forced")))
        });
        assert!(result.is_err());
        assert_eq!(db.with_conn(count)?, 0);
        Ok(())
    }

    #[test]
    fn test_database_files_go_with_the_last_handle() -> Result<(), DbError> {
        let db = Database::open_in_memory_for_tests()?;
        let path = db.pool.path.clone();
        let clone = db.clone();
        drop(db);
        assert!(path.exists());
        drop(clone);
        assert!(!path.exists());
        Ok(())
    }

    #[test]
    fn pool_keeps_at_most_max_idle_connections() -> Result<(), DbError> {
        let db = Database::open_in_memory_for_tests()?;
        let extra: Vec<Connection> = (0..MAX_IDLE + 3)
            .map(|_| db.pool.take())
            .collect::<Result<_, _>>()?;
        extra.into_iter().for_each(|conn| db.pool.give_back(conn));
        let idle = db.pool.idle.lock().map(|idle| idle.len()).unwrap_or(0);
        assert_eq!(idle, MAX_IDLE);
        Ok(())
    }

    #[test]
    fn writers_on_two_handles_wait_for_each_other() -> Result<(), DbError> {
        let db = Database::open_in_memory_for_tests()?;
        make_table(&db)?;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                std::thread::spawn(move || -> Result<(), DbError> {
                    for _ in 0..25 {
                        db.with_write_tx(|tx| {
                            let n = count(tx)?;
                            tx.execute("INSERT INTO t VALUES (?1)", [n])?;
                            Ok::<_, DbError>(())
                        })?;
                    }
                    Ok(())
                })
            })
            .collect();
        for thread in threads {
            thread
                .join()
                .map_err(|_| DbError::Io(std::io::Error::other("thread panicked")))??;
        }
        assert_eq!(db.with_conn(count)?, 100);
        Ok(())
    }
}
