//! Batch runs: admitted events → per-identity time order → streaming operator → block store,
//! and window rows over stored blocks.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};

use dtc_io::RawValue;
use dtc_plan::plan::{CExpr, Slot, StreamingPlan, WindowPlan};
use dtc_plan::record::Row;
use dtc_plan::value::Value;
use dtc_store::{BlockStore, Checkpoint, StoredRecord, WriteBatch};

use crate::error::EngineError;
use crate::event::{Admission, Admitter, RejectReason};
use crate::sort::{EventSorter, IdentityOrder};
use crate::streaming::{IdentityState, StreamingOperator};
use crate::window::{IdentityView, WindowOperator};

#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Memory for buffered events before a sorted run is spilled to disk.
    pub sort_budget_bytes: usize,
    /// Where spill files go (a temporary directory is created inside).
    pub spill_dir: PathBuf,
    /// Records per store write.
    pub write_batch_records: usize,
    /// The order identities are applied and handed to `on_identity` in.
    pub identity_order: IdentityOrder,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            sort_budget_bytes: 128 << 20,
            spill_dir: std::env::temp_dir(),
            write_batch_records: 2_000,
            identity_order: IdentityOrder::Name,
        }
    }
}

/// What a streaming batch run did.
#[derive(Debug, Clone, Default)]
pub struct BatchSummary {
    pub events_applied: u64,
    pub identities: u64,
    pub records_written: u64,
    pub spilled_runs: usize,
    /// Identities skipped because a crashed run with the same input had written them.
    pub resumed_identities: u64,
}

/// What a streaming batch run left to its caller.
pub struct Finished {
    pub operator: StreamingOperator,
    pub summary: BatchSummary,
    /// The run's last write, not yet made: the records after the last full write batch and the
    /// input checkpoints. The caller writes it (with whatever must commit together with the
    /// input checkpoints, such as the outputs to publish) and then syncs the store.
    pub final_batch: WriteBatch,
}

/// What happened to a pushed event.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushed {
    Accepted,
    /// The transform-level `When` was not true.
    Filtered,
    Rejected {
        reason: RejectReason,
        detail: String,
    },
}

/// A streaming batch run: push projected events, then [`StreamingBatch::finish`].
pub struct StreamingBatch {
    admitter: Admitter,
    /// [`Admitter::dropped_paths`], for events encoded from their lines.
    dropped_paths: Vec<bool>,
    sorter: EventSorter,
    operator: StreamingOperator,
    config: BatchConfig,
    checkpoints: Vec<(String, Checkpoint)>,
    /// The run's writer mark (see [`StreamingBatch::resumable`]); 0 when not resumable.
    writer: u64,
}

impl StreamingBatch {
    pub fn new(plan: Arc<StreamingPlan>, config: BatchConfig) -> Result<Self, EngineError> {
        let mut sorter = EventSorter::new(
            config.sort_budget_bytes,
            &config.spill_dir,
            config.identity_order,
        )?;
        if let CExpr::Load(Slot::SourcePath(path)) = plan.identity {
            sorter.identity_path(path as usize);
        }
        let admitter = Admitter::new(plan.clone());
        Ok(StreamingBatch {
            dropped_paths: admitter.dropped_paths(),
            admitter,
            sorter,
            operator: StreamingOperator::new(plan),
            config,
            checkpoints: Vec::new(),
            writer: 0,
        })
    }

    /// Admits one projected event. Accepted events are buffered; the caller handles filtered
    /// and rejected ones (counting, dead letters). `values` is taken; an accepted event's
    /// vector comes back, still holding its values, so a caller reading many lines can reuse
    /// it (the extractor resets only the values a line set, instead of dropping them all here).
    pub fn push(
        &mut self,
        values: &mut Vec<Value>,
        whole: Option<Value>,
    ) -> Result<Pushed, EngineError> {
        Ok(match self.admitter.admit(std::mem::take(values), whole) {
            Admission::Accepted {
                identity,
                mut event,
            } => {
                // Buffered encoded: the event's values are not needed past this point.
                self.sorter.push(&identity, &mut event)?;
                *values = event.values;
                Pushed::Accepted
            }
            Admission::Filtered => Pushed::Filtered,
            Admission::Rejected { reason, detail } => Pushed::Rejected { reason, detail },
        })
    }

