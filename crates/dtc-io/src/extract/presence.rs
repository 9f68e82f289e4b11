//! After a run: which requested source paths no line held, and the keys the lines did have,
//! so that a path the spec misspells (`source.offer_typ`) can be reported by name with a
//! "did you mean" instead of surfacing as null values.
//!
//! Kept apart from extraction: [`PathPresence`] reads the values [`crate::Extractor`] already
//! produced, and [`SourceKeys`] reads the top-level keys of a bounded number of lines, so a
//! caller that does not ask pays nothing.

use std::borrow::Cow;
use std::fmt;

use dtc_plan::hint::closest;
use dtc_plan::plan::SourcePath;
use dtc_plan::value::Value;
use indexmap::IndexSet;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::RawValue;

/// Which requested paths some line held a value at (JSON `null` counts as no value).
#[derive(Debug, Clone)]
pub struct PathPresence {
    /// The paths no line recorded so far held, in path order. Only these are looked at for
    /// each line, so recording costs nothing once every path turned up, and little while only
    /// a few have not (the usual case: the misspelt ones).
    unseen: Vec<usize>,
}

impl PathPresence {
    /// For an extractor of `paths` paths ([`crate::Extractor::output_len`] without the whole
    /// event).
    pub fn new(paths: usize) -> Self {
        PathPresence {
            unseen: (0..paths).collect(),
        }
    }

    /// Records the values [`crate::Extractor::extract`] gave one line.
    pub fn record(&mut self, values: &[Value]) {
        self.unseen
            .retain(|&i| values.get(i).is_none_or(Value::is_null));
    }

    /// Records the values [`crate::Extractor::extract_raw`] gave one line.
    pub fn record_raw(&mut self, values: &[RawValue]) {
        self.unseen
            .retain(|&i| values.get(i).is_none_or(|v| *v == RawValue::Null));
    }

    /// Whether some line held a value at path `index`.
    pub fn seen(&self, index: usize) -> bool {
        self.unseen.binary_search(&index).is_err()
    }

    /// Whether some path has not been seen yet (so a caller can stop collecting keys for a
    /// suggestion once every path turned up).
    pub fn any_unseen(&self) -> bool {
        !self.unseen.is_empty()
    }

    /// The indices of the paths no line held, in path order.
    pub fn unseen(&self) -> impl Iterator<Item = usize> + '_ {
        self.unseen.iter().copied()
    }
}

/// The distinct top-level keys of the lines shown to it, in order of first appearance, up to
/// a number of keys and of lines. Reading a line's keys costs about as much as extracting it,
/// so only the first lines of a run are read: keys that only turn up later are not listed.
#[derive(Debug, Clone)]
pub struct SourceKeys {
    keys: IndexSet<Box<str>>,
    max_keys: usize,
    lines_left: u64,
}

impl SourceKeys {
    /// Keys a suggestion is drawn from by default.
    pub const MAX_KEYS: usize = 1000;
    /// Lines read by default.
    pub const MAX_LINES: u64 = 100_000;

    /// Collects at most `max_keys` keys from the first `max_lines` lines.
    pub fn new(max_keys: usize, max_lines: u64) -> Self {
        SourceKeys {
            keys: IndexSet::new(),
            max_keys,
            lines_left: max_lines,
        }
    }

    /// Reads the top-level keys of `line`, a JSON object (anything else is ignored: the
    /// extractor rejects it).
    pub fn observe(&mut self, line: &[u8]) {
        if self.lines_left == 0 || self.keys.len() >= self.max_keys {
            return;
        }
        self.lines_left -= 1;
        let mut de = serde_json::Deserializer::from_slice(line);
        // A line that is not an object, or not JSON, adds the keys read before the problem.
        let _ = de.deserialize_map(TopKeys(self));
    }

    /// The keys collected, in order of first appearance.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| &**k)
    }

    /// Whether the collection stopped at its key or line bound.
    pub fn truncated(&self) -> bool {
        self.lines_left == 0 || self.keys.len() >= self.max_keys
    }
}

impl Default for SourceKeys {
    fn default() -> Self {
        SourceKeys::new(SourceKeys::MAX_KEYS, SourceKeys::MAX_LINES)
    }
}

struct TopKeys<'a>(&'a mut SourceKeys);

impl<'de> Visitor<'de> for TopKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if self.0.keys.len() < self.0.max_keys && !self.0.keys.contains(&*key) {
                self.0.keys.insert(key.into());
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// A member name, borrowed from the line when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// A requested path no line held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnseenPath {
    /// Index into the plan's `source_paths`.
    pub index: usize,
    /// As the spec writes it: `source.offer_typ`.
    pub name: String,
    /// `source.offer_type` when a key the lines had is close to the path's first part.
    pub suggestion: Option<String>,
}

