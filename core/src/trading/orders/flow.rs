//! How one order moves: sends within the limits, the answers to a create, look-ups by
//! `orderLinkId`, executions, and the end of an order's life.

use std::time::Duration;

use super::*;

impl Orders {
    pub(super) fn halt(&mut self, why: String) {
        if self.halted.is_none() {
            self.halted = Some(why.clone());
            self.outputs.push_back(OrdersOutput::Halted(why));
        }
    }

    pub(super) fn note(&mut self, error: bool, text: String) {
        self.outputs.push_back(OrdersOutput::Notice { error, text });
    }

    pub(super) fn take_pending(&mut self, id: u64) -> Option<(String, Call)> {
        let (link, o) = self
            .orders
            .iter_mut()
            .find(|(_, o)| o.pending.as_ref().is_some_and(|p| p.0 == id))?;
        let (_, call, _) = o.pending.take()?;
        Some((link.clone(), call))
    }

    pub(super) fn request(
        &mut self,
        now: Time,
        method: Method,
        path: &'static str,
        payload: String,
    ) -> (u64, Time) {
        let id = self.next_req;
        self.next_req += 1;
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        self.outputs.push_back(OrdersOutput::Request(Request {
            id,
            method,
            path,
            payload,
            recv_window_ms: self.config.recv_window_ms,
            clock_offset_ms: self.clock_offset_ms,
            timeout,
        }));
        (id, now + timeout)
    }

    pub(super) fn pause_until_wall(&mut self, now: Time, wall_ms: u64, reset_ms: u64) {
        let wait = Duration::from_millis(reset_ms.saturating_sub(wall_ms).clamp(50, 60_000));
        let until = now + wait;
        if self.paused_until.is_none_or(|t| t < until) {
            self.paused_until = Some(until);
        }
    }

    /// Sends durable orders while the window and the venue's limit allow.
    pub(super) fn send_ready(&mut self, now: Time) {
        if self.halted.is_some() || self.time_req.is_some() {
            return;
        }
        if self.paused_until.is_some_and(|t| now < t) {
            return;
        }
        while self
            .creates
            .front()
            .is_some_and(|t| now.since(*t) >= Duration::from_secs(1))
        {
            self.creates.pop_front();
        }
        while (self.creates.len() as u32) < self.config.creates_per_s_max {
            let Some(link) = self.ready.pop_front() else {
                return;
            };
            let Some(o) = self.orders.get(&link) else {
                continue;
            };
            // An orderLinkId goes out once only, whatever happens to it.
            if o.rec.stage != Stage::Ready || o.sends > 0 {
                continue;
            }
            let p = &o.rec.plan;
            let body = private::create_body(&NewOrder {
                category: CATEGORY_LINEAR,
                symbol: &p.symbol,
                side: p.side,
                order_type: p.order_type,
                qty: p.qty,
                price: p.price,
                time_in_force: p.time_in_force,
                reduce_only: p.reduce_only,
                order_link_id: &link,
            });
            let (id, deadline) = self.request(now, Method::Post, "/v5/order/create", body);
            self.creates.push_back(now);
            self.counters.sent += 1;
            if let Some(o) = self.orders.get_mut(&link) {
                o.sends += 1;
                o.sent_at = Some(now);
                o.rec.stage = Stage::Sent;
                o.pending = Some((id, Call::Create, deadline));
            }
        }
    }

