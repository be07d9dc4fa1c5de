"""The report's runners: each calls one benchmark's ``run(args)`` and turns its figures into
``Section`` s (``bench/report_model.py``), every figure beside its floor from the same run.

A runner takes ``quick`` (small samples) and returns its sections; ``bench/report.py`` lists them.
The argument lists below are the benchmark's own command line, printed in the report as the
command that reproduces the section.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable

from bench.benchtools import percentile
from bench.report_model import Figure, Section
from cli.stack import ROOT

IB_MESSAGES_PER_SECOND = 50  # IB's API limit (platform facts): every message a client sends counts


def parse(module: object, argv: list[str]) -> tuple[argparse.Namespace, str]:
    """The benchmark's arguments from ``argv``, and the command line that gives them."""
    parser: Callable[[], argparse.ArgumentParser] = module.build_parser  # type: ignore[attr-defined]
    name = module.__name__  # type: ignore[attr-defined]
    return parser().parse_args(argv), " ".join([".venv/bin/python -m", name, *argv])


def p50_p99(row: str, values: list[float], floor: list[float], unit: str = "ms") -> list[Figure]:
    return [
        Figure(row, "p50", percentile(values, 50), unit, percentile(floor, 50)),
        Figure(row, "p99", percentile(values, 99), unit, percentile(floor, 99)),
    ]


def webhook(quick: bool) -> list[Section]:
    """Intake against the bare Flask endpoint, and its growth with the stored alerts."""
    from bench import webhook as bench

    argv = ["--rows", "1000,10000,100000"]
    argv += ["--db", "sqlite", "--seconds", "2", "--rounds", "2"] if quick else ["--db", "both"]
    args, command = parse(bench, argv)
    figures = bench.run(args)
    bare_fixed, bare_top = figures.rates[("bare", 0)]
    floor = "the bare Flask endpoint (`bench/bare_app.py`: returns 200) under the same gunicorn settings"
    intake = Section("webhook", "Webhook intake against the bare endpoint", command, floor, "bare Flask")
    growth = Section(
        "growth", "Growth with the stored alerts (1k / 10k / 100k)", command, floor, "bare Flask"
    )
    for (db, rows), (fixed, top) in figures.rates.items():
        if db == "bare":
            continue
        row = f"webhook, {db}, {rows:,} stored"
        found = [Figure(row, f"p50 @ {args.rate:g}/s", fixed.p50 * 1000, "ms", bare_fixed.p50 * 1000),
                 Figure(row, f"p99 @ {args.rate:g}/s", fixed.p99 * 1000, "ms", bare_fixed.p99 * 1000),
                 Figure(row, "max throughput", top.throughput, "alerts/s", bare_top.throughput)]  # fmt: skip
        growth.figures += found
        if rows == 1000:
            intake.figures += found
    for db, pooled in figures.saturation.items():
        bare, app = pooled["bare"], pooled["intake"]
        intake.figures.append(
            Figure(
                f"webhook, {db}, at saturation",
                f"median, {args.clients} clients, 1 worker",
                app.p50 * 1000,
                "ms",
                bare.p50 * 1000,
            )  # fmt: skip
        )
    intake.notes = [
        f"Fixed rate: {args.rate:g} alerts/s open loop over {args.concurrency} client threads, "
        f"{args.seconds:g} s; max: closed loop. Saturation: one gunicorn worker each, "
        f"{args.rounds} alternating rounds (the issue's goal: at most 3x the bare median).",
        "A throughput ratio below 1x is the share of the bare endpoint's rate that intake reaches.",
    ]
    growth.notes = [
        "Every query of intake goes by primary key or index: the figures should not grow with the rows."
    ]
    near = [f"{db} {rows:,}" for (db, rows), (_, top) in figures.rates.items()
            if db != "bare" and top.throughput < 1.5 * args.rate]  # fmt: skip
    if near:
        warning = (f"Maximum throughput under 1.5x the offered {args.rate:g}/s ({', '.join(near)}): on this "
                   "machine at this load the fixed-rate run is near saturation, so its latency is mostly "
                   "queueing (requests wait for a free thread), not the cost of one alert.")  # fmt: skip
        intake.notes.append(warning)
        growth.notes.append(warning)
    return [intake, growth]


