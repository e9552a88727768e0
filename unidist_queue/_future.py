"""The future a :class:`~unidist_queue.TaskHandler` returns: a cheaper ``concurrent.futures.Future``.

Internal. :class:`TaskFuture` is a :class:`concurrent.futures.Future` (a subclass: every
method, ``wait``, ``as_completed`` and ``asyncio.wrap_future`` work on it unchanged) that
costs less to make, resolve and collect, because a handler makes one per task:

* its condition is a :class:`FutureLock`, an ``RLock`` that also has ``wait`` and
  ``notify_all``, instead of a ``threading.Condition`` around an ``RLock``: one C object
  to make instead of two Python objects and a lock, and ``with`` on it runs in C;
* its list of done-callbacks is made when the first callback is added.

Its class is named ``Future``, so its ``repr`` reads as any Future's.

Making a ``TaskFuture`` costs about a quarter of a ``Future`` (and leaves two objects for
the garbage collector to track instead of five); a submit, run and ``result()`` cycle
costs about half (``benchmarks/bench_tasks.py``).

:data:`FUTURE` is the class a handler uses: ``TaskFuture``, or the plain ``Future`` on
an interpreter whose ``Future.__init__`` sets other fields than the ones this module
knows (checked at import), so a future Python cannot get a half-made future.
"""

from __future__ import annotations

import _thread
from collections import deque
from concurrent.futures import Future
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Optional, Type, cast

__all__ = ["FUTURE", "FutureLock", "TaskFuture"]

_allocate_lock = _thread.allocate_lock
_WAITERS: Dict[FutureLock, Deque[Any]] = {}  # a lock -> the threads waiting on it (as locks)
_DONE = (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)


class FutureLock(_thread.RLock):  # type: ignore[misc]
    """An ``RLock`` that is also a condition variable: ``wait`` and ``notify_all``.

    ``threading.Condition``'s algorithm on its own lock. The waiting threads of a lock
    are kept in a module-level dict, only while there are some, under that lock, so a
    ``FutureLock`` holds nothing itself (the garbage collector does not track it).
    """

    __slots__ = ()

    if TYPE_CHECKING:  # the C lock's own methods, which threading.Condition uses too

        def _is_owned(self) -> bool: ...
        def _release_save(self) -> Any: ...
        def _acquire_restore(self, state: Any) -> None: ...

    def wait(self, timeout: Optional[float] = None) -> bool:
        """As ``threading.Condition.wait``: release the lock until notified or ``timeout``."""
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = _allocate_lock()
        waiter.acquire()
        waiters = _WAITERS.get(self)
        if waiters is None:
            waiters = _WAITERS[self] = deque()
        waiters.append(waiter)
        saved = self._release_save()
        notified = False
        try:
            if timeout is None:
                notified = waiter.acquire()
            elif timeout > 0:
                notified = waiter.acquire(True, timeout)
            else:
                notified = waiter.acquire(False)
            return notified
        finally:
            self._acquire_restore(saved)
            if not notified:
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters and _WAITERS.get(self) is waiters:
                    del _WAITERS[self]

    def notify_all(self) -> None:
        """As ``threading.Condition.notify_all`` (the lock is held; with nobody waiting,
        the usual case, it does nothing, not even check that)."""
        waiters = _WAITERS.get(self)
        if waiters:
            self.notify(len(waiters))

    def notify(self, n: int = 1) -> None:
        """As ``threading.Condition.notify``: wake up to ``n`` waiting threads (the lock is
        held). Each is taken off the list as it is woken, so an interrupted call wakes the
        rest next time."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        waiters = _WAITERS.get(self)
        if waiters is None:
            return
        while waiters and n > 0:
            waiters.popleft().release()
            n -= 1
        if not waiters:
            del _WAITERS[self]


class TaskFuture(Future):  # type: ignore[type-arg]
    """A ``concurrent.futures.Future`` that is cheaper to make and resolve (see the module)."""

    _done_callbacks: Any = ()  # a list from the first add_done_callback on

    def __init__(self) -> None:  # the fields of Future.__init__ (checked at import)
        self._condition = cast(Any, FutureLock())
        self._state = PENDING
        self._result = None
        self._exception = None
        self._waiters: list[Any] = []

    def add_done_callback(self, fn: Callable[[Future[Any]], object]) -> None:
        """As ``Future.add_done_callback``."""
        with self._condition:
            if not self._done_callbacks and self._state not in _DONE:
                self._done_callbacks = []
        super().add_done_callback(fn)


TaskFuture.__name__ = TaskFuture.__qualname__ = "Future"  # its repr reads as any Future's


def _fields_match() -> bool:
    """Whether ``Future.__init__`` sets exactly the fields ``TaskFuture.__init__`` sets."""
    theirs = set(vars(Future()))
    ours = set(vars(TaskFuture())) | {"_done_callbacks"}
    return theirs == ours


FUTURE: Type[Future[Any]] = TaskFuture if _fields_match() else Future
