//! `dts status [RUN] [--watch] [--json]`: the runs, or one run as it stands.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::StatusArgs;
use crate::error::{Error, exit};
use crate::report::{document, params, status};
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
                    "damage": r.damage,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "runs": runs })).expect("json")
        );
    } else {
        print!("{}", status::list(&rows, store::epoch_now()));
        print!("{}", damage_notes(&rows));
    }
    Ok(exit::SUCCESS)
}

/// Why each damaged run of the list cannot be read, and what to do about it.
fn damage_notes(rows: &[reader::RunRow]) -> String {
    let damaged: Vec<String> = rows
        .iter()
        .filter_map(|r| Some(format!("damaged: {}: {}\n", r.id, r.damage.as_ref()?)))
        .collect();
    if damaged.is_empty() {
        return String::new();
    }
    damaged.concat() + "(dts clean --damaged removes damaged runs)\n"
}

/// The run's text (or JSON) and whether it has finished.
fn one(state: &StateDir, id: &str, json: bool) -> Result<(String, bool), Error> {
    let detail = match reader::detail(state, id) {
        Ok(detail) => detail,
        Err(e) if !store::coordinator_alive(&state.run_dir(id)) => {
            return Ok(damaged(id, &e, json));
        }
        Err(e) => return Err(e),
    };
    let now = store::epoch_now();
    let stats = detail.stats();
    let doc = document::build(&detail, &stats, now, |t| detail.last_stderr_line(t));
    let finished = !matches!(detail.run.state.as_str(), "running" | "paused" | "queued");
    let parameters = match detail.spec.stages.as_slice() {
        [] => params::of_tasks(&detail.spec.matrix, &detail.tasks),
        stages => params::of_stages(stages, &detail.tasks),
    };
    let text = if json && parameters.is_empty() {
        serde_json::to_string_pretty(&doc).expect("documents serialise") + "\n"
    } else if json {
        let with_parameters = WithParameters {
            doc: &doc,
            parameters: &parameters,
        };
        serde_json::to_string_pretty(&with_parameters).expect("documents serialise") + "\n"
    } else {
        status::run(&detail.run, &detail.hosts, &doc, now)
            + &slurm_line(&detail.spec.hosts)
            + &params::render(&parameters)
            + &report_hint(id)
    };
    Ok((text, finished))
}

/// `slurm job J` for a run on a Slurm allocation.
fn slurm_line(hosts: &[crate::inventory::Host]) -> String {
    crate::transport::slurm::job_of(hosts)
        .map_or_else(String::new, |job| format!("slurm job {job}\n"))
}

/// The run's document with each task's matrix parameters after it.
#[derive(serde::Serialize)]
struct WithParameters<'a> {
    #[serde(flatten)]
    doc: &'a document::RunDocument,
    parameters: &'a [params::TaskParams],
}

/// How to see the run as a page.
fn report_hint(id: &str) -> String {
    format!("see it: dts report {id} --html FILE (timeline per host slot, utilisation, figures)\n")
}

/// A run whose store cannot be read: its state is `damaged`, and that is final.
fn damaged(id: &str, why: &Error, json: bool) -> (String, bool) {
    let text = if json {
        let doc =
            serde_json::json!({ "run_id": id, "state": "damaged", "damage": why.to_string() });
        serde_json::to_string_pretty(&doc).expect("json") + "\n"
    } else {
        format!("run {id}: damaged: {why}\n(dts clean --damaged removes it)\n")
    };
    (text, true)
}
