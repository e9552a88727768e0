"""A busy mutex is taken once its holder lets go, whether the holder runs Python (the
GIL handed over) or sleeps past every non-blocking try (the blocking fall-back); and the
fast paths that take it that way keep every message when threads race on one queue.

``acquire_contended`` is internal (``unidist_queue._convoy``); it is imported here because
its fall-back cannot be reached through public names in a bounded time.
"""

from __future__ import annotations

import asyncio
import threading
from typing import List, Tuple

from unidist_queue import MessageQueue
from unidist_queue._convoy import SPINS, acquire_contended

WAIT = 30.0


def test_a_mutex_held_by_a_sleeping_thread_is_taken_after_it_lets_go() -> None:
    mutex = threading.Lock()
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with mutex:
            taken.set()
            release.wait(WAIT)  # sleeps past every non-blocking try of the other thread

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(WAIT)
    got = threading.Event()

    def take() -> None:
        acquire_contended(mutex)
        got.set()
        mutex.release()

    taker = threading.Thread(target=take)
    taker.start()
    assert not got.wait(0.05 + SPINS * 0.001)  # held: the taker waits (its tries failed)
    release.set()
    assert got.wait(WAIT)
    holder.join(WAIT)
    taker.join(WAIT)
    assert not holder.is_alive() and not taker.is_alive()
    assert mutex.acquire(False)  # free again: nothing kept it


def test_threads_adding_and_taking_at_once_keep_every_message() -> None:
    n, producers = 20_000, 3
    mq = MessageQueue()
    mq.declare("q")
    view = mq.aview("v")
    start = threading.Barrier(producers + 1)

    def produce(k: int) -> None:
        start.wait(WAIT)
        for i in range(n):
            mq.add("q", (k, i))
            view.put_nowait((k, i))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
    for t in threads:
        t.start()
    start.wait(WAIT)
    got = [mq.get("q", timeout=WAIT) for _ in range(n * producers)]

    async def drain() -> List[Tuple[int, int]]:
        return [await asyncio.wait_for(view.get(), WAIT) for _ in range(n * producers)]

    got_view = asyncio.run(drain())
    for t in threads:
        t.join(WAIT)
    for taken in (got, got_view):
        assert sorted(taken) == sorted((k, i) for k in range(producers) for i in range(n))
        for k in range(producers):  # each producer's messages in its order
            assert [i for kk, i in taken if kk == k] == list(range(n))
    assert mq.count("q") == 0 and view.empty()
