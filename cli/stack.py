"""Real tv2ib processes on free loopback ports: ``python -m ibsim``, gunicorn and ``python -m worker``.

One implementation for everything that starts a private stack: ``tv2ib replay`` (a dry run against
ibsim), the end-to-end tests (``tests/e2e/procs.py`` adds HTTP helpers on top) and the benchmark
scripts in ``bench/``::

    with private_redis() as redis_url:
        stack = ProcessStack(workdir, {"WEBHOOK_SECRET": ..., "DATABASE_URL": ..., "REDIS_URL": redis_url})
        stack.start_sim(); stack.start_web(); stack.start_worker()
        ...
        stack.stop()                    # every process is ended by its own PID

Each process logs to ``workdir/<name>.log``; :meth:`ProcessStack.logs` returns the tail of one.
Nothing here imports ``worker/``; ``core.keys`` is read only to find the worker's heartbeat.

The small pieces every private stack needs live here once, for the CLI, ``tests/support.py`` and
``bench/benchtools.py`` alike: :func:`free_port`, :func:`wait_until` (the one polling loop),
:func:`end_process`, :func:`private_redis` and :func:`private_pg_database`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
GUNICORN_CONF = ROOT / "config" / "gunicorn.conf.py"


# Ports handed out by free_port, one empty file each, so that no two callers on this machine get the
# same port while neither has bound it yet (pytest-xdist workers, several test runs, a replay), whoever
# runs them: the folder is shared by every user, sticky and writable by all (as /tmp itself).
PORT_CLAIMS = Path(os.environ.get("TMPDIR", "/tmp")) / "tv2ib-port-claims"
PORT_CLAIM_SECONDS = 300.0  # long enough for any process to start and bind the port it was given
_SHARED_FOLDER_MODE = 0o1777


def port_claims_dir() -> Path:
    """The folder of port claims: :data:`PORT_CLAIMS`, shared by every user of the machine; this
    user's own beside it when another user's copy of the folder is closed to it (one made before
    the folder was shared)."""
    try:
        PORT_CLAIMS.mkdir(parents=True)
    except FileExistsError:
        pass
    with contextlib.suppress(OSError):  # mkdir's mode passes through the umask; only the owner may chmod
        if PORT_CLAIMS.stat().st_uid == os.geteuid():
            PORT_CLAIMS.chmod(_SHARED_FOLDER_MODE)
    if os.access(PORT_CLAIMS, os.W_OK | os.X_OK):
        return PORT_CLAIMS
    own = PORT_CLAIMS.with_name(f"{PORT_CLAIMS.name}-{os.geteuid()}")
    own.mkdir(mode=0o700, exist_ok=True)
    return own


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now and that no other ``free_port`` call
    on this machine handed out in the last ``PORT_CLAIM_SECONDS``.

    The kernel's free port is free only until someone binds it: between this call and the bind of
    the process the port is meant for (a second or two: a Python process starting), another process
    asking the kernel could be given the same one. A claim file per port (created exclusively) closes
    that gap; claims older than ``PORT_CLAIM_SECONDS`` are stale and removed (another user's stay
    until that user's next call: the port is passed over meanwhile).
    """
    claims = port_claims_dir()
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        claim = claims / str(port)
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return port
        except FileExistsError:
            with contextlib.suppress(OSError):  # another caller may remove or renew it meanwhile
                if time.time() - claim.stat().st_mtime > PORT_CLAIM_SECONDS:
                    claim.unlink()
    raise RuntimeError(f"no unclaimed free port after 100 tries (claims in {claims})")


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    what: str | Callable[[], str] | None = None,
    interval: float = 0.02,
    sleep: Callable[[float], object] = time.sleep,
) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; after ``timeout``
    seconds raise ``TimeoutError(what)`` (``what`` may be a callable, read only then, e.g. to show
    what did arrive). ``sleep`` waits between polls (a test pumping an event loop passes its own).

    The one polling loop of the stack, the tests (``tests/support.py``) and ``bench/``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            message = what() if callable(what) else what
            raise TimeoutError(message or f"condition not met within {timeout}s")
        sleep(interval)


