//! The dead-letter output: every rejected record, with where it came from and why.
//!
//! One JSON object per line:
//! `{"run": "...", "input": "events/a.json", "line": 12, "reason": "invalid_json", "detail": "...", "raw": "..."}`.
//! `raw` is the original record, with invalid UTF-8 replaced by U+FFFD; a file's records have
//! their `line` (1-based), a log's their `offset`.
//!
//! A run's dead letters are written to a staged file beside the dead-letter file and appended
//! to it at the run's commit ([`StagedDeadLetters`], [`DeadLetterAppend`]): a run that dies
//! before its commit adds nothing, one that is re-run after it adds its letters once, and the
//! file is never truncated.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// Where a rejected record was in its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A file's 1-based line number.
    Line(u64),
    /// A log's record offset (a Kafka partition's).
    Offset(i64),
    /// A byte of the (compressed) file: where a damaged file was found damaged.
    Byte(u64),
}

#[derive(Serialize)]
struct DeadLetter<'a> {
    run: &'a str,
    input: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    byte: Option<u64>,
    reason: &'static str,
    detail: &'a str,
    raw: &'a str,
}

/// Writes dead letters to any byte sink (a file, stderr, or [`std::io::sink`] to only count),
/// buffered; call [`DeadLetterWriter::finish`] to flush.
pub struct DeadLetterWriter<W: Write> {
    out: BufWriter<W>,
    target: String,
    run: String,
    counts: RejectCounts,
    bytes: u64,
}

impl<W: Write> DeadLetterWriter<W> {
    /// `target` names the destination in error messages; `run` is written into every line.
    pub fn new(out: W, target: impl Into<String>, run: impl Into<String>) -> DeadLetterWriter<W> {
        DeadLetterWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            target: target.into(),
            run: run.into(),
            counts: RejectCounts::default(),
            bytes: 0,
        }
    }

    /// Records one rejected record.
    pub fn write(
        &mut self,
        input: &str,
        position: Position,
        rejection: &Rejection,
        raw: &[u8],
    ) -> Result<(), IoError> {
        self.counts.add(rejection.reason);
        let raw = String::from_utf8_lossy(raw);
        let (line, offset, byte) = match position {
            Position::Line(n) => (Some(n), None, None),
            Position::Offset(o) => (None, Some(o), None),
            Position::Byte(b) => (None, None, Some(b)),
        };
        let letter = DeadLetter {
            run: &self.run,
            input,
            line,
            offset,
            byte,
            reason: rejection.reason.as_str(),
            detail: &rejection.detail,
            raw: &raw,
        };
        let mut text = serde_json::to_vec(&letter)?;
        text.push(b'\n');
        self.bytes += text.len() as u64;
        self.out.write_all(&text).map_err(|source| IoError::Write {
            target: self.target.clone(),
            source,
        })
    }

    /// Flushes everything written and returns the counts.
    pub fn finish(self) -> Result<RejectCounts, IoError> {
        Ok(self.into_inner()?.1)
    }

    fn into_inner(self) -> Result<(W, RejectCounts, u64), IoError> {
        let DeadLetterWriter {
            out,
            target,
            counts,
            bytes,
            ..
        } = self;
        let out = out.into_inner().map_err(|e| IoError::Write {
            target,
            source: e.into_error(),
        })?;
        Ok((out, counts, bytes))
    }
}

/// A run's dead letters, written beside the dead-letter file until the run's commit.
pub struct StagedDeadLetters {
    writer: DeadLetterWriter<File>,
    target: PathBuf,
    staged: PathBuf,
}

/// The staged file of `run_id`'s dead letters for `target`.
fn staged_path(target: &Path, run_id: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{run_id}.staged"))
}

