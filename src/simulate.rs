//! A discrete-event simulated cluster driving the real placement code (pure: no I/O, no
//! clock). `dts simulate` compares algorithms with it; `dts submit --dry-run` uses it with
//! equal task times to show the plan a run would follow.

use crate::placement::order::{self, Order};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::placement::{
    self, Algorithm, HostView, Liveness, Params, Placement, TaskRef, rng::SplitMix64,
};
use crate::stats::{self, Attempt, Capacity, Stats, TaskTimes};

/// A simulated host.
#[derive(Debug, Clone, PartialEq)]
pub struct SimHost {
    pub name: String,
    pub slots: u32,
    /// How fast tasks run there (1.0 = nominal).
    pub speed: f64,
    /// What placement believes about its speed.
    pub weight: f64,
    /// Background runnable processes competing for its cores.
    pub load: f64,
}

impl SimHost {
    /// Background load takes its share of the cores: with `load` extra runnable processes,
    /// a task gets `slots / (slots + load)` of a core.
    fn effective_speed(&self) -> f64 {
        let slots = f64::from(self.slots.max(1));
        self.speed * slots / (slots + self.load.max(0.0))
    }
}

/// A simulated task: its nominal work (seconds on a speed-1 host) and its key's hash.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimTask {
    pub work: f64,
    pub key: u64,
}

/// Where and when each task ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    pub host: usize,
    pub started: f64,
    pub finished: f64,
    /// Consistent-hash: whether the host was the key's first choice.
    pub hit: Option<bool>,
    /// A speculative copy that lost: its host, start and the instant it was killed.
    pub lost: Option<(usize, f64, f64)>,
}

/// Runs every task to completion; all are submitted at time 0.
pub fn run(
    algorithm: Algorithm,
    hosts: &[SimHost],
    tasks: &[SimTask],
    seed: u64,
    epsilon: f64,
) -> Vec<Placed> {
    run_placement(
        placement::new(algorithm, &params(hosts, tasks, seed, epsilon)),
        hosts,
        tasks,
    )
}

/// What an algorithm is told up front about a simulated run.
pub fn params(hosts: &[SimHost], tasks: &[SimTask], seed: u64, epsilon: f64) -> Params {
    Params {
        seed,
        epsilon,
        hosts: hosts.iter().map(|h| (h.name.clone(), h.weight)).collect(),
        total_tasks: tasks.len(),
    }
}

/// [`run`] with a placement already built, without speculation.
pub fn run_placement(
    placement: Box<dyn Placement + Send>,
    hosts: &[SimHost],
    tasks: &[SimTask],
) -> Vec<Placed> {
    run_with(placement, hosts, tasks, Options::default())
}

/// What a simulated run does beyond placing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Options {
    /// `--speculate FACTOR`, as the dispatcher does it: once nothing is queued, a task
    /// running FACTOR × the median run time (and at least [`SPECULATE_MIN`]) gets a copy on
    /// another free host at least as fast ([`placement::copy_host`]); the first copy to end
    /// wins and the other is killed at that instant.
    pub speculate: Option<f64>,
    /// `--order longest-first`: the queue starts with the longest tasks, their durations
    /// known exactly (as a history of earlier runs would give them).
    pub order: Order,
    /// Placement is told every task's work ([`Placement::know_work`]), as a run of a named
    /// job is from its history.
    pub known: bool,
}

/// Successes whose run times make the median, at least and at most (as the dispatcher).
const SPECULATE_SAMPLES: usize = 5;
const RECENT_RUNS: usize = 1024;
/// No task is copied before it has run this long (seconds), whatever the median.
pub const SPECULATE_MIN: f64 = 1.0;

