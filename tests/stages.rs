//! Pipelines end to end (issue 16, part 3): `[[stage]]` tables run as one run whose tasks
//! start only once what they depend on has succeeded, checked from the times and hosts the
//! joblog records; a failure skips its dependents (recorded, shown, exit 1); `each_after`
//! tasks run where their predecessor ran; `dts retry` finishes a pipeline in dependency
//! order without re-running what succeeded.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use predicates::str::contains;

/// One joblog line: the task index, its host, start and end (epoch seconds), exit value
/// and command.
#[derive(Debug, Clone)]
struct Row {
    index: u64,
    host: String,
    start: f64,
    end: f64,
    exitval: i32,
    command: String,
}

fn joblog(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let start: f64 = f[2].parse().unwrap();
            Row {
                index: f[0].parse().unwrap(),
                host: f[1].to_string(),
                start,
                end: start + f[3].parse::<f64>().unwrap(),
                exitval: f[6].parse().unwrap(),
                command: f[8].to_string(),
            }
        })
        .collect()
}

/// The rows of tasks `indexes` (a stage's tasks are numbered on from the stage before).
fn rows_of(rows: &[Row], indexes: std::ops::RangeInclusive<u64>) -> Vec<&Row> {
    rows.iter().filter(|r| indexes.contains(&r.index)).collect()
}

/// Every task of `later` started after every task of `earlier` ended (the joblog keeps
/// milliseconds, so one of slack).
fn after_all(later: &[&Row], earlier: &[&Row], what: &str) {
    let last_end = earlier.iter().map(|r| r.end).fold(f64::MIN, f64::max);
    for row in later {
        assert!(
            row.start + 0.001 >= last_end,
            "{what}: task {} started at {:.3}, before the stage it waits for ended at {last_end:.3}",
            row.index,
            row.start
        );
    }
}

fn status_json(home: &Path) -> serde_json::Value {
    let out = dts(home)
        .args(["status", "last", "--json"])
        .output()
        .unwrap()
        .stdout;
    serde_json::from_slice(&out).unwrap()
}

