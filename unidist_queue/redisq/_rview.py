"""The view core of a RedisMessageQueue: what its QueueView and AsyncQueueView call (internal).

:class:`RedisViewCore` implements :class:`~unidist_queue._viewcore.ViewCore` over the
public methods of one :class:`~unidist_queue.RedisMessageQueue` and the package methods
it offers (``changes``, ``generation``, ``wait_change``, ``await_change``, ``ring``,
``take_waiting``, ``atake_waiting``, ``view_add``, ``view_states``, ``on_change``,
``take_now``). The views' own state (unfinished items, the shut down flag) stays in the
views, under :attr:`RedisViewCore.mutex`, a lock of this client.

``join`` (DESIGN 3, view) over Redis: an item put through a view is marked in Redis
(the queue's ``viewed`` HASH: id -> this client's origin); every script that makes a
marked message leave undelivered (evicted by ``maxlen``, expired, cleared, dropped,
dead past ``max_attempts``) records it in the putting client's *gone record* (a ZSET
``gone:<origin>``, bounded: see :data:`~._prelude.GONE_HORIZON`,
:data:`~._prelude.GONE_MAX`), and a script of this client also returns them in its reply
(:meth:`RedisViewCore.left_undelivered`: the view counts them at once, so
``unfinished_tasks`` is exact after the call that evicted). Taking a message for good
(a remove or an ack) unmarks it (a message put back after a failed body check is
no longer marked: it counts as delivered). This core remembers the ids its views put (``_put``:
id -> the queue and the putting view's ``left``) and, when a view joins, asks Redis in
one round trip what became of them (:meth:`ViewingMixin.view_states`): a gone one is
counted as done for its view, a delivered one is forgotten (it waits for its
``task_done``). A joiner waits for a change of the queue (the doorbell's hook: any
client's notification), for ``task_done``, or for the queue's next timed change (an
expiry falls due lazily: the look-up applies it), then looks again. Ids counted from a
reply are taken out of the gone record by the next view put or look-up; the remembered
ids are pruned by a look-up once they double (amortized O(1) per put).

Differences from the in-memory core, written in the views' docs too:

* ``maxsize`` is checked by this client before it adds (``count`` then ``add``): puts
  made at the same moment by other clients may pass it by as many items as they are.
* An item that leaves undelivered by another client's call is counted when a view of
  this client joins (its record is kept :data:`~._prelude.GONE_HORIZON` seconds).
* No fast paths: every put and get is one script call (one round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Protocol, Sequence, Tuple

from .._awaiting import Waiter, sleep_on, unpark, wake_every
from .._viewcore import Tally
from ..errors import Full, ShutDown, StoreError
from ..message import MISSING, Message

__all__ = ["RedisViewCore"]

PRUNE = 1024  # remembered ids before the first look-up that forgets the delivered ones

Stop = Optional[Callable[[], bool]]
Left = Callable[[], None]


class ViewedQueue(Protocol):
    """What the view core uses of its RedisMessageQueue (public and package methods)."""

    def view_add(self, queue: str, message: Any, counted: List[int]) -> int: ...
    def view_states(self, queue: str, items: Sequence[Tuple[str, int]], counted: Sequence[int]
                    ) -> Tuple[List[int], Optional[float]]: ...
    def on_change(self, callback: Callable[[Optional[str]], None]) -> None: ...
    def take_now(self, queue: str) -> Optional[Message]: ...
    def count(self, queue: str) -> int: ...
    def changes(self, queue: str) -> int: ...
    def generation(self, queue: str) -> int: ...
    def wait_change(self, queue: str, generation: int, timeout: Optional[float]) -> bool: ...
    async def await_change(self, queue: str, generation: int, timeout: Optional[float]) -> bool: ...
    def ring(self, queue: str) -> None: ...
    def take_waiting(self, queue: str, timeout: Optional[float], stop: Stop) -> object: ...
    async def atake_waiting(self, queue: str, timeout: Optional[float], stop: Stop) -> object: ...


class RedisViewCore:
    """The views' core over one RedisMessageQueue (see the module). Thread-safe."""

    def __init__(self, mq: ViewedQueue) -> None:
        self._mq = mq
        # Guards the views' counters and the fields below. Conditions on it: each
        # QueueView's all_tasks_done (notified by its task_done, by its _left/_removed
        # through this core, by its shutdown, and by _changed for a joiner); async joiners
        # park Waiters under it (woken by task_done, _left and _changed).
        self._mutex = threading.RLock()
        self._put: Dict[int, Tuple[str, Left]] = {}  # ids put by the views, maybe not delivered
        self._counted: List[int] = []  # counted from a reply, still in the gone record
        self._prune_at = PRUNE
        self._joiners: Dict[str, Dict[object, Callable[[], None]]] = {}  # queue -> wakers
        self._hooked = False

    @property
    def mutex(self) -> Any:
        """The lock of the views' counters (a lock of this client, not of Redis)."""
        return self._mutex

    def count(self, queue: str) -> int:
        """Ready messages of ``queue`` (one round trip)."""
        return self._mq.count(queue)

    # -- items that left undelivered ---------------------------------------------------------

    def left_undelivered(self, ids: List[int]) -> None:
        """Messages this client's views put left undelivered (reported by a script of this
        client): each counts as done for the view that put it. O(len(ids)). Thread-safe."""
        with self._mutex:
            for msg_id in ids:
                entry = self._put.pop(msg_id, None)
                if entry is not None:  # (else not yet remembered: a look-up finds it)
                    self._counted.append(msg_id)
                    entry[1]()

    def _look(self, name: str) -> Optional[float]:
        """Count the items put through views that left ``name`` (every queue if ``""``)
        undelivered, forget the delivered ones; the seconds until the queue's next timed
        change (``None``: none). One round trip; O(n) for n remembered ids.

        :raises ShutDown: closed. :raises StoreError: Redis failed.
        """
        with self._mutex:
            items = [(q, i) for i, (q, _) in self._put.items() if not name or q == name]
            counted, self._counted = self._counted, []
        try:
            states, wait = self._mq.view_states(name, items, counted)
        except BaseException:
            with self._mutex:
                self._counted.extend(counted)
            raise
        with self._mutex:
            for (_, msg_id), state in zip(items, states, strict=True):
                if state != 1:
                    entry = self._put.pop(msg_id, None)
                    if entry is not None and state == 2:
                        entry[1]()
        return wait

    def _changed(self, queue: Optional[str]) -> None:
        """The doorbell's hook: ``queue`` (``None``: any) may have changed; wake its joiners."""
        with self._mutex:
            if queue is None:
                wakers = [w for found in self._joiners.values() for w in found.values()]
            else:
                wakers = list(self._joiners.get(queue, {}).values())
            for wake in wakers:
                wake()

    def _joining(self, name: str) -> None:
        """Before a join looks: hook the doorbell (once) and watch ``name``."""
        if not self._hooked:
            self._mq.on_change(self._changed)
            self._hooked = True
        self._mq.changes(name)

    # -- putting -----------------------------------------------------------------------------

    def _room_now(self, name: str, room: Callable[[], int], stopped: Callable[[], bool]) -> bool:
        """Whether a put may add now; ``ShutDown`` if the view is shut down."""
        with self._mutex:
            if stopped():
                raise ShutDown("the view is shut down")
            limit = room()
        return limit <= 0 or self._mq.count(name) < limit

    def _add(self, name: str, item: Any, counted: Callable[[], None], left: Left) -> None:
        """Add ``item``, counted for ``join`` first (a fast taker may mark it done at once),
        then remembered with the view's ``left``; every so often, forget the delivered
        ones (one more round trip, amortized O(1) per put)."""
        with self._mutex:
            counted()
            done, self._counted = self._counted, []
        try:
            msg_id = self._mq.view_add(name, item, done)
        except BaseException:
            with self._mutex:
                self._counted.extend(done)
                left()  # not added after all
            raise
        with self._mutex:
            self._put[msg_id] = (name, left)
            prune = len(self._put) >= self._prune_at
        if prune:
            with contextlib.suppress(StoreError, ShutDown):  # added: the next prune looks again
                self._look("")
            with self._mutex:
                self._prune_at = max(PRUNE, 2 * len(self._put))

    def view_put(
        self, name: str, item: Any, block: bool, deadline: Optional[float], room: Callable[[], int],
        stopped: Callable[[], bool], counted: Callable[[], None], left: Callable[[], None],
    ) -> None:
        """Add ``item`` once fewer than ``room()`` are ready (0: no bound), waiting for a
        change of the queue (a take anywhere wakes it) unless not ``block``.

        :raises Full: no room and not ``block``, or ``deadline`` passed.
        :raises ShutDown: the view was shut down, or the RedisMessageQueue closed.
        """
        while True:
            generation = self._mq.changes(name)
            if self._room_now(name, room, stopped):
                self._add(name, item, counted, left)
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if not block or (remaining is not None and remaining <= 0):
                raise Full(f"queue {name!r} is full for this view")
            self._mq.wait_change(name, generation, remaining)

    def view_put_fast(self, name: str, item: Any, limit: int, tally: Tally, left: Callable[[], None]) -> bool:
        """No fast path over Redis: always ``False`` (the caller takes the general path)."""
        return False

    async def view_aput(
        self, name: str, item: Any, room: Callable[[], int], stopped: Callable[[], bool],
        counted: Callable[[], None], left: Callable[[], None],
    ) -> None:
        """:meth:`view_put` for coroutines, awaiting room; a cancelled call puts nothing."""
        while True:
            generation = self._mq.changes(name)
            if self._room_now(name, room, stopped):
                self._add(name, item, counted, left)
                return
            await self._mq.await_change(name, generation, None)

    # -- getting -----------------------------------------------------------------------------

    def view_get(self, name: str, timeout: Optional[float], block: bool, stopped: Callable[[], bool]) -> Any:
        """Take the oldest ready body, waiting (bounded by ``timeout``) unless not ``block``.

        :raises Empty: nothing ready and not ``block``, or ``timeout`` passed.
        :raises ShutDown: ``stopped()`` with nothing ready, or the RedisMessageQueue closed.
        """
        return self._mq.take_waiting(name, timeout if block else 0, stopped)

    def view_get_fast(self, name: str) -> Any:
        """No fast path over Redis: always :data:`~unidist_queue.message.MISSING`."""
        return MISSING

    async def await_take(
        self, queue: str, timeout: Optional[float], lease: Optional[float], n: int,
        stop: Optional[Callable[[], bool]],
    ) -> List[Tuple[Any, int]]:
        """Await the oldest ready body and take it (``n`` = 0, all a view asks for):
        ``[((0, 0.0, body), 0)]``. A cancelled call takes nothing."""
        body = await self._mq.atake_waiting(queue, timeout, stop)
        return [((0, 0.0, body), 0)]

    # -- joining and shutting down ---------------------------------------------------------------

    def view_join(self, name: str, unfinished: Callable[[], int], done: threading.Condition) -> None:
        """Wait until ``unfinished()`` is 0: woken on ``done`` by ``task_done`` and by the
        views' items leaving through this client, by any client's change of ``name`` (then
        it looks in Redis again: :meth:`_look`), and at the queue's next timed change.
        Closed, it only waits for ``task_done``.

        :raises StoreError: Redis failed while looking.
        """
        with done:
            if not unfinished():
                return  # (no round trip)
        token = object()
        try:
            while True:
                try:
                    self._joining(name)
                    generation = self._mq.generation(name)
                    wait = self._look(name)
                except ShutDown:
                    break
                with done:
                    if not unfinished():
                        return
                    if self._mq.generation(name) != generation:
                        continue  # changed meanwhile (its hook may have run already)
                    self._joiners.setdefault(name, {})[token] = done.notify_all
                    done.wait(wait)
        finally:
            with self._mutex:
                self._unjoin(name, token)
        with done:
            while unfinished():
                done.wait()

    def _unjoin(self, name: str, token: object) -> None:
        """With the mutex held: the joiner ``token`` of ``name`` waits no longer."""
        found = self._joiners.get(name)
        if found is not None and found.pop(token, None) is not None and not found:
            del self._joiners[name]

    async def view_ajoin(self, name: str, unfinished: Callable[[], int], room: Deque[Waiter]) -> None:
        """:meth:`view_join` for coroutines, parked in ``room`` (woken by the view, and by
        the hook through it). Each look is one synchronous round trip on the loop's thread."""
        with self._mutex:
            if not unfinished():
                return  # (no round trip)
        token, closed = object(), False
        while True:
            try:
                if not closed:
                    self._joining(name)
                    generation = self._mq.generation(name)
                    wait = self._look(name)
            except ShutDown:
                closed, wait = True, None
            with self._mutex:
                if not unfinished():
                    return
                if not closed and self._mq.generation(name) != generation:
                    continue
                waiter = Waiter(asyncio.get_running_loop())
                waiter.park(room)
                if not closed:
                    self._joiners.setdefault(name, {})[token] = lambda: wake_every(room)
            try:
                await sleep_on(waiter, wait)
            finally:
                with self._mutex:
                    unpark(room, waiter)
                    self._unjoin(name, token)

    def view_shutdown(self, name: str, immediate: bool, removed: Callable[[], None]) -> None:
        """Wake this client's waiters on ``name``; with ``immediate`` first take every
        ready message, each counted as done for the view of this client that put it, if
        one did, else ``removed()`` (the shutting down view's count), as in memory."""
        while immediate:
            try:
                msg = self._mq.take_now(name)
            except ShutDown:
                break
            if msg is None:
                break
            with self._mutex:
                entry = self._put.pop(msg.id, None)
                (removed if entry is None else entry[1])()
        self._mq.ring(name)
