//! Reaching hosts the way users name them: `-w` / `--slf` sshlogins and OpenSSH config
//! aliases, run end to end against real sshd servers on loopback.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

/// `user@address:port` of lab host `i`.
fn login(lab: &Lab, i: usize) -> String {
    let host = &lab.hosts[i];
    format!("{}@{}:{}", lab.user, host.address, host.port)
}

/// Runs `args` and returns the hosts each task of `--array 1-N` ran on, checking that every
/// task ran once.
fn run_array(mut cmd: assert_cmd::Command, tasks: u64) -> BTreeSet<String> {
    let out = cmd
        .args([
            "--array",
            &format!("1-{tasks}"),
            "--",
            "echo task {} on $DTS_HOST",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let lines = tagged_lines(&out.stdout);
    let indices: BTreeSet<u64> = lines.iter().map(|(_, i, _)| *i).collect();
    assert_eq!(lines.len() as u64, tasks, "{lines:?}");
    assert_eq!(indices.len() as u64, tasks);
    for (host, index, line) in &lines {
        assert_eq!(line, &format!("task {index} on {host}"));
    }
    lines.into_iter().map(|(host, _, _)| host).collect()
}

/// `dts hosts --json` rows as (name, address, status, slots).
fn hosts_json(mut cmd: assert_cmd::Command) -> Vec<(String, String, String, Option<u64>)> {
    let out = cmd.arg("--json").assert().success().get_output().clone();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["name"].as_str().unwrap().to_string(),
                row["address"].as_str().unwrap().to_string(),
                row["status"].as_str().unwrap().to_string(),
                row["slots"].as_u64(),
            )
        })
        .collect()
}

#[test]
fn dash_w_with_users_ports_and_slots_replaces_the_inventory() {
    let lab = Lab::start(2);
    let list = format!("3/{},2/{}", login(&lab, 0), login(&lab, 1));
    // -H still gives [defaults] (the lab's key and known_hosts); its [[host]]s are not used.
    // -w repeats as GNU parallel's -S does.
    let mut submit = lab.submit();
    submit.args([
        "-w",
        &format!("3/{}", login(&lab, 0)),
        "-S",
        &format!("2/{}", login(&lab, 1)),
    ]);
    let used = run_array(submit, 20);
    let expected: BTreeSet<String> = ["127.0.0.2", "127.0.0.3"].map(String::from).into();
    assert_eq!(used, expected);

    let mut hosts = dts(lab.dir.path());
    hosts
        .args(["hosts", "-H"])
        .arg(lab.inventory())
        .args(["-w", &list]);
    let rows = hosts_json(hosts);
    let summary: Vec<(&str, &str, Option<u64>)> = rows
        .iter()
        .map(|(name, _, status, slots)| (name.as_str(), status.as_str(), *slots))
        .collect();
    assert_eq!(
        summary,
        [("127.0.0.2", "ok", Some(3)), ("127.0.0.3", "ok", Some(2))]
    );
}

#[test]
fn an_sshlogin_file_with_comments_slots_and_the_ssh_command_form() {
    let lab = Lab::start(2);
    let (h2, h3) = (&lab.hosts[0], &lab.hosts[1]);
    let file = lab.path("nodes");
    std::fs::write(
        &file,
        format!(
            "# the lab\n\n2/{}\n  # GNU parallel's command form\n4/ssh -p {} -l {} {}\n",
            login(&lab, 0),
            h3.port,
            lab.user,
            h3.address
        ),
    )
    .unwrap();
    let mut submit = lab.submit();
    submit.arg("--slf").arg(&file);
    let used = run_array(submit, 12);
    assert_eq!(used, [h2.address, h3.address].map(|a| a.to_string()).into());

    let mut hosts = dts(lab.dir.path());
    hosts
        .args(["hosts", "-H"])
        .arg(lab.inventory())
        .arg("--sshloginfile")
        .arg(&file);
    let slots: Vec<Option<u64>> = hosts_json(hosts).into_iter().map(|row| row.3).collect();
    assert_eq!(slots, [Some(2), Some(4)]);
}

/// An OpenSSH config that names lab host 0 `alias` and says everything needed to reach it.
fn alias_config(lab: &Lab, alias: &str) -> String {
    let host = &lab.hosts[0];
    format!(
        "Host {alias}\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n  UserKnownHostsFile {}\n",
        host.address,
        host.port,
        lab.user,
        lab.path("userkey").display(),
        lab.path("known_hosts").display()
    )
}

