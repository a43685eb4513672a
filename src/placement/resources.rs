//! Resource requests (issue 17 item 1, the pure core): what one task asks of a host (slots,
//! memory, GPUs), what a host has, and the [`Ledger`] of what it has given to running
//! tasks, including which GPU indices. Pure: the caller says what a host has and when a
//! task starts and ends.
//!
//! The runner keeps one [`Ledger`] per host when a job sets `--cpus`, `--mem` or `--gpus`
//! (`runner::hosts`); placement sees only how many more tasks fit ([`Ledger::room`]).

use serde::{Deserialize, Serialize};
use std::fmt;

/// What one task needs while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Slots it takes (`--cpus`); at least 1.
    pub cpus: u32,
    /// Bytes of memory (`--mem`); 0 asks for none.
    pub mem: u64,
    /// Distinct GPUs (`--gpus`).
    pub gpus: u32,
}

impl Request {
    /// One slot and nothing else: what every task took before requests existed.
    pub fn is_plain(&self) -> bool {
        *self == Request::default()
    }
}

impl Default for Request {
    fn default() -> Self {
        Request {
            cpus: 1,
            mem: 0,
            gpus: 0,
        }
    }
}

/// What a host can give out in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub slots: u32,
    /// Available memory when probed; `None` when unknown (then no memory request fits).
    pub mem: Option<u64>,
    /// GPUs, indexed 0..gpus.
    pub gpus: u32,
}

impl Capacity {
    /// Whether the host could run the task with nothing else running.
    pub fn can_ever_fit(&self, request: &Request) -> bool {
        request.cpus <= self.slots
            && request.gpus <= self.gpus
            && (request.mem == 0 || self.mem.is_some_and(|m| request.mem <= m))
    }
}

/// Why no host can ever run a task: the request and the most any host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsatisfiable {
    pub request: Request,
    pub most_slots: u32,
    pub most_mem: Option<u64>,
    pub most_gpus: u32,
}

impl fmt::Display for Unsatisfiable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.request;
        write!(
            f,
            "no host can ever run a task asking for {} slot(s), {} GPU(s)",
            r.cpus, r.gpus
        )?;
        if r.mem > 0 {
            write!(f, " and {} bytes of memory", r.mem)?;
        }
        write!(
            f,
            " (the most any host has: {} slots, {} GPUs, ",
            self.most_slots, self.most_gpus
        )?;
        match self.most_mem {
            Some(m) => write!(f, "{m} bytes of memory)"),
            None => write!(f, "memory unknown)"),
        }
    }
}

/// Checks before anything runs that some host can run the task at all.
pub fn check_satisfiable(hosts: &[Capacity], request: &Request) -> Result<(), Unsatisfiable> {
    if hosts.iter().any(|h| h.can_ever_fit(request)) {
        return Ok(());
    }
    Err(Unsatisfiable {
        request: *request,
        most_slots: hosts.iter().map(|h| h.slots).max().unwrap_or(0),
        most_mem: hosts.iter().filter_map(|h| h.mem).max(),
        most_gpus: hosts.iter().map(|h| h.gpus).max().unwrap_or(0),
    })
}

/// Checks before anything runs that some named host can run the task at all; the error
/// names the largest host in the first thing no host has enough of.
pub fn check_hosts(hosts: &[(&str, Capacity)], request: &Request) -> Result<(), String> {
    if hosts.iter().any(|(_, h)| h.can_ever_fit(request)) {
        return Ok(());
    }
    let mem_of = |h: &Capacity| h.mem.unwrap_or(0);
    let short =
        |have: &dyn Fn(&Capacity) -> u64, want: u64| hosts.iter().all(|(_, h)| have(h) < want);
    let (what, key): (&str, &dyn Fn(&Capacity) -> u64) =
        if short(&|h| u64::from(h.gpus), u64::from(request.gpus)) {
            ("GPUs", &|h| u64::from(h.gpus))
        } else if request.mem > 0 && short(&mem_of, request.mem) {
            ("memory", &mem_of)
        } else if short(&|h| u64::from(h.slots), u64::from(request.cpus)) {
            ("slots", &|h| u64::from(h.slots))
        } else {
            ("slots, GPUs and memory together", &|h| u64::from(h.slots))
        };
    let largest = hosts.iter().max_by_key(|(_, h)| key(h)).map_or_else(
        || "no host at all".to_string(),
        |(name, h)| describe(name, h),
    );
    Err(format!(
        "no host can ever run a task asking for {}: no host has enough {what}; the largest is {largest}",
        describe_request(request)
    ))
}

