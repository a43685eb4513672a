//! Connections at scale: big inventories, low open-file limits and huge slot counts. dts
//! must connect lazily and in bounded numbers, treat running out of descriptors as its own
//! limit, and fold what thousands of hosts report into a few lines. Real sshd where a host
//! must answer; loopback addresses that refuse or never answer where it must not.

mod common;

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

/// An inventory of `count` hosts `u1`, `u2`, ... on 127.0.1.1, 127.0.1.2, ... port `port`.
fn big_inventory(home: &Path, count: usize, port: u16) -> std::path::PathBuf {
    assert_eq!(count % 250, 0);
    let path = home.join("hosts.toml");
    std::fs::write(
        &path,
        format!(
            "[defaults]\nuser = \"nobody\"\nslots = 2\nconnect_timeout = \"1s\"\n\n\
             [[host]]\nname = \"u[1-{count}]\"\naddress = \"127.0.[1-{}].[1-250]\"\nport = {port}\n",
            count / 250
        ),
    )
    .unwrap();
    path
}

/// Starts `dts submit` with stderr going to `home/stderr`.
fn spawn_submit(home: &Path, inventory: &Path, args: &[&str]) -> Child {
    dts_process(home)
        .args(["submit", "-H"])
        .arg(inventory)
        .args(args)
        .stdout(Stdio::null())
        .stderr(File::create(home.join("stderr")).unwrap())
        .spawn()
        .unwrap()
}

