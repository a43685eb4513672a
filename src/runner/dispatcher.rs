//! The dispatcher: the one owner of run state. It reacts to connection events, timers,
//! signals and control requests in a single select loop, asks placement where queued tasks
//! go whenever a slot may have freed, records every transition in the run store, and
//! writes task output.
//!
//! Each turn of the loop handles what is pending, dispatches, commits the store, and only
//! then sends the launches and kills it decided: what the store says is never behind what
//! the hosts were told.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::connector::{self, Connector, Next};
use super::gating::GateWatch;
use super::hosts::{BACKOFF, Closed, Conn, ConnState, HostRt, HostState, Quarantine};
use super::output::{LineBuf, OutputMode, copy_block, write_piece};
use super::stages::{self, Readiness, Ready};
use super::{AttemptRecord, HostRecord, Outcome, RunConfig, RunOutcome, Stop, TaskRecord, joblog};
use crate::error::Error;
use crate::fold;
use crate::inventory::Transport;
use crate::job::Context;
use crate::placement::resources::Grant;
use crate::placement::{self, Algorithm, HostView, Liveness, Placement, TaskRef};
use crate::report::progress::{HostLine, Progress, Snapshot};
use crate::staging::relay::Stager;
use crate::store::{RunWriter, TaskEnd, attempt_outcome, task_state};
use crate::transport::wrapper::{self, LoginShell, TaskScript};
use crate::transport::{
    Command, ConnHandle, ConnId, Event, EventSender, ExitStatus, HostError, HostErrorKind,
    LaunchId, Stream, is_fd_limit, local, ssh,
};

/// Events buffered between connections and the dispatcher before senders wait.
const EVENT_QUEUE: usize = 4096;
/// How long dispatch waits, after the first host is up, for the others to connect: enough
/// for a round of handshakes, so a short array spreads over the hosts instead of filling
/// whichever connected first. Dispatch starts at once when every host has answered.
const START_WINDOW: Duration = Duration::from_millis(500);
/// After an interrupt or cancel, how long past the kill grace to wait for hosts to confirm.
const STOP_SLACK: Duration = Duration::from_secs(5);
/// How often the store is checked for control requests when no SIGUSR1 announces them.
const CONTROL_POLL: Duration = Duration::from_secs(1);
/// Successes whose run times make the median for `--speculate`, at least and at most.
const SPECULATE_SAMPLES: usize = 5;
const RECENT_RUNS: usize = 1024;
/// No task is copied before it has run this long, whatever the median.
const SPECULATE_MIN: Duration = Duration::from_secs(1);
const SPECULATE_EVERY: Duration = Duration::from_millis(500);
/// Task output buffered within one turn before it is written out regardless.
const OUTPUT_BUFFER: usize = 1 << 20;
/// Host notes gathered this long are written out folded by cause (`u[1-2000]: connect to
/// port 22: ...; retrying in 1s`), so thousands of failing hosts make a few lines.
const NOTE_FOLD: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    Timeout,
    Stop(Stop),
    /// Another copy of the task (`--speculate`) succeeded first.
    Superseded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Timeout(LaunchId),
    Reconnect(usize),
    StopDeadline,
    StartWindow,
    /// A copy killed because another succeeded has not confirmed: stop waiting for it.
    SupersedeDeadline(LaunchId),
    Probe,
    Control,
    /// A failed task may run again (`--retry-delay`); it would rather avoid this host.
    Requeue(usize, usize),
    /// Look for stragglers to copy (`--speculate`).
    Speculate,
    /// Write out the host notes gathered since the first of them.
    HostNotes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TaskState {
    Queued,
    Running(LaunchId),
    Done(Outcome),
}

struct TaskRt {
    state: TaskState,
    /// Attempt number of the latest launch; grows with every launch, across sessions.
    attempt: u32,
    /// Task failures so far in this session, counted against `--retries`.
    failures: u32,
    key: u64,
    first_started: Option<Instant>,
    /// Consistent-hash: the key's first-choice host.
    first_choice: Option<usize>,
    /// Host, start and end of the latest attempt that ran.
    last_run: Option<(usize, Instant, Instant)>,
    /// Launches of this task running now: 1, or 2 with a speculative copy.
    live: u8,
}

struct LaunchRt {
    task: usize,
    attempt: u32,
    host: usize,
    conn: usize,
    started: Option<Instant>,
    kill: Option<Kill>,
    tag: String,
    stdout: LineBuf,
    stderr: LineBuf,
    received: u64,
    /// The rendered command, kept for the joblog.
    command: Option<String>,
    /// The slots, memory and GPUs it holds on its host.
    grant: Grant,
}

pub struct Dispatcher {
    cfg: RunConfig,
    started: Instant,
    started_epoch: SystemTime,
    tasks: Vec<TaskRt>,
    launches: HashMap<LaunchId, LaunchRt>,
    next_launch: u64,
    hosts: Vec<HostRt>,
    views: Vec<HostView>,
    placement: Box<dyn Placement + Send>,
    events_tx: EventSender,
    events_rx: mpsc::Receiver<Event>,
    ssh: ssh::Shared,
    store: RunWriter,
    /// The first store failure: the run stops on it.
    store_error: Option<String>,
    /// Commands decided this turn, sent once the store has committed.
    outbox: Vec<(usize, usize, Command)>,
    joblog: Option<joblog::Sink>,
    /// Task output and notes of this turn, written out together (around the progress bars).
    out: Vec<u8>,
    err: Vec<u8>,
    output_broken: bool,
    progress: Progress,
    /// Tasks with an outcome, and those among them that failed.
    done: usize,
    failed: usize,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    unfinished: usize,
    running: u32,
    stopped: Option<Stop>,
    paused: bool,
    no_host: bool,
    /// False until every host has connected or failed once, or the start window passed.
    dispatching: bool,
    window_armed: bool,
    attempts: Vec<AttemptRecord>,
    requeues: u32,
    /// What every launch writes first on its control line (empty without secrets).
    secrets_input: Vec<u8>,
    quarantine: Quarantine,
    /// Tasks waiting out `--retry-delay` (queued, but not in placement yet).
    delayed: Vec<usize>,
    /// Run times of recent successes, for the median `--speculate` compares against.
    recent_runs: std::collections::VecDeque<f64>,
    /// Which host gets a connection next, within the in-flight and descriptor bounds.
    connector: Connector,
    /// Host notes waiting to be written out folded ([`NOTE_FOLD`]).
    host_notes: fold::Notes,
    /// Whether the open-file limit has been named (said once).
    said_fd_limit: bool,
    /// Names a wait with every host shut by `--load` / `--memfree`.
    gate_watch: GateWatch,
    /// File staging: wraps every connection in a relay (`None` when the job stages none).
    staging: Option<Arc<Stager>>,
    /// A pipeline's readiness ([`stages`]): only ready tasks reach placement.
    readiness: Option<Readiness>,
}

