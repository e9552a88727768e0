"""Session leases (``lease=None``), close giving reservations back, and a killed client (DESIGN 12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import child_env
from doorbell_helpers import WAIT, eventually
from rq_helpers import SHORT

from unidist_queue import Empty, RedisMessageQueue


def test_close_gives_every_reservation_back_to_the_front(redis_url: str, rmq: RedisMessageQueue) -> None:
    rmq.add_many("q", [1, 2, 3, 4])
    holder = RedisMessageQueue(redis_url)
    held = [holder.reserve("q"), holder.reserve("q", lease=600), *holder.reserve_many("q", 1)]
    assert rmq.all("q") == [4]
    holder.close()
    assert rmq.all("q") == [1, 2, 3, 4]
    assert [m.attempts for m in rmq.messages("q")] == [1, 1, 1, 0]
    with pytest.raises(ValueError):
        rmq.ack(held[0])


def test_session_reservations_are_renewed_while_open(redis_url: str, rmq: RedisMessageQueue) -> None:
    rmq.add("q", "held")
    with RedisMessageQueue(redis_url, session_lease=SHORT) as holder:
        m = holder.reserve("q")
        time.sleep(4 * SHORT)  # several session leases: renewed, not lapsed
        assert rmq.count("q") == 0 and rmq.stats("q").reserved == 1
        holder.ack(m)
    assert rmq.stats("q").removed == 1


def test_extend_gives_a_session_reservation_a_fixed_end(redis_url: str, rmq: RedisMessageQueue) -> None:
    rmq.add("q", "x")
    with RedisMessageQueue(redis_url, session_lease=60) as holder:
        m = holder.reserve("q")
        holder.extend(m, SHORT)
        assert rmq.get("q", timeout=WAIT) == "x"  # lapsed at the fixed end


def test_a_cleared_session_reservation_is_not_renewed_nor_given_back(redis_url: str,
                                                                     rmq: RedisMessageQueue) -> None:
    rmq.add("q", "x")
    with RedisMessageQueue(redis_url, session_lease=SHORT) as holder:
        holder.reserve("q")
        rmq.clear("q")
        rmq.add("q", "y")
        time.sleep(2 * SHORT)  # renewals run meanwhile: the cleared reservation is dropped
    assert rmq.all("q") == ["y"] and rmq.stats("q").reserved == 0


CHILD = """
import sys
from unidist_queue import RedisMessageQueue
mq = RedisMessageQueue(sys.argv[1], session_lease=float(sys.argv[2]))
msgs = mq.reserve_many("q", 2)
print(" ".join(str(m.id) for m in msgs), flush=True)
sys.stdin.read()
"""


def test_a_killed_clients_reservations_come_back_after_the_session_lease(
        redis_url: str, rmq: RedisMessageQueue) -> None:
    ids = rmq.add_many("q", ["a", "b", "c"])
    child = subprocess.Popen([sys.executable, "-c", CHILD, redis_url, str(2 * SHORT)], env=child_env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode()
        assert [int(x) for x in line.split()] == ids[:2]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(WAIT)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
    assert rmq.all("q") == ["c"]
    eventually(lambda: rmq.count("q") == 3)
    msgs = rmq.messages("q")
    assert [m.body for m in msgs] == ["a", "b", "c"] and [m.attempts for m in msgs] == [1, 1, 0]


def test_a_reserve_racing_close_leaves_nothing_held(redis_url: str, rmq: RedisMessageQueue) -> None:
    holder = RedisMessageQueue(redis_url)
    holder.close()
    rmq.add("q", 1)
    with pytest.raises(Exception):  # noqa: B017 (ShutDown)
        holder.reserve("q")
    with pytest.raises(Empty):
        rmq.oldest("none")
    assert rmq.all("q") == [1]


def test_many_lapsed_leases_are_forgotten_and_not_given_back(redis_url: str, rmq: RedisMessageQueue) -> None:
    from unidist_queue.redisq._rbase import SWEEP

    n = SWEEP + 10
    rmq.add_many("q", range(n))
    with RedisMessageQueue(redis_url) as holder:
        assert len(holder.reserve_many("q", n, lease=SHORT)) == n
        eventually(lambda: rmq.count("q") == n)  # every lease lapsed
        time.sleep(1.5)  # (past the margin the client keeps before forgetting a lapsed lease)
        kept = holder.reserve("q", lease=60)  # holding this one sweeps the lapsed ones out
        other_one = rmq.reserve("q", lease=60)
    # close gave back only its current reservation: to the front, before the rest
    assert rmq.oldest("q", remove=False) == kept.body and rmq.stats("q").reserved == 1
    rmq.ack(other_one)
