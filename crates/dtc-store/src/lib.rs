//! Where records live.
//!
//! A streaming run keeps, per identity, *identity records* (one per Identity aggregate and
//! dimension values) and *blocks* (sessions and activity blocks, each with a `_start_time`).
//! This crate stores them behind the [`BlockStore`] trait and nothing else: it does not know how
//! records are computed. Backends: [`MemoryStore`] (tests, `memory:`), [`EmbeddedStore`] (the
//! default, a crash-safe redb file), and later DynamoDB. [`open_store`] picks one from a URI.
//!
//! Access paths every backend serves without loading everything: a record by
//! `(identity, aggregate, dims)`, all records of one identity, the blocks of one identity and
//! aggregate in `_start_time` order (an index, not a sort), a page of identities, and atomic
//! batches that carry input checkpoints so re-delivered events are not applied twice.
//! The key layout is described in `docs/storage.md`.
//!
//! The trait is synchronous on purpose: the batch engine is CPU-bound and single-threaded per
//! partition, so an async API would only add overhead and colour every caller; a network
//! backend (DynamoDB) drives its own runtime inside its implementation.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dtc_plan::value::Value;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod embedded;
pub mod encoding;
mod error;
mod group;
mod memory;
mod segment;

pub use embedded::{EmbeddedStore, FILE_NAME};
pub use error::{Fault, StoreError};
pub use memory::MemoryStore;
pub use segment::{Segment, SegmentedStore};

/// Identifies one record: the identity, the aggregate's name and its dimension values.
///
/// Dimension values compare by exact variant and bits (`Int(1)` and `Float(1.0)` are different
/// keys), so the engine must convert dimensions to their declared type before building keys.
/// Activity blocks use `dims = [Int(block id)]` with a stable id, so that a late event that
/// moves a block's start does not change its key.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordKey {
    pub identity: Arc<str>,
    pub aggregate: Arc<str>,
    pub dims: Vec<Value>,
}

impl RecordKey {
    pub fn new(identity: &str, aggregate: &str, dims: Vec<Value>) -> RecordKey {
        RecordKey {
            identity: Arc::from(identity),
            aggregate: Arc::from(aggregate),
            dims,
        }
    }
}

/// Whether a record belongs to an Identity aggregate or is a block (Block or Activity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Identity,
    Block,
}

/// A record as stored: the aggregate's columns in its layout order.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub key: RecordKey,
    pub kind: RecordKind,
    /// The block's `_start_time`, which the time index is built on: required for blocks,
    /// absent for identity records.
    pub start_time: Option<DateTime<Utc>>,
    pub columns: Vec<Value>,
    /// Kept as written and returned on reads. The memory and embedded stores have a single
    /// writer (the file lock) and do not check it; the DynamoDB backend uses it for conditional
    /// writes, so the engine should increase it on every put of a record.
    pub version: u64,
    /// The record's creation position within its identity (1, 2, 3… as the engine created
    /// the identity's records by applying events). Blocks that start at the same instant are
    /// ordered by it, so that every run, and every window run over the store, orders them by
    /// their first event and not by their keys. 0 = unknown: records of stores written before
    /// it was kept.
    pub order: u64,
    /// The resumable batch run that last wrote the record (a hash of the run's input, see
    /// `dtc_engine::batch::StreamingBatch::resumable`), or 0. A batch run that is re-run after a
    /// crash finds the identities the crashed run already wrote by it: an identity's records of
    /// one run are written in one atomic write, so one such record means all of them.
    pub writer: u64,
}

/// How far one input partition has been applied: the offset of the next event to apply.
///
/// Written in the same [`WriteBatch`] as the records it covers, so after a crash the stored
/// records and the checkpoint agree and events below `offset` are skipped on re-delivery.
/// File inputs can use the event ordinal as the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub offset: i64,
}

/// Changes applied together by [`BlockStore::write`]: deletes first, then puts in order (a later
/// put of the same key wins), then checkpoints and run state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    pub puts: Vec<StoredRecord>,
    pub deletes: Vec<RecordKey>,
    /// `(source partition, checkpoint)`, e.g. `("events-3", Checkpoint { offset: 1042 })`.
    pub checkpoints: Vec<(String, Checkpoint)>,
    /// Small named values committed with the records: `Some(bytes)` stores, `None` removes.
    /// A run keeps here what it must finish after the commit (the outputs it still has to
    /// publish), so a restart after a crash finds it with the records it belongs to.
    pub run_state: Vec<(String, Option<Vec<u8>>)>,
    /// Fencing: the batch applies only if each named partition's stored checkpoint is still
    /// this offset (`None`: the partition has none). Otherwise nothing of it is written and the
    /// write fails with [`StoreError::Fenced`]: another consumer took the partition and moved
    /// it on, and this writer's state for it is stale (a zombie).
    pub expect_checkpoints: Vec<(String, Option<i64>)>,
}

