//! Bybit v5 private REST for orders: the exact texts keel signs and sends, and the answers it
//! reads (acks, order rows, executions). Answers tolerate missing and extra keys and `""` for an
//! absent number (SPEC-PRIVATE.md §7, §8, §12); what parses but cannot be true is refused.

use serde::Deserialize;
use serde::de::Deserializer;

use super::rest::{Response, RestError, envelope, int_or_string};
use crate::decimal::Dec;

pub const CATEGORY_LINEAR: &str = "linear";
/// "A max of 36 characters" (create-order.mdx › orderLinkId).
pub const ORDER_LINK_ID_LEN_MAX: usize = 36;
/// Executions per page (execution.mdx: `limit` [1, 100]).
pub const EXECUTIONS_PAGE_MAX: usize = 100;

pub const RET_CODE_TIME_WINDOW: i64 = 10002;
pub const RET_CODE_SERVER_ERROR: i64 = 10016;
pub const RET_CODE_SERVICE_RESTARTING: i64 = 10019;
pub const RET_CODE_PROCESSING: i64 = 110079;
pub const RET_CODE_DUPLICATE_LINK_ID: i64 = 110072;
pub const RET_CODE_DUPLICATE_CLIENT_ID_SPOT: i64 = 170141;

/// What a refused create means (error.mdx › UTA, › Spot Trade; SPEC-PRIVATE.md §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateRefusal {
    /// Not placed; the same request may go again after the venue's reset (10006, 10429).
    RateLimited,
    /// Not placed: its timestamp is outside the venue's window (10002).
    TimeWindow,
    /// The outcome is unknown (10016 server error or restart, 10019, 110079 "processing",
    /// 10014 "invalid duplicate request"): look the order up.
    Unknown,
    /// The orderLinkId is already there (110072, 170141): an earlier send arrived.
    DuplicateId,
    /// The key pair is wrong or lacks the right (10003, 10004, 10005, 10010): nothing will work.
    Credentials,
    /// Refused for good.
    Rejected(RejectReason),
}

/// Why an order was refused for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RejectReason {
    /// 110004, 110007, 110012: wallet or available balance.
    InsufficientBalance,
    /// 110017 (truncated to zero), 110094 (notional below the minimum).
    SizeTooSmall,
    /// 110003: price outside the allowed range.
    PriceOutOfRange,
    /// 110020: 500 active orders.
    TooManyOrders,
    /// 110001, 110008, 170213: the order no longer exists or is already final.
    OrderGone,
    /// 10001: a parameter the venue refused.
    BadParameter,
    /// Any other code.
    Other,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InsufficientBalance => "insufficient balance",
            RejectReason::SizeTooSmall => "size too small",
            RejectReason::PriceOutOfRange => "price out of range",
            RejectReason::TooManyOrders => "too many open orders",
            RejectReason::OrderGone => "order gone",
            RejectReason::BadParameter => "bad parameter",
            RejectReason::Other => "refused",
        }
    }
}

pub fn classify_create(code: i64) -> CreateRefusal {
    use CreateRefusal::*;
    use RejectReason::*;
    match code {
        10006 | 10429 => RateLimited,
        RET_CODE_TIME_WINDOW => TimeWindow,
        RET_CODE_SERVER_ERROR | RET_CODE_SERVICE_RESTARTING | RET_CODE_PROCESSING | 10014 => {
            Unknown
        }
        RET_CODE_DUPLICATE_LINK_ID | RET_CODE_DUPLICATE_CLIENT_ID_SPOT => DuplicateId,
        10003 | 10004 | 10005 | 10010 => Credentials,
        110004 | 110007 | 110012 => Rejected(InsufficientBalance),
        110017 | 110094 => Rejected(SizeTooSmall),
        110003 => Rejected(PriceOutOfRange),
        110020 => Rejected(TooManyOrders),
        110001 | 110008 | 170213 => Rejected(OrderGone),
        10001 => Rejected(BadParameter),
        _ => Rejected(Other),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "Buy",
            Side::Sell => "Sell",
        }
    }

    /// +1 for a buy, -1 for a sell.
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "Buy" => Some(Side::Buy),
            "Sell" => Some(Side::Sell),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum OrderType {
    Market,
    Limit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TimeInForce {
    #[serde(rename = "GTC")]
    Gtc,
    #[serde(rename = "IOC")]
    Ioc,
    #[serde(rename = "FOK")]
    Fok,
    PostOnly,
}

/// `POST /v5/order/create`, with its keys in the order written.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder<'a> {
    pub category: &'a str,
    pub symbol: &'a str,
    pub side: Side,
    pub order_type: OrderType,
    pub qty: Dec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<Dec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<TimeInForce>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reduce_only: bool,
    pub order_link_id: &'a str,
}