fn describe_request(r: &Request) -> String {
    let mut parts = vec![format!("--cpus {}", r.cpus)];
    if r.mem > 0 {
        parts.push(format!("--mem {}", super::gate::format_size(r.mem)));
    }
    if r.gpus > 0 {
        parts.push(format!("--gpus {}", r.gpus));
    }
    parts.join(" ")
}

fn describe(name: &str, h: &Capacity) -> String {
    let slots = match h.slots {
        u32::MAX => "slots unknown".to_string(),
        n => format!("{n} slots"),
    };
    let mem = match h.mem {
        Some(u64::MAX) | None => "memory unknown".to_string(),
        Some(m) => format!("{} memory", super::gate::format_size(m)),
    };
    format!("{name} ({slots}, {} GPUs, {mem})", h.gpus)
}

/// What a running task holds on its host; give it back with [`Ledger::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub cpus: u32,
    pub mem: u64,
    /// The GPU indices it may use, ascending.
    pub gpus: Vec<u32>,
}

impl Grant {
    /// `CUDA_VISIBLE_DEVICES` and `DTS_GPUS` for the task (empty when it has no GPU).
    pub fn gpu_env(&self) -> Vec<(&'static str, String)> {
        if self.gpus.is_empty() {
            return Vec::new();
        }
        let list = self
            .gpus
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        vec![("CUDA_VISIBLE_DEVICES", list.clone()), ("DTS_GPUS", list)]
    }
}

/// What one host has given to its running tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    capacity: Capacity,
    cpus_used: u32,
    mem_used: u64,
    /// Per GPU index: held by a running task.
    gpu_busy: Vec<bool>,
}

impl Ledger {
    pub fn new(capacity: Capacity) -> Self {
        Ledger {
            capacity,
            cpus_used: 0,
            mem_used: 0,
            gpu_busy: vec![false; capacity.gpus as usize],
        }
    }

    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// New slot and memory figures (the probe learns cores and available memory later);
    /// what running tasks hold stays held. GPUs are fixed by the inventory.
    pub fn resize(&mut self, slots: u32, mem: Option<u64>) {
        self.capacity.slots = slots;
        self.capacity.mem = mem;
    }

    /// GPUs counted later by the probe (`nvidia-smi -L`) where the inventory says none:
    /// indices only grow, so none a running task holds goes away.
    pub fn grow_gpus(&mut self, gpus: u32) {
        if gpus > self.capacity.gpus {
            self.capacity.gpus = gpus;
            self.gpu_busy.resize(gpus as usize, false);
        }
    }

    /// How many more tasks asking `request` fit now, each taking its share.
    pub fn room(&self, request: &Request) -> u32 {
        let per = |free: u32, each: u32| free.checked_div(each).unwrap_or(u32::MAX);
        let by_mem = match (request.mem, self.free_mem()) {
            (0, _) => u32::MAX,
            (_, None) => 0,
            (each, Some(free)) => u32::try_from(free / each).unwrap_or(u32::MAX),
        };
        per(self.free_cpus(), request.cpus)
            .min(per(self.free_gpus(), request.gpus))
            .min(by_mem)
    }

    /// Slots not given out.
    pub fn free_cpus(&self) -> u32 {
        self.capacity.slots.saturating_sub(self.cpus_used)
    }

    /// GPUs not given out.
    pub fn free_gpus(&self) -> u32 {
        self.gpu_busy.iter().filter(|b| !**b).count() as u32
    }

