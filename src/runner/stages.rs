//! Readiness of a pipeline's tasks during one session: which of the session's tasks may
//! start now, which become ready when a task succeeds (and the host its `each_after`
//! predecessor ran on, where its files are), and which can never run once a task fails.
//!
//! The dispatcher owns the run; this keeps only the counts its questions need, so a
//! success costs the tasks it releases, not a walk over the whole graph. Pure: no I/O, no
//! clock. Tasks are named two ways: by *session task* (the dispatcher's index into the
//! tasks it runs now) and by *position* in the run's flat list (the graph's, `seq - 1`).
//! A run task this session does not run has either succeeded before or is `unrunnable`
//! (it did not succeed, and this session leaves it alone).

use super::Outcome;
use crate::job::JobSpec;
use crate::job::stages::{Graph, TaskState};

/// How a skipped task is shown (the store keeps state `skipped` and this reason).
pub const SKIPPED: &str = "skipped (dependency failed)";
pub const SKIP_REASON: &str = "dependency failed";

/// What earlier sessions of a pipeline's run left behind, by task `seq`.
#[derive(Debug, Clone, Default)]
pub struct Earlier {
    /// Tasks that did not succeed and that this session does not run: what depends on them
    /// is skipped. Every other task this session does not run succeeded.
    pub unrunnable: Vec<u32>,
    /// Tasks that succeeded, with the host (index in the run's hosts) they ran on: an
    /// `each_after` task of this session prefers it.
    pub ran_on: Vec<(u32, usize)>,
}

/// The readiness of a pipeline's tasks in this session; `None` for a plain job.
pub fn for_session(job: &JobSpec, earlier: &Earlier) -> Option<Readiness> {
    let pipeline = job.pipeline.as_ref()?;
    let seqs: Vec<u32> = job.tasks.iter().map(|t| t.seq).collect();
    let mut readiness = Readiness::new(pipeline.graph.clone(), &seqs, &earlier.unrunnable);
    for &(seq, host) in &earlier.ran_on {
        if let Some(slot) = readiness.ran_on.get_mut((seq.max(1) - 1) as usize) {
            *slot = Some(host);
        }
    }
    Some(readiness)
}

/// Per session task whether it may be queued at once, and the tasks that can never run;
/// without a pipeline every task is ready.
pub fn start(readiness: Option<&mut Readiness>, tasks: usize) -> (Vec<bool>, Vec<usize>) {
    let Some(readiness) = readiness else {
        return (vec![true; tasks], Vec::new());
    };
    let (ready, never) = readiness.start();
    let mut is_ready = vec![false; tasks];
    for task in ready {
        is_ready[task] = true;
    }
    (is_ready, never)
}

/// What becomes of the tasks waiting for one that ended with `outcome` (not a success):
/// after a failure they are skipped; a stop or a missing host ends them as it ended it, so
/// `dts retry` sees them as it sees it.
pub fn dependent_outcome(outcome: &Outcome) -> Outcome {
    match outcome {
        Outcome::Cancelled => Outcome::Cancelled,
        Outcome::NotRun(why) => Outcome::NotRun(why.clone()),
        _ => Outcome::Skipped,
    }
}

/// A session task that may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub task: usize,
    /// The host where its `each_after` predecessor succeeded in this session.
    pub prefer: Option<usize>,
}

pub struct Readiness {
    graph: Graph,
    /// Per position. `Running` means handed to the dispatcher (queued or running there).
    states: Vec<TaskState>,
    /// Per position: dependencies not yet met (an `after` stage counts once, until every
    /// task of it has succeeded; the `each_after` task once).
    unmet: Vec<u32>,
    /// Per stage: its tasks that have not succeeded.
    left: Vec<usize>,
    /// Per stage: a stage it waits for wholly had a task fail, so it can never run.
    doomed: Vec<bool>,
    /// Per stage: the stages that wait for every task of it, and those task by task.
    waiting_all: Vec<Vec<usize>>,
    waiting_each: Vec<Vec<usize>>,
    /// Per position: the session task it is, if this session runs it.
    session: Vec<Option<usize>>,
    /// Per session task: its position.
    position: Vec<usize>,
    /// Per position: the host it succeeded on (in this session, or an earlier one).
    ran_on: Vec<Option<usize>>,
    /// Tasks ready at the start whose `each_after` predecessor ran on a known host: they
    /// wait for the first dispatch, when that host has connected or failed.
    held: Vec<Ready>,
}

