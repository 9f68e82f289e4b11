//! Training rows to Parquet files.
//!
//! Schema: `identity` Utf8 (not null), `anchor_time` Timestamp(µs, UTC) (not null), then one
//! nullable column per row value: integer→Int64, float→Float64, boolean→Boolean, string→Utf8,
//! datetime→Timestamp(µs, UTC), and map/list/set→Utf8 holding the value as compact JSON
//! (lossless, readable by every engine; see docs/output.md). A value of the wrong type is
//! written as null and counted in [`SinkSummary::nulled_values`].

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use dtc_plan::plan::FieldType;
use dtc_plan::record::Row;
use dtc_plan::value::Value;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{Destination, PartWriter, RowSchema, RowSink, SinkSummary, part_name};
use crate::error::IoError;
use crate::format::{JsonStyle, to_json_string};

/// Compression codec of the Parquet pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParquetCompression {
    /// ZSTD level 3: smaller files, the default.
    #[default]
    Zstd,
    /// Snappy: faster, larger.
    Snappy,
}

/// Knobs of a [`ParquetSink`].
#[derive(Debug, Clone)]
pub struct ParquetOptions {
    /// Part names are `part-<run_id>-<worker>-<seq>.parquet`.
    pub run_id: String,
    pub worker: u32,
    /// Rows per row group: also the number of rows buffered in memory.
    pub row_group_rows: usize,
    /// A new file is started after this many rows.
    pub rows_per_file: usize,
    pub compression: ParquetCompression,
}

impl ParquetOptions {
    pub fn new(run_id: impl Into<String>, worker: u32) -> ParquetOptions {
        ParquetOptions {
            run_id: run_id.into(),
            worker,
            row_group_rows: 64 * 1024,
            rows_per_file: 1_000_000,
            compression: ParquetCompression::Zstd,
        }
    }
}

const UTC: &str = "UTC";

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

/// The Arrow schema of a window plan's rows.
pub fn arrow_schema(rows: &RowSchema, spec_name: Option<&str>) -> Schema {
    let mut fields = vec![
        Field::new("identity", DataType::Utf8, false),
        Field::new("anchor_time", timestamp_type(), false),
    ];
    for column in &rows.columns {
        let data_type = match column.ty {
            FieldType::Integer => DataType::Int64,
            FieldType::Float => DataType::Float64,
            FieldType::Boolean => DataType::Boolean,
            FieldType::DateTime => timestamp_type(),
            FieldType::String | FieldType::Map | FieldType::List | FieldType::Set => DataType::Utf8,
        };
        fields.push(Field::new(&column.name, data_type, true));
    }
    let mut metadata = std::collections::HashMap::new();
    if let Some(name) = spec_name {
        metadata.insert("dtc.window_spec".to_owned(), name.to_owned());
    }
    Schema::new_with_metadata(fields, metadata)
}

enum ColumnBuilder {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
    Time(TimestampMicrosecondBuilder),
    Json(StringBuilder),
}

impl ColumnBuilder {
    fn new(ty: FieldType) -> ColumnBuilder {
        match ty {
            FieldType::Integer => ColumnBuilder::Int(Int64Builder::new()),
            FieldType::Float => ColumnBuilder::Float(Float64Builder::new()),
            FieldType::Boolean => ColumnBuilder::Bool(BooleanBuilder::new()),
            FieldType::String => ColumnBuilder::Str(StringBuilder::new()),
            FieldType::DateTime => {
                ColumnBuilder::Time(TimestampMicrosecondBuilder::new().with_timezone(UTC))
            }
            FieldType::Map | FieldType::List | FieldType::Set => {
                ColumnBuilder::Json(StringBuilder::new())
            }
        }
    }