impl Dispatcher {
    pub fn new(cfg: RunConfig, store: RunWriter) -> Result<Dispatcher, Error> {
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let params = placement::Params {
            seed: cfg.spec.seed,
            epsilon: cfg.spec.epsilon,
            hosts: cfg
                .hosts
                .iter()
                .map(|h| (h.name.clone(), h.weight))
                .collect(),
            total_tasks: cfg.job.tasks.len(),
        };
        let mut placement = placement::new(cfg.job.algorithm, &params);
        placement.know_work(&cfg.known_work);
        let tasks: Vec<TaskRt> = cfg
            .job
            .tasks
            .iter()
            .enumerate()
            .map(|(id, t)| {
                let key = placement::key_hash(&cfg.job.key_of(t));
                TaskRt {
                    state: TaskState::Queued,
                    attempt: cfg.prior_attempts.get(id).copied().unwrap_or(0),
                    failures: 0,
                    key,
                    first_started: None,
                    first_choice: placement.first_choice(TaskRef { id: id as u32, key }),
                    last_run: None,
                    live: 0,
                }
            })
            .collect();
        let listed: Vec<usize> = (0..tasks.len()).collect();
        let order = match cfg.queue_order.len() {
            0 => &listed,
            _ => &cfg.queue_order,
        };
        let mut readiness = stages::for_session(&cfg.job, &cfg.earlier);
        let (ready, unrunnable) = stages::start(readiness.as_mut(), tasks.len());
        for &id in order.iter().filter(|&&id| ready[id]) {
            placement.push(TaskRef {
                id: id as u32,
                key: tasks[id].key,
            });
        }
        let hosts: Vec<HostRt> = cfg
            .hosts
            .iter()
            .map(|h| {
                HostRt::new(h.clone(), cfg.job.slots)
                    .gated_by(cfg.job.gates)
                    .requesting(cfg.job.resources)
            })
            .collect();
        let views = hosts.iter().map(HostRt::view).collect();
        let ssh = ssh::Shared {
            handshakes: Arc::new(ssh::Handshakes::default()),
            auth: Arc::new(ssh::AuthEnv::from_process()),
            options: Arc::new(ssh::Options {
                keepalive: cfg.spec.faults.keepalive,
                keepalive_count: cfg.spec.faults.keepalive_count,
                kill_grace: cfg.spec.kill_grace,
                ..ssh::Options::default()
            }),
        };
        let staging = match cfg.job.stages_files() {
            false => None,
            true => {
                let names: Vec<String> = cfg.hosts.iter().map(|h| h.name.clone()).collect();
                let stager = Stager::new(&cfg.run_id, &cfg.job, &names).map_err(Error::Usage)?;
                Some(Arc::new(stager))
            }
        };
        let mut out = Vec::new();
        let joblog = match &cfg.spec.joblog {
            Some(path) => {
                Some(
                    joblog::Sink::open(path, &mut out).map_err(|source| Error::ReadFile {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let mut dispatcher = Dispatcher {
            unfinished: tasks.len(),
            started: Instant::now(),
            started_epoch: SystemTime::now(),
            tasks,
            launches: HashMap::new(),
            next_launch: 0,
            hosts,
            views,
            placement,
            events_tx,
            events_rx,
            ssh,
            store,
            store_error: None,
            outbox: Vec::new(),
            joblog,
            out,
            err: Vec::new(),
            output_broken: false,
            progress: Progress::new(cfg.progress, cfg.job.tasks.len(), cfg.hosts.len()),
            done: 0,
            failed: 0,
            timers: BinaryHeap::new(),
            running: 0,
            stopped: None,
            paused: false,
            no_host: false,
            dispatching: false,
            window_armed: false,
            attempts: Vec::new(),
            requeues: 0,
            delayed: Vec::new(),
            recent_runs: std::collections::VecDeque::new(),
            connector: Connector::new(
                cfg.hosts.len(),
                crate::fdlimit::raise(),
                crate::fdlimit::in_use(),
            ),
            host_notes: fold::Notes::default(),
            gate_watch: GateWatch::default(),
            said_fd_limit: false,
            quarantine: Quarantine {
                after: cfg.spec.faults.quarantine_after,
                window: cfg.spec.faults.quarantine_window,
                retry: cfg.spec.faults.keepalive * cfg.spec.faults.keepalive_count,
            },
            staging,
            secrets_input: if cfg.secrets.is_empty() {
                Vec::new()
            } else {
                wrapper::secrets_input(&cfg.secrets)
            },
            readiness,
            cfg,
        };
        for task in unrunnable {
            dispatcher.finish_task(task, Outcome::Skipped);
        }
        Ok(dispatcher)
    }

    /// Runs until every task has an outcome, no host is left, or a stop is handled.
    pub async fn run(mut self) -> Result<RunOutcome, Error> {
        let signal_error =
            |e: std::io::Error| Error::Runtime(format!("cannot handle signals: {e}"));
        let mut sigint = signal(SignalKind::interrupt()).map_err(signal_error)?;
        let mut sigterm = signal(SignalKind::terminate()).map_err(signal_error)?;
        // The terminal closed: stop as for TERM, so the run is recorded and reported.
        let mut sighup = signal(SignalKind::hangup()).map_err(signal_error)?;
        let mut sigusr1 = signal(SignalKind::user_defined1()).map_err(signal_error)?;
        self.arm(Timer::Probe);
        self.arm(Timer::Control);
        self.arm(Timer::Speculate);
        loop {
            self.open_due_conns();
            self.check_start();
            self.dispatch();
            self.commit_and_send();
            self.flush();
            self.show_progress();
            // Every task has an outcome and no killed copy is still running.
            if (self.unfinished == 0 && self.launches.is_empty()) || self.check_hosts_left() {
                break;
            }
            let deadline = self.timers.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                event = self.events_rx.recv() => {
                    let Some(event) = event else { break };
                    self.handle(event);
                    while let Ok(event) = self.events_rx.try_recv() {
                        self.handle(event);
                    }
                }
                () = sleep_until(deadline) => self.fire_timers(),
                _ = sigint.recv() => self.stop(Stop::Interrupted),
                _ = sigterm.recv() => self.stop(Stop::Interrupted),
                _ = sighup.recv() => self.stop(Stop::Interrupted),
                _ = sigusr1.recv() => self.take_control(),
            }
        }
        self.shutdown();
        if let Some(stager) = self.staging.clone() {
            stager.finish().await;
            self.write_staging_stats(&stager);
        }
        self.write_host_notes();
        self.record_unconnected();
        let outcome = self.outcome();
        let state = outcome.state();
        let at = self.epoch(Instant::now());
        let recorded = self.store.run_state(state, Some(at));
        self.record(recorded);
        self.commit_and_send();
        self.flush();
        self.progress.finish();
        tracing::info!(
            commits = self.store.commits(),
            tasks = self.cfg.job.tasks.len(),
            "run store"
        );
        Ok(outcome)
    }

    fn show_progress(&mut self) {
        let (hosts, launches) = (&self.hosts, &self.launches);
        let (total, done, failed, paused) = (
            self.cfg.job.tasks.len(),
            self.done,
            self.failed,
            self.paused,
        );
        let elapsed = self.started.elapsed();
        let staged = self.staging.as_ref().map_or(0, |s| s.moved());
        self.progress.update(|| {
            // Running means started on its host, not dispatched: a launch waiting for its
            // channel (a host still connecting) is not running yet.
            let mut running = vec![0u32; hosts.len()];
            for launch in launches.values().filter(|l| l.started.is_some()) {
                running[launch.host] += 1;
            }
            Snapshot {
                total,
                done,
                failed,
                running: running.iter().sum(),
                elapsed,
                paused,
                staged,
                hosts: hosts
                    .iter()
                    .zip(&running)
                    .map(|(h, &running)| HostLine {
                        name: h.spec.name.clone(),
                        state: h.state_label(),
                        running,
                        slots: h.capacity(),
                        done: h.done,
                        failed: h.failed,
                    })
                    .collect(),
            }
        });
    }

    /// Seconds since the Unix epoch at `at`.
    fn epoch(&self, at: Instant) -> f64 {
        let since = at.saturating_duration_since(self.started);
        (self.started_epoch + since)
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    }

    // ----- placement and launching -------------------------------------------------------

    fn dispatch(&mut self) {
        if self.stopped.is_some() || self.paused || !self.dispatching {
            return;
        }
        for ready in self.take_held() {
            self.start_ready(ready);
        }
        let throttle = self.cfg.job.throttle.unwrap_or(u32::MAX);
        while self.running < throttle {
            let Some((task, host)) = self.placement.next(&self.views) else {
                break;
            };
            self.launch(task as usize, host);
        }
    }

    fn launch(&mut self, task: usize, host: usize) {
        let conn = self.hosts[host].pick_conn();
        let grant = conn.and_then(|_| self.hosts[host].take_resources());
        let (Some(conn), Some(grant)) = (conn, grant) else {
            // Placement saw a free slot the connections do not have; should not happen.
            self.placement.push(TaskRef {
                id: task as u32,
                key: self.tasks[task].key,
            });
            return;
        };
        self.tasks[task].attempt += 1;
        let attempt = self.tasks[task].attempt;
        let id = LaunchId(self.next_launch);
        if id.0 == 0 {
            tracing::debug!("first launch after {:?}", self.started.elapsed());
        }
        self.next_launch += 1;
        let (command, start) = self.script(task, host, &grant.gpu_env());
        self.expect_staging(id, task, host);
        let seq = self.cfg.job.tasks[task].seq;
        let at = self.epoch(Instant::now());
        let recorded = self
            .store
            .dispatched(seq, attempt, &self.hosts[host].spec.name, at);
        self.record(recorded);
        let rt = &mut self.hosts[host];
        rt.conns[conn].running += 1;
        rt.running += 1;
        self.running += 1;
        self.views[host] = rt.view();
        self.outbox.push((
            host,
            conn,
            Command::Launch {
                id,
                script: start.command,
                input: start.input,
                warm: start.warm,
            },
        ));
        let index = self.cfg.job.tasks[task].index;
        self.tasks[task].state = TaskState::Running(id);
        self.tasks[task].live += 1;
        self.launches.insert(
            id,
            LaunchRt {
                task,
                attempt,
                host,
                conn,
                started: None,
                kill: None,
                tag: format!("{} {index}", rt.spec.name),
                stdout: LineBuf::default(),
                stderr: LineBuf::default(),
                received: 0,
                command: self.joblog.is_some().then_some(command),
                grant,
            },
        );
    }

    /// The rendered command and what is sent to the host to start one attempt.
    fn script(
        &self,
        task: usize,
        host: usize,
        gpu_env: &[(&'static str, String)],
    ) -> (String, wrapper::Launch) {
        let job = &self.cfg.job;
        let t = &job.tasks[task];
        let rt = &self.hosts[host];
        let params = job.values_of(t.seq);
        let ctx = Context {
            item: &t.item,
            seq: t.seq,
            index: t.index,
            host: &rt.spec.name,
            params: &params,
        };
        let command = job.command_of(t.seq).render(&ctx);
        let (count, index, attempt) = (
            self.cfg.total_tasks.to_string(),
            t.index.to_string(),
            self.tasks[task].attempt.to_string(),
        );
        let mut env: Vec<(&str, &str)> = vec![
            ("DTS_RUN_ID", &self.cfg.run_id),
            // One numbering everywhere: the task index (as in `[host index]` and the joblog).
            ("DTS_TASK_ID", &index),
            ("DTS_TASK_COUNT", &count),
            ("DTS_ARRAY_INDEX", &index),
            ("DTS_HOST", &rt.spec.name),
            ("DTS_ATTEMPT", &attempt),
        ];
        env.extend(job.stage_of(t.seq).map(|stage| ("DTS_STAGE", stage)));
        env.extend(
            job.env_of(t.seq)
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let matrix_env = job.matrix_env_of(t.seq);
        env.extend(matrix_env.iter().map(|(k, v)| (k.as_str(), *v)));
        env.extend(gpu_env.iter().map(|(k, v)| (*k, v.as_str())));
        let shell = match rt.spec.transport {
            Transport::Ssh => rt.shell,
            Transport::Local | Transport::Slurm { .. } => LoginShell::Sh,
        };
        let staged_dir = (self.staging.as_ref())
            .and_then(|s| s.workdir(t.seq, t.index, self.tasks[task].attempt));
        let task_script = TaskScript {
            env: &env,
            workdir: staged_dir.as_deref().or(job.workdir.as_deref()),
            command: &command,
            kill_grace: self.cfg.spec.kill_grace,
            secrets: !self.cfg.secrets.is_empty(),
        };
        let mut launch = task_script.launch(shell, &self.secrets_input);
        if rt.spec.execution_mode() == crate::inventory::Execution::Warm {
            launch.warm = Some(task_script.warm_code(&self.cfg.secrets));
        }
        (command, launch)
    }

    /// Tells the staging relay what launch `id` stages (rendered like its command).
    fn expect_staging(&self, id: LaunchId, task: usize, host: usize) {
        let Some(stager) = &self.staging else { return };
        let t = &self.cfg.job.tasks[task];
        let params = self.cfg.job.values_of(t.seq);
        let ctx = Context {
            item: &t.item,
            seq: t.seq,
            index: t.index,
            host: &self.hosts[host].spec.name,
            params: &params,
        };
        stager.expect(id, &ctx, self.tasks[task].attempt);
    }

    /// The staging figures beside the run's store, for its report.
    fn write_staging_stats(&mut self, stager: &Stager) {
        let path = self.store.dir().join(crate::staging::relay::STATS_FILE);
        let json = serde_json::to_vec_pretty(&stager.stats()).expect("figures serialise");
        if let Err(e) = std::fs::write(&path, json) {
            let _ = writeln!(self.err, "dts: cannot write {}: {e}", path.display());
        }
    }

    /// Commits what this turn recorded, then sends what it decided. When the store has
    /// failed, the run stops here, once the turn's own work is done, and the launches it
    /// could not record are never sent.
    fn commit_and_send(&mut self) {
        let committed = self.store.commit();
        self.record(committed);
        if self.store_error.is_some() {
            self.stop(Stop::StoreFailed);
            self.withhold_launches();
        }
        for (host, conn, command) in self.outbox.drain(..) {
            self.hosts[host].conns[conn].handle.send(command);
        }
    }

    /// Keeps the first store failure; [`Self::commit_and_send`] stops the run on it.
    fn record(&mut self, result: Result<(), Error>) {
        if let Err(e) = result {
            if self.store_error.is_none() {
                let _ = writeln!(
                    self.err,
                    "dts: error: {e}\ndts: stopping: no new task starts and running tasks are killed, as their results cannot be recorded"
                );
                self.store_error = Some(e.to_string());
            }
        }
    }

    /// Drops the launches of this turn, which the failed store does not hold: their tasks
    /// never start.
    fn withhold_launches(&mut self) {
        let withheld: Vec<LaunchId> = self
            .outbox
            .iter()
            .filter_map(|(_, _, command)| match command {
                Command::Launch { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        self.outbox.retain(|(_, _, command)| match command {
            Command::Launch { .. } => false,
            Command::Kill(id) => !withheld.contains(id),
            _ => true,
        });
        for id in withheld {
            if let Some(launch) = self.end_launch(id) {
                self.finish_task(launch.task, Stop::StoreFailed.outcome());
            }
        }
    }

    // ----- connections ---------------------------------------------------------------------

    /// Whether the hosts up can hold every task left, so no further host needs connecting.
    /// Never under consistent-hash: its placement is defined over every host.
    fn tasks_fit(&self) -> bool {
        if self.cfg.job.algorithm == Algorithm::ConsistentHash {
            return false;
        }
        let mut capacity = 0usize;
        // A gated host holds nothing until a probe opens it: connect others meanwhile.
        for view in self
            .views
            .iter()
            .filter(|v| v.liveness == Liveness::Up && !v.gated)
        {
            capacity += view.slots as usize;
            if capacity >= self.unfinished {
                return true;
            }
        }
        capacity >= self.unfinished
    }

    /// Opens the connections that are due, as far as the bounds allow ([`connector`]).
    fn open_due_conns(&mut self) {
        let fit = self.tasks_fit();
        loop {
            let (hosts, tasks) = (&self.hosts, self.unfinished);
            match self
                .connector
                .next(!fit, |h| conn_cost(&hosts[h], tasks, fit))
            {
                Next::Open(h, fds) => self.open_conn(h, fds),
                Next::Fds => {
                    self.say_fd_limit(None);
                    break;
                }
                Next::Idle | Next::InFlight => break,
            }
        }
    }

    fn open_conn(&mut self, h: usize, fds: u64) {
        let rt = &mut self.hosts[h];
        // A connection that is down has sent its last event: its slot is free, so a host
        // reconnecting all day does not grow its list.
        let slot = rt
            .conns
            .iter()
            .position(|c| matches!(c.state, ConnState::Down));
        let conn = ConnId {
            host: h,
            conn: slot.unwrap_or(rt.conns.len()) as u32,
        };
        let relay = (self.staging.as_ref()).map(|s| s.relay(conn, self.events_tx.clone()));
        let events = relay
            .as_ref()
            .map_or_else(|| self.events_tx.clone(), |r| r.events());
        let handle: Box<dyn ConnHandle> = match rt.spec.transport {
            Transport::Local => {
                let slots = *rt.slots.get_or_insert_with(local_cores);
                Box::new(local::spawn(conn, slots, events))
            }
            Transport::Slurm { job, per_task } => {
                let slots = *rt.slots.get_or_insert(1);
                let node = rt.spec.address.clone();
                Box::new(crate::transport::slurm::conn::spawn(
                    conn, job, node, slots, !per_task, events,
                ))
            }
            Transport::Ssh => match ssh::spawn(conn, rt.spec.clone(), events, self.ssh.clone()) {
                Ok(handle) => Box::new(handle),
                Err(e) => {
                    let message = format!("cannot start a connection thread: {e}");
                    // Out of descriptors (the socketpair) or threads (EAGAIN from clone):
                    // a limit of dts, not a fault of the host.
                    if is_fd_limit(&e) || e.kind() == std::io::ErrorKind::WouldBlock {
                        self.local_limit(h, &HostError::local_limit(message));
                    } else {
                        self.host_failed(h, &HostError::transient(message));
                    }
                    return;
                }
            },
        };
        let handle = match relay {
            Some(relay) => relay.wrap(handle),
            None => handle,
        };
        let new = Conn {
            handle,
            state: ConnState::Connecting,
            running: 0,
            fds,
        };
        match slot {
            Some(i) => rt.conns[i] = new,
            None => rt.conns.push(new),
        }
        self.connector.opened(fds);
        if rt.state == HostState::Up {
            // It may want more still; `conn_cost` decides when its turn comes.
            self.connector.want_more(h);
        } else {
            rt.state = HostState::Connecting;
        }
    }

    /// dts ran out of descriptors or threads while connecting `h`: the host is not at
    /// fault and waits until connections close. If none of ours is open, there is nothing
    /// to wait for and it counts as a failure of the host after all.
    fn local_limit(&mut self, h: usize, error: &HostError) {
        let floor = connector::conn_fds(ssh::CHANNELS_PER_CONNECTION);
        if !self.connector.out_of_fds(floor) {
            return self.host_failed(h, &HostError::transient(error.message.clone()));
        }
        self.say_fd_limit(Some((h, error)));
        let rt = &mut self.hosts[h];
        if rt.state != HostState::Up {
            rt.state = HostState::Waiting;
            self.views[h] = rt.view();
        }
        self.timers
            .push(Reverse((Instant::now() + BACKOFF, Timer::Reconnect(h))));
    }

    /// Hosts that were never connected, and have no error of their own, record why: so the
    /// report does not take hosts that were not needed for hosts still connecting.
    fn record_unconnected(&mut self) {
        let why = if self.said_fd_limit {
            format!(
                "not connected: the open-file limit (ulimit -n {}) was reached",
                self.connector.soft_limit()
            )
        } else if self.stopped.is_some() {
            "not connected before the run stopped".to_string()
        } else {
            "not connected: the hosts up could hold every task".to_string()
        };
        for h in 0..self.hosts.len() {
            let rt = &self.hosts[h];
            if rt.state == HostState::Waiting && !rt.ever_up && rt.last_error.is_none() {
                let name = rt.spec.name.clone();
                let recorded = self.store.host(&name, 0, "waiting", Some(&why));
                self.record(recorded);
            }
        }
    }

    /// Says once that a local limit bounds the connections: the open-file budget, or the
    /// error with which the system refused one more (`hit`).
    fn say_fd_limit(&mut self, hit: Option<(usize, &HostError)>) {
        if std::mem::replace(&mut self.said_fd_limit, true) {
            return;
        }
        let held: usize = self.hosts.iter().map(HostRt::live_conns).sum();
        let conns = if held == 1 {
            "connection"
        } else {
            "connections"
        };
        let limit = self.connector.soft_limit();
        let why = match hit {
            Some((h, e)) => format!(
                "{}: {}: dts is out of file descriptors or threads (ulimit -n {limit}, \
                 ulimit -u) with {held} {conns} open",
                self.hosts[h].spec.name, e.message
            ),
            None => format!("the open-file limit (ulimit -n {limit}) lets dts hold {held} {conns}"),
        };
        let _ = writeln!(
            self.err,
            "dts: warning: {why}: further hosts wait until one closes"
        );
    }

    fn conn_up(&mut self, conn: ConnId, capacity: u32, probe: crate::probe::ProbeReport) {
        self.connector.answered();
        let rt = &mut self.hosts[conn.host];
        rt.conns[conn.conn as usize].state = ConnState::Up { capacity };
        if rt.slots.is_none() {
            rt.slots = Some(probe.cores.unwrap_or(1).max(1));
        }
        if rt.spec.transport == Transport::Ssh {
            rt.shell = LoginShell::from_path(&probe.shell);
        }
        rt.probed(probe);
        // Back after failing (backoff or quarantine): say so, the failure was reported.
        let rejoins = rt.state != HostState::Up && rt.last_error.is_some();
        rt.state = HostState::Up;
        rt.ever_up = true;
        self.views[conn.host] = rt.view();
        self.say_if_all_gated();
        if rejoins {
            self.host_note(conn.host, " answers again: it rejoins the run".into());
        }
        let rt = &self.hosts[conn.host];
        let (name, slots) = (rt.spec.name.clone(), rt.slots.unwrap_or(0));
        tracing::debug!(
            "{name}: connection {} up after {:?}",
            conn.conn,
            self.started.elapsed()
        );
        let recorded = self.store.host(&name, slots, "up", None);
        self.record(recorded);
        let gpus = self.hosts[conn.host].gpus();
        let recorded = self.store.host_gpus(&name, gpus);
        self.record(recorded);
        self.connector.want_more(conn.host);
        if !self.dispatching && !self.window_armed {
            self.window_armed = true;
            self.timers
                .push(Reverse((Instant::now() + START_WINDOW, Timer::StartWindow)));
        }
        self.check_start();
    }

    /// Opens dispatch once every host tried has connected or failed at least once, and
    /// every host has been tried or those up can hold the tasks.
    fn check_start(&mut self) {
        if self.dispatching {
            return;
        }
        let first_attempts = self
            .hosts
            .iter()
            .any(|h| h.state == HostState::Connecting && !h.ever_up && h.last_error.is_none());
        self.dispatching = !first_attempts && (self.connector.all_tried() || self.tasks_fit());
    }

    fn conn_down(&mut self, conn: ConnId, error: &HostError) {
        let h = conn.host;
        let closed = &mut self.hosts[h].conns[conn.conn as usize];
        match closed.state {
            ConnState::Connecting => {
                self.connector.answered();
                self.connector.closed(closed.fds);
            }
            ConnState::Up { .. } => self.connector.closed(closed.fds),
            ConnState::Down => {}
        }
        closed.state = ConnState::Down;
        // Its wake-up socket is a descriptor: let it go with the connection.
        closed.handle = Box::new(Closed);
        // Nothing still to be sent can reach it, nor must reach a connection in its slot.
        self.outbox
            .retain(|&(host, c, _)| (host, c) != (h, conn.conn as usize));
        let lost: Vec<LaunchId> = self
            .launches
            .iter()
            .filter(|(_, l)| l.host == h && l.conn == conn.conn as usize)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.launch_undone(id, &error.message);
        }
        if error.kind == HostErrorKind::LocalLimit {
            return self.local_limit(h, error);
        }
        self.host_failed(h, error);
        // The host is still up on other connections: replace the lost one if needed.
        if self.hosts[h].state == HostState::Up {
            self.connector.want_more(h);
        }
    }

    fn host_failed(&mut self, h: usize, error: &HostError) {
        if error.kind == HostErrorKind::Stalled {
            return self.host_outlived_our_pause(h, error);
        }
        let now = Instant::now();
        let rt = &mut self.hosts[h];
        let before = rt.state.clone();
        rt.connection_failed(error, now, self.quarantine);
        let name = rt.spec.name.clone();
        // Slots stay 0 in the store until the host connects: reports tell by them.
        let slots = if rt.ever_up { rt.slots.unwrap_or(0) } else { 0 };
        let state = rt.state.clone();
        match &state {
            HostState::Backoff(at) => {
                let wait = at.saturating_duration_since(now);
                self.host_note(
                    h,
                    format!(
                        ": {error}; retrying in {}",
                        humantime::format_duration(round_secs(wait))
                    ),
                );
                self.timers.push(Reverse((*at, Timer::Reconnect(h))));
            }
            HostState::Quarantined { retry, reason } => {
                if !matches!(before, HostState::Quarantined { .. }) {
                    let every = humantime::format_duration(self.quarantine.retry);
                    self.host_note(h, format!(": {reason}; tried again every {every}"));
                }
                self.timers.push(Reverse((*retry, Timer::Reconnect(h))));
            }
            HostState::Gone(reason) if before != state => {
                self.host_note(h, format!(": {reason}; it leaves the run"));
            }
            HostState::Up => {
                self.host_note(
                    h,
                    format!(": a connection failed ({error}); carrying on with the others"),
                );
            }
            _ => {}
        }
        let label = self.hosts[h].state_label();
        let recorded = self.store.host(&name, slots, label, Some(&error.message));
        self.record(recorded);
        self.views[h] = self.hosts[h].view();
        self.check_start();
    }

    /// dts was stopped long enough for a host's guard to kill its tasks: they are back in
    /// the queue (no retry used) and the host is connected again at once, charged nothing.
    fn host_outlived_our_pause(&mut self, h: usize, error: &HostError) {
        let rt = &mut self.hosts[h];
        rt.connection_failed(error, Instant::now(), self.quarantine);
        self.host_note(h, format!(": {error}; its tasks run again"));
        self.views[h] = self.hosts[h].view();
        if self.hosts[h].state == HostState::Up {
            self.connector.want_more(h);
        } else {
            self.connector.want_retry(h);
        }
    }

    /// True when the run must stop because no host can take the remaining tasks.
    fn check_hosts_left(&mut self) -> bool {
        if !self.launches.is_empty() {
            return false;
        }
        let all_gone = self.hosts.iter().all(HostRt::is_out);
        // Nothing ever came up and every host has failed at least once: do not sit out
        // the backoff schedule (or the retries of thousands of hosts) before saying so.
        let never_reachable = self
            .hosts
            .iter()
            .all(|h| !h.ever_up && h.last_error.is_some());
        if !(all_gone || never_reachable) {
            return false;
        }
        self.no_host = true;
        let reason = if never_reachable {
            "no host reachable"
        } else {
            "no host left: every host is quarantined or refused"
        };
        let held = self.take_held().into_iter().map(|r| r.task as u32);
        for id in self.placement.drain().into_iter().chain(held) {
            self.finish_task(id as usize, Outcome::NotRun(reason.into()));
        }
        true
    }

    // ----- events ------------------------------------------------------------------------

    fn handle(&mut self, event: Event) {
        match event {
            Event::Up {
                conn,
                capacity,
                probe,
            } => self.conn_up(conn, capacity, probe),
            Event::Down { conn, error } => self.conn_down(conn, &error),
            Event::Started { id, at } => self.launch_started(id, at),
            Event::Output { id, stream, data } => self.output(id, stream, &data),
            Event::Exited { id, status, at } => self.exited(id, status, at),
            Event::Refused { id, reason } => self.launch_undone(id, &reason),
            Event::Probed { conn, probe } => {
                self.hosts[conn.host].reprobed(probe);
                self.views[conn.host] = self.hosts[conn.host].view();
                self.say_if_all_gated();
            }
        }
    }

    /// Once per wait: every host is shut by a gate while tasks are queued.
    fn say_if_all_gated(&mut self) {
        if !self.cfg.job.gates.any() {
            return;
        }
        let every = self.cfg.spec.probe_interval.unwrap_or_default();
        let every = humantime::format_duration(every).to_string();
        let queued = !self.placement.is_empty();
        if let Some(note) = self.gate_watch.note(&self.hosts, queued, &every) {
            self.note(&note);
        }
    }

    fn launch_started(&mut self, id: LaunchId, at: Instant) {
        let Some(launch) = self.launches.get_mut(&id) else {
            return;
        };
        launch.started = Some(at);
        // `--timeout` limits the task's run time, so it counts from the task's start on
        // its host, not from dispatch: opening a channel on a loaded host is not the task's.
        if let Some(timeout) = self.cfg.job.timeout_of(self.cfg.job.tasks[launch.task].seq) {
            self.timers
                .push(Reverse((at + timeout, Timer::Timeout(id))));
        }
        let (task, attempt) = (launch.task, launch.attempt);
        self.tasks[task].first_started.get_or_insert(at);
        let seq = self.cfg.job.tasks[task].seq;
        let recorded = self.store.started(seq, attempt, self.epoch(at));
        self.record(recorded);
    }

    fn output(&mut self, id: LaunchId, stream: Stream, data: &[u8]) {
        let Some(launch) = self.launches.get_mut(&id) else {
            return;
        };
        launch.received += data.len() as u64;
        let task = &self.cfg.job.tasks[launch.task];
        let recorded = self
            .store
            .output(task.seq, task.index, launch.attempt, stream, data);
        let tag = match self.cfg.output {
            OutputMode::Tagged => Some(launch.tag.as_str()),
            OutputMode::Raw => None,
            OutputMode::Grouped | OutputMode::None => {
                self.record(recorded);
                return;
            }
        };
        let (buf, writer) = match stream {
            Stream::Stdout => (&mut launch.stdout, &mut self.out),
            Stream::Stderr => (&mut launch.stderr, &mut self.err),
        };
        let _ = buf.feed(data, |piece| write_piece(writer, tag, piece));
        self.record(recorded);
        if self.out.len() + self.err.len() > OUTPUT_BUFFER {
            self.flush();
        }
    }

    /// Removes a launch, frees its slot and flushes its partial lines.
    fn end_launch(&mut self, id: LaunchId) -> Option<LaunchRt> {
        let mut launch = self.launches.remove(&id)?;
        self.tasks[launch.task].live -= 1;
        let rt = &mut self.hosts[launch.host];
        rt.running -= 1;
        rt.conns[launch.conn].running -= 1;
        rt.release_resources(&launch.grant);
        self.running -= 1;
        self.views[launch.host] = rt.view();
        let tag = match self.cfg.output {
            OutputMode::Tagged => Some(launch.tag.as_str()),
            _ => None,
        };
        let _ = launch
            .stdout
            .finish(|piece| write_piece(&mut self.out, tag, piece));
        let _ = launch
            .stderr
            .finish(|piece| write_piece(&mut self.err, tag, piece));
        Some(launch)
    }

    /// `--output grouped`: the attempt's whole output, from the store, in one block.
    fn write_group(&mut self, task: usize, attempt: u32) {
        self.flush();
        let index = self.cfg.job.tasks[task].index;
        let paths = [
            self.store.output_path(index, attempt, Stream::Stdout),
            self.store.output_path(index, attempt, Stream::Stderr),
        ];
        let result = self.progress.suspend(|| -> std::io::Result<()> {
            if let Ok(mut file) = File::open(&paths[0]) {
                let mut out = std::io::stdout().lock();
                copy_block(&mut file, &mut out)?;
                out.flush()?;
            }
            if let Ok(mut file) = File::open(&paths[1]) {
                copy_block(&mut file, &mut std::io::stderr().lock())?;
            }
            Ok(())
        });
        self.output_broken |= result.is_err();
    }

    fn exited(&mut self, id: LaunchId, status: ExitStatus, at: Instant) {
        let Some(launch) = self.end_launch(id) else {
            return;
        };
        let started = launch.started.unwrap_or(at);
        self.attempts.push(AttemptRecord {
            host: launch.host,
            started,
            finished: at,
        });
        let seq = self.cfg.job.tasks[launch.task].seq;
        // None: a copy killed because another copy of its task succeeded.
        let outcome = match launch.kill {
            Some(Kill::Superseded) => None,
            Some(Kill::Stop(why)) => Some(why.outcome()),
            Some(Kill::Timeout) => Some(Outcome::TimedOut),
            None if status.success() => Some(Outcome::Succeeded),
            None => Some(Outcome::Failed(status.clone())),
        };
        let label = outcome
            .as_ref()
            .map_or(attempt_outcome::SUPERSEDED, attempt_label);
        // A copy we killed did not succeed, whatever its wrapper reported.
        let real_status = Some(&status).filter(|s| outcome.is_some() || !s.success());
        let recorded =
            self.store
                .attempt_ended(seq, launch.attempt, label, real_status, self.epoch(at));
        self.record(recorded);
        let Some(outcome) = outcome else {
            self.write_joblog(&launch, real_status, started, at);
            return;
        };
        // A failed copy while another copy still runs: that one decides.
        let copy_running = self.tasks[launch.task].live > 0;
        if outcome != Outcome::Succeeded && copy_running && self.stopped.is_none() {
            self.write_joblog(&launch, Some(&status), started, at);
            return;
        }
        self.tasks[launch.task].last_run = Some((launch.host, started, at));
        if outcome == Outcome::Succeeded {
            let run_s = at.saturating_duration_since(started).as_secs_f64();
            let task = launch.task as u32;
            self.placement
                .finished(task, launch.host, run_s, &self.views);
            self.recent_runs.push_back(run_s);
            if self.recent_runs.len() > RECENT_RUNS {
                self.recent_runs.pop_front();
            }
            if copy_running {
                self.supersede_copies(launch.task);
            }
        }
        if self.cfg.output == OutputMode::Grouped && !self.output_broken {
            self.write_group(launch.task, launch.attempt);
        }
        self.write_joblog(&launch, Some(&status), started, at);
        let retryable = matches!(outcome, Outcome::Failed(_) | Outcome::TimedOut);
        if retryable {
            self.tasks[launch.task].failures += 1;
        }
        let retries = self.cfg.job.retries_of(seq);
        if retryable && self.tasks[launch.task].failures <= retries && self.stopped.is_none() {
            let what = describe(&outcome);
            let index = self.cfg.job.tasks[launch.task].index;
            let host = self.hosts[launch.host].spec.name.clone();
            let next = self.tasks[launch.task].failures + 1;
            let total = retries + 1;
            self.note(&format!(
                "task {index} {what} on {host}; retrying (attempt {next} of {total})"
            ));
            self.retry(launch.task, launch.host);
        } else {
            self.finish_task(launch.task, outcome);
        }
    }

    fn write_joblog(
        &mut self,
        launch: &LaunchRt,
        status: Option<&ExitStatus>,
        started: Instant,
        at: Instant,
    ) {
        let Some(log) = self.joblog.as_mut() else {
            return;
        };
        let entry = joblog::Entry {
            seq: self.cfg.job.tasks[launch.task].index,
            host: &self.hosts[launch.host].spec.name,
            start: (self.started_epoch + started.saturating_duration_since(self.started))
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
            runtime: at.saturating_duration_since(started).as_secs_f64(),
            received: launch.received,
            status,
            timed_out: launch.kill == Some(Kill::Timeout),
            command: launch.command.as_deref().unwrap_or(""),
        };
        log.write(&entry, &mut self.out);
    }

    /// A launch that did not run to its end through no fault of the task: the host refused
    /// it or the connection under it died. The task goes back to the queue without using a
    /// retry (a host failure is not a task failure), unless it was being stopped anyway.
    fn launch_undone(&mut self, id: LaunchId, why: &str) {
        let Some(launch) = self.end_launch(id) else {
            return;
        };
        tracing::debug!("launch {id:?} of task {} undone: {why}", launch.task);
        let seq = self.cfg.job.tasks[launch.task].seq;
        let now = self.epoch(Instant::now());
        if launch.kill == Some(Kill::Superseded) || self.tasks[launch.task].live > 0 {
            // Its other copy carries on (or already succeeded): nothing to requeue.
            let recorded = self.store.attempt_ended(
                seq,
                launch.attempt,
                attempt_outcome::SUPERSEDED,
                None,
                now,
            );
            self.record(recorded);
            return;
        }
        let outcome = match (launch.kill, self.stopped) {
            (Some(Kill::Stop(why)), _) | (None, Some(why)) => Some(why.outcome()),
            (Some(Kill::Timeout), _) => Some(Outcome::TimedOut),
            (Some(Kill::Superseded), _) => unreachable!("handled above"),
            (None, None) => None,
        };
        let label = outcome
            .as_ref()
            .map_or(attempt_outcome::REQUEUED, attempt_label);
        let recorded =
            self.store
                .attempt_ended(seq, launch.attempt, label, None, self.epoch(Instant::now()));
        self.record(recorded);
        match outcome {
            // The timeout was the task's own doing, even if its channel then closed without
            // a status: it uses a retry like a timeout that reported one.
            Some(Outcome::TimedOut) if self.stopped.is_none() => {
                self.timed_out_without_status(launch.task, launch.host)
            }
            Some(outcome) => self.finish_task(launch.task, outcome),
            None => {
                self.requeues += 1;
                self.requeue(launch.task, launch.host);
            }
        }
    }

    /// A timed-out attempt whose launch ended without an exit status: retried while
    /// `--retries` allows, as [`Self::exited`] does for one that reported it.
    fn timed_out_without_status(&mut self, task: usize, host: usize) {
        self.tasks[task].failures += 1;
        let retries = self.cfg.job.retries_of(self.cfg.job.tasks[task].seq);
        if self.tasks[task].failures > retries {
            return self.finish_task(task, Outcome::TimedOut);
        }
        let index = self.cfg.job.tasks[task].index;
        let name = self.hosts[host].spec.name.clone();
        let next = self.tasks[task].failures + 1;
        let total = retries + 1;
        self.note(&format!(
            "task {index} timed out on {name}; retrying (attempt {next} of {total})"
        ));
        self.retry(task, host);
    }

    /// Puts a task back in the queue; it goes to another host than `avoid` if it can.
    fn requeue(&mut self, task: usize, avoid: usize) {
        self.tasks[task].state = TaskState::Queued;
        let recorded = self.store.task_queued(self.cfg.job.tasks[task].seq);
        self.record(recorded);
        self.placement.push_avoiding(
            TaskRef {
                id: task as u32,
                key: self.tasks[task].key,
            },
            avoid,
        );
    }

    /// A failed task runs again, after `--retry-delay`, preferably on another host.
    fn retry(&mut self, task: usize, failed_on: usize) {
        let delay = self.cfg.spec.faults.retry_delay;
        if delay.is_zero() {
            return self.requeue(task, failed_on);
        }
        self.tasks[task].state = TaskState::Queued;
        let recorded = self.store.task_queued(self.cfg.job.tasks[task].seq);
        self.record(recorded);
        self.delayed.push(task);
        self.timers.push(Reverse((
            Instant::now() + delay,
            Timer::Requeue(task, failed_on),
        )));
    }

    /// Kills the other running copies of a task that just succeeded.
    fn supersede_copies(&mut self, task: usize) {
        let copies: Vec<(LaunchId, usize, usize)> = self
            .launches
            .iter()
            .filter(|(_, l)| l.task == task && l.kill.is_none())
            .map(|(id, l)| (*id, l.host, l.conn))
            .collect();
        let deadline = Instant::now() + self.cfg.spec.kill_grace + STOP_SLACK;
        for (id, host, conn) in copies {
            if let Some(launch) = self.launches.get_mut(&id) {
                launch.kill = Some(Kill::Superseded);
            }
            self.outbox.push((host, conn, Command::Kill(id)));
            self.timers
                .push(Reverse((deadline, Timer::SupersedeDeadline(id))));
        }
    }

    /// `--speculate`: with nothing queued and slots free, a task running `factor` times
    /// longer than the median success (and at least [`SPECULATE_MIN`]) gets a second copy
    /// on another host. The first copy to succeed wins; the other is killed.
    fn speculate(&mut self) {
        let Some(factor) = self.cfg.spec.faults.speculate else {
            return;
        };
        if self.stopped.is_some()
            || self.paused
            || !self.placement.is_empty()
            || self.recent_runs.len() < SPECULATE_SAMPLES
        {
            return;
        }
        let mut runs: Vec<f64> = self.recent_runs.iter().copied().collect();
        runs.sort_by(f64::total_cmp);
        let median = runs[runs.len() / 2];
        let threshold = (median * factor).max(SPECULATE_MIN.as_secs_f64());
        let now = Instant::now();
        let mut stragglers: Vec<(f64, usize, usize)> = self
            .launches
            .values()
            .filter(|l| l.kill.is_none() && self.tasks[l.task].live == 1)
            .filter_map(|l| {
                let elapsed = now.saturating_duration_since(l.started?).as_secs_f64();
                (elapsed > threshold).then_some((elapsed, l.task, l.host))
            })
            .collect();
        stragglers.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (elapsed, task, host) in stragglers {
            let Some(other) = placement::copy_host(&self.views, host) else {
                continue;
            };
            let index = self.cfg.job.tasks[task].index;
            let name = self.hosts[other].spec.name.clone();
            self.note(&format!(
                "task {index} has run {elapsed:.1} s ({factor}× the median {median:.2} s): starting a copy on {name}"
            ));
            self.launch(task, other);
        }
    }

    fn finish_task(&mut self, task: usize, outcome: Outcome) {
        if matches!(self.tasks[task].state, TaskState::Done(_)) {
            return;
        }
        self.unfinished -= 1;
        self.done += 1;
        let failed = matches!(outcome, Outcome::Failed(_) | Outcome::TimedOut);
        self.failed += usize::from(failed);
        if let Some((host, _, _)) = self.tasks[task].last_run {
            self.hosts[host].done += 1;
            self.hosts[host].failed += usize::from(failed);
        }
        let rt = &self.tasks[task];
        let (finished, run_s) = match rt.last_run {
            Some((_, start, end)) => (Some(self.epoch(end)), Some((end - start).as_secs_f64())),
            None => (None, None),
        };
        let hit = rt
            .first_choice
            .zip(rt.last_run)
            .map(|(first, (host, _, _))| first == host);
        let (status, reason) = match &outcome {
            Outcome::Failed(status) => (Some(status.clone()), None),
            Outcome::NotRun(why) => (None, Some(why.as_str())),
            Outcome::Cancelled => (None, Some("cancelled")),
            Outcome::Skipped => (None, Some(stages::SKIP_REASON)),
            _ => (None, None),
        };
        let seq = self.cfg.job.tasks[task].seq;
        let end = TaskEnd {
            state: task_label(&outcome),
            status: status.as_ref(),
            reason,
            started: rt.first_started.map(|at| self.epoch(at)),
            finished,
            run_s,
            hit,
        };
        let recorded = self.store.task_finished(seq, &end);
        self.record(recorded);
        if outcome == Outcome::Skipped {
            self.write_skipped(task);
        }
        self.tasks[task].state = TaskState::Done(outcome.clone());
        self.release_dependents(task, &outcome);
    }

    /// A pipeline task ended: start the tasks it released, or end those that now can never
    /// run (skipped after a failure; interrupted or cancelled with it otherwise).
    fn release_dependents(&mut self, task: usize, outcome: &Outcome) {
        let Some(readiness) = self.readiness.as_mut() else {
            return;
        };
        if *outcome == Outcome::Succeeded {
            let host = self.tasks[task].last_run.map(|(h, _, _)| h);
            for ready in readiness.succeeded(task, host) {
                self.start_ready(ready);
            }
            return;
        }
        let follows = stages::dependent_outcome(outcome);
        for dependent in readiness.failed(task) {
            self.finish_task(dependent, follows.clone());
        }
    }

    /// The tasks a pipeline holds for their predecessor's host until dispatch begins.
    fn take_held(&mut self) -> Vec<Ready> {
        self.readiness
            .as_mut()
            .map(Readiness::take_held)
            .unwrap_or_default()
    }

    /// A released task starts at once where its `each_after` predecessor ran (its files are
    /// there) while that host can take it now, else it is queued like any other.
    fn start_ready(&mut self, ready: Ready) {
        if let Some(why) = self.stopped {
            return self.finish_task(ready.task, why.outcome());
        }
        let throttle = self.cfg.job.throttle.unwrap_or(u32::MAX);
        let may_start = !self.paused && self.dispatching && self.running < throttle;
        match placement::affinity::host_for(&self.views, ready.prefer) {
            Some(host) if may_start => self.launch(ready.task, host),
            _ => self.placement.push(TaskRef {
                id: ready.task as u32,
                key: self.tasks[ready.task].key,
            }),
        }
    }

    /// The joblog line of a task skipped because a task it depends on failed.
    fn write_skipped(&mut self, task: usize) {
        let Some(log) = self.joblog.as_mut() else {
            return;
        };
        let entry = joblog::Entry {
            seq: self.cfg.job.tasks[task].index,
            host: "-",
            start: (self.started_epoch + self.started.elapsed())
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
            runtime: 0.0,
            received: 0,
            status: None,
            timed_out: false,
            command: stages::SKIPPED,
        };
        log.write(&entry, &mut self.out);
    }

    // ----- timers, signals and control ---------------------------------------------------

    fn arm(&mut self, timer: Timer) {
        let after = match timer {
            Timer::Probe => match self.cfg.spec.probe_interval {
                Some(every) => every,
                None => return,
            },
            Timer::Control => CONTROL_POLL,
            Timer::Speculate if self.cfg.spec.faults.speculate.is_some() => SPECULATE_EVERY,
            _ => return,
        };
        self.timers.push(Reverse((Instant::now() + after, timer)));
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Timeout(id) => self.time_out(id),
                Timer::Reconnect(h) => match self.hosts[h].state {
                    HostState::Up => self.connector.want_more(h),
                    HostState::Backoff(_) | HostState::Quarantined { .. } | HostState::Waiting => {
                        self.connector.want_retry(h)
                    }
                    _ => {}
                },
                Timer::HostNotes => self.write_host_notes(),
                Timer::StopDeadline => self.abandon_running(),
                Timer::StartWindow => self.dispatching = true,
                Timer::SupersedeDeadline(id) => {
                    if let Some(launch) = self.end_launch(id) {
                        let seq = self.cfg.job.tasks[launch.task].seq;
                        let at = self.epoch(Instant::now());
                        let recorded = self.store.attempt_ended(
                            seq,
                            launch.attempt,
                            attempt_outcome::SUPERSEDED,
                            None,
                            at,
                        );
                        self.record(recorded);
                        self.write_joblog(&launch, None, launch.started.unwrap_or(now), now);
                    }
                }
                Timer::Probe => {
                    for rt in &mut self.hosts {
                        if let Some(conn) = rt.up_conn() {
                            conn.handle.send(Command::Probe);
                            rt.probe_asked();
                        }
                    }
                    self.arm(Timer::Probe);
                }
                Timer::Control => {
                    self.take_control();
                    self.arm(Timer::Control);
                }
                Timer::Requeue(task, avoid) => {
                    if let Some(pos) = self.delayed.iter().position(|&t| t == task) {
                        self.delayed.swap_remove(pos);
                        self.placement.push_avoiding(
                            TaskRef {
                                id: task as u32,
                                key: self.tasks[task].key,
                            },
                            avoid,
                        );
                    }
                }
                Timer::Speculate => {
                    self.speculate();
                    self.arm(Timer::Speculate);
                }
            }
        }
    }

    fn time_out(&mut self, id: LaunchId) {
        let Some(launch) = self.launches.get_mut(&id) else {
            return;
        };
        if launch.kill.is_some() {
            return;
        }
        launch.kill = Some(Kill::Timeout);
        let (task, host, conn) = (launch.task, launch.host, launch.conn);
        self.outbox.push((host, conn, Command::Kill(id)));
        let timeout = self
            .cfg
            .job
            .timeout_of(self.cfg.job.tasks[task].seq)
            .unwrap_or_default();
        self.note(&format!(
            "task {} timed out after {} on {}; killing it",
            self.cfg.job.tasks[task].index,
            humantime::format_duration(timeout),
            self.hosts[host].spec.name
        ));
    }

    /// Acts on a request `dts cancel`, `pause` or `resume` left in the store.
    fn take_control(&mut self) {
        let control = match self.store.take_control() {
            Ok(control) => control,
            Err(e) => {
                self.record(Err(e));
                None
            }
        };
        match control.as_deref() {
            Some("cancel") => self.stop(Stop::Cancelled),
            Some("pause") if !self.paused && self.stopped.is_none() => {
                self.paused = true;
                self.note(
                    "paused: running tasks finish, no new ones start (dts resume to continue)",
                );
                let recorded = self.store.run_state("paused", None);
                self.record(recorded);
            }
            Some("resume") if self.paused && self.stopped.is_none() => {
                self.paused = false;
                self.note("resumed");
                let recorded = self.store.run_state("running", None);
                self.record(recorded);
            }
            _ => {}
        }
    }

    /// Stops the run: nothing new starts, running tasks are killed on their hosts.
    fn stop(&mut self, why: Stop) {
        self.write_host_notes();
        if self.stopped.is_some() {
            if why == Stop::Interrupted {
                self.note("interrupted again: exiting now");
                let recorded = self
                    .store
                    .run_state("interrupted", Some(self.epoch(Instant::now())));
                self.record(recorded);
                self.commit_and_send();
                self.flush();
                // Exiting closes every connection; the wrappers kill their tasks.
                std::process::exit(crate::error::exit::INTERRUPTED);
            }
            return;
        }
        self.stopped = Some(why);
        match why {
            Stop::Interrupted => {
                self.note("interrupted: killing running tasks (again to exit at once)");
            }
            Stop::Cancelled => self.note("cancelled: killing running tasks"),
            // `record` said why.
            Stop::StoreFailed => {}
        }
        let outcome = why.outcome();
        let waiting = self.placement.drain().into_iter().map(|id| id as usize);
        let delayed = std::mem::take(&mut self.delayed);
        let held = self.take_held().into_iter().map(|r| r.task);
        for task in waiting.chain(delayed).chain(held).collect::<Vec<_>>() {
            self.finish_task(task, outcome.clone());
        }
        let running: Vec<(LaunchId, usize, usize)> = self
            .launches
            .iter()
            .map(|(id, l)| (*id, l.host, l.conn))
            .collect();
        for (id, host, conn) in running {
            if let Some(launch) = self.launches.get_mut(&id) {
                launch.kill.get_or_insert(Kill::Stop(why));
            }
            self.outbox.push((host, conn, Command::Kill(id)));
        }
        let deadline = Instant::now() + self.cfg.spec.kill_grace + STOP_SLACK;
        self.timers.push(Reverse((deadline, Timer::StopDeadline)));
    }

    /// Hosts did not confirm kills in time: stop waiting for them.
    fn abandon_running(&mut self) {
        let ids: Vec<LaunchId> = self.launches.keys().copied().collect();
        for id in ids {
            if let Some(launch) = self.end_launch(id) {
                let seq = self.cfg.job.tasks[launch.task].seq;
                let recorded = self.store.attempt_ended(
                    seq,
                    launch.attempt,
                    attempt_outcome::LOST,
                    None,
                    self.epoch(Instant::now()),
                );
                self.record(recorded);
                self.finish_task(
                    launch.task,
                    Outcome::NotRun("kill not confirmed by the host".into()),
                );
            }
        }
    }

    fn shutdown(&mut self) {
        for rt in &self.hosts {
            for conn in &rt.conns {
                if !matches!(conn.state, ConnState::Down) {
                    conn.handle.send(Command::Shutdown);
                }
            }
        }
    }

    // ----- output ------------------------------------------------------------------------

    fn note(&mut self, message: &str) {
        if !self.cfg.quiet {
            let _ = writeln!(self.err, "dts: {message}");
        }
    }

    /// A note about host `h`, `rest` following its name. Notes within [`NOTE_FOLD`] are
    /// written out together, hosts with the same cause folded into a nodeset.
    fn host_note(&mut self, h: usize, rest: String) {
        if self.cfg.quiet {
            return;
        }
        if self.host_notes.is_empty() {
            self.timers
                .push(Reverse((Instant::now() + NOTE_FOLD, Timer::HostNotes)));
        }
        self.host_notes.push(&self.hosts[h].spec.name, rest);
    }

    fn write_host_notes(&mut self) {
        for line in self.host_notes.take_lines() {
            let _ = writeln!(self.err, "dts: {line}");
        }
    }

    /// Writes this turn's output and notes, with the progress bars out of the way.
    fn flush(&mut self) {
        if let Some(log) = self.joblog.as_mut() {
            log.flush();
        }
        if self.out.is_empty() && self.err.is_empty() {
            return;
        }
        let (out, err) = (std::mem::take(&mut self.out), std::mem::take(&mut self.err));
        let broken = self.output_broken;
        let result = self.progress.suspend(|| {
            let _ = std::io::stderr().lock().write_all(&err);
            if broken {
                return Ok(());
            }
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&out).and_then(|()| stdout.flush())
        });
        // A closed stdout (`dts ... | head`) stops task output, not the run.
        self.output_broken |= result.is_err();
        self.out = out;
        self.out.clear();
        self.err = err;
        self.err.clear();
    }

    fn outcome(&self) -> RunOutcome {
        let finished = Instant::now();
        let tasks = self
            .tasks
            .iter()
            .zip(&self.cfg.job.tasks)
            .map(|(rt, t)| TaskRecord {
                seq: t.seq,
                index: t.index,
                outcome: match &rt.state {
                    TaskState::Done(outcome) => outcome.clone(),
                    _ => Outcome::NotRun("interrupted".into()),
                },
                host: rt.last_run.map(|(h, _, _)| h),
                attempts: rt.attempt,
                started: rt.first_started,
                finished: rt.last_run.map(|(_, _, end)| end),
                run_time: rt.last_run.map(|(_, start, end)| end - start),
                hit: rt
                    .first_choice
                    .zip(rt.last_run)
                    .map(|(first, (host, _, _))| first == host),
            })
            .collect();
        let hosts = self
            .hosts
            .iter()
            .map(|h| HostRecord {
                name: h.spec.name.clone(),
                slots: if h.ever_up { h.slots.unwrap_or(0) } else { 0 },
                weight: h.spec.weight,
                error: match &h.state {
                    HostState::Gone(reason) | HostState::Quarantined { reason, .. } => {
                        Some(reason.clone())
                    }
                    _ if !h.ever_up => h.last_error.clone(),
                    _ => None,
                },
            })
            .collect();
        RunOutcome {
            run_id: self.cfg.run_id.clone(),
            started: self.started,
            finished,
            tasks,
            attempts: self.attempts.clone(),
            hosts,
            stopped: self.stopped,
            no_host: self.no_host,
            requeues: self.requeues,
            left_out: self.cfg.left_out,
            store_error: self.store_error.clone(),
        }
    }
}

fn task_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => task_state::SUCCEEDED,
        Outcome::Failed(_) => task_state::FAILED,
        Outcome::TimedOut => task_state::TIMED_OUT,
        Outcome::Cancelled => task_state::CANCELLED,
        Outcome::NotRun(_) => task_state::NOT_RUN,
        Outcome::Skipped => task_state::SKIPPED,
    }
}

fn attempt_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => attempt_outcome::SUCCEEDED,
        Outcome::Failed(_) => attempt_outcome::FAILED,
        Outcome::TimedOut => attempt_outcome::TIMED_OUT,
        Outcome::Cancelled | Outcome::NotRun(_) | Outcome::Skipped => attempt_outcome::CANCELLED,
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed(status) => format!("failed ({status})"),
        Outcome::TimedOut => "timed out".into(),
        Outcome::Succeeded => "succeeded".into(),
        Outcome::Cancelled => "cancelled".into(),
        Outcome::NotRun(why) => why.clone(),
        Outcome::Skipped => stages::SKIPPED.into(),
    }
}

/// The descriptors a new connection to `rt` would hold, or `None` if it wants none now:
/// a host not yet connected wants its first, an up host more while the tasks left do not
/// fit in the hosts up and its own connections are fewer than its slots and those tasks
/// need.
fn conn_cost(rt: &HostRt, tasks: usize, fit: bool) -> Option<u64> {
    let per_conn = match rt.spec.transport {
        Transport::Ssh => ssh::CHANNELS_PER_CONNECTION,
        Transport::Local | Transport::Slurm { .. } => u32::MAX,
    };
    let wants = match rt.state {
        HostState::Gone(_) | HostState::Connecting => false,
        HostState::Up => !fit && rt.live_conns() < rt.wanted_conns(per_conn, tasks),
        HostState::Waiting | HostState::Backoff(_) | HostState::Quarantined { .. } => {
            rt.live_conns() == 0
        }
    };
    let slots = match rt.spec.transport {
        Transport::Ssh => rt.slots.unwrap_or(per_conn),
        Transport::Local => rt.slots.unwrap_or_else(local_cores),
        Transport::Slurm { .. } => rt.slots.unwrap_or(1),
    };
    let tasks = u32::try_from(tasks).unwrap_or(u32::MAX).max(1);
    wants.then(|| connector::conn_fds(per_conn.min(slots).min(tasks)))
}

fn local_cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

fn round_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs_f64().round() as u64).max(BACKOFF.min(d))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
