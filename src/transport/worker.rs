//! Warm execution (issue 15): long-lived worker shells, one per slot of an SSH
//! connection, each running one task at a time, and the pure parts dts needs to drive
//! them (the pool in [`crate::transport::ssh`] does the driving).
//!
//! A worker channel keeps the channel's own stdout and stderr as the task's streams. dts
//! writes a task as a frame (a per-task random token line, shell code, the token line). The
//! worker (bash with `set -m`) runs the code as a job in a process group of its own; the
//! job double-forks a *watcher* into that group and then `exec sh -c` runs the command, so
//! the task sees what a per-task channel's `sh -c` shows. When the task's shell ends, the
//! worker KILLs its group (the leftovers: background jobs the task left behind), which the
//! watcher holds, so the group id cannot have been reused; only then does it write the end
//! record, introduced by the token on both streams: nothing of the task can write after
//! it, and task output cannot forge it (the token is never in the task's text or
//! environment). [`EndSplitter`] cuts a stream at the token, whatever the read boundaries;
//! [`record_status`] turns the record into the exact status.
//!
//! Kills: while a task runs, dts writes only [`KILL_LINE`] on the worker's stdin (cancel,
//! timeout, Ctrl-C); the watcher reads it, or EOF when dts or its connection dies, and
//! sends TERM to the group, then KILL to the task's shell after the grace; the worker then
//! sweeps the group as after any task. Between tasks the worker reads its stdin itself and
//! exits at EOF. The sweep is not enough before the end record: a watcher asleep in `read`
//! that the KILL woke but that has not run yet still completes that read if data comes
//! first (the kernel checks for data before it checks for the signal), and would eat the
//! first byte of the next frame. So the worker waits until the watcher (whose pid the job
//! leaves in a file) is a zombie or gone before it writes the record. When dts is alive but silent, the connection's guard
//! ([`crate::transport::wrapper::guard`]) kills every process of the connection's
//! sessions, task groups included.
//!
//! Facts verified on dash 0.5 and bash 5 that decide the shape of the worker:
//! * `wait` gives 128+n for both "killed by signal n" and "exit 128+n". The `jobs -l` line
//!   of the finished job tells them apart: bash with `set -m` prints `Done`, `Exit 143` or
//!   `Terminated` but forgets the job at `wait PID`, so the listing is taken before the
//!   wait, by a CHLD trap. The signal's name comes from the host's `kill -l`, not from
//!   this machine's numbering.
//! * An async job of a shell without job control has SIGINT and SIGQUIT ignored, and
//!   `trap - INT QUIT` in the job's subshell does NOT undo it in dash (bash does), and dash
//!   has no job control without a tty: a dash worker is either inexact or pays an exec of
//!   GNU `env --default-signal` per task. bash with `set -m` works without a tty: every
//!   async job gets its own process group and no ignored signals. So the worker is bash,
//!   and a host without bash gets per-task channels.
//! * bash's `read` is not interrupted by a CHLD trap, so the worker cannot wait for the
//!   task and read its stdin at once: the per-task watcher does the reading.
//! * A bash job's pipeline members are not reported one by one before the whole job ends,
//!   so a pipeline cannot serve as the group holder; the double-forked watcher does.
//!
//! Host CPU per trivial task through the first version of this worker on pipes (1,000
//! tasks, loaded 2-core machine): bash `set -m` 3.2 ms, a plain `sh -c true` loop 1.0 ms;
//! the issue measured 2.7 ms for a whole per-task sshd session. Beating the per-task
//! ceiling 3× needs a subshell (no exec) wherever it is indistinguishable from `sh -c`,
//! which this worker does not do.

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

/// The line a worker prints once it runs, before it reads any frame: a channel that ends
/// without it means the host cannot run workers (no bash), and gets per-task channels.
pub const READY: &str = "__dts_warm_ready";

/// Every frame token starts with this; other lines between frames are skipped (a kill
/// byte line sent as the task ended, see [`KILL_LINE`]).
pub const TOKEN_PREFIX: &str = "__dts_e_";

