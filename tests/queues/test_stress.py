"""8 producers x 8 consumers on one queue: nothing lost, nothing duplicated, and each
consumer sees every producer's messages in the order they were added (issue #2)."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

from unidist_queue import Empty, MessageQueue

PRODUCERS = 8
CONSUMERS = 8
PER_PRODUCER = 4000
DONE = "done"

Payload = Tuple[int, int]  # (producer_id, seq)


@pytest.fixture(autouse=True)
def fast_switching() -> Iterator[None]:
    """Switch threads as often as possible, to shake out races."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def take_with_get(mq: MessageQueue, queue: str) -> object:
    while True:
        try:
            return mq.get(queue, timeout=0.05)
        except Empty:
            continue


def take_with_reserve(mq: MessageQueue, queue: str) -> object:
    while True:
        try:
            message = mq.reserve(queue, timeout=0.05)
        except Empty:
            continue
        mq.ack(message)
        return message.body


def run(mq: MessageQueue, queue: str, take: Callable[[MessageQueue, str], object]) -> List[List[Payload]]:
    barrier = threading.Barrier(PRODUCERS + CONSUMERS, timeout=60)
    seen: List[List[Payload]] = [[] for _ in range(CONSUMERS)]
    errors: List[BaseException] = []

    def produce(producer: int) -> None:
        try:
            barrier.wait()
            for seq in range(PER_PRODUCER):
                mq.add(queue, (producer, seq))
        except BaseException as e:
            errors.append(e)

    def consume(consumer: int) -> None:
        try:
            barrier.wait()
            out = seen[consumer]
            while True:
                body = take(mq, queue)
                if body == DONE:
                    return
                out.append(body)  # type: ignore[arg-type]
        except BaseException as e:
            errors.append(e)

    producers = [threading.Thread(target=produce, args=(i,)) for i in range(PRODUCERS)]
    consumers = [threading.Thread(target=consume, args=(i,)) for i in range(CONSUMERS)]
    try:
        for t in producers + consumers:
            t.start()
        for t in producers:
            t.join(120)
        assert not any(t.is_alive() for t in producers), "a producer is stuck"
        for _ in consumers:
            mq.add(queue, DONE, timeout=60)  # after every payload: each consumer stops at one
        for t in consumers:
            t.join(120)
        assert not any(t.is_alive() for t in consumers), "a consumer is stuck"
    finally:
        if any(t.is_alive() for t in producers + consumers):
            mq.close()  # wake the stragglers with ShutDown, so no thread outlives the test
            for t in producers + consumers:
                t.join(30)
    assert not errors, errors
    return seen


def check(seen: List[List[Payload]]) -> None:
    delivered = Counter(p for out in seen for p in out)
    produced = Counter((producer, seq) for producer in range(PRODUCERS) for seq in range(PER_PRODUCER))
    assert delivered == produced  # nothing lost, nothing duplicated
    for out in seen:
        last: Dict[int, int] = {}
        for producer, seq in out:
            assert seq > last.get(producer, -1), "a consumer saw a producer's messages out of order"
            last[producer] = seq


def test_get_consumers() -> None:
    with MessageQueue() as mq:
        check(run(mq, "stress", take_with_get))
        assert mq.count("stress") == 0


def test_reserve_ack_consumers() -> None:
    with MessageQueue() as mq:
        check(run(mq, "stress", take_with_reserve))
        stats = mq.stats("stress")
        assert (stats.ready, stats.reserved) == (0, 0)
        assert stats.removed == PRODUCERS * PER_PRODUCER + CONSUMERS


def test_get_consumers_on_a_bounded_blocking_queue() -> None:
    with MessageQueue() as mq:
        mq.declare("stress", maxlen=16, overflow="block")
        check(run(mq, "stress", take_with_get))
        assert mq.stats("stress").dropped == 0
