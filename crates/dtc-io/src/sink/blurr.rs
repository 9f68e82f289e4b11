//! Blurr's text output (docs/language.md section 15), byte for byte as Blurr's `json.dumps` printed it:
//! `", "` and `": "` separators, non-ASCII escaped, floats like Python's `repr`, datetimes as
//! ISO 8601 with `+00:00`.

use std::io::{BufWriter, Write};

use dtc_plan::plan::{AggregateLayout, ColumnRole};
use dtc_plan::record::Row;
use dtc_plan::value::{Value, py_str};

use super::{RowAggregate, RowSchema, RowSink, SinkSummary};
use crate::error::IoError;
use crate::format::{JsonStyle, iso_datetime, write_json, write_str};

const STYLE: JsonStyle = JsonStyle::Python;

/// A window run in Blurr's format: one line per identity, `[identity, [row, …]]`, each row an
/// object with `<aggregate>._identity` and `<aggregate>.<field>` for every window/variable
/// aggregate in spec order.
pub struct BlurrTextSink {
    aggregates: Vec<RowAggregate>,
    out: BufWriter<Box<dyn Write + Send>>,
    line: String,
    summary: SinkSummary,
}

impl BlurrTextSink {
    pub fn new(rows: &RowSchema, out: Box<dyn Write + Send>) -> BlurrTextSink {
        BlurrTextSink {
            aggregates: rows.aggregates.clone(),
            out: BufWriter::with_capacity(64 * 1024, out),
            line: String::new(),
            summary: SinkSummary::default(),
        }
    }
}

fn write_error(source: std::io::Error) -> IoError {
    IoError::Write {
        target: "Blurr text output".to_owned(),
        source,
    }
}

