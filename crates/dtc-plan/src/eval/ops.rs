//! Operators, comparisons, indexing and iteration with Python semantics.

use std::cmp::Ordering;
use std::sync::Arc;

use chrono::TimeDelta;
use dtc_lang::ast::{BinOp, CmpOp};
use indexmap::{IndexMap, IndexSet};

use super::{
    EvalError, EvalErrorKind, MAX_ELEMENTS, null_operand, overflow, too_large, type_error,
    value_error,
};
use crate::value::{Number, Str, Value, py_repr};

fn zero_division(message: &str) -> EvalError {
    EvalError::new(EvalErrorKind::ZeroDivision, message)
}

fn unsupported(op: &str, a: &Value, b: &Value) -> EvalError {
    type_error(format!(
        "unsupported operand type(s) for {op}: '{}' and '{}'",
        a.type_name(),
        b.type_name()
    ))
}

pub(crate) fn neg(v: &Value) -> Result<Value, EvalError> {
    match v {
        Value::Null => Err(null_operand("unary -")),
        Value::Bool(b) => Ok(Value::Int(-i64::from(*b))),
        Value::Int(i) => i.checked_neg().map(Value::Int).ok_or_else(int_overflow),
        Value::Float(f) => Ok(Value::Float(-f)),
        Value::TimeDelta(d) => Ok(Value::TimeDelta(-*d)),
        other => Err(type_error(format!(
            "bad operand type for unary -: '{}'",
            other.type_name()
        ))),
    }
}

pub(crate) fn pos(v: &Value) -> Result<Value, EvalError> {
    match v {
        Value::Null => Err(null_operand("unary +")),
        Value::Bool(b) => Ok(Value::Int(i64::from(*b))),
        Value::Int(_) | Value::Float(_) | Value::TimeDelta(_) => Ok(v.clone()),
        other => Err(type_error(format!(
            "bad operand type for unary +: '{}'",
            other.type_name()
        ))),
    }
}

fn int_overflow() -> EvalError {
    overflow("integer result does not fit in 64 bits")
}

pub(crate) fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, EvalError> {
    if a.is_null() || b.is_null() {
        return Err(null_operand(&format!("operator {}", op.symbol())));
    }
    if let (Some(x), Some(y)) = (a.as_number(), b.as_number()) {
        return match (x, y) {
            (Number::Int(x), Number::Int(y)) => int_op(op, x, y),
            _ => float_op(op, x.as_f64(), y.as_f64()),
        };
    }
    match op {
        BinOp::Add => add_other(a, b),
        BinOp::Sub => sub_other(a, b),
        BinOp::Mul => mul_other(a, b),
        BinOp::Div => match (a, b) {
            (Value::TimeDelta(x), Value::TimeDelta(y)) => {
                let y = micros(y);
                if y == 0 {
                    return Err(zero_division("division by zero"));
                }
                Ok(Value::Float(micros(x) as f64 / y as f64))
            }
            (Value::TimeDelta(x), _) => match b.as_number() {
                Some(n) if n.as_f64() == 0.0 => Err(zero_division("division by zero")),
                Some(n) => scale_timedelta(micros(x) as f64 / n.as_f64()),
                None => Err(unsupported("/", a, b)),
            },
            _ => Err(unsupported("/", a, b)),
        },
        BinOp::FloorDiv => match (a, b) {
            (Value::TimeDelta(x), Value::TimeDelta(y)) => {
                int_op(BinOp::FloorDiv, micros(x), micros(y))
            }
            _ => Err(unsupported("//", a, b)),
        },
        BinOp::Mod => match (a, b) {
            (Value::TimeDelta(x), Value::TimeDelta(y)) => {
                match int_op(BinOp::Mod, micros(x), micros(y))? {
                    Value::Int(m) => Ok(Value::TimeDelta(TimeDelta::microseconds(m))),
                    other => Ok(other),
                }
            }
            _ => Err(unsupported("%", a, b)),
        },
        BinOp::Pow => Err(unsupported("** or pow()", a, b)),
    }
}

fn micros(d: &TimeDelta) -> i64 {
    // chrono's range (±i64 milliseconds) exceeds i64 microseconds only far beyond any date.
    d.num_microseconds().unwrap_or(i64::MAX)
}

/// A timedelta from a float number of microseconds, rounded half to even like Python.
fn scale_timedelta(us: f64) -> Result<Value, EvalError> {
    let us = us.round_ties_even();
    if !us.is_finite() || us.abs() >= 9.2e18 {
        return Err(overflow("timedelta out of range"));
    }
    Ok(Value::TimeDelta(TimeDelta::microseconds(us as i64)))
}

