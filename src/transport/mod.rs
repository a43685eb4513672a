//! Transports: how a task reaches a host and how its output, exit and failures come back.
//!
//! A *connection* is a channel pool to one host: an SSH connection (one dedicated thread,
//! at most [`ssh::CHANNELS_PER_CONNECTION`] tasks at once) or the local process spawner.
//! The dispatcher talks to a connection only through [`ConnHandle::send`] and hears back
//! only through [`Event`]s on one channel, so it stays the single owner of run state.

pub mod known_hosts;
pub mod local;
pub mod slurm;
pub mod ssh;
pub mod worker;
pub mod wrapper;

use std::time::Instant;

use crate::probe::ProbeReport;

/// Identifies one launch of one task (a task has a new launch per attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LaunchId(pub u64);

/// Identifies a connection: the host's position in the inventory and a per-host counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub host: usize,
    pub conn: u32,
}

/// Which output stream bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a task's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal (name without the `SIG` prefix, e.g. `TERM`).
    Signal(String),
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        *self == ExitStatus::Code(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exit {code}"),
            ExitStatus::Signal(sig) => write!(f, "signal {sig}"),
        }
    }
}

/// What the dispatcher asks a connection to do.
#[derive(Debug)]
pub enum Command {
    /// Run `script` (a complete remote command line from [`wrapper`]) as launch `id`, and
    /// write `input` on its control line first (secrets, see [`wrapper::secrets_input`]).
    Launch {
        id: LaunchId,
        script: String,
        input: Vec<u8>,
        /// The job a warm worker runs instead ([`wrapper::TaskScript::warm_code`]), for a
        /// host whose `execution` is warm; `script` and `input` remain the fallback.
        warm: Option<String>,
    },
    /// Kill a launch: close its control line so the wrapper kills its process group.
    Kill(LaunchId),
    /// Run the load probe again and report it with [`Event::Probed`].
    Probe,
    /// Kill everything still running and close the connection.
    Shutdown,
    /// Run a helper `script` (POSIX `sh`, run as `sh -c SCRIPT` on the host) with `input`
    /// on its stdin, then EOF, and answer on `reply`: file staging's way to move bytes
    /// over the connection the run already has. The reply is dropped unanswered when the
    /// connection fails first.
    Helper {
        script: String,
        input: Vec<u8>,
        reply: HelperReply,
    },
}

/// What a helper script printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Where a [`Command::Helper`] answers.
pub type HelperReply = tokio::sync::oneshot::Sender<HelperOutput>;

/// Why a connection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    pub kind: HostErrorKind,
    pub message: String,
}

/// Whether retrying a failed connection can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostErrorKind {
    /// Network trouble: refused, timed out, reset, lost. Worth reconnecting.
    Transient,
    /// Authentication refused or host key unknown/changed/revoked. Retrying cannot help.
    Permanent,
    /// dts itself was not running (stopped, frozen) long enough that the host's guard
    /// killed its tasks: not the host's fault. Reconnect at once, charge nothing.
    Stalled,
    /// dts itself is out of file descriptors or threads (EMFILE, ENFILE): nothing is wrong
    /// with the host; it waits until some close.
    LocalLimit,
}

impl HostError {
    pub fn transient(message: impl Into<String>) -> Self {
        HostError {
            kind: HostErrorKind::Transient,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        HostError {
            kind: HostErrorKind::Permanent,
            message: message.into(),
        }
    }

    pub fn stalled(message: impl Into<String>) -> Self {
        HostError {
            kind: HostErrorKind::Stalled,
            message: message.into(),
        }
    }

    pub fn local_limit(message: impl Into<String>) -> Self {
        HostError {
            kind: HostErrorKind::LocalLimit,
            message: message.into(),
        }
    }
}

/// Whether an I/O error means this process ran out of file descriptors (EMFILE) or the
/// system did (ENFILE), rather than anything about the host.
pub fn is_fd_limit(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a connection reports. Every event names its connection or launch.
#[derive(Debug)]
pub enum Event {
    /// The connection is up and can take up to `capacity` concurrent launches.
    Up {
        conn: ConnId,
        capacity: u32,
        probe: ProbeReport,
    },
    /// The connection is gone; launches on it that have not reported `Exited` are lost.
    Down { conn: ConnId, error: HostError },
    /// A launch's command started on the host.
    Started { id: LaunchId, at: Instant },
    /// Bytes a launch wrote.
    Output {
        id: LaunchId,
        stream: Stream,
        data: Vec<u8>,
    },
    /// A launch ended.
    Exited {
        id: LaunchId,
        status: ExitStatus,
        at: Instant,
    },
    /// The host refused to start a launch (e.g. channel refused); the connection lives on.
    Refused { id: LaunchId, reason: String },
    /// A fresh load probe.
    Probed { conn: ConnId, probe: ProbeReport },
}

/// The dispatcher's handle on a connection.
pub trait ConnHandle: Send {
    fn send(&self, command: Command);
}

/// The sending half of the event channel every connection reports on.
pub type EventSender = tokio::sync::mpsc::Sender<Event>;
