//! The run database's schema and connection settings.

use rusqlite::Connection;

pub const DB_FILE: &str = "run.db";
pub const LOCK_FILE: &str = "lock";
pub const OUT_DIR: &str = "out";
pub const COORDINATOR_LOG: &str = "coordinator.log";

/// Bumped when the schema changes. A run written by a newer version is refused; one
/// written by an older version is read as it is and upgraded ([`upgrade`]) when a
/// coordinator opens it to write again.
pub const VERSION: i64 = 2;

/// The oldest schema this dts still reads: version 1 had no `host.gpus` column.
pub const OLDEST: i64 = 1;

/// Each step brings a database from version `n` to `n + 1`, at index `n - OLDEST`.
const MIGRATIONS: [&str; (VERSION - OLDEST) as usize] =
    ["ALTER TABLE host ADD COLUMN gpus INTEGER NOT NULL DEFAULT 0;"];

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS run (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created REAL NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    total INTEGER NOT NULL,
    pid INTEGER,
    hostname TEXT,
    started REAL,
    finished REAL,
    control TEXT
);
CREATE TABLE IF NOT EXISTS task (
    seq INTEGER PRIMARY KEY,
    idx INTEGER NOT NULL,
    item BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    host TEXT,
    submitted REAL NOT NULL,
    started REAL,
    finished REAL,
    run_s REAL,
    exit_code INTEGER,
    signal TEXT,
    reason TEXT,
    hit INTEGER
);
CREATE INDEX IF NOT EXISTS task_idx ON task(idx);
CREATE TABLE IF NOT EXISTS attempt (
    seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    host TEXT NOT NULL,
    dispatched REAL NOT NULL,
    started REAL,
    finished REAL,
    outcome TEXT,
    exit_code INTEGER,
    signal TEXT,
    stdout_bytes INTEGER NOT NULL DEFAULT 0,
    stderr_bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (seq, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS host (
    name TEXT PRIMARY KEY,
    pos INTEGER NOT NULL,
    slots INTEGER NOT NULL DEFAULT 0,
    weight REAL NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    gpus INTEGER NOT NULL DEFAULT 0
);
";

/// Settings every connection uses: WAL so readers never block the writer, NORMAL sync
/// (a commit survives the coordinator dying; only a power cut can lose the last ones),
/// and a busy timeout for the brief moments two writers meet (control commands).
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Checkpoint every 16 MB of WAL rather than 4 MB: fewer copies back while a run writes.
    conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    configure(conn)?;
    conn.execute_batch(TABLES)?;
    conn.pragma_update(None, "user_version", VERSION)?;
    Ok(())
}

/// Checks a run database can be trusted before a coordinator writes to it again: SQLite
/// finds no damage (`quick_check`) and a schema version this dts reads wrote it.
pub fn check(conn: &Connection) -> Result<(), String> {
    let verdict: String = conn
        .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    if verdict != "ok" {
        return Err(verdict);
    }
    check_version(conn).map(drop)
}

/// Checks a run database was written by a schema version this dts reads, and says which.
pub fn check_version(conn: &Connection) -> Result<i64, String> {
    let version = version(conn)?;
    if (OLDEST..=VERSION).contains(&version) {
        Ok(version)
    } else {
        Err(format!(
            "run database has schema version {version}; this dts reads versions {OLDEST} to {VERSION}"
        ))
    }
}

fn version(conn: &Connection) -> Result<i64, String> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| e.to_string())
}

/// Brings a database this dts reads up to [`VERSION`], all steps in one transaction so a
/// crash leaves it at its old version, never half upgraded. Only a coordinator that holds
/// the run's lock calls it: readers read an old database as it is.
pub fn upgrade(conn: &Connection) -> Result<(), String> {
    let from = check_version(conn)?;
    if from == VERSION {
        return Ok(());
    }
    let steps: String = MIGRATIONS[(from - OLDEST) as usize..].concat();
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {steps} PRAGMA user_version = {VERSION}; COMMIT;"
    ))
    .map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        format!("upgrading its schema from version {from} to {VERSION}: {e}")
    })
}
