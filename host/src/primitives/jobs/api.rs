//! The jobs primitive's plain Rust API: the types of `wit/jobs.wit`, the `[jobs]` settings, the clock, and `JobQueue`.
//!
//! Plugin-facing calls take the calling plugin's name and only ever see that plugin's
//! jobs. Worker-facing calls (`claim` … `next_due_in_ms`) are for the kernel's worker
//! pool. Input is validated here and in `queue.rs`, which holds the state transitions
//! every backend shares; the rows live behind the backend trait in `store.rs`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::queue;
use super::store::{SqliteStore, Store, Tx, TxBody};
use crate::db::{Database, DbError};

/// Longest job kind, in bytes (`[a-z0-9][a-z0-9._-]{0,63}`).
pub const MAX_KIND_BYTES: usize = 64;
/// Largest payload, result or continue-after state, in bytes.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;
/// Longest exclusive key, in characters.
pub const MAX_EXCLUSIVE_KEY_CHARS: usize = 128;
/// Longest log line, in bytes; longer lines are cut and marked with `…`.
pub const MAX_LOG_LINE_BYTES: usize = 4096;
/// Log lines kept per job; the last one says the log was cut.
pub const MAX_LOG_LINES: u32 = 10_000;
/// Most jobs one `list` call returns; `limit: None` means this many.
pub const MAX_LIST_LIMIT: u64 = 1000;
/// Longest `delay_ms` of a submission or a continue-after: 30 days.
pub const MAX_DELAY_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// Longest lease: a day, far beyond any step, and small enough that times stay in range.
pub const MAX_LEASE_SECS: u64 = 24 * 60 * 60;

/// Error code of a job failed because the kernel running it died (`OnRestart::Fail`).
pub const KERNEL_RESTART: &str = "KernelRestart";
/// Error code of a job failed because its worker stopped renewing its lease.
pub const LEASE_EXPIRED: &str = "LeaseExpired";
/// Error code of a job whose `run-job` returned a malformed outcome.
pub const INVALID_OUTCOME: &str = "InvalidOutcome";

/// The current time in milliseconds since the Unix epoch.
pub trait JobClock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemJobClock;

impl JobClock for SystemJobClock {
    fn now_ms(&self) -> u64 {
        // A clock before 1970 reads as the epoch rather than failing every call.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, duration_ms)
    }
}

/// A clock that moves only when told, so tests of delays, leases and retention never sleep.
#[derive(Debug, Default)]
pub struct ManualJobClock {
    now_ms: AtomicU64,
}

impl ManualJobClock {
    pub fn new(start_ms: u64) -> Self {
        ManualJobClock {
            now_ms: AtomicU64::new(start_ms),
        }
    }

    pub fn advance(&self, by: Duration) {
        self.now_ms.fetch_add(duration_ms(by), Ordering::SeqCst);
    }

    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl JobClock for ManualJobClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The `[jobs]` section of the site config; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobSettings {
    /// Jobs one kernel runs at once.
    pub workers: u32,
    /// How long finished jobs, their logs and results are kept.
    pub retention_days: u32,
    /// A running job's claim lapses unless its worker renews it within this time;
    /// then another worker (of any kernel) may take it over.
    pub lease_secs: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            workers: 2,
            retention_days: 7,
            lease_secs: 60,
        }
    }
}

impl JobSettings {
    fn check(&self) -> Result<(), JobError> {
        if self.workers == 0 {
            return Err(JobError::Invalid("jobs.workers must be at least 1".into()));
        }
        if self.lease_secs == 0 || self.lease_secs > MAX_LEASE_SECS {
            return Err(JobError::Invalid(format!(
                "jobs.lease_secs must be 1 to {MAX_LEASE_SECS}"
            )));
        }
        Ok(())
    }

    pub(super) fn lease_ms(&self) -> u64 {
        self.lease_secs.saturating_mul(1000)
    }

    pub(super) fn retention_ms(&self) -> u64 {
        u64::from(self.retention_days).saturating_mul(24 * 60 * 60 * 1000)
    }
}

/// Where a job is in its life; the last three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Queued and running jobs are live: they hold their exclusive key.
    pub fn is_live(self) -> bool {
        matches!(self, JobState::Queued | JobState::Running)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = JobError;

    fn from_str(name: &str) -> Result<Self, JobError> {
        let all = [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ];
        all.into_iter()
            .find(|state| state.as_str() == name)
            .ok_or_else(|| JobError::Invalid(format!("no job state is called {name:?}")))
    }
}

