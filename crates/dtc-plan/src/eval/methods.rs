//! Methods and attributes of runtime values (docs/language.md section 7.2 and 7.3).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use chrono::{Datelike, Timelike};
use indexmap::Equivalent;

use super::{
    EvalError, EvalErrorKind, MAX_ELEMENTS, null_operand, ops, too_large, type_error, value_error,
};
use crate::plan::{Attribute, Method};
use crate::value::{Str, Value, isoformat, timedelta_parts};

/// Looks a string key up in a map without allocating a `Value::Str`; hashes exactly like
/// `Value::Str` does.
struct StrKey<'a>(&'a str);

impl Hash for StrKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Equivalent<Value> for StrKey<'_> {
    fn equivalent(&self, key: &Value) -> bool {
        matches!(key, Value::Str(s) if &**s == self.0)
    }
}

fn attribute_name(a: &Attribute) -> &str {
    match a {
        Attribute::Year => "year",
        Attribute::Month => "month",
        Attribute::Day => "day",
        Attribute::Hour => "hour",
        Attribute::Minute => "minute",
        Attribute::Second => "second",
        Attribute::Microsecond => "microsecond",
        Attribute::Days => "days",
        Attribute::Seconds => "seconds",
        Attribute::Microseconds => "microseconds",
        Attribute::Key(k) => k,
    }
}

/// `v.attr`. On a map every attribute is a key lookup (missing → null); on null the result
/// is null, so that a path into a missing nested object reads as missing.
pub(crate) fn attribute(v: Value, a: &Attribute) -> Result<Value, EvalError> {
    let int = |i: u32| Ok(Value::Int(i64::from(i)));
    match (&v, a) {
        (Value::Null, _) => Ok(Value::Null),
        (Value::Map(m), a) => Ok(m
            .get(&StrKey(attribute_name(a)))
            .cloned()
            .unwrap_or(Value::Null)),
        (Value::DateTime(d), Attribute::Year) => Ok(Value::Int(i64::from(d.year()))),
        (Value::DateTime(d), Attribute::Month) => int(d.month()),
        (Value::DateTime(d), Attribute::Day) => int(d.day()),
        (Value::DateTime(d), Attribute::Hour) => int(d.hour()),
        (Value::DateTime(d), Attribute::Minute) => int(d.minute()),
        (Value::DateTime(d), Attribute::Second) => int(d.second()),
        (Value::DateTime(d), Attribute::Microsecond) => {
            int(d.timestamp_subsec_micros() % 1_000_000)
        }
        (Value::TimeDelta(d), Attribute::Days | Attribute::Seconds | Attribute::Microseconds) => {
            let (days, seconds, micros) = timedelta_parts(*d);
            Ok(Value::Int(match a {
                Attribute::Days => days,
                Attribute::Seconds => seconds,
                _ => micros,
            }))
        }
        (other, a) => Err(no_attribute(other, attribute_name(a))),
    }
}

fn no_attribute(v: &Value, name: &str) -> EvalError {
    EvalError::new(
        EvalErrorKind::AttributeError,
        format!("'{}' object has no attribute '{name}'", v.type_name()),
    )
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Split => "split",
        Method::Strip => "strip",
        Method::LStrip => "lstrip",
        Method::RStrip => "rstrip",
        Method::Lower => "lower",
        Method::Upper => "upper",
        Method::StartsWith => "startswith",
        Method::EndsWith => "endswith",
        Method::Replace => "replace",
        Method::Join => "join",
        Method::Find => "find",
        Method::Append => "append",
        Method::Extend => "extend",
        Method::Index => "index",
        Method::Get => "get",
        Method::Keys => "keys",
        Method::Values => "values",
        Method::Items => "items",
        Method::Add => "add",
        Method::Union => "union",
        Method::Date => "date",
        Method::Weekday => "weekday",
        Method::IsoFormat => "isoformat",
        Method::Timestamp => "timestamp",
        Method::TotalSeconds => "total_seconds",
    }
}

