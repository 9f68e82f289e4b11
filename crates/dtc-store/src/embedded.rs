//! The default store: one redb file, `<dir>/blocks.redb`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{Database, DatabaseError, Durability, ReadableDatabase, TableDefinition};

use crate::encoding;
use crate::{
    BlockStore, Checkpoint, IdentityPage, RecordKey, StoreError, StoredRecord, TimeRange,
    WriteBatch,
};

/// Record key → record bytes. There is no time index: an aggregate's blocks of one identity lie
/// next to each other in key order, and each record's header holds its start time, so
/// [`BlockStore::blocks`] reads them in one range scan and skips those outside the range without
/// decoding their columns. A second B-tree kept in step with this one cost as much as the
/// records' own inserts, on every block of every run.
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
/// The time index of stores written before the index was dropped; deleted on open, so that no
/// stale copy of it outlives the records it would describe.
const LEGACY_BY_START: TableDefinition<&[u8], ()> = TableDefinition::new("blocks_by_start");
/// Source partition → next offset to apply.
const CHECKPOINTS: TableDefinition<&str, i64> = TableDefinition::new("checkpoints");

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
        txn.open_table(RECORDS).map_err(|e| store.err(e))?;
        txn.delete_table(LEGACY_BY_START)
            .map_err(|e| store.err(e))?;
        txn.open_table(CHECKPOINTS).map_err(|e| store.err(e))?;
        txn.commit().map_err(|e| store.err(e))?;
        Ok(store)
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
            let mut records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
            let mut checkpoints = txn.open_table(CHECKPOINTS).map_err(|e| self.err(e))?;
            for key in packed.deletes() {
                records.remove(key).map_err(|e| self.err(e))?;
            }
            for (key, record) in packed.puts() {
                records.insert(key, record).map_err(|e| self.err(e))?;
            }
            for (partition, checkpoint) in &batch.checkpoints {
                checkpoints
                    .insert(partition.as_str(), checkpoint.offset)
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
            message: format!("{} ({})", other, file.display()),
            retryable: false,
        },
    }
}

impl BlockStore for EmbeddedStore {
    fn load_identity(&self, identity: &str) -> Result<Vec<StoredRecord>, StoreError> {
        let prefix = encoding::identity_prefix(identity);
        let end = encoding::after_prefix(&prefix);
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        let range = records
            .range(prefix.as_slice()..end.as_slice())
            .map_err(|e| self.err(e))?;
        range
            .map(|entry| {
                let (k, v) = entry.map_err(|e| self.err(e))?;
                let key = encoding::decode_key(k.value(), &self.name)?;
                encoding::decode_record(key, v.value(), &self.name)
            })
            .collect()
    }

    fn get(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError> {
        let encoded = encoding::encode_key(key)?;
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        let found = records
            .get(encoded.bytes.as_slice())
            .map_err(|e| self.err(e))?;
        found
            .map(|v| encoding::decode_record(key.clone(), v.value(), &self.name))
            .transpose()
    }

    fn blocks(
        &self,
        identity: &str,
        aggregate: &str,
        range: TimeRange,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let prefix = encoding::aggregate_prefix(identity, aggregate);
        let end = encoding::after_prefix(&prefix);
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        let entries = records
            .range(prefix.as_slice()..end.as_slice())
            .map_err(|e| self.err(e))?;
        let mut blocks = Vec::new();
        for entry in entries {
            let (key, bytes) = entry.map_err(|e| self.err(e))?;
            let Some(start) = encoding::stored_start(bytes.value(), &self.name)? else {
                continue;
            };
            if range.contains(start) {
                let key = encoding::decode_key(key.value(), &self.name)?;
                blocks.push((
                    start,
                    encoding::decode_record(key, bytes.value(), &self.name)?,
                ));
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

    fn identities(&self, after: Option<&str>, limit: usize) -> Result<IdentityPage, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        let mut from = after.map_or_else(Vec::new, |a| {
            encoding::after_prefix(&encoding::identity_prefix(a))
        });
        let mut page = IdentityPage::default();
        // One seek per identity: after reading an identity, jump past all of its keys.
        let first_from = |from: &[u8]| -> Result<Option<String>, StoreError> {
            let mut range = records.range(from..).map_err(|e| self.err(e))?;
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
        fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError> {
            self.store.checkpoint(partition)
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
    }

    fn block(identity: &str, session: &str, start_secs: i64) -> StoredRecord {
        let start = DateTime::from_timestamp(start_secs, 0).unwrap();
        StoredRecord {
            key: RecordKey::new(identity, "session", vec![Value::str(session)]),
            kind: RecordKind::Block,
            start_time: Some(start),
            columns: vec![Value::str(identity), Value::DateTime(start), Value::Int(3)],
            version: 2,
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
