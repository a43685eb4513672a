//! `dts status`: the list of runs and one run's state, as text.

use std::fmt::Write;

use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use super::document::{RunDocument, is_live};
use crate::store::reader::{HostRow, RunRow};

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
    // Succeeded, not "done": cancelled and never-run tasks are neither.
    table.set_header([
        "run",
        "name",
        "state",
        "succeeded/failed/total",
        "age",
        "hosts",
    ]);
    for r in rows {
        table.add_row([
            r.id.clone(),
            r.name.clone(),
            r.state.clone(),
            format!(
                "{}/{}/{}",
                r.counts.succeeded,
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
pub fn run(r: &RunRow, hosts: &[HostRow], doc: &RunDocument, now: f64) -> String {
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
    let _ = write!(
        text,
        "tasks: {} total: {} succeeded, {} failed, {} cancelled, {} not run, {} running, {} queued",
        t.total, t.succeeded, t.failed, t.cancelled, t.not_run, t.running, t.queued
    );
    if t.skipped > 0 {
        let _ = write!(text, ", {} skipped (dependency failed)", t.skipped);
    }
    if t.lost > 0 {
        let _ = write!(
            text,
            ", {} lost (running when the coordinator died; how they ended is unknown)",
            t.lost
        );
    }
    text.push('\n');
    text.push_str(&super::document::stage_lines(&doc.stages));
    text.push_str(&hosts_table(r, hosts, doc));
    if !doc.running.is_empty() {
        text.push_str(&running_table(doc));
    }
    if !is_live(&r.state) && doc.stats.completed > 0 {
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

fn hosts_table(r: &RunRow, hosts: &[HostRow], doc: &RunDocument) -> String {
    let gpus = super::document::any_gpus(&doc.hosts);
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec!["host", "state", "slots"];
    if gpus {
        header.push("GPUs");
    }
    header.extend(["running", "tasks", "failed", "attempts", "failed attempts"]);
    table.set_header(header);
    let live = is_live(&r.state);
    for (h, d) in hosts.iter().zip(&doc.hosts) {
        let running = doc.running.iter().filter(|r| r.host == h.name).count();
        let mut row = vec![
            h.name.clone(),
            host_state(&h.state, d.connected, live),
            h.slots.to_string(),
        ];
        if gpus {
            row.push(d.gpus.to_string());
        }
        row.extend([
            running.to_string(),
            d.tasks.to_string(),
            d.failed.to_string(),
            d.attempts.to_string(),
            d.failed_attempts.to_string(),
        ]);
        table.add_row(row);
    }
    for column in table.column_iter_mut().skip(2) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    format!("{table}\n")
}

/// A host's state as recorded, except that one that never connected says so rather than
/// pass for an idle host.
fn host_state(state: &str, connected: bool, live: bool) -> String {
    match (state, connected, live) {
        (_, true, _) => state.to_string(),
        ("waiting", false, true) => "connecting".into(),
        ("waiting", false, false) => "never connected".into(),
        (other, false, _) => format!("{other}, never connected"),
    }
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
    use super::super::document::{HostDoc, StatsDoc, TaskCounts};
    use super::*;
    use crate::store::reader::Counts;

    const NOW: f64 = 1_795_591_400.0;

    fn row(state: &str, counts: Counts) -> RunRow {
        RunRow {
            id: "20261125-073209-aa58".into(),
            name: "sleep".into(),
            state: state.into(),
            created: NOW - 95.0,
            started: Some(NOW - 95.0),
            finished: None,
            total: 40,
            counts,
            hosts: 3,
            pid: Some(17356),
            hostname: Some("vm".into()),
            algorithm: "round-robin".into(),
            damage: None,
        }
    }

    fn host(name: &str, slots: u32, state: &str) -> HostRow {
        HostRow {
            name: name.into(),
            slots,
            weight: 1.0,
            state: state.into(),
            error: None,
            gpus: 0,
        }
    }

    fn host_doc(name: &str, slots: u32, tasks: usize, attempts: usize) -> HostDoc {
        HostDoc {
            name: name.into(),
            slots,
            gpus: 0,
            tasks,
            failed: 0,
            attempts,
            failed_attempts: attempts - tasks,
            completed: tasks,
            connected: slots > 0,
            busy_s: 0.0,
            ru: 0.0,
            mean_run_s: 0.0,
            p95_run_s: 0.0,
            error: None,
        }
    }

    #[test]
    fn status_list_counts_succeeded_not_cancelled_or_not_run_as_done() {
        let interrupted = row(
            "interrupted",
            Counts {
                not_run: 38,
                cancelled: 2,
                ..Counts::default()
            },
        );
        let text = list(&[interrupted], NOW);
        assert!(text.contains("0/0/40"), "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn status_of_a_dead_coordinators_run_shows_its_running_tasks_as_lost() {
        // The store still says 32 running, but no coordinator holds the run: the reader
        // calls it interrupted and the document counts the 32 as lost.
        let r = row(
            "interrupted",
            Counts {
                running: 32,
                queued: 8,
                ..Counts::default()
            },
        );
        let hosts = [
            host("h1", 8, "up"),
            host("h2", 8, "up"),
            host("h3", 0, "waiting"),
        ];
        let doc = lost_doc(&r);
        let text = run(&r, &hosts, &doc, NOW);
        assert!(
            text.contains("0 running") && text.contains("32 lost"),
            "{text}"
        );
        assert!(text.contains("never connected"), "{text}");
        assert!(
            !text.contains("GPUs"),
            "no GPU column without GPUs:\n{text}"
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn status_shows_each_hosts_gpus_once_a_host_has_some() {
        let r = row(
            "interrupted",
            Counts {
                running: 32,
                queued: 8,
                ..Counts::default()
            },
        );
        let hosts = [
            host("h1", 8, "up"),
            host("h2", 8, "up"),
            host("h3", 0, "waiting"),
        ];
        let mut doc = lost_doc(&r);
        doc.hosts[1].gpus = 2;
        insta::assert_snapshot!(run(&r, &hosts, &doc, NOW));
    }

    /// The document of a 40-task run whose coordinator died with 32 running.
    fn lost_doc(r: &RunRow) -> RunDocument {
        RunDocument {
            run_id: r.id.clone(),
            name: r.name.clone(),
            state: r.state.clone(),
            algorithm: r.algorithm.clone(),
            created: r.created,
            coordinator: None,
            tasks: TaskCounts {
                total: 40,
                succeeded: 0,
                failed: 0,
                cancelled: 0,
                not_run: 0,
                running: 0,
                queued: 8,
                lost: 32,
                skipped: 0,
            },
            stats: StatsDoc {
                atct_s: 0.0,
                wait_mean_s: 0.0,
                wait_p95_s: 0.0,
                run_mean_s: 0.0,
                run_p50_s: 0.0,
                run_p95_s: 0.0,
                run_max_s: 0.0,
                makespan_s: 0.0,
                ru: 0.0,
                lbd: 0.0,
                lb_ratio: 0.0,
                throughput: 0.0,
                hit_rate: None,
                retries: 0,
                requeues: 0,
                completed: 0,
            },
            hosts: vec![
                host_doc("h1", 8, 0, 3),
                host_doc("h2", 8, 0, 0),
                host_doc("h3", 0, 0, 0),
            ],
            failures: vec![],
            running: vec![],
            stages: vec![],
        }
    }

    #[test]
    fn ages_are_coarse() {
        assert_eq!(age(5.9), "5s");
        assert_eq!(age(192.0), "3m12s");
        assert_eq!(age(7500.0), "2h05m");
        assert_eq!(age(3.0 * 86400.0 + 4000.0), "3d01h");
        assert_eq!(age(-3.0), "0s");
    }
}
