//! Projection pushdown: JSON event line → one [`Value`] per requested path.
//!
//! The requested paths form a trie. Deserialization walks the event once with serde_json's
//! streaming parser; object members that no path asks for are skipped with [`IgnoredAny`], so
//! no tree is built for the event, and only requested values are allocated. A path whose whole
//! value is requested (an object or array used as such, or a prefix of another path) is built
//! into a [`Value`] and its sub-paths are read from that value.
//!
//! Most lines take a faster road first: [`Scanner`] reads plain lines (no escapes, no requested
//! object or array values, no exponents) straight from the bytes. It gives up on anything else
//! and the serde walk above decides, so results and error messages are the serde walk's.
//!
//! Numbers: JSON integers that fit `i64` become `Int`; larger integers and all other numbers
//! become `Float` (Python would keep big integers exact; no event source we know sends them).

use std::fmt;
use std::sync::Arc;

use dtc_plan::plan::SourcePath;
use dtc_plan::value::{Str, Value};
use indexmap::IndexMap;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::reject::{RejectReason, Rejection};

mod presence;
mod stops;

pub use presence::{PathPresence, SourceKeys, UnseenPath, unseen_paths};

use stops::{StopMask, string_stop};

#[derive(Debug, Clone, Default)]
struct Node {
    children: Vec<(Box<str>, u32)>,
    /// `children` hashed by [`name_hash`], open addressing: indices into `children`, and
    /// `u32::MAX` (an index no child has) where free. At most a quarter full, so a name no
    /// path asks for usually costs one probe and a length comparison.
    table: Box<[u32]>,
    /// Output index when this node's whole value is requested.
    slot: Option<u32>,
}

impl Node {
    /// The child for member `key`. Called for every member of every event, most of them not
    /// requested, from one place: inlined there.
    #[inline(always)]
    fn child(&self, key: &str) -> Option<u32> {
        let mask = self.table.len().checked_sub(1)?;
        let mut at = name_hash(key) & mask;
        loop {
            // A free entry ends the search: it has no child.
            let (name, child) = self.children.get(*self.table.get(at)? as usize)?;
            if same_name(name.as_bytes(), key.as_bytes()) {
                return Some(*child);
            }
            at = (at + 1) & mask;
        }
    }

    /// Builds `table` once every child is in.
    fn index_children(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let mask = (self.children.len() * 4).next_power_of_two() - 1;
        let mut table = vec![u32::MAX; mask + 1];
        for (index, (name, _)) in self.children.iter().enumerate() {
            let mut at = name_hash(name) & mask;
            while table[at] != u32::MAX {
                at = (at + 1) & mask;
            }
            table[at] = index as u32;
        }
        self.table = table.into();
    }
}

/// `a == b`, for the short names of event members without a call to `memcmp`: names of 4 to
/// 16 bytes are compared as two words read from either end (overlapping when shorter than two
/// words), which is all of a word-at-a-time comparison such names need.
fn same_name(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    fn ends<const W: usize>(s: &[u8]) -> Option<([u8; W], [u8; W])> {
        Some((*s.first_chunk::<W>()?, *s.last_chunk::<W>()?))
    }
    match n {
        8..=16 => ends::<8>(a) == ends::<8>(b),
        4..8 => ends::<4>(a) == ends::<4>(b),
        _ => a == b,
    }
}

/// Length, first and last byte: cheap to read, and they already tell apart most member names
/// (a clash only costs a comparison).
fn name_hash(name: &str) -> usize {
    let bytes = name.as_bytes();
    let (first, last) = (bytes.first(), bytes.last());
    let key = (bytes.len() as u32)
        ^ u32::from(first.copied().unwrap_or(0)) << 8
        ^ u32::from(last.copied().unwrap_or(0)) << 16;
    // Fibonacci hashing: the middle bits of the product depend on every input bit.
    (key.wrapping_mul(0x9e37_79b9) >> 16) as usize
}

/// Extracts a plan's source paths from raw JSON lines. Build once per plan, share freely.
#[derive(Debug, Clone)]
pub struct Extractor {
    nodes: Vec<Node>,
    /// `(first, duplicate)`: a path listed twice is copied from its first occurrence.
    duplicates: Vec<(u32, u32)>,
    paths: usize,
    whole: bool,
}

impl Extractor {
    /// `paths` in the plan's order (`StreamingPlan::source_paths`). With `whole`, the whole event
    /// is also produced, as a map after the paths (index `paths.len()`).
    pub fn new(paths: &[SourcePath], whole: bool) -> Extractor {
        let mut nodes = vec![Node::default()];
        let mut duplicates = Vec::new();
        for (index, path) in paths.iter().enumerate() {
            let index = index as u32;
            let mut node = 0usize;
            for part in &path.0 {
                let existing = nodes[node]
                    .children
                    .iter()
                    .find(|(name, _)| **name == **part)
                    .map(|(_, child)| *child as usize);
                node = match existing {
                    Some(child) => child,
                    None => {
                        let child = nodes.len();
                        nodes.push(Node::default());
                        nodes[node]
                            .children
                            .push((part.as_str().into(), child as u32));
                        child
                    }
                };
            }
            match nodes[node].slot {
                Some(first) => duplicates.push((first, index)),
                None => nodes[node].slot = Some(index),
            }
        }
        nodes.iter_mut().for_each(Node::index_children);
        Extractor {
            nodes,
            duplicates,
            paths: paths.len(),
            whole,
        }
    }

