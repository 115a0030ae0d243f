//! The job queue's tables: the backend contract the queue is written against, and its SQLite implementation.
//!
//! Tables (prefixed `jobs_`, in the site database beside the other primitives'):
//! `jobs_queue`, one row per job whatever its state, and `jobs_log`, its numbered
//! log lines. At most one live job per (plugin, exclusive key) is a partial unique
//! index, so it holds however many kernels submit at once. Every value is a bound
//! parameter, and the SQL keeps to what PostgreSQL also has (partial indexes,
//! `COALESCE`, `IN (SELECT …)`), so a second backend can follow it closely.
//!
//! Claiming with several kernels on one database: every write runs in a
//! `BEGIN IMMEDIATE` transaction, which SQLite grants to one connection (of any
//! process) at a time, so `oldest_due` and the conditional `mark_running` that
//! follows cannot interleave with another claimer. A PostgreSQL backend would run
//! the same two steps in one transaction with
//! `SELECT id … WHERE state = 'queued' AND run_at <= $1 ORDER BY run_at, seq
//! LIMIT 1 FOR UPDATE SKIP LOCKED`: each kernel locks a different row without
//! waiting for the others, and the `… AND state = 'queued'` update stays as the
//! guard. Its `job` would read with `FOR UPDATE`, so a read-modify-write of one
//! job (progress, finish, cancel) cannot lose a concurrent change.

use rusqlite::types::Type;
use rusqlite::{Connection, Row, params};

use super::api::{JobError, JobFilter, JobInfo, JobState, OnRestart};
use crate::db::{Database, query};

/// A body run inside one transaction.
pub(super) type TxBody<'a> = &'a mut dyn FnMut(&dyn Tx) -> Result<(), JobError>;

