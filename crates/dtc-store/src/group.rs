//! The embedded store's value format: every record of one identity and aggregate in one value.
//!
//! A group is a format byte, then one entry per record in key order: the length and bytes of
//! the key's dimensions (the key without its `esc(identity) esc(aggregate)` prefix, which is
//! the group's own key), then the length and bytes of the record. Lengths are LEB128 varints.
//!
//! One value per identity and aggregate instead of one per record makes a batch run insert a
//! B-tree entry per identity instead of per block (a fourteenth as many on the offer-ai job),
//! and a window run read an identity's blocks with one lookup. The price: a write to a group
//! rewrites all of it, so a write costs in proportion to the identity's stored records of that
//! aggregate, which retention bounds.

use crate::StoreError;

const GROUP_FORMAT: u8 = 1;

/// One record of a group: its dimension bytes and its record bytes.
type Entry<'a> = (&'a [u8], &'a [u8]);

/// The entries of a stored group: `(dims, record)` byte pairs in key order.
pub(crate) fn entries<'a>(
    group: &'a [u8],
    store: &'a str,
) -> impl Iterator<Item = Result<Entry<'a>, StoreError>> + 'a {
    let mut pos = 1;
    let mut failed = match group.first() {
        Some(&GROUP_FORMAT) => None,
        Some(&other) => Some(format!("unknown group format {other}")),
        None => Some("empty group".to_string()),
    };
    std::iter::from_fn(move || {
        if let Some(detail) = failed.take() {
            pos = group.len();
            return Some(Err(StoreError::corrupt(
                store,
                format!("record group: {detail}"),
            )));
        }
        if pos >= group.len() {
            return None;
        }
        let entry = read_bytes(group, &mut pos)
            .and_then(|dims| Some((dims, read_bytes(group, &mut pos)?)))
            .ok_or_else(|| StoreError::corrupt(store, "record group: truncated entry"));
        if entry.is_err() {
            pos = group.len();
        }
        Some(entry)
    })
}

/// Writes into `out` the group that results from `existing` (a stored group, or none) when
/// the records at `deletes` are removed and then `puts` are written, a later put of the same
/// dimensions winning. `deletes` and `puts` hold dimension bytes in order, `puts` stably so
/// (equal dimensions in write order). Returns the number of records in the new group; with
/// none, `out` is left empty and the group should be removed.
pub(crate) fn merge(
    existing: Option<&[u8]>,
    deletes: &[&[u8]],
    puts: &[Entry<'_>],
    out: &mut Vec<u8>,
    store: &str,
) -> Result<usize, StoreError> {
    out.clear();
    let mut old = existing.map(|group| entries(group, store).peekable());
    let mut next_old = || -> Result<Option<Entry<'_>>, StoreError> {
        match old.as_mut().and_then(Iterator::next) {
            Some(entry) => entry.map(Some),
            None => Ok(None),
        }
    };
    let mut pending_old = next_old()?;
    let mut deletes = deletes.iter().peekable();
    let mut written = 0;
    let mut i = 0;
    loop {
        // The last of a run of puts of the same dimensions is the one that stays.
        let put = puts.get(i).map(|&(dims, _)| {
            let mut last = i;
            while puts.get(last + 1).is_some_and(|&(d, _)| d == dims) {
                last += 1;
            }
            last
        });
        let next_put = put.map(|p| (p, puts[p]));
        let old_first = match (pending_old, next_put) {
            (None, None) => break,
            (Some(old), Some((_, put))) => old.0 < put.0,
            (old, _) => old.is_some(),
        };
        let (dims, record) = match (old_first, pending_old, next_put) {
            (true, Some(old), _) => {
                pending_old = next_old()?;
                while deletes.next_if(|d| **d < old.0).is_some() {}
                if deletes.next_if(|d| **d == old.0).is_some() {
                    continue;
                }
                old
            }
            (false, old, Some((p, put))) => {
                // The put replaces the stored record of the same dimensions.
                if old.is_some_and(|old| old.0 == put.0) {
                    pending_old = next_old()?;
                }
                i = p + 1;
                put
            }
            _ => break,
        };
        if written == 0 {
            out.push(GROUP_FORMAT);
        }
        write_bytes(out, dims);
        write_bytes(out, record);
        written += 1;
    }
    Ok(written)
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut n = bytes.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(bytes);
}

