//! A real Slurm cluster for tests/slurm.rs: munged, slurmctld and one slurmd per emulated
//! node, all on localhost, with state, sockets and ports of their own (slurm-up.sh beside
//! this file), stopped by their pids when the [`SlurmLab`] drops.
//!
//! Needs root and the Debian packages slurmctld, slurmd, slurm-client and munge (test.sh
//! installs them). Without them the tests fail, as CI runs as root; set
//! `DTS_SKIP_SLURM=1` to skip them on purpose locally.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// One test at a time: they set nodes down and check that squeue is empty.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct SlurmLab {
    pub dir: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl SlurmLab {
    /// A fresh cluster of `nodes` nodes with `cpus` CPUs each, or `None` when
    /// `DTS_SKIP_SLURM=1` and Slurm cannot run here.
    pub fn start(nodes: u32, cpus: u32) -> Option<SlurmLab> {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let missing = !Path::new("/usr/sbin/slurmctld").exists()
            || !Path::new("/usr/sbin/slurmd").exists()
            || !Path::new("/usr/sbin/munged").exists();
        if missing || !super::is_root() {
            let why = "the Slurm tests need root and slurmctld, slurmd, slurm-client, munge (test.sh installs them)";
            if std::env::var("DTS_SKIP_SLURM").as_deref() == Ok("1") {
                eprintln!("skipped (DTS_SKIP_SLURM=1): {why}");
                return None;
            }
            panic!("{why}; set DTS_SKIP_SLURM=1 to skip them locally");
        }
        let dir = tempfile::Builder::new()
            .prefix("dts-slurm-")
            .tempdir()
            .unwrap();
        let base = free_port_run(nodes as u16 + 2);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/slurm-up.sh");
        let lab = SlurmLab { dir, _turn: turn };
        let out = Command::new(script)
            .arg(lab.dir.path())
            .args([base.to_string(), nodes.to_string(), cpus.to_string()])
            .output()
            .expect("slurm-up.sh");
        assert!(
            out.status.success(),
            "slurm-up.sh failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(lab)
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// A Slurm client command talking to this cluster.
    pub fn client(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("SLURM_CONF", self.conf())
            .env_remove("SLURM_JOB_ID");
        command
    }

    /// What a client command prints; panics when it fails.
    pub fn output(&self, program: &str, args: &[&str]) -> String {
        let out = self.client(program).args(args).output().expect(program);
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Jobs squeue lists as pending, running or completing.
    pub fn live_jobs(&self) -> String {
        self.output("squeue", &["-h", "-t", "PD,R,CG,CF,S", "-o", "%i|%T|%N"])
    }

    /// Steps of every job.
    pub fn steps(&self) -> String {
        self.output("squeue", &["-h", "-s", "-o", "%i|%N"])
    }

    /// The dts binary with this cluster's configuration and no Slurm job around it.
    pub fn dts(&self, home: &Path) -> assert_cmd::Command {
        let mut cmd = super::dts(home);
        cmd.env("SLURM_CONF", self.conf())
            .env_remove("SLURM_JOB_ID");
        cmd
    }

    pub fn dts_process(&self, home: &Path) -> Command {
        let mut cmd = super::dts_process(home);
        cmd.env("SLURM_CONF", self.conf())
            .env_remove("SLURM_JOB_ID");
        cmd
    }
}

impl Drop for SlurmLab {
    fn drop(&mut self) {
        let _ = self.client("scancel").args(["--user", "root"]).status();
        let dir = self.dir.path();
        let mut pid_files: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pid"))
            .collect();
        pid_files.sort();
        // Daemons first (slurmd-*, slurmctld), munged last: they authenticate through it.
        pid_files.push(dir.join("munge/munged.pid"));
        for file in pid_files {
            let Some(pid) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            else {
                continue;
            };
            stop(pid);
        }
        kill_lab_leftovers(dir);
    }
}

/// KILLs what the lab's slurmd left behind: a node set DOWN leaves its `slurmstepd`, which
/// ignores TERM and is in no pid file. It clears its own environment, but its working
/// directory stays inside the lab's directory.
fn kill_lab_leftovers(dir: &Path) {
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let in_lab =
            std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir));
        if in_lab && pid != std::process::id() as i32 {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// TERM, up to 10 s for it to go, then KILL.
fn stop(pid: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // SAFETY: as above; signal 0 only checks the pid exists.
    while unsafe { libc::kill(pid, 0) } == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// The first of `count` consecutive free TCP ports on 127.0.0.1.
fn free_port_run(count: u16) -> u16 {
    let seed = std::process::id() as u16
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u16);
    let mut base = 20000 + seed % 30000;
    loop {
        let free = (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
        base = 20000 + (base + count) % 30000;
    }
}
