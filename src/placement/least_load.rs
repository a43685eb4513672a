//! Least-load: the host with the smallest (running + background load) / (slots × weight),
//! and no start on a slow host that a faster one would beat.
//!
//! The second rule matters on mixed-speed clusters near the end of a run. A host `h` of
//! effective speed `e_h` (weight, reduced by background load) with a faster host open asks
//! whether the task at the head of the queue would run past the end of the run there. The
//! run has about `R = L·m / C` left: `L` queued tasks of mean work `m` on all open hosts
//! (total speed `C`, the sum of their slots × effective speed). Lengths are unknown before a
//! task runs, so the rule takes the tasks that finished ([`Durations`], reported through
//! `observe`) as the sample a task is drawn from: started on `h`, a task runs past `R` by
//! `E[(w/e_h − R)⁺]` on average, and leaving it to the faster hosts (total speed `C_f`) costs
//! them `m / C_f`. The host takes it while the first is at most [`RISK`] × the second.
//! Before anything finished, all tasks count as equal (`w = m`): a host takes a task while
//! it would end there no later than on the fastest host after the queue drained.
//!
//! On `dts simulate --hosts 4x8,4x8@0.4 --dist lognormal` (seeds 13–84) this ends runs
//! 1–4 % sooner than round-robin; the mean over a dozen seeds is set by which host the one
//! or two longest tasks (50–100 × the median) happened to land on, which no placement that
//! cannot see lengths controls. Where lengths are known (a named job's history,
//! [`ChooseHost::choose_known`]) a slow host takes only a task that ends there before the
//! faster hosts would have run it, so long tasks wait for fast hosts
//! (BENCHMARKS.md#placement).

use super::HostView;
use super::durations::Durations;
use super::fifo::{Backlog, ChooseHost};
use super::speed::Recheck;

/// How much expected overrun of the run's end a slow host may risk per task, in units of
/// the time the faster hosts save by not running it. Chosen on seeds 13–48 of the
/// benchmark setups (BENCHMARKS.md#placement): 1–8 differ by under 2 %.
pub const RISK: f64 = 4.0;

#[derive(Debug, Default)]
pub struct LeastLoad {
    /// Work of the tasks that finished so far (see [`super::Placement::observe`]).
    durations: Durations,
    /// Host speeds re-checked by this run's finished tasks of known work.
    recheck: Recheck,
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

/// A host that may take tasks in this run: a gated host may stay shut for the whole run,
/// so no task waits for it.
fn open(host: &HostView) -> bool {
    host.liveness == super::Liveness::Up && !host.gated && host.slots > 0
}

/// What a host knows about the hosts faster than it.
struct Faster {
    /// Sum of their slots × effective speed.
    capacity: f64,
    /// The effective speed of the fastest.
    fastest: f64,
}

impl LeastLoad {
    /// Host `h`'s effective speed with the run's re-check applied to its weight.
    fn speed(&self, hosts: &[HostView], h: usize) -> f64 {
        effective_speed(&hosts[h]) * self.recheck.correction(h)
    }

    /// Host `h`'s [`pressure`] with the run's re-check applied to its weight.
    fn pressure(&self, hosts: &[HostView], h: usize) -> f64 {
        pressure(&hosts[h]) / self.recheck.correction(h)
    }

    /// The open hosts faster than `h`; `None` when there are none.
    fn faster_than(&self, hosts: &[HostView], h: usize) -> Option<Faster> {
        let speed = self.speed(hosts, h);
        let mut faster = Faster {
            capacity: 0.0,
            fastest: 0.0,
        };
        for (g, host) in hosts.iter().enumerate() {
            let e = self.speed(hosts, g);
            if g != h && open(host) && e > speed {
                faster.capacity += f64::from(host.slots) * e;
                faster.fastest = faster.fastest.max(e);
            }
        }
        (faster.capacity > 0.0).then_some(faster)
    }

    /// The time all open hosts need for `work` (speed-1 seconds): what is left of the run.
    fn time_left(&self, hosts: &[HostView], work: f64) -> f64 {
        let capacity: f64 = (0..hosts.len())
            .filter(|&g| open(&hosts[g]))
            .map(|g| f64::from(hosts[g].slots) * self.speed(hosts, g))
            .sum();
        work / capacity.max(f64::MIN_POSITIVE)
    }

    /// Whether a task of unknown length is better started on `h` now than left for faster
    /// hosts.
    fn worth_starting(&self, hosts: &[HostView], h: usize, backlog: &Backlog) -> bool {
        let Some(faster) = self.faster_than(hosts, h) else {
            return true;
        };
        let speed = self.speed(hosts, h);
        let mean = self.durations.mean().unwrap_or(1.0);
        let left = self.time_left(hosts, backlog.work(mean));
        match self.durations.excess_over(speed * left) {
            Some(excess) => excess / speed <= RISK * mean / faster.capacity,
            None => 1.0 / speed <= left + 1.0 / faster.fastest,
        }
    }

