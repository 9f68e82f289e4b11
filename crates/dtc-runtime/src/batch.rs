//! A streaming run over bounded sources: events → blocks in the store, and (with a window)
//! training rows in the same pass, committed by the protocol of [`crate::commit`].
//!
//! The run reads every source first (admitting, sorting, spilling; rejects go to staged dead
//! letters), then merges: each identity's events are applied in time order, its changed
//! records written in batches marked with the run's writer (so a re-run after a crash takes
//! the identities already written as they are), its rows written to staged parts. The commit
//! is the last store write, with the input checkpoints and the manifest of the parts and dead
//! letters, which are published after it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use dtc_engine::EngineError;
use dtc_engine::batch::{BatchConfig, Pushed, StreamingBatch, view_of_state};
use dtc_engine::sort::IdentityOrder;
use dtc_engine::streaming::IdentityState;
use dtc_engine::window::WindowOperator;
use dtc_io::dead_letter::{Position, StagedDeadLetters};
use dtc_io::extract::{PathPresence, SourceKeys, UnseenPath, unseen_paths};
use dtc_io::source::{FileSource, PartitionInfo, Polled, RecordSource};
use dtc_io::{Extractor, IoError, RejectReason, Rejection};
use dtc_plan::plan::{StreamingPlan, WindowPlan};
use dtc_plan::record::Row;
use dtc_plan::value::Value;
use dtc_store::BlockStore;

use crate::commit::{self, Manifest};
use crate::error::RunError;
use crate::locations::{Services, inputs};
use crate::report::{BadFile, BatchReport, Observer, WindowReport, field_errors};
use crate::specs::Fnv;
use crate::window::RowsOut;

/// How a batch run works; the defaults are the CLI's.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Memory for sorting events before spilling sorted runs to disk.
    pub sort_budget_bytes: usize,
    pub spill_dir: PathBuf,
    /// Records per store write.
    pub write_batch_records: usize,
    pub identity_order: IdentityOrder,
    /// Leave out input files whose data is damaged instead of stopping the run.
    pub skip_bad_files: bool,
}

/// A streaming batch run: what to read, where its results go.
pub struct BatchRun<'a> {
    pub streaming: Arc<StreamingPlan>,
    /// Rows are computed in the same pass when a window is given.
    pub window: Option<Arc<WindowPlan>>,
    pub store: &'a dyn BlockStore,
    /// Files, directories, `-`, `s3://` locations.
    pub sources: Vec<String>,
    pub dead_letters: PathBuf,
    pub rows: RowsOut,
    pub options: BatchOptions,
}

/// Called with each identity's state after its events were applied (to print records).
pub type RecordsOut<'a> = &'a mut dyn FnMut(&StreamingPlan, &IdentityState) -> std::io::Result<()>;

/// What the read phase produced.
struct Read {
    batch: StreamingBatch,
    letters: StagedDeadLetters,
    /// A fingerprint of the input (partitions, sizes, start offsets), or a fresh id when an
    /// input cannot be read again (stdin).
    run_id: String,
    /// Whether the run can be resumed after a crash (it has no stdin input).
    resumable: bool,
    events_read: u64,
    filtered: u64,
    already_applied: u64,
    byte_order_marks: u64,
    unseen_source_paths: Vec<UnseenPath>,
}

enum ReadOutcome {
    Done(Box<Read>),
    /// An input's data is damaged; nothing of this read may be used.
    BadFile {
        name: String,
        error: IoError,
    },
}

