//! A pipeline job, resolved: its stages (each with its own command and matrix) over one
//! flat task list, and the checked [`Graph`] of their dependencies. Pure.
//!
//! The run's tasks are the stages' tasks, stage after stage in written order; task `seq`
//! (1-based) is position `seq - 1` of the graph. Its task index is that same position, so
//! output files, `dts logs` and the joblog never see two stages' tasks collide; the item
//! (`{}`) keeps the stage's item or array index. A stage's matrix parameters follow from the
//! task's position within its stage, as a plain job's follow from its position in the job.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::matrix::Matrix;
use super::stages::{Graph, GraphError, StageSpec};
use super::template::{Template, TemplateSpec};
use crate::staging::Staging;

/// One stage, resolved.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    /// Bound to the stage's matrix axes.
    pub command: Template,
    pub matrix: Matrix,
    pub after: Vec<String>,
    pub each_after: Option<String>,
    /// How many tasks it has.
    pub tasks: usize,
    /// Every variable its tasks get: the job's `env` with the stage's own over it, by name.
    pub env: Vec<(String, String)>,
    /// `retries` and `timeout` of its own (else the job's).
    pub retries: Option<u32>,
    pub timeout: Option<Duration>,
    /// What its tasks stage: the job's keys with the stage's own over them, its templates
    /// bound to the stage's matrix axes. `None` (runs saved before stages had their own)
    /// means the job's.
    pub staging: Option<Staging>,
}

/// A stage as a run's spec saves it, to build the pipeline again in `dts retry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedStage {
    pub name: String,
    pub command: TemplateSpec,
    #[serde(default, skip_serializing_if = "Matrix::is_empty")]
    pub matrix: Matrix,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each_after: Option<String>,
    pub tasks: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<Staging>,
}

/// The stages and their graph.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub stages: Vec<Stage>,
    pub graph: Graph,
}

impl Pipeline {
    /// Checks the stages' dependencies and builds the graph.
    pub fn new(stages: Vec<Stage>) -> Result<Pipeline, GraphError> {
        let graph = Graph::new(&specs(&stages))?;
        Ok(Pipeline { stages, graph })
    }

