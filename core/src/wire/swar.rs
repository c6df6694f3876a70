//! Word-at-a-time byte tricks for the order-book hot path: eight bytes per operation in plain
//! integer arithmetic, no `unsafe` and no target features.
//!
//! Written by hand because reading the levels' digits a byte at a time was about a quarter of an
//! orderbook.200 frame's parse + apply time; reading them by words once the quotes are known took
//! a frame from 790 to 700 ns (BENCHMARKS.md, "Closing the gap"). Every function here is tested
//! against a plain reference.

use crate::decimal::POW10;
use crate::wire::json::raw_parts;

const LANES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x80 * LANES;

/// Eight bytes at `at`, little-endian; past the end of `b` the missing bytes read as zero.
/// Inlined at every call so that each keeps its own branch on being near the end (a frame's
/// last integers always are, its other fields never): one shared copy served seven call sites.
#[inline(always)]
pub(crate) fn word_at(b: &[u8], at: usize) -> u64 {
    // `at..` then a first chunk: `at..at + 8` also checked `at + 8` for overflow, two more
    // instructions on every word the order-book path reads.
    match b.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        Some(w) => u64::from_le_bytes(*w),
        None => word_at_end(b, at),
    }
}

/// [`word_at`] within eight bytes of the end, which every frame's last integers are: the last
/// word of `b` shifted down, where copying the rest into a zeroed word was a `memcpy` call and
/// about a tenth of the frame-level work.
#[inline]
fn word_at_end(b: &[u8], at: usize) -> u64 {
    let rest = b.len().saturating_sub(at);
    match b.last_chunk::<8>() {
        Some(last) if rest > 0 => u64::from_le_bytes(*last) >> (8 * (8 - rest)),
        Some(_) => 0,
        None => b
            .get(at..)
            .unwrap_or(&[])
            .iter()
            .rev()
            .fold(0, |w, c| (w << 8) | *c as u64),
    }
}

/// The top bit of the first byte of `w` that equals `c` (the lowest set bit is exact; bits above
/// it may be set wrongly), or zero when no byte equals `c`. Five operations against the eight
/// of [`eq_mask`], for the many places that only need where the first match is.
#[inline(always)]
pub(crate) fn first_eq(w: u64, c: u8) -> u64 {
    let x = w ^ (c as u64 * LANES);
    // A borrow only starts at a zero byte, so nothing below the first match is marked.
    x.wrapping_sub(LANES) & !x & HIGH
}

/// Bytes `0..n` of a word (all eight when `n` is 8 to 15). A table: computing it took a
/// compare, a variable shift and a select, three times a number (about a fifth of reading one).
#[inline(always)]
fn low_bytes(n: usize) -> u64 {
    const LOW_BYTES: [u64; 16] = {
        let mut t = [u64::MAX; 16];
        let mut i = 0;
        while i < 8 {
            t[i] = (1u64 << (8 * i)) - 1;
            i += 1;
        }
        t
    };
    // Every caller passes at most 8; the mask keeps the index in the table without a check.
    LOW_BYTES[n & 15]
}

/// The top bit of every byte of `w` that is not an ASCII digit; exact up to and including the
/// first such byte (borrows and carries only run upwards from it).
#[inline]
fn non_digits(w: u64) -> u64 {
    let t = w.wrapping_sub(0x30 * LANES);
    (t | t.wrapping_add(0x76 * LANES)) & HIGH
}

/// The value of the `n` (1..=8) ASCII digits in the low bytes of `w`, first byte most
/// significant, or `None` when one of them is not a digit.
#[inline]
fn digits_value(w: u64, n: usize) -> Option<u64> {
    if non_digits(w) & low_bytes(n) != 0 {
        return None;
    }
    Some(known_digits_value(w, n))
}