    /// How many values [`Extractor::extract`] produces per line.
    pub fn output_len(&self) -> usize {
        self.paths + usize::from(self.whole)
    }

    /// Fills `out` with one value per path (null when missing), plus the whole event when
    /// requested. Whatever `out` held is replaced; reuse it across lines.
    pub fn extract(&self, line: &[u8], out: &mut Vec<Value>) -> Result<(), Rejection> {
        if out.len() == self.output_len() {
            // Most paths are absent from most lines: resetting only the values the last line
            // set skips a drop per slot.
            for v in out.iter_mut().filter(|v| !v.is_null()) {
                v.clear();
            }
        } else {
            out.clear();
            // Not `resize`: its generic clone of the fill value is a jump table per element.
            out.extend(std::iter::repeat_with(|| Value::Null).take(self.output_len()));
        }
        let result = self.extract_into(line, out);
        if result.is_err() {
            // A rejected line must not leave half its values behind for a caller to misuse.
            out.iter_mut().for_each(|v| *v = Value::Null);
        }
        result
    }

    /// The fast road alone: fills `out` with one [`RawValue`] per path and says whether it
    /// took the line. It does not take lines with a whole-event output, nor lines the fast
    /// road leaves to serde (escapes, requested containers, invalid JSON, ...): for those
    /// [`Extractor::extract`] decides, and words any rejection.
    pub fn extract_raw(&self, line: &[u8], out: &mut Vec<RawValue>) -> bool {
        if self.whole || u32::try_from(line.len()).is_err() {
            return false;
        }
        out.clear();
        out.resize(self.paths, RawValue::Null);
        if Scanner::new(self, line).line(out.as_mut_slice()).is_none() {
            return false;
        }
        for &(first, duplicate) in &self.duplicates {
            out[duplicate as usize] = out[first as usize];
        }
        true
    }

    fn extract_into(&self, line: &[u8], out: &mut [Value]) -> Result<(), Rejection> {
        // The scanner checks UTF-8 as it goes (see `Scanner::string_body`), so a line it takes
        // is not read a second time for the check.
        if !self.whole {
            if Scanner::new(self, line).line(out).is_some() {
                self.copy_duplicates(out);
                return Ok(());
            }
            // The scanner gave up part-way: start the serde walk from a clean slate.
            out.iter_mut().for_each(|v| *v = Value::Null);
        }
        let text = std::str::from_utf8(line).map_err(|e| {
            Rejection::new(
                RejectReason::InvalidUtf8,
                format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1),
            )
        })?;
        self.extract_with_serde(text, out)
    }

    fn extract_with_serde(&self, text: &str, out: &mut [Value]) -> Result<(), Rejection> {
        let mut de = serde_json::Deserializer::from_str(text);
        let is_object = if self.whole {
            let whole = JsonValue.deserialize(&mut de).map_err(invalid_json)?;
            let is_object = matches!(whole, Value::Map(_));
            if is_object {
                self.fill_from_value(0, &whole, out);
                out[self.paths] = whole;
            }
            is_object
        } else {
            let seed = NodeSeed {
                ex: self,
                node: 0,
                out,
            };
            seed.deserialize(&mut de).map_err(invalid_json)?
        };
        de.end().map_err(invalid_json)?;
        if !is_object {
            return Err(Rejection::new(
                RejectReason::NotAnObject,
                "the event is not a JSON object",
            ));
        }
        self.copy_duplicates(out);
        Ok(())
    }

    fn copy_duplicates(&self, out: &mut [Value]) {
        for &(first, duplicate) in &self.duplicates {
            out[duplicate as usize] = out[first as usize].clone();
        }
    }

    /// Sets the outputs of `node` and its descendants from an already built value.
    fn fill_from_value(&self, node: usize, value: &Value, out: &mut [Value]) {
        let node = &self.nodes[node];
        if let Some(slot) = node.slot {
            out[slot as usize] = value.clone();
        }
        if node.children.is_empty() {
            return;
        }
        let Value::Map(map) = value else { return };
        for (name, child) in &node.children {
            if let Some(member) = map.get(&Value::str(name)) {
                self.fill_from_value(*child as usize, member, out);
            }
        }
    }
}

