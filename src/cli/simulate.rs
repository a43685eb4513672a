//! `dts simulate`: run the placement algorithms against a simulated cluster and compare them.

use super::SimulateArgs;
use crate::error::{Error, exit};
use crate::placement::order::Order;
use crate::placement::{self, Algorithm};
use crate::report::compare::{self, AlgorithmRow};
use crate::simulate::{self, Dist};

pub fn run(args: SimulateArgs) -> Result<i32, Error> {
    let hosts = simulate::parse_hosts(&args.hosts)
        .map_err(|e| Error::Usage(format!("invalid --hosts: {e}")))?;
    let dist = Dist::parse(&args.dist)
        .map_err(|e| Error::Usage(format!("invalid --dist '{}': {e}", args.dist)))?;
    let algorithms = match args.algo.as_str() {
        "all" => Algorithm::ALL.to_vec(),
        name => vec![
            name.parse::<Algorithm>()
                .map_err(|e| Error::Usage(format!("invalid --algo: {e} or all")))?,
        ],
    };
    if args.tasks == 0 {
        return Err(Error::Usage(
            "invalid --tasks 0: simulate at least one task".into(),
        ));
    }
    if !(args.epsilon > 0.0 && args.epsilon.is_finite()) {
        return Err(Error::Usage(format!(
            "invalid --epsilon {}: must be positive",
            args.epsilon
        )));
    }
    if let Some(factor) = args.speculate
        && !(factor > 1.0 && factor.is_finite())
    {
        return Err(Error::Usage(format!(
            "invalid --speculate {factor}: the factor must be above 1"
        )));
    }
    if args.repeat == 0 {
        return Err(Error::Usage("invalid --repeat 0: run at least once".into()));
    }
    let seeds: Vec<u64> = (0..args.repeat)
        .map(|i| args.seed.wrapping_add(i))
        .collect();
    let workloads: Vec<_> = seeds
        .iter()
        .map(|&seed| simulate::tasks(args.tasks, dist, args.keys, seed))
        .collect();
    let order: Order = args
        .order
        .parse()
        .map_err(|e| Error::Usage(format!("invalid --order: {e}")))?;
    let options = simulate::Options {
        speculate: args.speculate,
        order,
        known: args.known || order == Order::LongestFirst,
    };
    let per_seed: Vec<Vec<AlgorithmRow>> = algorithms
        .iter()
        .map(|&algorithm| {
            seeds
                .iter()
                .zip(&workloads)
                .map(|(&seed, tasks)| {
                    let params = simulate::params(&hosts, tasks, seed, args.epsilon);
                    let placement = placement::new(algorithm, &params);
                    let placed = simulate::run_with(placement, &hosts, tasks, options);
                    AlgorithmRow::new(algorithm.name(), &simulate::stats(&hosts, tasks, &placed))
                })
                .collect()
        })
        .collect();
    let rows: Vec<AlgorithmRow> = per_seed
        .iter()
        .map(|runs| AlgorithmRow::mean(runs))
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialise")
        );
    } else {
        let slots: u32 = hosts.iter().map(|h| h.slots).sum();
        let seeds = match args.repeat {
            1 => format!("seed {}", args.seed),
            n => format!(
                "mean of {n} runs, seeds {}..{}",
                args.seed,
                args.seed + n - 1
            ),
        };
        let order = match (order, options.known) {
            (Order::AsListed, false) => String::new(),
            (Order::AsListed, true) => ", lengths known".to_string(),
            (order, _) => format!(", {order}"),
        };
        println!(
            "{} tasks ({}{order}) on {} hosts, {slots} slots; {seeds}",
            args.tasks,
            args.dist,
            hosts.len(),
        );
        println!("{}", compare::render(&rows));
        if args.repeat > 1 {
            println!("LB ratio over the seeds (min / median / max):");
            for runs in &per_seed {
                println!("  {}", lb_spread(runs));
            }
        }
    }
    Ok(exit::SUCCESS)
}

/// `least-load  1.067 / 1.137 / 1.664`: how the LB ratio spreads over seeds.
fn lb_spread(runs: &[AlgorithmRow]) -> String {
    let mut ratios: Vec<f64> = runs.iter().map(|r| r.lb_ratio).collect();
    ratios.sort_by(f64::total_cmp);
    let median = match ratios.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => ratios[n / 2],
        n => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
    };
    format!(
        "{:<16} {:.3} / {:.3} / {:.3}",
        runs.first().map_or("", |r| r.algorithm.as_str()),
        ratios.first().copied().unwrap_or(f64::NAN),
        median,
        ratios.last().copied().unwrap_or(f64::NAN),
    )
}
