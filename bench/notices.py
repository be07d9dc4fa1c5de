"""Benchmark the notice path: worker execution -> outbox -> Telegram (fake Bot API over HTTP).

    python -m bench.notices                      # latency, p50/p99 (target: p99 <= 250 ms)
    python -m bench.notices --count 120 --chats 6 --interval 1.1
    python -m bench.notices --outage 30          # Telegram down 30 s during a stream of fills
    python -m bench.notices --flood 100          # 100 fills at once, limits enforced
    python -m bench.notices --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
                                                  # (a private database is created on that server and dropped)

Latency is measured from the moment the worker has an execution in hand (just before
``enqueue_notices`` in its recording transaction, then commit and ``wake()``) to the moment the
fake Bot API server receives the ``sendMessage`` (its arrival timestamp), with the real
python-telegram-bot client, its AIORateLimiter and our per-chat pacing switched on but not
saturated: each chat gets one notice every ``--interval`` seconds (Telegram allows ~1/s per chat),
and the notices rotate over ``--chats`` chats. The fake enforces Telegram's limits (429 when
exceeded) and the run reports any violation.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from bench.benchtools import percentile, private_pg_database, test_module
from config.settings import Settings
from core.db import make_engine, make_session_factory, migrate
from core.models import Control, Notice
from worker.notify import Notifier, enqueue_notices

FakeTelegramAPI = test_module("fakes/telegram_api.py").FakeTelegramAPI
fill_event = test_module("notify/notify_helpers.py").fill_event

SEQ = re.compile(r"bench#(\d+)")


def fill(seq: int, run: str) -> dict[str, object]:
    """The notifier tests' fill event, numbered for this run (``bench#<seq>`` in the notice)."""
    return fill_event(seq, exec_id=f"bench.{run}.{seq}", alert_id="01JBENCH000000000000000000",
                      strategy=f"bench#{seq}")  # fmt: skip


def seqs_in(api: FakeTelegramAPI, chat: str | None = None) -> list[int]:
    out: list[int] = []
    for message in api.messages(chat):
        out.extend(int(s) for s in SEQ.findall(message.text))
    return out


class Rig:
    """A fake Bot API, a database and a started Notifier with ``chats`` owner chats."""

    def __init__(self, database_url: str | None, chats: int, enforce_limits: bool = True) -> None:
        self.api = FakeTelegramAPI(enforce_limits=enforce_limits).start()
        self.tmp = tempfile.TemporaryDirectory()
        self._cleanup = contextlib.ExitStack()
        url = database_url or f"sqlite:///{self.tmp.name}/bench.db"
        if make_url(url).get_backend_name() == "postgresql":  # a throw-away database on that server
            url = self._cleanup.enter_context(private_pg_database(url, "tv2ib_bench"))
        self.engine = make_engine(url)
        migrate(self.engine)
        self.sessions = make_session_factory(self.engine)
        with self.sessions.begin() as session:  # a shared database: start from an empty outbox
            session.execute(delete(Notice).where(Notice.dedup_key.like("fill:bench.%")))
            session.execute(delete(Control).where(Control.key == "notifier_lease"))
        self.chat_ids = [str(1000 + i) for i in range(chats)]
        env = {
            "WEBHOOK_SECRET": "bench-webhook-secret-0123456789",
            "DATABASE_URL": url,
            "TELEGRAM_BOT_TOKEN": self.api.token,
            "TELEGRAM_API_URL": self.api.base_url,
            "IB_ACCOUNT": "BENCH",
        }
        self.settings = Settings.from_mapping({**env, "TELEGRAM_CHAT_ID": ",".join(self.chat_ids)})
        # One settings object per chat: each notice targets one chat, so chats take turns.
        self.per_chat = [Settings.from_mapping({**env, "TELEGRAM_CHAT_ID": c}) for c in self.chat_ids]
        self.notifier = Notifier(self.settings, self.sessions, None, owner=f"bench:{uuid.uuid4().hex[:6]}")
        self.notifier.start()
        if not self.api.wait_for(lambda a: a.count("getUpdates") >= 1, 10):
            raise SystemExit("the bot did not start polling the fake Bot API")
        self.run_id = uuid.uuid4().hex[:8]

    def record(self, seq: int, chat_index: int | None = None) -> tuple[float, float]:
        """What the worker does for one execution; returns (start, after commit+wake)."""
        settings = self.settings if chat_index is None else self.per_chat[chat_index]
        start = time.time()
        with self.sessions.begin() as session:
            enqueue_notices(session, fill(seq, self.run_id), settings)
        self.notifier.wake()
        return start, time.time()

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.notifier.stop(5.0)
        self.api.stop()
        self.engine.dispose()
        self.tmp.cleanup()
        self._cleanup.close()


