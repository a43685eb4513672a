//! The Slurm transport against a real Slurm (tests/common/slurm.rs): allocation, steps on
//! the nodes placement chose, exit codes and signals through srun, release at the end and
//! on Ctrl-C, a node going down mid-run, dts inside sbatch, and an unsatisfiable request.

mod common;
#[path = "common/slurm.rs"]
mod slurm_lab;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use predicates::str::contains;
use slurm_lab::SlurmLab;

fn pool(home: &std::path::Path, table: &str) {
    std::fs::write(home.join("hosts.toml"), format!("[slurm]\n{table}")).unwrap();
}

fn assert_released(lab: &SlurmLab) {
    wait_until(Duration::from_secs(20), "no job and no step", || {
        lab.live_jobs().trim().is_empty() && lab.steps().trim().is_empty()
    });
}

#[test]
fn thirty_tasks_round_robin_over_three_nodes_then_the_allocation_is_released() {
    let Some(lab) = SlurmLab::start(3, 2) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    pool(home.path(), "nodes = 3\ntime = \"5\"\ncpus_per_node = 2\n");
    let out = lab
        .dts(home.path())
        .args(["submit", "--algo", "round-robin", "--array", "0-29", "--"])
        .arg("echo $SLURMD_NODENAME")
        .assert()
        .success()
        .stderr(contains("running on n[1-3]"))
        .get_output()
        .clone();
    let mut per_node: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (host, index, line) in tagged_lines(&out.stdout) {
        assert_eq!(host, line, "task {index} ran on the node dts chose");
        per_node.entry(line).or_default().push(index);
    }
    assert_eq!(per_node.keys().collect::<Vec<_>>(), ["n1", "n2", "n3"]);
    let total: usize = per_node.values().map(Vec::len).sum();
    assert_eq!(total, 30);
    // Round-robin deals the tasks in turn over free slots: a node up a moment later, or
    // whose worker steps start later on this loaded machine, misses a few turns.
    assert!(
        per_node
            .values()
            .all(|tasks| (7..=13).contains(&tasks.len())),
        "{per_node:?}"
    );
    assert_released(&lab);
}

#[test]
fn exit_codes_and_signals_pass_through_srun() {
    let Some(lab) = SlurmLab::start(3, 2) else {
        return;
    };
    for execution in ["warm", "per-task"] {
        exit_codes_pass_through(&lab, execution);
    }
}

fn exit_codes_pass_through(lab: &SlurmLab, execution: &str) {
    let home = tempfile::tempdir().unwrap();
    pool(
        home.path(),
        &format!("nodes = 2\ncpus_per_node = 1\nexecution = \"{execution}\"\n"),
    );
    let joblog = home.path().join("joblog");
    lab.dts(home.path())
        .args(["submit", "--array", "0-3", "--joblog"])
        .arg(&joblog)
        .args([
            "--",
            "case {} in 0) exit 0;; 1) exit 7;; 2) kill -TERM $$;; 3) exit 143;; esac",
        ])
        .assert()
        .code(1);
    let log = std::fs::read_to_string(&joblog).unwrap();
    // Joblog columns as in GNU parallel: ... Exitval Signal Command.
    let rows: BTreeMap<String, (String, String)> = log
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), (f[6].to_string(), f[7].to_string()))
        })
        .collect();
    let status = |seq: &str| rows[seq].clone();
    assert_eq!(status("0"), ("0".into(), "0".into()), "{log}");
    assert_eq!(status("1"), ("7".into(), "0".into()), "{log}");
    assert_eq!(status("2").1, "15", "a task killed by TERM: {log}");
    assert_eq!(
        status("3"),
        ("143".into(), "0".into()),
        "exit 143 is not a signal ({execution}): {log}"
    );
    assert_released(lab);
}

#[test]
fn ctrl_c_mid_run_leaves_no_process_no_step_and_no_job() {
    let Some(lab) = SlurmLab::start(3, 2) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    pool(home.path(), "nodes = 3\ncpus_per_node = 1\n");
    let mark = marker("slurm-ctrl-c");
    let mut child = lab
        .dts_process(home.path())
        .args(["submit", "--array", "1-6", "--"])
        .arg(format!("sleep 300; echo {mark}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "three steps running", || {
        lab.steps()
            .lines()
            .filter(|l| !l.contains(".batch"))
            .count()
            >= 3
            && processes_matching(&mark).len() >= 3
    });
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_released(&lab);
    no_process_left(&mark, Duration::from_secs(10));
}

