//! Byte layout of keys and records, shared by every backend (memory, embedded, and DynamoDB in
//! `dtc-aws`, which stores the same bytes as its sort keys and record attribute).
//!
//! Keys are order-preserving so that prefix and range scans serve the access paths:
//!
//! - record key: `esc(identity) esc(aggregate) dim*`
//! - time-index key: `esc(identity) esc(aggregate) time(start) dim*` (the memory store's and
//!   DynamoDB's; the embedded store scans an aggregate's record keys instead)
//!
//! `esc` copies a string's bytes with `00` written as `00 FF` and ends it with `00 01`, so that
//! no escaped string is a prefix of another (`u1` / `u10`) and byte order is string order. A
//! dimension is a tag byte, ordered by type, and an order-preserving payload: integers
//! big-endian with the sign bit flipped, floats by their IEEE bits made sortable, times as
//! seconds and nanoseconds. Containers (never valid dimensions in a spec, but representable)
//! are their value-codec bytes escaped like a string.
//!
//! A record value is a header (format byte, kind, version, a block's start time, so that the
//! old index entry can be found, and a range scan can skip a block, without decoding the
//! columns, and the record's creation ordinal as a LEB128 varint) followed by the columns in
//! the `dtc_plan::codec` row encoding. Records of format 1, written before the ordinal was
//! kept, have no ordinal and read with ordinal 0.

use std::ops::Range;

use chrono::{DateTime, TimeDelta, Utc};
use dtc_plan::codec;
use dtc_plan::value::Value;

use crate::{RecordKey, RecordKind, StoreError, StoredRecord, TimeRange, WriteBatch};

const TERMINATOR: [u8; 2] = [0x00, 0x01];
const ESCAPED_ZERO: [u8; 2] = [0x00, 0xFF];
/// Byte length of an encoded time: 8 bytes of seconds, 4 of nanoseconds.
const TIME_LEN: usize = 12;

const DIM_NULL: u8 = 0x01;
const DIM_BOOL: u8 = 0x02;
const DIM_INT: u8 = 0x03;
const DIM_FLOAT: u8 = 0x04;
const DIM_STR: u8 = 0x05;
const DIM_DATETIME: u8 = 0x06;
const DIM_TIMEDELTA: u8 = 0x07;
const DIM_OTHER: u8 = 0x08;

const RECORD_FORMAT: u8 = 2;
/// Format 2 followed by the record's writer (8 bytes, little-endian): written for records a
/// resumable run wrote, so a record without one stays as small as before.
const RECORD_FORMAT_WITH_WRITER: u8 = 3;
/// The format of stores written before records kept their creation ordinal: the same header
/// without it.
const RECORD_FORMAT_WITHOUT_ORDER: u8 = 1;
const KIND_IDENTITY: u8 = 0;
const KIND_BLOCK: u8 = 1;
/// Format byte, kind byte, version.
const HEADER_LEN: usize = 1 + 1 + 8;

/// A record key's bytes; the first `prefix_len` bytes are `esc(identity) esc(aggregate)`.
pub struct EncodedKey {
    pub bytes: Vec<u8>,
    pub prefix_len: usize,
}

impl EncodedKey {
    /// The time-index key of this record for a block starting at `start`.
    pub fn index_key(&self, start: DateTime<Utc>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + TIME_LEN);
        out.extend_from_slice(&self.bytes[..self.prefix_len]);
        write_time(&mut out, start.timestamp(), start.timestamp_subsec_nanos());
        out.extend_from_slice(&self.bytes[self.prefix_len..]);
        out
    }
}

/// The record key bytes of `key` (identity, aggregate, then dimensions).
pub fn encode_key(key: &RecordKey) -> Result<EncodedKey, StoreError> {
    // Room for the dimensions that usually follow (a time and a short string, say).
    let mut bytes = Vec::with_capacity(key.identity.len() + key.aggregate.len() + 4 + 32);
    let prefix_len = encode_key_into(key, &mut bytes)?;
    Ok(EncodedKey { bytes, prefix_len })
}

/// [`encode_key`]'s bytes, appended to `out`; the length of their prefix.
fn encode_key_into(key: &RecordKey, out: &mut Vec<u8>) -> Result<usize, StoreError> {
    let start = out.len();
    write_aggregate_prefix(out, &key.identity, &key.aggregate);
    let prefix_len = out.len() - start;
    write_dims(out, &key.dims)?;
    Ok(prefix_len)
}

