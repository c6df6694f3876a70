//! The order machine's tests' counterpart: a model venue that fills market orders at once and
//! can lose, refuse or forget; a store that answers at once; and the world that runs them.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::wire::private::Side;

pub(super) fn d(s: &str) -> Dec {
    Dec::parse(s).unwrap()
}

pub(super) fn plan(symbol: &str) -> Plan {
    Plan::market(symbol, Side::Buy, d("0.02"), "test")
}

/// What the venue does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    None,
    /// Applied, but the answer is lost.
    LoseAnswer,
    /// Never arrives.
    LoseRequest,
    /// retCode 10016 without applying it.
    ServerError,
    /// retCode 10006 without applying it.
    RateLimited,
    /// retCode 10002 (outside the receive window) without applying it.
    TimeWindow,
    /// The venue restarts: its real-time list forgets every order; history and executions keep
    /// them (open-order.mdx: "this part of the data will be cleared ... but the order records
    /// will still be queried in order history").
    Forget,
}

/// A venue that fills market orders at once in two executions and keeps every order it made.
#[derive(Default)]
pub(super) struct Venue {
    pub(super) orders: BTreeMap<String, (String, Dec)>,
    pub(super) forgotten: BTreeSet<String>,
    pub(super) execs: Vec<(String, String, Dec)>,
    pub(super) creates_by_link: BTreeMap<String, u32>,
}

