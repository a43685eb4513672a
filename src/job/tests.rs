//! Tests of `build`: precedence of flags over the job file, item sources, and every error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::*;

fn write(dir: &TempDir, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn cmd(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn with_command(line: &str) -> Overrides {
    Overrides {
        command: cmd(&[line]),
        ..Overrides::default()
    }
}

fn run(overrides: &Overrides) -> Result<JobSpec, Error> {
    build(overrides, &mut std::io::empty())
}

/// A job file named `job.toml` in a fresh directory, and overrides pointing at it.
fn job_file(contents: &str) -> (TempDir, Overrides) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "job.toml", contents);
    let overrides = Overrides {
        job_file: Some(path),
        ..Overrides::default()
    };
    (dir, overrides)
}

/// The error message with the temporary directory taken out of it.
fn error(overrides: &Overrides) -> String {
    let message = run(overrides).unwrap_err().to_string();
    match &overrides.job_file {
        Some(path) => {
            let dir = format!("{}/", path.parent().unwrap().display());
            message.replace(&dir, "")
        }
        None => message,
    }
}

fn items(job: &JobSpec) -> Vec<&[u8]> {
    job.tasks.iter().map(|t| &*t.item).collect()
}

fn indices(job: &JobSpec) -> Vec<u64> {
    job.tasks.iter().map(|t| t.index).collect()
}

fn render(job: &JobSpec, task: usize) -> String {
    let task = &job.tasks[task];
    job.command.render(&Context {
        item: &task.item,
        seq: task.seq,
        index: task.index,
        host: "h",
        params: &job.matrix.values_of(task.seq),
    })
}

#[test]
fn flags_alone_give_defaults() {
    let job = run(&with_command("echo hi")).unwrap();
    assert_eq!(job.name, "echo");
    assert_eq!(job.command.source(), "echo hi");
    assert_eq!(
        job.tasks,
        [Task {
            seq: 1,
            index: 1,
            item: Box::default()
        }]
    );
    assert_eq!(job.throttle, None);
    assert_eq!(job.algorithm, Algorithm::RoundRobin);
    assert_eq!(job.key, None);
    assert_eq!(job.retries, 0);
    assert_eq!(job.timeout, None);
    assert_eq!(job.workdir, None);
    assert!(job.env.is_empty());
    assert_eq!((job.seed, job.slots), (None, None));
}

#[test]
fn no_command_is_a_usage_error() {
    assert_eq!(error(&Overrides::default()), NO_COMMAND);
    let (_dir, overrides) = job_file("array = \"0-3\"\n");
    assert_eq!(error(&overrides), NO_COMMAND);
    assert!(matches!(run(&overrides), Err(Error::Usage(_))));
}

#[test]
fn one_word_is_a_shell_line_several_are_an_argv() {
    let mut overrides = with_command("printf %s {} | wc -c");
    overrides.array = Some("5".into());
    assert_eq!(render(&run(&overrides).unwrap(), 0), "printf %s 5 | wc -c");
    overrides.command = cmd(&["printf", "%s\\n", "{} | x"]);
    assert_eq!(
        render(&run(&overrides).unwrap(), 0),
        r"printf '%s\n' '5 | x'"
    );
}

#[test]
fn empty_flag_command_is_an_error() {
    assert_eq!(
        error(&with_command(" ")),
        "invalid command after `--`: empty command"
    );
}

#[test]
fn full_job_file() {
    let (dir, overrides) = job_file(
        r#"
name = "resize"
command = "convert {item} -resize 50% out/{item/.}.png"
array = "0-9:3%2"
algorithm = "consistent-hash"
key = "{item/}"
retries = 2
timeout = "30m"
workdir = "/scratch/run"
env = { OMP_NUM_THREADS = "1", A_B = "x y" }
slots = 4
seed = 42
"#,
    );
    let job = run(&overrides).unwrap();
    drop(dir);
    assert_eq!(job.name, "resize");
    assert_eq!(render(&job, 1), "convert 3 -resize 50% out/3.png");
    assert_eq!(indices(&job), [0, 3, 6, 9]);
    assert_eq!(items(&job), [b"0", b"3", b"6", b"9"]);
    assert_eq!(job.tasks[3].seq, 4);
    assert_eq!(job.throttle, Some(2));
    assert_eq!(job.algorithm, Algorithm::ConsistentHash);
    assert_eq!(job.key.unwrap().source(), "{item/}");
    assert_eq!(job.retries, 2);
    assert_eq!(job.timeout, Some(Duration::from_secs(1800)));
    assert_eq!(job.workdir.as_deref(), Some("/scratch/run"));
    let env = [("A_B", "x y"), ("OMP_NUM_THREADS", "1")].map(|(k, v)| (k.into(), v.into()));
    assert_eq!(job.env, env);
    assert_eq!((job.slots, job.seed), (Some(4), Some(42)));
}

#[test]
fn argv_command_in_the_file() {
    let (_dir, overrides) = job_file("command = ['printf', '%s\\n', '{}']\nitems = [\"a b\"]\n");
    let job = run(&overrides).unwrap();
    assert_eq!(render(&job, 0), r"printf '%s\n' 'a b'");
}