impl Readiness {
    /// `seqs` holds the run's `seq` of each session task; `unrunnable` the seqs of run tasks
    /// that did not succeed and that this session does not run. Every other task of the
    /// run succeeded before.
    pub fn new(graph: Graph, seqs: &[u32], unrunnable: &[u32]) -> Readiness {
        let n = graph.task_count();
        let stages = graph.stage_count();
        let mut states = vec![TaskState::Succeeded; n];
        let mut session = vec![None; n];
        let position: Vec<usize> = seqs.iter().map(|&s| (s.max(1) - 1) as usize).collect();
        for &seq in unrunnable {
            if let Some(state) = states.get_mut((seq.max(1) - 1) as usize) {
                *state = TaskState::Failed;
            }
        }
        for (task, &p) in position.iter().enumerate() {
            if p < n {
                states[p] = TaskState::Pending;
                session[p] = Some(task);
            }
        }
        let left: Vec<usize> = (0..stages)
            .map(|stage| {
                graph
                    .tasks_of(stage)
                    .filter(|&t| states[t] != TaskState::Succeeded)
                    .count()
            })
            .collect();
        let mut waiting_all = vec![Vec::new(); stages];
        let mut waiting_each = vec![Vec::new(); stages];
        for stage in 0..stages {
            for &upstream in graph.after_of(stage) {
                waiting_all[upstream].push(stage);
            }
            if let Some(upstream) = graph.each_after_of(stage) {
                waiting_each[upstream].push(stage);
            }
        }
        let unmet = (0..n)
            .map(|t| {
                let stage = graph.stage_of(t);
                let whole = graph.after_of(stage).iter().filter(|&&a| left[a] > 0);
                let each = graph
                    .each_predecessor(t)
                    .filter(|&p| states[p] != TaskState::Succeeded);
                (whole.count() + usize::from(each.is_some())) as u32
            })
            .collect();
        Readiness {
            graph,
            states,
            unmet,
            left,
            doomed: vec![false; stages],
            waiting_all,
            waiting_each,
            session,
            position,
            ran_on: vec![None; n],
            held: Vec::new(),
        }
    }

    /// The session tasks that can start at once, and those that never can (they depend on
    /// a task that did not succeed before and is not run now), each in run order. The ready
    /// ones count as handed out; those whose predecessor's host is known are held instead
    /// ([`Self::take_held`]).
    pub fn start(&mut self) -> (Vec<usize>, Vec<usize>) {
        let unrunnable: Vec<usize> = (0..self.states.len())
            .filter(|&t| self.states[t] == TaskState::Failed)
            .collect();
        let mut skipped = Vec::new();
        for t in unrunnable {
            skipped.extend(self.cascade(t));
        }
        skipped.sort_unstable();
        let mut ready = Vec::new();
        for t in 0..self.states.len() {
            if self.states[t] == TaskState::Pending && self.unmet[t] == 0 {
                if let Some(task) = self.session[t] {
                    self.states[t] = TaskState::Running;
                    match self.graph.each_predecessor(t).and_then(|q| self.ran_on[q]) {
                        Some(host) => self.held.push(Ready {
                            task,
                            prefer: Some(host),
                        }),
                        None => ready.push(task),
                    }
                }
            }
        }
        (ready, skipped)
    }

    /// The ready tasks held for their predecessor's host, to start once dispatch begins.
    pub fn take_held(&mut self) -> Vec<Ready> {
        std::mem::take(&mut self.held)
    }

    /// Session task `task` succeeded on `host`: the tasks that may start now, in run order.
    pub fn succeeded(&mut self, task: usize, host: Option<usize>) -> Vec<Ready> {
        let Some(&p) = self.position.get(task) else {
            return Vec::new();
        };
        if self.states[p] != TaskState::Running {
            return Vec::new();
        }
        self.states[p] = TaskState::Succeeded;
        self.ran_on[p] = host;
        let stage = self.graph.stage_of(p);
        self.left[stage] -= 1;
        let mut released = Vec::new();
        if self.left[stage] == 0 {
            for i in 0..self.waiting_all[stage].len() {
                let waiting = self.waiting_all[stage][i];
                for t in self.graph.tasks_of(waiting) {
                    self.meet(t, &mut released);
                }
            }
        }
        let offset = p - self.graph.tasks_of(stage).start;
        for i in 0..self.waiting_each[stage].len() {
            let waiting = self.waiting_each[stage][i];
            let t = self.graph.tasks_of(waiting).start + offset;
            self.meet(t, &mut released);
        }
        released.sort_unstable_by_key(|r| r.task);
        released
    }

