//! The broker: how big an order a signal asks for, the positions fills make (realised and
//! unrealised PnL, fees), and the risk limits with a kill switch, checked before an order goes
//! to the order machine. Fills come from the order machine, on paper as live.

use std::collections::BTreeMap;

use crate::decimal::Dec;
use crate::trading::strategy::{Action, SignalSide, TimeInForce};

/// An order sized for an action, and whether the limits allow it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sized {
    pub side: SignalSide,
    pub qty: Dec,
    /// A limit order's price and time in force; `None` for a market order.
    pub price: Option<Dec>,
    pub tif: Option<TimeInForce>,
    /// The order only brings the position toward flat: it goes reduce-only, so a position
    /// keel holds ahead of the venue's (a fill not seen yet) is capped or refused by the venue
    /// instead of turned into one the other way.
    pub reduce_only: bool,
    pub verdict: Result<(), Refusal>,
}

/// What the venue allows an order of one instrument: sizes in lot steps and at least the
/// smallest order, limit prices on the tick. Each is unknown (no check) until pre-flight reads
/// it; a backtest over candles knows only the lot step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Steps {
    pub qty: Option<Dec>,
    pub tick: Option<Dec>,
    pub min_qty: Option<Dec>,
}

/// Why the broker's checks will not let an order go. Typed, not text: a backtest meets
/// thousands of refusals (every signal after the kill switch trips) and reads none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The kill switch tripped ([`Broker::killed`] says why).
    KillSwitch,
    PositionLimit,
    GrossLimit,
    /// Smaller than the venue's smallest order (Bybit refuses it; paper would fill it).
    BelowMinimum,
    /// A buy's limit price is below one tick of the venue's.
    BelowOneTick,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::KillSwitch => "kill switch",
            Refusal::PositionLimit => "position limit",
            Refusal::GrossLimit => "gross exposure limit",
            Refusal::BelowMinimum => "below the venue's smallest order",
            Refusal::BelowOneTick => "limit price below one tick",
        })
    }
}

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

/// A fill of the order machine, as the broker books it.
impl From<&crate::trading::orders::ExecRecord> for Fill {
    fn from(x: &crate::trading::orders::ExecRecord) -> Fill {
        Fill {
            client_order_id: x.link_id.clone(),
            symbol: x.symbol.clone(),
            side: x.side.into(),
            px: x.px,
            qty: x.qty,
            fee: x.fee,
            ts_ms: x.ts_ms,
        }
    }
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
    /// What the position cost to open, unsigned.
    pub fn entry_notional(&self) -> f64 {
        self.qty.to_f64().abs() * self.avg_entry.to_f64()
    }

    pub fn unrealized(&self, mark: Dec) -> Dec {
        mark.checked_sub(self.avg_entry)
            .and_then(|d| d.checked_mul(self.qty))
            .unwrap_or(Dec::ZERO)
    }
}

#[derive(Debug, Clone)]
pub struct Broker {
    config: BrokerConfig,
    positions: BTreeMap<String, Position>,
    /// [`Broker::realized_total`] and the positions' gross notional at entry, kept as positions
    /// change: the risk checks read them at every step of a backtest and for every order.
    realized_net: f64,
    gross_entry: f64,
    killed: Option<String>,
    day: u64,
    day_start_pnl: f64,
}

const DAY_MS: u64 = 86_400_000;

impl Broker {
    pub fn new(config: BrokerConfig) -> Broker {
        Broker {
            config,
            positions: BTreeMap::new(),
            realized_net: 0.0,
            gross_entry: 0.0,
            killed: None,
            day: 0,
            day_start_pnl: 0.0,
        }
    }