    /// Appends `value`; returns false when it had to be replaced by null.
    fn append(&mut self, value: &Value) -> bool {
        match (self, value) {
            (ColumnBuilder::Int(b), Value::Int(i)) => b.append_value(*i),
            (ColumnBuilder::Float(b), Value::Float(f)) => b.append_value(*f),
            // An integer in a float column is exact enough to keep (e.g. `sum` of nothing).
            (ColumnBuilder::Float(b), Value::Int(i)) => b.append_value(*i as f64),
            (ColumnBuilder::Bool(b), Value::Bool(v)) => b.append_value(*v),
            (ColumnBuilder::Str(b), Value::Str(s)) => b.append_value(s),
            (ColumnBuilder::Time(b), Value::DateTime(dt)) => b.append_value(dt.timestamp_micros()),
            (
                ColumnBuilder::Json(b),
                v @ (Value::List(_) | Value::Tuple(_) | Value::Set(_) | Value::Map(_)),
            ) => b.append_value(to_json_string(v, JsonStyle::Compact)),
            (builder, value) => {
                builder.append_null();
                return value.is_null();
            }
        }
        true
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Int(b) => b.append_null(),
            ColumnBuilder::Float(b) => b.append_null(),
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Str(b) | ColumnBuilder::Json(b) => b.append_null(),
            ColumnBuilder::Time(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Int(b) => Arc::new(b.finish()),
            ColumnBuilder::Float(b) => Arc::new(b.finish()),
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Str(b) | ColumnBuilder::Json(b) => Arc::new(b.finish()),
            ColumnBuilder::Time(b) => Arc::new(b.finish()),
        }
    }
}

struct OpenFile {
    writer: ArrowWriter<Box<dyn PartWriter>>,
    name: String,
    rows: usize,
}

/// Writes rows to Parquet parts in a [`Destination`].
pub struct ParquetSink {
    schema: SchemaRef,
    options: ParquetOptions,
    properties: WriterProperties,
    destination: Box<dyn Destination>,
    identity: StringBuilder,
    anchor_time: TimestampMicrosecondBuilder,
    values: Vec<ColumnBuilder>,
    pending: usize,
    file: Option<OpenFile>,
    seq: u32,
    summary: SinkSummary,
}

impl ParquetSink {
    pub fn new(
        rows: &RowSchema,
        spec_name: Option<&str>,
        destination: Box<dyn Destination>,
        options: ParquetOptions,
    ) -> Result<ParquetSink, IoError> {
        if options.row_group_rows == 0 || options.rows_per_file == 0 {
            return Err(IoError::Config(
                "row_group_rows and rows_per_file must be at least 1".to_owned(),
            ));
        }
        let compression = match options.compression {
            ParquetCompression::Zstd => {
                let level = ZstdLevel::try_new(3).map_err(|source| IoError::Parquet {
                    target: "compression".to_owned(),
                    source,
                })?;
                Compression::ZSTD(level)
            }
            ParquetCompression::Snappy => Compression::SNAPPY,
        };
        let properties = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(options.row_group_rows))
            .set_created_by(format!("dtc {}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(ParquetSink {
            schema: Arc::new(arrow_schema(rows, spec_name)),
            values: rows
                .columns
                .iter()
                .map(|c| ColumnBuilder::new(c.ty))
                .collect(),
            options,
            properties,
            destination,
            identity: StringBuilder::new(),
            anchor_time: TimestampMicrosecondBuilder::new().with_timezone(UTC),
            pending: 0,
            file: None,
            seq: 0,
            summary: SinkSummary::default(),
        })
    }

    fn append(&mut self, identity: &str, anchor_time: &DateTime<Utc>, values: &[Value]) {
        self.identity.append_value(identity);
        self.anchor_time
            .append_value(anchor_time.timestamp_micros());
        for (i, builder) in self.values.iter_mut().enumerate() {
            let fits = match values.get(i) {
                Some(value) => builder.append(value),
                None => {
                    builder.append_null();
                    false
                }
            };
            if !fits {
                self.summary.nulled_values += 1;
            }
        }
        self.pending += 1;
        self.summary.rows += 1;
    }

    /// Rows that can still go to the current file's current row group.
    fn batch_limit(&self) -> usize {
        let in_file = self.file.as_ref().map_or(0, |f| f.rows);
        self.options
            .row_group_rows
            .min(self.options.rows_per_file - in_file)
    }

    fn flush_batch(&mut self) -> Result<(), IoError> {
        if self.pending == 0 {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.values.len() + 2);
        columns.push(Arc::new(self.identity.finish()));
        columns.push(Arc::new(self.anchor_time.finish()));
        columns.extend(self.values.iter_mut().map(ColumnBuilder::finish));
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        let rows = self.pending;
        self.pending = 0;

        if self.file.is_none() {
            let name = part_name(
                &self.options.run_id,
                self.options.worker,
                self.seq,
                "parquet",
            );
            self.seq += 1;
            let part = self.destination.create(&name)?;
            let writer =
                ArrowWriter::try_new(part, self.schema.clone(), Some(self.properties.clone()))
                    .map_err(|source| IoError::Parquet {
                        target: name.clone(),
                        source,
                    })?;
            self.file = Some(OpenFile {
                writer,
                name,
                rows: 0,
            });
        }
        if let Some(file) = self.file.as_mut() {
            file.writer
                .write(&batch)
                .map_err(|source| IoError::Parquet {
                    target: file.name.clone(),
                    source,
                })?;
            file.rows += rows;
            if file.rows >= self.options.rows_per_file {
                self.close_file()?;
            }
        }
        Ok(())
    }

    fn close_file(&mut self) -> Result<(), IoError> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let part = file
            .writer
            .into_inner()
            .map_err(|source| IoError::Parquet {
                target: file.name.clone(),
                source,
            })?;
        self.summary.parts.push(part.seal()?);
        Ok(())
    }
}

