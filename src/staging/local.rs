//! The local side of staging: reading a task's inputs (regular files and directories
//! only) and writing what a host returned, strictly: every returned path stays under the
//! local working directory, no symbolic link is ever followed or created, and a file is
//! written whole (to a temporary name, then renamed) or not at all.

use std::collections::HashMap;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::frame::Entry;

/// One input, found locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    File {
        /// Relative to the task directory.
        path: String,
        mode: u32,
        hash: String,
        len: u64,
    },
    Dir {
        path: String,
        mode: u32,
    },
}

/// Content hashes of files already read this run, by path, size and modification time,
/// so a file many tasks need is read once.
#[derive(Debug, Default)]
pub struct Hashes {
    known: Mutex<HashMap<PathBuf, (Stamp, String)>>,
}

/// What identifies a file's content between reads: size and modification time.
pub type Stamp = (u64, i64, i64);

/// A task's inputs as found: a file not read yet this run has an empty `hash` until it is
/// read ([`Found::unhashed`]).
#[derive(Debug, Default)]
pub struct Found {
    pub inputs: Vec<Input>,
    /// Positions in `inputs` of the files to hash, with their full path and stamp.
    pub unhashed: Vec<(usize, PathBuf, Stamp)>,
}

/// The content hash naming a file in a host's cache.
pub fn hash(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// The stamp of a file, to tell whether it changed since it was found.
pub fn stamp_of(meta: &fs::Metadata) -> Stamp {
    (meta.len(), meta.mtime(), meta.mtime_nsec())
}

impl Hashes {
    /// Finds `rel` (and, for a directory, everything under it) below `base`, without
    /// reading: a file already read this run (same path, size and mtime) comes with its
    /// hash. A missing input, a link inside a directory, or a device is an error naming
    /// the file.
    pub fn find(&self, base: &Path, rel: &str, found: &mut Found) -> Result<(), String> {
        let full = base.join(rel);
        // A named input may be a link to a file: its content is what is sent.
        let meta = fs::metadata(&full).map_err(|e| describe_missing(rel, &e))?;
        self.add(&full, rel, &meta, found)
    }

    /// Remembers the hash of `full` as it was at `stamp`.
    pub fn remember(&self, full: &Path, stamp: Stamp, hash: &str) {
        let mut known = self.known.lock().expect("not poisoned");
        known.insert(full.to_path_buf(), (stamp, hash.to_string()));
    }

    fn add(
        &self,
        full: &Path,
        rel: &str,
        meta: &fs::Metadata,
        found: &mut Found,
    ) -> Result<(), String> {
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            found.inputs.push(Input::Dir {
                path: rel.to_string(),
                mode,
            });
            let mut names: Vec<_> = fs::read_dir(full)
                .map_err(|e| format!("cannot read input directory '{rel}': {e}"))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("cannot read input directory '{rel}': {e}"))?;
            names.sort();
            for name in names {
                let name = name
                    .to_str()
                    .ok_or_else(|| format!("input '{rel}' holds a name that is not UTF-8"))?;
                let child_rel = format!("{rel}/{name}");
                super::path::validate(&child_rel).map_err(|e| format!("input {e}"))?;
                let child = full.join(name);
                let child_meta = fs::symlink_metadata(&child)
                    .map_err(|e| format!("cannot read input '{child_rel}': {e}"))?;
                if child_meta.file_type().is_symlink() {
                    return Err(format!(
                        "input '{child_rel}' is a symbolic link; only regular files and directories are staged"
                    ));
                }
                self.add(&child, &child_rel, &child_meta, found)?;
            }
            return Ok(());
        }
        if !meta.is_file() {
            return Err(format!("input '{rel}' is not a regular file or directory"));
        }
        let stamp = stamp_of(meta);
        let remembered = (self.known.lock().expect("not poisoned").get(full))
            .filter(|(known, _)| *known == stamp)
            .map(|(_, hash)| hash.clone());
        if remembered.is_none() {
            let at = found.inputs.len();
            found.unhashed.push((at, full.to_path_buf(), stamp));
        }
        found.inputs.push(Input::File {
            path: rel.to_string(),
            mode,
            hash: remembered.unwrap_or_default(),
            len: stamp.0,
        });
        Ok(())
    }
}

pub(super) fn describe_missing(rel: &str, e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::NotFound => format!("input file '{rel}' is missing"),
        _ => format!("cannot read input file '{rel}': {e}"),
    }
}

