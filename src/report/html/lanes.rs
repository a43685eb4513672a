//! Which slot lane of its host each attempt is drawn in (pure): greedy interval
//! partitioning, so attempts that overlapped in time never share a lane and a host needs
//! no more lanes than it had attempts running at once.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// An end time ordered by `total_cmp`, for the heap of busy lanes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct End(f64);

impl Eq for End {}

impl PartialOrd for End {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for End {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The lane of each `(start, end)` interval, by input position, and how many lanes they
/// use. Taken in order of start, each interval goes to the lowest-numbered lane free at its
/// start (a lane is free once its last interval ended, at or before that start).
pub fn assign(intervals: &[(f64, f64)]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by(|&a, &b| {
        let (sa, ea) = intervals[a];
        let (sb, eb) = intervals[b];
        sa.total_cmp(&sb).then(ea.total_cmp(&eb)).then(a.cmp(&b))
    });
    let mut lanes = vec![0; intervals.len()];
    let mut busy: BinaryHeap<Reverse<(End, usize)>> = BinaryHeap::new();
    let mut free: BinaryHeap<Reverse<usize>> = BinaryHeap::new();
    let mut used = 0;
    for i in order {
        let (start, end) = intervals[i];
        while let Some(&Reverse((End(done), lane))) = busy.peek() {
            if done > start {
                break;
            }
            busy.pop();
            free.push(Reverse(lane));
        }
        let lane = free.pop().map_or_else(
            || {
                used += 1;
                used - 1
            },
            |Reverse(lane)| lane,
        );
        lanes[i] = lane;
        busy.push(Reverse((End(end.max(start)), lane)));
    }
    (lanes, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_attempts_share_one_lane() {
        assert_eq!(
            assign(&[(0.0, 1.0), (1.0, 2.0), (2.5, 3.0)]),
            (vec![0, 0, 0], 1)
        );
    }

    #[test]
    fn overlapping_attempts_take_the_lowest_free_lane() {
        // 0: [0,4) lane 0; 1: [1,2) lane 1; 2: [1.5,3) lane 2; 3: [2,5) lane 1 again.
        let got = assign(&[(0.0, 4.0), (1.0, 2.0), (1.5, 3.0), (2.0, 5.0)]);
        assert_eq!(got, (vec![0, 1, 2, 1], 3));
    }

    #[test]
    fn input_order_does_not_matter() {
        let got = assign(&[(2.0, 5.0), (0.0, 4.0), (1.5, 3.0), (1.0, 2.0)]);
        assert_eq!(got, (vec![1, 0, 2, 1], 3));
        assert_eq!(assign(&[]), (vec![], 0));
    }

    #[test]
    fn no_two_overlapping_intervals_share_a_lane() {
        // A fixed pseudo-random set: lanes never hold overlapping intervals, and the lane
        // count equals the most intervals open at once.
        let mut x: u64 = 7;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as f64 / f64::from(u32::MAX >> 1)
        };
        let intervals: Vec<(f64, f64)> = (0..500)
            .map(|_| {
                let s = next() * 100.0;
                (s, s + next() * 10.0)
            })
            .collect();
        let (lanes, used) = assign(&intervals);
        for (i, a) in intervals.iter().enumerate() {
            for (j, b) in intervals.iter().enumerate().skip(i + 1) {
                if lanes[i] == lanes[j] {
                    assert!(
                        a.1 <= b.0 || b.1 <= a.0,
                        "{a:?} and {b:?} share lane {}",
                        lanes[i]
                    );
                }
            }
        }
        let most_open = intervals
            .iter()
            .map(|&(s, _)| intervals.iter().filter(|&&(a, b)| a <= s && s < b).count())
            .max()
            .unwrap();
        assert_eq!(used, most_open);
    }
}
