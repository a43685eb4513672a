//! Consistent-hash: weighted rendezvous hashing of task keys, with bounded loads and
//! late binding.
//!
//! The hash is fixed and documented so plans are stable across machines and versions:
//! `key_hash = xxh3_64(key bytes)`, `host_hash = xxh3_64(host name)`, and the score of a
//! host for a key is `-weight / ln(u)` with `u = (xxh3_64(key_hash ‖ host_hash as 16
//! little-endian bytes) >> 11 + 0.5) / 2^53` — weighted rendezvous hashing (Schindelhauer
//! and Schomaker). A key's *home* is the best-scoring host whose assigned count is below
//! its bound `⌈(1+ε) · total · weight / Σweight⌉`; each host runs its home queue in order.
//! A host with free slots and an empty queue takes the last task of the longest queue
//! (still within its bound), so no host idles while work waits. Hosts that are gone have
//! their queues re-homed over the remaining hosts.

use std::collections::VecDeque;

use xxhash_rust::xxh3::xxh3_64;

use super::{HostView, Liveness, Params, Placement, TaskRef};

/// The documented key hash: xxh3-64 of the rendered key.
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// The 53-bit draw of a key on a host.
fn draw(key: u64, host_hash: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&key.to_le_bytes());
    bytes[8..].copy_from_slice(&host_hash.to_le_bytes());
    xxh3_64(&bytes) >> 11
}

fn score(key: u64, host_hash: u64, weight: f64) -> f64 {
    let u = (draw(key, host_hash) as f64 + 0.5) / (1u64 << 53) as f64;
    -weight / u.ln()
}

#[derive(Debug)]
pub struct ConsistentHash {
    host_hashes: Vec<u64>,
    weights: Vec<f64>,
    /// Per host: the most tasks it may be assigned.
    bounds: Vec<u64>,
    /// Per host: tasks assigned so far (home or taken over).
    assigned: Vec<u64>,
    /// Per host: tasks waiting to run there, in order.
    queues: Vec<VecDeque<TaskRef>>,
    /// Hosts known to be gone, whose queues have been re-homed.
    gone: Vec<bool>,
    queued: usize,
    /// All weights equal: the score is monotonic in the draw, so the draw is compared
    /// directly (same order, no logarithm).
    uniform: bool,
}

impl ConsistentHash {
    pub fn new(params: &Params) -> ConsistentHash {
        let n = params.hosts.len();
        let total_weight: f64 = params.hosts.iter().map(|(_, w)| w).sum();
        let bounds = params
            .hosts
            .iter()
            .map(|(_, w)| {
                let fair = params.total_tasks as f64 * w / total_weight;
                ((1.0 + params.epsilon) * fair).ceil().max(1.0) as u64
            })
            .collect();
        ConsistentHash {
            host_hashes: params
                .hosts
                .iter()
                .map(|(name, _)| xxh3_64(name.as_bytes()))
                .collect(),
            weights: params.hosts.iter().map(|(_, w)| *w).collect(),
            bounds,
            assigned: vec![0; n],
            queues: vec![VecDeque::new(); n],
            gone: vec![false; n],
            queued: 0,
            uniform: params.hosts.windows(2).all(|w| w[0].1 == w[1].1),
        }
    }

    /// A value that orders hosts for `key` exactly as the rendezvous score does.
    fn rank(&self, key: u64, h: usize) -> f64 {
        if self.uniform {
            draw(key, self.host_hashes[h]) as f64
        } else {
            score(key, self.host_hashes[h], self.weights[h])
        }
    }

