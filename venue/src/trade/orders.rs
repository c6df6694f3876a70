//! Order entry: create (single and batch), amend, cancel, cancel-all; parameters checked as
//! Bybit checks them, then handed to the matching engine.

use std::collections::BTreeMap;

use serde_json::Value;

use super::funds;
use super::matching::{self, NewOrder};
use super::model::{OrderType, Side, Tif};
use super::rest::{Answer, BATCH_ORDERS_MAX, flag, need_category, ok, refuse, text, units_of};
use crate::config::Category;
use crate::market::SymbolSpec;
use crate::state::VenueState;

pub(super) struct Parsed {
    category: Category,
    symbol: String,
}

pub(super) fn symbol_of(st: &VenueState, p: &BTreeMap<String, Value>) -> Result<Parsed, Answer> {
    let category = need_category(p)?;
    let symbol = text(p, "symbol").ok_or(refuse(10001, "params error: symbol is required"))?;
    if !st.cat(category).markets.contains_key(&symbol) {
        return Err(refuse(10001, "params error: symbol invalid"));
    }
    Ok(Parsed { category, symbol })
}

pub(super) fn new_order(
    st: &VenueState,
    ai: usize,
    p: &BTreeMap<String, Value>,
) -> Result<NewOrder, Answer> {
    let Parsed { category, symbol } = symbol_of(st, p)?;
    let spec = &st.cat(category).markets[&symbol].spec;
    let side = match text(p, "side").as_deref() {
        Some("Buy") => Side::Buy,
        Some("Sell") => Side::Sell,
        _ => return Err(refuse(10001, "params error: side invalid")),
    };
    let order_type = match text(p, "orderType").as_deref() {
        Some("Market") => OrderType::Market,
        Some("Limit") => OrderType::Limit,
        _ => return Err(refuse(10001, "params error: orderType invalid")),
    };
    let qty = text(p, "qty").ok_or(refuse(10001, "params error: qty is required"))?;
    if category == Category::Spot
        && order_type == OrderType::Market
        && side == Side::Buy
        && text(p, "marketUnit").as_deref() != Some("baseCoin")
    {
        // Spot market buys are by quote value unless marketUnit says otherwise; the venue
        // takes base quantities only.
        return Err(refuse(
            10001,
            "params error: spot market buy needs marketUnit=baseCoin",
        ));
    }
    let lots = lots_of(spec, &qty)?;
    let price = match (order_type, text(p, "price")) {
        (OrderType::Limit, Some(px)) => Some(ticks_of(spec, &px)?),
        (OrderType::Limit, None) => return Err(refuse(10001, "params error: price is required")),
        (OrderType::Market, _) => None,
    };
    let tif = match text(p, "timeInForce") {
        None => Tif::Gtc,
        Some(t) => Tif::parse(&t).ok_or(refuse(10001, "params error: timeInForce invalid"))?,
    };
    let link_id = text(p, "orderLinkId").unwrap_or_default();
    if link_id.len() > 36
        || !link_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(refuse(10001, "params error: orderLinkId invalid"));
    }
    if !link_id.is_empty() && st.accounts[ai].by_link.contains_key(&link_id) {
        return Err(match category {
            Category::Linear => refuse(110072, "OrderLinkedID is duplicate"),
            Category::Spot => refuse(170141, "Duplicate clientOrderId."),
        });
    }
    Ok(NewOrder {
        category,
        symbol,
        side,
        order_type,
        price,
        qty_lots: lots,
        tif,
        reduce_only: flag(p, "reduceOnly"),
        link_id,
    })
}

/// A price in ticks of `spec`: a positive multiple of the tick.
fn ticks_of(spec: &SymbolSpec, text: &str) -> Result<i64, Answer> {
    let what = "params error: price invalid";
    i64::try_from(units_of(text, spec.tick, what)?).map_err(|_| refuse(10001, what))
}

/// A size in lots of `spec`: a positive multiple of the lot step.
fn lots_of(spec: &SymbolSpec, text: &str) -> Result<u64, Answer> {
    let what = "params error: qty invalid";
    u64::try_from(units_of(text, spec.qty_step, what)?).map_err(|_| refuse(10001, what))
}

