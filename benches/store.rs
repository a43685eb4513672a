//! Cost of recording one task's life in the run store: dispatched, started, attempt ended,
//! task finished, with a commit every 32 tasks (the dispatcher commits once per turn, and a
//! busy turn handles many events).

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dts::inventory;
use dts::job::{Task, TemplateSpec};
use dts::store::{RunSpec, RunWriter, StateDir, StateEnv, TaskEnd};
use dts::transport::ExitStatus;

const TASKS: u32 = 20_000;

fn spec() -> RunSpec {
    RunSpec {
        name: "bench".into(),
        command: TemplateSpec::Shell("true".into()),
        algorithm: "round-robin".into(),
        key: None,
        retries: 0,
        timeout: None,
        workdir: None,
        env: vec![],
        throttle: None,
        slots: Some(8),
        seed: 1,
        epsilon: 0.25,
        kill_grace: std::time::Duration::from_secs(5),
        probe_interval: None,
        hosts: inventory::local_default(&inventory::Env::default()).hosts,
        joblog: None,
        junit: None,
        html: None,
        faults: Default::default(),
        secret_env: vec![],
        matrix: Default::default(),
        gates: Default::default(),
        resources: Default::default(),
        order: Default::default(),
        slurm: None,
        staging: Default::default(),
        stages: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::locate(&StateEnv {
        dts_state_dir: Some(dir.path().to_path_buf()),
        ..StateEnv::default()
    })
    .unwrap();
    let tasks: Vec<Task> = (1..=TASKS)
        .map(|seq| Task {
            seq,
            index: u64::from(seq),
            item: seq.to_string().into_bytes().into(),
        })
        .collect();
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(u64::from(TASKS)));
    group.sample_size(10);
    let mut run = 0;
    group.bench_function("task-lifecycle", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                run += 1;
                let mut w =
                    RunWriter::create(&state, &format!("run{run}"), &spec(), &tasks, 0.0).unwrap();
                let ok = ExitStatus::Code(0);
                let start = Instant::now();
                for t in &tasks {
                    w.dispatched(t.seq, 1, "localhost", 1.0).unwrap();
                    w.started(t.seq, 1, 1.1).unwrap();
                    w.attempt_ended(t.seq, 1, "succeeded", Some(&ok), 1.2)
                        .unwrap();
                    let end = TaskEnd {
                        state: "succeeded",
                        status: Some(&ok),
                        reason: None,
                        started: Some(1.1),
                        finished: Some(1.2),
                        run_s: Some(0.1),
                        hit: None,
                    };
                    w.task_finished(t.seq, &end).unwrap();
                    if t.seq % 32 == 0 {
                        w.commit().unwrap();
                    }
                }
                w.commit().unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
