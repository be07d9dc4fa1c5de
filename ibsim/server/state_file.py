"""The ``--state`` file: read at start, rewritten atomically (debounced 0.2 s) after every change
and on stop, so orders, fills and positions survive a restart."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from ibsim.engine.core import Engine

log = logging.getLogger(__name__)

DEBOUNCE = 0.2


class StateFile:
    """Keeps one engine's state in a JSON file (nothing when ``path`` is None)."""

    def __init__(self, engine: Engine, path: str | Path | None) -> None:
        self.engine = engine
        self.path = Path(path) if path else None
        self._handle: asyncio.TimerHandle | None = None

    def load(self) -> None:
        """Restore the engine from the file, when there is one (a bad file is logged, not fatal)."""
        if not self.path or not self.path.exists():
            return
        try:
            self.engine.load(json.loads(self.path.read_text(encoding="utf-8")))
            log.info("state restored from %s", self.path)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.error("could not restore state from %s: %s", self.path, exc)

    def schedule(self) -> None:
        """Save a moment from now (many changes in a row make one write)."""
        if self.path is None or self._handle is not None:
            return
        self._handle = asyncio.get_running_loop().call_later(DEBOUNCE, self._save_now)

    def _save_now(self) -> None:
        self._handle = None
        self.save()

    def cancel(self) -> None:
        """Forget a scheduled save (the caller saves itself)."""
        if self._handle is not None:
            self._handle.cancel()

    def save(self) -> None:
        """Write the engine's state (atomically: a temporary file renamed over the old one)."""
        if self.path is None:
            return
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        try:
            tmp.write_text(json.dumps(self.engine.dump()), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.error("could not write state to %s: %s", self.path, exc)
