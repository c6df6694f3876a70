"""Third-party Bybit clients against `keel venue`, changed only in their base URL.

ccxt (sync and its WebSocket `watch_*`) and pybit (HTTP and WebSocket) make the public calls
their users make; the suite prints one row per call and exits 1 if any failed. With the venue
account's keys they trade: limit orders placed, amended, cancelled; a market order; open
orders, order history, executions, positions, balances; the private WebSocket streams; and a
wrong secret is refused with 10004.
"""

import asyncio
import sys
import threading
import time

BASE = sys.argv[1]  # http://127.0.0.1:PORT
KEY, SECRET = sys.argv[2], sys.argv[3]  # the venue account's key pair
WS = BASE.replace("http://", "ws://")
TIMEOUT_S = 15

rows = []


def record(client, call, fn):
    t0 = time.time()
    try:
        result = fn()
        ok, detail = True, str(result)
    except Exception as e:  # a failing call is a row, not a crash of the suite
        ok, detail = False, f"{type(e).__name__}: {e}"
    rows.append((client, call, ok, detail[:70], time.time() - t0))


def point_ccxt(ex):
    """The base-URL change: every REST entry and every WebSocket entry at the venue."""
    api = ex.urls["api"]
    for k, v in list(api.items()):
        if isinstance(v, str):
            api[k] = BASE

    def fix(d):
        for k, v in d.items():
            if isinstance(v, dict):
                fix(v)
            elif isinstance(v, str) and "/v5/public/" in v:
                d[k] = WS + "/v5/public/" + v.split("/v5/public/")[1]
            elif isinstance(v, str) and "/v5/private" in v:
                d[k] = WS + "/v5/private"

    if "ws" in api:  # only ccxt.pro's instances have WebSocket entries
        fix(api["ws"])


def ccxt_sync():
    import ccxt

    ex = ccxt.bybit({})
    point_ccxt(ex)
    c = "ccxt " + ccxt.__version__
    record(c, "load_markets", lambda: f"{len(ex.load_markets())} markets")
    record(c, "fetch_time", lambda: ex.fetch_time())
    for sym in ["BTC/USDT:USDT", "ETH/USDT"]:
        record(c, f"fetch_ticker {sym}", lambda: ex.fetch_ticker(sym)["last"])
        record(c, f"fetch_order_book {sym} 50", lambda: len(ex.fetch_order_book(sym, 50)["bids"]))
        record(c, f"fetch_ohlcv {sym}", lambda: len(ex.fetch_ohlcv(sym, "1m", limit=5)))
        since = ex.milliseconds() - 3_600_000
        record(c, f"fetch_ohlcv {sym} since", lambda: len(ex.fetch_ohlcv(sym, "1m", since=since, limit=10)))
        record(c, f"fetch_trades {sym}", lambda: len(ex.fetch_trades(sym, limit=5)))
    record(c, "fetch_order_book BTC/USDT:USDT 200", lambda: len(ex.fetch_order_book("BTC/USDT:USDT", 200)["asks"]))
    record(c, "fetch_tickers", lambda: len(ex.fetch_tickers(["BTC/USDT:USDT", "ETH/USDT:USDT"])))


