//! The streaming operator: applies one event to one identity's state (docs/language.md sections 3 and 4).
//!
//! It is incremental on purpose: a batch run sorts each identity's events and calls
//! [`StreamingOperator::apply`] for each; a live consumer calls it as events arrive.

use std::hash::BuildHasher;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dtc_plan::eval::{Evaluator, Scope, convert, has_type};
use dtc_plan::plan::{
    AggregateLayout, CExpr, ColumnRole, Dialect, FieldPlan, ScheduledField, Slot, StreamAggregate,
    StreamAggregateKind, StreamingPlan,
};
use dtc_plan::value::{Str, Value};
use dtc_store::{RecordKey, RecordKind, StoredRecord};

use crate::event::Event;
use crate::stats::FieldErrors;

/// One record of an aggregate for one identity: an identity record or a block.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub dims: Vec<Value>,
    pub columns: Vec<Value>,
    /// Changed since it was loaded, so it must be written back.
    pub dirty: bool,
    /// The version it was loaded with (0 = new); the store bumps it on write.
    pub version: u64,
    /// The record's creation position within its identity (see `StoredRecord::order`): the
    /// tie-breaker between blocks with the same `_start_time`, the block whose first event came
    /// first. Kept in the store, so that a later run or a window run over the store breaks
    /// ties as the run that created the blocks did; 0 for records of older stores.
    pub order: u64,
}

#[derive(Debug, Clone, Default)]
struct AggState {
    records: Vec<Record>,
    /// Indices into `records`, hashed by the record's dims: the records hold the dims, so a
    /// new block does not copy them into a map key too.
    by_dims: hashbrown::HashTable<usize>,
    /// Hashes dims for `by_dims`: foldhash, randomly seeded. Part of the state, so that the
    /// index stays valid whichever operator applies the state's next event.
    dims_hasher: foldhash::fast::RandomState,
    current: Option<usize>,
    /// Split blocks: `current` is the latest block, but a true `Split` closed it; the next
    /// event the aggregate takes opens a new block. Meanwhile the aggregate's fields read as
    /// a fresh block's.
    closed: bool,
}

impl AggState {
    fn find(&self, dims: &[Value]) -> Option<usize> {
        let records = &self.records;
        self.by_dims
            .find(self.dims_hasher.hash_one(dims), |&i| {
                records.get(i).is_some_and(|r| r.dims == dims)
            })
            .copied()
    }

    /// Appends `record` (whose dims no record has) and indexes it.
    fn push(&mut self, record: Record) -> usize {
        let index = self.records.len();
        let hasher = &self.dims_hasher;
        let hash = hasher.hash_one(record.dims.as_slice());
        self.records.push(record);
        let records = &self.records;
        self.by_dims.insert_unique(hash, index, |&i| {
            hasher.hash_one(records.get(i).map_or(&[][..], |r| r.dims.as_slice()))
        });
        index
    }
}

/// Everything the operator knows about one identity.
#[derive(Debug, Clone)]
pub struct IdentityState {
    pub identity: Arc<str>,
    aggs: Vec<AggState>,
    /// The largest creation ordinal the identity's records hold: a new record gets the next.
    last_order: u64,
}

/// How an aggregate's records are stored; `None` for variables, which are not.
fn stored_kind(kind: &StreamAggregateKind) -> Option<RecordKind> {
    match kind {
        StreamAggregateKind::Variable => None,
        StreamAggregateKind::Identity => Some(RecordKind::Identity),
        StreamAggregateKind::Block
        | StreamAggregateKind::SplitBlock { .. }
        | StreamAggregateKind::Activity { .. } => Some(RecordKind::Block),
    }
}

impl IdentityState {
    /// The records of aggregate `agg` (blocks in creation order, not time order).
    pub fn records(&self, agg: usize) -> &[Record] {
        self.aggs
            .get(agg)
            .map(|a| a.records.as_slice())
            .unwrap_or(&[])
    }

