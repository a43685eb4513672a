//! How well any placement that cannot see task lengths can do on a mixed-speed cluster:
//! the yardstick for issue 17's least-load goal. Tasks of unknown length are
//! interchangeable when they are placed, so such a placement only decides *when a slower
//! host may still start one*. This sweeps that decision as a threshold: the fastest hosts
//! always take the queue's head, a slower host takes it only while the queued work (at the
//! mean of the finished tasks) would keep every host busy for at least X more seconds.
//! X = 0 never declines; X = ∞ never uses the slower hosts. Every run goes through the real
//! simulator ([`dts::simulate::run_with`]) beside round-robin, least-load, and least-load
//! told every length (`--known`, which no placement of an unseen job has).
//!
//! usage: cargo run --release --example placement_bound -- [FIRST_SEED LAST_SEED [HOSTS [DIST [TASKS]]]]
//! (default: 1 12 4x8,4x8@0.4 lognormal 5000)

use std::collections::VecDeque;

use dts::placement::{self, Algorithm, HostView, Placement, TaskRef};
use dts::simulate::{self, Dist, Options, Placed, SimHost, SimTask};

/// Seconds of queued work below which the slower hosts stop starting tasks.
const THRESHOLDS: [f64; 8] = [0.0, 5.0, 10.0, 20.0, 30.0, 40.0, 80.0, f64::INFINITY];

/// The threshold family: least pressure ([`placement::pressure`], as least-load) among the
/// hosts allowed to start.
struct Threshold {
    queue: VecDeque<u32>,
    seconds: f64,
    finished_work: f64,
    finished: f64,
}

impl Threshold {
    fn new(seconds: f64) -> Self {
        Threshold {
            queue: VecDeque::new(),
            seconds,
            finished_work: 0.0,
            finished: 0.0,
        }
    }

    /// Seconds all hosts need for the queued tasks, each counted as the mean so far.
    fn queued_seconds(&self, hosts: &[HostView]) -> f64 {
        let capacity: f64 = hosts.iter().map(|h| f64::from(h.slots) * h.weight).sum();
        let mean = if self.finished > 0.0 {
            self.finished_work / self.finished
        } else {
            1.0
        };
        self.queue.len() as f64 * mean / capacity
    }
}

impl Placement for Threshold {
    fn push(&mut self, task: TaskRef) {
        self.queue.push_back(task.id);
    }

    fn next(&mut self, hosts: &[HostView]) -> Option<(u32, usize)> {
        let task = *self.queue.front()?;
        let fastest = hosts.iter().map(|h| h.weight).fold(0.0, f64::max);
        let slower_may_start = self.queued_seconds(hosts) >= self.seconds;
        let host = (0..hosts.len())
            .filter(|&h| hosts[h].free() > 0)
            .filter(|&h| hosts[h].weight >= fastest || slower_may_start)
            .min_by(|&a, &b| {
                placement::pressure(&hosts[a]).total_cmp(&placement::pressure(&hosts[b]))
            })?;
        self.queue.pop_front();
        Some((task, host))
    }

