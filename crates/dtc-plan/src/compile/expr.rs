//! Expression resolution and type inference: `ast::Expr` → [`CExpr`] with a static [`Ty`].
//!
//! Errors are reported into the [`Sink`] and the faulty node compiles to a null constant of type
//! `Any`, so one pass finds every problem; a spec with any error never reaches a plan.

use std::collections::HashMap;
use std::sync::Arc;

use dtc_lang::ast::{Arg, Expr, ExprKind, Ident, Operation, UnaryOp};
use dtc_lang::diagnostic::{Code, Diagnostic};
use dtc_lang::span::{FileId, Span};
use dtc_lang::syntax::AggregateKind;
use indexmap::IndexSet;

use super::names::{self, Bound, Callable, Signature};
use super::types::{self, Ty};
use crate::hint::did_you_mean;
use crate::plan::{
    AggId, AggregateLayout, Attribute, Builtin, CExpr, CGenerator, ColumnId, Method, Slot,
    SourcePath,
};
use crate::value::Value;

/// What the resolver knows about one aggregate: enough to bind `<aggregate>.<field>`.
#[derive(Debug, Clone)]
pub(crate) struct AggInfo {
    pub name: String,
    pub kind: AggregateKind,
    pub layout: AggregateLayout,
    /// Column ids by name: a spec may have thousands of fields, each read by name several
    /// times, so finding one must not scan the layout.
    by_name: HashMap<String, ColumnId>,
}

impl AggInfo {
    pub(crate) fn new(name: String, kind: AggregateKind, layout: AggregateLayout) -> Self {
        let mut by_name = HashMap::with_capacity(layout.columns.len());
        for (i, column) in layout.columns.iter().enumerate() {
            // The first of two same-named columns, as a scan would find (the duplicate is
            // reported by the loader).
            by_name.entry(column.name.clone()).or_insert(index_u16(i));
        }
        AggInfo {
            name,
            kind,
            layout,
            by_name,
        }
    }

    pub(crate) fn column(&self, name: &str) -> Option<(ColumnId, Ty)> {
        let id = *self.by_name.get(name)?;
        let column = self.layout.columns.get(usize::from(id))?;
        Some((id, Ty::of_field(column.ty)))
    }

    fn column_names(&self) -> impl Iterator<Item = &str> {
        self.layout.columns.iter().map(|c| c.name.as_str())
    }
}

/// The aggregates of one spec in spec order, also found by name without a scan.
#[derive(Debug, Clone, Default)]
pub(crate) struct AggTable {
    infos: Vec<AggInfo>,
    by_name: HashMap<String, usize>,
}

impl AggTable {
    pub(crate) fn new(infos: Vec<AggInfo>) -> Self {
        let mut by_name = HashMap::with_capacity(infos.len());
        for (i, info) in infos.iter().enumerate() {
            by_name.entry(info.name.clone()).or_insert(i);
        }
        AggTable { infos, by_name }
    }

    /// The index of the aggregate named `name`.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
}

impl std::ops::Deref for AggTable {
    type Target = [AggInfo];

    fn deref(&self) -> &[AggInfo] {
        &self.infos
    }
}

/// Which part of a streaming spec an expression belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamPart {
    Identity,
    Time,
    /// The transform-level `When`.
    When,
    /// `When`, dimensions and fields of the aggregate at this index.
    Aggregate(usize),
}

/// The names in scope for one expression (docs/language.md section 6).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Env<'a> {
    Streaming {
        aggs: &'a AggTable,
        part: StreamPart,
    },
    Window {
        /// The `SourceBTS` streaming spec's name and aggregates.
        stream_name: &'a str,
        stream: &'a AggTable,
        anchor: AggId,
        aggs: &'a AggTable,
        /// The window/variable aggregate being compiled; `None` in `Anchor.Condition`.
        current: Option<usize>,
        /// Inside a Window aggregate: its `Source` aggregate.
        window_source: Option<AggId>,
    },
}

/// Everything compiling a spec's expressions collects besides the expressions.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub diags: Vec<Diagnostic>,
    /// Streaming: the projection of the raw event.
    pub paths: IndexSet<SourcePath>,
    pub whole_source: bool,
    /// Window: source columns read by the current Window aggregate.
    pub used_columns: IndexSet<ColumnId>,
}

/// What a name (or a dotted prefix) stands for before it becomes a value.
enum Item {
    Value(CExpr, Ty),
    /// Streaming `source` followed by these keys.
    Source(Vec<String>),
    /// `source` inside a Window aggregate.
    WindowSource,
    Anchor,
    /// An aggregate of the spec being compiled.
    Agg(usize),
    /// Window: the `SourceBTS` spec's name.
    Stream,
    /// Window: `<streaming>.<aggregate>`.
    StreamAgg(usize),
    Bound(Bound, String),
    /// Already reported.
    Error,
}

/// Why a name was not found among the names in scope.
enum Lookup {
    Found(Item),
    Unknown,
}

fn null() -> (CExpr, Ty) {
    (CExpr::Const(Value::Null), Ty::Any)
}