    /// Appends the records that changed to `out`, as store records of `plan`'s stored
    /// aggregates. Consumes the state: its records move to the store's, uncopied.
    pub fn into_dirty_records(self, plan: &StreamingPlan, out: &mut Vec<StoredRecord>) {
        for (agg, state) in plan.aggregates.iter().zip(self.aggs) {
            let Some(kind) = stored_kind(&agg.kind) else {
                continue;
            };
            let start_col = role_column(&agg.layout, ColumnRole::StartTime);
            let name: Arc<str> = Arc::from(agg.name.as_str());
            for rec in state.records.into_iter().filter(|r| r.dirty) {
                let start_time = start_col.and_then(|c| match rec.columns.get(c) {
                    Some(Value::DateTime(t)) => Some(*t),
                    _ => None,
                });
                out.push(StoredRecord {
                    key: RecordKey {
                        identity: self.identity.clone(),
                        aggregate: name.clone(),
                        dims: rec.dims,
                    },
                    kind,
                    start_time,
                    columns: rec.columns,
                    version: rec.version + 1,
                    order: rec.order,
                    writer: 0,
                });
            }
        }
    }

    /// Appends this state's records as store records, the dirty ones only or all of them,
    /// without consuming it. Taking the dirty ones marks them written: clean again, with the
    /// version they were written with, so the next write of a record is conditional on it.
    pub fn stored_records(
        &mut self,
        plan: &StreamingPlan,
        dirty_only: bool,
        out: &mut Vec<StoredRecord>,
    ) {
        for (agg, state) in plan.aggregates.iter().zip(self.aggs.iter_mut()) {
            let Some(kind) = stored_kind(&agg.kind) else {
                continue;
            };
            let start_col = role_column(&agg.layout, ColumnRole::StartTime);
            let name: Arc<str> = Arc::from(agg.name.as_str());
            for rec in state.records.iter_mut().filter(|r| r.dirty || !dirty_only) {
                let start_time = start_col.and_then(|c| match rec.columns.get(c) {
                    Some(Value::DateTime(t)) => Some(*t),
                    _ => None,
                });
                if dirty_only {
                    rec.version += 1;
                    rec.dirty = false;
                }
                out.push(StoredRecord {
                    key: RecordKey {
                        identity: self.identity.clone(),
                        aggregate: name.clone(),
                        dims: rec.dims.clone(),
                    },
                    kind,
                    start_time,
                    columns: rec.columns.clone(),
                    version: rec.version,
                    order: rec.order,
                    writer: 0,
                });
            }
        }
    }

    /// Whether a record changed since it was loaded or last taken.
    pub fn is_dirty(&self) -> bool {
        self.aggs.iter().any(|a| a.records.iter().any(|r| r.dirty))
    }

    /// Makes this state, rebuilt from an older one (a replay in event-time order), replace
    /// `previous` in the store: every record is marked to be written, at a version above the
    /// one `previous` holds for its key. Returns the keys of `previous`'s records this state
    /// no longer has (activity blocks merged by the replay), to be deleted.
    pub fn replace(&mut self, previous: &IdentityState, plan: &StreamingPlan) -> Vec<RecordKey> {
        let mut gone = Vec::new();
        for (ai, agg) in plan.aggregates.iter().enumerate() {
            let (Some(new), Some(old)) = (self.aggs.get_mut(ai), previous.aggs.get(ai)) else {
                continue;
            };
            if matches!(agg.kind, StreamAggregateKind::Variable) {
                continue;
            }
            for rec in &mut new.records {
                if let Some(i) = old.find(&rec.dims) {
                    rec.version = rec.version.max(old.records[i].version);
                }
                rec.dirty = true;
            }
            for rec in &old.records {
                if new.find(&rec.dims).is_none() {
                    gone.push(RecordKey {
                        identity: self.identity.clone(),
                        aggregate: Arc::from(agg.name.as_str()),
                        dims: rec.dims.clone(),
                    });
                }
            }
        }
        gone
    }

    /// About how many bytes the state holds, for a cache's budget.
    pub fn approx_bytes(&self) -> usize {
        let values = |v: &[Value]| v.iter().map(approx_value_bytes).sum::<usize>();
        self.identity.len()
            + 64
            + self
                .aggs
                .iter()
                .flat_map(|a| &a.records)
                .map(|r| 96 + values(&r.dims) + values(&r.columns))
                .sum::<usize>()
    }