    /// Session task `task` ended without success (failed, or never ran): the session tasks
    /// still waiting that can now never run, its dependents and theirs, in run order.
    pub fn failed(&mut self, task: usize) -> Vec<usize> {
        let Some(&p) = self.position.get(task) else {
            return Vec::new();
        };
        if !matches!(self.states[p], TaskState::Running | TaskState::Pending) {
            return Vec::new();
        }
        self.states[p] = TaskState::Failed;
        let mut skipped = self.cascade(p);
        skipped.sort_unstable();
        skipped
    }

    /// One dependency of position `t` is met; collects it if that was its last.
    fn meet(&mut self, t: usize, released: &mut Vec<Ready>) {
        self.unmet[t] = self.unmet[t].saturating_sub(1);
        if self.unmet[t] > 0 || self.states[t] != TaskState::Pending {
            return;
        }
        let Some(task) = self.session[t] else { return };
        self.states[t] = TaskState::Running;
        let prefer = self.graph.each_predecessor(t).and_then(|q| self.ran_on[q]);
        released.push(Ready { task, prefer });
    }

    /// Marks skipped every waiting task that depends, through any chain, on position
    /// `from`; returns the session tasks among them. A stage waiting wholly for another is
    /// skipped at once the first time, so this costs each task at most once.
    fn cascade(&mut self, from: usize) -> Vec<usize> {
        let mut skipped = Vec::new();
        let mut frontier = vec![from];
        while let Some(x) = frontier.pop() {
            let stage = self.graph.stage_of(x);
            for i in 0..self.waiting_all[stage].len() {
                let waiting = self.waiting_all[stage][i];
                if std::mem::replace(&mut self.doomed[waiting], true) {
                    continue;
                }
                for t in self.graph.tasks_of(waiting) {
                    self.skip(t, &mut frontier, &mut skipped);
                }
            }
            let offset = x - self.graph.tasks_of(stage).start;
            for i in 0..self.waiting_each[stage].len() {
                let waiting = self.waiting_each[stage][i];
                let t = self.graph.tasks_of(waiting).start + offset;
                self.skip(t, &mut frontier, &mut skipped);
            }
        }
        skipped
    }

