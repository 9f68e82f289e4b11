//! One window spec, served: which of its columns are features, what a request's anchor is, and
//! the row computed with the training code ([`WindowOperator::row_anchored`]).
//!
//! The anchor of a live request (docs/serving.md):
//! - `at` alone: a virtual anchor starting at `at`; blocks starting strictly before `at` are
//!   in the windows, as in a training row anchored at `at`; `anchor.*` reads null.
//! - a named block (its dimension values) that is stored: the training row anchored on that
//!   block, whatever `at` says: its start is the anchor's start, its fields are `anchor.*`.
//! - a named block not stored yet: a block starting at `at` (default now) with those
//!   dimensions and every field at its default, as the block an event at `at` would start.
//! - `context`: fields of the anchor block the request supplies (the candidate offer), over
//!   the block's own; with no named block they make a block starting at `at`, as above.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use dtc_engine::batch::view_of_stored;
use dtc_engine::window::WindowOperator;
use dtc_io::format::{JsonStyle, iso_datetime, write_json, write_str};
use dtc_plan::eval::convert;
use dtc_plan::plan::{
    ColumnRole, Dialect, FieldType, Slot, StreamAggregateKind, WindowAggregateKind, WindowPlan,
};
use dtc_plan::value::{Str, Value};
use dtc_store::{RecordKind, StoredRecord};

use crate::error::ApiError;

/// A window spec the server answers for.
pub struct WindowService {
    plan: Arc<WindowPlan>,
    /// The served columns of a row: indices into its values, and `"name":` ready to write.
    features: Vec<(usize, String)>,
    anchor: AnchorAggregate,
    /// Per streaming aggregate: the `_end_time` column of its blocks, for `as_of`.
    end_columns: Vec<Option<usize>>,
    /// Operators are reused: building one per request would allocate its defaults and
    /// evaluator each time. One per concurrent request at most.
    operators: Mutex<Vec<WindowOperator>>,
}

/// The aggregate whose blocks are anchors, as a request names or supplies them.
struct AnchorAggregate {
    name: String,
    dialect: Dialect,
    defaults: Vec<Value>,
    /// `(name, column, type)` of each dimension, in key order.
    dimensions: Vec<(String, usize, FieldType)>,
    /// `(name, column, type)` of each declared field.
    fields: Vec<(String, usize, FieldType)>,
    identity_column: Option<usize>,
    start_column: Option<usize>,
    end_column: Option<usize>,
    /// Activity blocks are keyed by an internal id, so a request cannot name one.
    activity: bool,
}

/// What one request asks of a window, checked against its specs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveQuery {
    /// `None`: the time the request is answered.
    pub at: Option<DateTime<Utc>>,
    /// The named block's dimension values, converted to their declared types, in key order.
    pub block: Option<Vec<Value>>,
    /// `(column, value)` of the anchor fields the request supplies.
    pub context: Vec<(usize, Value)>,
}

/// One computed row, rendered.
pub struct Served {
    /// The anchor's start.
    pub at: DateTime<Utc>,
    /// The latest `_end_time` of the identity's blocks: its latest event applied.
    pub as_of: Option<DateTime<Utc>>,
    /// The `features` object.
    pub features: String,
    /// `(field, count)` of the fields whose expression failed (served as null).
    pub errors: Vec<(String, u64)>,
}

