//! The real binary on the local machine: the embedded default inventory, exit codes,
//! located configuration errors, and the example job files.

mod common;

use std::time::Duration;

use common::*;
use predicates::prelude::*;
use predicates::str::contains;

#[test]
fn runs_on_localhost_by_default_in_an_empty_directory() {
    let home = tempfile::tempdir().unwrap();
    let out = dts(home.path())
        .args([
            "submit",
            "--array",
            "1-3",
            "--",
            "echo hi {} $DTS_ARRAY_INDEX/$DTS_TASK_COUNT",
        ])
        .assert()
        .success()
        .stderr(contains("3 tasks on 1 host"))
        .get_output()
        .clone();
    let mut lines = tagged_lines(&out.stdout);
    lines.sort_by_key(|(_, index, _)| *index);
    assert_eq!(
        lines,
        (1..=3)
            .map(|i| ("localhost".to_string(), i, format!("hi {i} {i}/3")))
            .collect::<Vec<_>>()
    );
}

#[test]
fn exit_codes_say_what_happened() {
    let home = tempfile::tempdir().unwrap();
    dts(home.path())
        .args(["submit", "--array", "0-4", "--", "true"])
        .assert()
        .code(0);
    dts(home.path())
        .args(["submit", "--array", "0-4", "--", "test {} -ne 3"])
        .assert()
        .code(1)
        .stderr(contains("4 succeeded, 1 failed"))
        .stderr(contains("│ 3            ┆     1 ┆ exit 1 │"));
    dts(home.path())
        .args(["submit", "--array", "5-1", "--", "true"])
        .assert()
        .code(2)
        .stderr(contains("invalid --array '5-1'"));
    dts(home.path())
        .args(["submit", "--array", "1"])
        .assert()
        .code(2)
        .stderr(contains("no command"));
    dts(home.path())
        .args(["submit", "--bogus"])
        .assert()
        .code(2);
}

#[test]
fn items_come_from_stdin_byte_exact() {
    let home = tempfile::tempdir().unwrap();
    let out = dts(home.path())
        .args(["submit", "--items", "-", "--", "printf", "<%s>\\n", "{}"])
        .write_stdin("a b\n  spaced  \n\n$(x)\n")
        .assert()
        .success()
        .get_output()
        .clone();
    let mut lines = tagged_lines(&out.stdout);
    lines.sort_by_key(|(_, index, _)| *index);
    let got: Vec<&str> = lines.iter().map(|(_, _, l)| l.as_str()).collect();
    assert_eq!(got, ["<a b>", "<  spaced  >", "<>", "<$(x)>"]);
}

/// Writes `hosts.toml` into a fresh dir and runs `dts submit` there with a command that
/// would leave a marker file if anything ran.
fn submit_with_inventory(text: &str) -> (tempfile::TempDir, assert_cmd::assert::Assert) {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("hosts.toml"), text).unwrap();
    let assert = dts(home.path())
        .args(["submit", "--array", "1-3", "--", "touch ran.{}"])
        .assert();
    (home, assert)
}

#[test]
fn inventory_errors_name_file_line_and_column_and_nothing_runs() {
    let cases = [
        (
            "[defaults]\nslots = 2\ncolour = \"red\"\n\n[[host]]\nname = \"a\"\n",
            "hosts.toml:3:1: unknown field `colour`",
        ),
        (
            "[[host]]\nname = \"n[1-3]\"\n\n[[host]]\nname = \"n2\"\n",
            "hosts.toml:5:8: duplicate host name \"n2\": already defined at line 2",
        ),
        ("[[host]]\nname = \"a\"\nslots = 0\n", "hosts.toml:3:9:"),
        ("[[host]]\nname = \"n[3-1]\"\n", "hosts.toml:2:"),
        (
            "[[host]]\nname = \"n[1-3]\"\naddress = \"10.0.0.[1-2]\"\n",
            "hosts.toml:3:",
        ),
    ];
    for (text, expected) in cases {
        let (home, assert) = submit_with_inventory(text);
        assert.code(2).stderr(contains(expected)).stdout("");
        let ran = std::fs::read_dir(home.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("ran.")
            })
            .count();
        assert_eq!(ran, 0, "a task ran despite {expected}");
    }
}

#[test]
fn job_file_errors_name_file_line_and_column() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("job.toml"),
        "name = \"x\"\ncommand = \"echo {}\"\narray = \"1-\"\n",
    )
    .unwrap();
    dts(home.path())
        .args(["submit", "job.toml"])
        .assert()
        .code(2)
        .stderr(contains("job.toml:3:"))
        .stderr(contains("array"));
    std::fs::write(
        home.path().join("job.toml"),
        "command = \"true\"\nretrys = 2\n",
    )
    .unwrap();
    dts(home.path())
        .args(["submit", "job.toml"])
        .assert()
        .code(2)
        .stderr(contains("job.toml:2:1: unknown field `retrys`"));
}

#[test]
fn retries_rerun_a_failing_task() {
    let home = tempfile::tempdir().unwrap();
    // Fails on the first attempt, succeeds on the second.
    dts(home.path())
        .args([
            "submit",
            "--retries",
            "2",
            "--array",
            "1",
            "--",
            ": {}; test $DTS_ATTEMPT -ge 2",
        ])
        .assert()
        .success()
        .stderr(contains(
            "task 1 failed (exit 1) on localhost; retrying (attempt 2 of 3)",
        ));
}

