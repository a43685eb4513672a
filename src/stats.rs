//! Run metrics (pure): ATCT, wait and run distributions, per-host utilisation RU_h, RU, LBD,
//! makespan, LB ratio, throughput and consistent-hash hit rate. Real runs and the simulator
//! feed the same [`compute`].
//!
//! Times are seconds from the run's start.
//!
//! Completion figures (ATCT, wait, run, LB ratio, throughput) count only tasks that ran to
//! their end, succeeded or failed: a task killed by a cancel or Ctrl-C finished nothing.
//! Utilisation counts every attempt that kept a slot busy, and RU and LBD only hosts that
//! connected (capacity with slots).

/// One attempt that ran on a host (successful or not): it kept a slot busy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attempt {
    pub host: usize,
    pub started: f64,
    pub finished: f64,
    /// A task failure: non-zero exit, signal or timeout (not a kill by a stop or requeue).
    pub failed: bool,
}

/// How a task ended, as the figures count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Succeeded,
    /// Its final attempt failed or timed out.
    Failed,
    /// Killed or never finished because the run stopped (cancel, Ctrl-C): it did not run
    /// to its end, so it is neither a success nor a failure.
    Stopped,
}

/// A task's life as a whole.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskTimes {
    pub submitted: f64,
    /// First launch.
    pub started: f64,
    /// End of the final attempt.
    pub finished: f64,
    /// Run time of the final attempt.
    pub run: f64,
    /// Host of the final attempt.
    pub host: usize,
    pub end: End,
    /// Consistent-hash: whether it ran on its key's first-choice host.
    pub hit: Option<bool>,
}

/// A host's capacity over the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    pub slots: u32,
    /// Relative speed (weight).
    pub speed: f64,
}

/// Mean and order statistics of a sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostStats {
    /// Tasks whose final attempt ran here, and those among them that failed.
    pub tasks: usize,
    pub failed: usize,
    /// Every attempt that ran here (retried, requeued, killed or final), and the task
    /// failures among them: a host that fails everything it runs shows here even when
    /// retries elsewhere succeed.
    pub attempts: usize,
    pub failed_attempts: usize,
    /// Tasks whose final attempt ran here to its end: what `run` summarises.
    pub completed: usize,
    /// Busy slot-seconds.
    pub busy: f64,
    pub ru: f64,
    pub run: Summary,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub tasks: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Tasks that ran to their end (succeeded or failed): what completion figures count.
    pub completed: usize,
    /// Mean task completion time (finished − submitted).
    pub atct: f64,
    pub wait: Summary,
    pub run: Summary,
    pub makespan: f64,
    pub ru: f64,
    pub lbd: f64,
    pub lb_ratio: f64,
    pub throughput: f64,
    pub hit_rate: Option<f64>,
    pub hosts: Vec<HostStats>,
}

/// Computes every metric. `capacity` has one entry per host; hosts with zero slots (never
/// reachable) are left out of RU and LBD.
pub fn compute(all_tasks: &[TaskTimes], attempts: &[Attempt], capacity: &[Capacity]) -> Stats {
    compute_taking(all_tasks, attempts, capacity, 1)
}

/// [`compute`] for tasks that each held `slots_per_task` slots (`--cpus N`): RU counts the
/// slots the tasks took, not one per task.
pub fn compute_taking(
    all_tasks: &[TaskTimes],
    attempts: &[Attempt],
    capacity: &[Capacity],
    slots_per_task: u32,
) -> Stats {
    let makespan = makespan(all_tasks);
    let mut hosts = per_host(all_tasks, attempts, capacity, makespan);
    let taken = f64::from(slots_per_task.max(1));
    for h in &mut hosts {
        h.busy *= taken;
    }
    for (h, c) in hosts.iter_mut().zip(capacity) {
        let available = f64::from(c.slots) * makespan;
        if available > 0.0 {
            h.ru = (h.busy / available).min(1.0);
        }
    }
    let tasks: Vec<TaskTimes> = all_tasks
        .iter()
        .filter(|t| t.end != End::Stopped)
        .copied()
        .collect();
    let tasks = tasks.as_slice();
    let usable: Vec<&HostStats> = hosts
        .iter()
        .zip(capacity)
        .filter(|(_, c)| c.slots > 0)
        .map(|(h, _)| h)
        .collect();
    let ru = mean(usable.iter().map(|h| h.ru));
    let lbd = mean(usable.iter().map(|h| (h.ru - ru).abs()));
    let hits: Vec<bool> = tasks.iter().filter_map(|t| t.hit).collect();
    let stats = Stats {
        tasks: all_tasks.len(),
        succeeded: tasks.iter().filter(|t| t.end == End::Succeeded).count(),
        failed: tasks.iter().filter(|t| t.end == End::Failed).count(),
        completed: tasks.len(),
        atct: mean(tasks.iter().map(|t| t.finished - t.submitted)),
        wait: summarize(tasks.iter().map(|t| t.started - t.submitted).collect()),
        run: summarize(tasks.iter().map(|t| t.run).collect()),
        makespan,
        ru,
        lbd,
        lb_ratio: lb_ratio(tasks, capacity, makespan),
        throughput: if makespan > 0.0 {
            tasks.len() as f64 / makespan
        } else {
            0.0
        },
        hit_rate: (!hits.is_empty())
            .then(|| hits.iter().filter(|&&h| h).count() as f64 / hits.len() as f64),
        hosts: Vec::new(),
    };
    Stats {
        hosts: std::mem::take(&mut hosts),
        ..stats
    }
}

