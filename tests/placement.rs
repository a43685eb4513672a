//! Property tests of the placement algorithms through their public API and the simulator.

use std::collections::HashMap;

use dts::placement::{self, Algorithm, HostView, Liveness, Params, TaskRef, key_hash};
use dts::simulate::{self, Dist, SimHost, SimTask};
use proptest::prelude::*;

fn hosts_strategy() -> impl Strategy<Value = Vec<SimHost>> {
    prop::collection::vec((1u32..8, 0.25f64..4.0), 1..12).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (slots, speed))| SimHost {
                name: format!("node{i:02}"),
                slots,
                speed,
                weight: speed,
                load: 0.0,
            })
            .collect()
    })
}

fn algorithm_strategy() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(Algorithm::ALL.to_vec())
}

/// Places every task with all hosts free and every slot unlimited: each task lands where
/// the algorithm puts it first. Returns host name per key.
fn homes(
    names: &[String],
    weights: &[f64],
    keys: &[String],
    epsilon: f64,
) -> HashMap<String, String> {
    let params = Params {
        seed: 0,
        epsilon,
        hosts: names.iter().cloned().zip(weights.iter().copied()).collect(),
        total_tasks: keys.len(),
    };
    let mut p = placement::new(Algorithm::ConsistentHash, &params);
    for (id, key) in keys.iter().enumerate() {
        p.push(TaskRef {
            id: id as u32,
            key: key_hash(key.as_bytes()),
        });
    }
    let mut views: Vec<HostView> = names
        .iter()
        .map(|_| HostView {
            liveness: Liveness::Up,
            slots: u32::MAX,
            running: 0,
            weight: 1.0,
            load: 0.0,
            gated: false,
        })
        .collect();
    let mut out = HashMap::new();
    while let Some((task, host)) = p.next(&views) {
        views[host].running += 1;
        out.insert(keys[task as usize].clone(), names[host].clone());
    }
    out
}

/// The most tasks any host ran at once, per host, from the simulated intervals.
fn max_concurrency(placed: &[simulate::Placed], hosts: usize) -> Vec<u32> {
    let mut edges: Vec<(f64, i32, usize)> = Vec::new();
    for p in placed {
        edges.push((p.started, 1, p.host));
        edges.push((p.finished, -1, p.host));
    }
    // Ends before starts at the same instant: a freed slot is reused at once.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut max) = (vec![0i32; hosts], vec![0u32; hosts]);
    for (_, delta, host) in edges {
        now[host] += delta;
        max[host] = max[host].max(now[host] as u32);
    }
    max
}

/// Hosts with some slots taken, for one least-load decision.
fn busy_hosts_strategy() -> impl Strategy<Value = Vec<HostView>> {
    prop::collection::vec((1u32..8, 0u32..8, 0.25f64..4.0, 0.0f64..4.0), 1..10).prop_map(|specs| {
        specs
            .into_iter()
            .map(|(slots, running, weight, load)| HostView {
                liveness: Liveness::Up,
                slots,
                running: running.min(slots),
                weight,
                load,
                gated: false,
            })
            .collect()
    })
}

