use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::time::Time;
use crate::trading::orders::{Orders, OrdersConfig, OrdersOutput, Plan, Stage};
use crate::wire::private::{
    self, CATEGORY_LINEAR, NewOrder, OrderType, TimeInForce, parse_ack, parse_executions,
    parse_orders,
};

fn d(s: &str) -> Dec {
    Dec::parse(s).unwrap()
}

fn total(xs: impl IntoIterator<Item = Dec>) -> Dec {
    xs.into_iter()
        .fold(Dec::ZERO, |a, x| a.checked_add(x).unwrap())
}

fn l(px: &str, qty: &str) -> Level {
    Level {
        px: d(px),
        qty: d(qty),
    }
}

fn req(method: Method, path: &'static str, payload: String) -> Request {
    Request {
        id: 1,
        method,
        path,
        payload,
        recv_window_ms: 5_000,
        clock_offset_ms: 0,
        timeout: Duration::from_secs(1),
    }
}

fn create(link: &str, side: Side, qty: &str, price: Option<&str>) -> Request {
    create_in("BTCUSDT", link, side, qty, price, TimeInForce::Gtc)
}

/// A create for `symbol`; `tif` applies to a limit order.
fn create_in(
    symbol: &str,
    link: &str,
    side: Side,
    qty: &str,
    price: Option<&str>,
    tif: TimeInForce,
) -> Request {
    let body = private::create_body(&NewOrder {
        category: CATEGORY_LINEAR,
        symbol,
        side,
        order_type: if price.is_some() {
            OrderType::Limit
        } else {
            OrderType::Market
        },
        qty: d(qty),
        price: price.map(d),
        time_in_force: price.map(|_| tif),
        reduce_only: false,
        order_link_id: link,
    });
    req(Method::Post, "/v5/order/create", body)
}

fn status(v: &mut PaperVenue, link: &str) -> private::OrderStatus {
    parse_orders(&v.answer(&lookup(link), no_book).1)
        .unwrap()
        .result
        .list
        .remove(0)
        .order_status
}

fn cancel_all(v: &mut PaperVenue, symbol: &str) -> String {
    let r = req(
        Method::Post,
        "/v5/order/cancel-all",
        private::cancel_all_body(CATEGORY_LINEAR, symbol),
    );
    v.answer(&r, no_book).1
}

fn lookup(link: &str) -> Request {
    req(
        Method::Get,
        "/v5/order/realtime",
        private::order_query(CATEGORY_LINEAR, link),
    )
}

fn execs(link: &str, cursor: Option<&str>) -> Request {
    req(
        Method::Get,
        "/v5/execution/list",
        private::executions_query(CATEGORY_LINEAR, link, cursor),
    )
}

/// A book with these sides, handing a create the side it walks.
fn book<'a>(bids: &'a [Level], asks: &'a [Level]) -> impl Fn(&str, Side) -> Option<PaperBook> + 'a {
    move |_, side| {
        Some(PaperBook {
            levels: match side {
                Side::Buy => asks.to_vec(),
                Side::Sell => bids.to_vec(),
            },
            ts_ms: 1_700_000_000_000,
        })
    }
}

/// No usable book (and none asked for by anything but a create).
fn no_book(_: &str, _: Side) -> Option<PaperBook> {
    None
}

/// No fees, no slippage: the fills show the book exactly.
fn exact() -> PaperVenue {
    PaperVenue::new(0.0, 0.0)
}

fn all_execs(v: &mut PaperVenue, link: &str) -> Vec<private::ExecRow> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (_, body) = v.answer(&execs(link, cursor.as_deref()), no_book);
        let page = parse_executions(&body).unwrap().result;
        out.extend(page.list);
        if page.next_page_cursor.is_empty() {
            return out;
        }
        cursor = Some(page.next_page_cursor);
    }
}

