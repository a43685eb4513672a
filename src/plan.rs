//! `dts submit --dry-run`: the plan a run would follow, from the real placement code driven
//! by the simulator with every task taking the same time. Pure: probes come in as data.

use serde::Serialize;

use crate::inventory::Host;
use crate::job::JobSpec;
use crate::job::matrix::Params;
use crate::placement;
use crate::placement::gate;
use crate::probe::ProbeReport;
use crate::report::document::compress_stepped;
use crate::simulate::{self, SimHost, SimTask};

/// What is known about a host when planning.
#[derive(Debug, Clone)]
pub struct PlanHost<'a> {
    pub host: &'a Host,
    /// The probe, or why it failed; `None` when probing was skipped.
    pub probe: Option<Result<ProbeReport, String>>,
}

/// One task's planned host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedTask {
    pub index: u64,
    pub item: String,
    pub key: String,
    pub host: String,
    /// The task's matrix parameters (none without a matrix).
    #[serde(skip_serializing_if = "Params::is_empty")]
    pub params: Params,
}

/// One host's share of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedHost {
    pub name: String,
    pub tasks: usize,
    pub slots: u32,
    pub weight: f64,
    /// Array indexes of its tasks, compressed as Slurm writes them (`1-97:4,100`).
    pub indexes: String,
    /// Why the host is left out (unreachable), if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub algorithm: String,
    /// Tasks in the job; more than `plan` holds when no host could take them.
    pub total_tasks: usize,
    pub plan: Vec<PlannedTask>,
    pub hosts: Vec<PlannedHost>,
    /// Assumptions the reader should know about.
    pub notes: Vec<String>,
}

/// Slots a host would run with: `--slots`, the inventory, the probed cores, else 1.
fn slots_of(job: &JobSpec, h: &PlanHost<'_>) -> (u32, bool) {
    let probed = h
        .probe
        .as_ref()
        .and_then(|p| p.as_ref().ok())
        .and_then(|p| p.cores);
    match job.slots.or(h.host.slots).or(probed) {
        Some(slots) => (slots, false),
        None => (1, true),
    }
}

