//! Publication: the frames each step causes (books, klines, tickers, trades), shaped as Bybit
//! shapes them in each category.
//!
//! Linear and spot differ on the wire, and the venue writes each as the captures show it:
//! linear order-book frames order their keys `topic, type, ts, data, cts` and write decimals to
//! the instrument's scale (`"65114.20"`); spot orders them `topic, ts, type, data, cts` and trims
//! trailing zeros (`"65140"`). A linear kline frame at a close carries the closed candle and the
//! new one together; spot sends them as two frames. Linear tickers are a snapshot then deltas of
//! what changed; spot tickers are snapshots.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use keel_core::wire::topic::Interval;

use crate::config::Category;
use crate::market::{BookView, SimCandle, SimTrade, SymbolMarket, SymbolSpec};
use crate::state::{CategoryState, Published, RECENT_TRADES_MAX, TopicState, VenueState};

/// Bybit's push intervals by depth, in ms.
pub(crate) fn push_interval_ms(depth: u16) -> u64 {
    match depth {
        1 => 10,
        50 => 20,
        200 => 100,
        _ => 200,
    }
}

/// Most often a ticker topic is pushed, in ms.
const TICKER_PUSH_MS: u64 = 100;
/// Most often a forming candle is pushed when nothing closed, in ms.
const KLINE_PUSH_MS: u64 = 1_000;
/// "a single message may have up to 1024 trades".
const TRADES_PER_FRAME_MAX: usize = 1024;

pub(crate) fn publish_book(
    st: &mut VenueState,
    category: Category,
    symbol: &str,
    depth: u16,
    now_ms: u64,
    out: &mut Vec<Published>,
) {
    let VenueState {
        rng,
        cats,
        seq,
        push_speedup,
        ..
    } = st;
    let cs = &mut cats[category.index()];
    let topic = format!("orderbook.{depth}.{symbol}");
    // The 1000-level sequence always runs: REST snapshots carry its `u`.
    let always = depth == 1000;
    let t = cs
        .topics
        .entry(topic.clone())
        .or_insert_with(TopicState::new);
    if t.subscribers == 0 && !always {
        return;
    }
    if now_ms < t.last_push_ms + (push_interval_ms(depth) / *push_speedup).max(1) {
        return;
    }
    let m = &cs.markets[symbol];
    let view = m.top(depth as usize);
    let repeat_l1 = depth == 1 && view == t.view && now_ms >= t.last_push_ms + 3_000;
    if view == t.view && !repeat_l1 {
        return;
    }
    t.last_push_ms = now_ms;
    *seq += 1 + rng.up_to(5);
    let (kind, frame_view) = if depth == 1 {
        // Level 1 is snapshot-only; an unchanged book is re-pushed every 3 s with the same `u`.
        if !repeat_l1 {
            t.u += 1;
        }
        t.view = view;
        ("snapshot", t.view.clone())
    } else {
        let changed = (
            diff(&t.view.0, &view.0, true),
            diff(&t.view.1, &view.1, false),
        );
        t.u += if std::mem::take(&mut t.skip_next) {
            2
        } else {
            1
        };
        t.view = view;
        ("delta", changed)
    };
    if t.subscribers > 0 {
        let text = book_frame(
            category,
            &m.spec,
            &topic,
            kind,
            now_ms,
            &frame_view,
            t.u,
            *seq,
        );
        out.push(Published {
            category,
            topic: topic.into(),
            text: text.into(),
        });
    }
}

/// Levels that changed from `old` to `new` (both best first), with 0 for levels that left.
pub(crate) fn diff(old: &[(i64, u64)], new: &[(i64, u64)], bids: bool) -> Vec<(i64, u64)> {
    let old_map: HashMap<i64, u64> = old.iter().copied().collect();
    let new_map: HashMap<i64, u64> = new.iter().copied().collect();
    let mut out: Vec<(i64, u64)> = new
        .iter()
        .filter(|(p, q)| old_map.get(p) != Some(q))
        .copied()
        .collect();
    out.extend(
        old.iter()
            .filter(|(p, _)| !new_map.contains_key(p))
            .map(|(p, _)| (*p, 0)),
    );
    out.sort_by_key(|(p, _)| if bids { -*p } else { *p });
    out
}

