//! Streaming specs: layouts, field plans, Identity/Time/When.

use std::collections::HashMap;

use dtc_lang::diagnostic::{Code, Diagnostic};
use dtc_lang::span::FileId;
use dtc_lang::syntax::{
    AggregateDecl, AggregateKind, ExprNode, FieldDecl, Spec, StoreDecl, StoreKind,
};

use super::expr::{AggInfo, AggTable, Env, ExprCompiler, Sink, StreamPart};
use super::names::{self, Bound};
use super::schedule;
use super::types::{self, Ty};
use crate::plan::{
    AggregateLayout, CExpr, Column, ColumnRole, FieldPlan, FieldType, StoreBackendKind, StorePlan,
    StreamAggregate, StreamAggregateKind, StreamingPlan,
};

/// The record layout of an aggregate (see [`AggregateLayout`]).
pub(crate) fn layout(decl: &AggregateDecl) -> AggregateLayout {
    let mut columns = Vec::new();
    let column = |name: &str, ty, role| Column {
        name: name.to_string(),
        ty,
        role,
    };
    let kind = decl.kind.value;
    if matches!(
        kind,
        AggregateKind::Identity | AggregateKind::Block | AggregateKind::Activity
    ) {
        columns.push(column("_identity", FieldType::String, ColumnRole::Identity));
    }
    if matches!(kind, AggregateKind::Block | AggregateKind::Activity) {
        columns.push(column(
            "_start_time",
            FieldType::DateTime,
            ColumnRole::StartTime,
        ));
        columns.push(column(
            "_end_time",
            FieldType::DateTime,
            ColumnRole::EndTime,
        ));
    }
    for field in &decl.fields.value {
        columns.push(column(&field.name.value, field.ty.value, ColumnRole::Field));
    }
    if let Some(dimensions) = &decl.dimensions {
        for field in &dimensions.value {
            columns.push(column(
                &field.name.value,
                field.ty.value,
                ColumnRole::Dimension,
            ));
        }
    }
    AggregateLayout { columns }
}

pub(crate) fn agg_infos(spec: &Spec) -> AggTable {
    AggTable::new(
        spec.aggregates
            .iter()
            .map(|decl| AggInfo::new(decl.name.value.clone(), decl.kind.value, layout(decl)))
            .collect(),
    )
}

pub(crate) fn stores(decls: &[StoreDecl]) -> Vec<StorePlan> {
    decls
        .iter()
        .map(|s| StorePlan {
            name: s.name.value.clone(),
            kind: match s.kind.value {
                StoreKind::Memory => StoreBackendKind::Memory,
                StoreKind::Embedded => StoreBackendKind::Embedded,
                StoreKind::DynamoDb => StoreBackendKind::DynamoDb,
            },
            table: s.table.as_ref().map(|t| t.value.clone()),
            read_capacity_units: s.read_capacity_units.as_ref().map(|v| v.value),
            write_capacity_units: s.write_capacity_units.as_ref().map(|v| v.value),
            retention_days: s.retention_days.as_ref().map(|v| v.value),
        })
        .collect()
}

/// Compiles the expressions of one spec with shared imports and sink.
pub(crate) struct SpecCompiler {
    pub file: FileId,
    pub imports: HashMap<String, Bound>,
    pub sink: Sink,
    /// False once a part the loader could not read (already reported) was met.
    pub complete: bool,
    pub field_names: Vec<String>,
}

impl SpecCompiler {
    pub(crate) fn new(spec: &Spec) -> Self {
        let mut sink = Sink::default();
        let imports = names::bind_imports(spec.file, &spec.imports, &mut sink.diags);
        SpecCompiler {
            file: spec.file,
            imports,
            sink,
            complete: true,
            field_names: Vec::new(),
        }
    }

    pub(crate) fn expr(&mut self, env: Env<'_>, node: &ExprNode) -> (CExpr, Ty) {
        ExprCompiler::new(self.file, &self.imports, env, &mut self.sink).compile(&node.expr)
    }

    pub(crate) fn opt_expr(&mut self, env: Env<'_>, node: Option<&ExprNode>) -> Option<CExpr> {
        node.map(|n| self.expr(env, n).0)
    }

    pub(crate) fn diag(&mut self, diag: Diagnostic) {
        self.sink.diags.push(diag);
    }

    /// A field or dimension: its `When`, its `Value` checked against the declared type.
    pub(crate) fn field(
        &mut self,
        env: Env<'_>,
        info: &AggInfo,
        decl: &FieldDecl,
    ) -> Option<FieldPlan> {
        let when = self.opt_expr(env, decl.when.as_ref());
        let value = decl.value.as_ref().map(|node| {
            let (value, ty) = self.expr(env, node);
            if let Some(hint) = types::field_mismatch(decl.ty.value, &ty) {
                self.diag(
                    Diagnostic::new(
                        Code::E0406,
                        self.file,
                        node.expr.span,
                        format!(
                            "field `{}` is declared `{}` but its value has type `{}`",
                            decl.name.value,
                            decl.ty.value.name(),
                            ty.name()
                        ),
                    )
                    .with_label(format!("type `{}`", ty.name()))
                    .with_hint(hint),
                );
            }
            value
        });
        let error_id = u32::try_from(self.field_names.len()).unwrap_or(u32::MAX);
        self.field_names
            .push(format!("{}.{}", info.name, decl.name.value));
        let column = info.column(&decl.name.value).map(|(id, _)| id);
        match (value, column) {
            (Some(value), Some(column)) => Some(FieldPlan {
                name: decl.name.value.clone(),
                ty: decl.ty.value,
                column,
                value,
                when,
                error_id,
            }),
            _ => {
                self.complete = false;
                None
            }
        }
    }

