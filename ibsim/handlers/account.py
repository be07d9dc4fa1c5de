"""Account requests: positions, account updates (single and multi), account summaries and P&L
subscriptions, answered now and kept on the session for the updates that follow."""

from __future__ import annotations

from ibsim.engine.core import Engine
from ibsim.framing import FieldReader
from ibsim.handlers.dispatch import RequestGroup, answers
from ibsim.handlers.feeds import Feeds
from ibsim.messages import ids
from ibsim.messages.account import (
    account_download_end,
    account_summary_end,
    account_update_multi_end,
    position_end,
)
from ibsim.session import Session


class AccountRequests(RequestGroup):
    """The account, position and P&L subscriptions of every client."""

    def __init__(self, engine: Engine, feeds: Feeds) -> None:
        self.engine = engine
        self.feeds = feeds

    def _account_or_default(self, r: FieldReader) -> str:
        return r.str() or self.engine.ledger.default_account

    @answers(ids.REQ_POSITIONS)
    def positions(self, session: Session, fields: list[str]) -> None:
        """reqPositions: every open position of every account, then the end; updates follow."""
        session.positions = True
        for (account, con_id), pos in self.engine.positions.items():
            if pos.quantity:
                self.feeds.send_position(session, account, con_id)
        session.send(position_end())

    @answers(ids.REQ_ACCT_DATA)
    def account_updates(self, session: Session, fields: list[str]) -> None:
        """reqAccountUpdates: values, portfolio, time, download end; or unsubscribe."""
        r = FieldReader(fields, 2)
        subscribe = r.bool()
        account = self._account_or_default(r)
        if not subscribe:
            session.account_updates = None
            return
        if account not in self.engine.accounts:
            session.error(-1, 321, f"Error validating request:-'bB' : cause - Invalid account code {account}")
            return
        session.account_updates = account
        self.feeds.send_account_values(session, account)
        for row in self.engine.ledger.portfolio(account):
            if row["position"]:
                self.feeds.send_portfolio_row(session, row)
        self.feeds.send_account_time(session)
        session.send(account_download_end(account))

    @answers(ids.REQ_ACCOUNT_UPDATES_MULTI)
    def account_updates_multi(self, session: Session, fields: list[str]) -> None:
        """reqAccountUpdatesMulti (one account or ``All``), then the end."""
        r = FieldReader(fields, 2)
        req_id = r.int()
        account = self._account_or_default(r)
        accounts = self.engine.account_ids if account.upper() == "ALL" else [account]
        for acct in accounts:
            if acct not in self.engine.accounts:
                continue
            session.multi[req_id] = acct
            self.feeds.send_account_multi(session, req_id, acct)
        session.send(account_update_multi_end(req_id))

    @answers(ids.REQ_ACCOUNT_SUMMARY)
    def account_summary(self, session: Session, fields: list[str]) -> None:
        """reqAccountSummary (the tags asked for, or all), then the end."""
        r = FieldReader(fields, 2)
        req_id = r.int()
        r.str()  # group
        tags = {t.strip() for t in r.str().split(",") if t.strip()}
        wanted = None if not tags or "All" in tags else tags
        session.summary[req_id] = ("", wanted)
        self.feeds.send_summary(session, req_id, wanted)
        session.send(account_summary_end(req_id))

    @answers(ids.REQ_PNL)
    def pnl(self, session: Session, fields: list[str]) -> None:
        """reqPnL of one account."""
        r = FieldReader(fields, 1)
        req_id = r.int()
        account = self._account_or_default(r)
        if account not in self.engine.accounts:
            session.error(req_id, 321, f"Error validating request: invalid account {account}")
            return
        session.pnl[req_id] = account
        self.feeds.send_pnl(session, req_id, account)

    @answers(ids.REQ_PNL_SINGLE)
    def pnl_single(self, session: Session, fields: list[str]) -> None:
        """reqPnLSingle of one position."""
        r = FieldReader(fields, 1)
        req_id = r.int()
        account = self._account_or_default(r)
        r.str()  # modelCode
        con_id = r.int()
        if account not in self.engine.accounts or self.engine.catalog.get(con_id) is None:
            session.error(req_id, 321, "Error validating request: invalid account or contract")
            return
        session.pnl_single[req_id] = (account, con_id)
        self.feeds.send_pnl_single(session, req_id, account, con_id)

    @answers(ids.CANCEL_POSITIONS)
    def cancel_positions(self, session: Session, fields: list[str]) -> None:
        """cancelPositions."""
        session.positions = False

    @answers(ids.CANCEL_ACCOUNT_UPDATES_MULTI)
    def cancel_multi(self, session: Session, fields: list[str]) -> None:
        """cancelAccountUpdatesMulti."""
        session.multi.pop(FieldReader(fields, 2).int(), None)

    @answers(ids.CANCEL_ACCOUNT_SUMMARY)
    def cancel_summary(self, session: Session, fields: list[str]) -> None:
        """cancelAccountSummary."""
        session.summary.pop(FieldReader(fields, 2).int(), None)

    @answers(ids.CANCEL_PNL, ids.CANCEL_PNL_SINGLE)
    def cancel_pnl(self, session: Session, fields: list[str]) -> None:
        """cancelPnL / cancelPnLSingle."""
        req_id = FieldReader(fields, 1).int()
        session.pnl.pop(req_id, None)
        session.pnl_single.pop(req_id, None)
