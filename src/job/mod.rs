//! The job: a command template plus an array of items, from a job file and flags (flags win),
//! turned into the task list the dispatcher runs.
//!
//! This module owns the precedence rules and the reads they need (the job file, an items
//! file, standard input); everything else is pure and lives in the submodules:
//! [`array`](mod@array) (Slurm `--array` syntax), [`quote`] (shell quoting), [`template`]
//! (placeholders) and `file` (the job file's schema and located checks).
//!
//! Items come from exactly one source: `--array` or `--items` on the command line, else one
//! of `items_file`, `array` or `items` in the job file, else a single task with an empty
//! item. An array task's item is its index in decimal. An items file has one item per line,
//! split on `\n` only and kept byte for byte; its task index is the 1-based line number.
//!
//! Tasks go by one number everywhere (`[host index]`, `dts logs`, the joblog's Seq,
//! `DTS_TASK_ID`): the task index, which is the array index for an array and the 1-based
//! item number otherwise. Only `{#}` differs: GNU parallel's 1-based sequence number.
//!
//! A [`matrix`] (`--matrix`, else the file's `[matrix]` table) multiplies the tasks: each
//! item (or the single task) runs once per combination, items outermost. An array index
//! or line number would then repeat, so with a matrix the task index is the 1-based
//! position in the job (= `{#}`); the item `{}` still holds the array index or the line.

pub mod array;
mod file;
pub mod matrix;
pub mod pipeline;
pub mod quote;
mod staged;
pub mod stages;
pub mod template;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Located, line_col};
use crate::placement::Algorithm;
use crate::placement::gate::{self, Gates};
use crate::placement::order::Order;
use crate::placement::resources::Request;
use file::{FileSource, JobFile};
pub use matrix::Matrix;
pub use pipeline::Pipeline;
pub use template::{Context, Template, TemplateSpec};

/// One element of the job array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// 1-based position in the job (`{#}`).
    pub seq: u32,
    /// The task's number everywhere (`{index}`, `DTS_TASK_ID`, `DTS_ARRAY_INDEX`, the joblog):
    /// the array index; for items, the 1-based item (line) number.
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
    /// Variables for every task, sorted by name; names are valid shell variable names.
    pub env: Vec<(String, String)>,
    pub seed: Option<u64>,
    /// Per-host slots override (`--slots`).
    pub slots: Option<u32>,
    /// Variables passed from dts's environment without ever being saved (`secret_env`).
    pub secret_env: Vec<String>,
    /// The matrix axes (empty without one); a task's parameters follow from its `seq`.
    pub matrix: Matrix,
    /// `--load` / `--memfree`: hosts over them take no new task.
    pub gates: Gates,
    /// `--cpus` / `--mem` / `--gpus`: what each task asks of its host.
    pub resources: Request,
    /// `--order`: as listed, or longest recorded time first.
    pub order: Order,
    /// What each task stages to and from its host (off by default).
    pub staging: crate::staging::Staging,
    /// `[[stage]]` tables: each task's command and matrix are its stage's, and a task is
    /// ready only once those it depends on have succeeded. `None` for a plain job.
    pub pipeline: Option<Pipeline>,
}

impl JobSpec {
    /// The command task `seq` runs: its stage's in a pipeline.
    pub fn command_of(&self, seq: u32) -> &Template {
        match &self.pipeline {
            Some(p) => &p.locate(seq).0.command,
            None => &self.command,
        }
    }

    /// The matrix and position that give task `seq`'s parameters.
    fn matrix_of(&self, seq: u32) -> (&Matrix, u32) {
        match &self.pipeline {
            Some(p) => {
                let (stage, position) = p.locate(seq);
                (&stage.matrix, position)
            }
            None => (&self.matrix, seq),
        }
    }

    /// Task `seq`'s matrix values, in axis order.
    pub fn values_of(&self, seq: u32) -> Vec<&str> {
        let (matrix, position) = self.matrix_of(seq);
        matrix.values_of(position)
    }

