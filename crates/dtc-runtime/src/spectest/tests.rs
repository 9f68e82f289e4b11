use std::path::{Path, PathBuf};

use super::*;

const STREAMING: &str = "\
Type: Streaming
Version: '2026-11-01'
Name: games
Identity: source.user
Time: parse_time(source.ts)
Aggregates:
  - Type: Identity
    Name: profile
    Fields:
      - Name: country
        Value: source.country
  - Type: Block
    Name: session
    Dimensions:
      - Name: session_id
        Type: string
        Value: source.session
    Fields:
      - Name: games
        Type: integer
        When: source.kind == 'game'
        Value: session.games + 1
      - Name: offer
        Value: source.offer
";

const WINDOW: &str = "\
Type: Window
Version: '2026-11-01'
Name: features
SourceDTC: games
Anchor:
  Condition: games.session.offer != ''
Aggregates:
  - Type: Window
    Name: before
    WindowType: day
    WindowValue: -7
    Source: games.session
    Fields:
      - Name: games
        Type: integer
        Value: sum(source.games)
";

/// A directory holding the two specs and `tests.test.yml` = `test_file`.
fn dir_with(test_file: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("streaming.yml"), STREAMING).unwrap();
    std::fs::write(dir.path().join("window.yml"), WINDOW).unwrap();
    std::fs::write(dir.path().join("tests.test.yml"), test_file).unwrap();
    dir
}

fn options() -> TestOptions {
    TestOptions {
        scratch_dir: std::env::temp_dir(),
    }
}

/// Every test of the suite under `path`: (name, outcome).
fn run_all(path: &Path) -> (Suite, Vec<(String, TestOutcome)>) {
    let suite = load_suite(&[path.to_path_buf()]);
    let mut outcomes = Vec::new();
    for file in &suite.files {
        for test in &file.tests {
            outcomes.push((test.name.clone(), suite.run(file, test, &options())));
        }
    }
    (suite, outcomes)
}

/// The diagnostics as (code, file name, the text they point at).
fn diagnostics(suite: &Suite) -> Vec<(String, String, String)> {
    suite
        .diagnostics
        .iter()
        .map(|d| {
            let file = suite.sources.get(d.file).unwrap();
            let name = Path::new(file.path()).file_name().unwrap();
            (
                d.code.as_str().to_string(),
                name.to_string_lossy().into_owned(),
                file.text()[d.span.range()].to_string(),
            )
        })
        .collect()
}

// Starts with its indentation: a `\` line continuation would drop it.
const EVENTS: &str = "    Events:
      - {user: u1, ts: '2018-01-01T10:00:00', session: s1, kind: game, country: DE}
      - {user: u1, ts: '2018-01-01T10:05:00', session: s1, kind: game}
      - {user: u1, ts: '2018-01-03T10:00:00', session: s2, kind: game, offer: coins}
";

#[test]
fn expectations_met_pass_and_unmet_ones_fail_at_their_place() {
    let text = format!(
        "\
Streaming: streaming.yml
Window: window.yml
Tests:
  - Name: right
{EVENTS}    Expect:
      Records:
        - {{Identity: u1, Aggregate: profile, Fields: {{country: DE}}}}
        - {{Identity: u1, Aggregate: session, Dimensions: {{session_id: s1}}, Fields: {{games: 2, _start_time: '2018-01-01T10:00:00'}}}}
      Rows:
        - {{Identity: u1, AnchorTime: '2018-01-03T10:00:00', Columns: {{before.games: 2}}}}
      RowCount: 1
      Rejects: []
      Features:
        - {{Identity: u1, At: '2018-01-02', Columns: {{before.games: 2}}}}
        - {{Identity: u1, At: '2018-01-20', Columns: {{before.games: 0}}}}
      # The events without a country or an offer.
      Errors: {{profile.country: 2, session.offer: 2}}
  - Name: wrong
{EVENTS}    Expect:
      Records:
        - {{Identity: u1, Aggregate: session, Dimensions: {{session_id: s1}}, Fields: {{games: 3}}}}
        - {{Identity: u1, Aggregate: session, Dimensions: {{session_id: s9}}}}
        - {{Identity: u2, Aggregate: profile}}
      Rows:
        - {{Identity: u1, Columns: {{before.games: 1}}}}
      RowCount: 2
      Rejects:
        - {{Reason: bad_time}}
      Features:
        - {{Identity: u1, At: '2018-01-02', Columns: {{before.games: 1}}}}
"
    );
    let dir = dir_with(&text);
    let (suite, outcomes) = run_all(dir.path());
    assert_eq!(diagnostics(&suite), vec![]);
    assert_eq!(outcomes[0].0, "right");
    assert_eq!(outcomes[0].1, TestOutcome::default());
    let wrong = &outcomes[1].1;
    let got: Vec<(usize, usize, &str, &str, &str)> = wrong
        .failures
        .iter()
        .map(|f| {
            (
                f.line,
                f.column,
                f.what.as_str(),
                f.expected.as_str(),
                f.got.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                29,
                92,
                "record `session` of `u1` (session_id = \"s1\"), field `games`",
                "3",
                "2"
            ),
            (
                30,
                11,
                "record `session` of `u1` (session_id = \"s9\")",
                "a stored record",
                "2 other: session_id = \"s1\"; session_id = \"s2\""
            ),
            (
                31,
                11,
                "record `profile` of `u2`",
                "a stored record",
                "no records of `u2` (stored: u1)"
            ),
            (
                33,
                50,
                "row of `u1` anchored at 2018-01-03T10:00:00+00:00, column `before.games`",
                "1",
                "2"
            ),
            (
                34,
                17,
                "row count",
                "2",
                "1 (u1 at 2018-01-03T10:00:00+00:00)"
            ),
            (36, 11, "reject", "bad_time", "no such reject"),
            (
                38,
                68,
                "live features of `u1` at 2018-01-02T00:00:00+00:00, column `before.games`",
                "1",
                "2"
            ),
        ]
    );
    assert!(
        wrong
            .failures
            .iter()
            .all(|f| f.file.ends_with("tests.test.yml"))
    );
}

