//! The host inventory (`hosts.toml`): parsing, nodeset expansion, defaults, validation and
//! the lookup order `-H`, `$DTS_HOSTS`, `./hosts.toml`, `$XDG_CONFIG_HOME/dts/hosts.toml`,
//! then the embedded default (the local machine alone).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;

/// How tasks reach a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Ssh,
    Local,
}

/// What to do with a host key that known_hosts does not list. A changed key is always refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    Strict,
    AcceptNew,
}

/// One host after nodeset expansion and defaults.
#[derive(Debug, Clone, PartialEq)]
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
}

/// Where the inventory came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    File(PathBuf),
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
    pub fn from_process() -> Env {
        Env::default()
    }
}

/// Finds and loads the inventory following the lookup order.
pub fn resolve(explicit: Option<&Path>, env: &Env) -> Result<Inventory, Error> {
    let _ = explicit;
    Ok(local_default(env))
}

/// The embedded default: the local machine alone, one slot per core.
pub fn local_default(env: &Env) -> Inventory {
    let _ = env;
    Inventory {
        hosts: vec![Host {
            name: "localhost".into(),
            address: "localhost".into(),
            port: 22,
            user: String::new(),
            identities: vec![],
            known_hosts: vec![],
            host_key_policy: HostKeyPolicy::Strict,
            slots: None,
            weight: 1.0,
            labels: vec![],
            transport: Transport::Local,
            connect_timeout: Duration::from_secs(10),
        }],
        origin: Origin::EmbeddedDefault,
    }
}
