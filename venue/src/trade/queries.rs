//! Queries: open and recent orders, order history, executions (7-day windows, cursors),
//! positions, wallet, fee rates, and what clients ask for while they load (API key info,
//! account info, coins).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use keel_core::Dec;

use super::matching;
use super::model::{Account, execution_json, order_json, position_json};
use super::rest::{Answer, EXECUTION_WINDOW_MS_MAX, need_category, ok, refuse, text};
use crate::config::Category;
use crate::market::SymbolSpec;
use crate::state::VenueState;

pub(super) fn spec_of<'a>(st: &'a VenueState, c: Category, symbol: &str) -> Option<&'a SymbolSpec> {
    st.cat(c).markets.get(symbol).map(|m| &m.spec)
}

/// One page of `items` after `cursor` (an index), and the next cursor.
pub(super) fn page<T>(
    items: Vec<T>,
    p: &BTreeMap<String, Value>,
    default: usize,
    max: usize,
) -> Result<(Vec<T>, String), Answer> {
    let limit = match text(p, "limit") {
        None => default,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or(refuse(10001, "params error: limit invalid"))?,
    };
    let start = text(p, "cursor")
        .and_then(|c| {
            c.strip_prefix("page:")
                .and_then(|n| n.parse::<usize>().ok())
        })
        .unwrap_or(0);
    let total = items.len();
    let out: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let next = if start + out.len() < total {
        format!("page:{}", start + out.len())
    } else {
        String::new()
    };
    Ok((out, next))
}

pub(super) fn realtime(
    st: &VenueState,
    ai: usize,
    p: &BTreeMap<String, Value>,
) -> Result<Answer, Answer> {
    let category = need_category(p)?;
    let a = &st.accounts[ai];
    let (id, link) = (text(p, "orderId"), text(p, "orderLinkId"));
    let symbol = text(p, "symbol");
    if category == Category::Linear
        && symbol.is_none()
        && id.is_none()
        && link.is_none()
        && text(p, "settleCoin").is_none()
        && text(p, "baseCoin").is_none()
    {
        return Err(refuse(
            10001,
            "params error: symbol, baseCoin or settleCoin is required",
        ));
    }
    let open_only = text(p, "openOnly").unwrap_or_default();
    let recent: std::collections::HashSet<&str> =
        a.recent_closed.iter().map(String::as_str).collect();
    let list: Vec<String> = a
        .orders
        .iter()
        .rev()
        .filter(|o| o.category == category)
        .filter(|o| match (&id, &link) {
            // "openOnly param will be ignored when query by orderId or orderLinkId"
            (Some(i), _) => o.order_id == *i,
            (None, Some(l)) => o.link_id == *l,
            (None, None) => {
                symbol.as_ref().is_none_or(|s| *s == o.symbol)
                    && if open_only == "1" {
                        !o.status.is_open() && recent.contains(o.order_id.as_str())
                    } else {
                        o.status.is_open()
                    }
            }
        })
        .filter(|o| {
            (id.is_none() && link.is_none())
                || o.status.is_open()
                || recent.contains(o.order_id.as_str())
        })
        .filter_map(|o| spec_of(st, category, &o.symbol).map(|s| order_json(o, s, false)))
        .collect();
    let (list, next) = page(list, p, 20, 50)?;
    Ok(ok(format!(
        r#"{{"list":[{}],"nextPageCursor":"{next}","category":"{}"}}"#,
        list.join(","),
        category.as_str()
    )))
}

pub(super) fn history(
    st: &VenueState,
    ai: usize,
    p: &BTreeMap<String, Value>,
) -> Result<Answer, Answer> {
    let category = need_category(p)?;
    let a = &st.accounts[ai];
    let (id, link, symbol) = (
        text(p, "orderId"),
        text(p, "orderLinkId"),
        text(p, "symbol"),
    );
    let list: Vec<String> = a
        .orders
        .iter()
        .rev()
        .filter(|o| o.category == category)
        .filter(|o| id.as_ref().is_none_or(|i| *i == o.order_id))
        .filter(|o| link.as_ref().is_none_or(|l| *l == o.link_id))
        .filter(|o| symbol.as_ref().is_none_or(|s| *s == o.symbol))
        .filter_map(|o| spec_of(st, category, &o.symbol).map(|s| order_json(o, s, false)))
        .collect();
    let (list, next) = page(list, p, 20, 50)?;
    Ok(ok(format!(
        r#"{{"list":[{}],"nextPageCursor":"{next}","category":"{}"}}"#,
        list.join(","),
        category.as_str()
    )))
}