fn arity(m: Method) -> (usize, usize) {
    match m {
        Method::Lower
        | Method::Upper
        | Method::Keys
        | Method::Values
        | Method::Items
        | Method::Date
        | Method::Weekday
        | Method::IsoFormat
        | Method::Timestamp
        | Method::TotalSeconds => (0, 0),
        Method::Split => (0, 2),
        Method::Strip | Method::LStrip | Method::RStrip => (0, 1),
        Method::StartsWith | Method::EndsWith | Method::Join | Method::Append | Method::Extend => {
            (1, 1)
        }
        Method::Add | Method::Index => (1, 1),
        Method::Replace => (2, 3),
        Method::Find => (1, 3),
        Method::Get => (1, 2),
        Method::Union => (0, usize::MAX),
    }
}

fn str_arg<'a>(v: &'a Value, what: &str) -> Result<&'a str, EvalError> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Null => Err(null_operand(what)),
        other => Err(type_error(format!(
            "{what}: must be str, not '{}'",
            other.type_name()
        ))),
    }
}

fn opt_int(v: Option<&Value>, what: &str) -> Result<Option<i64>, EvalError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        Some(Value::Bool(b)) => Ok(Some(i64::from(*b))),
        Some(other) => Err(type_error(format!(
            "{what}: '{}' object cannot be interpreted as an integer",
            other.type_name()
        ))),
    }
}

fn string(s: String) -> Value {
    Value::Str(Str::from(s))
}

