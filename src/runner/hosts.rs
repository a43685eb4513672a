//! The dispatcher's view of each host: its connections, resolved slots, failures and
//! reconnect policy. Owned by the dispatcher; no I/O here beyond calling connection handles.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::inventory::Host;
use crate::placement::gate::{self, Gated, Gates, Probed};
use crate::placement::resources::{Capacity, Cut, Grant, Ledger, Request};
use crate::placement::{HostView, Liveness};
use crate::probe::ProbeReport;
use crate::transport::wrapper::LoginShell;
use crate::transport::{ConnHandle, HostError, HostErrorKind};

/// First reconnect delay; doubles with each failure up to [`MAX_BACKOFF`].
pub const BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// When connection failures quarantine a host.
#[derive(Debug, Clone, Copy)]
pub struct Quarantine {
    /// This many failures...
    pub after: u32,
    /// ...within this window.
    pub window: Duration,
    /// How often a quarantined host is tried again; it rejoins when it answers. The same
    /// span after which a silent connection is given up (keepalive × count, 30 s by default).
    pub retry: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HostState {
    /// Not being connected: not needed yet, or waiting for file descriptors to free up.
    Waiting,
    /// No connection has come up yet (first attempt or reconnecting).
    Connecting,
    /// At least one connection is up.
    Up,
    /// Waiting to reconnect at this instant.
    Backoff(Instant),
    /// Failed too often: out of the run for now, tried again at `retry`.
    Quarantined { retry: Instant, reason: String },
    /// Out of the run for good: authentication or host key refused.
    Gone(String),
}

pub enum ConnState {
    Connecting,
    Up { capacity: u32 },
    Down,
}

pub struct Conn {
    pub handle: Box<dyn ConnHandle>,
    pub state: ConnState,
    pub running: u32,
    /// File descriptors counted against the budget for it (see [`super::connector`]).
    pub fds: u64,
}

/// The handle left in place of a connection that is down, so that its socket and
/// channel close: what is sent to it goes nowhere.
pub struct Closed;

impl ConnHandle for Closed {
    fn send(&self, _: crate::transport::Command) {}
}

impl Conn {
    pub fn free(&self) -> u32 {
        match self.state {
            ConnState::Up { capacity } => capacity.saturating_sub(self.running),
            _ => 0,
        }
    }
}

pub struct HostRt {
    pub spec: Arc<Host>,
    pub conns: Vec<Conn>,
    pub state: HostState,
    /// Resolved once known: `--slots`, the inventory, or the probed cores.
    pub slots: Option<u32>,
    pub shell: LoginShell,
    pub probe: Option<ProbeReport>,
    /// Runnable processes that are not ours, from the latest probe.
    pub background: f64,
    /// `--load` / `--memfree`, read against the latest probe.
    pub gates: Gates,
    /// Times of recent connection failures (within the quarantine window).
    pub failures: VecDeque<Instant>,
    pub last_error: Option<String>,
    /// Whether any connection ever came up.
    pub ever_up: bool,
    pub running: u32,
    /// Tasks whose final attempt ran here, and those among them that failed.
    pub done: usize,
    pub failed: usize,
    /// `--cpus` / `--mem` / `--gpus` and what running tasks hold here; `None` when each
    /// task asks for one slot only.
    pub resources: Option<(Request, Ledger)>,
    /// When the periodic probe now awaited was asked, for what its memory reading sees.
    pub probe_asked: Option<Cut>,
}

impl HostRt {
    pub fn new(spec: Arc<Host>, slots_override: Option<u32>) -> HostRt {
        let slots = slots_override.or(spec.slots);
        HostRt {
            spec,
            conns: Vec::new(),
            state: HostState::Waiting,
            slots,
            shell: LoginShell::Other,
            probe: None,
            background: 0.0,
            gates: Gates::default(),
            failures: VecDeque::new(),
            last_error: None,
            ever_up: false,
            running: 0,
            done: 0,
            failed: 0,
            resources: None,
            probe_asked: None,
        }
    }

    /// The host under `gates` (`--load`, `--memfree`).
    pub fn gated_by(mut self, gates: Gates) -> HostRt {
        self.gates = gates;
        self
    }

    /// The host with every task asking `request` (nothing changes for one plain slot).
    pub fn requesting(mut self, request: Request) -> HostRt {
        if !request.is_plain() {
            self.resources = Some((request, Ledger::new(self.resource_capacity())));
        }
        self
    }

    /// What requests may take here: the slots, the inventory's `mem` (else the latest
    /// probe's available memory) and the inventory's `gpus` (else what the probe counted).
    fn resource_capacity(&self) -> Capacity {
        let probed_mem = || {
            let kib = self.probe.as_ref()?.mem_available_kib?;
            Some(kib.saturating_mul(1024))
        };
        Capacity {
            slots: self.slots.unwrap_or(u32::MAX),
            mem: self.spec.mem.or_else(probed_mem),
            gpus: self.gpus(),
        }
    }

