//! The `jobs` interface; every call answers `unsupported` for now.

use crate::primitives::unsupported;
use crate::runtime::bindings::tessera::kernel::jobs::{
    Host, JobError, JobFilter, JobInfo, JobSubmission,
};
use crate::runtime::state::InstanceState;

fn not_yet<T>() -> Result<T, JobError> {
    Err(JobError::Unsupported(unsupported("jobs")))
}

impl Host for InstanceState {
    fn submit(&mut self, _job: JobSubmission) -> Result<JobInfo, JobError> {
        not_yet()
    }
    fn get(&mut self, _id: String) -> Result<Option<JobInfo>, JobError> {
        not_yet()
    }
    fn list(&mut self, _filter: JobFilter) -> Result<Vec<JobInfo>, JobError> {
        not_yet()
    }
    fn cancel(&mut self, _id: String) -> Result<JobInfo, JobError> {
        not_yet()
    }
    fn log_lines(
        &mut self,
        _id: String,
        _offset: u32,
        _limit: u32,
    ) -> Result<Vec<String>, JobError> {
        not_yet()
    }
    fn progress(&mut self, _id: String, _percent: u8) -> Result<(), JobError> {
        not_yet()
    }
    fn append_log(&mut self, _id: String, _line: String) -> Result<(), JobError> {
        not_yet()
    }
}
