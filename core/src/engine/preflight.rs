//! Pre-flight (a machine driven by REST answers): before anything connects, ask the venue for
//! its time (the clock skew) and check that every configured symbol is listed (and learn its lot
//! step). A failure ends the run with a message that says what is wrong.

use std::collections::VecDeque;

use super::config::Category;
use super::io::{Notice, Severity};
use crate::decimal::Dec;
use crate::wire::rest;

/// What a pre-flight request asks.
/// A venue clock further than this from ours is not a clock: pre-flight fails.
pub const CLOCK_SKEW_MS_MAX: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Time,
    Instrument { symbol: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum PreflightOutput {
    Request {
        path: String,
        ask: Ask,
    },
    Notice(Notice),
    /// Every check passed: connect.
    Passed,
    /// A check failed: the engine cannot run.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Idle,
    Time,
    Instruments { left: usize },
    Passed,
    Failed,
}

#[derive(Debug, Clone)]
pub struct Preflight {
    category: Category,
    symbols: Vec<String>,
    step: Step,
    clock_skew_ms: Option<i64>,
    venue_time_ms: Option<u64>,
    /// Lot sizes from instruments-info, by symbol in configuration order.
    qty_steps: Vec<Option<Dec>>,
    /// Price ticks from instruments-info, likewise.
    tick_sizes: Vec<Option<Dec>>,
    /// Smallest order sizes from instruments-info, likewise.
    min_qtys: Vec<Option<Dec>>,
    outputs: VecDeque<PreflightOutput>,
}

impl Preflight {
    pub fn new(category: Category, symbols: Vec<String>) -> Self {
        Preflight {
            category,
            qty_steps: vec![None; symbols.len()],
            tick_sizes: vec![None; symbols.len()],
            min_qtys: vec![None; symbols.len()],
            symbols,
            step: Step::Idle,
            clock_skew_ms: None,
            venue_time_ms: None,
            outputs: VecDeque::new(),
        }
    }

    // ----- getters -----

    pub fn clock_skew_ms(&self) -> Option<i64> {
        self.clock_skew_ms
    }

    /// The venue's clock as its time answer gave it (ms).
    pub fn venue_time_ms(&self) -> Option<u64> {
        self.venue_time_ms
    }

    pub fn is_running(&self) -> bool {
        matches!(self.step, Step::Time | Step::Instruments { .. })
    }

    pub fn passed(&self) -> bool {
        self.step == Step::Passed
    }

    /// The lot step of the `i`-th configured symbol, if the venue gave one.
    pub fn qty_step(&self, i: usize) -> Option<Dec> {
        self.qty_steps.get(i).copied().flatten()
    }

    /// The price tick of the `i`-th configured symbol, if the venue gave one.
    pub fn tick_size(&self, i: usize) -> Option<Dec> {
        self.tick_sizes.get(i).copied().flatten()
    }

    /// The smallest order size of the `i`-th configured symbol, if the venue gave one.
    pub fn min_order_qty(&self, i: usize) -> Option<Dec> {
        self.min_qtys.get(i).copied().flatten()
    }

    // ----- inputs -----

    pub fn start(&mut self) {
        if self.step != Step::Idle {
            return;
        }
        self.step = Step::Time;
        self.notice(
            Severity::Info,
            "pre-flight 1/3: asking the venue for its time".into(),
        );
        self.outputs.push_back(PreflightOutput::Request {
            path: "/v5/market/time".into(),
            ask: Ask::Time,
        });
    }

    /// The answer to `ask`: a body, or why there is none. `wall_ms` is the runtime's wall clock
    /// when the answer arrived.
    pub fn handle_answer(
        &mut self,
        ask: Ask,
        result: Result<String, String>,
        wall_ms: Option<u64>,
    ) {
        match (ask, self.step) {
            (Ask::Time, Step::Time) => {
                match result.and_then(|b| rest::parse_time(&b).map_err(|e| e.to_string())) {
                    Ok(r) => self.on_time(r.result, wall_ms),
                    Err(e) => self.fail(format!(
                        "pre-flight: the venue's time could not be read: {e}"
                    )),
                }
            }
            (Ask::Instrument { symbol }, Step::Instruments { left }) => {
                let page =
                    result.and_then(|b| rest::parse_instruments(&b).map_err(|e| e.to_string()));
                let Some(i) = self.symbols.iter().position(|s| *s == symbol) else {
                    return;
                };
                match page {
                    Ok(p) => match p.result.instruments.iter().find(|x| x.symbol == symbol) {
                        Some(found) => {
                            self.qty_steps[i] = found.qty_step;
                            self.tick_sizes[i] = found.tick_size;
                            self.min_qtys[i] = found.min_order_qty;
                            self.on_listed(left);
                        }
                        None => self.fail(format!(
                            "unknown symbol {symbol}: the venue does not list it in category {}",
                            self.category.as_str()
                        )),
                    },
                    Err(e) => self.fail(format!(
                        "pre-flight: instruments for {symbol} could not be read: {e}"
                    )),
                }
            }
            // An answer for a step already over (after a failure): nothing to do.
            _ => {}
        }
    }

    // ----- outputs -----

    /// The next output; call until `None` after every `handle_*`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<PreflightOutput> {
        self.outputs.pop_front()
    }

    // ----- internals -----

    fn on_time(&mut self, venue_ms: u64, wall_ms: Option<u64>) {
        self.venue_time_ms = Some(venue_ms);
        // Saturating: an absurd venue time must not overflow the figure.
        self.clock_skew_ms = wall_ms.map(|w| {
            (venue_ms as i128 - w as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
        });
        if let Some(s) = self
            .clock_skew_ms
            .filter(|s| s.unsigned_abs() > CLOCK_SKEW_MS_MAX as u64)
        {
            return self.fail(format!(
                "pre-flight: the venue's clock is {s} ms from ours (more than {CLOCK_SKEW_MS_MAX} ms): refusing to run on it"
            ));
        }
        let skew = self
            .clock_skew_ms
            .map_or("unknown".to_string(), |s| format!("{s} ms"));
        self.notice(
            Severity::Info,
            format!("pre-flight 1/3: venue time ok, clock skew {skew}"),
        );
        self.notice(
            Severity::Info,
            format!(
                "pre-flight 2/3: checking {} symbol(s) exist on the venue",
                self.symbols.len()
            ),
        );
        self.step = Step::Instruments {
            left: self.symbols.len(),
        };
        for s in &self.symbols {
            self.outputs.push_back(PreflightOutput::Request {
                path: format!(
                    "/v5/market/instruments-info?category={}&symbol={s}",
                    self.category.as_str()
                ),
                ask: Ask::Instrument { symbol: s.clone() },
            });
        }
    }

    fn on_listed(&mut self, left: usize) {
        let left = left.saturating_sub(1);
        self.step = Step::Instruments { left };
        if left > 0 {
            return;
        }
        self.notice(
            Severity::Info,
            "pre-flight 2/3: every symbol is listed".into(),
        );
        self.notice(
            Severity::Info,
            "pre-flight 3/3: connecting and subscribing".into(),
        );
        self.step = Step::Passed;
        self.outputs.push_back(PreflightOutput::Passed);
    }

    fn fail(&mut self, message: String) {
        self.step = Step::Failed;
        self.outputs.push_back(PreflightOutput::Failed(message));
    }

    fn notice(&mut self, level: Severity, text: String) {
        self.outputs
            .push_back(PreflightOutput::Notice(Notice { level, text }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(p: &mut Preflight) -> Vec<PreflightOutput> {
        std::iter::from_fn(|| p.poll_output())
            .filter(|o| !matches!(o, PreflightOutput::Notice(_)))
            .collect()
    }

    const TIME: &str = r#"{"retCode":0,"retMsg":"OK","result":{"timeSecond":"1700000000","timeNano":"1700000000000000000"},"time":1700000000123}"#;

    fn instruments(symbol: &str) -> String {
        format!(
            r#"{{"retCode":0,"retMsg":"OK","result":{{"category":"linear","list":[{{"symbol":"{symbol}","status":"Trading","priceFilter":{{"tickSize":"0.10"}},"lotSizeFilter":{{"qtyStep":"0.001"}}}}]}},"time":1}}"#
        )
    }

    #[test]
    fn time_then_every_symbol_then_passed() {
        let mut p = Preflight::new(Category::Linear, vec!["BTCUSDT".into(), "ETHUSDT".into()]);
        p.start();
        assert!(matches!(
            &drain(&mut p)[..],
            [PreflightOutput::Request { ask: Ask::Time, .. }]
        ));
        p.handle_answer(Ask::Time, Ok(TIME.into()), Some(1_700_000_000_000));
        let asks = drain(&mut p);
        assert_eq!(asks.len(), 2);
        assert!(p.clock_skew_ms().is_some());
        for s in ["ETHUSDT", "BTCUSDT"] {
            p.handle_answer(
                Ask::Instrument { symbol: s.into() },
                Ok(instruments(s)),
                None,
            );
        }
        assert_eq!(drain(&mut p), [PreflightOutput::Passed]);
        assert!(p.passed());
        assert_eq!(p.qty_step(0), Some("0.001".parse().unwrap()));
    }

    #[test]
    fn a_symbol_the_venue_does_not_list_fails_by_name() {
        let mut p = Preflight::new(Category::Linear, vec!["NOPEUSDT".into()]);
        p.start();
        p.handle_answer(Ask::Time, Ok(TIME.into()), None);
        drain(&mut p);
        p.handle_answer(
            Ask::Instrument {
                symbol: "NOPEUSDT".into(),
            },
            Ok(instruments("BTCUSDT")),
            None,
        );
        match &drain(&mut p)[..] {
            [PreflightOutput::Failed(m)] => assert!(m.contains("unknown symbol NOPEUSDT"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(!p.is_running());
    }

    #[test]
    fn an_absurd_venue_time_saturates_and_fails_preflight() {
        let mut p = Preflight::new(Category::Linear, vec!["BTCUSDT".into()]);
        p.start();
        drain(&mut p);
        let absurd = r#"{"retCode":0,"retMsg":"OK","result":{"timeSecond":"18446744073709551615"},"time":1}"#;
        p.handle_answer(Ask::Time, Ok(absurd.into()), Some(1_700_000_000_000));
        match &drain(&mut p)[..] {
            [PreflightOutput::Failed(m)] => assert!(m.contains("clock"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(
            p.clock_skew_ms().is_some_and(|s| s > 0),
            "saturated, not wrapped"
        );
    }

    #[test]
    fn an_unreadable_time_fails_and_later_answers_change_nothing() {
        let mut p = Preflight::new(Category::Linear, vec!["BTCUSDT".into()]);
        p.start();
        drain(&mut p);
        p.handle_answer(Ask::Time, Err("HTTP 503".into()), None);
        assert!(matches!(&drain(&mut p)[..], [PreflightOutput::Failed(_)]));
        p.handle_answer(Ask::Time, Ok(TIME.into()), None);
        assert!(drain(&mut p).is_empty());
    }
}
