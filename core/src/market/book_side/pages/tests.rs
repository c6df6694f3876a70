use super::*;

/// The side's bookkeeping agrees with its pages: sorted and distinct, the ends holding a level,
/// the hollow ones counted and within their bound, none lost, the count of levels right, the
/// hint naming a page in use.
fn check_side(side: &Side) {
    let numbers: Vec<u64> = side.order.iter().map(|p| p.0).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]));
    let helds: Vec<u32> = side
        .order
        .iter()
        .map(|&(_, at)| side.pages[at as usize].held)
        .collect();
    assert!(helds.first().is_none_or(|h| *h != 0) && helds.last().is_none_or(|h| *h != 0));
    let held: usize = helds.iter().map(|h| h.count_ones() as usize).sum();
    assert_eq!(side.live, held);
    assert_eq!(side.hollow, helds.iter().filter(|h| **h == 0).count());
    assert!(side.hollow <= side.order.len() / 4 + HOLLOW_SLACK);
    assert_eq!(side.best_first().len(), held);
    let mut places: Vec<u32> = side
        .order
        .iter()
        .map(|p| p.1)
        .chain(side.free.iter().copied())
        .collect();
    places.sort_unstable();
    assert_eq!(
        places,
        (0..side.pages.len() as u32).collect::<Vec<_>>(),
        "every page is in use or free, once"
    );
    assert!(side.hint.0 == NO_PAGE || side.order.contains(&side.hint));
}

fn slots(levels: &[(u64, u64)]) -> Vec<Slot> {
    levels.iter().map(|&(px, qty)| Slot { px, qty }).collect()
}

fn contents(side: &Side) -> Vec<(u64, u64)> {
    side.best_first().map(|s| (s.px, s.qty)).collect()
}

#[test]
fn a_side_counts_prices_in_the_step_its_levels_share() {
    let mut side = Side::new(false);
    side.fill(
        &slots(&[(6_511_420, 1), (6_511_410, 2), (6_511_400, 3)]),
        10,
    );
    assert_eq!(side.step.step, 10);
    // A price between the ticks brings the step down; nothing held changes.
    side.apply(&slots(&[(6_511_415, 4)]));
    assert_eq!(side.step.step, 5);
    assert_eq!(
        contents(&side),
        vec![
            (6_511_420, 1),
            (6_511_415, 4),
            (6_511_410, 2),
            (6_511_400, 3)
        ]
    );
    check_side(&side);
}

#[test]
fn levels_far_apart_take_pages_of_their_own_and_read_back_in_order() {
    let mut side = Side::new(true);
    let far = u64::MAX - 4;
    side.fill(&slots(&[(far, 1), (5, 2), (1_000_005, 3)]), 10);
    assert_eq!(side.order.len(), 3);
    assert_eq!(side.best(), Some(Slot { px: 5, qty: 2 }));
    assert_eq!(contents(&side), vec![(5, 2), (1_000_005, 3), (far, 1)]);
    // A page emptied inside the side stays for the next level near it.
    side.apply(&slots(&[(1_000_005, 0)]));
    assert_eq!((side.order.len(), side.hollow, side.free.len()), (3, 1, 0));
    check_side(&side);
    side.apply(&slots(&[(1_000_010, 7), (20, 7)]));
    assert_eq!((side.order.len(), side.hollow, side.pages.len()), (3, 0, 3));
    // An end page that empties leaves at once: the ends always hold the best and worst levels.
    side.apply(&slots(&[(far, 0)]));
    assert_eq!((side.order.len(), side.free.len()), (2, 1));
    assert_eq!(contents(&side), vec![(5, 2), (20, 7), (1_000_010, 7)]);
    check_side(&side);
}

#[test]
fn a_page_is_found_from_any_last_place_as_a_binary_search_finds_it() {
    let mut side = Side::new(true);
    // 40 pages, each 3 page numbers from the next (a page is 32 steps of 1).
    let levels: Vec<(u64, u64)> = (0..40).map(|i| (i * 96 + 5, 1)).collect();
    side.fill(&slots(&levels), 100);
    assert_eq!(side.order.len(), 40);
    for near in 0..45 {
        for number in 0..125 {
            side.near = near;
            assert_eq!(
                side.search_near(number),
                side.order.binary_search_by_key(&number, |p| p.0),
                "page {number} from place {near}"
            );
        }
    }
}

#[test]
fn hollow_pages_leave_once_they_pass_a_quarter_of_the_pages() {
    let mut side = Side::new(false);
    // 200 levels, each alone in its page.
    let levels: Vec<(u64, u64)> = (0..200).map(|i| (i * 1_000, 1)).collect();
    side.fill(&slots(&levels), 500);
    assert_eq!(side.order.len(), 200);
    let inner: Vec<(u64, u64)> = (1..80).map(|i| (i * 1_000, 0)).collect();
    side.apply(&slots(&inner[..60]));
    assert_eq!((side.order.len(), side.hollow), (200, 60));
    check_side(&side);
    // The 67th passes 200 / 4 + 16: all 67 leave; the 12 after it stay hollow.
    side.apply(&slots(&inner[60..]));
    assert_eq!((side.order.len(), side.hollow), (133, 12));
    assert_eq!(side.best_first().len(), 121);
    check_side(&side);
}

#[test]
fn trimming_to_depth_drops_the_worst_levels_of_either_side() {
    let levels: Vec<(u64, u64)> = (1..=100).map(|i| (i * 3, i)).collect();
    for ask in [false, true] {
        let mut side = Side::new(ask);
        assert_eq!(side.fill(&slots(&levels), 30), 70);
        let kept = contents(&side);
        assert_eq!(kept.len(), 30);
        let want: Vec<(u64, u64)> = if ask {
            levels[..30].to_vec()
        } else {
            levels[70..].iter().rev().copied().collect()
        };
        assert_eq!(kept, want, "ask {ask}");
        check_side(&side);
    }
}

