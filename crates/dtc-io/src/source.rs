//! The record-level source seam: records with a partition and an offset, the one shape that
//! bounded inputs (files, objects) and an unbounded log (Kafka) both have.
//!
//! A run polls a [`RecordSource`]. A partition is announced ([`Polled::Partition`]) before its
//! records, and the run answers with where the partition resumes ([`RecordSource::start_at`],
//! from the checkpoint a store keeps under [`PartitionInfo::checkpoint_key`]): records below
//! that offset were applied by an earlier run and are not handed out again. A partition whose
//! data turns out damaged is reported once ([`Polled::BadPartition`]); nothing read from it can
//! be trusted, and the run decides whether to stop or to leave it out.
//!
//! An unbounded log adds two things. Partitions come and go while it runs (a consumer group's
//! rebalance): a partition announced again later is announced again with its `start_at`, and
//! partitions being taken away are announced by [`Polled::Revoked`] before they go, so that a
//! run commits what it holds of them first. And a run tells the source what the store has
//! committed ([`RecordSource::committed`]), which a log may record for its lag tools; a store's
//! checkpoint stays the only source of truth for where a partition resumes.

use std::collections::VecDeque;

use crate::dead_letter::Position;
use crate::error::IoError;
use crate::input::{Input, LineReader};

/// A partition's number within one source, in the order the source announced them.
pub type PartitionId = u32;

/// What a run knows of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Shown in dead letters and messages: a path, an object's URL, `topic/partition`.
    pub name: String,
    /// The key of the partition's checkpoint in a store; `None` for inputs that cannot be read
    /// again (stdin), which are never checkpointed.
    pub checkpoint_key: Option<String>,
    /// The partition's size in bytes where known (part of a run's fingerprint).
    pub size: Option<u64>,
    /// Whether offsets are a file's lines (shown 1-based) or a log's offsets.
    pub lines: bool,
}

impl PartitionInfo {
    /// Where the record at `offset` was, as a dead letter shows it.
    pub fn position(&self, offset: i64) -> Position {
        if self.lines {
            Position::Line(offset.saturating_add(1).max(0) as u64)
        } else {
            Position::Offset(offset)
        }
    }
}

/// One record of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRecord<'a> {
    pub partition: PartitionId,
    /// Its offset in the partition: a file's 0-based line index, a Kafka offset.
    pub offset: i64,
    /// The record's bytes; empty only for a log record without a value (a Kafka tombstone),
    /// since a file's blank lines are not records.
    pub payload: &'a [u8],
    /// The record was longer than the maximum and `payload` holds only its beginning.
    pub truncated: bool,
}

/// What a poll found.
#[derive(Debug)]
pub enum Polled<'a> {
    /// A partition starts; see [`RecordSource::partition`] and [`RecordSource::start_at`].
    Partition(PartitionId),
    Record(SourceRecord<'a>),
    /// A bounded partition was read to its end; `next_offset` is where a later run resumes.
    PartitionEnd {
        partition: PartitionId,
        next_offset: i64,
    },
    /// The partition's data is damaged (a corrupt or truncated compressed file): every record
    /// handed out from it may be garbage. The source has moved on to the next partition.
    BadPartition {
        partition: PartitionId,
        error: IoError,
    },
    /// These partitions are being taken from this run (a rebalance). No record of them is
    /// handed out after this; the run commits (or drops) what it holds of them before its next
    /// poll, after which the source lets them go.
    Revoked(Vec<PartitionId>),
    /// Nothing to read now (an unbounded source); the run may commit and poll again.
    Idle,
    /// A bounded source has no more partitions.
    End,
}

/// Counts a source keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Records below their partition's start offset, applied by an earlier run.
    pub skipped: u64,
    /// Byte-order marks skipped at the start of a file.
    pub byte_order_marks: u64,
}

/// Records in partitions. See the module docs for the protocol.
pub trait RecordSource: Send {
    fn poll(&mut self) -> Result<Polled<'_>, IoError>;
    fn partition(&self, id: PartitionId) -> Option<&PartitionInfo>;
    /// Where partition `id` resumes: its records below `offset` are skipped.
    fn start_at(&mut self, id: PartitionId, offset: i64) -> Result<(), IoError>;
    fn stats(&self) -> SourceStats;
    /// The store committed these partitions up to these next offsets. Only a log that keeps
    /// progress for its own tools (a Kafka group's committed offsets) does anything with it.
    fn committed(&mut self, _offsets: &[(PartitionId, i64)]) -> Result<(), IoError> {
        Ok(())
    }
    /// Records not read yet, per partition, where the source can tell (a log's lag).
    fn lag(&mut self) -> Vec<(PartitionId, i64)> {
        Vec::new()
    }
}

/// Inputs read one after another, each a partition of line records (offset = line index).
pub struct FileSource {
    inputs: VecDeque<Box<dyn Input>>,
    partitions: Vec<PartitionInfo>,
    current: Option<OpenFile>,
    stats: SourceStats,
}

struct OpenFile {
    id: PartitionId,
    reader: LineReader,
}

impl FileSource {
    pub fn new(inputs: Vec<Box<dyn Input>>) -> FileSource {
        FileSource {
            inputs: inputs.into(),
            partitions: Vec::new(),
            current: None,
            stats: SourceStats::default(),
        }
    }

