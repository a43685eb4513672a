//! Command-line definitions (clap) and one file per subcommand. Each subcommand resolves
//! its configuration, runs, and returns the process exit code or a typed error.

pub mod clean;
pub mod control;
pub mod hosts;
mod learned;
pub mod logs;
pub mod output_paths;
pub mod report;
pub mod retry;
pub mod session;
pub mod simulate;
pub mod status;
pub mod submit;
pub mod wrapper;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::error::Error;
use crate::report::progress::ProgressFlag;
use crate::runner::output::OutputMode;

const EXIT_CODES: &str = "\
Exit codes:
  0    every task succeeded
  1    some task failed, was cancelled or did not run
  2    usage, configuration or inventory error (nothing ran)
  3    no host reachable
  4    the run store could not be written (disk full, run directory removed) or read
       (damaged): dispatch stopped and running tasks were killed; dts retry RUN finishes
       the run once the store is fixed, without re-running recorded successes
  130  interrupted by Ctrl-C, SIGTERM or SIGHUP (terminal closed)";

/// Run job arrays across SSH hosts, place every task with a chosen algorithm, and report how
/// well the work was balanced.
#[derive(Debug, Parser)]
#[command(name = "dts", version, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    /// More diagnostics on stderr (-v, -vv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Run a job array across the hosts.
    #[command(after_help = SUBMIT_EXAMPLES)]
    Submit(Box<SubmitArgs>),
    /// Recent runs, newest first; or one run's state, hosts, running tasks and figures.
    Status(StatusArgs),
    /// A task's output (stdout, or --stderr), or every task's output in order.
    Logs(LogsArgs),
    /// Stop a run: no new tasks start and running ones are killed on their hosts.
    Cancel(RunArg),
    /// Stop starting new tasks; running ones finish.
    Pause(RunArg),
    /// Start tasks again after `dts pause`.
    Resume(RunArg),
    /// A run's report: the end-of-run summary, or with --html a self-contained HTML page
    /// (timeline per host slot, utilisation over time, run-time histogram, figures).
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Finish a run that was interrupted, cancelled or failed, under the same run id.
    Retry(RetryArgs),
    /// Remove old or damaged runs from the state directory.
    Clean(CleanArgs),
    /// Probe every host: reachable, latency, cores, load, memory.
    Hosts(HostsArgs),
    /// Compare the placement algorithms on a simulated cluster (no hosts needed).
    #[command(after_help = SIMULATE_EXAMPLES)]
    Simulate(SimulateArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `dts man | man -l -`; `dts man submit` prints
    /// dts-submit(1), and so on for every command the page lists.
    Man {
        /// The command whose page to print [default: dts(1)].
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
    },
    /// Print the command line dts sends to a host for CMD, wrapper included (for benchmarks;
    /// of the DTS_* variables only DTS_TASK_ID is set).
    #[command(hide = true)]
    Wrapper {
        /// The login shell of the host (POSIX shells run the wrapper directly).
        #[arg(long, default_value = "/bin/sh")]
        shell: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// The background coordinator of a run (started by --detach).
    #[command(hide = true)]
    Coordinate(RunArg),
}

impl Commands {
    /// Whether the command talks to hosts (runs tasks or probes): it keeps SIGPIPE ignored,
    /// so that a closed stdout stops only its output (a run goes on) and a connection or
    /// child process that dies mid-write is an error it handles, never a silent death. Its
    /// results go through [`print_result`].
    pub fn reaches_hosts(&self) -> bool {
        matches!(
            self,
            Commands::Submit(_) | Commands::Retry(_) | Commands::Coordinate(_) | Commands::Hosts(_)
        )
    }
}

/// Prints `text` on stdout for a command that reaches hosts, where SIGPIPE stays ignored: a
/// closed stdout (`dts hosts | head`) is not worth a panic there, and changes nothing else.
pub fn print_result(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// A run: its id, a unique prefix or suffix of it, or `last`.
#[derive(Debug, Args)]
pub struct RunArg {
    /// Run id, a unique part of it (prefix or suffix), or `last`.
    #[arg(value_name = "RUN")]
    pub run: String,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Run id, a unique part of it, or `last` [default: list recent runs].
    #[arg(value_name = "RUN")]
    pub run: Option<String>,
    /// Redraw every second until the run ends.
    #[arg(long, requires = "run")]
    pub watch: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Run id, a unique part of it, or `last`.
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Task index (as in `[host INDEX]`) [default: every task, in order, with headers].
    #[arg(value_name = "TASK")]
    pub task: Option<u64>,
    /// Show stderr instead of stdout.
    #[arg(long)]
    pub stderr: bool,
    /// Which attempt of the task (1 is the first) [default: the latest].
    #[arg(long, value_name = "N", requires = "task")]
    pub attempt: Option<u32>,
    /// Keep printing while the task runs: wait for a queued task to start and follow each of
    /// its attempts (retries included) until it has its final outcome; with --attempt, that
    /// attempt only.
    #[arg(long, short = 'f', requires = "task")]
    pub follow: bool,
}

const REPORT_EXAMPLES: &str = "\
Examples:
  dts report last                         the end-of-run summary of the latest run
  dts report last --html run.html         the page, for a browser (works offline)
  dts report 0731 --html - | gzip > run.html.gz";

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run id, a unique part of it, or `last`; during the run or after it.
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Write a self-contained HTML page about the run to FILE (- for stdout).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Run id, a unique part of it, or `last`.
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Only tasks that failed or timed out (not cancelled or never run).
    #[arg(long)]
    pub failed: bool,
    /// Run in the background; print the run id (with --json as `{"run_id": ...}`).
    #[arg(long)]
    pub detach: bool,
    #[command(flatten)]
    pub display: DisplayArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).multiple(true).args(["older_than", "damaged"]))]
