use proptest::prelude::*;

use super::*;
use crate::syntax::{AggregateKind, Dialect, FieldType, SpecKind, StoreKind, WindowType};

const STREAMING: &str = "\
Type: Blurr:Transform:Streaming
Version: '2018-03-01'
Name: offer_ai_v1
Identity: source.customer_identifier
Time: parser.parse(source.event_time)
Import:
  - { Module: dateutil, Identifiers: [ parser, tz as zone ] }
Stores:
  - Type: Blurr:Store:Dynamo
    Name: dyn
    Table: offer-ai
    ReadCapacityUnits: 5
Aggregates:
  - Type: Blurr:Aggregate:Block
    Name: game_stats
    Store: dyn
    Dimensions:
      - Name: session_id
        Type: string
        Value: source.session_id
    Fields:
      - Name: games_played
        Type: int
        When: source.event_id == 'game_start'
        Value: game_stats.games_played + 1
      - Name: note
        Value: source.note
  - Type: activity
    Name: visits
    SeparateByInactiveSeconds: 1800
    Fields:
      - Name: events
        Type: integer
        Value: visits.events + 1
";

const WINDOW: &str = "\
Type: Window
Version: '2026-11-01'
Name: offer_ai_window
SourceDTC: offer_ai_v1
Anchor:
  Condition: offer_ai_v1.game_stats.offer_type != ''
  Max: 1
Aggregates:
  - Type: Window
    Name: next_week
    WindowType: Day
    WindowValue: +7
    Source: offer_ai_v1.game_stats
    Fields:
      - Name: purchase_amount
        Type: float
        Value: sum(source.purchase_amount)
";

/// Codes other than expression syntax errors, which depend on the expression parser.
fn codes(text: &str) -> Vec<Code> {
    let (_, diags) = load_spec(FileId(0), text);
    diags
        .iter()
        .map(|d| d.code)
        .filter(|c| *c != Code::E0400)
        .collect()
}

fn first(text: &str, code: Code) -> Diagnostic {
    let (_, diags) = load_spec(FileId(0), text);
    match diags.into_iter().find(|d| d.code == code) {
        Some(d) => d,
        None => panic!("no {code:?} in {:?}", codes(text)),
    }
}

fn at<'a>(text: &'a str, d: &Diagnostic) -> &'a str {
    &text[d.span.range()]
}

#[test]
fn blurr_streaming_spec_loads_with_spans() {
    assert_eq!(codes(STREAMING), vec![]);
    let (spec, _) = load_spec(FileId(3), STREAMING);
    let Some(spec) = spec else { panic!("no spec") };
    assert_eq!(spec.file, FileId(3));
    assert_eq!(spec.kind.value, SpecKind::Streaming);
    assert_eq!(spec.dialect, Dialect::Blurr);
    assert_eq!(&STREAMING[spec.name.span.range()], "offer_ai_v1");
    assert_eq!(spec.stores.len(), 1);
    assert_eq!(spec.stores[0].kind.value, StoreKind::DynamoDb);
    assert_eq!(
        spec.stores[0].read_capacity_units.as_ref().map(|s| s.value),
        Some(5)
    );
    let import = &spec.imports[0];
    assert_eq!(import.module.value, "dateutil");
    assert_eq!(&STREAMING[import.identifiers[1].name.span.range()], "tz");
    assert_eq!(
        import.identifiers[1]
            .alias
            .as_ref()
            .map(|a| a.value.as_str()),
        Some("zone")
    );
    let block = &spec.aggregates[0];
    assert_eq!(block.kind.value, AggregateKind::Block);
    assert_eq!(block.store.as_ref().map(|s| s.value.as_str()), Some("dyn"));
    assert_eq!(block.dimensions.as_ref().map(|d| d.value.len()), Some(1));
    assert_eq!(block.fields.value[0].ty.value, FieldType::Integer);
    assert_eq!(block.fields.value[1].ty.value, FieldType::String);
    assert_eq!(
        spec.aggregates[1]
            .separate_by_inactive_seconds
            .as_ref()
            .map(|s| s.value),
        Some(1800)
    );
}

