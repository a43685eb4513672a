//! The remote wrapper: the small POSIX shell script every task runs under.
//!
//! It gives DESIGN.md's "no orphans" guarantee with shell builtins only, so it costs one
//! `fork` per task:
//!
//! * The task's stdin (the SSH channel, or a pipe for local tasks) is the *control line*.
//!   It is duplicated to fd 3 for a background *watcher*; the task itself reads `/dev/null`.
//! * The wrapper shell is a process-group leader: sshd starts the login shell with
//!   `setsid()`, and the local transport spawns it with its own group. The watcher and the
//!   task are in that group.
//! * When the control line reaches EOF (dts closed it to cancel or time out, dts exited,
//!   or the connection died) the watcher sends TERM to the group, waits up to the grace
//!   period for the wrapper to exit, then sends KILL to the group (itself included).
//!   When the task had already finished, it just KILLs leftovers in the group.
//! * The user's command runs through `eval` in the wrapper shell, which catches TERM so it
//!   outlives the task's own clean-up. A status above 128 that names a terminating signal
//!   is re-raised on the wrapper, so the signal reaches dts as `exit-signal`, never as a
//!   plain exit code.
//!
//! Deliberately not `setsid`: the group sshd already made is enough, it exists on every
//! platform, and a background job started by the shell would have SIGINT ignored.

use std::time::Duration;

use crate::job::quote::quote;

/// What the host's login shell can parse: our script directly, or only through `/bin/sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginShell {
    /// sh, bash, dash, zsh, ksh and friends.
    Posix,
    /// csh, tcsh, fish or unknown: start `/bin/sh` explicitly.
    Other,
}

impl LoginShell {
    /// Classifies `$SHELL` as reported by the probe.
    pub fn from_path(shell: &str) -> LoginShell {
        let name = shell.rsplit('/').next().unwrap_or("");
        match name {
            "sh" | "bash" | "dash" | "zsh" | "ksh" | "ksh93" | "mksh" | "ash" | "yash" => {
                LoginShell::Posix
            }
            _ => LoginShell::Other,
        }
    }
}

/// Signals that terminate a process by default: only these are re-raised.
const TERMINATING_SIGNALS: &str = "HUP|INT|QUIT|ILL|TRAP|ABRT|BUS|FPE|KILL|USR1|SEGV|USR2|PIPE|ALRM|TERM|XCPU|XFSZ|VTALRM|PROF|SYS";

/// Everything one task's script needs.
#[derive(Debug, Clone, Copy)]
pub struct TaskScript<'a> {
    /// Exported before the command runs: `DTS_*` first, then the job's `env`.
    pub env: &'a [(&'a str, &'a str)],
    pub workdir: Option<&'a str>,
    /// The rendered command line (values already quoted).
    pub command: &'a str,
    /// Time between TERM and KILL when the task is killed.
    pub kill_grace: Duration,
    /// Secret variables arrive on the control line (see [`secrets_input`]) before the
    /// watcher starts, so their values never appear on a command line.
    pub secrets: bool,
}

impl TaskScript<'_> {
    /// The POSIX sh script text.
    pub fn render(&self) -> String {
        let mut script = String::with_capacity(640 + self.command.len());
        script.push_str(&watcher(self.kill_grace, self.secrets));
        self.push_env(&mut script);
        self.push_workdir(&mut script);
        script.push_str("eval ");
        script.push_str(&quote(self.command.as_bytes()));
        script.push_str(
            "\ns=$?; if [ $s -gt 128 ]; then sig=$(kill -l $s 2>/dev/null); case $sig in ",
        );
        script.push_str(TERMINATING_SIGNALS);
        script.push_str(
            ") trap - $sig; ulimit -c 0 2>/dev/null; kill -s $sig $$;; esac; fi; exit $s",
        );
        script
    }

    fn push_env(&self, script: &mut String) {
        if self.env.is_empty() {
            return;
        }
        script.push_str("export");
        for (name, value) in self.env {
            script.push(' ');
            script.push_str(name);
            script.push('=');
            script.push_str(&quote(value.as_bytes()));
        }
        script.push_str("; ");
    }

    fn push_workdir(&self, script: &mut String) {
        let Some(dir) = self.workdir else { return };
        script.push_str("cd -- ");
        match dir.strip_prefix("~/") {
            Some(rest) => {
                script.push_str("\"$HOME\"/");
                script.push_str(&quote(rest.as_bytes()));
            }
            None if dir == "~" => script.push_str("\"$HOME\""),
            None => script.push_str(&quote(dir.as_bytes())),
        }
        script.push_str(" || exit 1; ");
    }
}

/// The prologue: control line on fd 3, secrets read from it, the watcher in the
/// background, TERM caught.
fn watcher(grace: Duration, secrets: bool) -> String {
    let tenths = (grace.as_millis() / 100).max(1);
    let read_secrets = if secrets {
        "while IFS= read -r l <&3 && [ -n \"$l\" ]; do export \"$l\"; done; "
    } else {
        ""
    };
    format!(
        "exec 3<&0 </dev/null; {read_secrets}trap : TERM; \
         (trap '' TERM INT HUP; while read -r l <&3; do :; done; \
         if kill -0 $$ 2>/dev/null; then kill -TERM 0; i=0; \
         while [ $i -lt {tenths} ] && kill -0 $$ 2>/dev/null; do \
         if sleep 0.1 2>/dev/null; then i=$((i+1)); else sleep 1; i=$((i+10)); fi; done; fi; \
         kill -KILL 0) >/dev/null 2>&1 & exec 3<&-; "
    )
}

