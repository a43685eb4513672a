//! The figures a run reports agree with each other and with what happened: host rows,
//! summary, `dts status` list and run view, after failures on one host, a cancel, Ctrl-C,
//! a dead coordinator and hosts that never connected. Local hosts where SSH is not the point.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use dts::store::{StateDir, StateEnv, reader};
use predicates::prelude::*;
use predicates::str::contains;

/// Two local hosts, `a` and `b`, two slots each.
fn two_local_hosts(home: &Path) {
    std::fs::write(
        home.join("hosts.toml"),
        "[[host]]\nname = \"a\"\ntransport = \"local\"\nslots = 2\n\
         [[host]]\nname = \"b\"\ntransport = \"local\"\nslots = 2\n",
    )
    .unwrap();
}

fn state(home: &Path) -> StateDir {
    StateDir::locate(&StateEnv {
        home: Some(home.to_path_buf()),
        ..StateEnv::default()
    })
    .unwrap()
}

fn the_run(home: &Path) -> Option<reader::RunDetail> {
    let state = state(home);
    let id = state.run_ids().pop()?;
    reader::detail(&state, &id).ok()
}

fn status_json(home: &Path) -> serde_json::Value {
    let out = dts(home)
        .args(["status", "last", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

fn host<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {doc}"))
}

fn wait_running(home: &Path, n: usize) {
    wait_until(Duration::from_secs(30), "tasks to run", || {
        the_run(home).is_some_and(|d| {
            d.attempts
                .iter()
                .filter(|a| a.outcome.is_none() && a.started.is_some())
                .count()
                >= n
        })
    });
}

fn spawn_submit(home: &Path, args: &[&str]) -> Child {
    dts_process(home)
        .arg("submit")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_host_that_fails_every_attempt_shows_its_attempts_though_retries_succeed_elsewhere() {
    let home = tempfile::tempdir().unwrap();
    two_local_hosts(home.path());
    let out = dts(home.path())
        .args(["submit", "--retries", "3", "--array", "1-8", "--json"])
        .args(["--", "test \"$DTS_HOST\" != a"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let a = host(&doc, "a");
    assert!(a["attempts"].as_u64().unwrap() >= 1, "{a}");
    assert_eq!(
        a["failed_attempts"], a["attempts"],
        "every attempt on a failed"
    );
    assert_eq!(a["tasks"], 0, "no task ended on a");
    let b = host(&doc, "b");
    assert_eq!(
        (b["tasks"].as_u64(), b["failed_attempts"].as_u64()),
        (Some(8), Some(0))
    );
    dts(home.path())
        .args(["status", "last"])
        .assert()
        .stdout(contains("failed attempts"));
}

#[test]
fn cancelled_tasks_are_not_counted_as_failed_in_the_host_rows() {
    let home = tempfile::tempdir().unwrap();
    two_local_hosts(home.path());
    let mark = marker("cancel-rows");
    dts(home.path())
        .args(["submit", "--detach", "--array", "1-8", "--"])
        .arg(format!("sleep 60 # {mark}"))
        .assert()
        .success();
    wait_running(home.path(), 4);
    dts(home.path()).args(["cancel", "last"]).assert().success();
    wait_until(Duration::from_secs(30), "the cancel", || {
        the_run(home.path()).is_some_and(|d| d.run.state == "cancelled")
    });
    let doc = status_json(home.path());
    assert_eq!(doc["tasks"]["cancelled"], 8);
    for name in ["a", "b"] {
        assert_eq!(host(&doc, name)["failed"], 0, "{doc}");
    }
    assert_eq!(doc["stats"]["completed"], 0);
    assert_eq!(doc["stats"]["throughput"], 0.0);
    no_process_left(&mark, Duration::from_secs(30));
}

#[test]
fn after_ctrl_c_the_summary_and_host_rows_agree_and_give_no_throughput() {
    let home = tempfile::tempdir().unwrap();
    two_local_hosts(home.path());
    let mark = marker("ctrl-c-rows");
    let command = format!("sleep 60 # {mark}");
    let child = spawn_submit(home.path(), &["--array", "1-6", "--", &command]);
    wait_running(home.path(), 4);
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("0 succeeded, 0 failed, 6 not run"),
        "{stderr}"
    );
    assert!(stderr.contains("no task ran to its end"), "{stderr}");
    assert!(
        !stderr.contains("tasks/s") && !stderr.contains("p50"),
        "{stderr}"
    );
    let doc = status_json(home.path());
    for name in ["a", "b"] {
        assert_eq!(host(&doc, name)["failed"], 0, "{doc}");
    }
    // The list counts what succeeded, not what stopped.
    dts(home.path())
        .arg("status")
        .assert()
        .stdout(contains("succeeded/failed/total").and(contains("0/0/6")));
    no_process_left(&mark, Duration::from_secs(30));
}

#[test]
fn status_of_a_dead_coordinators_run_shows_its_running_tasks_as_lost() {
    let home = tempfile::tempdir().unwrap();
    two_local_hosts(home.path());
    let mark = marker("dead-coordinator");
    dts(home.path())
        .args(["submit", "--detach", "--array", "1-6", "--"])
        .arg(format!("sleep 60 # {mark}"))
        .assert()
        .success();
    wait_running(home.path(), 4);
    let pid = the_run(home.path()).unwrap().run.pid.unwrap();
    // SAFETY: killing the coordinator this test started, as a crash would.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_until(Duration::from_secs(30), "the coordinator to die", || {
        the_run(home.path()).is_some_and(|d| d.run.state == "interrupted")
    });
    let doc = status_json(home.path());
    assert_eq!(doc["tasks"]["running"], 0, "{doc}");
    assert_eq!(doc["tasks"]["lost"], 4, "{doc}");
    assert!(
        doc.get("running").is_none(),
        "no task listed as running: {doc}"
    );
    dts(home.path())
        .args(["status", "last"])
        .assert()
        .stdout(contains("0 running").and(contains("4 lost")));
    no_process_left(&mark, Duration::from_secs(30));
}

#[test]
fn ru_and_lbd_leave_out_a_host_that_never_connected_and_mark_it() {
    let home = tempfile::tempdir().unwrap();
    // Nothing listens on `down`'s port: it is refused at once, and never connects.
    let port = free_port(std::net::Ipv4Addr::LOCALHOST);
    std::fs::write(
        home.path().join("hosts.toml"),
        format!(
            "[defaults]\nslots = 2\nconnect_timeout = \"5s\"\n\
             [[host]]\nname = \"a\"\ntransport = \"local\"\n{}",
            host_entry("down", "127.0.0.1", port)
        ),
    )
    .unwrap();
    let out = dts(home.path())
        .args(["submit", "--array", "1-4", "--", "sleep 0.2"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("│ down"), "not an idle host row: {stderr}");
    assert!(stderr.contains("left out: down: "), "{stderr}");
    let doc = status_json(home.path());
    let down = host(&doc, "down");
    assert_eq!(
        (down["connected"].as_bool(), down["slots"].as_u64()),
        (Some(false), Some(0))
    );
    let a = host(&doc, "a");
    assert_eq!(doc["stats"]["ru"], a["ru"], "RU is a's alone: {doc}");
    assert_eq!(doc["stats"]["lbd"], 0.0);
}

#[test]
fn a_host_still_connecting_when_a_short_run_ends_is_marked_not_idle() {
    let home = tempfile::tempdir().unwrap();
    // A listener that never answers: the SSH handshake waits for connect_timeout.
    let silent = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = silent.local_addr().unwrap().port();
    std::fs::write(
        home.path().join("hosts.toml"),
        format!(
            "[defaults]\nslots = 2\nconnect_timeout = \"60s\"\n\
             [[host]]\nname = \"a\"\ntransport = \"local\"\n{}",
            host_entry("slow", "127.0.0.1", port)
        ),
    )
    .unwrap();
    let out = dts(home.path())
        .args(["submit", "--array", "1-2", "--", "true"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("│ slow"), "not an idle host row: {stderr}");
    assert!(
        stderr.contains("left out: slow: never connected (still connecting when the run ended)"),
        "{stderr}"
    );
    dts(home.path())
        .args(["status", "last"])
        .assert()
        .stdout(contains("never connected"));
    drop(silent);
}

#[test]
fn speculation_records_the_superseded_copy_in_the_joblog_and_never_as_exit_0() {
    let home = tempfile::tempdir().unwrap();
    two_local_hosts(home.path());
    let mark = marker("superseded");
    // Task 5's first attempt hangs (then would go on and exit 0 if the kill let it).
    let command = format!(
        "if [ {{}} -eq 5 ] && [ $DTS_ATTEMPT -eq 1 ]; then sleep 300; fi; sleep 0.2 # {mark}"
    );
    dts(home.path())
        .args(["submit", "--speculate=3", "--kill-grace", "1s"])
        .args(["--joblog", "jobs.log", "--array", "1-12", "--"])
        .arg(&command)
        .assert()
        .success();
    let detail = the_run(home.path()).unwrap();
    let task = detail.task(5).unwrap();
    let attempts: Vec<&reader::AttemptRow> = detail
        .attempts
        .iter()
        .filter(|a| a.seq == task.seq)
        .collect();
    assert_eq!(attempts.len(), 2);
    let loser = attempts
        .iter()
        .find(|a| a.outcome.as_deref() == Some("superseded"))
        .expect("a superseded attempt");
    assert_ne!(
        loser.status,
        Some(dts::transport::ExitStatus::Code(0)),
        "a killed copy is never stored as exit 0"
    );
    let joblog = std::fs::read_to_string(home.path().join("jobs.log")).unwrap();
    let lines: Vec<Vec<&str>> = joblog
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .filter(|f: &Vec<&str>| f[0] == task.seq.to_string())
        .collect();
    assert_eq!(lines.len(), 2, "both attempts in the joblog:\n{joblog}");
    let exits: Vec<(&str, &str)> = lines.iter().map(|f| (f[6], f[7])).collect();
    assert!(exits.contains(&("0", "0")), "the winner: {exits:?}");
    assert_eq!(
        exits.iter().filter(|e| **e == ("0", "0")).count(),
        1,
        "the loser is not logged as a success: {exits:?}"
    );
    no_process_left(&mark, Duration::from_secs(30));
}

#[test]
fn speculation_logs_a_copy_that_failed_while_the_other_ran_on() {
    let home = tempfile::tempdir().unwrap();
    two_local_hosts(home.path());
    // Task 5's first attempt waits for `fail1` and fails; its copy waits for `release2`.
    let command = "if [ {} -eq 5 ]; then if [ $DTS_ATTEMPT -eq 1 ]; then \
                   while [ ! -e fail1 ]; do sleep 0.05; done; exit 1; fi; \
                   while [ ! -e release2 ]; do sleep 0.05; done; fi; sleep 0.2";
    let child = spawn_submit(
        home.path(),
        &[
            "--speculate=3",
            "--joblog",
            "jobs.log",
            "--array",
            "1-12",
            "--",
            command,
        ],
    );
    let attempt_running = |attempt: u32| {
        the_run(home.path()).is_some_and(|d| {
            let seq = d.task(5).unwrap().seq;
            d.attempts.iter().any(|a| {
                a.seq == seq && a.attempt == attempt && a.started.is_some() && a.outcome.is_none()
            })
        })
    };
    wait_until(Duration::from_secs(60), "a copy of task 5", || {
        attempt_running(2)
    });
    std::fs::write(home.path().join("fail1"), "").unwrap();
    wait_until(Duration::from_secs(30), "attempt 1 to fail", || {
        the_run(home.path()).is_some_and(|d| {
            let seq = d.task(5).unwrap().seq;
            d.attempts
                .iter()
                .any(|a| a.seq == seq && a.attempt == 1 && a.outcome.as_deref() == Some("failed"))
        })
    });
    std::fs::write(home.path().join("release2"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let joblog = std::fs::read_to_string(home.path().join("jobs.log")).unwrap();
    let exits: Vec<&str> = joblog
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f[0] == "5")
        .map(|f| f[6])
        .collect();
    assert_eq!(exits, ["1", "0"], "both attempts of task 5:\n{joblog}");
}
