//! A strict, allocation-free JSON pull scanner for the WebSocket hot path.
//!
//! Written by hand on purpose: serde_json into a borrowed struct costs about 1.3 us for a 504-byte
//! orderbook delta on this machine, above the whole 500 ns budget for parse + apply (see
//! BENCHMARKS.md). The scanner walks the bytes once, hands out borrowed string slices, and
//! validates everything it skips, so a frame it accepts is well-formed JSON (RFC 8259) and a frame
//! it refuses changes no state: callers decode completely before they apply anything.

use std::borrow::Cow;

use crate::decimal::{DEC_SCALE_DIGITS, Dec, DecError};

/// Nesting deeper than this is refused instead of recursing without bound.
pub const JSON_DEPTH_MAX: u32 = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    /// The bytes at `at` are not valid JSON here.
    Syntax { at: usize },
    /// Input ended inside a value.
    Eof,
    /// Nesting beyond [`JSON_DEPTH_MAX`].
    TooDeep,
    /// A value of another JSON type than the one asked for.
    Type { at: usize },
}

/// A string as it stands between its quotes. Unescaped strings (all of Bybit's) are compared
/// without copying; escaped ones are decoded on demand.
#[derive(Debug, Clone, Copy)]
pub struct JStr<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> JStr<'a> {
    /// The exact text, without copying when nothing is escaped.
    pub fn get(&self) -> Cow<'a, str> {
        if self.escaped {
            Cow::Owned(unescape(self.raw))
        } else {
            Cow::Borrowed(self.raw)
        }
    }

    /// The text when it can be borrowed; escaped strings never name a price, topic or key we
    /// know, so callers treat `None` as a value they do not accept.
    pub fn plain(&self) -> Option<&'a str> {
        (!self.escaped).then_some(self.raw)
    }

    /// Whether this string is exactly `s` (after unescaping).
    pub fn is(&self, s: &str) -> bool {
        if self.escaped {
            unescape(self.raw) == s
        } else {
            self.raw == s
        }
    }
}

/// A frame's `topic` and `ts`, read as the top-level keys they are (the scan stops once both
/// are found, which Bybit writes before the data): how a capture is routed and timed without
/// decoding it twice. `None` for text that is not an object with a plain-string topic.
pub fn topic_and_ts(text: &str) -> Option<(&str, Option<u64>)> {
    let mut s = Scanner::new(text);
    s.begin_object().ok()?;
    let (mut topic, mut ts) = (None, None);
    let mut first = true;
    while let Some(k) = s.next_key(&mut first).ok()? {
        if k.is("topic") {
            topic = Some(s.string().ok()?.plain()?);
        } else if k.is("ts") {
            ts = Some(s.u64().ok()?);
        } else {
            s.skip().ok()?;
        }
        if topic.is_some() && ts.is_some() {
            break;
        }
    }
    Some((topic?, ts))
}

