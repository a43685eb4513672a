//! The coordinator's side of the store: creates a run, records every transition, writes
//! task output files. Writes are grouped in one transaction per dispatcher turn
//! ([`RunWriter::commit`]); the dispatcher commits before it acts on what it recorded.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::schema::{self, DB_FILE, OUT_DIR};
use super::{RunSpec, StateDir};
use crate::error::Error;
use crate::job::Task;
use crate::transport::{ExitStatus, Stream};

/// Open output files of one running attempt.
struct OutFiles {
    stdout: Option<BufWriter<File>>,
    stderr: Option<BufWriter<File>>,
    stdout_bytes: u64,
    stderr_bytes: u64,
}

pub struct RunWriter {
    id: String,
    dir: PathBuf,
    conn: Connection,
    in_transaction: bool,
    files: HashMap<(u32, u32), OutFiles>,
    _lock: File,
    /// Transactions committed, for diagnostics.
    commits: u64,
}

/// Task states as stored.
pub mod task_state {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const TIMED_OUT: &str = "timed-out";
    pub const CANCELLED: &str = "cancelled";
    pub const NOT_RUN: &str = "not-run";
}

/// How one attempt ended, as stored.
pub mod attempt_outcome {
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const TIMED_OUT: &str = "timed-out";
    pub const CANCELLED: &str = "cancelled";
    /// The host refused it or the connection died: requeued without using a retry.
    pub const REQUEUED: &str = "requeued";
    /// The coordinator died while it ran.
    pub const LOST: &str = "lost";
    /// Another copy of the task (`--speculate`) succeeded first; this one was killed.
    pub const SUPERSEDED: &str = "superseded";
}

fn db_error(dir: &Path, e: rusqlite::Error) -> Error {
    Error::Runtime(format!("run store {}: {e}", dir.display()))
}