#[test]
fn a_killed_dts_leaves_no_local_task_behind() {
    let home = tempfile::tempdir().unwrap();
    let mark = marker("local-killed");
    let mut child = dts_process(home.path())
        .args(["submit", "--slots", "4", "--array", "1-4", "--"])
        .arg(format!("touch started.{{}}; sleep 300; : {mark}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), "4 tasks to start", || {
        (1..=4).all(|i| home.path().join(format!("started.{i}")).exists())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    no_process_left(&mark, Duration::from_secs(20));
}

#[test]
fn example_jobs_run() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let jobs: Vec<_> = std::fs::read_dir(root.join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(jobs.len() >= 3, "jobs/ holds at least three examples");
    for job in jobs {
        let home = tempfile::tempdir().unwrap();
        dts(home.path())
            .arg("submit")
            .arg(&job)
            .assert()
            .success()
            .stdout(predicate::str::is_empty().not());
    }
}

#[test]
fn help_documents_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    dts(home.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("Exit codes:"))
        .stdout(contains("3    no host reachable"));
}

#[test]
fn dry_run_without_probing_needs_no_reachable_host() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("hosts.toml"),
        "[defaults]\nuser = \"x\"\nslots = 2\n[[host]]\nname = \"far[1-3]\"\naddress = \"192.0.2.[1-3]\"\nweight = 1.0\n",
    )
    .unwrap();
    dts(home.path())
        .args([
            "submit",
            "--dry-run",
            "--no-probe",
            "--array",
            "1-12",
            "--",
            "touch ran.{}",
        ])
        .assert()
        .success()
        .stdout(contains("plan for 12 tasks (round-robin)"))
        .stdout(contains("far1"))
        .stdout(contains("33.3 %"));
    assert!(!home.path().join("ran.1").exists());
    dts(home.path())
        .args(["submit", "--no-probe", "--array", "1", "--", "true"])
        .assert()
        .code(2)
        .stderr(contains("--dry-run"));
}

#[test]
fn dry_run_text_plan_names_the_tasks_of_each_host() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("hosts.toml"),
        "[defaults]\nuser = \"x\"\nslots = 2\n[[host]]\nname = \"far[1-3]\"\naddress = \"192.0.2.[1-3]\"\n",
    )
    .unwrap();
    dts(home.path())
        .args([
            "submit",
            "--dry-run",
            "--no-probe",
            "--array",
            "1-12",
            "--",
            "true",
        ])
        .assert()
        .success()
        .stdout(contains("far1  tasks 1-10:3\n"))
        .stdout(contains("far2  tasks 2-11:3\n"))
        .stdout(contains("far3  tasks 3-12:3\n"));
}

#[test]
fn dry_run_with_every_host_down_says_no_host_is_reachable() {
    let home = tempfile::tempdir().unwrap();
    // Nothing listens on these loopback ports: each probe is refused at once.
    let ports: Vec<u16> = (0..2)
        .map(|_| free_port(std::net::Ipv4Addr::new(127, 0, 0, 1)))
        .collect();
    std::fs::write(
        home.path().join("hosts.toml"),
        format!(
            "[defaults]\nuser = \"x\"\nslots = 2\nconnect_timeout = \"2s\"\n{}{}",
            host_entry("a", "127.0.0.1", ports[0]),
            host_entry("b", "127.0.0.1", ports[1])
        ),
    )
    .unwrap();
    dts(home.path())
        .args(["submit", "--dry-run", "--array", "1-4", "--", "true"])
        .assert()
        .code(3)
        .stdout(contains(
            "no host is reachable: none of the 4 tasks would run",
        ))
        .stdout(contains("plan for 0 tasks").not())
        .stderr(contains("no host reachable"));
}

#[test]
fn an_unwritable_output_path_is_refused_before_anything_runs() {
    let home = tempfile::tempdir().unwrap();
    for flag in ["--junit", "--joblog"] {
        dts(home.path())
            .args(["submit", flag, "/nonexistent/dir/x.xml"])
            .args(["--array", "1-3", "--", "touch ran.{}"])
            .assert()
            .code(2)
            .stderr(contains(format!(
                "{flag} /nonexistent/dir/x.xml: directory /nonexistent/dir does not exist"
            )));
        dts(home.path())
            .args(["submit", flag, "."])
            .args(["--array", "1-3", "--", "touch ran.{}"])
            .assert()
            .code(2)
            .stderr(contains(format!("{flag} ")).and(contains("is a directory")));
    }
    assert!(!home.path().join("ran.1").exists(), "a task ran");
    assert!(
        !home.path().join(".local/state/dts/runs").exists()
            || std::fs::read_dir(home.path().join(".local/state/dts/runs"))
                .unwrap()
                .next()
                .is_none(),
        "a run was recorded"
    );
}

#[test]
fn retry_refuses_a_junit_path_that_has_gone_before_running() {
    let home = tempfile::tempdir().unwrap();
    let reports = home.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    dts(home.path())
        .args(["submit", "--junit", "reports/x.xml", "--array", "1-2"])
        .args(["--", "test {} -ne 2 || test -e again"])
        .assert()
        .code(1);
    std::fs::remove_dir_all(&reports).unwrap();
    std::fs::write(home.path().join("again"), "").unwrap();
    dts(home.path())
        .args(["retry", "last"])
        .assert()
        .code(2)
        .stderr(contains("--junit ").and(contains("does not exist")));
    dts(home.path())
        .args(["status", "last"])
        .assert()
        .stdout(contains("1 succeeded, 1 failed"));
}
