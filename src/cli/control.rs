//! `dts cancel`, `dts pause`, `dts resume`: a request left in the run's store, announced to
//! its coordinator with SIGUSR1 (it also polls every second), then confirmed by waiting for
//! the run's state to change. They work alike on detached and foreground runs.

use std::time::{Duration, Instant};

use crate::error::{Error, exit};
use crate::store::{self, StateDir, StateEnv, reader};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Cancel,
    Pause,
    Resume,
}

impl Request {
    fn word(self) -> &'static str {
        match self {
            Request::Cancel => "cancel",
            Request::Pause => "pause",
            Request::Resume => "resume",
        }
    }

    /// The state that confirms the request.
    fn confirmed_by(self) -> &'static [&'static str] {
        match self {
            Request::Cancel => &["cancelled"],
            Request::Pause => &["paused"],
            Request::Resume => &["running", "succeeded", "failed"],
        }
    }
}

pub fn run(request: Request, query: &str) -> Result<i32, Error> {
    let state = StateDir::locate(&StateEnv::from_process())?;
    let id = state.resolve(query)?;
    let row = reader::summary(&state, &id)?;
    match (request, row.state.as_str()) {
        (_, "running" | "paused" | "queued") => {}
        (Request::Cancel, "interrupted") => {
            reader::cancel_dead(&state, &id, store::epoch_now())?;
            // A crashed coordinator's Slurm allocation may still hold its nodes.
            let spec = reader::detail(&state, &id)?.spec;
            crate::transport::slurm::release_saved(&spec.hosts, spec.slurm.as_ref());
            eprintln!(
                "dts: run {id} cancelled (its coordinator was already gone; nothing was running)"
            );
            return Ok(exit::SUCCESS);
        }
        (_, finished) => {
            return Err(Error::Usage(format!(
                "cannot {} run {id}: it has already ended ({finished})",
                request.word()
            )));
        }
    }
    reader::request_control(&state, &id, request.word())?;
    let local = row.hostname.as_deref() == Some(store::hostname().as_str());
    if let (true, Some(pid)) = (local, row.pid) {
        // Only the live coordinator, which holds the run's lock, gets the signal: never a
        // process that reused a stale pid.
        if store::coordinator_alive(&state.run_dir(&id)) {
            // SAFETY: kill(2) with a pid and a signal number has no memory-safety concerns.
            unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
        }
    }
    let spec = reader::detail(&state, &id)?.spec;
    let limit = spec.kill_grace + Duration::from_secs(15);
    let deadline = Instant::now() + limit;
    loop {
        let now = reader::summary(&state, &id)?;
        if request.confirmed_by().contains(&now.state.as_str()) {
            eprintln!("dts: run {id} {}", now.state);
            return Ok(exit::SUCCESS);
        }
        if now.state == "interrupted" {
            return Err(Error::Runtime(format!(
                "run {id}: its coordinator died before confirming"
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::Runtime(format!(
                "run {id} did not confirm '{}' within {}s (state {})",
                request.word(),
                limit.as_secs(),
                now.state
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
