//! The DynamoDB [`BlockStore`]: one table per store, laid out as `docs/storage.md` and
//! `docs/aws.md` describe.
//!
//! - `pk` (S): the identity. `sk` (B): `esc(aggregate) dims`, the order-preserving key bytes of
//!   `dtc_store::encoding` without the identity. `lsi_start` (B, blocks only): `esc(aggregate)
//!   time(start) dims`, the sort key of the local secondary index `by_start`, so `blocks()` is
//!   one key-condition Query in start order.
//! - `record` (B): the record bytes of `dtc_store::encoding` (header + value-codec row), which
//!   round-trip every value exactly; `version` (N) for conditional writes; `aggregate` and
//!   `start_time` (S) only for people reading the table; `expires_at` (N) when retention is set.
//! - Checkpoints live in the reserved partition `pk = "\0dtc"` under `sk = 00 02 <name>`, which
//!   no record key can equal; run state under `sk = 00 03 <name>`, its value in `state` (B).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem,
};
use chrono::TimeDelta;
use dtc_plan::value::Value;
use dtc_store::encoding;
use dtc_store::{
    BlockStore, Checkpoint, IdentityPage, RecordKey, RecordKind, Segment, StoreError, StoredRecord,
    TimeRange, WriteBatch,
};

use crate::errors::{one_line, summarize};
use crate::retry::RetryPolicy;
use dtc_io::ServiceCause;

const SERVICE: &str = "dynamodb";
const PK: &str = "pk";
const SK: &str = "sk";
const LSI_SK: &str = "lsi_start";
const INDEX: &str = "by_start";
const RECORD: &str = "record";
const VERSION: &str = "version";
const EXPIRES_AT: &str = "expires_at";
const OFFSET: &str = "offset";
/// The partition of checkpoint items; their sort keys start with `00 02`, which no escaped
/// aggregate name does, so even an identity spelled like this cannot collide with them.
const CHECKPOINT_PK: &str = "\u{0}dtc";
const CHECKPOINT_SK_PREFIX: [u8; 2] = [0x00, 0x02];
/// Run-state items share the checkpoints' partition under this prefix.
const RUN_STATE_SK_PREFIX: [u8; 2] = [0x00, 0x03];
const STATE: &str = "state";
/// DynamoDB's limits: items and bytes per TransactWriteItems, bytes per item.
const TRANSACTION_ITEMS: usize = 100;
const TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
const MAX_ITEM_BYTES: usize = 400 * 1024;

/// How a [`DynamoStore`] is opened and how hard it tries.
#[derive(Clone)]
pub struct DynamoOptions {
    /// Create the table (on-demand billing) if it does not exist; otherwise a missing table is
    /// an error that says to pass `--create-table`.
    pub create_table: bool,
    /// Blocks expire this many days after their `_end_time` (DynamoDB TTL on `expires_at`,
    /// enabled on the table when set).
    pub retention_days: Option<u32>,
    /// Write requests in flight at once within one batch.
    pub max_in_flight: usize,
    pub retry: RetryPolicy,
    /// Overrides the endpoint of the AWS chain (tests, DynamoDB Local).
    pub endpoint_url: Option<String>,
    /// Failures to inject (tests of the retry paths).
    pub faults: Option<Arc<FaultInjection>>,
}

impl Default for DynamoOptions {
    fn default() -> Self {
        DynamoOptions {
            create_table: false,
            retention_days: None,
            max_in_flight: 8,
            retry: RetryPolicy::default(),
            endpoint_url: None,
            faults: None,
        }
    }
}

/// Failures injected into write requests before they reach DynamoDB, so the retry paths can
/// be tested against a real server: throttling that DynamoDB Local never produces.
#[derive(Debug, Default)]
pub struct FaultInjection {
    throttle: AtomicU32,
}

