use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::job::TemplateSpec;
use crate::report::document::{self, HostDoc};
use crate::store::reader::{AttemptRow, Counts, HostRow, RunRow, TaskRow};
use crate::store::{Faults, RunSpec};
use crate::transport::ExitStatus;

const CREATED: f64 = 1_795_591_378.0;

/// (seq, attempt, host, started, finished, outcome, status) relative to the run's creation.
type Try = (
    u32,
    u32,
    &'static str,
    f64,
    f64,
    &'static str,
    Option<ExitStatus>,
);

fn code(c: i32) -> Option<ExitStatus> {
    Some(ExitStatus::Code(c))
}

fn signal(s: &str) -> Option<ExitStatus> {
    Some(ExitStatus::Signal(s.into()))
}

/// A finished consistent-hash run on two hosts (a third never connected) with a retry, a
/// requeue, a speculative copy that won, a timeout and an item that needs escaping.
fn detail() -> RunDetail {
    let tries: Vec<Try> = vec![
        (1, 1, "n1", 0.1, 2.1, "succeeded", code(0)),
        (2, 1, "n2", 0.1, 1.0, "failed", code(1)),
        (2, 2, "n1", 2.1, 3.0, "succeeded", code(0)),
        (3, 1, "n2", 0.2, 1.5, "requeued", None),
        (3, 2, "n1", 1.6, 2.0, "succeeded", code(0)),
        (4, 1, "n2", 1.0, 3.55, "superseded", signal("TERM")),
        (4, 2, "n1", 3.0, 3.5, "succeeded", code(0)),
        (5, 1, "n2", 1.5, 2.5, "timed-out", signal("KILL")),
        (6, 1, "n1", 3.5, 3.9, "failed", code(2)),
    ];
    let items = ["a.csv", "b.csv", "c.csv", "d.csv", "e.csv", "<script>&\""];
    let states = [
        "succeeded",
        "succeeded",
        "succeeded",
        "succeeded",
        "timed-out",
        "failed",
    ];
    let tasks: Vec<TaskRow> = (1..=6u32)
        .map(|seq| {
            let mine: Vec<&Try> = tries.iter().filter(|t| t.0 == seq).collect();
            let last = mine.iter().rfind(|t| t.5 != "superseded").unwrap();
            TaskRow {
                seq,
                index: u64::from(seq - 1),
                item: items[seq as usize - 1].as_bytes().to_vec(),
                state: states[seq as usize - 1].into(),
                attempts: mine.len() as u32,
                host: Some(last.2.into()),
                submitted: CREATED,
                started: Some(CREATED + mine[0].3),
                finished: Some(CREATED + last.4),
                run_s: Some(last.4 - last.3),
                status: last.6.clone(),
                reason: None,
                hit: Some(last.2 == "n1"),
            }
        })
        .collect();
    let attempts = tries
        .iter()
        .map(|t| AttemptRow {
            seq: t.0,
            attempt: t.1,
            host: t.2.into(),
            dispatched: CREATED + t.3 - 0.05,
            started: Some(CREATED + t.3),
            finished: Some(CREATED + t.4),
            outcome: Some(t.5.into()),
            status: t.6.clone(),
            stdout_bytes: 0,
            stderr_bytes: 0,
        })
        .collect();
    let host = |name: &str, slots, state: &str, error: Option<&str>| HostRow {
        name: name.into(),
        slots,
        weight: 1.0,
        state: state.into(),
        error: error.map(str::to_string),
        gpus: 0,
    };
    RunDetail {
        run: RunRow {
            id: "20261125-073209-aa58".into(),
            name: "convert".into(),
            state: "failed".into(),
            created: CREATED,
            started: Some(CREATED),
            finished: Some(CREATED + 3.9),
            total: 6,
            counts: Counts {
                succeeded: 4,
                failed: 1,
                timed_out: 1,
                ..Counts::default()
            },
            hosts: 3,
            pid: None,
            hostname: None,
            algorithm: "consistent-hash".into(),
            damage: None,
        },
        spec: spec(),
        tasks,
        attempts,
        hosts: vec![
            host("n1", 2, "up", None),
            host("n2", 2, "up", None),
            host(
                "n3",
                0,
                "down",
                Some("connect to 10.0.0.3:22: Connection refused (os error 111)"),
            ),
        ],
        dir: PathBuf::from("/nonexistent"),
    }
}