    /// Task `seq`'s parameters, for documents.
    pub fn params_of(&self, seq: u32) -> matrix::Params {
        let (matrix, position) = self.matrix_of(seq);
        matrix.params(position)
    }

    /// The `DTS_MATRIX_NAME` variables of task `seq`.
    pub fn matrix_env_of(&self, seq: u32) -> Vec<(String, &str)> {
        let (matrix, position) = self.matrix_of(seq);
        matrix.env_of(position)
    }

    /// The variables every run of task `seq` gets: its stage's in a pipeline.
    pub fn env_of(&self, seq: u32) -> &[(String, String)] {
        match &self.pipeline {
            Some(p) => &p.locate(seq).0.env,
            None => &self.env,
        }
    }

    /// `--retries` for task `seq`: its stage's own, else the job's.
    pub fn retries_of(&self, seq: u32) -> u32 {
        let stage = self.pipeline.as_ref().map(|p| p.locate(seq).0);
        stage.and_then(|s| s.retries).unwrap_or(self.retries)
    }

    /// `--timeout` for task `seq`: its stage's own, else the job's.
    pub fn timeout_of(&self, seq: u32) -> Option<Duration> {
        let stage = self.pipeline.as_ref().map(|p| p.locate(seq).0);
        stage.and_then(|s| s.timeout).or(self.timeout)
    }

    /// What task `seq` stages: its stage's, else the job's.
    pub fn staging_of(&self, seq: u32) -> &crate::staging::Staging {
        let stage = self.pipeline.as_ref().map(|p| p.locate(seq).0);
        stage
            .and_then(|s| s.staging.as_ref())
            .unwrap_or(&self.staging)
    }

    /// Whether any task stages files.
    pub fn stages_files(&self) -> bool {
        match &self.pipeline {
            None => !self.staging.is_off(),
            Some(p) => p
                .stages
                .iter()
                .any(|s| !s.staging.as_ref().unwrap_or(&self.staging).is_off()),
        }
    }

    /// The stage task `seq` belongs to, in a pipeline (`DTS_STAGE`).
    pub fn stage_of(&self, seq: u32) -> Option<&str> {
        let pipeline = self.pipeline.as_ref()?;
        Some(&pipeline.locate(seq).0.name)
    }

    /// The key consistent-hash hashes for `task`: the rendered `key` template, or the item
    /// (with a matrix, the item and the task's values, NUL-separated, so the combinations of
    /// one item spread rather than all hashing alike). `{host}` renders empty: a key cannot
    /// depend on where the task goes.
    pub fn key_of(&self, task: &Task) -> Vec<u8> {
        match &self.key {
            Some(template) => template.render_key(&Context {
                item: &task.item,
                seq: task.seq,
                index: task.index,
                host: "",
                params: &self.values_of(task.seq),
            }),
            None => {
                let mut key = task.item.to_vec();
                for value in self.values_of(task.seq) {
                    key.push(0);
                    key.extend_from_slice(value.as_bytes());
                }
                key
            }
        }
    }
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
    /// `--items` is NUL-separated (`-0`, like `xargs -0`), so items may hold newlines.
    pub null: bool,
    /// `--secret-env` names, added to the job file's `secret_env`.
    pub secret_env: Vec<String>,
    /// `--matrix NAME=v1,v2,...` axes as given; they replace the file's `[matrix]`.
    pub matrix: Vec<String>,
    /// `--load MAX` and `--memfree SIZE` as given.
    pub load: Option<String>,
    pub memfree: Option<String>,
    /// `--cpus N`, `--mem SIZE`, `--gpus N` as given.
    pub cpus: Option<u32>,
    pub mem: Option<String>,
    pub gpus: Option<u32>,
    /// `--order` and `--name` as given.
    pub order: Option<String>,
    pub name: Option<String>,
    /// `--tf`, `--return`, `--cleanup`, `--trc`, `--bf` as given.
    pub staging: StagingFlags,
}

