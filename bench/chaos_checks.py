"""What the chaos run checks: invariant 7 sampled from ibsim's state during the run, and the counts at
the end (lost alerts, doubled order sets, fills and notices, 5xx answers), each with its expectation.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from bench.chaos_traffic import Sent
from core.models import TERMINAL_STATUSES, Alert, AlertStatus, Fill, Notice

WORKING = frozenset({"Submitted", "PreSubmitted"})


def _leg(order: dict[str, Any]) -> str:
    ref = order.get("orderRef") or ""
    return ref.rsplit(":", 1)[-1] if ref.startswith("tv2ib:") else ""


def exit_mismatches(state: dict[str, Any]) -> list[tuple[str, set[int]]]:
    """Where tv2ib's working exits do not match the position (invariant 7): an exit on the opening
    side or on a flat position, or stops (targets) for more than the position. A bracket child
    waiting for its parent's fill is not working yet."""
    orders = {(o["clientId"], o["orderId"]): o for o in state["orders"]}
    held = {(p["account"], p["conId"]): float(p["position"]) for p in state["positions"]}
    exits: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for order in orders.values():
        leg = _leg(order)
        if not leg.startswith(("tp", "sl")) or order["status"] not in WORKING:
            continue
        parent = orders.get((order["clientId"], order.get("parentId") or 0))
        if parent is not None and parent["status"] != "Filled":
            continue
        exits[(order["account"], order["conId"])].append(order)
    found = []
    for (account, con_id), working in exits.items():
        position = held.get((account, con_id), 0.0)
        closing = "SELL" if position > 0 else "BUY"
        stops = sum(float(o["remaining"]) for o in working if _leg(o).startswith("sl"))
        targets = sum(float(o["remaining"]) for o in working if _leg(o).startswith("tp"))
        wrong = [o["orderRef"] for o in working if position == 0 or o["action"] != closing]
        if wrong or stops > abs(position) or targets > abs(position):
            symbol = working[0]["symbol"]
            found.append((f"{account} {symbol}: position {position:g}, stops {stops:g}, targets {targets:g}, "
                          f"wrong side/flat {wrong}; {_history(state, account, con_id)}",
                          {o["clientId"] for o in working}))  # fmt: skip
    return found


def _history(state: dict[str, Any], account: str, con_id: int) -> str:
    """The orders and the last executions of one account and contract, for the log."""
    orders = [(o["orderId"], o["orderRef"], o["action"], o["quantity"], o["remaining"], o["status"],
               o.get("ocaGroup"), o.get("parentId")) for o in state["orders"]
              if o["account"] == account and o["conId"] == con_id][-12:]  # fmt: skip
    fills = [(e["orderId"], e["orderRef"], e["side"], e["shares"], e["price"], e["time"]) for e in state["executions"]
             if e["account"] == account and e["conId"] == con_id][-8:]  # fmt: skip
    return f"orders {orders}; executions {fills}"


#: seconds a worker must have been connected (IB reachable) before a mismatch is its own: no
#: software cancels an order at IB while disconnected, and a reconnect first reads IB's state
#: (positions, open orders, executions: about 1 to 3 s here) before the guard can act on it
CONNECTED_GRACE = 5.0


