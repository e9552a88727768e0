"""ViewCore: what QueueView and AsyncQueueView need of the object that keeps a queue (internal).

The views (:mod:`unidist_queue.view`, :mod:`unidist_queue.aview`) hold the per-view state
(``maxsize``, and in a :class:`Tally` the count of unfinished items and the shut-down
flag) and leave every queue
operation to a *view core*: the :class:`~unidist_queue._core.QueueCore` of a
:class:`~unidist_queue.MessageQueue` (state in this process, woken under its mutex), or
the view core of a :class:`~unidist_queue.RedisMessageQueue`
(:mod:`unidist_queue.redisq._rview`). The callbacks a view passes (``room``,
``stopped``, ``counted``, ``left``, ``removed``) are called with :attr:`ViewCore.mutex`
held.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Deque, List, Optional, Protocol, Tuple

from ._awaiting import Waiter

__all__ = ["Sizes", "Tally", "ViewCore"]

Taken = List[Tuple[Any, int]]


class Tally:
    """A view's count of items put and not yet done, and whether it is shut down.

    Owned by the view and shared with its core on purpose: both fields change only with
    :attr:`ViewCore.mutex` held, by the view or by the core's put fast path
    (:meth:`ViewCore.view_put_fast`), which reads and counts here instead of calling two
    callbacks per put (~10% of a thread-to-coroutine hand-off, ``bench_async.py``).
    """

    __slots__ = ("shut_down", "unfinished")

    def __init__(self) -> None:
        self.unfinished = 0
        self.shut_down = False


class ViewCore(Protocol):
    """The operations of a queue that its views call (see the module)."""

    @property
    def mutex(self) -> Any:
        """The lock the views' Conditions and counters use."""

    def count(self, queue: str) -> int:
        """Ready messages of ``queue``."""

    def view_put(
        self, name: str, item: Any, block: bool, deadline: Optional[float], room: Callable[[], int],
        stopped: Callable[[], bool], counted: Callable[[], None], left: Callable[[], None],
    ) -> None:
        """Add ``item`` once fewer than ``room()`` are ready (0: no bound)."""

    def view_put_fast(self, name: str, item: Any, limit: int, tally: Tally, left: Callable[[], None]) -> bool:
        """Add ``item`` now if that is cheap and certain (counted in ``tally``, unless it
        is shut down); whether it did."""

    async def view_aput(
        self, name: str, item: Any, room: Callable[[], int], stopped: Callable[[], bool],
        counted: Callable[[], None], left: Callable[[], None],
    ) -> None:
        """``view_put`` for coroutines."""

    def view_get(self, name: str, timeout: Optional[float], block: bool, stopped: Callable[[], bool]) -> Any:
        """Take the oldest ready body, waiting unless not ``block``."""

    def view_get_fast(self, name: str) -> Any:
        """The oldest ready body taken now if that is cheap, else ``MISSING``."""

    async def await_take(
        self, queue: str, timeout: Optional[float], lease: Optional[float], n: int,
        stop: Optional[Callable[[], bool]],
    ) -> Taken:
        """Wait for a ready message and take it: ``[(item, attempts)]``, ``item[2]`` the body."""

    def view_join(self, name: str, unfinished: Callable[[], int], done: threading.Condition) -> None:
        """Wait on ``done`` until ``unfinished()`` is 0."""

    async def view_ajoin(self, name: str, unfinished: Callable[[], int], room: Deque[Waiter]) -> None:
        """``view_join`` for coroutines, parked in ``room``."""

    def view_shutdown(self, name: str, immediate: bool, removed: Callable[[], None]) -> None:
        """Wake the waiters of ``name``; with ``immediate`` first remove the ready messages."""


class Sizes:
    """``qsize``, ``empty`` and ``full`` of a view, the same for QueueView and
    AsyncQueueView: snapshots of the queue's ready messages, whoever added them (not
    reliable, as CPython says: they may change at once). One count call: O(1) in memory,
    one round trip over Redis. Thread-safe."""

    _core: ViewCore
    name: str
    maxsize: int

    def qsize(self) -> int:
        """Ready messages of the queue now (whoever added them)."""
        return self._core.count(self.name)

    def empty(self) -> bool:
        """``qsize() == 0``."""
        return self.qsize() == 0

    def full(self) -> bool:
        """``0 < maxsize <= qsize()`` (never full with ``maxsize`` <= 0)."""
        return 0 < self.maxsize <= self.qsize()
