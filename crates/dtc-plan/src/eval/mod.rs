//! Evaluation of compiled expressions (docs/language.md sections 7, 10 and 15).
//!
//! Semantics follow Python 3 as Blurr ran it; where Python has no answer (bounded integers,
//! nulls) the rules are:
//! - integers are `i64`: a result outside that range is an [`EvalErrorKind::Overflow`] error;
//! - arithmetic, ordering comparisons, indexing, calls and methods on null are
//!   [`EvalErrorKind::NullOperand`] errors, while `==`/`!=`/`is` with null are plain
//!   comparisons and attribute access on null yields null (a missing nested source path);
//! - `is` is identity for `None` and bools, value equality for ints, and shared-object
//!   identity for strings and containers;
//! - int/float comparisons go through `f64`, so ints beyond 2^53 compare approximately
//!   (Python compares them exactly);
//! - `list.append`/`extend` and `set.add`/`union` return the updated container and leave the
//!   receiver's value untouched (copy-on-write), which is what Blurr specs rely on.

mod builtins;
mod convert;
mod methods;
mod ops;
mod time;

#[cfg(test)]
pub(crate) mod testkit;

use std::borrow::Cow;
use std::fmt;

use dtc_lang::ast::CmpOp;

use crate::plan::{CExpr, CGenerator, Dialect, Slot};
use crate::value::Value;

pub use self::convert::{convert, default_value, has_type};
pub use self::time::parse_time;
pub use crate::value::{from_json, py_repr, py_str, to_json};

/// What an expression can read: the engine implements this for a streaming event, a window
/// anchor, or a live feature query.
pub trait Scope {
    fn load(&self, slot: Slot) -> Value;

    /// The slot's value without a copy, when the scope holds it as a [`Value`] already;
    /// `None` makes the evaluator fall back to [`Scope::load`]. Comparisons and arithmetic
    /// borrow through this, so reading a string to compare it touches no reference count.
    fn load_ref(&self, _slot: Slot) -> Option<&Value> {
        None
    }
}

/// The class of an evaluation error, named after the Python exception it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvalErrorKind {
    /// Operand or argument of the wrong type, incompatible comparison.
    TypeError,
    ZeroDivision,
    /// Sequence index out of range.
    IndexError,
    /// Missing map key in `m[k]`.
    KeyError,
    /// Bad value: failed conversion (`int('x')`), unparsable time, empty `min()`.
    ValueError,
    /// Arithmetic, indexing or a call on null.
    NullOperand,
    /// A result outside the value model (`i64`, datetime range, float overflow in `**`).
    Overflow,
    /// Method or attribute that the receiver's type does not have.
    AttributeError,
    /// A result too large to build (`range`, string or list repetition).
    LimitExceeded,
}

impl fmt::Display for EvalErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EvalErrorKind::TypeError => "TypeError",
            EvalErrorKind::ZeroDivision => "ZeroDivisionError",
            EvalErrorKind::IndexError => "IndexError",
            EvalErrorKind::KeyError => "KeyError",
            EvalErrorKind::ValueError => "ValueError",
            EvalErrorKind::NullOperand => "NullOperand",
            EvalErrorKind::Overflow => "OverflowError",
            EvalErrorKind::AttributeError => "AttributeError",
            EvalErrorKind::LimitExceeded => "LimitExceeded",
        })
    }
}

/// An expression failed on this input: the field keeps its value and the error is counted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct EvalError {
    pub kind: EvalErrorKind,
    pub message: String,
}

impl EvalError {
    pub fn new(kind: EvalErrorKind, message: impl Into<String>) -> EvalError {
        EvalError {
            kind,
            message: message.into(),
        }
    }
}

pub(crate) fn type_error(message: impl Into<String>) -> EvalError {
    EvalError::new(EvalErrorKind::TypeError, message)
}

pub(crate) fn value_error(message: impl Into<String>) -> EvalError {
    EvalError::new(EvalErrorKind::ValueError, message)
}

pub(crate) fn null_operand(what: &str) -> EvalError {
    EvalError::new(EvalErrorKind::NullOperand, format!("{what} on None"))
}

pub(crate) fn overflow(message: impl Into<String>) -> EvalError {
    EvalError::new(EvalErrorKind::Overflow, message)
}

/// Largest list, string or range an expression may build, so that a hostile event cannot
/// exhaust memory.
pub(crate) const MAX_ELEMENTS: usize = 10_000_000;

