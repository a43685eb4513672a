//! The host inventory (`hosts.toml`): parsing, nodeset expansion, defaults, validation and
//! the lookup order `-H`, `$DTS_HOSTS`, `./hosts.toml`, `$XDG_CONFIG_HOME/dts/hosts.toml`,
//! then the embedded default (the local machine alone).
//!
//! This module owns everything between the file on disk and the list of [`Host`]s the rest of
//! dts works with:
//!
//! - [`build`] makes a run's hosts from a [`Request`] (`-H`, `-F`, `-w`, `--slf`): it picks
//!   the file ([`locate`]) and reads it, or takes the sshlogins of `-w` / `--slf`
//!   ([`sshlogin`]) over `-H`'s `[defaults]`; with neither it returns [`local_default`], so
//!   dts works on a fresh machine with no configuration. Then every ssh host's name is
//!   resolved through the OpenSSH client configuration ([`ssh_config`], which asks
//!   `ssh -G`), as a layer *below* everything hosts.toml or the sshlogin writes.
//! - [`parse`] turns the text into hosts without any I/O (and without ssh_config). Every key is optional in
//!   `[defaults]` and in each `[[host]]` (except the host's `name`); a host's value replaces
//!   the default one, lists included. Names and addresses are nodesets ([`crate::nodeset`]).
//! - Paths (`identity`, `known_hosts`): `~` and `~/…` expand to [`Env::home`]; other
//!   relative paths are resolved against the directory of the inventory file, so an
//!   inventory can ship next to its keys.
//! - Every mistake is an error, never a silent default: unknown keys, wrong types, bad
//!   values, duplicate names. Errors are [`Located`] at the offending value (`file:line:col`).
//!
//! See `hosts.example.toml` at the top of the repository for every key.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Located, line_col};
use crate::nodeset;

pub mod ssh_config;
pub mod sshlogin;

use ssh_config::{Configured, HopSpec, Resolver, SshConfigError};

/// The SSH port used when neither the host nor `[defaults]` sets `port`.
pub const DEFAULT_PORT: u16 = 22;
/// The connect timeout used when neither the host nor `[defaults]` sets `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The system-wide known_hosts file, checked after the user's own.
pub const SYSTEM_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";
/// The inventory file name looked up in the current directory and the config directory.
pub const FILE_NAME: &str = "hosts.toml";

/// How tasks reach a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    Ssh,
    Local,
    /// A node of Slurm job `job`: tasks run as srun steps in it ([`crate::transport::slurm`]).
    Slurm {
        job: u64,
        /// One srun step per task instead of warm worker steps (`execution = "per-task"`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        per_task: bool,
    },
}

/// What to do with a host key that known_hosts does not list. A changed key is always refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    Strict,
    AcceptNew,
}

/// One host after nodeset expansion and defaults (serialisable: a run saves its hosts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Explicit identity files; empty means ssh-agent then the default key files.
    pub identities: Vec<PathBuf>,
    /// Files checked for host keys; `accept-new` appends to the first.
    pub known_hosts: Vec<PathBuf>,
    pub host_key_policy: HostKeyPolicy,
    /// Concurrent tasks; `None` means the host's core count, learnt by probing.
    pub slots: Option<u32>,
    pub weight: f64,
    pub labels: Vec<String>,
    pub transport: Transport,
    pub connect_timeout: Duration,
    /// Jump hosts to go through, first hop first (`jump =` or OpenSSH's ProxyJump).
    #[serde(default)]
    pub jump: Vec<JumpHop>,
    /// OpenSSH's ProxyCommand, `%` tokens unexpanded; never set together with `jump`.
    #[serde(default)]
    pub proxy_command: Option<String>,
    /// A user certificate to offer with the key (OpenSSH's CertificateFile).
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// Offer only the configured identities, not every key of the agent (IdentitiesOnly).
    #[serde(default)]
    pub identities_only: bool,
    /// Keepalive interval and count from ServerAliveInterval / ServerAliveCountMax.
    #[serde(default)]
    pub server_alive_interval: Option<Duration>,
    #[serde(default)]
    pub server_alive_count: Option<u32>,
    /// GPUs tasks may ask for with `--gpus` (`gpus =`), indexed 0..gpus.
    #[serde(default)]
    pub gpus: u32,
    /// Memory `--mem` requests may take, in bytes (`mem =`); `None`: the probed available.
    #[serde(default)]
    pub mem: Option<u64>,
    /// How tasks run on the host (`execution =`): a channel each, or warm workers.
    #[serde(default)]
    pub execution: Execution,
}

/// `execution = "warm" | "per-task"`: tasks sent to long-lived workers, one per slot (see
/// [`crate::transport::worker`]; the default), or one SSH channel (and sshd session) per
/// task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Execution {
    PerTask,
    #[default]
    Warm,
}

impl Host {
    /// How tasks run on this host: its `execution` (as `DTS_EXECUTION` overrides it) on an
    /// SSH host; per-task on the others.
    pub fn execution_mode(&self) -> Execution {
        static OVERRIDE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let forced = OVERRIDE.get_or_init(|| std::env::var("DTS_EXECUTION").ok());
        match self.transport {
            Transport::Ssh => self.execution.overridden(forced.as_deref()),
            Transport::Local | Transport::Slurm { .. } => Execution::PerTask,
        }
    }
}

impl Execution {
    /// `DTS_EXECUTION=warm|per-task` overrides every SSH host's setting (to run a whole
    /// suite in one mode); anything else is ignored.
    pub fn overridden(self, env_value: Option<&str>) -> Execution {
        match env_value {
            Some("warm") => Execution::Warm,
            Some("per-task") => Execution::PerTask,
            _ => self,
        }
    }
}

/// One hop of a jump chain, resolved through the OpenSSH configuration when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JumpHop {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// The hop's own IdentityFile, UserKnownHostsFile and CertificateFile from the OpenSSH
    /// configuration, as `ssh -J` uses them; empty: the target's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_hosts: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PathBuf>,
}

impl fmt::Display for JumpHop {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match (self.host.contains(':'), self.port) {
            (false, DEFAULT_PORT) => write!(f, "{}@{}", self.user, self.host),
            (false, port) => write!(f, "{}@{}:{port}", self.user, self.host),
            (true, port) => write!(f, "{}@[{}]:{port}", self.user, self.host),
        }
    }
}

/// Where the inventory came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// The file, made absolute against [`Env::cwd`].
    File(PathBuf),
    /// `-w LIST` on the command line.
    HostList,
    EmbeddedDefault,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub hosts: Vec<Host>,
    pub origin: Origin,
}

/// The parts of the process environment that inventory resolution reads.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub home: Option<PathBuf>,
    pub user: String,
    pub dts_hosts: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub cwd: PathBuf,
}

impl Env {
    /// Reads `HOME`, `USER` (else `LOGNAME`, else `root` when running as uid 0), `DTS_HOSTS`,
    /// `XDG_CONFIG_HOME` (ignored unless absolute, as the XDG spec says) and the current
    /// directory. Empty variables count as unset.
    pub fn from_process() -> Env {
        Env {
            home: env_path("HOME"),
            user: process_user(),
            dts_hosts: env_path("DTS_HOSTS"),
            xdg_config_home: env_path("XDG_CONFIG_HOME").filter(|path| path.is_absolute()),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }

    /// `$XDG_CONFIG_HOME`, else `$HOME/.config`.
    pub fn config_home(&self) -> Option<PathBuf> {
        self.xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|home| home.join(".config")))
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

fn process_user() -> String {
    let from_env = ["USER", "LOGNAME"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|user| !user.is_empty());
    // SAFETY: getuid has no preconditions and always succeeds.
    let is_root = unsafe { libc::getuid() } == 0;
    from_env.unwrap_or_else(|| {
        if is_root {
            "root".into()
        } else {
            String::new()
        }
    })
}

/// Finds and loads the inventory following the lookup order (with the OpenSSH
/// configuration, as [`build`] does; warnings are dropped).
pub fn resolve(explicit: Option<&Path>, env: &Env) -> Result<Inventory, Error> {
    let request = Request {
        hosts_file: explicit.map(Path::to_path_buf),
        ..Request::default()
    };
    Ok(build(&request, env)?.inventory)
}

/// What the command line asks for: `-H FILE`, `-F FILE`, `-w LIST`, `--slf FILE`.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub hosts_file: Option<PathBuf>,
    /// The OpenSSH client configuration (`-F`), over `[defaults] ssh_config`.
    pub ssh_config: Option<PathBuf>,
    /// Sshlogins replacing the inventory's hosts (`-w`).
    pub host_list: Option<String>,
    /// A file of sshlogins replacing the inventory's hosts (`--slf`).
    pub login_file: Option<PathBuf>,
}

/// The inventory, and what building it found worth telling the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub inventory: Inventory,
    pub warnings: Vec<String>,
}

/// Builds the hosts for a run: the inventory file (or `-w` / `--slf`, with `[defaults]`
/// from `-H`), then each ssh host's name resolved through the OpenSSH configuration
/// (below every key hosts.toml writes).
pub fn build(request: &Request, env: &Env) -> Result<Built, Error> {
    let draft = draft(request, env)?;
    let resolver = ssh_resolver(request, &draft, env)?;
    Ok(draft.finish(resolver.as_ref(), env)?)
}

/// Checks the key files written in the inventory the request uses ([`crate::identity`]),
/// so that a missing or unprotected one is a configuration error before anything
/// connects. Those from the OpenSSH configuration are left to the connection, which skips
/// a missing one as `ssh` does.
pub fn check_identity_files(request: &Request, env: &Env) -> Result<(), Error> {
    let file = match request.host_list.is_some() || request.login_file.is_some() {
        true => request.hosts_file.clone(),
        false => locate(request.hosts_file.as_deref(), env),
    };
    match file {
        Some(path) => load(&path, env).map(drop),
        None => Ok(()),
    }
}

/// The file the lookup order picks, or `None` for the embedded default: `explicit` (`-H`),
/// else `$DTS_HOSTS` (both used even if missing, so that reading them reports the error),
/// else `./hosts.toml` if it exists, else `$XDG_CONFIG_HOME/dts/hosts.toml` if it exists.
/// A relative result is relative to [`Env::cwd`].
pub fn locate(explicit: Option<&Path>, env: &Env) -> Option<PathBuf> {
    if let Some(path) = explicit.or(env.dts_hosts.as_deref()) {
        return Some(path.to_path_buf());
    }
    if env.cwd.join(FILE_NAME).exists() {
        return Some(PathBuf::from(FILE_NAME));
    }
    let user_file = env.config_home()?.join("dts").join(FILE_NAME);
    user_file.exists().then_some(user_file)
}

