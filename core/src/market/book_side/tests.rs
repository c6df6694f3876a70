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

/// The side's bookkeeping agrees with its slots: sorted, no hole at either end, the live
/// count right, the holes within their bound.
fn check_side<const ASK: bool>(side: &Side) {
    let slots: Vec<Slot> = side.slots.iter().copied().collect();
    assert!(slots.windows(2).all(|w| if ASK {
        w[0].px > w[1].px
    } else {
        w[0].px < w[1].px
    }));
    assert!(slots.first().is_none_or(|s| s.qty != 0) && slots.last().is_none_or(|s| s.qty != 0));
    let live = slots.iter().filter(|s| s.qty != 0).count();
    assert_eq!(side.live, live);
    assert_eq!(side.iter().len(), live);
    assert!(slots.len() - live <= live / 4 + HOLES_SLACK);
}

fn slots(levels: &[(u64, u64)]) -> Vec<Slot> {
    levels.iter().map(|&(px, qty)| Slot { px, qty }).collect()
}

fn contents(side: &Side) -> Vec<(u64, u64)> {
    side.iter().map(|s| (s.px, s.qty)).collect()
}

#[test]
fn a_deleted_level_leaves_a_hole_that_its_price_fills_again() {
    let mut side = Side::default();
    side.fill::<false>(&slots(&[(10, 1), (20, 2), (30, 3)]), 10);
    side.apply::<false, Slot>(&slots(&[(20, 0)]));
    assert_eq!(side.slots.len(), 3);
    assert_eq!(contents(&side), [(10, 1), (30, 3)]);
    side.apply::<false, Slot>(&slots(&[(20, 5)]));
    assert_eq!(side.slots.len(), 3);
    assert_eq!(contents(&side), [(10, 1), (20, 5), (30, 3)]);
    check_side::<false>(&side);
}

#[test]
fn trimming_to_depth_closes_the_holes_the_dropped_levels_leave_too_many_of() {
    let mut side = Side::default();
    let full: Vec<(u64, u64)> = (1..=200).map(|px| (px, 1)).collect();
    side.fill::<false>(&slots(&full), 200);
    // 40 holes among the best levels: within the bound for 160 levels.
    let deletes: Vec<(u64, u64)> = (0..40).map(|k| (200 - 2 * k, 0)).collect();
    side.apply::<false, Slot>(&slots(&deletes));
    assert_eq!(side.live, 160);
    check_side::<false>(&side);
    // Keeping the best 60 drops only solid levels: 40 holes among 60 levels is too many.
    assert_eq!(side.truncate_worst(60), 100);
    assert_eq!(side.live, 60);
    check_side::<false>(&side);
}

#[test]
fn an_insert_between_a_holes_neighbours_takes_the_hole() {
    let mut side = Side::default();
    side.fill::<false>(&slots(&[(10, 1), (20, 2), (30, 3), (40, 4)]), 10);
    side.apply::<false, Slot>(&slots(&[(20, 0)]));
    // 25 sits just above the hole, 15 just below it; each takes it in turn.
    side.apply::<false, Slot>(&slots(&[(25, 7)]));
    assert_eq!(side.slots.len(), 4);
    side.apply::<false, Slot>(&slots(&[(25, 0), (15, 8)]));
    assert_eq!(side.slots.len(), 4);
    assert_eq!(contents(&side), [(10, 1), (15, 8), (30, 3), (40, 4)]);
    check_side::<false>(&side);
}

#[test]
fn a_hole_filled_below_a_place_brings_later_places_down() {
    // Best first, both searched for as "before 40": 37 fills the hole left by 35 just below
    // that place, and 36 must then go below 37, not before 40.
    let mut side = Side::default();
    side.fill::<false>(&slots(&[(10, 1), (30, 1), (35, 1), (40, 1)]), 10);
    side.apply::<false, Slot>(&slots(&[(35, 0)]));
    side.apply::<false, Slot>(&slots(&[(37, 2), (36, 3)]));
    assert_eq!(
        contents(&side),
        [(10, 1), (30, 1), (36, 3), (37, 2), (40, 1)]
    );
    check_side::<false>(&side);
}

