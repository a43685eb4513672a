//! The run store: one directory per run under `$DTS_STATE_DIR` (default
//! `$XDG_STATE_HOME/dts/runs`, i.e. `~/.local/state/dts/runs`), mode 0700, holding
//! `run.db` (SQLite, WAL), the task output files `out/INDEX.ATTEMPT.{stdout,stderr}`,
//! `coordinator.log` for detached runs, and `lock`, which the live coordinator holds with
//! an open-file-description lock so anyone can tell a running run from one whose
//! coordinator died.
//!
//! The coordinator writes through [`RunWriter`]; `status`, `logs`, `retry` and the control
//! commands read through [`reader`]. SQLite's WAL lets readers look while a run writes;
//! every run has its own database, so concurrent runs never contend.

pub mod history;
pub mod reader;
mod schema;
pub mod spec;
mod writer;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub use schema::COORDINATOR_LOG;
pub use spec::{Faults, RunSpec};
pub use writer::{LeftOut, RunWriter, TaskEnd, attempt_outcome, output_file, task_state};

use crate::error::Error;

/// Where runs live.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// The environment variables that choose the state directory.
#[derive(Debug, Clone, Default)]
pub struct StateEnv {
    pub dts_state_dir: Option<PathBuf>,
    pub xdg_state_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
}

impl StateEnv {
    pub fn from_process() -> StateEnv {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        StateEnv {
            dts_state_dir: var("DTS_STATE_DIR"),
            xdg_state_home: var("XDG_STATE_HOME").filter(|p| p.is_absolute()),
            home: var("HOME"),
        }
    }
}

impl StateDir {
    /// `$DTS_STATE_DIR`, else `$XDG_STATE_HOME/dts/runs`, else `~/.local/state/dts/runs`.
    pub fn locate(env: &StateEnv) -> Result<StateDir, Error> {
        let root = if let Some(dir) = &env.dts_state_dir {
            dir.clone()
        } else if let Some(xdg) = &env.xdg_state_home {
            xdg.join("dts/runs")
        } else if let Some(home) = &env.home {
            home.join(".local/state/dts/runs")
        } else {
            return Err(Error::Usage(
                "cannot find a state directory: set DTS_STATE_DIR or HOME".into(),
            ));
        };
        Ok(StateDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory (0700) if needed, and refuses one another user owns: runs
    /// hold task output and must stay the user's alone.
    pub fn create(&self) -> Result<(), Error> {
        use std::os::unix::fs::MetadataExt;
        let io = |source| Error::ReadFile {
            path: self.root.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(io)?;
        let meta = std::fs::metadata(&self.root).map_err(io)?;
        let owner = meta.uid();
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        if owner != me {
            return Err(Error::Usage(format!(
                "state directory {} belongs to uid {owner}, not to you (uid {me}); set DTS_STATE_DIR to a directory of yours",
                self.root.display()
            )));
        }
        if let Some(warning) = open_mode_warning(&self.root, meta.mode()) {
            eprintln!("dts: warning: {warning}");
        }
        Ok(())
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Every run id, oldest first (ids sort in creation order): each directory named like
    /// a run id, whether or not its store can be read (a damaged run is still a run, to
    /// show and to clean).
    pub fn run_ids(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| is_run_id(name))
            .collect();
        ids.sort();
        ids
    }

    /// Finds a run by its id, a unique prefix or suffix of it, or `last` (the newest: the
    /// largest id, since ids sort in creation order).
    pub fn resolve(&self, query: &str) -> Result<String, Error> {
        let ids = self.run_ids();
        if query == "last" {
            return ids
                .last()
                .cloned()
                .ok_or_else(|| Error::Usage(format!("no runs in {}", self.root.display())));
        }
        if ids.iter().any(|id| id == query) {
            return Ok(query.to_string());
        }
        let matches: Vec<&String> = ids
            .iter()
            .filter(|id| !query.is_empty() && (id.starts_with(query) || id.ends_with(query)))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::Usage(format!(
                "no run matches '{query}' in {}",
                self.root.display()
            ))),
            many => Err(Error::Usage(format!(
                "'{query}' matches {} runs ({}); give more of the id",
                many.len(),
                many.iter()
                    .take(5)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// What to say about a state directory other users can reach (as OpenSSH warns about a
/// key or `~/.ssh` with loose permissions): runs hold task output and control requests.
fn open_mode_warning(root: &Path, mode: u32) -> Option<String> {
    let mode = mode & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "state directory {} has permissions {mode:04o}: other users can read or change your runs; chmod 700 {0}",
            root.display()
        )
    })
}

/// Whether a coordinator holds the run's lock (is alive, on this machine).
///
/// Asks with `F_OFD_GETLK`, which tests the lock without taking it: a probe that took the
/// lock, even for a moment, made a coordinator starting at that moment find its run
/// "still running" and exit 2 (a detached submit under load failed that way).
pub fn coordinator_alive(run_dir: &Path) -> bool {
    let Ok(file) = File::open(run_dir.join(schema::LOCK_FILE)) else {
        return false;
    };
    let mut probe = whole_file_lock(libc::F_RDLCK);
    // SAFETY: fcntl on a valid descriptor we own, with a valid `struct flock`.
    let asked = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut probe) } == 0;
    asked && i32::from(probe.l_type) != libc::F_UNLCK
}

/// Takes the run's lock for the life of the returned file: an open-file-description lock,
/// which belongs to this open file (not the process) and ends when it is closed.
fn lock(run_dir: &Path) -> std::io::Result<Option<File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(run_dir.join(schema::LOCK_FILE))?;
    let request = whole_file_lock(libc::F_WRLCK);
    // SAFETY: fcntl on a valid descriptor we own, with a valid `struct flock`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &request) } == 0 {
        return Ok(Some(file));
    }
    match std::io::Error::last_os_error() {
        e if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(None),
        e => Err(e),
    }
}

