//! Bybit v5 REST responses: the envelope and the market endpoints keel reads.
//!
//! REST is not on the per-frame hot path, so serde_json does the work. Integer fields accept a
//! JSON number or a string of digits (Bybit sends numbers; mirrors such as ccxt's fixtures store
//! strings).

use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::decimal::Dec;
use crate::decimal::Level;
use crate::wire::frame::Bar;

/// Default bound on one REST body (a 1000-candle page is about 100 KB).
pub const REST_BODY_BYTES_MAX_DEFAULT: usize = 16 << 20;

/// retCode: "Too many visits. Exceeded the API Rate Limit."
pub const RET_CODE_RATE_LIMIT: i64 = 10006;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestError {
    Oversize {
        len: usize,
        max: usize,
    },
    /// Not the JSON shape of this endpoint.
    Json(String),
    /// The venue answered with a non-zero retCode.
    Api {
        ret_code: i64,
        ret_msg: String,
    },
    /// A well-formed response whose content breaks a rule (an unsorted price, a bad candle).
    BadValue(&'static str),
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestError::Oversize { len, max } => {
                write!(f, "response of {len} bytes is over the {max}-byte limit")
            }
            RestError::Json(e) => write!(f, "malformed response: {e}"),
            RestError::Api { ret_code, ret_msg } => write!(f, "venue error {ret_code}: {ret_msg}"),
            RestError::BadValue(what) => write!(f, "response has a bad {what}"),
        }
    }
}

impl std::error::Error for RestError {}

impl RestError {
    pub fn is_rate_limit(&self) -> bool {
        matches!(self, RestError::Api { ret_code, .. } if *ret_code == RET_CODE_RATE_LIMIT)
    }
}

pub(crate) fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N<'a> {
        I(i64),
        S(&'a str),
        O(String),
    }
    match N::deserialize(d)? {
        N::I(v) => Ok(v),
        N::S(s) => s.parse().map_err(de::Error::custom),
        N::O(s) => s.parse().map_err(de::Error::custom),
    }
}

pub(crate) fn opt_int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    int_or_string(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    #[serde(deserialize_with = "int_or_string")]
    ret_code: i64,
    #[serde(default)]
    ret_msg: String,
    result: Option<T>,
    #[serde(default, deserialize_with = "opt_int_or_string")]
    time: Option<i64>,
}

/// A parsed response body: its result and the venue's clock in ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<T> {
    pub result: T,
    pub time_ms: Option<u64>,
}

pub(crate) fn envelope<'a, T: Deserialize<'a>>(text: &'a str) -> Result<Response<T>, RestError> {
    if text.len() > REST_BODY_BYTES_MAX_DEFAULT {
        return Err(RestError::Oversize {
            len: text.len(),
            max: REST_BODY_BYTES_MAX_DEFAULT,
        });
    }
    // A non-zero retCode usually comes with an empty `result` object: read the code first.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        #[serde(deserialize_with = "int_or_string")]
        ret_code: i64,
        #[serde(default)]
        ret_msg: String,
    }
    let head: Head = serde_json::from_str(text).map_err(|e| RestError::Json(e.to_string()))?;
    if head.ret_code != 0 {
        return Err(RestError::Api {
            ret_code: head.ret_code,
            ret_msg: head.ret_msg,
        });
    }
    let env: Envelope<T> =
        serde_json::from_str(text).map_err(|e| RestError::Json(e.to_string()))?;
    debug_assert_eq!(env.ret_code, 0);
    let _ = env.ret_msg;
    Ok(Response {
        result: env
            .result
            .ok_or(RestError::Json("missing field `result`".into()))?,
        time_ms: env.time.and_then(|t| u64::try_from(t).ok()),
    })
}

/// GET /v5/market/kline: candles as sent, NEWEST FIRST; the first may still be open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlinePage {
    pub symbol: String,
    pub category: Option<String>,
    pub bars: Vec<Bar>,
}

