//! Klines, tickers and trades: the `data` of each, read by the general scanner into the
//! decoder's buffers. Order books, which also have the template, stay in `codec.rs`.

use super::{Decoder, Parsed, R, dec, int, json, need, plain, set, typed};
use crate::decimal::Dec;
use crate::wire::error::{DecodeError, NumberWhy};
use crate::wire::frame::{
    CANDLES_PER_FRAME_MAX, KlineData, Side, TRADES_PER_FRAME_MAX, TickDirection, TickerField,
    TradeData, implausible_bar,
};
use crate::wire::json::Scanner;

impl Decoder {
    pub(super) fn kline_data<'a>(&mut self, sc: &mut Scanner<'a>) -> R<Parsed<'a>> {
        data_array(sc, &mut self.candles, CANDLES_PER_FRAME_MAX, candle)?;
        if self.candles.is_empty() {
            return Err(DecodeError::MissingField("data"));
        }
        Ok(Parsed::Kline)
    }

    pub(super) fn ticker_data<'a>(&mut self, sc: &mut Scanner<'a>) -> R<Parsed<'a>> {
        self.ticker.clear();
        sc.begin_object().map_err(typed("data"))?;
        let (mut symbol, mut tick) = (None, None);
        let mut first = true;
        while let Some(key) = sc.next_key(&mut first).map_err(json)? {
            let k = key.plain().unwrap_or("");
            if let Some(field) = TickerField::parse(k) {
                let s = sc.string().map_err(typed(field.as_str()))?;
                let text = plain(s, field.as_str())?;
                let v = if text.is_empty() {
                    None
                } else {
                    Some(Dec::parse(text).map_err(|e| DecodeError::BadNumber {
                        field: field.as_str(),
                        why: NumberWhy::Decimal(e),
                    })?)
                };
                if let Some(d) = v {
                    if field.must_be_positive() && d <= Dec::ZERO {
                        return Err(DecodeError::Implausible {
                            field: field.as_str(),
                            why: "a price at or below zero",
                        });
                    }
                    if field.must_not_be_negative() && d.is_negative() {
                        return Err(DecodeError::Implausible {
                            field: field.as_str(),
                            why: "negative",
                        });
                    }
                }
                if self.ticker.iter().any(|(f, _)| *f == field) {
                    return Err(DecodeError::DuplicateField(field.as_str()));
                }
                self.ticker.push((field, v));
                continue;
            }
            match k {
                "symbol" => set(
                    &mut symbol,
                    plain(sc.string().map_err(typed("symbol"))?, "symbol")?,
                    "symbol",
                )?,
                "tickDirection" => {
                    let s = plain(
                        sc.string().map_err(typed("tickDirection"))?,
                        "tickDirection",
                    )?;
                    let t = TickDirection::parse(s).ok_or(DecodeError::BadValue {
                        field: "tickDirection",
                    })?;
                    set(&mut tick, t, "tickDirection")?;
                }
                _ => sc.skip().map_err(json)?,
            }
        }
        Ok(Parsed::Ticker {
            symbol: need(symbol, "symbol")?,
            tick,
        })
    }

    pub(super) fn trade_data<'a>(&mut self, sc: &mut Scanner<'a>) -> R<Parsed<'a>> {
        data_array(sc, &mut self.trades, TRADES_PER_FRAME_MAX, trade)?;
        Ok(Parsed::Trade)
    }
}

