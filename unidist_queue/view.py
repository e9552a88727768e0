"""QueueView: :class:`queue.Queue`'s interface over one queue of a MessageQueue."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Optional

from ._util import check_seconds, deadline_of, remaining
from .errors import Full, ShutDown

if TYPE_CHECKING:
    from .queues import MessageQueue

__all__ = ["QueueView"]


class QueueView:
    """A FIFO with :class:`queue.Queue`'s interface, over the queue ``name`` of ``mq``.

    Behaves as ``queue.Queue(maxsize)`` does: ``put``/``get`` with ``block`` and
    ``timeout``, ``put_nowait``/``get_nowait``, ``qsize``/``empty``/``full`` (snapshots,
    "not reliable!" as CPython says), ``task_done``/``join`` (counting the items put
    through this view), a settable ``maxsize``, and Python 3.13's
    ``shutdown(immediate=False)``/``is_shutdown``. Its :class:`~unidist_queue.Empty`,
    :class:`~unidist_queue.Full` and :class:`~unidist_queue.ShutDown` are
    :class:`queue.Empty`, :class:`queue.Full` (and, on 3.13+, :class:`queue.ShutDown`).
    Items put here are ordinary messages of the underlying queue, so they are durable
    when the queue is; ``maxsize`` applies to this view's ``put`` only, apart from the
    queue's own ``declare`` options. Works with :class:`logging.handlers.QueueHandler`
    and :class:`~logging.handlers.QueueListener`.

    Shutting the view down leaves the MessageQueue open; closing the MessageQueue makes
    the view raise ``ShutDown`` too.

    Cost: ``put`` and ``get`` are O(1). Thread-safe: it shares the MessageQueue's mutex.
    """

    def __init__(self, mq: MessageQueue, name: str, maxsize: int = 0) -> None:
        if not isinstance(name, str):
            raise TypeError(f"queue must be a str, not {type(name).__name__}")
        self._mq = mq
        self.name = name
        self.maxsize = maxsize
        self.mutex = mq._mutex
        # all_tasks_done: notified by task_done when the count of unfinished tasks
        # reaches zero, and by shutdown(immediate=True).
        self.all_tasks_done = threading.Condition(self.mutex)
        self.unfinished_tasks = 0
        self.is_shutdown = False

    # -- putting ---------------------------------------------------------------------------

    def put(self, item: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Put ``item`` at the back, waiting for room if ``maxsize`` > 0 (as ``queue.Queue``).

        :raises Full: no room and ``block`` is false, or ``timeout`` passed.
        :raises ValueError: ``timeout`` is negative.
        :raises ShutDown: the view was shut down or the MessageQueue closed.
        """
        if block and timeout is not None:
            check_seconds("timeout", timeout)  # "'timeout' must be a non-negative number"
        deadline = deadline_of(timeout) if block else None
        mq = self._mq
        datas = mq._encode_for(self.name, [item])
        while True:
            with self.mutex:
                if self.is_shutdown:
                    raise ShutDown("the queue view is shut down")
                mq._check_writable()
                self._wait_for_room(block, deadline)
                q = mq._queue(self.name, create=True)
                assert q is not None
                if datas is not None or not q.durable:
                    q, seq = mq._make_room(q, None, block=False)
                    _, seq2 = mq._insert(q, item, None if datas is None else datas[0], None, evict=True)
                    self.unfinished_tasks += 1
                    break
            # Durable now (dropped and made again since the body was looked at, perhaps
            # while this put waited for room): encode it, outside the mutex, and retry.
            datas = mq._encode_for(self.name, [item])
        mq._commit(seq2 or seq)
        if mq._subscribers:
            mq._notify_subscribers(self.name)

    def _wait_for_room(self, block: bool, deadline: Optional[float]) -> None:
        """With the mutex held: wait until fewer than ``maxsize`` items are ready."""
        if self.maxsize <= 0:
            return
        while True:
            q = self._mq._waiting_room(self.name)
            if len(q.ready) < self.maxsize:
                return
            wait = remaining(deadline)
            if not block or (wait is not None and wait <= 0):
                raise Full(f"queue view {self.name!r} is full ({self.maxsize} items)")
            try:
                q.wait_for_room(wait)
            finally:
                self._mq._left_room(q)
            if self.is_shutdown:
                raise ShutDown("the queue view is shut down")
            self._mq._check_writable()

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        self.put(item, block=False)

    # -- getting ---------------------------------------------------------------------------

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Remove and return the oldest item, waiting if needed (as ``queue.Queue``).

        After ``shutdown()`` the items left are still returned; then ``ShutDown``.

        :raises Empty: nothing ready and ``block`` is false, or ``timeout`` passed.
        :raises ValueError: ``timeout`` is negative.
        :raises ShutDown: the view is shut down and empty, or the MessageQueue closed.
        """
        if not block:
            timeout = None
        return self._mq._wait_take(
            self.name, timeout, None, False, block=block, stop=self._is_shut_down
        )[2]

    def _is_shut_down(self) -> bool:
        return self.is_shutdown

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        return self.get(block=False)

    # -- sizes -----------------------------------------------------------------------------

    def qsize(self) -> int:
        """Ready items of the queue now (not reliable: it may change at once)."""
        return self._mq.count(self.name)

    def empty(self) -> bool:
        """``qsize() == 0`` (not reliable)."""
        return self.qsize() == 0

    def full(self) -> bool:
        """``0 < maxsize <= qsize()`` (not reliable)."""
        return 0 < self.maxsize <= self.qsize()

    # -- tasks -----------------------------------------------------------------------------

    def task_done(self) -> None:
        """Mark one item taken from the view as processed, for :meth:`join`.

        :raises ValueError: called more times than items were put.
        """
        with self.all_tasks_done:
            unfinished = self.unfinished_tasks - 1
            if unfinished <= 0:
                if unfinished < 0:
                    raise ValueError("task_done() called too many times")
                self.all_tasks_done.notify_all()
            self.unfinished_tasks = unfinished

    def join(self) -> None:
        """Wait until every item put through the view was marked done by ``task_done``."""
        with self.all_tasks_done:
            while self.unfinished_tasks:
                self.all_tasks_done.wait()

    # -- shutting down -----------------------------------------------------------------------

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the view down, as Python 3.13's ``Queue.shutdown``.

        ``put`` raises ``ShutDown`` from now on; ``get`` returns what is left, then
        raises ``ShutDown``. With ``immediate``, the ready items are removed now, each
        counting as done for :meth:`join`. Blocked callers wake. The MessageQueue stays
        open.
        """
        mq = self._mq
        seq = 0
        with self.mutex:
            self.is_shutdown = True
            q = mq._waiting_room(self.name)
            if immediate:
                while q.ready and not mq._closed and not mq._read_only:
                    seq = mq._pop_for(q, None, False)[2] or seq
                    if self.unfinished_tasks > 0:
                        self.unfinished_tasks -= 1
                self.all_tasks_done.notify_all()
            q.not_empty.notify_all()
            q.not_full.notify_all()
            mq._left_room(q)
        mq._commit(seq)

    def __repr__(self) -> str:
        return f"<QueueView {self.name!r} maxsize={self.maxsize}>"
