//! The runtime value model (docs/language.md section 10).
//!
//! Containers are behind `Arc` so that reading a field, building a window's `source.<field>`
//! list or handing a record to a sink is a reference-count bump, not a deep copy. Strings of up
//! to 23 bytes (nearly every event name, id, time and amount) are kept inline in the value, so
//! extracting, decoding and copying them allocates nothing; longer ones are shared like
//! containers.
//! Equality and hashing follow Python: `1 == 1.0 == True` and they hash alike, so maps and sets
//! keyed by numbers behave like Blurr's Python dicts.

use std::sync::Arc;

use std::fmt;

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use indexmap::{IndexMap, IndexSet};

pub use crate::text::Str;

#[derive(Debug, Clone, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Str),
    /// Always timezone-aware; naive inputs are taken as UTC.
    DateTime(DateTime<Utc>),
    TimeDelta(TimeDelta),
    List(Arc<Vec<Value>>),
    Tuple(Arc<Vec<Value>>),
    /// Insertion-ordered, so output is deterministic.
    Set(Arc<IndexSet<Value>>),
    /// Insertion-ordered like Python's dict.
    Map(Arc<IndexMap<Value, Value>>),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Str::new(s))
    }

    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// `*self = value`, for the slots of a row being filled, most of which hold `Null`: the
    /// old value's drop is a call to the whole of `Value`'s drop glue, made even for a `Null`,
    /// and here only a value that owns something pays for it.
    #[inline(always)]
    pub fn set(&mut self, value: Value) {
        if self.is_null() {
            // Forgetting a `Null` leaks nothing: it owns no memory.
            std::mem::forget(std::mem::replace(self, value));
        } else {
            *self = value;
        }
    }

    /// `*self = Value::Null`, skipping the drop glue for values that own no memory (numbers,
    /// times, short strings), which are most of what the rows being reused hold.
    #[inline(always)]
    pub fn clear(&mut self) {
        let owns_nothing = match self {
            Value::Null
            | Value::Bool(_)
            | Value::Int(_)
            | Value::Float(_)
            | Value::DateTime(_)
            | Value::TimeDelta(_) => true,
            Value::Str(s) => !s.is_heap_allocated(),
            Value::List(_) | Value::Tuple(_) | Value::Set(_) | Value::Map(_) => false,
        };
        if owns_nothing {
            std::mem::forget(std::mem::replace(self, Value::Null));
        } else {
            *self = Value::Null;
        }
    }

    /// Python's name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::DateTime(_) => "datetime",
            Value::TimeDelta(_) => "timedelta",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Set(_) => "set",
            Value::Map(_) => "dict",
        }
    }
}

/// Python's `==`: numbers compare by value across bool/int/float, containers element-wise,
/// sets and dicts regardless of order. (Like Python, NaN is not equal to itself.)
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Str(a), Str(b)) => a == b,
            (DateTime(a), DateTime(b)) => a == b,
            (TimeDelta(a), TimeDelta(b)) => a == b,
            (List(_), List(_)) | (Tuple(_), Tuple(_)) | (Set(_), Set(_)) | (Map(_), Map(_)) => {
                containers_eq(self, other)
            }
            _ => match (self.as_number(), other.as_number()) {
                (Some(Number::Int(a)), Some(Number::Int(b))) => a == b,
                (Some(a), Some(b)) => a.as_f64() == b.as_f64(),
                _ => false,
            },
        }
    }
}

/// `==` of two containers of one kind. Out of line: it loops and recurses, and inlined it
/// would make every comparison of two scalars save and restore registers for it.
#[inline(never)]
fn containers_eq(a: &Value, b: &Value) -> bool {
    use Value::*;
    match (a, b) {
        (List(a), List(b)) | (Tuple(a), Tuple(b)) => a == b,
        (Set(a), Set(b)) => a.len() == b.len() && a.iter().all(|v| b.contains(v)),
        (Map(a), Map(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| v == w))
        }
        _ => false,
    }
}

impl Eq for Value {}

/// Consistent with `eq`: `1`, `1.0` and `True` hash alike; sets and dicts hash by size only,
/// so that their hash does not depend on insertion order.
impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        use Value::*;
        match self {
            Null => 0u8.hash(state),
            Bool(_) | Int(_) | Float(_) => {
                1u8.hash(state);
                match self.as_number() {
                    Some(Number::Int(i)) => i.hash(state),
                    Some(Number::Float(f)) => {
                        if f.fract() == 0.0 && f.abs() < 9.2e18 {
                            (f as i64).hash(state)
                        } else {
                            f.to_bits().hash(state)
                        }
                    }
                    None => {}
                }
            }
            Str(s) => s.hash(state),
            DateTime(d) => d.hash(state),
            TimeDelta(d) => d.hash(state),
            List(items) | Tuple(items) => items.hash(state),
            Set(items) => items.len().hash(state),
            Map(items) => items.len().hash(state),
        }
    }
}

