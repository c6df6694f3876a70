use super::test_venue::*;
use super::*;

#[test]
fn an_order_is_sent_only_once_it_is_durable() {
    let mut m = Orders::new(OrdersConfig::default(), 7);
    let link = m.place(0, plan("BTCUSDT")).unwrap();
    assert_eq!(link, "keel-0000000007");
    assert!(matches!(m.poll_output(), Some(OrdersOutput::Persist(r)) if r.stage == Stage::Intent));
    assert_eq!(m.poll_output(), None);
    m.durable(Time::ZERO, &link);
    match m.poll_output() {
        Some(OrdersOutput::Request(r)) => {
            assert_eq!(r.path, "/v5/order/create");
            assert!(r.payload.contains(r#""orderLinkId":"keel-0000000007""#));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_store_halts_and_nothing_waiting_is_sent() {
    let mut m = Orders::new(OrdersConfig::default(), 0);
    let link = m.place(0, plan("BTCUSDT")).unwrap();
    m.store_failed("disk I/O error");
    m.durable(Time::ZERO, &link);
    let outs: Vec<_> = std::iter::from_fn(|| m.poll_output()).collect();
    assert!(
        outs.iter().all(|o| !matches!(o, OrdersOutput::Request(_))),
        "{outs:?}"
    );
    assert!(outs.iter().any(|o| matches!(o, OrdersOutput::Halted(_))));
    assert!(matches!(
        m.place(0, plan("ETHUSDT")),
        Err(Refused::Halted(_))
    ));
}

#[test]
fn a_clean_order_ends_filled_with_both_fills() {
    let mut w = World::new();
    w.m.place(0, plan("BTCUSDT")).unwrap();
    w.pump(&mut std::iter::empty());
    w.check();
    assert_eq!(w.store.fills.len(), 2);
    assert_eq!(w.m.working().count(), 0);
}

#[test]
fn a_lost_ack_is_looked_up_not_sent_again() {
    let mut w = World::new();
    w.m.place(0, plan("BTCUSDT")).unwrap();
    w.pump(&mut [Fault::LoseAnswer].into_iter());
    w.check();
    assert_eq!(w.m.counters().ambiguous, 1);
    assert_eq!(w.m.counters().sent, 1);
}

#[test]
fn a_lost_request_is_closed_once_its_window_has_passed_and_never_sent_again() {
    let mut w = World::new();
    let link = w.m.place(0, plan("BTCUSDT")).unwrap();
    w.pump(&mut [Fault::LoseRequest].into_iter());
    w.check();
    assert_eq!(w.m.counters().sent, 1);
    assert!(w.venue.creates_by_link.is_empty());
    assert_eq!(
        w.store.orders[&link].stage,
        Stage::Rejected("never reached the venue".into())
    );
    // Not before the create's receive window (and the margin) had passed.
    let window = OrdersConfig::default().recv_window_ms + RESEND_MARGIN_MS;
    assert!(w.now >= Time::ZERO + Duration::from_millis(window));
}

#[test]
fn a_rate_limited_create_ends_unplaced_and_the_next_order_waits_for_the_reset() {
    let mut w = World::new();
    let first = w.m.place(0, plan("BTCUSDT")).unwrap();
    w.pump(&mut [Fault::RateLimited].into_iter());
    assert!(matches!(&w.store.orders[&first].stage, Stage::Rejected(r) if r.contains("10006")));
    assert_eq!(w.m.counters().rate_limited, 1);
    let second = w.m.place(0, plan("BTCUSDT")).unwrap();
    w.pump(&mut std::iter::empty());
    w.check();
    assert_eq!(w.store.orders[&second].stage, Stage::Filled);
    // The venue's reset (a second after the refusal when it gives none) was waited for.
    assert!(w.now >= Time::from_secs(1), "{:?}", w.now);
}

#[test]
fn a_server_error_is_looked_up_and_not_sent_again() {
    let mut w = World::new();
    let link = w.m.place(0, plan("BTCUSDT")).unwrap();
    w.pump(&mut [Fault::ServerError].into_iter());
    w.check();
    assert_eq!(w.m.counters().ambiguous, 1);
    assert!(w.m.counters().lookups > 0);
    assert_eq!(
        w.store.orders[&link].stage,
        Stage::Rejected("never reached the venue".into())
    );
}

#[test]
fn a_create_outside_the_venues_window_ends_unplaced_and_the_clock_is_read_again() {
    let mut w = World::new();
    let link = w.m.place(0, plan("BTCUSDT")).unwrap();
    w.pump(&mut [Fault::TimeWindow].into_iter());
    w.check();
    assert!(matches!(&w.store.orders[&link].stage, Stage::Rejected(r) if r.contains("10002")));
    assert_eq!(w.m.counters().clock_resyncs, 1);
}

#[test]
fn an_order_a_restarted_venue_lists_only_in_history_is_followed_there() {
    let mut w = World::new();
    w.m.place(0, plan("BTCUSDT")).unwrap();
    // The ack comes; the look-up finds a venue that restarted.
    w.pump(&mut [Fault::None, Fault::Forget].into_iter());
    w.check();
    assert_eq!(w.store.fills.len(), 2);
}

#[test]
fn an_acknowledged_order_the_venue_has_no_record_of_closes_with_its_executions() {
    let mut m = Orders::new(OrdersConfig::default(), 0);
    let link = m.place(0, plan("BTCUSDT")).unwrap();
    m.durable(Time::ZERO, &link);
    let mut reqs = std::iter::from_fn(|| m.poll_output()).filter_map(|o| match o {
        OrdersOutput::Request(r) => Some(r),
        _ => None,
    });
    let create = reqs.next().unwrap();
    drop(reqs);
    let ack =
        r#"{"retCode":0,"retMsg":"OK","result":{"orderId":"o1","orderLinkId":"keel-0000000000"}}"#;
    m.handle_answer(Time::ZERO, create.id, 200, ack, 0, None);
    let empty = r#"{"retCode":0,"retMsg":"OK","result":{"list":[],"nextPageCursor":""}}"#;
    let exec = r#"{"retCode":0,"retMsg":"OK","result":{"list":[{"execId":"e1","orderLinkId":"keel-0000000000","symbol":"BTCUSDT","side":"Buy","execPrice":"100","execQty":"0.01","execFee":"0","execTime":"1","execType":"Trade"}],"nextPageCursor":""}}"#;
    let mut now = Time::ZERO;
    let mut last = None;
    for _ in 0..20 {
        now = m.poll_timeout().unwrap_or(now).max(now);
        m.handle_timeout(now);
        while let Some(o) = m.poll_output() {
            match o {
                OrdersOutput::Request(r) => {
                    let body = if r.path == "/v5/execution/list" {
                        exec
                    } else {
                        empty
                    };
                    m.handle_answer(now, r.id, 200, body, 0, None);
                }
                OrdersOutput::Persist(rec) => last = Some(rec),
                _ => {}
            }
        }
        if m.working().count() == 0 {
            break;
        }
    }
    let rec = last.unwrap();
    assert_eq!(rec.stage, Stage::Cancelled);
    assert_eq!(rec.cum_qty, d("0.01"));
}

#[test]
fn a_rejected_order_ends_with_the_venues_reason() {
    let mut m = Orders::new(OrdersConfig::default(), 0);
    let link = m.place(0, plan("BTCUSDT")).unwrap();
    let _ = m.poll_output();
    m.durable(Time::ZERO, &link);
    let Some(OrdersOutput::Request(r)) = m.poll_output() else {
        panic!()
    };
    m.handle_answer(
        Time::ZERO,
        r.id,
        200,
        &err(110007, "ab not enough for new order"),
        0,
        None,
    );
    match m.poll_output() {
        Some(OrdersOutput::Notice { error: true, .. }) => {}
        other => panic!("{other:?}"),
    }
    match m.poll_output() {
        Some(OrdersOutput::Persist(rec)) => {
            assert_eq!(
                rec.stage,
                Stage::Rejected("insufficient balance: 110007 ab not enough for new order".into())
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(!m.busy("BTCUSDT"));
}

#[test]
fn creates_never_pass_the_per_second_limit_under_a_burst() {
    let mut m = Orders::new(
        OrdersConfig {
            creates_per_s_max: 3,
            ..Default::default()
        },
        0,
    );
    for i in 0..8 {
        let link = m.place(0, plan(&format!("S{i}"))).unwrap();
        m.durable(Time::ZERO, &link);
    }
    let sent = std::iter::from_fn(|| m.poll_output())
        .filter(|o| matches!(o, OrdersOutput::Request(_)))
        .count();
    assert_eq!(sent, 3);
    assert_eq!(m.poll_timeout(), Some(Time::from_secs(1)));
}

#[test]
fn an_order_for_a_busy_symbol_is_refused() {
    let mut m = Orders::new(OrdersConfig::default(), 0);
    m.place(0, plan("BTCUSDT")).unwrap();
    assert_eq!(m.place(0, plan("BTCUSDT")), Err(Refused::Busy));
    assert_eq!(
        m.place(
            0,
            Plan {
                qty: Dec::ZERO,
                ..plan("ETHUSDT")
            }
        ),
        Err(Refused::BadPlan("quantity must be positive"))
    );
}

fn fault() -> impl proptest::strategy::Strategy<Value = Fault> {
    use proptest::prelude::*;
    prop_oneof![
        6 => Just(Fault::None),
        2 => Just(Fault::LoseAnswer),
        2 => Just(Fault::LoseRequest),
        1 => Just(Fault::ServerError),
        1 => Just(Fault::RateLimited),
        1 => Just(Fault::TimeWindow),
        1 => Just(Fault::Forget),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

    /// Orders under lost answers, lost requests, server errors, rate limits, a venue that
    /// forgets, and the process dying after any number of steps: no orderLinkId is made twice at
    /// the venue, every venue execution is stored once, every order the venue made ends filled.
    #[test]
    fn no_duplicate_order_and_no_lost_fill_under_faults_and_crashes(
        faults in proptest::collection::vec(fault(), 0..40),
        crashes in proptest::collection::vec(0usize..30, 0..6),
        orders in 1usize..6,
    ) {
        let mut w = World::new();
        let mut faults = faults.into_iter();
        let mut crashes = crashes.into_iter();
        for i in 0..orders {
            let _ = w.m.place(i as u64, plan(&format!("S{}", i % 3)));
            // Run some steps, die (outputs not yet handled are lost with the process), and
            // come back on the same store; then run to the end.
            if let Some(c) = crashes.next() {
                for _ in 0..c {
                    w.step(&mut faults);
                }
                w.restart();
            }
            w.pump(&mut faults);
        }
        w.pump(&mut std::iter::empty());
        proptest::prop_assert!(w.halts.is_empty(), "{:?}", w.halts);
        w.check();
        proptest::prop_assert_eq!(w.m.working().count(), 0);
    }
}

fn ok_list(rows: &str) -> String {
    format!(r#"{{"retCode":0,"retMsg":"OK","result":{{"list":[{rows}],"nextPageCursor":""}}}}"#)
}

fn requests(m: &mut Orders) -> Vec<Request> {
    std::iter::from_fn(|| m.poll_output())
        .filter_map(|o| match o {
            OrdersOutput::Request(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn with_a_private_stream_nothing_is_placed_until_it_is_up_and_reconciled() {
    let cfg = OrdersConfig {
        stream: true,
        ..Default::default()
    };
    let mut m = Orders::new(cfg, 0);
    assert_eq!(m.place(0, plan("BTCUSDT")), Err(Refused::StreamDown));
    m.set_stream(Time::ZERO, true);
    assert_eq!(m.place(0, plan("BTCUSDT")), Err(Refused::StreamDown));
    // Executions, open orders, positions: each answered in turn.
    let exec = r#"{"execId":"missed-1","orderId":"o9","orderLinkId":"keel-0000000009","symbol":"BTCUSDT","side":"Buy","execPrice":"100","execQty":"0.5","execFee":"0","execTime":"7","execType":"Trade"}"#;
    let foreign = exec
        .replace("keel-0000000009", "manual-1")
        .replace("missed-1", "f-1");
    let r = requests(&mut m);
    assert_eq!(r[0].path, "/v5/execution/list");
    m.handle_answer(
        Time::ZERO,
        r[0].id,
        200,
        &ok_list(&format!("{exec},{foreign}")),
        0,
        None,
    );
    let outs: Vec<_> = std::iter::from_fn(|| m.poll_output()).collect();
    let fills: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            OrdersOutput::Fill(x) => Some(x.exec_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(fills, ["missed-1"], "only our missed fill is applied");
    let open = outs
        .iter()
        .find_map(|o| match o {
            OrdersOutput::Request(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(open.path, "/v5/order/realtime");
    m.handle_answer(Time::ZERO, open.id, 200, &ok_list(""), 0, None);
    let pos = requests(&mut m).remove(0);
    assert_eq!(pos.path, "/v5/position/list");
    let rows = r#"{"symbol":"BTCUSDT","side":"Sell","size":"0.5","avgPrice":"100"}"#;
    m.handle_answer(Time::ZERO, pos.id, 200, &ok_list(rows), 0, None);
    let outs: Vec<OrdersOutput> = std::iter::from_fn(|| m.poll_output()).collect();
    let mut outs = outs.into_iter();
    match outs.next() {
        Some(OrdersOutput::VenuePositions(p)) => {
            assert_eq!(p[0].qty, d("-0.5"));
        }
        other => panic!("{other:?}"),
    }
    let wallet = match outs.next() {
        Some(OrdersOutput::Request(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(wallet.path, "/v5/account/wallet-balance");
    assert!(
        m.place(0, plan("BTCUSDT")).is_err(),
        "not reconciled before the wallet"
    );
    let w = r#"{"retCode":0,"retMsg":"OK","result":{"list":[{"totalEquity":"50","coin":[]}]}}"#;
    m.handle_answer(Time::ZERO, wallet.id, 200, w, 0, None);
    assert!(matches!(
        m.poll_output(),
        Some(OrdersOutput::VenueWallet(_))
    ));
    assert_eq!(m.counters().reconcile_diffs, 1);
    assert!(m.place(0, plan("BTCUSDT")).is_ok());
    // The same execution pushed again later is not applied twice.
    let push = crate::wire::private::parse_private_frame(&format!(
        r#"{{"topic":"execution","data":[{exec}]}}"#
    ))
    .unwrap();
    m.handle_push(Time::ZERO, push);
    assert!(std::iter::from_fn(|| m.poll_output()).all(|o| !matches!(o, OrdersOutput::Fill(_))));
    assert_eq!(m.counters().duplicate_fills, 1);
    // The stream drops: no more orders until it is back and reconciled.
    m.set_stream(Time::ZERO, false);
    assert_eq!(m.place(0, plan("ETHUSDT")), Err(Refused::StreamDown));
}

#[test]
fn a_duplicate_filled_push_and_its_execution_apply_once() {
    let mut m = Orders::new(OrdersConfig::default(), 0);
    let link = m.place(0, plan("BTCUSDT")).unwrap();
    m.durable(Time::ZERO, &link);
    let create = requests(&mut m).remove(0);
    let ack =
        r#"{"retCode":0,"retMsg":"OK","result":{"orderId":"o1","orderLinkId":"keel-0000000000"}}"#;
    m.handle_answer(Time::ZERO, create.id, 200, ack, 0, None);
    let order = r#"{"topic":"order","data":[{"orderId":"o1","orderLinkId":"keel-0000000000","symbol":"BTCUSDT","side":"Buy","orderStatus":"Filled","qty":"0.02","cumExecQty":"0.02"}]}"#;
    let exec = r#"{"topic":"execution","data":[{"execId":"e1","orderId":"o1","orderLinkId":"keel-0000000000","symbol":"BTCUSDT","side":"Buy","execPrice":"100","execQty":"0.02","execFee":"0","execTime":"7","execType":"Trade"}]}"#;
    let mut fills = 0;
    for text in [exec, order, order, exec] {
        m.handle_push(
            Time::ZERO,
            crate::wire::private::parse_private_frame(text).unwrap(),
        );
        for o in std::iter::from_fn(|| m.poll_output()) {
            fills += matches!(o, OrdersOutput::Fill(_)) as u32;
        }
    }
    assert_eq!(fills, 1);
    assert_eq!(m.working().count(), 0, "the order ended");
}

#[test]
fn the_kill_switch_cancels_all_at_the_venue_until_confirmed_and_stops_new_orders() {
    let mut m = Orders::new(OrdersConfig::default(), 0);
    m.cancel_all(
        Time::ZERO,
        &["BTCUSDT".into(), "ETHUSDT".into()],
        "daily loss",
    );
    assert!(matches!(
        m.place(0, plan("SOLUSDT")),
        Err(Refused::Halted(_))
    ));
    let r = requests(&mut m);
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|x| x.path == "/v5/order/cancel-all"));
    assert!(r[0].payload.contains(r#""symbol":"BTCUSDT""#));
    // One is confirmed; the other fails and is asked again.
    m.handle_answer(Time::ZERO, r[0].id, 200, &ok_list(""), 0, None);
    m.handle_error(Time::ZERO, r[1].id, "connection reset");
    let notes: Vec<_> = std::iter::from_fn(|| m.poll_output()).collect();
    assert!(notes.iter().any(
        |o| matches!(o, OrdersOutput::Notice { text, .. } if text.contains("BTCUSDT confirmed"))
    ));
    let t = m.poll_timeout().unwrap();
    m.handle_timeout(t);
    let again = requests(&mut m);
    assert_eq!(again.len(), 1);
    assert!(again[0].payload.contains(r#""symbol":"ETHUSDT""#));
}

#[test]
fn after_a_long_downtime_executions_are_read_window_by_window_up_to_the_venues_time() {
    const DAY: u64 = 86_400_000;
    let cfg = OrdersConfig {
        stream: true,
        ..Default::default()
    };
    let mut m = Orders::new(cfg, 0);
    let t0 = 1_700_000_000_000;
    m.remember_execs(Vec::new(), Some(t0));
    m.set_venue_now(Some(t0 + 10 * DAY));
    m.set_stream(Time::ZERO, true);
    let mut starts = Vec::new();
    for _ in 0..5 {
        let r = requests(&mut m).remove(0);
        if r.path != "/v5/execution/list" {
            break;
        }
        let start = query_u64(&r.payload, "startTime").unwrap();
        let end = query_u64(&r.payload, "endTime").unwrap();
        assert_eq!(end - start, 7 * DAY, "one request spans at most 7 days");
        starts.push(start);
        m.handle_answer(Time::ZERO, r.id, 200, &ok_list(""), 0, None);
    }
    assert_eq!(starts, [t0 - 1_000, t0 - 1_000 + 7 * DAY]);
}

/// A venue holding `times` (one execution of ours at each ms), answering the execution list
/// newest first within `[startTime, endTime]` (the last 7 days without them), 100 a page.
fn answer_executions(times: &[u64], now_ms: u64, q: &str) -> String {
    let num = |k: &str| query_u64(q, k);
    let from = num("startTime").unwrap_or(now_ms - 7 * 86_400_000);
    let to = num("endTime").unwrap_or(now_ms);
    let skip = num("cursor").unwrap_or(0) as usize;
    let mut hits: Vec<u64> = times
        .iter()
        .copied()
        .filter(|t| (from..=to).contains(t))
        .collect();
    hits.reverse();
    let page: Vec<String> = hits
        .iter()
        .skip(skip)
        .take(100)
        .map(|t| {
            format!(
                r#"{{"execId":"x{t}","orderId":"o","orderLinkId":"keel-0000000001","symbol":"BTCUSDT","side":"Buy","execPrice":"100","execQty":"1","execFee":"0","execTime":"{t}","execType":"Trade"}}"#
            )
        })
        .collect();
    let next = if skip + 100 < hits.len() {
        (skip + 100).to_string()
    } else {
        String::new()
    };
    format!(
        r#"{{"retCode":0,"retMsg":"OK","result":{{"list":[{}],"nextPageCursor":"{next}"}}}}"#,
        page.join(",")
    )
}

#[test]
fn a_window_with_more_executions_than_its_pages_is_read_in_halves_and_every_one_applied_once() {
    const DAY: u64 = 86_400_000;
    let t0 = 1_700_000_000_000;
    let now_ms = t0 + 3 * DAY;
    // 12,000 executions in one busy hour, and a few more spread over the days around it.
    let mut times: Vec<u64> = (0..12_000).map(|i| t0 + DAY + i * 300).collect();
    times.extend((0..50).map(|i| t0 + i * 5_000_000));
    times.sort_unstable();
    for first_ever in [false, true] {
        let mut m = Orders::new(
            OrdersConfig {
                stream: true,
                ..Default::default()
            },
            0,
        );
        if !first_ever {
            m.remember_execs(Vec::new(), Some(t0));
        }
        m.set_venue_now(Some(now_ms));
        m.set_stream(Time::ZERO, true);
        let mut fills = std::collections::BTreeSet::new();
        let mut twice = 0;
        let mut requests_made = 0;
        loop {
            let mut next = None;
            for o in std::iter::from_fn(|| m.poll_output()) {
                match o {
                    OrdersOutput::Fill(x) => twice += u32::from(!fills.insert(x.exec_id)),
                    OrdersOutput::Request(r) => next = Some(r),
                    _ => {}
                }
            }
            let r = next.expect("the reconciliation goes on until it is done");
            requests_made += 1;
            assert!(requests_made < 2_000, "the reconciliation never finished");
            if r.path != "/v5/execution/list" {
                break;
            }
            let body = answer_executions(&times, now_ms, &r.payload);
            m.handle_answer(Time::ZERO, r.id, 200, &body, 0, None);
        }
        let want: std::collections::BTreeSet<String> = times
            .iter()
            .filter(|t| first_ever || **t >= t0 - 1_000)
            .map(|t| format!("x{t}"))
            .collect();
        assert_eq!(fills, want, "first ever: {first_ever}");
        assert_eq!(twice, 0);
        println!(
            "first ever {first_ever}: {} requests for {} executions",
            requests_made,
            want.len()
        );
    }
}

/// A number in a query string, by its key.
fn query_u64(q: &str, key: &str) -> Option<u64> {
    q.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}
