//! The compiled, typed plan: what the engine executes.
//!
//! Every name of the spec is bound here to a [`Slot`]; functions and methods are enum variants.
//! The engine never looks a name up by string while processing events.

use std::sync::Arc;

pub use dtc_lang::syntax::{Dialect, FieldType, WindowType};

use crate::value::{Str, Value};

/// Index of an aggregate in its plan's `aggregates`.
pub type AggId = u16;
/// Index of a column in an aggregate's record layout ([`AggregateLayout::columns`]).
pub type ColumnId = u16;

/// Where a compiled expression reads a name from. The engine's [`crate::eval::Scope`]
/// implementation answers these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// Streaming: one projected path of the raw event (`source.a.b`, `source['k']`), an index
    /// into [`StreamingPlan::source_paths`]. Missing in the event = null.
    SourcePath(u32),
    /// Streaming: the whole event as a map (only when the spec uses bare `source`).
    WholeSource,
    /// Streaming: the event time.
    Time,
    /// The identity string.
    Identity,
    /// The current record of an aggregate of the same plan: streaming aggregates, or earlier
    /// window/variable aggregates of a window plan (their row values for this anchor).
    Field { agg: AggId, column: ColumnId },
    /// Window: a column of the anchor block (`anchor.offer_type`).
    Anchor { column: ColumnId },
    /// Window: `<streaming>.<aggregate>.<field>`: the anchor block when `agg` is the anchor's
    /// aggregate, the identity record when `agg` is an Identity aggregate.
    Stream { agg: AggId, column: ColumnId },
    /// Window: inside a Window aggregate, `source.<field>`: the list of that column's values over
    /// the window's blocks in time order.
    WindowSource { column: ColumnId },
}

/// A compiled expression.
#[derive(Debug, Clone, PartialEq)]
pub enum CExpr {
    Const(Value),
    Load(Slot),
    /// A comprehension variable, by depth index into the evaluator's locals.
    Local(u16),
    List(Vec<CExpr>),
    Tuple(Vec<CExpr>),
    Set(Vec<CExpr>),
    Dict(Vec<(CExpr, CExpr)>),
    Neg(Box<CExpr>),
    Pos(Box<CExpr>),
    Not(Box<CExpr>),
    /// `a + b - c`: the first operand, then each operator and operand, applied from the left.
    /// Flat, like the syntax tree's chain: evaluating a long chain does not recurse per operand.
    Binary(Box<CExpr>, Vec<(dtc_lang::ast::BinOp, CExpr)>),
    /// `a and b and c`: at least two operands, evaluated until one is false.
    And(Vec<CExpr>),
    /// `a or b or c`: at least two operands, evaluated until one is true.
    Or(Vec<CExpr>),
    /// Chained comparison: `first op1 e1 op2 e2 ...`, each operand evaluated at most once.
    Compare(Box<CExpr>, Vec<(dtc_lang::ast::CmpOp, CExpr)>),
    IfElse {
        cond: Box<CExpr>,
        body: Box<CExpr>,
        orelse: Box<CExpr>,
    },
    /// Attribute of a runtime value: datetime/timedelta parts, or a key of a map
    /// (`source.a.b` past the projected part, `x.name` on a dict).
    Attr(Box<CExpr>, Attribute),
    Index(Box<CExpr>, Box<CExpr>),
    Slice {
        value: Box<CExpr>,
        lower: Option<Box<CExpr>>,
        upper: Option<Box<CExpr>>,
        step: Option<Box<CExpr>>,
    },
    /// A built-in function; keyword arguments are already placed (see [`Builtin`]).
    Call(Builtin, Vec<CExpr>),
    /// A method of a runtime value: receiver, method, arguments.
    Method(Box<CExpr>, Method, Vec<CExpr>),
    /// `[elt for ... in ... if ...]`. Each generator binds `targets.len()` locals starting at
    /// `first_local` (several targets = tuple unpacking).
    ListComp {
        elt: Box<CExpr>,
        generators: Vec<CGenerator>,
    },
}

