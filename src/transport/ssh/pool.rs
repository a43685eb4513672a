//! The connection thread's loop: a non-blocking libssh2 session multiplexing task channels.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, TryRecvError};

use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TrySendError;

use ssh2::{BlockDirections, Channel, ErrorCode, Session};

use super::{CHANNELS_PER_CONNECTION, EAGAIN, poll_events};
use crate::probe;
use crate::transport::worker::{self, EndSplitter};
use crate::transport::{
    Command, ConnId, Event, EventSender, ExitStatus, HelperOutput, HelperReply, HostError,
    LaunchId, Stream, wrapper,
};

/// Reads of up to 32 KiB one channel gets per turn: a task flooding its output must not
/// keep the loop from turning, or no heartbeat would reach the guard.
const DRAIN_PER_TURN: u32 = 16;

/// Channel open refused (e.g. `MaxSessions`) and channel request denied.
const CHANNEL_FAILURE: i32 = -21;
const REQUEST_DENIED: i32 = -22;

/// Work waiting for a channel.
enum Job {
    Task {
        id: LaunchId,
        script: String,
        input: Vec<u8>,
        /// What a warm worker runs instead, on a warm host.
        warm: Option<String>,
    },
    /// A warm worker (see [`worker`]).
    Worker,
    Probe,
    /// A liveness check: a channel opened and closed at once, answered by sshd itself.
    /// Used only where the guard could not start.
    Ping,
    /// The connection's guard (see [`wrapper::guard`]).
    Guard,
    /// A staging helper ([`Command::Helper`]): counts as a task channel.
    Helper {
        script: String,
        input: Vec<u8>,
        reply: HelperReply,
    },
}

/// What an open channel is running.
enum Work {
    Task(LaunchId),
    Probe {
        output: Vec<u8>,
        started: Instant,
    },
    Ping,
    /// The guard; what it printed since its last complete line.
    Guard {
        line: Vec<u8>,
    },
    /// A staging helper: what it printed, answered once it closes.
    Helper {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        reply: HelperReply,
    },
    /// A warm worker and the task it runs.
    Worker(Box<WorkerSlot>),
}

/// A warm worker channel: whether it said [`worker::READY`], and its task.
/// How long a worker may take to print its ready line (Perl starts in milliseconds).
const WORKER_START_LIMIT: Duration = Duration::from_secs(20);

struct WorkerSlot {
    ready: bool,
    /// When its channel was added; a worker that is not ready [`WORKER_START_LIMIT`] later
    /// never will be (a host whose `perl` hangs).
    opened: Instant,
    /// Its stdout until the ready line.
    head: Vec<u8>,
    task: Option<WarmTask>,
}

/// The task a worker runs: both streams are cut at its token.
struct WarmTask {
    id: LaunchId,
    token: String,
    stdout: EndSplitter,
    stderr: EndSplitter,
    /// The kill line was written.
    killed: bool,
}

impl WorkerSlot {
    /// Takes bytes the worker wrote; returns what to report: the task's bytes, and its
    /// exit once both streams have reached the token and the record is whole.
    fn take(&mut self, stream: Stream, data: &[u8]) -> Vec<Event> {
        if !self.ready {
            if stream == Stream::Stdout {
                self.head.extend_from_slice(data);
                let line = format!("{}\n", worker::READY);
                self.ready = self.head.windows(line.len()).any(|w| w == line.as_bytes());
            }
            return Vec::new();
        }
        let Some(task) = &mut self.task else {
            return Vec::new();
        };
        let splitter = match stream {
            Stream::Stdout => &mut task.stdout,
            Stream::Stderr => &mut task.stderr,
        };
        let bytes = splitter.feed(data);
        let mut events = Vec::new();
        if !bytes.is_empty() {
            events.push(Event::Output {
                id: task.id,
                stream,
                data: bytes,
            });
        }
        let status = task
            .stdout
            .record()
            .and_then(|record| worker::record_status(record, &task.token));
        if let (Some(status), Some(_)) = (status, task.stderr.record()) {
            events.push(Event::Exited {
                id: task.id,
                status,
                at: Instant::now(),
            });
            self.task = None;
        }
        events
    }

