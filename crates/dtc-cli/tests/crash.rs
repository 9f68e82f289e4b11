//! Kill and restart: a run killed (SIGKILL, through a failpoint of the test build) at any
//! point, then run again with the same command, must leave exactly what one clean run leaves:
//! the same store records, the same published rows (in the same part files), the same dead
//! letters, and nothing staged behind.
//!
//! A few points run in every test run; `scripts/crash-soak.sh` runs the ignored soak, which
//! spreads 200 or more crashes over a whole run (`DTC_SOAK_POINTS`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use dtc_store::BlockStore;

mod common;

fn specs() -> PathBuf {
    common::repo().join("dtc-specs/offer-ai")
}

/// Two inputs: a plain file and a gzip file.
fn write_inputs(dir: &Path, users: u32) {
    std::fs::write(
        dir.join("a.jsonl"),
        common::offer_ai_events(users, 0..7).join("\n") + "\n",
    )
    .expect("a");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all((common::offer_ai_events(users, 7..14).join("\n") + "\n").as_bytes())
        .expect("gzip");
    std::fs::write(dir.join("b.jsonl.gz"), gz.finish().expect("gzip")).expect("b");
}

/// One run's locations, all under the scenario's directory.
struct Target {
    name: String,
}

impl Target {
    fn new(name: &str) -> Target {
        Target {
            name: name.to_string(),
        }
    }

    fn store(&self) -> String {
        format!("{}-store", self.name)
    }

    fn out(&self) -> String {
        format!("{}-out", self.name)
    }

    fn dead_letters(&self) -> String {
        format!("{}-dead.jsonl", self.name)
    }
}

fn transform(dir: &Path, target: &Target, failpoint: Option<&str>, extra: &[&str]) -> Output {
    let mut cmd = common::dtc();
    cmd.current_dir(dir)
        .arg("transform")
        .arg("--streaming")
        .arg(specs().join("offer-ai-streaming.yml"))
        .arg("--window")
        .arg(specs().join("offer-ai-window.yml"))
        .args(["--source", "a.jsonl", "b.jsonl.gz"])
        .args(["--store", &target.store()])
        .args(["--output", &target.out()])
        .args(["--dead-letter", &target.dead_letters()])
        .args(["--format", "jsonl", "--write-batch", "10", "--quiet"])
        .args(extra);
    if let Some(point) = failpoint {
        cmd.args(["--failpoint", point]);
    }
    cmd.output().expect("run dtc")
}

/// Everything a run leaves, in a form to compare.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    records: Vec<String>,
    /// Every file in the output directory (hidden ones too: a stage left behind shows).
    output_files: Vec<String>,
    rows: Vec<String>,
    dead_letters: Vec<String>,
    /// Files beside the dead letters that are not the dead letters (staged letters left).
    staged_letters: Vec<String>,
}

fn snapshot(dir: &Path, target: &Target) -> Snapshot {
    let store = dtc_store::EmbeddedStore::open(&dir.join(target.store())).expect("open store");
    let mut records = Vec::new();
    for identity in store.all_identities().expect("identities") {
        for record in store.load_identity(&identity).expect("load") {
            records.push(format!("{record:?}"));
        }
    }
    records.sort();
    let out = dir.join(target.out());
    let mut output_files: Vec<String> = std::fs::read_dir(&out)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    output_files.sort();
    let mut rows = Vec::new();
    for name in output_files.iter().filter(|n| n.starts_with("part-")) {
        let text = std::fs::read_to_string(out.join(name)).expect("part");
        rows.extend(text.lines().map(str::to_string));
    }
    rows.sort();
    let dead_letters = std::fs::read_to_string(dir.join(target.dead_letters()))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let staged_letters = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!(".{}", target.dead_letters())))
        .collect();
    Snapshot {
        records,
        output_files,
        rows,
        dead_letters,
        staged_letters,
    }
}

fn killed(output: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    output.status.signal() == Some(9)
}

/// A scenario: inputs, and the snapshot of a clean run over them.
struct Scenario {
    tmp: tempfile::TempDir,
    clean: Snapshot,
}

