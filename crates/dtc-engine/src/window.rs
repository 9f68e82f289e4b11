//! The window operator: anchors and windows over one identity's blocks (docs/language.md section 11).
//!
//! Blocks of each aggregate are sorted once by (`_start_time`, first event); a window is then a
//! contiguous range found by binary search, so an identity costs
//! O(blocks · log blocks + anchors · window size). The same [`WindowOperator::row_at`] code
//! evaluates a virtual anchor for live features, so served values equal training values.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use dtc_plan::eval::{Evaluator, Scope, convert};
use dtc_plan::plan::{
    ColumnRole, Dialect, Slot, StreamAggregateKind, WindowAggregateKind, WindowPlan, WindowType,
};
use dtc_plan::record::Row;
use dtc_plan::value::{Str, Value};

use crate::stats::FieldErrors;
use crate::streaming::role_column;

/// One block as the window operator sees it.
#[derive(Debug, Clone, Copy)]
pub struct BlockRef<'a> {
    pub start: DateTime<Utc>,
    /// Tie-breaker for equal starts: the block's creation ordinal within its identity, so the
    /// block whose first event came first.
    pub order: u64,
    pub columns: &'a [Value],
}

/// An identity's blocks and identity records, indexed by the streaming plan's aggregate ids.
#[derive(Debug, Default)]
pub struct IdentityView<'a> {
    pub identity: Arc<str>,
    /// Per streaming aggregate: its blocks sorted by (start, order); empty for non-block ones.
    pub blocks: Vec<Vec<BlockRef<'a>>>,
    /// Per streaming aggregate: the identity record (Identity aggregates only).
    pub identity_records: Vec<Option<&'a [Value]>>,
}

impl<'a> IdentityView<'a> {
    /// Builds a view from `(aggregate id, columns, creation ordinal)` triples; blocks without a
    /// `_start_time` (never touched by an event) are left out. Blocks are sorted by (start,
    /// ordinal) stably: those equal in both (ordinal 0, from stores written before ordinals
    /// were kept) stay in the order given, the store's key order for loaded records.
    pub fn new(
        plan: &WindowPlan,
        identity: Arc<str>,
        records: impl IntoIterator<Item = (usize, &'a [Value], u64)>,
    ) -> Self {
        let streaming = &plan.streaming;
        let n = streaming.aggregates.len();
        let mut view = IdentityView {
            identity,
            blocks: vec![Vec::new(); n],
            identity_records: vec![None; n],
        };
        let start_cols: Vec<Option<usize>> = streaming
            .aggregates
            .iter()
            .map(|a| role_column(&a.layout, ColumnRole::StartTime))
            .collect();
        for (agg, columns, order) in records {
            let Some(def) = streaming.aggregates.get(agg) else {
                continue;
            };
            match def.kind {
                StreamAggregateKind::Identity => {
                    if view.identity_records[agg].is_none() {
                        view.identity_records[agg] = Some(columns);
                    }
                }
                StreamAggregateKind::Block
                | StreamAggregateKind::SplitBlock { .. }
                | StreamAggregateKind::Activity { .. } => {
                    if let Some(Value::DateTime(start)) =
                        start_cols[agg].and_then(|c| columns.get(c))
                    {
                        view.blocks[agg].push(BlockRef {
                            start: *start,
                            order,
                            columns,
                        });
                    }
                }
                StreamAggregateKind::Variable => {}
            }
        }
        for blocks in &mut view.blocks {
            blocks.sort_by_key(|b| (b.start, b.order));
        }
        view
    }
}

/// Evaluates a window plan's anchors and windows.
pub struct WindowOperator {
    plan: Arc<WindowPlan>,
    evaluator: Evaluator,
    defaults: Vec<Vec<Value>>,
    pub errors: FieldErrors,
    /// Anchors whose row was dropped (Blurr dialect: empty or short window).
    pub dropped_anchors: u64,
    /// Anchors skipped because their day already had `Max` rows.
    pub over_max: u64,
}

/// The anchor a row is computed for.
#[derive(Debug, Clone, Copy)]
struct Anchor<'a> {
    start: DateTime<Utc>,
    /// None for the virtual anchor of a live query.
    block: Option<&'a [Value]>,
    /// Live queries see no blocks after the anchor.
    live: bool,
}

struct AnchorScope<'s, 'a> {
    plan: &'s WindowPlan,
    view: &'s IdentityView<'a>,
    anchor: Anchor<'a>,
    /// Records of the window spec's aggregates computed so far for this anchor.
    rows: &'s [Vec<Value>],
    /// For the Window aggregate being evaluated: `source.<column>` lists.
    lists: &'s [Value],
}

