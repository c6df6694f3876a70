//! Publication: the frames each step causes (books, klines, tickers, trades), shaped as Bybit
//! shapes them.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use keel_core::wire::topic::Interval;

use crate::market::{BookView, SimCandle, SymbolMarket, SymbolSpec};
use crate::state::{Published, TopicState, VenueState};

pub(crate) fn push_interval_ms(depth: u16) -> u64 {
    match depth {
        1 => 10,
        50 => 20,
        200 => 100,
        _ => 200,
    }
}

pub(crate) fn publish_book(
    st: &mut VenueState,
    symbol: &str,
    depth: u16,
    now_ms: u64,
    out: &mut Vec<Published>,
) {
    let topic = format!("orderbook.{depth}.{symbol}");
    // The 1000-level sequence always runs: REST snapshots carry its `u`.
    let always = depth == 1000;
    let t = st
        .topics
        .entry(topic.clone())
        .or_insert_with(TopicState::new);
    if t.subscribers == 0 && !always {
        return;
    }
    if now_ms < t.last_push_ms + (push_interval_ms(depth) / st.push_speedup).max(1) {
        return;
    }
    let m = &st.markets[symbol];
    let view = m.top(depth as usize);
    let repeat_l1 = depth == 1 && view == t.view && now_ms >= t.last_push_ms + 3_000;
    if view == t.view && !repeat_l1 {
        return;
    }
    t.last_push_ms = now_ms;
    st.seq += 1 + st.rng.up_to(5);
    if depth == 1 {
        // Level 1 is snapshot-only; an unchanged book is re-pushed every 3 s with the same `u`.
        if !repeat_l1 {
            t.u += 1;
        }
        t.view = view;
        if t.subscribers > 0 {
            let text = book_frame(&m.spec, &topic, "snapshot", now_ms, &t.view, t.u, st.seq);
            out.push(Published {
                topic: topic.into(),
                text: text.into(),
                spot: None,
            });
        }
        return;
    }
    let (bids, asks) = (
        diff(&t.view.0, &view.0, true),
        diff(&t.view.1, &view.1, false),
    );
    t.u += if std::mem::take(&mut t.skip_next) {
        2
    } else {
        1
    };
    t.view = view;
    if t.subscribers > 0 {
        let text = book_frame(&m.spec, &topic, "delta", now_ms, &(bids, asks), t.u, st.seq);
        out.push(Published {
            topic: topic.into(),
            text: text.into(),
            spot: None,
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

pub(crate) fn book_frame(
    spec: &SymbolSpec,
    topic: &str,
    kind: &str,
    ts: u64,
    view: &BookView,
    u: u64,
    seq: u64,
) -> String {
    let mut s = String::with_capacity(64 + 24 * (view.0.len() + view.1.len()));
    let _ = write!(
        s,
        r#"{{"topic":"{topic}","type":"{kind}","ts":{ts},"data":{{"s":"{}","b":["#,
        spec.symbol
    );
    levels_json(&mut s, spec, &view.0);
    s.push_str(r#"],"a":["#);
    levels_json(&mut s, spec, &view.1);
    let _ = write!(
        s,
        r#"],"u":{u},"seq":{seq}}},"cts":{}}}"#,
        ts.saturating_sub(1)
    );
    s
}

pub(crate) fn levels_json(s: &mut String, spec: &SymbolSpec, levels: &[(i64, u64)]) {
    for (i, (p, q)) in levels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, r#"["{}","{}"]"#, spec.px(*p), spec.qty(*q));
    }
}

pub(crate) fn candle_json(
    s: &mut String,
    spec: &SymbolSpec,
    interval: Interval,
    c: &SimCandle,
    confirm: bool,
    ts: u64,
) {
    let end = interval.next_start(c.start_ms) - 1;
    let turnover = keel_core::Dec::from_raw(
        spec.tick.raw() * spec.qty_step.raw() / keel_core::Dec::ONE.raw() * c.notional,
    );
    let _ = write!(
        s,
        r#"{{"start":{},"end":{end},"interval":"{}","open":"{}","close":"{}","high":"{}","low":"{}","volume":"{}","turnover":"{}","confirm":{confirm},"timestamp":{ts}}}"#,
        c.start_ms,
        interval.as_str(),
        spec.px(c.open),
        spec.px(c.close),
        spec.px(c.high),
        spec.px(c.low),
        spec.qty(c.volume_lots),
        turnover
    );
}

pub(crate) fn publish_klines(
    st: &mut VenueState,
    symbol: &str,
    now_ms: u64,
    out: &mut Vec<Published>,
) {
    let m = st.markets.get_mut(symbol).expect("known symbol");
    let closes = std::mem::take(&mut m.fresh_closes);
    let intervals: Vec<Interval> = m.series.keys().copied().collect();
    for interval in intervals {
        let topic = format!("kline.{}.{symbol}", interval.as_str());
        let Some(t) = st.topics.get_mut(&topic) else {
            continue;
        };
        if t.subscribers == 0 {
            continue;
        }
        let m = &st.markets[symbol];
        let forming = m.series[&interval].forming;
        let mut data = String::new();
        for (_, c) in closes.iter().filter(|(i, _)| *i == interval) {
            if !data.is_empty() {
                data.push(',');
            }
            candle_json(&mut data, &m.spec, interval, c, true, now_ms);
        }
        let due = now_ms >= t.last_push_ms + 1_000 && t.last_forming != Some(forming);
        if data.is_empty() && !due {
            continue;
        }
        if !data.is_empty() {
            data.push(',');
        }
        candle_json(&mut data, &m.spec, interval, &forming, false, now_ms);
        t.last_push_ms = now_ms;
        t.last_forming = Some(forming);
        out.push(Published {
            text: format!(
                r#"{{"topic":"{topic}","data":[{data}],"ts":{now_ms},"type":"snapshot"}}"#
            )
            .into(),
            topic: topic.into(),
            spot: None,
        });
    }
}

pub(crate) fn ticker_fields(m: &SymbolMarket) -> BTreeMap<&'static str, String> {
    let spec = &m.spec;
    let (bb, ba) = (m.best_bid(), m.best_ask());
    let mut f = BTreeMap::new();
    f.insert("lastPrice", spec.px(m.last_trade).to_string());
    f.insert("bid1Price", spec.px(bb).to_string());
    f.insert("bid1Size", spec.qty(m.bids[&bb]).to_string());
    f.insert("ask1Price", spec.px(ba).to_string());
    f.insert("ask1Size", spec.qty(m.asks[&ba]).to_string());
    f.insert("markPrice", spec.px((bb + ba) / 2).to_string());
    f.insert("indexPrice", spec.px((bb + ba) / 2).to_string());
    f.insert("volume24h", spec.qty(m.volume_lots_total).to_string());
    f.insert("fundingRate", "0.0001".to_string());
    f
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
    symbol: &str,
    now_ms: u64,
    out: &mut Vec<Published>,
) {
    let topic = format!("tickers.{symbol}");
    let Some(t) = st.topics.get_mut(&topic) else {
        return;
    };
    if t.subscribers == 0 || now_ms < t.last_push_ms + 100 {
        return;
    }
    let fields = ticker_fields(&st.markets[symbol]);
    let changed: BTreeMap<&'static str, String> = fields
        .iter()
        .filter(|(k, v)| t.last_fields.get(*k) != Some(*v))
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    if changed.is_empty() {
        return;
    }
    t.last_push_ms = now_ms;
    st.seq += 1;
    let cs = st.seq;
    out.push(Published {
        topic: topic.as_str().into(),
        text: format!(
            r#"{{"topic":"{topic}","type":"delta","data":{},"cs":{cs},"ts":{now_ms}}}"#,
            ticker_json(symbol, &changed)
        )
        .into(),
        spot: Some(false),
    });
    out.push(Published {
        topic: topic.as_str().into(),
        text: format!(
            r#"{{"topic":"{topic}","ts":{now_ms},"type":"snapshot","cs":{cs},"data":{}}}"#,
            ticker_json(symbol, &fields)
        )
        .into(),
        spot: Some(true),
    });
    t.last_fields = fields;
}

pub(crate) fn publish_trades(
    st: &mut VenueState,
    symbol: &str,
    now_ms: u64,
    out: &mut Vec<Published>,
) {
    let m = st.markets.get_mut(symbol).expect("known symbol");
    let trades = std::mem::take(&mut m.fresh_trades);
    let topic = format!("publicTrade.{symbol}");
    if trades.is_empty() || st.topics.get(&topic).is_none_or(|t| t.subscribers == 0) {
        return;
    }
    let spec = &st.markets[symbol].spec;
    for chunk in trades.chunks(1024) {
        let mut data = String::new();
        for (i, t) in chunk.iter().enumerate() {
            if i > 0 {
                data.push(',');
            }
            let _ = write!(
                data,
                r#"{{"T":{},"s":"{symbol}","S":"{}","v":"{}","p":"{}","L":"{}","i":"{:016x}","BT":false,"RPI":false,"seq":{}}}"#,
                t.time_ms,
                if t.buy { "Buy" } else { "Sell" },
                spec.qty(t.lots),
                spec.px(t.ticks),
                if t.buy { "PlusTick" } else { "MinusTick" },
                t.id,
                st.seq
            );
        }
        out.push(Published {
            topic: topic.as_str().into(),
            text: format!(
                r#"{{"topic":"{topic}","type":"snapshot","ts":{now_ms},"data":[{data}]}}"#
            )
            .into(),
            spot: None,
        });
    }
}