/// What a database must provide to hold the queue.
pub(super) trait Store: Send + Sync {
    /// Runs `body` in a read transaction (one snapshot).
    fn read(&self, body: TxBody<'_>) -> Result<(), JobError>;
    /// Runs `body` in a write transaction that commits only if it returns `Ok`.
    fn write(&self, body: TxBody<'_>) -> Result<(), JobError>;
}

/// The queries of one transaction. Arguments arrive validated.
pub(super) trait Tx {
    /// Adds a job. If a live job of the same plugin holds its exclusive key, adds
    /// nothing and answers `ExclusiveBusy` with that job's id.
    fn insert_job(&self, job: &StoredJob) -> Result<(), JobError>;
    fn job(&self, id: &str) -> Result<Option<StoredJob>, JobError>;
    /// Writes every column of `job` that can change after submission.
    fn update_job(&self, job: &StoredJob) -> Result<(), JobError>;
    /// A plugin's jobs matching the filter's kind and state, newest first, paged.
    fn jobs(
        &self,
        plugin: &str,
        filter: &JobFilter,
        limit: u64,
    ) -> Result<Vec<StoredJob>, JobError>;
    /// The queued job due first at `now` (earliest `run_at`, then submission order).
    fn oldest_due(&self, now: u64) -> Result<Option<String>, JobError>;
    /// Marks job `id` running under `worker`'s lease and counts the attempt, only
    /// if it is still queued; `false` if another claimer took it first.
    fn mark_running(
        &self,
        id: &str,
        worker: &str,
        now: u64,
        lease_until: u64,
    ) -> Result<bool, JobError>;
    /// Running jobs: all of them, or those whose lease ended before `lease_ended_by`.
    fn running(&self, lease_ended_by: Option<u64>) -> Result<Vec<StoredJob>, JobError>;
    /// Stores log line number `n` (0-based) of a job.
    fn insert_log(&self, job_id: &str, n: u32, at: u64, line: &str) -> Result<(), JobError>;
    fn log_lines(&self, job_id: &str, offset: u32, limit: u32) -> Result<Vec<String>, JobError>;
    /// Deletes the jobs that reached a final state before `cutoff`, and their log
    /// lines; how many jobs went.
    fn purge_finished_before(&self, cutoff: u64) -> Result<u64, JobError>;
    /// When the queued job due first is due.
    fn earliest_due(&self) -> Result<Option<u64>, JobError>;
}

/// A job row: what its plugin sees, and the queue's own bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredJob {
    pub info: JobInfo,
    pub on_restart: OnRestart,
    /// When a queued job may next be claimed.
    pub run_at: u64,
    /// The worker holding a running job.
    pub owner: Option<String>,
    /// When a running job's claim lapses unless renewed.
    pub lease_until: Option<u64>,
    /// What the last step saved with continue-after.
    pub step_state: Option<String>,
    /// Log lines written so far, which is also the next line's number.
    pub log_count: u32,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs_queue (
    -- Submission order, which breaks ties between claims and orders lists; ids are random.
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    plugin TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress INTEGER NOT NULL CHECK (progress BETWEEN 0 AND 100),
    payload TEXT NOT NULL,
    result TEXT,
    error_code TEXT,
    error_message TEXT,
    exclusive_key TEXT,
    created INTEGER NOT NULL,
    started INTEGER,
    finished INTEGER,
    attempts INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL,
    on_restart TEXT NOT NULL CHECK (on_restart IN ('resume', 'fail')),
    run_at INTEGER NOT NULL,
    owner TEXT,
    lease_until INTEGER,
    step_state TEXT,
    log_count INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_queue_live_key ON jobs_queue (plugin, exclusive_key)
    WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS jobs_queue_due ON jobs_queue (run_at, seq) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_queue_lease ON jobs_queue (lease_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS jobs_queue_plugin ON jobs_queue (plugin, seq);
CREATE INDEX IF NOT EXISTS jobs_queue_finished ON jobs_queue (finished)
    WHERE state IN ('succeeded', 'failed', 'cancelled');
CREATE TABLE IF NOT EXISTS jobs_log (
    job_id TEXT NOT NULL REFERENCES jobs_queue (id),
    n INTEGER NOT NULL,
    at INTEGER NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (job_id, n)
);
";

/// The job columns, in the order `read_job` reads them.
const JOB_COLUMNS: &str = "id, plugin, kind, state, progress, payload, result, error_code, \
    error_message, exclusive_key, created, started, finished, attempts, cancel_requested, \
    on_restart, run_at, owner, lease_until, step_state, log_count";

const FINAL_STATES: &str = "('succeeded', 'failed', 'cancelled')";

impl From<rusqlite::Error> for JobError {
    fn from(error: rusqlite::Error) -> Self {
        JobError::Backend(error.to_string())
    }
}

/// The queue in the site's SQLite database.
pub(super) struct SqliteStore {
    db: Database,
}

impl SqliteStore {
    /// Creates the queue's tables if they are missing.
    pub(super) fn open(db: Database) -> Result<SqliteStore, JobError> {
        db.with_write_tx(|tx| Ok::<_, JobError>(tx.execute_batch(SCHEMA)?))?;
        Ok(SqliteStore { db })
    }
}

impl Store for SqliteStore {
    fn read(&self, body: TxBody<'_>) -> Result<(), JobError> {
        self.db.with_read_tx(|tx| body(&SqliteTx(tx)))
    }

    fn write(&self, body: TxBody<'_>) -> Result<(), JobError> {
        self.db.with_write_tx(|tx| body(&SqliteTx(tx)))
    }
}

struct SqliteTx<'a>(&'a Connection);

impl SqliteTx<'_> {
    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize, JobError> {
        query::execute(self.0, sql, params)
    }

    fn one<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, JobError> {
        query::one(self.0, sql, params, read)
    }

    fn all<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, JobError> {
        query::all(self.0, sql, params, read)
    }

    /// The live job of `plugin` holding `key`.
    fn key_holder(&self, plugin: &str, key: &str) -> Result<Option<String>, JobError> {
        self.one(
            "SELECT id FROM jobs_queue WHERE plugin = ?1 AND exclusive_key = ?2 \
             AND state IN ('queued', 'running')",
            [plugin, key],
            |row| row.get(0),
        )
    }

    /// A failed insert: a refusal by the live-key index names the job holding the key.
    /// SQLite undoes just the failed statement, so the transaction can still look.
    /// (PostgreSQL aborts the whole transaction on an error; its backend would insert
    /// with `ON CONFLICT (plugin, exclusive_key) WHERE state IN (…) DO NOTHING` and
    /// look up the holder when no row went in.)
    fn insert_error(&self, job: &StoredJob, error: rusqlite::Error) -> JobError {
        let unique = matches!(&error, rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE);
        let holder = match (&job.info.exclusive_key, unique) {
            (Some(key), true) => self.key_holder(&job.info.plugin, key),
            _ => Ok(None),
        };
        match holder {
            Ok(Some(id)) => JobError::ExclusiveBusy(id),
            Ok(None) => error.into(),
            Err(lookup) => lookup,
        }
    }
}

impl Tx for SqliteTx<'_> {
    fn insert_job(&self, job: &StoredJob) -> Result<(), JobError> {
        let info = &job.info;
        let sql = format!(
            "INSERT INTO jobs_queue ({JOB_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
             ?19, ?20, ?21)"
        );
        let values = params![
            info.id,
            info.plugin,
            info.kind,
            info.state.as_str(),
            info.progress,
            info.payload,
            info.result,
            info.error_code,
            info.error_message,
            info.exclusive_key,
            info.created,
            info.started,
            info.finished,
            info.attempts,
            info.cancel_requested,
            job.on_restart.as_str(),
            job.run_at,
            job.owner,
            job.lease_until,
            job.step_state,
            job.log_count,
        ];
        match self.0.prepare_cached(&sql)?.execute(values) {
            Ok(_) => Ok(()),
            Err(error) => Err(self.insert_error(job, error)),
        }
    }

