"""Message layouts at server version 157: expected bytes, field counts, and decoding by the real clients."""

from __future__ import annotations

import datetime as dt

import ib_async
import ib_insync
import pytest

from ibsim import messages as m
from ibsim.catalog import build_catalog
from ibsim.framing import UNSET_DOUBLE, FieldError, encode_payload, frame
from ibsim.model import Execution, Order

CATALOG = build_catalog(today=dt.date(2025, 1, 2))
AAPL = CATALOG.get(265598)
ES = next(i for i in CATALOG if i.local_symbol == "ESH5")
ORDER = Order(
    client_id=7,
    order_id=12,
    perm_id=900000001,
    con_id=265598,
    exchange="SMART",
    action="BUY",
    total_quantity=100,
    order_type="LMT",
    lmt_price=189.0,
    account="DU1234567",
    order_ref="tv2ib:1:entry",
    status="Submitted",
    tif="DAY",
)
EXECUTION = Execution(  # a fill of 40 of ORDER: its ids, account and orderRef
    exec_id="0000e0d5.35a4e901.01.01",
    client_id=ORDER.client_id,
    order_id=ORDER.order_id,
    perm_id=ORDER.perm_id,
    con_id=ORDER.con_id,
    account=ORDER.account,
    side="BOT",
    shares=40,
    price=188.5,
    cum_qty=40,
    avg_price=188.5,
    order_ref=ORDER.order_ref,
    time=1735819200,
    exchange="ISLAND",
    order_exchange="SMART",
    commission=1.0,
    commission_currency="USD",
    realized_pnl=None,
)


def payload(text: str) -> bytes:
    """Expected payload written with '|' between fields (every field NUL-terminated)."""
    return "".join(f + "\0" for f in text.split("|")).encode()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (m.handshake_reply("20250101 12:00:00 UTC"), "157|20250101 12:00:00 UTC"),
        (m.managed_accounts(["DU1234567"]), "15|1|DU1234567"),
        (m.managed_accounts(["DU1", "DU2"]), "15|1|DU1,DU2"),
        (m.next_valid_id(1), "9|1|1"),
        (m.current_time(1735819200), "49|1|1735819200"),
        (
            m.error(-1, 2104, "Market data farm connection is OK:usfarm"),
            "4|2|-1|2104|Market data farm connection is OK:usfarm",
        ),
        (m.error(12, 202, "Order Canceled - reason:"), "4|2|12|202|Order Canceled - reason:"),
        (m.order_status(ORDER), "3|12|Submitted|0|100|0|900000001|0|0|7||0"),
        (
            m.commission_report(EXECUTION),
            "59|1|0000e0d5.35a4e901.01.01|1|USD|1.7976931348623157E308|1.7976931348623157E308|",
        ),
        (
            m.exec_details(-1, EXECUTION, AAPL),
            "11|-1|12|265598|AAPL|STK||0|||SMART|USD|AAPL|NMS|0000e0d5.35a4e901.01.01|1735819200|DU1234567|"
            "ISLAND|BOT|40|188.5|900000001|7|0|40|188.5|tv2ib:1:entry||||2",
        ),
        (
            m.position("DU1234567", ES, 2, 250000.0),
            "61|3|DU1234567|637002503|ES|FUT|20250321|0||50|CME|USD|ESH5|ES|2|250000",
        ),
        (
            m.update_portfolio(ES, 2, 5010.0, 501000.0, 250000.0, 1000.0, 0.0, "DU1234567"),
            "7|8|637002503|ES|FUT|20250321|0||50|CME|USD|ESH5|ES|2|5010|501000|250000|1000|0|DU1234567",
        ),
        (
            m.update_account_value("NetLiquidation", "1000000.00", "USD", "DU1"),
            "6|2|NetLiquidation|1000000.00|USD|DU1",
        ),
        (m.update_account_time("12:30"), "8|1|12:30"),
        (m.account_download_end("DU1"), "54|1|DU1"),
        (
            m.account_update_multi(3, "DU1", "NetLiquidation", "5.00", "USD"),
            "73|1|3|DU1||NetLiquidation|5.00|USD",
        ),
        (m.account_update_multi_end(3), "74|1|3"),
        (m.account_summary(4, "DU1", "BuyingPower", "1.00", "USD"), "63|1|4|DU1|BuyingPower|1.00|USD"),
        (m.account_summary_end(4), "64|1|4"),
        (m.position_end(), "62|1"),
        (m.open_order_end(), "53|1"),
        (m.completed_orders_end(), "102"),
        (m.exec_details_end(2), "55|1|2"),
        (m.contract_details_end(3), "52|1|3"),
        (m.market_data_type(5, 1), "58|1|5|1"),
        (m.tick_price(5, 1, 189.99, 100, 1), "1|6|5|1|189.99|100|1"),
        (m.tick_size(5, 8, 1000), "2|6|5|8|1000"),
        (m.tick_snapshot_end(5), "57|1|5"),
        (m.pnl(9, 1.5, 2.0, -3.0), "94|9|1.5|2|-3"),
        (m.pnl_single(9, 2, 1.5, 2.0, -3.0, 10.0), "95|9|2|1.5|2|-3|10"),
        (m.market_rule(26, [(0.0, 0.01)]), "93|26|1|0|0.01"),
        (m.symbol_samples(8, [AAPL]), "79|8|1|265598|AAPL|STK|NASDAQ|USD|2|FUT|OPT"),
        (
            m.historical_data(
                4,
                "20250101 00:00:00",
                "20250102 00:00:00",
                [m.Bar("20250102", 1.0, 2.0, 0.5, 1.5, 100, 1.25, 7)],
            ),
            "17|4|20250101 00:00:00|20250102 00:00:00|1|20250102|1|2|0.5|1.5|100|1.25|7",
        ),
        (m.head_timestamp(4, "1735689600"), "88|4|1735689600"),
    ],
)
def test_small_layouts_bytes(fields: list[object], expected: str) -> None:
    assert encode_payload(fields) == payload(expected)


