//! The `dts` binary: parse arguments, run the command, map errors to exit codes.

use clap::Parser;

fn main() {
    // `dts cancel/pause/resume` announce requests with SIGUSR1; until the dispatcher takes
    // the signal over, ignore it rather than die (its one-second poll still sees them).
    // SAFETY: setting a signal disposition at start-up, before any thread exists.
    unsafe { libc::signal(libc::SIGUSR1, libc::SIG_IGN) };
    let cli = dts::cli::Cli::parse();
    if !cli.command.reaches_hosts() {
        // A closed stdout (`dts status | head`) ends the command quietly, as it ends `cat`,
        // instead of a panic in `println!`. A command that reaches hosts keeps SIGPIPE
        // ignored: a closed stdout stops its output there, not the run (libssh2 sends with
        // MSG_NOSIGNAL, but pipes to child processes have no such flag).
        // SAFETY: setting a signal disposition at start-up, before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    init_tracing(cli.verbose);
    let code = match dts::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("dts: error: {error}");
            error.exit_code()
        }
    };
    std::process::exit(code);
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DTS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("dts={level}")));
    use std::io::IsTerminal;
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
