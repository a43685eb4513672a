//! The run lifecycle against real sshd: the store, status, logs, detach, cancel, pause,
//! resume, retry after a killed coordinator, joblog, clean, concurrent runs.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use dts::store::{StateDir, StateEnv, reader};
use predicates::str::contains;

fn state(home: &Path) -> StateDir {
    StateDir::locate(&StateEnv {
        dts_state_dir: None,
        xdg_state_home: None,
        home: Some(home.to_path_buf()),
    })
    .unwrap()
}

fn detail(home: &Path, id: &str) -> reader::RunDetail {
    reader::detail(&state(home), id).unwrap()
}

/// Starts a detached run; returns its id.
fn detach(lab: &Lab, args: &[&str], command: &str) -> String {
    let out = lab
        .submit()
        .arg("--detach")
        .args(args)
        .arg("--")
        .arg(command)
        .assert()
        .success()
        .stderr(contains("started in the background"))
        .get_output()
        .clone();
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(id.len(), 20, "stdout is only the run id: {id:?}");
    id
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[test]
fn detached_run_shows_progress_and_cancel_leaves_nothing_behind() {
    let lab = Lab::start(2);
    let mark = marker("cancel");
    let started = lab.path("started");
    std::fs::create_dir(&started).unwrap();
    let command = format!("touch {}/{{}}; sleep 300; : {mark}", started.display());
    let id = detach(&lab, &["--array", "1-20", "--kill-grace", "1s"], &command);
    wait_until(Duration::from_secs(30), "8 tasks running", || {
        count_files(&started) == 8
    });
    let status = dts(lab.dir.path())
        .args(["status", &id])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(": running, coordinator pid"), "{text}");
    assert!(text.contains("8 running, 12 queued"), "{text}");
    let list = dts(lab.dir.path())
        .args(["status", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["runs"][0]["id"], id.as_str());
    assert_eq!(list["runs"][0]["total"], 20);
    dts(lab.dir.path())
        .args(["cancel", &id])
        .assert()
        .success()
        .stderr(contains("cancelled"));
    let d = detail(lab.dir.path(), &id);
    assert_eq!(d.run.state, "cancelled");
    assert_eq!(d.run.counts.cancelled, 20);
    no_process_left(&mark, Duration::from_secs(20));
}

#[test]
fn a_killed_coordinator_shows_interrupted_and_retry_finishes_each_task_once() {
    let lab = Lab::start(2);
    let markers = lab.path("markers");
    std::fs::create_dir(&markers).unwrap();
    let gate = lab.path("gate");
    // Tasks 1-5 finish at once; the others wait for the gate, so the coordinator is killed
    // with some done, some running and some queued.
    let command = format!(
        "echo done-{{}} >> {m}/{{}}; if [ {{}} -gt 5 ]; then while [ ! -e {g} ]; do sleep 0.05; done; fi; echo success {{}}",
        m = markers.display(),
        g = gate.display()
    );
    let id = detach(&lab, &["--array", "1-30", "--kill-grace", "1s"], &command);
    wait_until(Duration::from_secs(30), "5 tasks to succeed", || {
        detail(lab.dir.path(), &id).run.counts.succeeded == 5
    });
    let pid = detail(lab.dir.path(), &id).run.pid.unwrap();
    // SAFETY: killing the coordinator this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_until(Duration::from_secs(10), "status to say interrupted", || {
        detail(lab.dir.path(), &id).run.state == "interrupted"
    });
    dts(lab.dir.path())
        .args(["status", &id])
        .assert()
        .success()
        .stdout(contains("interrupted"));
    std::fs::write(&gate, "").unwrap();
    // The hosts are saved with the run: retry needs no -H.
    dts(lab.dir.path())
        .args(["retry", &id])
        .assert()
        .success()
        .stderr(contains("25 tasks on 2 hosts"));
    let d = detail(lab.dir.path(), &id);
    assert_eq!(d.run.state, "succeeded");
    for task in &d.tasks {
        assert_eq!(task.state, "succeeded", "task {}", task.index);
        let successes = d
            .attempts
            .iter()
            .filter(|a| a.seq == task.seq && a.outcome.as_deref() == Some("succeeded"))
            .count();
        assert_eq!(
            successes, 1,
            "task {} recorded {successes} successes",
            task.index
        );
        let out = std::fs::read_to_string(d.output_path(
            task.index,
            task.attempts,
            dts::transport::Stream::Stdout,
        ))
        .unwrap();
        assert!(
            out.ends_with(&format!("success {}\n", task.index)),
            "task {} output {out:?}",
            task.index
        );
        // Marker files show every run of the task: at least the successful one.
        assert!(
            std::fs::read_to_string(markers.join(task.index.to_string()))
                .unwrap()
                .contains("done-")
        );
    }
    let retried = d.tasks.iter().filter(|t| t.attempts > 1).count();
    assert!(retried >= 1, "some tasks ran again after the kill");
    // Retry never re-runs what succeeded.
    dts(lab.dir.path())
        .args(["retry", &id])
        .assert()
        .success()
        .stderr(contains("no unfinished task"));
}