fn int_op(op: BinOp, x: i64, y: i64) -> Result<Value, EvalError> {
    let r = match op {
        BinOp::Add => x.checked_add(y),
        BinOp::Sub => x.checked_sub(y),
        BinOp::Mul => x.checked_mul(y),
        BinOp::Div => {
            if y == 0 {
                return Err(zero_division("division by zero"));
            }
            return Ok(Value::Float(x as f64 / y as f64));
        }
        BinOp::FloorDiv => {
            if y == 0 {
                return Err(zero_division("integer division or modulo by zero"));
            }
            x.checked_div(y).map(|q| {
                if x % y != 0 && ((x < 0) != (y < 0)) {
                    q - 1
                } else {
                    q
                }
            })
        }
        BinOp::Mod => {
            if y == 0 {
                return Err(zero_division("integer division or modulo by zero"));
            }
            // i64::MIN % -1 overflows in Rust; mathematically it is 0.
            let r = x.checked_rem(y).unwrap_or(0);
            Some(if r != 0 && ((r < 0) != (y < 0)) {
                r + y
            } else {
                r
            })
        }
        BinOp::Pow => {
            if y < 0 {
                if x == 0 {
                    return Err(zero_division("0.0 cannot be raised to a negative power"));
                }
                return Ok(Value::Float((x as f64).powf(y as f64)));
            }
            match x {
                0 | 1 => Some(if y == 0 { 1 } else { x }),
                -1 => Some(if y % 2 == 0 { 1 } else { -1 }),
                _ => u32::try_from(y).ok().and_then(|y| x.checked_pow(y)),
            }
        }
    };
    r.map(Value::Int).ok_or_else(int_overflow)
}

fn float_op(op: BinOp, x: f64, y: f64) -> Result<Value, EvalError> {
    let r = match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => {
            if y == 0.0 {
                return Err(zero_division("float division by zero"));
            }
            x / y
        }
        BinOp::FloorDiv => {
            if y == 0.0 {
                return Err(zero_division("float floor division by zero"));
            }
            float_divmod(x, y).0
        }
        BinOp::Mod => {
            if y == 0.0 {
                return Err(zero_division("float modulo"));
            }
            float_divmod(x, y).1
        }
        BinOp::Pow => float_pow(x, y)?,
    };
    Ok(Value::Float(r))
}

/// CPython's `float_divmod`, so `//` and `%` agree with Python to the last bit.
fn float_divmod(x: f64, y: f64) -> (f64, f64) {
    let mut m = x % y;
    let mut div = (x - m) / y;
    if m != 0.0 {
        if (y < 0.0) != (m < 0.0) {
            m += y;
            div -= 1.0;
        }
    } else {
        m = 0.0_f64.copysign(y);
    }
    let floordiv = if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 { f + 1.0 } else { f }
    } else {
        0.0_f64.copysign(x / y)
    };
    (floordiv, m)
}

pub(crate) fn float_pow(x: f64, y: f64) -> Result<f64, EvalError> {
    if x == 0.0 && y < 0.0 {
        return Err(zero_division("0.0 cannot be raised to a negative power"));
    }
    if x < 0.0 && y.is_finite() && y.fract() != 0.0 {
        return Err(value_error(
            "negative number cannot be raised to a fractional power",
        ));
    }
    let r = x.powf(y);
    if r.is_infinite() && x.is_finite() && y.is_finite() {
        return Err(overflow("numerical result out of range"));
    }
    Ok(r)
}

fn add_other(a: &Value, b: &Value) -> Result<Value, EvalError> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => {
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Ok(Value::Str(Str::from(s)))
        }
        (Value::List(x), Value::List(y)) => Ok(Value::list(concat(x, y)?)),
        (Value::Tuple(x), Value::Tuple(y)) => Ok(Value::Tuple(Arc::new(concat(x, y)?))),
        (Value::DateTime(d), Value::TimeDelta(t)) | (Value::TimeDelta(t), Value::DateTime(d)) => d
            .checked_add_signed(*t)
            .map(Value::DateTime)
            .ok_or_else(|| overflow("date value out of range")),
        (Value::TimeDelta(x), Value::TimeDelta(y)) => x
            .checked_add(y)
            .map(Value::TimeDelta)
            .ok_or_else(|| overflow("timedelta out of range")),
        _ => Err(unsupported("+", a, b)),
    }
}

