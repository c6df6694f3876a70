//! Reconciliation: at every private (re)connect and periodically, the venue's executions since
//! the newest one we have, its open orders and its positions are read and compared with ours;
//! the venue is the truth, and every difference is applied and counted. No order is placed
//! until the first reconciliation of a connection has finished.

use std::time::Duration;

use super::*;

/// Pages of executions one window is read in at most (100 each): a window holding more is read
/// again as two halves, so a busy account still reconciles, a bounded number of pages at a time.
pub const RECONCILE_EXEC_PAGES_MAX: u32 = 50;
/// A window narrower than this that still holds more than the pages above is given up on
/// (trading waits, and the reconciliation is tried again).
const EXEC_WINDOW_MS_MIN: u64 = 1_000;
/// Overlap when reading executions from the cursor: a fill stamped in the same millisecond
/// as the newest one we have is read again, and applied once.
const EXEC_CURSOR_OVERLAP_MS: u64 = 1_000;

/// The longest span one execution request may cover (execution.mdx: "endTime - startTime <=
/// 7 days").
pub const EXEC_WINDOW_MS: u64 = 7 * 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Executions in the window `[from, from + span_ms]` (`from` none: the venue's default, the
    /// last 7 days), page by page; `through` is the venue's time when this reconciliation began.
    Executions {
        from: Option<u64>,
        span_ms: u64,
        through: Option<u64>,
        cursor: Option<String>,
        pages: u32,
    },
    OpenOrders {
        cursor: Option<String>,
    },
    Positions,
    Wallet,
}

impl Orders {
    pub(super) fn start_reconcile(&mut self, now: Time) {
        self.next_reconcile_at = None;
        let from = self
            .exec_cursor_ms
            .map(|c| c.saturating_sub(EXEC_CURSOR_OVERLAP_MS));
        self.issue_reconcile(
            now,
            Step::Executions {
                from,
                span_ms: EXEC_WINDOW_MS,
                through: self.venue_now_ms,
                cursor: None,
                pages: 0,
            },
        );
    }

    fn issue_reconcile(&mut self, now: Time, step: Step) {
        let cat = CATEGORY_LINEAR;
        let (path, payload) = match &step {
            Step::Executions {
                from,
                span_ms,
                cursor,
                ..
            } => {
                let mut q = format!("category={cat}&limit={}", private::EXECUTIONS_PAGE_MAX);
                if let Some(from) = from {
                    q.push_str(&format!(
                        "&startTime={from}&endTime={}",
                        from.saturating_add(*span_ms)
                    ));
                }
                private::push_cursor(&mut q, cursor.as_deref());
                ("/v5/execution/list", q)
            }
            Step::OpenOrders { cursor } => {
                let mut q = format!(
                    "category={cat}&settleCoin={}&openOnly=0&limit=50",
                    self.config.settle_coin
                );
                private::push_cursor(&mut q, cursor.as_deref());
                ("/v5/order/realtime", q)
            }
            Step::Positions => (
                "/v5/position/list",
                format!(
                    "category={cat}&settleCoin={}&limit=200",
                    self.config.settle_coin
                ),
            ),
            Step::Wallet => (
                "/v5/account/wallet-balance",
                "accountType=UNIFIED".to_string(),
            ),
        };
        let (id, deadline) = self.request(now, Method::Get, path, payload);
        self.recon = Some((step, id, deadline));
    }

