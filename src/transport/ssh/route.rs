//! How a connection's bytes reach the host beyond a plain TCP connection: through a
//! ProxyCommand child, or through jump hosts (ProxyJump / `jump =`), each hop an SSH
//! session of its own whose `direct-tcpip` channel carries the next.
//!
//! A [`Route`] is what keeps such a path alive: it must outlive the session it carries,
//! which is why [`super::connect::Link`] holds it after the session. A jump host's session
//! is shared by every connection going through it ([`Hub`]) and runs on its own thread,
//! relaying each connection's channel until that connection closes its end.

use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::{Duration, Instant};

use ssh2::Channel;

use super::connect::{self, AuthEnv, Handshakes, Link};
use super::{EAGAIN, poll_events};
use crate::inventory::{Host, JumpHop};
use crate::transport::HostError;

/// What keeps a connection's path open; dropped after the session it carries.
pub enum Route {
    Direct,
    /// A ProxyCommand in its own process group: killed and reaped on drop.
    Proxy(ProxyChild),
    /// A channel of a jump host's shared session ([`Hub`]); held so that the hub outlives
    /// the sessions it carries.
    Jump(Arc<Hub>),
}

/// The host to connect to as hop `i` of `target`'s jump chain: the hop's address, port and
/// user, its own keys and known_hosts where the OpenSSH configuration gives them, else the
/// target's, and the target's policies (every hop is verified like a host).
pub fn hop_host(target: &Host, hop: &JumpHop) -> Host {
    let or_target =
        |own: &Vec<std::path::PathBuf>, theirs: &Vec<std::path::PathBuf>| match own.is_empty() {
            true => theirs.clone(),
            false => own.clone(),
        };
    Host {
        name: hop.to_string(),
        address: hop.host.clone(),
        port: hop.port,
        user: hop.user.clone(),
        identities: or_target(&hop.identities, &target.identities),
        known_hosts: or_target(&hop.known_hosts, &target.known_hosts),
        certificate: hop
            .certificate
            .clone()
            .or_else(|| target.certificate.clone()),
        jump: Vec::new(),
        proxy_command: None,
        ..target.clone()
    }
}

/// The key under which handshakes to `host` are counted: its address as reached from where
/// the route ends (`127.0.0.1` behind a bastion is not our own loopback).
pub fn handshake_key(host: &Host, via: Option<&Host>) -> String {
    match via {
        Some(hop) => format!(
            "{}:{} via {}:{}",
            host.address, host.port, hop.address, hop.port
        ),
        None => format!("{}:{}", host.address, host.port),
    }
}

// ---------------------------------------------------------------------------------------
// ProxyCommand

/// Expands OpenSSH's `%h` (host name), `%p` (port), `%r` (user), `%n` (the name as given)
/// and `%%` in a ProxyCommand.
pub fn expand_proxy_command(template: &str, host: &Host) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&host.address),
            Some('p') => out.push_str(&host.port.to_string()),
            Some('r') => out.push_str(&host.user),
            Some('n') => out.push_str(&host.name),
            Some('%') => out.push('%'),
            Some(other) => {
                return Err(format!(
                    "ProxyCommand `{template}`: unknown token %{other} (dts knows %h %p %r %n %%)"
                ));
            }
            None => return Err(format!("ProxyCommand `{template}` ends with a lone %")),
        }
    }
    Ok(out)
}

/// A running ProxyCommand and the last of what it said on stderr.
pub struct ProxyChild {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl ProxyChild {
    /// What the command said on stderr, waiting briefly for it to exit (it usually has
    /// when the handshake failed).
    pub fn said(&mut self) -> String {
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Give the reader a moment to take the last words.
        std::thread::sleep(Duration::from_millis(20));
        let said = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        said.trim().to_string()
    }
}

impl Drop for ProxyChild {
    fn drop(&mut self) {
        let group = self.child.id() as libc::pid_t;
        // SAFETY: signalling the process group this connection started.
        unsafe { libc::kill(-group, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Starts `host`'s ProxyCommand with one end of a socket pair as its stdin and stdout, in a
/// process group of its own so that Ctrl-C at the terminal reaches dts only: the command
/// must carry dts's kills to the host after the signal. Returns the other end.
pub fn spawn_proxy(host: &Host, template: &str) -> Result<(OwnedFd, ProxyChild), HostError> {
    let command = expand_proxy_command(template, host).map_err(HostError::permanent)?;
    let failed = |e: std::io::Error| {
        HostError::transient(format!("cannot start ProxyCommand `{command}`: {e}"))
    };
    let (ours, theirs) = UnixStream::pair().map_err(failed)?;
    let theirs_out = theirs.try_clone().map_err(failed)?;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(OwnedFd::from(theirs_out)))
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(failed)?;
    let stderr = Arc::new(Mutex::new(String::new()));
    if let Some(mut pipe) = child.stderr.take() {
        let tail = stderr.clone();
        let _ = std::thread::Builder::new()
            .name("proxy-stderr".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]);
                    tracing::debug!("ProxyCommand: {}", text.trim_end());
                    let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                    tail.push_str(&text);
                    let excess = tail.len().saturating_sub(2000);
                    if excess > 0 {
                        let cut = (excess..=tail.len())
                            .find(|&i| tail.is_char_boundary(i))
                            .unwrap_or(tail.len());
                        tail.drain(..cut);
                    }
                }
            });
    }
    Ok((OwnedFd::from(ours), ProxyChild { child, stderr }))
}

