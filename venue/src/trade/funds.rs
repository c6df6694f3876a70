//! Money checks and position arithmetic: whether a wallet carries a new order, and what a fill
//! does to a one-way position (average entry, realised PnL, flips).

use keel_core::Dec;

use super::matching::{INSUFFICIENT, NewOrder, Refusal};
use super::model::{Account, LEVERAGE, Position, Side, notional_value};
use crate::config::Category;
use crate::market::SymbolMarket;
use crate::state::CategoryState;

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

/// What the account has already committed in the coin a new order spends: for linear, the
/// margin (value / leverage) of every open linear order and position; for spot, what every open
/// spot order spending the same coin holds. Each is valued with its own symbol's units.
pub(super) fn committed(acct: &Account, cats: &[CategoryState; 2], n: &NewOrder) -> Dec {
    let spec_of = |c: Category, s: &str| cats[c.index()].markets.get(s).map(|m| &m.spec);
    match n.category {
        Category::Linear => {
            let orders = acct
                .orders
                .iter()
                .filter(|o| o.status.is_open() && o.category == Category::Linear)
                .filter_map(|o| {
                    let v = notional_value(
                        spec_of(Category::Linear, &o.symbol)?,
                        o.price as i128 * o.leaves_lots() as i128,
                    );
                    Some(Dec::from_raw(v.raw() / LEVERAGE))
                });
            let positions = acct.positions.iter().filter_map(|(s, p)| {
                let v = notional_value(spec_of(Category::Linear, s)?, p.entry_notional);
                Some(Dec::from_raw(v.raw() / LEVERAGE))
            });
            total(orders.chain(positions))
        }
        Category::Spot => {
            let Some(own) = spec_of(Category::Spot, &n.symbol) else {
                return Dec::ZERO;
            };
            let coin = match n.side {
                Side::Buy => own.quote_coin(),
                Side::Sell => own.base_coin(),
            };
            let held = acct
                .orders
                .iter()
                .filter(|o| o.status.is_open() && o.category == Category::Spot)
                .filter_map(|o| {
                    let spec = spec_of(Category::Spot, &o.symbol)?;
                    match o.side {
                        Side::Buy if spec.quote_coin() == coin => Some(notional_value(
                            spec,
                            o.price as i128 * o.leaves_lots() as i128,
                        )),
                        Side::Sell if spec.base_coin() == coin => Some(spec.qty(o.leaves_lots())),
                        _ => None,
                    }
                });
            total(held)
        }
    }
}

fn total(values: impl Iterator<Item = Dec>) -> Dec {
    values.fold(Dec::ZERO, |a, b| a.checked_add(b).unwrap_or(a))
}

/// Refuses an order the wallet cannot carry beyond what is `committed` already: linear needs its
/// margin (notional / leverage) and fee in the quote coin, spot the coin it spends.
pub(super) fn check_funds(
    acct: &Account,
    m: &SymbolMarket,
    n: &NewOrder,
    price: i64,
    lots: u64,
    committed: Dec,
) -> Result<(), Refusal> {
    let spec = &m.spec;
    let quote = spec.quote_coin();
    let value = notional_value(spec, price as i128 * lots as i128);
    let (coin, need, refusal) = match (n.category, n.side) {
        (Category::Linear, _) => (
            quote,
            Dec::from_raw(value.raw() / LEVERAGE + value.raw() / 1000),
            INSUFFICIENT,
        ),
        (Category::Spot, side) => (
            if side == Side::Buy {
                quote
            } else {
                spec.base_coin()
            },
            if side == Side::Buy {
                value
            } else {
                spec.qty(lots)
            },
            Refusal {
                code: 170131,
                msg: "Insufficient balance.",
            },
        ),
    };
    let free = acct
        .balance(coin)
        .checked_sub(committed)
        .unwrap_or(Dec::ZERO);
    if need > free {
        return Err(refusal);
    }
    Ok(())
}
