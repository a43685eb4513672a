//! The connection to one node of an allocation: each launch is an `srun` step pinned to the
//! node (`srun --jobid J -N1 -n1 --overlap -w NODE /bin/sh -c SCRIPT`), whose stdin is the
//! wrapper's control line, as a pipe is for local tasks. Closing it makes the wrapper kill
//! its process group; srun itself is stopped with TERM (a single INT does not stop it).
//!
//! srun exits 128+N both for a task killed by signal N and for `exit 128+N`; its own last
//! line `srun: error: NODE: task 0: Killed` tells them apart, so such lines are taken off
//! the task's stderr and read ([`super::parse::srun_status_line`]).
//!
//! A monitor polls `scontrol show node` (load and free memory for the probe) and the job:
//! a node DOWN or DRAIN is a transient host failure (its tasks are requeued elsewhere and
//! the node is tried again later); a job that is gone is every node failing for good.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::oneshot;

use super::parse;
use super::worker::{Ended, Worker};
use crate::probe::ProbeReport;
use crate::transport::{
    Command, ConnHandle, ConnId, Event, EventSender, ExitStatus, HostError, LaunchId, Stream,
};

/// How often the monitor asks Slurm about the node and the job.
const MONITOR_EVERY: Duration = Duration::from_secs(1);
/// After its control line is closed, how long a step may take before srun gets TERM.
pub(super) const KILL_BACKSTOP: Duration = Duration::from_secs(30);

/// Kill switches of running steps.
type Running = Arc<Mutex<HashMap<LaunchId, oneshot::Sender<()>>>>;
/// Warm workers waiting for a task.
type Idle = Arc<Mutex<Vec<Worker>>>;

/// The dispatcher's handle on one node.
pub struct SlurmConn {
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
}

impl ConnHandle for SlurmConn {
    fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }
}

/// Where steps go, and how a step that ended abnormally tells the connection that the
/// node or the job is gone.
#[derive(Debug, Clone)]
struct Target {
    job: u64,
    node: String,
    lost: tokio::sync::mpsc::UnboundedSender<HostError>,
    /// Set once the connection reported itself down: later exits are not reported (their
    /// launches are lost with the connection and requeued).
    down: Arc<std::sync::atomic::AtomicBool>,
    /// Tasks go to long-lived worker steps ([`super::worker`]) rather than a step each;
    /// cleared when a worker cannot run on the node.
    warm: Arc<std::sync::atomic::AtomicBool>,
}

/// Starts the node's connection on the current tokio runtime: up once Slurm says the node
/// is usable and the job runs.
pub fn spawn(
    conn: ConnId,
    job: u64,
    node: String,
    slots: u32,
    warm: bool,
    events: EventSender,
) -> SlurmConn {
    let (commands, inbox) = tokio::sync::mpsc::unbounded_channel();
    let (lost, lost_rx) = tokio::sync::mpsc::unbounded_channel();
    let down = Arc::default();
    let target = Target {
        job,
        node,
        lost,
        down,
        warm: Arc::new(std::sync::atomic::AtomicBool::new(warm)),
    };
    tokio::spawn(serve(conn, target, slots, events, inbox, lost_rx));
    SlurmConn { commands }
}