    /// The worker ended during its task: what it had held back is the task's, and the
    /// task ended as the worker did.
    fn abandon(&mut self, status: ExitStatus) -> Vec<Event> {
        let Some(mut task) = self.task.take() else {
            return Vec::new();
        };
        let mut events = Vec::new();
        for (stream, splitter) in [
            (Stream::Stdout, &mut task.stdout),
            (Stream::Stderr, &mut task.stderr),
        ] {
            if splitter.record().is_none() {
                let data = splitter.finish();
                if !data.is_empty() {
                    events.push(Event::Output {
                        id: task.id,
                        stream,
                        data,
                    });
                }
            }
        }
        events.push(Event::Exited {
            id: task.id,
            status,
            at: Instant::now(),
        });
        events
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Opened; the exec request has not completed.
    Exec,
    /// Running: read its output until the remote side sends EOF.
    Running,
    /// Remote EOF seen: wait for its close, then close ours.
    Closing,
}

struct Chan {
    work: Work,
    channel: Channel,
    phase: Phase,
    /// The command, kept until exec succeeds.
    script: Option<String>,
    /// A kill was requested: close the control line once the command runs.
    kill: bool,
    eof_sent: bool,
    /// What is still to be written on the control line (secrets, a helper's stdin), once
    /// the command runs; a deque, so writing a large input in pieces stays linear.
    input: VecDeque<u8>,
}

pub(super) struct Pool {
    conn: ConnId,
    session: Session,
    fd: RawFd,
    events: EventSender,
    queue: VecDeque<Job>,
    /// The job whose `channel_session()` returned EAGAIN: libssh2 must be called again for it.
    opening: Option<Job>,
    chans: Vec<Chan>,
    shutting_down: bool,
    next_keepalive: Instant,
    /// When the server last answered anything.
    last_heard: Instant,
    /// Silence after which a ping is sent, and after which the host counts as lost.
    ping_after: Duration,
    dead_after: Duration,
    /// The guard's script, until its channel is queued; `None` once it is.
    guard_script: Option<String>,
    /// Whether the guard runs (heartbeats then replace pings).
    guard_up: bool,
    /// The guard said it killed the connection's sessions: dts was silent too long.
    guard_expired: bool,
    /// How often a heartbeat is written to the guard.
    beat: Duration,
    next_beat: Instant,
    /// When the loop last ran: a gap longer than any wait means dts itself was stopped.
    last_turn: Instant,
    buf: Vec<u8>,
    /// Tasks that come with warm code run on workers; false once a worker could not start.
    warm: bool,
    /// Makes the tasks' frame tokens unguessable; `next_token` makes them unique.
    token_seed: u64,
    next_token: u64,
}

type Step = Result<bool, HostError>;

/// When a silent connection is checked, and when it is given up.
#[derive(Debug, Clone)]
pub(super) struct Liveness {
    pub ping_after: Duration,
    pub dead_after: Duration,
    /// Heartbeat interval of the guard.
    pub beat: Duration,
    /// The guard to start on the connection (`None`: liveness by pings only).
    pub guard: Option<String>,
}

fn code(e: &ssh2::Error) -> i32 {
    match e.code() {
        ErrorCode::Session(c) => c,
        ErrorCode::SFTP(c) => c,
    }
}

fn lost(e: &ssh2::Error) -> HostError {
    HostError::transient(format!("connection lost: {}", e.message()))
}

impl Pool {
    pub(super) fn new(
        conn: ConnId,
        session: Session,
        events: EventSender,
        liveness: Liveness,
        warm: bool,
    ) -> Pool {
        let fd = session.as_raw_fd();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let token_seed = xxhash_rust::xxh3::xxh3_64(
            format!("{:?} {} {:?}", now, std::process::id(), conn).as_bytes(),
        );
        Pool {
            conn,
            session,
            fd,
            events,
            queue: VecDeque::new(),
            opening: None,
            chans: Vec::new(),
            shutting_down: false,
            next_keepalive: Instant::now(),
            last_heard: Instant::now(),
            ping_after: liveness.ping_after,
            dead_after: liveness.dead_after,
            guard_script: liveness.guard,
            guard_up: false,
            guard_expired: false,
            beat: liveness.beat,
            next_beat: Instant::now(),
            last_turn: Instant::now(),
            buf: vec![0; 32 * 1024],
            warm,
            token_seed,
            next_token: 0,
        }
    }