    pub(super) fn on_reconcile_answer(&mut self, now: Time, answer: Result<&str, String>) {
        let Some((step, _, _)) = self.recon.take() else {
            return;
        };
        let body = match answer {
            Ok(b) => b,
            Err(e) => return self.reconcile_failed(now, e),
        };
        match step {
            Step::Executions {
                from,
                span_ms,
                through,
                pages,
                ..
            } => match private::parse_executions(body) {
                Ok(r) => {
                    for x in r.result.list {
                        self.take_exec(now, x);
                    }
                    let next = r.result.next_page_cursor;
                    let pages = pages + 1;
                    if !next.is_empty() && pages >= RECONCILE_EXEC_PAGES_MAX {
                        // Too many for one window: read it again as halves (what was read is
                        // applied once, by execId). The venue's default window has no start:
                        // it is the 7 days before the venue's time.
                        let start = from.or_else(|| through.map(|t| t.saturating_sub(span_ms)));
                        return match start {
                            Some(f) if span_ms / 2 >= EXEC_WINDOW_MS_MIN => {
                                self.note(
                                    false,
                                    format!(
                                        "reconcile: more than {} executions in {} ms from {f}: reading it in halves",
                                        RECONCILE_EXEC_PAGES_MAX as usize
                                            * private::EXECUTIONS_PAGE_MAX,
                                        span_ms
                                    ),
                                );
                                let step = Step::Executions {
                                    from: Some(f),
                                    span_ms: span_ms / 2,
                                    through,
                                    cursor: None,
                                    pages: 0,
                                };
                                self.issue_reconcile(now, step)
                            }
                            _ => {
                                self.note(true, "reconcile: more executions than one window can be read in; trying again".into());
                                self.reconcile_failed(now, "too many executions".into())
                            }
                        };
                    }
                    if !next.is_empty() {
                        let step = Step::Executions {
                            from,
                            span_ms,
                            through,
                            cursor: Some(next),
                            pages,
                        };
                        return self.issue_reconcile(now, step);
                    }
                    // The window is read; the next one, when the venue's time is past it.
                    let window_end = from.map(|f| f.saturating_add(span_ms));
                    if let (Some(end), Some(t)) = (window_end, through)
                        && end < t
                    {
                        // A narrowed window widens again: the busy stretch may be over.
                        let step = Step::Executions {
                            from: Some(end),
                            span_ms: span_ms.saturating_mul(2).min(EXEC_WINDOW_MS),
                            through,
                            cursor: None,
                            pages: 0,
                        };
                        return self.issue_reconcile(now, step);
                    }
                    // Read through the venue's time at the start: the next reconciliation
                    // begins there (executions are read again from a second before).
                    if let Some(t) = through {
                        self.exec_cursor_ms = self.exec_cursor_ms.max(Some(t));
                    }
                    self.issue_reconcile(now, Step::OpenOrders { cursor: None });
                }
                Err(e) => {
                    self.on_refused_request(now, &e);
                    self.reconcile_failed(now, e.to_string())
                }
            },
            Step::OpenOrders { .. } => match private::parse_orders(body) {
                Ok(r) => {
                    for row in r.result.list {
                        let link = row.order_link_id.clone();
                        if self.orders.contains_key(&link) {
                            self.apply_row(now, &link, row);
                        } else if !row.order_status.is_final() && self.is_ours(&link) {
                            self.counters.reconcile_diffs += 1;
                            self.note(
                                true,
                                format!(
                                    "reconcile: the venue has our order {link} ({}) open and we had it closed: following it",
                                    row.order_id
                                ),
                            );
                            self.adopt(now, row);
                        }
                    }
                    let next = r.result.next_page_cursor;
                    if next.is_empty() {
                        self.issue_reconcile(now, Step::Positions);
                    } else {
                        self.issue_reconcile(now, Step::OpenOrders { cursor: Some(next) });
                    }
                }
                Err(e) => {
                    self.on_refused_request(now, &e);
                    self.reconcile_failed(now, e.to_string())
                }
            },
            Step::Positions => match parse_positions(body) {
                Ok(rows) => {
                    self.outputs.push_back(OrdersOutput::VenuePositions(rows));
                    self.issue_reconcile(now, Step::Wallet);
                }
                Err(e) => {
                    self.on_refused_request(now, &e);
                    self.reconcile_failed(now, e.to_string())
                }
            },
            Step::Wallet => match private::parse_wallet(body) {
                Ok(r) => {
                    // keel keeps no balances of its own: the venue's are the ones shown.
                    self.outputs.push_back(OrdersOutput::VenueWallet(r.result));
                    self.counters.reconciles += 1;
                    self.reconciled = true;
                    self.next_reconcile_at =
                        Some(now + Duration::from_millis(self.config.reconcile_every_ms));
                }
                Err(e) => {
                    self.on_refused_request(now, &e);
                    self.reconcile_failed(now, e.to_string())
                }
            },
        }
    }

