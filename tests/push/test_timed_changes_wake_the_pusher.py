"""A Pusher with nothing ready wakes by itself at the queue's next timed change
(``next_due``, as known when it found nothing ready): events that become ready with
nobody pushing are sent then. Over Redis
this is how a batch whose Pusher's process died reaches another Pusher once its lease
lapses (tests/redis/test_pushers_in_two_processes.py); here, in one process, a delayed
add by other code and a lease of another consumer lapsing.

Real clocks, short delays, and every wait bounded by ``WAIT``: no assertion depends on
how long anything took.
"""

from __future__ import annotations

from typing import Iterator

import pytest
from conftest import ManualClock
from push_helpers import WAIT, Receiver, settle

from unidist_queue import MessageQueue, Pusher

DELAY = 0.2  # seconds until the timed change


@pytest.fixture
def mq() -> Iterator[MessageQueue]:
    with MessageQueue() as queue:
        yield queue


def test_a_pusher_that_sent_everything_ready_sends_a_delayed_event_once_it_is_due(
        mq: MessageQueue) -> None:
    receiver = Receiver()
    with Pusher(receiver, mq=mq, queue="events", buffer_delay=0) as p:
        later = mq.add("events", "later", delay=DELAY)  # other code; nobody rings the Pusher
        p.push("now")
        assert p.flush(timeout=WAIT)  # "later" is not ready: the flush is done without it
        receiver.wait_for(lambda: len(receiver.batches) == 2)
        assert receiver.bodies() == ["now", "later"] and receiver.ids()[1] == later


def test_a_pusher_made_on_a_queue_holding_only_a_delayed_event_sends_it_once_due(
        mq: MessageQueue) -> None:
    mq.add("events", "later", delay=DELAY)
    receiver = Receiver()
    with Pusher(receiver, mq=mq, queue="events", buffer_delay=0):
        receiver.wait_for(lambda: receiver.bodies() == ["later"])


def test_an_event_whose_lease_lapses_elsewhere_is_sent_by_the_idle_pusher(mq: MessageQueue) -> None:
    """Another consumer reserved the event and never settles it (as a Pusher whose process
    died): once the lease lapses, the Pusher sends it, with no push."""
    event = mq.add("events", "taken")
    assert mq.reserve("events", lease=DELAY, timeout=0).id == event
    receiver = Receiver()
    with Pusher(receiver, mq=mq, queue="events", buffer_delay=0):
        receiver.wait_for(lambda: receiver.ids() == [event])
    assert receiver.messages()[0].attempts == 2


def test_a_due_time_on_another_clock_does_not_make_the_pusher_spin() -> None:
    """A queue on a manual clock reports due times ``time.time`` never reaches (or already
    passed): the Pusher looks once, then waits for a push instead of spinning."""
    clock = ManualClock()
    with MessageQueue(clock=clock) as mq:
        mq.add("events", "later", delay=DELAY)
        receiver = Receiver()
        with Pusher(receiver, mq=mq, queue="events", buffer_delay=0) as p:
            settle(p)  # quiet: it does not look again and again
            assert receiver.batches == []
            clock.advance(DELAY)
            p.push("now")
            assert p.flush(timeout=WAIT)
            assert receiver.bodies() == ["later", "now"]