    /// Runs until shut down (`Ok`) or the connection fails (`Err`).
    pub(super) fn run(
        &mut self,
        inbox: &mpsc::Receiver<Command>,
        wake: &UnixStream,
        wake_pending: &std::sync::atomic::AtomicBool,
    ) -> Result<(), HostError> {
        if self.guard_script.is_some() {
            self.queue.push_front(Job::Guard);
        }
        loop {
            self.check_own_pause();
            // Cleared before taking commands: one sent after this point wakes us again.
            wake_pending.store(false, std::sync::atomic::Ordering::SeqCst);
            let mut progress = self.take_commands(inbox);
            self.read_guard()?;
            if self.shutting_down && self.chans.is_empty() && self.opening.is_none() {
                return Ok(());
            }
            progress |= self.assign_warm();
            progress |= self.open_next()?;
            for i in (0..self.chans.len()).rev() {
                progress |= self.service(i)?;
            }
            self.keepalive()?;
            self.heartbeat();
            self.check_liveness()?;
            self.check_worker_start();
            if !progress && !self.holds_unread() {
                self.wait(wake);
            }
        }
    }

    fn take_commands(&mut self, inbox: &mpsc::Receiver<Command>) -> bool {
        let (commands, hung_up) = drain_inbox(inbox);
        let mut progress = !commands.is_empty();
        for command in commands {
            match command {
                Command::Launch {
                    id,
                    script,
                    input,
                    warm,
                } => self.queue.push_back(Job::Task {
                    id,
                    script,
                    input,
                    warm,
                }),
                Command::Kill(id) => self.kill(id),
                Command::Probe => self.request_probe(),
                Command::Shutdown => self.shut_down(),
                Command::Helper {
                    script,
                    input,
                    reply,
                } => self.queue.push_back(Job::Helper {
                    script,
                    input,
                    reply,
                }),
            }
        }
        // A dispatcher gone without a word is a shutdown, taken once: the channels still
        // closing are then waited for on the socket like any other work.
        if hung_up && !self.shutting_down {
            self.shut_down();
            progress = true;
        }
        progress
    }

    fn request_probe(&mut self) {
        let pending = matches!(self.opening, Some(Job::Probe))
            || self.queue.iter().any(|j| matches!(j, Job::Probe))
            || self
                .chans
                .iter()
                .any(|c| matches!(c.work, Work::Probe { .. }));
        if !pending {
            self.queue.push_front(Job::Probe);
        }
    }

    fn kill(&mut self, id: LaunchId) {
        if let Some(pos) = self
            .queue
            .iter()
            .position(|j| matches!(j, Job::Task { id: q, .. } if *q == id))
        {
            self.queue.remove(pos);
            self.emit(Event::Refused {
                id,
                reason: "killed before it started".into(),
            });
        } else if let Some(chan) = self
            .chans
            .iter_mut()
            .find(|c| matches!(c.work, Work::Task(t) if t == id))
        {
            chan.kill = true;
        } else if let Some(chan) = self.chans.iter_mut().find(
            |c| matches!(&c.work, Work::Worker(w) if w.task.as_ref().is_some_and(|t| t.id == id)),
        ) {
            // The worker reads it and kills the task's group; the worker lives on.
            if let Work::Worker(slot) = &mut chan.work {
                if let Some(task) = &mut slot.task {
                    if !task.killed {
                        task.killed = true;
                        chan.input.extend(worker::KILL_LINE.iter());
                    }
                }
            }
        } else if matches!(self.opening, Some(Job::Task { id: q, .. }) if q == id) {
            // libssh2 must finish the open; the channel is closed unused once it is open.
            if let Some(Job::Task { script, .. }) = &mut self.opening {
                script.clear();
            }
        }
    }

    fn shut_down(&mut self) {
        self.shutting_down = true;
        for job in std::mem::take(&mut self.queue) {
            if let Job::Task { id, .. } = job {
                self.emit(Event::Refused {
                    id,
                    reason: "connection shut down".into(),
                });
            }
        }
        for chan in &mut self.chans {
            chan.kill = true;
        }
    }

    fn task_channels(&self) -> u32 {
        self.chans
            .iter()
            .filter(|c| {
                matches!(
                    c.work,
                    Work::Task(_) | Work::Helper { .. } | Work::Worker(_)
                )
            })
            .count() as u32
    }

    /// Whether the queue's next task waits for a worker.
    fn front_is_warm(&self) -> bool {
        self.warm
            && matches!(
                self.queue.iter().find(|j| matches!(j, Job::Task { .. })),
                Some(Job::Task { warm: Some(_), .. })
            )
    }

