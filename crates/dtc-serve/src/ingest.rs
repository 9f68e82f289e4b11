//! A continuous run beside the server (`dtc serve --source kafka://…`): the server answers
//! from the store while a thread of the same process keeps it current.
//!
//! The embedded store is a file with one writer, so a process that serves it and also ingests
//! must share one opened store between the two: [`Ingest::start`] takes the server's
//! `Arc<dyn BlockStore>` and runs [`dtc_runtime::live::run_live`] over it on a thread of its
//! own (its reads and writes are synchronous). This module knows no Kafka: the front end
//! connects the source (`dtc-kafka`'s consumer) and hands it over as a [`RecordSource`].
//!
//! What the server learns of the run:
//! - **readiness** ([`Ingest::readiness`]): ready once every partition assigned to the run has
//!   been read to the end it had when first measured after its assignment *and* a commit has
//!   made that end durable in the store, so a request after `/readyz` says 200 sees every
//!   event that was in the topic when the server started. Not ready while no partition is
//!   assigned, after the run failed, or when it has not polled its source for
//!   [`IngestOptions::stall_after`] (a stuck store write or consumer);
//! - **metrics** ([`Ingest::export_metrics`]): the run's counters (`LiveMetrics`) and the
//!   measured lag per partition, copied into the server's registry at each scrape;
//! - **its end** ([`Ingest::failed`]): a front end stops serving when the run fails rather
//!   than serve data that no longer moves.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dtc_io::IoError;
use dtc_io::RejectReason;
use dtc_io::source::{PartitionId, PartitionInfo, Polled, RecordSource, SourceStats};
use dtc_plan::plan::StreamingPlan;
use dtc_runtime::RunError;
use dtc_runtime::live::{LiveMetrics, LiveOptions, LiveReport, LiveRun, run_live};
use dtc_runtime::locations::Services;
use dtc_runtime::report::Observer;
use dtc_store::BlockStore;
use metrics::{Key, Label, Recorder, Unit};
use tokio::sync::Notify;

use crate::ReadinessCheck;
use crate::error::ServeError;
use crate::metrics::{Collector, METADATA, Metrics};

pub const EVENTS_READ: &str = "dtc_ingest_events_read_total";
pub const EVENTS_APPLIED: &str = "dtc_ingest_events_applied_total";
pub const EVENTS_LATE: &str = "dtc_ingest_events_late_total";
pub const EVENTS_FILTERED: &str = "dtc_ingest_events_filtered_total";
pub const EVENTS_REJECTED: &str = "dtc_ingest_events_rejected_total";
pub const EVENTS_REDELIVERED: &str = "dtc_ingest_events_redelivered_total";
pub const COMMITS: &str = "dtc_ingest_commits_total";
pub const RECORDS_WRITTEN: &str = "dtc_ingest_records_written_total";
pub const COMMIT_DURATION: &str = "dtc_ingest_commit_duration_seconds";
pub const LAG: &str = "dtc_ingest_lag_records";
pub const IDENTITIES_CACHED: &str = "dtc_ingest_identities_cached";
pub const IDENTITIES_UNSETTLED: &str = "dtc_ingest_identities_unsettled";
pub const READY: &str = "dtc_ingest_ready";

/// How the ingest runs, besides the continuous run's own options.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub live: LiveOptions,
    /// Where rejected events go (appended at each commit, as in `dtc transform`).
    pub dead_letters: PathBuf,
    /// How often the lag of the assigned partitions is measured while the end of one is not
    /// known yet (a request to the broker per partition, on the ingest's thread); afterwards
    /// the run's progress reports measure it, every `live.progress_interval`.
    pub lag_interval: Duration,
    /// The run not polling its source for this long makes `/readyz` fail: it is stuck.
    pub stall_after: Duration,
}

impl IngestOptions {
    /// Lag measured once per commit interval (at most once a second), and a run stuck for
    /// ten commit intervals (at least 30 s) counted as stuck.
    pub fn new(live: LiveOptions, dead_letters: PathBuf) -> IngestOptions {
        IngestOptions {
            lag_interval: live.commit_interval.min(Duration::from_secs(1)),
            stall_after: (live.commit_interval * 10).max(Duration::from_secs(30)),
            live,
            dead_letters,
        }
    }
}

/// The continuous run, on its own thread.
pub struct Ingest {
    status: Arc<Status>,
    metrics: Arc<LiveMetrics>,
    stop: Arc<AtomicBool>,
    ended: Arc<Notify>,
    thread: JoinHandle<Result<LiveReport, RunError>>,
}