#[test]
fn a_rescale_that_would_not_fit_is_refused_before_anything_moves() {
    let mut side = Side::new(false);
    side.fill(&slots(&[(u64::MAX / 20, 1), (u64::MAX / 40, 2)]), 10);
    assert!(!side.rescales(100, 1));
    assert!(side.rescales(10, 1));
    side.rescale(10, 1000);
    assert_eq!(
        contents(&side),
        vec![((u64::MAX / 20) * 10, 1000), ((u64::MAX / 40) * 10, 2000)]
    );
    check_side(&side);
}

proptest::proptest! {
    #[test]
    fn a_step_counts_exact_multiples_and_nothing_else(
        step in proptest::prop_oneof![1u64..1000, proptest::prelude::any::<u64>()],
        k in proptest::prelude::any::<u64>(),
        off in 0u64..3,
    ) {
        let x = (k % (u64::MAX / step.max(1))).wrapping_mul(step.max(1)).wrapping_add(off);
        let want = (x % step.max(1) == 0).then(|| x / step.max(1));
        proptest::prop_assert_eq!(Step::new(step).steps(x), want);
    }
}

/// Prices as books have them: mostly on a tick near one price, some anywhere, some at the top
/// of the range.
fn price() -> impl proptest::strategy::Strategy<Value = u64> {
    use proptest::prelude::*;
    prop_oneof![
        8 => (0u64..400).prop_map(|k| 6_500_000 + k * 10),
        1 => 0u64..10_000_000,
        1 => (u64::MAX - 2_000)..=u64::MAX,
    ]
}

fn side_delta() -> impl proptest::strategy::Strategy<Value = Vec<(u64, u64)>> {
    use proptest::prelude::*;
    prop::collection::vec((price(), prop_oneof![1 => Just(0u64), 2 => 1u64..9]), 0..80)
}

/// Applies a snapshot and deltas to a side and to a sorted map, trimming both to `depth`, and
/// compares them after each.
fn side_against_model(
    ask: bool,
    depth: usize,
    snapshot: &[(u64, u64)],
    deltas: &[Vec<(u64, u64)>],
) -> Result<(), proptest::test_runner::TestCaseError> {
    let mut side = Side::new(ask);
    let mut model = std::collections::BTreeMap::new();
    let trim = |model: &mut std::collections::BTreeMap<u64, u64>| {
        let mut dropped = 0;
        while model.len() > depth {
            // The worst bid is the lowest, the worst ask the highest.
            if ask {
                model.pop_last()
            } else {
                model.pop_first()
            };
            dropped += 1;
        }
        dropped
    };
    let dropped_at_fill = side.fill(&slots(snapshot), depth);
    // The venue's last word for a price wins; zero sizes are not levels.
    for &(px, qty) in snapshot {
        model.insert(px, qty);
    }
    model.retain(|_, q| *q != 0);
    proptest::prop_assert_eq!(dropped_at_fill, trim(&mut model));
    for d in deltas {
        side.apply(&slots(d));
        for &(px, qty) in d {
            if qty == 0 {
                model.remove(&px);
            } else {
                model.insert(px, qty);
            }
        }
        let dropped = trim(&mut model);
        proptest::prop_assert_eq!(side.truncate_worst(depth), dropped);
        check_side(&side);
        let mut want: Vec<(u64, u64)> = model.iter().map(|(p, q)| (*p, *q)).collect();
        if !ask {
            want.reverse();
        }
        proptest::prop_assert_eq!(contents(&side), want.clone());
        proptest::prop_assert_eq!(side.best().map(|s| (s.px, s.qty)), want.first().copied());
    }
    Ok(())
}

/// A sparse side's prices: about 37 steps apart, a page each.
fn sparse_price() -> impl proptest::strategy::Strategy<Value = u64> {
    use proptest::prelude::*;
    (0u64..3_000).prop_map(|k| 1_000_000 + k * 37 + k % 7)
}

fn sparse_delta() -> impl proptest::strategy::Strategy<Value = Vec<(u64, u64)>> {
    use proptest::prelude::*;
    prop::collection::vec(
        (sparse_price(), prop_oneof![1 => Just(0u64), 2 => 1u64..9]),
        0..80,
    )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 400, ..Default::default() })]

    /// Sparse sides fed as the venue sends a delta, its levels in price order best first, where
    /// each level's page is looked for near the last one's.
    #[test]
    fn a_sparse_side_fed_in_price_order_matches_a_sorted_map(
        ask in proptest::prelude::any::<bool>(),
        depth in proptest::prop_oneof![1usize..20, 20usize..300],
        snapshot in proptest::collection::vec((sparse_price(), 0u64..9), 0..300),
        mut deltas in proptest::collection::vec(sparse_delta(), 1..60),
    ) {
        for d in &mut deltas {
            d.sort_by_key(|l| if ask { l.0 } else { u64::MAX - l.0 });
        }
        side_against_model(ask, depth, &snapshot, &deltas)?;
    }

    /// Snapshots and deltas in any order, on a tick, off it and far apart, trimmed to a depth,
    /// on either side, against a sorted map.
    #[test]
    fn a_side_matches_a_sorted_map(
        ask in proptest::prelude::any::<bool>(),
        depth in proptest::prop_oneof![1usize..20, 20usize..300],
        snapshot in proptest::collection::vec((price(), 0u64..9), 0..300),
        deltas in proptest::collection::vec(side_delta(), 1..60),
    ) {
        side_against_model(ask, depth, &snapshot, &deltas)?;
    }
}
