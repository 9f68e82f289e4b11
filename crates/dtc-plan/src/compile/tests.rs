//! Resolver and type-checker tests over specs read by the real loader.

use dtc_lang::ast::BinOp;
use dtc_lang::diagnostic::{Code, Diagnostic};
use dtc_lang::load::load_spec;
use dtc_lang::span::FileId;
use dtc_lang::syntax::Spec;

use super::*;
use crate::plan::{
    Attribute, Builtin, CExpr, ColumnRole, Method, Slot, SourcePath, StreamingPlan,
    WindowAggregateKind,
};
use crate::value::Value;

/// Loads each text as its own file; the loader must accept them.
fn load(texts: &[&str]) -> Vec<Spec> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let file = FileId(u32::try_from(i).unwrap_or(u32::MAX));
            let (spec, diags) = load_spec(file, text);
            assert!(diags.is_empty(), "loader diagnostics: {diags:#?}");
            spec.unwrap_or_else(|| panic!("spec {i} did not load"))
        })
        .collect()
}

fn run(texts: &[&str]) -> (Catalog, Vec<Diagnostic>) {
    compile(&load(texts))
}

/// A streaming spec with a fixed header around `aggregates` (YAML list items, 2 spaces).
fn streaming_with(header: &str, aggregates: &str) -> String {
    format!(
        "Type: Streaming\nVersion: '2026-11-01'\nName: games\n{header}\nAggregates:\n{aggregates}"
    )
}

fn streaming(aggregates: &str) -> String {
    streaming_with(
        "Identity: source.user_id\nTime: parse_time(source.event_time)",
        aggregates,
    )
}

const SESSION: &str = "
  - Type: Identity
    Name: user
    Fields:
      - Name: country
        Value: source.country
  - Type: Block
    Name: session
    Dimensions:
      - Name: session_id
        Value: source.session_id
    Fields:
      - Name: games_played
        Type: integer
        Value: session.games_played + 1
      - Name: offer_type
        Value: source.offer_type
  - Type: Block
    Name: daily
    Dimensions:
      - Name: day
        Value: time.date().isoformat()
    Fields:
      - Name: events
        Type: integer
        Value: daily.events + 1
  - Type: Variable
    Name: vars
    Fields:
      - Name: price
        Type: float
        Value: source.price
";

fn window(anchor: &str, aggregates: &str) -> String {
    format!(
        "Type: Window\nVersion: '2026-11-01'\nName: features\nSourceDTC: games\nAnchor:\n  Condition: {anchor}\nAggregates:\n{aggregates}"
    )
}

const LAST_WEEK: &str = "
  - Type: Window
    Name: last_week
    WindowType: day
    WindowValue: -7
    Source: games.session
    Fields:
      - Name: games_played
        Type: integer
        Value: sum(source.games_played)
";

fn codes(diags: &[Diagnostic]) -> Vec<Code> {
    diags.iter().map(|d| d.code).collect()
}

/// The single diagnostic of a compilation, which must have `code`.
fn single(texts: &[&str], code: Code) -> Diagnostic {
    let (_, diags) = run(texts);
    assert_eq!(codes(&diags), vec![code], "{diags:#?}");
    diags.into_iter().next().unwrap_or_else(|| unreachable!())
}

fn compiled(texts: &[&str]) -> Catalog {
    let (catalog, diags) = run(texts);
    assert!(diags.is_empty(), "{diags:#?}");
    catalog
}

fn only_streaming(catalog: &Catalog) -> &StreamingPlan {
    assert_eq!(catalog.streaming.len(), 1);
    &catalog.streaming[0]
}

fn field<'p>(plan: &'p StreamingPlan, agg: &str, name: &str) -> &'p CExpr {
    plan.aggregates
        .iter()
        .find(|a| a.name == agg)
        .and_then(|a| {
            a.fields
                .iter()
                .chain(&a.dimensions)
                .find(|f| f.name == name)
        })
        .map(|f| &f.value)
        .unwrap_or_else(|| panic!("no field {agg}.{name}"))
}

