//! Records that leave the engine.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::value::Value;

/// One training row of a window spec: the values follow `WindowPlan::field_names`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub identity: Arc<str>,
    /// The anchor block's `_start_time`.
    pub anchor_time: DateTime<Utc>,
    pub values: Vec<Value>,
}
