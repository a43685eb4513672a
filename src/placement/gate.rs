//! Host gates, as GNU parallel's `--load MAX` and `--memfree SIZE`: a host whose latest
//! probe is over the load or under the free memory takes no new task (running ones go on).
//! Pure: the decision reads probe figures given as data; sizes are parsed here too.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The gates a run sets; both off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Gates {
    /// `--load MAX`: most background load1 per core a host may have to take a task.
    pub load: Option<f64>,
    /// `--memfree SIZE` in bytes: least available memory a host must have to take a task.
    pub memfree: Option<u64>,
}

impl Gates {
    pub fn any(&self) -> bool {
        self.load.is_some() || self.memfree.is_some()
    }

    pub fn is_off(&self) -> bool {
        !self.any()
    }
}

/// The probe figures a gate reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probed {
    /// Load1 minus this run's tasks running there.
    pub background: f64,
    pub cores: Option<u32>,
    pub mem_available_kib: Option<u64>,
}

/// Why a host is gated now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gated {
    Load { per_core: f64, max: f64 },
    Memfree { available: u64, min: u64 },
}

impl fmt::Display for Gated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gated::Load { per_core, max } => {
                write!(f, "load {per_core:.2} per core > --load {max}")
            }
            Gated::Memfree { available, min } => write!(
                f,
                "{} available < --memfree {}",
                format_size(*available),
                format_size(*min)
            ),
        }
    }
}

impl Gated {
    /// The gate without this host's figures, so hosts shut alike fold into one note.
    pub fn cause(&self) -> String {
        match self {
            Gated::Load { max, .. } => format!("load per core above --load {max}"),
            Gated::Memfree { min, .. } => {
                format!("less than --memfree {} available", format_size(*min))
            }
        }
    }
}

/// Whether `probed` shuts the host under `gates`. A figure the probe did not give (no cores,
/// no `MemAvailable`) does not gate: dts cannot tell, and waiting forever would be worse.
pub fn check(gates: &Gates, probed: &Probed) -> Option<Gated> {
    if let (Some(max), Some(cores)) = (gates.load, probed.cores) {
        let per_core = probed.background / f64::from(cores.max(1));
        if per_core > max {
            return Some(Gated::Load { per_core, max });
        }
    }
    if let (Some(min), Some(kib)) = (gates.memfree, probed.mem_available_kib) {
        let available = kib.saturating_mul(1024);
        if available < min {
            return Some(Gated::Memfree { available, min });
        }
    }
    None
}

/// A size as GNU parallel takes it: bytes, or a number with k, M, G, T or P (powers of
/// 1024, either case, an optional trailing `B`/`b`); fractions allowed (`1.5G`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let text = text
        .strip_suffix(['b', 'B'])
        .filter(|t| t.ends_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or(text);
    let (number, unit) = match text.char_indices().last() {
        Some((i, unit)) if unit.is_ascii_alphabetic() => (&text[..i], Some(unit)),
        _ => (text, None),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| "expected a size such as 512M, 1G or 100000".to_string())?;
    let shift = match unit.map(|u| u.to_ascii_lowercase()) {
        None => 0,
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some('t') => 40,
        Some('p') => 50,
        Some(_) => {
            let unit = unit.unwrap_or_default();
            return Err(format!("unknown unit '{unit}' (use k, M, G, T or P)"));
        }
    };
    if !value.is_finite() || value < 0.0 {
        return Err("a size must be a non-negative number".into());
    }
    let bytes = value * 2f64.powi(shift);
    if bytes >= u64::MAX as f64 {
        return Err("too large".into());
    }
    Ok(bytes.round() as u64)
}

/// `--load MAX`: a non-negative number.
pub fn parse_load(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(max) if max.is_finite() && max >= 0.0 => Ok(max),
        _ => Err("expected a non-negative number (load1 per core), such as 1.5".into()),
    }
}

