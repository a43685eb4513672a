//! Warm execution (issue 15): one long-lived worker per slot of an SSH connection, each
//! running one task at a time, and the pure parts dts needs to drive it (the pool in
//! [`crate::transport::ssh`] does the driving).
//!
//! The worker is a Perl program ([`WORKER_PL`], sent as `perl -e`; nothing is installed).
//! Every task is still the exact `sh -c COMMAND` of a per-task channel: the worker forks,
//! puts the child in a process group of its own (as sshd's `setsid` does), gives it
//! `/dev/null` as stdin, default signal dispositions and an empty signal mask, sets the
//! secrets in its environment (never on a command line), and execs `sh -c CODE`, where
//! CODE is the per-task prelude's environment and working directory followed by the
//! command line. Nothing of the worker reaches the task but its fds 1 and 2, which are the
//! channel's own stdout and stderr.
//!
//! Why Perl and not a shell (measured, see BENCHMARKS.md "Warm execution"): a POSIX shell
//! cannot make a process group without exec'ing `setsid` or being bash with `set -m`; it
//! cannot wait for a task and read its stdin at once, so a second process must read dts's
//! kill lines, and two readers of one pipe lose bytes (a KILLed reader that had not run
//! yet completed its `read` with the next frame's first byte: the kernel checks for data
//! before the signal); and dash cannot tell `exit 130` from death by SIGINT for a
//! foreground job. The bash worker of the first version paid three forks and an exec per
//! task, more host CPU than a whole per-task sshd session. Perl is on every Debian and
//! Ubuntu host (`perl-base` is essential) and most others; a host without it, or where
//! the worker does not start, gets per-task channels.
//!
//! What the worker guarantees, each by construction:
//! * **One reader.** The worker alone reads its stdin, with `select`, so frames and kill
//!   lines are read in order and none is lost; a kill line that crossed its task's end is
//!   read before the next frame, when no task runs, and dropped.
//! * **Kills** ([`KILL_LINE`], or EOF when dts or its connection is gone): TERM to the
//!   task's group, then KILL to the group after the grace (at most 0.5 s after EOF, so
//!   nothing outlives a dead dts by more than that). A TERM, HUP or INT to the worker does
//!   the same.
//! * **Group ids are never reused under it.** The worker finds that a task ended by its
//!   `/proc/PID/stat` state turning `Z` (woken by SIGCHLD), KILLs the group while that
//!   unreaped zombie still holds the group id, and only then reaps it; it never signals
//!   the group afterwards.
//! * **Leftovers** die before the end record: the worker is a child subreaper
//!   (`PR_SET_CHILD_SUBREAPER`), so background jobs of the task, even ones that left its
//!   group with `setsid`, become its children once their parent is gone; it KILLs and
//!   reaps its children until `/proc/self/task/…/children` is empty. Nothing of the task
//!   can write after the record.
//! * **Exact status.** `waitpid` tells exit 143 from death by TERM; signal names are the
//!   host's (`kill -l`, asked the first time a task dies of that signal).
//!
//! The end record is the token on stderr and, on stdout, `TOKEN PID WAITED`, the signal
//! name or `-`, a job line in `jobs -l` form and the token again; [`EndSplitter`] cuts each
//! stream at the token whatever the read boundaries and [`record_status`] reads it. Task
//! output cannot forge it: the token is never in the task's text or environment.

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
/// without it means the host cannot run workers (no perl, or no child subreaper), and gets
/// per-task channels.
pub const READY: &str = "__dts_warm_ready";

/// Every frame token starts with this; other lines between frames are skipped (a kill
/// byte line sent as the task ended, see [`KILL_LINE`]).
pub const TOKEN_PREFIX: &str = "__dts_e_";

/// What dts writes on a worker's stdin to kill its running task (TERM, grace, KILL).
pub const KILL_LINE: &[u8] = b"k\n";

/// The worker's source, commented; [`worker_script`] is what is sent.
pub const WORKER_PL: &str = include_str!("worker.pl");

/// The worker as one line for `perl -e`: comment lines dropped, the rest joined (every
/// statement in [`WORKER_PL`] ends with `;` or a brace, so joining keeps its meaning, and
/// one line survives any login shell's quoting).
pub fn worker_script() -> String {
    WORKER_PL
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The exec request that starts a worker, whatever the login shell.
pub fn worker_command() -> String {
    format!("exec perl -e {}", quote(worker_script().as_bytes()))
}

/// One task's frame: `TOKEN LEN`, then the `LEN` bytes of `code` (from
/// [`TaskScript::warm_code`](crate::transport::wrapper::TaskScript::warm_code)).
pub fn frame(token: &str, code: &str) -> Vec<u8> {
    let mut frame = format!("{token} {}\n", code.len()).into_bytes();
    frame.extend_from_slice(code.as_bytes());
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
            mut input in proptest::collection::vec(0u8..4, 0..300),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let token = b"\x01\x02\x03\x01";
            // Break every whole token with a byte it lacks, rather than reject the input:
            // near-tokens are what this property is about, and rejecting them ran out of
            // tries at a few thousand cases.
            while let Some(at) = find(&input, token) {
                input[at + token.len() - 1] = 0;
            }
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
        let mut child = std::process::Command::new("perl")
            .args(["-e", &worker_script()])
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

    /// Regression (issue 15): the first (bash) worker wrote a task's end record while the
    /// task's watcher, KILLed in the sweep but not yet scheduled, was still inside `read` on
    /// the worker's stdin; the next frame's first byte then completed that read and was
    /// lost, and the slot hung waiting for the rest of a frame. It took 20 to 1,200
    /// back-to-back tasks on pipes. The Perl worker is its stdin's only reader.
    #[test]
    fn a_killed_watcher_never_eats_the_next_frame() {
        let commands = vec!["echo hi"; 1500];
        let Some(results) = through_worker(&commands) else {
            return; // no perl on this machine
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
            return; // no perl on this machine
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
        use crate::transport::wrapper::tests::{OBSERVE_SH_C, reference};
        let commands: Vec<&str> = OBSERVE_SH_C
            .iter()
            .copied()
            .chain([
                "env | grep -v '^DTS_X=' | sort",
                "grep -E 'Sig(Ign|Blk)' /proc/self/status",
            ])
            .collect();
        let Some(results) = through_worker(&commands) else {
            return;
        };
        for (command, (out, err, status)) in commands.iter().zip(results) {
            use std::os::unix::process::ExitStatusExt;
            let direct = reference(command);
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