/// Runs `run`: recovers unfinished commits of the store first, then reads, applies and
/// commits. `records`, if given, sees each identity's final state.
pub fn run_batch(
    run: BatchRun<'_>,
    services: &mut Services,
    observer: &mut dyn Observer,
    mut records: Option<RecordsOut<'_>>,
) -> Result<BatchReport, RunError> {
    let started = Instant::now();
    let BatchRun {
        streaming,
        window,
        store,
        sources,
        dead_letters,
        rows,
        options,
    } = run;
    let recovered = commit::recover(store, services)?;
    StagedDeadLetters::remove_stale(&dead_letters, &[])?;
    let mut rows = rows.prepare(services)?;
    let input = Input {
        streaming: &streaming,
        store,
        sources: &sources,
        dead_letters: &dead_letters,
        options: &options,
    };

    let mut bad_files: Vec<BadFile> = Vec::new();
    let read = loop {
        match read_phase(&input, &bad_files, services, observer)? {
            ReadOutcome::Done(read) => break read,
            ReadOutcome::BadFile { name, error } if options.skip_bad_files => {
                bad_files.push(BadFile {
                    name,
                    error: error.to_string(),
                });
            }
            ReadOutcome::BadFile { error, .. } => return Err(RunError::BadInput { error }),
        }
    };
    observer.read_done();
    let read_elapsed = started.elapsed();
    let Read {
        mut batch,
        letters,
        run_id,
        resumable,
        events_read,
        filtered,
        already_applied,
        byte_order_marks,
        unseen_source_paths,
    } = *read;

    if resumable {
        batch.resumable(&format!("run:{run_id}"));
    }
    let mut staged = match (&window, &mut rows) {
        (Some(window), Some(rows)) => Some(rows.stage(window, &run_id, services)?),
        _ => None,
    };
    let mut window_op = window.clone().map(WindowOperator::new);
    let mut window_report = window.as_ref().map(|w| WindowReport::new(&w.name));
    let mut sink_error: Option<IoError> = None;
    let mut identity_rows: Vec<Row> = Vec::new();
    let finished = batch.finish(store, |operator, state| {
        if let (Some(op), Some(staged), Some(report)) =
            (window_op.as_mut(), staged.as_mut(), window_report.as_mut())
        {
            identity_rows.clear();
            let view = view_of_state(op.plan(), state);
            op.rows(&view, &mut identity_rows);
            report.identities += 1;
            report.preview(&identity_rows);
            if let Err(e) = staged.sink.write_identity(&state.identity, &identity_rows) {
                let message = e.to_string();
                sink_error = Some(e);
                return Err(EngineError::Sink(message));
            }
        }
        if let Some(print) = records.as_mut() {
            print(operator.plan(), state).map_err(|e| EngineError::Sink(e.to_string()))?;
        }
        Ok(())
    });
    let finished = match (finished, sink_error) {
        (Err(_), Some(e)) => return Err(e.into()),
        (result, _) => result?,
    };

    let mut manifest = Manifest::new(&run_id);
    if let (Some(staged), Some(report)) = (staged, window_report.as_mut()) {
        let (publication, output) = staged.seal()?;
        report.rows = output.rows;
        report.nulled_values = output.nulled_values;
        report.output = publication.as_ref().map(|p| p.location.clone());
        manifest.publications.extend(publication);
    }
    if let (Some(report), Some(op)) = (window_report.as_mut(), window_op.as_ref()) {
        report.finish(op);
    }
    let (rejected, letters) = letters.seal()?;
    manifest.dead_letters = letters;
    commit::commit(store, finished.final_batch, manifest, services)?;

    let summary = finished.summary;
    Ok(BatchReport {
        streaming: streaming.name.clone(),
        store: store.describe(),
        store_usage: store.usage(),
        events_read,
        already_applied,
        byte_order_marks,
        unseen_source_paths,
        applied: summary.events_applied,
        filtered,
        rejected,
        dead_letters,
        identities: summary.identities,
        resumed_identities: summary.resumed_identities,
        records_written: summary.records_written,
        spilled_runs: summary.spilled_runs,
        errors: field_errors(finished.operator.errors(), &streaming.field_names),
        bad_files,
        recovered,
        window: window_report,
        elapsed: started.elapsed(),
        read_elapsed,
    })
}

/// What the read phase reads.
struct Input<'a> {
    streaming: &'a Arc<StreamingPlan>,
    store: &'a dyn BlockStore,
    sources: &'a [String],
    dead_letters: &'a std::path::Path,
    options: &'a BatchOptions,
}

