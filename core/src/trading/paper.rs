//! The paper venue: answers the order machine's private requests in Bybit's own wire format,
//! filling against the live book the engine holds, so paper trading runs the very code live
//! trading runs (the intent written before the send, the ack, the look-ups, the executions
//! applied once each by execId) with only the venue replaced.
//!
//! A data structure: [`PaperVenue::answer`] takes one request and the book of its symbol, and
//! returns the status and body the venue would. Where it differs from Bybit, it says so:
//! - A taker walks the levels it is given (best first), each at its price moved against the
//!   order by the configured slippage, with the configured fee on each fill.
//! - A good-till-cancelled limit order takes what crosses and rests the rest at its price, as on
//!   Bybit; a post-only one rests whole, or is cancelled when it would take. A resting order
//!   fills at its own price (a maker, no slippage) once the other side of the live book reaches
//!   it, up to the size shown there at each check, shared among the resting orders in the order
//!   they came ([`PaperVenue::match_resting`]): queue position is not modelled, so a resting
//!   order fills no later than on the venue. Cancel-all
//!   cancels a symbol's resting orders. At most [`PAPER_RESTING_MAX`] rest at once; a create past
//!   that is refused.
//! - A market order, or an immediate-or-cancel limit, fills what the book holds and cancels the
//!   rest; a fill-or-kill order fills whole or not at all.
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

/// Executions one order may make: one per level walked, or per check that fills it resting.
pub const PAPER_EXECS_PER_ORDER_MAX: usize = 1_000;

/// Orders resting on a paper venue at once (Bybit allows 500 open orders per symbol).
pub const PAPER_RESTING_MAX: usize = 500;

/// The answer Bybit gives a refused parameter.
const RET_CODE_BAD_PARAMETER: i64 = 10001;

#[derive(Debug, Clone)]
struct PaperOrder {
    order_id: String,
    symbol: String,
    side: Side,
    qty: Dec,
    /// The price it rests at; `None` for a market order.
    limit: Option<Dec>,
    cum_qty: Dec,
    /// The sum of its fills' values, for the average price.
    notional: Dec,
    avg_px: Option<Dec>,
    status: OrderStatus,
    execs: Vec<PaperExec>,
}

impl PaperOrder {
    fn resting(&self) -> bool {
        matches!(self.status, OrderStatus::New | OrderStatus::PartiallyFilled)
    }
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
    /// Orders (or their rest) left on the book at their price.
    pub rested: u64,
    /// Resting orders cancelled by a cancel-all.
    pub cancelled: u64,
}