#[test]
fn window_spec_loads_source_and_anchor() {
    assert_eq!(codes(WINDOW), vec![]);
    let (spec, _) = load_spec(FileId(0), WINDOW);
    let Some(spec) = spec else { panic!("no spec") };
    assert_eq!(spec.dialect, Dialect::Native);
    assert_eq!(
        spec.source_dtc.as_ref().map(|s| s.value.as_str()),
        Some("offer_ai_v1")
    );
    assert_eq!(
        spec.anchor
            .as_ref()
            .and_then(|a| a.max.as_ref())
            .map(|m| m.value),
        Some(1)
    );
    let w = &spec.aggregates[0];
    assert_eq!(
        w.window_type.as_ref().map(|t| t.value),
        Some(WindowType::Day)
    );
    assert_eq!(w.window_value.as_ref().map(|v| v.value), Some(7));
    let source = w.source.as_ref().map(|s| &s.value);
    assert_eq!(
        source.map(|s| &WINDOW[s.aggregate.span.range()]),
        Some("game_stats")
    );
    assert_eq!(
        source.map(|s| s.streaming.value.as_str()),
        Some("offer_ai_v1")
    );
}

#[test]
fn yaml_syntax_error_points_at_the_problem() {
    let text = "Type: Window\nName: [a, b\nVersion: 'x'\n";
    let d = first(text, Code::E0101);
    assert!(d.span.start > 12, "{d:?}");
    assert_eq!(codes(text), vec![Code::E0101]);
}

#[test]
fn duplicate_yaml_keys_are_errors() {
    let text = STREAMING.replace("Name: offer_ai_v1\n", "Name: offer_ai_v1\nName: again\n");
    let d = first(&text, Code::E0101);
    assert_eq!(at(&text, &d), "Name");
    assert!(d.span.start > 40);
}

#[test]
fn non_mapping_document_is_a_shape_error() {
    assert_eq!(codes("- a\n- b\n"), vec![Code::E0102]);
    assert_eq!(codes(""), vec![Code::E0102]);
    assert_eq!(codes("# only a comment\n"), vec![Code::E0102]);
    let text = STREAMING.replace(
        "Aggregates:\n  - Type: Blurr:Aggregate:Block",
        "Aggregates: 3\nX:\n  - Type: Blurr:Aggregate:Block",
    );
    assert!(codes(&text).contains(&Code::E0102));
}

#[test]
fn unknown_key_suggests_the_closest() {
    let text = WINDOW.replace("    Fields:", "    Feilds:");
    let d = first(&text, Code::E0200);
    assert_eq!(at(&text, &d), "Feilds");
    assert_eq!(d.hint.as_deref(), Some("did you mean `Fields`?"));
    let text = WINDOW.replace("Anchor:", "Colour: red\nAnchor:");
    assert_eq!(first(&text, Code::E0200).hint, None);
}

#[test]
fn a_key_of_another_place_says_where_it_belongs() {
    let text = WINDOW.replace("  Max: 1\n", "Max: 1\n");
    let d = first(&text, Code::E0200);
    assert_eq!(at(&text, &d), "Max");
    assert_eq!(
        d.hint.as_deref(),
        Some("`Max` belongs under `Anchor`; check its indentation")
    );
    let text = WINDOW.replace("    Fields:\n", "    Value: 1\n    Fields:\n");
    let d = first(&text, Code::E0200);
    assert_eq!(
        d.hint.as_deref(),
        Some(
            "`Value` belongs in a field (an entry of `Fields` or `Dimensions`); check its indentation"
        )
    );
    // A key of several places names them all.
    let text = WINDOW.replace("  Max: 1\n", "  Max: 1\n  Name: x\n");
    let d = first(&text, Code::E0200);
    let hint = d.hint.unwrap_or_default();
    assert!(
        hint.starts_with("`Name` belongs at the top level of a spec, in an aggregate"),
        "{hint}"
    );
}

