"""Every item is received exactly once under a stress of threads and coroutines (issue 14).

Producers (threads calling ``add``/``QueueView.put``/``aview.put_nowait``, coroutines on
two loops awaiting a bounded view's ``put``) and consumers (threads calling ``get`` and
``reserve``+``ack``; coroutines on the two loops awaiting ``aget``, the view's ``get``,
``areserve``, ``areserve_many``, and calls cancelled over and over by ``wait_for`` or
ended by their own ``timeout``) share one queue. When the producers are done, one
``STOP`` per consumer follows; each consumer ends on the ``STOP`` it takes. A lost item
fails the count; a lost wake-up or ``STOP`` hangs a consumer, which the bounded waits
turn into a failure.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any, Callable, Dict, List

import pytest
from async_helpers import WAIT, LoopThread, in_thread, join
from hypothesis import given, settings
from hypothesis import strategies as st

from unidist_queue import Empty, MessageQueue

STOP = "stop"
THREAD_KINDS = ("get", "reserve")
CORO_KINDS = ("aget", "aview.get", "areserve", "areserve_many", "wait_for", "aget timeout")


class Tally:
    """The items received, from any thread (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: List[Any] = []

    def add(self, items: List[Any]) -> None:
        with self.lock:
            self.items += items


def thread_consumer(mq: MessageQueue, kind: str, tally: Tally) -> Callable[[], None]:
    def run() -> None:
        got = []
        while True:
            if kind == "get":
                x = mq.get("q", timeout=WAIT)
            else:
                m = mq.reserve("q", timeout=WAIT)
                mq.ack(m)
                x = m.body
            if x == STOP:
                break
            got.append(x)
        tally.add(got)

    return run


async def _take_many(mq: MessageQueue) -> List[Any]:
    """``areserve_many``: ack the items and one STOP, give the other STOPs back."""
    batch = await mq.areserve_many("q", 3, timeout=WAIT)
    stops = [m for m in batch if m.body == STOP]
    mq.ack_many([m for m in batch if m.body != STOP] + stops[:1])
    if stops[1:]:
        mq.nack_many(stops[1:])
    return [m.body for m in batch if m.body != STOP] + [STOP] * bool(stops)


async def _take_one(mq: MessageQueue, kind: str) -> List[Any]:
    """One item by ``kind``; ``[]`` if a timeout or cancellation took nothing."""
    if kind == "aget":
        return [await mq.aget("q")]
    if kind == "aview.get":
        return [await mq.aview("q").get()]
    if kind == "areserve":
        m = await mq.areserve("q", lease=WAIT)
        mq.ack(m)
        return [m.body]
    if kind == "areserve_many":
        return await _take_many(mq)
    try:
        if kind == "wait_for":  # cancelled whenever nothing comes within 1 ms
            return [await asyncio.wait_for(mq.aget("q"), 0.001)]
        return [await mq.aget("q", timeout=0.001)]
    except (asyncio.TimeoutError, Empty):
        return []


async def coroutine_consumer(mq: MessageQueue, kind: str, tally: Tally) -> None:
    got: List[Any] = []
    while True:
        taken = await _take_one(mq, kind)
        if STOP in taken:
            got += [x for x in taken if x != STOP]
            break
        got += taken
    tally.add(got)


def exchange(threads: Dict[str, int], coros: Dict[str, int], producers: int, per: int) -> Counter[Any]:
    """Run the stress; return how many times each item was received."""
    tally = Tally()
    with MessageQueue() as mq, LoopThread("a") as a, LoopThread("b") as b:
        aq, bounded_view, view = mq.aview("q"), mq.aview("q", maxsize=8), mq.view("q")

        async def consumers_of(loop_index: int) -> None:
            await asyncio.gather(*(coroutine_consumer(mq, kind, tally)
                                   for kind, n in coros.items() for i in range(n) if i % 2 == loop_index))

        async def produce(k: int) -> None:
            for i in range(per):
                await bounded_view.put((k, i))

        consumed = [a.submit(consumers_of(0)), b.submit(consumers_of(1))]
        workers = [in_thread(thread_consumer(mq, kind, tally))
                   for kind, n in threads.items() for _ in range(n)]
        puts = [lambda x: mq.add("q", x), view.put, aq.put_nowait]
        makers = [in_thread(lambda k=k: [puts[k % 3]((k, i)) for i in range(per)]) for k in range(producers)]
        coro_made = [loop.submit(produce(producers + j)) for j, loop in enumerate((a, b))]
        join(*makers)
        for f in coro_made:
            f.result(WAIT)
        for _ in range(sum(threads.values()) + sum(coros.values())):
            aq.put_nowait(STOP)
        for f in consumed:
            f.result(WAIT)
        join(*workers)
        assert mq.count("q") == 0 and mq.stats("q").reserved == 0
    expected = Counter((k, i) for k in range(producers + 2) for i in range(per))
    received = Counter(tally.items)
    assert received == expected, (expected - received, received - expected)
    return received


def test_every_item_is_received_once_by_a_crowd_of_threads_and_coroutines() -> None:
    exchange({k: 2 for k in THREAD_KINDS}, {k: 3 for k in CORO_KINDS}, producers=6, per=2000)


@pytest.mark.parametrize("kind", CORO_KINDS)
def test_every_item_is_received_once_by_coroutines_of_one_kind(kind: str) -> None:
    exchange({}, {kind: 4}, producers=3, per=300)


@settings(max_examples=15)
@given(
    threads=st.fixed_dictionaries({k: st.integers(0, 2) for k in THREAD_KINDS}),
    coros=st.fixed_dictionaries({k: st.integers(0, 3) for k in CORO_KINDS}),
    producers=st.integers(0, 4),
    per=st.integers(0, 100),
)
def test_items_are_conserved_for_any_mix(threads: Dict[str, int], coros: Dict[str, int],
                                          producers: int, per: int) -> None:
    if sum(threads.values()) + sum(coros.values()) == 0:
        coros = {"aget": 1}
    exchange(threads, coros, producers, per)
