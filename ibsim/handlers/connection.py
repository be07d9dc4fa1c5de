"""Connection-level requests: order ids, managed accounts, the server's clock, and the ones a
simulator acknowledges by doing nothing."""

from __future__ import annotations

from ibsim.engine.core import Engine
from ibsim.handlers.dispatch import Handler
from ibsim.messages import ids
from ibsim.messages.connection import current_time, managed_accounts, next_valid_id
from ibsim.session import Session


class ConnectionRequests:
    """reqIds, reqManagedAccts, reqCurrentTime; reqAutoOpenOrders and a late startApi are ignored."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def table(self) -> dict[int, Handler]:
        """Message id -> handler."""
        return {
            ids.REQ_IDS: self.next_ids,
            ids.REQ_MANAGED_ACCTS: self.managed_accounts,
            ids.REQ_CURRENT_TIME: self.current_time,
            ids.REQ_AUTO_OPEN_ORDERS: ignore,
            ids.START_API: ignore,
        }

    def next_ids(self, session: Session, fields: list[str]) -> None:
        """nextValidId for the client."""
        session.send(next_valid_id(self.engine.next_valid_id(session.client_id or 0)))

    def managed_accounts(self, session: Session, fields: list[str]) -> None:
        """managedAccounts."""
        session.send(managed_accounts(self.engine.account_ids))

    def current_time(self, session: Session, fields: list[str]) -> None:
        """currentTime from the engine's clock."""
        session.send(current_time(int(self.engine.clock())))


def ignore(session: Session, fields: list[str]) -> None:
    """A request the simulator acknowledges by doing nothing."""
    return None
