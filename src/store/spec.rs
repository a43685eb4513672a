//! What a run is, as saved in its database: enough to rebuild the job and the hosts in a
//! detached coordinator or in `dts retry`, so both run exactly what was submitted.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::inventory::Host;
use crate::job::pipeline::{Pipeline, SavedStage};
use crate::job::{JobSpec, Matrix, Task, TemplateSpec};
use crate::placement::Algorithm;
use crate::placement::gate::Gates;
use crate::placement::order::Order;
use crate::placement::resources::Request;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub name: String,
    pub command: TemplateSpec,
    pub algorithm: String,
    pub key: Option<TemplateSpec>,
    pub retries: u32,
    pub timeout: Option<Duration>,
    pub workdir: Option<String>,
    pub env: Vec<(String, String)>,
    pub throttle: Option<u32>,
    pub slots: Option<u32>,
    pub seed: u64,
    pub epsilon: f64,
    pub kill_grace: Duration,
    pub probe_interval: Option<Duration>,
    pub hosts: Vec<Host>,
    pub joblog: Option<PathBuf>,
    /// JUnit XML report rewritten at the end of every session.
    #[serde(default)]
    pub junit: Option<PathBuf>,
    /// HTML report (`dts report RUN --html`) rewritten at the end of every session.
    #[serde(default)]
    pub html: Option<PathBuf>,
    /// Fault handling: see [`Faults`].
    #[serde(default)]
    pub faults: Faults,
    /// Variables passed to tasks from dts's own environment at launch, through the control
    /// line: their values are never saved, logged or put on a command line.
    #[serde(default)]
    pub secret_env: Vec<String>,
    /// Matrix axes; a task's parameters follow from its position (runs from before
    /// matrices have none).
    #[serde(default, skip_serializing_if = "Matrix::is_empty")]
    pub matrix: Matrix,
    /// `--load` / `--memfree` (runs from before gates have none).
    #[serde(default, skip_serializing_if = "Gates::is_off")]
    pub gates: Gates,
    /// `--cpus` / `--mem` / `--gpus` (runs from before requests ask for one slot).
    #[serde(default, skip_serializing_if = "Request::is_plain")]
    pub resources: Request,
    /// `--order` (runs from before it start as listed).
    #[serde(default, skip_serializing_if = "Order::is_as_listed")]
    pub order: Order,
    /// The `[slurm]` table the run's allocation was asked with: `dts retry` asks again,
    /// `dts cancel` releases it (runs without Slurm have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<crate::transport::slurm::parse::PoolSpec>,
    /// File staging (`--tf`, `--return`, `--cleanup`, `--bf`; runs from before it stage none).
    #[serde(default, skip_serializing_if = "crate::staging::Staging::is_off")]
    pub staging: crate::staging::Staging,
    /// A pipeline's `[[stage]]`s, each with its command, matrix, dependencies and task
    /// count (plain jobs, and runs from before pipelines, have none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<SavedStage>,
}

/// How a run reacts to failing tasks, silent hosts and stragglers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Wait this long before a failed task runs again.
    pub retry_delay: Duration,
    /// A connection silent this long is checked...
    pub keepalive: Duration,
    /// ...and counts as lost after this many such intervals.
    pub keepalive_count: u32,
    /// A host with this many connection failures...
    pub quarantine_after: u32,
    /// ...within this window is quarantined (retried now and then, rejoins if it answers).
    pub quarantine_window: Duration,
    /// Start a second copy of a task running longer than this many times the median.
    pub speculate: Option<f64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            retry_delay: Duration::ZERO,
            keepalive: Duration::from_secs(10),
            keepalive_count: 3,
            quarantine_after: 3,
            quarantine_window: Duration::from_secs(600),
            speculate: None,
        }
    }
}

impl RunSpec {
    /// The job's settings (its tasks are saved separately).
    pub fn job(&self, tasks: Vec<Task>) -> Result<JobSpec, Error> {
        let bad =
            |what: &str, e: String| Error::Runtime(format!("saved run has a bad {what}: {e}"));
        let names = self.matrix.names();
        Ok(JobSpec {
            name: self.name.clone(),
            command: self
                .command
                .build()
                .map_err(|e| bad("command", e.to_string()))?
                .with_params(&names),
            tasks,
            throttle: self.throttle,
            algorithm: self
                .algorithm
                .parse::<Algorithm>()
                .map_err(|e| bad("algorithm", e))?,
            key: match &self.key {
                Some(key) => Some(
                    key.build()
                        .map_err(|e| bad("key", e.to_string()))?
                        .with_params(&names),
                ),
                None => None,
            },
            retries: self.retries,
            timeout: self.timeout,
            workdir: self.workdir.clone(),
            env: self.env.clone(),
            seed: Some(self.seed),
            slots: self.slots,
            secret_env: self.secret_env.clone(),
            matrix: self.matrix.clone(),
            gates: self.gates,
            resources: self.resources,
            order: self.order,
            staging: self.staging.clone(),
            pipeline: match self.stages.as_slice() {
                [] => None,
                saved => Some(Pipeline::from_saved(saved).map_err(|e| bad("pipeline", e))?),
            },
        })
    }
}
