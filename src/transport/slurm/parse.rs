//! Pure parsing of what Slurm prints: `squeue -h -o` lines, `scontrol show job -d` and
//! `scontrol show node` records, srun's final `task 0:` status line, and the `[slurm]`
//! table of hosts.toml turned into sbatch arguments.

use serde::{Deserialize, Serialize};

use crate::nodeset;
use crate::transport::ExitStatus;

/// The `[slurm]` table: what to ask Slurm for. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub nodes: Option<u32>,
    /// `--time`, in any form Slurm accepts (`10`, `1:00:00`, `1-0`).
    pub time: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// CPUs asked on each node; each is one dts slot.
    pub cpus_per_node: Option<u32>,
    /// CPUs each task needs: whole nodes are asked and a node's slots are its CPUs / this.
    pub cpus_per_task: Option<u32>,
    pub constraint: Option<String>,
    /// Passed to sbatch as they are, after the others.
    #[serde(default)]
    pub sbatch_args: Vec<String>,
    /// `"warm"` (the default: long-lived worker steps fed task after task) or
    /// `"per-task"` (one srun step per task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
}

impl PoolSpec {
    /// Whether each task gets its own srun step.
    pub fn per_task(&self) -> bool {
        self.execution.as_deref() == Some("per-task")
    }
}

/// The file's `[slurm]` table alone; the rest of the file is the inventory's business.
#[derive(Deserialize)]
struct FileWithSlurm {
    slurm: Option<toml::Value>,
}

/// The `[slurm]` table of an inventory file, if it has one. Errors are toml's, which
/// name the line and column.
pub fn pool_spec(text: &str) -> Result<Option<PoolSpec>, String> {
    let file: FileWithSlurm = toml::from_str(text).map_err(|e| e.to_string())?;
    let Some(table) = file.slurm else {
        return Ok(None);
    };
    let spec: PoolSpec = table.try_into().map_err(|e| format!("[slurm]: {e}"))?;
    if spec.cpus_per_node.is_some() && spec.cpus_per_task.is_some() {
        return Err("[slurm]: set cpus_per_node or cpus_per_task, not both".into());
    }
    if let Some(execution) = spec
        .execution
        .as_deref()
        .filter(|e| !["warm", "per-task"].contains(e))
    {
        return Err(format!(
            "[slurm]: execution = \"{execution}\": expected \"warm\" or \"per-task\""
        ));
    }
    if spec.nodes == Some(0) || spec.cpus_per_node == Some(0) || spec.cpus_per_task == Some(0) {
        return Err("[slurm]: nodes, cpus_per_node and cpus_per_task must be at least 1".into());
    }
    Ok(Some(spec))
}

/// sbatch's arguments for the placeholder job holding the allocation.
pub fn sbatch_args(spec: &PoolSpec, name: &str) -> Vec<String> {
    let mut args = vec![
        "--parsable".to_string(),
        format!("--job-name={name}"),
        "--output=/dev/null".into(),
        format!("--nodes={}", spec.nodes.unwrap_or(1)),
        // A failing node is a host failure for dts, not the end of the allocation.
        "--no-kill".into(),
    ];
    let optional = [
        ("--time", &spec.time),
        ("--partition", &spec.partition),
        ("--account", &spec.account),
        ("--qos", &spec.qos),
        ("--constraint", &spec.constraint),
    ];
    for (flag, value) in optional {
        if let Some(value) = value {
            args.push(format!("{flag}={value}"));
        }
    }
    match spec.cpus_per_node {
        Some(cpus) => {
            args.push("--ntasks-per-node=1".into());
            args.push(format!("--cpus-per-task={cpus}"));
        }
        None => args.push("--exclusive".into()),
    }
    args.extend(spec.sbatch_args.iter().cloned());
    args.push("--wrap=exec sleep infinity".into());
    args
}

/// One `squeue -h -o '%T|%r|%N'` line: the job's state, its reason and its nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLine {
    pub state: String,
    pub reason: String,
    pub nodes: String,
}

/// The squeue format matching [`job_line`].
pub const SQUEUE_FORMAT: &str = "%T|%r|%N";

pub fn job_line(text: &str) -> Option<JobLine> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let mut fields = line.trim().splitn(3, '|');
    Some(JobLine {
        state: fields.next()?.to_string(),
        reason: fields.next()?.to_string(),
        nodes: fields.next().unwrap_or("").to_string(),
    })
}

/// Whether a pending reason means the job can never start as asked (more nodes than the
/// partition has, a time over its limit, an unknown account or constraint): waiting is
/// pointless. Reasons such as `Resources` or `Priority` only mean "not yet".
pub fn never_runs(reason: &str) -> bool {
    const NEVER: [&str; 7] = [
        "PartitionConfig",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
        "BadConstraints",
        "InvalidAccount",
        "InvalidQOS",
        "JobLaunchFailure",
    ];
    NEVER.contains(&reason) || reason.starts_with("QOSMax") || reason.starts_with("AssocMax")
}