    pub(super) fn on_create(
        &mut self,
        now: Time,
        link: &str,
        answer: Result<&str, String>,
        wall_ms: u64,
        limit: Option<RateLimit>,
    ) {
        let parsed = answer.map(|b| private::parse_ack(b).map(|r| r.result));
        match parsed {
            Ok(Ok(ack)) if ack.order_link_id.is_empty() || ack.order_link_id == link => {
                self.counters.acked += 1;
                let Some(o) = self.orders.get_mut(link) else {
                    return;
                };
                o.acked = true;
                o.rec.order_id = Some(ack.order_id);
                o.rec.stage = Stage::Open;
                o.next_at = Some(now + Duration::from_millis(self.config.first_look_ms));
                let rec = o.rec.clone();
                self.outputs.push_back(OrdersOutput::Persist(rec));
            }
            Ok(Err(RestError::Api { ret_code, ret_msg })) => {
                self.on_create_refused(now, link, ret_code, ret_msg, wall_ms, limit)
            }
            // A transport error, a timeout, an HTTP error, an ack for another id, an answer we
            // cannot read: the order may or may not exist.
            other => {
                self.counters.ambiguous += 1;
                let why = match other {
                    Err(e) => e,
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(_)) => "acknowledgement for another orderLinkId".into(),
                };
                self.note(
                    false,
                    format!("order {link}: outcome unknown ({why}); asking the venue"),
                );
                self.resolve(now, link);
            }
        }
    }

    pub(super) fn on_create_refused(
        &mut self,
        now: Time,
        link: &str,
        code: i64,
        msg: String,
        wall_ms: u64,
        limit: Option<RateLimit>,
    ) {
        use private::CreateRefusal;
        match private::classify_create(code) {
            // Refused before it was placed. An orderLinkId is sent once only: the order ends
            // here, and the next decision (after the pause, or on the re-read clock) is a new
            // order with a new id.
            CreateRefusal::RateLimited => {
                self.counters.rate_limited += 1;
                let reset = limit.map_or(wall_ms + 1_000, |l| l.reset_ms);
                self.pause_until_wall(now, wall_ms, reset);
                self.counters.rejected += 1;
                self.finish(
                    link,
                    Stage::Rejected(format!("not placed, rate limited: {code} {msg}")),
                );
            }
            CreateRefusal::TimeWindow => {
                self.resync_clock(now);
                self.counters.rejected += 1;
                self.finish(
                    link,
                    Stage::Rejected(format!(
                        "not placed, outside the venue's time window: {code} {msg}"
                    )),
                );
            }
            CreateRefusal::DuplicateId => {
                // Our id is already there: an earlier send arrived. Follow that order.
                self.counters.duplicate_ids += 1;
                if let Some(o) = self.orders.get_mut(link) {
                    o.acked = true;
                }
                self.resolve(now, link);
            }
            CreateRefusal::Unknown => {
                self.counters.ambiguous += 1;
                self.resolve(now, link);
            }
            CreateRefusal::Credentials => {
                self.finish(link, Stage::Rejected(format!("{code}: {msg}")));
                self.halt(format!("the venue refused our credentials ({code}: {msg})"));
            }
            CreateRefusal::Rejected(reason) => {
                // The venue refused the order; it does not exist.
                self.counters.rejected += 1;
                let why = format!("{}: {code} {msg}", reason.as_str());
                self.note(true, format!("order {link} rejected, {why}"));
                self.finish(link, Stage::Rejected(why));
            }
        }
    }

    /// Reads the venue's clock again (once at a time); sends wait for the answer.
    pub(super) fn resync_clock(&mut self, now: Time) {
        if self.time_req.is_none() {
            let (id, d) = self.request(now, Method::Get, "/v5/market/time", String::new());
            self.time_req = Some((id, d));
        }
    }

    /// A look-up or a reconciliation refused by the venue: 10002 means our clock moved since
    /// the offset was read (every signed request fails until it is read again).
    pub(super) fn on_refused_request(&mut self, now: Time, e: &RestError) {
        if let RestError::Api { ret_code, .. } = e
            && *ret_code == private::RET_CODE_TIME_WINDOW
        {
            self.resync_clock(now);
        }
    }

    /// The outcome of a send is unknown: look the order up now.
    pub(super) fn resolve(&mut self, now: Time, link: &str) {
        if let Some(o) = self.orders.get_mut(link) {
            if !o.rec.stage.is_final() && o.rec.stage != Stage::Open {
                o.rec.stage = Stage::Resolving;
            }
            o.next_at = None;
        }
        self.look_up(now, link);
    }

    pub(super) fn look_up(&mut self, now: Time, link: &str) {
        let Some(o) = self.orders.get(link) else {
            return;
        };
        if o.pending.is_some() {
            return;
        }
        // Fills the venue reported that we do not have yet come first.
        let call = if o.final_seen.is_some() || o.rec.cum_qty > o.filled {
            Call::Executions
        } else {
            Call::Realtime
        };
        self.issue(now, link, call);
    }

    pub(super) fn issue(&mut self, now: Time, link: &str, call: Call) {
        let (path, payload) = match call {
            Call::Realtime => (
                "/v5/order/realtime",
                private::order_query(CATEGORY_LINEAR, link),
            ),
            Call::History => (
                "/v5/order/history",
                private::order_query(CATEGORY_LINEAR, link),
            ),
            Call::Executions => {
                let cursor = self.orders.get(link).and_then(|o| o.cursor.clone());
                (
                    "/v5/execution/list",
                    private::executions_query(CATEGORY_LINEAR, link, cursor.as_deref()),
                )
            }
            Call::Create => return,
        };
        self.counters.lookups += 1;
        let (id, deadline) = self.request(now, Method::Get, path, payload);
        if let Some(o) = self.orders.get_mut(link) {
            o.pending = Some((id, call, deadline));
        }
    }

    /// A look-up failed: retry with a growing delay; past the bound, halt (the order stays
    /// unresolved and is looked up again after a restart).
    pub(super) fn lookup_failed(&mut self, now: Time, link: &str, why: String) {
        let (max, retry, poll) = (
            self.config.lookups_failed_max,
            self.config.retry_ms,
            self.config.poll_ms,
        );
        let Some(o) = self.orders.get_mut(link) else {
            return;
        };
        o.lookups_failed += 1;
        let n = o.lookups_failed;
        let delay = (retry << n.min(10)).min(poll * 8);
        o.next_at = Some(now + Duration::from_millis(delay));
        if n == max {
            self.halt(format!(
                "order {link}: {n} look-ups failed in a row ({why}); no new orders"
            ));
        }
    }

    pub(super) fn on_lookup(
        &mut self,
        now: Time,
        link: &str,
        call: Call,
        answer: Result<&str, String>,
    ) {
        let rows = match answer.map(private::parse_orders) {
            Ok(Ok(r)) => r.result.list,
            Ok(Err(e)) => {
                self.counters.bad_answers += 1;
                self.on_refused_request(now, &e);
                return self.lookup_failed(now, link, e.to_string());
            }
            Err(e) => return self.lookup_failed(now, link, e),
        };
        if let Some(o) = self.orders.get_mut(link) {
            o.lookups_failed = 0;
        }
        match rows.into_iter().find(|r| r.order_link_id == link) {
            Some(row) => self.apply_row(now, link, row),
            None if call == Call::Realtime => self.issue(now, link, Call::History),
            None => self.not_found(now, link),
        }
    }

    /// Neither the open orders nor the history know the order.
    pub(super) fn not_found(&mut self, now: Time, link: &str) {
        let Some(o) = self.orders.get(link) else {
            return;
        };
        if !o.acked {
            // A create still inside its receive window may yet be applied (it may be on its
            // way, or queued at the venue): look again once the window has passed. After it,
            // the venue refuses that request whatever happens, so sending the order again can
            // never make a second one, whatever the venue's rule for reusing an orderLinkId.
            let safe_at = o
                .sent_at
                .map(|t| t + Duration::from_millis(self.config.recv_window_ms + RESEND_MARGIN_MS));
            if let Some(at) = safe_at.filter(|at| now < *at) {
                if let Some(o) = self.orders.get_mut(link) {
                    o.next_at = Some(at);
                }
                return;
            }
            // Never acknowledged, and not there once its window has passed: the send was lost
            // (or never made before a crash). It is not sent again (an orderLinkId goes out
            // once only; the next decision is a new order), and its executions, if any, are the
            // last word before it is given up.
            self.note(
                false,
                format!("order {link} never reached the venue: closing it, not sending it again"),
            );
            if let Some(o) = self.orders.get_mut(link) {
                o.final_seen = Some(Stage::Rejected("never reached the venue".into()));
                o.cursor = None;
            }
            self.issue(now, link, Call::Executions);
            return;
        }
        // Acknowledged but gone (the venue restarted and cleared its lists): what it filled is
        // in the executions; the order no longer works.
        self.note(
            true,
            format!("order {link} was acknowledged but the venue has no record of it: closing it with its executions"),
        );
        if let Some(o) = self.orders.get_mut(link) {
            o.final_seen = Some(Stage::Cancelled);
            o.cursor = None;
        }
        self.issue(now, link, Call::Executions);
    }

    pub(super) fn apply_row(&mut self, now: Time, link: &str, row: OrderRow) {
        let poll = self.config.poll_ms;
        let Some(o) = self.orders.get_mut(link) else {
            return;
        };
        o.acked = true;
        o.rec.order_id = Some(row.order_id.clone());
        let cum = row.cum_exec_qty.unwrap_or(Dec::ZERO);
        let changed = cum != o.rec.cum_qty || o.rec.stage != Stage::Open;
        o.rec.cum_qty = cum;
        if row.order_status.is_final() {
            o.final_seen = Some(match row.order_status {
                OrderStatus::Filled => Stage::Filled,
                OrderStatus::Rejected => Stage::Rejected(row.reject_reason.clone()),
                _ => Stage::Cancelled,
            });
            o.cursor = None;
        } else {
            o.rec.stage = Stage::Open;
        }
        let need_fills = o.rec.cum_qty > o.filled;
        let is_final = o.final_seen.is_some();
        if changed && !is_final {
            let rec = o.rec.clone();
            self.outputs.push_back(OrdersOutput::Persist(rec));
        }
        if need_fills {
            self.issue(now, link, Call::Executions);
        } else if is_final {
            self.complete(link);
        } else if let Some(o) = self.orders.get_mut(link) {
            o.next_at = Some(now + Duration::from_millis(poll));
        }
    }

    pub(super) fn on_executions(&mut self, now: Time, link: &str, answer: Result<&str, String>) {
        let page = match answer.map(private::parse_executions) {
            Ok(Ok(r)) => r.result,
            Ok(Err(e)) => {
                self.counters.bad_answers += 1;
                self.on_refused_request(now, &e);
                return self.lookup_failed(now, link, e.to_string());
            }
            Err(e) => return self.lookup_failed(now, link, e),
        };
        for x in page.list {
            if x.order_link_id == link && x.exec_type.as_str() != "Funding" {
                self.apply_exec(link, x);
            }
        }
        let poll = self.config.poll_ms;
        let Some(o) = self.orders.get_mut(link) else {
            return;
        };
        o.lookups_failed = 0;
        if !page.next_page_cursor.is_empty() && o.cursor.as_deref() != Some(&page.next_page_cursor)
        {
            o.cursor = Some(page.next_page_cursor);
            return self.issue(now, link, Call::Executions);
        }
        o.cursor = None;
        // An order closed without a record of it: what the executions show is its fill.
        let unrecorded = matches!(o.final_seen, Some(Stage::Cancelled | Stage::Rejected(_)));
        if unrecorded && o.rec.cum_qty < o.filled {
            o.rec.cum_qty = o.filled;
            o.final_seen = Some(Stage::Cancelled);
        }
        if o.filled >= o.rec.cum_qty && o.final_seen.is_some() {
            self.complete(link);
        } else {
            // The execution list can lag the order; look again.
            o.next_at = Some(now + Duration::from_millis(poll.min(self.config.retry_ms * 2)));
        }
    }

    pub(super) fn apply_exec(&mut self, link: &str, x: ExecRow) {
        let Some(o) = self.orders.get_mut(link) else {
            return;
        };
        if o.execs.contains(&x.exec_id) || self.known_set.contains(&x.exec_id) {
            self.counters.duplicate_fills += 1;
            return;
        }
        let Some(filled) = o.filled.checked_add(x.exec_qty) else {
            self.counters.bad_answers += 1;
            return;
        };
        o.filled = filled;
        o.execs.push(x.exec_id.clone());
        self.emit_fill(link, x);
    }

    /// A new fill: out to the store and the position, and remembered by its execId.
    pub(super) fn emit_fill(&mut self, link: &str, x: ExecRow) {
        self.counters.fills += 1;
        self.remember(x.exec_id.clone());
        self.outputs.push_back(OrdersOutput::Fill(ExecRecord {
            exec_id: x.exec_id,
            link_id: link.to_string(),
            symbol: x.symbol,
            side: x.side,
            px: x.exec_price,
            qty: x.exec_qty,
            fee: x.exec_fee.unwrap_or(Dec::ZERO),
            ts_ms: u64::try_from(x.exec_time).unwrap_or(0),
        }));
    }

    pub(super) fn complete(&mut self, link: &str) {
        let stage = self
            .orders
            .get(link)
            .and_then(|o| o.final_seen.clone())
            .unwrap_or(Stage::Cancelled);
        self.finish(link, stage);
    }

    /// The order is final: its last state goes to the store after its fills, and it leaves the
    /// machine.
    pub(super) fn finish(&mut self, link: &str, stage: Stage) {
        let Some(mut o) = self.orders.remove(link) else {
            return;
        };
        self.ready.retain(|l| l != link);
        o.rec.stage = stage;
        self.outputs.push_back(OrdersOutput::Persist(o.rec));
    }
}