fn index_u16(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

/// Compiles the expressions of one scope.
pub(crate) struct ExprCompiler<'a, 's> {
    file: FileId,
    imports: &'a HashMap<String, Bound>,
    env: Env<'a>,
    sink: &'s mut Sink,
    /// Comprehension variables in binding order: `CExpr::Local(i)` is `locals[i]`.
    locals: Vec<(String, Ty)>,
}

impl<'a, 's> ExprCompiler<'a, 's> {
    pub(crate) fn new(
        file: FileId,
        imports: &'a HashMap<String, Bound>,
        env: Env<'a>,
        sink: &'s mut Sink,
    ) -> Self {
        ExprCompiler {
            file,
            imports,
            env,
            sink,
            locals: Vec::new(),
        }
    }

    fn error(
        &mut self,
        code: Code,
        span: Span,
        message: String,
        label: &str,
        hint: Option<String>,
    ) {
        let mut diag = Diagnostic::new(code, self.file, span, message).with_label(label);
        if let Some(hint) = hint {
            diag = diag.with_hint(hint);
        }
        self.sink.diags.push(diag);
    }

    fn type_error(&mut self, span: Span, message: String, hint: Option<String>) {
        self.error(Code::E0406, span, message, "type mismatch", hint);
    }

    /// Compiles `expr` to a value.
    pub(crate) fn compile(&mut self, expr: &Expr) -> (CExpr, Ty) {
        match &expr.kind {
            ExprKind::Name(_) | ExprKind::Attr(..) | ExprKind::Index(..) => {
                let item = self.item(expr);
                self.value_of(item, expr.span)
            }
            ExprKind::Int(i) => (CExpr::Const(Value::Int(*i)), Ty::Int),
            ExprKind::Float(f) => (CExpr::Const(Value::Float(*f)), Ty::Float),
            ExprKind::Str(s) => (CExpr::Const(Value::str(s)), Ty::Str),
            ExprKind::Bool(b) => (CExpr::Const(Value::Bool(*b)), Ty::Bool),
            ExprKind::None => (CExpr::Const(Value::Null), Ty::None),
            ExprKind::List(items) => {
                let (items, elem) = self.items(items);
                (CExpr::List(items), Ty::list(elem))
            }
            ExprKind::Set(items) => (CExpr::Set(self.items(items).0), Ty::Set),
            ExprKind::Tuple(items) => (CExpr::Tuple(self.items(items).0), Ty::Tuple),
            ExprKind::Dict(pairs) => {
                let pairs = pairs
                    .iter()
                    .map(|(k, v)| (self.compile(k).0, self.compile(v).0))
                    .collect();
                (CExpr::Dict(pairs), Ty::Map)
            }
            ExprKind::Slice {
                value,
                lower,
                upper,
                step,
            } => self.slice(expr.span, value, [lower, upper, step]),
            ExprKind::Call { func, args } => self.call(expr.span, func, args),
            ExprKind::Unary(op, operand) => self.unary(expr.span, *op, operand),
            ExprKind::Binary(first, rest) => self.binary(first, rest),
            ExprKind::Logical(op, operands) => {
                let (operands, ty) = self.items(operands);
                let node = match op {
                    dtc_lang::ast::LogicalOp::And => CExpr::And(operands),
                    dtc_lang::ast::LogicalOp::Or => CExpr::Or(operands),
                };
                (node, ty)
            }
            ExprKind::Not(operand) => (CExpr::Not(Box::new(self.compile(operand).0)), Ty::Bool),
            ExprKind::Compare(first, rest) => {
                let (first, mut previous) = self.compile(first);
                let mut pairs = Vec::with_capacity(rest.len());
                for (op, operand) in rest {
                    let (value, ty) = self.compile(operand);
                    if types::compare_fails(*op, &previous, &ty) {
                        self.type_error(
                            operand.span,
                            format!(
                                "`{}` is not supported between `{}` and `{}`",
                                op.symbol(),
                                previous.name(),
                                ty.name()
                            ),
                            None,
                        );
                    }
                    pairs.push((*op, value));
                    previous = ty;
                }
                (CExpr::Compare(Box::new(first), pairs), Ty::Bool)
            }
            ExprKind::IfElse { body, cond, orelse } => {
                let (cond, _) = self.compile(cond);
                let (body, bt) = self.compile(body);
                let (orelse, ot) = self.compile(orelse);
                let node = CExpr::IfElse {
                    cond: Box::new(cond),
                    body: Box::new(body),
                    orelse: Box::new(orelse),
                };
                (node, bt.join(ot))
            }
            ExprKind::ListComp { elt, generators } => {
                let base = self.locals.len();
                let mut compiled = Vec::with_capacity(generators.len());
                for generator in generators {
                    let (iter, ty) = self.compile(&generator.iter);
                    let elem = self.iter_elem(generator.iter.span, &ty);
                    let first_local = index_u16(self.locals.len());
                    let single = generator.targets.len() == 1;
                    for target in &generator.targets {
                        let ty = if single { elem.clone() } else { Ty::Any };
                        self.locals.push((target.name.clone(), ty));
                    }
                    let ifs = generator.ifs.iter().map(|c| self.compile(c).0).collect();
                    compiled.push(CGenerator {
                        first_local,
                        targets: index_u16(generator.targets.len()),
                        iter,
                        ifs,
                    });
                }
                let (elt, ty) = self.compile(elt);
                self.locals.truncate(base);
                let node = CExpr::ListComp {
                    elt: Box::new(elt),
                    generators: compiled,
                };
                (node, Ty::list(ty))
            }
        }
    }

    fn items(&mut self, items: &[Expr]) -> (Vec<CExpr>, Ty) {
        let mut elem: Option<Ty> = None;
        let mut compiled = Vec::with_capacity(items.len());
        for item in items {
            let (value, ty) = self.compile(item);
            elem = Some(match elem {
                Some(e) => e.join(ty),
                None => ty,
            });
            compiled.push(value);
        }
        (compiled, elem.unwrap_or(Ty::Any))
    }

    fn iter_elem(&mut self, span: Span, ty: &Ty) -> Ty {
        match ty.iter_elem() {
            Some(elem) => elem,
            None => {
                self.type_error(
                    span,
                    format!("a `{}` value is not iterable", ty.name()),
                    None,
                );
                Ty::Any
            }
        }
    }

    // ---- names -------------------------------------------------------------------------

    /// Resolves a name, attribute chain or index as far as it names something statically.
    fn item(&mut self, expr: &Expr) -> Item {
        match &expr.kind {
            ExprKind::Name(name) => match self.lookup(name, expr.span) {
                Lookup::Found(item) => item,
                Lookup::Unknown => {
                    let hint = did_you_mean(name, self.names_in_scope().iter().map(String::as_str));
                    self.error(
                        Code::E0401,
                        expr.span,
                        format!("undefined name `{name}`"),
                        "not defined",
                        hint,
                    );
                    Item::Error
                }
            },
            ExprKind::Attr(value, attr) => {
                let item = self.item(value);
                self.attr(item, attr)
            }
            ExprKind::Index(value, index) => {
                let item = self.item(value);
                let by_key = !matches!(item, Item::Value(..) | Item::Bound(..) | Item::Error);
                match &index.kind {
                    ExprKind::Str(key) if by_key => {
                        let ident = Ident {
                            name: key.clone(),
                            span: index.span,
                        };
                        self.attr(item, &ident)
                    }
                    _ => {
                        let (value, vt) = self.value_of(item, value.span);
                        let (index_value, it) = self.compile(index);
                        let ty = self.index_type(expr.span, &vt, &it);
                        Item::Value(CExpr::Index(Box::new(value), Box::new(index_value)), ty)
                    }
                }
            }
            _ => {
                let (value, ty) = self.compile(expr);
                Item::Value(value, ty)
            }
        }
    }

    fn lookup(&mut self, name: &str, span: Span) -> Lookup {
        if let Some(i) = self.locals.iter().rposition(|(n, _)| n == name) {
            let ty = self.locals[i].1.clone();
            return Lookup::Found(Item::Value(CExpr::Local(index_u16(i)), ty));
        }
        match self.env {
            Env::Streaming { aggs, part } => {
                let header = matches!(part, StreamPart::Identity | StreamPart::Time);
                let part_name = match part {
                    StreamPart::Identity => "Identity",
                    StreamPart::Time => "Time",
                    _ => "",
                };
                match name {
                    "source" => return Lookup::Found(Item::Source(Vec::new())),
                    "time" | "identity" if header => {
                        self.error(
                            Code::E0408,
                            span,
                            format!("`{name}` cannot be used in `{part_name}`"),
                            "not available here",
                            Some(format!(
                                "`{part_name}` is computed from the event: use `source`, imports and built-in functions"
                            )),
                        );
                        return Lookup::Found(Item::Error);
                    }
                    "time" => {
                        return Lookup::Found(Item::Value(CExpr::Load(Slot::Time), Ty::DateTime));
                    }
                    "identity" => {
                        return Lookup::Found(Item::Value(CExpr::Load(Slot::Identity), Ty::Str));
                    }
                    _ => {}
                }
                if let Some(i) = aggs.position(name) {
                    return Lookup::Found(match part {
                        StreamPart::Aggregate(current) if i <= current => Item::Agg(i),
                        StreamPart::Aggregate(current) => {
                            let current = &aggs[current].name;
                            self.error(
                                Code::E0402,
                                span,
                                format!("`{name}` is defined after `{current}`"),
                                "defined later",
                                Some(format!(
                                    "aggregates are evaluated in the order written: move `{name}` before `{current}`"
                                )),
                            );
                            Item::Error
                        }
                        _ => {
                            let where_ = if header {
                                part_name
                            } else {
                                "the transform-level `When`"
                            };
                            self.error(
                                Code::E0408,
                                span,
                                format!("aggregate `{name}` cannot be used in {where_}"),
                                "not available here",
                                Some("it is evaluated before any aggregate".to_string()),
                            );
                            Item::Error
                        }
                    });
                }
            }
            Env::Window {
                stream_name,
                aggs,
                current,
                window_source,
                ..
            } => {
                match name {
                    "source" if window_source.is_some() => {
                        return Lookup::Found(Item::WindowSource);
                    }
                    "source" => {
                        self.error(
                            Code::E0408,
                            span,
                            "`source` is only available inside a Window aggregate".to_string(),
                            "not available here",
                            Some(format!(
                                "read the anchor block with `anchor.<field>` or `{stream_name}.<aggregate>.<field>`"
                            )),
                        );
                        return Lookup::Found(Item::Error);
                    }
                    "anchor" => return Lookup::Found(Item::Anchor),
                    "identity" => {
                        return Lookup::Found(Item::Value(CExpr::Load(Slot::Identity), Ty::Str));
                    }
                    "time" => {
                        self.error(
                            Code::E0408,
                            span,
                            "`time` is not available in a window spec".to_string(),
                            "not available here",
                            Some("the anchor's start is `anchor._start_time`".to_string()),
                        );
                        return Lookup::Found(Item::Error);
                    }
                    _ => {}
                }
                if name == stream_name {
                    return Lookup::Found(Item::Stream);
                }
                if let Some(i) = aggs.position(name) {
                    return Lookup::Found(match current {
                        Some(current) if i <= current => Item::Agg(i),
                        Some(current) => {
                            let current = &aggs[current].name;
                            self.error(
                                Code::E0402,
                                span,
                                format!("`{name}` is defined after `{current}`"),
                                "defined later",
                                Some(format!(
                                    "aggregates are evaluated in the order written: move `{name}` before `{current}`"
                                )),
                            );
                            Item::Error
                        }
                        None => {
                            self.error(
                                Code::E0408,
                                span,
                                format!("aggregate `{name}` cannot be used in `Anchor.Condition`"),
                                "not available here",
                                Some(format!(
                                    "the condition sees `anchor`, `{stream_name}.<aggregate>.<field>` and `identity`"
                                )),
                            );
                            Item::Error
                        }
                    });
                }
            }
        }
        if let Some(bound) = self.imports.get(name) {
            return Lookup::Found(Item::Bound(bound.clone(), name.to_string()));
        }
        if let Some(bound) = names::builtin(name) {
            return Lookup::Found(Item::Bound(bound, name.to_string()));
        }
        Lookup::Unknown
    }

    /// Every name an expression here could use, for "did you mean" hints.
    fn names_in_scope(&self) -> Vec<String> {
        let mut names: Vec<String> = self.locals.iter().map(|(n, _)| n.clone()).collect();
        match self.env {
            Env::Streaming { aggs, part } => match part {
                StreamPart::Identity | StreamPart::Time => names.push("source".into()),
                StreamPart::When => names.extend(["source", "time", "identity"].map(String::from)),
                StreamPart::Aggregate(current) => {
                    names.extend(["source", "time", "identity"].map(String::from));
                    names.extend(aggs.iter().take(current + 1).map(|a| a.name.clone()));
                }
            },
            Env::Window {
                stream_name,
                aggs,
                current,
                window_source,
                ..
            } => {
                names.extend(["anchor", "identity", stream_name].map(String::from));
                if window_source.is_some() {
                    names.push("source".into());
                }
                if let Some(current) = current {
                    names.extend(aggs.iter().take(current + 1).map(|a| a.name.clone()));
                }
            }
        }
        names.extend(self.imports.keys().cloned());
        names.extend(names::BUILTIN_NAMES.iter().map(|s| s.to_string()));
        names
    }

    fn unknown_field(&mut self, agg: &AggInfo, field: &Ident, what: &str) -> Item {
        let hint = did_you_mean(&field.name, agg.column_names()).or_else(|| {
            let names: Vec<&str> = agg.column_names().collect();
            Some(format!("{what} has the fields {}", names.join(", ")))
        });
        self.error(
            Code::E0403,
            field.span,
            format!("{what} has no field `{}`", field.name),
            "unknown field",
            hint,
        );
        Item::Error
    }

    fn attr(&mut self, item: Item, attr: &Ident) -> Item {
        let name = attr.name.as_str();
        match item {
            Item::Error => Item::Error,
            Item::Source(mut path) => {
                path.push(name.to_string());
                Item::Source(path)
            }
            Item::WindowSource | Item::Anchor => {
                let Env::Window {
                    stream,
                    anchor,
                    window_source,
                    ..
                } = self.env
                else {
                    return Item::Error;
                };
                let window = matches!(item, Item::WindowSource);
                let agg_id = if window {
                    window_source.unwrap_or(anchor)
                } else {
                    anchor
                };
                let Some(agg) = stream.get(usize::from(agg_id)) else {
                    return Item::Error;
                };
                match agg.column(name) {
                    Some((column, ty)) if window => {
                        self.sink.used_columns.insert(column);
                        Item::Value(CExpr::Load(Slot::WindowSource { column }), Ty::list(ty))
                    }
                    Some((column, ty)) => Item::Value(CExpr::Load(Slot::Anchor { column }), ty),
                    None => {
                        let what = if window {
                            format!("the window source `{}`", agg.name)
                        } else {
                            format!("the anchor block `{}`", agg.name)
                        };
                        self.unknown_field(agg, attr, &what)
                    }
                }
            }
            Item::Agg(i) => {
                let aggs = match self.env {
                    Env::Streaming { aggs, .. } | Env::Window { aggs, .. } => aggs,
                };
                let Some(agg) = aggs.get(i) else {
                    return Item::Error;
                };
                let agg_id = index_u16(i);
                match agg.column(name) {
                    Some((column, ty)) => Item::Value(
                        CExpr::Load(Slot::Field {
                            agg: agg_id,
                            column,
                        }),
                        ty,
                    ),
                    None => self.unknown_field(agg, attr, &format!("aggregate `{}`", agg.name)),
                }
            }
            Item::Stream => self.stream_agg(attr),
            Item::StreamAgg(i) => {
                let Env::Window {
                    stream,
                    stream_name,
                    ..
                } = self.env
                else {
                    return Item::Error;
                };
                let Some(agg) = stream.get(i) else {
                    return Item::Error;
                };
                match agg.column(name) {
                    Some((column, ty)) => Item::Value(
                        CExpr::Load(Slot::Stream {
                            agg: index_u16(i),
                            column,
                        }),
                        ty,
                    ),
                    None => self.unknown_field(
                        agg,
                        attr,
                        &format!("aggregate `{stream_name}.{}`", agg.name),
                    ),
                }
            }
            Item::Bound(bound, path) => {
                if let Bound::Const(value, ty) = bound {
                    return self.value_attr(CExpr::Const(value), ty, attr);
                }
                match names::member(&bound, name) {
                    Some(member) => Item::Bound(member, format!("{path}.{name}")),
                    None => {
                        let hint = did_you_mean(name, names::members(&bound).iter().copied());
                        self.error(
                            Code::E0404,
                            attr.span,
                            format!("`{path}` has no supported member `{name}`"),
                            "unknown name",
                            hint,
                        );
                        Item::Error
                    }
                }
            }
            Item::Value(value, ty) => self.value_attr(value, ty, attr),
        }
    }

    /// `<streaming>.<aggregate>` in a window spec.
    fn stream_agg(&mut self, attr: &Ident) -> Item {
        let Env::Window {
            stream,
            stream_name,
            anchor,
            current,
            ..
        } = self.env
        else {
            return Item::Error;
        };
        let name = attr.name.as_str();
        let Some(i) = stream.position(name) else {
            let hint = did_you_mean(name, stream.iter().map(|a| a.name.as_str()));
            self.error(
                Code::E0401,
                attr.span,
                format!("streaming spec `{stream_name}` has no aggregate `{name}`"),
                "unknown aggregate",
                hint,
            );
            return Item::Error;
        };
        let agg = &stream[i];
        match agg.kind {
            AggregateKind::Identity => Item::StreamAgg(i),
            AggregateKind::Block | AggregateKind::Activity if i == usize::from(anchor) => {
                Item::StreamAgg(i)
            }
            AggregateKind::Block | AggregateKind::Activity => {
                let anchor_name = stream
                    .get(usize::from(anchor))
                    .map_or("", |a| a.name.as_str());
                let hint = if current.is_none() {
                    format!(
                        "anchors are blocks of one aggregate: this condition already reads `{stream_name}.{anchor_name}`"
                    )
                } else {
                    format!(
                        "only the anchor block (`{stream_name}.{anchor_name}`) and Identity aggregates can be read here; read other blocks through a Window aggregate"
                    )
                };
                self.error(
                    Code::E0408,
                    attr.span,
                    format!("`{stream_name}.{name}` is not the anchor's aggregate"),
                    "not the anchor block",
                    Some(hint),
                );
                Item::Error
            }
            AggregateKind::Variable | AggregateKind::Window => {
                self.error(
                    Code::E0408,
                    attr.span,
                    format!(
                        "`{stream_name}.{name}` is a Variable aggregate, which is never stored"
                    ),
                    "not stored",
                    Some("window specs read Block, Activity and Identity aggregates".to_string()),
                );
                Item::Error
            }
        }
    }

    fn value_attr(&mut self, value: CExpr, ty: Ty, attr: &Ident) -> Item {
        const DATETIME: &[&str] = &[
            "year",
            "month",
            "day",
            "hour",
            "minute",
            "second",
            "microsecond",
        ];
        const TIMEDELTA: &[&str] = &["days", "seconds", "microseconds"];
        let name = attr.name.as_str();
        let known = match name {
            "year" => Some(Attribute::Year),
            "month" => Some(Attribute::Month),
            "day" => Some(Attribute::Day),
            "hour" => Some(Attribute::Hour),
            "minute" => Some(Attribute::Minute),
            "second" => Some(Attribute::Second),
            "microsecond" => Some(Attribute::Microsecond),
            "days" => Some(Attribute::Days),
            "seconds" => Some(Attribute::Seconds),
            "microseconds" => Some(Attribute::Microseconds),
            _ => None,
        };
        let (attribute, result) = match (&ty, known) {
            (Ty::Any, Some(a)) => (a, Ty::Any),
            (Ty::Any | Ty::Map, _) => (Attribute::Key(Arc::from(name)), Ty::Any),
            (Ty::DateTime, Some(a)) if DATETIME.contains(&name) => (a, Ty::Int),
            (Ty::TimeDelta, Some(a)) if TIMEDELTA.contains(&name) => (a, Ty::Int),
            _ => {
                let hint = match ty {
                    Ty::DateTime => did_you_mean(name, DATETIME.iter().copied()),
                    Ty::TimeDelta => did_you_mean(name, TIMEDELTA.iter().copied()),
                    _ => None,
                };
                self.type_error(
                    attr.span,
                    format!("a `{}` value has no attribute `{name}`", ty.name()),
                    hint,
                );
                return Item::Error;
            }
        };
        Item::Value(CExpr::Attr(Box::new(value), attribute), result)
    }

    fn value_of(&mut self, item: Item, span: Span) -> (CExpr, Ty) {
        let (message, hint) = match item {
            Item::Value(value, ty) => return (value, ty),
            Item::Error => return null(),
            Item::Source(path) if path.is_empty() => {
                self.sink.whole_source = true;
                return (CExpr::Load(Slot::WholeSource), Ty::Any);
            }
            Item::Source(path) => {
                let (index, _) = self.sink.paths.insert_full(SourcePath(path));
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                return (CExpr::Load(Slot::SourcePath(index)), Ty::Any);
            }
            Item::Bound(Bound::Const(value, ty), _) => return (CExpr::Const(value), ty),
            Item::WindowSource => (
                "`source` in a Window aggregate is a set of columns, not a value".to_string(),
                "name a field of the window's source aggregate: `source.<field>`",
            ),
            Item::Anchor => (
                "`anchor` is a block, not a value".to_string(),
                "name one of its fields: `anchor.<field>`",
            ),
            Item::Agg(i) => {
                let name = match self.env {
                    Env::Streaming { aggs, .. } | Env::Window { aggs, .. } => {
                        aggs.get(i).map_or("", |a| a.name.as_str())
                    }
                };
                (
                    format!("aggregate `{name}` is not a value"),
                    "name one of its fields: `<aggregate>.<field>`",
                )
            }
            Item::Stream | Item::StreamAgg(_) => (
                "a streaming spec or its aggregate is not a value".to_string(),
                "name a field: `<streaming>.<aggregate>.<field>`",
            ),
            Item::Bound(_, path) => (
                format!("`{path}` is a module or function, not a value"),
                "call it, e.g. `parse_time(source.event_time)`",
            ),
        };
        self.error(
            Code::E0408,
            span,
            message,
            "not a value",
            Some(hint.to_string()),
        );
        null()
    }

    // ---- operators ---------------------------------------------------------------------

    fn unary(&mut self, span: Span, op: UnaryOp, operand: &Expr) -> (CExpr, Ty) {
        let (value, ty) = self.compile(operand);
        let result = match ty {
            Ty::Any => Ty::Any,
            Ty::Bool | Ty::Int => Ty::Int,
            Ty::Float => Ty::Float,
            Ty::TimeDelta => Ty::TimeDelta,
            other => {
                let symbol = if op == UnaryOp::Neg { "-" } else { "+" };
                self.type_error(
                    span,
                    format!("bad operand type for unary {symbol}: `{}`", other.name()),
                    None,
                );
                Ty::Any
            }
        };
        let node = match op {
            UnaryOp::Neg => CExpr::Neg(Box::new(value)),
            UnaryOp::Pos => CExpr::Pos(Box::new(value)),
        };
        (node, result)
    }

    fn binary(&mut self, first: &Expr, rest: &[Operation]) -> (CExpr, Ty) {
        let (first, mut lt) = self.compile(first);
        let mut operations = Vec::with_capacity(rest.len());
        for Operation { op, rhs, span } in rest {
            let (r, rt) = self.compile(rhs);
            lt = match types::binary(*op, &lt, &rt) {
                Some(ty) => ty,
                None => {
                    let hint = match (&lt, &rt) {
                        (Ty::Str, Ty::Int | Ty::Float) | (Ty::Int | Ty::Float, Ty::Str) => Some(
                            "convert explicitly with str(...), int(...) or float(...)".to_string(),
                        ),
                        _ => None,
                    };
                    self.type_error(
                        *span,
                        format!(
                            "unsupported operand types for `{}`: `{}` and `{}`",
                            op.symbol(),
                            lt.name(),
                            rt.name()
                        ),
                        hint,
                    );
                    Ty::Any
                }
            };
            operations.push((*op, r));
        }
        (CExpr::Binary(Box::new(first), operations), lt)
    }

    fn index_type(&mut self, span: Span, value: &Ty, index: &Ty) -> Ty {
        let integer_index = matches!(index, Ty::Int | Ty::Bool | Ty::Any);
        match value {
            Ty::Any | Ty::Map => Ty::Any,
            Ty::Str | Ty::List(_) | Ty::Tuple if !integer_index => {
                self.type_error(
                    span,
                    format!(
                        "`{}` indices must be integers, not `{}`",
                        value.name(),
                        index.name()
                    ),
                    None,
                );
                Ty::Any
            }
            Ty::Str => Ty::Str,
            Ty::List(elem) => (**elem).clone(),
            Ty::Tuple => Ty::Any,
            other => {
                self.type_error(
                    span,
                    format!("a `{}` value is not subscriptable", other.name()),
                    None,
                );
                Ty::Any
            }
        }
    }

    fn slice(&mut self, span: Span, value: &Expr, bounds: [&Option<Box<Expr>>; 3]) -> (CExpr, Ty) {
        let (value, ty) = self.compile(value);
        let [lower, upper, step] = bounds.map(|b| b.as_ref().map(|e| Box::new(self.compile(e).0)));
        let result = match ty {
            Ty::Any | Ty::Str | Ty::List(_) | Ty::Tuple => ty,
            other => {
                self.type_error(
                    span,
                    format!("a `{}` value cannot be sliced", other.name()),
                    None,
                );
                Ty::Any
            }
        };
        let node = CExpr::Slice {
            value: Box::new(value),
            lower,
            upper,
            step,
        };
        (node, result)
    }

    // ---- calls -------------------------------------------------------------------------

    fn call(&mut self, span: Span, func: &Expr, args: &[Arg]) -> (CExpr, Ty) {
        if let ExprKind::Attr(receiver, method) = &func.kind {
            let item = self.item(receiver);
            return match item {
                Item::Bound(bound, path) if !matches!(bound, Bound::Const(..)) => {
                    let member = self.attr(Item::Bound(bound, path), method);
                    self.call_item(span, func, member, args)
                }
                Item::Error => {
                    self.args(args);
                    null()
                }
                other => {
                    let (receiver_value, receiver_ty) = self.value_of(other, receiver.span);
                    self.method(span, receiver_value, receiver_ty, method, args)
                }
            };
        }
        if let ExprKind::Name(name) = &func.kind {
            let item = match self.lookup(name, func.span) {
                Lookup::Found(item) => item,
                Lookup::Unknown => {
                    let mut candidates: Vec<&str> = names::BUILTIN_NAMES.to_vec();
                    candidates.extend(self.imports.keys().map(String::as_str));
                    let hint = did_you_mean(name, candidates).unwrap_or_else(|| {
                        format!("built-in functions: {}", names::BUILTIN_NAMES.join(", "))
                    });
                    self.error(
                        Code::E0404,
                        func.span,
                        format!("unknown function `{name}`"),
                        "unknown function",
                        Some(hint),
                    );
                    self.args(args);
                    return null();
                }
            };
            return self.call_item(span, func, item, args);
        }
        let item = self.item(func);
        self.call_item(span, func, item, args)
    }

    /// Compiles arguments only for their diagnostics.
    fn args(&mut self, args: &[Arg]) {
        for arg in args {
            self.compile(&arg.value);
        }
    }

    fn call_item(&mut self, span: Span, func: &Expr, item: Item, args: &[Arg]) -> (CExpr, Ty) {
        let callable = match &item {
            Item::Bound(bound, _) => names::call_signature(bound),
            Item::Error => {
                self.args(args);
                return null();
            }
            _ => None,
        };
        match callable {
            Some(Callable::Builtin(signature)) => self.call_builtin(span, signature, args),
            Some(Callable::TzUtc) => {
                if let Some(arg) = args.first() {
                    self.error(
                        Code::E0405,
                        arg.value.span,
                        "`tzutc()` takes no arguments".to_string(),
                        "unexpected argument",
                        None,
                    );
                }
                match names::utc() {
                    Bound::Const(value, ty) => (CExpr::Const(value), ty),
                    _ => null(),
                }
            }
            None => {
                let name = match item {
                    Item::Bound(_, path) => path,
                    _ => "this expression".to_string(),
                };
                self.error(
                    Code::E0404,
                    func.span,
                    format!("`{name}` is not a function"),
                    "not callable",
                    None,
                );
                self.args(args);
                null()
            }
        }
    }

    fn call_builtin(&mut self, span: Span, sig: &'static Signature, args: &[Arg]) -> (CExpr, Ty) {
        let name = sig.name;
        let mut slots: Vec<Option<(CExpr, Ty, Span)>> = vec![None; sig.params.len()];
        let mut extra: Vec<(CExpr, Ty, Span)> = Vec::new();
        let mut seen_keyword = false;
        for (position, arg) in args.iter().enumerate() {
            let (value, ty) = self.compile(&arg.value);
            let compiled = (value, ty, arg.value.span);
            match &arg.keyword {
                None if seen_keyword => self.error(
                    Code::E0405,
                    arg.value.span,
                    "positional argument after a keyword argument".to_string(),
                    "positional argument",
                    None,
                ),
                None if position < slots.len() => slots[position] = Some(compiled),
                None if sig.variadic => extra.push(compiled),
                None => self.error(
                    Code::E0405,
                    arg.value.span,
                    format!(
                        "`{name}` takes at most {} argument{} ({} given)",
                        sig.params.len(),
                        if sig.params.len() == 1 { "" } else { "s" },
                        args.len()
                    ),
                    "extra argument",
                    None,
                ),
                Some(keyword) => {
                    seen_keyword = true;
                    let index = sig
                        .params
                        .iter()
                        .position(|p| *p == keyword.name)
                        .filter(|i| *i >= sig.keywords_from);
                    match index {
                        Some(i) if slots[i].is_some() => self.error(
                            Code::E0405,
                            keyword.span,
                            format!("`{name}` got several values for `{}`", keyword.name),
                            "repeated argument",
                            None,
                        ),
                        Some(i) => slots[i] = Some(compiled),
                        None => {
                            let accepted = sig.params.iter().skip(sig.keywords_from).copied();
                            let hint =
                                did_you_mean(&keyword.name, accepted.clone()).or_else(|| {
                                    let list: Vec<&str> = accepted.collect();
                                    Some(if list.is_empty() {
                                        format!("`{name}` takes no keyword arguments")
                                    } else {
                                        format!("`{name}` accepts the keywords {}", list.join(", "))
                                    })
                                });
                            self.error(
                                Code::E0405,
                                keyword.span,
                                format!("`{name}` has no keyword argument `{}`", keyword.name),
                                "unknown keyword",
                                hint,
                            );
                        }
                    }
                }
            }
        }
        let given = slots
            .iter()
            .take(sig.required)
            .filter(|s| s.is_some())
            .count();
        if given < sig.required {
            self.error(
                Code::E0405,
                span,
                format!(
                    "`{name}` needs {} argument{} ({} given)",
                    sig.required,
                    if sig.required == 1 { "" } else { "s" },
                    args.len()
                ),
                "missing argument",
                Some(format!(
                    "`{name}({})`",
                    sig.params[..sig.required].join(", ")
                )),
            );
            return null();
        }
        let kept = sig.params.len().min(sig.keep);
        slots.truncate(kept);
        if !sig.pad_zero {
            while slots.last().is_some_and(Option::is_none) {
                slots.pop();
            }
        }
        let mut compiled = Vec::with_capacity(slots.len() + extra.len());
        let mut types = Vec::with_capacity(slots.len() + extra.len());
        for (i, slot) in slots.into_iter().enumerate() {
            match slot {
                Some((value, ty, arg_span)) => {
                    compiled.push(value);
                    types.push((ty, arg_span));
                }
                None if sig.pad_zero => {
                    compiled.push(CExpr::Const(Value::Int(0)));
                    types.push((Ty::Int, span));
                }
                None => {
                    self.error(
                        Code::E0405,
                        span,
                        format!("`{name}` is missing the argument `{}`", sig.params[i]),
                        "missing argument",
                        None,
                    );
                    return null();
                }
            }
        }
        for (value, ty, arg_span) in extra {
            compiled.push(value);
            types.push((ty, arg_span));
        }
        let ty = self.builtin_type(sig, &types);
        (CExpr::Call(sig.builtin, compiled), ty)
    }

    /// Checks argument types that certainly fail and infers the result type.
    fn builtin_type(&mut self, sig: &Signature, args: &[(Ty, Span)]) -> Ty {
        let name = sig.name;
        let first = args.first().map(|(t, _)| t.clone()).unwrap_or(Ty::Any);
        let first_span = args.first().map(|(_, s)| *s).unwrap_or_default();
        let scalar = |t: &Ty| {
            matches!(
                t,
                Ty::Bool | Ty::Int | Ty::Float | Ty::DateTime | Ty::TimeDelta | Ty::None
            )
        };
        let numeric = |t: &Ty| matches!(t, Ty::Any | Ty::Bool | Ty::Int | Ty::Float);
        match sig.builtin {
            Builtin::Len | Builtin::Count => {
                if scalar(&first) {
                    self.type_error(
                        first_span,
                        format!("a `{}` value has no length", first.name()),
                        None,
                    );
                }
                Ty::Int
            }
            Builtin::Sum => {
                let elem = self.iter_elem(first_span, &first);
                match elem {
                    Ty::Str => {
                        self.type_error(
                            first_span,
                            "`sum` cannot add strings".to_string(),
                            Some("use `''.join(...)`".to_string()),
                        );
                        Ty::Any
                    }
                    Ty::Int | Ty::Bool if args.len() == 1 => Ty::Int,
                    Ty::Float if args.len() == 1 => Ty::Float,
                    _ => Ty::Any,
                }
            }
            Builtin::Min | Builtin::Max => {
                if args.len() == 1 {
                    self.iter_elem(first_span, &first)
                } else {
                    args.iter()
                        .skip(1)
                        .fold(first, |acc, (t, _)| acc.join(t.clone()))
                }
            }
            Builtin::Abs
            | Builtin::Round
            | Builtin::MathFloor
            | Builtin::MathCeil
            | Builtin::MathSqrt
            | Builtin::MathLog
            | Builtin::MathExp
            | Builtin::MathPow => {
                for (ty, arg_span) in args {
                    let ok = numeric(ty) || (sig.builtin == Builtin::Abs && *ty == Ty::TimeDelta);
                    if !ok {
                        self.type_error(
                            *arg_span,
                            format!("`{name}` needs a number, not `{}`", ty.name()),
                            None,
                        );
                    }
                }
                match sig.builtin {
                    Builtin::Abs => match first {
                        Ty::Bool => Ty::Int,
                        other => other,
                    },
                    Builtin::Round if args.len() == 1 => Ty::Int,
                    Builtin::Round => match first {
                        Ty::Float | Ty::Int => first,
                        _ => Ty::Any,
                    },
                    Builtin::MathFloor | Builtin::MathCeil => Ty::Int,
                    _ => Ty::Float,
                }
            }
            Builtin::Int | Builtin::Float => {
                if matches!(
                    first,
                    Ty::List(_)
                        | Ty::Tuple
                        | Ty::Set
                        | Ty::Map
                        | Ty::DateTime
                        | Ty::TimeDelta
                        | Ty::None
                ) && !args.is_empty()
                {
                    self.type_error(
                        first_span,
                        format!("`{name}()` cannot convert a `{}` value", first.name()),
                        None,
                    );
                }
                if sig.builtin == Builtin::Int {
                    Ty::Int
                } else {
                    Ty::Float
                }
            }
            Builtin::Str => Ty::Str,
            Builtin::Bool | Builtin::Any | Builtin::All => {
                if sig.builtin != Builtin::Bool {
                    self.iter_elem(first_span, &first);
                }
                Ty::Bool
            }
            Builtin::List | Builtin::Sorted | Builtin::Reversed => {
                if args.is_empty() {
                    Ty::list(Ty::Any)
                } else {
                    Ty::list(self.iter_elem(first_span, &first))
                }
            }
            Builtin::Set | Builtin::Dict | Builtin::Tuple => {
                if !args.is_empty() {
                    self.iter_elem(first_span, &first);
                }
                match sig.builtin {
                    Builtin::Set => Ty::Set,
                    Builtin::Dict => Ty::Map,
                    _ => Ty::Tuple,
                }
            }
            Builtin::First | Builtin::Last => {
                let elem = self.iter_elem(first_span, &first);
                match args.get(1) {
                    Some((default, _)) => elem.join(default.clone()),
                    None => elem,
                }
            }
            Builtin::Zip | Builtin::Enumerate => {
                let iterables = if sig.builtin == Builtin::Zip {
                    args.len()
                } else {
                    1
                };
                for (ty, arg_span) in args.iter().take(iterables) {
                    self.iter_elem(*arg_span, ty);
                }
                Ty::list(Ty::Tuple)
            }
            Builtin::Range => {
                for (ty, arg_span) in args {
                    if !matches!(ty, Ty::Any | Ty::Int | Ty::Bool) {
                        self.type_error(
                            *arg_span,
                            format!("`range` needs integers, not `{}`", ty.name()),
                            None,
                        );
                    }
                }
                Ty::list(Ty::Int)
            }
            Builtin::ParseTime | Builtin::Strptime => {
                for (ty, arg_span) in args {
                    if !matches!(ty, Ty::Any | Ty::Str) {
                        self.type_error(
                            *arg_span,
                            format!("`{name}` needs a string, not `{}`", ty.name()),
                            None,
                        );
                    }
                }
                Ty::DateTime
            }
            Builtin::FromTimestamp => {
                if !numeric(&first) {
                    self.type_error(
                        first_span,
                        format!("`{name}` needs a number of seconds, not `{}`", first.name()),
                        Some("parse strings with parse_time(...)".to_string()),
                    );
                }
                Ty::DateTime
            }
            Builtin::TimeDelta | Builtin::DateTime | Builtin::Date => {
                for (ty, arg_span) in args {
                    if !numeric(ty) {
                        self.type_error(
                            *arg_span,
                            format!("`{name}` needs numbers, not `{}`", ty.name()),
                            None,
                        );
                    }
                }
                if sig.builtin == Builtin::TimeDelta {
                    Ty::TimeDelta
                } else {
                    Ty::DateTime
                }
            }
            Builtin::UtcNow => Ty::DateTime,
        }
    }

    fn method(
        &mut self,
        span: Span,
        receiver: CExpr,
        ty: Ty,
        name: &Ident,
        args: &[Arg],
    ) -> (CExpr, Ty) {
        let Some((method, min, max, kind)) = method_signature(&name.name) else {
            let hint = did_you_mean(&name.name, METHOD_NAMES.iter().copied());
            self.error(
                Code::E0404,
                name.span,
                format!("unknown method `{}`", name.name),
                "unknown method",
                hint.or_else(|| Some(format!("supported methods: {}", METHOD_NAMES.join(", ")))),
            );
            self.args(args);
            return null();
        };
        if !kind.accepts(&ty) {
            self.type_error(
                name.span,
                format!(
                    "`{}` is a {} method, but the value is a `{}`",
                    name.name,
                    kind.name(),
                    ty.name()
                ),
                None,
            );
        }
        let mut compiled = Vec::with_capacity(args.len());
        for arg in args {
            if let Some(keyword) = &arg.keyword {
                self.error(
                    Code::E0405,
                    keyword.span,
                    format!("`{}` takes no keyword arguments", name.name),
                    "keyword argument",
                    None,
                );
            }
            compiled.push(self.compile(&arg.value).0);
        }
        if args.len() < min || args.len() > max {
            let expected = if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            };
            self.error(
                Code::E0405,
                span,
                format!(
                    "`{}` takes {expected} argument{} ({} given)",
                    name.name,
                    if max == 1 { "" } else { "s" },
                    args.len()
                ),
                "wrong number of arguments",
                None,
            );
        }
        let result = match method {
            Method::Split => Ty::list(Ty::Str),
            Method::Strip
            | Method::LStrip
            | Method::RStrip
            | Method::Lower
            | Method::Upper
            | Method::Replace
            | Method::Join
            | Method::IsoFormat => Ty::Str,
            Method::StartsWith | Method::EndsWith => Ty::Bool,
            Method::Find | Method::Index | Method::Weekday => Ty::Int,
            Method::Append | Method::Extend => match ty {
                Ty::List(_) => ty.clone(),
                _ => Ty::list(Ty::Any),
            },
            Method::Get => Ty::Any,
            Method::Keys | Method::Values | Method::Items => Ty::list(Ty::Any),
            Method::Add | Method::Union => Ty::Set,
            Method::Date => Ty::DateTime,
            Method::Timestamp | Method::TotalSeconds => Ty::Float,
        };
        (CExpr::Method(Box::new(receiver), method, compiled), result)
    }
}

