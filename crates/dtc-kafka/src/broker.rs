//! A Kafka broker in this process: librdkafka's mock cluster (a real implementation of the
//! Kafka protocol on a loopback port). For tests, the example and the bench; the
//! `dtc-test-broker` binary wraps it so a test can kill a consumer while the broker lives on.

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer as _};

use crate::KafkaError;

/// A running mock cluster; it stops when dropped.
pub struct TestBroker {
    /// The client that owns the mock cluster (librdkafka ties the cluster to a handle).
    owner: BaseProducer,
    bootstrap: String,
}

impl TestBroker {
    pub fn start(brokers: u16) -> Result<TestBroker, KafkaError> {
        let owner: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", brokers.max(1).to_string())
            .create()
            .map_err(|e| KafkaError::client("starting the mock cluster", e))?;
        // SAFETY: the handle is alive for the whole call; the function returns the cluster it
        // owns (or null) and the cluster lives as long as the handle, which `self` keeps.
        let cluster =
            unsafe { rdkafka::bindings::rd_kafka_handle_mock_cluster(owner.client().native_ptr()) };
        if cluster.is_null() {
            return Err(KafkaError::Config(
                "librdkafka did not create a mock cluster".into(),
            ));
        }
        // Groups otherwise wait 3 s before their first assignment, for every test and run.
        // SAFETY: `cluster` is the live, non-null cluster of `owner`.
        unsafe { rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0) };
        let bootstrap = owner
            .client()
            .mock_cluster()
            .map(|c| c.bootstrap_servers())
            .ok_or_else(|| KafkaError::Config("the mock cluster has no address".into()))?;
        Ok(TestBroker { owner, bootstrap })
    }

    /// `HOST:PORT[,HOST:PORT]`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), KafkaError> {
        let cluster = self
            .owner
            .client()
            .mock_cluster()
            .ok_or_else(|| KafkaError::Config("the mock cluster is gone".into()))?;
        cluster
            .create_topic(topic, partitions, 1)
            .map_err(|e| KafkaError::client(format!("creating topic `{topic}`"), e))
    }
}