    /// Gives queued warm tasks to idle workers, and asks for more workers while tasks wait
    /// and the connection has room.
    fn assign_warm(&mut self) -> bool {
        let mut progress = false;
        while self.front_is_warm() {
            let Some(i) = self.chans.iter().position(|c| {
                c.phase == Phase::Running
                    && !c.kill
                    && matches!(&c.work, Work::Worker(w) if w.ready && w.task.is_none())
            }) else {
                break;
            };
            let at = self
                .queue
                .iter()
                .position(|j| matches!(j, Job::Task { .. }))
                .expect("a task is queued");
            let Some(Job::Task {
                id,
                warm: Some(code),
                ..
            }) = self.queue.remove(at)
            else {
                unreachable!("front_is_warm saw a warm task");
            };
            let token = worker::token(self.token_seed, self.next_token);
            self.next_token += 1;
            let chan = &mut self.chans[i];
            chan.input.extend(worker::frame(&token, &code).iter());
            if let Work::Worker(slot) = &mut chan.work {
                slot.task = Some(WarmTask {
                    id,
                    stdout: EndSplitter::new(token.as_bytes()),
                    stderr: EndSplitter::new(token.as_bytes()),
                    token,
                    killed: false,
                });
            }
            self.emit(Event::Started {
                id,
                at: Instant::now(),
            });
            progress = true;
        }
        if self.front_is_warm() {
            self.start_workers();
        }
        progress
    }

    /// Queues worker opens for the warm tasks no starting worker will take.
    fn start_workers(&mut self) {
        let waiting = self
            .queue
            .iter()
            .filter(|j| matches!(j, Job::Task { warm: Some(_), .. }))
            .count() as u32;
        let starting = self
            .chans
            .iter()
            .filter(|c| matches!(&c.work, Work::Worker(w) if !w.ready))
            .count() as u32
            + self
                .queue
                .iter()
                .filter(|j| matches!(j, Job::Worker))
                .count() as u32
            + u32::from(matches!(self.opening, Some(Job::Worker)));
        let workers = self.task_channels() + starting
            - self
                .chans
                .iter()
                .filter(|c| matches!(&c.work, Work::Worker(w) if !w.ready))
                .count() as u32;
        let room = CHANNELS_PER_CONNECTION.saturating_sub(workers);
        for _ in 0..waiting.saturating_sub(starting).min(room) {
            self.queue.push_front(Job::Worker);
        }
    }

    /// A worker still not ready long after its channel opened: the host runs per-task.
    fn check_worker_start(&mut self) {
        let late = self.chans.iter().any(|c| {
            matches!(&c.work, Work::Worker(w) if !w.ready
                && w.opened.elapsed() > WORKER_START_LIMIT)
        });
        if late {
            self.fall_back(&format!(
                "no worker ready after {}s",
                WORKER_START_LIMIT.as_secs()
            ));
        }
    }

    /// A worker could not start on this host: its tasks get per-task channels from now on.
    fn fall_back(&mut self, why: &str) {
        if !self.warm {
            return;
        }
        self.warm = false;
        let host = std::thread::current().name().unwrap_or("ssh-?").to_string();
        tracing::info!(
            "{}: warm workers cannot start ({why}): tasks run on per-task channels",
            host.trim_start_matches("ssh-")
        );
        self.queue.retain(|j| !matches!(j, Job::Worker));
        for chan in &mut self.chans {
            if matches!(&chan.work, Work::Worker(w) if !w.ready) {
                chan.kill = true;
            }
        }
    }

    /// Opens a channel for the next job when there is room. libssh2 opens one channel at a
    /// time per session, so at most one open is in flight.
    fn open_next(&mut self) -> Step {
        let job = match self.opening.take() {
            Some(job) => job,
            None => match self.queue.front() {
                Some(Job::Probe | Job::Ping | Job::Guard) => {
                    self.queue.pop_front().expect("front exists")
                }
                Some(Job::Worker) if self.task_channels() < CHANNELS_PER_CONNECTION => {
                    self.queue.pop_front().expect("front exists")
                }
                Some(Job::Helper { .. }) if self.task_channels() < CHANNELS_PER_CONNECTION => {
                    self.queue.pop_front().expect("front exists")
                }
                Some(Job::Task { warm, .. })
                    if !(self.warm && warm.is_some())
                        && self.task_channels() < CHANNELS_PER_CONNECTION =>
                {
                    self.queue.pop_front().expect("front exists")
                }
                _ => return Ok(false),
            },
        };
        match self.session.channel_session() {
            Ok(channel) => {
                self.last_heard = Instant::now();
                self.add_channel(job, channel);
                Ok(true)
            }
            Err(e) if code(&e) == EAGAIN => {
                self.opening = Some(job);
                Ok(false)
            }
            Err(e) if code(&e) == CHANNEL_FAILURE => {
                if let Job::Task { id, .. } = job {
                    self.emit(Event::Refused {
                        id,
                        reason: format!("channel refused: {}", e.message()),
                    });
                }
                Ok(true)
            }
            Err(e) => Err(lost(&e)),
        }
    }

