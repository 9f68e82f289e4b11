//! What the integration tests share: specs, loading events with the batch run (which also
//! gives the training rows), and a server on a free loopback port.

// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dtc_io::format::{JsonStyle, to_json_string};
use dtc_io::{IoError, RowSink, SinkSummary};
use dtc_plan::record::Row;
use dtc_runtime::batch::{BatchOptions, BatchRun, run_batch};
use dtc_runtime::locations::Services;
use dtc_runtime::report::Quiet;
use dtc_runtime::specs::JobSpecs;
use dtc_runtime::window::RowsOut;
use dtc_serve::{ServeError, ServeOptions, Server};
use dtc_store::BlockStore;
use serde_json::{Map, Value as Json};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Sessions with games, purchases and offers; a user record with a country.
pub const STREAMING: &str = "
Type: Streaming
Version: '2026-11-01'
Name: games
Identity: source.user
Time: parse_time(source.time)
Aggregates:
  - Type: Identity
    Name: user
    When: source.country is not None
    Fields:
      - Name: country
        Value: source.country
  - Type: Block
    Name: session
    Dimensions:
      - Name: session_id
        Value: source.session
    Fields:
      - Name: games
        Type: integer
        When: source.event == 'game'
        Value: session.games + 1
      - Name: spend
        Type: float
        When: source.event == 'purchase'
        Value: session.spend + float(source.amount)
      - Name: offer
        When: source.event == 'offer'
        Value: source.offer
      - Name: price
        Type: float
        When: source.event == 'offer'
        Value: source.price
";

/// Features of every window type, a label window, a variable that reads the label (a label
/// too), variables over the features and the identity record, and fields that read the anchor.
pub const WINDOW: &str = "
Type: Window
Version: '2026-11-01'
Name: offers
SourceDTC: games
Anchor:
  Condition: games.session.offer != ''
Aggregates:
  - Type: Window
    Name: last2
    WindowType: count
    WindowValue: -2
    Source: games.session
    Fields:
      - Name: games
        Type: integer
        Value: sum(source.games)
      - Name: first
        Value: source.session_id[0]
  - Type: Window
    Name: day
    WindowType: day
    WindowValue: -1
    Source: games.session
    Fields:
      - Name: spend
        Type: float
        Value: sum(source.spend)
      - Name: sessions
        Type: list
        Value: source.session_id
  - Type: Window
    Name: recent
    WindowType: hour
    WindowValue: -3
    Source: games.session
    Fields:
      - Name: sessions
        Type: integer
        Value: len(source.session_id)
  - Type: Window
    Name: next
    WindowType: count
    WindowValue: 1
    Source: games.session
    Fields:
      - Name: games
        Type: integer
        Value: sum(source.games)
  - Type: Variable
    Name: derived
    Fields:
      - Name: spend_per_game
        Type: float
        Value: day.spend / last2.games
      - Name: country
        Value: games.user.country
      - Name: grows
        Type: boolean
        Value: next.games > last2.games
  - Type: Variable
    Name: here
    Fields:
      - Name: session
        Value: anchor.session_id
      - Name: offer
        Value: anchor.offer + '@' + str(anchor.price)
      - Name: start
        Type: datetime
        Value: anchor._start_time
";

/// The columns `WINDOW` serves: all but the label `next.games` and `derived.grows`, which
/// reads it.
pub const FEATURES: &[&str] = &[
    "last2.games",
    "last2.first",
    "day.spend",
    "day.sessions",
    "recent.sessions",
    "derived.spend_per_game",
    "derived.country",
    "here.session",
    "here.offer",
    "here.start",
];

/// The features that read the anchor block: equal to training only when the request names it.
pub const ANCHOR_FEATURES: &[&str] = &["here.session", "here.offer", "here.start"];

/// `STREAMING` and `WINDOW`, loaded from files in `dir`.
pub fn games_job(dir: &Path) -> JobSpecs {
    let streaming = dir.join("streaming.yml");
    let window = dir.join("window.yml");
    std::fs::write(&streaming, STREAMING).unwrap();
    std::fs::write(&window, WINDOW).unwrap();
    load(&streaming, &[window])
}

pub fn offer_ai_job() -> JobSpecs {
    let specs = repo().join("dtc-specs/offer-ai");
    load(
        &specs.join("offer-ai-streaming.yml"),
        &[specs.join("offer-ai-window.yml")],
    )
}

