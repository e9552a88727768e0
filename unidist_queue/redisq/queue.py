"""RedisMessageQueue: the queue API (DESIGN 3, 11, 12) over a Redis server, shared by processes.

State lives in Redis under one namespace (all keys carry the hash tag ``{namespace}``);
each operation is one Lua script (one round trip), using the server's clock. See
:mod:`._scripts` for the keys and :mod:`._rtake` for the waits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional, Union

from .._adding import check_options, check_retries
from .._corebase import Subscriber
from .._util import check_seconds, deadline_of
from ..aview import AsyncQueueView
from ..errors import Empty, Full
from ..message import MISSING, Message, QueueStats
from ..view import QueueView
from ._conn import Arg, Client
from ._rbase import check_name, seconds_arg
from ._rview import RedisViewCore
from ._rviewing import ViewingMixin

__all__ = ["RedisMessageQueue"]


def _option(value: Any) -> str:
    """A declare option as a script argument: ``""`` not passed, ``"n"`` None, ``"v..."`` a value."""
    if value is MISSING:
        return ""
    if value is None:
        return "n"
    return "v" + (repr(float(value)) if isinstance(value, float) else str(value))


def _not_reserved(message: Message) -> ValueError:
    return ValueError(
        f"message: id {message.id} of queue {message.queue!r} is not reserved (already settled, "
        "lease expired, reserved again since, unknown, removed by clear/drop, or given twice)")


class RedisMessageQueue(ViewingMixin):
    """Named FIFO message queues kept in Redis: every method of :class:`~unidist_queue.MessageQueue`,
    for any number of processes and machines sharing one server (DESIGN section 12).

    ``RedisMessageQueue(url="redis://127.0.0.1:6379/0", *, namespace="uq", client=None,
    serializer="pickle", hmac_key=None, session_lease=60.0, require_aof=False)``

    * ``client``: a ready ``redis.Redis`` or ``redis.cluster.RedisCluster`` (made with
      ``decode_responses=False``) instead of ``url``; its retries are turned off, and it
      is left open by :meth:`close`.
    * ``serializer``: ``"pickle"`` or ``"json"``; ``hmac_key`` (bytes or str) signs every
      body and checks it before it is deserialized (advised for pickle on a shared server).
    * ``session_lease``: the lease of ``reserve(lease=None)`` reservations, renewed every
      third of it while this client is open.
    * ``require_aof``: refuse a server without AOF. A ``maxmemory-policy`` other than
      ``noeviction`` is logged at WARNING.

    Differences from ``MessageQueue`` (DESIGN 12): times are the server's; durability is
    the server's (``stats().durable`` reports AOF; ``declare(durable=...)`` is accepted and
    ignored; :meth:`compact` does nothing); a lost connection fails the call with
    :class:`StoreError` and is never resent (an add may or may not have happened); the
    next call reconnects. Promotions are lazy and bounded (100 due changes per structure
    per call); counts include what is due beyond that bound, and a take first applies
    every due change that decides its result. Views check ``maxsize`` in this
    client (see :meth:`view`).

    Thread-safety: every method may be called from any thread; each is atomic in Redis.
    Cost: one round trip per call (batches included), O(log n) per message in Redis.

    :raises StoreError: Redis cannot be reached, or ``require_aof`` and it has no AOF.
    :raises TypeError, ValueError: a bad argument (named in the message).
    """

    def __init__(
        self, url: str = "redis://127.0.0.1:6379/0", *, namespace: str = "uq",
        client: Optional[Client] = None, serializer: str = "pickle",
        hmac_key: Union[bytes, str, None] = None, session_lease: float = 60.0, require_aof: bool = False,
    ) -> None:
        super().__init__(url, namespace=namespace, client=client, serializer=serializer, hmac_key=hmac_key,
                         session_lease=session_lease, require_aof=require_aof)
        self._views = RedisViewCore(self)

    # -- adding ----------------------------------------------------------------------------

    def add(self, queue: str, message: Any, *, delay: Optional[float] = None,
            timeout: Optional[float] = None) -> int:
        """Append ``message`` (the queue is created if unknown); return its id.

        Ids come from one counter in Redis: unique and increasing across every client.
        ``delay`` keeps it invisible until due (then it joins the back; overflow applies
        then). ``timeout`` bounds the wait for room under ``overflow="block"``.
        Subscribers of this client run before it returns. Cost: one round trip
        (more while waiting for room). Thread-safe.

        :raises Full: ``"reject"`` and full, or ``"block"`` and ``timeout`` passed.
        :raises SerializationError: ``message`` cannot be serialized; nothing was stored.
        :raises StoreError: Redis failed (the add may or may not have happened).
        :raises ValueError: a negative ``delay`` or ``timeout``.
        :raises ShutDown: closed (also while waiting for room).
        """
        return self._add(queue, [message], delay, timeout)

    def add_many(self, queue: str, messages: Iterable[Any], *, delay: Optional[float] = None,
                 timeout: Optional[float] = None) -> List[int]:
        """Append every message as one atomic step in one round trip; return their ids.

        Overflow applies to the batch as in ``MessageQueue.add_many``; an empty batch
        returns ``[]`` without a round trip. Thread-safe.

        :raises Full, SerializationError, StoreError, ValueError, ShutDown: as :meth:`add`;
            also ``ValueError`` for a ``"block"`` batch longer than ``maxlen``.
        """
        batch = list(messages)
        if not batch:
            check_name(queue)
            self._check_open()
            return []
        first = self._add(queue, batch, delay, timeout)
        return list(range(first, first + len(batch)))

    def view_add(self, queue: str, message: Any, counted: List[int]) -> int:
        """:meth:`add` for a view of this client: the message is marked as put by this
        client's views, so that its leaving undelivered is recorded for them (see
        :mod:`._rview`); ``counted``: ids this client counted already, taken out of its
        record of gone items in the same call. Package use (the view core)."""
        return self._add(queue, [message], None, None, [b"%016d" % i for i in counted])

    def _undelivered(self, ids: List[int]) -> None:
        self._views.left_undelivered(ids)

    def _add(self, queue: str, batch: List[Any], delay: Optional[float], timeout: Optional[float],
             counted: Optional[Iterable[bytes]] = None) -> int:
        check_name(queue)
        if delay is not None:
            delay = check_seconds("delay", delay)
        deadline = deadline_of(timeout)
        dumps = self._codec.dumps
        args: List[Arg] = [queue, seconds_arg(delay), len(batch), "" if counted is None else "v",
                           *[dumps(m) for m in batch]]
        if counted is not None:
            args.extend(counted)
        first = [self._call("add", *args)]
        if first[0][0][0] == b"ok":  # the usual case: no wait for room
            return int(first[0][0][1])

        def attempt() -> tuple[Optional[int], Optional[float]]:
            res, now, hint = first.pop() if first else self._call("add", *args)
            if res[0] == b"ok":
                return int(res[1]), None
            if res[0] == b"big":
                raise ValueError(f"messages: a batch of {len(batch)} never fits queue {queue!r} "
                                 f"(maxlen={res[1]})")
            if res[2] == b"reject" or (timeout is not None and timeout <= 0):
                raise Full(f"queue {queue!r} is full (maxlen={res[1]})")
            return None, None if hint is None else max(0.0, hint - now) + 0.001

        try:
            return self._blocking(queue, attempt, deadline)
        except Empty:
            raise Full(f"queue {queue!r} stayed full (maxlen)") from None

    def declare(self, queue: str, *, maxlen: Optional[int] = MISSING, max_age: Optional[float] = MISSING,
                overflow: str = MISSING, durable: Optional[bool] = None,
                max_attempts: Optional[int] = MISSING, dead_letter: Optional[str] = MISSING) -> None:
        """Create ``queue`` or change its options; options not passed keep their value.

        As ``MessageQueue.declare`` (the options are stored in Redis, shared by every
        client); ``durable`` is checked and ignored (durability is the server's AOF).
        Due changes happen first under the old options. Cost: one round trip, plus
        O(k) evictions, O(n) when ``max_age`` is first set. Thread-safe.

        :raises ValueError, TypeError: a bad option, as ``MessageQueue.declare``.
        :raises StoreError: Redis failed. :raises ShutDown: closed.
        """
        check_name(queue)
        check_options(maxlen, max_age, overflow, durable, True)
        check_retries(queue, max_attempts, dead_letter)
        res, _, _ = self._call("declare", queue, _option(maxlen), _option(max_age), _option(overflow),
                               _option(max_attempts), _option(dead_letter))
        if isinstance(res, list):
            why = "maxlen=None was passed" if res[2] else f"queue {queue!r} has no maxlen"
            raise ValueError(f"overflow={res[1].decode()!r} needs a maxlen ({why})")

    def subscribe(self, queue: Optional[str], callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(queue_name)`` whenever messages become ready in ``queue`` (``None``: any).

        Changes this client makes: synchronously in the calling thread, after the
        script, outside every lock. Changes other clients make: from the doorbell's
        thread, asynchronously (they may be merged, and are lost while disconnected).
        A raising callback is logged at ERROR. Returns an unsubscriber (idempotent).
        Thread-safe.

        :raises TypeError: ``callback`` is not callable, or ``queue`` is neither str nor None.
        :raises ShutDown: closed.
        """
        if not callable(callback):
            raise TypeError("callback must be callable")
        if queue is not None:
            check_name(queue)
        remote = self._doorbell().listen(queue, callback)
        with self._mutex:
            self._subscribers[queue] = (*self._subscribers.get(queue, ()), callback)
        done: List[bool] = []

        def unsubscribe() -> None:
            with self._mutex:
                if done:
                    return
                done.append(True)
                subs = list(self._subscribers.get(queue, ()))
                subs.remove(callback)
                if subs:
                    self._subscribers[queue] = tuple(subs)
                else:
                    del self._subscribers[queue]
            remote()

        return unsubscribe

    # -- settling --------------------------------------------------------------------------

    def _settle(self, mode: str, messages: Iterable[Message], seconds: Optional[float]) -> None:
        items = list(messages)
        for m in items:
            if not isinstance(m, Message):
                raise TypeError(f"message must be a Message from reserve(), not {type(m).__name__}")
        if not items:
            self._check_open()
            return
        # ids zero-padded, as they are stored
        args: List[Arg] = [v for m in items for v in (m.queue, b"%016d" % m.id, m.attempts)]
        res, _, _ = self._call("settle", mode, seconds_arg(seconds), *args)
        if res[0] == b"bad":
            raise _not_reserved(items[res[1] - 1])
        self._forget(items, seconds if mode == "extend" else None)

    def ack(self, message: Message) -> None:
        """Settle a reservation for good (delete the message). One round trip. Thread-safe.

        :raises ValueError: not a current reservation (settled, lease ran out, reserved
            again since: ``attempts`` and the lease are compared, unknown, cleared).
        :raises TypeError: not a :class:`Message`. :raises StoreError, ShutDown: as usual.
        """
        self._settle("ack", (message,), None)

    def nack(self, message: Message, *, delay: Optional[float] = None) -> None:
        """Return a reservation to the front of its queue (in id order), at once or after
        ``delay``; past ``max_attempts`` it leaves instead. One round trip. Thread-safe.

        :raises ValueError: not a current reservation, or a negative ``delay``.
        :raises TypeError: not a :class:`Message`. :raises StoreError, ShutDown: as usual.
        """
        if delay is not None:
            delay = check_seconds("delay", delay)
        self._settle("nack", (message,), delay)

    def ack_many(self, messages: Iterable[Message]) -> None:
        """Ack several reservations (any queues) in one atomic step; all or none.

        :raises ValueError: one is not a current reservation, or appears twice.
        :raises TypeError: one is not a :class:`Message`.
        """
        self._settle("ack", messages, None)

    def nack_many(self, messages: Iterable[Message], *, delay: Optional[float] = None) -> None:
        """Nack several reservations in one atomic step, as :meth:`nack` each; all or none.

        :raises ValueError: one is not current, appears twice, or a negative ``delay``.
        :raises TypeError: one is not a :class:`Message`.
        """
        if delay is not None:
            delay = check_seconds("delay", delay)
        self._settle("nack", messages, delay)

    def extend(self, message: Message, lease: float) -> None:
        """The reservation now ends ``lease`` seconds from now (server time); a session
        reservation (``lease=None``) gets this fixed end and is no longer renewed.

        :raises ValueError: not a current reservation, or a negative ``lease``.
        :raises TypeError: not a :class:`Message`.
        """
        lease = check_seconds("lease", lease)
        self._settle("extend", (message,), lease)

    # -- looking and removing --------------------------------------------------------------

    def _look(self, what: str, queue: str) -> Any:
        check_name(queue)
        return self._call("look", what, queue)

    def next_due(self, queue: str) -> Optional[float]:
        """Server time of ``queue``'s next timed change (a delay due, a lease ending, an
        expiry), or ``None``. Due changes are applied first. One round trip."""
        due: Optional[float] = self._look("next_due", queue)[2]
        return due

    def count(self, queue: str) -> int:
        """Ready messages (not delayed, not reserved); 0 for an unknown queue. One round trip.

        :raises TypeError: ``queue`` is not a str.
        """
        return int(self._look("count", queue)[0])

    def exists(self, queue: str) -> bool:
        """Whether ``queue`` was declared or added to, and not dropped. One round trip."""
        return bool(self._look("exists", queue)[0])

    def all(self, queue: str) -> List[Any]:
        """A copy of the ready bodies, oldest first; ``[]`` for an unknown queue. O(n).

        :raises StoreError: a body fails its HMAC check (nothing changes).
        """
        return [m.body for m in self.messages(queue)]

    def messages(self, queue: str) -> List[Message]:
        """The ready messages as :class:`Message` envelopes, oldest first. O(n)."""
        return self._messages(queue, self._look("all", queue)[0], "peek")

    def queues(self) -> List[str]:
        """Names of the namespace's queues, sorted. One round trip; O(q log q)."""
        res, _, _ = self._call("look", "queues", "")
        return sorted(name.decode("utf-8", "surrogateescape") for name in res)

    def stats(self, queue: str) -> QueueStats:
        """A :class:`QueueStats` snapshot; the counters are shared by every client, and
        ``durable`` says whether the server runs with AOF. One round trip."""
        res = self._look("stats", queue)[0]
        ready, delayed, reserved, added, removed, expired, dropped, dead = (int(v) for v in res)
        return QueueStats(ready, delayed, reserved, added, removed, expired, dropped, dead, self._aof)

    def clear(self, queue: str) -> int:
        """Remove every message (ready, delayed, reserved); return how many (counted as
        dropped). Their reservations become unknown. One round trip, O(n) in Redis."""
        check_name(queue)
        return int(self._call("clear", queue)[0])

    def drop(self, queue: str) -> bool:
        """Remove the queue with its messages, options and counters; ``False`` if it did
        not exist. One round trip."""
        check_name(queue)
        return bool(self._call("drop", queue)[0])

    # -- the rest --------------------------------------------------------------------------

    def view(self, queue: str, maxsize: int = 0) -> QueueView[Any]:
        """A :class:`~unidist_queue.QueueView` of ``queue``: ``queue.Queue``'s interface, as
        :meth:`MessageQueue.view <unidist_queue.MessageQueue.view>` (CPython's
        ``queue`` tests run against it). Over Redis, ``maxsize`` is checked by this client
        before each put (puts of other clients at the same moment may pass it).
        ``join`` returns as in memory once each item put was marked ``task_done`` or left
        the queue undelivered (evicted, expired, cleared, dropped, dead), whichever
        client removed it: the scripts record such items for the client whose view put
        them; one removed by this client is counted at once (``unfinished_tasks``), one
        removed by another when a view of this client joins (one round trip per look;
        the record keeps an item a day). Each put and get is one round trip. Thread-safe.

        :raises TypeError: ``queue`` is not a str. :raises ShutDown: closed.
        """
        check_name(queue)
        self._check_open()
        return QueueView(self._views, queue, maxsize)

    def aview(self, queue: str, maxsize: int = 0) -> AsyncQueueView[Any]:
        """An :class:`~unidist_queue.AsyncQueueView` of ``queue``: ``asyncio.Queue``'s
        interface, shared with threads, other loops and other clients, as
        :meth:`MessageQueue.aview <unidist_queue.MessageQueue.aview>`, with the
        differences of :meth:`view`. Thread-safe.

        :raises TypeError: ``queue`` is not a str. :raises ShutDown: closed.
        """
        check_name(queue)
        self._check_open()
        return AsyncQueueView(self._views, queue, maxsize)

    def compact(self) -> None:
        """Nothing to do: Redis keeps the state (its AOF rewrites itself).

        :raises ShutDown: closed.
        """
        self._check_open()

    def close(self) -> None:
        """Give every reservation this client holds (whatever its lease) back to the front
        in one call, wake blocked callers with ``ShutDown``, stop the threads (within about
        a second) and close the connection if it was made here. Idempotent; thread-safe.
        """
        self._close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> RedisMessageQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<RedisMessageQueue namespace={self._namespace!r} {state}>"


if TYPE_CHECKING:
    from ..api import QueueAPI

    def _implements_the_protocol(mq: RedisMessageQueue) -> QueueAPI:
        """For mypy: RedisMessageQueue implements QueueAPI, signatures included."""
        return mq
