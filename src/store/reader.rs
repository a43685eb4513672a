//! Reading runs for `status`, `logs`, `retry`, `clean` and the control commands, while
//! their coordinators may still be writing (SQLite WAL readers never block the writer).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, Row};

use super::schema::{self, DB_FILE, OUT_DIR};
use super::{RunSpec, StateDir, coordinator_alive};
use crate::error::Error;
use crate::stats::{self, Attempt, Capacity, Stats, TaskTimes};
use crate::transport::{ExitStatus, Stream};

/// A run as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub name: String,
    /// As stored, except `interrupted` when the database says running but no coordinator
    /// holds the lock.
    pub state: String,
    pub created: f64,
    pub started: Option<f64>,
    pub finished: Option<f64>,
    pub total: usize,
    pub counts: Counts,
    pub hosts: usize,
    pub pid: Option<u32>,
    pub hostname: Option<String>,
    pub algorithm: String,
    /// Why the run's store cannot be read, when it cannot (its state is then `damaged`).
    pub damage: Option<String>,
}

/// Tasks per state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub queued: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub cancelled: usize,
    pub not_run: usize,
    /// Never ran because a task they depend on failed.
    pub skipped: usize,
}

impl Counts {
    /// Failed and timed out.
    pub fn failed_total(&self) -> usize {
        self.failed + self.timed_out
    }

