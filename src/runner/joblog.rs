//! GNU parallel's `--joblog` format, so tooling written for it keeps working: a header,
//! then one tab-separated line per finished attempt, in a file or (`--joblog -`) on stdout.
//! Seq is the task index, the number tasks go by everywhere (`[host index]`, `dts logs`,
//! `DTS_TASK_ID`).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::transport::ExitStatus;

pub const HEADER: &str =
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";

/// The `--joblog` value that means stdout, as in GNU parallel.
pub const STDOUT: &str = "-";

/// One finished attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    /// The task index.
    pub seq: u64,
    pub host: &'a str,
    /// Epoch seconds.
    pub start: f64,
    pub runtime: f64,
    pub received: u64,
    pub status: Option<&'a ExitStatus>,
    /// Killed by `--timeout`.
    pub timed_out: bool,
    pub command: &'a str,
}

/// The line for one entry: like GNU parallel, a job killed by a signal has exit value 0
/// and the signal's number, a job killed for its timeout exit value -1 (and the signal);
/// commands are written on one line.
pub fn line(e: &Entry<'_>) -> String {
    let (exitval, signal) = match e.status {
        Some(ExitStatus::Signal(name)) if e.timed_out => (-1, signal_number(name)),
        _ if e.timed_out => (-1, 0),
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

/// Where the joblog goes.
pub enum Sink {
    File(BufWriter<File>),
    /// `--joblog -`: lines join the task output on stdout, in the order things finished.
    Stdout,
}

impl Sink {
    /// Opens `path` for appending (header first when new), or stdout for `-`; `stdout` is
    /// the buffer of what goes to stdout next, which gets the header then.
    pub fn open(path: &Path, stdout: &mut Vec<u8>) -> std::io::Result<Sink> {
        if path == Path::new(STDOUT) {
            stdout.extend_from_slice(HEADER.as_bytes());
            return Ok(Sink::Stdout);
        }
        Ok(Sink::File(BufWriter::new(open(path)?)))
    }

    /// Writes one entry's line to the file, or into `stdout` (the turn's task output).
    pub fn write(&mut self, entry: &Entry<'_>, stdout: &mut Vec<u8>) {
        let line = line(entry);
        match self {
            // A joblog that cannot be written does not stop the run (the store has it all).
            Sink::File(file) => {
                let _ = file.write_all(line.as_bytes());
            }
            Sink::Stdout => stdout.extend_from_slice(line.as_bytes()),
        }
    }

    pub fn flush(&mut self) {
        if let Sink::File(file) = self {
            let _ = file.flush();
        }
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
            timed_out: false,
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
    fn timed_out_task_is_logged_with_exitval_minus_one() {
        let term = ExitStatus::Signal("TERM".into());
        let e = Entry {
            seq: 4,
            host: "h1",
            start: 1.0,
            runtime: 2.0,
            received: 0,
            status: Some(&term),
            timed_out: true,
            command: "sleep 10",
        };
        assert_eq!(line(&e), "4\th1\t1.000\t2.000\t0\t0\t-1\t15\tsleep 10\n");
        let code = ExitStatus::Code(143);
        let e = Entry {
            status: Some(&code),
            ..e
        };
        assert!(line(&e).contains("\t-1\t0\t"));
    }

    #[test]
    fn joblog_dash_writes_to_stdout_not_a_file_named_dash() {
        let dir = tempfile::tempdir().unwrap();
        let path = Path::new(STDOUT);
        let mut stdout = Vec::new();
        let mut sink = Sink::open(path, &mut stdout).unwrap();
        assert!(matches!(sink, Sink::Stdout));
        let e = Entry {
            seq: 1,
            host: "h",
            start: 0.0,
            runtime: 0.0,
            received: 0,
            status: None,
            timed_out: false,
            command: "true",
        };
        sink.write(&e, &mut stdout);
        assert_eq!(
            String::from_utf8(stdout).unwrap(),
            format!("{HEADER}1\th\t0.000\t0.000\t0\t0\t-1\t0\ttrue\n")
        );
        assert!(!dir.path().join("-").exists());
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