    /// Whether [`StreamingBatch::push_raw`] can admit events without building their values
    /// (see [`Admitter::takes_raw`]); when it cannot, it builds them and calls
    /// [`StreamingBatch::push`], which is then the cheaper call.
    pub fn takes_raw(&self) -> bool {
        self.admitter.takes_raw()
    }

    /// [`StreamingBatch::push`] for an event given by the scalars of its JSON `line`, as
    /// [`dtc_io::Extractor::extract_raw`] found them. A plainly accepted event is encoded for
    /// the sort straight from the line; any other goes through [`StreamingBatch::push`] with
    /// its values built in `values`, so the outcome is the same either way.
    pub fn push_raw(
        &mut self,
        line: &[u8],
        raw: &[RawValue],
        values: &mut Vec<Value>,
    ) -> Result<Pushed, EngineError> {
        if let Some(identity) = self.admitter.raw_identity(line, raw) {
            // The identity table is large and an identity's events seldom come together, so
            // its entry is fetched while the time is parsed.
            let hash = self.sorter.prefetch_identity(identity);
            if let Some(time) = self.admitter.raw_time(line, raw) {
                self.sorter
                    .push_raw((identity, hash), time, line, raw, &self.dropped_paths)?;
                return Ok(Pushed::Accepted);
            }
        }
        values.clear();
        values.extend(raw.iter().map(|value| value.to_value(line)));
        self.push(values, None)
    }

    /// Records that input `partition` has been applied up to `offset` (the offset of its next
    /// record). Checkpoints go into the run's final write ([`Finished::final_batch`]), so a
    /// later run skips what this one applied.
    pub fn set_checkpoint(&mut self, partition: String, offset: i64) {
        self.checkpoints.push((partition, Checkpoint { offset }));
    }

    /// Makes the run resumable after a crash. `run_key` must identify the run's input exactly
    /// (e.g. a fingerprint of the files and their start offsets). Every record the run writes
    /// carries a mark made from it (`StoredRecord::writer`), and an identity's records are
    /// written in one atomic write: a re-run with the same key finds the identities the
    /// crashed run already wrote by their mark and takes their stored state as final instead
    /// of applying their events twice.
    pub fn resumable(&mut self, run_key: &str) {
        self.writer = writer_mark(run_key);
    }

