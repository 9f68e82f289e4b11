//! The server's metrics, in the Prometheus text format at `/metrics`.
//!
//! Each server has a registry of its own rather than the process-wide `metrics` recorder, so
//! that two servers in one process (tests, or a future ingest beside the API) never mix their
//! counts. [`Metrics::recorder`] is the hook for code running beside the server; code that
//! keeps its counts as data elsewhere (the Kafka ingest, [`crate::ingest`]: events applied,
//! late, rejected by reason, lag per partition, commit latency) adds a [`Collector`] that
//! copies them into the registry at each scrape, and they appear at `/metrics` with the
//! server's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

pub(crate) const METADATA: Metadata<'static> = Metadata::new("dtc_serve", Level::INFO, None);

/// Bucket bounds of every `*_duration_seconds` histogram: 50 µs to 10 s, dense below 1 ms
/// where the embedded store answers.
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

pub const REQUESTS: &str = "dtc_serve_requests_total";
pub const REQUEST_DURATION: &str = "dtc_serve_request_duration_seconds";
pub const STORE_READS: &str = "dtc_serve_store_reads_total";
pub const STORE_READ_DURATION: &str = "dtc_serve_store_read_duration_seconds";
pub const STORE_ERRORS: &str = "dtc_serve_store_errors_total";
pub const NOT_FOUND: &str = "dtc_serve_identities_not_found_total";
pub const EVALUATION_ERRORS: &str = "dtc_serve_evaluation_errors_total";
pub const SERVED: &str = "dtc_serve_features_served_total";
pub const LOG_ERRORS: &str = "dtc_serve_served_log_errors_total";

