//! The trading machine's strategy slots: a slot's events become compute jobs, health and
//! notices, and each cycle's inputs are built once and shared.

use super::*;

impl Trading {
    pub(super) fn on_slot_event(
        &mut self,
        now: Time,
        i: usize,
        e: SlotEvent,
        market: Option<&Market>,
        usable: Option<&dyn Fn(BookId) -> bool>,
    ) {
        match e {
            SlotEvent::Run { run } => {
                let inputs = match (market, usable) {
                    (Some(m), Some(u)) => self.strategy_inputs(now, m, u),
                    _ => Arc::new(Vec::new()),
                };
                let work = Work::Strategy(StrategyRun {
                    strategy: self.slots[i].strategy.clone(),
                    inputs,
                    confidence_min: self.config.strategy.confidence_min,
                });
                self.outputs.push_back(TradingOutput::Compute {
                    job: JobId(STRATEGY_JOB_FIRST + i as u32),
                    run,
                    work,
                });
            }
            SlotEvent::Health {
                status,
                error,
                detail,
            } => {
                // A strategy that failed (a panic, an overrun, a call refused while one hangs,
                // or disabled) no longer has a say: its views are withdrawn until it answers.
                if status != Status::Running {
                    self.views[i].clear();
                }
                self.outputs.push_back(TradingOutput::StrategyHealth {
                    slot: i,
                    name: self.slots[i].name().to_string(),
                    status,
                    error,
                    detail,
                })
            }
            SlotEvent::Notice { error, text } => self.notice(
                if error {
                    Severity::Error
                } else {
                    Severity::Warn
                },
                text,
            ),
        }
    }

    /// What every strategy sees this cycle, built once per instant and shared: per symbol whose
    /// book is usable, its candle window (shared, appended to as candles close), the forming
    /// candle, the top of the book, recent trades, the position and the working orders.
    pub(super) fn strategy_inputs(
        &mut self,
        now: Time,
        market: &Market,
        usable: &dyn Fn(BookId) -> bool,
    ) -> Arc<Vec<SymbolInput>> {
        let orders = self.orders.as_ref();
        let at = [
            now.as_millis(),
            market.counters().frames,
            orders.map_or(0, |o| o.next_seq()),
            orders.map_or(0, |o| o.counters().fills),
        ];
        if let Some((built, inputs)) = &self.inputs
            && *built == at
        {
            return inputs.clone();
        }
        let keep = candles_to_keep(self.slots.iter().map(|s| s.strategy.0.warmup()));
        let n = self.config.signal_levels;
        let mut inputs = Vec::with_capacity(self.instruments.len());
        for (k, inst) in self.instruments.iter().enumerate() {
            if !usable(inst.book) {
                continue;
            }
            let b = market.book(inst.book);
            let (Ok(bids), Ok(asks)) = (b.top_bids(n), b.top_asks(n)) else {
                continue;
            };
            let (candles, forming) = match inst.series {
                Some(id) => {
                    let series = market.series(id);
                    let w = self.windows[k].get_or_insert_with(CandleWindow::default);
                    w.refresh(series, keep);
                    (
                        w.candles.clone(),
                        series.forming().map(|f| Candle::from(&f.bar)),
                    )
                }
                None => (Arc::new(Vec::new()), None),
            };
            let trades = market.last_trade(&inst.symbol).map_or_else(Vec::new, |t| {
                t.recent
                    .iter()
                    .map(|x| Trade {
                        ts_ms: x.time_ms,
                        side: x.side.into(),
                        price: x.px.to_f64(),
                        qty: x.qty.to_f64(),
                    })
                    .collect()
            });
            let position = self.broker.position(&inst.symbol);
            let open_orders = self.orders.as_ref().map_or_else(Vec::new, |o| {
                o.working()
                    .filter(|r| r.plan.symbol == inst.symbol)
                    .map(|r| OpenOrder {
                        order_link_id: r.link_id.clone(),
                        side: r.plan.side.into(),
                        qty: r.plan.qty,
                        filled: r.cum_qty,
                        price: r.plan.price,
                    })
                    .collect()
            });
            inputs.push(SymbolInput {
                symbol: inst.symbol.clone(),
                symbol_index: k,
                now_ms: b.last_ts().unwrap_or(0),
                candles,
                forming,
                bids: bids.collect(),
                asks: asks.collect(),
                trades,
                position: position.map_or(Dec::ZERO, |p| p.qty),
                entry_price: position.map_or(Dec::ZERO, |p| p.avg_entry),
                open_orders,
            });
        }
        let inputs = Arc::new(inputs);
        self.inputs = Some((at, inputs.clone()));
        inputs
    }
}