def end_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> int:
    """SIGTERM a process we started (by its PID), SIGKILL it after ``timeout`` s; its exit code."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)


@contextlib.contextmanager
def private_redis(timeout: float = 5.0) -> Iterator[str]:
    """A throwaway ``redis-server`` on a free loopback port (no persistence); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (it is needed for a private stack)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, timeout, "redis-server did not start", interval=0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        end_process(proc)


@contextlib.contextmanager
def private_pg_database(server_url: str, prefix: str = "tv2ib") -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of ``server_url`` (a random name after
    ``prefix``, so concurrent runs never share rows); yields its URL, then ends its connections
    and drops it."""
    import uuid

    from sqlalchemy import create_engine, make_url, text

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - say which server, whatever the driver raised
        admin.dispose()
        raise RuntimeError(f"PostgreSQL is not reachable at {server_url}: {exc}") from exc
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


# What a stack that must not inherit the caller's environment (``tv2ib replay``) still takes from
# it: where programs are (redis-server, PATH), the home directory, the locale, the temp directory.
PASSED_THROUGH = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR"})


def clean_environment() -> dict[str, str]:
    """The base environment of a private stack that must not see the caller's settings: nothing
    but :data:`PASSED_THROUGH` and ``LC_*``, and ``PYTHONPATH`` set to this code's root (the
    processes run the code this module belongs to). A live server's ``PROMETHEUS_MULTIPROC_DIR``
    (its metric files, which gunicorn empties at start), its ``RISK_FILE``, ``SYMBOL_MAP_FILE``,
    database or Telegram bot are therefore never the stack's."""
    env = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH or k.startswith("LC_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


class ProcessStack:
    """A set of real tv2ib processes; see the module docstring.

    ``env`` is laid over the current environment (minus ``TV2IB_*``), or with ``inherit=False``
    over :func:`clean_environment` only; ``cwd`` is where the processes run (the repository by
    default, so relative paths such as ``config/risk.yaml`` resolve as for ``scripts/run``;
    ``tv2ib replay`` passes its temp dir so no ``.env`` or risk file of the user is read).
    """

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        *,
        sim_args: tuple[str, ...] = (),
        cwd: Path | None = None,
        inherit: bool = True,
    ) -> None:
        self.dir = Path(workdir)
        self.cwd = Path(cwd) if cwd is not None else ROOT
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("TV2IB_")}
        self.env: dict[str, str] = {
            **(inherited if inherit else clean_environment()),
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
        proc = subprocess.Popen(argv, cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
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
        wait_until(self._sim_up, 15, lambda: f"ibsim did not start:\n{self.logs('ibsim')}", interval=0.05)

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
        argv = [sys.executable, "-m", "gunicorn", "app:create_app()", "-c", str(GUNICORN_CONF)]
        self._spawn("web", argv, env)
        wait_until(self._web_up, 20, lambda: f"gunicorn did not start:\n{self.logs('web')}", interval=0.05)

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
                       lambda: f"worker did not connect:\n{self.logs('worker')}", interval=0.05)  # fmt: skip
        return proc

    def worker_connected(self) -> bool:
        """True when this worker's heartbeat in Redis says IB is connected."""
        import redis

        from core.keys import heartbeat_key

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

    def sim_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to ibsim's control API (``/price``, ``/fault``, ``/reset``, ...)."""
        return httpx.post(f"http://127.0.0.1:{self.sim_control_port}{path}", json=body, timeout=5).json()

    def sim_state(self) -> dict[str, Any]:
        """ibsim's GET /state."""
        return httpx.get(f"http://127.0.0.1:{self.sim_control_port}/state", timeout=5).json()

    def __enter__(self) -> ProcessStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
