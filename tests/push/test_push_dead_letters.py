"""A Pusher on a queue declared with ``max_attempts`` (issue 13): what the docstring says.

Each failed ``send`` nacks its batch, and every event of it was reserved once more; while
the receiver stays down the Pusher probes with batches of one, so the event at the front
is the one that reaches ``max_attempts`` first and moves to the dead-letter queue, then
the next one, and so on. Timed on a ManualClock, driven by :func:`push_helpers.settle`.
"""

from __future__ import annotations

from conftest import ManualClock
from push_helpers import WAIT, Receiver, settle

from unidist_queue import MessageQueue
from unidist_queue.push import Pusher


def test_events_past_max_attempts_go_to_the_dead_letter_queue(mq: MessageQueue, clock: ManualClock) -> None:
    mq.declare("push", max_attempts=2, dead_letter="push.dead")
    receiver = Receiver(failures=3, clock=clock)
    p = Pusher(receiver, mq=mq, buffer_delay=0, batch_size=10, retry_delay=5, max_retry_delay=5, clock=clock)
    try:
        for i in range(3):
            p.push(i)
        settle(p)  # the whole batch fails: every event was reserved once
        assert receiver.attempts == [3] and mq.all("push.dead") == []
        for _ in range(3):
            clock.advance(5)
            settle(p)  # a probe of one: the front event's second attempt
        assert receiver.attempts == [3, 1, 1, 1]
        assert mq.all("push.dead") == [0, 1]  # each failed its second attempt, a probe
        assert receiver.bodies() == [2]  # the receiver answered the third probe
        assert (mq.stats("push").dead, p.stats().pending) == (2, 0)
    finally:
        p.close(timeout=WAIT)