/// A lock request of `kind` over the whole file; `l_pid` must be 0 for OFD locks.
fn whole_file_lock(kind: i32) -> libc::flock {
    // SAFETY: `struct flock` is plain data; all-zero is a valid value.
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    request.l_type = kind as libc::c_short;
    request.l_whence = libc::SEEK_SET as libc::c_short;
    request
}

/// A new run id for now (see [`run_id_at`]).
pub fn new_run_id() -> String {
    run_id_at(std::time::SystemTime::now())
}

/// A short run id that sorts in creation order: UTC time to the second, then the fraction
/// of the second in four hex digits (1/65536 s, about 15 µs), e.g. `20261125-061530-8000`
/// half a second past 06:15:30. Two runs made in the same tick cannot share the id: the
/// run directory is created exclusively, and the later one takes the next tick.
pub fn run_id_at(at: std::time::SystemTime) -> String {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let whole = std::time::UNIX_EPOCH + std::time::Duration::from_secs(since.as_secs());
    let stamp = humantime::format_rfc3339_seconds(whole).to_string();
    // 2026-11-25T06:15:30Z -> 20261125-061530
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    let tick = (u64::from(since.subsec_nanos()) << 16) / 1_000_000_000;
    format!("{}-{}-{tick:04x}", &digits[..8], &digits[8..14])
}

/// Whether `name` has the shape of a run id: `YYYYMMDD-HHMMSS-xxxx`.
pub fn is_run_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 20
        && b[8] == b'-'
        && b[15] == b'-'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        && b[16..].iter().all(u8::is_ascii_hexdigit)
}

/// When a run was created, to the second, read from its id (for runs whose store cannot
/// be read).
pub fn id_time(id: &str) -> Option<f64> {
    if !is_run_id(id) {
        return None;
    }
    let stamp = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &id[0..4],
        &id[4..6],
        &id[6..8],
        &id[9..11],
        &id[11..13],
        &id[13..15]
    );
    let at = humantime::parse_rfc3339(&stamp).ok()?;
    Some(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64())
}