/// `Threads:` of a live process, from /proc.
fn threads(pid: u32) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Open file descriptors of a live process, from /proc.
fn fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The most threads and descriptors `pid` has over three seconds, once connection
/// attempts are under way.
fn watch(pid: u32) -> (usize, usize) {
    wait_until(Duration::from_secs(30), "connection threads", || {
        threads(pid).is_some_and(|n| n > 10)
    });
    let (mut most_threads, mut most_fds) = (0, 0);
    for _ in 0..150 {
        most_threads = most_threads.max(threads(pid).unwrap_or(0));
        most_fds = most_fds.max(fds(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    (most_threads, most_fds)
}

/// A listener every 127.x address reaches that never accepts: connections hang in the
/// handshake until the connect timeout, as hosts that do not answer do.
fn silent_listener() -> TcpListener {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap()
}

#[test]
fn big_inventories_exhaust_neither_threads_nor_file_descriptors() {
    let home = tempfile::tempdir().unwrap();
    let silent = silent_listener();
    let port = silent.local_addr().unwrap().port();
    let inventory = big_inventory(home.path(), 2000, port);
    let mut dts = spawn_submit(home.path(), &inventory, &["--array", "1-100", "--", "true"]);
    let pid = dts.id();
    let (most_threads, most_fds) = watch(pid);
    // SAFETY: interrupting the dts this test started.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let status = dts.wait().unwrap();
    let stderr = std::fs::read_to_string(home.path().join("stderr")).unwrap();
    // One thread per host up front made 2,000 threads and 4,000 descriptors here.
    assert!(most_threads <= 48, "{most_threads} threads\n{stderr}");
    assert!(most_fds <= 160, "{most_fds} descriptors\n{stderr}");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("u[1-"), "no folded host notes:\n{stderr}");
}

#[test]
fn dts_hosts_on_a_big_inventory_probes_with_bounded_threads() {
    let home = tempfile::tempdir().unwrap();
    let silent = silent_listener();
    let inventory = big_inventory(home.path(), 2000, silent.local_addr().unwrap().port());
    let mut dts = dts_process(home.path())
        .args(["hosts", "-H"])
        .arg(&inventory)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (most_threads, most_fds) = watch(dts.id());
    dts.kill().unwrap();
    dts.wait().unwrap();
    // A thread per host made 2,000 threads here.
    assert!(most_threads <= 48, "{most_threads} threads");
    assert!(most_fds <= 160, "{most_fds} descriptors");
}

#[test]
fn thousands_of_unreachable_hosts_print_a_few_folded_lines() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port(Ipv4Addr::LOCALHOST);
    let inventory = big_inventory(home.path(), 2000, port);
    let dts = spawn_submit(home.path(), &inventory, &["--array", "1-10", "--", "true"]);
    let out = dts.wait_with_output().unwrap();
    let stderr = std::fs::read_to_string(home.path().join("stderr")).unwrap();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    // It was 2,000 "retrying" lines and a 140 KB error line.
    assert!(stderr.lines().count() <= 20, "{stderr}");
    assert!(stderr.lines().all(|l| l.len() < 400), "{stderr}");
    let cause = format!("connect to port {port}: Connection refused");
    // Failures that trickle in across the fold window (a loaded machine) may take a few
    // notes, each a nodeset; the final lines below are always whole.
    let notes = stderr
        .lines()
        .filter(|l| l.starts_with("dts: u[") && l.contains(&cause))
        .count();
    assert!((1..=5).contains(&notes), "{stderr}");
    assert!(
        stderr.contains(&format!("left out: u[1-2000]: {cause}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("no host reachable: u[1-2000]: {cause}")),
        "{stderr}"
    );
}

/// The lab's four sshd servers, each listed ten times (`h1x[1-10]` ... `h4x[1-10]`):
/// forty inventory hosts, more than the open-file limit below holds connections for.
fn inventory_of_forty(lab: &Lab) -> std::path::PathBuf {
    let mut text = lab.defaults(4);
    for h in &lab.hosts {
        text.push_str(&host_entry(
            &format!("{}x[1-10]", h.name),
            &h.address.to_string(),
            h.port,
        ));
    }
    let path = lab.path("forty.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_low_open_file_limit_leaves_no_host_misreported_as_refused() {
    let lab = Lab::start(4);
    let inventory = inventory_of_forty(&lab);
    let mut command = dts_process(lab.dir.path());
    command
        .args(["submit", "-H"])
        .arg(&inventory)
        .args(["--array", "1-40", "--", "echo {}"]);
    // SAFETY: setrlimit is async-signal-safe; soft and hard limit both, so dts cannot
    // raise it.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let mut items: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    items.sort_unstable();
    assert_eq!(items, (1..=40).collect::<Vec<u64>>(), "{stderr}");
    // With one thread and three descriptors per host, half of such an inventory was left
    // out as refused keys and unreadable known_hosts.
    for wrong in ["authentication", "known_hosts", "Too many open files"] {
        assert!(!stderr.contains(wrong), "{wrong}:\n{stderr}");
    }
    assert!(
        stderr.contains("the open-file limit (ulimit -n 64) lets dts hold"),
        "{stderr}"
    );
    // The hosts it had no descriptors for say so, folded, and nothing else.
    let limited = ": not connected: the open-file limit (ulimit -n 64) was reached";
    let left_out: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("left out:"))
        .collect();
    assert!(left_out.len() <= 1, "{stderr}");
    assert!(left_out.iter().all(|l| l.ends_with(limited)), "{stderr}");
}

/// Sessions sshd accepted, from every lab host's log.
fn sessions_accepted(lab: &Lab) -> usize {
    lab.hosts
        .iter()
        .map(|h| {
            std::fs::read_to_string(lab.path(&format!("sshd_{}.log", h.name)))
                .unwrap_or_default()
                .matches("Accepted publickey")
                .count()
        })
        .sum()
}

#[test]
fn huge_slot_counts_open_only_the_connections_the_tasks_need() {
    let lab = Lab::start(2);
    for slots in ["10000", "100000"] {
        let before = sessions_accepted(&lab);
        let out = lab
            .submit()
            .args(["--slots", slots, "--array", "1-3", "--", "true"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "--slots {slots}: {stderr}");
        // 10,000 slots opened 1,250 connections per host for three tasks (440 s);
        // 100,000 ran out of descriptors. Three tasks need one connection per host.
        wait_until(Duration::from_secs(10), "sshd to log the sessions", || {
            sessions_accepted(&lab) >= before + 2
        });
        assert_eq!(sessions_accepted(&lab) - before, 2, "--slots {slots}");
    }
}

#[test]
fn local_tasks_keep_the_open_file_limit_dts_started_with() {
    let home = tempfile::tempdir().unwrap();
    let inventory = home.path().join("hosts.toml");
    std::fs::write(
        &inventory,
        "[[host]]\nname = \"localhost\"\ntransport = \"local\"\nslots = 1\n",
    )
    .unwrap();
    let mut command = dts_process(home.path());
    command
        .args(["submit", "-q", "--output", "raw", "-H"])
        .arg(&inventory)
        .args(["--array", "1", "--", "ulimit -Sn"]);
    // SAFETY: setrlimit is async-signal-safe. A soft limit under the hard one, which dts
    // raises for itself.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "256",
        "{stderr}"
    );
}

#[test]
fn few_tasks_on_a_big_inventory_connect_no_more_hosts_than_they_need() {
    let lab = Lab::start(4);
    let inventory = inventory_of_forty(&lab);
    let out = dts(lab.dir.path())
        .args(["submit", "-H"])
        .arg(&inventory)
        .args(["--array", "1-3", "--", "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Every host was connected up front, however few the tasks: forty sessions for three.
    wait_until(Duration::from_secs(10), "sshd to log the sessions", || {
        sessions_accepted(&lab) > 0
    });
    let sessions = sessions_accepted(&lab);
    assert!(sessions <= 32, "{sessions} sessions\n{stderr}");
    assert!(
        stderr.contains(": not connected: the hosts up could hold every task"),
        "{stderr}"
    );
}