/// The worker's shell function each task's job starts with, given the kill grace in
/// tenths of a second: it double-forks the task's *watcher* into the job's process group,
/// so the watcher holds the group id until the worker has swept the group. The watcher
/// reads the worker's stdin, where dts writes only [`KILL_LINE`] while a task runs: a line
/// or EOF sends TERM to the group (the watcher ignores it), KILL to the task's shell after
/// the grace, and the watcher then waits to be swept with the group. A function keeps the
/// frames short: bash reads a pipe a byte per system call.
pub const JOB_PRELUDE: &str = "__dts_j";

/// What dts writes on a worker's stdin to kill its running task: the task's watcher reads
/// it (or EOF) and kills the task's process group, TERM then KILL.
pub const KILL_LINE: &[u8] = b"k\n";

/// The worker, run by bash (`set -m`, so every task is a job in a process group of its own,
/// with no signal ignored). It reads frames from stdin (a token line, shell code, the
/// token line again), runs each as an async job (the code from
/// [`TaskScript::warm_code`](crate::transport::wrapper::TaskScript::warm_code)) and when it
/// ends, KILLs what is left of the task's group, which the task's watcher holds (so the
/// group id cannot have been reused), then writes the token on stderr and on stdout the
/// end record: `TOKEN PID WAITED`, the signal's name (`kill -l`, the host's own
/// numbering) or `-`, the job listing the CHLD trap took before `wait` forgot the job, and
/// `TOKEN` again. At EOF between tasks it exits. bash's `exec` undoes its own `SHLVL` bump, so
/// where the login shell is bash a task sees the `SHLVL` a per-task channel shows.
pub fn worker_script() -> String {
    format!(
        "set -m; exec 3<&0 </dev/null; __dts_f=$(mktemp) || exit 1; \
         {JOB_PRELUDE}() {{ trap - CHLD EXIT; __dts_w=$BASHPID; \
         ( {{ trap '' TERM INT HUP QUIT; IFS= read -r l <&3; kill -TERM 0; i=0; \
         while [ $i -lt $1 ] && kill -0 $__dts_w 2>/dev/null; do \
         if sleep 0.1 2>/dev/null; then i=$((i+1)); else sleep 1; i=$((i+10)); fi; done; \
         kill -KILL $__dts_w 2>/dev/null; while kill -0 $$ 2>/dev/null; do sleep 1; done; \
         }} >/dev/null 2>&1 </dev/null & echo $! >\"$__dts_f.w\" ); unset __dts_w; }}; \
         trap 'jobs -l >\"$__dts_f\"' CHLD; trap 'rm -f \"$__dts_f\" \"$__dts_f.w\"' EXIT; echo {READY}; \
         while IFS= read -r __dts_t <&3; do case $__dts_t in {TOKEN_PREFIX}*) ;; *) continue;; esac; \
         __dts_p=; \
         while :; do IFS= read -r __dts_l <&3 || exit 0; [ \"$__dts_l\" = \"$__dts_t\" ] && break; \
         __dts_p=\"$__dts_p$__dts_l\n\"; done; \
         eval \"$__dts_p\" & __dts_k=$!; __dts_p=; \
         while wait $__dts_k; __dts_s=$?; kill -0 $__dts_k 2>/dev/null; do :; done; \
         kill -0 -$__dts_k 2>/dev/null && kill -KILL -$__dts_k 2>/dev/null; \
         __dts_x=; {{ read -r __dts_x <\"$__dts_f.w\"; }} 2>/dev/null; : >\"$__dts_f.w\"; __dts_n=0; \
         while [ -n \"$__dts_x\" ] && {{ read -r __dts_y <\"/proc/$__dts_x/stat\"; }} 2>/dev/null; do \
         __dts_y=${{__dts_y##*) }}; case $__dts_y in Z*) break;; esac; __dts_y=${{__dts_y#* * }}; \
         [ \"${{__dts_y%% *}}\" = $__dts_k ] || break; __dts_n=$((__dts_n+1)); \
         [ $__dts_n -lt 50 ] || sleep 0.001; done; \
         printf '%s' \"$__dts_t\" >&2; printf '%s %s %s\\n' \"$__dts_t\" $__dts_k $__dts_s; \
         {{ [ $__dts_s -gt 128 ] && kill -l $__dts_s 2>/dev/null; }} || echo -; \
         while IFS= read -r __dts_l; do printf '%s\\n' \"$__dts_l\"; done <\"$__dts_f\"; \
         printf '%s\\n' \"$__dts_t\"; done"
    )
}

