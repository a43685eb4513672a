//! GNU parallel's `--joblog` format, so tooling written for it keeps working: a header,
//! then one tab-separated line per finished attempt.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::transport::ExitStatus;

pub const HEADER: &str =
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";

/// One finished attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    pub seq: u32,
    pub host: &'a str,
    /// Epoch seconds.
    pub start: f64,
    pub runtime: f64,
    pub received: u64,
    pub status: Option<&'a ExitStatus>,
    pub command: &'a str,
}

/// The line for one entry: like GNU parallel, a job killed by a signal has exit value 0
/// and the signal's number; commands are written on one line.
pub fn line(e: &Entry<'_>) -> String {
    let (exitval, signal) = match e.status {
        Some(ExitStatus::Code(code)) => (*code, 0),
        Some(ExitStatus::Signal(name)) => (0, signal_number(name)),
        None => (-1, 0),
    };
    format!(
        "{}\t{}\t{:.3}\t{:.3}\t0\t{}\t{exitval}\t{signal}\t{}\n",
        e.seq,
        e.host,
        e.start,
        e.runtime,
        e.received,
        e.command.replace('\n', " ")
    )
}

/// Signal numbers as Linux numbers them (sshd reports names).
pub fn signal_number(name: &str) -> i32 {
    match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        other => other.parse().unwrap_or(-1),
    }
}

/// Opens the joblog for appending, writing the header when the file is new or empty.
pub fn open(path: &Path) -> std::io::Result<File> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    if file.metadata()?.len() == 0 {
        file.write_all(HEADER.as_bytes())?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_gnu_parallel() {
        let ok = ExitStatus::Code(0);
        let e = Entry {
            seq: 3,
            host: "h1",
            start: 1_764_000_000.123_45,
            runtime: 0.5,
            received: 12,
            status: Some(&ok),
            command: "echo 'a\nb'",
        };
        assert_eq!(
            line(&e),
            "3\th1\t1764000000.123\t0.500\t0\t12\t0\t0\techo 'a b'\n"
        );
        let killed = ExitStatus::Signal("KILL".into());
        let e = Entry {
            status: Some(&killed),
            ..e
        };
        assert!(line(&e).contains("\t0\t9\t"));
    }

    #[test]
    fn header_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        drop(open(&path).unwrap());
        let mut f = open(&path).unwrap();
        f.write_all(b"x\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}x\n")
        );
    }
}
