//! Hosts behind a login node and certificate logins, end to end against real sshd servers.
//!
//! The cluster: target sshds inside a network namespace, listening on the namespace's own
//! loopback (127.0.1.N), so that only the bastion sshd, which also listens on the
//! namespace's veth address, can reach them. Needs root (CI runs as root).

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use common::netns::Netns;
use common::*;
use predicates::str::contains;

/// The lab's sshds and the namespace they live in; the lab (its sshds) goes first.
struct Cluster {
    lab: Lab,
    ns: Netns,
}

impl Cluster {
    /// A bastion on the namespace's veth address, port 2222, and `nodes` targets on
    /// `127.0.1.N:230N` inside it.
    fn start(nodes: u8) -> Cluster {
        let ns = Netns::create();
        let mut lab = Lab::start(0);
        lab.add_netns_sshd("bastion", &ns, ns.inner_addr, 2222);
        for i in 1..=nodes {
            lab.add_netns_sshd(&format!("node{i}"), &ns, node_addr(i), node_port(i));
        }
        for i in 1..=nodes {
            assert!(
                TcpStream::connect((node_addr(i), node_port(i))).is_err(),
                "node{i} must be reachable only through the bastion"
            );
        }
        Cluster { lab, ns }
    }

    fn bastion(&self) -> String {
        format!("{}@{}:2222", self.lab.user, self.ns.inner_addr)
    }

    /// The OpenSSH settings every host of the lab needs: user, key, known_hosts.
    fn account(&self) -> String {
        format!(
            "  User {}\n  IdentityFile {}\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
            self.lab.user,
            self.lab.path("userkey").display(),
            self.lab.path("known_hosts").display()
        )
    }

    /// `Host bastion`, `nodeN` through ProxyJump and `pnodeN` through a ProxyCommand
    /// running `ssh -W` on the bastion with this same file.
    fn write_ssh_config(&self, nodes: u8) -> std::path::PathBuf {
        let path = self.lab.path("ssh_config");
        let mut text = String::new();
        for i in 1..=nodes {
            text.push_str(&format!(
                "Host node{i}\n  HostName {}\n  Port {}\n  ProxyJump bastion\n",
                node_addr(i),
                node_port(i)
            ));
            text.push_str(&format!(
                "Host pnode{i}\n  HostName {}\n  Port {}\n  ProxyCommand ssh -F {} -W %h:%p bastion\n",
                node_addr(i),
                node_port(i),
                path.display()
            ));
        }
        text.push_str(&format!(
            "Host bastion\n  HostName {}\n  Port 2222\n",
            self.ns.inner_addr
        ));
        text.push_str(&format!("Host *\n{}  LogLevel ERROR\n", self.account()));
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn node_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, i)
}

fn node_port(i: u8) -> u16 {
    2300 + u16::from(i)
}

