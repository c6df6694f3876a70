//! The matching engine: an account's orders against the venue's own book.
//!
//! A taker walks the opposite side of the symbol's book and takes the levels it fills, so the
//! public book and the public trades show it. A resting limit order adds its size to its level
//! of the public book; it fills as a maker when the market reaches its price (asks at or below a
//! resting bid are crossed into it, at the bid's price) or when a synthetic taker trades through
//! it. Fees: linear taker 0.055 %, maker 0.02 %; spot 0.1 % both (Bybit's base tier).
//!
//! Where the docs are silent the choices are named: a market order's protection price is the
//! touch +/- 5 %; a reduce-only order larger than the position is cut to it; the synthetic market
//! may remove a level holding a resting order's size from the public book (the order still rests
//! and still fills).

use keel_core::Dec;

use super::funds::{apply_to_position, check_funds};
use super::model::{
    Account, Execution, Order, OrderType, Position, Push, Side, Status, Tif, notional_value,
};
use crate::config::Category;
use crate::market::{SimTrade, SymbolMarket};

/// How far past the touch a market order may fill, in basis points.
pub const MARKET_PROTECTION_BPS: i64 = 500;

pub struct Fees {
    pub taker: Dec,
    pub maker: Dec,
    pub taker_text: &'static str,
    pub maker_text: &'static str,
}

pub fn fees(category: Category) -> Fees {
    match category {
        Category::Linear => Fees {
            taker: Dec::parse("0.00055").expect("literal"),
            maker: Dec::parse("0.0002").expect("literal"),
            taker_text: "0.00055",
            maker_text: "0.0002",
        },
        Category::Spot => Fees {
            taker: Dec::parse("0.001").expect("literal"),
            maker: Dec::parse("0.001").expect("literal"),
            taker_text: "0.001",
            maker_text: "0.001",
        },
    }
}

/// Why an order was refused before it entered the book: Bybit's retCode and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: i64,
    pub msg: &'static str,
}

pub const INSUFFICIENT: Refusal = Refusal {
    code: 110007,
    msg: "ab not enough for new order",
};

/// Everything a new order needs to go in.
pub struct NewOrder {
    pub category: Category,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub price: Option<i64>,
    pub qty_lots: u64,
    pub tif: Tif,
    pub reduce_only: bool,
    pub link_id: String,
}

