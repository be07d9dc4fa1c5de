"""What a subscription streams: account values, portfolio rows, positions, P&L and ticks. The same
messages answer the request and follow every change (``delay`` holds back the updates a fill
causes, as TWS reports them a moment after the execution)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from ibsim.catalog.instruments import Instrument
from ibsim.engine.core import Engine
from ibsim.messages.account import (
    account_summary,
    account_update_multi,
    pnl,
    pnl_single,
    position,
    update_account_time,
    update_account_value,
    update_portfolio,
)
from ibsim.messages.market_data import tick_price, tick_size
from ibsim.messages.options import (
    ASK_OPTION,
    BID_OPTION,
    DELAYED_OFFSET,
    LAST_OPTION,
    MODEL_OPTION,
    tick_option_computation,
)
from ibsim.session import Session

ACCOUNT_TAGS_UNITLESS = {"Cushion", "Leverage", "DayTradesRemaining"}
# ibsim says what it is through the real protocol: one more account value (key, value), sent with
# every account's values (reqAccountUpdates, reqAccountUpdatesMulti, reqAccountSummary), which no
# IB server sends. A client (tv2ib's worker) that finds it knows it trades a simulator.
SIMULATOR_VALUE = ("Simulator", "ibsim")
#: keys accountSummary leaves out (per-currency rows and the base currency)
_NOT_SUMMARISED = ("TotalCashBalance", "NetLiquidationByCurrency", "Currency")
#: live and delayed tick types: bid, ask, last, volume, close
_LIVE_TICKS = (1, 2, 4, 8, 9)
_DELAYED_TICKS = (66, 67, 68, 74, 75)


def market_lane(req_id: int) -> str:
    """The lane of one market-data request: its later ticks wait behind its first round while a
    latency profile holds that back (a stale first round must never follow a newer price)."""
    return f"mkt:{req_id}"


def hhmm() -> str:
    """updateAccountTime's clock text."""
    return dt.datetime.now().strftime("%H:%M")