#[test]
fn flags_override_the_file_field_by_field() {
    let (_dir, mut overrides) = job_file(
        r#"
command = "file-cmd {}"
array = "1-3"
algorithm = "random"
key = "{item}"
retries = 2
timeout = "30m"
slots = 4
seed = 1
"#,
    );
    let file_only = run(&overrides).unwrap();
    assert_eq!(file_only.name, "job");
    assert_eq!(file_only.algorithm, Algorithm::Random);

    overrides.command = cmd(&["flag-cmd", "{}"]);
    overrides.array = Some("7".into());
    overrides.algorithm = Some("least-load".into());
    overrides.key = Some("{/}".into());
    overrides.retries = Some(0);
    overrides.timeout = Some("5s".into());
    overrides.slots = Some(1);
    overrides.seed = Some(9);
    let job = run(&overrides).unwrap();
    assert_eq!(render(&job, 0), "flag-cmd 7");
    assert_eq!(indices(&job), [7]);
    assert_eq!(job.algorithm, Algorithm::LeastLoad);
    assert_eq!(job.key.unwrap().source(), "{/}");
    assert_eq!(job.retries, 0);
    assert_eq!(job.timeout, Some(Duration::from_secs(5)));
    assert_eq!((job.slots, job.seed), (Some(1), Some(9)));
}

#[test]
fn name_defaults() {
    let (_dir, overrides) = job_file("command = \"x\"\n");
    assert_eq!(run(&overrides).unwrap().name, "job");
    assert_eq!(
        run(&with_command("/usr/bin/convert a b")).unwrap().name,
        "convert"
    );
    let argv = Overrides {
        command: cmd(&["./bin/tool", "{}"]),
        ..Overrides::default()
    };
    assert_eq!(run(&argv).unwrap().name, "tool");
    assert_eq!(run(&with_command("cd / && ls")).unwrap().name, "cd");
}

#[test]
fn items_file_is_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let data = b"a\r\n\n  spaced  \n\xff\xfe bytes\n'quote' $(x)\nlast";
    let path = write(&dir, "items.txt", data);
    let mut overrides = with_command("echo {}");
    overrides.items = Some(path);
    let job = run(&overrides).unwrap();
    let expected: [&[u8]; 6] = [
        b"a\r",
        b"",
        b"  spaced  ",
        b"\xff\xfe bytes",
        b"'quote' $(x)",
        b"last",
    ];
    assert_eq!(items(&job), expected);
    assert_eq!(
        indices(&job),
        [1, 2, 3, 4, 5, 6],
        "items are numbered from 1"
    );
    assert_eq!(
        job.tasks.iter().map(|t| t.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(job.throttle, None);
}

#[test]
fn line_splitting() {
    let empty: [&[u8]; 0] = [];
    assert_eq!(split_lines(b""), empty);
    assert_eq!(split_lines(b"\n"), [b""]);
    assert_eq!(split_lines(b"a"), [b"a"]);
    assert_eq!(split_lines(b"a\n"), [b"a"]);
    assert_eq!(split_lines(b"a\n\n"), [&b"a"[..], b""]);
    assert_eq!(split_lines(b"\na"), [&b""[..], b"a"]);
    assert_eq!(split_lines(b"a\rb\r\n"), [b"a\rb\r"]);
}

#[test]
fn empty_items_file_gives_no_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let mut overrides = with_command("echo {}");
    overrides.items = Some(write(&dir, "empty", ""));
    assert!(run(&overrides).unwrap().tasks.is_empty());
}

#[test]
fn items_from_stdin() {
    let mut overrides = with_command("echo {}");
    overrides.items = Some("-".into());
    let job = build(&overrides, &mut &b"x y\n\n\xc3\n"[..]).unwrap();
    assert_eq!(items(&job), [&b"x y"[..], b"", b"\xc3"]);
    assert_eq!(indices(&job), [1, 2, 3]);
}

#[test]
fn stdin_is_read_only_for_items_dash() {
    struct Unreadable;
    impl std::io::Read for Unreadable {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("stdin is closed"))
        }
    }
    assert!(build(&with_command("true"), &mut Unreadable).is_ok());
    let mut overrides = with_command("true");
    overrides.items = Some("-".into());
    let err = build(&overrides, &mut Unreadable).unwrap_err();
    assert!(matches!(err, Error::ReadFile { .. }));
    assert_eq!(err.to_string(), "<stdin>: stdin is closed");
}

#[test]
fn nul_in_items_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let mut overrides = with_command("echo {}");
    overrides.items = Some(write(&dir, "items", b"ok\nab\0c\n"));
    let message = run(&overrides).unwrap_err().to_string();
    let expected = format!(
        "{}:2:3: {}",
        dir.path().join("items").display(),
        file::NUL_ITEM
    );
    assert_eq!(message, expected);

    overrides.items = Some("-".into());
    let err = build(&overrides, &mut &b"\0"[..]).unwrap_err();
    assert_eq!(err.to_string(), format!("<stdin>:1:1: {}", file::NUL_ITEM));

    let (_dir, overrides) = job_file("command = \"x\"\nitems = [\"a\", \"b\\u0000\"]\n");
    assert_eq!(
        error(&overrides),
        format!("job.toml:2:15: {}", file::NUL_ITEM)
    );
}

#[test]
fn missing_items_flag_file_is_a_read_error() {
    let mut overrides = with_command("echo {}");
    overrides.items = Some("/nonexistent/items.txt".into());
    let err = run(&overrides).unwrap_err();
    assert!(matches!(err, Error::ReadFile { .. }), "{err:?}");
    assert!(err.to_string().starts_with("/nonexistent/items.txt: "));
}

#[test]
fn items_file_is_relative_to_the_job_file() {
    let (dir, overrides) = job_file("command = \"echo {}\"\nitems_file = \"in/list.txt\"\n");
    std::fs::create_dir(dir.path().join("in")).unwrap();
    write(&dir, "in/list.txt", "a\nb\n");
    let job = run(&overrides).unwrap();
    assert_eq!(items(&job), [b"a", b"b"]);
}

