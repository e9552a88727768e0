"""A take sees every change due at its start, however many are due (DESIGN 3 and 12).

Promotions are bounded per call, but what decides a take's result is applied first: a
queue with ``maxlen`` and ``drop_oldest`` evicts as if every due delayed message had
joined, and messages that expired together are never returned, whichever end is taken.
"""

from __future__ import annotations

import pytest
import redis
from procs_helpers import wait_for

from unidist_queue import Empty, RedisMessageQueue
from unidist_queue.redisq._scripts import LIMIT


def server_time(raw: redis.Redis) -> float:
    secs, micros = raw.time()
    return float(secs + micros / 1e6)


def test_drop_oldest_evicts_as_if_every_due_message_joined(redis_url: str) -> None:
    n, maxlen = 3 * LIMIT, LIMIT + 10
    raw = redis.Redis.from_url(redis_url)
    with raw, RedisMessageQueue(redis_url) as mq:
        mq.declare("q", maxlen=maxlen)
        mq.add_many("q", ["r0", "r1"])
        mq.add_many("q", list(range(n)), delay=0.3)
        due = mq.next_due("q")
        assert due is not None
        wait_for(lambda: server_time(raw) > due, "the delayed messages due")  # no call on q
        assert mq.oldest("q", remove=False) == n - maxlen
        assert mq.newest("q", remove=False) == n - 1
        assert mq.all("q") == list(range(n - maxlen, n))
        assert mq.stats("q").dropped == n + 2 - maxlen


@pytest.mark.parametrize("end", ["oldest", "newest"])
def test_messages_expired_together_are_never_taken(redis_url: str, end: str) -> None:
    n, max_age = 3 * LIMIT, 1.0
    raw = redis.Redis.from_url(redis_url)
    with raw, RedisMessageQueue(redis_url) as mq:
        mq.declare("q", max_age=max_age)
        mq.add("q", "first")
        mq.add_many("q", [f"old{i}" for i in range(n)])
        mq.add("q", "last")
        old = server_time(raw)
        wait_for(lambda: server_time(raw) > old + max_age / 2, "half the age")
        mq.add("q", "fresh")
        wait_for(lambda: server_time(raw) > old + max_age, "the old messages expired")
        assert getattr(mq, end)("q") == "fresh"
        with pytest.raises(Empty):
            mq.get("q", timeout=0)
        assert mq.stats("q").expired == n + 2
