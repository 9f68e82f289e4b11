//! Where plain string bodies end: at the first `"`, `\`, control byte (< 0x20) or non-ASCII
//! byte (>= 0x80). The scanner asks this for every key and every string value.

/// How much of a line [`StopMask`] covers: event lines are a few hundred bytes, and the rest
/// of a longer line is searched word by word with [`string_stop`].
const MASK_WORDS: usize = 16;
const CHUNK: usize = 16;
#[cfg(target_arch = "x86_64")]
const WIDE_CHUNK: usize = 32;

/// One bit per byte of a line's first `MASK_WORDS * 64` bytes, set where a string body
/// would stop. Built for the whole line in one vector pass, sixteen bytes at a step, so that
/// finding where a string ends is a bit search instead of a scan of the string's bytes.
///
/// The bytes past the end of the line in its last chunk count as stops, so a string that is
/// not closed before the end of the line stops there (at a position the line has no byte
/// for). Past the covered part nothing is marked: a search that finds no stop in the covered
/// words must go on with [`string_stop`].
pub(super) struct StopMask {
    words: [u64; MASK_WORDS],
}

impl StopMask {
    pub(super) fn of(line: &[u8]) -> StopMask {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, as just checked (the answer is cached after the first
            // call, so this costs a load and a branch per line).
            return unsafe { StopMask::of_avx2(line) };
        }
        StopMask::of_chunks::<CHUNK>(line, chunk_stops)
    }

    /// [`StopMask::of`] thirty-two bytes at a step: half the steps of the SSE2 road, on the
    /// CPUs that have AVX2 (all x86_64 servers of the last decade).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn of_avx2(line: &[u8]) -> StopMask {
        StopMask::of_chunks::<WIDE_CHUNK>(line, |block| wide_chunk_stops(block))
    }

    /// The mask built `N` bytes at a time with `stops`, which marks the stops of one block.
    #[inline(always)]
    fn of_chunks<const N: usize>(line: &[u8], stops: impl Fn(&[u8; N]) -> u64) -> StopMask {
        let mut words = [0u64; MASK_WORDS];
        let (chunks, tail) = line.as_chunks::<N>();
        let mut bit = 0;
        for chunk in chunks.iter().take(MASK_WORDS * 64 / N) {
            words[bit / 64] |= stops(chunk) << (bit % 64);
            bit += N;
        }
        // Only when every whole chunk was taken is `tail` the end of the line.
        if bit < MASK_WORDS * 64 && bit + N > line.len() {
            // Zero padding: a control byte, so a stop, as the end of the line must be.
            let mut block = [0u8; N];
            block[..tail.len()].copy_from_slice(tail);
            words[bit / 64] |= stops(&block) << (bit % 64);
        }
        StopMask { words }
    }

    /// The first stop at or after `from`, if the covered part has one. `None` says nothing:
    /// the answer lies past the covered part, or `from` does.
    pub(super) fn next(&self, from: usize) -> Option<usize> {
        let mut word = from / 64;
        let mut bits = *self.words.get(word)? & (!0u64 << (from % 64));
        while bits == 0 {
            word += 1;
            bits = *self.words.get(word)?;
        }
        Some(word * 64 + bits.trailing_zeros() as usize)
    }
}

/// Bit `i` set where `block[i]` is a stop, with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn wide_chunk_stops(block: &[u8; WIDE_CHUNK]) -> u64 {
    use std::arch::x86_64::{
        _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_min_epu8, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8,
    };
    // SAFETY: the load reads exactly the thirty-two bytes of `block` (unaligned loads are
    // allowed); AVX2 is enabled for this function.
    let v = unsafe { _mm256_loadu_si256(block.as_ptr().cast()) };
    let quote = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'"' as i8));
    let backslash = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\\' as i8));
    // As in `chunk_stops`: unsigned `v <= 0x1f`, and the high bits are the non-ASCII bytes.
    let control = _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(0x1f)), v);
    let flagged = _mm256_or_si256(_mm256_or_si256(quote, backslash), control);
    u64::from((_mm256_movemask_epi8(flagged) | _mm256_movemask_epi8(v)) as u32)
}

/// Bit `i` set where `block[i]` is a stop.
#[cfg(target_arch = "x86_64")]
fn chunk_stops(block: &[u8; CHUNK]) -> u64 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline, and the load reads exactly the sixteen
    // bytes of `block` (unaligned loads are allowed).
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned `v <= 0x1f`: the minimum with 0x1f is `v` itself.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        let flagged = _mm_or_si128(_mm_or_si128(quote, backslash), control);
        // The high bit of a byte is set exactly for the non-ASCII bytes, and `movemask`
        // collects those bits as they are.
        u64::from((_mm_movemask_epi8(flagged) | _mm_movemask_epi8(v)) as u16)
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn chunk_stops(block: &[u8; CHUNK]) -> u64 {
    block
        .iter()
        .enumerate()
        .filter(|(_, &b)| is_stop(b))
        .fold(0, |bits, (i, _)| bits | 1 << i)
}