fn read_bytes<'a>(bytes: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        len |= usize::from(b & 0x7F).checked_shl(shift)?;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift >= usize::BITS {
            return None;
        }
    }
    let end = pos.checked_add(len)?;
    let out = bytes.get(*pos..end)?;
    *pos = end;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const STORE: &str = "test store";

    fn group_of(records: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        merge(None, &[], records, &mut out, STORE).unwrap();
        out
    }

    fn read(group: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        entries(group, STORE)
            .map(|e| e.map(|(d, r)| (d.to_vec(), r.to_vec())))
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Deletes, then puts in order, on a map: what `merge` must give.
    fn model(
        existing: &BTreeMap<Vec<u8>, Vec<u8>>,
        deletes: &[&[u8]],
        puts: &[(&[u8], &[u8])],
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut map = existing.clone();
        for d in deletes {
            map.remove(*d);
        }
        for (d, r) in puts {
            map.insert(d.to_vec(), r.to_vec());
        }
        map.into_iter().collect()
    }

    #[test]
    fn merge_agrees_with_deleting_then_putting_on_a_map() {
        // Every mix of four keys in the stored group, the deletes and the puts, with repeated
        // puts of a key, from a fixed-seed generator.
        let keys: [&[u8]; 5] = [b"", b"a", b"ab", b"b", b"\x00c"];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let values: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; usize::from(i) * 40]).collect();
        for _ in 0..2_000 {
            let mut existing = BTreeMap::new();
            for key in keys {
                if next(2) == 0 {
                    existing.insert(key.to_vec(), values[next(8) as usize].clone());
                }
            }
            let mut deletes: Vec<&[u8]> = keys.iter().copied().filter(|_| next(3) == 0).collect();
            deletes.sort();
            let mut puts: Vec<(&[u8], &[u8])> = Vec::new();
            for _ in 0..next(6) {
                let key = keys[next(5) as usize];
                puts.push((key, values[next(8) as usize].as_slice()));
            }
            // Stably: equal keys stay in write order, as `PackedBatch::sort_by_key` leaves them.
            puts.sort_by_key(|(d, _)| *d);
            let stored: Vec<(&[u8], &[u8])> = existing
                .iter()
                .map(|(d, r)| (d.as_slice(), r.as_slice()))
                .collect();
            let stored = (!stored.is_empty()).then(|| group_of(&stored));
            let mut out = Vec::new();
            let kept = merge(stored.as_deref(), &deletes, &puts, &mut out, STORE).unwrap();
            let want = model(&existing, &deletes, &puts);
            assert_eq!(kept, want.len());
            if want.is_empty() {
                assert!(out.is_empty());
            } else {
                assert_eq!(read(&out), want, "{existing:?} - {deletes:?} + {puts:?}");
            }
        }
    }

    #[test]
    fn lengths_of_every_varint_size_round_trip() {
        let long = vec![7u8; 200_000];
        let group = group_of(&[
            (b"", b""),
            (b"k", &long[..127]),
            (b"l", &long[..128]),
            (b"m", &long),
        ]);
        let got = read(&group);
        assert_eq!(got.len(), 4);
        assert_eq!(got[3].1.len(), 200_000);
        assert_eq!(got[2].1.len(), 128);
    }

    #[test]
    fn a_damaged_group_is_a_corrupt_store_error_not_a_panic() {
        let group = group_of(&[(b"a", b"record one"), (b"b", b"record two")]);
        for cut in 0..group.len() {
            let results: Vec<_> = entries(&group[..cut], STORE).collect();
            if cut > 0 && results.iter().all(Result::is_ok) {
                // A cut between entries leaves a shorter, valid group.
                continue;
            }
            let err = results.into_iter().find_map(Result::err).unwrap();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        }
        let mut unknown = group.clone();
        unknown[0] = 9;
        let err = entries(&unknown, STORE).find_map(Result::err).unwrap();
        assert!(err.to_string().contains("unknown group format 9"), "{err}");
        // A length past the end, and a varint that never ends.
        for bad in [
            &[GROUP_FORMAT, 5, b'a'][..],
            &[GROUP_FORMAT, 0xFF, 0xFF, 0xFF][..],
        ] {
            assert!(entries(bad, STORE).any(|e| e.is_err()));
            assert!(merge(Some(bad), &[], &[(b"a", b"x")], &mut Vec::new(), STORE).is_err());
        }
    }
}
