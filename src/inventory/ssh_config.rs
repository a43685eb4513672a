//! The user's OpenSSH client configuration, asked of OpenSSH itself with `ssh -G`.
//!
//! dts does not parse ssh_config: `Host`, `Match`, `Include`, `%` tokens and the order
//! rules are OpenSSH's, and only OpenSSH gets them exactly right. This module owns:
//!
//! - [`Resolver`]: runs `ssh -G [-F FILE] HOST` once per distinct name (at most
//!   [`PARALLEL_QUERIES`] at once), caches the answers for the run, and turns a rejected
//!   file into an error naming the file and line as OpenSSH reports them;
//! - [`parse_dump`]: reads the lowercase `key value` lines `ssh -G` prints (pure);
//! - [`configured`]: what the file *sets* for a host, as dts values (pure). `ssh -G` prints
//!   OpenSSH's defaults too, so every value is compared with the dump of `ssh -G -F
//!   /dev/null` (no configuration at all): a value equal to OpenSSH's default is not
//!   configured, and dts's own default applies instead (`IdentityFile`: the default list
//!   means "ssh-agent, then the default key files", exactly as without a config);
//! - [`parse_jumps`]: `ProxyJump` / `jump =` chains (pure).
//!
//! Paths in the dump are expanded as OpenSSH does (`~` is the account's home directory
//! from the password database; `%h`, `%r`, `%p`, `%u`, `%d`, `%n`, `%l`, `%L`, `%i`, `%%`
//! in `IdentityFile` and `CertificateFile`, which `ssh -G` prints unexpanded).

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::HostKeyPolicy;

/// How many `ssh -G` processes run at once.
pub const PARALLEL_QUERIES: usize = 16;

/// How long one `ssh -G` may take (it runs `Match exec` commands, which may hang).
pub const QUERY_TIME_LIMIT: Duration = Duration::from_secs(30);

/// A name matching no `Host` block, for OpenSSH's defaults (`-F /dev/null` anyway).
const BASELINE_NAME: &str = "dts-baseline.invalid";

/// Why the OpenSSH configuration could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshConfigError {
    #[error(
        "cannot read the OpenSSH configuration {}: `ssh` is not installed ({program}: {reason}); \
         install the OpenSSH client, or set `ssh_config = false` in [defaults]",
        file.display()
    )]
    NoSsh {
        file: PathBuf,
        program: String,
        reason: String,
    },
    #[error("OpenSSH configuration {}: `ssh -G {host}` failed: {message}", file.display())]
    Rejected {
        file: PathBuf,
        host: String,
        message: String,
    },
    #[error("OpenSSH configuration {} for host \"{host}\": {message}", file.display())]
    Host {
        file: PathBuf,
        host: String,
        message: String,
    },
}

/// What `ssh -G` printed for one host, the keys dts uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dump {
    pub hostname: String,
    pub user: String,
    pub port: u16,
    pub identity_files: Vec<String>,
    pub certificate_files: Vec<String>,
    pub identities_only: bool,
    pub user_known_hosts: Vec<String>,
    pub strict_host_key_checking: String,
    pub connect_timeout: Option<u64>,
    pub server_alive_interval: u64,
    pub server_alive_count_max: u64,
    pub proxy_jump: Option<String>,
    pub proxy_command: Option<String>,
}