impl RowSink for ParquetSink {
    fn write_identity(&mut self, identity: &str, rows: &[Row]) -> Result<(), IoError> {
        for row in rows {
            self.append(identity, &row.anchor_time, &row.values);
            if self.pending >= self.batch_limit() {
                self.flush_batch()?;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<SinkSummary, IoError> {
        self.flush_batch()?;
        self.close_file()?;
        Ok(std::mem::take(&mut self.summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{LocalStage, publish_parts};
    use crate::sink::{RowAggregate, RowColumn, visible_files};
    use arrow::array::{
        Array, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use chrono::TimeZone;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn schema() -> RowSchema {
        let cols = [
            ("w.n", FieldType::Integer),
            ("w.x", FieldType::Float),
            ("w.b", FieldType::Boolean),
            ("w.s", FieldType::String),
            ("w.t", FieldType::DateTime),
            ("w.l", FieldType::List),
        ];
        RowSchema {
            columns: cols
                .iter()
                .map(|(name, ty)| RowColumn {
                    name: (*name).to_owned(),
                    ty: *ty,
                })
                .collect(),
            aggregates: vec![RowAggregate {
                name: "w".to_owned(),
                fields: (0..cols.len()).map(|i| (format!("f{i}"), i)).collect(),
            }],
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_520_000_000 + seconds, 0).unwrap()
    }

    fn row(identity: &str, t: i64, values: Vec<Value>) -> Row {
        Row {
            identity: Arc::from(identity),
            anchor_time: at(t),
            values,
        }
    }

    fn read_all(path: &std::path::Path) -> (SchemaRef, Vec<RecordBatch>, usize) {
        let file = std::fs::File::open(path).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let groups = builder.metadata().num_row_groups();
        let schema = builder.schema().clone();
        let batches = builder
            .build()
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        (schema, batches, groups)
    }

    #[test]
    fn round_trip_with_types_nulls_timestamps_files_and_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ParquetOptions::new("run1", 0);
        options.rows_per_file = 3;
        options.row_group_rows = 2;
        let mut sink: Box<dyn RowSink> = Box::new(
            ParquetSink::new(
                &schema(),
                Some("offers"),
                Box::new(LocalStage::create(dir.path(), "run1", 0).unwrap()),
                options,
            )
            .unwrap(),
        );
        let t = Value::DateTime(at(60) + chrono::TimeDelta::microseconds(7));
        let list = Value::list(vec![Value::Int(1), Value::str("a")]);
        let full = vec![
            Value::Int(5),
            Value::Float(2.5),
            Value::Bool(true),
            Value::str("é"),
            t.clone(),
            list,
        ];
        let nulls = vec![Value::Null; 6];
        // Wrong types everywhere except the float column, which takes an integer.
        let mismatched = vec![
            Value::str("5"),
            Value::Int(3),
            Value::Int(1),
            Value::Int(2),
            Value::str("2018"),
            Value::str("x"),
        ];
        sink.write_identity(
            "u1",
            &[
                row("u1", 0, full.clone()),
                row("u1", 10, nulls),
                row("u1", 20, mismatched),
            ],
        )
        .unwrap();
        sink.write_identity("u0", &[]).unwrap();
        sink.write_identity("u2", &[row("u2", 30, full.clone()), row("u2", 40, full)])
            .unwrap();
        let summary = sink.finish().unwrap();
        assert_eq!(summary.rows, 5);
        assert_eq!(summary.nulled_values, 5);
        assert_eq!(summary.parts.len(), 2);
        publish_parts(dir.path(), "run1", 0, &summary.parts);
        assert_eq!(
            visible_files(dir.path()).unwrap(),
            vec![
                "_dtc-commit-000.json".to_owned(),
                "part-run1-000-00000.parquet".to_owned(),
                "part-run1-000-00001.parquet".to_owned()
            ]
        );
        let everything: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(everything.len(), 3, "no temporary file is left behind");

        let (schema, batches, groups) = read_all(&dir.path().join("part-run1-000-00000.parquet"));
        assert_eq!(groups, 2);
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let expected = [
            ("identity", DataType::Utf8, false),
            ("anchor_time", ts.clone(), false),
            ("w.n", DataType::Int64, true),
            ("w.x", DataType::Float64, true),
            ("w.b", DataType::Boolean, true),
            ("w.s", DataType::Utf8, true),
            ("w.t", ts, true),
            ("w.l", DataType::Utf8, true),
        ];
        for (field, (name, ty, nullable)) in schema.fields().iter().zip(expected) {
            assert_eq!(
                (
                    field.name().as_str(),
                    field.data_type(),
                    field.is_nullable()
                ),
                (name, &ty, nullable)
            );
        }
        assert_eq!(
            schema.metadata().get("dtc.window_spec").map(String::as_str),
            Some("offers")
        );
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(batch.num_rows(), 3);
        let col = |i: usize| batch.column(i).clone();
        let ids = col(0);
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(ids.value(2), "u1");
        let anchors = col(1);
        let anchors = anchors
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(anchors.value(1), at(10).timestamp_micros());
        let n = col(2);
        let n = n.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!((n.value(0), n.is_null(1), n.is_null(2)), (5, true, true));
        let x = col(3);
        let x = x.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!((x.value(0), x.is_null(1), x.value(2)), (2.5, true, 3.0));
        let b = col(4);
        let b = b.as_any().downcast_ref::<BooleanArray>().unwrap();
        assert!(b.value(0) && b.is_null(2));
        let s = col(5);
        let s = s.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(s.value(0), "é");
        let t = col(6);
        let t = t
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(t.value(0), at(60).timestamp_micros() + 7);
        assert!(t.is_null(2));
        let l = col(7);
        let l = l.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(l.value(0), r#"[1,"a"]"#);
        assert!(l.is_null(1) && l.is_null(2));

        let (_, batches, _) = read_all(&dir.path().join("part-run1-000-00001.parquet"));
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
    }

    #[test]
    fn no_rows_no_file_and_bad_options_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sink = ParquetSink::new(
            &schema(),
            None,
            Box::new(LocalStage::create(dir.path(), "r", 1).unwrap()),
            ParquetOptions::new("r", 1),
        )
        .unwrap();
        let summary = Box::new(sink).finish().unwrap();
        assert_eq!(summary, SinkSummary::default());
        let mut options = ParquetOptions::new("r", 1);
        options.rows_per_file = 0;
        assert!(matches!(
            ParquetSink::new(
                &schema(),
                None,
                Box::new(LocalStage::create(dir.path(), "r", 1).unwrap()),
                options
            ),
            Err(IoError::Config(_))
        ));
    }

    #[test]
    fn snappy_files_are_readable() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ParquetOptions::new("s", 2);
        options.compression = ParquetCompression::Snappy;
        let mut sink = ParquetSink::new(
            &schema(),
            None,
            Box::new(LocalStage::create(dir.path(), "s", 2).unwrap()),
            options,
        )
        .unwrap();
        sink.write_identity("u", &[row("u", 0, vec![Value::Int(1)])])
            .unwrap();
        let summary = Box::new(sink).finish().unwrap();
        publish_parts(dir.path(), "s", 2, &summary.parts);
        let (_, batches, _) = read_all(&dir.path().join(&summary.parts[0].name));
        assert_eq!(batches[0].num_rows(), 1);
        assert_eq!(summary.nulled_values, 5, "missing values count as nulled");
    }
}
