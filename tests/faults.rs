//! The fault-injection suite: real sshd servers on loopback are killed, frozen, restarted or
//! misconfigured mid-run. After each fault: every task has exactly one recorded success
//! (and its marker file shows it ran), the exit code is as documented, and no task process
//! is left on any host. Tests wait on conditions, never on sleeps.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use dts::store::{StateDir, StateEnv, reader};
use predicates::str::contains;

fn state(home: &Path) -> StateDir {
    StateDir::locate(&StateEnv {
        home: Some(home.to_path_buf()),
        ..StateEnv::default()
    })
    .unwrap()
}

/// The only run in the lab's state directory, once it exists.
fn the_run(home: &Path) -> Option<reader::RunDetail> {
    let state = state(home);
    let id = state.run_ids().pop()?;
    reader::detail(&state, &id).ok()
}

/// A task currently running on `host`.
fn running_on(home: &Path, host: &str) -> bool {
    the_run(home).is_some_and(|d| {
        d.attempts
            .iter()
            .any(|a| a.host == host && a.outcome.is_none() && a.started.is_some())
    })
}

/// Every task succeeded exactly once in the record, and its marker file shows a run.
fn assert_each_task_succeeded_once(detail: &reader::RunDetail, markers: &Path) {
    for task in &detail.tasks {
        let successes = detail
            .attempts
            .iter()
            .filter(|a| a.seq == task.seq && a.outcome.as_deref() == Some("succeeded"))
            .count();
        assert_eq!(
            (task.state.as_str(), successes),
            ("succeeded", 1),
            "task {}",
            task.index
        );
        let marker = markers.join(task.index.to_string());
        assert!(marker.exists(), "task {} left no marker", task.index);
    }
}

/// A task that takes a moment, leaves a marker and can be found with pgrep.
fn marked_command(markers: &Path, mark: &str, seconds: &str) -> String {
    format!(
        "sleep {seconds}; echo $DTS_ATTEMPT >> {}/{{}}; : {mark}",
        markers.display()
    )
}

fn markers(lab: &Lab) -> PathBuf {
    let dir = lab.path("markers");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn spawn(lab: &Lab, args: &[&str]) -> Child {
    dts_process(lab.dir.path())
        .args(["submit", "-H"])
        .arg(lab.inventory())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_host_that_dies_mid_run_loses_no_task() {
    let mut lab = Lab::start(3);
    let (mark, markers) = (marker("dies"), markers(&lab));
    let command = marked_command(&markers, &mark, "1");
    let child = spawn(&lab, &["--array", "1-30", "--", &command]);
    wait_until(Duration::from_secs(60), "a task running on h2", || {
        running_on(lab.dir.path(), "h2")
    });
    lab.kill_host(1);
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("h2: connection lost"), "{stderr}");
    let detail = the_run(lab.dir.path()).unwrap();
    assert!(
        detail
            .attempts
            .iter()
            .any(|a| a.outcome.as_deref() == Some("requeued"))
    );
    assert_each_task_succeeded_once(&detail, &markers);
    no_process_left(&mark, Duration::from_secs(30));
}

#[test]
fn a_frozen_host_is_detected_and_its_tasks_run_elsewhere() {
    let lab = Lab::start(3);
    let (mark, markers) = (marker("frozen"), markers(&lab));
    let command = marked_command(&markers, &mark, "1");
    let child = spawn(
        &lab,
        &[
            "--keepalive",
            "1s",
            "--keepalive-count",
            "3",
            "--array",
            "1-30",
            "--",
            &command,
        ],
    );
    wait_until(Duration::from_secs(60), "a task running on h2", || {
        running_on(lab.dir.path(), "h2")
    });
    let frozen = lab.freeze_host(1);
    let (code, stderr) = finish(child);
    lab.thaw(&frozen);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("h2: host stopped answering"), "{stderr}");
    let detail = the_run(lab.dir.path()).unwrap();
    assert_each_task_succeeded_once(&detail, &markers);
    // Thawed, the host sees its connection gone: the wrappers kill what was left.
    no_process_left(&mark, Duration::from_secs(30));
}

