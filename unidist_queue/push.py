"""Pusher: batched event streaming that keeps events while the receiver is down.

A Pusher is a queue of a :class:`~unidist_queue.MessageQueue`, a :class:`~unidist_queue.Loop`
and a user ``send`` callable. Events wait in the queue; the loop's thread reserves a batch,
calls ``send(batch)`` and acks the batch only once ``send`` returned, so a batch in flight
when the process dies is sent again after a restart (ids let the receiver drop duplicates).

How the two threads meet: ``push`` adds to the queue, then (under the Pusher's mutex)
counts itself and looks at the state the loop's thread left. Only when the loop is idle,
or when it waits out ``buffer_delay`` and a full batch is now waiting, does ``push`` ring
the loop; otherwise it only adds. The loop's thread never calls the queue, ``send`` or
the logger while it holds the mutex, and ``push`` never waits for ``send``.

The loop's side (sending, backoff, settling) is the base class :class:`._pushsend.Sending`;
the interpreter-exit hook is :mod:`._pushexit`; the stats and argument checks are
:mod:`._pushstats`. This module is the facade: making, pushing, flushing, closing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Callable, Optional

from . import _pushexit
from ._pushsend import ARMED, IDLE, WAITING, Sender, Sending
from ._pushstats import PushStats, check_callables, check_pusher_options
from ._util import deadline_of, remaining
from .api import QueueAPI
from .errors import ShutDown
from .loop import Loop
from .queues import MessageQueue

__all__ = ["PushStats", "Pusher"]

logger = logging.getLogger(__name__)


class Pusher(Sending):
    """Send events to ``send`` in batches, from a queue that keeps them while it is down.

    ``Pusher(send, *, mq=None, queue="push", batch_size=100, buffer_delay=1.0,
    retry_delay=5.0, max_retry_delay=300.0, clock=time.monotonic)``

    ``push(event)`` queues an event and returns at once, whatever ``send`` is doing.
    ``send(batch)`` gets a list of at most ``batch_size`` :class:`Message` (oldest first;
    the ids let a receiver drop duplicates) and runs in the Pusher's own thread, one
    batch at a time. A batch leaves the queue only once ``send`` returned.

    * **Timing.** The first batch goes ``buffer_delay`` seconds after the first push;
      after a success the next one goes ``buffer_delay`` later; either goes at once when
      ``batch_size`` events wait. ``buffer_delay=0`` sends as soon as possible.
    * **Failures.** ``send`` raising is a failed attempt: the batch goes back to the
      front of the queue, the exception is logged at WARNING with its traceback, and the
      Pusher waits ``retry_delay`` seconds, then twice that after each further failure,
      up to ``max_retry_delay``. Until the receiver answers it probes with batches of
      one; after a success it sends full batches again. Nothing is lost (unless retries
      are bounded, below), and an event is sent again only if its batch failed (or was
      in flight when the process died). An event the receiver always refuses is
      retried for ever: drop it in ``send``, or bound the retries with
      ``mq.declare(queue, max_attempts=N, dead_letter=...)``.
      Each failed attempt nacks its batch, and each event of it was reserved once more;
      while the receiver stays down the probes of one take the front event, so events
      reach ``N`` one at a time, the oldest first, and leave for the dead-letter queue
      (or are dropped, without ``dead_letter``) instead of coming back: a long outage
      empties the queue one event per ``N - 1`` failed probes (``N`` for an event pushed
      after the first failure), counted in ``mq.stats(queue).dead``, no longer in
      :attr:`PushStats.pending`. Nothing else changes: the backoff goes on as above.
    * **Stopping.** :meth:`flush` sends everything now; :meth:`close` makes one last
      attempt unless the receiver is known to be down, then stops. Unsent events stay in
      the queue: with a durable queue (``mq`` on a ``FileStore``) a Pusher made on the
      reopened queue delivers them (logged at INFO with their number); with a queue that
      is not durable they are lost, which is logged at WARNING with their number.
    * **Interpreter exit.** A Pusher still open when the interpreter exits (after the
      non-daemon threads ended, before ``logging`` shuts down) is closed by an ``atexit``
      hook, which holds it only weakly: no last attempt and no wait (``send`` may
      depend on what is being torn down); its unsent events are logged as by
      :meth:`close` ("reached interpreter exit with 12 unsent events; they are lost").
      Call :meth:`close` (or use ``with``) to send them first.
    * **Several Pushers on one queue** (the same ``mq`` and ``queue``) share the work:
      each batch is reserved (``reserve_many``) by one of them and acked by it, so no
      batch is sent twice while the sends succeed. Delivery is at-least-once: a batch
      whose ``send`` raised returns to the queue and is sent again, by either Pusher
      (also when the receiver had in fact taken it), and a batch in flight when the
      process died is sent again after a restart; the ids let the receiver drop
      duplicates. Each one's :meth:`flush` waits for its own batches, not the others'.
      Over a backend shared by processes (``RedisMessageQueue``), a batch whose Pusher's
      process died comes back when its lease lapses: a Pusher that finds nothing ready
      (when made, or once it sent what was) waits for the queue's next timed change
      (``next_due``, a lease end or a delayed add by other code) and sends what it made
      ready. A timed change made after that, while it idles (a batch another process
      reserved since), is seen at its next push or flush.

    :param send: called with each batch, in the Pusher's thread.
    :param mq: the MessageQueue holding the events; a private in-memory one if omitted
        (closed by :meth:`close`; one passed in is left open).
    :param queue: the name of the queue holding the events.
    :param clock: a monotonic clock (seconds) measuring the delays; tests pass a manual
        one. :attr:`PushStats.last_success` always uses :func:`time.time`.
    :raises TypeError: ``send`` or ``clock`` is not callable, ``mq`` is not a
        MessageQueue, or a delay is not a number.
    :raises ValueError: ``batch_size`` < 1, a negative delay, ``retry_delay`` of 0, or
        ``max_retry_delay`` < ``retry_delay``.
    :raises ShutDown: ``mq`` is closed.

    Thread-safety: every method may be called from any thread. No user code runs and
    nothing is logged while the Pusher's lock is held. A ``BaseException`` that is not
    an ``Exception`` (``SystemExit``) raised by ``send`` ends the Pusher's thread: the
    batch goes back to the queue, ``push`` still queues, :meth:`flush` returns False.
    """

    def __init__(
        self,
        send: Sender,
        *,
        mq: Optional[QueueAPI] = None,
        queue: str = "push",
        batch_size: int = 100,
        buffer_delay: float = 1.0,
        retry_delay: float = 5.0,
        max_retry_delay: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_callables(send=send, clock=clock)
        if mq is not None and not isinstance(mq, QueueAPI):
            raise TypeError(f"mq must be a queue (unidist_queue.QueueAPI), not {type(mq).__name__}")
        delays = check_pusher_options(queue, batch_size, buffer_delay, retry_delay, max_retry_delay)
        self._buffer_delay, self._retry_delay, self._max_retry_delay = delays
        self._send = send
        self._clock = clock
        self._own_mq = mq is None
        self._mq: QueueAPI = MessageQueue() if mq is None else mq
        self._queue = queue
        self._batch_size = batch_size
        first = self._mq.stats(queue)  # ShutDown for a closed mq, before any thread starts
        waiting = first.ready
        self._init_state(waiting, first.durable)
        self._loop = Loop(self._process, min_delay=0.0, clock=clock, name=f"Pusher-{queue}")
        self._loop.start()
        self._untrack = _pushexit.track(self._close_at_exit)
        if waiting:  # left by an earlier run: send as if pushed now
            now = clock()
            with self._mutex:
                self._state = ARMED
                self._due = now + self._buffer_delay
            self._loop.trigger()
        elif first.delayed or first.reserved:  # ready later: a pass sets a timer for then
            self._loop.trigger()

    # -- pushing -----------------------------------------------------------------------------

    def push(self, event: Any) -> int:
        """Queue ``event`` for sending; return its message id. Returns at once.

        Never waits for ``send``: it only adds to the queue and, when the loop is idle or
        a full batch is now waiting, rings the loop. A push racing with :meth:`close`
        either raises ``ShutDown`` or is queued (and, in a durable queue, sent after a
        restart).

        Cost: O(1), plus the store's write for a durable queue. Thread-safe.

        :raises ShutDown: the Pusher (or its MessageQueue) was closed.
        :raises SerializationError: the queue is durable and ``event`` cannot be
            serialized; nothing was queued.
        """
        if self._closed:
            raise ShutDown("the Pusher is closed")
        msg_id = self._mq.add(self._queue, event)
        now = self._clock()  # user code: read outside the mutex
        with self._mutex:
            self._pushes += 1
            state = self._state
            if state == IDLE:
                self._state = ARMED
                if not self._failures:
                    self._due = now + self._buffer_delay
            elif state == WAITING and not self._rung and self._pushes - self._base >= self._batch_size:
                self._rung = True
            else:
                return msg_id
        self._loop.trigger()
        return msg_id

    # -- the loop's processor (runs in the loop's thread) ---------------------------------------

    # -- flushing and closing -------------------------------------------------------------

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Send everything now; return True once the queue is empty, False at ``timeout``.

        ``buffer_delay`` is ignored meanwhile. While the receiver is down, the next
        attempt comes at most ``retry_delay`` seconds from now, and failed attempts are
        retried every ``retry_delay`` seconds (no doubling) until the timeout passes
        (``None``: as long as it takes). Events pushed during the flush are sent too.
        With several Pushers on the queue, True means nothing is ready in it and this
        Pusher has no batch in flight: a batch another one is sending is that one's to
        deliver (or to return to the queue, where a flush in progress picks it up).

        Cost: waits for the batches (O(n / batch_size) calls of ``send``); it holds no
        lock while it waits. Thread-safe: several threads may flush at once.

        :raises ValueError: ``timeout`` is negative.
        :raises ShutDown: the Pusher was closed.
        :raises RuntimeError: called from ``send`` (it would wait for itself).
        """
        deadline = deadline_of(timeout)
        if self._closed:
            raise ShutDown("the Pusher is closed")
        if threading.get_ident() == self._thread_id:
            raise RuntimeError("flush() from send would wait for itself")
        return self._drain(deadline, None)

    def _drain(self, deadline: Optional[float], failed_before: Optional[int]) -> bool:
        """Ring and wait until nothing is pending, ``deadline`` passes, the thread ends, or
        (with ``failed_before``) an attempt fails once ``failed`` has passed it.

        Pending: the queue's ready events plus those this Pusher holds reserved (counted
        in that order, and again if it released some meanwhile, so never too few); not
        another Pusher's batch in flight, which that Pusher settles. If events are ready
        while the loop is idle (made ready by someone else), the loop is rung."""
        now = self._clock()
        with self._mutex:
            self._urgent += 1
            if self._failures:
                self._due = min(self._due, now + self._retry_delay)
            self._state = ARMED
        self._loop.trigger()
        try:
            while True:
                with self._mutex:
                    seen, released = self._steps, self._released
                try:
                    left = self._left(released)
                except ShutDown:
                    return False
                if left == 0:
                    return True
                if left is not None and not self._next_step(seen, deadline, failed_before):
                    return False
        finally:
            with self._mutex:
                self._urgent -= 1

    def _left(self, released: int) -> Optional[int]:
        """For :meth:`_drain`: the ready events plus those this Pusher holds, or ``None`` if
        it released some since ``released`` (count again). Rings the loop if it is idle
        while events are ready (another Pusher's failed batch, say)."""
        ready = self._pending_now(ready=True)
        with self._mutex:
            if self._released != released:
                return None
            ring = ready > 0 and self._state == IDLE
            if ring:
                self._state = ARMED
            left = ready + self._held
        if ring:
            self._loop.trigger()
        return left

    def _next_step(self, seen: int, deadline: Optional[float], failed_before: Optional[int]) -> bool:
        """For :meth:`_drain`: wait until the loop's thread ran a pass after ``seen``; False
        if the deadline passed, the thread ended, or an attempt failed after ``failed_before``."""
        with self._mutex:
            while True:
                if self._stopped or (failed_before is not None and self._failed > failed_before):
                    return False
                wait = remaining(deadline)
                if wait is not None and wait <= 0:
                    return False
                if self._steps != seen:
                    return True
                self._progress.wait(wait)

    def _pending_now(self, ready: bool = False) -> int:
        """Ready and reserved events of the queue (outside the mutex), recorded for
        :meth:`stats`; with ``ready``, return the ready ones only."""
        stats = self._mq.stats(self._queue)
        pending = stats.ready + stats.reserved
        with self._mutex:
            self._pending_seen = pending
            self._durable_seen = stats.durable
        return stats.ready if ready else pending

    def close(self, timeout: Optional[float] = None) -> None:
        """Stop: one last flush within ``timeout`` unless the receiver is known to be down.

        "Known to be down" means the last attempt failed: then nothing more is sent. The
        last flush stops at its first failure. Then the loop's thread is stopped (the
        rest of ``timeout`` is how long to wait for a ``send`` in progress). Unsent
        events (ready or reserved in the queue) stay there: a durable queue delivers
        them to a Pusher made after a restart (logged at INFO with their number); a
        queue that is not durable cannot keep them past the process, and a private one
        is closed now: logged at WARNING with their number ("Pusher 'push' closed with
        12 unsent events; they are lost (the queue is not durable)"). Nothing is logged
        when none is left. ``push`` and :meth:`flush` afterwards raise ``ShutDown``. A
        MessageQueue passed in is left open. Idempotent; also a context manager's exit.
        Called from ``send``, it makes no last attempt and does not wait.

        Cost: that of :meth:`flush`, then joining the loop's thread. Thread-safe: a
        second call, concurrent or later, returns at once.

        :raises ValueError: ``timeout`` is negative.
        """
        deadline = deadline_of(timeout)
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            down = self._failures > 0 or self._stopped
            failed_before = self._failed  # read with the down check: a later failure stops
        self._untrack()
        if not down and not self._mq.closed and threading.get_ident() != self._thread_id:
            self._drain(deadline, failed_before)
        left = remaining(deadline)
        self._stop_loop(None if left is None else max(0.0, left))
        self._report_unsent("closed")
        if self._own_mq:  # open: only this close() closes a private queue
            self._mq.close()

    def _stop_loop(self, timeout: Optional[float]) -> None:
        """Stop the loop's thread (waiting up to ``timeout`` for a ``send`` in progress)."""
        self._loop.stop(timeout)
        with self._mutex:
            self._stopped = True
            self._state = IDLE
            self._progress.notify_all()

    def _close_at_exit(self) -> None:
        """Called by the interpreter-exit hook (:mod:`._pushexit`) if still open: close with
        no last attempt and no wait, and report the unsent events."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
        self._stop_loop(0.0)
        self._report_unsent("reached interpreter exit")

    def _report_unsent(self, how: str) -> None:
        """Log the events left in the queue (ready or reserved), if any: at WARNING when the
        queue is not durable (they are lost), at INFO when it is (sent after a restart).

        Counted now, or, if the queue cannot say (closed), as last seen. Never raises.
        """
        with contextlib.suppress(Exception):
            self._pending_now()
        with self._mutex:
            pending, durable = self._pending_seen, self._durable_seen
        if not pending:
            return
        if durable:
            logger.info("Pusher %r %s with %d unsent events; they stay in the durable queue and "
                        "are sent after a restart", self._queue, how, pending)
        elif self._own_mq or how != "closed":
            logger.warning("Pusher %r %s with %d unsent events; they are lost (the queue is not "
                           "durable)", self._queue, how, pending)
        else:
            logger.warning("Pusher %r %s with %d unsent events; they are lost unless taken from "
                           "the queue before the process ends (the queue is not durable)",
                           self._queue, how, pending)

    def stats(self) -> PushStats:
        """A :class:`PushStats` snapshot. O(1). Thread-safe.

        ``pending`` is read from the queue; once the queue is closed, it is the last
        count seen.
        """
        with contextlib.suppress(ShutDown):
            self._pending_now()
        with self._mutex:
            return PushStats(self._sent, self._batches, self._failed, self._pending_seen,
                             self._last_error, self._last_success)

    def __enter__(self) -> Pusher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Pusher {self._queue!r} {state}, batch_size={self._batch_size}>"
