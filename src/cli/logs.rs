//! `dts logs RUN [TASK] [--attempt N] [--stderr] [--follow]`: a task's output, byte for
//! byte, or every task's output in order with a header each. `--follow` waits for a queued
//! task to start and follows each of its attempts until the task has its final outcome.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use super::LogsArgs;
use crate::error::{Error, exit};
use crate::store::reader::{self, RunDetail, TaskRow};
use crate::store::{StateDir, StateEnv};
use crate::transport::Stream;

/// How often `--follow` looks for new output.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Task states after which no attempt follows (until a `dts retry`).
const FINAL_STATES: [&str; 5] = ["succeeded", "failed", "timed-out", "cancelled", "not-run"];

pub fn run(args: LogsArgs) -> Result<i32, Error> {
    let state = StateDir::locate(&StateEnv::from_process())?;
    let id = state.resolve(&args.run)?;
    let stream = if args.stderr {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    let detail = reader::detail(&state, &id)?;
    let mut out = std::io::stdout().lock();
    let write_err = |e: std::io::Error| Error::Runtime(format!("writing output: {e}"));
    match args.task {
        Some(index) => {
            let task = detail
                .task(index)
                .ok_or_else(|| Error::Usage(format!("run {id} has no task with index {index}")))?;
            let run = Run {
                state: &state,
                id: &id,
                detail: &detail,
                stream,
            };
            if args.follow {
                run.follow_task(task, args.attempt, &mut out)?;
            } else {
                let Some(attempt) = chosen_attempt(task, args.attempt)? else {
                    eprintln!("dts: task {index} has not started yet ({})", task.state);
                    return Ok(exit::SUCCESS);
                };
                copy(&detail, task.index, attempt, stream, &mut out).map_err(write_err)?;
            }
        }
        None => {
            for task in detail.tasks.iter().filter(|t| t.attempts > 0) {
                let path = detail.output_path(task.index, task.attempts, stream);
                if !path.exists() {
                    continue;
                }
                let host = task.host.as_deref().unwrap_or("?");
                writeln!(
                    out,
                    "==> task {} on {host} (attempt {}, {}) <==",
                    task.index, task.attempts, task.state
                )
                .map_err(write_err)?;
                copy(&detail, task.index, task.attempts, stream, &mut out).map_err(write_err)?;
            }
        }
    }
    out.flush().map_err(write_err)?;
    Ok(exit::SUCCESS)
}

/// The attempt to print: `--attempt N` if the task had it, else the latest; `None` before
/// the first.
fn chosen_attempt(task: &TaskRow, asked: Option<u32>) -> Result<Option<u32>, Error> {
    match asked {
        Some(n) if n == 0 || n > task.attempts => Err(Error::Usage(format!(
            "task {} has had {} attempt{}: --attempt {n} does not exist",
            task.index,
            task.attempts,
            if task.attempts == 1 { "" } else { "s" }
        ))),
        Some(n) => Ok(Some(n)),
        None => Ok((task.attempts > 0).then_some(task.attempts)),
    }
}

fn copy(
    detail: &RunDetail,
    index: u64,
    attempt: u32,
    stream: Stream,
    out: &mut impl Write,
) -> std::io::Result<u64> {
    match std::fs::File::open(detail.output_path(index, attempt, stream)) {
        Ok(mut file) => std::io::copy(&mut file, out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// The run a `--follow` reads.
struct Run<'a> {
    state: &'a StateDir,
    id: &'a str,
    detail: &'a RunDetail,
    stream: Stream,
}

impl Run<'_> {
    /// Follows `--attempt N`, or every attempt from the latest on until the task is final.
    fn follow_task(
        &self,
        task: &TaskRow,
        asked: Option<u32>,
        out: &mut impl Write,
    ) -> Result<(), Error> {
        if asked == Some(0) {
            return Err(Error::Usage("--attempt counts from 1".into()));
        }
        let mut attempt = asked.unwrap_or(task.attempts.max(1));
        if task.attempts < attempt {
            eprintln!(
                "dts: task {} is {}; waiting for attempt {attempt} to start",
                task.index, task.state
            );
        }
        loop {
            if !self.wait_for_attempt(task.seq, attempt)? {
                eprintln!(
                    "dts: task {} ended without an attempt {attempt}",
                    task.index
                );
                return Ok(());
            }
            self.follow_attempt(task, attempt, out)?;
            if asked.is_some() || !self.wait_for_attempt(task.seq, attempt + 1)? {
                return Ok(());
            }
            attempt += 1;
            eprintln!("dts: task {}: following attempt {attempt}", task.index);
        }
    }

    /// Waits until the task has had `attempt` attempts (true), or is final or its
    /// coordinator gone without them (false).
    fn wait_for_attempt(&self, seq: u32, attempt: u32) -> Result<bool, Error> {
        loop {
            let (state, attempts) = reader::task_progress(self.state, self.id, seq)?
                .ok_or_else(|| Error::Runtime(format!("run {}: task {seq} vanished", self.id)))?;
            if attempts >= attempt {
                return Ok(true);
            }
            if FINAL_STATES.contains(&state.as_str()) || !self.coordinator_alive() {
                return Ok(false);
            }
            std::thread::sleep(FOLLOW_EVERY);
        }
    }

    fn coordinator_alive(&self) -> bool {
        crate::store::coordinator_alive(&self.state.run_dir(self.id))
    }

    /// Copies the attempt's output as it grows, until the attempt has ended.
    fn follow_attempt(
        &self,
        task: &TaskRow,
        attempt: u32,
        out: &mut impl Write,
    ) -> Result<(), Error> {
        let path = self.detail.output_path(task.index, attempt, self.stream);
        let io = |e: std::io::Error| Error::Runtime(format!("following {}: {e}", path.display()));
        let mut offset = 0u64;
        loop {
            let ended = self.attempt_ended(task.seq, attempt)?;
            if let Ok(mut file) = std::fs::File::open(&path) {
                file.seek(SeekFrom::Start(offset)).map_err(io)?;
                let mut chunk = Vec::new();
                file.read_to_end(&mut chunk).map_err(io)?;
                offset += chunk.len() as u64;
                out.write_all(&chunk).map_err(io)?;
                out.flush().map_err(io)?;
            }
            if ended {
                return Ok(());
            }
            std::thread::sleep(FOLLOW_EVERY);
        }
    }

    /// Whether the attempt has an outcome, or the run's coordinator is gone.
    fn attempt_ended(&self, seq: u32, attempt: u32) -> Result<bool, Error> {
        let ended = reader::attempt_ended(self.state, self.id, seq, attempt)?.unwrap_or(true);
        Ok(ended || !self.coordinator_alive())
    }
}