pub struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Self {
        Scanner { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    fn ws(&mut self) {
        let b = self.bytes();
        while let Some(&c) = b.get(self.pos) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.pos).copied()
    }

    #[inline]
    fn eat(&mut self, want: u8) -> Result<(), JsonError> {
        match self.peek() {
            Some(c) if c == want => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(JsonError::Syntax { at: self.pos }),
            None => Err(JsonError::Eof),
        }
    }

    /// The error for a value of the wrong kind at the current position: a type error when a
    /// JSON value starts there, a syntax error when nothing valid does (`...`, a comment).
    fn mismatch(&self) -> JsonError {
        match self.bytes().get(self.pos) {
            Some(b'{' | b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9') => {
                JsonError::Type { at: self.pos }
            }
            Some(_) => JsonError::Syntax { at: self.pos },
            None => JsonError::Eof,
        }
    }

    /// After the last value: only white space may follow.
    pub fn finish(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(JsonError::Syntax { at: self.pos }),
        }
    }

    pub fn begin_object(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(self.mismatch()),
            None => Err(JsonError::Eof),
        }
    }

    /// The next key of the object being read, or `None` after its closing brace. `first` starts
    /// true for each object and tracks where commas belong.
    #[inline]
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<JStr<'a>>, JsonError> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !*first => {
                self.pos += 1;
                self.ws();
            }
            Some(b'"') if *first => {}
            Some(_) => return Err(JsonError::Syntax { at: self.pos }),
            None => return Err(JsonError::Eof),
        }
        *first = false;
        let key = self.string()?;
        self.eat(b':')?;
        Ok(Some(key))
    }

    pub fn begin_array(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'[') => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(self.mismatch()),
            None => Err(JsonError::Eof),
        }
    }

    /// True when another element follows, false after the closing bracket.
    #[inline]
    pub fn next_elem(&mut self, first: &mut bool) -> Result<bool, JsonError> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b',') if !*first => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) if *first => {
                *first = false;
                Ok(true)
            }
            Some(_) => Err(JsonError::Syntax { at: self.pos }),
            None => Err(JsonError::Eof),
        }
    }

    #[inline]
    pub fn string(&mut self) -> Result<JStr<'a>, JsonError> {
        match self.peek() {
            Some(b'"') => {}
            Some(_) => return Err(self.mismatch()),
            None => return Err(JsonError::Eof),
        }
        let b = self.bytes();
        let start = self.pos + 1;
        let mut i = start;
        // Plain runs first: almost every string on the wire has no escape at all.
        while let Some(&c) = b.get(i) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                break;
            }
            i += 1;
        }
        if b.get(i) == Some(&b'"') {
            self.pos = i + 1;
            return Ok(JStr {
                raw: &self.text[start..i],
                escaped: false,
            });
        }
        let mut escaped = false;
        loop {
            match b.get(i) {
                None => return Err(JsonError::Eof),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i += 1;
                    match b.get(i) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 1,
                        Some(b'u') => {
                            let hex = b.get(i + 1..i + 5).ok_or(JsonError::Eof)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(JsonError::Syntax { at: i });
                            }
                            i += 5;
                        }
                        Some(_) => return Err(JsonError::Syntax { at: i }),
                        None => return Err(JsonError::Eof),
                    }
                }
                Some(&c) if c < 0x20 => return Err(JsonError::Syntax { at: i }),
                Some(_) => i += 1,
            }
        }
        self.pos = i + 1;
        // `start` and `i` sit next to ASCII quotes, so both are char boundaries.
        Ok(JStr {
            raw: &self.text[start..i],
            escaped,
        })
    }

    /// A string holding a decimal, such as `"65114.20"`, read in one pass: the digits are
    /// accumulated while the string is scanned instead of being scanned twice. Anything the fast
    /// path does not cover (escapes, long numbers, junk) goes through [`Scanner::string`] and
    /// [`Dec::parse`], so the answers are the same either way.
    #[inline]
    pub fn quoted_dec(&mut self) -> Result<Result<Dec, DecError>, JsonError> {
        match self.peek() {
            Some(b'"') => {}
            Some(_) => return Err(self.mismatch()),
            None => return Err(JsonError::Eof),
        }
        let b = self.bytes();
        let mut i = self.pos + 1;
        if let Some(d) = raw_dec(b, &mut i)
            && b.get(i) == Some(&b'"')
        {
            self.pos = i + 1;
            return Ok(Ok(d));
        }
        let s = self.string()?;
        Ok(match s.plain() {
            Some(text) => Dec::parse(text),
            None => Err(DecError::Syntax),
        })
    }

    /// The compact pair `["<decimal>","<decimal>"]` that every order-book level is, read
    /// without any per-token dispatch, as `(count, places)` of each. On anything else (white
    /// space, escapes, a sign, another shape) it returns `None` and leaves the position alone, so
    /// the caller takes the general path.
    #[inline]
    pub fn compact_level(&mut self) -> Option<((u64, u32), (u64, u32))> {
        let b = self.bytes();
        let mut i = self.pos;
        if b.get(i..i + 2)? != b"[\"" {
            return None;
        }
        i += 2;
        let (px, px_places, px_neg) = raw_parts(b, &mut i)?;
        if b.get(i..i + 3)? != b"\",\"" {
            return None;
        }
        i += 3;
        let (qty, qty_places, qty_neg) = raw_parts(b, &mut i)?;
        if px_neg || qty_neg || b.get(i..i + 2)? != b"\"]" {
            return None;
        }
        self.pos = i + 2;
        Some(((px, px_places), (qty, qty_places)))
    }

    /// The raw text of a JSON number, validated against the grammar.
    fn number_text(&mut self) -> Result<&'a str, JsonError> {
        self.ws();
        let b = self.bytes();
        let start = self.pos;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            Some(_) => return Err(self.mismatch()),
            None => return Err(JsonError::Eof),
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            let d = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == d {
                return Err(JsonError::Syntax { at: i });
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let d = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == d {
                return Err(JsonError::Syntax { at: i });
            }
        }
        self.pos = i;
        Ok(&self.text[start..i])
    }

    /// An unsigned integer, given either as a JSON number or as a string of digits (some
    /// clients and REST mirrors stringify ids). Anything else is a type error.
    #[inline]
    pub fn u64(&mut self) -> Result<u64, JsonError> {
        let at = {
            self.ws();
            self.pos
        };
        let text = match self.peek() {
            Some(b'"') => self.string()?.plain().ok_or(JsonError::Type { at })?,
            _ => self.number_text()?,
        };
        parse_u64(text).ok_or(JsonError::Type { at })
    }

    pub fn bool(&mut self) -> Result<bool, JsonError> {
        let b = self.bytes();
        match self.peek() {
            Some(b't') if b[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Ok(true)
            }
            Some(b'f') if b[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Ok(false)
            }
            Some(_) => Err(self.mismatch()),
            None => Err(JsonError::Eof),
        }
    }

    /// True (and consumed) when the next value is `null`.
    pub fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.bytes()[self.pos..].starts_with(b"null") {
            self.pos += 4;
            true
        } else {
            false
        }
    }

    /// Skips one value of any type, validating it.
    pub fn skip(&mut self) -> Result<(), JsonError> {
        self.skip_depth(0)
    }

    fn skip_depth(&mut self, depth: u32) -> Result<(), JsonError> {
        if depth >= JSON_DEPTH_MAX {
            return Err(JsonError::TooDeep);
        }
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut first = true;
                while self.next_key(&mut first)?.is_some() {
                    self.skip_depth(depth + 1)?;
                }
                Ok(())
            }
            Some(b'[') => {
                self.pos += 1;
                let mut first = true;
                while self.next_elem(&mut first)? {
                    self.skip_depth(depth + 1)?;
                }
                Ok(())
            }
            Some(b'"') => self.string().map(|_| ()),
            Some(b't' | b'f') => self.bool().map(|_| ()),
            Some(b'n') if self.null() => Ok(()),
            Some(b'-' | b'0'..=b'9') => self.number_text().map(|_| ()),
            Some(_) => Err(JsonError::Syntax { at: self.pos }),
            None => Err(JsonError::Eof),
        }
    }
}

