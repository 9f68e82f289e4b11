//! In-process store for tests and `memory:` runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError, RwLock};

use crate::encoding::{self, EncodedKey};
use crate::{
    BlockStore, Checkpoint, IdentityPage, RecordKey, StoreError, StoredRecord, TimeRange,
    WriteBatch,
};

const NAME: &str = "memory store";

/// Records in ordered maps behind a lock. It keeps the same encoded keys and record bytes as
/// the embedded store, so both behave identically (ordering, exact values, encoding limits) and
/// tests on memory stand for the file-backed store.
#[derive(Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    records: BTreeMap<Vec<u8>, Vec<u8>>,
    by_start: BTreeSet<Vec<u8>>,
    checkpoints: BTreeMap<String, Checkpoint>,
    run_state: BTreeMap<String, Vec<u8>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    // A panic while holding the lock cannot leave a half-applied batch: `write` encodes and
    // validates everything before the first mutation, so the data behind a poisoned lock is
    // still consistent and is used as is.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_lock(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn remove(&mut self, key: &EncodedKey) -> Result<(), StoreError> {
        if let Some(old) = self.records.remove(&key.bytes)
            && let Some(start) = encoding::stored_start(&old, NAME)?
        {
            self.by_start.remove(&key.index_key(start));
        }
        Ok(())
    }
}

impl BlockStore for MemoryStore {
    fn load_identity(&self, identity: &str) -> Result<Vec<StoredRecord>, StoreError> {
        let prefix = encoding::identity_prefix(identity);
        let end = encoding::after_prefix(&prefix);
        let inner = self.read();
        inner
            .records
            .range(prefix..end)
            .map(|(k, v)| encoding::decode_record(encoding::decode_key(k, NAME)?, v, NAME))
            .collect()
    }

    fn get(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError> {
        let encoded = encoding::encode_key(key)?;
        let inner = self.read();
        inner
            .records
            .get(&encoded.bytes)
            .map(|v| encoding::decode_record(key.clone(), v, NAME))
            .transpose()
    }

    fn blocks(
        &self,
        identity: &str,
        aggregate: &str,
        range: TimeRange,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let Some((lo, hi, prefix_len)) = encoding::block_bounds(identity, aggregate, range) else {
            return Ok(Vec::new());
        };
        let inner = self.read();
        inner
            .by_start
            .range(lo..hi)
            .map(|index_key| {
                let key = encoding::record_key_of_index(index_key, prefix_len, NAME)?;
                let bytes = inner.records.get(&key).ok_or_else(|| {
                    StoreError::corrupt(NAME, "time index points at a missing record")
                })?;
                encoding::decode_record(encoding::decode_key(&key, NAME)?, bytes, NAME)
            })
            .collect()
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        batch.validate()?;
        let (deletes, puts) = encoding::encode_batch(&batch)?;
        let mut inner = self.write_lock();
        let fenced =
            batch.fenced(|p| Ok::<_, StoreError>(inner.checkpoints.get(p).map(|c| c.offset)))?;
        if !fenced.is_empty() {
            return Err(StoreError::Fenced { partitions: fenced });
        }
        for key in &deletes {
            inner.remove(key)?;
        }
        for (key, bytes, record) in puts {
            inner.remove(&key)?;
            if let Some(start) = record.start_time {
                inner.by_start.insert(key.index_key(start));
            }
            inner.records.insert(key.bytes, bytes);
        }
        for (partition, checkpoint) in batch.checkpoints {
            inner.checkpoints.insert(partition, checkpoint);
        }
        for (name, value) in batch.run_state {
            match value {
                Some(bytes) => inner.run_state.insert(name, bytes),
                None => inner.run_state.remove(&name),
            };
        }
        Ok(())
    }

    fn holds_no_identity(&self) -> Result<bool, StoreError> {
        Ok(self.identities(None, 1)?.identities.is_empty())
    }

    fn identities(&self, after: Option<&str>, limit: usize) -> Result<IdentityPage, StoreError> {
        let inner = self.read();
        let mut from = after.map_or_else(Vec::new, |a| {
            encoding::after_prefix(&encoding::identity_prefix(a))
        });
        let mut page = IdentityPage::default();
        while page.identities.len() < limit.max(1) {
            let Some((key, _)) = inner.records.range(from..).next() else {
                return Ok(page);
            };
            let identity = encoding::identity_of(key, NAME)?;
            from = encoding::after_prefix(&encoding::identity_prefix(&identity));
            page.identities.push(Arc::from(identity.as_str()));
        }
        if inner.records.range(from..).next().is_some() {
            page.next = page.identities.last().map(|i| i.to_string());
        }
        Ok(page)
    }

    fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.read().checkpoints.get(partition).copied())
    }

    fn run_state(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .read()
            .run_state
            .range(prefix.to_string()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect())
    }

    fn describe(&self) -> String {
        "in-memory store".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        crate::conformance::run_all(|| Box::new(MemoryStore::new()));
        crate::conformance::identities_are_sorted(&MemoryStore::new());
        crate::conformance::a_new_store_knows_it_holds_no_identity(&MemoryStore::new());
    }
}