fn path_index(plan: &StreamingPlan, path: &[&str]) -> u32 {
    let wanted = SourcePath(path.iter().map(|s| s.to_string()).collect());
    let i = plan
        .source_paths
        .iter()
        .position(|p| *p == wanted)
        .unwrap_or_else(|| panic!("path {path:?} not projected: {:?}", plan.source_paths));
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn one_field_spec(ty: &str, value: &str) -> String {
    streaming(&format!(
        "  - Type: Variable\n    Name: vars\n    Fields:\n      - Name: x\n        Type: {ty}\n        Value: \"{value}\"\n"
    ))
}

#[test]
fn offer_ai_specs_compile() {
    for (s, w) in [
        (
            include_str!("../../../../dtc-specs/offer-ai/offer-ai-streaming.yml"),
            include_str!("../../../../dtc-specs/offer-ai/offer-ai-window.yml"),
        ),
        (
            include_str!("../../../../dtc-specs/offer-ai/blurr/offer-ai-streaming-bts.yml"),
            include_str!("../../../../dtc-specs/offer-ai/blurr/offer-ai-window-bts.yml"),
        ),
    ] {
        let catalog = compiled(&[w, s]);
        assert_eq!(catalog.streaming.len(), 1);
        assert_eq!(catalog.window.len(), 1);
        let plan = &catalog.window[0];
        assert_eq!(
            plan.anchor_aggregate, 1,
            "game_stats is the second aggregate"
        );
        assert_eq!(plan.max_per_day, Some(1));
        assert!(
            plan.field_names
                .iter()
                .any(|f| f == "last_session.games_played"),
            "{:?}",
            plan.field_names
        );
        assert_eq!(plan.streaming.time, {
            let i = path_index(&plan.streaming, &["event_time"]);
            CExpr::Call(Builtin::ParseTime, vec![CExpr::Load(Slot::SourcePath(i))])
        });
    }
}

#[test]
fn layouts_follow_blurr_record_order() {
    let catalog = compiled(&[&streaming(SESSION)]);
    let plan = only_streaming(&catalog);
    let names = |i: usize| -> Vec<(&str, ColumnRole)> {
        plan.aggregates[i]
            .layout
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.role))
            .collect()
    };
    assert_eq!(
        names(0),
        vec![
            ("_identity", ColumnRole::Identity),
            ("country", ColumnRole::Field)
        ]
    );
    assert_eq!(
        names(1),
        vec![
            ("_identity", ColumnRole::Identity),
            ("_start_time", ColumnRole::StartTime),
            ("_end_time", ColumnRole::EndTime),
            ("games_played", ColumnRole::Field),
            ("offer_type", ColumnRole::Field),
            ("session_id", ColumnRole::Dimension),
        ]
    );
    assert_eq!(names(3), vec![("price", ColumnRole::Field)]);
    let session = &plan.aggregates[1];
    assert_eq!(session.fields[1].column, 4);
    assert_eq!(session.dimensions[0].column, 5);
    for f in session.fields.iter().chain(&session.dimensions) {
        let id = usize::try_from(f.error_id).unwrap_or(usize::MAX);
        assert_eq!(plan.field_names[id], format!("session.{}", f.name));
    }
    assert_eq!(plan.field_names.len(), 7);
}

#[test]
fn streaming_names_bind_to_slots() {
    let spec = streaming(
        "  - Type: Block
    Name: session
    Dimensions:
      - Name: session_id
        Value: source.session_id
    Fields:
      - Name: games
        Type: integer
        Value: session.games + 1
      - Name: first
        Type: datetime
        Value: session._start_time
  - Type: Variable
    Name: vars
    Fields:
      - Name: nested
        Value: source.a.b
      - Name: spaced
        Value: source['key with space']
      - Name: mixed
        Value: source.a['b c']
      - Name: when
        Type: datetime
        Value: time
      - Name: who
        Value: identity
      - Name: games
        Type: integer
        Value: session.games
      - Name: again
        Value: source.a.b.upper()
",
    );
    let catalog = compiled(&[&spec]);
    let plan = only_streaming(&catalog);
    let load = |slot| CExpr::Load(slot);
    let ab = path_index(plan, &["a", "b"]);
    assert_eq!(field(plan, "vars", "nested"), &load(Slot::SourcePath(ab)));
    assert_eq!(
        field(plan, "vars", "spaced"),
        &load(Slot::SourcePath(path_index(plan, &["key with space"])))
    );
    assert_eq!(
        field(plan, "vars", "mixed"),
        &load(Slot::SourcePath(path_index(plan, &["a", "b c"])))
    );
    assert_eq!(field(plan, "vars", "when"), &load(Slot::Time));
    assert_eq!(field(plan, "vars", "who"), &load(Slot::Identity));
    assert_eq!(
        field(plan, "vars", "games"),
        &load(Slot::Field { agg: 0, column: 3 })
    );
    assert_eq!(
        field(plan, "session", "first"),
        &load(Slot::Field { agg: 0, column: 1 })
    );
    assert_eq!(
        field(plan, "vars", "again"),
        &CExpr::Method(Box::new(load(Slot::SourcePath(ab))), Method::Upper, vec![])
    );
    // Each path is projected once, and only what the spec reads.
    assert_eq!(plan.source_paths.len(), 6);
    assert!(!plan.needs_whole_source);
}

