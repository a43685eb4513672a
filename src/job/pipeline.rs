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
