//! The stage graph of a pipeline job (`[[stage]]` tables): which stages wait for which,
//! checked for unknown names, cycles and `each_after` count mismatches, and the questions the
//! dispatcher asks of it — which tasks are ready, which become skipped when a task fails, and
//! in what order a retry re-runs what failed and what was skipped.
//!
//! Pure: no I/O, no clock. Tasks of all stages form one flat list, stage after stage in the
//! order they were written; a task is named by its position in that list.
//!
//! - `after = [A, B]`: every task of the stage waits for every task of A and B to succeed.
//! - `each_after = A`: task i of the stage waits only for task i of A (Slurm's `aftercorr`),
//!   so both stages must have the same number of tasks.

use std::collections::BTreeSet;

/// A stage as written: dependencies by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSpec {
    pub name: String,
    pub after: Vec<String>,
    pub each_after: Option<String>,
    /// How many tasks the stage expands to.
    pub tasks: usize,
}

/// Which dependency of a stage an error is about, so the caller can point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dep {
    /// The i-th name of `after`.
    After(usize),
    EachAfter,
}

/// Why a set of stages is not a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// Two stages share a name; `stage` is the later one.
    Duplicate { stage: usize },
    /// A dependency names no stage.
    Unknown { stage: usize, dep: Dep },
    /// `stage`'s `dep` closes a cycle through `path` (stage names, first = last).
    Cycle {
        stage: usize,
        dep: Dep,
        path: Vec<String>,
    },
    /// `each_after` a stage with a different number of tasks.
    CountMismatch {
        stage: usize,
        tasks: usize,
        other_tasks: usize,
    },
}

impl GraphError {
    /// The stage and dependency to point at.
    pub fn location(&self) -> (usize, Option<Dep>) {
        match *self {
            GraphError::Duplicate { stage } => (stage, None),
            GraphError::Unknown { stage, dep } | GraphError::Cycle { stage, dep, .. } => {
                (stage, Some(dep))
            }
            GraphError::CountMismatch { stage, .. } => (stage, Some(Dep::EachAfter)),
        }
    }

    /// The message, naming the stages concerned.
    pub fn message(&self, specs: &[StageSpec]) -> String {
        match self {
            GraphError::Duplicate { stage } => {
                format!("stage `{}` is defined twice", specs[*stage].name)
            }
            GraphError::Unknown { stage, dep } => {
                let name = dep_name(&specs[*stage], *dep);
                let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                format!("unknown stage `{name}` (stages: {})", known.join(", "))
            }
            GraphError::Cycle { path, .. } => {
                format!(
                    "stages depend on each other in a cycle: {}",
                    path.join(" → ")
                )
            }
            GraphError::CountMismatch {
                stage,
                tasks,
                other_tasks,
            } => {
                let spec = &specs[*stage];
                let other = spec.each_after.as_deref().unwrap_or_default();
                format!(
                    "each_after needs the same number of tasks: stage `{}` has {tasks}, `{other}` has {other_tasks}",
                    spec.name
                )
            }
        }
    }
}

fn dep_name(spec: &StageSpec, dep: Dep) -> &str {
    match dep {
        Dep::After(i) => &spec.after[i],
        Dep::EachAfter => spec.each_after.as_deref().unwrap_or_default(),
    }
}

/// Where a task stands, as far as the graph cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Skipped because a task it depends on failed (or was skipped).
    Skipped,
}

/// One stage's tasks by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageCounts {
    pub pending: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// A checked pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// Per stage: the stages all of whose tasks it waits for.
    after: Vec<Vec<usize>>,
    /// Per stage: the stage it waits for task by task.
    each_after: Vec<Option<usize>>,
    /// Per stage: its first task in the flat list; one extra entry holds the total.
    offsets: Vec<usize>,
    /// Stages in dependency order (a stage after all it depends on; ties in written order).
    order: Vec<usize>,
}

