//! The staging relay: a connection decorator that runs the staging helpers around each
//! staged launch, so the dispatcher sees only launches that start, print and exit.
//!
//! Between the dispatcher and a real connection it
//! - holds a staged `Launch` until its inputs are on the host (sending only what the
//!   host's cache for this run lacks), then passes it on; a missing input or a failed
//!   transfer ends the launch as a task failure ([`STAGING_FAILED`]) naming the file;
//! - holds a staged launch's `Exited` until its results are back (after a success) and its
//!   directory removed (`--cleanup`); a refused or failed return turns the success into a
//!   failure naming the file;
//! - on `Shutdown`, removes the run's directory on the host first (`--cleanup`).
//!
//! A helper whose connection dies reports the launch `Refused`, which requeues it like any
//! launch lost with its host. [`Stager`] holds what the connections of a run share: the
//! per-host caches (content hash → sent), the hashes of local files, and transfer figures.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::local::{Found, Hashes, Input, was_asked, write_returned};
use super::{Prepared, STAGING_FAILED, Staging, TaskPlan, frame, script, stream};
use crate::job::{Context, JobSpec};
use crate::transport::{
    Command, ConnHandle, ConnId, Event, EventSender, ExitStatus, HelperOutput, LaunchId, Stream,
};

/// How long the end of a run waits for the hosts to remove its directories.
const CLOSE_WAIT: Duration = Duration::from_secs(30);
/// The file in a run's directory holding its staging figures ([`HostStats`] per host).
pub const STATS_FILE: &str = "staging.json";
/// Contents being read and sent to one host at once, in MiB: a host's tasks that all need
/// large inputs send them a few at a time, so sending starts as soon as the first is read
/// and memory holds a few inputs rather than all of them. Small inputs pass freely.
const IN_FLIGHT_MIB: u32 = 128;
/// Events a relay buffers between its connection and the dispatcher.
const RELAY_QUEUE: usize = 1024;

/// What one host moved during the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostStats {
    pub host: String,
    /// Bytes written to the host's staging helpers (contents, framing, manifests).
    pub sent_bytes: u64,
    /// Bytes the host returned.
    pub returned_bytes: u64,
    /// Distinct contents sent to the host (each at most once per run).
    pub files_sent: u64,
    /// Inputs the host already had from an earlier task of the run.
    pub cache_hits: u64,
    /// Wall time during which any staging helper ran on the host (the rate is bytes over
    /// this; helpers running at once count once).
    pub seconds: f64,
}

impl HostStats {
    /// Bytes per second moved while staging, both ways.
    pub fn rate(&self) -> f64 {
        match self.seconds {
            s if s > 0.0 => (self.sent_bytes + self.returned_bytes) as f64 / s,
            _ => 0.0,
        }
    }
}

/// Whether a host has a content: sent, or on its way in another task's transfer.
enum Slot {
    Sending(watch::Receiver<Option<bool>>),
    Sent,
}

struct HostStage {
    cache: Mutex<HashMap<String, Slot>>,
    stats: Mutex<HostStats>,
    /// A task was staged there: the run has a directory to remove.
    used: AtomicBool,
    cleaned: AtomicBool,
    /// MiB of contents being read and sent to the host at once ([`IN_FLIGHT_MIB`]).
    in_flight: tokio::sync::Semaphore,
    /// Helpers running there now, and since when one has been.
    busy: Mutex<(usize, Instant)>,
}

/// Counts a helper's run in its host's busy time ([`HostStats::seconds`]) while held.
struct Busy<'a>(&'a HostStage);

