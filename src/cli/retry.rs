//! `dts retry RUN [--failed] [--detach]`: finish a run that was interrupted, cancelled or
//! failed. Tasks that succeeded never run again; the others go back to the queue under the
//! same run id, their attempt numbers growing.

use super::{RetryArgs, output_paths, session};
use crate::error::{Error, exit};
use crate::store::{self, RunWriter, StateDir, StateEnv};
use crate::transport::slurm;

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
    // Held until the run ends: dropping it releases the new Slurm allocation.
    let allocation = slurm_again(&mut writer, &args)?;
    if args.detach {
        drop(writer);
        session::detach(&state, &id)?;
        // The coordinator releases the allocation when the run ends.
        if let Some(allocation) = allocation {
            allocation.hand_over();
        }
        let note =
            format!("retrying {queued} task(s) of run {id} in the background; dts status {id}");
        session::detached(&id, &note, &args.display.session());
        return Ok(exit::SUCCESS);
    }
    let outcome = session::run(writer, &args.display.session());
    drop(allocation);
    outcome
}

/// A run on a Slurm allocation dts made: release the old one (a crashed coordinator's may
/// still run) and ask for a new one, whose nodes become the run's hosts.
fn slurm_again(
    writer: &mut RunWriter,
    args: &RetryArgs,
) -> Result<Option<slurm::Allocation>, Error> {
    let mut spec = writer.spec()?;
    let Some(pool) = spec.slurm.clone() else {
        return Ok(None);
    };
    slurm::release_saved(&spec.hosts, Some(&pool));
    let pool = slurm::Pool::Request(pool);
    let allocation = slurm::allocate(&pool, &spec.name, args.display.quiet)?;
    spec.hosts = slurm::hosts(&allocation, &pool, &crate::inventory::Env::from_process());
    writer.set_spec(&spec)?;
    Ok(Some(allocation))
}
