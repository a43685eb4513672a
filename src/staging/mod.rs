//! File staging (issue 16 item 1): copy a task's inputs to its host before it runs, bring
//! its results back after it succeeds, and clean up after it, over the connections the run
//! already has. GNU parallel's names: `--transfer-file`/`--tf`, `--return`, `--cleanup`,
//! `--trc`, `--basefile`/`--bf`.
//!
//! This module owns what may be staged and where it lands; the pieces:
//! - [`path`]: which paths may be staged (relative, inside the task directory);
//! - [`frame`]: the framing that carries files, parsed strictly in both directions;
//! - [`script`]: the POSIX `sh` helpers that unpack and pack on the host;
//! - [`local`]: finding inputs and writing returned files on this machine, strictly;
//! - [`stream`]: the stream of new contents and the manifest a stage-in helper reads, each
//!   input read once;
//! - [`relay`]: the connection decorator that runs the helpers around each staged launch
//!   (the dispatcher only sees launches that start and exit, as for any task).
//!
//! Where files land on a host: `$HOME/.cache/dts/runs/RUN/`, one directory per run so
//! concurrent runs never clash. Its `c/` holds each distinct input once (named by its
//! content hash: a file several tasks need is sent to a host once); each attempt of a
//! task runs in `t/INDEX.ATTEMPT/`, where its inputs are hard links into `c/` at their
//! relative paths. `--cleanup` removes a task's directory after it and the run directory
//! at the end of the run.
//!
//! In a pipeline each stage stages its own way (its keys over the job's, resolved in
//! `job::staged`); tasks never share a directory, so files pass from stage to stage through
//! the submitter's working directory: returned by one stage, transferred by a later one.

pub mod frame;
pub mod local;
pub mod path;
pub mod relay;
pub mod script;
pub mod stream;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::job::{Context, Template};

/// The exit status a task gets when its staging failed (a missing input, a refused or
/// failed return): like `env` and `nohup`, 125 says the command itself could not be run
/// or finished as asked. The reason is on the task's stderr, naming the file.
pub const STAGING_FAILED: i32 = 125;

/// What a job stages, as given (templates unrendered); saved with the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staging {
    /// `--tf` templates: inputs copied to the host before the task runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfer: Vec<String>,
    /// `--return` templates: results brought back after the task succeeds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub returns: Vec<String>,
    /// `--cleanup`: remove the task's directory after it, and the run's at the end.
    #[serde(default)]
    pub cleanup: bool,
    /// `--bf` paths: copied once per host, before its first task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub basefiles: Vec<String>,
    /// The local directory relative paths start from (the submitter's working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_dir: Option<PathBuf>,
}

impl Staging {
    pub fn is_off(&self) -> bool {
        self.transfer.is_empty()
            && self.returns.is_empty()
            && !self.cleanup
            && self.basefiles.is_empty()
    }
}

/// The staging templates, parsed once for a run.
#[derive(Debug, Clone)]
pub struct Prepared {
    transfer: Vec<Template>,
    returns: Vec<Template>,
    basefiles: Vec<String>,
    pub cleanup: bool,
    pub local_dir: PathBuf,
    /// How errors name the transfer and return templates: the flags, or the job file's keys.
    names: [&'static str; 2],
}

/// What one attempt of one task stages: paths relative to its task directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPlan {
    /// Basefiles first, then the task's transfers; each path once.
    pub inputs: Vec<String>,
    pub returns: Vec<String>,
    pub cleanup: bool,
    /// `t/INDEX.ATTEMPT`, relative to the run directory on the host.
    pub task_dir: String,
}

impl Prepared {
    /// Parses the templates (with the matrix's axis names as placeholders) and checks the
    /// basefiles' paths. Errors name the flag or key and the value.
    pub fn new(staging: &Staging, params: &[String]) -> Result<Prepared, String> {
        let parse = |what: &str, texts: &[String]| -> Result<Vec<Template>, String> {
            texts
                .iter()
                .map(|t| {
                    Template::key(t)
                        .map(|t| t.with_params(params))
                        .map_err(|e| format!("invalid {what} '{t}': {}", e.message))
                })
                .collect()
        };
        let basefiles = staging
            .basefiles
            .iter()
            .map(|b| path::validate(b).map_err(|e| format!("invalid --basefile '{b}': {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Prepared {
            transfer: parse("--transfer-file", &staging.transfer)?,
            returns: parse("--return", &staging.returns)?,
            basefiles,
            cleanup: staging.cleanup,
            local_dir: staging
                .local_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(".")),
            names: ["--transfer-file", "--return"],
        })
    }