#[test]
fn a_market_buy_walks_the_asks_with_slippage_and_fees_in_bybits_format() {
    let mut v = PaperVenue::new(10.0, 100.0);
    let asks = [l("100", "1"), l("101", "2")];
    let (status, body) = v.answer(&create("k-1", Side::Buy, "2", None), book(&[], &asks));
    assert_eq!(status, 200);
    let ack = parse_ack(&body).unwrap().result;
    assert_eq!(ack.order_link_id, "k-1");
    let row = parse_orders(&v.answer(&lookup("k-1"), no_book).1)
        .unwrap()
        .result
        .list
        .remove(0);
    assert_eq!(row.order_status, private::OrderStatus::Filled);
    assert_eq!(row.cum_exec_qty, Some(d("2")));
    let xs = all_execs(&mut v, "k-1");
    // 1 % slippage: 100 -> 101, 101 -> 102.01; 0.1 % fee on each fill's value.
    let got: Vec<(Dec, Dec, Option<Dec>)> = xs
        .iter()
        .map(|x| (x.exec_price, x.exec_qty, x.exec_fee))
        .collect();
    assert_eq!(
        got,
        vec![
            (d("101"), d("1"), Some(d("0.101"))),
            (d("102.01"), d("1"), Some(d("0.10201"))),
        ]
    );
    assert_eq!(row.avg_price, Some(d("101.505")));
}

#[test]
fn a_sell_walks_the_bids_and_slippage_lowers_its_price() {
    let mut v = PaperVenue::new(0.0, 100.0);
    let bids = [l("100", "5")];
    v.answer(&create("k-1", Side::Sell, "1", None), book(&bids, &[]));
    let xs = all_execs(&mut v, "k-1");
    assert_eq!(xs.len(), 1);
    assert_eq!(xs[0].exec_price, d("99"));
    assert_eq!(xs[0].side, Side::Sell);
}

#[test]
fn a_reused_link_id_is_refused_as_a_duplicate_and_fills_nothing_more() {
    let mut v = exact();
    let asks = [l("100", "10")];
    v.answer(&create("k-1", Side::Buy, "1", None), book(&[], &asks));
    let (_, body) = v.answer(&create("k-1", Side::Buy, "1", None), book(&[], &asks));
    let e = parse_ack(&body).unwrap_err();
    assert!(e.to_string().contains("110072"), "{e}");
    assert_eq!(all_execs(&mut v, "k-1").len(), 1);
}

#[test]
fn a_market_order_larger_than_the_book_fills_what_is_there_and_cancels_the_rest() {
    let mut v = exact();
    let asks = [l("100", "1"), l("101", "1")];
    v.answer(&create("k-1", Side::Buy, "5", None), book(&[], &asks));
    let row = parse_orders(&v.answer(&lookup("k-1"), no_book).1)
        .unwrap()
        .result
        .list
        .remove(0);
    assert_eq!(
        row.order_status,
        private::OrderStatus::PartiallyFilledCanceled
    );
    assert_eq!(row.cum_exec_qty, Some(d("2")));
    assert_eq!(v.counters().unfilled, 1);
}

#[test]
fn a_limit_order_takes_only_the_levels_it_crosses_and_good_till_cancelled_rests_the_rest() {
    let mut v = exact();
    let asks = [l("100", "1"), l("101", "1"), l("102", "1")];
    v.answer(
        &create("k-1", Side::Buy, "3", Some("101")),
        book(&[], &asks),
    );
    let xs = all_execs(&mut v, "k-1");
    assert_eq!(total(xs.iter().map(|x| x.exec_qty)), d("2"));
    assert_eq!(status(&mut v, "k-1"), private::OrderStatus::PartiallyFilled);
    assert_eq!(v.resting(), 1);
    // Immediate-or-cancel: what does not cross is cancelled, nothing rests.
    let bids = [l("99", "1")];
    v.answer(
        &create_in(
            "BTCUSDT",
            "k-2",
            Side::Sell,
            "1",
            Some("100"),
            TimeInForce::Ioc,
        ),
        book(&bids, &asks),
    );
    assert_eq!(status(&mut v, "k-2"), private::OrderStatus::Cancelled);
    assert!(all_execs(&mut v, "k-2").is_empty());
    assert_eq!(v.resting(), 1);
}

