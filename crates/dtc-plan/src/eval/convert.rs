//! Conversion of values to declared field types (docs/language.md sections 10 and 15) and the conversion
//! builtins `int()`, `float()`, `str()`, `bool()`.

use std::borrow::Cow;
use std::sync::Arc;

use indexmap::{IndexMap, IndexSet};

use super::{
    EvalError, EvalErrorKind, null_operand, ops, overflow, time, truthy, type_error, value_error,
};
use crate::plan::{Dialect, FieldType};
use crate::value::{Str, Value, py_repr, py_str};

/// A field's value before any event set it: `0`, `0.0`, `false`, `''`, null (datetime),
/// `{}`, `[]`, `set()`.
pub fn default_value(ty: FieldType) -> Value {
    match ty {
        FieldType::Integer => Value::Int(0),
        FieldType::Float => Value::Float(0.0),
        FieldType::Boolean => Value::Bool(false),
        FieldType::String => Value::str(""),
        FieldType::DateTime => Value::Null,
        FieldType::Map => Value::Map(Arc::new(IndexMap::new())),
        FieldType::List => Value::list(Vec::new()),
        FieldType::Set => Value::Set(Arc::new(IndexSet::new())),
    }
}

/// Converts a field's new value to its declared type.
///
/// Null never converts: it is a [`EvalErrorKind::NullOperand`] error for every type, so the
/// field keeps its previous value (as Blurr did when an expression gave `None`). Scalars follow
/// Python's `int()`/`float()`/`str()`; `boolean` is Python's `bool()` in the Blurr dialect and
/// the strict native rule otherwise (see [`to_bool`]); `datetime` accepts datetimes and time
/// strings; `list`/`set`/`map` accept compatible containers (Blurr also splits strings into
/// characters, as Python's `list('ab')` does).
pub fn convert(value: Value, ty: FieldType, dialect: Dialect) -> Result<Value, EvalError> {
    // Nearly every value a field computes has its declared type already: handed back without
    // the call below, whose other roads make it save and restore registers.
    if has_type(&value, ty) {
        return Ok(value);
    }
    convert_other(value, ty, dialect)
}

/// Whether [`convert`] hands `value` back as it is.
#[inline(always)]
pub fn has_type(value: &Value, ty: FieldType) -> bool {
    matches!(
        (ty, value),
        (FieldType::Integer, Value::Int(_))
            | (FieldType::Float, Value::Float(_))
            | (FieldType::Boolean, Value::Bool(_))
            | (FieldType::String, Value::Str(_))
            | (FieldType::DateTime, Value::DateTime(_))
            | (FieldType::List, Value::List(_))
            | (FieldType::Set, Value::Set(_))
            | (FieldType::Map, Value::Map(_))
    )
}

/// [`convert`] of a value that does not have the type already.
#[inline(never)]
fn convert_other(value: Value, ty: FieldType, dialect: Dialect) -> Result<Value, EvalError> {
    if value.is_null() {
        return Err(null_operand(&format!("conversion to {}", ty.name())));
    }
    match ty {
        FieldType::Integer => to_int(&value),
        FieldType::Float => to_float(&value),
        FieldType::Boolean => to_bool(&value, dialect),
        FieldType::String => Ok(Value::Str(Str::from(py_str(&value)))),
        FieldType::DateTime => to_datetime(value),
        FieldType::List | FieldType::Set
            if dialect == Dialect::Native && matches!(value, Value::Str(_)) =>
        {
            Err(type_error(format!(
                "cannot convert a string to {} (use split())",
                ty.name()
            )))
        }
        FieldType::List => Ok(Value::List(ops::items_of(&value)?)),
        FieldType::Set => to_set(&value),
        FieldType::Map => to_map(&value),
    }
}