/// A `data` array read into `out` (cleared first), each element by `read`; more than `max`
/// elements is refused.
fn data_array<T>(
    sc: &mut Scanner<'_>,
    out: &mut Vec<T>,
    max: usize,
    read: impl Fn(&mut Scanner<'_>) -> R<T>,
) -> R<()> {
    out.clear();
    sc.begin_array().map_err(typed("data"))?;
    let mut first = true;
    while sc.next_elem(&mut first).map_err(json)? {
        if out.len() == max {
            return Err(DecodeError::TooMany { field: "data", max });
        }
        out.push(read(sc)?);
    }
    Ok(())
}

fn candle(sc: &mut Scanner<'_>) -> R<KlineData> {
    sc.begin_object().map_err(typed("data"))?;
    let (mut start, mut end, mut timestamp, mut confirm) = (None, None, None, None);
    let (mut open, mut high, mut low, mut close, mut volume, mut turnover) =
        (None, None, None, None, None, None);
    let mut first = true;
    while let Some(key) = sc.next_key(&mut first).map_err(json)? {
        match key.plain().unwrap_or("") {
            "start" => set(&mut start, sc.u64().map_err(int("start"))?, "start")?,
            "end" => set(&mut end, sc.u64().map_err(int("end"))?, "end")?,
            "timestamp" => set(
                &mut timestamp,
                sc.u64().map_err(int("timestamp"))?,
                "timestamp",
            )?,
            "confirm" => set(
                &mut confirm,
                sc.bool().map_err(typed("confirm"))?,
                "confirm",
            )?,
            "open" => set(&mut open, dec(sc, "open")?, "open")?,
            "high" => set(&mut high, dec(sc, "high")?, "high")?,
            "low" => set(&mut low, dec(sc, "low")?, "low")?,
            "close" => set(&mut close, dec(sc, "close")?, "close")?,
            "volume" => set(&mut volume, dec(sc, "volume")?, "volume")?,
            "turnover" => set(&mut turnover, dec(sc, "turnover")?, "turnover")?,
            _ => sc.skip().map_err(json)?,
        }
    }
    let c = KlineData {
        start: need(start, "start")?,
        end,
        open: need(open, "open")?,
        high: need(high, "high")?,
        low: need(low, "low")?,
        close: need(close, "close")?,
        volume: need(volume, "volume")?,
        turnover: need(turnover, "turnover")?,
        confirm: need(confirm, "confirm")?,
        timestamp,
    };
    if let Some((field, why)) =
        implausible_bar(c.open, c.high, c.low, c.close, c.volume, c.turnover)
    {
        return Err(DecodeError::Implausible { field, why });
    }
    Ok(c)
}

fn trade(sc: &mut Scanner<'_>) -> R<TradeData> {
    sc.begin_object().map_err(typed("data"))?;
    let (mut time_ms, mut side, mut qty, mut px) = (None, None, None, None);
    let (mut tick, mut bt, mut rpi, mut seq, mut id) = (None, None, None, None, None);
    let mut first = true;
    while let Some(key) = sc.next_key(&mut first).map_err(json)? {
        match key.plain().unwrap_or("") {
            "T" => set(&mut time_ms, sc.u64().map_err(int("T"))?, "T")?,
            "S" => {
                let s = match plain(sc.string().map_err(typed("S"))?, "S")? {
                    "Buy" => Side::Buy,
                    "Sell" => Side::Sell,
                    _ => return Err(DecodeError::BadValue { field: "S" }),
                };
                set(&mut side, s, "S")?;
            }
            "v" => set(&mut qty, dec(sc, "v")?, "v")?,
            "p" => set(&mut px, dec(sc, "p")?, "p")?,
            "L" => {
                let s = plain(sc.string().map_err(typed("L"))?, "L")?;
                let t = TickDirection::parse(s).ok_or(DecodeError::BadValue { field: "L" })?;
                set(&mut tick, t, "L")?;
            }
            "BT" => set(&mut bt, sc.bool().map_err(typed("BT"))?, "BT")?,
            "RPI" => set(&mut rpi, sc.bool().map_err(typed("RPI"))?, "RPI")?,
            "seq" => set(&mut seq, sc.u64().map_err(int("seq"))?, "seq")?,
            "i" => set(&mut id, sc.string().map_err(typed("i"))?, "i")?,
            _ => sc.skip().map_err(json)?,
        }
    }
    need(id, "i")?;
    let (qty, px): (Dec, Dec) = (need(qty, "v")?, need(px, "p")?);
    if px <= Dec::ZERO {
        return Err(DecodeError::Implausible {
            field: "p",
            why: "a price at or below zero",
        });
    }
    if qty <= Dec::ZERO {
        return Err(DecodeError::Implausible {
            field: "v",
            why: "a size at or below zero",
        });
    }
    Ok(TradeData {
        time_ms: need(time_ms, "T")?,
        side: need(side, "S")?,
        qty,
        px,
        tick,
        block_trade: bt.unwrap_or(false),
        rpi: rpi.unwrap_or(false),
        seq,
    })
}
