//! The continuous run through a real Kafka protocol: librdkafka's mock cluster in a process of
//! its own (`dtc-test-broker`), so that the consumer can be killed while the broker lives on.
//!
//! - kill -9 of the consumer at random points, each followed by a restart, then a run to the
//!   end: the store and the window rows equal a batch run over the same events;
//! - two consumers of one group on DynamoDB Local, one killed mid-stream: the same result.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dtc_store::BlockStore;

mod common;

use common::kafka::Broker;

fn specs() -> PathBuf {
    common::repo().join("dtc-specs/offer-ai")
}

/// Offer-ai events for `users` users over `days` days, a few broken lines among them; about
/// 3.3 events per user and day.
fn events(users: u32, days: u32) -> Vec<String> {
    let mut lines = Vec::new();
    for day in 0..days {
        for u in 0..users {
            if (u + day) % 3 == 0 {
                continue;
            }
            let id = format!("U{u:05}");
            let session = format!("S{u}-{day}");
            let t = |minute: u32| {
                format!(
                    "2018-{:02}-{:02}T{:02}:{:02}:{:02}",
                    1 + day / 28,
                    1 + day % 28,
                    u % 24,
                    minute,
                    u % 60
                )
            };
            lines.push(format!(
                r#"{{"event_id": "app_launched", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "country": "DE", "signin_method": "fb"}}"#,
                t(0)
            ));
            lines.push(format!(
                r#"{{"event_id": "game_start", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}"}}"#,
                t(1)
            ));
            lines.push(format!(
                r#"{{"event_id": "game_end", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "won": {}}}"#,
                t(5),
                (u + day) % 2 == 0
            ));
            if (u + day) % 2 == 0 {
                lines.push(format!(
                    r#"{{"event_id": "offer_shown", "event_time": "{}", "customer_identifier": "{id}", "session_id": "{session}", "offer_type": "coins", "offer_price": "4.99", "offer_purchased": true}}"#,
                    t(6)
                ));
            }
            if (u * 7 + day) % 97 == 0 {
                lines.push(format!(
                    r#"{{"event_id": "broken", "customer_identifier": "{id}""#
                ));
            }
        }
    }
    lines
}

struct Scenario {
    dir: tempfile::TempDir,
    broker: Broker,
    topic: String,
    events: usize,
}

impl Scenario {
    fn new(users: u32, days: u32) -> Scenario {
        Scenario::on(users, days, Broker::start("events", 4), "events")
    }

    fn on(users: u32, days: u32, broker: Broker, topic: &str) -> Scenario {
        let dir = tempfile::tempdir().expect("tempdir");
        let lines = events(users, days);
        std::fs::write(dir.path().join("events.jsonl"), lines.join("\n") + "\n").expect("events");
        let out = common::dtc()
            .current_dir(dir.path())
            .arg("produce")
            .arg("--streaming")
            .arg(specs().join("offer-ai-streaming.yml"))
            .args(["--source", "events.jsonl", "--to", &broker.uri(topic), "-q"])
            .output()
            .expect("produce");
        assert!(out.status.success(), "{}", common::text(&out.stderr));
        Scenario {
            dir,
            broker,
            topic: topic.to_string(),
            events: lines.len(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A batch run over the same events, into `store`.
    fn batch(&self, store: &str) {
        let out = common::dtc()
            .current_dir(self.path())
            .arg("transform")
            .arg("--streaming")
            .arg(specs().join("offer-ai-streaming.yml"))
            .args(["--source", "events.jsonl", "--store", store, "-q"])
            .args(["--dead-letter", &format!("{store}-dead.jsonl")])
            .output()
            .expect("batch");
        assert!(out.status.success(), "{}", common::text(&out.stderr));
    }

    fn consumer(&self, store: &str, group: &str, extra: &[&str]) -> Command {
        let mut cmd = common::dtc();
        cmd.current_dir(self.path())
            .arg("transform")
            .arg("--streaming")
            .arg(specs().join("offer-ai-streaming.yml"))
            .args(["--source", &self.broker.uri(&self.topic), "--group", group])
            .args([
                "--store",
                store,
                "--dead-letter",
                &format!("{store}-dead.jsonl"),
            ])
            .args(["--commit-interval", "100ms", "-q"])
            .args(["--kafka-option", "session.timeout.ms=6000"])
            .args(["--kafka-option", "heartbeat.interval.ms=500"])
            .args(extra);
        cmd
    }

    /// The window rows of a window run over `store`, sorted.
    fn rows(&self, store: &str) -> Vec<String> {
        let mut rows: Vec<String> = common::kafka::offer_ai_window_rows(self.path(), store)
            .lines()
            .map(str::to_string)
            .collect();
        rows.sort();
        rows
    }

    /// The dead letters' raw records and reasons, sorted.
    fn dead_letters(&self, store: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.path().join(format!("{store}-dead.jsonl")))
            .unwrap_or_default();
        let mut letters: Vec<String> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a dead letter");
                format!("{} {}", v["reason"], v["raw"])
            })
            .collect();
        letters.sort();
        letters
    }
}

