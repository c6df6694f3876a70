use super::*;

fn dec(s: &str) -> Dec {
    Dec::parse(s).unwrap()
}

#[test]
fn inverses_of_the_powers_of_five_are_exact() {
    for k in 0..19 {
        assert_eq!(POW5[k].wrapping_mul(INV5[k]), 1, "5^{k}");
    }
}

#[test]
fn counts_are_exact_or_refused() {
    assert_eq!(Units::count(dec("65114.20"), 2), Some(6_511_420));
    assert_eq!(Units::count(dec("65114.20"), 1), Some(651_142));
    assert_eq!(Units::count(dec("65114.25"), 1), None);
    assert_eq!(Units::count(dec("0"), 0), Some(0));
    assert_eq!(Units::count(dec("-1"), 0), None);
    assert_eq!(Units::count(dec("0.000000000000000001"), 18), Some(1));
    // u64::MAX hundredths fits; one more hundredth does not.
    assert_eq!(
        Units::count(dec("184467440737095516.15"), 2),
        Some(u64::MAX)
    );
    assert_eq!(Units::count(dec("184467440737095516.16"), 2), None);
    assert_eq!(places(dec("65114.20")), Some(1));
    assert_eq!(places(dec("0.001")), Some(3));
    assert_eq!(places(dec("100")), Some(0));
}

proptest::proptest! {
    #[test]
    fn a_count_read_back_is_the_same_decimal(
        mantissa in proptest::prelude::any::<u64>(),
        frac in 0u32..=18,
        digits in 0u32..=18,
    ) {
        let v = Dec::from_parts(mantissa, frac, false);
        match Units::count(v, digits) {
            Some(c) => proptest::prop_assert_eq!(Dec::from_parts(c, digits, false), v),
            None => {
                // Refused only when inexact or too large at these places.
                let wide = v.raw() / 10i128.pow(DEC_SCALE_DIGITS - digits);
                let exact = v.raw() % 10i128.pow(DEC_SCALE_DIGITS - digits) == 0;
                proptest::prop_assert!(!exact || wide > u64::MAX as i128, "{v:?} at {digits}");
            }
        }
    }
}