    pub fn restore_position(&mut self, p: Position) {
        self.positions.insert(p.symbol.clone(), p);
        self.refresh_totals();
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

    /// Realised PnL net of fees, over every position.
    pub fn realized_total(&self) -> f64 {
        self.realized_net
    }

    fn refresh_totals(&mut self) {
        self.realized_net = self
            .positions
            .values()
            .map(|p| p.realized_pnl.to_f64() - p.fees.to_f64())
            .sum();
        self.gross_entry = self.positions.values().map(Position::entry_notional).sum();
    }

    /// The open positions' PnL at `marks` (a position without a mark counts nothing).
    pub fn unrealized(&self, marks: &dyn Fn(&str) -> Option<Dec>) -> f64 {
        self.positions
            .values()
            .filter_map(|p| marks(&p.symbol).map(|m| p.unrealized(m).to_f64()))
            .sum()
    }

    /// Checks the daily loss against the marks; trips the kill switch when it is exceeded.
    pub fn check_risk(
        &mut self,
        now_ms: u64,
        marks: &dyn Fn(&str) -> Option<Dec>,
    ) -> Option<String> {
        let unrealized = self.unrealized(marks);
        self.check_loss(now_ms, unrealized)
    }

    /// [`Broker::check_risk`] with the open positions' PnL already known (a backtest keeps it as
    /// it goes instead of marking every position again at every step).
    pub fn check_loss(&mut self, now_ms: u64, unrealized: f64) -> Option<String> {
        let day = now_ms / DAY_MS;
        if day != self.day {
            self.day = day;
            self.day_start_pnl = self.realized_total();
        }
        if self.killed.is_none() {
            let pnl = self.realized_total() + unrealized - self.day_start_pnl;
            if pnl < -self.config.daily_loss_max {
                return self.trip(format!(
                    "daily loss {pnl:.2} beyond {:.2}: trading stopped",
                    self.config.daily_loss_max
                ));
            }
        }
        None
    }

    /// Trips the kill switch for `reason`: every later order is refused. Returns the reason
    /// when this tripped it, `None` when it was already tripped.
    pub fn trip(&mut self, reason: String) -> Option<String> {
        if self.killed.is_some() {
            return None;
        }
        self.killed = Some(reason);
        self.killed.clone()
    }

    /// The size of the order a signal asks for, or why it may not be sent: a buy targets a long
    /// of one order's notional, a sell a short; `None` when already there or past it. Quantities are
    /// rounded down to `qty_step` (the venue's lot size). Risk limits are checked here, before
    /// anything is sent.
    pub fn size_order(
        &self,
        symbol: &str,
        side: SignalSide,
        best_bid: Dec,
        best_ask: Dec,
        qty_step: Option<Dec>,
    ) -> Option<(Dec, Result<(), Refusal>)> {
        let mid = (best_bid.to_f64() + best_ask.to_f64()) / 2.0;
        if mid <= 0.0 {
            return None;
        }
        // One lookup for the sizing and the checks: a backtest sizes a view at every candle.
        let held = self.positions.get(symbol);
        let current = held.map_or(0.0, |p| p.qty.to_f64());
        let unit = self.config.order_notional / mid;
        let target = match side {
            SignalSide::Buy => unit,
            SignalSide::Sell => -unit,
        };
        let delta = target - current;
        // Already at (or within a tenth of an order of) the target: nothing to do. Nor past it
        // in the view's own direction (a long bigger than a buy's target, after the price rose):
        // a view only ever trades its way, so its order is always of its side; adding to such a
        // position would aim at a target that keeps running away.
        let toward = match side {
            SignalSide::Buy => delta > 0.0,
            SignalSide::Sell => delta < 0.0,
        };
        if !toward || delta.abs() < unit * 0.1 {
            return None;
        }
        let qty = round_down(Dec::from_f64(delta.abs())?, qty_step);
        if qty.is_zero() {
            return None;
        }
        Some((qty, self.check_target(held, target, mid)))
    }

    /// An exact order of `qty` (rounded down to `qty_step`): its size, or why it may not be
    /// sent. The limits are checked on the position it would leave.
    pub fn size_exact(
        &self,
        symbol: &str,
        side: SignalSide,
        qty: Dec,
        best_bid: Dec,
        best_ask: Dec,
        qty_step: Option<Dec>,
    ) -> Option<(Dec, Result<(), Refusal>)> {
        let mid = (best_bid.to_f64() + best_ask.to_f64()) / 2.0;
        if mid <= 0.0 {
            return None;
        }
        let qty = round_down(qty, qty_step);
        if qty.is_zero() {
            return None;
        }
        let held = self.positions.get(symbol);
        let current = held.map_or(0.0, |p| p.qty.to_f64());
        let target = match side {
            SignalSide::Buy => current + qty.to_f64(),
            SignalSide::Sell => current - qty.to_f64(),
        };
        Some((qty, self.check_target(held, target, mid)))
    }

    /// The order `action` asks for on `symbol`, sized and checked: a view sized as
    /// [`Broker::size_order`], an exact order as [`Broker::size_exact`], a target as the
    /// difference from the position. `None` when there is nothing to send (already there, a
    /// size below the lot step, a cancel).
    // Inlined: its `Option<Sized>` came back through memory, and reading it waited on the
    // callee's stores (a backtest sizes a view at every candle; perf, session 10).
    #[inline]
    pub fn size_action(
        &self,
        symbol: &str,
        action: &Action,
        best_bid: Dec,
        best_ask: Dec,
        steps: Steps,
    ) -> Option<Sized> {
        let qty_step = steps.qty;
        let (side, price, tif, sized) = match *action {
            Action::Signal { side, .. } => (
                side,
                None,
                None,
                self.size_order(symbol, side, best_bid, best_ask, qty_step),
            ),
            Action::Market { side, qty } => (
                side,
                None,
                None,
                self.size_exact(symbol, side, qty, best_bid, best_ask, qty_step),
            ),
            Action::Limit {
                side,
                qty,
                price,
                tif,
            } => (
                side,
                Some(price),
                Some(tif),
                self.size_exact(symbol, side, qty, best_bid, best_ask, qty_step),
            ),
            Action::Target { qty } => {
                let delta = qty.checked_sub(self.position_qty(symbol))?;
                let side = if delta.is_negative() {
                    SignalSide::Sell
                } else {
                    SignalSide::Buy
                };
                let size = Dec::from_raw(delta.raw().saturating_abs());
                (
                    side,
                    None,
                    None,
                    self.size_exact(symbol, side, size, best_bid, best_ask, qty_step),
                )
            }
            Action::Cancel => return None,
        };
        let (qty, mut verdict) = sized?;
        if verdict.is_ok() && steps.min_qty.is_some_and(|min| qty < min) {
            verdict = Err(Refusal::BelowMinimum);
        }
        // On the venue's tick, never at a worse price than asked (Bybit refuses a price off it).
        let on_tick = price.map(|p| limit_on_tick(p, side, steps.tick));
        if verdict.is_ok() && on_tick == Some(None) {
            verdict = Err(Refusal::BelowOneTick);
        }
        Some(Sized {
            side,
            qty,
            price: on_tick.flatten().or(price),
            tif,
            reduce_only: reduces_only(self.position_qty(symbol), side, qty),
            verdict,
        })
    }

    /// The position's size, negative when short.
    pub fn position_qty(&self, symbol: &str) -> Dec {
        self.positions.get(symbol).map_or(Dec::ZERO, |p| p.qty)
    }

    /// Whether the position `held` (none yet: flat) brought to `target` (at `mid`) stays within
    /// the limits.
    fn check_target(&self, held: Option<&Position>, target: f64, mid: f64) -> Result<(), Refusal> {
        if self.killed.is_some() {
            return Err(Refusal::KillSwitch);
        }
        let current = held.map_or(0.0, |p| p.qty.to_f64());
        // Reducing a position is always allowed: it takes risk off.
        if target.abs() <= current.abs() && target * current >= 0.0 {
            return Ok(());
        }
        if target.abs() * mid > self.config.position_notional_max {
            return Err(Refusal::PositionLimit);
        }
        let own = held.map_or(0.0, Position::entry_notional);
        let gross_after = self.gross_entry - own + target.abs() * mid;
        if gross_after > self.config.gross_notional_max {
            return Err(Refusal::GrossLimit);
        }
        Ok(())
    }

    /// Applies a fill to its position (also used to rebuild positions from stored fills).
    pub fn apply_fill(&mut self, f: &Fill) {
        if !self.positions.contains_key(&f.symbol) {
            self.positions.insert(
                f.symbol.clone(),
                Position {
                    symbol: f.symbol.clone(),
                    ..Position::default()
                },
            );
        }
        let Some(p) = self.positions.get_mut(&f.symbol) else {
            return;
        };
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
        self.refresh_totals();
    }
}

/// Whether an order of `qty` on `side` only reduces a position of `held` (negative: short).
fn reduces_only(held: Dec, side: SignalSide, qty: Dec) -> bool {
    match side {
        SignalSide::Sell => held > Dec::ZERO && qty <= held,
        SignalSide::Buy => {
            held < Dec::ZERO && qty.checked_add(held).is_some_and(|d| d <= Dec::ZERO)
        }
    }
}

/// A limit price on `tick`: a buy's rounded down and a sell's up, so never worse than asked;
/// `None` when that leaves no positive price (or overflows). Without a tick it is as asked.
fn limit_on_tick(price: Dec, side: SignalSide, tick: Option<Dec>) -> Option<Dec> {
    let Some(t) = tick.filter(|t| *t > Dec::ZERO).map(Dec::raw) else {
        return (price > Dec::ZERO).then_some(price);
    };
    let p = price.raw();
    let on = match side {
        SignalSide::Buy => p.div_euclid(t).checked_mul(t)?,
        SignalSide::Sell => p.checked_add(t - 1)?.div_euclid(t).checked_mul(t)?,
    };
    (on > 0).then(|| Dec::from_raw(on))
}

/// `qty` rounded down to the venue's lot step (1e-6 when it is not known).
fn round_down(qty: Dec, qty_step: Option<Dec>) -> Dec {
    let step = qty_step
        .filter(|q| *q > Dec::ZERO)
        .unwrap_or(Dec::from_raw(1_000_000_000_000));
    Dec::from_raw(qty.raw() / step.raw() * step.raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        Dec::parse(s).unwrap()
    }

    fn fill(side: SignalSide, px: &str, qty: &str) -> Fill {
        Fill {
            client_order_id: "k-1".into(),
            symbol: "BTCUSDT".into(),
            side,
            px: d(px),
            qty: d(qty),
            fee: d("0.1"),
            ts_ms: 0,
        }
    }

    fn cfg() -> BrokerConfig {
        BrokerConfig {
            order_notional: 1_000.0,
            ..BrokerConfig::default()
        }
    }

    #[test]
    fn a_buy_is_sized_to_one_orders_notional_rounded_down_to_the_lot_step() {
        let b = Broker::new(cfg());
        // 1,000 at a mid of 99.5 is 10.0502...; the lot step is 0.01.
        let (qty, ok) = b
            .size_order(
                "BTCUSDT",
                SignalSide::Buy,
                d("99"),
                d("100"),
                Some(d("0.01")),
            )
            .unwrap();
        assert_eq!(qty, d("10.05"));
        assert!(ok.is_ok());
    }

    #[test]
    fn at_the_target_nothing_is_sized_and_the_opposite_signal_flips_through_zero() {
        let mut b = Broker::new(cfg());
        b.apply_fill(&fill(SignalSide::Buy, "100", "10"));
        assert!(
            b.size_order("BTCUSDT", SignalSide::Buy, d("99"), d("101"), None)
                .is_none()
        );
        let (qty, _) = b
            .size_order("BTCUSDT", SignalSide::Sell, d("99"), d("101"), None)
            .unwrap();
        assert_eq!(qty, d("20"));
    }

    /// A long bought at 100 for one order's notional is past a buy's target once the price has
    /// risen: the buy sends nothing (it once bought the difference again, and again, doubling).
    #[test]
    fn a_view_past_its_target_in_its_own_direction_sends_nothing() {
        let mut b = Broker::new(cfg());
        b.apply_fill(&fill(SignalSide::Buy, "100", "10"));
        assert!(
            b.size_order("BTCUSDT", SignalSide::Buy, d("124"), d("126"), None)
                .is_none(),
            "10 at 125 is past a 1000 notional long"
        );
        b.apply_fill(&fill(SignalSide::Sell, "100", "20"));
        assert!(
            b.size_order("BTCUSDT", SignalSide::Sell, d("124"), d("126"), None)
                .is_none()
        );
        // Below the target (the price fell), a buy tops it up: of its own side, to the target.
        let (qty, ok) = b
            .size_order("BTCUSDT", SignalSide::Buy, d("49"), d("51"), None)
            .unwrap();
        assert_eq!(qty, d("30"));
        assert!(ok.is_ok());
    }

    #[test]
    fn sell_after_buy_flips_the_position_and_realises_pnl() {
        let mut b = Broker::new(cfg());
        b.apply_fill(&fill(SignalSide::Buy, "100", "10"));
        b.apply_fill(&fill(SignalSide::Sell, "110", "20"));
        let p = b.position("BTCUSDT").unwrap();
        assert_eq!(p.qty, d("-10"));
        assert_eq!(p.realized_pnl, d("100"));
        assert_eq!(p.fees, d("0.2"));
        assert_eq!(p.avg_entry, d("110"));
    }

    #[test]
    fn limits_refuse_orders_and_the_daily_loss_trips_the_kill_switch() {
        let b = Broker::new(BrokerConfig {
            position_notional_max: 500.0,
            ..cfg()
        });
        let (_, verdict) = b
            .size_order("BTCUSDT", SignalSide::Buy, d("99"), d("100"), None)
            .unwrap();
        assert_eq!(verdict, Err(Refusal::PositionLimit));
        let mut b = Broker::new(BrokerConfig {
            daily_loss_max: 500.0,
            ..cfg()
        });
        b.apply_fill(&fill(SignalSide::Buy, "100", "10"));
        // 10 units from 100: a fall to 60 loses 400, within 500; a fall to 1 does not.
        assert!(b.check_risk(1, &|_| Some(d("60"))).is_none());
        assert!(b.check_risk(2, &|_| Some(d("1"))).is_some());
        let (_, verdict) = b
            .size_order("BTCUSDT", SignalSide::Sell, d("1"), d("2"), None)
            .unwrap();
        assert_eq!(verdict, Err(Refusal::KillSwitch));
    }

    #[test]
    fn a_limit_price_goes_on_the_tick_never_worse_than_asked() {
        let tick = Some(d("0.5"));
        let on = |px: &str, side| limit_on_tick(d(px), side, tick);
        assert_eq!(on("100.3", SignalSide::Buy), Some(d("100")));
        assert_eq!(on("100.3", SignalSide::Sell), Some(d("100.5")));
        assert_eq!(on("100.5", SignalSide::Buy), Some(d("100.5")));
        assert_eq!(on("100.5", SignalSide::Sell), Some(d("100.5")));
        assert_eq!(on("0.3", SignalSide::Buy), None, "below one tick");
        assert_eq!(on("0.3", SignalSide::Sell), Some(d("0.5")));
        assert_eq!(on("-1", SignalSide::Sell), None);
        assert_eq!(
            limit_on_tick(d("100.37"), SignalSide::Buy, None),
            Some(d("100.37"))
        );
        assert_eq!(limit_on_tick(d("0"), SignalSide::Buy, None), None);
    }

    proptest::proptest! {
        /// Against the plain definition: the nearest multiple of the tick on the passive side.
        #[test]
        fn a_price_on_the_tick_is_the_nearest_passive_multiple(
            price in 1i64..10_000_000,
            tick in 1i64..5_000,
            buy in proptest::prelude::any::<bool>(),
        ) {
            let (p, t) = (Dec::from_parts(price as u64, 3, false), Dec::from_parts(tick as u64, 3, false));
            let side = if buy { SignalSide::Buy } else { SignalSide::Sell };
            let want = if buy { price / tick * tick } else { (price + tick - 1) / tick * tick };
            let got = limit_on_tick(p, side, Some(t));
            if want == 0 {
                proptest::prop_assert_eq!(got, None);
            } else {
                proptest::prop_assert_eq!(got, Some(Dec::from_parts(want as u64, 3, false)));
            }
        }
    }

    #[test]
    fn only_an_order_within_the_position_toward_flat_is_reduce_only() {
        let (buy, sell) = (SignalSide::Buy, SignalSide::Sell);
        assert!(reduces_only(d("2"), sell, d("2")), "closing a long");
        assert!(reduces_only(d("2"), sell, d("0.5")), "part of a long");
        assert!(!reduces_only(d("2"), sell, d("3")), "a flip opens a short");
        assert!(!reduces_only(d("2"), buy, d("1")), "adding to a long");
        assert!(reduces_only(d("-2"), buy, d("2")), "closing a short");
        assert!(!reduces_only(d("-2"), buy, d("2.5")), "a flip opens a long");
        assert!(!reduces_only(d("0"), sell, d("1")), "flat: opening");
        assert!(!reduces_only(d("0"), buy, d("1")), "flat: opening");
    }
}