impl Scenario {
    fn new(users: u32) -> Scenario {
        let tmp = tempfile::tempdir().expect("tempdir");
        write_inputs(tmp.path(), users);
        let clean = Target::new("clean");
        let output = transform(tmp.path(), &clean, None, &[]);
        assert!(output.status.success(), "{}", common::text(&output.stderr));
        let snapshot = snapshot(tmp.path(), &clean);
        assert!(!snapshot.rows.is_empty() && !snapshot.dead_letters.is_empty());
        assert!(snapshot.staged_letters.is_empty());
        Scenario {
            tmp,
            clean: snapshot,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Failpoints a clean run hits.
    fn hits(&self) -> u64 {
        let output = transform(
            self.dir(),
            &Target::new("count"),
            None,
            &["--count-failpoints"],
        );
        assert!(output.status.success(), "{}", common::text(&output.stderr));
        common::text(&output.stderr)
            .lines()
            .find_map(|l| l.strip_prefix("failpoints hit: "))
            .and_then(|n| n.parse().ok())
            .expect("the count of failpoints")
    }

    /// Kills a run at `point`, runs it again, and compares with the clean run. `Err` says what
    /// differs.
    fn crash_and_rerun(&self, name: &str, point: &str) -> Result<(), String> {
        let target = Target::new(name);
        let crashed = transform(self.dir(), &target, Some(point), &[]);
        if !killed(&crashed) {
            return Err(format!(
                "{point}: the run was not killed (exit {:?}): {}",
                crashed.status.code(),
                common::text(&crashed.stderr)
            ));
        }
        let rerun = transform(self.dir(), &target, None, &[]);
        if !rerun.status.success() {
            return Err(format!(
                "{point}: the run after the crash failed: {}",
                common::text(&rerun.stderr)
            ));
        }
        let got = snapshot(self.dir(), &target);
        if got != self.clean {
            return Err(format!("{point}: {}", difference(&self.clean, &got)));
        }
        // And a third run changes nothing.
        let again = transform(self.dir(), &target, None, &[]);
        let after = snapshot(self.dir(), &target);
        if !again.status.success() || after != self.clean {
            return Err(format!(
                "{point}: a third run changed the result: {} {}",
                difference(&self.clean, &after),
                common::text(&again.stderr)
            ));
        }
        Ok(())
    }
}

/// What differs between two snapshots, briefly.
fn difference(want: &Snapshot, got: &Snapshot) -> String {
    let part = |name: &str, a: &[String], b: &[String]| {
        (a != b).then(|| {
            let missing = a.iter().filter(|x| !b.contains(x)).count();
            let extra = b.iter().filter(|x| !a.contains(x)).count();
            format!(
                "{name}: {} expected, {} found ({missing} missing, {extra} extra; first extra: {:?})",
                a.len(),
                b.len(),
                b.iter().find(|x| !a.contains(x))
            )
        })
    };
    [
        part("records", &want.records, &got.records),
        part("output files", &want.output_files, &got.output_files),
        part("rows", &want.rows, &got.rows),
        part("dead letters", &want.dead_letters, &got.dead_letters),
        part("staged letters", &want.staged_letters, &got.staged_letters),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("; ")
}

#[test]
fn a_run_killed_at_any_of_these_points_and_run_again_equals_a_clean_run() {
    let scenario = Scenario::new(24);
    let points = [
        "runtime.read.record:50",
        "runtime.read.record:700",
        "engine.merge.start:1",
        "engine.merge.identity:5",
        "engine.store.written:2",
        "io.local.part.write:3",
        "runtime.commit.before:1",
        "runtime.commit.written:1",
        "runtime.commit.durable:1",
        "io.local.publish.renamed:1",
        "runtime.publish.output:1",
        "io.dead_letters.appended:1",
        "runtime.publish.dead_letters:1",
        "runtime.commit.finished:1",
    ];
    let failures: Vec<String> = points
        .iter()
        .enumerate()
        .filter_map(|(i, point)| scenario.crash_and_rerun(&format!("p{i}"), point).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} points differ:\n{}",
        failures.len(),
        points.len(),
        failures.join("\n")
    );
}

#[test]
fn crashes_spread_over_a_whole_run_each_leave_one_clean_runs_result() {
    let scenario = Scenario::new(12);
    let hits = scenario.hits();
    assert!(hits > 100, "only {hits} failpoints in a run");
    let points = 8;
    let failures: Vec<String> = (0..points)
        .map(|i| 1 + i * (hits - 1) / (points - 1))
        .filter_map(|n| {
            scenario
                .crash_and_rerun(&format!("n{n}"), &n.to_string())
                .err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The soak behind `scripts/crash-soak.sh`: `DTC_SOAK_POINTS` crashes (200 by default) at
/// points spread over a whole run, each followed by a restart and a comparison.
#[test]
#[ignore = "minutes long: run by scripts/crash-soak.sh"]
fn crash_soak() {
    let points: u64 = std::env::var("DTC_SOAK_POINTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let scenario = Scenario::new(40);
    let hits = scenario.hits();
    // Evenly spread, each moved by a seeded pseudo-random step so that neighbouring soaks
    // do not always hit the same points.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut identical = 0;
    let mut failures = Vec::new();
    for i in 0..points {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let spread = hits / points.max(1);
        let n = (1 + i * hits / points + seed % spread.max(1)).min(hits);
        match scenario.crash_and_rerun(&format!("s{i}"), &n.to_string()) {
            Ok(()) => identical += 1,
            Err(e) => failures.push(e),
        }
        std::fs::remove_dir_all(scenario.dir().join(format!("s{i}-store"))).ok();
        std::fs::remove_dir_all(scenario.dir().join(format!("s{i}-out"))).ok();
    }
    println!("crash soak: {hits} failpoints in a clean run");
    println!("{identical}/{points} identical");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