/// Calls `receiver.m(args)`.
pub(crate) fn call(m: Method, receiver: Value, args: &[Value]) -> Result<Value, EvalError> {
    let name = method_name(m);
    if receiver.is_null() {
        return Err(null_operand(&format!("method {name}()")));
    }
    let (lo, hi) = arity(m);
    if args.len() < lo || args.len() > hi {
        return Err(type_error(format!(
            "{name}() takes {lo} to {hi} arguments ({} given)",
            args.len()
        )));
    }
    match (m, receiver) {
        (Method::Split, Value::Str(s)) => split(&s, args),
        (Method::Strip | Method::LStrip | Method::RStrip, Value::Str(s)) => {
            let chars = match args.first() {
                None | Some(Value::Null) => None,
                Some(v) => Some(str_arg(v, name)?),
            };
            let is_stripped = |c: char| chars.map_or(c.is_whitespace(), |set| set.contains(c));
            let out = match m {
                Method::Strip => s.trim_matches(is_stripped),
                Method::LStrip => s.trim_start_matches(is_stripped),
                _ => s.trim_end_matches(is_stripped),
            };
            Ok(Value::str(out))
        }
        (Method::Lower, Value::Str(s)) => Ok(string(s.to_lowercase())),
        (Method::Upper, Value::Str(s)) => Ok(string(s.to_uppercase())),
        (Method::StartsWith | Method::EndsWith, Value::Str(s)) => {
            let test = |p: &str| {
                if m == Method::StartsWith {
                    s.starts_with(p)
                } else {
                    s.ends_with(p)
                }
            };
            match &args[0] {
                Value::Tuple(options) => {
                    let mut any = false;
                    for o in options.iter() {
                        any |= test(str_arg(o, name)?);
                    }
                    Ok(Value::Bool(any))
                }
                other => Ok(Value::Bool(test(str_arg(other, name)?))),
            }
        }
        (Method::Replace, Value::Str(s)) => {
            let old = str_arg(&args[0], name)?;
            let new = str_arg(&args[1], name)?;
            let count = opt_int(args.get(2), name)?.filter(|c| *c >= 0);
            let occurrences = if old.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(old).count()
            };
            let replaced = count.map_or(occurrences, |c| {
                occurrences.min(usize::try_from(c).unwrap_or(usize::MAX))
            });
            if s.len() + replaced.saturating_mul(new.len()) > MAX_ELEMENTS {
                return Err(too_large());
            }
            Ok(string(match count {
                None => s.replace(old, new),
                Some(c) => s.replacen(old, new, usize::try_from(c).unwrap_or(usize::MAX)),
            }))
        }
        (Method::Join, Value::Str(sep)) => {
            let mut out = String::new();
            for (i, item) in ops::iterate(&args[0])?.enumerate() {
                let Value::Str(part) = &item else {
                    return Err(type_error(format!(
                        "sequence item {i}: expected str instance, {} found",
                        item.type_name()
                    )));
                };
                if i > 0 {
                    out.push_str(&sep);
                }
                out.push_str(part);
                if out.len() > MAX_ELEMENTS {
                    return Err(too_large());
                }
            }
            Ok(string(out))
        }
        (Method::Find, Value::Str(s)) => {
            find(&s, args).map(|pos| Value::Int(pos.map_or(-1, |p| i64::try_from(p).unwrap_or(-1))))
        }
        (Method::Index, Value::Str(s)) => match find(&s, args)? {
            Some(p) => Ok(Value::Int(i64::try_from(p).unwrap_or(i64::MAX))),
            None => Err(value_error("substring not found")),
        },
        (Method::Index, Value::List(items) | Value::Tuple(items)) => {
            match items.iter().position(|v| v == &args[0]) {
                Some(p) => Ok(Value::Int(i64::try_from(p).unwrap_or(i64::MAX))),
                None => Err(value_error(format!(
                    "{} is not in list",
                    crate::value::py_repr(&args[0])
                ))),
            }
        }
        (Method::Append, Value::List(mut items)) => {
            if items.len() >= MAX_ELEMENTS {
                return Err(too_large());
            }
            Arc::make_mut(&mut items).push(args[0].clone());
            Ok(Value::List(items))
        }
        (Method::Extend, Value::List(mut items)) => {
            let more = ops::iterate(&args[0])?;
            if items.len() + more.size_hint().0 > MAX_ELEMENTS {
                return Err(too_large());
            }
            Arc::make_mut(&mut items).extend(more);
            Ok(Value::List(items))
        }
        (Method::Get, Value::Map(map)) => Ok(map
            .get(&args[0])
            .cloned()
            .unwrap_or_else(|| args.get(1).cloned().unwrap_or(Value::Null))),
        (Method::Keys, Value::Map(map)) => Ok(Value::list(map.keys().cloned().collect())),
        (Method::Values, Value::Map(map)) => Ok(Value::list(map.values().cloned().collect())),
        (Method::Items, Value::Map(map)) => Ok(Value::list(
            map.iter()
                .map(|(k, v)| Value::Tuple(Arc::new(vec![k.clone(), v.clone()])))
                .collect(),
        )),
        (Method::Add, Value::Set(mut items)) => {
            if !items.contains(&args[0]) {
                if items.len() >= MAX_ELEMENTS {
                    return Err(too_large());
                }
                Arc::make_mut(&mut items).insert(args[0].clone());
            }
            Ok(Value::Set(items))
        }
        (Method::Union, Value::Set(mut items)) => {
            for other in args {
                for v in ops::iterate(other)? {
                    if !items.contains(&v) {
                        if items.len() >= MAX_ELEMENTS {
                            return Err(too_large());
                        }
                        Arc::make_mut(&mut items).insert(v);
                    }
                }
            }
            Ok(Value::Set(items))
        }
        (Method::Date, Value::DateTime(d)) => Ok(Value::DateTime(
            d.date_naive().and_time(chrono::NaiveTime::MIN).and_utc(),
        )),
        (Method::Weekday, Value::DateTime(d)) => {
            Ok(Value::Int(i64::from(d.weekday().num_days_from_monday())))
        }
        (Method::IsoFormat, Value::DateTime(d)) => Ok(string(isoformat(&d, 'T'))),
        (Method::Timestamp, Value::DateTime(d)) => {
            Ok(Value::Float(d.timestamp_micros() as f64 / 1e6))
        }
        (Method::TotalSeconds, Value::TimeDelta(d)) => Ok(Value::Float(
            d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6,
        )),
        (_, other) => Err(no_attribute(&other, name)),
    }
}

