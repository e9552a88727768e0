"""More messages come due at once than one call promotes (DESIGN 3 and 12).

A Redis script promotes a bounded number of due changes per call, so that a crowd of
due messages never makes a call slow. Bounded or not, every call must see the queue as if
every change due at its start had happened (DESIGN 3): counts, ``stats`` and reads
(``newest``, ``all``) alike, whatever ran before. Found while testing the big queue
(``test_scripts_stay_fast_on_a_big_queue.py``).
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
