//! Warm steps: one long-lived `srun` step per slot runs a small POSIX sh worker that is fed
//! one task at a time on its stdin, so a task costs no slurmctld step-creation RPC and no
//! srun start (about 90 ms each here, which bounded per-step throughput).
//!
//! Each task still runs under the same wrapper as every other transport (its script and
//! control-line bytes travel in the frame), so its semantics are the per-task wrapper's:
//! * the worker starts `sh -c WRAPPER` as an async job under `setsid` (its own process
//!   group, as sshd and per-task srun give it) and `env --default-signal=INT,QUIT` (an
//!   async job of a shell without job control has them ignored);
//! * the wrapper's control line is a FIFO whose only writer is the worker: closing it is
//!   what kills the task (TERM, grace, KILL, by the wrapper's own watcher) and what kills a
//!   finished task's leftovers before the next task;
//! * while a task runs, a watcher job reads the worker's stdin: a line from dts (cancel or
//!   timeout) makes the worker close the FIFO; EOF (dts died, srun died) KILLs the worker,
//!   which closes it too. dts writes nothing else during a task;
//! * after the task and its process group are gone, the worker writes a per-task random
//!   token on stderr and `TOKEN PID WAITED`, the signal's name by the node's `kill -l` (or
//!   `-`), the shell's `jobs -l` listing and the token again on stdout (the SSH worker's
//!   record), read with [`EndSplitter`] and [`record_status`]: dash's listing tells
//!   exit 143 from death by TERM. "Gone" ignores zombies (`pgrep -r`, else a /proc scan): the killed watcher is init's child, and an init that reaps
//!   slowly (every 2 s on this machine) would otherwise hold every task.
//!
//! Not exact: `$PPID` is the worker's pid and `SLURM_STEP_ID` is the worker's step.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{mpsc, oneshot};

use crate::transport::worker::{EndSplitter, record_status};
use crate::transport::{Event, EventSender, ExitStatus, LaunchId, Stream};

