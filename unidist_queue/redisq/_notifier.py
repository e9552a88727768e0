"""The doorbell's notifier thread and the state it shares with the callers (internal).

:class:`Notifying` is the base class of :class:`~unidist_queue.redisq._doorbell.Doorbell`
(as ``Sending`` is the Pusher's): the fields both sides use under the one mutex, the
wake-ups (:meth:`Notifying._bump`, :meth:`Notifying._bump_all`), and what the notifier
thread runs: connect (``pubsub_factory()``, then SUBSCRIBE/PSUBSCRIBE to everything
wanted), read and dispatch until the connection is lost or the doorbell closed, give
the connection back, back off (:data:`BACKOFF` doubling to :data:`BACKOFF_MAX` seconds
while attempts fail), again.

The thread blocks reading its socket for at most :data:`POLL` seconds at a time, only
to notice ``close``: it never sends a command while idle. Every generation changes when
a connection is lost and again once the next one confirmed every subscription (what
was published in between was missed: correctness never depends on a notification).
A connection that redis-py made again by itself (a client with retries) shows as a
second confirmation of a subscription, and changes every generation too.

Locking: the mutex guards every field (``_io`` may be held when taking it, never the
reverse); ``_io`` serialises every use of a connection but the notifier's wait for data
(a read, a caller's SUBSCRIBE, the teardown): a failed read or send makes redis-py
connect again, which must never happen in two threads at once, nor on a connection
given back to its pool.
Listeners are called and errors logged with no lock held.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Iterable, Optional, Set, Tuple

from .._awaiting import Waiter, ring_every

if TYPE_CHECKING:  # importing unidist_queue never imports redis
    from redis.client import PubSub

__all__ = ["BACKOFF", "BACKOFF_MAX", "POLL", "Key", "Listener", "Notifying"]

logger = logging.getLogger("unidist_queue.redisq._doorbell")

POLL = 0.25
"""Seconds the notifier blocks in one socket read before it looks whether it was closed."""
BACKOFF = 0.05
"""Seconds between the first failed connection attempt and the next; doubled each time."""
BACKOFF_MAX = 2.0
"""The longest wait between two connection attempts."""

Key = Tuple[str, str]
"""A subscription: ``("c", channel)`` for SUBSCRIBE, ``("p", pattern)`` for PSUBSCRIBE."""
Listener = Callable[[str], Any]


def _text(value: Any) -> str:
    """A channel name as the server sent it (bytes, or str with ``decode_responses``)."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _raw(value: Any) -> bytes:
    """A payload as bytes, however the client decodes responses."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")


def _subscribe_on(ps: PubSub, keys: Iterable[Key]) -> None:
    """Send SUBSCRIBE and PSUBSCRIBE for ``keys`` on ``ps`` (the notifier reads the replies)."""
    channels = [name for kind, name in keys if kind == "c"]
    patterns = [name for kind, name in keys if kind == "p"]
    if channels:
        ps.subscribe(*channels)
    if patterns:
        ps.psubscribe(*patterns)


class Notifying:
    """The notifier's side of a doorbell (see the module). Internal; thread-safe."""

    def __init__(self, pubsub_factory: Callable[[], PubSub], prefix: str, origin: bytes) -> None:
        self._factory = pubsub_factory
        self._prefix = prefix  # of every queue's channel
        self._origin = origin
        self._mutex = threading.Lock()
        # Notified by the notifier (a subscription confirmed, a connection attempt
        # failed) and by close; watch and listen wait on it for their confirmation.
        self._subscribed = threading.Condition(self._mutex)
        # Notified by close; the notifier's back-off between connection attempts waits on it.
        self._retry = threading.Condition(self._mutex)
        # Per queue, made on a thread's first wait: notified by _bump (ring, a
        # notification) and _bump_all (a lost connection, close); wait() waits on it.
        self._changed: Dict[str, threading.Condition] = {}
        # parked coroutines (each unparks itself), woken as _changed is
        self._rooms: Dict[str, Deque[Waiter]] = {}
        self._sleeping: Dict[str, int] = {}  # threads in wait(), per queue
        self._io = threading.Lock()
        self._gens: Dict[str, int] = {}
        self._epoch = 0  # added to every generation: changes for every queue at once
        self._closed = False
        self._wanted: Set[Key] = set()  # every subscription asked for (kept until close)
        self._ps: Optional[PubSub] = None  # the connection in use (None: none yet, or lost)
        self._sent: Set[Key] = set()  # sent on _ps
        self._confirmed: Set[Key] = set()  # confirmed by the server on _ps
        self._settled = False  # _ps confirmed everything sent on it at least once
        self._broken = False  # a command sent on _ps failed: the notifier replaces it
        self._lost = False  # a connection was lost: _bump_all once subscribed again
        self._failures = 0  # failed connection attempts so far
        self._error: Optional[BaseException] = None  # the last failed attempt's error
        self._listeners: Dict[Optional[str], Dict[object, Listener]] = {}
        # told of every notification of a queue, and (None) of every possible miss
        self._hook: Optional[Callable[[Optional[str]], None]] = None
        self._thread: Optional[threading.Thread] = None

    def _tell_hook(self, queue: Optional[str]) -> None:
        """With no lock held: call the change hook, if any, for ``queue`` (``None``: all)."""
        hook = self._hook
        if hook is not None:
            try:
                hook(queue)
            except Exception:
                logger.exception("doorbell: change hook %r raised for queue %r", hook, queue)

    def _bump(self, queue: str) -> None:
        """Change ``queue``'s generation, wake its threads and coroutines (mutex held). O(w)."""
        self._gens[queue] = self._gens.get(queue, 0) + 1
        changed = self._changed.get(queue)
        if changed is not None:
            changed.notify_all()
        ring_every(self._rooms.get(queue))

    def _bump_all(self) -> None:
        """Change every generation and wake every waiter (mutex held). O(w)."""
        self._epoch += 1
        for changed in self._changed.values():
            changed.notify_all()
        for room in self._rooms.values():
            ring_every(room)

    def _start(self) -> None:
        """Start the notifier thread (a daemon) unless it runs (mutex held)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="unidist_queue-doorbell",
                                             daemon=True)
            self._thread.start()

    def _send(self, ps: PubSub, keys: Iterable[Key]) -> None:
        """Send SUBSCRIBE/PSUBSCRIBE for ``keys`` on ``ps`` if it is still the one in use.

        A failed send marks ``ps`` broken: the notifier replaces it and subscribes again.
        Called with no lock held (it takes ``_io``).
        """
        failed: Optional[Exception] = None
        with self._io:
            with self._mutex:
                if ps is not self._ps or self._broken:  # pragma: no cover - a race with a loss
                    return  # it is being replaced: the next one subscribes to everything
            try:
                _subscribe_on(ps, keys)
            except Exception as error:
                failed = error
                with self._mutex:  # before any other send: none uses the broken connection
                    self._broken = True
        if failed is not None:
            logger.warning("doorbell: subscribing failed, reconnecting: %r", failed)

    def _run(self) -> None:
        """The notifier thread: connect, read until lost or closed, back off, again."""
        delay = 0.0
        while True:
            with self._mutex:
                deadline = time.monotonic() + delay
                while not self._closed and (left := deadline - time.monotonic()) > 0:
                    self._retry.wait(left)
                if self._closed:
                    return
                want = set(self._wanted)
            ps = self._connect(want)
            if ps is not None:
                self._read(ps)
                settled = self._teardown(ps)
            delay = 0.0 if ps is not None and settled else min(max(2 * delay, BACKOFF), BACKOFF_MAX)

    def _connect(self, want: Set[Key]) -> Optional[PubSub]:
        """A new connection subscribed to ``want`` and to whatever was wanted meanwhile."""
        ps: Optional[PubSub] = None
        try:
            ps = self._factory()
            _subscribe_on(ps, want)
        except Exception as error:
            if ps is not None:
                ps.close()
            logger.warning("doorbell: connecting failed: %r", error)
            with self._mutex:
                self._failures += 1
                self._error = error
                self._subscribed.notify_all()
            return None
        with self._mutex:
            self._ps = ps
            missing = self._wanted - want
            self._sent = want | missing
        if missing:
            self._send(ps, missing)
        return ps

    def _read(self, ps: PubSub) -> None:
        """Read and dispatch messages from ``ps`` until closed, broken or lost.

        It waits for data with no lock held (``can_read`` only polls the socket: it
        never connects, never retries), and reads what came under ``_io`` (a failed
        read makes redis-py connect again: never at the same time as a send).
        """
        connection: Any = ps.connection  # made by the first SUBSCRIBE (in _connect)
        while True:
            with self._mutex:
                if self._closed or self._broken:
                    return
            try:
                if not connection.can_read(timeout=POLL):
                    continue
                with self._io:
                    message = ps.get_message(timeout=0.0)
            except Exception as error:
                logger.warning("doorbell: connection lost, reconnecting: %r", error)
                return
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: Dict[str, Any]) -> None:
        """Handle one message: a subscription's confirmation or a notification."""
        kind, name = message["type"], _text(message["channel"])
        if kind in ("subscribe", "psubscribe"):
            if self._confirm(("p" if kind == "psubscribe" else "c", name)):
                self._tell_hook(None)
            return
        if kind not in ("message", "pmessage"):  # pragma: no cover - redis-py eats its PONGs
            return
        queue = name[len(self._prefix):]  # a queue's channel is the prefix and its name
        origin, _, change = _raw(message["data"]).rpartition(b":")
        told = change == b"1" and origin != self._origin  # ready messages, from another client
        with self._mutex:
            if kind == "message":  # (a pattern's copy of it only goes to listeners)
                self._bump(queue)
            found = self._listeners.get(queue if kind == "message" else None)
            callbacks = list(found.values()) if told and found else []
        if kind == "message":
            self._tell_hook(queue)
        for callback in callbacks:
            try:
                callback(queue)
            except Exception:
                logger.exception("doorbell: listener %r raised for queue %r", callback, queue)

    def _confirm(self, key: Key) -> bool:
        """The server confirmed ``key`` on the connection in use; whether every generation
        changed (notifications may have been missed)."""
        bumped = False
        with self._mutex:
            if key in self._confirmed:  # pragma: no cover - a read failing after can_read
                self._bump_all()  # redis-py connected again by itself and subscribed again
                bumped = True
            self._confirmed.add(key)
            if self._sent <= self._confirmed:
                self._settled = True
                if self._lost:
                    self._lost = False
                    self._bump_all()  # subscribed again: look at what was missed meanwhile
                    bumped = True
            self._subscribed.notify_all()
        return bumped

    def _teardown(self, ps: PubSub) -> bool:
        """Forget ``ps``, change every generation, disconnect it; whether it had settled."""
        with self._mutex:
            settled = self._settled
            self._ps, self._sent, self._confirmed = None, set(), set()
            self._settled = self._broken = False
            self._lost = not self._closed
            self._bump_all()  # notifications may be missed until subscribed again
        with self._io:
            ps.close()  # (redis-py's reset: disconnects, never raises)
        self._tell_hook(None)
        return settled