fn spec() -> RunSpec {
    RunSpec {
        name: "convert".into(),
        command: TemplateSpec::Shell("convert {}".into()),
        algorithm: "consistent-hash".into(),
        key: Some(TemplateSpec::Key("{item/.}".into())),
        retries: 1,
        timeout: Some(Duration::from_secs(1)),
        workdir: None,
        env: Vec::new(),
        throttle: None,
        slots: None,
        seed: 1,
        epsilon: 0.25,
        kill_grace: Duration::from_secs(5),
        probe_interval: None,
        hosts: Vec::new(),
        joblog: None,
        junit: None,
        html: None,
        faults: Faults::default(),
        secret_env: Vec::new(),
        matrix: Default::default(),
        gates: Default::default(),
        resources: Default::default(),
        order: Default::default(),
        slurm: None,
        staging: Default::default(),
        stages: Vec::new(),
    }
}

fn page_of(detail: &RunDetail) -> Page {
    let stats = detail.stats();
    let doc = document::build(detail, &stats, CREATED + 60.0, |t| {
        (t.state == "failed").then(|| "error: disk full".to_string())
    });
    page(detail, doc, CREATED + 60.0)
}

#[test]
fn page_of_a_run_with_retries_requeues_and_a_speculative_copy() {
    insta::assert_snapshot!(render(&page_of(&detail())));
}

#[test]
fn the_hosts_table_shows_each_hosts_gpus_once_a_host_has_some() {
    let plain = render(&page_of(&detail()));
    assert!(
        !plain.contains("<th>GPUs</th>"),
        "no GPU column without GPUs"
    );
    let mut with_gpus = detail();
    with_gpus.hosts[0].gpus = 4;
    let html = render(&page_of(&with_gpus));
    let start = html.find("<section id=\"hosts\">").unwrap();
    let end = start + html[start..].find("</section>").unwrap();
    insta::assert_snapshot!(&html[start..end]);
}

#[test]
fn bars_carry_each_attempt_with_its_wait_key_and_copy() {
    let page = page_of(&detail());
    assert_eq!(page.bars.len(), 9);
    let bar = |seq: u64, attempt: u32| {
        page.bars
            .iter()
            .find(|b| b.index == seq - 1 && b.attempt == attempt)
            .unwrap()
    };
    // The retry waited from the failed attempt's end to its own start.
    assert!((bar(2, 2).wait - 1.1).abs() < 1e-6);
    assert!((bar(1, 1).wait - 0.1).abs() < 1e-6);
    assert_eq!(bar(1, 1).key.as_deref(), Some("a"));
    let mut plain = detail();
    plain.spec.key = None;
    assert_eq!(page_of(&plain).bars[0].key.as_deref(), Some("a.csv"));
    plain.run.algorithm = "round-robin".into();
    assert_eq!(
        page_of(&plain).bars[0].key,
        None,
        "no key outside consistent-hash"
    );
    assert!(bar(4, 2).speculative && !bar(4, 1).speculative);
    assert!(!bar(3, 2).speculative, "a requeue is not a copy");
    assert_eq!(bar(4, 1).outcome, Outcome::Superseded);
    assert_eq!(bar(5, 1).outcome, Outcome::TimedOut);
    assert_eq!(page.runs.len(), 6);
    assert_eq!(page.left_out.len(), 1);
    let html = render(&page);
    assert_eq!(html.matches("class=\"task ").count(), 9);
    assert!(
        html.contains("&lt;script&gt;&amp;&quot;"),
        "items are escaped"
    );
    assert!(!html.contains("<script>&"));
}

#[test]
fn the_page_needs_nothing_from_the_network() {
    let html = render(&page_of(&detail()));
    for outside in ["http://", "https://", "//cdn", "@import", "url("] {
        assert!(!html.contains(outside), "{outside} in the page");
    }
}

