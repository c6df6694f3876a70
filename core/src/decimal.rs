//! Exact fixed-point decimals for prices, sizes and money.
//!
//! Bybit sends every price and size as a decimal string. Floats would make "65114.20" and a sum of
//! fills drift apart, so every price, size and amount the engine hands out is an `i128` count of
//! 10^-18 units: 18 places covers every tick and lot size the venue lists (the finest seen is
//! 10^-8), and the integer part still reaches 1.7 * 10^20, far past any turnover. (Inside, the
//! order book keeps its levels as exact `u64` counts of its own units: `crate::market::book_side`.)

use std::fmt;

/// Number of decimal places every [`Dec`] carries.
pub const DEC_SCALE_DIGITS: u32 = 18;
const SCALE: i128 = 10i128.pow(DEC_SCALE_DIGITS);
/// Longest accepted input; a longer string is not a price anyone sends.
pub const DEC_TEXT_LEN_MAX: usize = 48;

/// A signed fixed-point decimal with 18 places. Equal values compare equal whatever their
/// textual form: "65114.20" == "65114.2".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dec(i128);

/// Why a decimal string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecError {
    Empty,
    /// A character that is not a digit, or a point or sign in the wrong place.
    Syntax,
    /// More than 18 decimal places, which this type cannot hold exactly.
    Precision,
    /// The integer part does not fit.
    Overflow,
}

impl fmt::Display for DecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecError::Empty => "empty decimal",
            DecError::Syntax => "not a decimal number",
            DecError::Precision => "more than 18 decimal places",
            DecError::Overflow => "decimal out of range",
        })
    }
}

impl std::error::Error for DecError {}

/// `base^0 ..= base^19`; the caller's base must keep `base^19` within `u64` (10 and 5 do).
pub(crate) const fn powers_of(base: u64) -> [u64; 20] {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * base;
        i += 1;
    }
    t
}

/// Powers of ten as `u64`: scaling a `u64` mantissa is then one 64x64->128 multiply instead of a
/// 128-bit one (three multiplies), on every price and size read.
pub(crate) const POW10: [u64; 20] = powers_of(10);

impl Dec {
    pub const ZERO: Dec = Dec(0);
    pub const ONE: Dec = Dec(SCALE);
    pub const MAX: Dec = Dec(i128::MAX);

    /// The raw count of 10^-18 units.
    pub const fn raw(self) -> i128 {
        self.0
    }

    pub const fn from_raw(raw: i128) -> Dec {
        Dec(raw)
    }

    pub const fn from_int(v: i64) -> Dec {
        Dec(v as i128 * SCALE)
    }

    /// Parses `-?digits(.digits)?`: the only form Bybit uses. No exponent, no '+', no bare point.
    pub fn parse(text: &str) -> Result<Dec, DecError> {
        Self::parse_bytes(text.as_bytes())
    }

    pub fn parse_bytes(b: &[u8]) -> Result<Dec, DecError> {
        if b.is_empty() {
            return Err(DecError::Empty);
        }
        if b.len() > DEC_TEXT_LEN_MAX {
            return Err(DecError::Overflow);
        }
        let (neg, digits) = match b[0] {
            b'-' => (true, &b[1..]),
            _ => (false, b),
        };
        // The hot path: at most 19 digits in all, which is every price and size on the wire,
        // accumulated in one u64 with a single 128-bit multiply at the end.
        let n = digits.len();
        let mut acc: u64 = 0;
        let mut i = 0;
        while i < n {
            let d = digits[i].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            acc = acc.wrapping_mul(10).wrapping_add(d as u64);
            i += 1;
        }
        let int_len = i;
        if int_len == 0 {
            return Err(DecError::Syntax);
        }
        let mut frac = 0;
        if i < n {
            if digits[i] != b'.' {
                return Err(DecError::Syntax);
            }
            i += 1;
            let frac_start = i;
            while i < n {
                let d = digits[i].wrapping_sub(b'0');
                if d > 9 {
                    return Err(DecError::Syntax);
                }
                acc = acc.wrapping_mul(10).wrapping_add(d as u64);
                i += 1;
            }
            frac = i - frac_start;
            if frac == 0 {
                return Err(DecError::Syntax);
            }
            if frac > DEC_SCALE_DIGITS as usize {
                return Err(DecError::Precision);
            }
        }
        let scale = POW10[DEC_SCALE_DIGITS as usize - frac];
        if int_len + frac <= 19 {
            // < 10^19 * 10^18 < 2^127: cannot overflow, and a plain multiply stays inline
            // where a checked 128-bit one is a library call.
            let v = (acc as u128 * scale as u128) as i128;
            return Ok(Dec(if neg { -v } else { v }));
        }
        let mantissa = {
            // Too long for the u64 above (which wrapped): redo it exactly in 128 bits.
            let mut wide: i128 = 0;
            for &c in digits.iter().filter(|c| c.is_ascii_digit()) {
                wide = wide
                    .checked_mul(10)
                    .and_then(|w| w.checked_add((c - b'0') as i128))
                    .ok_or(DecError::Overflow)?;
            }
            wide
        };
        let v = mantissa
            .checked_mul(scale as i128)
            .ok_or(DecError::Overflow)?;
        Ok(Dec(if neg { -v } else { v }))
    }