#[test]
fn bare_source_keeps_the_whole_event() {
    let catalog = compiled(&[&one_field_spec("string", "source.get('k')")]);
    let plan = only_streaming(&catalog);
    assert!(plan.needs_whole_source);
    assert_eq!(
        field(plan, "vars", "x"),
        &CExpr::Method(
            Box::new(CExpr::Load(Slot::WholeSource)),
            Method::Get,
            vec![CExpr::Const(Value::str("k"))]
        )
    );
}

#[test]
fn forward_reference_names_both_aggregates() {
    let spec = streaming(
        "  - Type: Variable
    Name: first
    Fields:
      - Name: x
        Type: integer
        Value: later.y
  - Type: Variable
    Name: later
    Fields:
      - Name: y
        Type: integer
        Value: 1
",
    );
    let d = single(&[&spec], Code::E0402);
    assert_eq!(d.message, "`later` is defined after `first`");
    let start = spec.find("later.y").unwrap_or(0);
    assert_eq!((d.span.start, d.span.end), (start, start + 5));
}

#[test]
fn undefined_names_suggest_the_closest() {
    let d = single(
        &[&streaming(&SESSION.replace(
            "Value: session.games_played + 1",
            "Value: sesion.games_played + 1",
        ))],
        Code::E0401,
    );
    assert_eq!(d.message, "undefined name `sesion`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `session`?"));

    let d = single(
        &[&streaming(&SESSION.replace(
            "Value: session.games_played + 1",
            "Value: session.game_played + 1",
        ))],
        Code::E0403,
    );
    assert_eq!(d.message, "aggregate `session` has no field `game_played`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `games_played`?"));
}

#[test]
fn identity_and_time_see_only_the_event() {
    let spec = streaming_with(
        "Identity: identity\nTime: parse_time(source.t)",
        "  - Type: Variable\n    Name: vars\n    Fields:\n      - Name: x\n        Value: '1'\n",
    );
    assert_eq!(
        single(&[&spec], Code::E0408).message,
        "`identity` cannot be used in `Identity`"
    );
    let spec = streaming_with(
        "Identity: source.u\nTime: vars.x",
        "  - Type: Variable\n    Name: vars\n    Fields:\n      - Name: x\n        Value: '1'\n",
    );
    single(&[&spec], Code::E0408);
}

#[test]
fn functions_methods_and_arity() {
    let d = single(&[&one_field_spec("integer", "lenn(source.x)")], Code::E0404);
    assert_eq!(d.message, "unknown function `lenn`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `len`?"));
    let d = single(&[&one_field_spec("string", "source.x.uper()")], Code::E0404);
    assert_eq!(d.hint.as_deref(), Some("did you mean `upper`?"));
    let d = single(
        &[&one_field_spec("integer", "len(source.x, 2)")],
        Code::E0405,
    );
    assert_eq!(d.message, "`len` takes at most 1 argument (2 given)");
    single(
        &[&one_field_spec("string", "source.x.split(',', 1, 2)")],
        Code::E0405,
    );
    let d = single(
        &[&one_field_spec("list", "sorted(source.x, key=1)")],
        Code::E0405,
    );
    assert_eq!(d.message, "`sorted` has no keyword argument `key`");
    single(
        &[&one_field_spec("datetime", "datetime.strptime(source.x)")],
        Code::E0405,
    );
}