    /// Applies every identity's events in time order, writes changed records to `store`, and
    /// hands each identity's final state to `on_identity` (in the configured identity order).
    /// The last records and the input checkpoints are not written: see
    /// [`Finished::final_batch`].
    pub fn finish(
        self,
        store: &dyn BlockStore,
        mut on_identity: impl FnMut(&StreamingOperator, &IdentityState) -> Result<(), EngineError>,
    ) -> Result<Finished, EngineError> {
        let StreamingBatch {
            sorter,
            mut operator,
            config,
            checkpoints,
            writer,
            ..
        } = self;
        let mut summary = BatchSummary {
            spilled_runs: sorter.spilled_runs(),
            ..BatchSummary::default()
        };
        // Each identity leaves the merge once and is written only after it is loaded, so a
        // store that held no identity when the run began has none to load: a first run over a
        // new store (a backfill) skips a store read per identity.
        let store_was_empty = store.holds_no_identity()?;
        let mut sorted = sorter.finish()?;
        dtc_failpoint::hit("engine.merge.start");
        let batch_vec = || Vec::with_capacity(config.write_batch_records);
        let pending = std::thread::scope(|scope| {
            let mut writer_thread = BatchWriter::start(scope, store)?;
            let mut pending: Vec<StoredRecord> = batch_vec();
            while let Some(identity) = sorted.next_identity() {
                let stored = if store_was_empty {
                    Vec::new()
                } else {
                    // Not behind a write still queued: that holds other identities' records.
                    store.load_identity(&identity)?
                };
                if writer != 0 && stored.iter().any(|r| r.writer == writer) {
                    // Written by a crashed run with this input: its stored state is final.
                    let state = operator.load_state(identity, stored);
                    sorted.for_each_event(|_| {})?;
                    summary.resumed_identities += 1;
                    on_identity(&operator, &state)?;
                    continue;
                }
                let mut state = operator.load_state(identity, stored);
                sorted.for_each_event(|event| operator.apply(&mut state, event))?;
                summary.identities += 1;
                // Handed over before its records move to the write batch. Rows may leave
                // before the records are written either way: a batch is written when it is
                // full, and after the writes queued before it.
                on_identity(&operator, &state)?;
                let first = pending.len();
                state.into_dirty_records(operator.plan(), &mut pending);
                for record in &mut pending[first..] {
                    record.writer = writer;
                }
                dtc_failpoint::hit("engine.merge.identity");
                if pending.len() >= config.write_batch_records {
                    summary.records_written += pending.len() as u64;
                    writer_thread.write(WriteBatch {
                        puts: std::mem::replace(&mut pending, batch_vec()),
                        ..WriteBatch::default()
                    })?;
                }
            }
            writer_thread.finish()?;
            Ok::<_, EngineError>(pending)
        })?;
        summary.records_written += pending.len() as u64;
        summary.events_applied = operator.applied;
        Ok(Finished {
            operator,
            summary,
            final_batch: WriteBatch {
                puts: pending,
                checkpoints,
                ..WriteBatch::default()
            },
        })
    }
}

/// A nonzero 64-bit mark of a run key (FNV-1a: the same on every build and platform, so a
/// re-run by another build of dtc finds the marks of the crashed run). Its top bit is clear:
/// marks with it set are a live consumer's ([`LIVE_MARK`]).
fn writer_mark(run_key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in run_key.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash & !LIVE_MARK).max(1)
}

/// The bit that tells a live consumer's writer mark (`StoredRecord::writer`) from a batch
/// run's: the rest of a live mark is the offset after the last event applied to the identity
/// in its partition, so that a restart skips the events a written identity already holds.
pub const LIVE_MARK: u64 = 1 << 63;

/// Batches queued for the writer thread at most: enough to cover a durable commit of the
/// embedded store (about a tenth of a second of the merge's output on 10 M events) without
/// stopping the merge, at about a megabyte each.
const WRITES_IN_FLIGHT: usize = 16;

/// Store writes on a thread of their own, in the order they are queued: a write's wait (a
/// durable commit's fsync, a service's round trip) overlaps the apply of the identities after
/// it instead of stopping the run. The first failed write stops the thread, and the next call
/// here returns its error.
struct BatchWriter<'scope> {
    queue: Option<SyncSender<WriteBatch>>,
    thread: Option<ScopedJoinHandle<'scope, Result<(), EngineError>>>,
}

