"""Answers to client requests (reqContractDetails, reqPositions, reqMktData, ...), one method each.

A mixin of :class:`~ibsim.server.SimServer`: the server dispatches a message to the method in
``_handlers`` registered for its id; order operations go to the engine and its events back
through ``apply``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from ibsim import history
from ibsim import messages as msg
from ibsim.catalog import Catalog, round_to_tick
from ibsim.engine import Engine, Event
from ibsim.framing import FieldReader
from ibsim.messages import ids
from ibsim.session import Session

ACCOUNT_TAGS_UNITLESS = {"Cushion", "Leverage", "DayTradesRemaining"}
# ibsim says what it is through the real protocol: one more account value (key, value), sent with
# every account's values (reqAccountUpdates, reqAccountUpdatesMulti, reqAccountSummary), which no
# IB server sends. A client (tv2ib's worker) that finds it knows it trades a simulator.
SIMULATOR_VALUE = ("Simulator", "ibsim")


def hhmm() -> str:
    """updateAccountTime's clock text."""
    return dt.datetime.now().strftime("%H:%M")


class RequestHandlers:
    """Request handlers and the account/market-data message builders they share with routing."""

    engine: Engine
    catalog: Catalog

    def apply(self, events: Sequence[Event]) -> None:  # pragma: no cover - provided by SimServer
        raise NotImplementedError

    def _h_place_order(self, session: Session, fields: list[str]) -> None:
        req = msg.parse_place_order(fields)
        self.apply(self.engine.place(session.client_id or 0, req))

    def _h_cancel_order(self, session: Session, fields: list[str]) -> None:
        order_id = FieldReader(fields, 2).int()
        self.apply(self.engine.cancel(session.client_id or 0, order_id))

    def _h_global_cancel(self, session: Session, fields: list[str]) -> None:
        self.apply(self.engine.global_cancel())

    def _h_open_orders(self, session: Session, fields: list[str]) -> None:
        all_clients = int(fields[0]) == ids.REQ_ALL_OPEN_ORDERS
        for order in self.engine.book.open_orders(None if all_clients else session.client_id):
            inst = self.engine.market.instrument(order.con_id)
            session.send(msg.open_order(order, inst))
            session.send(msg.order_status(order))
        session.send(msg.open_order_end())

    def _h_completed_orders(self, session: Session, fields: list[str]) -> None:
        for order in self.engine.book.completed_orders():
            inst = self.engine.market.instrument(order.con_id)
            session.send(msg.completed_order(order, inst))
        session.send(msg.completed_orders_end())

    def _h_executions(self, session: Session, fields: list[str]) -> None:
        req_id, flt = msg.parse_executions_request(fields)
        for ex in self.engine.executions_matching(flt):
            inst = self.engine.market.instrument(ex.con_id)
            session.send(msg.exec_details(req_id, ex, inst))
            session.send(msg.commission_report(ex))
        session.send(msg.exec_details_end(req_id))

    def _h_positions(self, session: Session, fields: list[str]) -> None:
        session.positions = True
        for (account, con_id), pos in self.engine.positions.items():
            if pos.quantity:
                session.send(
                    msg.position(account, self.engine.market.instrument(con_id), pos.quantity, pos.avg_cost)
                )
        session.send(msg.position_end())

    def _h_cancel_positions(self, session: Session, fields: list[str]) -> None:
        session.positions = False

    def _h_account_updates(self, session: Session, fields: list[str]) -> None:
        r = FieldReader(fields, 2)
        subscribe = r.bool()
        account = r.str() or self.engine.ledger.default_account
        if not subscribe:
            session.account_updates = None
            return
        if account not in self.engine.accounts:
            session.error(-1, 321, f"Error validating request:-'bB' : cause - Invalid account code {account}")
            return
        session.account_updates = account
        self._send_account_values(session, account)
        for row in self.engine.ledger.portfolio(account):
            if row["position"]:
                session.send(self._portfolio_fields(row))
        session.send(msg.update_account_time(hhmm()))
        session.send(msg.account_download_end(account))

    def _account_rows(self, account: str) -> list[tuple[str, str, str]]:
        """(key, value, currency) rows for updateAccountValue / accountUpdateMulti / accountSummary."""
        values = self.engine.account_values(account)
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

    def _send_account_values(self, session: Session, account: str) -> None:
        for key, value, currency in self._account_rows(account):
            session.send(msg.update_account_value(key, value, currency, account))

    def _portfolio_fields(self, row: dict[str, Any]) -> list[object]:
        inst = self.engine.market.instrument(row["conId"])
        return msg.update_portfolio(
            inst,
            row["position"],
            row["marketPrice"],
            row["marketValue"],
            row["avgCost"],
            row["unrealizedPnL"],
            row["realizedPnL"],
            row["account"],
        )

    def _h_account_updates_multi(self, session: Session, fields: list[str]) -> None:
        r = FieldReader(fields, 2)
        req_id = r.int()
        account = r.str() or self.engine.ledger.default_account
        accounts = self.engine.account_ids if account.upper() == "ALL" else [account]
        for acct in accounts:
            if acct not in self.engine.accounts:
                continue
            session.multi[req_id] = acct
            for key, value, currency in self._account_rows(acct):
                session.send(msg.account_update_multi(req_id, acct, key, value, currency))
        session.send(msg.account_update_multi_end(req_id))

    def _h_cancel_multi(self, session: Session, fields: list[str]) -> None:
        session.multi.pop(FieldReader(fields, 2).int(), None)

    def _h_account_summary(self, session: Session, fields: list[str]) -> None:
        r = FieldReader(fields, 2)
        req_id = r.int()
        r.str()  # group
        tags = {t.strip() for t in r.str().split(",") if t.strip()}
        wanted = None if not tags or "All" in tags else tags
        session.summary[req_id] = ("", wanted)
        self._send_summary(session, req_id, wanted)
        session.send(msg.account_summary_end(req_id))

    def _send_summary(self, session: Session, req_id: int, wanted: set[str] | None) -> None:
        for account in self.engine.account_ids:
            for key, value, currency in self._account_rows(account):
                if currency == "BASE" or key in ("TotalCashBalance", "NetLiquidationByCurrency", "Currency"):
                    continue
                if wanted is not None and key not in wanted:
                    continue
                session.send(msg.account_summary(req_id, account, key, value, currency))

    def _h_cancel_summary(self, session: Session, fields: list[str]) -> None:
        session.summary.pop(FieldReader(fields, 2).int(), None)

    def _h_contract_details(self, session: Session, fields: list[str]) -> None:
        req_id, query = msg.parse_contract_details_request(fields)
        found = self.catalog.match(query)
        if not found:
            session.error(req_id, 200, "No security definition has been found for the request")
            return
        exchange = query.exchange.upper() if query.exchange else ""
        for inst in found:
            session.send(msg.contract_details(req_id, inst, exchange if exchange else inst.exchange))
        session.send(msg.contract_details_end(req_id))

    def _h_matching_symbols(self, session: Session, fields: list[str]) -> None:
        r = FieldReader(fields, 1)
        req_id = r.int()
        pattern = r.str().upper().strip()
        seen: dict[tuple[str, str], Any] = {}
        for inst in self.catalog:
            if not pattern:
                break
            if inst.symbol.upper().startswith(pattern) or pattern in inst.long_name.upper():
                key = (inst.symbol, "FUT" if inst.sec_type == "FUT" else inst.sec_type + inst.currency)
                seen.setdefault(key, inst)
        session.send(msg.symbol_samples(req_id, list(seen.values())[:16]))

    def _h_market_rule(self, session: Session, fields: list[str]) -> None:
        rule_id = FieldReader(fields, 1).int()
        session.send(msg.market_rule(rule_id, list(self.catalog.market_rule(rule_id))))

    def _h_ids(self, session: Session, fields: list[str]) -> None:
        session.send(msg.next_valid_id(self.engine.next_valid_id(session.client_id or 0)))

    def _h_managed_accounts(self, session: Session, fields: list[str]) -> None:
        session.send(msg.managed_accounts(self.engine.account_ids))

    def _h_current_time(self, session: Session, fields: list[str]) -> None:
        session.send(msg.current_time(int(self.engine.clock())))

    #: what the login's market data subscriptions allow (``SimServer.market_data``): ``live``,
    #: ``delayed`` (no live API subscription; delayed data on request) or ``none``
    market_data: str
    #: the error a ``delayed`` account answers to a live request: 354 or 10089
    live_data_error: int

    def _h_market_data_type(self, session: Session, fields: list[str]) -> None:
        data_type = FieldReader(fields, 2).int()
        if data_type in (1, 2, 3, 4):
            session.market_data_type = data_type

    def _h_mkt_data(self, session: Session, fields: list[str]) -> None:
        req = msg.parse_mkt_data_request(fields)
        found = self.catalog.match(req.contract)
        if len(found) != 1:
            session.error(req.req_id, 200, "No security definition has been found for the request")
            return
        inst = found[0]
        data_type = self._data_type_for(session, req.req_id, inst)
        if data_type is None:
            return  # the error went out; IB sends no ticks and no snapshot end
        session.send(msg.market_data_type(req.req_id, data_type))
        self._send_ticks(session, req.req_id, inst.con_id, full=True, data_type=data_type)
        if req.snapshot or req.regulatory_snapshot:
            session.send(msg.tick_snapshot_end(req.req_id))
        else:
            session.mkt[req.req_id] = inst.con_id
            session.mkt_type[req.req_id] = data_type

    def _data_type_for(self, session: Session, req_id: int, inst: Any) -> int | None:
        """The data type IB would deliver for this request, or None after sending its error.

        With a live subscription IB sends live data whatever type was asked (frozen only applies
        when the market is closed; ibsim's never is). Without one, a live or frozen request is an
        error (354, or 10089 "delayed market data is available"); a delayed request gets warning
        10167 and the delayed data; an account without delayed data either gets 10168.
        """
        if self.market_data == "live":
            return 1
        asked = session.market_data_type
        if asked in (3, 4):
            if self.market_data == "delayed":
                session.error(
                    req_id, 10167, "Requested market data is not subscribed. Displaying delayed market data."
                )
                return asked
            session.error(
                req_id, 10168, "Requested market data is not subscribed. Delayed market data is not enabled."
            )
            return None
        venue = f"{inst.symbol} {inst.primary_exchange or inst.exchange}/TOP/ALL"
        if self.market_data == "delayed" and self.live_data_error == 10089:
            session.error(req_id, 10089, "Requested market data requires additional subscription for API. See link "
                          f"in 'Market Data Connections' dialog for more details.Delayed market data is available.{venue}")  # fmt: skip
        elif self.market_data == "delayed":
            session.error(
                req_id,
                354,
                f"Requested market data is not subscribed.Delayed market data is available.{venue}",
            )
        else:
            session.error(req_id, 354, "Requested market data is not subscribed.")
        return None

    def _send_ticks(
        self, session: Session, req_id: int, con_id: int, full: bool = False, data_type: int | None = None
    ) -> None:
        inst = self.engine.market.instrument(con_id)
        price = self.engine.market.price(con_id)
        tick = self.catalog.increment_at(inst, price)
        bid = round_to_tick(price - tick, tick)
        ask = round_to_tick(price + tick, tick)
        if data_type is None:
            data_type = session.mkt_type.get(req_id, 1)
        # delayed data uses its own tick types: bid 66, ask 67, last 68, volume 74, close 75
        delayed = data_type in (3, 4)
        bid_t, ask_t, last_t, vol_t, close_t = (66, 67, 68, 74, 75) if delayed else (1, 2, 4, 8, 9)
        session.send(msg.tick_price(req_id, bid_t, bid, 100, 1))
        session.send(msg.tick_price(req_id, ask_t, ask, 100, 1))
        session.send(msg.tick_price(req_id, last_t, price, 1, 0))
        if full:
            session.send(msg.tick_size(req_id, vol_t, 1000))
            session.send(msg.tick_price(req_id, close_t, inst.default_price, 0, 0))

    def _h_cancel_mkt_data(self, session: Session, fields: list[str]) -> None:
        req_id = FieldReader(fields, 2).int()
        session.mkt.pop(req_id, None)
        session.mkt_type.pop(req_id, None)

    def _h_pnl(self, session: Session, fields: list[str]) -> None:
        r = FieldReader(fields, 1)
        req_id = r.int()
        account = r.str() or self.engine.ledger.default_account
        if account not in self.engine.accounts:
            session.error(req_id, 321, f"Error validating request: invalid account {account}")
            return
        session.pnl[req_id] = account
        session.send(msg.pnl(req_id, *self.engine.ledger.daily_pnl(account)))

    def _h_pnl_single(self, session: Session, fields: list[str]) -> None:
        r = FieldReader(fields, 1)
        req_id = r.int()
        account = r.str() or self.engine.ledger.default_account
        r.str()
        con_id = r.int()
        if account not in self.engine.accounts or self.catalog.get(con_id) is None:
            session.error(req_id, 321, "Error validating request: invalid account or contract")
            return
        session.pnl_single[req_id] = (account, con_id)
        self._send_pnl_single(session, req_id, account, con_id)

    def _send_pnl_single(self, session: Session, req_id: int, account: str, con_id: int) -> None:
        row = self.engine.ledger.portfolio_row(account, con_id)
        session.send(
            msg.pnl_single(
                req_id,
                row["position"],
                row["unrealizedPnL"],
                row["unrealizedPnL"],
                row["realizedPnL"],
                row["marketValue"],
            )
        )

    def _h_cancel_pnl(self, session: Session, fields: list[str]) -> None:
        req_id = FieldReader(fields, 1).int()
        session.pnl.pop(req_id, None)
        session.pnl_single.pop(req_id, None)

    def _h_historical_data(self, session: Session, fields: list[str]) -> None:
        req = msg.parse_historical_request(fields)
        found = self.catalog.match(req.contract)
        if len(found) != 1:
            session.error(req.req_id, 200, "No security definition has been found for the request")
            return
        inst = found[0]
        now = self.engine.clock()
        end = history.parse_end(req.end, now)
        try:
            bars = history.synthetic_bars(
                inst, self.engine.market.price(inst.con_id), req.bar_size, req.duration, end
            )
        except ValueError as exc:
            session.error(req.req_id, 162, f"Historical Market Data Service error message:{exc}")
            return
        start_text = dt.datetime.fromtimestamp(end - history.duration_seconds(req.duration), dt.UTC)
        end_text = dt.datetime.fromtimestamp(end, dt.UTC)
        fmt = "%Y%m%d %H:%M:%S"
        session.send(msg.historical_data(req.req_id, start_text.strftime(fmt), end_text.strftime(fmt), bars))

    def _h_head_timestamp(self, session: Session, fields: list[str]) -> None:
        req_id = FieldReader(fields, 1).int()
        # synthetic history has no beginning; one year back is a plausible answer
        session.send(msg.head_timestamp(req_id, str(int(self.engine.clock()) - 365 * 86400)))

    def _h_ignore(self, session: Session, fields: list[str]) -> None:
        return None

    _handlers: dict[int, Callable[[Any, Session, list[str]], None]] = {
        ids.PLACE_ORDER: _h_place_order,
        ids.CANCEL_ORDER: _h_cancel_order,
        ids.REQ_GLOBAL_CANCEL: _h_global_cancel,
        ids.REQ_OPEN_ORDERS: _h_open_orders,
        ids.REQ_ALL_OPEN_ORDERS: _h_open_orders,
        ids.REQ_AUTO_OPEN_ORDERS: _h_ignore,
        ids.REQ_COMPLETED_ORDERS: _h_completed_orders,
        ids.REQ_EXECUTIONS: _h_executions,
        ids.REQ_POSITIONS: _h_positions,
        ids.CANCEL_POSITIONS: _h_cancel_positions,
        ids.REQ_ACCT_DATA: _h_account_updates,
        ids.REQ_ACCOUNT_UPDATES_MULTI: _h_account_updates_multi,
        ids.CANCEL_ACCOUNT_UPDATES_MULTI: _h_cancel_multi,
        ids.REQ_ACCOUNT_SUMMARY: _h_account_summary,
        ids.CANCEL_ACCOUNT_SUMMARY: _h_cancel_summary,
        ids.REQ_CONTRACT_DATA: _h_contract_details,
        ids.REQ_MATCHING_SYMBOLS: _h_matching_symbols,
        ids.REQ_MARKET_RULE: _h_market_rule,
        ids.REQ_IDS: _h_ids,
        ids.REQ_MANAGED_ACCTS: _h_managed_accounts,
        ids.REQ_CURRENT_TIME: _h_current_time,
        ids.REQ_MKT_DATA: _h_mkt_data,
        ids.CANCEL_MKT_DATA: _h_cancel_mkt_data,
        ids.REQ_MARKET_DATA_TYPE: _h_market_data_type,
        ids.REQ_PNL: _h_pnl,
        ids.CANCEL_PNL: _h_cancel_pnl,
        ids.REQ_PNL_SINGLE: _h_pnl_single,
        ids.CANCEL_PNL_SINGLE: _h_cancel_pnl,
        ids.START_API: _h_ignore,
        ids.REQ_HISTORICAL_DATA: _h_historical_data,
        ids.REQ_HEAD_TIMESTAMP: _h_head_timestamp,
    }
