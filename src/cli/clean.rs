//! `dts clean --older-than 7d`: remove old runs. Nothing is ever deleted automatically, and
//! a run whose coordinator is alive is never removed.

use std::time::Duration;

use super::CleanArgs;
use crate::error::{Error, exit};
use crate::store::{self, StateDir, StateEnv, reader};

pub fn run(args: CleanArgs) -> Result<i32, Error> {
    let state = StateDir::locate(&StateEnv::from_process())?;
    let cutoff = store::epoch_now() - args.older_than.as_secs_f64();
    let mut removed = 0usize;
    let mut bytes = 0u64;
    for id in state.run_ids() {
        let dir = state.run_dir(&id);
        let Ok(row) = reader::summary(&state, &id) else {
            continue;
        };
        if row.created >= cutoff || store::coordinator_alive(&dir) {
            continue;
        }
        let size = dir_size(&dir);
        if args.dry_run {
            println!("would remove {id} ({}, {})", row.state, human_bytes(size));
        } else {
            std::fs::remove_dir_all(&dir).map_err(|source| Error::ReadFile {
                path: dir.clone(),
                source,
            })?;
            println!("removed {id} ({}, {})", row.state, human_bytes(size));
        }
        removed += 1;
        bytes += size;
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    eprintln!(
        "dts: {verb} {removed} run{} older than {} ({})",
        if removed == 1 { "" } else { "s" },
        humantime::format_duration(Duration::from_secs(args.older_than.as_secs())),
        human_bytes(bytes)
    );
    Ok(exit::SUCCESS)
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}
