//! Where rows and records go.
//!
//! A [`RowSink`] receives a window run's training rows one identity at a time. The byte
//! destination of file-producing sinks is a [`Destination`]: parts are written under a hidden
//! temporary name and only appear under their final name when committed, so a reader never
//! sees a partial file. [`LocalDir`] is the local implementation; an object store implements
//! the same trait (multipart upload, completed on commit) without changes to the sinks.

mod blurr;
mod jsonl;
mod parquet;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use dtc_plan::plan::{FieldType, WindowPlan};
use dtc_plan::record::Row;

use crate::error::IoError;

pub use self::blurr::{BlurrTextSink, blurr_record_line};
pub use self::jsonl::JsonLinesSink;
pub use self::parquet::{ParquetCompression, ParquetOptions, ParquetSink};

/// A consumer of training rows.
pub trait RowSink: Send {
    /// Called once per identity (also when it has no rows), in the order the engine decides;
    /// `rows` are that identity's rows in anchor order.
    fn write_identity(&mut self, identity: &str, rows: &[Row]) -> Result<(), IoError>;
    /// Flushes and commits everything written.
    fn finish(self: Box<Self>) -> Result<SinkSummary, IoError>;
}

/// What a sink produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkSummary {
    /// Final locations of the files written, in order.
    pub files: Vec<String>,
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

/// A part being written; invisible under its final name until [`PartWriter::commit`].
/// Dropping it without committing discards it.
pub trait PartWriter: Write + Send {
    /// Makes the part visible under its final name and returns that location.
    fn commit(self: Box<Self>) -> Result<String, IoError>;
}

/// Where a sink's files go.
pub trait Destination: Send {
    /// Starts a part that will be named `name` once committed.
    fn create(&mut self, name: &str) -> Result<Box<dyn PartWriter>, IoError>;
}

/// A local directory (created if missing).
#[derive(Debug, Clone)]
pub struct LocalDir {
    dir: PathBuf,
}

impl LocalDir {
    pub fn new(dir: impl Into<PathBuf>) -> LocalDir {
        LocalDir { dir: dir.into() }
    }
}

impl Destination for LocalDir {
    fn create(&mut self, name: &str) -> Result<Box<dyn PartWriter>, IoError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| IoError::Write {
            target: self.dir.display().to_string(),
            source,
        })?;
        let final_path = self.dir.join(name);
        // Hidden, so that readers of the directory (Spark, pandas, DuckDB) skip it.
        let temp_path = self.dir.join(format!(".tmp-{name}"));
        let file = File::create(&temp_path).map_err(|source| IoError::Open {
            path: temp_path.clone(),
            source,
        })?;
        Ok(Box::new(LocalPart {
            file: Some(BufWriter::with_capacity(256 * 1024, file)),
            temp_path,
            final_path,
        }))
    }
}

struct LocalPart {
    /// `None` once committed.
    file: Option<BufWriter<File>>,
    temp_path: PathBuf,
    final_path: PathBuf,
}

impl LocalPart {
    fn write_error(&self, source: std::io::Error) -> IoError {
        IoError::Write {
            target: self.temp_path.display().to_string(),
            source,
        }
    }

    fn closed() -> std::io::Error {
        std::io::Error::other("part already committed")
    }
}

impl Write for LocalPart {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().ok_or_else(Self::closed)?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().ok_or_else(Self::closed)?.flush()
    }
}

impl PartWriter for LocalPart {
    fn commit(mut self: Box<Self>) -> Result<String, IoError> {
        let Some(file) = self.file.take() else {
            return Err(self.write_error(Self::closed()));
        };
        let file = file
            .into_inner()
            .map_err(|e| self.write_error(e.into_error()))?;
        // Durable before visible: a crash after the rename must not leave a torn file.
        file.sync_all().map_err(|e| self.write_error(e))?;
        std::fs::rename(&self.temp_path, &self.final_path).map_err(|e| self.write_error(e))?;
        // And the rename itself durable: until the directory is synced, a crash can lose the
        // new name, and with it rows whose input the store records as applied.
        if let Some(dir) = self
            .final_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| IoError::Write {
                    target: dir.display().to_string(),
                    source,
                })?;
        }
        Ok(self.final_path.display().to_string())
    }
}

impl Drop for LocalPart {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Best effort: an abandoned part is garbage; failing to remove it must not mask
            // the error that made us abandon it.
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
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

/// Lists the committed (non-hidden) files of a local directory, sorted; for tests and tools.
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

    #[test]
    fn parts_are_invisible_until_committed_and_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut dest = LocalDir::new(dir.path().join("out"));
        let mut part = dest.create("part-a.txt").unwrap();
        part.write_all(b"hello").unwrap();
        assert_eq!(visible_files(&dir.path().join("out")).unwrap().len(), 0);
        let location = part.commit().unwrap();
        assert!(location.ends_with("part-a.txt"));
        assert_eq!(
            std::fs::read(dir.path().join("out/part-a.txt")).unwrap(),
            b"hello"
        );

        let mut abandoned = dest.create("part-b.txt").unwrap();
        abandoned.write_all(b"partial").unwrap();
        drop(abandoned);
        let all: Vec<String> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(all, vec!["part-a.txt".to_owned()]);
    }

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
    }
}
