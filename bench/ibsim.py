"""Benchmark ibsim: connect time, acknowledged orders per second (pacing off), RSS with 10,000 orders.

    python -m bench.ibsim [--orders 10000]

Starts ``python -m ibsim --no-pacing`` as a subprocess, drives it with one real ib_async client
(its own 45 msg/s throttle switched off) and prints the figures. Targets from issue 3:
connect < 50 ms, >= 2,000 acknowledged orders/s, < 100 MB RSS with 10,000 orders in the book.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ib_async import IB, LimitOrder, Stock


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (Linux /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--connects", type=int, default=20)
    args = parser.parse_args()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ibsim",
            "--port",
            "0",
            "--control-port",
            "-1",
            "--no-pacing",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # from the repo root: run from bench/, "-m ibsim" would find this very file first
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[2].split("=")[1])
        print(f"ibsim pid {proc.pid} port {port}; RSS at start {rss_mb(proc.pid):.1f} MB")

        times = []
        for i in range(args.connects):
            ib = IB()
            start = time.perf_counter()
            ib.connect("127.0.0.1", port, clientId=1000 + i, timeout=5)
            times.append((time.perf_counter() - start) * 1000)
            ib.disconnect()
        print(
            f"connect: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms over {len(times)} connects"
        )

        ib = IB()
        ib.connect("127.0.0.1", port, clientId=1, timeout=5)
        ib.client.MaxRequests = 0  # the client's own 45/s throttle would measure the client, not ibsim
        (contract,) = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
        acked = 0

        def on_status(trade) -> None:
            nonlocal acked
            if trade.orderStatus.status == "Submitted":
                acked += 1

        ib.orderStatusEvent += on_status
        cpu_before = cpu_seconds(proc.pid)
        start = time.perf_counter()
        for i in range(args.orders):
            ib.placeOrder(contract, LimitOrder("BUY", 1, round(100.0 + (i % 500) * 0.01, 2)))
        deadline = time.monotonic() + 120
        while acked < args.orders and time.monotonic() < deadline:
            ib.sleep(0.005)
        elapsed = time.perf_counter() - start
        print(
            f"orders: {acked}/{args.orders} acknowledged in {elapsed:.2f} s = {acked / elapsed:,.0f} orders/s"
        )
        server_cpu = cpu_seconds(proc.pid) - cpu_before
        print(
            f"ibsim CPU for those orders: {server_cpu:.2f} s "
            f"({acked / max(server_cpu, 1e-9):,.0f} orders per ibsim CPU-second; the rest of the wall time is the client)"
        )
        print(f"RSS with {len(ib.openTrades())} open orders in the book: {rss_mb(proc.pid):.1f} MB")
        ib.disconnect()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


if __name__ == "__main__":
    main()
