//! Network namespaces for fault tests: a host reachable over a veth pair whose link can be
//! cut so that packets are dropped silently, as a network partition does. Needs root and
//! `ip` (iproute2); torn down on drop.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Netns {
    pub name: String,
    /// The veth end inside the namespace and its address (where a host listens).
    inner: String,
    pub inner_addr: Ipv4Addr,
    outer: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("`ip` (iproute2) is needed for network-namespace tests");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// A namespace joined to this one by a fresh /30 in 10.214.0.0/16.
    pub fn create() -> Netns {
        assert!(
            super::is_root(),
            "network-namespace tests need root (CI runs as root)"
        );
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = (std::process::id() * 7 + k) % 16_000;
        let name = format!("dtst{id}");
        let (outer, inner) = (format!("dtso{id}"), format!("dtsi{id}"));
        let (a, b) = ((id / 60) as u8, ((id % 60) * 4) as u8);
        let outer_addr = Ipv4Addr::new(10, 214, a, b + 1);
        let inner_addr = Ipv4Addr::new(10, 214, a, b + 2);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &outer]).output();
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ]);
        ip(&["link", "set", &inner, "netns", &name]);
        ip(&["addr", "add", &format!("{outer_addr}/30"), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{inner_addr}/30"), "dev", &inner]);
        inside(&["link", "set", &inner, "up"]);
        inside(&["link", "set", "lo", "up"]);
        Netns {
            name,
            inner,
            inner_addr,
            outer,
        }
    }

    /// Cuts the link: from now on packets in both directions are dropped without an error
    /// to either side (the namespace's end is down; ours stays up, without carrier).
    pub fn cut(&self) {
        ip(&[
            "netns",
            "exec",
            &self.name,
            "ip",
            "link",
            "set",
            &self.inner,
            "down",
        ]);
    }

    pub fn heal(&self) {
        ip(&[
            "netns",
            "exec",
            &self.name,
            "ip",
            "link",
            "set",
            &self.inner,
            "up",
        ]);
    }

    /// Waits until something inside the namespace listens on `address:port` (an address
    /// only the namespace reaches), asking `ss` there.
    pub fn wait_listening(&self, address: Ipv4Addr, port: u16) -> bool {
        let wanted = format!("{address}:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.name, "ss", "-Hltn"])
                .output()
                .expect("`ss` (iproute2) is needed for network-namespace tests");
            if String::from_utf8_lossy(&out.stdout).contains(&wanted) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }

    /// How many TCP connections to `port` are established inside the namespace.
    pub fn established_to(&self, port: u16) -> usize {
        let filter = format!("( sport = :{port} )");
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "ss",
                "-Htn",
                "state",
                "established",
            ])
            .arg(filter)
            .output()
            .expect("`ss` (iproute2)");
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    /// Pids of the processes inside the namespace.
    pub fn pids(&self) -> Vec<i32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: killing processes this test started in its own namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.outer])
            .output();
    }
}
