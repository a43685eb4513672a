//! Opening one SSH connection: TCP with a timeout, a capped handshake, host key
//! verification against known_hosts, public-key authentication, and the first probe.
//!
//! Everything here is blocking and runs on the connection's own thread before the session
//! switches to non-blocking mode.

use std::collections::HashMap;
use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ssh2::{MethodType, Session};

use super::route::{self, Route};
use crate::inventory::{Host, HostKeyPolicy};
use crate::probe::{self, ProbeReport};
use crate::transport::known_hosts::{self, KnownHosts, Verdict};
use crate::transport::{HostError, is_fd_limit};

/// Caps concurrent SSH handshakes, from TCP connect to authenticated: at most
/// `per_server` to one address and port, because sshd counts every connection not yet
/// authenticated against `MaxStartups` (10 by default, then it drops 30 %), and at most
/// `total` overall to bound CPU spent on key exchange.
#[derive(Debug)]
pub struct Handshakes {
    per_server: u32,
    total: u32,
    state: Mutex<InFlight>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct InFlight {
    total: u32,
    per_server: HashMap<String, u32>,
}

impl Default for Handshakes {
    /// 8 per server (under `MaxStartups` 10) and 32 in all.
    fn default() -> Self {
        Handshakes::new(8, 32)
    }
}

/// One handshake slot; freed on drop.
pub struct Permit<'a> {
    handshakes: &'a Handshakes,
    server: String,
}