    pub(crate) fn fields(
        &mut self,
        env: Env<'_>,
        info: &AggInfo,
        decls: &[FieldDecl],
    ) -> Vec<FieldPlan> {
        decls
            .iter()
            .filter_map(|decl| self.field(env, info, decl))
            .collect()
    }
}

/// Compiles a streaming spec; the plan is `None` if it has errors. Diagnostics go to `diags`.
pub(crate) fn compile(
    spec: &Spec,
    infos: &AggTable,
    diags: &mut Vec<Diagnostic>,
) -> Option<StreamingPlan> {
    let mut c = SpecCompiler::new(spec);
    let env = |part| Env::Streaming { aggs: infos, part };

    let identity = spec.identity.as_ref().map(|node| {
        let (value, ty) = c.expr(env(StreamPart::Identity), node);
        if matches!(ty, Ty::List(_) | Ty::Tuple | Ty::Set | Ty::Map) {
            c.diag(
                Diagnostic::new(
                    Code::E0406,
                    c.file,
                    node.expr.span,
                    format!(
                        "`Identity` must be a string, but its type is `{}`",
                        ty.name()
                    ),
                )
                .with_label(format!("type `{}`", ty.name()))
                .with_hint("use a scalar such as `source.user_id`"),
            );
        }
        value
    });
    let time = spec.time.as_ref().map(|node| {
        let (value, ty) = c.expr(env(StreamPart::Time), node);
        if !matches!(ty, Ty::DateTime | Ty::Any) {
            let hint = match ty {
                Ty::Str => "parse it with parse_time(...)",
                Ty::Int | Ty::Float | Ty::Bool => {
                    "convert epoch seconds with datetime.fromtimestamp(...)"
                }
                _ => "`Time` must give a datetime, e.g. parse_time(source.event_time)",
            };
            c.diag(
                Diagnostic::new(
                    Code::E0406,
                    c.file,
                    node.expr.span,
                    format!("`Time` must be a datetime, but its type is `{}`", ty.name()),
                )
                .with_label(format!("type `{}`", ty.name()))
                .with_hint(hint),
            );
        }
        value
    });
    let when = c.opt_expr(env(StreamPart::When), spec.when.as_ref());

    let mut aggregates = Vec::with_capacity(spec.aggregates.len());
    for (i, (decl, info)) in spec.aggregates.iter().zip(infos.iter()).enumerate() {
        let env = env(StreamPart::Aggregate(i));
        let name = &decl.name.value;
        let when = c.opt_expr(env, decl.when.as_ref());
        let dimensions = match &decl.dimensions {
            Some(dims) => c.fields(env, info, &dims.value),
            None => Vec::new(),
        };
        let fields = c.fields(env, info, &decl.fields.value);
        let split = decl.split.as_ref().map(|node| {
            let (split, ty) = c.expr(env, node);
            if !matches!(ty, Ty::Bool | Ty::Any) {
                c.diag(
                    Diagnostic::new(
                        Code::E0314,
                        c.file,
                        node.expr.span,
                        format!("`Split` must be a boolean, but its type is `{}`", ty.name()),
                    )
                    .with_label(format!("type `{}`", ty.name()))
                    .with_hint(format!(
                        "a block ends when `Split` is true: compare, e.g. `source.session_id != {name}.session_id`"
                    )),
                );
            }
            split
        });
        let kind =
            match decl.kind.value {
                AggregateKind::Identity => Some(StreamAggregateKind::Identity),
                AggregateKind::Block => Some(match split {
                    Some(split) => StreamAggregateKind::SplitBlock { split },
                    None => StreamAggregateKind::Block,
                }),
                AggregateKind::Activity => decl.separate_by_inactive_seconds.as_ref().map(|s| {
                    StreamAggregateKind::Activity {
                        separate_by_inactive_seconds: s.value,
                    }
                }),
                AggregateKind::Variable => Some(StreamAggregateKind::Variable),
                AggregateKind::Window => None,
            };
        let Some(kind) = kind else {
            c.complete = false;
            continue;
        };
        aggregates.push(StreamAggregate {
            name: name.clone(),
            kind,
            when,
            store: decl.store.as_ref().map(|s| s.value.clone()),
            layout: info.layout.clone(),
            dimensions,
            schedule: schedule::schedule(&fields),
            fields,
        });
    }

    let ok = c.sink.diags.is_empty() && c.complete;
    diags.append(&mut c.sink.diags);
    let (Some(identity), Some(time), true) = (identity, time, ok) else {
        return None;
    };
    Some(StreamingPlan {
        name: spec.name.value.clone(),
        dialect: spec.dialect,
        source_paths: c.sink.paths.into_iter().collect(),
        needs_whole_source: c.sink.whole_source,
        identity,
        time,
        when,
        aggregates,
        stores: stores(&spec.stores),
        field_names: c.field_names,
    })
}