#[test]
fn missing_required_keys_point_at_the_mapping() {
    let text = WINDOW.replace("        Value: sum(source.purchase_amount)\n", "");
    let d = first(&text, Code::E0201);
    assert_eq!(at(&text, &d), "Name");
    assert!(d.message.contains("`Value`"));
    let text = STREAMING.replace("Identity: source.customer_identifier\n", "");
    assert!(first(&text, Code::E0201).message.contains("`Identity`"));
}

#[test]
fn bad_types_are_e0202_case_insensitive_good_ones_pass() {
    assert_eq!(
        codes(&WINDOW.replace(
            "Type: Window\nVersion",
            "Type: blurr:transform:WINDOW\nVersion"
        )),
        vec![]
    );
    let text = WINDOW.replace("Type: Window\nVersion", "Type: Windw\nVersion");
    assert_eq!(
        first(&text, Code::E0202).hint.as_deref(),
        Some("did you mean `Window`?")
    );
    let text = STREAMING.replace("Blurr:Aggregate:Block", "Blurr:Aggregate:Window");
    assert!(codes(&text).contains(&Code::E0202));
    let text = STREAMING.replace("Blurr:Store:Dynamo", "Redis");
    assert!(codes(&text).contains(&Code::E0202));
}

#[test]
fn version_must_be_a_quoted_date() {
    assert!(codes(&WINDOW.replace("'2026-11-01'", "2026-11-01")).contains(&Code::E0203));
    assert!(codes(&WINDOW.replace("'2026-11-01'", "'2026-13-01'")).contains(&Code::E0203));
    assert!(codes(&WINDOW.replace("'2026-11-01'", "'v1'")).contains(&Code::E0203));
    for not_a_day in [
        "'2023-02-29'",
        "'1900-02-29'",
        "'2026-04-31'",
        "'2026-11-00'",
    ] {
        let text = WINDOW.replace("'2026-11-01'", not_a_day);
        assert!(codes(&text).contains(&Code::E0203), "{not_a_day}");
    }
    assert_eq!(
        codes(&WINDOW.replace("'2026-11-01'", "\"2026-11-01\"")),
        vec![]
    );
}

#[test]
fn version_is_one_this_build_knows() {
    let dialect = |version: &str| {
        let (spec, diags) = load_spec(FileId(0), &WINDOW.replace("2026-11-01", version));
        assert_eq!(diags, vec![], "{version}");
        spec.map(|s| s.dialect)
    };
    assert_eq!(dialect("2018-03-01"), Some(Dialect::Blurr));
    assert_eq!(dialect("2018-03-07"), Some(Dialect::Blurr));
    assert_eq!(dialect("2026-11-01"), Some(Dialect::Native));
    for unknown in [
        "'2030-01-01'",
        "'2026-11-02'",
        "'2024-02-29'",
        "'2018-03-02'",
    ] {
        let text = WINDOW.replace("'2026-11-01'", unknown);
        let d = first(&text, Code::E0203);
        assert_eq!(at(&text, &d), unknown);
        assert!(
            d.message.contains("unknown format version"),
            "{}",
            d.message
        );
        let hint = d.hint.unwrap_or_default();
        for known in ["'2018-03-01'", "'2018-03-07'", "'2026-11-01'"] {
            assert!(hint.contains(known), "{hint}");
        }
    }
}

#[test]
fn invalid_names_are_reported_and_kept() {
    let text = STREAMING.replace("Name: game_stats", "Name: _stats");
    let d = first(&text, Code::E0204);
    assert_eq!(at(&text, &d), "_stats");
    let (spec, _) = load_spec(FileId(0), &text);
    assert_eq!(spec.map(|s| s.aggregates.len()), Some(2));
    assert!(codes(&STREAMING.replace("Name: note", "Name: run_x")).contains(&Code::E0204));
    assert!(codes(&STREAMING.replace("Name: note", "Name: a-b")).contains(&Code::E0204));
}

