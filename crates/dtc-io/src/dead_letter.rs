//! The dead-letter output: every rejected line, with where it came from and why.
//!
//! One JSON object per line:
//! `{"input": "events/a.json", "line": 12, "reason": "invalid_json", "detail": "...", "raw": "..."}`.
//! `raw` is the original line, with invalid UTF-8 replaced by U+FFFD.

use std::io::{BufWriter, Write};

use serde::Serialize;

use crate::error::IoError;
use crate::reject::{RejectReason, Rejection};

/// Rejections counted by reason, in [`RejectReason::ALL`] order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectCounts([u64; RejectReason::ALL.len()]);

impl RejectCounts {
    pub fn add(&mut self, reason: RejectReason) {
        self.0[reason.index()] += 1;
    }

    pub fn get(&self, reason: RejectReason) -> u64 {
        self.0[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(name, count)` for every reason with a non-zero count, in a stable order.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        RejectReason::ALL
            .iter()
            .map(|r| (r.as_str(), self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }
}

#[derive(Serialize)]
struct DeadLetter<'a> {
    input: &'a str,
    line: u64,
    reason: &'static str,
    detail: &'a str,
    raw: &'a str,
}

/// Writes dead letters to any byte sink (a file, stderr, or [`std::io::sink`] to only count),
/// buffered; call [`DeadLetterWriter::finish`] to flush.
pub struct DeadLetterWriter<W: Write> {
    out: BufWriter<W>,
    target: String,
    counts: RejectCounts,
}

impl<W: Write> DeadLetterWriter<W> {
    /// `target` names the destination in error messages.
    pub fn new(out: W, target: impl Into<String>) -> DeadLetterWriter<W> {
        DeadLetterWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            target: target.into(),
            counts: RejectCounts::default(),
        }
    }

    /// Records one rejected line.
    pub fn write(
        &mut self,
        input: &str,
        line: u64,
        rejection: &Rejection,
        raw: &[u8],
    ) -> Result<(), IoError> {
        self.counts.add(rejection.reason);
        let raw = String::from_utf8_lossy(raw);
        let letter = DeadLetter {
            input,
            line,
            reason: rejection.reason.as_str(),
            detail: &rejection.detail,
            raw: &raw,
        };
        serde_json::to_writer(&mut self.out, &letter)?;
        self.out.write_all(b"\n").map_err(|source| IoError::Write {
            target: self.target.clone(),
            source,
        })
    }

    pub fn counts(&self) -> &RejectCounts {
        &self.counts
    }

    /// Flushes everything written and returns the counts.
    pub fn finish(mut self) -> Result<RejectCounts, IoError> {
        self.out.flush().map_err(|source| IoError::Write {
            target: self.target.clone(),
            source,
        })?;
        Ok(self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_lines_and_counts() {
        let mut buf = Vec::new();
        let mut writer = DeadLetterWriter::new(&mut buf, "memory");
        writer
            .write(
                "a.json",
                3,
                &Rejection::new(RejectReason::InvalidJson, "EOF at line 1 column 7"),
                b"{\"a\": ",
            )
            .unwrap();
        writer
            .write(
                "b.json.gz",
                10,
                &Rejection::new(RejectReason::InvalidUtf8, "invalid UTF-8 at byte 2"),
                b"{\xff}",
            )
            .unwrap();
        writer
            .write(
                "b.json.gz",
                11,
                &Rejection::new(RejectReason::InvalidJson, "x"),
                b"[",
            )
            .unwrap();
        let counts = writer.finish().unwrap();
        assert_eq!(counts.get(RejectReason::InvalidJson), 2);
        assert_eq!(counts.total(), 3);
        assert_eq!(
            counts.nonzero().collect::<Vec<_>>(),
            vec![("invalid_json", 2), ("invalid_utf8", 1)]
        );
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"input":"a.json","line":3,"reason":"invalid_json","detail":"EOF at line 1 column 7","raw":"{\"a\": "}"#
        );
        assert_eq!(
            lines[1],
            "{\"input\":\"b.json.gz\",\"line\":10,\"reason\":\"invalid_utf8\",\"detail\":\"invalid UTF-8 at byte 2\",\"raw\":\"{\u{fffd}}\"}"
        );
        assert_eq!(lines.len(), 3);
    }
}
