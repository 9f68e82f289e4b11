//! Built-in functions (docs/language.md section 7.1). Argument conventions are those of [`Builtin`].

use std::sync::Arc;

use dtc_lang::ast::{BinOp, CmpOp};
use indexmap::IndexSet;

use super::convert::{float_to_int, parse_int, to_bool, to_float, to_int, to_map, to_set};
use super::{
    EvalError, MAX_ELEMENTS, null_operand, ops, overflow, time, too_large, truthy, type_error,
    value_error,
};
use crate::plan::{Builtin, Dialect};
use crate::value::{Number, Str, Value, py_str};

fn name(b: Builtin) -> &'static str {
    match b {
        Builtin::Len => "len",
        Builtin::Count => "count",
        Builtin::Sum => "sum",
        Builtin::Min => "min",
        Builtin::Max => "max",
        Builtin::Abs => "abs",
        Builtin::Round => "round",
        Builtin::Int => "int",
        Builtin::Float => "float",
        Builtin::Str => "str",
        Builtin::Bool => "bool",
        Builtin::List => "list",
        Builtin::Set => "set",
        Builtin::Dict => "dict",
        Builtin::Tuple => "tuple",
        Builtin::Sorted => "sorted",
        Builtin::Reversed => "reversed",
        Builtin::Any => "any",
        Builtin::All => "all",
        Builtin::Zip => "zip",
        Builtin::Range => "range",
        Builtin::Enumerate => "enumerate",
        Builtin::First => "first",
        Builtin::Last => "last",
        Builtin::ParseTime => "parse_time",
        Builtin::Strptime => "strptime",
        Builtin::FromTimestamp => "fromtimestamp",
        Builtin::UtcNow => "utcnow",
        Builtin::TimeDelta => "timedelta",
        Builtin::DateTime => "datetime",
        Builtin::Date => "date",
        Builtin::MathFloor => "math.floor",
        Builtin::MathCeil => "math.ceil",
        Builtin::MathSqrt => "math.sqrt",
        Builtin::MathLog => "math.log",
        Builtin::MathExp => "math.exp",
        Builtin::MathPow => "math.pow",
    }
}

/// The argument count range each builtin takes after the resolver placed keywords.
fn arity(b: Builtin) -> (usize, usize) {
    match b {
        Builtin::Len
        | Builtin::Count
        | Builtin::Abs
        | Builtin::Reversed
        | Builtin::Any
        | Builtin::All
        | Builtin::FromTimestamp
        | Builtin::MathFloor
        | Builtin::MathCeil
        | Builtin::MathSqrt
        | Builtin::MathExp => (1, 1),
        Builtin::Sum
        | Builtin::Round
        | Builtin::Sorted
        | Builtin::Enumerate
        | Builtin::First
        | Builtin::Last
        | Builtin::ParseTime => (1, 2),
        Builtin::MathLog => (1, 2),
        Builtin::Int => (0, 2),
        Builtin::Float
        | Builtin::Str
        | Builtin::Bool
        | Builtin::List
        | Builtin::Set
        | Builtin::Dict
        | Builtin::Tuple => (0, 1),
        Builtin::Min | Builtin::Max => (1, usize::MAX),
        Builtin::Zip => (0, usize::MAX),
        Builtin::Range => (1, 3),
        Builtin::Strptime | Builtin::MathPow => (2, 2),
        Builtin::UtcNow => (0, 0),
        Builtin::TimeDelta => (0, 7),
        Builtin::DateTime => (3, 7),
        Builtin::Date => (3, 3),
    }
}

fn number(v: &Value, what: &str) -> Result<Number, EvalError> {
    match v {
        Value::Null => Err(null_operand(what)),
        other => other.as_number().ok_or_else(|| {
            type_error(format!(
                "{what}: must be a number, not '{}'",
                other.type_name()
            ))
        }),
    }
}

fn int_arg(v: &Value, what: &str) -> Result<i64, EvalError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Null => Err(null_operand(what)),
        other => Err(type_error(format!(
            "{what}: '{}' object cannot be interpreted as an integer",
            other.type_name()
        ))),
    }
}

