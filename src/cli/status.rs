//! `dts status [RUN] [--watch] [--json]`: the runs, or one run as it stands.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::StatusArgs;
use crate::error::{Error, exit};
use crate::report::{document, status};
use crate::store::{self, StateDir, StateEnv, reader};

/// How often `--watch` redraws.
const WATCH_EVERY: Duration = Duration::from_secs(1);

pub fn run(args: StatusArgs) -> Result<i32, Error> {
    let state = StateDir::locate(&StateEnv::from_process())?;
    let Some(query) = &args.run else {
        return list(&state, &args);
    };
    let id = state.resolve(query)?;
    loop {
        let (text, finished) = one(&state, &id, args.json)?;
        if args.watch && std::io::stdout().is_terminal() {
            // Redraw in place: home the cursor and clear the screen.
            print!("\x1b[H\x1b[2J");
        }
        print!("{text}");
        let _ = std::io::stdout().flush();
        if !args.watch || finished {
            return Ok(exit::SUCCESS);
        }
        std::thread::sleep(WATCH_EVERY);
    }
}

fn list(state: &StateDir, args: &StatusArgs) -> Result<i32, Error> {
    let rows = reader::list(state);
    if args.json {
        let runs: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "name": r.name,
                    "state": r.state,
                    "total": r.total,
                    "succeeded": r.counts.succeeded,
                    "failed": r.counts.failed_total(),
                    "created": r.created,
                    "hosts": r.hosts,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "runs": runs })).expect("json")
        );
    } else {
        print!("{}", status::list(&rows, store::epoch_now()));
    }
    Ok(exit::SUCCESS)
}

/// The run's text (or JSON) and whether it has finished.
fn one(state: &StateDir, id: &str, json: bool) -> Result<(String, bool), Error> {
    let detail = reader::detail(state, id)?;
    let now = store::epoch_now();
    let stats = detail.stats();
    let doc = document::build(&detail, &stats, now, |t| detail.last_stderr_line(t));
    let finished = !matches!(detail.run.state.as_str(), "running" | "paused" | "queued");
    let text = if json {
        serde_json::to_string_pretty(&doc).expect("documents serialise") + "\n"
    } else {
        status::run(&detail.run, &detail.hosts, &doc, now)
    };
    Ok((text, finished))
}
