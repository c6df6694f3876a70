//! The engine against a scripted venue, with time moved by hand: no tokio, no sockets. Shared
//! by the engine's integration tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::time::Duration;

use keel_core::engine::link::LinkId;
use keel_core::engine::{Event, Output};
use keel_core::market::book::BookState;
use keel_core::trading::compute::{self, Work};
use keel_core::{Engine, EngineConfig, Input, Time};
use serde_json::Value;

/// A venue that answers the engine at once, and records what it was asked.
pub struct Wire {
    pub engine: Engine,
    pub now: Time,
    pub open: HashMap<LinkId, u64>,
    pub refuse: bool,
    /// Swallow everything the engine sends: no acks, no pongs, no snapshots.
    pub silent: bool,
    /// Send nothing of its own either: market frames are lost (the venue still moves on).
    pub stalled: bool,
    pub listed: Vec<String>,
    /// topic -> (u, best bid, best ask)
    pub books: HashMap<String, (u64, u64, u64)>,
    pub connects: Vec<(Time, LinkId)>,
    pub sent: Vec<String>,
    pub http: Vec<String>,
    /// Answers to hold back instead of giving at once: (id, path).
    pub held_http: Vec<(keel_core::engine::scheduler::RequestId, String)>,
    pub hold_http: bool,
    pub compute_fails: bool,
    pub hold_compute: bool,
    /// Jobs never answered (a strategy that hangs): held like `hold_compute` holds every job.
    pub hung_jobs: Vec<keel_core::engine::JobId>,
    pub held_compute: Vec<(keel_core::engine::JobId, u64, Work)>,
    pub works: Vec<Work>,
    pub events: Vec<Event>,
    pub notices: Vec<String>,
    /// How many of the notices were errors.
    pub errors: usize,
    pub fatal: Option<String>,
    /// Live trading: what was written and sent, in order ("store <link> <stage>", "send
    /// <path>"), the venue's orders by orderLinkId (id, qty) and its executions.
    pub live_log: Vec<String>,
    pub venue_orders: std::collections::BTreeMap<String, (String, String)>,
    /// Every create the venue was sent, as sent.
    pub creates: Vec<Value>,
    pub venue_execs: Vec<(String, String, String)>,
    /// The store fails every live write.
    pub store_broken: bool,
    /// Private requests are swallowed (no answer ever comes).
    pub private_silent: bool,
}

pub fn book_frame(topic: &str, kind: &str, u: u64, bid: u64, ask: u64) -> String {
    let symbol = topic.rsplit('.').next().unwrap();
    format!(
        r#"{{"topic":"{topic}","type":"{kind}","ts":1,"data":{{"s":"{symbol}","b":[["{bid}","1"]],"a":[["{ask}","1"]],"u":{u},"seq":{u}}}}}"#
    )
}

impl Wire {
    pub fn new(config: EngineConfig) -> Wire {
        let listed = config.symbols.clone();
        Wire::with_listed(config, listed)
    }

    pub fn with_listed(config: EngineConfig, listed: Vec<String>) -> Wire {
        let mut w = Wire {
            engine: Engine::new(config, Time::ZERO).expect("valid config"),
            now: Time::ZERO,
            open: HashMap::new(),
            refuse: false,
            silent: false,
            stalled: false,
            listed,
            books: HashMap::new(),
            connects: Vec::new(),
            sent: Vec::new(),
            http: Vec::new(),
            held_http: Vec::new(),
            hold_http: false,
            compute_fails: false,
            hold_compute: false,
            hung_jobs: Vec::new(),
            held_compute: Vec::new(),
            works: Vec::new(),
            events: Vec::new(),
            notices: Vec::new(),
            errors: 0,
            fatal: None,
            live_log: Vec::new(),
            venue_orders: Default::default(),
            creates: Vec::new(),
            venue_execs: Vec::new(),
            store_broken: false,
            private_silent: false,
        };
        w.pump();
        w
    }

    pub fn input(&mut self, input: Input<'_>) {
        self.engine.handle_input(self.now, input);
        self.pump();
    }

