"""Run the Procfile's processes, restart any that dies, stop them all on Ctrl-C / SIGTERM.

    python scripts/supervise.py [-f Procfile] [--grace 30] [NAME ...]

Why not honcho: when one process exits honcho stops all the others, so a worker killed by the
OOM killer also took the web down and TradingView got "connection refused". Here a process that
exits on its own is started again after a backoff (1 s, doubling up to 30 s; back to 1 s once it
has run for a minute) while the others keep running.

Each line a process prints comes out as ``HH:MM:SS name | line`` (like honcho); the
supervisor's own lines use the name ``supervise``.

Stopping (SIGINT, SIGTERM or SIGHUP to this process): each child gets one SIGTERM, so the worker
makes its warm stop (the job in hand finishes) and gunicorn its graceful one; a child still
running after ``--grace`` seconds, and anything left in its process group, gets SIGKILL. The
``--stop-last`` ones (``scripts/run``: ibsim) get their SIGTERM once the others are gone, so the
worker finishing its job still has its (simulated) IB Gateway. Every
child runs in its own process group, so a Ctrl-C in the terminal reaches only this supervisor,
and the worker sees exactly one signal (a second one would make it exit at once).

Production does not use this: there each process is its own systemd unit with ``Restart=always``
(docs/development.md, "What supervises what").
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0  # a process that ran this long starts again after FIRST_BACKOFF
POLL_INTERVAL = 0.2
COLOURS = ("36", "33", "32", "35", "34", "31")


def parse_procfile(text: str) -> dict[str, str]:
    """``name: command`` lines, in order; blank lines and ``#`` comments are skipped."""
    processes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_-]+):\s*(.+)", line.strip())
        if not match:
            raise ValueError(f"Procfile line {number} is not 'name: command': {line!r}")
        processes[match.group(1)] = match.group(2)
    return processes


def next_backoff(previous: float, ran_for: float) -> float:
    """Seconds to wait before starting a process again that exited after ``ran_for`` seconds."""
    if ran_for >= STABLE_AFTER or previous <= 0:
        return FIRST_BACKOFF
    return min(previous * 2, MAX_BACKOFF)


class Output:
    """Prefixed, line-atomic printing shared by every reader thread."""

    def __init__(self, names: list[str], stream: IO[str]) -> None:
        self.stream = stream
        self.width = max(len(n) for n in [*names, "supervise"])
        self.colour = stream.isatty() and not os.environ.get("NO_COLOR")
        self.lock = threading.Lock()
        self.colours = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)}

    def line(self, name: str, text: str) -> None:
        prefix = f"{time.strftime('%H:%M:%S')} {name.ljust(self.width)} |"
        if self.colour:
            prefix = f"\033[{self.colours.get(name, '1')}m{prefix}\033[0m"
        with self.lock:
            self.stream.write(f"{prefix} {text}\n")
            self.stream.flush()


@dataclass
class Child:
    name: str
    command: str
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: float = 0.0
    restarts: int = 0
    reader: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    def __init__(
        self, processes: dict[str, str], output: Output, grace: float, stop_last: frozenset[str] = frozenset()
    ) -> None:
        self.children = [Child(name, command) for name, command in processes.items()]
        self.out = output
        self.grace = grace
        self.stop_last = stop_last
        self.stop_signal: int | None = None

    def log(self, text: str) -> None:
        self.out.line("supervise", text)

    # ------------------------------------------------------------------ one child

    def start(self, child: Child) -> None:
        # exec: the child's PID is the program's own, so our SIGTERM reaches it and not a shell.
        child.proc = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {child.command}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        self.log(f"{child.name} started (pid {child.proc.pid}): {child.command}")
        child.reader = threading.Thread(target=self._pump, args=(child, child.proc), daemon=True)
        child.reader.start()

    def _pump(self, child: Child, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            self.out.line(child.name, raw.decode("utf-8", "replace").rstrip("\r\n"))
        proc.stdout.close()

    def _reap(self, child: Child, code: int) -> None:
        """The child's main process ended: kill what it left in its group, plan the restart."""
        assert child.proc is not None
        _kill_group(child.proc.pid, signal.SIGKILL)
        if child.reader is not None:
            child.reader.join(timeout=2)
        ran_for = time.monotonic() - child.started_at
        child.proc = None
        if self.stop_signal is not None:
            self.log(f"{child.name} stopped ({_describe(code)})")
            return
        child.backoff = next_backoff(child.backoff, ran_for)
        child.restart_at = time.monotonic() + child.backoff
        child.restarts += 1
        self.log(
            f"{child.name} exited ({_describe(code)}) after {ran_for:.1f} s; "
            f"starting it again in {child.backoff:g} s (restart {child.restarts})"
        )

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        for child in self.children:
            self.start(child)
        while self.stop_signal is None:
            for child in self.children:
                if child.proc is not None:
                    code = child.proc.poll()
                    if code is not None:
                        self._reap(child, code)
                elif child.restart_at is not None and time.monotonic() >= child.restart_at:
                    self.start(child)
            time.sleep(POLL_INTERVAL)
        return self.stop_all()

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum

    def stop_all(self) -> int:
        """SIGTERM the processes, those in ``stop_last`` once the others are gone (all within grace)."""
        running = [c.name for c in self.children if c.proc is not None]
        self.log(
            f"{signal.Signals(self.stop_signal or signal.SIGTERM).name}: stopping "
            f"{', '.join(running) or 'nothing'} (SIGTERM, SIGKILL after {self.grace:g} s)"
        )
        deadline = time.monotonic() + self.grace
        first = [c for c in self.children if c.name not in self.stop_last]
        self._stop(first, deadline)
        self._stop([c for c in self.children if c.name in self.stop_last], deadline)
        self.log("all stopped")
        return 0

    def _stop(self, children: list[Child], deadline: float) -> None:
        for child in children:
            if child.proc is not None:
                with _ignore_gone():
                    child.proc.send_signal(signal.SIGTERM)
        while any(c.proc is not None for c in children):
            for child in children:
                if child.proc is None:
                    continue
                code = child.proc.poll()
                if code is not None:
                    self._reap(child, code)
                elif time.monotonic() >= deadline:
                    self.log(f"{child.name} still running after {self.grace:g} s: SIGKILL")
                    _kill_group(child.proc.pid, signal.SIGKILL)
                    child.proc.wait()
                    self._reap(child, child.proc.returncode)
            time.sleep(POLL_INTERVAL)


def _kill_group(pgid: int, sig: int) -> None:
    with _ignore_gone():
        os.killpg(pgid, sig)


def _ignore_gone() -> contextlib.suppress:
    """A process (group) that is already gone needs no signal."""
    return contextlib.suppress(ProcessLookupError, PermissionError)


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", "--procfile", default="Procfile")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds between SIGTERM and SIGKILL")
    parser.add_argument(
        "--stop-last",
        action="append",
        default=[],
        metavar="NAME",
        help="stop this process only after the others (e.g. the IB simulator the worker still needs)",
    )
    parser.add_argument("names", nargs="*", help="process types to run (default: all, in Procfile order)")
    args = parser.parse_args(argv)
    processes = parse_procfile(Path(args.procfile).read_text())
    unknown = [n for n in args.names if n not in processes]
    if unknown:
        parser.error(f"not in {args.procfile}: {', '.join(unknown)} (it has {', '.join(processes)})")
    chosen = {n: processes[n] for n in (args.names or processes)}
    supervisor = Supervisor(chosen, Output(list(chosen), sys.stdout), args.grace, frozenset(args.stop_last))
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
