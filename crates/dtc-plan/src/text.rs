//! [`Str`], the string of a [`Value`](crate::value::Value): up to 23 bytes inside the value
//! itself, longer ones shared on the heap.
//!
//! The layout is `smol_str`'s (which this replaces): 24 bytes, the inline length's unused
//! values telling the heap form apart. What differs is making one: event strings are made by
//! the million (every extracted and decoded string), and copying a short one here takes a
//! few word moves instead of a byte loop or a `memcpy` call.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// A string value: inline up to [`Str::INLINE_CAP`] bytes, else a shared heap string.
/// Equality, order and hashing are those of the `str` it holds.
#[derive(Clone)]
pub struct Str(Repr);

#[derive(Clone)]
enum Repr {
    /// The bytes after `len` are zero, so that two inline strings are equal exactly when
    /// their whole representations are.
    Inline {
        len: InlineLen,
        buf: [u8; Str::INLINE_CAP],
    },
    Heap(Arc<str>),
}

/// The length of an inline string. An enum rather than a `u8` so that its values past 23 are
/// free for `Repr` to mark the heap form with, which keeps `Str` at 24 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[rustfmt::skip]
enum InlineLen {
    L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, L12, L13, L14, L15, L16, L17, L18, L19,
    L20, L21, L22, L23,
}

impl InlineLen {
    #[rustfmt::skip]
    const ALL: [InlineLen; Str::INLINE_CAP + 1] = {
        use InlineLen::*;
        [
            L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, L12, L13, L14, L15, L16, L17, L18,
            L19, L20, L21, L22, L23,
        ]
    };

    /// Panics past [`Str::INLINE_CAP`], which no caller passes.
    fn new(len: usize) -> InlineLen {
        InlineLen::ALL[len]
    }
}

impl Str {
    /// The longest string kept inline.
    pub const INLINE_CAP: usize = 23;

    /// `""`, usable in constants.
    pub const EMPTY: Str = Str(Repr::Inline {
        len: InlineLen::L0,
        buf: [0; Str::INLINE_CAP],
    });

    pub fn new(text: &str) -> Str {
        let bytes = text.as_bytes();
        if bytes.len() > Str::INLINE_CAP {
            return Str::on_heap(text);
        }
        Str(Repr::Inline {
            len: InlineLen::new(bytes.len()),
            buf: inline_bytes(bytes),
        })
    }

    /// Kept out of line, so that the inline road, inlined where strings are made, saves no
    /// registers for it.
    #[cold]
    #[inline(never)]
    fn on_heap(text: &str) -> Str {
        Str(Repr::Heap(Arc::from(text)))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, buf } => {
                let bytes = &buf[..*len as usize];
                // SAFETY: `buf` starts with the bytes of a `str` of `len` bytes (see `new`).
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }
            Repr::Heap(text) => text,
        }
    }

    /// Whether the string lives on the heap (it is longer than [`Str::INLINE_CAP`]).
    pub fn is_heap_allocated(&self) -> bool {
        matches!(self.0, Repr::Heap(_))
    }
}

/// `src` (at most [`Str::INLINE_CAP`] bytes) zero-padded to an inline buffer, from word
/// loads at either end that overlap in the middle, instead of a `memcpy` call or a move per
/// byte. The words are combined in registers and the buffer is assembled at fixed offsets:
/// stores at offsets that depend on the length would have to go through a buffer in memory,
/// and moving that buffer into the string reads it back, at once and in other widths, which
/// the CPU cannot forward from the stores still pending and waits for.
#[inline]
fn inline_bytes(src: &[u8]) -> [u8; Str::INLINE_CAP] {
    let n = src.len();
    let word = |at: usize| {
        src.get(at..at + 8)
            .map_or(0, |w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
    };
    let half = |at: usize| {
        src.get(at..at + 4).map_or(0, |w| {
            u64::from(u32::from_le_bytes(w.try_into().unwrap_or_default()))
        })
    };
    let byte = |at: usize| src.get(at).map_or(0, |&b| u64::from(b));
    // The bytes `from..n` in the low end of a word: the word that ends at `n`, shifted down.
    let tail = |from: usize| word(n - 8) >> (8 * (from + 8 - n));
    let (w0, w1, w2) = match n {
        17..=Str::INLINE_CAP => (word(0), word(8), tail(16)),
        16 => (word(0), word(8), 0),
        9..16 => (word(0), tail(8), 0),
        8 => (word(0), 0, 0),
        4..8 => (half(0) | half(n - 4) << (8 * (n - 4)), 0, 0),
        1..4 => (
            byte(0) | byte(n / 2) << (8 * (n / 2)) | byte(n - 1) << (8 * (n - 1)),
            0,
            0,
        ),
        _ => (0, 0, 0),
    };
    let mut buf = [0u8; Str::INLINE_CAP];
    buf[..8].copy_from_slice(&w0.to_le_bytes());
    buf[8..16].copy_from_slice(&w1.to_le_bytes());
    buf[16..].copy_from_slice(&w2.to_le_bytes()[..Str::INLINE_CAP - 16]);
    buf
}

impl Default for Str {
    fn default() -> Str {
        Str::new("")
    }
}

impl Deref for Str {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Str) -> bool {
        match (&self.0, &other.0) {
            // Whole representations: the bytes past the length are zero in both.
            (Repr::Inline { len: a, buf: x }, Repr::Inline { len: b, buf: y }) => a == b && x == y,
            _ => self.as_str() == other.as_str(),
        }
    }
}

