//! Placement: which host runs which task. Pure: no I/O, no clock, no global RNG.
//!
//! Binding is late: the dispatcher asks [`Placement::next`] whenever a slot may have freed,
//! and each algorithm decides, from a [`HostView`] per host, which queued task starts where.
//! The same code drives real runs, `--dry-run` plans and `dts simulate`.

pub mod affinity;
mod consistent_hash;
pub mod durations;
mod fifo;
pub mod gate;
mod least_load;
pub mod order;
mod random;
pub mod resources;
pub mod rng;
mod round_robin;
pub mod speed;

use std::fmt;
use std::str::FromStr;

pub use consistent_hash::{ConsistentHash, key_hash};
pub use fifo::{Backlog, ChooseHost, Fifo};
pub use least_load::{LeastLoad, RISK, effective_speed, pressure};
pub use random::Random;
pub use round_robin::RoundRobin;

/// The placement algorithms a job can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Random,
    RoundRobin,
    LeastLoad,
    ConsistentHash,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Random,
        Algorithm::RoundRobin,
        Algorithm::LeastLoad,
        Algorithm::ConsistentHash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Random => "random",
            Algorithm::RoundRobin => "round-robin",
            Algorithm::LeastLoad => "least-load",
            Algorithm::ConsistentHash => "consistent-hash",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown algorithm '{s}' (expected random, round-robin, least-load or consistent-hash)"
                )
            })
    }
}

/// Whether a host can take work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Connected: takes tasks up to its free slots.
    Up,
    /// Not connected yet, or reconnecting: may take tasks later.
    Starting,
    /// Failed for good or quarantined: never takes tasks again.
    Gone,
}

/// A host as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostView {
    pub liveness: Liveness,
    /// Concurrent tasks it may run.
    pub slots: u32,
    /// Tasks of this run running there now.
    pub running: u32,
    /// Relative speed (1.0 = nominal).
    pub weight: f64,
    /// Probed background load (runnable processes not ours).
    pub load: f64,
    /// Shut by `--load` or `--memfree` ([`gate`]): takes no new task while set.
    pub gated: bool,
}

impl HostView {
    /// Slots that can take a task now.
    pub fn free(&self) -> u32 {
        match self.liveness {
            Liveness::Up if !self.gated => self.slots.saturating_sub(self.running),
            _ => 0,
        }
    }
}

/// A task waiting to be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskRef {
    /// The dispatcher's task number.
    pub id: u32,
    /// Hash of the task's key (see [`key_hash`]); only consistent-hash reads it.
    pub key: u64,
}

/// A placement algorithm holding the queue of tasks waiting to run.
pub trait Placement {
    /// Queues a task that is ready to run (new, retried or requeued).
    fn push(&mut self, task: TaskRef);
    /// Queues a task that failed on host `avoid`: it goes elsewhere if it can.
    fn push_avoiding(&mut self, task: TaskRef, avoid: usize) {
        let _ = avoid;
        self.push(task);
    }
    /// The next task to start and the host index to start it on, or `None` when no queued
    /// task can start now. The caller starts it and updates `hosts` before calling again.
    fn next(&mut self, hosts: &[HostView]) -> Option<(u32, usize)>;
    /// A task of this run finished after `work`: its run time × the effective speed of
    /// the host it ran on (seconds on a speed-1 host). Least-load learns task lengths from
    /// it; the others ignore it.
    fn observe(&mut self, work: f64) {
        let _ = work;
    }
    /// Task `task` finished on `host` after `seconds`; `hosts` are the views as it ended.
    /// What the dispatcher and the simulator call: by default it is [`Placement::observe`]
    /// of the work at the host's effective speed. Least-load also re-checks the host's
    /// speed with it when the task's work is known ([`speed::Recheck`]).
    fn finished(&mut self, task: u32, host: usize, seconds: f64, hosts: &[HostView]) {
        let _ = task;
        if let Some(view) = hosts.get(host) {
            self.observe(seconds * effective_speed(view));
        }
    }
    /// The expected work of each task by id (seconds on a speed-1 host), where an earlier
    /// run recorded it (`None`: unknown). Least-load keeps a known long task off a slow
    /// host that would end it after the faster ones; the others ignore it.
    fn know_work(&mut self, work: &[Option<f64>]) {
        let _ = work;
    }
    /// Tasks still queued.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Removes and returns every queued task (cancel).
    fn drain(&mut self) -> Vec<u32>;
    /// For consistent-hash: the host `task` would run on if every host were free (its
    /// first choice in rendezvous order). `None` for the other algorithms.
    fn first_choice(&self, _task: TaskRef) -> Option<usize> {
        None
    }
}