    /// Drains every output and answers it, until the engine is quiet.
    pub fn pump(&mut self) {
        let mut replies: Vec<(LinkId, u64, String)> = Vec::new();
        loop {
            let Some(o) = self.engine.poll_output() else {
                if replies.is_empty() {
                    return;
                }
                for (link, conn, text) in std::mem::take(&mut replies) {
                    if self.open.get(&link) == Some(&conn) {
                        self.engine.handle_input(
                            self.now,
                            Input::WsFrame {
                                link,
                                conn,
                                text: &text,
                            },
                        );
                    }
                }
                continue;
            };
            match o {
                Output::Connect { link, conn, .. } => {
                    self.connects.push((self.now, link));
                    if self.refuse {
                        self.engine.handle_input(
                            self.now,
                            Input::WsConnectFailed {
                                link,
                                conn,
                                error: "refused".into(),
                            },
                        );
                    } else {
                        self.open.insert(link, conn);
                        self.engine
                            .handle_input(self.now, Input::WsConnected { link, conn });
                    }
                }
                Output::Close { link, conn } => {
                    if self.open.get(&link) == Some(&conn) {
                        self.open.remove(&link);
                    }
                }
                Output::Send { link, conn, text } => {
                    self.sent.push(text.clone());
                    if self.silent {
                        continue;
                    }
                    let v: Value = serde_json::from_str(&text).unwrap();
                    let req_id = v["req_id"].as_str().unwrap_or("").to_string();
                    match v["op"].as_str().unwrap() {
                        "ping" => replies.push((
                            link,
                            conn,
                            format!(r#"{{"success":true,"ret_msg":"pong","conn_id":"c","req_id":"{req_id}","op":"ping"}}"#),
                        )),
                        "subscribe" => {
                            replies.push((
                                link,
                                conn,
                                format!(r#"{{"success":true,"ret_msg":"","conn_id":"c","req_id":"{req_id}","op":"subscribe"}}"#),
                            ));
                            for t in v["args"].as_array().unwrap() {
                                let t = t.as_str().unwrap();
                                if t.starts_with("orderbook.") {
                                    let b = self.books.entry(t.to_string()).or_insert((100, 99, 101));
                                    b.0 += 1;
                                    replies.push((link, conn, book_frame(t, "snapshot", b.0, b.1, b.2)));
                                }
                            }
                        }
                        "unsubscribe" => replies.push((
                            link,
                            conn,
                            format!(r#"{{"success":true,"ret_msg":"","conn_id":"c","req_id":"{req_id}","op":"unsubscribe"}}"#),
                        )),
                        op => panic!("unexpected op {op}"),
                    }
                }
                Output::Http { id, path, .. } => {
                    self.http.push(path.clone());
                    if self.hold_http {
                        self.held_http.push((id, path));
                    } else {
                        let body = self.answer(&path);
                        self.engine.handle_input(
                            self.now,
                            Input::HttpResponse {
                                id,
                                status: 200,
                                body,
                                wall_ms: 1_700_000_000_000,
                            },
                        );
                    }
                }
                Output::Compute { job, run, work }
                    if self.hold_compute || self.hung_jobs.contains(&job) =>
                {
                    self.works.push(work.clone());
                    self.held_compute.push((job, run, work));
                }
                Output::Compute { job, run, work } => {
                    self.works.push(work.clone());
                    let result = if self.compute_fails {
                        Err("boom".to_string())
                    } else {
                        Ok(compute::run(&work))
                    };
                    self.engine
                        .handle_input(self.now, Input::ComputeDone { job, run, result });
                }
                Output::Event(e) => self.events.push(e),
                Output::Notice(n) => {
                    self.errors += (n.level == keel_core::engine::Severity::Error) as usize;
                    self.notices.push(n.text);
                }
                Output::Heartbeat(_) | Output::Stopped => {}
                Output::Fatal(m) => self.fatal = Some(m),
                Output::Authenticate { link, conn } => replies.push((
                    link,
                    conn,
                    r#"{"success":true,"ret_msg":"","op":"auth","conn_id":"c"}"#.into(),
                )),
                Output::Store(w) => {
                    use keel_core::engine::StoreWrite;
                    let intent = match &w {
                        StoreWrite::Order(r) => {
                            self.live_log
                                .push(format!("store {} {}", r.link_id, r.stage.as_str()));
                            (r.stage == keel_core::trading::orders::Stage::Intent)
                                .then(|| r.link_id.clone())
                        }
                        StoreWrite::Fill(x) => {
                            self.live_log.push(format!("fill {}", x.exec_id));
                            None
                        }
                    };
                    if self.store_broken {
                        self.engine.handle_input(
                            self.now,
                            Input::StoreFailed {
                                error: "disk I/O error".into(),
                            },
                        );
                    } else if let Some(link_id) = intent {
                        self.engine
                            .handle_input(self.now, Input::Durable { link_id });
                    }
                }
                Output::Private(r) => {
                    self.live_log.push(format!("send {}", r.path));
                    if self.private_silent {
                        continue;
                    }
                    let body = self.private_answer(r.path, &r.payload);
                    self.engine.handle_input(
                        self.now,
                        Input::PrivateAnswer {
                            id: r.id,
                            status: 200,
                            body: &body,
                            wall_ms: 1_700_000_000_000,
                            limit: None,
                        },
                    );
                }
            }
        }
    }

    /// The venue's private API: a market order fills at once in one execution.
    pub fn private_answer(&mut self, path: &str, payload: &str) -> String {
        let ok = |result: String| {
            format!(r#"{{"retCode":0,"retMsg":"OK","result":{result},"time":1700000000000}}"#)
        };
        let param = |k: &str| {
            payload
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
        };
        match path {
            "/v5/order/create" => {
                let v: Value = serde_json::from_str(payload).unwrap();
                self.creates.push(v.clone());
                let link = v["orderLinkId"].as_str().unwrap().to_string();
                if self.venue_orders.contains_key(&link) {
                    return r#"{"retCode":110072,"retMsg":"OrderLinkedID is duplicate","result":{}}"#.into();
                }
                let id = format!("oid{}", self.venue_orders.len());
                let qty = v["qty"].as_str().unwrap().to_string();
                let exec = format!("e{}", self.venue_execs.len());
                self.venue_execs.push((exec, link.clone(), qty.clone()));
                self.venue_orders.insert(link.clone(), (id.clone(), qty));
                ok(format!(r#"{{"orderId":"{id}","orderLinkId":"{link}"}}"#))
            }
            "/v5/order/realtime" | "/v5/order/history" => {
                let rows = match param("orderLinkId")
                    .and_then(|l| self.venue_orders.get(&l).map(|o| (l.clone(), o.clone())))
                {
                    Some((l, (id, q))) => format!(
                        r#"{{"orderId":"{id}","orderLinkId":"{l}","symbol":"BTCUSDT","side":"Buy","orderStatus":"Filled","qty":"{q}","cumExecQty":"{q}"}}"#
                    ),
                    None => String::new(),
                };
                ok(format!(r#"{{"list":[{rows}],"nextPageCursor":""}}"#))
            }
            "/v5/execution/list" => {
                let want = param("orderLinkId");
                let rows: Vec<String> = self
                    .venue_execs
                    .iter()
                    .filter(|e| want.as_ref().is_none_or(|w| *w == e.1))
                    .map(|(id, l, q)| format!(
                        r#"{{"execId":"{id}","orderId":"x","orderLinkId":"{l}","symbol":"BTCUSDT","side":"Buy","execPrice":"100","execQty":"{q}","execFee":"0","execTime":"1700000000000","execType":"Trade"}}"#
                    ))
                    .collect();
                ok(format!(
                    r#"{{"list":[{}],"nextPageCursor":""}}"#,
                    rows.join(",")
                ))
            }
            "/v5/order/cancel-all" => ok(r#"{"list":[],"success":"1"}"#.into()),
            "/v5/account/wallet-balance" => ok(
                r#"{"list":[{"accountType":"UNIFIED","totalEquity":"1000","totalAvailableBalance":"1000","coin":[{"coin":"USDT","walletBalance":"1000","equity":"1000"}]}]}"#.into(),
            ),
            "/v5/position/list" => {
                // Every order here buys: the position is what the executions add up to.
                let mut size = keel_core::Dec::ZERO;
                for (_, _, q) in &self.venue_execs {
                    size = size.checked_add(keel_core::Dec::parse(q).unwrap()).unwrap();
                }
                let rows = if size.is_zero() {
                    String::new()
                } else {
                    format!(
                        r#"{{"symbol":"BTCUSDT","side":"Buy","size":"{size}","avgPrice":"100"}}"#
                    )
                };
                ok(format!(r#"{{"list":[{rows}]}}"#))
            }
            other => panic!("unexpected private path {other}"),
        }
    }

    pub fn answer(&self, path: &str) -> String {
        let env = |result: String| {
            format!(
                r#"{{"retCode":0,"retMsg":"OK","result":{result},"retExtInfo":{{}},"time":1700000000000}}"#
            )
        };
        // Every market path but the time names one symbol.
        let symbol = path
            .split("symbol=")
            .nth(1)
            .and_then(|rest| rest.split('&').next())
            .unwrap_or("");
        if path.starts_with("/v5/market/time") {
            return env(r#"{"timeSecond":"1700000000","timeNano":"1700000000250000000"}"#.into());
        }
        if path.starts_with("/v5/market/instruments-info") {
            let list = if self.listed.iter().any(|s| s == symbol) {
                format!(
                    r#"[{{"symbol":"{symbol}","status":"Trading","priceFilter":{{"tickSize":"0.5"}},"lotSizeFilter":{{"minOrderQty":"0.001"}}}}]"#
                )
            } else {
                "[]".to_string()
            };
            return env(format!(r#"{{"category":"linear","list":{list}}}"#));
        }
        if path.starts_with("/v5/market/kline") {
            // 1000 one-minute candles ending at the venue's clock (the last one still open).
            let end = 1_700_000_000_000u64 / 60_000 * 60_000;
            let rows: Vec<String> = (0..1000u64)
                .map(|i| {
                    let start = end - i * 60_000;
                    format!(r#"["{start}","1","2","0.5","1.5","10","15"]"#)
                })
                .collect();
            return env(format!(
                r#"{{"symbol":"{symbol}","category":"linear","list":[{}]}}"#,
                rows.join(",")
            ));
        }
        if path.starts_with("/v5/market/orderbook") {
            let (u, bid, ask) = self.books[&format!("orderbook.1000.{symbol}")];
            return env(format!(
                r#"{{"s":"{symbol}","b":[["{bid}","5"]],"a":[["{ask}","5"]],"ts":1,"u":{u},"seq":{u}}}"#
            ));
        }
        panic!("unexpected path {path}");
    }

    /// Moves time to `until`, stopping at every deadline on the way.
    pub fn advance_to(&mut self, until: Time) {
        for _ in 0..1_000_000 {
            match self.engine.poll_timeout() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.engine.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        self.advance_to(until);
    }

    /// The venue closes link 0's connection.
    pub fn close_link(&mut self, reason: &str) {
        let conn = self.open[&LinkId(0)];
        self.input(Input::WsClosed {
            link: LinkId(0),
            conn,
            reason: reason.into(),
        });
    }

    pub fn delta(&mut self, topic: &str, skip: u64) {
        self.delta_moving(topic, skip, 0);
    }

    /// A delta that moves the best bid and ask by `shift` ticks (deleting the old levels), so
    /// that a book that applied every update shows exactly the venue's prices.
    pub fn delta_moving(&mut self, topic: &str, skip: u64, shift: i64) {
        let symbol = topic.rsplit('.').next().unwrap().to_string();
        let b = self.books.get_mut(topic).unwrap();
        let (old_bid, old_ask) = (b.1, b.2);
        b.0 += 1 + skip;
        b.1 = (b.1 as i64 + shift).max(1) as u64;
        b.2 = b.1 + 2;
        let (u, bid, ask) = *b;
        let side = |old: u64, new: u64| {
            if old == new {
                format!(r#"["{new}","1"]"#)
            } else {
                format!(r#"["{old}","0"],["{new}","1"]"#)
            }
        };
        let text = format!(
            r#"{{"topic":"{topic}","type":"delta","ts":1,"data":{{"s":"{symbol}","b":[{}],"a":[{}],"u":{u},"seq":{u}}}}}"#,
            side(old_bid, bid),
            side(old_ask, ask)
        );
        if let Some(conn) = self.open.get(&LinkId(0)).copied()
            && !self.stalled
        {
            self.engine.handle_input(
                self.now,
                Input::WsFrame {
                    link: LinkId(0),
                    conn,
                    text: &text,
                },
            );
            self.pump();
        }
    }

    pub fn state(&self, topic: &str) -> BookState {
        let m = self.engine.market();
        m.book(m.book_id(topic).unwrap()).state()
    }
}

pub fn config(symbols: &[&str]) -> EngineConfig {
    let mut c = EngineConfig::new(
        "ws://venue/v5/public/linear",
        symbols.iter().map(|s| s.to_string()).collect(),
    );
    c.kline_interval = None;
    c.tickers = false;
    c.trades = false;
    c
}