/// Reads `ssh -G` output: one `key value` per line, keys in lowercase.
pub fn parse_dump(text: &str) -> Result<Dump, String> {
    let mut dump = Dump::default();
    let number = |key: &str, value: &str| {
        value
            .parse::<u64>()
            .map_err(|_| format!("ssh -G printed `{key} {value}`: expected a number"))
    };
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let value = value.trim();
        match key {
            "hostname" => dump.hostname = value.to_string(),
            "user" => dump.user = value.to_string(),
            "port" => {
                dump.port = u16::try_from(number(key, value)?)
                    .map_err(|_| format!("ssh -G printed port {value}"))?
            }
            "identityfile" => dump.identity_files.push(value.to_string()),
            "certificatefile" => dump.certificate_files.push(value.to_string()),
            "identitiesonly" => dump.identities_only = value == "yes" || value == "true",
            "userknownhostsfile" => {
                dump.user_known_hosts = value.split_whitespace().map(String::from).collect()
            }
            "stricthostkeychecking" => dump.strict_host_key_checking = value.to_string(),
            "connecttimeout" if value == "none" => dump.connect_timeout = None,
            "connecttimeout" => dump.connect_timeout = Some(number(key, value)?),
            "serveraliveinterval" => dump.server_alive_interval = number(key, value)?,
            "serveralivecountmax" => dump.server_alive_count_max = number(key, value)?,
            "proxyjump" if value != "none" => dump.proxy_jump = Some(value.to_string()),
            "proxycommand" if value != "none" => dump.proxy_command = Some(value.to_string()),
            _ => {}
        }
    }
    if dump.hostname.is_empty() {
        return Err("ssh -G printed no hostname".into());
    }
    Ok(dump)
}

/// What the configuration sets for one host, in dts's terms; `None`: not configured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Configured {
    pub address: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identities: Option<Vec<PathBuf>>,
    pub certificate: Option<PathBuf>,
    pub identities_only: Option<bool>,
    pub known_hosts: Option<Vec<PathBuf>>,
    pub host_key_policy: Option<HostKeyPolicy>,
    /// `StrictHostKeyChecking no`, read as accept-new (worth a warning).
    pub policy_warning: bool,
    pub connect_timeout: Option<Duration>,
    pub server_alive_interval: Option<Duration>,
    pub server_alive_count: Option<u32>,
    pub proxy_jump: Option<String>,
    pub proxy_command: Option<String>,
}

/// Local facts OpenSSH's `%` tokens and `~` refer to.
#[derive(Debug, Clone, Default)]
pub struct Local {
    /// The account's home directory, from the password database (what OpenSSH uses).
    pub home: PathBuf,
    pub user: String,
    pub uid: u32,
    /// The local host name, and the same up to its first dot (`%L`).
    pub hostname: String,
}

/// What `dump` (for the name `query`) configures beyond OpenSSH's defaults (`baseline`).
pub fn configured(
    query: &str,
    dump: &Dump,
    baseline: &Dump,
    local: &Local,
) -> Result<Configured, String> {
    let paths = |files: &[String]| -> Result<Vec<PathBuf>, String> {
        files
            .iter()
            .filter(|file| *file != "none")
            .map(|file| expand_path(file, query, dump, local))
            .collect()
    };
    let identities = (dump.identity_files != baseline.identity_files)
        .then(|| paths(&dump.identity_files))
        .transpose()?;
    let certificate = paths(&dump.certificate_files)?.into_iter().next();
    let known_hosts = (dump.user_known_hosts != baseline.user_known_hosts)
        .then(|| {
            let mut files = paths(&dump.user_known_hosts)?;
            files.push(PathBuf::from(super::SYSTEM_KNOWN_HOSTS));
            Ok::<_, String>(files)
        })
        .transpose()?;
    let (host_key_policy, policy_warning) = policy(&dump.strict_host_key_checking)?;
    let alive = dump.server_alive_interval > 0;
    Ok(Configured {
        address: Some(dump.hostname.clone()),
        user: (dump.user != baseline.user).then(|| dump.user.clone()),
        port: (dump.port != baseline.port).then_some(dump.port),
        identities,
        certificate,
        identities_only: (dump.identities_only != baseline.identities_only)
            .then_some(dump.identities_only),
        known_hosts,
        host_key_policy,
        policy_warning,
        connect_timeout: dump
            .connect_timeout
            .filter(|&secs| secs > 0)
            .map(Duration::from_secs),
        server_alive_interval: alive.then(|| Duration::from_secs(dump.server_alive_interval)),
        server_alive_count: alive
            .then(|| u32::try_from(dump.server_alive_count_max).unwrap_or(u32::MAX)),
        proxy_jump: dump.proxy_jump.clone(),
        proxy_command: dump.proxy_command.clone(),
    })
}

