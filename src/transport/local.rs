//! Local transport: tasks run as child processes of dts through `tokio::process`, under the
//! same wrapper script as remote tasks (own process group, stdin as the control line).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::oneshot;

use crate::probe;
use crate::transport::{
    Command, ConnHandle, ConnId, Event, EventSender, ExitStatus, HelperOutput, HelperReply,
    LaunchId, Stream,
};

/// Kill switches of running local tasks.
type Running = Arc<Mutex<HashMap<LaunchId, oneshot::Sender<()>>>>;

/// The local "connection": spawns each launch as a child process.
pub struct LocalConn {
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
}

impl ConnHandle for LocalConn {
    fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }
}

/// Starts the local executor on the current tokio runtime and reports it up at once.
pub fn spawn(conn: ConnId, capacity: u32, events: EventSender) -> LocalConn {
    let (commands, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let up = Event::Up {
            conn,
            capacity,
            probe: probe::local(),
        };
        if events.send(up).await.is_err() {
            return;
        }
        let running: Running = Arc::default();
        while let Some(command) = inbox.recv().await {
            match command {
                Command::Launch {
                    id, script, input, ..
                } => launch(id, script, input, &events, &running).await,
                Command::Kill(id) => kill(&running, id),
                Command::Probe => {
                    let probe = probe::local();
                    let _ = events.send(Event::Probed { conn, probe }).await;
                }
                Command::Shutdown => break,
                Command::Helper {
                    script,
                    input,
                    reply,
                } => {
                    tokio::spawn(helper(script, input, reply));
                }
            }
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
    });
    LocalConn { commands }
}

fn kill(running: &Running, id: LaunchId) {
    if let Some(switch) = running.lock().expect("not poisoned").remove(&id) {
        let _ = switch.send(());
    }
}

async fn launch(
    id: LaunchId,
    script: String,
    input: Vec<u8>,
    events: &EventSender,
    running: &Running,
) {
    // `$0` is `sh`, as for a command line typed as `sh -c CMD`.
    let mut command = tokio::process::Command::new("/bin/sh");
    // SAFETY: `restore` makes only async-signal-safe calls (getrlimit, setrlimit). dts's
    // own raised open-file limit is not the task's.
    unsafe { command.pre_exec(crate::fdlimit::restore) };
    let child = command
        .arg0("sh")
        .arg("-c")
        .arg(script)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            let reason = format!("cannot start /bin/sh: {e}");
            let _ = events.send(Event::Refused { id, reason }).await;
            return;
        }
    };
    if !input.is_empty() {
        if let Some(stdin) = child.stdin.as_mut() {
            use tokio::io::AsyncWriteExt;
            // A write error means the wrapper already exited; its exit is reported below.
            let _ = stdin.write_all(&input).await;
        }
    }
    let (switch, killed) = oneshot::channel();
    running.lock().expect("not poisoned").insert(id, switch);
    let _ = events
        .send(Event::Started {
            id,
            at: Instant::now(),
        })
        .await;
    let events = events.clone();
    let running = running.clone();
    tokio::spawn(async move {
        let status = supervise(id, &mut child, killed, &events).await;
        running.lock().expect("not poisoned").remove(&id);
        let at = Instant::now();
        let _ = events.send(Event::Exited { id, status, at }).await;
    });
}

/// Forwards output until the child exits; closes its control line when killed or done.
async fn supervise(
    id: LaunchId,
    child: &mut Child,
    killed: oneshot::Receiver<()>,
    events: &EventSender,
) -> ExitStatus {
    let stdin: Option<ChildStdin> = child.stdin.take();
    let out = forward(id, Stream::Stdout, child.stdout.take(), events.clone());
    let err = forward(id, Stream::Stderr, child.stderr.take(), events.clone());
    let mut control = stdin;
    let wait = async {
        tokio::pin!(killed);
        loop {
            tokio::select! {
                status = child.wait() => return status,
                _ = &mut killed, if control.is_some() => control = None,
            }
        }
    };
    let (status, (), ()) = tokio::join!(wait, out, err);
    // The command is done: closing the control line lets the watcher reap leftovers and exit.
    drop(control);
    match status {
        Ok(status) => convert(status),
        Err(_) => ExitStatus::Code(-1),
    }
}

async fn forward<R: tokio::io::AsyncRead + Unpin>(
    id: LaunchId,
    stream: Stream,
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
        if events
            .send(Event::Output { id, stream, data })
            .await
            .is_err()
        {
            break;
        }
    }
}

/// Runs a helper script under `/bin/sh -c`, feeding `input` while its output is read.
async fn helper(script: String, input: Vec<u8>, reply: HelperReply) {
    let mut command = tokio::process::Command::new("/bin/sh");
    command.arg("-c").arg(script);
    run_helper(command, input, reply).await;
}

/// Runs a staging helper's `command` (`/bin/sh -c` here, an srun step on Slurm), feeding
/// `input` while its output is read, and answers `reply`.
pub(crate) async fn run_helper(
    mut command: tokio::process::Command,
    input: Vec<u8>,
    reply: HelperReply,
) {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            let _ = reply.send(HelperOutput {
                status: ExitStatus::Code(127),
                stdout: Vec::new(),
                stderr: format!("cannot start {program}: {e}").into_bytes(),
            });
            return;
        }
    };
    let stdin = child.stdin.take();
    let feed = async move {
        use tokio::io::AsyncWriteExt;
        if let Some(mut stdin) = stdin {
            // A write error means the helper exited early; its status says why.
            let _ = stdin.write_all(&input).await;
        }
    };
    let (output, ()) = tokio::join!(child.wait_with_output(), feed);
    let output = match output {
        Ok(output) => HelperOutput {
            status: convert(output.status),
            stdout: output.stdout,
            stderr: output.stderr,
        },
        Err(e) => HelperOutput {
            status: ExitStatus::Code(-1),
            stdout: Vec::new(),
            stderr: format!("helper: {e}").into_bytes(),
        },
    };
    let _ = reply.send(output);
}

fn convert(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus::Code(code),
        (None, Some(signal)) => ExitStatus::Signal(signal_name(signal)),
        (None, None) => ExitStatus::Code(-1),
    }
}

/// `TERM` for 15, as sshd names signals in `exit-signal`.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "HUP",
        libc::SIGINT => "INT",
        libc::SIGQUIT => "QUIT",
        libc::SIGILL => "ILL",
        libc::SIGTRAP => "TRAP",
        libc::SIGABRT => "ABRT",
        libc::SIGBUS => "BUS",
        libc::SIGFPE => "FPE",
        libc::SIGKILL => "KILL",
        libc::SIGUSR1 => "USR1",
        libc::SIGSEGV => "SEGV",
        libc::SIGUSR2 => "USR2",
        libc::SIGPIPE => "PIPE",
        libc::SIGALRM => "ALRM",
        libc::SIGTERM => "TERM",
        libc::SIGXCPU => "XCPU",
        libc::SIGXFSZ => "XFSZ",
        libc::SIGVTALRM => "VTALRM",
        libc::SIGPROF => "PROF",
        libc::SIGSYS => "SYS",
        other => return other.to_string(),
    };
    name.to_string()
}
