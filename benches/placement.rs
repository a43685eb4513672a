//! Placement speed on 64 hosts × 8 slots, for each algorithm. Goal: ≥ 1 million decisions/s.
//!
//! `decide`: tasks already queued; each decision picks a task and a host, and the slot is
//! freed again at once, so the cluster stays saturated as in a long run.
//! `queue+decide`: also queues each task first, which for consistent-hash includes its
//! rendezvous hashing over all hosts.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use dts::placement::{self, Algorithm, HostView, Liveness, Params, Placement, TaskRef, key_hash};

const HOSTS: usize = 64;
const SLOTS: u32 = 8;
const BATCH: u32 = 4096;

fn setup(algorithm: Algorithm, queued: u32) -> (Box<dyn Placement + Send>, Vec<HostView>) {
    let params = Params {
        seed: 7,
        epsilon: 0.25,
        hosts: (0..HOSTS).map(|i| (format!("node{i:02}"), 1.0)).collect(),
        total_tasks: 1 << 40,
    };
    let mut p = placement::new(algorithm, &params);
    for id in 0..queued {
        p.push(task(id));
    }
    let views = vec![
        HostView {
            liveness: Liveness::Up,
            slots: SLOTS,
            running: SLOTS - 1,
            weight: 1.0,
            load: 0.5,
            gated: false,
        };
        HOSTS
    ];
    (p, views)
}

fn task(id: u32) -> TaskRef {
    TaskRef {
        id,
        key: key_hash(&id.to_le_bytes()),
    }
}

/// One decision; the started task ends at once, freeing its slot.
fn decide(p: &mut dyn Placement, views: &mut [HostView]) {
    if let Some((_, host)) = p.next(views) {
        views[host].running += 1;
        views[host].running -= 1;
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide-64-hosts");
    group.throughput(Throughput::Elements(u64::from(BATCH)));
    for algorithm in Algorithm::ALL {
        group.bench_function(algorithm.name(), |b| {
            b.iter_batched(
                || setup(algorithm, BATCH),
                |(mut p, mut views)| {
                    for _ in 0..BATCH {
                        decide(p.as_mut(), &mut views);
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
    let mut group = c.benchmark_group("queue+decide-64-hosts");
    group.throughput(Throughput::Elements(1));
    for algorithm in Algorithm::ALL {
        let (mut p, mut views) = setup(algorithm, 0);
        let mut id = 0u32;
        group.bench_function(algorithm.name(), |b| {
            b.iter(|| {
                id = id.wrapping_add(1);
                p.push(task(id));
                decide(p.as_mut(), &mut views);
            })
        });
    }
    group.finish();
}

/// Least-load where its rules cost most: half the hosts at speed 0.4, so every decision
/// looks for faster hosts; lengths known (the queue may look 16 tasks ahead); and host
/// speeds re-checked by finished tasks (views corrected on every decision).
fn least_load(c: &mut Criterion) {
    let mut group = c.benchmark_group("least-load-64-hosts-mixed");
    group.throughput(Throughput::Elements(u64::from(BATCH)));
    let mixed = |known: bool, rechecked: bool| {
        let (mut p, mut views) = setup(Algorithm::LeastLoad, 0);
        for v in views.iter_mut().skip(HOSTS / 2) {
            v.weight = 0.4;
        }
        // Lengths from 0.1 to ~50 s, long ones spread through the queue.
        let work: Vec<Option<f64>> = (0..BATCH * 2)
            .map(|i| Some(0.1 + f64::from(i.wrapping_mul(2_654_435_761) % 1000).powi(2) / 20_000.0))
            .collect();
        if known {
            p.know_work(&work);
        }
        for id in 0..BATCH {
            p.observe(work[id as usize].unwrap_or(1.0));
            if rechecked {
                p.finished(id, id as usize % HOSTS, 1.0, &views);
            }
        }
        for id in BATCH..BATCH * 2 {
            p.push(task(id));
        }
        (p, views)
    };
    for (name, known, rechecked) in [
        ("unknown lengths", false, false),
        ("known lengths", true, false),
        ("known lengths, speeds re-checked", true, true),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || mixed(known, rechecked),
                |(mut p, mut views)| {
                    for _ in 0..BATCH {
                        decide(p.as_mut(), &mut views);
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench, least_load);
criterion_main!(benches);