pub(super) fn executions(
    st: &VenueState,
    ai: usize,
    p: &BTreeMap<String, Value>,
    now_ms: u64,
) -> Result<Answer, Answer> {
    let category = need_category(p)?;
    let num = |k: &str| text(p, k).and_then(|v| v.parse::<u64>().ok());
    let (from, to) = match (num("startTime"), num("endTime")) {
        (None, None) => (now_ms.saturating_sub(EXECUTION_WINDOW_MS_MAX), now_ms),
        (Some(s), None) => (s, s + EXECUTION_WINDOW_MS_MAX),
        (None, Some(e)) => (e.saturating_sub(EXECUTION_WINDOW_MS_MAX), e),
        (Some(s), Some(e)) => {
            if e < s || e - s > EXECUTION_WINDOW_MS_MAX {
                return Err(refuse(
                    10001,
                    "params error: the time range must be within 7 days",
                ));
            }
            (s, e)
        }
    };
    let (id, link, symbol) = (
        text(p, "orderId"),
        text(p, "orderLinkId"),
        text(p, "symbol"),
    );
    let a = &st.accounts[ai];
    // Newest first, as Bybit sorts them ("sorted by execTime in descending order").
    let list: Vec<String> = a
        .executions
        .iter()
        .rev()
        .filter(|e| e.category == category && e.time_ms >= from && e.time_ms <= to)
        .filter(|e| id.as_ref().is_none_or(|i| *i == e.order_id))
        .filter(|e| link.as_ref().is_none_or(|l| *l == e.link_id))
        .filter(|e| symbol.as_ref().is_none_or(|s| *s == e.symbol))
        .filter_map(|e| spec_of(st, category, &e.symbol).map(|s| execution_json(e, s, false)))
        .collect();
    let (list, next) = page(list, p, 50, 100)?;
    Ok(ok(format!(
        r#"{{"nextPageCursor":"{next}","category":"{}","list":[{}]}}"#,
        category.as_str(),
        list.join(",")
    )))
}

pub(super) fn positions(
    st: &VenueState,
    ai: usize,
    p: &BTreeMap<String, Value>,
) -> Result<Answer, Answer> {
    match text(p, "category").as_deref() {
        Some("linear") => {}
        // No positions in the categories the venue does not trade; spot has none at all.
        Some(c @ ("inverse" | "option")) => {
            return Ok(ok(format!(
                r#"{{"list":[],"nextPageCursor":"","category":"{c}"}}"#
            )));
        }
        None => return Err(refuse(10001, "params error: category is required")),
        Some(_) => return Err(refuse(10001, "params error: category is invalid")),
    }
    let symbol = text(p, "symbol");
    if symbol.is_none() && text(p, "settleCoin").is_none() {
        return Err(refuse(
            10001,
            "params error: symbol or settleCoin is required",
        ));
    }
    let a = &st.accounts[ai];
    let cs = st.cat(Category::Linear);
    let mut list = Vec::new();
    for (sym, m) in &cs.markets {
        if symbol.as_ref().is_some_and(|s| s != sym) {
            continue;
        }
        let pos = a.positions.get(sym).cloned().unwrap_or_default();
        // "If symbol passed, it returns data regardless of having position or not"; by
        // settleCoin only positions with a size.
        if symbol.is_none() && pos.size_lots == 0 {
            continue;
        }
        let mark = (m.best_bid() + m.best_ask()) / 2;
        list.push(position_json(sym, &pos, &m.spec, mark, false));
    }
    let (list, next) = page(list, p, 20, 200)?;
    Ok(ok(format!(
        r#"{{"list":[{}],"nextPageCursor":"{next}","category":"linear"}}"#,
        list.join(",")
    )))
}

