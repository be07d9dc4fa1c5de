"""The operator API of a simulator: what the HTTP control API and :class:`~ibsim.testing.SimThread`
call to set prices, inject faults, force fills, trade by hand, change accounts, halt contracts,
close the day, expire options, read and reset the state. Every method runs on the server's loop.

A base class of :class:`~ibsim.server.sim_server.SimServer`, which builds the parts it names.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from ibsim.engine.core import Engine
from ibsim.engine.events import Event, OrderStatusEvent
from ibsim.handlers.market_data import Entitlement
from ibsim.latency import profile_named
from ibsim.model import Json
from ibsim.server.account_stream import AccountStream
from ibsim.server.conditions import CONNECTIVITY_TEXT, Conditions
from ibsim.server.connections import Connections
from ibsim.server.faults import FaultInjector
from ibsim.server.routing import Router
from ibsim.server.state_file import StateFile


def _cancelled(events: list[Event]) -> int:
    """How many orders a batch of events cancelled."""
    return sum(1 for e in events if isinstance(e, OrderStatusEvent) and e.order.status == "Cancelled")


class OperatorControls:
    """Operator methods over the parts of one simulator."""

    engine: Engine
    connections: Connections
    conditions: Conditions
    router: Router
    injector: FaultInjector
    entitlement: Entitlement
    state_file: StateFile
    #: the market-data mode reset() goes back to
    market_data_default: str
    account_stream: AccountStream
    #: the latency profile reset() goes back to
    latency_default: str

    @property
    def port(self) -> int:
        """The API port (the bound one after start)."""
        return self.connections.port

    def set_price(
        self,
        symbol: str = "",
        price: float = 0.0,
        sec_type: str = "",
        con_id: int | None = None,
        **match: str,
    ) -> list[int]:
        """Set the current price of the matching contracts (all ES expiries for ``ES``/``FUT``).

        Returns the conIds changed; raises LookupError when nothing matches.
        """
        price = float(price)
        if not price > 0 or math.isinf(price):
            raise ValueError("price must be a positive number")
        found = self.engine.market.lookup(symbol, sec_type, con_id, **match)
        for inst in found:
            self.router.apply(self.engine.set_price(inst.con_id, price))
        return [inst.con_id for inst in found]

    def set_options(
        self,
        volatility: float | None = None,
        symbol: str = "",
        rate: float | None = None,
        spread: float | None = None,
        spread_pct: float | None = None,
    ) -> Json:
        """The option model's inputs: the volatility (of one underlying's options with ``symbol``),
        the rate, the quote's width (dollars, percent of the price); options are repriced at once
        (their streams tick, their working orders are matched). Returns the settings."""
        settings, chains = self.engine.market.options, self.engine.catalog.options
        checks = ((volatility, 0.001, 5.0, "volatility"), (rate, -0.1, 1.0, "rate"),
                  (spread, 0.0, 1000.0, "spread"), (spread_pct, 0.0, 100.0, "spreadPct"))  # fmt: skip
        for value, low, high, name in checks:
            if value is not None and not low <= float(value) <= high:
                raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
        root = chains.root_for(symbol) if chains is not None and symbol else None
        if symbol and root is None:
            raise LookupError(f"no options on {symbol!r}")
        if volatility is not None and root is not None:
            settings.volatilities[root.symbol] = float(volatility)
        elif volatility is not None:
            settings.volatility, settings.volatilities = float(volatility), {}
        for value, name in ((rate, "rate"), (spread, "spread"), (spread_pct, "spread_pct")):
            if value is not None:
                setattr(settings, name, float(value))
        for under in chains.underlyings.values() if chains else ():
            self.router.apply(self.engine.set_price(under.con_id, self.engine.market.price(under.con_id)))
        return settings.to_json()

    def fault(self, kind: str, **kw: Any) -> Json:
        """Inject a fault (see README: drop, refuse, connectivity, delay, reject_next, pause/resume_fills)."""
        return self.injector.inject(kind, **kw)

    def notice(self, code: int, text: str = "") -> None:
        """Operator notice to every client (e.g. 2103 farm broken)."""
        self.connections.broadcast(code, text or CONNECTIVITY_TEXT.get(code, f"Notice {code}"))

    def set_fill_limit(
        self,
        quantity: float | None,
        symbol: str = "",
        sec_type: str = "",
        con_id: int | None = None,
        client_id: int | None = None,
        order_id: int | None = None,
    ) -> Json:
        """Limit the quantity per fill event for an order (clientId+orderId) or contracts; None removes."""
        if order_id is not None:
            self.engine.set_fill_limit(quantity, client_id=client_id or 0, order_id=order_id)
            targets: list[Any] = [{"clientId": client_id or 0, "orderId": order_id}]
        else:
            found = self.engine.market.lookup(symbol, sec_type, con_id)
            for inst in found:
                self.engine.set_fill_limit(quantity, con_id=inst.con_id)
            targets = [inst.con_id for inst in found]
        if quantity is None:
            self.router.apply(self.engine.rematch_all())
        return {"quantity": quantity, "targets": targets}

    def fill(
        self, client_id: int, order_id: int, quantity: float | None = None, price: float | None = None
    ) -> Json:
        """Force a fill of a working order (partial when ``quantity`` is below the remaining)."""
        self.router.apply(self.engine.manual_fill(client_id, order_id, quantity, price))
        return self.engine.orders[(client_id, order_id)].to_json()

    def external_trade(
        self, quantity: float, symbol: str = "", sec_type: str = "", con_id: int | None = None,
        account: str = "", price: float | None = None,
    ) -> Json:  # fmt: skip
        """A manual trade outside the API (signed quantity); returns the new position."""
        found = self.engine.market.find_instruments(symbol, sec_type, con_id)
        if len(found) != 1:
            raise LookupError(
                f"{len(found)} contracts match symbol={symbol!r} secType={sec_type!r} conId={con_id!r}"
            )
        acct = account or self.engine.ledger.default_account
        con = found[0].con_id
        self.router.apply(self.engine.external_trade(acct, con, float(quantity), price))
        return {"account": acct, "conId": con, "position": self.engine.ledger.quantity(acct, con)}

    def set_account_type(self, account: str = "", cash: bool = True, balance: float | None = None) -> Json:
        """Make an account a cash account (no short sales) or a margin account again; ``balance``
        sets its cash (so two accounts can differ in NetLiquidation; clients subscribing after
        this see it)."""
        acct = account or self.engine.ledger.default_account
        if acct not in self.engine.accounts:
            raise LookupError(f"account {acct} is not managed here")
        (self.engine.cash_accounts.add if cash else self.engine.cash_accounts.discard)(acct)
        if balance is not None:
            if not balance > 0:
                raise ValueError(f"balance must be above 0, got {balance}")
            self.engine.accounts[acct].cash = float(balance)
        return {"account": acct, "cash": cash, "balance": self.engine.accounts[acct].cash}

    def set_market_data(self, mode: str = "live", live_error: int = 354) -> Json:
        """What the login's market data subscriptions allow (see :class:`Entitlement`); applies to
        later requests, and ends the open streams it no longer covers (each with its error)."""
        doc = self.entitlement.set(mode, live_error)
        for session in list(self.connections.sessions):
            self.entitlement.end_uncovered(session, self.engine.market.instrument)
        return doc

    def set_latency(self, profile: str = "none", **figures_ms: float) -> Json:
        """The latency profile (``none``, ``ib``; figures replaced in milliseconds, e.g.
        ``whatIfMs=800``): how long answers are held back and how often the account stream
        pushes; the log of held answers starts afresh. Returns the profile's figures."""
        latency = self.conditions.latency
        latency.profile = profile_named(profile, figures_ms)
        latency.log.clear()
        self.account_stream.restart()
        return latency.profile.to_json()

    def latency_state(self) -> Json:
        """The profile in force and the answers it held back (``GET /latency``)."""
        latency = self.conditions.latency
        return {**latency.profile.to_json(), "held": latency.log.rows()}

    def set_halted(
        self, halted: bool = True, symbol: str = "", sec_type: str = "", con_id: int | None = None
    ) -> list[int]:
        """Halt (or resume) trading in the matching contracts: new orders on them are refused."""
        found = self.engine.market.lookup(symbol, sec_type, con_id)
        for inst in found:
            (self.engine.halted.add if halted else self.engine.halted.discard)(inst.con_id)
        return [inst.con_id for inst in found]

    def end_of_day(self) -> Json:
        """Close the trading day: MOC / LOC orders fill in the closing auction, then every working
        DAY order expires (Cancelled, error 202 to its owner), then the options expiring today."""
        before = len(self.engine.expirations)
        events = self.engine.end_of_day()
        self.router.apply(events)
        return {
            "expired": _cancelled(events),
            "expirations": [e.to_json() for e in self.engine.expirations[before:]],
        }

    def expire_options(self, date: str = "") -> Json:
        """The options' expiry through ``date`` (``YYYYMMDD``; the engine clock's day when empty):
        every option expiring on or before it is settled now, whatever the clock says (working
        orders cancelled, positions exercised, assigned or expired worthless)."""
        try:
            through = dt.datetime.strptime(date, "%Y%m%d").date() if date else self.engine.market.today()
        except ValueError:
            raise ValueError(f"date must be YYYYMMDD, got {date!r}") from None
        before = len(self.engine.expirations)
        events = self.engine.expire_options(through)
        self.router.apply(events)
        return {
            "through": f"{through:%Y%m%d}",
            "cancelled": _cancelled(events),
            "expirations": [e.to_json() for e in self.engine.expirations[before:]],
        }

    def state(self) -> Json:
        """The GET /state document (orders, executions, positions, account values, faults)."""
        doc = self.engine.state()
        doc["clients"] = sorted(self.connections.by_client)
        doc["faults"] = {
            "delayMs": self.conditions.latency.orders * 1000.0,
            "refusing": self.conditions.refusing,
            "outage": self.conditions.outage,
            "fillsPaused": self.engine.fills_paused,
            "rejectNext": len(self.engine.reject_queue),
            "heldSessions": sorted(c for c in self.conditions.held_sessions if self.conditions.held(c)),
            "marketFarmBroken": bool(self.injector.feeds and self.injector.feeds.farm_broken),
        }
        doc["marketData"] = self.entitlement.mode
        doc["options"] = self.engine.market.options.to_json()
        doc["port"] = self.connections.port
        doc["stats"] = dict(self.connections.stats)
        # every open market-data stream (reqMktData without snapshot) of every connected client
        doc["marketDataLines"] = [{"clientId": session.client_id, "reqId": req_id, "conId": con_id}
                                  for session in self.connections.sessions for req_id, con_id in session.mkt.items()]  # fmt: skip
        return doc

    def reset(self) -> None:
        """Forget orders, fills, positions, prices and faults (connections stay open)."""
        self.engine.reset()
        self.set_market_data(self.market_data_default)
        self.conditions.latency.orders = 0.0
        self.set_latency(self.latency_default)
        self.conditions.refusing_until = 0.0
        self.connections.end_refusal()
        self.conditions.held_sessions.clear()
        self.conditions.unanswered.clear()
        self.conditions.paced_count, self.conditions.paced_until = 0, 0.0
        self.state_file.schedule()