#[test]
fn keyword_arguments_are_placed() {
    let zero = || CExpr::Const(Value::Int(0));
    let int = |i| CExpr::Const(Value::Int(i));
    let catalog = compiled(&[&one_field_spec(
        "datetime",
        "time - timedelta(days=7, hours=1)",
    )]);
    let CExpr::Binary(_, rest) = field(only_streaming(&catalog), "vars", "x") else {
        panic!("not a subtraction");
    };
    let [(BinOp::Sub, delta)] = rest.as_slice() else {
        panic!("not one subtraction: {rest:?}");
    };
    assert_eq!(
        *delta,
        CExpr::Call(
            Builtin::TimeDelta,
            vec![int(7), zero(), zero(), zero(), zero(), int(1), zero()]
        )
    );
    let catalog = compiled(&[&one_field_spec("list", "sorted(source.x, reverse=True)")]);
    let CExpr::Call(Builtin::Sorted, args) = field(only_streaming(&catalog), "vars", "x") else {
        panic!("not sorted");
    };
    assert_eq!(args[1], CExpr::Const(Value::Bool(true)));
    let catalog = compiled(&[&one_field_spec("float", "round(source.x, ndigits=2)")]);
    let CExpr::Call(Builtin::Round, args) = field(only_streaming(&catalog), "vars", "x") else {
        panic!("not round");
    };
    assert_eq!(args.len(), 2);
}

#[test]
fn imports_map_to_builtins() {
    let spec = streaming_with(
        "Import:
  - { Module: dateutil, Identifiers: [parser, tz] }
  - { Module: datetime, Identifiers: [datetime as dt, timezone] }
  - { Module: math }
Identity: source.u
Time: parser.parse(source.t)",
        "  - Type: Variable
    Name: vars
    Fields:
      - Name: a
        Type: datetime
        Value: dt.fromtimestamp(source.n, timezone.utc)
      - Name: b
        Type: datetime
        Value: dt.strptime(source.s, '%Y')
      - Name: c
        Type: integer
        Value: math.floor(source.f)
      - Name: d
        Type: datetime
        Value: dt.fromtimestamp(source.n, tz.tzutc())
",
    );
    let catalog = compiled(&[&spec]);
    let plan = only_streaming(&catalog);
    let t = path_index(plan, &["t"]);
    assert_eq!(
        plan.time,
        CExpr::Call(Builtin::ParseTime, vec![CExpr::Load(Slot::SourcePath(t))])
    );
    let n = CExpr::Load(Slot::SourcePath(path_index(plan, &["n"])));
    assert_eq!(
        field(plan, "vars", "a"),
        &CExpr::Call(Builtin::FromTimestamp, vec![n.clone()])
    );
    assert_eq!(
        field(plan, "vars", "d"),
        &CExpr::Call(Builtin::FromTimestamp, vec![n])
    );
    assert!(matches!(
        field(plan, "vars", "b"),
        CExpr::Call(Builtin::Strptime, a) if a.len() == 2
    ));
    assert!(matches!(
        field(plan, "vars", "c"),
        CExpr::Call(Builtin::MathFloor, _)
    ));
}

#[test]
fn unsupported_imports_are_rejected() {
    let header = |import: &str| {
        streaming_with(
            &format!("Import:\n  - {import}\nIdentity: source.u\nTime: parse_time(source.t)"),
            "  - Type: Variable\n    Name: vars\n    Fields:\n      - Name: x\n        Value: '1'\n",
        )
    };
    let spec = header("{ Module: os }");
    let d = single(&[&spec], Code::E0407);
    assert!(d.message.contains("custom Python code is not supported"));
    assert!(
        d.hint
            .as_deref()
            .is_some_and(|h| h.contains("dateutil.parser (parse)"))
    );
    assert_eq!(&spec[d.span.range()], "os");
    let spec = header("{ Module: dateutil, Identifiers: [parsr] }");
    let d = single(&[&spec], Code::E0407);
    assert_eq!(&spec[d.span.range()], "parsr");
    assert!(
        d.hint
            .as_deref()
            .is_some_and(|h| h.starts_with("did you mean `parser`?"))
    );
}