impl FaultInjection {
    /// The next `n` TransactWriteItems requests fail with
    /// `ProvisionedThroughputExceededException` without being sent.
    pub fn throttle_next(&self, n: u32) {
        self.throttle.store(n, Ordering::SeqCst);
    }

    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Requests sent, for cost reports (`BlockStore::usage`) and tests.
#[derive(Debug, Default)]
pub struct RequestCounts {
    pub transact_write: AtomicU64,
    pub get_item: AtomicU64,
    pub query: AtomicU64,
    pub scan: AtomicU64,
    /// Items written (puts and deletes, checkpoints included), each counted once.
    pub items_written: AtomicU64,
    /// Requests repeated after throttling or a transient failure.
    pub retries: AtomicU64,
}

impl RequestCounts {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(TransactWriteItems, GetItem, Query, Scan)` requests so far.
    pub fn requests(&self) -> [u64; 4] {
        [
            &self.transact_write,
            &self.get_item,
            &self.query,
            &self.scan,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// A [`BlockStore`] on one DynamoDB table. See the module docs for the item layout.
pub struct DynamoStore {
    inner: Arc<Inner>,
    runtime: &'static tokio::runtime::Runtime,
}

struct Inner {
    client: Client,
    table: String,
    options: DynamoOptions,
    counts: RequestCounts,
}

/// A failed request: the message, and whether repeating it may succeed.
struct Failure {
    /// One line.
    message: String,
    retryable: bool,
    code: Option<String>,
    cause: ServiceCause,
    /// The SDK's whole report.
    detail: String,
}

impl Failure {
    fn into_store_error(self, table: &str) -> StoreError {
        if self.code.as_deref() == Some("ResourceNotFoundException") {
            return missing_table(table);
        }
        if matches!(self.cause, ServiceCause::Credentials | ServiceCause::Setup) {
            return StoreError::Setup(self.message);
        }
        StoreError::Service {
            service: SERVICE,
            message: self.message,
            retryable: self.retryable,
            detail: self.detail,
        }
    }
}

fn missing_table(table: &str) -> StoreError {
    StoreError::Setup(format!(
        "DynamoDB table `{table}` does not exist: pass --create-table to create it \
         (on-demand billing), or check AWS_REGION and the endpoint"
    ))
}

fn sdk_failure<E>(operation: &str, table: &str, err: SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (retryable, code) = match &err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => (true, None),
        SdkError::DispatchFailure(d) => (d.is_io() || d.is_timeout(), None),
        SdkError::ServiceError(s) => {
            let code = s.err().code().map(str::to_string);
            (code.as_deref().is_some_and(is_retryable_code), code)
        }
        _ => (false, None),
    };
    let summary = summarize(&err);
    Failure {
        message: one_line(
            "DynamoDB",
            operation,
            &format!("DynamoDB table `{table}`"),
            &summary,
        ),
        retryable: retryable || summary.cause.retryable(),
        code,
        cause: summary.cause,
        detail: summary.detail,
    }
}

fn is_retryable_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "TransactionInProgressException"
            | "TransactionConflictException"
    )
}

fn throttled(operation: &str) -> Failure {
    Failure {
        message: format!("{operation}: ProvisionedThroughputExceededException (injected)"),
        retryable: true,
        code: Some("ProvisionedThroughputExceededException".into()),
        cause: ServiceCause::Throttled,
        detail: String::new(),
    }
}

/// One item to write, with what its error messages need.
#[derive(Clone)]
struct ItemWrite {
    request: WriteKind,
    size: usize,
    /// `aggregate[dims] of identity `id``, or the checkpoint's name.
    label: String,
    /// Puts with version > 1 are conditional on the stored version being lower.
    version: u64,
    /// A fenced write's condition on a checkpoint item: this partition's stored offset must
    /// be this (`None`: no item), see `WriteBatch::expect_checkpoints`.
    fence: Option<(String, Option<i64>)>,
}

#[derive(Clone)]
enum WriteKind {
    Put(HashMap<String, AttributeValue>),
    Delete(HashMap<String, AttributeValue>),
    /// Writes nothing: only its `fence` is checked, in the transaction it is part of.
    Check(HashMap<String, AttributeValue>),
}

impl DynamoStore {
    /// Connects to `table` through the standard AWS chain, checks (or with
    /// [`DynamoOptions::create_table`], creates) the table, and enables TTL when retention is
    /// set.
    pub fn open(table: &str, options: DynamoOptions) -> Result<DynamoStore, StoreError> {
        if table.is_empty() || table.contains('/') {
            return Err(StoreError::Setup(format!(
                "`dynamodb://{table}` does not name a table: use dynamodb://TABLE"
            )));
        }
        let runtime = crate::runtime().map_err(StoreError::Setup)?;
        let inner = runtime.block_on(async {
            let sdk = crate::load_sdk_config().await.map_err(StoreError::Setup)?;
            let mut config = aws_sdk_dynamodb::config::Builder::from(&sdk)
                // Retries are this store's own (bounded, with jitter, and counted), so the
                // SDK's are off: one SDK call is one request.
                .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
                .timeout_config(
                    aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(5))
                        .operation_attempt_timeout(Duration::from_secs(30))
                        .build(),
                );
            if let Some(url) = &options.endpoint_url {
                config = config.endpoint_url(url);
            }
            let inner = Inner {
                client: Client::from_conf(config.build()),
                table: table.to_string(),
                options,
                counts: RequestCounts::default(),
            };
            inner.prepare_table().await?;
            Ok::<_, StoreError>(inner)
        })?;
        Ok(DynamoStore {
            inner: Arc::new(inner),
            runtime,
        })
    }

    /// Requests sent so far.
    pub fn counts(&self) -> &RequestCounts {
        &self.inner.counts
    }
}

impl Inner {
    async fn prepare_table(&self) -> Result<(), StoreError> {
        let described = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await;
        match described {
            Ok(out) => {
                let keys: Vec<(String, String)> = out
                    .table()
                    .map(|t| {
                        t.key_schema()
                            .iter()
                            .map(|k| (k.attribute_name().to_string(), k.key_type().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let expected = [
                    (PK.to_string(), "HASH".to_string()),
                    (SK.to_string(), "RANGE".to_string()),
                ];
                if keys != expected {
                    return Err(StoreError::Setup(format!(
                        "DynamoDB table `{}` has key schema {keys:?}, not a dtc block store \
                         (pk HASH, sk RANGE): use another table name",
                        self.table
                    )));
                }
            }
            Err(err) => {
                let failure = sdk_failure("DescribeTable", &self.table, err);
                if failure.code.as_deref() != Some("ResourceNotFoundException") {
                    return Err(failure.into_store_error(&self.table));
                }
                if !self.options.create_table {
                    return Err(missing_table(&self.table));
                }
                self.create_table().await?;
            }
        }
        if self.options.retention_days.is_some() {
            self.enable_ttl().await?;
        }
        Ok(())
    }

    async fn create_table(&self) -> Result<(), StoreError> {
        let attribute = |name: &str, ty: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ty)
                .build()
                .map_err(build_error)
        };
        let key = |name: &str, ty: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(ty)
                .build()
                .map_err(build_error)
        };
        let index = LocalSecondaryIndex::builder()
            .index_name(INDEX)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(LSI_SK, KeyType::Range)?)
            // ALL: blocks() is answered by the index alone, one Query instead of a Query and
            // a GetItem per block, at the cost of storing blocks twice.
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(build_error)?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute(PK, ScalarAttributeType::S)?)
            .attribute_definitions(attribute(SK, ScalarAttributeType::B)?)
            .attribute_definitions(attribute(LSI_SK, ScalarAttributeType::B)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .local_secondary_indexes(index)
            .send()
            .await;
        if let Err(err) = created {
            let failure = sdk_failure("CreateTable", &self.table, err);
            // Another worker of the same backfill created it first: fine, wait for it below.
            if failure.code.as_deref() != Some("ResourceInUseException") {
                return Err(failure.into_store_error(&self.table));
            }
        }
        for _ in 0..600 {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| sdk_failure("DescribeTable", &self.table, e))
                .map_err(|f| f.into_store_error(&self.table))?;
            if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(StoreError::Service {
            service: SERVICE,
            message: format!(
                "table `{}` did not become ACTIVE within 2 minutes",
                self.table
            ),
            retryable: true,
            detail: String::new(),
        })
    }

