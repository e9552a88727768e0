"""Pusher: batching, backoff and probes, flush/close, and keeping events while down."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterator, List, Optional

import pytest

from unidist_queue import Message, MessageQueue, ShutDown

# The Pusher is built on the Loop (issue 4), which is not written yet.
pytest.importorskip("unidist_queue.loop")
from unidist_queue.push import Pusher, PushStats

WAIT = 30.0  # generous upper bound for every wait: a hang fails, speed never does


class Receiver:
    """Records batches; fails while ``failures`` > 0; can be held up by ``gate``."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: List[List[Message]] = []
        self.attempts: List[int] = []  # batch sizes of every attempt, failed ones too
        self.gate: Optional[threading.Event] = None
        self.entered = threading.Event()
        self.cond = threading.Condition()

    def __call__(self, batch: List[Message]) -> None:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        with self.cond:
            self.attempts.append(len(batch))
            if self.failures > 0:
                self.failures -= 1
                self.cond.notify_all()
                raise ConnectionError("receiver down")
            self.batches.append(batch)
            self.cond.notify_all()

    def bodies(self) -> List[Any]:
        with self.cond:
            return [m.body for b in self.batches for m in b]

    def wait_for(self, predicate: Callable[[], bool]) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, WAIT)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def make_pusher() -> Iterator[Callable[..., Pusher]]:
    made: List[Pusher] = []

    def make(send: Any, **options: Any) -> Pusher:
        p = Pusher(send, **options)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close(timeout=WAIT)


def test_delivers_in_order(receiver: Receiver, make_pusher: Callable[..., Pusher]) -> None:
    p = make_pusher(receiver, buffer_delay=0, batch_size=7)
    for i in range(100):
        p.push(i)
    assert p.flush(timeout=WAIT)
    assert receiver.bodies() == list(range(100))
    ids = [m.id for b in receiver.batches for m in b]
    assert ids == sorted(ids) and len(set(ids)) == 100
    assert all(len(b) <= 7 for b in receiver.batches)
    stats = p.stats()
    assert isinstance(stats, PushStats)
    assert (stats.sent, stats.failed, stats.pending) == (100, 0, 0)
    assert stats.batches == len(receiver.batches)
    assert stats.last_success is not None and stats.last_error is None


def test_full_batch_goes_at_once(receiver: Receiver, make_pusher: Callable[..., Pusher]) -> None:
    """With a long buffer_delay, reaching batch_size sends without waiting for it."""
    p = make_pusher(receiver, buffer_delay=3600, batch_size=10)
    for i in range(10):
        p.push(i)
    receiver.wait_for(lambda: len(receiver.batches) == 1)
    assert receiver.bodies() == list(range(10))


def test_partial_batch_waits_for_buffer_delay(make_pusher: Callable[..., Pusher]) -> None:
    """Fewer than batch_size events wait: nothing is sent before the delay or a flush."""
    receiver = Receiver()
    p = make_pusher(receiver, buffer_delay=3600, batch_size=10)
    for i in range(3):
        p.push(i)
    assert not receiver.entered.wait(0.2)
    assert p.stats().pending == 3
    assert p.flush(timeout=WAIT)
    assert receiver.bodies() == [0, 1, 2]


def test_buffer_delay_sends_partial_batch(receiver: Receiver, make_pusher: Callable[..., Pusher]) -> None:
    p = make_pusher(receiver, buffer_delay=0.05, batch_size=1000)
    p.push("a")
    p.push("b")
    receiver.wait_for(lambda: receiver.bodies() == ["a", "b"])


def test_buffer_delay_zero_keeps_pushing(receiver: Receiver, make_pusher: Callable[..., Pusher]) -> None:
    """The original silently stopped pushing with a zero delay; this one does not."""
    p = make_pusher(receiver, buffer_delay=0, batch_size=5)
    for round_ in range(5):
        p.push(round_)
        receiver.wait_for(lambda r=round_: len(receiver.bodies()) == r + 1)  # type: ignore[misc]
    assert receiver.bodies() == [0, 1, 2, 3, 4]