#[test]
fn a_node_set_down_mid_run_is_a_host_failure_and_its_tasks_are_requeued() {
    let Some(lab) = SlurmLab::start(3, 1) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    pool(home.path(), "nodes = 3\ncpus_per_node = 1\n");
    let flag = home.path().join("go");
    let child = lab
        .dts_process(home.path())
        .args(["submit", "--algo", "round-robin", "--array", "1-6", "--"])
        .arg(format!(
            "while [ ! -e {} ]; do sleep 0.1; done; echo $SLURMD_NODENAME",
            flag.display()
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "a step on n3", || {
        lab.steps()
            .lines()
            .any(|l| l.ends_with("|n3") && !l.contains(".batch"))
    });
    lab.output(
        "scontrol",
        &["update", "nodename=n3", "state=down", "reason=test"],
    );
    std::fs::write(&flag, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("slurm node n3 left allocation"), "{stderr}");
    let lines = tagged_lines(&out.stdout);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(lines.len(), 6, "every task finished once: {stdout}{stderr}");
    assert!(
        lines
            .iter()
            .all(|(host, _, line)| host == line && host != "n3")
    );
    assert_released(&lab);
}

#[test]
fn inside_an_sbatch_job_the_allocation_is_the_inventory() {
    let Some(lab) = SlurmLab::start(3, 2) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out");
    let dts = assert_cmd::cargo::cargo_bin("dts");
    let wrap = format!(
        "cd {home} && HOME={home} {dts} submit --algo round-robin --array 1-6 -- 'echo $SLURMD_NODENAME'",
        home = home.path().display(),
        dts = dts.display()
    );
    let job = lab.output(
        "sbatch",
        &[
            "--parsable",
            "-N3",
            "-o",
            out.to_str().unwrap(),
            "--wrap",
            &wrap,
        ],
    );
    let job = job.trim().to_string();
    wait_until(Duration::from_secs(60), "the batch job to end", || {
        !lab.live_jobs().contains(&format!("{job}|"))
    });
    let text = std::fs::read_to_string(&out).unwrap();
    let nodes: std::collections::BTreeSet<String> = text
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        nodes.into_iter().collect::<Vec<_>>(),
        ["n1", "n2", "n3"],
        "{text}"
    );
    assert!(text.contains("6 succeeded"), "{text}");
}

#[test]
fn an_unsatisfiable_request_is_a_clear_error_with_exit_3() {
    let Some(lab) = SlurmLab::start(3, 2) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    pool(home.path(), "nodes = 9\n");
    lab.dts(home.path())
        .args(["submit", "--array", "1-2", "--", "true"])
        .assert()
        .code(3)
        .stderr(contains(
            "can never start as asked (pending reason PartitionConfig)",
        ));
    assert_released(&lab);
}

