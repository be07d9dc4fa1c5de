"""Pipeline latency: webhook request → ibsim receives the bracket's last leg, beside the floor.

Starts real processes on free ports: a private ``redis-server``, ``python -m ibsim``, gunicorn
(``config/gunicorn.conf.py``) and ``python -m worker``, on a fresh SQLite file (or
``--database-url``). The worker reaches ibsim through a tiny TCP relay inside this script that
timestamps every framed message and spots the ``placeOrder`` carrying ``tv2ib:<alert>:sl``: that
instant is "ibsim received the last leg" (ibsim's ``/state`` has no receive timestamps; the relay
adds one loopback hop, tens of microseconds, to both figures alike).

For each alert: t0 just before the HTTP request is written (loopback: its arrival at gunicorn
is within tens of microseconds), t1 when the relay forwards the stop-loss leg. The floor is a
plain ib_async script on the same relay placing the same bracket (parent + take-profit with
transmit=False, stop-loss transmitting): t0 before the first ``placeOrder``, t1 as above.

    .venv/bin/python -m bench.pipeline             # 200 alerts spaced 100 ms, then a 100-alert burst
    .venv/bin/python -m bench.pipeline --alerts 500 --gap 0.02 --burst 0
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.benchtools import free_port, percentile, private_redis
from cli.stack import ProcessStack, wait_until

PLACE_ORDER = b"3"
OPEN_ORDER = b"5"


class Relay:
    """TCP relay worker ↔ ibsim on its own loop thread; records when a last leg passes to ibsim
    (``seen``) and when ibsim's first ``openOrder`` of it passes back (``acked``: its acknowledgement)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.seen: dict[str, float] = {}  # order ref -> perf_counter when forwarded
        self.acked: dict[str, float] = {}  # order ref -> perf_counter when ibsim's openOrder passed back
        self.sent_at: list[float] = []  # perf_counter of every message any client sent ibsim (pacing)
        self.wanted_suffix = b":sl\x00"
        # told of every acknowledgement stamped: a waiter sleeps until then instead of polling (the
        # benchmark's own wake-ups would compete with the pipeline for the machine's cores)
        self._stamped = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self._ready.set()
        async with server:
            await server.serve_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        for sock in (writer.get_extra_info("socket"), up_writer.get_extra_info("socket")):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(self._upstream(reader, up_writer), self._pipe(up_reader, writer))

    async def _upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """client → ibsim: the greeting, then frame by frame, stamping each last leg placed."""
        await self._frames(reader, writer, PLACE_ORDER, self.seen, greeting=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """ibsim → client, frame by frame (the handshake answer is framed too), stamping each last
        leg's first openOrder: its acknowledgement."""
        await self._frames(reader, writer, OPEN_ORDER, self.acked)

    async def _frames(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        msg_id: bytes,
        into: dict[str, float],
        greeting: bool = False,
    ) -> None:
        try:
            if greeting:
                writer.write(await reader.readexactly(4))  # "API\0"
            while True:
                header = await reader.readexactly(4)
                payload = await reader.readexactly(int.from_bytes(header, "big"))
                writer.write(header + payload)
                if greeting:
                    self.sent_at.append(time.perf_counter())
                if payload.startswith(msg_id + b"\x00") and self.wanted_suffix in payload:
                    now = time.perf_counter()
                    for field in payload.split(b"\x00"):
                        if field.startswith(b"tv2ib:") and field.endswith(b":sl"):
                            into.setdefault(field.decode(), now)
                    with self._stamped:
                        self._stamped.notify_all()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def wait_acked(self, ref: str, timeout: float) -> bool:
        """Block until ibsim's acknowledgement of ``ref`` has passed (True) or ``timeout`` s went by."""
        with self._stamped:
            return self._stamped.wait_for(lambda: ref in self.acked, timeout)

    def latencies(self, sent: dict[str, float], acked: bool = False) -> list[float]:
        """Milliseconds from each ref's start (perf_counter) to its last leg at ibsim, or to
        ibsim's acknowledgement of it."""
        marks = self.acked if acked else self.seen
        return [(marks[ref] - t0) * 1000 for ref, t0 in sent.items()]


def describe(name: str, values_ms: list[float]) -> str:
    return (
        f"{name:<44} n={len(values_ms):<4} p50={percentile(values_ms, 50):7.2f} ms  p99={percentile(values_ms, 99):7.2f} ms"
        f"  min={min(values_ms):6.2f}  max={max(values_ms):7.2f}  mean={statistics.fmean(values_ms):6.2f}"
    )


def bracket(i: int, price: float) -> dict:
    return {
        "ticker": "AAPL", "action": "buy", "quantity": 1, "orderType": "market", "price": price,
        "takeProfit": {"percent": 1}, "stopLoss": {"percent": 0.5}, "id": f"bench-{i}-{secrets.token_hex(4)}",
    }  # fmt: skip


def flatten(i: int) -> dict:
    """Back to flat after a measured bracket: since position semantics a second ``buy`` while long
    is refused, so every measured bracket opens from flat (its exits cancelled, a market close)."""
    return {"ticker": "AAPL", "action": "exit", "id": f"bench-exit-{i}-{secrets.token_hex(4)}"}


def run_pipeline(stack: ProcessStack, relay: Relay, count: int, gap: float) -> list[float]:
    client = httpx.Client(timeout=5)
    sent: dict[str, float] = {}
    answered: list[float] = []
    body_secret = stack.env["WEBHOOK_SECRET"]
    for i in range(count):
        payload = {"secret": body_secret, **bracket(i, 190.0)}
        t0 = time.perf_counter()
        response = client.post(f"{stack.web_url}/webhook", json=payload)
        answered.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 202:
            raise SystemExit(f"webhook answered {response.status_code}: {response.text}")
        sent[f"tv2ib:{response.json()['alert_id']}:sl"] = t0
        time.sleep(gap)
        # not measured: back to flat for the next bracket
        response = client.post(f"{stack.web_url}/webhook", json={"secret": body_secret, **flatten(i)})
        if response.status_code != 202:
            raise SystemExit(f"webhook answered {response.status_code}: {response.text}")
        time.sleep(gap)
    wait_until(lambda: all(ref in relay.seen for ref in sent), 60, "not every bracket reached ibsim")
    client.close()
    if count >= 20:
        print(describe("webhook answered (202)", answered))
    return [(relay.seen[ref] - t0) * 1000 for ref, t0 in sent.items()]


@dataclass
class Burst:
    """A burst's figures: ``brackets`` brackets, each followed by an exit (2 x ``brackets`` alerts),
    posted in ``posted`` s, the last bracket's last leg at ibsim after ``done`` s, ``messages``
    messages sent to ibsim in between (every message counts against IB's 50 per second)."""

    brackets: int
    posted: float
    done: float
    messages: int


def run_burst(stack: ProcessStack, relay: Relay, count: int) -> Burst:
    """``count`` brackets as fast as one client can post, each followed by an exit back to flat
    (2 x ``count`` alerts: a bracket is 3 order messages, an exit 3: two cancels and a close)."""
    client = httpx.Client(timeout=5)
    refs = []
    t0 = time.perf_counter()
    for i in range(count):
        response = client.post(f"{stack.web_url}/webhook",
                               json={"secret": stack.env["WEBHOOK_SECRET"], **bracket(10_000 + i, 190.0)})  # fmt: skip
        refs.append(f"tv2ib:{response.json()['alert_id']}:sl")
        client.post(
            f"{stack.web_url}/webhook", json={"secret": stack.env["WEBHOOK_SECRET"], **flatten(10_000 + i)}
        )
    posted = time.perf_counter() - t0
    wait_until(lambda: all(ref in relay.seen for ref in refs), 120, "burst did not complete")
    client.close()
    last = max(relay.seen[r] for r in refs)
    return Burst(count, posted, last - t0, sum(t0 <= t <= last for t in relay.sent_at))


def run_floor(
    relay: Relay, count: int, gap: float, tag: str = "floor", clean_up: bool = False
) -> dict[str, float]:
    """A plain ib_async script placing ``count`` brackets through the relay, each once the last one's
    acknowledgement is back; returns each last leg's ref and start (perf_counter). ``clean_up``: at
    the end cancel every working order (reqGlobalCancel) and sell what the floor bought, so a run of
    tv2ib after it sees an account without the floor's orders and position."""
    from ib_async import IB, LimitOrder, MarketOrder, Stock, StopOrder

    ib = IB()
    ib.connect("127.0.0.1", relay.port, clientId=99, timeout=10)
    # another symbol than the pipeline's: the floor's fills are a position tv2ib's worker would see
    # (a buy while long is refused since position semantics), so they must not land on AAPL
    contract = ib.qualifyContracts(Stock("MSFT", "SMART", "USD"))[0]
    sent: dict[str, float] = {}
    for i in range(count):
        ref = f"{tag}{i}"
        parent = MarketOrder("BUY", 1, orderRef=f"tv2ib:{ref}:entry", transmit=False)
        parent.orderId = ib.client.getReqId()
        tp = LimitOrder("SELL", 1, 424.2, orderRef=f"tv2ib:{ref}:tp", transmit=False, parentId=parent.orderId,
                        ocaGroup=ref, ocaType=2, tif="GTC")  # fmt: skip
        sl = StopOrder("SELL", 1, 417.9, orderRef=f"tv2ib:{ref}:sl", transmit=True, parentId=parent.orderId,
                       ocaGroup=ref, ocaType=2, tif="GTC")  # fmt: skip
        t0 = time.perf_counter()
        for order in (parent, tp, sl):
            ib.placeOrder(contract, order)
        sent[f"tv2ib:{ref}:sl"] = t0
        # ib.sleep keeps ib_async's loop running while we poll
        wait_until(lambda ref=ref: f"tv2ib:{ref}:sl" in relay.acked, 10,
                   lambda ref=ref: f"floor bracket {ref} not acknowledged; trades: {ib.trades()[-3:]}",
                   interval=0.0002, sleep=ib.sleep)  # fmt: skip
        ib.sleep(gap)
    if clean_up:
        ib.reqGlobalCancel()
        wait_until(lambda: not ib.openTrades(), 30, "the floor's orders were not cancelled", sleep=ib.sleep)
        held = sum(p.position for p in ib.positions() if p.contract.conId == contract.conId)
        if held:
            close = ib.placeOrder(contract, MarketOrder("SELL", held))
            wait_until(lambda: close.isDone(), 30, "the floor's position was not closed", sleep=ib.sleep)
    ib.disconnect()
    return sent


@dataclass
class Figures:
    """One run's figures (ms): webhook -> last leg, the floor's, and the burst's (None: skipped)."""

    pipe: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    burst: Burst | None = None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument(
        "--gap", type=float, default=0.1, help="seconds between alerts (latency run; below IB pacing)"
    )
    parser.add_argument("--burst", type=int, default=100, help="alerts in the throughput burst (0: skip)")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--risk-file", default=None,
                        help="the worker's RISK_FILE (e.g. bench/risk_counters.yaml); default: none")  # fmt: skip
    return parser


