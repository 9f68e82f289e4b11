//! Running one test: its events through a batch run into an in-memory store, then each
//! expectation against what the run stored, computed and rejected.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use dtc_engine::batch::view_of_stored;
use dtc_engine::sort::IdentityOrder;
use dtc_engine::window::WindowOperator;
use dtc_io::dead_letter::Position as InputPosition;
use dtc_io::{IoError, RejectReason, Rejection, RowSink, SinkSummary};
use dtc_lang::span::Span;
use dtc_plan::plan::{ColumnRole, StreamAggregate};
use dtc_plan::record::Row;
use dtc_plan::value::Value;
use dtc_store::{BlockStore, MemoryStore, StoredRecord};

use super::TestOptions;
use super::bind::{BoundTest, Job, Position, RecordCheck, ValueCheck};
use super::values::{matches, render};
use crate::batch::{BatchOptions, BatchRun, run_batch};
use crate::error::RunError;
use crate::locations::Services;
use crate::report::{FieldErrorReport, Observer};
use crate::window::RowsOut;

/// What a test's run produced.
pub(crate) struct Results {
    /// Per identity, its stored records.
    records: BTreeMap<Arc<str>, Vec<StoredRecord>>,
    /// In identity order, each identity's in anchor order.
    rows: Vec<Row>,
    /// Live features per feature expectation, in the test's order.
    features: Vec<Row>,
    rejects: Vec<Rejected>,
    errors: Vec<FieldErrorReport>,
}

struct Rejected {
    position: Option<Position>,
    reason: RejectReason,
    detail: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.reason.as_str())?;
        if let Some(position) = self.position {
            write!(f, " at {position}")?;
        }
        write!(f, " ({})", self.detail)
    }
}

