"""``close()`` gives back every reservation its client holds, at once (DESIGN 12).

Whatever their lease (``None``: the session's; a number; ``extend``ed), the reservations
of a client that closes are ready again as soon as ``close`` returns, at the front of
their queues in id order, ``attempts`` kept; the other clients' reservations stay
theirs. The closing client's ``Message`` objects are then no longer current reservations
(``ack`` elsewhere is a ``ValueError``). A ``get`` blocked in the closing client gets
``ShutDown``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis
from helpers import in_thread, join
from procs_helpers import WAIT, Child, wait_subscribed

from unidist_queue import ShutDown
from unidist_queue.redisq import RedisMessageQueue

CHILD = r"""
url = sys.argv[1]
mq = RedisMessageQueue(url)
held = [mq.reserve("q", timeout=10), mq.reserve("q", timeout=10, lease=600)]
held.append(mq.reserve("w", timeout=10))
print("held", *[m.id for m in held], flush=True)
sys.stdin.readline()
mq.close()
print("closed", flush=True)
sys.stdin.readline()
"""


def test_close_returns_every_reservation_at_once(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    with RedisMessageQueue(redis_url) as other, raw:
        ids = other.add_many("a", list(range(6)))
        b_ids = other.add_many("b", ["x", "y"])
        mine = RedisMessageQueue(redis_url)
        held = [mine.reserve("a", timeout=WAIT), mine.reserve("a", timeout=WAIT, lease=600)]
        kept = other.reserve("a", timeout=WAIT)  # the other client's: stays reserved
        held += mine.reserve_many("a", 2, timeout=WAIT, lease=300)
        mine.extend(held[-1], 900)
        held.append(mine.reserve("b", timeout=WAIT))
        mine.nack(held[-1])
        held[-1] = mine.reserve("b", timeout=WAIT)  # attempts 2
        assert [m.id for m in held] == [ids[0], ids[1], ids[3], ids[4], b_ids[0]]
        assert (other.count("a"), other.count("b")) == (1, 1)

        blocked_error: list = []
        blocked = threading.Thread(target=lambda: blocked_error.append(_get_error(mine, "empty")))
        blocked.start()
        wait_subscribed(raw)  # the get is waiting
        mine.close()
        blocked.join(WAIT)
        assert not blocked.is_alive() and isinstance(blocked_error[0], ShutDown)

        # at once: no wait between close() returning and these reads
        assert [(m.id, m.attempts) for m in other.messages("a")] == [
            (ids[0], 1), (ids[1], 1), (ids[3], 1), (ids[4], 1), (ids[5], 0)]
        assert [(m.id, m.attempts) for m in other.messages("b")] == [(b_ids[0], 2), (b_ids[1], 0)]
        assert other.stats("a").reserved == 1
        for m in held:
            with pytest.raises(ValueError):
                other.ack(m)
        other.ack(kept)
        assert other.stats("a").reserved == 0


def _get_error(mq: RedisMessageQueue, queue: str) -> BaseException:
    try:
        mq.get(queue)
    except BaseException as exc:
        return exc
    raise AssertionError("get returned")


def test_close_in_another_process_returns_its_reservations(tmp_path: Path, redis_url: str) -> None:
    """A child's ``close`` gives its reservations back and wakes a caller blocked in
    another process on what it gives back."""
    raw = redis.Redis.from_url(redis_url)
    with raw, RedisMessageQueue(redis_url) as mq, Child(tmp_path, CHILD, redis_url) as child:
        ids = mq.add_many("q", ["a", "b", "c"])
        w_id = mq.add("w", "only")
        assert child.expect("held") == [str(ids[0]), str(ids[1]), str(w_id)]
        assert [m.id for m in mq.messages("q")] == [ids[2]]
        # blocked on w, whose one message the child holds for 60 s: only its close wakes it
        t, got = in_thread(lambda: mq.get("w", timeout=WAIT))
        wait_subscribed(raw)
        child.send("close")
        child.expect("closed")
        join(t)
        assert got == [("ok", "only")]
        assert [(m.id, m.attempts) for m in mq.messages("q")] == [(ids[0], 1), (ids[1], 1), (ids[2], 0)]
        assert mq.stats("q").reserved == 0
        child.send("exit")
        child.finish()
