//! `--load` and `--memfree` on real sshd: a gated host takes no new task, a run with every
//! host gated waits (saying which and why) instead of failing, and gates that every host
//! passes change nothing.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

#[test]
fn memfree_above_every_host_waits_naming_the_gated_hosts_until_ctrl_c() {
    let lab = Lab::start(2);
    let ran = lab.path("ran");
    let command = format!("touch '{}'", ran.display());
    let mut child = dts_process(lab.dir.path())
        .arg("submit")
        .arg("-H")
        .arg(lab.inventory())
        .args([
            "--memfree",
            "1P",
            "--probe-interval",
            "1s",
            "--array",
            "1-4",
        ])
        .args(["--", &command])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let sink = stderr.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    wait_until(Duration::from_secs(60), "the every-host-gated note", || {
        stderr.lock().unwrap().contains("every host is gated")
    });
    // SAFETY: signalling the dts this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let stderr = stderr.lock().unwrap().clone();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(
            "every host is gated, so no task starts until a probe (every 1s) finds one open: \
             h[1-2] (less than --memfree 1.0P available)"
        ),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("every host is gated").count(),
        1,
        "said once per wait: {stderr}"
    );
    assert!(!ran.exists(), "a task ran on a gated host");
}

#[test]
fn gates_every_host_passes_run_normally() {
    let lab = Lab::start(2);
    lab.submit()
        .args([
            "--memfree",
            "1k",
            "--load",
            "1000",
            "--array",
            "1-6",
            "--",
            "echo {}",
        ])
        .assert()
        .success();
}

#[test]
fn bad_gate_values_are_usage_errors_and_run_nothing() {
    let lab = Lab::start(1);
    for (flag, value) in [("--memfree", "lots"), ("--load", "high")] {
        lab.submit()
            .args([flag, value, "--array", "1", "--", "true"])
            .assert()
            .code(2)
            .stderr(predicates::str::contains(format!(
                "invalid {flag} '{value}'"
            )));
    }
}

#[test]
fn dry_run_names_the_gated_hosts() {
    let lab = Lab::start(2);
    lab.submit()
        .args([
            "--dry-run",
            "--memfree",
            "1P",
            "--array",
            "1-4",
            "--",
            "true",
        ])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "gated now, so a run would start nothing there until a probe finds them open: h1 (",
        ));
}