#[test]
fn unreadable_items_file_points_at_the_value() {
    let (_dir, overrides) = job_file("command = \"echo {}\"\nitems_file = \"nope.txt\"\n");
    let message = error(&overrides);
    assert!(
        message.starts_with("job.toml:2:14: cannot read items file nope.txt: "),
        "{message}"
    );
}

#[test]
fn items_list_in_the_file() {
    let (_dir, overrides) = job_file("command = \"echo {}\"\nitems = [\"a\", \"\", \"c d\"]\n");
    let job = run(&overrides).unwrap();
    assert_eq!(items(&job), [&b"a"[..], b"", b"c d"]);
    assert_eq!(indices(&job), [1, 2, 3]);
}

#[test]
fn flag_source_replaces_the_file_source() {
    // The file's items file does not exist: it is not read once a flag replaces it.
    let (dir, mut overrides) = job_file("command = \"echo {}\"\nitems_file = \"missing\"\n");
    overrides.array = Some("1-2%1".into());
    let job = run(&overrides).unwrap();
    assert_eq!((indices(&job), job.throttle), (vec![1, 2], Some(1)));

    overrides.array = None;
    overrides.items = Some(write(&dir, "flag-items", "z\n"));
    assert_eq!(items(&run(&overrides).unwrap()), [b"z"]);
}

#[test]
fn items_flag_drops_the_file_throttle() {
    let (_dir, mut overrides) = job_file("command = \"echo {}\"\narray = \"0-9%3\"\n");
    overrides.items = Some("-".into());
    let job = build(&overrides, &mut &b"a\n"[..]).unwrap();
    assert_eq!(job.throttle, None);
}

#[test]
fn array_and_items_flags_conflict() {
    let mut overrides = with_command("echo {}");
    overrides.array = Some("1".into());
    overrides.items = Some("-".into());
    assert_eq!(
        error(&overrides),
        "--array and --items both give the items; use one"
    );
}

#[test]
fn two_sources_in_the_file_are_located() {
    let (_dir, overrides) = job_file("command = \"x\"\narray = \"1-3\"\nitems = [\"a\"]\n");
    assert_eq!(
        error(&overrides),
        "job.toml:3:9: `items` and `array` both give the items; keep one"
    );
    let (_dir, overrides) = job_file("items_file = \"f\"\ncommand = \"x\"\narray = \"1\"\n");
    assert_eq!(
        error(&overrides),
        "job.toml:3:9: `array` and `items_file` both give the items; keep one"
    );
}

#[test]
fn array_flag_errors_name_flag_value_and_column() {
    let cases = [
        (
            "5-1",
            "invalid --array '5-1': end 1 is below start 5 (at column 3)",
        ),
        ("", "invalid --array '': empty array spec (at column 1)"),
        (
            "0-9:0",
            "invalid --array '0-9:0': step must be at least 1 (at column 5)",
        ),
        (
            "1%0",
            "invalid --array '1%0': throttle %0 must be at least 1 (at column 3)",
        ),
        (
            "1,2,1",
            "invalid --array '1,2,1': index 1 is listed twice (at column 5)",
        ),
    ];
    for (spec, expected) in cases {
        let mut overrides = with_command("echo {}");
        overrides.array = Some(spec.into());
        assert_eq!(error(&overrides), expected);
        assert!(matches!(run(&overrides), Err(Error::Usage(_))));
    }
}

#[test]
fn array_errors_in_the_file_point_into_the_value() {
    let (_dir, overrides) = job_file("command = \"x\"\narray = \"5-1\"\n");
    assert_eq!(
        error(&overrides),
        "job.toml:2:12: invalid array: end 1 is below start 5"
    );
    let (_dir, overrides) = job_file("command = \"x\"\narray = '0-9%'\n");
    assert_eq!(
        error(&overrides),
        "job.toml:2:14: invalid array: expected a number after '%', found the end of the spec"
    );
    assert!(matches!(run(&overrides), Err(Error::Located(_))));
}

#[test]
fn algorithm_errors() {
    let mut overrides = with_command("x");
    overrides.algorithm = Some("fastest".into());
    assert_eq!(
        error(&overrides),
        "invalid --algo 'fastest': unknown algorithm 'fastest' \
         (expected random, round-robin, least-load, consistent-hash)"
    );
    let (_dir, overrides) = job_file("command = \"x\"\nalgorithm = \"fastest\"\n");
    assert_eq!(
        error(&overrides),
        "job.toml:2:13: unknown algorithm 'fastest' \
         (expected random, round-robin, least-load, consistent-hash)"
    );
}

#[test]
fn timeout_errors() {
    let mut overrides = with_command("x");
    overrides.timeout = Some("0s".into());
    assert_eq!(
        error(&overrides),
        "invalid --timeout '0s': must be greater than zero"
    );
    overrides.timeout = Some("soon".into());
    assert_eq!(
        error(&overrides),
        "invalid --timeout 'soon': expected number at 0"
    );
    let (_dir, overrides) = job_file("command = \"x\"\ntimeout = \"10 parsecs\"\n");
    let message = error(&overrides);
    assert!(
        message.starts_with("job.toml:2:11: invalid timeout '10 parsecs': unknown time unit"),
        "{message}"
    );
}