impl Graph {
    /// Checks `specs` and builds the graph.
    pub fn new(specs: &[StageSpec]) -> Result<Graph, GraphError> {
        let index_of = |name: &str| specs.iter().position(|s| s.name == name);
        for (stage, spec) in specs.iter().enumerate() {
            if index_of(&spec.name) != Some(stage) {
                return Err(GraphError::Duplicate { stage });
            }
        }
        let mut after = Vec::with_capacity(specs.len());
        let mut each_after = Vec::with_capacity(specs.len());
        for (stage, spec) in specs.iter().enumerate() {
            let mut deps = Vec::new();
            for (i, name) in spec.after.iter().enumerate() {
                let dep = Dep::After(i);
                deps.push(index_of(name).ok_or(GraphError::Unknown { stage, dep })?);
            }
            after.push(deps);
            let each = match &spec.each_after {
                None => None,
                Some(name) => {
                    let dep = Dep::EachAfter;
                    let other = index_of(name).ok_or(GraphError::Unknown { stage, dep })?;
                    if specs[other].tasks != spec.tasks {
                        return Err(GraphError::CountMismatch {
                            stage,
                            tasks: spec.tasks,
                            other_tasks: specs[other].tasks,
                        });
                    }
                    Some(other)
                }
            };
            each_after.push(each);
        }
        let mut offsets = vec![0];
        for spec in specs {
            offsets.push(offsets.last().copied().unwrap_or(0) + spec.tasks);
        }
        let mut graph = Graph {
            after,
            each_after,
            offsets,
            order: Vec::new(),
        };
        graph.order = graph.topological(specs)?;
        Ok(graph)
    }

