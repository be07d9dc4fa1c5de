"""One IB account, one live worker (worker/claims.py), on real Redis: a live holder keeps its claim,
one that died on this host is replaced at once, one elsewhere once its claim expires; a worker
whose claim another worker took stops serving (its guard first)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
from support import wait_until
from worker_helpers import WorkerThread

from core import keys
from worker.claims import HOST, ClaimRefused, Claims

NEVER = threading.Event()


def claims(redis_client, client_id: int = 21, ttl: int = keys.HEARTBEAT_TTL_SECONDS) -> Claims:
    return Claims(redis_client, client_id=client_id, ib="127.0.0.1:4002", ttl=ttl)


def holder_doc(redis_client, name: str) -> dict:
    return json.loads(redis_client.get(keys.claim_key(name)))


def test_a_live_holder_keeps_its_claim_and_the_second_worker_is_told_who_holds_it(redis_client):
    first, second = claims(redis_client), claims(redis_client, client_id=22)
    assert first.acquire("DU1", NEVER) and first.held("DU1")
    renewing = threading.Event()

    def heartbeat() -> None:  # the holder's heartbeat thread renews every few seconds
        while not renewing.wait(0.3):
            assert first.renew() == []

    thread = threading.Thread(target=heartbeat, daemon=True)
    thread.start()
    try:
        with pytest.raises(ClaimRefused) as info:
            second.acquire("DU1", NEVER)
    finally:
        renewing.set()
        thread.join()
    assert str(info.value).startswith(
        "account DU1 is already served by another live worker (client id 21, pid "
    )
    assert not second.held("DU1") and holder_doc(redis_client, "DU1")["token"] == first.token
    # a different name is free: the queue of alerts naming none is its own claim
    assert second.acquire(keys.DEFAULT_ACCOUNT, NEVER)
    first.release()
    assert redis_client.get(keys.claim_key("DU1")) is None
    second.release()
    assert redis_client.get(keys.claim_key(keys.DEFAULT_ACCOUNT)) is None


def test_a_claim_left_by_a_dead_process_on_this_host_is_taken_over_at_once(redis_client):
    """systemd restarts a SIGKILLed worker after 5 s: it must not wait for the TTL (15 s) too."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    stale = {
        "token": "old",
        "host": HOST,
        "pid": int(dead.stdout),
        "process": "x",
        "client_id": 21,
        "ib": "?",
    }
    redis_client.set(keys.claim_key("DU1"), json.dumps(stale), ex=keys.HEARTBEAT_TTL_SECONDS)
    successor = claims(redis_client)
    stop = threading.Event()
    threading.Timer(2.0, stop.set).start()  # waiting for the TTL would end here, unclaimed
    assert successor.acquire("DU1", stop)
    assert holder_doc(redis_client, "DU1")["token"] == successor.token


def test_a_holder_elsewhere_that_stopped_renewing_loses_its_claim_when_it_expires(redis_client):
    stale = {"token": "old", "host": "another-host", "pid": 1, "process": "x", "client_id": 21, "ib": "?"}
    redis_client.set(keys.claim_key("DU1"), json.dumps(stale), ex=1)
    successor = claims(redis_client, ttl=2)
    assert successor.acquire("DU1", NEVER)
    assert holder_doc(redis_client, "DU1")["token"] == successor.token


def test_renewal_reports_a_claim_another_worker_took_and_takes_back_an_expired_one(redis_client):
    mine = claims(redis_client)
    assert mine.acquire("DU1", NEVER) and mine.acquire(keys.DEFAULT_ACCOUNT, NEVER)
    redis_client.delete(keys.claim_key(keys.DEFAULT_ACCOUNT))  # expired (a stall), nobody took it
    other = claims(redis_client, client_id=22)
    redis_client.set(keys.claim_key("DU1"), other._value())  # another worker claimed it meanwhile
    assert mine.renew() == ["DU1"]
    assert not mine.held("DU1") and mine.held(keys.DEFAULT_ACCOUNT)
    assert holder_doc(redis_client, keys.DEFAULT_ACCOUNT)["token"] == mine.token
    mine.release()  # never the other worker's claim
    assert holder_doc(redis_client, "DU1")["token"] == other.token


def test_a_worker_whose_claim_another_worker_took_stops_serving(sim, worker_env, redis_client):
    handle = WorkerThread(worker_env).start()
    worker = handle.worker
    try:
        wait_until(lambda: worker.heartbeat().get(keys.HEARTBEAT_SERVES) == ["default", "DU1234567"])
        assert worker.guard.active()
        other = claims(redis_client, client_id=99)
        redis_client.set(keys.claim_key("DU1234567"), other._value(), ex=keys.HEARTBEAT_TTL_SECONDS)
        handle.thread.join(15)  # the next renewal finds it: the worker stops by itself
        assert not handle.thread.is_alive()
        assert not worker.guard.active()  # hands off the account's exits from that moment
        assert worker.refused is not None
        assert worker.refused.startswith("account DU1234567 was claimed by another worker")
        assert holder_doc(redis_client, "DU1234567")["token"] == other.token  # its claim stays
        assert redis_client.get(keys.claim_key(keys.DEFAULT_ACCOUNT)) is None  # its own were released
    finally:
        handle.ctx.close()