fn makespan(tasks: &[TaskTimes]) -> f64 {
    let first = tasks
        .iter()
        .map(|t| t.submitted)
        .fold(f64::INFINITY, f64::min);
    let last = tasks
        .iter()
        .map(|t| t.finished)
        .fold(f64::NEG_INFINITY, f64::max);
    if tasks.is_empty() {
        0.0
    } else {
        (last - first).max(0.0)
    }
}

fn per_host(
    tasks: &[TaskTimes],
    attempts: &[Attempt],
    capacity: &[Capacity],
    makespan: f64,
) -> Vec<HostStats> {
    let mut hosts = vec![HostStats::default(); capacity.len()];
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); capacity.len()];
    for a in attempts {
        if let Some(h) = hosts.get_mut(a.host) {
            h.busy += (a.finished - a.started).max(0.0);
            h.attempts += 1;
            h.failed_attempts += usize::from(a.failed);
        }
    }
    for t in tasks {
        if let Some(h) = hosts.get_mut(t.host) {
            h.tasks += 1;
            h.failed += usize::from(t.end == End::Failed);
            if t.end != End::Stopped {
                h.completed += 1;
                runs[t.host].push(t.run);
            }
        }
    }
    for ((h, c), r) in hosts.iter_mut().zip(capacity).zip(runs) {
        let available = f64::from(c.slots) * makespan;
        h.ru = if available > 0.0 {
            (h.busy / available).min(1.0)
        } else {
            0.0
        };
        h.run = summarize(r);
    }
    hosts
}