/// Runs every task to completion with these options; all are submitted at time 0.
pub fn run_with(
    mut placement: Box<dyn Placement + Send>,
    hosts: &[SimHost],
    tasks: &[SimTask],
    options: Options,
) -> Vec<Placed> {
    let queue: Vec<usize> = match options.order {
        Order::AsListed => (0..tasks.len()).collect(),
        Order::LongestFirst => {
            let known: Vec<Option<f64>> = tasks.iter().map(|t| Some(t.work)).collect();
            order::longest_first(&known).order
        }
    };
    if options.known {
        let work: Vec<Option<f64>> = tasks.iter().map(|t| Some(t.work)).collect();
        placement.know_work(&work);
    }
    for id in queue {
        placement.push(TaskRef {
            id: id as u32,
            key: tasks[id].key,
        });
    }
    let mut sim = Sim::new(placement, hosts, tasks);
    loop {
        sim.place();
        if let Some(factor) = options.speculate {
            sim.speculate(factor);
        }
        // Free every slot that ends at this instant before placing again, as the
        // dispatcher handles all pending events before it dispatches.
        let Some(next) = sim.events.pop() else { break };
        sim.now = next.at;
        sim.end(next.launch);
        while sim.events.peek().is_some_and(|f| f.at == sim.now) {
            let same = sim.events.pop().expect("peeked");
            sim.end(same.launch);
        }
    }
    sim.placed
        .into_iter()
        .map(|p| p.expect("every task is placed once the queue drains"))
        .collect()
}

/// One start of a task on a host (a task has two while a speculative copy runs).
#[derive(Debug, Clone, Copy)]
struct Launch {
    task: usize,
    host: usize,
    started: f64,
    finished: f64,
    /// Still running (not ended, not killed).
    live: bool,
}

/// The state of a simulated run.
struct Sim<'a> {
    placement: Box<dyn Placement + Send>,
    hosts: &'a [SimHost],
    tasks: &'a [SimTask],
    views: Vec<HostView>,
    now: f64,
    launches: Vec<Launch>,
    /// Launches of each task running now.
    live: Vec<u8>,
    /// Every launch of each task, in start order.
    by_task: Vec<Vec<usize>>,
    /// Launches running now, in start order (launch indices grow with time).
    running: std::collections::BTreeSet<usize>,
    placed: Vec<Option<Placed>>,
    events: BinaryHeap<Finish>,
    /// Run times of recent winners, for the speculation median.
    recent: std::collections::VecDeque<f64>,
    /// The earliest wake-up queued for speculation, so one is queued at a time.
    wake: Option<f64>,
}

impl<'a> Sim<'a> {
    fn new(
        placement: Box<dyn Placement + Send>,
        hosts: &'a [SimHost],
        tasks: &'a [SimTask],
    ) -> Self {
        let views = hosts
            .iter()
            .map(|h| HostView {
                liveness: Liveness::Up,
                slots: h.slots,
                running: 0,
                weight: h.weight,
                load: h.load,
                gated: false,
            })
            .collect();
        Sim {
            placement,
            hosts,
            tasks,
            views,
            now: 0.0,
            launches: Vec::new(),
            live: vec![0; tasks.len()],
            by_task: vec![Vec::new(); tasks.len()],
            running: std::collections::BTreeSet::new(),
            placed: vec![None; tasks.len()],
            events: BinaryHeap::new(),
            recent: std::collections::VecDeque::new(),
            wake: None,
        }
    }

    fn place(&mut self) {
        while let Some((id, host)) = self.placement.next(&self.views) {
            self.start(id as usize, host);
        }
    }

    fn start(&mut self, task: usize, host: usize) {
        let finished = self.now + self.tasks[task].work / self.hosts[host].effective_speed();
        self.views[host].running += 1;
        self.live[task] += 1;
        let launch = self.launches.len();
        self.events.push(Finish {
            at: finished,
            host,
            launch,
        });
        self.by_task[task].push(launch);
        self.running.insert(launch);
        self.launches.push(Launch {
            task,
            host,
            started: self.now,
            finished,
            live: true,
        });
    }

    /// A launch's event came due: a task ending, or a speculation wake-up.
    fn end(&mut self, launch: usize) {
        if launch == WAKE {
            self.wake = None;
            return;
        }
        let run = self.launches[launch];
        if !run.live {
            return; // killed when its copy won
        }
        self.stop(launch);
        let task = self.tasks[run.task];
        self.placement.finished(
            run.task as u32,
            run.host,
            run.finished - run.started,
            &self.views,
        );
        self.recent.push_back(run.finished - run.started);
        if self.recent.len() > RECENT_RUNS {
            self.recent.pop_front();
        }
        let lost = self.by_task[run.task]
            .iter()
            .copied()
            .find(|&l| self.launches[l].live);
        if let Some(loser) = lost {
            self.stop(loser);
        }
        let hit = self
            .placement
            .first_choice(TaskRef {
                id: run.task as u32,
                key: task.key,
            })
            .map(|first| first == run.host);
        self.placed[run.task] = Some(Placed {
            host: run.host,
            started: run.started,
            finished: run.finished,
            hit,
            lost: lost.map(|l| (self.launches[l].host, self.launches[l].started, self.now)),
        });
    }

