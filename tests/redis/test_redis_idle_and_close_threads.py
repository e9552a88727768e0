"""An idle blocked caller sends no command; close() stops this client's threads (DESIGN 12)."""

from __future__ import annotations

import contextlib
import threading
import time

import redis
from doorbell_helpers import WAIT, eventually, in_thread
from rq_helpers import SHORT

from unidist_queue import RedisMessageQueue, ShutDown


def _script_calls(admin: redis.Redis) -> int:
    stats = admin.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


def test_an_idle_blocked_get_sends_no_command(redis_url: str, rmq: RedisMessageQueue,
                                              other: RedisMessageQueue) -> None:
    admin = redis.Redis.from_url(redis_url)
    try:
        fut = in_thread(lambda: rmq.get("q", timeout=WAIT))
        channel = "uq:{uq}:n:q"
        eventually(lambda: dict(admin.pubsub_numsub(channel))[channel.encode()] > 0)
        before = _script_calls(admin)
        stable = before - 1
        while stable != before:  # the getter's attempt after subscribing may still be on its way
            time.sleep(SHORT)
            stable, before = before, _script_calls(admin)
        time.sleep(3 * SHORT)
        assert _script_calls(admin) == before  # nothing sent while idle (no polling)
        other.add("q", "wake")
        assert fut.result(WAIT) == "wake"
    finally:
        admin.close()


def test_close_stops_the_threads_of_the_client(redis_url: str) -> None:
    before = set(threading.enumerate())
    mq = RedisMessageQueue(redis_url, session_lease=WAIT)
    mq.add("q", 1)
    mq.reserve("q")  # starts the session thread
    fut = in_thread(lambda: mq.get("empty", timeout=WAIT))  # starts the doorbell's thread
    eventually(lambda: len(set(threading.enumerate()) - before) >= 3)
    mq.close()
    with contextlib.suppress(ShutDown):
        fut.result(WAIT)
    eventually(lambda: not [t for t in set(threading.enumerate()) - before if t.is_alive()])
