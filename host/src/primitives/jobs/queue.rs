//! The queue's rules, shared by every backend: input checks and each state transition of a job.
//!
//! A job is queued, then running once a worker claims it, then succeeded, failed or
//! cancelled; a continue-after, or a resume after its worker was lost, queues it
//! again. Each function here runs inside the one transaction its `JobQueue` call opened.

use super::api::{
    Claimed, INVALID_OUTCOME, JobError, JobFilter, JobInfo, JobState, MAX_DELAY_MS,
    MAX_EXCLUSIVE_KEY_CHARS, MAX_JSON_BYTES, MAX_KIND_BYTES, MAX_LIST_LIMIT, MAX_LOG_LINE_BYTES,
    MAX_LOG_LINES, OnRestart, Outcome, Submission,
};
use super::store::{StoredJob, Tx};

/// Longest plugin name, in bytes (`[a-z][a-z0-9_-]{0,62}`, as the storage primitive has it).
const MAX_PLUGIN_BYTES: usize = 63;
/// Longest worker id, in bytes.
const MAX_WORKER_BYTES: usize = 128;
/// Longest job id looked up; ids are UUIDs, so anything longer names no job.
const MAX_ID_BYTES: usize = 64;
/// Longest error code a step may report, in bytes; longer ones are cut.
const MAX_ERROR_CODE_BYTES: usize = 64;
/// Lines the kernel itself writes into a job's log start with this.
const KERNEL_PREFIX: &str = "[kernel] ";

// Input checks.

pub(super) fn check_plugin(plugin: &str) -> Result<(), JobError> {
    let mut chars = plugin.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if !first_ok || !rest_ok || plugin.len() > MAX_PLUGIN_BYTES {
        return Err(invalid(format!(
            "plugin name {plugin:?} must match [a-z][a-z0-9_-]{{0,62}}"
        )));
    }
    Ok(())
}

