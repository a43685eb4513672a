//! SSH transport on libssh2: one dedicated thread owns each connection.
//!
//! libssh2 sessions are not async and serialise on one lock, so the thread runs its session
//! in non-blocking mode and multiplexes up to [`CHANNELS_PER_CONNECTION`] task channels
//! (OpenSSH's `MaxSessions` defaults to 10; one more is kept for probes). Its loop: take
//! commands, open and exec queued channels, read every channel until it would block, and
//! when nothing moved, `poll(2)` the socket in the directions libssh2 asks for together
//! with a wake-up socket the dispatcher writes to. It never blocks on the session.

pub mod connect;
mod pool;
mod route;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

pub use connect::{AuthEnv, Handshakes};

use crate::inventory::Host;
use crate::transport::{Command, ConnHandle, ConnId, Event, EventSender, wrapper};

/// libssh2's "would block" (LIBSSH2_ERROR_EAGAIN): call again once the socket is ready.
const EAGAIN: i32 = -37;

/// The `poll(2)` events for the directions libssh2 is blocked on; readable when it names
/// none.
fn poll_events(directions: &ssh2::BlockDirections) -> libc::c_short {
    match directions {
        ssh2::BlockDirections::Outbound => libc::POLLOUT,
        ssh2::BlockDirections::Both => libc::POLLIN | libc::POLLOUT,
        ssh2::BlockDirections::Inbound | ssh2::BlockDirections::None => libc::POLLIN,
    }
}

/// Whether libssh2 already holds input for `channel` that no read has taken yet: data on
/// either stream, or the remote EOF (which libssh2 reports only once that data is read).
///
/// A read that would block takes in every packet the socket has, other channels' too, so
/// a channel read earlier in a turn can have its output waiting in libssh2 while the
/// socket is empty: polling the socket then sleeps on output that is already here (a
/// worker's record waited up to the 1 s poll timeout, about once in 1 000 tasks).
pub fn holds_unread(channel: &ssh2::Channel) -> bool {
    channel.read_window().available > 0 || channel.eof()
}

/// Task channels per connection; more slots open more connections.
pub const CHANNELS_PER_CONNECTION: u32 = 8;

/// Tunables of the SSH transport.
#[derive(Debug, Clone)]
pub struct Options {
    pub probe_timeout: Duration,
    /// Silence after which a connection is checked; after `keepalive_count` intervals
    /// without an answer the host counts as lost.
    pub keepalive: Duration,
    pub keepalive_count: u32,
    /// TERM-to-KILL grace the guard gives tasks it kills.
    pub kill_grace: Duration,
    /// Start a guard on each connection (see [`wrapper::guard`]); `dts hosts` needs none.
    pub guard: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            probe_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(10),
            keepalive_count: 3,
            kill_grace: Duration::from_secs(5),
            guard: true,
        }
    }
}

/// The wake-up socket and whether a wake-up is already on its way, so a burst of commands
/// costs one write rather than one each.
pub(crate) struct Wake {
    pub socket: UnixStream,
    pub pending: AtomicBool,
}

/// The dispatcher's handle on one SSH connection thread.
pub struct SshConn {
    commands: mpsc::Sender<Command>,
    wake: Arc<Wake>,
}

impl ConnHandle for SshConn {
    fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() && !self.wake.pending.swap(true, Ordering::SeqCst) {
            // A full wake socket already holds a pending wake-up; nothing is lost.
            let _ = (&self.wake.socket).write(&[1]);
        }
    }
}

/// Everything a connection thread shares with the others.
#[derive(Clone)]
pub struct Shared {
    pub handshakes: Arc<Handshakes>,
    pub auth: Arc<AuthEnv>,
    pub options: Arc<Options>,
}

/// Starts a connection thread; it reports [`Event::Up`] or [`Event::Down`] first.
pub fn spawn(
    conn: ConnId,
    host: Arc<Host>,
    events: EventSender,
    shared: Shared,
) -> std::io::Result<SshConn> {
    let (commands, inbox) = mpsc::channel();
    let (socket, wake_rx) = UnixStream::pair()?;
    socket.set_nonblocking(true)?;
    wake_rx.set_nonblocking(true)?;
    let wake = Arc::new(Wake {
        socket,
        pending: AtomicBool::new(false),
    });
    let thread_wake = wake.clone();
    std::thread::Builder::new()
        .name(format!("ssh-{}", host.name))
        .stack_size(256 * 1024)
        .spawn(move || run(conn, &host, &events, &shared, inbox, wake_rx, &thread_wake))?;
    Ok(SshConn { commands, wake })
}

fn run(
    conn: ConnId,
    host: &Host,
    events: &EventSender,
    shared: &Shared,
    inbox: mpsc::Receiver<Command>,
    wake: UnixStream,
    flag: &Wake,
) {
    let started = connect::connect(host, &shared.handshakes, &shared.auth).and_then(|link| {
        Ok((
            connect::probe(&link.session, shared.options.probe_timeout)?,
            link,
        ))
    });
    let (probe, connect::Link { session, route }) = match started {
        Ok(up) => {
            tracing::debug!("{}: probe {:?}", host.name, up.0.latency);
            up
        }
        Err(error) => {
            tracing::debug!("{}: {error}", host.name);
            let _ = events.blocking_send(Event::Down { conn, error });
            return;
        }
    };
    let has_perl = probe.perl;
    let up = Event::Up {
        conn,
        capacity: CHANNELS_PER_CONNECTION,
        probe,
    };
    if events.blocking_send(up).is_err() {
        return;
    }
    session.set_keepalive(true, shared.options.keepalive.as_secs().max(1) as u32);
    session.set_blocking(false);
    let options = &shared.options;
    let dead_after = options.keepalive * options.keepalive_count.max(1);
    // Heartbeats twice per keepalive; the guard gives up after keepalive × count of
    // silence, as dts gives up on the host.
    let beat = options.keepalive / 2;
    let liveness = pool::Liveness {
        ping_after: options.keepalive,
        dead_after,
        beat,
        guard: options.guard.then(|| {
            let beats = (dead_after.as_secs_f64() / beat.as_secs_f64()).ceil() as u32;
            wrapper::guard(beat, beats, options.kill_grace)
        }),
    };
    let mut warm = host.execution_mode() == crate::inventory::Execution::Warm;
    if warm && has_perl == Some(false) {
        tracing::info!(
            "{}: no perl for warm workers: tasks run on per-task channels",
            host.name
        );
        warm = false;
    }
    let mut pool = pool::Pool::new(conn, session, events.clone(), liveness, warm);
    let ended = pool.run(&inbox, &wake, &flag.pending);
    // The route (a jump relay, a ProxyCommand) carried the kills the pool sent: it goes
    // only after the session is closed.
    drop(pool);
    drop(route);
    if let Err(error) = ended {
        let _ = events.blocking_send(Event::Down { conn, error });
    }
}