pub fn parse_kline(text: &str) -> Result<Response<KlinePage>, RestError> {
    #[derive(Deserialize)]
    struct Raw {
        symbol: String,
        category: Option<String>,
        list: Vec<[String; 7]>,
    }
    let r = envelope::<Raw>(text)?;
    let mut bars = Vec::with_capacity(r.result.list.len());
    for row in &r.result.list {
        let d = |i: usize| Dec::parse(&row[i]).map_err(|_| RestError::BadValue("kline price"));
        let start_ms = row[0]
            .parse::<u64>()
            .map_err(|_| RestError::BadValue("kline start"))?;
        let bar = Bar {
            start_ms,
            open: d(1)?,
            high: d(2)?,
            low: d(3)?,
            close: d(4)?,
            volume: d(5)?,
            turnover: d(6)?,
        };
        if let Some((field, _)) = crate::wire::frame::implausible_bar(
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume,
            bar.turnover,
        ) {
            return Err(RestError::BadValue(match field {
                "high" => "kline high below the open or close",
                "low" => "kline low above the open or close",
                "volume" | "turnover" => "kline volume or turnover negative",
                _ => "kline price at or below zero",
            }));
        }
        bars.push(bar);
    }
    Ok(Response {
        result: KlinePage {
            symbol: r.result.symbol,
            category: r.result.category,
            bars,
        },
        time_ms: r.time_ms,
    })
}

/// GET /v5/market/orderbook: "The response is in the snapshot format."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestBook {
    pub symbol: String,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    pub ts: u64,
    pub u: u64,
    pub seq: Option<u64>,
}

pub fn parse_orderbook(text: &str) -> Result<Response<RestBook>, RestError> {
    #[derive(Deserialize)]
    struct Raw {
        s: String,
        b: Vec<[String; 2]>,
        a: Vec<[String; 2]>,
        #[serde(deserialize_with = "int_or_string")]
        ts: i64,
        #[serde(deserialize_with = "int_or_string")]
        u: i64,
        #[serde(default, deserialize_with = "opt_int_or_string")]
        seq: Option<i64>,
    }
    let r = envelope::<Raw>(text)?;
    let side = |rows: &[[String; 2]]| -> Result<Vec<Level>, RestError> {
        rows.iter()
            .map(|[p, q]| {
                let px = Dec::parse(p).map_err(|_| RestError::BadValue("orderbook price"))?;
                let qty = Dec::parse(q).map_err(|_| RestError::BadValue("orderbook size"))?;
                if px <= Dec::ZERO || qty.is_negative() {
                    return Err(RestError::BadValue("orderbook level"));
                }
                Ok(Level { px, qty })
            })
            .collect()
    };
    let nonneg = |v: i64, what| u64::try_from(v).map_err(|_| RestError::BadValue(what));
    Ok(Response {
        result: RestBook {
            bids: side(&r.result.b)?,
            asks: side(&r.result.a)?,
            symbol: r.result.s,
            ts: nonneg(r.result.ts, "orderbook ts")?,
            u: nonneg(r.result.u, "orderbook u")?,
            seq: r
                .result
                .seq
                .map(|s| nonneg(s, "orderbook seq"))
                .transpose()?,
        },
        time_ms: r.time_ms,
    })
}

/// GET /v5/market/time, as the venue's clock in ms.
pub fn parse_time(text: &str) -> Result<Response<u64>, RestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        time_second: String,
        time_nano: Option<String>,
    }
    let r = envelope::<Raw>(text)?;
    let ms = match &r.result.time_nano {
        Some(ns) => ns.parse::<u64>().map(|n| n / 1_000_000).ok(),
        None => None,
    };
    let ms = match ms {
        Some(ms) => ms,
        None => r
            .result
            .time_second
            .parse::<u64>()
            .map_err(|_| RestError::BadValue("timeSecond"))?
            .saturating_mul(1000),
    };
    Ok(Response {
        result: ms,
        time_ms: r.time_ms,
    })
}

/// One instrument of GET /v5/market/instruments-info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    pub symbol: String,
    pub status: String,
    pub tick_size: Option<Dec>,
    pub qty_step: Option<Dec>,
    pub min_order_qty: Option<Dec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstrumentsPage {
    pub category: Option<String>,
    pub instruments: Vec<Instrument>,
    pub next_page_cursor: Option<String>,
}