/// `str.split(sep=None, maxsplit=-1)`.
fn split(s: &str, args: &[Value]) -> Result<Value, EvalError> {
    let sep = match args.first() {
        None | Some(Value::Null) => None,
        Some(v) => Some(str_arg(v, "split")?),
    };
    let maxsplit = opt_int(args.get(1), "split")?
        .filter(|m| *m >= 0)
        .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
    let parts: Vec<Value> = match sep {
        Some("") => return Err(value_error("empty separator")),
        Some(sep) => match maxsplit {
            None => s.split(sep).map(Value::str).collect(),
            Some(m) => s.splitn(m.saturating_add(1), sep).map(Value::str).collect(),
        },
        None => {
            // Runs of whitespace separate; leading whitespace never yields an empty part and
            // the unsplit remainder keeps its trailing whitespace, as in Python.
            let mut parts = Vec::new();
            let mut rest = s.trim_start();
            while !rest.is_empty() {
                if maxsplit.is_some_and(|m| parts.len() >= m) {
                    parts.push(Value::str(rest));
                    break;
                }
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                parts.push(Value::str(&rest[..end]));
                rest = rest[end..].trim_start();
            }
            parts
        }
    };
    Ok(Value::list(parts))
}

/// `str.find(sub[, start[, end]])` as a character position.
fn find(s: &str, args: &[Value]) -> Result<Option<usize>, EvalError> {
    let sub = str_arg(&args[0], "find")?;
    let n = s.chars().count() as i64;
    let clamp = |i: i64| if i < 0 { (i + n).max(0) } else { i.min(n) } as usize;
    let start = opt_int(args.get(1), "find")?.map_or(0, clamp);
    let end = opt_int(args.get(2), "find")?.map_or(n as usize, clamp);
    if start > end {
        return Ok(None);
    }
    let byte = |ci: usize| s.char_indices().nth(ci).map_or(s.len(), |(b, _)| b);
    let (b0, b1) = (byte(start), byte(end));
    Ok(s[b0..b1]
        .find(sub)
        .map(|b| start + s[b0..b0 + b].chars().count()))
}

#[cfg(test)]
mod tests {
    use super::super::EvalErrorKind as K;
    use super::super::testkit::*;
    use crate::plan::{Attribute as A, CExpr, Method as M};
    use crate::value::{Value, py_repr};

    fn repr_of(e: &CExpr) -> String {
        match ev(e) {
            Ok(v) => py_repr(&v),
            Err(err) => panic!("{e:?}: {err}"),
        }
    }

    fn attr(e: CExpr, a: A) -> CExpr {
        CExpr::Attr(Box::new(e), a)
    }