/// Python truthiness: `None`, `False`, zero, empty strings and containers are false;
/// datetimes are true, a zero timedelta false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::DateTime(_) => true,
        Value::TimeDelta(d) => !d.is_zero(),
        Value::List(items) | Value::Tuple(items) => !items.is_empty(),
        Value::Set(items) => !items.is_empty(),
        Value::Map(items) => !items.is_empty(),
    }
}

/// Executes compiled expressions. One per worker: it owns scratch space (comprehension
/// locals, call arguments) that is reused from one evaluation to the next.
#[derive(Debug, Clone)]
pub struct Evaluator {
    dialect: Dialect,
    locals: Vec<Value>,
    /// Argument stack for builtin and method calls, so calls do not allocate.
    args: Vec<Value>,
}

impl Evaluator {
    pub fn new(dialect: Dialect) -> Evaluator {
        Evaluator {
            dialect,
            locals: Vec::new(),
            args: Vec::new(),
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Evaluates `expr` against `scope`.
    pub fn eval<S: Scope + ?Sized>(&mut self, expr: &CExpr, scope: &S) -> Result<Value, EvalError> {
        match expr {
            CExpr::Const(v) => Ok(v.clone()),
            CExpr::Load(slot) => Ok(scope.load(*slot)),
            CExpr::Neg(e) => ops::neg(&*self.eval_cow(e, scope)?),
            CExpr::Pos(e) => ops::pos(&*self.eval_cow(e, scope)?),
            CExpr::Not(e) => Ok(Value::Bool(!truthy(&*self.eval_cow(e, scope)?))),
            CExpr::Binary(first, rest) => {
                let mut acc = self.eval_cow(first, scope)?;
                for (op, rhs) in rest {
                    let rhs = self.eval_cow(rhs, scope)?;
                    acc = Cow::Owned(ops::binary(*op, &acc, &rhs)?);
                }
                Ok(acc.into_owned())
            }
            // Python returns the operand that decided: the first false one (`and`) or true one
            // (`or`), else the last.
            CExpr::And(items) | CExpr::Or(items) => {
                let stop_when = matches!(expr, CExpr::Or(_));
                let Some((last, before)) = items.split_last() else {
                    return Ok(Value::Null);
                };
                for item in before {
                    let v = self.eval_cow(item, scope)?;
                    if truthy(&v) == stop_when {
                        return Ok(v.into_owned());
                    }
                }
                self.eval(last, scope)
            }
            CExpr::Compare(first, rest) => self.compare_chain(first, rest, scope),
            CExpr::Local(_)
            | CExpr::List(_)
            | CExpr::Tuple(_)
            | CExpr::Set(_)
            | CExpr::Dict(_)
            | CExpr::Slice { .. }
            | CExpr::Method(..)
            | CExpr::ListComp { .. } => self.eval_rare(expr, scope),
            CExpr::IfElse { cond, body, orelse } => {
                let c = self.eval_cow(cond, scope)?;
                if truthy(&c) {
                    self.eval(body, scope)
                } else {
                    self.eval(orelse, scope)
                }
            }
            CExpr::Attr(e, attr) => methods::attribute(self.eval(e, scope)?, attr),
            CExpr::Index(e, i) => {
                let v = self.eval_cow(e, scope)?;
                let i = self.eval_cow(i, scope)?;
                ops::index(&v, &i)
            }
            // `float(source.x)`, `parser.parse(source.t)`: the argument is read in place
            // instead of copied onto the argument stack.
            CExpr::Call(builtin, args)
                if let [CExpr::Load(slot)] = args.as_slice()
                    && let Some(arg) = scope.load_ref(*slot) =>
            {
                builtins::call(*builtin, std::slice::from_ref(arg), self.dialect)
            }
            CExpr::Call(builtin, args) => {
                let base = self.args.len();
                let result = match self.push_args(args, scope) {
                    Ok(()) => builtins::call(*builtin, &self.args[base..], self.dialect),
                    Err(e) => Err(e),
                };
                self.args.truncate(base);
                result
            }
        }
    }

    /// The expressions specs seldom evaluate per event: the containers, slices, methods and
    /// comprehensions. Out of line, so that [`Evaluator::eval`], which recurses through every
    /// expression, saves and restores no registers for their loops.
    #[inline(never)]
    fn eval_rare<S: Scope + ?Sized>(
        &mut self,
        expr: &CExpr,
        scope: &S,
    ) -> Result<Value, EvalError> {
        match expr {
            CExpr::Local(i) => self
                .locals
                .get(usize::from(*i))
                .cloned()
                .ok_or_else(|| type_error(format!("comprehension variable {i} is not bound"))),
            CExpr::List(items) => Ok(Value::list(self.eval_all(items, scope)?)),
            CExpr::Tuple(items) => Ok(Value::Tuple(std::sync::Arc::new(
                self.eval_all(items, scope)?,
            ))),
            CExpr::Set(items) => {
                let mut set = indexmap::IndexSet::with_capacity(items.len());
                for item in items {
                    set.insert(self.eval(item, scope)?);
                }
                Ok(Value::Set(std::sync::Arc::new(set)))
            }
            CExpr::Dict(pairs) => {
                let mut map = indexmap::IndexMap::with_capacity(pairs.len());
                for (k, v) in pairs {
                    let k = self.eval(k, scope)?;
                    let v = self.eval(v, scope)?;
                    map.insert(k, v);
                }
                Ok(Value::Map(std::sync::Arc::new(map)))
            }
            CExpr::Slice {
                value,
                lower,
                upper,
                step,
            } => {
                let v = self.eval(value, scope)?;
                let lower = self.eval_opt(lower.as_deref(), scope)?;
                let upper = self.eval_opt(upper.as_deref(), scope)?;
                let step = self.eval_opt(step.as_deref(), scope)?;
                ops::slice(&v, &lower, &upper, &step)
            }
            CExpr::Method(receiver, method, args) => {
                let receiver = self.eval(receiver, scope)?;
                let base = self.args.len();
                let result = match self.push_args(args, scope) {
                    Ok(()) => methods::call(*method, receiver, &self.args[base..]),
                    Err(e) => Err(e),
                };
                self.args.truncate(base);
                result
            }
            CExpr::ListComp { elt, generators } => {
                let mut out = Vec::new();
                self.comprehension(elt, generators, scope, &mut out)?;
                Ok(Value::list(out))
            }
            // `eval` sends only the expressions above here.
            _ => Err(type_error(
                "dtc bug: an expression was sent to the wrong evaluator",
            )),
        }
    }

    /// A `When`: true only if the expression evaluates without error to a truthy value.
    pub fn eval_bool<S: Scope + ?Sized>(&mut self, expr: &CExpr, scope: &S) -> bool {
        // `a and b` is truthy exactly when both are, and fails when the first operand that is
        // evaluated fails; either way the `When` is false.
        if let CExpr::And(items) = expr {
            return items.iter().all(|item| self.eval_bool(item, scope));
        }
        // The usual `When`, `source.x == 'literal'`, compared in place: `==` on a loaded value
        // and a constant cannot fail.
        if let Some((slot, equal, c)) = load_compared_to_const(expr) {
            let is_equal = match scope.load_ref(slot) {
                Some(v) => v == c,
                None => scope.load(slot) == *c,
            };
            return is_equal == equal;
        }
        // `source.x in ['a', 'b']`: membership tested in place, as `compare_chain` would.
        if let CExpr::Compare(first, rest) = expr
            && let (CExpr::Load(slot), [(op @ (CmpOp::In | CmpOp::NotIn), right)]) =
                (&**first, rest.as_slice())
            && let CExpr::List(items) | CExpr::Tuple(items) = right
            && let Some(v) = scope.load_ref(*slot)
            && let Some(found) = const_membership(items, v)
        {
            return found == (*op == CmpOp::In);
        }
        self.eval_cow(expr, scope).is_ok_and(|v| truthy(&v))
    }

    /// Like [`Evaluator::eval`], but constants and values the scope holds are borrowed, not
    /// cloned: operands that are only read (compared, added) cost no allocation or refcount.
    fn eval_cow<'a, S: Scope + ?Sized>(
        &mut self,
        expr: &'a CExpr,
        scope: &'a S,
    ) -> Result<Cow<'a, Value>, EvalError> {
        match expr {
            CExpr::Const(v) => Ok(Cow::Borrowed(v)),
            CExpr::Load(slot) => Ok(match scope.load_ref(*slot) {
                Some(v) => Cow::Borrowed(v),
                None => Cow::Owned(scope.load(*slot)),
            }),
            other => self.eval(other, scope).map(Cow::Owned),
        }
    }