class Feeds:
    """Builds and sends the streamed messages of one engine's accounts and prices."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: the market-data farm is broken (the ``farm`` fault, between 2103 and 2104): no ticks flow
        self.farm_broken = False

    def account_rows(self, account: str) -> list[tuple[str, str, str]]:
        """(key, value, currency) rows for updateAccountValue / accountUpdateMulti / accountSummary."""
        values = self.engine.ledger.account_values(account)
        rows = [
            ("AccountCode", account, ""),
            ("AccountType", "INDIVIDUAL", ""),
            ("AccountReady", "true", ""),
            ("Currency", "USD", "USD"),
            ("ExchangeRate", "1.00", "USD"),
            ("DayTradesRemaining", "-1", ""),
            (*SIMULATOR_VALUE, ""),
        ]
        for key, value in values.items():
            currency = "" if key in ACCOUNT_TAGS_UNITLESS else "USD"
            rows.append((key, f"{value:.2f}" if currency else f"{value}", currency))
        cash = f"{values['CashBalance']:.2f}"
        rows += [
            ("CashBalance", cash, "BASE"),
            ("TotalCashBalance", cash, "USD"),
            ("TotalCashBalance", cash, "BASE"),
            ("NetLiquidationByCurrency", f"{values['NetLiquidation']:.2f}", "BASE"),
        ]
        return rows

    def send_account_values(self, session: Session, account: str, delay: float = 0.0) -> None:
        """updateAccountValue for every row of the account."""
        for key, value, currency in self.account_rows(account):
            session.send(update_account_value(key, value, currency, account), delay)

    def send_account_time(self, session: Session, delay: float = 0.0) -> None:
        """updateAccountTime with the wall clock's HH:MM."""
        session.send(update_account_time(hhmm()), delay)

    def send_account_multi(self, session: Session, req_id: int, account: str, delay: float = 0.0) -> None:
        """accountUpdateMulti for every row of the account."""
        for key, value, currency in self.account_rows(account):
            session.send(account_update_multi(req_id, account, key, value, currency), delay)

    def send_summary(self, session: Session, req_id: int, wanted: set[str] | None) -> None:
        """accountSummary rows of every account (``wanted`` tags, or all)."""
        for account in self.engine.account_ids:
            for key, value, currency in self.account_rows(account):
                if currency == "BASE" or key in _NOT_SUMMARISED:
                    continue
                if wanted is not None and key not in wanted:
                    continue
                session.send(account_summary(req_id, account, key, value, currency))

    def send_portfolio_row(self, session: Session, row: dict[str, Any], delay: float = 0.0) -> None:
        """updatePortfolio for one row of :meth:`Ledger.portfolio_row`."""
        inst = self.engine.market.instrument(row["conId"])
        figures = ("position", "marketPrice", "marketValue", "avgCost", "unrealizedPnL", "realizedPnL")
        session.send(update_portfolio(inst, *(row[key] for key in figures), row["account"]), delay)

    def send_position(self, session: Session, account: str, con_id: int, delay: float = 0.0) -> None:
        """position for one (account, conId) (quantity 0 when there is none)."""
        pos = self.engine.positions.get((account, con_id))
        qty, cost = (pos.quantity, pos.avg_cost) if pos else (0.0, 0.0)
        session.send(position(account, self.engine.market.instrument(con_id), qty, cost), delay)

    def send_pnl(self, session: Session, req_id: int, account: str, delay: float = 0.0) -> None:
        """pnl: the account's daily, unrealised and realised P&L."""
        session.send(pnl(req_id, *self.engine.ledger.daily_pnl(account)), delay)

    def send_pnl_single(self, session: Session, req_id: int, account: str, con_id: int) -> None:
        """pnlSingle for one position."""
        row = self.engine.ledger.portfolio_row(account, con_id)
        unrealized = row["unrealizedPnL"]
        session.send(
            pnl_single(
                req_id, row["position"], unrealized, unrealized, row["realizedPnL"], row["marketValue"]
            )
        )

    def send_ticks(
        self, session: Session, req_id: int, con_id: int, full: bool = False, data_type: int | None = None
    ) -> None:
        """Bid, ask and last around the current price (and volume and close when ``full``), in the
        tick types of the subscription's data type (3/4: delayed), then an option's greeks. None
        while the farm is broken."""
        if self.farm_broken:
            return
        market = self.engine.market
        inst = market.instrument(con_id)
        price = market.price(con_id)
        bid, ask = market.quote(con_id)
        if data_type is None:
            data_type = session.mkt_type.get(req_id, 1)
        delayed = data_type in (3, 4)
        bid_t, ask_t, last_t, vol_t, close_t = _DELAYED_TICKS if delayed else _LIVE_TICKS
        lane = market_lane(req_id)
        session.send(tick_price(req_id, bid_t, bid, 100, 1), lane=lane)
        session.send(tick_price(req_id, ask_t, ask, 100, 1), lane=lane)
        session.send(tick_price(req_id, last_t, price, 1, 0), lane=lane)
        if full:
            session.send(tick_size(req_id, vol_t, 1000), lane=lane)
            session.send(tick_price(req_id, close_t, inst.default_price if inst.sec_type != "OPT" else price, 0, 0), lane=lane)  # fmt: skip
        if inst.sec_type == "OPT":
            self._send_greeks(session, req_id, inst, DELAYED_OFFSET if delayed else 0)

    def _send_greeks(self, session: Session, req_id: int, inst: Instrument, offset: int) -> None:
        """tickOptionComputation: the bid's, the ask's, the last's (the model price's) and the
        model's greeks, as IB sends them with every option quote (no generic tick needed)."""
        quote = self.engine.market.option_quote(inst)
        last = replace(quote.model, opt_price=quote.price)
        rows = ((BID_OPTION, quote.bid_greeks), (ASK_OPTION, quote.ask_greeks), (LAST_OPTION, last), (MODEL_OPTION, quote.model))  # fmt: skip
        for tick_type, greeks in rows:
            session.send(
                tick_option_computation(req_id, tick_type + offset, greeks), lane=market_lane(req_id)
            )