    #[test]
    fn string_methods() {
        assert_eq!(
            repr_of(&meth(s("a,b,,c"), M::Split, vec![s(",")])),
            "['a', 'b', '', 'c']"
        );
        assert_eq!(
            repr_of(&meth(s("a,b,c"), M::Split, vec![s(","), int(1)])),
            "['a', 'b,c']"
        );
        assert_eq!(
            repr_of(&meth(s("  a  b \t c "), M::Split, vec![])),
            "['a', 'b', 'c']"
        );
        assert_eq!(
            repr_of(&meth(s(" a b  c "), M::Split, vec![null(), int(1)])),
            "['a', 'b  c ']"
        );
        assert_eq!(repr_of(&meth(s("   "), M::Split, vec![])), "[]");
        assert_eq!(
            err_kind(&meth(s("a"), M::Split, vec![s("")])),
            K::ValueError
        );
        assert_eq!(repr_of(&meth(s("  x "), M::Strip, vec![])), "'x'");
        assert_eq!(repr_of(&meth(s("xxaxx"), M::Strip, vec![s("x")])), "'a'");
        assert_eq!(repr_of(&meth(s("  x "), M::LStrip, vec![])), "'x '");
        assert_eq!(repr_of(&meth(s("  x "), M::RStrip, vec![])), "'  x'");
        assert_eq!(repr_of(&meth(s("AbC"), M::Lower, vec![])), "'abc'");
        assert_eq!(repr_of(&meth(s("AbC"), M::Upper, vec![])), "'ABC'");
        assert_eq!(
            repr_of(&meth(s("offer_1"), M::StartsWith, vec![s("offer")])),
            "True"
        );
        let options = tuple(vec![s("x"), s("_1")]);
        assert_eq!(
            repr_of(&meth(s("offer_1"), M::EndsWith, vec![options])),
            "True"
        );
        assert_eq!(
            repr_of(&meth(s("offer"), M::EndsWith, vec![s("x")])),
            "False"
        );
        assert_eq!(
            repr_of(&meth(s("aaa"), M::Replace, vec![s("a"), s("b")])),
            "'bbb'"
        );
        assert_eq!(
            repr_of(&meth(s("aaa"), M::Replace, vec![s("a"), s("b"), int(2)])),
            "'bba'"
        );
        assert_eq!(
            repr_of(&meth(s("-"), M::Join, vec![list(vec![s("a"), s("b")])])),
            "'a-b'"
        );
        assert_eq!(
            err_kind(&meth(s("-"), M::Join, vec![list(vec![int(1)])])),
            K::TypeError
        );
        assert_eq!(repr_of(&meth(s("héllo"), M::Find, vec![s("l")])), "2");
        assert_eq!(
            repr_of(&meth(s("hello"), M::Find, vec![s("l"), int(3)])),
            "3"
        );
        assert_eq!(repr_of(&meth(s("hello"), M::Find, vec![s("z")])), "-1");
        assert_eq!(repr_of(&meth(s("hello"), M::Index, vec![s("e")])), "1");
        assert_eq!(
            err_kind(&meth(s("hello"), M::Index, vec![s("z")])),
            K::ValueError
        );
        assert_eq!(err_kind(&meth(null(), M::Split, vec![])), K::NullOperand);
        assert_eq!(err_kind(&meth(int(1), M::Split, vec![])), K::AttributeError);
        assert_eq!(
            err_kind(&meth(s("a"), M::Split, vec![int(1)])),
            K::TypeError
        );
    }

    #[test]
    fn list_methods_return_new_lists() {
        let l = c(ints(&[1, 2]));
        assert_eq!(
            ev(&meth(l.clone(), M::Append, vec![int(3)])),
            Ok(ints(&[1, 2, 3]))
        );
        assert_eq!(
            ev(&meth(
                l.clone(),
                M::Extend,
                vec![list(vec![int(3), int(4)])]
            )),
            Ok(ints(&[1, 2, 3, 4]))
        );
        // The constant operand is untouched: append copied the shared list.
        assert_eq!(l, c(ints(&[1, 2])));
        assert_eq!(
            ev(&meth(l.clone(), M::Index, vec![int(2)])),
            Ok(Value::Int(1))
        );
        assert_eq!(err_kind(&meth(l, M::Index, vec![int(9)])), K::ValueError);
        assert_eq!(
            err_kind(&meth(null(), M::Append, vec![int(1)])),
            K::NullOperand
        );
    }