/// The staging flags as given; each list given replaces the job file's.
#[derive(Debug, Clone, Default)]
pub struct StagingFlags {
    pub transfer: Vec<String>,
    pub returns: Vec<String>,
    pub cleanup: bool,
    pub trc: Vec<String>,
    pub basefiles: Vec<String>,
}

/// The message when neither the flags nor the job file give a command.
pub const NO_COMMAND: &str = "no command: give one after `--` or `command =` in the job file";

/// How standard input is named in errors about `--items -`.
const STDIN: &str = "<stdin>";

/// Resolves the job from the job file (if any) and the flags; `stdin` is read only for
/// `--items -`.
pub fn build(overrides: &Overrides, stdin: &mut dyn Read) -> Result<JobSpec, Error> {
    if overrides.array.is_some() && overrides.items.is_some() {
        return Err(Error::Usage(
            "--array and --items both give the items; use one".into(),
        ));
    }
    let mut file = match &overrides.job_file {
        Some(path) => load_job_file(path)?,
        None => JobFile::default(),
    };
    let secret_env = secret_names(
        &overrides.secret_env,
        std::mem::take(&mut file.secret_env),
        &file.env,
    )?;
    let shape = if file.stages.is_empty() {
        plain_shape(overrides, &mut file, stdin)?
    } else {
        pipeline_shape(overrides, &mut file, &secret_env)?
    };
    let Shape {
        command,
        tasks,
        throttle,
        matrix,
        pipeline,
    } = shape;
    let names = matrix.names();
    let defaults = staged::defaults(&overrides.staging, std::mem::take(&mut file.staging));
    let mut pipeline = pipeline;
    let staging = match &mut pipeline {
        None => staged::plain(defaults, &matrix, &tasks)?,
        Some(pipeline) => {
            let own: Vec<_> = file.stages.iter().map(|s| (&s.staging, &s.at)).collect();
            staged::stages(pipeline, &defaults, &own, &tasks)?;
            defaults
        }
    };
    let job = JobSpec {
        name: check_name(&overrides.name)?
            .or(file.name)
            .unwrap_or_else(|| default_name(overrides)),
        command,
        tasks,
        throttle,
        algorithm: flag(&overrides.algorithm, "--algo", parse_algorithm)?
            .or(file.algorithm)
            .unwrap_or(Algorithm::RoundRobin),
        key: flag(&overrides.key, "--key", parse_key)?
            .or(file.key)
            .map(|key| key.with_params(&names)),
        retries: overrides.retries.or(file.retries).unwrap_or(0),
        timeout: flag(&overrides.timeout, "--timeout", file::parse_timeout)?.or(file.timeout),
        workdir: file.workdir,
        env: file.env,
        seed: overrides.seed.or(file.seed),
        slots: check_slots(overrides.slots)?.or(file.slots),
        secret_env,
        matrix,
        gates: Gates {
            load: flag(&overrides.load, "--load", gate::parse_load)?.or(file.load),
            memfree: flag(&overrides.memfree, "--memfree", gate::parse_size)?.or(file.memfree),
        },
        resources: Request {
            cpus: check_cpus(overrides.cpus)?.or(file.cpus).unwrap_or(1),
            mem: flag(&overrides.mem, "--mem", gate::parse_size)?
                .or(file.mem)
                .unwrap_or(0),
            gpus: overrides.gpus.or(file.gpus).unwrap_or(0),
        },
        order: flag(&overrides.order, "--order", str::parse)?
            .or(file.order)
            .unwrap_or_default(),
        staging,
        pipeline,
    };
    if job.stages_files() && job.workdir.is_some() {
        return Err(Error::Usage(
            "`workdir` and file staging both say where tasks run: a task that stages files runs in its own directory on its host; drop one".into(),
        ));
    }
    Ok(job)
}