impl RowSink for BlurrTextSink {
    fn write_identity(&mut self, identity: &str, rows: &[Row]) -> Result<(), IoError> {
        let line = &mut self.line;
        line.clear();
        line.push('[');
        write_str(identity, STYLE, line);
        line.push_str(", [");
        for (r, row) in rows.iter().enumerate() {
            if r > 0 {
                line.push_str(", ");
            }
            line.push('{');
            let mut first = true;
            for agg in &self.aggregates {
                let mut key = |name: &str, line: &mut String| {
                    if !first {
                        line.push_str(", ");
                    }
                    first = false;
                    write_str(&format!("{}.{name}", agg.name), STYLE, line);
                    line.push_str(": ");
                };
                key("_identity", line);
                write_str(identity, STYLE, line);
                for (field, index) in &agg.fields {
                    key(field, line);
                    write_json(row.values.get(*index).unwrap_or(&Value::Null), STYLE, line);
                }
            }
            line.push('}');
        }
        line.push_str("]]\n");
        self.out.write_all(line.as_bytes()).map_err(write_error)?;
        self.summary.rows += rows.len() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<SinkSummary, IoError> {
        self.out.flush().map_err(write_error)?;
        Ok(std::mem::take(&mut self.summary))
    }
}

/// One stored record in Blurr's streaming text format (no trailing newline):
/// `["<identity>/<aggregate>/<dim1:dim2>/<timestamp>", {…}]`, the object holding the layout's
/// columns in order (`_identity`, `_start_time`, `_end_time`, declared fields, dimensions).
///
/// The key is Blurr's store key: identity and dimension aggregates have an empty timestamp
/// part (`u1/user//`, `u1/session/s1/`), and activity blocks, which Blurr keyed by their start
/// time, end with `_start_time` in ISO 8601 (`u1/activity//2018-03-07T22:35:31+00:00`). An
/// aggregate is taken as an activity aggregate when it has no dimensions and a `_start_time`
/// column.
pub fn blurr_record_line(
    identity: &str,
    aggregate: &str,
    dims: &[Value],
    layout: &AggregateLayout,
    columns: &[Value],
) -> String {
    let mut key = String::with_capacity(identity.len() + aggregate.len() + 32);
    key.push_str(identity);
    key.push('/');
    key.push_str(aggregate);
    key.push('/');
    for (i, dim) in dims.iter().enumerate() {
        if i > 0 {
            key.push(':');
        }
        key.push_str(&py_str(dim));
    }
    key.push('/');
    if dims.is_empty() {
        let start = layout
            .columns
            .iter()
            .position(|c| c.role == ColumnRole::StartTime)
            .and_then(|i| columns.get(i));
        if let Some(Value::DateTime(start)) = start {
            key.push_str(&iso_datetime(start));
        }
    }

    let mut line = String::with_capacity(key.len() + 64 * layout.columns.len());
    line.push('[');
    write_str(&key, STYLE, &mut line);
    line.push_str(", {");
    for (i, column) in layout.columns.iter().enumerate() {
        if i > 0 {
            line.push_str(", ");
        }
        write_str(&column.name, STYLE, &mut line);
        line.push_str(": ");
        write_json(columns.get(i).unwrap_or(&Value::Null), STYLE, &mut line);
    }
    line.push_str("}]");
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{RowAggregate, RowColumn};
    use chrono::{TimeZone, Utc};
    use dtc_plan::plan::{Column, FieldType};
    use std::sync::{Arc, Mutex};

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

    fn column(name: &str, ty: FieldType, role: ColumnRole) -> Column {
        Column {
            name: name.to_owned(),
            ty,
            role,
        }
    }

    #[test]
    fn window_rows_like_blurr() {
        let schema = RowSchema {
            columns: vec![
                RowColumn {
                    name: "last_session.games".to_owned(),
                    ty: FieldType::Integer,
                },
                RowColumn {
                    name: "last_session.spend".to_owned(),
                    ty: FieldType::Float,
                },
                RowColumn {
                    name: "vars.label".to_owned(),
                    ty: FieldType::String,
                },
            ],
            aggregates: vec![
                RowAggregate {
                    name: "last_session".to_owned(),
                    fields: vec![("games".to_owned(), 0), ("spend".to_owned(), 1)],
                },
                RowAggregate {
                    name: "vars".to_owned(),
                    fields: vec![("label".to_owned(), 2)],
                },
            ],
        };
        let out = Shared::default();
        let mut sink = Box::new(BlurrTextSink::new(&schema, Box::new(out.clone())));
        let anchor_time = Utc.with_ymd_and_hms(2018, 3, 7, 0, 0, 0).unwrap();
        let rows = [
            Row {
                identity: Arc::from("u1"),
                anchor_time,
                values: vec![
                    Value::Int(3),
                    Value::Float(20.979999999999997),
                    Value::str("né"),
                ],
            },
            Row {
                identity: Arc::from("u1"),
                anchor_time,
                values: vec![Value::Int(0), Value::Float(0.0), Value::Null],
            },
        ];
        sink.write_identity("u1", &rows).unwrap();
        sink.write_identity("u2", &[]).unwrap();
        assert_eq!(sink.finish().unwrap().rows, 2);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"["u1", [{"last_session._identity": "u1", "last_session.games": 3, "last_session.spend": 20.979999999999997, "vars._identity": "u1", "vars.label": "n\u00e9"}, "#,
                r#"{"last_session._identity": "u1", "last_session.games": 0, "last_session.spend": 0.0, "vars._identity": "u1", "vars.label": null}]]"#,
                "\n",
                r#"["u2", []]"#,
                "\n"
            )
        );
    }

    #[test]
    fn streaming_records_like_blurr() {
        let start = Utc.with_ymd_and_hms(2018, 3, 7, 22, 35, 31).unwrap();
        let end = start + chrono::TimeDelta::microseconds(250_000);
        let session = AggregateLayout {
            columns: vec![
                column("_identity", FieldType::String, ColumnRole::Identity),
                column("_start_time", FieldType::DateTime, ColumnRole::StartTime),
                column("_end_time", FieldType::DateTime, ColumnRole::EndTime),
                column("events", FieldType::Integer, ColumnRole::Field),
                column("spend", FieldType::Float, ColumnRole::Field),
                column("session_id", FieldType::String, ColumnRole::Dimension),
                column("level", FieldType::Integer, ColumnRole::Dimension),
            ],
        };
        let line = blurr_record_line(
            "u1",
            "session",
            &[Value::str("s1"), Value::Int(4)],
            &session,
            &[
                Value::str("u1"),
                Value::DateTime(start),
                Value::DateTime(end),
                Value::Int(2),
                Value::Float(1.0),
                Value::str("s1"),
                Value::Int(4),
            ],
        );
        assert_eq!(
            line,
            r#"["u1/session/s1:4/", {"_identity": "u1", "_start_time": "2018-03-07T22:35:31+00:00", "_end_time": "2018-03-07T22:35:31.250000+00:00", "events": 2, "spend": 1.0, "session_id": "s1", "level": 4}]"#
        );

        let user = AggregateLayout {
            columns: vec![
                column("_identity", FieldType::String, ColumnRole::Identity),
                column("country", FieldType::String, ColumnRole::Field),
            ],
        };
        let line = blurr_record_line("u1", "user", &[], &user, &[Value::str("u1"), Value::Null]);
        assert_eq!(
            line,
            r#"["u1/user//", {"_identity": "u1", "country": null}]"#
        );

        let activity = AggregateLayout {
            columns: session.columns[..4].to_vec(),
        };
        let line = blurr_record_line(
            "u1",
            "activity",
            &[],
            &activity,
            &[
                Value::str("u1"),
                Value::DateTime(start),
                Value::DateTime(start),
                Value::Int(1),
            ],
        );
        assert!(
            line.starts_with(r#"["u1/activity//2018-03-07T22:35:31+00:00", {"#),
            "{line}"
        );
    }
}
