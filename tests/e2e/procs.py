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

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx
from support import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy or raise ``TimeoutError(what)``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(interval)


class Stack:
    """A set of real tv2ib processes; see the module docstring."""

    def __init__(self, tmp_path: Path, env: dict[str, str], *, sim_args: tuple[str, ...] = ()) -> None:
        self.dir = Path(tmp_path)
        self.env: dict[str, str] = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TV2IB_")},
            "LOG_LEVEL": "INFO",
            "IB_CLIENT_ID": "11",
            "STALE_ALERT_SECONDS": "60",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.sim_args = sim_args
        self.procs: dict[str, subprocess.Popen[bytes]] = {}  # the latest process of each name
        self._all: list[subprocess.Popen[bytes]] = []
        self._logs: dict[str, IO[bytes]] = {}
        self.sim_port = self.sim_control_port = self.web_port = 0
        self.worker_starts = 0

    # ------------------------------------------------------------------ processes

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self._logs.get(name) or open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs[name] = log
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        self._all.append(proc)
        return proc

    def start_sim(self) -> None:
        """Start ibsim; sets ``sim_port`` / ``sim_control_port`` and ``IB_PORT`` in ``env``.
        A second call (after :meth:`stop_sim`) restarts it on the same ports."""
        if not self.sim_port:
            self.sim_port, self.sim_control_port = free_port(), free_port()
        argv = [sys.executable, "-m", "ibsim", "--port", str(self.sim_port),
                "--control-port", str(self.sim_control_port), *self.sim_args]  # fmt: skip
        self._spawn("ibsim", argv, self.env)
        self.env.update(IB_HOST="127.0.0.1", IB_PORT=str(self.sim_port))
        wait_until(self._sim_up, 15, f"ibsim did not start:\n{self.logs('ibsim')}")

    def stop_sim(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Stop ibsim (by its PID) like a gateway's nightly restart; returns its exit code."""
        proc = self.procs["ibsim"]
        if proc.poll() is None:
            proc.send_signal(sig)
        return proc.wait(timeout)

    def _sim_up(self) -> bool:
        self._check_alive("ibsim")
        try:
            return (
                httpx.get(f"http://127.0.0.1:{self.sim_control_port}/health", timeout=0.5).status_code == 200
            )
        except httpx.HTTPError:
            return False

    def start_web(self) -> None:
        """Start gunicorn on a free port (2 workers x 4 threads unless the env says otherwise)."""
        self.web_port = free_port()
        env = {**self.env, "PORT": str(self.web_port)}
        env.setdefault("WEB_WORKERS", "2")
        argv = [sys.executable, "-m", "gunicorn", "app:create_app()", "-c", "config/gunicorn.conf.py"]
        self._spawn("web", argv, env)
        wait_until(self._web_up, 20, f"gunicorn did not start:\n{self.logs('web')}")

    def _web_up(self) -> bool:
        self._check_alive("web")
        try:
            return httpx.get(f"{self.web_url}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start_worker(self, wait_connected: bool = True, **extra_env: str) -> subprocess.Popen[bytes]:
        """Start ``python -m worker``; by default wait until its heartbeat says IB is connected."""
        self.worker_starts += 1
        env = {**self.env, **extra_env}
        proc = self._spawn("worker", [sys.executable, "-m", "worker"], env)
        if wait_connected:
            wait_until(lambda: self._check_alive("worker") and self.worker_connected(), 20,
                       f"worker did not connect:\n{self.logs('worker')}")  # fmt: skip
        return proc

    def worker_connected(self) -> bool:
        """True when this worker's heartbeat in Redis says IB is connected."""
        import json

        import redis

        from app.keys import heartbeat_key

        client = redis.Redis.from_url(self.env["REDIS_URL"])
        try:
            raw = client.get(heartbeat_key(self.env.get("IB_ACCOUNT"), int(self.env["IB_CLIENT_ID"])))
        finally:
            client.close()
        if not raw:
            return False
        doc = json.loads(raw)
        return bool(doc.get("ib_connected")) and doc.get("pid") == self.procs["worker"].pid

    def _check_alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.logs(name)}")
        return True

    def kill_worker(self, sig: int = signal.SIGKILL, timeout: float = 15.0) -> int:
        """Signal the worker (by its PID) and wait for it to exit; returns the exit code."""
        proc = self.procs["worker"]
        if proc.poll() is None:
            proc.send_signal(sig)
        return proc.wait(timeout)

    def wait_worker_exit(self, timeout: float = 15.0) -> int:
        """Wait for the worker to exit by itself (e.g. a crash point); returns the exit code."""
        return self.procs["worker"].wait(timeout)

    def stop(self) -> None:
        """SIGTERM every process we started (by PID), SIGKILL after 10 s, close the logs."""
        for proc in reversed(self._all):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self._all:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for log in self._logs.values():
            log.close()

    def logs(self, name: str, tail: int = 80) -> str:
        """The last lines a process wrote."""
        with contextlib.suppress(OSError):
            lines = (self.dir / f"{name}.log").read_text(errors="replace").splitlines()
            return "\n".join(lines[-tail:])
        return ""

    # ------------------------------------------------------------------ HTTP helpers

    def post_alert(self, payload: dict[str, Any], timeout: float = 5.0) -> httpx.Response:
        """POST /webhook with the secret in the body."""
        body = {"secret": self.env["WEBHOOK_SECRET"], **payload}
        return httpx.post(f"{self.web_url}/webhook", json=body, timeout=timeout)

    def admin_get(self, path: str) -> httpx.Response:
        """GET an admin API path (``/api/...``) with ``ADMIN_TOKEN``."""
        headers = {"Authorization": f"Bearer {self.env['ADMIN_TOKEN']}"}
        return httpx.get(f"{self.web_url}{path}", headers=headers, timeout=5)

    def sim_state(self) -> dict[str, Any]:
        """ibsim's GET /state."""
        return httpx.get(f"http://127.0.0.1:{self.sim_control_port}/state", timeout=5).json()

    def sim_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to ibsim's control API (``/price``, ``/fault``, ``/reset``, ...)."""
        return httpx.post(f"http://127.0.0.1:{self.sim_control_port}{path}", json=body, timeout=5).json()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
