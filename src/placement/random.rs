//! Random: uniform among hosts with a free slot, from a seeded generator.

use super::HostView;
use super::fifo::{Backlog, ChooseHost};
use super::rng::SplitMix64;

#[derive(Debug)]
pub struct Random {
    rng: SplitMix64,
}

impl Random {
    pub fn new(seed: u64) -> Random {
        Random {
            rng: SplitMix64::new(seed),
        }
    }
}

impl ChooseHost for Random {
    fn choose(&mut self, hosts: &[HostView], _backlog: &Backlog) -> Option<usize> {
        let candidates = hosts.iter().filter(|h| h.free() > 0).count() as u64;
        if candidates == 0 {
            return None;
        }
        let pick = self.rng.below(candidates) as usize;
        hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.free() > 0)
            .nth(pick)
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::fifo::Fifo;
    use crate::placement::testing::*;

    #[test]
    fn same_seed_same_plan() {
        let plan = |seed| {
            let mut p = Fifo::new(Random::new(seed));
            push_n(&mut p, 50);
            place_all(&mut p, &mut [up(20), up(20), up(20)])
        };
        assert_eq!(plan(7), plan(7));
        assert_ne!(plan(7), plan(8));
    }

    #[test]
    fn only_hosts_with_free_slots() {
        let mut p = Fifo::new(Random::new(1));
        push_n(&mut p, 10);
        let mut hosts = vec![up(0), up(3), up(0)];
        let placed = place_all(&mut p, &mut hosts);
        assert_eq!(placed.len(), 3);
        assert!(placed.iter().all(|&(_, h)| h == 1));
    }
}
