//! Compact, versioned binary encoding of [`Value`]s and rows of values.
//!
//! Used for stored records and for the engine's spill files, so it favours speed and size over
//! self-description. Layout: one format-version byte, then for a row a varint count and the
//! values. Each value is a tag byte and a payload:
//!
//! | tag | value | payload |
//! |---|---|---|
//! | 0 | `Null` | – |
//! | 1 / 2 | `Bool(false)` / `Bool(true)` | – |
//! | 3 | `Int` | zigzag varint |
//! | 4 | `Float` | 8 bytes, little-endian IEEE bits (keeps `-0.0` and NaN payloads) |
//! | 5 | `Str` | varint byte length, UTF-8 bytes |
//! | 6 | `DateTime` | i64 little-endian microseconds since the epoch |
//! | 7 | `DateTime` with sub-microsecond part | zigzag varint seconds, varint nanoseconds |
//! | 8 | `TimeDelta` | zigzag varint microseconds |
//! | 9 | `TimeDelta` with sub-microsecond part or beyond i64 micros | zigzag varint seconds, varint nanoseconds (0..1e9) |
//! | 10 / 11 | `List` / `Tuple` | varint count, values |
//! | 12 | `Set` | varint count, values |
//! | 13 | `Map` | varint count, key and value pairs |
//!
//! Tags 7 and 9 exist so that every value round-trips exactly; data from events is in
//! microseconds and takes the compact tags. Decoding never panics: corrupt or truncated input is
//! a [`CodecError`]. Nesting is limited to [`MAX_DEPTH`] levels in both directions, so that a
//! corrupt length cannot make the decoder recurse without bound, and a value the encoder accepts
//! is always decodable.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use indexmap::{IndexMap, IndexSet};

use crate::value::Value;

/// The format version written as the first byte of every encoding.
pub const FORMAT_VERSION: u8 = 1;

/// Maximum container nesting (a scalar has depth 0, `[1]` depth 1).
pub const MAX_DEPTH: usize = 256;

const TAG_NULL: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_INT: u8 = 3;
const TAG_FLOAT: u8 = 4;
const TAG_STR: u8 = 5;
const TAG_DATETIME_MICROS: u8 = 6;
const TAG_DATETIME_EXACT: u8 = 7;
const TAG_TIMEDELTA_MICROS: u8 = 8;
const TAG_TIMEDELTA_EXACT: u8 = 9;
const TAG_LIST: u8 = 10;
const TAG_TUPLE: u8 = 11;
const TAG_SET: u8 = 12;
const TAG_MAP: u8 = 13;

const NANOS_PER_SEC: u32 = 1_000_000_000;

/// Why bytes could not be decoded (or a value encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("unsupported value encoding version {0} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    #[error("encoded value is truncated at byte {0}")]
    Truncated(usize),
    #[error("invalid value tag {tag} at byte {offset}")]
    InvalidTag { tag: u8, offset: usize },
    #[error("malformed encoded value at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: &'static str },
    #[error("value is nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{0} unexpected bytes after the encoded value")]
    TrailingBytes(usize),
}

/// Appends the encoding of a row to `out`. On error `out` is left as it was.
pub fn encode_values(values: &[Value], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    out.push(FORMAT_VERSION);
    write_varint(out, values.len() as u64);
    let result = values.iter().try_for_each(|v| encode_into(v, out, 0));
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends the encoding of a single value to `out`. On error `out` is left as it was.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    out.push(FORMAT_VERSION);
    let result = encode_into(value, out, 0);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Decodes a row written by [`encode_values`]; `bytes` must hold exactly one row.
pub fn decode_values(bytes: &[u8]) -> Result<Vec<Value>, CodecError> {
    let (values, used) = decode_values_prefix(bytes)?;
    check_trailing(bytes, used)?;
    Ok(values)
}

/// Decodes the row at the start of `bytes` and returns it with the number of bytes it took, so
/// that rows written back to back can be read without extra framing.
pub fn decode_values_prefix(bytes: &[u8]) -> Result<(Vec<Value>, usize), CodecError> {
    let mut d = Decoder::new(bytes)?;
    let count = d.count(1)?;
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        values.push(d.value(0)?);
    }
    Ok((values, d.pos))
}