/// `StrictHostKeyChecking` (as `ssh -G` prints it) onto dts's policies. `no` never
/// means "accept any key": it becomes accept-new, with a warning.
fn policy(value: &str) -> Result<(Option<HostKeyPolicy>, bool), String> {
    match value {
        "true" | "yes" | "ask" | "" => Ok((None, false)),
        "accept-new" => Ok((Some(HostKeyPolicy::AcceptNew), false)),
        "false" | "no" | "off" => Ok((Some(HostKeyPolicy::AcceptNew), true)),
        other => Err(format!("unknown StrictHostKeyChecking value \"{other}\"")),
    }
}

/// Expands `~` and OpenSSH's `%` tokens in a path from the dump of `query`.
fn expand_path(file: &str, query: &str, dump: &Dump, local: &Local) -> Result<PathBuf, String> {
    let file = match file.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            format!("{}{rest}", local.home.display())
        }
        _ => file.to_string(),
    };
    let mut out = String::new();
    let mut chars = file.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let short_host = local.hostname.split('.').next().unwrap_or_default();
        match chars.next() {
            Some('%') => out.push('%'),
            Some('d') => out.push_str(&local.home.display().to_string()),
            Some('h') => out.push_str(&dump.hostname),
            Some('n') => out.push_str(query),
            Some('p') => out.push_str(&dump.port.to_string()),
            Some('r') => out.push_str(&dump.user),
            Some('u') => out.push_str(&local.user),
            Some('i') => out.push_str(&local.uid.to_string()),
            Some('l') => out.push_str(&local.hostname),
            Some('L') => out.push_str(short_host),
            Some(other) => {
                return Err(format!(
                    "`%{other}` in \"{file}\" is not supported by dts (supported: %% %d %h %i \
                     %l %L %n %p %r %u)"
                ));
            }
            None => return Err(format!("a lone `%` ends \"{file}\"")),
        }
    }
    Ok(PathBuf::from(out))
}

/// One hop of a jump chain as written: `[user@]host[:port]` (or `ssh://user@host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// A comma-separated jump chain, first hop first; `none` is no jump.
pub fn parse_jumps(text: &str) -> Result<Vec<HopSpec>, String> {
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    text.split(',').map(|hop| parse_hop(hop.trim())).collect()
}

fn parse_hop(hop: &str) -> Result<HopSpec, String> {
    let written = hop;
    let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
    let bad = |why: &str| format!("invalid jump host \"{written}\": {why}");
    let (user, rest) = match hop.rsplit_once('@') {
        Some(("", _)) => return Err(bad("empty user before `@`")),
        Some((user, rest)) => (Some(user.to_string()), rest),
        None => (None, hop),
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| bad("`[` without `]`"))?;
        (host, after.strip_prefix(':'))
    } else if rest.matches(':').count() > 1 {
        (rest, None)
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(bad("expected [user@]host[:port]"));
    }
    let port = port
        .map(|port| {
            port.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad(&format!("invalid port \"{port}\"")))
        })
        .transpose()?;
    Ok(HopSpec {
        user,
        host: host.to_string(),
        port,
    })
}

/// Runs `ssh -G` for the names dts needs and keeps the answers for the run.
pub struct Resolver {
    program: String,
    /// The file as the user named it (for messages).
    file: PathBuf,
    /// Pass `-F file`; `false` lets ssh find the user's file and the system one itself.
    pass_file: bool,
    pub local: Local,
    time_limit: Duration,
    baseline: Dump,
    cache: Mutex<HashMap<String, Dump>>,
}

impl Resolver {
    /// A resolver for `file`; `pass_file` false when it is the file ssh reads by itself.
    /// Runs `ssh -G -F /dev/null` once for OpenSSH's defaults (checking `ssh` is there).
    pub fn new(program: &str, file: &Path, pass_file: bool) -> Result<Resolver, SshConfigError> {
        let mut resolver = Resolver {
            program: program.to_string(),
            file: file.to_path_buf(),
            pass_file,
            local: local_facts(),
            time_limit: QUERY_TIME_LIMIT,
            baseline: Dump::default(),
            cache: Mutex::new(HashMap::new()),
        };
        resolver.baseline = resolver.run(BASELINE_NAME, Some(Path::new("/dev/null")))?;
        Ok(resolver)
    }