def test_failures_back_off_probe_with_one_and_lose_nothing(
    make_pusher: Callable[..., Pusher], caplog: pytest.LogCaptureFixture
) -> None:
    receiver = Receiver(failures=3)
    caplog.set_level(logging.WARNING, logger="unidist_queue.push")
    p = make_pusher(receiver, buffer_delay=0, batch_size=50, retry_delay=0.01, max_retry_delay=0.04)
    for i in range(120):
        p.push(i)
    assert p.flush(timeout=WAIT)
    # the first attempt is a full batch, then probes of one until the receiver answers
    assert receiver.attempts[:4] == [50, 1, 1, 1]
    assert max(receiver.attempts[4:]) == 50
    assert receiver.bodies() == list(range(120))  # nothing lost, nothing twice
    stats = p.stats()
    assert (stats.failed, stats.sent) == (3, 120)
    assert stats.last_error is not None and "receiver down" in stats.last_error
    assert "send failed" in caplog.text


def test_backoff_doubles_up_to_the_maximum(make_pusher: Callable[..., Pusher]) -> None:
    """Retry delays double from retry_delay and stop at max_retry_delay."""
    receiver = Receiver(failures=10**6)
    p = make_pusher(receiver, buffer_delay=0, retry_delay=0.01, max_retry_delay=0.02)
    p.push("x")
    receiver.wait_for(lambda: len(receiver.attempts) >= 4)  # would hang if it stopped retrying
    assert p.stats().failed >= 4
    assert set(receiver.attempts) == {1}


def test_slow_receiver_never_blocks_push(make_pusher: Callable[..., Pusher]) -> None:
    receiver = Receiver()
    receiver.gate = threading.Event()
    p = make_pusher(receiver, buffer_delay=0, batch_size=1)
    p.push("first")
    assert receiver.entered.wait(WAIT)  # send is now blocked inside the receiver
    for i in range(1000):
        p.push(i)  # returns while the receiver is stuck
    assert p.stats().pending == 1001
    receiver.gate.set()
    assert p.flush(timeout=WAIT)
    assert receiver.bodies() == ["first", *range(1000)]


def test_raising_receiver_never_kills_the_loop(make_pusher: Callable[..., Pusher]) -> None:
    receiver = Receiver(failures=1)
    p = make_pusher(receiver, buffer_delay=0, retry_delay=0.01)
    p.push(1)
    receiver.wait_for(lambda: receiver.bodies() == [1])
    p.push(2)
    receiver.wait_for(lambda: receiver.bodies() == [1, 2])


def test_flush_times_out_while_down(make_pusher: Callable[..., Pusher]) -> None:
    receiver = Receiver(failures=10**6)
    p = make_pusher(receiver, buffer_delay=0, retry_delay=0.01, max_retry_delay=0.01)
    p.push("x")
    assert p.flush(timeout=0.2) is False
    assert p.stats().pending == 1


def test_push_after_close_raises_and_private_queue_closed(receiver: Receiver) -> None:
    p = Pusher(receiver, buffer_delay=3600)
    p.push(1)
    p.close(timeout=WAIT)
    assert receiver.bodies() == [1]  # close flushed
    with pytest.raises(ShutDown):
        p.push(2)
    p.close()  # idempotent


def test_close_while_down_keeps_events_in_a_passed_queue() -> None:
    receiver = Receiver(failures=10**6)
    mq = MessageQueue()
    p = Pusher(receiver, mq=mq, queue="events", buffer_delay=0, retry_delay=0.01)
    for i in range(5):
        p.push(i)
    receiver.wait_for(lambda: len(receiver.attempts) >= 1)
    p.close(timeout=WAIT)
    assert not mq.closed  # a queue passed in is left open
    assert mq.all("events") == [0, 1, 2, 3, 4]  # unsent events stay, in order
    healthy = Receiver()
    again = Pusher(healthy, mq=mq, queue="events", buffer_delay=0)
    assert again.flush(timeout=WAIT)
    again.close(timeout=WAIT)
    assert healthy.bodies() == [0, 1, 2, 3, 4]
    mq.close()


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(TypeError, match="send"):
        Pusher("not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        Pusher(print, batch_size=0)
    with pytest.raises(ValueError, match="buffer_delay"):
        Pusher(print, buffer_delay=-1)
    with pytest.raises(ValueError, match="max_retry_delay"):
        Pusher(print, retry_delay=10, max_retry_delay=1)