    /// The best-scoring host that is not gone and not `avoid` and, if `room`, is below its
    /// bound.
    fn best(&self, key: u64, room: bool, avoid: Option<usize>) -> Option<usize> {
        (0..self.host_hashes.len())
            .filter(|&h| {
                Some(h) != avoid && !self.gone[h] && (!room || self.assigned[h] < self.bounds[h])
            })
            .map(|h| (h, self.rank(key, h)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(h, _)| h)
    }

    /// The first host in the key's rendezvous order with room under its bound; if all are
    /// at their bound (possible once hosts are gone), the best remaining host.
    fn home(&self, key: u64, avoid: Option<usize>) -> Option<usize> {
        self.best(key, true, avoid)
            .or_else(|| self.best(key, false, avoid))
            .or_else(|| self.best(key, false, None))
    }

    fn assign(&mut self, task: TaskRef, avoid: Option<usize>) {
        if let Some(h) = self.home(task.key, avoid) {
            self.assigned[h] += 1;
            self.queues[h].push_back(task);
            self.queued += 1;
        }
    }

    /// Re-homes the queues of hosts that became gone.
    fn forget_gone(&mut self, hosts: &[HostView]) {
        for (h, view) in hosts.iter().enumerate().take(self.gone.len()) {
            if view.liveness == Liveness::Gone && !self.gone[h] {
                self.gone[h] = true;
                let orphans: Vec<TaskRef> = self.queues[h].drain(..).collect();
                self.queued -= orphans.len();
                self.assigned[h] -= orphans.len() as u64;
                for task in orphans {
                    self.assign(task, None);
                }
            }
        }
    }

    /// The queue to take from for a host whose own queue is empty: the longest relative to
    /// its host's capacity.
    fn victim(&self, hosts: &[HostView], thief: usize) -> Option<usize> {
        (0..self.queues.len())
            .filter(|&v| v != thief && !self.queues[v].is_empty())
            .max_by(|&a, &b| {
                let load = |h: usize| {
                    self.queues[h].len() as f64
                        / (f64::from(hosts[h].slots.max(1)) * self.weights[h])
                };
                load(a).total_cmp(&load(b)).then(b.cmp(&a))
            })
    }
}

impl Placement for ConsistentHash {
    fn push(&mut self, task: TaskRef) {
        self.assign(task, None);
    }

    fn push_avoiding(&mut self, task: TaskRef, avoid: usize) {
        self.assign(task, Some(avoid));
    }

    fn next(&mut self, hosts: &[HostView]) -> Option<(u32, usize)> {
        if self.queued == 0 {
            return None;
        }
        self.forget_gone(hosts);
        let free = |h: usize| hosts.get(h).is_some_and(|v| v.free() > 0);
        // Own queues first: a host runs the keys that hash to it.
        if let Some(h) = (0..self.queues.len()).find(|&h| free(h) && !self.queues[h].is_empty()) {
            let task = self.queues[h].pop_front()?;
            self.queued -= 1;
            return Some((task.id, h));
        }
        // Then idle hosts take over from the longest queue, within their bound.
        let thief =
            (0..self.queues.len()).find(|&h| free(h) && self.assigned[h] < self.bounds[h])?;
        let victim = self.victim(hosts, thief)?;
        let task = self.queues[victim].pop_back()?;
        self.queued -= 1;
        self.assigned[victim] -= 1;
        self.assigned[thief] += 1;
        Some((task.id, thief))
    }

    fn len(&self) -> usize {
        self.queued
    }

    fn drain(&mut self) -> Vec<u32> {
        self.queued = 0;
        self.queues
            .iter_mut()
            .flat_map(|q| q.drain(..).map(|t| t.id).collect::<Vec<_>>())
            .collect()
    }

    fn first_choice(&self, task: TaskRef) -> Option<usize> {
        (0..self.host_hashes.len())
            .map(|h| (h, self.rank(task.key, h)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(h, _)| h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::testing::*;

    fn params(hosts: &[&str], total: usize) -> Params {
        Params {
            seed: 0,
            epsilon: 0.25,
            hosts: hosts.iter().map(|h| (h.to_string(), 1.0)).collect(),
            total_tasks: total,
        }
    }

    #[test]
    fn same_key_same_host_across_runs() {
        let plan = || {
            let mut p = ConsistentHash::new(&params(&["a", "b", "c", "d"], 100));
            push_n(&mut p, 100);
            let mut placed = place_all(&mut p, &mut [up(100), up(100), up(100), up(100)]);
            placed.sort();
            placed
        };
        assert_eq!(plan(), plan());
    }

    #[test]
    fn bound_is_respected() {
        let mut p = ConsistentHash::new(&params(&["a", "b", "c", "d"], 1000));
        push_n(&mut p, 1000);
        let mut hosts = vec![up(1000); 4];
        place_all(&mut p, &mut hosts);
        for h in &hosts {
            assert!(h.running as f64 <= (1.25f64 * 250.0).ceil(), "{hosts:?}");
        }
    }

    #[test]
    fn a_busy_home_does_not_leave_others_idle() {
        let mut p = ConsistentHash::new(&params(&["a", "b"], 10));
        push_n(&mut p, 10);
        let mut hosts = vec![up(1), up(1)];
        assert_eq!(place_all(&mut p, &mut hosts).len(), 2);
    }

    #[test]
    fn gone_hosts_are_rehomed() {
        let mut p = ConsistentHash::new(&params(&["a", "b", "c"], 30));
        push_n(&mut p, 30);
        let mut hosts = vec![up(100), up(100), up(100)];
        hosts[1].liveness = Liveness::Gone;
        let placed = place_all(&mut p, &mut hosts);
        assert_eq!(placed.len(), 30);
        assert!(placed.iter().all(|&(_, h)| h != 1));
    }
}
