//! The paper broker: signals become market orders that walk the current book, with fees and
//! slippage; positions, realised and unrealised PnL, and risk limits with a kill switch.
//! Client order ids are deterministic from the seed and a sequence the store persists, so a
//! replay produces the same ids and a restart never repeats one.

use std::collections::BTreeMap;

use crate::decimal::Dec;
use crate::decimal::Level;
use crate::trading::strategy::{Signal, SignalSide};

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Notional of one order, in the quote currency.
    pub order_notional: f64,
    pub fee_bps: f64,
    pub slippage_bps: f64,
    pub position_notional_max: f64,
    pub gross_notional_max: f64,
    /// Realised plus unrealised loss since the start of the UTC day that trips the kill switch.
    pub daily_loss_max: f64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            order_notional: 1_000.0,
            fee_bps: 5.5,
            slippage_bps: 1.0,
            position_notional_max: 5_000.0,
            gross_notional_max: 15_000.0,
            daily_loss_max: 1_000.0,
        }
    }
}

impl BrokerConfig {
    pub fn validate(&self) -> Result<(), String> {
        let pos = |v: f64| v.is_finite() && v > 0.0;
        if !pos(self.order_notional)
            || !pos(self.position_notional_max)
            || !pos(self.gross_notional_max)
            || !pos(self.daily_loss_max)
        {
            return Err("broker limits and order size must be positive".into());
        }
        if !(0.0..=1_000.0).contains(&self.fee_bps) || !(0.0..=1_000.0).contains(&self.slippage_bps)
        {
            return Err("fee_bps and slippage_bps must be in [0, 1000]".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum OrderStatus {
    Filled,
    Rejected(String),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Order {
    pub client_order_id: String,
    pub symbol: String,
    pub side: SignalSide,
    pub qty: Dec,
    pub avg_px: Dec,
    pub fee: Dec,
    pub status: OrderStatus,
    pub reason: String,
    pub ts_ms: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fill {
    pub client_order_id: String,
    pub symbol: String,
    pub side: SignalSide,
    pub px: Dec,
    pub qty: Dec,
    pub fee: Dec,
    pub ts_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Position {
    pub symbol: String,
    /// Signed: long above zero.
    pub qty: Dec,
    pub avg_entry: Dec,
    pub realized_pnl: Dec,
    pub fees: Dec,
}

impl Position {
    pub fn unrealized(&self, mark: Dec) -> Dec {
        mark.checked_sub(self.avg_entry)
            .and_then(|d| d.checked_mul(self.qty))
            .unwrap_or(Dec::ZERO)
    }
}

/// What one signal did.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub order: Order,
    pub fills: Vec<Fill>,
}

#[derive(Debug, Clone)]
pub struct Broker {
    config: BrokerConfig,
    seed: u64,
    next_seq: u64,
    positions: BTreeMap<String, Position>,
    killed: Option<String>,
    day: u64,
    day_start_pnl: f64,
}

const DAY_MS: u64 = 86_400_000;

impl Broker {
    /// A broker whose next client order id has sequence number `next_seq` (restored from the
    /// store after a restart).
    pub fn new(config: BrokerConfig, seed: u64, next_seq: u64) -> Broker {
        Broker {
            config,
            seed,
            next_seq,
            positions: BTreeMap::new(),
            killed: None,
            day: 0,
            day_start_pnl: 0.0,
        }
    }

    pub fn restore_position(&mut self, p: Position) {
        self.positions.insert(p.symbol.clone(), p);
    }

    pub fn positions(&self) -> impl Iterator<Item = &Position> {
        self.positions.values()
    }

    pub fn position(&self, symbol: &str) -> Option<&Position> {
        self.positions.get(symbol)
    }

    pub fn killed(&self) -> Option<&str> {
        self.killed.as_deref()
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The id of order number `seq` for this seed: unique per seed, the same on every replay.
    pub fn client_order_id(seed: u64, seq: u64) -> String {
        format!("keel-{seed:x}-{seq:010}")
    }

    fn realized_total(&self) -> f64 {
        self.positions
            .values()
            .map(|p| p.realized_pnl.to_f64() - p.fees.to_f64())
            .sum()
    }

    /// PnL since the start of the day, marking open positions at `marks`.
    pub fn day_pnl(&self, marks: &dyn Fn(&str) -> Option<Dec>) -> f64 {
        let unrealized: f64 = self
            .positions
            .values()
            .filter_map(|p| marks(&p.symbol).map(|m| p.unrealized(m).to_f64()))
            .sum();
        self.realized_total() + unrealized - self.day_start_pnl
    }

    /// Checks the daily loss against the marks; trips the kill switch when it is exceeded.
    pub fn check_risk(
        &mut self,
        now_ms: u64,
        marks: &dyn Fn(&str) -> Option<Dec>,
    ) -> Option<String> {
        let day = now_ms / DAY_MS;
        if day != self.day {
            self.day = day;
            self.day_start_pnl = self.realized_total();
        }
        if self.killed.is_none() {
            let pnl = self.day_pnl(marks);
            if pnl < -self.config.daily_loss_max {
                self.killed = Some(format!(
                    "daily loss {pnl:.2} beyond {:.2}: trading stopped",
                    self.config.daily_loss_max
                ));
                return self.killed.clone();
            }
        }
        None
    }

    /// The size of the order a signal asks for, or why it may not be sent: a buy targets a long
    /// of one order's notional, a sell a short; `None` when already there. Quantities are
    /// rounded down to `qty_step` (the venue's lot size). Risk limits are checked here, before
    /// anything is sent.
    pub fn size_order(
        &self,
        s: &Signal,
        best_bid: Dec,
        best_ask: Dec,
        qty_step: Option<Dec>,
    ) -> Option<(Dec, Result<(), String>)> {
        let mid = (best_bid.to_f64() + best_ask.to_f64()) / 2.0;
        if mid <= 0.0 {
            return None;
        }
        let current = self
            .positions
            .get(&s.symbol)
            .map_or(0.0, |p| p.qty.to_f64());
        let unit = self.config.order_notional / mid;
        let target = match s.side {
            SignalSide::Buy => unit,
            SignalSide::Sell => -unit,
        };
        let delta = target - current;
        // Already at (or within a tenth of an order of) the target: nothing to do.
        if delta.abs() < unit * 0.1 {
            return None;
        }
        let step = qty_step
            .filter(|q| *q > Dec::ZERO)
            .unwrap_or(Dec::from_raw(1_000_000_000_000)); // 1e-6
        let raw = Dec::from_f64(delta.abs())?;
        let qty = Dec::from_raw(raw.raw() / step.raw() * step.raw());
        if qty.is_zero() {
            return None;
        }
        if let Some(k) = &self.killed {
            return Some((qty, Err(format!("kill switch: {k}"))));
        }
        if target.abs() * mid > self.config.position_notional_max {
            return Some((qty, Err("position limit".into())));
        }
        let gross_after: f64 = self
            .positions
            .values()
            .filter(|p| p.symbol != s.symbol)
            .map(|p| p.qty.to_f64().abs() * p.avg_entry.to_f64())
            .sum::<f64>()
            + target.abs() * mid;
        if gross_after > self.config.gross_notional_max {
            return Some((qty, Err("gross exposure limit".into())));
        }
        Some((qty, Ok(())))
    }

    /// Turns a signal into a paper order that walks the book (`bids` and `asks` best first).
    pub fn on_signal(
        &mut self,
        s: &Signal,
        bids: &[Level],
        asks: &[Level],
        qty_step: Option<Dec>,
        now_ms: u64,
    ) -> Option<Execution> {
        let (best_bid, best_ask) = (bids.first()?.px, asks.first()?.px);
        let (qty, sized) = self.size_order(s, best_bid, best_ask, qty_step)?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = Self::client_order_id(self.seed, seq);
        let reject = |why: String| {
            Some(Execution {
                order: Order {
                    client_order_id: id.clone(),
                    symbol: s.symbol.clone(),
                    side: s.side,
                    qty,
                    avg_px: Dec::ZERO,
                    fee: Dec::ZERO,
                    status: OrderStatus::Rejected(why),
                    reason: format!("{}: {}", s.strategy, s.reason),
                    ts_ms: now_ms,
                },
                fills: Vec::new(),
            })
        };
        if let Err(why) = sized {
            return reject(why);
        }
        let levels = match s.side {
            SignalSide::Buy => asks,
            SignalSide::Sell => bids,
        };
        // Exact decimal arithmetic: basis points as 10^-4 fractions, no float on prices.
        let bps = |v: f64| Dec::from_f64(v / 10_000.0);
        let (slip, fee_rate) = (bps(self.config.slippage_bps)?, bps(self.config.fee_bps)?);
        let mut left = qty;
        let mut fills = Vec::new();
        for l in levels {
            if left.is_zero() {
                break;
            }
            let take = left.min(l.qty);
            let moved = l.px.checked_mul(slip)?;
            let px = match s.side {
                SignalSide::Buy => l.px.checked_add(moved)?,
                SignalSide::Sell => l.px.checked_sub(moved)?,
            };
            let fee = px.checked_mul(take)?.checked_mul(fee_rate)?;
            fills.push(Fill {
                client_order_id: id.clone(),
                symbol: s.symbol.clone(),
                side: s.side,
                px,
                qty: take,
                fee,
                ts_ms: now_ms,
            });
            left = left.checked_sub(take)?;
        }
        if !left.is_zero() {
            return reject("not enough depth in the book".into());
        }
        let (mut notional, mut fee_total) = (Dec::ZERO, Dec::ZERO);
        for f in &fills {
            notional = notional.checked_add(f.px.checked_mul(f.qty)?)?;
            fee_total = fee_total.checked_add(f.fee)?;
            self.apply_fill(f);
        }
        let avg_px = notional.checked_div(qty)?;
        Some(Execution {
            order: Order {
                client_order_id: id,
                symbol: s.symbol.clone(),
                side: s.side,
                qty,
                avg_px,
                fee: fee_total,
                status: OrderStatus::Filled,
                reason: format!("{}: {}", s.strategy, s.reason),
                ts_ms: now_ms,
            },
            fills,
        })
    }

    /// Applies a fill to its position (also used to rebuild positions from stored fills).
    pub fn apply_fill(&mut self, f: &Fill) {
        let p = self
            .positions
            .entry(f.symbol.clone())
            .or_insert_with(|| Position {
                symbol: f.symbol.clone(),
                ..Position::default()
            });
        let signed = match f.side {
            SignalSide::Buy => f.qty,
            SignalSide::Sell => Dec::ZERO.checked_sub(f.qty).unwrap_or(Dec::ZERO),
        };
        p.fees = p.fees.checked_add(f.fee).unwrap_or(p.fees);
        let same_direction = p.qty.is_zero() || (p.qty.is_negative() == signed.is_negative());
        if same_direction {
            // Weighted average entry, in exact decimals.
            let abs = |d: Dec| Dec::from_raw(d.raw().abs());
            let new_qty = p.qty.checked_add(signed).unwrap_or(p.qty);
            let avg = abs(p.qty)
                .checked_mul(p.avg_entry)
                .and_then(|old| old.checked_add(f.qty.checked_mul(f.px)?))
                .and_then(|sum| sum.checked_div(abs(new_qty)));
            if let Some(avg) = avg {
                p.avg_entry = avg;
            }
            p.qty = new_qty;
        } else {
            let closing = f.qty.min(Dec::from_raw(p.qty.raw().abs()));
            let per_unit = if p.qty.is_negative() {
                p.avg_entry.checked_sub(f.px)
            } else {
                f.px.checked_sub(p.avg_entry)
            }
            .unwrap_or(Dec::ZERO);
            let pnl = per_unit.checked_mul(closing).unwrap_or(Dec::ZERO);
            p.realized_pnl = p.realized_pnl.checked_add(pnl).unwrap_or(p.realized_pnl);
            let new_qty = p.qty.checked_add(signed).unwrap_or(p.qty);
            if !new_qty.is_zero() && new_qty.is_negative() != p.qty.is_negative() {
                // Flipped through zero: the rest opens at this fill's price.
                p.avg_entry = f.px;
            }
            if new_qty.is_zero() {
                p.avg_entry = Dec::ZERO;
            }
            p.qty = new_qty;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(p: i64, q: &str) -> Level {
        Level {
            px: Dec::from_int(p),
            qty: Dec::parse(q).unwrap(),
        }
    }

    /// A signal for `side` against a one-level book: `qty` at `bid` and at `ask`.
    fn trade(
        b: &mut Broker,
        side: SignalSide,
        bid: i64,
        ask: i64,
        qty: &str,
        now_ms: u64,
    ) -> Option<Execution> {
        b.on_signal(&sig(side), &[l(bid, qty)], &[l(ask, qty)], None, now_ms)
    }

    fn sig(side: SignalSide) -> Signal {
        Signal {
            symbol: "BTCUSDT".into(),
            strategy: "test",
            side,
            confidence: 1.0,
            reason: "because".into(),
            candle_ms: 0,
        }
    }

    fn cfg() -> BrokerConfig {
        BrokerConfig {
            order_notional: 1_000.0,
            fee_bps: 10.0,
            slippage_bps: 0.0,
            ..BrokerConfig::default()
        }
    }

    #[test]
    fn buy_walks_the_asks_with_fees_and_targets_one_order() {
        let mut b = Broker::new(cfg(), 7, 0);
        let bids = [l(99, "10")];
        let asks = [l(100, "4"), l(101, "10")];
        let e = b
            .on_signal(&sig(SignalSide::Buy), &bids, &asks, None, 0)
            .unwrap();
        assert_eq!(e.order.status, OrderStatus::Filled);
        assert_eq!(e.order.client_order_id, "keel-7-0000000000");
        // ~10.0 units at mid 99.5: 4 at 100, the rest at 101.
        assert_eq!(e.fills.len(), 2);
        assert_eq!(e.fills[0].qty, Dec::from_int(4));
        assert!(e.order.avg_px > Dec::from_int(100) && e.order.avg_px < Dec::from_int(101));
        assert!(
            (e.order.fee.to_f64() - e.order.avg_px.to_f64() * e.order.qty.to_f64() * 0.001).abs()
                < 1e-6
        );
        // Already long: another buy does nothing.
        assert!(
            b.on_signal(&sig(SignalSide::Buy), &bids, &asks, None, 1)
                .is_none()
        );
        assert_eq!(b.next_seq(), 1);
    }

    #[test]
    fn sell_after_buy_flips_the_position_and_realises_pnl() {
        let mut b = Broker::new(cfg(), 7, 0);
        trade(&mut b, SignalSide::Buy, 99, 100, "100", 0).unwrap();
        let e = trade(&mut b, SignalSide::Sell, 110, 111, "100", 1).unwrap();
        assert_eq!(e.order.client_order_id, "keel-7-0000000001");
        let p = b.position("BTCUSDT").unwrap();
        assert!(p.qty.is_negative());
        // Bought ~9.95 at 100, sold them at 110.
        assert!(p.realized_pnl.to_f64() > 99.0, "{:?}", p.realized_pnl);
        assert_eq!(p.avg_entry, Dec::from_int(110));
    }

    #[test]
    fn limits_reject_orders_and_the_daily_loss_trips_the_kill_switch() {
        let mut small = cfg();
        small.position_notional_max = 500.0;
        let mut b = Broker::new(small, 1, 0);
        let e = trade(&mut b, SignalSide::Buy, 99, 100, "100", 0).unwrap();
        assert_eq!(
            e.order.status,
            OrderStatus::Rejected("position limit".into())
        );
        let mut b = Broker::new(
            BrokerConfig {
                daily_loss_max: 500.0,
                ..cfg()
            },
            1,
            0,
        );
        trade(&mut b, SignalSide::Buy, 99, 100, "100", 0).unwrap();
        // ~10 units from 100: a fall to 60 loses ~400, within 500; a fall to 1 does not.
        assert!(b.check_risk(1, &|_| Some(Dec::from_int(60))).is_none());
        assert!(b.check_risk(2, &|_| Some(Dec::from_int(1))).is_some());
        let e = trade(&mut b, SignalSide::Sell, 1, 2, "100", 3).unwrap();
        assert!(
            matches!(e.order.status, OrderStatus::Rejected(ref r) if r.starts_with("kill switch"))
        );
    }

    #[test]
    fn thin_books_reject_instead_of_filling_partially() {
        let mut b = Broker::new(cfg(), 1, 0);
        let e = trade(&mut b, SignalSide::Buy, 99, 100, "1", 0).unwrap();
        assert_eq!(
            e.order.status,
            OrderStatus::Rejected("not enough depth in the book".into())
        );
        assert!(b.position("BTCUSDT").is_none());
    }

    #[test]
    fn replaying_fills_rebuilds_the_same_positions() {
        let mut a = Broker::new(cfg(), 3, 0);
        let mut fills = Vec::new();
        for (i, side) in [SignalSide::Buy, SignalSide::Sell, SignalSide::Buy]
            .into_iter()
            .enumerate()
        {
            let px = 100 + i as i64 * 3;
            if let Some(e) = a.on_signal(
                &sig(side),
                &[l(px - 1, "100")],
                &[l(px, "100")],
                None,
                i as u64,
            ) {
                fills.extend(e.fills);
            }
        }
        let mut b = Broker::new(cfg(), 3, a.next_seq());
        for f in &fills {
            b.apply_fill(f);
        }
        assert_eq!(a.position("BTCUSDT"), b.position("BTCUSDT"));
    }
}
