//! What a user sees of a run on real sshd: the JSON document checked against the recorded
//! task times, output modes, JUnit, progress bars on a terminal and none when piped.

mod common;

use common::*;
use dts::store::{StateDir, StateEnv, reader};
use predicates::str::contains;

#[test]
fn json_figures_match_the_recorded_task_times() {
    let lab = Lab::start(4);
    let out = lab
        .submit()
        .args([
            "--json",
            "--array",
            "1-200",
            "--",
            "echo {}; test {} -ne 13 -a {} -ne 14 || { echo disk full >&2; exit 5; }",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("[h1"),
        "task output stays in the store with --json"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["tasks"]["total"], 200);
    assert_eq!(doc["tasks"]["succeeded"], 198);
    assert_eq!(doc["tasks"]["failed"], 2);
    assert_eq!(doc["state"], "failed");
    assert_eq!(doc["failures"][0]["cause"], "exit 5: disk full");
    assert_eq!(doc["failures"][0]["count"], 2);
    assert_eq!(doc["failures"][0]["tasks"], "13-14");
    let id = doc["run_id"].as_str().unwrap();
    let state = StateDir::locate(&StateEnv {
        home: Some(lab.dir.path().to_path_buf()),
        ..StateEnv::default()
    })
    .unwrap();
    let detail = reader::detail(&state, id).unwrap();
    // ATCT is the mean over tasks of (finished − submitted), from the task records.
    let atct: f64 = detail
        .tasks
        .iter()
        .map(|t| t.finished.unwrap() - t.submitted)
        .sum::<f64>()
        / 200.0;
    assert!((doc["stats"]["atct_s"].as_f64().unwrap() - atct).abs() < 1e-6);
    let makespan = detail
        .tasks
        .iter()
        .map(|t| t.finished.unwrap())
        .fold(0.0, f64::max)
        - detail.run.created;
    assert!((doc["stats"]["makespan_s"].as_f64().unwrap() - makespan).abs() < 1e-6);
    for key in ["ru", "lbd"] {
        let v = doc["stats"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    let per_host: u64 = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["tasks"].as_u64().unwrap())
        .sum();
    assert_eq!(per_host, 200);
    // dts status gives the same document after the run.
    let status = dts(lab.dir.path())
        .args(["status", id, "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(status["stats"], doc["stats"]);
    assert_eq!(status["failures"], doc["failures"]);
}

#[test]
fn output_modes_tagged_grouped_raw_none() {
    let lab = Lab::start(2);
    let command = "echo first {}; echo second {}";
    let stdout = |mode: &str| {
        let out = lab
            .submit()
            .args(["--output", mode, "--array", "1-6", "--", command])
            .assert()
            .success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    };
    let tagged = stdout("tagged");
    assert_eq!(tagged.lines().count(), 12);
    assert!(tagged.lines().all(|l| l.starts_with("[h")));
    let grouped = stdout("grouped");
    let lines: Vec<&str> = grouped.lines().collect();
    assert_eq!(lines.len(), 12);
    for pair in lines.chunks(2) {
        let n = pair[0].strip_prefix("first ").expect("untagged block");
        assert_eq!(
            pair[1],
            format!("second {n}"),
            "a task's lines stay together"
        );
    }
    let raw = stdout("raw");
    assert_eq!(raw.lines().count(), 12);
    assert!(
        raw.lines()
            .all(|l| l.starts_with("first ") || l.starts_with("second "))
    );
    assert_eq!(stdout("none"), "");
}

#[test]
fn junit_has_a_case_per_task_and_the_failure_tail() {
    let lab = Lab::start(1);
    let junit = lab.path("report.xml");
    lab.submit()
        .args([
            "--junit",
            junit.to_str().unwrap(),
            "--array",
            "1-3",
            "--",
            "test {} -ne 2 || { echo 'no <input> & bad' >&2; exit 1; }",
        ])
        .assert()
        .code(1);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 3);
    assert!(xml.contains("tests=\"3\" failures=\"1\""), "{xml}");
    assert!(
        xml.contains(
            "<failure message=\"exit 1 on h1 (attempt 1)\">no &lt;input&gt; &amp; bad\n</failure>"
        ),
        "{xml}"
    );
}

#[test]
fn progress_bars_on_a_terminal_and_no_escape_codes_when_piped() {
    let lab = Lab::start(2);
    let dts = assert_cmd::cargo::cargo_bin("dts");
    let command = format!(
        "{} submit -H {} --array 1-60 -- 'sleep 0.0$(( {{}} % 3 ))' > /dev/null",
        dts.display(),
        lab.inventory().display()
    );
    // `script` gives dts a pseudo-terminal, as a user's shell would.
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("HOME", lab.dir.path())
        .current_dir(lab.dir.path())
        .output()
        .expect("script (util-linux)");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.contains("\u{1b}["),
        "escape codes drawing bars on a terminal"
    );
    assert!(tty.contains("/60 done"), "{tty}");
    assert!(
        tty.contains("h1") && tty.contains("running"),
        "a line per host"
    );
    let piped = lab
        .submit()
        .args(["--array", "1-60", "--", "sleep 0.0$(( {} % 3 ))"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&piped.get_output().stderr);
    assert!(
        !stderr.contains('\u{1b}'),
        "no escape codes when piped: {stderr}"
    );
    assert!(stderr.contains("run ") && stderr.contains("60 succeeded"));
}

#[test]
fn quiet_prints_only_task_output() {
    let lab = Lab::start(1);
    lab.submit()
        .args(["--quiet", "--array", "1-3", "--", "echo {}"])
        .assert()
        .success()
        .stderr("")
        .stdout(contains("[h1 2] 2"));
}

#[test]
fn completions_and_man_page() {
    let home = tempfile::tempdir().unwrap();
    dts(home.path())
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(contains("_dts()"));
    dts(home.path())
        .args(["completions", "zsh"])
        .assert()
        .success()
        .stdout(contains("#compdef dts"));
    dts(home.path())
        .args(["completions", "fish"])
        .assert()
        .success()
        .stdout(contains("complete -c dts"));
    dts(home.path())
        .arg("man")
        .assert()
        .success()
        .stdout(contains(".TH dts 1"));
}
