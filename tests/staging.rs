//! File staging end to end on real sshd: inputs copied to the hosts over the run's own
//! connections, processed there, results brought back byte-exact; cleanup, basefiles sent
//! once per host, strict returns, missing inputs.
//!
//! The lab's hosts run as the test's own user, so they could read its files: each host here
//! gets a home of its own (sshd's `SetEnv HOME`), tasks must find their inputs in their task
//! directory under that home, and the tests check that they ran there.

mod common;

use std::path::{Path, PathBuf};

use common::{Lab, assert_succeeded, tagged_lines};
use sha2::{Digest, Sha256};

/// A lab whose hosts each have their own home directory, `home_<name>` in the lab dir.
fn lab_with_own_homes(n: usize) -> Lab {
    let mut lab = Lab::start(0);
    let shared = format!("SetEnv HOME={}/home", lab.dir.path().display());
    for i in 1..=n {
        let name = format!("h{i}");
        let home = lab.path(&format!("home_{name}"));
        std::fs::create_dir(&home).unwrap();
        let own = format!("SetEnv HOME={}", home.display());
        lab.add_host_with(&name, |config| config.replace(&shared, &own));
    }
    lab.write_inventory(4);
    lab
}

fn home_of(lab: &Lab, host: &str) -> PathBuf {
    lab.path(&format!("home_{host}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic bytes that do not compress or repeat in lines.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u8
        })
        .collect()
}

/// `cleanup`: no file is left in the homes of the lab's two hosts.
fn assert_no_file_left_on_the_hosts(lab: &Lab) {
    for host in ["h1", "h2"] {
        let left = files_under(&home_of(lab, host));
        assert!(left.is_empty(), "{host} still holds {left:?}");
    }
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The dozen inputs: empty, 3 MB, every byte value, spaces, unicode, a quote, a leading
/// dash, subdirectories, and a directory given whole.
fn write_inputs(dir: &Path) -> Vec<String> {
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("big.bin", noise(3 * 1024 * 1024, 1)),
        ("bytes.bin", (0..=255u8).cycle().take(4096).collect()),
        ("with space.txt", b"a b\n".to_vec()),
        ("ünïcødé ✓.txt", "é\n".as_bytes().to_vec()),
        ("it's.txt", b"quote\n".to_vec()),
        ("-dash.txt", b"dash\n".to_vec()),
        ("sub/dir/deep.txt", b"deep\n".to_vec()),
        ("sub/no newline", b"x".to_vec()),
        ("tree/a.txt", b"tree a\n".to_vec()),
        ("tree/inner/b.bin", noise(10_000, 2)),
        ("tree/inner/e m p t y", Vec::new()),
    ];
    for (name, bytes) in &files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let mut items: Vec<String> = files
        .iter()
        .map(|(n, _)| n.to_string())
        .filter(|n| !n.starts_with("tree/"))
        .collect();
    items.push("tree".into());
    items
}

