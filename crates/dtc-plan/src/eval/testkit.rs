//! Compact builders for hand-written `CExpr` in tests.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dtc_lang::ast::{BinOp, CmpOp};

use super::{EvalError, EvalErrorKind, Evaluator, Scope};
use crate::plan::{Builtin, CExpr, Dialect, Method, Slot};
use crate::value::Value;

/// A scope with nothing in it: every load is null (a missing source field).
pub struct NoScope;

impl Scope for NoScope {
    fn load(&self, _slot: Slot) -> Value {
        Value::Null
    }
}

pub fn c(v: Value) -> CExpr {
    CExpr::Const(v)
}

pub fn int(i: i64) -> CExpr {
    c(Value::Int(i))
}

pub fn flt(f: f64) -> CExpr {
    c(Value::Float(f))
}

pub fn s(text: &str) -> CExpr {
    c(Value::str(text))
}

pub fn null() -> CExpr {
    c(Value::Null)
}

pub fn tru() -> CExpr {
    c(Value::Bool(true))
}

pub fn list(items: Vec<CExpr>) -> CExpr {
    CExpr::List(items)
}

pub fn tuple(items: Vec<CExpr>) -> CExpr {
    CExpr::Tuple(items)
}

pub fn bin(op: BinOp, a: CExpr, b: CExpr) -> CExpr {
    CExpr::Binary(Box::new(a), vec![(op, b)])
}

pub fn cmp(op: CmpOp, a: CExpr, b: CExpr) -> CExpr {
    CExpr::Compare(Box::new(a), vec![(op, b)])
}

pub fn call(b: Builtin, args: Vec<CExpr>) -> CExpr {
    CExpr::Call(b, args)
}

pub fn meth(receiver: CExpr, m: Method, args: Vec<CExpr>) -> CExpr {
    CExpr::Method(Box::new(receiver), m, args)
}

pub fn ints(items: &[i64]) -> Value {
    Value::list(items.iter().map(|i| Value::Int(*i)).collect())
}

pub fn strs(items: &[&str]) -> Value {
    Value::list(items.iter().map(|i| Value::str(i)).collect())
}

pub fn tup(items: Vec<Value>) -> Value {
    Value::Tuple(Arc::new(items))
}

pub fn dt(iso: &str) -> Value {
    match DateTime::parse_from_rfc3339(iso) {
        Ok(d) => Value::DateTime(d.with_timezone(&Utc)),
        Err(e) => panic!("bad test datetime {iso}: {e}"),
    }
}

pub fn ev(e: &CExpr) -> Result<Value, EvalError> {
    Evaluator::new(Dialect::Native).eval(e, &NoScope)
}

pub fn ev_blurr(e: &CExpr) -> Result<Value, EvalError> {
    Evaluator::new(Dialect::Blurr).eval(e, &NoScope)
}

/// The kind of the error `e` must fail with.
pub fn err_kind(e: &CExpr) -> EvalErrorKind {
    match ev(e) {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(err) => err.kind,
    }
}