impl Eq for Str {}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Str) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Str) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// As the `str`, so that maps keyed by `Str` can be searched with a `&str`.
impl Hash for Str {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<&str> for Str {
    fn from(text: &str) -> Str {
        Str::new(text)
    }
}

impl From<String> for Str {
    fn from(text: String) -> Str {
        if text.len() > Str::INLINE_CAP {
            Str(Repr::Heap(Arc::from(text)))
        } else {
            Str::new(&text)
        }
    }
}

impl From<Arc<str>> for Str {
    fn from(text: Arc<str>) -> Str {
        if text.len() > Str::INLINE_CAP {
            Str(Repr::Heap(text))
        } else {
            Str::new(&text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_str_is_the_size_of_three_words() {
        assert_eq!(std::mem::size_of::<Str>(), 24);
        assert_eq!(std::mem::size_of::<Option<Str>>(), 24);
    }

    /// Equality compares whole inline representations, so every length must leave the bytes
    /// after it zero.
    #[test]
    fn inline_strings_are_zero_past_their_length() {
        let text = "abcdefghijklmnopqrstuvwxyz";
        for n in 0..=Str::INLINE_CAP {
            match Str::new(&text[..n]).0 {
                Repr::Inline { buf, .. } => {
                    assert_eq!(&buf[..n], &text.as_bytes()[..n], "{n}");
                    assert!(buf[n..].iter().all(|&b| b == 0), "{n}: {buf:?}");
                }
                Repr::Heap(_) => panic!("{n} bytes went to the heap"),
            }
        }
    }

    /// Every length from empty to past the inline capacity, ASCII and multi-byte, through every
    /// constructor: the same text back, equal to each other and to the `str`, ordered and
    /// hashed like the `str`.
    #[test]
    fn every_length_round_trips_and_behaves_like_its_str() {
        let hash = |value: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            value(&mut h);
            h.finish()
        };
        let texts: Vec<String> = (0..=40)
            .map(|n| (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect())
            .chain(["é", "日本語", "ascii then é and more to pass the cap"].map(String::from))
            .collect();
        for text in &texts {
            let made = [
                Str::new(text),
                Str::from(text.as_str()),
                Str::from(text.clone()),
                Str::from(Arc::<str>::from(text.as_str())),
            ];
            for s in &made {
                assert_eq!(s.as_str(), text);
                assert_eq!(
                    s.is_heap_allocated(),
                    text.len() > Str::INLINE_CAP,
                    "{text}"
                );
                assert_eq!(*s, *text.as_str());
                assert_eq!(s, &made[0]);
                assert_eq!(format!("{s}|{s:?}"), format!("{text}|{text:?}"));
                assert_eq!(
                    hash(&|h| s.hash(h)),
                    hash(&|h| text.as_str().hash(h)),
                    "{text}"
                );
            }
        }
        for a in &texts {
            for b in &texts {
                let (x, y) = (Str::new(a), Str::new(b));
                assert_eq!(x.cmp(&y), a.cmp(b), "{a} vs {b}");
                assert_eq!(x == y, a == b, "{a} vs {b}");
            }
        }
        let mut map = HashMap::new();
        map.insert(Str::new("key"), 1);
        assert_eq!(map.get("key"), Some(&1));
        assert_eq!(Str::default(), Str::new(""));
    }
}