/// One order-book frame in the category's own key order and decimal style.
#[allow(clippy::too_many_arguments)] // one frame's every field, named at each call
pub(crate) fn book_frame(
    category: Category,
    spec: &SymbolSpec,
    topic: &str,
    kind: &str,
    ts: u64,
    view: &BookView,
    u: u64,
    seq: u64,
) -> String {
    let spot = category == Category::Spot;
    let mut s = String::with_capacity(64 + 24 * (view.0.len() + view.1.len()));
    if spot {
        let _ = write!(
            s,
            r#"{{"topic":"{topic}","ts":{ts},"type":"{kind}","data":{{"s":"{}","b":["#,
            spec.symbol
        );
    } else {
        let _ = write!(
            s,
            r#"{{"topic":"{topic}","type":"{kind}","ts":{ts},"data":{{"s":"{}","b":["#,
            spec.symbol
        );
    }
    levels_json(&mut s, spec, spot, &view.0);
    s.push_str(r#"],"a":["#);
    levels_json(&mut s, spec, spot, &view.1);
    let _ = write!(
        s,
        r#"],"u":{u},"seq":{seq}}},"cts":{}}}"#,
        ts.saturating_sub(1)
    );
    s
}

pub(crate) fn levels_json(s: &mut String, spec: &SymbolSpec, spot: bool, levels: &[(i64, u64)]) {
    for (i, (p, q)) in levels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            r#"["{}","{}"]"#,
            spec.px_text(spot, *p),
            spec.qty_text(spot, *q)
        );
    }
}

/// Turnover of a candle or a day: the sum of price * size, in the quote coin.
pub(crate) fn turnover(spec: &SymbolSpec, notional: i128) -> keel_core::Dec {
    keel_core::Dec::from_raw(
        spec.tick.raw() * spec.qty_step.raw() / keel_core::Dec::ONE.raw() * notional,
    )
}

pub(crate) fn candle_json(
    s: &mut String,
    category: Category,
    spec: &SymbolSpec,
    interval: Interval,
    c: &SimCandle,
    confirm: bool,
    ts: u64,
) {
    let spot = category == Category::Spot;
    let end = interval.next_start(c.start_ms) - 1;
    let _ = write!(
        s,
        r#"{{"start":{},"end":{end},"interval":"{}","open":"{}","close":"{}","high":"{}","low":"{}","volume":"{}","turnover":"{}","confirm":{confirm},"timestamp":{ts}}}"#,
        c.start_ms,
        interval.as_str(),
        spec.px_text(spot, c.open),
        spec.px_text(spot, c.close),
        spec.px_text(spot, c.high),
        spec.px_text(spot, c.low),
        spec.qty_text(spot, c.volume_lots),
        turnover(spec, c.notional)
    );
}

