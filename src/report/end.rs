//! The end-of-run report on stderr: a table per host, the run's figures, failures folded by
//! cause and hosts that left the run folded by error, like `dshbak -c`. Pure: it renders a
//! [`RunDocument`].

use std::fmt::Write;

use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use super::document::{HostDoc, RunDocument, StatsDoc};

/// `0.42 s`, `12.3 s`, `3m05s`, `1h02m`.
pub fn secs(s: f64) -> String {
    let s = s.max(0.0);
    if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{}h{:02}m", (s / 3600.0) as u64, (s % 3600.0 / 60.0) as u64)
    }
}

pub fn render(doc: &RunDocument) -> String {
    let mut text = String::new();
    if doc.hosts.iter().any(|h| h.attempts > 0) {
        text.push_str(&hosts_table(&doc.hosts));
        text.push('\n');
    }
    let t = &doc.tasks;
    let _ = write!(
        text,
        "run {}: {} — {} task{}: {} succeeded, {} failed",
        doc.run_id,
        doc.state,
        t.total,
        if t.total == 1 { "" } else { "s" },
        t.succeeded,
        t.failed
    );
    if t.cancelled > 0 {
        let _ = write!(text, ", {} cancelled", t.cancelled);
    }
    if t.not_run > 0 {
        let _ = write!(text, ", {} not run", t.not_run);
    }
    if t.skipped > 0 {
        let _ = write!(text, ", {} skipped (dependency failed)", t.skipped);
    }
    if t.lost > 0 {
        let _ = write!(text, ", {} lost", t.lost);
    }
    text.push('\n');
    text.push_str(&super::document::stage_lines(&doc.stages));
    if doc.stats.makespan_s > 0.0 {
        text.push_str(&figures(&doc.stats));
    }
    text.push_str(&failures(doc));
    text.push_str(&hosts_left_out(&doc.hosts));
    text
}

/// The run's figures; those about completed tasks only when some task ran to its end.
fn figures(s: &StatsDoc) -> String {
    let completed = s.completed > 0;
    let mut first = vec![format!("makespan {}", secs(s.makespan_s))];
    if completed {
        first.push(format!("ATCT {}", secs(s.atct_s)));
        first.push(format!(
            "wait mean {} / p95 {}",
            secs(s.wait_mean_s),
            secs(s.wait_p95_s)
        ));
        first.push(format!(
            "run p50 {} / p95 {} / max {}",
            secs(s.run_p50_s),
            secs(s.run_p95_s),
            secs(s.run_max_s)
        ));
    } else {
        first.push("no task ran to its end".into());
    }
    let mut second = vec![format!("RU {:.2}", s.ru), format!("LBD {:.3}", s.lbd)];
    if completed {
        second.push(format!("LB ratio {:.2}", s.lb_ratio));
        second.push(format!("{:.1} tasks/s", s.throughput));
    }
    second.push(format!(
        "{} retr{}",
        s.retries,
        if s.retries == 1 { "y" } else { "ies" }
    ));
    second.push(format!(
        "{} requeue{}",
        s.requeues,
        if s.requeues == 1 { "" } else { "s" }
    ));
    if let (Some(hit), true) = (s.hit_rate, completed) {
        second.push(format!("hit rate {hit:.2}"));
    }
    format!("{}\n{}\n", first.join("   "), second.join("   "))
}

fn hosts_table(hosts: &[HostDoc]) -> String {
    let gpus = super::document::any_gpus(hosts);
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec!["host"];
    if gpus {
        header.push("GPUs");
    }
    header.extend([
        "tasks",
        "failed",
        "attempts",
        "failed attempts",
        "busy",
        "RU",
        "mean run",
        "p95 run",
    ]);
    table.set_header(header);
    // Hosts that never connected are listed below the table instead: not as idle hosts.
    for h in hosts.iter().filter(|h| h.connected || h.attempts > 0) {
        let mut row = vec![h.name.clone()];
        if gpus {
            row.push(h.gpus.to_string());
        }
        row.extend([
            h.tasks.to_string(),
            h.failed.to_string(),
            h.attempts.to_string(),
            h.failed_attempts.to_string(),
            secs(h.busy_s),
            format!("{:.2}", h.ru),
            run_time(h, h.mean_run_s),
            run_time(h, h.p95_run_s),
        ]);
        table.add_row(row);
    }
    for column in table.column_iter_mut().skip(1) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    table.to_string()
}