pub struct CleanArgs {
    /// Remove runs created longer ago than this (e.g. 7d, 12h), damaged ones included.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Option<Duration>,
    /// Remove runs whose store cannot be read (`damaged` in dts status), whatever their age.
    #[arg(long)]
    pub damaged: bool,
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

const SIMULATE_EXAMPLES: &str = "\
Examples:
  dts simulate                                      8 hosts x 8 slots, 10000 exponential tasks
  dts simulate --hosts 4x8,4x8@0.5 --dist lognormal:0,1
  dts simulate --hosts 16x4 --tasks 100000 --keys 500 --algo consistent-hash --json

Distributions (task length in seconds on a speed-1 host): const:D, uniform:LO,HI, exp:MEAN,
lognormal:MU,SIGMA, pareto:ALPHA,XMIN.";

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Algorithm to simulate, or all.
    #[arg(long, value_name = "ALGO", default_value = "all")]
    pub algo: String,
    /// Tasks, all submitted at once.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub tasks: usize,
    /// Hosts: COUNTxSLOTS[@SPEED][+LOAD], comma separated (e.g. 4x8,4x8@0.5, 2x16+3).
    #[arg(long, value_name = "SPEC", default_value = "8x8")]
    pub hosts: String,
    /// Task-length distribution.
    #[arg(long, value_name = "DIST", default_value = "exp")]
    pub dist: String,
    /// Distinct keys for consistent-hash (tasks cycle over them) [default: one per task].
    #[arg(long, value_name = "N")]
    pub keys: Option<usize>,
    /// Seed for task lengths and random placement.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Consistent-hash load bound.
    #[arg(long, value_name = "E", default_value_t = 0.25)]
    pub epsilon: f64,
    /// Average over N runs with seeds SEED, SEED+1, ... (new task lengths each run).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub repeat: u64,
    /// Simulate `dts submit --speculate FACTOR`: once nothing is queued, copy tasks running
    /// FACTOR times the median (default 3) to another free host; the first copy to end wins.
    #[arg(long, value_name = "FACTOR", num_args = 0..=1, default_missing_value = "3")]
    pub speculate: Option<f64>,
    /// Start order: as-listed, or longest-first with every task's length known exactly
    /// (what `dts submit --order longest-first` gets from earlier runs).
    #[arg(long, value_name = "ORDER", default_value = "as-listed")]
    pub order: String,
    /// Every task's length known exactly, as a named job's earlier runs give it, whatever
    /// the order: least-load keeps long tasks off slow hosts (implied by longest-first).
    #[arg(long)]
    pub known: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

const SUBMIT_EXAMPLES: &str = "\
Examples:
  dts submit --array 1-8 -- 'echo task {} on $(hostname)'
  dts submit -H hosts.toml --array 0-999%50 -- ./work.sh {}
  dts submit -H hosts.toml --items files.txt -- gzip -k {}
  dts submit -w '8/alice@node[01-16],4/gpu1' --array 0-999 -- ./work.sh {}
  dts submit jobs/hello.toml --retries 2
  dts submit --matrix lr=0.1,0.01 --matrix depth=2,4 -- ./train.py --lr {lr} --depth {depth}

Placeholders: {} {item} the item, {#} 1-based sequence, {index} task index (array index, or
1-based item number), {host}, {NAME} matrix axis NAME, {item/.} without extension, {item/}
basename, {item//} dirname.
A command without any placeholder gets the item appended, quoted, as in GNU parallel.

Exit codes: 0 all succeeded, 1 a task failed, 2 usage/config error, 3 no host reachable,
4 run store failed, 130 interrupted (Ctrl-C, SIGTERM, SIGHUP).";

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Job file (TOML); flags override its values.
    #[arg(value_name = "JOBFILE")]
    pub job_file: Option<PathBuf>,
    /// Host inventory [default: $DTS_HOSTS, ./hosts.toml, $XDG_CONFIG_HOME/dts/hosts.toml, else
    /// the local machine].
    #[arg(short = 'H', long = "hosts", value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    #[command(flatten)]
    pub reach: ReachArgs,
    /// Array indices in Slurm syntax: 0-99, 1-100:3 (step), 0-999%20 (at most 20 at once), 1,5,9-12.
    #[arg(long, value_name = "SPEC", allow_hyphen_values = true)]
    pub array: Option<String>,
    /// Items, one per line, from FILE or - for stdin.
    #[arg(long, value_name = "FILE")]
    pub items: Option<PathBuf>,
    /// Items in --items are separated by NUL bytes (like xargs -0), so they may hold newlines.
    #[arg(short = '0', long = "null", requires = "items")]
    pub null: bool,
    /// Matrix axis NAME=v1,v2,... (repeatable): tasks are the product of the axes, the first
    /// slowest, times the items; {NAME} and DTS_MATRIX_NAME hold the value. Replaces the job
    /// file's [matrix].
    #[arg(long, value_name = "NAME=V1,V2")]
    pub matrix: Vec<String>,
    /// Start no task on a host whose background load1 per core (dts's own tasks taken out)
    /// is above MAX in its latest probe, as GNU parallel --load; running tasks go on.
    #[arg(long, value_name = "MAX")]
    pub load: Option<String>,
    /// Start no task on a host with less than SIZE memory available in its latest probe
    /// (512M, 1G, 100k; bytes without a suffix), as GNU parallel --memfree.
    #[arg(long, value_name = "SIZE")]
    pub memfree: Option<String>,
    /// Each task takes N of its host's slots (slots default to the host's cores).
    #[arg(long, value_name = "N")]
    pub cpus: Option<u32>,
    /// Each task needs SIZE memory (4G, 512M): a host runs it only while its memory (the
    /// inventory's `mem`, else the probed available) minus what running tasks asked covers it.
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
    /// Each task holds N distinct GPUs of its host (inventory `gpus = 4`), exported as
    /// CUDA_VISIBLE_DEVICES and DTS_GPUS.
    #[arg(long, value_name = "N")]
    pub gpus: Option<u32>,
    /// Starting order: as-listed, or longest-first (the longest times earlier runs of the
    /// same --name recorded start first; tasks never seen count as the mean) [default: as-listed].
    #[arg(long, value_name = "ORDER")]
    pub order: Option<String>,
    /// The job's name (the job file's `name`; default: the job file's or the command's name):
    /// run times are recorded per name and task, for --order longest-first.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Copy this file (or directory) to the task's host before it runs, at the same relative
    /// path in the task's directory there; rendered per task (`--tf {}`). Repeatable.
    #[arg(long = "transfer-file", visible_alias = "tf", value_name = "TEMPLATE")]
    pub transfer: Vec<String>,
    /// Bring this file (or directory) back after the task succeeds, to the same relative
    /// path here; rendered per task (`--return {}.out`). Repeatable.
    #[arg(long = "return", value_name = "TEMPLATE")]
    pub returns: Vec<String>,
    /// Remove on the host what a task staged and made, after it (and the run's directory
    /// at the end).
    #[arg(long)]
    pub cleanup: bool,
    /// Same as --tf {} --return TEMPLATE --cleanup. Repeatable.
    #[arg(long, value_name = "TEMPLATE")]
    pub trc: Vec<String>,
    /// Copy FILE to every host once, before its first task (in each task's directory).
    /// Repeatable.
    #[arg(long = "basefile", visible_alias = "bf", value_name = "FILE")]
    pub basefiles: Vec<String>,
    /// Placement: random, round-robin, least-load or consistent-hash [default: round-robin].
    #[arg(long = "algo", value_name = "ALGO")]
    pub algorithm: Option<String>,
    /// What consistent-hash hashes [default: {item}].
    #[arg(long, value_name = "TEMPLATE")]
    pub key: Option<String>,
    /// Concurrent tasks per host, overriding the inventory.
    #[arg(long, value_name = "N")]
    pub slots: Option<u32>,
    /// Retries for a task that fails (lost hosts are requeued without using one).
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Kill a task that runs longer than this (e.g. 90s, 10m).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Seed for random placement (printed when drawn). The same seed places tasks the same
    /// way only while every task fits at once: later tasks go where slots happen to free.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Only use hosts with this label.
    #[arg(long, value_name = "LABEL")]
    pub constraint: Option<String>,
    /// Consistent-hash load bound: a host takes at most ⌈(1+E)·fair share⌉ of the tasks.
    #[arg(long, value_name = "E", default_value_t = 0.25)]
    pub epsilon: f64,
    /// How often hosts are probed for load during a run (0 to probe only at connect).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub probe_interval: Duration,
    /// Print the plan (which host runs which task) without running anything; with --json,
    /// the plan as JSON.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: do not connect to the hosts (slots come from the inventory).
    #[arg(long, requires = "dry_run")]
    pub no_probe: bool,
    #[command(flatten)]
    pub display: DisplayArgs,
    /// Write a JUnit XML report (one test case per task) to FILE when the run ends.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the run's HTML report (timeline, utilisation, figures: dts report --html) to
    /// FILE when the run ends.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Run in the background (own session, output in the run directory); print the run id
    /// (with --json as `{"run_id": ...}`).
    #[arg(long, conflicts_with = "dry_run")]
    pub detach: bool,
    /// Append a GNU parallel-style joblog (Seq = task index, Host, Starttime, JobRuntime,
    /// ...) to FILE; `-` for stdout.
    #[arg(long, value_name = "FILE")]
    pub joblog: Option<PathBuf>,
    /// Wait this long before a failed task runs again.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub retry_delay: Duration,
    /// Start a second copy of a task running FACTOR times longer than the median (default 3),
    /// once nothing is queued and slots are free; the first copy to succeed wins. The factor
    /// takes `=` (`--speculate=2`), so `--speculate job.toml` leaves the job file alone.
    #[arg(
        long,
        value_name = "FACTOR",
        num_args = 0..=1,
        default_missing_value = "3",
        require_equals = true
    )]
    pub speculate: Option<f64>,
    /// Pass this variable from dts's environment to every task without ever writing it down
    /// (not in the run store, not on a command line). Repeatable.
    #[arg(long, value_name = "NAME")]
    pub secret_env: Vec<String>,
    /// Check a connection silent this long...
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub keepalive: Duration,
    /// ...and give the host up after this many silent intervals.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub keepalive_count: u32,
    /// Quarantine a host after this many connection failures...
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub quarantine_after: u32,
    /// ...within this window (it is retried now and then and rejoins when it answers).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub quarantine_window: Duration,
    /// Time between TERM and KILL when a task is killed.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub kill_grace: Duration,
    /// Command after `--`: one argument is a shell command line, several are an exact argv.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// How a run shows itself on the terminal.