#[test]
fn a_name_that_is_only_an_ssh_config_alias_is_reached() {
    let lab = Lab::start(1);
    let config = lab.path("ssh_config");
    std::fs::write(&config, alias_config(&lab, "labnode")).unwrap();
    // No inventory at all: -w names the alias, -F the file.
    let mut submit = dts(lab.dir.path());
    submit
        .args(["submit", "-F"])
        .arg(&config)
        .args(["-w", "2/labnode"]);
    assert_eq!(run_array(submit, 6), ["labnode".to_string()].into());

    let mut hosts = dts(lab.dir.path());
    hosts
        .args(["hosts", "-F"])
        .arg(&config)
        .args(["-w", "3/labnode"]);
    let rows = hosts_json(hosts);
    let address = format!("{}:{}", lab.hosts[0].address, lab.hosts[0].port);
    assert_eq!(rows, [("labnode".into(), address, "ok".into(), Some(3))]);
}

#[test]
fn inventory_names_resolve_through_the_users_own_ssh_config() {
    let lab = Lab::start(1);
    // HOME is the lab dir: ~/.ssh/config is read without -F, as ssh would.
    std::fs::create_dir_all(lab.path(".ssh")).unwrap();
    std::fs::write(lab.path(".ssh/config"), alias_config(&lab, "node01")).unwrap();
    let inventory = lab.path("alias_hosts.toml");
    std::fs::write(&inventory, "[[host]]\nname = \"node01\"\nslots = 2\n").unwrap();
    let mut submit = dts(lab.dir.path());
    submit.args(["submit", "-H"]).arg(&inventory);
    assert_eq!(run_array(submit, 4), ["node01".to_string()].into());
}

#[test]
fn a_bad_ssh_config_exits_2_naming_the_file_and_line() {
    let lab = Lab::start(1);
    let config = lab.path("ssh_config");
    std::fs::write(&config, "Host x\n  NoSuchOption yes\n").unwrap();
    let mut submit = dts(lab.dir.path());
    submit
        .args(["submit", "-F"])
        .arg(&config)
        .args(["-w", "x", "--array", "1", "--", "true"])
        .assert()
        .code(2)
        .stderr(contains(format!(
            "{}: line 2: Bad configuration option: nosuchoption",
            config.display()
        )))
        .stderr(contains("dts: run ").not());
    // The same through `[defaults] ssh_config` and `dts hosts`.
    let inventory = lab.path("bad_config.toml");
    std::fs::write(
        &inventory,
        format!(
            "[defaults]\nssh_config = \"{}\"\n[[host]]\nname = \"x\"\n",
            config.display()
        ),
    )
    .unwrap();
    dts(lab.dir.path())
        .args(["hosts", "-H"])
        .arg(&inventory)
        .assert()
        .code(2)
        .stderr(contains(format!(
            "OpenSSH configuration {}",
            config.display()
        )));
}

#[test]
fn a_bad_sshlogin_exits_2_with_file_line_and_column() {
    let lab = Lab::start(1);
    let file = lab.path("nodes");
    std::fs::write(
        &file,
        format!("{}\n# next\n  8/alice@node:99999\n", login(&lab, 0)),
    )
    .unwrap();
    lab.submit()
        .arg("--slf")
        .arg(&file)
        .args(["--array", "1", "--", "true"])
        .assert()
        .code(2)
        .stderr(contains(format!(
            "{}:3:16: invalid port \"99999\"",
            file.display()
        )));
    lab.submit()
        .args(["-w", "node[1-2,x]", "--array", "1", "--", "true"])
        .assert()
        .code(2)
        .stderr(contains("-w \"node[1-2,x]\": column 10: invalid host"));
}

#[test]
fn a_requested_config_without_ssh_installed_exits_2() {
    let lab = Lab::start(1);
    let config = lab.path("ssh_config");
    std::fs::write(&config, alias_config(&lab, "labnode")).unwrap();
    let empty_path: PathBuf = lab.path("no-bin");
    std::fs::create_dir_all(&empty_path).unwrap();
    dts(lab.dir.path())
        .env("PATH", &empty_path)
        .args(["submit", "-F"])
        .arg(&config)
        .args(["-w", "labnode", "--array", "1", "--", "true"])
        .assert()
        .code(2)
        .stderr(contains("`ssh` is not installed"));
}

#[test]
fn dts_hosts_names_the_route_from_proxy_jump() {
    let lab = Lab::start(1);
    let config = lab.path("ssh_config");
    let text = format!(
        "{}  ProxyJump ops@bastion:2200,gw\nHost gw\n  HostName 10.0.0.254\n",
        alias_config(&lab, "inside")
    );
    std::fs::write(&config, text).unwrap();
    let mut hosts = dts(lab.dir.path());
    hosts
        .args(["hosts", "-F"])
        .arg(&config)
        .args(["-w", "inside"]);
    let out = hosts.arg("--json").output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let address = doc["hosts"][0]["address"].as_str().unwrap().to_string();
    let user = &lab.user;
    assert!(
        address.ends_with(&format!(" via ops@bastion:2200,{user}@10.0.0.254")),
        "{address}"
    );
}