impl CExpr {
    /// Calls `f` on this expression and every expression inside it.
    pub fn visit(&self, f: &mut dyn FnMut(&CExpr)) {
        f(self);
        match self {
            CExpr::Const(_) | CExpr::Load(_) | CExpr::Local(_) => {}
            CExpr::List(items)
            | CExpr::Tuple(items)
            | CExpr::Set(items)
            | CExpr::Call(_, items) => items.iter().for_each(|e| e.visit(f)),
            CExpr::Dict(pairs) => pairs.iter().for_each(|(k, v)| {
                k.visit(f);
                v.visit(f);
            }),
            CExpr::Neg(e) | CExpr::Pos(e) | CExpr::Not(e) | CExpr::Attr(e, _) => e.visit(f),
            CExpr::Binary(first, rest) => {
                first.visit(f);
                rest.iter().for_each(|(_, e)| e.visit(f));
            }
            CExpr::And(items) | CExpr::Or(items) => items.iter().for_each(|e| e.visit(f)),
            CExpr::Index(a, b) => {
                a.visit(f);
                b.visit(f);
            }
            CExpr::Compare(first, rest) => {
                first.visit(f);
                rest.iter().for_each(|(_, e)| e.visit(f));
            }
            CExpr::IfElse { cond, body, orelse } => {
                cond.visit(f);
                body.visit(f);
                orelse.visit(f);
            }
            CExpr::Slice {
                value,
                lower,
                upper,
                step,
            } => {
                value.visit(f);
                for e in [lower, upper, step].into_iter().flatten() {
                    e.visit(f);
                }
            }
            CExpr::Method(receiver, _, args) => {
                receiver.visit(f);
                args.iter().for_each(|e| e.visit(f));
            }
            CExpr::ListComp { elt, generators } => {
                elt.visit(f);
                for g in generators {
                    g.iter.visit(f);
                    g.ifs.iter().for_each(|e| e.visit(f));
                }
            }
        }
    }
}

/// One `for` clause of a comprehension.
///
/// Locals are one stack per expression, numbered in binding order: a generator's targets take
/// the indices from `first_local` on (the number of locals bound by the enclosing generators
/// and comprehensions), so `[x + y for x in a for y in x]` binds `x` = 0 and `y` = 1, and a
/// comprehension nested in `elt` continues after its parent's locals. A variable shadowing an
/// outer one gets a new index; `CExpr::Local(i)` always names the innermost binding. Indices are
/// reused by sibling comprehensions once the previous one is finished.
#[derive(Debug, Clone, PartialEq)]
pub struct CGenerator {
    pub first_local: u16,
    pub targets: u16,
    pub iter: CExpr,
    pub ifs: Vec<CExpr>,
}

/// Attributes that are not method calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attribute {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Microsecond,
    /// timedelta.days
    Days,
    /// timedelta.seconds
    Seconds,
    /// timedelta.microseconds
    Microseconds,
    /// A map key (`value.name` on a dict); also used for the names above when the receiver
    /// turns out to be a map at run time.
    Key(Arc<str>),
}

/// Built-in functions (docs/language.md section 7.1) and the Python imports they stand for
/// (section 8).
///
/// Argument conventions, after the resolver placed keyword arguments:
/// - `Round`: (x) or (x, ndigits)
/// - `Range`: 1 to 3 ints; `Min`/`Max`: one iterable or 2+ values
/// - `Sorted`: (iterable) or (iterable, reverse: bool); `Enumerate`: (iterable) or (iterable, start)
/// - `First` / `Last`: (iterable) or (iterable, default)
/// - `ParseTime`: (s) or (s, strftime format); `Strptime`: (s, fmt)
/// - `FromTimestamp`: (seconds) — a timezone argument is accepted and dropped by the resolver
/// - `TimeDelta`: exactly 7 args in Python's order
///   (days, seconds, microseconds, milliseconds, minutes, hours, weeks), missing ones `0`
/// - `DateTime`: (year, month, day, hour, minute, second, microsecond), missing ones `0`
/// - `Date`: (year, month, day) → a datetime at midnight UTC
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    Len,
    Count,
    Sum,
    Min,
    Max,
    Abs,
    Round,
    Int,
    Float,
    Str,
    Bool,
    List,
    Set,
    Dict,
    Tuple,
    Sorted,
    Reversed,
    Any,
    All,
    Zip,
    Range,
    Enumerate,
    First,
    Last,
    ParseTime,
    Strptime,
    FromTimestamp,
    UtcNow,
    TimeDelta,
    DateTime,
    Date,
    MathFloor,
    MathCeil,
    MathSqrt,
    MathLog,
    MathExp,
    MathPow,
}