    async fn enable_ttl(&self) -> Result<(), StoreError> {
        let current = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| sdk_failure("DescribeTimeToLive", &self.table, e))
            .map_err(|f| f.into_store_error(&self.table))?;
        let ttl = current.time_to_live_description();
        let enabled = ttl
            .and_then(|d| d.time_to_live_status())
            .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
        if enabled {
            let attribute = ttl.and_then(|d| d.attribute_name()).unwrap_or_default();
            if attribute != EXPIRES_AT {
                return Err(StoreError::Setup(format!(
                    "DynamoDB table `{}` has TTL on `{attribute}`, but dtc's retention uses \
                     `{EXPIRES_AT}`",
                    self.table
                )));
            }
            return Ok(());
        }
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(EXPIRES_AT)
            .build()
            .map_err(build_error)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| sdk_failure("UpdateTimeToLive", &self.table, e))
            .map_err(|f| f.into_store_error(&self.table))?;
        Ok(())
    }

    fn store_name(&self) -> String {
        format!("DynamoDB table `{}`", self.table)
    }

    /// The item of a record, its size as DynamoDB counts it, and its label for messages.
    fn put_item(&self, record: &StoredRecord) -> Result<ItemWrite, StoreError> {
        let label = label(&record.key);
        if record.key.identity.is_empty() {
            return Err(StoreError::InvalidWrite(format!(
                "record {label}: DynamoDB keys cannot be empty strings"
            )));
        }
        let key = encoding::encode_key(&record.key)?;
        let identity_len = encoding::identity_prefix(&record.key.identity).len();
        let bytes = encoding::encode_record(record)?;
        let mut item = HashMap::new();
        item.insert(
            PK.into(),
            AttributeValue::S(record.key.identity.to_string()),
        );
        item.insert(
            SK.into(),
            AttributeValue::B(Blob::new(&key.bytes[identity_len..])),
        );
        item.insert(
            "aggregate".into(),
            AttributeValue::S(record.key.aggregate.to_string()),
        );
        item.insert(
            "kind".into(),
            AttributeValue::S(
                match record.kind {
                    RecordKind::Identity => "identity",
                    RecordKind::Block => "block",
                }
                .into(),
            ),
        );
        item.insert(
            VERSION.into(),
            AttributeValue::N(record.version.to_string()),
        );
        if let Some(start) = record.start_time {
            let index_key = key.index_key(start);
            item.insert(
                LSI_SK.into(),
                AttributeValue::B(Blob::new(&index_key[identity_len..])),
            );
            item.insert(
                "start_time".into(),
                AttributeValue::S(start.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            );
            if let Some(days) = self.options.retention_days {
                let end = match record.columns.get(2) {
                    Some(Value::DateTime(end)) => *end,
                    _ => start,
                };
                let expires = end + TimeDelta::days(i64::from(days));
                item.insert(
                    EXPIRES_AT.into(),
                    AttributeValue::N(expires.timestamp().to_string()),
                );
            }
        }
        item.insert(RECORD.into(), AttributeValue::B(Blob::new(bytes)));
        let size = item_size(&item);
        if size > MAX_ITEM_BYTES {
            return Err(StoreError::InvalidWrite(format!(
                "record {label} is {size} bytes as a DynamoDB item, over the 400 KB item limit: \
                 keep fewer or smaller values in this aggregate"
            )));
        }
        Ok(ItemWrite {
            request: WriteKind::Put(item),
            size,
            label,
            version: record.version,
            fence: None,
        })
    }

    fn delete_item(&self, key: &RecordKey) -> Result<ItemWrite, StoreError> {
        let encoded = encoding::encode_key(key)?;
        let identity_len = encoding::identity_prefix(&key.identity).len();
        let item = key_item(&key.identity, &encoded.bytes[identity_len..]);
        Ok(ItemWrite {
            size: item_size(&item),
            request: WriteKind::Delete(item),
            label: label(key),
            version: 0,
            fence: None,
        })
    }

    fn checkpoint_item(
        partition: &str,
        checkpoint: Checkpoint,
        fence: Option<Option<i64>>,
    ) -> ItemWrite {
        let mut item = key_item(CHECKPOINT_PK, &checkpoint_sk(partition));
        item.insert(
            OFFSET.into(),
            AttributeValue::N(checkpoint.offset.to_string()),
        );
        ItemWrite {
            size: item_size(&item),
            request: WriteKind::Put(item),
            label: format!("checkpoint `{partition}`"),
            version: 0,
            fence: fence.map(|expected| (partition.to_string(), expected)),
        }
    }

    /// A condition on `partition`'s checkpoint item, writing nothing.
    fn fence_item(partition: &str, expected: Option<i64>) -> ItemWrite {
        let item = key_item(CHECKPOINT_PK, &checkpoint_sk(partition));
        ItemWrite {
            size: item_size(&item),
            request: WriteKind::Check(item),
            label: format!("checkpoint `{partition}`"),
            version: 0,
            fence: Some((partition.to_string(), expected)),
        }
    }

    fn run_state_item(name: &str, value: Option<&[u8]>) -> ItemWrite {
        let mut sk = RUN_STATE_SK_PREFIX.to_vec();
        sk.extend_from_slice(name.as_bytes());
        let mut item = key_item(CHECKPOINT_PK, &sk);
        let label = format!("run state `{name}`");
        match value {
            Some(bytes) => {
                item.insert(STATE.into(), AttributeValue::B(Blob::new(bytes)));
                ItemWrite {
                    size: item_size(&item),
                    request: WriteKind::Put(item),
                    label,
                    version: 0,
                    fence: None,
                }
            }
            None => ItemWrite {
                size: item_size(&item),
                request: WriteKind::Delete(item),
                label,
                version: 0,
                fence: None,
            },
        }
    }

    /// The run-state items whose names start with `prefix`, in name order.
    async fn run_state(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut start_sk = RUN_STATE_SK_PREFIX.to_vec();
        start_sk.extend_from_slice(prefix.as_bytes());
        let mut found = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#p = :p AND begins_with(#s, :s)")
                .expression_attribute_names("#p", PK)
                .expression_attribute_names("#s", SK)
                .expression_attribute_values(":p", AttributeValue::S(CHECKPOINT_PK.into()))
                .expression_attribute_values(":s", AttributeValue::B(Blob::new(start_sk.clone())))
                .set_exclusive_start_key(start.take());
            let out = self
                .retrying("Query", || {
                    RequestCounts::bump(&self.counts.query);
                    query.clone().send()
                })
                .await?;
            for item in out.items.unwrap_or_default() {
                let (Some(AttributeValue::B(sk)), Some(AttributeValue::B(state))) =
                    (item.get(SK), item.get(STATE))
                else {
                    return Err(StoreError::corrupt(
                        self.store_name(),
                        "a run-state item without a binary `sk` and `state`",
                    ));
                };
                let name = sk
                    .as_ref()
                    .strip_prefix(&RUN_STATE_SK_PREFIX[..])
                    .and_then(|n| std::str::from_utf8(n).ok())
                    .ok_or_else(|| {
                        StoreError::corrupt(self.store_name(), "a run-state item with a bad name")
                    })?;
                found.push((name.to_string(), state.as_ref().to_vec()));
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(found),
            }
        }
    }

    async fn write(self: &Arc<Self>, batch: WriteBatch) -> Result<(), StoreError> {
        batch.validate()?;
        // Deletes apply before puts and a later put of a key wins, so per key only the last
        // operation matters; DynamoDB also refuses two operations on one key in a request.
        let mut order: Vec<(String, Vec<u8>)> = Vec::new();
        let mut ops: HashMap<(String, Vec<u8>), ItemWrite> = HashMap::new();
        let mut add = |identity: &str, key: &RecordKey, op: ItemWrite| -> Result<(), StoreError> {
            let sk = encoding::encode_key(key)?.bytes;
            let k = (identity.to_string(), sk);
            if ops.insert(k.clone(), op).is_none() {
                order.push(k);
            }
            Ok(())
        };
        for key in &batch.deletes {
            if key.identity.is_empty() {
                continue;
            }
            add(&key.identity, key, self.delete_item(key)?)?;
        }
        for record in &batch.puts {
            add(&record.key.identity, &record.key, self.put_item(record)?)?;
        }
        // Records grouped by identity, in the order identities first appear.
        let mut identities: Vec<&str> = Vec::new();
        let mut by_identity: HashMap<&str, Vec<ItemWrite>> = HashMap::new();
        for key in &order {
            let Some(op) = ops.remove(key) else { continue };
            let group = by_identity.entry(key.0.as_str()).or_insert_with(|| {
                identities.push(key.0.as_str());
                Vec::new()
            });
            group.push(op);
        }
        let records: Vec<Vec<ItemWrite>> = identities
            .iter()
            .filter_map(|identity| by_identity.remove(identity))
            .collect();
        let mut checkpoints: Vec<(String, Checkpoint)> = Vec::new();
        for (partition, checkpoint) in batch.checkpoints {
            checkpoints.retain(|(p, _)| *p != partition);
            checkpoints.push((partition, checkpoint));
        }
        let mut states: Vec<(&str, Option<&[u8]>)> = Vec::new();
        for (name, value) in &batch.run_state {
            states.retain(|(n, _)| *n != name.as_str());
            states.push((name.as_str(), value.as_deref()));
        }
        let run_state: Vec<ItemWrite> = states
            .into_iter()
            .map(|(name, value)| Self::run_state_item(name, value))
            .collect();
        let expected = |partition: &str| {
            batch
                .expect_checkpoints
                .iter()
                .rev()
                .find(|(p, _)| p == partition)
                .map(|(_, offset)| *offset)
        };
        let checkpoints: Vec<ItemWrite> = checkpoints
            .iter()
            .map(|(p, c)| Self::checkpoint_item(p, *c, expected(p)))
            .collect();
        // Fenced partitions without a checkpoint in the batch are checked by items of their
        // own; the others' checkpoint puts carry the condition.
        let mut fences: Vec<ItemWrite> = Vec::new();
        for (partition, offset) in &batch.expect_checkpoints {
            if !fences
                .iter()
                .any(|f| f.fence.as_ref().is_some_and(|(p, _)| p == partition))
            {
                fences.push(Self::fence_item(partition, *offset));
            }
        }
        let unwritten_fences: Vec<ItemWrite> = fences
            .iter()
            .filter(|f| {
                !checkpoints
                    .iter()
                    .any(|c| c.fence.as_ref().map(|(p, _)| p) == f.fence.as_ref().map(|(p, _)| p))
            })
            .cloned()
            .collect();
        let all = || {
            records
                .iter()
                .flatten()
                .chain(&run_state)
                .chain(&checkpoints)
                .chain(&unwritten_fences)
        };
        let total = all().count();
        if total == 0 {
            return Ok(());
        }
        if total <= TRANSACTION_ITEMS && all().map(|w| w.size).sum::<usize>() <= TRANSACTION_BYTES {
            // Small batches (the engine's per-identity flushes, a run's commit) are one
            // transaction: atomic, like the embedded store's writes.
            return self.transact(all().cloned().collect()).await;
        }
        // Larger batches cannot be one transaction. Each identity's records go in one (with
        // other whole identities), several in flight: a resumed run tells the identities a
        // crashed run wrote by their writer mark, which needs all or none of an identity's
        // records. Then the run state, then the checkpoints, each only after everything before
        // it is stored: a run's commit keeps its checkpoints in its run state too, so a crash
        // between the two leaves them where a restart finds them.
        // A fenced batch checks its fences in every transaction, so that a writer that lost its
        // partitions writes nothing once the new owner has moved their checkpoints.
        let room = TRANSACTION_ITEMS.saturating_sub(fences.len()).max(1);
        let fenced = |transactions: Vec<Vec<ItemWrite>>| -> Vec<Vec<ItemWrite>> {
            transactions
                .into_iter()
                .map(|mut items| {
                    items.extend(fences.iter().cloned());
                    items
                })
                .collect()
        };
        self.run_transactions(fenced(pack_whole_groups(records, room)))
            .await?;
        self.run_transactions(fenced(pack_whole_groups(vec![run_state], room)))
            .await?;
        let mut last = pack_whole_groups(vec![checkpoints], room);
        if let Some(first) = last.first_mut() {
            first.extend(unwritten_fences);
        }
        self.run_transactions(last).await
    }

    /// Sends transactions, [`DynamoOptions::max_in_flight`] at a time.
    async fn run_transactions(
        self: &Arc<Self>,
        transactions: Vec<Vec<ItemWrite>>,
    ) -> Result<(), StoreError> {
        let limit = Arc::new(tokio::sync::Semaphore::new(
            self.options.max_in_flight.max(1),
        ));
        let mut set = tokio::task::JoinSet::new();
        for items in transactions {
            let this = Arc::clone(self);
            let limit = Arc::clone(&limit);
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                this.transact(items).await
            });
        }
        let mut first_error = None;
        while let Some(done) = set.join_next().await {
            let result = done.unwrap_or_else(|e| {
                Err(StoreError::Service {
                    service: SERVICE,
                    message: format!("a write task of table `{}` failed: {e}", self.table),
                    retryable: false,
                    detail: String::new(),
                })
            });
            if let Err(e) = result {
                // The other requests still run to the end, so no request is left half-done
                // behind the error; the first error is the one reported.
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// One TransactWriteItems: atomic, puts with version > 1 conditional on a lower stored
    /// version. Throttling and transaction conflicts are retried with the same client token,
    /// so a retry of a transaction that did commit is not applied (or refused) twice.
    async fn transact(&self, items: Vec<ItemWrite>) -> Result<(), StoreError> {
        let count = items.len() as u64;
        let requests = items
            .iter()
            .map(|w| self.transact_item(w))
            .collect::<Result<Vec<_>, _>>()?;
        let token = client_token();
        let policy = self.options.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.send_transaction(requests.clone(), &token).await {
                Ok(()) => {
                    self.counts
                        .items_written
                        .fetch_add(count, Ordering::Relaxed);
                    return Ok(());
                }
                Err(TransactFailure::Conflict(index)) => {
                    if let Some((partition, _)) = items.get(index).and_then(|w| w.fence.as_ref()) {
                        return Err(StoreError::Fenced {
                            partitions: vec![partition.clone()],
                        });
                    }
                    let label = items.get(index).map_or("a record", |w| w.label.as_str());
                    return Err(StoreError::Conflict(format!(
                        "{label} in table `{}` has a stored version not below the one being \
                         written ({}): another writer changed it since it was read; is another \
                         dtc run writing the same identities?",
                        self.table,
                        items.get(index).map_or(0, |w| w.version)
                    )));
                }
                Err(TransactFailure::Other(failure)) => failure,
            };
            if !failure.retryable {
                return Err(failure.into_store_error(&self.table));
            }
            if attempt >= policy.max_attempts.max(1) {
                return Err(StoreError::Service {
                    service: SERVICE,
                    message: format!(
                        "{} (gave up after {attempt} attempts; nothing of this transaction of \
                         {count} items was written, and its checkpoints were not advanced)",
                        failure.message
                    ),
                    retryable: true,
                    detail: String::new(),
                });
            }
            RequestCounts::bump(&self.counts.retries);
            tokio::time::sleep(policy.delay(attempt)).await;
        }
    }

    async fn send_transaction(
        &self,
        items: Vec<TransactWriteItem>,
        token: &str,
    ) -> Result<(), TransactFailure> {
        if let Some(faults) = &self.options.faults
            && FaultInjection::take(&faults.throttle)
        {
            return Err(TransactFailure::Other(throttled("TransactWriteItems")));
        }
        RequestCounts::bump(&self.counts.transact_write);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        if let SdkError::ServiceError(service) = &err
            && let TransactWriteItemsError::TransactionCanceledException(cancel) = service.err()
        {
            let reasons = cancel.cancellation_reasons();
            if let Some(index) = reasons
                .iter()
                .position(|r| r.code() == Some("ConditionalCheckFailed"))
            {
                return Err(TransactFailure::Conflict(index));
            }
            let retryable = reasons.iter().all(|r| {
                matches!(
                    r.code(),
                    None | Some("None" | "ThrottlingError" | "TransactionConflict")
                        | Some("ProvisionedThroughputExceeded")
                )
            });
            let codes: Vec<&str> = reasons.iter().filter_map(|r| r.code()).collect();
            return Err(TransactFailure::Other(Failure {
                message: format!(
                    "TransactWriteItems on table `{}` was cancelled (reasons: {codes:?})",
                    self.table
                ),
                retryable,
                code: None,
                cause: if retryable {
                    ServiceCause::Throttled
                } else {
                    ServiceCause::Refused
                },
                detail: format!("{cancel:?}"),
            }));
        }
        Err(TransactFailure::Other(sdk_failure(
            "TransactWriteItems",
            &self.table,
            err,
        )))
    }

    fn transact_item(&self, write: &ItemWrite) -> Result<TransactWriteItem, StoreError> {
        Ok(match &write.request {
            WriteKind::Put(item) => {
                let mut put = aws_sdk_dynamodb::types::Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item.clone()));
                if let Some((_, expected)) = &write.fence {
                    let (condition, value) = fence_condition(*expected);
                    put = put
                        .condition_expression(condition)
                        .expression_attribute_names("#o", OFFSET);
                    if let Some(value) = value {
                        put = put.expression_attribute_values(":o", value);
                    }
                } else if write.version > 1 {
                    put = put
                        .condition_expression("attribute_not_exists(#v) OR #v < :v")
                        .expression_attribute_names("#v", VERSION)
                        .expression_attribute_values(
                            ":v",
                            AttributeValue::N(write.version.to_string()),
                        );
                }
                TransactWriteItem::builder()
                    .put(put.build().map_err(build_error)?)
                    .build()
            }
            WriteKind::Check(key) => {
                let expected = write.fence.as_ref().and_then(|(_, e)| *e);
                let (condition, value) = fence_condition(expected);
                let mut check = aws_sdk_dynamodb::types::ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key.clone()))
                    .condition_expression(condition)
                    .expression_attribute_names("#o", OFFSET);
                if let Some(value) = value {
                    check = check.expression_attribute_values(":o", value);
                }
                TransactWriteItem::builder()
                    .condition_check(check.build().map_err(build_error)?)
                    .build()
            }
            WriteKind::Delete(key) => TransactWriteItem::builder()
                .delete(
                    aws_sdk_dynamodb::types::Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key.clone()))
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
        })
    }

    /// Every page of a Query, in order; `index` queries the start-time index.
    async fn query_all(
        &self,
        identity: &str,
        index: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_names("#p", PK)
                .expression_attribute_values(":p", AttributeValue::S(identity.to_string()))
                .set_exclusive_start_key(start.take());
            query = match &index {
                Some((lo, hi)) => query
                    .index_name(INDEX)
                    .key_condition_expression("#p = :p AND #s BETWEEN :lo AND :hi")
                    .expression_attribute_names("#s", LSI_SK)
                    .expression_attribute_values(":lo", AttributeValue::B(Blob::new(lo.clone())))
                    .expression_attribute_values(":hi", AttributeValue::B(Blob::new(hi.clone()))),
                None => query.key_condition_expression("#p = :p"),
            };
            let out = self
                .retrying("Query", || {
                    RequestCounts::bump(&self.counts.query);
                    query.clone().send()
                })
                .await?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// Runs a read request with the store's retry policy.
    /// One item by its key, read consistently (a block or checkpoint just written must be seen).
    async fn get_item(
        &self,
        key: HashMap<String, AttributeValue>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .retrying("GetItem", || {
                RequestCounts::bump(&self.counts.get_item);
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .consistent_read(true)
                    .set_key(Some(key.clone()))
                    .send()
            })
            .await?;
        Ok(out.item)
    }

    async fn retrying<T, E, F, Fut>(&self, operation: &str, mut send: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let policy = self.options.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match send().await {
                Ok(out) => return Ok(out),
                Err(err) => {
                    let failure = sdk_failure(operation, &self.table, err);
                    if !failure.retryable || attempt >= policy.max_attempts.max(1) {
                        return Err(failure.into_store_error(&self.table));
                    }
                }
            }
            RequestCounts::bump(&self.counts.retries);
            tokio::time::sleep(policy.delay(attempt)).await;
        }
    }

    fn decode_item(
        &self,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let store = self.store_name();
        let identity = match item.get(PK) {
            Some(AttributeValue::S(s)) => s,
            _ => return Err(StoreError::corrupt(&store, "an item without a string `pk`")),
        };
        let sk = match item.get(SK) {
            Some(AttributeValue::B(b)) => b.as_ref(),
            _ => return Err(StoreError::corrupt(&store, "an item without a binary `sk`")),
        };
        if sk.starts_with(&CHECKPOINT_SK_PREFIX) || sk.starts_with(&RUN_STATE_SK_PREFIX) {
            return Ok(None);
        }
        let record = match item.get(RECORD) {
            Some(AttributeValue::B(b)) => b.as_ref(),
            _ => {
                return Err(StoreError::corrupt(
                    &store,
                    format!("item of identity `{identity}` has no binary `record`"),
                ));
            }
        };
        let mut key_bytes = encoding::identity_prefix(identity);
        key_bytes.extend_from_slice(sk);
        let key = encoding::decode_key(&key_bytes, &store)?;
        encoding::decode_record(key, record, &store).map(Some)
    }

    async fn identities(
        &self,
        segment: Option<Segment>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<IdentityPage, StoreError> {
        let limit = limit.max(1);
        let (mut start, mut last) = match after {
            Some(token) => {
                let (key, last) = decode_token(token).ok_or_else(|| {
                    StoreError::corrupt(self.store_name(), "invalid identities page token")
                })?;
                (Some(key), Some(last))
            }
            None => (None, None),
        };
        let mut page = IdentityPage::default();
        loop {
            let mut scan = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("#p, #s")
                .expression_attribute_names("#p", PK)
                .expression_attribute_names("#s", SK)
                .set_exclusive_start_key(start.clone());
            if let Some(segment) = segment {
                scan = scan
                    .segment(i32::try_from(segment.index()).unwrap_or(i32::MAX))
                    .total_segments(i32::try_from(segment.total()).unwrap_or(i32::MAX));
            }
            let out = self
                .retrying("Scan", || {
                    RequestCounts::bump(&self.counts.scan);
                    scan.clone().send()
                })
                .await?;
            let items = out.items.unwrap_or_default();
            let mut consumed: Option<&HashMap<String, AttributeValue>> = None;
            for item in &items {
                let (Some(AttributeValue::S(pk)), Some(AttributeValue::B(sk))) =
                    (item.get(PK), item.get(SK))
                else {
                    return Err(StoreError::corrupt(
                        self.store_name(),
                        "scanned an item without pk and sk",
                    ));
                };
                let is_new = last.as_deref() != Some(pk.as_str())
                    && !(pk == CHECKPOINT_PK && sk.as_ref().starts_with(&CHECKPOINT_SK_PREFIX));
                if is_new {
                    if page.identities.len() == limit {
                        // Items of one partition come back together, so resuming after the
                        // last item taken (or where this request started), skipping `last`,
                        // lists each identity once.
                        let resume = consumed.or(start.as_ref());
                        page.next = match (resume, &last) {
                            (Some(key), Some(last)) => Some(encode_token(key, last)),
                            _ => None,
                        };
                        return Ok(page);
                    }
                    page.identities.push(Arc::from(pk.as_str()));
                    last = Some(pk.clone());
                }
                consumed = Some(item);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => {
                    if page.identities.len() == limit {
                        page.next = last.as_ref().map(|l| encode_token(&key, l));
                        return Ok(page);
                    }
                    start = Some(key);
                }
                _ => return Ok(page),
            }
        }
    }
}

