//! `--cpus`, `--mem` and `--gpus` on real sshd, each claim checked from the times the tasks
//! record: GPU indices are never shared while running, `--cpus` bounds the tasks running at
//! once on a host, and a request no host can ever give is exit 2 before anything runs.

mod common;

use common::*;

/// The lab's hosts with `slots` each and `extra` lines added to every `[[host]]`.
fn inventory_with(lab: &Lab, slots: u32, extra: &str) {
    let mut text = lab.defaults(slots);
    for h in &lab.hosts {
        text.push_str(&host_entry(&h.name, &h.address.to_string(), h.port));
        text.push_str(extra);
    }
    std::fs::write(lab.inventory(), text).unwrap();
}

/// A task line: `START END CUDA_VISIBLE_DEVICES DTS_GPUS`, times in nanoseconds.
const RECORD: &str = "s=$(date +%s%N); sleep 0.4; echo \"$s $(date +%s%N) ${CUDA_VISIBLE_DEVICES:-none} ${DTS_GPUS:-none}\"";

struct Span {
    host: String,
    start: u128,
    end: u128,
    cuda: String,
    dts_gpus: String,
}

fn spans(stdout: &[u8]) -> Vec<Span> {
    tagged_lines(stdout)
        .into_iter()
        .map(|(host, _, line)| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Span {
                host,
                start: f[0].parse().unwrap(),
                end: f[1].parse().unwrap(),
                cuda: f[2].to_string(),
                dts_gpus: f[3].to_string(),
            }
        })
        .collect()
}

fn overlap(a: &Span, b: &Span) -> bool {
    a.start < b.end && b.start < a.end
}

/// Most spans of `host` running at one instant.
fn most_at_once(spans: &[Span], host: &str) -> usize {
    let mine: Vec<&Span> = spans.iter().filter(|s| s.host == host).collect();
    mine.iter()
        .map(|s| {
            mine.iter()
                .filter(|o| o.start <= s.start && s.start < o.end)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn gpu_tasks_on_two_gpu_hosts_never_share_an_index_while_running() {
    let lab = Lab::start(2);
    inventory_with(&lab, 8, "gpus = 2\n");
    let out = lab
        .submit()
        .args(["--gpus", "1", "--array", "1-12", "--", RECORD])
        .output()
        .unwrap();
    assert_succeeded(&out);
    let spans = spans(&out.stdout);
    assert_eq!(spans.len(), 12);
    for s in &spans {
        assert!(
            s.cuda == "0" || s.cuda == "1",
            "one index of two: {}",
            s.cuda
        );
        assert_eq!(s.cuda, s.dts_gpus);
    }
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            assert!(
                !(a.host == b.host && a.cuda == b.cuda && overlap(a, b)),
                "GPU {} of {} held by two tasks at once",
                a.cuda,
                a.host
            );
        }
    }
    for host in ["h1", "h2"] {
        assert_eq!(
            most_at_once(&spans, host),
            2,
            "both GPUs of {host} in use at once"
        );
    }
}

#[test]
fn cpus_four_on_eight_slot_hosts_runs_at_most_two_at_once_per_host() {
    let lab = Lab::start(2);
    inventory_with(&lab, 8, "");
    let out = lab
        .submit()
        .args(["--cpus", "4", "--array", "1-10", "--", RECORD])
        .output()
        .unwrap();
    assert_succeeded(&out);
    let spans = spans(&out.stdout);
    assert_eq!(spans.len(), 10);
    assert!(
        spans.iter().all(|s| s.cuda == "none"),
        "no GPU asked, none given"
    );
    for host in ["h1", "h2"] {
        assert_eq!(most_at_once(&spans, host), 2, "{host}: 8 slots / 4 cpus");
    }
}

#[test]
fn gpus_more_than_any_host_has_is_exit_2_naming_the_largest_host() {
    let lab = Lab::start(2);
    inventory_with(&lab, 8, "");
    let mut text = std::fs::read_to_string(lab.inventory()).unwrap();
    text.push_str("gpus = 2\n");
    std::fs::write(lab.inventory(), text).unwrap();
    let ran = lab.path("ran");
    let out = lab
        .submit()
        .args(["--gpus", "3", "--array", "1-2", "--"])
        .arg(format!("touch '{}'", ran.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "no host can ever run a task asking for --cpus 1 --gpus 3: no host has enough GPUs; \
             the largest is h2 (8 slots, 2 GPUs, memory unknown)"
        ),
        "{stderr}"
    );
    assert!(!ran.exists(), "a task ran");
}

#[test]
fn mem_above_every_hosts_memory_is_exit_2_before_anything_runs() {
    let lab = Lab::start(2);
    let ran = lab.path("ran");
    let out = lab
        .submit()
        .args(["--mem", "1P", "--array", "1-2", "--"])
        .arg(format!("touch '{}'", ran.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--mem 1.0P: no host has enough memory; the largest is h"),
        "{stderr}"
    );
    assert!(!ran.exists(), "a task ran");
}

#[test]
fn mem_that_fits_runs_every_task() {
    let lab = Lab::start(1);
    inventory_with(&lab, 8, "mem = \"1G\"\n");
    let out = lab
        .submit()
        .args(["--mem", "400M", "--array", "1-5", "--", RECORD])
        .output()
        .unwrap();
    assert_succeeded(&out);
    let spans = spans(&out.stdout);
    assert_eq!(spans.len(), 5);
    assert_eq!(most_at_once(&spans, "h1"), 2, "1G / 400M: two at once");
}