/// Methods on runtime values (docs/language.md section 7.2).
///
/// Argument counts the resolver lets through (no keyword arguments): `Split` 0–2, `Strip` /
/// `LStrip` / `RStrip` 0–1, `Replace` 2–3, `Find` 1–3, `Get` 1–2, `Union` any; `StartsWith`,
/// `EndsWith`, `Join`, `Append`, `Extend`, `Index`, `Add` exactly 1; the others none.
/// `Date` returns a datetime at midnight UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    // strings
    Split,
    Strip,
    LStrip,
    RStrip,
    Lower,
    Upper,
    StartsWith,
    EndsWith,
    Replace,
    Join,
    Find,
    // lists (append/extend return the list itself, as Blurr relied on)
    Append,
    Extend,
    Index,
    // maps
    Get,
    Keys,
    Values,
    Items,
    // sets
    Add,
    Union,
    // datetimes
    Date,
    Weekday,
    IsoFormat,
    Timestamp,
    // timedeltas
    TotalSeconds,
}

/// Where a field of a record layout comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// `_identity`
    Identity,
    /// `_start_time`
    StartTime,
    /// `_end_time`
    EndTime,
    /// A declared field.
    Field,
    /// A dimension field (Block / Identity with Dimensions).
    Dimension,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: FieldType,
    pub role: ColumnRole,
}

/// The columns of one aggregate's record, in Blurr's output order: injected `_identity`,
/// `_start_time`, `_end_time` (blocks only), the declared fields, then the dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateLayout {
    pub columns: Vec<Column>,
}

impl AggregateLayout {
    /// A fresh record: every column at its type's default.
    pub fn defaults(&self) -> Vec<Value> {
        self.columns
            .iter()
            .map(|c| crate::eval::default_value(c.ty))
            .collect()
    }

    pub fn column(&self, name: &str) -> Option<ColumnId> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .map(|i| i as ColumnId)
    }
}

/// A field (or dimension) with its compiled expressions.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPlan {
    pub name: String,
    pub ty: FieldType,
    /// Where the value lives in the aggregate's record.
    pub column: ColumnId,
    pub value: CExpr,
    pub when: Option<CExpr>,
    /// Index into [`StreamingPlan::field_names`] / [`WindowPlan::field_names`]: evaluation
    /// errors are counted per spec field under this id.
    pub error_id: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StreamAggregateKind {
    Identity,
    /// A Block aggregate with `Dimensions`: one block per dimension values.
    Block,
    /// A Block aggregate with `Split`: a new block starts when `split` is true for an event
    /// (docs/language.md section 3.3).
    SplitBlock {
        split: CExpr,
    },
    Activity {
        separate_by_inactive_seconds: i64,
    },
    Variable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamAggregate {
    pub name: String,
    pub kind: StreamAggregateKind,
    pub when: Option<CExpr>,
    /// The `Name` of the spec's store entry, if the aggregate named one.
    pub store: Option<String>,
    pub layout: AggregateLayout,
    /// Empty unless the aggregate has `Dimensions`.
    pub dimensions: Vec<FieldPlan>,
    pub fields: Vec<FieldPlan>,
    /// Which of `fields` an event can update.
    pub schedule: FieldSchedule,
}

/// Which fields of an aggregate an event can update, found with one read of a source path.
///
/// The `When`s of event-typed specs mostly test one source path against strings
/// (`source.event_id == 'game_end'`, `source.event_id in ['a', 'b']`, or such a test and more
/// conditions). An event's value of that path equals at most one string, so instead of testing
/// every field's `When`, the operator reads the path once and considers only the fields that can
/// be true. The `When` of every other field is false for the event, which is what evaluating it
/// would give: comparing a value with a constant cannot fail, so skipping it counts no error.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSchedule {
    /// The source path (index into [`StreamingPlan::source_paths`]) the guards test; `None`
    /// when fewer than two fields share one, and `otherwise` lists every field.
    pub path: Option<u32>,
    /// Per string: the fields to consider when the path's value is that string, in field
    /// order: the fields guarded by it and every field without a guard on the path.
    pub cases: Vec<(Str, Vec<ScheduledField>)>,
    /// The fields to consider when the value is none of the strings: those without a guard.
    pub otherwise: Vec<ScheduledField>,
}

