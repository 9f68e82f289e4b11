//! Expected values: typed from the test file's YAML, compared with what a run computed by the
//! rules of docs/testing.md, and rendered for failure messages.

use dtc_io::format::{JsonStyle, to_json_string};
use dtc_lang::testfile::{Literal, LiteralKind, parse_datetime};
use dtc_plan::plan::FieldType;
use dtc_plan::value::{Value, from_json, py_str};

/// How far apart two numbers may be and still be equal, relative to the larger of 1 and their
/// magnitudes: floats computed in another order (sums over a window) differ in the last bits,
/// and a test file writes `20.98` for `20.979999999999997`.
const TOLERANCE: f64 = 1e-9;

/// The value `literal` expects of a column of type `ty`: a string in a `datetime` column is a
/// date-time; everything else is taken as YAML typed it.
pub(crate) fn expected_value(literal: &Literal, ty: FieldType) -> Result<Value, String> {
    Ok(match &literal.kind {
        LiteralKind::Str(s) if ty == FieldType::DateTime => match parse_datetime(s) {
            Some(t) => Value::DateTime(t),
            None => return Err(format!("`{s}` is not a date-time")),
        },
        LiteralKind::Null => Value::Null,
        LiteralKind::Bool(b) => Value::Bool(*b),
        LiteralKind::Int(i) => Value::Int(*i),
        LiteralKind::Float(f) => Value::Float(*f),
        LiteralKind::Str(s) => Value::str(s),
        LiteralKind::List(items) => Value::list(
            items
                .iter()
                .map(|item| expected_value(item, FieldType::String))
                .collect::<Result<_, _>>()?,
        ),
        // JSON keeps what a map's keys and values can be in the output, and keys compare by
        // their text (see `matches`).
        LiteralKind::Map(_) => match literal.to_json() {
            Ok(json) => from_json(&json),
            Err((_, why)) => return Err(why.to_string()),
        },
    })
}

/// Whether `got` is what `expected` expects.
pub(crate) fn matches(expected: &Value, got: &Value) -> bool {
    use Value::*;
    match (expected, got) {
        (Null, Null) => true,
        (Bool(a), Bool(b)) => a == b,
        (Int(a), Int(b)) => a == b,
        (Int(_) | Float(_), Int(_) | Float(_)) => close(number(expected), number(got)),
        (Int(_) | Float(_), TimeDelta(d)) => {
            let seconds = d
                .num_microseconds()
                .map_or(f64::INFINITY, |us| us as f64 / 1e6);
            close(number(expected), seconds)
        }
        (Str(a), Str(b)) => a == b,
        (Str(a), DateTime(b)) => parse_datetime(a).is_some_and(|a| a == *b),
        (DateTime(a), DateTime(b)) => a == b,
        (List(a), List(b) | Tuple(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(e, g)| matches(e, g))
        }
        (List(a), Set(b)) => {
            // Any order: each expected element takes the first element left that matches.
            let mut left: Vec<&Value> = b.iter().collect();
            a.len() == b.len()
                && a.iter()
                    .all(|e| match left.iter().position(|g| matches(e, g)) {
                        Some(i) => {
                            left.swap_remove(i);
                            true
                        }
                        None => false,
                    })
        }
        (Map(a), Map(b)) => {
            a.len() == b.len()
                && a.iter().all(|(k, e)| {
                    let key = key_text(k);
                    b.iter()
                        .find(|(gk, _)| key_text(gk) == key)
                        .is_some_and(|(_, g)| matches(e, g))
                })
        }
        _ => false,
    }
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => f64::NAN,
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b
        || (a.is_nan() && b.is_nan())
        || (a - b).abs() <= TOLERANCE * 1f64.max(a.abs()).max(b.abs())
}

/// A map key as the JSON output writes it.
fn key_text(k: &Value) -> String {
    match k {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        other => py_str(other),
    }
}