/// `-?digits(.digits)?` with at most 19 digits and 18 decimals, or `None`. A byte at a time:
/// the word-at-a-time reader ([`crate::wire::swar`]) measured slower on the short numbers of klines and
/// trades (BENCHMARKS.md).
#[inline]
pub(crate) fn raw_dec(b: &[u8], i: &mut usize) -> Option<Dec> {
    raw_parts(b, i).map(|(count, places, neg)| Dec::from_parts(count, places, neg))
}

/// [`raw_dec`] as it was written: `(count, places, negative)`, for readers that keep the count
/// (order-book levels) rather than build a [`Dec`] and take it apart again.
#[inline]
pub(crate) fn raw_parts(b: &[u8], i: &mut usize) -> Option<(u64, u32, bool)> {
    let mut j = *i;
    let neg = b.get(j) == Some(&b'-');
    if neg {
        j += 1;
    }
    let int_start = j;
    let mut acc: u64 = 0;
    while let Some(d) = b.get(j).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9) {
        acc = acc.wrapping_mul(10).wrapping_add(d as u64);
        j += 1;
    }
    let int_len = j - int_start;
    let mut frac = 0;
    if b.get(j) == Some(&b'.') {
        j += 1;
        let frac_start = j;
        while let Some(d) = b.get(j).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9) {
            acc = acc.wrapping_mul(10).wrapping_add(d as u64);
            j += 1;
        }
        frac = j - frac_start;
        if frac == 0 {
            return None;
        }
    }
    if int_len == 0 || int_len + frac > 19 || frac > DEC_SCALE_DIGITS as usize {
        return None;
    }
    *i = j;
    Some((acc, frac as u32, neg))
}

#[inline]
pub fn parse_u64(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(v)
}

