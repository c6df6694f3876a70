//! The public REST API: time, instruments, order book, klines, tickers; Bybit's envelope, its
//! rate limit and the REST faults.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_core::wire::topic::Interval;
use serde::Deserialize;
use tokio::time::Instant;

use keel_core::Dec;

use crate::config::Category;
use crate::market::{SymbolSpec, fixed, history_candle};
use crate::publish::{levels_json, side, ticker_fields, ticker_json, trade_id, turnover};
use crate::state::Venue;

pub(crate) fn envelope(venue: &Venue, result: &str) -> String {
    format!(
        r#"{{"retCode":0,"retMsg":"OK","result":{result},"retExtInfo":{{}},"time":{}}}"#,
        venue.now_ms()
    )
}

pub(crate) fn rest_error(venue: &Venue, code: i64, msg: &str) -> Response {
    let body = format!(
        r#"{{"retCode":{code},"retMsg":"{msg}","result":{{}},"retExtInfo":{{}},"time":{}}}"#,
        venue.now_ms()
    );
    json_response(StatusCode::OK, body)
}

pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The venue's own limits and faults, in front of every REST endpoint.
pub(crate) async fn rest_gate(venue: &Venue) -> Option<Response> {
    venue.stats().rest_requests.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let (delay, forbid, status) = {
        let mut st = venue.state();
        let window = Duration::from_millis(venue.inner.config.rest_window_ms);
        while st
            .rest_sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            st.rest_sent.pop_front();
        }
        let over = st.rest_sent.len() >= venue.inner.config.rest_limit;
        if !over {
            st.rest_sent.push_back(now);
        }
        let forbid = over || st.faults.forbid_until.is_some_and(|t| now < t);
        let delay = st
            .faults
            .delay_rest
            .filter(|(_, until)| now < *until)
            .map(|(d, _)| d);
        let status = st
            .faults
            .rest_status
            .filter(|(_, until)| now < *until)
            .map(|(s, _)| s);
        (delay, forbid, status)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if forbid {
        venue.stats().rest_forbidden.fetch_add(1, Ordering::Relaxed);
        return Some((StatusCode::FORBIDDEN, "403 Forbidden: access too frequent").into_response());
    }
    if let Some(s) = status {
        let code = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Some((code, "injected").into_response());
    }
    None
}

pub(crate) async fn rest_time(State(venue): State<Venue>) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    let ms = venue.now_ms();
    let result = format!(
        r#"{{"timeSecond":"{}","timeNano":"{}"}}"#,
        ms / 1000,
        ms as u128 * 1_000_000
    );
    json_response(StatusCode::OK, envelope(&venue, &result))
}

#[derive(Deserialize)]
pub(crate) struct SymbolQuery {
    category: Option<String>,
    symbol: Option<String>,
    limit: Option<u32>,
    status: Option<String>,
}

/// The category a request names: required, as Bybit requires it, and one the venue serves.
/// (Bybit serves `inverse` and `option` too; the venue answers them with empty lists where a
/// list is asked for, so clients that load every category work.)
fn category_of(c: &Option<String>) -> Result<Option<Category>, &'static str> {
    match c.as_deref() {
        None | Some("") => Err("params error: category is required"),
        Some("inverse") | Some("option") => Ok(None),
        Some(c) => Category::parse(c)
            .map(Some)
            .ok_or("params error: category is invalid"),
    }
}

/// The category, symbol and limit of a per-symbol request; `limits` are (default, max) for
/// linear then spot.
fn symbol_and_limit(
    q: &SymbolQuery,
    limits: [(u32, u32); 2],
) -> Result<(Category, String, u32), &'static str> {
    let category = category_of(&q.category)?.ok_or("params error: symbol invalid")?;
    let symbol = q.symbol.clone().ok_or("params error: symbol is required")?;
    let (default, max) = limits[category.index()];
    let limit = q.limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err("params error: limit is invalid");
    }
    Ok((category, symbol, limit))
}