async fn serve(
    conn: ConnId,
    target: Target,
    slots: u32,
    events: EventSender,
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<Command>,
    mut lost: tokio::sync::mpsc::UnboundedReceiver<HostError>,
) {
    let probe = match check(&target).await {
        Ok(probe) => probe,
        Err(error) => {
            let _ = events.send(Event::Down { conn, error }).await;
            return;
        }
    };
    let up = Event::Up {
        conn,
        capacity: slots,
        probe,
    };
    if events.send(up).await.is_err() {
        return;
    }
    let running: Running = Arc::default();
    let idle: Idle = Arc::default();
    let mut monitor = tokio::time::interval(MONITOR_EVERY);
    monitor.tick().await;
    let failed = loop {
        tokio::select! {
            command = inbox.recv() => match command {
                Some(Command::Launch { id, script, input, .. })
                    if target.warm.load(std::sync::atomic::Ordering::SeqCst) =>
                {
                    launch_warm(&target, id, script, input, &events, &running, &idle).await
                }
                Some(Command::Launch { id, script, input, .. }) => {
                    launch(&target, id, script, input, &events, &running).await
                }
                Some(Command::Kill(id)) => kill(&running, id),
                Some(Command::Probe) => match check(&target).await {
                    Ok(probe) => {
                        let _ = events.send(Event::Probed { conn, probe }).await;
                    }
                    Err(error) => break Some(error),
                },
                Some(Command::Shutdown) | None => break None,
                // Staging is refused with a Slurm pool before a run starts.
                Some(Command::Helper { script, input, reply }) => {
                    // A helper (file staging) is a step of its own on the node.
                    let srun = srun_command(&target, script);
                    tokio::spawn(crate::transport::local::run_helper(srun, input, reply));
                }
            },
            Some(error) = lost.recv() => break Some(error),
            _ = monitor.tick() => {
                if let Err(error) = check(&target).await {
                    break Some(error);
                }
            }
        }
    };
    if failed.is_some() {
        target.down.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let ids: Vec<LaunchId> = running
        .lock()
        .expect("not poisoned")
        .keys()
        .copied()
        .collect();
    for id in ids {
        kill(&running, id);
    }
    let workers: Vec<Worker> = std::mem::take(&mut *idle.lock().expect("not poisoned"));
    for worker in workers {
        worker.stop().await;
    }
    if let Some(error) = failed {
        let _ = events.send(Event::Down { conn, error }).await;
    }
}

/// Asks Slurm whether the job still runs and the node is usable; its load if so.
async fn check(target: &Target) -> Result<ProbeReport, HostError> {
    let started = Instant::now();
    let job = slurm_output(&[
        "squeue",
        "-h",
        "-j",
        &target.job.to_string(),
        "-o",
        parse::SQUEUE_FORMAT,
    ])
    .await;
    let line = job.as_deref().ok().and_then(parse::job_line);
    match line {
        Some(line) if line.state == "RUNNING" => {
            // A failed node (DOWN, even briefly) leaves a --no-kill job for good.
            let nodes = crate::nodeset::expand(&line.nodes).unwrap_or_default();
            if !nodes.contains(&target.node) {
                return Err(HostError::permanent(format!(
                    "slurm node {} left allocation {} (it went DOWN or failed)",
                    target.node, target.job
                )));
            }
        }
        other => {
            let state = other.map_or_else(|| "gone".into(), |l| l.state);
            return Err(HostError::permanent(format!(
                "slurm allocation {} lost ({state}): dts retry runs what is left in a new one",
                target.job
            )));
        }
    }
    let text = slurm_output(&["scontrol", "show", "node", &target.node])
        .await
        .map_err(HostError::transient)?;
    let info = parse::node_info(&text).ok_or_else(|| {
        HostError::transient(format!("scontrol show node {}: no State", target.node))
    })?;
    if info.unusable() {
        return Err(HostError::transient(format!(
            "slurm node {} is {}",
            target.node, info.state
        )));
    }
    Ok(info.probe(started.elapsed()))
}

async fn slurm_output(argv: &[&str]) -> Result<String, String> {
    let output = tokio::process::Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{}: {}", argv.join(" "), text.trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn kill(running: &Running, id: LaunchId) {
    if let Some(switch) = running.lock().expect("not poisoned").remove(&id) {
        let _ = switch.send(());
    }
}

/// The step's command: srun with the job's and the node's names, then the wrapper.
fn srun_command(target: &Target, script: String) -> tokio::process::Command {
    let mut command = srun_step(target);
    command.args(["/bin/sh", "-c"]).arg(script);
    command
}

/// srun for one step on the node, without the step's program.
fn srun_step(target: &Target) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("srun");
    // The job's own SLURM_* variables (dts inside sbatch) would size the step like the job.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("SLURM_") && name != "SLURM_CONF" {
            command.env_remove(&*name);
        }
    }
    command
        .arg(format!("--jobid={}", target.job))
        .args(["--nodes=1", "--ntasks=1", "--overlap", "--quiet"])
        .arg(format!("--nodelist={}", target.node))
        .process_group(0)
        .kill_on_drop(false)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

async fn launch(
    target: &Target,
    id: LaunchId,
    script: String,
    input: Vec<u8>,
    events: &EventSender,
    running: &Running,
) {
    let mut child = match srun_command(target, script).spawn() {
        Ok(child) => child,
        Err(e) => {
            let reason = format!("cannot start srun: {e}");
            let _ = events.send(Event::Refused { id, reason }).await;
            return;
        }
    };
    if !input.is_empty() {
        if let Some(stdin) = child.stdin.as_mut() {
            use tokio::io::AsyncWriteExt;
            // A write error means the step already ended; its exit is reported below.
            let _ = stdin.write_all(&input).await;
        }
    }
    let (switch, killed) = oneshot::channel();
    running.lock().expect("not poisoned").insert(id, switch);
    let at = Instant::now();
    let _ = events.send(Event::Started { id, at }).await;
    let events = events.clone();
    let running = running.clone();
    let target = target.clone();
    tokio::spawn(async move {
        let (status, node_failed) = supervise(id, &mut child, killed, &events).await;
        running.lock().expect("not poisoned").remove(&id);
        // srun exits 0 for a step its node's failure ended: its own line says so.
        let suspect = node_failed || !status.success();
        report_exit(&target, &events, id, status, suspect).await;
    });
}

