use super::*;
use crate::engine::budget::BudgetConfig;

struct Rig {
    link: Link,
    budget: ConnectBudget,
    rng: Rng,
}

impl Rig {
    fn new(topics: &[&str]) -> Rig {
        let mut cfg = LinkConfig::new("ws://venue/v5/public/linear");
        cfg.args_per_request_max = 2;
        Rig {
            link: Link::new(
                LinkId(0),
                cfg,
                topics.iter().map(|t| t.to_string()).collect(),
            ),
            budget: ConnectBudget::new(BudgetConfig::default()),
            rng: Rng::new(9),
        }
    }
    fn tick(&mut self, now: Time) -> Vec<LinkOutput> {
        self.link
            .handle_timeout(now, &mut self.budget, &mut self.rng);
        self.drain()
    }
    fn drain(&mut self) -> Vec<LinkOutput> {
        std::iter::from_fn(|| self.link.poll_output()).collect()
    }
    fn open(&mut self, now: Time) -> Vec<LinkOutput> {
        self.link.start(now);
        let out = self.tick(now);
        assert!(matches!(out[..], [LinkOutput::Connect { .. }]), "{out:?}");
        let conn = self.link.conn();
        self.link.handle_connected(now, conn);
        self.drain()
    }
}

fn ack(req_id: &str, success: bool, msg: &str) -> Control {
    Control::Ack(Ack {
        op: "subscribe".into(),
        success,
        ret_msg: msg.into(),
        req_id: Some(req_id.into()),
        conn_id: None,
        failed_topics: msg
            .split_once("topic:")
            .map(|(_, t)| vec![t.to_string()])
            .unwrap_or_default(),
    })
}