/// A requested value as the fast road found it in its line: a scalar, or where a string lies.
/// Nothing is built or copied for it; whoever needs a [`Value`] makes one
/// ([`RawValue::to_value`]), and a batch run encodes most events for its sort straight from
/// these.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum RawValue {
    /// Missing, or JSON `null`.
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string without escapes: `line[start..end]`, checked UTF-8.
    Str {
        start: u32,
        end: u32,
    },
}

impl RawValue {
    /// The string this value is in `line` (the line it was found in), if it is one.
    pub fn as_str<'a>(&self, line: &'a [u8]) -> Option<&'a str> {
        match *self {
            RawValue::Str { start, end } => {
                let bytes = line.get(start as usize..end as usize)?;
                if bytes.is_ascii() {
                    // SAFETY: ASCII is valid UTF-8. (Checked so, the short strings of events
                    // cost a word test instead of `from_utf8`'s byte loop.)
                    return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
                }
                std::str::from_utf8(bytes).ok()
            }
            _ => None,
        }
    }

    /// The value this is in `line` (the line it was found in).
    pub fn to_value(&self, line: &[u8]) -> Value {
        match *self {
            RawValue::Null => Value::Null,
            RawValue::Bool(b) => Value::Bool(b),
            RawValue::Int(i) => Value::Int(i),
            RawValue::Float(f) => Value::Float(f),
            RawValue::Str { .. } => self.as_str(line).map_or(Value::Null, Value::str),
        }
    }
}

/// Where the scanner puts what it finds for a requested path: built values (the general
/// road) or positions in the line ([`Extractor::extract_raw`]).
trait Found {
    /// A string: `text`, which starts at byte `start` of the line.
    fn string(&mut self, slot: usize, text: &str, start: usize);
    /// Anything but a string.
    fn scalar(&mut self, slot: usize, value: RawValue);
}

impl Found for [Value] {
    fn string(&mut self, slot: usize, text: &str, _start: usize) {
        self[slot].set(Value::str(text));
    }

    fn scalar(&mut self, slot: usize, value: RawValue) {
        // Not a string, so the line is not needed to build it.
        self[slot].set(value.to_value(&[]));
    }
}

impl Found for [RawValue] {
    fn string(&mut self, slot: usize, text: &str, start: usize) {
        // `extract_raw` takes no line of 4 GiB or more, so positions fit.
        self[slot] = RawValue::Str {
            start: start as u32,
            end: (start + text.len()) as u32,
        };
    }

    fn scalar(&mut self, slot: usize, value: RawValue) {
        self[slot] = value;
    }
}

/// Containers nested deeper than this go to the serde walk, which enforces its own limit.
const SCANNER_MAX_DEPTH: usize = 64;

/// The fast road for one line (see the module doc). Every method returns `None` to give up:
/// on invalid JSON or UTF-8 and on the shapes it leaves to serde (escapes, exponents,
/// requested objects or arrays, deep nesting), never on valid plain input.
///
/// It reads bytes, not a checked `str`: outside strings it accepts ASCII only (punctuation,
/// white space, numbers, literals), and each string is checked as it is scanned, so a line
/// it takes whole is valid UTF-8 (a multi-byte character cannot span a quote, which is
/// ASCII) without a separate pass over the line.
struct Scanner<'a> {
    ex: &'a Extractor,
    bytes: &'a [u8],
    at: usize,
    stops: StopMask,
}