fn concat(x: &[Value], y: &[Value]) -> Result<Vec<Value>, EvalError> {
    if x.len() + y.len() > MAX_ELEMENTS {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(x.len() + y.len());
    out.extend_from_slice(x);
    out.extend_from_slice(y);
    Ok(out)
}

fn sub_other(a: &Value, b: &Value) -> Result<Value, EvalError> {
    match (a, b) {
        (Value::DateTime(d), Value::TimeDelta(t)) => d
            .checked_sub_signed(*t)
            .map(Value::DateTime)
            .ok_or_else(|| overflow("date value out of range")),
        (Value::DateTime(x), Value::DateTime(y)) => {
            Ok(Value::TimeDelta(x.signed_duration_since(*y)))
        }
        (Value::TimeDelta(x), Value::TimeDelta(y)) => x
            .checked_sub(y)
            .map(Value::TimeDelta)
            .ok_or_else(|| overflow("timedelta out of range")),
        (Value::Set(x), Value::Set(y)) => Ok(Value::Set(Arc::new(
            x.iter().filter(|v| !y.contains(*v)).cloned().collect(),
        ))),
        _ => Err(unsupported("-", a, b)),
    }
}

fn mul_other(a: &Value, b: &Value) -> Result<Value, EvalError> {
    let (seq, times) = match (a, b) {
        (Value::Str(_) | Value::List(_) | Value::Tuple(_), n) => (a, n),
        (n, Value::Str(_) | Value::List(_) | Value::Tuple(_)) => (b, n),
        (Value::TimeDelta(d), n) | (n, Value::TimeDelta(d)) => {
            return match n.as_number() {
                Some(Number::Int(i)) => micros(d)
                    .checked_mul(i)
                    .map(|us| Value::TimeDelta(TimeDelta::microseconds(us)))
                    .ok_or_else(|| overflow("timedelta out of range")),
                Some(Number::Float(f)) => scale_timedelta(micros(d) as f64 * f),
                None => Err(unsupported("*", a, b)),
            };
        }
        _ => return Err(unsupported("*", a, b)),
    };
    let Some(Number::Int(n)) = times.as_number() else {
        return Err(type_error(format!(
            "can't multiply sequence by non-int of type '{}'",
            times.type_name()
        )));
    };
    let n = usize::try_from(n).unwrap_or(0);
    match seq {
        Value::Str(s) => {
            if s.len().saturating_mul(n) > MAX_ELEMENTS {
                return Err(too_large());
            }
            Ok(Value::Str(Str::from(s.repeat(n))))
        }
        Value::List(items) | Value::Tuple(items) => {
            if items.len().saturating_mul(n) > MAX_ELEMENTS {
                return Err(too_large());
            }
            let mut out = Vec::with_capacity(items.len() * n);
            for _ in 0..n {
                out.extend_from_slice(items);
            }
            Ok(if matches!(seq, Value::List(_)) {
                Value::list(out)
            } else {
                Value::Tuple(Arc::new(out))
            })
        }
        _ => Err(unsupported("*", a, b)),
    }
}

/// One link of a comparison chain.
pub(crate) fn compare(op: CmpOp, a: &Value, b: &Value) -> Result<bool, EvalError> {
    match op {
        CmpOp::Eq => Ok(a == b),
        CmpOp::NotEq => Ok(a != b),
        CmpOp::Lt | CmpOp::LtE | CmpOp::Gt | CmpOp::GtE => order(op, a, b),
        CmpOp::In => contains(b, a),
        CmpOp::NotIn => contains(b, a).map(|r| !r),
        CmpOp::Is => Ok(is_same(a, b)),
        CmpOp::IsNot => Ok(!is_same(a, b)),
    }
}

fn is_same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        // Short strings live inside the value, so two copies of one are the same object here
        // (as CPython's interned short strings are); a long one is the same if it is shared.
        (Value::Str(x), Value::Str(y)) => {
            if x.is_heap_allocated() {
                std::ptr::eq(x.as_str(), y.as_str())
            } else {
                x == y
            }
        }
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => Arc::ptr_eq(x, y),
        (Value::Set(x), Value::Set(y)) => Arc::ptr_eq(x, y),
        (Value::Map(x), Value::Map(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

fn op_symbol(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Lt => "<",
        CmpOp::LtE => "<=",
        CmpOp::Gt => ">",
        _ => ">=",
    }
}

fn holds(op: CmpOp, ord: Option<Ordering>) -> bool {
    match ord {
        None => false,
        Some(o) => match op {
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::LtE => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            _ => o != Ordering::Less,
        },
    }
}

/// `<`, `<=`, `>`, `>=`; `op` must be one of those.
pub(crate) fn order(op: CmpOp, a: &Value, b: &Value) -> Result<bool, EvalError> {
    if let (Some(x), Some(y)) = (a.as_number(), b.as_number()) {
        let ord = match (x, y) {
            (Number::Int(x), Number::Int(y)) => Some(x.cmp(&y)),
            _ => x.as_f64().partial_cmp(&y.as_f64()),
        };
        return Ok(holds(op, ord));
    }
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(holds(op, Some(x.cmp(y)))),
        (Value::DateTime(x), Value::DateTime(y)) => Ok(holds(op, Some(x.cmp(y)))),
        (Value::TimeDelta(x), Value::TimeDelta(y)) => Ok(holds(op, Some(x.cmp(y)))),
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            match x.iter().zip(y.iter()).find(|(p, q)| p != q) {
                Some((p, q)) => order(op, p, q),
                None => Ok(holds(op, Some(x.len().cmp(&y.len())))),
            }
        }
        (Value::Set(x), Value::Set(y)) => {
            let subset = |p: &IndexSet<Value>, q: &IndexSet<Value>| p.iter().all(|v| q.contains(v));
            Ok(match op {
                CmpOp::Lt => x.len() < y.len() && subset(x, y),
                CmpOp::LtE => subset(x, y),
                CmpOp::Gt => x.len() > y.len() && subset(y, x),
                _ => subset(y, x),
            })
        }
        (Value::Null, _) | (_, Value::Null) => {
            Err(null_operand(&format!("comparison {}", op_symbol(op))))
        }
        _ => Err(type_error(format!(
            "'{}' not supported between instances of '{}' and '{}'",
            op_symbol(op),
            a.type_name(),
            b.type_name()
        ))),
    }
}