/// Appends a row that is mostly null (a projected event: most paths are absent from most
/// events) to `out`: a bitmap of the non-null positions, then only those values, so that
/// neither writing nor reading it spends time on the nulls. Read with
/// [`decode_sparse_values_into`]. On error `out` is left as it was.
pub fn encode_sparse_values(values: &[Value], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    let row = SparseRow::begin(values.len(), out);
    let result = values.iter().enumerate().try_for_each(|(i, v)| {
        if v.is_null() {
            return Ok(());
        }
        row.mark(i, out);
        encode_into(v, out, 0)
    });
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// A row in [`encode_sparse_values`]'s format written value by value, for values that are
/// not [`Value`]s (an event's scalars as they lie in its JSON line): the same bytes as
/// [`encode_sparse_values`] writes for the same values. The values of non-null positions must
/// be written in position order; a position not written is null.
pub struct SparseRow {
    bitmap: usize,
}

impl SparseRow {
    /// Starts a row of `count` positions at the end of `out`.
    pub fn begin(count: usize, out: &mut Vec<u8>) -> SparseRow {
        out.push(FORMAT_VERSION);
        write_varint(out, count as u64);
        let bitmap = out.len();
        out.resize(bitmap + count.div_ceil(8), 0);
        SparseRow { bitmap }
    }

    fn mark(&self, position: usize, out: &mut [u8]) {
        if let Some(byte) = out.get_mut(self.bitmap + position / 8) {
            *byte |= 1 << (position % 8);
        }
    }

    pub fn bool(&self, position: usize, b: bool, out: &mut Vec<u8>) {
        self.mark(position, out);
        out.push(if b { TAG_TRUE } else { TAG_FALSE });
    }

    pub fn int(&self, position: usize, i: i64, out: &mut Vec<u8>) {
        self.mark(position, out);
        write_int(i, out);
    }

    pub fn float(&self, position: usize, f: f64, out: &mut Vec<u8>) {
        self.mark(position, out);
        write_float(f, out);
    }

    /// A string, given as its UTF-8 bytes.
    pub fn str(&self, position: usize, utf8: &[u8], out: &mut Vec<u8>) {
        self.mark(position, out);
        write_str(utf8, out);
    }
}

fn write_int(i: i64, out: &mut Vec<u8>) {
    out.push(TAG_INT);
    write_varint(out, zigzag(i));
}

fn write_float(f: f64, out: &mut Vec<u8>) {
    out.push(TAG_FLOAT);
    out.extend_from_slice(&f.to_bits().to_le_bytes());
}

fn write_str(utf8: &[u8], out: &mut Vec<u8>) {
    // Most strings: the tag and a one-byte length in one step.
    if utf8.len() < 0x80 {
        out.extend_from_slice(&[TAG_STR, utf8.len() as u8]);
    } else {
        out.push(TAG_STR);
        write_varint(out, utf8.len() as u64);
    }
    out.extend_from_slice(utf8);
}

/// Decodes a row written by [`encode_sparse_values`] at the start of `bytes` into `out`,
/// reusing its allocation, and returns the bytes it took. A top-level string equal to the one
/// already at its index is left in place rather than built again: rows decoded one after the
/// other into the same vector (sorted events of one identity) mostly repeat their strings
/// (session id, event name), so most string decodes become a comparison. On error `out` holds
/// a mix of old and new values.
pub fn decode_sparse_values_into(bytes: &[u8], out: &mut Vec<Value>) -> Result<usize, CodecError> {
    let mut d = Decoder::new(bytes)?;
    let count = d.count(0)?;
    let bitmap = d.take(count.div_ceil(8))?;
    out.truncate(count);
    out.resize_with(count, || Value::Null);
    for (i, slot) in out.iter_mut().enumerate() {
        if bitmap[i / 8] & (1 << (i % 8)) == 0 {
            if !slot.is_null() {
                slot.clear();
            }
            continue;
        }
        if let Value::Str(prev) = slot
            && d.skip_equal_str(prev)?
        {
            continue;
        }
        slot.set(d.value(0)?);
    }
    Ok(d.pos)
}

/// Decodes a value written by [`encode_value`]; `bytes` must hold exactly one value.
pub fn decode_value(bytes: &[u8]) -> Result<Value, CodecError> {
    let mut d = Decoder::new(bytes)?;
    let value = d.value(0)?;
    check_trailing(bytes, d.pos)?;
    Ok(value)
}

fn check_trailing(bytes: &[u8], used: usize) -> Result<(), CodecError> {
    match bytes.len() - used {
        0 => Ok(()),
        extra => Err(CodecError::TrailingBytes(extra)),
    }
}

fn encode_into(value: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), CodecError> {
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Int(i) => write_int(*i, out),
        Value::Float(f) => write_float(*f, out),
        Value::Str(s) => write_str(s.as_bytes(), out),
        Value::DateTime(dt) => {
            let nanos = dt.timestamp_subsec_nanos();
            // A leap second (nanos >= 1e9) has no distinct microsecond timestamp.
            if nanos % 1000 == 0 && nanos < NANOS_PER_SEC {
                out.push(TAG_DATETIME_MICROS);
                out.extend_from_slice(&dt.timestamp_micros().to_le_bytes());
            } else {
                out.push(TAG_DATETIME_EXACT);
                write_varint(out, zigzag(dt.timestamp()));
                write_varint(out, u64::from(nanos));
            }
        }
        Value::TimeDelta(td) => match td.num_microseconds() {
            Some(micros) if td.subsec_nanos() % 1000 == 0 => {
                out.push(TAG_TIMEDELTA_MICROS);
                write_varint(out, zigzag(micros));
            }
            _ => {
                let (secs, nanos) = timedelta_parts(td);
                out.push(TAG_TIMEDELTA_EXACT);
                write_varint(out, zigzag(secs));
                write_varint(out, u64::from(nanos));
            }
        },
        Value::List(items) => encode_seq(TAG_LIST, items.iter(), items.len(), out, depth)?,
        Value::Tuple(items) => encode_seq(TAG_TUPLE, items.iter(), items.len(), out, depth)?,
        Value::Set(items) => encode_seq(TAG_SET, items.iter(), items.len(), out, depth)?,
        Value::Map(entries) => encode_map(entries, out, depth)?,
    }
    Ok(())
}

