//! The job file (TOML): its schema, and its checks with errors that point at the offending
//! value's line and column. Pure: takes the file's text, reads nothing (an `items_file` is
//! only resolved to a path here; `build` reads it).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

use super::array::{self, ArraySpec, SpecError};
use super::matrix::{self, Axis, Matrix};
use super::stages::{Dep, Graph, StageSpec};
use super::template::Template;
use crate::error::Located;
use crate::placement::Algorithm;
use crate::placement::gate;
use crate::placement::order::Order;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<Spanned<String>>,
    command: Option<Spanned<CommandSpec>>,
    items_file: Option<Spanned<String>>,
    array: Option<Spanned<String>>,
    items: Option<Spanned<Vec<Spanned<String>>>>,
    algorithm: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    retries: Option<u32>,
    timeout: Option<Spanned<String>>,
    workdir: Option<Spanned<String>>,
    env: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    secret_env: Option<Vec<Spanned<String>>>,
    slots: Option<Spanned<u32>>,
    seed: Option<u64>,
    matrix: Option<Spanned<MatrixTable>>,
    load: Option<Spanned<toml::Value>>,
    memfree: Option<Spanned<toml::Value>>,
    cpus: Option<Spanned<u32>>,
    mem: Option<Spanned<toml::Value>>,
    gpus: Option<u32>,
    order: Option<Spanned<String>>,
    stage: Option<Vec<RawStage>>,
    transfer: Option<Vec<Spanned<String>>>,
    #[serde(rename = "return")]
    returns: Option<Vec<Spanned<String>>>,
    cleanup: Option<bool>,
    basefiles: Option<Vec<Spanned<String>>>,
}

/// One `[[stage]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    name: Spanned<String>,
    command: Option<Spanned<CommandSpec>>,
    items_file: Option<Spanned<String>>,
    array: Option<Spanned<String>>,
    items: Option<Spanned<Vec<Spanned<String>>>>,
    matrix: Option<Spanned<MatrixTable>>,
    after: Option<Vec<Spanned<String>>>,
    each_after: Option<Spanned<String>>,
    env: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    retries: Option<u32>,
    timeout: Option<Spanned<String>>,
    transfer: Option<Vec<Spanned<String>>>,
    #[serde(rename = "return")]
    returns: Option<Vec<Spanned<String>>>,
    cleanup: Option<bool>,
    basefiles: Option<Vec<Spanned<String>>>,
}

/// A stage's own staging keys: each one given replaces the file's (or the flag's) for the
/// stage's tasks. Each list keeps where it was written, for errors found once the stage's
/// tasks are known.
#[derive(Debug, Clone, Default)]
pub(super) struct StageStaging {
    pub transfer: Option<Vec<(String, Located)>>,
    pub returns: Option<Vec<(String, Located)>>,
    pub cleanup: Option<bool>,
    pub basefiles: Option<Vec<(String, Located)>>,
}

/// A `[[stage]]`, checked; its dependencies name stages that exist and form no cycle.
#[derive(Debug, Clone)]
pub(super) struct FileStage {
    pub name: String,
    pub command: Option<Template>,
    pub source: Option<FileSource>,
    pub matrix: Option<Matrix>,
    pub after: Vec<String>,
    pub each_after: Option<String>,
    /// Locates the table (its name) for errors found later, such as `each_after` counts.
    pub at: Located,
    /// Locates the `each_after` value, for a task-count mismatch found once items are read.
    pub each_after_at: Option<Located>,
    /// The stage's own `env` (added to the file's, winning on a name both give), `retries`
    /// and `timeout` (replacing the file's).
    pub env: Vec<(String, String)>,
    pub retries: Option<u32>,
    pub timeout: Option<Duration>,
    /// `transfer`, `return`, `cleanup`, `basefiles` of its own.
    pub staging: StageStaging,
}