def test_frame_is_length_prefixed() -> None:
    assert frame(m.next_valid_id(1)) == b"\x00\x00\x00\x069\x001\x001\x00"


def test_strict_field_counts() -> None:
    # the counts the clients unpack exactly (docs/ibsim-protocol.md, "How strictly each message is read")
    assert len(m.exec_details(-1, EXECUTION, AAPL)) == 31
    assert len(m.commission_report(EXECUTION)) == 8
    assert len(m.position("DU1", AAPL, 1, 1)) == 16
    assert len(m.update_portfolio(AAPL, 1, 1, 1, 1, 0, 0, "DU1")) == 20
    assert len(m.tick_price(1, 1, 1.0, 1, 0)) == 7
    assert len(m.next_valid_id(1)) == len(m.managed_accounts(["DU1"])) == 3
    assert len(m.contract_details(1, AAPL)) == 39
    assert len(m.open_order(ORDER, AAPL)) == 120
    assert len(m.completed_order(ORDER, AAPL)) == 92


def test_contract_details_bytes() -> None:
    expected = (
        "10|8|3|ES|FUT|20250321 08:30 US/Central|0||CME|USD|ESH5|ES|ES|637002503|0.25|1|50|"
        "ACTIVETIM,ADJUST,ALERT,ALLOC,DAY,GTC,IOC,FOK,LMT,MKT,STP,STPLMT,TRAIL,WHATIF|CME|1|11004968|"
        "E-mini S&P 500||202503||||US/Central|||||0|1|ES|IND|67|20250321|"
    )
    assert encode_payload(m.contract_details(3, ES, "CME")) == payload(expected)


def layout(count: int, values: dict[int, object]) -> bytes:
    """Expected payload of ``count`` fields: the given indices (from the spec tables), "" elsewhere."""
    return "".join(str(values.get(i, "")) + "\0" for i in range(count)).encode()


ZEROS = "0"


def test_open_order_bytes() -> None:
    # field indices of openOrder at version 157, as the clients' decoders read them
    spec: dict[int, object] = {
        0: 5,
        1: 12,
        2: 265598,
        3: "AAPL",
        4: "STK",
        6: 0,
        9: "SMART",
        10: "USD",
        11: "AAPL",
        12: "NMS",
        13: "BUY",
        14: 100,
        15: "LMT",
        16: 189,
        18: "DAY",
        20: "DU1234567",
        21: "O",
        22: 0,
        23: "tv2ib:1:entry",
        24: 7,
        25: 900000001,
        26: 0,
        27: 0,
        28: 0,
        40: 0,
        42: -1,
        43: 0,
        49: 0,
        50: 0,
        51: 0,
        52: 0,
        54: 0,
        55: 0,
        56: 0,
        58: 0,
        59: 0,
        64: 0,
        71: 0,
        72: 0,
        73: 0,
        78: 0,
        81: 0,
        82: 0,
        84: 0,
        85: 0,
        86: "Submitted",
        101: 0,
        102: 0,
        103: 0,
        111: 0,
        116: 0,
        117: 0,
        118: 0,
        119: 0,
    }
    assert encode_payload(m.open_order(ORDER, AAPL)) == layout(120, spec)


