"""Connection-level requests: order ids, managed accounts, the server's clock, and the ones a
simulator acknowledges by doing nothing."""

from __future__ import annotations

from ibsim.engine.core import Engine
from ibsim.handlers.dispatch import RequestGroup, answers
from ibsim.messages import ids
from ibsim.messages.connection import current_time, managed_accounts, next_valid_id
from ibsim.session import Session


class ConnectionRequests(RequestGroup):
    """reqIds, reqManagedAccts, reqCurrentTime; reqAutoOpenOrders and a late startApi are ignored."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @answers(ids.REQ_IDS)
    def next_ids(self, session: Session, fields: list[str]) -> None:
        """nextValidId for the client."""
        session.send(next_valid_id(self.engine.next_valid_id(session.client_id or 0)))

    @answers(ids.REQ_MANAGED_ACCTS)
    def managed_accounts(self, session: Session, fields: list[str]) -> None:
        """managedAccounts."""
        session.send(managed_accounts(self.engine.account_ids))

    @answers(ids.REQ_CURRENT_TIME)
    def current_time(self, session: Session, fields: list[str]) -> None:
        """currentTime from the engine's clock."""
        session.send(current_time(int(self.engine.clock())))

    @answers(ids.REQ_AUTO_OPEN_ORDERS, ids.START_API)
    def ignore(self, session: Session, fields: list[str]) -> None:
        """A request the simulator acknowledges by doing nothing."""
        return None