/// The kind of value a method belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Receiver {
    Str,
    List,
    /// `index`: lists, tuples and strings.
    Sequence,
    Map,
    Set,
    DateTime,
    TimeDelta,
}

impl Receiver {
    fn accepts(self, ty: &Ty) -> bool {
        matches!(
            (self, ty),
            (_, Ty::Any)
                | (Receiver::Str, Ty::Str)
                | (Receiver::List, Ty::List(_))
                | (Receiver::Sequence, Ty::List(_) | Ty::Tuple | Ty::Str)
                | (Receiver::Map, Ty::Map)
                | (Receiver::Set, Ty::Set)
                | (Receiver::DateTime, Ty::DateTime)
                | (Receiver::TimeDelta, Ty::TimeDelta)
        )
    }

    fn name(self) -> &'static str {
        match self {
            Receiver::Str => "string",
            Receiver::List => "list",
            Receiver::Sequence => "sequence",
            Receiver::Map => "dict",
            Receiver::Set => "set",
            Receiver::DateTime => "datetime",
            Receiver::TimeDelta => "timedelta",
        }
    }
}

const METHOD_NAMES: &[&str] = &[
    "split",
    "strip",
    "lstrip",
    "rstrip",
    "lower",
    "upper",
    "startswith",
    "endswith",
    "replace",
    "join",
    "find",
    "append",
    "extend",
    "index",
    "get",
    "keys",
    "values",
    "items",
    "add",
    "union",
    "date",
    "weekday",
    "isoformat",
    "timestamp",
    "total_seconds",
];

