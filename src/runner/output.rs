//! Task output as the user sees it: each line tagged `[host index] line`, written whole so
//! lines of different tasks never interleave mid-line. Pure apart from the writers it is
//! given.

use std::io::{self, Write};

/// How task output is shown while a run goes on (the store always has all of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputMode {
    /// Each line as `[host index] line`.
    #[default]
    Tagged,
    /// Each task's output in one block when it ends, like `parallel --group`.
    Grouped,
    /// Lines as they are, untagged (still whole lines).
    Raw,
    /// Nothing (read it with `dts logs`).
    None,
}

/// A line longer than this is written in pieces rather than held in memory.
const MAX_PENDING: usize = 4 << 20;

/// Bytes of one stream of one task that do not end in a newline yet.
#[derive(Debug, Default)]
pub struct LineBuf {
    pending: Vec<u8>,
}

impl LineBuf {
    /// Feeds `data`; calls `emit` with every complete line (without its newline).
    pub fn feed(
        &mut self,
        data: &[u8],
        mut emit: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(last_newline) = data.iter().rposition(|&b| b == b'\n') else {
            self.pending.extend_from_slice(data);
            if self.pending.len() >= MAX_PENDING {
                emit(&std::mem::take(&mut self.pending))?;
            }
            return Ok(());
        };
        let (complete, rest) = data.split_at(last_newline + 1);
        let mut lines = complete[..complete.len() - 1].split(|&b| b == b'\n');
        if let Some(first) = lines.next() {
            if self.pending.is_empty() {
                emit(first)?;
            } else {
                self.pending.extend_from_slice(first);
                emit(&std::mem::take(&mut self.pending))?;
            }
        }
        for line in lines {
            emit(line)?;
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    /// Emits a final line that had no newline.
    pub fn finish(&mut self, emit: impl FnOnce(&[u8]) -> io::Result<()>) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        emit(&std::mem::take(&mut self.pending))
    }
}

/// Writes `[tag] line\n`, or `line\n` when `tag` is `None`.
pub fn write_tagged(w: &mut impl Write, tag: Option<&str>, line: &[u8]) -> io::Result<()> {
    if let Some(tag) = tag {
        w.write_all(b"[")?;
        w.write_all(tag.as_bytes())?;
        w.write_all(b"] ")?;
    }
    w.write_all(line)?;
    w.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> Vec<String> {
        let mut buf = LineBuf::default();
        let mut lines = Vec::new();
        for chunk in chunks {
            buf.feed(chunk, |l| {
                lines.push(String::from_utf8_lossy(l).into_owned());
                Ok(())
            })
            .unwrap();
        }
        buf.finish(|l| {
            lines.push(String::from_utf8_lossy(l).into_owned());
            Ok(())
        })
        .unwrap();
        lines
    }

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        assert_eq!(
            collect(&[b"hel", b"lo\nwor", b"ld\n"]),
            vec!["hello", "world"]
        );
    }

    #[test]
    fn several_lines_in_one_chunk_and_a_partial_last_line() {
        assert_eq!(collect(&[b"a\nb\n\nc"]), vec!["a", "b", "", "c"]);
    }

    #[test]
    fn no_output_no_lines() {
        assert!(collect(&[]).is_empty());
        assert_eq!(collect(&[b"\n"]), vec![""]);
    }

    #[test]
    fn binary_bytes_pass_through() {
        let mut buf = LineBuf::default();
        let mut got = Vec::new();
        buf.feed(b"\xff\x00x\n", |l| {
            got.extend_from_slice(l);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, b"\xff\x00x");
    }

    #[test]
    fn tagged_line_format() {
        let mut out = Vec::new();
        write_tagged(&mut out, Some("h1 7"), b"hello").unwrap();
        write_tagged(&mut out, None, b"raw").unwrap();
        assert_eq!(out, b"[h1 7] hello\nraw\n");
    }
}
