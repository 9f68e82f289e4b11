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

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    let mut live = Live::new(&run);
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
    fn new(run: &LiveRun<'a>) -> Live<'a> {
        let plan = run.streaming.clone();
        Live {
            extractor: Extractor::new(&plan.source_paths, plan.needs_whole_source),
            admitter: Admitter::new(plan.clone()),
            operator: StreamingOperator::new(plan.clone()),
            plan,
            store: run.store,
            options: run.options.clone(),
            metrics: run.metrics.clone(),
            dead_letter_path: run.dead_letters.clone(),
            values: Vec::new(),
            parts: HashMap::new(),
            cache: HashMap::new(),
            store_may_hold: !run.store.holds_no_identity().unwrap_or(false),
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
        self.commits += 1;
        self.freshness.committed(Instant::now());
        self.metrics.commits.fetch_add(1, Ordering::Relaxed);
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
