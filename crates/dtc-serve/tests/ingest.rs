//! The in-process ingest ([`dtc_serve::ingest`]) through the HTTP API, with a scripted
//! source standing in for Kafka (the `dtc` binary's tests use a real broker): `/readyz` waits
//! for the run to catch up, the features served then equal the training rows of a batch run
//! over the same events, `/metrics` shows the run's counters, and a failed run makes
//! `/readyz` fail.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use dtc_io::IoError;
use dtc_io::source::{PartitionId, PartitionInfo, Polled, RecordSource, SourceRecord, SourceStats};
use dtc_runtime::live::LiveOptions;
use dtc_runtime::report::Quiet;
use dtc_serve::ServeOptions;
use dtc_serve::ingest::{Ingest, IngestOptions};
use dtc_store::{BlockStore, MemoryStore};

/// One partition of records, handed out only up to `released` (so a test decides when the
/// run can catch up), whose lag is the records after the read position; with `fail_at`, a
/// read error there.
struct Scripted {
    records: Vec<Vec<u8>>,
    released: Arc<AtomicUsize>,
    fail_at: Option<usize>,
    info: PartitionInfo,
    announced: bool,
    next: Option<usize>,
    payload: Vec<u8>,
}

impl Scripted {
    fn new(records: Vec<Vec<u8>>, released: Arc<AtomicUsize>) -> Scripted {
        Scripted {
            records,
            released,
            fail_at: None,
            info: PartitionInfo {
                name: "events/0".into(),
                checkpoint_key: Some("kafka:events/0".into()),
                size: None,
                lines: false,
            },
            announced: false,
            next: None,
            payload: Vec::new(),
        }
    }
}

impl RecordSource for Scripted {
    fn poll(&mut self) -> Result<Polled<'_>, IoError> {
        if !self.announced {
            self.announced = true;
            return Ok(Polled::Partition(0));
        }
        let Some(next) = self.next else {
            return Ok(Polled::Idle);
        };
        if self.fail_at == Some(next) {
            return Err(IoError::Read {
                input: "events/0".into(),
                source: std::io::Error::other("the broker went away for good"),
            });
        }
        let released = self.released.load(Ordering::SeqCst).min(self.records.len());
        if next >= released {
            std::thread::sleep(Duration::from_millis(2));
            return Ok(Polled::Idle);
        }
        self.next = Some(next + 1);
        self.payload.clone_from(&self.records[next]);
        Ok(Polled::Record(SourceRecord {
            partition: 0,
            offset: next as i64,
            payload: &self.payload,
            truncated: false,
        }))
    }

    fn partition(&self, id: PartitionId) -> Option<&PartitionInfo> {
        (id == 0).then_some(&self.info)
    }

    fn start_at(&mut self, _id: PartitionId, offset: i64) -> Result<(), IoError> {
        self.next = Some(offset.max(0) as usize);
        Ok(())
    }

    fn stats(&self) -> SourceStats {
        SourceStats::default()
    }

    fn lag(&mut self) -> Vec<(PartitionId, i64)> {
        match self.next {
            Some(next) => vec![(0, (self.records.len() - next) as i64)],
            None => Vec::new(),
        }
    }
}

fn options(dir: &std::path::Path) -> IngestOptions {
    IngestOptions::new(
        LiveOptions {
            commit_interval: Duration::from_millis(50),
            // The progress reports keep the lag gauge current once the partition's end is known.
            progress_interval: Duration::from_millis(50),
            ..LiveOptions::default()
        },
        dir.join("dead-letters.jsonl"),
    )
}

/// The offer-ai example's events and one record that is not JSON.
fn records() -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(repo().join("examples/offer-ai/events.jsonl")).unwrap();
    let mut records: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
    records.insert(records.len() / 2, b"{not json".to_vec());
    records
}

/// `/readyz`'s status and body.
async fn readyz(client: &reqwest::Client, base: &str) -> (u16, serde_json::Value) {
    get(client, &format!("{base}/readyz")).await
}