// ---------------------------------------------------------------------------------------
// Jumps

/// One session to a jump host, shared by every connection whose route goes through it: its
/// thread opens a `direct-tcpip` channel per connection and relays each to a socket pair.
/// It ends once no connection holds it and its channels are closed, or when the hop is lost
/// (then every connection through it sees its socket close, as a lost connection).
pub struct Hub {
    requests: mpsc::Sender<Open>,
    wake: UnixStream,
    alive: Arc<AtomicBool>,
}

/// A request for a channel to `address:port`.
struct Open {
    address: String,
    port: u16,
    reply: mpsc::SyncSender<Result<OwnedFd, HostError>>,
}

impl Hub {
    /// Starts the hub's thread on an authenticated hop session.
    fn start(hop: Link, name: String) -> Result<Arc<Hub>, HostError> {
        let failed =
            |e: std::io::Error| HostError::local_limit(format!("cannot start a jump relay: {e}"));
        let (requests, inbox) = mpsc::channel();
        let (wake, wake_rx) = UnixStream::pair().map_err(failed)?;
        wake.set_nonblocking(true).map_err(failed)?;
        wake_rx.set_nonblocking(true).map_err(failed)?;
        let alive = Arc::new(AtomicBool::new(true));
        let hub = Arc::new(Hub {
            requests,
            wake,
            alive: alive.clone(),
        });
        std::thread::Builder::new()
            .name(format!("jump-{name}"))
            .stack_size(128 * 1024)
            .spawn(move || {
                HubLoop::new(hop, inbox, wake_rx).run();
                alive.store(false, Ordering::SeqCst);
            })
            .map_err(failed)?;
        Ok(hub)
    }