    /// The host's GPUs: the inventory's `gpus` when it sets some, else what `nvidia-smi -L`
    /// listed in the probe (0 without it).
    pub fn gpus(&self) -> u32 {
        match self.spec.gpus {
            0 => self.probe.as_ref().and_then(|p| p.gpus).unwrap_or(0),
            set => set,
        }
    }

    /// Holds what one task asks for, or `None` if it does not fit now.
    pub fn take_resources(&mut self) -> Option<Grant> {
        let Some((request, ledger)) = &mut self.resources else {
            return Some(Grant::plain());
        };
        ledger.take(request)
    }

    /// Gives back what an ended task held.
    pub fn release_resources(&mut self, grant: &Grant) {
        if let Some((_, ledger)) = &mut self.resources {
            ledger.release(grant);
        }
    }

    /// Connections wanted with `per_conn` channels each: enough for the host's slots or
    /// for the `tasks` left, whichever is fewer (`--slots 10000` for 3 tasks is one).
    pub fn wanted_conns(&self, per_conn: u32, tasks: usize) -> usize {
        let tasks = u32::try_from(tasks).unwrap_or(u32::MAX);
        self.slots.map_or(1, |s| {
            s.min(tasks).div_ceil(per_conn.max(1)).max(1) as usize
        })
    }

    pub fn live_conns(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| !matches!(c.state, ConnState::Down))
            .count()
    }

    pub fn capacity(&self) -> u32 {
        let channels: u32 = self
            .conns
            .iter()
            .map(|c| match c.state {
                ConnState::Up { capacity } => capacity,
                _ => 0,
            })
            .sum();
        channels.min(self.slots.unwrap_or(0))
    }

