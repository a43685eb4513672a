//! `dts retry RUN [--failed] [--detach]`: finish a run that was interrupted, cancelled or
//! failed. Tasks that succeeded never run again; the others go back to the queue under the
//! same run id, their attempt numbers growing.

use super::{RetryArgs, output_paths, session};
use crate::error::{Error, exit};
use crate::store::{self, RunWriter, StateDir, StateEnv};

pub fn run(args: RetryArgs) -> Result<i32, Error> {
    let state = StateDir::locate(&StateEnv::from_process())?;
    let id = state.resolve(&args.run)?;
    let mut writer = RunWriter::open(&state, &id)?;
    // The saved --joblog, --junit and --html paths may have gone since the run began.
    output_paths::check(&writer.spec()?).map_err(|e| {
        Error::Usage(format!(
            "run {id} was submitted with {e}; make the path writable again"
        ))
    })?;
    let queued = writer.requeue_unfinished(args.failed, store::epoch_now())?;
    if queued == 0 {
        let what = if args.failed { "failed" } else { "unfinished" };
        eprintln!("dts: run {id} has no {what} task to retry");
        return Ok(exit::SUCCESS);
    }
    if args.detach {
        drop(writer);
        session::detach(&state, &id)?;
        let note =
            format!("retrying {queued} task(s) of run {id} in the background; dts status {id}");
        session::detached(&id, &note, &args.display.session());
        return Ok(exit::SUCCESS);
    }
    session::run(writer, &args.display.session())
}