/// Reads and parses the inventory at `path` (relative to [`Env::cwd`] unless absolute),
/// without the OpenSSH configuration, then checks the identity files it names
/// ([`crate::identity`]). Errors name `path` as given.
pub fn load(path: &Path, env: &Env) -> Result<Inventory, Error> {
    let text = read(path, env)?;
    let inventory = parse(path, &text, env)?;
    crate::identity::check(&inventory.hosts, path, &text)?;
    Ok(inventory)
}

fn read(path: &Path, env: &Env) -> Result<String, Error> {
    std::fs::read_to_string(env.cwd.join(path)).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

/// The embedded default: the local machine alone, one slot per core.
pub fn local_default(env: &Env) -> Inventory {
    Inventory {
        hosts: vec![
            local_entry()
                .settings
                .into_host("localhost", Vec::new(), env),
        ],
        origin: Origin::EmbeddedDefault,
    }
}

fn local_entry() -> Entry {
    Entry {
        name: "localhost".into(),
        settings: Partial {
            transport: Some(Transport::Local),
            ..Partial::default()
        },
    }
}

/// Parses inventory `text`, the contents of `path`, without touching the file system
/// (and so without the OpenSSH configuration). `path` names the file in errors and anchors
/// relative paths; `env` supplies the home directory, the default user and the current
/// directory.
pub fn parse(path: &Path, text: &str, env: &Env) -> Result<Inventory, Located> {
    let (draft, _) = parse_draft(path, text, env, true)?;
    let cx = Context::new(path, text, env);
    match draft.finish(None, env) {
        Ok(built) => Ok(built.inventory),
        Err(err) => Err(cx.error(0, err.to_string())),
    }
}

// ---------------------------------------------------------------------------------------
// Drafts: hosts as written, before the OpenSSH configuration fills in what they leave out.

/// The hosts of a run as hosts.toml or the command line write them.
#[derive(Debug, Clone)]
struct Draft {
    entries: Vec<Entry>,
    ssh_config: SshConfigSetting,
    origin: Origin,
}

/// One host as written: its name and its settings over `[defaults]`.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    settings: Partial,
}

impl Entry {
    fn is_ssh(&self) -> bool {
        self.settings.transport.unwrap_or(Transport::Ssh) == Transport::Ssh
    }
}

/// `[defaults] ssh_config`.
#[derive(Debug, Clone, PartialEq)]
enum SshConfigSetting {
    Unset,
    Off,
    File(PathBuf),
}

/// Parses hosts.toml into a draft and its `[defaults]`; `need_hosts` false when the hosts
/// come from the command line and only `[defaults]` is used.
fn parse_draft(
    path: &Path,
    text: &str,
    env: &Env,
    need_hosts: bool,
) -> Result<(Draft, Partial), Located> {
    let raw: RawFile = toml::from_str(text).map_err(|err| Located::from_toml(path, text, &err))?;
    let cx = Context::new(path, text, env);
    let (defaults, ssh_config) = match &raw.defaults {
        Some(settings) => (cx.settings(settings)?, cx.ssh_config(settings)?),
        None => (Partial::default(), SshConfigSetting::Unset),
    };
    let tables = raw.host.map(|tables| tables.0).unwrap_or_default();
    if tables.is_empty() && need_hosts {
        return Err(cx.error(0, "no hosts defined: add a [[host]] table with a `name`"));
    }
    let mut entries = Vec::new();
    let mut seen = HashMap::new();
    for (index, table) in tables.iter().enumerate() {
        let group = cx.host_group(table, &defaults)?;
        cx.check_duplicates(index, table.get_ref(), &group, &mut seen)?;
        entries.extend(group);
    }
    let draft = Draft {
        entries,
        ssh_config,
        origin: Origin::File(env.cwd.join(path)),
    };
    Ok((draft, defaults))
}

/// The draft the request describes: sshlogins over `-H`'s `[defaults]`, or the inventory
/// the lookup order finds, or the embedded default.
fn draft(request: &Request, env: &Env) -> Result<Draft, Error> {
    let logins = logins(request, env)?;
    if let Some((logins, origin)) = logins {
        let (ssh_config, defaults) = match &request.hosts_file {
            Some(path) => {
                let (draft, defaults) = parse_draft(path, &read(path, env)?, env, false)?;
                (draft.ssh_config, defaults)
            }
            None => (SshConfigSetting::Unset, Partial::default()),
        };
        let entries = logins
            .into_iter()
            .map(|login| login_entry(login, &defaults))
            .collect();
        return Ok(Draft {
            entries,
            ssh_config,
            origin,
        });
    }
    match locate(request.hosts_file.as_deref(), env) {
        Some(path) => Ok(parse_draft(&path, &read(&path, env)?, env, true)?.0),
        None => Ok(Draft {
            entries: vec![local_entry()],
            ssh_config: SshConfigSetting::Off,
            origin: Origin::EmbeddedDefault,
        }),
    }
}

/// The sshlogins of `-w` or `--slf`, checked (no host twice), with where they came from.
fn logins(request: &Request, env: &Env) -> Result<Option<(Vec<sshlogin::Login>, Origin)>, Error> {
    if let Some(list) = &request.host_list {
        let logins = sshlogin::parse_list(list).map_err(|err| {
            let (_, col) = line_col(list, err.offset);
            Error::Usage(format!("-w \"{list}\": column {col}: {}", err.message))
        })?;
        let logins = no_duplicates(logins, |at, message| {
            let (_, col) = line_col(list, at);
            Error::Usage(format!("-w \"{list}\": column {col}: {message}"))
        })?;
        return Ok(Some((logins, Origin::HostList)));
    }
    let Some(path) = &request.login_file else {
        return Ok(None);
    };
    let text = read(path, env)?;
    let located = |at, message: String| Error::from(Located::at_offset(path, &text, at, message));
    let logins = sshlogin::parse_file(&text).map_err(|err| located(err.offset, err.message))?;
    let logins = no_duplicates(logins, located)?;
    Ok(Some((logins, Origin::File(env.cwd.join(path)))))
}

fn no_duplicates(
    logins: Vec<sshlogin::Login>,
    error: impl Fn(usize, String) -> Error,
) -> Result<Vec<sshlogin::Login>, Error> {
    let mut seen = std::collections::HashSet::new();
    for login in &logins {
        if !seen.insert(login.host.as_str()) {
            return Err(error(
                login.at,
                format!(
                    "host \"{}\" is listed twice: give each host once, with its slots as N/",
                    login.host
                ),
            ));
        }
    }
    Ok(logins)
}

/// One sshlogin over `[defaults]`: what it writes (user, port, slots, groups) wins.
fn login_entry(login: sshlogin::Login, defaults: &Partial) -> Entry {
    let settings = Partial {
        user: login.user,
        port: login.port,
        slots: login.slots,
        labels: (!login.groups.is_empty()).then_some(login.groups),
        transport: login.local.then_some(Transport::Local),
        ..Partial::default()
    };
    Entry {
        name: login.host,
        settings: settings.over(defaults),
    }
}

/// The OpenSSH configuration this run reads, if any: `-F`, else `[defaults] ssh_config`,
/// else `~/.ssh/config` when it exists. None when no host goes over ssh.
fn ssh_resolver(request: &Request, draft: &Draft, env: &Env) -> Result<Option<Resolver>, Error> {
    if !draft.entries.iter().any(Entry::is_ssh) {
        return Ok(None);
    }
    let (file, pass_file) = match (&request.ssh_config, &draft.ssh_config) {
        (Some(flag), _) => (env.cwd.join(flag), true),
        (None, SshConfigSetting::Off) => return Ok(None),
        (None, SshConfigSetting::File(path)) => (path.clone(), true),
        (None, SshConfigSetting::Unset) => {
            let Some(home) = &env.home else {
                return Ok(None);
            };
            let file = home.join(".ssh/config");
            if !file.exists() {
                return Ok(None);
            }
            // ssh reads this file by itself (and the system-wide one) when HOME is the
            // account's home; otherwise it must be named.
            let own = ssh_config::account_home().is_some_and(|account| &account == home);
            (file, !own)
        }
    };
    Ok(Some(Resolver::new(SSH_PROGRAM, &file, pass_file)?))
}

/// The OpenSSH client asked for the configuration (`ssh -G`).
pub const SSH_PROGRAM: &str = "ssh";

impl Draft {
    /// Hosts from the entries, each filled in from the OpenSSH configuration (when
    /// `resolver` is given) below what the entry writes, then from built-in defaults.
    fn finish(self, resolver: Option<&Resolver>, env: &Env) -> Result<Built, SshConfigError> {
        let ssh_entries: Vec<&Entry> = self.entries.iter().filter(|e| e.is_ssh()).collect();
        let ssh_names: Vec<&str> = ssh_entries.iter().map(|e| e.name.as_str()).collect();
        let configured = match resolver {
            Some(resolver) => configure_all(resolver, &ssh_names)?,
            None => HashMap::new(),
        };
        let mut routes = HashMap::new();
        for entry in ssh_entries {
            let chain = jump_chain(entry, configured.get(entry.name.as_str()), resolver)?;
            routes.insert(entry.name.as_str(), chain);
        }
        let hops = resolve_hops(routes, resolver, env)?;
        let hosts = self
            .entries
            .iter()
            .map(|entry| {
                let name = entry.name.as_str();
                let layer = configured
                    .get(name)
                    .map(Partial::from_ssh)
                    .unwrap_or_default();
                let route = hops.get(name).cloned().unwrap_or_default();
                let host = entry
                    .settings
                    .clone()
                    .over(&layer)
                    .into_host(name, route, env);
                if configured.contains_key(name) {
                    tracing::debug!(
                        "{name}: {}@{}:{} after the OpenSSH configuration (keys {:?}, jump {:?})",
                        host.user,
                        host.address,
                        host.port,
                        host.identities,
                        host.jump
                    );
                }
                host
            })
            .collect();
        let warnings = policy_warnings(&self.entries, &configured, resolver);
        Ok(Built {
            inventory: Inventory {
                hosts,
                origin: self.origin,
            },
            warnings,
        })
    }
}

/// What the OpenSSH configuration sets for each name (one `ssh -G` per distinct name).
fn configure_all<'a>(
    resolver: &Resolver,
    names: &[&'a str],
) -> Result<HashMap<&'a str, Configured>, SshConfigError> {
    resolver.prefetch(names)?;
    names
        .iter()
        .map(|&name| Ok((name, resolver.configured(name)?)))
        .collect()
}

