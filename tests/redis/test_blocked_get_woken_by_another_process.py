"""A ``get`` (thread) and an ``aget`` (coroutine) blocked in one process, with no timeout,
are woken by an ``add`` in another process (DESIGN 12: the pub/sub doorbell).

Nothing is due in the queues they wait on, so only the doorbell can wake them: were the
notification lost, the child would hang and the bounded wait of the parent fail.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis
from procs_helpers import Child, wait_subscribed

from unidist_queue.redisq import RedisMessageQueue

CHILD = r"""
import asyncio, threading
url = sys.argv[1]
mq = RedisMessageQueue(url)
printing = threading.Lock()  # two threads print: a line is written whole


def say(*words):
    with printing:
        print(*words, flush=True)


t = threading.Thread(target=lambda: say("get", mq.get("t")))
t.start()
say("waiting")
got = asyncio.run(mq.aget("c"))
say("aget", got)
t.join(30)
assert not t.is_alive()
mq.close()
"""


def test_blocked_get_and_aget_woken_by_add_in_another_process(tmp_path: Path, redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    with raw, RedisMessageQueue(redis_url) as mq, Child(tmp_path, CHILD, redis_url) as child:
        child.expect("waiting")
        wait_subscribed(raw, 2)  # both waiters' doorbells listen
        time.sleep(0.2)  # let both take scripts find nothing (not needed for the outcome)
        mq.add("t", "for-get")
        assert child.expect("get") == ["for-get"]
        mq.add_many("c", ["for-aget"])
        assert child.expect("aget") == ["for-aget"]
        child.finish()
        assert (mq.count("t"), mq.count("c")) == (0, 0)