    fn current(&self, agg: usize) -> Option<&Record> {
        let a = self.aggs.get(agg)?;
        if a.closed {
            return None;
        }
        a.current.and_then(|i| a.records.get(i))
    }

    /// Per identity, not per run: an identity's ordinals then do not depend on which other
    /// identities a run applied, and continue those its stored records hold.
    fn next_order(&mut self) -> u64 {
        // Saturating: a stored ordinal of u64::MAX (a damaged store) must not panic a run.
        self.last_order = self.last_order.saturating_add(1);
        self.last_order
    }
}

/// About how many bytes a value holds.
pub fn approx_value_bytes(v: &Value) -> usize {
    match v {
        Value::Str(s) => 24 + s.len(),
        Value::List(items) | Value::Tuple(items) => {
            40 + items.iter().map(approx_value_bytes).sum::<usize>()
        }
        Value::Set(items) => 64 + items.iter().map(approx_value_bytes).sum::<usize>(),
        Value::Map(items) => {
            64 + items
                .iter()
                .map(|(k, v)| approx_value_bytes(k) + approx_value_bytes(v))
                .sum::<usize>()
        }
        _ => 24,
    }
}

/// Applies events to identity states for one streaming plan.
pub struct StreamingOperator {
    plan: Arc<StreamingPlan>,
    run: Runtime,
    /// Events applied.
    pub applied: u64,
}

/// What applying an event uses besides the plan: held apart from it so that `apply` can borrow
/// the plan's aggregates while it updates these.
struct Runtime {
    evaluator: Evaluator,
    dialect: Dialect,
    /// A fresh record of each aggregate: typed defaults.
    defaults: Vec<Vec<Value>>,
    identity_col: Vec<Option<usize>>,
    start_col: Vec<Option<usize>>,
    end_col: Vec<Option<usize>>,
    errors: FieldErrors,
    /// Reused for each event's dimension values, which mostly name an existing record.
    dims_scratch: Vec<Value>,
}

struct EventScope<'a> {
    state: &'a IdentityState,
    event: &'a Event,
    defaults: &'a [Vec<Value>],
}

impl Scope for EventScope<'_> {
    fn load(&self, slot: Slot) -> Value {
        match slot {
            Slot::SourcePath(i) => self
                .event
                .values
                .get(i as usize)
                .cloned()
                .unwrap_or(Value::Null),
            Slot::WholeSource => self.event.whole.clone().unwrap_or(Value::Null),
            Slot::Time => Value::DateTime(self.event.time),
            Slot::Identity => Value::Str(Str::from(self.state.identity.clone())),
            Slot::Field { agg, column } => {
                let columns = match self.state.current(agg as usize) {
                    Some(rec) => &rec.columns,
                    None => match self.defaults.get(agg as usize) {
                        Some(d) => d,
                        None => return Value::Null,
                    },
                };
                columns.get(column as usize).cloned().unwrap_or(Value::Null)
            }
            Slot::Anchor { .. } | Slot::Stream { .. } | Slot::WindowSource { .. } => Value::Null,
        }
    }

    fn load_ref(&self, slot: Slot) -> Option<&Value> {
        match slot {
            Slot::SourcePath(i) => self.event.values.get(i as usize),
            Slot::WholeSource => self.event.whole.as_ref(),
            Slot::Field { agg, column } => match self.state.current(agg as usize) {
                Some(rec) => rec.columns.get(column as usize),
                None => self.defaults.get(agg as usize)?.get(column as usize),
            },
            _ => None,
        }
    }
}

pub(crate) fn role_column(layout: &AggregateLayout, role: ColumnRole) -> Option<usize> {
    layout.columns.iter().position(|c| c.role == role)
}

