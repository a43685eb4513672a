//! Matrix sweeps end to end (issue 16, part 2): every combination of the axes runs exactly
//! once, with its values in the arguments and in `DTS_MATRIX_*`, injection-shaped values
//! passed as text, on real sshd and on the local transport; `--dry-run` and `dts status`
//! show each task's parameters.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use predicates::str::contains;

/// A file no task may create, outside every task's directory (so the hosts' user can
/// write it too).
fn pwned_marker(test: &str) -> String {
    std::env::temp_dir()
        .join(marker(test))
        .display()
        .to_string()
}

/// The 2×3 axes: `lr`, and `v` with injection-shaped values (a command substitution, a
/// quote breakout, spaces and double quotes).
fn axes(pwned: &str) -> (Vec<&'static str>, Vec<String>) {
    let lr = vec!["0.1", "0.01"];
    let v = vec![
        "$(touch pwned)".to_string(),
        format!("'; touch {pwned}; '"),
        format!("a \"b\"  `touch {pwned}`"),
    ];
    (lr, v)
}

/// Prints each task's two values as it got them in its arguments and in its environment.
const PRINT: &str = r#"printf '[%s][%s][%s][%s]\n' {lr} {v} "$DTS_MATRIX_lr" "$DTS_MATRIX_v""#;

fn check_every_combination_ran_once(stdout: &[u8], lr: &[&str], v: &[String]) {
    let lines = tagged_lines(stdout);
    assert_eq!(lines.len(), 6, "{lines:?}");
    let indexes: BTreeSet<u64> = lines.iter().map(|(_, i, _)| *i).collect();
    assert_eq!(indexes, (1..=6).collect(), "task indexes 1..6, once each");
    let seen: BTreeSet<&str> = lines.iter().map(|(_, _, l)| l.as_str()).collect();
    assert_eq!(seen.len(), 6, "every line differs: {lines:?}");
    for (n, (_, index, line)) in lines.iter().enumerate() {
        // Task k (1-based) has combination k - 1: the first axis (lr) varies slowest.
        let k = (*index - 1) as usize;
        let (a, b) = (lr[k / 3], &v[k % 3]);
        assert_eq!(
            line,
            &format!("[{a}][{b}][{a}][{b}]"),
            "line {n}: task {index}"
        );
    }
}