    /// The same, its errors naming the job file's keys (`transfer`, `return`).
    pub fn named_as_keys(mut self) -> Prepared {
        self.names = ["transfer", "return"];
        self
    }

    /// The plan of one attempt; an error names the template and the path it gave.
    pub fn plan(&self, ctx: &Context<'_>, attempt: u32) -> Result<TaskPlan, String> {
        let mut inputs = self.basefiles.clone();
        for path in render_all(self.names[0], &self.transfer, ctx)? {
            if !inputs.contains(&path) {
                inputs.push(path);
            }
        }
        let mut returns = Vec::new();
        for path in render_all(self.names[1], &self.returns, ctx)? {
            if !returns.contains(&path) {
                returns.push(path);
            }
        }
        Ok(TaskPlan {
            inputs,
            returns,
            cleanup: self.cleanup,
            task_dir: format!("t/{}.{attempt}", ctx.index),
        })
    }
}

fn render_all(
    what: &str,
    templates: &[Template],
    ctx: &Context<'_>,
) -> Result<Vec<String>, String> {
    templates
        .iter()
        .map(|template| {
            let raw = template.render_key(ctx);
            let text = String::from_utf8(raw).map_err(|_| {
                format!(
                    "{what} '{}' gives a path that is not UTF-8",
                    template.source()
                )
            })?;
            path::validate(&text).map_err(|e| format!("{what} '{}': {e}", template.source()))
        })
        .collect()
}

/// The run's directory on a host, for the `workdir` of its tasks (`~/` is the host's home).
pub fn run_dir(run_id: &str) -> String {
    format!("~/.cache/dts/runs/{run_id}")
}

/// Where attempt `attempt` of task `index` runs on its host.
pub fn task_workdir(run_id: &str, index: u64, attempt: u32) -> String {
    format!("{}/t/{index}.{attempt}", run_dir(run_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(item: &'a [u8], index: u64) -> Context<'a> {
        Context {
            item,
            seq: 1,
            index,
            host: "",
            params: &[],
        }
    }

    fn staging(transfer: &[&str], returns: &[&str], basefiles: &[&str]) -> Staging {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Staging {
            transfer: owned(transfer),
            returns: owned(returns),
            cleanup: true,
            basefiles: owned(basefiles),
            local_dir: None,
        }
    }

    #[test]
    fn a_plan_renders_each_template_per_task_with_basefiles_first_and_no_repeats() {
        let prepared =
            Prepared::new(&staging(&["{}", "lib.py"], &["{}.out"], &["lib.py"]), &[]).unwrap();
        let plan = prepared.plan(&ctx(b"sub dir/a b.txt", 3), 2).unwrap();
        assert_eq!(plan.inputs, ["lib.py", "sub dir/a b.txt"]);
        assert_eq!(plan.returns, ["sub dir/a b.txt.out"]);
        assert_eq!(plan.task_dir, "t/3.2");
    }

    #[test]
    fn an_item_that_escapes_the_task_directory_is_refused_naming_the_template() {
        let prepared = Prepared::new(&staging(&["{}"], &[], &[]), &[]).unwrap();
        let error = prepared.plan(&ctx(b"../etc/passwd", 1), 1).unwrap_err();
        assert!(error.contains("--transfer-file '{}'"), "{error}");
        assert!(error.contains("`..`"), "{error}");
        let error = prepared.plan(&ctx(b"/etc/passwd", 1), 1).unwrap_err();
        assert!(error.contains("absolute"), "{error}");
    }

    #[test]
    fn an_escaping_basefile_is_refused() {
        let error = Prepared::new(&staging(&[], &[], &["../x"]), &[]).unwrap_err();
        assert!(error.starts_with("invalid --basefile '../x'"), "{error}");
    }

    #[test]
    fn a_task_runs_in_its_own_directory_under_the_run_s() {
        assert_eq!(task_workdir("r1", 7, 2), "~/.cache/dts/runs/r1/t/7.2");
    }
}