impl FieldSchedule {
    /// The fields to consider for an event whose guarded path holds `value`.
    pub fn fields_for(&self, value: Option<&Value>) -> &[ScheduledField] {
        if let Some(Value::Str(s)) = value
            && let Some((_, fields)) = self.cases.iter().find(|(case, _)| case == s)
        {
            return fields;
        }
        &self.otherwise
    }
}

/// A field to consider for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledField {
    /// Index into the aggregate's `fields`.
    pub index: usize,
    /// The field's `When` must still be evaluated: it has conditions beyond the guard.
    pub check_when: bool,
}

/// A path into the raw JSON event, e.g. `["a", "b"]` for `source.a.b`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourcePath(pub Vec<String>);

#[derive(Debug, Clone, PartialEq)]
pub enum StoreBackendKind {
    Memory,
    Embedded,
    DynamoDb,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StorePlan {
    pub name: String,
    pub kind: StoreBackendKind,
    pub table: Option<String>,
    pub read_capacity_units: Option<i64>,
    pub write_capacity_units: Option<i64>,
    pub retention_days: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamingPlan {
    pub name: String,
    pub dialect: Dialect,
    /// Projection: the only parts of an event the plan reads.
    pub source_paths: Vec<SourcePath>,
    /// True if the spec uses bare `source`, so the whole event must be kept.
    pub needs_whole_source: bool,
    pub identity: CExpr,
    pub time: CExpr,
    pub when: Option<CExpr>,
    pub aggregates: Vec<StreamAggregate>,
    pub stores: Vec<StorePlan>,
    /// `<aggregate>.<field>` for every field and dimension, indexed by `FieldPlan::error_id`.
    pub field_names: Vec<String>,
}

impl StreamingPlan {
    /// For each of [`StreamingPlan::source_paths`], whether an aggregate reads it. Paths read
    /// only by `Identity`, `Time` and the transform's `When` are needed at admission and not
    /// after, so the batch path need not carry them through its sort.
    pub fn paths_read_by_aggregates(&self) -> Vec<bool> {
        let mut read = vec![false; self.source_paths.len()];
        let mut mark = |e: &CExpr| {
            if let CExpr::Load(Slot::SourcePath(i)) = e
                && let Some(r) = read.get_mut(*i as usize)
            {
                *r = true;
            }
        };
        for agg in &self.aggregates {
            let fields = agg.dimensions.iter().chain(&agg.fields);
            let exprs = agg
                .when
                .iter()
                .chain(fields.flat_map(|f| std::iter::once(&f.value).chain(&f.when)));
            for e in exprs {
                e.visit(&mut mark);
            }
        }
        read
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum WindowAggregateKind {
    Window {
        window_type: WindowType,
        /// Non-zero; negative = before the anchor.
        value: i64,
        /// The streaming plan's Block/Activity aggregate the window reads.
        source: AggId,
        /// Columns of the source aggregate this window's fields read (`source.<field>`), so
        /// the operator builds only these lists.
        used_columns: Vec<ColumnId>,
    },
    Variable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WindowAggregate {
    pub name: String,
    pub kind: WindowAggregateKind,
    pub layout: AggregateLayout,
    pub fields: Vec<FieldPlan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WindowPlan {
    pub name: String,
    pub dialect: Dialect,
    /// The streaming plan this window spec reads (by `SourceBTS`).
    pub streaming: Arc<StreamingPlan>,
    /// The Block/Activity aggregate whose blocks are anchor candidates.
    pub anchor_aggregate: AggId,
    pub anchor: CExpr,
    /// `Anchor.Max`: rows per identity per UTC day of the anchor's start.
    pub max_per_day: Option<u32>,
    pub aggregates: Vec<WindowAggregate>,
    pub stores: Vec<StorePlan>,
    /// `<aggregate>.<field>`, indexed by `FieldPlan::error_id`; also the output column names
    /// after `identity` and `anchor_time`, in spec order.
    pub field_names: Vec<String>,
}
