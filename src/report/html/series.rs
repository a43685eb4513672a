//! The page's series (pure): utilisation over time in equal buckets and a histogram of run
//! times.

/// Busy fraction of `slots` in each of `buckets` equal buckets of `[0, span)`, from the
/// `(start, end)` intervals that kept a slot busy. Clamped to 1 (a speculative copy can
/// briefly run beside its original).
pub fn utilisation(intervals: &[(f64, f64)], slots: f64, span: f64, buckets: usize) -> Vec<f64> {
    let mut busy = vec![0.0; buckets];
    if span <= 0.0 || slots <= 0.0 || buckets == 0 {
        return busy;
    }
    let width = span / buckets as f64;
    for &(start, end) in intervals {
        let (start, end) = (start.max(0.0), end.min(span));
        if end <= start {
            continue;
        }
        let first = ((start / width) as usize).min(buckets - 1);
        let last = ((end / width) as usize).min(buckets - 1);
        for (b, cell) in busy.iter_mut().enumerate().take(last + 1).skip(first) {
            let (lo, hi) = (b as f64 * width, (b + 1) as f64 * width);
            *cell += (end.min(hi) - start.max(lo)).max(0.0);
        }
    }
    busy.iter()
        .map(|b| (b / (width * slots)).min(1.0))
        .collect()
}

/// Counts of `values` in `bins` equal bins of `[0, max]` (the last bin holds the maximum),
/// and the bin width.
pub fn histogram(values: &[f64], bins: usize) -> (Vec<usize>, f64) {
    let max = values.iter().copied().fold(0.0, f64::max);
    let mut counts = vec![0; bins];
    if bins == 0 || values.is_empty() {
        return (counts, 0.0);
    }
    let width = if max > 0.0 { max / bins as f64 } else { 1.0 };
    for &v in values {
        let bin = ((v.max(0.0) / width) as usize).min(bins - 1);
        counts[bin] += 1;
    }
    (counts, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilisation_splits_an_attempt_over_the_buckets_it_covers() {
        // Two slots over 4 s in 4 buckets; one attempt 0.5–2.5 s, one 1–2 s.
        let u = utilisation(&[(0.5, 2.5), (1.0, 2.0)], 2.0, 4.0, 4);
        assert_eq!(u, vec![0.25, 1.0, 0.25, 0.0]);
    }

    #[test]
    fn utilisation_of_nothing_is_zero() {
        assert_eq!(utilisation(&[(0.0, 1.0)], 0.0, 4.0, 2), vec![0.0, 0.0]);
        assert_eq!(utilisation(&[], 1.0, 0.0, 3), vec![0.0; 3]);
        // An interval past the span counts up to the span only.
        assert_eq!(utilisation(&[(1.0, 9.0)], 1.0, 2.0, 2), vec![0.0, 1.0]);
    }

    #[test]
    fn histogram_puts_the_maximum_in_the_last_bin() {
        let (counts, width) = histogram(&[0.0, 0.5, 1.0, 2.0], 4);
        assert_eq!((counts, width), (vec![1, 1, 1, 1], 0.5));
        assert_eq!(histogram(&[], 3), (vec![0, 0, 0], 0.0));
        assert_eq!(histogram(&[0.0, 0.0], 2), (vec![2, 0], 1.0));
    }
}
