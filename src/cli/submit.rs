//! `dts submit`: resolve the inventory and the job, run it, print the summary, and map the
//! outcome to an exit code.

use std::time::Duration;

use super::{SubmitArgs, output_paths, session};
use crate::error::{Error, exit};
use crate::inventory::{self, Host};
use crate::job::{self, JobSpec, Overrides};
use crate::placement::resources::{self, Capacity};
use crate::placement::rng;
use crate::plan::{self, PlanHost};
use crate::report;
use crate::runner::joblog;
use crate::store::{self, Faults, RunSpec, RunWriter, StateDir, StateEnv};
use crate::transport::slurm;

pub fn run(args: SubmitArgs) -> Result<i32, Error> {
    let env = inventory::Env::from_process();
    let request = args.reach.request(args.hosts.as_deref());
    let pool = slurm::find_pool(&request, &env)?;
    let inventory = match pool {
        Some(_) => None,
        None => Some(inventory_hosts(&args, &request, &env)?),
    };
    let job = job::build(&overrides(&args), &mut std::io::stdin().lock())?;
    // Held until the run ends: dropping it releases a Slurm allocation dts made.
    let mut allocation = None;
    let hosts = match (inventory, &pool) {
        (Some(hosts), _) => eligible_hosts(hosts, args.constraint.as_deref())?,
        (None, Some(pool)) if args.dry_run => {
            slurm::predicted_hosts(pool, &job.name, &env, args.display.quiet)?
        }
        (None, Some(pool)) => {
            let held = allocation.insert(slurm::allocate(pool, &job.name, args.display.quiet)?);
            slurm::hosts(held, pool, &env)
        }
        (None, None) => unreachable!("no pool means an inventory"),
    };
    if !(args.epsilon > 0.0 && args.epsilon.is_finite()) {
        return Err(Error::Usage(format!(
            "invalid --epsilon {}: must be a positive number",
            args.epsilon
        )));
    }
    check_resources(&job, &hosts)?;
    let seed = job.seed.unwrap_or_else(random_seed);
    if args.dry_run {
        return dry_run(&args, &job, &hosts, seed);
    }
    let state = StateDir::locate(&StateEnv::from_process())?;
    let spec = run_spec(&args, &job, hosts, seed, pool.as_ref())?;
    output_paths::check(&spec)?;
    // Fail before anything is created when a secret is missing.
    session::secret_values(&spec.secret_env)?;
    let writer = RunWriter::create_new(&state, &spec, &job.tasks, store::epoch_now())?;
    let id = writer.id().to_string();
    if args.detach {
        drop(writer);
        session::detach(&state, &id)?;
        // The coordinator releases the allocation when the run ends.
        if let Some(allocation) = allocation {
            allocation.hand_over();
        }
        let note = format!("run {id} started in the background; dts status {id}");
        session::detached(&id, &note, &args.display.session());
        return Ok(exit::SUCCESS);
    }
    let outcome = session::run(writer, &args.display.session());
    drop(allocation);
    outcome
}

/// The inventory's hosts, its warnings told unless quiet.
fn inventory_hosts(
    args: &SubmitArgs,
    request: &inventory::Request,
    env: &inventory::Env,
) -> Result<Vec<Host>, Error> {
    inventory::check_identity_files(request, env)?;
    let built = inventory::build(request, env)?;
    if !args.display.quiet {
        built
            .warnings
            .iter()
            .for_each(|w| eprintln!("dts: warning: {w}"));
    }
    Ok(built.inventory.hosts)
}

/// `--cpus` / `--mem` / `--gpus` that no host can ever give are exit 2 before anything runs.
/// Hosts whose slots or memory the inventory does not say are probed for them (cores, total
/// memory); one that does not answer counts as able, as it may answer the run.
fn check_resources(job: &JobSpec, hosts: &[Host]) -> Result<(), Error> {
    let request = job.resources;
    if request.is_plain() {
        return Ok(());
    }
    let slots_of = |h: &Host| job.slots.or(h.slots);
    let unknown = |h: &Host| {
        (request.cpus > 1 && slots_of(h).is_none())
            || (request.mem > 0 && h.mem.is_none())
            || (request.gpus > 0 && h.gpus == 0)
    };
    let to_probe: Vec<Host> = hosts.iter().filter(|h| unknown(h)).cloned().collect();
    let mut probes = super::hosts::probe_each(&to_probe).into_iter();
    let capacities: Vec<(&str, Capacity)> = hosts
        .iter()
        .map(|h| {
            let probe = unknown(h).then(|| probes.next()).flatten();
            let capacity = match probe {
                None => Capacity {
                    slots: slots_of(h).unwrap_or(u32::MAX),
                    mem: h.mem,
                    gpus: h.gpus,
                },
                Some(Ok(p)) => Capacity {
                    slots: slots_of(h).or(p.cores).unwrap_or(1),
                    mem: h.mem.or(p.mem_total_kib.map(|k| k.saturating_mul(1024))),
                    gpus: if h.gpus > 0 {
                        h.gpus
                    } else {
                        p.gpus.unwrap_or(0)
                    },
                },
                Some(Err(_)) => Capacity {
                    slots: slots_of(h).unwrap_or(u32::MAX),
                    mem: h.mem.or(Some(u64::MAX)),
                    gpus: h.gpus,
                },
            };
            (h.name.as_str(), capacity)
        })
        .collect();
    resources::check_hosts(&capacities, &request).map_err(Error::Usage)
}