impl<'a> Scanner<'a> {
    fn new(ex: &'a Extractor, bytes: &'a [u8]) -> Scanner<'a> {
        Scanner {
            ex,
            bytes,
            at: 0,
            stops: StopMask::of(bytes),
        }
    }

    fn line<F: Found + ?Sized>(&mut self, out: &mut F) -> Option<()> {
        self.ws();
        self.eat(b'{')?;
        self.object(Some(0), out, 0)?;
        self.ws();
        (self.at == self.bytes.len()).then_some(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The members of an object whose `{` was just read; `node` is its trie node, if any.
    fn object<F: Found + ?Sized>(
        &mut self,
        node: Option<u32>,
        out: &mut F,
        depth: usize,
    ) -> Option<()> {
        if depth > SCANNER_MAX_DEPTH {
            return None;
        }
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        self.eat(b'"')?;
        loop {
            let key = self.string_body()?;
            let child = node.and_then(|n| self.ex.nodes[n as usize].child(key));
            if self.next_is(b": ") {
                self.at += 2;
            } else {
                self.ws();
                self.eat(b':')?;
            }
            self.ws();
            match child {
                Some(child) => self.requested(child, out, depth)?,
                None => self.skip(depth)?,
            }
            // Event lines mostly separate members with `, ` or `,`: those are one step here,
            // and the next member's opening quote with them.
            if self.next_is(b", \"") {
                self.at += 3;
                continue;
            }
            if self.next_is(b",\"") {
                self.at += 2;
                continue;
            }
            self.ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.ws();
                    self.eat(b'"')?;
                }
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Whether the bytes at the current position start with `expected`.
    fn next_is<const N: usize>(&self, expected: &[u8; N]) -> bool {
        self.bytes
            .get(self.at..)
            .and_then(<[u8]>::first_chunk::<N>)
            .is_some_and(|next| next == expected)
    }

    /// The value at a trie node: stored if the node is requested, walked if a path goes on.
    fn requested<F: Found + ?Sized>(&mut self, node: u32, out: &mut F, depth: usize) -> Option<()> {
        let slot = self.ex.nodes[node as usize].slot;
        match (self.peek()?, slot) {
            (b'{' | b'[', Some(_)) => None,
            (b'{', None) => {
                self.at += 1;
                self.object(Some(node), out, depth + 1)
            }
            (_, None) => self.skip(depth),
            (b'"', Some(slot)) => {
                self.at += 1;
                let start = self.at;
                out.string(slot as usize, self.string_body()?, start);
                Some(())
            }
            (b't', Some(slot)) => self.literal("true", RawValue::Bool(true), slot, out),
            (b'f', Some(slot)) => self.literal("false", RawValue::Bool(false), slot, out),
            (b'n', Some(slot)) => self.literal("null", RawValue::Null, slot, out),
            (_, Some(slot)) => {
                out.scalar(slot as usize, self.number()?);
                Some(())
            }
        }
    }

    fn literal<F: Found + ?Sized>(
        &mut self,
        word: &str,
        value: RawValue,
        slot: u32,
        out: &mut F,
    ) -> Option<()> {
        self.skip_word(word)?;
        out.scalar(slot as usize, value);
        Some(())
    }

    fn skip_word(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word.as_bytes()).then(|| self.at = end)
    }

    /// A string after its opening quote, up to and past the closing one. Gives up on escapes,
    /// on control characters (invalid in JSON strings) and on invalid UTF-8; serde words the
    /// error.
    fn string_body(&mut self) -> Option<&'a str> {
        let start = self.at;
        // Nearly every string is ASCII without escapes and lies in the part of the line the
        // stop mask covers: its first stop is its closing quote.
        if let Some(stop) = self.stops.next(start)
            && self.bytes.get(stop) == Some(&b'"')
        {
            let body = self.bytes.get(start..stop)?;
            self.at = stop + 1;
            // SAFETY: `body` holds no stop, so no byte of it is 0x80 or above, and ASCII is
            // valid UTF-8.
            return Some(unsafe { std::str::from_utf8_unchecked(body) });
        }
        self.string_body_by_words(start)
    }

    /// [`Scanner::string_body`] for the rest: non-ASCII strings, strings past the part of the
    /// line the stop mask covers, and those it gives up on. Out of line, so that the common
    /// road saves and restores no registers for this one.
    #[cold]
    #[inline(never)]
    fn string_body_by_words(&mut self, start: usize) -> Option<&'a str> {
        let rest = self.bytes.get(start..)?;
        let mut end = string_stop(rest)?;
        let mut ascii = true;
        while rest.get(end).is_some_and(|&b| b >= 0x80) {
            ascii = false;
            end += 1 + string_stop(rest.get(end + 1..)?)?;
        }
        if rest.get(end) != Some(&b'"') {
            return None;
        }
        let body = rest.get(..end)?;
        self.at = start + end + 1;
        if ascii {
            // SAFETY: every byte of `body` is below 0x80 (`string_stop` stops at any other), and
            // ASCII is valid UTF-8.
            Some(unsafe { std::str::from_utf8_unchecked(body) })
        } else {
            std::str::from_utf8(body).ok()
        }
    }

    /// A number: plain integers of up to 18 digits directly, any other valid number through
    /// serde_json on just its text, so the value is the one the serde walk would produce.
    fn number(&mut self) -> Option<RawValue> {
        let start = self.at;
        let plain = self.number_text()?;
        let text = std::str::from_utf8(self.bytes.get(start..self.at)?).ok()?;
        let (negative, digits) = match text.strip_prefix('-') {
            Some(digits) => (true, digits),
            None => (false, text),
        };
        // `-0` is left to serde, which makes it a float.
        if plain && digits.len() <= 18 && !(negative && digits == "0") {
            let n = digits
                .bytes()
                .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
            return Some(RawValue::Int(if negative { -n } else { n }));
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let value = JsonValue.deserialize(&mut de).ok()?;
        de.end().ok()?;
        match value {
            Value::Int(i) => Some(RawValue::Int(i)),
            Value::Float(f) => Some(RawValue::Float(f)),
            _ => None,
        }
    }

    /// Checks the JSON number grammar and moves past it; whether it is a plain integer. Gives
    /// up on exponents and on very long numbers, which serde may reject as out of range.
    fn number_text(&mut self) -> Option<bool> {
        let start = self.at;
        let bytes = self.bytes;
        let digits = |at: &mut usize| {
            let from = *at;
            while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at - from
        };
        let mut at = self.at;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        let int_start = at;
        let int_digits = digits(&mut at);
        if int_digits == 0 || int_digits > 1 && bytes[int_start] == b'0' {
            return None;
        }
        let mut plain = true;
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            if digits(&mut at) == 0 {
                return None;
            }
            plain = false;
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) || at - start > 300 {
            return None;
        }
        self.at = at;
        Some(plain)
    }

    /// Validates and skips any value nobody asked for.
    fn skip(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.string_body().map(drop)
            }
            b'{' => {
                self.at += 1;
                // No member of an unrequested object is requested: nothing is found there.
                self.object::<[RawValue]>(None, &mut [], depth + 1)
            }
            b'[' => {
                self.at += 1;
                self.array(depth + 1)
            }
            b't' => self.skip_word("true"),
            b'f' => self.skip_word("false"),
            b'n' => self.skip_word("null"),
            _ => self.number_text().map(drop),
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > SCANNER_MAX_DEPTH {
            return None;
        }
        self.ws();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.skip(depth)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.ws();
                }
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

