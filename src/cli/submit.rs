//! `dts submit`: resolve the inventory and the job, run it, print the summary, and map the
//! outcome to an exit code.

use std::sync::Arc;
use std::time::Duration;

use super::SubmitArgs;
use crate::error::{Error, exit};
use crate::inventory::{self, Host};
use crate::job::{self, JobSpec, Overrides};
use crate::placement::{Algorithm, rng};
use crate::plan::{self, PlanHost};
use crate::report;
use crate::runner::{self, RunConfig, RunOutcome};

pub fn run(args: SubmitArgs) -> Result<i32, Error> {
    let env = inventory::Env::from_process();
    let inventory = inventory::resolve(args.hosts.as_deref(), &env)?;
    let job = job::build(&overrides(&args), &mut std::io::stdin().lock())?;
    let hosts = eligible_hosts(inventory.hosts, args.constraint.as_deref())?;
    if !(args.epsilon > 0.0 && args.epsilon.is_finite()) {
        return Err(Error::Usage(format!(
            "invalid --epsilon {}: must be a positive number",
            args.epsilon
        )));
    }
    let seed = job.seed.unwrap_or_else(random_seed);
    if args.dry_run {
        return dry_run(&args, &job, &hosts, seed);
    }
    let config = RunConfig {
        run_id: new_run_id(),
        hosts: hosts.into_iter().map(Arc::new).collect(),
        kill_grace: args.kill_grace,
        epsilon: args.epsilon,
        seed,
        probe_interval: (!args.probe_interval.is_zero()).then_some(args.probe_interval),
        job,
    };
    announce(&config);
    let outcome = runner::run(config)?;
    eprint!("{}", report::summary(&outcome));
    exit_code(&outcome)
}

/// Prints the plan; probes the hosts first unless `--no-probe`.
fn dry_run(args: &SubmitArgs, job: &JobSpec, hosts: &[Host], seed: u64) -> Result<i32, Error> {
    let probes: Vec<Option<Result<_, String>>> = if args.no_probe {
        vec![None; hosts.len()]
    } else {
        super::hosts::probe_each(hosts)
            .into_iter()
            .map(|r| Some(r.map_err(|e| e.message)))
            .collect()
    };
    let plan_hosts: Vec<PlanHost> = hosts
        .iter()
        .zip(probes)
        .map(|(host, probe)| PlanHost { host, probe })
        .collect();
    let plan = plan::build(job, &plan_hosts, seed, args.epsilon);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("plan serialises")
        );
    } else {
        print!("{}", report::plan::render(&plan));
    }
    if plan.hosts.iter().all(|h| h.excluded.is_some()) {
        let errors = plan
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.excluded.clone().unwrap_or_default()))
            .collect();
        return Err(Error::NoHostReachable(errors));
    }
    Ok(exit::SUCCESS)
}

fn overrides(args: &SubmitArgs) -> Overrides {
    Overrides {
        job_file: args.job_file.clone(),
        array: args.array.clone(),
        items: args.items.clone(),
        algorithm: args.algorithm.clone(),
        key: args.key.clone(),
        slots: args.slots,
        retries: args.retries,
        timeout: args.timeout.clone(),
        seed: args.seed,
        command: args.command.clone(),
    }
}

/// Hosts carrying `label`, or all of them.
fn eligible_hosts(hosts: Vec<Host>, label: Option<&str>) -> Result<Vec<Host>, Error> {
    let Some(label) = label else { return Ok(hosts) };
    let matching: Vec<Host> = hosts
        .into_iter()
        .filter(|h| h.labels.iter().any(|l| l == label))
        .collect();
    if matching.is_empty() {
        return Err(Error::Usage(format!(
            "--constraint {label}: no host in the inventory has that label"
        )));
    }
    Ok(matching)
}

fn announce(config: &RunConfig) {
    let job: &JobSpec = &config.job;
    let mut line = format!(
        "dts: run {}: {} task{} on {} host{} ({}",
        config.run_id,
        job.tasks.len(),
        if job.tasks.len() == 1 { "" } else { "s" },
        config.hosts.len(),
        if config.hosts.len() == 1 { "" } else { "s" },
        job.algorithm,
    );
    if job.algorithm == Algorithm::Random {
        line.push_str(&format!(", seed {}", config.seed));
    }
    line.push(')');
    eprintln!("{line}");
}

fn exit_code(outcome: &RunOutcome) -> Result<i32, Error> {
    if outcome.interrupted {
        return Ok(exit::INTERRUPTED);
    }
    if outcome.no_host {
        let errors = outcome
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    h.error.clone().unwrap_or_else(|| "unreachable".into()),
                )
            })
            .collect();
        return Err(Error::NoHostReachable(errors));
    }
    Ok(if outcome.all_succeeded() {
        exit::SUCCESS
    } else {
        exit::TASK_FAILED
    })
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as u64;
    rng::mix(nanos ^ (u64::from(std::process::id()) << 32)) % 1_000_000
}

/// A short, sortable run id: UTC time to the second plus four random hex digits.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    // 2026-11-25T06:15:30Z -> 20261125-061530
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    let suffix = rng::mix(
        now.duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64
            ^ u64::from(std::process::id()),
    ) & 0xffff;
    format!("{}-{}-{suffix:04x}", &digits[..8], &digits[8..14])
}
