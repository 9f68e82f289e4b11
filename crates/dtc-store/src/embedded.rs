//! The default store: one redb file, `<dir>/blocks.redb`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, TableDefinition,
    TableHandle,
};

use crate::encoding::{self, SplitKey};
use crate::group;
use crate::{
    BlockStore, Checkpoint, IdentityPage, RecordKey, StoreError, StoredRecord, TimeRange,
    WriteBatch,
};

/// `esc(identity) esc(aggregate)` → every record of that identity and aggregate (see
/// [`group`]). There is no time index: each record's header holds its start time, so
/// [`BlockStore::blocks`] reads one value and skips the blocks outside the range without
/// decoding their columns. A second B-tree kept in step with this one cost as much as the
/// records' own inserts, on every block of every run.
const GROUPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("record_groups");
/// Record key → record bytes: the layout of stores written before records were grouped,
/// moved into [`GROUPS`] on open.
const LEGACY_RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
/// The time index of stores written before the index was dropped; deleted on open, so that no
/// stale copy of it outlives the records it would describe.
const LEGACY_BY_START: TableDefinition<&[u8], ()> = TableDefinition::new("blocks_by_start");
/// Source partition → next offset to apply.
const CHECKPOINTS: TableDefinition<&str, i64> = TableDefinition::new("checkpoints");
/// Run-state name → value ([`WriteBatch::run_state`]).
const RUN_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("run_state");

/// The file name inside the store directory.
pub const FILE_NAME: &str = "blocks.redb";

/// redb's page cache. Its default (1 GiB) lets the cache grow with the store, so a run's memory
/// would grow with its output. Writes land all over the tree (identities do not arrive in key
/// order), so a cache much smaller than the tree's hot pages thrashes: on 10 M events (a 311 MB
/// store) 64 MiB halved the throughput, while 256 MiB keeps it and still bounds the memory.
const CACHE_BYTES: usize = 256 << 20;

/// How long written batches may stay not yet durable. A durable commit waits for the disk
/// (fsync); a batch run writes a batch every few milliseconds, and waiting for each of them
/// would cost more than their inserts.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// A crash-safe single-file store on redb. Each [`BlockStore::write`] is one redb transaction:
/// atomic, visible to reads when it returns, and durable within [`SYNC_INTERVAL`], on
/// [`BlockStore::sync`] or when the store is dropped, whichever comes first. A crash loses at
/// most the last second of writes, whole batches with the checkpoints written in them, so a
/// re-run applies exactly what was lost. The file is locked while open: a second open (from
/// this or another process) fails with [`StoreError::Locked`].
pub struct EmbeddedStore {
    db: Database,
    dir: PathBuf,
    name: String,
    durability: Mutex<DurabilityState>,
}

struct DurabilityState {
    last_durable: Instant,
    /// Some committed write is not durable yet.
    pending: bool,
}

impl EmbeddedStore {
    /// Whether `dir` holds a store (its file exists).
    pub fn exists(dir: &Path) -> bool {
        dir.join(FILE_NAME).is_file()
    }

