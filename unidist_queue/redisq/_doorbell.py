"""The doorbell: one client's notifier of changes to Redis queues (internal).

A :class:`Doorbell` keeps a *generation* per queue: a number that changes whenever
someone may have made a change a blocked caller waits for. It changes on a PUBLISH
on the queue's channel (any client's, this one's included: a script's promotions are
announced by the server only), on :meth:`Doorbell.ring` (a change made here), and for
every queue at once when the pub/sub connection was lost (notifications may have been
missed: correctness never depends on one, latency does). A blocked caller reads the
generation, runs its script, and if it found nothing waits until the generation
changes, bounded by the next timed change.

One pub/sub connection and one notifier thread (a daemon thread, started on the first
:meth:`Doorbell.watch` or :meth:`Doorbell.listen`) serve every waiter of the client.
The thread blocks reading the socket, waking every :data:`POLL` seconds only to notice
:meth:`Doorbell.close`: it never sends a command while idle. On a lost connection it
makes a new one (``pubsub_factory()``, with back-off from :data:`BACKOFF` to
:data:`BACKOFF_MAX` seconds), subscribes again to everything, and changes every
generation. ``SUBSCRIBE`` for a new queue is sent by the caller of ``watch`` (the
notifier would hear of it only after its next read) and confirmed by the notifier.

Locking as CPython's ``queue.py``: one mutex, Conditions named for what they wait for
(each with a comment saying who notifies it); callbacks and logging run outside it. A
second lock, ``_io``, serialises commands sent on a connection with its teardown, so
nothing is ever sent on a connection being given back to its pool.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Iterable, List, Optional, Set, Tuple

from .._awaiting import Waiter, sleep_on, unpark, wake_every
from .._util import check_seconds, deadline_of, remaining
from ..errors import ShutDown, StoreError

if TYPE_CHECKING:  # importing unidist_queue never imports redis
    from redis.client import PubSub

__all__ = ["BACKOFF", "BACKOFF_MAX", "POLL", "Doorbell"]

logger = logging.getLogger(__name__)

POLL = 0.25
"""Seconds the notifier blocks in one socket read before it looks whether it was closed."""
BACKOFF = 0.05
"""Seconds between the first failed reconnection attempt and the next; doubled each time."""
BACKOFF_MAX = 2.0
"""The longest wait between two reconnection attempts."""

Key = Tuple[str, str]
"""A subscription: ``("c", channel)`` for SUBSCRIBE, ``("p", pattern)`` for PSUBSCRIBE."""
Listener = Callable[[str], Any]


def _text(value: Any) -> str:
    """A channel name as the server sent it (bytes, or str with ``decode_responses``)."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _raw(value: Any) -> bytes:
    """A payload as bytes, however the client decodes responses."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")


def _glob_escape(text: str) -> str:
    """``text`` with Redis glob's special characters escaped (for PSUBSCRIBE)."""
    return "".join("\\" + ch if ch in "*?[]\\^" else ch for ch in text)


