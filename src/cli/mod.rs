//! Command-line definitions (clap) and one file per subcommand. Each subcommand resolves
//! its configuration, runs, and returns the process exit code or a typed error.

pub mod hosts;
pub mod submit;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::error::Error;

const EXIT_CODES: &str = "\
Exit codes:
  0    every task succeeded
  1    some task failed or was cancelled
  2    usage, configuration or inventory error (nothing ran)
  3    no host reachable
  130  interrupted by Ctrl-C or SIGTERM";

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
    /// Probe every host: reachable, latency, cores, load, memory.
    Hosts(HostsArgs),
}

const SUBMIT_EXAMPLES: &str = "\
Examples:
  dts submit --array 1-8 -- 'echo task {} on $(hostname)'
  dts submit -H hosts.toml --array 0-999%50 -- ./work.sh {}
  dts submit -H hosts.toml --items files.txt -- gzip -k {}
  dts submit jobs/hello.toml --retries 2

Placeholders: {} {item} the item, {#} 1-based sequence, {index} array index, {host},
{item/.} without extension, {item/} basename, {item//} dirname.

Exit codes: 0 all succeeded, 1 a task failed, 2 usage/config error, 3 no host reachable,
130 interrupted.";

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Job file (TOML); flags override its values.
    #[arg(value_name = "JOBFILE")]
    pub job_file: Option<PathBuf>,
    /// Host inventory [default: $DTS_HOSTS, ./hosts.toml, $XDG_CONFIG_HOME/dts/hosts.toml, else
    /// the local machine].
    #[arg(short = 'H', long = "hosts", value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// Array indices in Slurm syntax: 0-99, 1-100:3 (step), 0-999%20 (at most 20 at once), 1,5,9-12.
    #[arg(long, value_name = "SPEC", allow_hyphen_values = true)]
    pub array: Option<String>,
    /// Items, one per line, from FILE or - for stdin.
    #[arg(long, value_name = "FILE")]
    pub items: Option<PathBuf>,
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
    /// Seed for random placement, to reproduce a run.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Only use hosts with this label.
    #[arg(long, value_name = "LABEL")]
    pub constraint: Option<String>,
    /// Time between TERM and KILL when a task is killed.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub kill_grace: Duration,
    /// Command after `--`: one argument is a shell command line, several are an exact argv.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HostsArgs {
    /// Host inventory (same lookup as `dts submit`).
    #[arg(short = 'H', long = "hosts", value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 500ms, 5s, 2m)"))
}

/// Runs the parsed command; returns the exit code.
pub fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Commands::Submit(args) => submit::run(*args),
        Commands::Hosts(args) => hosts::run(args),
    }
}
