//! `dts simulate`: run the placement algorithms against a simulated cluster and compare them.

use super::SimulateArgs;
use crate::error::{Error, exit};
use crate::placement::Algorithm;
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
    let rows: Vec<AlgorithmRow> = algorithms
        .iter()
        .map(|&algorithm| {
            let runs: Vec<AlgorithmRow> = seeds
                .iter()
                .zip(&workloads)
                .map(|(&seed, tasks)| {
                    let placed = simulate::run(algorithm, &hosts, tasks, seed, args.epsilon);
                    AlgorithmRow::new(algorithm.name(), &simulate::stats(&hosts, tasks, &placed))
                })
                .collect();
            AlgorithmRow::mean(&runs)
        })
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
        println!(
            "{} tasks ({}) on {} hosts, {slots} slots; {seeds}",
            args.tasks,
            args.dist,
            hosts.len(),
        );
        println!("{}", compare::render(&rows));
    }
    Ok(exit::SUCCESS)
}
