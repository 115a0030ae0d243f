//! The `jobs` interface: a plugin submits, reads and cancels its own jobs and,
//! inside `run-job`, reports progress and log lines. Always scoped to the
//! calling plugin.

use super::{JobError, JobFilter, JobInfo, JobState, Jobs, OnRestart, Submission};
use crate::runtime::bindings::tessera::kernel::jobs as wit;
use crate::runtime::state::InstanceState;

type WitResult<T> = Result<T, wit::JobError>;

impl InstanceState {
    fn jobs(&self) -> WitResult<&Jobs> {
        self.plugin
            .jobs
            .as_ref()
            .ok_or_else(|| wit::JobError::Unsupported(crate::primitives::unsupported("jobs")))
    }
}

impl wit::Host for InstanceState {
    fn submit(&mut self, job: wit::JobSubmission) -> WitResult<wit::JobInfo> {
        let jobs = self.jobs()?;
        let submission = Submission {
            kind: job.kind,
            payload: job.payload,
            exclusive_key: job.exclusive_key,
            on_restart: match job.on_restart {
                wit::OnRestart::Resume => OnRestart::Resume,
                wit::OnRestart::Fail => OnRestart::Fail,
            },
            delay_ms: job.delay_ms,
        };
        let info = jobs.queue.submit(&self.plugin.name, submission)?;
        jobs.wake.notify_one();
        Ok(info.into())
    }

    fn get(&mut self, id: String) -> WitResult<Option<wit::JobInfo>> {
        Ok(self
            .jobs()?
            .queue
            .get(&self.plugin.name, &id)?
            .map(Into::into))
    }

    fn list(&mut self, filter: wit::JobFilter) -> WitResult<Vec<wit::JobInfo>> {
        let filter = JobFilter {
            kind: filter.kind,
            state: filter.state.map(Into::into),
            offset: filter.offset,
            limit: filter.limit,
        };
        let jobs = self.jobs()?.queue.list(&self.plugin.name, &filter)?;
        Ok(jobs.into_iter().map(Into::into).collect())
    }

    fn cancel(&mut self, id: String) -> WitResult<wit::JobInfo> {
        Ok(self.jobs()?.queue.cancel(&self.plugin.name, &id)?.into())
    }

    fn log_lines(&mut self, id: String, offset: u32, limit: u32) -> WitResult<Vec<String>> {
        Ok(self
            .jobs()?
            .queue
            .log_lines(&self.plugin.name, &id, offset, limit)?)
    }

    fn progress(&mut self, id: String, percent: u8) -> WitResult<()> {
        Ok(self
            .jobs()?
            .queue
            .progress(&self.plugin.name, &id, percent)?)
    }

    fn append_log(&mut self, id: String, line: String) -> WitResult<()> {
        Ok(self
            .jobs()?
            .queue
            .append_log(&self.plugin.name, &id, &line)?)
    }
}

impl From<JobError> for wit::JobError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::NotFound => wit::JobError::NotFound,
            JobError::ExclusiveBusy(id) => wit::JobError::ExclusiveBusy(id),
            JobError::Invalid(m) => wit::JobError::Invalid(m),
            JobError::Backend(detail) => {
                tracing::error!(error = %detail, "jobs backend failure");
                wit::JobError::Backend("the job queue failed; see the kernel log".into())
            }
        }
    }
}

impl From<wit::JobState> for JobState {
    fn from(s: wit::JobState) -> Self {
        match s {
            wit::JobState::Queued => JobState::Queued,
            wit::JobState::Running => JobState::Running,
            wit::JobState::Succeeded => JobState::Succeeded,
            wit::JobState::Failed => JobState::Failed,
            wit::JobState::Cancelled => JobState::Cancelled,
        }
    }
}

impl From<JobState> for wit::JobState {
    fn from(s: JobState) -> Self {
        match s {
            JobState::Queued => wit::JobState::Queued,
            JobState::Running => wit::JobState::Running,
            JobState::Succeeded => wit::JobState::Succeeded,
            JobState::Failed => wit::JobState::Failed,
            JobState::Cancelled => wit::JobState::Cancelled,
        }
    }
}

impl From<JobInfo> for wit::JobInfo {
    fn from(j: JobInfo) -> Self {
        wit::JobInfo {
            id: j.id,
            kind: j.kind,
            state: j.state.into(),
            progress: j.progress,
            payload: j.payload,
            result: j.result,
            error_code: j.error_code,
            error_message: j.error_message,
            exclusive_key: j.exclusive_key,
            created: j.created,
            started: j.started,
            finished: j.finished,
            attempts: j.attempts,
        }
    }
}
