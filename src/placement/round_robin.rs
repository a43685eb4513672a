//! Round-robin: the next host in inventory order that has a free slot.

use super::HostView;
use super::fifo::{Backlog, ChooseHost};

#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Where the next search starts.
    cursor: usize,
}

impl ChooseHost for RoundRobin {
    fn choose(&mut self, hosts: &[HostView], _backlog: &Backlog) -> Option<usize> {
        let n = hosts.len();
        let host = (0..n)
            .map(|i| (self.cursor + i) % n)
            .find(|&h| hosts[h].free() > 0)?;
        self.cursor = (host + 1) % n;
        Some(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Placement;
    use crate::placement::fifo::Fifo;
    use crate::placement::testing::*;

    #[test]
    fn cycles_through_hosts_in_order() {
        let mut p = Fifo::new(RoundRobin::default());
        push_n(&mut p, 7);
        let mut hosts = vec![up(8), up(8), up(8)];
        let hosts_chosen: Vec<usize> = place_all(&mut p, &mut hosts)
            .iter()
            .map(|&(_, h)| h)
            .collect();
        assert_eq!(hosts_chosen, vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn skips_full_hosts_and_waits_when_all_are_full() {
        let mut p = Fifo::new(RoundRobin::default());
        push_n(&mut p, 5);
        let mut hosts = vec![up(1), up(2)];
        let placed = place_all(&mut p, &mut hosts);
        assert_eq!(
            placed.iter().map(|&(_, h)| h).collect::<Vec<_>>(),
            vec![0, 1, 1]
        );
        assert_eq!(p.len(), 2);
    }
}
