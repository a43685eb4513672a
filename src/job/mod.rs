//! The job: a command template plus an array of items, from a job file and flags (flags win),
//! turned into the task list the dispatcher runs.

pub mod array;
pub mod quote;
pub mod template;

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::placement::Algorithm;
pub use template::{Context, Template};

/// One element of the job array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// 1-based position in the job (`{#}`, `DTS_TASK_ID`).
    pub seq: u32,
    /// Array index (`{index}`, `DTS_ARRAY_INDEX`); for items, the 0-based line number.
    pub index: u64,
    /// The item, byte-exact (`{}`, `{item}`).
    pub item: Box<[u8]>,
}

/// A fully resolved job.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub name: String,
    pub command: Template,
    pub tasks: Vec<Task>,
    /// `%N` of the array spec: at most N tasks run at once.
    pub throttle: Option<u32>,
    pub algorithm: Algorithm,
    /// What consistent-hash hashes; `None` means the item.
    pub key: Option<Template>,
    pub retries: u32,
    pub timeout: Option<Duration>,
    pub workdir: Option<String>,
    pub env: Vec<(String, String)>,
    pub seed: Option<u64>,
    /// Per-host slots override (`--slots`).
    pub slots: Option<u32>,
}

/// Values given on the command line; each one overrides the job file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub job_file: Option<PathBuf>,
    pub array: Option<String>,
    /// `-` means standard input.
    pub items: Option<PathBuf>,
    pub algorithm: Option<String>,
    pub key: Option<String>,
    pub slots: Option<u32>,
    pub retries: Option<u32>,
    pub timeout: Option<String>,
    pub seed: Option<u64>,
    /// Words after `--`: one word is a shell command line, several are an exact argv.
    pub command: Vec<String>,
}

/// Resolves the job from the job file (if any) and the flags.
pub fn build(overrides: &Overrides, stdin: &mut dyn std::io::Read) -> Result<JobSpec, Error> {
    let _ = stdin;
    let command = match overrides.command.len() {
        0 => return Err(Error::Usage("no command".into())),
        1 => Template::shell(&overrides.command[0]).map_err(|e| Error::Usage(e.to_string()))?,
        _ => Template::argv(&overrides.command).map_err(|e| Error::Usage(e.to_string()))?,
    };
    let spec = match &overrides.array {
        Some(a) => array::parse(a).map_err(|e| Error::Usage(e.to_string()))?,
        None => array::ArraySpec {
            indices: vec![0],
            throttle: None,
        },
    };
    let tasks = spec
        .indices
        .iter()
        .enumerate()
        .map(|(i, &index)| Task {
            seq: i as u32 + 1,
            index,
            item: index.to_string().into_bytes().into(),
        })
        .collect();
    Ok(JobSpec {
        name: "job".into(),
        command,
        tasks,
        throttle: spec.throttle,
        algorithm: Algorithm::RoundRobin,
        key: None,
        retries: overrides.retries.unwrap_or(0),
        timeout: None,
        workdir: None,
        env: vec![],
        seed: overrides.seed,
        slots: overrides.slots,
    })
}
