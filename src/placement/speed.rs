//! Host speeds measured from history (issue 17 item 3): the same task keys ran on different
//! hosts across runs, so the ratio of their run times says how fast each host is. Pure: the
//! caller reads the history, this only estimates.
//!
//! The model is `seconds(key, host) = work(key) / speed(host)`, fitted in log space by
//! alternating geometric means; speeds are scaled so that their geometric mean is 1 (a host
//! of speed 1 is an average one, as a host without a `weight` is taken to be).

use std::collections::HashMap;

/// Keys a host must share with other hosts before its speed is trusted.
pub const MIN_SHARED: usize = 3;

const ROUNDS: usize = 100;

/// One recorded run time of a task key on a host.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub key: &'a [u8],
    pub host: &'a str,
    pub seconds: f64,
}

/// The measured speed of each host that shares at least [`MIN_SHARED`] keys with other
/// hosts; hosts with less evidence are left out (the caller keeps their weight).
pub fn estimate(samples: &[Sample]) -> HashMap<String, f64> {
    let samples: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.seconds.is_finite() && s.seconds > 0.0)
        .collect();
    let mut hosts_of: HashMap<&[u8], Vec<&str>> = HashMap::new();
    for s in &samples {
        hosts_of.entry(s.key).or_default().push(s.host);
    }
    let mut shared: HashMap<&str, usize> = HashMap::new();
    for s in &samples {
        if hosts_of[s.key].iter().any(|h| *h != s.host) {
            *shared.entry(s.host).or_default() += 1;
        }
    }
    let trusted = |h: &str| shared.get(h).is_some_and(|&n| n >= MIN_SHARED);
    let fit: Vec<&Sample> = samples
        .into_iter()
        .filter(|s| trusted(s.host) && hosts_of[s.key].iter().filter(|h| trusted(h)).count() > 1)
        .collect();
    let mut log_speed: HashMap<&str, f64> = fit.iter().map(|s| (s.host, 0.0)).collect();
    if log_speed.len() < 2 {
        return HashMap::new();
    }
    for _ in 0..ROUNDS {
        // log work(key) = mean over its runs of log seconds + log speed.
        let mut work: HashMap<&[u8], (f64, f64)> = HashMap::new();
        for s in &fit {
            let e = work.entry(s.key).or_default();
            e.0 += s.seconds.ln() + log_speed[s.host];
            e.1 += 1.0;
        }
        // log speed(host) = mean over its runs of log work − log seconds.
        let mut speed: HashMap<&str, (f64, f64)> = HashMap::new();
        for s in &fit {
            let (sum, n) = work[s.key];
            let e = speed.entry(s.host).or_default();
            e.0 += sum / n - s.seconds.ln();
            e.1 += 1.0;
        }
        let mean = speed.values().map(|(sum, n)| sum / n).sum::<f64>() / speed.len() as f64;
        for (host, (sum, n)) in speed {
            log_speed.insert(host, sum / n - mean);
        }
    }
    log_speed
        .into_iter()
        .map(|(h, l)| (h.to_string(), l.exp()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples<'a>(runs: &'a [(&'a str, &'a str, f64)]) -> Vec<Sample<'a>> {
        runs.iter()
            .map(|&(key, host, seconds)| Sample {
                key: key.as_bytes(),
                host,
                seconds,
            })
            .collect()
    }

    #[test]
    fn a_host_that_takes_twice_as_long_on_the_same_keys_is_half_as_fast() {
        let mut runs = Vec::new();
        for (key, work) in [("a", 1.0), ("b", 5.0), ("c", 2.0), ("d", 9.0)] {
            runs.push((key, "fast", work));
            runs.push((key, "slow", work * 2.0));
        }
        let speeds = estimate(&samples(&runs));
        let ratio = speeds["fast"] / speeds["slow"];
        assert!((ratio - 2.0).abs() < 1e-9, "{speeds:?}");
        assert!(
            (speeds["fast"] * speeds["slow"] - 1.0).abs() < 1e-9,
            "geometric mean 1"
        );
    }

    #[test]
    fn speeds_chain_through_keys_no_two_hosts_share_all() {
        // a–b share keys 1–3, b–c share 4–6: c is measured against a through b.
        let runs = [
            ("1", "a", 1.0),
            ("2", "a", 2.0),
            ("3", "a", 3.0),
            ("1", "b", 2.0),
            ("2", "b", 4.0),
            ("3", "b", 6.0),
            ("4", "b", 2.0),
            ("5", "b", 4.0),
            ("6", "b", 6.0),
            ("4", "c", 4.0),
            ("5", "c", 8.0),
            ("6", "c", 12.0),
        ];
        let speeds = estimate(&samples(&runs));
        assert!((speeds["a"] / speeds["c"] - 4.0).abs() < 1e-4, "{speeds:?}");
    }

    #[test]
    fn a_host_with_too_few_shared_keys_gets_no_speed() {
        let runs = [
            ("1", "a", 1.0),
            ("2", "a", 1.0),
            ("3", "a", 1.0),
            ("1", "b", 2.0),
            ("2", "b", 2.0),
            ("3", "b", 2.0),
            ("1", "c", 9.0),
            ("9", "c", 1.0),
        ];
        let speeds = estimate(&samples(&runs));
        assert!(!speeds.contains_key("c"));
        assert!(speeds.contains_key("a") && speeds.contains_key("b"));
        assert!(estimate(&samples(&[("1", "a", 1.0), ("1", "b", 2.0)])).is_empty());
    }
}