fn list_result(category: &str, list: &[String]) -> String {
    format!(
        r#"{{"category":"{category}","list":[{}],"nextPageCursor":""}}"#,
        list.join(",")
    )
}

/// One instrument, field for field as `GET /v5/market/instruments-info` lists it.
fn instrument_json(category: Category, spec: &SymbolSpec, launch_ms: u64) -> String {
    let (base, quote) = (spec.base_coin(), spec.quote_coin());
    let tick = fixed(spec.tick, spec.price_scale());
    let step = spec.qty_step.to_string();
    let max_qty = fixed(
        Dec::from_raw(spec.qty_step.raw() * 1_500_000),
        spec.qty_scale(),
    );
    match category {
        Category::Linear => {
            let max_price = fixed(
                Dec::from_raw(spec.tick.raw() * 19_999_998),
                spec.price_scale(),
            );
            let max_mkt = fixed(
                Dec::from_raw(spec.qty_step.raw() * 150_000),
                spec.qty_scale(),
            );
            let min_qty = fixed(spec.qty_step, spec.qty_scale());
            format!(
                r#"{{"symbol":"{sym}","contractType":"LinearPerpetual","status":"Trading","baseCoin":"{base}","quoteCoin":"{quote}","launchTime":"{launch_ms}","deliveryTime":"0","deliveryFeeRate":"","priceScale":"{scale}","leverageFilter":{{"minLeverage":"1","maxLeverage":"100.00","leverageStep":"0.01"}},"priceFilter":{{"minPrice":"{tick}","maxPrice":"{max_price}","tickSize":"{tick}"}},"lotSizeFilter":{{"maxOrderQty":"{max_qty}","minOrderQty":"{min_qty}","qtyStep":"{step}","postOnlyMaxOrderQty":"{max_qty}","maxMktOrderQty":"{max_mkt}","minNotionalValue":"5"}},"unifiedMarginTrade":true,"fundingInterval":480,"settleCoin":"{quote}","copyTrading":"both","upperFundingRate":"0.005","lowerFundingRate":"-0.005","isPreListing":false,"preListingInfo":null,"riskParameters":{{"priceLimitRatioX":"0.01","priceLimitRatioY":"0.02"}},"displayName":"","symbolType":"","forbidUplWithdrawal":false}}"#,
                sym = spec.symbol,
                scale = spec.price_scale(),
            )
        }
        Category::Spot => {
            let quote_precision = "0.00000001";
            format!(
                r#"{{"symbol":"{sym}","baseCoin":"{base}","quoteCoin":"{quote}","innovation":"0","status":"Trading","marginTrading":"utaOnly","stTag":"0","lotSizeFilter":{{"basePrecision":"{step}","quotePrecision":"{quote_precision}","minOrderQty":"{step}","maxOrderQty":"{max_qty}","minOrderAmt":"5","maxOrderAmt":"8000000"}},"priceFilter":{{"tickSize":"{tick}"}},"riskParameters":{{"priceLimitRatioX":"0.05","priceLimitRatioY":"0.05"}}}}"#,
                sym = spec.symbol,
                tick = spec.tick,
            )
        }
    }
}

pub(crate) async fn rest_instruments(
    State(venue): State<Venue>,
    Query(q): Query<SymbolQuery>,
) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    let category = match category_of(&q.category) {
        Ok(c) => c,
        Err(m) => return rest_error(&venue, 10001, m),
    };
    let cat_name = q.category.clone().unwrap_or_default();
    // Every listed instrument is trading; a filter on another status finds none.
    let status_ok = q.status.as_deref().is_none_or(|s| s == "Trading");
    let mut list = Vec::new();
    if let (Some(category), true) = (category, status_ok) {
        let st = venue.state();
        let wanted = |s: &str| q.symbol.as_deref().is_none_or(|w| w == s);
        if category == Category::Linear
            && let Some(f) = st.replay.as_ref()
        {
            for sym in f.symbols.iter().filter(|s| wanted(s)) {
                list.push(instrument_json(
                    category,
                    &SymbolSpec::guess(sym),
                    venue.epoch_ms(),
                ));
            }
        }
        for (sym, m) in st.cat(category).markets.iter().filter(|(s, _)| wanted(s)) {
            let _ = sym;
            list.push(instrument_json(category, &m.spec, venue.epoch_ms()));
        }
    }
    json_response(
        StatusCode::OK,
        envelope(&venue, &list_result(&cat_name, &list)),
    )
}