impl<'a> Busy<'a> {
    fn start(stage: &'a HostStage) -> Busy<'a> {
        let mut busy = stage.busy.lock().expect("not poisoned");
        if busy.0 == 0 {
            busy.1 = Instant::now();
        }
        busy.0 += 1;
        Busy(stage)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().expect("not poisoned");
        busy.0 -= 1;
        if busy.0 == 0 {
            let seconds = busy.1.elapsed().as_secs_f64();
            self.0.stats.lock().expect("not poisoned").seconds += seconds;
        }
    }
}

/// The tasks `seqs` (1-based) and what they stage (`None`: nothing; they run where
/// unstaged tasks do).
struct Part {
    seqs: std::ops::RangeInclusive<u32>,
    prepared: Option<Prepared>,
}

/// What the connections of a staged run share.
pub struct Stager {
    run_id: String,
    /// A plain job's one part, or a pipeline's stages in order.
    parts: Vec<Part>,
    /// Where relative paths start on this machine (the submitter's working directory).
    local_dir: std::path::PathBuf,
    /// Every part that stages cleans up: the run's directory goes at the end.
    cleanup_run: bool,
    hashes: Hashes,
    plans: Mutex<HashMap<LaunchId, Result<TaskPlan, String>>>,
    hosts: Vec<HostStage>,
    closing: Mutex<Vec<JoinHandle<()>>>,
}

enum StageError {
    /// The connection went away: the launch is requeued like any lost with its host.
    Lost,
    /// The task fails, for this reason.
    Failed(String),
}

impl Stager {
    /// The stager of `job`'s run (which must stage files) over `hosts`.
    pub fn new(run_id: &str, job: &JobSpec, hosts: &[String]) -> Result<Stager, String> {
        let parts = parts(job)?;
        let staged = || parts.iter().filter_map(|p| p.prepared.as_ref());
        let local_dir = staged()
            .next()
            .map_or_else(|| std::path::PathBuf::from("."), |p| p.local_dir.clone());
        let cleanup_run = staged().all(|p| p.cleanup);
        Ok(Stager {
            run_id: run_id.to_string(),
            parts,
            local_dir,
            cleanup_run,
            hashes: Hashes::default(),
            plans: Mutex::default(),
            hosts: hosts
                .iter()
                .map(|name| HostStage {
                    cache: Mutex::default(),
                    stats: Mutex::new(HostStats {
                        host: name.clone(),
                        ..HostStats::default()
                    }),
                    used: AtomicBool::new(false),
                    cleaned: AtomicBool::new(false),
                    in_flight: tokio::sync::Semaphore::new(IN_FLIGHT_MIB as usize),
                    busy: Mutex::new((0, Instant::now())),
                })
                .collect(),
            closing: Mutex::default(),
        })
    }

    /// What task `seq` stages, if anything.
    fn prepared_for(&self, seq: u32) -> Option<&Prepared> {
        let part = self.parts.iter().find(|p| p.seqs.contains(&seq));
        part.and_then(|p| p.prepared.as_ref())
    }

    /// Where attempt `attempt` of task `seq` (numbered `index`) runs on its host, if it
    /// stages files.
    pub fn workdir(&self, seq: u32, index: u64, attempt: u32) -> Option<String> {
        self.prepared_for(seq)?;
        Some(super::task_workdir(&self.run_id, index, attempt))
    }

    /// Records what launch `id` stages, if it stages anything; its `Launch` command
    /// follows on a relayed connection.
    pub fn expect(&self, id: LaunchId, ctx: &Context<'_>, attempt: u32) {
        let Some(prepared) = self.prepared_for(ctx.seq) else {
            return;
        };
        let plan = prepared.plan(ctx, attempt);
        self.plans.lock().expect("not poisoned").insert(id, plan);
    }

    /// A relay for connection `conn` reporting to `events`: give the connection
    /// [`Relay::events`], then wrap its handle with [`Relay::wrap`].
    pub fn relay(self: &Arc<Self>, conn: ConnId, events: EventSender) -> Relay {
        let (inner_tx, inner_rx) = mpsc::channel(RELAY_QUEUE);
        Relay {
            stager: self.clone(),
            host: conn.host,
            events,
            inner_tx,
            inner_rx,
        }
    }

    /// Waits (bounded) for the hosts to remove the run's directories.
    pub async fn finish(&self) {
        let handles: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.closing.lock().expect("not poisoned"));
        let all = futures_join(handles);
        let _ = tokio::time::timeout(CLOSE_WAIT, all).await;
    }

    /// What each host moved, in inventory order.
    pub fn stats(&self) -> Vec<HostStats> {
        self.hosts
            .iter()
            .map(|h| h.stats.lock().expect("not poisoned").clone())
            .collect()
    }

    /// Bytes moved so far on every host, both ways (for the progress line).
    pub fn moved(&self) -> u64 {
        self.hosts
            .iter()
            .map(|h| {
                let stats = h.stats.lock().expect("not poisoned");
                stats.sent_bytes + stats.returned_bytes
            })
            .sum()
    }

    fn stats_of(&self, host: usize, change: impl FnOnce(&mut HostStats)) {
        change(&mut self.hosts[host].stats.lock().expect("not poisoned"));
    }
}

