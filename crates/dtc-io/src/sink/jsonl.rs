//! Training rows as JSON lines: one object per row, `identity`, `anchor_time` (ISO 8601 with
//! `+00:00`), then the value columns in row order.

use std::io::{BufWriter, Write};

use dtc_plan::record::Row;

use super::{Destination, PartWriter, RowSchema, RowSink, SinkSummary, part_name};
use crate::error::IoError;
use crate::format::{JsonStyle, iso_datetime, write_json, write_str};

enum Target {
    /// A file in a destination, started at the first row (a run without rows leaves no
    /// file) and sealed by `finish`.
    Part {
        destination: Box<dyn Destination>,
        part: Option<Box<dyn PartWriter>>,
    },
    Stream(BufWriter<Box<dyn Write + Send>>),
}

impl Target {
    fn writer(&mut self, name: &str) -> Result<&mut dyn Write, IoError> {
        Ok(match self {
            Target::Part { destination, part } => match part {
                Some(part) => part,
                None => part.insert(destination.create(name)?),
            },
            Target::Stream(stream) => stream,
        })
    }
}

/// Writes rows as JSON lines to a destination file or a stream (stdout).
pub struct JsonLinesSink {
    columns: Vec<String>,
    target: Target,
    target_name: String,
    line: String,
    summary: SinkSummary,
}

impl JsonLinesSink {
    /// One file, `part-<run id>-<worker>-00000.jsonl`, sealed when the sink finishes; none
    /// when no row comes.
    pub fn to_destination(
        rows: &RowSchema,
        destination: Box<dyn Destination>,
        run_id: &str,
        worker: u32,
    ) -> JsonLinesSink {
        let name = part_name(run_id, worker, 0, "jsonl");
        JsonLinesSink::new(
            rows,
            Target::Part {
                destination,
                part: None,
            },
            name,
        )
    }

    /// Lines to a stream, e.g. stdout.
    pub fn to_writer(rows: &RowSchema, out: Box<dyn Write + Send>) -> JsonLinesSink {
        let stream = BufWriter::with_capacity(64 * 1024, out);
        JsonLinesSink::new(rows, Target::Stream(stream), "output stream".to_owned())
    }

    fn new(rows: &RowSchema, target: Target, target_name: String) -> JsonLinesSink {
        JsonLinesSink {
            columns: rows.columns.iter().map(|c| c.name.clone()).collect(),
            target,
            target_name,
            line: String::new(),
            summary: SinkSummary::default(),
        }
    }

    fn write_error(&self, source: std::io::Error) -> IoError {
        IoError::Write {
            target: self.target_name.clone(),
            source,
        }
    }
}

impl RowSink for JsonLinesSink {
    fn write_identity(&mut self, identity: &str, rows: &[Row]) -> Result<(), IoError> {
        for row in rows {
            let line = &mut self.line;
            line.clear();
            line.push_str("{\"identity\":");
            write_str(identity, JsonStyle::Compact, line);
            line.push_str(",\"anchor_time\":\"");
            line.push_str(&iso_datetime(&row.anchor_time));
            line.push('"');
            for (name, value) in self.columns.iter().zip(&row.values) {
                line.push(',');
                write_str(name, JsonStyle::Compact, line);
                line.push(':');
                write_json(value, JsonStyle::Compact, line);
            }
            line.push_str("}\n");
            let written = self
                .target
                .writer(&self.target_name)?
                .write_all(self.line.as_bytes());
            if let Err(e) = written {
                return Err(self.write_error(e));
            }
            self.summary.rows += 1;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<SinkSummary, IoError> {
        let JsonLinesSink {
            target,
            target_name,
            mut summary,
            ..
        } = *self;
        match target {
            Target::Part { part, .. } => summary.parts.extend(part.map(|p| p.seal()).transpose()?),
            Target::Stream(mut stream) => {
                stream.flush().map_err(|source| IoError::Write {
                    target: target_name,
                    source,
                })?;
            }
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{LocalStage, publish_parts};
    use crate::sink::{RowColumn, visible_files};
    use chrono::{TimeZone, Utc};
    use dtc_plan::plan::FieldType;
    use dtc_plan::value::Value;
    use std::sync::{Arc, Mutex};

    fn schema() -> RowSchema {
        RowSchema {
            columns: vec![
                RowColumn {
                    name: "w.n".to_owned(),
                    ty: FieldType::Integer,
                },
                RowColumn {
                    name: "w.x".to_owned(),
                    ty: FieldType::Float,
                },
            ],
            aggregates: Vec::new(),
        }
    }

    fn rows() -> Vec<Row> {
        vec![Row {
            identity: Arc::from("u\"1"),
            anchor_time: Utc.with_ymd_and_hms(2018, 3, 7, 22, 35, 31).unwrap(),
            values: vec![Value::Int(3), Value::Float(0.0)],
        }]
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const EXPECTED: &str = "{\"identity\":\"u\\\"1\",\"anchor_time\":\"2018-03-07T22:35:31+00:00\",\"w.n\":3,\"w.x\":0.0}\n";

    #[test]
    fn rows_to_a_stream() {
        let out = Shared::default();
        let mut sink = Box::new(JsonLinesSink::to_writer(&schema(), Box::new(out.clone())));
        sink.write_identity("u\"1", &rows()).unwrap();
        sink.write_identity("u2", &[]).unwrap();
        let summary = sink.finish().unwrap();
        assert_eq!(summary.rows, 1);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, EXPECTED);
    }

    #[test]
    fn rows_to_a_file_visible_only_once_published() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Box::new(LocalStage::create(dir.path(), "r", 4).unwrap());
        let mut sink = Box::new(JsonLinesSink::to_destination(&schema(), dest, "r", 4));
        sink.write_identity("u\"1", &rows()).unwrap();
        let summary = sink.finish().unwrap();
        assert!(visible_files(dir.path()).unwrap().is_empty());
        publish_parts(dir.path(), "r", 4, &summary.parts);
        assert_eq!(
            visible_files(dir.path()).unwrap(),
            vec![
                "_dtc-commit-004.json".to_owned(),
                "part-r-004-00000.jsonl".to_owned()
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(&summary.parts[0].name)).unwrap(),
            EXPECTED
        );
        let dest = Box::new(LocalStage::create(dir.path(), "empty", 4).unwrap());
        let sink = Box::new(JsonLinesSink::to_destination(&schema(), dest, "empty", 4));
        assert!(sink.finish().unwrap().parts.is_empty(), "no rows, no part");
    }
}