#[test]
fn cancel_releases_the_allocation_of_a_crashed_coordinator() {
    let Some(lab) = SlurmLab::start(3, 2) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    pool(home.path(), "nodes = 1\ncpus_per_node = 1\n");
    let mut child = lab
        .dts_process(home.path())
        .args(["submit", "--array", "1-2", "--", "sleep 300"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "a step running", || {
        lab.steps().lines().any(|l| !l.contains(".batch"))
    });
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert!(
        !lab.live_jobs().trim().is_empty(),
        "the crash leaves the allocation"
    );
    lab.dts(home.path())
        .args(["cancel", "last"])
        .assert()
        .success();
    assert_released(&lab);
}

/// Regression: `dts hosts` called a `[slurm]` table an unknown inventory key.
#[test]
fn dts_hosts_on_a_slurm_pool_says_its_hosts_come_from_the_allocation() {
    let home = tempfile::tempdir().unwrap();
    pool(home.path(), "nodes = 3\n");
    dts(home.path())
        .args(["hosts"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("the inventory is a [slurm] pool"));
}

/// `dts status RUN` of the run in `home`'s state directory.
fn status_text(lab: &SlurmLab, home: &std::path::Path, run: &str) -> String {
    let out = lab.dts(home).args(["status", run]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_detached_run_on_slurm_keeps_its_allocation_until_cancel_releases_it() {
    let Some(lab) = SlurmLab::start(3, 2) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    pool(home.path(), "nodes = 2\ncpus_per_node = 1\n");
    let mark = marker("slurm-detach");
    let out = lab
        .dts(home.path())
        .args(["submit", "--detach", "--array", "1-4", "--"])
        .arg(format!("sleep 300; echo {mark}"))
        .assert()
        .success()
        .stderr(contains("started in the background"))
        .get_output()
        .clone();
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // The submitting process has exited: the steps run under the detached coordinator.
    wait_until(Duration::from_secs(30), "two steps running", || {
        processes_matching(&mark).len() >= 2
    });
    assert!(status_text(&lab, home.path(), &id).contains("slurm job"));
    lab.dts(home.path())
        .args(["cancel", &id])
        .assert()
        .success();
    assert_released(&lab);
    no_process_left(&mark, Duration::from_secs(10));
}

#[test]
fn a_dry_run_on_slurm_plans_on_the_predicted_nodes_and_submits_nothing() {
    let Some(lab) = SlurmLab::start(3, 2) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    pool(home.path(), "nodes = 3\ncpus_per_node = 2\n");
    let out = lab
        .dts(home.path())
        .args([
            "submit",
            "--dry-run",
            "--algo",
            "round-robin",
            "--array",
            "1-6",
            "--",
            "true",
        ])
        .assert()
        .success()
        .stderr(contains("sbatch --test-only; nothing submitted"))
        .get_output()
        .clone();
    let plan = String::from_utf8_lossy(&out.stdout);
    for line in ["n1  tasks 1,4", "n2  tasks 2,5", "n3  tasks 3,6"] {
        assert!(plan.contains(line), "{plan}");
    }
    assert!(
        lab.live_jobs().trim().is_empty(),
        "a dry run submits no job"
    );
    // More nodes than the cluster has: the same exit 3 a real submission gives.
    pool(home.path(), "nodes = 9\n");
    lab.dts(home.path())
        .args(["submit", "--dry-run", "--array", "1-6", "--", "true"])
        .assert()
        .code(3)
        .stderr(contains("slurm"));
}

#[test]
fn retry_on_slurm_runs_the_failed_task_in_a_new_allocation() {
    let Some(lab) = SlurmLab::start(3, 2) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    pool(home.path(), "nodes = 2\ncpus_per_node = 1\n");
    let fixed = home.path().join("fixed");
    let command = format!(
        "if [ {{}} = 3 ] && [ ! -e {} ]; then exit 5; fi; echo ok {{}}",
        fixed.display()
    );
    lab.dts(home.path())
        .args(["submit", "--array", "1-4", "--", &command])
        .assert()
        .code(1);
    assert_released(&lab);
    let first = status_text(&lab, home.path(), "last");
    assert!(first.contains("3 succeeded, 1 failed"), "{first}");
    std::fs::write(&fixed, "").unwrap();
    let out = lab
        .dts(home.path())
        .args(["retry", "last"])
        .assert()
        .success()
        .stderr(contains("running on"))
        .get_output()
        .clone();
    let lines = tagged_lines(&out.stdout);
    assert_eq!(
        lines.iter().map(|(_, index, _)| *index).collect::<Vec<_>>(),
        [3],
        "only the failed task ran again: {lines:?}"
    );
    let second = status_text(&lab, home.path(), "last");
    assert!(second.contains("4 succeeded, 0 failed"), "{second}");
    let job = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("slurm job "))
            .map(str::to_string)
    };
    assert_ne!(
        job(&first),
        job(&second),
        "the retry asked for a new allocation"
    );
    assert_released(&lab);
}

/// `dts logs last TASK` (`--stderr` too) of the run in `home`.
fn task_output(lab: &SlurmLab, home: &std::path::Path, task: &str, stderr: bool) -> Vec<u8> {
    let mut cmd = lab.dts(home);
    cmd.args(["logs", "last", task]);
    if stderr {
        cmd.arg("--stderr");
    }
    cmd.assert().success().get_output().stdout.clone()
}

/// Warm worker steps (the default): streams byte-exact and apart through the worker's
/// framing, even output that imitates it, and a finished task's leftovers are killed
/// before the next task on the same worker, never printing into it.
#[test]
fn a_warm_worker_keeps_streams_exact_and_kills_a_finished_task_s_leftovers() {
    let Some(lab) = SlurmLab::start(1, 1) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    pool(home.path(), "nodes = 1\ncpus_per_node = 1\n");
    let mark = marker("slurm-leftover");
    let command = format!(
        "case {{}} in \
         1) printf 'DTS0123 1 2\\n\\000\\377no newline'; printf 'err DTS%.0s' x >&2;; \
         2) (sleep 3; echo {mark} late) & echo started;; \
         *) sleep 4; echo task {{}} done;; esac"
    );
    lab.dts(home.path())
        .args(["submit", "--array", "1-3", "--", &command])
        .assert()
        .success();
    assert_eq!(
        task_output(&lab, home.path(), "1", false),
        b"DTS0123 1 2\n\0\xffno newline"
    );
    assert_eq!(task_output(&lab, home.path(), "1", true), b"err DTS");
    assert_eq!(task_output(&lab, home.path(), "2", false), b"started\n");
    // Task 3 ran after task 2 on the one slot and outlived task 2's leftover.
    assert_eq!(task_output(&lab, home.path(), "3", false), b"task 3 done\n");
    no_process_left(&mark, Duration::from_secs(5));
    assert_released(&lab);
}

/// A timeout inside a warm worker kills that task's whole tree (the wrapper's TERM, grace,
/// KILL) and the worker goes on with the next task.
#[test]
fn a_timeout_in_a_warm_worker_kills_only_that_task() {
    let Some(lab) = SlurmLab::start(1, 1) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    pool(home.path(), "nodes = 1\ncpus_per_node = 1\n");
    let mark = marker("slurm-timeout");
    let joblog = home.path().join("joblog");
    let command = format!("if [ {{}} = 1 ]; then sleep 300 & sleep 301; fi; echo ok {{}} {mark}");
    lab.dts(home.path())
        .args([
            "submit",
            "--array",
            "1-3",
            "--timeout",
            "2s",
            "--kill-grace",
            "1s",
        ])
        .arg("--joblog")
        .arg(&joblog)
        .args(["--", &command])
        .assert()
        .code(1);
    let log = std::fs::read_to_string(&joblog).unwrap();
    let exits: Vec<(String, String)> = log
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[6].to_string())
        })
        .collect();
    assert_eq!(exits.len(), 3, "{log}");
    assert!(
        exits.iter().any(|(seq, code)| seq == "1" && code != "0"),
        "{log}"
    );
    assert!(
        exits.iter().filter(|(_, code)| code == "0").count() == 2,
        "{log}"
    );
    // The tasks after the timed-out one still ran, on the same slot.
    assert_eq!(
        task_output(&lab, home.path(), "3", false),
        format!("ok 3 {mark}\n").as_bytes()
    );
    no_process_left(&mark, Duration::from_secs(5));
    assert_released(&lab);
}