/// A plain job stages alike for every task; a pipeline's stages each their own way, with
/// their own matrix axes as placeholders.
fn parts(job: &JobSpec) -> Result<Vec<Part>, String> {
    let prepare = |staging: &Staging, params: &[String]| match staging.is_off() {
        true => Ok(None),
        false => Prepared::new(staging, params).map(Some),
    };
    let Some(pipeline) = &job.pipeline else {
        // Every task, whatever its number: a retry's job holds only the tasks it runs again.
        return Ok(vec![Part {
            seqs: 1..=u32::MAX,
            prepared: prepare(&job.staging, &job.matrix.names())?,
        }]);
    };
    let mut first = 1;
    let mut parts = Vec::with_capacity(pipeline.stages.len());
    for stage in &pipeline.stages {
        let staging = stage.staging.as_ref().unwrap_or(&job.staging);
        let end = first + stage.tasks as u32;
        parts.push(Part {
            seqs: first..=end - 1,
            prepared: prepare(staging, &stage.matrix.names())
                .map_err(|e| format!("stage `{}`: {e}", stage.name))?,
        });
        first = end;
    }
    Ok(parts)
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}

/// A relay being set up: see [`Stager::relay`].
pub struct Relay {
    stager: Arc<Stager>,
    host: usize,
    events: EventSender,
    inner_tx: EventSender,
    inner_rx: mpsc::Receiver<Event>,
}

enum Phase {
    /// Its inputs are being sent; `killed` if a kill came meanwhile.
    StagingIn { killed: bool },
    /// Passed on to the connection.
    Running(TaskPlan),
}

type Inner = Arc<Mutex<Box<dyn ConnHandle>>>;

/// What a relay's tasks share.
#[derive(Clone)]
struct Ctx {
    stager: Arc<Stager>,
    host: usize,
    events: EventSender,
    inner: Inner,
    launches: Arc<Mutex<HashMap<LaunchId, Phase>>>,
}

impl Relay {
    /// The event sender to give the real connection.
    pub fn events(&self) -> EventSender {
        self.inner_tx.clone()
    }

    /// Wraps the real connection's handle; the relay's work runs on the current runtime.
    pub fn wrap(self, inner: Box<dyn ConnHandle>) -> Box<dyn ConnHandle> {
        let ctx = Ctx {
            stager: self.stager,
            host: self.host,
            events: self.events,
            inner: Arc::new(Mutex::new(inner)),
            launches: Arc::default(),
        };
        tokio::spawn(forward(ctx.clone(), self.inner_rx));
        Box::new(StagedConn { ctx })
    }
}

struct StagedConn {
    ctx: Ctx,
}

impl ConnHandle for StagedConn {
    fn send(&self, command: Command) {
        let ctx = &self.ctx;
        match command {
            Command::Launch {
                id,
                script,
                input,
                warm,
            } => {
                let plan = ctx.stager.plans.lock().expect("not poisoned").remove(&id);
                let Some(plan) = plan else {
                    return ctx.send(Command::Launch {
                        id,
                        script,
                        input,
                        warm,
                    });
                };
                ctx.launches
                    .lock()
                    .expect("not poisoned")
                    .insert(id, Phase::StagingIn { killed: false });
                tokio::spawn(stage_then_launch(
                    ctx.clone(),
                    id,
                    plan,
                    (script, input, warm),
                ));
            }
            Command::Kill(id) => {
                let mut launches = ctx.launches.lock().expect("not poisoned");
                if let Some(Phase::StagingIn { killed }) = launches.get_mut(&id) {
                    *killed = true;
                    return;
                }
                drop(launches);
                ctx.send(Command::Kill(id));
            }
            Command::Shutdown => {
                let handle = tokio::spawn(close(ctx.clone()));
                ctx.stager
                    .closing
                    .lock()
                    .expect("not poisoned")
                    .push(handle);
            }
            other => ctx.send(other),
        }
    }
}

impl Ctx {
    fn send(&self, command: Command) {
        self.inner.lock().expect("not poisoned").send(command);
    }

    fn stage(&self) -> &HostStage {
        &self.stager.hosts[self.host]
    }

