//! `dts status`: the list of runs and one run's state, as text.

use std::fmt::Write;

use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use super::document::RunDocument;
use crate::store::reader::{RunDetail, RunRow};

/// `3m12s`, `2h05m`, `4d03h`: how long ago, coarse.
pub fn age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// The runs, newest first.
pub fn list(rows: &[RunRow], now: f64) -> String {
    if rows.is_empty() {
        return "no runs yet (dts submit starts one)\n".into();
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["run", "name", "state", "done/failed/total", "age", "hosts"]);
    for r in rows {
        table.add_row([
            r.id.clone(),
            r.name.clone(),
            r.state.clone(),
            format!(
                "{}/{}/{}",
                r.counts.done(),
                r.counts.failed_total(),
                r.total
            ),
            age(now - r.created),
            r.hosts.to_string(),
        ]);
    }
    if let Some(column) = table.column_mut(3) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    format!("{table}\n")
}

/// One run: its state, counts, hosts, running tasks and, once finished, its figures.
pub fn run(detail: &RunDetail, doc: &RunDocument, now: f64) -> String {
    let r = &detail.run;
    let mut text = String::new();
    let _ = write!(text, "run {} ({}): {}", r.id, r.name, r.state);
    if let (Some(pid), Some(host)) = (r.pid, &r.hostname) {
        match r.state.as_str() {
            "running" | "paused" => {
                let _ = write!(text, ", coordinator pid {pid} on {host}");
            }
            "interrupted" => {
                let _ = write!(
                    text,
                    " (its coordinator, pid {pid} on {host}, is gone: dts retry {} finishes it)",
                    r.id
                );
            }
            _ => {}
        }
    }
    let _ = writeln!(text, ", created {} ago", age(now - r.created));
    let t = &doc.tasks;
    let _ = writeln!(
        text,
        "tasks: {} total: {} succeeded, {} failed, {} cancelled, {} not run, {} running, {} queued",
        t.total, t.succeeded, t.failed, t.cancelled, t.not_run, t.running, t.queued
    );
    text.push_str(&hosts_table(detail, doc));
    if !doc.running.is_empty() {
        text.push_str(&running_table(doc));
    }
    if !matches!(r.state.as_str(), "running" | "paused" | "queued") && doc.stats.makespan_s > 0.0 {
        let s = &doc.stats;
        let _ = write!(
            text,
            "makespan {:.2} s, ATCT {:.2} s, run p50 {:.2} s / p95 {:.2} s, RU {:.2}, LBD {:.3}, LB ratio {:.2}, {:.1} tasks/s",
            s.makespan_s, s.atct_s, s.run_p50_s, s.run_p95_s, s.ru, s.lbd, s.lb_ratio, s.throughput
        );
        if let Some(hit) = s.hit_rate {
            let _ = write!(text, ", hit rate {hit:.2}");
        }
        text.push('\n');
    }
    for f in &doc.failures {
        let _ = writeln!(
            text,
            "failed: {} task{} ({}): {}",
            f.count,
            if f.count == 1 { "" } else { "s" },
            f.tasks,
            f.cause
        );
    }
    text
}

fn hosts_table(detail: &RunDetail, doc: &RunDocument) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["host", "state", "slots", "running", "done", "failed"]);
    for (h, d) in detail.hosts.iter().zip(&doc.hosts) {
        let running = doc.running.iter().filter(|r| r.host == h.name).count();
        table.add_row([
            h.name.clone(),
            h.state.clone(),
            h.slots.to_string(),
            running.to_string(),
            d.tasks.to_string(),
            d.failed.to_string(),
        ]);
    }
    for column in table.column_iter_mut().skip(2) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    format!("{table}\n")
}

/// At most this many running tasks are listed.
const LIST_RUNNING: usize = 20;

fn running_table(doc: &RunDocument) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["task", "host", "attempt", "elapsed"]);
    for r in doc.running.iter().take(LIST_RUNNING) {
        table.add_row([
            r.index.to_string(),
            r.host.clone(),
            r.attempt.to_string(),
            age(r.elapsed_s),
        ]);
    }
    let more = doc.running.len().saturating_sub(LIST_RUNNING);
    let mut text = format!("running:\n{table}\n");
    if more > 0 {
        text.push_str(&format!("... and {more} more\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_coarse() {
        assert_eq!(age(5.9), "5s");
        assert_eq!(age(192.0), "3m12s");
        assert_eq!(age(7500.0), "2h05m");
        assert_eq!(age(3.0 * 86400.0 + 4000.0), "3d01h");
        assert_eq!(age(-3.0), "0s");
    }
}
