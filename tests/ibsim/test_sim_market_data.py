"""An account without live data, market rules and whatIf margin, with ib_async AND ib_insync 0.9.86.

What a real account answers when it has no live API subscription: a live request is refused (354,
or 10089 "delayed market data is available"); after ``reqMarketDataType(3)`` the delayed data
comes with warning 10167, IB's marketDataType message and the delayed tick types (66 bid, 67 ask,
68 last, 74 volume, 75 close), which both libraries file under bid / ask / last / close.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import ib_async
import ib_insync
import pytest
from ibsim_helpers import wait_for

from ibsim.__main__ import parse_args
from ibsim.testing import SimThread

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["ib_async", "ib_insync"])
def client(request: pytest.FixtureRequest, fresh: SimThread, client_id: int) -> Iterator[tuple[Any, Any]]:
    """(library module, connected IB) for each library."""
    lib = ib_async if request.param == "ib_async" else ib_insync
    ib = lib.IB()
    ib.connect("127.0.0.1", fresh.port, clientId=client_id, timeout=5)
    yield lib, ib
    ib.disconnect()


def _errors(ib: Any) -> list[tuple[int, str]]:
    seen: list[tuple[int, str]] = []
    ib.errorEvent += lambda req_id, code, text, *rest: seen.append((code, text))
    return seen


def _usd_values(ib: Any) -> dict[str, float]:
    return {v.tag: float(v.value) for v in ib.accountValues() if v.currency == "USD" and v.tag != "Currency"}


def _aapl(lib: Any, ib: Any) -> Any:
    (contract,) = ib.qualifyContracts(lib.Stock("AAPL", "SMART", "USD"))
    return contract


@pytest.mark.parametrize("code", [354, 10089])
def test_live_request_refused_then_delayed_data(client, fresh: SimThread, code: int) -> None:
    lib, ib = client
    fresh.set_market_data("delayed", live_error=code)
    errors = _errors(ib)
    contract = _aapl(lib, ib)
    (live,) = ib.reqTickers(contract)  # ends at once on the error: no ticks
    assert live.last != live.last and live.bid != live.bid  # NaN: nothing came
    assert errors[-1][0] == code and "Delayed market data is available" in errors[-1][1]
    ib.reqMarketDataType(3)
    (delayed,) = ib.reqTickers(contract)
    assert delayed.marketDataType == 3
    assert (delayed.bid, delayed.ask, delayed.last, delayed.close) == (189.99, 190.01, 190.0, 190.0)
    assert errors[-1] == (10167, "Requested market data is not subscribed. Displaying delayed market data.")


def test_delayed_stream_follows_the_price_and_frozen_asks_get_type_4(client, fresh: SimThread) -> None:
    lib, ib = client
    fresh.set_market_data("delayed")
    contract = _aapl(lib, ib)
    ib.reqMarketDataType(4)
    ticker = ib.reqMktData(contract)
    wait_for(ib, lambda: ticker.last == 190.0)
    assert ticker.marketDataType == 4
    fresh.set_price("AAPL", 191.5)
    wait_for(ib, lambda: ticker.last == 191.5 and ticker.bid == 191.49)
    ib.cancelMktData(contract)


def test_streams_are_counted_listed_and_ended_when_the_login_loses_their_data(
    client, fresh: SimThread
) -> None:
    lib, ib = client
    errors = _errors(ib)
    contract = _aapl(lib, ib)
    before = fresh.state()["stats"]
    ticker = ib.reqMktData(contract)
    wait_for(ib, lambda: ticker.last == 190.0)
    ib.reqTickers(contract)
    state = fresh.state()
    assert [(line["clientId"], line["conId"]) for line in state["marketDataLines"]] == [
        (ib.client.clientId, 265598)
    ]
    counted = {
        k: state["stats"][k] - before[k]
        for k in ("mkt_data_streams", "mkt_data_snapshots", "mkt_data_cancels")
    }
    assert counted == {"mkt_data_streams": 1, "mkt_data_snapshots": 1, "mkt_data_cancels": 0}
    # the login loses live data: the live stream ends with the error a new request would get
    fresh.set_market_data("delayed", live_error=10089)
    wait_for(ib, lambda: any(code == 10089 for code, _ in errors))
    assert fresh.state()["marketDataLines"] == []
    fresh.set_price("AAPL", 191.0)
    ib.sleep(0.1)
    assert ticker.last == 190.0  # nothing follows on the ended stream
    # a delayed stream survives going back to live data, and ends (10168) when no data is left
    ib.reqMarketDataType(3)
    delayed = ib.reqMktData(contract)
    wait_for(ib, lambda: delayed.last == 191.0 and delayed.marketDataType == 3)
    fresh.set_market_data("live")
    assert len(fresh.state()["marketDataLines"]) == 1
    fresh.set_market_data("none")
    wait_for(ib, lambda: errors[-1][0] == 10168)
    assert fresh.state()["marketDataLines"] == []


def test_no_data_at_all(client, fresh: SimThread) -> None:
    lib, ib = client
    fresh.set_market_data("none")
    errors = _errors(ib)
    contract = _aapl(lib, ib)
    ib.reqTickers(contract)
    ib.reqMarketDataType(3)
    (ticker,) = ib.reqTickers(contract)
    assert ticker.last != ticker.last
    assert [code for code, _ in errors] == [354, 10168]


def test_a_live_account_gets_live_data_whatever_was_asked(client, fresh: SimThread) -> None:
    lib, ib = client
    ib.reqMarketDataType(3)
    (ticker,) = ib.reqTickers(_aapl(lib, ib))
    assert ticker.marketDataType == 1 and ticker.last == 190.0


def test_market_rule_bands_and_rule_ids_per_exchange(client) -> None:
    lib, ib = client
    (detail,) = ib.reqContractDetails(lib.Stock("AAPL", "SMART", "USD"))
    assert len(detail.marketRuleIds.split(",")) == len(detail.validExchanges.split(",")) == 6
    rule = ib.reqMarketRule(int(detail.marketRuleIds.split(",")[0]))
    assert [(r.lowEdge, r.increment) for r in rule] == [(0.0, 0.0001), (1.0, 0.01)]


def test_orders_are_checked_on_the_price_band(client, fresh: SimThread) -> None:
    lib, ib = client
    contract = _aapl(lib, ib)
    fresh.set_price("AAPL", 0.5)
    refused: list[int] = []
    ib.errorEvent += lambda req_id, code, *rest: refused.append(req_id) if code == 110 else None
    sub_dollar = ib.placeOrder(contract, lib.LimitOrder("BUY", 10, 0.4512))
    off_grid = ib.placeOrder(contract, lib.LimitOrder("BUY", 10, 1.0001))  # 1.00 and up: 0.01 steps
    wait_for(ib, lambda: sub_dollar.orderStatus.status == "Submitted" and refused == [off_grid.order.orderId])


def test_what_if_matches_the_account_values(client, fresh: SimThread) -> None:
    lib, ib = client
    contract = _aapl(lib, ib)
    values = _usd_values(ib)
    state = ib.whatIfOrder(contract, lib.MarketOrder("BUY", 100000))
    # 100,000 x 190 x 25 %: far above the 1,000,000 available
    assert float(state.initMarginChange) == 4_750_000.0 > values["AvailableFunds"] == 1_000_000.0
    assert float(state.initMarginBefore) == values["InitMarginReq"] == 0.0
    assert float(state.equityWithLoanBefore) == values["EquityWithLoanValue"]
    trade = ib.placeOrder(contract, lib.MarketOrder("BUY", 100))
    wait_for(ib, lambda: trade.orderStatus.status == "Filled")
    wait_for(ib, lambda: any(v.tag == "InitMarginReq" and float(v.value) > 0 for v in ib.accountValues()))
    values = _usd_values(ib)
    assert values["InitMarginReq"] == 4750.0
    assert values["AvailableFunds"] == round(values["NetLiquidation"] - values["InitMarginReq"], 2)
    closing = ib.whatIfOrder(contract, lib.MarketOrder("SELL", 100))
    assert float(closing.initMarginChange) == -4750.0 and float(closing.initMarginAfter) == 0.0


def test_a_cash_account_pays_in_full(client, fresh: SimThread) -> None:
    lib, ib = client
    fresh.set_cash_account(True)
    state = ib.whatIfOrder(_aapl(lib, ib), lib.MarketOrder("BUY", 10))
    assert float(state.initMarginChange) == 1900.0


def test_control_route_cli_option_and_reset(fresh: SimThread) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{fresh.control_port}", timeout=5) as http:
        answer = http.post("/market_data", json={"mode": "delayed", "liveError": 10089})
        assert answer.json() == {"ok": True, "marketData": "delayed", "liveError": 10089}
        assert http.get("/state").json()["marketData"] == "delayed"
        for body in ({"mode": "sometimes"}, {"mode": "delayed", "liveError": 200}):
            refused = http.post("/market_data", json=body)
            assert refused.status_code == 422 and refused.json()["error"] == "invalid"
        http.post("/reset")
        assert http.get("/state").json()["marketData"] == "live"  # reset: the starting mode
    assert parse_args(["--market-data", "delayed"]).market_data == "delayed"
    assert parse_args([]).market_data == "live"