/// Each node of a running job with the CPUs it holds there, from `scontrol show job -d`
/// (`Nodes=n[1-2] CPU_IDs=0-1 Mem=0 ...` lines).
pub fn job_cpus(text: &str) -> Result<Vec<(String, u32)>, String> {
    let mut nodes = Vec::new();
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("Nodes=") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let names = words.next().unwrap_or("");
        let cpus = words
            .find_map(|w| w.strip_prefix("CPU_IDs="))
            .map(cpu_count)
            .unwrap_or(1);
        for name in nodeset::expand(names).map_err(|e| format!("node list {names}: {e}"))? {
            nodes.push((name, cpus));
        }
    }
    if nodes.is_empty() {
        return Err("scontrol show job -d lists no nodes".into());
    }
    Ok(nodes)
}

/// How many CPUs `0-1,4` names.
fn cpu_count(ids: &str) -> u32 {
    ids.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum::<u32>()
        .max(1)
}

/// What `scontrol show node NODE` says of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// `State=`, e.g. `MIXED`, `IDLE+DRAIN`, `DOWN*`.
    pub state: String,
    pub cpu_load: Option<f64>,
    pub cpus: Option<u32>,
    pub free_mem_mib: Option<u64>,
    pub real_mem_mib: Option<u64>,
}

impl NodeInfo {
    /// DOWN, DRAIN(ING/ED), FAIL or not responding (`*`): the node takes no more tasks.
    pub fn unusable(&self) -> bool {
        let state = self.state.to_ascii_uppercase();
        state.ends_with('*')
            || ["DOWN", "DRAIN", "FAIL", "FUTURE", "POWER"]
                .iter()
                .any(|bad| state.contains(bad))
    }

    /// The node as a probe report: its CPULoad as every load average.
    pub fn probe(&self, latency: std::time::Duration) -> crate::probe::ProbeReport {
        let load = self.cpu_load.unwrap_or(0.0);
        crate::probe::ProbeReport {
            shell: "/bin/sh".into(),
            os: "Linux".into(),
            cores: self.cpus,
            load: Some([load; 3]),
            mem_total_kib: self.real_mem_mib.map(|m| m * 1024),
            mem_available_kib: self.free_mem_mib.map(|m| m * 1024),
            latency,
            gpus: None,
            perl: None,
        }
    }
}

pub fn node_info(text: &str) -> Option<NodeInfo> {
    let mut info = NodeInfo {
        state: String::new(),
        cpu_load: None,
        cpus: None,
        free_mem_mib: None,
        real_mem_mib: None,
    };
    for word in text.split_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        match key {
            "State" => info.state = value.to_string(),
            "CPULoad" => info.cpu_load = value.parse().ok(),
            "CPUTot" => info.cpus = value.parse().ok(),
            "FreeMem" => info.free_mem_mib = value.parse().ok(),
            "RealMemory" => info.real_mem_mib = value.parse().ok(),
            _ => {}
        }
    }
    (!info.state.is_empty()).then_some(info)
}

/// What `sbatch --test-only` predicts for a request, from its line
/// `sbatch: Job 1 to start at 2026-12-02T00:41:49 using 3 processors on nodes n[1-3] in
/// partition debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    pub start: String,
    pub processors: u32,
    pub nodes: Vec<String>,
    pub partition: String,
}

pub fn test_only_line(text: &str) -> Option<Prediction> {
    text.lines().find_map(|line| {
        let rest = line.split_once(" to start at ")?.1;
        let (start, rest) = rest.split_once(" using ")?;
        let (processors, rest) = rest.split_once(" processors on nodes ")?;
        let (nodes, partition) = rest.split_once(" in partition ")?;
        Some(Prediction {
            start: start.to_string(),
            processors: processors.trim().parse().ok()?,
            nodes: nodeset::expand(nodes.trim()).ok()?,
            partition: partition.trim().to_string(),
        })
    })
}

/// srun's own line for how task 0 ended: `srun: error: NODE: task 0: Killed` or
/// `... task 0: Exited with exit code 7`. srun exits 128+N for a task killed by signal N,
/// as for `exit 128+N`; this line tells them apart.
pub fn srun_status_line(line: &str) -> Option<ExitStatus> {
    let rest = line.trim_end().strip_prefix("srun: error: ")?;
    let (_, what) = rest.split_once(": task 0: ")?;
    if let Some(code) = what.strip_prefix("Exited with exit code ") {
        return code.trim().parse().ok().map(ExitStatus::Code);
    }
    let what = what.trim_end_matches(" (core dumped)");
    signal_by_description(what).map(ExitStatus::Signal)
}

