//! The real binary on the local machine, as a user of Unix tools and GNU parallel expects it
//! to behave: output modes byte for byte, closed pipes, signals, `--detach`, the joblog,
//! task numbering, and setup errors caught before anything connects.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::*;
use predicates::prelude::*;
use predicates::str::contains;

fn stdout_of(home: &Path, args: &[&str]) -> Vec<u8> {
    dts(home)
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone()
}

#[test]
fn raw_output_is_byte_exact_for_binary_bytes_without_a_final_newline() {
    let home = tempfile::tempdir().unwrap();
    // 100,000 bytes of every value, newlines included, the last one not a newline.
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 131 % 251) as u8).collect();
    assert_ne!(data.last(), Some(&b'\n'));
    std::fs::write(home.path().join("data.bin"), &data).unwrap();
    let out = stdout_of(
        home.path(),
        &["submit", "--output", "raw", "--", "cat data.bin"],
    );
    assert_eq!(out.len(), data.len(), "bytes in = bytes out");
    assert!(out == data, "raw output differs from the task's bytes");
}

#[test]
fn raw_output_of_a_line_over_4_mib_is_byte_exact_and_tagged_output_marks_the_split() {
    let home = tempfile::tempdir().unwrap();
    let command = "head -c 5000000 /dev/zero | tr '\\0' x; echo; echo after";
    let raw = stdout_of(home.path(), &["submit", "--output", "raw", "--", command]);
    let mut expected = vec![b'x'; 5_000_000];
    expected.extend_from_slice(b"\nafter\n");
    assert!(raw == expected, "raw output of a long line differs");

    let tagged = stdout_of(home.path(), &["submit", "--", command]);
    let lines: Vec<&[u8]> = tagged.split(|&b| b == b'\n').collect();
    assert_eq!(
        lines.len(),
        4,
        "two parts of the long line, `after`, the end"
    );
    assert!(lines[0].starts_with(b"[localhost 1] x"));
    assert!(
        lines[1].starts_with(b"[localhost 1+] x"),
        "the later part is marked"
    );
    assert_eq!(lines[2], b"[localhost 1] after");
    let xs: usize = lines[..2]
        .iter()
        .map(|l| l.iter().filter(|&&b| b == b'x').count())
        .sum();
    assert_eq!(xs, 5_000_000, "nothing lost at the split");
}

#[test]
fn grouped_output_ends_an_unterminated_last_line_before_the_next_block() {
    let home = tempfile::tempdir().unwrap();
    let out = stdout_of(
        home.path(),
        &[
            "submit",
            "--output",
            "grouped",
            "--array",
            "1-2",
            "--",
            "printf 'a%s\\nb%s' {} {}",
        ],
    );
    let out = String::from_utf8(out).unwrap();
    assert!(
        out == "a1\nb1\na2\nb2\n" || out == "a2\nb2\na1\nb1\n",
        "blocks run together: {out:?}"
    );
}