impl Venue {
    pub(super) fn answer(&mut self, r: &Request, fault: Fault) -> Option<(u16, String)> {
        if fault == Fault::Forget {
            let all: Vec<String> = self.orders.keys().cloned().collect();
            self.forgotten.extend(all);
        }
        match fault {
            Fault::LoseRequest => return None,
            Fault::ServerError => return Some((200, err(10016, "Server error."))),
            Fault::RateLimited => return Some((200, err(10006, "Too many visits!"))),
            Fault::TimeWindow if r.path != "/v5/market/time" => {
                return Some((
                    200,
                    err(
                        10002,
                        "invalid request, please check your server timestamp or recv_window param",
                    ),
                ));
            }
            _ => {}
        }
        let body = match r.path {
            "/v5/order/create" => {
                let v: serde_json::Value = serde_json::from_str(&r.payload).unwrap();
                let link = v["orderLinkId"].as_str().unwrap().to_string();
                let qty = d(v["qty"].as_str().unwrap());
                if self.orders.contains_key(&link) {
                    err(110072, "OrderLinkedID is duplicate")
                } else {
                    *self.creates_by_link.entry(link.clone()).or_default() += 1;
                    let id = format!("oid-{}", self.orders.len());
                    let half = Dec::from_raw(qty.raw() / 2);
                    let rest = qty.checked_sub(half).unwrap();
                    for q in [half, rest] {
                        let n = self.execs.len();
                        self.execs.push((format!("e{n}"), link.clone(), q));
                    }
                    self.orders.insert(link.clone(), (id.clone(), qty));
                    format!(
                        r#"{{"retCode":0,"retMsg":"OK","result":{{"orderId":"{id}","orderLinkId":"{link}"}},"time":1}}"#
                    )
                }
            }
            "/v5/order/realtime" | "/v5/order/history" => {
                let link = r.payload.split("orderLinkId=").nth(1).unwrap();
                let realtime = r.path == "/v5/order/realtime";
                let rows = match self.orders.get(link) {
                    Some((id, qty)) if !(realtime && self.forgotten.contains(link)) => format!(
                        r#"{{"orderId":"{id}","orderLinkId":"{link}","symbol":"BTCUSDT","side":"Buy","orderStatus":"Filled","qty":"{qty}","cumExecQty":"{qty}","avgPrice":"100"}}"#
                    ),
                    _ => String::new(),
                };
                format!(r#"{{"retCode":0,"retMsg":"OK","result":{{"list":[{rows}],"nextPageCursor":""}}}}"#)
            }
            "/v5/execution/list" => {
                let link = r.payload.split("orderLinkId=").nth(1).unwrap().split('&').next().unwrap();
                let rows: Vec<String> = self
                    .execs
                    .iter()
                    .filter(|e| e.1 == link)
                    .map(|(id, l, q)| format!(
                        r#"{{"execId":"{id}","orderId":"x","orderLinkId":"{l}","symbol":"BTCUSDT","side":"Buy","execPrice":"100","execQty":"{q}","execFee":"0.01","execTime":"5","execType":"Trade"}}"#
                    ))
                    .collect();
                format!(
                    r#"{{"retCode":0,"retMsg":"OK","result":{{"list":[{}],"nextPageCursor":""}}}}"#,
                    rows.join(",")
                )
            }
            "/v5/market/time" => r#"{"retCode":0,"retMsg":"OK","result":{"timeSecond":"1","timeNano":"1000000000"},"time":1000}"#.into(),
            other => panic!("unexpected path {other}"),
        };
        if fault == Fault::LoseAnswer {
            return None;
        }
        Some((200, body))
    }
}

pub(super) fn err(code: i64, msg: &str) -> String {
    format!(r#"{{"retCode":{code},"retMsg":"{msg}","result":{{}},"time":1}}"#)
}

/// The store as the machine sees it: the last record of each order and every fill by id.
#[derive(Default)]
pub(super) struct Store {
    pub(super) orders: BTreeMap<String, OrderRecord>,
    pub(super) fills: BTreeMap<String, ExecRecord>,
    pub(super) fills_written_twice: u32,
}

pub(super) struct World {
    pub(super) m: Orders,
    /// Creates the machine sent, per orderLinkId, over every life (whatever became of them).
    pub(super) sent_by_link: BTreeMap<String, u32>,
    pub(super) venue: Venue,
    pub(super) store: Store,
    pub(super) now: Time,
    pub(super) halts: Vec<String>,
}

impl World {
    pub(super) fn new() -> World {
        World {
            m: Orders::new(OrdersConfig::default(), 0),
            sent_by_link: BTreeMap::new(),
            venue: Venue::default(),
            store: Store::default(),
            now: Time::ZERO,
            halts: Vec::new(),
        }
    }

    /// Handles one output of the machine (or, when it has none, its next timer): the store
    /// answers at once, the venue with the next fault (then none). False when idle.
    pub(super) fn step(&mut self, faults: &mut impl Iterator<Item = Fault>) -> bool {
        match self.m.poll_output() {
            Some(OrdersOutput::Persist(rec)) => {
                let intent = rec.stage == Stage::Intent;
                let link = rec.link_id.clone();
                self.store.orders.insert(link.clone(), rec);
                if intent {
                    self.m.durable(self.now, &link);
                }
            }
            Some(OrdersOutput::Fill(x)) => {
                if self.store.fills.insert(x.exec_id.clone(), x).is_some() {
                    self.store.fills_written_twice += 1;
                }
            }
            Some(OrdersOutput::Request(r)) => {
                if r.path == "/v5/order/create" {
                    let v: serde_json::Value = serde_json::from_str(&r.payload).unwrap();
                    let link = v["orderLinkId"].as_str().unwrap().to_string();
                    *self.sent_by_link.entry(link).or_default() += 1;
                }
                let fault = faults.next().unwrap_or(Fault::None);
                // Nothing coming back leaves the machine's own deadline to end the wait.
                if let Some((status, body)) = self.venue.answer(&r, fault) {
                    self.m
                        .handle_answer(self.now, r.id, status, &body, 1_000, None)
                }
            }
            Some(OrdersOutput::Halted(h)) => self.halts.push(h),
            Some(
                OrdersOutput::Notice { .. }
                | OrdersOutput::VenuePositions(_)
                | OrdersOutput::VenueWallet(_),
            ) => {}
            None => match self.m.poll_timeout() {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.m.handle_timeout(self.now);
                    // Whatever was due is done: the next wake-up is later (a deadline left in
                    // the past spins the driver's loop).
                    if let Some(next) = self.m.poll_timeout() {
                        assert!(next > self.now, "woken again at once at {next:?}");
                    }
                }
                None => return false,
            },
        }
        true
    }

    pub(super) fn pump(&mut self, faults: &mut impl Iterator<Item = Fault>) {
        for _ in 0..10_000 {
            if !self.step(faults) {
                return;
            }
        }
        panic!("the machine never settled");
    }

    /// The process dies: a new machine on the same store.
    pub(super) fn restart(&mut self) {
        let next = self
            .store
            .orders
            .values()
            .map(|r| r.seq + 1)
            .max()
            .unwrap_or(0);
        self.m = Orders::new(OrdersConfig::default(), next);
        for rec in self.store.orders.values().filter(|r| !r.stage.is_final()) {
            let fills = self
                .store
                .fills
                .values()
                .filter(|f| f.link_id == rec.link_id)
                .cloned()
                .collect();
            self.m.resume(self.now, rec.clone(), fills);
        }
    }

    pub(super) fn check(&self) {
        for (link, n) in &self.sent_by_link {
            assert_eq!(*n, 1, "{link} was sent {n} times");
        }
        for (link, n) in &self.venue.creates_by_link {
            assert_eq!(*n, 1, "{link} was made {n} times");
            assert!(
                self.store.orders.contains_key(link),
                "{link} is not in the store"
            );
        }
        for (id, link, q) in &self.venue.execs {
            let f = self
                .store
                .fills
                .get(id)
                .unwrap_or_else(|| panic!("fill {id} of {link} lost"));
            assert_eq!(f.qty, *q);
        }
        assert_eq!(self.store.fills_written_twice, 0);
        for rec in self.store.orders.values() {
            if self.venue.orders.contains_key(&rec.link_id) {
                assert_eq!(rec.stage, Stage::Filled, "{rec:?}");
                let filled = self
                    .store
                    .fills
                    .values()
                    .filter(|f| f.link_id == rec.link_id)
                    .fold(Dec::ZERO, |a, f| a.checked_add(f.qty).unwrap());
                assert_eq!(filled, rec.cum_qty, "{rec:?}");
            }
        }
    }
}