impl Handshakes {
    pub fn new(per_server: u32, total: u32) -> Handshakes {
        Handshakes {
            per_server: per_server.max(1),
            total: total.max(1),
            state: Mutex::new(InFlight::default()),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot for `server` until `deadline`.
    pub fn acquire(&self, server: &str, deadline: Instant) -> Option<Permit<'_>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let to_server = state.per_server.get(server).copied().unwrap_or(0);
            if state.total < self.total && to_server < self.per_server {
                break;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state.total += 1;
        *state.per_server.entry(server.to_string()).or_default() += 1;
        Some(Permit {
            handshakes: self,
            server: server.to_string(),
        })
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut state = self
            .handshakes
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        state.total -= 1;
        if let Some(n) = state.per_server.get_mut(&self.server) {
            *n -= 1;
            if *n == 0 {
                state.per_server.remove(&self.server);
            }
        }
        self.handshakes.freed.notify_all();
    }
}

/// Serialises `accept-new` appends to known_hosts files within this process.
static KNOWN_HOSTS_WRITE: Mutex<()> = Mutex::new(());

/// Where default identities live, for auth.
#[derive(Debug, Clone)]
pub struct AuthEnv {
    pub home: Option<PathBuf>,
    pub agent: bool,
}

impl AuthEnv {
    pub fn from_process() -> AuthEnv {
        AuthEnv {
            home: std::env::var_os("HOME").map(PathBuf::from),
            agent: std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty()),
        }
    }
}

/// An authenticated session and what keeps its path open. Fields drop in order: the
/// session closes before its route goes.
pub struct Link {
    pub session: Session,
    pub route: Route,
}

/// Connects, verifies and authenticates, through the host's jump hosts or ProxyCommand
/// when it has them; returns a blocking session. Every hop is verified and authenticated
/// as a host is, and its handshake counted against its own cap.
pub fn connect(host: &Host, handshakes: &Handshakes, auth: &AuthEnv) -> Result<Link, HostError> {
    let deadline = Instant::now() + host.connect_timeout;
    let via = match host.jump.is_empty() {
        true => None,
        false => Some(route::hub_for(
            host, &host.jump, handshakes, auth, deadline,
        )?),
    };
    establish(host, via, handshakes, auth, deadline)
}

/// One session to `host`, over a fresh TCP connection, its ProxyCommand, or a channel of
/// the shared hop session `via` (with the hop, for handshake counting).
pub(super) fn establish(
    host: &Host,
    via: Option<(Arc<route::Hub>, Host)>,
    handshakes: &Handshakes,
    auth: &AuthEnv,
    deadline: Instant,
) -> Result<Link, HostError> {
    let began = Instant::now();
    let server = route::handshake_key(host, via.as_ref().map(|(_, hop)| hop));
    let _permit = handshakes.acquire(&server, deadline).ok_or_else(|| {
        HostError::transient(format!(
            "timed out after {} waiting to start the SSH handshake",
            humantime::format_duration(host.connect_timeout)
        ))
    })?;
    let (stream, mut route): (OwnedFd, Route) = match (via, &host.proxy_command) {
        (Some((hub, _)), _) => (
            hub.open(&host.address, host.port, deadline)?,
            Route::Jump(hub),
        ),
        (None, Some(command)) => {
            let (stream, child) = route::spawn_proxy(host, command)?;
            (stream, Route::Proxy(child))
        }
        (None, None) => (tcp_connect(host, deadline)?.into(), Route::Direct),
    };
    let session = secure(host, stream, auth, deadline).map_err(|mut e| {
        if let Route::Proxy(child) = &mut route {
            let said = child.said();
            if !said.is_empty() {
                e.message
                    .push_str(&format!("; the ProxyCommand said: {said}"));
            }
        }
        e
    })?;
    tracing::debug!("{}: connected in {:?}", host.name, began.elapsed());
    Ok(Link { session, route })
}

/// The SSH handshake, host key verification and authentication over `stream`.
fn secure(
    host: &Host,
    stream: OwnedFd,
    auth: &AuthEnv,
    deadline: Instant,
) -> Result<Session, HostError> {
    let began = Instant::now();
    let left = deadline.saturating_duration_since(began);
    let mut session = Session::new().map_err(|e| HostError::transient(e.to_string()))?;
    session.set_timeout(left.as_millis().clamp(1, u32::MAX as u128) as u32);
    session.set_tcp_stream(stream);
    let known = KnownHosts::load(&host.known_hosts).map_err(|e| {
        io_failure(
            &e,
            format!("cannot read known_hosts: {e}"),
            HostError::permanent,
        )
    })?;
    prefer_known_key_types(&session, &known, host);
    prefer_fast_ciphers(&session);
    session
        .handshake()
        .map_err(|e| HostError::transient(format!("SSH handshake failed: {}", e.message())))?;
    let handshaken = Instant::now();
    verify_host_key(&session, &known, host)?;
    authenticate(&session, host, auth)?;
    tracing::debug!(
        "{}: handshake {:?}, authentication {:?}",
        host.name,
        handshaken.saturating_duration_since(began),
        handshaken.elapsed()
    );
    session.set_timeout(0);
    session.set_keepalive(true, 15);
    Ok(session)
}

fn tcp_connect(host: &Host, deadline: Instant) -> Result<TcpStream, HostError> {
    let target = format!("{}:{}", host.address, host.port);
    let addrs = (host.address.as_str(), host.port)
        .to_socket_addrs()
        .map_err(|e| HostError::transient(format!("cannot resolve {}: {e}", host.address)))?;
    let mut last_error = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last_error = Some(e),
        }
    }
    if let Some(e) = last_error.as_ref().filter(|e| is_fd_limit(e)) {
        return Err(HostError::local_limit(format!("connect to {target}: {e}")));
    }
    Err(HostError::transient(match last_error {
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut => format!(
            "connect to {target}: timed out after {}",
            humantime::format_duration(host.connect_timeout)
        ),
        Some(e) => format!("connect to {target}: {e}"),
        None => format!("connect to {target}: no address"),
    }))
}

