//! Window specs: checked against their streaming spec (`SourceBTS`).

use std::sync::Arc;

use dtc_lang::ast::ExprKind;
use dtc_lang::diagnostic::{Code, Diagnostic};
use dtc_lang::span::{FileId, Span};
use dtc_lang::syntax::{AggregateKind, Spec};

use super::expr::{AggInfo, AggTable, Env, walk};
use super::streaming::{self, SpecCompiler};
use crate::hint::did_you_mean;
use crate::plan::{
    AggId, AggregateLayout, Column, ColumnRole, StreamingPlan, WindowAggregate,
    WindowAggregateKind, WindowPlan,
};

/// A loaded streaming spec as window specs see it.
pub(crate) struct StreamEntry {
    pub name: String,
    pub file: FileId,
    pub aggs: AggTable,
    /// `None` when the streaming spec has errors (already reported).
    pub plan: Option<Arc<StreamingPlan>>,
}

fn agg_id(i: usize) -> AggId {
    AggId::try_from(i).unwrap_or(AggId::MAX)
}

fn is_block(kind: AggregateKind) -> bool {
    matches!(kind, AggregateKind::Block | AggregateKind::Activity)
}

/// Compiles a window spec against the streaming specs; `None` if it (or its streaming spec)
/// has errors.
pub(crate) fn compile(
    spec: &Spec,
    streams: &[StreamEntry],
    same_dir: &dyn Fn(FileId, FileId) -> bool,
    diags: &mut Vec<Diagnostic>,
) -> Option<WindowPlan> {
    let mut c = SpecCompiler::new(spec);
    let plan = compile_inner(spec, streams, same_dir, &mut c);
    let ok = c.sink.diags.is_empty() && c.complete;
    diags.append(&mut c.sink.diags);
    plan.filter(|_| ok)
}

fn compile_inner(
    spec: &Spec,
    streams: &[StreamEntry],
    same_dir: &dyn Fn(FileId, FileId) -> bool,
    c: &mut SpecCompiler,
) -> Option<WindowPlan> {
    let Some(source_dtc) = &spec.source_dtc else {
        c.complete = false;
        return None;
    };
    let named: Vec<&StreamEntry> = streams
        .iter()
        .filter(|s| s.name == source_dtc.value)
        .collect();
    // Several specs may share a name (a native spec and its Blurr-format copy in another
    // directory): the one beside the window spec wins.
    let stream = match named.as_slice() {
        [] => None,
        [one] => Some(*one),
        several => {
            let beside: Vec<&StreamEntry> = several
                .iter()
                .copied()
                .filter(|s| same_dir(spec.file, s.file))
                .collect();
            match beside.as_slice() {
                [one] => Some(*one),
                _ => {
                    c.diag(
                        Diagnostic::new(
                            Code::E0312,
                            c.file,
                            source_dtc.span,
                            format!(
                                "{} loaded streaming specs are named `{}`",
                                several.len(),
                                source_dtc.value
                            ),
                        )
                        .with_label("ambiguous streaming spec")
                        .with_hint(
                            "keep the window spec in the same directory as the one streaming \
                             spec it reads, or validate the directories separately",
                        ),
                    );
                    return None;
                }
            }
        }
    };
    let Some(stream) = stream else {
        let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
        let hint = did_you_mean(&source_dtc.value, names.iter().copied()).unwrap_or_else(|| {
            if names.is_empty() {
                "no streaming spec was loaded: pass the streaming spec file too".to_string()
            } else {
                format!("loaded streaming specs: {}", names.join(", "))
            }
        });
        c.diag(
            Diagnostic::new(
                Code::E0309,
                c.file,
                source_dtc.span,
                format!("no loaded streaming spec is named `{}`", source_dtc.value),
            )
            .with_label("unknown streaming spec")
            .with_hint(hint),
        );
        return None;
    };

    // Each Window aggregate's `Source`, resolved to a block aggregate of the stream.
    let sources: Vec<Option<AggId>> = spec
        .aggregates
        .iter()
        .map(|decl| {
            if decl.kind.value != AggregateKind::Window {
                return None;
            }
            let Some(source) = &decl.source else {
                c.complete = false;
                return None;
            };
            resolve_source(c, stream, &source.value.streaming, &source.value.aggregate)
        })
        .collect();

    let anchor = anchor_aggregate(c, spec, stream, &sources);
    let Some(anchor) = anchor else {
        c.complete = false;
        return None;
    };

    let infos = AggTable::new(
        spec.aggregates
            .iter()
            .map(|decl| {
                let columns = decl
                    .fields
                    .value
                    .iter()
                    .map(|f| Column {
                        name: f.name.value.clone(),
                        ty: f.ty.value,
                        role: ColumnRole::Field,
                    })
                    .collect();
                AggInfo::new(
                    decl.name.value.clone(),
                    decl.kind.value,
                    AggregateLayout { columns },
                )
            })
            .collect(),
    );
    let env = |current, window_source| Env::Window {
        stream_name: &stream.name,
        stream: &stream.aggs,
        anchor,
        aggs: &infos,
        current,
        window_source,
    };

    let condition = spec
        .anchor
        .as_ref()
        .and_then(|a| a.condition.as_ref())
        .map(|node| c.expr(env(None, None), node).0);

    let mut aggregates = Vec::with_capacity(spec.aggregates.len());
    for (i, ((decl, info), source)) in spec
        .aggregates
        .iter()
        .zip(infos.iter())
        .zip(&sources)
        .enumerate()
    {
        c.sink.used_columns.clear();
        let fields = c.fields(env(Some(i), *source), info, &decl.fields.value);
        let kind = match decl.kind.value {
            AggregateKind::Variable => WindowAggregateKind::Variable,
            AggregateKind::Window => {
                let (Some(window_type), Some(value), Some(source)) =
                    (&decl.window_type, &decl.window_value, source)
                else {
                    c.complete = false;
                    continue;
                };
                WindowAggregateKind::Window {
                    window_type: window_type.value,
                    value: value.value,
                    source: *source,
                    used_columns: std::mem::take(&mut c.sink.used_columns)
                        .into_iter()
                        .collect(),
                }
            }
            _ => {
                c.complete = false;
                continue;
            }
        };
        aggregates.push(WindowAggregate {
            name: decl.name.value.clone(),
            kind,
            layout: info.layout.clone(),
            fields,
        });
    }

    let condition = condition.or_else(|| {
        c.complete = false;
        None
    })?;
    let streaming = stream.plan.clone().or_else(|| {
        c.complete = false;
        None
    })?;
    let max_per_day = spec
        .anchor
        .as_ref()
        .and_then(|a| a.max.as_ref())
        .map(|m| u32::try_from(m.value.max(1)).unwrap_or(u32::MAX));
    Some(WindowPlan {
        name: spec.name.value.clone(),
        dialect: spec.dialect,
        streaming,
        anchor_aggregate: anchor,
        anchor: condition,
        max_per_day,
        aggregates,
        stores: streaming::stores(&spec.stores),
        field_names: std::mem::take(&mut c.field_names),
    })
}