impl<'scope> BatchWriter<'scope> {
    fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        store: &'env dyn BlockStore,
    ) -> Result<Self, EngineError> {
        let (queue, queued) = sync_channel::<WriteBatch>(WRITES_IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("dtc-store-writer".into())
            .spawn_scoped(scope, move || {
                for batch in queued {
                    store.write(batch)?;
                    dtc_failpoint::hit("engine.store.written");
                }
                Ok(())
            })
            .map_err(EngineError::WriterThread)?;
        Ok(BatchWriter {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `batch`, waiting while [`WRITES_IN_FLIGHT`] batches are queued.
    fn write(&mut self, batch: WriteBatch) -> Result<(), EngineError> {
        if self
            .queue
            .as_ref()
            .is_some_and(|queue| queue.send(batch).is_ok())
        {
            return Ok(());
        }
        // The thread stops early only on a failed write, and that write's error is the answer.
        self.join()?;
        Err(EngineError::Internal(
            "the block store writer stopped without an error",
        ))
    }

    /// Waits until every queued batch is written.
    fn finish(mut self) -> Result<(), EngineError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), EngineError> {
        self.queue = None;
        match self.thread.take().map(ScopedJoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
        }
    }
}

/// A window view of an identity state produced by the streaming operator (combined runs:
/// no store read).
pub fn view_of_state<'a>(plan: &WindowPlan, state: &'a IdentityState) -> IdentityView<'a> {
    let n = plan.streaming.aggregates.len();
    let records = (0..n).flat_map(move |agg| {
        state
            .records(agg)
            .iter()
            .map(move |r| (agg, r.columns.as_slice(), r.order))
    });
    IdentityView::new(plan, state.identity.clone(), records)
}

/// A window view of records read from a store, in the order the store returned them: blocks
/// with equal starts and creation ordinals (0, from older stores) keep that order, as they
/// do in the state a streaming run loads from the same records.
pub fn view_of_stored<'a>(
    plan: &WindowPlan,
    identity: Arc<str>,
    stored: &'a [StoredRecord],
) -> IdentityView<'a> {
    let streaming = &plan.streaming;
    let records = stored.iter().filter_map(|r| {
        streaming
            .aggregates
            .iter()
            .position(|a| *a.name == *r.key.aggregate)
            .filter(|&agg| streaming.aggregates[agg].layout.columns.len() == r.columns.len())
            .map(|agg| (agg, r.columns.as_slice(), r.order))
    });
    IdentityView::new(plan, identity, records)
}

/// Identities read per store request, so memory stays bounded however many the store holds.
const IDENTITY_PAGE: usize = 1_000;