/// Reads every input but `bad_files` into a new sorted batch.
fn read_phase(
    run: &Input<'_>,
    bad_files: &[BadFile],
    services: &mut Services,
    observer: &mut dyn Observer,
) -> Result<ReadOutcome, RunError> {
    let streaming = run.streaming;
    let config = BatchConfig {
        sort_budget_bytes: run.options.sort_budget_bytes.max(1 << 20),
        spill_dir: run.options.spill_dir.clone(),
        write_batch_records: run.options.write_batch_records.max(1),
        identity_order: run.options.identity_order,
    };
    let mut batch = StreamingBatch::new(streaming.clone(), config)?;
    let skip: HashSet<&str> = bad_files.iter().map(|b| b.name.as_str()).collect();
    let inputs: Vec<_> = inputs(run.sources, services)?
        .into_iter()
        .filter(|input| !skip.contains(input.name()))
        .collect();
    // Where each input resumes, and a fingerprint of them all: the run's id, the same for a
    // re-run of the same command over the same input, so that it resumes a crashed run.
    let mut starts = Vec::with_capacity(inputs.len());
    let mut fingerprint = Some(Fnv::new());
    for input in &inputs {
        let key = input.checkpoint_key();
        let start = match &key {
            Some(key) => run.store.checkpoint(key)?.map_or(0, |c| c.offset.max(0)),
            None => 0,
        };
        match (&key, fingerprint.as_mut()) {
            (Some(key), Some(f)) => {
                f.write(key.as_bytes());
                f.write(&input.size().unwrap_or(u64::MAX).to_le_bytes());
                f.write(&start.to_le_bytes());
            }
            _ => fingerprint = None,
        }
        starts.push(start);
    }
    let run_id = match &fingerprint {
        Some(f) => format!("{:016x}", f.finish()),
        None => dtc_io::sink::new_run_id(),
    };
    let mut letters = StagedDeadLetters::create(run.dead_letters, &run_id)?;
    for bad in bad_files {
        letters.write(
            &bad.name,
            Position::Byte(0),
            &Rejection::new(RejectReason::CorruptFile, bad.error.clone()),
            b"",
        )?;
    }
    let mut source = FileSource::new(inputs);
    let extractor = Extractor::new(&streaming.source_paths, streaming.needs_whole_source);
    let mut values = Vec::with_capacity(extractor.output_len());
    let mut raw = Vec::with_capacity(extractor.output_len());
    let takes_raw = batch.takes_raw();
    // A path the spec reads that no event has is most likely misspelt: tell it by name after
    // the run, with the closest key the events did have.
    let mut presence = PathPresence::new(streaming.source_paths.len());
    let mut keys = SourceKeys::default();
    let (mut events_read, mut filtered) = (0u64, 0u64);
    // Per partition: what the source said of it, and where it started.
    let mut partitions: Vec<(PartitionInfo, i64)> = Vec::new();
    loop {
        let polled = source.poll()?;
        let record = match polled {
            Polled::Record(record) => record,
            Polled::Partition(id) => {
                let info = source.partition(id).cloned().ok_or_else(|| {
                    RunError::Internal(format!("partition {id} was announced without its name"))
                })?;
                let start = starts.get(id as usize).copied().unwrap_or(0);
                source.start_at(id, start)?;
                if partitions.len() != id as usize {
                    return Err(RunError::Internal(format!(
                        "partition {id} was announced out of order"
                    )));
                }
                partitions.push((info, start));
                continue;
            }
            Polled::PartitionEnd {
                partition,
                next_offset,
            } => {
                if let Some((info, start)) = partitions.get(partition as usize)
                    && let Some(key) = &info.checkpoint_key
                    && next_offset > *start
                {
                    batch.set_checkpoint(key.clone(), next_offset);
                }
                continue;
            }
            Polled::BadPartition { partition, error } => {
                let name = match (partitions.get(partition as usize), &error) {
                    (Some((info, _)), _) => info.name.clone(),
                    (None, IoError::Corrupt { input, .. }) => input.clone(),
                    (None, _) => format!("input {partition}"),
                };
                // The stage holds letters of a file that cannot be trusted: start over.
                drop(letters);
                return Ok(ReadOutcome::BadFile { name, error });
            }
            Polled::Idle | Polled::Revoked(_) => continue,
            Polled::End => break,
        };
        events_read += 1;
        if events_read.is_multiple_of(4096) {
            observer.read_progress(events_read);
        }
        // Most records take the fast road: their scalars are encoded for the sort where they
        // lie in the line, without building values (see `StreamingBatch::push_raw`).
        let line = record.payload;
        if presence.any_unseen() {
            keys.observe(line);
        }
        let pushed = if takes_raw && !record.truncated && extractor.extract_raw(line, &mut raw) {
            presence.record_raw(&raw);
            batch.push_raw(line, &raw, &mut values)?
        } else {
            let extracted = if record.truncated {
                Err(Rejection::new(
                    RejectReason::LineTooLong,
                    "the line is longer than the maximum line length",
                ))
            } else {
                extractor.extract(line, &mut values)
            };
            match extracted {
                Ok(()) => {
                    presence.record(&values);
                    let whole = if streaming.needs_whole_source {
                        values.pop()
                    } else {
                        None
                    };
                    batch.push(&mut values, whole)?
                }
                Err(Rejection { reason, detail }) => Pushed::Rejected { reason, detail },
            }
        };
        match pushed {
            Pushed::Accepted => {}
            Pushed::Filtered => filtered += 1,
            Pushed::Rejected { reason, detail } => {
                let rejection = Rejection { reason, detail };
                let (name, position) = match partitions.get(record.partition as usize) {
                    Some((info, _)) => (info.name.as_str(), info.position(record.offset)),
                    None => ("?", Position::Offset(record.offset)),
                };
                observer.rejected(name, position, &rejection);
                letters.write(name, position, &rejection, line)?;
            }
        }
        dtc_failpoint::hit("runtime.read.record");
    }
    let stats = source.stats();
    Ok(ReadOutcome::Done(Box::new(Read {
        batch,
        letters,
        run_id,
        resumable: fingerprint.is_some(),
        events_read,
        filtered,
        already_applied: stats.skipped,
        byte_order_marks: stats.byte_order_marks,
        unseen_source_paths: if events_read > 0 {
            unseen_paths(&streaming.source_paths, &presence, &keys)
        } else {
            Vec::new()
        },
    })))
}

/// The value shown for a row cell in previews.
pub fn preview_cell(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Float(f) => format!("{f:.2}"),
        other => dtc_io::format::to_json_string(other, dtc_io::format::JsonStyle::Compact)
            .trim_matches('"')
            .to_string(),
    }
}
