//! The stream a stage-in helper reads ([`script::stage_in`](super::script::stage_in)): the
//! contents the host's cache lacks, framed as `c/HASH` entries, the end marker, then the
//! manifest placing every input in the task's directory.
//!
//! Each content is read once, straight into the stream, and hashed on the way: a file not
//! read before this run is read before the host's cache is asked whether it has it
//! ([`read_unhashed`]), and dropped from the stream if it does; one whose hash is known
//! from an earlier read is read only if the host needs it ([`complete`]). Either way a
//! file that changed while it was staged is refused.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use super::frame;
use super::local::{Found, Hashes, Input, Stamp, describe_missing, stamp_of};

/// How much of a file is read and hashed at a time (it is hashed while in the cache).
const PIECE: u64 = 1 << 20;

/// A stream being built: the contents read so far, each with its hash and its frame's
/// place in `out`.
#[derive(Debug, Default)]
pub struct Building {
    out: Vec<u8>,
    fresh: Vec<(String, Range<usize>)>,
}

/// Reads the files of `found` not hashed yet into a new stream (sized for `capacity`
/// bytes of contents), fills in their hashes and remembers them in `hashes`.
pub fn read_unhashed(
    found: &mut Found,
    hashes: &Hashes,
    capacity: u64,
) -> Result<Building, String> {
    let mut building = Building {
        out: Vec::with_capacity(capacity as usize + 80 * found.inputs.len() + 2),
        fresh: Vec::new(),
    };
    for (at, full, stamp) in std::mem::take(&mut found.unhashed) {
        let Input::File {
            path,
            mode,
            hash,
            len,
        } = &mut found.inputs[at]
        else {
            unreachable!("only files are hashed")
        };
        let start = building.out.len();
        *hash = read_framed(&full, path, *mode, *len, Some(stamp), &mut building.out)?;
        hashes.remember(&full, stamp, hash);
        building
            .fresh
            .push((hash.clone(), start..building.out.len()));
    }
    Ok(building)
}

/// The whole stream: of the contents read already, those in `send` (each once); then the
/// other contents in `send`, read now; the end marker; the manifest.
pub fn complete(
    base: &Path,
    building: Building,
    inputs: &[Input],
    send: &[String],
) -> Result<Vec<u8>, String> {
    let Building { mut out, fresh } = building;
    let mut pending: HashSet<&str> = send.iter().map(String::as_str).collect();
    // Forward, so the first read of a content is the one kept; then dropped from the
    // back, so the places of those before stay valid.
    let dropped: Vec<Range<usize>> = fresh
        .into_iter()
        .filter(|(hash, _)| !pending.remove(hash.as_str()))
        .map(|(_, range)| range)
        .collect();
    // The host has these (or another task sends them), or this task read one twice.
    for range in dropped.into_iter().rev() {
        out.drain(range);
    }
    for input in inputs {
        let Input::File {
            path,
            mode,
            hash,
            len,
        } = input
        else {
            continue;
        };
        if !pending.remove(hash.as_str()) {
            continue;
        }
        let read = read_framed(&base.join(path), path, *mode, *len, None, &mut out)?;
        if read != *hash {
            return Err(format!("input file '{path}' changed while it was staged"));
        }
    }
    frame::finish(&mut out);
    for input in inputs {
        let line = match input {
            Input::Dir { path, mode } => format!("- {mode:o} {path}\n"),
            Input::File {
                path, mode, hash, ..
            } => format!("{hash} {mode:o} {path}\n"),
        };
        out.extend_from_slice(line.as_bytes());
    }
    Ok(out)
}

