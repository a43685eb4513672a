//! `dts logs`: `--follow` waits for a queued task and follows its retries to the end;
//! `--attempt N` picks an attempt. Local transport: SSH is not the point here.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use dts::store::{StateDir, StateEnv, reader};
use predicates::str::contains;

/// One local host with one slot: a second task waits for the first.
fn one_slot_host(home: &Path) {
    std::fs::write(
        home.join("hosts.toml"),
        "[[host]]\nname = \"a\"\ntransport = \"local\"\nslots = 1\n",
    )
    .unwrap();
}

fn the_run(home: &Path) -> Option<reader::RunDetail> {
    let state = StateDir::locate(&StateEnv {
        home: Some(home.to_path_buf()),
        ..StateEnv::default()
    })
    .unwrap();
    let id = state.run_ids().pop()?;
    reader::detail(&state, &id).ok()
}

fn attempt_running(home: &Path, index: u64, attempt: u32) -> bool {
    the_run(home).is_some_and(|d| {
        let Some(task) = d.task(index) else {
            return false;
        };
        d.attempts.iter().any(|a| {
            a.seq == task.seq && a.attempt == attempt && a.started.is_some() && a.outcome.is_none()
        })
    })
}

fn follow(home: &Path, args: &[&str]) -> Child {
    dts_process(home)
        .args(["logs", "last"])
        .args(args)
        .arg("--follow")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn touch(home: &Path, name: &str) {
    std::fs::write(home.join(name), "").unwrap();
}

#[test]
fn logs_follow_waits_for_a_queued_task_instead_of_giving_up() {
    let home = tempfile::tempdir().unwrap();
    one_slot_host(home.path());
    // Each task waits for its go file, so task 2 stays queued behind task 1.
    dts(home.path())
        .args(["submit", "--detach", "--array", "1-2", "--"])
        .arg("while [ ! -e go{} ]; do sleep 0.05; done; echo out {}")
        .assert()
        .success();
    wait_until(Duration::from_secs(30), "task 1 to run", || {
        attempt_running(home.path(), 1, 1)
    });
    let mut follower = follow(home.path(), &["2"]);
    // It says it waits (task 2 is still queued) rather than exit.
    let mut stderr = BufReader::new(follower.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains("task 2 is queued; waiting for attempt 1"),
        "{line}"
    );
    touch(home.path(), "go1");
    touch(home.path(), "go2");
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out 2\n");
}

#[test]
fn logs_follow_follows_the_retries_until_the_task_is_final() {
    let home = tempfile::tempdir().unwrap();
    one_slot_host(home.path());
    // Attempts 1 and 2 fail, attempt 3 succeeds; each waits for its go file.
    dts(home.path())
        .args(["submit", "--detach", "--retries", "2", "--array", "1", "--"])
        .arg("echo attempt $DTS_ATTEMPT; while [ ! -e go$DTS_ATTEMPT ]; do sleep 0.05; done; test $DTS_ATTEMPT -ge 3")
        .assert()
        .success();
    wait_until(Duration::from_secs(30), "attempt 1 to run", || {
        attempt_running(home.path(), 1, 1)
    });
    let mut follower = follow(home.path(), &["1"]);
    let mut stdout = BufReader::new(follower.stdout.take().unwrap());
    // Each attempt's line comes through the follower before the attempt may end.
    for attempt in 1..=3 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, format!("attempt {attempt}\n"));
        touch(home.path(), &format!("go{attempt}"));
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "the follower ends with the task");
    assert!(follower.wait().unwrap().success());
    // --attempt picks one of them, with or without --follow.
    dts(home.path())
        .args(["logs", "last", "1", "--attempt", "2"])
        .assert()
        .success()
        .stdout("attempt 2\n");
    dts(home.path())
        .args(["logs", "last", "1", "--attempt", "1", "--follow"])
        .assert()
        .success()
        .stdout("attempt 1\n");
    dts(home.path())
        .args(["logs", "last", "1", "--attempt", "4"])
        .assert()
        .code(2)
        .stderr(contains(
            "task 1 has had 3 attempts: --attempt 4 does not exist",
        ));
}