fn write_dims(out: &mut Vec<u8>, dims: &[Value]) -> Result<(), StoreError> {
    dims.iter().try_for_each(|dim| write_dim(out, dim))
}

/// The prefix of every key of an identity.
pub fn identity_prefix(identity: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(identity.len() + 2);
    write_escaped(&mut out, identity.as_bytes());
    out
}

/// Sized for the dimensions that follow in a record key (a time and a short string, say), so
/// that encoding a key allocates once.
pub(crate) fn aggregate_prefix(identity: &str, aggregate: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(identity.len() + aggregate.len() + 4 + 32);
    write_aggregate_prefix(&mut out, identity, aggregate);
    out
}

fn write_aggregate_prefix(out: &mut Vec<u8>, identity: &str, aggregate: &str) {
    write_escaped(out, identity.as_bytes());
    write_escaped(out, aggregate.as_bytes());
}

/// The smallest key greater than every key starting with `prefix`, which ends with a
/// terminator: bumping its last byte (`01` → `02`) skips exactly the keys under it.
pub fn after_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    if let Some(last) = out.last_mut() {
        *last += 1;
    }
    out
}

/// Time-index bounds `[lo, hi)` for the blocks of an identity and aggregate in `range`, and the
/// prefix length; `None` when the range is empty.
pub fn block_bounds(
    identity: &str,
    aggregate: &str,
    range: TimeRange,
) -> Option<(Vec<u8>, Vec<u8>, usize)> {
    let prefix = aggregate_prefix(identity, aggregate);
    let bound = |t: DateTime<Utc>| {
        let mut out = prefix.clone();
        write_time(&mut out, t.timestamp(), t.timestamp_subsec_nanos());
        out
    };
    let lo = range.start.map_or_else(|| prefix.clone(), bound);
    let hi = range.end.map_or_else(|| after_prefix(&prefix), bound);
    (lo < hi).then_some((lo, hi, prefix.len()))
}

/// The record key a time-index key points at: the index key without its time.
pub(crate) fn record_key_of_index(
    index_key: &[u8],
    prefix_len: usize,
    store: &str,
) -> Result<Vec<u8>, StoreError> {
    if index_key.len() < prefix_len + TIME_LEN {
        return Err(StoreError::corrupt(store, "time-index key is too short"));
    }
    let mut out = Vec::with_capacity(index_key.len() - TIME_LEN);
    out.extend_from_slice(&index_key[..prefix_len]);
    out.extend_from_slice(&index_key[prefix_len + TIME_LEN..]);
    Ok(out)
}

/// The identity a record key belongs to.
pub(crate) fn identity_of(key: &[u8], store: &str) -> Result<String, StoreError> {
    let mut pos = 0;
    read_string(key, &mut pos, store)
}

/// The record key that [`encode_key`] wrote as `bytes`.
pub fn decode_key(bytes: &[u8], store: &str) -> Result<RecordKey, StoreError> {
    let mut pos = 0;
    let identity = read_string(bytes, &mut pos, store)?;
    let aggregate = read_string(bytes, &mut pos, store)?;
    let dims = decode_dims(&bytes[pos..], store)?;
    Ok(RecordKey::new(&identity, &aggregate, dims))
}

/// The dimension values of a record key, from the bytes after its identity and aggregate.
pub(crate) fn decode_dims(bytes: &[u8], store: &str) -> Result<Vec<Value>, StoreError> {
    let mut pos = 0;
    let mut dims = Vec::new();
    while pos < bytes.len() {
        dims.push(read_dim(bytes, &mut pos, store)?);
    }
    Ok(dims)
}

/// The length of a record key's `esc(identity) esc(aggregate)` prefix.
pub(crate) fn prefix_len(key: &[u8], store: &str) -> Result<usize, StoreError> {
    let mut pos = 0;
    read_escaped(key, &mut pos, store)?;
    read_escaped(key, &mut pos, store)?;
    Ok(pos)
}

/// A put in stored form: encoded key and record bytes, beside the record.
pub(crate) type EncodedPut<'a> = (EncodedKey, Vec<u8>, &'a StoredRecord);

