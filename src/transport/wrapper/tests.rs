//! The prelude run the way the local transport runs it (own process group, `sh -c` with
//! `$0 = sh`, piped control line), compared with plain `sh -c` where semantics matter.

use super::*;
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};

fn task(command: &str) -> TaskScript<'_> {
    TaskScript {
        env: &[],
        workdir: None,
        command,
        kill_grace: Duration::from_secs(1),
        secrets: false,
    }
}

fn spawn(script: &str) -> Child {
    Command::new("/bin/sh")
        .arg0("sh")
        .arg("-c")
        .arg(script)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs a launch to its end with the control line held open until the task exits.
fn run_launch(launch: &Launch) -> std::process::Output {
    let mut child = spawn(&launch.command);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&launch.input).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    out
}

fn run(command: &str) -> std::process::Output {
    run_launch(&task(command).launch(LoginShell::Sh, &[]))
}

/// Plain `sh -c CMD` in its own group with stdin from /dev/null: the reference every way
/// of running a task (this prelude, a warm worker) is compared with.
pub(crate) fn reference(command: &str) -> std::process::Output {
    Command::new("/bin/sh")
        .arg0("sh")
        .arg("-c")
        .arg(command)
        .process_group(0)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[track_caller]
fn assert_same_as_sh_c(command: &str) {
    let ours = run(command);
    let theirs = reference(command);
    assert_eq!(
        (
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&ours.stderr),
            ours.status.code(),
            ours.status.signal()
        ),
        (
            String::from_utf8_lossy(&theirs.stdout),
            String::from_utf8_lossy(&theirs.stderr),
            theirs.status.code(),
            theirs.status.signal()
        ),
        "{command}"
    );
}

#[test]
fn login_shells_are_classified() {
    assert_eq!(LoginShell::from_path("/bin/sh"), LoginShell::Sh);
    assert_eq!(LoginShell::from_path("/bin/bash"), LoginShell::Other);
    assert_eq!(LoginShell::from_path("/usr/bin/fish"), LoginShell::Other);
    assert_eq!(LoginShell::from_path(""), LoginShell::Other);
}

/// Regression (issue 12, items 1-5): the command was `eval`ed in a shell that trapped
/// TERM and had the watcher as one of its jobs. Now whatever the command line can observe
/// of its shell is what `sh -c` shows.
#[test]
fn a_task_sees_exactly_what_sh_c_shows() {
    for command in OBSERVE_SH_C.iter().copied().chain(["env | sort"]) {
        assert_same_as_sh_c(command);
    }
}

/// Command lines whose streams and status show what a command line can observe of the
/// shell it runs in (besides its environment, which each caller checks its own way): every
/// way of running a task must give what plain `sh -c` ([`reference`]) gives.
pub(crate) const OBSERVE_SH_C: &[&str] = &[
    "echo \"$0 $# [$*] [$-]\"",
    "jobs; echo \"bang=[$!]\"",
    "trap",
    "set | grep -c __dts || true",
    "ls -l /proc/self/fd | tail -n +2 | wc -l",
    "exit 137",
    "exit 143",
    "exit 255",
    "kill -TERM $$; echo after",
    "sh -c 'kill -KILL $$'",
    "sleep 0.2 & kill -TERM $!; wait $!; echo $?",
    "sleep 0.1 & wait; echo done",
    "if",
    "echo one\nfi",
    "cat; echo read-stdin",
    "read x; echo \"[$x]\"",
    "printf 'no newline'",
    "echo err >&2; exit 3",
];

#[test]
fn exports_env_and_runs_the_command() {
    let script = TaskScript {
        env: &[("DTS_TASK_ID", "7"), ("GREETING", "it's $HOME")],
        ..task("echo \"$DTS_TASK_ID $GREETING\"")
    };
    let out = run_launch(&script.launch(LoginShell::Sh, &[]));
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "7 it's $HOME\n");
}

#[test]
fn workdir_is_entered_and_a_missing_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let script = TaskScript {
        workdir: Some(path),
        ..task("pwd; echo \"[${OLDPWD-unset}]\"")
    };
    let out = run_launch(&script.launch(LoginShell::Sh, &[]));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{path}\n[unset]\n")
    );
    let script = TaskScript {
        workdir: Some("/nonexistent/dts"),
        ..task("echo should-not-run")
    };
    let out = run_launch(&script.launch(LoginShell::Sh, &[]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"");
}

#[test]
fn other_login_shells_run_the_prelude_under_sh() {
    let launch = task("echo \"$0\"; exit 5").launch(LoginShell::Other, &[]);
    assert!(launch.command.starts_with("exec sh -c '"));
    // bash stands in for a non-sh login shell; the control line stays open until the end.
    let mut child = Command::new("/bin/bash")
        .arg("-c")
        .arg(&launch.command)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sh\n");
}

/// Regression (issue 12, item 7): a task command over ~33 KB broke the connection every
/// time it was sent, as one SSH exec request. Long scripts now travel on the control line.
#[test]
fn a_long_command_travels_on_the_control_line() {
    let item = "x'\"$(y)`\\\n".repeat(5_000);
    let command = format!("printf '%s' {}; exit 9", quote(item.as_bytes()));
    let secrets = secrets_input(&[("TOKEN".into(), "s3cr3t".into())]);
    let script = TaskScript {
        secrets: true,
        ..task(&command)
    };
    let launch = script.launch(LoginShell::Sh, &secrets);
    assert!(launch.command.len() < 300, "{}", launch.command);
    assert!(launch.input.len() > INLINE_MAX);
    let out = run_launch(&launch);
    assert_eq!(out.status.code(), Some(9));
    assert_eq!(String::from_utf8_lossy(&out.stdout), item);
    let script = TaskScript {
        secrets: true,
        ..task("echo \"$TOKEN\"; sh -c 'kill -TERM $$'")
    };
    let long_env = "v".repeat(INLINE_MAX);
    let env = [("LONG", long_env.as_str())];
    let launch = TaskScript {
        env: &env,
        ..script
    }
    .launch(LoginShell::Sh, &secrets);
    assert!(launch.command.len() < 300);
    let out = run_launch(&launch);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "s3cr3t\n");
    // Under `exec sh -c` the status is what `sh -c` gives.
    let theirs = reference("echo s3cr3t; sh -c 'kill -TERM $$'");
    assert_eq!(
        (out.status.code(), out.status.signal()),
        (theirs.status.code(), theirs.status.signal())
    );
}