    /// The same with another limit on each `ssh -G`.
    pub fn with_time_limit(self, time_limit: Duration) -> Resolver {
        Resolver { time_limit, ..self }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Queries every name not yet cached, [`PARALLEL_QUERIES`] at a time.
    pub fn prefetch(&self, names: &[&str]) -> Result<(), SshConfigError> {
        let mut missing: Vec<&str> = {
            let cache = self.cache.lock().expect("cache lock");
            names
                .iter()
                .copied()
                .filter(|n| !cache.contains_key(*n))
                .collect()
        };
        missing.sort_unstable();
        missing.dedup();
        let next = AtomicUsize::new(0);
        let first_error: Mutex<Option<(usize, SshConfigError)>> = Mutex::new(None);
        let file = self.pass_file.then_some(self.file.as_path());
        std::thread::scope(|scope| {
            for _ in 0..PARALLEL_QUERIES.min(missing.len()) {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&name) = missing.get(index) else {
                            break;
                        };
                        match self.run(name, file) {
                            Ok(dump) => {
                                self.cache
                                    .lock()
                                    .expect("cache lock")
                                    .insert(name.to_string(), dump);
                            }
                            Err(err) => {
                                let mut slot = first_error.lock().expect("error lock");
                                // Report the first name in order, whatever finished first.
                                if slot.as_ref().is_none_or(|(i, _)| index < *i) {
                                    *slot = Some((index, err));
                                }
                            }
                        }
                    }
                });
            }
        });
        match first_error.into_inner().expect("error lock") {
            Some((_, err)) => Err(err),
            None => Ok(()),
        }
    }

    /// What the configuration sets for `name` (queried now unless prefetched).
    pub fn configured(&self, name: &str) -> Result<Configured, SshConfigError> {
        self.prefetch(&[name])?;
        let dump = self.cache.lock().expect("cache lock")[name].clone();
        configured(name, &dump, &self.baseline, &self.local).map_err(|message| {
            SshConfigError::Host {
                file: self.file.clone(),
                host: name.to_string(),
                message,
            }
        })
    }

    fn run(&self, name: &str, file: Option<&Path>) -> Result<Dump, SshConfigError> {
        let mut command = Command::new(&self.program);
        command.arg("-G");
        if let Some(file) = file {
            command.arg("-F").arg(file);
        }
        command.arg("--").arg(name);
        let rejected = |message: String| SshConfigError::Rejected {
            file: self.file.clone(),
            host: name.to_string(),
            message,
        };
        let output = output_within(command, self.time_limit)
            .map_err(|err| SshConfigError::NoSsh {
                file: self.file.clone(),
                program: self.program.clone(),
                reason: err.to_string(),
            })?
            .ok_or_else(|| {
                rejected(format!(
                    "it did not finish within {} (a `Match exec` command that hangs?)",
                    humantime::format_duration(self.time_limit)
                ))
            })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message: Vec<&str> = stderr
            .lines()
            // ssh's closing "FILE: terminating, N bad configuration options" repeats the rest.
            .filter(|line| {
                !line.starts_with("Pseudo-terminal will not be allocated")
                    && !line.contains(": terminating, ")
            })
            .collect();
        if !output.status.success() {
            let message = match message.join("; ") {
                text if text.is_empty() => output.status.to_string(),
                text => text,
            };
            return Err(rejected(message));
        }
        parse_dump(&String::from_utf8_lossy(&output.stdout)).map_err(|message| {
            SshConfigError::Host {
                file: self.file.clone(),
                host: name.to_string(),
                message,
            }
        })
    }
}

/// Runs `command` (in its own process group) and returns its output, or `None` when it
/// ran longer than `limit` (then the whole group is killed, `Match exec` children too).
fn output_within(mut command: Command, limit: Duration) -> std::io::Result<Option<Output>> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = command.spawn()?;
    let group = child.id() as libc::pid_t;
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match finished.recv_timeout(limit) {
        Ok(output) => output.map(Some),
        Err(_) => {
            // SAFETY: kill has no memory preconditions; the child is not reaped yet (its
            // waiter is still waiting), so the group id is still its own.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            Ok(None)
        }
    }
}