/// dts killed by SIGKILL while warm workers run tasks: every worker sees EOF, kills its
/// task through the task's control line, and exits; nothing is left on the nodes.
#[test]
fn a_killed_coordinator_leaves_no_warm_worker_and_no_task() {
    let Some(lab) = SlurmLab::start(2, 2) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    pool(home.path(), "nodes = 2\ncpus_per_node = 2\n");
    let mark = marker("slurm-sigkill");
    let mut child = lab
        .dts_process(home.path())
        .args(["submit", "--array", "1-8", "--kill-grace", "1s", "--"])
        .arg(format!("sleep 300; echo {mark}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "four tasks running", || {
        processes_matching(&mark).len() >= 4
    });
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    no_process_left(&mark, Duration::from_secs(5));
    wait_until(Duration::from_secs(10), "no worker step left", || {
        !lab.steps().lines().any(|l| !l.contains(".batch"))
    });
}

/// File staging on a Slurm pool: each helper is a step of its own on the node, inputs
/// go in and results come back byte-exact, and --cleanup leaves nothing behind.
#[test]
fn files_are_staged_to_slurm_nodes_and_their_results_returned() {
    let Some(lab) = SlurmLab::start(2, 1) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    pool(home.path(), "nodes = 2\ncpus_per_node = 1\n");
    let mut list = String::new();
    for i in 1..=4 {
        let name = format!("in {i}.bin");
        let data: Vec<u8> = (0..=255u8).cycle().take(1000 * i).collect();
        std::fs::write(home.path().join(&name), data).unwrap();
        list.push_str(&name);
        list.push('\n');
    }
    std::fs::write(home.path().join("list"), list).unwrap();
    lab.dts(home.path())
        .args(["submit", "--items", "list", "--trc", "{}.rev", "--"])
        .arg("rev < {} > {}.rev; echo $SLURMD_NODENAME $PWD")
        .assert()
        .success()
        .stdout(contains(format!(
            "{}/.cache/dts/runs/",
            home.path().display()
        )));
    for i in 1..=4 {
        let name = format!("in {i}.bin");
        let input = std::fs::read(home.path().join(&name)).unwrap();
        let output = std::process::Command::new("rev")
            .stdin(std::fs::File::open(home.path().join(&name)).unwrap())
            .output()
            .unwrap()
            .stdout;
        assert!(!input.is_empty());
        assert_eq!(
            std::fs::read(home.path().join(format!("{name}.rev"))).unwrap(),
            output
        );
    }
    // srun passes dts's HOME on, so the nodes' run directories were under this home, and
    // --cleanup removed them.
    let cache = home.path().join(".cache/dts");
    assert!(!cache.exists(), "left on the nodes: {}", cache.display());
    assert_released(&lab);
}