/// Puts host key algorithms we hold a known key for first, as OpenSSH does, so a host with
/// several keys offers the one known_hosts can verify.
fn prefer_known_key_types(session: &Session, known: &KnownHosts, host: &Host) {
    let preferred: Vec<&str> = known
        .known_types(&host.address, host.port)
        .iter()
        .flat_map(|t| known_hosts::algorithms_for(t).iter().copied())
        .collect();
    if preferred.is_empty() {
        return;
    }
    let Ok(supported) = session.supported_algs(MethodType::HostKey) else {
        return;
    };
    let mut order: Vec<&str> = preferred
        .into_iter()
        .filter(|a| supported.contains(a))
        .collect();
    for alg in supported {
        if !order.contains(&alg) {
            order.push(alg);
        }
    }
    let _ = session.method_pref(MethodType::HostKey, &order.join(","));
}

/// AES-GCM first: libssh2's chacha20-poly1305 (its default first choice) is portable C,
/// while its AES-GCM is OpenSSL's, several times faster where the CPU has AES instructions,
/// which staged files and large outputs feel (a 1 GB staging benchmark moved at half of
/// scp's rate with chacha20).
fn prefer_fast_ciphers(session: &Session) {
    const FIRST: [&str; 2] = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"];
    for direction in [MethodType::CryptCs, MethodType::CryptSc] {
        let Ok(supported) = session.supported_algs(direction) else {
            continue;
        };
        let mut order: Vec<&str> = FIRST
            .into_iter()
            .filter(|a| supported.contains(a))
            .collect();
        order.extend(supported.iter().filter(|a| !FIRST.contains(a)));
        let _ = session.method_pref(direction, &order.join(","));
    }
}

fn verify_host_key(session: &Session, known: &KnownHosts, host: &Host) -> Result<(), HostError> {
    let (blob, _) = session
        .host_key()
        .ok_or_else(|| HostError::transient("server sent no host key"))?;
    let key_type = known_hosts::blob_key_type(blob).unwrap_or_else(|| "unknown".into());
    let fingerprint = known_hosts::fingerprint(blob);
    let target = known_hosts::host_token(&host.address, host.port);
    match known.check(&host.address, host.port, blob) {
        Verdict::Match => Ok(()),
        Verdict::Revoked(line) => Err(HostError::permanent(format!(
            "host key {key_type} {fingerprint} of {target} is marked @revoked at {line}; refusing"
        ))),
        Verdict::Changed(line) => Err(HostError::permanent(format!(
            "HOST KEY CHANGED for {target}: it offered {key_type} {fingerprint}, \
             which differs from {line}; refusing (possible man-in-the-middle; \
             remove the old line if the change is expected)"
        ))),
        Verdict::Unknown => accept_new(host, blob, &target, &key_type, &fingerprint),
    }
}

fn accept_new(
    host: &Host,
    blob: &[u8],
    target: &str,
    key_type: &str,
    fingerprint: &str,
) -> Result<(), HostError> {
    let file = host.known_hosts.first();
    match (host.host_key_policy, file) {
        (HostKeyPolicy::AcceptNew, Some(file)) => {
            let _guard = KNOWN_HOSTS_WRITE.lock().unwrap_or_else(|e| e.into_inner());
            // Another connection to the same host may have added it meanwhile.
            let fresh = KnownHosts::load(std::slice::from_ref(file)).unwrap_or_default();
            if fresh.check(&host.address, host.port, blob) == Verdict::Match {
                return Ok(());
            }
            let line = known_hosts::entry_line(&host.address, host.port, blob);
            known_hosts::append(file, &line).map_err(|e| {
                let message = format!("cannot add host key to {}: {e}", file.display());
                io_failure(&e, message, HostError::permanent)
            })?;
            tracing::info!(
                "added {key_type} {fingerprint} for {target} to {}",
                file.display()
            );
            Ok(())
        }
        _ => Err(HostError::permanent(format!(
            "unknown host key for {target}: {key_type} {fingerprint}; refusing. Verify it, then \
             add it with `ssh-keyscan -p {} {} >> {}` or set \
             host_key_policy = \"accept-new\"",
            host.port,
            host.address,
            file.map_or_else(|| "~/.ssh/known_hosts".into(), |f| f.display().to_string())
        ))),
    }
}