/// What to do with a job that was running when its kernel died. Failing is the
/// default because running a step twice is only safe for work written to allow it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum OnRestart {
    /// Queue it again; the next `run-job` gets the state the last finished step saved.
    Resume,
    /// Fail it with the error code [`KERNEL_RESTART`] (or [`LEASE_EXPIRED`]).
    #[default]
    Fail,
}

impl OnRestart {
    pub fn as_str(self) -> &'static str {
        match self {
            OnRestart::Resume => "resume",
            OnRestart::Fail => "fail",
        }
    }
}

impl FromStr for OnRestart {
    type Err = JobError;

    fn from_str(name: &str) -> Result<Self, JobError> {
        match name {
            "resume" => Ok(OnRestart::Resume),
            "fail" => Ok(OnRestart::Fail),
            _ => Err(JobError::Invalid(format!(
                "on-restart is resume or fail, not {name:?}"
            ))),
        }
    }
}

/// A job a plugin asks for (`job-submission`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// `[a-z0-9][a-z0-9._-]{0,63}`; the plugin's `run-job` dispatches on it.
    pub kind: String,
    /// JSON, at most [`MAX_JSON_BYTES`]; handed back to `run-job` as given.
    pub payload: String,
    /// At most one live job of the plugin holds a key; a second submit is `ExclusiveBusy`.
    pub exclusive_key: Option<String>,
    pub on_restart: OnRestart,
    /// Do not start before this many milliseconds from now (at most [`MAX_DELAY_MS`]).
    pub delay_ms: Option<u64>,
}

impl Submission {
    /// A job of `kind` with `payload`, due now, without a key, failed on restart.
    pub fn new(kind: impl Into<String>, payload: impl Into<String>) -> Self {
        Submission {
            kind: kind.into(),
            payload: payload.into(),
            exclusive_key: None,
            on_restart: OnRestart::default(),
            delay_ms: None,
        }
    }
}

/// A job as its plugin sees it (`job-info`, plus the owning plugin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// UUID v4.
    pub id: String,
    pub plugin: String,
    pub kind: String,
    pub state: JobState,
    /// 0 to 100; 100 once succeeded.
    pub progress: u8,
    pub payload: String,
    /// JSON result, once succeeded.
    pub result: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub exclusive_key: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created: u64,
    /// When a worker first took it.
    pub started: Option<u64>,
    /// When it reached a final state.
    pub finished: Option<u64>,
    /// How often a worker has taken it: each step and each resume counts.
    pub attempts: u32,
    /// A cancel arrived while it ran; it ends as cancelled when its current step does.
    pub cancel_requested: bool,
}

/// Which of a plugin's jobs `list` returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub kind: Option<String>,
    pub state: Option<JobState>,
    pub offset: u64,
    /// At most [`MAX_LIST_LIMIT`]; `None` means that many.
    pub limit: Option<u64>,
}

/// A job a worker has taken, to hand to the plugin's `run-job` (`jobs-runner.job`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: String,
    pub plugin: String,
    pub kind: String,
    pub payload: String,
    /// 1 on the first call; one more on each step and each resume.
    pub attempt: u32,
    /// The JSON the previous step saved with continue-after.
    pub state: Option<String>,
}

/// How a `run-job` call ended (`jobs-runner.job-outcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished with this JSON result.
    Done(String),
    /// Failed; a trap or a time-out in `run-job` is reported this way too.
    Failed { code: String, message: String },
    /// Call again after `delay_ms` with this JSON `state`.
    ContinueAfter { delay_ms: u64, state: String },
}

/// Why a jobs call failed; mirrors the WIT `job-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("job not found")]
    NotFound,
    /// Carries the id of the live job holding the key.
    #[error("the exclusive key is held by live job {0}")]
    ExclusiveBusy(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("jobs backend failed: {0}")]
    Backend(String),
}

impl From<DbError> for JobError {
    fn from(error: DbError) -> Self {
        JobError::Backend(error.to_string())
    }
}

/// The site's durable job queue. Cheap to clone; clones share everything, and
/// several kernels may open queues on one database at once.
#[derive(Clone)]
pub struct JobQueue {
    inner: Arc<Inner>,
}