/// `item in container`.
pub(crate) fn contains(container: &Value, item: &Value) -> Result<bool, EvalError> {
    match container {
        Value::Str(s) => match item {
            Value::Str(sub) => Ok(s.contains(&**sub)),
            Value::Null => Err(null_operand("'in <string>'")),
            other => Err(type_error(format!(
                "'in <string>' requires string as left operand, not {}",
                other.type_name()
            ))),
        },
        Value::List(items) | Value::Tuple(items) => Ok(items.contains(item)),
        Value::Set(items) => Ok(items.contains(item)),
        Value::Map(items) => Ok(items.contains_key(item)),
        Value::Null => Err(null_operand("'in'")),
        other => Err(type_error(format!(
            "argument of type '{}' is not iterable",
            other.type_name()
        ))),
    }
}

/// A Python index (negative counts from the end) into a sequence of `len` items.
fn seq_index(i: &Value, len: usize, what: &str) -> Result<usize, EvalError> {
    let i = match i {
        Value::Null => return Err(null_operand(&format!("{what} index"))),
        Value::Int(i) => *i,
        Value::Bool(b) => i64::from(*b),
        other => {
            return Err(type_error(format!(
                "{what} indices must be integers or slices, not {}",
                other.type_name()
            )));
        }
    };
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let j = if i < 0 { i + len } else { i };
    if (0..len).contains(&j) {
        Ok(j as usize)
    } else {
        Err(EvalError::new(
            EvalErrorKind::IndexError,
            format!("{what} index {i} out of range"),
        ))
    }
}

/// `v[i]`.
pub(crate) fn index(v: &Value, i: &Value) -> Result<Value, EvalError> {
    match v {
        Value::Null => Err(null_operand("indexing")),
        Value::List(items) => Ok(items[seq_index(i, items.len(), "list")?].clone()),
        Value::Tuple(items) => Ok(items[seq_index(i, items.len(), "tuple")?].clone()),
        Value::Str(s) => {
            let n = s.chars().count();
            let j = seq_index(i, n, "string")?;
            Ok(s.chars()
                .nth(j)
                .map_or(Value::Null, |c| Value::str(c.encode_utf8(&mut [0; 4]))))
        }
        Value::Map(items) => items
            .get(i)
            .cloned()
            .ok_or_else(|| EvalError::new(EvalErrorKind::KeyError, py_repr(i))),
        other => Err(type_error(format!(
            "'{}' object is not subscriptable",
            other.type_name()
        ))),
    }
}

fn slice_bound(v: &Value) -> Result<Option<i64>, EvalError> {
    match v {
        Value::Null => Ok(None),
        Value::Int(i) => Ok(Some(*i)),
        Value::Bool(b) => Ok(Some(i64::from(*b))),
        other => Err(type_error(format!(
            "slice indices must be integers or None, not {}",
            other.type_name()
        ))),
    }
}

