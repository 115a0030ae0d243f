//! The jobs primitive: a durable job queue in the site database (`api.rs`,
//! `queue.rs`, `store.rs`), the WIT glue plugins reach (`wit.rs`); the
//! workers that run due steps live in `crate::workers`.

mod api;
mod queue;
mod store;
mod wit;

use std::sync::Arc;

pub use api::*;

/// The owner of the kernel's own jobs (hypervisor transitions); a reserved
/// plugin name, so no plugin can see or cancel them.
pub const KERNEL_JOBS: &str = "tessera-kernel";

/// The queue plus the bell that wakes an idle worker when a job is submitted.
#[derive(Clone)]
pub struct Jobs {
    pub queue: JobQueue,
    pub wake: Arc<tokio::sync::Notify>,
}

impl Jobs {
    pub fn new(queue: JobQueue) -> Self {
        Jobs {
            queue,
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }
}