/// What the job runs: its command, tasks and matrix, or a pipeline's stages.
struct Shape {
    command: Template,
    tasks: Vec<Task>,
    throttle: Option<u32>,
    matrix: Matrix,
    pipeline: Option<Pipeline>,
}

/// A job without stages: one command over the items (or array) and the matrix.
fn plain_shape(
    overrides: &Overrides,
    file: &mut JobFile,
    stdin: &mut dyn Read,
) -> Result<Shape, Error> {
    let matrix = resolve_matrix(&overrides.matrix, file.matrix.take())?;
    let names = matrix.names();
    let command = resolve_command(&overrides.command, file.command.take())?.with_params(&names);
    let from_items = overrides.items.is_some()
        || (overrides.array.is_none()
            && file
                .source
                .as_ref()
                .is_some_and(|s| !matches!(s, FileSource::Array(..))));
    let (tasks, throttle) = resolve_tasks(overrides, file.source.take(), stdin)?;
    let tasks = matrix_tasks(tasks, &matrix)?;
    // As in GNU parallel, a command without placeholders gets each item appended. An array
    // does not, as in Slurm: its index is in DTS_ARRAY_INDEX, and `kill -TERM $$` must not
    // become `kill -TERM $$ 1`. A job without items runs its command as written. A matrix
    // placeholder is a placeholder: `--items f --matrix lr=1 -- train {lr}` appends nothing.
    let command = if from_items {
        command.with_item_appended()
    } else {
        command
    };
    Ok(Shape {
        command,
        tasks,
        throttle,
        matrix,
        pipeline: None,
    })
}

/// A pipeline: each `[[stage]]` gives its own items and matrix, and its command or the
/// file's; the run's tasks are the stages' tasks in written order, numbered 1.. across them.
fn pipeline_shape(
    overrides: &Overrides,
    file: &mut JobFile,
    secret_env: &[String],
) -> Result<Shape, Error> {
    let flags = [
        ("--array", overrides.array.is_some()),
        ("--items", overrides.items.is_some()),
        ("--matrix", !overrides.matrix.is_empty()),
        ("a command after `--`", !overrides.command.is_empty()),
    ];
    if let Some((flag, _)) = flags.iter().find(|(_, given)| *given) {
        return Err(Error::Usage(format!(
            "{flag} cannot be used with a [[stage]] pipeline: each stage gives its own command and items"
        )));
    }
    let mut stages = Vec::with_capacity(file.stages.len());
    let mut tasks = Vec::new();
    for stage in &file.stages {
        let names = stage.matrix.as_ref().map(Matrix::names).unwrap_or_default();
        let command = stage
            .command
            .clone()
            .or_else(|| file.command.clone())
            .ok_or_else(|| Located {
                message: format!(
                    "stage `{}` has no command, and the file gives none for it to use",
                    stage.name
                ),
                ..stage.at.clone()
            })?
            .with_params(&names);
        let from_items = stage
            .source
            .as_ref()
            .is_some_and(|s| !matches!(s, FileSource::Array(..)));
        let command = if from_items {
            command.with_item_appended()
        } else {
            command
        };
        let (own, throttle) = file_tasks(stage.source.clone())?;
        if throttle.is_some() {
            return Err(Error::Located(Located {
                message: format!(
                    "stage `{}`: an array's %N throttle applies to a whole run, not to one stage",
                    stage.name
                ),
                ..stage.at.clone()
            }));
        }
        let matrix = stage.matrix.clone().unwrap_or_default();
        let own = matrix_tasks(own, &matrix)?;
        for task in &own {
            let position = tasks.len() as u32 + 1;
            tasks.push(Task {
                seq: position,
                index: u64::from(position),
                item: task.item.clone(),
            });
        }
        if let Some((name, _)) = stage.env.iter().find(|(k, _)| secret_env.contains(k)) {
            return Err(Error::Located(Located {
                message: format!(
                    "stage `{}`: {name} is both in env and secret_env; a secret is never written down",
                    stage.name
                ),
                ..stage.at.clone()
            }));
        }
        stages.push(pipeline::Stage {
            name: stage.name.clone(),
            command,
            matrix,
            after: stage.after.clone(),
            each_after: stage.each_after.clone(),
            tasks: own.len(),
            env: stage_env(&file.env, &stage.env),
            // A flag wins over the file, the stage's value included.
            retries: overrides.retries.or(stage.retries),
            timeout: match overrides.timeout {
                Some(_) => None,
                None => stage.timeout,
            },
            // Resolved with the job's staging, once every stage's tasks are known.
            staging: None,
        });
    }
    if u32::try_from(tasks.len()).is_err() {
        return Err(Error::Usage(format!(
            "{} tasks are more than the limit of {}",
            tasks.len(),
            u32::MAX
        )));
    }
    let specs: Vec<stages::StageSpec> = stages
        .iter()
        .map(|s| stages::StageSpec {
            name: s.name.clone(),
            after: s.after.clone(),
            each_after: s.each_after.clone(),
            tasks: s.tasks,
        })
        .collect();
    let pipeline = Pipeline::new(stages).map_err(|e| {
        // Names and cycles were checked with the file: what is left is each_after counts,
        // known only now that each stage's items are read.
        let stage = e.location().0;
        let at = &file.stages[stage];
        let place = at.each_after_at.as_ref().unwrap_or(&at.at);
        Error::Located(Located {
            message: e.message(&specs),
            ..place.clone()
        })
    })?;
    Ok(Shape {
        command: pipeline.stages[0].command.clone(),
        tasks,
        throttle: None,
        matrix: Matrix::default(),
        pipeline: Some(pipeline),
    })
}