    pub fn done(&self) -> usize {
        self.succeeded + self.failed + self.timed_out + self.cancelled + self.not_run + self.skipped
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub seq: u32,
    pub index: u64,
    pub item: Vec<u8>,
    pub state: String,
    pub attempts: u32,
    pub host: Option<String>,
    pub submitted: f64,
    pub started: Option<f64>,
    pub finished: Option<f64>,
    pub run_s: Option<f64>,
    pub status: Option<ExitStatus>,
    pub reason: Option<String>,
    pub hit: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub seq: u32,
    pub attempt: u32,
    pub host: String,
    pub dispatched: f64,
    pub started: Option<f64>,
    pub finished: Option<f64>,
    pub outcome: Option<String>,
    pub status: Option<ExitStatus>,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostRow {
    pub name: String,
    pub slots: u32,
    pub weight: f64,
    pub state: String,
    pub error: Option<String>,
    /// The GPUs it had when it connected (0 in a run recorded before dts kept them).
    pub gpus: u32,
}

/// Everything about one run.
#[derive(Debug, Clone)]
pub struct RunDetail {
    pub run: RunRow,
    pub spec: RunSpec,
    pub tasks: Vec<TaskRow>,
    pub attempts: Vec<AttemptRow>,
    pub hosts: Vec<HostRow>,
    pub dir: PathBuf,
}

fn db_error(dir: &Path, e: rusqlite::Error) -> Error {
    Error::Store(format!("run store {}: {e}", dir.display()))
}

fn open(dir: &Path) -> Result<Connection, Error> {
    if !dir.join(DB_FILE).is_file() {
        return Err(Error::Store(format!("{} has no {DB_FILE}", dir.display())));
    }
    let conn = Connection::open_with_flags(
        dir.join(DB_FILE),
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| db_error(dir, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| db_error(dir, e))?;
    // An older schema is read as it is: only a coordinator upgrades it.
    schema::check_version(&conn)
        .map_err(|why| Error::Store(format!("{}: {why}", dir.display())))?;
    Ok(conn)
}

fn status_of(code: Option<i32>, signal: Option<String>) -> Option<ExitStatus> {
    match (code, signal) {
        (_, Some(signal)) => Some(ExitStatus::Signal(signal)),
        (Some(code), None) => Some(ExitStatus::Code(code)),
        (None, None) => None,
    }
}

/// The run row with live counts.
pub fn summary(state: &StateDir, id: &str) -> Result<RunRow, Error> {
    let dir = state.run_dir(id);
    let conn = open(&dir)?;
    run_row(&conn, &dir)
}

fn run_row(conn: &Connection, dir: &Path) -> Result<RunRow, Error> {
    let err = |e| db_error(dir, e);
    let (mut row, spec): (RunRow, String) = conn
        .query_row(
            "SELECT id, name, state, created, started, finished, total, pid, hostname, spec FROM run",
            [],
            |r| {
                Ok((
                    RunRow {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        state: r.get(2)?,
                        created: r.get(3)?,
                        started: r.get(4)?,
                        finished: r.get(5)?,
                        total: r.get::<_, i64>(6)? as usize,
                        counts: Counts::default(),
                        hosts: 0,
                        pid: r.get(7)?,
                        hostname: r.get(8)?,
                        algorithm: String::new(),
                        damage: None,
                    },
                    r.get(9)?,
                ))
            },
        )
        .map_err(err)?;
    if let Ok(spec) = serde_json::from_str::<RunSpec>(&spec) {
        row.algorithm = spec.algorithm;
        row.hosts = spec.hosts.len();
    }
    let mut stmt = conn
        .prepare("SELECT state, COUNT(*) FROM task GROUP BY state")
        .map_err(err)?;
    let counts = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
        })
        .map_err(err)?;
    for entry in counts {
        let (state, n) = entry.map_err(err)?;
        let slot = match state.as_str() {
            "queued" => &mut row.counts.queued,
            "running" => &mut row.counts.running,
            "succeeded" => &mut row.counts.succeeded,
            "failed" => &mut row.counts.failed,
            "timed-out" => &mut row.counts.timed_out,
            "cancelled" => &mut row.counts.cancelled,
            "skipped" => &mut row.counts.skipped,
            _ => &mut row.counts.not_run,
        };
        *slot += n;
    }
    if matches!(row.state.as_str(), "queued" | "running" | "paused") && !coordinator_alive(dir) {
        // The coordinator commits its last state before it lets go of the lock, so it may
        // have ended between the read above and the lock check: read the state again. A
        // state read once the lock was free is final, so this recurses at most once more.
        let now: String = conn
            .query_row("SELECT state FROM run", [], |r| r.get(0))
            .map_err(err)?;
        if now != row.state {
            return run_row(conn, dir);
        }
        row.state = "interrupted".into();
    }
    Ok(row)
}

/// Every run, newest first. A run whose store cannot be read is listed as `damaged`,
/// with why, unless a coordinator holds it (it is being created, or its coordinator
/// notices the damage itself and stops).
pub fn list(state: &StateDir) -> Vec<RunRow> {
    let mut rows: Vec<RunRow> = state
        .run_ids()
        .iter()
        .filter_map(|id| match summary(state, id) {
            Ok(row) => Some(row),
            Err(_) if coordinator_alive(&state.run_dir(id)) => None,
            Err(e) => Some(damaged_row(id, &e)),
        })
        .collect();
    rows.reverse();
    rows
}

/// The row of a run whose store cannot be read: what its id tells, and why.
pub fn damaged_row(id: &str, why: &Error) -> RunRow {
    RunRow {
        id: id.to_string(),
        name: "-".into(),
        state: "damaged".into(),
        created: super::id_time(id).unwrap_or(0.0),
        started: None,
        finished: None,
        total: 0,
        counts: Counts::default(),
        hosts: 0,
        pid: None,
        hostname: None,
        algorithm: String::new(),
        damage: Some(why.to_string()),
    }
}

/// Everything about a run.
pub fn detail(state: &StateDir, id: &str) -> Result<RunDetail, Error> {
    detail_in(&state.run_dir(id))
}

/// Everything about the run in `dir`.
pub fn detail_in(dir: &Path) -> Result<RunDetail, Error> {
    let dir = dir.to_path_buf();
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let conn = open(&dir)?;
    let run = run_row(&conn, &dir)?;
    let err = |e| db_error(&dir, e);
    let spec_json: String = conn
        .query_row("SELECT spec FROM run", [], |r| r.get(0))
        .map_err(err)?;
    let spec: RunSpec = serde_json::from_str(&spec_json)
        .map_err(|e| Error::Store(format!("run {id}: bad saved spec: {e}")))?;
    let tasks = query(
        &conn,
        &dir,
        "SELECT seq, idx, item, state, attempts, host, submitted, started, finished, run_s, exit_code, signal, reason, hit FROM task ORDER BY seq",
        task_row,
    )?;
    let attempts = query(
        &conn,
        &dir,
        "SELECT seq, attempt, host, dispatched, started, finished, outcome, exit_code, signal, stdout_bytes, stderr_bytes FROM attempt ORDER BY seq, attempt",
        attempt_row,
    )?;
    let hosts = query(&conn, &dir, &hosts_sql(&conn, &dir)?, |r| {
        Ok(HostRow {
            name: r.get(0)?,
            slots: r.get(1)?,
            weight: r.get(2)?,
            state: r.get(3)?,
            error: r.get(4)?,
            gpus: r.get(5)?,
        })
    })?;
    Ok(RunDetail {
        run,
        spec,
        tasks,
        attempts,
        hosts,
        dir,
    })
}

/// The host query for this database's schema: version 1 has no `gpus` column, read as 0.
fn hosts_sql(conn: &Connection, dir: &Path) -> Result<String, Error> {
    let version = schema::check_version(conn)
        .map_err(|why| Error::Store(format!("{}: {why}", dir.display())))?;
    let gpus = if version >= 2 { "gpus" } else { "0" };
    Ok(format!(
        "SELECT name, slots, weight, state, error, {gpus} FROM host ORDER BY pos"
    ))
}

fn query<T>(
    conn: &Connection,
    dir: &Path,
    sql: &str,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, Error> {
    let err = |e| db_error(dir, e);
    let mut stmt = conn.prepare(sql).map_err(err)?;
    let rows = stmt.query_map([], map).map_err(err)?;
    rows.collect::<Result<_, _>>().map_err(err)
}

fn task_row(r: &Row<'_>) -> rusqlite::Result<TaskRow> {
    Ok(TaskRow {
        seq: r.get(0)?,
        index: r.get::<_, i64>(1)? as u64,
        item: r.get(2)?,
        state: r.get(3)?,
        attempts: r.get(4)?,
        host: r.get(5)?,
        submitted: r.get(6)?,
        started: r.get(7)?,
        finished: r.get(8)?,
        run_s: r.get(9)?,
        status: status_of(r.get(10)?, r.get(11)?),
        reason: r.get(12)?,
        hit: r.get(13)?,
    })
}

fn attempt_row(r: &Row<'_>) -> rusqlite::Result<AttemptRow> {
    Ok(AttemptRow {
        seq: r.get(0)?,
        attempt: r.get(1)?,
        host: r.get(2)?,
        dispatched: r.get(3)?,
        started: r.get(4)?,
        finished: r.get(5)?,
        outcome: r.get(6)?,
        status: status_of(r.get(7)?, r.get(8)?),
        stdout_bytes: r.get::<_, i64>(9)? as u64,
        stderr_bytes: r.get::<_, i64>(10)? as u64,
    })
}

impl RunDetail {
    /// The run's metrics over every task that finished, from the recorded times.
    pub fn stats(&self) -> Stats {
        let pos = |name: &str| self.hosts.iter().position(|h| h.name == name);
        let origin = self.run.created;
        let tasks: Vec<TaskTimes> = self
            .tasks
            .iter()
            .filter(|t| t.state != "queued" && t.state != "running")
            .filter_map(|t| {
                Some(TaskTimes {
                    submitted: t.submitted - origin,
                    started: t.started? - origin,
                    finished: t.finished? - origin,
                    run: t.run_s?,
                    host: pos(t.host.as_deref()?)?,
                    end: match t.state.as_str() {
                        "succeeded" => stats::End::Succeeded,
                        "failed" | "timed-out" => stats::End::Failed,
                        _ => stats::End::Stopped,
                    },
                    hit: t.hit,
                })
            })
            .collect();
        let attempts: Vec<Attempt> = self
            .attempts
            .iter()
            .filter_map(|a| {
                Some(Attempt {
                    host: pos(&a.host)?,
                    started: a.started? - origin,
                    finished: a.finished? - origin,
                    failed: matches!(a.outcome.as_deref(), Some("failed" | "timed-out")),
                })
            })
            .collect();
        let capacity: Vec<Capacity> = self
            .hosts
            .iter()
            .map(|h| Capacity {
                slots: h.slots,
                speed: h.weight,
            })
            .collect();
        stats::compute_taking(&tasks, &attempts, &capacity, self.spec.resources.cpus)
    }

    /// The task with this array index.
    pub fn task(&self, index: u64) -> Option<&TaskRow> {
        self.tasks.iter().find(|t| t.index == index)
    }

    /// Path of a task attempt's output file (it exists only if the attempt wrote output).
    pub fn output_path(&self, index: u64, attempt: u32, stream: Stream) -> PathBuf {
        self.dir
            .join(OUT_DIR)
            .join(super::writer::output_file(index, attempt, stream))
    }
}

impl RunDetail {
    /// The last `max` bytes a task's latest attempt wrote to stderr, from a line start.
    pub fn stderr_tail(&self, task: &TaskRow, max: u64) -> Option<String> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.output_path(task.index, task.attempts, Stream::Stderr);
        let mut file = std::fs::File::open(path).ok()?;
        let len = file.metadata().ok()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(max))).ok()?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).ok()?;
        let text = String::from_utf8_lossy(&tail).into_owned();
        Some(match (len > max, text.find('\n')) {
            (true, Some(cut)) => text[cut + 1..].to_string(),
            _ => text,
        })
    }

    /// The last non-empty line a task's latest attempt wrote to stderr (at most 200
    /// characters), for folding failures by cause.
    pub fn last_stderr_line(&self, task: &TaskRow) -> Option<String> {
        let tail = self.stderr_tail(task, 4096)?;
        let line = tail.lines().map(str::trim).rfind(|l| !l.is_empty())?;
        Some(line.chars().take(200).collect())
    }
}