/// The counter and latency histogram of each (endpoint, status).
type RequestHandles = HashMap<(&'static str, u16), (Counter, Histogram)>;

/// Counts kept outside the registry, copied into it when `/metrics` is scraped.
pub trait Collector: Send + Sync {
    fn collect(&self, recorder: &dyn Recorder);
}

/// The server's registry and the handles its hot path uses.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    store_reads: Counter,
    store_read_duration: Histogram,
    store_errors: Counter,
    log_errors: Counter,
    /// Per (endpoint, status): registering a labelled key allocates, a lookup here does not.
    requests: Arc<Mutex<RequestHandles>>,
    collectors: Arc<Mutex<Vec<Arc<dyn Collector>>>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), BUCKETS);
        // Only an empty bucket list fails, and the list above is not empty; should that ever
        // change, the histograms fall back to summaries rather than the server not starting.
        let recorder = match builder {
            Ok(builder) => builder.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let described = [
            (
                REQUESTS,
                Unit::Count,
                "HTTP requests by endpoint and status",
            ),
            (
                REQUEST_DURATION,
                Unit::Seconds,
                "HTTP request latency by endpoint and status",
            ),
            (
                STORE_READS,
                Unit::Count,
                "store reads (one per identity per fetch)",
            ),
            (STORE_READ_DURATION, Unit::Seconds, "store read latency"),
            (STORE_ERRORS, Unit::Count, "store reads that failed"),
            (
                NOT_FOUND,
                Unit::Count,
                "fetches of identities the store holds no record of",
            ),
            (
                EVALUATION_ERRORS,
                Unit::Count,
                "feature fields whose expression failed (served as null), by window and field",
            ),
            (SERVED, Unit::Count, "feature rows served, by window"),
            (
                LOG_ERRORS,
                Unit::Count,
                "served-feature log lines that could not be written",
            ),
        ];
        for (name, unit, text) in described {
            if unit == Unit::Seconds {
                recorder.describe_histogram(name.into(), Some(unit), text.into());
            } else {
                recorder.describe_counter(name.into(), Some(unit), text.into());
            }
        }
        let handle = recorder.handle();
        let counter =
            |name: &'static str| recorder.register_counter(&Key::from_name(name), &METADATA);
        let store_reads = counter(STORE_READS);
        let store_errors = counter(STORE_ERRORS);
        let log_errors = counter(LOG_ERRORS);
        let store_read_duration =
            recorder.register_histogram(&Key::from_name(STORE_READ_DURATION), &METADATA);
        Metrics {
            recorder: Arc::new(recorder),
            handle,
            store_reads,
            store_read_duration,
            store_errors,
            log_errors,
            requests: Arc::default(),
            collectors: Arc::default(),
        }
    }

    /// The registry behind `/metrics`, for code running beside the server (see the module docs).
    pub fn recorder(&self) -> &dyn Recorder {
        self.recorder.as_ref()
    }

    /// `collector` runs before every rendering of `/metrics`.
    pub fn add_collector(&self, collector: Arc<dyn Collector>) {
        self.collectors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(collector);
    }

    /// The text `/metrics` answers.
    pub fn render(&self) -> String {
        let collectors = self
            .collectors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        for collector in collectors {
            collector.collect(self.recorder());
        }
        self.handle.render()
    }

    /// Folds the histogram samples recorded since the last call into their buckets, so memory
    /// stays bounded between scrapes.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    pub fn request(&self, endpoint: &'static str, status: u16, elapsed: Duration) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (counter, histogram) = requests.entry((endpoint, status)).or_insert_with(|| {
            let labels = vec![
                Label::from_static_parts("endpoint", endpoint),
                Label::new("status", status.to_string()),
            ];
            (
                self.recorder
                    .register_counter(&Key::from_parts(REQUESTS, labels.clone()), &METADATA),
                self.recorder
                    .register_histogram(&Key::from_parts(REQUEST_DURATION, labels), &METADATA),
            )
        });
        counter.increment(1);
        histogram.record(elapsed.as_secs_f64());
    }

    pub fn store_read(&self, elapsed: Duration, ok: bool) {
        self.store_reads.increment(1);
        self.store_read_duration.record(elapsed.as_secs_f64());
        if !ok {
            self.store_errors.increment(1);
        }
    }

    fn window_counter(&self, name: &'static str, window: &str) -> Counter {
        let key = Key::from_parts(name, vec![Label::new("window", window.to_string())]);
        self.recorder.register_counter(&key, &METADATA)
    }

    pub fn not_found(&self, window: &str) {
        self.window_counter(NOT_FOUND, window).increment(1);
    }

    pub fn served(&self, window: &str, rows: u64) {
        self.window_counter(SERVED, window).increment(rows);
    }

    pub fn evaluation_errors(&self, window: &str, field: &str, count: u64) {
        let key = Key::from_parts(
            EVALUATION_ERRORS,
            vec![
                Label::new("window", window.to_string()),
                Label::new("field", field.to_string()),
            ],
        );
        self.recorder
            .register_counter(&key, &METADATA)
            .increment(count);
    }

    pub fn log_error(&self) {
        self.log_errors.increment(1);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_render_as_prometheus_counters_and_histograms() {
        let metrics = Metrics::new();
        metrics.request("features", 200, Duration::from_micros(300));
        metrics.request("features", 200, Duration::from_micros(700));
        metrics.request("features", 404, Duration::from_micros(100));
        metrics.store_read(Duration::from_micros(80), true);
        metrics.evaluation_errors("w", "last.games", 2);
        let text = metrics.render();
        assert!(
            text.contains("dtc_serve_requests_total{endpoint=\"features\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "dtc_serve_request_duration_seconds_bucket{endpoint=\"features\",status=\"200\",le=\"0.0005\"} 1"
        ), "{text}");
        assert!(text.contains("dtc_serve_store_reads_total 1"), "{text}");
        assert!(
            text.contains("dtc_serve_evaluation_errors_total{window=\"w\",field=\"last.games\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE dtc_serve_requests_total counter"),
            "{text}"
        );
    }

    #[test]
    fn two_servers_keep_their_own_counts() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.store_read(Duration::from_micros(1), true);
        assert!(b.render().contains("dtc_serve_store_reads_total 0"));
    }
}