/// A host's run-time figure, or `-` when no task ran to its end there.
fn run_time(h: &HostDoc, seconds: f64) -> String {
    if h.completed > 0 {
        secs(seconds)
    } else {
        "-".into()
    }
}

fn failures(doc: &RunDocument) -> String {
    if doc.failures.is_empty() {
        return String::new();
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["failed tasks", "count", "cause"]);
    for f in &doc.failures {
        table.add_row([f.tasks.clone(), f.count.to_string(), f.cause.clone()]);
    }
    if let Some(column) = table.column_mut(1) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    format!("{table}\n")
}

/// Hosts that left the run without finishing a task, folded by error like `dshbak -c`
/// ([`crate::fold`]); one that never connected and has no error was still connecting when
/// the run ended.
pub fn hosts_left_out(hosts: &[HostDoc]) -> String {
    let left_out = hosts.iter().filter(|h| h.tasks == 0).filter_map(|h| {
        let error = match &h.error {
            Some(error) => error.as_str(),
            None if !h.connected => STILL_CONNECTING,
            None => return None,
        };
        Some((h.name.as_str(), error))
    });
    crate::fold::by_cause(left_out)
        .into_iter()
        .map(|(names, error)| format!("left out: {names}: {error}\n"))
        .collect()
}

/// Why a host that never connected and reported no error ran nothing.
pub const STILL_CONNECTING: &str = "never connected (still connecting when the run ended)";

#[cfg(test)]
mod tests {
    use super::super::document::{FailureDoc, StatsDoc, TaskCounts};
    use super::*;

    fn doc() -> RunDocument {
        let host = |name: &str, tasks, failed, busy, ru| HostDoc {
            name: name.into(),
            slots: 8,
            gpus: 0,
            tasks,
            failed,
            attempts: tasks + failed,
            failed_attempts: failed * 2,
            completed: tasks,
            connected: true,
            busy_s: busy,
            ru,
            mean_run_s: 0.105,
            p95_run_s: 0.2,
            error: None,
        };
        let mut gone = host("node03", 0, 0, 0.0, 0.0);
        gone.error = Some("connect to 10.0.0.3:22: Connection refused (os error 111)".into());
        gone.connected = false;
        gone.slots = 0;
        RunDocument {
            run_id: "20261125-073209-aa58".into(),
            name: "work".into(),
            state: "failed".into(),
            algorithm: "least-load".into(),
            created: 1_795_591_378.0,
            coordinator: None,
            tasks: TaskCounts {
                total: 400,
                succeeded: 396,
                failed: 4,
                cancelled: 0,
                not_run: 0,
                running: 0,
                queued: 0,
                lost: 0,
                skipped: 0,
            },
            stats: StatsDoc {
                atct_s: 61.25,
                wait_mean_s: 58.0,
                wait_p95_s: 110.0,
                run_mean_s: 3.2,
                run_p50_s: 2.1,
                run_p95_s: 9.8,
                run_max_s: 75.0,
                makespan_s: 125.0,
                ru: 0.85,
                lbd: 0.021,
                lb_ratio: 1.1,
                throughput: 3.2,
                hit_rate: None,
                retries: 2,
                requeues: 1,
                completed: 400,
            },
            hosts: vec![
                host("node01", 200, 1, 420.0, 0.84),
                host("node02", 200, 3, 430.0, 0.86),
                gone,
            ],
            failures: vec![
                FailureDoc {
                    cause: "exit 1: error: input.csv: no such file".into(),
                    count: 3,
                    tasks: "3-4,17".into(),
                },
                FailureDoc {
                    cause: "signal KILL".into(),
                    count: 1,
                    tasks: "250".into(),
                },
            ],
            running: vec![],
            stages: vec![],
        }
    }