/// What the store saves of this submission.
fn run_spec(
    args: &SubmitArgs,
    job: &JobSpec,
    hosts: Vec<Host>,
    seed: u64,
    pool: Option<&slurm::Pool>,
) -> Result<RunSpec, Error> {
    let joblog = joblog_path(args)?;
    Ok(RunSpec {
        name: job.name.clone(),
        command: job.command.spec().clone(),
        algorithm: job.algorithm.name().to_string(),
        key: job.key.as_ref().map(|k| k.spec().clone()),
        retries: job.retries,
        timeout: job.timeout,
        workdir: job.workdir.clone(),
        env: job.env.clone(),
        throttle: job.throttle,
        slots: job.slots,
        seed,
        epsilon: args.epsilon,
        kill_grace: args.kill_grace,
        probe_interval: probe_interval(args, job),
        hosts,
        joblog,
        junit: absolute(args.junit.as_ref())?,
        html: absolute(html_path(args)?.as_ref())?,
        faults: faults(args)?,
        secret_env: job.secret_env.clone(),
        matrix: job.matrix.clone(),
        gates: job.gates,
        resources: job.resources,
        order: job.order,
        slurm: pool.and_then(|pool| match pool {
            slurm::Pool::Request(spec) => Some(spec.clone()),
            slurm::Pool::Inside(_) => None,
        }),
        staging: job.staging.clone(),
        stages: job.pipeline.as_ref().map(|p| p.saved()).unwrap_or_default(),
    })
}

/// `--probe-interval`, 0 turning re-probing off, except under a gate: a gated host opens
/// only when a later probe finds it under the gate, so gates re-probe at the default.
fn probe_interval(args: &SubmitArgs, job: &JobSpec) -> Option<std::time::Duration> {
    match args.probe_interval {
        every if every.is_zero() && job.gates.any() => Some(GATED_PROBE_INTERVAL),
        every if every.is_zero() => None,
        every => Some(every),
    }
}

/// How often gated runs re-probe when `--probe-interval 0` asked for none.
const GATED_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// `--html FILE`; not `-`: standard output carries the tasks' output.
fn html_path(args: &SubmitArgs) -> Result<Option<std::path::PathBuf>, Error> {
    match &args.html {
        Some(path) if path.as_os_str() == "-" => Err(Error::Usage(
            "--html -: give a file (standard output carries the tasks' output); dts report RUN --html - prints the page".into(),
        )),
        path => Ok(path.clone()),
    }
}

/// `--joblog FILE` made absolute for the background coordinator; `-` (stdout, as in GNU
/// parallel) stays as it is, and needs a stdout of its own.
fn joblog_path(args: &SubmitArgs) -> Result<Option<std::path::PathBuf>, Error> {
    if args.joblog.as_deref() != Some(std::path::Path::new(joblog::STDOUT)) {
        return absolute(args.joblog.as_ref());
    }
    if args.display.json || args.detach {
        let flag = if args.detach { "--detach" } else { "--json" };
        return Err(Error::Usage(format!(
            "--joblog - writes the joblog on stdout, which {flag} uses for the run id or document; give --joblog a file"
        )));
    }
    Ok(args.joblog.clone())
}

/// The fault-handling flags, checked.
fn faults(args: &SubmitArgs) -> Result<Faults, Error> {
    if let Some(factor) = args.speculate {
        if !(factor > 1.0 && factor.is_finite()) {
            return Err(Error::Usage(format!(
                "invalid --speculate {factor}: the factor must be above 1"
            )));
        }
    }
    for (flag, value) in [
        ("--keepalive-count", args.keepalive_count),
        ("--quarantine-after", args.quarantine_after),
    ] {
        if value == 0 {
            return Err(Error::Usage(format!(
                "invalid {flag} 0: must be at least 1"
            )));
        }
    }
    if args.keepalive.is_zero() {
        return Err(Error::Usage(
            "invalid --keepalive 0s: must be positive".into(),
        ));
    }
    Ok(Faults {
        retry_delay: args.retry_delay,
        keepalive: args.keepalive,
        keepalive_count: args.keepalive_count,
        quarantine_after: args.quarantine_after,
        quarantine_window: args.quarantine_window,
        speculate: args.speculate,
    })
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
    // A pipeline's stages and who waits for whom, after the placement.
    let stages = (job.pipeline.as_ref()).map_or_else(Vec::new, |p| p.planned());
    if args.display.json {
        let mut value = serde_json::to_value(&plan).expect("plan serialises");
        if !stages.is_empty() {
            value["stages"] = serde_json::to_value(&stages).expect("stages serialise");
        }
        let json = serde_json::to_string_pretty(&value).expect("plan serialises");
        super::print_result(&format!("{json}\n"));
    } else {
        let text = report::plan::render(&plan) + &job::pipeline::render_planned(&stages);
        super::print_result(&text);
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
        null: args.null,
        secret_env: args.secret_env.clone(),
        matrix: args.matrix.clone(),
        load: args.load.clone(),
        memfree: args.memfree.clone(),
        cpus: args.cpus,
        mem: args.mem.clone(),
        gpus: args.gpus,
        order: args.order.clone(),
        name: args.name.clone(),
        staging: job::StagingFlags {
            transfer: args.transfer.clone(),
            returns: args.returns.clone(),
            cleanup: args.cleanup,
            trc: args.trc.clone(),
            basefiles: args.basefiles.clone(),
        },
    }
}

/// A path the background coordinator can use whatever its working directory.
fn absolute(path: Option<&std::path::PathBuf>) -> Result<Option<std::path::PathBuf>, Error> {
    path.map(|p| {
        std::path::absolute(p).map_err(|source| Error::ReadFile {
            path: p.clone(),
            source,
        })
    })
    .transpose()
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

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as u64;
    rng::mix(nanos ^ (u64::from(std::process::id()) << 32)) % 1_000_000
}