    fn stop(&mut self, launch: usize) {
        let run = &mut self.launches[launch];
        run.live = false;
        self.running.remove(&launch);
        self.views[run.host].running -= 1;
        self.live[run.task] -= 1;
    }

    /// Copies stragglers once nothing is queued, as the dispatcher's `--speculate` does.
    fn speculate(&mut self, factor: f64) {
        if !self.placement.is_empty() || self.recent.len() < SPECULATE_SAMPLES {
            return;
        }
        let mut runs: Vec<f64> = self.recent.iter().copied().collect();
        runs.sort_by(f64::total_cmp);
        let threshold = (runs[runs.len() / 2] * factor).max(SPECULATE_MIN);
        // Oldest first: launch indices grow with start time.
        let single: Vec<usize> = self
            .running
            .iter()
            .copied()
            .filter(|&l| self.live[self.launches[l].task] == 1)
            .collect();
        for &l in &single {
            let run = self.launches[l];
            if self.now - run.started < threshold {
                break;
            }
            let Some(other) = self.free_host_except(run.host) else {
                continue;
            };
            self.start(run.task, other);
        }
        // Wake when the next single launch crosses the threshold.
        let due = single
            .iter()
            .map(|&l| self.launches[l])
            .filter(|l| l.live && self.live[l.task] == 1)
            .map(|l| l.started + threshold)
            .find(|&at| at > self.now);
        if let Some(at) = due
            && self.wake.is_none_or(|w| at < w)
        {
            self.wake = Some(at);
            self.events.push(Finish {
                at,
                host: usize::MAX,
                launch: WAKE,
            });
        }
    }

    /// Where a copy of a task running on `from` goes (the dispatcher's rule).
    fn free_host_except(&self, from: usize) -> Option<usize> {
        placement::copy_host(&self.views, from)
    }
}

/// The event that only wakes the simulation up to look for stragglers.
const WAKE: usize = usize::MAX;

/// Metrics of a simulated run, through the same [`stats::compute`] real runs use.
pub fn stats(hosts: &[SimHost], tasks: &[SimTask], placed: &[Placed]) -> Stats {
    let times: Vec<TaskTimes> = placed
        .iter()
        .map(|p| TaskTimes {
            submitted: 0.0,
            started: p.started,
            finished: p.finished,
            run: p.finished - p.started,
            host: p.host,
            end: stats::End::Succeeded,
            hit: p.hit,
        })
        .collect();
    let attempts: Vec<Attempt> = placed
        .iter()
        .flat_map(|p| {
            let lost = p.lost.map(|(host, started, finished)| Attempt {
                host,
                started,
                finished,
                failed: false,
            });
            std::iter::once(Attempt {
                host: p.host,
                started: p.started,
                finished: p.finished,
                failed: false,
            })
            .chain(lost)
        })
        .collect();
    let capacity: Vec<Capacity> = hosts
        .iter()
        .map(|h| Capacity {
            slots: h.slots,
            speed: h.effective_speed(),
        })
        .collect();
    let _ = tasks;
    stats::compute(&times, &attempts, &capacity)
}

/// A task-length distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    Const(f64),
    Uniform(f64, f64),
    /// Exponential with this mean.
    Exp(f64),
    /// Log-normal: mu and sigma of the underlying normal.
    LogNormal(f64, f64),
    /// Pareto: shape alpha and scale (minimum) x_m.
    Pareto(f64, f64),
}

