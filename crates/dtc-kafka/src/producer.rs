//! Keyed, idempotent production (`dtc produce`): records of one key land in one partition, in
//! the order they were sent, each once even when librdkafka retries a request.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};

use crate::KafkaError;

/// Counts the records the brokers did not take, with the first reason: a send that was queued
/// is not yet a record delivered.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| error.to_string());
        }
    }
}

pub struct Producer {
    producer: BaseProducer<Deliveries>,
    topic: String,
    sent: u64,
}

impl Producer {
    /// A producer to `topic` on `brokers`; `options` (librdkafka's) override dtc's defaults.
    pub fn connect(
        brokers: &str,
        topic: &str,
        options: &[(String, String)],
    ) -> Result<Producer, KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            .set("compression.type", "lz4")
            .set("queue.buffering.max.messages", "500000");
        for (key, value) in options {
            config.set(key, value);
        }
        let producer = config
            .create_with_context(Deliveries::default())
            .map_err(|e| KafkaError::client("creating the producer", e))?;
        Ok(Producer {
            producer,
            topic: topic.to_string(),
            sent: 0,
        })
    }

    /// Queues one record; waits while librdkafka's queue is full.
    pub fn send(&mut self, key: &[u8], value: &[u8]) -> Result<(), KafkaError> {
        loop {
            let record = BaseRecord::<[u8], [u8]>::to(&self.topic)
                .key(key)
                .payload(value);
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    if self.sent.is_multiple_of(1024) {
                        self.producer.poll(Duration::ZERO);
                    }
                    return Ok(());
                }
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    return Err(KafkaError::client(
                        format!("producing to `{}`", self.topic),
                        e,
                    ));
                }
            }
        }
    }

    /// Waits until every queued record is acknowledged by the brokers; fails if any was not.
    pub fn flush(&mut self, timeout: Duration) -> Result<u64, KafkaError> {
        self.producer
            .flush(timeout)
            .map_err(|e| KafkaError::client(format!("flushing to `{}`", self.topic), e))?;
        let context = self.producer.context();
        let failed = context.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = context
                .first
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            return Err(KafkaError::Config(format!(
                "{failed} of {} records were not delivered to `{}` (first: {first})",
                self.sent, self.topic
            )));
        }
        Ok(self.sent)
    }
}