/// The largest run-state value a backend must accept (a DynamoDB item holds 400 KB).
pub const MAX_RUN_STATE_BYTES: usize = 256 * 1024;

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
            && self.deletes.is_empty()
            && self.checkpoints.is_empty()
            && self.run_state.is_empty()
            && self.expect_checkpoints.is_empty()
    }

    /// The partitions whose expected checkpoint differs from the stored one, as
    /// `stored(partition)` tells it: what a backend checks inside its transaction.
    pub fn fenced<E>(
        &self,
        mut stored: impl FnMut(&str) -> Result<Option<i64>, E>,
    ) -> Result<Vec<String>, E> {
        let mut fenced = Vec::new();
        for (partition, expected) in &self.expect_checkpoints {
            if stored(partition)? != *expected {
                fenced.push(partition.clone());
            }
        }
        Ok(fenced)
    }

    /// Checks what every backend requires before touching storage, so that an invalid batch
    /// changes nothing on any backend.
    pub fn validate(&self) -> Result<(), StoreError> {
        for record in &self.puts {
            match (record.kind, record.start_time) {
                (RecordKind::Block, None) => {
                    return Err(StoreError::InvalidWrite(format!(
                        "block {}{:?} of identity `{}` has no start time",
                        record.key.aggregate, record.key.dims, record.key.identity
                    )));
                }
                (RecordKind::Identity, Some(_)) => {
                    return Err(StoreError::InvalidWrite(format!(
                        "identity record {} of identity `{}` has a start time",
                        record.key.aggregate, record.key.identity
                    )));
                }
                _ => {}
            }
        }
        for (name, value) in &self.run_state {
            if name.is_empty() {
                return Err(StoreError::InvalidWrite(
                    "a run-state entry has no name".into(),
                ));
            }
            if let Some(bytes) = value
                && bytes.len() > MAX_RUN_STATE_BYTES
            {
                return Err(StoreError::InvalidWrite(format!(
                    "run state `{name}` is {} bytes, over the {MAX_RUN_STATE_BYTES}-byte limit",
                    bytes.len()
                )));
            }
        }
        Ok(())
    }
}

/// A half-open range of block start times, `start <= _start_time < end`; `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl TimeRange {
    /// Every block.
    pub const ALL: TimeRange = TimeRange {
        start: None,
        end: None,
    };

    pub fn new(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> TimeRange {
        TimeRange { start, end }
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| s <= t) && self.end.is_none_or(|e| t < e)
    }
}

/// One page of [`BlockStore::identities`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityPage {
    pub identities: Vec<Arc<str>>,
    /// Pass back as `after` for the next page; `None` when there are no more identities.
    /// Opaque: a backend may put a continuation token here.
    pub next: Option<String>,
}

/// Storage of identity records and blocks. See the crate docs for why it is synchronous.
pub trait BlockStore: Send + Sync {
    /// All records of an identity, in key order (aggregate, then dimensions).
    fn load_identity(&self, identity: &str) -> Result<Vec<StoredRecord>, StoreError>;