/// Runs dts with a stdout whose reading end is already closed, as `dts ... | head` ends.
fn with_closed_stdout(home: &Path, args: &[&str]) -> Output {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills `fds` with two new descriptors, which we own from here on.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (reader, writer) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    drop(reader);
    dts_process(home)
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn closed_stdout_ends_commands_quietly_without_a_panic() {
    let home = tempfile::tempdir().unwrap();
    dts(home.path())
        .args(["submit", "-q", "--array", "1", "--", "true"])
        .assert()
        .success();
    let commands: [&[&str]; 7] = [
        &["status", "--json"],
        &["status"],
        &["simulate", "--tasks", "100"],
        &["hosts"],
        &["completions", "bash"],
        &["clean", "--older-than", "0s", "--dry-run"],
        &[
            "submit",
            "--dry-run",
            "--json",
            "--no-probe",
            "--array",
            "1-3",
            "--",
            "true",
        ],
    ];
    for args in commands {
        let out = with_closed_stdout(home.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked"),
            "dts {args:?} panicked: {stderr}"
        );
        assert!(
            out.status.signal() == Some(libc::SIGPIPE) || out.status.success(),
            "dts {args:?}: {:?}, {stderr}",
            out.status
        );
    }
}

#[test]
fn closed_stdout_does_not_stop_submit_running_its_tasks() {
    let home = tempfile::tempdir().unwrap();
    let out = with_closed_stdout(
        home.path(),
        &[
            "submit",
            "--array",
            "1-20",
            "--json",
            "--",
            "echo {}; touch done.{}",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    for i in 1..=20 {
        assert!(
            home.path().join(format!("done.{i}")).exists(),
            "task {i} ran"
        );
    }
    // Tagged output, not only the JSON document at the end.
    let out = with_closed_stdout(home.path(), &["submit", "--array", "1-3", "--", "echo {}"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn sighup_stops_the_run_like_term_with_a_report_and_exit_130() {
    let home = tempfile::tempdir().unwrap();
    let mark = marker("sighup");
    let child = dts_process(home.path())
        .args(["submit", "--slots", "2", "--array", "1-4", "--"])
        .arg(format!("touch started.{{}}; sleep 300; : {mark}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), "2 tasks to start", || {
        (1..=2).all(|i| home.path().join(format!("started.{i}")).exists())
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("4 tasks:"), "the end report: {stderr}");
    no_process_left(&mark, Duration::from_secs(20));
}

#[test]
fn detach_with_json_prints_the_run_id_as_json_and_quiet_prints_nothing_else() {
    let home = tempfile::tempdir().unwrap();
    let out = dts(home.path())
        .args([
            "submit", "--detach", "--json", "-q", "--array", "1-2", "--", "true",
        ])
        .assert()
        .success()
        .stderr("")
        .get_output()
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = doc["run_id"].as_str().expect("run_id").to_string();
    wait_until(Duration::from_secs(30), "the detached run to end", || {
        let out = dts(home.path())
            .args(["status", &id, "--json"])
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        doc["state"] == "succeeded"
    });
    // Without --json, the id alone, as before.
    let out = stdout_of(
        home.path(),
        &["submit", "--detach", "-q", "--array", "1", "--", "true"],
    );
    let id = String::from_utf8(out).unwrap();
    assert_eq!(id.trim().len(), id.len() - 1, "one line: {id:?}");
    wait_until(Duration::from_secs(30), "the second run to end", || {
        dts(home.path())
            .args(["status", id.trim()])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("succeeded"))
    });
}

#[test]
fn progress_bars_off_a_terminal_say_why_and_print_plain_lines() {
    let home = tempfile::tempdir().unwrap();
    dts(home.path())
        .args(["submit", "--progress", "bars", "--array", "1", "--", "true"])
        .assert()
        .success()
        .stderr(contains(
            "--progress bars needs a terminal on stderr; printing plain progress lines instead",
        ));
}

#[test]
fn cancelling_a_finished_run_says_it_has_already_ended() {
    let home = tempfile::tempdir().unwrap();
    dts(home.path())
        .args(["submit", "-q", "--array", "1", "--", "true"])
        .assert()
        .success();
    dts(home.path())
        .args(["cancel", "last"])
        .assert()
        .code(2)
        .stderr(contains("it has already ended (succeeded)"))
        .stderr(contains("it is succeeded").not());
}

/// The joblog's lines (after the header) as (Seq, Exitval, Signal).
fn joblog_rows(text: &str) -> Vec<(u64, i32, i32)> {
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("Seq\tHost\tStarttime"));
    let mut rows: Vec<(u64, i32, i32)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].parse().unwrap(),
                f[6].parse().unwrap(),
                f[7].parse().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn joblog_dash_writes_the_joblog_on_stdout_not_to_a_file_named_dash() {
    let home = tempfile::tempdir().unwrap();
    let out = stdout_of(
        home.path(),
        &[
            "submit", "--joblog", "-", "--output", "raw", "--array", "1-2", "--", "echo {}",
        ],
    );
    let out = String::from_utf8(out).unwrap();
    assert!(!home.path().join("-").exists(), "no file named -");
    assert!(out.starts_with("Seq\tHost\tStarttime"), "{out}");
    let joblog: String = out
        .lines()
        .filter(|l| l.contains('\t'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(joblog_rows(&joblog), [(1, 0, 0), (2, 0, 0)]);
    dts(home.path())
        .args(["submit", "--joblog", "-", "--json", "--", "true"])
        .assert()
        .code(2)
        .stderr(contains("--joblog - writes the joblog on stdout"));
}

#[test]
fn timed_out_task_is_in_the_joblog_with_exitval_minus_one() {
    let home = tempfile::tempdir().unwrap();
    let mark = marker("joblog-timeout");
    dts(home.path())
        .args([
            "submit",
            "--timeout",
            "1s",
            "--kill-grace",
            "1s",
            "--joblog",
            "jl",
            "--array",
            "1",
            "--",
        ])
        .arg(format!(": {{}}; sleep 30; : {mark}"))
        .assert()
        .code(1);
    let joblog = std::fs::read_to_string(home.path().join("jl")).unwrap();
    let rows = joblog_rows(&joblog);
    assert_eq!(rows.len(), 1, "{joblog}");
    assert_eq!((rows[0].0, rows[0].1), (1, -1), "{joblog}");
    no_process_left(&mark, Duration::from_secs(10));
}

#[test]
fn tags_joblog_seq_dts_task_id_and_logs_use_one_task_numbering() {
    let home = tempfile::tempdir().unwrap();
    // An array: the array index.
    let out = stdout_of(
        home.path(),
        &[
            "submit",
            "--joblog",
            "array.log",
            "--array",
            "5-6",
            "--",
            "echo $DTS_TASK_ID {}",
        ],
    );
    let mut lines = tagged_lines(&out);
    lines.sort();
    assert_eq!(
        lines,
        [
            ("localhost".into(), 5, "5 5".into()),
            ("localhost".into(), 6, "6 6".into())
        ]
    );
    let joblog = std::fs::read_to_string(home.path().join("array.log")).unwrap();
    assert_eq!(joblog_rows(&joblog), [(5, 0, 0), (6, 0, 0)]);
    // Items: the 1-based item (line) number, in `dts logs` too.
    let out = dts(home.path())
        .args([
            "submit",
            "--joblog",
            "items.log",
            "--items",
            "-",
            "--",
            "echo $DTS_TASK_ID {}",
        ])
        .write_stdin("a\nb\n")
        .assert()
        .success()
        .get_output()
        .clone();
    // `dts: run ID: ...` (not `last`: two runs in one second may not sort in order).
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = stderr
        .split("dts: run ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap()
        .to_string();
    let mut lines = tagged_lines(&out.stdout);
    lines.sort();
    assert_eq!(
        lines,
        [
            ("localhost".into(), 1, "1 a".into()),
            ("localhost".into(), 2, "2 b".into())
        ]
    );
    let joblog = std::fs::read_to_string(home.path().join("items.log")).unwrap();
    assert_eq!(joblog_rows(&joblog), [(1, 0, 0), (2, 0, 0)]);
    dts(home.path())
        .args(["logs", &id, "2"])
        .assert()
        .success()
        .stdout("2 b\n");
}

#[test]
fn command_without_placeholder_gets_the_item_appended_as_in_gnu_parallel() {
    let home = tempfile::tempdir().unwrap();
    let out = dts(home.path())
        .args(["submit", "--items", "-", "--", "printf", "<%s>\\n"])
        .write_stdin("a b\n$(touch injected)\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let mut lines = tagged_lines(&out);
    lines.sort();
    let got: Vec<&str> = lines.iter().map(|(_, _, l)| l.as_str()).collect();
    assert_eq!(got, ["<a b>", "<$(touch injected)>"]);
    assert!(
        !home.path().join("injected").exists(),
        "appended items are quoted"
    );
    // An array appends nothing (Slurm's habit): its index is in the environment.
    let out = stdout_of(
        home.path(),
        &[
            "submit",
            "--array",
            "7",
            "--",
            "echo \"[$DTS_ARRAY_INDEX]\"",
        ],
    );
    assert_eq!(tagged_lines(&out), [("localhost".into(), 7, "[7]".into())]);
}

#[test]
fn speculate_before_the_job_file_leaves_the_job_file_alone() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("job.toml"),
        "command = \"echo {}\"\narray = \"1-3\"\n",
    )
    .unwrap();
    dts(home.path())
        .args([
            "submit",
            "--speculate",
            "job.toml",
            "--dry-run",
            "--no-probe",
        ])
        .assert()
        .success()
        .stdout(contains("plan for 3 tasks"));
    dts(home.path())
        .args([
            "submit",
            "--speculate=2",
            "job.toml",
            "--dry-run",
            "--no-probe",
        ])
        .assert()
        .success();
}

/// An inventory of one ssh host nobody listens on, with `identity` set to `key`.
fn unreachable_host_with_key(home: &Path, key: &str) -> String {
    let port = free_port(std::net::Ipv4Addr::LOCALHOST);
    let text = format!(
        "[defaults]\nidentity = \"{key}\"\n{}",
        host_entry("h1", "127.0.0.1", port)
    );
    std::fs::write(home.join("hosts.toml"), &text).unwrap();
    text
}

#[test]
fn missing_identity_file_is_a_configuration_error_before_connecting() {
    let home = tempfile::tempdir().unwrap();
    unreachable_host_with_key(home.path(), "keys/id_missing");
    let key = home.path().join("keys/id_missing");
    dts(home.path())
        .args(["submit", "--array", "1", "--", "true"])
        .assert()
        .code(2)
        .stderr(contains(format!(
            "hosts.toml:2:12: host h1: identity file {}: no such file",
            key.display()
        )))
        .stderr(contains("authentication").not());
    dts(home.path())
        .arg("hosts")
        .assert()
        .code(2)
        .stderr(contains("identity file"));
}

#[test]
fn private_key_readable_by_others_is_refused_as_openssh_refuses_it() {
    let home = tempfile::tempdir().unwrap();
    unreachable_host_with_key(home.path(), "id_open");
    let key = home.path().join("id_open");
    keygen(&key);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    dts(home.path())
        .args(["submit", "--array", "1", "--", "true"])
        .assert()
        .code(2)
        .stderr(contains("host h1: identity file"))
        .stderr(contains("permissions 0644 are too open"));
    // Once private, the key passes and the run gets as far as connecting.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    dts(home.path())
        .args(["submit", "--array", "1", "--", "true"])
        .assert()
        .code(3);
}

#[test]
fn state_dir_open_to_others_gets_a_warning() {
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    dts(home.path())
        .env("DTS_STATE_DIR", &state)
        .args(["submit", "--array", "1", "--", "true"])
        .assert()
        .success()
        .stderr(contains(format!(
            "dts: warning: state directory {} has permissions 0777",
            state.display()
        )));
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    dts(home.path())
        .env("DTS_STATE_DIR", &state)
        .args(["submit", "--array", "1", "--", "true"])
        .assert()
        .success()
        .stderr(contains("warning").not());
}

#[test]
fn every_page_the_man_page_lists_can_be_produced() {
    let home = tempfile::tempdir().unwrap();
    let page = String::from_utf8(stdout_of(home.path(), &["man"])).unwrap();
    let listed: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("dts\\-")?.strip_suffix("(1)"))
        .collect();
    assert!(listed.contains(&"submit"), "{page}");
    for name in listed {
        let sub = String::from_utf8(stdout_of(home.path(), &["man", name])).unwrap();
        assert!(
            sub.contains(&format!(".TH dts-{name} 1")),
            "dts man {name}: {sub}"
        );
    }
    dts(home.path())
        .args(["man", "bogus"])
        .assert()
        .code(2)
        .stderr(contains("no man page for 'bogus'"));
}

#[test]
fn retry_help_does_not_mention_dry_run() {
    let home = tempfile::tempdir().unwrap();
    dts(home.path())
        .args(["retry", "--help"])
        .assert()
        .success()
        .stdout(contains("--dry-run").not());
}

#[test]
fn readme_and_hosts_example_agree_on_default_keys_and_name_every_run_state() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("hosts.example.toml")).unwrap();
    // The keys the ssh transport tries when no identity is configured.
    let keys = "~/.ssh/id_ed25519, id_ecdsa,";
    assert!(readme.contains(keys), "README default keys");
    assert!(
        example
            .replace("\n", " ")
            .replace("#", "")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains(keys),
        "hosts.example.toml default keys"
    );
    for state in [
        "queued",
        "running",
        "paused",
        "succeeded",
        "failed",
        "cancelled",
        "interrupted",
        "no-host",
    ] {
        assert!(
            readme.contains(&format!("`{state}`")),
            "README names state {state}"
        );
    }
}

/// `dts status RUN --json`'s count of succeeded tasks (0 while it cannot tell).
fn succeeded(home: &Path, run: &str) -> u64 {
    let out = dts(home).args(["status", run, "--json"]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    doc["tasks"]["succeeded"].as_u64().unwrap_or(0)
}

#[test]
fn progress_counts_a_task_running_once_started_not_when_dispatched() {
    let lab = Lab::start(1);
    let dir = lab.path("gates");
    std::fs::create_dir(&dir).unwrap();
    let d = dir.display();
    let command = format!("touch {d}/s.{{}}; while [ ! -e {d}/go.{{}} ]; do sleep 0.05; done");
    // Per-task channels: a frozen host never opens one. A warm task counts as running once
    // its frame is written to its worker, which a frozen host's connection still takes.
    let mut child = dts_process(lab.dir.path())
        .env("DTS_EXECUTION", "per-task")
        .args(["submit", "-H"])
        .arg(lab.inventory())
        .args([
            "--progress",
            "plain",
            "--slots",
            "2",
            "--array",
            "1-4",
            "--",
        ])
        .arg(&command)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let gate = |name: &str| dir.join(name).exists();
    wait_until(Duration::from_secs(30), "tasks 1 and 2 to start", || {
        gate("s.1") && gate("s.2")
    });
    dts(lab.dir.path())
        .args(["pause", "last"])
        .assert()
        .success();
    std::fs::write(dir.join("go.1"), "").unwrap();
    std::fs::write(dir.join("go.2"), "").unwrap();
    wait_until(Duration::from_secs(30), "tasks 1 and 2 to end", || {
        succeeded(lab.dir.path(), "last") == 2
    });
    // Tasks 3 and 4 are dispatched to a host that cannot start them: not running yet.
    let frozen = lab.freeze_host(0);
    dts(lab.dir.path())
        .args(["resume", "last"])
        .assert()
        .success();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let resumed_line = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("2/4 done") && !l.contains("paused"))
        .expect("a progress line after the resume");
    lab.thaw(&frozen);
    std::fs::write(dir.join("go.3"), "").unwrap();
    std::fs::write(dir.join("go.4"), "").unwrap();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(child.wait().unwrap().success(), "{rest:?}");
    assert!(
        resumed_line.contains(", 0 running"),
        "dispatched but not started counted as running: {resumed_line}"
    );
    assert!(
        rest.iter().any(|l| l.contains("4 tasks: 4 succeeded")),
        "{rest:?}"
    );
}

/// `dts submit JOB --dry-run` on a pipeline whose stages are `tables`: exit 2, stderr checked.
fn submit_pipeline_fails(tables: &str, expected: &str) {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("pipeline.toml"), tables).unwrap();
    dts(home.path())
        .args(["submit", "pipeline.toml", "--dry-run", "--no-probe"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains(expected));
}

#[test]
fn a_stage_cycle_is_exit_2_at_file_line_col() {
    submit_pipeline_fails(
        "[[stage]]\nname = \"prep\"\ncommand = \"true\"\nafter = [\"reduce\"]\n\n\
         [[stage]]\nname = \"reduce\"\ncommand = \"true\"\nafter = [\"prep\"]\n",
        "pipeline.toml:9:10: stages depend on each other in a cycle: prep → reduce → prep",
    );
}

#[test]
fn an_unknown_stage_is_exit_2_at_file_line_col() {
    submit_pipeline_fails(
        "[[stage]]\nname = \"prep\"\ncommand = \"true\"\n\n\
         [[stage]]\nname = \"work\"\ncommand = \"true\"\neach_after = \"perp\"\n",
        "pipeline.toml:8:14: unknown stage `perp` (stages: prep, work)",
    );
}