/// Appends the frame of one file to `out`, reading it in pieces and hashing each while it
/// is fresh; returns the hash. The file must still be `len` bytes long (and, given its
/// `stamp`, unchanged since it was found).
fn read_framed(
    full: &Path,
    path: &str,
    mode: u32,
    len: u64,
    stamp: Option<Stamp>,
    out: &mut Vec<u8>,
) -> Result<String, String> {
    let changed = || format!("input file '{path}' changed while it was staged");
    let mut file = fs::File::open(full).map_err(|e| describe_missing(path, &e))?;
    // The header names the content by its hash, known only once it is read: written with
    // a placeholder of the same length, then filled in.
    frame::file_header(&format!("c/{}", "0".repeat(32)), mode, len, out);
    let hash_at = out.len() - 33;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut left = len;
    while left > 0 {
        let start = out.len();
        let read = (&mut file)
            .take(left.min(PIECE))
            .read_to_end(out)
            .map_err(|e| format!("cannot read input file '{path}': {e}"))?;
        if read == 0 {
            return Err(changed());
        }
        hasher.update(&out[start..]);
        left -= read as u64;
    }
    let mut probe = [0u8; 1];
    let longer = file.read(&mut probe).map_err(|e| e.to_string())? > 0;
    let moved = match stamp {
        Some(stamp) => file
            .metadata()
            .map(|m| stamp_of(&m) != stamp)
            .unwrap_or(true),
        None => false,
    };
    if longer || moved {
        return Err(changed());
    }
    let hash = format!("{:032x}", hasher.digest128());
    out[hash_at..hash_at + 32].copy_from_slice(hash.as_bytes());
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_all(dir: &Path, paths: &[&str], hashes: &Hashes) -> Found {
        let mut found = Found::default();
        for path in paths {
            hashes.find(dir, path, &mut found).unwrap();
        }
        found
    }

    #[test]
    fn a_stream_holds_each_content_to_send_once_then_the_manifest_of_every_input() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(dir.path().join("big"), &big).unwrap();
        fs::write(dir.path().join("same"), &big).unwrap();
        fs::write(dir.path().join("small"), b"s").unwrap();
        let hashes = Hashes::default();
        let mut found = find_all(dir.path(), &["big", "same", "small"], &hashes);
        let building = read_unhashed(&mut found, &hashes, 0).unwrap();
        let h = super::super::local::hash;
        // The host has `small` already: only the big content goes, once.
        let out = complete(dir.path(), building, &found.inputs, &[h(&big)]).unwrap();
        let end = out.windows(2).position(|w| w == b"E\n").map(|i| i + 2);
        let (frames, manifest) = out.split_at(end.unwrap());
        let entries = frame::decode(frames).unwrap();
        assert_eq!(entries.len(), 1);
        let frame::Entry::File { path, bytes, .. } = &entries[0] else {
            unreachable!()
        };
        assert_eq!((path, bytes), (&format!("c/{}", h(&big)), &big));
        let manifest = String::from_utf8(manifest.to_vec()).unwrap();
        let lines: Vec<&str> = manifest.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with(&h(&big)) && lines[1].ends_with(" same"));
        assert!(lines[2].starts_with(&h(b"s")) && lines[2].ends_with(" small"));
        // Read once: the hashes are remembered, so a later task reads only what it sends.
        let mut later = find_all(dir.path(), &["small"], &hashes);
        assert!(later.unhashed.is_empty());
        let building = read_unhashed(&mut later, &hashes, 0).unwrap();
        let out = complete(dir.path(), building, &later.inputs, &[h(b"s")]).unwrap();
        assert!(out.starts_with(
            format!("F {:o} 1 c/{}\ns", mode_of(dir.path(), "small"), h(b"s")).as_bytes()
        ));
    }

    fn mode_of(dir: &Path, name: &str) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_file_that_changed_since_it_was_found_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), b"12345").unwrap();
        let hashes = Hashes::default();
        let mut found = find_all(dir.path(), &["a"], &hashes);
        fs::write(dir.path().join("a"), b"123").unwrap();
        let error = read_unhashed(&mut found, &hashes, 0).unwrap_err();
        assert_eq!(error, "input file 'a' changed while it was staged");
        // Known by its hash, then rewritten with the same size: the content differs.
        fs::write(dir.path().join("b"), b"xy").unwrap();
        let mut first = find_all(dir.path(), &["b"], &hashes);
        read_unhashed(&mut first, &hashes, 0).unwrap();
        let known = first.inputs.clone();
        fs::write(dir.path().join("b"), b"zz").unwrap();
        let Input::File { hash, .. } = &known[0] else {
            unreachable!()
        };
        let error = complete(
            dir.path(),
            Building::default(),
            &known,
            std::slice::from_ref(hash),
        )
        .unwrap_err();
        assert_eq!(error, "input file 'b' changed while it was staged");
    }
}