/// Method, minimum and maximum argument count, receiver kind.
fn method_signature(name: &str) -> Option<(Method, usize, usize, Receiver)> {
    use Receiver as R;
    Some(match name {
        "split" => (Method::Split, 0, 2, R::Str),
        "strip" => (Method::Strip, 0, 1, R::Str),
        "lstrip" => (Method::LStrip, 0, 1, R::Str),
        "rstrip" => (Method::RStrip, 0, 1, R::Str),
        "lower" => (Method::Lower, 0, 0, R::Str),
        "upper" => (Method::Upper, 0, 0, R::Str),
        "startswith" => (Method::StartsWith, 1, 1, R::Str),
        "endswith" => (Method::EndsWith, 1, 1, R::Str),
        "replace" => (Method::Replace, 2, 3, R::Str),
        "join" => (Method::Join, 1, 1, R::Str),
        "find" => (Method::Find, 1, 3, R::Str),
        "append" => (Method::Append, 1, 1, R::List),
        "extend" => (Method::Extend, 1, 1, R::List),
        "index" => (Method::Index, 1, 1, R::Sequence),
        "get" => (Method::Get, 1, 2, R::Map),
        "keys" => (Method::Keys, 0, 0, R::Map),
        "values" => (Method::Values, 0, 0, R::Map),
        "items" => (Method::Items, 0, 0, R::Map),
        "add" => (Method::Add, 1, 1, R::Set),
        "union" => (Method::Union, 0, usize::MAX, R::Set),
        "date" => (Method::Date, 0, 0, R::DateTime),
        "weekday" => (Method::Weekday, 0, 0, R::DateTime),
        "isoformat" => (Method::IsoFormat, 0, 0, R::DateTime),
        "timestamp" => (Method::Timestamp, 0, 0, R::DateTime),
        "total_seconds" => (Method::TotalSeconds, 0, 0, R::TimeDelta),
        _ => return None,
    })
}

