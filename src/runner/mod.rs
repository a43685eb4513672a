//! The runner: starts connections and drives the dispatcher, the single owner of run state.
//!
//! Connections report [`Event`](crate::transport::Event)s on one channel; the dispatcher
//! reacts to them, to timers, to signals and to control requests in one select loop, and is
//! the only code that changes task or host state. Every transition goes to the run store
//! before the dispatcher acts on it.

pub mod connector;
mod dispatcher;
mod gating;
pub mod hosts;
pub mod joblog;
pub mod output;
mod stages;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::inventory::Host;
use crate::job::JobSpec;
use crate::store::{LeftOut, RunSpec, RunWriter};
use crate::transport::ExitStatus;

pub use dispatcher::Dispatcher;

/// Everything a run needs, resolved.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub run_id: String,
    /// The run's saved settings (hosts, kill grace, faults, ...).
    pub spec: RunSpec,
    /// The job; its `tasks` are the ones to run now (all of them, or what `retry` requeued).
    pub job: JobSpec,
    /// Attempts each task of `job.tasks` already had (0 on a fresh run).
    pub prior_attempts: Vec<u32>,
    /// Tasks in the whole run (`DTS_TASK_COUNT`).
    pub total_tasks: usize,
    /// The run's tasks this session does not run and that had not succeeded.
    pub left_out: LeftOut,
    /// The hosts that may run tasks, in inventory order.
    pub hosts: Vec<Arc<Host>>,
    /// Values of `spec.secret_env`, read from dts's environment for this session only.
    pub secrets: Vec<(String, String)>,
    /// How task output is shown on stdout and stderr (`None` for detached runs).
    pub output: output::OutputMode,
    /// Live progress on stderr.
    pub progress: crate::report::progress::Mode,
    /// No notes on stderr (host trouble, retries, pauses); errors still print.
    pub quiet: bool,
    /// Positions in `job.tasks` in the order they start (`--order`); empty: as listed.
    pub queue_order: Vec<usize>,
    /// What earlier sessions of a pipeline left: tasks that cannot run now, and where the
    /// tasks that succeeded ran (empty for a fresh run or a plain job).
    pub earlier: Earlier,
    /// Work of each of `job.tasks` known from earlier runs, for placement (empty: none).
    pub known_work: Vec<Option<f64>>,
}

pub use stages::Earlier;

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Its final attempt failed with this status.
    Failed(ExitStatus),
    /// Its final attempt ran past `--timeout`.
    TimedOut,
    /// Stopped by `dts cancel`.
    Cancelled,
    /// Never finished: interrupted, or no host left to run it.
    NotRun(String),
    /// Never ran: a task it depends on (in a pipeline) failed.
    Skipped,
}

/// Why a run stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// `dts cancel`.
    Cancelled,
    /// The run store could not be written: nothing may run that cannot be recorded.
    StoreFailed,
}

impl Stop {
    /// What becomes of the tasks a stop ends before they finish.
    pub fn outcome(self) -> Outcome {
        match self {
            Stop::Interrupted => Outcome::NotRun("interrupted".into()),
            Stop::Cancelled => Outcome::Cancelled,
            Stop::StoreFailed => Outcome::NotRun("not recorded: the run store failed".into()),
        }
    }
}

/// The final record of one task.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub seq: u32,
    pub index: u64,
    pub outcome: Outcome,
    /// Host index of the final attempt.
    pub host: Option<usize>,
    pub attempts: u32,
    pub started: Option<Instant>,
    pub finished: Option<Instant>,
    /// Run time of the final attempt.
    pub run_time: Option<Duration>,
    /// Consistent-hash: whether the final attempt ran on the key's first-choice host.
    pub hit: Option<bool>,
}

/// One attempt that ran, for utilisation.
#[derive(Debug, Clone, Copy)]
pub struct AttemptRecord {
    pub host: usize,
    pub started: Instant,
    pub finished: Instant,
}

/// What a host did during the run.
#[derive(Debug, Clone)]
pub struct HostRecord {
    pub name: String,
    /// Slots it ran with (0 if it never came up).
    pub slots: u32,
    pub weight: f64,
    /// Why it left the run, if it did.
    pub error: Option<String>,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    pub started: Instant,
    pub finished: Instant,
    pub tasks: Vec<TaskRecord>,
    pub attempts: Vec<AttemptRecord>,
    pub hosts: Vec<HostRecord>,
    pub stopped: Option<Stop>,
    /// No host could run the tasks that were left.
    pub no_host: bool,
    pub requeues: u32,
    /// The run's tasks this session did not run and that had not succeeded.
    pub left_out: LeftOut,
    /// Why the run store stopped recording, if it did (the run then stopped).
    pub store_error: Option<String>,
}

impl RunOutcome {
    /// Every task of the run succeeded: those of this session and those it left out.
    pub fn all_succeeded(&self) -> bool {
        self.left_out.is_empty() && self.tasks.iter().all(|t| t.outcome == Outcome::Succeeded)
    }

    /// The run's final state, as the store records it: succeeded only when every task of
    /// the run did, including those this session left out.
    pub fn state(&self) -> &'static str {
        let session_failed = self.tasks.iter().any(|t| {
            matches!(
                t.outcome,
                Outcome::Failed(_) | Outcome::TimedOut | Outcome::Skipped
            )
        });
        match self.stopped {
            Some(Stop::Cancelled) => "cancelled",
            Some(Stop::Interrupted | Stop::StoreFailed) => "interrupted",
            None if self.no_host => "no-host",
            None if self.all_succeeded() => "succeeded",
            None if session_failed || self.left_out.failed > 0 => "failed",
            None if self.left_out.cancelled > 0 => "cancelled",
            None if self.left_out.not_run > 0 => "interrupted",
            None => "failed",
        }
    }
}

/// Runs the job to completion on a fresh single-threaded runtime, recording it in `store`.
pub fn run(config: RunConfig, store: RunWriter) -> Result<RunOutcome, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move { Dispatcher::new(config, store)?.run().await })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(tasks: &[Outcome], left_out: LeftOut) -> RunOutcome {
        let now = Instant::now();
        RunOutcome {
            run_id: "r".into(),
            started: now,
            finished: now,
            tasks: tasks
                .iter()
                .enumerate()
                .map(|(i, o)| TaskRecord {
                    seq: i as u32 + 1,
                    index: i as u64,
                    outcome: o.clone(),
                    host: None,
                    attempts: 1,
                    started: None,
                    finished: None,
                    run_time: None,
                    hit: None,
                })
                .collect(),
            attempts: vec![],
            hosts: vec![],
            stopped: None,
            no_host: false,
            requeues: 0,
            left_out,
            store_error: None,
        }
    }

    #[test]
    fn retry_failed_calls_a_run_succeeded_only_when_every_task_of_it_succeeded() {
        let ok = [Outcome::Succeeded];
        let left = |failed, cancelled, not_run| LeftOut {
            failed,
            cancelled,
            not_run,
        };
        assert_eq!(outcome(&ok, LeftOut::default()).state(), "succeeded");
        assert!(outcome(&ok, LeftOut::default()).all_succeeded());
        for (left_out, state) in [
            (left(0, 0, 3), "interrupted"),
            (left(0, 2, 0), "cancelled"),
            (left(1, 2, 3), "failed"),
        ] {
            let run = outcome(&ok, left_out);
            assert_eq!(run.state(), state, "{left_out:?}");
            assert!(!run.all_succeeded());
        }
        let failed = [Outcome::Succeeded, Outcome::TimedOut];
        assert_eq!(outcome(&failed, left(0, 2, 0)).state(), "failed");
    }
}
