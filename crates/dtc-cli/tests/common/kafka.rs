//! The Kafka broker of the CLI's Kafka tests: librdkafka's mock cluster in a process of its own
//! (`dtc-test-broker`), so that a consumer can be killed while the broker lives on, or a broker
//! already running (tansu, started by `scripts/local-services.sh`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The broker: a `dtc-test-broker` process (killed when dropped), or one already running.
pub struct Broker {
    child: Option<Child>,
    bootstrap: String,
}

impl Broker {
    pub fn start(topic: &str, partitions: u32) -> Broker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dtc-test-broker"))
            .args(["--partitions", &partitions.to_string(), topic])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start dtc-test-broker");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the broker's address");
        let bootstrap = line
            .trim()
            .strip_prefix("bootstrap ")
            .expect("bootstrap line")
            .to_string();
        Broker {
            child: Some(child),
            bootstrap,
        }
    }

    /// A broker already running at `bootstrap`, with a new topic of `partitions`.
    pub fn external(bootstrap: &str, topic: &str, partitions: i32) -> Broker {
        dtc_kafka::create_topic(bootstrap, topic, partitions, &[]).expect("create the topic");
        Broker {
            child: None,
            bootstrap: bootstrap.to_string(),
        }
    }

    pub fn uri(&self, topic: &str) -> String {
        format!("kafka://{}/{topic}", self.bootstrap)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The training rows (JSON lines) of the offer-ai window spec over the blocks in `store`, a
/// store path relative to `dir`: what a Kafka run is compared with a batch run by.
pub fn offer_ai_window_rows(dir: &Path, store: &str) -> String {
    let specs = super::repo().join("dtc-specs/offer-ai");
    let out = super::dtc()
        .current_dir(dir)
        .arg("transform")
        .arg("--streaming")
        .arg(specs.join("offer-ai-streaming.yml"))
        .arg("--window")
        .arg(specs.join("offer-ai-window.yml"))
        .args(["--store", store, "--format", "jsonl", "-q"])
        .output()
        .expect("window run");
    assert!(out.status.success(), "{}", super::text(&out.stderr));
    super::text(&out.stdout)
}