#[test]
fn rejects_are_placed_in_the_events_file_or_among_the_inline_events() {
    let text = "\
Streaming: streaming.yml
Tests:
  - Name: both inputs
    EventsFile: events.jsonl
    Events:
      - {user: u1, ts: '2018-01-01T10:00:00', session: s1, kind: game}
      - {user: u1, ts: never}
    Expect:
      Records:
        - {Identity: u1, Aggregate: session, Dimensions: {session_id: s1}, Fields: {games: 2}}
      Rejects:
        - {Reason: missing_identity, Line: 3}
        - {Reason: bad_time, Event: 2, Detail: never}
";
    let dir = dir_with(text);
    std::fs::write(
        dir.path().join("events.jsonl"),
        "{\"user\": \"u1\", \"ts\": \"2018-01-01T09:00:00\", \"session\": \"s1\", \"kind\": \"game\"}\n\n{\"ts\": \"2018-01-01T09:00:00\"}\n",
    )
    .unwrap();
    let (suite, outcomes) = run_all(dir.path());
    assert_eq!(diagnostics(&suite), vec![]);
    assert_eq!(outcomes[0].1, TestOutcome::default());
}

#[test]
fn names_the_specs_do_not_have_are_reported_with_a_hint() {
    let text = "\
Streaming: streaming.yml
Tests:
  - Name: t
    EventsFile: missing.jsonl
    Expect:
      Records:
        - {Identity: u1, Aggregate: sesion, Fields: {games: 1}}
        - {Identity: u1, Aggregate: session, Dimensions: {games: 1, sess: s1}, Fields: {gmes: 1, _start_time: soon}}
      Rows:
        - {Identity: u1, Columns: {games: 1}}
      Rejects:
        - {Reason: bad_tme}
      Errors: {session.gams: 1}
";
    let dir = dir_with(text);
    let suite = load_suite(&[dir.path().to_path_buf()]);
    let at = |code: &str, text: &str| {
        suite
            .diagnostics
            .iter()
            .find(|d| d.code.as_str() == code && diagnostics_text(&suite, d) == text)
            .map(|d| d.hint.clone().unwrap_or_default())
            .unwrap_or_else(|| panic!("no {code} at `{text}`: {:?}", diagnostics(&suite)))
    };
    assert!(at("E0500", "missing.jsonl").contains("relative to the test file"));
    assert_eq!(at("E0502", "sesion"), "did you mean `session`?");
    assert_eq!(
        at("E0502", "games"),
        "`games` is a field: expect it under `Fields`"
    );
    assert_eq!(at("E0502", "sess"), "did you mean `session_id`?");
    assert_eq!(at("E0502", "gmes"), "did you mean `games`?");
    assert!(at("E0503", "soon").contains("2018-01-01T10:00:00"));
    assert!(at("E0504", "{Identity: u1, Columns: {games: 1}}").contains("Window:"));
    assert_eq!(at("E0503", "bad_tme"), "did you mean `bad_time`?");
    assert_eq!(at("E0502", "session.gams"), "did you mean `session.games`?");
    assert_eq!(suite.diagnostics.len(), 9, "{:?}", diagnostics(&suite));
    assert!(suite.files.is_empty(), "a file with problems does not run");
}

fn diagnostics_text(suite: &Suite, d: &Diagnostic) -> String {
    let file = suite.sources.get(d.file).unwrap();
    file.text()[d.span.range()].to_string()
}

