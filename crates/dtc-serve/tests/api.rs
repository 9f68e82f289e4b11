//! The HTTP API over a real socket: bounds of the anchor at equal timestamps, bad input
//! answered with 4xx JSON errors, authentication, metrics, the served-feature log, timeouts,
//! store failures and a graceful shutdown that lets requests in flight finish.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use dtc_runtime::specs::JobSpecs;
use dtc_serve::{ReadinessCheck, ServeOptions};
use dtc_store::{
    BlockStore, Checkpoint, IdentityPage, MemoryStore, RecordKey, StoreError, StoredRecord,
    TimeRange, WriteBatch,
};
use serde_json::{Value as Json, json};

/// Sessions of `u1` (times in 2024-01-01, UTC): `a` and `b` start together at 10:00, `c` at
/// 12:00 shows an offer; `p/q r` has one session. `c` has a game at 12:30.
const EVENTS: &str = r#"{"user":"u1","time":"2024-01-01T10:00:00Z","session":"a","event":"game","country":"DE"}
{"user":"u1","time":"2024-01-01T10:00:00Z","session":"b","event":"game"}
{"user":"u1","time":"2024-01-01T10:05:00Z","session":"b","event":"game"}
{"user":"u1","time":"2024-01-01T10:20:00Z","session":"b","event":"purchase","amount":"2.5"}
{"user":"u1","time":"2024-01-01T12:00:00Z","session":"c","event":"offer","offer":"gems","price":0.99}
{"user":"u1","time":"2024-01-01T12:30:00Z","session":"c","event":"game"}
{"user":"p/q r","time":"2024-01-01T09:00:00Z","session":"z","event":"game"}
"#;

/// The status of a GET of `path` written on the socket by hand.
async fn raw_status(base: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    // The server may answer and close before reading all of a huge request.
    let _ = socket.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {:?}", &text[..text.len().min(200)]))
}

struct Fixture {
    job: JobSpecs,
    store: Arc<MemoryStore>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let job = games_job(dir.path());
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, EVENTS).unwrap();
    let store = Arc::new(MemoryStore::new());
    let rows =
        tokio::task::block_in_place(|| load_events(&job, store.as_ref(), &events, dir.path()));
    assert_eq!(rows.len(), 1, "one anchor: session c");
    Fixture {
        job,
        store,
        _dir: dir,
    }
}

fn features(base: &str, identity: &str, query: &str) -> String {
    format!("{base}/v1/features/offers/{}{query}", enc(identity))
}

fn error_code(body: &Json) -> &str {
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "an error says why: {body}");
    body["error"]["code"].as_str().unwrap_or_default()
}