/// Python's `int(x)`: truncates floats, parses decimal strings (surrounding whitespace,
/// sign and `_` separators allowed).
pub(crate) fn to_int(v: &Value) -> Result<Value, EvalError> {
    match v {
        Value::Int(_) => Ok(v.clone()),
        Value::Bool(b) => Ok(Value::Int(i64::from(*b))),
        Value::Float(f) => float_to_int(*f),
        Value::Str(s) => parse_int(s, 10),
        Value::Null => Err(null_operand("int()")),
        other => Err(type_error(format!(
            "int() argument must be a string or a number, not '{}'",
            other.type_name()
        ))),
    }
}

pub(crate) fn float_to_int(f: f64) -> Result<Value, EvalError> {
    if f.is_nan() {
        return Err(value_error("cannot convert float NaN to integer"));
    }
    let t = f.trunc();
    // 2^63 is exactly representable; anything at or beyond it does not fit.
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&t) {
        return Err(overflow(format!(
            "cannot convert float {} to integer",
            py_repr(&Value::Float(f))
        )));
    }
    Ok(Value::Int(t as i64))
}

/// Removes `_` digit separators, which Python allows only between two digits.
fn strip_underscores(s: &str, is_digit: impl Fn(char) -> bool) -> Option<Cow<'_, str>> {
    // Numbers in events rarely have separators: those are taken as they are, unallocated.
    if !s.contains('_') {
        return Some(Cow::Borrowed(s));
    }
    let chars: Vec<char> = s.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == '_' {
            let before = i.checked_sub(1).and_then(|j| chars.get(j));
            let after = chars.get(i + 1);
            if !before.is_some_and(|c| is_digit(*c)) || !after.is_some_and(|c| is_digit(*c)) {
                return None;
            }
        }
    }
    Some(Cow::Owned(
        chars.into_iter().filter(|c| *c != '_').collect(),
    ))
}

pub(crate) fn parse_int(text: &str, base: u32) -> Result<Value, EvalError> {
    let invalid = || {
        value_error(format!(
            "invalid literal for int() with base {base}: {}",
            py_repr(&Value::str(text))
        ))
    };
    let s = text.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = if base == 16 {
        digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
            .unwrap_or(digits)
    } else {
        digits
    };
    let cleaned = strip_underscores(digits, |c| c.is_digit(base)).ok_or_else(invalid)?;
    if cleaned.is_empty() || !cleaned.chars().all(|c| c.is_digit(base)) {
        return Err(invalid());
    }
    let signed = if negative {
        Cow::Owned(format!("-{cleaned}"))
    } else {
        cleaned
    };
    i64::from_str_radix(&signed, base)
        .map(Value::Int)
        .map_err(|_| overflow(format!("integer {} does not fit in 64 bits", text.trim())))
}

/// Python's `float(x)`: strings with whitespace, `_` separators, `inf`, `nan`, exponents.
pub(crate) fn to_float(v: &Value) -> Result<Value, EvalError> {
    match v {
        Value::Float(_) => Ok(v.clone()),
        Value::Int(i) => Ok(Value::Float(*i as f64)),
        Value::Bool(b) => Ok(Value::Float(f64::from(u8::from(*b)))),
        Value::Str(s) => parse_float(s).map(Value::Float),
        Value::Null => Err(null_operand("float()")),
        other => Err(type_error(format!(
            "float() argument must be a string or a number, not '{}'",
            other.type_name()
        ))),
    }
}

fn parse_float(text: &str) -> Result<f64, EvalError> {
    let invalid = || {
        value_error(format!(
            "could not convert string to float: {}",
            py_repr(&Value::str(text))
        ))
    };
    let s = text.trim();
    let cleaned = strip_underscores(s, |c| c.is_ascii_digit()).ok_or_else(invalid)?;
    let body = cleaned.trim_start_matches(['+', '-']);
    // Rust also accepts forms Python rejects ("infinity" is shared; "in" is not), so only
    // named values Python knows are let through (both ignore case).
    if body.starts_with(|c: char| c.is_ascii_alphabetic())
        && !["inf", "infinity", "nan"]
            .iter()
            .any(|name| body.eq_ignore_ascii_case(name))
    {
        return Err(invalid());
    }
    cleaned.parse::<f64>().map_err(|_| invalid())
}