def latency(quick: bool) -> list[Section]:
    """Webhook -> the bracket's last leg at ibsim, instant and IB-like, against plain ib_async."""
    from bench import latency as bench

    argv = ["--steps"] + (["--samples", "20", "--ib-samples", "8", "--cold", "4"] if quick else [])
    args, command = parse(bench, argv)
    rows = bench.run(args)
    section = Section(
        "latency", "Webhook to the last leg at IB, against plain ib_async", command,
        "a plain ib_async script placing the same bracket through the same relay, in the same profile "
        "(its p50 / p99 to the last leg at ibsim, and to ibsim's acknowledgement)", "plain ib_async",
    )  # fmt: skip
    for n in range(0, len(rows), 3):
        warm, cold, floor = rows[n : n + 3]
        for row in (warm, cold):
            section.figures += p50_p99(f"{row.name}, at ibsim", row.placed, floor.placed)
            section.figures.append(
                Figure(
                    f"{row.name}, acked", "p50", percentile(row.acked, 50), "ms", percentile(floor.acked, 50)
                )
            )
            if row.waited:
                waits = ", ".join(f"{k} {v:.1f}" for k, v in row.waited.items())
                section.notes.append(
                    f"{row.name}: waited for (answers ibsim held back, per sample): {waits}."
                )
            if row.steps:
                marks = ", ".join(f"{k} {v:.1f}" for k, v in row.steps.items())
                section.notes.append(
                    f"{row.name}: the worker's own marks, p50 ms (n={row.steps_n}): {marks}."
                )
    section.notes.append(
        "IB-like: ibsim's `ib` latency profile (ack 60 ms, what-if 350 ms, lookup 150 ms, first market "
        "data 300 ms); warm: AAPL, seen before; cold: a symbol never seen by the worker."
    )
    return [section]


def notices(quick: bool) -> list[Section]:
    """Fill -> Telegram against a plain HTTP sendMessage."""
    from bench import notices as bench

    args, command = parse(bench, ["--count", "30"] if quick else [])
    figures = bench.bench_latency(args)
    section = Section(
        "notices", "Fill to Telegram", command,
        "a plain HTTP `sendMessage` to the same fake Bot API (no outbox, no bot library), same spacing",
        "plain sendMessage",
    )  # fmt: skip
    section.figures = p50_p99("execution in hand -> sendMessage received", figures.latencies, figures.floor)
    section.figures.append(
        Figure("of which enqueue + commit + wake", "p50", percentile(figures.commit_ms, 50), "ms")
    )
    section.notes = [
        f"{args.count} notices over {args.chats} chats, one per chat every {args.interval:g} s; "
        f"missing {figures.missing}, Telegram limit violations {figures.violations}; target p99 <= 250 ms."
    ]
    return [section]


def burst(quick: bool) -> list[Section]:
    """A bar-close burst of 500 alerts (250 brackets, each followed by an exit) against IB's pacing."""
    from bench import pipeline as bench

    args, command = parse(bench, ["--alerts", "0", "--burst", "250"])
    result = bench.run(args).burst
    assert result is not None
    alerts = 2 * result.brackets
    least = result.messages / IB_MESSAGES_PER_SECOND
    section = Section(
        "burst", f"A bar-close burst of {alerts} alerts against IB's pacing limit", command,
        f"IB's pacing limit, {IB_MESSAGES_PER_SECOND} messages per second: the least time the burst's "
        "messages to IB can take", "IB's limit",
    )  # fmt: skip
    section.figures = [
        Figure(
            f"{alerts} alerts posted -> last bracket's last leg at ibsim", "time", result.done, "s", least
        ),
        Figure(
            "messages to IB during the burst",
            "per second",
            result.messages / result.done,
            "messages/s",
            IB_MESSAGES_PER_SECOND,
        ),  # fmt: skip
        Figure(f"{alerts} alerts posted by one client", "time", result.posted, "s"),
    ]
    section.notes = [
        f"{result.brackets} brackets, each followed by an exit back to flat; {result.messages:,} messages "
        "reached ibsim between the first post and the last leg (counted by the relay).",
        "The worker's order pacer allows 40 messages/s, under IB's 50: a ratio of 0.8x on the rate is "
        "the pacer's design, 1.25x on the time likewise.",
    ]
    return [section]


