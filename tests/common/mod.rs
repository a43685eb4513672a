//! Test harness: real `sshd` servers on loopback addresses, started as the current user with
//! generated host and user keys, and a `dts` command isolated from the user's own config.
//!
//! Nothing here is mocked: tests talk to OpenSSH's sshd through the real binary.
#![allow(dead_code)]

pub mod netns;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

/// Where a test runs its tasks: the lab's sshd hosts, or the local machine.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    Ssh,
    Local,
}

/// One sshd "host" of a lab.
pub struct LabHost {
    pub name: String,
    pub address: Ipv4Addr,
    pub port: u16,
    pub config: PathBuf,
    child: Option<Child>,
}

impl LabHost {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }
}

/// A set of sshd servers plus a temp dir with keys, known_hosts and hosts.toml.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub hosts: Vec<LabHost>,
    pub user: String,
}

impl Lab {
    /// Starts `n` sshd servers on 127.0.0.2, 127.0.0.3, ... (free ports).
    pub fn start(n: usize) -> Lab {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (the README's test command does)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        keygen(&dir.path().join("hostkey"));
        keygen(&dir.path().join("userkey"));
        std::fs::copy(
            dir.path().join("userkey.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        // Sessions get HOME in the lab (sshd's SetEnv), so the login shell reads no start-up
        // files of the user running the tests: a `.bashrc` that runs `pyenv init` costs
        // 0.3 s a task, and a fault test killing it mid-way leaves pyenv's lock behind.
        std::fs::create_dir(dir.path().join("home")).unwrap();
        if is_root() {
            // sshd's privilege separation directory.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let mut lab = Lab {
            hosts: Vec::new(),
            user: current_user(),
            dir,
        };
        for i in 0..n {
            let address = Ipv4Addr::new(127, 0, 0, 2 + i as u8);
            lab.hosts
                .push(lab.start_host(format!("h{}", i + 1), address));
        }
        lab.write_known_hosts();
        lab.write_inventory(4);
        lab
    }

    /// Adds a host whose sshd runs inside `ns`, on its address, and rewrites known_hosts
    /// and hosts.toml to include it.
    pub fn add_netns_host(&mut self, name: &str, ns: &netns::Netns) {
        self.add_netns_sshd(name, ns, ns.inner_addr, 2222);
        self.write_inventory(4);
    }

    /// Starts an sshd inside `ns` on `address:port` (the namespace's veth address, or its
    /// own loopback: `127.0.1.N` inside is reachable only from inside) and adds it to
    /// known_hosts.
    pub fn add_netns_sshd(&mut self, name: &str, ns: &netns::Netns, address: Ipv4Addr, port: u16) {
        let config = self.dir.path().join(format!("sshd_{name}.conf"));
        std::fs::write(&config, self.sshd_config(address, port)).unwrap();
        let log = self.dir.path().join(format!("sshd_{name}.log"));
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &ns.name]);
        let mut child = spawn_sshd_with(command, &config, &log);
        let listening = if address == ns.inner_addr {
            wait_listening(address, port, &mut child)
        } else {
            ns.wait_listening(address, port)
        };
        assert!(listening, "sshd {name} in {} did not start", ns.name);
        self.hosts.push(LabHost {
            name: name.to_string(),
            address,
            port,
            config,
            child: Some(child),
        });
        self.write_known_hosts();
    }

    /// Adds an sshd on the next loopback address whose configuration `edit` rewrites (for
    /// sshd options the lab does not set by default).
    pub fn add_host_with(&mut self, name: &str, edit: impl Fn(String) -> String) {
        let address = Ipv4Addr::new(127, 0, 0, 2 + self.hosts.len() as u8);
        let port = free_port(address);
        let config = self.dir.path().join(format!("sshd_{name}.conf"));
        std::fs::write(&config, edit(self.sshd_config(address, port))).unwrap();
        let mut child = spawn_sshd(&config, &self.path(&format!("sshd_{name}.log")));
        assert!(
            wait_listening(address, port, &mut child),
            "sshd {name} did not start; see its log in the lab dir"
        );
        self.hosts.push(LabHost {
            name: name.to_string(),
            address,
            port,
            config,
            child: Some(child),
        });
        self.write_known_hosts();
    }

    fn start_host(&self, name: String, address: Ipv4Addr) -> LabHost {
        for _ in 0..5 {
            let port = free_port(address);
            let config = self.dir.path().join(format!("sshd_{name}.conf"));
            std::fs::write(&config, self.sshd_config(address, port)).unwrap();
            let mut host = LabHost {
                name: name.clone(),
                address,
                port,
                config,
                child: None,
            };
            host.child = Some(spawn_sshd(
                &host.config,
                &self.dir.path().join(format!("sshd_{name}.log")),
            ));
            if wait_listening(address, port, host.child.as_mut().unwrap()) {
                return host;
            }
        }
        panic!("sshd for {name} did not start; see its log in the lab dir");
    }

    pub fn sshd_config(&self, address: Ipv4Addr, port: u16) -> String {
        let d = self.dir.path().display();
        format!(
            "ListenAddress {address}:{port}\nHostKey {d}/hostkey\nAuthorizedKeysFile {d}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\n\
             PidFile none\nPermitRootLogin prohibit-password\nSetEnv HOME={d}/home\n"
        )
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn inventory(&self) -> PathBuf {
        self.path("hosts.toml")
    }

    /// known_hosts with the lab's host key for every host, as `[addr]:port` lines.
    pub fn write_known_hosts(&self) {
        let key = std::fs::read_to_string(self.path("hostkey.pub")).unwrap();
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let lines: String = self
            .hosts
            .iter()
            .map(|h| format!("[{}]:{} {}\n", h.address, h.port, key.join(" ")))
            .collect();
        std::fs::write(self.path("known_hosts"), lines).unwrap();
    }

    /// hosts.toml for every lab host with `slots` each.
    pub fn write_inventory(&self, slots: u32) {
        let mut text = self.defaults(slots);
        for h in &self.hosts {
            text.push_str(&host_entry(&h.name, &h.address.to_string(), h.port));
        }
        std::fs::write(self.inventory(), text).unwrap();
    }

    /// The `[defaults]` section pointing at the lab's user key and known_hosts.
    pub fn defaults(&self, slots: u32) -> String {
        format!(
            "[defaults]\nuser = \"{}\"\nidentity = \"{}\"\nknown_hosts = \"{}\"\nslots = {slots}\nconnect_timeout = \"5s\"\n",
            self.user,
            self.path("userkey").display(),
            self.path("known_hosts").display()
        )
    }

    /// `dts submit -H <the lab's hosts.toml>`, run in the lab dir as its HOME.
    pub fn submit(&self) -> assert_cmd::Command {
        let mut cmd = dts(self.dir.path());
        cmd.args(["submit", "-H"]).arg(self.inventory());
        cmd
    }

    /// `dts submit` over `via`: the lab's hosts, or the local machine with 4 slots.
    pub fn submit_via(&self, via: Via) -> assert_cmd::Command {
        match via {
            Via::Ssh => self.submit(),
            Via::Local => {
                let mut cmd = dts(self.dir.path());
                cmd.args(["submit", "--slots", "4"]);
                cmd
            }
        }
    }

    /// Kills one host's sshd and every process it started (sessions and their tasks), as
    /// a machine that dies does.
    pub fn kill_host(&mut self, i: usize) {
        if let Some(mut child) = self.hosts[i].child.take() {
            let pid = child.id() as i32;
            signal_all(&descendants(pid), libc::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes one host: SIGSTOP to its sshd and every process below it, as a machine that
    /// hangs. Returns the pids to thaw with [`Lab::thaw`].
    pub fn freeze_host(&self, i: usize) -> Vec<i32> {
        let pid = self.hosts[i].pid();
        let mut pids = vec![pid];
        pids.extend(descendants(pid));
        signal_all(&pids, libc::SIGSTOP);
        pids
    }

    pub fn thaw(&self, pids: &[i32]) {
        signal_all(pids, libc::SIGCONT);
    }

    /// Starts a killed host's sshd again on the same address and port.
    pub fn restart_host(&mut self, i: usize) {
        let log = self
            .dir
            .path()
            .join(format!("sshd_{}.log", self.hosts[i].name));
        let host = &mut self.hosts[i];
        let mut child = spawn_sshd(&host.config, &log);
        assert!(
            wait_listening(host.address, host.port, &mut child),
            "sshd {} did not restart",
            host.name
        );
        host.child = Some(child);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for host in &mut self.hosts {
            if let Some(mut child) = host.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Every process below `pid`, children before grandchildren.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut all = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        let out = Command::new("pgrep")
            .args(["-P", &parent.to_string()])
            .output()
            .expect("pgrep (procps)");
        for child in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(child) = child.parse::<i32>() {
                all.push(child);
                frontier.push(child);
            }
        }
    }
    all
}

fn signal_all(pids: &[i32], signal: i32) {
    for &pid in pids {
        // SAFETY: signalling processes this test started.
        unsafe { libc::kill(pid, signal) };
    }
}

pub fn host_entry(name: &str, address: &str, port: u16) -> String {
    format!("\n[[host]]\nname = \"{name}\"\naddress = \"{address}\"\nport = {port}\n")
}

fn spawn_sshd(config: &Path, log: &Path) -> Child {
    spawn_sshd_with(Command::new(SSHD), config, log)
}

/// Starts sshd through `command` (sshd itself, or a launcher such as `ip netns exec NS`
/// that ends by exec'ing it).
fn spawn_sshd_with(mut command: Command, config: &Path, log: &Path) -> Child {
    if command.get_program() != SSHD {
        command.arg(SSHD);
    }
    command
        .arg("-D")
        .arg("-f")
        .arg(config)
        .arg("-E")
        .arg(log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe; it makes sshd die with the test thread.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command.spawn().expect("start sshd")
}

fn wait_listening(address: Ipv4Addr, port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect((address, port)).is_ok() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    false
}

/// A free port on `address`, found by binding port 0.
pub fn free_port(address: Ipv4Addr) -> u16 {
    TcpListener::bind((address, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "dts-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen (openssh-client) is needed");
    assert!(status.success());
}

pub fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The dts binary with an isolated environment: its own HOME and working directory, no
/// inventory from the environment, no ssh-agent.
pub fn dts(home: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("dts").unwrap();
    cmd.current_dir(home)
        .env("HOME", home)
        .env_remove("DTS_HOSTS")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("DTS_LOG")
        .timeout(Duration::from_secs(120));
    cmd
}

/// The same, as a std Command (for tests that signal the process).
pub fn dts_process(home: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("dts"));
    cmd.current_dir(home)
        .env("HOME", home)
        .env_remove("DTS_HOSTS")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("DTS_LOG");
    cmd
}

/// Asserts the process exited 0, showing its stderr when it did not.
pub fn assert_succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `condition` until it holds; fails the test after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes whose command line contains `pattern`.
/// Waits up to `limit` until no process matches `mark` (what `marker` made).
pub fn no_process_left(mark: &str, limit: Duration) {
    wait_until(limit, "task processes to go away", || {
        processes_matching(mark).is_empty()
    });
}

pub fn processes_matching(pattern: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-af", pattern])
        .output()
        .expect("pgrep (procps)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A marker unique to one test, to find its task processes with pgrep.
pub fn marker(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("dtsmark-{test}-{}-{nanos}", std::process::id())
}

/// Parses `[host index] line` output into (host, index, line).
pub fn tagged_lines(stdout: &[u8]) -> Vec<(String, u64, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let (tag, rest) = l
                .strip_prefix('[')
                .and_then(|l| l.split_once("] "))
                .unwrap_or_else(|| panic!("untagged line {l:?}"));
            let (host, index) = tag.rsplit_once(' ').unwrap();
            (host.to_string(), index.parse().unwrap(), rest.to_string())
        })
        .collect()
}