/// Places `n`: checks the balance, matches what crosses, rests the rest. Returns the order id.
/// `committed` is what the account's other orders and positions already hold of the coin this
/// order spends (see [`super::funds::committed`]).
pub fn place(
    acct: &mut Account,
    m: &mut SymbolMarket,
    n: NewOrder,
    committed: Dec,
    now_ms: u64,
    seq: &mut u64,
) -> Result<String, Refusal> {
    let (bid, ask) = (m.best_bid(), m.best_ask());
    let touch = match n.side {
        Side::Buy => ask,
        Side::Sell => bid,
    };
    let mut qty = n.qty_lots;
    if n.reduce_only {
        if n.category == Category::Spot {
            return Err(Refusal {
                code: 10001,
                msg: "reduceOnly is not supported for spot",
            });
        }
        let pos = acct.positions.get(&n.symbol).map_or(0, |p| p.size_lots);
        let reducible = if pos.signum() == -n.side.sign() {
            pos.unsigned_abs()
        } else {
            0
        };
        if reducible == 0 {
            return Err(Refusal {
                code: 110017,
                msg: "Reduce-only rule not satisfied",
            });
        }
        qty = qty.min(reducible);
    }
    let price = match (n.order_type, n.price) {
        (OrderType::Limit, Some(p)) => p,
        (OrderType::Limit, None) => {
            return Err(Refusal {
                code: 10001,
                msg: "params error: price is required for a limit order",
            });
        }
        (OrderType::Market, _) => {
            let band = (touch * MARKET_PROTECTION_BPS / 10_000).max(1);
            touch + n.side.sign() * band
        }
    };
    let tif = if n.order_type == OrderType::Market {
        Tif::Ioc
    } else {
        n.tif
    };
    if !n.reduce_only {
        check_funds(acct, m, &n, price, qty, committed)?;
    }
    let order_id = new_order_id(acct, n.category, now_ms);
    let crosses = match n.side {
        Side::Buy => price >= ask,
        Side::Sell => price <= bid,
    };
    let mut o = Order {
        order_id: order_id.clone(),
        link_id: n.link_id.clone(),
        category: n.category,
        symbol: n.symbol.clone(),
        side: n.side,
        order_type: n.order_type,
        price,
        qty_lots: qty,
        tif,
        reduce_only: n.reduce_only,
        status: Status::New,
        cum_lots: 0,
        cum_notional: 0,
        cum_fee: Dec::ZERO,
        cancel_type: "UNKNOWN",
        reject_reason: "EC_NoError",
        created_ms: now_ms,
        updated_ms: now_ms,
        shown_lots: 0,
    };
    if !n.link_id.is_empty() {
        acct.by_link.insert(n.link_id.clone(), order_id.clone());
    }
    if tif == Tif::PostOnly && crosses {
        o.status = Status::Cancelled;
        o.reject_reason = "EC_PostOnlyWillTakeLiquidity";
        return Ok(finish_new(acct, o, m));
    }
    if tif == Tif::Fok && available(m, n.side, price) < qty {
        o.status = Status::Cancelled;
        o.reject_reason = "EC_NoEnoughQtyToFill";
        return Ok(finish_new(acct, o, m));
    }
    let mut fills = Vec::new();
    if crosses {
        take(m, n.side, price, qty, &mut fills, now_ms);
    }
    for (px, lots) in fills {
        fill(acct, &mut o, m, px, lots, false, now_ms, seq);
    }
    if o.status.is_open() && matches!(tif, Tif::Ioc | Tif::Fok) {
        o.status = if o.cum_lots > 0 && o.category == Category::Spot {
            Status::PartiallyFilledCanceled
        } else {
            Status::Cancelled
        };
        if o.cum_lots == 0 {
            o.reject_reason = "EC_NoImmediateQtyToFill";
        } else {
            o.reject_reason = "EC_CancelForNoFullFill";
        }
    }
    Ok(finish_new(acct, o, m))
}

/// Records a new order (resting, or already final) and pushes it.
fn finish_new(acct: &mut Account, mut o: Order, m: &mut SymbolMarket) -> String {
    if o.status.is_open() {
        show(m, &mut o);
    } else {
        acct.recent_closed.push_back(o.order_id.clone());
    }
    let id = o.order_id.clone();
    push_order(acct, &o, m);
    acct.orders.push_back(o);
    trim_orders(acct);
    id
}

/// Cancels an open order; `Err` with 110001 (unknown) or 110008 (already final).
pub fn cancel(
    acct: &mut Account,
    m: &mut SymbolMarket,
    order_id: &str,
    cancel_type: &'static str,
    now_ms: u64,
) -> Result<(String, String), Refusal> {
    let spot = acct
        .order(order_id)
        .is_some_and(|o| o.category == Category::Spot);
    let Some(o) = acct.order_mut(order_id) else {
        return Err(Refusal {
            code: 110001,
            msg: "order not exists or too late to cancel",
        });
    };
    if !o.status.is_open() {
        return Err(Refusal {
            code: 110008,
            msg: "The order has been completed or cancelled",
        });
    }
    hide(m, o);
    o.status = if o.cum_lots > 0 && spot {
        Status::PartiallyFilledCanceled
    } else {
        Status::Cancelled
    };
    o.cancel_type = cancel_type;
    o.updated_ms = now_ms;
    let o = o.clone();
    acct.recent_closed.push_back(o.order_id.clone());
    push_order(acct, &o, m);
    Ok((o.order_id, o.link_id))
}

