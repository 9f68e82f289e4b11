//! What a run did, as data: the front end renders it (the CLI's summary, a server's metrics).

use std::path::PathBuf;
use std::time::Duration;

use dtc_engine::stats::FieldErrors;
use dtc_engine::window::WindowOperator;
use dtc_io::Rejection;
use dtc_io::dead_letter::{Position, RejectCounts};
use dtc_plan::record::Row;

/// Evaluation errors of one spec field: it kept its previous value `count` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldErrorReport {
    pub field: String,
    pub count: u64,
    pub first: String,
}

pub(crate) fn field_errors(errors: &FieldErrors, names: &[String]) -> Vec<FieldErrorReport> {
    errors
        .nonzero(names)
        .map(|(field, count, first)| FieldErrorReport {
            field: field.to_string(),
            count,
            first: first.to_string(),
        })
        .collect()
}

/// Rows the front end may show after a run.
pub const PREVIEW_ROWS: usize = 8;

/// What a window computed.
#[derive(Debug, Clone, Default)]
pub struct WindowReport {
    pub name: String,
    /// Identities whose rows were computed.
    pub identities: u64,
    pub rows: u64,
    /// Anchors without a row (Blurr semantics: an empty or short window).
    pub anchors_without_row: u64,
    /// Anchors skipped because their day already had `Max` rows.
    pub anchors_over_max: u64,
    /// Values written as null because they did not fit their column's type.
    pub nulled_values: u64,
    pub errors: Vec<FieldErrorReport>,
    /// Where the rows were published; `None` when they went to a stream.
    pub output: Option<String>,
    /// The first rows, for a preview.
    pub preview: Vec<Row>,
}

impl WindowReport {
    pub(crate) fn new(name: &str) -> WindowReport {
        WindowReport {
            name: name.to_string(),
            ..WindowReport::default()
        }
    }

    pub(crate) fn preview(&mut self, rows: &[Row]) {
        let room = PREVIEW_ROWS.saturating_sub(self.preview.len());
        self.preview.extend(rows.iter().take(room).cloned());
    }

    pub(crate) fn finish(&mut self, operator: &WindowOperator) {
        self.anchors_without_row = operator.dropped_anchors;
        self.anchors_over_max = operator.over_max;
        self.errors = field_errors(&operator.errors, &operator.plan().field_names);
    }
}

/// An input file left out of a run because its data is damaged (`--skip-bad-files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFile {
    pub name: String,
    pub error: String,
}

/// What a streaming batch run did.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub streaming: String,
    /// The store, as it describes itself.
    pub store: String,
    /// Requests made, for stores that pay per request.
    pub store_usage: Option<String>,
    /// Non-blank records read in this run.
    pub events_read: u64,
    /// Records skipped because an earlier run into this store applied them.
    pub already_applied: u64,
    pub byte_order_marks: u64,
    /// Source paths the streaming spec reads that no event of this run had (a misspelt
    /// `source.offer_typ`), each with the closest key the events had. Empty when no event was
    /// read.
    pub unseen_source_paths: Vec<dtc_io::extract::UnseenPath>,
    pub applied: u64,
    /// Events whose transform-level `When` was not true.
    pub filtered: u64,
    pub rejected: RejectCounts,
    pub dead_letters: PathBuf,
    /// Identities with events in this run.
    pub identities: u64,
    /// Identities a crashed run with the same input had already written.
    pub resumed_identities: u64,
    pub records_written: u64,
    pub spilled_runs: usize,
    pub errors: Vec<FieldErrorReport>,
    pub bad_files: Vec<BadFile>,
    /// Commits of crashed runs finished before this run started.
    pub recovered: Vec<String>,
    pub window: Option<WindowReport>,
    pub elapsed: Duration,
    pub read_elapsed: Duration,
}

/// What a window run over a store did.
#[derive(Debug, Clone, Default)]
pub struct WindowRunReport {
    pub store: String,
    pub store_usage: Option<String>,
    pub recovered: Vec<String>,
    pub window: WindowReport,
    pub elapsed: Duration,
}

/// Hooks a front end gives a run to show progress; every method has a default that does
/// nothing.
pub trait Observer {
    /// Called every few thousand records read.
    fn read_progress(&mut self, _records: u64) {}
    /// Called when reading is done.
    fn read_done(&mut self) {}
    /// A record went to the dead letters.
    fn rejected(&mut self, _input: &str, _position: Position, _rejection: &Rejection) {}
    /// A continuous run's progress, every progress interval.
    fn live_progress(&mut self, _progress: &crate::live::LiveProgress) {}
    /// A continuous run saw this identity on a second partition (told once per identity): the
    /// topic is not keyed by identity, and its blocks may not be exact.
    fn identity_on_two_partitions(&mut self, _identity: &str) {}
}

/// An observer that shows nothing.
pub struct Quiet;

impl Observer for Quiet {}
