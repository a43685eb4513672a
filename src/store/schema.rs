//! The run database's schema and connection settings.

use rusqlite::Connection;

pub const DB_FILE: &str = "run.db";
pub const LOCK_FILE: &str = "lock";
pub const OUT_DIR: &str = "out";
pub const COORDINATOR_LOG: &str = "coordinator.log";

/// Bumped when the schema changes; a run written by another version is refused.
pub const VERSION: i64 = 1;

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
    error TEXT
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
/// finds no damage (`quick_check`) and this schema version wrote it.
pub fn check(conn: &Connection) -> Result<(), String> {
    let verdict: String = conn
        .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    if verdict != "ok" {
        return Err(verdict);
    }
    check_version(conn)
}

/// Checks a run database was written by this schema version.
pub fn check_version(conn: &Connection) -> Result<(), String> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| e.to_string())?;
    if version == VERSION {
        Ok(())
    } else {
        Err(format!(
            "run database has schema version {version}; this dts reads version {VERSION}"
        ))
    }
}