/// Each host's hops resolved (all hop names queried together first).
fn resolve_hops<'a>(
    routes: HashMap<&'a str, Vec<HopSpec>>,
    resolver: Option<&Resolver>,
    env: &Env,
) -> Result<HashMap<&'a str, Vec<JumpHop>>, SshConfigError> {
    if let Some(resolver) = resolver {
        let names: Vec<&str> = routes
            .values()
            .flatten()
            .map(|hop| hop.host.as_str())
            .collect();
        resolver.prefetch(&names)?;
    }
    routes
        .into_iter()
        .map(|(name, chain)| {
            let hops = chain
                .iter()
                .map(|hop| resolve_hop(hop, resolver, env))
                .collect::<Result<_, _>>()?;
            Ok((name, hops))
        })
        .collect()
}

/// One warning naming every host whose `StrictHostKeyChecking no` was read as accept-new
/// (hosts whose hosts.toml sets `host_key_policy` are not affected).
fn policy_warnings(
    entries: &[Entry],
    configured: &HashMap<&str, Configured>,
    resolver: Option<&Resolver>,
) -> Vec<String> {
    let warned: Vec<&str> = entries
        .iter()
        .filter(|entry| entry.settings.host_key_policy.is_none())
        .filter(|entry| {
            configured
                .get(entry.name.as_str())
                .is_some_and(|c| c.policy_warning)
        })
        .map(|entry| entry.name.as_str())
        .collect();
    match (warned.is_empty(), resolver) {
        (false, Some(resolver)) => vec![format!(
            "{}: StrictHostKeyChecking no in {} is read as accept-new: unknown host keys \
             are added, a changed key is still refused",
            nodeset::fold(&warned),
            resolver.file().display()
        )],
        _ => Vec::new(),
    }
}

/// The hops an entry goes through: its own `jump` (which wins), else OpenSSH's ProxyJump.
fn jump_chain(
    entry: &Entry,
    configured: Option<&Configured>,
    resolver: Option<&Resolver>,
) -> Result<Vec<HopSpec>, SshConfigError> {
    if let Some(hops) = &entry.settings.jump {
        return Ok(hops.clone());
    }
    let (Some(text), Some(resolver)) = (configured.and_then(|c| c.proxy_jump.as_ref()), resolver)
    else {
        return Ok(Vec::new());
    };
    ssh_config::parse_jumps(text).map_err(|message| SshConfigError::Host {
        file: resolver.file().to_path_buf(),
        host: entry.name.clone(),
        message,
    })
}

/// A hop with what it leaves out taken from the OpenSSH configuration for its name (as
/// ssh does for a jump host), else the local user and port 22.
fn resolve_hop(
    hop: &HopSpec,
    resolver: Option<&Resolver>,
    env: &Env,
) -> Result<JumpHop, SshConfigError> {
    let configured = resolver.map(|r| r.configured(&hop.host)).transpose()?;
    let configured = configured.unwrap_or_default();
    Ok(JumpHop {
        user: hop
            .user
            .clone()
            .or(configured.user)
            .unwrap_or_else(|| env.user.clone()),
        host: configured.address.unwrap_or_else(|| hop.host.clone()),
        port: hop.port.or(configured.port).unwrap_or(DEFAULT_PORT),
        identities: configured.identities.unwrap_or_default(),
        known_hosts: configured.known_hosts.unwrap_or_default(),
        certificate: configured.certificate,
    })
}

// ---------------------------------------------------------------------------------------
// The file as written. Every key is spanned so that validation can point at its value.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    defaults: Option<RawSettings>,
    host: Option<HostTables>,
}

/// The keys allowed in `[defaults]`; `[[host]]` repeats them (serde cannot flatten them
/// into [`RawHost`] and still reject unknown keys).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    user: Option<Spanned<String>>,
    port: Option<Spanned<Int>>,
    identity: Option<Spanned<Strings>>,
    known_hosts: Option<Spanned<Strings>>,
    host_key_policy: Option<Spanned<String>>,
    slots: Option<Spanned<Int>>,
    connect_timeout: Option<Spanned<DurationText>>,
    weight: Option<Spanned<Number>>,
    labels: Option<Spanned<Strings>>,
    transport: Option<Spanned<String>>,
    jump: Option<Spanned<String>>,
    gpus: Option<Spanned<Int>>,
    mem: Option<Spanned<toml::Value>>,
    execution: Option<Spanned<String>>,
    /// `[defaults]` only: the OpenSSH client configuration file, or `false`.
    ssh_config: Option<Spanned<SshConfigValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    port: Option<Spanned<Int>>,
    identity: Option<Spanned<Strings>>,
    known_hosts: Option<Spanned<Strings>>,
    host_key_policy: Option<Spanned<String>>,
    slots: Option<Spanned<Int>>,
    connect_timeout: Option<Spanned<DurationText>>,
    weight: Option<Spanned<Number>>,
    labels: Option<Spanned<Strings>>,
    transport: Option<Spanned<String>>,
    jump: Option<Spanned<String>>,
    gpus: Option<Spanned<Int>>,
    mem: Option<Spanned<toml::Value>>,
    execution: Option<Spanned<String>>,
}

impl RawHost {
    /// The host's own settings, in the shape `[defaults]` has.
    fn settings(&self) -> RawSettings {
        RawSettings {
            user: self.user.clone(),
            port: self.port.clone(),
            identity: self.identity.clone(),
            known_hosts: self.known_hosts.clone(),
            host_key_policy: self.host_key_policy.clone(),
            slots: self.slots.clone(),
            connect_timeout: self.connect_timeout.clone(),
            weight: self.weight.clone(),
            labels: self.labels.clone(),
            transport: self.transport.clone(),
            jump: self.jump.clone(),
            gpus: self.gpus.clone(),
            mem: self.mem.clone(),
            execution: self.execution.clone(),
            ssh_config: None,
        }
    }
}

/// `ssh_config = "FILE"` or `ssh_config = false`.
#[derive(Clone)]
enum SshConfigValue {
    File(String),
    Off,
    /// `true`: refused with a message, since the default already reads the user's file.
    On,
}

impl<'de> Deserialize<'de> for SshConfigValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl Visitor<'_> for ValueVisitor {
            type Value = SshConfigValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a file name or `false`")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<SshConfigValue, E> {
                Ok(SshConfigValue::File(value.to_string()))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<SshConfigValue, E> {
                Ok(if value {
                    SshConfigValue::On
                } else {
                    SshConfigValue::Off
                })
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// The `[[host]]` array; a custom visitor so that `[host]` gets a helpful message.
struct HostTables(Vec<Spanned<RawHost>>);

impl<'de> Deserialize<'de> for HostTables {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TablesVisitor;
        impl<'de> Visitor<'de> for TablesVisitor {
            type Value = HostTables;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("[[host]] tables (write `[[host]]`, not `[host]`)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HostTables, A::Error> {
                let mut tables = Vec::new();
                while let Some(table) = seq.next_element()? {
                    tables.push(table);
                }
                Ok(HostTables(tables))
            }
        }
        deserializer.deserialize_seq(TablesVisitor)
    }
}

/// An integer of any size; range checks happen in validation, with the key's name.
#[derive(Clone, Copy)]
struct Int(i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl Visitor<'_> for IntVisitor {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Int, E> {
                Ok(Int(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Int, E> {
                i64::try_from(value)
                    .map(Int)
                    .map_err(|_| E::custom(format!("integer {value} is too large")))
            }
        }
        deserializer.deserialize_i64(IntVisitor)
    }
}

/// A number written as an integer or a float.
#[derive(Clone, Copy)]
struct Number(f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Number, E> {
                Ok(Number(value))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Number, E> {
                Ok(Number(value as f64))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Number, E> {
                Ok(Number(value as f64))
            }
        }
        deserializer.deserialize_f64(NumberVisitor)
    }
}

/// A duration string such as `"10s"`; parsed during validation.
#[derive(Clone)]
struct DurationText(String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string such as \"10s\" or \"1m 30s\"")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<DurationText, E> {
                Ok(DurationText(value.to_string()))
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

/// A string or an array of strings (`identity`, `known_hosts`, `labels`).
#[derive(Clone)]
enum Strings {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl Strings {
    /// Each string with its span; a lone string has the span of the whole value.
    fn items(&self, whole: Range<usize>) -> Vec<(&str, Range<usize>)> {
        match self {
            Strings::One(value) => vec![(value.as_str(), whole)],
            Strings::Many(values) => values
                .iter()
                .map(|value| (value.get_ref().as_str(), value.span()))
                .collect(),
        }
    }
}

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringsVisitor;
        impl<'de> Visitor<'de> for StringsVisitor {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Strings, E> {
                Ok(Strings::One(value.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element()? {
                    values.push(value);
                }
                Ok(Strings::Many(values))
            }
        }
        deserializer.deserialize_any(StringsVisitor)
    }
}

// ---------------------------------------------------------------------------------------
// Validated settings: one layer (`[defaults]` or a host) with its keys checked.

/// Checked values of one settings layer; `None` means the key was not written.
#[derive(Debug, Clone, Default)]
struct Partial {
    address: Option<String>,
    user: Option<String>,
    port: Option<u16>,
    identities: Option<Vec<PathBuf>>,
    known_hosts: Option<Vec<PathBuf>>,
    host_key_policy: Option<HostKeyPolicy>,
    slots: Option<u32>,
    connect_timeout: Option<Duration>,
    weight: Option<f64>,
    labels: Option<Vec<String>>,
    transport: Option<Transport>,
    jump: Option<Vec<HopSpec>>,
    proxy_command: Option<String>,
    certificate: Option<PathBuf>,
    identities_only: Option<bool>,
    server_alive_interval: Option<Duration>,
    server_alive_count: Option<u32>,
    gpus: Option<u32>,
    mem: Option<u64>,
    execution: Option<Execution>,
}

impl Partial {
    /// This layer's values, falling back to `base` key by key.
    fn over(self, base: &Partial) -> Partial {
        // A jump written here replaces the route below, ProxyCommand included.
        let proxy_command = match self.jump {
            Some(_) => self.proxy_command,
            None => self.proxy_command.or_else(|| base.proxy_command.clone()),
        };
        Partial {
            address: self.address.or_else(|| base.address.clone()),
            user: self.user.or_else(|| base.user.clone()),
            port: self.port.or(base.port),
            identities: self.identities.or_else(|| base.identities.clone()),
            known_hosts: self.known_hosts.or_else(|| base.known_hosts.clone()),
            host_key_policy: self.host_key_policy.or(base.host_key_policy),
            slots: self.slots.or(base.slots),
            connect_timeout: self.connect_timeout.or(base.connect_timeout),
            weight: self.weight.or(base.weight),
            labels: self.labels.or_else(|| base.labels.clone()),
            transport: self.transport.or(base.transport),
            jump: self.jump.or_else(|| base.jump.clone()),
            proxy_command,
            certificate: self.certificate.or_else(|| base.certificate.clone()),
            identities_only: self.identities_only.or(base.identities_only),
            server_alive_interval: self.server_alive_interval.or(base.server_alive_interval),
            server_alive_count: self.server_alive_count.or(base.server_alive_count),
            gpus: self.gpus.or(base.gpus),
            mem: self.mem.or(base.mem),
            execution: self.execution.or(base.execution),
        }
    }