    fn add_channel(&mut self, job: Job, channel: Channel) {
        let (work, script, input) = match job {
            Job::Task {
                id, script, input, ..
            } => (Work::Task(id), Some(script), input),
            Job::Worker => (
                Work::Worker(Box::new(WorkerSlot {
                    ready: false,
                    opened: Instant::now(),
                    head: Vec::new(),
                    task: None,
                })),
                Some(worker::worker_command()),
                Vec::new(),
            ),
            Job::Probe => (
                Work::Probe {
                    output: Vec::new(),
                    started: Instant::now(),
                },
                None,
                Vec::new(),
            ),
            // Opened means answered: close it at once, unused.
            Job::Ping => (Work::Ping, Some(String::new()), Vec::new()),
            Job::Guard => (
                Work::Guard { line: Vec::new() },
                self.guard_script.take(),
                Vec::new(),
            ),
            Job::Helper {
                script,
                input,
                reply,
            } => (
                Work::Helper {
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    reply,
                },
                Some(wrapper::remote_command(wrapper::LoginShell::Other, &script)),
                input,
            ),
        };
        // A task killed while its channel was opening has an empty script: close it unused.
        let killed = matches!(&script, Some(s) if s.is_empty());
        self.chans.push(Chan {
            work,
            channel,
            phase: if killed { Phase::Closing } else { Phase::Exec },
            script,
            kill: killed,
            eof_sent: false,
            input: input.into(),
        });
    }

    fn service(&mut self, i: usize) -> Step {
        match self.chans[i].phase {
            Phase::Exec => self.exec(i),
            Phase::Running => self.read(i),
            Phase::Closing => self.close(i),
        }
    }

    fn exec(&mut self, i: usize) -> Step {
        let chan = &mut self.chans[i];
        let command = chan.script.as_deref().unwrap_or(probe::COMMAND);
        match chan.channel.exec(command) {
            Ok(()) => {
                self.last_heard = Instant::now();
                chan.phase = Phase::Running;
                chan.script = None;
                match chan.work {
                    Work::Task(id) => self.emit(Event::Started {
                        id,
                        at: Instant::now(),
                    }),
                    Work::Guard { .. } => self.guard_up = true,
                    _ => {}
                }
                Ok(true)
            }
            Err(e) if code(&e) == EAGAIN => Ok(false),
            Err(e) if code(&e) == REQUEST_DENIED || code(&e) == CHANNEL_FAILURE => {
                let chan = self.chans.swap_remove(i);
                match chan.work {
                    Work::Task(id) => self.emit(Event::Refused {
                        id,
                        reason: format!("exec refused: {}", e.message()),
                    }),
                    Work::Guard { .. } => {
                        tracing::debug!("guard refused ({}): liveness by pings", e.message())
                    }
                    Work::Worker(_) => self.fall_back(&format!("exec refused: {}", e.message())),
                    _ => {}
                }
                Ok(true)
            }
            Err(e) => Err(lost(&e)),
        }
    }

    /// Reads both streams until they would block; moves on to closing at remote EOF.
    fn read(&mut self, i: usize) -> Step {
        let mut progress = self.write_input(i)?;
        progress |= self.drain(i, Stream::Stdout)?;
        progress |= self.drain(i, Stream::Stderr)?;
        let chan = &mut self.chans[i];
        // A helper's stdin ends once its input is written.
        chan.kill |= matches!(chan.work, Work::Helper { .. }) && chan.input.is_empty();
        if chan.kill && !chan.eof_sent {
            match chan.channel.send_eof() {
                Ok(()) => {
                    chan.eof_sent = true;
                    progress = true;
                }
                Err(e) if code(&e) == EAGAIN => {}
                Err(e) => return Err(lost(&e)),
            }
        }
        if chan.channel.eof() {
            chan.phase = Phase::Closing;
            progress = true;
        }
        Ok(progress)
    }

