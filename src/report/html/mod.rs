//! `dts report RUN --html FILE` and `dts submit --html FILE`: one self-contained HTML page
//! about a run (inline SVG, CSS and a little plain JavaScript; no external URL, font or
//! framework, so it works offline). It shows a timeline with one lane per host slot, the
//! utilisation over time per host and overall, a histogram of run times, the run's figures,
//! the per-host table and the failures folded by cause.
//!
//! This module turns the store's records into a [`Page`] (pure: data in, data out); the
//! [`render`] module turns a page into the document. Past [`MAX_TASK_NODES`] attempts the
//! timeline draws busy density per lane instead of one element per attempt, and says so,
//! so that a 100,000-task run still opens in a browser in a few seconds.

pub mod lanes;
pub mod render;
pub mod series;

use std::collections::HashMap;

use super::document::{RunDocument, is_live};
use crate::job::pipeline::stage_name;
use crate::job::{Context, Template};
use crate::store::reader::RunDetail;

pub use render::render;

/// Above this many attempts the timeline aggregates: one element per attempt would make
/// the page slow to open.
pub const MAX_TASK_NODES: usize = 5_000;

/// How an attempt ended, as the page colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    /// The host was lost or refused it: it ran again elsewhere.
    Requeued,
    /// Another copy of the task (`--speculate`) succeeded first.
    Superseded,
    /// The coordinator died while it ran.
    Lost,
    Running,
}

impl Outcome {
    /// In the order the legend lists them.
    pub const ALL: [Outcome; 8] = [
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::TimedOut,
        Outcome::Cancelled,
        Outcome::Requeued,
        Outcome::Superseded,
        Outcome::Lost,
        Outcome::Running,
    ];

    /// From the store's attempt outcome; an attempt without one is running if the run is.
    pub fn from_stored(outcome: Option<&str>, live: bool) -> Outcome {
        match outcome {
            Some("succeeded") => Outcome::Succeeded,
            Some("failed") => Outcome::Failed,
            Some("timed-out") => Outcome::TimedOut,
            Some("cancelled") => Outcome::Cancelled,
            Some("requeued") => Outcome::Requeued,
            Some("superseded") => Outcome::Superseded,
            None if live => Outcome::Running,
            _ => Outcome::Lost,
        }
    }

    /// CSS class suffix (`o-ok`, ...).
    pub fn class(self) -> &'static str {
        match self {
            Outcome::Succeeded => "ok",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Requeued => "requeued",
            Outcome::Superseded => "superseded",
            Outcome::Lost => "lost",
            Outcome::Running => "running",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed out",
            Outcome::Cancelled => "cancelled",
            Outcome::Requeued => "requeued",
            Outcome::Superseded => "superseded",
            Outcome::Lost => "lost",
            Outcome::Running => "running",
        }
    }

    /// Which outcome an aggregated cell shows when several meet in it: failures first.
    pub fn severity(self) -> u8 {
        match self {
            Outcome::Succeeded => 0,
            Outcome::Superseded => 1,
            Outcome::Running => 2,
            Outcome::Cancelled => 3,
            Outcome::Requeued => 4,
            Outcome::Lost => 5,
            Outcome::TimedOut => 6,
            Outcome::Failed => 7,
        }
    }
}

/// One attempt as the page draws it. Times are seconds from the run's creation.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub index: u64,
    pub item: String,
    /// What consistent-hash hashed: the rendered key template, or the item in a
    /// consistent-hash run without one.
    pub key: Option<String>,
    /// Position in the page's hosts.
    pub host: usize,
    pub attempt: u32,
    /// Launch (or dispatch, if it never launched) and end (now, if it still runs).
    pub start: f64,
    pub end: f64,
    pub outcome: Outcome,
    /// A second copy started while an earlier attempt of the task still ran.
    pub speculative: bool,
    pub status: Option<String>,
    /// Queued before this attempt: since submission, or since the task's previous attempt.
    pub wait: f64,
    /// The pipeline stage of the task, if the run is a pipeline.
    pub stage: Option<String>,
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The figures, hosts and folded failures: the same document as `dts status --json`.
    pub doc: RunDocument,
    pub bars: Vec<Bar>,
    /// Run times of the tasks that ran to their end (what the run-time figures count).
    pub runs: Vec<f64>,
    /// Seconds the time axis covers.
    pub span: f64,
    /// Epoch seconds the page was made.
    pub generated: f64,
    /// `dts report` lines naming the hosts that left the run, as the terminal prints them.
    pub left_out: Vec<String>,
}

/// The page of a run, from its records and its document, at epoch time `now`.
pub fn page(detail: &RunDetail, doc: RunDocument, now: f64) -> Page {
    let origin = detail.run.created;
    let live = is_live(&detail.run.state);
    let host_pos: HashMap<&str, usize> = detail
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.as_str(), i))
        .collect();
    let tasks: HashMap<u32, usize> = detail
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.seq, i))
        .collect();
    let key_template: Option<Template> = detail.spec.key.as_ref().and_then(|k| {
        let names = detail.spec.matrix.names();
        k.build().ok().map(|k| k.with_params(&names))
    });
    // Without a key template consistent-hash hashes the item: the tooltip says so too.
    let item_is_key = key_template.is_none() && detail.run.algorithm == "consistent-hash";
    let mut bars: Vec<Bar> = Vec::with_capacity(detail.attempts.len());
    // Ends of the current task's earlier attempts (attempts come ordered by task).
    let mut earlier: (u32, Vec<f64>) = (0, Vec::new());
    for a in &detail.attempts {
        let (Some(&host), Some(&t)) = (host_pos.get(a.host.as_str()), tasks.get(&a.seq)) else {
            continue;
        };
        let task = &detail.tasks[t];
        if earlier.0 != a.seq {
            earlier = (a.seq, Vec::new());
        }
        let start = a.started.unwrap_or(a.dispatched) - origin;
        let end = match a.finished {
            Some(finished) => finished - origin,
            None if live => now - origin,
            None => start,
        }
        .max(start);
        let ready = earlier.1.last().copied().unwrap_or(task.submitted - origin);
        let item = String::from_utf8_lossy(&task.item).into_owned();
        bars.push(Bar {
            index: task.index,
            key: match &key_template {
                Some(k) => Some(
                    String::from_utf8_lossy(&k.render_key(&Context {
                        item: &task.item,
                        seq: task.seq,
                        index: task.index,
                        host: "",
                        params: &detail.spec.matrix.values_of(task.seq),
                    }))
                    .into_owned(),
                ),
                None => item_is_key.then(|| item.clone()),
            },
            item,
            host,
            attempt: a.attempt,
            start,
            end,
            outcome: Outcome::from_stored(a.outcome.as_deref(), live),
            speculative: earlier.1.iter().any(|&e| e > start),
            status: a.status.as_ref().map(ToString::to_string),
            wait: (start - ready).max(0.0),
            stage: stage_name(&detail.spec.stages, task.seq).map(str::to_string),
        });
        earlier.1.push(end);
    }
    let runs: Vec<f64> = detail
        .tasks
        .iter()
        .filter(|t| matches!(t.state.as_str(), "succeeded" | "failed" | "timed-out"))
        .filter_map(|t| t.run_s)
        .collect();
    let span = bars
        .iter()
        .map(|b| b.end)
        .fold(doc.stats.makespan_s, f64::max);
    let left_out = super::end::hosts_left_out(&doc.hosts)
        .lines()
        .map(str::to_string)
        .collect();
    Page {
        doc,
        bars,
        runs,
        span,
        generated: now,
        left_out,
    }
}

#[cfg(test)]
mod tests;
