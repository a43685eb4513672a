//! Host names resolved through real OpenSSH configuration files: dts asks `ssh -G`, and
//! every test compares what dts resolved with what `ssh -G` itself prints for the same file
//! (Host aliases, Match, Include, `%` tokens), then checks hosts.toml's precedence.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dts::inventory::{self, Env, Host, HostKeyPolicy, Request, ssh_config};

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn env(&self) -> Env {
        Env {
            home: Some(self.dir.path().to_path_buf()),
            user: "localuser".into(),
            dts_hosts: None,
            xdg_config_home: None,
            cwd: self.dir.path().to_path_buf(),
        }
    }

    fn build(&self, request: &Request) -> Result<inventory::Built, dts::Error> {
        inventory::build(request, &self.env())
    }

    /// The hosts of `-w LIST` resolved through `-F config`.
    fn hosts(&self, config: &Path, list: &str) -> Vec<Host> {
        let request = Request {
            ssh_config: Some(config.to_path_buf()),
            host_list: Some(list.into()),
            ..Request::default()
        };
        self.build(&request)
            .unwrap_or_else(|err| panic!("{err}"))
            .inventory
            .hosts
    }
}

/// `ssh -G -F config name` as key → values.
fn ssh_g(config: &Path, name: &str) -> Vec<(String, String)> {
    let out = Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(config)
        .arg(name)
        .output()
        .expect("ssh is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn value(dump: &[(String, String)], key: &str) -> String {
    dump.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("ssh -G printed no {key}"))
        .1
        .clone()
}

/// Checks that dts's host agrees with `ssh -G` on address, user and port.
fn assert_agrees_with_ssh(host: &Host, config: &Path) {
    let dump = ssh_g(config, &host.name);
    assert_eq!(
        host.address,
        value(&dump, "hostname"),
        "hostname of {}",
        host.name
    );
    assert_eq!(host.user, value(&dump, "user"), "user of {}", host.name);
    assert_eq!(
        host.port.to_string(),
        value(&dump, "port"),
        "port of {}",
        host.name
    );
}

fn account_home() -> PathBuf {
    ssh_config::account_home().expect("the account has a home directory")
}

#[test]
fn an_alias_resolves_as_ssh_resolves_it() {
    let setup = Setup::new();
    let d = setup.dir.path().display();
    let config = setup.write(
        "config",
        &format!(
            "Host alias\n  HostName 10.1.1.1\n  User bob\n  Port 2299\n  IdentityFile {d}/keys/%h_%r_%p\n\
             \x20 IdentityFile ~/k2\n  UserKnownHostsFile {d}/kh_%h {d}/kh2\n  ConnectTimeout 7\n\
             \x20 ServerAliveInterval 15\n  ServerAliveCountMax 2\n  IdentitiesOnly yes\n\
             \x20 CertificateFile {d}/keys/%h-cert.pub\n"
        ),
    );
    let [host] = &setup.hosts(&config, "alias")[..] else {
        panic!("one host");
    };
    assert_agrees_with_ssh(host, &config);
    assert_eq!(
        (&*host.address, &*host.user, host.port),
        ("10.1.1.1", "bob", 2299)
    );
    assert_eq!(
        host.identities,
        [
            setup.path("keys/10.1.1.1_bob_2299"),
            account_home().join("k2")
        ]
    );
    assert_eq!(host.certificate, Some(setup.path("keys/10.1.1.1-cert.pub")));
    let known: Vec<String> = value(&ssh_g(&config, "alias"), "userknownhostsfile")
        .split(' ')
        .map(String::from)
        .collect();
    assert_eq!(
        host.known_hosts,
        [
            PathBuf::from(&known[0]),
            PathBuf::from(&known[1]),
            PathBuf::from(inventory::SYSTEM_KNOWN_HOSTS)
        ]
    );
    assert_eq!(known[0], format!("{d}/kh_10.1.1.1"));
    assert_eq!(host.connect_timeout, Duration::from_secs(7));
    assert_eq!(host.server_alive_interval, Some(Duration::from_secs(15)));
    assert_eq!(host.server_alive_count, Some(2));
    assert!(host.identities_only);
}