impl Ingest {
    /// Starts the continuous run of `plan` from `source` into `store` (the one the server
    /// reads); `observer` hears its progress, on the ingest's thread.
    pub fn start(
        plan: Arc<StreamingPlan>,
        store: Arc<dyn BlockStore>,
        source: Box<dyn RecordSource>,
        options: IngestOptions,
        mut observer: Box<dyn Observer + Send>,
    ) -> Result<Ingest, ServeError> {
        let status = Arc::new(Status::new(options.stall_after));
        let metrics = Arc::new(LiveMetrics::default());
        let stop = Arc::new(AtomicBool::new(false));
        let ended = Arc::new(Notify::new());
        let thread = {
            let (status, metrics, stop, ended) =
                (status.clone(), metrics.clone(), stop.clone(), ended.clone());
            std::thread::Builder::new()
                .name("dtc-ingest".into())
                .spawn(move || {
                    let mut source = Tracked::new(source, status.clone(), options.lag_interval);
                    let result = run_live(
                        LiveRun {
                            streaming: plan,
                            store: store.as_ref(),
                            source: &mut source,
                            dead_letters: options.dead_letters,
                            options: options.live,
                            stop,
                            metrics,
                        },
                        &mut Services::default(),
                        observer.as_mut(),
                    );
                    // The consumer leaves its group before anyone hears that the run ended.
                    drop(source);
                    status.ended(result.as_ref().err());
                    ended.notify_one();
                    result
                })
                .map_err(ServeError::Server)?
        };
        Ok(Ingest {
            status,
            metrics,
            stop,
            ended,
            thread,
        })
    }

    /// The check `/readyz` waits for (see the module docs).
    pub fn readiness(&self) -> Arc<dyn ReadinessCheck> {
        self.status.clone()
    }

    /// Puts the run's counters into `metrics` (the server's registry), at every scrape.
    pub fn export_metrics(&self, metrics: &Metrics) {
        metrics.add_collector(Arc::new(IngestCollector::new(
            metrics.recorder(),
            self.metrics.clone(),
            self.status.clone(),
        )));
    }

    /// Completes with the error when the run fails (it never completes otherwise: a run that
    /// reached the end of its partitions, with `stop_at_end`, leaves a store that is final).
    pub fn failed(&self) -> impl Future<Output = String> + Send + 'static {
        let (ended, status) = (self.ended.clone(), self.status.clone());
        async move {
            ended.notified().await;
            match status.failure() {
                Some(why) => why,
                None => std::future::pending().await,
            }
        }
    }

    /// Asks the run to finish: it commits what it holds and returns.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Stops the run and waits for it: its report, or why it failed.
    pub fn join(self) -> Result<LiveReport, RunError> {
        self.stop();
        self.thread
            .join()
            .unwrap_or_else(|_| Err(RunError::Internal("the ingest thread panicked".into())))
    }
}

/// What the server knows of the run: per partition, where it is durable and where its end
/// was; whether the run still runs.
struct Status {
    started: Instant,
    /// Milliseconds after `started` of the run's latest poll of its source.
    last_poll_ms: AtomicU64,
    stall_after: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    parts: BTreeMap<PartitionId, Part>,
    state: State,
}

#[derive(Default)]
enum State {
    #[default]
    Running,
    /// Ended by a stop or at the end of its partitions: what it committed stands.
    Ended,
    Failed(String),
}

struct Part {
    name: String,
    /// The next offset the store holds for the partition.
    committed: i64,
    /// The partition's end, first measured after it was assigned.
    end: Option<i64>,
    /// Records not read yet, as last measured.
    lag: Option<i64>,
    caught_up: bool,
}

impl Part {
    fn check(&mut self) {
        if self.end.is_some_and(|end| self.committed >= end) {
            self.caught_up = true;
        }
    }
}