#[test]
fn spec_files_of_the_wrong_kind_or_with_errors_are_reported() {
    let dir = dir_with(
        "Streaming: window.yml\nWindow: streaming.yml\nTests:\n  - {Name: t, Expect: {RowCount: 0}}\n",
    );
    let suite = load_suite(&[dir.path().to_path_buf()]);
    assert_eq!(
        diagnostics(&suite),
        [
            (
                "E0501".to_string(),
                "tests.test.yml".to_string(),
                "window.yml".to_string()
            ),
            (
                "E0501".to_string(),
                "tests.test.yml".to_string(),
                "streaming.yml".to_string()
            ),
        ]
    );
    std::fs::write(
        dir.path().join("window.yml"),
        WINDOW.replace("Fields:", "Feilds:"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tests.test.yml"),
        "Streaming: streaming.yml\nWindow: window.yml\nTests:\n  - {Name: t, Expect: {RowCount: 0}}\n",
    )
    .unwrap();
    std::fs::copy(
        dir.path().join("tests.test.yml"),
        dir.path().join("again.test.yml"),
    )
    .unwrap();
    let suite = load_suite(&[dir.path().to_path_buf()]);
    let found = diagnostics(&suite);
    let feilds = (
        "E0200".to_string(),
        "window.yml".to_string(),
        "Feilds".to_string(),
    );
    assert_eq!(
        found.iter().filter(|d| **d == feilds).count(),
        1,
        "reported once for both test files: {found:?}"
    );
    assert!(suite.files.is_empty());
}

#[test]
fn directories_without_test_files_are_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.yml"), STREAMING).unwrap();
    let suite = load_suite(&[dir.path().to_path_buf()]);
    assert!(suite.unreadable);
    assert_eq!(suite.diagnostics[0].code, Code::E0100);
    let suite = load_suite(&[PathBuf::from("/nonexistent/dtc/x.test.yml")]);
    assert!(suite.unreadable);
    assert!(is_test_file(Path::new("a/b.test.yaml")));
    assert!(!is_test_file(Path::new("a/test.yml")));
}

/// The repository's `dtc-specs/` and the example events its tests read, copied.
fn repo_copy() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    for entry in walkdir::WalkDir::new(repo.join("dtc-specs")) {
        let entry = entry.unwrap();
        let relative = entry.path().strip_prefix(&repo).unwrap();
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(dir.path().join(relative)).unwrap();
        } else {
            std::fs::copy(entry.path(), dir.path().join(relative)).unwrap();
        }
    }
    std::fs::create_dir_all(dir.path().join("examples/offer-ai")).unwrap();
    std::fs::copy(
        repo.join("examples/offer-ai/events.jsonl"),
        dir.path().join("examples/offer-ai/events.jsonl"),
    )
    .unwrap();
    dir
}

#[test]
fn the_shipped_spec_tests_pass_and_fail_when_a_spec_is_broken() {
    let copy = repo_copy();
    let specs = copy.path().join("dtc-specs");
    let (suite, outcomes) = run_all(&specs);
    assert_eq!(diagnostics(&suite), vec![]);
    assert_eq!(
        suite.files.len(),
        2,
        "the native and the Blurr-format tests"
    );
    assert!(outcomes.len() >= 10);
    for (name, outcome) in &outcomes {
        assert!(outcome.passed(), "{name}: {outcome:?}");
    }

    // Each game now counts twice.
    let streaming = specs.join("offer-ai/offer-ai-streaming.yml");
    let text = std::fs::read_to_string(&streaming).unwrap();
    let broken = text.replace("game_stats.games_played + 1", "game_stats.games_played + 2");
    assert_ne!(text, broken);
    std::fs::write(&streaming, broken).unwrap();
    let (_, outcomes) = run_all(&specs);
    let failed: Vec<&(String, TestOutcome)> =
        outcomes.iter().filter(|(_, o)| !o.passed()).collect();
    assert!(!failed.is_empty());
    let (name, outcome) = failed[0];
    assert_eq!(name, "a session counts its games, wins and win ratio");
    let games = &outcome.failures[0];
    assert!(
        games.file.ends_with("offer-ai/offer-ai.test.yml"),
        "{games:?}"
    );
    assert_eq!(
        (
            games.what.as_str(),
            games.expected.as_str(),
            games.got.as_str()
        ),
        (
            "record `game_stats` of `U1` (session_id = \"S1\"), field `games_played`",
            "3",
            "6"
        )
    );
    let test_file = std::fs::read_to_string(&games.file).unwrap();
    let line = test_file.lines().nth(games.line - 1).unwrap();
    assert_eq!(line.trim(), "games_played: 3");
    assert_eq!(&line[games.column - 1..], "3");
    // The Blurr-format specs were not touched: their tests still pass.
    assert!(
        failed
            .iter()
            .all(|(_, o)| o.failures.iter().all(|f| !f.file.contains("blurr"))),
    );
}
