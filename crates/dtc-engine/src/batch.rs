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
    /// Key of this run's progress checkpoint (see [`StreamingBatch::resumable`]).
    run_key: Option<String>,
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
            run_key: None,
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

    /// Records that input `partition` has been applied up to `offset` (e.g. a file's last line
    /// number). Checkpoints are written with the run's last batch of records, so a later run
    /// can skip what this one applied.
    pub fn set_checkpoint(&mut self, partition: String, offset: i64) {
        self.checkpoints.push((partition, Checkpoint { offset }));
    }

    /// Makes the run resumable after a crash. `run_key` must identify the run's input exactly
    /// (e.g. a fingerprint of the files and their start offsets): identities are applied in a
    /// deterministic order and each identity's records are written in one atomic batch along with
    /// the count of identities done, so a re-run with the same key skips the identities a crashed
    /// run already wrote instead of applying their events twice.
    pub fn resumable(&mut self, run_key: String) {
        self.run_key = Some(run_key);
    }

    /// Applies every identity's events in time order, writes changed records to `store`, and
    /// hands each identity's final state to `on_identity` (in the configured identity order).
    pub fn finish(
        self,
        store: &dyn BlockStore,
        mut on_identity: impl FnMut(&StreamingOperator, &IdentityState) -> Result<(), EngineError>,
    ) -> Result<(StreamingOperator, BatchSummary), EngineError> {
        let StreamingBatch {
            sorter,
            mut operator,
            config,
            mut checkpoints,
            run_key,
            ..
        } = self;
        let mut summary = BatchSummary {
            spilled_runs: sorter.spilled_runs(),
            ..BatchSummary::default()
        };
        let already_done = match &run_key {
            Some(key) => store.checkpoint(key)?.map_or(0, |c| c.offset.max(0) as u64),
            None => 0,
        };
        summary.resumed_identities = already_done;
        // Each identity leaves the merge once and is written only after it is loaded, so a
        // store that held no identity when the run began has none to load: a first run over a
        // new store (a backfill) skips a store read per identity.
        let store_was_empty = already_done == 0 && store.holds_no_identity()?;
        let progress = |done: u64| {
            run_key
                .iter()
                .map(|key| {
                    (
                        key.clone(),
                        Checkpoint {
                            offset: done as i64,
                        },
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut sorted = sorter.finish()?;
        let batch_vec = || Vec::with_capacity(config.write_batch_records);
        std::thread::scope(|scope| {
            let mut writer = BatchWriter::start(scope, store)?;
            let mut pending: Vec<StoredRecord> = batch_vec();
            let mut done = 0u64;
            while let Some(identity) = sorted.next_identity() {
                let stored = if store_was_empty {
                    Vec::new()
                } else {
                    // Not behind a write still queued: that holds other identities' records.
                    store.load_identity(&identity)?
                };
                let mut state = operator.load_state(identity, stored);
                done += 1;
                if done <= already_done {
                    // Written by a crashed run with this input: its stored state is final.
                    sorted.for_each_event(|_| {})?;
                    on_identity(&operator, &state)?;
                    continue;
                }
                sorted.for_each_event(|event| operator.apply(&mut state, event))?;
                summary.identities += 1;
                // Handed over before its records move to the write batch. Rows may leave
                // before the records are written either way: a batch is written when it is
                // full, and after the writes queued before it.
                on_identity(&operator, &state)?;
                state.into_dirty_records(operator.plan(), &mut pending);
                if pending.len() >= config.write_batch_records {
                    summary.records_written += pending.len() as u64;
                    writer.write(
                        WriteBatch {
                            puts: std::mem::replace(&mut pending, batch_vec()),
                            deletes: Vec::new(),
                            checkpoints: progress(done),
                        },
                        Some(done),
                    )?;
                }
            }
            summary.records_written += pending.len() as u64;
            checkpoints.extend(progress(done));
            writer.write(
                WriteBatch {
                    puts: pending,
                    deletes: Vec::new(),
                    checkpoints,
                },
                None,
            )?;
            writer.finish()
        })?;
        store.sync()?;
        summary.events_applied = operator.applied;
        Ok((operator, summary))
    }
}

/// Batches queued for the writer thread at most: enough to cover a durable commit of the
/// embedded store (about a tenth of a second of the merge's output on 10 M events) without
/// stopping the merge, at about a megabyte each.
const WRITES_IN_FLIGHT: usize = 16;

/// A batch for the writer thread, with the identities done once it is written (for
/// [`crash_point`]).
struct QueuedWrite {
    batch: WriteBatch,
    identities_done: Option<u64>,
}

/// Store writes on a thread of their own, in the order they are queued: a write's wait (a
/// durable commit's fsync, a service's round trip) overlaps the apply of the identities after
/// it instead of stopping the run. Written batches keep their meaning for a resume: each
/// carries the progress of the identities before it, and one is written only after those
/// before it were. The first failed write stops the thread, and the next call here returns
/// its error.
struct BatchWriter<'scope> {
    queue: Option<SyncSender<QueuedWrite>>,
    thread: Option<ScopedJoinHandle<'scope, Result<(), EngineError>>>,
}

impl<'scope> BatchWriter<'scope> {
    fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        store: &'env dyn BlockStore,
    ) -> Result<Self, EngineError> {
        let (queue, queued) = sync_channel::<QueuedWrite>(WRITES_IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("dtc-store-writer".into())
            .spawn_scoped(scope, move || {
                for write in queued {
                    store.write(write.batch)?;
                    if let Some(done) = write.identities_done {
                        crash_point(done);
                    }
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
    fn write(
        &mut self,
        batch: WriteBatch,
        identities_done: Option<u64>,
    ) -> Result<(), EngineError> {
        let write = QueuedWrite {
            batch,
            identities_done,
        };
        if self
            .queue
            .as_ref()
            .is_some_and(|queue| queue.send(write).is_ok())
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

/// Fault injection for the kill-and-resume tests: `DTC_CRASH_AFTER_IDENTITIES=N` aborts the
/// process right after a write batch that completed at least N identities, as a kill would.
fn crash_point(done: u64) {
    if let Some(limit) = std::env::var("DTC_CRASH_AFTER_IDENTITIES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        && done >= limit
    {
        eprintln!("dtc: DTC_CRASH_AFTER_IDENTITIES={limit}: aborting after {done} identities");
        std::process::abort();
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

    /// A memory store that fails its `fail_at`-th write (1-based) and notes the progress
    /// checkpoint of every write it applied.
    struct FlakyStore {
        inner: MemoryStore,
        fail_at: usize,
        attempts: Mutex<usize>,
        progress: Mutex<Vec<i64>>,
    }

    impl FlakyStore {
        fn new(fail_at: usize) -> FlakyStore {
            FlakyStore {
                inner: MemoryStore::new(),
                fail_at,
                attempts: Mutex::new(0),
                progress: Mutex::new(Vec::new()),
            }
        }

        fn attempts(&self) -> usize {
            *self.attempts.lock().unwrap_or_else(|e| e.into_inner())
        }

        fn progress(&self) -> Vec<i64> {
            self.progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
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
                });
            }
            let progress = batch
                .checkpoints
                .iter()
                .filter(|(key, _)| key == RUN_KEY)
                .map(|(_, c)| c.offset);
            self.progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(progress);
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

        fn describe(&self) -> String {
            "flaky store".into()
        }
    }

    const USERS: usize = 40;

    /// `USERS` users with two sessions of three games each; one record per write batch.
    fn run(store: &dyn BlockStore) -> Result<BatchSummary, EngineError> {
        let plan = streaming_plan(STREAMING);
        let spill = spill_dir()?;
        let config = BatchConfig {
            spill_dir: spill.path().to_path_buf(),
            write_batch_records: 1,
            ..BatchConfig::default()
        };
        let mut batch = StreamingBatch::new(plan.clone(), config)?;
        batch.resumable(RUN_KEY.into());
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
        batch
            .finish(store, |_, _| Ok(()))
            .map(|(_, summary)| summary)
    }

    #[test]
    fn background_writes_land_in_order_with_their_progress() -> Result<(), EngineError> {
        let store = FlakyStore::new(usize::MAX);
        let summary = run(&store)?;
        assert_eq!(summary.identities, USERS as u64);
        assert_eq!(summary.records_written, 2 * USERS as u64);
        // One write per identity (its two sessions fill a batch of one), then the last one.
        let progress = store.progress();
        let expected: Vec<i64> = (1..=USERS as i64).chain([USERS as i64]).collect();
        assert_eq!(progress, expected);
        let games = store
            .inner
            .load_identity("u007")?
            .iter()
            .map(|r| r.columns.clone())
            .collect::<Vec<_>>();
        assert_eq!(games.len(), 2, "{games:?}");
        Ok(())
    }

    #[test]
    fn a_failed_background_write_stops_the_run_and_the_writes_after_it() {
        let fail_at = 5;
        let store = FlakyStore::new(fail_at);
        match run(&store) {
            Err(EngineError::Store(StoreError::Service { message, .. })) => {
                assert_eq!(message, "write 5 refused");
            }
            other => panic!("expected the write's error, got {other:?}"),
        }
        assert_eq!(store.attempts(), fail_at, "no write after the failed one");
        // A re-run resumes after the four identities whose writes landed.
        assert_eq!(store.progress(), vec![1, 2, 3, 4]);
        let stored = store
            .inner
            .identities(None, 100)
            .map(|p| p.identities.len());
        assert!(matches!(stored, Ok(4)), "{stored:?}");
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