class Doorbell:
    """Per-queue generations, woken by Redis pub/sub and by local changes.

    ``pubsub_factory()`` makes a new :class:`redis.client.PubSub` (for example
    ``client.pubsub``; its client must keep redis-py's default
    ``health_check_interval=0``, or redis-py would PING); it is called once per
    connection. ``channel_of(queue)`` names a queue's channel and must be a fixed prefix
    followed by the queue's name (``listen(None, ...)`` subscribes to that prefix's
    pattern). ``origin`` is the payload this client's scripts publish: listeners are
    not told of those.

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
        self._factory = pubsub_factory
        self._channel_of = channel_of
        self._prefix = prefix
        self._pattern = _glob_escape(prefix) + "*"
        self._origin = origin
        self._mutex = threading.Lock()
        # Notified by the notifier (a subscription confirmed, a connection attempt
        # failed) and by close; watch and listen wait on it.
        self._subscribed = threading.Condition(self._mutex)
        # Notified by close; the notifier's back-off between connection attempts waits on it.
        self._retry = threading.Condition(self._mutex)
        # Per queue, made on a thread's first wait: notified by _bump (ring, a
        # notification), _bump_all (a lost connection) and close; wait() waits on it.
        self._changed: Dict[str, threading.Condition] = {}
        self._rooms: Dict[str, Deque[Waiter]] = {}  # per queue: parked coroutines (same wakers)
        self._io = threading.Lock()  # commands sent on a connection vs its teardown
        self._gens: Dict[str, int] = {}
        self._epoch = 0  # added to every generation; changes on a lost connection
        self._closed = False
        self._wanted: Dict[Key, Optional[str]] = {}  # subscription -> its queue (None: pattern)
        self._ps: Optional[PubSub] = None  # the connection in use (None: none yet / lost)
        self._sent: Set[Key] = set()  # sent on _ps
        self._confirmed: Set[Key] = set()  # confirmed by the server on _ps
        self._broken = False  # a command sent on _ps failed: the notifier replaces it
        self._lost = False  # a connection was lost: bump every generation once resubscribed
        self._failures = 0  # failed connection attempts so far
        self._error: Optional[BaseException] = None  # the last attempt's error
        self._listeners: Dict[Optional[str], Dict[object, Listener]] = {}
        self._thread: Optional[threading.Thread] = None

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
                changed.wait(left)

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
            room = self._rooms[queue] = waiter.park(self._rooms.get(queue))
        try:
            await sleep_on(waiter, timeout)
        finally:
            with self._mutex:
                unpark(room, waiter)
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

    def _bump(self, queue: str) -> None:
        """Change ``queue``'s generation, wake its threads and coroutines (mutex held)."""
        self._gens[queue] = self._gens.get(queue, 0) + 1
        changed = self._changed.get(queue)
        if changed is not None:
            changed.notify_all()
        wake_every(self._rooms.pop(queue, None))

    def _bump_all(self) -> None:
        """Change every generation and wake every waiter (mutex held)."""
        self._epoch += 1
        for changed in self._changed.values():
            changed.notify_all()
        for room in self._rooms.values():
            wake_every(room)
        self._rooms.clear()

    # -- subscriptions -----------------------------------------------------------------

    def watch(self, queue: str) -> None:
        """Subscribe to ``queue``'s notifications; return once the server confirmed.

        A notification published after ``watch`` returns changes the generation (unless
        the connection is lost, which changes every generation). The subscription
        stays until :meth:`close`; watching again costs a dict lookup. Starts the
        notifier on first use.

        :raises ShutDown: the doorbell is closed.
        :raises StoreError: connecting failed (``__cause__``: redis-py's error); the
            notifier keeps trying, so a later call may succeed.

        O(1) plus, the first time, one round trip. Thread-safe.
        """
        self._subscribe(("c", self._channel_of(queue)), queue)

    def listen(self, queue: Optional[str], callback: Listener) -> Callable[[], None]:
        """Call ``callback(queue)`` for every notification of ``queue`` from another client.

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
            if queue is None:
                self._subscribe(("p", self._pattern), None)
            else:
                self._subscribe(("c", self._channel_of(queue)), queue)
        except BaseException:
            unsubscribe()
            raise
        return unsubscribe

    def _subscribe(self, key: Key, queue: Optional[str]) -> None:
        """Want ``key``; send it on the current connection; wait for its confirmation."""
        with self._mutex:
            if self._closed:
                raise ShutDown("the doorbell is closed")
            if key in self._confirmed:
                return
            self._wanted[key] = queue
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

    def _send(self, ps: PubSub, keys: Iterable[Key]) -> bool:
        """Send SUBSCRIBE/PSUBSCRIBE for ``keys`` on ``ps`` if still in use; whether sent.

        A failed send marks ``ps`` broken: the notifier replaces it and subscribes again.
        """
        channels = [name for kind, name in keys if kind == "c"]
        patterns = [name for kind, name in keys if kind == "p"]
        try:
            with self._io:
                if ps is not self._ps:
                    return False  # replaced: the new connection subscribes to everything
                if channels:
                    ps.subscribe(*channels)
                if patterns:
                    ps.psubscribe(*patterns)
            return True
        except Exception as error:
            logger.warning("doorbell: subscribing failed, reconnecting: %r", error)
            with self._mutex:
                if ps is self._ps:
                    self._broken = True
            return False

    def _start(self) -> None:
        """Start the notifier thread unless it runs (mutex held)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="unidist_queue-doorbell",
                                             daemon=True)
            self._thread.start()

    # -- closing -----------------------------------------------------------------------

    def close(self) -> None:
        """Wake every waiter (they raise :class:`ShutDown`), stop the notifier, disconnect.

        The notifier notices within :data:`POLL` seconds (longer only while it is
        connecting) and close waits for it, up to about a second; called from a listener
        it does not wait. Idempotent.

        O(w) for w waiters. Thread-safe.
        """
        with self._mutex:
            if not self._closed:
                self._closed = True
                self._bump_all()
                self._subscribed.notify_all()
                self._retry.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2 * POLL + 0.5)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called. O(1). Thread-safe."""
        return self._closed

    # -- the notifier thread -----------------------------------------------------------

    def _run(self) -> None:
        """The notifier: connect, read until lost or closed, back off, again."""
        delay = 0.0
        while True:
            with self._mutex:
                deadline = time.monotonic() + delay
                while not self._closed and (left := deadline - time.monotonic()) > 0:
                    self._retry.wait(left)
                if self._closed:
                    return
                want = dict(self._wanted)
            ps = self._connect(want)
            if ps is None:
                delay = min(max(2 * delay, BACKOFF), BACKOFF_MAX)
                continue
            delay = 0.0
            self._read(ps)
            self._teardown(ps)

    def _connect(self, want: Dict[Key, Optional[str]]) -> Optional[PubSub]:
        """A new connection subscribed to ``want`` (and whatever is wanted meanwhile)."""
        ps: Optional[PubSub] = None
        try:
            ps = self._factory()
            channels = [name for kind, name in want if kind == "c"]
            patterns = [name for kind, name in want if kind == "p"]
            if channels:
                ps.subscribe(*channels)
            if patterns:
                ps.psubscribe(*patterns)
        except Exception as error:
            self._close_quietly(ps)
            logger.warning("doorbell: connecting failed: %r", error)
            with self._mutex:
                self._failures += 1
                self._error = error
                self._subscribed.notify_all()
            return None
        with self._mutex:
            self._ps = ps
            self._sent = set(want)
            missing = [key for key in self._wanted if key not in self._sent]
            self._sent.update(missing)
        if missing:
            self._send(ps, missing)
        return ps

    def _read(self, ps: PubSub) -> None:
        """Read and dispatch messages from ``ps`` until closed, broken or lost."""
        while True:
            with self._mutex:
                if self._closed or self._broken:
                    return
            try:
                message = ps.get_message(timeout=POLL)
            except Exception as error:
                logger.warning("doorbell: connection lost, reconnecting: %r", error)
                return
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: Dict[str, Any]) -> None:
        """Handle one message read by the notifier: a confirmation or a notification."""
        kind = message["type"]
        if kind in ("subscribe", "psubscribe"):
            key = ("c" if kind == "subscribe" else "p", _text(message["channel"]))
            with self._mutex:
                if key in self._confirmed:
                    self._bump_all()  # redis-py reconnected by itself and subscribed again
                self._confirmed.add(key)
                if self._lost and self._sent <= self._confirmed:
                    self._lost = False
                    self._bump_all()  # subscribed again: what was missed meanwhile is looked at
                self._subscribed.notify_all()
            return
        if kind not in ("message", "pmessage"):
            return
        channel = _text(message["channel"])
        ours = _raw(message["data"]) == self._origin
        with self._mutex:
            if kind == "message":
                queue = self._wanted.get(("c", channel))
                if queue is None:
                    return
                self._bump(queue)
                found = self._listeners.get(queue)
            else:
                if not channel.startswith(self._prefix):
                    return
                queue = channel[len(self._prefix):]
                found = self._listeners.get(None)
            callbacks = [] if ours or not found else list(found.values())
        self._call(callbacks, queue)

    @staticmethod
    def _call(callbacks: List[Listener], queue: str) -> None:
        """Call each listener with ``queue``; log what one raises (no lock held)."""
        for callback in callbacks:
            try:
                callback(queue)
            except Exception:
                logger.exception("doorbell: listener %r raised for queue %r", callback, queue)

    def _teardown(self, ps: PubSub) -> None:
        """Forget ``ps``, change every generation, and disconnect it."""
        with self._mutex:
            self._ps = None
            self._sent = set()
            self._confirmed = set()
            self._broken = False
            self._lost = not self._closed
            self._bump_all()  # notifications may be lost until subscribed again
        with self._io:
            self._close_quietly(ps)

    @staticmethod
    def _close_quietly(ps: Optional[PubSub]) -> None:
        """Close ``ps``, ignoring errors of a connection already gone."""
        if ps is None:
            return
        try:
            ps.close()
        except Exception as error:  # pragma: no cover (redis-py's reset does not raise)
            logger.debug("doorbell: closing a connection: %r", error)