struct Inner {
    store: Box<dyn Store>,
    settings: JobSettings,
    clock: Arc<dyn JobClock>,
}

impl JobQueue {
    /// Opens the queue in `db`, creating its tables if needed.
    pub fn new(
        db: Database,
        settings: JobSettings,
        clock: Arc<dyn JobClock>,
    ) -> Result<JobQueue, JobError> {
        settings.check()?;
        Ok(JobQueue {
            inner: Arc::new(Inner {
                store: Box::new(SqliteStore::open(db)?),
                settings,
                clock,
            }),
        })
    }

    pub fn settings(&self) -> &JobSettings {
        &self.inner.settings
    }

    // Plugin-facing: each call is scoped to `plugin`, and another plugin's job is `NotFound`.

    /// Persists a new queued job, due after its delay.
    pub fn submit(&self, plugin: &str, submission: Submission) -> Result<JobInfo, JobError> {
        let job = queue::new_job(plugin, submission, self.now())?;
        self.write(move |tx| {
            tx.insert_job(&job)?;
            Ok(job.info)
        })
    }

    /// The plugin's job `id`; `None` if it has none by that id.
    pub fn get(&self, plugin: &str, id: &str) -> Result<Option<JobInfo>, JobError> {
        queue::check_plugin(plugin)?;
        self.read(|tx| Ok(queue::own_job(tx, plugin, id)?.map(|job| job.info)))
    }

    /// The plugin's jobs matching `filter`, newest first.
    pub fn list(&self, plugin: &str, filter: &JobFilter) -> Result<Vec<JobInfo>, JobError> {
        queue::check_plugin(plugin)?;
        let limit = queue::list_limit(filter)?;
        self.read(|tx| {
            let jobs = tx.jobs(plugin, filter, limit)?;
            Ok(jobs.into_iter().map(|job| job.info).collect())
        })
    }

    /// Cancels a queued job at once; a running one is flagged and ends as cancelled
    /// when its current step does. A finished job is `Invalid`.
    pub fn cancel(&self, plugin: &str, id: &str) -> Result<JobInfo, JobError> {
        queue::check_plugin(plugin)?;
        let now = self.now();
        self.write(|tx| queue::cancel(tx, queue::require_own_job(tx, plugin, id)?, now))
    }