/// Where a speculative copy of a task running on host `from` should go: the fastest other
/// host with a free slot (least pressure among equals). While any host is faster than
/// `from`, only a faster one: a copy on a host as slow as the original ends after it unless
/// that host is sick, and it would hold the task's one copy. `None` while none is free.
pub fn copy_host(hosts: &[HostView], from: usize) -> Option<usize> {
    let own = hosts.get(from).map_or(0.0, effective_speed);
    let faster_exists = hosts
        .iter()
        .any(|v| v.liveness == Liveness::Up && !v.gated && effective_speed(v) > own);
    hosts
        .iter()
        .enumerate()
        .filter(|&(h, v)| h != from && v.free() > 0)
        .filter(|&(_, v)| {
            let e = effective_speed(v);
            if faster_exists { e > own } else { e >= own }
        })
        .min_by(|a, b| {
            effective_speed(b.1)
                .total_cmp(&effective_speed(a.1))
                .then(pressure(a.1).total_cmp(&pressure(b.1)))
        })
        .map(|(h, _)| h)
}

/// What an algorithm needs to know up front.
#[derive(Debug, Clone)]
pub struct Params {
    pub seed: u64,
    /// Consistent-hash load bound: a host takes at most ⌈(1+ε)·fair share⌉ of the tasks.
    pub epsilon: f64,
    /// Host names (they seed rendezvous hashing) and weights, in inventory order.
    pub hosts: Vec<(String, f64)>,
    /// Tasks in the job, for consistent-hash's fair share.
    pub total_tasks: usize,
}

/// Builds the algorithm.
pub fn new(algorithm: Algorithm, params: &Params) -> Box<dyn Placement + Send> {
    match algorithm {
        Algorithm::Random => Box::new(Fifo::new(Random::new(params.seed))),
        Algorithm::RoundRobin => Box::new(Fifo::new(RoundRobin::default())),
        Algorithm::LeastLoad => Box::new(Fifo::new(LeastLoad::default())),
        Algorithm::ConsistentHash => Box::new(ConsistentHash::new(params)),
    }
}

#[cfg(test)]
mod tests {
    use super::testing::up;
    use super::*;

    #[test]
    fn a_copy_goes_to_the_fastest_free_host() {
        let mut hosts = vec![up(2), up(2), up(2)];
        hosts[0].weight = 0.5;
        hosts[2].weight = 2.0;
        assert_eq!(copy_host(&hosts, 0), Some(2));
        hosts[2].running = 2;
        assert_eq!(copy_host(&hosts, 0), Some(1));
    }

    #[test]
    fn speculation_never_copies_onto_a_host_as_slow_as_the_original_while_a_faster_one_exists() {
        let mut hosts = vec![up(1), up(1), up(1)];
        hosts[0].weight = 0.5;
        hosts[1].weight = 0.5;
        hosts[2].running = 1;
        assert_eq!(copy_host(&hosts, 0), None);
    }

    #[test]
    fn on_equal_hosts_a_copy_takes_a_peer() {
        let mut hosts = vec![up(1), up(2)];
        hosts[0].running = 1;
        assert_eq!(copy_host(&hosts, 0), Some(1));
        hosts[1].running = 2;
        assert_eq!(copy_host(&hosts, 0), None);
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn up(slots: u32) -> HostView {
        HostView {
            liveness: Liveness::Up,
            slots,
            running: 0,
            weight: 1.0,
            load: 0.0,
            gated: false,
        }
    }

    /// Places every queued task as if all ran forever; returns the host of each, in order.
    pub fn place_all(p: &mut dyn Placement, hosts: &mut [HostView]) -> Vec<(u32, usize)> {
        let mut placed = Vec::new();
        while let Some((task, host)) = p.next(hosts) {
            hosts[host].running += 1;
            placed.push((task, host));
        }
        placed
    }

    pub fn push_n(p: &mut dyn Placement, n: u32) {
        for id in 0..n {
            p.push(TaskRef {
                id,
                key: key_hash(id.to_string().as_bytes()),
            });
        }
    }
}
