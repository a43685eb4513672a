//! What the user reads about a run: the end-of-run summary (and, for `dts hosts`, the probe
//! table). Rendering is pure: it turns records into text.

pub mod compare;
pub mod document;
pub mod hosts_table;
pub mod plan;
pub mod status;

use std::fmt::Write;

use crate::runner::{Outcome, RunOutcome};

/// At most this many failed tasks are listed one by one.
const LIST_FAILED: usize = 10;

/// The short end-of-run summary, one `dts: ` line each.
pub fn summary(outcome: &RunOutcome) -> String {
    let mut text = String::new();
    let total = outcome.tasks.len();
    let succeeded = count(outcome, |o| *o == Outcome::Succeeded);
    let failed = count(outcome, |o| {
        matches!(o, Outcome::Failed(_) | Outcome::TimedOut)
    });
    let not_run = total - succeeded - failed;
    let elapsed = (outcome.finished - outcome.started).as_secs_f64();
    let used_hosts = outcome.hosts.iter().filter(|h| h.slots > 0).count();
    let _ = write!(
        text,
        "dts: {total} task{}: {succeeded} succeeded, {failed} failed",
        plural(total)
    );
    if not_run > 0 {
        let _ = write!(text, ", {not_run} not run");
    }
    let rate = if elapsed > 0.0 {
        succeeded as f64 / elapsed
    } else {
        0.0
    };
    let _ = writeln!(
        text,
        " in {elapsed:.2} s ({rate:.1} tasks/s) on {used_hosts} host{}",
        plural(used_hosts)
    );
    let stats = outcome.stats();
    if stats.tasks > 0 {
        let _ = write!(
            text,
            "dts: ATCT {:.2} s, run p50 {:.2} s / p95 {:.2} s, RU {:.2}, LBD {:.3}, LB ratio {:.2}",
            stats.atct, stats.run.p50, stats.run.p95, stats.ru, stats.lbd, stats.lb_ratio
        );
        if let Some(hit) = stats.hit_rate {
            let _ = write!(text, ", hit rate {hit:.2}");
        }
        text.push('\n');
    }
    failed_lines(outcome, &mut text);
    for host in &outcome.hosts {
        if let Some(error) = &host.error {
            let _ = writeln!(text, "dts: host {} left out: {error}", host.name);
        }
    }
    text
}

fn failed_lines(outcome: &RunOutcome, text: &mut String) {
    let failed: Vec<String> = outcome
        .tasks
        .iter()
        .filter_map(|t| {
            let why = match &t.outcome {
                Outcome::Failed(status) => status.to_string(),
                Outcome::TimedOut => "timed out".to_string(),
                _ => return None,
            };
            let host = t.host.map_or("?", |h| outcome.hosts[h].name.as_str());
            Some(format!("{} ({why} on {host})", t.index))
        })
        .collect();
    if failed.is_empty() {
        return;
    }
    let shown = failed
        .iter()
        .take(LIST_FAILED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let more = failed.len().saturating_sub(LIST_FAILED);
    let _ = write!(text, "dts: failed: {shown}");
    if more > 0 {
        let _ = write!(text, " and {more} more");
    }
    text.push('\n');
}

fn count(outcome: &RunOutcome, pred: impl Fn(&Outcome) -> bool) -> usize {
    outcome.tasks.iter().filter(|t| pred(&t.outcome)).count()
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