pub(super) fn fee_rate(st: &VenueState, p: &BTreeMap<String, Value>) -> Result<Answer, Answer> {
    let category = need_category(p)?;
    let f = matching::fees(category);
    let symbol = text(p, "symbol");
    let list: Vec<String> = st
        .cat(category)
        .markets
        .keys()
        .filter(|s| symbol.as_ref().is_none_or(|w| w == *s))
        .map(|s| {
            format!(
                r#"{{"symbol":"{s}","takerFeeRate":"{}","makerFeeRate":"{}"}}"#,
                f.taker_text, f.maker_text
            )
        })
        .collect();
    Ok(ok(format!(r#"{{"list":[{}]}}"#, list.join(","))))
}

/// The UNIFIED wallet as `GET /v5/account/wallet-balance` and the `wallet` push write it.
pub(crate) fn wallet_json(a: &Account) -> String {
    let mut coins = String::new();
    let mut total = Dec::ZERO;
    for (coin, bal) in &a.wallet {
        if !coins.is_empty() {
            coins.push(',');
        }
        // Stable coins count at par; other coins' USD value is not tracked (Bybit marks them).
        let usd = if coin == "USDT" || coin == "USDC" {
            *bal
        } else {
            Dec::ZERO
        };
        total = total.checked_add(usd).unwrap_or(total);
        let _ = write!(
            coins,
            r#"{{"coin":"{coin}","equity":"{bal}","usdValue":"{usd}","walletBalance":"{bal}","locked":"0","borrowAmount":"0","availableToWithdraw":"","availableToBorrow":"","bonus":"0","accruedInterest":"0","totalOrderIM":"0","totalPositionIM":"0","totalPositionMM":"0","unrealisedPnl":"0","cumRealisedPnl":"0","marginCollateral":true,"collateralSwitch":true,"spotBorrow":"0"}}"#
        );
    }
    format!(
        r#"{{"accountType":"UNIFIED","totalEquity":"{total}","totalWalletBalance":"{total}","totalMarginBalance":"{total}","totalAvailableBalance":"{total}","totalPerpUPL":"0","totalInitialMargin":"0","totalMaintenanceMargin":"0","accountIMRate":"0","accountMMRate":"0","accountLTV":"0","coin":[{coins}]}}"#
    )
}

pub(super) fn query_api(a: &Account) -> String {
    format!(
        r#"{{"id":"{}","note":"keel venue","apiKey":"{}","readOnly":0,"secret":"","permissions":{{"ContractTrade":["Order","Position"],"Spot":["SpotTrade"],"Wallet":["AccountTransfer"],"Options":[],"Derivatives":[],"CopyTrading":[],"BlockTrade":[],"Exchange":[],"NFT":[]}},"ips":["*"],"type":1,"deadlineDay":-1,"expiredAt":"","createdAt":"","unified":0,"uta":1,"userID":{},"inviterID":0,"vipLevel":"No VIP","mktMakerLevel":"0","affiliateID":0,"rsaPublicKey":"","isMaster":true}}"#,
        a.uid, a.api_key, a.uid
    )
}

pub(super) fn coin_info(st: &VenueState) -> String {
    let mut coins: Vec<String> = Vec::new();
    for c in Category::ALL {
        for m in st.cat(c).markets.values() {
            for coin in [m.spec.base_coin(), m.spec.quote_coin()] {
                if !coins.iter().any(|x| x == coin) {
                    coins.push(coin.to_string());
                }
            }
        }
    }
    let rows: Vec<String> = coins
        .iter()
        .map(|c| format!(r#"{{"name":"{c}","coin":"{c}","remainAmount":"1000000","chains":[{{"chainType":"{c}","confirmation":"1","withdrawFee":"0","depositMin":"0","withdrawMin":"0","chain":"{c}","chainDeposit":"1","chainWithdraw":"1","minAccuracy":"8","withdrawPercentageFee":"0","contractAddress":"","safeConfirmNumber":"1"}}]}}"#))
        .collect();
    format!(r#"{{"rows":[{}]}}"#, rows.join(","))
}
