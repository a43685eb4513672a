//! Placement: which host runs which task. Pure: no I/O, no clock, no global RNG.

use std::fmt;
use std::str::FromStr;

/// The placement algorithms a job can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Random,
    RoundRobin,
    LeastLoad,
    ConsistentHash,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Random,
        Algorithm::RoundRobin,
        Algorithm::LeastLoad,
        Algorithm::ConsistentHash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Random => "random",
            Algorithm::RoundRobin => "round-robin",
            Algorithm::LeastLoad => "least-load",
            Algorithm::ConsistentHash => "consistent-hash",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!("unknown algorithm '{s}' (expected random, round-robin, least-load or consistent-hash)")
            })
    }
}