/// `bool(x)` / conversion to `boolean`. Blurr: Python truthiness (`bool('no')` is true).
/// Native: strings `true/false/1/0/yes/no` (any case, surrounding spaces ignored) and the
/// numbers 0 and 1 convert, other strings and numbers are errors; other types use truthiness.
pub(crate) fn to_bool(v: &Value, dialect: Dialect) -> Result<Value, EvalError> {
    if dialect == Dialect::Blurr {
        return Ok(Value::Bool(truthy(v)));
    }
    match v {
        Value::Bool(_) => Ok(v.clone()),
        Value::Null => Err(null_operand("bool()")),
        Value::Int(_) | Value::Float(_) => {
            let n = v.as_number().map_or(f64::NAN, |n| n.as_f64());
            if n == 0.0 || n == 1.0 {
                Ok(Value::Bool(n == 1.0))
            } else {
                Err(value_error(format!(
                    "cannot convert {} to boolean (only 0 and 1)",
                    py_repr(v)
                )))
            }
        }
        Value::Str(s) => {
            let t = s.trim();
            if ["true", "1", "yes"]
                .iter()
                .any(|w| t.eq_ignore_ascii_case(w))
            {
                Ok(Value::Bool(true))
            } else if ["false", "0", "no"]
                .iter()
                .any(|w| t.eq_ignore_ascii_case(w))
            {
                Ok(Value::Bool(false))
            } else {
                Err(value_error(format!(
                    "cannot convert {} to boolean (expected true/false/1/0/yes/no)",
                    py_repr(v)
                )))
            }
        }
        other => Ok(Value::Bool(truthy(other))),
    }
}

fn to_datetime(v: Value) -> Result<Value, EvalError> {
    match v {
        Value::DateTime(_) => Ok(v),
        Value::Str(s) => time::parse_time(&s).map(Value::DateTime),
        other => Err(type_error(format!(
            "cannot convert '{}' to datetime",
            other.type_name()
        ))),
    }
}

pub(crate) fn to_set(v: &Value) -> Result<Value, EvalError> {
    match v {
        Value::Set(_) => Ok(v.clone()),
        other => Ok(Value::Set(Arc::new(ops::iterate(other)?.collect()))),
    }
}

