"""The decision write: what the awaited write before any order leaves costs, per durability setting.

The write is the product's own: ``JobWrites.decided`` (worker/execution/job_writes.py) through the
worker's single database writer (worker/recording/recorder.py, with the notices' hook), storing a
real decision (the first plan of tests/worker/data/stored_plans.jsonl) on a queued alert and
marking it ``processing``, then waiting for the commit, as the job does. Timed per write from the
job thread's call to its return, one write every ``--gap`` seconds (alerts come one by one), the
settings' writes interleaved so that a shared machine's changing load weighs on each alike.

SQLite (a fresh file per setting, on the repository's disk unless ``--dir``): WAL with
``synchronous`` NORMAL (the product's setting, core/db.py), FULL and OFF, and the rollback journal
with FULL (SQLite's own default). PostgreSQL (a private database on ``BENCH_PG_URL``):
``synchronous_commit`` on (the product's), off for the connection, and on without the pool's pre-ping (the worker's engine pings
the server when a transaction takes a connection). What each survives: docs/worker.md ("The decision's write").

    .venv/bin/python -m bench.decision_write                 # SQLite and PostgreSQL, 500 writes each
    .venv/bin/python -m bench.decision_write --db sqlite --writes 2000 --gap 0.002
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import sessionmaker

from bench.benchtools import TESTS, percentile, private_pg_database
from config.settings import Settings
from core.db import make_engine, make_session_factory, migrate
from core.ids import new_alert_id
from core.models import Alert, AlertStatus, utcnow
from worker.decision.stored import StoredDecision
from worker.execution.job_writes import JobWrites
from worker.notify import enqueue_notices
from worker.recording.recorder import Recorder

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PLAN = TESTS / "worker" / "data" / "stored_plans.jsonl"


@dataclass(frozen=True)
class Setting:
    name: str
    survives: str  # what a committed decision survives
    tune: Callable[[Engine], None]  # listeners added after the product's own
    pre_ping: bool = True


def _on_connect(*statements: str) -> Callable[[Engine], None]:
    def tune(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def run(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            for statement in statements:
                cur.execute(statement)
            cur.close()
            if engine.dialect.name == "postgresql":
                dbapi_conn.commit()

    return tune


def _unchanged(_engine: Engine) -> None:
    return None


KILL = "process crash, SIGKILL"
SQLITE = [
    Setting("WAL, synchronous=NORMAL (product)", f"{KILL}; power loss may lose the last commits", _unchanged),
    Setting("WAL, synchronous=FULL", f"{KILL}, power loss", _on_connect("PRAGMA synchronous=FULL")),
    Setting("WAL, synchronous=OFF", f"{KILL}; power loss may corrupt the file", _on_connect("PRAGMA synchronous=OFF")),
    Setting("rollback journal, synchronous=FULL", f"{KILL}, power loss",
            _on_connect("PRAGMA journal_mode=DELETE", "PRAGMA synchronous=FULL")),
]  # fmt: skip
POSTGRESQL = [
    Setting("synchronous_commit=on (product)", f"{KILL}, a PostgreSQL or OS crash, power loss", _unchanged),
    Setting("synchronous_commit=off for the connection",
            f"{KILL}; a PostgreSQL/OS crash loses up to ~3 x wal_writer_delay", _on_connect("SET synchronous_commit TO OFF")),
    Setting("synchronous_commit=on, no pre-ping", f"{KILL}, a PostgreSQL or OS crash, power loss", _unchanged,
            pre_ping=False),
]  # fmt: skip


def decision() -> StoredDecision:
    with PLAN.open() as lines:
        return StoredDecision.from_json(json.loads(lines.readline()))


def settings_for(url: str) -> Settings:
    return Settings.from_mapping({"WEBHOOK_SECRET": secrets.token_urlsafe(24), "DATABASE_URL": url,
                                  "REDIS_URL": "redis://127.0.0.1:6379/15"})  # fmt: skip


def queued_alerts(sessions: sessionmaker[Any], count: int) -> list[str]:
    ids = [new_alert_id() for _ in range(count)]
    payload = {"ticker": "AMD", "action": "buy", "quantity": 5, "price": 143}
    with sessions.begin() as session:
        session.add_all(Alert(id=i, status=AlertStatus.QUEUED.value, received_at=utcnow(), payload=payload,
                              ticker="AMD", action="buy", queue_name="tv2ib:alerts") for i in ids)  # fmt: skip
    return ids


class Bench:
    """One setting's database, engine and recorder, ready to time decision writes."""

    def __init__(self, url: str, setting: Setting, count: int) -> None:
        self.setting = setting
        self.engine = make_engine(url)
        if not setting.pre_ping:
            self.engine.pool._pre_ping = False  # type: ignore[attr-defined]  # the bench's engine only
        setting.tune(self.engine)
        migrate(self.engine)
        sessions = make_session_factory(self.engine)
        self.ids = queued_alerts(sessions, count)
        self.recorder = Recorder(sessions, None, settings_for(url), 1,
                                 enqueue_notices=lambda s, e, st: enqueue_notices(s, e, st, simulator=False))  # fmt: skip
        self.job = JobWrites(self.recorder)
        self.writes: list[float] = []  # ms per decision write
        self.hops: list[float] = []  # ms per empty unit of work (the recorder's hop alone)

    def once(self, n: int, stored: StoredDecision, keep: bool) -> None:
        t0 = time.perf_counter()
        self.job.decided(self.ids[n], stored, "buy 5: flat -> long 5").result(
            30
        )  # the job awaits it (on the IB loop)
        t1 = time.perf_counter()
        self.recorder.run(lambda _uow: None).result(30)
        if keep:
            self.writes.append((t1 - t0) * 1000)
            self.hops.append((time.perf_counter() - t1) * 1000)

    def close(self) -> None:
        self.recorder.stop()
        self.engine.dispose()