#[test]
fn gates_from_flags_override_the_file() {
    let (_dir, mut overrides) = job_file("command = \"x\"\nload = 2\nmemfree = \"1G\"\n");
    let job = run(&overrides).unwrap();
    assert_eq!(job.gates.load, Some(2.0));
    assert_eq!(job.gates.memfree, Some(1 << 30));
    overrides.load = Some("0.5".into());
    overrides.memfree = Some("100k".into());
    let job = run(&overrides).unwrap();
    assert_eq!(job.gates.load, Some(0.5));
    assert_eq!(job.gates.memfree, Some(102_400));
    let (_dir, overrides) = job_file("command = \"x\"\nload = 1.5\nmemfree = 4096\n");
    let job = run(&overrides).unwrap();
    assert_eq!((job.gates.load, job.gates.memfree), (Some(1.5), Some(4096)));
    assert!(!run(&with_command("x")).unwrap().gates.any());
}

#[test]
fn gate_errors() {
    let mut overrides = with_command("x");
    overrides.memfree = Some("1X".into());
    assert_eq!(
        error(&overrides),
        "invalid --memfree '1X': unknown unit 'X' (use k, M, G, T or P)"
    );
    overrides.memfree = None;
    overrides.load = Some("-1".into());
    assert!(error(&overrides).starts_with("invalid --load '-1': expected a non-negative"));
    let (_dir, overrides) = job_file("command = \"x\"\nmemfree = \"lots\"\n");
    assert!(
        error(&overrides).starts_with("job.toml:2:11: invalid memfree 'lots': expected a size"),
        "{}",
        error(&overrides)
    );
    let (_dir, overrides) = job_file("command = \"x\"\nload = \"high\"\n");
    assert!(
        error(&overrides).starts_with("job.toml:2:8: invalid load \"high\": expected"),
        "{}",
        error(&overrides)
    );
}

#[test]
fn key_and_slots_errors() {
    let mut overrides = with_command("x");
    overrides.key = Some(String::new());
    assert_eq!(error(&overrides), "invalid --key '': empty key");
    overrides.key = None;
    overrides.slots = Some(0);
    assert_eq!(error(&overrides), "invalid --slots '0': must be at least 1");
    let (_dir, overrides) = job_file("command = \"x\"\nslots = 0\n");
    assert_eq!(error(&overrides), "job.toml:2:9: slots must be at least 1");
    let (_dir, overrides) = job_file("command = \"x\"\nkey = \"\"\n");
    assert_eq!(error(&overrides), "job.toml:2:8: empty key");
}

#[test]
fn env_errors() {
    let (_dir, overrides) = job_file("command = \"x\"\nenv = { OK = \"1\", 1BAD = \"2\" }\n");
    assert_eq!(
        error(&overrides),
        "job.toml:2:19: env: '1BAD' is not a shell variable name \
         (letters, digits and '_', not starting with a digit)"
    );
    let (_dir, overrides) = job_file("command = \"x\"\n[env]\n\"A-B\" = \"1\"\n");
    assert!(error(&overrides).starts_with("job.toml:3:1: env: 'A-B' is not"));
    let (_dir, overrides) = job_file("command = \"x\"\nenv = { N = 1 }\n");
    assert!(error(&overrides).starts_with("job.toml:2:13: invalid type: integer `1`"));
}

#[test]
fn command_errors_in_the_file() {
    let (_dir, overrides) = job_file("command = []\n");
    assert_eq!(error(&overrides), "job.toml:1:11: empty command");
    let (_dir, overrides) = job_file("command = \"  \"\n");
    assert_eq!(error(&overrides), "job.toml:1:12: empty command");
    let (_dir, overrides) = job_file("command = 3\n");
    assert_eq!(
        error(&overrides),
        "job.toml:1:11: invalid type: integer `3`, \
         expected a command line string or an array of argument strings"
    );
}

#[test]
fn toml_errors_are_located() {
    let (_dir, overrides) = job_file("command = \"x\"\ncomand = \"y\"\n");
    let message = error(&overrides);
    assert!(
        message.starts_with("job.toml:2:1: unknown field `comand`"),
        "{message}"
    );
    let (_dir, overrides) = job_file("command = \"x\"\nretries = \"two\"\n");
    assert!(error(&overrides).starts_with("job.toml:2:11: invalid type: string \"two\""));
    let (_dir, overrides) = job_file("command = \"x\"\nname = \"\"\n");
    assert_eq!(error(&overrides), "job.toml:2:8: name cannot be empty");
    let (_dir, overrides) = job_file("command = \"x\n");
    assert!(error(&overrides).starts_with("job.toml:1:"));
}

#[test]
fn unreadable_job_file_is_a_read_error() {
    let overrides = Overrides {
        job_file: Some("/nonexistent/job.toml".into()),
        ..with_command("x")
    };
    let err = run(&overrides).unwrap_err();
    assert!(
        matches!(err, Error::ReadFile { ref path, .. } if path == Path::new("/nonexistent/job.toml"))
    );
}

#[test]
fn nul_separated_items_may_hold_newlines() {
    assert_eq!(split_nul(b"a\nb\0c\0"), [&b"a\nb"[..], b"c"]);
    assert_eq!(split_nul(b"x"), [b"x"]);
    assert!(split_nul(b"").is_empty());
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "items", b"one\ntwo\0three\0");
    let mut overrides = with_command("echo {}");
    overrides.items = Some(path);
    overrides.null = true;
    let job = run(&overrides).unwrap();
    let items: Vec<&[u8]> = job.tasks.iter().map(|t| &t.item[..]).collect();
    assert_eq!(items, [&b"one\ntwo"[..], b"three"]);
    overrides.items = None;
    overrides.array = Some("1-2".into());
    assert!(error(&overrides).contains("-0/--null applies to --items"));
}

