//! A symbol's closed candles as its strategies see them: one shared vector, appended to as
//! candles close and rebuilt only when the series rewrote its past (a correction, a merge), so
//! a cycle hands every strategy the same candles without copying them.

use std::sync::Arc;

use crate::market::kline::KlineSeries;
use crate::trading::strategy::Candle;

#[derive(Debug, Clone, Default)]
pub(super) struct CandleWindow {
    pub(super) candles: Arc<Vec<Candle>>,
    rewrites: u64,
}

impl CandleWindow {
    /// Brings the window up to date with `series`, keeping at least the newest `keep` candles
    /// (and at most twice that, so trimming is rare). A copy happens only when a job still
    /// holds the previous window while a candle is added.
    pub(super) fn refresh(&mut self, series: &KlineSeries, keep: usize) {
        let keep = keep.max(1);
        let rewrites = series.counters().rewrites;
        if rewrites != self.rewrites {
            self.rewrites = rewrites;
            self.candles = Arc::new(Vec::new());
        }
        let newest = self.candles.last().map(|c| c.start_ms);
        let fresh = series
            .closed()
            .rev()
            .take_while(|c| newest.is_none_or(|n| c.bar.start_ms > n))
            .take(keep)
            .count();
        if fresh == 0 {
            return;
        }
        let v = Arc::make_mut(&mut self.candles);
        let skip = series.closed().len() - fresh;
        v.extend(series.closed().skip(skip).map(|c| Candle::from(&c.bar)));
        if v.len() > 2 * keep {
            v.drain(..v.len() - keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Dec;
    use crate::market::kline::Bar;
    use crate::wire::topic::Interval;

    fn bar(i: u64, close: i64) -> Bar {
        let p = Dec::from_int(close);
        Bar {
            start_ms: i * 60_000,
            open: p,
            high: p,
            low: p,
            close: p,
            volume: Dec::ONE,
            turnover: p,
        }
    }

    fn closes(w: &CandleWindow) -> Vec<f64> {
        w.candles.iter().map(|c| c.close).collect()
    }

    #[test]
    fn window_appends_new_candles_and_shares_the_rest() {
        let mut s = KlineSeries::new(Interval::parse("1").unwrap(), 100);
        s.merge_rest(
            &(0..5).map(|i| bar(i, i as i64)).collect::<Vec<_>>(),
            u64::MAX,
        );
        let mut w = CandleWindow::default();
        w.refresh(&s, 3);
        assert_eq!(closes(&w), vec![2.0, 3.0, 4.0]);
        let held = w.candles.clone();
        w.refresh(&s, 3);
        assert!(Arc::ptr_eq(&held, &w.candles), "no change, no copy");
        s.merge_rest(&[bar(5, 5), bar(6, 6), bar(7, 7), bar(8, 8)], u64::MAX);
        w.refresh(&s, 3);
        // A merge rewrote the series: rebuilt from its newest candles.
        assert_eq!(closes(&w), vec![6.0, 7.0, 8.0]);
        // The held window is untouched: a job reading it sees what it was given.
        assert_eq!(held.len(), 3);
        assert_eq!(held[0].close, 2.0);
    }

    #[test]
    fn window_stays_between_keep_and_twice_keep_as_candles_close() {
        let mut s = KlineSeries::new(Interval::parse("1").unwrap(), 1_000);
        let mut w = CandleWindow::default();
        for i in 0..50u64 {
            let b = bar(i, i as i64);
            let k = crate::wire::frame::KlineData {
                start: b.start_ms,
                end: Some(b.start_ms + 59_999),
                open: b.open,
                high: b.high,
                low: b.low,
                close: b.close,
                volume: b.volume,
                turnover: b.turnover,
                confirm: true,
                timestamp: None,
            };
            s.apply_live(&k);
            w.refresh(&s, 4);
            let n = w.candles.len();
            assert!(n <= 8 && (n >= 4 || n == i as usize + 1), "{n} at {i}");
            assert_eq!(w.candles.last().unwrap().close, i as f64);
            let starts: Vec<u64> = w.candles.iter().map(|c| c.start_ms).collect();
            assert!(
                starts.windows(2).all(|p| p[1] == p[0] + 60_000),
                "{starts:?}"
            );
        }
    }
}