    /// Whether a task of known `work` ends on `h` no later than on the fastest host once
    /// the queue drained.
    fn worth_starting_known(
        &self,
        hosts: &[HostView],
        h: usize,
        backlog: &Backlog,
        work: f64,
    ) -> bool {
        let Some(faster) = self.faster_than(hosts, h) else {
            return true;
        };
        let mean = self.durations.mean().unwrap_or(1.0);
        let left = self.time_left(hosts, backlog.work(mean));
        work / self.speed(hosts, h) <= left + work / faster.fastest
    }

    /// The least-pressed free host that passes `worth`.
    fn least_pressed(
        &self,
        hosts: &[HostView],
        mut worth: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, host) in hosts.iter().enumerate() {
            if host.free() == 0 {
                continue;
            }
            let p = self.pressure(hosts, i);
            if best.is_none_or(|(_, b)| p < b) && worth(i) {
                best = Some((i, p));
            }
        }
        best.map(|(host, _)| host)
    }
}

impl ChooseHost for LeastLoad {
    fn choose(&mut self, hosts: &[HostView], backlog: &Backlog) -> Option<usize> {
        self.least_pressed(hosts, |h| self.worth_starting(hosts, h, backlog))
    }

    fn choose_known(&mut self, hosts: &[HostView], backlog: &Backlog, work: f64) -> Option<usize> {
        self.least_pressed(hosts, |h| {
            self.worth_starting_known(hosts, h, backlog, work)
        })
    }

    fn observe(&mut self, work: f64) {
        self.durations.observe(work);
    }

    /// Re-checks the host's speed when the task's work is known, then learns the task's
    /// work at the host's speed as re-checked.
    fn finished(&mut self, hosts: &[HostView], host: usize, seconds: f64, work: Option<f64>) {
        if host >= hosts.len() {
            return;
        }
        if let Some(work) = work {
            self.recheck.observe(hosts, host, work, seconds);
        }
        self.durations.observe(seconds * self.speed(hosts, host));
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

    #[test]
    fn a_known_long_task_waits_for_the_fast_host_while_a_short_one_takes_the_slow_host() {
        // Fast host full, slow host (0.25) free, 10 tasks of work 1 queued behind one of 40:
        // the long one would end at 160 s there, against ≈ 42 s once the fast host frees.
        let mut hosts = vec![up(4), up(4)];
        hosts[0].running = 4;
        hosts[1].weight = 0.25;
        let mut p = Fifo::new(LeastLoad::default());
        let mut work = vec![Some(40.0)];
        work.extend(std::iter::repeat_n(Some(1.0), 10));
        p.know_work(&work);
        push_n(&mut p, 11);
        assert_eq!(
            p.next(&hosts),
            Some((1, 1)),
            "a short task goes to the slow host"
        );
        hosts[1].running = 1;
        hosts[0].running = 3;
        assert_eq!(
            p.next(&hosts),
            Some((0, 0)),
            "the long one to the fast host once it frees"
        );
    }

    #[test]
    fn a_host_the_run_finds_slow_is_treated_as_slow_though_its_weight_said_otherwise() {
        // Both hosts weigh 1, but h1's tasks of known work take four times as long: once
        // enough of them finished, a known long task waits for h0 rather than start on h1.
        let mut hosts = vec![up(4), up(4)];
        let mut p = Fifo::new(LeastLoad::default());
        let mut work = vec![Some(1.0); 40];
        work.push(Some(40.0));
        work.extend(std::iter::repeat_n(Some(1.0), 10));
        p.know_work(&work);
        for id in 0..40 {
            p.finished(
                id,
                (id % 2) as usize,
                if id % 2 == 0 { 1.0 } else { 4.0 },
                &hosts,
            );
        }
        for id in 40..51 {
            p.push(crate::placement::TaskRef { id, key: 0 });
        }
        hosts[0].running = 4;
        assert_eq!(
            p.next(&hosts),
            Some((41, 1)),
            "a short task goes to the host found slow, the long one waits"
        );
        // Without the run's evidence the long task would start there at once.
        let mut fresh = Fifo::new(LeastLoad::default());
        fresh.know_work(&work);
        fresh.push(crate::placement::TaskRef { id: 40, key: 0 });
        assert_eq!(fresh.next(&hosts), Some((40, 1)));
    }

    #[test]
    fn a_held_back_task_starts_on_the_slow_host_once_no_faster_host_is_open() {
        let mut hosts = vec![up(4), up(4)];
        hosts[0].running = 4;
        hosts[1].weight = 0.25;
        let mut p = Fifo::new(LeastLoad::default());
        p.know_work(&[Some(40.0)]);
        push_n(&mut p, 1);
        assert_eq!(p.next(&hosts), None);
        hosts[0].liveness = crate::placement::Liveness::Gone;
        assert_eq!(p.next(&hosts), Some((0, 1)));
    }
}
