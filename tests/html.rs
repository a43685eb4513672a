//! The HTML report (`dts report RUN --html`, `dts submit --html`) in a real browser:
//! headless Chromium (Debian's `chromium`, which test.sh installs) opens the page of a real
//! run on loopback sshd, runs its script, and the test reads the DOM it dumps, its console
//! and a screenshot. One browser launch for the DOM, one for the screenshot.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use dts::store::{StateDir, StateEnv, reader};
use predicates::str::contains;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless Chromium with its own profile, nothing fetched in the background, killed after
/// a minute.
fn chromium(profile: &Path) -> assert_cmd::Command {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (test.sh does)"
    );
    let mut cmd = assert_cmd::Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .timeout(Duration::from_secs(60));
    cmd
}

fn url(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn state_of(lab: &Lab) -> StateDir {
    StateDir::locate(&StateEnv {
        home: Some(lab.dir.path().to_path_buf()),
        ..StateEnv::default()
    })
    .unwrap()
}

/// Writes a PNG of `page` at 1400×900 and checks it is one.
fn screenshot(lab: &Lab, page: &Path, png: &Path) {
    chromium(&lab.path("profile-shot"))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1400,900")
        .arg(url(page))
        .assert()
        .success();
    let bytes = std::fs::read(png).expect("the screenshot is written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
}

#[test]
fn the_html_report_of_a_real_run_shows_every_attempt_in_a_browser() {
    let lab = Lab::start(3);
    let page = lab.path("run.html");
    lab.submit()
        .args(["--output", "none", "--array", "1-60", "--retries", "1"])
        .arg("--html")
        .arg(&page)
        .args(["--", "sleep 0.0$(( {} % 9 )); test {} -ne 13"])
        .assert()
        .code(1);
    let state = state_of(&lab);
    let id = state.resolve("last").unwrap();
    let detail = reader::detail(&state, &id).unwrap();
    assert_eq!(detail.attempts.len(), 61, "60 tasks and one retry");
    // dts status says how to get the page, and dts report writes the same one.
    dts(lab.dir.path())
        .args(["status", "last"])
        .assert()
        .success()
        .stdout(contains(format!("dts report {id} --html FILE")));
    dts(lab.dir.path())
        .args(["report", "last"])
        .assert()
        .success()
        .stdout(contains(format!(
            "run {id}: failed — 60 tasks: 59 succeeded, 1 failed"
        )));
    let again = lab.path("again.html");
    dts(lab.dir.path())
        .args(["report", "last", "--html"])
        .arg(&again)
        .assert()
        .success();
    assert!(
        std::fs::read_to_string(&again)
            .unwrap()
            .contains("class=\"task ")
    );

    let run = chromium(&lab.path("profile-dom"))
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(url(&page))
        .assert()
        .success();
    let out = run.get_output();
    let dom = String::from_utf8_lossy(&out.stdout);
    let console = String::from_utf8_lossy(&out.stderr);
    assert!(
        dom.contains("data-ready=\"yes\""),
        "the page's script ran:\n{dom}"
    );
    assert!(!dom.contains("id=\"errors\""), "script errors:\n{dom}");
    assert!(!console.contains("Uncaught"), "console errors:\n{console}");
    assert_eq!(
        dom.matches("class=\"task ").count(),
        detail.attempts.len(),
        "one .task element per attempt"
    );
    for host in &lab.hosts {
        assert!(
            dom.contains(&format!("<th scope=\"row\">{}</th>", host.name)),
            "{} named in the hosts table",
            host.name
        );
        assert!(
            dom.contains(&format!(">{}</text>", host.name)),
            "{} has lanes",
            host.name
        );
    }
    assert!(
        dom.contains("exit 1"),
        "the failed attempts say how they ended"
    );
    screenshot(&lab, &page, &lab.path("run.png"));
}

/// Each host's GPUs reach every report of the run: the end report, `dts report`, `dts
/// status --json` and the HTML page a browser shows.
#[test]
fn every_report_of_a_gpu_run_shows_each_hosts_gpus() {
    let lab = Lab::start(2);
    let mut inventory = lab.defaults(4);
    for (h, gpus) in lab.hosts.iter().zip([2, 0]) {
        inventory.push_str(&host_entry(&h.name, &h.address.to_string(), h.port));
        inventory.push_str(&format!("gpus = {gpus}\n"));
    }
    std::fs::write(lab.inventory(), inventory).unwrap();
    let page = lab.path("gpus.html");
    let out = lab
        .submit()
        .args(["--output", "none", "--array", "1-4", "--html"])
        .arg(&page)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_succeeded(&out);
    let end_report = String::from_utf8_lossy(&out.stderr);
    assert!(end_report.contains("GPUs"), "{end_report}");

    let report = dts(lab.dir.path())
        .args(["report", "last"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&report.get_output().stdout).into_owned();
    let h1_row = text
        .lines()
        .find(|l| l.contains(&format!(" {} ", lab.hosts[0].name)))
        .unwrap_or_else(|| panic!("a row for h1:\n{text}"));
    let cells: Vec<&str> = h1_row.split(['│', '┆']).map(str::trim).collect();
    assert_eq!(cells[2], "2", "h1's GPUs after its name:\n{text}");

    let status = dts(lab.dir.path())
        .args(["status", "last", "--json"])
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_slice(&status.get_output().stdout).unwrap();
    let gpus: Vec<u64> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["gpus"].as_u64().unwrap())
        .collect();
    assert_eq!(gpus, [2, 0]);

    let run = chromium(&lab.path("profile-gpus"))
        .arg("--dump-dom")
        .arg(url(&page))
        .assert()
        .success();
    let dom = String::from_utf8_lossy(&run.get_output().stdout);
    assert!(dom.contains("<th>GPUs</th>"), "{dom}");
    for (host, gpus) in lab.hosts.iter().zip([2, 0]) {
        assert!(
            dom.contains(&format!(
                "<th scope=\"row\">{}</th><td>4</td><td class=\"gpus\">{gpus}</td>",
                host.name
            )),
            "{} shows {gpus} GPUs:\n{dom}",
            host.name
        );
    }
}

#[test]
fn submit_html_to_stdout_is_refused_before_anything_runs() {
    let lab = Lab::start(1);
    lab.submit()
        .args(["--array", "1-3", "--html", "-", "--", "true"])
        .assert()
        .code(2)
        .stderr(contains("--html -: give a file"));
    lab.submit()
        .args(["--array", "1-3", "--html"])
        .arg(lab.path("no/such/dir/run.html"))
        .args(["--", "true"])
        .assert()
        .code(2)
        .stderr(contains("--html"))
        .stderr(contains("does not exist"));
    assert!(state_of(&lab).run_ids().is_empty(), "no run was created");
}

#[test]
fn report_during_a_run_draws_running_attempts_then_cancelled_ones() {
    let lab = Lab::start(1);
    let mark = marker("html-live");
    let written = lab.path("detached.html");
    lab.submit()
        .args([
            "--detach",
            "--array",
            "1-3",
            "--html",
            "detached.html",
            "--",
        ])
        .arg(format!("sleep 30 # {mark}"))
        .assert()
        .success();
    let state = state_of(&lab);
    let id = state.resolve("last").unwrap();
    wait_until(Duration::from_secs(30), "3 tasks running", || {
        reader::detail(&state, &id).is_ok_and(|d| {
            d.attempts
                .iter()
                .filter(|a| a.started.is_some() && a.outcome.is_none())
                .count()
                == 3
        })
    });
    let page = |lab: &Lab| {
        let out = dts(lab.dir.path())
            .args(["report", "last", "--html", "-"])
            .assert()
            .success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    };
    let live = page(&lab);
    assert!(live.contains("The run is still going"), "{live}");
    assert_eq!(live.matches("class=\"task o-running\"").count(), 3);
    dts(lab.dir.path())
        .args(["cancel", "last"])
        .assert()
        .success();
    wait_until(Duration::from_secs(30), "the run to end", || {
        reader::summary(&state, &id).is_ok_and(|r| r.state == "cancelled")
    });
    no_process_left(&mark, Duration::from_secs(10));
    let after = page(&lab);
    assert!(!after.contains("The run is still going"));
    // The background coordinator wrote the page when the run ended (relative to where
    // dts submit ran, not to the coordinator's directory).
    wait_until(Duration::from_secs(10), "the detached run's page", || {
        std::fs::read_to_string(&written).is_ok_and(|p| p.contains("o-cancelled"))
    });
    assert_eq!(
        after.matches("class=\"task o-cancelled\"").count(),
        3,
        "{after}"
    );
}

/// The README's screenshot: a 500-task run on four hosts of different sizes, with a few
/// failures and a straggler. `DTS_SCREENSHOT=docs/report.png cargo test --test html --
/// --ignored readme` writes it.
#[test]
#[ignore = "writes the README's screenshot: DTS_SCREENSHOT=docs/report.png"]
fn readme_screenshot_of_a_500_task_run() {
    let out = PathBuf::from(std::env::var("DTS_SCREENSHOT").expect("DTS_SCREENSHOT=FILE.png"));
    let lab = Lab::start(4);
    let mut inventory = lab.defaults(4);
    for (h, slots) in lab.hosts.iter().zip([2, 4, 4, 6]) {
        inventory.push_str(&host_entry(&h.name, &h.address.to_string(), h.port));
        inventory.push_str(&format!("slots = {slots}\n"));
    }
    std::fs::write(lab.inventory(), inventory).unwrap();
    let page = lab.path("run.html");
    lab.submit()
        .args(["--output", "none", "--array", "1-500", "--retries", "1", "--algo", "least-load"])
        .arg("--html")
        .arg(&page)
        .args([
            "--",
            "sleep 0.$(( ({} * 7919) % 5 ))$(( {} % 10 )); [ {} -eq 480 ] && sleep 3; test $(( {} % 97 )) -ne 0",
        ])
        .assert()
        .code(1);
    screenshot(&lab, &page, &std::path::absolute(out).unwrap());
}