/// Changes an open order's price or size; its queue place goes with a price change.
pub fn amend(
    acct: &mut Account,
    m: &mut SymbolMarket,
    order_id: &str,
    price: Option<i64>,
    qty_lots: Option<u64>,
    now_ms: u64,
    seq: &mut u64,
) -> Result<(String, String), Refusal> {
    let Some(o) = acct.order_mut(order_id) else {
        return Err(Refusal {
            code: 110001,
            msg: "order not exists or too late to replace",
        });
    };
    if !o.status.is_open() {
        return Err(Refusal {
            code: 110008,
            msg: "The order has been completed or cancelled",
        });
    }
    if qty_lots.is_some_and(|q| q <= o.cum_lots) {
        return Err(Refusal {
            code: 10001,
            msg: "params error: qty must exceed the filled size",
        });
    }
    hide(m, o);
    if let Some(p) = price {
        o.price = p;
    }
    if let Some(q) = qty_lots {
        o.qty_lots = q;
    }
    o.updated_ms = now_ms;
    let mut o = o.clone();
    // A new price may cross: it trades at once, as Bybit's matching would.
    let crosses = match o.side {
        Side::Buy => o.price >= m.best_ask(),
        Side::Sell => o.price <= m.best_bid(),
    };
    if crosses && o.tif != Tif::PostOnly {
        let mut fills = Vec::new();
        take(
            m,
            o.side,
            o.price,
            o.qty_lots - o.cum_lots,
            &mut fills,
            now_ms,
        );
        for (px, lots) in fills {
            fill(acct, &mut o, m, px, lots, false, now_ms, seq);
        }
    }
    if o.status.is_open() {
        show(m, &mut o);
    } else {
        acct.recent_closed.push_back(o.order_id.clone());
    }
    push_order(acct, &o, m);
    let ids = (o.order_id.clone(), o.link_id.clone());
    if let Some(slot) = acct.order_mut(order_id) {
        *slot = o;
    }
    Ok(ids)
}

/// After a market step: resting orders the market reached fill as makers.
pub fn on_market_step(
    acct: &mut Account,
    category: Category,
    symbol: &str,
    m: &mut SymbolMarket,
    trades: &[SimTrade],
    now_ms: u64,
    seq: &mut u64,
) {
    let ids: Vec<String> = acct
        .orders
        .iter()
        .filter(|o| o.status.is_open() && o.category == category && o.symbol == symbol)
        .map(|o| o.order_id.clone())
        .collect();
    for id in ids {
        let Some(mut o) = acct.order(&id).cloned() else {
            continue;
        };
        let leaves = o.qty_lots - o.cum_lots;
        // Synthetic takers that traded through the order's price hit it first.
        let through: u64 = trades
            .iter()
            .filter(|t| match o.side {
                Side::Buy => !t.buy && t.ticks <= o.price,
                Side::Sell => t.buy && t.ticks >= o.price,
            })
            .map(|t| t.lots)
            .sum();
        // Opposite levels at or through the order's price cross into it.
        let mut crossed = Vec::new();
        take(
            m,
            o.side,
            o.price,
            leaves.saturating_sub(through),
            &mut crossed,
            now_ms,
        );
        let lots = (through.min(leaves)) + crossed.iter().map(|(_, l)| l).sum::<u64>();
        if lots == 0 {
            continue;
        }
        hide(m, &mut o);
        let price = o.price;
        fill(acct, &mut o, m, price, lots.min(leaves), true, now_ms, seq);
        if o.status.is_open() {
            show(m, &mut o);
        } else {
            acct.recent_closed.push_back(o.order_id.clone());
        }
        if let Some(slot) = acct.order_mut(&id) {
            *slot = o;
        }
    }
}

/// Lots of the opposite side at prices no worse than `limit`.
fn available(m: &SymbolMarket, side: Side, limit: i64) -> u64 {
    match side {
        Side::Buy => m.asks.range(..=limit).map(|(_, q)| *q).sum(),
        Side::Sell => m.bids.range(limit..).map(|(_, q)| *q).sum(),
    }
}