impl WindowService {
    pub fn new(plan: Arc<WindowPlan>) -> WindowService {
        let labels = label_fields(&plan);
        let features = (0..plan.field_names.len())
            .filter(|i| !labels.contains(i))
            .map(|i| {
                let mut key = String::new();
                write_str(&plan.field_names[i], JsonStyle::Compact, &mut key);
                key.push(':');
                (i, key)
            })
            .collect();
        let streaming = &plan.streaming;
        let column_of = |layout: &dtc_plan::plan::AggregateLayout, role: ColumnRole| {
            layout.columns.iter().position(|c| c.role == role)
        };
        let anchor_def = &streaming.aggregates[plan.anchor_aggregate as usize];
        let layout = &anchor_def.layout;
        let named = |role: ColumnRole| {
            layout
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.role == role)
                .map(|(i, c)| (c.name.clone(), i, c.ty))
                .collect::<Vec<_>>()
        };
        let anchor = AnchorAggregate {
            name: anchor_def.name.clone(),
            dialect: streaming.dialect,
            defaults: layout.defaults(),
            dimensions: named(ColumnRole::Dimension),
            fields: named(ColumnRole::Field),
            identity_column: column_of(layout, ColumnRole::Identity),
            start_column: column_of(layout, ColumnRole::StartTime),
            end_column: column_of(layout, ColumnRole::EndTime),
            activity: matches!(anchor_def.kind, StreamAggregateKind::Activity { .. }),
        };
        let end_columns = streaming
            .aggregates
            .iter()
            .map(|a| column_of(&a.layout, ColumnRole::EndTime))
            .collect();
        WindowService {
            plan,
            features,
            anchor,
            end_columns,
            operators: Mutex::new(Vec::new()),
        }
    }

    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// The served feature names, in row order.
    pub fn feature_names(&self) -> impl Iterator<Item = &str> {
        self.features
            .iter()
            .map(|(i, _)| self.plan.field_names[*i].as_str())
    }

    /// The names a request may use to name the anchor block.
    pub fn dimension_names(&self) -> impl Iterator<Item = &str> {
        self.anchor.dimensions.iter().map(|(n, _, _)| n.as_str())
    }

    /// Checks a request's parts: `block` as `(dimension, value)` pairs, `context` as
    /// `(field, value)` pairs, values as the request gave them (converted here to the declared
    /// types, as the streaming engine converts them).
    pub fn query(
        &self,
        at: Option<DateTime<Utc>>,
        block: Option<Vec<(String, Value)>>,
        context: Vec<(String, Value)>,
    ) -> Result<LiveQuery, ApiError> {
        let a = &self.anchor;
        let block = match block {
            None => None,
            Some(_) if a.activity => {
                return Err(ApiError::bad_request(
                    "bad_block",
                    format!(
                        "the anchors of `{}` are blocks of Activity aggregate `{}`, which have no \
                         dimensions to name them by: give `at` instead",
                        self.name(),
                        a.name
                    ),
                ));
            }
            Some(given) => {
                for (name, _) in &given {
                    if !a.dimensions.iter().any(|(d, _, _)| d == name) {
                        return Err(unknown_name("block", name, &a.name, &a.dimensions));
                    }
                }
                let mut dims = Vec::with_capacity(a.dimensions.len());
                for (name, _, ty) in &a.dimensions {
                    let mut values = given.iter().filter(|(n, _)| n == name);
                    let (Some((_, value)), None) = (values.next(), values.next()) else {
                        return Err(ApiError::bad_request(
                            "bad_block",
                            format!(
                                "a block of `{}` is named by exactly one value of each of its \
                                 dimensions: {}; `{name}` is missing or repeated",
                                a.name,
                                names(&a.dimensions)
                            ),
                        ));
                    };
                    dims.push(typed(value.clone(), *ty, a.dialect, "block", name)?);
                }
                Some(dims)
            }
        };
        let mut typed_context = Vec::with_capacity(context.len());
        for (name, value) in context {
            let Some((_, column, ty)) = a.fields.iter().find(|(f, _, _)| *f == name) else {
                return Err(unknown_name("context", &name, &a.name, &a.fields));
            };
            typed_context.push((*column, typed(value, *ty, a.dialect, "context", &name)?));
        }
        Ok(LiveQuery {
            at,
            block,
            context: typed_context,
        })
    }

    /// The row `query` asks for, over the identity's stored records (not empty), `now` being
    /// the time the request is answered.
    pub fn serve(
        &self,
        identity: &Arc<str>,
        records: &[StoredRecord],
        query: &LiveQuery,
        now: DateTime<Utc>,
    ) -> Served {
        let (at, block) = self.anchor_of(identity, records, query, now);
        let view = view_of_stored(&self.plan, identity.clone(), records);
        let mut operator = self.operator();
        let row = operator.row_anchored(&view, at, block.as_deref());
        let errors = take_errors(&mut operator, &self.plan.field_names);
        self.give_back(operator);
        let mut features = String::with_capacity(32 * self.features.len() + 2);
        features.push('{');
        for (n, (column, key)) in self.features.iter().enumerate() {
            if n > 0 {
                features.push(',');
            }
            features.push_str(key);
            write_json(
                row.values.get(*column).unwrap_or(&Value::Null),
                JsonStyle::Compact,
                &mut features,
            );
        }
        features.push('}');
        Served {
            at,
            as_of: self.as_of(records),
            features,
            errors,
        }
    }

    /// The anchor's start and its block's columns.
    fn anchor_of(
        &self,
        identity: &Arc<str>,
        records: &[StoredRecord],
        query: &LiveQuery,
        now: DateTime<Utc>,
    ) -> (DateTime<Utc>, Option<Vec<Value>>) {
        let a = &self.anchor;
        let at = query.at.unwrap_or(now);
        let stored = query.block.as_ref().and_then(|dims| {
            records.iter().find(|r| {
                r.kind == RecordKind::Block && *r.key.aggregate == *a.name && r.key.dims == *dims
            })
        });
        let (at, mut columns) = match (stored, &query.block) {
            (Some(record), _) if record.columns.len() == a.defaults.len() => {
                match record.start_time {
                    Some(start) => (start, record.columns.clone()),
                    None => (at, self.new_block(identity, at, &[])),
                }
            }
            (_, Some(dims)) => (at, self.new_block(identity, at, dims)),
            (_, None) if !query.context.is_empty() => (at, self.new_block(identity, at, &[])),
            (_, None) => return (at, None),
        };
        for (column, value) in &query.context {
            if let Some(slot) = columns.get_mut(*column) {
                *slot = value.clone();
            }
        }
        (at, Some(columns))
    }

    /// The block an event at `at` would start: its dimensions, every field at its default.
    fn new_block(&self, identity: &Arc<str>, at: DateTime<Utc>, dims: &[Value]) -> Vec<Value> {
        let a = &self.anchor;
        let mut columns = a.defaults.clone();
        let mut set = |column: Option<usize>, value: Value| {
            if let Some(slot) = column.and_then(|c| columns.get_mut(c)) {
                *slot = value;
            }
        };
        set(a.identity_column, Value::Str(Str::from(identity.clone())));
        set(a.start_column, Value::DateTime(at));
        set(a.end_column, Value::DateTime(at));
        for ((_, column, _), value) in a.dimensions.iter().zip(dims) {
            set(Some(*column), value.clone());
        }
        columns
    }

    fn as_of(&self, records: &[StoredRecord]) -> Option<DateTime<Utc>> {
        let aggregates = &self.plan.streaming.aggregates;
        records
            .iter()
            .filter(|r| r.kind == RecordKind::Block)
            .filter_map(|r| {
                let agg = aggregates
                    .iter()
                    .position(|a| *a.name == *r.key.aggregate)?;
                match r.columns.get(self.end_columns.get(agg).copied().flatten()?) {
                    Some(Value::DateTime(end)) => Some(*end),
                    _ => None,
                }
            })
            .max()
    }

    fn operator(&self) -> WindowOperator {
        let pooled = self
            .operators
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        pooled.unwrap_or_else(|| WindowOperator::new(self.plan.clone()))
    }

    fn give_back(&self, operator: WindowOperator) {
        self.operators
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(operator);
    }
}