    /// Writes what the control line still owes the command, as far as the window allows.
    fn write_input(&mut self, i: usize) -> Step {
        let chan = &mut self.chans[i];
        if chan.input.is_empty() || chan.kill {
            return Ok(false);
        }
        // As many pieces as the window takes, within the turn's budget (a staging helper's
        // input can be large).
        let mut progress = false;
        for _ in 0..DRAIN_PER_TURN {
            if chan.input.is_empty() {
                break;
            }
            match std::io::Write::write(&mut chan.channel, chan.input.as_slices().0) {
                Ok(0) => break,
                Ok(n) => {
                    chan.input.drain(..n);
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(HostError::transient(format!("connection lost: {e}"))),
            }
        }
        Ok(progress)
    }

    fn drain(&mut self, i: usize, stream: Stream) -> Step {
        let mut progress = false;
        let mut budget = DRAIN_PER_TURN;
        loop {
            if budget == 0 {
                // More is waiting: let the loop turn first (heartbeats, other channels).
                return Ok(true);
            }
            budget -= 1;
            let chan = &mut self.chans[i];
            let result = match stream {
                Stream::Stdout => chan.channel.read(&mut self.buf),
                Stream::Stderr => chan.channel.stderr().read(&mut self.buf),
            };
            match result {
                Ok(0) => return Ok(progress),
                Ok(n) => {
                    progress = true;
                    self.last_heard = Instant::now();
                    match &mut chan.work {
                        Work::Task(id) => {
                            let event = Event::Output {
                                id: *id,
                                stream,
                                data: self.buf[..n].to_vec(),
                            };
                            self.emit(event);
                        }
                        Work::Probe { output, .. } if stream == Stream::Stdout => {
                            output.extend_from_slice(&self.buf[..n]);
                        }
                        Work::Guard { line } if stream == Stream::Stdout => {
                            line.extend_from_slice(&self.buf[..n]);
                            self.guard_expired |= guard_said_expired(line);
                        }
                        Work::Helper { stdout, stderr, .. } => match stream {
                            Stream::Stdout => stdout.extend_from_slice(&self.buf[..n]),
                            Stream::Stderr => stderr.extend_from_slice(&self.buf[..n]),
                        },
                        Work::Worker(slot) => {
                            for event in slot.take(stream, &self.buf[..n]) {
                                self.emit(event);
                            }
                        }
                        Work::Probe { .. } | Work::Ping | Work::Guard { .. } => {}
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(progress),
                Err(e) => return Err(HostError::transient(format!("connection lost: {e}"))),
            }
        }
    }

    /// Waits for the server's close (sent once the command has exited), then closes ours.
    fn close(&mut self, i: usize) -> Step {
        if matches!(self.chans[i].work, Work::Task(_) | Work::Worker(_)) {
            // A task ended by the guard must not be reported as the task's own end: the
            // guard's word came first on the connection, so read it first.
            self.read_guard()?;
        }
        let chan = &mut self.chans[i];
        if chan.script.is_none() {
            match chan.channel.wait_close() {
                Ok(()) => {}
                Err(e) if code(&e) == EAGAIN => return Ok(false),
                Err(e) => return Err(lost(&e)),
            }
        }
        match chan.channel.close() {
            Ok(()) => {}
            Err(e) if code(&e) == EAGAIN => return Ok(false),
            Err(e) => return Err(lost(&e)),
        }
        self.last_heard = Instant::now();
        let chan = self.chans.swap_remove(i);
        self.finish(chan);
        Ok(true)
    }

    fn finish(&mut self, chan: Chan) {
        let at = Instant::now();
        match chan.work {
            Work::Task(id) if chan.script.is_some() => self.emit(Event::Refused {
                id,
                reason: "killed before it started".into(),
            }),
            Work::Task(id) => {
                let status = exit_status(&chan.channel);
                self.emit(Event::Exited { id, status, at });
            }
            Work::Probe { output, started } => {
                let probe = probe::parse(&output, at - started);
                self.emit(Event::Probed {
                    conn: self.conn,
                    probe,
                });
            }
            Work::Ping => {}
            Work::Helper {
                stdout,
                stderr,
                reply,
            } => {
                let status = exit_status(&chan.channel);
                let _ = reply.send(HelperOutput {
                    status,
                    stdout,
                    stderr,
                });
            }
            Work::Worker(mut slot) => {
                let status = exit_status(&chan.channel);
                if !slot.ready && !self.shutting_down {
                    self.fall_back(&format!("the worker ended with {status}"));
                }
                for event in slot.abandon(status) {
                    self.emit(event);
                }
            }
            Work::Guard { .. } => {
                if !self.shutting_down {
                    tracing::debug!("the guard ended: liveness by pings");
                }
                self.guard_up = false;
            }
        }
    }

    /// Reads what the guard printed; an expired guard ends the connection as
    /// [`HostErrorKind::Stalled`](crate::transport::HostErrorKind::Stalled).
    fn read_guard(&mut self) -> Result<(), HostError> {
        if let Some(i) = self
            .chans
            .iter()
            .position(|c| matches!(c.work, Work::Guard { .. }) && c.phase != Phase::Exec)
        {
            self.drain(i, Stream::Stdout)?;
            self.drain(i, Stream::Stderr)?;
        }
        if self.guard_expired {
            return Err(HostError::stalled(format!(
                "the host heard nothing from dts for {} and killed its tasks \
                 (dts was stopped or frozen)",
                humantime::format_duration(self.dead_after)
            )));
        }
        Ok(())
    }

    /// Writes a heartbeat to the guard when one is due; the guard echoes it back.
    fn heartbeat(&mut self) {
        let now = Instant::now();
        if now < self.next_beat {
            return;
        }
        self.next_beat = now + self.beat;
        if let Some(chan) = self
            .chans
            .iter_mut()
            .find(|c| matches!(c.work, Work::Guard { .. }) && c.phase == Phase::Running)
        {
            if chan.input.len() < 64 && !chan.kill {
                chan.input.extend(b"h\n");
            }
        }
    }

    /// A turn that comes long after the last one means this process was stopped (SIGSTOP,
    /// Ctrl-Z, a frozen VM): the silence was ours, not the host's, so it is forgiven. If the
    /// host's guard gave up meanwhile, it says so, and [`Pool::read_guard`] takes it.
    fn check_own_pause(&mut self) {
        let now = Instant::now();
        let gap = now.saturating_duration_since(self.last_turn);
        if gap > self.ping_after {
            tracing::debug!(
                "connection {:?}: dts was not running for {gap:?}",
                self.conn
            );
            self.last_heard = now;
            self.next_beat = now;
        }
        self.last_turn = now;
    }

    /// A host whose sshd stopped answering (frozen, or the network ate the connection
    /// without a reset) would leave its tasks hanging forever: after `ping_after` of silence
    /// a channel is opened, which sshd answers itself; after `dead_after` of silence the
    /// connection counts as lost and its tasks go back to the queue.
    fn check_liveness(&mut self) -> Result<(), HostError> {
        let silent = self.last_heard.elapsed();
        if silent >= self.dead_after {
            return Err(HostError::transient(format!(
                "host stopped answering (nothing for {}s)",
                silent.as_secs()
            )));
        }
        if self.guard_up {
            // Heartbeats and their echoes keep `last_heard` fresh.
            return Ok(());
        }
        let pinging = matches!(self.opening, Some(Job::Ping))
            || self.queue.iter().any(|j| matches!(j, Job::Ping))
            || self.chans.iter().any(|c| matches!(c.work, Work::Ping));
        if silent >= self.ping_after && !pinging {
            self.queue.push_front(Job::Ping);
        }
        Ok(())
    }

    fn keepalive(&mut self) -> Result<(), HostError> {
        let now = Instant::now();
        if now < self.next_keepalive {
            return Ok(());
        }
        match self.session.keepalive_send() {
            Ok(secs) => {
                self.next_keepalive = now + std::time::Duration::from_secs(u64::from(secs.max(1)));
                Ok(())
            }
            Err(e) if code(&e) == EAGAIN => Ok(()),
            Err(e) => Err(lost(&e)),
        }
    }

    /// Whether a running channel has input libssh2 took in after the channel was read this
    /// turn ([`super::holds_unread`]): the next turn reads it, no poll needed.
    fn holds_unread(&self) -> bool {
        self.chans
            .iter()
            .any(|c| c.phase == Phase::Running && super::holds_unread(&c.channel))
    }

    /// Whether a channel is between requests whose replies (an open's confirmation, an
    /// exec's answer, the remote close) libssh2 may have taken in during another
    /// channel's read, where no poll of the socket announces them.
    fn awaits_a_reply(&self) -> bool {
        self.opening.is_some() || self.chans.iter().any(|c| c.phase != Phase::Running)
    }

    /// Sleeps until the socket is ready in the direction libssh2 is blocked on, the
    /// dispatcher wakes us, or the keepalive is due.
    fn wait(&self, wake: &UnixStream) {
        let directions = self.session.block_directions();
        let events = poll_events(&directions);
        // Nothing is blocked yet no progress, or a reply may already be in libssh2: look
        // again soon rather than trust the socket.
        let timeout_ms = if matches!(directions, BlockDirections::None) || self.awaits_a_reply() {
            10
        } else {
            1000
        };
        let now = Instant::now();
        let next_check = (self.last_heard + self.ping_after)
            .min(self.last_heard + self.dead_after)
            .min(self.next_keepalive)
            .min(self.next_beat);
        let keepalive_ms = next_check
            .saturating_duration_since(now)
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let mut fds = [
            libc::pollfd {
                fd: self.fd,
                events,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms.min(keepalive_ms.max(1))) };
        if fds[1].revents != 0 {
            let mut sink = [0u8; 64];
            while matches!((&*wake).read(&mut sink), Ok(n) if n > 0) {}
        }
    }

    fn emit(&mut self, mut event: Event) {
        loop {
            match self.events.try_send(event) {
                Ok(()) => return,
                Err(TrySendError::Closed(_)) => {
                    // The dispatcher is gone: stop taking work and kill what runs.
                    if !self.shutting_down {
                        self.shut_down();
                    }
                    return;
                }
                Err(TrySendError::Full(back)) => {
                    // The dispatcher is behind (its stdout blocked: a full pipe, a
                    // paused terminal). Keep the guard fed meanwhile, or the hosts would
                    // take dts for dead and kill every task.
                    event = back;
                    self.feed_guard();
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// Heartbeats while the loop cannot turn: write what is due, read the echoes.
    /// Errors are left for the next turn, which meets them again.
    fn feed_guard(&mut self) {
        self.heartbeat();
        if let Some(i) = self
            .chans
            .iter()
            .position(|c| matches!(c.work, Work::Guard { .. }) && c.phase == Phase::Running)
        {
            let _ = self.write_input(i);
            let _ = self.drain(i, Stream::Stdout);
            let _ = self.drain(i, Stream::Stderr);
        }
    }
}

/// Everything waiting in the inbox, and whether the dispatcher has hung up.
fn drain_inbox(inbox: &mpsc::Receiver<Command>) -> (Vec<Command>, bool) {
    let mut commands = Vec::new();
    loop {
        match inbox.try_recv() {
            Ok(command) => commands.push(command),
            Err(TryRecvError::Empty) => return (commands, false),
            Err(TryRecvError::Disconnected) => return (commands, true),
        }
    }
}

/// Takes the complete lines out of what the guard printed; true if one is
/// [`wrapper::GUARD_EXPIRED`]. Heartbeat echoes and login noise are dropped.
fn guard_said_expired(printed: &mut Vec<u8>) -> bool {
    let Some(end) = printed.iter().rposition(|&b| b == b'\n') else {
        return false;
    };
    let expired = printed[..end]
        .split(|&b| b == b'\n')
        .any(|line| line == wrapper::GUARD_EXPIRED.as_bytes());
    printed.drain(..=end);
    expired
}

fn exit_status(channel: &Channel) -> ExitStatus {
    if let Ok(signal) = channel.exit_signal() {
        if let Some(name) = signal.exit_signal {
            return ExitStatus::Signal(name);
        }
    }
    ExitStatus::Code(channel.exit_status().unwrap_or(-1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a connection thread whose dispatcher had dropped its sender spun at
    /// 100 % CPU in `take_commands` (every `try_recv` said Disconnected and counted as a
    /// command), from the end of the run until the process exited; callgrind caught it
    /// calling `shut_down` 278 million times while the store closed.
    #[test]
    fn a_hung_up_inbox_drains_once_and_says_so() {
        let (tx, rx) = mpsc::channel();
        tx.send(Command::Probe).unwrap();
        tx.send(Command::Shutdown).unwrap();
        drop(tx);
        let (commands, hung_up) = drain_inbox(&rx);
        assert_eq!(commands.len(), 2);
        assert!(hung_up);
        let (commands, hung_up) = drain_inbox(&rx);
        assert!(commands.is_empty());
        assert!(hung_up);
    }

    #[test]
    fn the_guard_s_word_is_found_among_echoes_and_split_reads() {
        let mut printed = b"h\nh\ndts-guard-exp".to_vec();
        assert!(!guard_said_expired(&mut printed));
        assert_eq!(printed, b"dts-guard-exp");
        printed.extend_from_slice(b"ired\n");
        assert!(guard_said_expired(&mut printed));
        assert!(printed.is_empty());
    }

    #[test]
    fn an_open_inbox_drains_what_is_there() {
        let (tx, rx) = mpsc::channel();
        tx.send(Command::Kill(LaunchId(3))).unwrap();
        let (commands, hung_up) = drain_inbox(&rx);
        assert!(matches!(commands[..], [Command::Kill(LaunchId(3))]));
        assert!(!hung_up);
    }
}