    fn job(&self, id: &str) -> Result<Option<StoredJob>, JobError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs_queue WHERE id = ?1");
        self.one(&sql, [id], read_job)
    }

    fn update_job(&self, job: &StoredJob) -> Result<(), JobError> {
        let info = &job.info;
        let changed = self.execute(
            "UPDATE jobs_queue SET state = ?2, progress = ?3, result = ?4, error_code = ?5, \
             error_message = ?6, started = ?7, finished = ?8, attempts = ?9, \
             cancel_requested = ?10, run_at = ?11, owner = ?12, lease_until = ?13, \
             step_state = ?14, log_count = ?15 WHERE id = ?1",
            params![
                info.id,
                info.state.as_str(),
                info.progress,
                info.result,
                info.error_code,
                info.error_message,
                info.started,
                info.finished,
                info.attempts,
                info.cancel_requested,
                job.run_at,
                job.owner,
                job.lease_until,
                job.step_state,
                job.log_count,
            ],
        )?;
        if changed != 1 {
            return Err(JobError::NotFound);
        }
        Ok(())
    }

    fn jobs(
        &self,
        plugin: &str,
        filter: &JobFilter,
        limit: u64,
    ) -> Result<Vec<StoredJob>, JobError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs_queue WHERE plugin = ?1 \
             AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR state = ?3) \
             ORDER BY seq DESC LIMIT ?4 OFFSET ?5"
        );
        let values = params![
            plugin,
            filter.kind,
            filter.state.map(JobState::as_str),
            clamp_to_i64(limit),
            clamp_to_i64(filter.offset),
        ];
        self.all(&sql, values, read_job)
    }

    fn oldest_due(&self, now: u64) -> Result<Option<String>, JobError> {
        self.one(
            "SELECT id FROM jobs_queue WHERE state = 'queued' AND run_at <= ?1 \
             ORDER BY run_at, seq LIMIT 1",
            [now],
            |row| row.get(0),
        )
    }

    fn mark_running(
        &self,
        id: &str,
        worker: &str,
        now: u64,
        lease_until: u64,
    ) -> Result<bool, JobError> {
        let changed = self.execute(
            "UPDATE jobs_queue SET state = 'running', owner = ?2, lease_until = ?3, \
             attempts = attempts + 1, started = COALESCE(started, ?4) \
             WHERE id = ?1 AND state = 'queued'",
            params![id, worker, lease_until, now],
        )?;
        Ok(changed == 1)
    }

    fn running(&self, lease_ended_by: Option<u64>) -> Result<Vec<StoredJob>, JobError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs_queue WHERE state = 'running' \
             AND (?1 IS NULL OR lease_until < ?1) ORDER BY seq"
        );
        self.all(&sql, [lease_ended_by], read_job)
    }

    fn insert_log(&self, job_id: &str, n: u32, at: u64, line: &str) -> Result<(), JobError> {
        self.execute(
            "INSERT INTO jobs_log (job_id, n, at, line) VALUES (?1, ?2, ?3, ?4)",
            params![job_id, n, at, line],
        )?;
        Ok(())
    }

    fn log_lines(&self, job_id: &str, offset: u32, limit: u32) -> Result<Vec<String>, JobError> {
        self.all(
            "SELECT line FROM jobs_log WHERE job_id = ?1 AND n >= ?2 ORDER BY n LIMIT ?3",
            params![job_id, offset, limit],
            |row| row.get(0),
        )
    }

    fn purge_finished_before(&self, cutoff: u64) -> Result<u64, JobError> {
        self.execute(
            &format!(
                "DELETE FROM jobs_log WHERE job_id IN (SELECT id FROM jobs_queue \
                 WHERE state IN {FINAL_STATES} AND finished < ?1)"
            ),
            [cutoff],
        )?;
        let purged = self.execute(
            &format!("DELETE FROM jobs_queue WHERE state IN {FINAL_STATES} AND finished < ?1"),
            [cutoff],
        )?;
        Ok(u64::try_from(purged).unwrap_or(u64::MAX))
    }

    fn earliest_due(&self) -> Result<Option<u64>, JobError> {
        let earliest: Option<Option<u64>> = self.one(
            "SELECT min(run_at) FROM jobs_queue WHERE state = 'queued'",
            [],
            |row| row.get(0),
        )?;
        Ok(earliest.flatten())
    }
}