impl Status {
    fn new(stall_after: Duration) -> Status {
        Status {
            started: Instant::now(),
            last_poll_ms: AtomicU64::new(0),
            stall_after,
            inner: Mutex::default(),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn polled(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_poll_ms.store(ms, Ordering::Relaxed);
    }

    fn assigned(&self, id: PartitionId, name: String, committed: i64) {
        self.inner().parts.insert(
            id,
            Part {
                name,
                committed,
                end: None,
                lag: None,
                caught_up: false,
            },
        );
    }

    fn revoked(&self, ids: &[PartitionId]) {
        let mut inner = self.inner();
        for id in ids {
            inner.parts.remove(id);
        }
    }

    fn committed(&self, offsets: &[(PartitionId, i64)]) {
        let mut inner = self.inner();
        for (id, next) in offsets {
            if let Some(part) = inner.parts.get_mut(id) {
                part.committed = *next;
                part.check();
            }
        }
    }

    /// `lags`: records not read per partition, measured when the run had read up to `read`.
    fn measured(&self, lags: &[(PartitionId, i64)], read: &HashMap<PartitionId, i64>) {
        let mut inner = self.inner();
        for (id, lag) in lags {
            let (Some(part), Some(read)) = (inner.parts.get_mut(id), read.get(id)) else {
                continue;
            };
            part.lag = Some(*lag);
            if part.end.is_none() {
                part.end = Some(read + lag);
                part.check();
            }
        }
    }

    fn needs_end(&self) -> bool {
        self.inner().parts.values().any(|p| p.end.is_none())
    }

    fn ended(&self, error: Option<&RunError>) {
        self.inner().state = match error {
            Some(e) => State::Failed(e.to_string()),
            None => State::Ended,
        };
    }

    fn failure(&self) -> Option<String> {
        match &self.inner().state {
            State::Failed(why) => Some(why.clone()),
            _ => None,
        }
    }
}

/// Partitions named in a reason, at most this many.
const NAMED_PARTITIONS: usize = 8;

impl ReadinessCheck for Status {
    fn name(&self) -> &str {
        "ingest"
    }

    fn ready(&self) -> Result<(), String> {
        let inner = self.inner();
        match &inner.state {
            State::Failed(why) => return Err(format!("the continuous run failed: {why}")),
            State::Ended => return Ok(()),
            State::Running => {}
        }
        let since_poll = self.started.elapsed().saturating_sub(Duration::from_millis(
            self.last_poll_ms.load(Ordering::Relaxed),
        ));
        if since_poll > self.stall_after {
            return Err(format!(
                "the continuous run has not read from its source for {}s",
                since_poll.as_secs()
            ));
        }
        if inner.parts.is_empty() {
            return Err("no partition assigned yet (joining the consumer group)".into());
        }
        let behind: Vec<String> = inner
            .parts
            .values()
            .filter(|p| !p.caught_up)
            .map(|p| match p.end {
                Some(end) => format!("{} committed {} of {end}", p.name, p.committed),
                None => format!("{}: end not measured yet", p.name),
            })
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        let more = behind.len().saturating_sub(NAMED_PARTITIONS);
        let mut reason = format!(
            "catching up: {}",
            behind[..behind.len().min(NAMED_PARTITIONS)].join(", ")
        );
        if more > 0 {
            reason.push_str(&format!(" and {more} more"));
        }
        Err(reason)
    }
}

/// The source as the run sees it, telling [`Status`] what happens to the partitions and
/// measuring their lag every lag interval.
struct Tracked {
    inner: Box<dyn RecordSource>,
    status: Arc<Status>,
    /// The offset after the latest record read, per partition.
    read: HashMap<PartitionId, i64>,
    lag_interval: Duration,
    last_measured: Option<Instant>,
    /// Polls until the next look at the clock: reading it for every record would cost the run
    /// more than the rest of this wrapper.
    countdown: u32,
}

/// Records handed out between two looks at the clock while records flow.
const RECORDS_PER_CHECK: u32 = 64;

impl Tracked {
    fn new(inner: Box<dyn RecordSource>, status: Arc<Status>, lag_interval: Duration) -> Tracked {
        Tracked {
            inner,
            status,
            read: HashMap::new(),
            lag_interval,
            last_measured: None,
            countdown: 0,
        }
    }
}

impl RecordSource for Tracked {
    fn poll(&mut self) -> Result<Polled<'_>, IoError> {
        if self.countdown == 0 {
            self.countdown = RECORDS_PER_CHECK;
            self.status.polled();
            // Measuring asks the broker, on the run's thread: only while a partition's end is
            // not known; afterwards the run's own progress reports (every progress interval)
            // keep the lag current.
            if self.status.needs_end()
                && self
                    .last_measured
                    .is_none_or(|t| t.elapsed() >= self.lag_interval)
            {
                self.last_measured = Some(Instant::now());
                let lags = self.inner.lag();
                self.status.measured(&lags, &self.read);
            }
        }
        let polled = self.inner.poll()?;
        match &polled {
            Polled::Record(record) => {
                self.countdown -= 1;
                if let Some(read) = self.read.get_mut(&record.partition) {
                    *read = record.offset + 1;
                }
            }
            Polled::Revoked(ids) => {
                self.countdown = 0;
                for id in ids {
                    self.read.remove(id);
                }
                self.status.revoked(ids);
            }
            // Nothing flows (or partitions change): look at the clock at the next poll.
            _ => self.countdown = 0,
        }
        Ok(polled)
    }

    fn partition(&self, id: PartitionId) -> Option<&PartitionInfo> {
        self.inner.partition(id)
    }

    fn start_at(&mut self, id: PartitionId, offset: i64) -> Result<(), IoError> {
        self.inner.start_at(id, offset)?;
        let name = self
            .inner
            .partition(id)
            .map_or_else(|| format!("partition {id}"), |p| p.name.clone());
        // The run starts a partition at the offset the store holds for it: durable already.
        self.status.assigned(id, name, offset);
        self.read.insert(id, offset);
        // Measure the new partition's end at the next poll.
        self.last_measured = None;
        Ok(())
    }

    fn stats(&self) -> SourceStats {
        self.inner.stats()
    }

    fn committed(&mut self, offsets: &[(PartitionId, i64)]) -> Result<(), IoError> {
        self.inner.committed(offsets)?;
        self.status.committed(offsets);
        Ok(())
    }

    fn lag(&mut self) -> Vec<(PartitionId, i64)> {
        let lags = self.inner.lag();
        self.status.measured(&lags, &self.read);
        lags
    }
}

/// Copies the run's counters into the server's registry at each scrape.
struct IngestCollector {
    metrics: Arc<LiveMetrics>,
    status: Arc<Status>,
}

impl IngestCollector {
    fn new(recorder: &dyn Recorder, metrics: Arc<LiveMetrics>, status: Arc<Status>) -> Self {
        let counters = [
            (EVENTS_READ, "events read from the source by the ingest"),
            (
                EVENTS_APPLIED,
                "events applied to the store's blocks (late ones included)",
            ),
            (
                EVENTS_LATE,
                "events older than their partition's watermark, applied as late updates",
            ),
            (EVENTS_FILTERED, "events the spec's When left out"),
            (
                EVENTS_REJECTED,
                "events sent to the dead letters, by reason",
            ),
            (
                EVENTS_REDELIVERED,
                "events read again after a restart that the store already held",
            ),
            (COMMITS, "commits of the ingest that wrote to the store"),
            (RECORDS_WRITTEN, "records the ingest wrote to the store"),
        ];
        for (name, text) in counters {
            recorder.describe_counter(name.into(), Some(Unit::Count), text.into());
        }
        recorder.describe_histogram(
            COMMIT_DURATION.into(),
            Some(Unit::Seconds),
            "how long the ingest's commits took (records and offsets in one store write)".into(),
        );
        let gauges = [
            (
                LAG,
                "records of the partition not read yet, as last measured",
            ),
            (IDENTITIES_CACHED, "identity states in the ingest's memory"),
            (
                IDENTITIES_UNSETTLED,
                "identity states with events not settled by the watermark",
            ),
            (
                READY,
                "1 when the ingest has caught up and runs (what /readyz waits for)",
            ),
        ];
        for (name, text) in gauges {
            recorder.describe_gauge(name.into(), None, text.into());
        }
        IngestCollector { metrics, status }
    }
}

impl Collector for IngestCollector {
    fn collect(&self, recorder: &dyn Recorder) {
        let m = &self.metrics;
        let counter = |name: &'static str, value: &AtomicU64| {
            recorder
                .register_counter(&Key::from_name(name), &METADATA)
                .absolute(value.load(Ordering::Relaxed));
        };
        counter(EVENTS_READ, &m.events_read);
        counter(EVENTS_APPLIED, &m.applied);
        counter(EVENTS_LATE, &m.late);
        counter(EVENTS_FILTERED, &m.filtered);
        counter(EVENTS_REDELIVERED, &m.redelivered);
        counter(COMMITS, &m.commits);
        counter(RECORDS_WRITTEN, &m.records_written);
        for reason in RejectReason::ALL {
            let key = Key::from_parts(
                EVENTS_REJECTED,
                vec![Label::from_static_parts("reason", reason.as_str())],
            );
            recorder
                .register_counter(&key, &METADATA)
                .absolute(m.rejected_by_reason[reason.index()].load(Ordering::Relaxed));
        }
        let gauge = |name: &'static str, value: f64| {
            recorder
                .register_gauge(&Key::from_name(name), &METADATA)
                .set(value);
        };
        gauge(
            IDENTITIES_CACHED,
            m.identities_cached.load(Ordering::Relaxed) as f64,
        );
        gauge(
            IDENTITIES_UNSETTLED,
            m.identities_unsettled.load(Ordering::Relaxed) as f64,
        );
        gauge(
            READY,
            if self.status.ready().is_ok() {
                1.0
            } else {
                0.0
            },
        );
        let durations = recorder.register_histogram(&Key::from_name(COMMIT_DURATION), &METADATA);
        for took in m.take_commit_durations() {
            durations.record(took.as_secs_f64());
        }
        for part in self.status.inner().parts.values() {
            if let Some(lag) = part.lag {
                let key = Key::from_parts(LAG, vec![Label::new("partition", part.name.clone())]);
                recorder.register_gauge(&key, &METADATA).set(lag as f64);
            }
        }
    }
}