/// Whether `id` is a valid `orderLinkId`: 1 to 36 of letters, digits, `-` and `_`.
pub fn valid_link_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= ORDER_LINK_ID_LEN_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Strings, decimals and enums only: serialising cannot fail. An empty body would be refused
    // by the venue (10001), never sent as something else.
    serde_json::to_string(v).unwrap_or_default()
}

pub fn create_body(o: &NewOrder<'_>) -> String {
    to_json(o)
}

/// `POST /v5/order/cancel-all` for one symbol.
pub fn cancel_all_body(category: &str, symbol: &str) -> String {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        category: &'a str,
        symbol: &'a str,
    }
    to_json(&Body { category, symbol })
}

/// `GET /v5/order/realtime` or `/v5/order/history` for one `orderLinkId` (link ids need no
/// escaping: [`valid_link_id`]).
pub fn order_query(category: &str, link_id: &str) -> String {
    format!("category={category}&orderLinkId={link_id}")
}

/// `GET /v5/execution/list` for one order, from `cursor` on.
pub fn executions_query(category: &str, link_id: &str, cursor: Option<&str>) -> String {
    let mut q = format!("category={category}&orderLinkId={link_id}&limit={EXECUTIONS_PAGE_MAX}");
    push_cursor(&mut q, cursor);
    q
}

/// Appends `&cursor=...` for a page cursor the venue gave (none or empty: nothing).
pub fn push_cursor(q: &mut String, cursor: Option<&str>) {
    if let Some(c) = cursor.filter(|c| !c.is_empty()) {
        q.push_str("&cursor=");
        escape_into(q, c);
    }
}

/// Percent-encodes what may not stand in a query value; a cursor Bybit already encoded keeps its
/// `%` escapes as they are.
fn escape_into(out: &mut String, v: &str) {
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~%".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn dec_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Dec>, D::Error> {
    let s: Option<std::borrow::Cow<'de, str>> = Deserialize::deserialize(d)?;
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(t) => Dec::parse(t).map(Some).map_err(serde::de::Error::custom),
    }
}

/// The `result` of create, amend and cancel: an acknowledgement only (create-order.mdx ›
/// Response Parameters: "please use the websocket to confirm the order status").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub order_link_id: String,
}

pub fn parse_ack(text: &str) -> Result<Response<Ack>, RestError> {
    let r: Response<Ack> = envelope(text)?;
    if r.result.order_id.is_empty() {
        return Err(RestError::BadValue("acknowledgement without an orderId"));
    }
    Ok(r)
}

/// enum.mdx › orderStatus; anything else is kept as `Other` and treated as open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum OrderStatus {
    New,
    PartiallyFilled,
    Untriggered,
    Triggered,
    Rejected,
    PartiallyFilledCanceled,
    Filled,
    Cancelled,
    Deactivated,
    #[serde(other)]
    Other,
}

impl OrderStatus {
    /// A status after which the order neither fills nor rests. `Triggered` is listed under
    /// "closed" yet is "instantaneous" (SPEC-PRIVATE.md §11): not final.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Rejected
                | OrderStatus::PartiallyFilledCanceled
                | OrderStatus::Filled
                | OrderStatus::Cancelled
                | OrderStatus::Deactivated
        )
    }
}