/// The positions `v[lower:upper:step]` selects, as CPython's `PySlice_AdjustIndices`.
fn slice_positions(
    len: usize,
    lower: &Value,
    upper: &Value,
    step: &Value,
) -> Result<Vec<usize>, EvalError> {
    let step = slice_bound(step)?.unwrap_or(1);
    if step == 0 {
        return Err(value_error("slice step cannot be zero"));
    }
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let adjust = |bound: Option<i64>, default: i64| match bound {
        None => default,
        Some(b) if b < 0 => {
            let b = b.saturating_add(len);
            if b < 0 {
                if step < 0 { -1 } else { 0 }
            } else {
                b
            }
        }
        Some(b) if b >= len => {
            if step < 0 {
                len - 1
            } else {
                len
            }
        }
        Some(b) => b,
    };
    let (start, stop) = if step > 0 {
        (
            adjust(slice_bound(lower)?, 0),
            adjust(slice_bound(upper)?, len),
        )
    } else {
        (
            adjust(slice_bound(lower)?, len - 1),
            adjust(slice_bound(upper)?, -1),
        )
    };
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(i as usize);
        match i.checked_add(step) {
            Some(next) => i = next,
            None => break,
        }
    }
    Ok(out)
}

/// `v[lower:upper:step]`; null bounds stand for omitted ones.
pub(crate) fn slice(
    v: &Value,
    lower: &Value,
    upper: &Value,
    step: &Value,
) -> Result<Value, EvalError> {
    match v {
        Value::Null => Err(null_operand("slicing")),
        Value::List(items) | Value::Tuple(items) => {
            let out: Vec<Value> = slice_positions(items.len(), lower, upper, step)?
                .into_iter()
                .map(|i| items[i].clone())
                .collect();
            Ok(if matches!(v, Value::List(_)) {
                Value::list(out)
            } else {
                Value::Tuple(Arc::new(out))
            })
        }
        Value::Str(s) => {
            let chars: Vec<char> = s.chars().collect();
            let out: String = slice_positions(chars.len(), lower, upper, step)?
                .into_iter()
                .map(|i| chars[i])
                .collect();
            Ok(Value::Str(Str::from(out)))
        }
        other => Err(type_error(format!(
            "'{}' object is not subscriptable",
            other.type_name()
        ))),
    }
}

/// Iteration over a value without copying it: sequences by position, sets in insertion
/// order, maps over their keys, strings by character.
pub(crate) enum ValueIter {
    Seq(Arc<Vec<Value>>, usize),
    Set(Arc<IndexSet<Value>>, usize),
    Keys(Arc<IndexMap<Value, Value>>, usize),
    Chars(Str, usize),
}

impl Iterator for ValueIter {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        match self {
            ValueIter::Seq(items, i) => {
                let v = items.get(*i).cloned();
                *i += 1;
                v
            }
            ValueIter::Set(items, i) => {
                let v = items.get_index(*i).cloned();
                *i += 1;
                v
            }
            ValueIter::Keys(items, i) => {
                let v = items.get_index(*i).map(|(k, _)| k.clone());
                *i += 1;
                v
            }
            ValueIter::Chars(s, pos) => {
                let c = s.get(*pos..)?.chars().next()?;
                *pos += c.len_utf8();
                Some(Value::str(c.encode_utf8(&mut [0; 4])))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            ValueIter::Seq(items, i) => {
                let n = items.len().saturating_sub(*i);
                (n, Some(n))
            }
            ValueIter::Set(items, i) => {
                let n = items.len().saturating_sub(*i);
                (n, Some(n))
            }
            ValueIter::Keys(items, i) => {
                let n = items.len().saturating_sub(*i);
                (n, Some(n))
            }
            ValueIter::Chars(s, pos) => (0, Some(s.len().saturating_sub(*pos))),
        }
    }
}

pub(crate) fn iterate(v: &Value) -> Result<ValueIter, EvalError> {
    match v {
        Value::List(items) | Value::Tuple(items) => Ok(ValueIter::Seq(items.clone(), 0)),
        Value::Set(items) => Ok(ValueIter::Set(items.clone(), 0)),
        Value::Map(items) => Ok(ValueIter::Keys(items.clone(), 0)),
        Value::Str(s) => Ok(ValueIter::Chars(s.clone(), 0)),
        Value::Null => Err(null_operand("iteration")),
        other => Err(type_error(format!(
            "'{}' object is not iterable",
            other.type_name()
        ))),
    }
}

/// The items of an iterable as a vector (an `Arc` bump for lists and tuples).
pub(crate) fn items_of(v: &Value) -> Result<Arc<Vec<Value>>, EvalError> {
    match v {
        Value::List(items) | Value::Tuple(items) => Ok(items.clone()),
        other => Ok(Arc::new(iterate(other)?.collect())),
    }
}

