//! The coordinator's side of the store: creates a run, records every transition, writes
//! task output files. Writes are grouped in one transaction per dispatcher turn
//! ([`RunWriter::commit`]); the dispatcher commits before it acts on what it recorded.
//!
//! A write that fails (disk full, run directory removed, output file unwritable) breaks the
//! writer for good: the open transaction is rolled back and every later write is refused,
//! so the store keeps exactly what it had committed before the failure, never a success
//! whose output was lost. The dispatcher stops the run on the first failure.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
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
    /// Device and inode of `run.db` as opened: SQLite writes on into a database whose
    /// directory was removed, so each commit checks the file is still the run's.
    db_file: (u64, u64),
    /// Why the store stopped taking writes, once one failed.
    broken: Option<String>,
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
    /// Never ran: a task it depends on failed (its reason says so).
    pub const SKIPPED: &str = "skipped";
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
    Error::Store(format!("run store {}: {e}", dir.display()))
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Store(format!("run store {}: {e}", path.display()))
}

/// Device and inode of a file.
fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

impl RunWriter {
    /// Creates a run under a fresh id (see [`super::new_run_id`]): its directory and
    /// database, with the run and every task queued.
    pub fn create_new(
        state: &StateDir,
        spec: &RunSpec,
        tasks: &[Task],
        created: f64,
    ) -> Result<RunWriter, Error> {
        state.create()?;
        // Two runs created within the same id tick: the later one takes the next tick.
        for _ in 0..1000 {
            let id = super::new_run_id();
            match make_run_dir(&state.run_dir(&id)) {
                Ok(()) => return RunWriter::init(state, &id, spec, tasks, created),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::thread::yield_now();
                }
                Err(source) => {
                    return Err(Error::ReadFile {
                        path: state.run_dir(&id),
                        source,
                    });
                }
            }
        }
        Err(Error::Store(format!(
            "cannot find a free run id in {}",
            state.root().display()
        )))
    }

    /// Creates the run `id`: its directory and database, with the run and every task queued.
    pub fn create(
        state: &StateDir,
        id: &str,
        spec: &RunSpec,
        tasks: &[Task],
        created: f64,
    ) -> Result<RunWriter, Error> {
        state.create()?;
        let dir = state.run_dir(id);
        make_run_dir(&dir).map_err(|source| Error::ReadFile {
            path: dir.clone(),
            source,
        })?;
        RunWriter::init(state, id, spec, tasks, created)
    }

    /// Fills the new, empty directory of run `id`; removes it again if that fails (a full
    /// disk), so no half-made run is left behind.
    fn init(
        state: &StateDir,
        id: &str,
        spec: &RunSpec,
        tasks: &[Task],
        created: f64,
    ) -> Result<RunWriter, Error> {
        RunWriter::fill(state, id, spec, tasks, created).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(state.run_dir(id));
        })
    }

    fn fill(
        state: &StateDir,
        id: &str,
        spec: &RunSpec,
        tasks: &[Task],
        created: f64,
    ) -> Result<RunWriter, Error> {
        let dir = state.run_dir(id);
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
        // Made here and never again: a run directory removed under a running coordinator
        // must fail its writes, not come back as an empty ghost.
        make_run_dir(&dir.join(OUT_DIR)).map_err(|e| io_error(&dir.join(OUT_DIR), e))?;
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
        RunWriter::with(id, dir, conn, lock)
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
        if !dir.join(DB_FILE).is_file() {
            return Err(damaged(id, "its run.db is missing"));
        }
        let conn = Connection::open(dir.join(DB_FILE)).map_err(|e| db_error(&dir, e))?;
        schema::check(&conn).map_err(|why| damaged(id, &why))?;
        schema::configure(&conn).map_err(|e| db_error(&dir, e))?;
        schema::upgrade(&conn).map_err(|why| Error::Store(format!("run {id}: {why}")))?;
        match make_run_dir(&dir.join(OUT_DIR)) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(io_error(&dir.join(OUT_DIR), e));
            }
            _ => {}
        }
        RunWriter::with(id, dir, conn, lock)
    }

    fn with(id: &str, dir: PathBuf, conn: Connection, lock: File) -> Result<RunWriter, Error> {
        let db_file = file_id(&dir.join(DB_FILE)).map_err(|e| io_error(&dir.join(DB_FILE), e))?;
        Ok(RunWriter {
            id: id.to_string(),
            dir,
            conn,
            in_transaction: false,
            files: HashMap::new(),
            _lock: lock,
            commits: 0,
            db_file,
            broken: None,
        })
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

    /// Refuses every write once one failed.
    fn usable(&self) -> Result<(), Error> {
        match &self.broken {
            Some(why) => Err(Error::Store(format!("the run store failed earlier: {why}"))),
            None => Ok(()),
        }
    }

    /// Breaks the writer for good: rolls back what this transaction held and keeps `e`.
    fn fail(&mut self, e: Error) -> Error {
        if self.in_transaction {
            self.in_transaction = false;
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.files.clear();
        self.broken.get_or_insert_with(|| e.to_string());
        e
    }

    /// Checks `run.db` is still the file this writer opened.
    fn check_in_place(&mut self) -> Result<(), Error> {
        let path = self.dir.join(DB_FILE);
        match file_id(&path) {
            Ok(id) if id == self.db_file => Ok(()),
            Ok(_) => Err(Error::Store(format!(
                "run store {}: run.db was replaced under the running coordinator",
                self.dir.display()
            ))),
            Err(e) => Err(Error::Store(format!(
                "run store {}: the run directory was removed or moved ({e})",
                self.dir.display()
            ))),
        }
        .map_err(|e| self.fail(e))
    }

    pub fn spec(&self) -> Result<RunSpec, Error> {
        let json: String = self
            .conn
            .query_row("SELECT spec FROM run", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        serde_json::from_str(&json)
            .map_err(|e| Error::Store(format!("run {}: bad saved spec: {e}", self.id)))
    }

    /// Replaces the saved spec (a retry on Slurm saves the hosts of its new allocation).
    pub fn set_spec(&mut self, spec: &RunSpec) -> Result<(), Error> {
        let json = serde_json::to_string(spec).expect("specs serialise");
        self.conn
            .execute("UPDATE run SET spec = ?1", [json])
            .map_err(|e| self.err(e))?;
        Ok(())
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
        self.usable()?;
        let states = if only_failed {
            "('failed', 'timed-out', 'skipped')"
        } else {
            "('queued', 'running', 'failed', 'timed-out', 'cancelled', 'not-run', 'skipped')"
        };
        let run = || -> rusqlite::Result<usize> {
            let tx = self.conn.unchecked_transaction()?;
            tx.execute(
                "UPDATE attempt SET outcome = 'lost', finished = ?1 WHERE outcome IS NULL",
                params![at],
            )?;
            if only_failed {
                // Left queued or running by a dead coordinator, and not asked for: they did
                // not run, and must not run now.
                tx.execute(
                    "UPDATE task SET state = 'not-run', reason = 'interrupted' \
                     WHERE state IN ('queued', 'running')",
                    [],
                )?;
            }
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

    /// Tasks that this session leaves alone, by how they ended: every task not queued and
    /// not succeeded (call it before the session runs).
    pub fn left_out(&self) -> Result<LeftOut, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT state, COUNT(*) FROM task WHERE state NOT IN ('queued', 'succeeded') GROUP BY state")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
            })
            .map_err(|e| self.err(e))?;
        let mut left = LeftOut::default();
        for row in rows {
            let (state, n) = row.map_err(|e| self.err(e))?;
            match state.as_str() {
                "failed" | "timed-out" | "skipped" => left.failed += n,
                "cancelled" => left.cancelled += n,
                _ => left.not_run += n,
            }
        }
        Ok(left)
    }

    /// The tasks this session leaves alone that did not succeed, by `seq` (call it before
    /// the session runs): in a pipeline, what depends on them cannot run.
    pub fn unsucceeded_left_out(&self) -> Result<Vec<u32>, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq FROM task WHERE state NOT IN ('queued', 'succeeded') ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, u32>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The tasks that succeeded, with the host of their final attempt, by `seq`.
    pub fn succeeded_hosts(&self) -> Result<Vec<(u32, String)>, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, host FROM task WHERE state = 'succeeded' AND host IS NOT NULL ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Records that a coordinator (this process) now runs the run.
    pub fn begin_session(&mut self, at: f64) -> Result<(), Error> {
        self.usable()?;
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
        self.usable()?;
        let run = |this: &mut Self| -> rusqlite::Result<()> {
            this.tx()?;
            this.conn.prepare_cached(sql)?.execute(params)?;
            Ok(())
        };
        run(self).map_err(|e| {
            let e = self.err(e);
            self.fail(e)
        })
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
        self.usable()?;
        self.write_output(seq, index, attempt, stream, data)
            .map_err(|e| self.fail(e))
    }

    fn write_output(
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
            Error::Store(format!("writing task output in {}: {e}", dir.display()))
        };
        if slot.is_none() {
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
        self.usable()?;
        let (stdout_bytes, stderr_bytes) =
            self.close_files(seq, attempt).map_err(|e| self.fail(e))?;
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

    /// Flushes and closes an attempt's output files; the attempt's end is recorded only
    /// once its output is all written.
    fn close_files(&mut self, seq: u32, attempt: u32) -> Result<(u64, u64), Error> {
        let Some(mut files) = self.files.remove(&(seq, attempt)) else {
            return Ok((0, 0));
        };
        for w in [files.stdout.as_mut(), files.stderr.as_mut()]
            .into_iter()
            .flatten()
        {
            w.flush().map_err(|e| self.output_error(e))?;
        }
        Ok((files.stdout_bytes, files.stderr_bytes))
    }

    fn output_error(&self, e: std::io::Error) -> Error {
        Error::Store(format!(
            "writing task output in {}: {e}",
            self.dir.join(OUT_DIR).display()
        ))
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

    /// The GPUs a host had when it connected, for the report.
    pub fn host_gpus(&mut self, name: &str, gpus: u32) -> Result<(), Error> {
        self.exec(
            "UPDATE host SET gpus = ?2 WHERE name = ?1",
            params![name, gpus],
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
        self.usable()?;
        // Polled every second: a run directory removed while tasks run quietly is noticed
        // here, not at the next event.
        self.check_in_place()?;
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
        self.usable()?;
        self.flush_files().map_err(|e| self.fail(e))?;
        if self.in_transaction {
            self.check_in_place()?;
            let commit = || self.conn.prepare_cached("COMMIT")?.execute([]).map(drop);
            if let Err(e) = commit() {
                let e = self.err(e);
                return Err(self.fail(e));
            }
            self.in_transaction = false;
        }
        Ok(())
    }

    fn flush_files(&mut self) -> Result<(), Error> {
        let mut failed = None;
        for files in self.files.values_mut() {
            for w in [files.stdout.as_mut(), files.stderr.as_mut()]
                .into_iter()
                .flatten()
            {
                if let Err(e) = w.flush() {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(self.output_error(e)),
            None => Ok(()),
        }
    }
}

/// Tasks a session does not run, by how they had ended: they decide the run's state as
/// much as the tasks the session runs (`dts retry --failed` leaves cancelled and not-run
/// tasks as they were).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeftOut {
    /// Failed or timed out.
    pub failed: usize,
    pub cancelled: usize,
    pub not_run: usize,
}

impl LeftOut {
    pub fn is_empty(&self) -> bool {
        *self == LeftOut::default()
    }
}

/// A new directory of mode 0700 (never its parents: see [`RunWriter::create`]).
fn make_run_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

/// A run that cannot be coordinated because its store is damaged.
fn damaged(id: &str, why: &str) -> Error {
    Error::Store(format!(
        "run {id} is damaged ({why}); nothing ran. `dts clean --damaged` removes it"
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::TemplateSpec;
    use crate::store::{StateEnv, reader};

    fn spec() -> RunSpec {
        RunSpec {
            name: "t".into(),
            command: TemplateSpec::Shell("true".into()),
            algorithm: "round-robin".into(),
            key: None,
            retries: 0,
            timeout: None,
            workdir: None,
            env: vec![],
            throttle: None,
            slots: Some(1),
            seed: 1,
            epsilon: 0.25,
            kill_grace: std::time::Duration::from_secs(5),
            probe_interval: None,
            hosts: crate::inventory::local_default(&crate::inventory::Env::default()).hosts,
            joblog: None,
            junit: None,
            html: None,
            faults: Default::default(),
            secret_env: vec![],
            matrix: Default::default(),
            gates: Default::default(),
            resources: Default::default(),
            order: Default::default(),
            slurm: None,
            staging: Default::default(),
            stages: Vec::new(),
        }
    }

    /// Runs saved before matrix sweeps have no `matrix` key in their spec; they still load,
    /// and a matrix is saved and rebuilt with the run.
    #[test]
    fn a_spec_without_a_matrix_loads_and_a_matrix_round_trips() {
        let json = serde_json::to_value(spec()).unwrap();
        assert!(json.get("matrix").is_none(), "no key without a matrix");
        let old: RunSpec = serde_json::from_value(json).unwrap();
        assert!(old.matrix.is_empty());
        let axes = vec![crate::job::matrix::Axis {
            name: "lr".into(),
            values: vec!["0.1".into(), "$(x)".into()],
        }];
        let with = RunSpec {
            matrix: crate::job::Matrix::new(axes).unwrap(),
            command: TemplateSpec::Shell("echo {lr}".into()),
            ..spec()
        };
        let json = serde_json::to_string(&with).unwrap();
        let back: RunSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, with);
        let job = back.job(vec![]).unwrap();
        assert!(job.command.has_placeholder(), "{{lr}} is bound again");
    }

    fn new_run(tasks: u32) -> (tempfile::TempDir, StateDir, RunWriter) {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::locate(&StateEnv {
            dts_state_dir: Some(tmp.path().join("runs")),
            ..StateEnv::default()
        })
        .unwrap();
        let tasks: Vec<Task> = (1..=tasks)
            .map(|seq| Task {
                seq,
                index: u64::from(seq),
                item: seq.to_string().into_bytes().into(),
            })
            .collect();
        let writer = RunWriter::create_new(&state, &spec(), &tasks, 0.0).unwrap();
        (tmp, state, writer)
    }

    fn succeed(w: &mut RunWriter, seq: u32) -> Result<(), Error> {
        w.dispatched(seq, 1, "localhost", 1.0)?;
        w.output(seq, u64::from(seq), 1, Stream::Stdout, b"out\n")?;
        w.attempt_ended(
            seq,
            1,
            attempt_outcome::SUCCEEDED,
            Some(&ExitStatus::Code(0)),
            2.0,
        )?;
        w.task_finished(
            seq,
            &TaskEnd {
                state: task_state::SUCCEEDED,
                status: Some(&ExitStatus::Code(0)),
                reason: None,
                started: Some(1.0),
                finished: Some(2.0),
                run_s: Some(1.0),
                hit: None,
            },
        )
    }

    /// Regression: `dts cancel` said "its coordinator died before confirming" for a run its
    /// coordinator had just cancelled, because the reader read `running`, the coordinator
    /// committed `cancelled` and exited, and only then did the reader find the lock free.
    #[test]
    fn a_run_that_ends_while_it_is_read_is_never_called_interrupted() {
        for _ in 0..40 {
            let (_tmp, state, mut writer) = new_run(1);
            writer.begin_session(1.0).unwrap();
            writer.run_state("running", None).unwrap();
            writer.commit().unwrap();
            let id = writer.id().to_string();
            let ender = std::thread::spawn(move || {
                writer.run_state("cancelled", Some(2.0)).unwrap();
                writer.commit().unwrap();
                drop(writer);
            });
            loop {
                let seen = reader::summary(&state, &id).unwrap().state;
                assert_ne!(
                    seen, "interrupted",
                    "a run that ended was called interrupted"
                );
                if seen == "cancelled" {
                    break;
                }
            }
            ender.join().unwrap();
        }
    }

    fn states(state: &StateDir, id: &str) -> Vec<String> {
        let detail = reader::detail(state, id).unwrap();
        detail.tasks.into_iter().map(|t| t.state).collect()
    }

    #[test]
    fn an_output_write_failure_breaks_the_store_and_keeps_what_was_committed() {
        let (_tmp, state, mut w) = new_run(3);
        let id = w.id().to_string();
        succeed(&mut w, 1).unwrap();
        w.commit().unwrap();
        // Task 2's output file cannot be made: its success must never be recorded.
        std::fs::create_dir(w.dir().join(OUT_DIR).join("2.1.stdout")).unwrap();
        w.dispatched(2, 1, "localhost", 1.0).unwrap();
        let failed = succeed(&mut w, 2).unwrap_err();
        assert!(matches!(failed, Error::Store(_)), "{failed}");
        assert!(
            failed.to_string().contains("writing task output"),
            "{failed}"
        );
        // Everything after is refused, even what would fit.
        assert!(succeed(&mut w, 3).is_err());
        assert!(w.commit().is_err());
        assert!(w.run_state("failed", Some(3.0)).is_err());
        drop(w);
        assert_eq!(states(&state, &id), ["succeeded", "queued", "queued"]);
    }

    #[test]
    fn a_run_directory_removed_mid_run_fails_the_next_commit_and_is_not_recreated() {
        let (_tmp, state, mut w) = new_run(2);
        let dir = w.dir().to_path_buf();
        succeed(&mut w, 1).unwrap();
        w.commit().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // SQLite would write on into the unlinked database: the commit checks first.
        w.dispatched(2, 1, "localhost", 1.0).unwrap();
        let failed = w.commit().unwrap_err();
        assert!(failed.to_string().contains("removed"), "{failed}");
        assert!(w.output(2, 2, 1, Stream::Stdout, b"x").is_err());
        assert!(w.take_control().is_err());
        drop(w);
        assert!(!dir.exists(), "no ghost run directory");
        assert!(state.run_ids().is_empty());
    }

    #[test]
    fn the_control_poll_notices_a_removed_run_directory() {
        let (_tmp, _state, mut w) = new_run(1);
        std::fs::remove_dir_all(w.dir()).unwrap();
        assert!(w.take_control().is_err());
        assert!(w.dispatched(1, 1, "localhost", 1.0).is_err());
    }

    #[test]
    fn a_corrupt_run_db_is_refused_before_anything_runs() {
        let (_tmp, state, w) = new_run(2);
        let id = w.id().to_string();
        let db = w.dir().join(DB_FILE);
        drop(w);
        let mut bytes = std::fs::read(&db).unwrap();
        for b in bytes.iter_mut().skip(100) {
            *b = 0xa5;
        }
        std::fs::write(&db, bytes).unwrap();
        let refused = RunWriter::open(&state, &id).err().expect("refused");
        assert!(matches!(refused, Error::Store(_)), "{refused}");
        assert!(refused.to_string().contains("is damaged"), "{refused}");
    }

    /// The host table as schema version 1 made it, before dts kept each host's GPUs.
    const HOST_V1: &str = "
        CREATE TABLE host (
            name TEXT PRIMARY KEY,
            pos INTEGER NOT NULL,
            slots INTEGER NOT NULL DEFAULT 0,
            weight REAL NOT NULL,
            state TEXT NOT NULL,
            error TEXT
        );";

    /// Turns a run's database back into one the previous dts (schema version 1) wrote:
    /// the same host rows in version 1's host table, and version 1 in `user_version`.
    fn make_version_1(db: &Path) {
        let conn = Connection::open(db).unwrap();
        conn.execute_batch(&format!(
            "BEGIN;
             CREATE TABLE host_now AS SELECT name, pos, slots, weight, state, error FROM host;
             DROP TABLE host;
             {HOST_V1}
             INSERT INTO host SELECT * FROM host_now;
             DROP TABLE host_now;
             PRAGMA user_version = 1;
             COMMIT;"
        ))
        .unwrap();
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('host')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            columns,
            ["name", "pos", "slots", "weight", "state", "error"]
        );
    }

    fn user_version(db: &Path) -> i64 {
        Connection::open(db)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_run_store_of_schema_version_1_is_read_as_it_is_and_upgraded_when_a_coordinator_opens_it() {
        let (_tmp, state, mut w) = new_run(2);
        let id = w.id().to_string();
        let db = w.dir().join(DB_FILE);
        w.host("localhost", 4, "up", None).unwrap();
        succeed(&mut w, 1).unwrap();
        w.commit().unwrap();
        drop(w);
        make_version_1(&db);

        // status, report and logs read it without changing it.
        let old = reader::detail(&state, &id).unwrap();
        assert_eq!(old.hosts.len(), 1);
        assert_eq!((old.hosts[0].slots, old.hosts[0].gpus), (4, 0));
        assert_eq!(old.tasks[0].state, "succeeded");
        assert_eq!(reader::summary(&state, &id).unwrap().counts.succeeded, 1);
        assert_eq!(user_version(&db), 1, "a reader never upgrades");

        // A coordinator (dts retry) upgrades it, keeps every row, and records GPUs.
        let mut w = RunWriter::open(&state, &id).unwrap();
        assert_eq!(user_version(&db), schema::VERSION);
        w.host_gpus("localhost", 2).unwrap();
        w.commit().unwrap();
        drop(w);
        let new = reader::detail(&state, &id).unwrap();
        assert_eq!((new.hosts[0].slots, new.hosts[0].gpus), (4, 2));
        assert_eq!(new.tasks[0].state, "succeeded");
        // Opening it again finds nothing to upgrade.
        drop(RunWriter::open(&state, &id).unwrap());
        assert_eq!(reader::detail(&state, &id).unwrap().hosts[0].gpus, 2);
    }

    #[test]
    fn a_run_store_of_a_newer_schema_is_refused_by_readers_and_coordinators() {
        let (_tmp, state, w) = new_run(1);
        let id = w.id().to_string();
        let db = w.dir().join(DB_FILE);
        drop(w);
        let newer = schema::VERSION + 1;
        Connection::open(&db)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();
        let read = reader::detail(&state, &id).expect_err("refused");
        assert!(
            read.to_string()
                .contains(&format!("schema version {newer}")),
            "{read}"
        );
        let opened = RunWriter::open(&state, &id).err().expect("refused");
        assert!(opened.to_string().contains("is damaged"), "{opened}");
        assert_eq!(user_version(&db), newer, "left as it was");
    }

    #[test]
    fn retry_failed_leaves_out_what_did_not_fail_and_says_so() {
        let (_tmp, state, mut w) = new_run(4);
        let id = w.id().to_string();
        succeed(&mut w, 1).unwrap();
        w.dispatched(2, 1, "localhost", 1.0).unwrap();
        w.attempt_ended(
            2,
            1,
            attempt_outcome::FAILED,
            Some(&ExitStatus::Code(1)),
            2.0,
        )
        .unwrap();
        let failed = TaskEnd {
            state: task_state::FAILED,
            status: Some(&ExitStatus::Code(1)),
            reason: None,
            started: Some(1.0),
            finished: Some(2.0),
            run_s: Some(1.0),
            hit: None,
        };
        w.task_finished(2, &failed).unwrap();
        // Task 3 was running and task 4 queued when the coordinator died.
        w.dispatched(3, 1, "localhost", 1.0).unwrap();
        w.commit().unwrap();
        drop(w);
        let mut w = RunWriter::open(&state, &id).unwrap();
        assert_eq!(w.requeue_unfinished(true, 3.0).unwrap(), 1);
        assert_eq!(
            w.left_out().unwrap(),
            LeftOut {
                failed: 0,
                cancelled: 0,
                not_run: 2
            }
        );
        assert_eq!(w.queued_tasks().unwrap().len(), 1, "only the failed task");
        drop(w);
        assert_eq!(
            states(&state, &id),
            ["succeeded", "queued", "not-run", "not-run"]
        );
    }
}
