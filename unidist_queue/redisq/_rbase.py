"""The plumbing of a RedisMessageQueue: scripts, news, subscribers, session, closing (internal).

:class:`RedisBase` holds what one client of a namespace owns: the connection
(:class:`~._conn.Conn`), the codec, a random *origin* (the payload of this client's
``PUBLISH``es, so its own notifications are told apart), the doorbell (made on the first
blocking call or ``subscribe``), the session reservations and the local subscribers.
Every operation is one script: :meth:`RedisBase._call` runs it and then, outside every
lock, tells the view core of the items this client's views put that left undelivered
(:meth:`RedisBase._undelivered`), rings the doorbell and tells local subscribers of the
queues where messages became ready, and logs the messages that died past ``max_attempts``.

Locking: one mutex (``_mutex``) guards ``_closed``, the reservations (``_held``,
``_session_ids``, ``_ends``), ``_subscribers`` and ``_bell``; it is never held during a
round trip, a callback or a log call. No Condition: waits are the doorbell's.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from .._corebase import Subscriber, not_a_name, notify_subscribers
from .._util import check_seconds
from ..errors import ShutDown, StoreError
from ..message import Message
from ._codec import Codec
from ._conn import Arg, Client, Conn
from ._scripts import SCRIPTS
from ._session import Session

if TYPE_CHECKING:
    from ._doorbell import Doorbell

__all__ = ["RedisBase", "check_name", "seconds_arg"]

logger = logging.getLogger("unidist_queue.redisq")

SWEEP = 1024  # held reservations before the first sweep of lapsed ones (see RedisBase._sweep)
Rows = List[List[Any]]  # [id, score, id, score...], [value, attempts, ...] (see _prelude's body_rows)


def check_name(queue: Any) -> str:
    """``queue`` itself if it is a ``str``.

    :raises TypeError: it is not (the message names the argument).
    """
    if not isinstance(queue, str):
        raise not_a_name(queue)
    return queue


def seconds_arg(value: Optional[float]) -> str:
    """A number of seconds as a script argument (``""``: none)."""
    return "" if value is None else repr(float(value))


def _check_namespace(namespace: Any) -> str:
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a str, not {type(namespace).__name__}")
    if not namespace or "{" in namespace or "}" in namespace:
        raise ValueError(f"namespace must be a non-empty str without braces, not {namespace!r}")
    return namespace


class RedisBase:
    """Fields and shared machinery of :class:`~.queue.RedisMessageQueue` (see the module)."""

    def __init__(
        self, url: str, *, namespace: str, client: Optional[Client], serializer: str,
        hmac_key: Union[bytes, str, None], session_lease: float, require_aof: bool,
    ) -> None:
        self._namespace = _check_namespace(namespace)
        self._session_lease = check_seconds("session_lease", session_lease)
        if self._session_lease <= 0:
            raise ValueError(f"session_lease must be positive, not {session_lease!r}")
        if not isinstance(require_aof, bool):
            raise TypeError(f"require_aof must be a bool, not {type(require_aof).__name__}")
        self._codec = Codec(serializer, hmac_key)
        self._prefix = f"uq:{{{namespace}}}:"
        self._conn = Conn(url, client, self._prefix)
        try:
            self._aof = self._conn.check(require_aof)
        except BaseException:
            self._conn.close()
            raise
        self._origin = os.urandom(8).hex()
        self._mutex = threading.Lock()
        self._closed = False
        self._subscribers: Dict[Optional[str], Tuple[Subscriber, ...]] = {}
        # this client's reservations: id -> (queue, attempts); session ones (lease=None) in
        # _session_ids, the others' lease ends (time.monotonic(), roughly) in _ends
        self._held: Dict[int, Tuple[str, int]] = {}
        self._session_ids: Set[int] = set()
        self._ends: Dict[int, float] = {}
        self._sweep_at = SWEEP
        self._session = Session(self._session_lease / 3, self._renew)
        self._bell: Optional[Doorbell] = None

    # -- running scripts -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ShutDown("the RedisMessageQueue is closed")

    def _call(self, name: str, *args: Arg) -> Tuple[Any, float, Optional[float]]:
        """Run script ``name``; return ``(result, server time, next due or None)``.

        :raises ShutDown: closed. :raises StoreError: Redis failed.
        """
        self._check_open()
        try:
            return self._run(name, args)
        except StoreError as exc:
            if self._closed:  # closed by another thread during the call
                raise ShutDown("the RedisMessageQueue was closed") from exc
            raise

    def _run(self, name: str, args: Sequence[Arg]) -> Tuple[Any, float, Optional[float]]:
        """:meth:`_call` even once closed (``close`` gives reservations back with it)."""
        res, news, dead, now, hint, gone = self._conn.run(SCRIPTS[name], (self._origin, *args))
        if dead:
            self._log_dead(dead)
        if gone:
            self._undelivered([int(i) for i in gone])
        if news:
            self._tell(news)
        return res, float(now), None if hint is None else float(hint)

    def _tell(self, news: List[Any]) -> None:
        """Outside every lock: ring the doorbell for each queue that changed, and run the
        local subscribers of those where messages became ready."""
        bell = self._bell
        for i in range(0, len(news), 2):
            name = news[i].decode("utf-8", "surrogateescape")
            if bell is not None:
                bell.ring(name)
            if news[i + 1] == 1 and self._subscribers:
                notify_subscribers(self._subscribers, name)

    def _undelivered(self, ids: List[int]) -> None:
        """Outside every lock: messages put by this client's views left their queue
        undelivered in the script just run (the queue counts them for the views)."""

    @staticmethod
    def _log_dead(dead: List[Any]) -> None:
        for q, msg_id, att, limit, to, new_id in dead:
            name = q.decode("utf-8", "replace")
            why = (f"message {int(msg_id)} of queue {name!r} was reserved {att} times "
                   f"(max_attempts={limit}) without an ack")
            if not to:
                logger.warning("%s: dropped (no dead_letter)", why)
            elif new_id < 0:
                logger.error("%s: dropped, dead-letter queue %r is full (overflow='reject')", why,
                             to.decode("utf-8", "replace"))
            else:
                logger.warning("%s: moved to queue %r as message %d", why,
                               to.decode("utf-8", "replace"), new_id)

    # -- bodies ----------------------------------------------------------------------------

    def _messages(self, queue: str, rows: Rows, mode: str) -> List[Message]:
        """Envelopes of the messages a script returned (a reservation's attempts are the
        stored ones plus 1). A body that fails its check puts every message a
        ``remove``/``reserve`` took back where it was, then raises.

        :raises StoreError: a body fails its HMAC check or cannot be decoded.
        """
        loads, (pairs, values) = self._codec.loads, rows
        ids, vals, atts = pairs[0::2], values[0::2], values[1::2]
        bump = 1 if mode == "reserve" else 0
        try:
            try:  # (each value is `enqueued_at|body`)
                return [Message(int(i), queue, loads(v.partition(b"|")[2]), float(v.partition(b"|")[0]),
                                int(a or 0) + bump) for i, v, a in zip(ids, vals, atts, strict=True)]
            except (ValueError, AttributeError) as exc:  # not of that form: changed in Redis
                raise StoreError(f"a message of queue {queue!r} was changed in Redis: it was not "
                                 "deserialized") from exc
        except StoreError:
            if mode != "peek":
                flat: List[Arg] = [x for i, v, a, score in zip(ids, vals, atts, pairs[1::2], strict=True)
                                   for x in (i, v, a or b"0", score)]
                try:
                    self._run("restore", (queue, mode, *flat))
                except StoreError:
                    logger.exception("could not put back the messages of %r taken with a bad body", queue)
            raise

    # -- session reservations --------------------------------------------------------------

    def _hold(self, msgs: List[Message], lease: Optional[float]) -> None:
        """Remember this client's reservations (``close`` gives them back; ``lease=None``:
        session ones, renewed). ShutDown: closed meanwhile, they went back at once."""
        session = lease is None
        with self._mutex:
            closed = self._closed
            if not closed:
                if len(self._held) >= self._sweep_at:
                    self._sweep()
                for m in msgs:
                    self._held[m.id] = (m.queue, m.attempts)
                    if lease is None:
                        self._session_ids.add(m.id)
                        self._ends.pop(m.id, None)
                    else:
                        self._session_ids.discard(m.id)
                        self._ends[m.id] = time.monotonic() + lease
        if closed:  # pragma: no cover - a close() racing this reserve between script and here
            self._give_back([(m.id, (m.queue, m.attempts)) for m in msgs])
            raise ShutDown("the RedisMessageQueue was closed")
        if session:
            self._session.start()

    def _sweep(self) -> None:
        """With the mutex held: forget the reservations whose lease ran out long ago (they
        are no longer this client's), so a client whose leases lapse keeps no memory of
        them. Amortized O(1) per reservation."""
        stale = time.monotonic() - 1.0  # (a margin: the ends are local estimates)
        for msg_id in [i for i, end in self._ends.items() if end < stale]:
            del self._ends[msg_id]
            self._held.pop(msg_id, None)
        self._sweep_at = max(SWEEP, 2 * len(self._held))

    def _forget(self, messages: Iterable[Message], extended: Optional[float] = None) -> None:
        """Settled; or, with ``extended``, the reservations now end that many seconds from
        now (held, no longer renewed)."""
        with self._mutex:
            for m in messages:
                self._session_ids.discard(m.id)
                if extended is None:
                    self._held.pop(m.id, None)
                    self._ends.pop(m.id, None)
                elif m.id in self._held:
                    self._ends[m.id] = time.monotonic() + extended

    def _renew(self) -> None:
        """From the session thread: renew every session reservation in one script call."""
        with self._mutex:
            items = [(i, self._held[i]) for i in self._session_ids]
        if not items or self._closed:
            return
        res, _, _ = self._run("settle", ("renew", seconds_arg(self._session_lease), *_triples(items)))
        with self._mutex:
            for (msg_id, held), ok in zip(items, res[1], strict=True):
                if not ok and self._held.get(msg_id) == held:
                    del self._held[msg_id]  # no longer current (lapsed, cleared): not ours now
                    self._session_ids.discard(msg_id)

    def _give_back(self, items: List[Tuple[int, Tuple[str, int]]]) -> None:
        """Return reservations to the front of their queues in one call (close)."""
        if items:
            try:
                self._run("settle", ("release", "", *_triples(items)))
            except StoreError:
                logger.warning("could not give %d session reservation(s) back; they return when "
                               "their lease runs out", len(items), exc_info=True)

    # -- the doorbell, closing ---------------------------------------------------------------

    def _doorbell(self) -> Doorbell:
        """The client's doorbell, made on first use. :raises ShutDown: closed."""
        with self._mutex:
            self._check_open()
            if self._bell is None:
                from ._doorbell import Doorbell

                self._bell = Doorbell(self._conn.pubsub, self._channel, self._origin.encode())
            return self._bell

    def _bell_if_made(self) -> Optional[Doorbell]:
        """The doorbell if one was made (``None`` before the first wait)."""
        with self._mutex:
            return self._bell

    def _channel(self, queue: str) -> str:
        return f"{self._prefix}n:{queue}"

    def _close(self) -> None:
        """See ``RedisMessageQueue.close``."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            held, self._held = list(self._held.items()), {}
            self._session_ids.clear()
            self._ends.clear()
            bell = self._bell
        self._session.close()
        self._give_back(held)
        if bell is not None:
            bell.close()
        self._conn.close()


def _triples(items: List[Tuple[int, Tuple[str, int]]]) -> List[Arg]:
    return [v for msg_id, (q, att) in items for v in (q, b"%016d" % msg_id, att)]