pub fn parse_instruments(text: &str) -> Result<Response<InstrumentsPage>, RestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct PriceFilter {
        tick_size: Option<Dec>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct LotFilter {
        qty_step: Option<Dec>,
        // Spot states its lot step as basePrecision.
        base_precision: Option<Dec>,
        min_order_qty: Option<Dec>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Item {
        symbol: String,
        #[serde(default)]
        status: String,
        price_filter: Option<PriceFilter>,
        lot_size_filter: Option<LotFilter>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        category: Option<String>,
        list: Vec<Item>,
        next_page_cursor: Option<String>,
    }
    let r = envelope::<Raw>(text)?;
    let positive = |d: &Option<Dec>| d.is_none_or(|d| d > Dec::ZERO);
    for i in &r.result.list {
        if !positive(&i.price_filter.as_ref().and_then(|p| p.tick_size)) {
            return Err(RestError::BadValue("instrument tick size at or below zero"));
        }
        let lot = i.lot_size_filter.as_ref();
        if !positive(&lot.and_then(|l| l.qty_step.or(l.base_precision))) {
            return Err(RestError::BadValue("instrument lot step at or below zero"));
        }
    }
    let instruments = r
        .result
        .list
        .into_iter()
        .map(|i| Instrument {
            symbol: i.symbol,
            status: i.status,
            tick_size: i.price_filter.and_then(|p| p.tick_size),
            qty_step: i
                .lot_size_filter
                .as_ref()
                .and_then(|l| l.qty_step.or(l.base_precision)),
            min_order_qty: i.lot_size_filter.and_then(|l| l.min_order_qty),
        })
        .collect();
    Ok(Response {
        result: InstrumentsPage {
            category: r.result.category,
            instruments,
            next_page_cursor: r.result.next_page_cursor.filter(|c| !c.is_empty()),
        },
        time_ms: r.time_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kline_body(row: &str) -> String {
        format!(
            r#"{{"retCode":0,"retMsg":"OK","result":{{"symbol":"BTCUSDT","category":"linear","list":[{row}]}},"time":1}}"#
        )
    }

    #[test]
    fn rest_history_rows_that_cannot_be_true_are_refused() {
        let good = r#"["60000","100","110","90","105","1","100"]"#;
        assert!(parse_kline(&kline_body(good)).is_ok());
        for bad in [
            r#"["60000","100","110","90","-5","1","100"]"#,
            r#"["60000","100","104","90","105","1","100"]"#,
            r#"["60000","100","110","101","105","1","100"]"#,
            r#"["60000","0","110","90","105","1","100"]"#,
            r#"["60000","100","110","90","105","-1","100"]"#,
            r#"["60000","100","110","90","105","1","-100"]"#,
        ] {
            assert!(
                matches!(parse_kline(&kline_body(bad)), Err(RestError::BadValue(_))),
                "{bad} was taken"
            );
        }
    }

    #[test]
    fn an_instrument_with_a_zero_or_negative_step_is_refused() {
        let body = |tick: &str, step: &str| {
            format!(
                r#"{{"retCode":0,"retMsg":"OK","result":{{"category":"linear","list":[{{"symbol":"X","status":"Trading","priceFilter":{{"tickSize":"{tick}"}},"lotSizeFilter":{{"qtyStep":"{step}"}}}}]}},"time":1}}"#
            )
        };
        assert!(parse_instruments(&body("0.1", "0.001")).is_ok());
        for (t, q) in [
            ("0", "0.001"),
            ("-0.1", "0.001"),
            ("0.1", "0"),
            ("0.1", "-1"),
        ] {
            assert!(
                parse_instruments(&body(t, q)).is_err(),
                "tick {t} step {q} was taken"
            );
        }
    }

    #[test]
    fn venue_error_codes_become_typed_errors() {
        let e = parse_time(r#"{"retCode":10006,"retMsg":"Too many visits!","result":{},"time":1}"#)
            .unwrap_err();
        assert!(e.is_rate_limit());
        let e =
            parse_kline(r#"{"retCode":"10001","retMsg":"params error","result":{}}"#).unwrap_err();
        assert_eq!(
            e,
            RestError::Api {
                ret_code: 10001,
                ret_msg: "params error".into()
            }
        );
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert!(matches!(
            parse_time("<html>502</html>"),
            Err(RestError::Json(_))
        ));
        let bad = r#"{"retCode":0,"retMsg":"OK","result":{"symbol":"X","list":[["1","a","1","1","1","1","1"]]}}"#;
        assert_eq!(
            parse_kline(bad).unwrap_err(),
            RestError::BadValue("kline price")
        );
    }
}