/// Runs `test`'s events through the job's specs.
pub(crate) fn execute(
    job: &Job,
    test: &BoundTest,
    options: &TestOptions,
) -> Result<Results, RunError> {
    let scratch = tempfile::Builder::new()
        .prefix("dtc-test-")
        .tempdir_in(&options.scratch_dir)
        .map_err(|source| write_error(&options.scratch_dir, source))?;
    let mut sources = Vec::new();
    let events_file = test.events_file.as_ref().map(|p| p.display().to_string());
    sources.extend(events_file.clone());
    let inline = scratch.path().join("events.jsonl");
    let inline_name = inline.display().to_string();
    if !test.events.is_empty() {
        let mut text = test.events.join("\n");
        text.push('\n');
        std::fs::write(&inline, text).map_err(|source| write_error(&inline, source))?;
        sources.push(inline_name.clone());
    }

    let store = MemoryStore::new();
    let rows = Arc::new(Mutex::new(Vec::new()));
    let rows_out = match &job.window {
        Some(_) => RowsOut::Stream(Box::new(Collect(rows.clone()))),
        None => RowsOut::None,
    };
    let mut observer = Rejects {
        events_file,
        inline: inline_name,
        rejects: Vec::new(),
    };
    let report = run_batch(
        BatchRun {
            streaming: job.streaming.clone(),
            window: job.window.clone(),
            store: &store,
            sources,
            dead_letters: scratch.path().join("dead-letters.jsonl"),
            rows: rows_out,
            options: BatchOptions {
                sort_budget_bytes: 16 << 20,
                spill_dir: scratch.path().to_path_buf(),
                write_batch_records: 1024,
                identity_order: IdentityOrder::Name,
                skip_bad_files: false,
            },
        },
        &mut Services::default(),
        &mut observer,
        None,
    )?;

    let mut records = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.identities(after.as_deref(), 1000)?;
        for identity in page.identities {
            let stored = store.load_identity(&identity)?;
            records.insert(identity, stored);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let features = match &job.window {
        Some(window) => {
            let mut operator = WindowOperator::new(window.clone());
            test.features
                .iter()
                .map(|f| {
                    let identity: Arc<str> = Arc::from(f.identity.as_str());
                    let stored = records.get(&identity).map_or(&[][..], Vec::as_slice);
                    let view = view_of_stored(window, identity, stored);
                    operator.row_at(&view, f.at)
                })
                .collect()
        }
        None => Vec::new(),
    };
    let mut errors = report.errors;
    errors.extend(report.window.into_iter().flat_map(|w| w.errors));
    let rows = std::mem::take(&mut *rows.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(Results {
        records,
        rows,
        features,
        rejects: observer.rejects,
        errors,
    })
}

fn write_error(path: &std::path::Path, source: std::io::Error) -> RunError {
    RunError::Io(IoError::Write {
        target: path.display().to_string(),
        source,
    })
}

/// Keeps a run's rows for the checks.
struct Collect(Arc<Mutex<Vec<Row>>>);

impl RowSink for Collect {
    fn write_identity(&mut self, _identity: &str, rows: &[Row]) -> Result<(), IoError> {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.extend_from_slice(rows);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<SinkSummary, IoError> {
        let rows = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        Ok(SinkSummary {
            rows: rows as u64,
            ..SinkSummary::default()
        })
    }
}

/// Keeps a run's rejects, placed in the test's inputs.
struct Rejects {
    events_file: Option<String>,
    inline: String,
    rejects: Vec<Rejected>,
}

impl Observer for Rejects {
    fn rejected(&mut self, input: &str, position: InputPosition, rejection: &Rejection) {
        let line = match position {
            InputPosition::Line(n) => Some(n),
            InputPosition::Offset(_) | InputPosition::Byte(_) => None,
        };
        let position = line.and_then(|n| {
            if input == self.inline {
                Some(Position::Event(n))
            } else if self.events_file.as_deref() == Some(input) {
                Some(Position::Line(n))
            } else {
                None
            }
        });
        self.rejects.push(Rejected {
            position,
            reason: rejection.reason,
            detail: rejection.detail.clone(),
        });
    }
}

/// An expectation not met, before its place is turned into a line and column.
pub(crate) struct Unmet {
    pub what: String,
    pub expected: String,
    pub got: String,
}

fn unmet(span: Span, what: String, expected: String, got: String) -> (Span, Unmet) {
    (
        span,
        Unmet {
            what,
            expected,
            got,
        },
    )
}

/// Compares every expectation of `test` with `results`; the unmet ones in the order the test
/// file gives them.
pub(crate) fn check(job: &Job, test: &BoundTest, results: &Results) -> Vec<(Span, Unmet)> {
    let mut out = Vec::new();
    check_records(job, test, results, &mut out);
    check_rows(test, results, &mut out);
    if let Some(count) = &test.row_count {
        let got = results.rows.len() as u64;
        if got != count.value {
            let anchors: Vec<String> = results
                .rows
                .iter()
                .map(|r| format!("{} at {}", r.identity, iso(r.anchor_time)))
                .collect();
            let got = match anchors.is_empty() {
                true => "0".to_string(),
                false => format!("{got} ({})", some_of(anchors, ", ")),
            };
            out.push(unmet(
                count.span,
                "row count".into(),
                count.value.to_string(),
                got,
            ));
        }
    }
    check_rejects(test, results, &mut out);
    for (check, row) in test.features.iter().zip(&results.features) {
        let at = iso(check.at);
        let what = format!("live features of `{}` at {at}", check.identity);
        for unmet_value in mismatches(&check.columns, &row.values) {
            out.push(value_unmet(&what, "column", unmet_value));
        }
    }
    if let Some(errors) = &test.errors {
        let mut got: BTreeMap<&str, &FieldErrorReport> = BTreeMap::new();
        for report in &results.errors {
            got.insert(&report.field, report);
        }
        for (name, expected) in &errors.counts {
            let found = got.remove(name.value.as_str());
            let count = found.map_or(0, |r| r.count);
            if count != *expected {
                let first = found
                    .map(|r| format!(" (first: {})", r.first))
                    .unwrap_or_default();
                out.push(unmet(
                    name.span,
                    format!("evaluation errors of `{}`", name.value),
                    expected.to_string(),
                    format!("{count}{first}"),
                ));
            }
        }
        for (field, report) in got {
            out.push(unmet(
                errors.span,
                format!("evaluation errors of `{field}`"),
                "0".into(),
                format!("{} (first: {})", report.count, report.first),
            ));
        }
    }
    out.sort_by_key(|(span, _)| span.start);
    out
}

fn check_records(job: &Job, test: &BoundTest, results: &Results, out: &mut Vec<(Span, Unmet)>) {
    // Records already matched, so that two expectations never match one record.
    let mut taken: Vec<(&str, usize)> = Vec::new();
    for check in &test.records {
        let Some(agg) = job.streaming.aggregates.get(check.aggregate) else {
            continue;
        };
        let what = format!(
            "record `{}` of `{}`{}",
            agg.name,
            check.identity,
            dims_text(check)
        );
        let identity_records = results
            .records
            .get(check.identity.as_str())
            .map_or(&[][..], Vec::as_slice);
        let of_aggregate: Vec<(usize, &StoredRecord)> = identity_records
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                *r.key.aggregate == *agg.name && r.columns.len() == agg.layout.columns.len()
            })
            .collect();
        let candidates: Vec<(usize, &StoredRecord)> = of_aggregate
            .iter()
            .copied()
            .filter(|(_, r)| mismatches(&check.dimensions, &r.columns).is_empty())
            .filter(|(i, _)| !taken.contains(&(check.identity.as_str(), *i)))
            .collect();
        if candidates.is_empty() {
            let got = if results.records.contains_key(check.identity.as_str()) {
                if of_aggregate.is_empty() {
                    format!("no `{}` record", agg.name)
                } else {
                    let keys: Vec<String> = of_aggregate
                        .iter()
                        .map(|(_, r)| record_key(agg, r))
                        .collect();
                    format!("{} other: {}", keys.len(), some_of(keys, "; "))
                }
            } else {
                let stored: Vec<String> = results.records.keys().map(|k| k.to_string()).collect();
                match stored.is_empty() {
                    true => "nothing stored".to_string(),
                    false => format!(
                        "no records of `{}` (stored: {})",
                        check.identity,
                        some_of(stored, ", ")
                    ),
                }
            };
            out.push(unmet(check.span, what, "a stored record".into(), got));
            continue;
        }
        let best = candidates
            .iter()
            .map(|(i, r)| (*i, mismatches(&check.fields, &r.columns)))
            .min_by_key(|(_, m)| m.len());
        if let Some((index, missing)) = best {
            if missing.is_empty() {
                taken.push((check.identity.as_str(), index));
            }
            for m in missing {
                out.push(value_unmet(&what, "field", m));
            }
        }
    }
}

fn check_rows(test: &BoundTest, results: &Results, out: &mut Vec<(Span, Unmet)>) {
    let mut taken = vec![false; results.rows.len()];
    for check in &test.rows {
        let at = check.anchor_time.map(iso);
        let what = match &at {
            Some(at) => format!("row of `{}` anchored at {at}", check.identity),
            None => format!("row of `{}`", check.identity),
        };
        let of_identity: Vec<usize> = (0..results.rows.len())
            .filter(|&i| *results.rows[i].identity == *check.identity)
            .collect();
        let candidates: Vec<usize> = of_identity
            .iter()
            .copied()
            .filter(|&i| {
                check
                    .anchor_time
                    .is_none_or(|t| results.rows[i].anchor_time == t)
            })
            .filter(|&i| !taken[i])
            .collect();
        if candidates.is_empty() {
            let anchors: Vec<String> = of_identity
                .iter()
                .map(|&i| iso(results.rows[i].anchor_time))
                .collect();
            let got = match anchors.is_empty() {
                true => format!("no row of `{}`", check.identity),
                false => format!("rows anchored at {}", some_of(anchors, ", ")),
            };
            out.push(unmet(check.span, what, "a training row".into(), got));
            continue;
        }
        let best = candidates
            .iter()
            .map(|&i| (i, mismatches(&check.columns, &results.rows[i].values)))
            .min_by_key(|(_, m)| m.len());
        if let Some((index, missing)) = best {
            if missing.is_empty() {
                taken[index] = true;
            }
            let what = match &at {
                Some(_) => what,
                None => format!(
                    "{what} anchored at {}",
                    iso(results.rows[index].anchor_time)
                ),
            };
            for m in missing {
                out.push(value_unmet(&what, "column", m));
            }
        }
    }
}

fn check_rejects(test: &BoundTest, results: &Results, out: &mut Vec<(Span, Unmet)>) {
    let Some(expected) = &test.rejects else {
        return;
    };
    let mut taken = vec![false; results.rejects.len()];
    for check in &expected.value {
        let found = results.rejects.iter().enumerate().position(|(i, r)| {
            !taken[i]
                && r.reason == check.reason
                && check.position.is_none_or(|p| r.position == Some(p))
                && check
                    .detail
                    .as_ref()
                    .is_none_or(|d| r.detail.contains(d.as_str()))
        });
        match found {
            Some(i) => taken[i] = true,
            None => {
                let mut wanted = check.reason.as_str().to_string();
                if let Some(p) = check.position {
                    wanted.push_str(&format!(" at {p}"));
                }
                if let Some(d) = &check.detail {
                    wanted.push_str(&format!(" (detail containing {d:?})"));
                }
                // The rejects left that look like the one expected, else all of them.
                let left: Vec<&Rejected> = results
                    .rejects
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !taken[*i])
                    .map(|(_, r)| r)
                    .collect();
                let alike: Vec<String> = left
                    .iter()
                    .filter(|r| r.reason == check.reason || r.position == check.position)
                    .map(|r| r.to_string())
                    .collect();
                let got = match (alike.is_empty(), left.is_empty()) {
                    (false, _) => some_of(alike, "; "),
                    (true, false) => some_of(left.iter().map(|r| r.to_string()).collect(), "; "),
                    (true, true) => "no such reject".to_string(),
                };
                out.push(unmet(check.span, "reject".into(), wanted, got));
            }
        }
    }
    for (reject, _) in results.rejects.iter().zip(&taken).filter(|(_, t)| !**t) {
        out.push(unmet(
            expected.span,
            "a reject the test does not list".into(),
            "no other reject".into(),
            reject.to_string(),
        ));
    }
}

