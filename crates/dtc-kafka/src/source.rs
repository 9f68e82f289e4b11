//! A consumer-group member as a [`RecordSource`].
//!
//! The group protocol is Kafka's own (`subscribe`), but the rebalance callback only records
//! what changed: the source announces new partitions ([`Polled::Partition`]) and waits for the
//! run's [`RecordSource::start_at`] (the store's checkpoint) before it assigns them, with those
//! offsets in the assignment itself (a seek right after an assign fails, librdkafka#3959). It
//! announces partitions being taken ([`Polled::Revoked`]) and lets them go only on the next
//! poll, after the run has committed what it holds of them. Records of partitions not assigned
//! (still in flight after a rebalance, librdkafka#1359) are dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use dtc_io::IoError;
use dtc_io::source::{PartitionId, PartitionInfo, Polled, RecordSource, SourceRecord, SourceStats};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::{KafkaError, KafkaUri, checkpoint_key};

/// How a consumer joins its group.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub uri: KafkaUri,
    pub group: String,
    /// librdkafka options, applied after dtc's defaults (so they can override them).
    pub options: Vec<(String, String)>,
    /// End once every assigned partition is read to the end it had when it was assigned.
    pub stop_at_end: bool,
    /// A longer record value is handed out cut to this length, marked truncated.
    pub max_record_bytes: usize,
    /// How long a poll waits for a record before it answers [`Polled::Idle`].
    pub poll_wait: Duration,
}

impl ConsumerOptions {
    pub fn new(uri: KafkaUri, group: impl Into<String>) -> ConsumerOptions {
        ConsumerOptions {
            uri,
            group: group.into(),
            options: Vec::new(),
            stop_at_end: false,
            max_record_bytes: 16 << 20,
            poll_wait: Duration::from_millis(100),
        }
    }
}

/// What the rebalance callback saw, for the source to act on outside of it.
enum Change {
    Assign(Vec<(String, i32)>),
    Revoke(Vec<(String, i32)>),
    Failed(String),
}

/// Collects rebalances; assigning is left to the source (see the module docs).
struct Context {
    changes: Mutex<VecDeque<Change>>,
    /// Set when the source is dropped: closing the consumer revokes its partitions through
    /// this callback and waits until they are let go, so then it lets them go itself.
    closing: AtomicBool,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        if self.closing.load(Ordering::SeqCst) {
            let _ = match consumer.rebalance_protocol() {
                RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
                _ => consumer.unassign(),
            };
            return;
        }
        let partitions = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let change = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Change::Assign(partitions),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Change::Revoke(partitions),
            other => Change::Failed(format!("rebalance failed: {other:?}")),
        };
        self.changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(change);
    }
}

/// A partition whose records are handed out.
struct Assigned {
    /// The offset of the next record expected.
    next: i64,
    /// With `stop_at_end`: the end the partition had when it was assigned.
    end: Option<i64>,
    /// Since when a fetch at the end of what was read returned nothing, with no record since.
    empty_since: Option<Instant>,
}

/// How long fetches at a partition's end must keep returning nothing before it counts as
/// read to the end: a broker's reported end can lag the records it serves (tansu's does), and
/// librdkafka reports an end from that report.
const END_QUIET: Duration = Duration::from_millis(500);

pub struct KafkaSource {
    consumer: BaseConsumer<Context>,
    options: ConsumerOptions,
    partitions: Vec<PartitionInfo>,
    topic_partitions: Vec<(String, i32)>,
    ids: HashMap<(String, i32), PartitionId>,
    assigned: HashMap<PartitionId, Assigned>,
    /// Announced, not yet answered with `start_at` or not yet assigned.
    to_announce: VecDeque<PartitionId>,
    to_assign: Vec<(PartitionId, Option<i64>)>,
    /// Announced as revoked; let go on the next poll.
    to_release: Option<Vec<PartitionId>>,
    payload: Vec<u8>,
    /// Records of partitions not assigned, dropped.
    dropped: u64,
}