/// Blocks starting strictly before `at` count; one starting exactly at `at` does not, in any
/// window type (Chronon's bug was counting it online only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_starting_exactly_at_at_are_not_in_the_windows() {
    let f = fixture();
    let server = start(f.job.clone(), f.store.clone(), ServeOptions::default()).await;
    let client = reqwest::Client::new();
    let at_ten = features(&server.base, "u1", "?at=2024-01-01T10:00:00Z");
    let (status, body) = get(&client, &at_ten).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["features"]["last2.games"], json!(0), "{body}");
    assert_eq!(body["features"]["day.sessions"], json!([]), "{body}");
    assert_eq!(body["features"]["recent.sessions"], json!(0), "{body}");
    assert_eq!(body["features"]["derived.country"], json!("DE"), "{body}");
    assert_eq!(body["at"], "2024-01-01T10:00:00+00:00");

    let (_, body) = get(
        &client,
        &features(&server.base, "u1", "?at=2024-01-01T10:00:00.000001Z"),
    )
    .await;
    assert_eq!(body["features"]["last2.games"], json!(3), "{body}");
    assert_eq!(
        body["features"]["last2.first"],
        json!("a"),
        "first event first: {body}"
    );
    assert_eq!(
        body["features"]["day.sessions"],
        json!(["a", "b"]),
        "{body}"
    );
    assert_eq!(body["features"]["day.spend"], json!(2.5), "{body}");

    // `+02:00` written as is in a query string arrives as a space: read back as the offset.
    let (status, plus) = get(
        &client,
        &features(&server.base, "u1", "?at=2024-01-01T12:00:00.000001+02:00"),
    )
    .await;
    assert_eq!(status, 200, "{plus}");
    assert_eq!(plus["features"], body["features"]);

    // Named, the anchor block `c` is the anchor: `a` and `b` are the two before it; the label
    // (`next.games`) and what reads it (`derived.grows`) are never served.
    let (_, named) = get(&client, &features(&server.base, "u1", "?session_id=c")).await;
    assert_eq!(named["at"], "2024-01-01T12:00:00+00:00");
    assert_eq!(
        named["features"]["here.offer"],
        json!("gems@0.99"),
        "{named}"
    );
    assert_eq!(named["features"]["here.session"], json!("c"));
    assert!(named["features"].get("next.games").is_none());
    assert!(named["features"].get("derived.grows").is_none());
    assert_eq!(named["as_of"], "2024-01-01T12:30:00+00:00");
    assert_eq!(named["spec"], json!(f.job.hash));

    // A context replaces the anchor's fields: the candidate offer, converted to the declared
    // types as events are.
    let (_, candidate) = get(
        &client,
        &features(
            &server.base,
            "u1",
            "?session_id=c&context.offer=coins&context.price=4.99",
        ),
    )
    .await;
    assert_eq!(candidate["features"]["here.offer"], json!("coins@4.99"));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_json_errors_never_5xx() {
    let f = fixture();
    let server = start(
        f.job.clone(),
        f.store.clone(),
        ServeOptions {
            body_limit: 4096,
            max_batch: 3,
            ..ServeOptions::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let base = &server.base;
    let cases: Vec<(String, u16, &str)> = vec![
        (features(base, "u1", "?at=yesterday"), 400, "bad_at"),
        (features(base, "u1", "?at=2024-01-01"), 400, "bad_at"),
        (
            features(
                base,
                "u1",
                "?at=2024-01-01T00:00:00Z&at=2024-01-01T00:00:00Z",
            ),
            400,
            "bad_at",
        ),
        (
            format!("{base}/v1/features/offers/%FF%FE"),
            400,
            "invalid_identity",
        ),
        (
            format!("{base}/v1/features/offers/a%ZZ"),
            400,
            "invalid_identity",
        ),
        (format!("{base}/v1/blocks/a%2"), 400, "invalid_identity"),
        (
            features(base, &"x".repeat(5000), ""),
            400,
            "invalid_identity",
        ),
        (features(base, "nobody", ""), 404, "not_found"),
        (features(base, "u1\u{0}", ""), 404, "not_found"),
        (format!("{base}/v1/features/nope/u1"), 404, "unknown_window"),
        (features(base, "u1", "?sesion_id=c"), 400, "bad_query"),
        (features(base, "u1", "?context.nope=1"), 400, "bad_context"),
        (
            features(base, "u1", "?context.price=cheap"),
            400,
            "bad_context",
        ),
        (
            features(base, "u1", "?session_id=c&session_id=d"),
            400,
            "bad_block",
        ),
        (format!("{base}/v1/blocks/u1?limit=-1"), 400, "bad_query"),
        (
            format!("{base}/v1/blocks/u1?aggregate=sesion"),
            400,
            "bad_query",
        ),
        (
            format!("{base}/v1/blocks/u1?limit=99999999"),
            400,
            "bad_query",
        ),
        (format!("{base}/v1/blocks/nobody"), 404, "not_found"),
        (format!("{base}/v2/anything"), 404, "unknown_route"),
    ];
    for (url, status, code) in cases {
        let (got, body) = get(&client, &url).await;
        assert_eq!((got, error_code(&body)), (status, code), "{url}: {body}");
    }

    // A percent-encoded identity with a slash, a space and a plus is one identity.
    let (status, body) = get(&client, &features(base, "p/q r", "")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["identity"], "p/q r");

    // A URI far over any sane size: refused by the HTTP layer with a 4xx, not a crash.
    // (Sent by hand: HTTP clients refuse to build such a URI.)
    let status = raw_status(
        base,
        &format!("/v1/features/offers/{}", "y".repeat(200_000)),
    )
    .await;
    assert!((400..500).contains(&status), "{status}");

    let batch = format!("{base}/v1/features/offers");
    let posts: Vec<(String, u16, &str)> = vec![
        ("{".into(), 400, "bad_json"),
        ("[]".into(), 400, "bad_json"),
        (r#"{"identities": "u1"}"#.into(), 400, "bad_json"),
        (
            r#"{"identities": ["u1"], "extra": 1}"#.into(),
            400,
            "bad_json",
        ),
        (r#"{"identities": ["\ud800"]}"#.into(), 400, "bad_json"),
        (
            r#"{"identities": ["a","b","c","d"]}"#.into(),
            400,
            "too_many_identities",
        ),
        (
            r#"{"identities": ["u1"], "at": "soon"}"#.into(),
            400,
            "bad_at",
        ),
        (
            format!(r#"{{"identities": ["{}"]}}"#, "z".repeat(5000)),
            413,
            "body_too_large",
        ),
    ];
    for (body, status, code) in posts {
        let (got, answer) = post(&client, &batch, body.clone()).await;
        assert_eq!(
            (got, error_code(&answer)),
            (status, code),
            "{}: {answer}",
            &body[..body.len().min(80)]
        );
    }
    let response = client.get(&batch).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body: Json = response.json().await.unwrap();
    assert_eq!(error_code(&body), "method_not_allowed");

    // Partial success: 200, each failure says why.
    let (status, body) = post(
        &client,
        &batch,
        json!({"identities": [
            "u1",
            "nobody",
            {"identity": "u1", "block": {"session_id": "c"}, "context": {"price": "x"}},
        ]})
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "not_found", "error"], "{body}");
    assert_eq!(results[1]["error"]["code"], "not_found");
    assert_eq!(results[2]["error"]["code"], "bad_context");
    let (status, body) = post(&client, &batch, r#"{"identities": [""]}"#.into()).await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["error"]["code"], "invalid_identity");

    let metrics = server.metrics.render();
    assert!(!metrics.contains("status=\"5"), "no 5xx: {metrics}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_records_are_served_as_dtc_blocks_prints_them() {
    let f = fixture();
    let server = start(f.job.clone(), f.store.clone(), ServeOptions::default()).await;
    let client = reqwest::Client::new();
    let (status, body) = get(&client, &format!("{}/v1/blocks/u1", server.base)).await;
    assert_eq!(status, 200, "{body}");
    let records = body["records"].as_array().unwrap();
    let described: Vec<(String, Json)> = records
        .iter()
        .map(|r| {
            (
                r["aggregate"].as_str().unwrap().to_string(),
                r["dims"].clone(),
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            ("user".to_string(), json!([])),
            ("session".to_string(), json!(["a"])),
            ("session".to_string(), json!(["b"])),
            ("session".to_string(), json!(["c"])),
        ]
    );
    assert_eq!(
        records[3]["record"]["_start_time"],
        "2024-01-01T12:00:00+00:00"
    );
    assert_eq!(records[3]["record"]["price"], json!(0.99));
    assert_eq!(records[0]["record"]["country"], "DE");

    let (_, latest) = get(
        &client,
        &format!("{}/v1/blocks/u1?aggregate=session&limit=1", server.base),
    )
    .await;
    let records = latest["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{latest}");
    assert_eq!(records[0]["dims"], json!(["c"]));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_endpoint_but_healthz() {
    let f = fixture();
    let server = start(
        f.job.clone(),
        f.store.clone(),
        ServeOptions {
            auth_token: Some("s3cret-token".into()),
            ..ServeOptions::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let status = |response: reqwest::Response| response.status().as_u16();
    let healthz = format!("{}/healthz", server.base);
    assert_eq!(status(client.get(&healthz).send().await.unwrap()), 200);
    for path in [
        "/readyz",
        "/metrics",
        "/v1/features/offers/u1",
        "/v1/blocks/u1",
    ] {
        let url = format!("{}{path}", server.base);
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Json = response.json().await.unwrap();
        assert_eq!(error_code(&body), "unauthorized");
        assert!(
            !body.to_string().contains("s3cret"),
            "the token is never echoed"
        );
        for wrong in [
            "Bearer s3cret-tokeN",
            "Basic s3cret-token",
            "s3cret-token",
            "Bearer",
        ] {
            let response = client
                .get(&url)
                .header("authorization", wrong)
                .send()
                .await
                .unwrap();
            assert_eq!(status(response), 401, "{path} with {wrong:?}");
        }
        let response = client
            .get(&url)
            .header("authorization", "bearer s3cret-token")
            .send()
            .await
            .unwrap();
        assert_eq!(status(response), 200, "{path}");
    }
    let batch = client
        .post(format!("{}/v1/features/offers", server.base))
        .body(r#"{"identities":["u1"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(status(batch), 401);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_reads_misses_and_evaluation_errors() {
    let f = fixture();
    let server = start(f.job.clone(), f.store.clone(), ServeOptions::default()).await;
    let client = reqwest::Client::new();
    // `derived.spend_per_game` divides by zero when the sessions before hold no game.
    get(
        &client,
        &features(&server.base, "u1", "?at=2024-01-01T10:00:00Z"),
    )
    .await;
    get(&client, &features(&server.base, "u1", "")).await;
    get(&client, &features(&server.base, "nobody", "")).await;
    let response = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    for expected in [
        "dtc_serve_requests_total{endpoint=\"features\",status=\"200\"} 2",
        "dtc_serve_requests_total{endpoint=\"features\",status=\"404\"} 1",
        "dtc_serve_request_duration_seconds_count{endpoint=\"features\",status=\"200\"} 2",
        "dtc_serve_store_reads_total 3",
        "dtc_serve_store_read_duration_seconds_count 3",
        "dtc_serve_identities_not_found_total{window=\"offers\"} 1",
        "dtc_serve_features_served_total{window=\"offers\"} 2",
        "dtc_serve_evaluation_errors_total{window=\"offers\",field=\"derived.spend_per_game\"} 1",
        "# TYPE dtc_serve_request_duration_seconds histogram",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_log_holds_exactly_what_was_served() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("served.jsonl");
    let server = start(
        f.job.clone(),
        f.store.clone(),
        ServeOptions {
            served_log: Some(log.clone()),
            ..ServeOptions::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let (_, one) = get(&client, &features(&server.base, "u1", "?session_id=c")).await;
    get(&client, &features(&server.base, "nobody", "")).await;
    let (_, batch) = post(
        &client,
        &format!("{}/v1/features/offers", server.base),
        r#"{"identities":["p/q r","nobody"],"at":"2024-02-01T00:00:00Z"}"#.into(),
    )
    .await;
    server.stop().await.unwrap();
    let lines: Vec<Json> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one line per row served: {lines:?}");
    for key in ["identity", "window", "at", "features", "as_of", "spec"] {
        assert_eq!(lines[0][key], one[key], "{key}");
    }
    assert!(lines[0]["served_at"].is_string());
    assert_eq!(lines[1]["identity"], "p/q r");
    assert_eq!(lines[1]["features"], batch["results"][0]["features"]);
    assert_eq!(lines[1]["at"], "2024-02-01T00:00:00+00:00");
}

/// A store whose reads take `delay`, or fail.
struct SlowStore {
    inner: MemoryStore,
    delay: Duration,
    fail: bool,
    reads: AtomicU64,
}

impl BlockStore for SlowStore {
    fn load_identity(&self, identity: &str) -> Result<Vec<StoredRecord>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        if self.fail {
            return Err(StoreError::Service {
                service: "dynamodb",
                message: "throttled".into(),
                retryable: true,
                detail: String::new(),
            });
        }
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
        self.inner.write(batch)
    }
    fn identities(&self, after: Option<&str>, limit: usize) -> Result<IdentityPage, StoreError> {
        self.inner.identities(after, limit)
    }
    fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.checkpoint(partition)
    }
    fn run_state(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.run_state(prefix)
    }
    fn describe(&self) -> String {
        "slow store".into()
    }
}

fn slow(f: &Fixture, delay: Duration, fail: bool) -> Arc<SlowStore> {
    let inner = MemoryStore::new();
    let mut records = f.store.load_identity("u1").unwrap();
    records.extend(f.store.load_identity("p/q r").unwrap());
    inner
        .write(WriteBatch {
            puts: records,
            ..WriteBatch::default()
        })
        .unwrap();
    Arc::new(SlowStore {
        inner,
        delay,
        fail,
        reads: AtomicU64::new(0),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_lets_requests_in_flight_finish_and_refuses_new_ones() {
    let f = fixture();
    let store = slow(&f, Duration::from_millis(600), false);
    let mut server = start(f.job.clone(), store.clone(), ServeOptions::default()).await;
    let client = reqwest::Client::new();
    let url = features(&server.base, "u1", "");
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { get(&client, &url).await }
    });
    while store.reads.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.begin_stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a new connection during the drain is refused"
    );
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["identity"], "u1");
    server.finished().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_failing_stores_answer_503() {
    let f = fixture();
    let server = start(
        f.job.clone(),
        slow(&f, Duration::from_millis(400), false),
        ServeOptions {
            request_timeout: Duration::from_millis(50),
            ..ServeOptions::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let (status, body) = get(&client, &features(&server.base, "u1", "")).await;
    assert_eq!((status, error_code(&body)), (503, "timeout"));
    server.stop().await.unwrap();

    let server = start(
        f.job.clone(),
        slow(&f, Duration::ZERO, true),
        ServeOptions::default(),
    )
    .await;
    let (status, body) = get(&client, &features(&server.base, "u1", "")).await;
    assert_eq!((status, error_code(&body)), (503, "store_unavailable"));
    let (status, body) = post(
        &client,
        &format!("{}/v1/features/offers", server.base),
        r#"{"identities":["u1","p/q r"]}"#.into(),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (503, "store_unavailable"),
        "{body}"
    );
    server.stop().await.unwrap();
}

struct CatchingUp(std::sync::atomic::AtomicBool);

impl ReadinessCheck for CatchingUp {
    fn name(&self) -> &str {
        "kafka"
    }
    fn ready(&self) -> Result<(), String> {
        if self.0.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("partition 3 is 5000 events behind".into())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_every_readiness_check() {
    let f = fixture();
    let check = Arc::new(CatchingUp(false.into()));
    let server = start(
        f.job.clone(),
        f.store.clone(),
        ServeOptions {
            readiness: vec![check.clone()],
            ..ServeOptions::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/readyz", server.base);
    let (status, body) = get(&client, &url).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"status": "not_ready", "reasons": ["kafka: partition 3 is 5000 events behind"]})
    );
    check.0.store(true, Ordering::SeqCst);
    let (status, body) = get(&client, &url).await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));
    let (status, _) = get(&client, &format!("{}/healthz", server.base)).await;
    assert_eq!(status, 200);
    server.stop().await.unwrap();
}