fn str_arg<'a>(v: &'a Value, what: &str) -> Result<&'a str, EvalError> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Null => Err(null_operand(what)),
        other => Err(type_error(format!(
            "{what}: argument must be str, not '{}'",
            other.type_name()
        ))),
    }
}

/// Calls `b` with evaluated arguments.
pub(crate) fn call(b: Builtin, args: &[Value], dialect: Dialect) -> Result<Value, EvalError> {
    let (lo, hi) = arity(b);
    if args.len() < lo || args.len() > hi {
        return Err(type_error(format!(
            "{}() takes {lo} to {hi} arguments ({} given)",
            name(b),
            args.len()
        )));
    }
    let n = name(b);
    match b {
        Builtin::Len | Builtin::Count => len(&args[0], n),
        Builtin::Sum => sum(&args[0], args.get(1)),
        Builtin::Min => extreme(args, CmpOp::Lt, n),
        Builtin::Max => extreme(args, CmpOp::Gt, n),
        Builtin::Abs => abs(&args[0]),
        Builtin::Round => round(&args[0], args.get(1)),
        Builtin::Int => match args {
            [x] => to_int(x),
            [x, base, ..] => {
                let base = int_arg(base, "int() base")?;
                match u32::try_from(base) {
                    Ok(base @ 2..=36) => parse_int(str_arg(x, "int() with base")?, base),
                    _ => Err(value_error("int() base must be >= 2 and <= 36")),
                }
            }
            [] => Ok(Value::Int(0)),
        },
        Builtin::Float => args.first().map_or(Ok(Value::Float(0.0)), to_float),
        Builtin::Str => Ok(args.first().map_or_else(
            || Value::str(""),
            |v| match v {
                Value::Str(_) => v.clone(),
                other => Value::Str(Str::from(py_str(other))),
            },
        )),
        Builtin::Bool => args
            .first()
            .map_or(Ok(Value::Bool(false)), |v| to_bool(v, dialect)),
        Builtin::List => match args.first() {
            None => Ok(Value::list(Vec::new())),
            Some(v) => Ok(Value::list(ops::iterate(v)?.collect())),
        },
        Builtin::Tuple => match args.first() {
            None => Ok(Value::Tuple(Arc::new(Vec::new()))),
            Some(Value::Tuple(_)) => Ok(args[0].clone()),
            Some(v) => Ok(Value::Tuple(Arc::new(ops::iterate(v)?.collect()))),
        },
        Builtin::Set => args
            .first()
            .map_or_else(|| Ok(Value::Set(Arc::new(IndexSet::new()))), to_set),
        Builtin::Dict => args
            .first()
            .map_or_else(|| Ok(Value::Map(Arc::default())), to_map),
        Builtin::Sorted => {
            let reverse = args.get(1).is_some_and(truthy);
            let items = ops::iterate(&args[0])?.collect();
            Ok(Value::list(ops::sort_values(items, reverse)?))
        }
        Builtin::Reversed => match &args[0] {
            Value::Set(_) => Err(type_error("'set' object is not reversible")),
            v => {
                let mut items: Vec<Value> = ops::iterate(v)?.collect();
                items.reverse();
                Ok(Value::list(items))
            }
        },
        Builtin::Any => {
            let mut found = false;
            for v in ops::iterate(&args[0])? {
                if truthy(&v) {
                    found = true;
                    break;
                }
            }
            Ok(Value::Bool(found))
        }
        Builtin::All => {
            let mut all = true;
            for v in ops::iterate(&args[0])? {
                if !truthy(&v) {
                    all = false;
                    break;
                }
            }
            Ok(Value::Bool(all))
        }
        Builtin::Zip => zip(args),
        Builtin::Range => range(args),
        // An empty window has no first or last block: the default (null), not an error.
        Builtin::First => {
            let default = || args.get(1).cloned().unwrap_or(Value::Null);
            Ok(ops::iterate(&args[0])?.next().unwrap_or_else(default))
        }
        Builtin::Last => {
            let default = || args.get(1).cloned().unwrap_or(Value::Null);
            Ok(match &args[0] {
                Value::List(items) | Value::Tuple(items) => items.last().cloned(),
                other => ops::iterate(other)?.last(),
            }
            .unwrap_or_else(default))
        }
        Builtin::Enumerate => {
            let start = args.get(1).map_or(Ok(0), |v| int_arg(v, n))?;
            let mut out = Vec::new();
            for (i, v) in ops::iterate(&args[0])?.enumerate() {
                let i = i64::try_from(i)
                    .ok()
                    .and_then(|i| i.checked_add(start))
                    .ok_or_else(|| overflow("enumerate index overflow"))?;
                out.push(Value::Tuple(Arc::new(vec![Value::Int(i), v])));
            }
            Ok(Value::list(out))
        }
        Builtin::ParseTime => match (&args[0], args.get(1)) {
            (Value::DateTime(_), None) => Ok(args[0].clone()),
            (s, None) => time::parse_time(str_arg(s, n)?).map(Value::DateTime),
            (s, Some(fmt)) => time::strptime(str_arg(s, n)?, str_arg(fmt, n)?).map(Value::DateTime),
        },
        Builtin::Strptime => {
            time::strptime(str_arg(&args[0], n)?, str_arg(&args[1], n)?).map(Value::DateTime)
        }
        Builtin::FromTimestamp => time::from_timestamp(&args[0]),
        Builtin::UtcNow => Ok(time::utc_now()),
        Builtin::TimeDelta => time::make_timedelta(args),
        Builtin::DateTime | Builtin::Date => time::make_datetime(args),
        Builtin::MathFloor | Builtin::MathCeil => match number(&args[0], n)? {
            Number::Int(i) => Ok(Value::Int(i)),
            Number::Float(f) if b == Builtin::MathFloor => float_to_int(f.floor()),
            Number::Float(f) => float_to_int(f.ceil()),
        },
        Builtin::MathSqrt => {
            let x = number(&args[0], n)?.as_f64();
            if x < 0.0 {
                return Err(value_error("math domain error"));
            }
            Ok(Value::Float(x.sqrt()))
        }
        Builtin::MathLog => {
            let x = number(&args[0], n)?.as_f64();
            if x <= 0.0 {
                return Err(value_error("math domain error"));
            }
            match args.get(1) {
                None => Ok(Value::Float(x.ln())),
                Some(base) => {
                    let base = number(base, n)?.as_f64();
                    if base <= 0.0 {
                        return Err(value_error("math domain error"));
                    }
                    if base == 1.0 {
                        return Err(super::EvalError::new(
                            super::EvalErrorKind::ZeroDivision,
                            "float division by zero",
                        ));
                    }
                    Ok(Value::Float(x.ln() / base.ln()))
                }
            }
        }
        Builtin::MathExp => {
            let x = number(&args[0], n)?.as_f64();
            let r = x.exp();
            if r.is_infinite() && x.is_finite() {
                return Err(overflow("math range error"));
            }
            Ok(Value::Float(r))
        }
        Builtin::MathPow => {
            let x = number(&args[0], n)?.as_f64();
            let y = number(&args[1], n)?.as_f64();
            if x == 0.0 && y < 0.0 {
                return Err(value_error("math domain error"));
            }
            ops::float_pow(x, y).map(Value::Float)
        }
    }
}