/// Reports a launch's end. A step killed because its node went down or the job ended is
/// lost with the host, not a failed task: when `suspect`, Slurm is asked first.
async fn report_exit(
    target: &Target,
    events: &EventSender,
    id: LaunchId,
    status: ExitStatus,
    suspect: bool,
) {
    if suspect {
        if let Err(error) = check(target).await {
            target.down.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = target.lost.send(error);
        }
    }
    if target.down.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let at = Instant::now();
    let _ = events.send(Event::Exited { id, status, at }).await;
}

/// Runs the task on an idle worker of the node, or on a new one (started in the task's
/// own tokio task, so the node's other launches do not wait for it).
async fn launch_warm(
    target: &Target,
    id: LaunchId,
    script: String,
    input: Vec<u8>,
    events: &EventSender,
    running: &Running,
    idle: &Idle,
) {
    let ready = idle.lock().expect("not poisoned").pop();
    let (switch, killed) = oneshot::channel();
    running.lock().expect("not poisoned").insert(id, switch);
    let events = events.clone();
    let running = running.clone();
    let idle = idle.clone();
    let target = target.clone();
    tokio::spawn(async move {
        let mut worker = match ready {
            Some(worker) => worker,
            None => match Worker::start(srun_step(&target)).await {
                Ok(worker) => worker,
                Err(why) => {
                    // The node cannot run a worker: one step per task from now on.
                    tracing::warn!("{}: {why}; one srun step per task instead", target.node);
                    target
                        .warm
                        .store(false, std::sync::atomic::Ordering::SeqCst);
                    running.lock().expect("not poisoned").remove(&id);
                    return launch(&target, id, script, input, &events, &running).await;
                }
            },
        };
        let ended = worker.run(id, &script, &input, &events, killed).await;
        running.lock().expect("not poisoned").remove(&id);
        match ended {
            Ended::Status(status) => {
                idle.lock().expect("not poisoned").push(worker);
                report_exit(&target, &events, id, status, false).await;
            }
            Ended::Lost => {
                worker.abandon().await;
                report_exit(&target, &events, id, ExitStatus::Code(-1), true).await;
            }
        }
    });
}

/// Forwards output until srun exits. Killed: closes the control line, then TERMs srun if
/// the step has not ended after [`KILL_BACKSTOP`] (an unreachable node).
async fn supervise(
    id: LaunchId,
    child: &mut Child,
    killed: oneshot::Receiver<()>,
    events: &EventSender,
) -> (ExitStatus, bool) {
    let mut control = child.stdin.take();
    let pid = child.id();
    let out = forward(id, child.stdout.take(), events.clone());
    let err = forward_stderr(id, child.stderr.take(), events.clone());
    let wait = async {
        tokio::pin!(killed);
        let backstop = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(backstop);
        loop {
            tokio::select! {
                status = child.wait() => return status,
                _ = &mut killed, if control.is_some() => {
                    control = None;
                    backstop.as_mut().reset(tokio::time::Instant::now() + KILL_BACKSTOP);
                }
                _ = &mut backstop => terminate(pid),
            }
        }
    };
    let (status, (), (srun_said, node_failed)) = tokio::join!(wait, out, err);
    drop(control);
    let status = match (status, srun_said) {
        (_, Some(status)) => status,
        (Ok(status), None) => match status.code() {
            Some(code) => ExitStatus::Code(code),
            None => ExitStatus::Code(-1),
        },
        (Err(_), None) => ExitStatus::Code(-1),
    };
    (status, node_failed)
}

/// TERM to srun (its process group): srun then cancels the step.
pub fn terminate(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill has no memory-safety preconditions; the group is srun's own.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
    }
}

async fn forward<R: tokio::io::AsyncRead + Unpin>(
    id: LaunchId,
    reader: Option<R>,
    events: EventSender,
) {
    let Some(mut reader) = reader else { return };
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let data = buf[..n].to_vec();
        let output = Event::Output {
            id,
            stream: Stream::Stdout,
            data,
        };
        if events.send(output).await.is_err() {
            break;
        }
    }
}

/// Forwards stderr line by line, keeping srun's own `task 0:` status line back and
/// returning what it says, and whether srun reported the node failing.
async fn forward_stderr<R: tokio::io::AsyncRead + Unpin>(
    id: LaunchId,
    reader: Option<R>,
    events: EventSender,
) -> (Option<ExitStatus>, bool) {
    let Some(reader) = reader else {
        return (None, false);
    };
    let mut reader = BufReader::new(reader);
    let mut said = None;
    let mut node_failed = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        node_failed |= text.starts_with("srun: error: Node failure on ");
        if let Some(status) = parse::srun_status_line(&text) {
            said = Some(status);
            continue;
        }
        if text.starts_with("srun: Force Terminated") || text.starts_with("srun: Job step aborted")
        {
            continue;
        }
        let output = Event::Output {
            id,
            stream: Stream::Stderr,
            data: line.clone(),
        };
        if events.send(output).await.is_err() {
            break;
        }
    }
    (said, node_failed)
}
