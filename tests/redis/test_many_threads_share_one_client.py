"""One RedisMessageQueue serves more threads at once than redis-py 8's default pool
size (100 connections): no call fails for want of a connection."""

from __future__ import annotations

import threading
from typing import List

from helpers import WAIT

from unidist_queue import RedisMessageQueue

THREADS = 130


def test_more_threads_than_a_default_pool_add_and_take_at_once(rmq: RedisMessageQueue) -> None:
    start = threading.Barrier(THREADS)
    errors: List[BaseException] = []
    taken: List[int] = []

    def work(n: int) -> None:
        try:
            start.wait(WAIT)
            rmq.add("q", n)
            taken.append(rmq.get("q", timeout=WAIT))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert not errors
    assert sorted(taken) == list(range(THREADS))