    /// The layer an OpenSSH configuration gives a host (below everything hosts.toml says).
    fn from_ssh(configured: &Configured) -> Partial {
        Partial {
            address: configured.address.clone(),
            user: configured.user.clone(),
            port: configured.port,
            identities: configured.identities.clone(),
            known_hosts: configured.known_hosts.clone(),
            host_key_policy: configured.host_key_policy,
            connect_timeout: configured.connect_timeout,
            // ProxyJump is parsed and resolved by the caller, below a `jump` written here.
            proxy_command: configured.proxy_command.clone(),
            certificate: configured.certificate.clone(),
            identities_only: configured.identities_only,
            server_alive_interval: configured.server_alive_interval,
            server_alive_count: configured.server_alive_count,
            ..Partial::default()
        }
    }

    /// A host with these settings, filling what is still unset with the built-in defaults.
    fn into_host(self, name: &str, jump: Vec<JumpHop>, env: &Env) -> Host {
        Host {
            name: name.to_string(),
            address: self.address.unwrap_or_else(|| name.to_string()),
            port: self.port.unwrap_or(DEFAULT_PORT),
            user: self.user.unwrap_or_else(|| env.user.clone()),
            identities: self.identities.unwrap_or_default(),
            known_hosts: self.known_hosts.unwrap_or_else(|| default_known_hosts(env)),
            host_key_policy: self.host_key_policy.unwrap_or(HostKeyPolicy::Strict),
            slots: self.slots,
            weight: self.weight.unwrap_or(1.0),
            labels: self.labels.unwrap_or_default(),
            transport: self.transport.unwrap_or(Transport::Ssh),
            connect_timeout: self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            proxy_command: if jump.is_empty() {
                self.proxy_command
            } else {
                None
            },
            jump,
            certificate: self.certificate,
            identities_only: self.identities_only.unwrap_or(false),
            server_alive_interval: self.server_alive_interval,
            server_alive_count: self.server_alive_count,
            gpus: self.gpus.unwrap_or(0),
            mem: self.mem,
            execution: self.execution.unwrap_or_default(),
        }
    }
}

/// `~/.ssh/known_hosts` (when the home directory is known), then the system file.
fn default_known_hosts(env: &Env) -> Vec<PathBuf> {
    let user_file = env.home.as_ref().map(|home| home.join(".ssh/known_hosts"));
    user_file
        .into_iter()
        .chain([PathBuf::from(SYSTEM_KNOWN_HOSTS)])
        .collect()
}

/// Applies `check` to an optional spanned value.
fn checked<T, U>(
    value: &Option<Spanned<T>>,
    check: impl FnOnce(&T, Range<usize>) -> Result<U, Located>,
) -> Result<Option<U>, Located> {
    value
        .as_ref()
        .map(|value| check(value.get_ref(), value.span()))
        .transpose()
}

/// What validation needs to know about the file being parsed.
struct Context<'a> {
    path: &'a Path,
    text: &'a str,
    env: &'a Env,
    /// The directory relative paths are resolved against.
    base: PathBuf,
}

impl<'a> Context<'a> {
    fn new(path: &'a Path, text: &'a str, env: &'a Env) -> Self {
        let base = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => env.cwd.join(dir),
            _ => env.cwd.clone(),
        };
        Context {
            path,
            text,
            env,
            base,
        }
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> Located {
        Located::at_offset(self.path, self.text, offset, message)
    }

    fn settings(&self, raw: &RawSettings) -> Result<Partial, Located> {
        Ok(Partial {
            user: checked(&raw.user, |user, span| self.user(user, span))?,
            port: checked(&raw.port, |port, span| self.port(*port, span))?,
            identities: checked(&raw.identity, |paths, span| self.paths(paths, span))?,
            known_hosts: checked(&raw.known_hosts, |paths, span| {
                self.known_hosts(paths, span)
            })?,
            host_key_policy: checked(&raw.host_key_policy, |policy, span| {
                self.host_key_policy(policy, span)
            })?,
            slots: checked(&raw.slots, |slots, span| self.slots(*slots, span))?,
            connect_timeout: checked(&raw.connect_timeout, |text, span| {
                self.connect_timeout(text, span)
            })?,
            weight: checked(&raw.weight, |weight, span| self.weight(*weight, span))?,
            labels: checked(&raw.labels, |labels, span| self.labels(labels, span))?,
            transport: checked(&raw.transport, |name, span| self.transport(name, span))?,
            jump: checked(&raw.jump, |text, span| self.jump(text, span))?,
            gpus: checked(&raw.gpus, |gpus, span| self.gpus(*gpus, span))?,
            mem: checked(&raw.mem, |mem, span| self.mem(mem, span))?,
            execution: checked(&raw.execution, |text, span| self.execution(text, span))?,
            ..Partial::default()
        })
    }

    fn jump(&self, text: &str, span: Range<usize>) -> Result<Vec<HopSpec>, Located> {
        ssh_config::parse_jumps(text).map_err(|message| self.error(span.start, message))
    }

    /// `[defaults] ssh_config`: a file (resolved like the other paths) or `false`.
    fn ssh_config(&self, raw: &RawSettings) -> Result<SshConfigSetting, Located> {
        let Some(value) = &raw.ssh_config else {
            return Ok(SshConfigSetting::Unset);
        };
        match value.get_ref() {
            SshConfigValue::Off => Ok(SshConfigSetting::Off),
            SshConfigValue::File(path) => {
                Ok(SshConfigSetting::File(self.path(path, value.span())?))
            }
            SshConfigValue::On => Err(self.error(
                value.span().start,
                "ssh_config = true is the default (~/.ssh/config when it exists): name a file, \
                 or write false to read none",
            )),
        }
    }

    fn user(&self, user: &str, span: Range<usize>) -> Result<String, Located> {
        if user.is_empty() {
            return Err(self.error(span.start, "user must not be empty"));
        }
        Ok(user.to_string())
    }

    fn port(&self, Int(port): Int, span: Range<usize>) -> Result<u16, Located> {
        u16::try_from(port)
            .ok()
            .filter(|&port| port != 0)
            .ok_or_else(|| {
                self.error(
                    span.start,
                    format!("port must be between 1 and 65535, got {port}"),
                )
            })
    }

    /// `execution = "warm" | "per-task"`.
    fn execution(&self, text: &str, span: Range<usize>) -> Result<Execution, Located> {
        match text {
            "warm" => Ok(Execution::Warm),
            "per-task" => Ok(Execution::PerTask),
            other => Err(self.error(
                span.start,
                format!("execution must be \"warm\" or \"per-task\", got \"{other}\""),
            )),
        }
    }

    /// `gpus = N`: 0 or more.
    fn gpus(&self, Int(gpus): Int, span: Range<usize>) -> Result<u32, Located> {
        u32::try_from(gpus).map_err(|_| {
            self.error(
                span.start,
                format!("gpus must be a count from 0, got {gpus}"),
            )
        })
    }