@dataclass
class NoticeFigures:
    """The latency run's figures (ms): tv2ib's notices and the floor's plain sendMessage posts."""

    latencies: list[float]
    commit_ms: list[float]
    floor: list[float]
    missing: int
    messages: int
    batched: int
    violations: int


def floor_latency(rig: Rig, count: int, step: float) -> list[float]:
    """The floor: ``count`` plain HTTP ``sendMessage`` posts to the same fake Bot API (one keep-alive
    client, no outbox, no bot library), one every ``step`` seconds over the same chats; ms from just
    before each post to the fake's arrival stamp."""
    url = f"{rig.api.base_url}{rig.api.token}/sendMessage"
    started: list[float] = []
    with httpx.Client(timeout=5) as client:
        next_at = time.monotonic()
        for seq in range(count):
            next_at += step
            started.append(time.time())
            client.post(url, json={"chat_id": rig.chat_ids[seq % len(rig.chat_ids)], "text": f"floor {seq}"})
            time.sleep(max(0.0, next_at - time.monotonic()))
    arrived = {int(m.text.split()[1]): m.at for m in rig.api.messages() if m.text.startswith("floor ")}
    return [(arrived[seq] - t0) * 1000 for seq, t0 in enumerate(started) if seq in arrived]


def bench_latency(args: argparse.Namespace) -> NoticeFigures:
    with Rig(args.database_url, args.chats) as rig:
        started: dict[int, float] = {}
        commit_ms: list[float] = []
        step = args.interval / args.chats  # each chat: one notice per interval
        next_at = time.monotonic()
        for seq in range(args.count):
            next_at += step
            t0, t1 = rig.record(seq, seq % args.chats)
            started[seq] = t0
            commit_ms.append((t1 - t0) * 1000)
            time.sleep(max(0.0, next_at - time.monotonic()))
        rig.api.wait_for(lambda a: len(seqs_in(a)) >= args.count, 15)
        arrival: dict[int, float] = {}
        batched = 0
        for message in rig.api.messages():
            found = [int(s) for s in SEQ.findall(message.text)]
            batched += len(found) > 1
            for seq in found:
                arrival.setdefault(seq, message.at)
        latencies = [(arrival[s] - started[s]) * 1000 for s in started if s in arrival]
        figures = NoticeFigures(latencies, commit_ms, [], args.count - len(latencies),
                                len(rig.api.messages()), batched, rig.api.violations)  # fmt: skip
        time.sleep(args.interval)  # every chat's pacing slot free again before the floor's posts
        figures.floor = floor_latency(rig, args.count, step)
        print_latency(figures, args, rig.engine.url.get_backend_name())
        return figures


