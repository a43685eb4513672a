//! The allocation: a placeholder batch job (`sbatch --parsable --wrap 'exec sleep
//! infinity'`) that holds the nodes while dts runs steps in it, released by `scancel` when
//! the [`Allocation`] is dropped (end of run, error, Ctrl-C) or by `dts cancel`/`dts retry`
//! for a coordinator that crashed. Its time limit bounds what a crash can leak.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::parse::{self, PoolSpec};

/// Why Slurm gave no allocation.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// sbatch refused the request (unsatisfiable, bad account, ...): its own words.
    #[error("slurm refused the allocation: {0}")]
    Refused(String),
    /// The job ended before it ran (cancelled, failed, timed out while pending).
    #[error("slurm job {job} ended before it started: {state} ({reason})")]
    Ended {
        job: u64,
        state: String,
        reason: String,
    },
    #[error("interrupted while waiting for slurm job {0}; it was cancelled")]
    Interrupted(u64),
    /// A Slurm command could not run or printed what dts cannot read.
    #[error("{0}")]
    Command(String),
}

/// Where the nodes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pool {
    /// A `[slurm]` table: dts asks for its own allocation.
    Request(PoolSpec),
    /// dts runs inside a Slurm job (`SLURM_JOB_ID`): its nodes, which dts does not release.
    Inside(u64),
}

/// A running allocation: its job id and each node with the CPUs dts may use there.
#[derive(Debug)]
pub struct Allocation {
    pub job: u64,
    pub nodes: Vec<(String, u32)>,
    /// Whether dropping this cancels the job (dts made it).
    owned: bool,
}

impl Drop for Allocation {
    fn drop(&mut self) {
        if self.owned {
            release(self.job);
        }
    }
}

impl Allocation {
    /// Gives the job to a detached coordinator, which releases it when its run ends
    /// (`dts cancel` and `dts retry` release it if that coordinator dies).
    pub fn hand_over(mut self) {
        self.owned = false;
    }
}

/// How long [`release`] waits for Slurm to finish a cancelled job.
const RELEASE_WAIT: Duration = Duration::from_secs(20);

