//! Building blocks of warm execution (issue 15): the pure parts a long-lived worker shell
//! needs, separate from the pool that will drive it.
//!
//! Design (not yet wired into the SSH pool): one worker channel per slot keeps the channel's
//! own stdout and stderr as the task's streams, one task at a time. When the task and its
//! leftovers are dead, the worker writes an end record introduced by a per-task random
//! token on both streams, so nothing can write after it and task output cannot forge it
//! (the token is never in the task's text or environment). [`EndSplitter`] cuts a stream at
//! the token, whatever the read boundaries; [`job_status`] turns the worker's `jobs -l`
//! listing into the exact status.
//!
//! Facts verified on dash 0.5 and bash 5 that decide the shape of the worker:
//! * `wait` gives 128+n for both "killed by signal n" and "exit 128+n". The `jobs -l` line
//!   of the finished job tells them apart, and it survives `wait PID` until `jobs` reports
//!   it: dash prints `Done`, `Done(143)` or the signal's description (`Terminated`), bash
//!   with `set -m` prints `Done`, `Exit 143` or `Terminated` but forgets the job at
//!   `wait PID` (and announces it on its own stderr instead), so bash needs the listing
//!   taken before the wait, e.g. from a CHLD trap. `$(jobs -l)` is empty in dash (a
//!   subshell has no jobs), so the listing must go straight into the record.
//! * An async job of a shell without job control has SIGINT and SIGQUIT ignored, and
//!   `trap - INT QUIT` in the job's subshell does NOT undo it in dash, so `exec sh -c CMD`
//!   from a dash `&` job leaks ignored signals into the task: not exact.
//! * A foreground job avoids that, and dash then prints the signal's description on its
//!   own stderr (capturable with `$( { ( task ) ; echo $?; } 2>&1 )`), except for SIGINT and
//!   SIGPIPE, which it keeps silent: `exit 130` and death by INT stay ambiguous.
//! * bash with `set -m` works without a tty: every async job gets its own process group
//!   and no ignored signals. So the exact worker is bash `set -m` where bash exists (with
//!   the status read before `wait`), and per-task channels where it does not.
//! * GNU `env --default-signal=INT,QUIT` (coreutils 8.31+) undoes the ignoring, so a dash
//!   worker can run the task as an async job and stay exact ([`dash_worker`]).
//!
//! Host CPU per trivial task through these workers on pipes (1,000 tasks, loaded 2-core
//! machine, `time setsid dash|bash WORKER < FRAMES`): dash worker with `env` 3.2 ms, the
//! same without `env` (inexact) 1.7 ms, bash `set -m` worker 3.2 ms, a plain `sh -c true`
//! loop 1.0 ms; the issue measured 2.7 ms for a whole per-task sshd session. So exactness
//! through `env` or bash costs about what the per-task session costs: a warm design that
//! beats the ceiling 3× needs a subshell (no exec) wherever it is indistinguishable
//! from `sh -c`, which these workers do not do yet.

use crate::job::quote::quote;
use crate::transport::ExitStatus;

/// Cuts one stream at the first occurrence of a token: bytes before it are the task's,
/// bytes from it on are the end record. Bytes that could be the start of the token are
/// held back until the next read decides.
#[derive(Debug)]
pub struct EndSplitter {
    token: Vec<u8>,
    held: Vec<u8>,
    record: Option<Vec<u8>>,
}

impl EndSplitter {
    pub fn new(token: &[u8]) -> EndSplitter {
        assert!(!token.is_empty(), "an empty token would match anywhere");
        EndSplitter {
            token: token.to_vec(),
            held: Vec::new(),
            record: None,
        }
    }

    /// Feeds one read; returns the task's bytes that are now certain.
    pub fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        if let Some(record) = &mut self.record {
            record.extend_from_slice(data);
            return Vec::new();
        }
        self.held.extend_from_slice(data);
        if let Some(at) = find(&self.held, &self.token) {
            let record = self.held.split_off(at);
            self.record = Some(record[self.token.len()..].to_vec());
            return std::mem::take(&mut self.held);
        }
        let keep = longest_prefix_suffix(&self.held, &self.token);
        let certain = self.held.len() - keep;
        let tail = self.held.split_off(certain);
        std::mem::replace(&mut self.held, tail)
    }

    /// The bytes after the token, once it has been seen.
    pub fn record(&self) -> Option<&[u8]> {
        self.record.as_deref()
    }

    /// At the stream's end without a token: what was held back was the task's after all.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Length of the longest end of `data` that is a proper start of `token`.
fn longest_prefix_suffix(data: &[u8], token: &[u8]) -> usize {
    let max = data.len().min(token.len() - 1);
    (1..=max)
        .rev()
        .find(|&n| data[data.len() - n..] == token[..n])
        .unwrap_or(0)
}