/// One order as `/v5/order/realtime`, `/v5/order/history` and the `order` stream show it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRow {
    pub order_id: String,
    #[serde(default)]
    pub order_link_id: String,
    pub symbol: String,
    pub side: Side,
    pub order_status: OrderStatus,
    #[serde(default, deserialize_with = "dec_or_empty")]
    pub qty: Option<Dec>,
    #[serde(default, deserialize_with = "dec_or_empty")]
    pub cum_exec_qty: Option<Dec>,
    #[serde(default, deserialize_with = "dec_or_empty")]
    pub avg_price: Option<Dec>,
    #[serde(default)]
    pub reject_reason: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderList {
    pub list: Vec<OrderRow>,
    #[serde(default)]
    pub next_page_cursor: String,
}

pub fn parse_orders(text: &str) -> Result<Response<OrderList>, RestError> {
    let r: Response<OrderList> = envelope(text)?;
    for o in &r.result.list {
        check_order(o)?;
    }
    Ok(r)
}

/// Refuses an order row that cannot be true (a negative fill, more filled than ordered).
pub fn check_order(o: &OrderRow) -> Result<(), RestError> {
    let cum = o.cum_exec_qty.unwrap_or(Dec::ZERO);
    if cum < Dec::ZERO || o.qty.is_some_and(|q| q < Dec::ZERO) {
        return Err(RestError::BadValue("order quantity"));
    }
    if o.qty.is_some_and(|q| q > Dec::ZERO && cum > q) {
        return Err(RestError::BadValue("order filled beyond its quantity"));
    }
    Ok(())
}

/// One execution as `/v5/execution/list` and the `execution` stream show it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecRow {
    pub exec_id: String,
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub order_link_id: String,
    pub symbol: String,
    pub side: Side,
    pub exec_price: Dec,
    pub exec_qty: Dec,
    #[serde(default, deserialize_with = "dec_or_empty")]
    pub exec_fee: Option<Dec>,
    #[serde(deserialize_with = "int_or_string")]
    pub exec_time: i64,
    #[serde(default)]
    pub exec_type: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecList {
    pub list: Vec<ExecRow>,
    #[serde(default)]
    pub next_page_cursor: String,
}

pub fn parse_executions(text: &str) -> Result<Response<ExecList>, RestError> {
    let r: Response<ExecList> = envelope(text)?;
    for x in &r.result.list {
        check_execution(x)?;
    }
    Ok(r)
}

/// Refuses an execution that cannot be true: a trade at a non-positive price or size, no id,
/// a negative time.
pub fn check_execution(x: &ExecRow) -> Result<(), RestError> {
    if x.exec_id.is_empty() {
        return Err(RestError::BadValue("execution without an execId"));
    }
    if x.exec_price <= Dec::ZERO || x.exec_qty <= Dec::ZERO || x.exec_time < 0 {
        return Err(RestError::BadValue("execution price, size or time"));
    }
    Ok(())
}

/// `GET /v5/account/wallet-balance?accountType=UNIFIED` (account/wallet-balance.mdx): the
/// account's equity in USD and each coin's balance. Numbers may be `""` (SPEC-PRIVATE.md §8).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Wallet {
    pub total_equity: Option<Dec>,
    pub total_available: Option<Dec>,
    pub coins: Vec<CoinBalance>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CoinBalance {
    pub coin: String,
    #[serde(default, deserialize_with = "dec_or_empty")]
    pub wallet_balance: Option<Dec>,
    #[serde(default, deserialize_with = "dec_or_empty")]
    pub equity: Option<Dec>,
}