class ExitSampler:
    """Reads ibsim's ``GET /state`` every ``interval`` s and counts the samples with a mismatch:
    all of them (``bad``), and those whose worker had been connected for ``CONNECTED_GRACE`` s
    with IB reachable (``owned``: the guard had every chance to put the exits right)."""

    def __init__(self, control_url: str, note: Callable[[str], None], interval: float = 0.5) -> None:
        self.url, self.note, self.interval = control_url, note, interval
        self.samples = self.bad = self.owned = self.unread = 0
        self._since: dict[int, float] = {}  # client id -> connected (and IB reachable) since
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def sample(self) -> None:
        try:
            state = httpx.get(f"{self.url}/state", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            self.unread += 1
            return
        self.samples += 1
        now, faults = time.monotonic(), state.get("faults") or {}
        reachable = not (faults.get("outage") or faults.get("refusing"))
        clients = set(state.get("clients") or ()) if reachable else set()
        self._since = {c: self._since.get(c, now) for c in clients}
        found = exit_mismatches(state)
        if found:
            self.bad += 1
            owned = [text for text, ids in found if ids and all(now - self._since.get(i, now) >= CONNECTED_GRACE
                                                                 for i in ids)]  # fmt: skip
            self.owned += bool(owned)
            label = (
                "invariant 7 MISMATCH (worker connected)"
                if owned
                else "invariant 7 mismatch while IB was away"
            )
            self.note(f"{label}: " + " | ".join(text for text, _ids in found))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


@dataclass
class Row:
    name: str
    value: int | str
    expected: str
    ok: bool = True


def _notice_repeats(rows: Iterable[Notice], messages: list[str]) -> tuple[int, int, list[str]]:
    """(notices delivered more often than written, messages carrying such a repeat, examples).
    A notice counts where its whole text is one part of a message (notices batched into one message
    are joined by a blank line)."""
    written = Counter(n.text for n in rows)
    repeated, carriers, examples = 0, set(), []
    for text, times in written.items():
        pattern = re.compile(r"(?:^|(?<=\n\n))" + re.escape(text) + r"(?=\n\n|$)")
        seen = [i for i, message in enumerate(messages) for _ in pattern.finditer(message)]
        if len(seen) > times:
            repeated += len(seen) - times
            carriers.update(seen[times:])
            examples.append(text[:120])
    return repeated, len(carriers), examples


def final_counts(
    database_url: str, sent: list[Sent], state: dict[str, Any], messages: list[str], *,
    http_5xx: list[tuple[float, int, str]], pg_windows: list[tuple[float, float]],
    sampler: ExitSampler, worker_kills: int, note: Callable[[str], None],
) -> list[Row]:  # fmt: skip
    """The table of counts with their expectations; details of every miss go to ``note``."""
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            alerts = {a.id: a for a in session.scalars(select(Alert))}
            fills = list(session.scalars(select(Fill)))
            notices = list(session.scalars(select(Notice)))
    finally:
        engine.dispose()
    accepted = [s for s in sent if s.accepted]
    children: dict[str, list[Alert]] = defaultdict(list)
    for alert in alerts.values():
        if alert.parent_id:
            children[alert.parent_id].append(alert)

    def ended(alert_id: str) -> bool:
        alert = alerts.get(alert_id)
        return (
            alert is not None
            and alert.status in TERMINAL_STATUSES
            and all(c.status in TERMINAL_STATUSES for c in children.get(alert_id, []))
        )

    lost = [s for s in accepted if not ended(s.alert_id or "")]
    for s in lost:
        alert = alerts.get(s.alert_id or "")
        note(f"LOST alert #{s.number} {s.kind} {s.alert_id}: {alert.status if alert else 'not stored'} "
             f"{[(c.id, c.status) for c in children.get(s.alert_id or '', [])]} payload {s.payload}")  # fmt: skip
    stuck = [a for a in alerts.values() if a.status not in TERMINAL_STATUSES]
    for alert in stuck:
        note(f"STUCK alert {alert.id} {alert.status} {alert.ticker} {alert.action} account {alert.account}")

    refs = Counter(o["orderRef"] for o in state["orders"] if (o.get("orderRef") or "").startswith("tv2ib:"))
    doubled = sorted({ref.split(":")[1] for ref, n in refs.items() if n > 1})
    for ref, n in refs.items():
        if n > 1:
            note(f"ORDER SET TWICE {ref}: {n} orders at IB")

    by_exec = Counter(f.exec_id for f in fills)
    fills_twice = sum(1 for n in by_exec.values() if n > 1)
    ours = [e for e in state["executions"] if (e.get("orderRef") or "").startswith("tv2ib:")]
    unrecorded = [e for e in ours if e["execId"] not in by_exec]
    for e in unrecorded:
        note(f"FILL NOT RECORDED {e['execId']} {e['orderRef']} {e['side']} {e['shares']} @ {e['price']}")

    repeated, carriers, examples = _notice_repeats(notices, messages)
    for text in examples:
        note(f"NOTICE REPEATED: {text!r}")
    unsent = sum(1 for n in notices if n.sent_at is None)

    def during_pg(at: float) -> bool:
        return any(start - 1 <= at <= end + 3 for start, end in pg_windows)

    unexplained_5xx = [x for x in http_5xx if not (x[1] == 503 and during_pg(x[0]))]
    for at, status, body in unexplained_5xx:
        note(f"5xx to an alert at {at:.3f}: {status} {body}")
    refused = [s for s in sent if s.kind != "invalid" and s.status is not None and 400 <= s.status < 500]
    rejected = Counter((a.reason or "")[:60] for a in alerts.values() if a.status == AlertStatus.REJECTED)
    note(f"rejected alerts by reason: {dict(rejected.most_common(12))}")
    return [
        Row("sent", len(sent), "—"),
        Row("accepted (2xx)", len(accepted), "—"),
        Row("terminal", len(accepted) - len(lost), "—"),
        Row("lost", len(lost), "0", not lost),
        Row("stored alerts not terminal (any)", len(stuck), "0", not stuck),
        Row("alerts with more than one order set", len(doubled), "0", not doubled),
        Row("fills recorded twice", fills_twice, "0", fills_twice == 0),
        Row("fills at IB never recorded", len(unrecorded), "0", not unrecorded),
        Row("notices sent twice", f"{repeated} in {carriers} message(s)",
            f"<= 1 message per worker SIGKILL ({worker_kills})", carriers <= worker_kills),
        Row("notices never delivered", unsent, "0", unsent == 0),
        Row(f"moments where the working exits did not match the position, its worker connected >= {CONNECTED_GRACE:g} s",
            sampler.owned, f"0 (of {sampler.samples} samples)", sampler.owned == 0),
        Row("the same while IB was unreachable from its worker (or it had just reconnected)",
            sampler.bad - sampler.owned, "—"),
        Row("valid alerts refused (4xx)", len(refused), "0", not refused),
        Row("5xx answers to input", len(unexplained_5xx), "0", not unexplained_5xx),
        Row("503 while PostgreSQL was down (documented)", len(http_5xx) - len(unexplained_5xx), "—"),
    ]  # fmt: skip


def render(rows: list[Row]) -> str:
    width = max(len(r.name) for r in rows)
    lines = [f"| {'count'.ljust(width)} | value | expected | |", f"|{'-' * (width + 2)}|---|---|---|"]
    for r in rows:
        mark = "ok" if r.ok else "MISSED"
        lines.append(
            f"| {r.name.ljust(width)} | {r.value} | {r.expected} | {mark if r.expected != '—' else ''} |"
        )
    return "\n".join(lines)