def print_latency(figures: NoticeFigures, args: argparse.Namespace, backend: str) -> None:
    latencies, commit_ms, floor = figures.latencies, figures.commit_ms, figures.floor
    print(f"notice latency, execution in hand -> fake Bot API received sendMessage ({backend})")
    print(
        f"  notices: {args.count} over {args.chats} chats, one per chat every {args.interval} s; missing: {figures.missing}"
    )
    print(
        f"  p50 {percentile(latencies, 50):.1f} ms   p90 {percentile(latencies, 90):.1f} ms   "
        f"p99 {percentile(latencies, 99):.1f} ms   max {max(latencies):.1f} ms   mean {statistics.mean(latencies):.1f} ms"
    )
    print(
        f"  of which enqueue+commit+wake in the worker: p50 {percentile(commit_ms, 50):.2f} ms  p99 {percentile(commit_ms, 99):.2f} ms"
    )
    print(
        f"  messages {figures.messages} (batched: {figures.batched}), limit violations (429 from the fake): {figures.violations}"
    )
    print(f"  target p99 <= 250 ms: {'met' if percentile(latencies, 99) <= 250 else 'NOT met'}")
    print(
        f"  floor, a plain HTTP sendMessage to the same fake (no outbox, no bot library): "
        f"p50 {percentile(floor, 50):.1f} ms   p99 {percentile(floor, 99):.1f} ms"
    )


def bench_outage(args: argparse.Namespace) -> None:
    with Rig(args.database_url, 2) as rig:
        rate = 5.0
        lead, tail = 2.0, 3.0
        total = int((lead + args.outage + tail) * rate)
        down_at, up_at = int(lead * rate), int((lead + args.outage) * rate)
        for seq in range(total):
            if seq == down_at:
                rig.api.go_down(args.outage_mode)
                went_down = time.time()
            if seq == up_at:
                rig.api.come_back()
                came_back = time.time()
            rig.record(seq)
            time.sleep(1 / rate)
        ok = all(rig.api.wait_for(lambda a, c=c: len(seqs_in(a, c)) >= total, 60) for c in rig.chat_ids)
        print(
            f"Telegram down ({args.outage_mode}) for {came_back - went_down:.1f} s during a stream of {total} fills at {rate:.0f}/s, 2 chats"
        )
        for chat in rig.chat_ids:
            seen = seqs_in(rig.api, chat)
            in_order_once = seen == list(range(total))
            late = [m.at for m in rig.api.messages(chat) if m.at >= came_back]
            recovered = (min(late) - came_back) if late else float("nan")
            print(
                f"  chat {chat}: {len(seen)}/{total} notices, exactly once and in order: {in_order_once}; "
                f"first message {recovered:.1f} s after Telegram returned; {len(rig.api.messages(chat))} messages"
            )
        print(f"  all delivered: {ok}; limit violations: {rig.api.violations}")


def bench_flood(args: argparse.Namespace) -> None:
    with Rig(args.database_url, 2) as rig:
        start = time.time()
        for seq in range(args.flood):
            rig.record(seq)
        rig.api.wait_for(lambda a: all(len(seqs_in(a, c)) >= args.flood for c in rig.chat_ids), 60)
        print(
            f"flood: {args.flood} fills at once to 2 chats (fake enforces 1 msg/s per chat after a burst of 4, 30/s overall)"
        )
        for chat in rig.chat_ids:
            messages = rig.api.messages(chat)
            seen = seqs_in(rig.api, chat)
            done = max(m.at for m in messages) - start if messages else float("nan")
            print(
                f"  chat {chat}: {len(seen)}/{args.flood} notices in {len(messages)} messages, "
                f"in order once: {seen == list(range(args.flood))}, all delivered after {done:.1f} s"
            )
        print(f"  limit violations: {rig.api.violations}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=120, help="notices in the latency run")
    parser.add_argument("--chats", type=int, default=6, help="chats the notices rotate over")
    parser.add_argument("--interval", type=float, default=1.1, help="seconds between notices of one chat")
    parser.add_argument(
        "--outage", type=float, default=0, help="run the outage scenario with this many seconds down"
    )
    parser.add_argument("--outage-mode", default="refuse", choices=["refuse", "drop", "5xx"])
    parser.add_argument("--flood", type=int, default=0, help="run the flood scenario with this many fills")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.outage:
        bench_outage(args)
    elif args.flood:
        bench_flood(args)
    else:
        bench_latency(args)


if __name__ == "__main__":
    main()
