//! The remote wrapper: the small POSIX shell prelude every task runs under, and the
//! per-connection guard that kills a host's tasks when dts goes silent.
//!
//! A task must behave exactly as its command line would under `sh -c` on that host, and
//! must never outlive dts. The prelude gets both with shell builtins and two forks:
//!
//! * The task's stdin (the SSH channel, or a pipe for local tasks) is the *control line*.
//!   It is duplicated to fd 3 for a *watcher*; the task itself reads `/dev/null`.
//! * The shell running the prelude is a process-group leader: sshd starts every session
//!   with `setsid()`, and the local transport spawns it with its own group. The watcher and
//!   everything the task starts are in that group.
//! * The watcher is started as `( { ... } & )`: the outer subshell exits at once, so the
//!   watcher is never one of the task shell's jobs (a bare `wait` does not wait for it, `$!`
//!   and `jobs` do not show it) nor the child of the task's process.
//! * When the control line reaches EOF (dts closed it to cancel or time out, dts exited, or
//!   the connection died) the watcher sends TERM to the group, waits up to the grace period
//!   for the task's shell to exit, then sends KILL to the group (itself included). When the
//!   task had already finished, it just KILLs leftovers in the group.
//! * The user's command line then runs *in the same shell*, not through `eval` and with no
//!   trap set: it is `sh -c PRELUDE; CMD`, and the prelude leaves nothing behind that the
//!   command could see (no variable, no trap, no job, no fd 3, no changed disposition). So
//!   `$$`, `$0`, signals, `wait`, syntax errors and the exit status are those of `sh -c CMD`:
//!   a shell killed by a signal is reported as that signal, `exit 137` as exit 137.
//!   Where the login shell is not `sh`, the same text runs under `exec sh -c`.
//! * A script too long for one SSH exec request (libssh2 caps packets near 32 KB) is sent
//!   on the control line instead, read by a short bootstrap; the command then runs under
//!   `exec sh -c CMD`, which keeps the same semantics at the cost of an exec.
//!
//! Deliberately not `setsid`: the group sshd already made is enough, it exists on every
//! platform, and a background job started by the shell would have SIGINT ignored.

use std::time::Duration;

use crate::job::quote::quote;

/// What the host's login shell is, which decides how the prelude is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginShell {
    /// `sh` itself: the login shell runs the prelude and the command, exactly `sh -c`.
    Sh,
    /// bash, zsh, csh, fish or unknown: start `sh` explicitly, so the command line still
    /// gets `sh -c` semantics.
    Other,
}

impl LoginShell {
    /// Classifies `$SHELL` as reported by the probe.
    pub fn from_path(shell: &str) -> LoginShell {
        match shell.rsplit('/').next().unwrap_or("") {
            "sh" => LoginShell::Sh,
            _ => LoginShell::Other,
        }
    }
}

/// Longest remote command sent in the exec request itself; longer scripts travel on the
/// control line. libssh2 refuses packets over ~32 KB ("Unable to send channel request").
pub const INLINE_MAX: usize = 16 * 1024;

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

/// What a transport sends to start a task: the command for the exec request (or for
/// `sh -c` locally) and the bytes to write first on the control line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub command: String,
    pub input: Vec<u8>,
    /// For a warm host, the job its worker runs instead (set by the caller).
    pub warm: Option<String>,
}