impl StreamingOperator {
    pub fn new(plan: Arc<StreamingPlan>) -> Self {
        let defaults = plan
            .aggregates
            .iter()
            .map(|a| a.layout.defaults())
            .collect();
        let col = |role| {
            plan.aggregates
                .iter()
                .map(|a| role_column(&a.layout, role))
                .collect::<Vec<_>>()
        };
        let identity_col = col(ColumnRole::Identity);
        let start_col = col(ColumnRole::StartTime);
        let end_col = col(ColumnRole::EndTime);
        StreamingOperator {
            run: Runtime {
                evaluator: Evaluator::new(plan.dialect),
                dialect: plan.dialect,
                defaults,
                identity_col,
                start_col,
                end_col,
                errors: FieldErrors::new(plan.field_names.len()),
                dims_scratch: Vec::new(),
            },
            plan,
            applied: 0,
        }
    }

    /// Evaluation errors per spec field, counted over every event applied.
    pub fn errors(&self) -> &FieldErrors {
        &self.run.errors
    }

    pub fn plan(&self) -> &Arc<StreamingPlan> {
        &self.plan
    }

    /// A state with no records.
    pub fn new_state(&self, identity: Arc<str>) -> IdentityState {
        IdentityState {
            identity,
            aggs: vec![AggState::default(); self.plan.aggregates.len()],
            last_order: 0,
        }
    }

    /// A state holding the records a store returned for this identity. Records of aggregates
    /// the plan does not have, or whose column count differs from the plan's layout (the spec
    /// changed), are ignored. Records keep their stored creation ordinals, and new ones are
    /// numbered after all of them (ignored ones too, which stay in the store).
    pub fn load_state(&self, identity: Arc<str>, stored: Vec<StoredRecord>) -> IdentityState {
        let mut state = self.new_state(identity);
        state.last_order = stored.iter().map(|r| r.order).max().unwrap_or(0);
        for rec in stored {
            let Some(agg) = self
                .plan
                .aggregates
                .iter()
                .position(|a| *a.name == *rec.key.aggregate)
            else {
                continue;
            };
            if rec.columns.len() != self.plan.aggregates[agg].layout.columns.len() {
                continue;
            }
            state.aggs[agg].push(Record {
                dims: rec.key.dims,
                columns: rec.columns,
                dirty: false,
                version: rec.version,
                order: rec.order,
            });
        }
        // An activity aggregate continues its latest block, if the next event is close enough;
        // a split block aggregate continues its latest block until its `Split` is true.
        for (agg, a) in self.plan.aggregates.iter().zip(state.aggs.iter_mut()) {
            if matches!(
                agg.kind,
                StreamAggregateKind::Activity { .. } | StreamAggregateKind::SplitBlock { .. }
            ) {
                let start = role_column(&agg.layout, ColumnRole::StartTime);
                a.current = (0..a.records.len()).max_by_key(|&i| {
                    let record = &a.records[i];
                    let start = start.and_then(|c| match record.columns.get(c) {
                        Some(Value::DateTime(t)) => Some(*t),
                        _ => None,
                    });
                    (start, record.order)
                });
            }
        }
        state
    }