#[test]
fn secret_env_names_come_from_file_and_flags() {
    let (_dir, mut overrides) = job_file("command = \"true\"\nsecret_env = [\"TOKEN\"]\n");
    overrides.secret_env = vec!["OTHER".into(), "TOKEN".into()];
    assert_eq!(run(&overrides).unwrap().secret_env, ["TOKEN", "OTHER"]);
    overrides.secret_env = vec!["1BAD".into()];
    assert!(error(&overrides).contains("invalid --secret-env '1BAD'"));
    let (_dir, overrides) = job_file("command = \"true\"\nsecret_env = [\"A-B\"]\n");
    assert!(
        error(&overrides).contains("job.toml:2:15: secret_env: 'A-B' is not a shell variable name")
    );
    let (_dir, overrides) =
        job_file("command = \"true\"\nenv = { K = \"v\" }\nsecret_env = [\"K\"]\n");
    assert!(error(&overrides).contains("K is both in env and secret_env"));
}

#[test]
fn no_placeholder_in_the_command_appends_the_item_as_parallel_does() {
    // An array is Slurm's: nothing appended, the index is in DTS_ARRAY_INDEX.
    let mut overrides = with_command("kill -TERM $$");
    overrides.array = Some("1-2".into());
    let job = run(&overrides).unwrap();
    assert_eq!(render(&job, 1), "kill -TERM $$");
    let overrides = Overrides {
        command: vec!["printf".into(), "%s\\n".into()],
        items: Some("-".into()),
        ..Overrides::default()
    };
    let job = build(&overrides, &mut &b"a b\n$(x)\n"[..]).unwrap();
    assert_eq!(render(&job, 0), "printf '%s\\n' 'a b'");
    assert_eq!(render(&job, 1), "printf '%s\\n' '$(x)'");
    // Any placeholder, not only the item's, means the command says where values go.
    let (_dir, overrides) = job_file("command = \"echo {#}\"\nitems = [\"a\", \"b\"]\n");
    assert_eq!(render(&run(&overrides).unwrap(), 1), "echo 2");
    // Without items, the one task runs the command as written.
    assert_eq!(
        render(&run(&with_command("echo hi")).unwrap(), 0),
        "echo hi"
    );
    let (_dir, overrides) = job_file("command = \"wc -c\"\nitems = [\"f\"]\n");
    assert_eq!(render(&run(&overrides).unwrap(), 0), "wc -c f");
}

fn params(job: &JobSpec) -> Vec<String> {
    job.tasks
        .iter()
        .map(|t| job.matrix.describe(t.seq))
        .collect()
}

#[test]
fn matrix_alone_numbers_its_tasks_from_one_first_axis_slowest() {
    let overrides = Overrides {
        matrix: cmd(&["lr=0.1,0.01", "depth=3,4,5"]),
        ..with_command("train --lr {lr} --depth {depth}")
    };
    let job = run(&overrides).unwrap();
    assert_eq!(indices(&job), [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        params(&job),
        [
            "lr=0.1 depth=3",
            "lr=0.1 depth=4",
            "lr=0.1 depth=5",
            "lr=0.01 depth=3",
            "lr=0.01 depth=4",
            "lr=0.01 depth=5"
        ]
    );
    assert_eq!(render(&job, 4), "train --lr 0.01 --depth 4");
}

#[test]
fn matrix_with_an_array_keeps_the_array_index_in_the_item() {
    let overrides = Overrides {
        array: Some("5-6".into()),
        matrix: cmd(&["x=a,b"]),
        ..with_command("echo {} {x} {index}")
    };
    let job = run(&overrides).unwrap();
    assert_eq!(indices(&job), [1, 2, 3, 4]);
    assert_eq!(items(&job), [b"5", b"5", b"6", b"6"]);
    assert_eq!(params(&job), ["x=a", "x=b", "x=a", "x=b"]);
    assert_eq!(render(&job, 2), "echo 6 a 3");
}

#[test]
fn matrix_placeholder_counts_as_a_placeholder_with_items() {
    let dir = tempfile::tempdir().unwrap();
    let items_path = write(&dir, "items.txt", "f1\nf2\n");
    let with = |line: &str| Overrides {
        items: Some(items_path.clone()),
        matrix: cmd(&["q=1,2"]),
        ..with_command(line)
    };
    let job = run(&with("zip -{q}")).unwrap();
    assert_eq!(render(&job, 3), "zip -2");
    let job = run(&with("zip")).unwrap();
    assert_eq!(render(&job, 3), "zip f2");
    assert_eq!(job.tasks.len(), 4);
}

#[test]
fn matrix_values_are_shell_quoted() {
    let overrides = Overrides {
        matrix: cmd(&["v=$(touch pwned),a b"]),
        ..with_command("echo {v}")
    };
    let job = run(&overrides).unwrap();
    assert_eq!(render(&job, 0), "echo '$(touch pwned)'");
    assert_eq!(render(&job, 1), "echo 'a b'");
}

#[test]
fn matrix_flag_errors_are_usage_errors() {
    let bad = |axes: &[&str]| {
        let overrides = Overrides {
            matrix: cmd(axes),
            ..with_command("x")
        };
        let err = run(&overrides).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err:?}");
        err.to_string()
    };
    assert_eq!(
        bad(&["lr="]),
        "invalid --matrix 'lr=': matrix axis 'lr' has no values"
    );
    assert!(bad(&["index=1"]).contains("clashes with the built-in placeholder {index}"));
    assert!(bad(&["a b=1"]).contains("not a shell variable name"));
    assert_eq!(
        bad(&["x=1", "x=2"]),
        "invalid --matrix: matrix axis 'x' is given twice"
    );
}