impl StagedDeadLetters {
    /// Starts (or starts over) the staged dead letters of `run_id` for `target`, creating the
    /// target's directory if needed.
    pub fn create(target: &Path, run_id: &str) -> Result<StagedDeadLetters, IoError> {
        let staged = staged_path(target, run_id);
        let cannot = |source| IoError::Write {
            target: target.display().to_string(),
            source,
        };
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(cannot)?;
        }
        let file = File::create(&staged).map_err(cannot)?;
        Ok(StagedDeadLetters {
            writer: DeadLetterWriter::new(file, target.display().to_string(), run_id),
            target: target.to_path_buf(),
            staged,
        })
    }

    pub fn write(
        &mut self,
        input: &str,
        position: Position,
        rejection: &Rejection,
        raw: &[u8],
    ) -> Result<(), IoError> {
        self.writer.write(input, position, rejection, raw)
    }

    /// Makes the staged letters durable and returns what the commit must append, or `None`
    /// (and no staged file) when the run rejected nothing.
    pub fn seal(self) -> Result<(RejectCounts, Option<DeadLetterAppend>), IoError> {
        let StagedDeadLetters {
            writer,
            target,
            staged,
        } = self;
        let (file, counts, bytes) = writer.into_inner()?;
        let cannot = |source| IoError::Write {
            target: staged.display().to_string(),
            source,
        };
        if bytes == 0 {
            drop(file);
            std::fs::remove_file(&staged).map_err(cannot)?;
            return Ok((counts, None));
        }
        file.sync_all().map_err(cannot)?;
        let base_len = match std::fs::metadata(&target) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(IoError::Write {
                    target: target.display().to_string(),
                    source,
                });
            }
        };
        Ok((
            counts,
            Some(DeadLetterAppend {
                target: target.display().to_string(),
                staged: staged.display().to_string(),
                staged_len: bytes,
                base_len,
            }),
        ))
    }

    /// Removes the staged files of other runs for `target` that are not `keep` (runs that died
    /// before their commit). Returns how many.
    pub fn remove_stale(target: &Path, keep: &[&str]) -> Result<usize, IoError> {
        let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return Ok(0);
        };
        let dir = match target.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => dir.to_path_buf(),
            None => PathBuf::from("."),
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(IoError::Write {
                    target: dir.display().to_string(),
                    source,
                });
            }
        };
        let prefix = format!(".{name}.");
        let mut removed = 0;
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(run_id) = file
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".staged"))
            else {
                continue;
            };
            if keep.contains(&run_id) {
                continue;
            }
            if std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Appending a run's staged dead letters to the dead-letter file: recorded with the run's
/// commit, done after it, and safe to repeat after a crash at any point of an earlier try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterAppend {
    pub target: String,
    pub staged: String,
    pub staged_len: u64,
    /// The dead-letter file's length when the run committed: the letters go right after it.
    pub base_len: u64,
}

