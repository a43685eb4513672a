//! What placement knows about task lengths: the recent run times the caller reports through
//! [`Placement::observe`](super::Placement::observe), as work (run time × the host's
//! effective speed, i.e. seconds on a speed-1 host). Pure: the caller measures, this only
//! summarises.

use std::collections::VecDeque;

/// Recent observations kept: enough for a stable high quantile, few enough that the
/// summary follows a workload whose lengths drift.
const WINDOW: usize = 1024;

/// The summary is recomputed after this many new observations (the quantile costs
/// O(WINDOW)); in between it lags by at most this many.
const REFRESH: usize = 16;

/// Quantile of the observed work that stands for "a long task" in least-load's tail rule.
pub const TAIL_QUANTILE: f64 = 0.95;

/// A summary of recent task work.
#[derive(Debug, Clone)]
pub struct Durations {
    /// Which quantile [`Durations::long`] reports.
    quantile: f64,
    recent: VecDeque<f64>,
    since_refresh: usize,
    mean: Option<f64>,
    long: Option<f64>,
    /// The window at the last refresh, ascending, and the sum of each suffix of it.
    sorted: Vec<f64>,
    suffix_sums: Vec<f64>,
}

impl Default for Durations {
    fn default() -> Self {
        Durations::with_quantile(TAIL_QUANTILE)
    }
}

impl Durations {
    /// A summary whose [`Durations::long`] is this quantile (0–1) of recent work.
    pub fn with_quantile(quantile: f64) -> Self {
        Durations {
            quantile: quantile.clamp(0.0, 1.0),
            recent: VecDeque::new(),
            since_refresh: 0,
            mean: None,
            long: None,
            sorted: Vec::new(),
            suffix_sums: Vec::new(),
        }
    }

    /// Records the work of a finished task. Non-finite or negative values are ignored.
    pub fn observe(&mut self, work: f64) {
        if !work.is_finite() || work < 0.0 {
            return;
        }
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(work);
        self.since_refresh += 1;
        // Refresh at once while the sample is small, so the first estimates come early.
        if self.since_refresh >= REFRESH || self.recent.len() <= REFRESH {
            self.refresh();
        }
    }

    fn refresh(&mut self) {
        self.since_refresh = 0;
        let n = self.recent.len();
        self.mean = Some(self.recent.iter().sum::<f64>() / n as f64);
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        let rank = ((n as f64 * self.quantile).ceil() as usize).clamp(1, n) - 1;
        sorted.sort_by(f64::total_cmp);
        self.long = Some(sorted[rank]);
        self.suffix_sums = vec![0.0; n + 1];
        for i in (0..n).rev() {
            self.suffix_sums[i] = self.suffix_sums[i + 1] + sorted[i];
        }
        self.sorted = sorted;
    }

    /// The mean of `max(0, w − threshold)` over recent work `w`: how far past `threshold` a
    /// task drawn from them runs, on average. `None` before the first observation.
    pub fn excess_over(&self, threshold: f64) -> Option<f64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let first_above = self.sorted.partition_point(|&w| w <= threshold);
        let above = (n - first_above) as f64;
        Some((self.suffix_sums[first_above] - above * threshold) / n as f64)
    }

    /// Mean work of recent tasks; `None` before the first observation.
    pub fn mean(&self) -> Option<f64> {
        self.mean
    }

    /// The chosen quantile of recent work: how long a long task is.
    pub fn long(&self) -> Option<f64> {
        self.long
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_observed_means_no_estimate() {
        let d = Durations::default();
        assert_eq!((d.mean(), d.long()), (None, None));
    }

    #[test]
    fn mean_and_tail_of_a_known_sample() {
        let mut d = Durations::default();
        for w in 1..=100 {
            d.observe(f64::from(w));
        }
        // 100 = 6·16 + 4: the last four are not in the summary yet.
        assert_eq!(d.mean(), Some(48.5));
        assert_eq!(d.long(), Some(92.0));
        d.observe(f64::NAN);
        d.observe(-1.0);
        assert_eq!(d.mean(), Some(48.5));
    }

    #[test]
    fn old_observations_leave_the_window() {
        let mut d = Durations::default();
        for _ in 0..WINDOW {
            d.observe(100.0);
        }
        for _ in 0..WINDOW {
            d.observe(1.0);
        }
        assert_eq!((d.mean(), d.long()), (Some(1.0), Some(1.0)));
    }

    #[test]
    fn excess_over_a_threshold_is_the_mean_overrun() {
        let mut d = Durations::default();
        assert_eq!(d.excess_over(1.0), None);
        for w in [1.0, 2.0, 3.0, 10.0] {
            d.observe(w);
        }
        assert_eq!(d.excess_over(2.0), Some((1.0 + 8.0) / 4.0));
        assert_eq!(d.excess_over(0.0), Some(4.0));
        assert_eq!(d.excess_over(10.0), Some(0.0));
    }
}
