//! The `dts simulate` comparison: one row of metrics per algorithm.

use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::stats::Stats;

/// One algorithm's figures, as printed and as serialised by `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlgorithmRow {
    pub algorithm: String,
    pub atct_s: f64,
    pub wait_p95_s: f64,
    pub ru: f64,
    pub lbd: f64,
    pub makespan_s: f64,
    pub lb_ratio: f64,
    pub throughput: f64,
    pub hit_rate: Option<f64>,
}

impl AlgorithmRow {
    pub fn new(algorithm: &str, stats: &Stats) -> AlgorithmRow {
        AlgorithmRow {
            algorithm: algorithm.to_string(),
            atct_s: stats.atct,
            wait_p95_s: stats.wait.p95,
            ru: stats.ru,
            lbd: stats.lbd,
            makespan_s: stats.makespan,
            lb_ratio: stats.lb_ratio,
            throughput: stats.throughput,
            hit_rate: stats.hit_rate,
        }
    }
}

impl AlgorithmRow {
    /// The field-by-field mean of several runs of one algorithm.
    pub fn mean(runs: &[AlgorithmRow]) -> AlgorithmRow {
        let n = runs.len().max(1) as f64;
        let avg = |f: fn(&AlgorithmRow) -> f64| runs.iter().map(f).sum::<f64>() / n;
        let hits: Vec<f64> = runs.iter().filter_map(|r| r.hit_rate).collect();
        AlgorithmRow {
            algorithm: runs
                .first()
                .map(|r| r.algorithm.clone())
                .unwrap_or_default(),
            atct_s: avg(|r| r.atct_s),
            wait_p95_s: avg(|r| r.wait_p95_s),
            ru: avg(|r| r.ru),
            lbd: avg(|r| r.lbd),
            makespan_s: avg(|r| r.makespan_s),
            lb_ratio: avg(|r| r.lb_ratio),
            throughput: avg(|r| r.throughput),
            hit_rate: (!hits.is_empty()).then(|| hits.iter().sum::<f64>() / hits.len() as f64),
        }
    }
}

pub fn render(rows: &[AlgorithmRow]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "algorithm",
        "ATCT s",
        "wait p95 s",
        "RU",
        "LBD",
        "makespan s",
        "LB ratio",
        "tasks/s",
        "hit rate",
    ]);
    for row in rows {
        table.add_row([
            row.algorithm.clone(),
            format!("{:.2}", row.atct_s),
            format!("{:.2}", row.wait_p95_s),
            format!("{:.3}", row.ru),
            format!("{:.4}", row.lbd),
            format!("{:.1}", row.makespan_s),
            format!("{:.3}", row.lb_ratio),
            format!("{:.1}", row.throughput),
            row.hit_rate
                .map_or_else(|| "-".into(), |h| format!("{h:.3}")),
        ]);
    }
    for column in table.column_iter_mut().skip(1) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_table() {
        let row = |name: &str, atct, makespan, hit| AlgorithmRow {
            algorithm: name.into(),
            atct_s: atct,
            wait_p95_s: 148.53,
            ru: 0.986,
            lbd: 0.0016,
            makespan_s: makespan,
            lb_ratio: makespan / 157.2,
            throughput: 10_000.0 / makespan,
            hit_rate: hit,
        };
        let rows = vec![
            row("round-robin", 78.99, 159.4, None),
            row("consistent-hash", 79.0, 160.8, Some(0.984)),
        ];
        insta::assert_snapshot!(render(&rows));
        let mean = AlgorithmRow::mean(&[
            row("x", 1.0, 10.0, Some(0.5)),
            row("x", 3.0, 20.0, Some(1.0)),
        ]);
        assert_eq!(
            (mean.atct_s, mean.makespan_s, mean.hit_rate),
            (2.0, 15.0, Some(0.75))
        );
    }
}
