//! Host speeds measured from history (issue 17 item 3): the same task keys ran on different
//! hosts across runs, so the ratio of their run times says how fast each host is. Pure: the
//! caller reads the history, this only estimates.
//!
//! The model is `seconds(key, host) = work(key) / speed(host)`, fitted in log space by
//! alternating geometric means; speeds are scaled so that their geometric mean is 1 (a host
//! of speed 1 is an average one, as a host without a `weight` is taken to be).
//!
//! [`Recheck`] checks those speeds again during a run: each finished task whose work the
//! history gives (`work(key)`, in speed-1 seconds) measured its host's speed once more, as
//! `work / seconds`.

use std::collections::HashMap;

use super::{HostView, effective_speed};

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

/// How many finished tasks the speed a host started the run with counts as: a host's
/// speed moves halfway to what the run measured after this many of its tasks.
pub const PRIOR_TASKS: f64 = 4.0;

/// Host speeds re-checked by the run's own finished tasks of known work.
///
/// A host's speed is its weight (declared, or measured from history) times a correction:
/// the geometric mean of `measured / expected` over its tasks, where `measured` is the
/// task's work over its run time and `expected` the host's effective speed when it ended
/// (background load included). The weight counts as [`PRIOR_TASKS`] tasks with no error,
/// so a few noisy run times move it little and a consistent difference moves it all the way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recheck {
    /// Per host: Σ ln(measured / expected) and the tasks that gave it.
    evidence: Vec<(f64, f64)>,
    /// Per host: the correction those give, kept so that a decision reads it cheaply.
    factors: Vec<f64>,
}

impl Recheck {
    /// A task of known `work` (speed-1 seconds) ran `seconds` on `host`, whose view is
    /// `hosts[host]` as the task ended.
    pub fn observe(&mut self, hosts: &[HostView], host: usize, work: f64, seconds: f64) {
        let Some(view) = hosts.get(host) else { return };
        let expected = effective_speed(view);
        let measured = work / seconds;
        if !(measured.is_finite() && measured > 0.0 && expected > 0.0) {
            return;
        }
        if self.evidence.len() < hosts.len() {
            self.evidence.resize(hosts.len(), (0.0, 0.0));
            self.factors.resize(hosts.len(), 1.0);
        }
        let e = &mut self.evidence[host];
        e.0 += (measured / expected).ln();
        e.1 += 1.0;
        self.factors[host] = (e.0 / (e.1 + PRIOR_TASKS)).exp();
    }

    /// What the run measured so far: the factor to apply to `host`'s weight.
    pub fn correction(&self, host: usize) -> f64 {
        self.factors.get(host).copied().unwrap_or(1.0)
    }

    /// The views with every weight corrected; `None` while nothing was measured (use the
    /// views as they are).
    pub fn apply(&self, hosts: &[HostView]) -> Option<Vec<HostView>> {
        if self.evidence.iter().all(|&(_, n)| n == 0.0) {
            return None;
        }
        Some(
            hosts
                .iter()
                .enumerate()
                .map(|(h, v)| HostView {
                    weight: v.weight * self.correction(h),
                    ..v.clone()
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::testing::up;

    #[test]
    fn a_host_whose_known_tasks_take_twice_as_long_is_rechecked_to_half_its_weight() {
        let hosts = vec![up(4), up(4)];
        let mut recheck = Recheck::default();
        assert_eq!(recheck.apply(&hosts), None, "nothing measured yet");
        // h0 runs as its weight says; h1 (also weight 1) takes twice the known work.
        for work in [1.0, 3.0, 2.0, 5.0] {
            recheck.observe(&hosts, 0, work, work);
            recheck.observe(&hosts, 1, work, work * 2.0);
        }
        let after_four = recheck.correction(1);
        assert!(
            (after_four - 0.5f64.sqrt()).abs() < 1e-9,
            "halfway in log space after PRIOR_TASKS tasks: {after_four}"
        );
        for _ in 0..400 {
            recheck.observe(&hosts, 1, 1.0, 2.0);
        }
        assert!((recheck.correction(1) - 0.5).abs() < 0.01);
        assert_eq!(recheck.correction(0), 1.0);
        let views = recheck.apply(&hosts).unwrap();
        assert!((views[1].weight - 0.5).abs() < 0.01);
        assert_eq!(views[0].weight, 1.0);
    }

    #[test]
    fn background_load_is_not_taken_for_a_slow_host() {
        // 4 slots, 4 runnable processes not ours: a task gets half a core, as expected.
        let mut hosts = vec![up(4)];
        hosts[0].load = 4.0;
        let mut recheck = Recheck::default();
        for _ in 0..10 {
            recheck.observe(&hosts, 0, 1.0, 2.0);
        }
        assert!((recheck.correction(0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn run_times_that_say_nothing_are_ignored() {
        let hosts = vec![up(1)];
        let mut recheck = Recheck::default();
        recheck.observe(&hosts, 0, 1.0, 0.0);
        recheck.observe(&hosts, 0, f64::NAN, 1.0);
        recheck.observe(&hosts, 3, 1.0, 1.0);
        assert_eq!(recheck.apply(&hosts), None);
    }

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
