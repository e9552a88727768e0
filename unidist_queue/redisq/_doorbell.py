"""The doorbell: one client's notifier of changes to Redis queues (internal).

A :class:`Doorbell` keeps a *generation* per queue: a number that changes whenever the
queue may have changed in a way a blocked caller waits for: on a PUBLISH on the queue's
channel (any client's, this one's included: a script's promotions are announced by the
server only), on :meth:`Doorbell.ring` (a change made here), and for every queue at
once when the pub/sub connection was lost. A blocked caller reads the generation, runs
its script, and if it found nothing waits until the generation changes, bounded by the
next timed change. One pub/sub connection and one notifier thread (started on the first
``watch`` or ``listen``; :mod:`._notifier`) serve every waiter of the client.

Threads wait on a Condition per queue; coroutines park a :class:`~.._awaiting.Waiter`
(a future of their own loop) per queue: a change wakes them all, so a cancelled waiter
owes no wake-up to another. ``SUBSCRIBE`` for a new queue is sent by the caller of
``watch`` (the notifier would only send it after its next read) and confirmed to it by
the notifier. Locking as CPython's ``queue.py``: one mutex, named Conditions (each
with a comment saying who notifies it, in :class:`._notifier.Notifying`).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Callable, Optional

from .._awaiting import Waiter, sleep_on
from .._util import check_seconds, deadline_of, remaining
from ..errors import ShutDown, StoreError
from ._notifier import POLL, Key, Listener, Notifying

if TYPE_CHECKING:  # importing unidist_queue never imports redis
    from redis.client import PubSub

__all__ = ["Doorbell"]


def _glob_escape(text: str) -> str:
    """``text`` with Redis glob's special characters escaped (for PSUBSCRIBE)."""
    return "".join("\\" + ch if ch in "*?[]\\^" else ch for ch in text)


