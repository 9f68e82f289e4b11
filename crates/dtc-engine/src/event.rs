//! Events after projection: what the operators consume.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dtc_plan::eval::{EvalError, EvalErrorKind, Evaluator, Scope, parse_time};
use dtc_plan::plan::{Builtin, CExpr, Slot, StreamingPlan};
use dtc_plan::value::{Str, Value};

use dtc_io::RawValue;
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
    /// `Identity: source.<path>`: the path's value, read in place rather than copied out by
    /// the evaluator.
    identity_path: Option<usize>,
    /// `Time: parse_time(source.<path>)` (or Blurr's `parser.parse`): a string at the path is
    /// parsed directly, without the evaluator's dispatch and call; any other value takes the
    /// evaluator's road, so the results and errors are the same.
    parsed_time_path: Option<usize>,
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
        let identity_path = match plan.identity {
            CExpr::Load(Slot::SourcePath(path)) => Some(path as usize),
            _ => None,
        };
        let parsed_time_path = match &plan.time {
            CExpr::Call(Builtin::ParseTime, args) => match args.as_slice() {
                [CExpr::Load(Slot::SourcePath(path))] => Some(*path as usize),
                _ => None,
            },
            _ => None,
        };
        Admitter {
            plan,
            evaluator,
            admission_only,
            identity_path,
            parsed_time_path,
        }
    }

    /// Whether [`Admitter::raw_identity`] and [`Admitter::raw_time`] can admit events: the identity is read from a source
    /// path and the time parsed from one, with no transform-level `When` to evaluate and no
    /// whole event to carry.
    pub fn takes_raw(&self) -> bool {
        self.identity_path.is_some()
            && self.parsed_time_path.is_some()
            && self.plan.when.is_none()
            && !self.plan.needs_whole_source
    }

    /// The identity of an event given by the scalars of its JSON `line` (see
    /// [`dtc_io::RawValue`]), when it is plainly acceptable: a non-empty string. `None` for
    /// anything else, which [`Admitter::admit`] decides and words, and whenever
    /// [`Admitter::takes_raw`] is false.
    pub fn raw_identity<'l>(&self, line: &'l [u8], raw: &[RawValue]) -> Option<&'l str> {
        if !self.takes_raw() {
            return None;
        }
        raw.get(self.identity_path?)?
            .as_str(line)
            .filter(|identity| !identity.is_empty())
    }

    /// The time of such an event, when it is a string that parses; `None` as for
    /// [`Admitter::raw_identity`].
    pub fn raw_time(&self, line: &[u8], raw: &[RawValue]) -> Option<DateTime<Utc>> {
        if !self.takes_raw() {
            return None;
        }
        let text = raw.get(self.parsed_time_path?)?.as_str(line)?;
        parse_time(text).ok()
    }

    /// Per source path, whether accepted events leave it out (see `admission_only`).
    pub fn dropped_paths(&self) -> Vec<bool> {
        let mut dropped = vec![false; self.plan.source_paths.len()];
        for &i in &self.admission_only {
            if let Some(d) = dropped.get_mut(i) {
                *d = true;
            }
        }
        dropped
    }

    pub fn admit(&mut self, mut values: Vec<Value>, whole: Option<Value>) -> Admission {
        let mut scope = RawScope {
            values: &values,
            whole: whole.as_ref(),
            identity: None,
            time: None,
        };
        let evaluated;
        let identity = match self.identity_path {
            Some(path) => values.get(path).unwrap_or(&Value::Null),
            None => match self.evaluator.eval(&self.plan.identity, &scope) {
                Ok(value) => {
                    evaluated = value;
                    &evaluated
                }
                Err(e) => return reject(RejectReason::BadIdentity, e.to_string()),
            },
        };
        let identity: Str = match identity {
            Value::Null => return reject(RejectReason::MissingIdentity, "identity is null"),
            Value::Str(s) if s.is_empty() => {
                return reject(RejectReason::EmptyIdentity, "identity is an empty string");
            }
            Value::Str(s) => s.clone(),
            Value::Int(i) => Str::from(i.to_string()),
            other => {
                return reject(
                    RejectReason::BadIdentity,
                    format!("identity is a {}, not a string", other.type_name()),
                );
            }
        };
        scope.identity = Some(&identity);
        // The parse's own result, not wrapped in a value only to be taken out again.
        let parsed = self
            .parsed_time_path
            .and_then(|path| match values.get(path) {
                Some(Value::Str(text)) => Some(parse_time(text)),
                _ => None,
            });
        let time = match parsed {
            Some(Ok(time)) => time,
            Some(Err(e)) => return time_error(e),
            None => match self.evaluator.eval(&self.plan.time, &scope) {
                Ok(Value::DateTime(t)) => t,
                Ok(Value::Null) => return reject(RejectReason::MissingTime, "time is null"),
                Ok(other) => {
                    return reject(
                        RejectReason::BadTime,
                        format!("time is a {}, not a datetime", other.type_name()),
                    );
                }
                Err(e) => return time_error(e),
            },
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

/// A `Time` that could not be evaluated: missing when it read a null, else bad.
fn time_error(e: EvalError) -> Admission {
    let reason = if e.kind == EvalErrorKind::NullOperand {
        RejectReason::MissingTime
    } else {
        RejectReason::BadTime
    };
    reject(reason, e.to_string())
}

fn reject(reason: RejectReason, detail: impl Into<String>) -> Admission {
    Admission::Rejected {
        reason,
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::streaming_plan;

    fn plan(identity: &str, time: &str) -> Arc<StreamingPlan> {
        let text = format!(
            "
Type: Streaming
Version: '2026-11-01'
Name: admit
Identity: {identity}
Time: {time}
Aggregates:
  - Type: Identity
    Name: seen
    Fields:
      - Name: count
        Type: integer
        Value: seen.count + 1
"
        );
        streaming_plan(&text)
    }

    /// The admission of an event with `user` and `ts` set to the given values.
    fn admit(admitter: &mut Admitter, user: &Value, ts: &Value) -> Admission {
        let values = admitter
            .plan
            .source_paths
            .iter()
            .map(|path| match path.0.first().map(String::as_str) {
                Some("user") => user.clone(),
                Some("ts") => ts.clone(),
                _ => Value::Null,
            })
            .collect();
        admitter.admit(values, None)
    }

    #[test]
    fn identity_and_time_read_in_place_admit_as_the_evaluator_does() {
        let mut in_place = Admitter::new(plan("source.user", "parse_time(source.ts)"));
        assert!(in_place.identity_path.is_some() && in_place.parsed_time_path.is_some());
        // The same expressions in a shape the admitter leaves to the evaluator.
        let mut evaluated = Admitter::new(plan(
            "source.user if True else None",
            "parse_time(source.ts if True else None)",
        ));
        assert!(evaluated.identity_path.is_none() && evaluated.parsed_time_path.is_none());

        let users = [
            Value::str("u1"),
            Value::str(""),
            Value::Int(42),
            Value::Null,
            Value::Bool(true),
            Value::list(vec![Value::str("u1")]),
        ];
        let times = [
            Value::str("2024-05-01T10:00:00"),
            Value::str("2024-05-01 10:00:00.250Z"),
            Value::str("yesterday"),
            Value::Int(12),
            Value::Null,
        ];
        let mut accepted = 0;
        for user in &users {
            for ts in &times {
                let expected = admit(&mut evaluated, user, ts);
                accepted += usize::from(matches!(expected, Admission::Accepted { .. }));
                assert_eq!(admit(&mut in_place, user, ts), expected, "{user:?} {ts:?}");
            }
        }
        // Both string users and the integer one, with either good time.
        assert_eq!(accepted, 4);
    }
}
