"""The Pusher's queue changing under it: events pushed, taken or cleared while its loop
counts or sends them, and settles (acks) the queue refuses.

Same rules as ``test_push.py``: a manual clock, no sleeps. :class:`HookedQueue` runs a
test's code right after the Pusher's loop counted the queue, which is where another
thread's push or take may land.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator, List, Optional

import pytest
from conftest import ManualClock
from push_helpers import Receiver, settle

from unidist_queue import Message, MessageQueue, StoreError
from unidist_queue.push import Pusher


class HookedQueue(MessageQueue):
    """Runs ``after_count`` (once) right after a ``count``; ``ack`` fails ``ack_failures`` times."""

    after_count: Optional[Callable[[], None]] = None
    ack_failures = 0

    def count(self, queue: str) -> int:
        n = super().count(queue)
        hook, self.after_count = self.after_count, None
        if hook is not None:
            hook()
        return n

    def ack(self, message: Message) -> None:
        if self.ack_failures:
            self.ack_failures -= 1
            raise StoreError("disk full")
        super().ack(message)

    def ack_many(self, messages: Iterable[Message]) -> None:
        if self.ack_failures:  # the whole batch is refused; the pusher then acks one by one
            raise StoreError("disk full")
        super().ack_many(messages)


@pytest.fixture
def mq() -> Iterator[HookedQueue]:
    """This file's MessageQueue: in memory, with the hooks of :class:`HookedQueue`."""
    with HookedQueue() as mq:
        yield mq


def test_an_event_pushed_while_the_loop_counts_an_empty_queue_is_sent(
    mq: HookedQueue, clock: ManualClock
) -> None:
    receiver = Receiver()
    with Pusher(receiver, mq=mq, buffer_delay=0, clock=clock) as p:
        mq.after_count = lambda: p.push("late")
        settle(p)
        assert receiver.bodies() == ["late"]
        assert p.stats().pending == 0


def test_a_batch_filled_while_the_loop_counts_goes_without_waiting_buffer_delay(
    mq: HookedQueue, clock: ManualClock
) -> None:
    receiver = Receiver()
    with Pusher(receiver, mq=mq, buffer_delay=60, batch_size=3, clock=clock) as p:
        p.push(0)
        settle(p)  # one event: it waits out buffer_delay
        assert receiver.attempts == []
        mq.after_count = lambda: [p.push(i) for i in (1, 2, 3)]
        settle(p)
        assert receiver.attempts == [3]  # the clock never moved
        assert receiver.bodies() == [0, 1, 2] and p.stats().pending == 1


def test_events_taken_by_another_consumer_after_the_count_are_not_sent(
    mq: HookedQueue, clock: ManualClock
) -> None:
    receiver = Receiver()
    with Pusher(receiver, mq=mq, buffer_delay=0, batch_size=10, clock=clock) as p:
        taken: List[object] = []
        mq.after_count = lambda: taken.extend(mq.all("push") and [mq.oldest("push"), mq.oldest("push")])
        p.push("a")
        p.push("b")
        settle(p)
        assert sorted(taken) == ["a", "b"]  # type: ignore[type-var]
        assert receiver.attempts == [] and p.stats().failed == 0
        p.push("c")
        settle(p)
        assert receiver.bodies() == ["c"]


def test_a_refused_ack_is_retried_and_the_batch_is_not_sent_again(
    mq: HookedQueue, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="unidist_queue.push")
    receiver = Receiver()
    mq.ack_failures = 1
    with Pusher(receiver, mq=mq, buffer_delay=0, batch_size=2, clock=clock) as p:
        p.push("a")
        p.push("b")
        settle(p)
        assert receiver.bodies() == ["a", "b"]
        assert "could not settle message" in caplog.text and "disk full" in caplog.text
        assert mq.stats("push").reserved == 0  # the failed ack was made on the next pass
        assert mq.count("push") == 0
        p.push("c")
        settle(p)
        assert receiver.bodies() == ["a", "b", "c"]  # nothing twice


def test_events_cleared_while_their_batch_is_sent_are_not_sent_again(
    mq: HookedQueue, clock: ManualClock
) -> None:
    sent: List[List[object]] = []

    def send(batch: List[Message]) -> None:
        sent.append([m.body for m in batch])
        mq.clear("push")  # their acks now name unknown messages

    with Pusher(send, mq=mq, buffer_delay=0, clock=clock) as p:
        p.push("a")
        settle(p)
        p.push("b")
        settle(p)
        assert sent == [["a"], ["b"]]
        s = p.stats()
        assert (s.sent, s.failed, s.pending) == (2, 0, 0)
