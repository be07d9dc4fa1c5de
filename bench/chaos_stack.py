"""The chaos run's private stack: its own redis-server and PostgreSQL cluster (restartable on the same
port), ibsim, gunicorn, and one ``python -m worker`` per account kept alive like systemd would.

Nothing here touches the machine's shared servers: Redis and PostgreSQL are started by the helpers
of ``scripts/devservers.py`` on free loopback ports, and every process is signalled by its own PID.
"""

from __future__ import annotations

import contextlib
import importlib.util
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import redis

from cli.stack import ROOT, ProcessStack, end_process, free_port, wait_until
from core.keys import heartbeat_key


def devservers() -> ModuleType:
    """``scripts/devservers.py`` (no package: loaded from its file)."""
    name = "_tv2ib_devservers"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "devservers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class RestartableRedis:
    """A private redis-server without persistence; :meth:`restart` kills it and starts an empty one
    on the same port (Redis lost everything: queues, heartbeats, claims)."""

    def __init__(self) -> None:
        self.ds = devservers()
        self.binary, _ = self.ds.redis_server_binary()
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="tv2ib-chaos-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = self.ds.start_redis_server(self.binary, self.port, self.workdir)
        self.ds.wait_for_port(self.port, "redis-server", self.proc)

    def restart(self) -> None:
        with self.lock:
            self.kill()
            self.start()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc)
        import shutil

        shutil.rmtree(self.workdir, ignore_errors=True)


class RestartablePostgres:
    """A private PostgreSQL cluster (``devservers.private_postgres``) that :meth:`pause` stops and
    :meth:`resume` starts again on the same port and data."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self.ds = devservers()
        self.url = stack.enter_context(self.ds.private_postgres())
        self.bin_dir, _ = self.ds.postgres_bin_dir()
        from sqlalchemy import create_engine, make_url, text

        self.port = make_url(self.url).port
        engine = create_engine(self.url)
        with engine.connect() as conn:
            self.data = Path(conn.execute(text("SHOW data_directory")).scalar_one())
        engine.dispose()
        self.down = False
        self.windows: list[tuple[float, float]] = []  # (stopped, answering again), time.time()
        self._since = 0.0
        self.lock = threading.Lock()

    def pause(self) -> None:
        """Stop the server (immediate mode: as a crash would; recovery runs at the next start)."""
        with self.lock:
            self.down, self._since = True, time.time()
            self.ds.stop_postgres_server(self.bin_dir, self.data, "immediate")

    def resume(self) -> None:
        with self.lock:
            if self.down:
                self.ds.start_postgres_server(self.bin_dir, self.data, self.port)
                self.down = False
                self.windows.append((self._since, time.time()))


class ChaosStack(ProcessStack):
    """:class:`cli.stack.ProcessStack` plus one worker per account, restarted when it dies (after
    ``restart_after`` s, as the systemd unit's ``RestartSec``), and gunicorn workers to kill."""

    def __init__(self, workdir: Path, env: dict[str, str], accounts: dict[str, int], **kw: object) -> None:
        super().__init__(workdir, env, **kw)  # type: ignore[arg-type]
        self.accounts = accounts  # account -> IB client id
        self.restart_after = 1.0
        self.restarts: dict[str, int] = dict.fromkeys(accounts, 0)
        self._supervising = threading.Event()
        self._thread: threading.Thread | None = None
        self.note: Callable[[str], None] = print

    def start_account_worker(self, account: str) -> subprocess.Popen[bytes]:
        env = {**self.env, "IB_ACCOUNT": account, "IB_CLIENT_ID": str(self.accounts[account])}
        return self._spawn(f"worker-{account}", [sys.executable, "-m", "worker"], env)

    def account_connected(self, account: str) -> bool:
        client = redis.Redis.from_url(self.env["REDIS_URL"], socket_timeout=2)
        try:
            raw = client.get(heartbeat_key(account, self.accounts[account]))
        except redis.RedisError:
            return False
        finally:
            client.close()
        import json

        doc = json.loads(raw) if raw else {}
        proc = self.procs.get(f"worker-{account}")
        return bool(doc.get("ib_connected")) and proc is not None and doc.get("pid") == proc.pid

    def start_workers(self, timeout: float = 30.0) -> None:
        for account in self.accounts:
            self.start_account_worker(account)
        for account in self.accounts:
            wait_until(lambda a=account: self.account_connected(a), timeout,
                       lambda a=account: f"worker-{a} did not connect:\n{self.logs(f'worker-{a}')}", interval=0.1)  # fmt: skip

    # ------------------------------------------------------------------ supervision (systemd's part)

    def supervise(self) -> None:
        """Restart every account worker that exits, until :meth:`stop_supervising`."""
        self._supervising.set()
        self._thread = threading.Thread(target=self._supervise, name="chaos-supervisor", daemon=True)
        self._thread.start()

    def stop_supervising(self) -> None:
        self._supervising.clear()
        if self._thread is not None:
            self._thread.join(5)

    def _supervise(self) -> None:
        died: dict[str, float] = {}
        while self._supervising.is_set():
            for account in self.accounts:
                name = f"worker-{account}"
                proc = self.procs[name]
                if proc.poll() is None:
                    died.pop(name, None)
                    continue
                since = died.setdefault(name, time.monotonic())
                if time.monotonic() - since >= self.restart_after:
                    self.note(f"supervisor: {name} exited with {proc.returncode}; starting it again")
                    self.restarts[account] += 1
                    self.start_account_worker(account)
                    died.pop(name, None)
            time.sleep(0.1)

    def stop(self) -> None:
        self.stop_supervising()
        super().stop()

    def kill_account_worker(self, account: str) -> int | None:
        """SIGKILL the account's worker (by its PID); its pid, or None when it was not running."""
        proc = self.procs[f"worker-{account}"]
        if proc.poll() is not None:
            return None
        proc.send_signal(signal.SIGKILL)
        return proc.pid

    def gunicorn_workers(self) -> list[int]:
        """The PIDs of the gunicorn master's worker processes (its children)."""
        master = self.procs["web"].pid
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{master}/task/{master}/children").read_text()
            return [int(pid) for pid in text.split()]
        return []


@contextlib.contextmanager
def redis_server() -> Iterator[RestartableRedis]:
    server = RestartableRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()