impl Dist {
    pub fn sample(&self, rng: &mut SplitMix64) -> f64 {
        match *self {
            Dist::Const(d) => d,
            Dist::Uniform(lo, hi) => lo + (hi - lo) * rng.unit(),
            Dist::Exp(mean) => -mean * rng.unit().ln(),
            Dist::LogNormal(mu, sigma) => (mu + sigma * standard_normal(rng)).exp(),
            Dist::Pareto(alpha, xm) => xm / rng.unit().powf(1.0 / alpha),
        }
    }

    /// Parses `const:1`, `uniform:1,10`, `exp`, `exp:2`, `lognormal:0,1`, `pareto:2,1`.
    pub fn parse(text: &str) -> Result<Dist, String> {
        let (name, args) = text.split_once(':').unwrap_or((text, ""));
        let numbers: Vec<f64> = if args.is_empty() {
            Vec::new()
        } else {
            args.split(',')
                .map(|a| {
                    a.trim()
                        .parse::<f64>()
                        .map_err(|_| format!("'{a}' is not a number"))
                })
                .collect::<Result<_, _>>()?
        };
        let arg = |i: usize, default: f64| numbers.get(i).copied().unwrap_or(default);
        let max_args = match name {
            "const" | "exp" => 1,
            "uniform" | "lognormal" | "pareto" => 2,
            _ => {
                return Err(format!(
                    "unknown distribution '{name}' (expected const, uniform, exp, lognormal or pareto)"
                ));
            }
        };
        if numbers.len() > max_args {
            return Err(format!("{name} takes at most {max_args} parameter(s)"));
        }
        let dist = match name {
            "const" => Dist::Const(arg(0, 1.0)),
            "exp" => Dist::Exp(arg(0, 1.0)),
            "uniform" => Dist::Uniform(arg(0, 0.5), arg(1, 1.5)),
            "lognormal" => Dist::LogNormal(arg(0, 0.0), arg(1, 1.0)),
            _ => Dist::Pareto(arg(0, 2.0), arg(1, 1.0)),
        };
        dist.validate()?;
        Ok(dist)
    }

    fn validate(&self) -> Result<(), String> {
        let ok = match *self {
            Dist::Const(d) | Dist::Exp(d) => d > 0.0,
            Dist::Uniform(lo, hi) => lo >= 0.0 && hi > lo,
            Dist::LogNormal(_, sigma) => sigma >= 0.0,
            Dist::Pareto(alpha, xm) => alpha > 0.0 && xm > 0.0,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("parameters out of range in {self:?}"))
        }
    }
}