/// The account's home directory and name from the password database, the uid and the
/// local host name: what OpenSSH expands `~` and `%` tokens with.
fn local_facts() -> Local {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let (home, user) = passwd_entry(uid).unwrap_or_default();
    Local {
        home,
        user,
        uid,
        hostname: local_hostname(),
    }
}

fn passwd_entry(uid: u32) -> Option<(PathBuf, String)> {
    let mut buffer = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value to be filled in by getpwuid_r.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and the buffer length is its size.
    let status = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut result,
        )
    };
    if status != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success pw_dir and pw_name point at NUL-terminated strings in `buffer`.
    let (dir, name) = unsafe {
        (
            std::ffi::CStr::from_ptr(entry.pw_dir),
            std::ffi::CStr::from_ptr(entry.pw_name),
        )
    };
    use std::os::unix::ffi::OsStrExt;
    Some((
        PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())),
        name.to_string_lossy().into_owned(),
    ))
}

fn local_hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return String::new();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

/// The account's home directory from the password database (where ssh looks for
/// `~/.ssh/config` by itself).
pub fn account_home() -> Option<PathBuf> {
    // SAFETY: getuid has no preconditions.
    passwd_entry(unsafe { libc::getuid() }).map(|(home, _)| home)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASELINE: &str = "host dts-baseline.invalid\nuser alice\nhostname dts-baseline.invalid\n\
        port 22\nidentitiesonly no\nstricthostkeychecking ask\nserveralivecountmax 3\n\
        serveraliveinterval 0\nidentityfile ~/.ssh/id_rsa\nidentityfile ~/.ssh/id_ed25519\n\
        userknownhostsfile /home/alice/.ssh/known_hosts /home/alice/.ssh/known_hosts2\n\
        connecttimeout none\n";

    fn local() -> Local {
        Local {
            home: PathBuf::from("/home/alice"),
            user: "alice".into(),
            uid: 1000,
            hostname: "login1.example.org".into(),
        }
    }

    fn baseline() -> Dump {
        parse_dump(BASELINE).unwrap()
    }

    #[test]
    fn parse_dump_reads_the_keys_dts_uses() {
        let text = "host a\nuser bob\nhostname 10.0.0.1\nport 2222\nidentitiesonly yes\n\
            identityfile ~/k1\nidentityfile /k2\ncertificatefile ~/k1-cert.pub\n\
            userknownhostsfile /kh1 /kh2\nstricthostkeychecking accept-new\nconnecttimeout 7\n\
            serveraliveinterval 15\nserveralivecountmax 4\nproxyjump ops@bast:2200,b2\n\
            proxycommand ssh -W %h:%p gw\nciphers x,y\n";
        assert_eq!(
            parse_dump(text).unwrap(),
            Dump {
                hostname: "10.0.0.1".into(),
                user: "bob".into(),
                port: 2222,
                identity_files: vec!["~/k1".into(), "/k2".into()],
                certificate_files: vec!["~/k1-cert.pub".into()],
                identities_only: true,
                user_known_hosts: vec!["/kh1".into(), "/kh2".into()],
                strict_host_key_checking: "accept-new".into(),
                connect_timeout: Some(7),
                server_alive_interval: 15,
                server_alive_count_max: 4,
                proxy_jump: Some("ops@bast:2200,b2".into()),
                proxy_command: Some("ssh -W %h:%p gw".into()),
            }
        );
        assert_eq!(baseline().connect_timeout, None);
        assert!(parse_dump("user x\n").is_err());
        assert!(parse_dump("hostname h\nport x\n").is_err());
    }

    #[test]
    fn openssh_defaults_are_not_configured() {
        let dump = Dump {
            hostname: "a".into(),
            ..baseline()
        };
        let got = configured("a", &dump, &baseline(), &local()).unwrap();
        assert_eq!(
            got,
            Configured {
                address: Some("a".into()),
                ..Configured::default()
            }
        );
    }

    #[test]
    fn configured_values_are_dts_values() {
        let dump = parse_dump(
            "hostname 10.0.0.1\nuser bob\nport 2222\nidentityfile ~/keys/%h_%r_%p\n\
             identityfile %d/%u/%n/%l/%L/%i/%%\ncertificatefile ~/c.pub\nidentitiesonly yes\n\
             userknownhostsfile /kh none\nstricthostkeychecking true\nconnecttimeout 0\n\
             serveraliveinterval 5\nserveralivecountmax 2\n",
        )
        .unwrap();
        let got = configured("alias", &dump, &baseline(), &local()).unwrap();
        assert_eq!(got.user.as_deref(), Some("bob"));
        assert_eq!(got.port, Some(2222));
        assert_eq!(
            got.identities.unwrap(),
            [
                PathBuf::from("/home/alice/keys/10.0.0.1_bob_2222"),
                PathBuf::from("/home/alice/alice/alias/login1.example.org/login1/1000/%"),
            ]
        );
        assert_eq!(got.certificate, Some(PathBuf::from("/home/alice/c.pub")));
        assert_eq!(got.identities_only, Some(true));
        assert_eq!(
            got.known_hosts.unwrap(),
            [
                PathBuf::from("/kh"),
                PathBuf::from(super::super::SYSTEM_KNOWN_HOSTS)
            ]
        );
        assert_eq!(got.host_key_policy, None);
        assert_eq!(
            got.connect_timeout, None,
            "ConnectTimeout 0 is OpenSSH's none"
        );
        assert_eq!(got.server_alive_interval, Some(Duration::from_secs(5)));
        assert_eq!(got.server_alive_count, Some(2));
    }

    #[test]
    fn strict_host_key_checking_maps_onto_policies() {
        let with = |value: &str| {
            let dump = Dump {
                hostname: "h".into(),
                strict_host_key_checking: value.into(),
                ..baseline()
            };
            let got = configured("h", &dump, &baseline(), &local()).unwrap();
            (got.host_key_policy, got.policy_warning)
        };
        assert_eq!(with("true"), (None, false));
        assert_eq!(with("ask"), (None, false));
        assert_eq!(with("accept-new"), (Some(HostKeyPolicy::AcceptNew), false));
        assert_eq!(with("false"), (Some(HostKeyPolicy::AcceptNew), true));
    }

    #[test]
    fn unknown_tokens_are_errors() {
        let dump = Dump {
            hostname: "h".into(),
            identity_files: vec!["~/k_%C".into()],
            ..baseline()
        };
        let message = configured("h", &dump, &baseline(), &local()).unwrap_err();
        assert!(
            message.starts_with("`%C` in \"/home/alice/k_%C\" is not supported"),
            "{message}"
        );
    }

    #[test]
    fn a_hanging_match_exec_is_killed_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        // A sleep this test alone runs, to check that nothing of it is left.
        let sleep = format!("sleep 600.{}", std::process::id());
        std::fs::write(&config, format!("Match exec \"{sleep}\"\n  Port 2\n")).unwrap();
        let resolver = Resolver::new("ssh", &config, true)
            .unwrap()
            .with_time_limit(Duration::from_millis(300));
        let err = resolver.configured("h").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "OpenSSH configuration {}: `ssh -G h` failed: it did not finish within 300ms \
                 (a `Match exec` command that hangs?)",
                config.display()
            )
        );
        let left = || {
            let out = Command::new("pgrep").args(["-f", &sleep]).output().unwrap();
            !out.stdout.is_empty()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while left() {
            assert!(
                std::time::Instant::now() < deadline,
                "{sleep} is still running"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn jump_chains() {
        assert_eq!(
            parse_jumps("ops@bast:2200, b2,ssh://u@[::1]:23").unwrap(),
            [
                HopSpec {
                    user: Some("ops".into()),
                    host: "bast".into(),
                    port: Some(2200)
                },
                HopSpec {
                    user: None,
                    host: "b2".into(),
                    port: None
                },
                HopSpec {
                    user: Some("u".into()),
                    host: "::1".into(),
                    port: Some(23)
                },
            ]
        );
        assert_eq!(parse_jumps("none").unwrap(), []);
        assert!(parse_jumps("a,,b").unwrap_err().contains("\"\""));
        assert!(parse_jumps("a:0").unwrap_err().contains("invalid port"));
        assert!(parse_jumps("@a").is_err());
    }
}