/// Regression-shaped check of the whole path: a 2×3 matrix whose values try to inject
/// commands runs six tasks, each combination once, values passed as text.
#[test]
fn a_two_by_three_matrix_runs_every_combination_once_and_injects_nothing() {
    let lab = Lab::start(2);
    for via in [Via::Ssh, Via::Local] {
        let pwned = pwned_marker("matrix");
        let (lr, v) = axes(&pwned);
        let out = lab
            .submit_via(via)
            .args(["--matrix", &format!("lr={}", lr.join(","))])
            .args(["--matrix", &format!("v={}", v.join(","))])
            .args(["--", PRINT])
            .assert()
            .success()
            .get_output()
            .clone();
        check_every_combination_ran_once(&out.stdout, &lr, &v);
        assert!(
            !Path::new(&pwned).exists(),
            "{via:?}: a value ran a command"
        );
        assert!(
            !lab.dir.path().join("pwned").exists(),
            "{via:?}: a value ran a command"
        );

        // Status shows each task's parameters, in text and in JSON.
        let status = dts(lab.dir.path())
            .args(["status", "last"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let status = String::from_utf8(status).unwrap();
        assert!(
            status.contains("task 1  succeeded  lr=0.1 v='$(touch pwned)'"),
            "{status}"
        );
        assert!(status.contains("task 6  succeeded  lr=0.01 v="), "{status}");
        let json = dts(lab.dir.path())
            .args(["status", "last", "--json"])
            .output()
            .unwrap()
            .stdout;
        let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let rows = doc["parameters"].as_array().expect("parameters");
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[4]["index"], 5);
        assert_eq!(rows[4]["params"]["lr"], "0.01");
        assert_eq!(rows[4]["params"]["v"], v[1].as_str());
        assert_eq!(doc["tasks"]["succeeded"], 6, "the document is still there");
    }
}

#[test]
fn a_job_file_matrix_runs_from_its_table_in_order() {
    let lab = Lab::start(1);
    let pwned = pwned_marker("matrix-file");
    let (lr, v) = axes(&pwned);
    let quoted: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    let job = format!(
        "command = {PRINT:?}\n[matrix]\nlr = [\"0.1\", \"0.01\"]\nv = [{}]\n",
        quoted.join(", ")
    );
    std::fs::write(lab.path("sweep.toml"), job).unwrap();
    let out = lab
        .submit()
        .arg(lab.path("sweep.toml"))
        .assert()
        .success()
        .get_output()
        .clone();
    check_every_combination_ran_once(&out.stdout, &lr, &v);
    assert!(!Path::new(&pwned).exists(), "a value ran a command");
}

#[test]
fn dry_run_shows_each_tasks_parameters() {
    let home = tempfile::tempdir().unwrap();
    let run = |json: bool| {
        let mut cmd = dts(home.path());
        cmd.args(["submit", "--dry-run", "--no-probe", "--array", "1-2"])
            .args(["--matrix", "lr=0.1,0.01", "--matrix", "v=a b,$(x)"]);
        if json {
            cmd.arg("--json");
        }
        cmd.args(["--", "train {} {lr} {v}"]).assert().success()
    };
    run(false)
        .stdout(contains("plan for 8 tasks"))
        .stdout(contains("task 1  item=1 lr=0.1 v='a b'\n"))
        .stdout(contains("task 4  item=1 lr=0.01 v='$(x)'\n"))
        .stdout(contains("task 5  item=2 lr=0.1 v='a b'\n"));
    let out = run(true).get_output().stdout.clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let plan = doc["plan"].as_array().expect("plan");
    assert_eq!(plan.len(), 8);
    assert_eq!(plan[7]["index"], 8);
    assert_eq!(plan[7]["item"], "2", "the array index stays in the item");
    assert_eq!(
        plan[7]["params"],
        serde_json::json!({"lr": "0.01", "v": "$(x)"})
    );
}

#[test]
fn bad_matrices_are_usage_errors_and_run_nothing() {
    let home = tempfile::tempdir().unwrap();
    for axis in ["lr=", "host=a", "1x=a", "lr"] {
        dts(home.path())
            .args(["submit", "--matrix", axis, "--", "touch ran"])
            .assert()
            .code(2)
            .stderr(contains("--matrix"));
    }
    dts(home.path())
        .args([
            "submit",
            "--matrix",
            "a=1",
            "--matrix",
            "a=2",
            "--",
            "touch ran",
        ])
        .assert()
        .code(2)
        .stderr(contains("matrix axis 'a' is given twice"));
    std::fs::write(
        home.path().join("job.toml"),
        "command = \"touch ran\"\n[matrix]\nlr = [0.5]\n",
    )
    .unwrap();
    dts(home.path())
        .args(["submit", "job.toml"])
        .assert()
        .code(2)
        .stderr(contains(
            "job.toml:3:7: matrix axis 'lr': values are strings or integers",
        ));
    assert!(!home.path().join("ran").exists());
}

/// `dts retry` rebuilds the job from the saved run: a failed task runs again with its own
/// parameters, in its arguments and its environment.
#[test]
fn retry_runs_a_failed_task_again_with_its_parameters() {
    let home = tempfile::tempdir().unwrap();
    let command = r#"printf '%s %s|%s %s\n' {a} {v} "$DTS_MATRIX_a" "$DTS_MATRIX_v"; test {v} != 'x y' || test -e again"#;
    let first = dts(home.path())
        .args([
            "submit", "--matrix", "a=1,2", "--matrix", "v=x y,z", "--", command,
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    assert_eq!(tagged_lines(&first).len(), 4);
    std::fs::write(home.path().join("again"), "").unwrap();
    let again = dts(home.path())
        .args(["retry", "last"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let mut lines: Vec<(u64, String)> = tagged_lines(&again)
        .into_iter()
        .map(|(_, index, line)| (index, line))
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            (1, "1 x y|1 x y".to_string()),
            (3, "2 x y|2 x y".to_string())
        ]
    );
    dts(home.path())
        .args(["status", "last"])
        .assert()
        .stdout(contains("task 3  succeeded  a=2 v='x y'"));
}
