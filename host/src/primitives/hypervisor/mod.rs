//! The hypervisor primitive: one site-wide compute inventory behind the
//! `HypervisorBackend` trait (`api.rs`), the embedded `sim` backend
//! (`sim.rs`), the `qemu` backend of real VMs on the same inventory
//! (`qemu/`), its config (`config.rs`) and the WIT glue (`wit.rs`). Every
//! state change completes as a kernel job, so it survives a restart.

mod api;
mod config;
mod qemu;
mod sim;
mod wit;

pub use api::*;
pub use config::{
    HypervisorSettings, ImageSeed, NetworkSeed, NodeSeed, QEMU_BACKEND, QemuSettings, SIM_BACKEND,
    SimSettings,
};

use crate::primitives::jobs::{JobError, Jobs, KERNEL_JOBS, OnRestart, Submission};

/// The job kind that completes a transition.
pub const COMPLETE_KIND: &str = "hypervisor.complete";

/// The inventory plus the queue its transitions complete through.
#[derive(Clone)]
pub struct Compute {
    pub hypervisor: Hypervisor,
    pub jobs: Jobs,
}

impl Compute {
    /// Queue the completion of `transition` after the backend's delay;
    /// returns the job id the plugin can follow.
    pub fn schedule(&self, transition: &Transition) -> Result<String, HvError> {
        let delay = self.hypervisor.transition_delay().as_millis() as u64;
        let submission = Submission {
            kind: COMPLETE_KIND.into(),
            payload: serde_json::json!({ "transition": transition.id, "vm": transition.vm_id })
                .to_string(),
            exclusive_key: None,
            on_restart: OnRestart::Resume,
            delay_ms: Some(delay),
        };
        let job = self
            .jobs
            .queue
            .submit(KERNEL_JOBS, submission)
            .map_err(|e: JobError| HvError::Backend(e.to_string()))?;
        self.jobs.wake.notify_one();
        Ok(job.id)
    }

    /// Records drift (see [`Hypervisor::reconcile`]) and queues the
    /// transitions that fix it; returns how many.
    pub fn reconcile(&self) -> Result<usize, HvError> {
        let transitions = self.hypervisor.reconcile()?;
        for transition in &transitions {
            self.schedule(transition)?;
        }
        Ok(transitions.len())
    }

    /// Run a kernel job: complete the transition it names (or mark it failed).
    pub fn run_kernel_job(&self, payload: &str) -> Result<String, (String, String)> {
        let transition = serde_json::from_str::<serde_json::Value>(payload)
            .ok()
            .and_then(|p| p["transition"].as_str().map(str::to_string))
            .ok_or_else(|| ("InvalidPayload".to_string(), "no transition id".to_string()))?;
        match self.hypervisor.complete(&transition) {
            Ok(vm) => {
                Ok(serde_json::json!({ "vm": vm.id, "state": vm.state.as_str() }).to_string())
            }
            Err(error) => {
                let _ = self.hypervisor.fail(&transition, &error.to_string());
                Err(("TransitionFailed".to_string(), error.to_string()))
            }
        }
    }
}