/// Seconds since the Unix epoch.
pub fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// This machine's host name, for recording where a coordinator runs.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    if !ok {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(ids: &[&str]) -> (tempfile::TempDir, StateDir) {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir {
            root: tmp.path().to_path_buf(),
        };
        for id in ids {
            std::fs::create_dir(tmp.path().join(id)).unwrap();
            std::fs::write(tmp.path().join(id).join(schema::DB_FILE), "").unwrap();
        }
        (tmp, state)
    }

    #[test]
    fn resolves_ids_prefixes_suffixes_and_last() {
        let (_tmp, state) = dir_with(&[
            "20261125-010000-aaaa",
            "20261125-020000-bbbb",
            "20261126-010000-cccc",
        ]);
        assert_eq!(state.resolve("last").unwrap(), "20261126-010000-cccc");
        assert_eq!(state.resolve("bbbb").unwrap(), "20261125-020000-bbbb");
        assert_eq!(state.resolve("20261126").unwrap(), "20261126-010000-cccc");
        assert!(
            state
                .resolve("20261125")
                .unwrap_err()
                .to_string()
                .contains("matches 2 runs")
        );
        assert!(
            state
                .resolve("zzzz")
                .unwrap_err()
                .to_string()
                .contains("no run matches")
        );
    }

    #[test]
    fn state_dir_open_to_others_gets_a_warning() {
        let root = Path::new("/s");
        assert_eq!(open_mode_warning(root, 0o40700), None);
        let warning = open_mode_warning(root, 0o40777).unwrap();
        assert!(warning.contains("/s has permissions 0777"), "{warning}");
        assert!(warning.ends_with("chmod 700 /s"), "{warning}");
        assert!(open_mode_warning(root, 0o40750).is_some());
    }

    #[test]
    fn locate_follows_the_lookup_order() {
        let env = StateEnv {
            dts_state_dir: Some("/s".into()),
            xdg_state_home: Some("/x".into()),
            home: Some("/h".into()),
        };
        assert_eq!(StateDir::locate(&env).unwrap().root, PathBuf::from("/s"));
        let env = StateEnv {
            dts_state_dir: None,
            ..env
        };
        assert_eq!(
            StateDir::locate(&env).unwrap().root,
            PathBuf::from("/x/dts/runs")
        );
        let env = StateEnv {
            xdg_state_home: None,
            ..env
        };
        assert_eq!(
            StateDir::locate(&env).unwrap().root,
            PathBuf::from("/h/.local/state/dts/runs")
        );
    }

    #[test]
    fn the_lock_tells_a_live_coordinator() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!coordinator_alive(tmp.path()));
        let held = lock(tmp.path()).unwrap().expect("free lock");
        assert!(coordinator_alive(tmp.path()));
        assert!(lock(tmp.path()).unwrap().is_none());
        drop(held);
        assert!(!coordinator_alive(tmp.path()));
    }

    #[test]
    fn probing_a_run_s_lock_never_makes_its_coordinator_fail_to_take_it() {
        // A process another test forks between one lock and its drop shares the lock's open
        // file description until it execs, and refuses the next lock for that while. So the
        // loop runs in a copy of this test binary that runs nothing else.
        const ALONE: &str = "DTS_TEST_LOCK_PROBE_ALONE";
        if std::env::var_os(ALONE).is_none() {
            let name =
                "store::tests::probing_a_run_s_lock_never_makes_its_coordinator_fail_to_take_it";
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--test-threads=1", "--nocapture"])
                .env(ALONE, "1")
                .output()
                .unwrap();
            assert!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        drop(lock(tmp.path()).unwrap());
        let dir = tmp.path().to_path_buf();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let prober = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::black_box(coordinator_alive(&dir));
                }
            })
        };
        let refused = (0..20_000)
            .filter(|_| lock(tmp.path()).unwrap().is_none())
            .count();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        prober.join().unwrap();
        assert_eq!(refused, 0, "a probe took the lock from the coordinator");
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id();
        assert_eq!(a.len(), 20);
        assert!(is_run_id(&a), "{a}");
    }

    #[test]
    fn last_is_the_newest_run_when_two_start_in_the_same_second() {
        use std::time::{Duration, UNIX_EPOCH};
        let second = UNIX_EPOCH + Duration::from_secs(1_795_592_491);
        let ids: Vec<String> = [0, 20_000, 1_000_000, 499_999_999, 500_000_000, 999_999_999]
            .iter()
            .map(|&nanos| run_id_at(second + Duration::from_nanos(nanos)))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "ids sort in creation order");
        assert!(ids.windows(2).all(|w| w[0] != w[1]), "{ids:?}");
        assert_eq!(ids[0], "20261125-074131-0000");
        assert_eq!(ids[4], "20261125-074131-8000");
        assert!(ids[5] < run_id_at(second + Duration::from_secs(1)));
        // The newest of them is `last`, whatever order the directories were made in.
        let (_tmp, state) = dir_with(&[&ids[3], &ids[5], &ids[1]]);
        assert_eq!(state.resolve("last").unwrap(), ids[5]);
        assert_eq!(id_time(&ids[5]), Some(1_795_592_491.0));
    }

    #[test]
    fn run_ids_include_damaged_runs_and_nothing_else() {
        let (tmp, state) = dir_with(&["20261125-010000-aaaa"]);
        // A run directory without a readable store is still a run (to show and clean)...
        std::fs::create_dir(tmp.path().join("20261125-020000-bbbb")).unwrap();
        // ...but other entries of the state directory are not.
        std::fs::create_dir(tmp.path().join("notes")).unwrap();
        std::fs::write(tmp.path().join("20261125-030000-cccc"), "").unwrap();
        assert_eq!(
            state.run_ids(),
            ["20261125-010000-aaaa", "20261125-020000-bbbb"]
        );
    }
}
