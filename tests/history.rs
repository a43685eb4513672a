//! Durations learned from earlier runs, on real sshd: a named job records its task times,
//! and its next run with `--order longest-first` starts the longest recorded first.

mod common;

use common::*;

/// Task N sleeps N/10 s and prints its index and start time (ns).
const SKEWED: &str = "echo \"$DTS_TASK_ID $(date +%s%N)\"; sleep \"0.$DTS_TASK_ID\"";

/// Task indices in the order they started.
fn start_order(stdout: &[u8]) -> Vec<u64> {
    let mut starts: Vec<(u128, u64)> = tagged_lines(stdout)
        .into_iter()
        .map(|(_, _, line)| {
            let (index, at) = line.split_once(' ').unwrap();
            (at.parse().unwrap(), index.parse().unwrap())
        })
        .collect();
    starts.sort_unstable();
    starts.into_iter().map(|(_, index)| index).collect()
}

#[test]
fn the_second_run_of_a_named_job_starts_the_longest_recorded_tasks_first() {
    let lab = Lab::start(1);
    lab.write_inventory(1);
    let run = |extra: &[&str]| {
        let out = lab
            .submit()
            .args(["--name", "skewed", "--array", "1-5"])
            .args(extra)
            .args(["--", SKEWED])
            .output()
            .unwrap();
        assert_succeeded(&out);
        (
            start_order(&out.stdout),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (first, stderr) = run(&["--order", "longest-first"]);
    assert_eq!(
        first,
        vec![1, 2, 3, 4, 5],
        "nothing recorded yet: as listed"
    );
    assert!(
        stderr.contains("longest-first: no task of this job has a recorded time yet"),
        "{stderr}"
    );
    let (second, stderr) = run(&["--order", "longest-first"]);
    assert_eq!(second, vec![5, 4, 3, 2, 1], "{stderr}");
    assert!(
        stderr.contains("longest-first: all 5 tasks have recorded times (mean "),
        "{stderr}"
    );
    // Another name has no history of its own.
    let out = lab
        .submit()
        .args([
            "--name",
            "other",
            "--order",
            "longest-first",
            "--array",
            "1-2",
        ])
        .args(["--", SKEWED])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no task of this job has a recorded time"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn least_load_is_told_the_recorded_work_of_a_named_job_on_its_second_run() {
    let lab = Lab::start(2);
    lab.write_inventory(2);
    let run = || {
        let out = lab
            .submit()
            .args([
                "-v",
                "--algo",
                "least-load",
                "--name",
                "known",
                "--array",
                "1-4",
            ])
            .args(["--", SKEWED])
            .output()
            .unwrap();
        assert_succeeded(&out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = run();
    assert!(!first.contains("least-load knows the work"), "{first}");
    let second = run();
    assert!(
        second.contains("least-load knows the work of 4 of 4 tasks from earlier runs of 'known'"),
        "{second}"
    );
}