fn len(v: &Value, name: &str) -> Result<Value, EvalError> {
    let n = match v {
        Value::Str(s) => s.chars().count(),
        Value::List(items) | Value::Tuple(items) => items.len(),
        Value::Set(items) => items.len(),
        Value::Map(items) => items.len(),
        Value::Null => return Err(null_operand(&format!("{name}()"))),
        other => {
            return Err(type_error(format!(
                "object of type '{}' has no len()",
                other.type_name()
            )));
        }
    };
    Ok(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// Python's `sum`: a left fold with `+` starting from the integer 0 (or `start`), so float
/// sums match Python bit for bit.
fn sum(iterable: &Value, start: Option<&Value>) -> Result<Value, EvalError> {
    let mut acc = start.cloned().unwrap_or(Value::Int(0));
    if matches!(acc, Value::Str(_)) {
        return Err(type_error(
            "sum() can't sum strings [use ''.join(seq) instead]",
        ));
    }
    if let Value::List(items) | Value::Tuple(items) = iterable {
        for item in items.iter() {
            acc = ops::binary(BinOp::Add, &acc, item)?;
        }
        return Ok(acc);
    }
    for item in ops::iterate(iterable)? {
        acc = ops::binary(BinOp::Add, &acc, &item)?;
    }
    Ok(acc)
}

/// `min`/`max`: the first extreme item, over one iterable or over several arguments.
fn extreme(args: &[Value], better: CmpOp, name: &str) -> Result<Value, EvalError> {
    let mut best: Option<Value> = None;
    let mut consider = |v: Value| -> Result<(), EvalError> {
        match &best {
            Some(b) if !ops::order(better, &v, b)? => {}
            _ => best = Some(v),
        }
        Ok(())
    };
    if let [single] = args {
        for v in ops::iterate(single)? {
            consider(v)?;
        }
    } else {
        for v in args {
            consider(v.clone())?;
        }
    }
    best.ok_or_else(|| value_error(format!("{name}() arg is an empty sequence")))
}

fn abs(v: &Value) -> Result<Value, EvalError> {
    match v {
        Value::TimeDelta(d) => Ok(Value::TimeDelta(d.abs())),
        other => match number(other, "abs()")? {
            Number::Int(i) => i
                .checked_abs()
                .map(Value::Int)
                .ok_or_else(|| overflow("integer result does not fit in 64 bits")),
            Number::Float(f) => Ok(Value::Float(f.abs())),
        },
    }
}

/// Python 3's `round`: half to even; `round(x)` gives an int, `round(float, n)` a float
/// rounded at the exact decimal value of the binary float (`round(2.675, 2) == 2.67`).
fn round(x: &Value, ndigits: Option<&Value>) -> Result<Value, EvalError> {
    let x = number(x, "round()")?;
    let ndigits = match ndigits {
        None | Some(Value::Null) => {
            return match x {
                Number::Int(i) => Ok(Value::Int(i)),
                Number::Float(f) if f.is_infinite() => {
                    Err(overflow("cannot convert float infinity to integer"))
                }
                Number::Float(f) => float_to_int(f.round_ties_even()),
            };
        }
        Some(n) => int_arg(n, "round() ndigits")?,
    };
    match x {
        Number::Int(i) => {
            if ndigits >= 0 {
                return Ok(Value::Int(i));
            }
            let Some(p) = u32::try_from(-ndigits)
                .ok()
                .and_then(|e| 10_i64.checked_pow(e))
            else {
                return Ok(Value::Int(0));
            };
            // Half to even on the exact integer quotient.
            let q = i.div_euclid(p);
            let r = i.rem_euclid(p);
            let q = match (2 * i128::from(r)).cmp(&i128::from(p)) {
                std::cmp::Ordering::Greater => q + 1,
                std::cmp::Ordering::Equal if q % 2 != 0 => q + 1,
                _ => q,
            };
            q.checked_mul(p)
                .map(Value::Int)
                .ok_or_else(|| overflow("integer result does not fit in 64 bits"))
        }
        Number::Float(f) => {
            if !f.is_finite() || ndigits > 323 {
                return Ok(Value::Float(f));
            }
            if ndigits < -308 {
                return Ok(Value::Float(0.0_f64.copysign(f)));
            }
            if ndigits >= 0 {
                // Rust's fixed-precision formatting rounds the exact binary value half to
                // even, which is what CPython's dtoa-based round does.
                let text = format!("{:.*}", ndigits as usize, f);
                return text
                    .parse::<f64>()
                    .map(Value::Float)
                    .map_err(|_| value_error("round() failed"));
            }
            let p = 10_f64.powi((-ndigits) as i32);
            let r = (f / p).round_ties_even() * p;
            if r.is_infinite() {
                return Err(overflow("rounded value too large to represent"));
            }
            Ok(Value::Float(r))
        }
    }
}

fn zip(args: &[Value]) -> Result<Value, EvalError> {
    let mut iters = args
        .iter()
        .map(ops::iterate)
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    if iters.is_empty() {
        return Ok(Value::list(out));
    }
    loop {
        let mut row = Vec::with_capacity(iters.len());
        for it in &mut iters {
            match it.next() {
                Some(v) => row.push(v),
                None => return Ok(Value::list(out)),
            }
        }
        out.push(Value::Tuple(Arc::new(row)));
    }
}

fn range(args: &[Value]) -> Result<Value, EvalError> {
    let ints: Vec<i64> = args
        .iter()
        .map(|v| int_arg(v, "range()"))
        .collect::<Result<_, _>>()?;
    let (start, stop, step) = match ints[..] {
        [stop] => (0, stop, 1),
        [start, stop] => (start, stop, 1),
        [start, stop, step] => (start, stop, step),
        _ => return Err(type_error("range expected 1 to 3 arguments")),
    };
    if step == 0 {
        return Err(value_error("range() arg 3 must not be zero"));
    }
    let (start, stop, step) = (i128::from(start), i128::from(stop), i128::from(step));
    let count = if step > 0 {
        (stop - start + step - 1).div_euclid(step)
    } else {
        (start - stop - step - 1).div_euclid(-step)
    }
    .max(0);
    if count > MAX_ELEMENTS as i128 {
        return Err(too_large());
    }
    // Every element lies between start and stop, so it fits in i64.
    Ok(Value::list(
        (0..count)
            .map(|k| Value::Int((start + k * step) as i64))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::EvalErrorKind as K;
    use super::super::testkit::*;
    use crate::plan::{Builtin as B, CExpr};
    use crate::value::{Value, py_repr};

    fn repr_of(e: &CExpr) -> String {
        match ev(e) {
            Ok(v) => py_repr(&v),
            Err(err) => panic!("{e:?}: {err}"),
        }
    }

    fn fl(items: &[f64]) -> CExpr {
        list(items.iter().map(|f| flt(*f)).collect())
    }

    #[test]
    fn sum_is_a_left_fold_from_zero() {
        let tenths = fl(&[0.1; 10]);
        assert_eq!(
            ev(&call(B::Sum, vec![tenths])),
            Ok(Value::Float(0.9999999999999999))
        );
        assert_eq!(
            repr_of(&call(B::Sum, vec![fl(&[0.1, 0.2])])),
            "0.30000000000000004"
        );
        let empty = call(B::Sum, vec![list(vec![])]);
        assert_eq!(repr_of(&empty), "0");
        assert_eq!(repr_of(&call(B::Sum, vec![list(vec![int(1), tru()])])), "2");
        assert_eq!(
            repr_of(&call(B::Sum, vec![list(vec![int(1)]), flt(0.5)])),
            "1.5"
        );
        assert_eq!(
            err_kind(&call(B::Sum, vec![list(vec![s("a")])])),
            K::TypeError
        );
        assert_eq!(
            err_kind(&call(B::Sum, vec![list(vec![null()])])),
            K::NullOperand
        );
        assert_eq!(err_kind(&call(B::Sum, vec![null()])), K::NullOperand);
    }

    #[test]
    fn first_and_last_of_an_empty_iterable_are_the_default() {
        let xs = || list(vec![int(1), int(2), int(3)]);
        assert_eq!(ev(&call(B::First, vec![xs()])), Ok(Value::Int(1)));
        assert_eq!(ev(&call(B::Last, vec![xs()])), Ok(Value::Int(3)));
        assert_eq!(ev(&call(B::First, vec![list(vec![])])), Ok(Value::Null));
        assert_eq!(ev(&call(B::Last, vec![list(vec![])])), Ok(Value::Null));
        assert_eq!(
            ev(&call(B::Last, vec![list(vec![]), int(0)])),
            Ok(Value::Int(0))
        );
        assert_eq!(ev(&call(B::Last, vec![xs(), int(0)])), Ok(Value::Int(3)));
        assert_eq!(ev(&call(B::Last, vec![s("abc")])), Ok(Value::str("c")));
        assert_eq!(
            ev(&call(B::First, vec![tuple(vec![s("a"), s("b")])])),
            Ok(Value::str("a"))
        );
        // Null is not an empty window: it is an error like `len(None)`.
        assert_eq!(err_kind(&call(B::First, vec![null()])), K::NullOperand);
        assert_eq!(err_kind(&call(B::Last, vec![int(5)])), K::TypeError);
    }

    #[test]
    fn len_count_min_max_abs() {
        assert_eq!(ev(&call(B::Len, vec![s("héllo")])), Ok(Value::Int(5)));
        assert_eq!(
            ev(&call(B::Count, vec![list(vec![int(1), int(2)])])),
            Ok(Value::Int(2))
        );
        assert_eq!(err_kind(&call(B::Len, vec![int(1)])), K::TypeError);
        assert_eq!(err_kind(&call(B::Len, vec![null()])), K::NullOperand);
        assert_eq!(
            repr_of(&call(B::Min, vec![list(vec![int(3), flt(1.0), int(1)])])),
            "1.0"
        );
        assert_eq!(repr_of(&call(B::Max, vec![int(3), int(7), int(5)])), "7");
        assert_eq!(repr_of(&call(B::Max, vec![s("abc")])), "'c'");
        assert_eq!(err_kind(&call(B::Min, vec![list(vec![])])), K::ValueError);
        assert_eq!(err_kind(&call(B::Max, vec![int(1), s("a")])), K::TypeError);
        assert_eq!(repr_of(&call(B::Abs, vec![int(-3)])), "3");
        assert_eq!(repr_of(&call(B::Abs, vec![flt(-2.5)])), "2.5");
        assert_eq!(err_kind(&call(B::Abs, vec![s("a")])), K::TypeError);
        assert_eq!(err_kind(&call(B::Len, vec![])), K::TypeError);
    }

    #[test]
    fn round_is_half_to_even() {
        let r = |x: CExpr| repr_of(&call(B::Round, vec![x]));
        let r2 = |x: CExpr, n: i64| repr_of(&call(B::Round, vec![x, int(n)]));
        assert_eq!(r(flt(2.5)), "2");
        assert_eq!(r(flt(3.5)), "4");
        assert_eq!(r(flt(-2.5)), "-2");
        assert_eq!(r(flt(2.6)), "3");
        assert_eq!(r(int(7)), "7");
        assert_eq!(r2(flt(2.675), 2), "2.67");
        assert_eq!(r2(flt(0.125), 2), "0.12");
        assert_eq!(r2(flt(0.375), 2), "0.38");
        assert_eq!(r2(flt(1.5), 0), "2.0");
        assert_eq!(r2(flt(1234.5), -2), "1200.0");
        assert_eq!(r2(int(1250), -2), "1200");
        assert_eq!(r2(int(1350), -2), "1400");
        assert_eq!(r2(int(-1251), -2), "-1300");
        assert_eq!(
            err_kind(&call(B::Round, vec![flt(f64::NAN)])),
            K::ValueError
        );
        assert_eq!(
            err_kind(&call(B::Round, vec![flt(f64::INFINITY)])),
            K::Overflow
        );
    }

    #[test]
    fn conversions_use_dialect() {
        assert_eq!(ev(&call(B::Int, vec![flt(7.9)])), Ok(Value::Int(7)));
        assert_eq!(ev(&call(B::Int, vec![s("7")])), Ok(Value::Int(7)));
        assert_eq!(
            ev(&call(B::Int, vec![s("ff"), int(16)])),
            Ok(Value::Int(255))
        );
        assert_eq!(repr_of(&call(B::Float, vec![s("9.99")])), "9.99");
        assert_eq!(repr_of(&call(B::Str, vec![int(3)])), "'3'");
        assert_eq!(repr_of(&call(B::Str, vec![flt(1.5)])), "'1.5'");
        assert_eq!(repr_of(&call(B::Str, vec![tru()])), "'True'");
        assert_eq!(ev(&call(B::Bool, vec![s("no")])), Ok(Value::Bool(false)));
        assert_eq!(
            ev_blurr(&call(B::Bool, vec![s("no")])),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            ev_blurr(&call(B::Bool, vec![s("")])),
            Ok(Value::Bool(false))
        );
        assert_eq!(err_kind(&call(B::Int, vec![s("x")])), K::ValueError);
        assert_eq!(err_kind(&call(B::Float, vec![null()])), K::NullOperand);
        assert_eq!(repr_of(&call(B::Int, vec![])), "0");
        assert_eq!(repr_of(&call(B::Str, vec![])), "''");
    }

    #[test]
    fn constructors() {
        assert_eq!(repr_of(&call(B::List, vec![s("ab")])), "['a', 'b']");
        assert_eq!(repr_of(&call(B::List, vec![])), "[]");
        assert_eq!(repr_of(&call(B::Tuple, vec![list(vec![int(1)])])), "(1,)");
        assert_eq!(
            repr_of(&call(B::Set, vec![list(vec![int(1), int(1), int(2)])])),
            "{1, 2}"
        );
        assert_eq!(repr_of(&call(B::Set, vec![])), "set()");
        let pairs = list(vec![tuple(vec![s("a"), int(1)])]);
        assert_eq!(repr_of(&call(B::Dict, vec![pairs])), "{'a': 1}");
        assert_eq!(repr_of(&call(B::Dict, vec![])), "{}");
        let d = CExpr::Dict(vec![(s("k"), int(1))]);
        assert_eq!(repr_of(&call(B::List, vec![d])), "['k']");
        assert_eq!(err_kind(&call(B::List, vec![int(1)])), K::TypeError);
    }

    #[test]
    fn sorting_and_iteration_helpers() {
        let items = list(vec![int(3), flt(1.0), int(2), int(1)]);
        assert_eq!(
            repr_of(&call(B::Sorted, vec![items.clone()])),
            "[1.0, 1, 2, 3]"
        );
        assert_eq!(
            repr_of(&call(B::Sorted, vec![items.clone(), tru()])),
            "[3, 2, 1.0, 1]"
        );
        assert_eq!(
            err_kind(&call(B::Sorted, vec![list(vec![int(1), s("a")])])),
            K::TypeError
        );
        let nan = list(vec![flt(3.0), flt(f64::NAN), flt(1.0)]);
        assert!(ev(&call(B::Sorted, vec![nan])).is_ok());
        assert_eq!(repr_of(&call(B::Reversed, vec![items])), "[1, 2, 1.0, 3]");
        assert_eq!(
            err_kind(&call(B::Reversed, vec![CExpr::Set(vec![])])),
            K::TypeError
        );
        assert_eq!(
            ev(&call(B::Any, vec![list(vec![int(0), s("x")])])),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            ev(&call(B::Any, vec![list(vec![])])),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            ev(&call(B::All, vec![list(vec![int(1), s("")])])),
            Ok(Value::Bool(false))
        );
        assert_eq!(ev(&call(B::All, vec![list(vec![])])), Ok(Value::Bool(true)));
        let z = call(B::Zip, vec![list(vec![int(1), int(2)]), s("abc")]);
        assert_eq!(repr_of(&z), "[(1, 'a'), (2, 'b')]");
        assert_eq!(repr_of(&call(B::Zip, vec![])), "[]");
        let e = call(B::Enumerate, vec![s("ab"), int(1)]);
        assert_eq!(repr_of(&e), "[(1, 'a'), (2, 'b')]");
    }

    #[test]
    fn ranges() {
        assert_eq!(ev(&call(B::Range, vec![int(3)])), Ok(ints(&[0, 1, 2])));
        assert_eq!(
            ev(&call(B::Range, vec![int(1), int(7), int(2)])),
            Ok(ints(&[1, 3, 5]))
        );
        assert_eq!(
            ev(&call(B::Range, vec![int(5), int(0), int(-2)])),
            Ok(ints(&[5, 3, 1]))
        );
        assert_eq!(ev(&call(B::Range, vec![int(5), int(0)])), Ok(ints(&[])));
        assert_eq!(
            err_kind(&call(B::Range, vec![int(0), int(5), int(0)])),
            K::ValueError
        );
        assert_eq!(
            err_kind(&call(B::Range, vec![int(i64::MAX)])),
            K::LimitExceeded
        );
        assert_eq!(err_kind(&call(B::Range, vec![flt(2.0)])), K::TypeError);
    }

    #[test]
    fn time_builtins() {
        let t = dt("2018-03-07T10:00:00Z");
        assert_eq!(
            ev(&call(B::ParseTime, vec![s("2018-03-07T10:00:00Z")])),
            Ok(t.clone())
        );
        let fmt = call(
            B::ParseTime,
            vec![s("07.03.2018 10:00"), s("%d.%m.%Y %H:%M")],
        );
        assert_eq!(ev(&fmt), Ok(t.clone()));
        let sp = call(
            B::Strptime,
            vec![s("2018-03-07 10:00:00"), s("%Y-%m-%d %H:%M:%S")],
        );
        assert_eq!(ev(&sp), Ok(t.clone()));
        assert_eq!(
            ev(&call(B::FromTimestamp, vec![int(1_520_416_800)])),
            Ok(t.clone())
        );
        assert_eq!(err_kind(&call(B::ParseTime, vec![null()])), K::NullOperand);
        assert_eq!(
            err_kind(&call(B::ParseTime, vec![s("nope")])),
            K::ValueError
        );
        assert!(matches!(
            ev(&call(B::UtcNow, vec![])),
            Ok(Value::DateTime(_))
        ));
        let td = call(
            B::TimeDelta,
            vec![int(0), int(0), int(0), int(0), int(0), int(2), int(0)],
        );
        assert_eq!(repr_of(&td), "datetime.timedelta(seconds=7200)");
        let d = call(
            B::DateTime,
            vec![int(2018), int(3), int(7), int(10), int(0), int(0), int(0)],
        );
        assert_eq!(ev(&d), Ok(t));
        let d = call(B::Date, vec![int(2018), int(3), int(7)]);
        assert_eq!(ev(&d), Ok(dt("2018-03-07T00:00:00Z")));
    }

    #[test]
    fn math() {
        assert_eq!(repr_of(&call(B::MathFloor, vec![flt(-1.5)])), "-2");
        assert_eq!(repr_of(&call(B::MathCeil, vec![flt(1.2)])), "2");
        assert_eq!(repr_of(&call(B::MathSqrt, vec![int(16)])), "4.0");
        assert_eq!(repr_of(&call(B::MathLog, vec![int(8), int(2)])), "3.0");
        assert_eq!(repr_of(&call(B::MathExp, vec![int(0)])), "1.0");
        assert_eq!(repr_of(&call(B::MathPow, vec![int(2), int(3)])), "8.0");
        assert_eq!(err_kind(&call(B::MathSqrt, vec![int(-1)])), K::ValueError);
        assert_eq!(err_kind(&call(B::MathLog, vec![int(0)])), K::ValueError);
        assert_eq!(err_kind(&call(B::MathExp, vec![int(1000)])), K::Overflow);
        assert_eq!(
            err_kind(&call(B::MathFloor, vec![flt(f64::INFINITY)])),
            K::Overflow
        );
        assert_eq!(err_kind(&call(B::MathFloor, vec![null()])), K::NullOperand);
    }
}