/// The worker. Frames are `TOKEN SCRIPTLEN INPUTLEN\n`, the script, then the control-line
/// bytes; any other line (a cancel that crossed the task's end) is skipped.
pub const SCRIPT: &str = r#"exec 3<&0 </dev/null
__dts_d=$(mktemp -d) || exit 1
__dts_f=$__dts_d/control
mkfifo -m 600 "$__dts_f" || exit 1
trap 'rm -rf "$__dts_d"' EXIT
trap 'exec 4>&-' USR1
env --default-signal=INT,QUIT setsid true </dev/null 2>/dev/null || { echo "the node's env lacks --default-signal (coreutils 8.31+) or setsid" >&2; exit 97; }
__dts_live() { if [ -n "$__dts_pg" ]; then pgrep -g "$__dts_k" -r R,S,D,T,t >/dev/null; return; fi; for __dts_p in /proc/[0-9]*/stat; do { read -r __dts_x <"$__dts_p"; } 2>/dev/null || continue; __dts_x=${__dts_x##*) }; __dts_y=${__dts_x#* * }; [ "${__dts_y%% *}" = "$__dts_k" ] && [ "${__dts_x%% *}" != Z ] && return 0; done; return 1; }
__dts_pg=; pgrep -g 1 -r S >/dev/null 2>&1; [ $? -le 1 ] && __dts_pg=1
echo dts-worker-ready
while IFS=' ' read -r __dts_t __dts_n __dts_i <&3; do
[ -n "$__dts_i" ] || continue
__dts_s=$(head -c "$__dts_n" <&3)
exec 4<>"$__dts_f"
env --default-signal=INT,QUIT setsid /bin/sh -c "$__dts_s" <"$__dts_f" 3<&- 4>&- &
__dts_k=$!
[ "$__dts_i" -eq 0 ] || head -c "$__dts_i" <&3 >&4
( if IFS= read -r __dts_l <&3; then kill -USR1 $$; else kill -KILL $$; fi ) 4>&- &
__dts_e=$!
while wait $__dts_k 2>/dev/null; kill -0 $__dts_k 2>/dev/null; do :; done
wait $__dts_k 2>/dev/null; __dts_w=$?
jobs -l >"$__dts_d/jobs"
kill $__dts_e 2>/dev/null; wait $__dts_e 2>/dev/null
exec 4>&-
while kill -0 -$__dts_k 2>/dev/null && __dts_live; do sleep 0.01; done
printf '%s\n' "$__dts_t" >&2
printf '%s %s %s\n' "$__dts_t" $__dts_k $__dts_w
{ [ $__dts_w -gt 128 ] && kill -l $__dts_w 2>/dev/null; } || echo -
while IFS= read -r __dts_l; do printf '%s\n' "$__dts_l"; done <"$__dts_d/jobs"
printf '%s\n' "$__dts_t"
done
"#;

/// What the worker prints once it can take tasks.
const READY: &[u8] = b"dts-worker-ready\n";

/// One task's frame for [`SCRIPT`].
pub fn frame(token: &str, script: &str, input: &[u8]) -> Vec<u8> {
    let mut frame = format!("{token} {} {}\n{script}", script.len(), input.len()).into_bytes();
    frame.extend_from_slice(input);
    frame
}

/// A fresh token: 128 random bits in hex, never in any task's text or environment.
pub fn token() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = urandom.read_exact(&mut bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    // Without /dev/urandom the time still makes it unguessable enough for a task.
    bytes[..8]
        .iter_mut()
        .zip(nanos.to_le_bytes())
        .for_each(|(b, t)| *b ^= t);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("DTS{hex}")
}

/// How a task on a worker ended.
pub enum Ended {
    /// The worker's end record: the worker is ready for the next task.
    Status(ExitStatus),
    /// The worker's streams closed first (srun or the node died): the worker is gone.
    Lost,
}

/// A running worker step.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: mpsc::Receiver<Vec<u8>>,
    stderr: mpsc::Receiver<Vec<u8>>,
}

impl Worker {
    /// Starts the worker with `srun`, the step command without its program, and waits
    /// for it to say it is ready. Err: why it cannot run here (the node needs per-task
    /// steps).
    pub async fn start(mut srun: tokio::process::Command) -> Result<Worker, String> {
        let mut child = srun
            .args(["/bin/sh", "-c", SCRIPT])
            .spawn()
            .map_err(|e| format!("cannot start srun: {e}"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut worker = Worker {
            stdout: pump(child.stdout.take()),
            stderr: pump(child.stderr.take()),
            child,
            stdin,
        };
        let mut said = Vec::new();
        while said.len() < READY.len() {
            match worker.stdout.recv().await {
                Some(chunk) => said.extend_from_slice(&chunk),
                None => break,
            }
        }
        if said == READY {
            return Ok(worker);
        }
        let mut why = Vec::new();
        while let Some(chunk) = worker.stderr.recv().await {
            why.extend_from_slice(&chunk);
        }
        let _ = worker.child.wait().await;
        Err(format!(
            "no warm worker step: {}",
            String::from_utf8_lossy(&why).trim()
        ))
    }

    /// srun's pid, to stop the whole step.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Runs one task, forwarding its output; `killed` fires on cancel or timeout.
    pub async fn run(
        &mut self,
        id: LaunchId,
        script: &str,
        input: &[u8],
        events: &EventSender,
        killed: oneshot::Receiver<()>,
    ) -> Ended {
        let token = token();
        if self
            .stdin
            .write_all(&frame(&token, script, input))
            .await
            .is_err()
        {
            return Ended::Lost;
        }
        let _ = events
            .send(Event::Started {
                id,
                at: Instant::now(),
            })
            .await;
        let mut out = EndSplitter::new(token.as_bytes());
        let mut err = EndSplitter::new(token.as_bytes());
        tokio::pin!(killed);
        let mut kill_sent = false;
        // A cancelled task whose step does not end (node unreachable) loses its worker.
        let backstop = tokio::time::sleep(std::time::Duration::MAX / 4);
        tokio::pin!(backstop);
        loop {
            if let Some(status) = out.record().and_then(|r| record_status(r, &token)) {
                if err.record().is_some() {
                    return Ended::Status(status);
                }
            }
            tokio::select! {
                chunk = self.stdout.recv(), if out.record().is_none() || !complete(&out, &token) => {
                    let Some(chunk) = chunk else { return Ended::Lost };
                    send(events, id, Stream::Stdout, out.feed(&chunk)).await;
                }
                chunk = self.stderr.recv(), if err.record().is_none() => {
                    let Some(chunk) = chunk else { return Ended::Lost };
                    send(events, id, Stream::Stderr, err.feed(&chunk)).await;
                }
                _ = &mut backstop => return Ended::Lost,
                _ = &mut killed, if !kill_sent => {
                    kill_sent = true;
                    backstop.as_mut().reset(tokio::time::Instant::now() + super::conn::KILL_BACKSTOP);
                    // The worker's watcher reads it and closes the task's control line.
                    if self.stdin.write_all(b"k\n").await.is_err() {
                        return Ended::Lost;
                    }
                }
            }
        }
    }

    /// Closes the worker's stdin (it exits between tasks) and waits for srun.
    pub async fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.wait().await;
    }

    /// Stops the whole step (srun TERM) and waits for srun: after [`Ended::Lost`].
    pub async fn abandon(mut self) {
        super::conn::terminate(self.child.id());
        let _ = self.child.wait().await;
    }
}

fn complete(out: &EndSplitter, token: &str) -> bool {
    out.record()
        .is_some_and(|r| record_status(r, token).is_some())
}

async fn send(events: &EventSender, id: LaunchId, stream: Stream, data: Vec<u8>) {
    if !data.is_empty() {
        let _ = events.send(Event::Output { id, stream, data }).await;
    }
}

/// Reads a stream into a channel of chunks, closed at EOF.
fn pump<R>(reader: Option<R>) -> mpsc::Receiver<Vec<u8>>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    if let Some(mut reader) = reader {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                    break;
                }
            }
        });
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_carries_the_lengths_the_worker_reads() {
        let frame = frame("T", "echo hi\n", b"ab");
        assert_eq!(frame, b"T 8 2\necho hi\nab");
    }

    /// Regression: the shared record parser gained a signal-name line and this worker,
    /// which did not print it, reported death by TERM as an unknown signal. Frames go one
    /// at a time, as dts sends them (during a task only a kill line may come).
    #[test]
    fn the_worker_s_records_tell_exit_143_from_death_by_term() {
        use std::io::{Read, Write};
        let mut worker = std::process::Command::new("sh")
            .args(["-c", SCRIPT])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = worker.stdin.take().unwrap();
        let mut stdout = worker.stdout.take().unwrap();
        let mut run = |token: &str, script: &str| {
            stdin.write_all(&frame(token, script, b"")).unwrap();
            let mut text = Vec::new();
            let mut buf = [0u8; 4096];
            while String::from_utf8_lossy(&text).matches(token).count() < 2 {
                let n = stdout.read(&mut buf).unwrap();
                assert!(
                    n > 0,
                    "the worker ended: {}",
                    String::from_utf8_lossy(&text)
                );
                text.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8(text).unwrap();
            let record = text.split_once(token).unwrap().1.to_string();
            record_status(record.as_bytes(), token).unwrap()
        };
        assert_eq!(run("T1x", "exit 143"), ExitStatus::Code(143));
        assert_eq!(
            run("T2x", "kill -TERM $$"),
            ExitStatus::Signal("TERM".into())
        );
        assert_eq!(run("T3x", "exit 7"), ExitStatus::Code(7));
        drop(stdin);
        worker.wait().unwrap();
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(token(), token());
        assert_eq!(token().len(), 35);
    }
}