fn status_text(home: &Path) -> String {
    let out = dts(home)
        .args(["status", "last"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

/// prepare (4) → work over a 2×2 matrix (4, after prepare) → reduce (1, after work) on two
/// sshd hosts with two slots each: all of a stage can run at once, so only the graph holds
/// a stage back; each stage's tasks must all start after the stage before ended.
#[test]
fn a_three_stage_pipeline_starts_each_stage_after_the_one_before_ended() {
    let lab = Lab::start(2);
    let log = lab.path("joblog");
    let job = "[[stage]]\nname = \"prepare\"\ncommand = \"sleep 0.3; echo prepared {}\"\n\
               array = \"1-4\"\n\n\
               [[stage]]\nname = \"work\"\ncommand = \"echo $DTS_STAGE {a} {b}$MARK\"\n\
               after = [\"prepare\"]\nenv = { MARK = \"!\" }\n[stage.matrix]\na = [\"x\", \"y\"]\nb = [\"1\", \"2\"]\n\n\
               [[stage]]\nname = \"reduce\"\ncommand = \"echo $DTS_STAGE\"\nafter = [\"work\"]\n";
    std::fs::write(lab.path("pipeline.toml"), job).unwrap();
    let out = lab
        .submit()
        .arg(lab.path("pipeline.toml"))
        .arg("--joblog")
        .arg(&log)
        .assert()
        .success()
        .get_output()
        .clone();
    let lines = tagged_lines(&out.stdout);
    let mut said: Vec<(u64, &str)> = lines.iter().map(|(_, i, l)| (*i, l.as_str())).collect();
    said.sort();
    assert_eq!(
        said,
        [
            (1, "prepared 1"),
            (2, "prepared 2"),
            (3, "prepared 3"),
            (4, "prepared 4"),
            (5, "work x 1!"),
            (6, "work x 2!"),
            (7, "work y 1!"),
            (8, "work y 2!"),
            (9, "reduce"),
        ]
    );
    let rows = joblog(&log);
    assert_eq!(rows.len(), 9, "{rows:?}");
    let hosts: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.host.as_str()).collect();
    assert_eq!(hosts.len(), 2, "both hosts ran tasks: {rows:?}");
    let (prepare, work, reduce) = (
        rows_of(&rows, 1..=4),
        rows_of(&rows, 5..=8),
        rows_of(&rows, 9..=9),
    );
    after_all(&work, &prepare, "work after prepare");
    after_all(&reduce, &work, "reduce after work");
    let doc = status_json(lab.dir.path());
    let stages: Vec<(String, u64)> = doc["stages"]
        .as_array()
        .expect("stages in the document")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["succeeded"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            ("prepare".to_string(), 4),
            ("work".to_string(), 4),
            ("reduce".to_string(), 1)
        ]
    );
}

/// prep task 2 fails: work task 2 (each_after prep) and reduce (after work) never run,
/// are recorded as skipped (dependency failed) and shown so; the other chains finish;
/// the run exits 1.
#[test]
fn a_failed_task_skips_its_dependents_and_the_run_exits_1() {
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("joblog");
    let job = "[[stage]]\nname = \"prep\"\ncommand = \"touch ran.$DTS_TASK_ID; echo {} >> attempts; test {} != 2\"\n\
               array = \"1-3\"\nretries = 1\n\n\
               [[stage]]\nname = \"work\"\ncommand = \"touch ran.$DTS_TASK_ID\"\n\
               array = \"1-3\"\neach_after = \"prep\"\n\n\
               [[stage]]\nname = \"reduce\"\ncommand = \"touch ran.$DTS_TASK_ID\"\n\
               after = [\"work\"]\n";
    std::fs::write(home.path().join("pipeline.toml"), job).unwrap();
    dts(home.path())
        .args(["submit", "pipeline.toml", "--slots", "4", "--joblog"])
        .arg(&log)
        .assert()
        .code(1)
        .stderr(contains("2 skipped (dependency failed)"))
        .stderr(contains(
            "stage work: 3 tasks: 2 succeeded, 1 skipped (dependency failed)",
        ));
    let ran: Vec<u64> = (1..=7)
        .filter(|i| home.path().join(format!("ran.{i}")).exists())
        .collect();
    assert_eq!(
        ran,
        [1, 2, 3, 4, 6],
        "work 2 (task 5) and reduce (7) never ran"
    );

    let doc = status_json(home.path());
    assert_eq!(doc["state"], "failed");
    assert_eq!(doc["tasks"]["skipped"], 2);
    assert_eq!(doc["tasks"]["failed"], 1);
    assert_eq!(doc["stages"][0]["failed"], 1);
    assert_eq!(doc["stages"][1]["skipped"], 1);
    assert_eq!(doc["stages"][2]["skipped"], 1);
    let text = status_text(home.path());
    assert!(
        text.contains("stage reduce: 1 task: 1 skipped (dependency failed)"),
        "{text}"
    );

    let rows = joblog(&log);
    let skipped: BTreeMap<u64, &Row> = rows
        .iter()
        .filter(|r| r.command == "skipped (dependency failed)")
        .map(|r| (r.index, r))
        .collect();
    assert_eq!(skipped.keys().copied().collect::<Vec<_>>(), [5, 7]);
    assert!(skipped.values().all(|r| r.exitval == -1 && r.host == "-"));
}

/// Six prep tasks spread at random over three sshd hosts; each work task (each_after prep)
/// must run on the host its prep task ran on. Placed at random instead, all six would
/// match by chance once in 729 runs.
#[test]
fn each_after_runs_each_task_on_the_host_where_its_predecessor_ran() {
    let lab = Lab::start(3);
    let log = lab.path("joblog");
    let job = "algorithm = \"random\"\n\
               [[stage]]\nname = \"prep\"\ncommand = \"sleep 0.$(( {} % 3 ))\"\narray = \"1-6\"\n\n\
               [[stage]]\nname = \"work\"\ncommand = \"echo on $DTS_HOST\"\narray = \"1-6\"\n\
               each_after = \"prep\"\n";
    std::fs::write(lab.path("pipeline.toml"), job).unwrap();
    lab.submit()
        .arg(lab.path("pipeline.toml"))
        .arg("--joblog")
        .arg(&log)
        .assert()
        .success();
    let rows = joblog(&log);
    let host_of: BTreeMap<u64, &str> = rows.iter().map(|r| (r.index, r.host.as_str())).collect();
    assert_eq!(host_of.len(), 12, "{rows:?}");
    for i in 1..=6 {
        assert_eq!(
            host_of[&(i + 6)],
            host_of[&i],
            "work {i} (task {}) ran elsewhere than prep {i}: {host_of:?}",
            i + 6
        );
        let (prep, work) = (&rows_of(&rows, i..=i)[0], &rows_of(&rows, i + 6..=i + 6)[0]);
        assert!(
            work.start + 0.001 >= prep.end,
            "work {i} started before prep {i} ended"
        );
    }
    let distinct: std::collections::BTreeSet<&str> = host_of.values().copied().collect();
    assert!(
        distinct.len() > 1,
        "random placement used one host: {host_of:?}"
    );
}

/// A pipeline whose work task 2 fails until a file exists: after creating it, `dts retry`
/// runs that task, then what it skipped, and nothing that succeeded runs again.
#[test]
fn dts_retry_of_a_pipeline_runs_what_failed_and_what_it_skipped_in_order() {
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("joblog");
    let job = "[[stage]]\nname = \"prep\"\ncommand = \"echo $DTS_TASK_ID >> runs\"\n\
               array = \"1-3\"\n\n\
               [[stage]]\nname = \"work\"\n\
               command = \"echo $DTS_TASK_ID >> runs; test {} != 2 || test -e fixed\"\n\
               array = \"1-3\"\neach_after = \"prep\"\n\n\
               [[stage]]\nname = \"reduce\"\ncommand = \"echo $DTS_TASK_ID >> runs\"\n\
               after = [\"work\"]\n";
    std::fs::write(home.path().join("pipeline.toml"), job).unwrap();
    dts(home.path())
        .args(["submit", "pipeline.toml", "--slots", "4", "--joblog"])
        .arg(&log)
        .assert()
        .code(1);
    let runs = |home: &Path| -> Vec<u64> {
        let text = std::fs::read_to_string(home.join("runs")).unwrap();
        let mut runs: Vec<u64> = text.lines().map(|l| l.parse().unwrap()).collect();
        runs.sort();
        runs
    };
    assert_eq!(runs(home.path()), [1, 2, 3, 4, 5, 6], "reduce skipped");
    assert!(status_text(home.path()).contains("stage reduce: 1 task: 1 skipped"));
    let first_session = joblog(&log).len();

    std::fs::write(home.path().join("fixed"), "").unwrap();
    dts(home.path())
        .args(["retry", "last"])
        .assert()
        .success()
        .stderr(contains("stage reduce: 1 task: 1 succeeded"));
    assert_eq!(
        runs(home.path()),
        [1, 2, 3, 4, 5, 5, 6, 7],
        "only work 2 (task 5) and reduce (task 7) ran again"
    );
    let rows = joblog(&log);
    let retried: Vec<&Row> = rows[first_session..].iter().collect();
    let indexes: Vec<u64> = retried.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [5, 7], "{retried:?}");
    assert!(
        retried[1].start + 0.001 >= retried[0].end,
        "reduce ran before work 2 ended"
    );
    let doc = status_json(home.path());
    assert_eq!(doc["state"], "succeeded");
    assert_eq!(doc["tasks"]["succeeded"], 7);
}