/// Decodes JSON escapes of a string the scanner already validated.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let hi = u32::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
                let code = if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate pairs with a following \uDC00..\uDFFF.
                    let rest = chars.as_str();
                    match rest.strip_prefix("\\u").and_then(|r| r.get(..4)) {
                        Some(lo_hex) => {
                            let lo = u32::from_str_radix(lo_hex, 16).unwrap_or(0);
                            if (0xDC00..0xE000).contains(&lo) {
                                chars.nth(5);
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                0xFFFD
                            }
                        }
                        None => 0xFFFD,
                    }
                } else {
                    hi
                };
                out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frames_topic_and_ts_are_read_wherever_its_keys_stand() {
        let linear =
            r#"{"topic":"orderbook.50.X","type":"delta","ts":17,"data":{"b":[],"a":[],"u":1}}"#;
        assert_eq!(topic_and_ts(linear), Some(("orderbook.50.X", Some(17))));
        let kline =
            r#"{"topic":"kline.1.X","data":[{"start":1,"ts":99}],"ts":42,"type":"snapshot"}"#;
        assert_eq!(
            topic_and_ts(kline),
            Some(("kline.1.X", Some(42))),
            "a nested ts is not it"
        );
        assert_eq!(topic_and_ts(r#"{"topic":"t"}"#), Some(("t", None)));
        assert_eq!(topic_and_ts(r#"{"op":"pong"}"#), None);
        assert_eq!(topic_and_ts("not json"), None);
    }

    fn skip_all(s: &str) -> Result<(), JsonError> {
        let mut sc = Scanner::new(s);
        sc.skip()?;
        sc.finish()
    }

    #[test]
    fn well_formed_documents_are_accepted() {
        for ok in [
            r#"{}"#,
            r#"[]"#,
            r#"{"a":[1,2.5,-3e+2,true,false,null,"x\"y\u00e9"],"b":{"c":{}}}"#,
            " { \"a\" : 1 } \n",
            "0",
            "-0.0e0",
        ] {
            assert_eq!(skip_all(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"{"a" 1}"#,
            r#"{,"a":1}"#,
            r#"[,1]"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":tru}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":1} x"#,
            r#"{"a":1"#,
            "\"tab\there\"",
            "{\"a\":1 // comment\n}",
            r#"{"a": ...}"#,
            "",
        ] {
            assert!(skip_all(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(skip_all(&deep), Err(JsonError::TooDeep));
    }

    #[test]
    fn integers_arrive_as_numbers_or_digit_strings() {
        let mut sc = Scanner::new(r#"[177400507,"342690",1.5,"12a",18446744073709551616]"#);
        sc.begin_array().unwrap();
        let mut first = true;
        assert!(sc.next_elem(&mut first).unwrap());
        assert_eq!(sc.u64(), Ok(177400507));
        assert!(sc.next_elem(&mut first).unwrap());
        assert_eq!(sc.u64(), Ok(342690));
        assert!(sc.next_elem(&mut first).unwrap());
        assert!(matches!(sc.u64(), Err(JsonError::Type { .. })));
        assert!(sc.next_elem(&mut first).unwrap());
        assert!(matches!(sc.u64(), Err(JsonError::Type { .. })));
        assert!(sc.next_elem(&mut first).unwrap());
        assert!(matches!(sc.u64(), Err(JsonError::Type { .. })));
    }

    fn quoted(text: &str, pad: &str) -> Result<Dec, DecError> {
        let doc = format!("\"{text}\"{pad}");
        Scanner::new(&doc).quoted_dec().unwrap()
    }

    #[test]
    fn decimals_of_every_digit_count_parse_exactly_near_and_far_from_the_end() {
        let digits = "1234567890123456789012";
        for total in 1..=21 {
            for point in 0..=total {
                let (int, frac) = digits[..total].split_at(point);
                let text = match (int.is_empty(), frac.is_empty()) {
                    (true, _) => continue,
                    (false, true) => int.to_string(),
                    (false, false) => format!("{int}.{frac}"),
                };
                for pad in ["", "]", ",\"0.1\"]}}}}}}}}"] {
                    assert_eq!(quoted(&text, pad), Dec::parse(&text), "{text}{pad}");
                    assert_eq!(
                        quoted(&format!("-{text}"), pad),
                        Dec::parse(&format!("-{text}"))
                    );
                }
            }
        }
    }

    #[test]
    fn every_printable_byte_inside_a_decimal_is_judged_as_dec_parse_judges_it() {
        for c in (0x20u8..0x7f).filter(|c| *c != b'"' && *c != b'\\') {
            let c = c as char;
            for text in [
                format!("1{c}"),
                format!("12{c}34"),
                format!("1234567{c}"),
                format!("12345678{c}9"),
                format!("1.2{c}"),
                format!("{c}1"),
            ] {
                let pad = ",\"1\"]}}}}}}}}}}";
                assert_eq!(quoted(&text, pad), Dec::parse(&text), "{text:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn the_fast_decimal_paths_agree_with_dec_parse(
            text in "[-0-9.a :/]{0,24}",
            pad in "[\\],\"0-9}]{0,12}",
        ) {
            // Only strings JSON allows unescaped reach the decimal parsers.
            proptest::prop_assert_eq!(quoted(&text, &pad), Dec::parse(&text));
            let doc = format!("[\"{text}\",\"{text}\"]{pad}");
            match Scanner::new(&doc).compact_level() {
                Some(((px, pp), (qty, qp))) => {
                    proptest::prop_assert_eq!(Ok(Dec::from_parts(px, pp, false)), Dec::parse(&text));
                    proptest::prop_assert_eq!((px, pp), (qty, qp));
                }
                // Refused: not a decimal, or a sign (left to the general path).
                None => proptest::prop_assert!(
                    Dec::parse(&text).is_err() || text.starts_with('-'),
                    "{:?}", text
                ),
            }
        }
    }

    #[test]
    fn escaped_strings_decode_on_demand() {
        let mut sc = Scanner::new(r#""t\u006fpic \ud83d\ude00""#);
        let s = sc.string().unwrap();
        assert!(s.plain().is_none());
        assert_eq!(s.get(), "topic \u{1F600}");
        assert!(s.is("topic \u{1F600}"));
    }
}