impl TaskScript<'_> {
    /// The script text for a shell whose fd 3 is already the control line: secrets, the
    /// watcher, environment, working directory, then `tail` (the command itself).
    fn body(&self, tail: &str) -> String {
        let mut script = String::with_capacity(640 + tail.len());
        if self.secrets {
            script.push_str(
                "while :; do IFS= read -r __dts_l <&3 || exit 1; [ -n \"$__dts_l\" ] || break; export \"$__dts_l\"; done; unset __dts_l; ",
            );
        }
        script.push_str(&watcher(self.kill_grace));
        self.push_env(&mut script);
        self.push_workdir(&mut script);
        script.push_str(tail);
        script
    }

    /// The prelude and the command inline: what `sh -c` runs on the host.
    pub fn render(&self) -> String {
        let mut script = String::from("exec 3<&0 </dev/null; ");
        script.push_str(&self.body(self.command));
        script
    }

    /// How to start this task on a host with `shell`, given what the control line must carry
    /// first (`secrets`, from [`secrets_input`], or empty).
    pub fn launch(&self, shell: LoginShell, secrets: &[u8]) -> Launch {
        let command = remote_command(shell, &self.render());
        if command.len() <= INLINE_MAX {
            return Launch {
                command,
                input: secrets.to_vec(),
                warm: None,
            };
        }
        // Too long for the exec request: a bootstrap reads the script from the control
        // line up to a marker line, then evaluates it; the command runs under `exec sh -c`.
        let tail = format!("exec sh -c {}", quote(self.command.as_bytes()));
        let payload = self.body(&tail);
        let marker = marker_for(&payload);
        let bootstrap = format!(
            "exec 3<&0 </dev/null; __dts_p=; while :; do IFS= read -r __dts_l <&3 || exit 1; \
             [ \"$__dts_l\" = {marker} ] && break; __dts_p=\"$__dts_p$__dts_l\n\"; done; \
             unset __dts_l; eval \"$__dts_p\""
        );
        let mut input = Vec::with_capacity(payload.len() + marker.len() + 2 + secrets.len());
        input.extend_from_slice(payload.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(marker.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(secrets);
        Launch {
            command: remote_command(shell, &bootstrap),
            input,
            warm: None,
        }
    }

    /// What a warm worker runs for this task (see [`crate::transport::worker`]): a line with
    /// the kill grace in milliseconds and the length of the secrets, the secrets as
    /// `NAME=VALUE` pairs ended by NUL (the worker puts them in the task's environment, so
    /// they are never on a command line), then the code for `sh -c`: the environment and
    /// working directory a per-task channel's prelude sets, and the command line.
    pub fn warm_code(&self, secrets: &[(String, String)]) -> String {
        let mut pairs = String::new();
        for (name, value) in secrets {
            pairs.push_str(&format!("{name}={value}\0"));
        }
        let mut code = format!("{} {}\n{pairs}", self.kill_grace.as_millis(), pairs.len());
        self.push_env(&mut code);
        self.push_workdir(&mut code);
        code.push_str(self.command);
        code
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
        // CDPATH would send a relative directory elsewhere, and print it.
        script.push_str("CDPATH= cd -- ");
        match dir.strip_prefix("~/") {
            Some(rest) => {
                script.push_str("\"$HOME\"/");
                script.push_str(&quote(rest.as_bytes()));
            }
            None if dir == "~" => script.push_str("\"$HOME\""),
            None => script.push_str(&quote(dir.as_bytes())),
        }
        // `sh -c` in that directory would not have OLDPWD set.
        script.push_str(" || exit 1; unset OLDPWD; ");
    }
}

/// A marker line that does not occur in `payload`.
fn marker_for(payload: &str) -> String {
    let mut seed = xxhash_rust::xxh3::xxh3_64(payload.as_bytes());
    loop {
        let marker = format!("__dts_end_{seed:016x}");
        if !payload.contains(&marker) {
            return marker;
        }
        seed = seed.wrapping_add(1);
    }
}

/// The watcher, double-forked so it is no job of the task's shell, then fd 3 closed.
fn watcher(grace: Duration) -> String {
    let tenths = (grace.as_millis() / 100).max(1);
    // `a` tells whether the task's shell is alive: a zombie is not (an orphaned shell
    // waits for an init that may be slow to reap it), read from /proc without a fork.
    format!(
        "( {{ trap '' TERM INT HUP; while read -r l <&3; do :; done; \
         a() {{ kill -0 $$ 2>/dev/null || return 1; {{ read -r s </proc/$$/stat; }} 2>/dev/null || return 0; \
         s=${{s##*) }}; [ \"${{s%% *}}\" != Z ]; }}; \
         if a; then kill -TERM 0; i=0; \
         while [ $i -lt {tenths} ] && a; do \
         if sleep 0.1 2>/dev/null; then i=$((i+1)); else sleep 1; i=$((i+10)); fi; done; fi; \
         kill -KILL 0; }} >/dev/null 2>&1 & ); exec 3<&-; "
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
        LoginShell::Sh => script.to_string(),
        LoginShell::Other => format!("exec sh -c {}", quote(script.as_bytes())),
    }
}

/// The line the guard prints before it kills the connection's sessions.
pub const GUARD_EXPIRED: &str = "dts-guard-expired";

/// The guard: one per SSH connection, on its own channel. dts writes a heartbeat line to it
/// every `beat`; it echoes each one back (so dts hears the host) and, after `beats` ticks
/// of `beat` without one, prints [`GUARD_EXPIRED`] and kills every session of the
/// connection (TERM, `grace`, KILL to each session's process group). A task's own watcher
/// only hears EOF, which never comes while a partition leaves the TCP connection half
/// open; this bounds how long tasks outlive a coordinator they cannot hear.
///
/// Sessions of one connection are the children of the same sshd process, the guard's
/// parent; each is a session leader, so its pid is its session id. Every process of those
/// sessions is signalled, whatever its group: a warm worker's tasks run in groups of their
/// own inside the worker's session. The guard and its helpers are in its own session,
/// which it kills last.
pub fn guard(beat: Duration, beats: u32, grace: Duration) -> String {
    let secs = |d: Duration| format!("{:.3}", d.as_secs_f64().max(0.1));
    format!(
        "exec sh -c {}",
        quote(
            format!(
                "k() {{ g=$1; if [ -r /proc/self/stat ]; then l=' '; for d in /proc/[0-9]*; do p=${{d#/proc/}}; \
                 [ \"$p\" = \"$$\" ] && continue; {{ read -r s < \"$d/stat\"; }} 2>/dev/null || continue; \
                 s=${{s##*) }}; set -- $s; [ \"$2\" = \"$PPID\" ] && l=\"$l$p \"; done; \
                 for d in /proc/[0-9]*; do {{ read -r s < \"$d/stat\"; }} 2>/dev/null || continue; \
                 s=${{s##*) }}; set -- $s; case $l in *\" $4 \"*) kill -$g \"${{d#/proc/}}\" 2>/dev/null;; esac; done; \
                 else ps -A -o pid= -o ppid= | while read -r p q; do [ \"$q\" = \"$PPID\" ] && [ \"$p\" != \"$$\" ] && \
                 kill -$g -\"$p\" 2>/dev/null; done; fi; }}; \
                 (while sleep {beat}; do echo t; done & t=$!; cat; kill $t 2>/dev/null; echo e) | \
                 {{ n=0; while IFS= read -r l; do case $l in \
                 t) n=$((n+1)); if [ $n -ge {beats} ]; then echo {GUARD_EXPIRED}; \
                 k TERM; sleep {grace}; k KILL; kill -KILL 0; fi;; \
                 e) exit 0;; *) n=0; echo \"$l\";; esac; done; }}",
                beat = secs(beat),
                grace = secs(grace),
                // At least three ticks: ticks and heartbeats drift apart, so two ticks can
                // fall in one heartbeat gap.
                beats = beats.max(3),
            )
            .as_bytes()
        )
    )
}

#[cfg(test)]
pub(crate) mod tests;