impl Scope for AnchorScope<'_, '_> {
    fn load(&self, slot: Slot) -> Value {
        let at = |cols: Option<&[Value]>, column: u16| {
            cols.and_then(|c| c.get(column as usize))
                .cloned()
                .unwrap_or(Value::Null)
        };
        match slot {
            Slot::Identity => Value::Str(Str::from(self.view.identity.clone())),
            Slot::Anchor { column } => at(self.anchor.block, column),
            Slot::Stream { agg, column } => {
                if agg == self.plan.anchor_aggregate {
                    at(self.anchor.block, column)
                } else {
                    at(
                        self.view
                            .identity_records
                            .get(agg as usize)
                            .copied()
                            .flatten(),
                        column,
                    )
                }
            }
            Slot::Field { agg, column } => {
                at(self.rows.get(agg as usize).map(Vec::as_slice), column)
            }
            Slot::WindowSource { column } => self
                .lists
                .get(column as usize)
                .cloned()
                .unwrap_or(Value::Null),
            Slot::Time => Value::DateTime(self.anchor.start),
            Slot::SourcePath(_) | Slot::WholeSource => Value::Null,
        }
    }
}

/// Where one window aggregate's windows lie among an identity's blocks (sorted by start), for
/// anchors taken in time order. Each bound only moves forward as the anchor's start does, so
/// all the anchors of an identity cost one pass over its blocks per window (two pointers)
/// rather than a search per anchor. An anchor earlier than the one before starts the pass
/// again, so any order of anchors gives the right windows.
#[derive(Debug, Clone, Default)]
pub struct WindowCursor {
    /// The start of the anchor the bounds were last moved for.
    anchor: Option<DateTime<Utc>>,
    /// Blocks starting before the anchor.
    before: usize,
    /// Blocks starting at or before the anchor.
    through: usize,
    /// Blocks starting at or before a negative window's lower bound.
    lower: usize,
    /// Blocks starting before a positive window's upper bound.
    upper: usize,
}

