//! The Kafka side of the command line: `dtc transform --source kafka://…` (a continuous run,
//! until SIGINT/SIGTERM or, with --stop-at-end, the partitions' ends) and `dtc produce`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use dtc_engine::event::{Admission, Admitter};
use dtc_io::Extractor;
use dtc_io::source::{FileSource, Polled, RecordSource};
use dtc_kafka::KafkaUri;
use dtc_kafka::source::{ConsumerOptions, KafkaSource};
use dtc_runtime::RunError;
use dtc_runtime::live::{LiveMetrics, LiveOptions, LiveProgress, LiveReport, LiveRun, run_live};
use dtc_runtime::locations::{Services, StoreOptions};
use dtc_runtime::report::Observer;
use dtc_store::OpenMode;

use crate::cmd::transform;
use crate::report_error;

/// Flags of a continuous run from Kafka (with `--source kafka://…`).
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// The consumer group (required with a kafka:// source): consumers of one group share the
    /// topic's partitions.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// A librdkafka option (`security.protocol=SASL_SSL`, `session.timeout.ms=10000`, …);
    /// repeatable, applied after --kafka-properties.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
    pub kafka_options: Vec<String>,
    /// A file of librdkafka options, one `key=value` a line (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub kafka_properties: Option<PathBuf>,
    /// Stop once every assigned partition is read to the end it had when the run started
    /// (backfills, tests); all events are then settled.
    #[arg(long)]
    pub stop_at_end: bool,
    /// Commit (records and offsets, in one store write) at least this often.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub commit_interval: Duration,
    /// How much later (in event time) an event may arrive than a later one and still be
    /// applied in event-time order; older ones are late updates, counted.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub allowed_disorder: Duration,
    /// A partition without records for this long settles its events (its blocks close).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,
    /// Memory for cached identity states.
    #[arg(long, default_value_t = 128, value_name = "MiB")]
    pub cache_mb: usize,
    /// Records longer than this go to the dead letters (`line_too_long`).
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES", hide = true)]
    pub max_record_bytes: usize,
}

/// `500ms`, `2s`, `1m`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (500ms, 2s, 1m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{text}`: use ms, s, m or h")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{text}` is not a duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

impl KafkaArgs {
    /// The librdkafka options: the properties file's, then the --kafka-option ones.
    fn options(&self) -> Result<Vec<(String, String)>, RunError> {
        let mut options = Vec::new();
        if let Some(path) = &self.kafka_properties {
            let text = std::fs::read_to_string(path)
                .map_err(|e| RunError::Usage(format!("cannot read {}: {e}", path.display())))?;
            options.extend(
                dtc_kafka::parse_properties(&text, &path.display().to_string())
                    .map_err(|e| RunError::Usage(e.to_string()))?,
            );
        }
        for option in &self.kafka_options {
            options.push(dtc_kafka::parse_option(option).map_err(RunError::Usage)?);
        }
        Ok(options)
    }

    /// Joins the consumer group of these flags on `source` (a kafka:// URI).
    pub fn connect(&self, source: &str) -> Result<KafkaSource, RunError> {
        let uri = KafkaUri::parse(source).map_err(|e| RunError::Usage(e.to_string()))?;
        let group = self.group.clone().ok_or_else(|| {
            RunError::Usage("a kafka:// source needs --group: the consumer group to join".into())
        })?;
        let mut options = ConsumerOptions::new(uri, group);
        options.options = self.options()?;
        options.stop_at_end = self.stop_at_end;
        options.max_record_bytes = self.max_record_bytes.max(1);
        KafkaSource::connect(options).map_err(|e| RunError::Io(e.into()))
    }

    /// The continuous run's options of these flags.
    pub fn live_options(&self) -> Result<LiveOptions, RunError> {
        Ok(LiveOptions {
            commit_interval: self.commit_interval.max(Duration::from_millis(1)),
            allowed_disorder: chrono::TimeDelta::from_std(self.allowed_disorder)
                .map_err(|_| RunError::Usage("--allowed-disorder is too large".into()))?,
            idle_timeout: self.idle_timeout,
            cache_bytes: self.cache_mb.max(1) << 20,
            ..LiveOptions::default()
        })
    }
}

