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

criterion_group!(benches, bench);
criterion_main!(benches);
