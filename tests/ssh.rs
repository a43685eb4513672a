//! End-to-end runs of the real binary against real sshd servers on loopback.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use predicates::str::contains;

#[test]
fn every_item_runs_exactly_once_across_four_hosts() {
    let lab = Lab::start(4);
    let out = lab
        .submit()
        .args(["--array", "1-300", "--", "echo item-{} on $DTS_HOST"])
        .assert()
        .success()
        .get_output()
        .clone();
    let lines = tagged_lines(&out.stdout);
    assert_eq!(lines.len(), 300);
    let mut seen = BTreeMap::new();
    for (host, index, line) in &lines {
        assert_eq!(line, &format!("item-{index} on {host}"));
        *seen.entry(*index).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|&n| n == 1));
    let hosts: std::collections::BTreeSet<_> = lines.iter().map(|(h, _, _)| h.clone()).collect();
    assert!(hosts.len() >= 2, "work spread over {hosts:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("300 tasks: 300 succeeded, 0 failed"),
        "{stderr}"
    );
}

#[test]
fn a_failing_task_makes_exit_code_one() {
    let lab = Lab::start(1);
    lab.submit()
        .args(["--array", "0-3", "--", "exit $(( {} % 2 ))"])
        .assert()
        .code(1)
        .stderr(contains("4 tasks: 2 succeeded, 2 failed"))
        .stderr(contains("│ 1,3          ┆     2 ┆ exit 1 │"));
}

#[test]
fn death_by_signal_is_reported_as_the_signal() {
    let lab = Lab::start(1);
    lab.submit()
        .args(["--array", "1", "--", ": {}; kill -TERM $$"])
        .assert()
        .code(1)
        .stderr(contains("┆     1 ┆ signal TERM"));
    lab.submit()
        .args(["--array", "1", "--", ": {}; kill -KILL $$"])
        .assert()
        .code(1)
        .stderr(contains("┆     1 ┆ signal KILL"));
}

/// Regression (issue 12, item 5): exit codes above 128 were reported as signals (`exit
/// 137` as `signal KILL`). The status is what the task's shell did: `sh -c` whose child was
/// killed exits 143, as a code, and so does `exit 143`.
#[test]
fn exit_codes_above_128_are_reported_as_codes() {
    let lab = Lab::start(1);
    for (command, cause) in [
        // `: {}` keeps the item from being appended to the command.
        (": {}; exit 137", "exit 137"),
        (": {}; sh -c 'kill -TERM $$'", "exit 143"),
        (": {}; python3 -c 'import sys; sys.exit(143)'", "exit 143"),
    ] {
        lab.submit()
            .args(["--array", "1", "--joblog", "jl", "--", command])
            .assert()
            .code(1)
            .stderr(contains(format!("┆     1 ┆ {cause}")));
        let joblog = std::fs::read_to_string(lab.path("jl")).unwrap();
        let fields: Vec<&str> = joblog.lines().last().unwrap().split('\t').collect();
        assert_eq!(
            (fields[6], fields[7]),
            (&cause[5..], "0"),
            "{command}: {joblog}"
        );
    }
}

#[test]
fn injection_shaped_items_are_passed_as_text() {
    let lab = Lab::start(2);
    let pwned = lab.path("pwned");
    let p = pwned.display();
    let items = [
        format!("$(touch {p})"),
        format!("`touch {p}`"),
        format!("'; touch {p}; '"),
        format!("\"; touch {p}; \""),
        format!("a b  c | touch {p} & touch {p}"),
        "tab\there".to_string(),
        "unicode ünïcødé ✓".to_string(),
        "back\\slash $HOME ${HOME} * ?".to_string(),
    ];
    std::fs::write(lab.path("items.txt"), items.join("\n") + "\n").unwrap();
    // Argv mode (several words) and shell-line mode (one word) both quote the item.
    for command in [vec!["printf", "%s\\n", "{}"], vec!["printf '%s\\n' {}"]] {
        let out = lab
            .submit()
            .args(["--items", "items.txt", "--"])
            .args(&command)
            .assert()
            .success()
            .get_output()
            .clone();
        let lines = tagged_lines(&out.stdout);
        assert_eq!(lines.len(), items.len());
        for (_, index, line) in lines {
            // Items are numbered from 1, as their lines are.
            assert_eq!(line, items[index as usize - 1], "{command:?}");
        }
    }
    assert!(!pwned.exists(), "an item was executed");
}

