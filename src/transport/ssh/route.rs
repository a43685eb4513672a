//! How a connection's bytes reach the host beyond a plain TCP connection: through a
//! ProxyCommand child, or through jump hosts (ProxyJump / `jump =`), each hop an SSH
//! session of its own whose `direct-tcpip` channel carries the next.
//!
//! A [`Route`] is what keeps such a path alive: it must outlive the session it carries,
//! which is why [`super::connect::Link`] holds it after the session. A jump's hop session
//! and its relay run on their own thread; they end when the session above closes its end.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssh2::Channel;

use super::connect::Link;
use super::{EAGAIN, poll_events};
use crate::inventory::{Host, JumpHop};
use crate::transport::HostError;

/// What keeps a connection's path open; dropped after the session it carries.
pub enum Route {
    Direct,
    /// A ProxyCommand in its own process group: killed and reaped on drop.
    Proxy(ProxyChild),
    /// A relay thread carrying the session through a jump host; it ends once the session
    /// closes its end of the socket pair.
    Jump,
}

/// The host to connect to as hop `i` of `target`'s jump chain: the hop's address, port and
/// user with the target's keys, known_hosts and policies (every hop is verified like a host).
pub fn hop_host(target: &Host, hop: &JumpHop) -> Host {
    Host {
        name: hop.to_string(),
        address: hop.host.clone(),
        port: hop.port,
        user: hop.user.clone(),
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

/// Opens a `direct-tcpip` channel from the hop session to `address:port` and starts the
/// thread that relays it to a socket pair; returns the end the next session reads.
pub fn relay_through(
    hop: Link,
    address: &str,
    port: u16,
    deadline: Instant,
) -> Result<OwnedFd, HostError> {
    let left = deadline.saturating_duration_since(Instant::now());
    hop.session
        .set_timeout(left.as_millis().clamp(1, u32::MAX as u128) as u32);
    let channel = hop
        .session
        .channel_direct_tcpip(address, port, None)
        .map_err(|e| {
            HostError::transient(format!(
                "the jump host could not reach {address}:{port}: {}",
                e.message()
            ))
        })?;
    hop.session.set_timeout(0);
    let failed =
        |e: std::io::Error| HostError::local_limit(format!("cannot start a jump relay: {e}"));
    let (ours, theirs) = UnixStream::pair().map_err(failed)?;
    ours.set_nonblocking(true).map_err(failed)?;
    std::thread::Builder::new()
        .name(format!("jump-{address}"))
        .stack_size(128 * 1024)
        .spawn(move || Relay::new(hop, channel, ours).run())
        .map_err(failed)?;
    Ok(OwnedFd::from(theirs))
}

/// Bytes each way between a hop's channel and the socket pair, buffered up to this much.
const RELAY_BUFFER: usize = 64 * 1024;

struct Relay {
    hop: Link,
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
    next_keepalive: Instant,
    buf: Vec<u8>,
}

impl Relay {
    fn new(hop: Link, channel: Channel, socket: UnixStream) -> Relay {
        Relay {
            hop,
            channel,
            socket,
            up: Vec::new(),
            down: Vec::new(),
            above_closed: false,
            channel_eof: false,
            next_keepalive: Instant::now(),
            buf: vec![0; 32 * 1024],
        }
    }

    /// Relays until the session above closes its end (or the hop is lost: then our end is
    /// closed, which the session above sees as its connection lost).
    fn run(mut self) {
        self.hop.session.set_blocking(false);
        self.hop.session.set_keepalive(false, 15);
        loop {
            let progress = match self.turn() {
                Ok(progress) => progress,
                Err(reason) => {
                    tracing::debug!("jump relay ends: {reason}");
                    break;
                }
            };
            if self.above_closed && self.up.is_empty() {
                break;
            }
            if self.channel_eof && self.down.is_empty() {
                // Nothing more will come: tell the session above, then wait for it to close.
                let _ = self.socket.shutdown(std::net::Shutdown::Write);
            }
            if !progress {
                self.wait();
            }
        }
        self.close();
    }

    fn turn(&mut self) -> Result<bool, String> {
        let mut progress = false;
        // From the session above into the channel.
        if !self.above_closed && self.up.len() < RELAY_BUFFER {
            match self.socket.read(&mut self.buf) {
                Ok(0) => {
                    self.above_closed = true;
                    progress = true;
                }
                Ok(n) => {
                    self.up.extend_from_slice(&self.buf[..n]);
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
        // From the channel to the session above.
        while !self.channel_eof && self.down.len() < RELAY_BUFFER {
            match self.channel.read(&mut self.buf) {
                Ok(0) => {
                    if self.channel.eof() {
                        self.channel_eof = true;
                        progress = true;
                    }
                    break;
                }
                Ok(n) => {
                    self.down.extend_from_slice(&self.buf[..n]);
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
        self.keepalive()?;
        Ok(progress)
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
        let mut socket_events = 0;
        if !self.above_closed && self.up.len() < RELAY_BUFFER {
            socket_events |= libc::POLLIN;
        }
        if !self.down.is_empty() {
            socket_events |= libc::POLLOUT;
        }
        let mut fds = [
            libc::pollfd {
                fd: session_fd,
                events: poll_events(&self.hop.session.block_directions()),
                revents: 0,
            },
            libc::pollfd {
                fd: self.socket.as_raw_fd(),
                events: socket_events,
                revents: 0,
            },
        ];
        let keepalive_ms = self
            .next_keepalive
            .saturating_duration_since(Instant::now())
            .as_millis()
            .clamp(1, 1000) as i32;
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, keepalive_ms) };
    }

    /// Closes the channel and the hop session, without waiting long on a dead hop.
    fn close(mut self) {
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            match self.channel.close() {
                Err(e)
                    if e.code() == ssh2::ErrorCode::Session(EAGAIN) && Instant::now() < until =>
                {
                    self.wait()
                }
                _ => break,
            }
        }
        let _ = self.hop.session.disconnect(None, "done", None);
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
        }];
        let hop = hop_host(&target, &target.jump[0]);
        assert_eq!(
            (hop.address.as_str(), hop.port, hop.user.as_str()),
            ("gw", 22, "ops")
        );
        assert_eq!(hop.known_hosts, target.known_hosts);
        assert!(hop.jump.is_empty() && hop.proxy_command.is_none());
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