/// Cancels job `job` and its steps and waits (bounded) until squeue says it has ended, so
/// that nothing of it runs once dts has exited; quiet when it is already gone.
pub fn release(job: u64) {
    let cancelled = Command::new("scancel")
        .arg(job.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !cancelled.is_ok_and(|s| s.success()) {
        return;
    }
    let deadline = Instant::now() + RELEASE_WAIT;
    let alive = |line: &parse::JobLine| {
        [
            "PENDING",
            "CONFIGURING",
            "RUNNING",
            "SUSPENDED",
            "COMPLETING",
        ]
        .contains(&line.state.as_str())
    };
    while Instant::now() < deadline && matches!(squeue(job), Ok(Some(line)) if alive(&line)) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Gets the pool's allocation: submits and waits for a requested one (telling `note`
/// each new pending reason), or reads the one dts runs inside.
pub fn acquire(
    pool: &Pool,
    name: &str,
    note: &mut dyn FnMut(&str),
) -> Result<Allocation, SlurmError> {
    match pool {
        Pool::Inside(job) => Ok(Allocation {
            job: *job,
            nodes: nodes_of(*job)?,
            owned: false,
        }),
        Pool::Request(spec) => {
            let job = submit(spec, name)?;
            // Owned from here: an error or an interrupt below releases it.
            let mut allocation = Allocation {
                job,
                nodes: Vec::new(),
                owned: true,
            };
            wait_running(job, note)?;
            allocation.nodes = nodes_of(job)?;
            if let Some(cpus) = spec.cpus_per_task {
                for (_, slots) in &mut allocation.nodes {
                    *slots = (*slots / cpus).max(1);
                }
            }
            Ok(allocation)
        }
    }
}

/// Where and when Slurm would run the request (`sbatch --test-only`, nothing submitted),
/// with each node's slots as an allocation would give them: the processors spread evenly,
/// divided by `cpus_per_task`.
pub fn predict(
    spec: &PoolSpec,
    name: &str,
) -> Result<(parse::Prediction, Vec<(String, u32)>), SlurmError> {
    let mut args = parse::sbatch_args(spec, name);
    args.retain(|a| a != "--parsable");
    let output = Command::new("sbatch")
        .arg("--test-only")
        .args(args)
        .output()
        .map_err(|e| SlurmError::Command(format!("cannot run sbatch: {e}")))?;
    let text = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(SlurmError::Refused(text.trim().to_string()));
    }
    let prediction = parse::test_only_line(&text).ok_or_else(|| {
        SlurmError::Command(format!("sbatch --test-only printed {:?}", text.trim()))
    })?;
    let per_node = prediction.processors / (prediction.nodes.len() as u32).max(1);
    let slots = (per_node / spec.cpus_per_task.unwrap_or(1)).max(1);
    let nodes = prediction
        .nodes
        .iter()
        .map(|n| (n.clone(), slots))
        .collect();
    Ok((prediction, nodes))
}

/// A node's load and memory from `scontrol show node`, as a probe of it.
pub fn node_probe(node: &str) -> Result<crate::probe::ProbeReport, String> {
    let started = Instant::now();
    let output = Command::new("scontrol")
        .args(["show", "node", node])
        .output()
        .map_err(|e| format!("cannot run scontrol: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let info =
        parse::node_info(&text).ok_or_else(|| format!("scontrol show node {node}: no State"))?;
    Ok(info.probe(started.elapsed()))
}

fn submit(spec: &PoolSpec, name: &str) -> Result<u64, SlurmError> {
    let output = Command::new("sbatch")
        .args(parse::sbatch_args(spec, name))
        .output()
        .map_err(|e| SlurmError::Command(format!("cannot run sbatch: {e}")))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        return Err(SlurmError::Refused(text.trim().to_string()));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    // `--parsable` prints `JOB` or `JOB;CLUSTER`.
    let id = text.trim().split(';').next().unwrap_or("");
    id.parse()
        .map_err(|_| SlurmError::Command(format!("sbatch printed no job id: {text:?}")))
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches INT and TERM while waiting, so that the pending job is cancelled, and puts the
/// default dispositions back when dropped (the run installs its own handling).
struct CatchInterrupts;

impl CatchInterrupts {
    fn install() -> CatchInterrupts {
        INTERRUPTED.store(false, Ordering::SeqCst);
        let handler = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
        }
        CatchInterrupts
    }
}

impl Drop for CatchInterrupts {
    fn drop(&mut self) {
        // SAFETY: restoring the default disposition has no preconditions.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
        }
    }
}

/// Polls squeue until the job runs, telling each new pending reason.
fn wait_running(job: u64, note: &mut dyn FnMut(&str)) -> Result<(), SlurmError> {
    let _catch = CatchInterrupts::install();
    let mut last_reason = String::new();
    let started = Instant::now();
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(SlurmError::Interrupted(job));
        }
        match squeue(job)? {
            Some(line) if line.state == "RUNNING" => return Ok(()),
            Some(line) if line.state == "PENDING" && parse::never_runs(&line.reason) => {
                return Err(SlurmError::Refused(format!(
                    "slurm job {job} can never start as asked (pending reason {}); it was cancelled",
                    line.reason
                )));
            }
            Some(line) if line.state == "PENDING" || line.state == "CONFIGURING" => {
                if line.reason != last_reason {
                    // Slurm says `None` before it has looked at a new job.
                    let reason = match line.reason.as_str() {
                        "None" | "" => String::new(),
                        reason => format!(" ({reason})"),
                    };
                    note(&format!(
                        "slurm job {job} {}{reason} after {:.0?}",
                        line.state.to_lowercase(),
                        started.elapsed()
                    ));
                    last_reason = line.reason;
                }
            }
            Some(line) => {
                return Err(SlurmError::Ended {
                    job,
                    state: line.state,
                    reason: line.reason,
                });
            }
            None => {
                return Err(SlurmError::Ended {
                    job,
                    state: "GONE".into(),
                    reason: "no longer in squeue".into(),
                });
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The job's squeue line, `None` once squeue no longer knows it.
pub fn squeue(job: u64) -> Result<Option<parse::JobLine>, SlurmError> {
    let output = Command::new("squeue")
        .args(["-h", "-j", &job.to_string(), "-o", parse::SQUEUE_FORMAT])
        .output()
        .map_err(|e| SlurmError::Command(format!("cannot run squeue: {e}")))?;
    // squeue fails with "Invalid job id specified" for a job that is gone.
    if !output.status.success() {
        return Ok(None);
    }
    Ok(parse::job_line(&String::from_utf8_lossy(&output.stdout)))
}

fn nodes_of(job: u64) -> Result<Vec<(String, u32)>, SlurmError> {
    let output = Command::new("scontrol")
        .args(["show", "job", "-d", &job.to_string()])
        .output()
        .map_err(|e| SlurmError::Command(format!("cannot run scontrol: {e}")))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        return Err(SlurmError::Command(format!(
            "scontrol show job {job}: {}",
            text.trim()
        )));
    }
    parse::job_cpus(&String::from_utf8_lossy(&output.stdout)).map_err(SlurmError::Command)
}
