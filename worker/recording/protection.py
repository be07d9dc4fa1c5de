"""What protection a position should have: one :class:`ProtectionSpec` per account + contract.

The decision that plans a position's exits (worker/decision/core.py) names the spec, and the execution
protocol (worker/execution/protocol.py) hands it to the guard, which keeps it here: which exits the
position wants (take-profit and/or stop-loss), at which prices, for which side, and the alert that
asked for them (its id names any exit the guard re-attaches: ``tv2ib:<alert>:sl2``). The
protective-order guard (worker/execution/guard.py) reads it to put back what IB cancelled or refused.

The registry lives in memory and is used on the IB loop (a lock makes it safe from the job thread
too). Every change is persisted by the recorder thread (the IB loop never waits on the database)
as one row of the ``control`` key/value table, ``protection:<account>:<conId>`` -> the spec as
JSON, and deleted when the position is flat. At start the worker loads those rows
(:func:`load_specs`), so a position opened before a restart keeps its protection: after the
reconnect the guard compares IB's working exits with the spec and re-attaches what is missing.

A spec protects one side: its prices only make sense for a long (``side`` +1) or a short (-1).
When IB's position is on the other side (a manual trade, a stop that overshot), the guard places
no exit from it and raises the ``unprotected`` alarm instead.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from core.models import Control, utcnow
from core.payload import BreakEven
from worker.decision.order_types import ExitOrder, default_exit_order

log = logging.getLogger(__name__)

KEY_PREFIX = "protection:"
ROLES = ("tp", "sl")


def spec_key(account: str, con_id: int) -> str:
    """The ``control`` row key of a spec (fits the 64-character key column)."""
    return f"{KEY_PREFIX}{account}:{con_id}"[:64]


@dataclass(frozen=True)
class ProtectionSpec:
    """The exits one position (account + contract) should have at IB.

    ``prices`` maps a role to its price: ``tp`` -> the take-profit's limit price, ``sl`` -> the
    stop-loss's stop price (a trailing stop: its initial stop). The roles present are the exits
    wanted; an empty mapping means the position is deliberately unprotected (the alert asked for no
    exits), which the guard respects.

    ``orders`` maps a role to its IB terms beyond price and size (worker/decision/order_types.py
    ``ExitOrder``: STP, STP LMT and its limit, TRAIL and its trail, outsideRth), so an exit the
    guard re-attaches or resizes keeps its kind. A role without terms (every spec stored before
    order types existed) is a plain LMT take-profit / STP stop-loss.
    """

    account: str
    con_id: int
    alert_id: str  # the alert whose plan asked for these exits (names re-attached orders)
    side: int  # +1: the prices protect a long; -1: a short
    prices: Mapping[str, Decimal] = field(default_factory=dict)
    symbol: str = ""  # for notices
    orders: Mapping[str, ExitOrder] = field(default_factory=dict)
    # stopLoss.breakEven of the alert that opened the position, and whether the stop was moved
    # (once: worker/execution/break_even.py)
    break_even: BreakEven | None = None
    break_even_done: bool = False
    # a take-profit in levels: level ("1", "2"...) -> (its limit price, its size as planned); the
    # slices' exits are tp.<level> / sl.<level> (worker/decision/levels.py); ``prices`` then holds
    # the stop only (the levels' take-profits are not one price)
    levels: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    levels_alert: str = ""  # the alert that placed the levels (their orderRefs: tv2ib:<it>:tp.1)

    def __post_init__(self) -> None:
        if self.side not in (1, -1):
            raise ValueError(f"side must be 1 (long) or -1 (short), got {self.side!r}")
        unknown = (set(self.prices) | set(self.orders)) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown exit roles {sorted(unknown)} (tp, sl)")

    @property
    def wanted_roles(self) -> frozenset[str]:
        """The exits the position should have (``tp`` and/or ``sl``)."""
        return frozenset(self.prices)

    def order_for(self, role: str) -> ExitOrder:
        """The IB terms of ``role``'s exit (LMT / STP for a spec without terms)."""
        return self.orders.get(role) or default_exit_order(role)

    @property
    def oca_group(self) -> str:
        """The OCA group of exits the guard places for this spec (the bracket's own group)."""
        return f"tv2ib:{self.alert_id}"

    def protects(self, position: Decimal) -> bool:
        """True when the spec's prices are for this position's side."""
        return (position > 0 and self.side > 0) or (position < 0 and self.side < 0)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "account": self.account,
            "con_id": self.con_id,
            "alert_id": self.alert_id,
            "side": self.side,
            "prices": {role: str(price) for role, price in self.prices.items()},
            "symbol": self.symbol,
        }
        if self.orders:  # absent for plain LMT / STP exits: older readers see the same document
            doc["orders"] = {role: terms.to_json() for role, terms in self.orders.items()}
        if self.break_even is not None:
            doc["break_even"] = self.break_even.to_json()
            doc["break_even_done"] = self.break_even_done
        if self.levels:
            doc["levels"] = {level: [str(price), str(size)] for level, (price, size) in self.levels.items()}
            doc["levels_alert"] = self.levels_alert
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ProtectionSpec:
        prices = {str(role): Decimal(str(value)) for role, value in (doc.get("prices") or {}).items()}
        return cls(
            account=str(doc["account"]),
            con_id=int(doc["con_id"]),
            alert_id=str(doc["alert_id"]),
            side=int(doc["side"]),
            prices=prices,
            symbol=str(doc.get("symbol") or ""),
            orders=orders_from_json(doc.get("orders")),
            break_even=BreakEven.from_json(doc["break_even"]) if doc.get("break_even") else None,
            break_even_done=bool(doc.get("break_even_done")),
            levels={
                str(level): (Decimal(str(pair[0])), Decimal(str(pair[1])))
                for level, pair in (doc.get("levels") or {}).items()
            },  # fmt: skip
            levels_alert=str(doc.get("levels_alert") or ""),
        )