    /// Applies one admitted event (identity, time and transform `When` already evaluated).
    pub fn apply(&mut self, state: &mut IdentityState, event: &Event) {
        self.applied += 1;
        let run = &mut self.run;
        for (ai, agg) in self.plan.aggregates.iter().enumerate() {
            if matches!(agg.kind, StreamAggregateKind::Variable) {
                // Recomputed for every event: no value leaks from the previous event, even
                // when the aggregate's `When` is false for this one.
                run.reset_variable(state, ai);
            }
            // A late split-block event joins the block covering its time; the latest block
            // stays current for the events after it.
            let mut late = None;
            if let StreamAggregateKind::SplitBlock { split } = &agg.kind {
                late = run.late_split_target(state, ai, event);
                if late.is_none() {
                    // Evaluated before the aggregate's `When`, as Blurr did: an event the
                    // aggregate skips can still close its block.
                    run.split(split, state, ai, event);
                }
            }
            // The latest block and whether it was closed, to restore after a late event.
            let mut restore = None;
            if let Some(when) = &agg.when {
                let scope = EventScope {
                    state,
                    event,
                    defaults: &run.defaults,
                };
                if !run.evaluator.eval_bool(when, &scope) {
                    continue;
                }
            }
            let target = match &agg.kind {
                StreamAggregateKind::Variable => state.aggs[ai].current,
                StreamAggregateKind::Identity | StreamAggregateKind::Block => {
                    match current_with_same_dims(agg, state, ai, event, &run.defaults) {
                        Some(current) => Some(current),
                        None => {
                            let mut dims = std::mem::take(&mut run.dims_scratch);
                            let evaluated =
                                run.eval_dimensions(&agg.dimensions, state, event, &mut dims);
                            let target = evaluated.then(|| run.open_record(agg, state, ai, &dims));
                            run.dims_scratch = dims;
                            target
                        }
                    }
                }
                StreamAggregateKind::SplitBlock { .. } => Some(match late {
                    Some(block) => {
                        let a = &mut state.aggs[ai];
                        restore = Some((a.current, a.closed));
                        // Its fields are evaluated on the block it joins.
                        a.current = Some(block);
                        a.closed = false;
                        block
                    }
                    None => run.open_split_block(agg, state, ai, event),
                }),
                StreamAggregateKind::Activity {
                    separate_by_inactive_seconds,
                } => Some(run.open_activity_block(
                    agg,
                    state,
                    ai,
                    *separate_by_inactive_seconds,
                    event,
                )),
            };
            let Some(target) = target else { continue };
            run.touch_times(state, ai, target, event.time);
            if !matches!(agg.kind, StreamAggregateKind::Variable) {
                state.aggs[ai].records[target].dirty = true;
            }
            run.eval_fields(agg, state, ai, target, event);
            if let Some((current, closed)) = restore {
                let a = &mut state.aggs[ai];
                a.current = current;
                a.closed = closed;
            }
        }
    }
}

/// The aggregate's current record when the event's dimension values are plainly its: each
/// dimension loads a value (`source.session_id`) that already has the dimension's type and
/// equals the record's. Compared where the values lie, without evaluating, converting and
/// collecting them: most events of a block follow each other. `None` sends the event down the
/// full road, which gives the same answer and also reports errors.
fn current_with_same_dims(
    agg: &StreamAggregate,
    state: &IdentityState,
    ai: usize,
    event: &Event,
    defaults: &[Vec<Value>],
) -> Option<usize> {
    let a = state.aggs.get(ai)?;
    let current = a.current?;
    let record = a.records.get(current)?;
    if record.dims.len() != agg.dimensions.len() {
        return None;
    }
    let scope = EventScope {
        state,
        event,
        defaults,
    };
    let same = agg.dimensions.iter().zip(&record.dims).all(|(d, held)| {
        let CExpr::Load(slot) = &d.value else {
            return false;
        };
        scope
            .load_ref(*slot)
            .is_some_and(|v| has_type(v, d.ty) && v == held)
    });
    same.then_some(current)
}

impl Runtime {
    fn reset_variable(&self, state: &mut IdentityState, ai: usize) {
        let fresh = self.defaults[ai].clone();
        let a = &mut state.aggs[ai];
        match a.current {
            Some(i) => a.records[i].columns = fresh,
            None => {
                a.records.push(Record {
                    dims: Vec::new(),
                    columns: fresh,
                    dirty: false,
                    version: 0,
                    order: 0,
                });
                a.current = Some(a.records.len() - 1);
            }
        }
    }