/// Whether `path` is one of `asked` or inside one of them.
pub fn was_asked(path: &str, asked: &[String]) -> bool {
    asked.iter().any(|a| {
        path == a
            || path
                .strip_prefix(a.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Writes returned entries under `base`; returns the bytes written. Paths were validated
/// by the frame decoder; here no existing link on the way is followed.
pub fn write_returned(base: &Path, entries: &[Entry]) -> Result<u64, String> {
    let mut written = 0;
    for entry in entries {
        match entry {
            Entry::Dir { path, mode } => {
                let dir = make_parents(base, path, true)?;
                let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(mode | 0o700));
            }
            Entry::File { path, mode, bytes } => {
                let target = make_parents(base, path, false)?;
                write_file(&target, path, *mode, bytes)?;
                written += bytes.len() as u64;
            }
        }
    }
    Ok(written)
}

/// Creates the directories of `rel` under `base` (and `rel` itself when `is_dir`),
/// refusing any that exists as a link or a non-directory; returns the full path.
fn make_parents(base: &Path, rel: &str, is_dir: bool) -> Result<PathBuf, String> {
    let parts: Vec<&str> = rel.split('/').collect();
    let dirs = if is_dir { parts.len() } else { parts.len() - 1 };
    let mut at = base.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        if i >= dirs {
            break;
        }
        let shown = parts[..=i].join("/");
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "returned '{rel}': local '{shown}' is a symbolic link, which a return never follows"
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "returned '{rel}': local '{shown}' is not a directory"
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => match fs::create_dir(&at) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let m = fs::symlink_metadata(&at).map_err(|e| e.to_string())?;
                    if !m.is_dir() {
                        return Err(format!(
                            "returned '{rel}': local '{shown}' is not a directory"
                        ));
                    }
                }
                Err(e) => return Err(format!("cannot create local '{shown}': {e}")),
            },
            Err(e) => return Err(format!("cannot use local '{shown}': {e}")),
        }
    }
    Ok(at)
}

/// Writes to a fresh temporary name beside `target` (created exclusively, so never
/// through a link), then renames it over `target`, which replaces a link rather than
/// following it; an existing link or directory there is refused.
fn write_file(target: &Path, rel: &str, mode: u32, bytes: &[u8]) -> Result<(), String> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(format!(
                "returned '{rel}': the local file is a symbolic link, which a return never follows"
            ));
        }
        Ok(m) if m.is_dir() => {
            return Err(format!("returned '{rel}': the local path is a directory"));
        }
        _ => {}
    }
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let temp = target.with_file_name(format!(".{name}.dts-{}", std::process::id()));
    let fail = |e: std::io::Error| format!("cannot write returned '{rel}': {e}");
    let _ = fs::remove_file(&temp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(fail)?;
    let done = file
        .write_all(bytes)
        .and_then(|()| file.set_permissions(fs::Permissions::from_mode(mode | 0o600)))
        .and_then(|()| fs::rename(&temp, target));
    if let Err(e) = done {
        let _ = fs::remove_file(&temp);
        return Err(fail(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, bytes: &[u8]) -> Entry {
        Entry::File {
            path: path.into(),
            mode: 0o644,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn returned_files_land_byte_exact_under_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let entries = [
            Entry::Dir {
                path: "out é".into(),
                mode: 0o755,
            },
            file("out é/a b.bin", &[0, 255, 10]),
            file("deep/er/x", b""),
        ];
        assert_eq!(write_returned(dir.path(), &entries).unwrap(), 3);
        assert_eq!(
            fs::read(dir.path().join("out é/a b.bin")).unwrap(),
            [0, 255, 10]
        );
        assert!(dir.path().join("deep/er/x").is_file());
    }

    #[test]
    fn a_return_never_writes_through_a_local_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("f"), dir.path().join("f")).unwrap();
        let error = write_returned(dir.path(), &[file("out/x", b"1")]).unwrap_err();
        assert!(error.contains("local 'out' is a symbolic link"), "{error}");
        let error = write_returned(dir.path(), &[file("f", b"1")]).unwrap_err();
        assert!(error.contains("returned 'f'"), "{error}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn only_what_was_asked_for_is_taken_back() {
        let asked = ["out".to_string(), "a.txt".to_string()];
        assert!(was_asked("out/x", &asked));
        assert!(was_asked("a.txt", &asked));
        assert!(!was_asked("outer", &asked));
        assert!(!was_asked("b.txt", &asked));
    }

    #[test]
    fn a_missing_input_names_the_file_and_a_link_inside_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let hashes = Hashes::default();
        let error = hashes
            .find(dir.path(), "nope.txt", &mut Found::default())
            .unwrap_err();
        assert_eq!(error, "input file 'nope.txt' is missing");
        fs::create_dir(dir.path().join("d")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("d/l")).unwrap();
        let error = hashes
            .find(dir.path(), "d", &mut Found::default())
            .unwrap_err();
        assert!(error.contains("'d/l' is a symbolic link"), "{error}");
    }

    #[test]
    fn a_file_read_once_comes_with_its_hash_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        fs::write(&path, b"one").unwrap();
        let hashes = Hashes::default();
        let mut found = Found::default();
        hashes.find(dir.path(), "a", &mut found).unwrap();
        let (at, full, stamp) = found.unhashed[0].clone();
        assert_eq!((at, &full), (0, &path));
        hashes.remember(&full, stamp, &hash(b"one"));
        let mut again = Found::default();
        hashes.find(dir.path(), "a", &mut again).unwrap();
        assert!(again.unhashed.is_empty());
        assert!(matches!(&again.inputs[0], Input::File { hash: h, .. } if *h == hash(b"one")));
        fs::write(&path, b"two!").unwrap();
        let mut changed = Found::default();
        hashes.find(dir.path(), "a", &mut changed).unwrap();
        assert_eq!(changed.unhashed.len(), 1, "a new size is a new content");
    }
}
