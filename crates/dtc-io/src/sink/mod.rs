//! Where rows and records go.
//!
//! A [`RowSink`] receives a window run's training rows one identity at a time. The byte
//! destination of file-producing sinks is a [`Destination`]: a sink writes each part and
//! seals it ([`PartWriter::seal`]: durable, still invisible under its final name). Parts
//! appear only when the run publishes them at its commit ([`crate::output`]), so a reader never
//! sees a partial file or a partial run. [`crate::output::LocalStage`] is the local
//! implementation; an object store implements the same trait (a multipart upload, completed at
//! publish) without changes to the sinks.

mod blurr;
mod jsonl;
mod parquet;

use std::io::Write;
use std::path::Path;

use dtc_plan::plan::{FieldType, WindowPlan};
use dtc_plan::record::Row;
use serde::{Deserialize, Serialize};

use crate::error::IoError;

pub use self::blurr::{BlurrTextSink, blurr_record_line};
pub use self::jsonl::JsonLinesSink;
pub use self::parquet::{ParquetCompression, ParquetOptions, ParquetSink};

/// A consumer of training rows.
pub trait RowSink: Send {
    /// Called once per identity (also when it has no rows), in the order the engine decides;
    /// `rows` are that identity's rows in anchor order.
    fn write_identity(&mut self, identity: &str, rows: &[Row]) -> Result<(), IoError>;
    /// Flushes everything written and seals the parts (stream sinks: flushes the stream).
    fn finish(self: Box<Self>) -> Result<SinkSummary, IoError>;
}

/// What a sink produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkSummary {
    /// The parts written, sealed and not yet published, in order.
    pub parts: Vec<SealedPart>,
    pub rows: u64,
    /// Values written as null because they did not match their column's type.
    pub nulled_values: u64,
}

/// One value column of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowColumn {
    /// `<aggregate>.<field>`.
    pub name: String,
    pub ty: FieldType,
}

/// One window/variable aggregate's part of a row, for formats that group by aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowAggregate {
    pub name: String,
    /// `(field name, index into Row::values)`, in spec order.
    pub fields: Vec<(String, usize)>,
}

/// The shape of a window plan's rows: `Row::values` follow `columns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSchema {
    pub columns: Vec<RowColumn>,
    pub aggregates: Vec<RowAggregate>,
}

impl RowSchema {
    /// Columns in `WindowPlan::field_names` order, typed from each field's declared type.
    pub fn from_plan(plan: &WindowPlan) -> RowSchema {
        let mut columns: Vec<RowColumn> = plan
            .field_names
            .iter()
            .map(|name| RowColumn {
                name: name.clone(),
                ty: FieldType::String,
            })
            .collect();
        let mut aggregates = Vec::with_capacity(plan.aggregates.len());
        for agg in &plan.aggregates {
            let mut fields = Vec::with_capacity(agg.fields.len());
            for field in &agg.fields {
                let index = field.error_id as usize;
                if let Some(column) = columns.get_mut(index) {
                    column.ty = field.ty;
                    fields.push((field.name.clone(), index));
                }
            }
            aggregates.push(RowAggregate {
                name: agg.name.clone(),
                fields,
            });
        }
        RowSchema {
            columns,
            aggregates,
        }
    }
}

/// A part being written; invisible under its final name until its run publishes it. Dropping
/// it without sealing discards it.
pub trait PartWriter: Write + Send {
    /// Makes the part durable where it is staged. It stays invisible until published.
    fn seal(self: Box<Self>) -> Result<SealedPart, IoError>;
}

/// A part written whole and durable, not yet published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedPart {
    /// Its final name in the output location.
    pub name: String,
    pub bytes: u64,
    /// What the destination needs to publish it (an object store's upload); empty for local
    /// parts, which the stage directory holds under their final names.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub staged: String,
}

/// Where a sink's files go.
pub trait Destination: Send {
    /// Starts a part that will be named `name` once published.
    fn create(&mut self, name: &str) -> Result<Box<dyn PartWriter>, IoError>;
}

/// A run id for part names: UTC start time and process id, unique per run on one machine.
pub fn new_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id()
    )
}

