//! The continuous run: records from an unbounded source (Kafka) → identity states → the block
//! store, committed at least every commit interval, exactly once, and fresh.
//!
//! **Exact and fresh.** Per identity the run keeps the *view* (what readers see: every event
//! applied) and, while some of its events are not yet settled, the *base* (the state of its
//! settled events) and the unsettled events themselves, in (event time, offset) order. An
//! event is settled once its partition's watermark (the largest event time seen minus the
//! allowed disorder) has passed it. An in-order event is applied to the view at once; an
//! out-of-order one (within the disorder) is put in its place and the view is rebuilt: the base
//! replayed with the unsettled events in event-time order. So the view is always the state of
//! the identity's events applied in event-time order, as a batch run applies them, and it is
//! written at every commit (fresh). An event older than the watermark is late: it is applied
//! to the base (resuming its block, as a batch re-run does) and counted.
//!
//! **Exactly once.** One commit is one store write ([`crate::commit`]): the changed view
//! records, for identities with unsettled events a side record holding their base and their
//! unsettled events, each partition's next offset and largest event time, and the manifest of
//! the dead letters; fenced on each partition's checkpoint (a consumer that lost a partition
//! writes nothing). A restart reads every partition from its committed offset and loads each
//! identity's view, base and unsettled events as committed, so no event is lost or applied
//! twice. Where a store cannot write a commit atomically (DynamoDB past 100 items), every
//! record written carries its identity's mark (the offset after its last event applied), and a
//! restart skips an identity's events below its mark.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use dtc_engine::batch::LIVE_MARK;
use dtc_engine::event::{Admission, Admitter, Event};
use dtc_engine::streaming::{IdentityState, StreamingOperator, approx_value_bytes};
use dtc_io::dead_letter::{Position, RejectCounts, StagedDeadLetters};
use dtc_io::source::{PartitionId, Polled, RecordSource};
use dtc_io::{Extractor, RejectReason, Rejection};
use dtc_plan::plan::StreamingPlan;
use dtc_plan::value::{Str, Value};
use dtc_store::{BlockStore, RecordKey, RecordKind, StoreError, StoredRecord, WriteBatch};

use crate::commit::{self, Manifest};
use crate::error::RunError;
use crate::locations::Services;
use crate::report::{FieldErrorReport, Observer, field_errors};

/// The aggregate name of an identity's side record (base and unsettled events). Spec names
/// cannot start with `_`, so it never meets a real aggregate.
pub const SIDE_AGGREGATE: &str = "_live";

/// How a continuous run works; the defaults are the CLI's.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Commit at least this often.
    pub commit_interval: Duration,
    /// How far an event may come after a later one (in event time) and still count in order.
    pub allowed_disorder: TimeDelta,
    /// A partition without records for this long (wall clock) stops holding its events
    /// unsettled: they settle, and its activity blocks close.
    pub idle_timeout: Duration,
    /// Event times further than this ahead of the wall clock do not move the watermark (a
    /// device with a fast clock would make every honest event late).
    pub max_ahead: TimeDelta,
    /// Memory for cached identity states; the least recently used clean ones are dropped.
    pub cache_bytes: usize,
    /// How often the observer hears of progress.
    pub progress_interval: Duration,
}

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions {
            commit_interval: Duration::from_secs(1),
            allowed_disorder: TimeDelta::seconds(5),
            idle_timeout: Duration::from_secs(30),
            max_ahead: TimeDelta::hours(1),
            cache_bytes: 128 << 20,
            progress_interval: Duration::from_secs(5),
        }
    }
}

/// A continuous run: what to read, where its results go.
pub struct LiveRun<'a> {
    pub streaming: Arc<StreamingPlan>,
    pub store: &'a dyn BlockStore,
    pub source: &'a mut dyn RecordSource,
    pub dead_letters: PathBuf,
    pub options: LiveOptions,
    /// Set (by a signal handler of the front end) to finish: the run commits and returns.
    pub stop: Arc<AtomicBool>,
    /// Counters the run keeps up to date, for a metrics endpoint.
    pub metrics: Arc<LiveMetrics>,
}

/// The run's counters, updated as it goes (relaxed atomics: each is exact, they are not a
/// consistent snapshot of each other).
#[derive(Debug, Default)]
pub struct LiveMetrics {
    pub events_read: AtomicU64,
    pub applied: AtomicU64,
    pub filtered: AtomicU64,
    pub rejected: AtomicU64,
    /// Applied as late updates: older than their partition's watermark.
    pub late: AtomicU64,
    /// Events re-delivered after a crash that their identity already held.
    pub redelivered: AtomicU64,
    /// Events of an identity seen on another partition than before (the topic must be keyed
    /// by identity).
    pub identity_on_two_partitions: AtomicU64,
    pub commits: AtomicU64,
    pub records_written: AtomicU64,
    /// Identity states in memory, and those with unsettled events.
    pub identities_cached: AtomicU64,
    pub identities_unsettled: AtomicU64,
    /// Records dropped because this consumer no longer owned their partition.
    pub dropped_fenced: AtomicU64,
    /// Rejected events by reason, in [`RejectReason::ALL`] order.
    pub rejected_by_reason: [AtomicU64; RejectReason::ALL.len()],
    /// How long each commit that wrote took, oldest first, until a metrics exporter takes
    /// them ([`LiveMetrics::take_commit_durations`]); the oldest go past
    /// [`COMMIT_DURATIONS_KEPT`], so a run nobody exports from holds little.
    pub commit_durations: Mutex<VecDeque<Duration>>,
}

/// Commit durations kept for an exporter that has not taken them.
pub const COMMIT_DURATIONS_KEPT: usize = 4096;

impl LiveMetrics {
    fn commit_took(&self, took: Duration) {
        let mut kept = self
            .commit_durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= COMMIT_DURATIONS_KEPT {
            kept.pop_front();
        }
        kept.push_back(took);
    }

    /// The durations of the commits since the last call.
    pub fn take_commit_durations(&self) -> Vec<Duration> {
        self.commit_durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect()
    }
}

/// What the observer is shown every progress interval.
#[derive(Debug, Clone, Default)]
pub struct LiveProgress {
    pub events_read: u64,
    pub events_per_second: f64,
    pub late: u64,
    pub rejected: u64,
    pub commits: u64,
    /// `(partition name, records not read yet)`.
    pub lag: Vec<(String, i64)>,
    /// Event-to-store latency, 99th percentile so far.
    pub freshness_p99: Option<Duration>,
}