/// A write batch in stored form: the encoded keys to delete and the encoded puts. Encoding
/// everything first lets a backend fail on a bad record before it changes anything.
pub(crate) fn encode_batch(
    batch: &WriteBatch,
) -> Result<(Vec<EncodedKey>, Vec<EncodedPut<'_>>), StoreError> {
    let deletes = batch
        .deletes
        .iter()
        .map(encode_key)
        .collect::<Result<Vec<_>, _>>()?;
    let puts = batch
        .puts
        .iter()
        .map(|r| Ok((encode_key(&r.key)?, encode_record(r)?, r)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((deletes, puts))
}

/// Runs `encode` on `bytes`; the range of what it appended, and what `encode` returned.
fn append<T>(
    bytes: &mut Vec<u8>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<T, StoreError>,
) -> Result<(Range<usize>, T), StoreError> {
    let start = bytes.len();
    let out = encode(bytes)?;
    Ok((start..bytes.len(), out))
}

/// An encoded key in a [`PackedBatch`]: its range, and the length of its
/// `esc(identity) esc(aggregate)` prefix.
struct PackedKey {
    range: Range<usize>,
    prefix_len: usize,
}

/// A key of a [`PackedBatch`] split into the identity and aggregate part and the dimensions.
#[derive(Clone, Copy)]
pub(crate) struct SplitKey<'a> {
    pub(crate) prefix: &'a [u8],
    pub(crate) dims: &'a [u8],
}

/// A write batch encoded into one buffer, its keys and records being ranges of it: thousands of
/// records cost a few allocations instead of two each.
pub(crate) struct PackedBatch {
    bytes: Vec<u8>,
    deletes: Vec<PackedKey>,
    /// Key, record range.
    puts: Vec<(PackedKey, Range<usize>)>,
}

impl PackedBatch {
    /// Encodes every delete and put of `batch`, or fails on the first that cannot be encoded.
    pub(crate) fn encode(batch: &WriteBatch) -> Result<PackedBatch, StoreError> {
        // Keys of about 40 bytes, records of about 100: one reallocation at most, usually.
        let mut bytes = Vec::with_capacity(batch.deletes.len() * 48 + batch.puts.len() * 160);
        let packed_key = |(range, prefix_len)| PackedKey { range, prefix_len };
        let deletes = batch
            .deletes
            .iter()
            .map(|key| append(&mut bytes, |out| encode_key_into(key, out)).map(packed_key))
            .collect::<Result<Vec<_>, _>>()?;
        let puts = batch
            .puts
            .iter()
            .map(|r| {
                let key = append(&mut bytes, |out| encode_key_into(&r.key, out))?;
                let (record, ()) = append(&mut bytes, |out| encode_record_into(r, out))?;
                Ok((packed_key(key), record))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(PackedBatch {
            bytes,
            deletes,
            puts,
        })
    }

    /// Puts deletes and puts each in key order; stable, so two writes of one key keep theirs.
    pub(crate) fn sort_by_key(&mut self) {
        let bytes = &self.bytes;
        self.deletes
            .sort_by(|a, b| bytes[a.range.clone()].cmp(&bytes[b.range.clone()]));
        self.puts
            .sort_by(|a, b| bytes[a.0.range.clone()].cmp(&bytes[b.0.range.clone()]));
    }

    fn split(&self, key: &PackedKey) -> SplitKey<'_> {
        let (prefix, dims) = self.bytes[key.range.clone()].split_at(key.prefix_len);
        SplitKey { prefix, dims }
    }

    pub(crate) fn deletes(&self) -> impl Iterator<Item = SplitKey<'_>> {
        self.deletes.iter().map(|key| self.split(key))
    }

    /// Key and record bytes of each put.
    pub(crate) fn puts(&self) -> impl Iterator<Item = (SplitKey<'_>, &[u8])> {
        self.puts
            .iter()
            .map(|(key, record)| (self.split(key), &self.bytes[record.clone()]))
    }
}

/// The stored bytes of a record: header, then its columns in the value codec.
pub fn encode_record(record: &StoredRecord) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(64);
    encode_record_into(record, &mut out)?;
    Ok(out)
}

