//! Tasks in arrival order for the algorithms that only choose a host (random, round-robin,
//! least-load): the queue lives here once, each algorithm implements [`ChooseHost`].

use std::collections::VecDeque;

use super::{HostView, Liveness, Placement, TaskRef};

/// What is still queued, for an algorithm that weighs the rest of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    /// Tasks queued.
    pub queued: usize,
    /// Those among them whose work is known ([`Placement::know_work`]).
    pub known: usize,
    /// Their known work, summed (speed-1 seconds).
    pub known_work: f64,
}

impl Backlog {
    /// The queued work, taking `mean` for each task whose work is not known.
    pub fn work(&self, mean: f64) -> f64 {
        self.known_work.max(0.0) + self.queued.saturating_sub(self.known) as f64 * mean
    }

    fn add(&mut self, work: Option<f64>, sign: f64) {
        if sign > 0.0 {
            self.queued += 1;
        } else {
            self.queued = self.queued.saturating_sub(1);
        }
        if let Some(w) = work {
            if sign > 0.0 {
                self.known += 1;
            } else {
                self.known = self.known.saturating_sub(1);
            }
            self.known_work += sign * w;
        }
    }
}

/// Picks the host for the task at the head of the queue.
pub trait ChooseHost {
    /// A host with a free slot for the next queued task, or `None` to wait.
    fn choose(&mut self, hosts: &[HostView], backlog: &Backlog) -> Option<usize>;
    /// [`ChooseHost::choose`] for a task whose work (speed-1 seconds) is known. `None` lets
    /// the queue offer a later task instead (within [`LOOKAHEAD`]), so the algorithm must
    /// accept any task on some host that will free: the fastest, at least.
    fn choose_known(&mut self, hosts: &[HostView], backlog: &Backlog, work: f64) -> Option<usize> {
        let _ = work;
        self.choose(hosts, backlog)
    }
    /// See [`Placement::observe`].
    fn observe(&mut self, work: f64) {
        let _ = work;
    }
    /// See [`Placement::finished`]; `work` is the task's known work, if any.
    fn finished(&mut self, hosts: &[HostView], host: usize, seconds: f64, work: Option<f64>) {
        let _ = work;
        if let Some(view) = hosts.get(host) {
            self.observe(seconds * super::effective_speed(view));
        }
    }
}

/// How far past the head the queue is searched for a task that can start now: one that can
/// go elsewhere than the host it should avoid, or one short enough for the free host.
const LOOKAHEAD: usize = 16;

/// A FIFO queue placed by a [`ChooseHost`].
#[derive(Debug, Default)]
pub struct Fifo<C> {
    /// Tasks, with the host each would rather not run on (where it just failed).
    queue: VecDeque<(TaskRef, Option<usize>)>,
    chooser: C,
    /// Known work of each task, by id (empty: none known).
    known: Vec<Option<f64>>,
    backlog: Backlog,
}

impl<C> Fifo<C> {
    pub fn new(chooser: C) -> Self {
        Fifo {
            queue: VecDeque::new(),
            chooser,
            known: Vec::new(),
            backlog: Backlog::default(),
        }
    }

    fn work_of(&self, task: TaskRef) -> Option<f64> {
        self.known.get(task.id as usize).copied().flatten()
    }

    fn enqueue(&mut self, task: TaskRef, avoid: Option<usize>) {
        self.backlog.add(self.work_of(task), 1.0);
        self.queue.push_back((task, avoid));
    }

    fn take(&mut self, i: usize) -> Option<TaskRef> {
        let (task, _) = self.queue.remove(i)?;
        self.backlog.add(self.work_of(task), -1.0);
        if self.queue.is_empty() {
            // No rounding left over from the sums.
            self.backlog = Backlog::default();
        }
        Some(task)
    }
}

impl<C: ChooseHost> Fifo<C> {
    /// The host for `task` (avoiding `avoid`), if one can take it now.
    fn choose_for(
        &mut self,
        hosts: &[HostView],
        task: TaskRef,
        avoid: Option<usize>,
    ) -> Option<usize> {
        let masked;
        let hosts = match avoid {
            Some(avoid) if avoid < hosts.len() => {
                let mut views = hosts.to_vec();
                views[avoid].liveness = Liveness::Starting;
                masked = views;
                &masked[..]
            }
            _ => hosts,
        };
        match self.work_of(task) {
            Some(work) => self.chooser.choose_known(hosts, &self.backlog, work),
            None => self.chooser.choose(hosts, &self.backlog),
        }
    }
}

impl<C: ChooseHost> Placement for Fifo<C> {
    fn push(&mut self, task: TaskRef) {
        self.enqueue(task, None);
    }

    fn push_avoiding(&mut self, task: TaskRef, avoid: usize) {
        self.enqueue(task, Some(avoid));
    }

    /// The first task, in order, that can start now: a task avoiding a host is passed over
    /// (within [`LOOKAHEAD`]) while only that host has room, and so is a task of known work
    /// that the free hosts decline; the head goes anywhere it is accepted when nothing else
    /// can start.
    fn next(&mut self, hosts: &[HostView]) -> Option<(u32, usize)> {
        let (head, head_avoid) = *self.queue.front()?;
        if head_avoid.is_none() && self.work_of(head).is_none() {
            let host = self.chooser.choose(hosts, &self.backlog)?;
            let task = self.take(0)?;
            return Some((task.id, host));
        }
        for i in 0..self.queue.len().min(LOOKAHEAD) {
            let (task, avoid) = self.queue[i];
            if let Some(host) = self.choose_for(hosts, task, avoid) {
                self.take(i);
                return Some((task.id, host));
            }
        }
        let host = self.choose_for(hosts, head, None)?;
        let task = self.take(0)?;
        Some((task.id, host))
    }

    fn observe(&mut self, work: f64) {
        self.chooser.observe(work);
    }

    fn finished(&mut self, task: u32, host: usize, seconds: f64, hosts: &[HostView]) {
        let work = self.known.get(task as usize).copied().flatten();
        self.chooser.finished(hosts, host, seconds, work);
    }

    fn know_work(&mut self, work: &[Option<f64>]) {
        self.known = work
            .iter()
            .map(|w| w.filter(|w| w.is_finite() && *w >= 0.0))
            .collect();
        let queued: Vec<TaskRef> = self.queue.iter().map(|&(t, _)| t).collect();
        self.backlog = Backlog::default();
        for task in queued {
            self.backlog.add(self.work_of(task), 1.0);
        }
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn drain(&mut self) -> Vec<u32> {
        self.backlog = Backlog::default();
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