async fn until_ready(client: &reqwest::Client, base: &str) -> Duration {
    let began = Instant::now();
    loop {
        let (status, body) = readyz(client, base).await;
        if status == 200 {
            return began.elapsed();
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "never ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The offer-ai features that do not read the anchor block (null at a bare time).
const FEATURES: &[&str] = &[
    "last_session.games_played",
    "last_session.win_ratio",
    "prev_week.purchase_amount",
    "user.country",
    "user.facebook_connected",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_once_caught_up_then_serves_what_a_batch_run_trains_on() {
    let dir = tempfile::tempdir().unwrap();
    let job = offer_ai_job();
    let records = records();
    let total = records.len();
    // The training rows of a batch run over the same events.
    let events = dir.path().join("events.jsonl");
    let lines: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.clone()).unwrap())
        .collect();
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let batch = MemoryStore::new();
    let rows = tokio::task::block_in_place(|| load_events(&job, &batch, &events, dir.path()));
    assert!(rows.len() > 20, "{} rows", rows.len());

    let store: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
    let released = Arc::new(AtomicUsize::new(total / 3));
    let ingest = Ingest::start(
        job.streaming.clone(),
        store.clone(),
        Box::new(Scripted::new(records, released.clone())),
        options(dir.path()),
        Box::new(Quiet),
    )
    .unwrap();
    let server = start(
        job.clone(),
        store.clone(),
        ServeOptions {
            readiness: vec![ingest.readiness()],
            ..ServeOptions::default()
        },
    )
    .await;
    ingest.export_metrics(&server.metrics);
    let client = reqwest::Client::new();

    // A third of the events is all the run can read: it cannot catch up, however long.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = readyz(&client, &server.base).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    let reason = body["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("ingest: catching up: events/0 committed"),
        "{reason}"
    );
    assert!(reason.ends_with(&format!("of {total}")), "{reason}");
    let metrics = server.metrics.render();
    assert!(metrics.contains("dtc_ingest_ready 0"), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "dtc_ingest_lag_records{{partition=\"events/0\"}} {}",
            total - total / 3
        )),
        "{metrics}"
    );

    released.store(total, Ordering::SeqCst);
    until_ready(&client, &server.base).await;

    // Ready means every event is in the store: served features equal the training rows.
    let window = &job.windows[0].name;
    for row in &rows {
        let training = row_json(&job, row);
        let url = format!(
            "{}/v1/features/{window}/{}?at={}",
            server.base,
            enc(&row.identity),
            at(&row.anchor_time)
        );
        let (status, body) = get(&client, &url).await;
        assert_eq!(status, 200, "{url}: {body}");
        for name in FEATURES {
            assert_eq!(
                body["features"][*name], training[*name],
                "{name} of {} at {}: served {body}, trained {training:?}",
                row.identity, row.anchor_time
            );
        }
    }

    let metrics = server.metrics.render();
    for line in [
        format!("dtc_ingest_events_read_total {total}"),
        format!("dtc_ingest_events_applied_total {}", total - 1),
        "dtc_ingest_events_rejected_total{reason=\"invalid_json\"} 1".to_string(),
        "dtc_ingest_events_rejected_total{reason=\"missing_time\"} 0".to_string(),
        "dtc_ingest_lag_records{partition=\"events/0\"} 0".to_string(),
        "dtc_ingest_ready 1".to_string(),
    ] {
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    let commits: u64 = metric(&metrics, "dtc_ingest_commits_total");
    assert!(commits >= 1, "{metrics}");
    assert_eq!(
        metric(&metrics, "dtc_ingest_commit_duration_seconds_count"),
        commits,
        "one duration per commit: {metrics}"
    );

    server.stop().await.unwrap();
    let report = tokio::task::block_in_place(|| ingest.join()).unwrap();
    assert_eq!(report.events_read, total as u64);
    // Everything the run read is durable: the store holds the partition's end.
    assert_eq!(
        store.checkpoint("kafka:events/0").unwrap(),
        Some(dtc_store::Checkpoint {
            offset: total as i64
        })
    );
}

/// The value of an unlabelled metric line.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .parse::<f64>()
        .unwrap() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_ingest_makes_readyz_fail_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let job = offer_ai_job();
    let records = records();
    let total = records.len();
    let store: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
    let mut source = Scripted::new(records, Arc::new(AtomicUsize::new(total)));
    source.fail_at = Some(total / 2);
    let ingest = Ingest::start(
        job.streaming.clone(),
        store.clone(),
        Box::new(source),
        options(dir.path()),
        Box::new(Quiet),
    )
    .unwrap();
    let server = start(
        job.clone(),
        store,
        ServeOptions {
            readiness: vec![ingest.readiness()],
            ..ServeOptions::default()
        },
    )
    .await;
    let why = tokio::time::timeout(Duration::from_secs(30), ingest.failed())
        .await
        .expect("the run fails");
    assert!(why.contains("the broker went away for good"), "{why}");
    let client = reqwest::Client::new();
    let (status, body) = readyz(&client, &server.base).await;
    assert_eq!(status, 503, "{body}");
    let reason = body["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("ingest: the continuous run failed:")
            && reason.contains("the broker went away for good"),
        "{reason}"
    );
    server.stop().await.unwrap();
    assert!(tokio::task::block_in_place(|| ingest.join()).is_err());
}