impl KafkaSource {
    /// Joins the group and subscribes; partitions arrive with the group's first assignment.
    pub fn connect(options: ConsumerOptions) -> Result<KafkaSource, KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &options.uri.brokers)
            .set("group.id", &options.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "enable.partition.eof",
                if options.stop_at_end { "true" } else { "false" },
            );
        for (key, value) in &options.options {
            config.set(key, value);
        }
        let consumer: BaseConsumer<Context> = config
            .create_with_context(Context {
                changes: Mutex::new(VecDeque::new()),
                closing: AtomicBool::new(false),
            })
            .map_err(|e| KafkaError::client("creating the consumer", e))?;
        let topics: Vec<&str> = options.uri.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| KafkaError::client(format!("subscribing to {}", topics.join(",")), e))?;
        Ok(KafkaSource {
            consumer,
            options,
            partitions: Vec::new(),
            topic_partitions: Vec::new(),
            ids: HashMap::new(),
            assigned: HashMap::new(),
            to_announce: VecDeque::new(),
            to_assign: Vec::new(),
            to_release: None,
            payload: Vec::new(),
            dropped: 0,
        })
    }

    /// Records dropped because their partition was no longer assigned to this consumer.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The topic and partition of `id`.
    pub fn topic_partition(&self, id: PartitionId) -> Option<(&str, i32)> {
        self.topic_partitions
            .get(id as usize)
            .map(|(t, p)| (t.as_str(), *p))
    }

    fn id_of(&mut self, topic: &str, partition: i32) -> PartitionId {
        if let Some(id) = self.ids.get(&(topic.to_string(), partition)) {
            return *id;
        }
        let id = self.partitions.len() as PartitionId;
        self.partitions.push(PartitionInfo {
            name: format!("{topic}/{partition}"),
            checkpoint_key: Some(checkpoint_key(topic, partition)),
            size: None,
            lines: false,
        });
        self.topic_partitions.push((topic.to_string(), partition));
        self.ids.insert((topic.to_string(), partition), id);
        id
    }

    fn cooperative(&self) -> bool {
        matches!(
            self.consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        )
    }

    fn tpl(
        &self,
        ids: impl Iterator<Item = (PartitionId, Offset)>,
    ) -> Result<TopicPartitionList, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for (id, offset) in ids {
            if let Some((topic, partition)) = self.topic_partition(id) {
                tpl.add_partition_offset(topic, partition, offset)
                    .map_err(|e| KafkaError::client("building an assignment", e))?;
            }
        }
        Ok(tpl)
    }

    /// Assigns the announced partitions, each from its start offset.
    fn assign(&mut self) -> Result<(), KafkaError> {
        let new = std::mem::take(&mut self.to_assign);
        for &(id, start) in &new {
            let end = match (self.options.stop_at_end, self.topic_partition(id)) {
                (true, Some((topic, partition))) => Some(
                    self.consumer
                        .fetch_watermarks(topic, partition, Duration::from_secs(30))
                        .map_err(|e| {
                            KafkaError::client(format!("reading the end of {topic}/{partition}"), e)
                        })?
                        .1,
                ),
                _ => None,
            };
            self.assigned.insert(
                id,
                Assigned {
                    next: start.unwrap_or(0),
                    empty_since: None,
                    end,
                },
            );
        }
        let offset = |start: Option<i64>| start.map_or(Offset::Beginning, Offset::Offset);
        if self.cooperative() {
            let tpl = self.tpl(new.iter().map(|&(id, start)| (id, offset(start))))?;
            self.consumer
                .incremental_assign(&tpl)
                .map_err(|e| KafkaError::client("assigning partitions", e))
        } else {
            // An eager assignment replaces the whole one: every partition still held keeps
            // its position.
            let mut all: Vec<(PartitionId, Offset)> =
                new.iter().map(|&(id, start)| (id, offset(start))).collect();
            for (id, held) in &self.assigned {
                if !new.iter().any(|(n, _)| n == id) {
                    all.push((*id, Offset::Offset(held.next)));
                }
            }
            let tpl = self.tpl(all.into_iter())?;
            self.consumer
                .assign(&tpl)
                .map_err(|e| KafkaError::client("assigning partitions", e))
        }
    }

    fn release(&mut self, ids: &[PartitionId]) -> Result<(), KafkaError> {
        if self.cooperative() {
            let tpl = self.tpl(ids.iter().map(|&id| (id, Offset::Invalid)))?;
            self.consumer
                .incremental_unassign(&tpl)
                .map_err(|e| KafkaError::client("releasing partitions", e))
        } else {
            self.consumer
                .unassign()
                .map_err(|e| KafkaError::client("releasing partitions", e))
        }
    }

    fn next_change(&self) -> Option<Change> {
        self.consumer
            .context()
            .changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    /// Acts on a rebalance; returns what to tell the run, if anything.
    fn apply_change(&mut self, change: Change) -> Result<Option<Polled<'static>>, KafkaError> {
        match change {
            Change::Assign(partitions) => {
                for (topic, partition) in partitions {
                    let id = self.id_of(&topic, partition);
                    if self.assigned.contains_key(&id)
                        || self.to_assign.iter().any(|(i, _)| *i == id)
                    {
                        continue;
                    }
                    self.to_announce.push_back(id);
                    self.to_assign.push((id, None));
                }
                if self.to_assign.is_empty() && !self.cooperative() {
                    // An eager assignment of nothing new still has to be acknowledged.
                    self.assign()?;
                }
                Ok(None)
            }
            Change::Revoke(partitions) => {
                let ids: Vec<PartitionId> = partitions
                    .iter()
                    .map(|(topic, partition)| self.id_of(topic, *partition))
                    .collect();
                for id in &ids {
                    self.assigned.remove(id);
                    self.to_assign.retain(|(i, _)| i != id);
                    self.to_announce.retain(|i| i != id);
                }
                self.to_release = Some(ids.clone());
                Ok(Some(Polled::Revoked(ids)))
            }
            Change::Failed(why) => Err(KafkaError::Config(why)),
        }
    }

    fn all_done(&self) -> bool {
        self.options.stop_at_end
            && !self.assigned.is_empty()
            && self.to_assign.is_empty()
            && self.assigned.values().all(|a| {
                a.end.is_some_and(|end| a.next >= end)
                    && a.empty_since.is_some_and(|t| t.elapsed() >= END_QUIET)
            })
    }

    /// A fetch at the end returned nothing for partitions numbered `partition`.
    fn reached_end(&mut self, partition: i32) {
        for (id, held) in self.assigned.iter_mut() {
            let same = self
                .topic_partitions
                .get(*id as usize)
                .is_some_and(|(_, p)| *p == partition);
            if same && held.empty_since.is_none() {
                held.empty_since = Some(Instant::now());
            }
        }
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.consumer
            .context()
            .closing
            .store(true, Ordering::SeqCst);
    }
}

