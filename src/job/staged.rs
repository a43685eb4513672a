//! Which files a job's tasks stage, resolved: the staging flags over the job file's
//! top-level keys (the job-wide defaults), and in a pipeline each stage's own keys over
//! those. Every task's paths are rendered and checked here, so a path that would leave the
//! task's directory is exit 2 before anything runs, at the stage's key when it gave it.
//!
//! Files pass between stages through the submitter's working directory: a stage returns
//! its results there, and a later stage's `transfer` names them. So a basefile a stage
//! waits for may not exist yet at submit: it is checked here only for stages that wait for
//! nothing, and otherwise when the task is staged (a missing input is a task error).

use std::path::PathBuf;

use super::file::StageStaging;
use super::{Context, Matrix, Pipeline, StagingFlags, Task};
use crate::error::{Error, Located};
use crate::staging::{Prepared, Staging};

/// The flags over the file's top-level keys: a list given replaces the file's; `--trc T`
/// adds `{}` to the transfers and `T` to the returns, and cleans up.
pub(super) fn defaults(flags: &StagingFlags, from_file: Staging) -> Staging {
    let pick = |flag: &[String], file: Vec<String>| match flag.is_empty() {
        true => file,
        false => flag.to_vec(),
    };
    let mut staging = Staging {
        transfer: pick(&flags.transfer, from_file.transfer),
        returns: pick(&flags.returns, from_file.returns),
        cleanup: flags.cleanup || from_file.cleanup || !flags.trc.is_empty(),
        basefiles: pick(&flags.basefiles, from_file.basefiles),
        local_dir: None,
    };
    for template in &flags.trc {
        if !staging.transfer.iter().any(|t| t == "{}") {
            staging.transfer.push("{}".into());
        }
        staging.returns.push(template.clone());
    }
    staging
}

/// A plain job's staging, checked for every task.
pub(super) fn plain(staging: Staging, matrix: &Matrix, tasks: &[Task]) -> Result<Staging, Error> {
    if staging.is_off() {
        return Ok(staging);
    }
    let names = matrix.names();
    let with_values = tasks.iter().map(|t| (t, matrix.values_of(t.seq)));
    check(&staging, &names, with_values, false).map_err(Error::Usage)?;
    basefiles_exist(&staging.basefiles).map_err(Error::Usage)?;
    with_local_dir(staging)
}

/// Gives each stage of `pipeline` its staging: `defaults` with the stage's `own` keys over
/// them, checked for each of its tasks (`tasks` are the run's, stage after stage). An
/// error in a stage's own template points at it.
pub(super) fn stages(
    pipeline: &mut Pipeline,
    defaults: &Staging,
    own: &[(&StageStaging, &Located)],
    tasks: &[Task],
) -> Result<(), Error> {
    for (index, stage) in pipeline.stages.iter_mut().enumerate() {
        let (own, at) = own[index];
        let staging = over(defaults, own);
        if !staging.is_off() {
            let names = stage.matrix.names();
            let stage_tasks = &tasks[pipeline.graph.tasks_of(index)];
            let in_stage = |e: String| format!("stage `{}`: {e}", stage.name);
            let with_values = || {
                let matrix = &stage.matrix;
                (stage_tasks.iter().zip(1..)).map(|(t, position)| (t, matrix.values_of(position)))
            };
            for (template, place) in own_templates(own) {
                check(&template, &names, with_values(), true).map_err(|e| {
                    Error::Located(Located {
                        message: in_stage(e),
                        ..place.clone()
                    })
                })?;
            }
            check(&staging, &names, with_values(), false).map_err(|e| Error::Usage(in_stage(e)))?;
            let waits = !stage.after.is_empty() || stage.each_after.is_some();
            if !waits {
                basefiles_exist(&staging.basefiles).map_err(|e| {
                    let place = own.basefiles.as_ref().and_then(|b| b.first());
                    Error::Located(Located {
                        message: in_stage(e),
                        ..place.map_or(at, |(_, at)| at).clone()
                    })
                })?;
            }
        }
        stage.staging = Some(match staging.is_off() {
            true => staging,
            false => with_local_dir(staging)?,
        });
    }
    Ok(())
}

/// Each transfer and return template a stage gives, alone, with where it was written.
fn own_templates(own: &StageStaging) -> Vec<(Staging, &Located)> {
    let transfers = own.transfer.iter().flatten().map(|(t, at)| {
        let only = Staging {
            transfer: vec![t.clone()],
            ..Staging::default()
        };
        (only, at)
    });
    let returns = own.returns.iter().flatten().map(|(t, at)| {
        let only = Staging {
            returns: vec![t.clone()],
            ..Staging::default()
        };
        (only, at)
    });
    transfers.chain(returns).collect()
}

/// A stage's own keys over the job-wide ones: each key it gives replaces the default.
pub(super) fn over(defaults: &Staging, own: &StageStaging) -> Staging {
    let list = |own: &Option<Vec<(String, Located)>>, default: &[String]| match own {
        Some(values) => values.iter().map(|(v, _)| v.clone()).collect(),
        None => default.to_vec(),
    };
    Staging {
        transfer: list(&own.transfer, &defaults.transfer),
        returns: list(&own.returns, &defaults.returns),
        cleanup: own.cleanup.unwrap_or(defaults.cleanup),
        basefiles: list(&own.basefiles, &defaults.basefiles),
        local_dir: None,
    }
}

/// Renders every task's paths; an error names the task and the template (by the job
/// file's key when `as_keys`, else by the flag).
fn check<'a>(
    staging: &Staging,
    names: &[String],
    tasks: impl Iterator<Item = (&'a Task, Vec<&'a str>)>,
    as_keys: bool,
) -> Result<(), String> {
    let prepared = Prepared::new(staging, names)?;
    let prepared = match as_keys {
        true => prepared.named_as_keys(),
        false => prepared,
    };
    for (task, params) in tasks {
        let ctx = Context {
            item: &task.item,
            seq: task.seq,
            index: task.index,
            host: "",
            params: &params,
        };
        prepared
            .plan(&ctx, 1)
            .map_err(|e| format!("task {}: {e}", task.index))?;
    }
    Ok(())
}

fn basefiles_exist(basefiles: &[String]) -> Result<(), String> {
    for base in basefiles {
        if let Err(e) = std::fs::metadata(base) {
            return Err(format!("--basefile '{base}': {e}"));
        }
    }
    Ok(())
}

/// Relative paths start from the submitter's working directory.
fn with_local_dir(mut staging: Staging) -> Result<Staging, Error> {
    let here: PathBuf = std::env::current_dir()
        .map_err(|e| Error::Usage(format!("cannot stage files: no working directory: {e}")))?;
    staging.local_dir = Some(here);
    Ok(staging)
}
