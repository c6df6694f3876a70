//! The paper venue: answers the order machine's private requests in Bybit's own wire format,
//! filling against the live book the engine holds, so paper trading runs the very code live
//! trading runs (the intent written before the send, the ack, the look-ups, the executions
//! applied once each by execId) with only the venue replaced.
//!
//! A data structure: [`PaperVenue::answer`] takes one request and the book of its symbol, and
//! returns the status and body the venue would. Where it differs from Bybit, it says so:
//! - A taker walks the levels it is given (best first), each at its price moved against the
//!   order by the configured slippage, with the configured fee on each fill.
//! - Nothing rests: what a market order cannot fill from the book, or what of a limit order does
//!   not cross, is cancelled at once (as an IOC would be), so cancel-all always finds nothing. A
//!   fill-or-kill order fills whole or not at all; a post-only order is cancelled unfilled.
//! - Without a synced book for the symbol the create is refused (retCode 10001), never filled
//!   from a guess.
//! - Positions and wallet belong to keel's own broker on paper: those endpoints answer 10001.

use std::collections::{BTreeMap, VecDeque};

use crate::decimal::{Dec, Level};
use crate::trading::orders::{Method, Request};
use crate::wire::private::{OrderStatus, Side};

/// Orders a paper venue remembers; the oldest final one is forgotten past this (the order
/// machine looks an order up only while it is working).
pub const PAPER_ORDERS_MAX: usize = 4_096;

/// Executions one order may make: one per level walked.
pub const PAPER_EXECS_PER_ORDER_MAX: usize = 1_000;

/// The answer Bybit gives a refused parameter.
const RET_CODE_BAD_PARAMETER: i64 = 10001;

#[derive(Debug, Clone)]
struct PaperOrder {
    order_id: String,
    symbol: String,
    side: Side,
    qty: Dec,
    cum_qty: Dec,
    avg_px: Option<Dec>,
    status: OrderStatus,
    execs: Vec<PaperExec>,
}

#[derive(Debug, Clone)]
struct PaperExec {
    exec_id: String,
    px: Dec,
    qty: Dec,
    fee: Dec,
    ts_ms: u64,
}

/// What one create is filled against: the side of the book a taker walks (the asks for a buy),
/// best first.
pub struct PaperBook {
    pub levels: Vec<Level>,
    /// The exchange time of the book's last update: the fills' time.
    pub ts_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PaperCounters {
    pub creates: u64,
    pub fills: u64,
    /// Orders (or parts) cancelled because the book could not fill them.
    pub unfilled: u64,
    pub refused: u64,
}

pub struct PaperVenue {
    fee_rate: Dec,
    slippage: Dec,
    orders: BTreeMap<String, PaperOrder>,
    /// The orders' link ids, oldest first: the one forgotten past the bound.
    arrival: VecDeque<String>,
    /// The latest book time seen: the venue's clock.
    now_ms: u64,
    counters: PaperCounters,
}

impl PaperVenue {
    /// `fee_bps` on each fill's notional; each level's price moved `slippage_bps` against the
    /// taker. Rates outside [0, 1000] bps are taken as zero (the broker's config refuses them).
    pub fn new(fee_bps: f64, slippage_bps: f64) -> PaperVenue {
        let rate = |bps: f64| {
            if (0.0..=1_000.0).contains(&bps) {
                Dec::from_f64(bps / 10_000.0).unwrap_or(Dec::ZERO)
            } else {
                Dec::ZERO
            }
        };
        PaperVenue {
            fee_rate: rate(fee_bps),
            slippage: rate(slippage_bps),
            orders: BTreeMap::new(),
            arrival: VecDeque::new(),
            now_ms: 0,
            counters: PaperCounters::default(),
        }
    }

    pub fn counters(&self) -> &PaperCounters {
        &self.counters
    }