/// The condition of a fence on a checkpoint item, and its value.
fn fence_condition(expected: Option<i64>) -> (&'static str, Option<AttributeValue>) {
    match expected {
        Some(offset) => ("#o = :o", Some(AttributeValue::N(offset.to_string()))),
        None => ("attribute_not_exists(#o)", None),
    }
}

enum TransactFailure {
    /// The item at this index failed its version condition.
    Conflict(usize),
    Other(Failure),
}

impl BlockStore for DynamoStore {
    fn load_identity(&self, identity: &str) -> Result<Vec<StoredRecord>, StoreError> {
        if identity.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        let items = self.runtime.block_on(inner.query_all(identity, None))?;
        let mut records = Vec::with_capacity(items.len());
        for item in &items {
            records.extend(inner.decode_item(item)?);
        }
        Ok(records)
    }

    fn get(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError> {
        if key.identity.is_empty() {
            return Ok(None);
        }
        let inner = &self.inner;
        let encoded = encoding::encode_key(key)?;
        let identity_len = encoding::identity_prefix(&key.identity).len();
        let item_key = key_item(&key.identity, &encoded.bytes[identity_len..]);
        let item = self.runtime.block_on(inner.get_item(item_key))?;
        match item {
            Some(item) => inner.decode_item(&item),
            None => Ok(None),
        }
    }

    fn blocks(
        &self,
        identity: &str,
        aggregate: &str,
        range: TimeRange,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        if identity.is_empty() {
            return Ok(Vec::new());
        }
        let Some((lo, hi)) = index_bounds(identity, aggregate, range) else {
            return Ok(Vec::new());
        };
        let inner = &self.inner;
        let items = self
            .runtime
            .block_on(inner.query_all(identity, Some((lo, hi))))?;
        let mut records = Vec::with_capacity(items.len());
        for item in &items {
            records.extend(inner.decode_item(item)?);
        }
        Ok(records)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.runtime.block_on(self.inner.write(batch))
    }

    fn identities(&self, after: Option<&str>, limit: usize) -> Result<IdentityPage, StoreError> {
        self.runtime
            .block_on(self.inner.identities(None, after, limit))
    }

    fn identities_in_segment(
        &self,
        segment: Segment,
        after: Option<&str>,
        limit: usize,
    ) -> Result<IdentityPage, StoreError> {
        self.runtime
            .block_on(self.inner.identities(Some(segment), after, limit))
    }

    fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError> {
        let inner = &self.inner;
        let item_key = key_item(CHECKPOINT_PK, &checkpoint_sk(partition));
        let item = self.runtime.block_on(inner.get_item(item_key))?;
        let Some(item) = item else {
            return Ok(None);
        };
        match item.get(OFFSET) {
            Some(AttributeValue::N(n)) => n
                .parse::<i64>()
                .map(|offset| Some(Checkpoint { offset }))
                .map_err(|_| {
                    StoreError::corrupt(
                        inner.store_name(),
                        format!("checkpoint `{partition}` has offset {n}"),
                    )
                }),
            _ => Err(StoreError::corrupt(
                inner.store_name(),
                format!("checkpoint `{partition}` has no numeric offset"),
            )),
        }
    }

    fn run_state(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.runtime.block_on(self.inner.run_state(prefix))
    }

    fn describe(&self) -> String {
        self.inner.store_name()
    }

    fn usage(&self) -> Option<String> {
        let c = &self.inner.counts;
        let [transact, get, query, scan] = c.requests();
        Some(format!(
            "DynamoDB requests: {transact} TransactWriteItems, {get} GetItem, {query} Query, \
             {scan} Scan ({} retried); {} items written",
            c.retries.load(Ordering::Relaxed),
            c.items_written.load(Ordering::Relaxed)
        ))
    }
}

fn label(key: &RecordKey) -> String {
    format!(
        "record {}{:?} of identity `{}`",
        key.aggregate, key.dims, key.identity
    )
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::InvalidWrite(format!("building a DynamoDB request: {e}"))
}

fn key_item(identity: &str, sk: &[u8]) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(identity.to_string())),
        (SK.to_string(), AttributeValue::B(Blob::new(sk))),
    ])
}