/// A value as failure messages show it: JSON, as the JSON-lines output writes it (NaN and
/// infinities, which JSON lacks, by name).
pub(crate) fn render(v: &Value) -> String {
    match v {
        Value::Float(f) if !f.is_finite() => f.to_string(),
        other => to_json_string(other, JsonStyle::Compact),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtc_lang::span::Span;
    use std::sync::Arc;

    fn lit(kind: LiteralKind) -> Literal {
        Literal {
            kind,
            span: Span::default(),
        }
    }

    fn expect(kind: LiteralKind, ty: FieldType) -> Value {
        expected_value(&lit(kind), ty).unwrap_or_default()
    }

    #[test]
    fn numbers_compare_by_value_within_the_tolerance() {
        let e = |f: f64| expect(LiteralKind::Float(f), FieldType::Float);
        assert!(matches(&e(20.98), &Value::Float(20.979999999999997)));
        assert!(matches(&e(0.0), &Value::Float(1e-12)));
        assert!(!matches(&e(4.99), &Value::Float(4.98)));
        assert!(matches(&e(2.0), &Value::Int(2)));
        assert!(matches(
            &expect(LiteralKind::Int(2), FieldType::Float),
            &Value::Float(2.0)
        ));
        assert!(!matches(&Value::Int(2), &Value::Int(3)));
        assert!(matches(&e(f64::NAN), &Value::Float(f64::NAN)));
        assert!(!matches(&e(f64::INFINITY), &Value::Float(f64::NAN)));
    }

    #[test]
    fn booleans_nulls_and_strings_match_only_their_kind() {
        assert!(!matches(&Value::Bool(true), &Value::Int(1)));
        assert!(!matches(&Value::Int(0), &Value::Null));
        assert!(!matches(&Value::Null, &Value::str("")));
        assert!(!matches(&Value::str("1"), &Value::Int(1)));
        assert!(matches(&Value::str("IN"), &Value::str("IN")));
        assert!(!matches(&Value::str("in"), &Value::str("IN")));
    }

    #[test]
    fn date_times_compare_as_instants() {
        let t = expect(
            LiteralKind::Str("2018-01-01T11:00:00+01:00".into()),
            FieldType::DateTime,
        );
        let got = Value::DateTime(parse_datetime("2018-01-01T10:00:00").unwrap_or_default());
        assert!(matches(&t, &got));
        assert!(
            expected_value(&lit(LiteralKind::Str("soon".into())), FieldType::DateTime).is_err()
        );
        // In a string column the text stays a string.
        let s = expect(LiteralKind::Str("2018-01-01".into()), FieldType::String);
        assert!(!matches(&s, &Value::str("2018-01-01T00:00:00")));
        assert_eq!(render(&got), "\"2018-01-01T10:00:00+00:00\"");
    }

    #[test]
    fn containers_compare_element_wise_and_sets_in_any_order() {
        let list = expect(
            LiteralKind::List(vec![
                lit(LiteralKind::Int(1)),
                lit(LiteralKind::Str("a".into())),
            ]),
            FieldType::List,
        );
        let got = Value::list(vec![Value::Int(1), Value::str("a")]);
        assert!(matches(&list, &got));
        let set = Value::Set(Arc::new(
            [Value::str("a"), Value::Int(1)].into_iter().collect(),
        ));
        assert!(matches(&list, &set));
        assert!(!matches(
            &list,
            &Value::list(vec![Value::str("a"), Value::Int(1)])
        ));
        let map = expect(
            LiteralKind::Map(vec![(
                lit(LiteralKind::Int(1)),
                lit(LiteralKind::Float(0.5)),
            )]),
            FieldType::Map,
        );
        let got = Value::Map(Arc::new(
            [(Value::Int(1), Value::Float(0.5))].into_iter().collect(),
        ));
        assert!(matches(&map, &got));
        assert_eq!(render(&map), "{\"1\":0.5}");
    }
}