/// `[matrix]` as written: axis name → values.
type MatrixTable = BTreeMap<Spanned<String>, Spanned<Vec<Spanned<toml::Value>>>>;

/// `command = "line"` or `command = ["argv", "words"]`.
#[derive(Debug)]
enum CommandSpec {
    Line(String),
    Argv(Vec<String>),
}

impl<'de> Deserialize<'de> for CommandSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CommandVisitor)
    }
}

struct CommandVisitor;

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = CommandSpec;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a command line string or an array of argument strings")
    }

    fn visit_str<E: de::Error>(self, line: &str) -> Result<CommandSpec, E> {
        Ok(CommandSpec::Line(line.into()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CommandSpec, A::Error> {
        let mut words = Vec::new();
        while let Some(word) = seq.next_element::<String>()? {
            words.push(word);
        }
        Ok(CommandSpec::Argv(words))
    }
}

/// Where the file says the items come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FileSource {
    /// `items_file`, resolved against the job file's directory; `at` locates the value for
    /// read errors (its message is empty).
    ItemsFile {
        path: PathBuf,
        at: Located,
    },
    Array(ArraySpec),
    Items(Vec<String>),
}

/// The job file, checked and converted; every field optional so flags can fill the rest.
#[derive(Debug, Clone, Default)]
pub(super) struct JobFile {
    pub name: Option<String>,
    pub command: Option<Template>,
    pub source: Option<FileSource>,
    pub algorithm: Option<Algorithm>,
    pub key: Option<Template>,
    pub retries: Option<u32>,
    pub timeout: Option<Duration>,
    pub workdir: Option<String>,
    pub env: Vec<(String, String)>,
    pub secret_env: Vec<String>,
    pub slots: Option<u32>,
    pub seed: Option<u64>,
    pub matrix: Option<Matrix>,
    /// `load = MAX` (a number) and `memfree = "SIZE"` (or bytes).
    pub load: Option<f64>,
    pub memfree: Option<u64>,
    /// `cpus = N`, `mem = "SIZE"`, `gpus = N`: what each task asks of its host.
    pub cpus: Option<u32>,
    pub mem: Option<u64>,
    pub gpus: Option<u32>,
    /// `order = "longest-first"`.
    pub order: Option<Order>,
    /// `[[stage]]` tables, in written order.
    pub stages: Vec<FileStage>,
    /// `transfer`, `return`, `cleanup`, `basefiles`.
    pub staging: crate::staging::Staging,
}

/// Parses the job file `path` whose contents are `text`.
pub(super) fn parse(path: &Path, text: &str) -> Result<JobFile, Located> {
    let raw: Raw = toml::from_str(text).map_err(|e| Located::from_toml(path, text, &e))?;
    let at = At { path, text };
    at.pipeline_items(&raw)?;
    Ok(JobFile {
        name: raw.name.map(|n| at.non_empty(n, "name")).transpose()?,
        command: raw.command.map(|c| at.command(c)).transpose()?,
        source: at.source(raw.items_file, raw.array, raw.items)?,
        algorithm: raw.algorithm.map(|a| at.algorithm(a)).transpose()?,
        key: raw.key.map(|k| at.key(k)).transpose()?,
        retries: raw.retries,
        timeout: raw.timeout.map(|t| at.timeout(t)).transpose()?,
        workdir: raw
            .workdir
            .map(|w| at.non_empty(w, "workdir"))
            .transpose()?,
        env: raw.env.map(|e| at.env(e)).transpose()?.unwrap_or_default(),
        secret_env: raw
            .secret_env
            .map(|names| at.secret_env(names))
            .transpose()?
            .unwrap_or_default(),
        slots: raw.slots.map(|s| at.slots(s)).transpose()?,
        seed: raw.seed,
        matrix: raw.matrix.map(|m| at.matrix(m)).transpose()?,
        load: raw.load.map(|l| at.load(l)).transpose()?,
        memfree: raw.memfree.map(|m| at.memfree(m)).transpose()?,
        cpus: raw.cpus.map(|c| at.cpus(c)).transpose()?,
        mem: raw.mem.map(|m| at.mem(m)).transpose()?,
        gpus: raw.gpus,
        order: raw.order.map(|o| at.order(o)).transpose()?,
        stages: raw
            .stage
            .map(|s| at.stages(s))
            .transpose()?
            .unwrap_or_default(),
        staging: crate::staging::Staging {
            transfer: at.staged("transfer", raw.transfer, true)?,
            returns: at.staged("return", raw.returns, true)?,
            cleanup: raw.cleanup.unwrap_or(false),
            basefiles: at.staged("basefiles", raw.basefiles, false)?,
            local_dir: None,
        },
    })
}

/// The file being checked, to locate errors in it.
struct At<'a> {
    path: &'a Path,
    text: &'a str,
}