/// The job's variables with a stage's own over them, sorted by name.
fn stage_env(job: &[(String, String)], own: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: std::collections::BTreeMap<&str, &str> =
        job.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend(own.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    env.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `--matrix` axes, which replace the job file's `[matrix]` table when given.
fn resolve_matrix(flags: &[String], from_file: Option<Matrix>) -> Result<Matrix, Error> {
    if flags.is_empty() {
        return Ok(from_file.unwrap_or_default());
    }
    let axes = flags
        .iter()
        .map(|text| matrix::parse_flag(text).map_err(|m| invalid_flag("--matrix", text, &m)))
        .collect::<Result<Vec<_>, _>>()?;
    Matrix::new(axes).map_err(|m| Error::Usage(format!("invalid --matrix: {m}")))
}

/// Each task once per matrix combination, tasks outermost, numbered by position: an array
/// index or line number repeats across combinations, so it stays only in the item.
fn matrix_tasks(tasks: Vec<Task>, matrix: &Matrix) -> Result<Vec<Task>, Error> {
    if matrix.is_empty() {
        return Ok(tasks);
    }
    let total = matrix
        .combinations_within(tasks.len())
        .map_err(Error::Usage)?;
    let combinations = matrix.combinations();
    let mut out = Vec::with_capacity(total);
    for task in &tasks {
        for _ in 0..combinations {
            let position = out.len() as u32 + 1;
            out.push(Task {
                seq: position,
                index: u64::from(position),
                item: task.item.clone(),
            });
        }
    }
    Ok(out)
}

fn load_job_file(path: &Path) -> Result<JobFile, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(file::parse(path, &text)?)
}

/// Parses an optional flag value; errors read `invalid FLAG 'VALUE': MESSAGE`.
fn flag<T>(
    value: &Option<String>,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, Error> {
    value
        .as_deref()
        .map(|v| parse(v).map_err(|message| invalid_flag(name, v, &message)))
        .transpose()
}

fn check_name(name: &Option<String>) -> Result<Option<String>, Error> {
    match name.as_deref() {
        Some(n) if n.trim().is_empty() => Err(Error::Usage("invalid --name '': empty name".into())),
        _ => Ok(name.clone()),
    }
}

fn check_cpus(cpus: Option<u32>) -> Result<Option<u32>, Error> {
    match cpus {
        Some(0) => Err(Error::Usage("invalid --cpus 0: must be at least 1".into())),
        other => Ok(other),
    }
}

fn invalid_flag(name: &str, value: &str, message: &str) -> Error {
    Error::Usage(format!("invalid {name} '{value}': {message}"))
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    name.parse().map_err(|_| file::unknown_algorithm(name))
}

fn parse_key(text: &str) -> Result<Template, String> {
    Template::key(text).map_err(|e| e.message)
}

fn check_slots(slots: Option<u32>) -> Result<Option<u32>, Error> {
    match slots {
        Some(0) => Err(invalid_flag("--slots", "0", "must be at least 1")),
        other => Ok(other),
    }
}

/// The words after `--` win over the job file's `command`.
pub fn resolve_command(words: &[String], from_file: Option<Template>) -> Result<Template, Error> {
    let parsed = match words {
        [] => return from_file.ok_or_else(|| Error::Usage(NO_COMMAND.into())),
        [line] => Template::shell(line),
        words => Template::argv(words),
    };
    parsed.map_err(|e| Error::Usage(format!("invalid command after `--`: {}", e.message)))
}

/// The job file's stem, else the basename of the command's first word.
fn default_name(overrides: &Overrides) -> String {
    let stem = overrides.job_file.as_deref().and_then(Path::file_stem);
    if let Some(stem) = stem {
        return stem.to_string_lossy().into_owned();
    }
    let first = match overrides.command.as_slice() {
        [line] => line.split_whitespace().next(),
        words => words.first().map(String::as_str),
    };
    match first.and_then(|w| w.rsplit('/').next()) {
        Some(word) if !word.is_empty() => word.to_string(),
        _ => "job".into(),
    }
}

/// The tasks and throttle from the one item source in effect: a flag replaces the file's.
fn resolve_tasks(
    overrides: &Overrides,
    from_file: Option<FileSource>,
    stdin: &mut dyn Read,
) -> Result<(Vec<Task>, Option<u32>), Error> {
    if overrides.null && overrides.items.is_none() {
        return Err(Error::Usage("-0/--null applies to --items".into()));
    }
    if let Some(spec) = &overrides.array {
        let spec = array::parse(spec).map_err(|e| {
            let (_, column) = line_col(spec, e.offset);
            let message = format!("{} (at column {column})", e.message);
            invalid_flag("--array", spec, &message)
        })?;
        return Ok((array_tasks(spec.indices)?, spec.throttle));
    }
    if let Some(path) = &overrides.items {
        let (name, data) = read_items_flag(path, stdin)?;
        if overrides.null {
            return Ok((
                numbered(split_nul(&data).into_iter().map(<[u8]>::to_vec))?,
                None,
            ));
        }
        return Ok((line_tasks(&name, &data)?, None));
    }

    file_tasks(from_file)
}

/// The tasks and throttle from the job file's source, or the single task without one.
fn file_tasks(source: Option<FileSource>) -> Result<(Vec<Task>, Option<u32>), Error> {
    match source {
        None => Ok((vec![single_task()], None)),
        Some(FileSource::Array(spec)) => Ok((array_tasks(spec.indices)?, spec.throttle)),
        Some(FileSource::Items(items)) => {
            Ok((numbered(items.into_iter().map(String::into_bytes))?, None))
        }
        Some(FileSource::ItemsFile { path, at }) => {
            let data = std::fs::read(&path).map_err(|e| Located {
                message: format!("cannot read items file {}: {e}", path.display()),
                ..at
            })?;
            Ok((line_tasks(&path, &data)?, None))
        }
    }
}

/// Reads `--items FILE` or `--items -`; returns the name to use in errors and the bytes.
fn read_items_flag(path: &Path, stdin: &mut dyn Read) -> Result<(PathBuf, Vec<u8>), Error> {
    let mut data = Vec::new();
    if path == Path::new("-") {
        stdin
            .read_to_end(&mut data)
            .map_err(|source| Error::ReadFile {
                path: STDIN.into(),
                source,
            })?;
        return Ok((STDIN.into(), data));
    }
    let data = std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((path.to_path_buf(), data))
}

/// The task of a job without items: task 1, empty item.
fn single_task() -> Task {
    Task {
        seq: 1,
        index: 1,
        item: Box::default(),
    }
}

/// Array tasks: each item is its index in decimal.
fn array_tasks(indices: Vec<u64>) -> Result<Vec<Task>, Error> {
    let mut tasks = numbered(indices.iter().map(|i| i.to_string().into_bytes()))?;
    for (task, index) in tasks.iter_mut().zip(indices) {
        task.index = index;
    }
    Ok(tasks)
}

/// One task per line of `data` (read from `name`); a line with a NUL byte is an error there.
fn line_tasks(name: &Path, data: &[u8]) -> Result<Vec<Task>, Error> {
    let lines = split_lines(data);
    if let Some((line, col)) = first_nul(&lines) {
        return Err(Located {
            path: name.to_path_buf(),
            line,
            col,
            message: file::NUL_ITEM.into(),
        }
        .into());
    }
    numbered(lines.into_iter().map(<[u8]>::to_vec))
}

/// Splits on `\n` only, keeping every byte: `\r` stays, an empty line is an item, a last
/// line without `\n` is an item, the empty rest after a final `\n` is not.
pub fn split_lines(data: &[u8]) -> Vec<&[u8]> {
    if data.is_empty() {
        return Vec::new();
    }
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    data.split(|&b| b == b'\n').collect()
}

/// Splits on NUL bytes, as `xargs -0` does: a final NUL ends the last item.
pub fn split_nul(data: &[u8]) -> Vec<&[u8]> {
    if data.is_empty() {
        return Vec::new();
    }
    let data = data.strip_suffix(b"\0").unwrap_or(data);
    data.split(|&b| b == 0).collect()
}

/// The secret variable names from the flags and the job file: valid names, no duplicates,
/// none also given a plain value in `env`.
fn secret_names(
    flags: &[String],
    file: Vec<String>,
    env: &[(String, String)],
) -> Result<Vec<String>, Error> {
    let mut names: Vec<String> = file;
    for name in flags {
        if !file::is_shell_name(name) {
            return Err(invalid_flag(
                "--secret-env",
                name,
                "not a shell variable name",
            ));
        }
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    if let Some(name) = names.iter().find(|n| env.iter().any(|(k, _)| k == *n)) {
        return Err(Error::Usage(format!(
            "{name} is both in env and secret_env; a secret is never written down"
        )));
    }
    Ok(names)
}

/// The 1-based line and byte column of the first NUL byte.
fn first_nul(lines: &[&[u8]]) -> Option<(usize, usize)> {
    lines.iter().enumerate().find_map(|(n, line)| {
        let col = line.iter().position(|&b| b == 0)?;
        Some((n + 1, col + 1))
    })
}

/// Tasks in order: `seq` and `index` from 1.
fn numbered(items: impl ExactSizeIterator<Item = Vec<u8>>) -> Result<Vec<Task>, Error> {
    if u32::try_from(items.len()).is_err() {
        let message = format!(
            "{} tasks are more than the limit of {}",
            items.len(),
            u32::MAX
        );
        return Err(Error::Usage(message));
    }
    Ok(items
        .enumerate()
        .map(|(i, item)| Task {
            seq: i as u32 + 1,
            index: i as u64 + 1,
            item: item.into_boxed_slice(),
        })
        .collect())
}

#[cfg(test)]
mod tests;
