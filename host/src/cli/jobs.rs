//! Operator commands over the job queue: `tessera job list|show`. Jobs belong
//! to plugins; without `--plugin` every plugin of the site is searched.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use super::identity::{StoreArgs, print_list, print_one};
use crate::primitives::jobs::{JobFilter, JobInfo, JobQueue, JobState, SystemJobClock};

#[derive(Subcommand)]
pub enum JobCommand {
    /// Jobs, newest first.
    List {
        #[arg(long)]
        plugin: Option<String>,
        /// queued, running, succeeded, failed or cancelled.
        #[arg(long)]
        state: Option<JobState>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[arg(long)]
        json: bool,
    },
    /// One job with its log.
    Show {
        id: String,
        #[arg(long)]
        plugin: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: JobCommand, store: &StoreArgs) -> anyhow::Result<()> {
    let (site, db) = store.open_db()?;
    let queue = JobQueue::new(db, site.jobs.clone(), Arc::new(SystemJobClock))?;
    let plugins: Vec<String> = site
        .enabled_plugins()
        .map(|(name, _)| name.clone())
        .collect();
    match command {
        JobCommand::List {
            plugin,
            state,
            limit,
            json,
        } => {
            let filter = JobFilter {
                kind: None,
                state,
                offset: 0,
                limit: Some(limit),
            };
            let mut jobs = Vec::new();
            for name in plugin.map(|p| vec![p]).unwrap_or(plugins) {
                jobs.extend(queue.list(&name, &filter)?);
            }
            jobs.sort_by_key(|j| std::cmp::Reverse(j.created));
            print_list(
                json,
                &jobs,
                |j| job_json(j, None),
                |j| {
                    format!(
                        "{} {:<16} {:<20} {:<10} {:>3}%",
                        j.id, j.plugin, j.kind, j.state, j.progress
                    )
                },
            );
        }
        JobCommand::Show { id, plugin, json } => {
            let candidates = plugin.map(|p| vec![p]).unwrap_or(plugins);
            let job = candidates
                .iter()
                .find_map(|name| queue.get(name, &id).ok().flatten())
                .with_context(|| format!("no job {id}"))?;
            let log = queue.log_lines(&job.plugin, &job.id, 0, 10_000)?;
            print_one(json, &job_json(&job, Some(log)));
        }
    }
    Ok(())
}

fn job_json(j: &JobInfo, log: Option<Vec<String>>) -> Value {
    let mut value = json!({
        "id": j.id, "plugin": j.plugin, "kind": j.kind, "state": j.state.as_str(),
        "progress": j.progress, "payload": j.payload, "result": j.result,
        "error_code": j.error_code, "error_message": j.error_message,
        "exclusive_key": j.exclusive_key, "created": j.created, "started": j.started,
        "finished": j.finished, "attempts": j.attempts,
    });
    if let Some(log) = log {
        value["log"] = json!(log);
    }
    value
}