pub struct PaperVenue {
    fee_rate: Dec,
    slippage: Dec,
    orders: BTreeMap<String, PaperOrder>,
    /// The orders' link ids, oldest first: the one forgotten past the bound.
    arrival: VecDeque<String>,
    /// The link ids of the orders resting now, oldest first (at most [`PAPER_RESTING_MAX`]).
    resting: Vec<String>,
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
            resting: Vec::new(),
            now_ms: 0,
            counters: PaperCounters::default(),
        }
    }

    pub fn counters(&self) -> &PaperCounters {
        &self.counters
    }

    /// How many orders rest now.
    pub fn resting(&self) -> usize {
        self.resting.len()
    }

    /// Fills resting orders that the book now reaches, each at its own price: `book(symbol,
    /// side)` gives the side an order of `side` would take from, best first, as for a create.
    /// Returns how many fills it made.
    pub fn match_resting(
        &mut self,
        mut book: impl FnMut(&str, Side) -> Option<PaperBook>,
    ) -> usize {
        let before = self.counters.fills;
        // Each side of a book is read once a check, and what one order takes from it is gone
        // for the next (at most one entry per symbol and side among the resting orders).
        let mut books: Vec<(String, Side, Option<PaperBook>)> = Vec::new();
        let mut i = 0;
        while i < self.resting.len() {
            let link = self.resting[i].clone();
            let Some(mut o) = self.orders.remove(&link) else {
                self.resting.remove(i);
                continue;
            };
            let at = match books
                .iter()
                .position(|(s, d, _)| *s == o.symbol && *d == o.side)
            {
                Some(at) => at,
                None => {
                    books.push((o.symbol.clone(), o.side, book(&o.symbol, o.side)));
                    books.len() - 1
                }
            };
            if let Some(b) = books[at].2.as_mut() {
                self.now_ms = self.now_ms.max(b.ts_ms);
                self.fill_resting(&mut o, b);
            }
            let done = !o.resting();
            self.orders.insert(link, o);
            if done {
                self.resting.remove(i);
            } else {
                i += 1;
            }
        }
        (self.counters.fills - before) as usize
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
            (Method::Post, "/v5/order/cancel-all") => self.cancel_all(&r.payload),
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
            limit,
            cum_qty: Dec::ZERO,
            notional: Dec::ZERO,
            avg_px: None,
            status: OrderStatus::New,
            execs: Vec::new(),
        };
        let tif = text("timeInForce");
        // A limit order is good till cancelled unless it says otherwise (Bybit's default).
        let may_rest = limit.is_some() && matches!(tif, "GTC" | "PostOnly" | "");
        if may_rest && self.resting.len() >= PAPER_RESTING_MAX {
            return self.refused(&format!(
                "{PAPER_RESTING_MAX} orders already rest on paper: cancel some first"
            ));
        }
        let crosses = |l: &Level| crosses(limit, side, l.px);
        let taken = match tif {
            // A post-only order never takes: it rests, or is cancelled if it would take.
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
        let would_take = book.levels.first().is_some_and(crosses);
        if taken {
            self.fill(&mut o, side, limit, &book.levels, book.ts_ms);
        }
        let left = o.qty.checked_sub(o.cum_qty).unwrap_or(Dec::ZERO);
        o.status = if left.is_zero() {
            OrderStatus::Filled
        } else if may_rest && !(tif == "PostOnly" && would_take) {
            self.counters.rested += 1;
            self.resting.push(link.to_string());
            if o.cum_qty.is_zero() {
                OrderStatus::New
            } else {
                OrderStatus::PartiallyFilled
            }
        } else {
            self.counters.unfilled += 1;
            if o.cum_qty.is_zero() {
                OrderStatus::Cancelled
            } else {
                OrderStatus::PartiallyFilledCanceled
            }
        };
        self.counters.creates += 1;
        self.orders.insert(link.to_string(), o);
        self.arrival.push_back(link.to_string());
        self.forget_oldest();
        ok(&format!(
            r#"{{"orderId":"{order_id}","orderLinkId":"{link}"}}"#
        ))
    }

    /// Walks `levels` as a taker, each level at its price moved by the slippage; the caller
    /// decides what becomes of the rest.
    fn fill(
        &mut self,
        o: &mut PaperOrder,
        side: Side,
        limit: Option<Dec>,
        levels: &[Level],
        ts_ms: u64,
    ) {
        for l in levels {
            if !crosses(limit, side, l.px) {
                break;
            }
            let Some(px) = self.slipped(l.px, side) else {
                break;
            };
            if !self.exec(o, px, l.qty, ts_ms) {
                break;
            }
        }
    }

    /// Fills a resting order at its own price from the levels of `book` that reach it, taking
    /// what it fills from them.
    fn fill_resting(&mut self, o: &mut PaperOrder, book: &mut PaperBook) {
        let Some(limit) = o.limit else {
            return;
        };
        for l in &mut book.levels {
            if !crosses(Some(limit), o.side, l.px) {
                break;
            }
            if l.qty.is_zero() {
                continue;
            }
            let had = o.cum_qty;
            if !self.exec(o, limit, l.qty, book.ts_ms) {
                break;
            }
            let took = o.cum_qty.checked_sub(had).unwrap_or(l.qty);
            l.qty = l.qty.checked_sub(took).unwrap_or(Dec::ZERO);
        }
        if o.cum_qty >= o.qty {
            o.status = OrderStatus::Filled;
        } else if !o.cum_qty.is_zero() {
            o.status = OrderStatus::PartiallyFilled;
        }
    }

    /// One execution at `px` of up to `available` of what the order still wants; false when it
    /// took nothing (the order is filled, its executions are at their bound, or a figure
    /// overflows), so the caller stops.
    fn exec(&mut self, o: &mut PaperOrder, px: Dec, available: Dec, ts_ms: u64) -> bool {
        let left = o.qty.checked_sub(o.cum_qty).unwrap_or(Dec::ZERO);
        let take = left.min(available);
        if take <= Dec::ZERO || o.execs.len() >= PAPER_EXECS_PER_ORDER_MAX {
            return false;
        }
        let Some(value) = px.checked_mul(take) else {
            return false;
        };
        let (Some(fee), Some(cum), Some(notional)) = (
            value.checked_mul(self.fee_rate),
            o.cum_qty.checked_add(take),
            o.notional.checked_add(value),
        ) else {
            return false;
        };
        (o.cum_qty, o.notional) = (cum, notional);
        o.avg_px = notional.checked_div(cum);
        o.execs.push(PaperExec {
            exec_id: format!("{}-{}", o.order_id, o.execs.len()),
            px,
            qty: take,
            fee,
            ts_ms,
        });
        self.counters.fills += 1;
        true
    }

    /// A taker's price at a level: moved by the slippage against it.
    fn slipped(&self, level_px: Dec, side: Side) -> Option<Dec> {
        let moved = level_px.checked_mul(self.slippage)?;
        match side {
            Side::Buy => level_px.checked_add(moved),
            Side::Sell => level_px.checked_sub(moved),
        }
    }

    /// Cancels the symbol's resting orders and lists them, as Bybit's cancel-all answers.
    fn cancel_all(&mut self, payload: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
        let Some(symbol) = v["symbol"].as_str().filter(|s| !s.is_empty()) else {
            return self.refused("symbol is required on paper");
        };
        let mut rows = Vec::new();
        let orders = &mut self.orders;
        self.resting.retain(|link| {
            let Some(o) = orders.get_mut(link).filter(|o| o.symbol == symbol) else {
                return true;
            };
            o.status = if o.cum_qty.is_zero() {
                OrderStatus::Cancelled
            } else {
                OrderStatus::PartiallyFilledCanceled
            };
            rows.push(format!(
                r#"{{"orderId":"{}","orderLinkId":"{link}"}}"#,
                o.order_id
            ));
            false
        });
        self.counters.cancelled += rows.len() as u64;
        ok(&format!(r#"{{"list":[{}],"success":"1"}}"#, rows.join(",")))
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

    /// Past the bound the oldest final order goes; a resting one is kept (and counted again
    /// as the newest), as the order machine still looks it up.
    fn forget_oldest(&mut self) {
        // Each pass looks at every remembered order at most once.
        for _ in 0..self.arrival.len() {
            if self.orders.len() <= PAPER_ORDERS_MAX {
                return;
            }
            let Some(oldest) = self.arrival.pop_front() else {
                return;
            };
            if self.orders.get(&oldest).is_some_and(PaperOrder::resting) {
                self.arrival.push_back(oldest);
            } else {
                self.orders.remove(&oldest);
            }
        }
    }
}

fn status_text(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Filled => "Filled",
        OrderStatus::Cancelled => "Cancelled",
        OrderStatus::PartiallyFilledCanceled => "PartiallyFilledCanceled",
        OrderStatus::PartiallyFilled => "PartiallyFilled",
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