    /// The connection with the most free channels.
    pub fn pick_conn(&self) -> Option<usize> {
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.free() > 0)
            .max_by_key(|(_, c)| c.free())
            .map(|(i, _)| i)
    }

    pub fn view(&self) -> HostView {
        let liveness = match self.state {
            HostState::Up => Liveness::Up,
            HostState::Gone(_) | HostState::Quarantined { .. } => Liveness::Gone,
            _ => Liveness::Starting,
        };
        HostView {
            liveness,
            slots: match &self.resources {
                Some((request, ledger)) => self
                    .capacity()
                    .min(self.running.saturating_add(ledger.room(request))),
                None => self.capacity(),
            },
            running: self.running,
            weight: self.spec.weight,
            load: self
                .probe
                .as_ref()
                .and_then(|p| p.load)
                .map_or(0.0, |l| l[0]),
            gated: self.gated().is_some(),
        }
    }

    /// Why the latest probe shuts this host to new tasks, if it does: load per core is the
    /// background load (ours taken out) over the probed cores.
    pub fn gated(&self) -> Option<Gated> {
        let probe = self.probe.as_ref()?;
        let probed = Probed {
            background: self.background,
            cores: probe.cores,
            mem_available_kib: probe.mem_available_kib,
        };
        gate::check(&self.gates, &probed)
    }

    /// A periodic probe is asked for now: its reading will include the tasks running now.
    pub fn probe_asked(&mut self) {
        if let (None, Some((_, ledger))) = (self.probe_asked, &self.resources) {
            // One already awaited keeps its earlier moment: the safe side if both arrive.
            self.probe_asked = Some(ledger.cut());
        }
    }

    /// Takes a connection's own probe, asked at a moment not known here.
    pub fn probed(&mut self, probe: ProbeReport) {
        self.take_probe(probe, None);
    }

    /// Takes the periodic probe asked for at [`HostRt::probe_asked`].
    pub fn reprobed(&mut self, probe: ProbeReport) {
        let asked = self.probe_asked.take();
        self.take_probe(probe, asked);
    }

    /// The background load is the 1-minute load average minus our own tasks running there
    /// (an estimate: the average lags behind starts and ends). The memory reading goes to
    /// the ledger with the moment it was asked (`placement::resources` says why).
    fn take_probe(&mut self, probe: ProbeReport, asked: Option<Cut>) {
        if let Some([load1, _, _]) = probe.load {
            self.background = (load1 - f64::from(self.running)).max(0.0);
        }
        self.probe = Some(probe);
        let capacity = self.resource_capacity();
        let declared = self.spec.mem.is_some();
        if let Some((_, ledger)) = &mut self.resources {
            if declared {
                ledger.resize(capacity.slots, capacity.mem);
            } else {
                ledger.probed(capacity.slots, capacity.mem, asked);
            }
            ledger.grow_gpus(capacity.gpus);
        }
    }

    /// The first connection that is up, to send host-wide requests on.
    pub fn up_conn(&self) -> Option<&Conn> {
        self.conns
            .iter()
            .find(|c| matches!(c.state, ConnState::Up { .. }))
    }

    /// The state as the progress display names it.
    pub fn state_label(&self) -> &'static str {
        match self.state {
            HostState::Connecting if self.ever_up || !self.failures.is_empty() => "reconnecting",
            HostState::Connecting => "connecting",
            HostState::Waiting => "waiting",
            HostState::Up => "up",
            HostState::Backoff(_) => "reconnecting",
            HostState::Quarantined { .. } => "quarantined",
            HostState::Gone(_) => "failed",
        }
    }

    /// Out of the run, for good or for now.
    pub fn is_out(&self) -> bool {
        matches!(
            self.state,
            HostState::Gone(_) | HostState::Quarantined { .. }
        )
    }

    /// Records a failed connection and decides what happens next: other connections carry
    /// on; else back off (1 s, 2 s, 4 s ... up to a minute), or quarantine the host after
    /// `policy.after` failures within `policy.window`. Refused keys or authentication put it
    /// out for good.
    pub fn connection_failed(&mut self, error: &HostError, now: Instant, policy: Quarantine) {
        let others_up = self.live_conns() > 0 && self.state == HostState::Up;
        if error.kind == HostErrorKind::Stalled {
            // dts's own silence: the host did nothing wrong. It waits for a new connection.
            if !others_up {
                self.state = HostState::Waiting;
            }
            return;
        }
        self.last_error = Some(error.message.clone());
        if error.kind == HostErrorKind::Permanent {
            if !others_up {
                self.state = HostState::Gone(error.message.clone());
            }
            return;
        }
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|&at| now.duration_since(at) > policy.window)
        {
            self.failures.pop_front();
        }
        if others_up {
            return;
        }
        let count = self.failures.len() as u32;
        self.state = if count >= policy.after {
            HostState::Quarantined {
                retry: now + policy.retry,
                reason: format!(
                    "quarantined after {count} failures in {}; last: {}",
                    humantime::format_duration(policy.window),
                    error.message
                ),
            }
        } else {
            HostState::Backoff(
                now + (BACKOFF * 2u32.pow(count.saturating_sub(1).min(16))).min(MAX_BACKOFF),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(slots: Option<u32>) -> HostRt {
        // Through serde, so that keys added to `Host` later take their defaults here.
        let spec: Host = serde_json::from_value(serde_json::json!({
            "name": "h1", "address": "127.0.0.1", "port": 22, "user": "u",
            "identities": [], "known_hosts": [], "host_key_policy": "strict",
            "slots": slots, "weight": 1.0, "labels": [], "transport": "ssh",
            "connect_timeout": { "secs": 5, "nanos": 0 },
        }))
        .expect("a host");
        HostRt::new(Arc::new(spec), None)
    }

    #[test]
    fn huge_slots_open_only_the_connections_the_tasks_need() {
        // `--slots 10000 --array 1-3`: one connection, not 1,250.
        assert_eq!(host(Some(10_000)).wanted_conns(8, 3), 1);
        assert_eq!(host(Some(10_000)).wanted_conns(8, 17), 3);
        assert_eq!(host(Some(16)).wanted_conns(8, 1000), 2);
        assert_eq!(host(None).wanted_conns(8, 1000), 1);
        assert_eq!(host(Some(4)).wanted_conns(8, 0), 1);
    }

    fn available_mib(mib: u64) -> ProbeReport {
        ProbeReport {
            cores: Some(8),
            mem_available_kib: Some(mib * 1024),
            ..ProbeReport::default()
        }
    }

    /// The defect on the runner's side: a periodic probe's reading, taken while two
    /// `--mem 30M` tasks used their memory, had the same tasks taken out of it again.
    #[test]
    fn a_periodic_probe_does_not_count_the_memory_of_running_tasks_twice() {
        let mut rt = host(Some(8)).requesting(Request {
            mem: 30 << 20,
            ..Request::default()
        });
        rt.probed(available_mib(100));
        let _a = rt.take_resources().expect("30 of 100");
        rt.probe_asked();
        let _b = rt.take_resources().expect("30 of 70");
        // The probe saw a using its 30 MiB, not b, which started after it was asked.
        rt.reprobed(available_mib(70));
        let free = |rt: &HostRt| rt.resources.as_ref().unwrap().1.free_mem();
        assert_eq!(free(&rt), Some(40 << 20), "70 read − 30 for b");
        let _c = rt.take_resources().expect("30 of 40");
        assert!(rt.take_resources().is_none(), "10 left");
        // A connection's own probe of unknown time counts every running task again.
        rt.probed(available_mib(70));
        assert_eq!(free(&rt), Some(0));
    }
}