    /// Opens the store in `dir`, creating the directory and the file if needed.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = dir.join(FILE_NAME);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&file)
            .map_err(|e| match e {
                DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: file.clone() },
                other => redb_error(other, &file),
            })?;
        let store = EmbeddedStore {
            db,
            dir: dir.to_path_buf(),
            name: format!("embedded store at {}", dir.display()),
            durability: Mutex::new(DurabilityState {
                last_durable: Instant::now(),
                pending: false,
            }),
        };
        // Creating the tables up front lets read transactions open them unconditionally.
        let txn = store.db.begin_write().map_err(|e| store.err(e))?;
        txn.open_table(GROUPS).map_err(|e| store.err(e))?;
        store.group_legacy_records(&txn)?;
        txn.delete_table(LEGACY_BY_START)
            .map_err(|e| store.err(e))?;
        txn.open_table(CHECKPOINTS).map_err(|e| store.err(e))?;
        txn.open_table(RUN_STATE).map_err(|e| store.err(e))?;
        txn.commit().map_err(|e| store.err(e))?;
        Ok(store)
    }

    /// Moves the records of a store written with one value per record into groups, in the
    /// transaction that opens the store: it commits with the new layout or not at all.
    fn group_legacy_records(&self, txn: &redb::WriteTransaction) -> Result<(), StoreError> {
        let has_legacy = txn
            .list_tables()
            .map_err(|e| self.err(e))?
            .any(|table| table.name() == LEGACY_RECORDS.name());
        if !has_legacy {
            return Ok(());
        }
        {
            let legacy = txn.open_table(LEGACY_RECORDS).map_err(|e| self.err(e))?;
            let mut groups = txn.open_table(GROUPS).map_err(|e| self.err(e))?;
            let mut prefix: Vec<u8> = Vec::new();
            let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let mut out = Vec::new();
            let mut flush = |prefix: &[u8], records: &mut Vec<(Vec<u8>, Vec<u8>)>| {
                if records.is_empty() {
                    return Ok(());
                }
                let puts: Vec<(&[u8], &[u8])> = records
                    .iter()
                    .map(|(dims, record)| (dims.as_slice(), record.as_slice()))
                    .collect();
                group::merge(None, &[], &puts, &mut out, &self.name)?;
                groups
                    .insert(prefix, out.as_slice())
                    .map_err(|e| self.err(e))?;
                records.clear();
                Ok::<(), StoreError>(())
            };
            // Record keys are in key order, so each group's records are neighbours.
            for entry in legacy.iter().map_err(|e| self.err(e))? {
                let (key, record) = entry.map_err(|e| self.err(e))?;
                let (key_prefix, dims) = key
                    .value()
                    .split_at(encoding::prefix_len(key.value(), &self.name)?);
                if key_prefix != prefix.as_slice() {
                    flush(&prefix, &mut records)?;
                    prefix = key_prefix.to_vec();
                }
                records.push((dims.to_vec(), record.value().to_vec()));
            }
            flush(&prefix, &mut records)?;
        }
        txn.delete_table(LEGACY_RECORDS).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        redb_error(e, &self.dir.join(FILE_NAME))
    }

    fn apply(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let mut packed = encoding::PackedBatch::encode(batch)?;
        // In key order the B-tree inserts walk the tree once from left to right instead of
        // landing on random pages (a caller may send identities in any order, and an identity's
        // records in creation order).
        packed.sort_by_key();
        let mut durability = self.durability_state();
        let durable = durability.last_durable.elapsed() >= SYNC_INTERVAL;
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        if !durable {
            txn.set_durability(Durability::None)
                .map_err(|e| self.err(redb::Error::from(e)))?;
        }
        {
            let mut groups = txn.open_table(GROUPS).map_err(|e| self.err(e))?;
            let mut checkpoints = txn.open_table(CHECKPOINTS).map_err(|e| self.err(e))?;
            let fenced = batch.fenced(|p| {
                checkpoints
                    .get(p)
                    .map(|v| v.map(|v| v.value()))
                    .map_err(|e| self.err(e))
            })?;
            if !fenced.is_empty() {
                return Err(StoreError::Fenced { partitions: fenced });
            }
            let deletes: Vec<SplitKey<'_>> = packed.deletes().collect();
            let puts: Vec<(SplitKey<'_>, &[u8])> = packed.puts().collect();
            let (mut d, mut p) = (0, 0);
            let mut stored = Vec::new();
            let mut merged = Vec::new();
            let mut group_deletes: Vec<&[u8]> = Vec::new();
            let mut group_puts: Vec<(&[u8], &[u8])> = Vec::new();
            // Both lists are in key order, so each group's changes are a stretch of each.
            loop {
                let prefix = match (deletes.get(d), puts.get(p)) {
                    (Some(del), Some((put, _))) => del.prefix.min(put.prefix),
                    (Some(del), None) => del.prefix,
                    (None, Some((put, _))) => put.prefix,
                    (None, None) => break,
                };
                group_deletes.clear();
                while let Some(del) = deletes.get(d).filter(|k| k.prefix == prefix) {
                    group_deletes.push(del.dims);
                    d += 1;
                }
                group_puts.clear();
                while let Some((put, record)) = puts.get(p).filter(|(k, _)| k.prefix == prefix) {
                    group_puts.push((put.dims, record));
                    p += 1;
                }
                // Copied out, since the table cannot be written while a value is borrowed.
                let existed = match groups.get(prefix).map_err(|e| self.err(e))? {
                    Some(value) => {
                        stored.clear();
                        stored.extend_from_slice(value.value());
                        true
                    }
                    None => false,
                };
                let kept = group::merge(
                    existed.then_some(stored.as_slice()),
                    &group_deletes,
                    &group_puts,
                    &mut merged,
                    &self.name,
                )?;
                if kept > 0 {
                    groups
                        .insert(prefix, merged.as_slice())
                        .map_err(|e| self.err(e))?;
                } else if existed {
                    groups.remove(prefix).map_err(|e| self.err(e))?;
                }
            }
            for (partition, checkpoint) in &batch.checkpoints {
                checkpoints
                    .insert(partition.as_str(), checkpoint.offset)
                    .map_err(|e| self.err(e))?;
            }
            let mut run_state = txn.open_table(RUN_STATE).map_err(|e| self.err(e))?;
            for (name, value) in &batch.run_state {
                match value {
                    Some(bytes) => run_state.insert(name.as_str(), bytes.as_slice()),
                    None => run_state.remove(name.as_str()).map(|_| None),
                }
                .map_err(|e| self.err(e))?;
            }
        }
        // An error above drops `txn` uncommitted, which aborts it: nothing of the batch lands.
        txn.commit().map_err(|e| self.err(e))?;
        if durable {
            *durability = DurabilityState {
                last_durable: Instant::now(),
                pending: false,
            };
        } else {
            durability.pending = true;
        }
        Ok(())
    }

    /// A record of the group under `group_key` (identity and aggregate, no dimensions).
    fn decode_record(
        &self,
        group_key: &RecordKey,
        dims: &[u8],
        record: &[u8],
    ) -> Result<StoredRecord, StoreError> {
        let key = RecordKey {
            identity: group_key.identity.clone(),
            aggregate: group_key.aggregate.clone(),
            dims: encoding::decode_dims(dims, &self.name)?,
        };
        encoding::decode_record(key, record, &self.name)
    }

    /// The state is a timestamp and a flag, valid whatever a panicking holder was doing.
    fn durability_state(&self) -> std::sync::MutexGuard<'_, DurabilityState> {
        self.durability
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the non-durable commits before it durable (an empty durable commit does that).
    fn sync_pending(&self) -> Result<(), StoreError> {
        let mut durability = self.durability_state();
        if !durability.pending {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        *durability = DurabilityState {
            last_durable: Instant::now(),
            pending: false,
        };
        Ok(())
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Errors cannot be returned from here; a caller that needs them calls `sync` first.
        let _ = self.sync_pending();
    }
}

/// Maps redb's errors onto whose fault they are.
fn redb_error(e: impl Into<redb::Error>, file: &Path) -> StoreError {
    match e.into() {
        redb::Error::DatabaseAlreadyOpen => StoreError::Locked {
            path: file.to_path_buf(),
        },
        redb::Error::Io(source) => StoreError::Io {
            path: file.to_path_buf(),
            source,
        },
        redb::Error::Corrupted(detail) => {
            StoreError::corrupt(format!("embedded store {}", file.display()), detail)
        }
        redb::Error::ValueTooLarge(n) => {
            StoreError::InvalidWrite(format!("a record of {n} bytes is too large to store"))
        }
        other => StoreError::Service {
            service: "redb",
            message: format!("embedded store {}: {other}", file.display()),
            retryable: false,
            detail: String::new(),
        },
    }
}

impl BlockStore for EmbeddedStore {
    fn load_identity(&self, identity: &str) -> Result<Vec<StoredRecord>, StoreError> {
        let prefix = encoding::identity_prefix(identity);
        let end = encoding::after_prefix(&prefix);
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let groups = txn.open_table(GROUPS).map_err(|e| self.err(e))?;
        let range = groups
            .range(prefix.as_slice()..end.as_slice())
            .map_err(|e| self.err(e))?;
        let mut records = Vec::new();
        for entry in range {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            let group_key = encoding::decode_key(key.value(), &self.name)?;
            for entry in group::entries(value.value(), &self.name) {
                let (dims, record) = entry?;
                records.push(self.decode_record(&group_key, dims, record)?);
            }
        }
        Ok(records)
    }

    fn get(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError> {
        let encoded = encoding::encode_key(key)?;
        let (prefix, dims) = encoded.bytes.split_at(encoded.prefix_len);
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let groups = txn.open_table(GROUPS).map_err(|e| self.err(e))?;
        let Some(value) = groups.get(prefix).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        for entry in group::entries(value.value(), &self.name) {
            let (stored_dims, record) = entry?;
            if stored_dims == dims {
                return encoding::decode_record(key.clone(), record, &self.name).map(Some);
            }
        }
        Ok(None)
    }

    fn blocks(
        &self,
        identity: &str,
        aggregate: &str,
        range: TimeRange,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let prefix = encoding::aggregate_prefix(identity, aggregate);
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let groups = txn.open_table(GROUPS).map_err(|e| self.err(e))?;
        let Some(value) = groups.get(prefix.as_slice()).map_err(|e| self.err(e))? else {
            return Ok(Vec::new());
        };
        let group_key = RecordKey::new(identity, aggregate, Vec::new());
        let mut blocks = Vec::new();
        for entry in group::entries(value.value(), &self.name) {
            let (dims, record) = entry?;
            let Some(start) = encoding::stored_start(record, &self.name)? else {
                continue;
            };
            if range.contains(start) {
                blocks.push((start, self.decode_record(&group_key, dims, record)?));
            }
        }
        // Key order within equal starts (stable), as a time index ordered (start, dims) gives.
        blocks.sort_by_key(|(start, _)| *start);
        Ok(blocks.into_iter().map(|(_, record)| record).collect())
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        self.apply(&batch)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.sync_pending()
    }

    fn holds_no_identity(&self) -> Result<bool, StoreError> {
        Ok(self.identities(None, 1)?.identities.is_empty())
    }

    fn identities(&self, after: Option<&str>, limit: usize) -> Result<IdentityPage, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let groups = txn.open_table(GROUPS).map_err(|e| self.err(e))?;
        let mut from = after.map_or_else(Vec::new, |a| {
            encoding::after_prefix(&encoding::identity_prefix(a))
        });
        let mut page = IdentityPage::default();
        // One seek per identity: after reading an identity, jump past all of its keys.
        let first_from = |from: &[u8]| -> Result<Option<String>, StoreError> {
            let mut range = groups.range(from..).map_err(|e| self.err(e))?;
            match range.next() {
                Some(entry) => {
                    let (k, _) = entry.map_err(|e| self.err(e))?;
                    encoding::identity_of(k.value(), &self.name).map(Some)
                }
                None => Ok(None),
            }
        };
        while page.identities.len() < limit.max(1) {
            let Some(identity) = first_from(&from)? else {
                return Ok(page);
            };
            from = encoding::after_prefix(&encoding::identity_prefix(&identity));
            page.identities.push(Arc::from(identity.as_str()));
        }
        if first_from(&from)?.is_some() {
            page.next = page.identities.last().map(|i| i.to_string());
        }
        Ok(page)
    }

    fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let checkpoints = txn.open_table(CHECKPOINTS).map_err(|e| self.err(e))?;
        let found = checkpoints.get(partition).map_err(|e| self.err(e))?;
        Ok(found.map(|v| Checkpoint { offset: v.value() }))
    }

    fn run_state(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(RUN_STATE).map_err(|e| self.err(e))?;
        let mut found = Vec::new();
        for entry in table.range(prefix..).map_err(|e| self.err(e))? {
            let (name, value) = entry.map_err(|e| self.err(e))?;
            if !name.value().starts_with(prefix) {
                break;
            }
            found.push((name.value().to_string(), value.value().to_vec()));
        }
        Ok(found)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecordKind, TimeRange};
    use chrono::DateTime;
    use dtc_plan::value::Value;
    use tempfile::TempDir;

    /// Keeps the temporary directory alive exactly as long as the store in it.
    struct TempStore {
        store: EmbeddedStore,
        _dir: TempDir,
    }

    impl BlockStore for TempStore {
        fn load_identity(&self, identity: &str) -> Result<Vec<StoredRecord>, StoreError> {
            self.store.load_identity(identity)
        }
        fn get(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError> {
            self.store.get(key)
        }
        fn blocks(
            &self,
            identity: &str,
            aggregate: &str,
            range: TimeRange,
        ) -> Result<Vec<StoredRecord>, StoreError> {
            self.store.blocks(identity, aggregate, range)
        }
        fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
            self.store.write(batch)
        }
        fn identities(
            &self,
            after: Option<&str>,
            limit: usize,
        ) -> Result<IdentityPage, StoreError> {
            self.store.identities(after, limit)
        }
        fn holds_no_identity(&self) -> Result<bool, StoreError> {
            self.store.holds_no_identity()
        }
        fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError> {
            self.store.checkpoint(partition)
        }
        fn run_state(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
            self.store.run_state(prefix)
        }
        fn describe(&self) -> String {
            self.store.describe()
        }
    }

    #[test]
    fn conformance() {
        crate::conformance::run_all(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = EmbeddedStore::open(dir.path()).unwrap();
            Box::new(TempStore { store, _dir: dir })
        });
        let dir = tempfile::tempdir().unwrap();
        crate::conformance::identities_are_sorted(&EmbeddedStore::open(dir.path()).unwrap());
        let dir = tempfile::tempdir().unwrap();
        crate::conformance::a_new_store_knows_it_holds_no_identity(
            &EmbeddedStore::open(dir.path()).unwrap(),
        );
    }

    fn block(identity: &str, session: &str, start_secs: i64) -> StoredRecord {
        let start = DateTime::from_timestamp(start_secs, 0).unwrap();
        StoredRecord {
            key: RecordKey::new(identity, "session", vec![Value::str(session)]),
            kind: RecordKind::Block,
            start_time: Some(start),
            columns: vec![Value::str(identity), Value::DateTime(start), Value::Int(3)],
            version: 2,
            order: 5,
            writer: 0,
        }
    }

    #[test]
    fn reopen_reads_the_same_data() {
        let dir = tempfile::tempdir().unwrap();
        let written = vec![block("u1", "s2", 200), block("u1", "s1", 100)];
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            store
                .write(WriteBatch {
                    puts: written.clone(),
                    deletes: vec![],
                    checkpoints: vec![("p0".into(), Checkpoint { offset: 77 })],
                    run_state: Vec::new(),
                    expect_checkpoints: Vec::new(),
                })
                .unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let blocks = store.blocks("u1", "session", TimeRange::ALL).unwrap();
        assert_eq!(blocks, vec![written[1].clone(), written[0].clone()]);
        assert_eq!(
            store.checkpoint("p0").unwrap(),
            Some(Checkpoint { offset: 77 })
        );
        assert_eq!(store.all_identities().unwrap(), vec![Arc::from("u1")]);
    }

    #[test]
    fn open_drops_the_time_index_of_older_stores() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(LEGACY_BY_START)
                .unwrap()
                .insert(&b"stale"[..], ())
                .unwrap();
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let txn = store.db.begin_read().unwrap();
        let err = txn.open_table(LEGACY_BY_START).err().unwrap();
        assert!(
            matches!(err, redb::TableError::TableDoesNotExist(_)),
            "{err:?}"
        );
    }

    #[test]
    fn open_groups_the_records_of_stores_written_one_value_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let identity_record = StoredRecord {
            key: RecordKey::new("u1", "user", vec![]),
            kind: RecordKind::Identity,
            start_time: None,
            columns: vec![Value::str("FR")],
            version: 1,
            order: 1,
            writer: 0,
        };
        let written = vec![
            block("u1", "s2", 200),
            block("u1", "s1", 100),
            identity_record.clone(),
            block("u2", "s1", 50),
        ];
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut legacy = txn.open_table(LEGACY_RECORDS).unwrap();
                for record in &written {
                    let key = encoding::encode_key(&record.key).unwrap().bytes;
                    let value = encoding::encode_record(record).unwrap();
                    legacy.insert(key.as_slice(), value.as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(
            store.blocks("u1", "session", TimeRange::ALL).unwrap(),
            vec![written[1].clone(), written[0].clone()]
        );
        assert_eq!(
            store.get(&identity_record.key).unwrap(),
            Some(identity_record.clone())
        );
        assert_eq!(
            store.load_identity("u1").unwrap(),
            vec![written[1].clone(), written[0].clone(), identity_record]
        );
        assert_eq!(
            store.all_identities().unwrap(),
            vec![Arc::from("u1"), Arc::from("u2")]
        );
        let txn = store.db.begin_read().unwrap();
        let err = txn.open_table(LEGACY_RECORDS).err().unwrap();
        assert!(
            matches!(err, redb::TableError::TableDoesNotExist(_)),
            "{err:?}"
        );
    }

    #[test]
    fn records_written_before_the_creation_ordinal_read_with_ordinal_0() {
        let dir = tempfile::tempdir().unwrap();
        let old = [block("u1", "s2", 100), block("u1", "s3", 100)];
        {
            // A group as a store written before records kept their ordinal holds it.
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut groups = txn.open_table(GROUPS).unwrap();
                let entries: Vec<(Vec<u8>, Vec<u8>)> = old
                    .iter()
                    .map(|record| {
                        let key = encoding::encode_key(&record.key).unwrap();
                        let dims = key.bytes[key.prefix_len..].to_vec();
                        (dims, encoding::encode_record_without_order(record))
                    })
                    .collect();
                let puts: Vec<(&[u8], &[u8])> = entries
                    .iter()
                    .map(|(d, r)| (d.as_slice(), r.as_slice()))
                    .collect();
                let mut group = Vec::new();
                group::merge(None, &[], &puts, &mut group, "test").unwrap();
                let prefix = encoding::aggregate_prefix("u1", "session");
                groups.insert(prefix.as_slice(), group.as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let unknown: Vec<StoredRecord> = old
            .iter()
            .map(|r| StoredRecord {
                order: 0,
                writer: 0,
                ..r.clone()
            })
            .collect();
        assert_eq!(store.load_identity("u1").unwrap(), unknown);
        // A record written now sits in the same group beside the old ones, each read as written.
        let new = StoredRecord {
            order: 3,
            writer: 0,
            ..block("u1", "s1", 100)
        };
        store
            .write(WriteBatch {
                puts: vec![new.clone()],
                ..WriteBatch::default()
            })
            .unwrap();
        let blocks = store.blocks("u1", "session", TimeRange::ALL).unwrap();
        assert_eq!(blocks, vec![new, unknown[0].clone(), unknown[1].clone()]);
    }

    #[test]
    fn a_second_open_of_the_same_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = EmbeddedStore::open(dir.path()).unwrap();
        let err = EmbeddedStore::open(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        assert!(err.to_string().contains("another dtc run"), "{err}");
    }

    #[test]
    fn an_unwritable_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = EmbeddedStore::open(&file.join("store")).err().unwrap();
        assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_store_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), vec![0xAB; 4096]).unwrap();
        assert!(EmbeddedStore::open(dir.path()).is_err());
    }
}
