//! The order queued tasks start in (`--order`, job file `order`): as listed, or
//! longest-first from the durations earlier runs of the same job recorded (LPT: the longest
//! work starts first, so no long task is left to start last). Pure: the caller gives each
//! task's recorded duration, if any.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// The order the items, array or matrix give.
    #[default]
    AsListed,
    /// Longest recorded duration first.
    LongestFirst,
}

impl Order {
    pub fn is_as_listed(&self) -> bool {
        *self == Order::AsListed
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::AsListed => "as-listed",
            Order::LongestFirst => "longest-first",
        })
    }
}

impl FromStr for Order {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "as-listed" => Ok(Order::AsListed),
            "longest-first" => Ok(Order::LongestFirst),
            _ => Err(format!(
                "unknown order '{s}' (expected as-listed or longest-first)"
            )),
        }
    }
}

/// The start order longest-first gives, and what it knew.
#[derive(Debug, Clone, PartialEq)]
pub struct Arranged {
    /// Task positions, the first to start first.
    pub order: Vec<usize>,
    /// Tasks with a recorded duration.
    pub known: usize,
    /// The mean recorded duration, which tasks never seen count as.
    pub mean: Option<f64>,
}

/// Longest recorded duration first. A task never seen before counts as the mean of the
/// known ones (neither first nor last: it is as likely long as short); equal durations keep
/// the listed order. With nothing known the order is as listed.
pub fn longest_first(recorded: &[Option<f64>]) -> Arranged {
    let known: Vec<f64> = recorded.iter().flatten().copied().collect();
    let mean = (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64);
    let expected: Vec<f64> = recorded.iter().map(|d| d.or(mean).unwrap_or(0.0)).collect();
    let mut order: Vec<usize> = (0..recorded.len()).collect();
    order.sort_by(|&a, &b| expected[b].total_cmp(&expected[a]));
    Arranged {
        order,
        known: known.len(),
        mean,
    }
}

/// The note a run writes about the order it chose.
pub fn note(arranged: &Arranged, total: usize) -> String {
    match arranged.mean {
        None => format!(
            "longest-first: no task of this job has a recorded time yet, so they start as listed (this run records {total})"
        ),
        Some(mean) if arranged.known == total => {
            format!("longest-first: all {total} tasks have recorded times (mean {mean:.1} s)")
        }
        Some(mean) => format!(
            "longest-first: {} of {total} tasks have recorded times; the others count as the mean {mean:.1} s",
            arranged.known
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unknown_tasks_count_as_the_mean_and_ties_keep_the_listed_order() {
        let arranged = longest_first(&[Some(1.0), None, Some(5.0), Some(3.0), Some(3.0)]);
        // Mean 3.0: the unknown task ties with the two 3 s tasks, listed order among them.
        assert_eq!(arranged.order, vec![2, 1, 3, 4, 0]);
        assert_eq!((arranged.known, arranged.mean), (4, Some(3.0)));
        assert_eq!(
            note(&arranged, 5),
            "longest-first: 4 of 5 tasks have recorded times; the others count as the mean 3.0 s"
        );
    }

    #[test]
    fn nothing_known_keeps_the_listed_order() {
        let arranged = longest_first(&[None, None, None]);
        assert_eq!(arranged.order, vec![0, 1, 2]);
        assert_eq!(arranged.mean, None);
    }

    #[test]
    fn orders_parse_and_print() {
        assert_eq!("longest-first".parse(), Ok(Order::LongestFirst));
        assert_eq!(Order::AsListed.to_string(), "as-listed");
        assert!(
            "short"
                .parse::<Order>()
                .unwrap_err()
                .contains("expected as-listed")
        );
    }

    proptest! {
        /// With every duration known exactly, the order is LPT: non-increasing durations,
        /// a permutation of the tasks, ties in listed order.
        #[test]
        fn exact_durations_give_the_lpt_order(
            durations in proptest::collection::vec(0u32..50, 0..40),
        ) {
            let recorded: Vec<Option<f64>> =
                durations.iter().map(|&d| Some(f64::from(d))).collect();
            let arranged = longest_first(&recorded);
            let mut seen = arranged.order.clone();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..durations.len()).collect::<Vec<_>>());
            for pair in arranged.order.windows(2) {
                let (a, b) = (durations[pair[0]], durations[pair[1]]);
                prop_assert!(a > b || (a == b && pair[0] < pair[1]));
            }
        }
    }
}
