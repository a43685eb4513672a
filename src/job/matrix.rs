//! Matrix sweeps: named axes of values (`--matrix lr=0.1,0.01`, a `[matrix]` table) whose
//! product gives the tasks' parameters.
//!
//! This module owns the axis rules (names, values, limits), the product's order (the first
//! axis varies slowest) and how a task's parameters are found from its position. It does
//! no I/O. Combined with items or an array, the items are outermost: task `seq` (1-based)
//! has combination `(seq - 1) % combinations`, so the parameters follow from the position
//! alone and a saved run needs only its axes to know every task's parameters.

use serde::{Deserialize, Serialize};

use super::quote::quote;

/// Placeholder names a matrix axis cannot take.
pub const RESERVED: [&str; 3] = ["item", "index", "host"];

/// The most tasks a matrix (times its items) may make.
pub const MAX_TASKS: u64 = super::array::MAX_INDICES;

/// How many tasks' parameters a text listing shows (`--json` lists every one).
pub const LISTED: usize = 50;

/// The line after a listing cut at [`LISTED`] of `total` tasks; empty when nothing was cut.
pub fn more_line(total: usize) -> String {
    match total.checked_sub(LISTED) {
        Some(more) if more > 0 => format!("... and {more} more (--json lists every task)\n"),
        _ => String::new(),
    }
}

/// Prefix of the variable each axis is exported as (`DTS_MATRIX_lr`).
pub const ENV_PREFIX: &str = "DTS_MATRIX_";

/// One axis: a name and its values, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Axis {
    pub name: String,
    pub values: Vec<String>,
}

/// The axes in order; empty when the job has no matrix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Matrix {
    pub axes: Vec<Axis>,
}

impl Matrix {
    /// Checks the axes: valid, unreserved, distinct names; non-empty axes; distinct values
    /// within an axis (so every combination is one task); not too many combinations.
    pub fn new(axes: Vec<Axis>) -> Result<Matrix, String> {
        for (i, axis) in axes.iter().enumerate() {
            check_axis(axis)?;
            if axes[..i].iter().any(|a| a.name == axis.name) {
                return Err(format!("matrix axis '{}' is given twice", axis.name));
            }
        }
        let matrix = Matrix { axes };
        matrix.combinations_within(1)?;
        Ok(matrix)
    }

    pub fn is_empty(&self) -> bool {
        self.axes.is_empty()
    }

    /// The axis names, in order (what `{NAME}` placeholders may use).
    pub fn names(&self) -> Vec<String> {
        self.axes.iter().map(|a| a.name.clone()).collect()
    }

    /// How many combinations there are (1 without axes).
    pub fn combinations(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product()
    }

    /// Checks `outer` base tasks times the combinations stay within [`MAX_TASKS`].
    pub fn combinations_within(&self, outer: usize) -> Result<usize, String> {
        let total = self
            .axes
            .iter()
            .try_fold(outer as u64, |n, a| n.checked_mul(a.values.len() as u64))
            .filter(|&n| n <= MAX_TASKS);
        match total {
            Some(n) => Ok(n as usize),
            None => Err(format!(
                "the matrix makes more than the limit of {MAX_TASKS} tasks"
            )),
        }
    }

    /// Combination `k` (0-based, `k < combinations()`): one value per axis, the first axis
    /// varying slowest.
    pub fn combination(&self, mut k: usize) -> Vec<&str> {
        let mut values = vec![""; self.axes.len()];
        for (slot, axis) in values.iter_mut().zip(&self.axes).rev() {
            let n = axis.values.len();
            *slot = &axis.values[k % n];
            k /= n;
        }
        values
    }

    /// The parameters of the task at 1-based position `seq` (empty without axes).
    pub fn values_of(&self, seq: u32) -> Vec<&str> {
        if self.is_empty() {
            return Vec::new();
        }
        let k = (seq.max(1) - 1) as usize % self.combinations();
        self.combination(k)
    }

    /// `(name, value)` pairs of the task at `seq`.
    pub fn params_of(&self, seq: u32) -> Vec<(&str, &str)> {
        let names = self.axes.iter().map(|a| a.name.as_str());
        names.zip(self.values_of(seq)).collect()
    }

    /// The parameters of the task at `seq`, owned, for documents.
    pub fn params(&self, seq: u32) -> Params {
        let params = self.params_of(seq).into_iter();
        Params(params.map(|(n, v)| (n.into(), v.into())).collect())
    }

    /// The variables exported to the task at `seq`: `DTS_MATRIX_NAME=value`.
    pub fn env_of(&self, seq: u32) -> Vec<(String, &str)> {
        let params = self.params_of(seq);
        let env = params
            .into_iter()
            .map(|(n, v)| (format!("{ENV_PREFIX}{n}"), v));
        env.collect()
    }

    /// The parameters for display: `lr=0.1 depth=3`, values shell-quoted when they need it.
    pub fn describe(&self, seq: u32) -> String {
        self.params(seq).describe()
    }
}

/// One task's parameters, in axis order; serialised as a JSON object in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// For display: `lr=0.1 depth=3`, values shell-quoted when they need it.
    pub fn describe(&self) -> String {
        let shown = self
            .0
            .iter()
            .map(|(n, v)| format!("{n}={}", quote(v.as_bytes())));
        shown.collect::<Vec<_>>().join(" ")
    }
}