/// The exec request that starts a worker, whatever the login shell.
pub fn worker_command() -> String {
    format!("exec bash -c {}", quote(worker_script().as_bytes()))
}

/// One task's frame: `code` between two lines of `token`.
pub fn frame(token: &str, code: &str) -> Vec<u8> {
    let mut frame = Vec::with_capacity(2 * token.len() + code.len() + 3);
    for part in [token, "\n", code, "\n", token, "\n"] {
        frame.extend_from_slice(part.as_bytes());
    }
    frame
}

/// A token for launch `seq`: unguessable by the task (it never sees it), unique per task.
pub fn token(seed: u64, seq: u64) -> String {
    let mixed = xxhash_rust::xxh3::xxh3_64_with_seed(&seq.to_le_bytes(), seed);
    format!("{TOKEN_PREFIX}{seq:x}_{mixed:016x}")
}

/// The status in an end record (the bytes after the token on stdout): None until the
/// closing token has arrived.
pub fn record_status(record: &[u8], token: &str) -> Option<ExitStatus> {
    let end = find(record, token.as_bytes())?;
    let text = std::str::from_utf8(&record[..end]).ok()?;
    let (head, rest) = text.split_once('\n')?;
    let (signal, listing) = rest.split_once('\n').unwrap_or((rest, ""));
    let mut words = head.split_whitespace();
    let pid = words.next()?.parse().ok()?;
    let waited = words.next()?.parse().ok()?;
    let status = job_status(listing, pid, waited).unwrap_or(ExitStatus::Code(waited));
    Some(match status {
        // The host's name for the signal, not this machine's numbering.
        ExitStatus::Signal(_) if !signal.is_empty() && signal != "-" => {
            ExitStatus::Signal(signal.trim().trim_start_matches("SIG").to_string())
        }
        other => other,
    })
}