/// Takes up to `lots` from the opposite side at prices no worse than `limit`, best first,
/// removing them from the book and printing them as public trades.
fn take(
    m: &mut SymbolMarket,
    side: Side,
    limit: i64,
    lots: u64,
    out: &mut Vec<(i64, u64)>,
    now_ms: u64,
) {
    let mut left = lots;
    while left > 0 {
        let best = match side {
            Side::Buy => m.asks.iter().next().map(|(p, q)| (*p, *q)),
            Side::Sell => m.bids.iter().next_back().map(|(p, q)| (*p, *q)),
        };
        let Some((px, avail)) = best else { break };
        let through = match side {
            Side::Buy => px <= limit,
            Side::Sell => px >= limit,
        };
        // Keep one level on each side: the synthetic market refills from the ends.
        let book_side = match side {
            Side::Buy => &mut m.asks,
            Side::Sell => &mut m.bids,
        };
        if !through || book_side.len() <= 1 {
            break;
        }
        let got = avail.min(left);
        if got == avail {
            book_side.remove(&px);
        } else {
            book_side.insert(px, avail - got);
        }
        left -= got;
        out.push((px, got));
        m.print_trade(side == Side::Buy, px, got, now_ms);
    }
}

/// Applies one fill to the order, the account's wallet and position, and pushes it.
#[allow(clippy::too_many_arguments)] // one fill's every part
fn fill(
    acct: &mut Account,
    o: &mut Order,
    m: &SymbolMarket,
    px: i64,
    lots: u64,
    maker: bool,
    now_ms: u64,
    seq: &mut u64,
) {
    let spec = &m.spec;
    let f = fees(o.category);
    let value = notional_value(spec, px as i128 * lots as i128);
    let fee = round8(
        value
            .checked_mul(if maker { f.maker } else { f.taker })
            .unwrap_or(Dec::ZERO),
    );
    o.cum_lots += lots;
    o.cum_notional += px as i128 * lots as i128;
    o.cum_fee = o.cum_fee.checked_add(fee).unwrap_or(o.cum_fee);
    o.updated_ms = now_ms;
    o.status = if o.cum_lots >= o.qty_lots {
        Status::Filled
    } else {
        Status::PartiallyFilled
    };
    *seq += 1;
    let quote = spec.quote_coin().to_string();
    let mut closed = 0;
    match o.category {
        Category::Linear => {
            let p = acct
                .positions
                .entry(o.symbol.clone())
                .or_insert_with(|| Position {
                    created_ms: now_ms,
                    ..Position::default()
                });
            let signed = o.side.sign() * lots as i64;
            let realised = apply_to_position(p, signed, px, spec);
            closed = lots.min(if realised.1 { lots } else { 0 });
            p.updated_ms = now_ms;
            p.seq = *seq;
            acct.add_balance(&quote, realised.0);
            acct.add_balance(&quote, Dec::ZERO.checked_sub(fee).unwrap_or(Dec::ZERO));
        }
        Category::Spot => {
            let base = spec.base_coin().to_string();
            let base_qty = spec.qty(lots);
            match o.side {
                Side::Buy => {
                    acct.add_balance(&base, base_qty);
                    acct.add_balance(&quote, Dec::ZERO.checked_sub(value).unwrap_or(Dec::ZERO));
                }
                Side::Sell => {
                    acct.add_balance(&base, Dec::ZERO.checked_sub(base_qty).unwrap_or(Dec::ZERO));
                    acct.add_balance(&quote, value);
                }
            }
            acct.add_balance(&quote, Dec::ZERO.checked_sub(fee).unwrap_or(Dec::ZERO));
        }
    }
    let exec = Execution {
        exec_id: format!(
            "{:08x}-{:04x}-5000-8000-{:012x}",
            acct.uid as u32, *seq as u16, *seq
        ),
        order_id: o.order_id.clone(),
        link_id: o.link_id.clone(),
        category: o.category,
        symbol: o.symbol.clone(),
        side: o.side,
        order_type: o.order_type,
        order_price: o.price,
        order_qty_lots: o.qty_lots,
        price: px,
        lots,
        fee,
        fee_rate: if maker { f.maker_text } else { f.taker_text },
        is_maker: maker,
        leaves_lots: o.qty_lots - o.cum_lots,
        closed_lots: closed,
        time_ms: now_ms,
        seq: *seq,
        mark: (m.best_bid() + m.best_ask()) / 2,
    };
    if acct.executions.len() == super::model::EXECUTIONS_KEPT_MAX {
        acct.executions.pop_front();
    }
    let data = super::model::execution_json(&exec, spec, true);
    acct.executions.push_back(exec);
    acct.push(Push {
        topic: "execution",
        category: Some(o.category),
        data,
    });
    push_order(acct, o, m);
    if o.category == Category::Linear
        && let Some(p) = acct.positions.get(&o.symbol)
    {
        let data = super::model::position_json(
            &o.symbol,
            p,
            spec,
            (m.best_bid() + m.best_ask()) / 2,
            true,
        );
        acct.push(Push {
            topic: "position",
            category: Some(Category::Linear),
            data,
        });
    }
    let wallet = super::queries::wallet_json(acct);
    acct.push(Push {
        topic: "wallet",
        category: None,
        data: wallet,
    });
}