/// The exact status of job `pid` from a `jobs -l` listing (dash, or bash with `set -m`) and
/// the status `wait PID` returned. None when the listing has no line for `pid`.
pub fn job_status(listing: &str, pid: u32, waited: i32) -> Option<ExitStatus> {
    let pid = pid.to_string();
    let word = listing.lines().find_map(|line| {
        let mut words = line
            .split_whitespace()
            .skip(1)
            .skip_while(|w| *w == "+" || *w == "-");
        (words.next() == Some(pid.as_str())).then(|| words.next().unwrap_or(""))
    })?;
    let exited = word == "Done" || word.starts_with("Done(") || word == "Exit";
    Some(if exited || waited <= 128 {
        ExitStatus::Code(waited)
    } else {
        ExitStatus::Signal(crate::transport::local::signal_name(waited - 128))
    })
}

/// The bash worker: reads frames from stdin (a token line, shell code, the token line
/// again), runs each as a `set -m` job in its own process group with exact `sh -c`
/// semantics, then writes the token on stderr and the end record on stdout:
/// `TOKEN PID WAITED`, the job listing taken by the CHLD trap before `wait` forgets the
/// job, and `TOKEN` again. Not yet: an EOF watcher during a task (dts closing stdin
/// cancels only between tasks) and KILL for leftovers that ignore TERM.
pub fn bash_worker() -> String {
    "set -m; exec 3<&0 </dev/null; __dts_f=$(mktemp) || exit 1; \
     trap 'jobs -l >\"$__dts_f\"' CHLD; trap 'rm -f \"$__dts_f\"' EXIT; \
     while IFS= read -r __dts_t <&3; do __dts_p=; \
     while :; do IFS= read -r __dts_l <&3 || exit 0; [ \"$__dts_l\" = \"$__dts_t\" ] && break; \
     __dts_p=\"$__dts_p$__dts_l\n\"; done; \
     eval \"$__dts_p\" 3<&- & __dts_k=$!; \
     while wait $__dts_k; __dts_s=$?; kill -0 $__dts_k 2>/dev/null; do :; done; \
     kill -TERM -$__dts_k 2>/dev/null; \
     printf '%s' \"$__dts_t\" >&2; printf '%s %s %s\\n' \"$__dts_t\" $__dts_k $__dts_s; \
     while IFS= read -r __dts_l; do printf '%s\\n' \"$__dts_l\"; done <\"$__dts_f\"; \
     printf '%s\\n' \"$__dts_t\"; done"
        .to_string()
}

/// One task's frame for [`bash_worker`]: the task runs as `exec sh -c COMMAND` with the
/// environment exported and the directory changed in its own subshell only.
pub fn frame(token: &str, env: &[(&str, &str)], command: &str) -> Vec<u8> {
    let mut code = String::from("trap - CHLD EXIT; ");
    for (name, value) in env {
        code.push_str(&format!("export {name}={}; ", quote(value.as_bytes())));
    }
    code.push_str(&format!("exec sh -c {}", quote(command.as_bytes())));
    format!("{token}\n{code}\n{token}\n").into_bytes()
}

/// The dash worker, cheaper than [`bash_worker`] (one fork and two execs a task): the task
/// is a plain async job, so its listing survives `wait` and is printed straight into the
/// record; the worker ignores TERM so that `kill -TERM 0` sweeps the task's leftovers
/// but not the worker. An async job has INT and QUIT ignored, which dash cannot undo, so
/// the frame ([`dash_frame`]) runs the task under GNU `env --default-signal` (coreutils
/// 8.31 or later); a host without it needs per-task channels. Same gaps as the bash one.
pub fn dash_worker() -> String {
    "exec 3<&0 </dev/null; trap '' TERM; \
     while IFS= read -r __dts_t <&3; do __dts_p=; \
     while :; do IFS= read -r __dts_l <&3 || exit 0; [ \"$__dts_l\" = \"$__dts_t\" ] && break; \
     __dts_p=\"$__dts_p$__dts_l\n\"; done; \
     eval \"$__dts_p\" 3<&- & __dts_k=$!; wait $__dts_k; __dts_s=$?; kill -TERM 0; \
     printf '%s' \"$__dts_t\" >&2; printf '%s %s %s\\n' \"$__dts_t\" $__dts_k $__dts_s; \
     jobs -l; printf '%s\\n' \"$__dts_t\"; done"
        .to_string()
}