pub(crate) async fn rest_orderbook(
    State(venue): State<Venue>,
    Query(q): Query<SymbolQuery>,
) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    // Bybit: linear [1, 500], default 25; spot [1, 200], default 1. The venue also serves the
    // 1000-level book its stream keeps, for repairs.
    let (category, symbol, limit) = match symbol_and_limit(&q, [(25, 1000), (1, 1000)]) {
        Ok(x) => x,
        Err(m) => return rest_error(&venue, 10001, m),
    };
    let now_ms = venue.now_ms();
    let st = venue.state();
    let cs = st.cat(category);
    let Some(m) = cs.markets.get(&symbol) else {
        return rest_error(&venue, 10001, "params error: symbol invalid");
    };
    // The REST book is the 1000-level stream's last published view, with its `u`.
    let t = cs.topics.get(&format!("orderbook.1000.{symbol}"));
    let (u, view) = match t {
        Some(t) if t.u > 0 => (t.u, t.view.clone()),
        _ => (1, m.top(1000)),
    };
    let n = limit as usize;
    let view = (
        view.0.into_iter().take(n).collect::<Vec<_>>(),
        view.1.into_iter().take(n).collect::<Vec<_>>(),
    );
    let spot = category == Category::Spot;
    let mut result = format!(r#"{{"s":"{symbol}","b":["#);
    levels_json(&mut result, &m.spec, spot, &view.0);
    result.push_str(r#"],"a":["#);
    levels_json(&mut result, &m.spec, spot, &view.1);
    let _ = write!(
        result,
        r#"],"ts":{now_ms},"u":{u},"seq":{},"cts":{now_ms}}}"#,
        st.seq
    );
    drop(st);
    json_response(StatusCode::OK, envelope(&venue, &result))
}

#[derive(Deserialize)]
pub(crate) struct KlineQuery {
    category: Option<String>,
    symbol: Option<String>,
    interval: Option<String>,
    start: Option<u64>,
    end: Option<u64>,
    limit: Option<u32>,
}

/// Candles newest first within [start, end], at most `limit`; the first may still be open.
pub(crate) async fn rest_kline(
    State(venue): State<Venue>,
    Query(q): Query<KlineQuery>,
) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    // Bybit's kline endpoint defaults the category to linear.
    let category = match q.category.as_deref() {
        None => Category::Linear,
        Some(c) => match Category::parse(c) {
            Some(c) => c,
            None => return rest_error(&venue, 10001, "params error: category is invalid"),
        },
    };
    let (Some(symbol), Some(interval)) = (
        q.symbol.clone(),
        q.interval.as_deref().and_then(Interval::parse),
    ) else {
        return rest_error(
            &venue,
            10001,
            "params error: symbol and interval are required",
        );
    };
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return rest_error(&venue, 10001, "params error: limit is invalid");
    }
    let now_ms = venue.now_ms();
    let seed = venue.inner.config.seed;
    let mut st = venue.state();
    let Some(m) = st.cat_mut(category).markets.get_mut(&symbol) else {
        return rest_error(&venue, 10001, "params error: symbol invalid");
    };
    let series = m.series(interval, now_ms).clone();
    let spec = m.spec.clone();
    drop(st);
    let spot = category == Category::Spot;
    let end = q.end.unwrap_or(now_ms).min(now_ms);
    let first_live = series
        .closed
        .front()
        .map_or(series.forming.start_ms, |c| c.start_ms);
    let mut rows = Vec::new();
    let mut start = interval.floor(end);
    while rows.len() < limit as usize {
        if q.start.is_some_and(|s| start < s) {
            break;
        }
        let c = if start == series.forming.start_ms {
            Some(series.forming)
        } else if start >= first_live {
            series.closed.iter().find(|c| c.start_ms == start).copied()
        } else {
            Some(history_candle(&spec, seed, interval, start))
        };
        if let Some(c) = c {
            rows.push(format!(
                r#"["{}","{}","{}","{}","{}","{}","{}"]"#,
                c.start_ms,
                spec.px_text(spot, c.open),
                spec.px_text(spot, c.high),
                spec.px_text(spot, c.low),
                spec.px_text(spot, c.close),
                spec.qty_text(spot, c.volume_lots),
                turnover(&spec, c.notional)
            ));
        }
        if start == 0 {
            break;
        }
        // The previous candle's start.
        start = interval.floor(start - 1);
    }
    let result = format!(
        r#"{{"symbol":"{symbol}","category":"{}","list":[{}]}}"#,
        category.as_str(),
        rows.join(",")
    );
    json_response(StatusCode::OK, envelope(&venue, &result))
}