#[test]
fn unreachable_and_refused_hosts_are_named_and_the_rest_finish() {
    let lab = Lab::start(2);
    keygen(&lab.path("strangerkey"));
    let closed = free_port(std::net::Ipv4Addr::new(127, 0, 0, 1));
    let mut text = lab.defaults(4);
    text.push_str(&host_entry(
        "good",
        &lab.hosts[0].address.to_string(),
        lab.hosts[0].port,
    ));
    text.push_str(&host_entry("closed", "127.0.0.1", closed));
    text.push_str(&host_entry(
        "wrongkey",
        &lab.hosts[1].address.to_string(),
        lab.hosts[1].port,
    ));
    text.push_str(&format!(
        "identity = \"{}\"\n",
        lab.path("strangerkey").display()
    ));
    std::fs::write(lab.inventory(), text).unwrap();
    let markers = markers(&lab);
    let out = lab
        .submit()
        .args(["--array", "1-20", "--"])
        .arg(marked_command(&markers, &marker("named"), "0"))
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("closed: connect to 127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("wrongkey: authentication as"), "{stderr}");
    assert!(
        stderr.contains("left out: wrongkey: authentication as"),
        "{stderr}"
    );
    assert_each_task_succeeded_once(&the_run(lab.dir.path()).unwrap(), &markers);
}

#[test]
fn all_hosts_down_exits_three_at_once() {
    let home = tempfile::tempdir().unwrap();
    let mut text = "[defaults]\nuser = \"nobody\"\nslots = 2\n".to_string();
    for i in 1..=3 {
        let port = free_port(std::net::Ipv4Addr::new(127, 0, 0, 1));
        text.push_str(&host_entry(&format!("down{i}"), "127.0.0.1", port));
    }
    std::fs::write(home.path().join("hosts.toml"), text).unwrap();
    dts(home.path())
        .args(["submit", "--array", "1-10", "--", "true"])
        .assert()
        .code(3)
        .stderr(contains("no host reachable: down1: connect to"))
        .stderr(contains("down3: connect to"));
}

#[test]
fn a_task_that_always_fails_is_retried_on_other_hosts() {
    let lab = Lab::start(3);
    let out = lab
        .submit()
        .args([
            "--retries",
            "2",
            "--array",
            "1-6",
            "--",
            "test {} -ne 4 || { echo 'cannot open input' >&2; exit 9; }",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("task 4 failed (exit 9)"), "{stderr}");
    assert!(
        stderr.contains("│ 4            ┆     1 ┆ exit 9: cannot open input │"),
        "{stderr}"
    );
    let detail = the_run(lab.dir.path()).unwrap();
    let task = detail.task(4).unwrap();
    let hosts: Vec<&str> = detail
        .attempts
        .iter()
        .filter(|a| a.seq == task.seq)
        .map(|a| a.host.as_str())
        .collect();
    assert_eq!(hosts.len(), 3, "one try and two retries");
    assert!(
        hosts.windows(2).all(|w| w[0] != w[1]),
        "each retry ran on another host: {hosts:?}"
    );
}

#[test]
fn a_timeout_kills_the_whole_task_and_counts_as_a_failure() {
    let lab = Lab::start(1);
    let mark = marker("timeout2");
    lab.submit()
        .args([
            "--timeout",
            "1s",
            "--kill-grace",
            "1s",
            "--retries",
            "1",
            "--array",
            "1",
            "--",
        ])
        .arg(format!("sleep 30 & sleep 30; : {mark}"))
        .assert()
        .code(1)
        .stderr(contains("task 1 timed out after 1s on h1; killing it"))
        .stderr(contains("retrying (attempt 2 of 2)"))
        .stderr(contains("┆     1 ┆ timed out"));
    no_process_left(&mark, Duration::from_secs(30));
}

#[test]
fn ctrl_c_then_retry_finishes_the_rest() {
    let lab = Lab::start(2);
    let (mark, markers) = (marker("ctrlc"), markers(&lab));
    let command = marked_command(&markers, &mark, "0.3");
    let child = spawn(
        &lab,
        &["--kill-grace", "1s", "--array", "1-40", "--", &command],
    );
    wait_until(Duration::from_secs(60), "some tasks to succeed", || {
        the_run(lab.dir.path()).is_some_and(|d| d.run.counts.succeeded >= 4)
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(130), "{stderr}");
    no_process_left(&mark, Duration::from_secs(30));
    let id = the_run(lab.dir.path()).unwrap().run.id;
    assert_eq!(the_run(lab.dir.path()).unwrap().run.state, "interrupted");
    dts(lab.dir.path()).args(["retry", &id]).assert().success();
    assert_each_task_succeeded_once(&the_run(lab.dir.path()).unwrap(), &markers);
    no_process_left(&mark, Duration::from_secs(30));
}

#[test]
fn nasty_items_pass_verbatim_with_nul_separated_items() {
    let lab = Lab::start(2);
    let pwned = lab.path("pwned");
    let p = pwned.display();
    let items = [
        format!("line one\nline two $(touch {p})"),
        format!("`touch {p}`; \"quoted\" 'single'"),
        format!("a | touch {p} & b ; c"),
        "unicode ✓ ünï\ttab".to_string(),
        "\n".to_string(),
        String::new(),
    ];
    let mut data = Vec::new();
    for item in &items {
        data.extend_from_slice(item.as_bytes());
        data.push(0);
    }
    std::fs::write(lab.path("items.bin"), &data).unwrap();
    let out = lab.path("out");
    std::fs::create_dir(&out).unwrap();
    // Each task writes its item byte for byte to a file named after its index.
    lab.submit()
        .args(["-0", "--items", "items.bin", "--", "printf", "%s", "{}"])
        .assert()
        .success();
    let detail = the_run(lab.dir.path()).unwrap();
    for (index, item) in (1..).zip(&items) {
        let path = detail.output_path(index, 1, dts::transport::Stream::Stdout);
        let got = std::fs::read(&path).unwrap_or_default();
        assert_eq!(got, item.as_bytes(), "item {index}");
    }
    assert!(!pwned.exists(), "an item was executed");
}

#[test]
fn speculation_copies_a_straggler_and_the_first_success_wins() {
    let lab = Lab::start(2);
    let (mark, markers) = (marker("straggler"), markers(&lab));
    // Task 5's first attempt hangs; every other run takes a moment.
    let command = format!(
        "if [ {{}} -eq 5 ] && [ $DTS_ATTEMPT -eq 1 ]; then sleep 300; fi; {}",
        marked_command(&markers, &mark, "0.2")
    );
    let out = lab
        .submit()
        .args(["--speculate=3", "--array", "1-12", "--"])
        .arg(&command)
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("task 5 has run"), "{stderr}");
    let detail = the_run(lab.dir.path()).unwrap();
    assert_each_task_succeeded_once(&detail, &markers);
    let task = detail.task(5).unwrap();
    let outcomes: Vec<&str> = detail
        .attempts
        .iter()
        .filter(|a| a.seq == task.seq)
        .filter_map(|a| a.outcome.as_deref())
        .collect();
    assert_eq!(
        outcomes,
        ["superseded", "succeeded"],
        "both attempts recorded"
    );
    no_process_left(&mark, Duration::from_secs(30));
}

#[test]
fn a_quarantined_host_rejoins_when_it_answers_again() {
    let mut lab = Lab::start(2);
    lab.kill_host(1);
    let (mark, markers) = (marker("rejoin"), markers(&lab));
    let command = marked_command(&markers, &mark, "0.5");
    let child = spawn(
        &lab,
        &[
            "--slots",
            "1",
            "--quarantine-after",
            "2",
            "--keepalive",
            "1s",
            "--keepalive-count",
            "2",
            "--array",
            "1-40",
            "--",
            &command,
        ],
    );
    wait_until(Duration::from_secs(60), "h2 to be quarantined", || {
        the_run(lab.dir.path()).is_some_and(|d| {
            d.hosts
                .iter()
                .any(|h| h.name == "h2" && h.state == "quarantined")
        })
    });
    lab.restart_host(1);
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("h2: quarantined after 2 failures"),
        "{stderr}"
    );
    assert!(
        stderr.contains("h2 answers again: it rejoins the run"),
        "{stderr}"
    );
    let detail = the_run(lab.dir.path()).unwrap();
    assert!(
        detail
            .attempts
            .iter()
            .any(|a| a.host == "h2" && a.outcome.as_deref() == Some("succeeded"))
    );
    assert_each_task_succeeded_once(&detail, &markers);
    no_process_left(&mark, Duration::from_secs(30));
}

#[test]
fn secrets_reach_tasks_but_no_command_line_store_or_log() {
    let lab = Lab::start(1);
    let secret = "hunter2-d0-not-log";
    let out = lab
        .submit()
        .env("API_TOKEN", secret)
        .args(["--secret-env", "API_TOKEN", "--array", "1-2", "--"])
        // The task checks its own command line (and its shell's) for the value.
        .arg(": {}; case \"$(cat /proc/$$/cmdline /proc/$PPID/cmdline | tr '\\0' ' ')\" in *\"$API_TOKEN\"*) echo LEAKED;; *) echo clean ${#API_TOKEN};; esac")
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches(&format!("clean {}", secret.len())).count(),
        2,
        "{stdout}"
    );
    let run = the_run(lab.dir.path()).unwrap();
    for entry in std::fs::read_dir(&run.dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds the secret",
                path.display()
            );
        }
    }
    // Unset, the run refuses to start rather than run without it.
    lab.submit()
        .env_remove("API_TOKEN")
        .args(["--secret-env", "API_TOKEN", "--", "true"])
        .assert()
        .code(2)
        .stderr(contains("API_TOKEN is not set"));
}

#[test]
fn when_every_host_is_quarantined_the_run_stops_with_exit_3() {
    let mut lab = Lab::start(1);
    let (mark, markers) = (marker("allout"), markers(&lab));
    let command = marked_command(&markers, &mark, "1");
    let child = spawn(
        &lab,
        &["--quarantine-after", "1", "--array", "1-20", "--", &command],
    );
    wait_until(Duration::from_secs(60), "a task running on h1", || {
        running_on(lab.dir.path(), "h1")
    });
    lab.kill_host(0);
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("h1: quarantined after 1 failures"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no host reachable: h1: quarantined"),
        "{stderr}"
    );
    let detail = the_run(lab.dir.path()).unwrap();
    assert_eq!(detail.run.state, "no-host");
    assert_eq!(detail.run.counts.succeeded + detail.run.counts.not_run, 20);
    no_process_left(&mark, Duration::from_secs(30));
}