/// Hosts the probe finds shut by `--load` / `--memfree`: a run starts nothing on them
/// until a later probe finds them open (the plan below still counts them).
fn gated_note(job: &JobSpec, hosts: &[PlanHost<'_>]) -> Option<String> {
    let gated: Vec<String> = hosts
        .iter()
        .filter_map(|h| {
            let probe = h.probe.as_ref()?.as_ref().ok()?;
            let probed = gate::Probed {
                background: probe.load.map_or(0.0, |l| l[0]),
                cores: probe.cores,
                mem_available_kib: probe.mem_available_kib,
            };
            let why = gate::check(&job.gates, &probed)?;
            Some(format!("{} ({why})", h.host.name))
        })
        .collect();
    (!gated.is_empty()).then(|| {
        format!(
            "gated now, so a run would start nothing there until a probe finds them open: {}",
            gated.join(", ")
        )
    })
}

/// Plans `job` over `hosts`.
pub fn build(job: &JobSpec, hosts: &[PlanHost<'_>], seed: u64, epsilon: f64) -> Plan {
    let mut notes = vec![note(job.algorithm)];
    let mut planned_hosts = Vec::new();
    let mut sim_hosts = Vec::new();
    let mut sim_index = Vec::new();
    let mut guessed_slots = false;
    for (i, h) in hosts.iter().enumerate() {
        let (slots, guessed) = slots_of(job, h);
        let excluded = match &h.probe {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        };
        if excluded.is_none() {
            guessed_slots |= guessed;
            let load = h
                .probe
                .as_ref()
                .and_then(|p| p.as_ref().ok())
                .and_then(|p| p.load)
                .map_or(0.0, |l| l[0]);
            sim_index.push(i);
            sim_hosts.push(SimHost {
                name: h.host.name.clone(),
                slots,
                speed: 1.0,
                weight: h.host.weight,
                load,
            });
        }
        planned_hosts.push(PlannedHost {
            name: h.host.name.clone(),
            tasks: 0,
            slots,
            weight: h.host.weight,
            indexes: String::new(),
            excluded,
        });
    }
    notes.extend(gated_note(job, hosts));
    if guessed_slots {
        notes.push("hosts without `slots` and without a probe are assumed to have 1 slot".into());
    }
    let keys: Vec<Vec<u8>> = job.tasks.iter().map(|t| job.key_of(t)).collect();
    let sim_tasks: Vec<SimTask> = keys
        .iter()
        .map(|k| SimTask {
            work: 1.0,
            key: placement::key_hash(k),
        })
        .collect();
    let mut plan = Vec::with_capacity(job.tasks.len());
    let mut indexes: Vec<Vec<u64>> = vec![Vec::new(); hosts.len()];
    if !sim_hosts.is_empty() {
        let placed = simulate::run(job.algorithm, &sim_hosts, &sim_tasks, seed, epsilon);
        for ((task, key), p) in job.tasks.iter().zip(&keys).zip(placed) {
            let host = sim_index[p.host];
            planned_hosts[host].tasks += 1;
            indexes[host].push(task.index);
            plan.push(PlannedTask {
                index: task.index,
                item: String::from_utf8_lossy(&task.item).into_owned(),
                key: String::from_utf8_lossy(key).into_owned(),
                host: hosts[host].host.name.clone(),
                params: job.params_of(task.seq),
            });
        }
    }
    for (planned, indexes) in planned_hosts.iter_mut().zip(indexes) {
        planned.indexes = compress_stepped(indexes);
    }
    Plan {
        algorithm: job.algorithm.name().to_string(),
        total_tasks: job.tasks.len(),
        plan,
        hosts: planned_hosts,
        notes,
    }
}

fn note(algorithm: placement::Algorithm) -> String {
    use placement::Algorithm::*;
    match algorithm {
        ConsistentHash => "consistent-hash: each key goes to the same host on every run while the host set is \
                           unchanged; the plan assumes tasks take equal time, and at the end of a real run idle \
                           hosts may take over queued tasks"
            .into(),
        other => format!(
            "{other} decides as slots free during the run: this plan is what it does if every task takes the \
             same time"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{self, Env};
    use crate::job::{self, Overrides};

    fn job(algo: &str, n: u32) -> JobSpec {
        let overrides = Overrides {
            array: Some(format!("1-{n}")),
            algorithm: Some(algo.into()),
            command: vec!["true".into()],
            ..Overrides::default()
        };
        job::build(&overrides, &mut std::io::empty()).unwrap()
    }

    fn hosts() -> Vec<Host> {
        let text = "[defaults]\nuser = \"u\"\nslots = 2\n[[host]]\nname = \"n[1-3]\"\n";
        inventory::parse(std::path::Path::new("hosts.toml"), text, &Env::default())
            .unwrap()
            .hosts
    }

    #[test]
    fn round_robin_plan_spreads_evenly_and_skips_unreachable_hosts() {
        let hosts = hosts();
        let plan_hosts: Vec<PlanHost> = hosts
            .iter()
            .enumerate()
            .map(|(i, host)| PlanHost {
                host,
                probe: (i == 2).then(|| Err("connection refused".to_string())),
            })
            .collect();
        let plan = build(&job("round-robin", 10), &plan_hosts, 0, 0.25);
        let tasks: Vec<usize> = plan.hosts.iter().map(|h| h.tasks).collect();
        assert_eq!(tasks, vec![5, 5, 0]);
        assert_eq!(
            plan.hosts[2].excluded.as_deref(),
            Some("connection refused")
        );
        assert_eq!(plan.plan.len(), 10);
        assert_eq!(plan.plan[0].host, "n1");
        assert_eq!(plan.plan[1].host, "n2");
        let indexes: Vec<&str> = plan.hosts.iter().map(|h| h.indexes.as_str()).collect();
        assert_eq!(indexes, ["1-9:2", "2-10:2", ""]);
    }

    #[test]
    fn plan_with_every_host_unreachable_keeps_the_task_count() {
        let hosts = hosts();
        let plan_hosts: Vec<PlanHost> = hosts
            .iter()
            .map(|host| PlanHost {
                host,
                probe: Some(Err("connection refused".to_string())),
            })
            .collect();
        let plan = build(&job("round-robin", 4), &plan_hosts, 0, 0.25);
        assert_eq!(plan.total_tasks, 4);
        assert!(plan.plan.is_empty());
    }

    #[test]
    fn consistent_hash_plan_is_stable() {
        let hosts = hosts();
        let plan_hosts: Vec<PlanHost> = hosts
            .iter()
            .map(|host| PlanHost { host, probe: None })
            .collect();
        let a = build(&job("consistent-hash", 50), &plan_hosts, 1, 0.25);
        let b = build(&job("consistent-hash", 50), &plan_hosts, 2, 0.25);
        assert_eq!(a.plan, b.plan);
        assert!(a.notes[0].starts_with("consistent-hash"));
    }

    #[test]
    fn plan_names_the_hosts_a_gate_shuts_now() {
        let hosts = hosts();
        let probe = |mem_kib: u64| ProbeReport {
            shell: "/bin/sh".into(),
            os: "Linux".into(),
            cores: Some(2),
            load: Some([0.0; 3]),
            mem_total_kib: Some(mem_kib),
            mem_available_kib: Some(mem_kib),
            latency: std::time::Duration::ZERO,
            gpus: None,
            perl: None,
        };
        let plan_hosts: Vec<PlanHost> = hosts
            .iter()
            .enumerate()
            .map(|(i, host)| PlanHost {
                host,
                probe: Some(Ok(probe(if i == 1 { 1 << 20 } else { 4 << 20 }))),
            })
            .collect();
        let mut job = job("round-robin", 4);
        job.gates.memfree = Some(2 << 30);
        let plan = build(&job, &plan_hosts, 0, 0.25);
        assert!(
            plan.notes.contains(
                &"gated now, so a run would start nothing there until a probe finds them open: \
                  n2 (1.0G available < --memfree 2.0G)"
                    .to_string()
            ),
            "{:?}",
            plan.notes
        );
        job.gates = Default::default();
        let plan = build(&job, &plan_hosts, 0, 0.25);
        assert!(!plan.notes.iter().any(|n| n.starts_with("gated")));
    }
}