fn sends(out: &[LinkOutput]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            LinkOutput::Send { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn subscriptions_go_out_in_batches_within_the_args_limit() {
    let mut r = Rig::new(&["a.1.X", "b.1.X", "c.1.X"]);
    let out = r.open(Time::ZERO);
    let s = sends(&out);
    assert_eq!(s.len(), 2);
    assert!(s[0].contains(r#""args":["a.1.X","b.1.X"]"#), "{}", s[0]);
    assert!(s[1].contains(r#""args":["c.1.X"]"#), "{}", s[1]);
    assert!(!r.link.is_live());
    r.link
        .handle_control(Time::ZERO, &mut Rng::new(1), &ack("sub-1-1", true, ""));
    r.link
        .handle_control(Time::ZERO, &mut Rng::new(1), &ack("sub-1-2", true, ""));
    assert!(r.drain().contains(&LinkOutput::Live));
    assert!(r.link.is_live());
}

#[test]
fn failed_ack_fails_that_topic_visibly_without_a_retry_storm() {
    let mut r = Rig::new(&["orderbook.500.X", "tickers.X"]);
    r.open(Time::ZERO);
    r.link.handle_control(
        Time::ZERO,
        &mut Rng::new(1),
        &ack(
            "sub-1-1",
            false,
            "error:handler not found,topic:orderbook.500.X",
        ),
    );
    let out = r.drain();
    assert!(out.contains(&LinkOutput::SubscribeFailed {
        topics: vec!["orderbook.500.X".into()],
        message: "error:handler not found,topic:orderbook.500.X".into()
    }));
    assert!(r.link.is_live(), "the other topic is active");
    assert_eq!(r.link.subscriptions()[1].state, SubState::Active);
    // Nothing is sent again for the failed topic, now or on later timers.
    let later = r.tick(Time::from_secs(5));
    assert!(sends(&later).is_empty());
    assert!(!r.link.resubscribe(Time::from_secs(5), "orderbook.500.X"));
}

#[test]
fn ping_every_interval_and_a_missing_pong_reconnects() {
    let mut r = Rig::new(&["t.X"]);
    r.open(Time::ZERO);
    r.link
        .handle_control(Time::ZERO, &mut Rng::new(1), &ack("sub-1-1", true, ""));
    // Data keeps flowing, so only the pong can time out.
    for s in 1..=20 {
        r.link.note_frame(Time::from_secs(s), 1);
    }
    let out = r.tick(Time::from_secs(20));
    assert_eq!(sends(&out).len(), 1);
    assert!(sends(&out)[0].contains(r#""op":"ping""#));
    for s in 21..=30 {
        r.link.note_frame(Time::from_secs(s), 1);
    }
    assert_eq!(r.link.poll_timeout(), Some(Time::from_secs(30)));
    let out = r.tick(Time::from_secs(30));
    assert!(
        matches!(
            out.last(),
            Some(LinkOutput::Lost {
                reason: LossReason::PongTimeout,
                ..
            })
        ),
        "{out:?}"
    );
    assert_eq!(r.link.counters().pong_timeouts, 1);
}

#[test]
fn idle_timeout_detects_a_socket_that_stays_open_but_goes_quiet() {
    let mut r = Rig::new(&["t.X"]);
    r.open(Time::ZERO);
    r.link
        .handle_control(Time::ZERO, &mut Rng::new(1), &ack("sub-1-1", true, ""));
    r.link.note_frame(Time::from_secs(1), 1);
    // The pong keeps the ping alive, but no data comes.
    let _ = r.tick(Time::from_secs(20));
    r.link.handle_control(
        Time::from_secs(20),
        &mut Rng::new(1),
        &Control::Pong { req_id: None },
    );
    let out = r.tick(Time::from_secs(31));
    assert!(
        out.iter().any(|o| matches!(
            o,
            LinkOutput::Lost {
                reason: LossReason::Idle,
                ..
            }
        )),
        "{out:?}"
    );
}

#[test]
fn frames_of_an_older_connection_are_not_taken() {
    let mut r = Rig::new(&["t.X"]);
    r.open(Time::ZERO);
    r.link
        .handle_closed(Time::from_secs(1), 1, &mut Rng::new(1), "reset".into());
    assert!(!r.link.note_frame(Time::from_secs(1), 1));
}

#[test]
fn reconnect_waits_for_backoff_and_budget_and_resubscribes_everything() {
    let mut r = Rig::new(&["a.X", "b.X"]);
    r.open(Time::ZERO);
    r.link
        .handle_control(Time::ZERO, &mut Rng::new(1), &ack("sub-1-1", true, ""));
    r.link.handle_closed(
        Time::from_millis(100),
        1,
        &mut r.rng.clone(),
        "reset".into(),
    );
    let out = r.drain();
    let LinkOutput::Lost { retry_in, .. } = out.last().unwrap() else {
        panic!("{out:?}")
    };
    assert!(retry_in.as_millis() <= 500);
    let LinkState::Waiting { until } = r.link.state() else {
        panic!()
    };
    // The budget allows one connect a second: the first was at 0.
    assert!(until <= Time::from_millis(600));
    let out = r.tick(until);
    let out = if out.is_empty() {
        r.tick(r.link.poll_timeout().unwrap())
    } else {
        out
    };
    assert!(
        matches!(out[..], [LinkOutput::Connect { conn: 2, .. }]),
        "{out:?}"
    );
    r.link.handle_connected(Time::from_secs(1), 2);
    let s = sends(&r.drain());
    assert!(s[0].contains(r#""args":["a.X","b.X"]"#), "{s:?}");
    assert_eq!(r.link.counters().reconnects, 1);
}

#[test]
fn connect_timeout_gives_up_the_attempt() {
    let mut r = Rig::new(&["t.X"]);
    r.link.start(Time::ZERO);
    r.tick(Time::ZERO);
    let out = r.tick(Time::from_secs(10));
    assert!(out.iter().any(|o| matches!(
        o,
        LinkOutput::Lost {
            reason: LossReason::ConnectTimeout,
            ..
        }
    )));
}