/// What a continuous run did.
#[derive(Debug, Clone, Default)]
pub struct LiveReport {
    pub streaming: String,
    pub store: String,
    pub store_usage: Option<String>,
    pub events_read: u64,
    pub applied: u64,
    pub filtered: u64,
    pub rejected: RejectCounts,
    pub dead_letters: PathBuf,
    pub late: u64,
    pub redelivered: u64,
    pub identity_on_two_partitions: u64,
    /// Identities with events in this run.
    pub identities: u64,
    pub commits: u64,
    pub records_written: u64,
    pub errors: Vec<FieldErrorReport>,
    pub recovered: Vec<String>,
    /// Event-to-store latency (read to durable commit), 99th percentile.
    pub freshness_p99: Option<Duration>,
    pub elapsed: Duration,
}

/// One event not settled yet.
#[derive(Debug, Clone)]
struct Unsettled {
    time: DateTime<Utc>,
    offset: i64,
    event: Event,
}

struct Entry {
    view: IdentityState,
    /// The settled state, while `unsettled` is not empty.
    base: Option<IdentityState>,
    unsettled: Vec<Unsettled>,
    partition: PartitionId,
    /// The (time, offset) of the latest event applied in order.
    last: Option<(DateTime<Utc>, i64)>,
    /// The offset after the last event applied (the identity's mark), 0 for none.
    next_offset: i64,
    /// Something to write at the next commit.
    dirty: bool,
    /// The store holds a side record for it.
    stored_side: bool,
    deletes: Vec<RecordKey>,
    bytes: usize,
    used: u64,
}

struct Part {
    name: String,
    key: String,
    /// The checkpoint the store holds (what the next commit is fenced on).
    committed: Option<i64>,
    /// The offset after the last record read.
    next: i64,
    max_time: Option<DateTime<Utc>>,
    last_record: Instant,
}

impl Part {
    fn time_key(&self) -> String {
        format!("{}#time", self.key)
    }
}

/// The watermark of a partition: settle everything when it is idle or at the end.
fn watermark(part: &Part, options: &LiveOptions, all: bool) -> Option<DateTime<Utc>> {
    if all || part.last_record.elapsed() >= options.idle_timeout {
        return Some(DateTime::<Utc>::MAX_UTC);
    }
    part.max_time
        .and_then(|t| t.checked_sub_signed(options.allowed_disorder))
}

/// Runs until the source ends (`--stop-at-end`) or `stop` is set; commits at least every
/// commit interval.
pub fn run_live(
    run: LiveRun<'_>,
    services: &mut Services,
    observer: &mut dyn Observer,
) -> Result<LiveReport, RunError> {
    let started = Instant::now();
    let recovered = commit::recover(run.store, services)?;
    StagedDeadLetters::remove_stale(&run.dead_letters, &[])?;
    let mut live = Live::new(
        &run.streaming,
        run.store,
        &run.options,
        &run.metrics,
        &run.dead_letters,
    );
    let LiveRun { source, stop, .. } = run;
    let mut last_commit = Instant::now();
    let mut last_progress = (Instant::now(), 0u64);
    let mut budget_check = 0u32;
    loop {
        if stop.load(Ordering::Relaxed) {
            live.commit(source, services, false)?;
            break;
        }
        match source.poll()? {
            Polled::Record(record) => {
                live.record(
                    record.partition,
                    record.offset,
                    record.payload,
                    record.truncated,
                )?;
                budget_check += 1;
                if budget_check >= 4096 {
                    budget_check = 0;
                    if live.cached_bytes() > live.options.cache_bytes {
                        live.commit(source, services, false)?;
                        last_commit = Instant::now();
                    }
                }
            }
            Polled::Partition(id) => {
                let start = live.assigned(source, id)?;
                source.start_at(id, start)?;
            }
            Polled::Revoked(ids) => {
                live.commit(source, services, false)?;
                last_commit = Instant::now();
                live.release(&ids);
            }
            Polled::PartitionEnd { .. } | Polled::BadPartition { .. } | Polled::Idle => {}
            Polled::End => {
                live.commit(source, services, true)?;
                break;
            }
        }
        if last_commit.elapsed() >= live.options.commit_interval {
            live.commit(source, services, false)?;
            last_commit = Instant::now();
        }
        if last_progress.0.elapsed() >= live.options.progress_interval {
            let read = live.metrics.events_read.load(Ordering::Relaxed);
            let rate = (read - last_progress.1) as f64 / last_progress.0.elapsed().as_secs_f64();
            let lag = source
                .lag()
                .into_iter()
                .filter_map(|(id, lag)| source.partition(id).map(|p| (p.name.clone(), lag)))
                .collect();
            observer.live_progress(&LiveProgress {
                events_read: read,
                events_per_second: rate,
                late: live.metrics.late.load(Ordering::Relaxed),
                rejected: live.metrics.rejected.load(Ordering::Relaxed),
                commits: live.metrics.commits.load(Ordering::Relaxed),
                lag,
                freshness_p99: live.freshness.p99(),
            });
            last_progress = (Instant::now(), read);
        }
    }
    let m = &live.metrics;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Ok(LiveReport {
        streaming: live.plan.name.clone(),
        store: run.store.describe(),
        store_usage: run.store.usage(),
        events_read: load(&m.events_read),
        applied: load(&m.applied),
        filtered: load(&m.filtered),
        rejected: live.rejected,
        dead_letters: run.dead_letters.clone(),
        late: load(&m.late),
        redelivered: load(&m.redelivered),
        identity_on_two_partitions: load(&m.identity_on_two_partitions),
        identities: live.seen.len() as u64,
        commits: load(&m.commits),
        records_written: load(&m.records_written),
        errors: field_errors(live.operator.errors(), &live.plan.field_names),
        recovered,
        freshness_p99: live.freshness.p99(),
        elapsed: started.elapsed(),
    })
}

/// Event-to-store latencies: events counted per 10 ms of reading, each slot's latency taken
/// when the commit that holds it is durable.
#[derive(Default)]
struct Freshness {
    slots: Vec<(Instant, u64)>,
    /// Events per latency in milliseconds, up to a minute.
    histogram: Vec<u64>,
}

impl Freshness {
    fn read(&mut self, at: Instant) {
        match self.slots.last_mut() {
            Some((slot, n)) if at.duration_since(*slot) < Duration::from_millis(10) => *n += 1,
            _ => self.slots.push((at, 1)),
        }
    }

    fn committed(&mut self, at: Instant) {
        if self.histogram.is_empty() {
            self.histogram = vec![0; 60_001];
        }
        for (slot, n) in self.slots.drain(..) {
            let ms = (at.duration_since(slot).as_millis() as usize).min(60_000);
            self.histogram[ms] += n;
        }
    }