/// Review finding: a kill (EOF on the control line) that came before the secrets or the
/// long script were whole let the command start anyway, without its secrets.
#[test]
fn a_control_line_that_ends_early_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let command = format!("touch {}", quote(ran.to_str().unwrap().as_bytes()));
    let script = TaskScript {
        secrets: true,
        ..task(&command)
    };
    // Writes `input`, then ends the control line, as a kill does.
    let cut_short = |command: &str, input: &[u8]| {
        let mut child = spawn(command);
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    // Secrets cut short: no blank line.
    let launch = script.launch(LoginShell::Sh, b"TOKEN=x\n");
    let out = cut_short(&launch.command, &launch.input);
    assert_eq!(out.status.code(), Some(1));
    // A long script cut short: no marker line.
    let long = format!("{command}; : {}", "x".repeat(INLINE_MAX));
    let launch = task(&long).launch(LoginShell::Sh, &[]);
    let cut = &launch.input[..launch.input.len() - 40];
    let out = cut_short(&launch.command, cut);
    assert_eq!(out.status.code(), Some(1));
    assert!(!ran.exists(), "a command ran from a control line cut short");
}

#[test]
fn the_task_cannot_read_the_control_line() {
    let mut child = spawn(&task("cat; echo done").render());
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"secret\n");
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
}

/// Regression (issue 12, item 1): a killed command line kept running (`sleep 3; touch
/// after` made `after` 3 s after Ctrl-C), because the shell that evaluated it caught TERM.
#[test]
fn a_killed_command_line_runs_nothing_after_the_killed_command() {
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let after = dir.path().join("after");
    let command = format!(
        "touch {}; sleep 2; touch {}",
        quote(started.to_str().unwrap().as_bytes()),
        quote(after.to_str().unwrap().as_bytes())
    );
    let mut child = spawn(&task(&command).render());
    wait_for(|| started.exists());
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    // Once the group is empty nothing can still create the file.
    let pgid = child.id() as i32;
    wait_for(|| unsafe { libc::kill(-pgid, 0) } != 0);
    assert!(!after.exists(), "the rest of the command line ran");
}

#[test]
fn closing_the_control_line_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let command = format!(
        "sleep 300 & touch {}; wait",
        quote(marker.to_str().unwrap().as_bytes())
    );
    let mut child = spawn(&task(&command).render());
    let pgid = child.id() as i32;
    wait_for(|| marker.exists());
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    wait_for(|| unsafe { libc::kill(-pgid, 0) } != 0);
}

#[test]
fn a_task_ignoring_term_is_killed_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let command = format!(
        "trap '' TERM; touch {}; sleep 300",
        quote(marker.to_str().unwrap().as_bytes())
    );
    let mut child = spawn(&task(&command).render());
    wait_for(|| marker.exists());
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

#[test]
fn secrets_come_through_the_control_line_not_the_command() {
    let script = TaskScript {
        secrets: true,
        ..task("echo \"$TOKEN|$OTHER\"")
    };
    let secrets = secrets_input(&[
        ("TOKEN".to_string(), "s3cr3t 'x' $y".to_string()),
        ("OTHER".to_string(), "=2".to_string()),
    ]);
    let launch = script.launch(LoginShell::Sh, &secrets);
    assert!(!launch.command.contains("s3cr3t"));
    let out = run_launch(&launch);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "s3cr3t 'x' $y|=2\n");
}

#[test]
fn remote_command_wraps_for_other_shells() {
    assert_eq!(remote_command(LoginShell::Sh, "echo hi"), "echo hi");
    assert_eq!(
        remote_command(LoginShell::Other, "echo 'hi'"),
        r"exec sh -c 'echo '\''hi'\'"
    );
}

#[test]
fn the_guard_echoes_heartbeats_and_stops_at_eof() {
    let mut child = spawn(&under_a_parent(&guard(
        Duration::from_secs(5),
        3,
        Duration::from_secs(1),
    )));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"h\nh\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "h\nh\n");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_silent_guard_expires_kills_its_sibling_sessions_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    // A parent standing in for the connection's sshd: a session-like sibling in its own
    // group (as sshd makes them), and the guard.
    let sibling = format!(
        "setsid sh -c 'sleep 300 & touch {}; wait' & ",
        quote(started.to_str().unwrap().as_bytes())
    );
    let guard = guard(Duration::from_millis(100), 2, Duration::from_millis(100));
    let mut child = spawn(&format!("{sibling}({guard}); wait"));
    wait_for(|| started.exists());
    let stdin = child.stdin.take().unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{GUARD_EXPIRED}\n")
    );
}

/// Runs `script` in a subshell, so that its parent is a shell of the test's own and the
/// guard's sweep of its siblings cannot reach other tests' processes.
fn under_a_parent(script: &str) -> String {
    format!("({script}); exit $?")
}

fn wait_for(mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