/// Window rows over blocks already in a store, one identity at a time (sorted identity order).
pub fn window_over_store(
    operator: &mut WindowOperator,
    store: &dyn BlockStore,
    mut on_rows: impl FnMut(&str, &[Row]) -> Result<(), EngineError>,
) -> Result<u64, EngineError> {
    let plan = operator.plan().clone();
    let mut rows = Vec::new();
    let mut identities = 0;
    let mut after: Option<String> = None;
    loop {
        let page = store.identities(after.as_deref(), IDENTITY_PAGE)?;
        for identity in page.identities {
            let stored = store.load_identity(&identity)?;
            let view = view_of_stored(&plan, identity.clone(), &stored);
            rows.clear();
            operator.rows(&view, &mut rows);
            on_rows(&identity, &rows)?;
            identities += 1;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(identities)
}

#[cfg(test)]
mod tests {
    //! The background writer: order, progress checkpoints, and a failed write.

    use std::sync::Mutex;

    use dtc_plan::value::Str;
    use dtc_store::MemoryStore;
    use dtc_store::{IdentityPage, RecordKey, StoreError, TimeRange};

    use super::*;
    use crate::testkit::{spill_dir, streaming_plan};

    const STREAMING: &str = "
Type: Streaming
Version: '2026-11-01'
Name: games
Identity: source.user
Time: parse_time(source.time)
Aggregates:
  - Type: Block
    Name: session
    Dimensions:
      - Name: session_id
        Value: source.session
    Fields:
      - Name: games
        Type: integer
        Value: session.games + 1
";

    const RUN_KEY: &str = "run";

    /// A memory store that fails its `fail_at`-th write (1-based) and counts its writes.
    struct FlakyStore {
        inner: MemoryStore,
        fail_at: usize,
        attempts: Mutex<usize>,
    }

    impl FlakyStore {
        fn new(fail_at: usize) -> FlakyStore {
            FlakyStore {
                inner: MemoryStore::new(),
                fail_at,
                attempts: Mutex::new(0),
            }
        }

        fn attempts(&self) -> usize {
            *self.attempts.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    impl BlockStore for FlakyStore {
        fn load_identity(&self, identity: &str) -> Result<Vec<StoredRecord>, StoreError> {
            self.inner.load_identity(identity)
        }

        fn get(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError> {
            self.inner.get(key)
        }

        fn blocks(
            &self,
            identity: &str,
            aggregate: &str,
            range: TimeRange,
        ) -> Result<Vec<StoredRecord>, StoreError> {
            self.inner.blocks(identity, aggregate, range)
        }

        fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
            let attempt = {
                let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
                *attempts += 1;
                *attempts
            };
            if attempt == self.fail_at {
                return Err(StoreError::Service {
                    service: "flaky",
                    message: format!("write {attempt} refused"),
                    retryable: true,
                    detail: String::new(),
                });
            }
            self.inner.write(batch)
        }

        fn identities(
            &self,
            after: Option<&str>,
            limit: usize,
        ) -> Result<IdentityPage, StoreError> {
            self.inner.identities(after, limit)
        }

        fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError> {
            self.inner.checkpoint(partition)
        }

        fn run_state(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
            self.inner.run_state(prefix)
        }

        fn describe(&self) -> String {
            "flaky store".into()
        }
    }

    const USERS: usize = 40;

    /// `USERS` users with two sessions of three games each; one identity per write batch. The
    /// final batch is written too, as the run's caller would.
    fn run(store: &dyn BlockStore) -> Result<BatchSummary, EngineError> {
        let plan = streaming_plan(STREAMING);
        let spill = spill_dir()?;
        let config = BatchConfig {
            spill_dir: spill.path().to_path_buf(),
            write_batch_records: 1,
            ..BatchConfig::default()
        };
        let mut batch = StreamingBatch::new(plan.clone(), config)?;
        batch.resumable(RUN_KEY);
        for minute in 0..6 {
            for user in 0..USERS {
                let field = |name: &str| match name {
                    "user" => Value::Str(Str::from(format!("u{user:03}"))),
                    "time" => Value::Str(Str::from(format!("2024-01-01T10:{minute:02}:00Z"))),
                    "session" => Value::Str(Str::from(format!("s{}", minute / 3))),
                    _ => Value::Null,
                };
                let mut values = plan
                    .source_paths
                    .iter()
                    .map(|path| path.0.first().map_or(Value::Null, |p| field(p)))
                    .collect();
                assert_eq!(batch.push(&mut values, None)?, Pushed::Accepted);
            }
        }
        batch.set_checkpoint("input".into(), 240);
        let finished = batch.finish(store, |_, _| Ok(()))?;
        store.write(finished.final_batch)?;
        Ok(finished.summary)
    }

    fn games(store: &dyn BlockStore, user: &str) -> Result<Vec<Vec<Value>>, StoreError> {
        Ok(store
            .load_identity(user)?
            .into_iter()
            .map(|r| r.columns)
            .collect())
    }

    #[test]
    fn records_are_written_with_the_runs_mark_and_the_checkpoints_last() -> Result<(), EngineError>
    {
        let store = FlakyStore::new(usize::MAX);
        let summary = run(&store)?;
        assert_eq!(summary.identities, USERS as u64);
        assert_eq!(summary.records_written, 2 * USERS as u64);
        // One write per identity (its two sessions fill a batch of one), then the final one.
        assert_eq!(store.attempts(), USERS + 1);
        let stored = store.inner.load_identity("u007")?;
        assert_eq!(stored.len(), 2, "{stored:?}");
        assert!(stored.iter().all(|r| r.writer == writer_mark(RUN_KEY)));
        assert_eq!(
            store.inner.checkpoint("input")?,
            Some(Checkpoint { offset: 240 })
        );
        Ok(())
    }

    #[test]
    fn a_failed_write_stops_the_run_and_a_rerun_applies_each_identity_once()
    -> Result<(), EngineError> {
        let clean = MemoryStore::new();
        run(&clean)?;

        let fail_at = 5;
        let store = FlakyStore::new(fail_at);
        match run(&store) {
            Err(EngineError::Store(StoreError::Service { message, .. })) => {
                assert_eq!(message, "write 5 refused");
            }
            other => panic!("expected the write's error, got {other:?}"),
        }
        assert_eq!(store.attempts(), fail_at, "no write after the failed one");
        assert_eq!(store.inner.identities(None, 100)?.identities.len(), 4);
        assert_eq!(store.inner.checkpoint("input")?, None);

        // The same input again: the four identities written are taken as they are.
        let summary = run(&store.inner)?;
        assert_eq!(summary.resumed_identities, 4);
        assert_eq!(summary.identities, USERS as u64 - 4);
        for user in 0..USERS {
            let user = format!("u{user:03}");
            assert_eq!(games(&store.inner, &user)?, games(&clean, &user)?, "{user}");
        }
        Ok(())
    }

    #[test]
    fn another_input_does_not_take_a_crashed_runs_records_as_its_own() -> Result<(), EngineError> {
        let store = MemoryStore::new();
        run(&store)?;
        // A second run with the same key would be a resume; a different input is not.
        assert_ne!(writer_mark(RUN_KEY), writer_mark("run2"));
        assert_ne!(writer_mark(""), 0);
        let plan = streaming_plan(STREAMING);
        let spill = spill_dir()?;
        let config = BatchConfig {
            spill_dir: spill.path().to_path_buf(),
            ..BatchConfig::default()
        };
        let mut batch = StreamingBatch::new(plan.clone(), config)?;
        batch.resumable("run2");
        let mut values: Vec<Value> = plan
            .source_paths
            .iter()
            .map(|path| match path.0.first().map(String::as_str) {
                Some("user") => Value::str("u001"),
                Some("time") => Value::str("2024-01-01T10:09:00Z"),
                Some("session") => Value::str("s1"),
                _ => Value::Null,
            })
            .collect();
        batch.push(&mut values, None)?;
        let finished = batch.finish(&store, |_, _| Ok(()))?;
        assert_eq!(finished.summary.resumed_identities, 0);
        assert_eq!(finished.summary.identities, 1);
        store.write(finished.final_batch)?;
        let games = games(&store, "u001")?;
        // The session's three games and this run's fourth: applied, not taken as resumed.
        assert!(
            games
                .iter()
                .any(|g| g.contains(&Value::Int(4)) && g.contains(&Value::str("s1"))),
            "{games:?}"
        );
        Ok(())
    }
}

#[cfg(test)]
mod raw_tests {
    //! Events pushed from their lines' raw scalars against events pushed as built values.

    use dtc_io::Extractor;

    use super::*;
    use crate::event::Event;
    use crate::testkit::{spill_dir, streaming_plan};

    /// `user` is both the identity and a field, `ts` only read by admission, `a.b` nested.
    const STREAMING: &str = "
Type: Streaming
Version: '2026-11-01'
Name: raw
Identity: source.user
Time: parse_time(source.ts)
Aggregates:
  - Type: Block
    Name: session
    Dimensions:
      - Name: session_id
        Type: string
        Value: source.session
    Fields:
      - Name: user_seen
        Type: string
        Value: source.user
      - Name: values
        Type: list
        Value: session.values.append([source.n, source.x, source.flag, source.a.b, source.text])
";

    const LINES: &[&str] = &[
        r#"{"user": "u1", "ts": "2024-01-01T10:00:00Z", "session": "s1", "n": 7, "flag": true}"#,
        r#"{"ts": "2024-01-01T09:00:00Z", "user": "u2", "session": "s1", "x": -1.5, "a": {"b": null}}"#,
        r#"{"user": "u1", "ts": "2024-01-01T09:30:00", "session": "s2", "flag": false, "a": {"b": "deep", "c": [1]}}"#,
        r#"{"user": "u1", "ts": "2024-01-01T10:00:00Z", "session": "s1", "n": 9223372036854775807, "x": 1e3}"#,
        r#"{"user": "u3", "ts": "2024-01-02 10:00:00", "session": "s\u00e9", "text": "esc\"aped"}"#,
        r#"{"user": "u3", "ts": "2024-01-02 10:00:01", "session": "sé", "text": "non-ASCII: été"}"#,
        r#"{"user": 42, "ts": "2024-01-02T10:00:00Z", "session": "s1"}"#,
        r#"{"user": "", "ts": "2024-01-02T10:00:00Z", "session": "s1"}"#,
        r#"{"ts": "2024-01-02T10:00:00Z", "session": "s1"}"#,
        r#"{"user": "u4", "ts": "yesterday", "session": "s1"}"#,
        r#"{"user": "u4", "ts": 1704189600, "session": "s1"}"#,
        r#"{"user": "u4", "session": "s1"}"#,
        r#"{"user": ["u4"], "ts": "2024-01-02T10:00:00Z", "session": "s1"}"#,
        r#"{"user": "u5", "ts": "2024-01-02T10:00:00Z", "session": "s1", "text": "a long text, longer than one hundred and twenty-seven bytes, so that its length takes two bytes of varint in the encoding"}"#,
        r#"{"user": "u5", "ts": "2024-01-02T10:00:00Z", "session": "s1", "n": 18446744073709551616, "x": 0.1}"#,
    ];

    type Drained = Vec<(String, Vec<Event>)>;

    /// Pushes every line of `LINES` either as raw scalars (where the extractor's fast road
    /// takes it) or as built values, and drains the sorted events.
    fn push_all(raw_road: bool) -> Result<(Vec<Pushed>, Drained), EngineError> {
        let plan = streaming_plan(STREAMING);
        let extractor = Extractor::new(&plan.source_paths, plan.needs_whole_source);
        let spill = spill_dir()?;
        let config = BatchConfig {
            spill_dir: spill.path().to_path_buf(),
            ..BatchConfig::default()
        };
        let mut batch = StreamingBatch::new(plan, config)?;
        assert!(batch.takes_raw());
        let (mut values, mut raw, mut pushed) = (Vec::new(), Vec::new(), Vec::new());
        let mut took_raw = 0;
        for line in LINES.iter().map(|l| l.as_bytes()) {
            pushed.push(if raw_road && extractor.extract_raw(line, &mut raw) {
                took_raw += 1;
                batch.push_raw(line, &raw, &mut values)?
            } else {
                match extractor.extract(line, &mut values) {
                    Ok(()) => batch.push(&mut values, None)?,
                    Err(rejection) => Pushed::Rejected {
                        reason: rejection.reason,
                        detail: rejection.detail,
                    },
                }
            });
        }
        if raw_road {
            // All but the escaped line, the exponent and the requested-container line... and
            // the serde-only number: the fast road must really be taken for this to test it.
            assert!(took_raw >= 10, "only {took_raw} lines took the raw road");
        }
        let mut sorted = batch.sorter.finish()?;
        let mut drained = Vec::new();
        while let Some(identity) = sorted.next_identity() {
            let mut events = Vec::new();
            sorted.for_each_event(|event| events.push(event.clone()))?;
            drained.push((identity.to_string(), events));
        }
        Ok((pushed, drained))
    }

    #[test]
    fn raw_and_built_values_admit_reject_and_sort_alike() -> Result<(), EngineError> {
        let (built_pushed, built_events) = push_all(false)?;
        let (raw_pushed, raw_events) = push_all(true)?;
        assert_eq!(raw_pushed, built_pushed);
        assert_eq!(raw_events, built_events);
        let accepted = built_pushed
            .iter()
            .filter(|p| **p == Pushed::Accepted)
            .count();
        assert_eq!(accepted, 9, "{built_pushed:#?}");
        let identities: Vec<&str> = built_events.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(identities, ["42", "u1", "u2", "u3", "u5"]);
        Ok(())
    }
}