    /// `mem = "64G"` or `mem = BYTES`.
    fn mem(&self, mem: &toml::Value, span: Range<usize>) -> Result<u64, Located> {
        let text = match mem {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        crate::placement::gate::parse_size(&text)
            .map_err(|message| self.error(span.start, format!("invalid mem '{text}': {message}")))
    }

    fn slots(&self, Int(slots): Int, span: Range<usize>) -> Result<u32, Located> {
        if slots < 1 {
            return Err(self.error(
                span.start,
                format!(
                    "slots must be at least 1, got {slots} \
                     (leave `slots` out to use the host's core count)"
                ),
            ));
        }
        u32::try_from(slots)
            .map_err(|_| self.error(span.start, format!("slots = {slots} is too large")))
    }

    fn weight(&self, Number(weight): Number, span: Range<usize>) -> Result<f64, Located> {
        if weight.is_finite() && weight > 0.0 {
            return Ok(weight);
        }
        Err(self.error(
            span.start,
            format!("weight must be a finite number greater than 0, got {weight}"),
        ))
    }

    fn connect_timeout(
        &self,
        DurationText(text): &DurationText,
        span: Range<usize>,
    ) -> Result<Duration, Located> {
        let timeout = humantime::parse_duration(text).map_err(|err| {
            self.error(
                span.start,
                format!(
                    "invalid connect_timeout \"{text}\": {err}; \
                     expected a duration such as \"10s\" or \"1m 30s\""
                ),
            )
        })?;
        if timeout.is_zero() {
            return Err(self.error(span.start, "connect_timeout must be greater than 0"));
        }
        Ok(timeout)
    }

    fn host_key_policy(&self, policy: &str, span: Range<usize>) -> Result<HostKeyPolicy, Located> {
        match policy {
            "strict" => Ok(HostKeyPolicy::Strict),
            "accept-new" => Ok(HostKeyPolicy::AcceptNew),
            other => Err(self.error(
                span.start,
                format!(
                    "unsupported host_key_policy \"{other}\": dts never accepts any host key; \
                     expected \"strict\" (the default) or \"accept-new\""
                ),
            )),
        }
    }

    fn transport(&self, name: &str, span: Range<usize>) -> Result<Transport, Located> {
        match name {
            "ssh" => Ok(Transport::Ssh),
            "local" => Ok(Transport::Local),
            other => Err(self.error(
                span.start,
                format!("unknown transport \"{other}\": expected \"ssh\" or \"local\""),
            )),
        }
    }

    fn labels(&self, labels: &Strings, span: Range<usize>) -> Result<Vec<String>, Located> {
        let mut checked: Vec<String> = Vec::new();
        for (label, span) in labels.items(span) {
            if label.is_empty() || label.contains(char::is_whitespace) {
                return Err(self.error(
                    span.start,
                    format!(
                        "invalid label \"{label}\": labels must be non-empty words \
                         without whitespace, such as \"gpu\""
                    ),
                ));
            }
            if !checked.iter().any(|seen| seen == label) {
                checked.push(label.to_string());
            }
        }
        Ok(checked)
    }

    fn known_hosts(&self, paths: &Strings, span: Range<usize>) -> Result<Vec<PathBuf>, Located> {
        let files = self.paths(paths, span.clone())?;
        if files.is_empty() {
            return Err(self.error(span.start, "known_hosts must list at least one file"));
        }
        Ok(files)
    }

    fn paths(&self, paths: &Strings, span: Range<usize>) -> Result<Vec<PathBuf>, Located> {
        paths
            .items(span)
            .into_iter()
            .map(|(path, span)| self.path(path, span))
            .collect()
    }

    /// Expands `~` and resolves a relative path against the inventory's directory.
    fn path(&self, path: &str, span: Range<usize>) -> Result<PathBuf, Located> {
        if path.is_empty() {
            return Err(self.error(span.start, "path must not be empty"));
        }
        let Some(rest) = path.strip_prefix('~') else {
            return Ok(self.base.join(path));
        };
        if !rest.is_empty() && !rest.starts_with('/') {
            return Err(self.error(
                span.start,
                format!("cannot expand \"{path}\": only `~` and `~/…` are supported; write the full path"),
            ));
        }
        let home = self.env.home.as_ref().ok_or_else(|| {
            self.error(
                span.start,
                format!("cannot expand \"{path}\": HOME is not set"),
            )
        })?;
        Ok(home.join(rest.trim_start_matches('/')))
    }

    /// Expands one `[[host]]` table into its hosts.
    fn host_group(
        &self,
        table: &Spanned<RawHost>,
        defaults: &Partial,
    ) -> Result<Vec<Entry>, Located> {
        let raw = table.get_ref();
        let name = raw.name.as_ref().ok_or_else(|| {
            self.error(
                table.span().start,
                "missing `name` in [[host]]: every host needs one, such as name = \"node01\"",
            )
        })?;
        let names = self.nodeset("name", name)?;
        let addresses = self.addresses(raw.address.as_ref(), name, &names)?;
        let settings = self.settings(&raw.settings())?.over(defaults);
        let transport = settings.transport.unwrap_or(Transport::Ssh);
        let no_user = settings.user.is_none() && self.env.user.is_empty();
        if transport == Transport::Ssh && no_user {
            return Err(self.error(
                name.span().start,
                "no user for this host: set `user` here or in [defaults] \
                 (USER and LOGNAME are not set)",
            ));
        }
        Ok(names
            .iter()
            .enumerate()
            .map(|(index, name)| Entry {
                name: name.clone(),
                settings: Partial {
                    address: addresses.as_ref().map(|all| all[index].clone()),
                    ..settings.clone()
                },
            })
            .collect())
    }

    /// One address per name: the expanded `address`, or the same one for all; `None`
    /// when the table writes no address.
    fn addresses(
        &self,
        address: Option<&Spanned<String>>,
        name: &Spanned<String>,
        names: &[String],
    ) -> Result<Option<Vec<String>>, Located> {
        let Some(address) = address else {
            return Ok(None);
        };
        let addresses = self.nodeset("address", address)?;
        match addresses.len() {
            1 => Ok(Some(vec![addresses[0].clone(); names.len()])),
            n if n == names.len() => Ok(Some(addresses)),
            n => Err(self.error(
                address.span().start,
                format!(
                    "address \"{}\" expands to {n} addresses but name \"{}\" expands to {} \
                     names: give one address per name, or a single address for all",
                    address.get_ref(),
                    name.get_ref(),
                    names.len()
                ),
            )),
        }
    }

    /// Expands the nodeset in string value `value` of key `key`.
    fn nodeset(&self, key: &str, value: &Spanned<String>) -> Result<Vec<String>, Located> {
        let span = value.span();
        if value.get_ref().is_empty() {
            return Err(self.error(span.start, format!("{key} must not be empty")));
        }
        nodeset::expand(value.get_ref()).map_err(|err| {
            let offset = self.offset_in_string(span, value.get_ref(), err.offset);
            self.error(
                offset,
                format!("invalid {key} \"{}\": {err}", value.get_ref()),
            )
        })
    }

    /// The file offset of byte `inner` of string `value` written at `span`: exact for a
    /// plain one-line string, else the start of the value.
    fn offset_in_string(&self, span: Range<usize>, value: &str, inner: usize) -> usize {
        let written = &self.text[span.clone()];
        let body = written.get(1..written.len().saturating_sub(1));
        let plain = written.len() == value.len() + 2 && body == Some(value);
        if plain {
            span.start + 1 + inner
        } else {
            span.start
        }
    }

    /// Fails if a host of `group` (from table `index`) was already defined; records the rest.
    fn check_duplicates(
        &self,
        index: usize,
        table: &RawHost,
        group: &[Entry],
        seen: &mut HashMap<String, (usize, usize)>,
    ) -> Result<(), Located> {
        let name = table.name.as_ref().expect("host_group checked the name");
        let line = line_col(self.text, name.span().start).0;
        for host in group {
            let Some(&(first_index, first_line)) = seen.get(&host.name) else {
                seen.insert(host.name.clone(), (index, line));
                continue;
            };
            let message = if first_index == index {
                format!(
                    "name \"{}\" expands to \"{}\" more than once",
                    name.get_ref(),
                    host.name
                )
            } else {
                format!(
                    "duplicate host name \"{}\": already defined at line {first_line}",
                    host.name
                )
            };
            return Err(self.error(name.span().start, message));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            home: Some(PathBuf::from("/home/alice")),
            user: "alice".into(),
            dts_hosts: None,
            xdg_config_home: None,
            cwd: PathBuf::from("/work/proj"),
        }
    }

    fn parse_with(text: &str, env: &Env) -> Result<Inventory, Located> {
        parse(Path::new("hosts.toml"), text, env)
    }

    fn hosts(text: &str) -> Vec<Host> {
        parse_with(text, &env())
            .unwrap_or_else(|err| panic!("{err}"))
            .hosts
    }

    fn host(text: &str) -> Host {
        let mut hosts = hosts(text);
        assert_eq!(hosts.len(), 1);
        hosts.remove(0)
    }

    fn error(text: &str) -> String {
        match parse_with(text, &env()) {
            Ok(inventory) => panic!("expected an error, got {inventory:?}"),
            Err(err) => err.to_string(),
        }
    }

    fn names(hosts: &[Host]) -> Vec<&str> {
        hosts.iter().map(|host| host.name.as_str()).collect()
    }

    // --- defaults and overrides -------------------------------------------------------

    #[test]
    fn minimal_host_gets_built_in_defaults() {
        let inventory = parse_with("[[host]]\nname = \"a\"\n", &env()).unwrap();
        assert_eq!(
            inventory.origin,
            Origin::File("/work/proj/hosts.toml".into())
        );
        assert_eq!(
            inventory.hosts,
            [Host {
                name: "a".into(),
                address: "a".into(),
                port: 22,
                user: "alice".into(),
                identities: vec![],
                known_hosts: vec![
                    "/home/alice/.ssh/known_hosts".into(),
                    "/etc/ssh/ssh_known_hosts".into()
                ],
                host_key_policy: HostKeyPolicy::Strict,
                slots: None,
                weight: 1.0,
                labels: vec![],
                transport: Transport::Ssh,
                connect_timeout: Duration::from_secs(10),
                jump: vec![],
                proxy_command: None,
                certificate: None,
                identities_only: false,
                server_alive_interval: None,
                server_alive_count: None,
                gpus: 0,
                mem: None,
                execution: Execution::Warm,
            }]
        );
    }

    #[test]
    fn without_home_known_hosts_is_the_system_file() {
        let env = Env {
            home: None,
            ..env()
        };
        let inventory = parse_with("[[host]]\nname = \"a\"\n", &env).unwrap();
        assert_eq!(
            inventory.hosts[0].known_hosts,
            [PathBuf::from("/etc/ssh/ssh_known_hosts")]
        );
    }

    const DEFAULTS: &str = r#"
[defaults]
user = "bob"
port = 2200
identity = "~/.ssh/id_ed25519"
known_hosts = "/etc/dts/known_hosts"
host_key_policy = "accept-new"
slots = 4
connect_timeout = "1m 30s"
weight = 2
labels = ["fast"]
transport = "ssh"
"#;

    #[test]
    fn defaults_apply_to_every_host() {
        let text = format!("{DEFAULTS}\n[[host]]\nname = \"a\"\n");
        let a = host(&text);
        assert_eq!(a.user, "bob");
        assert_eq!(a.port, 2200);
        assert_eq!(a.identities, [PathBuf::from("/home/alice/.ssh/id_ed25519")]);
        assert_eq!(a.known_hosts, [PathBuf::from("/etc/dts/known_hosts")]);
        assert_eq!(a.host_key_policy, HostKeyPolicy::AcceptNew);
        assert_eq!(a.slots, Some(4));
        assert_eq!(a.connect_timeout, Duration::from_secs(90));
        assert_eq!(a.weight, 2.0);
        assert_eq!(a.labels, ["fast"]);
        assert_eq!(a.transport, Transport::Ssh);
    }

    #[test]
    fn host_values_replace_defaults() {
        let text = format!(
            r#"{DEFAULTS}
[[host]]
name = "a"
user = "carol"
port = 2222
identity = ["/k1", "/k2"]
known_hosts = ["/kh"]
host_key_policy = "strict"
slots = 1
connect_timeout = "2s"
weight = 0.5
labels = ["gpu"]
transport = "local"
"#
        );
        let a = host(&text);
        assert_eq!(a.user, "carol");
        assert_eq!(a.port, 2222);
        assert_eq!(a.identities, [PathBuf::from("/k1"), PathBuf::from("/k2")]);
        assert_eq!(a.known_hosts, [PathBuf::from("/kh")]);
        assert_eq!(a.host_key_policy, HostKeyPolicy::Strict);
        assert_eq!(a.slots, Some(1));
        assert_eq!(a.connect_timeout, Duration::from_secs(2));
        assert_eq!(a.weight, 0.5);
        assert_eq!(a.labels, ["gpu"]);
        assert_eq!(a.transport, Transport::Local);
    }

    #[test]
    fn an_empty_identity_list_overrides_a_default_key() {
        let text = "[defaults]\nidentity = \"/k\"\n[[host]]\nname = \"a\"\nidentity = []\n";
        assert!(host(text).identities.is_empty());
    }

    #[test]
    fn labels_are_deduplicated_in_order() {
        let text = "[[host]]\nname = \"a\"\nlabels = [\"x\", \"y\", \"x\"]\n";
        assert_eq!(host(text).labels, ["x", "y"]);
        assert_eq!(
            host("[[host]]\nname = \"a\"\nlabels = \"x\"\n").labels,
            ["x"]
        );
    }

    #[test]
    fn float_and_integer_weights() {
        assert_eq!(host("[[host]]\nname = \"a\"\nweight = 3\n").weight, 3.0);
        assert_eq!(host("[[host]]\nname = \"a\"\nweight = 0.25\n").weight, 0.25);
    }

    // --- nodesets ---------------------------------------------------------------------

    #[test]
    fn names_expand_and_addresses_default_to_names() {
        let hosts = hosts("[[host]]\nname = \"node[01-03]\"\nslots = 8\n");
        assert_eq!(names(&hosts), ["node01", "node02", "node03"]);
        assert!(
            hosts
                .iter()
                .all(|h| h.address == h.name && h.slots == Some(8))
        );
    }

    #[test]
    fn expanded_addresses_pair_with_names() {
        let hosts = hosts("[[host]]\nname = \"n[1-3]\"\naddress = \"10.0.0.[11-13]\"\n");
        let pairs: Vec<_> = hosts.iter().map(|h| (&*h.name, &*h.address)).collect();
        assert_eq!(
            pairs,
            [
                ("n1", "10.0.0.11"),
                ("n2", "10.0.0.12"),
                ("n3", "10.0.0.13")
            ]
        );
    }

    #[test]
    fn a_single_address_is_shared() {
        let hosts = hosts("[[host]]\nname = \"slot[1-2]\"\naddress = \"gw\"\nport = 2201\n");
        assert_eq!(names(&hosts), ["slot1", "slot2"]);
        assert!(hosts.iter().all(|h| h.address == "gw"));
    }

    #[test]
    fn hosts_keep_file_order() {
        let text = "[[host]]\nname = \"b[1-2]\"\n[[host]]\nname = \"a\"\n";
        assert_eq!(names(&hosts(text)), ["b1", "b2", "a"]);
    }

    #[test]
    fn address_count_mismatch_points_at_the_address() {
        let text = "[[host]]\nname = \"n[1-3]\"\naddress = \"10.0.0.[1-2]\"\n";
        assert_eq!(
            error(text),
            "hosts.toml:3:11: address \"10.0.0.[1-2]\" expands to 2 addresses but name \
             \"n[1-3]\" expands to 3 names: give one address per name, or a single address \
             for all"
        );
    }

    #[test]
    fn bad_nodeset_points_inside_the_string() {
        assert_eq!(
            error("[[host]]\nname = \"node[1-3\"\n"),
            "hosts.toml:2:13: invalid name \"node[1-3\": `[` is never closed: expected `]`"
        );
        assert_eq!(
            error("[[host]]\nname = \"n[5-1]\"\n"),
            "hosts.toml:2:11: invalid name \"n[5-1]\": descending range `5-1`: write it as `1-5`"
        );
        assert_eq!(
            error("[[host]]\nname = 'n'\naddress = '10.0.0.[1,,2]'\n"),
            "hosts.toml:3:22: invalid address \"10.0.0.[1,,2]\": empty element in brackets: \
             expected a number or a range"
        );
    }

    #[test]
    fn bad_nodeset_with_escapes_points_at_the_value() {
        let text = "[[host]]\nname = \"n\\u0041[x]\"\n";
        assert!(error(text).starts_with("hosts.toml:2:8: invalid name \"nA[x]\""));
    }

    #[test]
    fn empty_name_and_address() {
        assert_eq!(
            error("[[host]]\nname = \"\"\n"),
            "hosts.toml:2:8: name must not be empty"
        );
        assert_eq!(
            error("[[host]]\nname = \"a\"\naddress = \"\"\n"),
            "hosts.toml:3:11: address must not be empty"
        );
    }

    #[test]
    fn missing_name_points_at_the_table() {
        assert_eq!(
            error("[[host]]\nname = \"a\"\n\n[[host]]\nport = 22\n"),
            "hosts.toml:4:1: missing `name` in [[host]]: every host needs one, such as \
             name = \"node01\""
        );
    }

    // --- duplicates ---------------------------------------------------------------------

    #[test]
    fn duplicate_names_point_at_the_second_definition() {
        let text = "[[host]]\nname = \"n[1-3]\"\n\n[[host]]\nname = \"n2\"\n";
        assert_eq!(
            error(text),
            "hosts.toml:5:8: duplicate host name \"n2\": already defined at line 2"
        );
    }

    #[test]
    fn duplicates_within_one_pattern() {
        assert_eq!(
            error("[[host]]\nname = \"n[1-2,2]\"\n"),
            "hosts.toml:2:8: name \"n[1-2,2]\" expands to \"n2\" more than once"
        );
    }

    #[test]
    fn same_address_under_different_names_is_allowed() {
        let text =
            "[[host]]\nname = \"a\"\naddress = \"x\"\n[[host]]\nname = \"b\"\naddress = \"x\"\n";
        assert_eq!(names(&hosts(text)), ["a", "b"]);
    }

    // --- value validation ---------------------------------------------------------------

    fn host_error(key_value: &str) -> String {
        error(&format!("[[host]]\nname = \"a\"\n{key_value}\n"))
    }

    #[test]
    fn execution_is_read_defaulted_and_checked() {
        let a = host("[defaults]\nexecution = \"warm\"\n[[host]]\nname = \"a\"\n");
        assert_eq!(a.execution, Execution::Warm);
        let b = host(
            "[defaults]\nexecution = \"warm\"\n[[host]]\nname = \"b\"\nexecution = \"per-task\"\n",
        );
        assert_eq!(b.execution, Execution::PerTask);
        assert_eq!(host("[[host]]\nname = \"c\"\n").execution, Execution::Warm);
        assert_eq!(
            error("[[host]]\nname = \"d\"\nexecution = \"hot\"\n"),
            "hosts.toml:3:13: execution must be \"warm\" or \"per-task\", got \"hot\""
        );
        assert_eq!(Execution::PerTask.overridden(Some("warm")), Execution::Warm);
        assert_eq!(
            Execution::Warm.overridden(Some("per-task")),
            Execution::PerTask
        );
        assert_eq!(Execution::Warm.overridden(Some("x")), Execution::Warm);
    }

    #[test]
    fn gpus_and_mem_are_read_and_defaulted() {
        let a = host("[defaults]\ngpus = 2\n[[host]]\nname = \"a\"\nmem = \"64G\"\n");
        assert_eq!((a.gpus, a.mem), (2, Some(64 << 30)));
        let b = host("[[host]]\nname = \"a\"\nmem = 1024\n");
        assert_eq!((b.gpus, b.mem), (0, Some(1024)));
        assert!(host_error("gpus = -1").starts_with("hosts.toml:3:8: gpus must be a count"));
        assert!(host_error("mem = \"x\"").starts_with("hosts.toml:3:7: invalid mem 'x'"));
    }

    #[test]
    fn zero_port_and_slots_are_refused() {
        assert_eq!(
            host_error("port = 0"),
            "hosts.toml:3:8: port must be between 1 and 65535, got 0"
        );
        assert_eq!(
            host_error("port = 65536"),
            "hosts.toml:3:8: port must be between 1 and 65535, got 65536"
        );
        assert_eq!(
            host_error("slots = 0"),
            "hosts.toml:3:9: slots must be at least 1, got 0 (leave `slots` out to use the \
             host's core count)"
        );
        assert!(host_error("slots = -2").contains("at least 1, got -2"));
        assert!(host_error("slots = 5000000000").contains("too large"));
    }

    #[test]
    fn weight_must_be_finite_and_positive() {
        for bad in ["0", "-1.5", "nan", "inf", "0.0"] {
            let message = host_error(&format!("weight = {bad}"));
            assert!(
                message
                    .starts_with("hosts.toml:3:10: weight must be a finite number greater than 0"),
                "{message}"
            );
        }
    }

    #[test]
    fn host_key_policy_never_accepts_any_key() {
        for bad in ["no", "accept-any", "off", "yes", ""] {
            let message = host_error(&format!("host_key_policy = \"{bad}\""));
            assert_eq!(
                message,
                format!(
                    "hosts.toml:3:19: unsupported host_key_policy \"{bad}\": dts never accepts \
                     any host key; expected \"strict\" (the default) or \"accept-new\""
                )
            );
        }
    }

    #[test]
    fn unknown_transport() {
        assert_eq!(
            host_error("transport = \"rsh\""),
            "hosts.toml:3:13: unknown transport \"rsh\": expected \"ssh\" or \"local\""
        );
    }

    #[test]
    fn bad_durations() {
        let message = host_error("connect_timeout = \"10 parsecs\"");
        assert!(
            message.starts_with("hosts.toml:3:19: invalid connect_timeout \"10 parsecs\": "),
            "{message}"
        );
        assert!(message.ends_with("expected a duration such as \"10s\" or \"1m 30s\""));
        assert_eq!(
            host_error("connect_timeout = \"0s\""),
            "hosts.toml:3:19: connect_timeout must be greater than 0"
        );
        assert_eq!(
            host_error("connect_timeout = 10"),
            "hosts.toml:3:19: invalid type: integer `10`, expected a duration string such as \
             \"10s\" or \"1m 30s\""
        );
    }

    #[test]
    fn labels_must_be_words() {
        assert_eq!(
            host_error("labels = [\"gpu\", \"big box\"]"),
            "hosts.toml:3:18: invalid label \"big box\": labels must be non-empty words \
             without whitespace, such as \"gpu\""
        );
        assert!(host_error("labels = [\"\"]").starts_with("hosts.toml:3:11: invalid label \"\""));
        assert!(host_error("labels = \"\"").starts_with("hosts.toml:3:10: invalid label"));
    }

    #[test]
    fn empty_user_and_paths() {
        assert_eq!(
            host_error("user = \"\""),
            "hosts.toml:3:8: user must not be empty"
        );
        assert_eq!(
            host_error("identity = [\"/k\", \"\"]"),
            "hosts.toml:3:19: path must not be empty"
        );
        assert_eq!(
            host_error("known_hosts = []"),
            "hosts.toml:3:15: known_hosts must list at least one file"
        );
    }

    #[test]
    fn bad_values_in_defaults_are_reported_even_if_overridden() {
        let text = "[defaults]\nport = 0\n[[host]]\nname = \"a\"\nport = 22\n";
        assert_eq!(
            error(text),
            "hosts.toml:2:8: port must be between 1 and 65535, got 0"
        );
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        assert_eq!(
            host_error("port = \"22\""),
            "hosts.toml:3:8: invalid type: string \"22\", expected an integer"
        );
        assert_eq!(
            host_error("weight = \"x\""),
            "hosts.toml:3:10: invalid type: string \"x\", expected a number"
        );
        assert_eq!(
            host_error("identity = 3"),
            "hosts.toml:3:12: invalid type: integer `3`, expected a string or an array of strings"
        );
        assert_eq!(
            host_error("labels = [1]"),
            "hosts.toml:3:11: invalid type: integer `1`, expected a string"
        );
        assert_eq!(
            error("[[host]]\nname = 7\n"),
            "hosts.toml:2:8: invalid type: integer `7`, expected a string"
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let message = host_error("hostname = \"x\"");
        assert!(message.starts_with("hosts.toml:3:1: unknown field `hostname`, expected one of"));
        let message = error("[defaults]\nname = \"x\"\n[[host]]\nname = \"a\"\n");
        assert!(
            message.starts_with("hosts.toml:2:1: unknown field `name`"),
            "{message}"
        );
        let message = error("[[hosts]]\nname = \"a\"\n");
        assert_eq!(
            message,
            "hosts.toml:1:3: unknown field `hosts`, expected `defaults` or `host`"
        );
    }

    #[test]
    fn single_host_table_gets_a_hint() {
        assert_eq!(
            error("[host]\nname = \"a\"\n"),
            "hosts.toml:1:1: invalid type: map, expected [[host]] tables (write `[[host]]`, \
             not `[host]`)"
        );
    }

    #[test]
    fn toml_syntax_errors_are_located() {
        let message = error("[[host]]\nname = \"a\"\nport = \n");
        assert!(message.starts_with("hosts.toml:3:8: "), "{message}");
    }

    #[test]
    fn no_hosts_is_an_error() {
        let expected = "hosts.toml:1:1: no hosts defined: add a [[host]] table with a `name`";
        assert_eq!(error(""), expected);
        assert_eq!(error("[defaults]\nuser = \"x\"\n"), expected);
        assert_eq!(error("host = []\n"), expected);
    }

    // --- users and paths ----------------------------------------------------------------

    #[test]
    fn ssh_hosts_need_a_user() {
        let env = Env {
            user: String::new(),
            ..env()
        };
        let message = parse_with("[[host]]\nname = \"a\"\n", &env)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "hosts.toml:2:8: no user for this host: set `user` here or in [defaults] (USER and \
             LOGNAME are not set)"
        );
        let local = "[[host]]\nname = \"a\"\ntransport = \"local\"\n";
        assert!(parse_with(local, &env).is_ok());
        let with_user = "[defaults]\nuser = \"u\"\n[[host]]\nname = \"a\"\n";
        assert_eq!(parse_with(with_user, &env).unwrap().hosts[0].user, "u");
    }

    #[test]
    fn paths_expand_home_and_resolve_against_the_file() {
        let text = "[[host]]\nname = \"a\"\nidentity = [\"~\", \"~/k\", \"keys/k\", \"/abs/k\"]\n";
        let inventory = parse(Path::new("conf/hosts.toml"), text, &env()).unwrap();
        assert_eq!(
            inventory.hosts[0].identities,
            [
                PathBuf::from("/home/alice"),
                PathBuf::from("/home/alice/k"),
                PathBuf::from("/work/proj/conf/keys/k"),
                PathBuf::from("/abs/k"),
            ]
        );
        let absolute = parse(Path::new("/etc/dts/hosts.toml"), text, &env()).unwrap();
        assert_eq!(
            absolute.hosts[0].identities[2],
            PathBuf::from("/etc/dts/keys/k")
        );
        assert_eq!(
            host("[[host]]\nname = \"a\"\nknown_hosts = \"kh\"\n").known_hosts,
            [PathBuf::from("/work/proj/kh")]
        );
    }

    #[test]
    fn tilde_errors() {
        assert_eq!(
            host_error("identity = \"~bob/k\""),
            "hosts.toml:3:12: cannot expand \"~bob/k\": only `~` and `~/…` are supported; \
             write the full path"
        );
        let env = Env {
            home: None,
            ..env()
        };
        let message = parse_with("[[host]]\nname = \"a\"\nidentity = \"~/k\"\n", &env)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "hosts.toml:3:12: cannot expand \"~/k\": HOME is not set"
        );
    }