#[test]
fn type_mismatches_are_reported() {
    let d = single(
        &[&one_field_spec("integer", "source.name.upper()")],
        Code::E0406,
    );
    assert_eq!(
        d.message,
        "field `x` is declared `integer` but its value has type `str`"
    );
    single(&[&one_field_spec("float", "[1, 2]")], Code::E0406);
    single(&[&one_field_spec("boolean", "{'a': 1}")], Code::E0406);
    single(&[&one_field_spec("datetime", "3")], Code::E0406);
    single(&[&one_field_spec("string", "'a' + 1")], Code::E0406);
    single(
        &[&one_field_spec("string", "str((5).upper())")],
        Code::E0406,
    );
    single(&[&one_field_spec("string", "'a' < 1")], Code::E0406);
    single(&[&one_field_spec("integer", "len(5)")], Code::E0406);
    single(&[&one_field_spec("list", "[y for y in 5]")], Code::E0406);
    single(&[&one_field_spec("integer", "time.yeer")], Code::E0406);
    // Conversions that may work, and anything involving source data, pass.
    compiled(&[&one_field_spec("float", "1")]);
    compiled(&[&one_field_spec("integer", "True")]);
    compiled(&[&one_field_spec("integer", "source.x + 1")]);
    compiled(&[&one_field_spec("string", "[1]")]);
    compiled(&[&one_field_spec("integer", "(time - time).days")]);
    compiled(&[&one_field_spec("integer", "time.year")]);
}

#[test]
fn first_and_last_have_the_element_type() {
    compiled(&[&one_field_spec("integer", "last([1, 2])")]);
    compiled(&[&one_field_spec("integer", "first(source.xs, default=0)")]);
    let d = single(&[&one_field_spec("integer", "last(['a'])")], Code::E0406);
    assert!(d.message.contains("type `str`"), "{}", d.message);
    single(&[&one_field_spec("integer", "first(5)")], Code::E0406);
    single(
        &[&one_field_spec("integer", "last([1], 2, 3)")],
        Code::E0405,
    );
}

#[test]
fn a_type_error_inside_a_chain_points_at_its_operation() {
    let text = one_field_spec("integer", "1 + 2 + 'a' + 3");
    let d = single(&[&text], Code::E0406);
    let start = text.find("1 + 2").unwrap_or(0);
    assert_eq!(&text[d.span.range()], "1 + 2 + 'a'");
    assert_eq!(d.span.start, start);
    assert_eq!(
        d.message,
        "unsupported operand types for `+`: `int` and `str`"
    );
}

#[test]
fn long_chains_compile_and_evaluate_without_deep_recursion() {
    use crate::eval::{Evaluator, testkit::NoScope};
    use crate::plan::Dialect;
    let n = 20_000;
    for (joiner, want) in [
        (" + ", Value::Int(n)),
        (" - ", Value::Int(2 - n)),
        (" * ", Value::Int(1)),
        (" and ", Value::Int(1)),
        (" or ", Value::Int(1)),
    ] {
        let value = vec!["1"; usize::try_from(n).unwrap_or(0)].join(joiner);
        let catalog = compiled(&[&one_field_spec("integer", &value)]);
        let expr = field(only_streaming(&catalog), "vars", "x");
        let got = Evaluator::new(Dialect::Native).eval(expr, &NoScope);
        assert_eq!(got, Ok(want), "{joiner:?}");
    }
}

#[test]
fn identity_time_and_dimensions_are_type_checked() {
    let vars =
        "  - Type: Variable\n    Name: vars\n    Fields:\n      - Name: x\n        Value: '1'\n";
    let d = single(
        &[&streaming_with(
            "Identity: source.u\nTime: source.event_time.strip()",
            vars,
        )],
        Code::E0406,
    );
    assert_eq!(d.hint.as_deref(), Some("parse it with parse_time(...)"));
    single(
        &[&streaming_with(
            "Identity: \"[source.u]\"\nTime: parse_time(source.t)",
            vars,
        )],
        Code::E0406,
    );
    compiled(&[&streaming_with("Identity: source.u\nTime: source.t", vars)]);
    // `When` accepts any type (truthiness).
    compiled(&[&streaming_with(
        "Identity: source.u\nTime: parse_time(source.t)\nWhen: source.x.split(',')",
        vars,
    )]);
    let dims = SESSION.replace(
        "Value: source.session_id",
        "Type: integer\n        Value: source.session_id.upper()",
    );
    let d = single(&[&streaming(&dims)], Code::E0406);
    assert!(d.message.contains("`session_id`"));
}

