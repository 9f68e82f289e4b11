//! `dtc serve --source kafka://…`: the feature API and the continuous run in one process, on
//! one embedded store, against a real Kafka protocol implementation (librdkafka's mock
//! cluster, in a `dtc-test-broker` process), over real HTTP:
//!
//! - `/readyz` answers 503 until the run has caught up, then 200; the features served then
//!   equal the training rows of a batch run over the same events;
//! - events produced while it serves are reflected within about a commit interval;
//! - `/metrics` counts the events read and rejected;
//! - SIGTERM exits 0, and a restart serves the same values without reading an event again;
//! - a run that fails stops the server with exit code 1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dtc_store::BlockStore;
use serde_json::Value as Json;

mod common;

use common::kafka::Broker;

fn specs() -> PathBuf {
    common::repo().join("dtc-specs/offer-ai")
}

/// Offer-ai events of `users` users on days `days`, with a line that is not JSON now and
/// then; returns the lines and how many are broken.
fn events(users: u32, days: std::ops::Range<u32>) -> (Vec<String>, usize) {
    let mut lines = Vec::new();
    let mut broken = 0;
    for day in days {
        for u in 0..users {
            if (u + day) % 3 == 0 {
                continue;
            }
            let id = format!("U{u:05}");
            let session = format!("S{u}-{day}");
            let t = |minute: u32| {
                format!(
                    "2018-01-{:02}T{:02}:{:02}:{:02}",
                    1 + day,
                    u % 24,
                    minute,
                    u % 60
                )
            };
            lines.push(format!(
                r#"{{"event_id": "app_launched", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "country": "DE", "signin_method": "fb"}}"#,
                t(0)
            ));
            for (minute, won) in [(1, true), (5, (u + day) % 2 == 0)] {
                lines.push(format!(
                    r#"{{"event_id": "game_start", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}"}}"#,
                    t(minute)
                ));
                lines.push(format!(
                    r#"{{"event_id": "game_end", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "won": {won}}}"#,
                    t(minute + 2)
                ));
            }
            if (u + day) % 2 == 0 {
                lines.push(format!(
                    r#"{{"event_id": "offer_shown", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "offer_type": "coins", "offer_price": "4.99", "offer_purchased": {}}}"#,
                    t(8),
                    u % 3 == 0
                ));
            }
            if (u * 7 + day) % 41 == 0 {
                broken += 1;
                lines.push(format!(
                    r#"{{"event_id": "broken", "customer_identifier": "{id}""#
                ));
            }
        }
    }
    (lines, broken)
}

struct Scenario {
    dir: tempfile::TempDir,
    broker: Broker,
}

impl Scenario {
    fn new() -> Scenario {
        Scenario {
            dir: tempfile::tempdir().expect("tempdir"),
            broker: Broker::start("events", 4),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Appends `lines` to `all.jsonl` (every event produced so far) and produces them.
    fn produce(&self, lines: &[String]) {
        let file = self.path().join("batch.jsonl");
        std::fs::write(&file, lines.join("\n") + "\n").expect("events");
        let mut all = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("all.jsonl"))
            .expect("all.jsonl");
        all.write_all((lines.join("\n") + "\n").as_bytes())
            .expect("all.jsonl");
        let out = common::dtc()
            .current_dir(self.path())
            .arg("produce")
            .arg("--streaming")
            .arg(specs().join("offer-ai-streaming.yml"))
            .args([
                "--source",
                "batch.jsonl",
                "--to",
                &self.broker.uri("events"),
                "-q",
            ])
            .output()
            .expect("produce");
        assert!(out.status.success(), "{}", common::text(&out.stderr));
    }

    /// The training rows of a batch run over every event produced so far, into a new store
    /// `store`: JSON objects with `identity`, `anchor_time` and the columns.
    fn batch_rows(&self, store: &str) -> Vec<serde_json::Map<String, Json>> {
        let out = common::dtc()
            .current_dir(self.path())
            .arg("transform")
            .arg("--streaming")
            .arg(specs().join("offer-ai-streaming.yml"))
            .args(["--source", "all.jsonl", "--store", store, "-q"])
            .args(["--dead-letter", &format!("{store}-dead.jsonl")])
            .output()
            .expect("batch");
        assert!(out.status.success(), "{}", common::text(&out.stderr));
        common::kafka::offer_ai_window_rows(self.path(), store)
            .lines()
            .map(|l| match serde_json::from_str(l) {
                Ok(Json::Object(row)) => row,
                other => panic!("a row: {l}: {other:?}"),
            })
            .collect()
    }

    /// `dtc serve --source kafka://…` on store `live`, on a free port.
    fn serve(&self, extra: &[&str]) -> Server {
        let mut child = common::dtc()
            .current_dir(self.path())
            .arg("serve")
            .arg("--streaming")
            .arg(specs().join("offer-ai-streaming.yml"))
            .arg("--window")
            .arg(specs().join("offer-ai-window.yml"))
            .args(["--store", "live", "--listen", "127.0.0.1:0"])
            .args(["--source", &self.broker.uri("events"), "--group", "serve"])
            .args(["--commit-interval", "1s", "--threads", "2"])
            .args(["--kafka-option", "session.timeout.ms=6000"])
            .args(["--kafka-option", "heartbeat.interval.ms=500"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("dtc serve");
        let (address, listening) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("dtc serve: listening on http://") {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = address.send(addr);
                }
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = listening
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("dtc serve did not listen: {}", log.lock().unwrap()));
        Server { child, addr, log }
    }
}

struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// One HTTP/1.1 request on a connection of its own: the status and the body.
    fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: \
             application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let (head, body) = response.split_once("\r\n\r\n").expect("a response");
        assert!(
            !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "{head}"
        );
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        (status, body.to_string())
    }