    fn eval_all<S: Scope + ?Sized>(
        &mut self,
        items: &[CExpr],
        scope: &S,
    ) -> Result<Vec<Value>, EvalError> {
        items.iter().map(|e| self.eval(e, scope)).collect()
    }

    fn eval_opt<S: Scope + ?Sized>(
        &mut self,
        expr: Option<&CExpr>,
        scope: &S,
    ) -> Result<Value, EvalError> {
        expr.map_or(Ok(Value::Null), |e| self.eval(e, scope))
    }

    fn push_args<S: Scope + ?Sized>(&mut self, args: &[CExpr], scope: &S) -> Result<(), EvalError> {
        for arg in args {
            let v = self.eval(arg, scope)?;
            self.args.push(v);
        }
        Ok(())
    }

    /// `a < b < c`: every operand evaluated at most once, stopping at the first false link.
    fn compare_chain<'a, S: Scope + ?Sized>(
        &mut self,
        first: &'a CExpr,
        rest: &'a [(CmpOp, CExpr)],
        scope: &'a S,
    ) -> Result<Value, EvalError> {
        let mut left = self.eval_cow(first, scope)?;
        for (link, (op, right)) in rest.iter().enumerate() {
            // `x in ['a', 'b']` with a literal of constants: test membership without building
            // the list (`==` per item, exactly what `contains` does on the built list).
            if let (CmpOp::In | CmpOp::NotIn, CExpr::List(items) | CExpr::Tuple(items)) =
                (op, right)
                && let Some(found) = const_membership(items, &left)
            {
                if found != (*op == CmpOp::In) {
                    return Ok(Value::Bool(false));
                }
                if link + 1 < rest.len() {
                    left = Cow::Owned(self.eval(right, scope)?);
                }
                continue;
            }
            let right = self.eval_cow(right, scope)?;
            if !ops::compare(*op, &left, &right)? {
                return Ok(Value::Bool(false));
            }
            left = right;
        }
        Ok(Value::Bool(true))
    }

    fn comprehension<S: Scope + ?Sized>(
        &mut self,
        elt: &CExpr,
        generators: &[CGenerator],
        scope: &S,
        out: &mut Vec<Value>,
    ) -> Result<(), EvalError> {
        let Some((generator, inner)) = generators.split_first() else {
            if out.len() >= MAX_ELEMENTS {
                return Err(too_large());
            }
            let v = self.eval(elt, scope)?;
            out.push(v);
            return Ok(());
        };
        let iterable = self.eval(&generator.iter, scope)?;
        let first = usize::from(generator.first_local);
        let targets = usize::from(generator.targets);
        if self.locals.len() < first + targets {
            self.locals.resize(first + targets, Value::Null);
        }
        'items: for item in ops::iterate(&iterable)? {
            self.bind(first, targets, item)?;
            for cond in &generator.ifs {
                let c = self.eval(cond, scope)?;
                if !truthy(&c) {
                    continue 'items;
                }
            }
            self.comprehension(elt, inner, scope, out)?;
        }
        Ok(())
    }

    /// Binds one comprehension item, unpacking it when the generator has several targets.
    fn bind(&mut self, first: usize, targets: usize, item: Value) -> Result<(), EvalError> {
        if targets == 1 {
            self.locals[first] = item;
            return Ok(());
        }
        let parts = match &item {
            Value::List(items) | Value::Tuple(items) => items.clone(),
            other => {
                return Err(type_error(format!(
                    "cannot unpack non-sequence {}",
                    other.type_name()
                )));
            }
        };
        if parts.len() != targets {
            return Err(value_error(format!(
                "cannot unpack {} values into {targets} names",
                parts.len()
            )));
        }
        self.locals[first..first + targets].clone_from_slice(&parts);
        Ok(())
    }
}

