//! Silence between dts and a host, from either side: a network that drops packets without
//! an error, and a coordinator that is stopped. Regression tests for issue 12, items 9 and
//! 10; the partition runs in a network namespace the test makes itself (needs root).

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::netns::Netns;
use common::*;

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

/// Task processes matching `mark` and `what`, other than dts itself (whose own command line
/// holds the task's).
fn tasks_matching(mark: &str, what: &str, dts: &Child) -> usize {
    let own = format!("{} ", dts.id());
    processes_matching(mark)
        .iter()
        .filter(|p| p.contains(what) && !p.starts_with(&own))
        .count()
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: signalling the dts this test started.
    unsafe { libc::kill(child.id() as i32, signal) };
}

/// Regression (issue 12, item 9): with packets to a host dropped, dts requeued its tasks,
/// but they kept running there, after dts had exited and for 20-60 s after the link
/// healed. The host's guard now kills them once it has heard nothing for keepalive × count.
#[test]
fn a_silent_partition_leaves_no_task_running_on_the_cut_off_host() {
    let ns = Netns::create();
    let mut lab = Lab::start(0);
    lab.add_netns_host("far", &ns);
    let mark = marker("partition");
    let started = lab.path("started");
    let command = format!("touch {}; sleep 300; : {mark}", started.display());
    let child = spawn(
        &lab,
        &[
            "--keepalive",
            "1s",
            "--keepalive-count",
            "2",
            "--array",
            "1",
            "--",
            &command,
        ],
    );
    wait_until(Duration::from_secs(30), "the task to start", || {
        started.exists()
    });
    let on_the_host = || tasks_matching(&mark, "sleep 300", &child);
    assert!(on_the_host() > 0);
    ns.cut();
    // While the link stays cut, the host must end its tasks by itself.
    wait_until(
        Duration::from_secs(20),
        "the cut-off host to kill its task",
        || on_the_host() == 0,
    );
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    ns.heal();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("far: host stopped answering"), "{stderr}");
    assert_eq!(out.status.code(), Some(130), "{stderr}");
}

/// Regression (issue 12, item 10): a coordinator stopped (SIGSTOP, Ctrl-Z, a frozen VM)
/// longer than keepalive × count declared every healthy host dead on resume, killed and
/// redid all running work and charged each host a failure (with `--quarantine-after 1`
/// the run aborted with exit 3). The silence was dts's own: nobody is blamed, the tasks
/// its hosts killed meanwhile run again, and the run succeeds.
#[test]
fn a_stopped_coordinator_does_not_blame_its_hosts() {
    let lab = Lab::start(2);
    let mark = marker("stopped");
    let runs = lab.path("runs");
    std::fs::create_dir(&runs).unwrap();
    let command = format!(
        "touch {}/{{}}.$DTS_ATTEMPT; sleep 4; : {mark}",
        runs.display()
    );
    let child = spawn(
        &lab,
        &[
            "--keepalive",
            "1s",
            "--keepalive-count",
            "2",
            "--quarantine-after",
            "1",
            "--array",
            "1-4",
            "--",
            &command,
        ],
    );
    wait_until(Duration::from_secs(30), "4 tasks to start", || {
        std::fs::read_dir(&runs).unwrap().count() == 4
    });
    signal(&child, libc::SIGSTOP);
    // The hosts' guards hear no heartbeat and end the tasks while dts is stopped.
    wait_until(
        Duration::from_secs(30),
        "the hosts to kill the tasks of the stopped dts",
        || tasks_matching(&mark, "sleep 4", &child) == 0,
    );
    signal(&child, libc::SIGCONT);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("4 tasks: 4 succeeded"), "{stderr}");
    assert!(stderr.contains("its tasks run again"), "{stderr}");
    assert!(!stderr.contains("quarantined"), "{stderr}");
    assert!(!stderr.contains("stopped answering"), "{stderr}");
    assert!(stderr.contains("0 retries"), "{stderr}");
    // Each task ran again after the guard killed its first attempt (a later attempt may
    // itself have been requeued unstarted, from a host whose guard had also given up).
    let listing: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for i in 1..=4 {
        let runs_of_i = listing
            .iter()
            .filter(|f| f.starts_with(&format!("{i}.")))
            .count();
        assert!(
            runs_of_i >= 2,
            "task {i} did not run again: {listing:?}\n{stderr}"
        );
    }
    no_process_left(&mark, Duration::from_secs(20));
}

/// Review finding: a consumer that stops reading dts's stdout (a full pipe, `| less`
/// left alone, Ctrl-S) blocked the dispatcher, then every connection thread on the full
/// event queue, so no heartbeat went out and the hosts' guards killed every task, which
/// then ran again. Heartbeats go on while the queue is full.
#[test]
fn a_blocked_stdout_does_not_make_hosts_kill_their_tasks() {
    let lab = Lab::start(1);
    let mark = marker("blocked-stdout");
    // 200 MB: more than the event queue holds, so the connection thread waits on it.
    let command = format!("head -c 200000000 /dev/zero; sleep 1; : {mark}");
    let mut child = dts_process(lab.dir.path())
        .args(["submit", "-H"])
        .arg(lab.inventory())
        .args([
            "--keepalive",
            "1s",
            "--keepalive-count",
            "2",
            "--output",
            "raw",
            "--array",
            "1",
            "--",
            &command,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads stdout for well over keepalive × count (2 s): the guard would have
    // given up by then.
    std::thread::sleep(Duration::from_secs(6));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let out = child.wait_with_output().unwrap();
    let read = reader.join().unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("killed its tasks"), "{stderr}");
    assert!(stderr.contains("0 requeues"), "{stderr}");
    assert_eq!(read, 200_000_000);
}