/// SIGINT or SIGTERM seen: the run finishes its batch, commits and exits 0.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM into a flag the run watches.
fn catch_signals() -> Arc<AtomicBool> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        while !SIGNALLED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        flag.store(true, Ordering::SeqCst);
    });
    stop
}

/// Progress lines on stderr.
pub struct LiveObserver {
    pub quiet: bool,
}

impl Observer for LiveObserver {
    fn live_progress(&mut self, p: &LiveProgress) {
        if self.quiet {
            return;
        }
        let lag: Vec<String> = p
            .lag
            .iter()
            .map(|(name, lag)| format!("{name}={lag}"))
            .collect();
        eprintln!(
            "live: {} events ({:.0}/s), late {}, rejected {}, commits {}, lag [{}]{}",
            p.events_read,
            p.events_per_second,
            p.late,
            p.rejected,
            p.commits,
            lag.join(" "),
            p.freshness_p99
                .map(|d| format!(", freshness p99 {d:.2?}"))
                .unwrap_or_default()
        );
    }

    fn identity_on_two_partitions(&mut self, identity: &str) {
        eprintln!(
            "warning: identity `{identity}` arrived on a second partition: the topic must be keyed by identity"
        );
    }
}

/// A continuous run of `plan` from `source` into `store`.
pub fn transform(
    plan: Arc<dtc_plan::plan::StreamingPlan>,
    source: &str,
    store_uri: &str,
    store_options: &StoreOptions,
    dead_letters: PathBuf,
    args: &KafkaArgs,
    quiet: bool,
) -> Result<LiveReport, RunError> {
    let mut source = args.connect(source)?;
    let store =
        dtc_runtime::locations::open_store(store_uri, OpenMode::CreateIfMissing, store_options)?;
    let stop = catch_signals();
    let live = args.live_options()?;
    run_live(
        LiveRun {
            streaming: plan,
            store: store.as_ref(),
            source: &mut source,
            dead_letters,
            options: live,
            stop,
            metrics: Arc::new(LiveMetrics::default()),
        },
        &mut Services::default(),
        &mut LiveObserver { quiet },
    )
}

