//! Task output as the user sees it: each line tagged `[host index] line`, or raw bytes,
//! written a whole line at a time so lines of different tasks never interleave mid-line
//! (a line over [`MAX_PENDING`] is the one exception, written in marked parts). Raw output
//! is byte for byte what the task wrote. Pure apart from the readers and writers given.

use std::io::{self, Read, Write};

/// How task output is shown while a run goes on (the store always has all of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputMode {
    /// Each line as `[host index] line`.
    #[default]
    Tagged,
    /// Each task's output in one block when it ends, like `parallel --group`.
    Grouped,
    /// The task's bytes exactly, untagged (still a whole line at a time).
    Raw,
    /// Nothing (read it with `dts logs`).
    None,
}

/// A line longer than this is written in parts rather than held in memory: tagged, each
/// part after the first is marked `[host index+]`; raw, the parts are written as they are.
pub const MAX_PENDING: usize = 4 << 20;

/// What [`LineBuf`] hands on: a whole line, or a part of one too long to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    /// The bytes, without the newline.
    pub bytes: &'a [u8],
    /// It continues a part written before (the line was split).
    pub continues: bool,
    /// A newline followed it in the task's output.
    pub ends_line: bool,
}

/// Bytes of one stream of one task that do not end in a newline yet.
#[derive(Debug, Default)]
pub struct LineBuf {
    pending: Vec<u8>,
    /// Part of the pending line was already handed on.
    split: bool,
}

impl LineBuf {
    /// Feeds `data`; calls `emit` with every complete line, and with the pending part of a
    /// line once it reaches [`MAX_PENDING`].
    pub fn feed(
        &mut self,
        data: &[u8],
        mut emit: impl FnMut(Piece<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(last_newline) = data.iter().rposition(|&b| b == b'\n') else {
            self.pending.extend_from_slice(data);
            if self.pending.len() >= MAX_PENDING {
                let piece = Piece {
                    bytes: &self.pending,
                    continues: self.split,
                    ends_line: false,
                };
                let result = emit(piece);
                self.pending.clear();
                self.split = true;
                result?;
            }
            return Ok(());
        };
        let (complete, rest) = data.split_at(last_newline + 1);
        let mut lines = complete[..complete.len() - 1].split(|&b| b == b'\n');
        if let Some(first) = lines.next() {
            let continues = std::mem::take(&mut self.split);
            let result = if self.pending.is_empty() {
                emit(Piece {
                    bytes: first,
                    continues,
                    ends_line: true,
                })
            } else {
                self.pending.extend_from_slice(first);
                let result = emit(Piece {
                    bytes: &self.pending,
                    continues,
                    ends_line: true,
                });
                self.pending.clear();
                result
            };
            result?;
        }
        for line in lines {
            emit(Piece {
                bytes: line,
                continues: false,
                ends_line: true,
            })?;
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    /// Emits a final line that had no newline.
    pub fn finish(&mut self, emit: impl FnOnce(Piece<'_>) -> io::Result<()>) -> io::Result<()> {
        let continues = std::mem::take(&mut self.split);
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        emit(Piece {
            bytes: &pending,
            continues,
            ends_line: false,
        })
    }
}

/// Writes one piece as `mode` shows it: tagged `[tag] line\n` (`[tag+]` for the later
/// parts of a split line), or raw, the bytes exactly as the task wrote them (a newline only
/// where the task wrote one).
pub fn write_piece(w: &mut impl Write, tag: Option<&str>, piece: Piece<'_>) -> io::Result<()> {
    let Some(tag) = tag else {
        w.write_all(piece.bytes)?;
        return if piece.ends_line {
            w.write_all(b"\n")
        } else {
            Ok(())
        };
    };
    w.write_all(b"[")?;
    w.write_all(tag.as_bytes())?;
    w.write_all(if piece.continues { b"+] " } else { b"] " })?;
    w.write_all(piece.bytes)?;
    w.write_all(b"\n")
}

/// `--output grouped`: copies one stream of a task as a block, ending it with a newline
/// when the task's last line had none, so the next block starts on a line of its own.
pub fn copy_block(from: &mut impl Read, to: &mut impl Write) -> io::Result<()> {
    let mut buf = vec![0; 64 * 1024];
    let mut last = None;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        last = Some(buf[n - 1]);
    }
    match last {
        Some(b) if b != b'\n' => to.write_all(b"\n"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `mode` shows for a task writing `chunks`: tagged with `t`, or raw.
    fn shown(tag: Option<&str>, chunks: &[&[u8]]) -> Vec<u8> {
        let mut buf = LineBuf::default();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.feed(chunk, |p| write_piece(&mut out, tag, p)).unwrap();
        }
        buf.finish(|p| write_piece(&mut out, tag, p)).unwrap();
        out
    }

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        assert_eq!(
            shown(Some("t"), &[b"hel", b"lo\nwor", b"ld\n"]),
            b"[t] hello\n[t] world\n"
        );
    }

    #[test]
    fn several_lines_in_one_chunk_and_a_partial_last_line() {
        assert_eq!(
            shown(Some("t"), &[b"a\nb\n\nc"]),
            b"[t] a\n[t] b\n[t] \n[t] c\n"
        );
    }

    #[test]
    fn no_output_no_lines() {
        assert!(shown(Some("t"), &[]).is_empty());
        assert_eq!(shown(Some("t"), &[b"\n"]), b"[t] \n");
    }

    #[test]
    fn raw_output_is_byte_exact_without_a_final_newline() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let chunks: Vec<&[u8]> = data.chunks(4096).collect();
        assert_eq!(shown(None, &chunks), data);
        assert_eq!(shown(None, &[b"a\nb"]), b"a\nb");
        assert_eq!(shown(None, &[b"\xff\x00x\n"]), b"\xff\x00x\n");
    }

    #[test]
    fn raw_output_of_a_line_over_the_limit_is_byte_exact() {
        let mut data = vec![b'x'; MAX_PENDING * 2 + 10];
        data.extend_from_slice(b"\nend");
        let chunks: Vec<&[u8]> = data.chunks(1 << 16).collect();
        assert_eq!(shown(None, &chunks), data);
    }

    #[test]
    fn tagged_line_over_the_limit_marks_its_later_parts() {
        let long = vec![b'x'; MAX_PENDING + 5];
        let chunks: Vec<&[u8]> = long.chunks(1 << 16).chain([&b"\nnext\n"[..]]).collect();
        let out = shown(Some("h 1"), &chunks);
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
        assert_eq!(lines.len(), 4, "two parts, the next line, the empty rest");
        assert!(lines[0].starts_with(b"[h 1] x"));
        assert_eq!(lines[1], b"[h 1+] xxxxx");
        assert_eq!(lines[2], b"[h 1] next");
        let xs: usize = lines[..2]
            .iter()
            .map(|l| l.iter().filter(|&&b| b == b'x').count())
            .sum();
        assert_eq!(xs, MAX_PENDING + 5, "nothing lost at the split");
    }

    #[test]
    fn grouped_block_without_final_newline_ends_its_line() {
        let mut out = Vec::new();
        copy_block(&mut &b"one\ntwo"[..], &mut out).unwrap();
        copy_block(&mut &b"three\n"[..], &mut out).unwrap();
        copy_block(&mut &b""[..], &mut out).unwrap();
        assert_eq!(out, b"one\ntwo\nthree\n");
    }
}