fn read_job(row: &Row<'_>) -> rusqlite::Result<StoredJob> {
    let info = JobInfo {
        id: row.get(0)?,
        plugin: row.get(1)?,
        kind: row.get(2)?,
        state: parse_column(row, 3)?,
        progress: row.get(4)?,
        payload: row.get(5)?,
        result: row.get(6)?,
        error_code: row.get(7)?,
        error_message: row.get(8)?,
        exclusive_key: row.get(9)?,
        created: row.get(10)?,
        started: row.get(11)?,
        finished: row.get(12)?,
        attempts: row.get(13)?,
        cancel_requested: row.get(14)?,
    };
    Ok(StoredJob {
        info,
        on_restart: parse_column(row, 15)?,
        run_at: row.get(16)?,
        owner: row.get(17)?,
        lease_until: row.get(18)?,
        step_state: row.get(19)?,
        log_count: row.get(20)?,
    })
}

/// A text column holding one of an enum's names.
fn parse_column<T>(row: &Row<'_>, index: usize) -> rusqlite::Result<T>
where
    T: std::str::FromStr<Err = JobError>,
{
    let text: String = row.get(index)?;
    text.parse().map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
    })
}

/// SQLite integers are signed; a page offset or limit past `i64::MAX` means "all".
fn clamp_to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::thread;

    use super::super::api::*;
    use crate::db::Database;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// `count` queues on one database, as `count` kernels would have.
    fn kernels(count: usize) -> Result<Vec<JobQueue>, JobError> {
        let db = Database::open_in_memory_for_tests()?;
        let clock = Arc::new(ManualJobClock::new(1_000));
        (0..count)
            .map(|_| JobQueue::new(db.clone(), JobSettings::default(), clock.clone()))
            .collect()
    }

    /// Runs `work` on one thread per queue and gathers what each returned.
    fn on_threads<T: Send + 'static>(
        queues: &[JobQueue],
        work: impl Fn(usize, JobQueue) -> Result<T, JobError> + Send + Sync + 'static,
    ) -> Result<Vec<T>, Box<dyn std::error::Error>> {
        let work = Arc::new(work);
        let threads: Vec<_> = queues
            .iter()
            .enumerate()
            .map(|(n, queue)| {
                let (work, queue) = (Arc::clone(&work), queue.clone());
                thread::spawn(move || work(n, queue))
            })
            .collect();
        let mut results = Vec::new();
        for thread in threads {
            results.push(thread.join().map_err(|_| "a thread panicked")??);
        }
        Ok(results)
    }

    #[test]
    fn concurrent_claimers_never_get_the_same_job() -> TestResult {
        let queues = kernels(4)?;
        let mut submitted = HashSet::new();
        for _ in 0..60 {
            submitted.insert(queues[0].submit("p", Submission::new("k", "{}"))?.id);
        }
        let claimed = on_threads(&queues, |n, queue| {
            let mut ids = Vec::new();
            while let Some(job) = queue.claim(&format!("kernel-{n}"))? {
                ids.push(job.id);
            }
            Ok(ids)
        })?;
        let all: Vec<String> = claimed.into_iter().flatten().collect();
        let distinct: HashSet<String> = all.iter().cloned().collect();
        assert_eq!(all.len(), distinct.len(), "a job was claimed twice");
        assert_eq!(distinct, submitted);
        Ok(())
    }

    #[test]
    fn concurrent_submits_with_one_key_admit_exactly_one() -> TestResult {
        let queues = kernels(4)?;
        let outcomes = on_threads(&queues, |_, queue| {
            let submission = Submission {
                exclusive_key: Some("appliance-update".into()),
                ..Submission::new("update", "{}")
            };
            Ok(queue.submit("p", submission))
        })?;
        let admitted: Vec<&JobInfo> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        let [winner] = admitted.as_slice() else {
            return Err(format!("{} submits were admitted", admitted.len()).into());
        };
        let busy = JobError::ExclusiveBusy(winner.id.clone());
        for refused in outcomes.iter().filter_map(|outcome| outcome.as_ref().err()) {
            assert_eq!(refused, &busy);
        }
        Ok(())
    }

    #[test]
    fn opening_the_queue_again_keeps_its_jobs() -> TestResult {
        let db = Database::open_in_memory_for_tests()?;
        let clock = Arc::new(SystemJobClock);
        let first = JobQueue::new(db.clone(), JobSettings::default(), clock.clone())?;
        let job = first.submit("p", Submission::new("k", "{}"))?;
        let again = JobQueue::new(db, JobSettings::default(), clock)?;
        assert_eq!(again.get("p", &job.id)?, Some(job));
        Ok(())
    }
}
