//! Each task's matrix parameters as `dts status RUN` shows them (text and `--json`). Pure:
//! the run's saved axes and task rows in, rows and text out.

use std::fmt::Write as _;

use serde::Serialize;

use crate::job::Matrix;
use crate::job::matrix::{self, Params, describe_task};
use crate::job::pipeline::{SavedStage, locate_saved};
use crate::store::reader::TaskRow;

/// One task's parameters and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskParams {
    pub index: u64,
    pub state: String,
    /// The item (lossy UTF-8); empty for a matrix alone.
    pub item: String,
    pub params: Params,
}

/// The tasks' parameters, in task order; empty when the run has no matrix.
pub fn of_tasks(matrix: &Matrix, tasks: &[TaskRow]) -> Vec<TaskParams> {
    if matrix.is_empty() {
        return Vec::new();
    }
    let rows = tasks.iter().map(|t| TaskParams {
        index: t.index,
        state: t.state.clone(),
        item: String::from_utf8_lossy(&t.item).into_owned(),
        params: matrix.params(t.seq),
    });
    rows.collect()
}

/// A pipeline's tasks' parameters, each from its stage's matrix, in task order; only the
/// tasks of stages with a matrix.
pub fn of_stages(stages: &[SavedStage], tasks: &[TaskRow]) -> Vec<TaskParams> {
    let rows = tasks.iter().filter_map(|t| {
        let (stage, position) = locate_saved(stages, t.seq)?;
        (!stage.matrix.is_empty()).then(|| TaskParams {
            index: t.index,
            state: t.state.clone(),
            item: String::from_utf8_lossy(&t.item).into_owned(),
            params: stage.matrix.params(position),
        })
    });
    rows.collect()
}

/// `task 3  succeeded  lr=0.1 depth=3`, one line per task under a heading.
pub fn render(rows: &[TaskParams]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let index_width = rows.iter().map(|r| r.index.to_string().len()).max();
    let state_width = rows.iter().map(|r| r.state.len()).max();
    let (iw, sw) = (index_width.unwrap_or(0), state_width.unwrap_or(0));
    let mut text = String::from("parameters:\n");
    for r in rows.iter().take(matrix::LISTED) {
        let shown = describe_task(r.item.as_bytes(), &r.params);
        let _ = writeln!(text, "  task {:>iw$}  {:<sw$}  {shown}", r.index, r.state);
    }
    text + &matrix::more_line(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_each_tasks_parameters_quoted() {
        let param = |v: &str| Params(vec![("lr".into(), "0.1".into()), ("v".into(), v.into())]);
        let rows = vec![
            TaskParams {
                index: 1,
                state: "succeeded".into(),
                item: String::new(),
                params: param("$(touch pwned)"),
            },
            TaskParams {
                index: 10,
                state: "failed".into(),
                item: "f 1.csv".into(),
                params: param("a b"),
            },
        ];
        assert_eq!(
            render(&rows),
            "parameters:\n  task  1  succeeded  lr=0.1 v='$(touch pwned)'\n  task 10  failed     item='f 1.csv' lr=0.1 v='a b'\n"
        );
        assert_eq!(render(&[]), "");
        let many: Vec<TaskParams> = (1..=60)
            .map(|index| TaskParams {
                index,
                ..rows[0].clone()
            })
            .collect();
        let text = render(&many);
        assert_eq!(text.lines().count(), 1 + 50 + 1, "{text}");
        assert!(text.ends_with("  task 50  succeeded  lr=0.1 v='$(touch pwned)'\n... and 10 more (--json lists every task)\n"), "{text}");
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"index": 1, "state": "succeeded", "item": "", "params": {"lr": "0.1", "v": "$(touch pwned)"}})
        );
    }
}