fn new_order_id(acct: &mut Account, category: Category, now_ms: u64) -> String {
    acct.next_id += 1;
    let n = acct.next_id;
    match category {
        // Linear order ids are UUIDs, spot ones 19-digit numbers (SPEC-PRIVATE 4.1).
        Category::Linear => format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            acct.uid as u32,
            (now_ms >> 16) as u16,
            (n >> 12) & 0xfff,
            n & 0xfff,
            now_ms & 0xffff_ffff_ffff
        ),
        Category::Spot => format!(
            "{}",
            1_800_000_000_000_000_000u64 + (now_ms % 1_000_000_000) * 1000 + n % 1000
        ),
    }
}

/// Adds a resting order's leaves to its level of the public book.
fn show(m: &mut SymbolMarket, o: &mut Order) {
    let lots = o.leaves_lots();
    let side = match o.side {
        Side::Buy => &mut m.bids,
        Side::Sell => &mut m.asks,
    };
    *side.entry(o.price).or_insert(0) += lots;
    o.shown_lots = lots;
}

/// Takes a resting order's size back out of the public book.
fn hide(m: &mut SymbolMarket, o: &mut Order) {
    let side = match o.side {
        Side::Buy => &mut m.bids,
        Side::Sell => &mut m.asks,
    };
    if let Some(q) = side.get_mut(&o.price) {
        *q = q.saturating_sub(o.shown_lots);
        if *q == 0 {
            side.remove(&o.price);
        }
    }
    o.shown_lots = 0;
}

fn push_order(acct: &mut Account, o: &Order, m: &SymbolMarket) {
    let data = super::model::order_json(o, &m.spec, true);
    acct.push(Push {
        topic: "order",
        category: Some(o.category),
        data,
    });
}

fn trim_orders(acct: &mut Account) {
    while acct.orders.len() > super::model::ORDERS_KEPT_MAX {
        match acct.orders.iter().position(|o| !o.status.is_open()) {
            Some(i) => {
                if let Some(o) = acct.orders.remove(i) {
                    acct.by_link.remove(&o.link_id);
                }
            }
            None => break,
        }
    }
    while acct.recent_closed.len() > super::model::RECENT_CLOSED_MAX {
        acct.recent_closed.pop_front();
    }
}

/// Fees are written to 8 places (SPEC-PRIVATE 6: `execFee = execValue * feeRate` rounded).
fn round8(d: Dec) -> Dec {
    let unit = Dec::parse("0.00000001").expect("literal").raw();
    let r = d.raw();
    Dec::from_raw((r + unit / 2) / unit * unit)
}