#[test]
fn match_include_and_tokens_follow_openssh() {
    let setup = Setup::new();
    let d = setup.dir.path().display();
    setup.write(
        "conf.d/cluster.conf",
        "Host node*\n  HostName %h.cluster.internal\n  User hpc\n",
    );
    let config = setup.write(
        "config",
        &format!(
            "Include {d}/conf.d/*.conf\n\
             Match host *.cluster.internal\n  Port 2022\n\
             Match originalhost gpu*\n  User gpuuser\n  Port 2200\n\
             Host *\n  User fallback\n"
        ),
    );
    let hosts = setup.hosts(&config, "node[01-03],gpu1,other");
    for host in &hosts {
        assert_agrees_with_ssh(host, &config);
    }
    let seen: Vec<(&str, &str, u16)> = hosts
        .iter()
        .map(|h| (h.address.as_str(), h.user.as_str(), h.port))
        .collect();
    assert_eq!(
        seen,
        [
            ("node01.cluster.internal", "hpc", 2022),
            ("node02.cluster.internal", "hpc", 2022),
            ("node03.cluster.internal", "hpc", 2022),
            ("gpu1", "gpuuser", 2200),
            ("other", "fallback", 22),
        ]
    );
    // Names the config says nothing about keep dts's own defaults for keys and known_hosts.
    assert!(hosts[4].identities.is_empty());
    assert_eq!(hosts[4].known_hosts[0], setup.path(".ssh/known_hosts"));
}

#[test]
fn keys_written_in_hosts_toml_win_over_ssh_config() {
    let setup = Setup::new();
    let config = setup.write(
        "ssh/config",
        "Host *\n  HostName 10.2.2.2\n  User sshuser\n  Port 2299\n  IdentityFile /ssh/key\n\
         \x20 UserKnownHostsFile /ssh/kh\n  StrictHostKeyChecking accept-new\n  ConnectTimeout 3\n",
    );
    setup.write(
        "hosts.toml",
        "[defaults]\nssh_config = \"ssh/config\"\nuser = \"tomluser\"\nconnect_timeout = \"9s\"\n\
         [[host]]\nname = \"written\"\naddress = \"10.0.0.1\"\nport = 2201\nidentity = \"/toml/key\"\n\
         known_hosts = \"/toml/kh\"\nhost_key_policy = \"strict\"\n\
         [[host]]\nname = \"bare\"\n",
    );
    let request = Request {
        hosts_file: Some("hosts.toml".into()),
        ..Request::default()
    };
    let hosts = setup.build(&request).unwrap().inventory.hosts;
    let (written, bare) = (&hosts[0], &hosts[1]);
    assert_eq!(
        (&*written.address, written.port, &*written.user),
        ("10.0.0.1", 2201, "tomluser")
    );
    assert_eq!(written.identities, [PathBuf::from("/toml/key")]);
    assert_eq!(written.known_hosts, [PathBuf::from("/toml/kh")]);
    assert_eq!(written.host_key_policy, HostKeyPolicy::Strict);
    assert_eq!(written.connect_timeout, Duration::from_secs(9));
    // What hosts.toml leaves out comes from the config ([defaults] user still wins).
    assert_eq!(
        (&*bare.address, bare.port, &*bare.user),
        ("10.2.2.2", 2299, "tomluser")
    );
    assert_eq!(bare.identities, [PathBuf::from("/ssh/key")]);
    assert_eq!(bare.known_hosts[0], PathBuf::from("/ssh/kh"));
    assert_eq!(bare.host_key_policy, HostKeyPolicy::AcceptNew);
    assert_eq!(bare.connect_timeout, Duration::from_secs(9));
    let _ = config;
}

#[test]
fn the_users_own_file_is_the_default_and_ssh_config_false_turns_it_off() {
    let setup = Setup::new();
    setup.write(
        ".ssh/config",
        "Host alias\n  HostName 10.3.3.3\n  Port 2233\n",
    );
    let list = Request {
        host_list: Some("alias".into()),
        ..Request::default()
    };
    let host = &setup.build(&list).unwrap().inventory.hosts[0];
    assert_eq!((&*host.address, host.port), ("10.3.3.3", 2233));

    setup.write(
        "hosts.toml",
        "[defaults]\nssh_config = false\n[[host]]\nname = \"alias\"\n",
    );
    let off = Request {
        hosts_file: Some("hosts.toml".into()),
        ..Request::default()
    };
    let host = &setup.build(&off).unwrap().inventory.hosts[0];
    assert_eq!((&*host.address, host.port), ("alias", 22));
    // -F on the command line beats `ssh_config = false`.
    let flag = Request {
        ssh_config: Some(".ssh/config".into()),
        ..off
    };
    assert_eq!(setup.build(&flag).unwrap().inventory.hosts[0].port, 2233);
}

