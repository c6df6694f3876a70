//! Bybit v5 public topic names: `orderbook.{depth}.{symbol}`, `kline.{interval}.{symbol}`,
//! `tickers.{symbol}`, `publicTrade.{symbol}`.

use std::fmt;

/// Depths Bybit has served on its public streams (500 was withdrawn for futures in 2025, but old
/// captures still carry it).
pub const BOOK_DEPTHS: [u16; 7] = [1, 25, 50, 100, 200, 500, 1000];
/// The depth of `orderbook.full.{symbol}`, Bybit's full-depth book.
pub const FULL_DEPTH: u16 = 0;
/// Levels a side kept for a full-depth book: it has no depth of its own, so it gets this bound.
pub const FULL_BOOK_LEVELS_MAX: usize = 50_000;

/// Levels a side a book of this depth keeps.
pub fn book_levels_max(depth: u16) -> usize {
    if depth == FULL_DEPTH {
        FULL_BOOK_LEVELS_MAX
    } else {
        depth as usize
    }
}

/// Longest symbol accepted; Bybit's longest option names are about 25 characters.
pub const SYMBOL_LEN_MAX: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    OrderBook { depth: u16 },
    Kline { interval: Interval },
    Ticker,
    Trade,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic<'a> {
    pub channel: Channel,
    pub symbol: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    UnknownChannel,
    BadDepth,
    BadInterval,
    BadSymbol,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicError::UnknownChannel => "unknown channel",
            TopicError::BadDepth => "unsupported orderbook depth",
            TopicError::BadInterval => "unsupported kline interval",
            TopicError::BadSymbol => "malformed symbol",
        })
    }
}

impl<'a> Topic<'a> {
    pub fn parse(s: &'a str) -> Result<Topic<'a>, TopicError> {
        let (head, rest) = s.split_once('.').ok_or(TopicError::UnknownChannel)?;
        let (channel, symbol) = match head {
            "orderbook" => {
                let (d, sym) = rest.split_once('.').ok_or(TopicError::BadDepth)?;
                let depth = if d == "full" {
                    FULL_DEPTH
                } else {
                    let depth: u16 = d.parse().map_err(|_| TopicError::BadDepth)?;
                    if !BOOK_DEPTHS.contains(&depth) || d.starts_with('0') {
                        return Err(TopicError::BadDepth);
                    }
                    depth
                };
                (Channel::OrderBook { depth }, sym)
            }
            "kline" => {
                let (i, sym) = rest.split_once('.').ok_or(TopicError::BadInterval)?;
                let interval = Interval::parse(i).ok_or(TopicError::BadInterval)?;
                (Channel::Kline { interval }, sym)
            }
            "tickers" => (Channel::Ticker, rest),
            "publicTrade" => (Channel::Trade, rest),
            _ => return Err(TopicError::UnknownChannel),
        };
        if !valid_symbol(symbol) {
            return Err(TopicError::BadSymbol);
        }
        Ok(Topic { channel, symbol })
    }
}

impl fmt::Display for Topic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.channel {
            Channel::OrderBook { depth: FULL_DEPTH } => write!(f, "orderbook.full.{}", self.symbol),
            Channel::OrderBook { depth } => write!(f, "orderbook.{depth}.{}", self.symbol),
            Channel::Kline { interval } => write!(f, "kline.{}.{}", interval.as_str(), self.symbol),
            Channel::Ticker => write!(f, "tickers.{}", self.symbol),
            Channel::Trade => write!(f, "publicTrade.{}", self.symbol),
        }
    }
}

/// Upper-case letters, digits and '-' (option names): what Bybit lists.
pub fn valid_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= SYMBOL_LEN_MAX
        && s.bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'-')
}

/// Kline intervals Bybit offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interval {
    Min1,
    Min3,
    Min5,
    Min15,
    Min30,
    Min60,
    Min120,
    Min240,
    Min360,
    Min720,
    Day,
    Week,
    Month,
}

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;

impl Interval {
    pub const ALL: [Interval; 13] = [
        Interval::Min1,
        Interval::Min3,
        Interval::Min5,
        Interval::Min15,
        Interval::Min30,
        Interval::Min60,
        Interval::Min120,
        Interval::Min240,
        Interval::Min360,
        Interval::Min720,
        Interval::Day,
        Interval::Week,
        Interval::Month,
    ];

    pub fn parse(s: &str) -> Option<Interval> {
        Interval::ALL.into_iter().find(|i| i.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Min1 => "1",
            Interval::Min3 => "3",
            Interval::Min5 => "5",
            Interval::Min15 => "15",
            Interval::Min30 => "30",
            Interval::Min60 => "60",
            Interval::Min120 => "120",
            Interval::Min240 => "240",
            Interval::Min360 => "360",
            Interval::Min720 => "720",
            Interval::Day => "D",
            Interval::Week => "W",
            Interval::Month => "M",
        }
    }

