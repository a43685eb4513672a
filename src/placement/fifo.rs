//! Tasks in arrival order for the algorithms that only choose a host (random, round-robin,
//! least-load): the queue lives here once, each algorithm implements [`ChooseHost`].

use std::collections::VecDeque;

use super::{HostView, Placement, TaskRef};

/// Picks the host for the task at the head of the queue.
pub trait ChooseHost {
    /// A host with a free slot for the next of `queued` tasks, or `None` to wait.
    fn choose(&mut self, hosts: &[HostView], queued: usize) -> Option<usize>;
}

/// A FIFO queue placed by a [`ChooseHost`].
#[derive(Debug, Default)]
pub struct Fifo<C> {
    queue: VecDeque<TaskRef>,
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

impl<C: ChooseHost> Placement for Fifo<C> {
    fn push(&mut self, task: TaskRef) {
        self.queue.push_back(task);
    }

    fn next(&mut self, hosts: &[HostView]) -> Option<(u32, usize)> {
        if self.queue.is_empty() {
            return None;
        }
        let host = self.chooser.choose(hosts, self.queue.len())?;
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