    /// A step failed: the reconciliation starts again after a pause; orders keep waiting for it
    /// when it was the connection's first.
    fn reconcile_failed(&mut self, now: Time, why: String) {
        self.note(false, format!("reconcile failed ({why}); trying again"));
        self.next_reconcile_at = Some(now + Duration::from_millis(self.config.poll_ms * 2));
    }

    fn is_ours(&self, link: &str) -> bool {
        link.strip_prefix(self.config.link_prefix.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    }

    /// An order of ours the venue holds open that we had no record of working: followed from
    /// now on (its fills come through executions as any other's).
    fn adopt(&mut self, now: Time, row: OrderRow) {
        let seq = row
            .order_link_id
            .rsplit('-')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let rec = OrderRecord {
            link_id: row.order_link_id.clone(),
            seq,
            plan: Plan {
                symbol: row.symbol.clone(),
                side: row.side,
                qty: row.qty.unwrap_or(Dec::ZERO),
                order_type: OrderType::Limit,
                price: None,
                time_in_force: None,
                reduce_only: false,
                reason: "adopted by reconciliation".into(),
            },
            stage: Stage::Open,
            order_id: Some(row.order_id.clone()),
            cum_qty: Dec::ZERO,
            created_ms: 0,
        };
        self.outputs.push_back(OrdersOutput::Persist(rec.clone()));
        let link = rec.link_id.clone();
        self.orders
            .insert(link.clone(), Live::new(rec, true, 1, None));
        self.apply_row(now, &link, row);
    }

    /// An execution from a push or a reconciliation: applied to the order it belongs to, or,
    /// when that order of ours has ended and the execution is new, applied as a missed fill.
    pub(super) fn take_exec(&mut self, now: Time, x: ExecRow) {
        let link = x.order_link_id.clone();
        if self.orders.contains_key(&link) {
            self.apply_exec(&link, x);
            let done = self
                .orders
                .get(&link)
                .is_some_and(|o| o.final_seen.is_some() && o.filled >= o.rec.cum_qty);
            if done {
                self.complete(&link);
            }
            return;
        }
        if !self.is_ours(&link) || x.exec_type == "Funding" {
            return;
        }
        if self.known_set.contains(&x.exec_id) {
            self.counters.duplicate_fills += 1;
            return;
        }
        self.counters.reconcile_diffs += 1;
        self.note(
            true,
            format!(
                "reconcile: execution {} of our order {link} was missing: applying it",
                x.exec_id
            ),
        );
        let _ = now;
        self.emit_fill(&link, x);
    }

    pub(super) fn remember(&mut self, id: String) {
        if self.known_set.insert(id.clone()) {
            self.known_execs.push_back(id);
            if self.known_execs.len() > KNOWN_EXECS_MAX
                && let Some(old) = self.known_execs.pop_front()
            {
                self.known_set.remove(&old);
            }
        }
    }
}

/// `GET /v5/position/list`: one-way positions, signed by side (SPEC-PRIVATE.md §7: `size` is
/// always positive, `side` is "" when flat).
fn parse_positions(text: &str) -> Result<Vec<VenuePosition>, crate::wire::rest::RestError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Row {
        symbol: String,
        #[serde(default)]
        side: String,
        #[serde(default)]
        size: String,
        #[serde(default)]
        avg_price: String,
    }
    #[derive(serde::Deserialize)]
    struct List {
        list: Vec<Row>,
    }
    let r: crate::wire::rest::Response<List> = crate::wire::rest::envelope(text)?;
    let mut out = Vec::new();
    for row in r.result.list {
        let num = |s: &str| {
            if s.is_empty() {
                Ok(Dec::ZERO)
            } else {
                Dec::parse(s).map_err(|_| crate::wire::rest::RestError::BadValue("position number"))
            }
        };
        let size = num(&row.size)?;
        if size < Dec::ZERO {
            return Err(crate::wire::rest::RestError::BadValue(
                "negative position size",
            ));
        }
        let qty = match row.side.as_str() {
            "Sell" => Dec::ZERO.checked_sub(size).unwrap_or(Dec::ZERO),
            _ => size,
        };
        out.push(VenuePosition {
            symbol: row.symbol,
            qty,
            avg_price: num(&row.avg_price)?,
        });
    }
    Ok(out)
}