/// An expected value that a record or row does not hold.
struct Mismatch<'a> {
    check: &'a ValueCheck,
    got: Option<&'a Value>,
}

fn mismatches<'a>(checks: &'a [ValueCheck], values: &'a [Value]) -> Vec<Mismatch<'a>> {
    checks
        .iter()
        .filter_map(|check| {
            let got = values.get(check.column);
            match got {
                Some(got) if matches(&check.expected, got) => None,
                _ => Some(Mismatch { check, got }),
            }
        })
        .collect()
}

fn value_unmet(what: &str, kind: &str, m: Mismatch<'_>) -> (Span, Unmet) {
    unmet(
        m.check.span,
        format!("{what}, {kind} `{}`", m.check.name),
        render(&m.check.expected),
        m.got.map_or_else(|| "nothing".to_string(), render),
    )
}

/// ` (session_id = "S1")` for a record expectation with dimensions.
fn dims_text(check: &RecordCheck) -> String {
    if check.dimensions.is_empty() {
        return String::new();
    }
    let dims: Vec<String> = check
        .dimensions
        .iter()
        .map(|d| format!("{} = {}", d.name, render(&d.expected)))
        .collect();
    format!(" ({})", dims.join(", "))
}

/// A stored record as failure messages name it: its dimensions, else its start time.
fn record_key(agg: &StreamAggregate, r: &StoredRecord) -> String {
    let shown: Vec<String> = agg
        .layout
        .columns
        .iter()
        .zip(&r.columns)
        .filter(|(c, _)| c.role == ColumnRole::Dimension)
        .map(|(c, v)| format!("{} = {}", c.name, render(v)))
        .collect();
    match (shown.is_empty(), r.start_time) {
        (false, _) => shown.join(", "),
        (true, Some(t)) => format!("_start_time = {}", iso(t)),
        (true, None) => "one record".into(),
    }
}

/// The first few of `items`, joined, and how many more there are.
fn some_of(items: Vec<String>, separator: &str) -> String {
    const SHOWN: usize = 5;
    let more = items.len().saturating_sub(SHOWN);
    let mut text = items
        .into_iter()
        .take(SHOWN)
        .collect::<Vec<_>>()
        .join(separator);
    if more > 0 {
        text.push_str(&format!("{separator}and {more} more"));
    }
    text
}

fn iso(t: DateTime<Utc>) -> String {
    dtc_io::format::iso_datetime(&t)
}