/// A numeric view of bool / int / float values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

impl Value {
    /// Bools count as numbers, as in Python.
    pub fn as_number(&self) -> Option<Number> {
        match self {
            Value::Bool(b) => Some(Number::Int(i64::from(*b))),
            Value::Int(i) => Some(Number::Int(*i)),
            Value::Float(f) => Some(Number::Float(*f)),
            _ => None,
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::str(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(Str::from(s))
    }
}

impl From<DateTime<Utc>> for Value {
    fn from(d: DateTime<Utc>) -> Value {
        Value::DateTime(d)
    }
}

impl From<TimeDelta> for Value {
    fn from(d: TimeDelta) -> Value {
        Value::TimeDelta(d)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::list(items)
    }
}

/// Python's `str()`: strings unquoted, everything else as [`py_repr`] except datetimes
/// (`2018-03-07 10:00:00+00:00`) and timedeltas (`1 day, 2:00:00`), which print like Python.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::DateTime(d) => isoformat(d, ' '),
        Value::TimeDelta(d) => timedelta_str(*d),
        _ => py_repr(v),
    }
}

/// Python's `repr()`: `'a'`, `1.0`, `1e+16`, `[1, 'a']`, `(1,)`, `{'k': 1}`, `set()`, `None`.
pub fn py_repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, v);
    out
}

impl fmt::Display for Value {
    /// Same text as [`py_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            _ => f.write_str(&py_str(self)),
        }
    }
}

fn write_repr(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&float_repr(*f)),
        Value::Str(s) => write_str_repr(out, s),
        Value::DateTime(d) => {
            out.push_str(&format!(
                "datetime.datetime({}, {}, {}, {}, {}",
                d.year(),
                d.month(),
                d.day(),
                d.hour(),
                d.minute()
            ));
            let micros = d.timestamp_subsec_micros() % 1_000_000;
            if d.second() != 0 || micros != 0 {
                out.push_str(&format!(", {}", d.second()));
            }
            if micros != 0 {
                out.push_str(&format!(", {micros}"));
            }
            out.push_str(", tzinfo=datetime.timezone.utc)");
        }
        Value::TimeDelta(d) => {
            let (days, seconds, micros) = timedelta_parts(*d);
            let parts: Vec<String> = [
                ("days", days),
                ("seconds", seconds),
                ("microseconds", micros),
            ]
            .iter()
            .filter(|(_, n)| *n != 0)
            .map(|(name, n)| format!("{name}={n}"))
            .collect();
            if parts.is_empty() {
                out.push_str("datetime.timedelta(0)");
            } else {
                out.push_str(&format!("datetime.timedelta({})", parts.join(", ")));
            }
        }
        Value::List(items) => write_seq(out, "[", items.iter(), "]"),
        Value::Tuple(items) if items.len() == 1 => write_seq(out, "(", items.iter(), ",)"),
        Value::Tuple(items) => write_seq(out, "(", items.iter(), ")"),
        Value::Set(items) if items.is_empty() => out.push_str("set()"),
        Value::Set(items) => write_seq(out, "{", items.iter(), "}"),
        Value::Map(items) => {
            out.push('{');
            for (i, (k, v)) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, k);
                out.push_str(": ");
                write_repr(out, v);
            }
            out.push('}');
        }
    }
}

fn write_seq<'a>(
    out: &mut String,
    open: &str,
    items: impl Iterator<Item = &'a Value>,
    close: &str,
) {
    out.push_str(open);
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_repr(out, item);
    }
    out.push_str(close);
}

/// Python quotes with `'` unless the text holds a `'` and no `"`.
fn write_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `repr(float)`: the shortest digits that round-trip, positional for exponents in
/// -4..16, scientific (`1e+16`, `1.5e-07`) outside.
pub(crate) fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // Rust's `{:e}` already yields the shortest round-tripping digits, like Python's repr.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if f < 0.0 {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    }
    out
}

/// Python's `datetime.isoformat(sep)` for a UTC datetime: microseconds only when non-zero.
pub(crate) fn isoformat(d: &DateTime<Utc>, sep: char) -> String {
    let micros = d.timestamp_subsec_micros() % 1_000_000;
    let mut out = format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    );
    if micros != 0 {
        out.push_str(&format!(".{micros:06}"));
    }
    out.push_str("+00:00");
    out
}