    // --- the example and the embedded default -----------------------------------------

    #[test]
    fn the_example_parses() {
        let text = include_str!("../hosts.example.toml");
        let inventory = parse(Path::new("hosts.example.toml"), text, &env())
            .unwrap_or_else(|err| panic!("{err}"));
        let hosts = &inventory.hosts;
        assert_eq!(hosts.len(), 18);
        assert_eq!(
            (&*hosts[0].name, &*hosts[0].address),
            ("node01", "10.0.0.1")
        );
        assert_eq!(
            (&*hosts[15].name, &*hosts[15].address),
            ("node16", "10.0.0.16")
        );
        assert_eq!(hosts[0].weight, 2.0);
        assert_eq!(hosts[0].labels, ["gpu", "big"]);
        assert_eq!(hosts[0].slots, Some(8));
        let bastion = &hosts[16];
        assert_eq!((bastion.port, &*bastion.user), (2222, "ops"));
        assert_eq!(
            bastion.identities[1],
            PathBuf::from("/work/proj/keys/ops_rsa")
        );
        assert_eq!(bastion.host_key_policy, HostKeyPolicy::AcceptNew);
        assert_eq!(hosts[17].transport, Transport::Local);
    }

    #[test]
    fn hosts_saved_before_the_ssh_config_fields_still_load() {
        // A run stored by an earlier dts has no jump, certificate or keepalive fields.
        let mut saved = serde_json::to_value(host("[[host]]\nname = \"a\"\n")).unwrap();
        let object = saved.as_object_mut().unwrap();
        for key in [
            "jump",
            "proxy_command",
            "certificate",
            "identities_only",
            "server_alive_interval",
            "server_alive_count",
        ] {
            assert!(object.remove(key).is_some(), "{key}");
        }
        let loaded: Host = serde_json::from_value(saved).unwrap();
        assert_eq!(loaded, host("[[host]]\nname = \"a\"\n"));
    }