    fn json(&self, method: &str, path: &str, body: &str) -> (u16, Json) {
        let (status, text) = self.request(method, path, body);
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        (status, json)
    }

    fn until_ready(&self) -> Duration {
        let began = Instant::now();
        loop {
            let (status, body) = self.json("GET", "/readyz", "");
            if status == 200 {
                return began.elapsed();
            }
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "never ready: {body}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn metrics(&self) -> String {
        let (status, text) = self.request("GET", "/metrics", "");
        assert_eq!(status, 200);
        text
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: kill(2) on a child of this test.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // The stderr reader ends with the process.
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "SIGTERM did not stop dtc serve: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The offer-ai features that do not read the anchor block (which a bare time leaves null).
const FEATURES: &[&str] = &[
    "last_session.games_played",
    "last_session.win_ratio",
    "prev_week.purchase_amount",
    "user.country",
    "user.facebook_connected",
];

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The features served at each row's anchor time, in one batch request per anchor time:
/// the responses' `results`, in `rows` order.
fn served(server: &Server, rows: &[serde_json::Map<String, Json>]) -> Vec<Json> {
    rows.iter()
        .map(|row| {
            let path = format!(
                "/v1/features/offer_ai_window/{}?at={}",
                percent(row["identity"].as_str().expect("identity")),
                percent(row["anchor_time"].as_str().expect("anchor_time"))
            );
            let (status, body) = server.json("GET", &path, "");
            assert_eq!(status, 200, "{path}: {body}");
            body
        })
        .collect()
}

/// Rows whose served features differ from the training row's, described.
fn differences(rows: &[serde_json::Map<String, Json>], served: &[Json]) -> Vec<String> {
    let mut out = Vec::new();
    for (row, body) in rows.iter().zip(served) {
        for name in FEATURES {
            if body["features"][*name] != row[*name] {
                out.push(format!(
                    "{} at {}: {name} served {}, trained {}",
                    row["identity"], row["anchor_time"], body["features"][*name], row[*name]
                ));
            }
        }
    }
    out
}

/// A metric's value (the first line starting with `name` and a space).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .parse()
        .expect("a number")
}

/// Every record of an embedded store but the continuous run's side records.
fn records(path: &Path) -> Vec<String> {
    let store = dtc_store::EmbeddedStore::open(path).expect("open store");
    let mut out = Vec::new();
    for identity in store.all_identities().expect("identities") {
        for r in store.load_identity(&identity).expect("load") {
            if &*r.key.aggregate != "_live" {
                out.push(format!("{:?} {:?} {}", r.key, r.columns, r.order));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn serve_with_a_kafka_source_is_ready_once_caught_up_and_serves_what_a_batch_run_trains_on() {
    let scenario = Scenario::new();
    let (first, broken_first) = events(300, 0..5);
    scenario.produce(&first);
    let rows = scenario.batch_rows("batch-first");
    assert!(rows.len() > 100, "{} rows", rows.len());

    let server = scenario.serve(&[]);
    // The first commit comes a commit interval (1 s) after the run starts at the earliest.
    let (status, body) = server.json("GET", "/readyz", "");
    assert_eq!(status, 503, "not ready before the first commit: {body}");
    let reason = body["reasons"][0].as_str().unwrap_or_default();
    assert!(reason.starts_with("ingest: "), "{body}");
    let took = server.until_ready();
    eprintln!("ready {took:.2?} after listening");
    let diff = differences(&rows, &served(&server, &rows));
    assert!(
        diff.is_empty(),
        "{} of {} rows differ once ready, first: {:?}",
        diff.len(),
        rows.len(),
        diff.first()
    );
    let text = server.metrics();
    assert_eq!(
        metric(&text, "dtc_ingest_events_read_total"),
        first.len() as f64
    );
    assert_eq!(
        metric(
            &text,
            "dtc_ingest_events_rejected_total{reason=\"invalid_json\"}"
        ),
        broken_first as f64
    );
    assert_eq!(metric(&text, "dtc_ingest_ready"), 1.0);
    assert!(
        text.contains("dtc_ingest_lag_records{partition=\"events/0\"}"),
        "{text}"
    );

    // Events produced while it serves: the next days of the same users, and new users.
    let (second, broken_second) = events(400, 5..7);
    let newcomer = "/v1/blocks/U00399";
    assert_eq!(
        server.json("GET", newcomer, "").0,
        404,
        "a user of the new events"
    );
    scenario.produce(&second);
    let produced = Instant::now();
    // The time from the producer's acknowledgement to a served record of a new user: the
    // continuous run's freshness, about one commit interval (1 s) plus a poll.
    while server.json("GET", newcomer, "").0 != 200 {
        assert!(
            produced.elapsed() < Duration::from_secs(15),
            "the new user never appeared: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "a new user served {:.2?} after the events were produced",
        produced.elapsed()
    );
    let rows = scenario.batch_rows("batch-all");
    let mut served_now;
    loop {
        served_now = served(&server, &rows);
        let diff = differences(&rows, &served_now);
        if diff.is_empty() {
            break;
        }
        assert!(
            produced.elapsed() < Duration::from_secs(60),
            "{} of {} rows still differ, first: {:?}\n{}",
            diff.len(),
            rows.len(),
            diff.first(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = server.metrics();
    let total = first.len() + second.len();
    assert_eq!(metric(&text, "dtc_ingest_events_read_total"), total as f64);
    assert_eq!(
        metric(
            &text,
            "dtc_ingest_events_rejected_total{reason=\"invalid_json\"}"
        ),
        (broken_first + broken_second) as f64
    );
    assert!(metric(&text, "dtc_ingest_commits_total") >= 2.0, "{text}");
    assert!(
        metric(&text, "dtc_ingest_commit_duration_seconds_count") >= 2.0,
        "{text}"
    );

    let (status, log) = server.terminate();
    assert!(status.success(), "SIGTERM exits 0: {status:?}\n{log}");
    assert!(log.contains("dtc serve: stopped"), "{log}");
    // The run committed everything it read: the store is the batch run's.
    assert_eq!(
        records(&scenario.path().join("live")),
        records(&scenario.path().join("batch-all")),
        "the store after SIGTERM differs from a batch run's over the same events"
    );

    // A restart serves the same values and reads nothing again: nothing lost, nothing twice.
    let server = scenario.serve(&[]);
    server.until_ready();
    assert_eq!(served(&server, &rows), served_now);
    assert_eq!(
        metric(&server.metrics(), "dtc_ingest_events_read_total"),
        0.0
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn a_failed_ingest_stops_the_server_with_exit_code_1() {
    let scenario = Scenario::new();
    let (lines, _) = events(20, 0..1);
    scenario.produce(&lines);
    // The dead letters' directory is a file: the run cannot start.
    std::fs::write(scenario.path().join("not-a-dir"), "").expect("file");
    let mut server = scenario.serve(&["--dead-letter", "not-a-dir/dead.jsonl"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "still serving: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(100));
    let log = server.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("error: the continuous run failed, shutting down:"),
        "{log}"
    );
}