pub fn parse_wallet(text: &str) -> Result<Response<Wallet>, RestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Account {
        #[serde(default, deserialize_with = "dec_or_empty")]
        total_equity: Option<Dec>,
        #[serde(default, deserialize_with = "dec_or_empty")]
        total_available_balance: Option<Dec>,
        #[serde(default)]
        coin: Vec<CoinBalance>,
    }
    #[derive(Deserialize)]
    struct List {
        list: Vec<Account>,
    }
    let r: Response<List> = envelope(text)?;
    let a = r
        .result
        .list
        .into_iter()
        .next()
        .ok_or(RestError::BadValue("wallet without an account"))?;
    if a.coin
        .iter()
        .any(|c| c.wallet_balance.is_some_and(|b| b < Dec::ZERO))
    {
        return Err(RestError::BadValue("negative wallet balance"));
    }
    Ok(Response {
        result: Wallet {
            total_equity: a.total_equity,
            total_available: a.total_available_balance,
            coins: a.coin,
        },
        time_ms: r.time_ms,
    })
}

/// One frame of the private stream (websocket/private/*.mdx): the pushes keel applies, and
/// the control answers its link needs (auth, subscribe, pong).
#[derive(Debug, Clone, PartialEq)]
pub enum PrivateFrame {
    Orders(Vec<OrderRow>),
    Executions(Vec<ExecRow>),
    /// A push keel does not apply (position, wallet): the REST reconciliation reads those.
    Other(String),
    Control(crate::wire::frame::Control),
}

/// Bytes of one private frame above which it is refused unread.
pub const PRIVATE_FRAME_BYTES_MAX: usize = 1 << 20;