def memory(quick: bool) -> list[Section]:
    """RSS of each process at rest and after N alerts through the webhook."""
    from bench import memory as bench

    args, command = parse(bench, ["--alerts", "500", "--settle", "3"] if quick else [])
    figures = bench.run(args)
    section = Section(
        "memory", f"Memory of each process at rest and after {args.alerts:,} alerts", command,
        "the same process at rest, after a warm-up of 50 alerts", "at rest",
    )  # fmt: skip
    section.figures = [
        Figure(name, f"after {args.alerts:,} alerts", figures.after[name], "MiB", rest)
        for name, rest in figures.at_rest.items()
    ]
    section.notes = [
        f"{figures.per_second:.0f} alerts/s posted in batches of {args.batch} and awaited; "
        f"alerts not filled: {figures.not_filled}."
    ]
    return [section]


def soak(quick: bool) -> list[Section]:
    """The worker's RSS after N completed orders, the IB session's pruning off and on (bench/soak.py)."""
    from bench import soak as bench

    checkpoints, settle = ([1000], 5.0) if quick else ([1000, 10000], 12.0)
    args = argparse.Namespace(
        checkpoints=checkpoints, batch=200, settle=settle, margin=5.0, modes=["off", "on"]
    )
    command = (f".venv/bin/python -m bench.soak --checkpoints {' '.join(map(str, checkpoints))} "
               f"--settle {settle:g}")  # fmt: skip
    section = Section(
        "soak", "The worker's memory after N completed orders (pruning off and on)", command,
        "the same worker at rest, after its warm-up", "at rest",
    )  # fmt: skip
    for mode in args.modes:
        rows = bench.run(mode, args)
        rest = rows[0][2]
        section.figures += [Figure(f"worker, IB session pruning {mode}", label, mib, "MiB", rest)
                            for label, _orders, mib in rows[1:]]  # fmt: skip
    section.notes = [
        "Orders fed through Redis as intake queues them (no web); pruning on with a 5 s margin "
        "(the product's default is an hour, the same code)."
    ]
    return [section]


def chaos(quick: bool) -> list[Section]:
    """The chaos run's counts (bench/chaos.py), each against its expected value."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = ROOT / "var" / f"report-chaos-{stamp}" / "chaos.log"
    argv = ["--minutes", "1" if quick else "10", "--seed", "19", "--log", str(log.relative_to(ROOT))]
    command = " ".join([".venv/bin/python -m bench.chaos", *argv])
    proc = subprocess.run([sys.executable, "-m", "bench.chaos", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=3600)  # fmt: skip
    counts_file = log.parent / "counts.json"
    if not counts_file.exists():
        raise RuntimeError(f"bench.chaos exited {proc.returncode} without counts: {proc.stderr[-500:]}")
    counts = json.loads(counts_file.read_text())["counts"]
    section = Section(
        "chaos", "The chaos run's counts", command,
        "none (a count has no floor: its expected value stands in the ratio's place)", "",
    )  # fmt: skip
    for name, count in counts.items():
        value = count["value"]
        number = (
            float(value) if isinstance(value, int | float) else float(re.match(r"\d*", str(value))[0] or 0)
        )
        section.figures.append(
            Figure(
                name,
                "",
                number,
                "",
                expected=str(count["expected"]),
                ok=count.get("ok"),
                shown="" if isinstance(value, int | float) else str(value),
            )  # fmt: skip
        )
    section.notes = [
        f"Exit code {proc.returncode}; the run's log: `{log.relative_to(ROOT)}` (not committed)."
    ]
    return [section]