    fn skip(&mut self, t: usize, frontier: &mut Vec<usize>, skipped: &mut Vec<usize>) {
        if self.states[t] != TaskState::Pending {
            return;
        }
        self.states[t] = TaskState::Skipped;
        frontier.push(t);
        skipped.extend(self.session[t]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::stages::StageSpec;
    use proptest::prelude::*;

    fn spec(name: &str, after: &[&str], each_after: Option<&str>, tasks: usize) -> StageSpec {
        StageSpec {
            name: name.into(),
            after: after.iter().map(|s| s.to_string()).collect(),
            each_after: each_after.map(str::to_string),
            tasks,
        }
    }

    /// prep (3) → work each_after prep (3) → reduce after work (1): positions 0-2, 3-5, 6.
    fn pipeline() -> Graph {
        Graph::new(&[
            spec("prep", &[], None, 3),
            spec("work", &[], Some("prep"), 3),
            spec("reduce", &["work"], None, 1),
        ])
        .unwrap()
    }

    fn whole_run(graph: &Graph) -> Vec<u32> {
        (1..=graph.task_count() as u32).collect()
    }

    #[test]
    fn each_after_releases_its_partner_with_the_host_and_after_waits_for_the_whole_stage() {
        let graph = pipeline();
        let mut r = Readiness::new(graph.clone(), &whole_run(&graph), &[]);
        assert_eq!(r.start(), (vec![0, 1, 2], vec![]));
        assert_eq!(
            r.succeeded(1, Some(7)),
            vec![Ready {
                task: 4,
                prefer: Some(7)
            }]
        );
        assert_eq!(r.succeeded(4, Some(7)), vec![]);
        r.succeeded(0, Some(1));
        r.succeeded(2, None);
        r.succeeded(3, Some(1));
        assert_eq!(
            r.succeeded(5, None),
            vec![Ready {
                task: 6,
                prefer: None
            }]
        );
    }

    #[test]
    fn a_failure_skips_its_partner_and_everything_after_its_stage() {
        let graph = pipeline();
        let mut r = Readiness::new(graph.clone(), &whole_run(&graph), &[]);
        r.start();
        assert_eq!(r.failed(1), vec![4, 6]);
        // Already skipped: their own ends skip nothing more.
        assert!(r.failed(4).is_empty());
        // The other chains go on.
        assert_eq!(r.succeeded(0, None).len(), 1);
        assert_eq!(r.succeeded(3, None), vec![]);
    }

    #[test]
    fn a_retry_runs_what_failed_after_the_successes_it_keeps() {
        // Before: prep all succeeded but prep 2 (seq 3) failed, so work 2 and reduce were
        // skipped; the retry runs seqs 3, 6 and 7.
        let graph = pipeline();
        let mut r = Readiness::new(graph, &[3, 6, 7], &[]);
        assert_eq!(r.start(), (vec![0], vec![]));
        assert_eq!(r.succeeded(0, Some(2)).len(), 1);
        assert_eq!(
            r.succeeded(1, Some(2)),
            vec![Ready {
                task: 2,
                prefer: None
            }]
        );
    }

    #[test]
    fn a_retried_task_is_held_for_the_host_its_predecessor_ran_on_before() {
        let graph = pipeline();
        // prep succeeded before (prep 2 on host 5); work 2 (seq 5) and reduce run again.
        let mut r = Readiness::new(graph, &[5, 7], &[]);
        r.ran_on[1] = Some(5);
        assert_eq!(r.start(), (vec![], vec![]));
        assert_eq!(
            r.take_held(),
            vec![Ready {
                task: 0,
                prefer: Some(5)
            }]
        );
        assert!(r.take_held().is_empty());
        // work 1 and 3 succeeded before: reduce waited for work 2 only.
        assert_eq!(
            r.succeeded(0, Some(5)),
            vec![Ready {
                task: 1,
                prefer: None
            }]
        );
    }

    #[test]
    fn a_task_left_out_of_a_retry_skips_its_dependents_at_the_start() {
        let graph = pipeline();
        // prep 2 (seq 3) was interrupted and `retry --failed` leaves it alone.
        let mut r = Readiness::new(graph, &[2, 5, 6, 7], &[3]);
        assert_eq!(r.start(), (vec![0], vec![2, 3]));
    }

    fn dag() -> impl Strategy<Value = Vec<StageSpec>> {
        (1usize..5, 1usize..4).prop_flat_map(|(n, width)| {
            let stages: Vec<_> = (0..n)
                .map(|i| {
                    (
                        proptest::collection::vec(any::<bool>(), i),
                        any::<bool>(),
                        1usize..4,
                    )
                })
                .collect();
            stages.prop_map(move |stages| {
                stages
                    .iter()
                    .enumerate()
                    .map(|(i, (after, each, tasks))| {
                        let each_after = (*each && i > 0).then(|| format!("s{}", i - 1));
                        let after = (0..i)
                            .filter(|&j| after[j] && Some(format!("s{j}")) != each_after)
                            .map(|j| format!("s{j}"))
                            .collect();
                        StageSpec {
                            name: format!("s{i}"),
                            after,
                            each_after,
                            tasks: if i == 0 || *each { width } else { *tasks },
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
    }

    proptest! {
        /// Run the pipeline to the end, failing the tasks `fail` picks: every task ends
        /// exactly once, each starts only after every predecessor succeeded, and a task is
        /// skipped exactly when some predecessor did not succeed.
        #[test]
        fn every_task_ends_once_and_starts_only_after_its_predecessors(
            specs in dag(),
            fail in proptest::collection::vec(any::<bool>(), 16),
            pick in any::<u64>(),
        ) {
            let Ok(graph) = Graph::new(&specs) else { return Ok(()) };
            let n = graph.task_count();
            let mut r = Readiness::new(graph.clone(), &whole_run(&graph), &[]);
            let (mut queue, skipped) = r.start();
            prop_assert!(skipped.is_empty());
            let mut ended: Vec<Option<bool>> = vec![None; n];
            let mut skipped_set = vec![false; n];
            let mut turn = pick;
            while !queue.is_empty() {
                turn = turn.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let t = queue.remove((turn >> 33) as usize % queue.len());
                for p in graph.predecessors(t) {
                    prop_assert_eq!(ended[p], Some(true), "task {} started before {}", t, p);
                }
                prop_assert!(ended[t].is_none());
                let ok = !fail[t % fail.len()];
                ended[t] = Some(ok);
                if ok {
                    queue.extend(r.succeeded(t, Some(0)).into_iter().map(|x| x.task));
                } else {
                    for s in r.failed(t) {
                        prop_assert!(!skipped_set[s]);
                        skipped_set[s] = true;
                    }
                }
            }
            for t in 0..n {
                let ran = ended[t].is_some();
                prop_assert!(ran != skipped_set[t], "task {} ran {} skipped {}", t, ran, skipped_set[t]);
                let blocked = graph.predecessors(t).iter().any(|&p| ended[p] != Some(true));
                prop_assert_eq!(skipped_set[t], blocked, "task {}", t);
            }
        }
    }
}
