//! Value encodings shared by the sinks.
//!
//! Two JSON styles exist because two audiences read the output: [`JsonStyle::Compact`] is plain
//! JSON for machines (JSON lines, JSON-encoded Parquet columns); [`JsonStyle::Python`] reproduces
//! Python's `json.dumps` defaults byte for byte (`", "` and `": "` separators, non-ASCII escaped,
//! `NaN`/`Infinity`), which is what Blurr printed. Both print floats like Python's `repr` and
//! datetimes like Python's `isoformat()` with `+00:00`.

use std::fmt::Write as _;

use chrono::{DateTime, Timelike, Utc};
use dtc_plan::value::Value;

/// How [`write_json`] lays out JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStyle {
    /// `{"a":1,"b":[1,2]}`, UTF-8 as is, non-finite floats as `null`.
    Compact,
    /// Python's `json.dumps` defaults: `{"a": 1, "b": [1, 2]}`, `ensure_ascii`, `NaN`.
    Python,
}

/// Python's `repr(float)`: the shortest digits that round-trip, `0.0`, `1e+16`, `1e-05`,
/// `inf`, `nan`.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // `{:e}` gives the shortest round-trip digits as `d.ddde<exp>`; Python only differs in
    // where it switches to scientific notation and how it writes the exponent.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(digits.len() + 8);
    out.push_str(sign);
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let n = digits.len() as i32;
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(&digits);
        } else if point >= n {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (point - n) as usize));
            out.push_str(".0");
        } else {
            let (int, frac) = digits.split_at(point as usize);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// Python's `datetime.isoformat()` of a UTC datetime: `2018-03-07T22:35:31+00:00`, with
/// `.ffffff` only when the microseconds are not zero.
pub fn iso_datetime(dt: &DateTime<Utc>) -> String {
    let mut out = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
    let micros = dt.nanosecond() % 1_000_000_000 / 1000;
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
    out.push_str("+00:00");
    out
}

/// Appends `value` as JSON. Sets and tuples are arrays; datetimes are ISO strings; timedeltas
/// are their total seconds as a float (Python's `json` cannot encode them at all).
pub fn write_json(value: &Value, style: JsonStyle, out: &mut String) {
    let (item_sep, key_sep) = match style {
        JsonStyle::Compact => (",", ":"),
        JsonStyle::Python => (", ", ": "),
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => write_float(*f, style, out),
        Value::Str(s) => write_str(s, style, out),
        Value::DateTime(dt) => write_str(&iso_datetime(dt), style, out),
        Value::TimeDelta(td) => {
            let seconds = td
                .num_microseconds()
                .map_or_else(|| td.num_milliseconds() as f64 / 1e3, |us| us as f64 / 1e6);
            write_float(seconds, style, out);
        }
        Value::List(items) | Value::Tuple(items) => {
            write_seq(items.iter(), item_sep, style, out);
        }
        Value::Set(items) => write_seq(items.iter(), item_sep, style, out),
        Value::Map(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                write_str(&json_key(k), style, out);
                out.push_str(key_sep);
                write_json(v, style, out);
            }
            out.push('}');
        }
    }
}

/// `value` as a JSON string in the given style.
pub fn to_json_string(value: &Value, style: JsonStyle) -> String {
    let mut out = String::new();
    write_json(value, style, &mut out);
    out
}

fn write_seq<'a>(
    items: impl Iterator<Item = &'a Value>,
    sep: &str,
    style: JsonStyle,
    out: &mut String,
) {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        write_json(item, style, out);
    }
    out.push(']');
}

fn write_float(f: f64, style: JsonStyle, out: &mut String) {
    if f.is_finite() {
        out.push_str(&py_float_repr(f));
        return;
    }
    out.push_str(match style {
        JsonStyle::Compact => "null",
        JsonStyle::Python if f.is_nan() => "NaN",
        JsonStyle::Python if f > 0.0 => "Infinity",
        JsonStyle::Python => "-Infinity",
    });
}

/// Python's `json.dumps` key coercion: numbers and booleans become their JSON text.
fn json_key(key: &Value) -> String {
    match key {
        Value::Str(s) => s.to_string(),
        Value::DateTime(dt) => iso_datetime(dt),
        other => to_json_string(other, JsonStyle::Compact),
    }
}

/// Appends a JSON string literal.
pub fn write_str(s: &str, style: JsonStyle, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if style == JsonStyle::Python && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::sync::Arc;

    #[test]
    fn floats_print_like_python_repr() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (20.979999999999997, "20.979999999999997"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.6, "123456789012345.6"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1e300, "1e+300"),
            (9.99, "9.99"),
        ];
        for (f, expected) in cases {
            assert_eq!(py_float_repr(f), expected, "{f}");
        }
        assert_eq!(py_float_repr(f64::NAN), "nan");
        assert_eq!(py_float_repr(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn datetimes_print_like_python_isoformat() {
        let dt = Utc.with_ymd_and_hms(2018, 3, 7, 22, 35, 31).unwrap();
        assert_eq!(iso_datetime(&dt), "2018-03-07T22:35:31+00:00");
        let dt = dt + chrono::TimeDelta::microseconds(1500);
        assert_eq!(iso_datetime(&dt), "2018-03-07T22:35:31.001500+00:00");
    }

    #[test]
    fn python_style_matches_json_dumps() {
        let map: dtc_plan::value::Value = Value::Map(Arc::new(
            [
                (Value::str("é\"x"), Value::Float(0.0)),
                (
                    Value::Int(1),
                    Value::list(vec![Value::Null, Value::Bool(true)]),
                ),
                (Value::str("n"), Value::Float(f64::NAN)),
                (Value::str("e"), Value::str("😀\n")),
            ]
            .into_iter()
            .collect(),
        ));
        assert_eq!(
            to_json_string(&map, JsonStyle::Python),
            r#"{"\u00e9\"x": 0.0, "1": [null, true], "n": NaN, "e": "\ud83d\ude00\n"}"#
        );
        assert_eq!(
            to_json_string(&map, JsonStyle::Compact),
            "{\"é\\\"x\":0.0,\"1\":[null,true],\"n\":null,\"e\":\"😀\\n\"}"
        );
    }

    #[test]
    fn compact_output_is_valid_json() {
        let v = Value::list(vec![
            Value::str("a\u{1}b"),
            Value::Float(1e-7),
            Value::Int(-3),
            Value::DateTime(Utc.with_ymd_and_hms(2020, 1, 2, 3, 4, 5).unwrap()),
        ]);
        let text = to_json_string(&v, JsonStyle::Compact);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!(["a\u{1}b", 1e-7, -3, "2020-01-02T03:04:05+00:00"])
        );
    }
}
