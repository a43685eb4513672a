//! Task durations across runs (issue 17 item 3): `history.db` (SQLite, mode 0600) in the
//! state directory, beside the run directories, one row per (job name, task key) holding the
//! latest successful run time and the host it ran on. `--order longest-first` reads it; every
//! run writes what its successful tasks took when it ends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use super::StateDir;
use crate::error::Error;

const FILE: &str = "history.db";

/// SQLite waits this long for another run writing the history at the same moment.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// One task's run time, as a run records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// The task's key (see `JobSpec::key_of`).
    pub key: Vec<u8>,
    pub seconds: f64,
    pub host: String,
}

pub struct History {
    path: PathBuf,
    conn: Connection,
}

fn db_error(path: &Path, e: rusqlite::Error) -> Error {
    Error::Store(format!("task history {}: {e}", path.display()))
}

impl History {
    /// Opens (creating) the history of the state directory.
    pub fn open(state: &StateDir) -> Result<History, Error> {
        Self::open_in(state.root())
    }

    /// Opens (creating) the history of the state directory `root`.
    pub fn open_in(root: &Path) -> Result<History, Error> {
        Self::open_at(&root.join(FILE))
    }

    fn open_at(path: &Path) -> Result<History, Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Store(format!("task history {}: {e}", path.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| db_error(path, e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        conn.busy_timeout(BUSY_WAIT)
            .map_err(|e| db_error(path, e))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS duration (
                 job TEXT NOT NULL,
                 key BLOB NOT NULL,
                 seconds REAL NOT NULL,
                 host TEXT NOT NULL,
                 runs INTEGER NOT NULL DEFAULT 1,
                 PRIMARY KEY (job, key)
             );
             CREATE TABLE IF NOT EXISTS host_time (
                 job TEXT NOT NULL,
                 key BLOB NOT NULL,
                 host TEXT NOT NULL,
                 seconds REAL NOT NULL,
                 PRIMARY KEY (job, key, host)
             )",
        )
        .map_err(|e| db_error(path, e))?;
        Ok(History {
            path: path.to_path_buf(),
            conn,
        })
    }

    /// The latest recorded run time of every task of `job`, by key.
    pub fn durations(&self, job: &str) -> Result<HashMap<Vec<u8>, f64>, Error> {
        let read = || -> rusqlite::Result<HashMap<Vec<u8>, f64>> {
            let mut stmt = self
                .conn
                .prepare("SELECT key, seconds FROM duration WHERE job = ?1")?;
            let rows = stmt.query_map(params![job], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        };
        read().map_err(|e| db_error(&self.path, e))
    }

    /// The latest recorded run of every task of `job`, by key: its seconds and its host.
    pub fn timings(&self, job: &str) -> Result<HashMap<Vec<u8>, (f64, String)>, Error> {
        let read = || -> rusqlite::Result<HashMap<Vec<u8>, (f64, String)>> {
            let mut stmt = self
                .conn
                .prepare("SELECT key, seconds, host FROM duration WHERE job = ?1")?;
            let rows = stmt.query_map(params![job], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
            rows.collect()
        };
        read().map_err(|e| db_error(&self.path, e))
    }

    /// The latest run time of every key of `job` on every host it ran on.
    pub fn host_times(&self, job: &str) -> Result<Vec<Timing>, Error> {
        let read = || -> rusqlite::Result<Vec<Timing>> {
            let mut stmt = self
                .conn
                .prepare("SELECT key, host, seconds FROM host_time WHERE job = ?1")?;
            let rows = stmt.query_map(params![job], |r| {
                Ok(Timing {
                    key: r.get(0)?,
                    host: r.get(1)?,
                    seconds: r.get(2)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| db_error(&self.path, e))
    }

    /// Records what the tasks of one run of `job` took; a key seen before takes the new time.
    pub fn record(&self, job: &str, timings: &[Timing]) -> Result<(), Error> {
        let write = || -> rusqlite::Result<()> {
            let tx = self.conn.unchecked_transaction()?;
            {
                let mut upsert = tx.prepare(
                    "INSERT INTO duration (job, key, seconds, host) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (job, key) DO UPDATE SET
                         seconds = excluded.seconds, host = excluded.host, runs = runs + 1",
                )?;
                // The latest time of each key on each host, for host speeds.
                let mut per_host = tx.prepare(
                    "INSERT INTO host_time (job, key, host, seconds) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (job, key, host) DO UPDATE SET seconds = excluded.seconds",
                )?;
                for t in timings {
                    upsert.execute(params![job, &t.key[..], t.seconds, t.host])?;
                    per_host.execute(params![job, &t.key[..], t.host, t.seconds])?;
                }
            }
            tx.commit()
        };
        write().map_err(|e| db_error(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(key: &str, seconds: f64) -> Timing {
        Timing {
            key: key.as_bytes().to_vec(),
            seconds,
            host: "h1".into(),
        }
    }

    #[test]
    fn a_later_run_replaces_the_time_of_a_key_and_jobs_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join(FILE);
        let history = History::open_at(&path).unwrap();
        history
            .record("sweep", &[timing("a", 1.0), timing("b", 2.0)])
            .unwrap();
        history.record("other", &[timing("a", 9.0)]).unwrap();
        history.record("sweep", &[timing("a", 3.0)]).unwrap();
        drop(history);
        let history = History::open_at(&path).unwrap();
        let sweep = history.durations("sweep").unwrap();
        assert_eq!(sweep.len(), 2);
        assert_eq!(sweep[b"a".as_slice()], 3.0);
        assert_eq!(sweep[b"b".as_slice()], 2.0);
        assert_eq!(history.durations("none").unwrap().len(), 0);
    }

    #[test]
    fn each_host_keeps_its_own_time_of_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open_at(&dir.path().join(FILE)).unwrap();
        let on = |host: &str, seconds| Timing {
            host: host.into(),
            ..timing("a", seconds)
        };
        history.record("sweep", &[on("h1", 1.0)]).unwrap();
        history.record("sweep", &[on("h2", 2.5)]).unwrap();
        history.record("sweep", &[on("h1", 1.5)]).unwrap();
        let mut times = history.host_times("sweep").unwrap();
        times.sort_by(|a, b| a.host.cmp(&b.host));
        assert_eq!(times, vec![on("h1", 1.5), on("h2", 2.5)]);
        assert_eq!(history.durations("sweep").unwrap()[b"a".as_slice()], 1.5);
    }
}
