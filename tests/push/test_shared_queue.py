"""Two Pushers on one queue (the same MessageQueue, the same queue name) never send the
same batch twice: each batch is reserved by one of them (issue 13). With failures, a
batch whose send raised may be sent again (at-least-once), and only such a batch."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, List, Optional, Set

from helpers import Serializing
from push_helpers import WAIT, Receiver, logged_failures

from unidist_queue import FileStore, Message, MessageQueue, Pusher, QueueStats


class SharedReceiver:
    """One receiver for both Pushers: records the ids of each batch it keeps.

    The first send of each Pusher's thread waits (``together``) until both are inside
    ``send`` at once, each with its own batch: both Pushers do send. ``fail(k)`` says
    whether the k-th call fails; ``taken_then_failed`` makes a failing call keep the batch
    first (the receiver took it, but the Pusher hears of a failure, as when an answer is
    lost).
    """

    def __init__(self, fail: Callable[[int], bool] = lambda k: False,
                 taken_then_failed: bool = False) -> None:
        self.fail = fail
        self.taken_then_failed = taken_then_failed
        self.together = threading.Barrier(2, timeout=WAIT)
        self.lock = threading.Lock()
        self.calls = 0
        self.threads: Set[int] = set()  # the Pushers' threads that called
        self.first_batches: List[Set[int]] = []  # the ids of each thread's first batch
        self.received: List[int] = []  # ids, once per batch the receiver kept
        self.failed: Set[int] = set()  # ids of the batches whose send raised

    def __call__(self, batch: List[Message]) -> None:
        ident = threading.get_ident()
        with self.lock:
            first = ident not in self.threads
            self.threads.add(ident)
            if first:
                self.first_batches.append({m.id for m in batch})
        if first:
            self.together.wait()  # both Pushers are sending, each its own batch
        with self.lock:
            self.calls += 1
            fails = self.fail(self.calls)
            if not fails or self.taken_then_failed:
                self.received.extend(m.id for m in batch)
            if fails:
                self.failed.update(m.id for m in batch)
                raise ConnectionError("receiver down")


def run_two_pushers(
    receiver: SharedReceiver, n: int = 300, make_mq: Callable[[], Any] = MessageQueue, **options: Any
) -> List[int]:
    """Queue ``n`` events in ``make_mq()``, start two Pushers on them, push as many again
    through both, flush both; return the ids pushed. Both Pushers sent batches, at the
    same time."""
    with make_mq() as mq:
        ids = [mq.add("events", ("before", i)) for i in range(n)]  # both find them at start
        pushers = [Pusher(receiver, mq=mq, queue="events", buffer_delay=0, batch_size=10, **options)
                   for _ in range(2)]
        try:
            ids += [pushers[i % 2].push(("pushed", i)) for i in range(n)]
            for p in pushers:
                assert p.flush(timeout=WAIT)
            assert mq.count("events") == 0 and mq.stats("events").reserved == 0
        finally:
            for p in pushers:
                p.close(timeout=WAIT)
    assert len(receiver.threads) == 2 and not receiver.together.broken
    first, second = receiver.first_batches
    assert first and second and not first & second  # in flight together, each its own
    return ids


def test_every_event_is_received_exactly_once_when_every_send_succeeds() -> None:
    receiver = SharedReceiver()
    ids = run_two_pushers(receiver)
    assert sorted(receiver.received) == sorted(ids)  # each once: no batch sent twice


def test_over_another_backend_every_event_is_received_exactly_once(tmp_path: Path) -> None:
    """Two Pushers (two processes, say) on one queue of a backend that serializes bodies
    and keeps them in a store: each batch is reserved by one of them through the queue
    API alone, so each event is sent once."""
    receiver = SharedReceiver()
    ids = run_two_pushers(receiver, make_mq=lambda: Serializing(MessageQueue(FileStore(tmp_path / "s"))))
    assert sorted(receiver.received) == sorted(ids)


def test_with_failures_only_a_failed_batch_is_sent_again() -> None:
    """Every third call fails after the receiver took the batch: those ids may arrive twice
    (at-least-once), every other id exactly once, and none is missing."""
    receiver = SharedReceiver(fail=lambda k: k % 3 == 0, taken_then_failed=True)
    ids = run_two_pushers(receiver, retry_delay=0.001, max_retry_delay=0.001)
    counts = Counter(receiver.received)
    assert set(counts) == set(ids)
    again = {i for i, c in counts.items() if c > 1}
    assert again and again <= receiver.failed


def test_with_failures_refused_before_taking_every_event_arrives_once() -> None:
    """A receiver that refuses a batch without keeping any of it still gets each event once."""
    receiver = SharedReceiver(fail=lambda k: k % 4 == 0)
    ids = run_two_pushers(receiver, retry_delay=0.001, max_retry_delay=0.001)
    assert sorted(receiver.received) == sorted(ids)
    assert receiver.failed


def test_a_flush_waits_for_its_own_batches_and_picks_up_another_pushers_failed_one() -> None:
    """True once nothing is ready and this Pusher holds no batch: another Pusher's batch in
    flight is that one's; once it fails and returns to the queue, a flush sends it."""
    gate, entered = threading.Event(), threading.Event()

    def stuck(batch: List[Message]) -> None:
        entered.set()
        assert gate.wait(WAIT)
        raise ConnectionError("receiver down")

    received: List[Message] = []
    with MessageQueue() as mq:
        for i in range(5):
            mq.add("events", i)
        b = Pusher(stuck, mq=mq, queue="events", buffer_delay=0, retry_delay=3600, max_retry_delay=3600)
        assert entered.wait(WAIT)  # b holds all five
        a = Pusher(received.extend, mq=mq, queue="events", buffer_delay=0)
        assert a.flush(timeout=WAIT)  # nothing ready, nothing of a's in flight
        assert received == [] and mq.stats("events").reserved == 5
        with logged_failures() as failures:
            gate.set()
            failures.wait(1)  # b's send failed: the five are ready again, b backs off an hour
        assert a.flush(timeout=WAIT)
        assert [m.body for m in received] == [0, 1, 2, 3, 4]
        assert mq.count("events") == mq.stats("events").reserved == 0
        for p in (a, b):
            p.close(timeout=WAIT)