impl RecordSource for KafkaSource {
    fn poll(&mut self) -> Result<Polled<'_>, IoError> {
        loop {
            if let Some(id) = self.to_announce.pop_front() {
                return Ok(Polled::Partition(id));
            }
            if let Some(ids) = self.to_release.take() {
                self.release(&ids)?;
            }
            if !self.to_assign.is_empty() {
                self.assign()?;
            }
            if let Some(change) = self.next_change() {
                if let Some(polled) = self.apply_change(change)? {
                    return Ok(polled);
                }
                continue;
            }
            if self.all_done() {
                return Ok(Polled::End);
            }
            let Some(result) = self.consumer.poll(self.options.poll_wait) else {
                return Ok(Polled::Idle);
            };
            let message = match result {
                Ok(message) => message,
                Err(RdError::PartitionEOF(partition)) => {
                    self.reached_end(partition);
                    continue;
                }
                Err(e) => {
                    let code = e.rdkafka_error_code();
                    // Brokers going away and coming back are librdkafka's to handle; it retries.
                    if code.is_some_and(|c| {
                        matches!(
                            c,
                            rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure
                                | rdkafka::types::RDKafkaErrorCode::AllBrokersDown
                                | rdkafka::types::RDKafkaErrorCode::OperationTimedOut
                                | rdkafka::types::RDKafkaErrorCode::RequestTimedOut
                                | rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition
                        )
                    }) {
                        return Ok(Polled::Idle);
                    }
                    return Err(KafkaError::client("consuming", e).into());
                }
            };
            let key = (message.topic().to_string(), message.partition());
            let id = self.ids.get(&key).copied();
            let Some((id, held)) =
                id.and_then(|id| self.assigned.get_mut(&id).map(|held| (id, held)))
            else {
                self.dropped += 1;
                continue;
            };
            let offset = message.offset();
            if offset < held.next {
                // Fetched before the partition was (re)assigned from an older position.
                continue;
            }
            held.next = offset + 1;
            held.empty_since = None;
            let value = message.payload().unwrap_or(&[]);
            let truncated = value.len() > self.options.max_record_bytes;
            self.payload.clear();
            self.payload
                .extend_from_slice(&value[..value.len().min(self.options.max_record_bytes)]);
            return Ok(Polled::Record(SourceRecord {
                partition: id,
                offset,
                payload: &self.payload,
                truncated,
            }));
        }
    }

    fn partition(&self, id: PartitionId) -> Option<&PartitionInfo> {
        self.partitions.get(id as usize)
    }

    fn start_at(&mut self, id: PartitionId, offset: i64) -> Result<(), IoError> {
        if let Some(entry) = self.to_assign.iter_mut().find(|(i, _)| *i == id) {
            entry.1 = Some(offset.max(0));
        }
        Ok(())
    }

    fn stats(&self) -> SourceStats {
        SourceStats::default()
    }

    fn committed(&mut self, offsets: &[(PartitionId, i64)]) -> Result<(), IoError> {
        let held: Vec<(PartitionId, Offset)> = offsets
            .iter()
            .filter(|(id, _)| self.assigned.contains_key(id))
            .map(|&(id, next)| (id, Offset::Offset(next)))
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        let tpl = self.tpl(held.into_iter())?;
        // Only for lag tools: a failure here loses nothing, the store has the offsets.
        let _ = self.consumer.commit(&tpl, CommitMode::Async);
        Ok(())
    }

    fn lag(&mut self) -> Vec<(PartitionId, i64)> {
        let mut lags = Vec::new();
        for (id, held) in &self.assigned {
            if let Some((topic, partition)) = self.topic_partition(*id)
                && let Ok((_, high)) =
                    self.consumer
                        .fetch_watermarks(topic, partition, Duration::from_secs(1))
            {
                lags.push((*id, (high - held.next).max(0)));
            }
        }
        lags.sort_unstable();
        lags
    }
}
