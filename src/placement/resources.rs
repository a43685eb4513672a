//! Resource requests (issue 17 item 1, the pure core): what one task asks of a host (slots,
//! memory, GPUs), what a host has, and the [`Ledger`] of what it has given to running
//! tasks, including which GPU indices. Pure: the caller says what a host has and when a
//! task starts and ends.
//!
//! Not wired to `--cpus`/`--mem`/`--gpus` yet: placement still takes one slot per task.

use std::fmt;

/// What one task needs while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Slots it takes (`--cpus`); at least 1.
    pub cpus: u32,
    /// Bytes of memory (`--mem`); 0 asks for none.
    pub mem: u64,
    /// Distinct GPUs (`--gpus`).
    pub gpus: u32,
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