impl WindowCursor {
    /// The blocks of `blocks` inside the window around an anchor at `t`.
    pub fn range(
        &mut self,
        blocks: &[BlockRef<'_>],
        t: DateTime<Utc>,
        window_type: WindowType,
        value: i64,
    ) -> std::ops::Range<usize> {
        if self.anchor.is_some_and(|previous| t < previous) {
            *self = WindowCursor::default();
        }
        self.anchor = Some(t);
        let span = |units: i64| match window_type {
            WindowType::Day => TimeDelta::try_days(units),
            WindowType::Hour => TimeDelta::try_hours(units),
            WindowType::Count => None,
        };
        match (window_type, value < 0) {
            (WindowType::Count, true) => {
                let before = advance(&mut self.before, blocks, |start| start < t);
                before.saturating_sub(value.unsigned_abs() as usize)..before
            }
            (WindowType::Count, false) => {
                let through = advance(&mut self.through, blocks, |start| start <= t);
                through..through.saturating_add(value as usize).min(blocks.len())
            }
            (_, true) => {
                let before = advance(&mut self.before, blocks, |start| start < t);
                let lower = match span(value.saturating_neg()).and_then(|d| t.checked_sub_signed(d))
                {
                    Some(low) => advance(&mut self.lower, blocks, |start| start <= low),
                    None => 0,
                };
                lower.min(before)..before
            }
            (_, false) => {
                let through = advance(&mut self.through, blocks, |start| start <= t);
                let upper = match span(value).and_then(|d| t.checked_add_signed(d)) {
                    Some(high) => advance(&mut self.upper, blocks, |start| start < high),
                    None => blocks.len(),
                };
                through..upper.max(through)
            }
        }
    }
}

/// Moves `at` past the blocks from `at` on whose start satisfies `holds`; the new `at`.
fn advance(
    at: &mut usize,
    blocks: &[BlockRef<'_>],
    holds: impl Fn(DateTime<Utc>) -> bool,
) -> usize {
    while blocks.get(*at).is_some_and(|b| holds(b.start)) {
        *at += 1;
    }
    *at
}

impl WindowOperator {
    pub fn new(plan: Arc<WindowPlan>) -> Self {
        let defaults = plan
            .aggregates
            .iter()
            .map(|a| a.layout.defaults())
            .collect();
        WindowOperator {
            evaluator: Evaluator::new(plan.dialect),
            errors: FieldErrors::new(plan.field_names.len()),
            plan,
            defaults,
            dropped_anchors: 0,
            over_max: 0,
        }
    }

    pub fn plan(&self) -> &Arc<WindowPlan> {
        &self.plan
    }

    /// Appends one row per anchor of this identity to `out`, in anchor order.
    pub fn rows(&mut self, view: &IdentityView<'_>, out: &mut Vec<Row>) {
        let anchors = view
            .blocks
            .get(self.plan.anchor_aggregate as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut day: Option<(NaiveDate, u32)> = None;
        let mut cursors = vec![WindowCursor::default(); self.plan.aggregates.len()];
        for block in anchors {
            let anchor = Anchor {
                start: block.start,
                block: Some(block.columns),
                live: false,
            };
            if !self.is_anchor(view, anchor) {
                continue;
            }
            let date = block.start.date_naive();
            let used = match day {
                Some((d, n)) if d == date => n,
                _ => 0,
            };
            if self.plan.max_per_day.is_some_and(|max| used >= max) {
                self.over_max += 1;
                continue;
            }
            match self.row(view, anchor, &mut cursors) {
                Some(row) => {
                    out.push(row);
                    day = Some((date, used + 1));
                }
                None => self.dropped_anchors += 1,
            }
        }
    }

    /// Live features: the row of a virtual anchor starting at `at`. Windows after the anchor
    /// are empty (they are labels); blocks starting at or after `at` are in no window.
    /// Always returns a row, whatever the dialect, since a live query must answer.
    pub fn row_at(&mut self, view: &IdentityView<'_>, at: DateTime<Utc>) -> Row {
        self.row_anchored(view, at, None)
    }

    /// Live features of a training row anchored on a block starting at `at` whose columns are
    /// `block` (in the anchor aggregate's layout): `anchor.<field>` reads them, and the windows
    /// are those of [`WindowOperator::row_at`]. The block need not be stored: a backend that
    /// scores an offer in the session it is about to start passes the session's would-be
    /// columns. The anchor condition and `Max` are not checked: the caller names the anchor.
    pub fn row_anchored(
        &mut self,
        view: &IdentityView<'_>,
        at: DateTime<Utc>,
        block: Option<&[Value]>,
    ) -> Row {
        let anchor = Anchor {
            start: at,
            block,
            live: true,
        };
        let mut cursors = vec![WindowCursor::default(); self.plan.aggregates.len()];
        self.evaluate(view, anchor, false, &mut cursors)
            .unwrap_or_else(|| Row {
                identity: view.identity.clone(),
                anchor_time: at,
                values: vec![Value::Null; self.plan.field_names.len()],
            })
    }

    fn is_anchor(&mut self, view: &IdentityView<'_>, anchor: Anchor<'_>) -> bool {
        let scope = AnchorScope {
            plan: &self.plan,
            view,
            anchor,
            rows: &[],
            lists: &[],
        };
        self.evaluator.eval_bool(&self.plan.anchor, &scope)
    }

    fn row(
        &mut self,
        view: &IdentityView<'_>,
        anchor: Anchor<'_>,
        cursors: &mut [WindowCursor],
    ) -> Option<Row> {
        let drop_incomplete = self.plan.dialect == Dialect::Blurr;
        self.evaluate(view, anchor, drop_incomplete, cursors)
    }

    /// `None` when `drop_incomplete` and a window is empty or a count window is short.
    /// `cursors`: one per aggregate of the plan, kept from the identity's earlier anchors.
    fn evaluate(
        &mut self,
        view: &IdentityView<'_>,
        anchor: Anchor<'_>,
        drop_incomplete: bool,
        cursors: &mut [WindowCursor],
    ) -> Option<Row> {
        let plan = self.plan.clone();
        let mut rows: Vec<Vec<Value>> = Vec::with_capacity(plan.aggregates.len());
        let mut lists: Vec<Value> = Vec::new();
        let native = plan.dialect == Dialect::Native;
        for (wi, agg) in plan.aggregates.iter().enumerate() {
            lists.clear();
            if let WindowAggregateKind::Window {
                window_type,
                value,
                source,
                used_columns,
            } = &agg.kind
            {
                let blocks = view
                    .blocks
                    .get(*source as usize)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let range = match cursors.get_mut(wi) {
                    Some(cursor) if !(anchor.live && *value > 0) => {
                        cursor.range(blocks, anchor.start, *window_type, *value)
                    }
                    _ => 0..0,
                };
                let short = *window_type == WindowType::Count
                    && range.len() < value.unsigned_abs() as usize;
                if drop_incomplete && (range.is_empty() || short) {
                    return None;
                }
                let width = used_columns
                    .iter()
                    .map(|c| *c as usize + 1)
                    .max()
                    .unwrap_or(0);
                lists.resize(width, Value::Null);
                for &column in used_columns {
                    let items = blocks[range.clone()]
                        .iter()
                        .map(|b| {
                            b.columns
                                .get(column as usize)
                                .cloned()
                                .unwrap_or(Value::Null)
                        })
                        .collect();
                    lists[column as usize] = Value::list(items);
                }
            }
            // The record joins `rows` before its fields are evaluated, so a later field sees
            // the values earlier fields of the same aggregate just set (as in streaming).
            rows.push(self.defaults[wi].clone());
            for f in &agg.fields {
                let result = {
                    let scope = AnchorScope {
                        plan: &plan,
                        view,
                        anchor,
                        rows: &rows,
                        lists: &lists,
                    };
                    if let Some(when) = &f.when
                        && !self.evaluator.eval_bool(when, &scope)
                    {
                        continue;
                    }
                    // A native row's columns are nullable: a null value (`last(...)` of an
                    // empty window) is the field's value, not a failed conversion.
                    self.evaluator.eval(&f.value, &scope).and_then(|v| match v {
                        Value::Null if native => Ok(v),
                        v => convert(v, f.ty, plan.dialect),
                    })
                };
                let Some(slot) = rows
                    .last_mut()
                    .and_then(|record| record.get_mut(f.column as usize))
                else {
                    continue;
                };
                match result {
                    Ok(v) => *slot = v,
                    Err(e) => {
                        self.errors.record(f.error_id, || e.to_string());
                        if native {
                            *slot = Value::Null;
                        }
                    }
                }
            }
        }
        let mut values = Vec::with_capacity(plan.field_names.len());
        for (agg, record) in plan.aggregates.iter().zip(&rows) {
            for f in &agg.fields {
                values.push(
                    record
                        .get(f.column as usize)
                        .cloned()
                        .unwrap_or(Value::Null),
                );
            }
        }
        Some(Row {
            identity: view.identity.clone(),
            anchor_time: anchor.start,
            values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(starts: &[i64]) -> Vec<BlockRef<'static>> {
        starts
            .iter()
            .enumerate()
            .map(|(i, s)| BlockRef {
                start: DateTime::from_timestamp(*s, 0).unwrap_or_default(),
                order: i as u64,
                columns: &[],
            })
            .collect()
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap_or_default()
    }

    const DAY: i64 = 86_400;

    /// One window, looked up without earlier anchors.
    fn window_range(
        blocks: &[BlockRef<'_>],
        t: DateTime<Utc>,
        window_type: WindowType,
        value: i64,
    ) -> std::ops::Range<usize> {
        WindowCursor::default().range(blocks, t, window_type, value)
    }

    /// The window by its definition (docs/language.md section 11), block by block: what the cursor's
    /// bounds must find.
    fn window_by_definition(
        blocks: &[BlockRef<'_>],
        t: i64,
        window_type: WindowType,
        value: i64,
    ) -> Vec<usize> {
        let starts: Vec<i64> = blocks.iter().map(|b| b.start.timestamp()).collect();
        let unit = if window_type == WindowType::Day {
            DAY
        } else {
            3_600
        };
        let mut members: Vec<usize> = (0..starts.len())
            .filter(|&i| match (window_type, value < 0) {
                (WindowType::Count, true) => starts[i] < t,
                (WindowType::Count, false) => starts[i] > t,
                (_, true) => t + value * unit < starts[i] && starts[i] < t,
                (_, false) => t < starts[i] && starts[i] < t + value * unit,
            })
            .collect();
        if window_type == WindowType::Count {
            let n = value.unsigned_abs() as usize;
            if value < 0 {
                members = members.split_off(members.len().saturating_sub(n));
            } else {
                members.truncate(n);
            }
        }
        members
    }

    /// Anchors in time order, then one out of order, over pseudo-random sorted blocks with
    /// many equal starts: every window of every type and direction is the one its definition
    /// gives.
    #[test]
    fn cursor_windows_equal_their_definition_for_anchors_in_any_order() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        for _ in 0..200 {
            let mut starts: Vec<i64> = (0..next(40))
                .map(|_| (next(30) * 6 * 3_600) as i64)
                .collect();
            starts.sort_unstable();
            let b = blocks(&starts);
            let mut anchors: Vec<i64> = (0..next(12)).map(|_| (next(200) * 3_600) as i64).collect();
            anchors.sort_unstable();
            // An anchor earlier than the one before it, as a caller may send.
            anchors.push((next(200) * 3_600) as i64);
            for (window_type, values) in [
                (WindowType::Day, [-7, -1, 1, 7]),
                (WindowType::Hour, [-12, -1, 1, 12]),
                (WindowType::Count, [-3, -1, 1, 3]),
            ] {
                for value in values {
                    let mut cursor = WindowCursor::default();
                    for &anchor in &anchors {
                        let range = cursor.range(&b, t(anchor), window_type, value);
                        assert_eq!(
                            range.collect::<Vec<_>>(),
                            window_by_definition(&b, anchor, window_type, value),
                            "{window_type:?} {value} at {anchor} over {starts:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn day_windows_exclude_both_bounds_and_the_anchor() {
        let anchor = 10 * DAY;
        // exactly 7 days before, one second inside, the anchor itself, a tie at the anchor,
        // one second inside after, exactly 7 days after.
        let b = blocks(&[
            anchor - 7 * DAY,
            anchor - 7 * DAY + 1,
            anchor,
            anchor,
            anchor + 7 * DAY - 1,
            anchor + 7 * DAY,
        ]);
        assert_eq!(window_range(&b, t(anchor), WindowType::Day, -7), 1..2);
        assert_eq!(window_range(&b, t(anchor), WindowType::Day, 7), 4..5);
    }

    #[test]
    fn hour_windows_use_hours() {
        let b = blocks(&[0, 3_599, 3_600, 7_000]);
        assert_eq!(window_range(&b, t(3_600), WindowType::Hour, -1), 1..2);
        assert_eq!(window_range(&b, t(3_600), WindowType::Hour, 1), 3..4);
    }

    #[test]
    fn count_windows_take_nearest_blocks_strictly_before_or_after() {
        let b = blocks(&[10, 20, 30, 30, 40, 50]);
        assert_eq!(window_range(&b, t(30), WindowType::Count, -1), 1..2);
        assert_eq!(window_range(&b, t(30), WindowType::Count, -5), 0..2);
        assert_eq!(window_range(&b, t(30), WindowType::Count, 1), 4..5);
        assert_eq!(window_range(&b, t(30), WindowType::Count, 9), 4..6);
        assert_eq!(window_range(&b, t(10), WindowType::Count, -1), 0..0);
    }
}

#[cfg(test)]
mod live_tests {
    //! Live features against training rows, over blocks built by the streaming operator from
    //! specs compiled by the real loader and compiler.

    use dtc_store::{BlockStore, MemoryStore, StoredRecord, WriteBatch};

    use super::*;
    use crate::batch::{view_of_state, view_of_stored};
    use crate::event::{Admission, Admitter};
    use crate::streaming::{IdentityState, StreamingOperator};
    use crate::testkit::catalog;

    const STREAMING: &str = "
Type: Streaming
Version: '2026-11-01'
Name: games
Identity: source.user
Time: parse_time(source.time)
Aggregates:
  - Type: Identity
    Name: user
    When: source.country is not None
    Fields:
      - Name: country
        Value: source.country
  - Type: Block
    Name: session
    Dimensions:
      - Name: session_id
        Value: source.session
    Fields:
      - Name: games
        Type: integer
        When: source.event == 'game'
        Value: session.games + 1
      - Name: spend
        Type: float
        When: source.event == 'purchase'
        Value: session.spend + float(source.amount)
      - Name: offer
        When: source.event == 'offer'
        Value: source.offer
";

    /// Features (windows before the anchor, and variables over them) and one label window.
    const WINDOW: &str = "
Type: Window
Version: '2026-11-01'
Name: offers
SourceDTC: games
Anchor:
  Condition: games.session.offer != ''
Aggregates:
  - Type: Window
    Name: last2
    WindowType: count
    WindowValue: -2
    Source: games.session
    Fields:
      - Name: games
        Type: integer
        Value: sum(source.games)
      - Name: first
        Value: source.session_id[0]
  - Type: Window
    Name: week
    WindowType: day
    WindowValue: -7
    Source: games.session
    Fields:
      - Name: spend
        Type: float
        Value: sum(source.spend)
  - Type: Window
    Name: recent
    WindowType: hour
    WindowValue: -30
    Source: games.session
    Fields:
      - Name: sessions
        Type: integer
        Value: len(source.session_id)
  - Type: Variable
    Name: mix
    Fields:
      - Name: spend_per_game
        Type: float
        Value: week.spend / last2.games
      - Name: country
        Value: games.user.country
  - Type: Window
    Name: label
    WindowType: day
    WindowValue: 7
    Source: games.session
    Fields:
      - Name: spend
        Type: float
        Value: sum(source.spend)
";

    fn window_plan() -> Arc<WindowPlan> {
        match catalog(&[STREAMING, WINDOW]).window.first() {
            Some(plan) => plan.clone(),
            None => panic!("the window spec did not compile"),
        }
    }

    fn s(text: impl Into<Str>) -> Value {
        Value::Str(text.into())
    }

    /// Twelve sessions about 20 hours apart: a few games, purchases, an offer in every other
    /// one, and one session starting at the same time as an anchor.
    fn events() -> Vec<Vec<(&'static str, Value)>> {
        // 2024-01-01T00:00:00Z
        let base = DateTime::from_timestamp(1_704_067_200, 0).unwrap_or_default();
        let at = |hours: i64, minutes: i64| {
            Value::DateTime(base + TimeDelta::hours(hours) + TimeDelta::minutes(minutes))
        };
        let mut events = vec![vec![
            ("user", s("u1")),
            ("time", at(0, 0)),
            ("session", s("s0")),
            ("event", s("game")),
            ("country", s("DE")),
        ]];
        for i in 0..12i64 {
            let session = s(format!("s{i}"));
            let start = i * 20;
            if i % 2 == 1 {
                events.push(vec![
                    ("user", s("u1")),
                    ("time", at(start, 0)),
                    ("session", session.clone()),
                    ("event", s("offer")),
                    ("offer", s("gems")),
                ]);
            }
            for g in 0..(i % 3) {
                events.push(vec![
                    ("user", s("u1")),
                    ("time", at(start, g + 1)),
                    ("session", session.clone()),
                    ("event", s("game")),
                ]);
            }
            events.push(vec![
                ("user", s("u1")),
                ("time", at(start, 30)),
                ("session", session),
                ("event", s("purchase")),
                ("amount", s(format!("{}.25", i % 4))),
            ]);
        }
        events.push(vec![
            ("user", s("u1")),
            ("time", at(60, 0)),
            ("session", s("tie")),
            ("event", s("game")),
        ]);
        // A batch run applies an identity's events in time order.
        events.sort_by_key(|e| match e.get(1) {
            Some((_, Value::DateTime(time))) => *time,
            _ => DateTime::<Utc>::MIN_UTC,
        });
        for event in &mut events {
            if let Some((_, time)) = event.get_mut(1)
                && let Value::DateTime(t) = time
            {
                *time = s(t.to_rfc3339());
            }
        }
        events
    }

    /// Column indices of a row's features: fields of windows before the anchor and of
    /// variables (which here read only those windows and the identity record).
    fn feature_columns(plan: &WindowPlan) -> Vec<usize> {
        let mut columns = Vec::new();
        let mut next = 0;
        for agg in &plan.aggregates {
            let feature = match &agg.kind {
                WindowAggregateKind::Window { value, .. } => *value < 0,
                WindowAggregateKind::Variable => true,
            };
            for _ in &agg.fields {
                if feature {
                    columns.push(next);
                }
                next += 1;
            }
        }
        columns
    }

    /// Applies `events` to `state` in the order given, as a batch run applies an identity's
    /// events once sorted.
    fn apply(
        operator: &mut StreamingOperator,
        state: &mut IdentityState,
        events: Vec<Vec<(&'static str, Value)>>,
    ) {
        let streaming = operator.plan().clone();
        let mut admitter = Admitter::new(streaming.clone());
        for (seq, fields) in (1u64..).zip(events) {
            let values = streaming
                .source_paths
                .iter()
                .map(|path| {
                    fields
                        .iter()
                        .find(|(k, _)| path.0.first().is_some_and(|p| p == k))
                        .map_or(Value::Null, |(_, v)| v.clone())
                })
                .collect();
            match admitter.admit(values, None) {
                Admission::Accepted { event, .. } => operator.apply(state, &event),
                other => panic!("event {seq} not admitted: {other:?}"),
            }
        }
    }

    #[test]
    fn live_features_at_an_anchor_start_equal_the_training_row() {
        let plan = window_plan();
        let mut operator = StreamingOperator::new(plan.streaming.clone());
        let mut state = operator.new_state("u1".into());
        apply(&mut operator, &mut state, events());
        let view = view_of_state(&plan, &state);
        let mut window = WindowOperator::new(plan.clone());
        let mut rows = Vec::new();
        window.rows(&view, &mut rows);
        assert_eq!(rows.len(), 6, "one row per offer session");

        let features = feature_columns(&plan);
        let label = plan.field_names.len() - 1;
        assert_eq!(
            features.len(),
            label,
            "every column but the label is a feature"
        );
        let mut labels_seen = 0;
        for row in &rows {
            let live = window.row_at(&view, row.anchor_time);
            assert_eq!(live.anchor_time, row.anchor_time);
            for &c in &features {
                assert_eq!(
                    live.values[c], row.values[c],
                    "{} at {}",
                    plan.field_names[c], row.anchor_time
                );
            }
            // The label looks after the anchor: never served live.
            assert_eq!(live.values[label], Value::Float(0.0));
            if row.values[label] != Value::Float(0.0) {
                labels_seen += 1;
            }
        }
        assert!(labels_seen > 0, "the labels must not all be empty");
        // Not a vacuous comparison: the windows before the anchors hold blocks.
        let spend = plan.field_names.iter().position(|n| n == "week.spend");
        assert!(
            rows.iter()
                .filter_map(|r| spend.and_then(|c| r.values.get(c)))
                .any(|v| matches!(v, Value::Float(x) if *x > 0.0)),
            "{rows:?}"
        );
    }

    /// A feature reading the anchor block: served live only when the request names the block.
    const ANCHORED: &str = "
Type: Window
Version: '2026-11-01'
Name: anchored
SourceDTC: games
Anchor:
  Condition: games.session.offer != ''
Aggregates:
  - Type: Window
    Name: last
    WindowType: count
    WindowValue: -1
    Source: games.session
    Fields:
      - Name: games
        Type: integer
        Value: source.games[0]
  - Type: Variable
    Name: here
    Fields:
      - Name: offer
        Value: anchor.offer + '@' + games.session.session_id
      - Name: games_so_far
        Type: integer
        Value: anchor.games + last.games
";

    #[test]
    fn live_rows_anchored_on_a_block_equal_the_training_row_with_its_anchor_fields() {
        let plan = match catalog(&[STREAMING, ANCHORED]).window.first() {
            Some(plan) => plan.clone(),
            None => panic!("the window spec did not compile"),
        };
        let mut operator = StreamingOperator::new(plan.streaming.clone());
        let mut state = operator.new_state("u1".into());
        apply(&mut operator, &mut state, events());
        let view = view_of_state(&plan, &state);
        let mut window = WindowOperator::new(plan.clone());
        let mut rows = Vec::new();
        window.rows(&view, &mut rows);
        assert_eq!(rows.len(), 6);
        let anchors: Vec<&BlockRef<'_>> = view.blocks[plan.anchor_aggregate as usize]
            .iter()
            .filter(|b| b.columns.iter().any(|v| *v == s("gems")))
            .collect();
        assert_eq!(anchors.len(), rows.len());
        for (row, block) in rows.iter().zip(anchors) {
            let live = window.row_anchored(&view, block.start, Some(block.columns));
            assert_eq!(&live, row);
            assert!(matches!(&live.values[1], Value::Str(o) if o.starts_with("gems@s")));
            // Without the block, the anchor's fields are unknown.
            let bare = window.row_at(&view, block.start);
            assert_eq!(bare.values[0], row.values[0]);
            assert_eq!(bare.values[1], Value::Null);
        }
    }

    /// An event of `u1`: a game, or an offer (which makes the session an anchor).
    fn event(time: &str, session: &str, kind: &str) -> Vec<(&'static str, Value)> {
        let mut event = vec![
            ("user", s("u1")),
            ("time", s(time)),
            ("session", s(session)),
            ("event", s(kind)),
        ];
        if kind == "offer" {
            event.push(("offer", s("gems")));
        }
        event
    }

    /// The training rows of `view`, after checking that the live row at each anchor has the
    /// same features.
    fn rows_and_live_rows_agree(plan: &Arc<WindowPlan>, view: &IdentityView<'_>) -> Vec<Row> {
        let mut window = WindowOperator::new(plan.clone());
        let mut rows = Vec::new();
        window.rows(view, &mut rows);
        for row in &rows {
            let live = window.row_at(view, row.anchor_time);
            for c in feature_columns(plan) {
                assert_eq!(live.values[c], row.values[c], "{}", plan.field_names[c]);
            }
        }
        rows
    }

    /// What a run writes to the store for `state`.
    fn write(store: &MemoryStore, plan: &WindowPlan, state: IdentityState) {
        let mut puts = Vec::new();
        state.into_dirty_records(&plan.streaming, &mut puts);
        let written = store.write(WriteBatch {
            puts,
            ..WriteBatch::default()
        });
        assert!(written.is_ok(), "{written:?}");
    }

    fn load(store: &MemoryStore) -> Vec<StoredRecord> {
        match store.load_identity("u1") {
            Ok(stored) => stored,
            Err(e) => panic!("load: {e}"),
        }
    }

    /// `last2.first` of each row: the first of the two sessions before the anchor.
    fn firsts(plan: &WindowPlan, rows: &[Row]) -> Vec<Value> {
        let column = plan.field_names.iter().position(|n| n == "last2.first");
        rows.iter()
            .map(|r| column.map_or(Value::Null, |c| r.values[c].clone()))
            .collect()
    }

    /// Regression: blocks read back from a store, or loaded by a later run, broke ties on
    /// `_start_time` by their key (dimension values) instead of by their first event, so rows
    /// over the store differed from the rows of the run that created the blocks.
    #[test]
    fn stored_blocks_with_equal_start_times_keep_first_event_order() {
        let plan = window_plan();
        // `z` and `m` start together; `z`'s first event came first, `m` has the smaller key.
        let first = vec![
            event("2024-01-01T10:00:00Z", "z", "game"),
            event("2024-01-01T10:00:00Z", "m", "game"),
            event("2024-01-01T12:00:00Z", "o1", "offer"),
        ];
        // A later run: `a`, the smallest key of all, ties with them and came last.
        let second = vec![
            event("2024-01-01T10:00:00Z", "a", "game"),
            event("2024-01-01T14:00:00Z", "o2", "offer"),
        ];
        let mut operator = StreamingOperator::new(plan.streaming.clone());

        let mut state = operator.new_state("u1".into());
        apply(&mut operator, &mut state, first.clone());
        let created = rows_and_live_rows_agree(&plan, &view_of_state(&plan, &state));
        assert_eq!(firsts(&plan, &created), vec![s("z")]);
        let store = MemoryStore::new();
        write(&store, &plan, state);
        let stored = load(&store);
        let read_back =
            rows_and_live_rows_agree(&plan, &view_of_stored(&plan, "u1".into(), &stored));
        assert_eq!(read_back, created);

        // The later run continues the ordinals: its rows are those of one run over all events.
        let mut events = [first, second.clone()].concat();
        // A run over all of them applies them in time order, equal times in input order.
        events.sort_by_key(|event| match event.get(1) {
            Some((_, Value::Str(time))) => time.to_string(),
            _ => String::new(),
        });
        let mut all = operator.new_state("u1".into());
        apply(&mut operator, &mut all, events);
        let expected = rows_and_live_rows_agree(&plan, &view_of_state(&plan, &all));
        assert_eq!(firsts(&plan, &expected), vec![s("m"), s("a")]);
        let mut state = operator.load_state("u1".into(), stored);
        apply(&mut operator, &mut state, second.clone());
        assert_eq!(
            rows_and_live_rows_agree(&plan, &view_of_state(&plan, &state)),
            expected
        );
        write(&store, &plan, state);
        let stored = load(&store);
        assert_eq!(
            rows_and_live_rows_agree(&plan, &view_of_stored(&plan, "u1".into(), &stored)),
            expected
        );

        // Records of a store written before ordinals were kept (all 0) tie by key, the same
        // way in a later run's state as read back after it.
        let old = MemoryStore::new();
        let unknown: Vec<StoredRecord> = stored
            .into_iter()
            .filter(|r| !matches!(r.key.dims.first(), Some(Value::Str(d)) if ["a", "o2"].contains(&&**d)))
            .map(|r| StoredRecord { order: 0, ..r })
            .collect();
        let written = old.write(WriteBatch {
            puts: unknown.clone(),
            ..WriteBatch::default()
        });
        assert!(written.is_ok(), "{written:?}");
        let mut state = operator.load_state("u1".into(), unknown);
        apply(&mut operator, &mut state, second);
        let in_state = rows_and_live_rows_agree(&plan, &view_of_state(&plan, &state));
        // Key order `m` before `z`, then `a`, created in this run.
        assert_eq!(firsts(&plan, &in_state), vec![s("z"), s("a")]);
        write(&old, &plan, state);
        let stored = load(&old);
        assert_eq!(
            rows_and_live_rows_agree(&plan, &view_of_stored(&plan, "u1".into(), &stored)),
            in_state
        );
    }
}