impl Serialize for Params {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// A task's item and parameters for display: `item=a.csv lr=0.1`; the item only when
/// there is one (with items or an array, each item runs once per combination).
pub fn describe_task(item: &[u8], params: &Params) -> String {
    match item {
        [] => params.describe(),
        item => format!("item={} {}", quote(item), params.describe()),
    }
}

/// Parses `--matrix NAME=v1,v2,...` (values split on `,`; a value with a comma goes in the
/// job file's `[matrix]` table).
pub fn parse_flag(text: &str) -> Result<Axis, String> {
    let Some((name, values)) = text.split_once('=') else {
        return Err("expected NAME=v1,v2,...".into());
    };
    if values.is_empty() {
        return Err(format!("matrix axis '{name}' has no values"));
    }
    let axis = Axis {
        name: name.into(),
        values: values.split(',').map(str::to_string).collect(),
    };
    check_axis(&axis)?;
    Ok(axis)
}

/// Checks a name can be a placeholder and a variable name.
pub fn check_name(name: &str) -> Result<(), String> {
    if !super::file::is_shell_name(name) {
        return Err(format!(
            "matrix axis '{name}' is not a shell variable name (letters, digits and '_', not starting with a digit)"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!(
            "matrix axis '{name}' clashes with the built-in placeholder {{{name}}}"
        ));
    }
    Ok(())
}

fn check_axis(axis: &Axis) -> Result<(), String> {
    check_name(&axis.name)?;
    if axis.values.is_empty() {
        return Err(format!("matrix axis '{}' has no values", axis.name));
    }
    for (i, value) in axis.values.iter().enumerate() {
        if value.contains('\0') {
            return Err(format!(
                "matrix axis '{}': a value cannot contain a NUL character",
                axis.name
            ));
        }
        if axis.values[..i].contains(value) {
            return Err(format!(
                "matrix axis '{}' lists the value '{value}' twice",
                axis.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn axis(name: &str, values: &[&str]) -> Axis {
        Axis {
            name: name.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn product_order_has_the_first_axis_slowest() {
        let m = Matrix::new(vec![
            axis("lr", &["0.1", "0.01"]),
            axis("d", &["1", "2", "3"]),
        ])
        .unwrap();
        let all: Vec<String> = (1..=6).map(|seq| m.describe(seq)).collect();
        assert_eq!(
            all,
            [
                "lr=0.1 d=1",
                "lr=0.1 d=2",
                "lr=0.1 d=3",
                "lr=0.01 d=1",
                "lr=0.01 d=2",
                "lr=0.01 d=3"
            ]
        );
        // With items outermost, position 7 starts the combinations again.
        assert_eq!(m.describe(7), "lr=0.1 d=1");
        assert_eq!(
            m.env_of(5),
            [
                ("DTS_MATRIX_lr".to_string(), "0.01"),
                ("DTS_MATRIX_d".to_string(), "2")
            ]
        );
    }

    #[test]
    fn described_values_are_quoted() {
        let m = Matrix::new(vec![axis("x", &["$(touch pwned)", "it's"])]).unwrap();
        assert_eq!(m.describe(1), "x='$(touch pwned)'");
        assert_eq!(m.describe(2), r"x='it'\''s'");
    }

    #[test]
    fn flag_parses_name_and_values() {
        assert_eq!(
            parse_flag("lr=0.1,0.01").unwrap(),
            axis("lr", &["0.1", "0.01"])
        );
        assert_eq!(parse_flag("s=a b,").unwrap(), axis("s", &["a b", ""]));
    }

    #[test]
    fn bad_axes_are_refused() {
        assert_eq!(parse_flag("lr").unwrap_err(), "expected NAME=v1,v2,...");
        assert_eq!(
            parse_flag("lr=").unwrap_err(),
            "matrix axis 'lr' has no values"
        );
        assert!(
            parse_flag("1x=a")
                .unwrap_err()
                .contains("not a shell variable name")
        );
        assert!(
            parse_flag("a-b=a")
                .unwrap_err()
                .contains("not a shell variable name")
        );
        for name in RESERVED {
            let e = parse_flag(&format!("{name}=a")).unwrap_err();
            assert!(e.contains("clashes with the built-in placeholder"), "{e}");
        }
        assert_eq!(
            parse_flag("x=a,a").unwrap_err(),
            "matrix axis 'x' lists the value 'a' twice"
        );
        let twice = Matrix::new(vec![axis("x", &["a"]), axis("x", &["b"])]).unwrap_err();
        assert_eq!(twice, "matrix axis 'x' is given twice");
        assert!(Matrix::new(vec![axis("x", &[])]).is_err());
    }

    #[test]
    fn too_many_combinations_are_refused() {
        let values: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
        let big = |name: &str| Axis {
            name: name.into(),
            values: values.clone(),
        };
        let e = Matrix::new(vec![big("a"), big("b")]).unwrap_err();
        assert!(e.contains("more than the limit"), "{e}");
        let m = Matrix::new(vec![big("a")]).unwrap();
        assert!(m.combinations_within(2000).is_err());
        assert_eq!(m.combinations_within(3), Ok(30_000));
    }

    proptest! {
        #[test]
        fn product_has_every_combination_exactly_once(
            lens in proptest::collection::vec(1usize..5, 0..4)
        ) {
            let axes: Vec<Axis> = lens
                .iter()
                .enumerate()
                .map(|(a, &n)| Axis {
                    name: format!("a{a}"),
                    values: (0..n).map(|v| v.to_string()).collect(),
                })
                .collect();
            let m = Matrix::new(axes).unwrap();
            let expected: usize = lens.iter().product();
            prop_assert_eq!(m.combinations(), expected);
            let seen: HashSet<Vec<String>> = (0..expected)
                .map(|k| m.combination(k).into_iter().map(str::to_string).collect())
                .collect();
            prop_assert_eq!(seen.len(), expected);
            for combo in &seen {
                for (value, &n) in combo.iter().zip(&lens) {
                    prop_assert!(value.parse::<usize>().unwrap() < n);
                }
            }
        }
    }
}
