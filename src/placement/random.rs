//! Random: uniform among hosts with a free slot, from a seeded generator.

use std::collections::VecDeque;

use super::rng::SplitMix64;
use super::{HostView, Placement, TaskRef};

#[derive(Debug)]
pub struct Random {
    queue: VecDeque<TaskRef>,
    rng: SplitMix64,
}

impl Random {
    pub fn new(seed: u64) -> Random {
        Random {
            queue: VecDeque::new(),
            rng: SplitMix64::new(seed),
        }
    }
}

impl Placement for Random {
    fn push(&mut self, task: TaskRef) {
        self.queue.push_back(task);
    }

    fn next(&mut self, hosts: &[HostView]) -> Option<(u32, usize)> {
        if self.queue.is_empty() {
            return None;
        }
        let candidates = hosts.iter().filter(|h| h.free() > 0).count() as u64;
        if candidates == 0 {
            return None;
        }
        let pick = self.rng.below(candidates) as usize;
        let host = hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.free() > 0)
            .nth(pick)
            .map(|(i, _)| i)?;
        let task = self.queue.pop_front()?;
        Some((task.id, host))
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn drain(&mut self) -> Vec<u32> {
        self.queue.drain(..).map(|t| t.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::testing::*;

    #[test]
    fn same_seed_same_plan() {
        let plan = |seed| {
            let mut p = Random::new(seed);
            push_n(&mut p, 50);
            place_all(&mut p, &mut [up(20), up(20), up(20)])
        };
        assert_eq!(plan(7), plan(7));
        assert_ne!(plan(7), plan(8));
    }

    #[test]
    fn only_hosts_with_free_slots() {
        let mut p = Random::new(1);
        push_n(&mut p, 10);
        let mut hosts = vec![up(0), up(3), up(0)];
        let placed = place_all(&mut p, &mut hosts);
        assert_eq!(placed.len(), 3);
        assert!(placed.iter().all(|&(_, h)| h == 1));
    }
}