    fn observe(&mut self, work: f64) {
        self.finished_work += work;
        self.finished += 1.0;
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn drain(&mut self) -> Vec<u32> {
        self.queue.drain(..).collect()
    }
}

fn makespan(placed: &[Placed]) -> f64 {
    placed.iter().map(|p| p.finished).fold(0.0, f64::max)
}

fn algorithm(
    algorithm: Algorithm,
    hosts: &[SimHost],
    tasks: &[SimTask],
    seed: u64,
    known: bool,
) -> f64 {
    let params = simulate::params(hosts, tasks, seed, 0.25);
    let options = Options {
        known,
        ..Options::default()
    };
    makespan(&simulate::run_with(
        placement::new(algorithm, &params),
        hosts,
        tasks,
        options,
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let first: u64 = arg(0, "1").parse().expect("FIRST_SEED");
    let last: u64 = arg(1, "12").parse().expect("LAST_SEED");
    let hosts = simulate::parse_hosts(&arg(2, "4x8,4x8@0.4")).expect("HOSTS");
    let dist = Dist::parse(&arg(3, "lognormal")).expect("DIST");
    let count: usize = arg(4, "5000").parse().expect("TASKS");

    let mut names = vec![
        "round-robin".to_string(),
        "least-load".to_string(),
        "least-load --known".to_string(),
    ];
    names.extend(
        THRESHOLDS
            .iter()
            .map(|x| format!("slower hosts stop at X = {x} s")),
    );
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for seed in first..=last {
        let tasks = simulate::tasks(count, dist, None, seed);
        runs[0].push(algorithm(
            Algorithm::RoundRobin,
            &hosts,
            &tasks,
            seed,
            false,
        ));
        runs[1].push(algorithm(Algorithm::LeastLoad, &hosts, &tasks, seed, false));
        runs[2].push(algorithm(Algorithm::LeastLoad, &hosts, &tasks, seed, true));
        for (k, &x) in THRESHOLDS.iter().enumerate() {
            let placed = simulate::run_with(
                Box::new(Threshold::new(x)),
                &hosts,
                &tasks,
                Options::default(),
            );
            runs[3 + k].push(makespan(&placed));
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let round_robin = mean(&runs[0]);
    println!(
        "mean makespan over seeds {first}-{last} ({count} tasks, {}, hosts {})",
        arg(3, "lognormal"),
        arg(2, "4x8,4x8@0.4")
    );
    println!(
        "  (mean; makespan min / median / max; per-seed ratio to round-robin p10 / median / p90; seeds below it)"
    );
    for (name, makespans) in names.iter().zip(&runs) {
        let mut sorted = makespans.clone();
        sorted.sort_by(f64::total_cmp);
        let mut ratios: Vec<f64> = makespans
            .iter()
            .zip(&runs[0])
            .map(|(m, rr)| m / rr)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let at = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        println!(
            "  {name:<34} {:6.1} s {:+5.1} %; {:.1} / {:.1} / {:.1} s; {:.3} / {:.3} / {:.3}; {} of {}",
            mean(makespans),
            (mean(makespans) / round_robin - 1.0) * 100.0,
            sorted[0],
            at(&sorted, 0.5),
            sorted[sorted.len() - 1],
            at(&ratios, 0.1),
            at(&ratios, 0.5),
            at(&ratios, 0.9),
            ratios.iter().filter(|&&r| r < 1.0).count(),
            ratios.len(),
        );
    }
    print_blocks(&names, &runs);
}

/// Seeds per block: the goal is a mean over a dozen seeds.
const BLOCK: usize = 12;

/// How the goal's measure (ratio of mean makespans over 12 seeds) spreads over disjoint
/// blocks of 12 seeds, for each policy against round-robin on the same seeds.
fn print_blocks(names: &[String], runs: &[Vec<f64>]) {
    let blocks = runs[0].len() / BLOCK;
    if blocks < 2 {
        return;
    }
    println!(
        "  over {blocks} disjoint blocks of {BLOCK} seeds, the ratio of mean makespans to round-robin's: p10 / median / p90; blocks at or below 0.95"
    );
    let block_mean = |v: &[f64], b: usize| v[b * BLOCK..(b + 1) * BLOCK].iter().sum::<f64>();
    for (name, makespans) in names.iter().zip(runs).skip(1) {
        let mut ratios: Vec<f64> = (0..blocks)
            .map(|b| block_mean(makespans, b) / block_mean(&runs[0], b))
            .collect();
        ratios.sort_by(f64::total_cmp);
        let at = |q: f64| ratios[((blocks - 1) as f64 * q).round() as usize];
        println!(
            "  {name:<34} {:.3} / {:.3} / {:.3}; {} of {blocks}",
            at(0.1),
            at(0.5),
            at(0.9),
            ratios.iter().filter(|&&r| r <= 0.95).count(),
        );
    }
}