#[test]
fn duplicate_names_are_e0205() {
    let text = STREAMING.replace("Name: visits", "Name: game_stats");
    let d = first(&text, Code::E0205);
    assert!(d.span.start > STREAMING.find("visits").unwrap_or(0) - 20);
    let text = STREAMING.replace("Name: note", "Name: session_id");
    assert!(codes(&text).contains(&Code::E0205));
}

#[test]
fn keys_of_another_kind_are_e0206() {
    let text = STREAMING.replace("Time:", "Anchor: {Condition: x}\nTime:");
    assert_eq!(at(&text, &first(&text, Code::E0206)), "Anchor");
    let text = STREAMING.replace("    Store: dyn\n", "    Store: dyn\n    WindowType: day\n");
    assert_eq!(at(&text, &first(&text, Code::E0206)), "WindowType");
}

#[test]
fn aggregate_and_field_checks() {
    let text = WINDOW.replace("    Fields:\n", "    Fields: []\n  - X:\n");
    assert!(codes(&text).contains(&Code::E0300));
    let text = WINDOW.replace("Type: float", "Type: decimal");
    assert!(codes(&text).contains(&Code::E0301));
    let text = WINDOW.replace("Type: float", "Type: bool");
    assert_eq!(
        first(&text, Code::E0301).hint.as_deref(),
        Some("did you mean `boolean`?")
    );
    let block_without_dims = STREAMING.replace("    Dimensions:\n      - Name: session_id\n        Type: string\n        Value: source.session_id\n", "");
    assert!(codes(&block_without_dims).contains(&Code::E0302));
    let float_dim = STREAMING.replace(
        "Type: string\n        Value: source.session_id",
        "Type: float\n        Value: source.session_id",
    );
    assert!(codes(&float_dim).contains(&Code::E0303));
}

#[test]
fn activity_window_and_anchor_numbers() {
    for bad in ["0", "-5", "1.5", "'30'", "soon"] {
        let text = STREAMING.replace(
            "SeparateByInactiveSeconds: 1800",
            &format!("SeparateByInactiveSeconds: {bad}"),
        );
        assert!(codes(&text).contains(&Code::E0304), "{bad}");
    }
    let no_sep = STREAMING.replace("    SeparateByInactiveSeconds: 1800\n", "");
    assert!(codes(&no_sep).contains(&Code::E0304));
    assert!(codes(&WINDOW.replace("WindowType: Day", "WindowType: week")).contains(&Code::E0305));
    for bad in ["0", "1.5", "'x'", "[1]"] {
        let text = WINDOW.replace("WindowValue: +7", &format!("WindowValue: {bad}"));
        assert!(codes(&text).contains(&Code::E0306), "{bad}");
    }
    for good in ["-7", "'+3'", "\"-1\""] {
        assert_eq!(
            codes(&WINDOW.replace("WindowValue: +7", &format!("WindowValue: {good}"))),
            vec![],
            "{good}"
        );
    }
    assert!(codes(&WINDOW.replace("Max: 1", "Max: 0")).contains(&Code::E0308));
}

#[test]
fn stores_are_checked_and_referenced_by_name() {
    let text = STREAMING.replace("    Store: dyn\n", "    Store: dyno\n");
    let d = first(&text, Code::E0310);
    assert_eq!(d.hint.as_deref(), Some("did you mean `dyn`?"));
    assert!(
        codes(&STREAMING.replace("ReadCapacityUnits: 5", "ReadCapacityUnits: -1"))
            .contains(&Code::E0311)
    );
    let memory_with_table = STREAMING.replace("Blurr:Store:Dynamo", "Memory");
    assert!(codes(&memory_with_table).contains(&Code::E0206));
}

#[test]
fn all_problems_are_reported_in_one_pass() {
    let text = WINDOW
        .replace("Type: Window\nVersion", "Type: Window\nVersoin")
        .replace("WindowType: Day", "WindowType: week")
        .replace("Type: float", "Type: decimal")
        .replace("Max: 1", "Max: 0");
    let found = codes(&text);
    for code in [
        Code::E0200,
        Code::E0201,
        Code::E0305,
        Code::E0301,
        Code::E0308,
    ] {
        assert!(found.contains(&code), "{code:?} missing from {found:?}");
    }
}