    /// The pipeline a run saved.
    pub fn from_saved(saved: &[SavedStage]) -> Result<Pipeline, String> {
        let stages = saved
            .iter()
            .map(|s| {
                let names = s.matrix.names();
                Ok(Stage {
                    name: s.name.clone(),
                    command: s
                        .command
                        .build()
                        .map_err(|e| e.message)?
                        .with_params(&names),
                    matrix: s.matrix.clone(),
                    after: s.after.clone(),
                    each_after: s.each_after.clone(),
                    tasks: s.tasks,
                    env: s.env.clone(),
                    retries: s.retries,
                    timeout: s.timeout,
                    staging: s.staging.clone(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let specs = specs(&stages);
        Pipeline::new(stages).map_err(|e| e.message(&specs))
    }

    /// What a run's spec saves.
    pub fn saved(&self) -> Vec<SavedStage> {
        self.stages
            .iter()
            .map(|s| SavedStage {
                name: s.name.clone(),
                command: s.command.spec().clone(),
                matrix: s.matrix.clone(),
                after: s.after.clone(),
                each_after: s.each_after.clone(),
                tasks: s.tasks,
                env: s.env.clone(),
                retries: s.retries,
                timeout: s.timeout,
                staging: s.staging.clone(),
            })
            .collect()
    }

    /// The stage of task `seq`, and the task's 1-based position within it. A `seq` past the
    /// last task belongs to the last stage.
    pub fn locate(&self, seq: u32) -> (&Stage, u32) {
        let position = (seq.max(1) - 1) as usize;
        let last = self.graph.task_count().saturating_sub(1);
        let stage = self.graph.stage_of(position.min(last));
        let first = self.graph.tasks_of(stage).start;
        (&self.stages[stage], (position - first) as u32 + 1)
    }
}

/// A stage as `--dry-run` shows it: its tasks and what they wait for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedStage {
    pub name: String,
    /// Its first and last task number (tasks are numbered on across the stages).
    pub first: u64,
    pub last: u64,
    /// Stages every task of which it waits for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// The stage it waits for task by task, and each pair: (its task, the one it waits for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub each_after: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<(u64, u64)>,
}

impl Pipeline {
    /// Each stage's tasks and dependencies, in dependency order (a stage after those it
    /// waits for).
    pub fn planned(&self) -> Vec<PlannedStage> {
        let graph = &self.graph;
        let number = |task: usize| task as u64 + 1;
        graph
            .order()
            .iter()
            .map(|&stage| {
                let tasks = graph.tasks_of(stage);
                let pairs = tasks
                    .clone()
                    .filter_map(|t| Some((number(t), number(graph.each_predecessor(t)?))))
                    .collect();
                PlannedStage {
                    name: self.stages[stage].name.clone(),
                    first: number(tasks.start),
                    last: tasks.end as u64,
                    after: (graph.after_of(stage).iter())
                        .map(|&s| self.stages[s].name.clone())
                        .collect(),
                    each_after: graph
                        .each_after_of(stage)
                        .map(|s| self.stages[s].name.clone()),
                    pairs,
                }
            })
            .collect()
    }
}

/// How many `each_after` pairs a stage's line lists (`--json` has them all).
const PAIRS_LISTED: usize = 4;

/// The `--dry-run` lines of a pipeline: each stage, when it may start, and which task waits
/// for which. Empty for a plain job.
pub fn render_planned(stages: &[PlannedStage]) -> String {
    if stages.is_empty() {
        return String::new();
    }
    let range = |s: &PlannedStage| match s.first == s.last {
        true => format!("task {}", s.first),
        false => format!("tasks {}-{}", s.first, s.last),
    };
    let of = |name: &str| {
        let stage = stages.iter().find(|s| s.name == name);
        stage.map_or_else(|| name.to_string(), |s| format!("{name} ({})", range(s)))
    };
    let name_width = stages.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let range_width = stages.iter().map(|s| range(s).len()).max().unwrap_or(0);
    let mut out = String::from("stages, in the order they can start:\n");
    for stage in stages {
        let mut waits = Vec::new();
        if !stage.after.is_empty() {
            let names: Vec<String> = stage.after.iter().map(|n| of(n)).collect();
            waits.push(format!("after every task of {}", names.join(", ")));
        }
        if let Some(other) = &stage.each_after {
            let listed: Vec<String> = (stage.pairs.iter().take(PAIRS_LISTED))
                .map(|(task, before)| format!("{task} after {before}"))
                .collect();
            let more = stage.pairs.len().saturating_sub(PAIRS_LISTED);
            let more = match more {
                0 => String::new(),
                n => format!(", ... ({n} more)"),
            };
            waits.push(format!(
                "task by task after {}: {}{more}",
                of(other),
                listed.join(", ")
            ));
        }
        if waits.is_empty() {
            waits.push("starts at once".into());
        }
        out.push_str(&format!(
            "  {:<name_width$}  {:<range_width$}  {}\n",
            stage.name,
            range(stage),
            waits.join("; ")
        ));
    }
    out.push_str("note: the plan above places every task as if none waited");
    if stages.iter().any(|s| s.each_after.is_some()) {
        out.push_str(
            "; an each_after task goes to its predecessor's host when that host has a free slot",
        );
    }
    out.push('\n');
    out
}

/// The name of the stage task `seq` belongs to, from a run's saved stages (`None` for a
/// plain job).
pub fn stage_name(saved: &[SavedStage], seq: u32) -> Option<&str> {
    locate_saved(saved, seq).map(|(stage, _)| stage.name.as_str())
}

/// The saved stage task `seq` belongs to, and the task's 1-based position within it.
pub fn locate_saved(saved: &[SavedStage], seq: u32) -> Option<(&SavedStage, u32)> {
    let mut first = 1usize;
    saved.iter().find_map(|stage| {
        let end = first + stage.tasks;
        let found = (first..end).contains(&(seq as usize));
        let position = (seq as usize + 1).saturating_sub(first) as u32;
        first = end;
        found.then_some((stage, position))
    })
}

/// The graph's view of the stages.
fn specs(stages: &[Stage]) -> Vec<StageSpec> {
    stages
        .iter()
        .map(|s| StageSpec {
            name: s.name.clone(),
            after: s.after.clone(),
            each_after: s.each_after.clone(),
            tasks: s.tasks,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::matrix::Axis;

    fn stage(name: &str, command: &str, tasks: usize, matrix: Matrix) -> Stage {
        Stage {
            name: name.into(),
            command: Template::shell(command)
                .unwrap()
                .with_params(&matrix.names()),
            matrix,
            after: vec![],
            each_after: None,
            tasks,
            env: vec![],
            retries: None,
            timeout: None,
            staging: None,
        }
    }

    #[test]
    fn a_task_is_located_in_its_stage_by_its_position() {
        let lr = Matrix::new(vec![Axis {
            name: "lr".into(),
            values: vec!["0.1".into(), "0.2".into()],
        }])
        .unwrap();
        let mut work = stage("work", "train {lr}", 4, lr);
        work.after = vec!["prep".into()];
        let pipeline =
            Pipeline::new(vec![stage("prep", "prep", 2, Matrix::default()), work]).unwrap();
        assert_eq!(pipeline.locate(1).0.name, "prep");
        let (stage, position) = pipeline.locate(2);
        assert_eq!((stage.name.as_str(), position), ("prep", 2));
        let (stage, position) = pipeline.locate(4);
        assert_eq!((stage.name.as_str(), position), ("work", 2));
        assert_eq!(stage.matrix.values_of(position), vec!["0.2"]);
    }

    /// prep (3) → work each_after prep (3), score (1) → reduce after work and score.
    fn diamond() -> Pipeline {
        let mut work = stage("work", "w", 3, Matrix::default());
        work.each_after = Some("prep".into());
        let mut reduce = stage("reduce", "r", 1, Matrix::default());
        reduce.after = vec!["work".into(), "score".into()];
        let stages = vec![
            reduce,
            stage("prep", "p", 3, Matrix::default()),
            work,
            stage("score", "s", 1, Matrix::default()),
        ];
        Pipeline::new(stages).unwrap()
    }

    #[test]
    fn a_planned_pipeline_lists_its_stages_in_dependency_order_with_each_after_pairs() {
        let planned = diamond().planned();
        let names: Vec<&str> = planned.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["prep", "work", "score", "reduce"]);
        assert_eq!(planned[1].pairs, [(5, 2), (6, 3), (7, 4)]);
        assert_eq!((planned[3].first, planned[3].last), (1, 1));
        insta::assert_snapshot!(render_planned(&planned));
        let json = serde_json::to_value(&planned[1]).unwrap();
        assert_eq!(json["pairs"], serde_json::json!([[5, 2], [6, 3], [7, 4]]));
        assert!(json.get("after").is_none());
    }

    #[test]
    fn a_long_each_after_stage_lists_its_first_pairs() {
        let mut work = stage("work", "w", 6, Matrix::default());
        work.each_after = Some("prep".into());
        let pipeline = Pipeline::new(vec![stage("prep", "p", 6, Matrix::default()), work]);
        let text = render_planned(&pipeline.unwrap().planned());
        assert!(
            text.contains("7 after 1, 8 after 2, 9 after 3, 10 after 4, ... (2 more)"),
            "{text}"
        );
        assert_eq!(render_planned(&[]), "");
        let plain = Pipeline::new(vec![stage("only", "o", 1, Matrix::default())]).unwrap();
        let text = render_planned(&plain.planned());
        assert!(!text.contains("each_after"), "{text}");
    }

    #[test]
    fn a_saved_pipeline_builds_the_same_stages() {
        let mut reduce = stage("reduce", "cat", 1, Matrix::default());
        reduce.after = vec!["prep".into()];
        let pipeline =
            Pipeline::new(vec![stage("prep", "prep {}", 3, Matrix::default()), reduce]).unwrap();
        let saved = pipeline.saved();
        let json = serde_json::to_string(&saved).unwrap();
        let back: Vec<SavedStage> = serde_json::from_str(&json).unwrap();
        let again = Pipeline::from_saved(&back).unwrap();
        assert_eq!(again.saved(), saved);
        assert_eq!(again.graph, pipeline.graph);
        let names: Vec<_> = (1..=5).map(|seq| stage_name(&saved, seq)).collect();
        assert_eq!(
            names,
            [
                Some("prep"),
                Some("prep"),
                Some("prep"),
                Some("reduce"),
                None
            ]
        );
    }
}