/// An order's ids as every order-entry answer writes them.
fn ids_json(id: &str, link: &str) -> String {
    format!(r#"{{"orderId":"{id}","orderLinkId":"{link}"}}"#)
}

pub(super) fn place(
    st: &mut VenueState,
    ai: usize,
    n: NewOrder,
    now_ms: u64,
) -> Result<(String, String), Answer> {
    let link = n.link_id.clone();
    let (category, symbol) = (n.category, n.symbol.clone());
    let VenueState {
        cats,
        accounts,
        seq,
        ..
    } = st;
    let committed = funds::committed(&accounts[ai], cats, &n);
    let m = cats[category.index()]
        .markets
        .get_mut(&symbol)
        .expect("checked");
    let id = matching::place(&mut accounts[ai], m, n, committed, now_ms, seq)?;
    Ok((id, link))
}

pub(super) fn create(
    st: &mut VenueState,
    ai: usize,
    p: &BTreeMap<String, Value>,
    now_ms: u64,
) -> Result<Answer, Answer> {
    let n = new_order(st, ai, p)?;
    let (id, link) = place(st, ai, n, now_ms)?;
    Ok(ok(ids_json(&id, &link)))
}

pub(super) fn create_batch(
    st: &mut VenueState,
    ai: usize,
    p: &BTreeMap<String, Value>,
    now_ms: u64,
) -> Result<Answer, Answer> {
    let category = need_category(p)?;
    let Some(Value::Array(requests)) = p.get("request") else {
        return Err(refuse(10001, "params error: request is required"));
    };
    let max = if category == Category::Spot {
        10
    } else {
        BATCH_ORDERS_MAX
    };
    if requests.is_empty() || requests.len() > max {
        return Err(refuse(10001, "params error: request size invalid"));
    }
    let (mut list, mut ext) = (Vec::new(), Vec::new());
    for r in requests {
        let mut q: BTreeMap<String, Value> = match r {
            Value::Object(m) => m.clone().into_iter().collect(),
            _ => BTreeMap::new(),
        };
        q.insert("category".into(), Value::String(category.as_str().into()));
        let res = new_order(st, ai, &q).and_then(|n| place(st, ai, n, now_ms));
        let symbol = text(&q, "symbol").unwrap_or_default();
        match res {
            Ok((id, link)) => {
                list.push(format!(r#"{{"category":"{}","symbol":"{symbol}","orderId":"{id}","orderLinkId":"{link}","createAt":"{now_ms}"}}"#, category.as_str()));
                ext.push(r#"{"code":0,"msg":"OK"}"#.to_string());
            }
            Err(a) => {
                let link = text(&q, "orderLinkId").unwrap_or_default();
                list.push(format!(r#"{{"category":"{}","symbol":"{symbol}","orderId":"","orderLinkId":"{link}","createAt":""}}"#, category.as_str()));
                ext.push(format!(r#"{{"code":{},"msg":"{}"}}"#, a.code, a.msg));
            }
        }
    }
    let mut a = ok(format!(r#"{{"list":[{}]}}"#, list.join(",")));
    a.ext = format!(r#"{{"list":[{}]}}"#, ext.join(","));
    Ok(a)
}

pub(super) fn target(
    st: &VenueState,
    ai: usize,
    p: &BTreeMap<String, Value>,
) -> Result<(Parsed, String), Answer> {
    let parsed = symbol_of(st, p)?;
    let (id, link) = (text(p, "orderId"), text(p, "orderLinkId"));
    if id.is_none() && link.is_none() {
        return Err(refuse(
            10001,
            "params error: orderId or orderLinkId is required",
        ));
    }
    let o = st.accounts[ai]
        .find(id.as_deref(), link.as_deref())
        .filter(|o| o.symbol == parsed.symbol && o.category == parsed.category)
        .ok_or(refuse(110001, "order not exists or too late to cancel"))?;
    let id = o.order_id.clone();
    Ok((parsed, id))
}

pub(super) fn cancel(
    st: &mut VenueState,
    ai: usize,
    p: &BTreeMap<String, Value>,
    now_ms: u64,
) -> Result<Answer, Answer> {
    let (Parsed { category, symbol }, id) = target(st, ai, p)?;
    let VenueState { cats, accounts, .. } = st;
    let m = cats[category.index()]
        .markets
        .get_mut(&symbol)
        .expect("checked");
    let (id, link) = matching::cancel(&mut accounts[ai], m, &id, "CancelByUser", now_ms)?;
    Ok(ok(ids_json(&id, &link)))
}

pub(super) fn amend(
    st: &mut VenueState,
    ai: usize,
    p: &BTreeMap<String, Value>,
    now_ms: u64,
) -> Result<Answer, Answer> {
    let (Parsed { category, symbol }, id) = target(st, ai, p)?;
    let spec = st.cat(category).markets[&symbol].spec.clone();
    let price = text(p, "price")
        .map(|px| ticks_of(&spec, &px))
        .transpose()?;
    let qty = text(p, "qty").map(|q| lots_of(&spec, &q)).transpose()?;
    if price.is_none() && qty.is_none() {
        return Err(refuse(10001, "params error: nothing to amend"));
    }
    let VenueState {
        cats,
        accounts,
        seq,
        ..
    } = st;
    let m = cats[category.index()]
        .markets
        .get_mut(&symbol)
        .expect("checked");
    let (id, link) = matching::amend(&mut accounts[ai], m, &id, price, qty, now_ms, seq)?;
    Ok(ok(ids_json(&id, &link)))
}

pub(super) fn cancel_all(
    st: &mut VenueState,
    ai: usize,
    p: &BTreeMap<String, Value>,
    now_ms: u64,
) -> Result<Answer, Answer> {
    let category = need_category(p)?;
    let symbol = text(p, "symbol");
    let settle = text(p, "settleCoin").or(text(p, "baseCoin"));
    if category == Category::Linear && symbol.is_none() && settle.is_none() {
        return Err(refuse(
            10001,
            "params error: symbol, baseCoin or settleCoin is required",
        ));
    }
    let ids: Vec<(String, String)> = st.accounts[ai]
        .orders
        .iter()
        .filter(|o| {
            o.status.is_open()
                && o.category == category
                && symbol.as_ref().is_none_or(|s| *s == o.symbol)
        })
        .map(|o| (o.order_id.clone(), o.symbol.clone()))
        .collect();
    let mut list = Vec::new();
    for (id, sym) in ids {
        let VenueState { cats, accounts, .. } = st;
        let Some(m) = cats[category.index()].markets.get_mut(&sym) else {
            continue;
        };
        if let Ok((id, link)) = matching::cancel(&mut accounts[ai], m, &id, "CancelByUser", now_ms)
        {
            list.push(ids_json(&id, &link));
        }
    }
    Ok(ok(format!(
        r#"{{"list":[{}],"success":"1"}}"#,
        list.join(",")
    )))
}
