//! `dts hosts`: probe every host in parallel and print a table (or JSON).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use super::HostsArgs;
use crate::error::{Error, exit};
use crate::inventory::{self, Host, Transport};
use crate::probe::{self, ProbeReport};
use crate::report::hosts_table::{self, HostRow};
use crate::transport::HostError;
use crate::transport::ssh::{self, connect};

pub fn run(args: HostsArgs) -> Result<i32, Error> {
    let request = args.reach.request(args.hosts.as_deref());
    let env = inventory::Env::from_process();
    if let Some(crate::transport::slurm::Pool::Request(_)) =
        crate::transport::slurm::find_pool(&request, &env)?
    {
        // Its nodes exist only once an allocation is granted, and probing is no reason to
        // ask Slurm for one.
        return Err(Error::Usage(
            "the inventory is a [slurm] pool: its hosts are the nodes of the allocation \
             `dts submit` asks for, so there is nothing to probe before that (sinfo shows \
             the cluster's nodes)"
                .into(),
        ));
    }
    inventory::check_identity_files(&request, &env)?;
    let built = inventory::build(&request, &env)?;
    built
        .warnings
        .iter()
        .for_each(|w| eprintln!("dts: warning: {w}"));
    let inventory = built.inventory;
    let rows = probe_all(&inventory.hosts);
    if args.json {
        let json = serde_json::json!({ "hosts": rows });
        let text = serde_json::to_string_pretty(&json).expect("rows serialise");
        super::print_result(&format!("{text}\n"));
    } else {
        super::print_result(&format!("{}\n", hosts_table::render(&rows)));
    }
    let reachable = rows.iter().any(|r| r.status == "ok");
    Ok(if reachable {
        exit::SUCCESS
    } else {
        exit::NO_HOST
    })
}

/// Probes every host at once; rows come back in inventory order.
pub fn probe_all(hosts: &[Host]) -> Vec<HostRow> {
    hosts
        .iter()
        .zip(probe_each(hosts))
        .map(|(host, result)| row(host, result))
        .collect()
}

/// Connects to every host and runs the probe, at most
/// [`MAX_IN_FLIGHT`](crate::runner::connector::MAX_IN_FLIGHT) at once (each is a thread and
/// sockets: one per host made 10,000 threads for 10,000 hosts); results in inventory order.
pub fn probe_each(hosts: &[Host]) -> Vec<Result<ProbeReport, HostError>> {
    let handshakes = ssh::Handshakes::default();
    let auth = ssh::AuthEnv::from_process();
    let timeout = ssh::Options::default().probe_timeout;
    let next = AtomicUsize::new(0);
    let workers = crate::runner::connector::MAX_IN_FLIGHT.min(hosts.len());
    let done: Vec<(usize, Result<ProbeReport, HostError>)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(host) = hosts.get(i) else { break };
                        let result = match host.transport {
                            Transport::Local => Ok(probe::local()),
                            Transport::Slurm { .. } => {
                                crate::transport::slurm::alloc::node_probe(&host.address)
                                    .map_err(HostError::transient)
                            }
                            Transport::Ssh => connect::connect(host, &handshakes, &auth)
                                .and_then(|link| connect::probe(&link.session, timeout)),
                        };
                        done.push((i, result));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    });
    let mut results: Vec<Option<Result<ProbeReport, HostError>>> =
        hosts.iter().map(|_| None).collect();
    for (i, result) in done {
        results[i] = Some(result);
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(HostError::transient("probe thread panicked"))))
        .collect()
}

/// How the host is reached beyond its address: ` via HOP,HOP` or ` via proxy command`.
fn route(host: &Host) -> String {
    if !host.jump.is_empty() {
        let hops: Vec<String> = host.jump.iter().map(ToString::to_string).collect();
        return format!(" via {}", hops.join(","));
    }
    match &host.proxy_command {
        Some(command) => format!(" via `{command}`"),
        None => String::new(),
    }
}

fn row(host: &Host, result: Result<ProbeReport, HostError>) -> HostRow {
    let address = match host.transport {
        Transport::Local => "local".to_string(),
        Transport::Slurm { job, .. } => format!("slurm job {job}"),
        Transport::Ssh if host.port == 22 => host.address.clone(),
        Transport::Ssh => format!("{}:{}", host.address, host.port),
    } + &route(host);
    match result {
        Ok(probe) => HostRow {
            name: host.name.clone(),
            address,
            status: "ok".into(),
            execution: match (host.execution_mode(), probe.perl) {
                (crate::inventory::Execution::PerTask, _) => None,
                (crate::inventory::Execution::Warm, Some(false)) => {
                    Some("per-task: no perl for warm workers".into())
                }
                (crate::inventory::Execution::Warm, _) => Some("warm".into()),
            },
            latency_ms: Some(probe.latency.as_secs_f64() * 1000.0),
            cores: probe.cores,
            load1: probe.load.map(|l| l[0]),
            mem_available_mib: probe.mem_available_kib.map(|k| k / 1024),
            mem_total_mib: probe.mem_total_kib.map(|k| k / 1024),
            slots: host.slots.or(probe.cores),
            gpus: match host.gpus {
                0 => probe.gpus,
                set => Some(set),
            },
        },
        Err(e) => HostRow {
            name: host.name.clone(),
            address,
            status: format!("error: {e}"),
            latency_ms: None,
            cores: None,
            load1: None,
            mem_available_mib: None,
            mem_total_mib: None,
            slots: host.slots,
            gpus: (host.gpus > 0).then_some(host.gpus),
            execution: None,
        },
    }
}
