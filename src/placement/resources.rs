//! Resource requests (issue 17 item 1, the pure core): what one task asks of a host (slots,
//! memory, GPUs), what a host has, and the [`Ledger`] of what it has given to running
//! tasks, including which GPU indices. Pure: the caller says what a host has and when a
//! task starts and ends.
//!
//! The runner keeps one [`Ledger`] per host when a job sets `--cpus`, `--mem` or `--gpus`
//! (`runner::hosts`); placement sees only how many more tasks fit ([`Ledger::room`]).
//!
//! # Memory a new task may ask for
//!
//! A `mem` the inventory declares is a budget: free = declared − what running tasks asked.
//!
//! A probed figure is the host's available memory at that probe, and the dts tasks running
//! then already take what they had allocated out of it: subtracting their requests again
//! counts them twice. So a probed host has, for a new task, the smaller of
//!
//! 1. **the reading:** the latest probe's available memory − what the tasks that started
//!    after that probe was asked requested (the reading cannot see them). Tasks running
//!    when it was asked are in the reading already, by what they use. This alone would
//!    trust a task that has used little of its request so far: it may still grow.
//! 2. **the budget:** the available memory of the latest probe that ran while no dts task
//!    held memory here (the *baseline*, the host without us) − what every running task
//!    requested. This keeps room for each task's whole request, and never counts a task
//!    twice, because the baseline was measured without any.
//!
//! The reading catches what the budget cannot see: other users' processes, and tasks that
//! use more than they asked. The budget catches a task that will grow into its request. A
//! task that ends gives its request back to the budget at once, and to the reading only at
//! the next probe (the reading still holds what it used). A probe whose asking time is not
//! known (a connection's own probe) sees no running task: it counts them all again, as the
//! safe side. Until a baseline exists the budget is the reading minus every request.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    /// Its place in the order the ledger gave grants out: which probes saw it.
    serial: u64,
}

/// The moment a probe was asked for: the grants given out before it are in its reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Grants with a serial below this were running (or had ended) when it was asked.
    serial: u64,
    /// No grant held memory when it was asked: the reading is the host without dts.
    idle: bool,
}

impl Grant {
    /// One slot and nothing else, for a task that asks for no more.
    pub fn plain() -> Grant {
        Grant {
            cpus: 1,
            mem: 0,
            gpus: Vec::new(),
            serial: 0,
        }
    }

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
    /// `mem` is the declared budget, or the latest probe's available memory.
    capacity: Capacity,
    cpus_used: u32,
    /// What every running task requested.
    mem_used: u64,
    /// Per GPU index: held by a running task.
    gpu_busy: Vec<bool>,
    /// Running tasks holding memory: serial → bytes requested.
    mem_held: BTreeMap<u64, u64>,
    /// The serial the next grant gets.
    next_serial: u64,
    /// Grants below this serial are in the latest probe's reading (0 when `mem` is declared).
    seen_below: u64,
    /// Available memory of the latest probe taken with no dts task holding memory here.
    baseline: Option<u64>,
}

impl Ledger {
    pub fn new(capacity: Capacity) -> Self {
        Ledger {
            capacity,
            cpus_used: 0,
            mem_used: 0,
            gpu_busy: vec![false; capacity.gpus as usize],
            mem_held: BTreeMap::new(),
            next_serial: 0,
            seen_below: 0,
            baseline: None,
        }
    }

    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// New slot and memory figures with the memory a declared budget, which every running
    /// task's request comes out of; what running tasks hold stays held.
    pub fn resize(&mut self, slots: u32, mem: Option<u64>) {
        self.capacity.slots = slots;
        self.capacity.mem = mem;
        self.seen_below = 0;
        self.baseline = None;
    }

    /// The moment to ask a probe at: pass it back with its reading to [`Ledger::probed`].
    pub fn cut(&self) -> Cut {
        Cut {
            serial: self.next_serial,
            idle: self.mem_held.is_empty(),
        }
    }