    /// Runs a helper on the connection; `None` if the connection went away first.
    async fn helper(&self, script: String, input: Vec<u8>) -> Option<HelperOutput> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Helper {
            script,
            input,
            reply,
        });
        answer.await.ok()
    }

    async fn emit(&self, event: Event) {
        let _ = self.events.send(event).await;
    }

    /// A staged launch that cannot run: it starts and fails at once, saying why.
    async fn fail_before_start(&self, id: LaunchId, why: &str) {
        let at = Instant::now();
        self.emit(Event::Started { id, at }).await;
        self.say(id, why).await;
        let status = ExitStatus::Code(STAGING_FAILED);
        self.emit(Event::Exited { id, status, at }).await;
    }

    async fn say(&self, id: LaunchId, why: &str) {
        let data = format!("dts: staging: {why}\n").into_bytes();
        let stream = Stream::Stderr;
        self.emit(Event::Output { id, stream, data }).await;
    }

    async fn remove_task_dir(&self, plan: &TaskPlan) {
        if plan.cleanup {
            let script = script::remove_task(&self.stager.run_id, &plan.task_dir);
            let _ = self.helper(script, Vec::new()).await;
        }
    }
}

/// Passes the connection's events on, holding a staged launch's exit until it is done.
async fn forward(ctx: Ctx, mut inner: mpsc::Receiver<Event>) {
    while let Some(event) = inner.recv().await {
        match event {
            Event::Exited { id, status, at } => {
                let phase = ctx.launches.lock().expect("not poisoned").remove(&id);
                match phase {
                    Some(Phase::Running(plan)) => {
                        tokio::spawn(finish_launch(ctx.clone(), id, status, at, plan));
                    }
                    _ => ctx.emit(Event::Exited { id, status, at }).await,
                }
            }
            Event::Refused { id, reason } => {
                ctx.launches.lock().expect("not poisoned").remove(&id);
                ctx.emit(Event::Refused { id, reason }).await;
            }
            other => ctx.emit(other).await,
        }
    }
}

async fn stage_then_launch(
    ctx: Ctx,
    id: LaunchId,
    plan: Result<TaskPlan, String>,
    (script, input, warm): (String, Vec<u8>, Option<String>),
) {
    let staged = match &plan {
        Ok(plan) => stage_in(&ctx, plan).await,
        Err(why) => Err(StageError::Failed(why.clone())),
    };
    let killed = {
        let mut launches = ctx.launches.lock().expect("not poisoned");
        let killed = matches!(launches.get(&id), Some(Phase::StagingIn { killed: true }));
        match (&staged, &plan) {
            (Ok(()), Ok(plan)) if !killed => {
                launches.insert(id, Phase::Running(plan.clone()));
                drop(launches);
                return ctx.send(Command::Launch {
                    id,
                    script,
                    input,
                    warm,
                });
            }
            _ => launches.remove(&id),
        };
        killed
    };
    if let Ok(plan) = &plan {
        ctx.remove_task_dir(plan).await;
    }
    match staged {
        Err(StageError::Lost) => {
            let reason = "connection lost while staging".to_string();
            ctx.emit(Event::Refused { id, reason }).await;
        }
        _ if killed => {
            let reason = "killed before it started".to_string();
            ctx.emit(Event::Refused { id, reason }).await;
        }
        Err(StageError::Failed(why)) => ctx.fail_before_start(id, &why).await,
        Ok(()) => unreachable!("a staged launch not killed was passed on"),
    }
}

/// What a task's inputs need on the host: contents this task sends, contents another task
/// is sending (wait for them), and how many the host already has.
struct Claims {
    send: Vec<(String, watch::Sender<Option<bool>>)>,
    wait: Vec<(String, watch::Receiver<Option<bool>>)>,
    hits: u64,
}

fn claim(stage: &HostStage, inputs: &[Input]) -> Claims {
    let mut cache = stage.cache.lock().expect("not poisoned");
    let mut claims = Claims {
        send: Vec::new(),
        wait: Vec::new(),
        hits: 0,
    };
    let mut seen = HashSet::new();
    for input in inputs {
        let Input::File { path, hash, .. } = input else {
            continue;
        };
        if !seen.insert(hash.clone()) {
            continue;
        }
        match cache.get(hash) {
            Some(Slot::Sent) => claims.hits += 1,
            Some(Slot::Sending(rx)) => claims.wait.push((path.clone(), rx.clone())),
            None => {
                let (tx, rx) = watch::channel(None);
                cache.insert(hash.clone(), Slot::Sending(rx));
                claims.send.push((hash.clone(), tx));
            }
        }
    }
    claims
}

/// Marks the claimed contents sent (or frees them for another try) and wakes waiters.
fn settle(stage: &HostStage, sent: Vec<(String, watch::Sender<Option<bool>>)>, ok: bool) {
    let mut cache = stage.cache.lock().expect("not poisoned");
    for (hash, tx) in sent {
        if ok {
            cache.insert(hash, Slot::Sent);
        } else {
            cache.remove(&hash);
        }
        let _ = tx.send(Some(ok));
    }
}