/// What dts writes on the control line first when the script reads secrets: one
/// `NAME=value` line each, then an empty line.
pub fn secrets_input(secrets: &[(String, String)]) -> Vec<u8> {
    let mut input = Vec::new();
    for (name, value) in secrets {
        input.extend_from_slice(name.as_bytes());
        input.push(b'=');
        input.extend_from_slice(value.as_bytes());
        input.push(b'\n');
    }
    input.push(b'\n');
    input
}

/// The command line to hand to sshd, which runs it with the user's login shell.
pub fn remote_command(shell: LoginShell, script: &str) -> String {
    match shell {
        LoginShell::Posix => script.to_string(),
        LoginShell::Other => format!("exec /bin/sh -c {}", quote(script.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};

    fn script(command: &str) -> String {
        TaskScript {
            env: &[("DTS_TASK_ID", "7"), ("GREETING", "it's $HOME")],
            workdir: None,
            command,
            kill_grace: Duration::from_secs(1),
            secrets: false,
        }
        .render()
    }

    /// Runs a script the way the local transport does: own process group, piped stdin.
    fn run(script: &str) -> (std::process::ExitStatus, String) {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn login_shells_are_classified() {
        assert_eq!(LoginShell::from_path("/bin/bash"), LoginShell::Posix);
        assert_eq!(LoginShell::from_path("/usr/bin/zsh"), LoginShell::Posix);
        assert_eq!(LoginShell::from_path("/usr/bin/fish"), LoginShell::Other);
        assert_eq!(LoginShell::from_path("/bin/tcsh"), LoginShell::Other);
        assert_eq!(LoginShell::from_path(""), LoginShell::Other);
    }

    #[test]
    fn exports_env_and_runs_the_command() {
        let (status, out) = run(&script("echo \"$DTS_TASK_ID $GREETING\""));
        assert!(status.success());
        assert_eq!(out, "7 it's $HOME\n");
    }

    #[test]
    fn exit_codes_pass_through() {
        let (status, _) = run(&script("exit 3"));
        assert_eq!(status.code(), Some(3));
        let (status, _) = run(&script("false"));
        assert_eq!(status.code(), Some(1));
    }

    #[test]
    fn death_by_signal_is_re_raised() {
        let (status, _) = run(&script("sh -c 'kill -TERM $$'"));
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        let (status, _) = run(&script("sh -c 'kill -KILL $$'"));
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn exit_codes_above_128_that_are_not_terminating_signals_stay_codes() {
        // 128 + 17 is SIGCHLD on Linux, whose default action is to ignore it.
        let (status, _) = run(&script("exit 145"));
        assert_eq!(status.code(), Some(145));
        let (status, _) = run(&script("exit 200"));
        assert_eq!(status.code(), Some(200));
    }

    #[test]
    fn workdir_is_entered_and_a_missing_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let text = TaskScript {
            env: &[],
            workdir: Some(path),
            command: "pwd",
            kill_grace: Duration::from_secs(1),
            secrets: false,
        }
        .render();
        let (status, out) = run(&text);
        assert!(status.success());
        assert_eq!(out.trim_end(), path);
        let text = TaskScript {
            env: &[],
            workdir: Some("/nonexistent/dts"),
            command: "echo should-not-run",
            kill_grace: Duration::from_secs(1),
            secrets: false,
        }
        .render();
        let (status, out) = run(&text);
        assert_eq!(status.code(), Some(1));
        assert_eq!(out, "");
    }

    #[test]
    fn the_task_cannot_read_the_control_line() {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script("cat; echo done"))
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"secret\n");
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    }

    #[test]
    fn closing_the_control_line_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("started");
        let command = format!(
            "sleep 300 & touch {}; wait",
            quote(marker.to_str().unwrap().as_bytes())
        );
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script(&command))
            .process_group(0)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        wait_for(|| marker.exists());
        drop(child.stdin.take());
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        wait_for(|| unsafe { libc::kill(-pgid, 0) } != 0);
    }

    #[test]
    fn secrets_come_through_the_control_line_not_the_command() {
        let text = TaskScript {
            env: &[],
            workdir: None,
            command: "echo \"$TOKEN|$OTHER\"",
            kill_grace: Duration::from_secs(1),
            secrets: true,
        }
        .render();
        assert!(!text.contains("s3cr3t"));
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&text)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let secrets = [
            ("TOKEN".to_string(), "s3cr3t 'x' $y".to_string()),
            ("OTHER".to_string(), "=2".to_string()),
        ];
        stdin.write_all(&secrets_input(&secrets)).unwrap();
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "s3cr3t 'x' $y|=2\n");
    }

    #[test]
    fn remote_command_wraps_for_other_shells() {
        assert_eq!(remote_command(LoginShell::Posix, "echo hi"), "echo hi");
        assert_eq!(
            remote_command(LoginShell::Other, "echo 'hi'"),
            r"exec /bin/sh -c 'echo '\''hi'\'"
        );
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
}
