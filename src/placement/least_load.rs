//! Least-load: the host with the smallest (running + background load) / (slots × weight),
//! and no start on a slow host that a faster one would beat.
//!
//! The second rule matters on mixed-speed clusters near the end of a run. A task of work `w`
//! started on a host of effective speed `e_h` (weight, reduced by background load) ends
//! `w/e_h` later. Left queued behind `L` tasks of mean work `m`, it would start once the
//! faster hosts (total speed `C_f`, the sum of their slots × effective speed) have taken
//! them, about `L·m / C_f`, and end `w/e_f` after that on the fastest. Lengths are unknown
//! before a task runs, so the rule is taken for a *long* task, `w` = the 95th percentile of
//! the work of tasks that finished ([`Durations`], reported through `observe`): a host takes
//! a task only while `w/e_h ≤ L·m/C_f + w/e_f`. Before anything finished, `w = m` and the
//! lengths cancel: each task goes where it is expected to finish first, which is what the
//! mean completion time (ATCT) rewards. With the percentile the slow hosts stop a little
//! earlier, so that a long task drawn at the end does not set the makespan there
//! (`dts simulate` over seeds 1–12: 300 lognormal tasks on mixed hosts end 7 % sooner for
//! 2 % more ATCT; BENCHMARKS.md#placement). It cannot help with a long task a slow host drew
//! early in the run: only `--speculate` (or knowing lengths up front) can.

use super::HostView;
use super::durations::Durations;
use super::fifo::ChooseHost;

#[derive(Debug, Default)]
pub struct LeastLoad {
    /// Work of the tasks that finished so far (see [`super::Placement::observe`]).
    durations: Durations,
}

/// How loaded a host would be relative to its capacity; lower is better.
pub fn pressure(host: &HostView) -> f64 {
    let capacity = f64::from(host.slots.max(1)) * host.weight.max(f64::MIN_POSITIVE);
    (f64::from(host.running) + host.load.max(0.0)) / capacity
}

/// Speed one task gets on the host: its weight, shared with the background load.
pub fn effective_speed(host: &HostView) -> f64 {
    let slots = f64::from(host.slots.max(1));
    host.weight.max(f64::MIN_POSITIVE) * slots / (slots + host.load.max(0.0))
}

impl LeastLoad {
    /// Least-load whose tail rule takes this quantile of observed work as a long task.
    pub fn with_tail_quantile(quantile: f64) -> Self {
        LeastLoad {
            durations: Durations::with_quantile(quantile),
        }
    }

    /// Whether a task is better started on `h` now than left for faster hosts.
    fn worth_starting(&self, hosts: &[HostView], h: usize, queued: usize) -> bool {
        let speed = effective_speed(&hosts[h]);
        let mut faster_capacity = 0.0;
        let mut fastest: f64 = 0.0;
        for (g, host) in hosts.iter().enumerate() {
            let e = effective_speed(host);
            // A gated host may stay shut for the whole run: no task waits for it.
            let open = host.liveness == super::Liveness::Up && !host.gated;
            if g != h && host.slots > 0 && open && e > speed {
                faster_capacity += f64::from(host.slots) * e;
                fastest = fastest.max(e);
            }
        }
        if faster_capacity == 0.0 {
            return true;
        }
        // Before anything finished, lengths are unknown: all tasks count as equal.
        let mean = self.durations.mean().unwrap_or(1.0);
        let long = self.durations.long().unwrap_or(mean);
        let wait_for_faster = queued as f64 * mean / faster_capacity;
        long / speed <= wait_for_faster + long / fastest
    }
}

impl ChooseHost for LeastLoad {
    fn choose(&mut self, hosts: &[HostView], queued: usize) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, host) in hosts.iter().enumerate() {
            if host.free() == 0 {
                continue;
            }
            let p = pressure(host);
            if best.is_none_or(|(_, b)| p < b) && self.worth_starting(hosts, i, queued) {
                best = Some((i, p));
            }
        }
        best.map(|(host, _)| host)
    }

    fn observe(&mut self, work: f64) {
        self.durations.observe(work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Placement;
    use crate::placement::fifo::Fifo;
    use crate::placement::testing::*;

    #[test]
    fn fills_by_relative_load() {
        let mut p = Fifo::new(LeastLoad::default());
        push_n(&mut p, 6);
        let mut hosts = vec![up(4), up(4)];
        hosts[1].weight = 2.0;
        let placed = place_all(&mut p, &mut hosts);
        let on_fast = placed.iter().filter(|&&(_, h)| h == 1).count();
        assert_eq!(
            on_fast, 4,
            "the weight-2 host takes twice the share: {placed:?}"
        );
    }

    #[test]
    fn background_load_steers_work_away() {
        let mut p = Fifo::new(LeastLoad::default());
        push_n(&mut p, 4);
        let mut hosts = vec![up(4), up(4)];
        hosts[0].load = 4.0;
        let placed = place_all(&mut p, &mut hosts);
        assert_eq!(placed.iter().filter(|&&(_, h)| h == 1).count(), 4);
    }

    #[test]
    fn a_slow_host_waits_out_the_tail() {
        // Fast host full, slow host (half speed) free: with one task queued it is better to
        // wait for the fast host; with many queued the slow host should help.
        let mut hosts = vec![up(4), up(4)];
        hosts[0].running = 4;
        hosts[1].weight = 0.5;
        let mut p = Fifo::new(LeastLoad::default());
        push_n(&mut p, 1);
        assert_eq!(p.next(&hosts), None);
        let mut p = Fifo::new(LeastLoad::default());
        push_n(&mut p, 10);
        assert_eq!(p.next(&hosts).map(|(_, h)| h), Some(1));
    }

    #[test]
    fn long_observed_tasks_make_a_slow_host_stop_sooner() {
        // 20 queued, fast host full, slow host (0.4) free. Equal tasks: the slow host helps
        // (2.5 ≤ 20/8 + 1). When one task in twenty is 10× the typical, a long task started
        // there would end after the fast host had drained the queue and run it.
        let mut hosts = vec![up(8), up(8)];
        hosts[0].running = 8;
        hosts[1].weight = 0.4;
        let mut p = Fifo::new(LeastLoad::default());
        push_n(&mut p, 20);
        assert_eq!(p.next(&hosts).map(|(_, h)| h), Some(1));
        let mut p = Fifo::new(LeastLoad::default());
        for i in 0..100 {
            p.observe(if i % 10 == 0 { 10.0 } else { 1.0 });
        }
        push_n(&mut p, 20);
        assert_eq!(p.next(&hosts), None);
    }
}