    #[test]
    fn end_report() {
        insta::assert_snapshot!(render(&doc()));
    }

    #[test]
    fn end_report_of_a_gpu_sweep_shows_each_hosts_gpus() {
        let mut d = doc();
        (d.hosts[0].gpus, d.hosts[1].gpus) = (4, 2);
        let text = render(&d);
        assert!(text.contains("GPUs"), "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn end_report_of_a_clean_consistent_hash_run() {
        let mut d = doc();
        d.state = "succeeded".into();
        d.tasks.succeeded = 400;
        d.tasks.failed = 0;
        d.failures.clear();
        d.hosts.truncate(2);
        d.stats.hit_rate = Some(0.97);
        d.stats.retries = 0;
        d.stats.requeues = 0;
        insta::assert_snapshot!(render(&d));
    }

    #[test]
    fn end_report_shows_a_host_that_failed_every_attempt() {
        let mut d = doc();
        // node02's every attempt failed; the retries succeeded on node01.
        let broken = &mut d.hosts[1];
        (broken.tasks, broken.failed, broken.completed) = (0, 0, 0);
        (broken.attempts, broken.failed_attempts) = (7, 7);
        (
            broken.busy_s,
            broken.ru,
            broken.mean_run_s,
            broken.p95_run_s,
        ) = (0.7, 0.0, 0.0, 0.0);
        insta::assert_snapshot!(render(&d));
    }

    #[test]
    fn end_report_after_ctrl_c_calls_killed_tasks_not_run_and_gives_no_completion_figures() {
        let mut d = doc();
        d.state = "interrupted".into();
        d.tasks.succeeded = 0;
        d.tasks.failed = 0;
        d.tasks.not_run = 400;
        d.failures.clear();
        for h in &mut d.hosts[..2] {
            (h.tasks, h.failed, h.attempts, h.failed_attempts) = (8, 0, 8, 0);
            h.completed = 0;
            (h.busy_s, h.ru, h.mean_run_s, h.p95_run_s) = (19.6, 0.98, 0.0, 0.0);
        }
        d.stats = StatsDoc {
            atct_s: 0.0,
            wait_mean_s: 0.0,
            wait_p95_s: 0.0,
            run_mean_s: 0.0,
            run_p50_s: 0.0,
            run_p95_s: 0.0,
            run_max_s: 0.0,
            makespan_s: 2.5,
            ru: 0.98,
            lbd: 0.0,
            lb_ratio: 0.0,
            throughput: 0.0,
            hit_rate: None,
            retries: 0,
            requeues: 0,
            completed: 0,
        };
        let text = render(&d);
        assert!(!text.contains("tasks/s") && !text.contains("p50"), "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn end_report_marks_a_host_still_connecting_when_a_short_run_ended() {
        let mut d = doc();
        let slow = &mut d.hosts[2];
        slow.name = "node04".into();
        slow.error = None;
        let text = render(&d);
        assert!(!text.contains("│ node04"), "not an idle row: {text}");
        assert!(
            text.contains(
                "left out: node04: never connected (still connecting when the run ended)"
            ),
            "{text}"
        );
    }

    #[test]
    fn hosts_left_out_for_one_cause_fold_into_one_line() {
        let mut d = doc();
        let gone = d.hosts.pop().unwrap();
        for i in 1..=2000 {
            let mut h = gone.clone();
            h.name = format!("u{i}");
            h.error = Some(format!(
                "connect to 10.0.{}.{}:22: Connection refused (os error 111)",
                i / 250,
                i % 250
            ));
            d.hosts.push(h);
        }
        assert_eq!(
            hosts_left_out(&d.hosts),
            "left out: u[1-2000]: connect to port 22: Connection refused (os error 111)\n"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(secs(0.123), "0.12 s");
        assert_eq!(secs(12.34), "12.3 s");
        assert_eq!(secs(185.0), "3m05s");
        assert_eq!(secs(3720.0), "1h02m");
    }
}