#[test]
fn a_dozen_files_are_staged_processed_on_the_hosts_and_returned_byte_exact() {
    let lab = lab_with_own_homes(2);
    let items = write_inputs(lab.dir.path());
    std::fs::write(lab.path("items"), items.join("\n") + "\n").unwrap();
    // A file is summed where it landed; the copy and the sum come back.
    let command = "if [ -d {} ]; then echo dir; else sha256sum < {} | cut -d' ' -f1; fi > {}.sum \
                   && cp -R -- {} {}.copy && pwd";
    let out = lab
        .submit()
        .args(["--items", "items", "--tf", "{}", "--return", "{}.sum"])
        .args(["--return", "{}.copy", "--", command])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Each task ran in its own directory under its host's home.
    let lines = tagged_lines(&out.stdout);
    assert_eq!(lines.len(), items.len(), "{lines:?}");
    for (host, index, pwd) in &lines {
        let home = home_of(&lab, host);
        let expected = "/.cache/dts/runs/";
        assert!(
            pwd.starts_with(home.to_str().unwrap()) && pwd.contains(expected),
            "task {index} on {host} ran in {pwd}"
        );
        assert!(pwd.ends_with(&format!("/t/{index}.1")), "{pwd}");
    }
    for item in &items {
        let original = lab.path(item);
        let copy = lab.path(&format!("{item}.copy"));
        let sum = std::fs::read_to_string(lab.path(&format!("{item}.sum"))).unwrap();
        if original.is_dir() {
            assert_eq!(sum, "dir\n");
            assert_eq!(files_under(&original), files_under(&copy));
            for file in files_under(&original) {
                assert_eq!(
                    std::fs::read(original.join(&file)).unwrap(),
                    std::fs::read(copy.join(&file)).unwrap(),
                    "{item}/{}",
                    file.display()
                );
            }
        } else {
            let bytes = std::fs::read(&original).unwrap();
            assert_eq!(sum.trim(), sha256_hex(&bytes), "sum of {item} on its host");
            assert_eq!(std::fs::read(&copy).unwrap(), bytes, "{item} came back");
        }
    }
    // Without --cleanup the task directories stay on the hosts, holding the staged inputs.
    let kept = lines.iter().filter(|(host, index, _)| {
        let home = home_of(&lab, host);
        let run = std::fs::read_dir(home.join(".cache/dts/runs"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        run.join(format!("t/{index}.1")).is_dir()
    });
    assert_eq!(kept.count(), items.len());
    assert!(stderr.contains("staged h1: sent"), "{stderr}");
}

#[test]
fn cleanup_leaves_nothing_on_the_hosts() {
    let lab = lab_with_own_homes(2);
    let items = write_inputs(lab.dir.path());
    std::fs::write(lab.path("items"), items.join("\n") + "\n").unwrap();
    let out = lab
        .submit()
        .args(["--items", "items", "--trc", "{}.out", "--bf", "big.bin"])
        .args([
            "--",
            "cat {} > {}.out 2>/dev/null || cp -R {} {}.out; echo made > junk",
        ])
        .output()
        .unwrap();
    assert_succeeded(&out);
    for host in ["h1", "h2"] {
        let left: Vec<_> = std::fs::read_dir(home_of(&lab, host))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "{host} still holds {left:?}");
    }
    assert_eq!(
        std::fs::read(lab.path("big.bin.out")).unwrap(),
        std::fs::read(lab.path("big.bin")).unwrap()
    );
    assert!(
        !lab.path("junk").exists(),
        "only what --return asks comes back"
    );
}

#[test]
fn a_basefile_is_sent_once_per_host() {
    let lab = lab_with_own_homes(2);
    std::fs::write(lab.path("base.dat"), noise(1024 * 1024, 7)).unwrap();
    let out = lab
        .submit()
        .args(["--array", "1-12", "--bf", "base.dat", "--json"])
        .args(["--", "cmp base.dat base.dat && wc -c < base.dat"])
        .output()
        .unwrap();
    assert_succeeded(&out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts = doc["staging"]["hosts"].as_array().expect("staging figures");
    let mut tasks = 0;
    for host in hosts {
        let name = host["host"].as_str().unwrap();
        let ran = doc["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .map(|h| h["tasks"].as_u64().unwrap())
            .unwrap();
        if ran == 0 {
            continue;
        }
        tasks += ran;
        assert_eq!(host["files_sent"], 1, "{host}");
        assert_eq!(host["cache_hits"].as_u64(), Some(ran - 1), "{host}");
        let sent = host["sent_bytes"].as_u64().unwrap();
        assert!((1024 * 1024..2 * 1024 * 1024).contains(&sent), "{host}");
        // On the host: one copy in the run's cache, linked into every task directory.
        let runs = home_of(&lab, name).join(".cache/dts/runs");
        let run = std::fs::read_dir(runs)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let cached: Vec<_> = std::fs::read_dir(run.join("c")).unwrap().collect();
        assert_eq!(cached.len(), 1, "{name}: {cached:?}");
        let linked = std::fs::read_dir(run.join("t")).unwrap().count() as u64;
        assert_eq!(linked, ran, "{name}");
    }
    assert_eq!(tasks, 12);
}

#[test]
fn a_returned_symlink_is_refused_naming_the_file() {
    let lab = lab_with_own_homes(1);
    std::fs::write(lab.path("secret"), "not for the host to overwrite\n").unwrap();
    let out = lab
        .submit()
        .args(["--array", "1-2", "--return", "out", "--return", "res"])
        .args([
            "--",
            "mkdir res; echo fine > res/ok; if [ {} = 1 ]; then ln -s ../../../../../../secret out; \
             else echo ok > out; ln -s /etc/passwd res/link; fi",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("[h1 1] dts: staging: out: is a symbolic link"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[h1 2] dts: staging: res/link: is a symbolic link"),
        "{stderr}"
    );
    assert!(stderr.contains("exit 125"), "{stderr}");
    assert!(!lab.path("out").exists() || !lab.path("out").is_symlink());
    assert!(!lab.path("res/link").exists());
    assert_eq!(
        std::fs::read_to_string(lab.path("secret")).unwrap(),
        "not for the host to overwrite\n"
    );
}

#[test]
fn a_return_or_transfer_path_leaving_the_task_directory_is_exit_2_before_anything_runs() {
    let lab = lab_with_own_homes(1);
    for args in [
        ["--return", "../x"],
        ["--tf", "/etc/passwd"],
        ["--tf", "{}"],
    ] {
        let out = lab
            .submit()
            .args(["--items", "-"])
            .args(args)
            .args(["--", "touch ran"])
            .write_stdin("ok\n../../escape\n")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("leaves the task directory") || stderr.contains("absolute"));
        assert!(!home_of(&lab, "h1").join(".cache").exists(), "{args:?}");
    }
    let out = lab
        .submit()
        .args(["--items", "-", "--tf", "{}"])
        .args(["--", "touch ran"])
        .write_stdin("../../escape\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("task 1: --transfer-file '{}': staged path \"../../escape\""),
        "{stderr}"
    );
}

#[test]
fn a_missing_input_file_is_a_task_error_naming_it() {
    let lab = lab_with_own_homes(1);
    std::fs::write(lab.path("here.txt"), "here\n").unwrap();
    let out = lab
        .submit()
        .args(["--items", "-", "--tf", "{}", "--", "cat {}"])
        .write_stdin("here.txt\nmissing.txt\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[h1 1] here\n");
    assert!(
        stderr.contains("[h1 2] dts: staging: input file 'missing.txt' is missing"),
        "{stderr}"
    );
}

#[test]
fn job_file_keys_stage_like_the_flags_and_bad_ones_point_at_their_value() {
    let lab = lab_with_own_homes(1);
    std::fs::write(lab.path("in.txt"), "in\n").unwrap();
    std::fs::write(lab.path("lib.sh"), "echo lib\n").unwrap();
    std::fs::write(
        lab.path("job.toml"),
        "items = [\"in.txt\"]\ncommand = \"sh lib.sh > {}.out; cat {} >> {}.out\"\n\
         transfer = [\"{}\"]\nreturn = [\"{}.out\"]\ncleanup = true\nbasefiles = [\"lib.sh\"]\n",
    )
    .unwrap();
    let out = lab.submit().arg("job.toml").output().unwrap();
    assert_succeeded(&out);
    assert_eq!(
        std::fs::read_to_string(lab.path("in.txt.out")).unwrap(),
        "lib\nin\n"
    );
    std::fs::write(
        lab.path("bad.toml"),
        "command = \"true\"\nreturn = [\"ok\", \"../up\"]\n",
    )
    .unwrap();
    let out = lab.submit().arg("bad.toml").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.toml:2:17"), "{stderr}");
    assert!(stderr.contains("leaves the task directory"), "{stderr}");
}

#[test]
fn a_result_the_task_did_not_make_fails_it_naming_the_file() {
    let lab = lab_with_own_homes(1);
    let out = lab
        .submit()
        .args(["--array", "1-2", "--return", "out{}.txt", "--retries", "1"])
        .args(["--", "[ {} = 1 ] && echo one > out1.txt; true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(lab.path("out1.txt")).unwrap(),
        "one\n"
    );
    assert!(
        stderr.contains("[h1 2] dts: staging: out2.txt: no such file or directory"),
        "{stderr}"
    );
    // A staging failure is a task failure: it used its retry.
    assert!(stderr.contains("retrying (attempt 2 of 2)"), "{stderr}");
}

#[test]
fn the_local_transport_stages_into_a_directory_of_its_own_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("in.txt"), "local\n").unwrap();
    let out = common::dts(dir.path())
        .args(["submit", "--items", "-", "--trc", "{}.out"])
        .args(["--", "tr a-z A-Z < {} > {}.out; pwd"])
        .write_stdin("in.txt\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let home = dir.path().join(".cache/dts/runs/");
    assert!(stdout.contains(home.to_str().unwrap()), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(path("in.txt.out")).unwrap(),
        "LOCAL\n"
    );
    assert!(!path(".cache").exists(), "cleaned up");
}

/// Runs the host-side unpacker of run `r1`, task `t/1.1`, with `HOME` at `home`.
fn unpack(home: &Path, stream: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(dts::staging::script::stage_in("r1", "t/1.1"))
        .env("HOME", home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stream).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_host_side_unpacker_refuses_what_dts_would_never_send() {
    let home = tempfile::tempdir().unwrap();
    let hash = "0123456789abcdef0123456789abcdef";
    let cases: [(Vec<u8>, &str); 7] = [
        (
            format!("F 640 3 c/{hash}\nabc").into_bytes(),
            "ended before its end marker",
        ),
        (
            format!("E\n{hash} 644 ../x\n").into_bytes(),
            "refusing to stage '../x'",
        ),
        (
            format!("E\n{hash} 644 /tmp/x\n").into_bytes(),
            "refusing to stage '/tmp/x'",
        ),
        (
            b"F 644 1 ../x\nyE\n".to_vec(),
            "unexpected cache entry ../x",
        ),
        (
            b"F 644 1 c/../../x\nyE\n".to_vec(),
            "unexpected cache entry c/../../x",
        ),
        (b"L 777 0 x\nE\n".to_vec(), "unexpected entry 'L'"),
        (format!("F 644 9 c/{hash}\nxy").into_bytes(), "ended inside"),
    ];
    for (stream, said) in cases {
        let out = unpack(home.path(), &stream);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{said}: {stderr}");
        assert!(stderr.contains(said), "{said}: {stderr}");
    }
    assert!(!home.path().join(".cache/dts/runs/x").exists());
    assert!(!home.path().join("x").exists());
    // What dts sends is placed, byte-exact, as a link to the run's cache.
    let stream = format!("F 640 3 c/{hash}\nabcE\n- 755 d\n{hash} 640 d/f g\n");
    let out = unpack(home.path(), stream.as_bytes());
    assert_succeeded(&out);
    let task = home.path().join(".cache/dts/runs/r1/t/1.1");
    assert_eq!(std::fs::read(task.join("d/f g")).unwrap(), b"abc");
}

/// A `.HASH.PID` file: a content arriving in a host's cache for the run.
fn arriving(home: &Path) -> bool {
    let Ok(runs) = std::fs::read_dir(home.join(".cache/dts/runs")) else {
        return false;
    };
    runs.flatten().any(|run| {
        std::fs::read_dir(run.path().join("c"))
            .map(|c| {
                c.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with('.'))
            })
            .unwrap_or(false)
    })
}

#[test]
fn a_host_lost_while_its_inputs_are_sent_requeues_the_task_elsewhere() {
    let mut lab = lab_with_own_homes(2);
    std::fs::write(lab.path("big.bin"), noise(64 * 1024 * 1024, 3)).unwrap();
    let mut child = common::dts_process(lab.dir.path())
        .args(["submit", "-H"])
        .arg(lab.inventory())
        .args(["--items", "-", "--tf", "{}", "--return", "sum"])
        .args(["--", "sha256sum < {} > sum"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"big.bin\n").unwrap();
    }
    let mut receiving = None;
    common::wait_until(
        std::time::Duration::from_secs(60),
        "the input to start arriving on a host",
        || {
            receiving = (0..2).find(|&i| arriving(&home_of(&lab, &format!("h{}", i + 1))));
            receiving.is_some()
        },
    );
    lab.kill_host(receiving.unwrap());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let expected = sha256_hex(&std::fs::read(lab.path("big.bin")).unwrap());
    let sum = std::fs::read_to_string(lab.path("sum")).unwrap();
    assert_eq!(sum.split_whitespace().next(), Some(expected.as_str()));
}

/// The "done when": the pipeline in `jobs/` prepares its inputs, sweeps a matrix
/// over them and collects the results on hosts that share no filesystem (each has its own
/// home; the tasks see only what staging put in their directories). Files pass between
/// stages only through the submitter's directory: prepare's shards come back here, work
/// sends each where it runs and returns its sum, reduce gets all six sums on one host.
#[test]
fn the_staged_pipeline_in_jobs_sweeps_and_collects_across_hosts_without_a_shared_filesystem() {
    let lab = lab_with_own_homes(2);
    let job = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/staged-pipeline.toml");
    let out = lab
        .submit()
        .arg(&job)
        .args(["--joblog", "joblog"])
        .output()
        .unwrap();
    assert_succeeded(&out);
    let totals = "sum of x^1 for x in 1..3000: 4501500\nsum of x^2 for x in 1..3000: 9004500500\n";
    let collected = std::fs::read_to_string(lab.path("sweep-out/totals.txt")).unwrap();
    assert_eq!(collected, totals);
    let printed: Vec<String> = tagged_lines(&out.stdout)
        .into_iter()
        .map(|(_, _, line)| line + "\n")
        .collect();
    assert_eq!(printed.concat(), totals, "what reduce printed");
    // Each sum came back from the host that made it: shard 2 holds 1001..2000.
    let sum = |name: &str| std::fs::read_to_string(lab.path(&format!("sweep-out/sums/{name}")));
    assert_eq!(sum("2-1.txt").unwrap(), "1500500\n");
    assert_eq!(sum("3-2.txt").unwrap(), "6335833500\n");
    // The work ran on both hosts, so the one reduce task got sums made on another host.
    let text = std::fs::read_to_string(lab.path("joblog")).unwrap();
    let work_hosts: std::collections::BTreeSet<&str> = text
        .lines()
        .skip(1)
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .filter(|f| (4..=9).contains(&f[0].parse::<u32>().unwrap()))
        .map(|f| f[1])
        .collect();
    assert_eq!(work_hosts.len(), 2, "{text}");
    // `cleanup = true` for every stage: nothing is left on the hosts.
    assert_no_file_left_on_the_hosts(&lab);
}

/// `dts retry` of a staged pipeline stages each stage as the first session did (its own
/// keys, its matrix in its templates): a work task fails until `flags/ok` exists among the
/// files it is sent, and the retry sends it again, runs it and the reduce it skipped, which
/// gets every result through the submitter's directory.
#[test]
fn dts_retry_of_a_staged_pipeline_stages_each_stage_as_the_first_session_did() {
    let lab = lab_with_own_homes(2);
    std::fs::create_dir(lab.path("flags")).unwrap();
    let job = "cleanup = true\n\n\
               [[stage]]\nname = \"prep\"\narray = \"1-2\"\n\
               command = \"mkdir -p in && echo {} > in/{}\"\nreturn = [\"in/{}\"]\n\n\
               [[stage]]\nname = \"work\"\narray = \"1-2\"\neach_after = \"prep\"\n\
               transfer = [\"in/{}\", \"flags\"]\nreturn = [\"out/{}-{k}\"]\n\
               command = \"test {} != 2 || test -e flags/ok || exit 1; mkdir -p out && echo $(( $(cat in/{}) * {k} )) > out/{}-{k}\"\n\
               [stage.matrix]\nk = [10]\n\n\
               [[stage]]\nname = \"reduce\"\nafter = [\"work\"]\ntransfer = [\"out\"]\n\
               command = \"awk '{ s += $1 } END { print s }' out/* > total\"\nreturn = [\"total\"]\n";
    std::fs::write(lab.path("staged.toml"), job).unwrap();
    let out = lab.submit().arg("staged.toml").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(lab.path("out/1-10")).unwrap(),
        "10\n"
    );
    assert!(!lab.path("total").exists(), "reduce was skipped");

    std::fs::write(lab.path("flags/ok"), "").unwrap();
    let out = common::dts(lab.dir.path())
        .args(["retry", "last"])
        .output()
        .unwrap();
    assert_succeeded(&out);
    assert_eq!(
        std::fs::read_to_string(lab.path("out/2-10")).unwrap(),
        "20\n"
    );
    assert_eq!(std::fs::read_to_string(lab.path("total")).unwrap(), "30\n");
    assert_no_file_left_on_the_hosts(&lab);
}

/// `dts retry` runs only the tasks that did not succeed, so its job holds fewer tasks than
/// the run has: each must still be staged by its own number (task 3 of 3 was once run
/// unstaged, as if it were past the job's end).
#[test]
fn dts_retry_of_a_staged_job_stages_the_tasks_it_runs_again() {
    let lab = lab_with_own_homes(2);
    std::fs::create_dir(lab.path("flags")).unwrap();
    for i in 1..=3 {
        std::fs::write(lab.path(&format!("in{i}")), format!("{i}\n")).unwrap();
    }
    let staged = [
        "--array", "1-3", "--tf", "in{}", "--tf", "flags", "--return", "out{}",
    ];
    let command = "test {} != 3 || test -e flags/ok || exit 1; cat in{} > out{}";
    let out = lab
        .submit()
        .args(staged)
        .args(["--", command])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!lab.path("out3").exists());
    std::fs::write(lab.path("flags/ok"), "").unwrap();
    let out = common::dts(lab.dir.path())
        .args(["retry", "last"])
        .output()
        .unwrap();
    assert_succeeded(&out);
    assert_eq!(std::fs::read_to_string(lab.path("out3")).unwrap(), "3\n");
}
