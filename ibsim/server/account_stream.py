"""The account stream's periodic updates under a latency profile.

Without a profile ibsim pushes account values, the portfolio and P&L only when a position changes.
IB also pushes them on a clock: every account value and portfolio row to reqAccountUpdates
subscribers every three minutes (unless a position changes), P&L to reqPnL / reqPnLSingle about
once a second; so a price move reaches ``AvailableFunds`` or the unrealized P&L only at the next
tick of that clock. The profile's ``account_interval`` and ``pnl_interval`` set the clocks (0: no
periodic push); the pushes take the account lane, behind any update a fill caused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from ibsim.engine.core import Engine
from ibsim.handlers.feeds import Feeds
from ibsim.server.connections import Connections
from ibsim.session import Session


class AccountStream:
    """The periodic pushes of one server, restarted whenever the profile changes."""

    def __init__(
        self,
        engine: Engine,
        connections: Connections,
        feeds: Feeds,
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
    ) -> None:
        self.engine = engine
        self.connections = connections
        self.feeds = feeds
        self.spawn = spawn
        self._tasks: list[asyncio.Task[None]] = []

    def restart(self) -> None:
        """Stop the clocks and start the ones the profile in force asks for."""
        self.stop()
        profile = self.connections.conditions.latency.profile
        clocks = ((profile.account_interval, self.push_accounts), (profile.pnl_interval, self.push_pnl))
        for interval, push in clocks:
            if interval > 0:
                self._tasks.append(self.spawn(self._every(interval, push)))

    def stop(self) -> None:
        """Stop the clocks."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    async def _every(self, interval: float, push: Callable[[Session], None]) -> None:
        while True:
            await asyncio.sleep(interval)
            for session in list(self.connections.sessions):
                if not session.closed and session.client_id is not None:
                    with session.holding("account", 0.0):
                        push(session)

    def push_accounts(self, session: Session) -> None:
        """reqAccountUpdates: every portfolio row, every value, the time; reqAccountUpdatesMulti:
        every value."""
        account = session.account_updates
        if account is not None and account in self.engine.accounts:
            for row in self.engine.ledger.portfolio(account):
                if row["position"]:
                    self.feeds.send_portfolio_row(session, row)
            self.feeds.send_account_values(session, account)
            self.feeds.send_account_time(session)
        for req_id, acct in session.multi.items():
            self.feeds.send_account_multi(session, req_id, acct)

    def push_pnl(self, session: Session) -> None:
        """reqPnL and reqPnLSingle subscribers: the current figures."""
        for req_id, account in session.pnl.items():
            self.feeds.send_pnl(session, req_id, account)
        for req_id, (account, con_id) in session.pnl_single.items():
            self.feeds.send_pnl_single(session, req_id, account, con_id)