    /// Up to `limit` of the job's log lines, from line `offset` (0-based).
    pub fn log_lines(
        &self,
        plugin: &str,
        id: &str,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<String>, JobError> {
        queue::check_plugin(plugin)?;
        self.read(|tx| {
            let job = queue::require_own_job(tx, plugin, id)?;
            tx.log_lines(&job.info.id, offset, limit)
        })
    }

    /// Records a running job's progress; above 100 counts as 100.
    pub fn progress(&self, plugin: &str, id: &str, percent: u8) -> Result<(), JobError> {
        queue::check_plugin(plugin)?;
        self.write(|tx| {
            let mut job = queue::require_running_own_job(tx, plugin, id)?;
            job.info.progress = percent.min(100);
            tx.update_job(&job)
        })
    }

    /// Appends a line to a running job's log. Lines are cut at [`MAX_LOG_LINE_BYTES`];
    /// past [`MAX_LOG_LINES`] they are dropped, so a chatty job never fails for it.
    pub fn append_log(&self, plugin: &str, id: &str, line: &str) -> Result<(), JobError> {
        queue::check_plugin(plugin)?;
        let now = self.now();
        self.write(|tx| {
            let mut job = queue::require_running_own_job(tx, plugin, id)?;
            queue::push_log(tx, &mut job, line, now)?;
            tx.update_job(&job)
        })
    }

    // Worker-facing: for the kernel's worker pool only.

    /// Takes the queued job due first, marks it running under a lease held by
    /// `worker_id`, and counts the attempt. `None` when nothing is due. Safe with
    /// several kernels on one database (see `Tx::oldest_due` and `Tx::mark_running`).
    pub fn claim(&self, worker_id: &str) -> Result<Option<Claimed>, JobError> {
        queue::check_worker(worker_id)?;
        let now = self.now();
        let lease_ms = self.inner.settings.lease_ms();
        self.write(|tx| queue::claim(tx, worker_id, now, lease_ms))
    }

    /// Extends `worker_id`'s lease on a running job by `lease_secs` from now.
    pub fn renew(&self, id: &str, worker_id: &str) -> Result<(), JobError> {
        queue::check_worker(worker_id)?;
        let lease_until = self.now().saturating_add(self.inner.settings.lease_ms());
        self.write(|tx| {
            let mut job = queue::require_held_job(tx, id, worker_id)?;
            job.lease_until = Some(lease_until);
            tx.update_job(&job)
        })
    }

    /// Whether the job's worker should stop after its current step: a cancel was
    /// requested, or the job is already cancelled.
    pub fn is_cancel_requested(&self, id: &str) -> Result<bool, JobError> {
        self.read(|tx| {
            let job = queue::require_job(tx, id)?;
            Ok(job.info.cancel_requested || job.info.state == JobState::Cancelled)
        })
    }

    /// Settles a step of a running job held by `worker_id`. A pending cancel turns a
    /// continue-after into cancelled; a malformed outcome fails the job with
    /// [`INVALID_OUTCOME`] rather than leaving it running.
    pub fn finish(&self, id: &str, worker_id: &str, outcome: Outcome) -> Result<JobInfo, JobError> {
        queue::check_worker(worker_id)?;
        let now = self.now();
        self.write(|tx| {
            let job = queue::require_held_job(tx, id, worker_id)?;
            queue::finish(tx, job, outcome, now)
        })
    }

    /// At kernel start, before any worker claims: every running job was left by a
    /// dead process, so each is queued again (`Resume`, keeping its saved state) or
    /// failed with [`KERNEL_RESTART`] (`Fail`); a pending cancel makes it cancelled.
    /// Returns (resumed, ended). Only for a kernel alone on its database: kernels
    /// sharing one rely on [`expire_leases`](Self::expire_leases), as a running job
    /// may belong to a live peer.
    pub fn recover_after_restart(&self) -> Result<(u64, u64), JobError> {
        let now = self.now();
        self.write(|tx| queue::recover(tx, tx.running(None)?, KERNEL_RESTART, now))
    }

    /// Treats running jobs whose lease lapsed (their kernel died, or their worker
    /// stopped renewing) as `recover_after_restart` does, failing with
    /// [`LEASE_EXPIRED`]. Returns how many jobs it moved.
    pub fn expire_leases(&self) -> Result<u64, JobError> {
        let now = self.now();
        self.write(|tx| {
            let (resumed, ended) = queue::recover(tx, tx.running(Some(now))?, LEASE_EXPIRED, now)?;
            Ok(resumed + ended)
        })
    }

    /// Deletes jobs that finished more than `retention_days` ago, with their logs.
    /// Returns how many jobs went.
    pub fn purge(&self) -> Result<u64, JobError> {
        let cutoff = self
            .now()
            .saturating_sub(self.inner.settings.retention_ms());
        self.write(|tx| tx.purge_finished_before(cutoff))
    }

    /// Milliseconds until the next queued job is due (0: one is due now); `None`
    /// when nothing is queued.
    pub fn next_due_in_ms(&self) -> Result<Option<u64>, JobError> {
        let now = self.now();
        self.read(|tx| Ok(tx.earliest_due()?.map(|due| due.saturating_sub(now))))
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Runs `body` in one read transaction (one snapshot).
    fn read<R>(&self, body: impl FnOnce(&dyn Tx) -> Result<R, JobError>) -> Result<R, JobError> {
        run_once(|tx_body| self.inner.store.read(tx_body), body)
    }

    /// Runs `body` in one write transaction: the job row and its log lines land together, or not at all.
    fn write<R>(&self, body: impl FnOnce(&dyn Tx) -> Result<R, JobError>) -> Result<R, JobError> {
        run_once(|tx_body| self.inner.store.write(tx_body), body)
    }
}

/// Runs `body` exactly once inside the transaction `open` starts, passing its result out.
fn run_once<R>(
    open: impl FnOnce(TxBody<'_>) -> Result<(), JobError>,
    body: impl FnOnce(&dyn Tx) -> Result<R, JobError>,
) -> Result<R, JobError> {
    let mut body = Some(body);
    let mut result = None;
    open(&mut |tx| {
        let body = body
            .take()
            .ok_or_else(|| JobError::Backend("a transaction body ran twice".into()))?;
        result = Some(body(tx)?);
        Ok(())
    })?;
    result.ok_or_else(|| JobError::Backend("a transaction body did not run".into()))
}