    #[test]
    fn the_lab_inventory_format_parses() {
        // What ../shared/lab/sshlab.sh writes.
        let text = r#"[defaults]
user = "dtsbench"
identity = "/tmp/lab/userkey"
known_hosts = "/tmp/lab/known_hosts"
slots = 8

[[host]]
name = "h1"
address = "127.0.0.2"
port = 2201

[[host]]
name = "h2"
address = "127.0.0.3"
port = 2202
"#;
        let hosts = hosts(text);
        assert_eq!(names(&hosts), ["h1", "h2"]);
        assert_eq!((&*hosts[1].address, hosts[1].port), ("127.0.0.3", 2202));
        assert_eq!(hosts[0].identities, [PathBuf::from("/tmp/lab/userkey")]);
        assert_eq!(
            hosts[0].known_hosts,
            [PathBuf::from("/tmp/lab/known_hosts")]
        );
        assert_eq!((&*hosts[0].user, hosts[0].slots), ("dtsbench", Some(8)));
    }

    #[test]
    fn local_default_is_the_local_machine() {
        let inventory = local_default(&env());
        assert_eq!(inventory.origin, Origin::EmbeddedDefault);
        let [host] = &inventory.hosts[..] else {
            panic!("expected one host");
        };
        assert_eq!(host.name, "localhost");
        assert_eq!(host.transport, Transport::Local);
        assert_eq!(host.slots, None);
        assert_eq!(host.weight, 1.0);
        assert_eq!(host.user, "alice");
    }

    // --- OpenSSH configuration layer, jumps, sshlogins ------------------------------

    /// The hosts of `text` with `configured` as the OpenSSH layer of every host (what
    /// `finish` does with a resolver, without running ssh).
    fn with_ssh(text: &str, configured: &Configured) -> Vec<Host> {
        let (draft, _) = parse_draft(Path::new("hosts.toml"), text, &env(), true).unwrap();
        draft
            .entries
            .into_iter()
            .map(|entry| {
                let layer = Partial::from_ssh(configured);
                entry
                    .settings
                    .over(&layer)
                    .into_host(&entry.name, vec![], &env())
            })
            .collect()
    }

    fn everything_configured() -> Configured {
        Configured {
            address: Some("10.9.9.9".into()),
            user: Some("sshuser".into()),
            port: Some(2299),
            identities: Some(vec!["/ssh/key".into()]),
            certificate: Some("/ssh/key-cert.pub".into()),
            identities_only: Some(true),
            known_hosts: Some(vec!["/ssh/kh".into()]),
            host_key_policy: Some(HostKeyPolicy::AcceptNew),
            policy_warning: false,
            connect_timeout: Some(Duration::from_secs(3)),
            server_alive_interval: Some(Duration::from_secs(15)),
            server_alive_count: Some(4),
            proxy_jump: None,
            proxy_command: Some("nc %h %p".into()),
        }
    }

    #[test]
    fn ssh_config_fills_what_hosts_toml_leaves_out() {
        let [a] = &with_ssh("[[host]]\nname = \"a\"\n", &everything_configured())[..] else {
            panic!("one host");
        };
        assert_eq!(
            (&*a.name, &*a.address, a.port, &*a.user),
            ("a", "10.9.9.9", 2299, "sshuser")
        );
        assert_eq!(a.identities, [PathBuf::from("/ssh/key")]);
        assert_eq!(a.known_hosts, [PathBuf::from("/ssh/kh")]);
        assert_eq!(a.host_key_policy, HostKeyPolicy::AcceptNew);
        assert_eq!(a.connect_timeout, Duration::from_secs(3));
        assert_eq!(a.certificate, Some(PathBuf::from("/ssh/key-cert.pub")));
        assert!(a.identities_only);
        assert_eq!(
            (a.server_alive_interval, a.server_alive_count),
            (Some(Duration::from_secs(15)), Some(4))
        );
        assert_eq!(a.proxy_command.as_deref(), Some("nc %h %p"));
    }