    /// The venue's answer to `r`: HTTP status and body. A create that reads as one asks
    /// `book(symbol, side)` for the side it walks (`None` when the symbol has no usable book).
    pub fn answer(
        &mut self,
        r: &Request,
        book: impl FnOnce(&str, Side) -> Option<PaperBook>,
    ) -> (u16, String) {
        let body = match (r.method, r.path) {
            (Method::Post, "/v5/order/create") => self.create(&r.payload, book),
            (Method::Get, "/v5/order/realtime" | "/v5/order/history") => {
                match query(&r.payload, "orderLinkId") {
                    Some(link) => self.order_list(link),
                    None => refuse("orderLinkId is required on paper"),
                }
            }
            (Method::Get, "/v5/execution/list") => self.executions(&r.payload),
            // Nothing rests on paper: there is never anything to cancel.
            (Method::Post, "/v5/order/cancel-all") => ok(r#"{"list":[],"success":"1"}"#),
            (Method::Get, "/v5/market/time") => {
                let s = self.now_ms / 1_000;
                let nanos = u128::from(self.now_ms) * 1_000_000;
                ok(&format!(r#"{{"timeSecond":"{s}","timeNano":"{nanos}"}}"#))
            }
            (_, path) => refuse(&format!("{path} is not offered on paper")),
        };
        (200, body)
    }

    fn create(
        &mut self,
        payload: &str,
        book: impl FnOnce(&str, Side) -> Option<PaperBook>,
    ) -> String {
        let v: serde_json::Value = match serde_json::from_str(payload) {
            Ok(v) => v,
            Err(_) => return self.refused("the body is not JSON"),
        };
        let text = |k: &str| v[k].as_str().unwrap_or_default();
        let (link, symbol) = (text("orderLinkId"), text("symbol"));
        let Some(side) = Side::parse(text("side")) else {
            return self.refused("side must be Buy or Sell");
        };
        let Some(qty) = Dec::parse(text("qty")).ok().filter(|q| *q > Dec::ZERO) else {
            return self.refused("qty must be a positive number");
        };
        let limit = match text("orderType") {
            "Market" => None,
            "Limit" => match Dec::parse(text("price")).ok().filter(|p| *p > Dec::ZERO) {
                Some(p) => Some(p),
                None => return self.refused("a limit order needs a positive price"),
            },
            _ => return self.refused("orderType must be Market or Limit"),
        };
        if link.is_empty() || symbol.is_empty() {
            return self.refused("symbol and orderLinkId are required");
        }
        if self.orders.contains_key(link) {
            self.counters.refused += 1;
            return err(
                crate::wire::private::RET_CODE_DUPLICATE_LINK_ID,
                "OrderLinkedID is duplicate",
            );
        }
        let Some(book) = book(symbol, side) else {
            return self.refused(&format!("no synced book for {symbol} on paper"));
        };
        self.now_ms = self.now_ms.max(book.ts_ms);
        // Ids from the orderLinkId, never reused by the store: a paper venue starts empty with
        // every run, and ids it counted afresh would repeat ones the store already holds.
        let order_id = format!("paper-{link}");
        let mut o = PaperOrder {
            order_id: order_id.clone(),
            symbol: symbol.to_string(),
            side,
            qty,
            cum_qty: Dec::ZERO,
            avg_px: None,
            status: OrderStatus::New,
            execs: Vec::new(),
        };
        let crosses = |l: &Level| crosses(limit, side, l.px);
        let taken = match text("timeInForce") {
            // A post-only order never takes; and nothing rests on paper.
            "PostOnly" => false,
            // All or nothing: what the crossing levels hold must cover the order.
            "FOK" => {
                let mut available = Dec::ZERO;
                for l in book.levels.iter().take(PAPER_EXECS_PER_ORDER_MAX) {
                    if !crosses(l) {
                        break;
                    }
                    available = available.checked_add(l.qty).unwrap_or(available);
                }
                available >= qty
            }
            _ => true,
        };
        if taken {
            self.fill(&mut o, side, limit, &book.levels, book.ts_ms);
        } else {
            self.counters.unfilled += 1;
            o.status = OrderStatus::Cancelled;
        }
        self.counters.creates += 1;
        self.orders.insert(link.to_string(), o);
        self.arrival.push_back(link.to_string());
        self.forget_oldest();
        ok(&format!(
            r#"{{"orderId":"{order_id}","orderLinkId":"{link}"}}"#
        ))
    }

    /// Walks `levels` for the order; the rest is cancelled (nothing rests on paper).
    fn fill(
        &mut self,
        o: &mut PaperOrder,
        side: Side,
        limit: Option<Dec>,
        levels: &[Level],
        ts_ms: u64,
    ) {
        let mut left = o.qty;
        let mut notional = Dec::ZERO;
        for l in levels.iter().take(PAPER_EXECS_PER_ORDER_MAX) {
            if left.is_zero() || !crosses(limit, side, l.px) {
                break;
            }
            let take = left.min(l.qty);
            let Some((px, fee, value)) = self.price(l.px, take, side) else {
                break;
            };
            let Some(rest) = left.checked_sub(take) else {
                break;
            };
            left = rest;
            notional = notional.checked_add(value).unwrap_or(notional);
            o.cum_qty = o.cum_qty.checked_add(take).unwrap_or(o.cum_qty);
            o.execs.push(PaperExec {
                exec_id: format!("{}-{}", o.order_id, o.execs.len()),
                px,
                qty: take,
                fee,
                ts_ms,
            });
            self.counters.fills += 1;
        }
        o.avg_px = notional.checked_div(o.cum_qty);
        o.status = if left.is_zero() {
            OrderStatus::Filled
        } else {
            self.counters.unfilled += 1;
            if o.cum_qty.is_zero() {
                OrderStatus::Cancelled
            } else {
                OrderStatus::PartiallyFilledCanceled
            }
        };
    }

    /// A fill's price (the level's, moved by the slippage against the taker), fee and value.
    fn price(&self, level_px: Dec, qty: Dec, side: Side) -> Option<(Dec, Dec, Dec)> {
        let moved = level_px.checked_mul(self.slippage)?;
        let px = match side {
            Side::Buy => level_px.checked_add(moved)?,
            Side::Sell => level_px.checked_sub(moved)?,
        };
        let value = px.checked_mul(qty)?;
        let fee = value.checked_mul(self.fee_rate)?;
        Some((px, fee, value))
    }

    fn order_list(&self, link: &str) -> String {
        let row = self.orders.get(link).map(|o| {
            let avg = o.avg_px.map(|p| p.to_string()).unwrap_or_default();
            format!(
                r#"{{"orderId":"{}","orderLinkId":"{link}","symbol":"{}","side":"{}","orderStatus":"{}","qty":"{}","cumExecQty":"{}","avgPrice":"{avg}","rejectReason":"EC_NoError"}}"#,
                o.order_id,
                o.symbol,
                o.side.as_str(),
                status_text(o.status),
                o.qty,
                o.cum_qty,
            )
        });
        ok(&format!(
            r#"{{"list":[{}],"nextPageCursor":""}}"#,
            row.unwrap_or_default()
        ))
    }

    /// One order's executions, a page at a time (the cursor is the index of the next one).
    fn executions(&self, q: &str) -> String {
        let Some(link) = query(q, "orderLinkId") else {
            return refuse("orderLinkId is required on paper");
        };
        let Some(o) = self.orders.get(link) else {
            return ok(r#"{"list":[],"nextPageCursor":""}"#);
        };
        let page = crate::wire::private::EXECUTIONS_PAGE_MAX;
        let from: usize = query(q, "cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
        let rows: Vec<String> = o
            .execs
            .iter()
            .skip(from)
            .take(page)
            .map(|x| {
                format!(
                    r#"{{"execId":"{}","orderId":"{}","orderLinkId":"{link}","symbol":"{}","side":"{}","execPrice":"{}","execQty":"{}","execFee":"{}","execTime":"{}","execType":"Trade"}}"#,
                    x.exec_id,
                    o.order_id,
                    o.symbol,
                    o.side.as_str(),
                    x.px,
                    x.qty,
                    x.fee,
                    x.ts_ms
                )
            })
            .collect();
        let next = if from + page < o.execs.len() {
            (from + page).to_string()
        } else {
            String::new()
        };
        ok(&format!(
            r#"{{"list":[{}],"nextPageCursor":"{next}"}}"#,
            rows.join(",")
        ))
    }

    fn refused(&mut self, why: &str) -> String {
        self.counters.refused += 1;
        refuse(why)
    }

    /// Past the bound the oldest order goes (every paper order is final once answered).
    fn forget_oldest(&mut self) {
        while self.orders.len() > PAPER_ORDERS_MAX {
            let Some(oldest) = self.arrival.pop_front() else {
                return;
            };
            self.orders.remove(&oldest);
        }
    }
}

fn status_text(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Filled => "Filled",
        OrderStatus::Cancelled => "Cancelled",
        OrderStatus::PartiallyFilledCanceled => "PartiallyFilledCanceled",
        _ => "New",
    }
}

/// The value of `key` in a query string (link ids and cursors need no unescaping here: the
/// order machine writes them plain).
fn query<'a>(q: &'a str, key: &str) -> Option<&'a str> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn ok(result: &str) -> String {
    format!(r#"{{"retCode":0,"retMsg":"OK","result":{result},"retExtInfo":{{}}}}"#)
}

fn err(code: i64, msg: &str) -> String {
    format!(r#"{{"retCode":{code},"retMsg":"{msg}","result":{{}},"retExtInfo":{{}}}}"#)
}

fn refuse(why: &str) -> String {
    err(RET_CODE_BAD_PARAMETER, &why.replace('"', "'"))
}

/// Whether a level at `px` is within an order's limit (a market order takes any).
fn crosses(limit: Option<Dec>, side: Side, px: Dec) -> bool {
    match (limit, side) {
        (None, _) => true,
        (Some(p), Side::Buy) => px <= p,
        (Some(p), Side::Sell) => px >= p,
    }
}

#[cfg(test)]
mod tests;
