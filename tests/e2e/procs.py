"""Real processes for end-to-end tests: ibsim, gunicorn (web) and ``python -m worker`` on free ports.

Reusable from any test in ``tests/e2e/`` (``from procs import Stack``) or through the ``stack``
fixture of ``tests/e2e/conftest.py``::

    stack = Stack(tmp_path, base_env)          # base_env: WEBHOOK_SECRET, DATABASE_URL, REDIS_URL ...
    stack.start_sim()                          # python -m ibsim on free ports (API + HTTP control)
    stack.stop_sim(); stack.start_sim()        # a gateway restart on the same ports
    stack.start_web()                          # gunicorn 'app:create_app()' on a free port
    stack.start_worker(TV2IB_CRASH_AT="...")   # extra env per start; returns the Popen
    stack.post_alert({...})                    # POST /webhook with the secret -> httpx.Response
    stack.admin_get("/api/alerts/<id>")        # admin API with ADMIN_TOKEN
    stack.sim_state(); stack.sim_post("/fault", {"kind": "drop"})
    stack.kill_worker(signal.SIGKILL); stack.stop()   # every process is ended by its own PID

``stack.env`` is the environment every process got (IB_PORT points at the simulator). Each
process logs to ``tmp_path/<name>.log``; :meth:`Stack.logs` returns them for failure messages.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import redis

from cli.stack import ROOT, ProcessStack, wait_until
from core.keys import heartbeat_key

__all__ = ["ROOT", "Stack"]


class Stack(ProcessStack):
    """A set of real tv2ib processes (started by :class:`cli.stack.ProcessStack`, shared with
    ``tv2ib replay`` and ``bench/``) plus the HTTP helpers tests use; see the module docstring."""

    # ------------------------------------------------------------------ one worker per account

    def start_account_worker(self, account: str, client_id: int, **extra_env: str) -> subprocess.Popen[bytes]:
        """Start ``python -m worker`` for ``account`` (its own clientId; logs in ``worker-<account>.log``)
        and wait until its heartbeat says IB is connected. Several run side by side (fan-out tests)."""
        name = f"worker-{account}"
        env = {**self.env, "IB_ACCOUNT": account, "IB_CLIENT_ID": str(client_id), **extra_env}
        proc = self._spawn(name, [sys.executable, "-m", "worker"], env)

        def connected() -> bool:
            self._check_alive(name)
            client = redis.Redis.from_url(self.env["REDIS_URL"])
            try:
                raw = client.get(heartbeat_key(account, client_id))
            finally:
                client.close()
            doc = json.loads(raw) if raw else {}
            return bool(doc.get("ib_connected")) and doc.get("pid") == proc.pid

        wait_until(connected, 20, lambda: f"{name} did not connect:\n{self.logs(name)}", interval=0.05)
        return proc

    # ------------------------------------------------------------------ HTTP helpers

    def post_alert(self, payload: dict[str, Any], timeout: float = 5.0) -> httpx.Response:
        """POST /webhook with the secret in the body."""
        body = {"secret": self.env["WEBHOOK_SECRET"], **payload}
        return httpx.post(f"{self.web_url}/webhook", json=body, timeout=timeout)

    def admin_get(self, path: str) -> httpx.Response:
        """GET an admin API path (``/api/...``) with ``ADMIN_TOKEN``."""
        headers = {"Authorization": f"Bearer {self.env['ADMIN_TOKEN']}"}
        return httpx.get(f"{self.web_url}{path}", headers=headers, timeout=5)
