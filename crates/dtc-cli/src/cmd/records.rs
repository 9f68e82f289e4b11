//! Printing stored records: JSON lines for people and tests, or Blurr's text format.

use std::io::Write;

use dtc_engine::streaming::IdentityState;
use dtc_io::format::{JsonStyle, write_json, write_str};
use dtc_plan::plan::{AggregateLayout, StreamAggregateKind, StreamingPlan};
use dtc_plan::value::Value;

/// One JSON object: `{"identity", "aggregate", "dims", "record": {column: value, ...}}`.
pub fn record_json(
    identity: &str,
    aggregate: &str,
    dims: &[Value],
    layout: &AggregateLayout,
    columns: &[Value],
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"identity\":");
    write_str(identity, JsonStyle::Compact, &mut out);
    out.push_str(",\"aggregate\":");
    write_str(aggregate, JsonStyle::Compact, &mut out);
    out.push_str(",\"dims\":");
    write_json(&Value::list(dims.to_vec()), JsonStyle::Compact, &mut out);
    out.push_str(",\"record\":{");
    for (i, (column, value)) in layout.columns.iter().zip(columns).enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(&column.name, JsonStyle::Compact, &mut out);
        out.push(':');
        write_json(value, JsonStyle::Compact, &mut out);
    }
    out.push_str("}}");
    out
}

/// Prints an identity's stored records, aggregates in spec order, records in creation order.
pub fn print_state(
    out: &mut impl Write,
    plan: &StreamingPlan,
    state: &IdentityState,
    blurr: bool,
) -> std::io::Result<()> {
    for (ai, agg) in plan.aggregates.iter().enumerate() {
        if agg.kind == StreamAggregateKind::Variable {
            continue;
        }
        // The dims of an activity or split block are dtc's internal key (its first event's
        // time in microseconds); Blurr keyed those blocks by their start time, which the key
        // line shows when it gets no dimension values.
        let blurr_keyed_by_time = matches!(
            agg.kind,
            StreamAggregateKind::Activity { .. } | StreamAggregateKind::SplitBlock { .. }
        );
        for rec in state.records(ai) {
            let line = if blurr {
                dtc_io::sink::blurr_record_line(
                    &state.identity,
                    &agg.name,
                    if blurr_keyed_by_time { &[] } else { &rec.dims },
                    &agg.layout,
                    &rec.columns,
                )
            } else {
                record_json(
                    &state.identity,
                    &agg.name,
                    &rec.dims,
                    &agg.layout,
                    &rec.columns,
                )
            };
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}