/// `TERM` for `Terminated`: the inverse of strsignal(3), which srun uses.
fn signal_by_description(text: &str) -> Option<String> {
    (1..=31).find_map(|sig| {
        // SAFETY: strsignal returns a pointer to a static or thread-local string.
        let description = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(sig)) };
        (description.to_string_lossy() == text).then(|| crate::transport::local::signal_name(sig))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_is_warm_or_per_task() {
        let spec = |text: &str| pool_spec(&format!("[slurm]\n{text}"));
        assert!(!spec("").unwrap().unwrap().per_task());
        assert!(
            spec("execution = \"per-task\"")
                .unwrap()
                .unwrap()
                .per_task()
        );
        let err = spec("execution = \"hot\"").unwrap_err();
        assert!(err.contains("expected \"warm\" or \"per-task\""), "{err}");
    }

    #[test]
    fn sbatch_test_only_names_the_start_the_processors_and_the_nodes() {
        let text = "sbatch: Job 1 to start at 2026-12-02T00:41:49 using 6 processors on nodes n[1-3] in partition debug\n";
        assert_eq!(
            test_only_line(text),
            Some(Prediction {
                start: "2026-12-02T00:41:49".into(),
                processors: 6,
                nodes: vec!["n1".into(), "n2".into(), "n3".into()],
                partition: "debug".into(),
            })
        );
        assert_eq!(
            test_only_line("allocation failure: Requested node configuration is not available"),
            None
        );
    }

    #[test]
    fn a_three_line_table_becomes_sbatch_arguments() {
        let spec = pool_spec("[slurm]\nnodes = 3\ntime = \"10\"\ncpus_per_node = 2\n")
            .unwrap()
            .unwrap();
        let args = sbatch_args(&spec, "dts-x");
        assert_eq!(
            args,
            [
                "--parsable",
                "--job-name=dts-x",
                "--output=/dev/null",
                "--nodes=3",
                "--no-kill",
                "--time=10",
                "--ntasks-per-node=1",
                "--cpus-per-task=2",
                "--wrap=exec sleep infinity"
            ]
        );
    }

    #[test]
    fn no_table_is_none_and_unknown_keys_are_errors() {
        assert_eq!(pool_spec("[defaults]\nuser = \"a\"\n").unwrap(), None);
        let err = pool_spec("[slurm]\nnode = 3\n").unwrap_err();
        assert!(err.contains("node"), "{err}");
        let err = pool_spec("[slurm]\ncpus_per_node = 1\ncpus_per_task = 1\n").unwrap_err();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn squeue_lines_and_job_cpus() {
        let line = job_line("PENDING|Resources|\n").unwrap();
        assert_eq!(
            (line.state.as_str(), line.reason.as_str()),
            ("PENDING", "Resources")
        );
        let text = "JobId=4 JobName=x\n     Nodes=n[1-2] CPU_IDs=0-1 Mem=0 GRES=\n     Nodes=n3 CPU_IDs=0 Mem=0 GRES=\n";
        assert_eq!(
            job_cpus(text).unwrap(),
            [("n1".into(), 2), ("n2".into(), 2), ("n3".into(), 1)]
        );
    }

    #[test]
    fn limits_never_run_but_busy_nodes_only_wait() {
        assert!(never_runs("PartitionConfig"));
        assert!(never_runs("QOSMaxNodePerJobLimit"));
        assert!(!never_runs("Resources"));
        assert!(!never_runs("Priority"));
        assert!(!never_runs("None"));
    }

    #[test]
    fn node_records_and_unusable_states() {
        let text = "NodeName=n2 Arch=x86_64\n   CPUAlloc=1 CPUEfctv=2 CPUTot=2 CPULoad=0.05\n   RealMemory=1000 AllocMem=0 FreeMem=23426\n   State=MIXED ThreadsPerCore=1\n";
        let info = node_info(text).unwrap();
        assert_eq!(info.cpu_load, Some(0.05));
        assert_eq!(info.free_mem_mib, Some(23426));
        assert!(!info.unusable());
        for state in ["DOWN", "MIXED+DRAIN", "IDLE*", "DOWN*+DRAIN"] {
            let info = NodeInfo {
                state: state.into(),
                ..info.clone()
            };
            assert!(info.unusable(), "{state}");
        }
    }

    #[test]
    fn srun_status_lines_tell_signals_from_codes() {
        assert_eq!(
            srun_status_line("srun: error: n2: task 0: Exited with exit code 137"),
            Some(ExitStatus::Code(137))
        );
        assert_eq!(
            srun_status_line("srun: error: n2: task 0: Killed"),
            Some(ExitStatus::Signal("KILL".into()))
        );
        assert_eq!(
            srun_status_line("srun: error: n2: task 0: Terminated\n"),
            Some(ExitStatus::Signal("TERM".into()))
        );
        assert_eq!(
            srun_status_line("srun: error: n1: task 0: Segmentation fault (core dumped)"),
            Some(ExitStatus::Signal("SEGV".into()))
        );
        assert_eq!(srun_status_line("hello"), None);
    }
}