#[test]
fn matrix_table_in_the_job_file_keeps_its_order() {
    let (_dir, overrides) = job_file(
        "command = \"run {zeta} {alpha}\"\n[matrix]\nzeta = [\"z1\", \"z2\"]\nalpha = [1, 20]\n",
    );
    let job = run(&overrides).unwrap();
    assert_eq!(
        params(&job),
        [
            "zeta=z1 alpha=1",
            "zeta=z1 alpha=20",
            "zeta=z2 alpha=1",
            "zeta=z2 alpha=20"
        ]
    );
    assert_eq!(render(&job, 1), "run z1 20");
    // --matrix replaces the table.
    let overrides = Overrides {
        matrix: cmd(&["alpha=9"]),
        ..overrides
    };
    assert_eq!(params(&run(&overrides).unwrap()), ["alpha=9"]);
}

#[test]
fn matrix_table_errors_are_located() {
    let check = |text: &str, expected: &str| {
        let (_dir, overrides) = job_file(text);
        let err = run(&overrides).unwrap_err();
        assert!(matches!(err, Error::Located(_)), "{err:?}");
        assert_eq!(error(&overrides), expected);
    };
    let head = "command = \"x\"\n[matrix]\n";
    check(
        &format!("{head}lr = []\n"),
        "job.toml:3:6: matrix axis 'lr' has no values",
    );
    check(
        &format!("{head}lr = [\"a\", 0.5]\n"),
        "job.toml:3:12: matrix axis 'lr': values are strings or integers, not float",
    );
    check(
        &format!("{head}on = [true]\n"),
        "job.toml:3:7: matrix axis 'on': values are strings or integers, not boolean",
    );
    check(
        &format!("{head}host = [\"a\"]\n"),
        "job.toml:3:1: matrix axis 'host' clashes with the built-in placeholder {host}",
    );
    check(
        &format!("{head}\"a-b\" = [\"a\"]\n"),
        "job.toml:3:1: matrix axis 'a-b' is not a shell variable name (letters, digits and '_', not starting with a digit)",
    );
    check(
        &format!("{head}x = [\"a\", \"a\"]\n"),
        "job.toml:3:5: matrix axis 'x' lists the value 'a' twice",
    );
    check(
        &format!("{head}x = [\"a\\u0000\"]\n"),
        "job.toml:3:6: matrix axis 'x': a value cannot contain a NUL character",
    );
    let (_dir, overrides) = job_file(&format!("{head}x = \"a\"\n"));
    assert!(
        error(&overrides).starts_with("job.toml:3:5: invalid type"),
        "{}",
        error(&overrides)
    );
    let (_dir, overrides) = job_file(&format!("{head}x = [\"a\"]\n[matrix.y]\n"));
    assert!(
        error(&overrides).starts_with("job.toml:"),
        "{}",
        error(&overrides)
    );
}

#[test]
fn matrix_default_key_spreads_the_combinations_of_one_item() {
    let overrides = Overrides {
        matrix: cmd(&["x=a,b"]),
        ..with_command("echo {x}")
    };
    let job = run(&overrides).unwrap();
    assert_eq!(job.key_of(&job.tasks[0]), b"\0a");
    assert_eq!(job.key_of(&job.tasks[1]), b"\0b");
    let keyed = Overrides {
        key: Some("k-{x}".into()),
        ..overrides
    };
    let job = run(&keyed).unwrap();
    assert_eq!(job.key_of(&job.tasks[1]), b"k-b");
}

#[test]
fn resource_requests_from_flags_override_the_file() {
    let (_dir, mut overrides) = job_file("command = \"x\"\ncpus = 4\nmem = \"2G\"\ngpus = 1\n");
    let job = run(&overrides).unwrap();
    assert_eq!(
        (job.resources.cpus, job.resources.mem, job.resources.gpus),
        (4, 2 << 30, 1)
    );
    overrides.cpus = Some(2);
    overrides.mem = Some("512M".into());
    overrides.gpus = Some(2);
    let job = run(&overrides).unwrap();
    assert_eq!(
        (job.resources.cpus, job.resources.mem, job.resources.gpus),
        (2, 512 << 20, 2)
    );
    assert!(run(&with_command("x")).unwrap().resources.is_plain());
}

#[test]
fn resource_request_errors() {
    let mut overrides = with_command("x");
    overrides.cpus = Some(0);
    assert_eq!(error(&overrides), "invalid --cpus 0: must be at least 1");
    let (_dir, overrides) = job_file("command = \"x\"\ncpus = 0\n");
    assert!(
        error(&overrides).starts_with("job.toml:2:8: cpus must be at least 1"),
        "{}",
        error(&overrides)
    );
    let (_dir, overrides) = job_file("command = \"x\"\nmem = \"lots\"\n");
    assert!(
        error(&overrides).starts_with("job.toml:2:7: invalid mem 'lots'"),
        "{}",
        error(&overrides)
    );
}

