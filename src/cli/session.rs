//! A coordinator session: whatever started it (a foreground `submit`, a detached
//! coordinator, `retry`), it runs the tasks the store has queued with the run's saved spec,
//! prints the summary and maps the outcome to an exit code.

use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::learned;
use crate::error::{Error, exit};
use crate::placement::Algorithm;
use crate::report::progress::{self, ProgressFlag};
use crate::report::{document, end, junit};
use crate::runner::output::OutputMode;
use crate::runner::{self, RunConfig, RunOutcome, Stop};
use crate::store::{self, RunWriter, StateDir, reader};

/// How long `--detach` waits for the background coordinator to take over the run.
const DETACH_TIMEOUT: Duration = Duration::from_secs(10);

/// How a session shows itself.
#[derive(Debug, Clone)]
pub struct Display {
    pub output: OutputMode,
    pub progress: ProgressFlag,
    pub quiet: bool,
    /// The run document on stdout at the end (task output then only goes to the store).
    pub json: bool,
}

impl Display {
    /// A detached coordinator: nothing on a terminal, notes and the report in its log.
    pub fn detached() -> Display {
        Display {
            output: OutputMode::None,
            progress: ProgressFlag::None,
            quiet: false,
            json: false,
        }
    }
}

/// Runs the queued tasks of the run `writer` holds, then reports.
pub fn run(mut writer: RunWriter, display: &Display) -> Result<i32, Error> {
    let spec = writer.spec()?;
    let queued = writer.queued_tasks()?;
    let total = writer.total()?;
    let left_out = writer.left_out()?;
    let dir = writer.dir().to_path_buf();
    let (tasks, prior_attempts): (Vec<_>, Vec<_>) = queued.into_iter().unzip();
    let job = spec.job(tasks)?;
    let secrets = secret_values(&spec.secret_env)?;
    let stderr_is_terminal = std::io::stderr().is_terminal();
    if display.progress == ProgressFlag::Bars && !stderr_is_terminal && !display.quiet {
        eprintln!("dts: {}", progress::BARS_NEED_A_TERMINAL);
    }
    let hosts = learned::measured_speeds(&job.name, &dir, &spec.hosts);
    let config = RunConfig {
        run_id: writer.id().to_string(),
        total_tasks: total,
        left_out,
        prior_attempts,
        hosts: hosts.iter().cloned().map(Arc::new).collect(),
        secrets,
        spec: spec.clone(),
        output: if display.json {
            OutputMode::None
        } else {
            display.output
        },
        progress: progress::Mode::resolve(display.progress, display.quiet, stderr_is_terminal),
        quiet: display.quiet,
        queue_order: learned::queue_order(&job, &dir, display.quiet),
        earlier: match job.pipeline {
            Some(_) => earlier(&writer, &spec.hosts)?,
            None => runner::Earlier::default(),
        },
        known_work: learned::known_work(&job, &dir, |name| {
            hosts
                .iter()
                .find(|h| h.name == name)
                .map_or(1.0, |h| h.weight)
        }),
        job,
    };
    let keys = learned::keys(&config.job);
    let host_names: Vec<String> = spec.hosts.iter().map(|h| h.name.clone()).collect();
    if !display.quiet {
        announce(&config);
    }
    writer.begin_session(store::epoch_now())?;
    let id = writer.id().to_string();
    let outcome = runner::run(config, writer)?;
    learned::record(&spec.name, &keys, &host_names, &outcome, &dir);
    let reported = report(&dir, &spec, display);
    if let Some(why) = &outcome.store_error {
        // The report may not be readable (the run directory was removed): the stop is what
        // matters.
        if let Err(e) = reported {
            eprintln!("dts: cannot report the run: {e}");
        }
        eprintln!(
            "dts: run {id} stopped because its store failed ({why}); what was recorded is kept: once the store is fixed, dts retry {id} finishes the run without re-running recorded successes"
        );
        return Ok(exit::STORE);
    }
    let code = exit_code(&outcome)?;
    match reported {
        Ok(()) => Ok(code),
        // The tasks ran: say what could not be written, and never exit 0 or 2 for it.
        Err(e) => {
            eprintln!("dts: error: {e}");
            Ok(code.max(exit::TASK_FAILED))
        }
    }
}

/// What earlier sessions of a pipeline's run left: the tasks this one cannot run, and the
/// hosts (of this run's, by name) the successful ones ran on.
fn earlier(writer: &RunWriter, hosts: &[crate::inventory::Host]) -> Result<runner::Earlier, Error> {
    let position = |name: &str| hosts.iter().position(|h| h.name == name);
    let ran_on = writer
        .succeeded_hosts()?
        .into_iter()
        .filter_map(|(seq, host)| Some((seq, position(&host)?)))
        .collect();
    Ok(runner::Earlier {
        unrunnable: writer.unsucceeded_left_out()?,
        ran_on,
    })
}