def test_open_order_what_if_carries_numeric_margins() -> None:
    state = m.WhatIfState(1, 2, 3, 1234.5, 5, 6, 7, 8, 9, 1.0, 1.0, 1.0)
    fields = m.open_order(ORDER, AAPL, "PreSubmitted", state)
    assert fields[85] is True and fields[86] == "PreSubmitted" and fields[90] == 1234.5
    assert fields[96:100] == [1.0, 1.0, 1.0, "USD"]


def test_completed_order_bytes() -> None:
    # field indices of completedOrder at version 157, as the clients' decoders read them
    spec: dict[int, object] = {
        0: 101,
        1: 265598,
        2: "AAPL",
        3: "STK",
        5: 0,
        8: "SMART",
        9: "USD",
        10: "AAPL",
        11: "NMS",
        12: "BUY",
        13: 100,
        14: "LMT",
        15: 189,
        17: "DAY",
        19: "DU1234567",
        20: "O",
        21: 0,
        22: "tv2ib:1:entry",
        23: 900000001,
        24: 0,
        25: 0,
        26: 0,
        37: 0,
        39: -1,
        45: 0,
        46: 0,
        47: 0,
        49: 0,
        50: 0,
        55: 0,
        60: 0,
        61: 0,
        62: 0,
        69: 0,
        70: 0,
        72: 0,
        73: "Submitted",
        74: 0,
        75: 0,
        76: 0,
        80: 0,
        81: 0,
        83: 0,
        84: 0,
        85: 0,
        87: 0,
        88: 0,
        89: 0,
        91: "Submitted",
    }
    assert encode_payload(m.completed_order(ORDER, AAPL)) == layout(92, spec)


# ----------------------------------------------------------- decoded by the real clients


@pytest.mark.parametrize("lib", [ib_async, ib_insync], ids=["ib_async", "ib_insync"])
def test_real_decoders_read_order_flow(lib) -> None:
    ib = lib.IB()
    ib.wrapper.clientId = 7
    ib.wrapper.accounts = ["DU1234567"]
    decoder = lib.decoder.Decoder(ib.wrapper, 157)

    def feed(fields: list[object]) -> None:
        decoder.interpret(encode_payload(fields).decode().split("\0")[:-1])

    feed(m.open_order(ORDER, AAPL))
    feed(m.order_status(ORDER))
    (trade,) = ib.wrapper.trades.values()
    assert trade.order.permId == 900000001 and trade.order.orderRef == "tv2ib:1:entry"
    assert trade.contract.conId == 265598 and trade.orderStatus.status == "Submitted"
    feed(m.exec_details(-1, EXECUTION, AAPL))
    feed(m.commission_report(EXECUTION))
    assert len(trade.fills) == 1
    fill = trade.fills[0]
    assert fill.execution.shares == 40 and fill.execution.orderRef == "tv2ib:1:entry"
    assert fill.commissionReport.commission == 1.0
    feed(m.position("DU1234567", ES, 2, 250000.0))
    assert ib.positions()[0].avgCost == 250000.0
    feed(m.update_portfolio(ES, 2, 5010.0, 501000.0, 250000.0, 1000.0, 0.0, "DU1234567"))
    assert ib.portfolio()[0].unrealizedPNL == 1000.0


@pytest.mark.parametrize("lib", [ib_async, ib_insync], ids=["ib_async", "ib_insync"])
def test_real_decoders_read_contract_details(lib) -> None:
    got = []
    wrapper = lib.IB().wrapper
    wrapper.contractDetails = lambda req_id, cd: got.append(cd)
    decoder = lib.decoder.Decoder(wrapper, 157)
    decoder.interpret(encode_payload(m.contract_details(3, ES, "CME")).decode().split("\0")[:-1])
    (cd,) = got
    assert cd.contract.conId == 637002503 and cd.contract.multiplier == "50"
    assert cd.contract.lastTradeDateOrContractMonth == "20250321" and cd.minTick == 0.25
    assert cd.contractMonth == "202503" and cd.underConId == 11004968


# ----------------------------------------------------------- client -> server, encoded by the real clients


def encoded(lib, method: str, *args: object) -> list[str]:
    """The fields a real client writes for one request at server version 157 (no socket)."""
    client = lib.IB().client
    client._serverVersion = 157
    client.connState = client.CONNECTED
    sent: list[str] = []
    client.sendMsg = sent.append
    try:
        getattr(client, method)(*args)
    finally:
        client.connState = client.DISCONNECTED
    (message,) = sent
    return message.split("\0")[:-1]


LIBS = pytest.mark.parametrize("lib", [ib_async, ib_insync], ids=["ib_async", "ib_insync"])