#[test]
fn proxy_jump_hops_resolve_through_the_config_too() {
    let setup = Setup::new();
    let config = setup.write(
        "config",
        "Host target\n  ProxyJump ops@bastion:2200,gw\nHost gw\n  HostName 10.0.0.254\n  User gwuser\n  Port 2022\n\
         Host viacommand\n  ProxyCommand ssh -W %h:%p gw\n",
    );
    let hosts = setup.hosts(&config, "target,viacommand");
    let hops: Vec<String> = hosts[0].jump.iter().map(ToString::to_string).collect();
    assert_eq!(hops, ["ops@bastion:2200", "gwuser@10.0.0.254:2022"]);
    assert_eq!(hosts[0].proxy_command, None);
    assert_eq!(hosts[1].proxy_command.as_deref(), Some("ssh -W %h:%p gw"));
    assert!(hosts[1].jump.is_empty());
    // `jump =` in hosts.toml replaces the config's route.
    setup.write(
        "hosts.toml",
        "[defaults]\njump = \"me@login\"\n[[host]]\nname = \"target\"\n[[host]]\nname = \"viacommand\"\n",
    );
    let request = Request {
        hosts_file: Some("hosts.toml".into()),
        ssh_config: Some(config),
        ..Request::default()
    };
    let hosts = setup.build(&request).unwrap().inventory.hosts;
    for host in &hosts {
        let hops: Vec<String> = host.jump.iter().map(ToString::to_string).collect();
        assert_eq!(hops, ["me@login"], "{}", host.name);
        assert_eq!(host.proxy_command, None);
    }
}

#[test]
fn strict_host_key_checking_no_is_accept_new_with_a_warning() {
    let setup = Setup::new();
    let config = setup.write(
        "config",
        "Host lax*\n  StrictHostKeyChecking no\nHost new\n  StrictHostKeyChecking accept-new\n\
         Host strict\n  StrictHostKeyChecking yes\n",
    );
    let request = Request {
        ssh_config: Some(config.clone()),
        host_list: Some("lax[1-2],new,strict,other".into()),
        ..Request::default()
    };
    let built = setup.build(&request).unwrap();
    let policies: Vec<HostKeyPolicy> = built
        .inventory
        .hosts
        .iter()
        .map(|h| h.host_key_policy)
        .collect();
    use HostKeyPolicy::*;
    assert_eq!(policies, [AcceptNew, AcceptNew, AcceptNew, Strict, Strict]);
    assert_eq!(
        built.warnings,
        [format!(
            "lax[1-2]: StrictHostKeyChecking no in {} is read as accept-new: unknown host keys \
             are added, a changed key is still refused",
            config.display()
        )]
    );
}

#[test]
fn a_bad_config_is_an_error_naming_the_file_and_line() {
    let setup = Setup::new();
    let bad = setup.write("bad.conf", "Host x\n  Port 22\n  Bogus yes\n");
    let config = setup.write("config", &format!("Include {}\n", bad.display()));
    let request = Request {
        ssh_config: Some(config.clone()),
        host_list: Some("x".into()),
        ..Request::default()
    };
    let err = setup.build(&request).unwrap_err();
    assert_eq!(err.exit_code(), dts::error::exit::USAGE);
    assert_eq!(
        err.to_string(),
        format!(
            "OpenSSH configuration {}: `ssh -G x` failed: {}: line 3: Bad configuration option: bogus",
            config.display(),
            bad.display()
        )
    );
    let missing = Request {
        ssh_config: Some(setup.path("nope")),
        ..request
    };
    let message = setup.build(&missing).unwrap_err().to_string();
    assert!(message.contains("nope"), "{message}");
}