/// A Window aggregate's `Source: <streaming>.<aggregate>` (E0307 unless it names a
/// Block/Activity aggregate of the `SourceBTS` spec).
fn resolve_source(
    c: &mut SpecCompiler,
    stream: &StreamEntry,
    streaming: &dtc_lang::span::Spanned<String>,
    aggregate: &dtc_lang::span::Spanned<String>,
) -> Option<AggId> {
    let error = |message: String, span: Span, hint: String| {
        Diagnostic::new(Code::E0307, c.file, span, message)
            .with_label("not a block aggregate of the source spec")
            .with_hint(hint)
    };
    let blocks: Vec<&str> = stream
        .aggs
        .iter()
        .filter(|a| is_block(a.kind))
        .map(|a| a.name.as_str())
        .collect();
    let listing = format!(
        "block aggregates of `{}`: {}",
        stream.name,
        blocks
            .iter()
            .map(|b| format!("{}.{b}", stream.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if streaming.value != stream.name {
        let d = error(
            format!(
                "`Source` names the streaming spec `{}`, but `SourceBTS` is `{}`",
                streaming.value, stream.name
            ),
            streaming.span,
            listing,
        );
        c.diag(d);
        return None;
    }
    match stream.aggs.position(&aggregate.value) {
        Some(i) if is_block(stream.aggs[i].kind) => Some(agg_id(i)),
        Some(_) => {
            let d = error(
                format!(
                    "`{}.{}` is not a Block or Activity aggregate",
                    stream.name, aggregate.value
                ),
                aggregate.span,
                listing,
            );
            c.diag(d);
            None
        }
        None => {
            let hint = did_you_mean(&aggregate.value, blocks.iter().copied()).unwrap_or(listing);
            let d = error(
                format!(
                    "streaming spec `{}` has no aggregate `{}`",
                    stream.name, aggregate.value
                ),
                aggregate.span,
                hint,
            );
            c.diag(d);
            None
        }
    }
}

/// The block aggregate whose blocks are anchor candidates: the one `Anchor.Condition` reads
/// (`<streaming>.<block>.<field>`), else the `Source` of the first Window aggregate, else the
/// streaming spec's only block aggregate.
fn anchor_aggregate(
    c: &mut SpecCompiler,
    spec: &Spec,
    stream: &StreamEntry,
    sources: &[Option<AggId>],
) -> Option<AggId> {
    let mut referenced: Vec<usize> = Vec::new();
    if let Some(condition) = spec.anchor.as_ref().and_then(|a| a.condition.as_ref()) {
        walk(&condition.expr, &mut |e| {
            if let ExprKind::Attr(inner, agg) = &e.kind
                && let ExprKind::Name(name) = &inner.kind
                && *name == stream.name
                && let Some(i) = stream.aggs.position(&agg.name)
                && is_block(stream.aggs[i].kind)
            {
                referenced.push(i);
            }
        });
    }
    // A second block aggregate in the condition is reported where the condition is compiled.
    if let Some(&first) = referenced.first() {
        return Some(agg_id(first));
    }
    let first_window = spec
        .aggregates
        .iter()
        .zip(sources)
        .find(|(decl, _)| decl.kind.value == AggregateKind::Window)
        .map(|(_, source)| *source);
    match first_window {
        Some(source) => source,
        None => {
            let blocks: Vec<usize> = (0..stream.aggs.len())
                .filter(|i| is_block(stream.aggs[*i].kind))
                .collect();
            match blocks.as_slice() {
                [only] => Some(agg_id(*only)),
                _ => {
                    let span = spec.anchor.as_ref().map_or(spec.name.span, |a| {
                        a.condition.as_ref().map_or(a.span, |n| n.span)
                    });
                    c.diag(
                        Diagnostic::new(
                            Code::E0307,
                            c.file,
                            span,
                            "cannot tell which block aggregate holds the anchors".to_string(),
                        )
                        .with_label("no block aggregate named")
                        .with_hint(format!(
                            "read a field of the anchor block in the condition, e.g. `{}.<block>.<field>`",
                            stream.name
                        )),
                    );
                    None
                }
            }
        }
    }
}
