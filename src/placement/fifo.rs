//! Tasks in arrival order for the algorithms that only choose a host (random, round-robin,
//! least-load): the queue lives here once, each algorithm implements [`ChooseHost`].

use std::collections::VecDeque;

use super::{HostView, Liveness, Placement, TaskRef};

/// Picks the host for the task at the head of the queue.
pub trait ChooseHost {
    /// A host with a free slot for the next of `queued` tasks, or `None` to wait.
    fn choose(&mut self, hosts: &[HostView], queued: usize) -> Option<usize>;
    /// See [`Placement::observe`].
    fn observe(&mut self, work: f64) {
        let _ = work;
    }
}

/// How far past the head the queue is searched for a task that can go elsewhere than the
/// host it should avoid.
const LOOKAHEAD: usize = 16;

/// A FIFO queue placed by a [`ChooseHost`].
#[derive(Debug, Default)]
pub struct Fifo<C> {
    /// Tasks, with the host each would rather not run on (where it just failed).
    queue: VecDeque<(TaskRef, Option<usize>)>,
    chooser: C,
}

impl<C> Fifo<C> {
    pub fn new(chooser: C) -> Self {
        Fifo {
            queue: VecDeque::new(),
            chooser,
        }
    }
}

impl<C: ChooseHost> Fifo<C> {
    /// The host for a task avoiding `avoid`, if another host can take it now.
    fn choose_avoiding(&mut self, hosts: &[HostView], avoid: usize) -> Option<usize> {
        let mut masked = hosts.to_vec();
        if let Some(view) = masked.get_mut(avoid) {
            view.liveness = Liveness::Starting;
        }
        self.chooser.choose(&masked, self.queue.len())
    }
}

impl<C: ChooseHost> Placement for Fifo<C> {
    fn push(&mut self, task: TaskRef) {
        self.queue.push_back((task, None));
    }

    fn push_avoiding(&mut self, task: TaskRef, avoid: usize) {
        self.queue.push_back((task, Some(avoid)));
    }

    /// The first task, in order, that can start now: a task avoiding a host is passed over
    /// (within [`LOOKAHEAD`]) while only that host has room, unless nothing else can start.
    fn next(&mut self, hosts: &[HostView]) -> Option<(u32, usize)> {
        let (_, first_avoid) = *self.queue.front()?;
        if first_avoid.is_none() {
            let host = self.chooser.choose(hosts, self.queue.len())?;
            let (task, _) = self.queue.pop_front()?;
            return Some((task.id, host));
        }
        for i in 0..self.queue.len().min(LOOKAHEAD) {
            let (task, avoid) = self.queue[i];
            let host = match avoid {
                Some(avoid) => self.choose_avoiding(hosts, avoid),
                None => self.chooser.choose(hosts, self.queue.len()),
            };
            if let Some(host) = host {
                self.queue.remove(i);
                return Some((task.id, host));
            }
        }
        let host = self.chooser.choose(hosts, self.queue.len())?;
        let (task, _) = self.queue.pop_front()?;
        Some((task.id, host))
    }

    fn observe(&mut self, work: f64) {
        self.chooser.observe(work);
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn drain(&mut self) -> Vec<u32> {
        self.queue.drain(..).map(|(t, _)| t.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::RoundRobin;
    use crate::placement::testing::*;

    #[test]
    fn a_retried_task_goes_to_another_host_when_one_has_room() {
        let mut p = Fifo::new(RoundRobin::default());
        p.push_avoiding(TaskRef { id: 7, key: 0 }, 0);
        let hosts = vec![up(1), up(1)];
        assert_eq!(p.next(&hosts), Some((7, 1)));
    }

    #[test]
    fn other_tasks_go_first_while_only_the_avoided_host_has_room() {
        let mut p = Fifo::new(RoundRobin::default());
        p.push_avoiding(TaskRef { id: 7, key: 0 }, 0);
        p.push(TaskRef { id: 8, key: 0 });
        let mut hosts = vec![up(1), up(1)];
        hosts[1].running = 1;
        assert_eq!(p.next(&hosts), Some((8, 0)));
        // Alone in the queue it takes the avoided host rather than wait.
        assert_eq!(p.next(&[up(1), hosts[1].clone()]), Some((7, 0)));
    }
}