/// [`encode_record`]'s bytes, appended to `out`.
fn encode_record_into(record: &StoredRecord, out: &mut Vec<u8>) -> Result<(), StoreError> {
    if record.writer == 0 {
        write_header_start(RECORD_FORMAT, record, out);
        write_varint(out, record.order);
    } else {
        write_header_start(RECORD_FORMAT_WITH_WRITER, record, out);
        write_varint(out, record.order);
        out.extend_from_slice(&record.writer.to_le_bytes());
    }
    codec::encode_values(&record.columns, out).map_err(|e| {
        StoreError::InvalidWrite(format!(
            "record {}{:?} of identity `{}` cannot be encoded: {e}",
            record.key.aggregate, record.key.dims, record.key.identity
        ))
    })
}

/// The part of a record's header that every record format has: the format byte, the kind,
/// the version and a block's start time.
fn write_header_start(format: u8, record: &StoredRecord, out: &mut Vec<u8>) {
    out.push(format);
    out.push(match record.kind {
        RecordKind::Identity => KIND_IDENTITY,
        RecordKind::Block => KIND_BLOCK,
    });
    out.extend_from_slice(&record.version.to_le_bytes());
    if let Some(start) = record.start_time {
        out.extend_from_slice(&start.timestamp().to_le_bytes());
        out.extend_from_slice(&start.timestamp_subsec_nanos().to_le_bytes());
    }
}

/// A record from the bytes [`encode_record`] wrote, with its key decoded separately.
pub fn decode_record(
    key: RecordKey,
    bytes: &[u8],
    store: &str,
) -> Result<StoredRecord, StoreError> {
    let header = read_header(bytes, store)?;
    let columns = codec::decode_values(header.columns)
        .map_err(|e| StoreError::corrupt(store, format!("record columns: {e}")))?;
    Ok(StoredRecord {
        key,
        kind: header.kind,
        start_time: header.start_time,
        columns,
        version: header.version,
        order: header.order,
        writer: header.writer,
    })
}

/// The start time in a stored record's header, without decoding its columns.
pub(crate) fn stored_start(bytes: &[u8], store: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    read_header(bytes, store).map(|header| header.start_time)
}

/// A record's header fields, and the bytes of its columns that follow them.
struct Header<'a> {
    kind: RecordKind,
    version: u64,
    start_time: Option<DateTime<Utc>>,
    order: u64,
    writer: u64,
    columns: &'a [u8],
}

fn read_header<'a>(bytes: &'a [u8], store: &str) -> Result<Header<'a>, StoreError> {
    let corrupt = |detail: &str| StoreError::corrupt(store, format!("record header: {detail}"));
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| corrupt("truncated"))?;
    let (has_order, has_writer) = match header[0] {
        RECORD_FORMAT_WITH_WRITER => (true, true),
        RECORD_FORMAT => (true, false),
        RECORD_FORMAT_WITHOUT_ORDER => (false, false),
        other => return Err(corrupt(&format!("unknown record format {other}"))),
    };
    let version = u64::from_le_bytes(fixed(&header[2..10]));
    let mut rest = &bytes[HEADER_LEN..];
    let (kind, start_time) = match header[1] {
        KIND_IDENTITY => (RecordKind::Identity, None),
        KIND_BLOCK => {
            let time = rest.get(..TIME_LEN).ok_or_else(|| corrupt("truncated"))?;
            let secs = i64::from_le_bytes(fixed(&time[..8]));
            let nanos = u32::from_le_bytes(fixed(&time[8..]));
            let start = DateTime::from_timestamp(secs, nanos)
                .ok_or_else(|| corrupt("start time out of range"))?;
            rest = &rest[TIME_LEN..];
            (RecordKind::Block, Some(start))
        }
        other => return Err(corrupt(&format!("unknown record kind {other}"))),
    };
    let order = if has_order {
        read_varint(&mut rest).ok_or_else(|| corrupt("bad creation ordinal"))?
    } else {
        0
    };
    let writer = if has_writer {
        let bytes = rest.get(..8).ok_or_else(|| corrupt("truncated"))?;
        let writer = u64::from_le_bytes(fixed(bytes));
        rest = &rest[8..];
        writer
    } else {
        0
    };
    Ok(Header {
        kind,
        version,
        start_time,
        order,
        writer,
        columns: rest,
    })
}