impl At<'_> {
    /// In a pipeline each `[[stage]]` gives its own items and matrix: the file's own would
    /// belong to no stage.
    fn pipeline_items(&self, raw: &Raw) -> Result<(), Located> {
        if raw.stage.is_none() {
            return Ok(());
        }
        let given = [
            (
                "items_file",
                raw.items_file.as_ref().map(|v| v.span().start),
            ),
            ("array", raw.array.as_ref().map(|v| v.span().start)),
            ("items", raw.items.as_ref().map(|v| v.span().start)),
            ("matrix", raw.matrix.as_ref().map(|v| v.span().start)),
        ];
        match given.into_iter().find_map(|(key, at)| Some((key, at?))) {
            None => Ok(()),
            Some((key, offset)) => Err(self.error(
                offset,
                format!(
                    "`{key}` belongs in each [[stage]] of a pipeline, not at the top of the file"
                ),
            )),
        }
    }

    /// Checks each `[[stage]]` and the graph their `after` / `each_after` form; an unknown
    /// name or a cycle points at the dependency that names it.
    fn stages(&self, raw: Vec<RawStage>) -> Result<Vec<FileStage>, Located> {
        let specs: Vec<StageSpec> = raw
            .iter()
            .map(|r| StageSpec {
                name: r.name.get_ref().clone(),
                after: r
                    .after
                    .iter()
                    .flatten()
                    .map(|a| a.get_ref().clone())
                    .collect(),
                each_after: r.each_after.as_ref().map(|e| e.get_ref().clone()),
                // Counts are known only once items are read; `build` checks them.
                tasks: 0,
            })
            .collect();
        if let Err(e) = Graph::new(&specs) {
            let (stage, dep) = e.location();
            let table = &raw[stage];
            let offset = match dep {
                None => table.name.span().start,
                Some(Dep::After(i)) => table.after.as_ref().map_or(0, |a| a[i].span().start),
                Some(Dep::EachAfter) => table.each_after.as_ref().map_or(0, |e| e.span().start),
            };
            return Err(self.error(offset, e.message(&specs)));
        }
        raw.into_iter().map(|r| self.stage(r)).collect()
    }

    fn stage(&self, raw: RawStage) -> Result<FileStage, Located> {
        let at = self.error(raw.name.span().start, "");
        let each_after_at = raw
            .each_after
            .as_ref()
            .map(|e| self.error(e.span().start, ""));
        Ok(FileStage {
            name: self.non_empty(raw.name, "stage name")?,
            command: raw.command.map(|c| self.command(c)).transpose()?,
            source: self.source(raw.items_file, raw.array, raw.items)?,
            matrix: raw.matrix.map(|m| self.matrix(m)).transpose()?,
            after: raw
                .after
                .into_iter()
                .flatten()
                .map(Spanned::into_inner)
                .collect(),
            each_after: raw.each_after.map(Spanned::into_inner),
            at,
            each_after_at,
            env: raw
                .env
                .map(|e| self.env(e))
                .transpose()?
                .unwrap_or_default(),
            retries: raw.retries,
            timeout: raw.timeout.map(|t| self.timeout(t)).transpose()?,
            staging: StageStaging {
                transfer: self.stage_staged("transfer", raw.transfer, true)?,
                returns: self.stage_staged("return", raw.returns, true)?,
                cleanup: raw.cleanup,
                basefiles: self.stage_staged("basefiles", raw.basefiles, false)?,
            },
        })
    }

    /// A stage's staged paths ([`At::staged`]), each with where it was written.
    fn stage_staged(
        &self,
        key: &str,
        values: Option<Vec<Spanned<String>>>,
        template: bool,
    ) -> Result<Option<Vec<(String, Located)>>, Located> {
        let Some(values) = values else {
            return Ok(None);
        };
        let places: Vec<Located> = values
            .iter()
            .map(|v| self.error(v.span().start, ""))
            .collect();
        let checked = self.staged(key, Some(values), template)?;
        Ok(Some(checked.into_iter().zip(places).collect()))
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> Located {
        Located::at_offset(self.path, self.text, offset, message)
    }

    /// Byte offset in the file of byte `inner` of the string value at `span`; the value's
    /// start when escapes make the two differ.
    fn inside(&self, span: &Range<usize>, value: &str, inner: usize) -> usize {
        let plain = self.text.get(span.clone()).is_some_and(|written| {
            written.len() == value.len() + 2 && written.get(1..written.len() - 1) == Some(value)
        });
        if plain {
            span.start + 1 + inner
        } else {
            span.start
        }
    }

    /// Locates `e` inside the string value `value` at `span`, its message after `prefix`.
    fn spec_error(&self, span: &Range<usize>, value: &str, prefix: &str, e: SpecError) -> Located {
        let offset = self.inside(span, value, e.offset);
        self.error(offset, format!("{prefix}{}", e.message))
    }

    fn non_empty(&self, value: Spanned<String>, field: &str) -> Result<String, Located> {
        if value.get_ref().is_empty() {
            return Err(self.error(value.span().start, format!("{field} cannot be empty")));
        }
        Ok(value.into_inner())
    }

    fn command(&self, command: Spanned<CommandSpec>) -> Result<Template, Located> {
        let span = command.span();
        match command.get_ref() {
            CommandSpec::Line(line) => {
                Template::shell(line).map_err(|e| self.spec_error(&span, line, "", e))
            }
            CommandSpec::Argv(words) => {
                Template::argv(words).map_err(|e| self.error(span.start, e.message))
            }
        }
    }

    fn source(
        &self,
        items_file: Option<Spanned<String>>,
        array: Option<Spanned<String>>,
        items: Option<Spanned<Vec<Spanned<String>>>>,
    ) -> Result<Option<FileSource>, Located> {
        let mut given: Vec<(&str, usize)> = [
            items_file.as_ref().map(|v| ("items_file", v.span().start)),
            array.as_ref().map(|v| ("array", v.span().start)),
            items.as_ref().map(|v| ("items", v.span().start)),
        ]
        .into_iter()
        .flatten()
        .collect();
        given.sort_by_key(|&(_, offset)| offset);
        if let [(first, _), (second, offset), ..] = given[..] {
            let message = format!("`{second}` and `{first}` both give the items; keep one");
            return Err(self.error(offset, message));
        }
        if let Some(f) = items_file {
            return self.items_file(f).map(Some);
        }
        if let Some(a) = array {
            let spec = array::parse(a.get_ref())
                .map_err(|e| self.spec_error(&a.span(), a.get_ref(), "invalid array: ", e))?;
            return Ok(Some(FileSource::Array(spec)));
        }
        items.map(|i| self.items(i)).transpose()
    }

    fn items_file(&self, value: Spanned<String>) -> Result<FileSource, Located> {
        let start = value.span().start;
        let name = self.non_empty(value, "items_file")?;
        let dir = self.path.parent().unwrap_or(Path::new(""));
        Ok(FileSource::ItemsFile {
            path: dir.join(name),
            at: self.error(start, ""),
        })
    }

    fn items(&self, items: Spanned<Vec<Spanned<String>>>) -> Result<FileSource, Located> {
        let mut out = Vec::with_capacity(items.get_ref().len());
        for item in items.into_inner() {
            if let Some(i) = item.get_ref().find('\0') {
                let offset = self.inside(&item.span(), item.get_ref(), i);
                return Err(self.error(offset, NUL_ITEM));
            }
            out.push(item.into_inner());
        }
        Ok(FileSource::Items(out))
    }

    fn algorithm(&self, name: Spanned<String>) -> Result<Algorithm, Located> {
        name.get_ref()
            .parse()
            .map_err(|_| self.error(name.span().start, unknown_algorithm(name.get_ref())))
    }

    fn key(&self, key: Spanned<String>) -> Result<Template, Located> {
        Template::key(key.get_ref()).map_err(|e| self.spec_error(&key.span(), key.get_ref(), "", e))
    }

    fn timeout(&self, timeout: Spanned<String>) -> Result<Duration, Located> {
        parse_timeout(timeout.get_ref()).map_err(|message| {
            let message = format!("invalid timeout '{}': {message}", timeout.get_ref());
            self.error(timeout.span().start, message)
        })
    }

    /// `load = 1.5` or `load = 2`.
    fn load(&self, load: Spanned<toml::Value>) -> Result<f64, Located> {
        let text = match load.get_ref() {
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            other => other.to_string(),
        };
        gate::parse_load(&text).map_err(|message| {
            self.error(load.span().start, format!("invalid load {text}: {message}"))
        })
    }

    /// Staged paths: each a valid template (or a plain path for `basefiles`); one without
    /// placeholders must already be a path inside the task's directory.
    fn staged(
        &self,
        key: &str,
        values: Option<Vec<Spanned<String>>>,
        template: bool,
    ) -> Result<Vec<String>, Located> {
        let mut out = Vec::new();
        for value in values.into_iter().flatten() {
            let text = value.get_ref();
            let at = value.span().start;
            let literal = match template {
                true => match Template::key(text) {
                    Ok(t) => !t.has_placeholder(),
                    Err(e) => {
                        return Err(self.spec_error(
                            &value.span(),
                            text,
                            &format!("invalid {key}: "),
                            e,
                        ));
                    }
                },
                false => true,
            };
            if literal {
                crate::staging::path::validate(text)
                    .map_err(|e| self.error(at, format!("invalid {key}: {e}")))?;
            }
            out.push(value.into_inner());
        }
        Ok(out)
    }

    fn order(&self, order: Spanned<String>) -> Result<Order, Located> {
        order
            .get_ref()
            .parse()
            .map_err(|message: String| self.error(order.span().start, message))
    }

    fn cpus(&self, cpus: Spanned<u32>) -> Result<u32, Located> {
        match *cpus.get_ref() {
            0 => Err(self.error(cpus.span().start, "cpus must be at least 1")),
            n => Ok(n),
        }
    }

    /// `mem = "4G"` or `mem = BYTES`.
    fn mem(&self, mem: Spanned<toml::Value>) -> Result<u64, Located> {
        let text = match mem.get_ref() {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        gate::parse_size(&text).map_err(|message| {
            self.error(mem.span().start, format!("invalid mem '{text}': {message}"))
        })
    }

    /// `memfree = "1G"` or `memfree = 1073741824` (bytes).
    fn memfree(&self, memfree: Spanned<toml::Value>) -> Result<u64, Located> {
        let text = match memfree.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            other => other.to_string(),
        };
        gate::parse_size(&text).map_err(|message| {
            self.error(
                memfree.span().start,
                format!("invalid memfree '{text}': {message}"),
            )
        })
    }

    fn slots(&self, slots: Spanned<u32>) -> Result<u32, Located> {
        match *slots.get_ref() {
            0 => Err(self.error(slots.span().start, "slots must be at least 1")),
            n => Ok(n),
        }
    }

    fn secret_env(&self, names: Vec<Spanned<String>>) -> Result<Vec<String>, Located> {
        names
            .into_iter()
            .map(|name| {
                if is_shell_name(name.get_ref()) {
                    Ok(name.into_inner())
                } else {
                    let message = format!("secret_env: '{}' {NOT_A_NAME}", name.get_ref());
                    Err(self.error(name.span().start, message))
                }
            })
            .collect()
    }

    /// The `[matrix]` table, its axes in the order written.
    fn matrix(&self, table: Spanned<MatrixTable>) -> Result<Matrix, Located> {
        let table_at = table.span().start;
        let mut entries: Vec<_> = table.into_inner().into_iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        let mut axes = Vec::with_capacity(entries.len());
        for (name, values) in entries {
            let at_name = |message: String| self.error(name.span().start, message);
            matrix::check_name(name.get_ref()).map_err(at_name)?;
            let values_at = values.span().start;
            let mut out = Vec::with_capacity(values.get_ref().len());
            for value in values.into_inner() {
                out.push(self.matrix_value(name.get_ref(), value)?);
            }
            let axis = Axis {
                name: name.get_ref().clone(),
                values: out,
            };
            let checked = Matrix::new(vec![axis.clone()]);
            checked.map_err(|m| self.error(values_at, m))?;
            axes.push(axis);
        }
        // Each axis passed alone and the names are a table's keys (distinct): what is left
        // is the limit on the product, which belongs to the table.
        Matrix::new(axes).map_err(|m| self.error(table_at, m))
    }

    /// One matrix value: a string, or an integer in decimal (a float is refused: `0.1` and
    /// `1e-1` would both be `0.1`, so its text would not be what was written).
    fn matrix_value(&self, axis: &str, value: Spanned<toml::Value>) -> Result<String, Located> {
        let offset = value.span().start;
        match value.into_inner() {
            toml::Value::String(text) => match text.find('\0') {
                None => Ok(text),
                Some(_) => Err(self.error(
                    offset,
                    format!("matrix axis '{axis}': a value cannot contain a NUL character"),
                )),
            },
            toml::Value::Integer(n) => Ok(n.to_string()),
            other => Err(self.error(
                offset,
                format!(
                    "matrix axis '{axis}': values are strings or integers, not {}",
                    other.type_str()
                ),
            )),
        }
    }

    fn env(
        &self,
        env: BTreeMap<Spanned<String>, Spanned<String>>,
    ) -> Result<Vec<(String, String)>, Located> {
        let mut out = Vec::with_capacity(env.len());
        for (name, value) in env {
            if !is_shell_name(name.get_ref()) {
                let message = format!("env: '{}' {NOT_A_NAME}", name.get_ref());
                return Err(self.error(name.span().start, message));
            }
            if let Some(i) = value.get_ref().find('\0') {
                let offset = self.inside(&value.span(), value.get_ref(), i);
                return Err(self.error(offset, "env values cannot contain a NUL character"));
            }
            out.push((name.into_inner(), value.into_inner()));
        }
        Ok(out)
    }
}

/// Why an item with a NUL byte is refused.
pub(super) const NUL_ITEM: &str =
    "an item cannot contain a NUL byte (no command argument can carry one)";

const NOT_A_NAME: &str =
    "is not a shell variable name (letters, digits and '_', not starting with a digit)";

/// Whether `name` is a valid POSIX shell variable name.
pub(super) fn is_shell_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A humantime duration greater than zero (`30m`, `1h 30m`, `90s`).
pub(super) fn parse_timeout(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be greater than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// The message for an algorithm name that is not one of [`Algorithm::ALL`].
pub(super) fn unknown_algorithm(name: &str) -> String {
    let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
    format!("unknown algorithm '{name}' (expected {})", names.join(", "))
}
