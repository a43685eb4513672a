//! The run document: what `dts submit --json` prints at the end of a run and what
//! `dts status RUN --json` prints about any run, built from the store (pure: the caller
//! supplies each failed task's last stderr line).

use serde::Serialize;

use crate::stats::Stats;
use crate::store::reader::{RunDetail, TaskRow};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDocument {
    pub run_id: String,
    pub name: String,
    pub state: String,
    pub algorithm: String,
    /// Epoch seconds.
    pub created: f64,
    /// The coordinator process of the latest session, and the machine it ran on.
    pub coordinator: Option<Coordinator>,
    pub tasks: TaskCounts,
    pub stats: StatsDoc,
    pub hosts: Vec<HostDoc>,
    pub failures: Vec<FailureDoc>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub running: Vec<RunningDoc>,
    /// A pipeline's tasks by state, stage by stage in written order (none for a plain job).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageDoc>,
}

/// One stage of a pipeline: its tasks by state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StageDoc {
    pub name: String,
    pub total: usize,
    pub succeeded: usize,
    /// Failed or timed out.
    pub failed: usize,
    /// Never ran: a task they depend on failed.
    pub skipped: usize,
    pub cancelled: usize,
    pub not_run: usize,
    pub running: usize,
    pub queued: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coordinator {
    pub pid: u32,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskCounts {
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub not_run: usize,
    pub running: usize,
    pub queued: usize,
    /// Recorded as running when the run's coordinator died: how they ended is unknown.
    pub lost: usize,
    /// Never ran because a task they depend on failed (pipelines only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsDoc {
    pub atct_s: f64,
    pub wait_mean_s: f64,
    pub wait_p95_s: f64,
    pub run_mean_s: f64,
    pub run_p50_s: f64,
    pub run_p95_s: f64,
    pub run_max_s: f64,
    pub makespan_s: f64,
    pub ru: f64,
    pub lbd: f64,
    pub lb_ratio: f64,
    pub throughput: f64,
    pub hit_rate: Option<f64>,
    pub retries: usize,
    pub requeues: usize,
    /// Tasks that ran to their end (succeeded or failed), the ones ATCT, the run times,
    /// the LB ratio and the throughput count; 0 when the run stopped before any did.
    pub completed: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostDoc {
    pub name: String,
    pub slots: u32,
    /// The GPUs it had when it connected (the inventory's `gpus`, else `nvidia-smi -L`).
    pub gpus: u32,
    /// Tasks whose final attempt ran here, and those among them that failed.
    pub tasks: usize,
    pub failed: usize,
    /// Every attempt that ran here, and the task failures among them.
    pub attempts: usize,
    pub failed_attempts: usize,
    /// Tasks whose final attempt ran here to its end: what the run times summarise.
    pub completed: usize,
    /// Whether it ever connected during the run; RU and LBD leave out hosts that did not.
    pub connected: bool,
    pub busy_s: f64,
    pub ru: f64,
    pub mean_run_s: f64,
    pub p95_run_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Failures with the same cause, folded into one entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureDoc {
    pub cause: String,
    pub count: usize,
    /// Task indices, compressed: `3-7,12`.
    pub tasks: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningDoc {
    pub index: u64,
    pub host: String,
    pub attempt: u32,
    pub elapsed_s: f64,
}

/// Builds the document; `last_stderr` gives a failed task's last stderr line.
pub fn build(
    detail: &RunDetail,
    stats: &Stats,
    now: f64,
    last_stderr: impl Fn(&TaskRow) -> Option<String>,
) -> RunDocument {
    let c = &detail.run.counts;
    // Tasks still marked running in a run no coordinator holds ran when it died.
    let live = is_live(&detail.run.state);
    let lost = if live { 0 } else { c.running };
    let retries = detail
        .attempts
        .iter()
        .filter(|a| matches!(a.outcome.as_deref(), Some("failed" | "timed-out")))
        .count();
    let requeues = detail
        .attempts
        .iter()
        .filter(|a| a.outcome.as_deref() == Some("requeued"))
        .count();
    RunDocument {
        run_id: detail.run.id.clone(),
        name: detail.run.name.clone(),
        state: detail.run.state.clone(),
        algorithm: detail.run.algorithm.clone(),
        created: detail.run.created,
        coordinator: detail
            .run
            .pid
            .zip(detail.run.hostname.clone())
            .map(|(pid, host)| Coordinator { pid, host }),
        tasks: TaskCounts {
            total: detail.run.total,
            succeeded: c.succeeded,
            failed: c.failed_total(),
            cancelled: c.cancelled,
            not_run: c.not_run,
            running: c.running - lost,
            queued: c.queued,
            lost,
            skipped: c.skipped,
        },
        stats: StatsDoc {
            atct_s: stats.atct,
            wait_mean_s: stats.wait.mean,
            wait_p95_s: stats.wait.p95,
            run_mean_s: stats.run.mean,
            run_p50_s: stats.run.p50,
            run_p95_s: stats.run.p95,
            run_max_s: stats.run.max,
            makespan_s: stats.makespan,
            ru: stats.ru,
            lbd: stats.lbd,
            lb_ratio: stats.lb_ratio,
            throughput: stats.throughput,
            hit_rate: stats.hit_rate,
            // Attempts that failed but were not the last of their task were retried.
            retries: retries.saturating_sub(c.failed_total()),
            requeues,
            completed: stats.completed,
        },
        hosts: detail
            .hosts
            .iter()
            .zip(&stats.hosts)
            .map(|(h, s)| HostDoc {
                name: h.name.clone(),
                slots: h.slots,
                gpus: h.gpus,
                tasks: s.tasks,
                failed: s.failed,
                attempts: s.attempts,
                failed_attempts: s.failed_attempts,
                completed: s.completed,
                // Slots are recorded when a host connects, and stay 0 until it does.
                connected: h.slots > 0,
                busy_s: s.busy,
                ru: s.ru,
                mean_run_s: s.run.mean,
                p95_run_s: s.run.p95,
                error: h.error.clone().filter(|_| h.state != "up"),
            })
            .collect(),
        failures: fold_failures(detail, last_stderr),
        running: if live {
            running(detail, now)
        } else {
            Vec::new()
        },
        stages: stages(detail),
    }
}

/// A pipeline's stages with their tasks by state: stage i holds the next `tasks` seqs.
fn stages(detail: &RunDetail) -> Vec<StageDoc> {
    let mut first = 1u64;
    detail
        .spec
        .stages
        .iter()
        .map(|stage| {
            let seqs = first..first + stage.tasks as u64;
            first = seqs.end;
            let mut doc = StageDoc {
                name: stage.name.clone(),
                total: stage.tasks,
                ..StageDoc::default()
            };
            for task in detail
                .tasks
                .iter()
                .filter(|t| seqs.contains(&u64::from(t.seq)))
            {
                let count = match task.state.as_str() {
                    "succeeded" => &mut doc.succeeded,
                    "failed" | "timed-out" => &mut doc.failed,
                    "skipped" => &mut doc.skipped,
                    "cancelled" => &mut doc.cancelled,
                    "running" => &mut doc.running,
                    "queued" => &mut doc.queued,
                    _ => &mut doc.not_run,
                };
                *count += 1;
            }
            doc
        })
        .collect()
}

/// One line per stage: `stage work: 3 tasks: 2 succeeded, 1 skipped (dependency failed)`,
/// naming only the states some task is in.
pub fn stage_lines(stages: &[StageDoc]) -> String {
    let mut text = String::new();
    for s in stages {
        let parts: Vec<String> = [
            (s.succeeded, "succeeded"),
            (s.failed, "failed"),
            (s.skipped, "skipped (dependency failed)"),
            (s.cancelled, "cancelled"),
            (s.not_run, "not run"),
            (s.running, "running"),
            (s.queued, "queued"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        let plural = if s.total == 1 { "" } else { "s" };
        text.push_str(&format!(
            "stage {}: {} task{plural}: {}\n",
            s.name,
            s.total,
            parts.join(", ")
        ));
    }
    text
}

/// Whether the hosts tables get a GPU column: only when some host has GPUs.
pub fn any_gpus(hosts: &[HostDoc]) -> bool {
    hosts.iter().any(|h| h.gpus > 0)
}

/// Whether a coordinator runs the run now (the reader turns a dead one's `running` into
/// `interrupted`).
pub fn is_live(state: &str) -> bool {
    matches!(state, "running" | "paused" | "queued")
}

fn running(detail: &RunDetail, now: f64) -> Vec<RunningDoc> {
    detail
        .tasks
        .iter()
        .filter(|t| t.state == "running")
        .filter_map(|t| {
            let attempt = detail
                .attempts
                .iter()
                .rev()
                .find(|a| a.seq == t.seq && a.outcome.is_none())?;
            Some(RunningDoc {
                index: t.index,
                host: attempt.host.clone(),
                attempt: attempt.attempt,
                elapsed_s: (now - attempt.started.unwrap_or(attempt.dispatched)).max(0.0),
            })
        })
        .collect()
}

/// Why a task failed, in one line: its status and, if any, its last stderr line.
pub fn cause(task: &TaskRow, last_stderr: Option<String>) -> String {
    let status = match (task.state.as_str(), &task.status) {
        ("timed-out", _) => "timed out".to_string(),
        (_, Some(status)) => status.to_string(),
        (_, None) => task.reason.clone().unwrap_or_else(|| task.state.clone()),
    };
    match last_stderr {
        Some(line) if !line.is_empty() => format!("{status}: {line}"),
        _ => status,
    }
}

/// Failed tasks grouped by cause, most frequent first, like `dshbak -c`.
pub fn fold_failures(
    detail: &RunDetail,
    last_stderr: impl Fn(&TaskRow) -> Option<String>,
) -> Vec<FailureDoc> {
    let mut groups: Vec<(String, Vec<u64>)> = Vec::new();
    for task in detail
        .tasks
        .iter()
        .filter(|t| t.state == "failed" || t.state == "timed-out")
    {
        let cause = cause(task, last_stderr(task));
        match groups.iter_mut().find(|(c, _)| *c == cause) {
            Some((_, tasks)) => tasks.push(task.index),
            None => groups.push((cause, vec![task.index])),
        }
    }
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.1[0].cmp(&b.1[0])));
    groups
        .into_iter()
        .map(|(cause, tasks)| FailureDoc {
            cause,
            count: tasks.len(),
            tasks: compress(tasks),
        })
        .collect()
}

/// `[3,4,5,6,7,12]` → `3-7,12`.
pub fn compress(mut indices: Vec<u64>) -> String {
    indices.sort_unstable();
    indices.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Like [`compress`], with Slurm's steps for evenly spaced runs (`1-97:4`), so a host's
/// share of a round-robin plan stays one short range: `[1,5,9,13,20]` → `1-13:4,20`.
pub fn compress_stepped(mut indices: Vec<u64>) -> String {
    indices.sort_unstable();
    indices.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let step = indices.get(i + 1).map(|next| next - start);
        let mut end = i;
        while let Some(step) = step {
            if indices.get(end + 1) != Some(&(indices[end] + step)) {
                break;
            }
            end += 1;
        }
        let run = end - i + 1;
        parts.push(match step {
            Some(1) if run >= 2 => format!("{start}-{}", indices[end]),
            Some(step) if run >= 3 => format!("{start}-{}:{step}", indices[end]),
            _ => {
                end = i;
                start.to_string()
            }
        });
        i = end + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_stepped_ranges_as_slurm_writes_them() {
        assert_eq!(compress_stepped(vec![1, 5, 9, 13, 20]), "1-13:4,20");
        assert_eq!(compress_stepped(vec![1, 2, 3, 5, 7, 9]), "1-3,5-9:2");
        assert_eq!(compress_stepped(vec![1, 4]), "1,4");
        assert_eq!(compress_stepped(vec![1, 4, 5]), "1,4-5");
        assert_eq!(compress_stepped(vec![7]), "7");
        assert_eq!(compress_stepped(vec![]), "");
    }

    #[test]
    fn compresses_ranges() {
        assert_eq!(compress(vec![12, 3, 4, 5, 6, 7]), "3-7,12");
        assert_eq!(compress(vec![1]), "1");
        assert_eq!(compress(vec![]), "");
        assert_eq!(compress(vec![1, 3, 5, 6]), "1,3,5-6");
    }
}