def line(name: str, values: list[float]) -> str:
    return (f"  {name:<52} p50 {percentile(values, 50):6.3f} ms  p99 {percentile(values, 99):6.3f} ms  "
            f"mean {statistics.fmean(values):6.3f}")  # fmt: skip


def run(backend: str, settings: list[Setting], database: Callable[[], ContextManager[str]], args: argparse.Namespace) -> None:  # fmt: skip
    """Every setting on a database of its own, their writes interleaved (setting 1, 2, ... then
    again), so that the machine's changing load weighs on every setting alike."""
    warm = 20
    print(
        f"{backend}: {args.writes} decision writes per setting, interleaved, one every {args.gap * 1000:.0f} ms"
    )
    stored = decision()
    with contextlib.ExitStack() as stack:
        benches = [Bench(stack.enter_context(database()), s, args.writes + warm) for s in settings]
        for bench in benches:
            stack.callback(bench.close)
        for n in range(args.writes + warm):
            for bench in benches:
                bench.once(n, stored, n >= warm)
                time.sleep(args.gap / len(benches))
        for bench in benches:
            print(line(bench.setting.name, bench.writes))
            print(f"  {'':<52} survives: {bench.setting.survives}")
        print(line("the recorder's hop alone (an empty unit of work)", [h for b in benches for h in b.hops]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--gap", type=float, default=0.01, help="seconds between two decisions")
    parser.add_argument(
        "--dir", type=Path, default=ROOT, help="where the SQLite files go (default: the repository's disk)"
    )
    args = parser.parse_args()
    print(f"decision write benchmark - {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="tv2ib-decision-", dir=args.dir) as tmp:

            @contextlib.contextmanager
            def sqlite_file() -> Iterator[str]:
                yield f"sqlite:///{Path(tmp) / (secrets.token_hex(4) + '.db')}"

            run("SQLite", SQLITE, sqlite_file, args)
    if args.db in ("postgresql", "both"):
        run("PostgreSQL", POSTGRESQL, lambda: private_pg_database(PG_ADMIN, "tv2ib_decision"), args)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