/// One task's frame for [`dash_worker`].
pub fn dash_frame(token: &str, env: &[(&str, &str)], command: &str) -> Vec<u8> {
    let mut code = String::new();
    for (name, value) in env {
        code.push_str(&format!("export {name}={}; ", quote(value.as_bytes())));
    }
    code.push_str(&format!(
        "exec env --default-signal=INT,QUIT,TERM sh -c {}",
        quote(command.as_bytes())
    ));
    format!("{token}\n{code}\n{token}\n").into_bytes()
}

/// The status in an end record (the bytes after the token on stdout): None until the
/// closing token has arrived.
pub fn record_status(record: &[u8], token: &str) -> Option<ExitStatus> {
    let end = find(record, token.as_bytes())?;
    let listing = std::str::from_utf8(&record[..end]).ok()?;
    let (head, listing) = listing.split_once('\n')?;
    let mut words = head.split_whitespace();
    let pid = words.next()?.parse().ok()?;
    let waited = words.next()?.parse().ok()?;
    job_status(listing, pid, waited).or(Some(ExitStatus::Code(waited)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_all(token: &[u8], input: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut splitter = EndSplitter::new(token);
        let mut out = Vec::new();
        let mut from = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.sort_unstable();
        for to in points.into_iter().chain([input.len()]) {
            out.extend(splitter.feed(&input[from..to.max(from)]));
            from = to.max(from);
        }
        let record = splitter.record().map(<[u8]>::to_vec);
        if record.is_none() {
            out.extend(splitter.finish());
        }
        (out, record)
    }

    #[test]
    fn output_imitating_the_token_stays_the_task_s() {
        let token = b"__dts_e_0123abcd";
        let input = b"__dts_e_0123abc\0__dts_e_0123ab\n\xff__dts_e_0123abcd 0 1\n";
        let (out, record) = split_all(token, input, &[3, 15, 16, 30]);
        assert_eq!(out, b"__dts_e_0123abc\0__dts_e_0123ab\n\xff");
        assert_eq!(record.as_deref(), Some(&b" 0 1\n"[..]));
    }

    #[test]
    fn ten_megabytes_without_a_newline_pass_through_whole() {
        let token = b"__dts_e_feed";
        let big = vec![b'x'; 10 << 20];
        let (out, record) = split_all(token, &big, &[4096, 1 << 20, 5 << 20]);
        assert_eq!(out.len(), big.len());
        assert!(record.is_none());
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_cut(
            before in proptest::collection::vec(any::<u8>(), 0..200),
            after in proptest::collection::vec(any::<u8>(), 0..50),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let token = b"\x01TOK\x02";
            prop_assume!(find(&before, token).is_none());
            let mut input = before.clone();
            input.extend_from_slice(token);
            input.extend_from_slice(&after);
            let (out, record) = split_all(token, &input, &cuts);
            prop_assert_eq!(out, before);
            prop_assert_eq!(record, Some(after));
        }

        #[test]
        fn without_the_token_every_byte_is_the_task_s(
            input in proptest::collection::vec(0u8..4, 0..300),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let token = b"\x01\x02\x03\x01";
            prop_assume!(find(&input, token).is_none());
            let (out, record) = split_all(token, &input, &cuts);
            prop_assert_eq!(out, input);
            prop_assert!(record.is_none());
        }
    }

    #[test]
    fn dash_and_bash_listings_give_exact_statuses() {
        let cases = [
            (
                "[1] + 21547 Done(143)            ",
                21547,
                143,
                ExitStatus::Code(143),
            ),
            (
                "[2] + 21548 Terminated           ",
                21548,
                143,
                ExitStatus::Signal("TERM".into()),
            ),
            (
                "[1]   77 Done\n[2] - 78 Killed",
                78,
                137,
                ExitStatus::Signal("KILL".into()),
            ),
            (
                "[1]-  9 Interrupt   sh -c x",
                9,
                130,
                ExitStatus::Signal("INT".into()),
            ),
            (
                "[2]+  10 Exit 130   ( exit 130 )",
                10,
                130,
                ExitStatus::Code(130),
            ),
            ("[1]+  11 Done   true", 11, 0, ExitStatus::Code(0)),
        ];
        for (listing, pid, waited, want) in cases {
            assert_eq!(job_status(listing, pid, waited), Some(want), "{listing}");
        }
        assert_eq!(job_status("[1] + 5 Done", 6, 0), None);
        assert_eq!(job_status("[1] + 5 Done", 1, 0), None);
    }

    /// The parser against dash's real listing, not a remembered one.
    #[test]
    fn dash_s_listing_tells_exit_143_from_death_by_term() {
        let script = "(exit 143) & a=$!; sh -c 'kill -TERM $$' & b=$!; \
                      wait $a; sa=$?; wait $b; sb=$?; echo \"$a $sa $b $sb\"; jobs -l";
        let run = std::process::Command::new("dash")
            .args(["-c", script])
            .stdin(std::process::Stdio::null())
            .output();
        let Ok(out) = run else {
            return; // no dash on this machine
        };
        let text = String::from_utf8(out.stdout).unwrap();
        let (head, listing) = text.split_once('\n').unwrap();
        let n: Vec<i64> = head.split(' ').map(|w| w.parse().unwrap()).collect();
        let status = |pid: i64, waited: i64| job_status(listing, pid as u32, waited as i32);
        assert_eq!(status(n[0], n[1]), Some(ExitStatus::Code(143)), "{text}");
        assert_eq!(
            status(n[2], n[3]),
            Some(ExitStatus::Signal("TERM".into())),
            "{text}"
        );
    }
    /// Runs `commands` one after another through a real bash worker on pipes; returns
    /// each task's stdout, stderr and status as dts would cut them.
    /// One task's stdout, stderr and status as dts cuts them.
    type Ran = (Vec<u8>, Vec<u8>, ExitStatus);

    type Framer = fn(&str, &[(&str, &str)], &str) -> Vec<u8>;

    fn through_worker(
        shell: &str,
        worker: &str,
        framer: Framer,
        commands: &[&str],
    ) -> Option<Vec<Ran>> {
        use std::io::Write;
        use std::os::unix::process::CommandExt;
        // Its own group, as sshd's setsid gives a worker channel: the dash worker sweeps
        // leftovers with `kill -TERM 0`.
        let mut child = std::process::Command::new(shell)
            .args(["-c", worker])
            .process_group(0)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let tokens: Vec<String> = (0..commands.len())
            .map(|i| format!("__dts_e_{:016x}", 0x5eed_0000_u64 + i as u64 * 7919))
            .collect();
        let mut stdin = child.stdin.take().unwrap();
        for (token, command) in tokens.iter().zip(commands) {
            stdin
                .write_all(&framer(token, &[("DTS_X", "a b")], command))
                .unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let (mut stdout, mut stderr) = (&out.stdout[..], &out.stderr[..]);
        let mut results = Vec::new();
        for token in &tokens {
            let mut split_out = EndSplitter::new(token.as_bytes());
            let task_out = split_out.feed(stdout);
            let record = split_out.record().expect("an end record").to_vec();
            let status = record_status(&record, token).expect("a whole record");
            let end = record
                .windows(token.len())
                .position(|w| w == token.as_bytes())
                .unwrap();
            stdout = &stdout[stdout.len() - record.len() + end + token.len() + 1..];
            let mut split_err = EndSplitter::new(token.as_bytes());
            let task_err = split_err.feed(stderr);
            stderr = &stderr[stderr.len() - split_err.record().unwrap().len()..];
            results.push((task_out, task_err, status));
        }
        assert!(
            stdout.is_empty(),
            "stdout after the last record: {stdout:?}"
        );
        assert!(
            stderr.is_empty(),
            "stderr after the last record: {stderr:?}"
        );
        Some(results)
    }

    #[test]
    fn a_bash_worker_gives_exact_statuses_and_byte_exact_streams() {
        exact_statuses_and_byte_exact_streams("bash", &bash_worker(), frame);
    }

    #[test]
    fn a_dash_worker_gives_exact_statuses_and_byte_exact_streams() {
        exact_statuses_and_byte_exact_streams("dash", &dash_worker(), dash_frame);
    }

    fn exact_statuses_and_byte_exact_streams(shell: &str, worker: &str, framer: Framer) {
        let hostile = "printf '__dts_e_\\000x\\377'; printf 'no newline' >&2";
        let commands = [
            "exit 143",
            "kill -TERM $$",
            "kill -INT $$",
            "exit 130",
            hostile,
            "echo \"$DTS_X|$0|${__dts_f-unset}\"; trap",
            "grep SigIgn /proc/self/status",
            "(sleep 5; echo late; echo late >&2) & echo started",
            "echo next",
        ];
        let Some(results) = through_worker(shell, worker, framer, &commands) else {
            return; // no such shell on this machine
        };
        let statuses: Vec<_> = results.iter().map(|r| r.2.clone()).collect();
        assert_eq!(
            statuses[..4],
            [
                ExitStatus::Code(143),
                ExitStatus::Signal("TERM".into()),
                ExitStatus::Signal("INT".into()),
                ExitStatus::Code(130),
            ]
        );
        assert_eq!(results[4].0, b"__dts_e_\0x\xff");
        assert_eq!(results[4].1, b"no newline");
        assert_eq!(results[5].0, b"a b|sh|unset\n");
        let direct = std::process::Command::new("sh")
            .args(["-c", commands[6]])
            .output()
            .unwrap();
        assert_eq!(
            results[6].0, direct.stdout,
            "the worker leaks no ignored signal"
        );
    }
}
