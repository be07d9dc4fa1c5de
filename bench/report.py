"""One benchmark report: run every benchmark and write ``bench/REPORT.md`` with its pictures.

    .venv/bin/python -m bench.report --quick        # small samples, a few minutes: a look
    .venv/bin/python -m bench.report                # the full default run (about an hour)
    .venv/bin/python -m bench.report --only webhook,notices --quick

Each runner of ``RUNNERS`` calls one benchmark's ``run(args)`` (``bench/report_runs.py``) and
returns sections of figures, each figure beside its floor from the same run (the bare Flask
endpoint for intake, a plain ib_async script for webhook -> last leg, ...). The report gives each
figure absolute and as a ratio to its floor, in a table and a picture (``bench/report/*.png``),
with the machine described: CPUs, model, load average before and after, Python, git commit.
A runner whose benchmark is missing or fails leaves its section with the reason; the rest run on.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import report_runs
from bench.report_model import Machine, Section, plot_path, render

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Runner:
    """One benchmark in the report: its name (``--only``), the module it needs, its runner."""

    name: str
    module: str
    title: str
    run: Callable[[bool], list[Section]]


RUNNERS = (
    Runner(
        "webhook", "bench.webhook", "Webhook intake and growth with the stored alerts", report_runs.webhook
    ),
    Runner("latency", "bench.latency", "Webhook to the last leg at IB", report_runs.latency),
    Runner("notices", "bench.notices", "Fill to Telegram", report_runs.notices),
    Runner("burst", "bench.pipeline", "A bar-close burst of 500 alerts", report_runs.burst),
    Runner("memory", "bench.memory", "Memory of each process", report_runs.memory),
    Runner("soak", "bench.soak", "The worker's memory after N orders", report_runs.soak),
    Runner("chaos", "bench.chaos", "The chaos run's counts", report_runs.chaos),
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return commit + (" (with uncommitted changes)" if dirty else "")


def run_one(runner: Runner, quick: bool) -> list[Section]:
    """The runner's sections, or one section saying why there are none."""
    command = f".venv/bin/python -m {runner.module}"
    if importlib.util.find_spec(runner.module) is None:
        return [
            Section(
                runner.name, runner.title, command, "", error=f"`{runner.module}` is not in this checkout."
            )
        ]
    print(f"\n=== {runner.name} ===", flush=True)
    try:
        return runner.run(quick)
    except (Exception, SystemExit) as exc:  # one benchmark's failure must not lose the others' figures
        traceback.print_exc()
        return [Section(runner.name, runner.title, command, "", error=f"failed: {exc!r}"[:400])]


def preface(quick: bool) -> list[str]:
    text = [
        "Written by `bench/report.py` (`.venv/bin/python -m bench.report"
        + (" --quick" if quick else "")
        + "`). "
        "Every figure is given absolute and as a ratio to its floor, measured in the same run: what the "
        "same job costs without tv2ib (a bare Flask endpoint, a plain ib_async script, a plain HTTP "
        "`sendMessage`, IB's own pacing limit, the process at rest). Latency percentiles are nearest "
        "rank. Absolute figures move with the machine's load; the ratios move less."
    ]
    if quick:
        text += [
            "",
            "**These figures are from a `--quick` run** (small sample counts) on a shared 2-core "
            "development machine under load from other engineers' test suites and benchmarks (load "
            "average below). Read them as a picture of where the time goes, not as measurements: "
            "the full default run and `bench/README.md`'s tables are the reference.",
        ]
    return text


def write(sections: list[Section], machine: Machine, quick: bool, out: Path) -> None:
    """REPORT.md and its pictures into ``out``."""
    from bench.report_plots import plot  # matplotlib only when writing

    for section in sections:
        if not section.error and section.figures:
            plot(section, out / plot_path(section))
    (out / "REPORT.md").write_text(render(sections, machine, quick, preface(quick)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sample counts (a few minutes in all)")
    parser.add_argument(
        "--only", default="", help="comma-separated runners: " + ",".join(r.name for r in RUNNERS)
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where REPORT.md and report/ go")
    args = parser.parse_args()
    wanted = [name for name in args.only.split(",") if name] or [r.name for r in RUNNERS]
    unknown = set(wanted) - {r.name for r in RUNNERS}
    if unknown:
        parser.error(f"unknown runner(s): {', '.join(sorted(unknown))}")
    load_before, started, t0 = os.getloadavg(), time.strftime("%Y-%m-%d %H:%M %Z"), time.monotonic()
    sections: list[Section] = []
    for runner in RUNNERS:
        if runner.name in wanted:
            sections += run_one(runner, args.quick)
    machine = Machine(
        cpus=os.cpu_count() or 0, model=cpu_model(), python=platform.python_version(), commit=git_commit(),
        started=started, load_before=load_before, load_after=os.getloadavg(),
        minutes=(time.monotonic() - t0) / 60,
    )  # fmt: skip
    write(sections, machine, args.quick, args.out)
    print(
        f"\nwrote {args.out / 'REPORT.md'} ({sum(not s.error for s in sections)} of {len(sections)} sections)"
    )


if __name__ == "__main__":
    main()
