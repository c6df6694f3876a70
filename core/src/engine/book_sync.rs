//! Book synchronisation (a time-driven machine): which books are synced, which are being
//! repaired and how, and when the next repair attempt is due.
//!
//! A book that goes out of sync is repaired by a fresh snapshot: by REST where the REST snapshot
//! continues the stream's update ids (the 1000-level book), otherwise by subscribing again on its
//! live link. Attempts back off with jitter; an answer from an older attempt is dropped. A book
//! whose link went down is `Invalid` until the link's new subscription brings a snapshot: it is
//! not repaired meanwhile, because nothing can repair it sooner. One desync is reported once.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::backoff::{Backoff, BackoffConfig};
use super::io::{Notice, Severity};
use super::link::LinkId;
use crate::market::BookId;
use crate::market::book::ResyncReason;
use crate::rng::Rng;
use crate::time::Time;

/// Never two repair attempts of one book closer than this, whatever the backoff draws.
pub const REPAIR_DELAY_MS_MIN: u64 = 100;
/// The depth whose REST snapshot continues the stream's update ids.
pub const REST_REPAIR_DEPTH: u16 = 1000;

/// Where one book stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// No snapshot yet since the link (re)subscribed.
    Invalid,
    Synced,
    /// Out of sync, with a repair under way.
    Resyncing,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Invalid => "invalid",
            SyncState::Synced => "synced",
            SyncState::Resyncing => "resyncing",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum BookSyncInput {
    /// A snapshot made the book synced (from the stream or from REST).
    Synced { book: BookId },
    /// A frame put the book out of sync.
    Desynced { book: BookId, reason: ResyncReason },
    /// The link of these books (re)opened: their snapshots come with the new subscription.
    LinkOpened { link: LinkId },
}

#[derive(Debug, Clone, PartialEq)]
pub enum BookSyncOutput {
    /// Subscribe to the book's topic again on its link.
    Resubscribe {
        book: BookId,
        link: LinkId,
    },
    /// Fetch a REST snapshot; its answer is for `attempt` only. Deltas meanwhile are held.
    FetchSnapshot {
        book: BookId,
        attempt: u32,
    },
    Notice(Notice),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookSyncCounters {
    pub desyncs: u64,
    pub repairs_resubscribe: u64,
    pub repairs_rest: u64,
    pub books_resynced: u64,
    /// Answers from an older attempt, dropped.
    pub stale_snapshots: u64,
}

#[derive(Debug, Clone)]
struct Repair {
    not_before: Time,
    attempts: u32,
    backoff: Backoff,
    /// A REST snapshot is awaited: no new attempt until it answers.
    in_flight: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    topic: Box<str>,
    link: LinkId,
    depth: u16,
    state: SyncState,
}

#[derive(Debug, Clone)]
pub struct BookSync {
    backoff: BackoffConfig,
    /// By [`BookId::index`]; books are registered densely.
    books: Vec<Option<Entry>>,
    /// Repairs under way, ordered so they go out in the same order on every run. Only these are
    /// looked at per timer: `poll_timeout` runs every turn of the driver's loop.
    repairs: BTreeMap<BookId, Repair>,
    outputs: VecDeque<BookSyncOutput>,
    counters: BookSyncCounters,
}

impl BookSync {
    pub fn new(backoff: BackoffConfig) -> Self {
        BookSync {
            backoff,
            books: Vec::new(),
            repairs: BTreeMap::new(),
            outputs: VecDeque::new(),
            counters: BookSyncCounters::default(),
        }
    }

    /// Makes `book` (named `topic`, carried by `link`) one this machine keeps in sync.
    pub fn register(&mut self, book: BookId, topic: &str, link: LinkId, depth: u16) {
        if self.books.len() <= book.index() {
            self.books.resize(book.index() + 1, None);
        }
        self.books[book.index()] = Some(Entry {
            topic: topic.into(),
            link,
            depth,
            state: SyncState::Invalid,
        });
    }

    // ----- getters -----

    pub fn state(&self, book: BookId) -> Option<SyncState> {
        self.entry(book).map(|e| e.state)
    }

    pub fn counters(&self) -> &BookSyncCounters {
        &self.counters
    }

    pub fn repairs_pending(&self) -> usize {
        self.repairs.len()
    }

    /// The link that carries `book`.
    pub fn link_of(&self, book: BookId) -> Option<LinkId> {
        self.entry(book).map(|e| e.link)
    }