/// Calls `f` on `expr` and every expression inside it.
pub(crate) fn walk(expr: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(expr);
    match &expr.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::None
        | ExprKind::Name(_) => {}
        ExprKind::List(items) | ExprKind::Set(items) | ExprKind::Tuple(items) => {
            items.iter().for_each(|e| walk(e, f));
        }
        ExprKind::Dict(pairs) => {
            for (k, v) in pairs {
                walk(k, f);
                walk(v, f);
            }
        }
        ExprKind::Attr(value, _) | ExprKind::Unary(_, value) | ExprKind::Not(value) => {
            walk(value, f)
        }
        ExprKind::Index(a, b) => {
            walk(a, f);
            walk(b, f);
        }
        ExprKind::Binary(first, rest) => {
            walk(first, f);
            rest.iter().for_each(|o| walk(&o.rhs, f));
        }
        ExprKind::Logical(_, operands) => operands.iter().for_each(|e| walk(e, f)),
        ExprKind::Slice {
            value,
            lower,
            upper,
            step,
        } => {
            walk(value, f);
            for bound in [lower, upper, step].into_iter().flatten() {
                walk(bound, f);
            }
        }
        ExprKind::Call { func, args } => {
            walk(func, f);
            args.iter().for_each(|a| walk(&a.value, f));
        }
        ExprKind::Compare(first, rest) => {
            walk(first, f);
            rest.iter().for_each(|(_, e)| walk(e, f));
        }
        ExprKind::IfElse { body, cond, orelse } => {
            walk(body, f);
            walk(cond, f);
            walk(orelse, f);
        }
        ExprKind::ListComp { elt, generators } => {
            walk(elt, f);
            for generator in generators {
                walk(&generator.iter, f);
                generator.ifs.iter().for_each(|e| walk(e, f));
            }
        }
    }
}
