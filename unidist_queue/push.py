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
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

from ._pushstats import PushStats, check_callables, check_pusher_options
from ._util import deadline_of, remaining
from .api import QueueAPI
from .errors import Empty, ShutDown
from .loop import Loop
from .message import Message
from .queues import MessageQueue

__all__ = ["PushStats", "Pusher"]

logger = logging.getLogger(__name__)

Sender = Callable[[List[Message]], Any]
_Settle = Callable[[Message], None]

# What the loop's thread is doing, as seen by push() (read and written under the mutex).
_IDLE = 0  # nothing queued as far as the loop knows; no timer: push must ring
_ARMED = 1  # a pass is rung or running: it will look at the queue
_WAITING = 2  # healthy, a timer waits out buffer_delay: a full batch must ring
_BACKOFF = 3  # the last attempt failed, a timer waits out the backoff: never ring


class Pusher:
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
      reopened queue delivers them. One Pusher per queue at a time.

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
        waiting = self._mq.count(queue)  # ShutDown for a closed mq, before any thread starts
        self._init_state(waiting)
        self._loop = Loop(self._process, min_delay=0.0, clock=clock, name=f"Pusher-{queue}")
        self._loop.start()
        if waiting:  # left by an earlier run: send as if pushed now
            now = clock()
            with self._mutex:
                self._state = _ARMED
                self._due = now + self._buffer_delay
            self._loop.trigger()

    def _init_state(self, waiting: int) -> None:
        """The state shared by ``push``, the loop's thread, ``flush`` and ``close``."""
        self._mutex = threading.Lock()
        # progress: notified by the loop's thread after every pass; flush/close wait on it.
        self._progress = threading.Condition(self._mutex)
        self._steps = 0  # passes of the processor so far (flush waits for the next)
        self._state = _IDLE
        self._due = 0.0  # clock time the next batch may go
        self._rung = False  # push rang for a full batch; the next pass clears it
        self._pushes = 0  # pushes so far
        self._base = 0  # _pushes - _base estimates the events waiting (never too low)
        self._urgent = 0  # flushes (and a close) in progress: buffer_delay is ignored
        self._closed = False  # close() was called: push raises ShutDown
        self._stopped = False  # the loop's thread ended (close, or a BaseException)
        self._failures = 0  # consecutive failed attempts
        self._sent = self._batches = self._failed = 0
        self._last_error: Optional[str] = None
        self._last_success: Optional[float] = None
        self._pending_seen = waiting  # the last pending count seen (for stats() after close)
        self._unsettled: List[Tuple[_Settle, Message]] = []  # acks/nacks the store refused
        self._thread_id: Optional[int] = None  # the loop's thread, once it has run a pass

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
            if state == _IDLE:
                self._state = _ARMED
                if not self._failures:
                    self._due = now + self._buffer_delay
            elif state == _WAITING and not self._rung and self._pushes - self._base >= self._batch_size:
                self._rung = True
            else:
                return msg_id
        self._loop.trigger()
        return msg_id

    # -- the loop's processor (runs in the loop's thread) ---------------------------------------

    def _process(self) -> Optional[float]:
        """Send one batch if it is time; return when to be called again (on the clock)."""
        try:
            return self._step()
        except ShutDown:  # the MessageQueue was closed under us: nothing more to do
            with self._mutex:
                self._state = _IDLE
                self._steps += 1
                self._progress.notify_all()
            return None
        except Exception:  # the store failed (reserve, count): try again later
            logger.exception("Pusher %r: the queue failed; trying again in %.3g s",
                             self._queue, self._retry_delay)
            with self._mutex:
                self._state = _BACKOFF
                self._steps += 1
                self._progress.notify_all()
            return self._clock() + self._retry_delay
        except BaseException:
            with self._mutex:
                self._stopped = True
                self._progress.notify_all()
            raise

    def _step(self) -> Optional[float]:
        self._thread_id = threading.get_ident()
        if self._unsettled:
            self._settle_again()
        with self._mutex:
            self._rung = False
            pushes = self._pushes
        pending = self._mq.count(self._queue)
        now = self._clock()
        with self._mutex:
            self._steps += 1
            self._progress.notify_all()
            self._base = pushes - pending
            self._pending_seen = pending
            if not pending:
                if self._pushes != pushes:  # a push landed after the count: look again
                    self._state = _ARMED
                    return now
                self._state = _IDLE
                return None
            failures, due = self._failures, self._due
            if now < due and (failures or not (self._urgent or pending >= self._batch_size)):
                if failures:
                    self._state = _BACKOFF
                    return due
                self._state = _ARMED
                if self._pushes - self._base >= self._batch_size:
                    return now  # pushes since the count may fill a batch: count again
                self._state = _WAITING
                return due
            self._state = _ARMED
        batch = self._reserve(1 if failures else min(pending, self._batch_size))
        if batch:
            self._attempt(batch)
        return self._clock()  # at once: the next pass decides (another batch, wait, idle)

    def _reserve(self, n: int) -> List[Message]:
        """Reserve up to ``n`` messages, oldest first, in one step (none if the queue is empty).

        Each batch is reserved by one pusher: two Pushers on one queue never send the
        same event in two batches.
        """
        try:
            return self._mq.reserve_many(self._queue, n, timeout=0)
        except Empty:
            return []

    def _attempt(self, batch: List[Message]) -> None:
        """Send ``batch``: ack it on success, return it to the front on failure."""
        try:
            self._send(list(batch))
        except Exception as exc:
            self._settle(batch, self._mq.nack)
            now = self._clock()
            with self._mutex:
                self._failures += 1
                self._failed += 1
                failures = self._failures
                self._last_error = repr(exc)
                backoff = self._backoff_locked()
                self._due = now + backoff
            logger.warning("Pusher %r: send failed (%d in a row); next attempt (a batch of one) "
                           "in %.3g s: %r", self._queue, failures, backoff, exc, exc_info=exc)
            return
        except BaseException:
            self._settle(batch, self._mq.nack)
            raise
        self._settle(batch, self._mq.ack)
        now = self._clock()
        with self._mutex:
            self._failures = 0
            self._sent += len(batch)
            self._batches += 1
            self._last_success = time.time()
            self._due = now + self._buffer_delay

    def _backoff_locked(self) -> float:
        """The wait after the latest failure: doubling, capped; ``retry_delay`` in a flush."""
        if self._urgent:
            return self._retry_delay
        doublings = min(self._failures - 1, 64)
        return min(self._retry_delay * 2.0**doublings, self._max_retry_delay)

    def _settle(self, batch: List[Message], settle: _Settle) -> None:
        """Ack or nack the batch in one step (``ack_many``/``nack_many``); if that fails (a
        message was cleared meanwhile, or the store refused), each message on its own,
        keeping those the store refused, to try again."""
        many = self._mq.ack_many if settle == self._mq.ack else self._mq.nack_many
        try:
            many(batch)
            return
        except Exception:  # all or none: nothing was settled; settle one by one
            pass
        for message in batch:
            try:
                settle(message)
            except (ValueError, ShutDown):  # cleared or dropped meanwhile, or closed
                pass
            except Exception:
                logger.exception("Pusher %r: could not settle message %d; will try again",
                                 self._queue, message.id)
                self._unsettled.append((settle, message))

    def _settle_again(self) -> None:
        todo, self._unsettled = self._unsettled, []
        for settle, message in todo:
            self._settle([message], settle)

    # -- flushing and closing -------------------------------------------------------------

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Send everything now; return True once the queue is empty, False at ``timeout``.

        ``buffer_delay`` is ignored meanwhile. While the receiver is down, the next
        attempt comes at most ``retry_delay`` seconds from now, and failed attempts are
        retried every ``retry_delay`` seconds (no doubling) until the timeout passes
        (``None``: as long as it takes). Events pushed during the flush are sent too.

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
        (with ``failed_before``) an attempt fails once ``failed`` has passed it."""
        now = self._clock()
        with self._mutex:
            self._urgent += 1
            if self._failures:
                self._due = min(self._due, now + self._retry_delay)
            self._state = _ARMED
        self._loop.trigger()
        try:
            while True:
                with self._mutex:
                    seen = self._steps
                try:
                    pending = self._pending_now()
                except ShutDown:
                    return False
                if pending == 0:
                    return True
                with self._mutex:
                    while True:
                        if self._stopped or (failed_before is not None and self._failed > failed_before):
                            return False
                        wait = remaining(deadline)
                        if wait is not None and wait <= 0:
                            return False
                        if self._steps != seen:
                            break
                        self._progress.wait(wait)
        finally:
            with self._mutex:
                self._urgent -= 1

    def _pending_now(self) -> int:
        """Ready and reserved events of the queue (outside the mutex)."""
        stats = self._mq.stats(self._queue)
        pending = stats.ready + stats.reserved
        with self._mutex:
            self._pending_seen = pending
        return pending

    def close(self, timeout: Optional[float] = None) -> None:
        """Stop: one last flush within ``timeout`` unless the receiver is known to be down.

        "Known to be down" means the last attempt failed: then nothing more is sent. The
        last flush stops at its first failure. Then the loop's thread is stopped (the
        rest of ``timeout`` is how long to wait for a ``send`` in progress). Unsent
        events stay in the queue: a durable queue delivers them to a Pusher made after a
        restart; a private in-memory queue is closed and they are gone (logged at
        WARNING). ``push`` and :meth:`flush` afterwards raise ``ShutDown``. A
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
        if not down and not self._mq.closed and threading.get_ident() != self._thread_id:
            self._drain(deadline, failed_before)
        left = remaining(deadline)
        self._loop.stop(None if left is None else max(0.0, left))
        with self._mutex:
            self._stopped = True
            self._state = _IDLE
            self._progress.notify_all()
        if self._own_mq:  # open: only this close() closes a private queue
            pending = self._pending_now()
            if pending:
                logger.warning("Pusher %r: closed with %d unsent events in its private "
                               "in-memory queue; they are dropped", self._queue, pending)
            self._mq.close()

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