def main() -> None:
    run(build_parser().parse_args())


def run(args: argparse.Namespace) -> Figures:
    """The whole benchmark (printing as it goes); returns its figures. ``--alerts 0``: the burst alone."""
    tmp = Path(tempfile.mkdtemp(prefix="tv2ib-bench-"))
    with private_redis() as redis_url:
        env = {
            "WEBHOOK_SECRET": secrets.token_urlsafe(24),
            "DATABASE_URL": args.database_url or f"sqlite:///{tmp / 'bench.db'}",
            "REDIS_URL": redis_url,
            "RATE_LIMIT": "1000000/minute",
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
            "WEB_WORKERS": os.environ.get("WEB_WORKERS", "2"),
        }
        if args.risk_file:
            env["RISK_FILE"] = str(Path(args.risk_file).resolve())
        stack = ProcessStack(tmp, env)
        try:
            return run_benchmark(stack, env, args)
        finally:
            stack.stop()


def run_benchmark(stack: ProcessStack, env: dict[str, str], args: argparse.Namespace) -> Figures:
    stack.start_sim()
    stack.sim_post("/price", {"symbol": "AAPL", "secType": "STK", "price": 190.0})
    relay = Relay(stack.sim_port)
    stack.env["IB_PORT"] = str(relay.port)
    stack.start_web()
    stack.start_worker()
    print(f"tv2ib pipeline benchmark - {os.cpu_count()} CPUs, database {env['DATABASE_URL'].split(':')[0]}, "
          f"{args.alerts} alerts {args.gap * 1000:.0f} ms apart, risk file {env.get('RISK_FILE') or 'none'}")  # fmt: skip
    run_pipeline(stack, relay, 10, args.gap)  # warm-up: contract cache, connections, JIT-free paths
    figures = Figures()
    if args.alerts:
        figures.pipe = run_pipeline(stack, relay, args.alerts, args.gap)
        figures.floor = relay.latencies(run_floor(relay, args.alerts, args.gap))
        print(describe("webhook -> last leg at ibsim (tv2ib)", figures.pipe))
        print(describe("floor: ib_async places bracket -> ibsim", figures.floor))
        print("targets: p50 <= 10 ms, p99 <= 30 ms")
    if args.burst:
        burst = figures.burst = run_burst(stack, relay, args.burst)
        print(f"burst of {args.burst} brackets, each followed by an exit: posted in {burst.posted:.2f} s, last bracket's "
              f"last leg at ibsim after {burst.done:.2f} s ({args.burst / burst.done:.1f} brackets/s + as many exits; "
              "the order pacer, 40 messages/s under IB's 50, allows 6.7 such pairs/s)")  # fmt: skip
    return figures


if __name__ == "__main__":
    main()
