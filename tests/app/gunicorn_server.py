"""Start the real web server (gunicorn with config/gunicorn.conf.py) on a free port for a test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from app_helpers import SECRET
from support import end_process, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = [sys.executable, "-m", "gunicorn", "app:create_app()", "-c", "config/gunicorn.conf.py"]


def gunicorn_env(**values: str) -> dict[str, str]:
    """This process's environment without tv2ib's settings, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "DATABASE_", "REDIS_"))}
    env.update(values)
    return env


@contextmanager
def running_gunicorn(redis_url: str, tmp_path: Path, **settings: str) -> Iterator[str]:
    """gunicorn (1 worker, 2 threads, SQLite in ``tmp_path``) until the block ends; yields its base URL.

    Its output goes to ``tmp_path / "gunicorn.log"``.
    """
    port = free_port()
    env = gunicorn_env(
        WEBHOOK_SECRET=SECRET,
        DATABASE_URL=f"sqlite:///{tmp_path / 'tv2ib.db'}",
        REDIS_URL=redis_url,
        PORT=str(port),
        WEB_WORKERS="1",
        WEB_THREADS="2",
        LOG_FORMAT="json",
    )
    env.update(settings)
    log = open(tmp_path / "gunicorn.log", "w")
    proc = subprocess.Popen(GUNICORN, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail("gunicorn exited: " + (tmp_path / "gunicorn.log").read_text())
            return False

        try:
            wait_until(healthy, 15, interval=0.1)
        except TimeoutError:
            pytest.fail("gunicorn did not start: " + (tmp_path / "gunicorn.log").read_text())
        yield base
    finally:
        end_process(proc, 15)
        log.close()
