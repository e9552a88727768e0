"""More messages come due at once than one call promotes (DESIGN 3 and 12).

A Redis script promotes a bounded number of due changes per call, so that a crowd of
due messages never makes a call slow. Bounded or not, every call must see the queue as if
every change due at its start had happened (DESIGN 3): counts, ``stats`` and reads
(``newest``, ``all``) alike, whatever ran before; and reservations that lapse together
are all back at the front, in id order, for the first call that takes; a delayed batch
joins the back in the order it was added; a batch take sees every due message. Found while
testing the big queue (``test_scripts_stay_fast_on_a_big_queue.py``).
"""

from __future__ import annotations

import redis
from procs_helpers import wait_for

from unidist_queue.redisq import RedisMessageQueue


def server_time(raw: redis.Redis) -> float:
    secs, micros = raw.time()
    return float(secs + micros / 1e6)


def test_due_messages_beyond_the_promotion_bound_count_as_ready(redis_url: str) -> None:
    many = 5000
    raw = redis.Redis.from_url(redis_url)
    with raw, RedisMessageQueue(redis_url) as mq:
        mq.add_many("q", ["r0", "r1"])
        mq.add_many("q", [f"d{i}" for i in range(many)], delay=0.3)
        due = mq.next_due("q")
        assert due is not None
        wait_for(lambda: server_time(raw) > due, "the delayed messages due")  # no call on q
        checks = {
            "stats": lambda: (mq.stats("q").ready, mq.stats("q").delayed) == (2 + many, 0),
            "count": lambda: mq.count("q") == 2 + many,
            "newest": lambda: mq.newest("q", remove=False) == f"d{many - 1}",
            "all": lambda: mq.all("q") == ["r0", "r1", *[f"d{i}" for i in range(many)]],
        }
        wrong = [name for name, check in checks.items() if not check()]
        assert not wrong, f"{wrong} do not see every due message as ready"


def test_many_lapsed_leases_come_back_at_the_front_in_id_order(redis_url: str) -> None:
    """Reservations that lapse together (a client killed while holding many, say) are
    back at the front in id order, all of them, for the first call that looks."""
    many = 250
    raw = redis.Redis.from_url(redis_url)
    with raw, RedisMessageQueue(redis_url) as mq, RedisMessageQueue(redis_url) as holder:
        ids = mq.add_many("q", list(range(4 * many)))
        holder.reserve_many("q", many, timeout=0, lease=0.3)
        end = mq.next_due("q")
        assert end is not None
        wait_for(lambda: server_time(raw) > end, "the leases lapsed")  # no call on q
        got = mq.reserve_many("q", many, timeout=0)
        assert [(m.id, m.attempts) for m in got] == [(i, 2) for i in ids[:many]]


def test_a_delayed_batch_joins_the_queue_in_order(redis_url: str) -> None:
    """``add_many`` with a delay: when due, the batch joins the back of the queue in the
    order it was added (FIFO), however many messages it holds."""
    many = 2500
    raw = redis.Redis.from_url(redis_url)
    with raw, RedisMessageQueue(redis_url) as mq:
        mq.add_many("q", list(range(many)), delay=0.3)
        due = mq.next_due("q")
        assert due is not None
        wait_for(lambda: server_time(raw) > due, "the batch due")  # no call on q
        got = [mq.get("q", timeout=0) for _ in range(many)]
        assert got == list(range(many))


def test_a_batch_take_sees_every_due_delayed_message(redis_url: str) -> None:
    """``reserve_many(n)`` takes up to ``n`` of the ready messages, counting every due
    delayed one as ready (``count`` does), in order."""
    many = 250
    raw = redis.Redis.from_url(redis_url)
    with raw, RedisMessageQueue(redis_url) as mq:
        ids = mq.add_many("q", list(range(many)), delay=0.3)
        due = mq.next_due("q")
        assert due is not None
        wait_for(lambda: server_time(raw) > due, "the batch due")  # no call on q
        got = mq.reserve_many("q", many, timeout=0)
        assert [m.id for m in got] == ids