    /// The books carried by `link`.
    pub fn books_of(&self, link: LinkId) -> Vec<BookId> {
        self.books
            .iter()
            .enumerate()
            .filter(|(_, e)| e.as_ref().is_some_and(|e| e.link == link))
            .map(|(i, _)| BookId::from_index(i))
            .collect()
    }

    /// Whether a REST answer for `book` and `attempt` is the one awaited.
    pub fn expects_snapshot(&self, book: BookId, attempt: u32) -> bool {
        self.repairs
            .get(&book)
            .is_some_and(|r| r.in_flight && r.attempts == attempt)
    }

    // ----- inputs -----

    pub fn handle_input(&mut self, now: Time, input: BookSyncInput) {
        match input {
            BookSyncInput::Synced { book } => {
                let Some(e) = self.books.get_mut(book.index()).and_then(Option::as_mut) else {
                    return;
                };
                e.state = SyncState::Synced;
                if self.repairs.remove(&book).is_some() {
                    let text = format!("{} synced again", e.topic);
                    self.counters.books_resynced += 1;
                    self.notice(Severity::Info, text);
                }
            }
            BookSyncInput::Desynced { book, reason } => {
                let backoff = self.backoff;
                let Some(e) = self.entry_mut(book) else {
                    return;
                };
                e.state = SyncState::Resyncing;
                let text = format!("{} out of sync ({reason:?}); repairing", e.topic);
                if self.repairs.contains_key(&book) {
                    return; // already being repaired: reported once
                }
                self.repairs.insert(
                    book,
                    Repair {
                        not_before: now,
                        attempts: 0,
                        backoff: Backoff::new(backoff),
                        in_flight: false,
                    },
                );
                self.counters.desyncs += 1;
                self.notice(Severity::Warn, text);
            }
            BookSyncInput::LinkOpened { link } => {
                for (i, e) in self.books.iter_mut().enumerate() {
                    if let Some(e) = e.as_mut().filter(|e| e.link == link) {
                        e.state = SyncState::Invalid;
                        self.repairs.remove(&BookId::from_index(i));
                    }
                }
            }
        }
    }

    /// A REST snapshot attempt answered (whatever the answer); the next attempt may follow.
    pub fn handle_snapshot_answer(&mut self, book: BookId, attempt: u32) {
        match self
            .repairs
            .get_mut(&book)
            .filter(|r| r.attempts == attempt)
        {
            Some(r) => r.in_flight = false,
            None => self.counters.stale_snapshots += 1,
        }
    }

    /// Starts every repair that is due. `link_live` says whether a link can resubscribe now.
    pub fn handle_timeout(&mut self, now: Time, rng: &mut Rng, link_live: impl Fn(LinkId) -> bool) {
        for (&book, r) in self.repairs.iter_mut() {
            if r.in_flight || r.not_before > now {
                continue;
            }
            let Some(e) = self.books.get(book.index()).and_then(Option::as_ref) else {
                continue;
            };
            r.attempts += 1;
            r.not_before = now
                + r.backoff
                    .next_delay(rng)
                    .max(Duration::from_millis(REPAIR_DELAY_MS_MIN));
            if e.depth == REST_REPAIR_DEPTH {
                r.in_flight = true;
                self.counters.repairs_rest += 1;
                let attempt = r.attempts;
                self.outputs
                    .push_back(BookSyncOutput::FetchSnapshot { book, attempt });
            } else if link_live(e.link) {
                self.counters.repairs_resubscribe += 1;
                self.outputs
                    .push_back(BookSyncOutput::Resubscribe { book, link: e.link });
            }
            // A link that is down brings fresh snapshots when it comes back.
        }
    }

    // ----- outputs -----

    /// The next output; call until `None` after every `handle_*`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<BookSyncOutput> {
        self.outputs.pop_front()
    }

