use super::*;

fn load(text: &str) -> (Option<TestFile>, Vec<Diagnostic>) {
    load_test_file(FileId(0), text)
}

fn codes(text: &str) -> Vec<(Code, String)> {
    load(text)
        .1
        .into_iter()
        .map(|d| (d.code, text[d.span.range()].to_string()))
        .collect()
}

const GOOD: &str = "\
Streaming: s.yml
Window: w.yml
Tests:
  - Name: one session
    Events:
      - {user: u1, event_time: '2018-01-01T10:00:00', n: 1, ok: true, x: ~, tags: [a, 2]}
      - '{\"broken\": '
    EventsFile: events.jsonl
    Expect:
      Records:
        - Identity: u1
          Aggregate: session
          Dimensions: {session_id: s1}
          Fields: {games: 2, ratio: 0.5, name: '2', none: null}
      Rows:
        - Identity: u1
          AnchorTime: 2018-01-01T10:00:00
          Columns: {last.games: 2}
      RowCount: 1
      Rejects:
        - {Reason: invalid_json, Event: 2, Detail: EOF}
        - {Reason: bad_time, Line: 3}
      Features:
        - {Identity: u1, At: '2018-01-02', Columns: {last.games: 2}}
      Errors: {}
";

#[test]
fn a_complete_test_file_loads_typed() {
    let (file, diagnostics) = load(GOOD);
    assert_eq!(diagnostics, vec![]);
    let file = file.unwrap();
    assert_eq!(file.streaming.value, "s.yml");
    assert_eq!(file.window.map(|w| w.value), Some("w.yml".to_string()));
    let test = &file.tests[0];
    assert_eq!(test.name.value, "one session");
    let events: Vec<&str> = test.events.iter().map(|e| e.value.as_str()).collect();
    assert_eq!(
        events,
        [
            r#"{"event_time":"2018-01-01T10:00:00","n":1,"ok":true,"tags":["a",2],"user":"u1","x":null}"#,
            r#"{"broken": "#
        ]
    );
    let record = &test.expect.records[0];
    assert_eq!(record.aggregate.value, "session");
    let kinds: Vec<&LiteralKind> = record.fields.iter().map(|(_, v)| &v.kind).collect();
    assert_eq!(
        kinds,
        [
            &LiteralKind::Int(2),
            &LiteralKind::Float(0.5),
            &LiteralKind::Str("2".into()),
            &LiteralKind::Null
        ]
    );
    assert_eq!(
        test.expect.rows[0]
            .anchor_time
            .as_ref()
            .map(|t| t.value.to_rfc3339()),
        Some("2018-01-01T10:00:00+00:00".to_string())
    );
    assert_eq!(test.expect.row_count.as_ref().map(|c| c.value), Some(1));
    let rejects = &test.expect.rejects.as_ref().unwrap().value;
    assert!(matches!(&rejects[0].position, Some(RejectPosition::Event(n)) if n.value == 2));
    assert!(matches!(&rejects[1].position, Some(RejectPosition::Line(n)) if n.value == 3));
    assert_eq!(
        rejects[0].detail.as_ref().map(|d| d.value.as_str()),
        Some("EOF")
    );
    assert_eq!(test.expect.features[0].columns.len(), 1);
    assert_eq!(test.expect.errors.as_ref().map(|e| e.value.len()), Some(0));
}

#[test]
fn every_problem_of_a_file_is_reported_at_its_node() {
    let text = "\
Streaming: s.yml
Tests:
  - Name: a
    Evnts: []
    Expect:
      Rows:
        - Identity: u1
          At: '2018-01-01'
      RowCount: -1
      Rejects:
        - {Reason: bad_time, Event: 3}
        - {Reason: bad_time, Line: 1}
  - Name: a
    Events: [{a: .nan}, 7, \"two\\nlines\", ~]
    Expect: {}
  - Name: b
    Expect:
      Features:
        - {Identity: u1, At: tomorrow, Columns: {}}
";
    assert_eq!(
        codes(text),
        [
            (Code::E0200, "Evnts".to_string()),
            (Code::E0200, "At".to_string()),
            (Code::E0503, "-1".to_string()),
            (Code::E0503, "3".to_string()),
            (Code::E0503, "1".to_string()),
            (Code::E0507, ".nan".to_string()),
            (Code::E0507, "\"two\\nlines\"".to_string()),
            (Code::E0102, "~".to_string()),
            (Code::E0506, "Expect".to_string()),
            (Code::E0503, "tomorrow".to_string()),
            (Code::E0505, "a".to_string()),
        ]
    );
    let diagnostics = load(text).1;
    let hint = |key: &str| {
        diagnostics
            .iter()
            .find(|d| &text[d.span.range()] == key)
            .and_then(|d| d.hint.clone())
    };
    assert_eq!(hint("Evnts"), Some("did you mean `Events`?".to_string()));
    assert_eq!(
        hint("At"),
        Some(
            "`At` belongs in a `Features` entry; a `Rows` entry takes `Identity`, `AnchorTime` or `Columns`"
                .to_string()
        )
    );
}

#[test]
fn missing_keys_and_shapes() {
    assert_eq!(
        codes("Window: w.yml\nTests: []\n"),
        [
            (Code::E0201, "Window".to_string()),
            (Code::E0506, "[]".to_string())
        ]
    );
    assert_eq!(codes("- a\n"), [(Code::E0102, "- a".to_string())]);
    assert_eq!(
        codes("Streaming: [a\n").first().map(|c| c.0),
        Some(Code::E0101)
    );
    assert_eq!(
        codes("Streaming: s.yml\nStreaming: t.yml\nTests:\n  - {Name: x, Expect: {RowCount: 0}}\n"),
        [(Code::E0101, "Streaming".to_string())]
    );
    assert_eq!(
        codes("Streaming: s.yml\nTests:\n  - {Expect: {RowCount: 0}}\n"),
        [(Code::E0201, "Expect".to_string())]
    );
}

#[test]
fn a_file_loads_when_only_its_tests_are_broken() {
    let (file, diagnostics) = load("Streaming: s.yml\nTests:\n  - {Name: x, Expect: {Rows: 3}}\n");
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(file.map(|f| f.streaming.value), Some("s.yml".to_string()));
}