/// makespan / max(longest task on the fastest host, total work / total capacity).
fn lb_ratio(tasks: &[TaskTimes], capacity: &[Capacity], makespan: f64) -> f64 {
    let speed = |h: usize| capacity.get(h).map_or(1.0, |c| c.speed);
    let fastest = capacity
        .iter()
        .filter(|c| c.slots > 0)
        .map(|c| c.speed)
        .fold(0.0, f64::max);
    let total_capacity: f64 = capacity.iter().map(|c| f64::from(c.slots) * c.speed).sum();
    if fastest <= 0.0 || total_capacity <= 0.0 {
        return 0.0;
    }
    // Work in nominal seconds: time on the host times the host's speed.
    let work: Vec<f64> = tasks.iter().map(|t| t.run * speed(t.host)).collect();
    let longest = work.iter().copied().fold(0.0, f64::max) / fastest;
    let bound = longest.max(work.iter().sum::<f64>() / total_capacity);
    if bound > 0.0 { makespan / bound } else { 0.0 }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Nearest-rank percentiles.
pub fn summarize(mut values: Vec<f64>) -> Summary {
    if values.is_empty() {
        return Summary::default();
    }
    values.sort_by(f64::total_cmp);
    let rank =
        |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    Summary {
        mean: values.iter().sum::<f64>() / values.len() as f64,
        p50: rank(0.50),
        p95: rank(0.95),
        max: values[values.len() - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(host: usize, started: f64, finished: f64) -> TaskTimes {
        TaskTimes {
            submitted: 0.0,
            started,
            finished,
            run: finished - started,
            host,
            end: End::Succeeded,
            hit: None,
        }
    }

    fn attempt(t: &TaskTimes) -> Attempt {
        Attempt {
            host: t.host,
            started: t.started,
            finished: t.finished,
            failed: t.end == End::Failed,
        }
    }

    fn one_slot(hosts: usize) -> Vec<Capacity> {
        vec![
            Capacity {
                slots: 1,
                speed: 1.0,
            };
            hosts
        ]
    }

    #[test]
    fn cancelled_tasks_are_not_counted_as_failed_on_their_host() {
        let mut killed = task(0, 0.0, 2.0);
        killed.end = End::Stopped;
        let mut failed = task(1, 0.0, 1.0);
        failed.end = End::Failed;
        let tasks = [killed, failed];
        let attempts: Vec<_> = tasks.iter().map(attempt).collect();
        let s = compute(&tasks, &attempts, &one_slot(2));
        assert_eq!(
            (s.hosts[0].tasks, s.hosts[0].failed, s.hosts[0].completed),
            (1, 0, 0)
        );
        assert_eq!(
            (s.hosts[1].tasks, s.hosts[1].failed, s.hosts[1].completed),
            (1, 1, 1)
        );
        assert_eq!((s.succeeded, s.failed, s.completed), (0, 1, 1));
        // The killed task kept its slot busy all the same.
        assert_eq!(s.hosts[0].busy, 2.0);
    }

    #[test]
    fn an_interrupted_run_has_no_throughput_or_run_times() {
        let mut a = task(0, 0.0, 3.0);
        a.end = End::Stopped;
        let mut b = task(1, 0.5, 3.0);
        b.end = End::Stopped;
        let tasks = [a, b];
        let attempts: Vec<_> = tasks.iter().map(attempt).collect();
        let s = compute(&tasks, &attempts, &one_slot(2));
        assert_eq!(s.completed, 0);
        assert_eq!(s.throughput, 0.0);
        assert_eq!(s.run, Summary::default());
        assert_eq!(s.atct, 0.0);
        assert_eq!(s.lb_ratio, 0.0);
        assert_eq!(s.makespan, 3.0);
        assert!(s.ru > 0.0, "the slots were busy");
    }

    #[test]
    fn a_host_that_fails_every_attempt_shows_its_failed_attempts() {
        // Task 0 fails on host 1, then succeeds on host 0 on its retry.
        let retried = Attempt {
            host: 1,
            started: 0.0,
            finished: 0.5,
            failed: true,
        };
        let tasks = [task(0, 0.5, 1.0)];
        let attempts = [retried, attempt(&tasks[0])];
        let s = compute(&tasks, &attempts, &one_slot(2));
        assert_eq!((s.hosts[1].tasks, s.hosts[1].failed), (0, 0));
        assert_eq!((s.hosts[1].attempts, s.hosts[1].failed_attempts), (1, 1));
        assert_eq!((s.hosts[0].attempts, s.hosts[0].failed_attempts), (1, 0));
    }

    #[test]
    fn perfect_balance() {
        let tasks = vec![task(0, 0.0, 1.0), task(1, 0.0, 1.0)];
        let attempts: Vec<_> = tasks.iter().map(attempt).collect();
        let cap = [Capacity {
            slots: 1,
            speed: 1.0,
        }; 2];
        let s = compute(&tasks, &attempts, &cap);
        assert_eq!(s.makespan, 1.0);
        assert_eq!(s.ru, 1.0);
        assert_eq!(s.lbd, 0.0);
        assert_eq!(s.lb_ratio, 1.0);
        assert_eq!(s.atct, 1.0);
        assert_eq!(s.throughput, 2.0);
    }

    #[test]
    fn imbalance_shows_in_lbd_and_lb_ratio() {
        // Host 0 runs two 1 s tasks in sequence while host 1 idles.
        let tasks = vec![task(0, 0.0, 1.0), task(0, 1.0, 2.0)];
        let attempts: Vec<_> = tasks.iter().map(attempt).collect();
        let cap = [Capacity {
            slots: 1,
            speed: 1.0,
        }; 2];
        let s = compute(&tasks, &attempts, &cap);
        assert_eq!(s.hosts[0].ru, 1.0);
        assert_eq!(s.hosts[1].ru, 0.0);
        assert_eq!(s.ru, 0.5);
        assert_eq!(s.lbd, 0.5);
        assert_eq!(s.lb_ratio, 2.0);
        assert_eq!(s.atct, 1.5);
        assert_eq!(s.wait.max, 1.0);
    }

    #[test]
    fn unreachable_hosts_do_not_count_in_ru() {
        let tasks = vec![task(0, 0.0, 1.0)];
        let attempts: Vec<_> = tasks.iter().map(attempt).collect();
        let cap = [
            Capacity {
                slots: 1,
                speed: 1.0,
            },
            Capacity {
                slots: 0,
                speed: 1.0,
            },
        ];
        let s = compute(&tasks, &attempts, &cap);
        assert_eq!(s.ru, 1.0);
        assert_eq!(s.lbd, 0.0);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let s = summarize((1..=100).map(f64::from).collect());
        assert_eq!((s.p50, s.p95, s.max), (50.0, 95.0, 100.0));
        assert_eq!(s.mean, 50.5);
        assert_eq!(summarize(vec![]), Summary::default());
    }

    #[test]
    fn hit_rate_counts_only_tasks_that_have_one() {
        let mut a = task(0, 0.0, 1.0);
        a.hit = Some(true);
        let mut b = task(0, 0.0, 1.0);
        b.hit = Some(false);
        let s = compute(
            &[a, b],
            &[],
            &[Capacity {
                slots: 2,
                speed: 1.0,
            }],
        );
        assert_eq!(s.hit_rate, Some(0.5));
    }

    #[test]
    fn ru_counts_the_slots_a_task_took() {
        // One host of 8 slots, two tasks of 4 slots each for the whole run: full.
        let tasks = vec![task(0, 0.0, 2.0), task(0, 0.0, 2.0)];
        let attempts: Vec<_> = tasks.iter().map(attempt).collect();
        let capacity = [Capacity {
            slots: 8,
            speed: 1.0,
        }];
        assert_eq!(compute(&tasks, &attempts, &capacity).ru, 0.25);
        let s = compute_taking(&tasks, &attempts, &capacity, 4);
        assert_eq!((s.ru, s.hosts[0].ru, s.hosts[0].busy), (1.0, 1.0, 16.0));
    }
}