/// Flags that would replace a pipeline's commands or items are refused before anything runs.
#[test]
fn a_pipeline_refuses_flags_that_replace_its_items_and_runs_nothing() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("pipeline.toml"),
        "[[stage]]\nname = \"prep\"\ncommand = \"touch ran\"\n",
    )
    .unwrap();
    dts(home.path())
        .args(["submit", "pipeline.toml", "--array", "1-3"])
        .assert()
        .code(2)
        .stderr(contains("--array cannot be used with a [[stage]] pipeline"));
    assert!(!home.path().join("ran").exists());
}

/// The example in `jobs/` runs as it is and computes what it says.
#[test]
fn the_example_pipeline_prepares_sweeps_and_reduces() {
    let home = tempfile::tempdir().unwrap();
    let job = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/pipeline.toml");
    dts(home.path())
        .arg("submit")
        .arg(&job)
        .assert()
        .success()
        .stdout(contains("sum of x^1 for x in 1..3000: 4501500\n"))
        .stdout(contains("sum of x^2 for x in 1..3000: 9004500500\n"))
        .stderr(contains("stage work: 6 tasks: 6 succeeded"));
    let status = status_text(home.path());
    assert!(
        status.contains("task 9  succeeded  shard=3 power=2"),
        "{status}"
    );
}

/// In a retry, an each_after task still goes where its predecessor ran in the earlier
/// session (its files are still there): work tasks 2-6 fail until a file exists, then
/// `dts retry` runs each on its prep task's host. The run's seed replays its random choices
/// in the retry, so without locality work k would land where prep k-1 went (work 1 does
/// not run again): the test passes by chance only if prep 1-6 all shared a host.
#[test]
fn a_retried_each_after_task_runs_where_its_predecessor_ran_before() {
    let lab = Lab::start(3);
    let log = lab.path("joblog");
    let fixed = lab.path("fixed");
    let job = format!(
        "algorithm = \"random\"\n\
         [[stage]]\nname = \"prep\"\ncommand = \"sleep 0.$(( {{}} % 3 ))\"\narray = \"1-6\"\n\n\
         [[stage]]\nname = \"work\"\ncommand = \"test {{}} = 1 || test -e {}\"\narray = \"1-6\"\n\
         each_after = \"prep\"\n",
        fixed.display()
    );
    std::fs::write(lab.path("pipeline.toml"), job).unwrap();
    lab.submit()
        .arg(lab.path("pipeline.toml"))
        .arg("--joblog")
        .arg(&log)
        .assert()
        .code(1);
    let first = joblog(&log);
    assert_eq!(
        first.iter().filter(|r| r.exitval == 1).count(),
        5,
        "{first:?}"
    );
    std::fs::write(&fixed, "").unwrap();
    dts(lab.dir.path())
        .args(["retry", "last"])
        .assert()
        .success();
    let rows = joblog(&log);
    let prep_host: BTreeMap<u64, &str> = rows_of(&first, 1..=6)
        .iter()
        .map(|r| (r.index, r.host.as_str()))
        .collect();
    let retried = &rows[first.len()..];
    assert_eq!(retried.len(), 5, "{retried:?}");
    for row in retried {
        assert_eq!(
            row.host,
            prep_host[&(row.index - 6)],
            "work task {} went elsewhere than its prep task: {prep_host:?} {retried:?}",
            row.index
        );
    }
    let distinct: std::collections::BTreeSet<&str> = prep_host.values().copied().collect();
    assert!(
        distinct.len() > 1,
        "random placement used one host: {prep_host:?}"
    );
}