/// Whether an attempt has ended (has an outcome); `None` if there is no such attempt.
pub fn attempt_ended(
    state: &StateDir,
    id: &str,
    seq: u32,
    attempt: u32,
) -> Result<Option<bool>, Error> {
    use rusqlite::OptionalExtension;
    let dir = state.run_dir(id);
    let conn = open(&dir)?;
    let outcome: Option<Option<String>> = conn
        .query_row(
            "SELECT outcome FROM attempt WHERE seq = ?1 AND attempt = ?2",
            [seq, attempt],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| db_error(&dir, e))?;
    Ok(outcome.map(|o| o.is_some()))
}

/// Writes a control request (cancel, pause, resume) for a run's coordinator to pick up.
pub fn request_control(state: &StateDir, id: &str, control: &str) -> Result<RunRow, Error> {
    let dir = state.run_dir(id);
    let conn = open(&dir)?;
    conn.execute("UPDATE run SET control = ?1", [control])
        .map_err(|e| db_error(&dir, e))?;
    run_row(&conn, &dir)
}

/// Marks a run whose coordinator is gone as cancelled: its unfinished tasks too.
pub fn cancel_dead(state: &StateDir, id: &str, at: f64) -> Result<(), Error> {
    let dir = state.run_dir(id);
    let conn = open(&dir)?;
    let run = || -> rusqlite::Result<()> {
        let tx = conn.unchecked_transaction()?;
        tx.execute(
            "UPDATE attempt SET outcome = 'lost', finished = ?1 WHERE outcome IS NULL",
            [at],
        )?;
        tx.execute(
            "UPDATE task SET state = 'cancelled', reason = 'cancelled' WHERE state IN ('queued', 'running')",
            [],
        )?;
        tx.execute(
            "UPDATE run SET state = 'cancelled', finished = ?1, control = NULL",
            [at],
        )?;
        tx.commit()
    };
    run().map_err(|e| db_error(&dir, e))
}

/// A task's state and how many attempts it has had, read alone (cheap enough to poll, for
/// `dts logs --follow`); `None` if there is no such task.
pub fn task_progress(state: &StateDir, id: &str, seq: u32) -> Result<Option<(String, u32)>, Error> {
    use rusqlite::OptionalExtension;
    let dir = state.run_dir(id);
    let conn = open(&dir)?;
    conn.query_row(
        "SELECT state, attempts FROM task WHERE seq = ?1",
        [seq],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(|e| db_error(&dir, e))
}