/// [`digits_value`] for `n` (1..=8) bytes already known to be digits.
#[inline(always)]
fn known_digits_value(w: u64, n: usize) -> u64 {
    let t = w.wrapping_sub(0x30 * LANES);
    // Shifting the run to the top leaves zero digits below it; then pairs, quads and halves.
    let mut x = t << (8 * (8 - n));
    x = (x.wrapping_mul(10).wrapping_add(x >> 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x.wrapping_mul(100).wrapping_add(x >> 16)) & 0x0000_FFFF_0000_FFFF;
    (x.wrapping_mul(10_000).wrapping_add(x >> 32)) & 0xFFFF_FFFF
}

/// A JSON integer at `start`: its value and length, for up to 19 digits (which always fit a
/// `u64`); `None` when there is no digit, more than 19, or a leading zero. A word per eight
/// digits: the byte loop it replaces was about a tenth of an order-book frame's instructions
/// (four integers of 10 to 13 digits). Up to 16 digits take no branch on the length; each call
/// site gets its own copy, so the one branch (past 8 digits or not) is predicted per field.
#[inline(always)]
pub(crate) fn json_uint(b: &[u8], start: usize) -> Option<(u64, usize)> {
    let w = word_at(b, start);
    let run = (non_digits(w).trailing_zeros() / 8) as usize;
    if run == 0 || (run > 1 && w & 0xFF == b'0' as u64) {
        return None;
    }
    let value = known_digits_value(w, run);
    if run < 8 {
        return Some((value, run));
    }
    let w = word_at(b, start + 8);
    let more = (non_digits(w).trailing_zeros() / 8) as usize;
    if more == 8 {
        return json_uint_long(b, start);
    }
    // `more` may be 0: a factor of 1 and a value of 0 keep the first word's.
    let tail = known_digits_value(w, more.max(1)) * (more != 0) as u64;
    Some((value * POW10[more] + tail, 8 + more))
}

/// 16 to 19 digits, and refusals past that.
#[cold]
fn json_uint_long(b: &[u8], start: usize) -> Option<(u64, usize)> {
    let run = b
        .get(start..)?
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if run > 19 {
        return None;
    }
    let mut v = 0u64;
    for c in &b[start..start + run] {
        v = v * 10 + (c - b'0') as u64;
    }
    Some((v, run))
}

/// An unsigned decimal of `len` (0..=8) bytes held in the low bytes of `w`, as the value of its
/// digits and how many of them follow the point. Branch-free apart
/// from the refusals: whether a size has a point ("0" against "0.002") changes from level to level
/// and a branch on it was mispredicted about one level in five.
#[inline(always)]
pub(crate) fn decimal_word(w: u64, len: usize) -> Option<(u64, u32)> {
    let dots = first_eq(w, b'.') & low_bytes(len);
    let has_dot = (dots != 0) as usize;
    let at = point_at((dots != 0).then(|| dots.trailing_zeros()), len)?;
    let keep = low_bytes(at);
    let squeezed = (w & keep) | ((w >> 8) & !keep);
    let digits = len - has_dot;
    let mantissa = digits_value(squeezed, digits)?;
    Some((mantissa, (digits - at) as u32))
}

/// Where the point is in a text of `len` bytes whose first point is at bit `first_point` of a
/// mask of its bytes: `len` without one (the squeeze then keeps every digit). `None` when the
/// point lacks a digit on either side (no digit at all is `at == 0` too); a second point fails
/// the digit checks that follow.
#[inline(always)]
fn point_at(first_point: Option<u32>, len: usize) -> Option<usize> {
    let at = first_point.map_or(len, |bit| (bit / 8) as usize);
    (at != 0 && at + 1 != len).then_some(at)
}

/// The decimal in the JSON string whose text starts at `start` as `((count, places), end)`, `end`
/// being the place of its closing quote, for texts of up to eight characters, read through
/// `word(at)`, the eight bytes at `at`; `None` when the text is not a decimal
/// [`crate::decimal::Dec::parse`] accepts, is negative, or is longer, which
/// [`quoted_decimal_slow`] then reads. One word holds the whole text and so also tells where it
/// ends.
#[inline(always)]
pub(crate) fn quoted_decimal_word(
    word: &impl Fn(usize) -> u64,
    start: usize,
) -> Option<((u64, u32), usize)> {
    let w = word(start);
    let quotes = first_eq(w, b'"');
    let len = if quotes != 0 {
        (quotes.trailing_zeros() / 8) as usize
    } else {
        8
    };
    if quotes != 0 || word(start + 8) & 0xFF == b'"' as u64 {
        return decimal_word(w, len).map(|d| (d, start + len));
    }
    None
}

/// Texts [`quoted_decimal_word`] does not read: up to 15 characters as two words (a spot price
/// past 99,999.99, a size to eight places, a small coin's price), and anything else through
/// [`quoted_decimal_slow`].
///
/// Out of line: inlined into the level reader, even unreached, it cost the short numbers'
/// path 3-6% (BENCHMARKS.md, "Session 12"); called, it is about a fifth of the byte loop's time.
#[inline(never)]
pub(crate) fn quoted_decimal_long(b: &[u8], start: usize) -> Option<((u64, u32), usize)> {
    quoted_decimal_two_words(&|at| word_at(b, at), start).or_else(|| quoted_decimal_slow(b, start))
}

/// The decimal in the JSON string whose text starts at `start`, for texts of 9 to 15 characters
/// (whose closing quote the second word holds), read through `word(at)` as
/// [`quoted_decimal_word`] reads shorter ones.
#[inline(always)]
pub(crate) fn quoted_decimal_two_words(
    word: &impl Fn(usize) -> u64,
    start: usize,
) -> Option<((u64, u32), usize)> {
    let (head, tail) = (word(start), word(start + 8));
    if first_eq(head, b'"') != 0 {
        return None;
    }
    let quotes = first_eq(tail, b'"');
    if quotes == 0 {
        return None;
    }
    let len = 8 + (quotes.trailing_zeros() / 8) as usize;
    // The point, if any, in either word; a second one fails the digit checks below.
    let dots =
        first_eq(head, b'.') as u128 | ((first_eq(tail, b'.') & low_bytes(len - 8)) as u128) << 64;
    let at = point_at((dots != 0).then(|| dots.trailing_zeros()), len)?;
    // At most 15 digits: the value fits a `u64` with room to spare.
    let digits = len - (dots != 0) as usize;
    // The digits before the point from the text, those after it from the text one byte on.
    let squeeze = |from: usize| {
        let keep = low_bytes(at.saturating_sub(from).min(8));
        (word(start + from) & keep) | (word(start + from + 1) & !keep)
    };
    let high = digits_value(squeeze(0), digits.min(8))?;
    let value = match digits - digits.min(8) {
        0 => high,
        rest => high * POW10[rest] + digits_value(squeeze(8), rest)?,
    };
    Some(((value, (digits - at) as u32), start + len))
}

/// Signs, 16 characters or more, and refusals: [`quoted_decimal_word`] for any text.
#[cold]
pub(crate) fn quoted_decimal_slow(b: &[u8], start: usize) -> Option<((u64, u32), usize)> {
    let end = start + b.get(start..)?.iter().position(|c| *c == b'"')?;
    let mut i = start;
    let (count, places, neg) = raw_parts(&b[..end], &mut i)?;
    // "-0" is zero, as `Dec` reads it; any other sign is refused.
    (i == end && (!neg || count == 0)).then_some(((count, places), end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Dec;
    use crate::wire::json::raw_dec;

    #[test]
    fn words_near_and_past_the_end_read_zeros_beyond_it() {
        for len in 0..20usize {
            let b: Vec<u8> = (1..=len as u8).collect();
            for at in 0..len + 10 {
                let mut want = [0u8; 8];
                for (i, w) in want.iter_mut().enumerate() {
                    *w = b.get(at + i).copied().unwrap_or(0);
                }
                assert_eq!(
                    word_at(&b, at),
                    u64::from_le_bytes(want),
                    "len {len} at {at}"
                );
            }
        }
    }

    #[test]
    fn first_eq_marks_the_first_equal_byte_exactly() {
        for c in 0u8..=255 {
            for probe in [
                0u8,
                1,
                c ^ 1,
                c,
                c.wrapping_add(1),
                c.wrapping_sub(1),
                0x7F,
                0x80,
                0xFF,
            ] {
                for at in 0..8 {
                    let mut bytes = [probe; 8];
                    bytes[at] = c;
                    let first = bytes.iter().position(|b| *b == c);
                    let m = first_eq(u64::from_le_bytes(bytes), c);
                    let got = (m != 0).then(|| (m.trailing_zeros() / 8) as usize);
                    assert_eq!(got, first, "{c} {bytes:?}");
                    assert_eq!(m & !HIGH, 0);
                }
                let none = first_eq(u64::from_le_bytes([probe; 8]), c);
                assert_eq!(none == 0, probe != c, "{c} {probe}");
            }
        }
    }

    /// The template's two readers together, as a level's reader calls them.
    fn quoted_decimal(b: &[u8], start: usize) -> Option<((u64, u32), usize)> {
        quoted_decimal_word(&|at| word_at(b, at), start).or_else(|| quoted_decimal_long(b, start))
    }

    /// What the order-book template must read: the decimal up to the first quote, when it is
    /// not negative.
    fn quoted_reference(b: &[u8]) -> Option<(Dec, usize)> {
        let end = b.iter().position(|c| *c == b'"')?;
        let mut i = 0;
        raw_dec(&b[..end], &mut i)
            .filter(|d| i == end && !d.is_negative())
            .map(|d| (d, end))
    }

    proptest::proptest! {
        #[test]
        fn quoted_decimal_agrees_with_the_scanner_and_dec_parse(
            text in "[-0-9.:/ a\\\\]{0,12}|[0-9]{1,3}\\.[0-9]{1,3}0{1,3}|[0-9.]{8,20}",
            rest in "[0-9.\"\\]]{0,9}",
        ) {
            for doc in [format!("{text}\"{rest}"), format!("{text}{rest}")] {
                let got = quoted_decimal(doc.as_bytes(), 0)
                    .map(|((count, places), end)| (Dec::from_parts(count, places, false), end));
                proptest::prop_assert_eq!(got, quoted_reference(doc.as_bytes()), "{:?}", doc);
                if let Some((d, end)) = got {
                    proptest::prop_assert_eq!(Ok(d), Dec::parse(&doc[..end]));
                }
            }
        }

        #[test]
        fn json_uint_agrees_with_a_byte_loop(
            digits in "[0-9]{0,24}",
            rest in "[-0-9.,}a]{0,3}",
        ) {
            let doc = format!("{digits}{rest}");
            let len = doc.bytes().take_while(u8::is_ascii_digit).count();
            let leading_zero = len > 1 && doc.starts_with('0');
            let want = (len > 0 && len <= 19 && !leading_zero)
                .then(|| (doc[..len].parse::<u64>().unwrap(), len));
            proptest::prop_assert_eq!(json_uint(doc.as_bytes(), 0), want, "{:?}", doc);
        }
    }
}