/// `part-<run id>-<worker>-<seq>.<extension>`.
pub fn part_name(run_id: &str, worker: u32, seq: u32, extension: &str) -> String {
    format!("part-{run_id}-{worker:03}-{seq:05}.{extension}")
}

/// The worker of a name [`part_name`] made, or `None` for any other name.
pub fn part_worker(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("part-")?;
    let (stem, extension) = rest.rsplit_once('.')?;
    if extension.is_empty() || extension.contains('/') {
        return None;
    }
    let (head, seq) = stem.rsplit_once('-')?;
    let (run_id, worker) = head.rsplit_once('-')?;
    let digits = |s: &str, min: usize| s.len() >= min && s.bytes().all(|b| b.is_ascii_digit());
    if run_id.is_empty() || !digits(seq, 5) || !digits(worker, 3) {
        return None;
    }
    worker.parse().ok()
}

/// Lists the published (non-hidden) files of a local directory, sorted; for tests and tools.
pub fn visible_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtc_plan::plan::{
        AggregateLayout, CExpr, Dialect, StreamingPlan, WindowAggregate, WindowAggregateKind,
    };
    use dtc_plan::value::Value;

    fn field(name: &str, ty: FieldType, error_id: u32) -> dtc_plan::plan::FieldPlan {
        dtc_plan::plan::FieldPlan {
            name: name.to_owned(),
            ty,
            column: 0,
            value: CExpr::Const(Value::Null),
            when: None,
            error_id,
        }
    }

    #[test]
    fn row_schema_follows_field_names_and_declared_types() {
        let streaming = StreamingPlan {
            name: "s".to_owned(),
            dialect: Dialect::Native,
            source_paths: Vec::new(),
            needs_whole_source: false,
            identity: CExpr::Const(Value::Null),
            time: CExpr::Const(Value::Null),
            when: None,
            aggregates: Vec::new(),
            stores: Vec::new(),
            field_names: Vec::new(),
        };
        let layout = AggregateLayout {
            columns: Vec::new(),
        };
        let plan = WindowPlan {
            name: "w".to_owned(),
            dialect: Dialect::Native,
            streaming: std::sync::Arc::new(streaming),
            anchor_aggregate: 0,
            anchor: CExpr::Const(Value::Bool(true)),
            max_per_day: None,
            aggregates: vec![
                WindowAggregate {
                    name: "last".to_owned(),
                    kind: WindowAggregateKind::Variable,
                    layout: layout.clone(),
                    fields: vec![
                        field("n", FieldType::Integer, 0),
                        field("when", FieldType::DateTime, 1),
                    ],
                },
                WindowAggregate {
                    name: "vars".to_owned(),
                    kind: WindowAggregateKind::Variable,
                    layout,
                    fields: vec![field("tags", FieldType::Set, 2)],
                },
            ],
            stores: Vec::new(),
            field_names: vec![
                "last.n".to_owned(),
                "last.when".to_owned(),
                "vars.tags".to_owned(),
            ],
        };
        let schema = RowSchema::from_plan(&plan);
        let columns: Vec<(&str, FieldType)> = schema
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty))
            .collect();
        assert_eq!(
            columns,
            vec![
                ("last.n", FieldType::Integer),
                ("last.when", FieldType::DateTime),
                ("vars.tags", FieldType::Set)
            ]
        );
        assert_eq!(schema.aggregates[1].name, "vars");
        assert_eq!(schema.aggregates[1].fields, vec![("tags".to_owned(), 2)]);
    }

    #[test]
    fn part_names() {
        assert_eq!(
            part_name("r1", 2, 7, "parquet"),
            "part-r1-002-00007.parquet"
        );
        assert!(!new_run_id().contains('/'));
        assert_eq!(
            part_worker(&part_name(&new_run_id(), 12, 3, "jsonl")),
            Some(12)
        );
        assert_eq!(part_worker("part-r-1-2-003-00007.parquet"), Some(3));
        for other in [
            "part-003-00007.parquet",
            "part-r-3-00007.parquet",
            "part-r-003-7.parquet",
            "part-r-003-00007",
            "notes.txt",
            "_dtc-commit-000.json",
        ] {
            assert_eq!(part_worker(other), None, "{other}");
        }
    }
}
