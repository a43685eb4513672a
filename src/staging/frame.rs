//! The framing that carries staged files, simple enough for a POSIX `sh` with `head -c` to
//! parse on the host: per entry a header line `F MODE LEN PATH` (then LEN bytes) or
//! `D MODE 0 PATH`, and `E` at the end. Only regular files and directories exist in the
//! format; every path is checked by [`super::path::validate`] when parsed, in both directions.

use super::path::{PathError, validate};
use thiserror::Error;

/// One staged entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File {
        path: String,
        mode: u32,
        bytes: Vec<u8>,
    },
    Dir {
        path: String,
        mode: u32,
    },
}

/// Why a frame stream was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("staging frame at byte {0}: {1}")]
    Malformed(usize, &'static str),
    #[error("staging frame at byte {0}: {1}")]
    Path(usize, PathError),
}

/// Appends `entry` to `out`.
pub fn encode(entry: &Entry, out: &mut Vec<u8>) {
    match entry {
        Entry::File { path, mode, bytes } => {
            file_header(path, *mode, bytes.len() as u64, out);
            out.extend_from_slice(bytes);
        }
        Entry::Dir { path, mode } => {
            out.extend(format!("D {:o} 0 {}\n", mode & 0o777, path).bytes())
        }
    }
}

/// Appends the header of a file entry; its `len` bytes must follow.
pub fn file_header(path: &str, mode: u32, len: u64, out: &mut Vec<u8>) {
    out.extend(format!("F {:o} {len} {path}\n", mode & 0o777).bytes());
}

/// Ends a stream.
pub fn finish(out: &mut Vec<u8>) {
    out.extend_from_slice(b"E\n");
}

/// Parses a whole stream; anything after `E`, a missing `E` or a short file is refused.
pub fn decode(input: &[u8]) -> Result<Vec<Entry>, FrameError> {
    let mut entries = Vec::new();
    let mut at = 0;
    loop {
        let line_end =
            input[at..]
                .iter()
                .position(|&b| b == b'\n')
                .ok_or(FrameError::Malformed(
                    at,
                    "stream ends without its end marker",
                ))?;
        let line = std::str::from_utf8(&input[at..at + line_end])
            .map_err(|_| FrameError::Malformed(at, "header is not UTF-8"))?;
        let start = at;
        at += line_end + 1;
        if line == "E" {
            return match at == input.len() {
                true => Ok(entries),
                false => Err(FrameError::Malformed(at, "bytes after the end marker")),
            };
        }
        let mut fields = line.splitn(4, ' ');
        let (kind, mode, len, path) =
            match (fields.next(), fields.next(), fields.next(), fields.next()) {
                (Some(k), Some(m), Some(l), Some(p)) => (k, m, l, p),
                _ => {
                    return Err(FrameError::Malformed(
                        start,
                        "header needs kind, mode, length, path",
                    ));
                }
            };
        let mode = u32::from_str_radix(mode, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or(FrameError::Malformed(start, "bad mode"))?;
        let len: usize = len
            .parse()
            .map_err(|_| FrameError::Malformed(start, "bad length"))?;
        let path = validate(path).map_err(|e| FrameError::Path(start, e))?;
        match kind {
            "F" => {
                let bytes = input
                    .get(at..at.saturating_add(len))
                    .ok_or(FrameError::Malformed(start, "file shorter than its length"))?;
                at += len;
                entries.push(Entry::File {
                    path,
                    mode,
                    bytes: bytes.to_vec(),
                });
            }
            "D" if len == 0 => entries.push(Entry::Dir { path, mode }),
            _ => {
                return Err(FrameError::Malformed(
                    start,
                    "only regular files and directories",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_stream_round_trips_byte_exact() {
        let entries = vec![
            Entry::Dir {
                path: "sub dir".into(),
                mode: 0o755,
            },
            Entry::File {
                path: "sub dir/é x.bin".into(),
                mode: 0o644,
                bytes: vec![0, 10, 255, b'E', 10],
            },
            Entry::File {
                path: "empty".into(),
                mode: 0o600,
                bytes: vec![],
            },
        ];
        let mut out = Vec::new();
        entries.iter().for_each(|e| encode(e, &mut out));
        finish(&mut out);
        assert_eq!(decode(&out).unwrap(), entries);
    }

    #[test]
    fn an_escaping_path_in_a_returned_stream_is_refused() {
        assert!(matches!(
            decode(b"F 644 1 ../x\nyE\n"),
            Err(FrameError::Path(0, PathError::Escapes(_)))
        ));
        assert!(matches!(
            decode(b"F 644 1 /x\nyE\n"),
            Err(FrameError::Path(0, PathError::Absolute(_)))
        ));
    }

    #[test]
    fn links_short_files_and_trailing_bytes_are_refused() {
        assert!(decode(b"L 777 0 x\nE\n").is_err());
        assert!(decode(b"F 644 9 x\nab").is_err());
        assert!(decode(b"E\nmore").is_err());
        assert!(decode(b"F 644 1 x\ny").is_err());
        assert!(decode(b"F 7777 0 x\nE\n").is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn any_file_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..256), name in "[a-z ]{1,8}") {
            let entry = Entry::File { path: name.trim().replace(' ', "_") + "f", mode: 0o644, bytes };
            let mut out = Vec::new();
            encode(&entry, &mut out);
            finish(&mut out);
            prop_assert_eq!(decode(&out).unwrap(), vec![entry]);
        }
    }
}