def ccxt_private():
    import ccxt

    ex = ccxt.bybit({"apiKey": KEY, "secret": SECRET})
    point_ccxt(ex)
    c = "ccxt (keys)"
    record(c, "load_markets", lambda: f"{len(ex.load_markets())} markets")
    record(c, "fetch_balance", lambda: ex.fetch_balance()["USDT"]["free"])
    sym = "BTC/USDT:USDT"
    bid = ex.fetch_order_book(sym, 1)["bids"][0][0]
    below = float(ex.price_to_precision(sym, bid * 0.9))
    placed = {}

    def place():
        placed["o"] = ex.create_order(sym, "limit", "buy", 0.001, below)
        return placed["o"]["id"]

    record(c, "create_order limit", place)
    oid = placed.get("o", {}).get("id", "none")
    record(c, "fetch_open_orders", lambda: len(ex.fetch_open_orders(sym)))
    record(c, "fetch_order", lambda: ex.fetch_order(oid, sym, {"acknowledged": True})["status"])
    record(c, "edit_order", lambda: ex.edit_order(oid, sym, "limit", "buy", 0.002, below)["id"])
    record(c, "cancel_order", lambda: ex.cancel_order(oid, sym)["id"])
    record(c, "create_order market", lambda: ex.create_order(sym, "market", "buy", 0.001)["id"])
    record(c, "fetch_closed_orders", lambda: len(ex.fetch_closed_orders(sym)))
    record(c, "fetch_my_trades", lambda: len(ex.fetch_my_trades(sym)))
    record(c, "fetch_positions", lambda: [p["contracts"] for p in ex.fetch_positions([sym])])
    spot_bid = ex.fetch_order_book("BTC/USDT", 1)["bids"][0][0]
    spot_price = float(ex.price_to_precision("BTC/USDT", spot_bid * 0.9))
    record(c, "create_order spot limit", lambda: ex.create_order("BTC/USDT", "limit", "buy", 0.001, spot_price)["id"])
    record(c, "cancel_all_orders spot", lambda: len(ex.cancel_all_orders("BTC/USDT")))
    bad = ccxt.bybit({"apiKey": KEY, "secret": SECRET + "-wrong"})
    point_ccxt(bad)
    bad.markets, bad.markets_by_id, bad.currencies = ex.markets, ex.markets_by_id, ex.currencies

    def refused():
        try:
            bad.fetch_balance()
        except ccxt.AuthenticationError as e:
            assert "10004" in str(e), str(e)
            return "refused with 10004"
        raise AssertionError("a wrong secret was accepted")

    record(c, "wrong secret", refused)


def ccxt_pro():
    import ccxt.pro as ccxtpro

    async def run():
        ex = ccxtpro.bybit({})
        point_ccxt(ex)
        c = "ccxt.pro"
        await ex.load_markets()
        calls = [
            ("watch_order_book BTC/USDT:USDT", lambda: ex.watch_order_book("BTC/USDT:USDT", 50), lambda r: len(r["bids"])),
            ("watch_order_book BTC/USDT", lambda: ex.watch_order_book("BTC/USDT", 50), lambda r: len(r["bids"])),
            ("watch_ticker BTC/USDT:USDT", lambda: ex.watch_ticker("BTC/USDT:USDT"), lambda r: r["last"]),
            ("watch_ticker ETH/USDT", lambda: ex.watch_ticker("ETH/USDT"), lambda r: r["last"]),
            ("watch_tickers", lambda: ex.watch_tickers(["BTC/USDT:USDT", "ETH/USDT:USDT"]), len),
            ("watch_trades BTC/USDT:USDT", lambda: ex.watch_trades("BTC/USDT:USDT"), len),
            ("watch_trades BTC/USDT", lambda: ex.watch_trades("BTC/USDT"), len),
            ("watch_ohlcv BTC/USDT:USDT", lambda: ex.watch_ohlcv("BTC/USDT:USDT", "1m"), len),
            ("watch_ohlcv BTC/USDT", lambda: ex.watch_ohlcv("BTC/USDT", "1m"), len),
            ("watch_order_book_for_symbols", lambda: ex.watch_order_book_for_symbols(["BTC/USDT:USDT", "ETH/USDT:USDT"]), lambda r: len(r["bids"])),
            ("watch_trades_for_symbols", lambda: ex.watch_trades_for_symbols(["BTC/USDT:USDT", "ETH/USDT:USDT"]), len),
        ]
        for name, start, show in calls:
            t0 = time.time()
            try:
                r = await asyncio.wait_for(start(), TIMEOUT_S)
                rows.append((c, name, True, str(show(r))[:70], time.time() - t0))
            except Exception as e:
                rows.append((c, name, False, f"{type(e).__name__}: {e}"[:70], time.time() - t0))
        await ex.close()
        # The private streams: each watch is started, then an order gives it something to say.
        ex = ccxtpro.bybit({"apiKey": KEY, "secret": SECRET})
        point_ccxt(ex)
        await ex.load_markets()
        sym = "BTC/USDT:USDT"
        watches = [
            ("watch_orders", lambda: ex.watch_orders(sym), "buy"),
            ("watch_my_trades", lambda: ex.watch_my_trades(sym), "buy"),
            ("watch_positions", lambda: ex.watch_positions([sym]), "sell"),
            ("watch_balance", lambda: ex.watch_balance(), "sell"),
        ]
        for name, watch, side in watches:
            t0 = time.time()

            async def trade_soon(side=side):
                await asyncio.sleep(1.5)
                await ex.create_order(sym, "market", side, 0.001)

            task = asyncio.ensure_future(trade_soon())
            try:
                r = await asyncio.wait_for(watch(), TIMEOUT_S)
                await task
                rows.append(("ccxt.pro (keys)", name, True, str(r)[:70], time.time() - t0))
            except Exception as e:
                rows.append(("ccxt.pro (keys)", name, False, f"{type(e).__name__}: {e}"[:70], time.time() - t0))
        await ex.close()

    asyncio.run(run())