#[test]
fn expression_errors_land_inside_their_scalar() {
    let text = WINDOW.replace(
        "Value: sum(source.purchase_amount)",
        "Value: \"sum(\\tsource.x +\"",
    );
    let (_, diags) = load_spec(FileId(0), &text);
    let scalar = text.find("\"sum").unwrap_or(0);
    for d in diags.iter().filter(|d| d.code == Code::E0400) {
        assert!(d.span.start >= scalar && d.span.end <= scalar + 17, "{d:?}");
    }
    assert!(diags.iter().any(|d| d.code == Code::E0400));
}

fn valid_spec_mutation() -> impl Strategy<Value = String> {
    (0..STREAMING.len(), 0..40usize, ".{0,12}").prop_map(|(at, cut, insert)| {
        let mut start = at;
        while !STREAMING.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + cut).min(STREAMING.len());
        while !STREAMING.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}{}{}", &STREAMING[..start], insert, &STREAMING[end..])
    })
}

/// Every span in `expr` with the text it covers.
fn spans<'a>(text: &'a str, expr: &crate::ast::Expr, out: &mut Vec<&'a str>) {
    out.push(&text[expr.span.range()]);
    if let crate::ast::ExprKind::Compare(first, rest) = &expr.kind {
        spans(text, first, out);
        rest.iter().for_each(|(_, e)| spans(text, e, out));
    }
}

#[test]
fn a_repeated_expression_is_placed_at_each_occurrence() {
    let when = "source.event_id == 'game_start'";
    let text = STREAMING.replace(
        "        Value: source.note\n",
        &format!(
            "        Value: source.note\n        When: {when}\n      - Name: again\n        When: {when}\n        Value: 1\n"
        ),
    );
    let (spec, diags) = load_spec(FileId(0), &text);
    assert_eq!(diags, vec![]);
    let fields = spec
        .map(|s| s.aggregates[0].fields.value.clone())
        .unwrap_or_default();
    let whens: Vec<Vec<&str>> = fields
        .iter()
        .filter_map(|f| f.when.as_ref())
        .map(|w| {
            let mut out = Vec::new();
            spans(&text, &w.expr, &mut out);
            out
        })
        .collect();
    let expected = vec![when, "source.event_id", "'game_start'"];
    assert_eq!(whens.len(), 3);
    assert!(whens.iter().all(|w| *w == expected), "{whens:?}");
    let starts: Vec<usize> = fields
        .iter()
        .filter_map(|f| f.when.as_ref())
        .map(|w| w.expr.span.start)
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
    // A repeated error is reported at each occurrence.
    let text = text.replace(when, "source.x +");
    let (_, diags) = load_spec(FileId(0), &text);
    let errors: Vec<usize> = diags
        .iter()
        .filter(|d| d.code == Code::E0400)
        .map(|d| d.span.start)
        .collect();
    assert_eq!(errors.len(), 3, "{diags:?}");
    assert!(errors.windows(2).all(|w| w[0] < w[1]), "{errors:?}");
    for d in diags.iter().filter(|d| d.code == Code::E0400) {
        assert_eq!(
            &text[d.span.start - "source.x +".len()..d.span.start],
            "source.x +"
        );
    }
}

proptest! {
    #[test]
    fn load_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let (_, diags) = load_spec(FileId(0), &text);
        for d in diags {
            prop_assert!(d.span.start <= d.span.end && d.span.end <= text.len());
        }
    }

    #[test]
    fn load_never_panics_on_mutated_specs(text in valid_spec_mutation()) {
        let (_, diags) = load_spec(FileId(0), &text);
        for d in diags {
            prop_assert!(d.span.start <= d.span.end && d.span.end <= text.len());
            prop_assert!(text.is_char_boundary(d.span.start) && text.is_char_boundary(d.span.end));
        }
    }
}