fn invalid_json(e: serde_json::Error) -> Rejection {
    Rejection::new(RejectReason::InvalidJson, e.to_string())
}

/// Deserializes the value at one trie node; yields whether it was an object.
struct NodeSeed<'a> {
    ex: &'a Extractor,
    node: usize,
    out: &'a mut [Value],
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        let node = &self.ex.nodes[self.node];
        if node.slot.is_some() {
            let value = JsonValue.deserialize(deserializer)?;
            self.ex.fill_from_value(self.node, &value, self.out);
            return Ok(matches!(value, Value::Map(_)));
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let node = &self.ex.nodes[self.node];
        while let Some(child) = map.next_key_seed(KeySeed(node))? {
            match child {
                Some(child) => {
                    map.next_value_seed(NodeSeed {
                        ex: self.ex,
                        node: child as usize,
                        out: &mut *self.out,
                    })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Resolves an object key to a child node without allocating (serde_json hands out borrowed
/// keys unless they contain escapes).
struct KeySeed<'a>(&'a Node);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<u32>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<u32>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<u32>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<u32>, E> {
        Ok(self.0.child(key))
    }
}

/// Builds a [`Value`] from any JSON value.
struct JsonValue;

impl<'de> DeserializeSeed<'de> for JsonValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        Ok(i64::try_from(u).map_or(Value::Float(u as f64), Value::Int))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::str(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(JsonValue)? {
            items.push(item);
        }
        Ok(Value::list(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = IndexMap::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key_seed(StrKey)? {
            let value = map.next_value_seed(JsonValue)?;
            // Like Python's json.loads, a repeated key keeps its last value.
            members.insert(Value::Str(key), value);
        }
        Ok(Value::Map(Arc::new(members)))
    }
}

/// An object key straight into a [`Str`] (no intermediate `String`).
struct StrKey;

impl<'de> DeserializeSeed<'de> for StrKey {
    type Value = Str;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Str, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrKey {
    type Value = Str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Str, E> {
        Ok(Str::from(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> SourcePath {
        SourcePath(p.split('.').map(str::to_owned).collect())
    }

    fn extract(paths: &[&str], line: &str) -> Result<Vec<Value>, Rejection> {
        let paths: Vec<SourcePath> = paths.iter().map(|p| path(p)).collect();
        let ex = Extractor::new(&paths, false);
        let mut out = vec![Value::Int(99)];
        ex.extract(line.as_bytes(), &mut out).map(|()| out)
    }

    #[test]
    fn a_reused_output_keeps_nothing_of_the_previous_line() {
        let paths: Vec<SourcePath> = ["a", "b", "c.d"].iter().map(|p| path(p)).collect();
        let ex = Extractor::new(&paths, false);
        let mut out = Vec::new();
        let lines = [
            (
                r#"{"a": "x", "c": {"d": [1]}}"#,
                Ok(vec![
                    Value::str("x"),
                    Value::Null,
                    Value::list(vec![Value::Int(1)]),
                ]),
            ),
            (
                r#"{"b": 2}"#,
                Ok(vec![Value::Null, Value::Int(2), Value::Null]),
            ),
            (r#"{"a": "y", "b": "#, Err(())),
            (
                r#"{"c": {"d": true}}"#,
                Ok(vec![Value::Null, Value::Null, Value::Bool(true)]),
            ),
        ];
        for (line, want) in lines {
            let got = ex.extract(line.as_bytes(), &mut out).map(|()| out.clone());
            assert_eq!(got.map_err(|_| ()), want, "{line}");
        }
    }

    #[test]
    fn nested_and_missing_paths() {
        let out = extract(
            &["user.id", "user.geo.country", "missing", "user.missing.deep", "n"],
            r#"{"skip": {"a": [1, {"b": 2}]}, "user": {"id": "u1", "geo": {"country": "FR"}}, "n": null}"#,
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                Value::str("u1"),
                Value::str("FR"),
                Value::Null,
                Value::Null,
                Value::Null
            ]
        );
    }

    #[test]
    fn path_through_a_non_object_is_null() {
        let out = extract(&["a.b", "c.d"], r#"{"a": "text", "c": [1, 2]}"#).unwrap();
        assert_eq!(out, vec![Value::Null, Value::Null]);
    }

    #[test]
    fn numbers_int_float_and_big_ints() {
        let out = extract(
            &["i", "f", "e", "neg", "big"],
            r#"{"i": 7, "f": 7.0, "e": 1e3, "neg": -9223372036854775808, "big": 18446744073709551615}"#,
        )
        .unwrap();
        assert!(matches!(out[0], Value::Int(7)));
        assert!(matches!(out[1], Value::Float(f) if f == 7.0));
        assert!(matches!(out[2], Value::Float(f) if f == 1000.0));
        assert!(matches!(out[3], Value::Int(i64::MIN)));
        assert!(matches!(out[4], Value::Float(f) if f == 18446744073709551615.0));
    }

    #[test]
    fn whole_objects_and_arrays_and_prefix_paths() {
        let out = extract(
            &["items", "meta", "meta.k", "flag"],
            r#"{"items": [1, "two", {"x": null}], "meta": {"k": "v", "k": "last"}, "flag": true}"#,
        )
        .unwrap();
        let x: IndexMap<Value, Value> = [(Value::str("x"), Value::Null)].into_iter().collect();
        assert_eq!(
            out[0],
            Value::list(vec![
                Value::Int(1),
                Value::str("two"),
                Value::Map(Arc::new(x))
            ])
        );
        let meta: IndexMap<Value, Value> = [(Value::str("k"), Value::str("last"))]
            .into_iter()
            .collect();
        assert_eq!(out[1], Value::Map(Arc::new(meta)));
        assert_eq!(out[2], Value::str("last"));
        assert_eq!(out[3], Value::Bool(true));
    }

    #[test]
    fn escapes_in_keys_and_values_and_repeated_keys() {
        let out = extract(
            &["key with space", "q", "dup"],
            r#"{"key\u0020with space": "a\"b\\nc\u00e9", "q": "\ud83d\ude00", "dup": 1, "dup": 2}"#,
        )
        .unwrap();
        assert_eq!(out[0], Value::str("a\"b\\nc\u{e9}"));
        assert_eq!(out[1], Value::str("\u{1f600}"));
        assert_eq!(out[2], Value::Int(2));
    }

    #[test]
    fn duplicate_paths_get_the_same_value() {
        let out = extract(&["a", "b", "a"], r#"{"a": 1, "b": 2}"#).unwrap();
        assert_eq!(out, vec![Value::Int(1), Value::Int(2), Value::Int(1)]);
    }

    #[test]
    fn whole_event_after_the_paths() {
        let ex = Extractor::new(&[path("a.b")], true);
        assert_eq!(ex.output_len(), 2);
        let mut out = Vec::new();
        ex.extract(br#"{"a": {"b": 5}, "c": "x"}"#, &mut out)
            .unwrap();
        assert_eq!(out[0], Value::Int(5));
        let Value::Map(whole) = &out[1] else {
            panic!("whole event is not a map: {:?}", out[1]);
        };
        assert_eq!(whole.get(&Value::str("c")), Some(&Value::str("x")));
        let err = ex.extract(b"[1]", &mut out).unwrap_err();
        assert_eq!(err.reason, RejectReason::NotAnObject);
    }

    /// The scanner and the serde walk agree on values and on errors, and the scanner really
    /// takes the plain lines.
    #[test]
    fn scanner_agrees_with_the_serde_walk() {
        let paths: Vec<SourcePath> = ["a", "b", "u.id", "u.geo.c", "n", "a"]
            .iter()
            .map(|p| path(p))
            .collect();
        let ex = Extractor::new(&paths, false);
        let plain = [
            r#"{"a": "x", "b": 12, "u": {"id": "u1", "geo": {"c": "FR"}}, "n": null}"#,
            r#"  {"b":-7,"a":true,"z":[1,2.5,{"q":[]},"s",null,false],"n":"é"}  "#,
            r#"{"a": 0, "b": -123456789012345678, "u": "flat", "n": 1.25}"#,
            r#"{"a": 1, "a": 2, "u": {"id": 1}, "u": {"geo": {"c": 3}}}"#,
            r#"{"b": 0.1, "n": -0.0, "u": {"geo": null}}"#,
            "{}",
            "{\t\"a\" :\r\n\"x\" }",
            r#"{"a": -0}"#,
            r#"{"a": 1234567890123456789, "b": -9223372036854775808}"#,
            r#"{"a": 18446744073709551616}"#,
            // Every spacing around `:` and `,`, the one-step forms and the general ones.
            r#"{"a":"x","b":1,"n":null}"#,
            r#"{"a" : "x" ,"b":  1 , "n"  :null,  "u": {"id":"u1" , "geo":{}}}"#,
            "{\"a\":\t\"x\",\n\"b\":\r\n2,\t \"n\": 3}",
            r#"{"a": "x", "z": [1, 2], "u": {"id": "u1"}, "n": 1}"#,
        ];
        let fallback = [
            r#"{"a": 1, }"#,
            r#"{"a": 1,, "b": 2}"#,
            r#"{"a": 1, "b"}"#,
            r#"{"a":: 1}"#,
            r#"{"a": 1e3, "b": 2E-2}"#,
            r#"{"z": 1e400}"#,
            r#"{"a": "tab\there", "b": "\u00e9"}"#,
            r#"{"k\u0020": 1, "a": 2}"#,
            r#"{"a": {"x": 1}, "b": [1]}"#,
            r#"{"a": 1,}"#,
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": tru}"#,
            r#"{"a": 1} x"#,
            r#"{"a" 1}"#,
            r#"[{"a": 1}]"#,
            r#""a""#,
            "{\"a\": \"ctl\u{1}\"}",
            r#"{"a": [1, 2"#,
        ];
        for (line, fast) in plain
            .iter()
            .map(|l| (l, true))
            .chain(fallback.iter().map(|l| (l, false)))
        {
            let mut scanned = vec![Value::Null; ex.output_len()];
            let took = Scanner::new(&ex, line.as_bytes())
                .line(scanned.as_mut_slice())
                .is_some();
            assert_eq!(took, fast, "scanner took {line}");
            let mut got = Vec::new();
            let got = ex.extract(line.as_bytes(), &mut got).map(|()| got);
            // The raw road takes the same lines and finds the same values.
            let mut raw = vec![RawValue::Int(99)];
            assert_eq!(
                ex.extract_raw(line.as_bytes(), &mut raw),
                fast,
                "raw took {line}"
            );
            if fast {
                let built: Vec<Value> = raw.iter().map(|r| r.to_value(line.as_bytes())).collect();
                assert_eq!(Ok(&built), got.as_ref(), "{line}");
            }
            let mut want = vec![Value::Null; ex.output_len()];
            let want = ex.extract_with_serde(line, &mut want).map(|()| want);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(format!("{g:?}"), format!("{w:?}"), "{line}"),
                (Err(g), Err(w)) => {
                    assert_eq!((g.reason, &g.detail), (w.reason, &w.detail), "{line}")
                }
                _ => panic!("{line}: {got:?} vs {want:?}"),
            }
        }
    }

    /// Every length around the word sizes, with a difference at every position, and names of
    /// different lengths sharing a prefix.
    #[test]
    fn same_name_is_byte_equality() {
        for len in 0..=20 {
            let name: Vec<u8> = (0..len).map(|i| b'a' + i as u8).collect();
            assert!(same_name(&name, &name.clone()), "{len}");
            for at in 0..len {
                let mut other = name.clone();
                other[at] ^= 0x20;
                assert!(!same_name(&name, &other), "{len} at {at}");
            }
            let longer = [&name[..], b"z"].concat();
            assert!(!same_name(&name, &longer), "{len}");
        }
    }

    /// Names sharing length, first and last byte (so their hashes clash), the empty name, and
    /// enough children to need a table of several hundred entries: every child is found by
    /// its own name only, through the scanner and through the serde walk alike.
    #[test]
    fn child_lookup_with_clashing_names() {
        let mut names: Vec<String> = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "aa",
            "event_time",
            "event_type",
            "eXent_time",
            "offer_type",
            "os_version",
            "session_id",
            "é",
            "éé",
            "e\u{e9}",
        ]
        .map(str::to_owned)
        .to_vec();
        names.extend((0..200).map(|i| format!("k{i:03}k")));
        let paths: Vec<SourcePath> = names.iter().map(|n| SourcePath(vec![n.clone()])).collect();
        let ex = Extractor::new(&paths, false);
        for (index, name) in names.iter().enumerate() {
            let child = ex.nodes[0].child(name).expect(name);
            assert_eq!(ex.nodes[child as usize].slot, Some(index as u32), "{name}");
        }
        for miss in [
            "c",
            "abc",
            "event_tame",
            "k200k",
            "k00k",
            "k000",
            "e",
            "éa",
            "aé",
        ] {
            assert_eq!(ex.nodes[0].child(miss), None, "{miss}");
        }
        assert_eq!(ex.nodes[1].child(""), None);
        let line = r#"{"aa": 1, "event_tame": 2, "event_type": 3, "": 4, "k150k": 5, "éé": 6}"#;
        let mut scanned = vec![Value::Null; ex.output_len()];
        let scanner = Scanner::new(&ex, line.as_bytes()).line(scanned.as_mut_slice());
        assert!(scanner.is_some());
        let mut walked = vec![Value::Null; ex.output_len()];
        ex.extract_with_serde(line, &mut walked).unwrap();
        for out in [scanned, walked] {
            let found: Vec<(&str, &Value)> = names
                .iter()
                .zip(&out)
                .filter(|(_, v)| **v != Value::Null)
                .map(|(n, v)| (n.as_str(), v))
                .collect();
            assert_eq!(
                found,
                [
                    ("", &Value::Int(4)),
                    ("aa", &Value::Int(1)),
                    ("event_type", &Value::Int(3)),
                    ("éé", &Value::Int(6)),
                    ("k150k", &Value::Int(5)),
                ]
            );
        }
    }

    #[test]
    fn string_body_stops_at_the_quote_and_gives_up_on_escapes_and_controls() {
        let ex = Extractor::new(&[], false);
        let body = |text: &'static str| {
            let mut scanner = Scanner::new(&ex, text.as_bytes());
            scanner.string_body().map(|body| (body, scanner.at))
        };
        assert_eq!(body("\""), Some(("", 1)));
        assert_eq!(body("0123456789abcdé\""), Some(("0123456789abcdé", 17)));
        assert_eq!(body("été\", 1"), Some(("été", 6)));
        assert_eq!(body("unterminated"), None);
        assert_eq!(body("12345678"), None);
        assert_eq!(body(""), None);
        assert_eq!(body("a\\\"b\""), None);
        assert_eq!(body("tab\there\""), None);
        assert_eq!(body("12345678\u{1f}\""), None);
        let bytes = |b: &'static [u8]| {
            let mut scanner = Scanner::new(&ex, b);
            scanner.string_body().map(|body| (body, scanner.at))
        };
        assert_eq!(
            bytes("日本語の文字列\"".as_bytes()),
            Some(("日本語の文字列", 22))
        );
        assert_eq!(bytes(b"ab\xc3\xa9cdefghij\"x"), Some(("abécdefghij", 13)));
        // Invalid UTF-8, a lone continuation byte and a character cut by the quote.
        assert_eq!(bytes(b"abc\xff\""), None);
        assert_eq!(bytes(b"\x80abcdefgh\""), None);
        assert_eq!(bytes(b"abcdefgh\xc3\""), None);
        assert_eq!(bytes(b"\xc3"), None);
        // Strings that start or end past the part of the line the stop mask covers.
        for text in ["plain", "été", "tab\there", "unterminated"] {
            let closed = text != "unterminated";
            for offset in [0, 1000, 1015, 1020, 1023, 1024, 1025, 1100] {
                let line = format!(
                    "{}{text}{}",
                    "x".repeat(offset),
                    if closed { "\"" } else { "" }
                );
                let mut scanner = Scanner::new(&ex, line.as_bytes());
                scanner.at = offset;
                let want = (closed && text != "tab\there").then_some((text, line.len()));
                let got = scanner.string_body().map(|body| (body, scanner.at));
                assert_eq!(got, want, "{text} at {offset}");
            }
        }
    }

    #[test]
    fn every_reject_reason_of_the_extractor() {
        let cases: [(&[u8], RejectReason); 8] = [
            (br#"{"a": 1"#, RejectReason::InvalidJson),
            (br#"{"a": 1} x"#, RejectReason::InvalidJson),
            (b"{'a': 1}", RejectReason::InvalidJson),
            (br#"{"a": 1e400}"#, RejectReason::InvalidJson),
            (br#"[1, {"a": 2}]"#, RejectReason::NotAnObject),
            (br#""text""#, RejectReason::NotAnObject),
            (b"null", RejectReason::NotAnObject),
            (b"{\"a\": \"\xff\"}", RejectReason::InvalidUtf8),
        ];
        let ex = Extractor::new(&[path("a")], false);
        let mut out = Vec::new();
        for (line, reason) in cases {
            let err = ex.extract(line, &mut out).unwrap_err();
            assert_eq!(err.reason, reason, "{}", String::from_utf8_lossy(line));
            assert_eq!(out, vec![Value::Null]);
        }
        let err = ex.extract(br#"{"a": 1,}"#, &mut out).unwrap_err();
        assert!(err.detail.contains("column 9"), "{}", err.detail);
        let err = ex.extract(b"{\"a\": \"\xff\"}", &mut out).unwrap_err();
        assert_eq!(err.detail, "invalid UTF-8 at byte 8");
        // The scanner checks UTF-8 where it goes: in a member no path asks for, in a member
        // name, and outside strings, the line is rejected all the same.
        for line in [
            &b"{\"a\": 1, \"skipped\": \"ok \xe9\"}"[..],
            b"{\"\xe9\": 1, \"a\": 2}",
            b"{\"a\": 1 \xff}",
        ] {
            let err = ex.extract(line, &mut out).unwrap_err();
            assert_eq!(
                err.reason,
                RejectReason::InvalidUtf8,
                "{}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(out, vec![Value::Null]);
        }
    }
}