#[test]
fn a_resting_order_fills_at_its_own_price_once_the_other_side_reaches_it() {
    let mut v = PaperVenue::new(10.0, 50.0);
    v.answer(
        &create("k-1", Side::Buy, "2", Some("100")),
        book(&[], &[l("101", "5")]),
    );
    assert_eq!(status(&mut v, "k-1"), private::OrderStatus::New);
    // Not reached yet: nothing fills.
    assert_eq!(v.match_resting(book(&[], &[l("100.5", "5")])), 0);
    assert_eq!(status(&mut v, "k-1"), private::OrderStatus::New);
    // The asks come through the price: the size shown at or below it fills, at 100 each (a
    // maker: no slippage), with the fee.
    assert_eq!(
        v.match_resting(book(&[], &[l("99", "0.5"), l("100", "1")])),
        2
    );
    assert_eq!(status(&mut v, "k-1"), private::OrderStatus::PartiallyFilled);
    assert_eq!(
        v.match_resting(book(&[], &[l("100", "4"), l("101", "4")])),
        1
    );
    assert_eq!(status(&mut v, "k-1"), private::OrderStatus::Filled);
    assert_eq!(v.resting(), 0);
    let xs = all_execs(&mut v, "k-1");
    assert_eq!(total(xs.iter().map(|x| x.exec_qty)), d("2"));
    assert!(xs.iter().all(|x| x.exec_price == d("100")));
    assert_eq!(total(xs.iter().map(|x| x.exec_fee.unwrap())), d("0.2"));
    // A filled order is not matched again.
    assert_eq!(v.match_resting(book(&[], &[l("90", "10")])), 0);
}

#[test]
fn resting_orders_share_what_one_check_of_the_book_shows() {
    let mut v = exact();
    for link in ["k-1", "k-2"] {
        v.answer(
            &create(link, Side::Buy, "1.5", Some("100")),
            book(&[], &[l("101", "5")]),
        );
    }
    // Two at or under 100 in all: the first order takes 1.5, the second what is left.
    let asks = [l("99", "1"), l("100", "1"), l("101", "5")];
    assert_eq!(v.match_resting(book(&[], &asks)), 3);
    let filled = |v: &mut PaperVenue, link| total(all_execs(v, link).iter().map(|x| x.exec_qty));
    assert_eq!(filled(&mut v, "k-1"), d("1.5"));
    assert_eq!(filled(&mut v, "k-2"), d("0.5"));
    assert_eq!(status(&mut v, "k-2"), private::OrderStatus::PartiallyFilled);
    assert_eq!(v.resting(), 1);
}

#[test]
fn a_post_only_order_rests_whole_or_is_cancelled_when_it_would_take() {
    let mut v = exact();
    let asks = [l("100", "1")];
    let post_only = |link, px| {
        create_in(
            "BTCUSDT",
            link,
            Side::Buy,
            "1",
            Some(px),
            TimeInForce::PostOnly,
        )
    };
    v.answer(&post_only("k-1", "100"), book(&[], &asks));
    assert_eq!(status(&mut v, "k-1"), private::OrderStatus::Cancelled);
    assert!(all_execs(&mut v, "k-1").is_empty());
    v.answer(&post_only("k-2", "99.5"), book(&[], &asks));
    assert_eq!(status(&mut v, "k-2"), private::OrderStatus::New);
    assert_eq!(v.resting(), 1);
}