#[test]
fn comprehension_variables_are_locals() {
    let catalog = compiled(&[&one_field_spec(
        "list",
        "[x + y for x in source.a for y in x if y] + [x for x in [1]]",
    )]);
    let CExpr::Binary(left, rest) = field(only_streaming(&catalog), "vars", "x") else {
        panic!("not an addition");
    };
    let [(BinOp::Add, right)] = rest.as_slice() else {
        panic!("not one addition: {rest:?}");
    };
    let CExpr::ListComp { elt, generators } = &**left else {
        panic!("not a comprehension");
    };
    assert_eq!(
        **elt,
        CExpr::Binary(
            Box::new(CExpr::Local(0)),
            vec![(BinOp::Add, CExpr::Local(1))]
        )
    );
    assert_eq!((generators[0].first_local, generators[0].targets), (0, 1));
    assert_eq!((generators[1].first_local, generators[1].targets), (1, 1));
    assert_eq!(generators[1].iter, CExpr::Local(0));
    assert_eq!(generators[1].ifs, vec![CExpr::Local(1)]);
    // The second comprehension starts numbering again: the first one's variables are gone.
    let CExpr::ListComp { elt, .. } = right else {
        panic!("not a comprehension");
    };
    assert_eq!(**elt, CExpr::Local(0));

    // Nested comprehension shadowing an outer variable; tuple targets take two locals.
    let catalog = compiled(&[&one_field_spec(
        "list",
        "[[x for x in v] for k, x in source.m.items() for v in [x]]",
    )]);
    let CExpr::ListComp { elt, generators } = field(only_streaming(&catalog), "vars", "x") else {
        panic!("not a comprehension");
    };
    assert_eq!((generators[0].first_local, generators[0].targets), (0, 2));
    assert_eq!(generators[1].iter, CExpr::List(vec![CExpr::Local(1)]));
    let CExpr::ListComp {
        elt: inner,
        generators: inner_generators,
    } = &**elt
    else {
        panic!("not a nested comprehension");
    };
    assert_eq!(inner_generators[0].iter, CExpr::Local(2));
    assert_eq!(inner_generators[0].first_local, 3);
    assert_eq!(**inner, CExpr::Local(3));
}

#[test]
fn window_names_bind_to_slots() {
    let win = window(
        "games.session.offer_type != '' and games.user.country == 'DE'",
        &format!(
            "{LAST_WEEK}  - Type: Variable
    Name: extra
    Fields:
      - Name: offer
        Value: anchor.offer_type
      - Name: played
        Type: integer
        Value: last_week.games_played
      - Name: start
        Type: datetime
        Value: anchor._start_time
      - Name: who
        Value: identity
"
        ),
    );
    let catalog = compiled(&[&streaming(SESSION), &win]);
    let plan = &catalog.window[0];
    assert_eq!(plan.anchor_aggregate, 1);
    let CExpr::And(operands) = &plan.anchor else {
        panic!("not an `and`");
    };
    let [left, right] = operands.as_slice() else {
        panic!("not two operands");
    };
    let CExpr::Compare(session, _) = left else {
        panic!("not a comparison");
    };
    assert_eq!(**session, CExpr::Load(Slot::Stream { agg: 1, column: 4 }));
    let CExpr::Compare(user, _) = right else {
        panic!("not a comparison");
    };
    assert_eq!(**user, CExpr::Load(Slot::Stream { agg: 0, column: 1 }));

    let last_week = &plan.aggregates[0];
    let WindowAggregateKind::Window {
        source,
        used_columns,
        value,
        ..
    } = &last_week.kind
    else {
        panic!("not a window");
    };
    assert_eq!(
        (*source, used_columns.as_slice(), *value),
        (1, &[3][..], -7)
    );
    assert_eq!(
        last_week.fields[0].value,
        CExpr::Call(
            Builtin::Sum,
            vec![CExpr::Load(Slot::WindowSource { column: 3 })]
        )
    );
    let extra = &plan.aggregates[1];
    let values: Vec<&CExpr> = extra.fields.iter().map(|f| &f.value).collect();
    assert_eq!(
        values,
        vec![
            &CExpr::Load(Slot::Anchor { column: 4 }),
            &CExpr::Load(Slot::Field { agg: 0, column: 0 }),
            &CExpr::Load(Slot::Anchor { column: 1 }),
            &CExpr::Load(Slot::Identity),
        ]
    );
    assert_eq!(
        plan.field_names,
        vec![
            "last_week.games_played",
            "extra.offer",
            "extra.played",
            "extra.start",
            "extra.who"
        ]
    );
}