fn load(streaming: &Path, windows: &[PathBuf]) -> JobSpecs {
    match dtc_runtime::specs::load_job(streaming, windows) {
        Ok(job) => job,
        Err(dtc_runtime::specs::SpecFailure::Diagnostics(loaded)) => {
            panic!("the specs do not load: {:?}", loaded.diagnostics)
        }
        Err(dtc_runtime::specs::SpecFailure::Run(e)) => panic!("{e}"),
    }
}

/// Collects a run's rows.
struct Collect(Arc<Mutex<Vec<Row>>>);

impl RowSink for Collect {
    fn write_identity(&mut self, _identity: &str, rows: &[Row]) -> Result<(), IoError> {
        self.0.lock().unwrap().extend_from_slice(rows);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<SinkSummary, IoError> {
        Ok(SinkSummary::default())
    }
}

/// Applies the JSON-lines `events` file to `store` with a batch run of `job`'s streaming
/// spec and first window spec; returns the training rows the run computed.
pub fn load_events(job: &JobSpecs, store: &dyn BlockStore, events: &Path, work: &Path) -> Vec<Row> {
    let rows = Arc::new(Mutex::new(Vec::new()));
    let run = BatchRun {
        streaming: job.streaming.clone(),
        window: job.windows.first().cloned(),
        store,
        sources: vec![events.display().to_string()],
        dead_letters: work.join("dead-letters.jsonl"),
        rows: RowsOut::Stream(Box::new(Collect(rows.clone()))),
        options: BatchOptions {
            sort_budget_bytes: 64 << 20,
            spill_dir: work.to_path_buf(),
            write_batch_records: 1000,
            identity_order: Default::default(),
            skip_bad_files: false,
        },
    };
    run_batch(run, &mut Services::default(), &mut Quiet, None).unwrap();
    rows.lock().unwrap().clone()
}

/// A row's columns as the JSON the API and the JSON-lines output write.
pub fn row_json(job: &JobSpecs, row: &Row) -> Map<String, Json> {
    let plan = &job.windows[0];
    plan.field_names
        .iter()
        .zip(&row.values)
        .map(|(name, value)| {
            let text = to_json_string(value, JsonStyle::Compact);
            (name.clone(), serde_json::from_str(&text).unwrap())
        })
        .collect()
}

/// RFC 3339 with `Z`, safe in a query string.
pub fn at(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A server on a free loopback port, answering until [`Running::stop`].
pub struct Running {
    pub base: String,
    pub metrics: dtc_serve::Metrics,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

pub async fn start(job: JobSpecs, store: Arc<dyn BlockStore>, options: ServeOptions) -> Running {
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..options
    };
    let server = Server::bind(job, store, options).await.unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let metrics = server.metrics().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        base,
        metrics,
        stop: Some(stop),
        task,
    }
}

impl Running {
    /// Starts the shutdown and waits for the server to finish.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap()
    }

    /// Starts the shutdown without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn finished(self) -> Result<(), ServeError> {
        self.task.await.unwrap()
    }
}

/// GET `url`: status and JSON body.
pub async fn get(client: &reqwest::Client, url: &str) -> (u16, Json) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"));
    (status, body)
}

/// POST `body` to `url`: status and JSON body.
pub async fn post(client: &reqwest::Client, url: &str, body: String) -> (u16, Json) {
    let response = client.post(url).body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"));
    (status, body)
}

/// Whether the DynamoDB Local tests run: skipped with a notice unless DTC_TEST_DYNAMODB=1 and
/// an endpoint is set (scripts/test.sh does both), and a failure on CI, where skipping would
/// hide that the tests never ran.
pub fn dynamodb_enabled() -> bool {
    let on = std::env::var("DTC_TEST_DYNAMODB").as_deref() == Ok("1")
        && std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some();
    if !on {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but DynamoDB Local is not set up (DTC_TEST_DYNAMODB=1 and \
             AWS_ENDPOINT_URL_DYNAMODB, which scripts/test.sh sets): the DynamoDB tests must run on CI"
        );
        eprintln!(
            "skipped: DTC_TEST_DYNAMODB is not 1 or AWS_ENDPOINT_URL_DYNAMODB is not set (run \
             scripts/test.sh to start DynamoDB Local)"
        );
    }
    on
}

/// The number of Query requests in a DynamoDB store's usage line.
pub fn queries(store: &dyn BlockStore) -> u64 {
    let usage = store.usage().unwrap_or_default();
    let before = usage.split(" Query").next().unwrap_or_default();
    before
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Query count in {usage:?}"))
}

/// Percent-encodes every byte but the unreserved ones (RFC 3986), for paths and queries.
pub fn enc(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
