//! Durations learned from earlier runs: the start order `--order longest-first` takes from
//! the task history, and what each run adds to it when it ends ([`store::history`]). The
//! history only informs: when it cannot be read or written the run goes on as listed, with
//! a warning.

use std::collections::HashMap;
use std::path::Path;

use crate::inventory::Host;
use crate::job::JobSpec;
use crate::placement::order::{self, Order};
use crate::placement::speed::Sample;
use crate::placement::{self, Algorithm};
use crate::runner::{Outcome, RunOutcome};
use crate::store::history::{History, Timing};

/// The state directory a run directory lives in.
fn state_root(run_dir: &Path) -> Option<&Path> {
    run_dir.parent()
}

/// Task positions in the order they should start (empty: as listed).
pub fn queue_order(job: &JobSpec, run_dir: &Path, quiet: bool) -> Vec<usize> {
    if job.order != Order::LongestFirst {
        return Vec::new();
    }
    let known = match state_root(run_dir).map(History::open_in) {
        Some(Ok(history)) => history.durations(&job.name),
        Some(Err(e)) => Err(e),
        None => return Vec::new(),
    };
    let known = match known {
        Ok(known) => known,
        Err(e) => {
            eprintln!("dts: warning: {e}; tasks start as listed");
            return Vec::new();
        }
    };
    let recorded: Vec<Option<f64>> = job
        .tasks
        .iter()
        .map(|t| known.get(&job.key_of(t)).copied())
        .collect();
    let arranged = order::longest_first(&recorded);
    if !quiet {
        eprintln!("dts: {}", order::note(&arranged, job.tasks.len()));
    }
    arranged.order
}

/// The work (seconds on a speed-1 host) of each of `job`'s tasks by position, as its last
/// recorded run gives it: least-load keeps known long tasks off slow hosts
/// ([`crate::placement::Placement::know_work`]). Empty when the job does not use least-load
/// or nothing is recorded. `speed_of` gives a host's speed by name.
pub fn known_work(
    job: &JobSpec,
    run_dir: &Path,
    speed_of: impl Fn(&str) -> f64,
) -> Vec<Option<f64>> {
    if job.algorithm != Algorithm::LeastLoad {
        return Vec::new();
    }
    let timings = match state_root(run_dir).map(History::open_in) {
        Some(Ok(history)) => history.timings(&job.name),
        Some(Err(e)) => Err(e),
        None => return Vec::new(),
    };
    let timings = match timings {
        Ok(timings) if !timings.is_empty() => timings,
        Ok(_) => return Vec::new(),
        Err(e) => {
            tracing::debug!("task history unread: {e}");
            return Vec::new();
        }
    };
    let work: Vec<Option<f64>> = job
        .tasks
        .iter()
        .map(|t| {
            let (seconds, host) = timings.get(&job.key_of(t))?;
            Some(seconds * speed_of(host))
        })
        .collect();
    let known = work.iter().flatten().count();
    tracing::info!(
        "least-load knows the work of {known} of {} tasks from earlier runs of '{}'",
        work.len(),
        job.name
    );
    work
}

/// Measured speeds this close to 1 are taken as 1.
const SPEED_JITTER: f64 = 0.1;

/// Host speeds measured from earlier runs of `job` ([`placement::speed`]), applied to the
/// hosts whose inventory sets no `weight` (a weight of 1, the default, counts as none).
/// Returns the hosts with the speeds used, and says which with `-v`.
pub fn measured_speeds(job: &str, run_dir: &Path, hosts: &[Host]) -> Vec<Host> {
    let times = match state_root(run_dir).map(History::open_in) {
        Some(Ok(history)) => history.host_times(job),
        Some(Err(e)) => Err(e),
        None => return hosts.to_vec(),
    };
    let times = match times {
        Ok(times) => times,
        Err(e) => {
            tracing::debug!("task history unread: {e}");
            return hosts.to_vec();
        }
    };
    let samples: Vec<Sample> = times
        .iter()
        .map(|t| Sample {
            key: &t.key,
            host: &t.host,
            seconds: t.seconds,
        })
        .collect();
    let speeds = placement::speed::estimate(&samples);
    let mut used = Vec::new();
    let hosts = hosts
        .iter()
        .map(|h| {
            let mut h = h.clone();
            // Within 10 % of the average is run-time jitter more than speed.
            if let Some(&speed) = speeds.get(&h.name)
                && h.weight == 1.0
                && (speed - 1.0).abs() > SPEED_JITTER
            {
                h.weight = speed;
                used.push(format!("{} {speed:.2}", h.name));
            }
            h
        })
        .collect();
    if !used.is_empty() {
        tracing::info!(
            "host speeds measured from earlier runs of '{job}' (where no weight is set): {}",
            used.join(", ")
        );
    }
    hosts
}

/// Each task's key, by `seq`, kept before the job moves into the run.
pub fn keys(job: &JobSpec) -> HashMap<u32, Vec<u8>> {
    job.tasks.iter().map(|t| (t.seq, job.key_of(t))).collect()
}

/// Adds what this session's successful tasks took to the history of `job`.
pub fn record(
    job: &str,
    keys: &HashMap<u32, Vec<u8>>,
    hosts: &[String],
    outcome: &RunOutcome,
    run_dir: &Path,
) {
    let timings: Vec<Timing> = outcome
        .tasks
        .iter()
        .filter(|t| t.outcome == Outcome::Succeeded)
        .filter_map(|t| {
            Some(Timing {
                key: keys.get(&t.seq)?.clone(),
                seconds: t.run_time?.as_secs_f64(),
                host: hosts.get(t.host?)?.clone(),
            })
        })
        .collect();
    if timings.is_empty() {
        return;
    }
    let Some(root) = state_root(run_dir) else {
        return;
    };
    if let Err(e) = History::open_in(root).and_then(|h| h.record(job, &timings)) {
        eprintln!("dts: warning: the run times were not recorded: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::Timing;

    #[test]
    fn speeds_from_history_replace_only_unset_weights() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let base = crate::inventory::local_default(&crate::inventory::Env::from_process()).hosts[0]
            .clone();
        let host = |name: &str, weight: f64| Host {
            name: name.into(),
            weight,
            ..base.clone()
        };
        let hosts = [host("h1", 1.0), host("h2", 1.0), host("h3", 2.0)];
        let mut timings = Vec::new();
        for (key, seconds) in [("a", 1.0), ("b", 2.0), ("c", 3.0)] {
            for (name, factor) in [("h1", 1.0), ("h2", 2.0), ("h3", 1.0)] {
                timings.push(Timing {
                    key: key.as_bytes().to_vec(),
                    seconds: seconds * factor,
                    host: name.into(),
                });
            }
        }
        History::open_in(&state)
            .unwrap()
            .record("sweep", &timings)
            .unwrap();
        let measured = measured_speeds("sweep", &state.join("run-1"), &hosts);
        let ratio = measured[0].weight / measured[1].weight;
        assert!((ratio - 2.0).abs() < 1e-6, "{ratio}");
        assert!(measured[0].weight > 1.1, "{}", measured[0].weight);
        assert_eq!(measured[2].weight, 2.0, "a weight the inventory sets stays");
        let other = measured_speeds("other", &state.join("run-1"), &hosts);
        assert_eq!(other, hosts.to_vec());
    }
}