/// LEB128: one byte for ordinals below 128, at most ten for any `u64`.
fn write_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A varint [`write_varint`] wrote, taken off the front of `bytes`; `None` if it is truncated
/// or does not fit in a `u64`.
fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let payload = u64::from(b & 0x7F);
        // The tenth byte holds the top bit of a u64 only.
        if i == 9 && payload > 1 {
            return None;
        }
        n |= payload << (7 * i);
        if b & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(n);
        }
    }
    None
}

/// A record's bytes as stores written before the creation ordinal was kept have them: format
/// 1, the header without the ordinal. For tests that such stores still read.
#[cfg(test)]
pub(crate) fn encode_record_without_order(record: &StoredRecord) -> Vec<u8> {
    let mut out = Vec::new();
    write_header_start(RECORD_FORMAT_WITHOUT_ORDER, record, &mut out);
    codec::encode_values(&record.columns, &mut out).expect("test columns encode");
    out
}

/// Copies a slice whose length the caller has already checked.
fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut parts = bytes.split(|&b| b == 0);
    if let Some(first) = parts.next() {
        out.extend_from_slice(first);
    }
    for part in parts {
        out.extend_from_slice(&ESCAPED_ZERO);
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&TERMINATOR);
}

fn read_escaped(bytes: &[u8], pos: &mut usize, store: &str) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    loop {
        match bytes.get(*pos..*pos + 2) {
            Some(&[0x00, 0x01]) => {
                *pos += 2;
                return Ok(out);
            }
            Some(&[0x00, 0xFF]) => {
                out.push(0);
                *pos += 2;
            }
            _ => match bytes.get(*pos) {
                Some(&b) if b != 0 => {
                    out.push(b);
                    *pos += 1;
                }
                _ => return Err(StoreError::corrupt(store, "bad string in a key")),
            },
        }
    }
}

fn read_string(bytes: &[u8], pos: &mut usize, store: &str) -> Result<String, StoreError> {
    String::from_utf8(read_escaped(bytes, pos, store)?)
        .map_err(|_| StoreError::corrupt(store, "key string is not UTF-8"))
}

/// Big-endian with the sign bit flipped: byte order equals numeric order.
fn ordered_i64(i: i64) -> [u8; 8] {
    ((i as u64) ^ (1 << 63)).to_be_bytes()
}

