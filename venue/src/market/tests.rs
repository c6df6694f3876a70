use super::*;

#[test]
fn the_generated_book_is_never_crossed_and_stays_deep() {
    let mut rng = Rng::new(5);
    let mut m = SymbolMarket::new(SymbolSpec::guess("BTCUSDT"), &mut rng, 0, 5);
    for i in 0..5_000 {
        m.step(&mut rng, i * 10, 5);
        assert!(m.best_bid() < m.best_ask());
        assert!(m.bids.len() >= 1000 && m.asks.len() >= 1000);
    }
    assert!(m.trades_total > 100);
}

#[test]
fn history_is_deterministic_and_continuous() {
    let spec = SymbolSpec::guess("ETHUSDT");
    let a = history_candle(&spec, 9, Interval::Min1, 60_000);
    let b = history_candle(&spec, 9, Interval::Min1, 120_000);
    assert_eq!(a, history_candle(&spec, 9, Interval::Min1, 60_000));
    assert_eq!(a.close, b.open);
    assert!(a.low <= a.open.min(a.close) && a.high >= a.open.max(a.close));
}

fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
fn the_spread_mean_reverts_over_ten_minutes_instead_of_drifting_open() {
    for (symbol, seed) in [("BTCUSDT", 1), ("ETHUSDT", 2), ("DOGEUSDT", 3)] {
        let mut rng = Rng::new(seed);
        let mut m = SymbolMarket::new(SymbolSpec::guess(symbol), &mut rng, 0, seed);
        let mut minutes: Vec<Vec<i64>> = vec![Vec::new(); 10];
        for i in 0..60_000u64 {
            m.step(&mut rng, i * 10, seed);
            minutes[(i / 6_000) as usize].push(m.best_ask() - m.best_bid());
        }
        let first = median(minutes[0].clone());
        for (n, spreads) in minutes.iter().enumerate() {
            let med = median(spreads.clone());
            assert!(
                med <= 2 * first.max(1) && med <= SPREAD_TICKS_TARGET_MAX as i64 + 2,
                "{symbol}: minute {n} median spread {med} ticks, first minute {first}"
            );
        }
    }
}

#[test]
fn the_price_random_walks_and_trades_happen_at_the_touch() {
    let mut rng = Rng::new(11);
    let mut m = SymbolMarket::new(SymbolSpec::guess("BTCUSDT"), &mut rng, 0, 11);
    let start = m.fair;
    let (mut touch_trades, mut trades) = (0, 0);
    let mut moves = Vec::new();
    for i in 0..30_000u64 {
        let (bid, ask) = (m.best_bid(), m.best_ask());
        m.step(&mut rng, i * 10, 11);
        for t in m.fresh_trades.drain(..) {
            trades += 1;
            if t.ticks == if t.buy { ask } else { bid } {
                touch_trades += 1;
            }
        }
        if i % 6_000 == 5_999 {
            moves.push(m.fair - start);
        }
    }
    assert!(trades > 1_000, "{trades} trades in five minutes");
    assert!(
        touch_trades * 2 > trades,
        "{touch_trades} of {trades} trades at the touch"
    );
    assert!(
        moves.iter().any(|d| d.abs() > 10.0),
        "the fair price barely moved: {moves:?}"
    );
}

#[test]
fn candles_agree_with_the_trades_of_their_period() {
    let mut rng = Rng::new(4);
    let mut m = SymbolMarket::new(SymbolSpec::guess("SOLUSDT"), &mut rng, 0, 4);
    m.series(Interval::Min1, 0);
    let mut trades: Vec<SimTrade> = Vec::new();
    let mut checked = 0;
    for i in 0..36_000u64 {
        m.step(&mut rng, i * 10, 4);
        trades.append(&mut m.fresh_trades);
        for (_, c) in m.fresh_closes.drain(..) {
            let end = Interval::Min1.next_start(c.start_ms);
            let own: Vec<&SimTrade> = trades
                .iter()
                .filter(|t| t.time_ms >= c.start_ms && t.time_ms < end)
                .collect();
            let Some(first) = own.first() else {
                assert_eq!(c.volume_lots, 0);
                continue;
            };
            assert_eq!(c.open, first.ticks, "open of {}", c.start_ms);
            assert_eq!(c.close, own.last().unwrap().ticks);
            assert_eq!(c.high, own.iter().map(|t| t.ticks).max().unwrap());
            assert_eq!(c.low, own.iter().map(|t| t.ticks).min().unwrap());
            assert_eq!(c.volume_lots, own.iter().map(|t| t.lots).sum::<u64>());
            checked += 1;
        }
    }
    assert!(checked >= 5, "{checked} candles checked");
}

#[test]
fn the_same_seed_gives_the_same_market() {
    let run = |seed| {
        let mut rng = Rng::new(seed);
        let mut m = SymbolMarket::new(SymbolSpec::guess("ETHUSDT"), &mut rng, 0, seed);
        for i in 0..5_000u64 {
            m.step(&mut rng, i * 10, seed);
        }
        (m.top(50), m.trades_total, m.fair.to_bits())
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}