    /// A socket carried by a new channel to `address:port` through the hop.
    pub fn open(&self, address: &str, port: u16, deadline: Instant) -> Result<OwnedFd, HostError> {
        let lost = || HostError::transient("the jump host's connection was lost");
        let (reply, answer) = mpsc::sync_channel(1);
        let request = Open {
            address: address.to_string(),
            port,
            reply,
        };
        self.requests.send(request).map_err(|_| lost())?;
        let _ = (&self.wake).write(&[1]);
        let left = deadline.saturating_duration_since(Instant::now());
        match answer.recv_timeout(left) {
            Ok(opened) => opened,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(HostError::transient(format!(
                "timed out waiting for the jump host to reach {address}:{port}"
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(lost()),
        }
    }
}

/// Live hubs by route (hops and credentials); the slot's lock is held while its hub
/// connects, so connections starting together share one hop session.
type HubSlot = Arc<Mutex<Weak<Hub>>>;
static HUBS: Mutex<BTreeMap<String, HubSlot>> = Mutex::new(BTreeMap::new());

/// The hub for `target`'s route up to and including `hops.last()`, connecting it (and the
/// hops before it) if none is alive; with the hop as a host, for handshake counting.
pub fn hub_for(
    target: &Host,
    hops: &[JumpHop],
    handshakes: &Handshakes,
    auth: &AuthEnv,
    deadline: Instant,
) -> Result<(Arc<Hub>, Host), HostError> {
    let hop = hops.last().expect("a route has a hop");
    let hop_host = hop_host(target, hop);
    let key = format!(
        "{hops:?} {:?} {:?} {:?}",
        target.identities, target.known_hosts, target.host_key_policy
    );
    let slot = {
        let mut hubs = HUBS.lock().unwrap_or_else(|e| e.into_inner());
        hubs.retain(|_, slot| Arc::strong_count(slot) > 1 || slot_alive(slot));
        hubs.entry(key).or_default().clone()
    };
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hub) = slot.upgrade().filter(|h| h.alive.load(Ordering::SeqCst)) {
        return Ok((hub, hop_host));
    }
    let via = match hops.len() {
        1 => None,
        n => Some(hub_for(target, &hops[..n - 1], handshakes, auth, deadline)?),
    };
    let link =
        connect::establish(&hop_host, via, handshakes, auth, deadline).map_err(|e| HostError {
            kind: e.kind,
            message: format!("jump host {hop}: {}", e.message),
        })?;
    let hub = Hub::start(link, hop.host.clone())?;
    *slot = Arc::downgrade(&hub);
    Ok((hub, hop_host))
}

fn slot_alive(slot: &HubSlot) -> bool {
    slot.try_lock()
        .map(|weak| {
            weak.upgrade()
                .is_some_and(|h| h.alive.load(Ordering::SeqCst))
        })
        .unwrap_or(true)
}

/// Bytes each way between a channel and its socket pair, buffered up to this much.
const RELAY_BUFFER: usize = 64 * 1024;

/// The hub's thread: the hop session, the channel being opened, and the open ones.
struct HubLoop {
    hop: Link,
    inbox: mpsc::Receiver<Open>,
    wake: UnixStream,
    queue: VecDeque<Open>,
    /// libssh2 opens one channel at a time; this one returned EAGAIN.
    opening: Option<Open>,
    pipes: Vec<Pipe>,
    /// Channels whose connection is done, until their close is sent.
    closing: Vec<(Channel, Instant)>,
    /// No handle is left: end once the pipes are done.
    orphaned: bool,
    next_keepalive: Instant,
    buf: Vec<u8>,
}

/// One channel relayed to the session above it over a socket pair.
struct Pipe {
    channel: Channel,
    socket: UnixStream,
    /// From the session above, to write to the channel.
    up: Vec<u8>,
    /// From the channel, to write to the session above.
    down: Vec<u8>,
    /// The session above closed its end: it is done with the route.
    above_closed: bool,
    /// The far side closed the channel.
    channel_eof: bool,
    eof_passed: bool,
}

impl HubLoop {
    fn new(hop: Link, inbox: mpsc::Receiver<Open>, wake: UnixStream) -> HubLoop {
        HubLoop {
            hop,
            inbox,
            wake,
            queue: VecDeque::new(),
            opening: None,
            pipes: Vec::new(),
            closing: Vec::new(),
            orphaned: false,
            next_keepalive: Instant::now(),
            buf: vec![0; 32 * 1024],
        }
    }

    fn run(mut self) {
        self.hop.session.set_blocking(false);
        self.hop.session.set_keepalive(false, 15);
        loop {
            let progress = match self.turn() {
                Ok(progress) => progress,
                Err(reason) => {
                    tracing::debug!("jump host session ends: {reason}");
                    break;
                }
            };
            if self.orphaned && self.pipes.is_empty() && self.closing.is_empty() {
                break;
            }
            // Reading one channel reads the socket for all: what it queued for a channel
            // served earlier in the turn must not wait for the socket to be readable again.
            if !progress && !self.pipes.iter().any(Pipe::has_queued) {
                self.wait();
            }
        }
        for open in self.queue.drain(..).chain(self.opening.take()) {
            let _ = open.reply.send(Err(HostError::transient(
                "the jump host's connection was lost",
            )));
        }
        let _ = self.hop.session.disconnect(None, "done", None);
    }

    fn turn(&mut self) -> Result<bool, String> {
        let mut progress = self.take_requests();
        progress |= self.open_next();
        let buf = &mut self.buf;
        for pipe in &mut self.pipes {
            progress |= pipe.turn(buf);
        }
        let now = Instant::now();
        for i in (0..self.pipes.len()).rev() {
            if self.pipes[i].done() {
                let pipe = self.pipes.swap_remove(i);
                self.closing
                    .push((pipe.channel, now + Duration::from_secs(2)));
                progress = true;
            }
        }
        self.closing.retain_mut(|(channel, until)| {
            let pending = matches!(channel.close(),
                Err(e) if e.code() == ssh2::ErrorCode::Session(EAGAIN));
            pending && now < *until
        });
        self.keepalive()?;
        Ok(progress)
    }

    fn take_requests(&mut self) -> bool {
        let mut sink = [0u8; 64];
        while matches!((&self.wake).read(&mut sink), Ok(n) if n > 0) {}
        let mut progress = false;
        loop {
            match self.inbox.try_recv() {
                Ok(open) => {
                    self.queue.push_back(open);
                    progress = true;
                }
                Err(mpsc::TryRecvError::Empty) => return progress,
                Err(mpsc::TryRecvError::Disconnected) => {
                    progress |= !self.orphaned;
                    self.orphaned = true;
                    return progress;
                }
            }
        }
    }

    fn open_next(&mut self) -> bool {
        let Some(open) = self.opening.take().or_else(|| self.queue.pop_front()) else {
            return false;
        };
        let session = &self.hop.session;
        let opened = match session.channel_direct_tcpip(&open.address, open.port, None) {
            Err(e) if e.code() == ssh2::ErrorCode::Session(EAGAIN) => {
                self.opening = Some(open);
                return false;
            }
            Err(e) => Err(HostError::transient(format!(
                "the jump host could not reach {}:{}: {}",
                open.address,
                open.port,
                e.message()
            ))),
            Ok(channel) => match pipe_for(channel) {
                Ok((pipe, theirs)) => {
                    self.pipes.push(pipe);
                    Ok(theirs)
                }
                Err(e) => Err(HostError::local_limit(format!(
                    "cannot relay through the jump host: {e}"
                ))),
            },
        };
        // A connection that gave up waiting drops its end: the pipe then closes itself.
        let _ = open.reply.send(opened);
        true
    }

    fn keepalive(&mut self) -> Result<(), String> {
        let now = Instant::now();
        if now < self.next_keepalive {
            return Ok(());
        }
        match self.hop.session.keepalive_send() {
            Ok(secs) => {
                self.next_keepalive = now + Duration::from_secs(u64::from(secs.max(1)));
                Ok(())
            }
            Err(e) if e.code() == ssh2::ErrorCode::Session(EAGAIN) => Ok(()),
            Err(e) => Err(format!("keepalive: {}", e.message())),
        }
    }

    fn wait(&self) {
        let session_fd = self.hop.session.as_raw_fd();
        quickack(session_fd);
        let mut fds = vec![
            libc::pollfd {
                fd: session_fd,
                events: poll_events(&self.hop.session.block_directions()),
                revents: 0,
            },
            libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        fds.extend(self.pipes.iter().map(|pipe| libc::pollfd {
            fd: pipe.socket.as_raw_fd(),
            events: pipe.socket_events(),
            revents: 0,
        }));
        let timeout_ms =
            self.next_keepalive
                .saturating_duration_since(Instant::now())
                .as_millis()
                .clamp(1, if self.closing.is_empty() { 1000 } else { 10 }) as i32;
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    }
}

fn pipe_for(channel: Channel) -> std::io::Result<(Pipe, OwnedFd)> {
    let (ours, theirs) = UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    let pipe = Pipe {
        channel,
        socket: ours,
        up: Vec::new(),
        down: Vec::new(),
        above_closed: false,
        channel_eof: false,
        eof_passed: false,
    };
    Ok((pipe, OwnedFd::from(theirs)))
}

impl Pipe {
    /// Done once the session above has closed its end and all it wrote is passed on, or
    /// when the channel failed.
    fn done(&self) -> bool {
        self.above_closed && self.up.is_empty()
    }

    /// libssh2 holds data or an EOF for this channel that the pipe has room to take.
    fn has_queued(&self) -> bool {
        !self.channel_eof
            && self.down.len() < RELAY_BUFFER
            && (self.channel.read_window().available > 0 || self.channel.eof())
    }

    fn socket_events(&self) -> libc::c_short {
        let mut events = 0;
        if !self.above_closed && self.up.len() < RELAY_BUFFER {
            events |= libc::POLLIN;
        }
        if !self.down.is_empty() {
            events |= libc::POLLOUT;
        }
        events
    }

    /// Moves what it can each way; true if anything moved. A failed channel ends the pipe
    /// (the session above sees its socket close).
    fn turn(&mut self, buf: &mut [u8]) -> bool {
        match self.relay(buf) {
            Ok(progress) => progress,
            Err(reason) => {
                tracing::debug!("jump channel ends: {reason}");
                self.up.clear();
                self.down.clear();
                self.above_closed = true;
                let _ = self.socket.shutdown(std::net::Shutdown::Both);
                true
            }
        }
    }

    fn relay(&mut self, buf: &mut [u8]) -> Result<bool, String> {
        let mut progress = false;
        if !self.above_closed && self.up.len() < RELAY_BUFFER {
            match self.socket.read(buf) {
                Ok(0) => {
                    self.above_closed = true;
                    progress = true;
                }
                Ok(n) => {
                    self.up.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        while !self.up.is_empty() {
            match self.channel.write(&self.up) {
                Ok(0) => break,
                Ok(n) => {
                    self.up.drain(..n);
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("channel write: {e}")),
            }
        }
        while !self.channel_eof && self.down.len() < RELAY_BUFFER {
            match self.channel.read(buf) {
                Ok(0) => {
                    if self.channel.eof() {
                        self.channel_eof = true;
                        progress = true;
                    }
                    break;
                }
                Ok(n) => {
                    self.down.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("channel read: {e}")),
            }
        }
        while !self.down.is_empty() {
            match self.socket.write(&self.down) {
                Ok(n) => {
                    self.down.drain(..n);
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // The session above is gone: nothing to deliver to.
                Err(_) => {
                    self.down.clear();
                    self.above_closed = true;
                    progress = true;
                }
            }
        }
        if self.channel_eof && self.down.is_empty() && !self.eof_passed {
            // Nothing more will come: tell the session above, then wait for it to close.
            let _ = self.socket.shutdown(std::net::Shutdown::Write);
            self.eof_passed = true;
        }
        Ok(progress)
    }
}

/// Acknowledges what arrives on a TCP socket at once (see `connect::probe`: sshd does not
/// set TCP_NODELAY, and delayed ACKs stalled each exchange 40 ms); no-op on other sockets.
pub fn quickack(fd: std::os::fd::RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live c_int.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{HostKeyPolicy, Transport};

    fn host() -> Host {
        Host {
            name: "node01".into(),
            address: "10.0.0.1".into(),
            port: 2222,
            user: "alice".into(),
            identities: Vec::new(),
            known_hosts: Vec::new(),
            host_key_policy: HostKeyPolicy::Strict,
            slots: None,
            weight: 1.0,
            labels: Vec::new(),
            transport: Transport::Ssh,
            connect_timeout: Duration::from_secs(5),
            jump: Vec::new(),
            proxy_command: None,
            certificate: None,
            identities_only: false,
            server_alive_interval: None,
            server_alive_count: None,
            gpus: 0,
            mem: None,
            execution: Default::default(),
        }
    }

    #[test]
    fn proxy_command_tokens_expand_as_openssh_does() {
        let expanded = expand_proxy_command("ssh -W %h:%p -l %r gw # %n 100%%", &host());
        assert_eq!(
            expanded.unwrap(),
            "ssh -W 10.0.0.1:2222 -l alice gw # node01 100%"
        );
    }

    #[test]
    fn an_unknown_proxy_command_token_is_refused() {
        let error = expand_proxy_command("nc %x %p", &host()).unwrap_err();
        assert!(error.contains("%x"), "{error}");
        assert!(expand_proxy_command("nc %h %", &host()).is_err());
    }

    #[test]
    fn a_hop_is_checked_with_the_target_s_keys_and_known_hosts() {
        let mut target = host();
        target.known_hosts = vec!["/kh".into()];
        target.jump = vec![JumpHop {
            user: "ops".into(),
            host: "gw".into(),
            port: 22,
            identities: Vec::new(),
            known_hosts: Vec::new(),
            certificate: None,
        }];
        let hop = hop_host(&target, &target.jump[0]);
        assert_eq!(
            (hop.address.as_str(), hop.port, hop.user.as_str()),
            ("gw", 22, "ops")
        );
        assert_eq!(hop.known_hosts, target.known_hosts);
        assert!(hop.jump.is_empty() && hop.proxy_command.is_none());
    }

    /// A jump host's own IdentityFile and UserKnownHostsFile (from its `Host` block in the
    /// OpenSSH configuration) are used for it, as `ssh -J` does; the target's otherwise.
    #[test]
    fn a_hop_uses_its_own_keys_and_known_hosts_when_it_has_them() {
        let mut target = host();
        target.identities = vec!["/target-key".into()];
        target.known_hosts = vec!["/target-kh".into()];
        let own = JumpHop {
            user: "ops".into(),
            host: "gw".into(),
            port: 22,
            identities: vec!["/gw-key".into()],
            known_hosts: vec!["/gw-kh".into()],
            certificate: Some("/gw-key-cert.pub".into()),
        };
        let hop = hop_host(&target, &own);
        assert_eq!(hop.identities, [std::path::PathBuf::from("/gw-key")]);
        assert_eq!(hop.known_hosts, [std::path::PathBuf::from("/gw-kh")]);
        assert_eq!(hop.certificate, Some("/gw-key-cert.pub".into()));
    }

    #[test]
    fn handshakes_behind_a_bastion_are_counted_apart_from_ours() {
        let mut gw = host();
        gw.address = "gw".into();
        gw.port = 22;
        assert_eq!(handshake_key(&host(), None), "10.0.0.1:2222");
        assert_eq!(handshake_key(&host(), Some(&gw)), "10.0.0.1:2222 via gw:22");
    }
}
