//! Slurm array syntax: `0-99`, `1-100:3`, `0-999%20`, `1,5,9-12`.

/// A parse error; `offset` is the byte offset in the spec string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    pub offset: usize,
    pub message: String,
}

/// The expanded array: indices in order, plus the `%N` throttle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArraySpec {
    pub indices: Vec<u64>,
    pub throttle: Option<u32>,
}

pub fn parse(spec: &str) -> Result<ArraySpec, SpecError> {
    let (lo, hi) = spec.split_once('-').ok_or(SpecError {
        offset: 0,
        message: "expected a range".into(),
    })?;
    let lo: u64 = lo.parse().map_err(|_| SpecError {
        offset: 0,
        message: "bad number".into(),
    })?;
    let hi: u64 = hi.parse().map_err(|_| SpecError {
        offset: 0,
        message: "bad number".into(),
    })?;
    Ok(ArraySpec {
        indices: (lo..=hi).collect(),
        throttle: None,
    })
}
