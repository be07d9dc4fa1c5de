"""The control API's routes: one function per route, in the table :data:`POST_ROUTES`, each turning
a JSON body into a call of the operator API (:class:`~ibsim.server.operator.OperatorControls`).

A field error is 422, a contract, order or account not found is 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ibsim.model import Json
from ibsim.server.operator import OperatorControls


class HttpError(Exception):
    """An error answer with a status, a code and a sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _opt_int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _required(body: Json, name: str, why: str = "") -> Any:
    if name not in body:
        raise HttpError(422, "invalid", f"field {name!r} is required{why}")
    return body[name]


def _contract(body: Json) -> Json:
    """The contract fields of a body as the operator API's keyword arguments."""
    return {
        "symbol": str(body.get("symbol", "")),
        "sec_type": str(body.get("secType", "")),
        "con_id": _opt_int(body.get("conId")),
    }


def price(sim: OperatorControls, body: Json) -> Json:
    """POST /price: set a price by symbol (+ secType, currency, exchange, expiry) or conId."""
    _required(body, "price")
    if not body.get("symbol") and not body.get("conId"):
        raise HttpError(422, "invalid", "give 'symbol' (with optional 'secType') or 'conId'")
    extra = {k: str(body[k]) for k in ("currency", "exchange", "expiry") if body.get(k)}
    value = float(body["price"])
    contract = _contract(body)
    con_ids = sim.set_price(contract.pop("symbol"), value, **contract, **extra)
    return {"ok": True, "conIds": con_ids, "price": value}


def fault(sim: OperatorControls, body: Json) -> Json:
    """POST /fault: inject a fault of ``kind`` with its fields."""
    kind = body.get("kind")
    if not isinstance(kind, str):
        raise HttpError(422, "invalid", "field 'kind' is required")
    kw = {k: v for k, v in body.items() if k != "kind"}
    return {"ok": True, "kind": kind, **sim.fault(kind, **kw)}


def reset(sim: OperatorControls, body: Json) -> Json:
    """POST /reset."""
    sim.reset()
    return {"ok": True}


def fill_limit(sim: OperatorControls, body: Json) -> Json:
    """POST /fill_limit: per-fill quantity limit on a contract or an order (null removes)."""
    result = sim.set_fill_limit(
        _opt_float(body.get("quantity")),
        **_contract(body),
        client_id=_opt_int(body.get("clientId")),
        order_id=_opt_int(body.get("orderId")),
    )
    return {"ok": True, **result}


def fill(sim: OperatorControls, body: Json) -> Json:
    """POST /fill: force a (partial) fill of a working order."""
    _required(body, "orderId")
    client_id, order_id = int(body.get("clientId", 0)), int(body["orderId"])
    order = sim.fill(client_id, order_id, _opt_float(body.get("quantity")), _opt_float(body.get("price")))
    return {"ok": True, "order": order}


def trade(sim: OperatorControls, body: Json) -> Json:
    """POST /trade: a manual trade outside the API (signed quantity)."""
    quantity = float(_required(body, "quantity", " (signed: negative sells)"))
    contract = _contract(body)
    account, at = str(body.get("account", "")), _opt_float(body.get("price"))
    return {"ok": True, **sim.external_trade(quantity, **contract, account=account, price=at)}


def account(sim: OperatorControls, body: Json) -> Json:
    """POST /account: cash or margin account, and its balance."""
    balance = _opt_float(body.get("balance"))
    return {
        "ok": True,
        **sim.set_account_type(str(body.get("account", "")), bool(body.get("cash", True)), balance),
    }


def market_data(sim: OperatorControls, body: Json) -> Json:
    """POST /market_data: the login's market data (live, delayed, none)."""
    return {"ok": True, **sim.set_market_data(str(body.get("mode", "live")), int(body.get("liveError", 354)))}


def halt(sim: OperatorControls, body: Json) -> Json:
    """POST /halt: refuse (or accept again) new orders on the matching contracts."""
    halted = bool(body.get("halted", True))
    return {"ok": True, "conIds": sim.set_halted(halted, **_contract(body)), "halted": halted}


def latency(sim: OperatorControls, body: Json) -> Json:
    """POST /latency: the latency profile (``none`` clears it), figures replaced in milliseconds."""
    name = body.get("profile", "none")
    if not isinstance(name, str):
        raise HttpError(422, "invalid", "field 'profile' must be a profile name")
    figures = {k: v for k, v in body.items() if k != "profile"}
    return {"ok": True, **sim.set_latency(name, **figures)}


def options(sim: OperatorControls, body: Json) -> Json:
    """POST /options: the option model's volatility (per ``symbol`` or all), rate and quote width."""
    settings = sim.set_options(
        volatility=_opt_float(body.get("volatility")),
        symbol=str(body.get("symbol", "")),
        rate=_opt_float(body.get("rate")),
        spread=_opt_float(body.get("spread")),
        spread_pct=_opt_float(body.get("spreadPct")),
    )
    return {"ok": True, **settings}


def end_of_day(sim: OperatorControls, body: Json) -> Json:
    """POST /end_of_day: the closing auction, then DAY orders expire, then today's options."""
    return {"ok": True, **sim.end_of_day()}


def expire(sim: OperatorControls, body: Json) -> Json:
    """POST /expire: the options expiring on or before ``date`` (YYYYMMDD, default today) expire."""
    return {"ok": True, **sim.expire_options(str(body.get("date") or ""))}


def notice(sim: OperatorControls, body: Json) -> Json:
    """POST /notice: error(-1, code, message) to every client."""
    sim.notice(int(body.get("code", 2103)), str(body.get("message", "")))
    return {"ok": True}


Route = Callable[[OperatorControls, Json], Json]
GET_ROUTES: dict[str, Route] = {
    "/state": lambda sim, body: sim.state(),
    "/health": lambda sim, body: {"ok": True, "port": sim.port},
    "/latency": lambda sim, body: sim.latency_state(),
}
POST_ROUTES: dict[str, Route] = {
    "/price": price,
    "/fault": fault,
    "/reset": reset,
    "/fill_limit": fill_limit,
    "/fill": fill,
    "/trade": trade,
    "/account": account,
    "/market_data": market_data,
    "/halt": halt,
    "/latency": latency,
    "/options": options,
    "/end_of_day": end_of_day,
    "/expire": expire,
    "/notice": notice,
}


def route(sim: OperatorControls, method: str, path: str, body: Json) -> Json:
    """Dispatch one request (also usable without HTTP)."""
    if method == "GET":
        if path in GET_ROUTES:
            return GET_ROUTES[path](sim, body)
        raise HttpError(404, "not_found", f"no route GET {path}")
    if method != "POST":
        raise HttpError(405, "method_not_allowed", f"{method} is not supported")
    handler = POST_ROUTES.get(path)
    if handler is None:
        raise HttpError(404, "not_found", f"no route POST {path}")
    try:
        return handler(sim, body)
    except (LookupError, KeyError) as exc:
        raise HttpError(404, "not_found", str(exc).strip("'\"")) from exc
    except (ValueError, TypeError) as exc:
        raise HttpError(422, "invalid", str(exc)) from exc
