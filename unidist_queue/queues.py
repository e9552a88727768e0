"""MessageQueue: named message queues in memory, durable when given a persistent store.

A facade: the state and every change to it belong to one internal object, a
:class:`~unidist_queue._core.QueueCore` (one mutex, the queues, the ids, the store, the
subscribers). This class checks nothing itself and holds no state but that object: each
method is documented here and carried out there. See ``docs/architecture.rst``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional

from ._core import QueueCore
from ._corebase import Subscriber
from ._reserving import ReservingFacade
from .aview import AsyncQueueView
from .message import MISSING, Message, QueueStats
from .store.base import MemoryStore, Store
from .view import QueueView

__all__ = ["MessageQueue"]

_HOT = ("add", "oldest", "newest", "get", "count", "reserve", "ack", "nack")


class MessageQueue(ReservingFacade):
    """Named FIFO message queues with limits, delays, reservations and optional durability.

    ``MessageQueue(store=None, *, clock=time.time)``: ``store=None`` keeps everything in
    memory; a persistent store (``FileStore(path)``) makes every queue durable unless
    declared ``durable=False``, and its state is loaded here. ``clock`` stamps messages
    and drives ``max_age``, ``delay`` and ``lease``; blocking waits always measure their
    timeouts with :func:`time.monotonic`.

    Methods by purpose:

    * adding: :meth:`add`, :meth:`declare`, :meth:`subscribe`
    * taking: :meth:`oldest`, :meth:`newest`, :meth:`get`, :meth:`reserve`, :meth:`ack`,
      :meth:`nack`
    * looking: :meth:`count`, :meth:`exists`, :meth:`all`, :meth:`messages`,
      :meth:`queues`, :meth:`stats`
    * removing: :meth:`clear`, :meth:`drop`
    * asyncio: :meth:`aget`, :meth:`areserve`, :meth:`areserve_many`, :meth:`aview`
      (coroutines wait in the same waiting room as threads, on any number of loops)
    * the rest: :meth:`view`, :meth:`compact`, :meth:`close` (also a context manager)

    Thread-safety: every method may be called from any thread and is atomic; no two
    consumers ever receive the same message. After :meth:`close` every method but
    ``close`` raises :class:`ShutDown`. Costs: ``add``, ``oldest``, ``newest``, ``count``
    and ``exists`` are O(1) for queues without ``max_age`` (O(log n) with it); delayed
    messages and leases cost O(log n) and are promoted lazily, by the calls that read
    the queue: a ``MessageQueue`` starts no thread.

    Queue names are ``str``: any other name is a ``TypeError`` naming the argument, in
    every method that takes one (``subscribe``'s ``None``, meaning any queue, aside),
    also where an unknown queue would give ``0``, ``False``, ``[]`` or ``Empty``. It is
    looked at only when the name is not found, so it costs the hot paths nothing.

    :raises TypeError: ``store`` is not a :class:`Store` or ``clock`` is not callable.
    :raises StoreError: the store cannot be read.
    """


    def __init__(self, store: Optional[Store] = None, *, clock: Callable[[], float] = time.time) -> None:
        if store is None:
            store = MemoryStore()
        if not isinstance(store, Store):
            raise TypeError(f"store must be a unidist_queue.Store, not {type(store).__name__}")
        if not callable(clock):
            raise TypeError("clock must be callable")
        core = self._core = QueueCore(store, clock)
        # The hot methods skip the facade: bound straight to the core, which has the same
        # signatures and behaviour (a facade call cost ~20% of add+oldest in
        # benchmarks/bench_queue.py). A subclass that overrides one keeps its override.
        cls = type(self)
        for name in _HOT:
            if getattr(cls, name) is getattr(MessageQueue, name):
                object.__setattr__(self, name, getattr(core, name))

    def add(
        self, queue: str, message: Any, *, delay: Optional[float] = None, timeout: Optional[float] = None
    ) -> int:
        """Append ``message`` to ``queue`` (created with default options if unknown).

        Returns the message id: unique, increasing, never reused (also across restarts
        of a durable store). With ``delay`` (seconds) the message stays invisible until
        due, then joins the back of the queue. A delayed message is not ready, so it
        does not count toward ``maxlen`` and the overflow policy does not apply at the
        add (no eviction, no ``Full``, no wait); it applies when the message falls due:
        under ``"drop_oldest"`` the oldest ready messages are evicted to keep at most
        ``maxlen``; under ``"reject"`` and ``"block"`` it joins all the same (there is no
        caller left to refuse or hold) and the excess stays until consumed.
        ``timeout`` bounds the wait for room
        under ``overflow="block"`` (``None``: wait as long as it takes). For a durable
        queue the message is in the archive before ``add`` returns. Subscribers run in
        this thread, after the message is visible and before ``add`` returns (for a
        delayed message: at the add).

        Cost: O(1) (O(log n) with ``delay`` or ``max_age``). Thread-safe.

        :raises Full: the queue is full and its overflow is ``"reject"``, or ``"block"``
            and ``timeout`` passed.
        :raises SerializationError: the queue is durable and ``message`` cannot be
            serialized; nothing was stored.
        :raises StoreError: the store could not record it; nothing changed.
        :raises ValueError: ``delay`` or ``timeout`` is negative.
        :raises ShutDown: the MessageQueue is closed (also while waiting for room).
        """
        return self._core.add(queue, message, delay=delay, timeout=timeout)

    def add_many(
        self, queue: str, messages: Iterable[Any], *, delay: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> List[int]:
        """Append every message of ``messages``, in order, as one atomic step; return their ids.

        No other call sees part of the batch; a durable queue records it with one
        archive write. Overflow applies to the batch: ``"drop_oldest"`` evicts what it
        must (of a batch longer than ``maxlen`` the last ``maxlen`` stay), ``"reject"``
        raises :class:`Full` and adds none unless all fit, ``"block"`` waits for room
        for all. With ``delay`` every message is delayed (overflow applies when they
        fall due, as for :meth:`add`). Subscribers hear of the batch once. An empty
        batch changes nothing and returns ``[]``.

        Cost: O(k) for k messages, plus their serialization for a durable queue.
        Thread-safe.

        :raises Full: ``"reject"`` and the batch does not fit, or ``"block"`` and
            ``timeout`` passed.
        :raises ValueError: ``"block"`` and a batch longer than ``maxlen``, or a
            negative ``delay`` or ``timeout``.
        :raises SerializationError: a message cannot be serialized; nothing was stored.
        :raises StoreError: the store could not record it; nothing changed.
        :raises ShutDown: the MessageQueue is closed (also while waiting for room).
        """
        return self._core.add_many(queue, messages, delay=delay, timeout=timeout)

    def declare(
        self,
        queue: str,
        *,
        maxlen: Optional[int] = MISSING,
        max_age: Optional[float] = MISSING,
        overflow: str = MISSING,
        durable: Optional[bool] = None,
        max_attempts: Optional[int] = MISSING,
        dead_letter: Optional[str] = MISSING,
    ) -> None:
        """Create ``queue`` or change its options; options not passed keep their value.

        A new queue starts with ``maxlen=None`` (unbounded), ``max_age=None``,
        ``overflow="drop_oldest"``. ``maxlen``: at most that many *ready* messages; when
        full, ``overflow`` decides: ``"drop_oldest"`` evicts the oldest, ``"reject"``
        makes ``add`` raise :class:`Full`, ``"block"`` makes ``add`` wait for room (both
        need a ``maxlen``). A smaller ``maxlen`` evicts at once under ``"drop_oldest"``;
        otherwise the excess stays until consumed (messages returning by ``nack`` or a
        lease, delayed or not, never overflow either; for a delayed add, see
        :meth:`add`). ``max_age`` (seconds): older messages are expired, never returned.
        ``durable=None`` follows the store; the durability of an existing queue cannot
        change. ``max_attempts``: a message whose reservation ends unacked (``nack``,
        lease, restart) after that many reservations leaves (no nack ``delay``; an
        expired one expires): to ``dead_letter`` (same body, a new id, as an add there,
        under its overflow; ``block`` lets it join) or nowhere; counted in
        ``stats().dead``, logged at WARNING (ERROR if ``reject`` refuses it). One
        recorded change, replayed once (see ``unidist_queue._dead``).

        Cost: O(1), plus O(k) for k evictions. Thread-safe.

        :raises ValueError: ``maxlen`` < 1, ``max_age`` <= 0, an unknown ``overflow``,
            ``"reject"``/``"block"`` without a ``maxlen`` (passing only ``overflow`` to
            a queue without one, or ``maxlen=None`` to a queue with one of them),
            ``durable=True`` without a persistent store, a durability change,
            ``max_attempts`` < 1, or ``dead_letter`` naming ``queue`` itself.
        :raises TypeError: an argument of the wrong type.
        """
        return self._core.declare(queue, maxlen=maxlen, max_age=max_age, overflow=overflow, durable=durable,
                                  max_attempts=max_attempts, dead_letter=dead_letter)

    def subscribe(self, queue: Optional[str], callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(queue_name)`` after every add to ``queue`` (``None``: any queue).

        The callback runs synchronously in the adding thread, outside every lock, once
        the message is visible and before ``add`` returns. A raising callback is logged
        at ERROR with its traceback; it never breaks ``add``. Returns a function that
        unsubscribes (calling it twice does nothing). Cost: O(s) for s subscribers.
        Thread-safe.

        :raises TypeError: ``callback`` is not callable, or ``queue`` is neither a str nor None.
        """
        return self._core.subscribe(queue, callback)

    def oldest(self, queue: str, *, remove: bool = True, default: Any = MISSING) -> Any:
        """The oldest ready message's body, removed unless ``remove=False``.

        Cost: O(1) (O(log n) with ``max_age``, delays or leases pending). Thread-safe.

        :raises Empty: nothing ready (or the queue is unknown) and no ``default`` given.
        :raises ShutDown: the MessageQueue is closed.
        """
        return self._core.oldest(queue, remove=remove, default=default)

    def newest(self, queue: str, *, remove: bool = True, default: Any = MISSING) -> Any:
        """The newest ready message's body, removed unless ``remove=False``.

        Cost: O(1) (O(log n) with ``max_age``, delays or leases pending). Thread-safe.

        :raises Empty: nothing ready (or the queue is unknown) and no ``default`` given.
        :raises ShutDown: the MessageQueue is closed.
        """
        return self._core.newest(queue, remove=remove, default=default)

    def get(self, queue: str, *, timeout: Optional[float] = None) -> Any:
        """Wait for the oldest ready message of ``queue``, remove it and return its body.

        Waits while the queue is empty or unknown; wakes when a message is added, or a
        delayed one falls due. ``timeout=None`` waits as long as it takes.

        Cost: O(1) per message. Thread-safe.

        :raises Empty: ``timeout`` passed with nothing ready.
        :raises ValueError: ``timeout`` is negative.
        :raises ShutDown: the MessageQueue was closed (also while waiting).
        """
        return self._core.get(queue, timeout=timeout)

    def next_due(self, queue: str) -> Optional[float]:
        """Clock time of ``queue``'s next timed change (a delayed message due, a lease
        ending, an expiry), or ``None`` (none, or an unknown queue).

        Due changes are applied first, so the answer is in the future (or ``None``).
        A subscriber uses it to know when to look again. O(1). Thread-safe.
        """
        return self._core.next_due(queue)

    def count(self, queue: str) -> int:
        """Ready messages in ``queue`` (not delayed, not reserved); 0 for an unknown queue.

        A snapshot: may be stale as soon as it returns. O(1). Thread-safe.

        :raises TypeError: ``queue`` is not a str (not 0: see the class docstring).
        """
        return self._core.count(queue)

    def exists(self, queue: str) -> bool:
        """Whether ``queue`` was declared or added to, and not dropped. O(1). Thread-safe.

        :raises TypeError: ``queue`` is not a str (not False: see the class docstring).
        """
        return self._core.exists(queue)

    def all(self, queue: str) -> List[Any]:
        """A copy of the ready bodies, oldest first; ``[]`` for an unknown queue. O(n)."""
        return self._core.all(queue)

    def messages(self, queue: str) -> List[Message]:
        """The ready messages as :class:`Message` envelopes, oldest first. O(n)."""
        return self._core.messages(queue)

    def queues(self) -> List[str]:
        """Names of the existing queues, sorted. O(q log q) for q queues. Thread-safe."""
        return self._core.queues()

    def stats(self, queue: str) -> QueueStats:
        """A :class:`QueueStats` snapshot of ``queue`` (all zero for an unknown queue). O(1)."""
        return self._core.stats(queue)

    def clear(self, queue: str) -> int:
        """Remove every message of ``queue`` (ready, delayed, reserved); return how many.

        Outstanding reservations become unknown: acking them raises ``ValueError``.
        O(n). Thread-safe.
        """
        return self._core.clear(queue)

    def drop(self, queue: str) -> bool:
        """Remove ``queue`` itself with its messages; ``False`` if it did not exist. O(1).

        Threads waiting on the queue keep waiting, on a queue of that name created
        afresh by the next add. Thread-safe.
        """
        return self._core.drop(queue)

    def view(self, queue: str, maxsize: int = 0) -> QueueView[Any]:
        """A :class:`QueueView` with :class:`queue.Queue`'s interface over ``queue``.

        ``maxsize`` bounds the view's ``put`` as in ``queue.Queue`` (0: unbounded),
        apart from :meth:`declare`'s options. O(1). Thread-safe.

        :raises ShutDown: the MessageQueue is closed.
        :raises TypeError: ``queue`` is not a str.
        """
        self._core.check_open()
        return QueueView(self._core, queue, maxsize)

    def aview(self, queue: str, maxsize: int = 0) -> AsyncQueueView[Any]:
        """An :class:`AsyncQueueView` with :class:`asyncio.Queue`'s interface over ``queue``:
        thread-safe and bound to no event loop. O(1). Thread-safe.

        :raises ShutDown: the MessageQueue is closed.
        :raises TypeError: ``queue`` is not a str.
        """
        self._core.check_open()
        return AsyncQueueView(self._core, queue, maxsize)

    async def aget(self, queue: str, *, timeout: Optional[float] = None) -> Any:
        """Await the oldest ready message of ``queue``, remove it and return its body.

        :meth:`get` for coroutines: the coroutine waits in the queue's waiting room
        (threads and other loops may add: it wakes for every way a message becomes
        ready, timed ones included), no thread is blocked. Cancelling it never loses a
        message: nothing is taken for a cancelled call. O(1). Thread-safe.

        :raises Empty: ``timeout`` passed with nothing ready.
        :raises ValueError: ``timeout`` is negative.
        :raises ShutDown: the MessageQueue was closed (also while waiting).
        """
        return await self._core.aget(queue, timeout=timeout)

    def compact(self) -> None:
        """Write a snapshot now and shorten the archive (a no-op in memory).

        Other threads are held up only while the state is copied in memory (O(n));
        serializing and writing happen outside the lock. Thread-safe; concurrent calls
        run one after the other.

        :raises StoreError: the snapshot could not be written (nothing is lost).
        :raises ShutDown: the MessageQueue is closed.
        """
        self._core.compact()

    def close(self) -> None:
        """Flush and release the store; wake blocked callers with ``ShutDown``. Idempotent.

        Thread-safe. Waits for a snapshot in progress to finish.
        """
        self._core.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._core.closed

    @property
    def store(self) -> Store:
        """The store this MessageQueue keeps its durable queues in (a ``MemoryStore`` if none)."""
        return self._core.store

    def __enter__(self) -> MessageQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MessageQueue {self._core.describe()}>"


if TYPE_CHECKING:
    from .api import QueueAPI

    def _implements_the_protocol(mq: MessageQueue) -> QueueAPI:
        """For mypy: MessageQueue implements QueueAPI, signatures included."""
        return mq