async fn stage_in(ctx: &Ctx, plan: &TaskPlan) -> Result<(), StageError> {
    ctx.stage().used.store(true, Ordering::SeqCst);
    let stager = ctx.stager.clone();
    let paths = plan.inputs.clone();
    let mut found = blocking(move || {
        let mut found = Found::default();
        for path in &paths {
            (stager.hashes).find(&stager.local_dir, path, &mut found)?;
        }
        Ok(found)
    })
    .await?;
    let may_send = unsent_bytes(ctx.stage(), &found.inputs);
    let weight = ((may_send >> 20) as u32).min(IN_FLIGHT_MIB);
    // Held until the host has it all; a closed semaphore never happens (never closed).
    let _turn = ctx.stage().in_flight.acquire_many(weight).await;
    let stager = ctx.stager.clone();
    let (building, inputs) = blocking(move || {
        let building = stream::read_unhashed(&mut found, &stager.hashes, may_send)?;
        Ok((building, found.inputs))
    })
    .await?;
    let claims = claim(ctx.stage(), &inputs);
    let waited = claims.wait.len() as u64;
    for (path, mut rx) in claims.wait {
        let sent = rx.wait_for(Option::is_some).await.map(|v| *v == Some(true));
        if !matches!(sent, Ok(true)) {
            settle(ctx.stage(), claims.send, false);
            return Err(StageError::Failed(format!(
                "input '{path}' could not be sent to the host (another task's transfer of it failed)"
            )));
        }
    }
    let hashes: Vec<String> = claims.send.iter().map(|(h, _)| h.clone()).collect();
    let stager = ctx.stager.clone();
    let built =
        blocking(move || stream::complete(&stager.local_dir, building, &inputs, &hashes)).await;
    let stream = match built {
        Ok(stream) => stream,
        Err(e) => {
            settle(ctx.stage(), claims.send, false);
            return Err(e);
        }
    };
    let (files, sent_bytes) = (claims.send.len() as u64, stream.len() as u64);
    let script = script::stage_in(&ctx.stager.run_id, &plan.task_dir);
    let busy = Busy::start(ctx.stage());
    let output = ctx.helper(script, stream).await;
    drop(busy);
    let ok = matches!(&output, Some(o) if o.status.success());
    settle(ctx.stage(), claims.send, ok);
    ctx.stager.stats_of(ctx.host, |s| {
        s.sent_bytes += sent_bytes;
        if ok {
            s.files_sent += files;
            s.cache_hits += claims.hits + waited;
        }
    });
    match output {
        None => Err(StageError::Lost),
        Some(o) if o.status.success() => Ok(()),
        Some(o) => Err(StageError::Failed(helper_failure(
            "sending the inputs failed",
            &o,
        ))),
    }
}

/// Bytes of the contents a task may send to a host: those not read yet this run (their
/// hash is unknown), and those the host neither has nor is being sent; each once.
fn unsent_bytes(stage: &HostStage, inputs: &[Input]) -> u64 {
    let cache = stage.cache.lock().expect("not poisoned");
    let mut seen = HashSet::new();
    inputs
        .iter()
        .filter_map(|input| match input {
            Input::File { hash, len, .. } if hash.is_empty() => Some(*len),
            Input::File { hash, len, .. } if !cache.contains_key(hash) && seen.insert(hash) => {
                Some(*len)
            }
            _ => None,
        })
        .sum()
}

async fn finish_launch(ctx: Ctx, id: LaunchId, status: ExitStatus, at: Instant, plan: TaskPlan) {
    let mut status = status;
    if status.success() && !plan.returns.is_empty() {
        match bring_back(&ctx, &plan).await {
            Ok(()) => {}
            Err(StageError::Lost) => {
                let reason = "connection lost while returning files".to_string();
                return ctx.emit(Event::Refused { id, reason }).await;
            }
            Err(StageError::Failed(why)) => {
                ctx.say(id, &why).await;
                status = ExitStatus::Code(STAGING_FAILED);
            }
        }
    }
    ctx.remove_task_dir(&plan).await;
    ctx.emit(Event::Exited { id, status, at }).await;
}

