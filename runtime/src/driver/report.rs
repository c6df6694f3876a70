//! What the engine tells the outside, fanned out without waiting on anyone: events to the
//! store, the ops API and the consumers; notices and heartbeats to the log; and alerts (health
//! changes, the kill switch, errors, heartbeats) to the notifier.

use std::sync::Arc;

use keel_core::engine::{Event, Heartbeat, Notice, Severity};

use super::Driver;

impl Driver {
    pub(super) fn on_event(&mut self, e: Event) {
        if let Some(st) = self.store.as_mut() {
            use crate::store::StoreCmd;
            let cmd = match &e {
                Event::StrategySignals(s) => Some(StoreCmd::Signals(s.clone())),
                Event::CandleClosed {
                    symbol,
                    interval,
                    candle,
                } => Some(StoreCmd::Candle {
                    symbol: symbol.clone(),
                    interval: *interval,
                    bar: candle.bar,
                }),
                _ => None,
            };
            // Signals and candles give way to order writes: behind held writes, or
            // on a full queue, they are dropped and counted.
            if let Some(cmd) = cmd
                && (!st.held.is_empty() || st.tx.try_send(cmd).is_err())
            {
                st.dropped += 1;
            }
        }
        if let Some(api) = &self.api {
            let mut a = api.lock().unwrap_or_else(|p| p.into_inner());
            match &e {
                Event::StrategySignals(s) => a.push_signals(s),
                Event::KillSwitch { reason } => a.kill_switch = Some(reason.clone()),
                _ => {}
            }
        }
        if let Event::KillSwitch { reason } = &e {
            self.alert(crate::alerts::AlertKind::KillSwitch, reason);
        }
        let e = Arc::new(e);
        for c in &self.consumers {
            if c.tx.try_send(e.clone()).is_err() {
                self.dropped_unreported += 1;
            }
        }
    }

    pub(super) fn on_notice(&mut self, n: Notice) {
        match n.level {
            Severity::Info => tracing::info!("{}", n.text),
            Severity::Warn => tracing::warn!("{}", n.text),
            Severity::Error => {
                tracing::error!("{}", n.text);
                self.alert(crate::alerts::AlertKind::Error, &n.text);
            }
        }
    }

    pub(super) fn on_heartbeat(&mut self, h: Heartbeat) {
        tracing::info!(
            uptime_s = h.uptime.as_secs(),
            status = h.status.as_str(),
            symbols = h.symbols,
            synced_books = h.synced_books,
            frames_per_s = format!("{:.1}", h.frames_per_s),
            reconnects = h.reconnects,
            loop_lag_max_ms = format!("{:.2}", h.loop_lag_max.as_secs_f64() * 1e3),
            "heartbeat"
        );
        if self.alerts.heartbeat {
            let text = format!(
                "heartbeat: up {} s, {}/{} books synced, {:.0} frames/s, {} reconnects, loop lag max {:.2} ms",
                h.uptime.as_secs(),
                h.synced_books,
                h.symbols,
                h.frames_per_s,
                h.reconnects,
                h.loop_lag_max.as_secs_f64() * 1e3
            );
            self.alert(crate::alerts::AlertKind::Heartbeat, &text);
        }
    }

    pub(super) fn alert(&self, kind: crate::alerts::AlertKind, text: &str) {
        let now = self.now();
        let status = self.engine.overall(now).as_str();
        self.alerts
            .offer(kind, text, status, (self.config.wall_ms)());
    }

    /// Alerts a change of the overall health, naming the components at fault. The first
    /// reading is where a run starts, not a change (a start is degraded until the books sync;
    /// its "-> ok" says the bot is up); a run that is stopping takes its links down on purpose.
    pub(super) fn alert_on_health_change(&mut self, overall: keel_core::engine::health::Overall) {
        if self.alerted_overall == Some(overall) || !self.engine.is_running() {
            return;
        }
        if let Some(was) = self.alerted_overall.replace(overall) {
            let why: Vec<String> = self
                .engine
                .health()
                .components()
                .filter(|(_, c)| c.status != keel_core::engine::health::Status::Running)
                .map(|(id, c)| (self.engine.health().name(id), c))
                .map(|(name, c)| match &c.last_error {
                    Some((e, _)) => format!("{name} {} ({e})", c.status.as_str()),
                    None => format!("{name} {}", c.status.as_str()),
                })
                .collect();
            let mut text = format!("health {} -> {}", was.as_str(), overall.as_str());
            if !why.is_empty() {
                text = format!("{text}: {}", why.join(", "));
            }
            self.alert(crate::alerts::AlertKind::Health, &text);
        }
    }
}
