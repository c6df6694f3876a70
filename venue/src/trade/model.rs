//! The private side's data: accounts, orders, executions, positions and wallets, and how each
//! is written as Bybit writes it (REST lists and WebSocket pushes share the field sets).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;

use keel_core::Dec;

use crate::config::Category;
use crate::market::{SymbolSpec, fixed};

/// Orders kept per account (open ones are never dropped; the oldest closed ones leave first).
pub const ORDERS_KEPT_MAX: usize = 10_000;
/// Recently closed orders `GET /v5/order/realtime?openOnly=1` serves (Bybit: "a maximum of
/// recent 500 closed status records").
pub const RECENT_CLOSED_MAX: usize = 500;
/// Executions kept per account.
pub const EXECUTIONS_KEPT_MAX: usize = 50_000;
/// Pushes waiting for the account's private connections; the oldest leave first.
pub const PUSHES_KEPT_MAX: usize = 4_096;
/// Leverage every linear position uses (the venue has no set-leverage endpoint).
pub const LEVERAGE: i128 = 10;

/// An order's side: the same type the bot signs orders with.
pub use keel_core::wire::private::Side;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderType {
    Market,
    Limit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tif {
    Gtc,
    Ioc,
    Fok,
    PostOnly,
}

impl Tif {
    pub fn parse(s: &str) -> Option<Tif> {
        Some(match s {
            "GTC" => Tif::Gtc,
            "IOC" => Tif::Ioc,
            "FOK" => Tif::Fok,
            "PostOnly" => Tif::PostOnly,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tif::Gtc => "GTC",
            Tif::Ioc => "IOC",
            Tif::Fok => "FOK",
            Tif::PostOnly => "PostOnly",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    New,
    PartiallyFilled,
    Filled,
    Cancelled,
    /// Spot only: partly filled, then cancelled.
    PartiallyFilledCanceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "New",
            Status::PartiallyFilled => "PartiallyFilled",
            Status::Filled => "Filled",
            Status::Cancelled => "Cancelled",
            Status::PartiallyFilledCanceled => "PartiallyFilledCanceled",
        }
    }

    pub fn is_open(self) -> bool {
        matches!(self, Status::New | Status::PartiallyFilled)
    }
}

#[derive(Debug, Clone)]
pub struct Order {
    pub order_id: String,
    pub link_id: String,
    pub category: Category,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    /// Limit price in ticks; a market order keeps its protection price here.
    pub price: i64,
    pub qty_lots: u64,
    pub tif: Tif,
    pub reduce_only: bool,
    pub status: Status,
    pub cum_lots: u64,
    /// Sum of price ticks * lots of every fill, for the average price and the value.
    pub cum_notional: i128,
    pub cum_fee: Dec,
    pub cancel_type: &'static str,
    pub reject_reason: &'static str,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Lots of this order added to the public book while it rests.
    pub shown_lots: u64,
}

impl Order {
    pub fn leaves_lots(&self) -> u64 {
        if self.status.is_open() {
            self.qty_lots - self.cum_lots
        } else {
            0
        }
    }
}

#[derive(Debug, Clone)]
pub struct Execution {
    pub exec_id: String,
    pub order_id: String,
    pub link_id: String,
    pub category: Category,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub order_price: i64,
    pub order_qty_lots: u64,
    pub price: i64,
    pub lots: u64,
    pub fee: Dec,
    pub fee_rate: &'static str,
    pub is_maker: bool,
    pub leaves_lots: u64,
    pub closed_lots: u64,
    pub time_ms: u64,
    pub seq: u64,
    pub mark: i64,
}

/// A linear position in one-way mode: signed size in lots, average entry in ticks (as a
/// notional sum), and realised PnL.
#[derive(Debug, Clone, Default)]
pub struct Position {
    pub size_lots: i64,
    /// Sum of entry ticks * lots of the open size.
    pub entry_notional: i128,
    pub cum_realised: Dec,
    pub cur_realised: Dec,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub seq: u64,
}

/// A push waiting for the account's private connections: the topic and its `data` array.
#[derive(Debug, Clone)]
pub struct Push {
    pub topic: &'static str,
    pub category: Option<Category>,
    pub data: String,
}

pub struct Account {
    pub uid: u64,
    pub api_key: String,
    pub api_secret: String,
    /// Coin -> wallet balance.
    pub wallet: BTreeMap<String, Dec>,
    pub orders: VecDeque<Order>,
    pub by_link: HashMap<String, String>,
    pub executions: VecDeque<Execution>,
    pub positions: BTreeMap<String, Position>,
    /// Orders closed since the venue (re)started, newest last, for `openOnly=1`.
    pub recent_closed: VecDeque<String>,
    pub pushes: VecDeque<Push>,
    pub pushes_dropped: u64,
    pub next_id: u64,
}

impl Account {
    pub fn new(
        uid: u64,
        api_key: String,
        api_secret: String,
        wallet: BTreeMap<String, Dec>,
    ) -> Self {
        Account {
            uid,
            api_key,
            api_secret,
            wallet,
            orders: VecDeque::new(),
            by_link: HashMap::new(),
            executions: VecDeque::new(),
            positions: BTreeMap::new(),
            recent_closed: VecDeque::new(),
            pushes: VecDeque::new(),
            pushes_dropped: 0,
            next_id: 1,
        }
    }

    pub fn order(&self, order_id: &str) -> Option<&Order> {
        self.orders.iter().find(|o| o.order_id == order_id)
    }

    pub fn order_mut(&mut self, order_id: &str) -> Option<&mut Order> {
        self.orders.iter_mut().find(|o| o.order_id == order_id)
    }

    /// The order named by `order_id` (first) or `order_link_id`.
    pub fn find(&self, order_id: Option<&str>, link_id: Option<&str>) -> Option<&Order> {
        match (
            order_id.filter(|s| !s.is_empty()),
            link_id.filter(|s| !s.is_empty()),
        ) {
            (Some(id), _) => self.order(id),
            (None, Some(link)) => self.by_link.get(link).and_then(|id| self.order(id)),
            _ => None,
        }
    }

    pub fn push(&mut self, push: Push) {
        if self.pushes.len() == PUSHES_KEPT_MAX {
            self.pushes.pop_front();
            self.pushes_dropped += 1;
        }
        self.pushes.push_back(push);
    }

    pub fn balance(&self, coin: &str) -> Dec {
        self.wallet.get(coin).copied().unwrap_or(Dec::ZERO)
    }

    pub fn add_balance(&mut self, coin: &str, delta: Dec) {
        let b = self.balance(coin).checked_add(delta).unwrap_or(Dec::ZERO);
        self.wallet.insert(coin.to_string(), b);
    }
}

pub fn order_json(o: &Order, spec: &SymbolSpec, with_category: bool) -> String {
    let spot = o.category == Category::Spot;
    let px = |t: i64| spec.px_text(spot, t);
    let qty = |l: u64| spec.qty_text(spot, l);
    let avg = if o.cum_lots > 0 {
        let ticks_raw = spec.tick.raw() * o.cum_notional / o.cum_lots as i128;
        fixed_or_trim(Dec::from_raw(ticks_raw), spot, spec.price_scale() + 2)
    } else {
        String::new()
    };
    let value = notional_value(spec, o.cum_notional);
    let leaves = o.leaves_lots();
    let leaves_value = notional_value(spec, o.price as i128 * leaves as i128);
    let mut s = String::with_capacity(900);
    let _ = write!(
        s,
        r#"{{"orderId":"{}","orderLinkId":"{}","blockTradeId":"","symbol":"{}","price":"{}","qty":"{}","side":"{}","isLeverage":"{}","positionIdx":0,"orderStatus":"{}","createType":"CreateByUser","cancelType":"{}","rejectReason":"{}","avgPrice":"{avg}","leavesQty":"{}","leavesValue":"{leaves_value}","cumExecQty":"{}","cumExecValue":"{value}","cumExecFee":"{}","timeInForce":"{}","orderType":"{}","stopOrderType":"","orderIv":"","triggerPrice":"","takeProfit":"","stopLoss":"","tpTriggerBy":"","slTriggerBy":"","triggerDirection":0,"triggerBy":"","lastPriceOnCreated":"{}","reduceOnly":{},"closeOnTrigger":false,"smpType":"None","smpGroup":0,"smpOrderId":"","tpslMode":"","tpLimitPrice":"","slLimitPrice":"","placeType":"","createdTime":"{}","updatedTime":"{}""#,
        o.order_id,
        o.link_id,
        o.symbol,
        px(o.price),
        qty(o.qty_lots),
        o.side.as_str(),
        if spot { "0" } else { "" },
        o.status.as_str(),
        o.cancel_type,
        o.reject_reason,
        qty(leaves),
        qty(o.cum_lots),
        o.cum_fee,
        o.tif.as_str(),
        match o.order_type {
            OrderType::Market => "Market",
            OrderType::Limit => "Limit",
        },
        px(o.price),
        o.reduce_only,
        o.created_ms,
        o.updated_ms,
    );
    if with_category {
        let _ = write!(s, r#","category":"{}""#, o.category.as_str());
    }
    s.push('}');
    s
}

pub fn execution_json(e: &Execution, spec: &SymbolSpec, with_category: bool) -> String {
    let spot = e.category == Category::Spot;
    let mut s = String::with_capacity(600);
    let _ = write!(
        s,
        r#"{{"symbol":"{}","orderType":"{}","underlyingPrice":"","orderLinkId":"{}","side":"{}","indexPrice":"","orderId":"{}","stopOrderType":"UNKNOWN","leavesQty":"{}","execTime":"{}","feeCurrency":"{}","isMaker":{},"execFee":"{}","feeRate":"{}","execId":"{}","tradeIv":"","blockTradeId":"","markPrice":"{}","execPrice":"{}","markIv":"","orderQty":"{}","orderPrice":"{}","execValue":"{}","execType":"Trade","execQty":"{}","closedSize":"{}","extraFees":"","seq":{}"#,
        e.symbol,
        match e.order_type {
            OrderType::Market => "Market",
            OrderType::Limit => "Limit",
        },
        e.link_id,
        e.side.as_str(),
        e.order_id,
        spec.qty_text(spot, e.leaves_lots),
        e.time_ms,
        if spot { spec.quote_coin() } else { "" },
        e.is_maker,
        e.fee,
        e.fee_rate,
        e.exec_id,
        spec.px_text(spot, e.mark),
        spec.px_text(spot, e.price),
        spec.qty_text(spot, e.order_qty_lots),
        spec.px_text(spot, e.order_price),
        notional_value(spec, e.price as i128 * e.lots as i128),
        spec.qty_text(spot, e.lots),
        if spot {
            String::new()
        } else {
            spec.qty_text(false, e.closed_lots)
        },
        e.seq,
    );
    if with_category {
        let _ = write!(s, r#","category":"{}""#, e.category.as_str());
    }
    s.push('}');
    s
}

/// A position as `GET /v5/position/list` and the `position` push write it.
pub fn position_json(symbol: &str, p: &Position, spec: &SymbolSpec, mark: i64, ws: bool) -> String {
    let size = p.size_lots.unsigned_abs();
    let side = match p.size_lots.signum() {
        1 => "Buy",
        -1 => "Sell",
        _ => "",
    };
    let entry = if size > 0 {
        fixed_or_trim(
            Dec::from_raw(spec.tick.raw() * p.entry_notional / size as i128),
            false,
            spec.price_scale() + 2,
        )
    } else {
        "0".to_string()
    };
    let value = notional_value(spec, p.entry_notional);
    let upl = unrealised(spec, p, mark);
    let im = Dec::from_raw(value.raw() / LEVERAGE);
    let (entry_key, extra) = if ws {
        ("entryPrice", r#","category":"linear""#)
    } else {
        ("avgPrice", "")
    };
    format!(
        r#"{{"positionIdx":0,"riskId":1,"riskLimitValue":"2000000","symbol":"{symbol}","side":"{side}","size":"{}","{entry_key}":"{entry}","positionValue":"{value}","tradeMode":0,"positionStatus":"Normal","autoAddMargin":0,"adlRankIndicator":0,"leverage":"{LEVERAGE}","positionBalance":"{im}","markPrice":"{}","liqPrice":"","bustPrice":"","positionMM":"0","positionIM":"{im}","tpslMode":"Full","takeProfit":"0","stopLoss":"0","trailingStop":"0","unrealisedPnl":"{upl}","curRealisedPnl":"{}","cumRealisedPnl":"{}","seq":{},"isReduceOnly":false,"createdTime":"{}","updatedTime":"{}"{extra}}}"#,
        spec.qty_text(false, size),
        spec.px_text(false, mark),
        p.cur_realised,
        p.cum_realised,
        if p.seq == 0 { -1 } else { p.seq as i64 },
        p.created_ms,
        p.updated_ms,
    )
}

/// Unrealised PnL of `p` at `mark` ticks, in the quote coin.
pub fn unrealised(spec: &SymbolSpec, p: &Position, mark: i64) -> Dec {
    let now = mark as i128 * p.size_lots as i128;
    let entry = p.entry_notional * p.size_lots.signum() as i128;
    notional_value(spec, now - entry)
}

/// `ticks * lots` as a value in the quote coin.
pub fn notional_value(spec: &SymbolSpec, ticks_lots: i128) -> Dec {
    Dec::from_raw(spec.tick.raw() * spec.qty_step.raw() / Dec::ONE.raw() * ticks_lots)
}

fn fixed_or_trim(d: Dec, spot: bool, places: u32) -> String {
    if spot || d.places() > places {
        d.to_string()
    } else {
        fixed(d, d.places().max(1).min(places))
    }
}