#[derive(Debug, Args)]
pub struct DisplayArgs {
    /// Task output: tagged `[host index] line`, grouped per task when it ends, raw lines,
    /// or none (it is always in the run store: dts logs).
    #[arg(long, value_enum, value_name = "MODE", default_value = "tagged")]
    pub output: OutputMode,
    /// Live progress on stderr: bars on a terminal and plain lines otherwise (auto), or as
    /// asked.
    #[arg(long, value_enum, value_name = "MODE", default_value = "auto")]
    pub progress: ProgressFlag,
    /// No progress, notes or end report on stderr; errors still print.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Print the run document as JSON on stdout at the end (task output then goes only to
    /// the run store).
    #[arg(long)]
    pub json: bool,
}

impl DisplayArgs {
    pub fn session(&self) -> session::Display {
        session::Display {
            output: self.output,
            progress: self.progress,
            quiet: self.quiet,
            json: self.json,
        }
    }
}

#[derive(Debug, Args)]
pub struct HostsArgs {
    /// Host inventory (same lookup as `dts submit`).
    #[arg(short = 'H', long = "hosts", value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    #[command(flatten)]
    pub reach: ReachArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Which hosts a command reaches and how: sshlogins instead of the inventory, and the
/// OpenSSH configuration their names resolve through.
#[derive(Debug, Args)]
pub struct ReachArgs {
    /// Hosts as GNU parallel sshlogins, replacing the inventory's: `[N/][user@]host[:port]`,
    /// comma-separated, nodesets allowed (`8/alice@node[01-16],4/gpu1`; `:` is this machine).
    /// [defaults] from -H still apply. Repeatable.
    #[arg(
        short = 'w',
        long = "sshlogin",
        short_alias = 'S',
        value_name = "LIST",
        conflicts_with = "login_file"
    )]
    pub host_list: Vec<String>,
    /// Hosts from a file of sshlogins, one per line (`#` comments), replacing the inventory's.
    #[arg(long = "slf", visible_alias = "sshloginfile", value_name = "FILE")]
    pub login_file: Option<PathBuf>,
    /// OpenSSH client configuration to resolve host names with, as `ssh -F FILE`
    /// [default: [defaults] ssh_config, else ~/.ssh/config when it exists].
    #[arg(short = 'F', long = "ssh-config", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
}