    /// When the next repair attempt is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        self.repairs
            .values()
            .filter(|r| !r.in_flight)
            .map(|r| r.not_before)
            .min()
    }

    // ----- internals -----

    fn entry(&self, book: BookId) -> Option<&Entry> {
        self.books.get(book.index()).and_then(Option::as_ref)
    }

    fn entry_mut(&mut self, book: BookId) -> Option<&mut Entry> {
        self.books.get_mut(book.index()).and_then(Option::as_mut)
    }

    fn notice(&mut self, level: Severity, text: String) {
        self.outputs
            .push_back(BookSyncOutput::Notice(Notice { level, text }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(depth: u16) -> (BookSync, BookId) {
        let mut s = BookSync::new(BackoffConfig {
            delay_ms_base: 250,
            delay_ms_max: 30_000,
            reset_after_ms: 0,
        });
        let book = BookId::from_index(0);
        s.register(book, "orderbook.50.BTCUSDT", LinkId(0), depth);
        (s, book)
    }

    fn drain(s: &mut BookSync) -> Vec<BookSyncOutput> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    fn gap() -> ResyncReason {
        ResyncReason::Gap {
            expected: 2,
            got: 5,
        }
    }

    #[test]
    fn a_desync_is_reported_once_and_repaired_by_resubscribing() {
        let (mut s, book) = machine(50);
        let mut rng = Rng::new(1);
        s.handle_input(Time::ZERO, BookSyncInput::Synced { book });
        s.handle_input(
            Time::ZERO,
            BookSyncInput::Desynced {
                book,
                reason: gap(),
            },
        );
        s.handle_input(
            Time::ZERO,
            BookSyncInput::Desynced {
                book,
                reason: gap(),
            },
        );
        let out = drain(&mut s);
        assert_eq!(out.len(), 1, "one notice for one desync: {out:?}");
        assert_eq!(s.state(book), Some(SyncState::Resyncing));
        assert_eq!(s.poll_timeout(), Some(Time::ZERO));
        s.handle_timeout(Time::ZERO, &mut rng, |_| true);
        assert_eq!(
            drain(&mut s),
            [BookSyncOutput::Resubscribe {
                book,
                link: LinkId(0)
            }]
        );
        let next = s.poll_timeout().expect("a next attempt is scheduled");
        assert!(next >= Time::from_millis(REPAIR_DELAY_MS_MIN));
        s.handle_input(next, BookSyncInput::Synced { book });
        assert_eq!(s.state(book), Some(SyncState::Synced));
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.counters().books_resynced, 1);
    }

    #[test]
    fn a_deep_book_is_repaired_by_rest_and_older_answers_are_not_expected() {
        let (mut s, book) = machine(REST_REPAIR_DEPTH);
        let mut rng = Rng::new(1);
        s.handle_input(
            Time::ZERO,
            BookSyncInput::Desynced {
                book,
                reason: gap(),
            },
        );
        drain(&mut s);
        s.handle_timeout(Time::ZERO, &mut rng, |_| true);
        assert_eq!(
            drain(&mut s),
            [BookSyncOutput::FetchSnapshot { book, attempt: 1 }]
        );
        assert_eq!(
            s.poll_timeout(),
            None,
            "nothing new while the snapshot is awaited"
        );
        assert!(s.expects_snapshot(book, 1));
        assert!(!s.expects_snapshot(book, 2));
        s.handle_snapshot_answer(book, 1);
        assert!(!s.expects_snapshot(book, 1));
        let next = s
            .poll_timeout()
            .expect("another attempt after a failed one");
        s.handle_timeout(next, &mut rng, |_| true);
        assert_eq!(
            drain(&mut s),
            [BookSyncOutput::FetchSnapshot { book, attempt: 2 }]
        );
        s.handle_snapshot_answer(book, 1);
        assert_eq!(s.counters().stale_snapshots, 1);
    }

    #[test]
    fn a_book_whose_link_is_down_waits_for_the_link_instead_of_resubscribing() {
        let (mut s, book) = machine(50);
        let mut rng = Rng::new(1);
        s.handle_input(
            Time::ZERO,
            BookSyncInput::Desynced {
                book,
                reason: gap(),
            },
        );
        drain(&mut s);
        s.handle_timeout(Time::ZERO, &mut rng, |_| false);
        assert!(drain(&mut s).is_empty());
        s.handle_input(
            Time::from_secs(1),
            BookSyncInput::LinkOpened { link: LinkId(0) },
        );
        assert_eq!(s.state(book), Some(SyncState::Invalid));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn backoff_spaces_attempts_and_never_goes_below_the_floor() {
        let (mut s, book) = machine(50);
        let mut rng = Rng::new(7);
        s.handle_input(
            Time::ZERO,
            BookSyncInput::Desynced {
                book,
                reason: gap(),
            },
        );
        drain(&mut s);
        let mut now = Time::ZERO;
        let mut last = None;
        for _ in 0..20 {
            s.handle_timeout(now, &mut rng, |_| true);
            assert_eq!(drain(&mut s).len(), 1);
            let next = s.poll_timeout().unwrap();
            assert!(next.since(now) >= Duration::from_millis(REPAIR_DELAY_MS_MIN));
            assert!(next.since(now) <= Duration::from_millis(30_000));
            if let Some(l) = last {
                assert!(next > l);
            }
            last = Some(next);
            now = next;
        }
    }
}
