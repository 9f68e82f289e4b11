//! Value encodings shared by the sinks.
//!
//! Scalars map to JSON through `dtc_plan::value::to_json` (datetimes as ISO strings,
//! timedeltas as seconds, non-finite floats as null); containers are written here in insertion
//! order (sets and tuples as arrays, map keys as Python's `json.dumps` converts them). Two layouts exist because two audiences read the output:
//! [`JsonStyle::Compact`] is plain JSON for machines (JSON lines, JSON-encoded Parquet columns);
//! [`JsonStyle::Python`] reproduces Python's `json.dumps` defaults (`", "` and `": "`
//! separators, non-ASCII escaped as `\uXXXX`), which is what Blurr printed. Both print floats
//! like Python's `repr` (`0.0`, `20.979999999999997`, `1e+16`).

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use dtc_plan::plan::AggregateLayout;
use dtc_plan::value::{Value, py_repr, py_str, to_json};
use serde::Serialize;
use serde_json::ser::Formatter;

/// How [`write_json`] lays out JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStyle {
    /// `{"a":1,"b":[1,2]}`, UTF-8 as is.
    Compact,
    /// Python's `json.dumps` defaults: `{"a": 1, "b": [1, 2]}`, `ensure_ascii`.
    Python,
}

/// Python's `datetime.isoformat()` of a UTC datetime: `2018-03-07T22:35:31+00:00`, with
/// `.ffffff` only when the microseconds are not zero.
pub fn iso_datetime(dt: &DateTime<Utc>) -> String {
    // `str(datetime)` is `isoformat(' ')`: only the separator differs.
    py_str(&Value::DateTime(*dt)).replacen(' ', "T", 1)
}

/// Appends `value` as JSON in the given style.
pub fn write_json(value: &Value, style: JsonStyle, out: &mut String) {
    serialize_into(&Ordered(value), style, out);
}

/// Serializes containers in their insertion order (a `serde_json::Map` would sort the keys,
/// and Blurr's output follows Python's dict order); scalars go through `to_json`.
struct Ordered<'a>(&'a Value);

impl Serialize for Ordered<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::List(items) | Value::Tuple(items) => {
                serializer.collect_seq(items.iter().map(Ordered))
            }
            Value::Set(items) => serializer.collect_seq(items.iter().map(Ordered)),
            Value::Map(map) => {
                serializer.collect_map(map.iter().map(|(k, v)| (json_key(k), Ordered(v))))
            }
            scalar => to_json(scalar).serialize(serializer),
        }
    }
}

/// Python's `json.dumps` key rule: strings as they are, `null`/`true`/`false`, else `str()`.
fn json_key(key: &Value) -> String {
    match key {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        other => py_str(other),
    }
}

/// A stored record as one JSON object (what `dtc blocks` prints and the feature API's
/// `/v1/blocks` returns): `{"identity", "aggregate", "dims", "record": {column: value, ...}}`.
pub fn record_json(
    identity: &str,
    aggregate: &str,
    dims: &[Value],
    layout: &AggregateLayout,
    columns: &[Value],
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"identity\":");
    write_str(identity, JsonStyle::Compact, &mut out);
    out.push_str(",\"aggregate\":");
    write_str(aggregate, JsonStyle::Compact, &mut out);
    out.push_str(",\"dims\":");
    write_json(&Value::list(dims.to_vec()), JsonStyle::Compact, &mut out);
    out.push_str(",\"record\":{");
    for (i, (column, value)) in layout.columns.iter().zip(columns).enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(&column.name, JsonStyle::Compact, &mut out);
        out.push(':');
        write_json(value, JsonStyle::Compact, &mut out);
    }
    out.push_str("}}");
    out
}

/// `value` as a JSON string in the given style.
pub fn to_json_string(value: &Value, style: JsonStyle) -> String {
    let mut out = String::new();
    write_json(value, style, &mut out);
    out
}

/// Appends a JSON string literal.
pub fn write_str(s: &str, style: JsonStyle, out: &mut String) {
    serialize_into(s, style, out);
}

fn serialize_into<T: Serialize + ?Sized>(value: &T, style: JsonStyle, out: &mut String) {
    let mut buf = Vec::with_capacity(32);
    let mut serializer = serde_json::Serializer::with_formatter(&mut buf, StyleFormatter(style));
    // Serializing a JSON tree or a str into a Vec cannot fail; should it ever, the value is
    // written as null rather than as a truncated document.
    if value.serialize(&mut serializer).is_err() {
        out.push_str("null");
        return;
    }
    out.push_str(&String::from_utf8_lossy(&buf));
}

struct StyleFormatter(JsonStyle);

impl Formatter for StyleFormatter {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.separator(w, first)
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.separator(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(match self.0 {
            JsonStyle::Compact => b":",
            JsonStyle::Python => b": ",
        })
    }

    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(py_repr(&Value::Float(value)).as_bytes())
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if self.0 == JsonStyle::Compact || fragment.is_ascii() {
            return w.write_all(fragment.as_bytes());
        }
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

impl StyleFormatter {
    fn separator<W: ?Sized + Write>(&self, w: &mut W, first: bool) -> io::Result<()> {
        match (first, self.0) {
            (true, _) => Ok(()),
            (false, JsonStyle::Compact) => w.write_all(b","),
            (false, JsonStyle::Python) => w.write_all(b", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::sync::Arc;

    #[test]
    fn datetimes_print_like_python_isoformat() {
        let dt = Utc.with_ymd_and_hms(2018, 3, 7, 22, 35, 31).unwrap();
        assert_eq!(iso_datetime(&dt), "2018-03-07T22:35:31+00:00");
        let dt = dt + chrono::TimeDelta::microseconds(1500);
        assert_eq!(iso_datetime(&dt), "2018-03-07T22:35:31.001500+00:00");
    }

    #[test]
    fn python_style_matches_json_dumps() {
        let map = Value::Map(Arc::new(
            [
                (Value::str("é\"x"), Value::Float(0.0)),
                (
                    Value::Int(1),
                    Value::list(vec![Value::Null, Value::Bool(true), Value::Float(1e16)]),
                ),
                (Value::str("f"), Value::Float(20.979999999999997)),
                (Value::str("e"), Value::str("😀\n\u{1}")),
            ]
            .into_iter()
            .collect(),
        ));
        assert_eq!(
            to_json_string(&map, JsonStyle::Python),
            r#"{"\u00e9\"x": 0.0, "1": [null, true, 1e+16], "f": 20.979999999999997, "e": "\ud83d\ude00\n\u0001"}"#
        );
        assert_eq!(
            to_json_string(&map, JsonStyle::Compact),
            "{\"é\\\"x\":0.0,\"1\":[null,true,1e+16],\"f\":20.979999999999997,\"e\":\"😀\\n\\u0001\"}"
        );
    }

    #[test]
    fn compact_output_is_valid_json() {
        let v = Value::list(vec![
            Value::str("a\u{1}b"),
            Value::Float(1e-7),
            Value::Int(-3),
            Value::DateTime(Utc.with_ymd_and_hms(2020, 1, 2, 3, 4, 5).unwrap()),
            Value::Float(f64::NAN),
        ]);
        let text = to_json_string(&v, JsonStyle::Compact);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!(["a\u{1}b", 1e-7, -3, "2020-01-02T03:04:05+00:00", null])
        );
    }
}
