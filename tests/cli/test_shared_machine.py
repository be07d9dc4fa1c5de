"""A machine that several users share: what one user's test run or private stack leaves in the
temporary directory (the suite run as root before) neither stops another user nor misleads it.

The other user is ``nobody`` in a forked child when the tests run as root; run as an ordinary user,
the tests take the files' write (or read) permission away from that user instead, which is what
another user's files look like to it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import claim_redis_db_number

from cli import stack

NOBODY = 65534


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder like /tmp (sticky, writable by everyone) that another user can reach."""
    folder = Path(tempfile.mkdtemp(prefix="tv2ib-shared-"))
    folder.chmod(0o1777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def as_another_user(work: Callable[[], object]) -> object:
    """``work()`` run by a user who does not own what this process created: ``nobody`` in a forked
    child when we are root, else ourselves (then the test has closed the files to us)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only plain system calls, then out without pytest's cleanup
        status = 0
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            answer = {"result": work()}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
            answer, status = {"error": f"{type(exc).__name__}: {exc}"}, 1
        os.write(write_end, json.dumps(answer).encode())
        os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = json.loads(pipe.read() or b"{}")
    os.waitpid(pid, 0)
    assert "error" not in answer, answer["error"]
    return answer["result"]


def closed_to_others(path: Path, mode: int) -> None:
    """``path`` as another user's file looks to us: ``mode`` for the others, owner ourselves. When
    we are not root, the child runs as ourselves, so the owner's bits must shut us out too."""
    path.chmod(mode if os.geteuid() == 0 else mode & 0o007 | (mode & 0o007) << 6)


def claim_number(lock_dir: Path) -> int | None:
    claimed = claim_redis_db_number(lock_dir)
    return None if claimed is None else claimed[0]


@pytest.mark.parametrize(
    ("mode", "number"),
    [
        # The suite run as root left its lock file (created 0644, as the test fixture created it):
        # nobody holds it, so the number is free for the next user
        pytest.param(0o644, 1, id="readable-and-free"),
        # Never shared by mistake: a number whose lock this user cannot take is not its to use
        pytest.param(0o600, 2, id="unreadable-counts-as-taken"),
    ],
)
def test_a_redis_lock_file_another_user_left(shared_tmp: Path, mode: int, number: int) -> None:
    left = shared_tmp / "tv2ib-test-redis-db-1.lock"
    left.touch()
    closed_to_others(left, mode)
    assert as_another_user(lambda: claim_number(shared_tmp)) == number


def test_a_redis_db_number_another_user_holds_is_taken(shared_tmp: Path) -> None:
    held = claim_redis_db_number(shared_tmp)
    assert held is not None and held[0] == 1
    closed_to_others(shared_tmp / "tv2ib-test-redis-db-1.lock", 0o644)
    try:
        assert as_another_user(lambda: claim_number(shared_tmp)) == 2
    finally:
        os.close(held[1])


def test_the_lock_file_a_run_creates_is_one_other_users_can_lock(shared_tmp: Path) -> None:
    old = os.umask(0o077)
    try:
        claimed = claim_redis_db_number(shared_tmp)
    finally:
        os.umask(old)
    assert claimed is not None
    os.close(claimed[1])
    lock = shared_tmp / "tv2ib-test-redis-db-1.lock"
    assert lock.stat().st_mode & 0o777 == 0o644
    with open(lock) as handle:  # and it is free again once its holder let go
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_free_port_works_beside_a_claims_folder_another_user_made(
    shared_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An older tv2ib, run by root, made the claims folder 0755: nobody else could write there
    claims = shared_tmp / "tv2ib-port-claims"
    claims.mkdir()
    closed_to_others(claims, 0o755)
    monkeypatch.setattr(stack, "PORT_CLAIMS", claims)

    def claim() -> list[object]:
        port = stack.free_port()
        return [port, sorted(p.name for p in stack.port_claims_dir().iterdir())]

    result = as_another_user(claim)
    assert isinstance(result, list)
    port, claimed = result
    assert isinstance(port, int) and 1024 < port < 65536
    assert claimed == [str(port)]  # claimed where that user claims (its own folder, or the repaired one)


def test_the_claims_folder_a_user_makes_is_open_to_every_user(
    shared_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = shared_tmp / "tv2ib-port-claims"
    monkeypatch.setattr(stack, "PORT_CLAIMS", claims)
    old = os.umask(0o022)
    try:
        first = stack.free_port()
    finally:
        os.umask(old)
    assert (claims / str(first)).exists()
    assert claims.stat().st_mode & 0o7777 == 0o1777
    second = as_another_user(stack.free_port)
    assert (claims / str(second)).exists()  # the other user claims in the same folder