fn authenticate(session: &Session, host: &Host, auth: &AuthEnv) -> Result<(), HostError> {
    let mut tried: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let explicit = !host.identities.is_empty();
    for attempt in auth_order(host, auth) {
        let result = match &attempt {
            AuthAttempt::Agent => agent_auth(session, host, &mut tried),
            AuthAttempt::File(path) => {
                // libssh2 opens the key itself and says only "unable to open": out of
                // descriptors must not read as a refused key.
                if let Err(e) = std::fs::File::open(path).map(drop) {
                    if is_fd_limit(&e) {
                        return Err(HostError::local_limit(format!(
                            "cannot open {}: {e}",
                            path.display()
                        )));
                    }
                }
                tried.push(path.display().to_string());
                try_identity_file(session, host, path, explicit, &mut tried)
            }
        };
        match result {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => {}
            Err(problem) if !problem.is_empty() => problems.push(problem),
            Err(_) => {}
        }
    }
    let mut message = format!(
        "authentication as {} refused (tried: {})",
        host.user,
        if tried.is_empty() {
            "nothing: no agent and no key file".to_string()
        } else {
            tried.join(", ")
        }
    );
    if !problems.is_empty() {
        message.push_str(&format!("; {}", problems.join("; ")));
    }
    // A connection that timed out or broke while authenticating was not refused: the host
    // is worth trying again (a slow PAM or LDAP, a reset).
    if let Some(e) = ssh2::Error::last_session_error(session).filter(is_network_failure) {
        return Err(HostError::transient(format!(
            "authentication as {} did not finish: {}",
            host.user,
            e.message()
        )));
    }
    Err(HostError::permanent(message))
}

/// libssh2's timeout and socket errors: LIBSSH2_ERROR_TIMEOUT (-9), SOCKET_SEND (-7),
/// SOCKET_DISCONNECT (-13) and SOCKET_RECV (-43).
fn is_network_failure(e: &ssh2::Error) -> bool {
    matches!(e.code(), ssh2::ErrorCode::Session(-9 | -7 | -13 | -43))
}

/// Offers every identity the agent holds, not only its first (which is all
/// `userauth_agent` tries): those matching a configured identity's `.pub` first, then the
/// rest in the agent's order, as OpenSSH does. Each one tried is named by fingerprint.
fn agent_auth(session: &Session, host: &Host, tried: &mut Vec<String>) -> Result<(), String> {
    let mut agent = session.agent().map_err(|e| e.message().to_string())?;
    agent
        .connect()
        .and_then(|()| agent.list_identities())
        .map_err(|e| format!("ssh-agent: {}", e.message()))?;
    let mut identities = agent
        .identities()
        .map_err(|e| format!("ssh-agent: {}", e.message()))?;
    if identities.is_empty() {
        tried.push("ssh-agent (no identities)".into());
    }
    let wanted: Vec<Vec<u8>> = host
        .identities
        .iter()
        .filter_map(|path| public_blob(path))
        .collect();
    identities.sort_by_key(|id| !wanted.iter().any(|w| w == id.blob()));
    let mut result = Err(String::new());
    for identity in &identities {
        tried.push(format!(
            "ssh-agent {}",
            known_hosts::fingerprint(identity.blob())
        ));
        match agent.userauth(&host.user, identity) {
            Ok(()) if session.authenticated() => {
                result = Ok(());
                break;
            }
            _ => {}
        }
    }
    let _ = agent.disconnect();
    result
}

