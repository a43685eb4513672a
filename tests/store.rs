//! What the run store records must be true, whatever happens to it: a full state
//! filesystem, a run directory removed mid-run, a corrupt run.db; `retry --failed` and
//! `last`. The real binary on the local transport (SSH is not the point here).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use dts::store::{StateDir, StateEnv, reader};
use dts::transport::Stream;
use predicates::prelude::*;
use predicates::str::contains;

/// A tmpfs mounted for one test (size `size`), unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount (util-linux)");
        assert!(
            status.success(),
            "this test mounts a tmpfs as its state filesystem and needs root"
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn state_at(root: &Path) -> StateDir {
    StateDir::locate(&StateEnv {
        dts_state_dir: Some(root.to_path_buf()),
        ..StateEnv::default()
    })
    .unwrap()
}

/// The dts binary with its state in `root`.
fn dts_at(home: &Path, root: &Path) -> assert_cmd::Command {
    let mut cmd = dts(home);
    cmd.env("DTS_STATE_DIR", root);
    cmd
}

fn spawn_at(home: &Path, root: &Path, args: &[&str]) -> Child {
    dts_process(home)
        .env("DTS_STATE_DIR", root)
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

/// The only run in `root`.
fn only_run(root: &Path) -> Option<reader::RunDetail> {
    let state = state_at(root);
    let id = state.run_ids().pop()?;
    reader::detail(&state, &id).ok()
}

/// How often each task ran, from the marker lines its command appends (outside the store).
fn runs_of(markers: &Path, index: u64) -> usize {
    std::fs::read_to_string(markers.join(index.to_string())).map_or(0, |text| text.lines().count())
}

#[test]
fn a_full_state_filesystem_stops_the_run_and_retry_finishes_it_without_rerunning_successes() {
    let home = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&home.path().join("state"), "2m");
    let root = fs.path.join("runs");
    let markers = home.path().join("markers");
    std::fs::create_dir(&markers).unwrap();
    // 40 tasks of 100 kB output each: 4 MB into 2 MB.
    let command = format!(
        "echo ran >> {}/{{}}; head -c 100000 /dev/zero | tr '\\0' x; echo",
        markers.display()
    );
    let (code, stderr) = finish(spawn_at(
        home.path(),
        &root,
        &["submit", "--slots", "4", "--array", "1-40", "--", &command],
    ));
    assert_eq!(
        code,
        Some(4),
        "a store failure has its own exit code: {stderr}"
    );
    assert!(
        stderr.contains("No space left on device") || stderr.contains("disk is full"),
        "{stderr}"
    );
    assert!(stderr.contains("stopping: no new task starts"), "{stderr}");
    assert!(stderr.contains("dts retry"), "{stderr}");
    let d = only_run(&root).expect("the run can still be read");
    assert_eq!(d.run.state, "interrupted", "never left running");
    let recorded: Vec<u64> = d
        .tasks
        .iter()
        .filter(|t| t.state == "succeeded")
        .map(|t| t.index)
        .collect();
    assert!(recorded.len() < 40, "the filesystem filled up");
    for task in d.tasks.iter().filter(|t| t.state == "succeeded") {
        // A success is recorded only with all of its output.
        let out = d.output_path(task.index, task.attempts, Stream::Stdout);
        assert_eq!(
            std::fs::metadata(&out).unwrap().len(),
            100_001,
            "task {}",
            task.index
        );
    }
    for index in 1..=40 {
        // Nothing ran that the store does not know was launched.
        if runs_of(&markers, index) > 0 {
            let seq = d.task(index).unwrap().seq;
            assert!(
                d.attempts.iter().any(|a| a.seq == seq),
                "task {index} ran unrecorded"
            );
        }
    }
    // Space again: retry finishes the run, and no recorded success runs twice.
    fs.resize("16m");
    dts_at(home.path(), &root)
        .args(["retry", "last"])
        .assert()
        .code(0)
        .stderr(contains("succeeded — 40 tasks: 40 succeeded"));
    let d = only_run(&root).unwrap();
    assert_eq!(d.run.state, "succeeded");
    for task in &d.tasks {
        assert_eq!(task.state, "succeeded", "task {}", task.index);
        let out = d.output_path(task.index, task.attempts, Stream::Stdout);
        assert_eq!(
            std::fs::metadata(&out).unwrap().len(),
            100_001,
            "task {}",
            task.index
        );
    }
    for index in recorded {
        assert_eq!(runs_of(&markers, index), 1, "task {index} ran again");
    }
}

#[test]
fn a_run_directory_removed_mid_run_stops_the_run_and_leaves_no_ghost() {
    let home = tempfile::tempdir().unwrap();
    let root = home.path().join("runs");
    let mark = marker("removed-dir");
    let started = home.path().join("started");
    std::fs::create_dir(&started).unwrap();
    let command = format!("touch {}/{{}}; sleep 300; : {mark}", started.display());
    let child = spawn_at(
        home.path(),
        &root,
        &[
            "submit",
            "--slots",
            "2",
            "--array",
            "1-6",
            "--kill-grace",
            "1s",
            "--",
            &command,
        ],
    );
    wait_until(Duration::from_secs(20), "2 tasks to start", || {
        std::fs::read_dir(&started).unwrap().count() == 2
    });
    let id = state_at(&root).run_ids().pop().unwrap();
    std::fs::remove_dir_all(root.join(&id)).unwrap();
    // Noticed while the tasks still run (the coordinator checks every second), not at the end.
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("the run directory was removed"), "{stderr}");
    no_process_left(&mark, Duration::from_secs(20));
    assert_eq!(
        std::fs::read_dir(&started).unwrap().count(),
        2,
        "nothing else started"
    );
    assert!(!root.join(&id).exists(), "no ghost run directory");
    dts_at(home.path(), &root)
        .arg("status")
        .assert()
        .success()
        .stdout(contains("no runs yet"));
}