    /// The stages `stage` depends on, each with the dependency that names it.
    fn deps_of(&self, stage: usize) -> impl Iterator<Item = (usize, Dep)> + '_ {
        let after = self.after[stage]
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, Dep::After(i)));
        after.chain(self.each_after[stage].map(|s| (s, Dep::EachAfter)))
    }

    /// Kahn's algorithm, smallest ready stage first; on a cycle, reports the first stuck
    /// stage's path back to itself.
    fn topological(&self, specs: &[StageSpec]) -> Result<Vec<usize>, GraphError> {
        let n = self.after.len();
        let mut placed = vec![false; n];
        let mut order = Vec::with_capacity(n);
        while order.len() < n {
            let next = (0..n).find(|&s| !placed[s] && self.deps_of(s).all(|(d, _)| placed[d]));
            match next {
                Some(s) => {
                    placed[s] = true;
                    order.push(s);
                }
                None => return Err(self.cycle_error(specs, &placed)),
            }
        }
        Ok(order)
    }

    /// Every unplaced stage has an unplaced dependency, so walking those must revisit one.
    fn cycle_error(&self, specs: &[StageSpec], placed: &[bool]) -> GraphError {
        let stuck = |s: usize| self.deps_of(s).find(|&(d, _)| !placed[d]);
        let mut walk = vec![placed.iter().position(|p| !p).unwrap_or(0)];
        loop {
            let current = walk[walk.len() - 1];
            let Some((next, dep)) = stuck(current) else {
                unreachable!("an unplaced stage always has an unplaced dependency")
            };
            if let Some(start) = walk.iter().position(|&s| s == next) {
                let mut path: Vec<String> = walk[start..]
                    .iter()
                    .map(|&s| specs[s].name.clone())
                    .collect();
                path.push(specs[next].name.clone());
                return GraphError::Cycle {
                    stage: current,
                    dep,
                    path,
                };
            }
            walk.push(next);
        }
    }

    /// How many tasks there are in all.
    pub fn task_count(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// How many stages there are.
    pub fn stage_count(&self) -> usize {
        self.after.len()
    }

    /// The stages all of whose tasks `stage` waits for.
    pub fn after_of(&self, stage: usize) -> &[usize] {
        &self.after[stage]
    }

    /// The stage `stage` waits for task by task.
    pub fn each_after_of(&self, stage: usize) -> Option<usize> {
        self.each_after[stage]
    }

    /// The stages in dependency order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The tasks of `stage`, as positions in the flat list.
    pub fn tasks_of(&self, stage: usize) -> std::ops::Range<usize> {
        self.offsets[stage]..self.offsets[stage + 1]
    }

    /// The stage task `task` belongs to.
    pub fn stage_of(&self, task: usize) -> usize {
        self.offsets.partition_point(|&o| o <= task) - 1
    }

    /// The task `task` waits for through `each_after` (its files are on that host).
    pub fn each_predecessor(&self, task: usize) -> Option<usize> {
        let stage = self.stage_of(task);
        let other = self.each_after[stage]?;
        Some(self.offsets[other] + (task - self.offsets[stage]))
    }

    /// Every task `task` waits for.
    pub fn predecessors(&self, task: usize) -> Vec<usize> {
        let stage = self.stage_of(task);
        let mut out: Vec<usize> = self.after[stage]
            .iter()
            .flat_map(|&s| self.tasks_of(s))
            .collect();
        out.extend(self.each_predecessor(task));
        out
    }

    /// Every task that waits for `task`, directly.
    fn successors(&self, task: usize) -> Vec<usize> {
        let stage = self.stage_of(task);
        let position = task - self.offsets[stage];
        let mut out = Vec::new();
        for other in 0..self.after.len() {
            if self.after[other].contains(&stage) {
                out.extend(self.tasks_of(other));
            } else if self.each_after[other] == Some(stage) {
                out.push(self.offsets[other] + position);
            }
        }
        out
    }

    /// The pending tasks whose every predecessor has succeeded, in the flat order.
    pub fn ready(&self, states: &[TaskState]) -> Vec<usize> {
        (0..self.task_count())
            .filter(|&t| states[t] == TaskState::Pending)
            .filter(|&t| {
                self.predecessors(t)
                    .iter()
                    .all(|&p| states[p] == TaskState::Succeeded)
            })
            .collect()
    }

    /// The pending tasks that can never run once `failed` has failed: its dependents, and
    /// theirs, in the flat order.
    pub fn skipped_by(&self, failed: usize, states: &[TaskState]) -> Vec<usize> {
        let mut skipped = BTreeSet::new();
        let mut frontier = vec![failed];
        while let Some(task) = frontier.pop() {
            for next in self.successors(task) {
                if states[next] == TaskState::Pending && skipped.insert(next) {
                    frontier.push(next);
                }
            }
        }
        skipped.into_iter().collect()
    }

    /// How many tasks of each stage are in each state, stage by stage in written order (what
    /// `dts status` shows per stage).
    pub fn counts(&self, states: &[TaskState]) -> Vec<StageCounts> {
        (0..self.after.len())
            .map(|stage| {
                let mut counts = StageCounts::default();
                for task in self.tasks_of(stage) {
                    match states[task] {
                        TaskState::Pending => counts.pending += 1,
                        TaskState::Running => counts.running += 1,
                        TaskState::Succeeded => counts.succeeded += 1,
                        TaskState::Failed => counts.failed += 1,
                        TaskState::Skipped => counts.skipped += 1,
                    }
                }
                counts
            })
            .collect()
    }

    /// What a retry runs: the failed and skipped tasks, stage by stage in dependency order.
    pub fn retry_order(&self, states: &[TaskState]) -> Vec<usize> {
        self.order
            .iter()
            .flat_map(|&s| self.tasks_of(s))
            .filter(|&t| matches!(states[t], TaskState::Failed | TaskState::Skipped))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(name: &str, after: &[&str], each_after: Option<&str>, tasks: usize) -> StageSpec {
        StageSpec {
            name: name.into(),
            after: after.iter().map(|s| s.to_string()).collect(),
            each_after: each_after.map(str::to_string),
            tasks,
        }
    }

    fn pipeline() -> Vec<StageSpec> {
        vec![
            spec("reduce", &["work"], None, 1),
            spec("prep", &[], None, 3),
            spec("work", &[], Some("prep"), 3),
        ]
    }

    #[test]
    fn a_pipeline_orders_its_stages_by_dependency() {
        let graph = Graph::new(&pipeline()).unwrap();
        assert_eq!(graph.order(), &[1, 2, 0]);
        assert_eq!(graph.task_count(), 7);
        assert_eq!(graph.stage_of(0), 0);
        assert_eq!(graph.stage_of(1), 1);
        assert_eq!(graph.stage_of(6), 2);
        assert_eq!(graph.each_predecessor(5), Some(2));
        assert_eq!(graph.predecessors(0), vec![4, 5, 6]);
    }

    #[test]
    fn each_after_waits_only_for_the_matching_task() {
        let graph = Graph::new(&pipeline()).unwrap();
        use TaskState::*;
        let states = [
            Pending, Succeeded, Running, Pending, Pending, Pending, Pending,
        ];
        // prep's third task (3) has no dependency; work's first (4) waits only for prep's
        // first (1), done; work's second (5) waits for the running prep task (2).
        assert_eq!(graph.ready(&states), vec![3, 4]);
    }

    #[test]
    fn a_failure_skips_only_what_depends_on_it() {
        let graph = Graph::new(&pipeline()).unwrap();
        use TaskState::*;
        let states = [
            Pending, Succeeded, Failed, Succeeded, Pending, Pending, Pending,
        ];
        // prep task 2 fails: work task 2 and the whole reduce stage are skipped.
        assert_eq!(graph.skipped_by(2, &states), vec![0, 5]);
    }

    #[test]
    fn counts_are_per_stage_in_written_order() {
        let graph = Graph::new(&pipeline()).unwrap();
        use TaskState::*;
        let states = [
            Skipped, Succeeded, Failed, Succeeded, Running, Skipped, Pending,
        ];
        let counts = graph.counts(&states);
        assert_eq!(
            counts[0],
            StageCounts {
                skipped: 1,
                ..StageCounts::default()
            }
        );
        let prep = StageCounts {
            succeeded: 2,
            failed: 1,
            ..StageCounts::default()
        };
        assert_eq!(counts[1], prep);
        let work = StageCounts {
            running: 1,
            skipped: 1,
            pending: 1,
            ..StageCounts::default()
        };
        assert_eq!(counts[2], work);
    }

    #[test]
    fn unknown_names_and_cycles_point_at_the_dependency() {
        let unknown = [spec("a", &["x", "nope"], None, 1), spec("x", &[], None, 1)];
        let e = Graph::new(&unknown).unwrap_err();
        assert_eq!(e.location(), (0, Some(Dep::After(1))));
        assert_eq!(e.message(&unknown), "unknown stage `nope` (stages: a, x)");

        let cycle = [
            spec("a", &["c"], None, 1),
            spec("b", &["a"], None, 1),
            spec("c", &[], Some("b"), 1),
        ];
        let e = Graph::new(&cycle).unwrap_err();
        assert!(matches!(e, GraphError::Cycle { .. }), "{e:?}");
        assert!(
            e.message(&cycle).contains("a → c → b → a"),
            "{}",
            e.message(&cycle)
        );
    }

    #[test]
    fn each_after_needs_equal_counts() {
        let specs = [spec("a", &[], None, 2), spec("b", &[], Some("a"), 3)];
        let e = Graph::new(&specs).unwrap_err();
        assert_eq!(e.location(), (1, Some(Dep::EachAfter)));
        assert!(e.message(&specs).contains("`b` has 3, `a` has 2"));
    }

    /// Random acyclic pipelines: stage i may depend only on stages before it (the written
    /// order is then shuffled by reversing, so the graph must really sort).
    fn dag() -> impl Strategy<Value = Vec<StageSpec>> {
        (1usize..6).prop_flat_map(|n| {
            let stages: Vec<_> = (0..n)
                .map(|i| {
                    (
                        proptest::collection::vec(any::<bool>(), i),
                        proptest::option::of(0..i.max(1)),
                        1usize..4,
                    )
                })
                .collect();
            (stages, 1usize..4).prop_map(move |(stages, width)| {
                let mut specs: Vec<StageSpec> = stages
                    .iter()
                    .enumerate()
                    .map(|(i, (after, each, tasks))| {
                        let after = (0..i)
                            .filter(|&j| after[j])
                            .map(|j| format!("s{j}"))
                            .collect();
                        let each_after = each.filter(|&j| j < i).map(|j| format!("s{j}"));
                        let tasks = if each_after.is_some() || i == 0 {
                            width
                        } else {
                            *tasks
                        };
                        StageSpec {
                            name: format!("s{i}"),
                            after,
                            each_after,
                            tasks,
                        }
                    })
                    .collect();
                // each_after partners must match in size: give every such chain `width`.
                for i in 0..specs.len() {
                    if let Some(other) = specs[i].each_after.clone() {
                        let j: usize = other[1..].parse().unwrap();
                        specs[j].tasks = width;
                        specs[i].tasks = width;
                    }
                }
                specs.reverse();
                specs
            })
        })
    }

    fn states_strategy(n: usize) -> impl Strategy<Value = Vec<TaskState>> {
        use TaskState::*;
        proptest::collection::vec(
            prop_oneof![
                Just(Pending),
                Just(Running),
                Just(Succeeded),
                Just(Failed),
                Just(Skipped)
            ],
            n,
        )
    }

    proptest! {
        #[test]
        fn the_order_puts_every_stage_after_its_dependencies(specs in dag()) {
            let graph = match Graph::new(&specs) {
                Ok(g) => g,
                Err(GraphError::CountMismatch { .. }) => return Ok(()),
                Err(e) => panic!("{e:?}"),
            };
            let position = |s: usize| graph.order().iter().position(|&o| o == s).unwrap();
            prop_assert_eq!(graph.order().len(), specs.len());
            for task in 0..graph.task_count() {
                for p in graph.predecessors(task) {
                    prop_assert!(position(graph.stage_of(p)) < position(graph.stage_of(task)));
                }
            }
        }

        #[test]
        fn ready_tasks_have_only_succeeded_predecessors_and_skips_are_dependents(
            (specs, states) in dag().prop_flat_map(|specs| {
                let n: usize = specs.iter().map(|s| s.tasks).sum();
                (Just(specs), states_strategy(n))
            })
        ) {
            let Ok(graph) = Graph::new(&specs) else { return Ok(()) };
            for t in graph.ready(&states) {
                prop_assert_eq!(states[t], TaskState::Pending);
                for p in graph.predecessors(t) {
                    prop_assert_eq!(states[p], TaskState::Succeeded);
                }
            }
            for failed in 0..graph.task_count() {
                let skipped = graph.skipped_by(failed, &states);
                for &s in &skipped {
                    prop_assert_eq!(states[s], TaskState::Pending);
                    // A skipped task never becomes ready while its cause stands failed.
                    prop_assert!(s != failed);
                    let preds = graph.predecessors(s);
                    prop_assert!(preds.contains(&failed) || preds.iter().any(|p| skipped.contains(p)));
                }
            }
            let retry = graph.retry_order(&states);
            for (i, &a) in retry.iter().enumerate() {
                for &b in &retry[i + 1..] {
                    prop_assert!(!graph.predecessors(a).contains(&b));
                }
            }
        }

        #[test]
        fn a_back_edge_is_always_a_cycle(specs in dag(), pick in any::<prop::sample::Index>()) {
            // Make the first-written stage (a sink of the reversed order) a dependency of
            // every root: every stage then reaches itself if anything depends on anything.
            let mut specs = specs;
            let n = specs.len();
            let last = pick.index(n);
            let target = specs[last].name.clone();
            let mut closed = false;
            for i in 0..n {
                if i != last && specs[i].after.is_empty() && specs[i].each_after.is_none()
                    && reaches(&specs, &target, &specs[i].name) {
                    specs[i].after.push(target.clone());
                    closed = true;
                }
            }
            let result = Graph::new(&specs);
            if closed {
                let is_cycle = matches!(result, Err(GraphError::Cycle { .. }));
                prop_assert!(is_cycle);
            }
        }
    }

    /// Whether stage `from` depends, transitively, on stage `to`.
    fn reaches(specs: &[StageSpec], from: &str, to: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut frontier = vec![from.to_string()];
        while let Some(name) = frontier.pop() {
            if name == to {
                return true;
            }
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(s) = specs.iter().find(|s| s.name == name) {
                frontier.extend(s.after.iter().cloned());
                frontier.extend(s.each_after.iter().cloned());
            }
        }
        false
    }
}