/// Every record of an embedded store but the continuous run's side records: key, columns and
/// creation ordinal (versions and writer marks tell how often a record was written, not what
/// it holds).
fn records(store: &dyn BlockStore) -> Vec<String> {
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

fn embedded(dir: &Path, store: &str) -> Vec<String> {
    records(&dtc_store::EmbeddedStore::open(&dir.join(store)).expect("open store"))
}

fn killed(output: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    output.status.signal() == Some(9)
}

/// A seeded generator, so that a failing sequence of crash points can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Kills the consumer at `crashes` random points, restarting it each time, then runs it to
/// the end, and compares with the batch run.
fn crash_and_compare(users: u32, days: u32, crashes: u32, seed: u64) {
    let scenario = Scenario::new(users, days);
    scenario.batch("batch");
    let per_run = (scenario.events as u64 / u64::from(crashes.max(1))).max(10);
    let mut rng = Rng(seed);
    let mut kills = 0;
    let mut points = Vec::new();
    for i in 0..crashes {
        let point = match rng.next(6) {
            0 => format!("runtime.commit.before:{}", 1 + rng.next(3)),
            1 => format!("runtime.commit.written:{}", 1 + rng.next(3)),
            2 => format!("runtime.commit.durable:{}", 1 + rng.next(3)),
            3 => format!("runtime.publish.dead_letters:{}", 1 + rng.next(2)),
            _ => format!("runtime.live.record:{}", 1 + rng.next(per_run)),
        };
        // A new group each time: the store holds the offsets, and a new member of the old
        // group would wait for the killed one's session to time out.
        let out = scenario
            .consumer(
                "live",
                &format!("crash-{i}"),
                &["--stop-at-end", "--failpoint", &point],
            )
            .output()
            .expect("consumer");
        if killed(&out) {
            kills += 1;
        } else {
            assert!(
                out.status.success(),
                "{point}: {}",
                common::text(&out.stderr)
            );
        }
        points.push(point);
    }
    assert!(
        kills >= crashes * 3 / 4,
        "only {kills} of {crashes} runs were killed: {points:?}"
    );
    let out = scenario
        .consumer("live", "final", &["--stop-at-end"])
        .output()
        .expect("consumer");
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    let want = embedded(scenario.path(), "batch");
    let got = embedded(scenario.path(), "live");
    let missing = want.iter().filter(|r| !got.contains(r)).count();
    let extra: Vec<&String> = got.iter().filter(|r| !want.contains(r)).collect();
    let first_missing = want.iter().find(|r| !got.contains(r));
    assert!(
        missing == 0 && extra.is_empty(),
        "after crashes at {points:?}: {missing} records missing, {} differ (first: {:?}, \
         expected {:?})",
        extra.len(),
        extra.first(),
        first_missing
    );
    assert_eq!(scenario.rows("live"), scenario.rows("batch"));
    assert_eq!(
        scenario.dead_letters("live"),
        scenario.dead_letters("batch")
    );
}

#[test]
fn a_consumer_killed_at_random_points_and_restarted_equals_a_batch_run() {
    // About 20 000 events over 4 partitions, 8 crashes; the soak below does 100 000 and 20+.
    crash_and_compare(900, 10, 8, 0x00DD_BA11);
}

/// `scripts/kafka-soak.sh`: 100 000 events, `DTC_KAFKA_SOAK_CRASHES` crashes (20 by default).
#[test]
#[ignore = "minutes long: run by scripts/kafka-soak.sh"]
fn kafka_crash_soak() {
    let crashes = std::env::var("DTC_KAFKA_SOAK_CRASHES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let seed = std::env::var("DTC_KAFKA_SOAK_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(42);
    crash_and_compare(3000, 15, crashes, seed);
}

/// Whether the DynamoDB tests run: skipped with a notice without DynamoDB Local, failed when
/// CI=true (a CI run must never pass them silently).
fn dynamodb_enabled() -> bool {
    if std::env::var("DTC_TEST_DYNAMODB").as_deref() == Ok("1") {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but DTC_TEST_DYNAMODB is not 1: run the tests through scripts/test.sh"
    );
    eprintln!("skipped: DTC_TEST_DYNAMODB is not 1 (scripts/test.sh starts DynamoDB Local)");
    false
}

/// All records of a DynamoDB table, as [`records`] renders them.
fn dynamodb_records(table: &str) -> Vec<String> {
    let store = dtc_aws::DynamoStore::open(table, dtc_aws::DynamoOptions::default())
        .expect("open the table");
    records(&store)
}

#[test]
fn two_consumers_of_one_group_on_dynamodb_one_killed_mid_stream_equal_a_batch_run() {
    if !dynamodb_enabled() {
        return;
    }
    let scenario = Scenario::new(600, 8);
    scenario.batch("batch");
    let table = format!(
        "kafka-group-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let store = format!("dynamodb://{table}");
    let spawn = |extra: &[&str]| {
        let mut args = vec!["--create-table"];
        args.extend_from_slice(extra);
        scenario
            .consumer(&store, "pair", &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("consumer")
    };
    let mut first = spawn(&[]);
    let mut second = spawn(&[]);
    // Both work for a while; then one dies without a word.
    std::thread::sleep(Duration::from_secs(4));
    first.kill().expect("kill");
    first.wait().expect("wait");
    // The survivor takes the dead one's partitions once its session times out.
    std::thread::sleep(Duration::from_secs(10));
    // SAFETY: kill(2) on a child of this test.
    unsafe {
        libc::kill(second.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while second.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "SIGTERM did not stop the consumer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(second.wait().expect("wait").success(), "SIGTERM exits 0");
    let out = scenario
        .consumer(&store, "pair", &["--stop-at-end"])
        .output()
        .expect("consumer");
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    let want = embedded(scenario.path(), "batch");
    let got = dynamodb_records(&table);
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the DynamoDB store differs from the batch run's"
    );
}

/// Against tansu (scripts/local-services.sh starts it), the second, separate Kafka protocol
/// implementation: its group joins take seconds and its reported high watermark can lag the
/// records it serves, which `--stop-at-end` must not take for the end.
#[test]
fn a_run_to_the_end_of_a_tansu_topic_equals_a_batch_run() {
    let Ok(brokers) = std::env::var("DTC_KAFKA_BROKERS") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but DTC_KAFKA_BROKERS is not set: run the tests through scripts/test.sh"
        );
        eprintln!("skipped: DTC_KAFKA_BROKERS is not set (scripts/test.sh starts tansu)");
        return;
    };
    let topic = format!(
        "tansu-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let scenario = Scenario::on(300, 6, Broker::external(&brokers, &topic, 4), &topic);
    scenario.batch("batch");
    let out = scenario
        .consumer("live", "tansu", &["--stop-at-end"])
        .output()
        .expect("consumer");
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    assert_eq!(
        embedded(scenario.path(), "live"),
        embedded(scenario.path(), "batch")
    );
    assert_eq!(scenario.rows("live"), scenario.rows("batch"));
}