    /// Memory not given out; `None` when the host's memory is unknown.
    pub fn free_mem(&self) -> Option<u64> {
        self.capacity.mem.map(|m| m.saturating_sub(self.mem_used))
    }

    /// Whether the task can start here now.
    pub fn fits(&self, request: &Request) -> bool {
        request.cpus <= self.free_cpus()
            && request.gpus <= self.free_gpus()
            && (request.mem == 0 || self.free_mem().is_some_and(|m| request.mem <= m))
    }

    /// Gives the task what it asks for (the lowest free GPU indices), or `None` if it does
    /// not fit now.
    pub fn take(&mut self, request: &Request) -> Option<Grant> {
        if !self.fits(request) {
            return None;
        }
        let gpus: Vec<u32> = (0..self.capacity.gpus)
            .filter(|&i| !self.gpu_busy[i as usize])
            .take(request.gpus as usize)
            .collect();
        for &i in &gpus {
            self.gpu_busy[i as usize] = true;
        }
        self.cpus_used += request.cpus;
        self.mem_used += request.mem;
        Some(Grant {
            cpus: request.cpus,
            mem: request.mem,
            gpus,
        })
    }

    /// Takes back what a finished task held.
    pub fn release(&mut self, grant: &Grant) {
        self.cpus_used = self.cpus_used.saturating_sub(grant.cpus);
        self.mem_used = self.mem_used.saturating_sub(grant.mem);
        for &i in &grant.gpus {
            if let Some(busy) = self.gpu_busy.get_mut(i as usize) {
                *busy = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(slots: u32, mem: Option<u64>, gpus: u32) -> Capacity {
        Capacity { slots, mem, gpus }
    }

    #[test]
    fn gpus_the_probe_counts_later_are_added_and_held_ones_stay_held() {
        let mut ledger = Ledger::new(host(8, None, 1));
        let one = Request {
            gpus: 1,
            ..Request::default()
        };
        let a = ledger.take(&one).unwrap();
        ledger.grow_gpus(3);
        ledger.grow_gpus(2);
        assert_eq!(ledger.capacity().gpus, 3);
        let b = ledger.take(&one).unwrap();
        let c = ledger.take(&one).unwrap();
        assert_eq!((a.gpus, b.gpus, c.gpus), (vec![0], vec![1], vec![2]));
        assert_eq!(ledger.take(&one), None);
    }

    #[test]
    fn gpus_are_handed_out_lowest_first_and_come_back() {
        let mut ledger = Ledger::new(host(8, None, 4));
        let two = Request {
            gpus: 2,
            ..Request::default()
        };
        let a = ledger.take(&two).unwrap();
        let b = ledger.take(&two).unwrap();
        assert_eq!((a.gpus.clone(), b.gpus.clone()), (vec![0, 1], vec![2, 3]));
        assert_eq!(ledger.take(&two), None);
        ledger.release(&a);
        assert_eq!(ledger.take(&two).unwrap().gpus, vec![0, 1]);
        assert_eq!(
            b.gpu_env(),
            vec![
                ("CUDA_VISIBLE_DEVICES", "2,3".to_string()),
                ("DTS_GPUS", "2,3".to_string())
            ]
        );
    }

    #[test]
    fn four_cpus_on_eight_slots_run_two_at_a_time() {
        let mut ledger = Ledger::new(host(8, None, 0));
        let four = Request {
            cpus: 4,
            ..Request::default()
        };
        assert!(ledger.take(&four).is_some() && ledger.take(&four).is_some());
        assert!(!ledger.fits(&four));
        assert!(!ledger.fits(&Request::default()));
    }

    #[test]
    fn the_unsatisfiable_error_names_the_largest_host() {
        let hosts = [
            ("h1", host(8, Some(1 << 30), 1)),
            ("h2", host(4, Some(2 << 30), 2)),
        ];
        let three = Request {
            gpus: 3,
            ..Request::default()
        };
        assert_eq!(
            check_hosts(&hosts, &three).unwrap_err(),
            "no host can ever run a task asking for --cpus 1 --gpus 3: no host has enough GPUs; \
             the largest is h2 (4 slots, 2 GPUs, 2.0G memory)"
        );
        let big = Request {
            mem: 3 << 30,
            ..Request::default()
        };
        assert!(
            check_hosts(&hosts, &big)
                .unwrap_err()
                .contains("enough memory; the largest is h2")
        );
        let both = Request {
            cpus: 8,
            gpus: 2,
            ..Request::default()
        };
        assert!(check_hosts(&hosts, &both).unwrap_err().contains("together"));
        assert!(
            check_hosts(
                &hosts,
                &Request {
                    cpus: 8,
                    ..Request::default()
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn room_counts_the_tasks_that_still_fit() {
        let mut ledger = Ledger::new(host(8, Some(10), 3));
        let req = Request {
            cpus: 2,
            mem: 3,
            gpus: 1,
        };
        assert_eq!(ledger.room(&req), 3);
        ledger.take(&req).unwrap();
        assert_eq!(ledger.room(&req), 2);
        ledger.resize(8, Some(4));
        assert_eq!(ledger.room(&req), 0, "3 of 4 bytes held");
        assert_eq!(ledger.room(&Request::default()), 6);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn request() -> impl Strategy<Value = Request> {
            (1u32..5, 0u64..6, 0u32..3).prop_map(|(cpus, mem, gpus)| Request { cpus, mem, gpus })
        }

        proptest! {
            /// Any sequence of takes and releases: the held amounts never exceed capacity,
            /// no GPU index is held twice, `room` agrees with `fits`, and releasing every
            /// grant gives back the empty ledger.
            #[test]
            fn the_ledger_never_overcommits_and_releases_what_it_took(
                slots in 1u32..12, mem in 0u64..16, gpus in 0u32..5,
                steps in proptest::collection::vec((request(), any::<bool>(), any::<usize>()), 0..60),
            ) {
                let empty = Ledger::new(host(slots, Some(mem), gpus));
                let mut ledger = empty.clone();
                let mut held: Vec<Grant> = Vec::new();
                for (req, release, pick) in steps {
                    if release && !held.is_empty() {
                        let grant = held.swap_remove(pick % held.len());
                        ledger.release(&grant);
                    } else {
                        prop_assert_eq!(ledger.room(&req) > 0, ledger.fits(&req));
                        if let Some(grant) = ledger.take(&req) {
                            prop_assert_eq!(grant.gpus.len() as u32, req.gpus);
                            held.push(grant);
                        }
                    }
                    let cpus: u32 = held.iter().map(|g| g.cpus).sum();
                    let used_mem: u64 = held.iter().map(|g| g.mem).sum();
                    prop_assert!(cpus <= slots && used_mem <= mem);
                    let mut ids: Vec<u32> = held.iter().flat_map(|g| g.gpus.clone()).collect();
                    let count = ids.len();
                    ids.sort_unstable();
                    ids.dedup();
                    prop_assert_eq!(ids.len(), count, "a GPU index held twice");
                    prop_assert!(ids.iter().all(|&i| i < gpus));
                    prop_assert_eq!(ledger.free_cpus(), slots - cpus);
                }
                for grant in &held {
                    ledger.release(grant);
                }
                prop_assert_eq!(ledger, empty);
            }
        }
    }

    #[test]
    fn memory_above_every_host_is_unsatisfiable() {
        let hosts = [host(8, Some(1 << 30), 0), host(4, Some(2 << 30), 2)];
        let big = Request {
            mem: 3 << 30,
            ..Request::default()
        };
        let err = check_satisfiable(&hosts, &big).unwrap_err();
        assert_eq!(err.most_mem, Some(2 << 30));
        assert!(err.to_string().starts_with("no host can ever run a task"));
        let gpu = Request {
            gpus: 2,
            ..Request::default()
        };
        assert!(check_satisfiable(&hosts, &gpu).is_ok());
        // Unknown memory never satisfies a memory request.
        assert!(check_satisfiable(&[host(8, None, 0)], &big).is_err());
    }
}
