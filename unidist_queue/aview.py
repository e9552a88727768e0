"""AsyncQueueView: :class:`asyncio.Queue`'s interface over one queue of a MessageQueue."""

from __future__ import annotations

from types import GenericAlias
from typing import TYPE_CHECKING, Generic, NoReturn

from ._atake import joiners
from ._awaiting import wake_every
from ._viewcore import Sizes, Tally, ViewCore
from .errors import Empty, Full, QueueEmpty, QueueFull, QueueShutDown, ShutDown
from .message import MISSING, T

__all__ = ["AsyncQueueView"]


def _reraise(exc: Exception) -> NoReturn:
    """Raise the view's class for ``exc`` (an Empty, a Full or a ShutDown from the core):
    asyncio's and ours both (see errors.py), with the same message."""
    if isinstance(exc, Empty):
        raise QueueEmpty(*exc.args) from None
    if isinstance(exc, Full):
        raise QueueFull(*exc.args) from None
    raise QueueShutDown(*exc.args) from None


class AsyncQueueView(Sizes, Generic[T]):
    """A FIFO with :class:`asyncio.Queue`'s interface, over the queue ``name`` of ``mq``.

    Behaves as ``asyncio.Queue(maxsize)`` does (CPython's ``test_asyncio/test_queues.py``
    is the reference): ``await put``/``await get``, ``put_nowait``/``get_nowait``,
    ``qsize``/``empty``/``full``, ``task_done``/``join`` (counting the items put through
    this view, as :class:`~unidist_queue.QueueView` does), ``maxsize`` and Python 3.13's
    ``shutdown(immediate=False)``/``is_shutdown`` on every version. It raises
    ``QueueEmpty``, ``QueueFull`` and ``QueueShutDown`` of :mod:`unidist_queue.errors`:
    each is asyncio's class (``asyncio.QueueShutDown`` from 3.13) *and* this library's
    :class:`~unidist_queue.Empty`, :class:`~unidist_queue.Full`,
    :class:`~unidist_queue.ShutDown`.

    Unlike ``asyncio.Queue`` it is thread-safe and bound to no event loop: threads,
    coroutines of any number of loops, ``QueueView``\\ s and TaskHandler workers use the
    queue at once. Every wait is woken by the change that ends it, from any thread or
    loop: a waiter of the running loop synchronously (as in ``asyncio.Queue``: one
    ``await asyncio.sleep(0)`` later the woken call returns), one of another loop
    through ``call_soon_threadsafe``. Cancelling ``get`` or ``put`` never loses an item:
    nothing is taken or put for a cancelled call. No helper thread, no task per wake-up,
    nothing to close. ``qsize``/``full`` count the queue's ready messages, whoever added
    them. Items put here are messages of the queue (durable when it is).

    ``AsyncQueueView[T]`` subscripts at run time as ``asyncio.Queue[T]`` does
    (a :class:`types.GenericAlias`). Cost: ``put`` and ``get`` are O(1).
    """

    if not TYPE_CHECKING:
        __class_getitem__ = classmethod(GenericAlias)

    def __init__(self, core: ViewCore, name: str, maxsize: int = 0) -> None:
        if not isinstance(name, str):
            raise TypeError(f"queue must be a str, not {type(name).__name__}")
        self._core = core
        self.name = name
        self.maxsize: int = maxsize  # settable, as asyncio.Queue's (a float works too)
        self._mutex = core.mutex
        # items put here and not yet done, and the shut-down flag (under the mutex; shared
        # with the core's put fast path)
        self._tally = Tally()
        self._joiners = joiners()  # coroutines in join(): woken by task_done, _left, shutdown
        self._leave = self._left  # bound once (put's hot path)

    @property
    def is_shutdown(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._tally.shut_down

    # -- putting ---------------------------------------------------------------------------

    async def put(self, item: T) -> None:
        """Put ``item`` at the back, waiting for room while ``full()``. A cancelled ``put``
        puts nothing. Thread-safe.

        :raises QueueShutDown: the view was shut down or the MessageQueue closed.
        """
        if self._core.view_put_fast(self.name, item, self.maxsize, self._tally, self._leave):
            return
        try:
            await self._core.view_aput(self.name, item, self._room, self._is_shut_down, self._counted,
                                       self._leave)
        except (ShutDown, Full) as exc:
            _reraise(exc)

    def put_nowait(self, item: T) -> None:
        """Put ``item`` at the back now. O(1). Thread-safe; needs no running loop.

        :raises QueueFull: ``full()``.
        :raises QueueShutDown: the view was shut down or the MessageQueue closed.
        """
        if self._core.view_put_fast(self.name, item, self.maxsize, self._tally, self._leave):
            return
        try:
            self._core.view_put(self.name, item, False, None, self._room, self._is_shut_down, self._counted,
                                self._leave)
        except (ShutDown, Full) as exc:
            _reraise(exc)

    def _room(self) -> int:
        return self.maxsize

    def _counted(self) -> None:
        self._tally.unfinished += 1

    def _left(self) -> None:
        """Under the mutex (called by the core): an item put here left undelivered."""
        tally = self._tally
        if tally.unfinished > 0:
            tally.unfinished -= 1
            if not tally.unfinished:
                wake_every(self._joiners)

    def _is_shut_down(self) -> bool:
        return self._tally.shut_down

    # -- getting ---------------------------------------------------------------------------

    async def get(self) -> T:
        """Remove and return the oldest item, waiting while there is none. After
        :meth:`shutdown` the items left are still returned. A cancelled ``get`` takes
        nothing. Thread-safe.

        :raises QueueShutDown: the view is shut down and empty, or the MessageQueue closed.
        """
        item: T = self._core.view_get_fast(self.name)
        if item is not MISSING:
            return item
        try:
            taken = await self._core.await_take(self.name, None, None, 0, self._is_shut_down)
        except ShutDown as exc:
            _reraise(exc)
        item = taken[0][0][2]
        return item

    def get_nowait(self) -> T:
        """Remove and return the oldest item now. O(1). Thread-safe; needs no running loop.

        :raises QueueEmpty: nothing ready.
        :raises QueueShutDown: the view is shut down and empty, or the MessageQueue closed.
        """
        item: T = self._core.view_get_fast(self.name)
        if item is not MISSING:
            return item
        try:
            item = self._core.view_get(self.name, None, False, self._is_shut_down)
        except (ShutDown, Empty) as exc:
            _reraise(exc)
        return item

    # -- tasks -----------------------------------------------------------------------------

    def task_done(self) -> None:
        """Mark one item as processed, for :meth:`join`, as ``asyncio.Queue.task_done``
        (an item put here and taken by anyone, e.g. ``mq.get``, counts). O(1). Thread-safe.

        :raises ValueError: no item put through the view is pending.
        """
        tally = self._tally
        with self._mutex:
            if tally.unfinished <= 0:
                raise ValueError("task_done() called too many times")
            tally.unfinished -= 1
            if not tally.unfinished:
                wake_every(self._joiners)

    async def join(self) -> None:
        """Wait until each item put through the view was marked :meth:`task_done` or left
        the queue undelivered (evicted, expired, cleared, dropped, moved as dead, or
        removed by ``shutdown(immediate=True)``), as ``QueueView.join``. Thread-safe.
        """
        await self._core.view_ajoin(self.name, self._unfinished_tasks, self._joiners)

    def _unfinished_tasks(self) -> int:
        return self._tally.unfinished

    # -- shutting down -----------------------------------------------------------------------

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the view down, as Python 3.13's ``asyncio.Queue.shutdown`` (on every version).

        ``put`` raises ``QueueShutDown`` from now on; ``get`` returns what is left, then
        raises it. With ``immediate``, the ready items are removed now, each counting as
        done for :meth:`join`. Blocked callers wake. The MessageQueue stays open.
        """
        with self._mutex:
            self._tally.shut_down = True
        self._core.view_shutdown(self.name, immediate, self._removed)
        if immediate:
            with self._mutex:
                if not self._tally.unfinished:
                    wake_every(self._joiners)

    def _removed(self) -> None:
        if self._tally.unfinished > 0:
            self._tally.unfinished -= 1

    def __repr__(self) -> str:
        unfinished = self._tally.unfinished
        tasks = f" tasks={unfinished}" if unfinished else ""
        shut = " shutdown" if self._tally.shut_down else ""
        return f"<AsyncQueueView {self.name!r} maxsize={self.maxsize!r}{tasks}{shut}>"