fn unordered_i64(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// Negative floats have all bits flipped, positive ones only the sign bit, so that byte order
/// is numeric order (NaNs sort at the ends, by payload).
fn ordered_f64(f: f64) -> [u8; 8] {
    let bits = f.to_bits();
    let key = if bits >> 63 == 1 {
        !bits
    } else {
        bits ^ (1 << 63)
    };
    key.to_be_bytes()
}

fn unordered_f64(bytes: [u8; 8]) -> f64 {
    let key = u64::from_be_bytes(bytes);
    let bits = if key >> 63 == 1 {
        key ^ (1 << 63)
    } else {
        !key
    };
    f64::from_bits(bits)
}

fn write_time(out: &mut Vec<u8>, secs: i64, nanos: u32) {
    out.extend_from_slice(&ordered_i64(secs));
    out.extend_from_slice(&nanos.to_be_bytes());
}

fn read_fixed<const N: usize>(
    bytes: &[u8],
    pos: &mut usize,
    store: &str,
) -> Result<[u8; N], StoreError> {
    let slice = bytes
        .get(*pos..*pos + N)
        .ok_or_else(|| StoreError::corrupt(store, "truncated key"))?;
    *pos += N;
    Ok(fixed(slice))
}

fn read_time(bytes: &[u8], pos: &mut usize, store: &str) -> Result<(i64, u32), StoreError> {
    let secs = unordered_i64(read_fixed(bytes, pos, store)?);
    let nanos = u32::from_be_bytes(read_fixed(bytes, pos, store)?);
    Ok((secs, nanos))
}

fn write_dim(out: &mut Vec<u8>, dim: &Value) -> Result<(), StoreError> {
    match dim {
        Value::Null => out.push(DIM_NULL),
        Value::Bool(b) => out.extend_from_slice(&[DIM_BOOL, u8::from(*b)]),
        Value::Int(i) => {
            out.push(DIM_INT);
            out.extend_from_slice(&ordered_i64(*i));
        }
        Value::Float(f) => {
            out.push(DIM_FLOAT);
            out.extend_from_slice(&ordered_f64(*f));
        }
        Value::Str(s) => {
            out.push(DIM_STR);
            write_escaped(out, s.as_bytes());
        }
        Value::DateTime(t) => {
            out.push(DIM_DATETIME);
            write_time(out, t.timestamp(), t.timestamp_subsec_nanos());
        }
        Value::TimeDelta(d) => {
            out.push(DIM_TIMEDELTA);
            let (secs, nanos) = (d.num_seconds(), d.subsec_nanos());
            // Stored as whole seconds and a non-negative remainder, which sorts correctly.
            let (secs, nanos) = if nanos < 0 {
                (secs - 1, nanos + 1_000_000_000)
            } else {
                (secs, nanos)
            };
            write_time(out, secs, nanos.unsigned_abs());
        }
        Value::List(_) | Value::Tuple(_) | Value::Set(_) | Value::Map(_) => {
            let mut encoded = Vec::new();
            codec::encode_value(dim, &mut encoded).map_err(|e| {
                StoreError::InvalidWrite(format!("dimension value cannot be encoded: {e}"))
            })?;
            out.push(DIM_OTHER);
            write_escaped(out, &encoded);
        }
    }
    Ok(())
}

fn read_dim(bytes: &[u8], pos: &mut usize, store: &str) -> Result<Value, StoreError> {
    let [tag] = read_fixed(bytes, pos, store)?;
    Ok(match tag {
        DIM_NULL => Value::Null,
        DIM_BOOL => match read_fixed(bytes, pos, store)? {
            [0] => Value::Bool(false),
            [1] => Value::Bool(true),
            _ => return Err(StoreError::corrupt(store, "bad boolean in a key")),
        },
        DIM_INT => Value::Int(unordered_i64(read_fixed(bytes, pos, store)?)),
        DIM_FLOAT => Value::Float(unordered_f64(read_fixed(bytes, pos, store)?)),
        DIM_STR => Value::Str(read_string(bytes, pos, store)?.into()),
        DIM_DATETIME => {
            let (secs, nanos) = read_time(bytes, pos, store)?;
            DateTime::from_timestamp(secs, nanos)
                .map(Value::DateTime)
                .ok_or_else(|| StoreError::corrupt(store, "datetime in a key out of range"))?
        }
        DIM_TIMEDELTA => {
            let (secs, nanos) = read_time(bytes, pos, store)?;
            TimeDelta::new(secs, nanos)
                .map(Value::TimeDelta)
                .ok_or_else(|| StoreError::corrupt(store, "timedelta in a key out of range"))?
        }
        DIM_OTHER => {
            let encoded = read_escaped(bytes, pos, store)?;
            codec::decode_value(&encoded)
                .map_err(|e| StoreError::corrupt(store, format!("dimension in a key: {e}")))?
        }
        other => {
            return Err(StoreError::corrupt(
                store,
                format!("unknown dimension tag {other} in a key"),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_bytes(identity: &str, aggregate: &str, dims: Vec<Value>) -> Vec<u8> {
        encode_key(&RecordKey::new(identity, aggregate, dims))
            .unwrap()
            .bytes
    }

    #[test]
    fn a_packed_batch_holds_the_bytes_of_each_key_and_record_in_key_order() {
        let record = |identity: &str, session: &str, version: u64| StoredRecord {
            key: RecordKey::new(identity, "session", vec![Value::str(session)]),
            kind: RecordKind::Block,
            start_time: DateTime::from_timestamp(100, 0),
            columns: vec![Value::str(identity), Value::Int(version as i64)],
            version,
            order: version,
            writer: 0,
        };
        let batch = WriteBatch {
            // Two writes of one key keep their order.
            puts: vec![
                record("u2", "a", 1),
                record("u1", "b", 1),
                record("u2", "a", 2),
            ],
            deletes: vec![
                RecordKey::new("u3", "session", vec![]),
                RecordKey::new("u1", "x", vec![Value::Int(-1)]),
            ],
            checkpoints: vec![],
            run_state: Vec::new(),
            expect_checkpoints: Vec::new(),
        };
        let mut packed = PackedBatch::encode(&batch).unwrap();
        packed.sort_by_key();
        // Each key comes split after its identity and aggregate.
        let split = |key: &RecordKey| {
            let EncodedKey { bytes, prefix_len } = encode_key(key).unwrap();
            (bytes[..prefix_len].to_vec(), bytes[prefix_len..].to_vec())
        };
        let owned = |k: SplitKey<'_>| (k.prefix.to_vec(), k.dims.to_vec());
        let want_puts: Vec<_> = [1, 0, 2]
            .iter()
            .map(|&i| {
                let r = &batch.puts[i];
                (split(&r.key), encode_record(r).unwrap())
            })
            .collect();
        let got_puts: Vec<_> = packed.puts().map(|(k, r)| (owned(k), r.to_vec())).collect();
        assert_eq!(got_puts, want_puts);
        assert_eq!(got_puts[0].0.0, aggregate_prefix("u1", "session"));
        let want_deletes: Vec<_> = [1, 0].iter().map(|&i| split(&batch.deletes[i])).collect();
        let got_deletes: Vec<_> = packed.deletes().map(owned).collect();
        assert_eq!(got_deletes, want_deletes);
        assert!(got_deletes[1].1.is_empty());
    }

    #[test]
    fn key_order_follows_value_order() {
        let ints = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in ints.windows(2) {
            assert!(
                key_bytes("u", "a", vec![Value::Int(w[0])])
                    < key_bytes("u", "a", vec![Value::Int(w[1])])
            );
        }
        let floats = [
            f64::NEG_INFINITY,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            3.0,
            f64::INFINITY,
        ];
        for w in floats.windows(2) {
            assert!(
                key_bytes("u", "a", vec![Value::Float(w[0])])
                    < key_bytes("u", "a", vec![Value::Float(w[1])])
            );
        }
        let strs = ["", "\0", "\0\0", "\0a", "a", "a\0", "a\0b", "ab", "b"];
        for w in strs.windows(2) {
            assert!(
                key_bytes("u", "a", vec![Value::str(w[0])])
                    < key_bytes("u", "a", vec![Value::str(w[1])])
            );
        }
        let deltas = [-1_000_001i64, -1, 0, 1, 1_000_001];
        for w in deltas.windows(2) {
            let d = |n| Value::TimeDelta(TimeDelta::microseconds(n));
            assert!(key_bytes("u", "a", vec![d(w[0])]) < key_bytes("u", "a", vec![d(w[1])]));
        }
    }

    #[test]
    fn identity_prefixes_do_not_overlap() {
        let u1 = identity_prefix("u1");
        assert!(!key_bytes("u10", "a", vec![]).starts_with(&u1));
        assert!(key_bytes("u1", "a", vec![]).starts_with(&u1));
        assert!(key_bytes("u1", "zzz", vec![Value::str("\u{10FFFF}")]) < after_prefix(&u1));
        assert!(key_bytes("u1\0", "a", vec![]) > after_prefix(&u1));
    }

    #[test]
    fn keys_decode_to_what_was_encoded() {
        let dims = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-3),
            Value::Float(-0.0),
            Value::str("x\0y"),
            Value::str("\0\0x\0"),
            Value::DateTime(DateTime::from_timestamp(-5, 7).unwrap()),
            Value::TimeDelta(TimeDelta::nanoseconds(-1)),
            Value::list(vec![Value::Int(1)]),
        ];
        let bytes = key_bytes("id\0", "agg", dims.clone());
        let key = decode_key(&bytes, "test").unwrap();
        assert_eq!(&*key.identity, "id\0");
        assert_eq!(&*key.aggregate, "agg");
        assert_eq!(key.dims.len(), dims.len());
        let mut again = Vec::new();
        for d in &key.dims {
            write_dim(&mut again, d).unwrap();
        }
        assert_eq!(&bytes[bytes.len() - again.len()..], &again[..]);
        assert_eq!(identity_of(&bytes, "test").unwrap(), "id\0");
    }

    fn block_with_order(order: u64) -> StoredRecord {
        StoredRecord {
            key: RecordKey::new("u1", "session", vec![Value::str("s1")]),
            kind: RecordKind::Block,
            start_time: DateTime::from_timestamp(1_700_000_000, 5),
            columns: vec![Value::str("u1"), Value::Int(-3), Value::str("x")],
            version: 4,
            order,
            writer: 0,
        }
    }

    #[test]
    fn a_writer_takes_format_3_and_no_writer_keeps_format_2() {
        let plain = block_with_order(7);
        let plain_bytes = encode_record(&plain).unwrap();
        assert_eq!(plain_bytes[0], RECORD_FORMAT);
        let marked = StoredRecord {
            writer: 0x0123_4567_89AB_CDEF,
            ..plain.clone()
        };
        let marked_bytes = encode_record(&marked).unwrap();
        assert_eq!(marked_bytes[0], RECORD_FORMAT_WITH_WRITER);
        assert_eq!(marked_bytes.len(), plain_bytes.len() + 8);
        assert_eq!(
            decode_record(marked.key.clone(), &marked_bytes, "t").unwrap(),
            marked
        );
        assert_eq!(stored_start(&marked_bytes, "t").unwrap(), marked.start_time);
        // Cut inside the writer: corrupt, not a panic.
        let cut = &marked_bytes[..marked_bytes.len() - marked.columns.len() - 12];
        assert!(decode_record(marked.key.clone(), cut, "t").is_err());
    }

    #[test]
    fn the_creation_ordinal_round_trips_in_a_varint() {
        let bigger = |order| encode_record(&block_with_order(order)).unwrap().len();
        for order in [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            for kind in [RecordKind::Block, RecordKind::Identity] {
                let mut record = block_with_order(order);
                if kind == RecordKind::Identity {
                    record.kind = kind;
                    record.start_time = None;
                }
                let bytes = encode_record(&record).unwrap();
                assert_eq!(
                    decode_record(record.key.clone(), &bytes, "t").unwrap(),
                    record
                );
                assert_eq!(stored_start(&bytes, "t").unwrap(), record.start_time);
            }
        }
        // A byte for the ordinals of all but the busiest identities, ten at most.
        assert_eq!(bigger(127), bigger(0));
        assert_eq!(bigger(128), bigger(0) + 1);
        assert_eq!(bigger(u64::MAX), bigger(0) + 9);
    }

    #[test]
    fn records_written_without_an_ordinal_read_with_ordinal_0() {
        for order in [0, 9] {
            let mut record = block_with_order(order);
            let bytes = encode_record_without_order(&record);
            assert_eq!(bytes[0], 1, "format 1");
            record.order = 0;
            assert_eq!(
                decode_record(record.key.clone(), &bytes, "t").unwrap(),
                record
            );
            record.kind = RecordKind::Identity;
            record.start_time = None;
            let bytes = encode_record_without_order(&record);
            assert_eq!(
                decode_record(record.key.clone(), &bytes, "t").unwrap(),
                record
            );
        }
    }

    #[test]
    fn a_bad_ordinal_is_a_corrupt_record() {
        let key = RecordKey::new("u", "a", vec![]);
        let header = |ordinal: &[u8]| {
            let mut bytes = vec![RECORD_FORMAT, KIND_IDENTITY];
            bytes.extend_from_slice(&[0; 8]);
            bytes.extend_from_slice(ordinal);
            bytes
        };
        // Cut off, eleven bytes long, and ten bytes that overflow a u64.
        for ordinal in [&[][..], &[0x80], &[0xFF; 11], &[0xFF; 10]] {
            let err = decode_record(key.clone(), &header(ordinal), "t").unwrap_err();
            assert!(err.to_string().contains("creation ordinal"), "{err}");
        }
        let mut max = header(&[0xFF; 9]);
        max.push(0x01);
        codec::encode_values(&[], &mut max).unwrap();
        assert_eq!(decode_record(key, &max, "t").unwrap().order, u64::MAX);
    }

    #[test]
    fn corrupt_keys_and_records_are_errors() {
        assert!(decode_key(&[b'a', 0x00, 0x07], "t").is_err());
        assert!(decode_key(&[b'a', 0x00, 0x01, b'b', 0x00, 0x01, 0x99], "t").is_err());
        assert!(decode_key(&[b'a', 0x00, 0x01, b'b', 0x00, 0x01, DIM_INT, 1], "t").is_err());
        let key = RecordKey::new("u", "a", vec![]);
        assert!(decode_record(key.clone(), &[], "t").is_err());
        assert!(decode_record(key.clone(), &[9; 20], "t").is_err());
        let mut block = vec![RECORD_FORMAT, KIND_BLOCK];
        block.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decode_record(key, &block, "t"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
