//! Typed errors and the exit codes they map to.
//!
//! Every error a user can cause names where it came from: a file with line and column
//! ([`Located`]), a flag, or a host. The binary maps [`Error::exit_code`] to the process
//! exit status documented in the README.

use std::path::{Path, PathBuf};

/// Process exit codes, documented in `dts --help` and the README.
pub mod exit {
    /// Every task succeeded.
    pub const SUCCESS: i32 = 0;
    /// Some task failed, was cancelled or did not run.
    pub const TASK_FAILED: i32 = 1;
    /// Usage, configuration or inventory error: nothing ran.
    pub const USAGE: i32 = 2;
    /// No host was reachable.
    pub const NO_HOST: i32 = 3;
    /// The run store could not be written or read (disk full, run directory removed,
    /// damaged database): dispatch stopped and what could not be recorded was killed.
    pub const STORE: i32 = 4;
    /// Interrupted by Ctrl-C, SIGTERM or SIGHUP; state saved.
    pub const INTERRUPTED: i32 = 130;
}

/// An error in a file the user wrote, pointing at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{col}: {message}", path.display())]
pub struct Located {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Located {
    /// Locates byte `offset` of `text` (the contents of `path`).
    pub fn at_offset(path: &Path, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, col) = line_col(text, offset);
        Located {
            path: path.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    /// Converts a TOML deserialisation error, keeping its position when it has one.
    pub fn from_toml(path: &Path, text: &str, err: &toml::de::Error) -> Self {
        let message = err.message().trim_end().to_string();
        let offset = err.span().map_or(0, |span| span.start);
        Located::at_offset(path, text, offset, message)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Everything that can stop `dts` before or during a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem in an inventory, job or items file.
    #[error(transparent)]
    Located(#[from] Located),
    /// A bad flag value or combination.
    #[error("{0}")]
    Usage(String),
    /// A file named on the command line or in a config could not be read.
    #[error("{}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The OpenSSH client configuration could not be read (or `ssh` is missing).
    #[error(transparent)]
    SshConfig(#[from] crate::inventory::ssh_config::SshConfigError),
    /// No host could be reached; each entry is `(host, reason)`.
    #[error("no host reachable: {}", format_host_errors(.0))]
    NoHostReachable(Vec<(String, String)>),
    /// The run store could not be written or read: the run cannot be recorded.
    #[error("{0}")]
    Store(String),
    /// Anything else that went wrong while running (writing output, spawning threads).
    #[error("{0}")]
    Runtime(String),
}

fn format_host_errors(errors: &[(String, String)]) -> String {
    errors
        .iter()
        .map(|(host, reason)| format!("{host}: {reason}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Located(_) | Error::Usage(_) | Error::ReadFile { .. } | Error::SshConfig(_) => {
                exit::USAGE
            }
            Error::NoHostReachable(_) => exit::NO_HOST,
            Error::Store(_) => exit::STORE,
            Error::Runtime(_) => exit::TASK_FAILED,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // 'b' 'é' then ' ': the space is the third character of line 2.
        assert_eq!(line_col(text, 9), (2, 3));
        assert_eq!(line_col(text, 999), (3, 1));
    }

    #[test]
    fn located_displays_file_line_col() {
        let err = Located::at_offset(Path::new("hosts.toml"), "x\ny", 2, "bad");
        assert_eq!(err.to_string(), "hosts.toml:2:1: bad");
    }
}