fn kline_frame(topic: &str, data: &str, ts: u64) -> String {
    format!(r#"{{"topic":"{topic}","data":[{data}],"ts":{ts},"type":"snapshot"}}"#)
}

pub(crate) fn publish_klines(
    st: &mut VenueState,
    category: Category,
    symbol: &str,
    now_ms: u64,
    out: &mut Vec<Published>,
) {
    let cs = st.cat_mut(category);
    let m = cs.markets.get_mut(symbol).expect("known symbol");
    let closes = std::mem::take(&mut m.fresh_closes);
    let intervals: Vec<Interval> = m.series.keys().copied().collect();
    for interval in intervals {
        let topic = format!("kline.{}.{symbol}", interval.as_str());
        let Some(t) = cs.topics.get_mut(&topic) else {
            continue;
        };
        if t.subscribers == 0 {
            continue;
        }
        let m = &cs.markets[symbol];
        let forming = m.series[&interval].forming;
        let mut closed = Vec::new();
        for (_, c) in closes.iter().filter(|(i, _)| *i == interval) {
            let mut data = String::new();
            candle_json(&mut data, category, &m.spec, interval, c, true, now_ms);
            closed.push(data);
        }
        let due = now_ms >= t.last_push_ms + KLINE_PUSH_MS && t.last_forming != Some(forming);
        if closed.is_empty() && !due {
            continue;
        }
        let mut current = String::new();
        candle_json(
            &mut current,
            category,
            &m.spec,
            interval,
            &forming,
            false,
            now_ms,
        );
        t.last_push_ms = now_ms;
        t.last_forming = Some(forming);
        let texts: Vec<String> = match category {
            // Linear: one frame, the closed candle then the new one (as captured).
            Category::Linear => {
                closed.push(current);
                vec![kline_frame(&topic, &closed.join(","), now_ms)]
            }
            // Spot: the close and the new candle in frames of their own.
            Category::Spot => closed
                .iter()
                .chain(std::iter::once(&current))
                .map(|d| kline_frame(&topic, d, now_ms))
                .collect(),
        };
        for text in texts {
            out.push(Published {
                category,
                topic: topic.as_str().into(),
                text: text.into(),
            });
        }
    }
}

/// Milliseconds in one funding interval (eight hours).
const FUNDING_INTERVAL_MS: u64 = 8 * 3_600_000;

/// A ticker's fields as the category's REST and snapshot frames carry them.
pub(crate) fn ticker_fields(
    category: Category,
    m: &SymbolMarket,
    now_ms: u64,
) -> BTreeMap<&'static str, String> {
    let spec = &m.spec;
    let spot = category == Category::Spot;
    let px = |t: i64| spec.px_text(spot, t);
    let (bb, ba) = (m.best_bid(), m.best_ask());
    let d = &m.day;
    let last = m.last_trade;
    let pcnt = if d.prev_price_24h > 0 {
        (last - d.prev_price_24h) as f64 / d.prev_price_24h as f64
    } else {
        0.0
    };
    let mid = spec.px((bb + ba) / 2);
    let mut f = BTreeMap::new();
    f.insert("lastPrice", px(last));
    f.insert("bid1Price", px(bb));
    f.insert("bid1Size", spec.qty_text(spot, m.bids[&bb]));
    f.insert("ask1Price", px(ba));
    f.insert("ask1Size", spec.qty_text(spot, m.asks[&ba]));
    f.insert("prevPrice24h", px(d.prev_price_24h));
    f.insert("price24hPcnt", format!("{pcnt:.6}"));
    f.insert("highPrice24h", px(d.high.max(last)));
    f.insert("lowPrice24h", px(d.low.min(last)));
    f.insert("turnover24h", turnover(spec, d.notional).to_string());
    f.insert("volume24h", spec.qty_text(spot, d.volume_lots));
    if spot {
        f.insert("usdIndexPrice", mid.to_string());
        return f;
    }
    let mark = spec.px_text(false, (bb + ba) / 2);
    let oi = spec.qty(d.open_interest_lots);
    f.insert("markPrice", mark.clone());
    f.insert("indexPrice", mark);
    f.insert("prevPrice1h", px(d.prev_price_1h));
    f.insert("openInterest", spec.qty_text(false, d.open_interest_lots));
    let oi_value = oi.checked_mul(mid).unwrap_or(keel_core::Dec::ZERO);
    f.insert(
        "openInterestValue",
        crate::market::fixed(round2(oi_value), 2),
    );
    f.insert("fundingRate", "0.0001".to_string());
    let next_funding = (now_ms / FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS;
    f.insert("nextFundingTime", next_funding.to_string());
    f.insert("fundingIntervalHour", "8".to_string());
    f.insert("fundingCap", "0.005".to_string());
    // A perpetual has no delivery, basis or pre-listing: Bybit sends these empty.
    for k in [
        "predictedDeliveryPrice",
        "basisRate",
        "deliveryFeeRate",
        "basis",
        "preOpenPrice",
        "preQty",
        "curPreListingPhase",
        "basisRateYear",
    ] {
        f.insert(k, String::new());
    }
    f.insert("deliveryTime", "0".to_string());
    f
}

fn round2(d: keel_core::Dec) -> keel_core::Dec {
    let unit = keel_core::Dec::parse("0.01").expect("literal").raw();
    keel_core::Dec::from_raw(d.raw() / unit * unit)
}

pub(crate) fn ticker_json(symbol: &str, fields: &BTreeMap<&'static str, String>) -> String {
    let mut s = format!(r#"{{"symbol":"{symbol}""#);
    for (k, v) in fields {
        let _ = write!(s, r#","{k}":"{v}""#);
    }
    s.push('}');
    s
}

pub(crate) fn publish_ticker(
    st: &mut VenueState,
    category: Category,
    symbol: &str,
    now_ms: u64,
    out: &mut Vec<Published>,
) {
    let VenueState { cats, seq, .. } = st;
    let cs = &mut cats[category.index()];
    let topic = format!("tickers.{symbol}");
    let Some(t) = cs.topics.get_mut(&topic) else {
        return;
    };
    if t.subscribers == 0 || now_ms < t.last_push_ms + TICKER_PUSH_MS {
        return;
    }
    let fields = ticker_fields(category, &cs.markets[symbol], now_ms);
    let changed: BTreeMap<&'static str, String> = fields
        .iter()
        .filter(|(k, v)| t.last_fields.get(*k) != Some(*v))
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    if changed.is_empty() {
        return;
    }
    t.last_push_ms = now_ms;
    *seq += 1;
    let cs_seq = *seq;
    let text = match category {
        Category::Linear => format!(
            r#"{{"topic":"{topic}","type":"delta","data":{},"cs":{cs_seq},"ts":{now_ms}}}"#,
            ticker_json(symbol, &changed)
        ),
        Category::Spot => format!(
            r#"{{"topic":"{topic}","ts":{now_ms},"type":"snapshot","cs":{cs_seq},"data":{}}}"#,
            ticker_json(symbol, &fields)
        ),
    };
    out.push(Published {
        category,
        topic: topic.as_str().into(),
        text: text.into(),
    });
    t.last_fields = fields;
}

/// Keeps the step's trades for REST and publishes them to `publicTrade` subscribers.
pub(crate) fn publish_trades(
    st: &mut VenueState,
    category: Category,
    symbol: &str,
    now_ms: u64,
    out: &mut Vec<Published>,
) {
    let VenueState { cats, seq, .. } = st;
    let cs: &mut CategoryState = &mut cats[category.index()];
    let m = cs.markets.get_mut(symbol).expect("known symbol");
    let trades = std::mem::take(&mut m.fresh_trades);
    if trades.is_empty() {
        return;
    }
    let recent = cs.recent.entry(symbol.to_string()).or_default();
    for t in &trades {
        if recent.len() == RECENT_TRADES_MAX {
            recent.pop_front();
        }
        recent.push_back(*t);
    }
    let topic = format!("publicTrade.{symbol}");
    if cs.topics.get(&topic).is_none_or(|t| t.subscribers == 0) {
        return;
    }
    let spec = &cs.markets[symbol].spec;
    let spot = category == Category::Spot;
    for chunk in trades.chunks(TRADES_PER_FRAME_MAX) {
        let mut data = String::new();
        for (i, t) in chunk.iter().enumerate() {
            if i > 0 {
                data.push(',');
            }
            let _ = write!(
                data,
                r#"{{"T":{},"s":"{symbol}","S":"{}","v":"{}","p":"{}","L":"{}","i":"{}","BT":false,"RPI":false,"seq":{}}}"#,
                t.time_ms,
                side(t),
                spec.qty_text(spot, t.lots),
                spec.px_text(spot, t.ticks),
                if t.buy { "PlusTick" } else { "MinusTick" },
                trade_id(category, t),
                *seq
            );
        }
        out.push(Published {
            category,
            topic: topic.as_str().into(),
            text: format!(
                r#"{{"topic":"{topic}","type":"snapshot","ts":{now_ms},"data":[{data}]}}"#
            )
            .into(),
        });
    }
}

pub(crate) fn side(t: &SimTrade) -> &'static str {
    if t.buy { "Buy" } else { "Sell" }
}

/// A trade's id as the category writes it: linear ids are UUIDs, spot ids long numbers.
pub(crate) fn trade_id(category: Category, t: &SimTrade) -> String {
    match category {
        Category::Spot => format!(
            "{}",
            2_100_000_000_000_000_000u64 + (t.id >> 4) % 1_000_000_000_000_000
        ),
        Category::Linear => {
            let h = t.id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            format!(
                "{:08x}-{:04x}-5{:03x}-8{:03x}-{:012x}",
                (h >> 32) as u32,
                (h >> 16) as u16,
                (h >> 4) & 0xfff,
                t.id & 0xfff,
                t.id & 0xffff_ffff_ffff
            )
        }
    }
}