pub fn parse_private_frame(text: &str) -> Result<PrivateFrame, RestError> {
    use crate::wire::frame::{Ack, Control};
    if text.len() > PRIVATE_FRAME_BYTES_MAX {
        return Err(RestError::Oversize {
            len: text.len(),
            max: PRIVATE_FRAME_BYTES_MAX,
        });
    }
    #[derive(Deserialize)]
    struct Raw {
        topic: Option<String>,
        op: Option<String>,
        success: Option<bool>,
        #[serde(default)]
        ret_msg: String,
        // A client may send a number; the venue echoes it as given.
        req_id: Option<serde_json::Value>,
        conn_id: Option<String>,
        #[serde(default)]
        data: serde_json::Value,
    }
    let raw: Raw = serde_json::from_str(text).map_err(|e| RestError::Json(e.to_string()))?;
    let bad = |e: serde_json::Error| RestError::Json(e.to_string());
    let req_id = raw.req_id.map(|v| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    });
    if let Some(topic) = raw.topic {
        // "order", "order.linear", "execution", "execution.linear", "execution.fast", ...
        let kind = topic.split('.').next().unwrap_or("");
        return match kind {
            "order" => {
                let rows: Vec<OrderRow> = serde_json::from_value(raw.data).map_err(bad)?;
                for o in &rows {
                    check_order(o)?;
                }
                Ok(PrivateFrame::Orders(rows))
            }
            "execution" if topic != "execution.fast" && !topic.starts_with("execution.fast.") => {
                let rows: Vec<ExecRow> = serde_json::from_value(raw.data).map_err(bad)?;
                for x in &rows {
                    check_execution(x)?;
                }
                Ok(PrivateFrame::Executions(rows))
            }
            _ => Ok(PrivateFrame::Other(topic)),
        };
    }
    match raw.op.as_deref() {
        Some("pong") => Ok(PrivateFrame::Control(Control::Pong { req_id })),
        Some(op) => Ok(PrivateFrame::Control(Control::Ack(Ack {
            op: op.to_string(),
            success: raw.success.unwrap_or(false),
            ret_msg: raw.ret_msg,
            req_id,
            conn_id: raw.conn_id,
            failed_topics: Vec::new(),
        }))),
        None => Err(RestError::Json("neither a topic nor an op".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_body_names_only_what_it_sets_in_a_fixed_order() {
        let o = NewOrder {
            category: CATEGORY_LINEAR,
            symbol: "BTCUSDT",
            side: Side::Buy,
            order_type: OrderType::Market,
            qty: Dec::parse("0.010").unwrap(),
            price: None,
            time_in_force: None,
            reduce_only: false,
            order_link_id: "k1-0000000001",
        };
        assert_eq!(
            create_body(&o),
            r#"{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"0.01","orderLinkId":"k1-0000000001"}"#
        );
        let l = NewOrder {
            order_type: OrderType::Limit,
            price: Some(Dec::parse("65000.5").unwrap()),
            time_in_force: Some(TimeInForce::PostOnly),
            reduce_only: true,
            ..o
        };
        assert_eq!(
            create_body(&l),
            r#"{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"65000.5","timeInForce":"PostOnly","reduceOnly":true,"orderLinkId":"k1-0000000001"}"#
        );
    }

    #[test]
    fn link_ids_are_short_and_plain() {
        assert!(valid_link_id("k18f2a-0000000001"));
        assert!(!valid_link_id(""));
        assert!(!valid_link_id(&"a".repeat(37)));
        assert!(!valid_link_id("a b"));
        assert!(!valid_link_id("a&b=c"));
    }

    #[test]
    fn a_cursor_is_escaped_but_its_own_escapes_kept() {
        assert_eq!(
            executions_query("linear", "k-1", Some("0%3A1 2&x")),
            "category=linear&orderLinkId=k-1&limit=100&cursor=0%3A1%202%26x"
        );
    }

    #[test]
    fn the_docs_order_rows_parse_and_empty_numbers_are_absent() {
        let text = r#"{"retCode":0,"retMsg":"OK","result":{"list":[{"orderId":"fd4300ae","orderLinkId":"test-000005","symbol":"ETHUSDT","side":"Buy","orderStatus":"Filled","qty":"0.10","cumExecQty":"0.10","avgPrice":"","rejectReason":"EC_NoError","extra":1}],"nextPageCursor":"page_args","category":"linear"},"time":1684765770483}"#;
        let r = parse_orders(text).unwrap();
        let o = &r.result.list[0];
        assert_eq!(o.order_status, OrderStatus::Filled);
        assert!(o.order_status.is_final());
        assert_eq!(o.avg_price, None);
        assert_eq!(o.cum_exec_qty, Some(Dec::parse("0.1").unwrap()));
        assert_eq!(r.result.next_page_cursor, "page_args");
    }

    #[test]
    fn an_order_filled_beyond_its_size_is_refused() {
        let text = r#"{"retCode":0,"retMsg":"OK","result":{"list":[{"orderId":"a","symbol":"X","side":"Buy","orderStatus":"Filled","qty":"1","cumExecQty":"2"}]}}"#;
        assert!(matches!(parse_orders(text), Err(RestError::BadValue(_))));
    }

    #[test]
    fn executions_at_a_non_positive_price_are_refused() {
        let row = |px: &str| {
            format!(
                r#"{{"retCode":0,"retMsg":"OK","result":{{"list":[{{"execId":"e1","orderId":"o","orderLinkId":"k","symbol":"X","side":"Sell","execPrice":"{px}","execQty":"1","execFee":"","execTime":"1700000000000","execType":"Trade"}}]}}}}"#
            )
        };
        let ok = parse_executions(&row("10.5")).unwrap();
        assert_eq!(ok.result.list[0].exec_fee, None);
        assert_eq!(ok.result.list[0].exec_time, 1_700_000_000_000);
        assert!(matches!(
            parse_executions(&row("0")),
            Err(RestError::BadValue(_))
        ));
        assert!(matches!(
            parse_executions(&row("-1")),
            Err(RestError::BadValue(_))
        ));
    }

    #[test]
    fn private_frames_are_pushes_or_control_answers() {
        let order = r#"{"topic":"order","id":"1","creationTime":1,"data":[{"orderId":"o","orderLinkId":"k-1","symbol":"BTCUSDT","side":"Buy","orderStatus":"Filled","qty":"1","cumExecQty":"1","avgPrice":"10"}]}"#;
        assert!(matches!(parse_private_frame(order), Ok(PrivateFrame::Orders(r)) if r.len() == 1));
        let exec = r#"{"topic":"execution.linear","id":"1","creationTime":1,"data":[{"execId":"e","orderId":"o","orderLinkId":"k-1","symbol":"BTCUSDT","side":"Buy","execPrice":"10","execQty":"1","execFee":"0.01","execTime":"5","execType":"Trade"}]}"#;
        assert!(
            matches!(parse_private_frame(exec), Ok(PrivateFrame::Executions(r)) if r[0].exec_id == "e")
        );
        let wallet = r#"{"id":"x","topic":"wallet","creationTime":1,"data":[{}]}"#;
        assert_eq!(
            parse_private_frame(wallet),
            Ok(PrivateFrame::Other("wallet".into()))
        );
        let auth = r#"{"success":false,"ret_msg":"Invalid sign","op":"auth","conn_id":"c"}"#;
        match parse_private_frame(auth) {
            Ok(PrivateFrame::Control(crate::wire::frame::Control::Ack(a))) => {
                assert_eq!(a.op, "auth");
                assert!(!a.success);
            }
            other => panic!("{other:?}"),
        }
        let pong = r#"{"op":"pong","args":["1753340040127"],"conn_id":"c"}"#;
        assert!(matches!(
            parse_private_frame(pong),
            Ok(PrivateFrame::Control(_))
        ));
        let negative = order.replace(r#""cumExecQty":"1""#, r#""cumExecQty":"-1""#);
        assert!(parse_private_frame(&negative).is_err());
        assert!(parse_private_frame("[1]").is_err());
    }

    #[test]
    fn every_refusal_of_a_create_has_a_typed_meaning() {
        use CreateRefusal::*;
        assert_eq!(classify_create(10006), RateLimited);
        assert_eq!(classify_create(10002), TimeWindow);
        assert_eq!(classify_create(10016), Unknown);
        assert_eq!(classify_create(110079), Unknown);
        assert_eq!(classify_create(110072), DuplicateId);
        assert_eq!(classify_create(170141), DuplicateId);
        assert_eq!(classify_create(10004), Credentials);
        assert_eq!(
            classify_create(110007),
            Rejected(RejectReason::InsufficientBalance)
        );
        assert_eq!(classify_create(110008), Rejected(RejectReason::OrderGone));
        assert_eq!(
            classify_create(110094),
            Rejected(RejectReason::SizeTooSmall)
        );
        assert_eq!(classify_create(12345), Rejected(RejectReason::Other));
    }

    #[test]
    fn a_wallet_with_empty_numbers_parses_and_a_negative_balance_is_refused() {
        let text = r#"{"retCode":0,"retMsg":"OK","result":{"list":[{"accountType":"UNIFIED","totalEquity":"100.5","totalAvailableBalance":"","coin":[{"coin":"USDT","walletBalance":"100.5","equity":""},{"coin":"BTC","walletBalance":"","equity":""}]}]}}"#;
        let w = parse_wallet(text).unwrap().result;
        assert_eq!(w.total_equity, Some(Dec::parse("100.5").unwrap()));
        assert_eq!(w.total_available, None);
        assert_eq!(w.coins.len(), 2);
        assert_eq!(w.coins[1].wallet_balance, None);
        let bad = text.replace(r#""walletBalance":"100.5""#, r#""walletBalance":"-1""#);
        assert!(matches!(parse_wallet(&bad), Err(RestError::BadValue(_))));
    }

    #[test]
    fn an_error_answer_keeps_its_code() {
        let text =
            r#"{"retCode":110072,"retMsg":"OrderLinkedID is duplicate","result":{},"time":1}"#;
        assert_eq!(
            parse_ack(text),
            Err(RestError::Api {
                ret_code: RET_CODE_DUPLICATE_LINK_ID,
                ret_msg: "OrderLinkedID is duplicate".into()
            })
        );
    }
}
