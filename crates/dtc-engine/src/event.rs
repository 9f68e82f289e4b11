//! Events after projection: what the operators consume.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dtc_plan::eval::{Evaluator, Scope};
use dtc_plan::plan::{Slot, StreamingPlan};
use dtc_plan::value::{Str, Value};

pub use dtc_io::RejectReason;

/// One raw event reduced to the source paths the plan reads, with its identity and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time: DateTime<Utc>,
    /// One value per `StreamingPlan::source_paths` entry.
    pub values: Vec<Value>,
    /// The whole event, only when the plan uses bare `source`.
    pub whole: Option<Value>,
}

/// Why an event was not applied. Rejections go to the dead-letter output; `Filtered` events
/// are only counted.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    Accepted {
        identity: Str,
        event: Event,
    },
    Filtered,
    Rejected {
        reason: RejectReason,
        detail: String,
    },
}

/// Evaluates `Identity`, `Time` and the transform-level `When` of a projected event.
pub struct Admitter {
    plan: Arc<StreamingPlan>,
    evaluator: Evaluator,
    /// Source paths no aggregate reads (e.g. the raw time string): dropped from accepted
    /// events so they are not carried, sorted and spilled for nothing.
    admission_only: Vec<usize>,
}

struct RawScope<'a> {
    values: &'a [Value],
    whole: Option<&'a Value>,
    identity: Option<&'a Str>,
    time: Option<DateTime<Utc>>,
}

impl Scope for RawScope<'_> {
    fn load(&self, slot: Slot) -> Value {
        match slot {
            Slot::SourcePath(i) => self.values.get(i as usize).cloned().unwrap_or(Value::Null),
            Slot::WholeSource => self.whole.cloned().unwrap_or(Value::Null),
            Slot::Identity => self
                .identity
                .map(|i| Value::Str(i.clone()))
                .unwrap_or(Value::Null),
            Slot::Time => self.time.map(Value::DateTime).unwrap_or(Value::Null),
            Slot::Field { .. }
            | Slot::Anchor { .. }
            | Slot::Stream { .. }
            | Slot::WindowSource { .. } => Value::Null,
        }
    }

    fn load_ref(&self, slot: Slot) -> Option<&Value> {
        match slot {
            Slot::SourcePath(i) => self.values.get(i as usize),
            Slot::WholeSource => self.whole,
            _ => None,
        }
    }
}

impl Admitter {
    pub fn new(plan: Arc<StreamingPlan>) -> Self {
        let evaluator = Evaluator::new(plan.dialect);
        let admission_only = plan
            .paths_read_by_aggregates()
            .iter()
            .enumerate()
            .filter(|(_, read)| !**read)
            .map(|(i, _)| i)
            .collect();
        Admitter {
            plan,
            evaluator,
            admission_only,
        }
    }

    pub fn admit(&mut self, mut values: Vec<Value>, whole: Option<Value>) -> Admission {
        let mut scope = RawScope {
            values: &values,
            whole: whole.as_ref(),
            identity: None,
            time: None,
        };
        let identity: Str = match self.evaluator.eval(&self.plan.identity, &scope) {
            Ok(Value::Null) => return reject(RejectReason::MissingIdentity, "identity is null"),
            Ok(Value::Str(s)) if s.is_empty() => {
                return reject(RejectReason::EmptyIdentity, "identity is an empty string");
            }
            Ok(Value::Str(s)) => s,
            Ok(Value::Int(i)) => Str::from(i.to_string()),
            Ok(other) => {
                return reject(
                    RejectReason::BadIdentity,
                    format!("identity is a {}, not a string", other.type_name()),
                );
            }
            Err(e) => return reject(RejectReason::BadIdentity, e.to_string()),
        };
        scope.identity = Some(&identity);
        let time = match self.evaluator.eval(&self.plan.time, &scope) {
            Ok(Value::DateTime(t)) => t,
            Ok(Value::Null) => return reject(RejectReason::MissingTime, "time is null"),
            Ok(other) => {
                return reject(
                    RejectReason::BadTime,
                    format!("time is a {}, not a datetime", other.type_name()),
                );
            }
            Err(e) => {
                let reason = if e.kind == dtc_plan::eval::EvalErrorKind::NullOperand {
                    RejectReason::MissingTime
                } else {
                    RejectReason::BadTime
                };
                return reject(reason, e.to_string());
            }
        };
        scope.time = Some(time);
        if let Some(when) = &self.plan.when
            && !self.evaluator.eval_bool(when, &scope)
        {
            return Admission::Filtered;
        }
        for &i in &self.admission_only {
            if let Some(v) = values.get_mut(i) {
                v.clear();
            }
        }
        Admission::Accepted {
            identity,
            event: Event {
                time,
                values,
                whole,
            },
        }
    }
}

fn reject(reason: RejectReason, detail: impl Into<String>) -> Admission {
    Admission::Rejected {
        reason,
        detail: detail.into(),
    }
}
