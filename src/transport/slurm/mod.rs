//! Slurm transport: a `[slurm]` table in hosts.toml asks Slurm for an allocation, its nodes
//! become dts hosts, and every task runs as an `srun` step pinned to the node placement chose.
//!
//! This module owns the allocation's life ([`alloc`]: sbatch a placeholder, wait while
//! showing the pending reason, read the nodes and their CPUs, scancel it when dropped), the
//! parsing of Slurm's `--parsable2`/`scontrol` text ([`parse`], pure), and the connection
//! that runs steps on one node ([`conn`]). The dispatcher sees a node as any other host.

pub mod alloc;
pub mod conn;
pub mod parse;
pub mod worker;

pub use alloc::{Allocation, Pool, SlurmError};

use crate::error::Error;
use crate::inventory::{self, Host, Transport};
use parse::PoolSpec;

/// The Slurm pool a submission uses, if any: the `[slurm]` table of the inventory file the
/// lookup order picks, else (no file, no `-w`/`--slf`) the Slurm job dts runs inside
/// (`SLURM_JOB_ID`).
pub fn find_pool(
    request: &inventory::Request,
    env: &inventory::Env,
) -> Result<Option<Pool>, Error> {
    if request.host_list.is_some() || request.login_file.is_some() {
        return Ok(None);
    }
    let Some(file) = inventory::locate(request.hosts_file.as_deref(), env) else {
        return Ok(inside_job().map(Pool::Inside));
    };
    let Ok(text) = std::fs::read_to_string(env.cwd.join(&file)) else {
        // The inventory reports the unreadable file itself.
        return Ok(None);
    };
    match parse::pool_spec(&text) {
        Ok(spec) => Ok(spec.map(Pool::Request)),
        Err(why) => Err(Error::Usage(format!("{}: {why}", file.display()))),
    }
}

/// `SLURM_JOB_ID` when it is a job id.
fn inside_job() -> Option<u64> {
    std::env::var("SLURM_JOB_ID").ok()?.trim().parse().ok()
}

/// Gets the allocation, telling each pending reason on stderr unless `quiet`.
pub fn allocate(pool: &Pool, run_name: &str, quiet: bool) -> Result<Allocation, Error> {
    let name = format!("dts-{run_name}");
    let mut note = |text: &str| {
        if !quiet {
            eprintln!("dts: {text}");
        }
    };
    let allocation = alloc::acquire(pool, &name, &mut note).map_err(|e| match e {
        SlurmError::Refused(_) | SlurmError::Ended { .. } => {
            Error::NoHostReachable(vec![("slurm".into(), e.to_string())])
        }
        SlurmError::Interrupted(_) | SlurmError::Command(_) => Error::Runtime(e.to_string()),
    })?;
    if !quiet {
        let nodes: Vec<&str> = allocation.nodes.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!(
            "dts: slurm job {} running on {}",
            allocation.job,
            crate::nodeset::fold(&nodes)
        );
    }
    Ok(allocation)
}

/// The allocation's nodes as dts hosts: one slot per CPU dts may use there.
pub fn hosts(allocation: &Allocation, pool: &Pool, env: &inventory::Env) -> Vec<Host> {
    node_hosts(allocation.job, &allocation.nodes, pool, env)
}

fn node_hosts(job: u64, nodes: &[(String, u32)], pool: &Pool, env: &inventory::Env) -> Vec<Host> {
    let per_task = matches!(pool, Pool::Request(spec) if spec.per_task());
    let template = inventory::local_default(env).hosts.remove(0);
    nodes
        .iter()
        .map(|(node, slots)| Host {
            name: node.clone(),
            address: node.clone(),
            slots: Some(*slots),
            transport: Transport::Slurm { job, per_task },
            ..template.clone()
        })
        .collect()
}

/// The hosts a `--dry-run` plans on: the nodes of the job dts runs inside, or those
/// `sbatch --test-only` predicts for a `[slurm]` table (nothing is submitted), told on
/// stderr unless `quiet`.
pub fn predicted_hosts(
    pool: &Pool,
    name: &str,
    env: &inventory::Env,
    quiet: bool,
) -> Result<Vec<Host>, Error> {
    let spec = match pool {
        Pool::Inside(_) => {
            let allocation = allocate(pool, name, quiet)?;
            return Ok(hosts(&allocation, pool, env));
        }
        Pool::Request(spec) => spec,
    };
    let (prediction, nodes) = alloc::predict(spec, &format!("dts-{name}"))
        .map_err(|e| Error::NoHostReachable(vec![("slurm".into(), e.to_string())]))?;
    if !quiet {
        let names: Vec<&str> = prediction.nodes.iter().map(String::as_str).collect();
        eprintln!(
            "dts: slurm would start the allocation at {} on {} in partition {} (sbatch --test-only; nothing submitted)",
            prediction.start,
            crate::nodeset::fold(&names),
            prediction.partition
        );
    }
    Ok(node_hosts(0, &nodes, pool, env))
}

/// Releases the allocations a run's saved hosts name (a crashed coordinator's), when
/// dts made them: `dts cancel` and `dts retry` call this.
pub fn release_saved(hosts: &[Host], spec: Option<&PoolSpec>) {
    if spec.is_none() {
        return;
    }
    let mut jobs: Vec<u64> = hosts
        .iter()
        .filter_map(|h| match h.transport {
            Transport::Slurm { job, .. } => Some(job),
            _ => None,
        })
        .collect();
    jobs.dedup();
    jobs.into_iter().for_each(alloc::release);
}

/// The job id a run's hosts run in, for `dts status`.
pub fn job_of(hosts: &[Host]) -> Option<u64> {
    hosts.iter().find_map(|h| match h.transport {
        Transport::Slurm { job, .. } => Some(job),
        _ => None,
    })
}
