//! Round-robin: the next host in inventory order that has a free slot.

use std::collections::VecDeque;

use super::{HostView, Placement, TaskRef};

#[derive(Debug, Default)]
pub struct RoundRobin {
    queue: VecDeque<TaskRef>,
    /// Where the next search starts.
    cursor: usize,
}

impl Placement for RoundRobin {
    fn push(&mut self, task: TaskRef) {
        self.queue.push_back(task);
    }

    fn next(&mut self, hosts: &[HostView]) -> Option<(u32, usize)> {
        if self.queue.is_empty() || hosts.is_empty() {
            return None;
        }
        let n = hosts.len();
        let host = (0..n)
            .map(|i| (self.cursor + i) % n)
            .find(|&h| hosts[h].free() > 0)?;
        self.cursor = (host + 1) % n;
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
    fn cycles_through_hosts_in_order() {
        let mut p = RoundRobin::default();
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
        let mut p = RoundRobin::default();
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