#[test]
fn cancel_all_cancels_the_symbols_resting_orders_and_lists_them() {
    let mut v = exact();
    let far = [l("200", "1")];
    for (symbol, link) in [("BTCUSDT", "k-1"), ("BTCUSDT", "k-2"), ("ETHUSDT", "k-3")] {
        v.answer(
            &create_in(symbol, link, Side::Buy, "1", Some("100"), TimeInForce::Gtc),
            book(&[], &far),
        );
    }
    assert_eq!(v.resting(), 3);
    let body = cancel_all(&mut v, "BTCUSDT");
    assert!(body.contains(r#""retCode":0"#), "{body}");
    assert!(body.contains(r#""orderLinkId":"k-1""#) && body.contains(r#""orderLinkId":"k-2""#));
    assert!(!body.contains("k-3"), "{body}");
    assert_eq!(status(&mut v, "k-1"), private::OrderStatus::Cancelled);
    assert_eq!(status(&mut v, "k-3"), private::OrderStatus::New);
    assert_eq!((v.resting(), v.counters().cancelled), (1, 2));
    // A cancelled order is never filled afterwards.
    assert_eq!(v.match_resting(book(&[], &[l("50", "10")])), 1);
    assert!(all_execs(&mut v, "k-1").is_empty());
    assert!(cancel_all(&mut v, "").contains("10001"));
}

#[test]
fn past_the_resting_bound_an_order_that_would_rest_is_refused_and_a_market_order_is_not() {
    let mut v = exact();
    let far = [l("200", "1000")];
    for i in 0..PAPER_RESTING_MAX {
        v.answer(
            &create(&format!("k-{i:010}"), Side::Buy, "1", Some("100")),
            book(&[], &far),
        );
    }
    assert_eq!(v.resting(), PAPER_RESTING_MAX);
    let (_, body) = v.answer(&create("k-x", Side::Buy, "1", Some("100")), book(&[], &far));
    let e = parse_ack(&body).unwrap_err().to_string();
    assert!(e.contains("10001") && e.contains("rest on paper"), "{e}");
    let (_, body) = v.answer(&create("k-y", Side::Buy, "1", None), book(&[], &far));
    assert!(parse_ack(&body).is_ok(), "{body}");
    assert_eq!(v.resting(), PAPER_RESTING_MAX);
}

#[test]
fn without_a_book_the_create_is_refused_and_nothing_is_recorded() {
    let mut v = exact();
    let (_, body) = v.answer(&create("k-1", Side::Buy, "1", None), no_book);
    let e = parse_ack(&body).unwrap_err().to_string();
    assert!(e.contains("10001") && e.contains("no synced book"), "{e}");
    let rows = parse_orders(&v.answer(&lookup("k-1"), no_book).1).unwrap();
    assert!(rows.result.list.is_empty());
    assert_eq!(v.counters().refused, 1);
}

#[test]
fn a_restarted_paper_venue_never_repeats_an_order_or_execution_id() {
    let asks = [l("100", "1"), l("101", "1")];
    let mut ids = std::collections::BTreeSet::new();
    // Each run's venue starts empty; the store's link ids carry on from the last.
    for (run, link) in ["k-0000000000", "k-0000000001"].into_iter().enumerate() {
        let mut v = exact();
        let (_, body) = v.answer(&create(link, Side::Buy, "2", None), book(&[], &asks));
        assert!(
            ids.insert(parse_ack(&body).unwrap().result.order_id),
            "run {run}"
        );
        for x in all_execs(&mut v, link) {
            assert!(ids.insert(x.exec_id), "run {run}");
        }
    }
    assert_eq!(ids.len(), 6);
}

#[test]
fn bad_creates_are_refused_with_the_field_named() {
    let mut v = exact();
    let asks = [l("100", "1")];
    for (payload, field) in [
        ("not json", "JSON"),
        (
            r#"{"symbol":"BTCUSDT","side":"Up","orderType":"Market","qty":"1","orderLinkId":"a"}"#,
            "side",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"-1","orderLinkId":"a"}"#,
            "qty",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"1","orderLinkId":"a"}"#,
            "price",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"Buy","orderType":"Stop","qty":"1","orderLinkId":"a"}"#,
            "orderType",
        ),
        (
            r#"{"symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"1"}"#,
            "orderLinkId",
        ),
    ] {
        let r = req(Method::Post, "/v5/order/create", payload.into());
        let (_, body) = v.answer(&r, book(&[], &asks));
        let e = parse_ack(&body).unwrap_err().to_string();
        assert!(e.contains(field), "{payload}: {e}");
    }
    assert!(all_execs(&mut v, "a").is_empty());
}

#[test]
fn executions_past_one_page_come_with_a_cursor_and_every_one_arrives_once() {
    let mut v = exact();
    let asks: Vec<Level> = (0..250).map(|i| l(&format!("{}", 100 + i), "1")).collect();
    v.answer(&create("k-1", Side::Buy, "250", None), book(&[], &asks));
    let xs = all_execs(&mut v, "k-1");
    assert_eq!(xs.len(), 250);
    let ids: std::collections::BTreeSet<&str> = xs.iter().map(|x| x.exec_id.as_str()).collect();
    assert_eq!(ids.len(), 250);
}

#[test]
fn paper_cancel_all_confirms_and_other_endpoints_say_they_are_not_offered() {
    let mut v = exact();
    let (_, body) = v.answer(
        &req(
            Method::Post,
            "/v5/order/cancel-all",
            private::cancel_all_body(CATEGORY_LINEAR, "BTCUSDT"),
        ),
        no_book,
    );
    assert!(body.contains(r#""retCode":0"#), "{body}");
    let (_, body) = v.answer(
        &req(Method::Get, "/v5/position/list", "category=linear".into()),
        no_book,
    );
    assert!(body.contains("not offered on paper"), "{body}");
}

#[test]
fn the_order_machine_trades_on_paper_as_it_does_live() {
    let mut m = Orders::new(OrdersConfig::default(), 0);
    let mut v = PaperVenue::new(5.5, 1.0);
    let asks = [l("100", "0.5"), l("100.5", "1")];
    let plan = Plan::market("BTCUSDT", Side::Buy, d("1"), "test");
    let mut now = Time::ZERO;
    let link = m.place(0, plan).unwrap();
    let (mut fills, mut last) = (Vec::new(), None);
    for _ in 0..100 {
        match m.poll_output() {
            Some(OrdersOutput::Persist(r)) => {
                let intent = r.stage == Stage::Intent;
                last = Some(r);
                if intent {
                    m.durable(now, &link);
                }
            }
            Some(OrdersOutput::Request(r)) => {
                let (status, body) = v.answer(&r, book(&[], &asks));
                m.handle_answer(now, r.id, status, &body, 0, None);
            }
            Some(OrdersOutput::Fill(x)) => fills.push(x),
            Some(_) => {}
            None => match m.poll_timeout() {
                Some(t) => {
                    now = now.max(t);
                    m.handle_timeout(now);
                }
                None => break,
            },
        }
    }
    let last = last.unwrap();
    assert_eq!(last.stage, Stage::Filled);
    assert_eq!(last.cum_qty, d("1"));
    assert_eq!(fills.len(), 2);
    assert_eq!(total(fills.iter().map(|f| f.qty)), d("1"));
    assert!(fills.iter().all(|f| f.fee > Dec::ZERO));
}

proptest! {
    /// Against a simple model of a book walk: what fills is the smaller of the order and what
    /// crosses, each level at most its size, best prices first, and the average lies between
    /// the best and the worst level taken.
    #[test]
    fn fills_match_a_walk_of_the_book(
        sizes in proptest::collection::vec(1u32..50, 0..30),
        qty in 1u32..600,
        limit_levels in proptest::option::of(0usize..30),
        buy in any::<bool>(),
    ) {
        let side = if buy { Side::Buy } else { Side::Sell };
        let levels: Vec<Level> = sizes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let px = if buy { 1_000 + i as i64 } else { 1_000 - i as i64 };
                l(&px.to_string(), &format!("{}.5", s))
            })
            .collect();
        let limit = limit_levels.map(|k| {
            let px = if buy { 1_000 + k as i64 } else { 1_000 - k as i64 };
            px.to_string()
        });
        let crossing: Vec<&Level> = levels
            .iter()
            .take(limit_levels.map_or(levels.len(), |k| k + 1))
            .collect();
        let mut v = exact();
        let (bids, asks) = if buy { (&[][..], &levels[..]) } else { (&levels[..], &[][..]) };
        v.answer(&create("k-1", side, &qty.to_string(), limit.as_deref()), book(bids, asks));
        let xs = all_execs(&mut v, "k-1");
        let depth = total(crossing.iter().map(|x| x.qty));
        let want = d(&qty.to_string()).min(depth);
        prop_assert_eq!(total(xs.iter().map(|x| x.exec_qty)), want);
        for (x, lv) in xs.iter().zip(&crossing) {
            prop_assert_eq!(x.exec_price, lv.px);
            prop_assert!(x.exec_qty <= lv.qty);
        }
        let row = parse_orders(&v.answer(&lookup("k-1"), no_book).1).unwrap().result.list.remove(0);
        prop_assert_eq!(row.cum_exec_qty, Some(want));
        if let (Some(avg), Some(first), Some(last)) = (row.avg_price, xs.first(), xs.last()) {
            let (lo, hi) = if buy { (first.exec_price, last.exec_price) } else { (last.exec_price, first.exec_price) };
            prop_assert!(lo <= avg && avg <= hi);
        }
    }
}

#[test]
fn past_its_bound_the_paper_venue_forgets_its_oldest_final_orders_first() {
    let mut v = exact();
    let asks = [l("100", "1000000")];
    // The oldest of all rests: it is still looked up, so it is kept.
    v.answer(
        &create("k-resting", Side::Buy, "1", Some("50")),
        book(&[], &asks),
    );
    let links: Vec<String> = (0..PAPER_ORDERS_MAX + 2)
        .map(|i| format!("k-{i:010}"))
        .collect();
    for link in &links {
        v.answer(&create(link, Side::Buy, "1", None), book(&[], &asks));
    }
    let listed = |v: &mut PaperVenue, link: &str| {
        !parse_orders(&v.answer(&lookup(link), no_book).1)
            .unwrap()
            .result
            .list
            .is_empty()
    };
    assert!(listed(&mut v, "k-resting"));
    assert!(!listed(&mut v, &links[0]) && !listed(&mut v, &links[1]));
    assert!(!listed(&mut v, &links[2]));
    assert!(listed(&mut v, &links[3]) && listed(&mut v, links.last().unwrap()));
}
