"""QueueView: :class:`queue.Queue`'s interface over one queue of a MessageQueue."""

from __future__ import annotations

import threading
from typing import Generic, Optional

from ._util import check_seconds, deadline_of
from ._viewcore import Sizes, ViewCore
from .message import T

__all__ = ["QueueView"]


class QueueView(Sizes, Generic[T]):
    """A FIFO with :class:`queue.Queue`'s interface, over the queue ``name`` of ``mq``.

    Behaves as ``queue.Queue(maxsize)`` does: ``put``/``get`` with ``block`` and
    ``timeout``, ``put_nowait``/``get_nowait``, ``qsize``/``empty``/``full`` (snapshots,
    "not reliable!" as CPython says), ``task_done``/``join`` (counting the items put
    through this view; see :meth:`join`), a settable ``maxsize``, and Python 3.13's
    ``shutdown(immediate=False)``/``is_shutdown``. Its :class:`~unidist_queue.Empty`,
    :class:`~unidist_queue.Full` and :class:`~unidist_queue.ShutDown` are
    :class:`queue.Empty`, :class:`queue.Full` (and, on 3.13+, :class:`queue.ShutDown`).
    Items put here are ordinary messages of the underlying queue, so they are durable
    when the queue is; ``maxsize`` applies to this view's ``put`` only, apart from the
    queue's own ``declare`` options. Works with :class:`logging.handlers.QueueHandler`
    and :class:`~logging.handlers.QueueListener`.

    Shutting the view down leaves the MessageQueue open; closing the MessageQueue makes
    the view raise ``ShutDown`` too.

    For type checkers it is generic in the item type, as ``queue.Queue`` is:
    ``QueueView[Order]`` takes and returns ``Order``; a bare ``QueueView`` is
    ``QueueView[Any]`` (what ``MessageQueue.view`` returns: annotate the variable to
    narrow it). Nothing is checked at run time.

    Cost: ``put`` and ``get`` are O(1). Thread-safe: it shares the MessageQueue's mutex.
    """

    def __init__(self, core: ViewCore, name: str, maxsize: int = 0) -> None:
        if not isinstance(name, str):
            raise TypeError(f"queue must be a str, not {type(name).__name__}")
        self._core = core
        self.name = name
        self.maxsize = maxsize
        self.mutex = core.mutex
        # all_tasks_done: notified by task_done when the count of unfinished tasks
        # reaches zero, by shutdown(immediate=True), and by the core (through _left)
        # when the last item put here left the queue undelivered.
        self.all_tasks_done = threading.Condition(self.mutex)
        self.unfinished_tasks = 0
        self.is_shutdown = False

    # -- putting ---------------------------------------------------------------------------

    def put(self, item: T, block: bool = True, timeout: Optional[float] = None) -> None:
        """Put ``item`` at the back, waiting for room if ``maxsize`` > 0 (as ``queue.Queue``).

        :raises Full: no room and ``block`` is false, or ``timeout`` passed.
        :raises ValueError: ``timeout`` is negative.
        :raises ShutDown: the view was shut down or the MessageQueue closed.
        """
        if block and timeout is not None:
            check_seconds("timeout", timeout)  # "'timeout' must be a non-negative number"
        deadline = deadline_of(timeout) if block else None
        self._core.view_put(self.name, item, block, deadline, self._room, self._is_shut_down, self._counted,
                            self._left)

    def _room(self) -> int:
        return self.maxsize

    def _counted(self) -> None:
        self.unfinished_tasks += 1

    def _left(self) -> None:
        """Under the mutex (called by the core): an item put here left the queue undelivered."""
        if self.unfinished_tasks > 0:
            self.unfinished_tasks -= 1
            if not self.unfinished_tasks:
                self.all_tasks_done.notify_all()

    def put_nowait(self, item: T) -> None:
        """``put(item, block=False)``."""
        self.put(item, block=False)

    # -- getting ---------------------------------------------------------------------------

    def get(self, block: bool = True, timeout: Optional[float] = None) -> T:
        """Remove and return the oldest item, waiting if needed (as ``queue.Queue``).

        After ``shutdown()`` the items left are still returned; then ``ShutDown``.

        :raises Empty: nothing ready and ``block`` is false, or ``timeout`` passed.
        :raises ValueError: ``timeout`` is negative.
        :raises ShutDown: the view is shut down and empty, or the MessageQueue closed.
        """
        if not block:
            timeout = None
        item: T = self._core.view_get(self.name, timeout, block, self._is_shut_down)
        return item

    def _is_shut_down(self) -> bool:
        return self.is_shutdown

    def get_nowait(self) -> T:
        """``get(block=False)``."""
        return self.get(block=False)

    # -- tasks -----------------------------------------------------------------------------

    def task_done(self) -> None:
        """Mark one item as processed, for :meth:`join`, as ``queue.Queue.task_done``.

        Whoever took the item may call it: an item put here and taken with the
        MessageQueue's ``oldest``/``newest``/``get`` or ``reserve`` + ``ack`` is marked
        on this view just as one taken with :meth:`get`. Cost: O(1). Thread-safe.

        :raises ValueError: no item put through the view is pending (every one was
            marked done already, or left the queue undelivered).
        """
        with self.all_tasks_done:
            unfinished = self.unfinished_tasks - 1
            if unfinished <= 0:
                if unfinished < 0:
                    raise ValueError("task_done() called too many times")
                self.all_tasks_done.notify_all()
            self.unfinished_tasks = unfinished

    def join(self) -> None:
        """Wait until each item put through the view was either marked :meth:`task_done`
        or left the queue without being delivered (evicted by ``maxlen``, expired,
        cleared, dropped, moved to a dead-letter queue past ``max_attempts``, or removed
        by ``shutdown(immediate=True)``). Delivered means taken for good: by the view's
        :meth:`get` or the MessageQueue's ``oldest``/``newest``/``get``/``ack``; such an
        item waits for its ``task_done``. Thread-safe; wakes when the count reaches 0.
        """
        self._core.view_join(self.name, self._unfinished, self.all_tasks_done)

    def _unfinished(self) -> int:
        return self.unfinished_tasks

    # -- shutting down -----------------------------------------------------------------------

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the view down, as Python 3.13's ``Queue.shutdown``.

        ``put`` raises ``ShutDown`` from now on; ``get`` returns what is left, then
        raises ``ShutDown``. With ``immediate``, the ready items are removed now, each
        counting as done for :meth:`join`. Blocked callers wake. The MessageQueue stays
        open.
        """
        with self.mutex:
            self.is_shutdown = True
        self._core.view_shutdown(self.name, immediate, self._removed)
        if immediate:
            with self.all_tasks_done:
                self.all_tasks_done.notify_all()

    def _removed(self) -> None:
        if self.unfinished_tasks > 0:
            self.unfinished_tasks -= 1

    def __repr__(self) -> str:
        return f"<QueueView {self.name!r} maxsize={self.maxsize}>"
