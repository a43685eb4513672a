//! The `--dry-run` plan as a table per host.

use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use crate::job::matrix::{self, describe_task};
use crate::plan::Plan;

pub fn render(plan: &Plan) -> String {
    let total = plan.plan.len().max(1) as f64;
    let placed = !plan.plan.is_empty() || plan.total_tasks == 0;
    let any_excluded = plan.hosts.iter().any(|h| h.excluded.is_some());
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec!["host", "tasks", "share", "slots", "weight"];
    if any_excluded {
        header.push("note");
    }
    table.set_header(header);
    for h in &plan.hosts {
        let mut row = vec![
            h.name.clone(),
            h.tasks.to_string(),
            format!("{:.1} %", 100.0 * h.tasks as f64 / total),
            h.slots.to_string(),
            format!("{}", h.weight),
        ];
        if any_excluded {
            row.push(
                h.excluded
                    .as_ref()
                    .map_or_else(String::new, |e| format!("left out: {e}")),
            );
        }
        table.add_row(row);
    }
    for column in table.column_iter_mut().skip(1).take(4) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    let tasks = plural(plan.total_tasks, "task");
    let mut text = if placed {
        format!("plan for {tasks} ({})\n{table}\n", plan.algorithm)
    } else {
        format!(
            "no host is reachable: none of the {tasks} would run ({})\n{table}\n",
            plan.algorithm
        )
    };
    text.push_str(&indexes(plan));
    text.push_str(&parameters(plan));
    if placed {
        for note in &plan.notes {
            text.push_str(&format!("note: {note}\n"));
        }
    }
    text
}

/// Which host runs which tasks: each host's array indexes, compressed.
fn indexes(plan: &Plan) -> String {
    let width = plan.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
    plan.hosts
        .iter()
        .filter(|h| !h.indexes.is_empty())
        .map(|h| format!("{:<width$}  tasks {}\n", h.name, h.indexes))
        .collect()
}

/// Each task's matrix parameters, when the job has a matrix: `task 3  lr=0.1 depth=3`.
fn parameters(plan: &Plan) -> String {
    let with_params: Vec<_> = plan.plan.iter().filter(|t| !t.params.is_empty()).collect();
    let width = with_params
        .iter()
        .map(|t| t.index.to_string().len())
        .max()
        .unwrap_or(0);
    let listed: String = with_params
        .iter()
        .take(matrix::LISTED)
        .map(|t| {
            let shown = describe_task(t.item.as_bytes(), &t.params);
            format!("task {:>width$}  {shown}\n", t.index)
        })
        .collect();
    listed + &matrix::more_line(with_params.len())
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlannedHost, PlannedTask};

    #[test]
    fn plan_table_with_a_host_left_out() {
        let host = |name: &str, tasks, excluded: Option<&str>| PlannedHost {
            name: name.into(),
            tasks,
            slots: 8,
            weight: 1.0,
            indexes: match name {
                "a" => "0-2,4-8:2".into(),
                "b" => "3-9:2".into(),
                _ => String::new(),
            },
            excluded: excluded.map(str::to_string),
        };
        let plan = Plan {
            algorithm: "consistent-hash".into(),
            total_tasks: 10,
            plan: (0..10)
                .map(|i| PlannedTask {
                    index: i,
                    item: i.to_string(),
                    key: i.to_string(),
                    host: "a".into(),
                    params: Default::default(),
                })
                .collect(),
            hosts: vec![
                host("a", 6, None),
                host("b", 4, None),
                host("c", 0, Some("connect to c:22: timed out after 10s")),
            ],
            notes: vec!["consistent-hash: each key goes to the same host on every run".into()],
        };
        insta::assert_snapshot!(render(&plan));
    }

    #[test]
    fn plan_of_a_matrix_lists_each_tasks_parameters() {
        use crate::job::matrix::Params;
        let param =
            |lr: &str, v: &str| Params(vec![("lr".into(), lr.into()), ("v".into(), v.into())]);
        let values = ["$(touch pwned)", "a b", "x"];
        let plan_tasks: Vec<PlannedTask> = (0..6)
            .map(|i| PlannedTask {
                index: i as u64 + 1,
                item: String::new(),
                key: String::new(),
                host: "a".into(),
                params: param(["0.1", "0.01"][i / 3], values[i % 3]),
            })
            .collect();
        let plan = Plan {
            algorithm: "round-robin".into(),
            total_tasks: 6,
            plan: plan_tasks,
            hosts: vec![PlannedHost {
                name: "a".into(),
                tasks: 6,
                slots: 2,
                weight: 1.0,
                indexes: "1-6".into(),
                excluded: None,
            }],
            notes: vec![],
        };
        insta::assert_snapshot!(render(&plan));
        let json = serde_json::to_value(&plan.plan[0]).unwrap();
        assert_eq!(
            json["params"],
            serde_json::json!({ "lr": "0.1", "v": "$(touch pwned)" })
        );
        assert!(
            serde_json::to_value(&PlannedTask {
                params: Params::default(),
                ..plan.plan[0].clone()
            })
            .unwrap()
            .get("params")
            .is_none()
        );
    }

    #[test]
    fn plan_with_every_host_unreachable_says_so() {
        let host = |name: &str| PlannedHost {
            name: name.into(),
            tasks: 0,
            slots: 2,
            weight: 1.0,
            indexes: String::new(),
            excluded: Some(format!("connect to {name}:22: Connection refused")),
        };
        let plan = Plan {
            algorithm: "round-robin".into(),
            total_tasks: 4,
            plan: vec![],
            hosts: vec![host("a"), host("b")],
            notes: vec!["round-robin decides as slots free".into()],
        };
        insta::assert_snapshot!(render(&plan));
    }
}