/// The paths of `paths` that no line held, each with the closest key the lines had as a
/// suggestion, when its first part is not itself a key the lines had.
pub fn unseen_paths(
    paths: &[SourcePath],
    presence: &PathPresence,
    keys: &SourceKeys,
) -> Vec<UnseenPath> {
    presence
        .unseen()
        .filter_map(|index| {
            let path = paths.get(index)?;
            let first = path.0.first()?;
            let suggestion = if keys.keys.contains(first.as_str()) {
                None
            } else {
                closest(first, keys.keys()).map(|key| {
                    let mut parts = path.0.clone();
                    parts[0] = key.to_string();
                    source_name(&parts)
                })
            };
            Some(UnseenPath {
                index,
                name: source_name(&path.0),
                suggestion,
            })
        })
        .collect()
}

/// `source.a.b`, or `source['a b']` for a part that is not an identifier.
fn source_name(parts: &[String]) -> String {
    let mut name = String::from("source");
    for part in parts {
        let identifier = part
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if identifier {
            name.push('.');
            name.push_str(part);
        } else {
            name.push_str(&format!("[{part:?}]"));
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Extractor;

    fn paths(names: &[&str]) -> Vec<SourcePath> {
        names
            .iter()
            .map(|p| SourcePath(p.split('.').map(str::to_owned).collect()))
            .collect()
    }

    const LINES: &[&str] = &[
        r#"{"event_id": "offer_shown", "offer_type": "gems", "game": {"level": 3}}"#,
        r#"{"event_id": "game_end", "won": null, "game": {"level": 4}}"#,
        r#"{"event_id": "purchase", "txn_amount": "4.99", "user id": "u1"}"#,
    ];

    /// Runs `LINES` through an extractor of `names`, both roads.
    fn run(names: &[&str]) -> (Vec<SourcePath>, PathPresence, PathPresence, SourceKeys) {
        let paths = paths(names);
        let extractor = Extractor::new(&paths, false);
        let (mut values, mut raw) = (Vec::new(), Vec::new());
        let mut presence = PathPresence::new(paths.len());
        let mut raw_presence = PathPresence::new(paths.len());
        let mut keys = SourceKeys::default();
        for line in LINES {
            keys.observe(line.as_bytes());
            assert!(extractor.extract(line.as_bytes(), &mut values).is_ok());
            presence.record(&values);
            if extractor.extract_raw(line.as_bytes(), &mut raw) {
                raw_presence.record_raw(&raw);
            }
        }
        (paths, presence, raw_presence, keys)
    }

    #[test]
    fn a_misspelt_path_is_unseen_with_the_key_it_meant() {
        let (paths, presence, raw_presence, keys) = run(&[
            "event_id",
            "offer_typ",
            "game.levl",
            "won",
            "txn_amount",
            "user id",
            "country",
        ]);
        let unseen = unseen_paths(&paths, &presence, &keys);
        let shown: Vec<(&str, Option<&str>)> = unseen
            .iter()
            .map(|u| (u.name.as_str(), u.suggestion.as_deref()))
            .collect();
        assert_eq!(
            shown,
            [
                ("source.offer_typ", Some("source.offer_type")),
                // `game` is a key the lines had: the miss is deeper, no suggestion from the top.
                ("source.game.levl", None),
                // Present, but only ever null.
                ("source.won", None),
                ("source.country", None),
            ]
        );
        assert_eq!(unseen[0].index, 1);
        assert!(presence.seen(5), "a key that is not an identifier");
        // The fast road's values give the same answer.
        let raw: Vec<usize> = raw_presence.unseen().collect();
        assert_eq!(raw, presence.unseen().collect::<Vec<_>>());
    }

    #[test]
    fn keys_are_collected_in_order_up_to_their_bounds() {
        let (_, _, _, keys) = run(&["event_id"]);
        let all: Vec<&str> = keys.keys().collect();
        assert_eq!(
            all,
            [
                "event_id",
                "offer_type",
                "game",
                "won",
                "txn_amount",
                "user id"
            ]
        );
        assert!(!keys.truncated());
        let mut few = SourceKeys::new(2, 10);
        let mut one_line = SourceKeys::new(100, 1);
        for line in LINES {
            few.observe(line.as_bytes());
            one_line.observe(line.as_bytes());
        }
        assert_eq!(few.keys().collect::<Vec<_>>(), ["event_id", "offer_type"]);
        assert_eq!(one_line.keys().count(), 3);
        assert!(few.truncated() && one_line.truncated());
        // Lines that are not objects add nothing, and do not fail.
        let mut bad = SourceKeys::default();
        for line in [
            &b"[1, 2]"[..],
            b"not json",
            b"{\"a\": 1, \"b\": ",
            b"{\"k\\u00e9y\": 1}",
        ] {
            bad.observe(line);
        }
        assert_eq!(bad.keys().collect::<Vec<_>>(), ["a", "b", "k\u{e9}y"]);
    }

    #[test]
    fn recording_stops_looking_once_every_path_was_seen() {
        let mut presence = PathPresence::new(2);
        presence.record(&[Value::Int(1), Value::Null]);
        presence.record(&[Value::Null, Value::Int(2)]);
        assert_eq!(presence.unseen().count(), 0);
        presence.record(&[Value::Null, Value::Null]);
        assert!(presence.seen(0) && presence.seen(1));
    }
}