fn least_load() -> Box<dyn placement::Placement + Send> {
    let params = Params {
        seed: 0,
        epsilon: 0.25,
        hosts: Vec::new(),
        total_tasks: 0,
    };
    placement::new(Algorithm::LeastLoad, &params)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn least_load_declines_a_slow_host_only_when_a_faster_one_frees_in_time(
        mut hosts in busy_hosts_strategy(),
        works in prop::collection::vec(0.01f64..100.0, 0..200),
        queued in 1u32..300,
    ) {
        let mut p = least_load();
        let mut durations = placement::durations::Durations::default();
        for &w in &works {
            p.observe(w);
            durations.observe(w);
        }
        for id in 0..queued {
            p.push(TaskRef { id, key: 0 });
        }
        let mut started = std::collections::HashSet::new();
        loop {
            let left = p.len();
            match p.next(&hosts) {
                Some((task, host)) => {
                    prop_assert!(hosts[host].free() > 0, "host {} has no free slot", host);
                    prop_assert!(started.insert(task), "task {} placed twice", task);
                    hosts[host].running += 1;
                }
                None if left == 0 => break,
                None => {
                    let mean = durations.mean().unwrap_or(1.0);
                    let all: f64 = hosts.iter()
                        .map(|v| f64::from(v.slots) * placement::effective_speed(v))
                        .sum();
                    let left = left as f64 * mean / all;
                    for (h, host) in hosts.iter().enumerate().filter(|(_, v)| v.free() > 0) {
                        let e = placement::effective_speed(host);
                        let capacity: f64 = hosts.iter().enumerate()
                            .filter(|&(g, v)| g != h && placement::effective_speed(v) > e)
                            .map(|(_, v)| f64::from(v.slots) * placement::effective_speed(v))
                            .sum();
                        prop_assert!(capacity > 0.0, "declined host {} though none is faster", h);
                        match durations.excess_over(e * left) {
                            Some(excess) => prop_assert!(
                                excess / e > placement::RISK * mean / capacity * (1.0 - 1e-9),
                                "host {} declined though its expected overrun is within the risk",
                                h
                            ),
                            // Nothing finished yet: every task counts as `mean`, and a host
                            // declines only a task that would end later than on the fastest
                            // host once the queue drained.
                            None => {
                                let fastest = hosts.iter().enumerate()
                                    .filter(|&(g, _)| g != h)
                                    .map(|(_, v)| placement::effective_speed(v))
                                    .fold(0.0, f64::max);
                                prop_assert!(
                                    1.0 / e > (left + 1.0 / fastest) * (1.0 - 1e-9),
                                    "host {} declined though it would end no later than the fastest",
                                    h
                                );
                            }
                        }
                    }
                    break;
                }
            }
        }
        prop_assert_eq!(started.len() + p.len(), queued as usize, "a task was dropped");
    }

    #[test]
    fn every_task_runs_once_and_no_host_exceeds_its_slots(
        hosts in hosts_strategy(),
        n in 0usize..400,
        algorithm in algorithm_strategy(),
        seed in any::<u64>(),
    ) {
        let tasks = simulate::tasks(n, Dist::Exp(1.0), Some(37), seed);
        let placed = simulate::run(algorithm, &hosts, &tasks, seed, 0.25);
        prop_assert_eq!(placed.len(), n);
        for (host, max) in max_concurrency(&placed, hosts.len()).into_iter().enumerate() {
            prop_assert!(max <= hosts[host].slots, "host {} ran {} at once with {} slots", host, max, hosts[host].slots);
        }
    }

    #[test]
    fn speculation_never_runs_a_task_twice_to_its_end_nor_overfills_a_host(
        hosts in hosts_strategy(),
        n in 0usize..300,
        algorithm in algorithm_strategy(),
        factor in 1.1f64..5.0,
        seed in any::<u64>(),
    ) {
        let tasks = simulate::tasks(n, Dist::LogNormal(0.0, 1.5), Some(37), seed);
        let params = Params {
            seed,
            epsilon: 0.25,
            hosts: hosts.iter().map(|h| (h.name.clone(), h.weight)).collect(),
            total_tasks: n,
        };
        let options = simulate::Options { speculate: Some(factor), ..Default::default() };
        let placed = simulate::run_with(placement::new(algorithm, &params), &hosts, &tasks, options);
        prop_assert_eq!(placed.len(), n);
        // Losing copies hold their slot until killed: count them as running.
        let mut intervals = placed.clone();
        for p in &placed {
            if let Some((host, started, killed)) = p.lost {
                prop_assert!(host != p.host, "a copy ran on its original's host");
                prop_assert_eq!(killed, p.finished, "a losing copy outlived the winner");
                intervals.push(simulate::Placed { host, started, finished: killed, hit: None, lost: None });
            }
        }
        for (host, max) in max_concurrency(&intervals, hosts.len()).into_iter().enumerate() {
            prop_assert!(max <= hosts[host].slots, "host {} ran {} at once with {} slots", host, max, hosts[host].slots);
        }
    }

    #[test]
    fn with_known_lengths_least_load_starts_every_task_once_and_none_starves(
        hosts in hosts_strategy(),
        n in 0usize..400,
        sigma in 0.0f64..2.5,
        speculate in prop::option::of(1.5f64..4.0),
        seed in any::<u64>(),
    ) {
        let tasks = simulate::tasks(n, Dist::LogNormal(0.0, sigma), None, seed);
        let params = Params {
            seed,
            epsilon: 0.25,
            hosts: hosts.iter().map(|h| (h.name.clone(), h.weight)).collect(),
            total_tasks: n,
        };
        let options = simulate::Options { speculate, known: true, ..Default::default() };
        // run_with panics if a task is never placed: the queue must drain.
        let placed = simulate::run_with(placement::new(Algorithm::LeastLoad, &params), &hosts, &tasks, options);
        prop_assert_eq!(placed.len(), n);
        let mut intervals = placed.clone();
        for p in &placed {
            if let Some((host, started, killed)) = p.lost {
                intervals.push(simulate::Placed { host, started, finished: killed, hit: None, lost: None });
            }
        }
        for (host, max) in max_concurrency(&intervals, hosts.len()).into_iter().enumerate() {
            prop_assert!(max <= hosts[host].slots, "host {} ran {} at once with {} slots", host, max, hosts[host].slots);
        }
        // Without copies, each task started exactly once.
        if speculate.is_none() {
            prop_assert!(placed.iter().all(|p| p.lost.is_none()));
        }
    }

    #[test]
    fn a_seed_reproduces_the_run(hosts in hosts_strategy(), n in 1usize..300, seed in any::<u64>()) {
        let tasks = simulate::tasks(n, Dist::Exp(1.0), None, seed);
        for algorithm in Algorithm::ALL {
            let a = simulate::run(algorithm, &hosts, &tasks, seed, 0.25);
            let b = simulate::run(algorithm, &hosts, &tasks, seed, 0.25);
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn round_robin_spreads_within_one_on_equal_hosts(count in 1usize..12, slots in 1u32..8, n in 0usize..500) {
        let hosts = simulate::parse_hosts(&format!("{count}x{slots}")).unwrap();
        let tasks = simulate::tasks(n, Dist::Const(1.0), None, 0);
        let placed = simulate::run(Algorithm::RoundRobin, &hosts, &tasks, 0, 0.25);
        let mut per_host = vec![0usize; count];
        for p in &placed {
            per_host[p.host] += 1;
        }
        let (min, max) = (per_host.iter().min().unwrap(), per_host.iter().max().unwrap());
        prop_assert!(max - min <= 1, "{:?}", per_host);
    }

    #[test]
    fn consistent_hash_never_exceeds_its_bound(
        hosts in hosts_strategy(),
        n in 1usize..1500,
        keys in 1usize..200,
        epsilon in 0.05f64..1.0,
        seed in any::<u64>(),
    ) {
        let tasks: Vec<SimTask> = simulate::tasks(n, Dist::Exp(1.0), Some(keys), seed);
        let placed = simulate::run(Algorithm::ConsistentHash, &hosts, &tasks, seed, epsilon);
        let total_weight: f64 = hosts.iter().map(|h| h.weight).sum();
        let mut per_host = vec![0u64; hosts.len()];
        for p in &placed {
            per_host[p.host] += 1;
        }
        for (h, count) in per_host.iter().enumerate() {
            let bound = ((1.0 + epsilon) * n as f64 * hosts[h].weight / total_weight).ceil().max(1.0) as u64;
            prop_assert!(*count <= bound, "host {} ran {} tasks, bound {}", h, count, bound);
        }
    }

    #[test]
    fn consistent_hash_is_stable_and_ignores_host_order(
        count in 2usize..12,
        keys in prop::collection::vec("[a-z0-9/]{1,12}", 1..200),
        rotate in 0usize..12,
    ) {
        let names: Vec<String> = (0..count).map(|i| format!("host{i}")).collect();
        let weights = vec![1.0; count];
        let first = homes(&names, &weights, &keys, 1e9);
        prop_assert_eq!(&first, &homes(&names, &weights, &keys, 1e9));
        let mut rotated = names.clone();
        rotated.rotate_left(rotate % count);
        prop_assert_eq!(&first, &homes(&rotated, &weights, &keys, 1e9));
    }

    #[test]
    fn removing_a_host_moves_only_its_keys(
        count in 2usize..12,
        keys in prop::collection::hash_set("[a-z0-9]{1,10}", 1..300),
        removed in 0usize..12,
    ) {
        let keys: Vec<String> = keys.into_iter().collect();
        let names: Vec<String> = (0..count).map(|i| format!("host{i}")).collect();
        let before = homes(&names, &vec![1.0; count], &keys, 1e9);
        let gone = names[removed % count].clone();
        let remaining: Vec<String> = names.iter().filter(|n| **n != gone).cloned().collect();
        let after = homes(&remaining, &vec![1.0; count - 1], &keys, 1e9);
        for key in &keys {
            if before[key] != gone {
                prop_assert_eq!(&before[key], &after[key], "key {} moved off a host that stayed", key);
            }
        }
    }

    #[test]
    fn adding_a_host_moves_keys_only_to_it(
        count in 1usize..12,
        keys in prop::collection::hash_set("[a-z0-9]{1,10}", 1..300),
    ) {
        let keys: Vec<String> = keys.into_iter().collect();
        let names: Vec<String> = (0..count).map(|i| format!("host{i}")).collect();
        let before = homes(&names, &vec![1.0; count], &keys, 1e9);
        let mut grown = names.clone();
        grown.push("newcomer".into());
        let after = homes(&grown, &vec![1.0; count + 1], &keys, 1e9);
        for key in &keys {
            if before[key] != after[key] {
                prop_assert_eq!(after[key].as_str(), "newcomer");
            }
        }
    }
}

#[test]
fn adding_or_removing_one_host_moves_about_one_in_n_keys_with_the_bound() {
    let keys: Vec<String> = (0..20_000).map(|i| format!("key-{i}")).collect();
    let names: Vec<String> = (0..10).map(|i| format!("host{i}")).collect();
    let before = homes(&names, &[1.0; 10], &keys, 0.25);
    let after = homes(&names[..9], &[1.0; 9], &keys, 0.25);
    let moved = keys.iter().filter(|k| before[*k] != after[*k]).count() as f64 / keys.len() as f64;
    // Exactly the removed host's share (1/10) would move without the bound; the bound
    // pushes a few more.
    assert!((0.09..0.15).contains(&moved), "moved {moved}");
}

#[test]
fn weights_are_respected_in_expectation() {
    let keys: Vec<String> = (0..40_000).map(|i| format!("k{i}")).collect();
    let names: Vec<String> = (0..4).map(|i| format!("w{i}")).collect();
    let weights = [1.0, 2.0, 3.0, 4.0];
    let homes = homes(&names, &weights, &keys, 1e9);
    for (name, w) in names.iter().zip(weights) {
        let share = homes.values().filter(|h| *h == name).count() as f64 / keys.len() as f64;
        let expected = w / 10.0;
        assert!(
            (share - expected).abs() < 0.01,
            "{name}: share {share}, expected {expected}"
        );
    }
}

#[test]
fn quality_targets_hold_on_eight_identical_hosts() {
    let hosts = simulate::parse_hosts("8x8").unwrap();
    let tasks = simulate::tasks(10_000, Dist::Exp(1.0), None, 1);
    let stats = |algorithm| {
        let placed = simulate::run(algorithm, &hosts, &tasks, 1, 0.25);
        simulate::stats(&hosts, &tasks, &placed)
    };
    let ll = stats(Algorithm::LeastLoad);
    assert!(ll.lb_ratio <= 1.04 && ll.lbd <= 0.01, "least-load {ll:?}");
    let ch = stats(Algorithm::ConsistentHash);
    assert!(
        ch.lb_ratio <= 1.14,
        "consistent-hash LB ratio {}",
        ch.lb_ratio
    );
    assert!(
        ch.hit_rate.unwrap() >= 0.85,
        "consistent-hash hit rate {:?}",
        ch.hit_rate
    );
}

#[test]
fn least_load_beats_round_robin_and_random_on_mixed_speeds() {
    let hosts = simulate::parse_hosts("4x8,4x8@0.5").unwrap();
    let mean = |algorithm, n| {
        let (mut atct, mut makespan) = (0.0, 0.0);
        for seed in 1..=20 {
            let tasks = simulate::tasks(n, Dist::Exp(1.0), None, seed);
            let s = simulate::stats(
                &hosts,
                &tasks,
                &simulate::run(algorithm, &hosts, &tasks, seed, 0.25),
            );
            atct += s.atct;
            makespan += s.makespan;
        }
        (atct / 20.0, makespan / 20.0)
    };
    let ll = mean(Algorithm::LeastLoad, 64);
    for other in [Algorithm::RoundRobin, Algorithm::Random] {
        let o = mean(other, 64);
        assert!(
            ll.0 < o.0 && ll.1 < o.1,
            "least-load {ll:?} vs {other} {o:?}"
        );
    }
}

#[test]
fn simulate_prints_the_lb_ratio_spread_over_seeds() {
    let out = assert_cmd::Command::cargo_bin("dts")
        .unwrap()
        .args(["simulate", "--hosts", "2x2,2x2@0.5", "--tasks", "40"])
        .args(["--repeat", "3", "--speculate"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let spread = out
        .split("LB ratio over the seeds (min / median / max):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no spread in {out}"));
    for algorithm in Algorithm::ALL {
        let line = spread
            .lines()
            .find(|l| l.trim_start().starts_with(algorithm.name()))
            .unwrap_or_else(|| panic!("no {algorithm} in {spread}"));
        let ratios: Vec<f64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(ratios.len(), 3, "{line}");
        assert!(
            ratios[0] >= 1.0 && ratios[0] <= ratios[1] && ratios[1] <= ratios[2],
            "{line}"
        );
    }
}

#[test]
fn simulate_rejects_a_speculate_factor_of_one_or_less() {
    assert_cmd::Command::cargo_bin("dts")
        .unwrap()
        .args(["simulate", "--speculate", "1"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "invalid --speculate 1: the factor must be above 1",
        ));
}

mod resources {
    use dts::placement::resources::{Capacity, Grant, Ledger, Request};
    use proptest::prelude::*;

    /// A request, or (as `None`) "the oldest running task ends".
    fn step() -> impl Strategy<Value = Option<Request>> {
        prop_oneof![
            1 => Just(None),
            2 => (1u32..6, 0u64..6, 0u32..4).prop_map(|(cpus, mem, gpus)| Some(Request { cpus, mem, gpus })),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn a_ledger_never_gives_out_more_than_the_host_has_nor_a_gpu_twice(
            slots in 1u32..16,
            mem in prop::option::of(0u64..16),
            gpus in 0u32..6,
            steps in prop::collection::vec(step(), 0..80),
        ) {
            let capacity = Capacity { slots, mem, gpus };
            let mut ledger = Ledger::new(capacity);
            let mut running: Vec<Grant> = Vec::new();
            for step in steps {
                match step {
                    None if !running.is_empty() => ledger.release(&running.remove(0)),
                    None => {}
                    Some(request) => {
                        let fitted = ledger.fits(&request);
                        let grant = ledger.take(&request);
                        prop_assert_eq!(fitted, grant.is_some(), "take disagrees with fits");
                        if let Some(grant) = grant {
                            prop_assert_eq!(grant.gpus.len() as u32, request.gpus);
                            running.push(grant);
                        }
                    }
                }
                let cpus: u32 = running.iter().map(|g| g.cpus).sum();
                let used_mem: u64 = running.iter().map(|g| g.mem).sum();
                prop_assert!(cpus <= slots, "{} slots given out of {}", cpus, slots);
                prop_assert_eq!(ledger.free_cpus(), slots - cpus);
                if let Some(mem) = mem {
                    prop_assert!(used_mem <= mem, "{} memory given out of {}", used_mem, mem);
                } else {
                    prop_assert_eq!(used_mem, 0, "memory given on a host of unknown memory");
                }
                let mut held: Vec<u32> = running.iter().flat_map(|g| g.gpus.iter().copied()).collect();
                let count = held.len();
                held.sort_unstable();
                held.dedup();
                prop_assert_eq!(held.len(), count, "a GPU index held by two running tasks");
                prop_assert!(held.iter().all(|&i| i < gpus), "GPU index out of range");
                prop_assert_eq!(ledger.free_gpus(), gpus - count as u32);
            }
        }
    }
}