@LIBS
def test_place_order_limit_child(lib) -> None:
    order = lib.LimitOrder("SELL", 100, 195.5, orderRef="tv2ib:9:tp", transmit=False, parentId=41, tif="GTC")
    order.ocaGroup, order.ocaType = "grp", 3
    fields = encoded(lib, "placeOrder", 42, lib.Stock("AAPL", "SMART", "USD"), order)
    assert len(fields) == 110
    req = m.parse_place_order(fields)
    assert (req.order_id, req.action, req.total_quantity, req.order_type) == (42, "SELL", 100.0, "LMT")
    assert (req.lmt_price, req.tif, req.order_ref, req.transmit, req.parent_id) == (
        195.5,
        "GTC",
        "tv2ib:9:tp",
        False,
        41,
    )
    assert (req.oca_group, req.oca_type) == ("grp", 3)
    assert req.contract.symbol == "AAPL" and req.contract.exchange == "SMART"
    assert not req.what_if


@LIBS
def test_place_order_trail_percent_and_what_if(lib) -> None:
    order = lib.Order(action="SELL", totalQuantity=0.5, orderType="TRAIL", trailingPercent=1.5, whatIf=True)
    req = m.parse_place_order(encoded(lib, "placeOrder", 5, lib.Crypto("BTC", "PAXOS", "USD"), order))
    assert req.trailing_percent == 1.5 and req.total_quantity == 0.5 and req.what_if
    assert req.aux_price >= UNSET_DOUBLE


@LIBS
def test_place_order_with_optional_groups(lib) -> None:
    order = lib.LimitOrder("BUY", 1, 10.0)
    order.algoStrategy = "Adaptive"
    order.algoParams = [lib.TagValue("adaptivePriority", "Normal")]
    order.hedgeType, order.hedgeParam = "F", "1"
    order.conditions = [lib.PriceCondition(price=100.0, conId=265598, exch="SMART")]
    order.scalePriceIncrement = 0.5
    order.deltaNeutralOrderType = "LMT"
    req = m.parse_place_order(encoded(lib, "placeOrder", 6, lib.Stock("AAPL", "SMART", "USD"), order))
    assert req.conditions_count == 1 and req.lmt_price == 10.0


@LIBS
def test_place_order_bag(lib) -> None:
    bag = lib.Contract(secType="BAG", symbol="AAPL", exchange="SMART", currency="USD")
    bag.comboLegs = [lib.ComboLeg(conId=265598, ratio=1, action="BUY", exchange="SMART")]
    req = m.parse_place_order(encoded(lib, "placeOrder", 7, bag, lib.MarketOrder("BUY", 1)))
    assert req.sec_type_bag


@LIBS
def test_contract_details_and_executions_requests(lib) -> None:
    req_id, query = m.parse_contract_details_request(
        encoded(lib, "reqContractDetails", 3, lib.Future("ES", "202503", "CME"))
    )
    assert (req_id, query.symbol, query.sec_type, query.last_trade_date_or_contract_month) == (
        3,
        "ES",
        "FUT",
        "202503",
    )
    flt = lib.ExecutionFilter(clientId=7, symbol="AAPL", side="BUY", time="20250101 00:00:00")
    req_id, parsed = m.parse_executions_request(encoded(lib, "reqExecutions", 4, flt))
    assert (req_id, parsed.client_id, parsed.symbol, parsed.side, parsed.time) == (
        4,
        7,
        "AAPL",
        "BUY",
        "20250101 00:00:00",
    )
    md = m.parse_mkt_data_request(
        encoded(lib, "reqMktData", 9, lib.Stock("AAPL", "SMART", "USD"), "", True, False, [])
    )
    assert md.req_id == 9 and md.snapshot and md.contract.symbol == "AAPL"


@LIBS
def test_historical_request(lib) -> None:
    fields = encoded(
        lib,
        "reqHistoricalData",
        5,
        lib.Stock("AAPL", "SMART", "USD"),
        "20250102 10:00:00 UTC",
        "3 D",
        "5 mins",
        "TRADES",
        1,
        2,
        False,
        [],
    )
    req = m.parse_historical_request(fields)
    assert (req.req_id, req.contract.symbol, req.duration, req.bar_size, req.format_date) == (
        5,
        "AAPL",
        "3 D",
        "5 mins",
        2,
    )
    assert req.end == "20250102 10:00:00 UTC" and req.use_rth and not req.keep_up_to_date


def test_place_order_truncated_or_padded_is_an_error() -> None:
    fields = encoded(
        ib_async, "placeOrder", 42, ib_async.Stock("AAPL", "SMART", "USD"), ib_async.MarketOrder("BUY", 1)
    )
    with pytest.raises(FieldError):
        m.parse_place_order(fields[:-1])
    with pytest.raises(FieldError):
        m.parse_place_order([*fields, "extra"])
    garbage = list(fields)
    garbage[17] = "lots"
    with pytest.raises(FieldError):
        m.parse_place_order(garbage)
