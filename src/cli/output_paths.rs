//! The files a run writes besides its store (`--joblog`, `--junit`, `--html`), checked
//! before anything runs: a path that cannot be written is a usage error (exit 2, nothing
//! ran), not a surprise after the last task.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::Error;
use crate::store::RunSpec;

/// Checks every output file the run's spec names.
pub fn check(spec: &RunSpec) -> Result<(), Error> {
    for (flag, path) in [
        ("--joblog", &spec.joblog),
        ("--junit", &spec.junit),
        ("--html", &spec.html),
    ] {
        if let Some(path) = path {
            check_path(flag, path)?;
        }
    }
    Ok(())
}

/// Checks the file one flag names: a usage error naming the flag and the path.
pub fn check_path(flag: &str, path: &Path) -> Result<(), Error> {
    writable(path).map_err(|why| Error::Usage(format!("{flag} {}: {why}", path.display())))
}

/// Whether `path` can be opened for writing, or created, without touching it.
fn writable(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err("is a directory".into()),
        Ok(_) => std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map(drop)
            .map_err(|e| e.to_string()),
        // ENOTDIR: a parent is a file; the parent check says which.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            creatable_in(parent(path))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn creatable_in(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(format!("{} is not a directory", dir.display())),
        Ok(_) => {
            let c_dir = CString::new(dir.as_os_str().as_bytes())
                .map_err(|_| "the path holds a NUL byte".to_string())?;
            // SAFETY: access reads a valid NUL-terminated path and has no other effect.
            let ok = unsafe { libc::access(c_dir.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "cannot create a file in {}: {}",
                    dir.display(),
                    std::io::Error::last_os_error()
                ))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("directory {} does not exist", dir.display()))
        }
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_paths_are_checked_without_being_created() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("report.xml");
        assert_eq!(writable(&new), Ok(()));
        assert!(!new.exists(), "checking creates nothing");
        assert_eq!(writable(tmp.path()), Err("is a directory".into()));
        let missing = tmp.path().join("no/such/dir/x.xml");
        assert_eq!(
            writable(&missing),
            Err(format!(
                "directory {} does not exist",
                tmp.path().join("no/such/dir").display()
            ))
        );
        std::fs::write(tmp.path().join("file"), "").unwrap();
        assert!(
            writable(&tmp.path().join("file/x.xml"))
                .unwrap_err()
                .ends_with("is not a directory")
        );
    }
}
