"""The consumer takes back the jobs of dead workers of its queue, by heartbeat (real Redis).

What a job left on a processing list becomes when its worker's heartbeat is fresh, old or gone, and
that other queues' lists and the consumer's own are left alone. The end-to-end run with real
worker processes is tests/e2e/test_e2e_worker_reclaim.py.
"""

from __future__ import annotations

import json
import threading
import time

import redis

from core import keys
from worker.consumer import Consumer

QUEUE = keys.queue_name("DU42")


def _consumer(client: redis.Redis, name: str = "DU42:22") -> Consumer:
    return Consumer(client, QUEUE, name, {}, threading.Event())


def _held(client: redis.Redis, owner: str, *job_ids: str, queue: str = QUEUE) -> str:
    """A processing list of ``owner`` holding ``job_ids``, registered as consumers register theirs."""
    key = keys.processing_key(queue, owner)
    client.delete(key)
    client.rpush(key, *job_ids)
    client.sadd(keys.PROCESSING_LISTS, key)
    return key


def _beat(client: redis.Redis, owner: str, age: float) -> None:
    doc = {"ts": time.time() - age, "ib_connected": True}
    client.set(keys.heartbeat_of_worker(owner), json.dumps(doc), ex=keys.HEARTBEAT_TTL_SECONDS)


def _queue(client: redis.Redis) -> list[str]:
    return [j.decode() for j in client.lrange(f"rq:queue:{QUEUE}", 0, -1)]


def _clean(client: redis.Redis) -> None:
    client.delete(f"rq:queue:{QUEUE}", keys.PROCESSING_LISTS)


def test_a_dead_workers_jobs_go_back_to_the_head_of_the_queue_in_order_marked_taken(redis_client) -> None:
    _clean(redis_client)
    redis_client.rpush(f"rq:queue:{QUEUE}", "later")
    dead = _held(redis_client, "DU42:21", "first", "second")
    redis_client.delete(keys.heartbeat_of_worker("DU42:21"))  # expired: the worker is gone
    assert _consumer(redis_client).reclaim() == 2
    assert _queue(redis_client) == ["first", "second", "later"]
    assert redis_client.llen(dead) == 0
    assert redis_client.exists(keys.taken_key("first"), keys.taken_key("second")) == 2
    assert dead.encode() not in redis_client.smembers(keys.PROCESSING_LISTS)


def test_a_live_workers_job_stays_with_it_and_an_old_beat_counts_as_dead(redis_client) -> None:
    _clean(redis_client)
    live = _held(redis_client, "default:31", "running")
    _beat(redis_client, "default:31", age=1)
    consumer = _consumer(redis_client)
    assert consumer.reclaim() == 0
    assert redis_client.lrange(live, 0, -1) == [b"running"] and _queue(redis_client) == []
    _beat(redis_client, "default:31", age=keys.HEARTBEAT_TTL_SECONDS + 1)  # written, but long ago
    assert consumer.reclaim() == 1
    assert _queue(redis_client) == ["running"]


def test_other_queues_lists_and_its_own_are_left_alone(redis_client) -> None:
    _clean(redis_client)
    other = _held(redis_client, "DU7:21", "theirs", queue=keys.queue_name("DU7"))
    longer = _held(redis_client, "x:21", "prefix", queue=keys.queue_name("DU42x"))
    consumer = _consumer(redis_client)
    own = _held(redis_client, consumer.worker_name, "mine")
    assert consumer.reclaim() == 0
    assert [redis_client.llen(k) for k in (other, longer, own)] == [1, 1, 1]
    # at start, its own list is requeued as before, and the dead ones of its queue with it
    _held(redis_client, "default:9", "orphan")
    assert consumer.recover() == 2
    assert sorted(_queue(redis_client)) == ["mine", "orphan"]
    redis_client.delete(other, longer, own)


def test_recover_finds_lists_an_older_release_never_registered(redis_client) -> None:
    _clean(redis_client)
    old = keys.processing_key(QUEUE, "DU42:5")
    redis_client.delete(old)
    redis_client.rpush(old, "old-job")
    assert _consumer(redis_client).recover() == 1
    assert _queue(redis_client) == ["old-job"]
