//! The throughput ceiling for benchmarks: the least a client can do to run trivial commands
//! over SSH. Persistent connections, non-blocking libssh2 sessions, C channels per
//! connection, one thread per connection, no wrapper, no bookkeeping, no error handling
//! worth the name. A yardstick, not a design.
//!
//! usage: cargo run --release --example ceiling -- USER KEY KNOWN_HOSTS CHANNELS TASKS CMD HOST:PORT...

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use ssh2::{BlockDirections, Channel, ErrorCode, Session};

fn would_block(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::Session(-37)
}

fn wait(session: &Session) {
    let events = match session.block_directions() {
        BlockDirections::Outbound => libc::POLLOUT,
        BlockDirections::Both => libc::POLLIN | libc::POLLOUT,
        _ => libc::POLLIN,
    };
    let mut fd = libc::pollfd {
        fd: session.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut fd, 1, 10) };
}

/// Runs commands on one connection until `left` reaches zero; returns how many ran.
fn connection(
    addr: &str,
    user: &str,
    key: &str,
    channels: usize,
    cmd: &str,
    left: &AtomicI64,
) -> u64 {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut session = Session::new().unwrap();
    session.set_tcp_stream(tcp);
    session.handshake().unwrap();
    session
        .userauth_pubkey_file(user, None, std::path::Path::new(key), None)
        .unwrap();
    session.set_blocking(false);
    let mut open: Vec<Channel> = Vec::new();
    let mut claimed = false;
    let mut done = 0;
    let mut buf = [0u8; 4096];
    loop {
        let mut moved = false;
        while open.len() < channels {
            if !claimed {
                if left.fetch_sub(1, Ordering::Relaxed) <= 0 {
                    break;
                }
                claimed = true;
            }
            match session.channel_session() {
                Ok(mut ch) => {
                    while let Err(e) = ch.exec(cmd) {
                        assert!(would_block(&e), "exec: {e}");
                        wait(&session);
                    }
                    open.push(ch);
                    claimed = false;
                    moved = true;
                }
                Err(e) if would_block(&e) => break,
                Err(e) => panic!("open: {e}"),
            }
        }
        let mut i = 0;
        while i < open.len() {
            let ch = &mut open[i];
            while matches!(ch.read(&mut buf), Ok(n) if n > 0) {
                moved = true;
            }
            while matches!(ch.stderr().read(&mut buf), Ok(n) if n > 0) {
                moved = true;
            }
            if ch.eof() && ch.close().is_ok() {
                open.swap_remove(i);
                done += 1;
                moved = true;
                continue;
            }
            i += 1;
        }
        if open.is_empty() && !claimed && left.load(Ordering::Relaxed) <= 0 {
            return done;
        }
        if !moved {
            wait(&session);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [user, key, _known_hosts, channels, tasks, cmd, hosts @ ..] = args.as_slice() else {
        eprintln!("usage: ceiling USER KEY KNOWN_HOSTS CHANNELS TASKS CMD HOST:PORT...");
        std::process::exit(2);
    };
    let channels: usize = channels.parse().unwrap();
    let total: i64 = tasks.parse().unwrap();
    let left = Arc::new(AtomicI64::new(total));
    let start = Instant::now();
    let threads: Vec<_> = hosts
        .iter()
        .map(|host| {
            let (host, user, key, cmd, left) = (
                host.clone(),
                user.clone(),
                key.clone(),
                cmd.clone(),
                left.clone(),
            );
            std::thread::spawn(move || connection(&host, &user, &key, channels, &cmd, &left))
        })
        .collect();
    let done: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{done} tasks in {secs:.2} s = {:.1} tasks/s",
        done as f64 / secs
    );
}