#[test]
fn anchor_aggregate_defaults_to_the_first_window_source() {
    let daily = LAST_WEEK
        .replace("games.session", "games.daily")
        .replace("sum(source.games_played)", "source.events[0]");
    let catalog = compiled(&[&streaming(SESSION), &window("anchor.events > 1", &daily)]);
    assert_eq!(catalog.window[0].anchor_aggregate, 2);
    let CExpr::Index(list, _) = &catalog.window[0].aggregates[0].fields[0].value else {
        panic!("not an index");
    };
    assert_eq!(**list, CExpr::Load(Slot::WindowSource { column: 3 }));
}

#[test]
fn window_resolution_errors() {
    let s = streaming(SESSION);
    let d = single(
        &[
            &s,
            &window(
                "anchor.offer_type",
                &LAST_WEEK.replace("sum(source.games_played)", "source.game_played"),
            ),
        ],
        Code::E0403,
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean `games_played`?"));
    let d = single(
        &[
            &s,
            &window("games.session.offer_type and games.daily.events", LAST_WEEK),
        ],
        Code::E0408,
    );
    assert_eq!(d.message, "`games.daily` is not the anchor's aggregate");
    assert!(
        d.hint
            .as_deref()
            .is_some_and(|h| h.contains("already reads `games.session`"))
    );
    let d = single(
        &[
            &s,
            &window(
                "anchor.offer_type",
                &format!(
                    "{LAST_WEEK}  - Type: Variable\n    Name: v\n    Fields:\n      - Name: d\n        Type: integer\n        Value: games.daily.events\n"
                ),
            ),
        ],
        Code::E0408,
    );
    assert_eq!(d.message, "`games.daily` is not the anchor's aggregate");
    single(
        &[
            &s,
            &window(
                "anchor.offer_type",
                &format!(
                    "{LAST_WEEK}  - Type: Variable\n    Name: v\n    Fields:\n      - Name: d\n        Value: source.x\n"
                ),
            ),
        ],
        Code::E0408,
    );
    let d = single(
        &[
            &s,
            &window(
                "anchor.offer_type",
                &LAST_WEEK.replace("games.session", "games.user"),
            ),
        ],
        Code::E0307,
    );
    assert_eq!(
        d.message,
        "`games.user` is not a Block or Activity aggregate"
    );
    let d = single(
        &[
            &s,
            &window(
                "anchor.offer_type",
                &LAST_WEEK.replace("games.session", "games.sesion"),
            ),
        ],
        Code::E0307,
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean `session`?"));
    single(
        &[
            &s,
            &window(
                "anchor.offer_type",
                &LAST_WEEK.replace("games.session", "other.session"),
            ),
        ],
        Code::E0307,
    );
    let d = single(&[&window("anchor.offer_type", LAST_WEEK)], Code::E0309);
    assert_eq!(d.message, "no loaded streaming spec is named `games`");
}

#[test]
fn a_window_spec_needs_a_valid_streaming_plan() {
    let broken = streaming(&SESSION.replace("source.country", "nothing"));
    let (catalog, diags) = run(&[&broken, &window("anchor.offer_type", LAST_WEEK)]);
    assert_eq!(codes(&diags), vec![Code::E0401]);
    assert!(catalog.streaming.is_empty());
    assert!(catalog.window.is_empty());
}

#[test]
fn attributes_of_values() {
    let catalog = compiled(&[&one_field_spec("integer", "time.year + source.m.days")]);
    let CExpr::Binary(year, rest) = field(only_streaming(&catalog), "vars", "x") else {
        panic!("not an addition");
    };
    let [(_, days)] = rest.as_slice() else {
        panic!("not one addition");
    };
    assert_eq!(
        **year,
        CExpr::Attr(Box::new(CExpr::Load(Slot::Time)), Attribute::Year)
    );
    // `source.m.days` is a projected path: source data is addressed by key.
    assert!(matches!(days, CExpr::Load(Slot::SourcePath(_))));
    let catalog = compiled(&[&one_field_spec("string", "{'a': 1}.a")]);
    assert!(matches!(
        field(only_streaming(&catalog), "vars", "x"),
        CExpr::Attr(_, Attribute::Key(k)) if &**k == "a"
    ));
}

#[test]
fn paths_read_only_at_admission_are_not_read_by_aggregates() {
    let spec = streaming_with(
        "Identity: source.user_id\nTime: parse_time(source.event_time)\nWhen: source.kind != 'test'",
        "  - Type: Block\n    Name: session\n    When: source.event_id == 'start'\n    Dimensions:\n      - Name: session_id\n        Value: source.session_id\n    Fields:\n      - Name: level\n        When: source.level != None\n        Value: '[x for x in source.items if x != source.skip]'\n",
    );
    let catalog = compiled(&[&spec]);
    let plan = only_streaming(&catalog);
    let read = plan.paths_read_by_aggregates();
    let read_by_aggregates = |path: &[&str]| read.get(path_index(plan, path) as usize).copied();
    for admission_only in [&["user_id"][..], &["event_time"], &["kind"]] {
        assert_eq!(
            read_by_aggregates(admission_only),
            Some(false),
            "{admission_only:?}"
        );
    }
    for used in [
        &["event_id"][..],
        &["session_id"],
        &["level"],
        &["items"],
        &["skip"],
    ] {
        assert_eq!(read_by_aggregates(used), Some(true), "{used:?}");
    }
}

/// A streaming spec of `aggregates` Block aggregates with `fields` fields each (every field
/// guarded by an event type of its own and reading fields of its aggregate by name), and a
/// window spec reading every field of the first one.
fn large_specs(aggregates: usize, fields: usize) -> (String, String) {
    let mut streaming = String::from(
        "Type: Streaming\nVersion: '2026-11-01'\nName: games\nIdentity: source.user_id\n\
         Time: parse_time(source.event_time)\nAggregates:\n",
    );
    for a in 0..aggregates {
        streaming.push_str(&format!(
            "  - Type: Block\n    Name: agg{a}\n    Dimensions:\n      - Name: session_id\n        \
             Value: source.session_id\n    Fields:\n"
        ));
        for f in 0..fields {
            streaming.push_str(&format!(
                "      - Name: f{f}\n        Type: integer\n        When: source.event_id == 'e{f}'\n        \
                 Value: agg{a}.f{f} + agg{a}.f{}\n",
                f / 2
            ));
        }
    }
    let mut window = String::from(
        "Type: Window\nVersion: '2026-11-01'\nName: rows\nSourceDTC: games\nAnchor:\n  \
         Condition: games.agg0.f0 > 0\nAggregates:\n  - Type: Window\n    Name: before\n    \
         WindowType: count\n    WindowValue: -3\n    Source: games.agg0\n    Fields:\n",
    );
    for f in 0..fields {
        window.push_str(&format!(
            "      - Name: f{f}\n        Type: integer\n        Value: sum(source.f{f})\n"
        ));
    }
    (streaming, window)
}

/// The shortest of `runs` runs of loading and compiling `texts`, in seconds.
fn validation_seconds(texts: &[&str], runs: usize) -> f64 {
    (0..runs)
        .map(|_| {
            let started = std::time::Instant::now();
            let (catalog, diags) = run(texts);
            assert!(diags.is_empty(), "{diags:#?}");
            assert_eq!(catalog.window.len(), 1);
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// A spec with 16 times as many fields must take about 16 times as long to validate, not
/// 256: no part of loading and compiling may scan all fields once per field. Measured as a
/// ratio, so the machine's speed does not matter. (It is about 17; bringing back one of the
/// scans this replaced, the column lookup by name, makes it about 30.)
#[test]
fn validation_time_grows_linearly_with_the_number_of_fields() {
    let (small_s, small_w) = large_specs(1, 500);
    let (large_s, large_w) = large_specs(1, 8_000);
    let small = validation_seconds(&[&small_s, &small_w], 3);
    let large = validation_seconds(&[&large_s, &large_w], 2);
    let ratio = large / small;
    assert!(
        ratio < 24.0,
        "500 fields: {small:.3} s, 8000 fields: {large:.3} s ({ratio:.1} times)"
    );
}