/// A stable merge sort that only asks `<`, like Python's `list.sort`: the comparison may fail
/// (mixed types) or be inconsistent (NaN) without panicking.
pub(crate) fn sort_values(items: Vec<Value>, reverse: bool) -> Result<Vec<Value>, EvalError> {
    if items.len() <= 1 {
        return Ok(items);
    }
    let mut right = items;
    let left: Vec<Value> = right.drain(..right.len() / 2).collect();
    let left = sort_values(left, reverse)?;
    let right = sort_values(right, reverse)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    while let (Some(l), Some(r)) = (left.peek(), right.peek()) {
        // Taking from the right only when strictly before keeps equal items in input order,
        // and Python's reverse=True keeps them in input order too.
        let right_first = if reverse {
            order(CmpOp::Lt, l, r)?
        } else {
            order(CmpOp::Lt, r, l)?
        };
        let next = if right_first {
            right.next()
        } else {
            left.next()
        };
        out.extend(next);
    }
    out.extend(left);
    out.extend(right);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use dtc_lang::ast::{BinOp, CmpOp};

    use super::super::EvalErrorKind as K;
    use super::super::testkit::*;
    use crate::value::Value;

    #[test]
    fn arithmetic_follows_python() {
        let cases = [
            (bin(BinOp::Div, int(7), int(2)), Value::Float(3.5)),
            (bin(BinOp::FloorDiv, int(-7), int(2)), Value::Int(-4)),
            (bin(BinOp::Mod, int(-7), int(2)), Value::Int(1)),
            (bin(BinOp::Mod, int(7), int(-2)), Value::Int(-1)),
            (bin(BinOp::FloorDiv, flt(-7.5), int(2)), Value::Float(-4.0)),
            (bin(BinOp::Mod, flt(-7.5), int(2)), Value::Float(0.5)),
            (bin(BinOp::Pow, int(2), int(10)), Value::Int(1024)),
            (bin(BinOp::Pow, int(2), int(-1)), Value::Float(0.5)),
            (
                bin(BinOp::Pow, flt(2.0), flt(0.5)),
                Value::Float(2f64.sqrt()),
            ),
            (bin(BinOp::Add, tru(), tru()), Value::Int(2)),
            (bin(BinOp::Add, int(1), flt(0.5)), Value::Float(1.5)),
            (bin(BinOp::Sub, int(1), int(3)), Value::Int(-2)),
            (bin(BinOp::Mul, int(3), flt(0.1)), Value::Float(3.0 * 0.1)),
            (bin(BinOp::Add, s("ab"), s("c")), Value::str("abc")),
            (bin(BinOp::Mul, s("ab"), int(2)), Value::str("abab")),
            (bin(BinOp::Mul, int(-1), s("ab")), Value::str("")),
            (
                bin(BinOp::Add, list(vec![int(1)]), list(vec![int(2)])),
                ints(&[1, 2]),
            ),
            (
                bin(BinOp::Mul, list(vec![int(1)]), int(3)),
                ints(&[1, 1, 1]),
            ),
        ];
        for (e, want) in cases {
            let got = ev(&e);
            assert_eq!(got, Ok(want.clone()), "{e:?}");
            // Python distinguishes 2 from 2.0 in output: check the variant too.
            assert_eq!(got.map(|v| v.type_name()), Ok(want.type_name()), "{e:?}");
        }
    }

    #[test]
    fn arithmetic_errors() {
        assert_eq!(err_kind(&bin(BinOp::Div, int(1), int(0))), K::ZeroDivision);
        assert_eq!(
            err_kind(&bin(BinOp::Mod, flt(1.0), flt(0.0))),
            K::ZeroDivision
        );
        assert_eq!(
            err_kind(&bin(BinOp::FloorDiv, int(1), int(0))),
            K::ZeroDivision
        );
        assert_eq!(err_kind(&bin(BinOp::Pow, int(0), int(-1))), K::ZeroDivision);
        assert_eq!(
            err_kind(&bin(BinOp::Add, int(i64::MAX), int(1))),
            K::Overflow
        );
        assert_eq!(
            err_kind(&bin(BinOp::Mul, int(i64::MAX), int(2))),
            K::Overflow
        );
        assert_eq!(err_kind(&bin(BinOp::Pow, int(10), int(40))), K::Overflow);
        assert_eq!(
            err_kind(&bin(BinOp::FloorDiv, int(i64::MIN), int(-1))),
            K::Overflow
        );
        assert_eq!(
            err_kind(&bin(BinOp::Pow, flt(10.0), flt(400.0))),
            K::Overflow
        );
        assert_eq!(
            err_kind(&bin(BinOp::Pow, flt(-8.0), flt(0.5))),
            K::ValueError
        );
        assert_eq!(err_kind(&bin(BinOp::Add, s("a"), int(1))), K::TypeError);
        assert_eq!(err_kind(&bin(BinOp::Add, null(), int(1))), K::NullOperand);
        assert_eq!(err_kind(&bin(BinOp::Mul, null(), s("a"))), K::NullOperand);
        assert_eq!(
            err_kind(&bin(BinOp::Mul, s("ab"), int(100_000_000))),
            K::LimitExceeded
        );
        assert_eq!(err_kind(&bin(BinOp::Mul, s("ab"), flt(2.0))), K::TypeError);
        assert_eq!(err_kind(&CExpr::Neg(Box::new(null()))), K::NullOperand);
        assert_eq!(err_kind(&CExpr::Neg(Box::new(s("a")))), K::TypeError);
        assert_eq!(err_kind(&CExpr::Neg(Box::new(int(i64::MIN)))), K::Overflow);
    }

    use crate::plan::CExpr;

    #[test]
    fn unary() {
        assert_eq!(ev(&CExpr::Neg(Box::new(tru()))), Ok(Value::Int(-1)));
        assert_eq!(ev(&CExpr::Pos(Box::new(flt(1.5)))), Ok(Value::Float(1.5)));
    }

    #[test]
    fn datetime_arithmetic() {
        let t0 = c(dt("2018-03-07T10:00:00Z"));
        let t1 = c(dt("2018-03-08T11:00:30Z"));
        let delta = match ev(&bin(BinOp::Sub, t1.clone(), t0.clone())) {
            Ok(Value::TimeDelta(d)) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(delta.num_seconds(), 86_400 + 3_630);
        let back = bin(BinOp::Add, t0.clone(), c(Value::TimeDelta(delta)));
        assert_eq!(ev(&back), Ok(dt("2018-03-08T11:00:30Z")));
        let back = bin(BinOp::Sub, t1, c(Value::TimeDelta(delta)));
        assert_eq!(ev(&back), Ok(dt("2018-03-07T10:00:00Z")));
        let half = bin(BinOp::Div, c(Value::TimeDelta(delta)), int(2));
        assert!(matches!(ev(&half), Ok(Value::TimeDelta(d)) if d * 2 == delta));
        let ratio = bin(
            BinOp::Div,
            c(Value::TimeDelta(delta)),
            c(Value::TimeDelta(delta)),
        );
        assert_eq!(ev(&ratio), Ok(Value::Float(1.0)));
        assert_eq!(err_kind(&bin(BinOp::Add, t0.clone(), t0)), K::TypeError);
    }

    #[test]
    fn comparisons() {
        let t = |e: CExpr| assert_eq!(ev(&e), Ok(Value::Bool(true)), "{e:?}");
        let f = |e: CExpr| assert_eq!(ev(&e), Ok(Value::Bool(false)), "{e:?}");
        t(cmp(CmpOp::Lt, int(1), flt(1.5)));
        t(cmp(CmpOp::LtE, tru(), int(1)));
        t(cmp(CmpOp::Eq, int(1), flt(1.0)));
        f(cmp(CmpOp::Eq, int(1), s("1")));
        t(cmp(CmpOp::NotEq, int(1), s("1")));
        t(cmp(CmpOp::Lt, s("abc"), s("abd")));
        t(cmp(CmpOp::Gt, s("b"), s("abc")));
        t(cmp(
            CmpOp::Lt,
            list(vec![int(1), int(2)]),
            list(vec![int(1), int(3)]),
        ));
        t(cmp(
            CmpOp::Lt,
            list(vec![int(1)]),
            list(vec![int(1), int(0)]),
        ));
        f(cmp(
            CmpOp::Lt,
            tuple(vec![int(2)]),
            tuple(vec![int(1), int(9)]),
        ));
        t(cmp(
            CmpOp::Lt,
            c(dt("2018-01-01T00:00:00Z")),
            c(dt("2018-01-02T00:00:00Z")),
        ));
        t(cmp(CmpOp::GtE, flt(2.0), int(2)));
        f(cmp(CmpOp::Lt, flt(f64::NAN), int(2)));
        f(cmp(CmpOp::Eq, null(), s("y")));
        t(cmp(CmpOp::NotEq, null(), s("y")));
        t(cmp(CmpOp::Is, null(), null()));
        t(cmp(CmpOp::IsNot, int(0), null()));
        f(cmp(CmpOp::Is, int(0), null()));
        let small = CExpr::Set(vec![int(1)]);
        let big = CExpr::Set(vec![int(1), int(2)]);
        t(cmp(CmpOp::Lt, small.clone(), big.clone()));
        f(cmp(CmpOp::Lt, big.clone(), small.clone()));
        t(cmp(CmpOp::GtE, big, small));
        assert_eq!(err_kind(&cmp(CmpOp::Lt, s("a"), int(1))), K::TypeError);
        assert_eq!(err_kind(&cmp(CmpOp::Lt, null(), int(1))), K::NullOperand);
        assert_eq!(
            err_kind(&cmp(CmpOp::Lt, list(vec![s("a")]), list(vec![int(1)]))),
            K::TypeError
        );
    }

    #[test]
    fn membership() {
        let t = |e: CExpr| assert_eq!(ev(&e), Ok(Value::Bool(true)), "{e:?}");
        let f = |e: CExpr| assert_eq!(ev(&e), Ok(Value::Bool(false)), "{e:?}");
        t(cmp(CmpOp::In, s("ell"), s("hello")));
        f(cmp(CmpOp::In, s("x"), s("hello")));
        t(cmp(CmpOp::In, flt(2.0), list(vec![int(1), int(2)])));
        t(cmp(CmpOp::NotIn, int(3), tuple(vec![int(1), int(2)])));
        t(cmp(CmpOp::In, int(1), CExpr::Set(vec![flt(1.0)])));
        t(cmp(CmpOp::In, s("k"), CExpr::Dict(vec![(s("k"), int(0))])));
        f(cmp(CmpOp::In, int(0), CExpr::Dict(vec![(s("k"), int(0))])));
        assert_eq!(err_kind(&cmp(CmpOp::In, int(1), s("1"))), K::TypeError);
        assert_eq!(err_kind(&cmp(CmpOp::In, int(1), int(1))), K::TypeError);
        assert_eq!(err_kind(&cmp(CmpOp::In, s("a"), null())), K::NullOperand);
    }

    fn index(v: CExpr, i: CExpr) -> CExpr {
        CExpr::Index(Box::new(v), Box::new(i))
    }

    fn slice(v: CExpr, lo: Option<i64>, hi: Option<i64>, step: Option<i64>) -> CExpr {
        let b = |x: Option<i64>| x.map(|i| Box::new(int(i)));
        CExpr::Slice {
            value: Box::new(v),
            lower: b(lo),
            upper: b(hi),
            step: b(step),
        }
    }

    #[test]
    fn indexing() {
        let l = || list(vec![int(10), int(20), int(30)]);
        assert_eq!(ev(&index(l(), int(0))), Ok(Value::Int(10)));
        assert_eq!(ev(&index(l(), int(-1))), Ok(Value::Int(30)));
        assert_eq!(ev(&index(s("héllo"), int(1))), Ok(Value::str("é")));
        let d = CExpr::Dict(vec![(s("a"), int(1)), (int(2), s("two"))]);
        assert_eq!(ev(&index(d.clone(), s("a"))), Ok(Value::Int(1)));
        assert_eq!(ev(&index(d.clone(), flt(2.0))), Ok(Value::str("two")));
        assert_eq!(err_kind(&index(d, s("b"))), K::KeyError);
        assert_eq!(err_kind(&index(l(), int(3))), K::IndexError);
        assert_eq!(err_kind(&index(l(), int(-4))), K::IndexError);
        assert_eq!(err_kind(&index(list(vec![]), int(0))), K::IndexError);
        assert_eq!(err_kind(&index(l(), s("a"))), K::TypeError);
        assert_eq!(err_kind(&index(null(), int(0))), K::NullOperand);
        assert_eq!(err_kind(&index(int(5), int(0))), K::TypeError);
    }

    #[test]
    fn slicing() {
        let l = || list((0..6).map(int).collect());
        assert_eq!(ev(&slice(l(), Some(1), Some(3), None)), Ok(ints(&[1, 2])));
        assert_eq!(ev(&slice(l(), Some(-2), None, None)), Ok(ints(&[4, 5])));
        assert_eq!(ev(&slice(l(), None, None, Some(-2))), Ok(ints(&[5, 3, 1])));
        assert_eq!(
            ev(&slice(l(), Some(4), Some(1), Some(-1))),
            Ok(ints(&[4, 3, 2]))
        );
        assert_eq!(
            ev(&slice(l(), Some(-100), Some(100), Some(2))),
            Ok(ints(&[0, 2, 4]))
        );
        assert_eq!(ev(&slice(l(), Some(3), Some(1), None)), Ok(ints(&[])));
        assert_eq!(
            ev(&slice(s("hello"), Some(1), Some(-1), None)),
            Ok(Value::str("ell"))
        );
        assert_eq!(
            ev(&slice(s("abc"), None, None, Some(-1))),
            Ok(Value::str("cba"))
        );
        let t = slice(tuple(vec![int(1), int(2)]), Some(1), None, None);
        assert_eq!(ev(&t), Ok(tup(vec![Value::Int(2)])));
        assert_eq!(err_kind(&slice(l(), None, None, Some(0))), K::ValueError);
        assert_eq!(err_kind(&slice(null(), None, None, None)), K::NullOperand);
    }
}
