//! Splitting a store's identities among workers (`--segment I --total-segments N`).

use crate::{
    BlockStore, Checkpoint, IdentityPage, RecordKey, StoreError, StoredRecord, TimeRange,
    WriteBatch,
};

/// Segment `index` of `total` (`0 <= index < total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    index: u32,
    total: u32,
}

impl Segment {
    /// `None` unless `index < total`.
    pub fn new(index: u32, total: u32) -> Option<Segment> {
        (index < total).then_some(Segment { index, total })
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    /// Whether `identity` belongs to this segment, by a hash of its bytes (FNV-1a, which
    /// is the same on every build and platform, unlike std's hasher).
    pub fn contains(&self, identity: &str) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in identity.as_bytes() {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash % u64::from(self.total) == u64::from(self.index)
    }
}

/// A store seen through one segment: [`BlockStore::identities`] lists only that segment's
/// identities (through [`BlockStore::identities_in_segment`]); everything else passes through.
pub struct SegmentedStore<'a> {
    inner: &'a dyn BlockStore,
    segment: Segment,
}

impl<'a> SegmentedStore<'a> {
    pub fn new(inner: &'a dyn BlockStore, segment: Segment) -> SegmentedStore<'a> {
        SegmentedStore { inner, segment }
    }
}

impl BlockStore for SegmentedStore<'_> {
    fn load_identity(&self, identity: &str) -> Result<Vec<StoredRecord>, StoreError> {
        self.inner.load_identity(identity)
    }

    fn get(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError> {
        self.inner.get(key)
    }

    fn blocks(
        &self,
        identity: &str,
        aggregate: &str,
        range: TimeRange,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.inner.blocks(identity, aggregate, range)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.inner.write(batch)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync()
    }

    fn identities(&self, after: Option<&str>, limit: usize) -> Result<IdentityPage, StoreError> {
        self.inner.identities_in_segment(self.segment, after, limit)
    }

    fn identities_in_segment(
        &self,
        segment: Segment,
        after: Option<&str>,
        limit: usize,
    ) -> Result<IdentityPage, StoreError> {
        self.inner.identities_in_segment(segment, after, limit)
    }

    fn checkpoint(&self, partition: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.checkpoint(partition)
    }

    fn run_state(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.run_state(prefix)
    }

    fn describe(&self) -> String {
        format!(
            "{} (segment {} of {})",
            self.inner.describe(),
            self.segment.index,
            self.segment.total
        )
    }

    fn usage(&self) -> Option<String> {
        self.inner.usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, RecordKind};

    #[test]
    fn segments_split_identities_exactly_once() {
        let store = MemoryStore::new();
        let ids: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
        let puts = ids
            .iter()
            .map(|id| StoredRecord {
                key: RecordKey::new(id, "profile", vec![]),
                kind: RecordKind::Identity,
                start_time: None,
                columns: vec![],
                version: 1,
                order: 1,
                writer: 0,
            })
            .collect();
        store
            .write(WriteBatch {
                puts,
                ..WriteBatch::default()
            })
            .unwrap();
        let mut seen = Vec::new();
        for index in 0..3 {
            let segment = Segment::new(index, 3).unwrap();
            let view = SegmentedStore::new(&store, segment);
            let part = view.all_identities().unwrap();
            assert!(!part.is_empty(), "segment {index} is empty");
            assert!(part.iter().all(|id| segment.contains(id)));
            assert!(view.describe().contains("segment"));
            seen.extend(part.iter().map(|id| id.to_string()));
        }
        seen.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn segment_bounds() {
        assert!(Segment::new(3, 3).is_none());
        assert!(Segment::new(0, 0).is_none());
        let only = Segment::new(0, 1).unwrap();
        assert!(only.contains("anything") && only.contains(""));
    }
}
