//! Warm execution (issue 15) on real sshd: tasks run on long-lived worker shells, one per
//! slot, with the per-task wrapper's guarantees: exact streams and statuses, leftovers
//! killed before the next task, kills of one task only, nothing left when dts dies, and a
//! lost host requeued. Each test's inventory says `execution = "warm"`.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

/// hosts.toml for every lab host, warm, with `slots` each.
fn warm_inventory(lab: &Lab, slots: u32) {
    let mut text = lab.defaults(slots);
    text.push_str("execution = \"warm\"\n");
    for h in &lab.hosts {
        text.push_str(&host_entry(&h.name, &h.address.to_string(), h.port));
    }
    std::fs::write(lab.inventory(), text).unwrap();
}

fn warm_lab(hosts: usize, slots: u32) -> Lab {
    let lab = Lab::start(hosts);
    warm_inventory(&lab, slots);
    lab
}

fn spawn(lab: &Lab, args: &[&str]) -> Child {
    dts_process(lab.dir.path())
        .args(["submit", "-H"])
        .arg(lab.inventory())
        .args(args)
        .env_remove("DTS_EXECUTION")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn submit(lab: &Lab) -> assert_cmd::Command {
    let mut cmd = lab.submit();
    cmd.env_remove("DTS_EXECUTION");
    cmd
}

/// Processes below the lab's sshds that are warm workers (their script names the ready
/// line) or carry `mark`.
fn left_on_hosts(lab: &Lab, mark: &str) -> Vec<String> {
    let pids: Vec<i32> = lab
        .hosts
        .iter()
        .flat_map(|h| descendants(h.pid()))
        .collect();
    pids.iter()
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains("__dts_warm_ready") || cmdline.contains(mark))
        .collect()
}

#[test]
fn tasks_run_on_workers_with_exact_streams_and_statuses() {
    let lab = warm_lab(1, 2);
    let out = submit(&lab)
        .args(["--array", "1-6", "--"])
        .arg(
            "case {} in 1) exit 143;; 2) kill -TERM $$;; 3) printf 'no newline' >&2;; \
             *) tr '\\0' '\\n' </proc/$PPID/cmdline | grep -c __dts_warm_ready;; esac",
        )
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("[h1 4] 1\n"),
        "task 4's parent is a worker: {stdout}"
    );
    assert!(stdout.contains("[h1 6] 1\n"), "{stdout}");
    assert!(stderr.contains("[h1 3] no newline"), "{stderr}");
    assert!(stderr.contains("exit 143"), "{stderr}");
    assert!(stderr.contains("signal TERM"), "{stderr}");
}

#[test]
fn a_leftover_background_job_of_a_finished_task_is_killed_and_never_prints_into_the_run() {
    let lab = warm_lab(1, 1);
    let mark = marker("warm-leftover");
    let out = submit(&lab)
        .args(["--array", "1-4", "--"])
        .arg(format!(
            "if [ {{}} = 1 ]; then (sleep 1; echo late; echo late >&2; : {mark}) & fi; \
             sleep 0.5; echo done {{}}"
        ))
        .assert()
        .success()
        .get_output()
        .clone();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains("late"),
        "a leftover printed into the run: {all}"
    );
    for i in 1..=4 {
        assert!(all.contains(&format!("[h1 {i}] done {i}\n")), "{all}");
    }
    wait_until(Duration::from_secs(5), "no leftover", || {
        processes_matching(&mark).is_empty()
    });
}

#[test]
fn a_timeout_inside_a_worker_kills_only_that_task() {
    let lab = warm_lab(1, 2);
    let mark = marker("warm-timeout");
    submit(&lab)
        .args([
            "--timeout",
            "2s",
            "--kill-grace",
            "1s",
            "--array",
            "1-4",
            "--",
        ])
        .arg(format!(
            "if [ {{}} = 2 ]; then trap '' TERM; sleep 30 & sleep 30; fi; sleep 0.3; echo ok {{}}; : {mark}"
        ))
        .assert()
        .code(1)
        .stderr(contains("task 2 timed out after 2s on h1; killing it"))
        .stdout(contains("[h1 1] ok 1"))
        .stdout(contains("[h1 3] ok 3"))
        .stdout(contains("[h1 4] ok 4"));
    no_process_left(&mark, Duration::from_secs(10));
}

#[test]
fn coordinator_sigkill_leaves_no_worker_and_no_task_on_the_hosts() {
    let lab = warm_lab(2, 2);
    let mark = marker("warm-sigkill");
    let child = spawn(
        &lab,
        &[
            "--kill-grace",
            "20s",
            "--array",
            "1-8",
            "--",
            &format!("trap '' TERM; sleep 30; : {mark}"),
        ],
    );
    wait_until(Duration::from_secs(30), "four tasks running", || {
        processes_matching(&mark).len() >= 4
    });
    // SAFETY: killing our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let mut child = child;
    child.wait().unwrap();
    // The tasks ignore TERM and have a 20 s grace: a worker that sees EOF (dts is gone)
    // KILLs its task 0.5 s after the TERM, so nothing is left seconds later.
    wait_until(Duration::from_secs(3), "workers and tasks to go", || {
        left_on_hosts(&lab, &mark).is_empty()
    });
}

/// A background job that left the task's process group (setsid) is no longer reached by
/// a group kill; the worker, a child subreaper, inherits it once its parent is gone and
/// kills it before the slot takes the next task.
#[test]
fn a_leftover_that_left_the_task_s_group_is_killed_before_the_next_task() {
    let lab = warm_lab(1, 1);
    let pidfile = lab.path("leftover.pid");
    std::fs::write(&pidfile, "").unwrap();
    let pidfile = pidfile.display();
    let out = submit(&lab)
        .args(["--array", "1-2", "--"])
        .arg(format!(
            "if [ {{}} = 1 ]; then setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' & \
             while [ ! -s {pidfile} ]; do sleep 0.05; done; echo started; \
             elif kill -0 \"$(cat {pidfile})\" 2>/dev/null; then echo alive; else echo none left; fi"
        ))
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[h1 1] started\n"), "{stdout}");
    assert!(stdout.contains("[h1 2] none left\n"), "{stdout}");
}