fn checkpoint_sk(partition: &str) -> Vec<u8> {
    let mut sk = CHECKPOINT_SK_PREFIX.to_vec();
    sk.extend_from_slice(partition.as_bytes());
    sk
}

/// The item's size as DynamoDB counts it against the 400 KB limit: attribute names plus
/// values (numbers at their worst case of 21 bytes).
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    AttributeValue::N(_) => 21,
                    _ => 1,
                }
        })
        .sum()
}

/// Packs groups of items (an identity's records) into transactions of at most 100 items and
/// 4 MB, each group whole in one transaction where it fits one; a larger group fills
/// transactions of its own.
fn pack_whole_groups(groups: Vec<Vec<ItemWrite>>, room: usize) -> Vec<Vec<ItemWrite>> {
    let mut transactions: Vec<Vec<ItemWrite>> = Vec::new();
    let mut current: Vec<ItemWrite> = Vec::new();
    let mut bytes = 0;
    let fits = |items: usize, size: usize| items <= room && size <= TRANSACTION_BYTES;
    for group in groups.into_iter().filter(|g| !g.is_empty()) {
        let group_bytes: usize = group.iter().map(|w| w.size).sum();
        if !fits(current.len() + group.len(), bytes + group_bytes) && !current.is_empty() {
            transactions.push(std::mem::take(&mut current));
            bytes = 0;
        }
        if fits(group.len(), group_bytes) {
            bytes += group_bytes;
            current.extend(group);
            continue;
        }
        for item in group {
            if !fits(current.len() + 1, bytes + item.size) && !current.is_empty() {
                transactions.push(std::mem::take(&mut current));
                bytes = 0;
            }
            bytes += item.size;
            current.push(item);
        }
    }
    if !current.is_empty() {
        transactions.push(current);
    }
    transactions
}