#[test]
fn order_and_name_from_flags_override_the_file() {
    let (_dir, mut overrides) =
        job_file("command = \"x\"\nname = \"sweep\"\norder = \"longest-first\"\n");
    let job = run(&overrides).unwrap();
    assert_eq!(
        (job.name.as_str(), job.order),
        ("sweep", Order::LongestFirst)
    );
    overrides.order = Some("as-listed".into());
    overrides.name = Some("nightly".into());
    let job = run(&overrides).unwrap();
    assert_eq!((job.name.as_str(), job.order), ("nightly", Order::AsListed));
    overrides.order = Some("fast".into());
    assert!(error(&overrides).starts_with("invalid --order 'fast': unknown order"));
    let (_dir, overrides) = job_file("command = \"x\"\norder = \"fast\"\n");
    assert!(
        error(&overrides).starts_with("job.toml:2:9: unknown order 'fast'"),
        "{}",
        error(&overrides)
    );
}

const PIPELINE_HEAD: &str = "[[stage]]\nname = \"prep\"\ncommand = \"true\"\n\n";

#[test]
fn an_unknown_stage_name_points_at_the_dependency() {
    let (_dir, overrides) = job_file(&format!(
        "{PIPELINE_HEAD}[[stage]]\nname = \"work\"\nafter = [\"prep\", \"perp\"]\n"
    ));
    assert_eq!(
        error(&overrides),
        "job.toml:7:18: unknown stage `perp` (stages: prep, work)"
    );
}

#[test]
fn a_stage_cycle_points_at_the_dependency_that_closes_it() {
    let (_dir, overrides) = job_file(
        "[[stage]]\nname = \"a\"\nafter = [\"b\"]\n\n[[stage]]\nname = \"b\"\neach_after = \"a\"\n",
    );
    assert_eq!(
        error(&overrides),
        "job.toml:7:14: stages depend on each other in a cycle: a → b → a"
    );
}

#[test]
fn a_stage_named_twice_is_refused() {
    let (_dir, overrides) = job_file(&format!("{PIPELINE_HEAD}{PIPELINE_HEAD}"));
    assert_eq!(
        error(&overrides),
        "job.toml:6:8: stage `prep` is defined twice"
    );
}

#[test]
fn a_pipeline_numbers_its_tasks_across_stages_each_with_its_own_command_and_matrix() {
    let (_dir, overrides) = job_file(
        "command = \"fallback\"\n\
         [[stage]]\nname = \"prep\"\nitems = [\"a\", \"b\"]\n\n\
         [[stage]]\nname = \"work\"\ncommand = \"train {lr} {}\"\narray = \"1-2\"\n\
         each_after = \"prep\"\n[stage.matrix]\nlr = [\"0.1\"]\n\n\
         [[stage]]\nname = \"reduce\"\ncommand = \"cat\"\nafter = [\"work\"]\n",
    );
    let job = run(&overrides).unwrap();
    assert_eq!(indices(&job), vec![1, 2, 3, 4, 5]);
    assert_eq!(items(&job), vec![&b"a"[..], b"b", b"1", b"2", b""]);
    let rendered: Vec<String> = job
        .tasks
        .iter()
        .map(|t| {
            job.command_of(t.seq).render(&Context {
                item: &t.item,
                seq: t.seq,
                index: t.index,
                host: "h",
                params: &job.values_of(t.seq),
            })
        })
        .collect();
    // prep takes the file's command, items appended; an array appends nothing.
    assert_eq!(
        rendered,
        [
            "fallback a",
            "fallback b",
            "train 0.1 1",
            "train 0.1 2",
            "cat"
        ]
    );
    let stages: Vec<_> = job.tasks.iter().map(|t| job.stage_of(t.seq)).collect();
    assert_eq!(
        stages,
        [
            Some("prep"),
            Some("prep"),
            Some("work"),
            Some("work"),
            Some("reduce")
        ]
    );
    assert_eq!(
        job.matrix_env_of(3),
        vec![("DTS_MATRIX_lr".to_string(), "0.1")]
    );
    let graph = &job.pipeline.as_ref().unwrap().graph;
    assert_eq!(graph.each_predecessor(3), Some(1));
}

#[test]
fn a_stage_adds_its_env_and_replaces_retries_and_timeout_unless_a_flag_gives_them() {
    let text = "retries = 1\ntimeout = \"1m\"\nenv = { A = \"job\", B = \"job\" }\n\
                [[stage]]\nname = \"prep\"\ncommand = \"true\"\nretries = 3\ntimeout = \"5s\"\n\
                env = { B = \"prep\", C = \"prep\" }\n\n\
                [[stage]]\nname = \"work\"\ncommand = \"true\"\nafter = [\"prep\"]\n";
    let (_dir, mut overrides) = job_file(text);
    let job = run(&overrides).unwrap();
    let pairs = |env: &[(String, String)]| -> Vec<String> {
        env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    };
    assert_eq!(pairs(job.env_of(1)), ["A=job", "B=prep", "C=prep"]);
    assert_eq!(pairs(job.env_of(2)), ["A=job", "B=job"]);
    assert_eq!((job.retries_of(1), job.retries_of(2)), (3, 1));
    assert_eq!(job.timeout_of(1), Some(Duration::from_secs(5)));
    assert_eq!(job.timeout_of(2), Some(Duration::from_secs(60)));
    overrides.retries = Some(0);
    overrides.timeout = Some("2s".into());
    let job = run(&overrides).unwrap();
    assert_eq!((job.retries_of(1), job.retries_of(2)), (0, 0));
    assert_eq!(job.timeout_of(1), Some(Duration::from_secs(2)));
}

