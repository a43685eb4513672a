//! `dts clean --older-than 7d | --damaged`: remove old runs, or runs whose store cannot be
//! read. Nothing is ever deleted automatically, and a run whose coordinator is alive is
//! never removed.

use std::path::Path;
use std::time::Duration;

use super::CleanArgs;
use crate::error::{Error, exit};
use crate::store::{self, StateDir, StateEnv, reader};

pub fn run(args: CleanArgs) -> Result<i32, Error> {
    let state = StateDir::locate(&StateEnv::from_process())?;
    let cutoff = args
        .older_than
        .map(|age| store::epoch_now() - age.as_secs_f64());
    let mut removed = 0usize;
    let mut bytes = 0u64;
    for id in state.run_ids() {
        let dir = state.run_dir(&id);
        if store::coordinator_alive(&dir) {
            continue;
        }
        let row = reader::summary(&state, &id).unwrap_or_else(|e| reader::damaged_row(&id, &e));
        let old = cutoff.is_some_and(|cutoff| row.created < cutoff);
        let damaged = row.damage.is_some();
        if !(old || (args.damaged && damaged)) {
            continue;
        }
        let size = dir_size(&dir);
        let what = match &row.damage {
            Some(why) => format!("damaged: {why}"),
            None => row.state.clone(),
        };
        if args.dry_run {
            println!("would remove {id} ({what}, {})", human_bytes(size));
        } else {
            remove(&dir)?;
            println!("removed {id} ({what}, {})", human_bytes(size));
        }
        removed += 1;
        bytes += size;
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let runs = if removed == 1 { "run" } else { "runs" };
    let which = match (args.older_than, args.damaged) {
        (Some(age), false) => format!("{runs} older than {}", age_text(age)),
        (Some(age), true) => format!("{runs} damaged or older than {}", age_text(age)),
        (None, _) => format!("damaged {runs}"),
    };
    eprintln!("dts: {verb} {removed} {which} ({})", human_bytes(bytes));
    Ok(exit::SUCCESS)
}

fn remove(dir: &Path) -> Result<(), Error> {
    std::fs::remove_dir_all(dir).map_err(|source| Error::ReadFile {
        path: dir.to_path_buf(),
        source,
    })
}

fn age_text(age: Duration) -> String {
    humantime::format_duration(Duration::from_secs(age.as_secs())).to_string()
}

fn dir_size(dir: &Path) -> u64 {
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