    fn p99(&self) -> Option<Duration> {
        let total: u64 = self.histogram.iter().sum();
        if total == 0 {
            return None;
        }
        let mut seen = 0;
        for (ms, n) in self.histogram.iter().enumerate() {
            seen += n;
            if seen * 100 >= total * 99 {
                return Some(Duration::from_millis(ms as u64));
            }
        }
        None
    }
}

struct Live<'a> {
    plan: Arc<StreamingPlan>,
    store: &'a dyn BlockStore,
    options: LiveOptions,
    metrics: Arc<LiveMetrics>,
    dead_letter_path: PathBuf,
    extractor: Extractor,
    admitter: Admitter,
    operator: StreamingOperator,
    values: Vec<Value>,
    parts: HashMap<PartitionId, Part>,
    cache: HashMap<Arc<str>, Entry>,
    /// Identities whose states may be in the store (else a cache miss is a new identity).
    store_may_hold: bool,
    letters: Option<StagedDeadLetters>,
    rejected: RejectCounts,
    seen: HashSet<Arc<str>>,
    warned_two_partitions: HashSet<Arc<str>>,
    /// Identities seen on a second partition, not yet told to the observer.
    warnings: Vec<Arc<str>>,
    tick: u64,
    commits: u64,
    run_prefix: String,
    freshness: Freshness,
}

