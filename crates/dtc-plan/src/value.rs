//! The runtime value model (contract sections 4.4–4.5).
//!
//! Containers are behind `Arc` so that reading a field, building a window's `source.<field>`
//! list or handing a record to a sink is a reference-count bump, not a deep copy.
//! Equality and hashing follow Python: `1 == 1.0 == True` and they hash alike, so maps and sets
//! keyed by numbers behave like Blurr's Python dicts.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use indexmap::{IndexMap, IndexSet};

#[derive(Debug, Clone, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
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
        Value::Str(Arc::from(s))
    }

    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
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
            (List(a), List(b)) | (Tuple(a), Tuple(b)) => a == b,
            (Set(a), Set(b)) => a.len() == b.len() && a.iter().all(|v| b.contains(v)),
            (Map(a), Map(b)) => {
                a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| v == w))
            }
            _ => match (self.as_number(), other.as_number()) {
                (Some(Number::Int(a)), Some(Number::Int(b))) => a == b,
                (Some(a), Some(b)) => a.as_f64() == b.as_f64(),
                _ => false,
            },
        }
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
}