def orders_from_json(raw: Mapping[str, Any] | None) -> dict[str, ExitOrder]:
    """The ``orders`` of a stored spec (absent in specs written before order types: empty)."""
    return {str(role): ExitOrder.from_json(terms) for role, terms in (raw or {}).items()}


Persist = Callable[[str, "ProtectionSpec | None"], "Future[Any] | None"]


class ProtectionRegistry:
    """The specs by (account, conId), in memory; each change handed to ``persist`` (the recorder)."""

    def __init__(self, persist: Persist | None = None) -> None:
        self._specs: dict[tuple[str, int], ProtectionSpec] = {}
        self._lock = threading.Lock()
        self._persist = persist

    def get(self, account: str | None, con_id: int) -> ProtectionSpec | None:
        with self._lock:
            return self._specs.get((account or "", con_id))

    def set(self, spec: ProtectionSpec) -> ProtectionSpec | None:
        """Make ``spec`` the position's protection; returns the one it replaces (keep it to put
        the old exits back when the order that was to change the position is refused)."""
        with self._lock:
            previous = self._specs.get((spec.account, spec.con_id))
            self._specs[(spec.account, spec.con_id)] = spec
        if previous != spec:
            self._save(spec_key(spec.account, spec.con_id), spec)
        return previous

    def clear(self, account: str | None, con_id: int) -> ProtectionSpec | None:
        """Forget the spec (the position is flat); returns it."""
        with self._lock:
            previous = self._specs.pop((account or "", con_id), None)
        if previous is not None:
            self._save(spec_key(previous.account, con_id), None)
        return previous

    def restore(self, account: str | None, con_id: int, spec: ProtectionSpec | None) -> None:
        """Put back what :meth:`set` returned (``None``: no spec)."""
        if spec is None:
            self.clear(account, con_id)
        else:
            self.set(spec)

    def load(self, specs: list[ProtectionSpec]) -> None:
        """Fill the registry from the database at start (nothing is written back)."""
        with self._lock:
            for spec in specs:
                self._specs[(spec.account, spec.con_id)] = spec

    def con_ids(self, account: str | None) -> list[int]:
        with self._lock:
            return [con_id for (acct, con_id) in self._specs if acct == (account or "")]

    def all(self) -> list[ProtectionSpec]:
        with self._lock:
            return list(self._specs.values())

    def _save(self, key: str, spec: ProtectionSpec | None) -> None:
        if self._persist is None:
            return
        try:
            self._persist(key, spec)
        except Exception:  # noqa: BLE001 - memory is still right; the next change writes again
            log.exception("could not queue the protection spec %s for writing", key)


# ------------------------------------------------------------------ the database side


_CONTROL = Control.__table__
UPDATE_SPEC = (
    update(_CONTROL).where(_CONTROL.c.key == bindparam("spec_key"))
    .values(value=bindparam("spec_value"), updated_at=bindparam("at"))
)  # fmt: skip
INSERT_SPEC = insert(_CONTROL).values(
    key=bindparam("spec_key"), value=bindparam("spec_value"), updated_at=bindparam("at")
)


def spec_values(key: str, spec: ProtectionSpec, at: datetime) -> dict[str, Any]:
    """The parameters of :data:`UPDATE_SPEC` / :data:`INSERT_SPEC` for one spec row."""
    return {"spec_key": key, "spec_value": json.dumps(spec.to_json(), sort_keys=True), "at": at}


def save_spec(session: Session, key: str, spec: ProtectionSpec | None) -> None:
    """Upsert (or delete, for ``None``) one spec row; runs on the recorder thread."""
    if spec is None:
        session.execute(delete(Control).where(Control.key == key))
        return
    # plain statements built once, not the ORM's load-and-flush: this write is part of the decision
    # every opening order waits for (worker/execution/job_writes.py). An ORM change of this batch
    # goes first; an object of it loaded here reads the row again.
    if session.new or session.dirty:
        session.flush()
    connection, values = session.connection(), spec_values(key, spec, utcnow())
    if connection.execute(UPDATE_SPEC, values).rowcount == 0:  # one writer (the recorder thread): no race
        connection.execute(INSERT_SPEC, values)
    loaded = session.identity_map.get(session.identity_key(Control, key))
    if loaded is not None:
        session.expire(loaded)


def load_specs(session: Session, account: str | None = None) -> list[ProtectionSpec]:
    """Every persisted spec (of ``account`` when given); unreadable rows are logged and skipped."""
    rows = session.scalars(select(Control).where(Control.key.startswith(KEY_PREFIX)))
    specs = []
    for row in rows:
        try:
            spec = ProtectionSpec.from_json(json.loads(row.value))
        except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
            log.error("protection row %s is unreadable (%s); ignored", row.key, exc)
            continue
        if account is None or spec.account == account:
            specs.append(spec)
    return specs
