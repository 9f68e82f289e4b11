//! Printing stored records: JSON lines for people and tests, or Blurr's text format.

use std::io::Write;

use dtc_engine::streaming::IdentityState;
use dtc_io::format::record_json;
use dtc_plan::plan::{StreamAggregateKind, StreamingPlan};

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
