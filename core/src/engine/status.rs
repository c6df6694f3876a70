//! What the engine reports about itself (a time-driven machine with two timers): the periodic
//! health refresh (books synced and fresh, links, the REST pause), the heartbeat line, and the
//! throttle on top-of-book events. It reads the other machines and writes only [`Health`].

use std::time::Duration;

use super::health::{ComponentId, Health, Overall, Status};
use super::io::Heartbeat;
use super::link::{Link, LinkState};
use crate::market::book::BookState;
use crate::market::{BookId, Market};
use crate::time::Time;

/// Consumers that dropped events are back to running after this long without a drop.
pub const CONSUMERS_RECOVER_AFTER_MS: u64 = 30_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    pub heartbeat_interval_ms: u64,
    pub health_tick_ms: u64,
    /// A critical component out of service this long makes the bot down.
    pub down_after_ms: u64,
    /// At most one top-of-book event per book per this interval.
    pub book_event_interval_ms: u64,
}

#[derive(Debug, Clone)]
pub struct StatusMonitor {
    config: StatusConfig,
    started: Time,
    next_health_tick: Time,
    next_heartbeat: Time,
    /// Frames counted at the last heartbeat, and when it was.
    hb_frames: u64,
    hb_at: Time,
    loop_lag_max: Duration,
    /// When each book (by [`BookId::index`]) last sent a top-of-book event.
    book_event_at: Vec<Option<Time>>,
}

impl StatusMonitor {
    pub fn new(config: StatusConfig, now: Time) -> Self {
        StatusMonitor {
            next_health_tick: now,
            next_heartbeat: now + Duration::from_millis(config.heartbeat_interval_ms),
            config,
            started: now,
            hb_frames: 0,
            hb_at: now,
            loop_lag_max: Duration::ZERO,
            book_event_at: Vec::new(),
        }
    }

    pub fn started(&self) -> Time {
        self.started
    }

    pub fn overall(&self, health: &Health, now: Time) -> Overall {
        health.overall(now, Duration::from_millis(self.config.down_after_ms))
    }

    pub fn note_loop_lag(&mut self, lag: Duration) {
        self.loop_lag_max = self.loop_lag_max.max(lag);
    }

    /// Whether `book` may send a top-of-book event now; if so, its clock restarts.
    pub fn top_event_due(&mut self, now: Time, book: BookId) -> bool {
        let i = book.index();
        if self.book_event_at.len() <= i {
            self.book_event_at.resize(i + 1, None);
        }
        let interval = Duration::from_millis(self.config.book_event_interval_ms);
        let due = self.book_event_at[i].is_none_or(|t| now.since(t) >= interval);
        if due {
            self.book_event_at[i] = Some(now);
        }
        due
    }

    pub fn health_due(&self, now: Time) -> bool {
        now >= self.next_health_tick
    }

    /// Refreshes market, consumer, link and REST health from the machines that own them.
    /// `on_live_link` says whether a book's link is live: a book whose link is not is stale,
    /// whatever its last frame.
    #[allow(clippy::too_many_arguments)] // the machines it reads, each by reference
    pub fn refresh(
        &mut self,
        now: Time,
        health: &mut Health,
        market: &Market,
        links: &[Link],
        on_live_link: &dyn Fn(BookId) -> bool,
        rest_paused_until: Option<Time>,
        consumer_drops: u64,
    ) {
        self.next_health_tick = now + Duration::from_millis(self.config.health_tick_ms);
        let mut unsynced = Vec::new();
        let mut stale = Vec::new();
        for id in market.book_ids() {
            let b = market.book(id);
            let topic = market.book_topic(id);
            if b.state() != BookState::Synced {
                unsynced.push(topic.to_string());
            }
            if let Some(t) = market.book_last_frame_at(id)
                && (now.since(t) > stale_after(b.depth()) || !on_live_link(id))
            {
                stale.push(topic.to_string());
            }
        }
        // Books are registered before their first frame: until one arrives, the market is
        // starting, not degraded.
        let status = if market
            .book_ids()
            .all(|b| market.book_last_frame_at(b).is_none())
        {
            Status::Starting
        } else if unsynced.is_empty() && stale.is_empty() {
            Status::Running
        } else {
            Status::Degraded
        };
        health.set(ComponentId::Market, status, now);
        let mut detail = Vec::new();
        if !unsynced.is_empty() {
            detail.push(format!("not synced: {}", unsynced.join(",")));
        }
        if !stale.is_empty() {
            detail.push(format!("stale: {}", stale.join(",")));
        }
        health.set_detail(ComponentId::Market, detail.join("; "));
        let quiet = Duration::from_millis(CONSUMERS_RECOVER_AFTER_MS);
        if consumer_drops > 0
            && health.get(ComponentId::Consumers).is_some_and(|c| {
                c.status == Status::Degraded
                    && now.since(c.since) > quiet
                    && c.last_error
                        .as_ref()
                        .is_some_and(|(_, t)| now.since(*t) > quiet)
            })
        {
            health.set(ComponentId::Consumers, Status::Running, now);
        }
        for l in links {
            let detail = match l.state() {
                LinkState::Open if l.is_live() => "live".to_string(),
                LinkState::Open => "subscribing".to_string(),
                LinkState::Waiting { until } => {
                    format!("reconnecting in {} ms", until.since(now).as_millis())
                }
                LinkState::Connecting { .. } => "connecting".to_string(),
                LinkState::Idle => "idle".to_string(),
                LinkState::Stopped => "stopped".to_string(),
            };
            health.set_detail(ComponentId::Link(l.id()), detail);
        }
        let rest = match rest_paused_until {
            Some(until) => format!("paused by 403 for {} s more", until.since(now).as_secs()),
            None => String::new(),
        };
        health.set_detail(ComponentId::Rest, rest);
    }

    pub fn heartbeat_due(&self, now: Time) -> bool {
        now >= self.next_heartbeat
    }

    /// The heartbeat line: figures since the last one.
    pub fn heartbeat(
        &mut self,
        now: Time,
        health: &Health,
        market: &Market,
        frames: u64,
        reconnects: u64,
    ) -> Heartbeat {
        let elapsed = now.since(self.hb_at).as_secs_f64().max(1e-9);
        let hb = Heartbeat {
            uptime: now.since(self.started),
            status: self.overall(health, now),
            symbols: market.book_ids().count(),
            synced_books: market
                .book_ids()
                .filter(|b| market.book(*b).state() == BookState::Synced)
                .count(),
            frames_per_s: (frames - self.hb_frames) as f64 / elapsed,
            reconnects,
            loop_lag_max: self.loop_lag_max,
        };
        self.hb_frames = frames;
        self.hb_at = now;
        self.loop_lag_max = Duration::ZERO;
        self.next_heartbeat = now + Duration::from_millis(self.config.heartbeat_interval_ms);
        hb
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Time {
        self.next_health_tick.min(self.next_heartbeat)
    }
}

/// A stream is stale when it has been silent for many of its push intervals (Bybit: level 1
/// every 10 ms, 50 every 20 ms, 200 every 100 ms, 1000 every 200 ms).
pub fn stale_after(depth: usize) -> Duration {
    let push_ms = match depth {
        1 => 10,
        0..=50 => 20,
        51..=200 => 100,
        _ => 200,
    };
    Duration::from_millis((push_ms * 100).max(5_000))
}