#[test]
fn pause_stops_new_dispatch_and_resume_completes() {
    let lab = Lab::start(1);
    let started = lab.path("started");
    std::fs::create_dir(&started).unwrap();
    let release = lab.path("release");
    let command = format!(
        "touch {s}/{{}}; while [ ! -e {r} ]; do sleep 0.05; done",
        s = started.display(),
        r = release.display()
    );
    let id = detach(&lab, &["--array", "1-12", "--slots", "2"], &command);
    wait_until(Duration::from_secs(30), "2 tasks running", || {
        count_files(&started) == 2
    });
    dts(lab.dir.path())
        .args(["pause", &id])
        .assert()
        .success()
        .stderr(contains("paused"));
    std::fs::write(&release, "").unwrap();
    // The dispatcher records an exit and any new dispatch in the same commit: once both
    // running tasks have succeeded, nothing else may be running or started.
    wait_until(
        Duration::from_secs(30),
        "the 2 running tasks to finish",
        || detail(lab.dir.path(), &id).run.counts.succeeded == 2,
    );
    let d = detail(lab.dir.path(), &id);
    assert_eq!((d.run.counts.running, d.run.counts.queued), (0, 10));
    assert_eq!(d.run.state, "paused");
    assert_eq!(count_files(&started), 2);
    dts(lab.dir.path()).args(["resume", &id]).assert().success();
    wait_until(Duration::from_secs(60), "the run to finish", || {
        detail(lab.dir.path(), &id).run.state == "succeeded"
    });
    assert_eq!(count_files(&started), 12);
}

#[test]
fn logs_are_byte_exact_for_large_binary_output() {
    let lab = Lab::start(1);
    let mut data = Vec::with_capacity(3_000_000);
    let mut x: u32 = 12345;
    for _ in 0..3_000_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        data.push((x >> 16) as u8);
    }
    data.extend_from_slice(b"\x00\xff no newline at the end");
    let file = lab.path("blob");
    std::fs::write(&file, &data).unwrap();
    let command = format!("cat {f}; cat {f} >&2; printf 'tail\\n'", f = file.display());
    let out = lab
        .submit()
        .args(["--array", "7", "--"])
        .arg(&command)
        .assert()
        .success()
        .get_output()
        .clone();
    let id = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let mut expected = data.clone();
    expected.extend_from_slice(b"tail\n");
    let stdout = dts(lab.dir.path())
        .args(["logs", &id, "7"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(stdout.len(), expected.len());
    assert!(stdout == expected, "stdout differs");
    let stderr = dts(lab.dir.path())
        .args(["logs", &id, "7", "--stderr"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(stderr == data, "stderr differs");
    let all = dts(lab.dir.path())
        .args(["logs", &id])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(all.starts_with(b"==> task 7 on h1 (attempt 1, succeeded) <==\n"));
}

#[test]
fn two_runs_at_once_share_the_state_directory() {
    let lab = Lab::start(2);
    let children: Vec<_> = (0..2)
        .map(|i| {
            dts_process(lab.dir.path())
                .args(["submit", "-H"])
                .arg(lab.inventory())
                .args(["--array", "1-60", "--", &format!("echo run{i}-{{}}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_succeeded(&out);
    }
    let runs = reader::list(&state(lab.dir.path()));
    assert_eq!(runs.len(), 2);
    for run in &runs {
        assert_eq!(
            (run.state.as_str(), run.counts.succeeded),
            ("succeeded", 60)
        );
        let d = detail(lab.dir.path(), &run.id);
        let first =
            std::fs::read_to_string(d.output_path(1, 1, dts::transport::Stream::Stdout)).unwrap();
        assert!(first == "run0-1\n" || first == "run1-1\n", "{first}");
    }
}

#[test]
fn joblog_retry_failed_and_clean() {
    let lab = Lab::start(1);
    let joblog = lab.path("jobs.log");
    let fixed = lab.path("fixed");
    let command = format!("echo hi; test {{}} -ne 3 || test -e {}", fixed.display());
    let out = lab
        .submit()
        .args([
            "--joblog",
            joblog.to_str().unwrap(),
            "--array",
            "1-4",
            "--",
            &command,
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let id = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let log = std::fs::read_to_string(&joblog).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines[0],
        "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"
    );
    assert_eq!(lines.len(), 5);
    let failed: Vec<&&str> = lines[1..]
        .iter()
        .filter(|l| l.split('\t').nth(6) == Some("1"))
        .collect();
    assert_eq!(failed.len(), 1);
    let fields: Vec<&str> = failed[0].split('\t').collect();
    assert_eq!(
        (fields[0], fields[1], fields[5], fields[7]),
        ("3", "h1", "3", "0")
    );
    assert!(fields[8].starts_with("echo hi; test 3 -ne 3"));
    // Only the failed task runs again; the joblog gets its new line.
    std::fs::write(&fixed, "").unwrap();
    dts(lab.dir.path())
        .args(["retry", "--failed", &id])
        .assert()
        .success()
        .stderr(contains("1 task on 1 host"));
    assert_eq!(std::fs::read_to_string(&joblog).unwrap().lines().count(), 6);
    let d = detail(lab.dir.path(), &id);
    assert_eq!(d.run.state, "succeeded");
    assert_eq!(d.task(3).unwrap().attempts, 2);
    // clean keeps runs younger than the cutoff and removes the others.
    dts(lab.dir.path())
        .args(["clean", "--older-than", "1h"])
        .assert()
        .success()
        .stderr(contains("removed 0 runs"));
    dts(lab.dir.path())
        .args(["clean", "--older-than", "0s"])
        .assert()
        .success()
        .stdout(contains(format!("removed {id}")));
    assert!(reader::list(&state(lab.dir.path())).is_empty());
}