def pybit_all():
    import pybit.unified_trading as u
    from pybit.unified_trading import HTTP, WebSocket

    # The base-URL change: the HTTP endpoint, and the module's WebSocket URL templates.
    u.PUBLIC_WSS = WS + "/v5/public/{CHANNEL_TYPE}"
    u.PRIVATE_WSS = WS + "/v5/private"
    s = HTTP(testnet=False)
    s.endpoint = BASE
    c = "pybit"
    now_ms = int(time.time() * 1000)
    record(c, "get_server_time", lambda: s.get_server_time()["result"]["timeSecond"])
    for cat in ["linear", "spot"]:
        record(c, f"get_instruments_info {cat}", lambda: len(s.get_instruments_info(category=cat)["result"]["list"]))
        record(c, f"get_tickers {cat}", lambda: s.get_tickers(category=cat, symbol="BTCUSDT")["result"]["list"][0]["lastPrice"])
        record(c, f"get_orderbook {cat} 50", lambda: len(s.get_orderbook(category=cat, symbol="BTCUSDT", limit=50)["result"]["b"]))
        record(c, f"get_orderbook {cat} 200", lambda: len(s.get_orderbook(category=cat, symbol="BTCUSDT", limit=200)["result"]["a"]))
        record(c, f"get_kline {cat}", lambda: len(s.get_kline(category=cat, symbol="BTCUSDT", interval="1", limit=5)["result"]["list"]))
        record(c, f"get_kline {cat} start", lambda: len(s.get_kline(category=cat, symbol="BTCUSDT", interval="1", start=now_ms - 3_600_000, limit=10)["result"]["list"]))
        record(c, f"get_public_trade_history {cat}", lambda: len(s.get_public_trade_history(category=cat, symbol="BTCUSDT", limit=5)["result"]["list"]))
    for cat in ["linear", "spot"]:
        got = {}
        lock = threading.Lock()

        def keep(name):
            def cb(m):
                with lock:
                    got.setdefault(name, m)
            return cb

        ws = WebSocket(testnet=False, channel_type=cat)
        t0 = time.time()
        ws.orderbook_stream(50, "BTCUSDT", keep("orderbook_stream"))
        ws.ticker_stream("BTCUSDT", keep("ticker_stream"))
        ws.trade_stream("BTCUSDT", keep("trade_stream"))
        ws.kline_stream(1, "BTCUSDT", keep("kline_stream"))
        while len(got) < 4 and time.time() - t0 < TIMEOUT_S:
            time.sleep(0.05)
        for name in ["orderbook_stream", "ticker_stream", "trade_stream", "kline_stream"]:
            m = got.get(name)
            rows.append((c, f"{name} {cat}", m is not None, (m or {}).get("topic", "no message")[:70], time.time() - t0))
        ws.exit()

    # With keys.
    s = HTTP(testnet=False, api_key=KEY, api_secret=SECRET)
    s.endpoint = BASE
    c = "pybit (keys)"
    bid = float(s.get_orderbook(category="linear", symbol="BTCUSDT", limit=1)["result"]["b"][0][0])
    below = f"{round(bid * 0.9, 1):.1f}"
    link = f"keel-suite-{int(time.time() * 1000)}"
    record(c, "place_order limit", lambda: s.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="0.001", price=below, orderLinkId=link)["result"]["orderId"])
    record(c, "get_open_orders", lambda: len(s.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"]))
    record(c, "get_open_orders by orderLinkId", lambda: s.get_open_orders(category="linear", orderLinkId=link)["result"]["list"][0]["orderStatus"])
    record(c, "amend_order", lambda: s.amend_order(category="linear", symbol="BTCUSDT", orderLinkId=link, qty="0.002")["result"]["orderLinkId"])
    record(c, "cancel_order", lambda: s.cancel_order(category="linear", symbol="BTCUSDT", orderLinkId=link)["result"]["orderLinkId"])

    def duplicate():
        try:
            s.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="0.001", price=below, orderLinkId=link)
        except Exception as e:
            assert "110072" in str(e), str(e)
            return "refused with 110072"
        raise AssertionError("a duplicate orderLinkId was accepted")

    record(c, "place_order duplicate orderLinkId", duplicate)
    record(c, "place_order market", lambda: s.place_order(category="linear", symbol="BTCUSDT", side="Sell", orderType="Market", qty="0.001")["result"]["orderId"])
    record(c, "get_order_history", lambda: len(s.get_order_history(category="linear", symbol="BTCUSDT")["result"]["list"]))
    record(c, "get_executions", lambda: len(s.get_executions(category="linear", symbol="BTCUSDT")["result"]["list"]))
    record(c, "get_positions", lambda: s.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]["size"])
    record(c, "get_wallet_balance", lambda: s.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]["totalEquity"])
    record(c, "get_fee_rates", lambda: s.get_fee_rates(category="linear", symbol="BTCUSDT")["result"]["list"][0]["takerFeeRate"])
    record(c, "cancel_all_orders", lambda: s.cancel_all_orders(category="linear", symbol="BTCUSDT")["result"]["success"])
    got = {}
    lock = threading.Lock()

    def keep(name):
        def cb(m):
            with lock:
                got.setdefault(name, m)
        return cb

    t0 = time.time()
    ws = WebSocket(testnet=False, channel_type="private", api_key=KEY, api_secret=SECRET)
    ws.order_stream(keep("order_stream"))
    ws.execution_stream(keep("execution_stream"))
    ws.position_stream(keep("position_stream"))
    ws.wallet_stream(keep("wallet_stream"))
    time.sleep(1.0)
    s.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.001")
    while len(got) < 4 and time.time() - t0 < TIMEOUT_S:
        time.sleep(0.05)
    for name in ["order_stream", "execution_stream", "position_stream", "wallet_stream"]:
        m = got.get(name)
        rows.append((c, name, m is not None, (m or {}).get("topic", "no message")[:70], time.time() - t0))
    ws.exit()


def main():
    for part in (ccxt_sync, ccxt_private, ccxt_pro, pybit_all):
        try:
            part()
        except Exception as e:
            rows.append((part.__name__, "setup", False, f"{type(e).__name__}: {e}"[:70], 0.0))
    w = max(len(f"{a} {b}") for a, b, *_ in rows)
    print(f"{'call':<{w}}  result  detail")
    for client, call, ok, detail, secs in rows:
        print(f"{client + ' ' + call:<{w}}  {'ok' if ok else 'FAIL':<6}  {detail} ({secs:.2f} s)")
    failed = sum(1 for r in rows if not r[2])
    print(f"clients: {len(rows) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


main()
