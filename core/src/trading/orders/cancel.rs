//! Cancel-alls, one per symbol, retried until the venue confirms each: the kill switch's and
//! the exit's (which halt trading) and a strategy's (which does not).

use std::time::Duration;

use super::*;

/// Attempts at one symbol's cancel-all before it is reported as failed.
pub const CANCEL_ALL_ATTEMPTS_MAX: u32 = 5;

#[derive(Debug, Clone)]
pub(super) struct CancelAll {
    pub(super) symbol: String,
    pub(super) req: Option<(u64, Time)>,
    pub(super) attempts: u32,
    pub(super) next_at: Option<Time>,
}

impl Orders {
    /// The kill switch: every open order of these symbols is cancelled at the venue
    /// (`cancel-all`, retried until the venue confirms it), and nothing new is placed.
    pub fn cancel_all(&mut self, now: Time, symbols: &[String], why: &str) {
        self.halt(why.to_string());
        for s in symbols {
            self.queue_cancel(now, s);
        }
        self.send_cancels(now);
    }

    /// A strategy's cancel: the symbol's open orders are cancelled at the venue (retried until
    /// it confirms), and trading goes on.
    pub fn cancel_symbol(&mut self, now: Time, symbol: &str) {
        self.queue_cancel(now, symbol);
        self.send_cancels(now);
    }

    fn queue_cancel(&mut self, now: Time, symbol: &str) {
        if !self.cancels.iter().any(|c| c.symbol == symbol) {
            self.cancels.push(CancelAll {
                symbol: symbol.to_string(),
                req: None,
                attempts: 0,
                next_at: Some(now),
            });
        }
    }

    pub(super) fn send_cancels(&mut self, now: Time) {
        for i in 0..self.cancels.len() {
            let c = &self.cancels[i];
            if c.req.is_some() || c.next_at.is_none_or(|t| now < t) {
                continue;
            }
            let body = private::cancel_all_body(CATEGORY_LINEAR, &c.symbol);
            let (id, deadline) = self.request(now, Method::Post, "/v5/order/cancel-all", body);
            let c = &mut self.cancels[i];
            c.req = Some((id, deadline));
            c.attempts += 1;
            c.next_at = None;
        }
    }

    pub(super) fn on_cancel_answer(&mut self, now: Time, i: usize, answer: Result<&str, String>) {
        let symbol = self.cancels[i].symbol.clone();
        self.cancels[i].req = None;
        let ok = match answer {
            Ok(b) => match crate::wire::rest::envelope::<serde_json::Value>(b) {
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e),
        };
        match ok {
            Ok(()) => {
                self.cancels.remove(i);
                self.note(
                    false,
                    format!("cancel-all for {symbol} confirmed by the venue"),
                );
                // What the cancels did shows in each order's next look-up.
                for o in self
                    .orders
                    .values_mut()
                    .filter(|o| o.rec.plan.symbol == symbol)
                {
                    if o.pending.is_none() {
                        o.next_at = Some(now);
                    }
                }
            }
            Err(e) if self.cancels[i].attempts >= CANCEL_ALL_ATTEMPTS_MAX => {
                self.cancels.remove(i);
                self.note(
                    true,
                    format!("cancel-all for {symbol} failed {CANCEL_ALL_ATTEMPTS_MAX} times ({e}): check the venue"),
                );
            }
            Err(_) => {
                let delay = self.config.retry_ms << self.cancels[i].attempts.min(6);
                self.cancels[i].next_at = Some(now + Duration::from_millis(delay));
            }
        }
    }
}
