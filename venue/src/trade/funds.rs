//! Money checks and position arithmetic: whether a wallet carries a new order, and what a fill
//! does to a one-way position (average entry, realised PnL, flips).

use keel_core::Dec;

use super::matching::{INSUFFICIENT, NewOrder, Refusal};
use super::model::{Account, LEVERAGE, Position, Side, notional_value};
use crate::config::Category;
use crate::market::SymbolMarket;

/// Adds `signed` lots at `px` to a one-way position; returns the realised PnL and whether the
/// fill reduced the position.
pub(super) fn apply_to_position(
    p: &mut Position,
    signed: i64,
    px: i64,
    spec: &crate::market::SymbolSpec,
) -> (Dec, bool) {
    let size = p.size_lots;
    if size == 0 || size.signum() == signed.signum() {
        p.size_lots += signed;
        p.entry_notional += px as i128 * signed.unsigned_abs() as i128;
        return (Dec::ZERO, false);
    }
    let closing = signed.unsigned_abs().min(size.unsigned_abs());
    let entry_per = p.entry_notional / size.unsigned_abs() as i128;
    let pnl_ticks_lots = (px as i128 - entry_per) * closing as i128 * size.signum() as i128;
    let pnl = notional_value(spec, pnl_ticks_lots);
    p.entry_notional -= entry_per * closing as i128;
    p.size_lots += signed;
    if p.size_lots.signum() == signed.signum() && p.size_lots != 0 {
        // Flipped: the rest opens the other way at this price.
        p.entry_notional = px as i128 * p.size_lots.unsigned_abs() as i128;
    }
    if p.size_lots == 0 {
        p.entry_notional = 0;
    }
    p.cum_realised = p.cum_realised.checked_add(pnl).unwrap_or(p.cum_realised);
    p.cur_realised = p.cur_realised.checked_add(pnl).unwrap_or(p.cur_realised);
    (pnl, true)
}

/// Refuses an order the wallet cannot carry: linear needs its margin (notional / leverage) and
/// fee in the quote coin beyond what open orders and positions hold; spot needs the coin it
/// spends.
pub(super) fn check_funds(
    acct: &Account,
    m: &SymbolMarket,
    n: &NewOrder,
    price: i64,
    lots: u64,
) -> Result<(), Refusal> {
    let spec = &m.spec;
    let quote = spec.quote_coin();
    let value = notional_value(spec, price as i128 * lots as i128);
    match n.category {
        Category::Linear => {
            let mut used = Dec::ZERO;
            for o in acct
                .orders
                .iter()
                .filter(|o| o.status.is_open() && o.category == Category::Linear)
            {
                let ms = &m.spec;
                let v = notional_value(ms, o.price as i128 * o.leaves_lots() as i128);
                used = used
                    .checked_add(Dec::from_raw(v.raw() / LEVERAGE))
                    .unwrap_or(used);
            }
            for p in acct.positions.values() {
                let v = notional_value(spec, p.entry_notional);
                used = used
                    .checked_add(Dec::from_raw(v.raw() / LEVERAGE))
                    .unwrap_or(used);
            }
            let need = Dec::from_raw(value.raw() / LEVERAGE + value.raw() / 1000);
            let free = acct.balance(quote).checked_sub(used).unwrap_or(Dec::ZERO);
            if need > free {
                return Err(INSUFFICIENT);
            }
        }
        Category::Spot => {
            let (coin, need) = match n.side {
                Side::Buy => (quote.to_string(), value),
                Side::Sell => (spec.base_coin().to_string(), spec.qty(lots)),
            };
            let locked: Dec = acct
                .orders
                .iter()
                .filter(|o| {
                    o.status.is_open()
                        && o.category == Category::Spot
                        && o.symbol == n.symbol
                        && o.side == n.side
                })
                .map(|o| match o.side {
                    Side::Buy => notional_value(spec, o.price as i128 * o.leaves_lots() as i128),
                    Side::Sell => spec.qty(o.leaves_lots()),
                })
                .fold(Dec::ZERO, |a, b| a.checked_add(b).unwrap_or(a));
            let free = acct.balance(&coin).checked_sub(locked).unwrap_or(Dec::ZERO);
            if need > free {
                return Err(Refusal {
                    code: 170131,
                    msg: "Insufficient balance.",
                });
            }
        }
    }
    Ok(())
}