/// Bytes in the largest unit that keeps one digit before the point (`3.1G`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "k", "M", "G", "T", "P"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn probed(background: f64, cores: u32, mem_gib: u64) -> Probed {
        Probed {
            background,
            cores: Some(cores),
            mem_available_kib: Some(mem_gib * 1024 * 1024),
        }
    }

    #[test]
    fn sizes_parse_as_gnu_parallel_takes_them() {
        assert_eq!(parse_size("100000"), Ok(100_000));
        assert_eq!(parse_size("100k"), Ok(100 * 1024));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(GIB));
        assert_eq!(parse_size("1g"), Ok(GIB));
        assert_eq!(parse_size("1GB"), Ok(GIB));
        assert_eq!(parse_size("1.5G"), Ok(3 * GIB / 2));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("1P"), Ok(1 << 50));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes_say_why() {
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("1X").unwrap_err().contains("unknown unit 'X'"));
        assert!(parse_size("1 G B").is_err());
        assert!(parse_size("inf").is_err());
        assert!(parse_size("99999999P").unwrap_err().contains("too large"));
    }

    #[test]
    fn loads_parse_non_negative() {
        assert_eq!(parse_load("1.5"), Ok(1.5));
        assert_eq!(parse_load("0"), Ok(0.0));
        assert!(parse_load("-1").is_err());
        assert!(parse_load("x").is_err());
        assert!(parse_load("NaN").is_err());
    }

    #[test]
    fn no_gates_never_gate() {
        assert_eq!(check(&Gates::default(), &probed(100.0, 1, 0)), None);
    }

    #[test]
    fn load_gate_divides_background_by_cores() {
        let gates = Gates {
            load: Some(1.0),
            memfree: None,
        };
        assert_eq!(check(&gates, &probed(8.0, 8, 1)), None);
        assert_eq!(
            check(&gates, &probed(9.0, 8, 1)),
            Some(Gated::Load {
                per_core: 9.0 / 8.0,
                max: 1.0
            })
        );
    }

    #[test]
    fn memfree_gate_compares_bytes() {
        let gates = Gates {
            load: None,
            memfree: Some(2 * GIB),
        };
        assert_eq!(check(&gates, &probed(0.0, 1, 2)), None);
        let gated = check(&gates, &probed(0.0, 1, 1)).unwrap();
        assert_eq!(gated.to_string(), "1.0G available < --memfree 2.0G");
    }

    #[test]
    fn figures_the_probe_lacks_do_not_gate() {
        let gates = Gates {
            load: Some(0.0),
            memfree: Some(u64::MAX),
        };
        let unknown = Probed {
            background: 50.0,
            cores: None,
            mem_available_kib: None,
        };
        assert_eq!(check(&gates, &unknown), None);
    }

    #[test]
    fn every_algorithm_skips_a_gated_host_and_waits_when_all_are() {
        use crate::placement::testing::{place_all, push_n, up};
        use crate::placement::{Algorithm, Params, new};
        for algorithm in Algorithm::ALL {
            let params = Params {
                seed: 1,
                epsilon: 0.25,
                hosts: vec![("a".into(), 1.0), ("b".into(), 1.0)],
                total_tasks: 8,
            };
            let mut placement = new(algorithm, &params);
            push_n(placement.as_mut(), 8);
            let mut hosts = vec![up(4), up(4)];
            hosts[1].gated = true;
            let placed = place_all(placement.as_mut(), &mut hosts);
            assert_eq!(placed.len(), 4, "{algorithm:?}");
            assert!(placed.iter().all(|&(_, h)| h == 0), "{algorithm:?}");
            hosts[0].gated = true;
            hosts[0].running = 0;
            assert_eq!(placement.next(&hosts), None, "{algorithm:?}");
        }
    }

    /// Least-load left a task queued for a faster host that frees in time; a gated one
    /// may never open, so the tasks would wait on a free slower host for nothing.
    #[test]
    fn least_load_does_not_wait_for_a_gated_faster_host() {
        use crate::placement::testing::{place_all, push_n, up};
        use crate::placement::{Algorithm, Params, new};
        let params = Params {
            seed: 1,
            epsilon: 0.25,
            hosts: Vec::new(),
            total_tasks: 0,
        };
        let mut placement = new(Algorithm::LeastLoad, &params);
        for work in [1.0, 1.0, 100.0] {
            placement.observe(work);
        }
        push_n(placement.as_mut(), 3);
        let mut hosts = vec![up(1), up(64)];
        hosts[0].weight = 0.01;
        hosts[1].running = 64;
        let held = place_all(placement.as_mut(), &mut hosts.clone());
        assert!(
            held.is_empty(),
            "without the gate it waits for the fast host"
        );
        hosts[1].gated = true;
        let placed = place_all(placement.as_mut(), &mut hosts);
        assert_eq!(placed.len(), 1, "the slow host takes a task: {placed:?}");
    }

    #[test]
    fn a_gated_faster_host_does_not_block_a_speculative_copy() {
        use crate::placement::copy_host;
        use crate::placement::testing::up;
        let mut hosts = vec![up(1), up(1), up(4)];
        hosts[2].weight = 4.0;
        hosts[2].gated = true;
        assert_eq!(copy_host(&hosts, 0), Some(1));
    }

    #[test]
    fn sizes_format_in_the_largest_unit() {
        assert_eq!(format_size(512), "512B");
        assert_eq!(format_size(1536), "1.5k");
        assert_eq!(format_size(1 << 50), "1.0P");
    }
}