/// Python's normalized timedelta fields: days (any sign), 0 ≤ seconds < 86400,
/// 0 ≤ microseconds < 1e6.
pub(crate) fn timedelta_parts(d: TimeDelta) -> (i64, i64, i64) {
    let total = d.num_microseconds().unwrap_or(i64::MAX);
    let days = total.div_euclid(86_400_000_000);
    let rest = total.rem_euclid(86_400_000_000);
    (days, rest / 1_000_000, rest % 1_000_000)
}

fn timedelta_str(d: TimeDelta) -> String {
    let (days, seconds, micros) = timedelta_parts(d);
    let mut out = String::new();
    if days != 0 {
        let plural = if days.abs() != 1 { "s" } else { "" };
        out.push_str(&format!("{days} day{plural}, "));
    }
    out.push_str(&format!(
        "{}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    ));
    if micros != 0 {
        out.push_str(&format!(".{micros:06}"));
    }
    out
}

/// JSON for stores, sinks and the CLI: datetimes as ISO strings with `+00:00`, timedeltas as
/// total seconds, sets and tuples as arrays, non-string map keys as their `str()`, and
/// non-finite floats as `null` (JSON has no NaN).
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Str(s) => J::String(s.to_string()),
        Value::DateTime(d) => J::String(isoformat(d, 'T')),
        Value::TimeDelta(d) => {
            let micros = d.num_microseconds().unwrap_or(i64::MAX);
            serde_json::Number::from_f64(micros as f64 / 1e6).map_or(J::Null, J::Number)
        }
        Value::List(items) | Value::Tuple(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Set(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(items) => J::Object(
            items
                .iter()
                .map(|(k, v)| (json_key(k), to_json(v)))
                .collect(),
        ),
    }
}

/// Python's `json.dumps` key rules.
fn json_key(k: &Value) -> String {
    match k {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        _ => py_str(k),
    }
}

/// A JSON document as a value: integers that fit `i64` become `Int`, other numbers `Float`,
/// objects become string-keyed maps in document order.
pub fn from_json(j: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::str(s),
        J::Array(items) => Value::list(items.iter().map(from_json).collect()),
        J::Object(fields) => Value::Map(Arc::new(
            fields
                .iter()
                .map(|(k, v)| (Value::str(k), from_json(v)))
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    fn hash_of(v: &Value) -> u64 {
        let mut h = DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    #[test]
    fn set_and_clear_release_what_the_old_value_owned() {
        let items = Arc::new(vec![Value::Int(1)]);
        let long = "a string too long to be stored inline";
        let mut slot = Value::Null;
        slot.set(Value::List(items.clone()));
        assert_eq!(Arc::strong_count(&items), 2);
        slot.set(Value::str(long));
        assert_eq!(
            Arc::strong_count(&items),
            1,
            "set dropped the list it replaced"
        );
        assert_eq!(slot, Value::str(long));
        slot.clear();
        assert!(slot.is_null());
        slot.set(Value::List(items.clone()));
        slot.clear();
        assert_eq!(Arc::strong_count(&items), 1, "clear dropped the list");
        for owns_nothing in [Value::Int(7), Value::str("short"), Value::Bool(true)] {
            slot.set(owns_nothing.clone());
            assert_eq!(slot, owns_nothing);
            slot.clear();
            assert!(slot.is_null());
        }
    }

    #[test]
    fn numbers_compare_and_hash_like_python() {
        assert_eq!(Value::Int(1), Value::Float(1.0));
        assert_eq!(Value::Bool(true), Value::Int(1));
        assert_ne!(Value::Int(1), Value::str("1"));
        assert_eq!(hash_of(&Value::Int(1)), hash_of(&Value::Float(1.0)));
        assert_eq!(hash_of(&Value::Bool(true)), hash_of(&Value::Int(1)));
        assert_ne!(Value::Float(f64::NAN), Value::Float(f64::NAN));
    }

    #[test]
    fn lists_and_tuples_differ_sets_ignore_order() {
        let a = Value::list(vec![Value::Int(1), Value::Int(2)]);
        let t = Value::Tuple(Arc::new(vec![Value::Int(1), Value::Int(2)]));
        assert_ne!(a, t);
        let s1: IndexSet<Value> = [Value::Int(1), Value::Int(2)].into_iter().collect();
        let s2: IndexSet<Value> = [Value::Int(2), Value::Int(1)].into_iter().collect();
        assert_eq!(Value::Set(Arc::new(s1)), Value::Set(Arc::new(s2)));
    }

    #[test]
    fn floats_print_like_python_repr() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (20.979999999999997, "20.979999999999997"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-07"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (123456789012345.6, "123456789012345.6"),
            (1e15, "1000000000000000.0"),
            (-2.5, "-2.5"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ];
        for (f, want) in cases {
            assert_eq!(float_repr(f), want, "{f:?}");
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        match DateTime::parse_from_rfc3339(s) {
            Ok(d) => d.with_timezone(&Utc),
            Err(e) => panic!("bad test datetime {s}: {e}"),
        }
    }

    #[test]
    fn str_and_repr_follow_python() {
        let t = Value::Tuple(Arc::new(vec![Value::Int(1)]));
        assert_eq!(py_repr(&t), "(1,)");
        let l = Value::list(vec![
            Value::str("a"),
            Value::str("it's"),
            Value::Float(2.0),
            Value::Null,
            Value::Bool(true),
            t,
        ]);
        assert_eq!(py_str(&l), r#"['a', "it's", 2.0, None, True, (1,)]"#);
        assert_eq!(py_str(&Value::str("x")), "x");
        assert_eq!(Value::from("x").to_string(), "x");
        assert_eq!(Value::from(3.0).to_string(), "3.0");
        assert_eq!(Value::from(false).to_string(), "False");
        assert_eq!(py_repr(&Value::str("x\n")), "'x\\n'");
        assert_eq!(py_repr(&Value::Set(Arc::new(IndexSet::new()))), "set()");
        let mut m = IndexMap::new();
        m.insert(Value::str("k"), Value::Int(1));
        m.insert(Value::Int(2), Value::list(vec![]));
        assert_eq!(Value::Map(Arc::new(m)).to_string(), "{'k': 1, 2: []}");
        let d = utc("2018-03-07T10:00:00Z");
        assert_eq!(py_str(&Value::DateTime(d)), "2018-03-07 10:00:00+00:00");
        assert_eq!(
            py_repr(&Value::DateTime(d)),
            "datetime.datetime(2018, 3, 7, 10, 0, tzinfo=datetime.timezone.utc)"
        );
        let d = utc("2018-03-07T10:00:00.5Z");
        assert_eq!(isoformat(&d, 'T'), "2018-03-07T10:00:00.500000+00:00");
    }

    #[test]
    fn timedeltas_print_like_python() {
        let d = TimeDelta::seconds(86_400 + 7_384) + TimeDelta::microseconds(5);
        assert_eq!(py_str(&Value::TimeDelta(d)), "1 day, 2:03:04.000005");
        assert_eq!(
            py_repr(&Value::TimeDelta(d)),
            "datetime.timedelta(days=1, seconds=7384, microseconds=5)"
        );
        assert_eq!(
            py_str(&Value::TimeDelta(TimeDelta::seconds(-1))),
            "-1 day, 23:59:59"
        );
        assert_eq!(
            py_repr(&Value::TimeDelta(TimeDelta::zero())),
            "datetime.timedelta(0)"
        );
        assert_eq!(
            py_str(&Value::TimeDelta(TimeDelta::days(2))),
            "2 days, 0:00:00"
        );
    }

    #[test]
    fn json_round_trip() {
        let j: serde_json::Value = match serde_json::from_str(
            r#"{"a": 1, "b": 1.5, "c": [true, null, "x"], "d": {"e": 12345678901234567890}}"#,
        ) {
            Ok(j) => j,
            Err(e) => panic!("{e}"),
        };
        let v = from_json(&j);
        let Value::Map(m) = &v else {
            panic!("not a map: {v:?}")
        };
        assert!(matches!(m.get(&Value::str("a")), Some(Value::Int(1))));
        assert!(matches!(m.get(&Value::str("b")), Some(Value::Float(f)) if *f == 1.5));
        let Some(Value::Map(d)) = m.get(&Value::str("d")) else {
            panic!("d")
        };
        assert!(matches!(d.get(&Value::str("e")), Some(Value::Float(_))));
        let mut back = to_json(&v);
        back["d"]["e"] = j["d"]["e"].clone();
        assert_eq!(back, j);
        assert_eq!(to_json(&v)["c"], j["c"]);
        let dt = Value::DateTime(utc("2018-03-07T10:00:00Z"));
        assert_eq!(to_json(&dt), serde_json::json!("2018-03-07T10:00:00+00:00"));
        let mut keyed = IndexMap::new();
        keyed.insert(Value::Int(1), Value::Float(f64::NAN));
        keyed.insert(Value::Bool(false), Value::Int(2));
        keyed.insert(Value::Null, Value::Int(3));
        assert_eq!(
            to_json(&Value::Map(Arc::new(keyed))),
            serde_json::json!({"1": null, "false": 2, "null": 3})
        );
    }
}
