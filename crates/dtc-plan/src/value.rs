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