    /// `mantissa * 10^-frac_digits`, negated when `neg`; for parsers that gathered the digits
    /// themselves. `mantissa` below 10^19 and `frac_digits` at most 18 cannot overflow.
    #[inline]
    pub fn from_parts(mantissa: u64, frac_digits: u32, neg: bool) -> Dec {
        debug_assert!(frac_digits <= DEC_SCALE_DIGITS);
        let v =
            (mantissa as u128 * POW10[(DEC_SCALE_DIGITS - frac_digits) as usize] as u128) as i128;
        Dec(if neg { -v } else { v })
    }

    /// The fewest decimal places that write `self` exactly: 0 for "100", 1 for "65114.20".
    pub fn places(self) -> u32 {
        let mut places = 0;
        while places < DEC_SCALE_DIGITS
            && self.0 % POW10[(DEC_SCALE_DIGITS - places) as usize] as i128 != 0
        {
            places += 1;
        }
        places
    }

    /// `self` cut to `places` decimal places, toward zero: a price or size on a venue's grid.
    pub fn truncate_places(self, places: u32) -> Dec {
        let unit = POW10[(DEC_SCALE_DIGITS - places.min(DEC_SCALE_DIGITS)) as usize] as i128;
        Dec(self.0 / unit * unit)
    }

    /// `(count, places)` with `self == count * 10^-places` and the fewest places, when `self` is
    /// zero or more and the count fits a `u64`.
    pub fn to_parts(self) -> Option<(u64, u32)> {
        if self.0 < 0 {
            return None;
        }
        let places = self.places();
        let count = self.0 / POW10[(DEC_SCALE_DIGITS - places) as usize] as i128;
        u64::try_from(count).ok().map(|c| (c, places))
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn checked_add(self, o: Dec) -> Option<Dec> {
        self.0.checked_add(o.0).map(Dec)
    }

    pub fn checked_sub(self, o: Dec) -> Option<Dec> {
        self.0.checked_sub(o.0).map(Dec)
    }

    /// Product, truncated toward zero to 18 places; `None` on overflow.
    pub fn checked_mul(self, o: Dec) -> Option<Dec> {
        let (a, b) = (self.0, o.0);
        // Split one side so the intermediate stays inside i128 for realistic magnitudes.
        let (hi, lo) = (b / SCALE, b % SCALE);
        let whole = a.checked_mul(hi)?;
        let part = a.checked_mul(lo).map(|p| p / SCALE).or_else(|| {
            // |a| large: divide first, losing only digits below 10^-18.
            let (ah, al) = (a / SCALE, a % SCALE);
            ah.checked_mul(lo)?.checked_add(al * lo / SCALE)
        })?;
        whole.checked_add(part).map(Dec)
    }

    /// Quotient, truncated toward zero; `None` on division by zero or overflow.
    pub fn checked_div(self, o: Dec) -> Option<Dec> {
        if o.0 == 0 {
            return None;
        }
        match self.0.checked_mul(SCALE) {
            Some(n) => Some(Dec(n / o.0)),
            None => {
                let q = self.0 / o.0;
                let r = self.0 % o.0;
                q.checked_mul(SCALE)?
                    .checked_add(r.checked_mul(SCALE)? / o.0)
                    .map(Dec)
            }
        }
    }

    /// A lossy view for statistics and display only, never for the book path.
    pub fn to_f64(self) -> f64 {
        i128_to_f64(self.0) / SCALE as f64
    }

    /// The nearest representable value, for strategy parameters that arrive as floats.
    pub fn from_f64(v: f64) -> Option<Dec> {
        round_to_i128(v * SCALE as f64).map(Dec)
    }
}

/// `x.round() as i128` (halves away from zero), `None` past i128 or not finite, without the
/// libm `round` call and the compiler's software f64 -> i128: a backtest makes a decimal of every
/// close, and the two were 3 % of it (perf, session 10). Below 2^53 the hardware truncates and
/// the dropped fraction, exact there, says which way to round; from 2^53 up every f64 is a whole
/// number, its mantissa shifted by its exponent.
fn round_to_i128(x: f64) -> Option<i128> {
    const EXACT: f64 = (1u64 << 53) as f64;
    let a = x.abs();
    if a < EXACT {
        let t = x as i64;
        let frac = x - t as f64;
        let r = if frac >= 0.5 {
            t + 1
        } else if frac <= -0.5 {
            t - 1
        } else {
            t
        };
        return Some(i128::from(r));
    }
    if a.is_nan() || a >= i128::MAX as f64 {
        return None;
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as u32 - 1075;
    let m = i128::from((bits & ((1u64 << 52) - 1)) | (1u64 << 52)) << exp;
    Some(if x < 0.0 { -m } else { m })
}

/// `v as f64`, the same correctly rounded value, in a few instructions: the compiler's i128 ->
/// f64 is a software routine, 5-8 % of a backtest's time (BENCHMARKS.md, session 9), and every
/// price past 9.2 is past i64 at 18 decimals. The top 64 bits convert with the hardware; any
/// bit shifted out below them is ORed into the lowest kept bit, which sits under the 53 bits an
/// f64 holds, so it breaks a tie exactly as the exact value would.
fn i128_to_f64(v: i128) -> f64 {
    if let Ok(small) = i64::try_from(v) {
        return small as f64;
    }
    let a = v.unsigned_abs();
    let lz = a.leading_zeros();
    let norm = a << lz;
    let top = (norm >> 64) as u64 | u64::from(norm as u64 != 0);
    // 2^(64 - lz): the weight of the lowest kept bit. At most 2^64 (|v| >= 2^63 here), exact.
    let scaled = top as f64 * f64::from_bits((1023 + 64 - u64::from(lz)) << 52);
    if v < 0 { -scaled } else { scaled }
}

impl fmt::Display for Dec {
    /// Canonical form: no exponent, no trailing zeros after the point, no trailing point.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        let abs = v.unsigned_abs();
        let int = abs / SCALE as u128;
        let mut frac = abs % SCALE as u128;
        if v < 0 {
            f.write_str("-")?;
        }
        write!(f, "{int}")?;
        if frac != 0 {
            let mut width = DEC_SCALE_DIGITS as usize;
            while frac.is_multiple_of(10) {
                frac /= 10;
                width -= 1;
            }
            write!(f, ".{frac:0width$}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Dec {
    type Err = DecError;
    fn from_str(s: &str) -> Result<Dec, DecError> {
        Dec::parse(s)
    }
}

impl serde::Serialize for Dec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Dec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Dec, D::Error> {
        let s: std::borrow::Cow<'de, str> = serde::Deserialize::deserialize(d)?;
        Dec::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One price level: a price and the size resting at it, both exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Level {
    pub px: Dec,
    pub qty: Dec,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        Dec::parse(s).unwrap()
    }

    #[test]
    fn trailing_zeros_do_not_change_a_price() {
        assert_eq!(d("65114.20"), d("65114.2"));
        assert_eq!(d("1.000"), d("1"));
        assert_eq!(d("0.07053"), d("0.070530"));
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(d("65114.20").to_string(), "65114.2");
        assert_eq!(d("1.000").to_string(), "1");
        assert_eq!(d("0").to_string(), "0");
        assert_eq!(d("0.00000001").to_string(), "0.00000001");
        assert_eq!(d("-0.006899").to_string(), "-0.006899");
        assert_eq!(d("11614437205.81").to_string(), "11614437205.81");
        assert_eq!(d("000123.4500").to_string(), "123.45");
    }

    #[test]
    fn malformed_decimals_are_refused_with_a_reason() {
        assert_eq!(Dec::parse(""), Err(DecError::Empty));
        for bad in [
            "abc", "1e5", "+1", "1.", ".5", "1..2", "1.2.3", "-", "--1", " 1", "1 ", "0x10",
        ] {
            assert_eq!(Dec::parse(bad), Err(DecError::Syntax), "{bad}");
        }
        assert_eq!(
            Dec::parse("0.0000000000000000001"),
            Err(DecError::Precision)
        );
        assert_eq!(
            Dec::parse("9999999999999999999999999999999"),
            Err(DecError::Overflow)
        );
    }

    #[test]
    fn ordering_follows_value_not_text() {
        assert!(d("9.5") < d("10"));
        assert!(d("-1") < d("0"));
        assert!(d("0.0001") > d("0.00009"));
    }

    #[test]
    fn arithmetic_is_exact_to_eighteen_places() {
        assert_eq!(d("0.1").checked_add(d("0.2")), Some(d("0.3")));
        assert_eq!(d("65114.2").checked_mul(d("0.003")), Some(d("195.3426")));
        assert_eq!(d("1").checked_div(d("4")), Some(d("0.25")));
        assert_eq!(d("1").checked_div(Dec::ZERO), None);
        assert_eq!(d("-2.5").checked_mul(d("2")), Some(d("-5")));
    }

    #[test]
    fn twenty_digit_integers_parse_exactly() {
        assert_eq!(
            d("12345678901234567890").to_string(),
            "12345678901234567890"
        );
    }

    #[test]
    fn the_fast_conversion_to_f64_rounds_as_the_compiler_does_at_the_edges() {
        for v in [
            0i128,
            1,
            -1,
            i64::MAX as i128,
            i64::MAX as i128 + 1,
            i64::MIN as i128 - 1,
            // Halfway between two f64 past 2^64: ties go to even, a sticky bit breaks them.
            (1i128 << 70) + (1 << 17),
            (1i128 << 70) + (1 << 17) + 1,
            (1i128 << 70) + (3 << 17),
            i128::MAX,
            i128::MIN,
            i128::MIN + 1,
        ] {
            assert_eq!(i128_to_f64(v).to_bits(), (v as f64).to_bits(), "{v}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_fast_conversion_to_f64_equals_the_compilers(
            v in proptest::num::i128::ANY,
            shift in 0u32..127,
        ) {
            // Every magnitude, not only the huge ones a uniform i128 nearly always is.
            let v = v >> shift;
            proptest::prop_assert_eq!(i128_to_f64(v).to_bits(), (v as f64).to_bits());
        }

        #[test]
        fn the_fast_rounding_to_i128_equals_round_then_cast(
            bits in proptest::num::u64::ANY,
            small in -1e6f64..1e6,
        ) {
            // Any f64 at all (NaN, infinities, subnormals, past i128), and small ones densely.
            for x in [f64::from_bits(bits), small, small + 0.5, small.trunc() + 0.5] {
                let want = (x.is_finite() && x.round().abs() < i128::MAX as f64)
                    .then(|| x.round() as i128);
                proptest::prop_assert_eq!(round_to_i128(x), want, "{}", x);
            }
        }
    }

    #[test]
    fn rounding_to_i128_at_its_edges_equals_round_then_cast() {
        let exact = (1u64 << 53) as f64;
        for x in [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            exact - 0.5,
            -(exact - 0.5),
            exact,
            -exact,
            exact + 2.0,
            i64::MAX as f64,
            i64::MIN as f64,
            1e30,
            -1e30,
            f64::from_bits((i128::MAX as f64).to_bits() - 1),
        ] {
            assert_eq!(round_to_i128(x), Some(x.round() as i128), "{x}");
        }
        for x in [
            i128::MAX as f64,
            -(i128::MAX as f64),
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert_eq!(round_to_i128(x), None, "{x}");
        }
    }
}
