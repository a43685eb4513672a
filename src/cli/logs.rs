//! `dts logs RUN [TASK] [--stderr] [--follow]`: a task's output, byte for byte, or every
//! task's output in order with a header each.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use super::LogsArgs;
use crate::error::{Error, exit};
use crate::store::reader::{self, RunDetail, TaskRow};
use crate::store::{StateDir, StateEnv};
use crate::transport::Stream;

/// How often `--follow` looks for new output.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

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
            if task.attempts == 0 {
                eprintln!("dts: task {index} has not started yet ({})", task.state);
                return Ok(exit::SUCCESS);
            }
            if args.follow {
                follow(&state, &id, &detail, task, stream, &mut out)?;
            } else {
                copy(&detail, task, stream, &mut out).map_err(write_err)?;
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
                copy(&detail, task, stream, &mut out).map_err(write_err)?;
            }
        }
    }
    out.flush().map_err(write_err)?;
    Ok(exit::SUCCESS)
}

fn copy(
    detail: &RunDetail,
    task: &TaskRow,
    stream: Stream,
    out: &mut impl Write,
) -> std::io::Result<u64> {
    match std::fs::File::open(detail.output_path(task.index, task.attempts, stream)) {
        Ok(mut file) => std::io::copy(&mut file, out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Copies the attempt's output as it grows, until the attempt has ended.
fn follow(
    state: &StateDir,
    id: &str,
    detail: &RunDetail,
    task: &TaskRow,
    stream: Stream,
    out: &mut impl Write,
) -> Result<(), Error> {
    let path = detail.output_path(task.index, task.attempts, stream);
    let io = |e: std::io::Error| Error::Runtime(format!("following {}: {e}", path.display()));
    let mut offset = 0u64;
    loop {
        let ended = attempt_ended(state, id, task.seq, task.attempts)?;
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
fn attempt_ended(state: &StateDir, id: &str, seq: u32, attempt: u32) -> Result<bool, Error> {
    let ended = reader::attempt_ended(state, id, seq, attempt)?.unwrap_or(true);
    Ok(ended || !crate::store::coordinator_alive(&state.run_dir(id)))
}