impl<'a> Live<'a> {
    fn new(
        plan: &Arc<StreamingPlan>,
        store: &'a dyn BlockStore,
        options: &LiveOptions,
        metrics: &Arc<LiveMetrics>,
        dead_letters: &std::path::Path,
    ) -> Live<'a> {
        let plan = plan.clone();
        Live {
            extractor: Extractor::new(&plan.source_paths, plan.needs_whole_source),
            admitter: Admitter::new(plan.clone()),
            operator: StreamingOperator::new(plan.clone()),
            plan,
            store,
            options: options.clone(),
            metrics: metrics.clone(),
            dead_letter_path: dead_letters.to_path_buf(),
            values: Vec::new(),
            parts: HashMap::new(),
            cache: HashMap::new(),
            store_may_hold: !store.holds_no_identity().unwrap_or(false),
            letters: None,
            rejected: RejectCounts::default(),
            seen: HashSet::new(),
            warned_two_partitions: HashSet::new(),
            warnings: Vec::new(),
            tick: 0,
            commits: 0,
            run_prefix: dtc_io::sink::new_run_id(),
            freshness: Freshness::default(),
        }
    }

    /// A partition was assigned: where it resumes, from the store.
    fn assigned(&mut self, source: &dyn RecordSource, id: PartitionId) -> Result<i64, RunError> {
        let info = source.partition(id).cloned().ok_or_else(|| {
            RunError::Internal(format!("partition {id} was announced without its name"))
        })?;
        let key = info
            .checkpoint_key
            .clone()
            .unwrap_or_else(|| info.name.clone());
        let committed = self.store.checkpoint(&key)?.map(|c| c.offset);
        let mut part = Part {
            name: info.name,
            key,
            committed,
            next: committed.unwrap_or(0).max(0),
            max_time: None,
            last_record: Instant::now(),
        };
        part.max_time = self
            .store
            .checkpoint(&part.time_key())?
            .and_then(|c| DateTime::from_timestamp_micros(c.offset));
        let start = part.next;
        // States cached for a partition that comes back may be older than what its owner in
        // between committed.
        self.cache.retain(|_, e| e.partition != id);
        self.parts.insert(id, part);
        Ok(start)
    }

    fn release(&mut self, ids: &[PartitionId]) {
        for id in ids {
            self.parts.remove(id);
        }
        self.cache.retain(|_, e| !ids.contains(&e.partition));
    }

    fn cached_bytes(&self) -> usize {
        self.cache.values().map(|e| e.bytes).sum()
    }

    fn reject(
        &mut self,
        partition: PartitionId,
        offset: i64,
        rejection: Rejection,
        payload: &[u8],
    ) -> Result<(), RunError> {
        self.metrics.rejected.fetch_add(1, Ordering::Relaxed);
        self.metrics.rejected_by_reason[rejection.reason.index()].fetch_add(1, Ordering::Relaxed);
        self.rejected.add(rejection.reason);
        let name = self
            .parts
            .get(&partition)
            .map_or_else(|| format!("partition {partition}"), |p| p.name.clone());
        if self.letters.is_none() {
            let run_id = format!("{}-{}", self.run_prefix, self.commits);
            self.letters = Some(StagedDeadLetters::create(&self.dead_letter_path, &run_id)?);
        }
        if let Some(letters) = self.letters.as_mut() {
            letters.write(&name, Position::Offset(offset), &rejection, payload)?;
        }
        Ok(())
    }

    fn record(
        &mut self,
        partition: PartitionId,
        offset: i64,
        payload: &[u8],
        truncated: bool,
    ) -> Result<(), RunError> {
        let Some(part) = self.parts.get_mut(&partition) else {
            self.metrics.dropped_fenced.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        if offset < part.next {
            return Ok(());
        }
        part.next = offset + 1;
        part.last_record = Instant::now();
        self.metrics.events_read.fetch_add(1, Ordering::Relaxed);
        self.freshness.read(part.last_record);
        dtc_failpoint::hit("runtime.live.record");
        let extracted = if payload.is_empty() {
            Err(Rejection::new(
                RejectReason::NullValue,
                "the record has no value",
            ))
        } else if truncated {
            Err(Rejection::new(
                RejectReason::LineTooLong,
                "the record is longer than the maximum record length",
            ))
        } else {
            self.extractor.extract(payload, &mut self.values)
        };
        if let Err(rejection) = extracted {
            return self.reject(partition, offset, rejection, payload);
        }
        let whole = if self.plan.needs_whole_source {
            self.values.pop()
        } else {
            None
        };
        let (identity, event) = match self.admitter.admit(std::mem::take(&mut self.values), whole) {
            Admission::Accepted { identity, event } => (identity, event),
            Admission::Filtered => {
                self.metrics.filtered.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Admission::Rejected { reason, detail } => {
                return self.reject(partition, offset, Rejection { reason, detail }, payload);
            }
        };
        let now = Utc::now();
        let watermark = {
            let part = self.parts.get_mut(&partition).ok_or_else(|| {
                RunError::Internal("a partition vanished while its record was read".into())
            })?;
            let ceiling = now
                .checked_add_signed(self.options.max_ahead)
                .unwrap_or(now);
            let time = event.time.min(ceiling);
            if part.max_time.is_none_or(|t| t < time) {
                part.max_time = Some(time);
            }
            part.max_time
                .and_then(|t| t.checked_sub_signed(self.options.allowed_disorder))
        };
        self.apply(&identity, partition, offset, event, watermark)
    }

    /// The cache entry of `identity`, loaded from the store on a miss.
    fn entry(&mut self, identity: &Str, partition: PartitionId) -> Result<(), RunError> {
        let key: &str = identity;
        if !self.cache.contains_key(key) {
            let identity: Arc<str> = Arc::from(key);
            let entry = if self.store_may_hold {
                self.load(identity.clone(), partition)?
            } else {
                self.fresh(identity.clone(), partition)
            };
            self.cache.insert(identity, entry);
        }
        Ok(())
    }

    fn fresh(&self, identity: Arc<str>, partition: PartitionId) -> Entry {
        Entry {
            view: self.operator.new_state(identity),
            base: None,
            unsettled: Vec::new(),
            partition,
            last: None,
            next_offset: 0,
            dirty: false,
            stored_side: false,
            deletes: Vec::new(),
            bytes: 256,
            used: 0,
        }
    }

    fn load(&self, identity: Arc<str>, partition: PartitionId) -> Result<Entry, RunError> {
        let mut stored = self.store.load_identity(&identity)?;
        let mark = stored
            .iter()
            .filter(|r| r.writer & LIVE_MARK != 0)
            .map(|r| (r.writer & !LIVE_MARK) as i64)
            .max()
            .unwrap_or(0);
        let side = stored
            .iter()
            .position(|r| &*r.key.aggregate == SIDE_AGGREGATE)
            .map(|i| stored.swap_remove(i));
        let mut entry = self.fresh(identity.clone(), partition);
        entry.next_offset = mark;
        entry.view = self.operator.load_state(identity.clone(), stored);
        if let Some(side) = side {
            let (base, unsettled) = decode_side(&identity, &side).ok_or_else(|| {
                StoreError::corrupt(
                    self.store.describe(),
                    format!("the unsettled state of identity `{identity}` cannot be read"),
                )
            })?;
            entry.base = Some(self.operator.load_state(identity, base));
            entry.last = unsettled.last().map(|u| (u.time, u.offset));
            entry.unsettled = unsettled;
            entry.stored_side = true;
        }
        entry.bytes = entry_bytes(&entry);
        Ok(entry)
    }

    fn apply(
        &mut self,
        identity: &Str,
        partition: PartitionId,
        offset: i64,
        event: Event,
        watermark: Option<DateTime<Utc>>,
    ) -> Result<(), RunError> {
        self.tick += 1;
        let tick = self.tick;
        self.entry(identity, partition)?;
        let key: &str = identity;
        let Some((name, mut entry)) = self.cache.remove_entry(key) else {
            return Err(RunError::Internal("a cached identity vanished".into()));
        };
        let result = self.apply_to(&mut entry, partition, offset, event, watermark, tick);
        self.cache.insert(name, entry);
        result
    }

    fn apply_to(
        &mut self,
        entry: &mut Entry,
        partition: PartitionId,
        offset: i64,
        event: Event,
        watermark: Option<DateTime<Utc>>,
        tick: u64,
    ) -> Result<(), RunError> {
        let metrics = self.metrics.clone();
        entry.used = tick;
        if entry.partition != partition {
            metrics
                .identity_on_two_partitions
                .fetch_add(1, Ordering::Relaxed);
            let name = entry.view.identity.clone();
            if self.warned_two_partitions.len() < 10_000
                && self.warned_two_partitions.insert(name.clone())
            {
                self.warnings.push(name);
            }
            entry.partition = partition;
        } else if offset < entry.next_offset {
            // Written by a commit this run's restart did not see whole (see the module docs).
            metrics.redelivered.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let time = event.time;
        let late = watermark.is_some_and(|w| time < w);
        let in_order = entry.last.is_none_or(|last| (time, offset) >= last);
        let operator = &mut self.operator;
        if late {
            metrics.late.fetch_add(1, Ordering::Relaxed);
            match entry.base.as_mut() {
                Some(base) => {
                    // The watermark has passed the unsettled events older than this one too:
                    // they settle first, so that the base takes them in event-time order.
                    let settled = entry.unsettled.partition_point(|u| u.time <= time);
                    for u in entry.unsettled.drain(..settled) {
                        operator.apply(base, &u.event);
                    }
                    operator.apply(base, &event);
                    rebuild(operator, &mut *entry);
                }
                None => operator.apply(&mut entry.view, &event),
            }
        } else if in_order {
            if entry.base.is_none() {
                entry.base = Some(entry.view.clone());
            }
            operator.apply(&mut entry.view, &event);
            entry.unsettled.push(Unsettled {
                time,
                offset,
                event,
            });
            entry.last = Some((time, offset));
        } else {
            let at = entry
                .unsettled
                .partition_point(|u| (u.time, u.offset) <= (time, offset));
            entry.unsettled.insert(
                at,
                Unsettled {
                    time,
                    offset,
                    event,
                },
            );
            rebuild(operator, &mut *entry);
        }
        entry.next_offset = entry.next_offset.max(offset + 1);
        entry.dirty = true;
        if tick.is_multiple_of(64) || entry.bytes < 1024 {
            entry.bytes = entry_bytes(&*entry);
        }
        metrics.applied.fetch_add(1, Ordering::Relaxed);
        let name = entry.view.identity.clone();
        if self.seen.len() < 10_000_000 && !self.seen.contains(&name) {
            self.seen.insert(name.clone());
        }
        Ok(())
    }

    /// Moves the events their partitions' watermarks have passed into the base.
    fn settle(&mut self, all: bool) {
        let watermarks: HashMap<PartitionId, Option<DateTime<Utc>>> = self
            .parts
            .iter()
            .map(|(id, part)| (*id, watermark(part, &self.options, all)))
            .collect();
        for entry in self.cache.values_mut() {
            let Some(base) = entry.base.as_mut() else {
                continue;
            };
            let Some(Some(w)) = watermarks.get(&entry.partition) else {
                continue;
            };
            let settled = entry.unsettled.partition_point(|u| u.time < *w);
            if settled == entry.unsettled.len() {
                // The view is the state of every event: it is the base now.
                entry.base = None;
                entry.unsettled.clear();
                entry.dirty = true;
                continue;
            }
            if settled > 0 {
                for u in entry.unsettled.drain(..settled) {
                    self.operator.apply(base, &u.event);
                }
                entry.dirty = true;
            }
        }
    }

    /// Commits everything changed since the last commit; `all` settles every event first (the
    /// end of a bounded read).
    fn commit(
        &mut self,
        source: &mut dyn RecordSource,
        services: &mut Services,
        all: bool,
    ) -> Result<(), RunError> {
        let began = Instant::now();
        self.settle(all);
        let mut per_part: HashMap<PartitionId, (Vec<StoredRecord>, Vec<RecordKey>)> =
            HashMap::new();
        let mut written = 0u64;
        for entry in self.cache.values_mut().filter(|e| e.dirty) {
            let (puts, deletes) = per_part.entry(entry.partition).or_default();
            let first = puts.len();
            entry.view.stored_records(&self.plan, true, puts);
            let mark = LIVE_MARK | (entry.next_offset.max(0) as u64 & !LIVE_MARK);
            let side_key = RecordKey {
                identity: entry.view.identity.clone(),
                aggregate: Arc::from(SIDE_AGGREGATE),
                dims: Vec::new(),
            };
            match entry.base.as_mut() {
                Some(base) => {
                    puts.push(StoredRecord {
                        key: side_key,
                        kind: RecordKind::Identity,
                        start_time: None,
                        columns: encode_side(&self.plan, base, &entry.unsettled),
                        version: 0,
                        order: 0,
                        writer: 0,
                    });
                }
                None if entry.stored_side => deletes.push(side_key),
                None => {}
            }
            for record in &mut puts[first..] {
                record.writer = mark;
            }
            written += (puts.len() - first) as u64;
            deletes.append(&mut entry.deletes);
        }
        let mut fenced: Vec<PartitionId> = Vec::new();
        let mut wrote = false;
        loop {
            let mut batch = WriteBatch::default();
            let mut offsets = Vec::new();
            for (id, part) in &self.parts {
                if fenced.contains(id) {
                    continue;
                }
                if let Some((puts, deletes)) = per_part.get(id) {
                    batch.puts.extend(puts.iter().cloned());
                    batch.deletes.extend(deletes.iter().cloned());
                }
                if part.committed != Some(part.next) {
                    batch
                        .expect_checkpoints
                        .push((part.key.clone(), part.committed));
                    batch.checkpoints.push((
                        part.key.clone(),
                        dtc_store::Checkpoint { offset: part.next },
                    ));
                    if let Some(t) = part.max_time {
                        batch.checkpoints.push((
                            part.time_key(),
                            dtc_store::Checkpoint {
                                offset: t.timestamp_micros(),
                            },
                        ));
                    }
                    offsets.push((*id, part.next));
                }
            }
            let mut manifest = Manifest::new(format!("{}-{}", self.run_prefix, self.commits));
            let letters = match self.letters.take() {
                Some(letters) => letters.seal()?.1,
                None => None,
            };
            manifest.dead_letters = letters;
            if batch.is_empty() && manifest.dead_letters.is_none() {
                break;
            }
            dtc_failpoint::hit("runtime.live.commit");
            match commit::commit(self.store, batch, manifest, services) {
                Ok(()) => {
                    wrote = true;
                    for (id, next) in &offsets {
                        if let Some(part) = self.parts.get_mut(id) {
                            part.committed = Some(*next);
                        }
                    }
                    source.committed(&offsets)?;
                    break;
                }
                Err(RunError::Store(StoreError::Fenced { partitions })) => {
                    // Another consumer owns these now: what this one holds of them is stale.
                    for (id, part) in &self.parts {
                        if partitions.contains(&part.key) {
                            fenced.push(*id);
                        }
                    }
                    if fenced.is_empty() {
                        return Err(RunError::Store(StoreError::Fenced { partitions }));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if !fenced.is_empty() {
            self.release(&fenced);
        }
        if wrote {
            self.commits += 1;
            self.metrics.commits.fetch_add(1, Ordering::Relaxed);
            self.metrics.commit_took(began.elapsed());
        }
        self.freshness.committed(Instant::now());
        self.metrics
            .records_written
            .fetch_add(written, Ordering::Relaxed);
        for entry in self.cache.values_mut() {
            if entry.dirty {
                entry.stored_side = entry.base.is_some();
                entry.dirty = false;
            }
        }
        self.evict();
        let unsettled = self.cache.values().filter(|e| e.base.is_some()).count();
        self.metrics
            .identities_cached
            .store(self.cache.len() as u64, Ordering::Relaxed);
        self.metrics
            .identities_unsettled
            .store(unsettled as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Drops the least recently used clean states until the cache is within three quarters
    /// of its budget.
    fn evict(&mut self) {
        let total = self.cached_bytes();
        if total <= self.options.cache_bytes {
            return;
        }
        let mut clean: Vec<(u64, Arc<str>, usize)> = self
            .cache
            .iter()
            .filter(|(_, e)| !e.dirty && e.base.is_none())
            .map(|(k, e)| (e.used, k.clone(), e.bytes))
            .collect();
        clean.sort_unstable_by_key(|(used, _, _)| *used);
        let target = self.options.cache_bytes / 4 * 3;
        let mut now = total;
        for (_, key, bytes) in clean {
            if now <= target {
                break;
            }
            self.cache.remove(&key);
            now -= bytes;
            self.store_may_hold = true;
        }
    }
}

/// The view rebuilt from the base and the unsettled events in event-time order.
fn rebuild(operator: &mut StreamingOperator, entry: &mut Entry) {
    let Some(base) = entry.base.as_ref() else {
        return;
    };
    let mut view = base.clone();
    for u in &entry.unsettled {
        operator.apply(&mut view, &u.event);
    }
    let plan = operator.plan().clone();
    entry.deletes.extend(view.replace(&entry.view, &plan));
    entry.view = view;
}

fn entry_bytes(entry: &Entry) -> usize {
    let events: usize = entry
        .unsettled
        .iter()
        .map(|u| 64 + u.event.values.iter().map(approx_value_bytes).sum::<usize>())
        .sum();
    entry.view.approx_bytes() + entry.base.as_ref().map_or(0, |b| b.approx_bytes()) + events
}

/// The side record's columns: `[base records, unsettled events]`.
fn encode_side(
    plan: &StreamingPlan,
    base: &mut IdentityState,
    unsettled: &[Unsettled],
) -> Vec<Value> {
    let mut records = Vec::new();
    base.stored_records(plan, false, &mut records);
    let records = records
        .into_iter()
        .map(|r| {
            Value::list(vec![
                Value::str(&r.key.aggregate),
                Value::list(r.key.dims),
                Value::list(r.columns),
                Value::Int(r.version as i64),
                Value::Int(r.order as i64),
                r.start_time.map_or(Value::Null, Value::DateTime),
            ])
        })
        .collect();
    let events = unsettled
        .iter()
        .map(|u| {
            Value::list(vec![
                Value::DateTime(u.time),
                Value::Int(u.offset),
                Value::list(u.event.values.clone()),
                u.event.whole.clone().unwrap_or(Value::Null),
            ])
        })
        .collect();
    vec![Value::list(records), Value::list(events)]
}

fn decode_side(
    identity: &Arc<str>,
    side: &StoredRecord,
) -> Option<(Vec<StoredRecord>, Vec<Unsettled>)> {
    let list = |v: &Value| match v {
        Value::List(items) => Some(items.clone()),
        _ => None,
    };
    let int = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        _ => None,
    };
    let [records, events] = side.columns.as_slice() else {
        return None;
    };
    let mut base = Vec::new();
    for r in list(records)?.iter() {
        let r = list(r)?;
        let [agg, dims, columns, version, order, start] = r.as_slice() else {
            return None;
        };
        let Value::Str(agg) = agg else { return None };
        let start_time = match start {
            Value::DateTime(t) => Some(*t),
            _ => None,
        };
        base.push(StoredRecord {
            key: RecordKey {
                identity: identity.clone(),
                aggregate: Arc::from(&**agg),
                dims: list(dims)?.to_vec(),
            },
            kind: if start_time.is_some() {
                RecordKind::Block
            } else {
                RecordKind::Identity
            },
            start_time,
            columns: list(columns)?.to_vec(),
            version: int(version)? as u64,
            order: int(order)? as u64,
            writer: 0,
        });
    }
    let mut unsettled = Vec::new();
    for e in list(events)?.iter() {
        let e = list(e)?;
        let [time, offset, values, whole] = e.as_slice() else {
            return None;
        };
        let Value::DateTime(time) = time else {
            return None;
        };
        unsettled.push(Unsettled {
            time: *time,
            offset: int(offset)?,
            event: Event {
                time: *time,
                values: list(values)?.to_vec(),
                whole: (!whole.is_null()).then(|| whole.clone()),
            },
        });
    }
    Some((base, unsettled))
}

#[cfg(test)]
mod tests {
    //! The continuous run against a scripted source and a memory store, compared with a batch
    //! run over the same events.

    use std::collections::VecDeque;

    use dtc_engine::sort::IdentityOrder;
    use dtc_io::IoError;
    use dtc_io::source::{PartitionInfo, SourceRecord, SourceStats};
    use dtc_store::MemoryStore;

    use super::*;
    use crate::batch::{BatchOptions, BatchRun, run_batch};
    use crate::report::Quiet;
    use crate::window::RowsOut;

    /// Activity blocks, session blocks, and fields whose value depends on the order events are
    /// applied in.
    const SPEC: &str = "
Type: Streaming
Version: '2026-11-01'
Name: live
Identity: source.user
Time: parse_time(source.t)
Aggregates:
  - Type: Identity
    Name: profile
    Fields:
      - Name: last_level
        Type: integer
        Value: source.level
      - Name: levels
        Type: list
        Value: profile.levels.append(source.level)
  - Type: Block
    Name: session
    Dimensions:
      - Name: id
        Type: string
        Value: source.session
    Fields:
      - Name: events
        Type: integer
        Value: session.events + 1
      - Name: first_level
        Type: integer
        When: session.events == 1
        Value: source.level
  - Type: Activity
    Name: visit
    SeparateByInactiveSeconds: 60
    Fields:
      - Name: levels
        Type: list
        Value: visit.levels.append(source.level)
";

    fn plan() -> Arc<StreamingPlan> {
        let (spec, diags) = dtc_lang::load::load_spec(dtc_lang::span::FileId(0), SPEC);
        assert!(diags.is_empty(), "{diags:#?}");
        let (catalog, diags) = dtc_plan::compile::compile(&spec.into_iter().collect::<Vec<_>>());
        assert!(diags.is_empty(), "{diags:#?}");
        catalog.streaming[0].clone()
    }

    /// A seeded generator, so a failure can be replayed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n.max(1)
        }
    }

    /// `(user, seconds, line)` for `users` users, each event a distinct second of its user.
    fn events(users: u32, per_user: u32, rng: &mut Rng) -> Vec<(u32, i64, String)> {
        let mut all = Vec::new();
        for u in 0..users {
            let mut t = 1_700_000_000 + i64::from(u) * 7;
            for i in 0..per_user {
                // Mostly seconds apart, sometimes past the activity gap.
                t += if rng.next(10) == 0 {
                    200
                } else {
                    1 + rng.next(20) as i64
                };
                let time = DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
                let line = format!(
                    r#"{{"user": "u{u}", "t": "{time}", "session": "s{}", "level": {}}}"#,
                    i / 15,
                    rng.next(100)
                );
                all.push((u, t, line));
            }
        }
        all.sort_by_key(|(_, t, _)| *t);
        all
    }

    /// Moves events back by up to `by` seconds of arrival order (a local shuffle in event time).
    fn disorder(events: &mut [(u32, i64, String)], by: i64, rng: &mut Rng) {
        let mut keyed: Vec<(i64, usize)> = events
            .iter()
            .enumerate()
            .map(|(i, (_, t, _))| (t + rng.next(by as u64 + 1) as i64, i))
            .collect();
        keyed.sort();
        let shuffled: Vec<_> = keyed.iter().map(|(_, i)| events[*i].clone()).collect();
        events.clone_from_slice(&shuffled);
    }

    /// Partitions of records, handed out interleaved; `End` once all are read.
    struct ScriptedSource {
        infos: Vec<PartitionInfo>,
        records: Vec<Vec<Vec<u8>>>,
        next: Vec<usize>,
        announce: VecDeque<PartitionId>,
        turn: usize,
    }

    impl ScriptedSource {
        fn new(records: Vec<Vec<Vec<u8>>>) -> ScriptedSource {
            ScriptedSource {
                infos: (0..records.len())
                    .map(|p| PartitionInfo {
                        name: format!("events/{p}"),
                        checkpoint_key: Some(format!("kafka:events/{p}")),
                        size: None,
                        lines: false,
                    })
                    .collect(),
                next: vec![0; records.len()],
                announce: (0..records.len() as PartitionId).collect(),
                records,
                turn: 0,
            }
        }
    }

    impl RecordSource for ScriptedSource {
        fn poll(&mut self) -> Result<Polled<'_>, IoError> {
            if let Some(id) = self.announce.pop_front() {
                return Ok(Polled::Partition(id));
            }
            for _ in 0..self.records.len() {
                self.turn = (self.turn + 1) % self.records.len();
                let p = self.turn;
                let offset = self.next[p];
                if let Some(payload) = self.records[p].get(offset) {
                    self.next[p] += 1;
                    return Ok(Polled::Record(SourceRecord {
                        partition: p as PartitionId,
                        offset: offset as i64,
                        payload,
                        truncated: payload.len() > 4096,
                    }));
                }
            }
            Ok(Polled::End)
        }

        fn partition(&self, id: PartitionId) -> Option<&PartitionInfo> {
            self.infos.get(id as usize)
        }

        fn start_at(&mut self, id: PartitionId, offset: i64) -> Result<(), IoError> {
            self.next[id as usize] = offset as usize;
            Ok(())
        }

        fn stats(&self) -> SourceStats {
            SourceStats::default()
        }
    }

    /// Events split into `partitions` by user, in arrival order.
    fn partitioned(events: &[(u32, i64, String)], partitions: u32) -> Vec<Vec<Vec<u8>>> {
        let mut parts = vec![Vec::new(); partitions as usize];
        for (user, _, line) in events {
            parts[(*user % partitions) as usize].push(line.clone().into_bytes());
        }
        parts
    }

    fn options() -> LiveOptions {
        LiveOptions {
            commit_interval: Duration::from_millis(1),
            allowed_disorder: TimeDelta::seconds(30),
            idle_timeout: Duration::from_secs(3600),
            max_ahead: TimeDelta::days(36500),
            ..LiveOptions::default()
        }
    }

    fn live(
        store: &dyn BlockStore,
        source: &mut dyn RecordSource,
        options: LiveOptions,
        dir: &std::path::Path,
    ) -> LiveReport {
        run_live(
            LiveRun {
                streaming: plan(),
                store,
                source,
                dead_letters: dir.join("dead.jsonl"),
                options,
                stop: Arc::new(AtomicBool::new(false)),
                metrics: Arc::new(LiveMetrics::default()),
            },
            &mut Services::default(),
            &mut Quiet,
        )
        .unwrap()
    }

    fn batch(events: &[(u32, i64, String)], dir: &std::path::Path) -> MemoryStore {
        let file = dir.join("events.jsonl");
        let text: String = events.iter().map(|(_, _, l)| format!("{l}\n")).collect();
        std::fs::write(&file, text).unwrap();
        let store = MemoryStore::new();
        run_batch(
            BatchRun {
                streaming: plan(),
                window: None,
                store: &store,
                sources: vec![file.display().to_string()],
                dead_letters: dir.join("batch-dead.jsonl"),
                rows: RowsOut::None,
                options: BatchOptions {
                    sort_budget_bytes: 16 << 20,
                    spill_dir: dir.to_path_buf(),
                    write_batch_records: 1000,
                    identity_order: IdentityOrder::Name,
                    skip_bad_files: false,
                },
            },
            &mut Services::default(),
            &mut Quiet,
            None,
        )
        .unwrap();
        store
    }

    /// Every record but the side records, as (key, columns, creation ordinal).
    fn records(store: &dyn BlockStore) -> Vec<String> {
        let mut out = Vec::new();
        for identity in store.all_identities().unwrap() {
            for r in store.load_identity(&identity).unwrap() {
                if &*r.key.aggregate != SIDE_AGGREGATE {
                    out.push(format!("{:?} {:?} {}", r.key, r.columns, r.order));
                }
            }
        }
        out
    }

    fn sides(store: &dyn BlockStore) -> usize {
        let mut n = 0;
        for identity in store.all_identities().unwrap() {
            n += store
                .load_identity(&identity)
                .unwrap()
                .iter()
                .filter(|r| &*r.key.aggregate == SIDE_AGGREGATE)
                .count();
        }
        n
    }

    #[test]
    fn events_shuffled_within_the_disorder_give_the_batch_result_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(0x5EED);
        let mut all = events(40, 60, &mut rng);
        disorder(&mut all, 25, &mut rng);
        let expected = records(&batch(&all, dir.path()));
        let store = MemoryStore::new();
        let mut source = ScriptedSource::new(partitioned(&all, 3));
        let report = live(&store, &mut source, options(), dir.path());
        assert_eq!(report.applied, all.len() as u64);
        assert_eq!(report.late, 0);
        assert!(report.commits > 1);
        assert_eq!(records(&store), expected);
        assert_eq!(sides(&store), 0, "the end settles every event");
    }

    #[test]
    fn a_restart_neither_loses_nor_reapplies_unsettled_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(0xC0FFEE);
        let mut all = events(20, 50, &mut rng);
        disorder(&mut all, 25, &mut rng);
        let expected = records(&batch(&all, dir.path()));
        let store = MemoryStore::new();
        let parts = partitioned(&all, 2);
        // The first run reads half of each partition and stops (as on SIGTERM), leaving
        // events unsettled in the store.
        let half: Vec<Vec<Vec<u8>>> = parts.iter().map(|p| p[..p.len() / 2].to_vec()).collect();
        let mut first = ScriptedSource::new(half);
        let stop = Arc::new(AtomicBool::new(false));
        let mut options = options();
        options.commit_interval = Duration::from_secs(3600);
        let run = LiveRun {
            streaming: plan(),
            store: &store,
            source: &mut first,
            dead_letters: dir.path().join("dead.jsonl"),
            options: options.clone(),
            stop: stop.clone(),
            metrics: Arc::new(LiveMetrics::default()),
        };
        let mut live_run = Live::new(
            &run.streaming,
            run.store,
            &run.options,
            &run.metrics,
            &run.dead_letters,
        );
        let LiveRun { source, .. } = run;
        loop {
            match source.poll().unwrap() {
                Polled::Partition(id) => {
                    let start = live_run.assigned(source, id).unwrap();
                    source.start_at(id, start).unwrap();
                }
                Polled::Record(r) => live_run
                    .record(r.partition, r.offset, r.payload, r.truncated)
                    .unwrap(),
                _ => break,
            }
        }
        live_run
            .commit(source, &mut Services::default(), false)
            .unwrap();
        assert!(sides(&store) > 0, "some events are unsettled at the stop");
        drop(live_run);
        let mut second = ScriptedSource::new(parts);
        let report = live(&store, &mut second, options, dir.path());
        let first_half: usize = partitioned(&all, 2).iter().map(|p| p.len() / 2).sum();
        assert_eq!(
            report.applied as usize,
            all.len() - first_half,
            "each event applied once"
        );
        assert_eq!(records(&store), expected);
    }

    #[test]
    fn events_beyond_the_disorder_are_counted_late_and_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(7);
        let mut all = events(5, 40, &mut rng);
        // Three events arrive last, far behind their partitions' watermarks.
        let moved: Vec<_> = [3usize, 50, 120].iter().map(|&i| all[i].clone()).collect();
        for i in [120usize, 50, 3] {
            all.remove(i);
        }
        all.extend(moved);
        let store = MemoryStore::new();
        let mut source = ScriptedSource::new(partitioned(&all, 1));
        let report = live(&store, &mut source, options(), dir.path());
        assert_eq!(report.late, 3);
        assert_eq!(report.applied, all.len() as u64);
        let events: i64 = store
            .all_identities()
            .unwrap()
            .iter()
            .flat_map(|i| store.load_identity(i).unwrap())
            .filter(|r| &*r.key.aggregate == "session")
            .map(|r| match r.columns.get(3) {
                Some(Value::Int(n)) => *n,
                _ => 0,
            })
            .sum();
        assert_eq!(events, all.len() as i64, "every event counted once");
    }

    #[test]
    fn an_idle_partition_settles_its_events_and_does_not_hold_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        let line = |user: &str, t: i64| {
            let time = DateTime::from_timestamp(1_700_000_000 + t, 0)
                .unwrap()
                .to_rfc3339();
            format!(r#"{{"user": "{user}", "t": "{time}", "session": "s", "level": 1}}"#)
                .into_bytes()
        };
        let mut source = ScriptedSource::new(vec![
            vec![line("quiet", 0), line("quiet", 10)],
            vec![line("busy", 0), line("busy", 100), line("busy", 200)],
        ]);
        let mut options = options();
        options.idle_timeout = Duration::from_millis(50);
        let run = LiveRun {
            streaming: plan(),
            store: &store,
            source: &mut source,
            dead_letters: dir.path().join("dead.jsonl"),
            options,
            stop: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(LiveMetrics::default()),
        };
        let mut live_run = Live::new(
            &run.streaming,
            run.store,
            &run.options,
            &run.metrics,
            &run.dead_letters,
        );
        let LiveRun { source, .. } = run;
        loop {
            match source.poll().unwrap() {
                Polled::Partition(id) => {
                    let start = live_run.assigned(source, id).unwrap();
                    source.start_at(id, start).unwrap();
                }
                Polled::Record(r) => live_run
                    .record(r.partition, r.offset, r.payload, r.truncated)
                    .unwrap(),
                _ => break,
            }
        }
        let unsettled = |store: &MemoryStore, user: &str| {
            store
                .load_identity(user)
                .unwrap()
                .iter()
                .any(|r| &*r.key.aggregate == SIDE_AGGREGATE)
        };
        live_run
            .commit(source, &mut Services::default(), false)
            .unwrap();
        assert!(unsettled(&store, "quiet") && unsettled(&store, "busy"));
        // The busy partition keeps reading; the quiet one has been idle past the timeout.
        std::thread::sleep(Duration::from_millis(80));
        live_run.parts.get_mut(&1).unwrap().last_record = Instant::now();
        live_run
            .commit(source, &mut Services::default(), false)
            .unwrap();
        assert!(
            !unsettled(&store, "quiet"),
            "the idle partition's events settled"
        );
        assert!(
            unsettled(&store, "busy"),
            "the busy one's last events are within the disorder"
        );
    }

    #[test]
    fn malformed_records_are_dead_letters_with_partition_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        let good = |t: i64| {
            let time = DateTime::from_timestamp(1_700_000_000 + t, 0)
                .unwrap()
                .to_rfc3339();
            format!(r#"{{"user": "u", "t": "{time}", "session": "s", "level": 1}}"#).into_bytes()
        };
        let mut source = ScriptedSource::new(vec![vec![
            good(0),
            b"not json".to_vec(),
            Vec::new(),
            format!(r#"{{"user": "u", "pad": "{}"}}"#, "x".repeat(5000)).into_bytes(),
            good(5),
        ]]);
        let report = live(&store, &mut source, options(), dir.path());
        assert_eq!(report.applied, 2, "the run went on");
        assert_eq!(report.rejected.total(), 3);
        let letters = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
        let lines: Vec<&str> = letters.lines().collect();
        assert_eq!(lines.len(), 3, "{letters}");
        for (line, (offset, reason)) in
            lines
                .iter()
                .zip([(1, "invalid_json"), (2, "null_value"), (3, "line_too_long")])
        {
            assert!(line.contains(r#""input":"events/0""#), "{line}");
            assert!(line.contains(&format!(r#""offset":{offset},"#)), "{line}");
            assert!(line.contains(reason), "{line}");
        }
    }

    #[test]
    fn a_zombie_that_lost_its_partition_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        let mut rng = Rng(3);
        let all = events(4, 30, &mut rng);
        let lines = partitioned(&all, 1).remove(0);
        let metrics = Arc::new(LiveMetrics::default());
        let letters = dir.path().join("dead.jsonl");
        let setup =
            |_: &mut ScriptedSource| Live::new(&plan(), &store, &options(), &metrics, &letters);
        let mut zombie_source = ScriptedSource::new(vec![lines.clone()]);
        let mut zombie = setup(&mut zombie_source);
        let start = zombie.assigned(&zombie_source, 0).unwrap();
        for (offset, line) in lines.iter().enumerate().take(40).skip(start as usize) {
            zombie.record(0, offset as i64, line, false).unwrap();
        }
        zombie
            .commit(&mut zombie_source, &mut Services::default(), false)
            .unwrap();
        // The group moves the partition to another consumer, which reads on and commits.
        let mut owner_source = ScriptedSource::new(vec![lines.clone()]);
        let mut owner = setup(&mut owner_source);
        let start = owner.assigned(&owner_source, 0).unwrap();
        assert_eq!(start, 40);
        for (offset, line) in lines.iter().enumerate().take(80).skip(40) {
            owner.record(0, offset as i64, line, false).unwrap();
        }
        owner
            .commit(&mut owner_source, &mut Services::default(), false)
            .unwrap();
        let before = records(&store);
        // The zombie never heard: it reads on from where it was and commits.
        for (offset, line) in lines.iter().enumerate().take(60).skip(40) {
            zombie.record(0, offset as i64, line, false).unwrap();
        }
        zombie
            .commit(&mut zombie_source, &mut Services::default(), false)
            .unwrap();
        assert_eq!(records(&store), before, "the zombie's write was rejected");
        assert_eq!(
            store.checkpoint("kafka:events/0").unwrap(),
            Some(dtc_store::Checkpoint { offset: 80 })
        );
        assert!(
            zombie.parts.is_empty() && zombie.cache.is_empty(),
            "it dropped the partition"
        );
    }
}