/// Ctrl-C while the first stage runs: the run stops (exit 130) instead of waiting for
/// tasks that can no longer be released, the waiting stage is recorded as not run with the
/// interrupted tasks (not skipped), and `dts retry` runs both stages.
#[test]
fn an_interrupted_pipeline_records_its_waiting_tasks_as_not_run_and_retry_finishes_it() {
    let home = tempfile::tempdir().unwrap();
    let mark = marker("stages-int");
    let job = format!(
        "[[stage]]\nname = \"prep\"\ncommand = \"touch started.{{}}; test -e fast || sleep 30; : {mark}\"\n\
         array = \"1-2\"\n\n\
         [[stage]]\nname = \"work\"\ncommand = \"touch worked.{{}}\"\narray = \"1-2\"\n\
         each_after = \"prep\"\n"
    );
    std::fs::write(home.path().join("pipeline.toml"), job).unwrap();
    let child = dts_process(home.path())
        .args([
            "submit",
            "pipeline.toml",
            "--slots",
            "4",
            "--kill-grace",
            "1s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(std::time::Duration::from_secs(30), "prep to start", || {
        (1..=2).all(|i| home.path().join(format!("started.{i}")).exists())
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    no_process_left(&mark, std::time::Duration::from_secs(30));
    let doc = status_json(home.path());
    assert_eq!(doc["state"], "interrupted");
    assert_eq!(doc["tasks"]["not_run"], 4, "{doc}");
    assert_eq!(doc["stages"][1]["not_run"], 2, "{doc}");
    assert!(!home.path().join("worked.1").exists());

    std::fs::write(home.path().join("fast"), "").unwrap();
    dts(home.path()).args(["retry", "last"]).assert().success();
    assert!((1..=2).all(|i| home.path().join(format!("worked.{i}")).exists()));
    assert_eq!(status_json(home.path())["tasks"]["succeeded"], 4);
}

/// `--dry-run` of a pipeline says which stage waits for which, and which task for which
/// through `each_after`, besides where the tasks would go (text and `--json`).
#[test]
fn a_dry_run_of_a_pipeline_shows_which_stage_waits_for_which() {
    let home = tempfile::tempdir().unwrap();
    let job = home.path().join("job.toml");
    std::fs::write(
        &job,
        "[[stage]]\nname = \"fetch\"\narray = \"1-3\"\ncommand = \"true\"\n\n\
         [[stage]]\nname = \"convert\"\narray = \"1-3\"\ncommand = \"true\"\neach_after = \"fetch\"\n\n\
         [[stage]]\nname = \"merge\"\ncommand = \"true\"\nafter = [\"convert\"]\n",
    )
    .unwrap();
    let out = dts(home.path())
        .args(["submit", "--dry-run"])
        .arg(&job)
        .output()
        .unwrap();
    assert_succeeded(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = "stages, in the order they can start:\n\
                    \x20 fetch    tasks 1-3  starts at once\n\
                    \x20 convert  tasks 4-6  task by task after fetch (tasks 1-3): 4 after 1, 5 after 2, 6 after 3\n\
                    \x20 merge    task 7     after every task of convert (tasks 4-6)\n";
    assert!(text.contains(expected), "{text}");
    let out = dts(home.path())
        .args(["submit", "--dry-run", "--json"])
        .arg(&job)
        .output()
        .unwrap();
    assert_succeeded(&out);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["stages"][1]["each_after"], "fetch");
    assert_eq!(
        plan["stages"][1]["pairs"],
        serde_json::json!([[4, 1], [5, 2], [6, 3]])
    );
    assert_eq!(plan["stages"][2]["after"], serde_json::json!(["convert"]));
}