/// Runs `--array 1-N` printing where each task ran; returns the hosts, checking that every
/// task ran once on the host it says.
fn run_array(mut cmd: assert_cmd::Command, tasks: u64) -> BTreeSet<String> {
    let out = cmd
        .args(["--array", &format!("1-{tasks}"), "--"])
        .arg("echo task {} on $DTS_HOST")
        .assert()
        .success()
        .get_output()
        .clone();
    let lines = tagged_lines(&out.stdout);
    assert_eq!(lines.len() as u64, tasks, "{lines:?}");
    for (host, index, line) in &lines {
        assert_eq!(line, &format!("task {index} on {host}"));
    }
    lines.into_iter().map(|(host, _, _)| host).collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn hosts_named_by_alias_are_reached_through_proxy_jump_from_an_ssh_config() {
    let cluster = Cluster::start(2);
    let config = cluster.write_ssh_config(2);
    let mut submit = dts(cluster.lab.dir.path());
    submit
        .args(["submit", "-F"])
        .arg(&config)
        .args(["-w", "2/node1,2/node2"]);
    assert_eq!(run_array(submit, 8), names(&["node1", "node2"]));

    let out = dts(cluster.lab.dir.path())
        .args(["hosts", "--json", "-F"])
        .arg(&config)
        .args(["-w", "node1,node2"])
        .assert()
        .success()
        .get_output()
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bastion = cluster.bastion();
    for (i, row) in doc["hosts"].as_array().unwrap().iter().enumerate() {
        let n = i as u8 + 1;
        assert_eq!(row["status"], "ok", "{row}");
        assert_eq!(
            row["address"].as_str().unwrap(),
            format!("{}:{} via {bastion}", node_addr(n), node_port(n))
        );
    }
}

#[test]
fn a_jump_key_and_a_chain_of_two_hops_from_hosts_toml() {
    let cluster = Cluster::start(2);
    let lab = &cluster.lab;
    let user = &lab.user;
    // node2 goes through the bastion, then through node1 as a second hop.
    let inventory = format!(
        "{}jump = \"{}\"\n{}{}jump = \"{},{user}@{}:{}\"\n",
        lab.defaults(2),
        cluster.bastion(),
        host_entry("node1", &node_addr(1).to_string(), node_port(1)),
        host_entry("node2", &node_addr(2).to_string(), node_port(2)),
        cluster.bastion(),
        node_addr(1),
        node_port(1)
    );
    let path = lab.path("jump_hosts.toml");
    std::fs::write(&path, inventory).unwrap();
    let mut submit = dts(lab.dir.path());
    submit.args(["submit", "-H"]).arg(&path);
    assert_eq!(run_array(submit, 8), names(&["node1", "node2"]));
}

#[test]
fn a_proxy_command_from_an_ssh_config_carries_the_connection() {
    let cluster = Cluster::start(1);
    let config = cluster.write_ssh_config(1);
    let mut submit = dts(cluster.lab.dir.path());
    submit
        .args(["submit", "-F"])
        .arg(&config)
        .args(["-w", "2/pnode1"]);
    assert_eq!(run_array(submit, 4), names(&["pnode1"]));
    assert!(
        processes_matching(&format!("-W {}:{}", node_addr(1), node_port(1))).is_empty(),
        "the ProxyCommand outlived its connection"
    );
}

#[test]
fn a_wrong_host_key_on_the_bastion_is_refused() {
    let cluster = Cluster::start(1);
    let lab = &cluster.lab;
    // The bastion's known_hosts line now holds some other key; the node's stays right.
    keygen(&lab.path("otherkey"));
    let other = std::fs::read_to_string(lab.path("otherkey.pub")).unwrap();
    let other: Vec<&str> = other.split_whitespace().take(2).collect();
    let known = std::fs::read_to_string(lab.path("known_hosts")).unwrap();
    let bastion_token = format!("[{}]:2222 ", cluster.ns.inner_addr);
    let rewritten: String = known
        .lines()
        .map(|line| match line.starts_with(&bastion_token) {
            true => format!("{bastion_token}{}\n", other.join(" ")),
            false => format!("{line}\n"),
        })
        .collect();
    std::fs::write(lab.path("known_hosts"), rewritten).unwrap();
    let config = cluster.write_ssh_config(1);
    let out = dts(lab.dir.path())
        .args(["submit", "-F"])
        .arg(&config)
        .args(["-w", "node1", "--array", "1", "--", "true"])
        .assert()
        .code(3)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("jump host {}", cluster.bastion()))
            && stderr.contains("HOST KEY CHANGED")
            && stderr.contains("SHA256:"),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_through_a_jump_and_a_proxy_command_leaves_nothing_behind() {
    let cluster = Cluster::start(2);
    let config = cluster.write_ssh_config(2);
    let lab = &cluster.lab;
    let mark = marker("jumpint");
    let started = lab.path("started");
    std::fs::create_dir(&started).unwrap();
    let mut child = dts_process(lab.dir.path());
    child
        .args(["submit", "--kill-grace", "1s", "-F"])
        .arg(&config)
        .args(["-w", "2/node1,2/pnode2", "--array", "1-4", "--"])
        .arg(format!(
            "touch {}/{{}}; sleep 300; : {mark}",
            started.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own group, as a shell's job: Ctrl-C signals the whole group.
        .process_group(0);
    let child = child.spawn().unwrap();
    wait_until(Duration::from_secs(30), "all 4 tasks to start", || {
        std::fs::read_dir(&started).unwrap().count() == 4
    });
    // SAFETY: signalling the process group of our own child, as the terminal does.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    no_process_left(&mark, Duration::from_secs(10));
    let proxy = format!("-W {}:{}", node_addr(2), node_port(2));
    no_process_left(&proxy, Duration::from_secs(10));
}

#[test]
fn connections_through_a_bastion_share_one_session_to_it() {
    let cluster = Cluster::start(2);
    let config = cluster.write_ssh_config(2);
    let lab = &cluster.lab;
    let mark = marker("jumpshare");
    let started = lab.path("started");
    std::fs::create_dir(&started).unwrap();
    // 16 slots a node: two connections to each, four in all, through one bastion session.
    let mut child = dts_process(lab.dir.path());
    child
        .args(["submit", "--kill-grace", "1s", "-F"])
        .arg(&config)
        .args(["-w", "16/node1,16/node2", "--array", "1-32", "--"])
        .arg(format!(
            "touch {}/{{}}; sleep 300; : {mark}",
            started.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = child.spawn().unwrap();
    wait_until(Duration::from_secs(30), "all 32 tasks to start", || {
        std::fs::read_dir(&started).unwrap().count() == 32
    });
    let to_bastion = cluster.ns.established_to(2222);
    let to_nodes =
        cluster.ns.established_to(node_port(1)) + cluster.ns.established_to(node_port(2));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_eq!((to_bastion, to_nodes), (1, 4));
    no_process_left(&mark, Duration::from_secs(10));
}

/// A lab host whose sshd trusts a user CA and has no authorized_keys at all; the lab's
/// user key is signed by that CA into `userkey-cert.pub`.
fn certificate_lab() -> Lab {
    let mut lab = Lab::start(0);
    keygen(&lab.path("ca"));
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(lab.path("ca"))
        .args(["-I", "dts-test", "-n", &lab.user])
        .arg(lab.path("userkey.pub"))
        .status()
        .unwrap();
    assert!(status.success());
    let ca = lab.path("ca.pub");
    let authorized = format!(
        "AuthorizedKeysFile {}",
        lab.path("authorized_keys").display()
    );
    lab.add_host_with("certified", |config| {
        config.replace(
            &authorized,
            &format!(
                "AuthorizedKeysFile none\nTrustedUserCAKeys {}",
                ca.display()
            ),
        )
    });
    lab.write_inventory(2);
    lab
}

#[test]
fn a_certificate_next_to_the_identity_logs_in_where_no_key_is_authorized() {
    let lab = certificate_lab();
    let submit = lab.submit();
    assert_eq!(run_array(submit, 2), names(&["certified"]));

    // Without the certificate the key alone is refused: the login above was the CA's.
    std::fs::rename(lab.path("userkey-cert.pub"), lab.path("signed.pub")).unwrap();
    lab.submit()
        .args(["--array", "1", "--", "true"])
        .assert()
        .code(3)
        .stderr(contains("refused"));

    // OpenSSH's CertificateFile names it wherever it is.
    let host = &lab.hosts[0];
    let config = lab.path("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host certified\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n  CertificateFile {}\n  UserKnownHostsFile {}\n",
            host.address,
            host.port,
            lab.user,
            lab.path("userkey").display(),
            lab.path("signed.pub").display(),
            lab.path("known_hosts").display()
        ),
    )
    .unwrap();
    let mut submit = dts(lab.dir.path());
    submit
        .args(["submit", "-F"])
        .arg(&config)
        .args(["-w", "certified"]);
    assert_eq!(run_array(submit, 2), names(&["certified"]));
}