pub(super) fn check_worker(worker: &str) -> Result<(), JobError> {
    if worker.is_empty() || worker.len() > MAX_WORKER_BYTES {
        return Err(invalid(format!(
            "a worker id is 1 to {MAX_WORKER_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_kind(kind: &str) -> Result<(), JobError> {
    let first_ok = kind
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let all_ok = kind
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if !first_ok || !all_ok || kind.len() > MAX_KIND_BYTES {
        return Err(invalid(format!(
            "job kind {kind:?} must match [a-z0-9][a-z0-9._-]{{0,63}}"
        )));
    }
    Ok(())
}

fn check_json(what: &str, text: &str) -> Result<(), JobError> {
    if text.len() > MAX_JSON_BYTES {
        return Err(invalid(format!(
            "the {what} exceeds {MAX_JSON_BYTES} bytes"
        )));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|error| invalid(format!("the {what} is not valid JSON: {error}")))
}

fn check_key(key: &str) -> Result<(), JobError> {
    if key.is_empty() || key.chars().count() > MAX_EXCLUSIVE_KEY_CHARS {
        return Err(invalid(format!(
            "an exclusive key is 1 to {MAX_EXCLUSIVE_KEY_CHARS} characters"
        )));
    }
    Ok(())
}

fn check_delay(delay_ms: u64) -> Result<(), JobError> {
    if delay_ms > MAX_DELAY_MS {
        return Err(invalid(format!("a delay is at most {MAX_DELAY_MS} ms")));
    }
    Ok(())
}

/// How many jobs a `list` call may return.
pub(super) fn list_limit(filter: &JobFilter) -> Result<u64, JobError> {
    if let Some(kind) = &filter.kind {
        check_kind(kind)?;
    }
    match filter.limit {
        None => Ok(MAX_LIST_LIMIT),
        Some(limit) if limit <= MAX_LIST_LIMIT => Ok(limit),
        Some(_) => Err(invalid(format!(
            "a list returns at most {MAX_LIST_LIMIT} jobs; page with offset"
        ))),
    }
}

// Finding the job a call is about.

/// The plugin's job `id`; another plugin's job is as absent as a missing one.
pub(super) fn own_job(tx: &dyn Tx, plugin: &str, id: &str) -> Result<Option<StoredJob>, JobError> {
    if id.len() > MAX_ID_BYTES {
        return Ok(None);
    }
    Ok(tx.job(id)?.filter(|job| job.info.plugin == plugin))
}

pub(super) fn require_own_job(tx: &dyn Tx, plugin: &str, id: &str) -> Result<StoredJob, JobError> {
    own_job(tx, plugin, id)?.ok_or(JobError::NotFound)
}

/// The plugin's job `id`, which must be running: progress and log lines come from `run-job`.
pub(super) fn require_running_own_job(
    tx: &dyn Tx,
    plugin: &str,
    id: &str,
) -> Result<StoredJob, JobError> {
    let job = require_own_job(tx, plugin, id)?;
    if job.info.state != JobState::Running {
        return Err(invalid(format!(
            "job {id} is {}; progress and log lines are taken only while it runs",
            job.info.state
        )));
    }
    Ok(job)
}

pub(super) fn require_job(tx: &dyn Tx, id: &str) -> Result<StoredJob, JobError> {
    if id.len() > MAX_ID_BYTES {
        return Err(JobError::NotFound);
    }
    tx.job(id)?.ok_or(JobError::NotFound)
}

/// Job `id`, running under `worker`'s lease. A worker whose lease lapsed and was
/// taken over must not settle the job the new holder is running.
pub(super) fn require_held_job(tx: &dyn Tx, id: &str, worker: &str) -> Result<StoredJob, JobError> {
    let job = require_job(tx, id)?;
    if job.info.state != JobState::Running || job.owner.as_deref() != Some(worker) {
        return Err(invalid(format!(
            "worker {worker:?} does not hold job {id} (it is {})",
            job.info.state
        )));
    }
    Ok(job)
}

// Transitions.

/// A validated, queued job for `submission`, due after its delay.
pub(super) fn new_job(
    plugin: &str,
    submission: Submission,
    now: u64,
) -> Result<StoredJob, JobError> {
    check_plugin(plugin)?;
    check_kind(&submission.kind)?;
    check_json("payload", &submission.payload)?;
    if let Some(key) = &submission.exclusive_key {
        check_key(key)?;
    }
    let delay_ms = submission.delay_ms.unwrap_or(0);
    check_delay(delay_ms)?;
    let info = JobInfo {
        id: uuid::Uuid::new_v4().to_string(),
        plugin: plugin.to_owned(),
        kind: submission.kind,
        state: JobState::Queued,
        progress: 0,
        payload: submission.payload,
        result: None,
        error_code: None,
        error_message: None,
        exclusive_key: submission.exclusive_key,
        created: now,
        started: None,
        finished: None,
        attempts: 0,
        cancel_requested: false,
    };
    Ok(StoredJob {
        info,
        on_restart: submission.on_restart,
        run_at: now.saturating_add(delay_ms),
        owner: None,
        lease_until: None,
        step_state: None,
        log_count: 0,
    })
}

/// Takes the job due first for `worker`. The backend selects it and then marks it
/// running only if it is still queued; if another claimer won in between, this
/// claim comes back empty and the worker simply asks again.
pub(super) fn claim(
    tx: &dyn Tx,
    worker: &str,
    now: u64,
    lease_ms: u64,
) -> Result<Option<Claimed>, JobError> {
    let Some(id) = tx.oldest_due(now)? else {
        return Ok(None);
    };
    if !tx.mark_running(&id, worker, now, now.saturating_add(lease_ms))? {
        return Ok(None);
    }
    let job = require_job(tx, &id)?;
    Ok(Some(Claimed {
        id: job.info.id,
        plugin: job.info.plugin,
        kind: job.info.kind,
        payload: job.info.payload,
        attempt: job.info.attempts,
        state: job.step_state,
    }))
}

pub(super) fn cancel(tx: &dyn Tx, mut job: StoredJob, now: u64) -> Result<JobInfo, JobError> {
    match job.info.state {
        JobState::Queued => {
            end(&mut job, JobState::Cancelled, now);
            push_kernel_log(tx, &mut job, "cancelled before it ran", now)?;
        }
        JobState::Running if !job.info.cancel_requested => {
            job.info.cancel_requested = true;
            push_kernel_log(tx, &mut job, "cancel requested; stops after this step", now)?;
        }
        // A second cancel of a running job changes nothing.
        JobState::Running => return Ok(job.info),
        state => {
            return Err(invalid(format!("job {} is already {state}", job.info.id)));
        }
    }
    tx.update_job(&job)?;
    Ok(job.info)
}

/// Settles one step of a held job with the plugin's outcome.
pub(super) fn finish(
    tx: &dyn Tx,
    mut job: StoredJob,
    outcome: Outcome,
    now: u64,
) -> Result<JobInfo, JobError> {
    match check_outcome(outcome) {
        Ok(Outcome::Done(result)) => {
            job.info.progress = 100;
            job.info.result = Some(result);
            end(&mut job, JobState::Succeeded, now);
        }
        Ok(Outcome::Failed { code, message }) => fail(tx, &mut job, &code, &message, now)?,
        Ok(Outcome::ContinueAfter { delay_ms, state }) => {
            continue_after(tx, &mut job, delay_ms, state, now)?;
        }
        Err(problem) => fail(tx, &mut job, INVALID_OUTCOME, &problem, now)?,
    }
    tx.update_job(&job)?;
    Ok(job.info)
}

/// Another step is due after `delay_ms`, unless a cancel arrived during this one.
fn continue_after(
    tx: &dyn Tx,
    job: &mut StoredJob,
    delay_ms: u64,
    state: String,
    now: u64,
) -> Result<(), JobError> {
    if job.info.cancel_requested {
        end(job, JobState::Cancelled, now);
        return push_kernel_log(tx, job, "cancelled between steps", now);
    }
    requeue(job, now.saturating_add(delay_ms));
    job.step_state = Some(state);
    Ok(())
}

/// Moves jobs whose worker is gone: a pending cancel ends them as cancelled,
/// `Resume` jobs are queued again (keeping their saved state), `Fail` jobs fail
/// with `code`. Returns (resumed, ended).
pub(super) fn recover(
    tx: &dyn Tx,
    jobs: Vec<StoredJob>,
    code: &str,
    now: u64,
) -> Result<(u64, u64), JobError> {
    let (mut resumed, mut ended) = (0, 0);
    for mut job in jobs {
        if job.info.cancel_requested {
            end(&mut job, JobState::Cancelled, now);
            push_kernel_log(tx, &mut job, "cancelled: its worker was gone", now)?;
            ended += 1;
        } else if job.on_restart == OnRestart::Resume {
            requeue(&mut job, now);
            push_kernel_log(tx, &mut job, &format!("resumed ({code})"), now)?;
            resumed += 1;
        } else {
            let message = "the worker running the job was gone before its step ended";
            fail(tx, &mut job, code, message, now)?;
            ended += 1;
        }
        tx.update_job(&job)?;
    }
    Ok((resumed, ended))
}

/// Appends a line to the job's log within the caps and counts it; the caller
/// writes the job row in the same transaction.
pub(super) fn push_log(
    tx: &dyn Tx,
    job: &mut StoredJob,
    line: &str,
    now: u64,
) -> Result<(), JobError> {
    // The last line a job may have says that the log was cut, so a reader knows.
    let line = match MAX_LOG_LINES.saturating_sub(job.log_count) {
        0 => return Ok(()),
        1 => format!("{KERNEL_PREFIX}log cut: at most {MAX_LOG_LINES} lines are kept"),
        _ => cut(line, MAX_LOG_LINE_BYTES),
    };
    tx.insert_log(&job.info.id, job.log_count, now, &line)?;
    job.log_count += 1;
    Ok(())
}

fn push_kernel_log(tx: &dyn Tx, job: &mut StoredJob, text: &str, now: u64) -> Result<(), JobError> {
    push_log(tx, job, &format!("{KERNEL_PREFIX}{text}"), now)
}

fn fail(
    tx: &dyn Tx,
    job: &mut StoredJob,
    code: &str,
    message: &str,
    now: u64,
) -> Result<(), JobError> {
    let code = cut(code, MAX_ERROR_CODE_BYTES);
    let message = cut(message, MAX_LOG_LINE_BYTES);
    push_kernel_log(tx, job, &format!("failed: {code}: {message}"), now)?;
    job.info.error_code = Some(code);
    job.info.error_message = Some(message);
    end(job, JobState::Failed, now);
    Ok(())
}

/// Puts a job into a final state, releasing its lease and its exclusive key.
fn end(job: &mut StoredJob, state: JobState, now: u64) {
    job.info.state = state;
    job.info.finished = Some(now);
    job.owner = None;
    job.lease_until = None;
    // Only a next step would read it, and there is none.
    job.step_state = None;
}

/// Puts a job back in the queue, due at `run_at`; it keeps its exclusive key.
fn requeue(job: &mut StoredJob, run_at: u64) {
    job.info.state = JobState::Queued;
    job.run_at = run_at;
    job.owner = None;
    job.lease_until = None;
}

/// The outcome if it is well formed, else why not.
fn check_outcome(outcome: Outcome) -> Result<Outcome, String> {
    let checked = match &outcome {
        Outcome::Done(result) => check_json("result", result),
        Outcome::Failed { .. } => Ok(()),
        Outcome::ContinueAfter { delay_ms, state } => {
            check_delay(*delay_ms).and_then(|()| check_json("continue-after state", state))
        }
    };
    match checked {
        Ok(()) => Ok(outcome),
        Err(JobError::Invalid(problem)) => Err(problem),
        Err(error) => Err(error.to_string()),
    }
}

/// `text` cut to at most `max` bytes on a character boundary, marked with `…` if cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    const MARK: &str = "…";
    let end = text.floor_char_boundary(max.saturating_sub(MARK.len()));
    format!("{}{MARK}", &text[..end])
}

fn invalid(message: impl Into<String>) -> JobError {
    JobError::Invalid(message.into())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::api::*;
    use crate::db::Database;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const START: u64 = 1_700_000_000_000;
    const PAYLOAD: &str = r#"{"n":1}"#;

    struct Site {
        queue: JobQueue,
        clock: Arc<ManualJobClock>,
        db: Database,
    }

    fn site() -> Result<Site, JobError> {
        let db = Database::open_in_memory_for_tests()?;
        let clock = Arc::new(ManualJobClock::new(START));
        let queue = JobQueue::new(db.clone(), JobSettings::default(), clock.clone())?;
        Ok(Site { queue, clock, db })
    }

    fn keyed(kind: &str, key: &str) -> Submission {
        Submission {
            exclusive_key: Some(key.into()),
            ..Submission::new(kind, PAYLOAD)
        }
    }

    fn resumable(kind: &str) -> Submission {
        Submission {
            on_restart: OnRestart::Resume,
            ..Submission::new(kind, PAYLOAD)
        }
    }

    impl Site {
        fn submit(&self, plugin: &str, kind: &str) -> Result<JobInfo, JobError> {
            self.queue.submit(plugin, Submission::new(kind, PAYLOAD))
        }

        /// Claims the next due job for `worker`, which must exist.
        fn claim(&self, worker: &str) -> Result<Claimed, Box<dyn std::error::Error>> {
            Ok(self.queue.claim(worker)?.ok_or("nothing was due")?)
        }

        /// Submits a job for `p` and has worker `w` take it.
        fn running(&self, kind: &str) -> Result<Claimed, Box<dyn std::error::Error>> {
            self.submit("p", kind)?;
            self.claim("w")
        }

        fn state(&self, id: &str) -> Result<JobState, Box<dyn std::error::Error>> {
            Ok(self.queue.get("p", id)?.ok_or("job vanished")?.state)
        }

        fn advance_ms(&self, ms: u64) {
            self.clock.advance(Duration::from_millis(ms));
        }
    }

    fn ids(jobs: &[JobInfo]) -> Vec<&str> {
        jobs.iter().map(|job| job.id.as_str()).collect()
    }

    fn is_invalid<T>(result: Result<T, JobError>) -> bool {
        matches!(result, Err(JobError::Invalid(_)))
    }

    // Submitting, reading, listing.

    #[test]
    fn submit_persists_a_queued_job_that_get_returns() -> TestResult {
        let site = site()?;
        let job = site.submit("p", "backup")?;
        assert_eq!(job.state, JobState::Queued);
        assert_eq!((job.plugin.as_str(), job.kind.as_str()), ("p", "backup"));
        assert_eq!((job.payload.as_str(), job.created), (PAYLOAD, START));
        assert_eq!((job.attempts, job.progress, job.started), (0, 0, None));
        assert!(uuid::Uuid::parse_str(&job.id).is_ok());
        assert_eq!(site.queue.get("p", &job.id)?, Some(job));
        assert_eq!(site.queue.get("p", "no-such-id")?, None);
        Ok(())
    }

    #[test]
    fn a_kind_outside_the_pattern_is_refused() -> TestResult {
        let site = site()?;
        for kind in ["", "Backup", "-x", "a b", &"k".repeat(65)] {
            assert!(is_invalid(site.submit("p", kind)), "{kind:?}");
        }
        site.submit("p", &format!("0{}", "._-".repeat(21)))?;
        Ok(())
    }

    #[test]
    fn payload_must_be_json_of_at_most_1_mib() -> TestResult {
        let site = site()?;
        let submit = |payload: String| site.queue.submit("p", Submission::new("k", payload));
        assert!(is_invalid(submit("{not json".into())));
        let big = format!("\"{}\"", "x".repeat(MAX_JSON_BYTES - 2));
        submit(big.clone())?;
        assert!(is_invalid(submit(format!("{big} "))));
        Ok(())
    }

    #[test]
    fn an_exclusive_key_is_1_to_128_characters() -> TestResult {
        let site = site()?;
        assert!(is_invalid(site.queue.submit("p", keyed("k", ""))));
        assert!(is_invalid(
            site.queue.submit("p", keyed("k", &"é".repeat(129)))
        ));
        site.queue.submit("p", keyed("k", &"é".repeat(128)))?;
        Ok(())
    }

    #[test]
    fn a_delay_beyond_30_days_is_refused() -> TestResult {
        let site = site()?;
        let mut submission = Submission::new("k", PAYLOAD);
        submission.delay_ms = Some(MAX_DELAY_MS + 1);
        assert!(is_invalid(site.queue.submit("p", submission)));
        Ok(())
    }

    #[test]
    fn list_filters_by_kind_and_state_newest_first() -> TestResult {
        let site = site()?;
        let a = site.submit("p", "backup")?;
        let b = site.submit("p", "update")?;
        let c = site.submit("p", "backup")?;
        site.claim("w")?; // takes `a`
        let all = site.queue.list("p", &JobFilter::default())?;
        assert_eq!(ids(&all), [&c.id, &b.id, &a.id]);
        let backups = JobFilter {
            kind: Some("backup".into()),
            ..JobFilter::default()
        };
        assert_eq!(ids(&site.queue.list("p", &backups)?), [&c.id, &a.id]);
        let queued_backups = JobFilter {
            state: Some(JobState::Queued),
            ..backups
        };
        assert_eq!(ids(&site.queue.list("p", &queued_backups)?), [&c.id]);
        Ok(())
    }

    #[test]
    fn list_pages_with_offset_and_limit() -> TestResult {
        let site = site()?;
        let jobs: Vec<JobInfo> = (0..5)
            .map(|_| site.submit("p", "k"))
            .collect::<Result<_, _>>()?;
        let page = JobFilter {
            offset: 1,
            limit: Some(2),
            ..JobFilter::default()
        };
        assert_eq!(
            ids(&site.queue.list("p", &page)?),
            [&jobs[3].id, &jobs[2].id]
        );
        let past_the_end = JobFilter {
            offset: 5,
            ..JobFilter::default()
        };
        assert!(site.queue.list("p", &past_the_end)?.is_empty());
        Ok(())
    }

    #[test]
    fn a_list_limit_above_the_cap_is_refused() -> TestResult {
        let site = site()?;
        let filter = JobFilter {
            limit: Some(MAX_LIST_LIMIT + 1),
            ..JobFilter::default()
        };
        assert!(is_invalid(site.queue.list("p", &filter)));
        Ok(())
    }

    // Isolation between plugins.

    #[test]
    fn another_plugins_job_is_not_found() -> TestResult {
        let site = site()?;
        let theirs = site.running("k")?;
        assert_eq!(site.queue.get("other", &theirs.id)?, None);
        assert!(site.queue.list("other", &JobFilter::default())?.is_empty());
        let not_found = Err(JobError::NotFound);
        assert_eq!(
            site.queue.cancel("other", &theirs.id).map(|_| ()),
            not_found
        );
        assert_eq!(
            site.queue.log_lines("other", &theirs.id, 0, 10).map(|_| ()),
            not_found
        );
        assert_eq!(site.queue.progress("other", &theirs.id, 5), not_found);
        assert_eq!(site.queue.append_log("other", &theirs.id, "x"), not_found);
        assert_eq!(site.state(&theirs.id)?, JobState::Running);
        Ok(())
    }

    // Exclusive keys.

    #[test]
    fn a_second_submit_with_a_live_key_is_exclusive_busy() -> TestResult {
        let site = site()?;
        let first = site
            .queue
            .submit("p", keyed("update", "appliance-update"))?;
        let second = site.queue.submit("p", keyed("update", "appliance-update"));
        assert_eq!(second, Err(JobError::ExclusiveBusy(first.id.clone())));
        site.claim("w")?;
        let while_running = site
            .queue
            .submit("p", keyed("other-kind", "appliance-update"));
        assert_eq!(while_running, Err(JobError::ExclusiveBusy(first.id)));
        Ok(())
    }

    #[test]
    fn an_exclusive_key_is_free_again_once_its_job_finishes() -> TestResult {
        let site = site()?;
        let first = site
            .queue
            .submit("p", keyed("update", "appliance-update"))?;
        site.claim("w")?;
        site.queue
            .finish(&first.id, "w", Outcome::Done("{}".into()))?;
        let second = site
            .queue
            .submit("p", keyed("update", "appliance-update"))?;
        site.queue.cancel("p", &second.id)?;
        site.queue
            .submit("p", keyed("update", "appliance-update"))?;
        Ok(())
    }

    #[test]
    fn exclusive_keys_belong_to_one_plugin() -> TestResult {
        let site = site()?;
        site.queue
            .submit("p", keyed("update", "appliance-update"))?;
        site.queue
            .submit("q", keyed("update", "appliance-update"))?;
        Ok(())
    }

    // Claiming.

    #[test]
    fn claim_takes_the_job_due_first_then_in_submission_order() -> TestResult {
        let site = site()?;
        let mut later = Submission::new("k", PAYLOAD);
        later.delay_ms = Some(100);
        let a = site.queue.submit("p", later)?;
        let b = site.submit("q", "k")?;
        let c = site.submit("p", "k")?;
        site.advance_ms(100);
        let order: Vec<String> = (0..3)
            .map(|_| site.claim("w").map(|claimed| claimed.id))
            .collect::<Result<_, _>>()?;
        assert_eq!(order, [b.id, c.id, a.id]);
        assert_eq!(site.queue.claim("w")?, None);
        Ok(())
    }

    #[test]
    fn a_delayed_job_waits_for_its_time() -> TestResult {
        let site = site()?;
        let mut later = Submission::new("k", PAYLOAD);
        later.delay_ms = Some(5_000);
        let later = site.queue.submit("p", later)?;
        site.advance_ms(1_000);
        let now = site.submit("p", "k")?;
        assert_eq!(site.claim("w")?.id, now.id);
        assert_eq!(site.queue.claim("w")?, None);
        site.advance_ms(4_000);
        assert_eq!(site.claim("w")?.id, later.id);
        Ok(())
    }

    #[test]
    fn claim_hands_over_the_job_and_marks_it_running() -> TestResult {
        let site = site()?;
        let job = site.submit("p", "backup")?;
        site.advance_ms(10);
        let claimed = site.claim("w")?;
        let expected = Claimed {
            id: job.id.clone(),
            plugin: "p".into(),
            kind: "backup".into(),
            payload: PAYLOAD.into(),
            attempt: 1,
            state: None,
        };
        assert_eq!(claimed, expected);
        let info = site.queue.get("p", &job.id)?.ok_or("job vanished")?;
        assert_eq!(
            (info.state, info.attempts, info.started),
            (JobState::Running, 1, Some(START + 10))
        );
        Ok(())
    }

    // Progress and log.

    #[test]
    fn progress_and_log_are_refused_unless_the_job_runs() -> TestResult {
        let site = site()?;
        let queued = site.submit("p", "k")?;
        assert!(is_invalid(site.queue.progress("p", &queued.id, 10)));
        assert!(is_invalid(site.queue.append_log("p", &queued.id, "x")));
        site.claim("w")?;
        site.queue.progress("p", &queued.id, 10)?;
        site.queue.append_log("p", &queued.id, "x")?;
        site.queue
            .finish(&queued.id, "w", Outcome::Done("1".into()))?;
        assert!(is_invalid(site.queue.progress("p", &queued.id, 20)));
        assert!(is_invalid(site.queue.append_log("p", &queued.id, "y")));
        Ok(())
    }

    #[test]
    fn progress_is_recorded_and_above_100_counts_as_100() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        site.queue.progress("p", &job.id, 42)?;
        assert_eq!(
            site.queue.get("p", &job.id)?.map(|info| info.progress),
            Some(42)
        );
        site.queue.progress("p", &job.id, 250)?;
        assert_eq!(
            site.queue.get("p", &job.id)?.map(|info| info.progress),
            Some(100)
        );
        Ok(())
    }

    #[test]
    fn log_lines_page_by_offset_and_limit() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        for line in ["one", "two", "three", "four"] {
            site.queue.append_log("p", &job.id, line)?;
        }
        assert_eq!(site.queue.log_lines("p", &job.id, 1, 2)?, ["two", "three"]);
        assert_eq!(site.queue.log_lines("p", &job.id, 3, 10)?, ["four"]);
        assert!(site.queue.log_lines("p", &job.id, 4, 10)?.is_empty());
        Ok(())
    }

    #[test]
    fn a_long_log_line_is_cut_to_4_kib_on_a_character_boundary() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        site.queue.append_log("p", &job.id, &"é".repeat(3000))?;
        let lines = site.queue.log_lines("p", &job.id, 0, 1)?;
        let line = lines.first().ok_or("no line")?;
        assert!(line.len() <= MAX_LOG_LINE_BYTES && line.len() > MAX_LOG_LINE_BYTES - 8);
        assert!(line.ends_with('…'));
        Ok(())
    }

    #[test]
    fn the_log_keeps_10000_lines_and_its_last_says_it_was_cut() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        // Start just short of the cap rather than writing ten thousand lines.
        let near_cap = MAX_LOG_LINES - 2;
        site.db.with_conn(|conn| {
            let sql = "UPDATE jobs_queue SET log_count = ?1 WHERE id = ?2";
            conn.execute(sql, rusqlite::params![near_cap, job.id])?;
            Ok::<_, JobError>(())
        })?;
        for line in ["kept", "replaced by the mark", "dropped"] {
            site.queue.append_log("p", &job.id, line)?;
        }
        let tail = site.queue.log_lines("p", &job.id, 0, 10)?;
        assert_eq!(tail.len(), 2);
        assert_eq!(tail[0], "kept");
        assert!(tail[1].starts_with("[kernel] log cut"));
        Ok(())
    }

    // Finishing a step.

    #[test]
    fn done_succeeds_with_the_result_and_full_progress() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        site.advance_ms(7);
        let info = site
            .queue
            .finish(&job.id, "w", Outcome::Done(r#"{"ok":true}"#.into()))?;
        assert_eq!((info.state, info.progress), (JobState::Succeeded, 100));
        assert_eq!(info.result.as_deref(), Some(r#"{"ok":true}"#));
        assert_eq!(info.finished, Some(START + 7));
        assert_eq!(site.queue.get("p", &job.id)?, Some(info));
        Ok(())
    }

    #[test]
    fn failed_records_the_code_and_message() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        let outcome = Outcome::Failed {
            code: "DiskFull".into(),
            message: "no space left".into(),
        };
        let info = site.queue.finish(&job.id, "w", outcome)?;
        assert_eq!(info.state, JobState::Failed);
        assert_eq!(info.error_code.as_deref(), Some("DiskFull"));
        assert_eq!(info.error_message.as_deref(), Some("no space left"));
        assert_eq!(info.result, None);
        Ok(())
    }

    #[test]
    fn continue_after_requeues_and_hands_back_the_state_on_the_next_attempt() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        let outcome = Outcome::ContinueAfter {
            delay_ms: 1_000,
            state: r#"{"step":2}"#.into(),
        };
        let info = site.queue.finish(&job.id, "w", outcome)?;
        assert_eq!(info.state, JobState::Queued);
        assert_eq!(site.queue.claim("w")?, None);
        assert_eq!(site.queue.next_due_in_ms()?, Some(1_000));
        site.advance_ms(1_000);
        let next = site.claim("w2")?;
        assert_eq!((next.id.as_str(), next.attempt), (job.id.as_str(), 2));
        assert_eq!(next.state.as_deref(), Some(r#"{"step":2}"#));
        Ok(())
    }

    #[test]
    fn only_the_lease_holder_may_finish() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        let stranger = site
            .queue
            .finish(&job.id, "intruder", Outcome::Done("1".into()));
        assert!(is_invalid(stranger));
        assert_eq!(site.state(&job.id)?, JobState::Running);
        let missing = site
            .queue
            .finish("no-such-id", "w", Outcome::Done("1".into()));
        assert_eq!(missing, Err(JobError::NotFound));
        Ok(())
    }

    #[test]
    fn a_malformed_outcome_fails_the_job_instead_of_leaving_it_running() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        let info = site
            .queue
            .finish(&job.id, "w", Outcome::Done("not json".into()))?;
        assert_eq!(info.state, JobState::Failed);
        assert_eq!(info.error_code.as_deref(), Some(INVALID_OUTCOME));
        Ok(())
    }

    // Cancelling.

    #[test]
    fn cancelling_a_queued_job_ends_it_at_once() -> TestResult {
        let site = site()?;
        let job = site.submit("p", "k")?;
        let info = site.queue.cancel("p", &job.id)?;
        assert_eq!(
            (info.state, info.finished),
            (JobState::Cancelled, Some(START))
        );
        assert_eq!(site.queue.claim("w")?, None);
        Ok(())
    }

    #[test]
    fn cancelling_a_running_job_flags_it_until_its_step_ends() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        assert!(!site.queue.is_cancel_requested(&job.id)?);
        let info = site.queue.cancel("p", &job.id)?;
        assert_eq!(
            (info.state, info.cancel_requested),
            (JobState::Running, true)
        );
        assert!(site.queue.is_cancel_requested(&job.id)?);
        // A step that completes the work still counts.
        let done = site.queue.finish(&job.id, "w", Outcome::Done("1".into()))?;
        assert_eq!(done.state, JobState::Succeeded);
        Ok(())
    }

    #[test]
    fn a_pending_cancel_beats_continue_after() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        site.queue.cancel("p", &job.id)?;
        let outcome = Outcome::ContinueAfter {
            delay_ms: 0,
            state: "{}".into(),
        };
        let info = site.queue.finish(&job.id, "w", outcome)?;
        assert_eq!(info.state, JobState::Cancelled);
        assert_eq!(site.queue.claim("w")?, None);
        Ok(())
    }

    #[test]
    fn cancelling_a_finished_job_is_invalid() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        site.queue.finish(&job.id, "w", Outcome::Done("1".into()))?;
        assert!(is_invalid(site.queue.cancel("p", &job.id)));
        Ok(())
    }

    // Restarts and leases.

    #[test]
    fn after_a_restart_resume_jobs_are_queued_again_with_their_state() -> TestResult {
        let site = site()?;
        site.queue.submit("p", resumable("k"))?;
        let first = site.claim("w")?;
        let outcome = Outcome::ContinueAfter {
            delay_ms: 0,
            state: r#"{"step":2}"#.into(),
        };
        site.queue.finish(&first.id, "w", outcome)?;
        site.claim("w")?; // the kernel dies during step 2
        assert_eq!(site.queue.recover_after_restart()?, (1, 0));
        let again = site.claim("w")?;
        assert_eq!(
            (again.attempt, again.state.as_deref()),
            (3, Some(r#"{"step":2}"#))
        );
        Ok(())
    }

    #[test]
    fn after_a_restart_fail_jobs_fail_with_kernel_restart() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        let queued = site.submit("p", "k")?;
        assert_eq!(site.queue.recover_after_restart()?, (0, 1));
        let info = site.queue.get("p", &job.id)?.ok_or("job vanished")?;
        assert_eq!(info.state, JobState::Failed);
        assert_eq!(info.error_code.as_deref(), Some(KERNEL_RESTART));
        assert_eq!(site.state(&queued.id)?, JobState::Queued);
        Ok(())
    }

    #[test]
    fn after_a_restart_a_pending_cancel_ends_the_job_cancelled() -> TestResult {
        let site = site()?;
        site.queue.submit("p", resumable("k"))?;
        let job = site.claim("w")?;
        site.queue.cancel("p", &job.id)?;
        assert_eq!(site.queue.recover_after_restart()?, (0, 1));
        assert_eq!(site.state(&job.id)?, JobState::Cancelled);
        Ok(())
    }

    #[test]
    fn a_lapsed_lease_hands_the_job_to_another_worker() -> TestResult {
        let site = site()?;
        site.queue.submit("p", resumable("k"))?;
        let job = site.claim("w")?;
        site.advance_ms(60_000);
        assert_eq!(site.queue.expire_leases()?, 0);
        site.advance_ms(1);
        assert_eq!(site.queue.expire_leases()?, 1);
        assert_eq!(site.claim("w2")?.id, job.id);
        let stale = site.queue.finish(&job.id, "w", Outcome::Done("1".into()));
        assert!(is_invalid(stale));
        Ok(())
    }

    #[test]
    fn a_lapsed_lease_fails_a_fail_job_with_lease_expired() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        site.advance_ms(60_001);
        assert_eq!(site.queue.expire_leases()?, 1);
        let info = site.queue.get("p", &job.id)?.ok_or("job vanished")?;
        assert_eq!(info.error_code.as_deref(), Some(LEASE_EXPIRED));
        Ok(())
    }

    #[test]
    fn renewing_keeps_the_lease_alive() -> TestResult {
        let site = site()?;
        let job = site.running("k")?;
        site.advance_ms(50_000);
        site.queue.renew(&job.id, "w")?;
        site.advance_ms(50_000);
        assert_eq!(site.queue.expire_leases()?, 0);
        assert!(is_invalid(site.queue.renew(&job.id, "intruder")));
        Ok(())
    }

    // Retention and scheduling.

    #[test]
    fn purge_deletes_jobs_finished_past_retention_with_their_logs() -> TestResult {
        let site = site()?;
        let old = site.running("k")?;
        site.queue.append_log("p", &old.id, "line")?;
        site.queue.finish(&old.id, "w", Outcome::Done("1".into()))?;
        let waiting = site.submit("p", "k")?;
        site.advance_ms(7 * 24 * 60 * 60 * 1000);
        assert_eq!(site.queue.purge()?, 0);
        site.advance_ms(1);
        assert_eq!(site.queue.purge()?, 1);
        assert_eq!(site.queue.get("p", &old.id)?, None);
        assert_eq!(site.state(&waiting.id)?, JobState::Queued);
        let lines: i64 = site.db.with_conn(|conn| {
            Ok::<_, JobError>(
                conn.query_row("SELECT count(*) FROM jobs_log", [], |row| row.get(0))?,
            )
        })?;
        assert_eq!(lines, 0);
        Ok(())
    }

    #[test]
    fn next_due_in_ms_says_how_long_the_worker_may_sleep() -> TestResult {
        let site = site()?;
        assert_eq!(site.queue.next_due_in_ms()?, None);
        let mut later = Submission::new("k", PAYLOAD);
        later.delay_ms = Some(3_000);
        site.queue.submit("p", later)?;
        assert_eq!(site.queue.next_due_in_ms()?, Some(3_000));
        site.advance_ms(5_000);
        assert_eq!(site.queue.next_due_in_ms()?, Some(0));
        site.claim("w")?;
        assert_eq!(site.queue.next_due_in_ms()?, None);
        Ok(())
    }

    // Settings.

    #[test]
    fn empty_settings_take_the_defaults() -> TestResult {
        let settings: JobSettings = serde_json::from_str("{}")?;
        assert_eq!(
            (
                settings.workers,
                settings.retention_days,
                settings.lease_secs
            ),
            (2, 7, 60)
        );
        Ok(())
    }

    #[test]
    fn unknown_settings_are_refused() {
        assert!(serde_json::from_str::<JobSettings>(r#"{"worker": 3}"#).is_err());
    }

    #[test]
    fn zero_workers_or_a_zero_lease_are_refused() -> TestResult {
        let db = Database::open_in_memory_for_tests()?;
        for settings in [
            JobSettings {
                workers: 0,
                ..JobSettings::default()
            },
            JobSettings {
                lease_secs: 0,
                ..JobSettings::default()
            },
        ] {
            let opened = JobQueue::new(db.clone(), settings, Arc::new(SystemJobClock));
            assert!(opened.is_err());
        }
        Ok(())
    }
}