class CountHook(MessageQueue):
    """Runs ``after_empty_count`` (once) when a ``count`` finds nothing ready, before it
    returns; sets ``stats_called`` at each ``stats`` (a flush counts with it)."""

    after_empty_count: Optional[Callable[[], None]] = None

    def __init__(self) -> None:
        super().__init__()
        self.stats_called = threading.Event()

    def count(self, queue: str) -> int:
        n = super().count(queue)
        if n == 0 and self.after_empty_count is not None:
            hook, self.after_empty_count = self.after_empty_count, None
            hook()
        return n

    def stats(self, queue: str) -> QueueStats:
        result = super().stats(queue)
        self.stats_called.set()
        return result


def test_a_flush_rings_its_idle_loop_when_another_pushers_batch_comes_back() -> None:
    """a's loop finds nothing ready (b holds the rest) and goes idle; b's send fails right
    then and its batch is ready again: a's flush, waiting, rings a's loop, which sends it."""
    gate_b, entered_b = threading.Event(), threading.Event()

    def stuck(batch: List[Message]) -> None:
        entered_b.set()
        assert gate_b.wait(WAIT)
        raise ConnectionError("receiver down")

    a_receiver = Receiver()
    a_receiver.gate = threading.Event()
    with CountHook() as mq:
        for i in range(10):
            mq.add("events", i)
        b = Pusher(stuck, mq=mq, queue="events", buffer_delay=0, batch_size=5, retry_delay=3600,
                   max_retry_delay=3600)
        assert entered_b.wait(WAIT)  # b holds 0..4
        a = Pusher(a_receiver, mq=mq, queue="events", buffer_delay=0, batch_size=5)
        assert a_receiver.entered.wait(WAIT)  # a holds 5..9
        with logged_failures() as failures:

            def b_fails() -> None:  # in a's loop, once it found nothing ready
                gate_b.set()
                failures.wait(1)  # b nacked 0..4: ready again, and nobody rang a

            mq.after_empty_count = b_fails
            mq.stats_called.clear()
            flushed: List[bool] = []
            flusher = threading.Thread(target=lambda: flushed.append(a.flush(timeout=WAIT)))
            flusher.start()
            assert mq.stats_called.wait(WAIT)  # the flush counted: 0 ready, 5 held by a
            a_receiver.gate.set()
            flusher.join(WAIT)
        assert flushed == [True]
        assert sorted(a_receiver.bodies()) == list(range(10))
        for p in (a, b):
            p.close(timeout=WAIT)