/// Inclusive `lsi_start` bounds (without the identity) for the blocks of `aggregate` in
/// `range`. The store's bounds are half-open; DynamoDB's BETWEEN is inclusive, so the upper
/// bound is the last nanosecond before `end` followed by `FF`, which sorts after every
/// dimension encoding (their tags are below `FF`) and before anything at `end`.
fn index_bounds(identity: &str, aggregate: &str, range: TimeRange) -> Option<(Vec<u8>, Vec<u8>)> {
    let identity_len = encoding::identity_prefix(identity).len();
    let (lo, open_hi, _) = encoding::block_bounds(identity, aggregate, range)?;
    let hi = match range.end {
        None => open_hi,
        Some(end) => {
            let last = end.checked_sub_signed(TimeDelta::nanoseconds(1))?;
            let (mut hi, _, _) =
                encoding::block_bounds(identity, aggregate, TimeRange::new(Some(last), None))?;
            hi.push(0xFF);
            hi
        }
    };
    (lo <= hi).then(|| (lo[identity_len..].to_vec(), hi[identity_len..].to_vec()))
}

/// A random token for TransactWriteItems idempotency (1–36 characters).
fn client_token() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("dtc-{:x}-{:x}-{n:x}", now, std::process::id())
        .chars()
        .take(36)
        .collect()
}

