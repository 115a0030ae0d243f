//! The kernel's background work: job workers that run each due step in a
//! fresh plugin instance, and the periodic upkeep (lease expiry, retention).

use std::sync::Arc;
use std::time::Duration;

use crate::primitives::hypervisor::Compute;
use crate::primitives::jobs::{Claimed, JobQueue, KERNEL_JOBS, Outcome};
use crate::runtime::{CallError, Job, JobOutcome};
use crate::server::Kernel;

/// The longest an idle worker sleeps before looking at the queue again.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How often leases are checked and old jobs purged.
const UPKEEP_EVERY: Duration = Duration::from_secs(60);

/// Recover jobs a dead kernel left running, then start the workers and the
/// upkeep task on the current tokio runtime.
pub fn start(kernel: Arc<Kernel>, compute: Compute) {
    let jobs = &compute.jobs;
    match jobs.queue.recover_after_restart() {
        Ok((resumed, failed)) if resumed + failed > 0 => {
            tracing::info!(
                resumed,
                failed,
                "jobs left running by the last kernel recovered"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "could not recover jobs after restart"),
    }
    let workers = jobs.queue.settings().workers;
    for n in 0..workers {
        let worker_id = format!("{}-{n}", std::process::id());
        tokio::spawn(work(kernel.clone(), compute.clone(), worker_id));
    }
    tokio::spawn(upkeep(jobs.queue.clone()));
    tokio::spawn(reconcile_vms(compute.clone()));
}

/// How often the records are checked against the VMs that really run.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);

async fn reconcile_vms(compute: Compute) {
    let mut every = tokio::time::interval(RECONCILE_EVERY);
    loop {
        every.tick().await;
        let compute = compute.clone();
        match tokio::task::spawn_blocking(move || compute.reconcile()).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(vms = n, "stopped VMs whose process was gone"),
            Ok(Err(e)) => tracing::warn!(error = %e, "checking VMs against their processes failed"),
            _ => {}
        }
    }
}

async fn work(kernel: Arc<Kernel>, compute: Compute, worker_id: String) {
    let jobs = &compute.jobs;
    loop {
        match jobs.queue.claim(&worker_id) {
            Ok(Some(job)) if job.plugin == KERNEL_JOBS => {
                // Off the async workers: the qemu backend waits on processes.
                let run = compute.clone();
                let payload = job.payload.clone();
                let step = tokio::task::spawn_blocking(move || run.run_kernel_job(&payload));
                let outcome = match leased(&jobs.queue, &job.id, &worker_id, step).await {
                    Ok(Ok(result)) => Outcome::Done(result),
                    Ok(Err((code, message))) => Outcome::Failed { code, message },
                    Err(e) => Outcome::Failed {
                        code: "KernelJobPanicked".into(),
                        message: e.to_string(),
                    },
                };
                settle(&jobs.queue, &worker_id, &job, outcome);
            }
            Ok(Some(job)) => run_step(&kernel, &jobs.queue, &worker_id, job).await,
            Ok(None) => {
                let due = jobs.queue.next_due_in_ms().ok().flatten();
                let wait = due.map_or(IDLE_POLL, |ms| Duration::from_millis(ms).min(IDLE_POLL));
                tokio::select! {
                    () = jobs.wake.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "claiming a job failed");
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
}

/// Run one step and settle it; the lease is renewed while the step runs.
async fn run_step(kernel: &Kernel, queue: &JobQueue, worker_id: &str, job: Claimed) {
    let outcome = match kernel.runtime.plugin_index(&job.plugin) {
        None => Outcome::Failed {
            code: "PluginUnavailable".into(),
            message: format!("plugin {} is not loaded on this kernel", job.plugin),
        },
        Some(index) => {
            let step = Job {
                id: job.id.clone(),
                kind: job.kind.clone(),
                payload: job.payload.clone(),
                attempt: job.attempt,
                state: job.state.clone(),
            };
            outcome_of(
                leased(
                    queue,
                    &job.id,
                    worker_id,
                    kernel.runtime.run_job(index, &step),
                )
                .await,
            )
        }
    };
    settle(queue, worker_id, &job, outcome);
}

/// Runs `step`, renewing the job's lease while it runs.
async fn leased<T>(
    queue: &JobQueue,
    job: &str,
    worker_id: &str,
    step: impl std::future::Future<Output = T>,
) -> T {
    let renew_every = Duration::from_millis(queue.settings().lease_secs * 1000 / 3);
    let renew = async {
        loop {
            tokio::time::sleep(renew_every).await;
            if let Err(e) = queue.renew(job, worker_id) {
                tracing::warn!(job, error = %e, "lease renewal failed");
            }
        }
    };
    tokio::select! {
        result = step => result,
        () = renew => unreachable!("the renewal loop never ends"),
    }
}

fn settle(queue: &JobQueue, worker_id: &str, job: &Claimed, outcome: Outcome) {
    if let Outcome::Failed { code, message } = &outcome {
        tracing::warn!(job = %job.id, plugin = %job.plugin, kind = %job.kind, code, message, "job step failed");
    }
    if let Err(e) = queue.finish(&job.id, worker_id, outcome) {
        tracing::error!(job = %job.id, error = %e, "could not record a job step");
    }
}

/// A trap or a time-out fails the job, never the kernel.
fn outcome_of(result: Result<JobOutcome, CallError>) -> Outcome {
    match result {
        Ok(JobOutcome::Done(result)) => Outcome::Done(result),
        Ok(JobOutcome::Failed((code, message))) => Outcome::Failed { code, message },
        Ok(JobOutcome::ContinueAfter((delay_ms, state))) => {
            Outcome::ContinueAfter { delay_ms, state }
        }
        Err(error) => {
            let code = match error {
                CallError::Timeout(_) => "JobTimeout",
                CallError::MemoryCap(_) => "JobMemoryLimit",
                CallError::Busy => "Busy",
                CallError::Trap(_) => "JobTrapped",
                // Jobs answer no response; listed for completeness.
                CallError::ResponseTooLarge { .. } => "JobTrapped",
            };
            Outcome::Failed {
                code: code.into(),
                message: error.to_string(),
            }
        }
    }
}

async fn upkeep(queue: JobQueue) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    loop {
        every.tick().await;
        if let Err(e) = queue.expire_leases() {
            tracing::warn!(error = %e, "job lease expiry failed");
        }
        if let Err(e) = queue.purge() {
            tracing::warn!(error = %e, "job purge failed");
        }
    }
}