fn standard_normal(rng: &mut SplitMix64) -> f64 {
    // Box–Muller.
    let (u1, u2) = (rng.unit(), rng.unit());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// `n` tasks with lengths from `dist` and keys cycling over `keys` distinct values
/// (`None`: every task its own key).
pub fn tasks(n: usize, dist: Dist, keys: Option<usize>, seed: u64) -> Vec<SimTask> {
    let mut rng = SplitMix64::new(seed ^ 0x5EED_7A5C);
    (0..n)
        .map(|i| {
            let key = keys.map_or(i, |k| i % k.max(1));
            SimTask {
                work: dist.sample(&mut rng),
                key: placement::key_hash(key.to_string().as_bytes()),
            }
        })
        .collect()
}

/// Parses `8x8`, `4x8,4x8@0.5`, `2x16@2+3` (count × slots @ speed + background load).
pub fn parse_hosts(spec: &str) -> Result<Vec<SimHost>, String> {
    let mut hosts = Vec::new();
    for group in spec.split(',') {
        let group = group.trim();
        let (count_slots, rest) = group
            .split_once('@')
            .map_or((group, None), |(a, b)| (a, Some(b)));
        let (count, slots) = count_slots.split_once('x').ok_or_else(|| {
            format!("'{group}': expected COUNTxSLOTS[@SPEED][+LOAD], e.g. 4x8@0.5")
        })?;
        let count: usize = count
            .parse()
            .map_err(|_| format!("'{group}': bad host count '{count}'"))?;
        let (slots, load_after_slots) = slots
            .split_once('+')
            .map_or((slots, None), |(a, b)| (a, Some(b)));
        let slots: u32 = slots
            .parse()
            .map_err(|_| format!("'{group}': bad slot count '{slots}'"))?;
        let (speed, load) = match rest {
            Some(rest) => {
                let (speed, load) = rest
                    .split_once('+')
                    .map_or((rest, None), |(a, b)| (a, Some(b)));
                (
                    speed
                        .parse::<f64>()
                        .map_err(|_| format!("'{group}': bad speed '{speed}'"))?,
                    load,
                )
            }
            None => (1.0, load_after_slots),
        };
        let load = match load {
            Some(l) => l
                .parse::<f64>()
                .map_err(|_| format!("'{group}': bad load '{l}'"))?,
            None => 0.0,
        };
        if count == 0
            || slots == 0
            || speed.partial_cmp(&0.0) != Some(Ordering::Greater)
            || load < 0.0
        {
            return Err(format!(
                "'{group}': count, slots and speed must be positive, load not negative"
            ));
        }
        for _ in 0..count {
            hosts.push(SimHost {
                name: format!("s{}", hosts.len() + 1),
                slots,
                speed,
                weight: speed,
                load,
            });
        }
    }
    Ok(hosts)
}

/// A task finishing on a host at a time; the heap pops the earliest.
#[derive(Debug, Clone, Copy)]
struct Finish {
    at: f64,
    host: usize,
    /// Index into the run's launches, or [`WAKE`].
    launch: usize,
}

impl PartialEq for Finish {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Finish {}

impl PartialOrd for Finish {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Finish {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then(other.host.cmp(&self.host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identical(n: usize, slots: u32) -> Vec<SimHost> {
        parse_hosts(&format!("{n}x{slots}")).unwrap()
    }

    #[test]
    fn host_specs_parse() {
        let hosts = parse_hosts("2x8,1x4@0.5+3").unwrap();
        assert_eq!(hosts.len(), 3);
        assert_eq!(
            (hosts[0].slots, hosts[0].speed, hosts[0].load),
            (8, 1.0, 0.0)
        );
        assert_eq!(
            (hosts[2].slots, hosts[2].speed, hosts[2].load),
            (4, 0.5, 3.0)
        );
        assert_eq!(parse_hosts("2x8+1").unwrap()[1].load, 1.0);
        assert!(parse_hosts("8").is_err());
        assert!(parse_hosts("0x8").is_err());
        assert!(parse_hosts("2x8@-1").is_err());
    }

    #[test]
    fn distributions_parse_and_have_their_means() {
        assert_eq!(Dist::parse("exp").unwrap(), Dist::Exp(1.0));
        assert_eq!(Dist::parse("uniform:1,3").unwrap(), Dist::Uniform(1.0, 3.0));
        assert!(Dist::parse("weibull").is_err());
        assert!(Dist::parse("exp:0").is_err());
        assert!(Dist::parse("const:1,2").is_err());
        let mut rng = SplitMix64::new(1);
        for (dist, mean) in [
            (Dist::Exp(2.0), 2.0),
            (Dist::Uniform(1.0, 3.0), 2.0),
            (Dist::LogNormal(0.0, 0.5), (0.125f64).exp()),
            (Dist::Pareto(3.0, 1.0), 1.5),
        ] {
            let n = 200_000;
            let got = (0..n).map(|_| dist.sample(&mut rng)).sum::<f64>() / n as f64;
            assert!(
                (got - mean).abs() / mean < 0.03,
                "{dist:?}: mean {got}, expected {mean}"
            );
        }
    }

    #[test]
    fn equal_tasks_on_equal_hosts_finish_in_rounds() {
        let hosts = identical(4, 2);
        let tasks = tasks(16, Dist::Const(1.0), None, 1);
        let placed = run(Algorithm::RoundRobin, &hosts, &tasks, 0, 0.25);
        let s = stats(&hosts, &tasks, &placed);
        assert_eq!(s.makespan, 2.0);
        assert_eq!(s.ru, 1.0);
        assert_eq!(s.lb_ratio, 1.0);
        assert_eq!(s.atct, 1.5);
    }

    #[test]
    fn background_load_slows_a_host() {
        let hosts = parse_hosts("1x4+4").unwrap();
        let tasks = tasks(4, Dist::Const(1.0), None, 1);
        let placed = run(Algorithm::LeastLoad, &hosts, &tasks, 0, 0.25);
        assert!(placed.iter().all(|p| (p.finished - 2.0).abs() < 1e-9));
    }

    #[test]
    fn speculation_moves_a_straggler_from_a_slow_host_to_a_fast_one() {
        let hosts = parse_hosts("1x1@0.25,1x4").unwrap();
        let mut work = vec![SimTask { work: 20.0, key: 0 }];
        work.extend((0..8).map(|_| SimTask { work: 1.0, key: 0 }));
        let params = params(&hosts, &work, 0, 0.25);
        let rr = || placement::new(Algorithm::RoundRobin, &params);
        let alone = run_placement(rr(), &hosts, &work);
        assert_eq!((alone[0].host, alone[0].finished), (0, 80.0));
        // Queue empty at 1 s, five successes by 2 s, median 1 s: the straggler is copied to
        // the fast host when it passes 3 s and ends there at 23 s; its original is killed.
        let options = Options {
            speculate: Some(3.0),
            ..Options::default()
        };
        let copied = run_with(rr(), &hosts, &work, options);
        assert_eq!((copied[0].host, copied[0].started), (1, 3.0));
        assert_eq!(copied[0].finished, 23.0);
        assert_eq!(copied[0].lost, Some((0, 0.0, 23.0)));
        assert!(copied[1..].iter().all(|p| p.lost.is_none() && p.host == 1));
    }

    #[test]
    fn longest_first_starts_the_long_task_at_once_and_ends_sooner() {
        let hosts = parse_hosts("2x1").unwrap();
        let work: Vec<SimTask> = [1.0, 1.0, 1.0, 1.0, 4.0]
            .iter()
            .map(|&work| SimTask { work, key: 0 })
            .collect();
        let params = params(&hosts, &work, 1, 0.25);
        let makespan = |placed: &[Placed]| placed.iter().map(|p| p.finished).fold(0.0, f64::max);
        let ll = || placement::new(Algorithm::LeastLoad, &params);
        let listed = run_placement(ll(), &hosts, &work);
        let options = Options {
            order: Order::LongestFirst,
            ..Options::default()
        };
        let longest = run_with(ll(), &hosts, &work, options);
        assert_eq!(longest[4].started, 0.0);
        assert_eq!((makespan(&listed), makespan(&longest)), (6.0, 4.0));
    }

    /// Least-load believes every host has speed 1 (stale history, or no `weight`), but half
    /// the hosts run at 0.4: the run's finished tasks of known length re-check the speeds,
    /// and it does about as well as when told the speeds (within 5 % here; a mean of 198.2 against 198.0 s
    /// on `4x8,4x8@0.4 --tasks 5000 --dist lognormal --known`, seeds 1–12; round-robin,
    /// and least-load without the re-check, 214.6 s).
    #[test]
    fn with_known_lengths_least_load_finds_hosts_slower_than_their_weight_says() {
        let told = parse_hosts("4x8,4x8@0.4").unwrap();
        let mut believed = told.clone();
        for h in &mut believed {
            h.weight = 1.0;
        }
        let dist = Dist::parse("lognormal").unwrap();
        let mean_makespan = |hosts: &[SimHost], algorithm: Algorithm| {
            let seeds = 1..=4u64;
            let total: f64 = seeds
                .clone()
                .map(|seed| {
                    let tasks = tasks(2000, dist, None, seed);
                    let params = params(hosts, &tasks, seed, 0.25);
                    let options = Options {
                        known: true,
                        ..Options::default()
                    };
                    let placed =
                        run_with(placement::new(algorithm, &params), hosts, &tasks, options);
                    stats(hosts, &tasks, &placed).makespan
                })
                .sum();
            total / seeds.count() as f64
        };
        let told_ll = mean_makespan(&told, Algorithm::LeastLoad);
        let believed_ll = mean_makespan(&believed, Algorithm::LeastLoad);
        let round_robin = mean_makespan(&believed, Algorithm::RoundRobin);
        assert!(
            believed_ll <= told_ll * 1.05,
            "re-checked {believed_ll:.1} s, told the speeds {told_ll:.1} s"
        );
        assert!(
            believed_ll <= round_robin * 0.95,
            "re-checked {believed_ll:.1} s, round-robin {round_robin:.1} s"
        );
    }
}
