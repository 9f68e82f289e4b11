//! Kafka for dtc, and the only crate that links librdkafka (through `rdkafka`):
//!
//! - [`source::KafkaSource`]: a consumer-group member as a [`dtc_io::source::RecordSource`].
//!   Partitions start where the store says ([`dtc_io::source::RecordSource::start_at`], set in
//!   the assignment itself), records of partitions no longer assigned are dropped, and Kafka's
//!   committed offsets are only written after the store's commit, for lag tools.
//! - [`producer::Producer`]: idempotent, keyed production for `dtc produce`.
//! - [`broker::TestBroker`]: librdkafka's mock cluster, for tests and the example (wrapped
//!   as `dtc-test-broker` by the dtc-cli crate).
//!
//! The crate prints nothing and reads no environment variables.

pub mod broker;
pub mod producer;
pub mod source;

use std::fmt;

/// What went wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The command line or a properties file does not describe a usable configuration.
    #[error("{0}")]
    Config(String),
    /// librdkafka refused or failed; `context` says what dtc was doing.
    #[error("kafka: {context}: {source}")]
    Client {
        context: String,
        source: rdkafka::error::KafkaError,
    },
}

impl KafkaError {
    fn client(context: impl Into<String>, source: rdkafka::error::KafkaError) -> KafkaError {
        KafkaError::Client {
            context: context.into(),
            source,
        }
    }

    /// Whether the same request later may succeed (a broker down, a timeout).
    pub fn retryable(&self) -> bool {
        match self {
            KafkaError::Config(_) => false,
            KafkaError::Client { source, .. } => source.rdkafka_error_code().is_none_or(|code| {
                !matches!(
                    code,
                    rdkafka::types::RDKafkaErrorCode::InvalidArgument
                        | rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition
                        | rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
                        | rdkafka::types::RDKafkaErrorCode::GroupAuthorizationFailed
                        | rdkafka::types::RDKafkaErrorCode::SaslAuthenticationFailed
                )
            }),
        }
    }
}

impl From<KafkaError> for dtc_io::IoError {
    fn from(e: KafkaError) -> dtc_io::IoError {
        let cause = match &e {
            KafkaError::Config(_) => dtc_io::ServiceCause::Setup,
            _ if e.retryable() => dtc_io::ServiceCause::Unreachable,
            _ => dtc_io::ServiceCause::Refused,
        };
        dtc_io::IoError::Service {
            message: e.to_string(),
            detail: format!("{e:?}"),
            cause,
        }
    }
}

/// Where a Kafka source or sink is: `kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaUri {
    pub brokers: String,
    pub topics: Vec<String>,
}

impl KafkaUri {
    pub fn is_kafka(location: &str) -> bool {
        location.starts_with("kafka://")
    }

    pub fn parse(location: &str) -> Result<KafkaUri, KafkaError> {
        let bad = |why: &str| {
            KafkaError::Config(format!(
                "`{location}` {why}: use kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC]"
            ))
        };
        let rest = location
            .strip_prefix("kafka://")
            .ok_or_else(|| bad("is not a kafka:// location"))?;
        let (brokers, topics) = rest.split_once('/').ok_or_else(|| bad("names no topic"))?;
        if brokers.is_empty() || brokers.split(',').any(|b| !b.contains(':')) {
            return Err(bad("needs HOST:PORT for each broker"));
        }
        let topics: Vec<String> = topics.split(',').map(|t| t.trim().to_string()).collect();
        if topics.iter().any(|t| t.is_empty() || t.contains('/')) {
            return Err(bad("has an empty or malformed topic"));
        }
        Ok(KafkaUri {
            brokers: brokers.to_string(),
            topics,
        })
    }
}

impl fmt::Display for KafkaUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kafka://{}/{}", self.brokers, self.topics.join(","))
    }
}

/// librdkafka options (`key=value`) from a properties file's text: one per line, `#` and `!`
/// comments, blank lines ignored. Security settings (`security.protocol`, `sasl.*`, `ssl.*`)
/// pass through like any other.
pub fn parse_properties(text: &str, origin: &str) -> Result<Vec<(String, String)>, KafkaError> {
    let mut options = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        options.push(
            parse_option(line)
                .map_err(|why| KafkaError::Config(format!("{origin}:{}: {why}", n + 1)))?,
        );
    }
    Ok(options)
}

/// One `key=value` option.
pub fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("`{text}` is not key=value")),
    }
}

/// Creates `topic` with `partitions` partitions (replication 1) unless it exists: for tests,
/// the example and benches against a broker that does not create topics as asked.
pub fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    options: &[(String, String)],
) -> Result<(), KafkaError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in options {
        config.set(key, value);
    }
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| KafkaError::client("creating an admin client", e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| KafkaError::Config(format!("starting a runtime: {e}")))?;
    let results = runtime
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .map_err(|e| KafkaError::client(format!("creating topic `{topic}`"), e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::Config(format!(
                    "creating topic `{name}` failed: {code}"
                )));
            }
        }
    }
    Ok(())
}

/// The checkpoint name of a topic's partition in a block store.
pub fn checkpoint_key(topic: &str, partition: i32) -> String {
    format!("kafka:{topic}/{partition}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_brokers_and_topics() {
        let uri = KafkaUri::parse("kafka://a:9092,b:9093/events,more").unwrap();
        assert_eq!(uri.brokers, "a:9092,b:9093");
        assert_eq!(uri.topics, ["events", "more"]);
        assert_eq!(uri.to_string(), "kafka://a:9092,b:9093/events,more");
        for bad in [
            "kafka://a:9092",
            "kafka://a/t",
            "kafka://a:1/",
            "kafka://a:1/t,",
            "x",
        ] {
            assert!(KafkaUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn properties_files_are_key_value_lines() {
        let options = parse_properties(
            "# security\nsecurity.protocol=SASL_SSL\n\n! other comment\nsasl.mechanism = PLAIN\n",
            "client.properties",
        )
        .unwrap();
        assert_eq!(
            options,
            [
                ("security.protocol".into(), "SASL_SSL".into()),
                ("sasl.mechanism".into(), "PLAIN".into())
            ]
        );
        let err = parse_properties("a=1\nnonsense\n", "p").unwrap_err();
        assert_eq!(err.to_string(), "p:2: `nonsense` is not key=value");
    }
}