/// `load == const` as (slot, true, const) and `load != const` as (slot, false, const).
fn load_compared_to_const(expr: &CExpr) -> Option<(Slot, bool, &Value)> {
    let CExpr::Compare(first, rest) = expr else {
        return None;
    };
    match (&**first, rest.as_slice()) {
        (CExpr::Load(slot), [(op @ (CmpOp::Eq | CmpOp::NotEq), CExpr::Const(c))]) => {
            Some((*slot, *op == CmpOp::Eq, c))
        }
        _ => None,
    }
}

/// Whether `item` equals one of `items` if they are all constants; `None` otherwise.
fn const_membership(items: &[CExpr], item: &Value) -> Option<bool> {
    let mut found = false;
    for e in items {
        match e {
            CExpr::Const(v) => found |= v == item,
            _ => return None,
        }
    }
    Some(found)
}

pub(crate) fn too_large() -> EvalError {
    EvalError::new(
        EvalErrorKind::LimitExceeded,
        format!("result would exceed {MAX_ELEMENTS} elements"),
    )
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use dtc_lang::ast::{BinOp, CmpOp};

    use super::testkit::*;
    use super::*;

    struct CountingScope {
        loads: Cell<u32>,
        value: Value,
    }

    impl Scope for CountingScope {
        fn load(&self, _slot: Slot) -> Value {
            self.loads.set(self.loads.get() + 1);
            self.value.clone()
        }
    }

    /// Slot `SourcePath(i)` holds `values[i]`, borrowed; every other slot is null.
    struct SourceScope(Vec<Value>);

    impl Scope for SourceScope {
        fn load(&self, slot: Slot) -> Value {
            self.load_ref(slot).cloned().unwrap_or(Value::Null)
        }

        fn load_ref(&self, slot: Slot) -> Option<&Value> {
            match slot {
                Slot::SourcePath(i) => self.0.get(i as usize),
                _ => None,
            }
        }
    }

    #[test]
    fn when_shortcuts_agree_with_truthiness_of_the_value() {
        let path = |i| CExpr::Load(Slot::SourcePath(i));
        let scope = SourceScope(vec![Value::str("game_end"), Value::Int(1), Value::Null]);
        let failing = bin(BinOp::Div, int(1), int(0));
        let cases = [
            cmp(CmpOp::Eq, path(0), s("game_end")),
            cmp(CmpOp::Eq, path(0), s("game_start")),
            cmp(CmpOp::NotEq, path(0), s("game_end")),
            cmp(CmpOp::NotEq, path(2), null()),
            cmp(CmpOp::Eq, path(1), c(Value::Float(1.0))),
            cmp(CmpOp::Eq, path(1), tru()),
            cmp(CmpOp::Eq, CExpr::Load(Slot::Time), null()),
            CExpr::And(vec![cmp(CmpOp::Eq, path(0), s("game_end")), path(1)]),
            CExpr::And(vec![path(2), failing.clone()]),
            CExpr::And(vec![path(1), failing.clone()]),
            CExpr::And(vec![failing.clone(), path(1)]),
            CExpr::And(vec![path(1), path(0), failing.clone()]),
            CExpr::Or(vec![failing, path(1)]),
            cmp(CmpOp::In, path(0), CExpr::List(vec![s("a"), s("game_end")])),
            cmp(CmpOp::In, path(0), CExpr::Tuple(vec![s("a")])),
            cmp(CmpOp::NotIn, path(0), CExpr::List(vec![s("game_end")])),
            cmp(CmpOp::NotIn, path(2), CExpr::List(vec![s("game_end")])),
            cmp(CmpOp::In, path(1), CExpr::List(vec![c(Value::Float(1.0))])),
            cmp(CmpOp::In, path(1), CExpr::List(vec![path(1)])),
            cmp(CmpOp::In, path(0), path(0)),
        ];
        let mut ev = Evaluator::new(Dialect::Native);
        for e in &cases {
            let expected = ev.eval(e, &scope).is_ok_and(|v| truthy(&v));
            assert_eq!(ev.eval_bool(e, &scope), expected, "{e:?}");
        }
    }

    #[test]
    fn chained_comparison_evaluates_middle_once() {
        let scope = CountingScope {
            loads: Cell::new(0),
            value: Value::Int(3),
        };
        let e = CExpr::Compare(
            Box::new(int(0)),
            vec![(CmpOp::Lt, CExpr::Load(Slot::Time)), (CmpOp::LtE, int(5))],
        );
        assert_eq!(
            Evaluator::new(Dialect::Native).eval(&e, &scope),
            Ok(Value::Bool(true))
        );
        assert_eq!(scope.loads.get(), 1);
    }

    /// Hands out its value by reference only, counting copies.
    struct BorrowingScope {
        copies: Cell<u32>,
        value: Value,
    }

    impl BorrowingScope {
        fn of(value: Value) -> Self {
            BorrowingScope {
                copies: Cell::new(0),
                value,
            }
        }
    }

    impl Scope for BorrowingScope {
        fn load(&self, _slot: Slot) -> Value {
            self.copies.set(self.copies.get() + 1);
            self.value.clone()
        }

        fn load_ref(&self, _slot: Slot) -> Option<&Value> {
            Some(&self.value)
        }
    }

    #[test]
    fn compared_and_added_operands_are_borrowed_not_copied() {
        let scope = BorrowingScope::of(Value::str("game_end"));
        let load = || CExpr::Load(Slot::SourcePath(0));
        let mut ev = Evaluator::new(Dialect::Native);
        let eq = CExpr::Compare(Box::new(load()), vec![(CmpOp::Eq, s("game_end"))]);
        assert_eq!(ev.eval(&eq, &scope), Ok(Value::Bool(true)));
        let concat = CExpr::Binary(Box::new(load()), vec![(BinOp::Add, s("!"))]);
        assert_eq!(ev.eval(&concat, &scope), Ok(Value::str("game_end!")));
        assert!(ev.eval_bool(&load(), &scope));
        assert_eq!(scope.copies.get(), 0);
        assert_eq!(ev.eval(&load(), &scope), Ok(Value::str("game_end")));
        assert_eq!(scope.copies.get(), 1);
    }

    #[test]
    fn a_call_on_a_loaded_value_borrows_it() {
        let scope = BorrowingScope::of(Value::str(" 1.5 "));
        let load = || CExpr::Load(Slot::SourcePath(0));
        let mut ev = Evaluator::new(Dialect::Native);
        let float = CExpr::Call(crate::plan::Builtin::Float, vec![load()]);
        assert_eq!(ev.eval(&float, &scope), Ok(Value::Float(1.5)));
        let len = CExpr::Call(crate::plan::Builtin::Len, vec![load()]);
        assert_eq!(ev.eval(&len, &scope), Ok(Value::Int(5)));
        assert_eq!(scope.copies.get(), 0);
        // Without a borrowed value the call evaluates its argument as before.
        let counting = CountingScope {
            loads: Cell::new(0),
            value: Value::str("abc"),
        };
        assert_eq!(ev.eval(&len, &counting), Ok(Value::Int(3)));
        assert_eq!(counting.loads.get(), 1);
    }

    #[test]
    fn membership_in_a_constant_list_matches_the_built_list() {
        let scope = CountingScope {
            loads: Cell::new(0),
            value: Value::Int(2),
        };
        let mut ev = Evaluator::new(Dialect::Native);
        let x = || CExpr::Load(Slot::Time);
        let consts = || CExpr::List(vec![s("a"), flt(2.0)]);
        let computed = || CExpr::List(vec![s("a"), bin(BinOp::Add, int(1), int(1))]);
        for (op, want) in [(CmpOp::In, true), (CmpOp::NotIn, false)] {
            for list in [consts(), computed()] {
                let e = CExpr::Compare(Box::new(x()), vec![(op, list)]);
                assert_eq!(ev.eval(&e, &scope), Ok(Value::Bool(want)), "{op:?}");
            }
        }
        let missing = CExpr::Compare(Box::new(s("b")), vec![(CmpOp::In, consts())]);
        assert_eq!(ev.eval(&missing, &scope), Ok(Value::Bool(false)));
        // A further link compares against the list itself.
        let chained = CExpr::Compare(
            Box::new(x()),
            vec![(CmpOp::In, consts()), (CmpOp::Eq, consts())],
        );
        assert_eq!(ev.eval(&chained, &scope), Ok(Value::Bool(true)));
    }

    #[test]
    fn chained_comparison_short_circuits() {
        let scope = CountingScope {
            loads: Cell::new(0),
            value: Value::Int(3),
        };
        let e = CExpr::Compare(
            Box::new(int(5)),
            vec![(CmpOp::Lt, int(1)), (CmpOp::Lt, CExpr::Load(Slot::Time))],
        );
        assert_eq!(
            Evaluator::new(Dialect::Native).eval(&e, &scope),
            Ok(Value::Bool(false))
        );
        assert_eq!(scope.loads.get(), 0);
    }

    #[test]
    fn and_or_return_operands() {
        assert_eq!(ev(&CExpr::And(vec![int(0), s("x")])), Ok(Value::Int(0)));
        assert_eq!(ev(&CExpr::And(vec![int(2), s("x")])), Ok(Value::str("x")));
        assert_eq!(ev(&CExpr::Or(vec![s(""), int(7)])), Ok(Value::Int(7)));
        assert_eq!(ev(&CExpr::Or(vec![s("a"), div0()])), Ok(Value::str("a")));
        assert_eq!(ev(&CExpr::Not(Box::new(null()))), Ok(Value::Bool(true)));
    }

    fn div0() -> CExpr {
        bin(BinOp::Div, int(1), int(0))
    }

    #[test]
    fn conditional_evaluates_one_branch() {
        let e = CExpr::IfElse {
            cond: Box::new(tru()),
            body: Box::new(int(1)),
            orelse: Box::new(div0()),
        };
        assert_eq!(ev(&e), Ok(Value::Int(1)));
    }

    #[test]
    fn when_is_false_on_error_or_falsy() {
        let mut ev = Evaluator::new(Dialect::Native);
        let scope = NoScope;
        assert!(!ev.eval_bool(&div0(), &scope));
        assert!(!ev.eval_bool(&s(""), &scope));
        assert!(ev.eval_bool(&s("x"), &scope));
        let missing_eq = cmp(CmpOp::Eq, null(), s("y"));
        assert!(!ev.eval_bool(&missing_eq, &scope));
    }

    #[test]
    fn comprehension_with_two_generators_and_ifs() {
        // [x * y for x in [1, 2, 3] if x != 2 for y in [10, 20]]
        let e = CExpr::ListComp {
            elt: Box::new(bin(BinOp::Mul, CExpr::Local(0), CExpr::Local(1))),
            generators: vec![
                CGenerator {
                    first_local: 0,
                    targets: 1,
                    iter: list(vec![int(1), int(2), int(3)]),
                    ifs: vec![cmp(CmpOp::NotEq, CExpr::Local(0), int(2))],
                },
                CGenerator {
                    first_local: 1,
                    targets: 1,
                    iter: list(vec![int(10), int(20)]),
                    ifs: vec![],
                },
            ],
        };
        assert_eq!(ev(&e), Ok(ints(&[10, 20, 30, 60])));
    }

    #[test]
    fn comprehension_unpacks_tuples() {
        // [k + str(v) for k, v in {'a': 1, 'b': 2}.items()]
        let items = CExpr::Method(
            Box::new(CExpr::Dict(vec![(s("a"), int(1)), (s("b"), int(2))])),
            crate::plan::Method::Items,
            vec![],
        );
        let e = CExpr::ListComp {
            elt: Box::new(bin(
                BinOp::Add,
                CExpr::Local(0),
                call(crate::plan::Builtin::Str, vec![CExpr::Local(1)]),
            )),
            generators: vec![CGenerator {
                first_local: 0,
                targets: 2,
                iter: items,
                ifs: vec![],
            }],
        };
        assert_eq!(ev(&e), Ok(strs(&["a1", "b2"])));
        let bad = CExpr::ListComp {
            elt: Box::new(CExpr::Local(0)),
            generators: vec![CGenerator {
                first_local: 0,
                targets: 2,
                iter: list(vec![int(1)]),
                ifs: vec![],
            }],
        };
        assert_eq!(err_kind(&bad), EvalErrorKind::TypeError);
    }

    #[test]
    fn collection_literals() {
        let e = CExpr::Set(vec![int(1), CExpr::Const(Value::Float(1.0)), int(2)]);
        assert_eq!(ev(&e).map(|v| py_repr(&v)), Ok("{1, 2}".to_owned()));
        let e = CExpr::Tuple(vec![int(1), s("a")]);
        assert_eq!(ev(&e).map(|v| py_repr(&v)), Ok("(1, 'a')".to_owned()));
        let e = CExpr::Dict(vec![(s("a"), int(1))]);
        assert_eq!(ev(&e).map(|v| py_repr(&v)), Ok("{'a': 1}".to_owned()));
    }

    #[test]
    fn errors_display_kind_and_message() {
        let e = EvalError::new(EvalErrorKind::KeyError, "'x'");
        assert_eq!(e.to_string(), "KeyError: 'x'");
    }

    #[test]
    fn truthiness() {
        assert!(!truthy(&Value::Null));
        assert!(!truthy(&Value::Float(0.0)));
        assert!(truthy(&Value::str("no")));
        assert!(!truthy(&Value::list(vec![])));
        assert!(truthy(&Value::Int(-1)));
    }
}
