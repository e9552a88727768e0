"""``SCRIPT FLUSH`` and ``FUNCTION FLUSH`` never fail a call (DESIGN 12: scripts load on demand).

Between any two calls of a client the server's script cache (and its library of
functions) is emptied, as a restart, a failover or an operator would: every method still
works, with the same results, and a caller blocked meanwhile still wakes.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List

import pytest
import redis
from procs_helpers import WAIT, wait_subscribed

from unidist_queue.redisq import RedisMessageQueue


def flush_scripts(raw: redis.Redis) -> None:
    raw.script_flush()


def flush_functions(raw: redis.Redis) -> None:
    raw.function_flush()


def flush_both(raw: redis.Redis) -> None:
    raw.function_flush("SYNC")
    raw.script_flush("SYNC")


@pytest.mark.parametrize("flush", [flush_scripts, flush_functions, flush_both])
def test_every_call_survives_a_flush_before_it(redis_url: str, flush: Callable[[redis.Redis], None]) -> None:
    raw = redis.Redis.from_url(redis_url)
    with raw, RedisMessageQueue(redis_url) as mq:
        def step(call: Callable[[], Any]) -> Any:
            flush(raw)
            return call()

        step(lambda: mq.declare("q", maxlen=100))
        first = step(lambda: mq.add("q", "a"))
        assert step(lambda: mq.add_many("q", ["b", "c", "d"])) == [first + 1, first + 2, first + 3]
        step(lambda: mq.add("q", "later", delay=60))
        assert step(lambda: mq.count("q")) == 4
        assert step(lambda: mq.all("q")) == ["a", "b", "c", "d"]
        assert [m.body for m in step(lambda: mq.messages("q"))] == ["a", "b", "c", "d"]
        assert step(lambda: mq.oldest("q", remove=False)) == "a"
        assert step(lambda: mq.newest("q")) == "d"
        assert step(lambda: mq.get("q", timeout=WAIT)) == "a"
        m = step(lambda: mq.reserve("q", timeout=WAIT, lease=60))
        step(lambda: mq.extend(m, 120))
        step(lambda: mq.nack(m))
        batch: List[Any] = step(lambda: mq.reserve_many("q", 2, timeout=WAIT))
        assert [x.body for x in batch] == ["b", "c"] and batch[0].attempts == 2
        step(lambda: mq.nack_many(batch[1:]))
        step(lambda: mq.ack_many(batch[:1]))
        assert step(lambda: mq.next_due("q")) is not None
        assert step(lambda: mq.stats("q")).removed == 3
        assert step(lambda: mq.exists("q")) and step(lambda: mq.queues()) == ["q"]
        assert step(lambda: mq.clear("q")) == 2
        assert step(lambda: mq.drop("q")) is True


def test_a_blocked_get_wakes_after_a_flush(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    with raw, RedisMessageQueue(redis_url) as waiter, RedisMessageQueue(redis_url) as adder:
        got: List[Any] = []
        t = threading.Thread(target=lambda: got.append(waiter.get("q", timeout=WAIT)))
        t.start()
        wait_subscribed(raw)
        flush_both(raw)
        adder.add("q", "x")
        t.join(WAIT)
        assert not t.is_alive() and got == ["x"]