impl RunWriter {
    /// Creates the run directory and database, with the run and every task queued.
    pub fn create(
        state: &StateDir,
        id: &str,
        spec: &RunSpec,
        tasks: &[Task],
        created: f64,
    ) -> Result<RunWriter, Error> {
        state.create()?;
        let dir = state.run_dir(id);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| Error::ReadFile {
                path: dir.clone(),
                source,
            })?;
        let lock = super::lock(&dir)
            .map_err(|source| Error::ReadFile {
                path: dir.clone(),
                source,
            })?
            .ok_or_else(|| Error::Runtime(format!("run {id} is locked by another process")))?;
        let conn = Connection::open(dir.join(DB_FILE)).map_err(|e| db_error(&dir, e))?;
        // Owner only, before anything is written; SQLite gives its WAL files the same mode.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join(DB_FILE), std::fs::Permissions::from_mode(0o600))
                .map_err(|source| Error::ReadFile {
                    path: dir.join(DB_FILE),
                    source,
                })?;
        }
        schema::create(&conn).map_err(|e| db_error(&dir, e))?;
        let spec_json = serde_json::to_string(spec).expect("specs serialise");
        let insert = || -> rusqlite::Result<()> {
            let tx = conn.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO run (id, name, created, state, spec, total) VALUES (?1, ?2, ?3, 'queued', ?4, ?5)",
                params![id, spec.name, created, spec_json, tasks.len() as i64],
            )?;
            {
                let mut task = tx.prepare("INSERT INTO task (seq, idx, item, state, submitted) VALUES (?1, ?2, ?3, 'queued', ?4)")?;
                for t in tasks {
                    task.execute(params![t.seq, t.index as i64, &t.item[..], created])?;
                }
                let mut host = tx.prepare(
                    "INSERT INTO host (name, pos, weight, state) VALUES (?1, ?2, ?3, 'waiting')",
                )?;
                for (pos, h) in spec.hosts.iter().enumerate() {
                    host.execute(params![h.name, pos as i64, h.weight])?;
                }
            }
            tx.commit()
        };
        insert().map_err(|e| db_error(&dir, e))?;
        Ok(RunWriter::with(id, dir, conn, lock))
    }

    /// Opens an existing run to coordinate it; fails if its coordinator is alive.
    pub fn open(state: &StateDir, id: &str) -> Result<RunWriter, Error> {
        let dir = state.run_dir(id);
        let lock = super::lock(&dir)
            .map_err(|source| Error::ReadFile {
                path: dir.clone(),
                source,
            })?
            .ok_or_else(|| {
                Error::Usage(format!(
                    "run {id} is still running (its coordinator holds the lock)"
                ))
            })?;
        let conn = Connection::open(dir.join(DB_FILE)).map_err(|e| db_error(&dir, e))?;
        schema::configure(&conn).map_err(|e| db_error(&dir, e))?;
        schema::check_version(&conn).map_err(Error::Runtime)?;
        Ok(RunWriter::with(id, dir, conn, lock))
    }

    fn with(id: &str, dir: PathBuf, conn: Connection, lock: File) -> RunWriter {
        RunWriter {
            id: id.to_string(),
            dir,
            conn,
            in_transaction: false,
            files: HashMap::new(),
            _lock: lock,
            commits: 0,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Transactions committed so far.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Where an attempt's output is (once it wrote any).
    pub fn output_path(&self, index: u64, attempt: u32, stream: Stream) -> PathBuf {
        self.dir
            .join(OUT_DIR)
            .join(output_file(index, attempt, stream))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        db_error(&self.dir, e)
    }

    pub fn spec(&self) -> Result<RunSpec, Error> {
        let json: String = self
            .conn
            .query_row("SELECT spec FROM run", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        serde_json::from_str(&json)
            .map_err(|e| Error::Runtime(format!("run {}: bad saved spec: {e}", self.id)))
    }

    /// Total tasks of the run.
    pub fn total(&self) -> Result<usize, Error> {
        let n: i64 = self
            .conn
            .query_row("SELECT total FROM run", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(n as usize)
    }

    /// Tasks waiting to run, with the attempts each has had so far.
    pub fn queued_tasks(&self) -> Result<Vec<(Task, u32)>, Error> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, idx, item, attempts FROM task WHERE state = 'queued' ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let item: Vec<u8> = r.get(2)?;
                Ok((
                    Task {
                        seq: r.get(0)?,
                        index: r.get::<_, i64>(1)? as u64,
                        item: item.into(),
                    },
                    r.get::<_, u32>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Puts tasks that did not succeed back in the queue (`dts retry`). With `only_failed`,
    /// only tasks that failed or timed out. Attempts a dead coordinator left open are
    /// closed as lost. Returns how many tasks were queued.
    pub fn requeue_unfinished(&mut self, only_failed: bool, at: f64) -> Result<usize, Error> {
        let states = if only_failed {
            "('failed', 'timed-out')"
        } else {
            "('queued', 'running', 'failed', 'timed-out', 'cancelled', 'not-run')"
        };
        let run = || -> rusqlite::Result<usize> {
            let tx = self.conn.unchecked_transaction()?;
            tx.execute(
                "UPDATE attempt SET outcome = 'lost', finished = ?1 WHERE outcome IS NULL",
                params![at],
            )?;
            let n = tx.execute(
                &format!(
                    "UPDATE task SET state = 'queued', reason = NULL, exit_code = NULL, signal = NULL \
                     WHERE state IN {states}"
                ),
                [],
            )?;
            tx.execute("UPDATE run SET control = NULL", [])?;
            tx.commit()?;
            Ok(n)
        };
        run().map_err(|e| self.err(e))
    }

    /// Records that a coordinator (this process) now runs the run.
    pub fn begin_session(&mut self, at: f64) -> Result<(), Error> {
        self.conn
            .execute(
                "UPDATE run SET state = 'running', pid = ?1, hostname = ?2, started = ?3, finished = NULL, control = NULL",
                params![std::process::id(), super::hostname(), at],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    fn tx(&mut self) -> rusqlite::Result<()> {
        if !self.in_transaction {
            self.conn.prepare_cached("BEGIN")?.execute([])?;
            self.in_transaction = true;
            self.commits += 1;
        }
        Ok(())
    }

    fn exec(&mut self, sql: &str, params: impl rusqlite::Params) -> Result<(), Error> {
        let run = |this: &mut Self| -> rusqlite::Result<()> {
            this.tx()?;
            this.conn.prepare_cached(sql)?.execute(params)?;
            Ok(())
        };
        run(self).map_err(|e| self.err(e))
    }

    pub fn dispatched(&mut self, seq: u32, attempt: u32, host: &str, at: f64) -> Result<(), Error> {
        self.exec(
            "INSERT OR REPLACE INTO attempt (seq, attempt, host, dispatched) VALUES (?1, ?2, ?3, ?4)",
            params![seq, attempt, host, at],
        )?;
        self.exec(
            "UPDATE task SET state = 'running', attempts = ?2, host = ?3 WHERE seq = ?1",
            params![seq, attempt, host],
        )
    }

    pub fn started(&mut self, seq: u32, attempt: u32, at: f64) -> Result<(), Error> {
        self.exec(
            "UPDATE attempt SET started = ?3 WHERE seq = ?1 AND attempt = ?2",
            params![seq, attempt, at],
        )
    }

    /// Appends output of an attempt to its file (created on first output).
    pub fn output(
        &mut self,
        seq: u32,
        index: u64,
        attempt: u32,
        stream: Stream,
        data: &[u8],
    ) -> Result<(), Error> {
        let dir = self.dir.join(OUT_DIR);
        let files = self.files.entry((seq, attempt)).or_insert(OutFiles {
            stdout: None,
            stderr: None,
            stdout_bytes: 0,
            stderr_bytes: 0,
        });
        let (slot, bytes) = match stream {
            Stream::Stdout => (&mut files.stdout, &mut files.stdout_bytes),
            Stream::Stderr => (&mut files.stderr, &mut files.stderr_bytes),
        };
        *bytes += data.len() as u64;
        let io = |e: std::io::Error| {
            Error::Runtime(format!("writing task output in {}: {e}", dir.display()))
        };
        if slot.is_none() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io)?;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(dir.join(output_file(index, attempt, stream)))
                .map_err(io)?;
            *slot = Some(BufWriter::with_capacity(64 * 1024, file));
        }
        slot.as_mut()
            .expect("opened above")
            .write_all(data)
            .map_err(io)
    }

    /// Closes an attempt: its outcome, status, end time and output sizes.
    pub fn attempt_ended(
        &mut self,
        seq: u32,
        attempt: u32,
        outcome: &str,
        status: Option<&ExitStatus>,
        at: f64,
    ) -> Result<(), Error> {
        let (stdout_bytes, stderr_bytes) = self.close_files(seq, attempt);
        let (code, signal) = split_status(status);
        self.exec(
            "UPDATE attempt SET outcome = ?3, exit_code = ?4, signal = ?5, finished = ?6, \
             stdout_bytes = ?7, stderr_bytes = ?8 WHERE seq = ?1 AND attempt = ?2",
            params![
                seq,
                attempt,
                outcome,
                code,
                signal,
                at,
                stdout_bytes as i64,
                stderr_bytes as i64
            ],
        )
    }

    fn close_files(&mut self, seq: u32, attempt: u32) -> (u64, u64) {
        let Some(mut files) = self.files.remove(&(seq, attempt)) else {
            return (0, 0);
        };
        for w in [files.stdout.as_mut(), files.stderr.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = w.flush();
        }
        (files.stdout_bytes, files.stderr_bytes)
    }

    /// A task went back to the queue (retry or requeue).
    pub fn task_queued(&mut self, seq: u32) -> Result<(), Error> {
        self.exec(
            "UPDATE task SET state = 'queued' WHERE seq = ?1",
            params![seq],
        )
    }

    /// A task's final state (its first start goes in too: the task row is written once
    /// at dispatch and once here, to keep the store's work per task small).
    pub fn task_finished(&mut self, seq: u32, end: &TaskEnd<'_>) -> Result<(), Error> {
        let (code, signal) = split_status(end.status);
        self.exec(
            "UPDATE task SET state = ?2, exit_code = ?3, signal = ?4, reason = ?5, \
             started = COALESCE(started, ?6), finished = COALESCE(?7, finished), \
             run_s = COALESCE(?8, run_s), hit = ?9 WHERE seq = ?1",
            params![
                seq,
                end.state,
                code,
                signal,
                end.reason,
                end.started,
                end.finished,
                end.run_s,
                end.hit
            ],
        )
    }

    pub fn host(
        &mut self,
        name: &str,
        slots: u32,
        state: &str,
        error: Option<&str>,
    ) -> Result<(), Error> {
        self.exec(
            "UPDATE host SET slots = ?2, state = ?3, error = ?4 WHERE name = ?1",
            params![name, slots, state, error],
        )
    }

    pub fn run_state(&mut self, state: &str, finished: Option<f64>) -> Result<(), Error> {
        self.exec(
            "UPDATE run SET state = ?1, finished = ?2",
            params![state, finished],
        )
    }

    /// Takes a pending control request (cancel, pause, resume) written by another process.
    pub fn take_control(&mut self) -> Result<Option<String>, Error> {
        let control: Option<String> = self
            .conn
            .query_row("SELECT control FROM run", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?
            .flatten();
        if control.is_some() {
            self.exec("UPDATE run SET control = NULL", [])?;
        }
        Ok(control)
    }

    /// Ends the current transaction and pushes buffered output to the files, so readers
    /// see everything recorded so far.
    pub fn commit(&mut self) -> Result<(), Error> {
        for files in self.files.values_mut() {
            for w in [files.stdout.as_mut(), files.stderr.as_mut()]
                .into_iter()
                .flatten()
            {
                let _ = w.flush();
            }
        }
        if self.in_transaction {
            self.in_transaction = false;
            let commit = || self.conn.prepare_cached("COMMIT")?.execute([]).map(drop);
            commit().map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

/// How a task ended, as [`RunWriter::task_finished`] records it. Times are epoch seconds.
#[derive(Debug, Clone, Copy)]
pub struct TaskEnd<'a> {
    pub state: &'a str,
    pub status: Option<&'a ExitStatus>,
    pub reason: Option<&'a str>,
    /// First start of any attempt.
    pub started: Option<f64>,
    pub finished: Option<f64>,
    pub run_s: Option<f64>,
    pub hit: Option<bool>,
}

/// `out/INDEX.ATTEMPT.stdout`, relative to the run directory's `out/`.
pub fn output_file(index: u64, attempt: u32, stream: Stream) -> String {
    let suffix = match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    format!("{index}.{attempt}.{suffix}")
}

fn split_status(status: Option<&ExitStatus>) -> (Option<i32>, Option<&str>) {
    match status {
        Some(ExitStatus::Code(code)) => (Some(*code), None),
        Some(ExitStatus::Signal(signal)) => (None, Some(signal.as_str())),
        None => (None, None),
    }
}