    /// A probe's reading of the host's available memory (see the module doc). `asked` is
    /// the [`Ledger::cut`] taken when it was asked for, `None` when that is unknown (a
    /// connection's own probe: it sees no running task, and is the baseline only while
    /// nothing was ever given out).
    pub fn probed(&mut self, slots: u32, available: Option<u64>, asked: Option<Cut>) {
        self.capacity.slots = slots;
        self.capacity.mem = available;
        let asked = asked.unwrap_or(Cut {
            serial: 0,
            idle: self.next_serial == 0,
        });
        self.seen_below = asked.serial;
        if asked.idle {
            self.baseline = available;
        }
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

    /// Memory a new task may ask for (see the module doc); `None` when the host's memory
    /// is unknown.
    pub fn free_mem(&self) -> Option<u64> {
        let reading = self.capacity.mem?;
        let unseen: u64 = self.mem_held.range(self.seen_below..).map(|(_, m)| m).sum();
        let budget = self
            .baseline
            .unwrap_or(reading)
            .saturating_sub(self.mem_used);
        Some(reading.saturating_sub(unseen).min(budget))
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
        let serial = self.next_serial;
        self.next_serial += 1;
        if request.mem > 0 {
            self.mem_held.insert(serial, request.mem);
        }
        Some(Grant {
            cpus: request.cpus,
            mem: request.mem,
            gpus,
            serial,
        })
    }

    /// Takes back what a finished task held.
    pub fn release(&mut self, grant: &Grant) {
        self.cpus_used = self.cpus_used.saturating_sub(grant.cpus);
        if self.mem_held.remove(&grant.serial).is_some() {
            self.mem_used = self.mem_used.saturating_sub(grant.mem);
        }
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
                prop_assert_eq!(ledger.free_cpus(), empty.free_cpus());
                prop_assert_eq!(ledger.free_mem(), empty.free_mem());
                prop_assert_eq!(ledger.free_gpus(), empty.free_gpus());
            }

            /// A probed host (`total` bytes, others using `others`), tasks each using a
            /// fraction of what they asked, probes now and then. After every start:
            /// every request still fits the host as the baseline probe found it, and what
            /// the tasks the latest probe could not see asked fits its reading. When every task uses all it asked and nothing else
            /// changes, the host fills to exactly its memory: nothing is counted twice.
            #[test]
            fn probed_memory_is_never_overcommitted_nor_counted_twice(
                total in 8u64..64,
                others in 0u64..8,
                full in any::<bool>(),
                steps in proptest::collection::vec((0u8..3, 1u64..9, 0u64..=100, any::<usize>()), 0..60),
            ) {
                let mut ledger = Ledger::new(host(64, None, 0));
                let reading = |running: &[(Grant, u64)]| {
                    total - others - running.iter().map(|(_, used)| used).sum::<u64>()
                };
                ledger.probed(64, Some(total - others), Some(ledger.cut()));
                let baseline = total - others;
                let mut running: Vec<(Grant, u64)> = Vec::new();
                let mut seen = 0usize; // running[..seen] started before the latest probe
                let mut last_reading = baseline;
                for (what, mem, percent, pick) in steps {
                    match what {
                        0 if !running.is_empty() => {
                            let i = pick % running.len();
                            ledger.release(&running.remove(i).0);
                            seen -= usize::from(i < seen);
                        }
                        1 => {
                            last_reading = reading(&running);
                            ledger.probed(64, Some(last_reading), Some(ledger.cut()));
                            seen = running.len();
                        }
                        _ => {
                            let request = Request { mem, ..Request::default() };
                            let asked: u64 = running.iter().map(|(g, _)| g.mem).sum();
                            let fits_exactly = asked + mem <= baseline;
                            match ledger.take(&request) {
                                Some(grant) => {
                                    let used = if full { mem } else { mem * percent / 100 };
                                    running.push((grant, used));
                                }
                                None if full && seen == running.len() && last_reading == reading(&running) => {
                                    prop_assert!(!fits_exactly, "refused {} with {} of {} asked", mem, asked, baseline);
                                }
                                None => {}
                            }
                        }
                    }
                    let asked: u64 = running.iter().map(|(g, _)| g.mem).sum();
                    prop_assert!(asked <= baseline, "{} asked of {}", asked, baseline);
                    // The reading has what the tasks it saw use already taken out.
                    let asked_unseen: u64 = running[seen..].iter().map(|(g, _)| g.mem).sum();
                    prop_assert!(asked_unseen <= last_reading);
                }
            }
        }
    }

    fn mem(bytes: u64) -> Request {
        Request {
            mem: bytes,
            ..Request::default()
        }
    }

    /// The defect: a task's memory was taken out of a probe's reading that already had it
    /// in use, so a host filled to half its memory could take nothing more.
    #[test]
    fn mem_of_tasks_a_probe_already_saw_is_not_counted_twice() {
        let mut ledger = Ledger::new(host(8, None, 0));
        ledger.probed(8, Some(100), None);
        let a = ledger.take(&mem(30)).unwrap();
        let _b = ledger.take(&mem(30)).unwrap();
        // Both use all they asked: the next probe reads 40 available.
        ledger.probed(8, Some(40), Some(ledger.cut()));
        assert_eq!(ledger.free_mem(), Some(40), "not 40 − 60");
        assert!(ledger.take(&mem(40)).is_some());
        assert_eq!(ledger.free_mem(), Some(0));
        ledger.release(&a);
        assert_eq!(
            ledger.free_mem(),
            Some(0),
            "the reading gets a's memory back at the next probe"
        );
        ledger.probed(8, Some(30), Some(ledger.cut()));
        assert_eq!(ledger.free_mem(), Some(30));
    }

    #[test]
    fn a_task_the_probe_saw_using_little_keeps_room_to_grow_into_its_request() {
        let mut ledger = Ledger::new(host(8, None, 0));
        ledger.probed(8, Some(100), None);
        ledger.take(&mem(60)).unwrap();
        // It has used 10 so far: the reading says 90, the budget 40.
        ledger.probed(8, Some(90), Some(ledger.cut()));
        assert_eq!(ledger.free_mem(), Some(40));
    }

    #[test]
    fn memory_others_take_shrinks_what_a_task_may_ask() {
        let mut ledger = Ledger::new(host(8, None, 0));
        ledger.probed(8, Some(100), None);
        ledger.take(&mem(20)).unwrap();
        // Another user took 50 and the task uses its 20.
        ledger.probed(8, Some(30), Some(ledger.cut()));
        assert_eq!(ledger.free_mem(), Some(30));
        // A task started after the probe is not in its reading: its request counts.
        ledger.take(&mem(10)).unwrap();
        assert_eq!(ledger.free_mem(), Some(20));
    }

    #[test]
    fn a_probe_asked_while_tasks_ran_is_no_baseline_and_one_of_unknown_time_sees_no_task() {
        let mut ledger = Ledger::new(host(8, None, 0));
        ledger.probed(8, Some(100), None);
        ledger.take(&mem(50)).unwrap();
        let asked = ledger.cut();
        ledger.take(&mem(10)).unwrap();
        // Asked before the second task started: only the first is in the reading.
        ledger.probed(8, Some(50), Some(asked));
        assert_eq!(ledger.free_mem(), Some(40));
        // A connection's own probe: every running request counts against it.
        ledger.probed(8, Some(50), None);
        assert_eq!(ledger.free_mem(), Some(0));
    }

    #[test]
    fn a_declared_budget_counts_every_running_request() {
        let mut ledger = Ledger::new(host(8, Some(100), 0));
        ledger.take(&mem(30)).unwrap();
        assert_eq!(ledger.free_mem(), Some(70));
        ledger.resize(8, Some(100));
        assert_eq!(ledger.free_mem(), Some(70));
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