/// The key blob of `IDENTITY.pub`, if there is one.
fn public_blob(identity: &Path) -> Option<Vec<u8>> {
    use base64::Engine;
    let mut name = identity.as_os_str().to_owned();
    name.push(".pub");
    let text = std::fs::read_to_string(name).ok()?;
    let encoded = text.split_whitespace().nth(1)?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// An I/O failure as a host error: out of file descriptors is dts's own limit, not the
/// host's fault; anything else is what `otherwise` makes of it.
fn io_failure(
    e: &std::io::Error,
    message: String,
    otherwise: fn(String) -> HostError,
) -> HostError {
    if is_fd_limit(e) {
        HostError::local_limit(message)
    } else {
        otherwise(message)
    }
}

enum AuthAttempt {
    Agent,
    File(PathBuf),
}

/// Explicit identities first, then the agent; without them, the agent then default key files.
fn auth_order(host: &Host, auth: &AuthEnv) -> Vec<AuthAttempt> {
    let mut order: Vec<AuthAttempt> = host
        .identities
        .iter()
        .cloned()
        .map(AuthAttempt::File)
        .collect();
    if auth.agent {
        order.push(AuthAttempt::Agent);
    }
    if host.identities.is_empty() {
        if let Some(home) = &auth.home {
            for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                let path = home.join(".ssh").join(name);
                if path.exists() {
                    order.push(AuthAttempt::File(path));
                }
            }
        }
    }
    order
}

/// The certificates to offer with `identity`, as OpenSSH does: the configured
/// CertificateFile, then `IDENTITY-cert.pub` next to it, those that exist.
pub fn certificates_for(identity: &Path, configured: Option<&Path>) -> Vec<PathBuf> {
    let mut sibling = identity.as_os_str().to_owned();
    sibling.push("-cert.pub");
    let mut found: Vec<PathBuf> = configured.map(Path::to_path_buf).into_iter().collect();
    found.push(PathBuf::from(sibling));
    found.dedup();
    found.retain(|path| path.is_file());
    found
}

/// Offers the key with each of its certificates, then alone.
fn try_identity_file(
    session: &Session,
    host: &Host,
    path: &Path,
    explicit: bool,
    tried: &mut Vec<String>,
) -> Result<(), String> {
    if !path.exists() {
        return Err(if explicit {
            format!("identity {} does not exist", path.display())
        } else {
            String::new()
        });
    }
    for certificate in certificates_for(path, host.certificate.as_deref()) {
        tried.push(format!("certificate {}", certificate.display()));
        match session.userauth_pubkey_file(&host.user, Some(&certificate), path, None) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => {}
            Err(e) => tracing::debug!(
                "{}: certificate {} refused: {}",
                host.name,
                certificate.display(),
                e.message()
            ),
        }
    }
    session
        .userauth_pubkey_file(&host.user, None, path, None)
        .map_err(|e| match e.code() {
            // -16 LIBSSH2_ERROR_FILE: unreadable, encrypted or unsupported key file.
            ssh2::ErrorCode::Session(-16) => format!(
                "cannot use {} (encrypted keys need ssh-agent: dts never prompts): {}",
                path.display(),
                e.message()
            ),
            _ => String::new(),
        })
}

/// Runs the probe on a freshly authenticated session (left blocking, as it came).
///
/// Non-blocking inside, so that every wait can re-arm TCP_QUICKACK: sshd does not set
/// TCP_NODELAY on sessions without a pty, so after authentication it holds its second
/// small packet until the first is acknowledged, and the kernel's delayed ACK made that a
/// 40 ms stall on every new connection (strace: the server's 72-byte write leaves 39 ms
/// late). Acknowledging at once took the probe from ~48 ms to a few.
pub fn probe(session: &Session, timeout: Duration) -> Result<ProbeReport, HostError> {
    let started = Instant::now();
    session.set_blocking(false);
    let output = probe_output(session, started + timeout);
    session.set_blocking(true);
    Ok(probe::parse(&output?, started.elapsed()))
}