async fn bring_back(ctx: &Ctx, plan: &TaskPlan) -> Result<(), StageError> {
    let script = script::pack(&ctx.stager.run_id, &plan.task_dir, &plan.returns);
    let busy = Busy::start(ctx.stage());
    let output = ctx.helper(script, Vec::new()).await;
    drop(busy);
    let output = output.ok_or(StageError::Lost)?;
    let returned = output.stdout.len() as u64;
    ctx.stager
        .stats_of(ctx.host, |s| s.returned_bytes += returned);
    if !output.status.success() {
        return Err(StageError::Failed(helper_failure(
            "returning the results failed",
            &output,
        )));
    }
    let stager = ctx.stager.clone();
    let asked = plan.returns.clone();
    blocking(move || {
        let entries = frame::decode(&output.stdout)
            .map_err(|e| format!("refusing the returned files: {e}"))?;
        if let Some(stray) = entries
            .iter()
            .map(|e| match e {
                frame::Entry::File { path, .. } | frame::Entry::Dir { path, .. } => path,
            })
            .find(|p| !was_asked(p, &asked))
        {
            return Err(format!(
                "refusing the returned files: '{stray}' was not asked for"
            ));
        }
        write_returned(&stager.local_dir, &entries).map(|_| ())
    })
    .await
}

/// Runs file work off the runtime's thread, which the dispatcher shares.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, StageError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(StageError::Failed),
        Err(e) => Err(StageError::Failed(format!("staging stopped: {e}"))),
    }
}

/// The helper's own words (`dts-stage: ...`), else its status.
fn helper_failure(what: &str, output: &HelperOutput) -> String {
    let text = String::from_utf8_lossy(&output.stderr);
    let said: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("dts-stage: "))
        .collect();
    match said.last() {
        Some(line) => (*line).to_string(),
        None if text.trim().is_empty() => format!("{what} ({})", output.status),
        None => format!("{what} ({}): {}", output.status, text.trim()),
    }
}

/// At the end of the run: the run's directory goes (`--cleanup`), then the connection.
async fn close(ctx: Ctx) {
    let stage = ctx.stage();
    let remove = ctx.stager.cleanup_run
        && stage.used.load(Ordering::SeqCst)
        && !stage.cleaned.swap(true, Ordering::SeqCst);
    if remove {
        let script = script::remove_run(&ctx.stager.run_id);
        let _ = tokio::time::timeout(CLOSE_WAIT, ctx.helper(script, Vec::new())).await;
    }
    ctx.send(Command::Shutdown);
}

/// The end report's staging lines: per host, what went each way and how fast.
pub fn render_stats(hosts: &[HostStats]) -> String {
    let mut out = String::new();
    for h in hosts.iter().filter(|h| h.seconds > 0.0) {
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        out.push_str(&format!(
            "staged {}: sent {} ({} file{}, {} cache hit{}), returned {}, {:.2} s at {}/s\n",
            h.host,
            human_bytes(h.sent_bytes),
            h.files_sent,
            plural(h.files_sent),
            h.cache_hits,
            plural(h.cache_hits),
            human_bytes(h.returned_bytes),
            h.seconds,
            human_bytes(h.rate() as u64),
        ));
    }
    out
}

fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", n as f64 / 1_048_576.0),
        _ => format!("{:.2} GiB", n as f64 / 1_073_741_824.0),
    }
}

/// The figures a finished run left in its directory, if it staged anything.
pub fn read_stats(run_dir: &std::path::Path) -> Option<Vec<HostStats>> {
    let text = std::fs::read(run_dir.join(STATS_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_running_at_once_count_once_in_a_host_s_busy_time() {
        let overrides = crate::job::Overrides {
            command: vec!["true".into()],
            ..Default::default()
        };
        let job = crate::job::build(&overrides, &mut std::io::empty()).unwrap();
        let stager = Stager::new("r", &job, &["h".into()]).unwrap();
        let stage = &stager.hosts[0];
        let first = Busy::start(stage);
        let second = Busy::start(stage);
        drop(first);
        assert_eq!(stager.stats()[0].seconds, 0.0, "one still runs");
        drop(second);
        let once = stager.stats()[0].seconds;
        assert!(once > 0.0 && once < 1.0, "{once}");
    }

    #[test]
    fn staging_lines_of_the_end_report() {
        let hosts = [
            HostStats {
                host: "h1".into(),
                sent_bytes: 3 * 1_048_576 + 200,
                returned_bytes: 5000,
                files_sent: 1,
                cache_hits: 11,
                seconds: 0.5,
            },
            HostStats {
                host: "idle".into(),
                ..HostStats::default()
            },
        ];
        insta::assert_snapshot!(render_stats(&hosts));
    }
}