/// Page tokens of [`BlockStore::identities`]: the scan position (pk, sk of the last item
/// read) and the last identity returned, hex-encoded.
fn encode_token(key: &HashMap<String, AttributeValue>, last: &str) -> String {
    let pk = match key.get(PK) {
        Some(AttributeValue::S(s)) => s.as_bytes(),
        _ => &[],
    };
    let sk = match key.get(SK) {
        Some(AttributeValue::B(b)) => b.as_ref(),
        _ => &[],
    };
    format!("{}.{}.{}", hex(pk), hex(sk), hex(last.as_bytes()))
}

fn decode_token(token: &str) -> Option<(HashMap<String, AttributeValue>, String)> {
    let mut parts = token.split('.');
    let pk = String::from_utf8(unhex(parts.next()?)?).ok()?;
    let sk = unhex(parts.next()?)?;
    let last = String::from_utf8(unhex(parts.next()?)?).ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((key_item(&pk, &sk), last))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn inclusive_bounds_keep_the_half_open_range() {
        let key = |start: i64, dim: Value| {
            let k = encoding::encode_key(&RecordKey::new("u1", "s", vec![dim])).unwrap();
            let prefix = encoding::identity_prefix("u1").len();
            k.index_key(t(start))[prefix..].to_vec()
        };
        let (lo, hi) = index_bounds("u1", "s", TimeRange::new(Some(t(100)), Some(t(200)))).unwrap();
        let inside = |k: &Vec<u8>| lo <= *k && *k <= hi;
        assert!(inside(&key(100, Value::str("zzz"))));
        assert!(inside(&key(199, Value::Int(i64::MAX))));
        assert!(!inside(&key(200, Value::Null)));
        assert!(!inside(&key(99, Value::str("a"))));
        let (lo, hi) = index_bounds("u1", "s", TimeRange::ALL).unwrap();
        assert!(lo <= key(-5, Value::Null) && key(-5, Value::Null) <= hi);
        let other = encoding::encode_key(&RecordKey::new("u1", "s2", vec![])).unwrap();
        assert!(other.index_key(t(0))[encoding::identity_prefix("u1").len()..] > hi[..]);
        assert!(index_bounds("u1", "s", TimeRange::new(Some(t(5)), Some(t(5)))).is_none());
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let key = key_item("u\u{0}1", &[0, 1, 0xff]);
        let token = encode_token(&key, "é");
        let (back, last) = decode_token(&token).unwrap();
        assert_eq!(back, key);
        assert_eq!(last, "é");
        for bad in ["", "zz.00.00", "0.00.00", "00.00.00.00", "ff.00.00"] {
            assert!(decode_token(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn item_size_counts_names_and_values() {
        let mut item = key_item("abc", &[1, 2, 3, 4]);
        assert_eq!(item_size(&item), 2 + 3 + 2 + 4);
        item.insert(VERSION.into(), AttributeValue::N("1".into()));
        assert_eq!(item_size(&item), 11 + 7 + 21);
    }

    #[test]
    fn identities_stay_whole_in_transactions_within_the_limits() {
        let write = |size| ItemWrite {
            request: WriteKind::Delete(HashMap::new()),
            size,
            label: String::new(),
            version: 2,
            fence: None,
        };
        let group = |n: usize, size| (0..n).map(|_| write(size)).collect::<Vec<_>>();
        // 30 identities of 7 records: 14 per transaction, none split.
        let packed = pack_whole_groups((0..30).map(|_| group(7, 100)).collect(), TRANSACTION_ITEMS);
        assert_eq!(
            packed.iter().map(Vec::len).collect::<Vec<_>>(),
            [98, 98, 14]
        );
        // Big records: the 4 MB limit cuts first, still between identities.
        let packed = pack_whole_groups(
            (0..10).map(|_| group(3, 300 * 1024)).collect(),
            TRANSACTION_ITEMS,
        );
        assert!(
            packed.iter().all(|t| t.len() % 3 == 0),
            "{:?}",
            packed.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert!(
            packed
                .iter()
                .all(|t| t.iter().map(|w| w.size).sum::<usize>() <= TRANSACTION_BYTES)
        );
        // An identity larger than one transaction fills transactions of its own.
        let packed = pack_whole_groups(
            vec![group(5, 10), group(250, 10), group(5, 10)],
            TRANSACTION_ITEMS,
        );
        assert_eq!(
            packed.iter().map(Vec::len).collect::<Vec<_>>(),
            [5, 100, 100, 55]
        );
        assert!(pack_whole_groups(vec![Vec::new()], TRANSACTION_ITEMS).is_empty());
    }

    #[test]
    fn fault_counters_run_out() {
        let faults = FaultInjection::default();
        faults.throttle_next(2);
        assert!(FaultInjection::take(&faults.throttle));
        assert!(FaultInjection::take(&faults.throttle));
        assert!(!FaultInjection::take(&faults.throttle));
        assert!(is_retryable_code("ThrottlingException"));
        assert!(!is_retryable_code("ValidationException"));
    }
}