/// Python's `dict(x)`: a map, or an iterable of 2-item lists/tuples.
pub(crate) fn to_map(v: &Value) -> Result<Value, EvalError> {
    match v {
        Value::Map(_) => Ok(v.clone()),
        Value::Null => Err(null_operand("dict()")),
        Value::Str(_) => Err(type_error("cannot convert a string to dict")),
        other => {
            let mut map = IndexMap::new();
            for (i, pair) in ops::iterate(other)?.enumerate() {
                match &pair {
                    Value::List(kv) | Value::Tuple(kv) if kv.len() == 2 => {
                        map.insert(kv[0].clone(), kv[1].clone());
                    }
                    _ => {
                        return Err(EvalError::new(
                            EvalErrorKind::ValueError,
                            format!("dictionary update sequence element #{i} is not a pair"),
                        ));
                    }
                }
            }
            Ok(Value::Map(Arc::new(map)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::EvalErrorKind as K;
    use super::super::testkit::{dt, ints, tup};
    use super::*;

    fn conv(v: Value, ty: FieldType) -> Result<Value, EvalError> {
        convert(v, ty, Dialect::Native)
    }

    fn kind(r: Result<Value, EvalError>) -> K {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.kind,
        }
    }

    #[test]
    fn defaults() {
        assert!(matches!(default_value(FieldType::Integer), Value::Int(0)));
        assert!(matches!(default_value(FieldType::Float), Value::Float(f) if f == 0.0));
        assert!(matches!(
            default_value(FieldType::Boolean),
            Value::Bool(false)
        ));
        assert_eq!(default_value(FieldType::String), Value::str(""));
        assert!(default_value(FieldType::DateTime).is_null());
        assert_eq!(py_repr(&default_value(FieldType::Map)), "{}");
        assert_eq!(py_repr(&default_value(FieldType::List)), "[]");
        assert_eq!(py_repr(&default_value(FieldType::Set)), "set()");
    }

    #[test]
    fn integers_like_python_int() {
        assert!(matches!(
            conv(Value::Float(7.9), FieldType::Integer),
            Ok(Value::Int(7))
        ));
        assert!(matches!(
            conv(Value::Float(-7.9), FieldType::Integer),
            Ok(Value::Int(-7))
        ));
        assert!(matches!(
            conv(Value::str(" 7 "), FieldType::Integer),
            Ok(Value::Int(7))
        ));
        assert!(matches!(
            conv(Value::str("-1_000"), FieldType::Integer),
            Ok(Value::Int(-1000))
        ));
        assert!(matches!(
            conv(Value::Bool(true), FieldType::Integer),
            Ok(Value::Int(1))
        ));
        assert_eq!(
            kind(conv(Value::str("7.5"), FieldType::Integer)),
            K::ValueError
        );
        assert_eq!(
            kind(conv(Value::str(""), FieldType::Integer)),
            K::ValueError
        );
        assert_eq!(
            kind(conv(Value::str("1__0"), FieldType::Integer)),
            K::ValueError
        );
        assert_eq!(
            kind(conv(Value::str("99999999999999999999"), FieldType::Integer)),
            K::Overflow
        );
        assert_eq!(
            kind(conv(Value::Float(f64::NAN), FieldType::Integer)),
            K::ValueError
        );
        assert_eq!(
            kind(conv(Value::Float(f64::INFINITY), FieldType::Integer)),
            K::Overflow
        );
        assert_eq!(
            kind(conv(Value::Float(1e19), FieldType::Integer)),
            K::Overflow
        );
        assert_eq!(kind(conv(ints(&[1]), FieldType::Integer)), K::TypeError);
        assert!(matches!(parse_int("ff", 16), Ok(Value::Int(255))));
    }

    #[test]
    fn floats_like_python_float() {
        assert!(
            matches!(conv(Value::str("9.99"), FieldType::Float), Ok(Value::Float(f)) if f == 9.99)
        );
        assert!(matches!(conv(Value::Int(3), FieldType::Float), Ok(Value::Float(f)) if f == 3.0));
        assert!(
            matches!(conv(Value::str(" 1e3 "), FieldType::Float), Ok(Value::Float(f)) if f == 1000.0)
        );
        assert!(
            matches!(conv(Value::str("-inf"), FieldType::Float), Ok(Value::Float(f)) if f == f64::NEG_INFINITY)
        );
        assert!(
            matches!(conv(Value::str("1_0.5"), FieldType::Float), Ok(Value::Float(f)) if f == 10.5)
        );
        // Not numbers to Python: a word, a prefix of one it knows, a doubled separator, and
        // a prefix of `inf` (which the unallocated road must reject in any case too).
        for bad in ["abc", "infinit", "1__0", "In"] {
            assert_eq!(
                kind(conv(Value::str(bad), FieldType::Float)),
                K::ValueError,
                "{bad}"
            );
        }
        // Python ignores the case of its named values, and so must the unallocated road.
        assert!(
            matches!(conv(Value::str("+Infinity"), FieldType::Float), Ok(Value::Float(f)) if f == f64::INFINITY)
        );
        assert!(
            matches!(conv(Value::str("NaN"), FieldType::Float), Ok(Value::Float(f)) if f.is_nan())
        );
    }

    #[test]
    fn strings_like_python_str() {
        let s = |v: Value| conv(v, FieldType::String);
        assert_eq!(s(Value::Int(3)), Ok(Value::str("3")));
        assert_eq!(s(Value::Float(1.5)), Ok(Value::str("1.5")));
        assert_eq!(s(Value::Float(2.0)), Ok(Value::str("2.0")));
        assert_eq!(s(Value::Bool(true)), Ok(Value::str("True")));
        assert_eq!(s(ints(&[1, 2])), Ok(Value::str("[1, 2]")));
        assert_eq!(
            s(dt("2018-03-07T10:00:00Z")),
            Ok(Value::str("2018-03-07 10:00:00+00:00"))
        );
    }

    #[test]
    fn booleans_blurr_vs_native() {
        let blurr = |v: Value| convert(v, FieldType::Boolean, Dialect::Blurr);
        assert_eq!(blurr(Value::str("no")), Ok(Value::Bool(true)));
        assert_eq!(blurr(Value::str("")), Ok(Value::Bool(false)));
        assert_eq!(blurr(Value::Int(2)), Ok(Value::Bool(true)));
        let native = |v: Value| conv(v, FieldType::Boolean);
        assert_eq!(native(Value::str("no")), Ok(Value::Bool(false)));
        assert_eq!(native(Value::str("YES")), Ok(Value::Bool(true)));
        assert_eq!(native(Value::str("True")), Ok(Value::Bool(true)));
        assert_eq!(native(Value::str("0")), Ok(Value::Bool(false)));
        assert_eq!(native(Value::Int(1)), Ok(Value::Bool(true)));
        assert_eq!(native(Value::Float(0.0)), Ok(Value::Bool(false)));
        assert_eq!(kind(native(Value::str("maybe"))), K::ValueError);
        assert_eq!(kind(native(Value::str(""))), K::ValueError);
        assert_eq!(kind(native(Value::Int(2))), K::ValueError);
    }

    #[test]
    fn null_never_converts() {
        for ty in [
            FieldType::Integer,
            FieldType::String,
            FieldType::Boolean,
            FieldType::DateTime,
            FieldType::List,
        ] {
            assert_eq!(kind(conv(Value::Null, ty)), K::NullOperand);
            assert_eq!(
                kind(convert(Value::Null, ty, Dialect::Blurr)),
                K::NullOperand
            );
        }
    }

    #[test]
    fn datetimes() {
        let want = dt("2018-03-07T10:00:00Z");
        assert_eq!(conv(want.clone(), FieldType::DateTime), Ok(want.clone()));
        assert_eq!(
            conv(Value::str("2018-03-07 10:00:00"), FieldType::DateTime),
            Ok(want)
        );
        assert_eq!(
            kind(conv(Value::str("not a time"), FieldType::DateTime)),
            K::ValueError
        );
        assert_eq!(kind(conv(Value::Int(5), FieldType::DateTime)), K::TypeError);
    }

    #[test]
    fn containers() {
        let t = tup(vec![Value::Int(1), Value::Int(2)]);
        assert_eq!(conv(t.clone(), FieldType::List), Ok(ints(&[1, 2])));
        assert_eq!(
            conv(t.clone(), FieldType::Set).map(|v| py_repr(&v)),
            Ok("{1, 2}".to_owned())
        );
        let pairs = Value::list(vec![tup(vec![Value::str("a"), Value::Int(1)])]);
        assert_eq!(
            conv(pairs, FieldType::Map).map(|v| py_repr(&v)),
            Ok("{'a': 1}".to_owned())
        );
        assert_eq!(kind(conv(ints(&[1]), FieldType::Map)), K::ValueError);
        assert_eq!(kind(conv(Value::str("ab"), FieldType::List)), K::TypeError);
        assert_eq!(
            convert(Value::str("ab"), FieldType::List, Dialect::Blurr).map(|v| py_repr(&v)),
            Ok("['a', 'b']".to_owned())
        );
        assert_eq!(kind(conv(Value::Int(1), FieldType::Set)), K::TypeError);
    }
}