#[test]
fn a_pipeline_refuses_items_outside_its_stages_and_flags_that_replace_them() {
    let (_dir, overrides) = job_file(&format!("array = \"1-3\"\n{PIPELINE_HEAD}"));
    assert_eq!(
        error(&overrides),
        "job.toml:1:9: `array` belongs in each [[stage]] of a pipeline, not at the top of the file"
    );
    let (_dir, mut overrides) = job_file(PIPELINE_HEAD);
    overrides.items = Some("-".into());
    assert!(error(&overrides).starts_with("--items cannot be used with a [[stage]] pipeline"));
    let (_dir, overrides) = job_file("[[stage]]\nname = \"prep\"\n");
    assert_eq!(
        error(&overrides),
        "job.toml:2:8: stage `prep` has no command, and the file gives none for it to use"
    );
    let (_dir, overrides) = job_file(&format!("{PIPELINE_HEAD}array = \"1-9%2\"\n"));
    assert!(error(&overrides).contains("throttle applies to a whole run"));
}

#[test]
fn each_after_a_stage_of_another_size_points_at_each_after() {
    let (_dir, overrides) = job_file(
        "command = \"x\"\n[[stage]]\nname = \"prep\"\narray = \"1-3\"\n\n\
         [[stage]]\nname = \"work\"\nitems = [\"a\", \"b\"]\neach_after = \"prep\"\n",
    );
    assert_eq!(
        error(&overrides),
        "job.toml:9:14: each_after needs the same number of tasks: stage `work` has 2, `prep` has 3"
    );
}

/// The rendered staging paths of task `seq`, as its stage's templates give them.
fn staged_paths(job: &JobSpec, seq: u32) -> (Vec<String>, Vec<String>, bool) {
    let staging = job.staging_of(seq);
    let (stage, position) = job.pipeline.as_ref().unwrap().locate(seq);
    let names = stage.matrix.names();
    let prepared = crate::staging::Prepared::new(staging, &names).unwrap();
    let task = &job.tasks[seq as usize - 1];
    let params = stage.matrix.values_of(position);
    let ctx = Context {
        item: &task.item,
        seq,
        index: task.index,
        host: "",
        params: &params,
    };
    let plan = prepared.plan(&ctx, 1).unwrap();
    (plan.inputs, plan.returns, plan.cleanup)
}

#[test]
fn a_stage_s_staging_keys_replace_the_job_s_and_its_templates_see_its_own_matrix() {
    let (_dir, overrides) = job_file(
        "cleanup = true\nreturn = [\"out/{}\"]\n\n\
         [[stage]]\nname = \"prep\"\narray = \"1-2\"\ncommand = \"true\"\n\n\
         [[stage]]\nname = \"work\"\ncommand = \"true\"\nafter = [\"prep\"]\n\
         transfer = [\"out/{shard}\"]\nreturn = [\"sums/{shard}-{p}\"]\ncleanup = false\n\
         [stage.matrix]\nshard = [1, 2]\np = [\"x\"]\n",
    );
    let job = run(&overrides).unwrap();
    assert!(job.stages_files());
    // prep has no keys of its own: the job's.
    assert_eq!(staged_paths(&job, 2), (vec![], vec!["out/2".into()], true));
    // work's own, rendered with its axes.
    let work = (vec!["out/2".into()], vec!["sums/2-x".into()], false);
    assert_eq!(staged_paths(&job, 4), work);
    // Saved and built again for `dts retry`, the stage stages alike.
    let saved = job.pipeline.as_ref().unwrap().saved();
    let again = Pipeline::from_saved(&saved).unwrap();
    assert_eq!(
        again.stages[1].staging,
        job.pipeline.as_ref().unwrap().stages[1].staging
    );
}

#[test]
fn a_stage_path_that_leaves_the_task_directory_points_at_the_stage_s_key() {
    let (_dir, overrides) = job_file(&format!(
        "{PIPELINE_HEAD}[[stage]]\nname = \"work\"\ncommand = \"true\"\nafter = [\"prep\"]\n\
         items = [\"ok\", \"../up\"]\ntransfer = [\"in/{{}}\", \"{{}}\"]\n"
    ));
    assert_eq!(
        error(&overrides),
        "job.toml:10:13: stage `work`: task 3: transfer 'in/{}': staged path \"in/../up\" leaves the task directory with `..`"
    );
}

#[test]
fn a_missing_basefile_is_refused_in_a_stage_that_waits_for_nothing_but_not_in_one_that_waits() {
    let missing = "no-such-basefile.dat";
    let (_dir, overrides) = job_file(&format!(
        "[[stage]]\nname = \"prep\"\ncommand = \"true\"\nbasefiles = [\"{missing}\"]\n"
    ));
    let message = error(&overrides);
    assert!(
        message.starts_with("job.toml:4:14: stage `prep`: --basefile"),
        "{message}"
    );
    // A later stage's basefile may be made by the stages it waits for.
    let (_dir, overrides) = job_file(&format!(
        "{PIPELINE_HEAD}[[stage]]\nname = \"work\"\ncommand = \"true\"\nafter = [\"prep\"]\n\
         basefiles = [\"{missing}\"]\n"
    ));
    let job = run(&overrides).unwrap();
    assert_eq!(staged_paths(&job, 2).0, [missing]);
}

#[test]
fn a_stage_that_stages_files_refuses_a_workdir() {
    let (_dir, overrides) = job_file(&format!(
        "workdir = \"/tmp\"\n{PIPELINE_HEAD}[[stage]]\nname = \"work\"\ncommand = \"true\"\n\
         transfer = [\"in\"]\n"
    ));
    assert!(error(&overrides).starts_with("`workdir` and file staging"));
}