pub(crate) async fn rest_tickers(
    State(venue): State<Venue>,
    Query(q): Query<SymbolQuery>,
) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    let category = match category_of(&q.category) {
        Ok(c) => c,
        Err(m) => return rest_error(&venue, 10001, m),
    };
    let cat_name = q.category.clone().unwrap_or_default();
    let now_ms = venue.now_ms();
    let list: Vec<String> = match category {
        None => Vec::new(),
        Some(category) => {
            let st = venue.state();
            st.cat(category)
                .markets
                .iter()
                .filter(|(s, _)| q.symbol.as_ref().is_none_or(|w| w == *s))
                .map(|(s, m)| ticker_json(s, &ticker_fields(category, m, now_ms)))
                .collect()
        }
    };
    if list.is_empty() && q.symbol.is_some() {
        return rest_error(&venue, 10001, "params error: symbol invalid");
    }
    let result = format!(r#"{{"category":"{cat_name}","list":[{}]}}"#, list.join(","));
    json_response(StatusCode::OK, envelope(&venue, &result))
}

/// `GET /v5/market/recent-trade`: the latest trades, newest first. Bybit: spot `limit`
/// [1, 60] default 60, linear [1, 1000] default 500.
pub(crate) async fn rest_recent_trades(
    State(venue): State<Venue>,
    Query(q): Query<SymbolQuery>,
) -> Response {
    if let Some(r) = rest_gate(&venue).await {
        return r;
    }
    let (category, symbol, limit) = match symbol_and_limit(&q, [(500, 1000), (60, 60)]) {
        Ok(x) => x,
        Err(m) => return rest_error(&venue, 10001, m),
    };
    let st = venue.state();
    let cs = st.cat(category);
    let Some(m) = cs.markets.get(&symbol) else {
        return rest_error(&venue, 10001, "params error: symbol invalid");
    };
    let spot = category == Category::Spot;
    let list: Vec<String> = cs
        .recent
        .get(&symbol)
        .into_iter()
        .flat_map(|r| r.iter().rev())
        .take(limit as usize)
        .map(|t| {
            format!(
                r#"{{"execId":"{}","symbol":"{symbol}","price":"{}","size":"{}","side":"{}","time":"{}","isBlockTrade":false,"isRPITrade":false,"seq":"{}"}}"#,
                trade_id(category, t),
                m.spec.px_text(spot, t.ticks),
                m.spec.qty_text(spot, t.lots),
                side(t),
                t.time_ms,
                t.id >> 8
            )
        })
        .collect();
    drop(st);
    let result = format!(
        r#"{{"category":"{}","list":[{}]}}"#,
        category.as_str(),
        list.join(",")
    );
    json_response(StatusCode::OK, envelope(&venue, &result))
}