#[test]
fn a_host_whose_sshd_dies_mid_run_has_its_tasks_requeued() {
    let mut lab = warm_lab(2, 2);
    let markers = lab.path("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let command = format!("sleep 0.5; echo $DTS_ATTEMPT >> {}/{{}}", markers.display());
    let child = spawn(&lab, &["--array", "1-16", "--", &command]);
    wait_until(Duration::from_secs(30), "some tasks to finish", || {
        std::fs::read_dir(&markers).unwrap().count() >= 2
    });
    lab.kill_host(1);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("h2: connection lost"), "{stderr}");
    for i in 1..=16 {
        assert!(markers.join(i.to_string()).exists(), "task {i} never ran");
    }
}

#[test]
fn framing_survives_hostile_output() {
    let lab = warm_lab(1, 1);
    let out = submit(&lab)
        .args(["--array", "1-3", "--"])
        .arg(
            "case {} in \
             1) printf '__dts_e_\\000__dts_warm_ready\\n__dts_e_0_0 1 2\\n-\\n\\377';; \
             2) head -c 10485760 /dev/zero | tr '\\0' x;; \
             3) echo after;; esac",
        )
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = &out.stdout;
    let hostile =
        b"[h1 1] __dts_e_\0__dts_warm_ready\n[h1 1] __dts_e_0_0 1 2\n[h1 1] -\n[h1 1] \xff";
    assert!(
        stdout.windows(hostile.len()).any(|w| w == hostile),
        "{:?}",
        String::from_utf8_lossy(&stdout[..stdout.len().min(300)])
    );
    let xs = stdout.iter().filter(|&&b| b == b'x').count();
    assert_eq!(xs, 10 << 20, "10 MB without a newline come through whole");
    assert!(String::from_utf8_lossy(stdout).contains("[h1 3] after\n"));
}

#[test]
fn a_cancelled_run_kills_its_warm_tasks_and_workers() {
    let lab = warm_lab(1, 2);
    let mark = marker("warm-ctrlc");
    let child = spawn(
        &lab,
        &[
            "--kill-grace",
            "1s",
            "--array",
            "1-4",
            "--",
            &format!("sleep 30; : {mark}"),
        ],
    );
    wait_until(Duration::from_secs(30), "two tasks running", || {
        processes_matching(&mark).len() >= 2
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    wait_until(Duration::from_secs(5), "workers and tasks to go", || {
        left_on_hosts(&lab, &mark).is_empty()
    });
}

#[test]
fn dts_hosts_says_which_hosts_run_warm() {
    let lab = warm_lab(1, 2);
    hosts(&lab).stdout(contains("ok (warm)"));
}

/// `dts hosts` on the lab's inventory, in the inventory's own execution mode.
fn hosts(lab: &Lab) -> assert_cmd::assert::Assert {
    dts(lab.dir.path())
        .args(["hosts", "-H"])
        .arg(lab.inventory())
        .env_remove("DTS_EXECUTION")
        .assert()
        .success()
}

/// A host whose PATH has no `perl` cannot run workers: the probe says so, `dts hosts` shows
/// it, and its tasks run on per-task channels while the other host's run warm.
#[test]
fn a_host_without_perl_runs_its_tasks_on_per_task_channels() {
    let mut lab = Lab::start(1);
    // Every program of /usr/bin and /bin but perl, as the second host's whole PATH.
    let bin = lab.path("no-perl-bin");
    std::fs::create_dir(&bin).unwrap();
    for dir in ["/usr/bin", "/bin"] {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name();
            let link = bin.join(&name);
            if !name.to_string_lossy().starts_with("perl") && !link.exists() {
                std::os::unix::fs::symlink(entry.path(), link).unwrap();
            }
        }
    }
    let path = format!(" PATH={}", bin.display());
    lab.add_host_with("h2", |config| {
        config.replacen("SetEnv HOME=", &format!("SetEnv{path} HOME="), 1)
    });
    warm_inventory(&lab, 2);
    hosts(&lab).stdout(contains("ok (warm)").and(contains("per-task: no perl for warm workers")));
    let out = submit(&lab)
        .args([
            "-v",
            "--array",
            "1-8",
            "--",
            "command -v perl >/dev/null || echo no-perl",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("h2: no perl for warm workers"), "{stderr}");
    assert!(
        stdout.contains("[h2 ") && stdout.contains("no-perl"),
        "{stdout}"
    );
}

/// Regression: a command line longer than Linux takes for one exec argument (128 KiB, here
/// a 200 KB item) made a warm task fail with exit 127 and no word on why; a per-task
/// channel's `exec sh -c` says "Argument list too long" and exits 126. Now both do.
#[test]
fn an_overlong_command_line_fails_saying_why_with_exit_126() {
    let lab = warm_lab(1, 1);
    let items = lab.path("items");
    std::fs::write(&items, format!("{}\n", "y".repeat(200_000))).unwrap();
    let out = submit(&lab)
        .args(["--joblog", "-", "--items"])
        .arg(&items)
        .args(["--", "printf %s {} | wc -c"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[h1 1] dts worker: cannot run sh -c: Argument list too long"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("1\t"))
        .unwrap_or_else(|| panic!("no joblog row: {stdout}"));
    assert_eq!(row.split('\t').nth(6), Some("126"), "{row}");
}