/// The fields that are labels: those of windows after the anchor, and every field whose value
/// or `When` reads one (directly or through other fields). They are never served.
fn label_fields(plan: &WindowPlan) -> Vec<usize> {
    // (aggregate, column) → index in `field_names`.
    let mut index = Vec::new();
    for (agg, aggregate) in plan.aggregates.iter().enumerate() {
        for field in &aggregate.fields {
            index.push((agg, field.column as usize, field.error_id as usize));
        }
    }
    let mut label = vec![false; plan.field_names.len()];
    for (agg, aggregate) in plan.aggregates.iter().enumerate() {
        if let WindowAggregateKind::Window { value, .. } = aggregate.kind
            && value > 0
        {
            for &(a, _, id) in &index {
                if a == agg
                    && let Some(l) = label.get_mut(id)
                {
                    *l = true;
                }
            }
        }
    }
    // Until nothing changes: a field may read a later field of its own aggregate.
    loop {
        let mut changed = false;
        for aggregate in &plan.aggregates {
            for field in &aggregate.fields {
                let id = field.error_id as usize;
                if label.get(id).copied().unwrap_or(true) {
                    continue;
                }
                let mut reads_label = false;
                let mut visit = |e: &dtc_plan::plan::CExpr| {
                    if let dtc_plan::plan::CExpr::Load(Slot::Field { agg, column }) = e {
                        reads_label |= index.iter().any(|&(a, c, other)| {
                            a == *agg as usize
                                && c == *column as usize
                                && label.get(other).copied().unwrap_or(false)
                        });
                    }
                };
                field.value.visit(&mut visit);
                if let Some(when) = &field.when {
                    when.visit(&mut visit);
                }
                if reads_label {
                    label[id] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    label
        .iter()
        .enumerate()
        .filter(|(_, l)| **l)
        .map(|(i, _)| i)
        .collect()
}

/// The operator's evaluation errors since the last call, by field name; resets them.
fn take_errors(operator: &mut WindowOperator, names: &[String]) -> Vec<(String, u64)> {
    if operator.errors.total() == 0 {
        return Vec::new();
    }
    let errors = operator
        .errors
        .nonzero(names)
        .map(|(name, count, _)| (name.to_string(), count))
        .collect();
    operator.errors = dtc_engine::stats::FieldErrors::new(names.len());
    errors
}

fn typed(
    value: Value,
    ty: FieldType,
    dialect: Dialect,
    part: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let shown = dtc_io::format::to_json_string(&value, JsonStyle::Compact);
    convert(value, ty, dialect).map_err(|e| {
        ApiError::bad_request(
            if part == "block" {
                "bad_block"
            } else {
                "bad_context"
            },
            format!(
                "{part} `{name}`: {shown} is not a valid {} value: {e}",
                ty.name()
            ),
        )
    })
}

fn names(columns: &[(String, usize, FieldType)]) -> String {
    columns
        .iter()
        .map(|(n, _, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_name(
    part: &str,
    name: &str,
    aggregate: &str,
    known: &[(String, usize, FieldType)],
) -> ApiError {
    let what = if part == "block" {
        "dimension"
    } else {
        "field"
    };
    let hint = dtc_lang::suggest::closest(name, known.iter().map(|(n, _, _)| n.as_str()))
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default();
    ApiError::bad_request(
        if part == "block" {
            "bad_block"
        } else {
            "bad_context"
        },
        format!(
            "{part}: `{name}` is not a {what} of `{aggregate}`{hint}; its {what}s: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                names(known)
            }
        ),
    )
}

/// An RFC 3339 time. In a query string `+` means a space, so `...T12:00:00+02:00` arrives as
/// `...T12:00:00 02:00`; that form is read back as the offset it was meant to be.
pub fn parse_at(text: &str) -> Result<DateTime<Utc>, ApiError> {
    let parsed = DateTime::parse_from_rfc3339(text).or_else(|e| match text.rfind(' ') {
        Some(i) if i > 10 => {
            DateTime::parse_from_rfc3339(&format!("{}+{}", &text[..i], &text[i + 1..]))
        }
        _ => Err(e),
    });
    parsed.map(|t| t.with_timezone(&Utc)).map_err(|e| {
        let mut shown = String::new();
        write_str(
            &text.chars().take(64).collect::<String>(),
            JsonStyle::Compact,
            &mut shown,
        );
        ApiError::bad_request(
            "bad_at",
            format!(
                "`at` must be an RFC 3339 time such as 2024-05-01T12:00:00Z (write `+` as %2B \
                 in a query string), not {shown}: {e}"
            ),
        )
    })
}

/// `at` as the responses write times: as the JSON-lines output writes `anchor_time`.
pub fn render_time(t: &DateTime<Utc>) -> String {
    iso_datetime(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_is_rfc3339_with_a_plus_that_a_query_string_turned_into_a_space() {
        let utc = parse_at("2024-05-01T12:00:00Z").unwrap();
        assert_eq!(parse_at("2024-05-01T14:00:00+02:00").unwrap(), utc);
        assert_eq!(parse_at("2024-05-01T14:00:00 02:00").unwrap(), utc);
        for bad in [
            "",
            "yesterday",
            "2024-05-01",
            "2024-13-01T00:00:00Z",
            "1714564800",
        ] {
            let e = parse_at(bad).unwrap_err();
            assert_eq!(e.code, "bad_at", "{bad}");
        }
    }
}
