//! `dts report RUN [--html FILE]`: a run's end-of-run summary on stdout, or its HTML page
//! (see [`crate::report::html`]), during the run or after it.

use std::io::Write;
use std::path::Path;

use super::{ReportArgs, output_paths};
use crate::error::{Error, exit};
use crate::report::{document, end, html};
use crate::store::{self, StateDir, StateEnv, reader};

pub fn run(args: ReportArgs) -> Result<i32, Error> {
    let state = StateDir::locate(&StateEnv::from_process())?;
    let id = state.resolve(&args.run)?;
    let to_stdout = args.html.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if let Some(path) = args.html.as_deref().filter(|_| !to_stdout) {
        output_paths::check_path("--html", path)?;
    }
    let detail = reader::detail(&state, &id)?;
    let now = store::epoch_now();
    let stats = detail.stats();
    let doc = document::build(&detail, &stats, now, |t| detail.last_stderr_line(t));
    let write_err = |e: std::io::Error| Error::Runtime(format!("writing the report: {e}"));
    match args.html {
        None => print!("{}", end::render(&doc)),
        Some(_) if to_stdout => {
            let page = html::render(&html::page(&detail, doc, now));
            let mut out = std::io::stdout().lock();
            out.write_all(page.as_bytes()).map_err(write_err)?;
            out.flush().map_err(write_err)?;
        }
        Some(path) => {
            write_page(&path, &detail, doc, now)?;
            eprintln!("dts: wrote {}", path.display());
        }
    }
    Ok(exit::SUCCESS)
}

/// Writes the run's page to `path`.
pub fn write_page(
    path: &Path,
    detail: &reader::RunDetail,
    doc: document::RunDocument,
    now: f64,
) -> Result<(), Error> {
    let page = html::render(&html::page(detail, doc, now));
    std::fs::write(path, page).map_err(|e| {
        Error::Runtime(format!(
            "cannot write the HTML report {}: {e}",
            path.display()
        ))
    })
}