#[test]
fn the_best_level_is_never_a_hole() {
    let mut side = Side::default();
    side.fill::<true>(&slots(&[(50, 1), (40, 2), (30, 3)]), 10);
    side.apply::<true, Slot>(&slots(&[(30, 0), (40, 0)]));
    assert_eq!(side.back(), Some(&Slot { px: 50, qty: 1 }));
    assert_eq!(side.slots.len(), 1);
}

/// Deltas of one side: best first (searched together) or in any order (one at a time).
fn side_delta() -> impl proptest::strategy::Strategy<Value = Vec<(u64, u64)>> {
    use proptest::prelude::*;
    (
        prop::collection::vec(
            (0u64..400, prop_oneof![1 => Just(0u64), 2 => 1u64..9]),
            0..80,
        ),
        any::<bool>(),
    )
        .prop_map(|(mut v, best_first)| {
            if best_first {
                v.sort_by_key(|l| std::cmp::Reverse(l.0));
                v.dedup_by_key(|l| l.0);
            }
            v
        })
}

/// Applies a snapshot and deltas (each given best first for bids, that is highest first)
/// to a side and to a sorted map, trimming both to `depth`, and compares them after each.
fn side_against_model<const ASK: bool>(
    depth: usize,
    snapshot: &[(u64, u64)],
    deltas: &[Vec<(u64, u64)>],
) -> Result<(), proptest::test_runner::TestCaseError> {
    let mut side = Side::default();
    let mut model = std::collections::BTreeMap::new();
    let trim = |model: &mut std::collections::BTreeMap<u64, u64>| {
        let mut dropped = 0;
        while model.len() > depth {
            // The worst bid is the lowest, the worst ask the highest.
            if ASK {
                model.pop_last()
            } else {
                model.pop_first()
            };
            dropped += 1;
        }
        dropped
    };
    side.fill::<ASK>(&slots(snapshot), depth);
    // The venue's last word for a price wins; zero sizes are not levels.
    for &(px, qty) in snapshot {
        model.insert(px, qty);
    }
    model.retain(|_, q| *q != 0);
    trim(&mut model);
    for d in deltas {
        let mut d = d.clone();
        if ASK {
            // Asks come best (lowest) first.
            d.reverse();
        }
        side.apply::<ASK, Slot>(&slots(&d));
        for &(px, qty) in &d {
            if qty == 0 {
                model.remove(&px);
            } else {
                model.insert(px, qty);
            }
        }
        let dropped = trim(&mut model);
        proptest::prop_assert_eq!(side.truncate_worst(depth), dropped);
        check_side::<ASK>(&side);
        let mut want: Vec<(u64, u64)> = model.iter().map(|(p, q)| (*p, *q)).collect();
        if ASK {
            want.reverse();
        }
        proptest::prop_assert_eq!(contents(&side), want.clone());
        proptest::prop_assert_eq!(side.back().map(|s| (s.px, s.qty)), want.last().copied());
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 400, ..Default::default() })]

    /// Snapshots, deletes that leave holes, inserts that fill them or move levels, closing
    /// the holes and trimming to a depth, on either side, against a sorted map.
    #[test]
    fn a_side_with_holes_matches_a_sorted_map(
        ask in proptest::prelude::any::<bool>(),
        depth in proptest::prop_oneof![1usize..20, 20usize..300],
        snapshot in proptest::collection::vec((0u64..400, 0u64..9), 0..300),
        deltas in proptest::collection::vec(side_delta(), 1..60),
    ) {
        if ask {
            side_against_model::<true>(depth, &snapshot, &deltas)?;
        } else {
            side_against_model::<false>(depth, &snapshot, &deltas)?;
        }
    }
}