/// The end report on stderr (or the JSON document on stdout) and the JUnit file.
fn report(dir: &Path, spec: &crate::store::RunSpec, display: &Display) -> Result<(), Error> {
    if display.quiet && !display.json && spec.junit.is_none() && spec.html.is_none() {
        return Ok(());
    }
    let detail = reader::detail_in(dir)?;
    let stats = detail.stats();
    let doc = document::build(&detail, &stats, store::epoch_now(), |t| {
        detail.last_stderr_line(t)
    });
    let staged = crate::staging::relay::read_stats(dir);
    if display.json {
        let mut value = serde_json::to_value(&doc).expect("documents serialise");
        if let (Some(staged), Some(map)) = (&staged, value.as_object_mut()) {
            map.insert("staging".into(), serde_json::json!({ "hosts": staged }));
        }
        let json = serde_json::to_string_pretty(&value).expect("documents serialise");
        super::print_result(&format!("{json}\n"));
    } else if !display.quiet {
        let mut text = end::render(&doc);
        if let Some(staged) = &staged {
            text.push_str(&crate::staging::relay::render_stats(staged));
        }
        // Not `eprint!`: after SIGHUP the terminal may be gone, and the run is recorded anyway.
        let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
    }
    if let Some(path) = &spec.junit {
        let xml = junit::render(&detail, |t| detail.stderr_tail(t, 4096));
        std::fs::write(path, xml).map_err(|e| {
            Error::Runtime(format!(
                "cannot write the JUnit report {}: {e}",
                path.display()
            ))
        })?;
    }
    if let Some(path) = &spec.html {
        super::report::write_page(path, &detail, doc, store::epoch_now())?;
    }
    Ok(())
}

/// Values of the secret variables from our environment; each must be set.
pub fn secret_values(names: &[String]) -> Result<Vec<(String, String)>, Error> {
    names
        .iter()
        .map(|name| match std::env::var(name) {
            Ok(value) if !value.contains('\n') => Ok((name.clone(), value)),
            Ok(_) => Err(Error::Usage(format!("secret variable {name} holds a newline; dts passes secrets one per line"))),
            Err(_) => Err(Error::Usage(format!(
                "secret variable {name} is not set in dts's environment (secrets are never saved: set it again for retries)"
            ))),
        })
        .collect()
}

fn announce(config: &RunConfig) {
    let job = &config.job;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut line = format!(
        "dts: run {}: {} task{} on {} host{} ({}",
        config.run_id,
        job.tasks.len(),
        plural(job.tasks.len()),
        config.hosts.len(),
        plural(config.hosts.len()),
        job.algorithm,
    );
    if job.algorithm == Algorithm::Random {
        line.push_str(&format!(", seed {}", config.spec.seed));
    }
    line.push(')');
    eprintln!("{line}");
}

/// 0 every task of the run succeeded, 1 a task failed, was cancelled or did not run,
/// 3 no host, 4 the store failed, 130 interrupted.
pub fn exit_code(outcome: &RunOutcome) -> Result<i32, Error> {
    match outcome.stopped {
        Some(Stop::StoreFailed) => return Ok(exit::STORE),
        Some(Stop::Interrupted) => return Ok(exit::INTERRUPTED),
        Some(Stop::Cancelled) => return Ok(exit::TASK_FAILED),
        None => {}
    }
    if outcome.no_host {
        let errors = outcome
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    h.error.clone().unwrap_or_else(|| "unreachable".into()),
                )
            })
            .collect();
        return Err(Error::NoHostReachable(errors));
    }
    Ok(if outcome.all_succeeded() {
        exit::SUCCESS
    } else {
        exit::TASK_FAILED
    })
}

/// What `--detach` prints once the coordinator holds the run: `note` on stderr (unless
/// `--quiet`) and the run id on stdout, as `{"run_id": ...}` with `--json`.
pub fn detached(id: &str, note: &str, display: &Display) {
    if !display.quiet {
        eprintln!("dts: {note}");
    }
    let text = if display.json {
        serde_json::json!({ "run_id": id }).to_string()
    } else {
        id.to_string()
    };
    super::print_result(&format!("{text}\n"));
}

/// Starts a coordinator for run `id` in the background, in its own session with its output
/// in the run directory, and waits until it holds the run.
pub fn detach(state: &StateDir, id: &str) -> Result<(), Error> {
    let dir = state.run_dir(id);
    let log_path = dir.join(store::COORDINATOR_LOG);
    let io = |source| Error::ReadFile {
        path: log_path.clone(),
        source,
    };
    let log = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(io)?
    };
    let exe = std::env::current_exe()
        .map_err(|e| Error::Runtime(format!("cannot find the dts binary: {e}")))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("coordinate")
        .arg(id)
        .env("DTS_STATE_DIR", state.root())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io)?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the child leaves our session so closing the
    // terminal does not reach it.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| Error::Runtime(format!("cannot start the background coordinator: {e}")))?;
    let deadline = Instant::now() + DETACH_TIMEOUT;
    while !store::coordinator_alive(&dir) {
        if let Ok(Some(status)) = child.try_wait() {
            let said = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(Error::Runtime(format!(
                "the background coordinator exited ({status}) before starting: {} (log: {})",
                said.trim(),
                log_path.display()
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::Runtime(format!(
                "the background coordinator did not start within {}s; see {}",
                DETACH_TIMEOUT.as_secs(),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