#[test]
fn a_corrupt_run_db_shows_as_damaged_retry_runs_nothing_and_clean_removes_it() {
    let home = tempfile::tempdir().unwrap();
    let root = home.path().join("runs");
    let markers = home.path().join("markers");
    std::fs::create_dir(&markers).unwrap();
    let command = format!("echo ran >> {}/{{}}; test {{}} -ne 2", markers.display());
    dts_at(home.path(), &root)
        .args(["submit", "--array", "1-3", "--", &command])
        .assert()
        .code(1);
    let id = state_at(&root).run_ids().pop().unwrap();
    let db = root.join(&id).join("run.db");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[100..].fill(0xa5);
    std::fs::write(&db, bytes).unwrap();
    // A directory left without its run.db is a damaged run too.
    let ghost = format!("{}-ffff", &id[..15]);
    std::fs::create_dir_all(root.join(&ghost).join("out")).unwrap();
    dts_at(home.path(), &root)
        .arg("status")
        .assert()
        .success()
        .stdout(contains(format!("{id} ┆ -    ┆ damaged")))
        .stdout(contains(format!("damaged: {id}: ")))
        .stdout(contains(format!("damaged: {ghost}: ")))
        .stdout(contains("no runs yet").not());
    dts_at(home.path(), &root)
        .args(["status", &id])
        .assert()
        .success()
        .stdout(contains(format!("run {id}: damaged: ")));
    let json = dts_at(home.path(), &root)
        .args(["status", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["runs"][0]["state"], "damaged");
    dts_at(home.path(), &root)
        .args(["retry", &id])
        .assert()
        .code(4)
        .stderr(contains(format!("run {id} is damaged")))
        .stderr(contains("nothing ran"));
    assert_eq!(runs_of(&markers, 2), 1, "retry ran nothing");
    // Age alone keeps them (--older-than 1h); --damaged removes them.
    dts_at(home.path(), &root)
        .args(["clean", "--older-than", "1h"])
        .assert()
        .success()
        .stdout("");
    dts_at(home.path(), &root)
        .args(["clean", "--damaged"])
        .assert()
        .success()
        .stdout(contains(format!("removed {id} (damaged: ")))
        .stdout(contains(format!("removed {ghost} (damaged: ")))
        .stderr(contains("removed 2 damaged runs"));
    dts_at(home.path(), &root)
        .arg("status")
        .assert()
        .success()
        .stdout(contains("no runs yet"));
}

/// Parses the run id from `dts: run ID: ...` on stderr.
fn run_id(stderr: &str) -> String {
    stderr
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(':')
        .to_string()
}

#[test]
fn retry_failed_does_not_call_a_run_succeeded_while_tasks_were_not_run_or_cancelled() {
    let home = tempfile::tempdir().unwrap();
    let root = home.path().join("runs");
    let fixed = home.path().join("fixed");
    let mark = marker("retry-failed");
    // 1 and 2 succeed, 3 fails until fixed, 4-6 wait until fixed.
    let command = format!(
        ": {mark}; case {{}} in 1|2) ;; 3) test -e {f} ;; *) test -e {f} || sleep 300 ;; esac",
        f = fixed.display()
    );
    for (stop, state) in [("interrupt", "interrupted"), ("cancel", "cancelled")] {
        let _ = std::fs::remove_file(&fixed);
        let child = spawn_at(
            home.path(),
            &root,
            &[
                "submit",
                "--slots",
                "3",
                "--array",
                "1-6",
                "--kill-grace",
                "1s",
                "--",
                &command,
            ],
        );
        let runs = state_at(&root);
        wait_until(Duration::from_secs(30), "2 ok, 1 failed, 3 running", || {
            let Some(id) = runs.run_ids().pop() else {
                return false;
            };
            reader::summary(&runs, &id)
                .is_ok_and(|r| (r.counts.succeeded, r.counts.failed, r.counts.running) == (2, 1, 3))
        });
        let id = runs.run_ids().pop().unwrap();
        if stop == "interrupt" {
            // SAFETY: signalling the dts this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        } else {
            dts_at(home.path(), &root)
                .args(["cancel", &id])
                .assert()
                .success();
        }
        let (code, stderr) = finish(child);
        assert_eq!(
            code,
            Some(if stop == "interrupt" { 130 } else { 1 }),
            "{stderr}"
        );
        no_process_left(&mark, Duration::from_secs(20));
        std::fs::write(&fixed, "").unwrap();
        // Only task 3 runs again, and succeeds; the run is still not a success.
        dts_at(home.path(), &root)
            .args(["retry", "--failed", &id])
            .assert()
            .code(1)
            .stderr(contains("1 task on 1 host"))
            .stderr(contains(format!(
                "run {id}: {state} — 6 tasks: 3 succeeded"
            )))
            .stderr(contains("succeeded —").not());
        assert_eq!(reader::summary(&runs, &id).unwrap().state, state);
        // Retrying the rest finishes it.
        dts_at(home.path(), &root)
            .args(["retry", &id])
            .assert()
            .code(0)
            .stderr(contains("3 tasks on 1 host"))
            .stderr(contains(format!(
                "run {id}: succeeded — 6 tasks: 6 succeeded"
            )));
    }
}

#[test]
fn last_is_the_newest_run_even_when_two_start_in_the_same_second() {
    let home = tempfile::tempdir().unwrap();
    let root = home.path().join("runs");
    let submit = |word: &str| {
        let out = dts_at(home.path(), &root)
            .args([
                "submit",
                "--array",
                "1",
                "--",
                &format!(": {{}}; echo {word}"),
            ])
            .assert()
            .success()
            .get_output()
            .clone();
        run_id(&String::from_utf8_lossy(&out.stderr))
    };
    // Until two runs share their second (ids are YYYYMMDD-HHMMSS-xxxx).
    let mut submitted = Vec::new();
    let (older, newer) = (0..20)
        .map(|_| {
            let pair = (submit("older"), submit("newer"));
            submitted.extend([pair.0.clone(), pair.1.clone()]);
            pair
        })
        .find(|(a, b)| a[..15] == b[..15])
        .expect("two runs within one second");
    assert!(newer > older, "{newer} sorts after {older}");
    let status = dts_at(home.path(), &root)
        .args(["status", "last", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(status["run_id"], newer.as_str());
    dts_at(home.path(), &root)
        .args(["logs", "last", "1"])
        .assert()
        .success()
        .stdout("newer\n");
    dts_at(home.path(), &root)
        .args(["retry", "last"])
        .assert()
        .success()
        .stderr(contains(format!("run {newer} has no unfinished task")));
    dts_at(home.path(), &root)
        .args(["cancel", "last"])
        .assert()
        .failure()
        .stderr(contains(format!("cannot cancel run {newer}")));
    // The list is newest first too.
    let list = dts_at(home.path(), &root)
        .args(["status", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    let ids: Vec<&str> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = submitted.iter().rev().map(String::as_str).collect();
    assert_eq!(ids, newest_first);
}

#[test]
fn help_documents_the_store_failure_exit_code() {
    let home = tempfile::tempdir().unwrap();
    dts(home.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("4    the run store could not be written"));
    dts(home.path())
        .args(["clean", "--help"])
        .assert()
        .success()
        .stdout(contains("--damaged"));
}

#[test]
fn a_full_state_filesystem_kills_the_tasks_it_cannot_record_on_ssh_hosts() {
    let lab = Lab::start(2);
    let fs = Tmpfs::mount(&lab.path("state"), "2m");
    let root = fs.path.join("runs");
    let mark = marker("store-full-ssh");
    let gate = lab.path("gate");
    // Task 1 fills the store with its output while the others run on both hosts.
    let command = format!(
        ": {mark}; if [ {{}} -eq 1 ]; then head -c 3000000 /dev/zero; else test -e {g} || sleep 300; fi",
        g = gate.display()
    );
    let child = dts_process(lab.dir.path())
        .env("DTS_STATE_DIR", &root)
        .args(["submit", "-H"])
        .arg(lab.inventory())
        .args(["--array", "1-6", "--kill-grace", "1s", "--", &command])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    // What could not be recorded does not run on.
    no_process_left(&mark, Duration::from_secs(20));
    let d = only_run(&root).unwrap();
    assert_eq!(d.run.state, "interrupted");
    assert_eq!(d.run.counts.succeeded, 0, "{:?}", d.tasks);
    fs.resize("16m");
    std::fs::write(&gate, "").unwrap();
    dts_at(lab.dir.path(), &root)
        .args(["retry", &d.run.id])
        .assert()
        .code(0)
        .stderr(contains("6 tasks on 2 hosts"));
    let d = only_run(&root).unwrap();
    assert_eq!(d.run.state, "succeeded");
    let out = d.output_path(1, d.task(1).unwrap().attempts, Stream::Stdout);
    assert_eq!(std::fs::metadata(out).unwrap().len(), 3_000_000);
    no_process_left(&mark, Duration::from_secs(20));
}

#[test]
fn a_state_filesystem_too_full_to_create_the_run_runs_nothing_and_leaves_no_half_made_run() {
    let home = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&home.path().join("state"), "200k");
    let root = fs.path.join("runs");
    let ran = home.path().join("ran");
    dts_at(home.path(), &root)
        .args(["submit", "--array", "1-20000", "--"])
        .arg(format!("touch {}", ran.display()))
        .assert()
        .code(4)
        .stderr(contains("disk is full"));
    assert!(!ran.exists(), "nothing ran");
    assert!(state_at(&root).run_ids().is_empty(), "no half-made run");
}

/// A run recorded by the previous dts (run store schema 1, before hosts had GPUs): status
/// and report read it as it is, and `dts retry` upgrades it and finishes it.
#[test]
fn a_run_recorded_by_the_previous_schema_is_read_and_retry_upgrades_and_finishes_it() {
    let home = tempfile::tempdir().unwrap();
    let root = home.path().join("runs");
    let fixed = home.path().join("fixed");
    let command = format!("test {{}} -ne 2 || test -e {}", fixed.display());
    dts_at(home.path(), &root)
        .args(["submit", "--slots", "2", "--array", "1-3", "--", &command])
        .assert()
        .code(1);
    let state = state_at(&root);
    let id = state.run_ids().pop().unwrap();
    let db = state.run_dir(&id).join("run.db");
    let version = |db: &Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(&db), 2);
    // The host table as schema 1 made it, the same rows, and version 1.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "BEGIN;
             CREATE TABLE host_now AS SELECT name, pos, slots, weight, state, error FROM host;
             DROP TABLE host;
             CREATE TABLE host (
                 name TEXT PRIMARY KEY,
                 pos INTEGER NOT NULL,
                 slots INTEGER NOT NULL DEFAULT 0,
                 weight REAL NOT NULL,
                 state TEXT NOT NULL,
                 error TEXT
             );
             INSERT INTO host SELECT * FROM host_now;
             DROP TABLE host_now;
             PRAGMA user_version = 1;
             COMMIT;",
        )
        .unwrap();
    let status = dts_at(home.path(), &root)
        .args(["status", &id, "--json"])
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_slice(&status.get_output().stdout).unwrap();
    assert_eq!(doc["tasks"]["failed"], 1);
    assert_eq!(
        doc["hosts"][0]["gpus"], 0,
        "no GPUs recorded before schema 2"
    );
    dts_at(home.path(), &root)
        .args(["report", &id])
        .assert()
        .success()
        .stdout(contains(format!(
            "run {id}: failed — 3 tasks: 2 succeeded, 1 failed"
        )));
    assert_eq!(version(&db), 1, "readers leave it as it is");

    std::fs::write(&fixed, "").unwrap();
    dts_at(home.path(), &root)
        .args(["retry", &id])
        .assert()
        .code(0)
        .stderr(contains(format!(
            "run {id}: succeeded — 3 tasks: 3 succeeded"
        )));
    assert_eq!(version(&db), 2, "retry upgraded it");
    assert_eq!(reader::detail(&state, &id).unwrap().hosts[0].slots, 2);
}
