"""The worker's housekeeping thread: what SIGHUP asks to re-read (each reloader: the symbol map, the
risk file), the daily-loss check every few seconds (worker/risk/gate.py ``watch_once``) and the
other periodic checks after it (the option expiry alarm: worker/expiry_watch.py).

A reload that fails keeps the version in force: the error is logged (file, line, reason), an alarm
notice says so, and the other files still reload.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from core import events
from worker.notify import Notifier
from worker.risk.gate import RiskGate

log = logging.getLogger(__name__)


class Housekeeping:
    """Reloads on request, watches today's loss and runs the periodic ``checks`` (each every
    ``interval`` seconds), on its own thread until the worker stops."""

    def __init__(self, risk: RiskGate, notifier: Notifier, stopping: threading.Event, interval: float,
                 reloaders: list[Callable[[], object]], checks: Sequence[Callable[[], object]] = ()) -> None:  # fmt: skip
        self.risk = risk
        self.checks = list(checks)
        self.notifier = notifier
        self.stopping = stopping
        self.interval = interval
        # SIGHUP: each reloader re-reads one file and logs what changed (see reload())
        self.reloaders = [*reloaders, self.reload_risk_file]
        self._requested = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)

    def request_reload(self) -> None:
        """SIGHUP: reload on this thread (a signal handler runs between two bytecodes of the job in
        hand: it must neither block nor raise there)."""
        self._requested.set()

    def start(self) -> None:
        self.thread.start()

    def reload(self) -> list[str]:
        """Run every reloader (symbol map, risk file). A file that fails keeps the version in
        force; the error is logged (file, line, reason) and the others still reload."""
        results = []
        for reloader in list(self.reloaders):
            try:
                results.append(str(reloader() or ""))
            except Exception as exc:  # noqa: BLE001 - a bad file must not stop the worker
                log.error("reload failed, the previous version stays in force: %s", exc)
                results.append(f"reload failed: {exc}")
                try:  # the trader edited a file and expects it in force: say it is not
                    self.notifier.enqueue_event(
                        events.alarm(
                            "Configuration not reloaded", f"{exc}; the previous version stays in force"
                        )
                    )
                except Exception:  # noqa: BLE001 - the log line above already says it
                    log.exception("the reload alarm was not queued")
        return results

    def reload_risk_file(self) -> None:
        """Re-read the risk file: a good one replaces the rules (what changed is logged), a bad
        one keeps the rules in force, logged and sent as an alarm notice."""
        loaded, message = self.risk.reload()
        if loaded or self.risk.risk_file.path is None:
            log.warning("%s", message)
            return
        log.error("%s", message)
        try:
            self.notifier.enqueue_event(events.alarm("Risk file not reloaded", message))
        except Exception:  # noqa: BLE001 - the log line above already says it
            log.exception("the risk file alarm was not queued")

    def _loop(self) -> None:
        """Reloads asked for by SIGHUP, and the daily-loss check and the others every few seconds."""
        try:
            self.risk.warm()
        except Exception:  # noqa: BLE001 - the first alert builds the calendar then
            log.exception("exchange calendars not prepared")
        while not self.stopping.is_set():
            if self._requested.wait(self.interval):
                self._requested.clear()
                self.reload()
                continue
            try:
                self.risk.watch_once()
            except Exception:  # noqa: BLE001 - checked again at the next period
                log.exception("daily-loss check failed")
            for check in self.checks:  # each on its own: one failing does not skip the others
                try:
                    check()
                except Exception:  # noqa: BLE001 - checked again at the next period
                    log.exception("periodic check failed: %r", check)