/// Where the end record's closing token ends in `record`, once it has come.
pub fn record_len(record: &[u8], token: &str) -> Option<usize> {
    find(record, token.as_bytes()).map(|at| at + token.len())
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
    /// Longer than any task of these tests takes: a record that has not come by then never
    /// will (the worker lost part of its frame and waits for the rest).
    const RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

    /// One task's stdout, stderr and status as dts cuts them.
    type Ran = (Vec<u8>, Vec<u8>, ExitStatus);

    fn warm_code(command: &str) -> String {
        crate::transport::wrapper::TaskScript {
            env: &[("DTS_X", "a b")],
            workdir: None,
            command,
            kill_grace: std::time::Duration::from_secs(1),
            secrets: false,
        }
        .warm_code(&[])
    }

    /// Runs `commands` one after another through a real worker on pipes, in its own group
    /// as sshd's setsid gives a worker channel, each frame sent once the previous record
    /// came, as the pool does; returns what dts would cut.
    fn through_worker(commands: &[&str]) -> Option<Vec<Ran>> {
        use std::io::{Read, Write};
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("bash")
            .args(["-c", &worker_script()])
            .process_group(0)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let reader = |mut pipe: Box<dyn Read + Send>| {
            let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
            std::thread::spawn(move || {
                let mut buf = vec![0; 65536];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = reader(Box::new(child.stdout.take().unwrap()));
        let stderr = reader(Box::new(child.stderr.take().unwrap()));
        let mut stdin = child.stdin.take().unwrap();
        let mut ready = Vec::new();
        while !ready.ends_with(b"\n") {
            ready.extend(stdout.recv().unwrap());
        }
        assert_eq!(ready, format!("{READY}\n").as_bytes());
        let mut results = Vec::new();
        for (i, command) in commands.iter().enumerate() {
            let token = token(0x5eed, i as u64);
            stdin
                .write_all(&frame(&token, &warm_code(command)))
                .unwrap();
            let mut split_out = EndSplitter::new(token.as_bytes());
            let mut task_out = Vec::new();
            let status = loop {
                task_out.extend(
                    split_out.feed(&stdout.recv_timeout(RECORD_WAIT).expect("a whole record")),
                );
                if let Some(record) = split_out.record() {
                    if let Some(status) = record_status(record, &token) {
                        let end = record_len(record, &token).unwrap();
                        assert_eq!(&record[end..], b"\n", "after the record");
                        break status;
                    }
                }
            };
            let mut split_err = EndSplitter::new(token.as_bytes());
            let mut task_err = Vec::new();
            while split_err.record().is_none() {
                task_err.extend(
                    split_err.feed(&stderr.recv_timeout(RECORD_WAIT).expect("the stderr token")),
                );
            }
            assert_eq!(split_err.record(), Some(&b""[..]));
            results.push((task_out, task_err, status));
        }
        drop(stdin);
        assert_eq!(child.wait().unwrap().code(), Some(0));
        let late: Vec<u8> = stdout.iter().chain(stderr.iter()).flatten().collect();
        assert!(late.is_empty(), "after the last record: {late:?}");
        Some(results)
    }

    /// Regression (issue 15): the worker wrote a task's end record while the task's watcher,
    /// KILLed in the sweep but not yet scheduled, was still inside `read` on the worker's
    /// stdin; the next frame's first byte then completed that read and was lost, and the slot
    /// hung waiting for the rest of a frame. It took 20 to 1,200 back-to-back tasks on pipes.
    /// Now the worker waits until the watcher is a zombie or gone before writing the record.
    #[test]
    fn a_killed_watcher_never_eats_the_next_frame() {
        let commands = vec!["echo hi"; 1500];
        let Some(results) = through_worker(&commands) else {
            return; // no bash on this machine
        };
        assert!(
            results
                .iter()
                .all(|r| r.0 == b"hi\n" && r.2 == ExitStatus::Code(0))
        );
    }

    #[test]
    fn a_worker_gives_exact_statuses_and_byte_exact_streams() {
        let hostile = "printf '__dts_e_\\000x\\377'; printf 'no newline' >&2";
        let commands = [
            "exit 143",
            "kill -TERM $$",
            "kill -INT $$",
            "exit 130",
            hostile,
            "echo \"$DTS_X|$0|${__dts_f-unset}|${__dts_t-unset}\"; trap",
            "grep SigIgn /proc/self/status",
            "(sleep 5; echo late; echo late >&2) & echo started",
            "echo next",
        ];
        let Some(results) = through_worker(&commands) else {
            return; // no bash on this machine
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
        assert_eq!(results[5].0, b"a b|sh|unset|unset\n");
        let direct = std::process::Command::new("sh")
            .args(["-c", commands[6]])
            .output()
            .unwrap();
        assert_eq!(
            results[6].0, direct.stdout,
            "the worker leaks no ignored signal"
        );
        assert_eq!(results[7].0, b"started\n");
        assert_eq!(results[8].0, b"next\n", "the leftover never prints later");
    }

    /// The wrapper's exactness list (`a_task_sees_exactly_what_sh_c_shows`), through a
    /// worker: every command's streams and status byte-compared with plain `sh -c`.
    #[test]
    fn a_task_in_a_worker_sees_exactly_what_sh_c_shows() {
        let commands = [
            "echo \"$0 $# [$*] [$-]\"",
            "jobs; echo \"bang=[$!]\"",
            "trap",
            "set | grep -c __dts || true",
            "env | grep -v '^DTS_X=' | sort",
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
            "grep -E 'Sig(Ign|Blk)' /proc/self/status",
        ];
        let Some(results) = through_worker(&commands) else {
            return;
        };
        for (command, (out, err, status)) in commands.iter().zip(results) {
            use std::os::unix::process::{CommandExt, ExitStatusExt};
            let direct = std::process::Command::new("/bin/sh")
                .arg0("sh")
                .args(["-c", command])
                .env_remove("_")
                .process_group(0)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let want = match direct.status.signal() {
                Some(n) => ExitStatus::Signal(crate::transport::local::signal_name(n)),
                None => ExitStatus::Code(direct.status.code().unwrap()),
            };
            let strip_underscore = |text: &[u8]| -> String {
                String::from_utf8_lossy(text)
                    .lines()
                    .filter(|l| !l.starts_with("_="))
                    .map(|l| format!("{l}\n"))
                    .collect()
            };
            assert_eq!(
                (
                    strip_underscore(&out),
                    String::from_utf8_lossy(&err),
                    status
                ),
                (
                    strip_underscore(&direct.stdout),
                    String::from_utf8_lossy(&direct.stderr),
                    want
                ),
                "{command}"
            );
        }
    }
}