    fn open_next(&mut self) -> Result<Option<PartitionId>, IoError> {
        let Some(input) = self.inputs.pop_front() else {
            return Ok(None);
        };
        let id = self.partitions.len() as PartitionId;
        self.partitions.push(PartitionInfo {
            name: input.name().to_string(),
            checkpoint_key: input.checkpoint_key(),
            size: input.size(),
            lines: true,
        });
        let reader = LineReader::open(input)?;
        if reader.skipped_bom() {
            self.stats.byte_order_marks += 1;
        }
        self.current = Some(OpenFile { id, reader });
        Ok(Some(id))
    }
}

impl RecordSource for FileSource {
    // Called once per record of a batch run: inlined into the read loop.
    #[inline]
    fn poll(&mut self) -> Result<Polled<'_>, IoError> {
        let Some(file) = self.current.as_mut() else {
            let next_id = self.partitions.len() as PartitionId;
            return match self.open_next() {
                Ok(Some(id)) => Ok(Polled::Partition(id)),
                Ok(None) => Ok(Polled::End),
                // Damaged from its first bytes (a broken gzip header): reported under the
                // partition it would have been.
                Err(error @ IoError::Corrupt { .. }) => Ok(Polled::BadPartition {
                    partition: next_id,
                    error,
                }),
                Err(e) => Err(e),
            };
        };
        let id = file.id;
        match file.reader.advance() {
            Ok(true) => {}
            Ok(false) => {
                let next_offset = file.reader.lines_read() as i64;
                self.close();
                return Ok(Polled::PartitionEnd {
                    partition: id,
                    next_offset,
                });
            }
            Err(error @ IoError::Corrupt { .. }) => {
                self.close();
                return Ok(Polled::BadPartition {
                    partition: id,
                    error,
                });
            }
            Err(e) => return Err(e),
        }
        let Some(file) = self.current.as_mut() else {
            return Ok(Polled::End);
        };
        let line = file.reader.line()?;
        Ok(Polled::Record(SourceRecord {
            partition: id,
            offset: line.number as i64 - 1,
            payload: line.bytes,
            truncated: line.truncated,
        }))
    }

    fn partition(&self, id: PartitionId) -> Option<&PartitionInfo> {
        self.partitions.get(id as usize)
    }

    fn start_at(&mut self, id: PartitionId, offset: i64) -> Result<(), IoError> {
        if let Some(file) = self.current.as_mut().filter(|f| f.id == id) {
            file.reader.skip_through(offset.max(0) as u64);
        }
        Ok(())
    }

    fn stats(&self) -> SourceStats {
        SourceStats {
            skipped: self.stats.skipped + self.current.as_ref().map_or(0, |f| f.reader.skipped()),
            ..self.stats
        }
    }
}

impl FileSource {
    fn close(&mut self) {
        if let Some(file) = self.current.take() {
            self.stats.skipped += file.reader.skipped();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;
    use crate::input::ReaderInput;

    fn input(name: &str, bytes: &[u8]) -> Box<dyn Input> {
        Box::new(ReaderInput::new(
            name,
            Box::new(Cursor::new(bytes.to_vec())),
        ))
    }

    /// Every poll, rendered; partitions start at `starts[id]`.
    fn drain(source: &mut dyn RecordSource, starts: &[i64]) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let polled = source.poll().unwrap();
            let text = match polled {
                Polled::Partition(id) => {
                    let start = starts.get(id as usize).copied().unwrap_or(0);
                    source.start_at(id, start).unwrap();
                    format!("partition {id} {}", source.partition(id).unwrap().name)
                }
                Polled::Record(r) => format!(
                    "{}@{}: {}",
                    r.partition,
                    r.offset,
                    String::from_utf8_lossy(r.payload)
                ),
                Polled::PartitionEnd {
                    partition,
                    next_offset,
                } => format!("end {partition} next {next_offset}"),
                Polled::BadPartition { partition, error } => format!("bad {partition}: {error}"),
                Polled::Revoked(ids) => format!("revoked {ids:?}"),
                Polled::Idle => "idle".into(),
                Polled::End => break,
            };
            seen.push(text);
        }
        seen
    }

    #[test]
    fn files_are_partitions_of_line_records_that_resume_at_their_start() {
        let mut source = FileSource::new(vec![
            input("a", b"a1\n\na3\na4\n"),
            input("b", b"\xEF\xBB\xBFb1\nb2"),
        ]);
        let seen = drain(&mut source, &[2]);
        assert_eq!(
            seen,
            vec![
                "partition 0 a",
                "0@2: a3",
                "0@3: a4",
                "end 0 next 4",
                "partition 1 b",
                "1@0: b1",
                "1@1: b2",
                "end 1 next 2",
            ]
        );
        assert_eq!(
            source.stats(),
            SourceStats {
                skipped: 1,
                byte_order_marks: 1
            }
        );
        let info = source.partition(0).unwrap();
        assert_eq!(info.position(2), Position::Line(3));
        assert_eq!(info.checkpoint_key, None, "a stream cannot be read again");
    }

    #[test]
    fn a_damaged_partition_is_reported_and_the_next_one_is_read() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in 0..5000 {
            writeln!(enc, "{{\"n\":{i}}}").unwrap();
        }
        let gz = enc.finish().unwrap();
        let cut = &gz[..gz.len() - 20];
        let mut source = FileSource::new(vec![input("cut.gz", cut), input("ok", b"x\n")]);
        let seen = drain(&mut source, &[]);
        let bad = seen
            .iter()
            .position(|s| s.starts_with("bad 0: cut.gz is corrupt or truncated"))
            .unwrap_or_else(|| panic!("{seen:?}"));
        assert_eq!(
            &seen[bad + 1..],
            ["partition 1 ok", "1@0: x", "end 1 next 1"]
        );
    }
}