#[test]
fn a_live_run_draws_running_attempts_up_to_now_and_says_it_is_a_snapshot() {
    let mut detail = detail();
    detail.run.state = "running".into();
    let last = detail.attempts.last_mut().unwrap();
    (last.finished, last.outcome, last.status) = (None, None, None);
    let page = page_of(&detail);
    let running = page.bars.last().unwrap();
    assert_eq!(running.outcome, Outcome::Running);
    assert_eq!(running.end, 60.0);
    let html = render(&page);
    assert!(html.contains("The run is still going"), "{html}");
}

/// A page of `attempts` back-to-back attempts on 16 hosts of 8 slots, every 50th failed.
fn big_page(attempts: usize) -> Page {
    let mut page = page_of(&detail());
    let host = page.doc.hosts[0].clone();
    page.doc.hosts = (0..16)
        .map(|i| HostDoc {
            name: format!("node{i:02}"),
            slots: 8,
            ..host.clone()
        })
        .collect();
    let lanes = 16 * 8;
    let mut clock = vec![0.0; lanes];
    page.bars = (0..attempts)
        .map(|i| {
            let lane = i % lanes;
            let start = clock[lane];
            let run = 0.5 + (i * 7919 % 100) as f64 / 40.0;
            clock[lane] += run + 0.01;
            Bar {
                index: i as u64,
                item: i.to_string(),
                key: None,
                host: lane / 8,
                attempt: 1,
                start,
                end: start + run,
                outcome: if i % 50 == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Succeeded
                },
                speculative: false,
                status: Some(format!("exit {}", u8::from(i % 50 == 0))),
                wait: start,
                stage: None,
            }
        })
        .collect();
    page.runs = page.bars.iter().map(|b| b.end - b.start).collect();
    page.span = clock.iter().copied().fold(0.0, f64::max);
    page
}

fn elements(html: &str) -> usize {
    ["<rect", "<path", "<text", "<line", "<tr"]
        .iter()
        .map(|tag| html.matches(tag).count())
        .sum()
}

#[test]
fn up_to_the_limit_every_attempt_is_one_task_element() {
    let html = render(&big_page(MAX_TASK_NODES));
    assert_eq!(html.matches("class=\"task ").count(), MAX_TASK_NODES);
    assert!(!html.contains("id=\"aggregated\""));
}

#[test]
fn a_100000_task_run_renders_a_page_of_bounded_size() {
    let html = render(&big_page(100_000));
    assert_eq!(html.matches("class=\"task ").count(), 0);
    assert!(
        html.contains("100000 attempts: above 5000 the timeline shows how busy"),
        "the page says it aggregated"
    );
    let nodes = elements(&html);
    assert!(nodes < 20_000, "{nodes} elements");
    assert!(html.len() < 4_000_000, "{} bytes", html.len());
    // Failures still show: cells holding a failed attempt are coloured as failed.
    assert!(html.contains("class=\"density o-failed\""));
}

#[test]
fn time_ticks_fall_on_round_values() {
    use super::render::nice_step;
    assert_eq!(nice_step(0.37), 0.5);
    assert_eq!(nice_step(3.0), 5.0);
    assert_eq!(nice_step(12.0), 15.0);
    assert_eq!(nice_step(200.0), 300.0);
    assert_eq!(nice_step(2000.0), 3600.0);
    assert_eq!(nice_step(100_000.0), 172_800.0);
}

#[test]
fn an_attempt_without_an_outcome_is_running_only_while_the_run_is() {
    assert_eq!(Outcome::from_stored(None, true), Outcome::Running);
    assert_eq!(Outcome::from_stored(None, false), Outcome::Lost);
    assert_eq!(Outcome::from_stored(Some("lost"), true), Outcome::Lost);
    assert_eq!(
        Outcome::from_stored(Some("superseded"), false),
        Outcome::Superseded
    );
    // The coordinator died: its last attempt has no end, and is drawn as lost, not to now.
    let mut detail = detail();
    detail.run.state = "interrupted".into();
    let last = detail.attempts.last_mut().unwrap();
    (last.finished, last.outcome) = (None, None);
    let page = page_of(&detail);
    let lost = page.bars.last().unwrap();
    assert_eq!((lost.outcome, lost.end), (Outcome::Lost, lost.start));
}