fn is_stop(byte: u8) -> bool {
    matches!(byte, b'"' | b'\\' | 0..0x20 | 0x80..)
}

/// The index of the first stop in `bytes`, if any.
///
/// One pass over eight bytes at a time: keys and values are mostly a few bytes long, so a
/// memchr call per string costs more in setup than it saves, and a second loop for control
/// bytes would read every byte twice (which is why this still beats memchr2 on long values
/// such as URLs).
pub(super) fn string_stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each byte that is zero (`x - 1` borrows, `!x` keeps it) or below `n`.
    // A borrow can only flag bytes above a byte that is truly flagged, so the lowest flag of
    // a little-endian word is exact, which is all this needs.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let mut at = 0;
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*word);
        let flags = below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20)
            | w & HIGHS;
        if flags != 0 {
            return Some(at + flags.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = bytes.get(at..)?;
    tail.iter().position(|&b| is_stop(b)).map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, written out apart from the code under test.
    fn reference_stop(byte: u8) -> bool {
        byte == b'"' || byte == b'\\' || !(0x20..0x80).contains(&byte)
    }

    fn string_stop_by_bytes(bytes: &[u8]) -> Option<usize> {
        bytes.iter().position(|&b| reference_stop(b))
    }

    /// Every stop byte at every position of strings of 0..=17 bytes (both sides of one and two
    /// words), over near-miss filler, with and without a second stop after the first, and at
    /// the very end of the buffer.
    #[test]
    fn string_stop_finds_the_first_quote_backslash_control_or_non_ascii_byte() {
        let stops = [b'"', b'\\', 0x00, 0x01, 0x1f, b'\n', 0x80, 0xa2, 0xdc, 0xff];
        // Bytes one off the stops, whose borrow could fake a flag.
        let fillers = [b'a', b'!', b'#', b'[', b']', 0x20, 0x7e, 0x7f];
        for len in 0..=17 {
            for &filler in &fillers {
                let plain = vec![filler; len];
                assert_eq!(string_stop(&plain), None, "{plain:?}");
                for at in 0..len {
                    for &stop in &stops {
                        let mut bytes = plain.clone();
                        bytes[at] = stop;
                        assert_eq!(string_stop(&bytes), Some(at), "{bytes:?}");
                        for later in at + 1..len {
                            let mut twice = bytes.clone();
                            twice[later] = b'"';
                            assert_eq!(string_stop(&twice), Some(at), "{twice:?}");
                        }
                    }
                }
            }
        }
        for text in [
            "héllo\"",
            "日本語の文字列です\\n",
            "😀😀😀😀\u{1}",
            "ascii then é",
        ] {
            let bytes = text.as_bytes();
            assert_eq!(string_stop(bytes), string_stop_by_bytes(bytes), "{text}");
        }
    }

    /// What [`StopMask::next`] may answer for `from` in `line`: the first stop at or after
    /// `from`, or the end of the line when there is none; or nothing, but only when the
    /// answer is not in the covered part.
    fn check_mask(line: &[u8]) {
        check_one_mask(line, StopMask::of_chunks::<CHUNK>(line, chunk_stops));
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            check_one_mask(line, unsafe { StopMask::of_avx2(line) });
        }
    }

    fn check_one_mask(line: &[u8], mask: StopMask) {
        let covered = MASK_WORDS * 64;
        // The first stop at or after each position, found from the end backwards.
        let mut first = vec![line.len(); line.len() + 1];
        for at in (0..line.len()).rev() {
            first[at] = if reference_stop(line[at]) {
                at
            } else {
                first[at + 1]
            };
        }
        for (from, &first) in first.iter().enumerate() {
            match mask.next(from) {
                Some(stop) => assert_eq!(stop, first, "from {from} in {line:?}"),
                None => assert!(
                    first >= covered || from >= covered,
                    "from {from}: no stop, but {first} is covered, in {line:?}"
                ),
            }
        }
    }

    /// Every stop byte at positions on both sides of chunk and word boundaries, lines of
    /// every length around those boundaries and around the end of the covered part, and
    /// lines with no stop at all, which stop at their end.
    #[test]
    fn the_stop_mask_finds_what_string_stop_finds() {
        let stops = [b'"', b'\\', 0x00, 0x1f, 0x80, 0xff];
        let covered = MASK_WORDS * 64;
        let lengths: Vec<usize> = (0..=70)
            .chain(120..=136)
            .chain(covered - 20..=covered + 20)
            .collect();
        for &len in &lengths {
            let plain = vec![b'a'; len];
            check_mask(&plain);
            for at in [0, 1, 15, 16, 17, 31, 32, 63, 64, 65, 127, 128]
                .into_iter()
                .chain([covered - 1, covered, covered + 1])
                .filter(|&at| at < len)
            {
                for &stop in &stops {
                    let mut line = plain.clone();
                    line[at] = stop;
                    check_mask(&line);
                }
            }
        }
        let event =
            r#"{"event_id": "game_end", "won": true, "name": "\u00e9l\u00e8ve", "c": "été"}"#
                .as_bytes();
        check_mask(event);
        check_mask(&event.repeat(30));
    }
}