    /// One record, or `None` if it is not stored.
    fn get(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError>;

    /// The blocks of one identity and aggregate whose `_start_time` is in `range`, in
    /// `_start_time` order, ties by dimension values.
    fn blocks(
        &self,
        identity: &str,
        aggregate: &str,
        range: TimeRange,
    ) -> Result<Vec<StoredRecord>, StoreError>;

    /// Applies a batch. The memory and embedded stores apply all of it or nothing; an invalid
    /// batch (see [`WriteBatch::validate`]) changes nothing on any backend.
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Makes every write that has returned durable. The embedded store makes consecutive
    /// writes durable together (see [`EmbeddedStore`]); on the other backends a write is
    /// durable when it returns, and this does nothing.
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Up to `limit` (at least one) identities that have records, starting after the `after`
    /// token of the previous page. Memory and embedded stores return them sorted; a scanning backend may not.
    fn identities(&self, after: Option<&str>, limit: usize) -> Result<IdentityPage, StoreError>;

    /// Whether the store surely holds no identity's records, where that is a cheap local read.
    /// A batch run into such a store does not read each identity back. `false` means unknown:
    /// a remote backend could only tell with a scan, which streaming runs do not make.
    fn holds_no_identity(&self) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// The checkpoint stored for an input partition.
    fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError>;

    /// The run-state entries (see [`WriteBatch::run_state`]) whose names start with `prefix`,
    /// sorted by name.
    fn run_state(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// For logs and messages, e.g. "embedded store at ./dtc-data".
    fn describe(&self) -> String;

    /// Like [`BlockStore::identities`], but only identities of `segment`, so that several
    /// workers can split a run. Every identity is in exactly one segment of a given total, and
    /// in the same one on every call. The default filters pages of [`BlockStore::identities`]
    /// by [`Segment::contains`] (a page may come back short or empty, with a `next` token);
    /// a scanning backend overrides it with its own parallel scan.
    fn identities_in_segment(
        &self,
        segment: Segment,
        after: Option<&str>,
        limit: usize,
    ) -> Result<IdentityPage, StoreError> {
        let mut page = self.identities(after, limit)?;
        page.identities
            .retain(|identity| segment.contains(identity));
        Ok(page)
    }

    /// Requests made so far, for backends that pay per request (shown after a run); `None`
    /// for local stores.
    fn usage(&self) -> Option<String> {
        None
    }

    /// Every identity, by walking the pages of [`BlockStore::identities`].
    fn all_identities(&self) -> Result<Vec<Arc<str>>, StoreError> {
        const PAGE: usize = 1024;
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.identities(after.as_deref(), PAGE)?;
            all.extend(page.identities);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }
}

/// Whether opening a store may create it: runs that write records create a missing store,
/// commands that only read it (`dtc blocks`, a window run over the store) must not, or a
/// mistyped path would read as an empty store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    CreateIfMissing,
    MustExist,
}

/// Opens the store a URI names: `memory:`, `file:PATH`, or a plain directory path (embedded).
pub fn open_store(uri: &str, mode: OpenMode) -> Result<Box<dyn BlockStore>, StoreError> {
    let unsupported = || StoreError::UnsupportedUri {
        uri: uri.to_string(),
    };
    if uri == "memory:" || uri == "memory://" {
        return Ok(Box::new(MemoryStore::new()));
    }
    let path = match uri
        .strip_prefix("file://")
        .or_else(|| uri.strip_prefix("file:"))
    {
        Some(path) => path,
        None if has_scheme(uri) => return Err(unsupported()),
        None => uri,
    };
    if path.is_empty() {
        return Err(unsupported());
    }
    let dir = std::path::Path::new(path);
    if mode == OpenMode::MustExist && !EmbeddedStore::exists(dir) {
        return Err(StoreError::Missing {
            location: dir.display().to_string(),
        });
    }
    Ok(Box::new(EmbeddedStore::open(dir)?))
}

/// `scheme:` of at least two letters, so that a Windows drive (`C:\data`) is still a path.
fn has_scheme(uri: &str) -> bool {
    match uri.split_once(':') {
        Some((scheme, _)) => {
            scheme.len() >= 2
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_store_picks_the_backend_from_the_uri() {
        let memory = open_store("memory:", OpenMode::CreateIfMissing).unwrap();
        assert!(memory.describe().contains("memory"));

        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        let store = open_store(plain.to_str().unwrap(), OpenMode::CreateIfMissing).unwrap();
        assert!(store.describe().contains("embedded"));
        assert!(plain.join("blocks.redb").exists());

        let with_scheme = dir.path().join("schemed");
        open_store(
            &format!("file:{}", with_scheme.display()),
            OpenMode::CreateIfMissing,
        )
        .unwrap();
        assert!(with_scheme.join("blocks.redb").exists());
    }

    #[test]
    fn read_only_opens_never_create_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = open_store(missing.to_str().unwrap(), OpenMode::MustExist)
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::Missing { .. }), "{err}");
        assert!(err.to_string().starts_with("no store at "), "{err}");
        assert!(!missing.exists(), "the directory was created");
        // An existing directory without a store file is no store either.
        std::fs::create_dir(&missing).unwrap();
        assert!(open_store(missing.to_str().unwrap(), OpenMode::MustExist).is_err());
        assert!(!missing.join(FILE_NAME).exists());
        open_store(missing.to_str().unwrap(), OpenMode::CreateIfMissing).unwrap();
        open_store(missing.to_str().unwrap(), OpenMode::MustExist).unwrap();
    }

    #[test]
    fn unknown_schemes_name_the_supported_ones() {
        for uri in ["dynamodb://table", "s3://bucket/x", "", "file:"] {
            let err = open_store(uri, OpenMode::CreateIfMissing).err().unwrap();
            assert!(matches!(err, StoreError::UnsupportedUri { .. }), "{uri}");
            assert!(err.to_string().contains("memory:"), "{err}");
        }
    }

    #[test]
    fn time_range_is_half_open() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let r = TimeRange::new(Some(t(10)), Some(t(20)));
        assert!(r.contains(t(10)));
        assert!(r.contains(t(19)));
        assert!(!r.contains(t(20)));
        assert!(!r.contains(t(9)));
        assert!(TimeRange::ALL.contains(t(0)));
    }
}