    /// The length of a candle when it is fixed; `None` for months.
    pub fn fixed_ms(self) -> Option<u64> {
        Some(match self {
            Interval::Min1 => MINUTE_MS,
            Interval::Min3 => 3 * MINUTE_MS,
            Interval::Min5 => 5 * MINUTE_MS,
            Interval::Min15 => 15 * MINUTE_MS,
            Interval::Min30 => 30 * MINUTE_MS,
            Interval::Min60 => 60 * MINUTE_MS,
            Interval::Min120 => 120 * MINUTE_MS,
            Interval::Min240 => 240 * MINUTE_MS,
            Interval::Min360 => 360 * MINUTE_MS,
            Interval::Min720 => 720 * MINUTE_MS,
            Interval::Day => DAY_MS,
            Interval::Week => 7 * DAY_MS,
            Interval::Month => return None,
        })
    }

    /// The start of the candle after the one starting at `start_ms` (UTC calendar months).
    pub fn next_start(self, start_ms: u64) -> u64 {
        match self.fixed_ms() {
            Some(len) => start_ms.saturating_add(len),
            None => {
                let days = (start_ms / DAY_MS) as i64;
                let (y, m, _) = civil_from_days(days);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(ny, nm, 1) as u64 * DAY_MS
            }
        }
    }

    /// The start of the candle containing `t_ms`, for fixed intervals aligned to the epoch and
    /// months aligned to the calendar. Weeks start on Monday, as Bybit's do.
    pub fn floor(self, t_ms: u64) -> u64 {
        match self {
            Interval::Week => {
                // 1970-01-01 was a Thursday; Monday 1970-01-05 is day 4.
                let offset = 4 * DAY_MS;
                let len = 7 * DAY_MS;
                if t_ms < offset {
                    0
                } else {
                    (t_ms - offset) / len * len + offset
                }
            }
            Interval::Month => {
                let (y, m, _) = civil_from_days((t_ms / DAY_MS) as i64);
                days_from_civil(y, m, 1) as u64 * DAY_MS
            }
            other => {
                let len = other.fixed_ms().unwrap_or(MINUTE_MS);
                t_ms / len * len
            }
        }
    }
}

// Howard Hinnant's civil calendar algorithms (public domain), proleptic Gregorian.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// (year, month, day) of a count of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_public_topic_shape_parses() {
        let t = Topic::parse("orderbook.200.BTCUSDT").unwrap();
        assert_eq!(t.channel, Channel::OrderBook { depth: 200 });
        assert_eq!(t.symbol, "BTCUSDT");
        let t = Topic::parse("kline.D.ETHUSDT").unwrap();
        assert_eq!(
            t.channel,
            Channel::Kline {
                interval: Interval::Day
            }
        );
        assert_eq!(
            Topic::parse("tickers.SOLUSDT").unwrap().channel,
            Channel::Ticker
        );
        assert_eq!(
            Topic::parse("publicTrade.BTC-6JAN23-18000-C")
                .unwrap()
                .channel,
            Channel::Trade
        );
        for s in [
            "orderbook.200.BTCUSDT",
            "orderbook.full.MNTUSDT",
            "kline.M.X",
            "tickers.A1",
            "publicTrade.B",
        ] {
            assert_eq!(Topic::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn unknown_or_malformed_topics_are_refused_with_a_reason() {
        assert_eq!(
            Topic::parse("getOrderBook.1.BTCUSDT"),
            Err(TopicError::UnknownChannel)
        );
        assert_eq!(
            Topic::parse("orderbook.7.BTCUSDT"),
            Err(TopicError::BadDepth)
        );
        assert_eq!(
            Topic::parse("orderbook.0200.BTCUSDT"),
            Err(TopicError::BadDepth)
        );
        assert_eq!(
            Topic::parse("kline.2.BTCUSDT"),
            Err(TopicError::BadInterval)
        );
        assert_eq!(Topic::parse("tickers."), Err(TopicError::BadSymbol));
        assert_eq!(Topic::parse("tickers.btc usdt"), Err(TopicError::BadSymbol));
        assert_eq!(Topic::parse("orderbook"), Err(TopicError::UnknownChannel));
    }

    #[test]
    fn month_candles_follow_the_calendar() {
        // 2024-01-01 -> 2024-02-01 -> 2024-03-01 (leap year) -> 2024-04-01
        let jan = 1_704_067_200_000;
        let feb = Interval::Month.next_start(jan);
        assert_eq!(feb, 1_706_745_600_000);
        let mar = Interval::Month.next_start(feb);
        assert_eq!(mar - feb, 29 * DAY_MS);
        assert_eq!(Interval::Month.floor(mar + 5 * DAY_MS + 123), mar);
        let dec = 1_733_011_200_000; // 2024-12-01
        assert_eq!(Interval::Month.next_start(dec), 1_735_689_600_000); // 2025-01-01
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2024-01-01 was a Monday.
        let monday = 1_704_067_200_000;
        assert_eq!(Interval::Week.floor(monday + 3 * DAY_MS), monday);
        assert_eq!(Interval::Week.next_start(monday), monday + 7 * DAY_MS);
    }

    #[test]
    fn minute_floor_aligns_to_the_epoch() {
        assert_eq!(Interval::Min1.floor(1786310819999), 1786310760000);
        assert_eq!(Interval::Min15.next_start(1786310100000), 1786311000000);
    }
}