    #[test]
    fn keys_written_in_hosts_toml_beat_ssh_config() {
        let text = "[defaults]\nuser = \"tomluser\"\nidentity = \"/toml/key\"\n\
                    host_key_policy = \"strict\"\nconnect_timeout = \"9s\"\n\
                    [[host]]\nname = \"a\"\naddress = \"10.0.0.1\"\nport = 2201\n\
                    known_hosts = \"/toml/kh\"\njump = \"ops@bastion\"\n";
        let [a] = &with_ssh(text, &everything_configured())[..] else {
            panic!("one host");
        };
        assert_eq!(
            (&*a.address, a.port, &*a.user),
            ("10.0.0.1", 2201, "tomluser")
        );
        assert_eq!(a.identities, [PathBuf::from("/toml/key")]);
        assert_eq!(a.known_hosts, [PathBuf::from("/toml/kh")]);
        assert_eq!(a.host_key_policy, HostKeyPolicy::Strict);
        assert_eq!(a.connect_timeout, Duration::from_secs(9));
        assert_eq!(
            a.proxy_command, None,
            "a jump written in hosts.toml replaces ProxyCommand"
        );
    }

    #[test]
    fn jump_key_in_defaults_and_hosts() {
        let text = "[defaults]\njump = \"ops@bastion:2200,gw\"\n[[host]]\nname = \"a\"\n\
                    [[host]]\nname = \"b\"\njump = \"none\"\n";
        let hosts = hosts(text);
        let hops: Vec<String> = hosts[0].jump.iter().map(ToString::to_string).collect();
        assert_eq!(hops, ["ops@bastion:2200", "alice@gw"]);
        assert!(hosts[1].jump.is_empty());
        assert_eq!(
            host_error("jump = \"a,,b\""),
            "hosts.toml:3:8: invalid jump host \"\": expected [user@]host[:port]"
        );
    }

    #[test]
    fn ssh_config_key_takes_a_file_or_false() {
        let parsed = |value: &str| {
            let text = format!("[defaults]\nssh_config = {value}\n[[host]]\nname = \"a\"\n");
            parse_draft(Path::new("conf/hosts.toml"), &text, &env(), true)
                .map(|(d, _)| d.ssh_config)
        };
        assert_eq!(parsed("false").unwrap(), SshConfigSetting::Off);
        assert_eq!(
            parsed("\"ssh/config\"").unwrap(),
            SshConfigSetting::File("/work/proj/conf/ssh/config".into())
        );
        assert_eq!(
            parsed("\"~/c\"").unwrap(),
            SshConfigSetting::File("/home/alice/c".into())
        );
        let message = parsed("true").unwrap_err().to_string();
        assert!(
            message.starts_with("conf/hosts.toml:2:14: ssh_config = true is the default"),
            "{message}"
        );
        assert!(
            error("[[host]]\nname = \"a\"\nssh_config = false\n")
                .starts_with("hosts.toml:3:1: unknown field `ssh_config`")
        );
    }

    fn request_list(list: &str) -> Request {
        Request {
            host_list: Some(list.into()),
            ..Request::default()
        }
    }

    #[test]
    fn a_host_list_replaces_the_inventory() {
        let built = build(&request_list("8/bob@n[1-2]:2200,@gpu/g1,4/:"), &env()).unwrap();
        let inventory = built.inventory;
        assert_eq!(inventory.origin, Origin::HostList);
        assert_eq!(names(&inventory.hosts), ["n1", "n2", "g1", "localhost"]);
        let n1 = &inventory.hosts[0];
        assert_eq!((&*n1.user, n1.port, n1.slots), ("bob", 2200, Some(8)));
        assert_eq!(inventory.hosts[2].labels, ["gpu"]);
        assert_eq!(
            (&*inventory.hosts[2].user, inventory.hosts[2].port),
            ("alice", 22)
        );
        assert_eq!(inventory.hosts[3].transport, Transport::Local);
        assert_eq!(inventory.hosts[3].slots, Some(4));
    }

    #[test]
    fn host_list_errors_name_the_flag_and_column() {
        let message = |list: &str| build(&request_list(list), &env()).unwrap_err().to_string();
        assert_eq!(
            message("a,b:x"),
            "-w \"a,b:x\": column 5: invalid port \"x\": expected a number between 1 and 65535"
        );
        assert_eq!(
            message("a,n[1-2],n2"),
            "-w \"a,n[1-2],n2\": column 10: host \"n2\" is listed twice: give each host once, \
             with its slots as N/"
        );
        let err = build(&request_list("a,,b"), &env()).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::USAGE);
    }

    #[test]
    fn sshlogin_file_over_defaults_of_the_inventory() {
        let dirs = dirs();
        let env = lookup_env(&dirs);
        std::fs::write(
            dirs.cwd.join("hosts.toml"),
            "[defaults]\nuser = \"lab\"\nport = 2222\nslots = 2\nidentity = \"k\"\n[[host]]\nname = \"ignored\"\n",
        )
        .unwrap();
        std::fs::write(dirs.cwd.join("nodes"), "# nodes\n\nn1\n  3/root@n2:22\n").unwrap();
        let request = Request {
            hosts_file: Some("hosts.toml".into()),
            login_file: Some("nodes".into()),
            ..Request::default()
        };
        let hosts = build(&request, &env).unwrap().inventory.hosts;
        assert_eq!(names(&hosts), ["n1", "n2"]);
        assert_eq!(
            (&*hosts[0].user, hosts[0].port, hosts[0].slots),
            ("lab", 2222, Some(2))
        );
        assert_eq!(
            (&*hosts[1].user, hosts[1].port, hosts[1].slots),
            ("root", 22, Some(3))
        );
        assert_eq!(hosts[0].identities, [dirs.cwd.join("k")]);

        std::fs::write(dirs.cwd.join("nodes"), "n1\n# two\n  n2:x\n").unwrap();
        let message = build(&request, &env).unwrap_err().to_string();
        assert_eq!(
            message,
            "nodes:3:6: invalid port \"x\": expected a number between 1 and 65535"
        );
    }

    #[test]
    fn without_an_ssh_config_nothing_runs_ssh() {
        // HOME has no ~/.ssh/config and no -F: the hosts are as hosts.toml writes them.
        let dirs = dirs();
        let env = lookup_env(&dirs);
        let request = Request {
            host_list: Some("a".into()),
            ..Request::default()
        };
        let hosts = build(&request, &env).unwrap().inventory.hosts;
        assert_eq!((&*hosts[0].address, hosts[0].port), ("a", 22));
        assert!(hosts[0].identities.is_empty());
    }

    // --- lookup order -------------------------------------------------------------------

    struct Dirs {
        _root: tempfile::TempDir,
        cwd: PathBuf,
        config: PathBuf,
    }

    fn dirs() -> Dirs {
        let root = tempfile::tempdir().unwrap();
        let cwd = root.path().join("cwd");
        let config = root.path().join("config");
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::create_dir_all(config.join("dts")).unwrap();
        Dirs {
            _root: root,
            cwd,
            config,
        }
    }

    fn write_inventory(path: &Path, host: &str) {
        std::fs::write(path, format!("[[host]]\nname = \"{host}\"\n")).unwrap();
    }

    fn lookup_env(dirs: &Dirs) -> Env {
        Env {
            cwd: dirs.cwd.clone(),
            xdg_config_home: Some(dirs.config.clone()),
            ..env()
        }
    }

    fn resolved_name(explicit: Option<&Path>, env: &Env) -> String {
        let inventory = resolve(explicit, env).unwrap_or_else(|err| panic!("{err}"));
        inventory.hosts[0].name.clone()
    }

    #[test]
    fn lookup_order() {
        let dirs = dirs();
        let mut env = lookup_env(&dirs);
        assert_eq!(resolve(None, &env).unwrap().origin, Origin::EmbeddedDefault);

        write_inventory(&dirs.config.join("dts/hosts.toml"), "from-config");
        assert_eq!(resolved_name(None, &env), "from-config");

        write_inventory(&dirs.cwd.join("hosts.toml"), "from-cwd");
        assert_eq!(resolved_name(None, &env), "from-cwd");
        assert_eq!(
            resolve(None, &env).unwrap().origin,
            Origin::File(dirs.cwd.join("hosts.toml"))
        );

        let from_env = dirs.cwd.join("env.toml");
        write_inventory(&from_env, "from-env");
        env.dts_hosts = Some(from_env);
        assert_eq!(resolved_name(None, &env), "from-env");

        write_inventory(&dirs.cwd.join("explicit.toml"), "explicit");
        let explicit = Path::new("explicit.toml");
        assert_eq!(resolved_name(Some(explicit), &env), "explicit");
    }

    #[test]
    fn config_home_falls_back_to_home_dot_config() {
        let dirs = dirs();
        let home = dirs.cwd.join("home");
        std::fs::create_dir_all(home.join(".config/dts")).unwrap();
        write_inventory(&home.join(".config/dts/hosts.toml"), "from-home");
        let env = Env {
            home: Some(home),
            xdg_config_home: None,
            ..lookup_env(&dirs)
        };
        assert_eq!(resolved_name(None, &env), "from-home");
    }

    #[test]
    fn missing_explicit_or_env_file_is_an_error() {
        let dirs = dirs();
        let mut env = lookup_env(&dirs);
        write_inventory(&dirs.cwd.join("hosts.toml"), "from-cwd");
        let err = resolve(Some(Path::new("nope.toml")), &env).unwrap_err();
        assert!(matches!(&err, Error::ReadFile { path, .. } if path == Path::new("nope.toml")));
        assert!(err.to_string().starts_with("nope.toml: "), "{err}");

        env.dts_hosts = Some(dirs.cwd.join("missing.toml"));
        let err = resolve(None, &env).unwrap_err();
        assert!(matches!(err, Error::ReadFile { .. }));
    }

    #[test]
    fn errors_in_found_files_name_the_file() {
        let dirs = dirs();
        let env = lookup_env(&dirs);
        std::fs::write(
            dirs.cwd.join("hosts.toml"),
            "[[host]]\nname = \"a\"\nport = 0\n",
        )
        .unwrap();
        let err = resolve(None, &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "hosts.toml:3:8: port must be between 1 and 65535, got 0"
        );
        assert_eq!(err.exit_code(), crate::error::exit::USAGE);
    }

    #[test]
    fn env_from_process_has_an_absolute_cwd() {
        let env = Env::from_process();
        assert!(env.cwd.is_absolute());
        assert!(env.xdg_config_home.as_ref().is_none_or(|p| p.is_absolute()));
    }
}