fn probe_output(session: &Session, deadline: Instant) -> Result<Vec<u8>, HostError> {
    let lost = |e: ssh2::Error| HostError::transient(format!("probe failed: {}", e.message()));
    let mut channel = nonblocking(session, deadline, || session.channel_session()).map_err(lost)?;
    nonblocking(session, deadline, || channel.exec(probe::COMMAND)).map_err(lost)?;
    let mut output = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // Login noise on stderr (`/etc/ssh/sshrc`, `~/.ssh/rc`, a shell warning) must be
        // read too: libssh2 reports EOF only once every stream of the channel is drained.
        let noise = drain_stderr(&mut channel, &mut buf)?;
        match channel.read(&mut buf) {
            Ok(0) if channel.eof() => break,
            Ok(n) if n > 0 => output.extend_from_slice(&buf[..n]),
            Ok(_) if noise => {}
            Ok(_) => wait_socket(session, deadline).map_err(lost)?,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                wait_socket(session, deadline).map_err(lost)?
            }
            Err(e) => return Err(HostError::transient(format!("probe failed: {e}"))),
        }
    }
    nonblocking(session, deadline, || channel.close()).map_err(lost)?;
    Ok(output)
}

/// Reads and drops what the channel has on stderr; true if there was any.
fn drain_stderr(channel: &mut ssh2::Channel, buf: &mut [u8]) -> Result<bool, HostError> {
    let mut any = false;
    loop {
        match channel.stderr().read(buf) {
            Ok(0) => return Ok(any),
            Ok(_) => any = true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(any),
            Err(e) => return Err(HostError::transient(format!("probe failed: {e}"))),
        }
    }
}

/// Calls a libssh2 operation on a non-blocking session until it stops asking to be
/// called again, waiting for the socket in between.
fn nonblocking<T>(
    session: &Session,
    deadline: Instant,
    mut op: impl FnMut() -> Result<T, ssh2::Error>,
) -> Result<T, ssh2::Error> {
    loop {
        match op() {
            Err(e) if e.code() == ssh2::ErrorCode::Session(super::EAGAIN) => {
                wait_socket(session, deadline)?
            }
            done => return done,
        }
    }
}

/// Waits until the socket is ready in the direction libssh2 is blocked on, acknowledging
/// what arrives at once (see `probe`).
fn wait_socket(session: &Session, deadline: Instant) -> Result<(), ssh2::Error> {
    use std::os::fd::AsRawFd;
    let fd = session.as_raw_fd();
    route::quickack(fd);
    let events = super::poll_events(&session.block_directions());
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        // LIBSSH2_ERROR_TIMEOUT, as a blocking call would have failed.
        return Err(ssh2::Error::new(ssh2::ErrorCode::Session(-9), "timed out"));
    }
    let mut pollfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut pollfd, 1, left.as_millis().clamp(1, 1000) as i32) };
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_timeout_or_broken_socket_during_authentication_is_no_refusal() {
        let code = |c| ssh2::Error::new(ssh2::ErrorCode::Session(c), "x");
        for network in [-9, -7, -13, -43] {
            assert!(super::is_network_failure(&code(network)), "{network}");
        }
        // LIBSSH2_ERROR_AUTHENTICATION_FAILED (-18) and PUBLICKEY_UNVERIFIED (-19).
        for refused in [-18, -19, -16] {
            assert!(!super::is_network_failure(&code(refused)), "{refused}");
        }
    }

    use super::*;
    use crate::transport::HostErrorKind;

    #[test]
    fn out_of_descriptors_is_a_local_limit_not_a_refusal() {
        for errno in [libc::EMFILE, libc::ENFILE] {
            let e = std::io::Error::from_raw_os_error(errno);
            let error = io_failure(
                &e,
                format!("cannot read known_hosts: {e}"),
                HostError::permanent,
            );
            assert_eq!(error.kind, HostErrorKind::LocalLimit);
        }
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        let error = io_failure(
            &denied,
            "cannot read known_hosts".into(),
            HostError::permanent,
        );
        assert_eq!(error.kind, HostErrorKind::Permanent);
    }
}
