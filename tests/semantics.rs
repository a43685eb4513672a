//! A task behaves exactly as its command line would under `sh -c` on its host, and dts's
//! end never leaves it running: regression tests for the defects of issue 12, each run on
//! real sshd and, where the transport matters, on the local transport too.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use predicates::str::contains;

fn spawn(lab: &Lab, via: Via, args: &[&str]) -> Child {
    let mut cmd = dts_process(lab.dir.path());
    cmd.arg("submit");
    match via {
        Via::Ssh => cmd.arg("-H").arg(lab.inventory()),
        Via::Local => cmd.args(["--slots", "4"]),
    };
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn q(path: &Path) -> String {
    format!("'{}'", path.display())
}

/// Regression (issue 12, item 1): a killed command line kept running: `sleep 3; touch
/// after` made `after` 3 s after Ctrl-C, `--timeout` or a cancel, because the shell that
/// evaluated it caught TERM. Nothing after the killed command may run.
#[test]
fn a_killed_command_line_runs_nothing_after_the_killed_command() {
    let lab = Lab::start(1);
    for via in [Via::Ssh, Via::Local] {
        let mark = marker("rest-of-line");
        let (started, after) = (lab.path("started"), lab.path("after"));
        let command = format!(
            "touch {}; sleep 3; touch {}; : {mark}",
            q(&started),
            q(&after)
        );
        lab.submit_via(via)
            .args(["--timeout", "1s", "--array", "1", "--", &command])
            .assert()
            .code(1);
        no_process_left(&mark, Duration::from_secs(20));
        assert!(started.exists(), "{via:?}");
        assert!(
            !after.exists(),
            "{via:?}: the rest of the line ran after --timeout"
        );

        std::fs::remove_file(&started).unwrap();
        let child = spawn(&lab, via, &["--array", "1", "--", &command]);
        wait_until(Duration::from_secs(30), "the task to start", || {
            started.exists()
        });
        // SAFETY: signalling the dts this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{via:?}");
        no_process_left(&mark, Duration::from_secs(20));
        assert!(
            !after.exists(),
            "{via:?}: the rest of the line ran after Ctrl-C"
        );
        std::fs::remove_file(&started).unwrap();
    }
}

/// Regression (issue 12, item 2): `kill -TERM $$` inside a task was ignored and the task
/// counted as succeeded; under `sh -c` the shell dies of TERM.
#[test]
fn a_task_that_kills_its_own_shell_dies_of_that_signal() {
    let lab = Lab::start(1);
    for via in [Via::Ssh, Via::Local] {
        lab.submit_via(via)
            .args(["--array", "1", "--", ": {}; kill -TERM $$; echo survived"])
            .assert()
            .code(1)
            .stdout(contains("survived").not())
            .stderr(contains("┆     1 ┆ signal TERM"));
    }
}

/// Regression (issue 12, item 3): a TERM sent to a child was often lost, because the child
/// ran the wrapper's TERM trap until it exec'd. Every one of 24 copies must see it.
#[test]
fn a_term_sent_to_a_child_is_never_lost() {
    let lab = Lab::start(2);
    for via in [Via::Ssh, Via::Local] {
        lab.submit_via(via)
            .args([
                "--array",
                "1-24",
                "--",
                ": {}; sleep 4 & kill -TERM $!; wait $!; exit $?",
            ])
            .assert()
            .code(1)
            .stderr(contains("24 tasks: 0 succeeded, 24 failed"))
            // Every one exits 143; whether dash also prints "Terminated" is its own race,
            // which folds the causes into one row or two.
            .stderr(contains("┆ exit 143"))
            .stderr(contains("signal").not());
    }
}

/// Regression (issue 12, item 4): a bare `wait` hung for ever, because the watcher was one
/// of the task shell's jobs.
#[test]
fn a_bare_wait_waits_only_for_the_task_s_own_jobs() {
    let lab = Lab::start(1);
    for via in [Via::Ssh, Via::Local] {
        let out = lab
            .submit_via(via)
            .args([
                "--array",
                "1-2",
                "--",
                ": {}; sleep 1 & wait; echo \"done [$!]\"",
            ])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let text = String::from_utf8_lossy(&out);
        assert_eq!(text.matches("done [").count(), 2, "{via:?}: {text}");
    }
}

/// Regression (issue 12, item 6): when dts died, tasks died of SIGPIPE before their TERM
/// handler ran. What a task gets on that path is documented (README, "When dts dies"):
/// its output is already closed, so a write (its shell's "Terminated" line included) raises
/// SIGPIPE; TERM comes at once and KILL after `--kill-grace`. A task that ignores SIGPIPE
/// runs its TERM handler within the grace.
#[test]
fn a_killed_dts_gives_its_tasks_their_term_grace() {
    let lab = Lab::start(1);
    for via in [Via::Ssh, Via::Local] {
        let dir = lab.path(&format!("grace-{via:?}"));
        std::fs::create_dir(&dir).unwrap();
        let mark = marker("grace");
        let command = format!(
            "trap '' PIPE; trap 'touch {d}/graced.{{}}; exit 0' TERM; touch {d}/started.{{}}; \
             while :; do sleep 0.2; done; : {mark}",
            d = dir.display()
        );
        let mut child = spawn(&lab, via, &["--array", "1-4", "--", &command]);
        wait_until(Duration::from_secs(30), "4 tasks to start", || {
            (1..=4).all(|i| dir.join(format!("started.{i}")).exists())
        });
        child.kill().unwrap();
        child.wait().unwrap();
        no_process_left(&mark, Duration::from_secs(20));
        for i in 1..=4 {
            assert!(
                dir.join(format!("graced.{i}")).exists(),
                "{via:?}: task {i}'s TERM handler did not run"
            );
        }
    }
}

/// Regression (issue 12, item 7): a task command over about 33 KB broke the connection each
/// time it was sent ("Unable to send channel request"), was requeued as a host failure and
/// quarantined every host. A command's length is no host failure, nor a limit below the
/// host's own (`sh -c` takes up to 128 KiB).
#[test]
fn a_long_item_runs_like_any_other() {
    let lab = Lab::start(2);
    let items = lab.path("items");
    let long = "é'\"$(x)`;".repeat(10_000);
    std::fs::write(&items, format!("short\n{long}\n{}\n", "y".repeat(40_000))).unwrap();
    for via in [Via::Ssh, Via::Local] {
        let out = lab
            .submit_via(via)
            .args(["--items"])
            .arg(&items)
            .args(["--output", "grouped", "--", "printf %s {} | wc -c"])
            .assert()
            .success()
            .stderr(contains("3 tasks: 3 succeeded"))
            .stderr(contains("0 requeues"))
            .get_output()
            .stdout
            .clone();
        let mut counts: Vec<u64> = String::from_utf8_lossy(&out)
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        counts.sort();
        assert_eq!(counts, [5, 40_000, long.len() as u64], "{via:?}");
    }
}

/// Regression (issue 12, item 11): a host whose session start prints on stderr (an
/// `sshrc`, a shell warning) timed out in the probe after 30 s and was left out.
#[test]
fn login_noise_on_stderr_leaves_the_host_usable() {
    let lab = Lab::start(1);
    // The lab's sessions run the login shell (bash for root) with HOME in the lab.
    std::fs::write(
        lab.path("home/.bashrc"),
        "echo 'warning: noisy login' >&2\n",
    )
    .unwrap();
    std::fs::write(lab.path("home/.profile"), "echo 'noisy profile' >&2\n").unwrap();
    // Per-task channels: as with `ssh`, the noise is part of each task's stderr.
    lab.submit()
        .env("DTS_EXECUTION", "per-task")
        .args(["--array", "1-2", "--", ": {}; echo ok"])
        .timeout(Duration::from_secs(20))
        .assert()
        .success()
        .stdout(contains("[h1 1] ok"))
        .stderr(contains("[h1 1] warning: noisy login"));
    // Warm workers: the login shell runs once per worker, before its ready line; what it
    // prints is no task's.
    lab.submit()
        .env("DTS_EXECUTION", "warm")
        .args(["--array", "1-2", "--", ": {}; echo ok"])
        .timeout(Duration::from_secs(20))
        .assert()
        .success()
        .stdout(contains("[h1 1] ok").and(contains("[h1 2] ok")))
        .stderr(contains("noisy").not());
}

/// Regression (issue 12, item 14): after SIGKILL of dts with 32 tasks on 4 hosts, task
/// processes were still there 1 s later. Now none is (measured: a few tens of ms).
#[test]
fn a_killed_dts_leaves_nothing_on_four_hosts_a_second_later() {
    let lab = Lab::start(4);
    lab.write_inventory(8);
    let mark = marker("killed-fast");
    let started = lab.path("started");
    std::fs::create_dir(&started).unwrap();
    let command = format!("touch {}/{{}}; sleep 300; : {mark}", started.display());
    let mut child = spawn(&lab, Via::Ssh, &["--array", "1-32", "--", &command]);
    wait_until(Duration::from_secs(60), "32 tasks to start", || {
        std::fs::read_dir(&started).unwrap().count() == 32
    });
    child.kill().unwrap();
    child.wait().unwrap();
    no_process_left(&mark, Duration::from_secs(1));
}

use predicates::prelude::PredicateBooleanExt;

/// Regression (issue 13, item 14): the wrapper's own `Terminated` lines leaked into task
/// stderr, failure causes and JUnit when a task was killed. A killed task's stderr holds
/// only what the task wrote.
#[test]
fn a_killed_task_s_stderr_holds_no_line_of_the_wrapper() {
    let lab = Lab::start(1);
    for via in [Via::Ssh, Via::Local] {
        let junit = lab.path(&format!("junit-{via:?}.xml"));
        lab.submit_via(via)
            .args(["--timeout", "1s", "--kill-grace", "1s", "--junit"])
            .arg(&junit)
            .args(["--array", "1-2", "--", "echo own >&2; sleep 5; echo after"])
            .assert()
            .code(1)
            .stderr(contains("Terminated").not())
            .stderr(contains("] own"));
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(!xml.contains("Terminated"), "{via:?}: {xml}");
        dts(lab.dir.path())
            .args(["logs", "last", "1", "--stderr"])
            .assert()
            .success()
            .stdout("own\n");
    }
}

/// Regression (issue 12, item 8): the coordinator spun, about a core per host with no task
/// yet (`--array 1 -- 'sleep 3'` on 4 hosts burnt 2.5-4.5 s of CPU in 3 s), because an
/// idle connection's socket stayed readable with nothing reading it. Now each connection
/// reads its guard's channel; the whole run costs a few tens of ms.
#[test]
// The child is reaped by wait4, which also gives its CPU use; clippy cannot see that.
#[allow(clippy::zombie_processes)]
fn an_idle_coordinator_does_not_spin() {
    let lab = Lab::start(4);
    let child = spawn(&lab, Via::Ssh, &["--array", "1", "--", "sleep 3"]);
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for the child this test started.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let used = cpu(usage.ru_utime) + cpu(usage.ru_stime);
    // A spinning coordinator uses most of the 3 s on every idle host's thread.
    assert!(used < 1.0, "dts used {used:.2} s of CPU for a 3 s sleep");
}