class Doorbell(Notifying):
    """Per-queue generations, woken by Redis pub/sub and by local changes.

    ``pubsub_factory()`` makes a new :class:`redis.client.PubSub` (for example
    ``client.pubsub``); it is called once per connection (the first on the first
    ``watch`` or ``listen``, then after each lost one). Its client's retries are not
    needed (the doorbell connects again itself) but do no harm; redis-py's health
    checks, if on, run only when a notification is read, never while idle.
    ``channel_of(queue)`` names a queue's channel and must be a fixed prefix followed
    by the queue's name (``listen(None, ...)`` subscribes to that prefix's pattern).
    ``origin`` identifies this client: its scripts publish ``origin:kind`` (kind 1:
    messages became ready, 2: messages left, 3: a timed change may come sooner).
    Waiters are woken by every notification; listeners only by kind 1 from another
    client (a script's promotions are announced by the server only).

    Cost: one pub/sub connection and one daemon thread, made on first use, whatever
    the number of queues and waiters; an idle doorbell sends the server nothing.

    :raises ValueError: ``channel_of`` is not a prefix followed by the queue's name.
    :raises TypeError: ``origin`` is not bytes.

    Thread-safe: every method may be called from any thread and (``await_change``) any
    event loop. Listener callbacks run in the notifier thread; there, ``watch`` and
    ``listen`` do not wait for the server's confirmation, and ``wait`` is woken only by
    local changes and timeouts until the callback returns.
    """

    def __init__(self, pubsub_factory: Callable[[], PubSub], channel_of: Callable[[str], str],
                 origin: bytes) -> None:
        if not isinstance(origin, bytes):
            raise TypeError(f"origin must be bytes, not {type(origin).__name__}")
        prefix = channel_of("")
        if channel_of("q") != prefix + "q":
            raise ValueError("channel_of must return a fixed prefix followed by the queue name")
        super().__init__(pubsub_factory, prefix, origin)
        self._channel_of = channel_of
        self._pattern = _glob_escape(prefix) + "*"

    # -- generations and waiting -------------------------------------------------------

    def generation(self, queue: str) -> int:
        """The generation of ``queue``: it changes whenever the queue may have changed.

        O(1). Thread-safe.
        """
        with self._mutex:
            return self._gens.get(queue, 0) + self._epoch

    def wait(self, queue: str, generation: int, timeout: Optional[float]) -> bool:
        """Block until ``generation(queue) != generation``: ``True``; ``False`` on timeout.

        ``timeout`` in seconds, ``None`` for no bound. Call :meth:`watch` first to hear
        of other clients' changes.

        :raises ValueError: ``timeout`` is negative or NaN (``TypeError``: not a number).
        :raises ShutDown: the doorbell is (or gets) closed.

        O(1) per wake-up. Thread-safe.
        """
        deadline = deadline_of(timeout)
        with self._mutex:
            changed = self._changed.get(queue)
            if changed is None:
                changed = self._changed[queue] = threading.Condition(self._mutex)
            while True:
                if self._closed:
                    raise ShutDown("the doorbell is closed")
                if self._gens.get(queue, 0) + self._epoch != generation:
                    return True
                left = remaining(deadline)
                if left is not None and left <= 0:
                    return False
                self._sleeping[queue] = self._sleeping.get(queue, 0) + 1
                try:
                    changed.wait(left)
                finally:
                    self._sleeping[queue] -= 1

    def waiting(self, queue: str) -> int:
        """How many threads and coroutines wait now for a change of ``queue``. O(1).
        Thread-safe. For tests and monitoring: it may change at once."""
        with self._mutex:
            return self._sleeping.get(queue, 0) + len(self._rooms.get(queue, ()))

    async def await_change(self, queue: str, generation: int, timeout: Optional[float]) -> bool:
        """:meth:`wait` for a coroutine: parks a future of the running loop, no task or thread.

        Woken synchronously by :meth:`ring` called in this loop's thread, through
        ``call_soon_threadsafe`` from any other thread. Cancel-safe: a cancelled call
        leaves no waiter behind (every waiter of a queue is woken by a change, so no
        wake-up is ever owed to another).

        :raises ValueError: ``timeout`` is negative or NaN (``TypeError``: not a number).
        :raises ShutDown: the doorbell is (or gets) closed.

        O(1) to park, O(w) for w parked coroutines of the queue to be cancelled.
        Thread-safe; any event loop.
        """
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        waiter = Waiter(asyncio.get_running_loop())
        with self._mutex:
            if self._closed:
                raise ShutDown("the doorbell is closed")
            if self._gens.get(queue, 0) + self._epoch != generation:
                return True
            if timeout == 0:
                return False
            room = self._rooms.get(queue)
            if room is None:
                room = self._rooms[queue] = waiter.park(None)
            else:
                waiter.park(room)
        try:
            await sleep_on(waiter, timeout)
        finally:
            with self._mutex:
                room.remove(waiter)  # a broadcast leaves waiters parked: each leaves by itself
                if not room and self._rooms.get(queue) is room:
                    del self._rooms[queue]
        with self._mutex:
            if self._closed:
                raise ShutDown("the doorbell is closed")
            return self._gens.get(queue, 0) + self._epoch != generation

    def ring(self, queue: str) -> None:
        """A change made by this client: change ``queue``'s generation and wake its waiters.

        No round trip; listeners are not called (the queue tells its own subscribers).
        A coroutine of the calling thread's loop is woken synchronously. After
        :meth:`close` it only changes the generation.

        O(w) for w waiters of the queue. Thread-safe.
        """
        with self._mutex:
            self._bump(queue)

    def on_change(self, hook: Callable[[Optional[str]], None]) -> None:
        """Call ``hook(queue)`` after every notification of a watched queue (any kind, any
        client's), and ``hook(None)`` whenever notifications may have been missed (the
        connection lost, or subscribed again after a loss) and at :meth:`close`: in the
        notifier thread (at close, in the closing one), with no lock held; an exception it
        raises is logged. One hook per doorbell: a new one replaces it. O(1). Thread-safe.
        """
        with self._mutex:
            self._hook = hook

    # -- subscriptions -----------------------------------------------------------------

    def watch(self, queue: str) -> None:
        """Subscribe to ``queue``'s notifications; return once the server confirmed.

        A notification published after ``watch`` returns changes the generation (unless
        the connection is lost, which changes every generation). The subscription
        stays until :meth:`close`; watching again costs a dict lookup. Starts the
        notifier on first use.

        :raises ShutDown: the doorbell is closed.
        :raises StoreError: the notifier's next attempt to connect failed
            (``__cause__``: redis-py's error); attempts go on, at most
            :data:`~._notifier.BACKOFF_MAX` seconds apart, so a later call may succeed.

        O(1) plus, the first time, one round trip. Thread-safe.
        """
        self._subscribe(("c", self._channel_of(queue)))

    def listen(self, queue: Optional[str], callback: Listener) -> Callable[[], None]:
        """Call ``callback(queue)`` for every notification of ``queue`` from another client
        that messages became ready (payload ``origin:1``; takes and timed changes are not
        told).

        ``queue=None``: every queue (through PSUBSCRIBE on the channels' prefix).
        Called in the notifier thread, in the order notifications arrive (they may be
        merged, and are lost while disconnected); an exception it raises is logged at
        ERROR with its traceback. Returns an unsubscriber (idempotent); the server
        subscription stays until :meth:`close`. Subscribed, as :meth:`watch`, before
        it returns.

        :raises ShutDown: the doorbell is closed.
        :raises StoreError: connecting failed (see :meth:`watch`).

        O(1) plus, the first time, one round trip. Thread-safe.
        """
        token = object()
        with self._mutex:
            if self._closed:
                raise ShutDown("the doorbell is closed")
            self._listeners.setdefault(queue, {})[token] = callback

        def unsubscribe() -> None:
            with self._mutex:
                found = self._listeners.get(queue, {})
                found.pop(token, None)
                if not found:
                    self._listeners.pop(queue, None)

        try:
            self._subscribe(("p", self._pattern) if queue is None else ("c", self._channel_of(queue)))
        except BaseException:
            unsubscribe()
            raise
        return unsubscribe

    def _subscribe(self, key: Key) -> None:
        """Want ``key``; send it on the current connection; wait for its confirmation."""
        with self._mutex:
            if self._closed:
                raise ShutDown("the doorbell is closed")
            if key in self._confirmed:
                return
            self._wanted.add(key)
            self._start()
            ps = self._ps
            send = ps is not None and key not in self._sent
            if send:
                self._sent.add(key)
            failures = self._failures
        if ps is not None and send:
            self._send(ps, [key])
        if threading.current_thread() is self._thread:
            return  # a listener: the notifier reads the confirmation after it returns
        with self._mutex:
            while key not in self._confirmed:
                if self._closed:
                    raise ShutDown("the doorbell is closed")
                if self._failures != failures:
                    raise StoreError(f"cannot subscribe to {key[1]!r}: {self._error}") from self._error
                self._subscribed.wait()

    # -- closing -----------------------------------------------------------------------

    def close(self) -> None:
        """Wake every waiter (they raise :class:`ShutDown`), stop the notifier, disconnect.

        The notifier notices within :data:`POLL` seconds (longer only while it is
        connecting) and close waits for it, up to about a second; called from a listener
        it does not wait. Idempotent.

        O(w) for w waiters. Thread-safe.
        """
        with self._mutex:
            closing = not self._closed
            if closing:
                self._closed = True
                self._bump_all()
                self._subscribed.notify_all()
                self._retry.notify_all()
            thread = self._thread
        if closing:
            self._tell_hook(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(2 * POLL + 0.5)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called. O(1). Thread-safe."""
        return self._closed