    #[test]
    fn map_methods() {
        let d = || CExpr::Dict(vec![(s("a"), int(1)), (s("b"), int(2))]);
        assert_eq!(ev(&meth(d(), M::Get, vec![s("a")])), Ok(Value::Int(1)));
        assert_eq!(ev(&meth(d(), M::Get, vec![s("z")])), Ok(Value::Null));
        assert_eq!(
            ev(&meth(d(), M::Get, vec![s("z"), int(0)])),
            Ok(Value::Int(0))
        );
        assert_eq!(repr_of(&meth(d(), M::Keys, vec![])), "['a', 'b']");
        assert_eq!(repr_of(&meth(d(), M::Values, vec![])), "[1, 2]");
        assert_eq!(
            repr_of(&meth(d(), M::Items, vec![])),
            "[('a', 1), ('b', 2)]"
        );
        assert_eq!(
            err_kind(&meth(list(vec![]), M::Keys, vec![])),
            K::AttributeError
        );
    }

    #[test]
    fn set_methods() {
        let st = || CExpr::Set(vec![int(1)]);
        assert_eq!(repr_of(&meth(st(), M::Add, vec![int(2)])), "{1, 2}");
        assert_eq!(repr_of(&meth(st(), M::Add, vec![flt(1.0)])), "{1}");
        let u = meth(
            st(),
            M::Union,
            vec![list(vec![int(2), int(3)]), CExpr::Set(vec![int(1)])],
        );
        assert_eq!(repr_of(&u), "{1, 2, 3}");
    }

    #[test]
    fn datetime_and_timedelta_methods() {
        let t = || c(dt("2018-03-07T10:11:12.5Z"));
        assert_eq!(
            ev(&meth(t(), M::Date, vec![])),
            Ok(dt("2018-03-07T00:00:00Z"))
        );
        assert_eq!(repr_of(&meth(t(), M::Weekday, vec![])), "2");
        assert_eq!(
            repr_of(&meth(t(), M::IsoFormat, vec![])),
            "'2018-03-07T10:11:12.500000+00:00'"
        );
        assert_eq!(repr_of(&meth(t(), M::Timestamp, vec![])), "1520417472.5");
        let td = c(Value::TimeDelta(chrono::TimeDelta::milliseconds(-1500)));
        assert_eq!(repr_of(&meth(td, M::TotalSeconds, vec![])), "-1.5");
        assert_eq!(
            err_kind(&meth(t(), M::TotalSeconds, vec![])),
            K::AttributeError
        );
    }

    #[test]
    fn attributes() {
        let t = || c(dt("2018-03-07T10:11:12.000005Z"));
        let parts = [
            (A::Year, 2018),
            (A::Month, 3),
            (A::Day, 7),
            (A::Hour, 10),
            (A::Minute, 11),
            (A::Second, 12),
            (A::Microsecond, 5),
        ];
        for (a, want) in parts {
            assert_eq!(ev(&attr(t(), a.clone())), Ok(Value::Int(want)), "{a:?}");
        }
        let td = || c(Value::TimeDelta(-chrono::TimeDelta::microseconds(1)));
        assert_eq!(ev(&attr(td(), A::Days)), Ok(Value::Int(-1)));
        assert_eq!(ev(&attr(td(), A::Seconds)), Ok(Value::Int(86_399)));
        assert_eq!(ev(&attr(td(), A::Microseconds)), Ok(Value::Int(999_999)));
        let d = || CExpr::Dict(vec![(s("day"), int(4)), (s("name"), s("x"))]);
        assert_eq!(ev(&attr(d(), A::Day)), Ok(Value::Int(4)));
        assert_eq!(ev(&attr(d(), A::Key("name".into()))), Ok(Value::str("x")));
        assert_eq!(ev(&attr(d(), A::Key("missing".into()))), Ok(Value::Null));
        assert_eq!(ev(&attr(null(), A::Key("x".into()))), Ok(Value::Null));
        assert_eq!(err_kind(&attr(int(1), A::Year)), K::AttributeError);
        assert_eq!(err_kind(&attr(t(), A::Days)), K::AttributeError);
    }
}