impl ReachArgs {
    /// The inventory request with `hosts` (`-H`).
    pub fn request(&self, hosts: Option<&std::path::Path>) -> crate::inventory::Request {
        crate::inventory::Request {
            hosts_file: hosts.map(std::path::Path::to_path_buf),
            ssh_config: self.ssh_config.clone(),
            host_list: (!self.host_list.is_empty()).then(|| self.host_list.join(",")),
            login_file: self.login_file.clone(),
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 500ms, 5s, 2m)"))
}

/// The man page of dts, or of one of its commands (`dts-submit(1)`, as dts(1) lists them).
fn man_page(command: Option<&str>) -> Result<clap_mangen::Man, Error> {
    use clap::CommandFactory;
    let mut cli = Cli::command().disable_help_subcommand(true);
    let Some(name) = command else {
        return Ok(clap_mangen::Man::new(cli));
    };
    // Building names each command `dts-NAME`, the title its page goes by.
    cli.build();
    let pages: Vec<&clap::Command> = cli.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    match pages.iter().find(|c| c.get_name() == name) {
        Some(page) => Ok(clap_mangen::Man::new((*page).clone())),
        None => {
            let names: Vec<&str> = pages.iter().map(|c| c.get_name()).collect();
            Err(Error::Usage(format!(
                "no man page for '{name}'; the commands are: {}",
                names.join(", ")
            )))
        }
    }
}

/// Runs the parsed command; returns the exit code.
pub fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Commands::Submit(args) => submit::run(*args),
        Commands::Status(args) => status::run(args),
        Commands::Logs(args) => logs::run(args),
        Commands::Cancel(arg) => control::run(control::Request::Cancel, &arg.run),
        Commands::Pause(arg) => control::run(control::Request::Pause, &arg.run),
        Commands::Resume(arg) => control::run(control::Request::Resume, &arg.run),
        Commands::Report(args) => report::run(args),
        Commands::Retry(args) => retry::run(args),
        Commands::Clean(args) => clean::run(args),
        Commands::Coordinate(arg) => {
            let state = crate::store::StateDir::locate(&crate::store::StateEnv::from_process())?;
            let writer = crate::store::RunWriter::open(&state, &arg.run)?;
            let spec = writer.spec()?;
            let outcome = session::run(writer, &session::Display::detached());
            // A detached run's Slurm allocation was handed to this coordinator.
            crate::transport::slurm::release_saved(&spec.hosts, spec.slurm.as_ref());
            outcome
        }
        Commands::Hosts(args) => hosts::run(args),
        Commands::Wrapper { shell, command } => wrapper::run(&shell, &command),
        Commands::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "dts", &mut std::io::stdout());
            Ok(crate::error::exit::SUCCESS)
        }
        Commands::Man { command } => {
            let page = man_page(command.as_deref())?;
            match page.render(&mut std::io::stdout()) {
                // `dts man | head` closing the pipe early is fine.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(Error::Runtime(format!("writing the man page: {e}")))
                }
                _ => Ok(crate::error::exit::SUCCESS),
            }
        }
        Commands::Simulate(args) => simulate::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submit(args: &[&str]) -> SubmitArgs {
        let cli = Cli::try_parse_from([&["dts", "submit"], args].concat()).unwrap();
        match cli.command {
            Commands::Submit(args) => *args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn speculate_does_not_take_the_job_file_as_its_factor() {
        let args = submit(&["--speculate", "job.toml"]);
        assert_eq!(args.speculate, Some(3.0));
        assert_eq!(args.job_file, Some(PathBuf::from("job.toml")));
        let args = submit(&["job.toml", "--speculate=2.5"]);
        assert_eq!(args.speculate, Some(2.5));
        assert_eq!(args.job_file, Some(PathBuf::from("job.toml")));
        assert_eq!(submit(&["job.toml"]).speculate, None);
    }
}