/// The summary of a continuous run.
pub fn print_summary(report: &LiveReport) {
    eprintln!(
        "continuous run `{}` into {}",
        report.streaming, report.store
    );
    transform::print_recovered(&report.recovered);
    eprintln!("  events read:      {}", report.events_read);
    eprintln!("  applied:          {}", report.applied);
    eprintln!("  late (applied as late updates): {}", report.late);
    eprintln!("  filtered by When: {}", report.filtered);
    transform::print_rejected(&report.rejected, &report.dead_letters);
    if report.redelivered > 0 {
        eprintln!("  re-delivered, already applied: {}", report.redelivered);
    }
    if report.identity_on_two_partitions > 0 {
        eprintln!(
            "  events of identities seen on two partitions: {}",
            report.identity_on_two_partitions
        );
    }
    eprintln!("  identities:       {}", report.identities);
    eprintln!("  commits:          {}", report.commits);
    eprintln!("  records written:  {}", report.records_written);
    if let Some(usage) = &report.store_usage {
        eprintln!("  {usage}");
    }
    transform::print_errors(&report.errors);
    eprintln!(
        "elapsed: {:.2?}, {:.0} events/s{}",
        report.elapsed,
        report.events_read as f64 / report.elapsed.as_secs_f64().max(1e-9),
        report
            .freshness_p99
            .map(|d| format!(", event-to-store p99 {d:.2?}"))
            .unwrap_or_default()
    );
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The streaming DTC whose `Identity` keys the records.
    #[arg(long, visible_alias = "streaming-bts", value_name = "SPEC")]
    pub streaming: PathBuf,
    /// Raw events: JSON-lines files (.gz too), directories, s3://bucket/prefix.
    #[arg(long, value_name = "PATH", num_args = 1.., required = true)]
    pub source: Vec<String>,
    /// kafka://HOST:PORT[,HOST:PORT]/TOPIC
    #[arg(long, value_name = "URI")]
    pub to: String,
    /// A librdkafka producer option; repeatable.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
    pub kafka_options: Vec<String>,
    /// A file of librdkafka options, one `key=value` a line.
    #[arg(long, value_name = "FILE")]
    pub kafka_properties: Option<PathBuf>,
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn produce(args: ProduceArgs, verbose: bool) -> ExitCode {
    match produce_run(&args) {
        Ok(None) => ExitCode::from(1),
        Ok(Some(())) => ExitCode::SUCCESS,
        Err(e) => report_error(&e, verbose),
    }
}

fn produce_run(args: &ProduceArgs) -> Result<Option<()>, RunError> {
    let Some(specs) = crate::specs::load_job(&args.streaming, &[]) else {
        return Ok(None);
    };
    let plan = specs?.streaming;
    let uri = KafkaUri::parse(&args.to).map_err(|e| RunError::Usage(e.to_string()))?;
    let [topic] = uri.topics.as_slice() else {
        return Err(RunError::Usage(format!("--to {uri} must name one topic")));
    };
    let kafka = KafkaArgs {
        group: None,
        kafka_options: args.kafka_options.clone(),
        kafka_properties: args.kafka_properties.clone(),
        stop_at_end: false,
        commit_interval: Duration::ZERO,
        allowed_disorder: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        cache_mb: 0,
        max_record_bytes: 0,
    };
    let mut producer =
        dtc_kafka::producer::Producer::connect(&uri.brokers, topic, &kafka.options()?)
            .map_err(|e| RunError::Io(e.into()))?;
    let sources: Vec<String> = args
        .source
        .iter()
        .flat_map(|s| s.split(',').map(str::to_string))
        .filter(|s| !s.is_empty())
        .collect();
    let mut services = Services::default();
    let mut source = FileSource::new(dtc_runtime::locations::inputs(&sources, &mut services)?);
    let extractor = Extractor::new(&plan.source_paths, plan.needs_whole_source);
    let mut admitter = Admitter::new(plan.clone());
    let mut values = Vec::new();
    let (mut sent, mut unkeyed) = (0u64, 0u64);
    let started = std::time::Instant::now();
    loop {
        let record = match source.poll()? {
            Polled::Record(record) => record,
            Polled::Partition(id) => {
                source.start_at(id, 0)?;
                continue;
            }
            Polled::BadPartition { error, .. } => return Err(RunError::BadInput { error }),
            Polled::End => break,
            _ => continue,
        };
        // The identity keys the record, so all of an identity's events share a partition, in
        // input order; a record without one is sent unkeyed and rejected by the consumer.
        let key = match extractor.extract(record.payload, &mut values) {
            Ok(()) => {
                let whole = if plan.needs_whole_source {
                    values.pop()
                } else {
                    None
                };
                match admitter.admit(std::mem::take(&mut values), whole) {
                    Admission::Accepted { identity, event } => {
                        values = event.values;
                        Some(identity)
                    }
                    _ => None,
                }
            }
            Err(_) => None,
        };
        match &key {
            Some(identity) => producer.send(identity.as_bytes(), record.payload),
            None => {
                unkeyed += 1;
                producer.send(b"", record.payload)
            }
        }
        .map_err(|e| RunError::Io(e.into()))?;
        sent += 1;
    }
    producer
        .flush(Duration::from_secs(300))
        .map_err(|e| RunError::Io(e.into()))?;
    if !args.quiet {
        eprintln!(
            "produced {sent} records to {uri} in {:.2?} ({unkeyed} without an identity, sent unkeyed)",
            started.elapsed()
        );
    }
    Ok(Some(()))
}
