"""Pusher (DESIGN.md section 7): batching, backoff and probes, flush/close, stats.

No sleeps and no timing thresholds. Timed behaviour runs on the ``clock`` fixture (a
ManualClock): after each ``advance`` the test rings the Pusher's loop and waits until it
is quiet again (:func:`push_helpers.settle`), which is exactly what a timer firing would do, so every
assertion about "not yet" and "now" is deterministic. Every other wait is on an Event or
a Condition with a generous timeout (a hang fails, speed never does).

Durability across restarts and a kill -9 are in ``test_push_durable.py``.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Callable, Iterator, List, Optional

import attrs
import pytest
from conftest import ManualClock
from helpers import ApiOnly
from push_helpers import WAIT, Receiver, join_pusher_thread, logged_failures, settle

import unidist_queue.push as push_module
from unidist_queue import Message, MessageQueue, QueueAPI, QueueStats, ShutDown
from unidist_queue.errors import StoreError
from unidist_queue.push import Pusher, PushStats


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


# -- delivery ------------------------------------------------------------------------------


def test_delivers_in_order(receiver: Receiver, make_pusher: Callable[..., Pusher]) -> None:
    p = make_pusher(receiver, buffer_delay=0, batch_size=7)
    pushed = [p.push(i) for i in range(100)]
    assert p.flush(timeout=WAIT)
    assert receiver.bodies() == list(range(100))
    assert receiver.ids() == pushed  # push returns the id the receiver sees
    assert all(1 <= len(b) <= 7 for b in receiver.batches)
    assert all(isinstance(m, Message) and m.queue == "push" for b in receiver.batches for m in b)
    stats = p.stats()
    assert isinstance(stats, PushStats)
    assert (stats.sent, stats.failed, stats.pending) == (100, 0, 0)
    assert stats.batches == len(receiver.batches)
    assert stats.last_success is not None and stats.last_error is None


def test_concurrent_producers_each_in_order_exactly_once(
    receiver: Receiver, make_pusher: Callable[..., Pusher]
) -> None:
    p = make_pusher(receiver, buffer_delay=0, batch_size=16)
    start = threading.Barrier(4)

    def produce(k: int) -> None:
        start.wait(WAIT)
        for i in range(500):
            p.push((k, i))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert p.flush(timeout=WAIT)
    bodies = receiver.bodies()
    assert sorted(bodies) == [(k, i) for k in range(4) for i in range(500)]
    for k in range(4):
        assert [i for kk, i in bodies if kk == k] == list(range(500))
    ids = receiver.ids()
    assert ids == sorted(ids)  # oldest first across batches


def test_sent_batch_is_a_copy_the_receiver_may_keep_or_change(make_pusher: Callable[..., Pusher]) -> None:
    kept: List[List[Message]] = []

    def send(batch: List[Message]) -> None:
        kept.append(batch)
        batch.clear()  # the receiver's list: changing it does not change what is acked

    p = make_pusher(send, buffer_delay=0, batch_size=10)
    for i in range(3):
        p.push(i)
    assert p.flush(timeout=WAIT)
    assert p.stats().sent == 3 and p.stats().pending == 0


# -- batching by size and by delay (manual clock) ------------------------------------------


def test_full_batches_go_at_once_the_rest_waits(
    clock: ManualClock, make_pusher: Callable[..., Pusher]
) -> None:
    receiver = Receiver()
    p = make_pusher(receiver, buffer_delay=60, batch_size=10, clock=clock)
    for i in range(25):
        p.push(i)
    settle(p)
    assert receiver.attempts == [10, 10]  # the clock never moved: only full batches went
    assert receiver.bodies() == list(range(20))
    assert p.stats().pending == 5
    clock.advance(60)
    settle(p)
    assert receiver.attempts == [10, 10, 5]
    assert receiver.bodies() == list(range(25))


def test_partial_batch_goes_buffer_delay_after_the_first_push(
    clock: ManualClock, make_pusher: Callable[..., Pusher]
) -> None:
    receiver = Receiver(clock=clock)
    t0 = clock()
    p = make_pusher(receiver, buffer_delay=10, batch_size=100, clock=clock)
    p.push("a")
    clock.advance(4)
    p.push("b")  # does not restart the delay
    settle(p)
    clock.advance(5.9)
    settle(p)
    assert receiver.attempts == []
    clock.advance(0.1)
    settle(p)
    assert receiver.bodies() == ["a", "b"]
    assert receiver.times == [t0 + 10]


def test_after_a_success_the_next_batch_waits_buffer_delay(
    clock: ManualClock, make_pusher: Callable[..., Pusher]
) -> None:
    receiver = Receiver(clock=clock)
    t0 = clock()
    p = make_pusher(receiver, buffer_delay=10, batch_size=3, clock=clock)
    for i in range(3):
        p.push(i)  # a full batch: goes at once
    settle(p)
    p.push(3)
    settle(p)
    clock.advance(9)
    settle(p)
    assert receiver.attempts == [3]
    clock.advance(1)
    settle(p)
    assert receiver.attempts == [3, 1]
    assert receiver.times == [t0, t0 + 10]


def test_buffer_delay_zero_keeps_pushing(receiver: Receiver, make_pusher: Callable[..., Pusher]) -> None:
    """The original silently stopped pushing with a zero delay; this one does not."""
    p = make_pusher(receiver, buffer_delay=0, batch_size=5)
    for round_ in range(5):
        p.push(round_)
        receiver.wait_for(lambda r=round_: len(receiver.bodies()) == r + 1)  # type: ignore[misc]
    assert receiver.bodies() == [0, 1, 2, 3, 4]


def test_buffer_delay_zero_on_a_manual_clock_sends_without_time_passing(
    clock: ManualClock, make_pusher: Callable[..., Pusher]
) -> None:
    receiver = Receiver()
    p = make_pusher(receiver, buffer_delay=0, batch_size=100, clock=clock)
    for i in range(3):
        p.push(i)
        settle(p)
    assert receiver.bodies() == [0, 1, 2]


# -- failures: backoff, probes of one, nothing lost, nothing twice -------------------------


def test_backoff_doubles_probes_with_one_then_full_batches(
    clock: ManualClock, make_pusher: Callable[..., Pusher], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="unidist_queue.push")
    receiver = Receiver(failures=4, clock=clock)
    t0 = clock()
    p = make_pusher(receiver, buffer_delay=0, batch_size=10, retry_delay=5, max_retry_delay=20, clock=clock)
    ids = [p.push(i) for i in range(25)]
    settle(p)
    assert receiver.attempts == [10]  # a full batch, refused
    # the waits double from retry_delay (5, 10, 20) and stop at max_retry_delay (20)
    for wait in (5, 10, 20, 20):
        clock.advance(wait - 0.5)
        settle(p)
        n = len(receiver.attempts)
        clock.advance(0.5)
        settle(p)
        assert len(receiver.attempts) > n
    # probes of one until the receiver answered; then full batches, at once
    assert receiver.attempts == [10, 1, 1, 1, 1, 10, 10, 4]
    assert [t - t0 for t in receiver.times] == [0, 5, 15, 35, 55, 55, 55, 55]
    assert receiver.ids() == ids  # nothing lost, nothing twice, in order
    stats = p.stats()
    assert (stats.sent, stats.batches, stats.failed, stats.pending) == (25, 4, 4, 0)
    assert stats.last_error is not None and "receiver down" in stats.last_error
    waits = [float(w) for w in re.findall(r"next attempt \(a batch of one\) in (\S+) s", caplog.text)]
    assert waits == [5, 10, 20, 20]


def test_a_new_push_after_a_failure_waits_out_the_backoff_even_if_the_queue_was_emptied(
    mq: MessageQueue, clock: ManualClock
) -> None:
    receiver = Receiver(failures=1, clock=clock)
    t0 = clock()
    with Pusher(receiver, mq=mq, buffer_delay=0, retry_delay=10, clock=clock) as p:
        p.push("refused")
        settle(p)
        assert receiver.attempts == [1] and receiver.bodies() == []
        assert mq.clear("push") == 1
        settle(p)  # nothing pending: the loop goes idle, the failure is remembered
        p.push("new")
        settle(p)
        assert receiver.attempts == [1]  # not at once: the receiver was down
        clock.advance(10)
        settle(p)
        assert receiver.bodies() == ["new"] and receiver.times == [t0, t0 + 10]


def test_refused_batch_goes_back_to_the_front_in_order(make_pusher: Callable[..., Pusher]) -> None:
    mq = MessageQueue()
    receiver = Receiver(failures=1)
    receiver.gate = threading.Event()
    p = make_pusher(receiver, mq=mq, buffer_delay=0, batch_size=3, retry_delay=3600, max_retry_delay=3600)
    for i in range(5):
        p.push(i)
    assert receiver.entered.wait(WAIT)
    # in flight: reserved, not removed, still pending
    assert (mq.stats("push").reserved, p.stats().pending) == (3, 5)
    receiver.gate.set()
    receiver.wait_for(lambda: receiver.attempts == [3])
    mq_state = mq.messages("push")
    assert [m.body for m in mq_state] == [0, 1, 2, 3, 4]
    assert [m.attempts for m in mq_state] == [1, 1, 1, 0, 0]
    p.close(timeout=WAIT)  # known down: no last attempt
    assert receiver.attempts == [3]
    mq.close()


def test_raising_receiver_never_kills_the_loop(make_pusher: Callable[..., Pusher]) -> None:
    receiver = Receiver(failures=1)
    p = make_pusher(receiver, buffer_delay=0, retry_delay=0.01)
    p.push(1)
    receiver.wait_for(lambda: receiver.bodies() == [1])
    p.push(2)
    receiver.wait_for(lambda: receiver.bodies() == [1, 2])


def test_store_failure_is_retried_after_retry_delay(
    clock: ManualClock, make_pusher: Callable[..., Pusher], caplog: pytest.LogCaptureFixture
) -> None:
    class FlakyQueue(MessageQueue):
        failures = 1

        def reserve_many(self, queue: str, n: int, *, timeout: Optional[float] = None,
                         lease: Optional[float] = None) -> List[Message]:
            if self.failures:
                self.failures -= 1
                raise StoreError("disk full")
            return super().reserve_many(queue, n, timeout=timeout, lease=lease)

    caplog.set_level(logging.ERROR, logger="unidist_queue.push")
    mq = FlakyQueue()
    receiver = Receiver()
    p = make_pusher(receiver, mq=mq, buffer_delay=0, retry_delay=5, clock=clock)
    p.push("x")
    settle(p)
    assert receiver.attempts == [] and "disk full" in caplog.text
    clock.advance(5)
    settle(p)
    assert receiver.bodies() == ["x"]
    p.close(timeout=WAIT)
    mq.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_send_raising_base_exception_ends_the_thread_keeps_the_batch(
    make_pusher: Callable[..., Pusher]
) -> None:
    mq = MessageQueue()

    def send(batch: List[Message]) -> None:
        raise SystemExit("receiver quit")

    p = make_pusher(send, mq=mq, buffer_delay=0)
    p.push("kept")
    join_pusher_thread()
    assert p.flush(timeout=WAIT) is False  # the thread is gone: flush does not hang
    assert mq.all("push") == ["kept"]
    p.push("queued")  # still queues
    p.close(timeout=WAIT)
    assert mq.all("push") == ["kept", "queued"]
    mq.close()


# -- a slow receiver -------------------------------------------------------------------------


def test_slow_receiver_never_blocks_push(make_pusher: Callable[..., Pusher]) -> None:
    receiver = Receiver()
    receiver.gate = threading.Event()
    p = make_pusher(receiver, buffer_delay=0, batch_size=1)
    p.push("first")
    assert receiver.entered.wait(WAIT)  # send is now blocked inside the receiver
    for i in range(1000):
        p.push(i)  # each returns while the receiver is still stuck
    assert not receiver.gate.is_set() and receiver.attempts == []
    assert p.stats().pending == 1001
    receiver.gate.set()
    assert p.flush(timeout=WAIT)
    assert receiver.bodies() == ["first", *range(1000)]


# -- flush -----------------------------------------------------------------------------------


def test_flush_ignores_buffer_delay(clock: ManualClock, make_pusher: Callable[..., Pusher]) -> None:
    receiver = Receiver()
    p = make_pusher(receiver, buffer_delay=3600, batch_size=10, clock=clock)
    for i in range(3):
        p.push(i)
    settle(p)
    assert receiver.attempts == []
    assert p.flush(timeout=WAIT)  # the clock never moved
    assert receiver.bodies() == [0, 1, 2]


def test_flush_retries_every_retry_delay_until_the_receiver_answers(
    clock: ManualClock, make_pusher: Callable[..., Pusher]
) -> None:
    flushing = threading.Event()

    class Watched(MessageQueue):
        def stats(self, queue: str) -> QueueStats:
            if threading.current_thread().name == "flusher":
                flushing.set()  # a flush looks at the queue once it rang the loop
            return super().stats(queue)

    receiver = Receiver(failures=3, clock=clock)
    t0 = clock()
    with Watched() as mq:
        p = make_pusher(receiver, mq=mq, buffer_delay=0, retry_delay=5, max_retry_delay=3600, clock=clock)
        p.push("x")
        settle(p)
        clock.advance(5)
        settle(p)
        assert len(receiver.attempts) == 2  # now backing off for 10 s
        result: List[bool] = []
        flusher = threading.Thread(target=lambda: result.append(p.flush(timeout=WAIT)), name="flusher")
        flusher.start()
        assert flushing.wait(WAIT)
        # flush brings the next attempt to retry_delay from its start, and keeps retry_delay
        clock.advance(5)
        settle(p)
        assert len(receiver.attempts) == 3
        clock.advance(5)
        settle(p)
        flusher.join(WAIT)
        assert result == [True]
        assert [t - t0 for t in receiver.times] == [0, 5, 10, 15]


def test_flush_times_out_while_down(make_pusher: Callable[..., Pusher]) -> None:
    receiver = Receiver(failures=10**6)
    p = make_pusher(receiver, buffer_delay=0, retry_delay=0.01, max_retry_delay=0.01)
    p.push("x")
    assert p.flush(timeout=0.2) is False
    assert p.stats().pending == 1
    assert p.flush(timeout=0) is False


def test_flush_with_nothing_queued_is_true(make_pusher: Callable[..., Pusher]) -> None:
    p = make_pusher(Receiver())
    assert p.flush(timeout=0) is True
    assert p.flush() is True


# -- close -----------------------------------------------------------------------------------


def test_close_flushes_push_after_close_raises_private_queue_closed(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: List[MessageQueue] = []

    class Private(MessageQueue):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(push_module, "MessageQueue", Private)  # the class a Pusher makes its queue of
    p = Pusher(receiver, buffer_delay=3600)
    p.push(1)
    p.close(timeout=WAIT)
    assert receiver.bodies() == [1]  # close flushed
    with pytest.raises(ShutDown):
        p.push(2)
    with pytest.raises(ShutDown):
        p.flush()
    assert [q.closed for q in made] == [True]  # a private queue is closed
    p.close()  # idempotent
    assert p.stats().sent == 1


def test_close_while_down_makes_no_attempt_and_keeps_events(clock: ManualClock) -> None:
    receiver = Receiver(failures=10**6)
    mq = MessageQueue()
    p = Pusher(receiver, mq=mq, queue="events", buffer_delay=0, retry_delay=5, clock=clock)
    for i in range(5):
        p.push(i)
    settle(p)
    assert receiver.attempts == [5]
    clock.advance(5)  # a probe is due, but the receiver is known to be down
    p.close(timeout=WAIT)
    assert receiver.attempts == [5]
    assert not mq.closed  # a queue passed in is left open
    assert mq.all("events") == [0, 1, 2, 3, 4]  # unsent events stay, in order
    healthy = Receiver()
    again = Pusher(healthy, mq=mq, queue="events", buffer_delay=0)
    assert again.flush(timeout=WAIT)
    again.close(timeout=WAIT)
    assert healthy.bodies() == [0, 1, 2, 3, 4]
    mq.close()


def test_close_last_attempt_stops_at_the_first_failure(clock: ManualClock) -> None:
    receiver = Receiver()
    mq = MessageQueue()
    p = Pusher(receiver, mq=mq, buffer_delay=3600, batch_size=10, retry_delay=1, clock=clock)
    for i in range(25):
        p.push(i)
    settle(p)
    assert receiver.attempts == [10, 10]
    receiver.failures = 10**6
    p.close(timeout=WAIT)
    assert receiver.attempts == [10, 10, 5]  # one last attempt, no retry
    assert mq.all("push") == [20, 21, 22, 23, 24]
    assert p.stats().failed == 1
    mq.close()


def test_close_does_not_wait_past_its_timeout_for_a_stuck_send() -> None:
    mq = MessageQueue()
    receiver = Receiver()
    receiver.gate = threading.Event()
    p = Pusher(receiver, mq=mq, buffer_delay=0)
    p.push("slow")
    assert receiver.entered.wait(WAIT)
    p.close(timeout=0)  # returns although send is still running
    with pytest.raises(ShutDown):
        p.push("late")
    receiver.gate.set()  # the send finishes, its batch is acked, the thread ends
    receiver.wait_for(lambda: receiver.bodies() == ["slow"])
    join_pusher_thread()
    assert mq.stats("push").reserved + mq.count("push") == 0
    mq.close()


def test_private_queue_closed_with_unsent_events_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="unidist_queue.push")
    with logged_failures() as failures:
        p = Pusher(Receiver(failures=10**6), buffer_delay=0, retry_delay=3600, max_retry_delay=3600)
        for i in range(3):
            p.push(i)
        failures.wait(1)
    assert p.stats().failed == 1
    p.close(timeout=WAIT)
    assert "closed with 3 unsent events" in caplog.text
    assert p.stats().pending == 3  # the last count seen, once the queue is closed


def test_restarting_on_a_queue_with_events_sends_them(
    clock: ManualClock, make_pusher: Callable[..., Pusher]
) -> None:
    mq = MessageQueue()
    for i in range(3):
        mq.add("events", i)
    receiver = Receiver()
    p = make_pusher(receiver, mq=mq, queue="events", buffer_delay=10, clock=clock)
    settle(p)
    assert receiver.attempts == []  # as if they had just been pushed: buffer_delay, then they go
    clock.advance(10)
    settle(p)
    assert receiver.bodies() == [0, 1, 2]
    p.close(timeout=WAIT)
    mq.close()


def test_flush_and_close_from_send_do_not_wait_for_themselves() -> None:
    mq = MessageQueue()
    errors: List[BaseException] = []
    closed = threading.Event()

    def send(batch: List[Message]) -> None:
        try:
            p.flush(timeout=WAIT)
        except RuntimeError as exc:
            errors.append(exc)
        p.close(timeout=WAIT)  # no last attempt, no wait: returns at once
        closed.set()

    p = Pusher(send, mq=mq, buffer_delay=0)
    p.push("x")
    assert closed.wait(WAIT)
    join_pusher_thread()
    assert len(errors) == 1 and "itself" in str(errors[0])
    assert mq.count("push") == 0  # send returned: its batch was acked
    with pytest.raises(ShutDown):
        p.push("y")
    mq.close()


def test_context_manager_closes(receiver: Receiver) -> None:
    with Pusher(receiver, buffer_delay=3600) as p:
        p.push("x")
    assert receiver.bodies() == ["x"]
    with pytest.raises(ShutDown):
        p.push("y")


def test_closed_queue_cannot_make_a_pusher() -> None:
    mq = MessageQueue()
    mq.close()
    with pytest.raises(ShutDown):
        Pusher(print, mq=mq)


def test_a_messagequeue_closed_under_the_pusher_ends_flush_and_close_quietly(clock: ManualClock) -> None:
    receiver = Receiver()
    mq = MessageQueue()
    p = Pusher(receiver, mq=mq, buffer_delay=60, clock=clock)
    p.push("stranded")
    mq.close()
    try:
        assert p.flush(timeout=WAIT) is False
        settle(p)  # the pass flush rang met the closed queue
        assert p.flush(timeout=WAIT) is False  # and the Pusher is still usable
    finally:
        p.close(timeout=WAIT)
    assert receiver.attempts == []


# -- stats and arguments --------------------------------------------------------------------


def test_stats_are_frozen(make_pusher: Callable[..., Pusher]) -> None:
    stats = make_pusher(Receiver()).stats()
    assert stats == PushStats(0, 0, 0, 0, None, None)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.sent = 1  # type: ignore[misc]


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(TypeError, match="send"):
        Pusher("not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mq"):
        Pusher(print, mq="nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="queue"):
        Pusher(print, queue=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock"):
        Pusher(print, clock=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        Pusher(print, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        Pusher(print, batch_size=True)
    with pytest.raises(ValueError, match="buffer_delay"):
        Pusher(print, buffer_delay=-1)
    with pytest.raises(TypeError, match="retry_delay"):
        Pusher(print, retry_delay="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry_delay"):
        Pusher(print, retry_delay=0)
    with pytest.raises(ValueError, match="max_retry_delay"):
        Pusher(print, retry_delay=10, max_retry_delay=1)
    p = Pusher(print)
    with pytest.raises(ValueError, match="timeout"):
        p.flush(timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        p.close(timeout=-1)
    p.close()


def test_two_pushers_on_one_queue_send_each_event_once(make_pusher: Callable[..., Pusher]) -> None:
    """Each batch is reserved by one of them (reserve_many): no event goes in two batches."""
    with MessageQueue() as mq:
        receivers = [Receiver(), Receiver()]
        pushers = [make_pusher(r, mq=mq, buffer_delay=0, batch_size=7) for r in receivers]
        for i in range(200):
            pushers[i % 2].push(i)
        for p in pushers:
            assert p.flush(timeout=WAIT)
        sent = sorted(m.body for r in receivers for batch in r.batches for m in batch)
        assert sent == list(range(200))


def test_a_pusher_works_over_any_queue_api_object(make_pusher: Callable[..., Pusher]) -> None:
    """Nothing but the QueueAPI methods: a backend that offers only those carries a Pusher."""
    with ApiOnly(MessageQueue()) as mq:
        assert isinstance(mq, QueueAPI)
        receiver = Receiver()
        p = make_pusher(receiver, mq=mq, buffer_delay=0, batch_size=10)
        for i in range(25):
            p.push(i)
        assert p.flush(timeout=WAIT)
        assert [m.body for batch in receiver.batches for m in batch] == list(range(25))
        assert all(1 <= len(batch) <= 10 for batch in receiver.batches)


def test_repr_shows_the_queue_state_and_batch_size() -> None:
    p = Pusher(Receiver(), queue="events", batch_size=7)
    assert repr(p) == "<Pusher 'events' open, batch_size=7>"
    p.close(timeout=WAIT)
    assert repr(p) == "<Pusher 'events' closed, batch_size=7>"