    /// Dimension values converted to their declared types, into `dims`; `false` (and an error
    /// counted) if one fails or is null: the aggregate is skipped for this event.
    fn eval_dimensions(
        &mut self,
        dimensions: &[FieldPlan],
        state: &IdentityState,
        event: &Event,
        dims: &mut Vec<Value>,
    ) -> bool {
        dims.clear();
        let scope = EventScope {
            state,
            event,
            defaults: &self.defaults,
        };
        for d in dimensions {
            let value = self
                .evaluator
                .eval(&d.value, &scope)
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    if v.is_null() {
                        Err("dimension value is null".to_string())
                    } else {
                        convert(v, d.ty, self.dialect).map_err(|e| e.to_string())
                    }
                });
            match value {
                Ok(v) => dims.push(v),
                Err(message) => {
                    self.errors.record(d.error_id, || message);
                    return false;
                }
            }
        }
        true
    }

    fn new_record(
        &self,
        agg: &StreamAggregate,
        state: &mut IdentityState,
        ai: usize,
        dims: Vec<Value>,
    ) -> Record {
        let mut columns = self.defaults[ai].clone();
        if let Some(c) = self.identity_col[ai] {
            columns[c] = Value::Str(Str::from(state.identity.clone()));
        }
        for (d, v) in agg.dimensions.iter().zip(&dims) {
            columns[d.column as usize] = v.clone();
        }
        for c in [self.start_col[ai], self.end_col[ai]].into_iter().flatten() {
            columns[c] = Value::Null;
        }
        Record {
            dims,
            columns,
            dirty: true,
            version: 0,
            order: state.next_order(),
        }
    }

    /// Makes the record for `dims` current, creating it or resuming it.
    fn open_record(
        &mut self,
        agg: &StreamAggregate,
        state: &mut IdentityState,
        ai: usize,
        dims: &[Value],
    ) -> usize {
        let a = &mut state.aggs[ai];
        // Sorted events of one block mostly follow each other: no lookup for those.
        if let Some(i) = a.current
            && a.records.get(i).is_some_and(|r| r.dims == dims)
        {
            return i;
        }
        if let Some(i) = a.find(dims) {
            a.current = Some(i);
            return i;
        }
        let rec = self.new_record(agg, state, ai, dims.to_vec());
        let a = &mut state.aggs[ai];
        let i = a.push(rec);
        a.current = Some(i);
        i
    }

    /// For an event earlier than the latest event applied to a split block aggregate (a
    /// later run's late event): the block covering its time, the latest block starting at or
    /// before it (else the first block). It joins that block without evaluating `Split`.
    fn late_split_target(&self, state: &IdentityState, ai: usize, event: &Event) -> Option<usize> {
        let (start_col, end_col) = (self.start_col[ai]?, self.end_col[ai]?);
        let time = |rec: &Record, c: usize| match rec.columns.get(c) {
            Some(Value::DateTime(t)) => Some(*t),
            _ => None,
        };
        let a = &state.aggs[ai];
        let end = a
            .current
            .and_then(|i| a.records.get(i))
            .and_then(|r| time(r, end_col))?;
        if event.time >= end {
            return None;
        }
        let starts = a
            .records
            .iter()
            .enumerate()
            .filter_map(|(i, rec)| time(rec, start_col).map(|t| (t, rec.order, i)));
        starts
            .clone()
            .filter(|(t, _, _)| *t <= event.time)
            .max()
            .or_else(|| starts.min())
            .map(|(_, _, i)| i)
    }

    /// Evaluates a split block aggregate's `Split` for `event` on its open block; the boolean
    /// `True` closes the block (an error, null or any other value leaves it open).
    fn split(&mut self, split: &CExpr, state: &mut IdentityState, ai: usize, event: &Event) {
        if state.current(ai).is_none() {
            return;
        }
        let scope = EventScope {
            state,
            event,
            defaults: &self.defaults,
        };
        if let Ok(Value::Bool(true)) = self.evaluator.eval(split, &scope) {
            state.aggs[ai].closed = true;
        }
    }

    /// The open block of a split block aggregate, or a new one (the first event, or the first
    /// after a true `Split`).
    fn open_split_block(
        &mut self,
        agg: &StreamAggregate,
        state: &mut IdentityState,
        ai: usize,
        event: &Event,
    ) -> usize {
        let a = &state.aggs[ai];
        if let (Some(i), false) = (a.current, a.closed) {
            return i;
        }
        state.aggs[ai].closed = false;
        let id = self.new_block_id(state, ai, event);
        self.open_record(agg, state, ai, &[Value::Int(id)])
    }

    /// A stable key for a block without dimension values: its first event's time in
    /// microseconds, moved on past ids already taken. The key does not change when a late
    /// event moves the block's start.
    fn new_block_id(&self, state: &IdentityState, ai: usize, event: &Event) -> i64 {
        let mut id = event.time.timestamp_micros();
        while state.aggs[ai].find(&[Value::Int(id)]).is_some() {
            id += 1;
        }
        id
    }

    /// The current inactivity block if `event` belongs to it, else a new one.
    fn open_activity_block(
        &mut self,
        agg: &StreamAggregate,
        state: &mut IdentityState,
        ai: usize,
        gap_seconds: i64,
        event: &Event,
    ) -> usize {
        let (start_col, end_col) = (self.start_col[ai], self.end_col[ai]);
        let gap = chrono::TimeDelta::seconds(gap_seconds);
        let span = |rec: &Record| match (
            start_col.and_then(|c| rec.columns.get(c)),
            end_col.and_then(|c| rec.columns.get(c)),
        ) {
            (Some(Value::DateTime(start)), Some(Value::DateTime(end))) => Some((*start, *end)),
            _ => None,
        };
        let a = &state.aggs[ai];
        let fits = |i: usize| {
            a.records
                .get(i)
                .and_then(span)
                .is_some_and(|(start, end)| event.time >= start && event.time - end <= gap)
        };
        if let Some(i) = a.current.filter(|&i| fits(i)) {
            return i;
        }
        // A late event, applied by a later run than the block it falls in, updates that
        // persisted block (docs/language.md section 13) instead of opening an overlapping one: the
        // latest block starting at or before the event, if the event is within its gap.
        let late = a
            .records
            .iter()
            .enumerate()
            .filter_map(|(i, rec)| span(rec).map(|(start, _)| (i, start)))
            .filter(|(_, start)| *start <= event.time)
            .max_by_key(|(_, start)| *start)
            .map(|(i, _)| i)
            .filter(|&i| fits(i));
        if let Some(i) = late {
            state.aggs[ai].current = Some(i);
            return i;
        }
        let id = self.new_block_id(state, ai, event);
        self.open_record(agg, state, ai, &[Value::Int(id)])
    }

    fn touch_times(
        &self,
        state: &mut IdentityState,
        ai: usize,
        target: usize,
        time: DateTime<Utc>,
    ) {
        let rec = &mut state.aggs[ai].records[target];
        if let Some(c) = self.start_col[ai] {
            match &rec.columns[c] {
                Value::DateTime(t) if *t <= time => {}
                _ => rec.columns[c] = Value::DateTime(time),
            }
        }
        if let Some(c) = self.end_col[ai] {
            match &rec.columns[c] {
                Value::DateTime(t) if *t >= time => {}
                _ => rec.columns[c] = Value::DateTime(time),
            }
        }
    }

    fn eval_fields(
        &mut self,
        agg: &StreamAggregate,
        state: &mut IdentityState,
        ai: usize,
        target: usize,
        event: &Event,
    ) {
        let guarded = agg
            .schedule
            .path
            .map(|path| event.values.get(path as usize));
        let scheduled = agg.schedule.fields_for(guarded.flatten());
        for &ScheduledField { index, check_when } in scheduled {
            let Some(f) = agg.fields.get(index) else {
                continue;
            };
            let result = {
                let scope = EventScope {
                    state,
                    event,
                    defaults: &self.defaults,
                };
                if check_when
                    && let Some(when) = &f.when
                    && !self.evaluator.eval_bool(when, &scope)
                {
                    continue;
                }
                self.evaluator
                    .eval(&f.value, &scope)
                    .and_then(|v| convert(v, f.ty, self.dialect))
            };
            match result {
                Ok(v) => state.aggs[ai].records[target].columns[f.column as usize] = v,
                Err(e) => self.errors.record(f.error_id, || e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::streaming_plan;

    /// Blocks split when the level changes; `ad` events are not taken (the aggregate's
    /// `When`), but their `Split` is evaluated all the same.
    const LEVELS: &str = "\
Type: Streaming
Version: '2026-11-01'
Name: levels
Identity: source.user
Time: parse_time(source.ts)
Aggregates:
  - Type: Block
    Name: level
    When: source.kind != 'ad'
    Split: source.level != level.level
    Fields:
      - Name: level
        Type: integer
        Value: source.level
      - Name: events
        Type: integer
        Value: level.events + 1
";

    /// An event `minute` minutes after 10:00.
    fn event(plan: &StreamingPlan, minute: i64, level: i64, kind: &str) -> Event {
        let time = DateTime::from_timestamp(1_714_557_600 + minute * 60, 0).unwrap_or_default();
        let values = plan
            .source_paths
            .iter()
            .map(|p| match p.0.first().map(String::as_str) {
                Some("level") => Value::Int(level),
                Some("kind") => Value::str(kind),
                _ => Value::Null,
            })
            .collect();
        Event {
            time,
            values,
            whole: None,
        }
    }

    /// (level, events, start minute, end minute) of each block, in creation order.
    fn blocks(state: &IdentityState) -> Vec<(i64, i64, i64, i64)> {
        let minute = |v: &Value| match v {
            Value::DateTime(t) => (t.timestamp() - 1_714_557_600) / 60,
            _ => 99,
        };
        let int = |v: &Value| match v {
            Value::Int(i) => *i,
            _ => -1,
        };
        state
            .records(0)
            .iter()
            .map(|r| {
                (
                    int(&r.columns[3]),
                    int(&r.columns[4]),
                    minute(&r.columns[1]),
                    minute(&r.columns[2]),
                )
            })
            .collect()
    }

    #[test]
    fn a_true_split_closes_the_block_and_a_level_that_comes_back_starts_a_new_one() {
        let plan = streaming_plan(LEVELS);
        let mut op = StreamingOperator::new(plan.clone());
        let mut state = op.new_state(Arc::from("u1"));
        for (minute, level, kind) in [
            (0, 1, "play"),
            (1, 1, "play"),
            (2, 2, "play"),
            (3, 1, "play"),
            // Skipped by `When`, but its `Split` closes the level-1 block.
            (4, 3, "ad"),
            (5, 1, "play"),
        ] {
            op.apply(&mut state, &event(&plan, minute, level, kind));
        }
        assert_eq!(
            blocks(&state),
            [(1, 2, 0, 1), (2, 1, 2, 2), (1, 1, 3, 3), (1, 1, 5, 5)]
        );
        // Each block is keyed by its first event's time.
        let keys: Vec<&[Value]> = state.records(0).iter().map(|r| r.dims.as_slice()).collect();
        let micros = |minute: i64| Value::Int(1_714_557_600_000_000 + minute * 60_000_000);
        assert_eq!(keys, [[micros(0)], [micros(2)], [micros(3)], [micros(5)]]);
    }

    #[test]
    fn a_late_event_joins_the_block_covering_its_time_without_splitting() {
        let plan = streaming_plan(LEVELS);
        let mut op = StreamingOperator::new(plan.clone());
        let mut state = op.new_state(Arc::from("u1"));
        for (minute, level) in [(0, 1), (2, 1), (10, 2), (12, 2)] {
            op.apply(&mut state, &event(&plan, minute, level, "play"));
        }
        // The blocks are stored, and a later run brings events earlier than the last one.
        let mut stored = Vec::new();
        state.into_dirty_records(&plan, &mut stored);
        let mut state = op.load_state(Arc::from("u1"), stored);
        // Level 7 would split if it were in order; late, it joins the first block, whose
        // fields see that block. An event before every block joins the first one too.
        op.apply(&mut state, &event(&plan, 1, 7, "play"));
        op.apply(&mut state, &event(&plan, -5, 7, "play"));
        op.apply(&mut state, &event(&plan, 11, 2, "play"));
        // In order again: the latest block is still current, and level 3 splits it.
        op.apply(&mut state, &event(&plan, 13, 2, "play"));
        op.apply(&mut state, &event(&plan, 14, 3, "play"));
        assert_eq!(
            blocks(&state),
            [(7, 4, -5, 2), (2, 4, 10, 13), (3, 1, 14, 14)]
        );
    }
}