// The containers' encoders loop and recurse: kept out of line, so that encoding a scalar,
// nearly every value encoded, saves and restores no registers for them.

#[inline(never)]
fn encode_map(
    entries: &IndexMap<Value, Value>,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), CodecError> {
    if depth >= MAX_DEPTH {
        return Err(CodecError::TooDeep);
    }
    out.push(TAG_MAP);
    write_varint(out, entries.len() as u64);
    for (k, v) in entries.iter() {
        encode_into(k, out, depth + 1)?;
        encode_into(v, out, depth + 1)?;
    }
    Ok(())
}

#[inline(never)]
fn encode_seq<'a>(
    tag: u8,
    items: impl Iterator<Item = &'a Value>,
    len: usize,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), CodecError> {
    if depth >= MAX_DEPTH {
        return Err(CodecError::TooDeep);
    }
    out.push(tag);
    write_varint(out, len as u64);
    items
        .into_iter()
        .try_for_each(|v| encode_into(v, out, depth + 1))
}

/// Seconds and non-negative nanoseconds (`TimeDelta::new`'s form); chrono's accessors give a
/// nanosecond part with the sign of the whole duration.
fn timedelta_parts(td: &TimeDelta) -> (i64, u32) {
    let secs = td.num_seconds();
    let nanos = td.subsec_nanos();
    if nanos < 0 {
        (secs - 1, (nanos + NANOS_PER_SEC as i32) as u32)
    } else {
        (secs, nanos as u32)
    }
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, CodecError> {
        match bytes.first() {
            None => Err(CodecError::Truncated(0)),
            Some(&FORMAT_VERSION) => Ok(Decoder { bytes, pos: 1 }),
            Some(&other) => Err(CodecError::UnsupportedVersion(other)),
        }
    }

    fn byte(&mut self) -> Result<u8, CodecError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or(CodecError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(CodecError::Truncated(self.pos))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            // The tenth byte holds only the top bit of a u64.
            if shift == 63 && b > 1 {
                break;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Malformed {
            offset: start,
            reason: "varint overflows 64 bits",
        })
    }

    fn zigzag(&mut self) -> Result<i64, CodecError> {
        self.varint().map(unzigzag)
    }

    fn nanos(&mut self) -> Result<u32, CodecError> {
        let offset = self.pos;
        u32::try_from(self.varint()?).map_err(|_| CodecError::Malformed {
            offset,
            reason: "nanoseconds out of range",
        })
    }

    /// A length or element count. Each element takes at least `min_size` bytes, so a count that
    /// cannot fit in the rest of the input is rejected before anything is allocated for it.
    fn count(&mut self, min_size: usize) -> Result<usize, CodecError> {
        let offset = self.pos;
        let n = self.varint()?;
        let remaining = (self.bytes.len() - self.pos) as u64;
        if n.saturating_mul(min_size as u64) > remaining {
            return Err(CodecError::Truncated(offset));
        }
        Ok(n as usize)
    }

    /// Moves past the next value if it is a string equal to `prev`; otherwise stays put.
    fn skip_equal_str(&mut self, prev: &str) -> Result<bool, CodecError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        // A string under 128 bytes has a one-byte length, read in place: this runs for most
        // values of most sorted events.
        if let [TAG_STR, len @ 0..0x80, body @ ..] = rest {
            let len = usize::from(*len);
            let equal = body.get(..len) == Some(prev.as_bytes());
            if equal {
                self.pos += 2 + len;
            }
            return Ok(equal);
        }
        if rest.first() != Some(&TAG_STR) {
            return Ok(false);
        }
        let start = self.pos;
        self.pos += 1;
        let len = self.count(1)?;
        if len == prev.len() && self.take(len)? == prev.as_bytes() {
            return Ok(true);
        }
        self.pos = start;
        Ok(false)
    }

    fn value(&mut self, depth: usize) -> Result<Value, CodecError> {
        let offset = self.pos;
        let tag = self.byte()?;
        let malformed = |reason| CodecError::Malformed { offset, reason };
        Ok(match tag {
            TAG_NULL => Value::Null,
            TAG_FALSE => Value::Bool(false),
            TAG_TRUE => Value::Bool(true),
            TAG_INT => Value::Int(self.zigzag()?),
            TAG_FLOAT => Value::Float(f64::from_bits(u64::from_le_bytes(self.array()?))),
            TAG_STR => {
                let len = self.count(1)?;
                let bytes = self.take(len)?;
                let s = if bytes.is_ascii() {
                    // SAFETY: ASCII bytes are valid UTF-8. Short event strings are ASCII
                    // almost always, and the word-at-a-time ASCII test costs less than a call
                    // to the full validation.
                    unsafe { std::str::from_utf8_unchecked(bytes) }
                } else {
                    std::str::from_utf8(bytes).map_err(|_| malformed("string is not UTF-8"))?
                };
                Value::str(s)
            }
            TAG_DATETIME_MICROS => {
                let micros = i64::from_le_bytes(self.array()?);
                DateTime::<Utc>::from_timestamp_micros(micros)
                    .map(Value::DateTime)
                    .ok_or_else(|| malformed("datetime out of range"))?
            }
            TAG_DATETIME_EXACT => {
                let secs = self.zigzag()?;
                let nanos = self.nanos()?;
                DateTime::<Utc>::from_timestamp(secs, nanos)
                    .map(Value::DateTime)
                    .ok_or_else(|| malformed("datetime out of range"))?
            }
            TAG_TIMEDELTA_MICROS => Value::TimeDelta(TimeDelta::microseconds(self.zigzag()?)),
            TAG_TIMEDELTA_EXACT => {
                let secs = self.zigzag()?;
                let nanos = self.nanos()?;
                TimeDelta::new(secs, nanos)
                    .map(Value::TimeDelta)
                    .ok_or_else(|| malformed("timedelta out of range"))?
            }
            TAG_LIST | TAG_TUPLE | TAG_SET | TAG_MAP => {
                if depth >= MAX_DEPTH {
                    return Err(CodecError::TooDeep);
                }
                return self.container(tag, depth + 1);
            }
            tag => return Err(CodecError::InvalidTag { tag, offset }),
        })
    }

    fn container(&mut self, tag: u8, depth: usize) -> Result<Value, CodecError> {
        let offset = self.pos;
        if tag == TAG_MAP {
            let n = self.count(2)?;
            let mut map = IndexMap::with_capacity(n);
            for _ in 0..n {
                let k = self.value(depth)?;
                let v = self.value(depth)?;
                if map.insert(k, v).is_some() {
                    return Err(CodecError::Malformed {
                        offset,
                        reason: "duplicate map key",
                    });
                }
            }
            return Ok(Value::Map(Arc::new(map)));
        }
        let n = self.count(1)?;
        if tag == TAG_SET {
            let mut set = IndexSet::with_capacity(n);
            for _ in 0..n {
                if !set.insert(self.value(depth)?) {
                    return Err(CodecError::Malformed {
                        offset,
                        reason: "duplicate set element",
                    });
                }
            }
            return Ok(Value::Set(Arc::new(set)));
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(depth)?);
        }
        Ok(if tag == TAG_LIST {
            Value::List(Arc::new(items))
        } else {
            Value::Tuple(Arc::new(items))
        })
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Structural identity, stricter than `Value`'s Python equality: same variants, same float
    /// bits, same container order.
    fn identical(a: &Value, b: &Value) -> bool {
        use Value::*;
        match (a, b) {
            (Null, Null) => true,
            (Bool(x), Bool(y)) => x == y,
            (Int(x), Int(y)) => x == y,
            (Float(x), Float(y)) => x.to_bits() == y.to_bits(),
            (Str(x), Str(y)) => x == y,
            (DateTime(x), DateTime(y)) => x == y,
            (TimeDelta(x), TimeDelta(y)) => x == y,
            (List(x), List(y)) | (Tuple(x), Tuple(y)) => {
                x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| identical(a, b))
            }
            (Set(x), Set(y)) => {
                x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| identical(a, b))
            }
            (Map(x), Map(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y.iter())
                        .all(|((k1, v1), (k2, v2))| identical(k1, k2) && identical(v1, v2))
            }
            _ => false,
        }
    }

    fn round_trip(v: &Value) -> Value {
        let mut buf = Vec::new();
        encode_value(v, &mut buf).unwrap();
        decode_value(&buf).unwrap()
    }

    fn dt(secs: i64, nanos: u32) -> Value {
        Value::DateTime(DateTime::from_timestamp(secs, nanos).unwrap())
    }

    fn samples() -> Vec<Value> {
        let nested: IndexMap<Value, Value> = [
            (Value::str("a"), Value::Map(Arc::new(IndexMap::new()))),
            (
                Value::Int(7),
                Value::Map(Arc::new(
                    [(Value::str("k"), Value::list(vec![Value::Null]))]
                        .into_iter()
                        .collect(),
                )),
            ),
        ]
        .into_iter()
        .collect();
        vec![
            Value::Null,
            Value::Bool(false),
            Value::Bool(true),
            Value::Int(0),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Float(0.0),
            Value::Float(-0.0),
            Value::Float(f64::from_bits(0x7ff8_0000_dead_beef)),
            Value::Float(f64::NEG_INFINITY),
            Value::str(""),
            Value::str("héllo 🌍 \0 end"),
            dt(0, 0),
            dt(1_700_000_000, 123_456_000),
            dt(-1, 999_999_999),
            dt(1_700_000_000, 1),
            Value::DateTime(DateTime::<Utc>::MAX_UTC),
            Value::DateTime(DateTime::<Utc>::MIN_UTC),
            Value::TimeDelta(TimeDelta::zero()),
            Value::TimeDelta(TimeDelta::microseconds(-1)),
            Value::TimeDelta(TimeDelta::nanoseconds(-1)),
            Value::TimeDelta(TimeDelta::MAX),
            Value::TimeDelta(TimeDelta::MIN),
            Value::list(vec![]),
            Value::Tuple(Arc::new(vec![])),
            Value::Set(Arc::new(IndexSet::new())),
            Value::Map(Arc::new(IndexMap::new())),
            Value::Tuple(Arc::new(vec![Value::Int(1), Value::str("x")])),
            Value::Set(Arc::new(
                [Value::Int(3), Value::Int(1), Value::str("z")]
                    .into_iter()
                    .collect(),
            )),
            Value::Map(Arc::new(nested)),
        ]
    }

    #[test]
    fn every_variant_round_trips_exactly() {
        for v in samples() {
            let back = round_trip(&v);
            assert!(identical(&v, &back), "{v:?} came back as {back:?}");
        }
    }

    #[test]
    fn rows_round_trip_and_concatenate() {
        let rows = [samples(), vec![], vec![Value::Int(5)]];
        let mut buf = Vec::new();
        for row in &rows {
            encode_values(row, &mut buf).unwrap();
        }
        let mut rest = buf.as_slice();
        for row in &rows {
            let (back, used) = decode_values_prefix(rest).unwrap();
            assert_eq!(back.len(), row.len());
            assert!(row.iter().zip(&back).all(|(a, b)| identical(a, b)));
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
    }

    #[test]
    fn microsecond_times_use_the_compact_tags() {
        let mut buf = Vec::new();
        encode_value(&dt(1_700_000_000, 5_000), &mut buf).unwrap();
        assert_eq!(buf[1], TAG_DATETIME_MICROS);
        assert_eq!(buf.len(), 1 + 1 + 8);
        buf.clear();
        encode_value(&Value::TimeDelta(TimeDelta::seconds(30)), &mut buf).unwrap();
        assert_eq!(buf[1], TAG_TIMEDELTA_MICROS);
    }

    #[test]
    fn sparse_rows_decode_into_a_vector_keeping_equal_long_strings() {
        // Longer than a string kept inline, so keeping it in place saves an allocation.
        let session = "session-0123456789abcdef-0001";
        let rows = [
            vec![Value::str("game_start"), Value::str(session), Value::Int(1)],
            vec![
                Value::str("game_end"),
                Value::str(session),
                Value::str("was an int"),
            ],
            vec![Value::str("game_end"), Value::str("s1"), Value::Int(2)],
            vec![Value::str("game_end"), Value::str("s1"), Value::Int(3)],
            vec![
                Value::str("game_end"),
                Value::Null,
                Value::Int(7),
                Value::str("longer row"),
            ],
            vec![Value::str("game_end")],
            // Lengths of two varint bytes, which the in-place comparison leaves to the decoder.
            vec![Value::str("game_end"), Value::str(&"L".repeat(200))],
            vec![Value::str("game_end"), Value::str(&"L".repeat(200))],
            vec![Value::str("game_end"), Value::str(&"L".repeat(201))],
        ];
        let mut out = Vec::new();
        let mut before: Vec<Value> = Vec::new();
        let mut kept_once = false;
        for row in &rows {
            let mut buf = Vec::new();
            encode_sparse_values(row, &mut buf).expect("encode");
            let used = decode_sparse_values_into(&buf, &mut out).expect("decode");
            assert_eq!(used, buf.len());
            assert_eq!(&out, row);
            let kept = |i: usize| match (before.get(i), out.get(i)) {
                (Some(Value::Str(a)), Some(Value::Str(b))) => std::ptr::eq(a.as_str(), b.as_str()),
                _ => false,
            };
            let long = matches!(row.get(1), Some(Value::Str(s)) if s.is_heap_allocated());
            if long && before.len() > 1 && before.get(1) == row.get(1) {
                assert!(kept(1), "an equal long string stays in place");
                kept_once = true;
            }
            before = out.clone();
            let truncated = &buf[..buf.len() - 1];
            assert!(decode_sparse_values_into(truncated, &mut out.clone()).is_err());
        }
        assert!(kept_once);
    }

    #[test]
    fn corrupt_input_is_an_error() {
        assert_eq!(decode_values(&[]), Err(CodecError::Truncated(0)));
        assert_eq!(
            decode_values(&[9, 0]),
            Err(CodecError::UnsupportedVersion(9))
        );
        assert_eq!(
            decode_value(&[FORMAT_VERSION, 200]),
            Err(CodecError::InvalidTag {
                tag: 200,
                offset: 1
            })
        );
        assert_eq!(
            decode_value(&[FORMAT_VERSION, TAG_NULL, 0]),
            Err(CodecError::TrailingBytes(1))
        );
        // A list claiming 2^62 elements must fail without allocating for them.
        let mut huge = vec![FORMAT_VERSION, TAG_LIST];
        write_varint(&mut huge, 1 << 62);
        assert!(matches!(decode_value(&huge), Err(CodecError::Truncated(_))));
        let bad_utf8 = [FORMAT_VERSION, TAG_STR, 1, 0xff];
        assert!(matches!(
            decode_value(&bad_utf8),
            Err(CodecError::Malformed { .. })
        ));
        let dup_set = [FORMAT_VERSION, TAG_SET, 2, TAG_TRUE, TAG_INT, 2];
        assert!(matches!(
            decode_value(&dup_set),
            Err(CodecError::Malformed { .. })
        ));
        let overlong = [
            FORMAT_VERSION,
            TAG_INT,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0x7f,
        ];
        assert!(matches!(
            decode_value(&overlong),
            Err(CodecError::Malformed { .. })
        ));
    }

    #[test]
    fn nesting_is_bounded_both_ways() {
        let mut deep = Value::Null;
        for _ in 0..MAX_DEPTH {
            deep = Value::list(vec![deep]);
        }
        assert!(identical(&round_trip(&deep), &deep));
        let deeper = Value::list(vec![deep]);
        let mut buf = vec![42];
        assert_eq!(encode_value(&deeper, &mut buf), Err(CodecError::TooDeep));
        assert_eq!(buf, vec![42], "a failed encode leaves the buffer as it was");

        let mut bytes = vec![FORMAT_VERSION];
        for _ in 0..100_000 {
            bytes.extend_from_slice(&[TAG_LIST, 1]);
        }
        bytes.push(TAG_NULL);
        assert_eq!(decode_value(&bytes), Err(CodecError::TooDeep));
    }

    fn arb_scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b))),
            ".*".prop_map(|s: String| Value::str(&s)),
            (
                DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
                0u32..1_100_000_000
            )
                .prop_filter_map("in range", |(s, n)| DateTime::from_timestamp(s, n)
                    .map(Value::DateTime)),
            (any::<i64>(), 0u32..1_000_000_000).prop_filter_map("in range", |(s, n)| {
                TimeDelta::new(s / 1000, n).map(Value::TimeDelta)
            }),
            any::<i64>().prop_map(|m| Value::TimeDelta(TimeDelta::microseconds(m))),
        ]
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        arb_scalar().prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::list),
                prop::collection::vec(inner.clone(), 0..8).prop_map(|v| Value::Tuple(Arc::new(v))),
                prop::collection::vec(inner.clone(), 0..8)
                    .prop_map(|v| Value::Set(Arc::new(dedup(v).into_iter().collect()))),
                prop::collection::vec((inner.clone(), inner), 0..8).prop_map(|kv| {
                    let mut map = IndexMap::new();
                    for (k, v) in kv {
                        map.entry(k).or_insert(v);
                    }
                    Value::Map(Arc::new(map))
                }),
            ]
        })
    }

    /// Drops elements equal to an earlier one, as building a set does.
    fn dedup(items: Vec<Value>) -> Vec<Value> {
        let mut seen = IndexSet::new();
        items
            .into_iter()
            .filter(|v| seen.insert(v.clone()))
            .collect()
    }

    proptest! {
        #[test]
        fn arbitrary_rows_round_trip(row in prop::collection::vec(arb_value(), 0..6)) {
            let mut buf = Vec::new();
            encode_values(&row, &mut buf).unwrap();
            let back = decode_values(&buf).unwrap();
            prop_assert_eq!(back.len(), row.len());
            for (a, b) in row.iter().zip(&back) {
                prop_assert!(identical(a, b), "{:?} came back as {:?}", a, b);
            }
        }

        #[test]
        fn arbitrary_sparse_rows_round_trip_into_any_previous_row(
            row in prop::collection::vec(prop_oneof![Just(Value::Null), arb_value()], 0..20),
            previous in prop::collection::vec(prop_oneof![Just(Value::Null), arb_value()], 0..20),
        ) {
            let mut buf = Vec::new();
            encode_sparse_values(&row, &mut buf).unwrap();
            let mut back = previous;
            let used = decode_sparse_values_into(&buf, &mut back).unwrap();
            prop_assert_eq!(used, buf.len());
            prop_assert_eq!(back.len(), row.len());
            for (a, b) in row.iter().zip(&back) {
                prop_assert!(identical(a, b), "{:?} came back as {:?}", a, b);
            }
        }

        #[test]
        fn random_bytes_decode_to_an_error_or_a_stable_value(
            bytes in prop::collection::vec(any::<u8>(), 0..256)
        ) {
            let mut versioned = vec![FORMAT_VERSION];
            versioned.extend_from_slice(&bytes);
            for input in [&bytes, &versioned] {
                // Whatever decodes must encode again and decode to the same thing.
                if let Ok(row) = decode_values(input) {
                    let mut buf = Vec::new();
                    encode_values(&row, &mut buf).unwrap();
                    let again = decode_values(&buf).unwrap();
                    prop_assert!(row.iter().zip(&again).all(|(a, b)| identical(a, b)));
                }
                if let Ok(v) = decode_value(input) {
                    prop_assert!(identical(&round_trip(&v), &v));
                }
            }
        }
    }
}