impl DeadLetterAppend {
    pub fn publish(&self) -> Result<(), IoError> {
        let target = Path::new(&self.target);
        let staged = Path::new(&self.staged);
        let cannot = |path: &Path| {
            let target = path.display().to_string();
            move |source| IoError::Write { target, source }
        };
        let current = match std::fs::metadata(target) {
            Ok(meta) => Some(meta.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(cannot(target)(e)),
        };
        let done = current.is_some_and(|len| len >= self.base_len + self.staged_len);
        if !done {
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(target)
                .map_err(cannot(target))?;
            // An append cut short by a crash is cut back to where this run's letters start;
            // a file someone shortened since is appended to at its end.
            let at = match current {
                Some(len) if len >= self.base_len => self.base_len,
                Some(len) => len,
                None => 0,
            };
            out.set_len(at).map_err(cannot(target))?;
            out.seek(SeekFrom::Start(at)).map_err(cannot(target))?;
            let mut letters = File::open(staged).map_err(cannot(staged))?;
            let copied = std::io::copy(&mut letters, &mut out).map_err(cannot(target))?;
            if copied != self.staged_len {
                return Err(cannot(staged)(std::io::Error::other(format!(
                    "the staged dead letters hold {copied} bytes, {} were sealed",
                    self.staged_len
                ))));
            }
            dtc_failpoint::hit("io.dead_letters.appended");
            out.sync_all().map_err(cannot(target))?;
        }
        match std::fs::remove_file(staged) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(cannot(staged)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_lines_and_counts() {
        let mut buf = Vec::new();
        let mut writer = DeadLetterWriter::new(&mut buf, "memory", "r7");
        writer
            .write(
                "a.json",
                Position::Line(3),
                &Rejection::new(RejectReason::InvalidJson, "EOF at line 1 column 7"),
                b"{\"a\": ",
            )
            .unwrap();
        writer
            .write(
                "b.json.gz",
                Position::Line(10),
                &Rejection::new(RejectReason::InvalidUtf8, "invalid UTF-8 at byte 2"),
                b"{\xff}",
            )
            .unwrap();
        writer
            .write(
                "events/3",
                Position::Offset(11),
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
            r#"{"run":"r7","input":"a.json","line":3,"reason":"invalid_json","detail":"EOF at line 1 column 7","raw":"{\"a\": "}"#
        );
        assert_eq!(
            lines[1],
            "{\"run\":\"r7\",\"input\":\"b.json.gz\",\"line\":10,\"reason\":\"invalid_utf8\",\"detail\":\"invalid UTF-8 at byte 2\",\"raw\":\"{\u{fffd}}\"}"
        );
        assert_eq!(
            lines[2],
            r#"{"run":"r7","input":"events/3","offset":11,"reason":"invalid_json","detail":"x","raw":"["}"#
        );
        assert_eq!(lines.len(), 3);
    }

    fn stage(target: &Path, run: &str, letters: u64) -> Option<DeadLetterAppend> {
        let mut staged = StagedDeadLetters::create(target, run).unwrap();
        for line in 0..letters {
            staged
                .write(
                    "in.json",
                    Position::Line(line + 1),
                    &Rejection::new(RejectReason::InvalidJson, "bad"),
                    b"{",
                )
                .unwrap();
        }
        staged.seal().unwrap().1
    }

    fn lines_of(target: &Path) -> Vec<String> {
        std::fs::read_to_string(target)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn runs_append_their_letters_and_never_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/dead.jsonl");
        stage(&target, "r1", 2).unwrap().publish().unwrap();
        stage(&target, "r2", 1).unwrap().publish().unwrap();
        let lines = lines_of(&target);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("\"run\":\"r1\""));
        assert!(lines[2].contains("\"run\":\"r2\""));
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1,
            "no staged file is left"
        );
        // A run without rejects stages nothing.
        assert_eq!(stage(&target, "r3", 0), None);
        assert_eq!(lines_of(&target).len(), 3);
    }

    #[test]
    fn an_append_repeated_after_a_crash_adds_the_letters_once() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dead.jsonl");
        stage(&target, "r1", 1).unwrap().publish().unwrap();
        let append = stage(&target, "r2", 3).unwrap();
        // The crash cut the append short: half of the letters made it.
        let staged = std::fs::read(&append.staged).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&target)
            .unwrap();
        file.write_all(&staged[..staged.len() / 2]).unwrap();
        drop(file);
        append.publish().unwrap();
        assert_eq!(lines_of(&target).len(), 4);
        // Once more after it finished: nothing changes.
        append.publish().unwrap();
        assert_eq!(lines_of(&target).len(), 4);
        assert!(lines_of(&target).iter().all(|l| l.ends_with('}')));
    }

    #[test]
    fn stale_staged_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dead.jsonl");
        let kept = stage(&target, "pending", 1).unwrap();
        stage(&target, "crashed", 1).unwrap();
        assert_eq!(
            StagedDeadLetters::remove_stale(&target, &["pending"]).unwrap(),
            1
        );
        kept.publish().unwrap();
        assert_eq!(lines_of(&target).len(), 1);
    }
}