#[test]
fn a_changed_host_key_is_refused_with_its_fingerprint() {
    let lab = Lab::start(2);
    keygen(&lab.path("otherkey"));
    let other = std::fs::read_to_string(lab.path("otherkey.pub")).unwrap();
    let other: Vec<&str> = other.split_whitespace().take(2).collect();
    let good = std::fs::read_to_string(lab.path("hostkey.pub")).unwrap();
    let good: Vec<&str> = good.split_whitespace().take(2).collect();
    let (h1, h2) = (&lab.hosts[0], &lab.hosts[1]);
    std::fs::write(
        lab.path("known_hosts"),
        format!(
            "[{}]:{} {}\n[{}]:{} {}\n",
            h1.address,
            h1.port,
            other.join(" "),
            h2.address,
            h2.port,
            good.join(" ")
        ),
    )
    .unwrap();
    let out = lab
        .submit()
        .args(["--array", "1-20", "--", "echo {}"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("h1: HOST KEY CHANGED"), "{stderr}");
    assert!(stderr.contains("SHA256:"), "{stderr}");
    assert!(
        tagged_lines(&out.stdout)
            .iter()
            .all(|(host, _, _)| host == "h2")
    );
}

#[test]
fn an_unknown_host_key_is_refused_unless_accept_new() {
    let lab = Lab::start(1);
    std::fs::write(lab.path("known_hosts"), "").unwrap();
    lab.submit()
        .args(["--array", "1", "--", "true"])
        .assert()
        .code(3)
        .stderr(contains("unknown host key"))
        .stderr(contains("SHA256:"))
        // Regression (issue 13, item 12): the hint named ~/.ssh/known_hosts whatever file
        // was configured.
        .stderr(contains(format!(
            ">> {}`",
            lab.path("known_hosts").display()
        )));
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let text = text.replace(
        "[defaults]\n",
        "[defaults]\nhost_key_policy = \"accept-new\"\n",
    );
    std::fs::write(lab.inventory(), text).unwrap();
    lab.submit()
        .args(["--array", "1-3", "--", "true"])
        .assert()
        .success();
    let known = std::fs::read_to_string(lab.path("known_hosts")).unwrap();
    assert_eq!(known.lines().count(), 1, "{known}");
    assert!(known.starts_with(&format!(
        "[{}]:{} ssh-ed25519 ",
        lab.hosts[0].address, lab.hosts[0].port
    )));
}

#[test]
fn an_unreachable_host_is_named_while_the_others_finish() {
    let lab = Lab::start(2);
    let dead_port = free_port(std::net::Ipv4Addr::new(127, 0, 0, 1));
    let mut text = std::fs::read_to_string(lab.inventory()).unwrap();
    text.push_str(&host_entry("deadhost", "127.0.0.1", dead_port));
    std::fs::write(lab.inventory(), text).unwrap();
    let out = lab
        .submit()
        .args(["--array", "1-40", "--", "echo {}"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("deadhost: connect to 127.0.0.1:"),
        "{stderr}"
    );
    assert_eq!(tagged_lines(&out.stdout).len(), 40);
}

#[test]
fn no_reachable_host_exits_three() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port(std::net::Ipv4Addr::new(127, 0, 0, 1));
    let inventory = home.path().join("hosts.toml");
    std::fs::write(
        &inventory,
        format!(
            "[defaults]\nuser = \"nobody\"\nslots = 2\n{}",
            host_entry("gone", "127.0.0.1", port)
        ),
    )
    .unwrap();
    dts(home.path())
        .args(["submit", "--array", "1-5", "--", "true"])
        .assert()
        .code(3)
        .stderr(contains("no host reachable: gone: connect to 127.0.0.1:"));
}

#[test]
fn a_wrong_user_key_is_refused() {
    let lab = Lab::start(1);
    keygen(&lab.path("strangerkey"));
    let text = std::fs::read_to_string(lab.inventory())
        .unwrap()
        .replace("/userkey\"", "/strangerkey\"");
    std::fs::write(lab.inventory(), text).unwrap();
    lab.submit()
        .args(["--array", "1", "--", "true"])
        .assert()
        .code(3)
        .stderr(contains("authentication as"))
        .stderr(contains("refused"));
}

#[test]
fn a_killed_dts_leaves_no_task_process_behind() {
    let lab = Lab::start(2);
    let mark = marker("killed");
    let started = lab.path("started");
    std::fs::create_dir(&started).unwrap();
    let command = format!("touch {}/{{}}; sleep 300; : {mark}", started.display());
    let mut child = dts_process(lab.dir.path())
        .args(["submit", "-H"])
        .arg(lab.inventory())
        .args(["--array", "1-8", "--", &command])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "all 8 tasks to start", || {
        std::fs::read_dir(&started).unwrap().count() == 8
    });
    assert!(!processes_matching(&mark).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    no_process_left(&mark, Duration::from_secs(20));
}

#[test]
fn a_timed_out_task_is_killed_and_reported() {
    let lab = Lab::start(1);
    let mark = marker("timeout");
    lab.submit()
        .args([
            "--timeout",
            "1s",
            "--kill-grace",
            "1s",
            "--array",
            "1",
            "--",
        ])
        .arg(format!("sleep 30; : {mark}"))
        .assert()
        .code(1)
        .stderr(contains("task 1 timed out after 1s on h1"))
        .stderr(contains("┆     1 ┆ timed out"));
    no_process_left(&mark, Duration::from_secs(10));
}

#[test]
fn dts_hosts_probes_every_host() {
    let lab = Lab::start(2);
    let out = dts(lab.dir.path())
        .args(["hosts", "--json", "-H"])
        .arg(lab.inventory())
        .assert()
        .success()
        .get_output()
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts = json["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    for h in hosts {
        assert_eq!(h["status"], "ok");
        assert!(h["cores"].as_u64().unwrap() >= 1);
        assert!(h["load1"].as_f64().is_some());
        assert_eq!(h["slots"], 4);
    }
    dts(lab.dir.path())
        .args(["hosts", "-H"])
        .arg(lab.inventory())
        .assert()
        .success()
        .stdout(contains("h1"))
        .stdout(contains("latency ms"));
}

/// Regression (issue 12, item 13): with two identities in ssh-agent, the right one second,
/// every host refused: only the agent's first identity was offered. Each is tried, and a
/// refusal names the fingerprints tried.
#[test]
fn every_identity_in_ssh_agent_is_offered() {
    let lab = Lab::start(1);
    drop_identity(&lab);
    keygen(&lab.path("strangerkey"));
    let agent = Agent::start(&lab);
    agent.add(&lab.path("strangerkey"));
    agent
        .submit(&lab, &["--array", "1", "--", "true"])
        .code(3)
        .stderr(contains("tried: ssh-agent SHA256:"));
    agent.add(&lab.path("userkey"));
    agent
        .submit(&lab, &["--array", "1-3", "--", "true"])
        .success();
}

#[test]
fn authenticates_with_ssh_agent_and_default_key_files() {
    let lab = Lab::start(1);
    drop_identity(&lab);
    // No identity configured, no agent, no ~/.ssh keys: refused.
    lab.submit()
        .args(["--array", "1", "--", "true"])
        .assert()
        .code(3)
        .stderr(contains("tried: nothing"));
    // ssh-agent holding the key.
    let agent = Agent::start(&lab);
    agent.add(&lab.path("userkey"));
    agent
        .submit(&lab, &["--array", "1-3", "--", "true"])
        .success();
    // ~/.ssh/id_ed25519 without an agent.
    std::fs::create_dir_all(lab.path(".ssh")).unwrap();
    std::fs::copy(lab.path("userkey"), lab.path(".ssh/id_ed25519")).unwrap();
    lab.submit()
        .args(["--array", "1-3", "--", "true"])
        .assert()
        .success();
}

/// Takes the `identity` line out of the lab's inventory: keys come from the agent or
/// `~/.ssh`.
fn drop_identity(lab: &Lab) {
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let without_identity: String = text
        .lines()
        .filter(|l| !l.starts_with("identity"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(lab.inventory(), without_identity).unwrap();
}

/// An ssh-agent of the test's own, on a socket in the lab dir; killed on drop.
struct Agent {
    socket: std::path::PathBuf,
    _process: KillOnDrop,
}

impl Agent {
    fn start(lab: &Lab) -> Agent {
        let socket = lab.path("agent.sock");
        let process = std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent");
        let agent = Agent {
            socket,
            _process: KillOnDrop(process),
        };
        wait_until(Duration::from_secs(10), "ssh-agent socket", || {
            agent.socket.exists()
        });
        agent
    }

    fn add(&self, key: &std::path::Path) {
        let added = std::process::Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(added.success());
    }

    /// `dts submit` on the lab's hosts with this agent.
    fn submit(&self, lab: &Lab, args: &[&str]) -> assert_cmd::assert::Assert {
        dts(lab.dir.path())
            .env("SSH_AUTH_SOCK", &self.socket)
            .args(["submit", "-H"])
            .arg(lab.inventory())
            .args(args)
            .assert()
    }
}

#[test]
fn ctrl_c_kills_running_tasks_and_exits_130() {
    let lab = Lab::start(2);
    let mark = marker("sigint");
    let started = lab.path("started");
    std::fs::create_dir(&started).unwrap();
    let child = dts_process(lab.dir.path())
        .args(["submit", "--kill-grace", "1s", "-H"])
        .arg(lab.inventory())
        .args(["--array", "1-8", "--"])
        .arg(format!(
            "touch {}/{{}}; sleep 300; : {mark}",
            started.display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "all 8 tasks to start", || {
        std::fs::read_dir(&started).unwrap().count() == 8
    });
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("interrupted — 8 tasks: 0 succeeded, 0 failed, 8 not run"),
        "{stderr}"
    );
    no_process_left(&mark, Duration::from_secs(10));
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dry_run_probes_and_prints_the_plan_without_running_anything() {
    let lab = Lab::start(2);
    let dry_run = || -> serde_json::Value {
        let out = lab
            .submit()
            .args([
                "--dry-run",
                "--json",
                "--algo",
                "consistent-hash",
                "--array",
                "1-40",
                "--",
            ])
            .arg(format!("touch {}/ran.{{}}", lab.dir.path().display()))
            .assert()
            .success()
            .get_output()
            .clone();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let plan = dry_run();
    let entries = plan["plan"].as_array().unwrap();
    assert_eq!(entries.len(), 40);
    assert!(
        entries
            .iter()
            .all(|e| e["host"] == "h1" || e["host"] == "h2")
    );
    assert_eq!(entries[0]["index"], 1);
    assert_eq!(entries[0]["key"], "1");
    let per_host: u64 = plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["tasks"].as_u64().unwrap())
        .sum();
    assert_eq!(per_host, 40);
    // Probed: slots come from the inventory (4), and nothing ran.
    assert_eq!(plan["hosts"][0]["slots"], 4);
    assert!(
        !std::fs::read_dir(lab.dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("ran."))
    );
    // Same keys, same hosts: the same plan again.
    let again = dry_run();
    assert_eq!(plan["plan"], again["plan"]);
}

/// Regression: a warm worker's record could wait in libssh2 for the pool's 1 s poll
/// timeout (about once in 1 000 tasks; `bench/rerun.sh` saw a `sleep 1` task take 1.9 s).
/// A read on one channel that would block takes in every packet on the socket, so output
/// for a channel already read that turn sat in libssh2 while the pool polled an empty
/// socket. The pool now asks `holds_unread` of its channels before it polls; this checks,
/// on a real session, that it sees output another channel's read took in.
#[test]
fn output_that_another_channel_s_read_took_in_is_seen_before_polling() {
    use std::io::{ErrorKind, Read, Write};

    use dts::transport::ssh::holds_unread;

    let lab = Lab::start(1);
    let host = &lab.hosts[0];
    let tcp = std::net::TcpStream::connect((host.address, host.port)).unwrap();
    let mut session = ssh2::Session::new().unwrap();
    session.set_tcp_stream(tcp);
    session.handshake().unwrap();
    session
        .userauth_pubkey_file(&lab.user, None, &lab.path("userkey"), None)
        .unwrap();
    let mut speaker = session.channel_session().unwrap();
    speaker.exec("read go; echo said; read never").unwrap();
    let mut other = session.channel_session().unwrap();
    other.exec("read never").unwrap();
    assert!(!holds_unread(&speaker), "nothing was said yet");
    speaker.write_all(b"go\n").unwrap();
    session.set_blocking(false);
    // Only `other` is read: what the socket brings for `speaker` stays in libssh2.
    let mut buf = [0u8; 64];
    wait_until(
        Duration::from_secs(10),
        "speaker's output to come in",
        || {
            match other.read(&mut buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                read => panic!("the other channel printed or ended: {read:?}"),
            }
            holds_unread(&speaker)
        },
    );
    let said = speaker.read(&mut buf).expect("taken in, so no wait");
    assert_eq!(&buf[..said], b"said\n");
    assert!(!holds_unread(&speaker), "all of it was read");
}
