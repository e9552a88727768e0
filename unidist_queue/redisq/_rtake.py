"""Taking from a RedisMessageQueue: oldest/newest, get, reserve(_many), their async forms,
and the wait for room of ``overflow="block"`` (internal).

A take is one script (``take``): it promotes what is due, then removes, peeks at or
reserves the oldest (or newest) ready messages; finding nothing, it returns the queue's
next due time. A blocking call waits on the doorbell (:mod:`._doorbell`)::

    watch(q); loop: g = generation(q); result = script(); if result: return
                    wait(q, g, min(time left, until the next due change))

so it wakes when another client (or this one) makes a message ready or a timed change
falls due, and sends nothing while idle. Coroutines run the same loop with
``await_change``; the script call itself is synchronous (one round trip, the loop is not
released during it), so a cancelled coroutine is always cancelled while waiting, before
or after a script, never in one: nothing is taken for a cancelled call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple, TypeVar

from .._util import check_count, check_seconds, deadline_of, remaining
from ..errors import Empty
from ..message import MISSING, Message
from ._rbase import RedisBase, check_name, seconds_arg

if TYPE_CHECKING:
    from ._doorbell import Doorbell

__all__ = ["TakeMixin"]

R = TypeVar("R")
Attempt = Callable[[], Tuple[Optional[R], Optional[float]]]
EPSILON = 0.001  # wait a little past a due time, so the change is due when looked at


def _wait_for(deadline: Optional[float], hint: Optional[float]) -> Optional[float]:
    """Seconds to wait: until the deadline or the next due change, whichever is first.

    :raises Empty: the deadline passed.
    """
    left = remaining(deadline)
    if left is not None and left <= 0:
        raise Empty("timed out")
    if hint is None:
        return left
    return hint if left is None else min(left, hint)


class TakeMixin(RedisBase):
    """oldest, newest, get, reserve, reserve_many, aget, areserve, areserve_many."""

    def _take(self, queue: str, side: str, n: int, mode: str, lease: Optional[float]
              ) -> Tuple[Optional[List[Message]], Optional[float]]:
        """One ``take`` script: ``(messages, None)``, or ``(None, seconds until the next due
        change or None)``."""
        check_name(queue)
        res, now, hint = self._call("take", queue, side, n, mode,
                                    seconds_arg(self._session_lease if lease is None else lease))
        if res is None:
            return None, None if hint is None else max(0.0, hint - now) + EPSILON
        msgs = self._messages(queue, res, mode)
        if mode == "reserve":
            self._hold(msgs, lease)
        return msgs, None

    def _end(self, queue: str, side: str, remove: bool, default: Any) -> Any:
        msgs, _ = self._take(queue, side, 1, "remove" if remove else "peek", None)
        if msgs:
            return msgs[0].body
        if default is MISSING:
            raise Empty(f"queue {queue!r} has no ready message")
        return default

    def _first(self, queue: str, attempt: Attempt[R], deadline: Optional[float]
               ) -> Tuple[Optional[R], Optional[Doorbell]]:
        """The first attempt of a blocking call, without the doorbell; finding nothing,
        watch ``queue`` (the next attempts see every change made after this returns).

        :raises Empty: the deadline passed. :raises ShutDown: closed.
        """
        result, hint = attempt()
        if result is not None:
            return result, None
        _wait_for(deadline, hint)
        bell = self._doorbell()
        bell.watch(queue)
        return None, bell

    def _blocking(self, queue: str, attempt: Attempt[R], deadline: Optional[float]) -> R:
        """Run ``attempt`` until it has a result, waiting on the doorbell in between.

        :raises Empty: the deadline passed. :raises ShutDown: closed (also while waiting).
        """
        result, bell = self._first(queue, attempt, deadline)
        while result is None:
            assert bell is not None  # (made by _first when it found nothing)
            generation = bell.generation(queue)
            result, hint = attempt()
            if result is None:
                bell.wait(queue, generation, _wait_for(deadline, hint))
        return result

    async def _ablocking(self, queue: str, attempt: Attempt[R], deadline: Optional[float]) -> R:
        """:meth:`_blocking` for coroutines (``await_change``: cancel-safe)."""
        result, bell = self._first(queue, attempt, deadline)
        while result is None:
            assert bell is not None  # (made by _first when it found nothing)
            generation = bell.generation(queue)
            result, hint = attempt()
            if result is None:
                await bell.await_change(queue, generation, _wait_for(deadline, hint))
        return result

    def _taker(self, queue: str, n: int, mode: str, lease: Optional[float]) -> Attempt[List[Message]]:
        check_name(queue)
        if lease is not None:
            lease = check_seconds("lease", lease)
        return lambda: self._take(queue, "first", n, mode, lease)

    def oldest(self, queue: str, *, remove: bool = True, default: Any = MISSING) -> Any:
        """The oldest ready message's body, removed unless ``remove=False``.

        Cost: one round trip; O(log n) in Redis. Thread-safe.

        :raises Empty: nothing ready (or an unknown queue) and no ``default``.
        :raises StoreError: Redis failed, or the body fails its HMAC check (the message
            stays where it was).
        :raises ShutDown: closed.
        """
        return self._end(queue, "first", remove, default)

    def newest(self, queue: str, *, remove: bool = True, default: Any = MISSING) -> Any:
        """The newest ready message's body, removed unless ``remove=False``. As :meth:`oldest`."""
        return self._end(queue, "last", remove, default)

    def get(self, queue: str, *, timeout: Optional[float] = None) -> Any:
        """Wait for the oldest ready message, remove it and return its body.

        Wakes when any client makes a message ready, or a delayed one falls due; sends
        no command while waiting. Cost: one round trip per attempt. Thread-safe.

        :raises Empty: ``timeout`` passed. :raises ValueError: a negative ``timeout``.
        :raises ShutDown: closed (also while waiting). :raises StoreError: Redis failed.
        """
        deadline = deadline_of(timeout)
        return self._blocking(queue, self._taker(queue, 1, "remove", None), deadline)[0].body

    def reserve(self, queue: str, *, timeout: Optional[float] = None,
                lease: Optional[float] = None) -> Message:
        """Take the oldest ready message without deleting it (at-least-once); wait as :meth:`get`.

        With ``lease`` (seconds) it returns to the front by itself when the lease runs
        out; with ``lease=None`` it holds a session lease, renewed while this client is
        open and given back by :meth:`close` (a killed client's return after
        ``session_lease``). Cost: one round trip per attempt. Thread-safe.

        :raises Empty: ``timeout`` passed. :raises ValueError: a negative ``timeout`` or ``lease``.
        :raises ShutDown: closed (also while waiting). :raises StoreError: Redis failed.
        """
        deadline = deadline_of(timeout)
        return self._blocking(queue, self._taker(queue, 1, "reserve", lease), deadline)[0]

    def reserve_many(self, queue: str, n: int, *, timeout: Optional[float] = None,
                     lease: Optional[float] = None) -> List[Message]:
        """Wait as :meth:`reserve` until a message is ready, then reserve up to ``n`` of the
        oldest in one atomic step (one round trip). Thread-safe.

        :raises Empty: ``timeout`` passed. :raises ValueError: ``n`` < 1, or a negative
            ``timeout`` or ``lease``. :raises TypeError: ``n`` is not an int.
        :raises ShutDown: closed (also while waiting). :raises StoreError: Redis failed.
        """
        check_count("n", n)
        deadline = deadline_of(timeout)
        return self._blocking(queue, self._taker(queue, n, "reserve", lease), deadline)

    async def aget(self, queue: str, *, timeout: Optional[float] = None) -> Any:
        """:meth:`get` for coroutines. Cancelling it takes nothing.

        Each attempt is one synchronous round trip on the event loop's thread; the
        waits between them are awaited (the doorbell, no thread per call).
        """
        deadline = deadline_of(timeout)
        msgs = await self._ablocking(queue, self._taker(queue, 1, "remove", None), deadline)
        return msgs[0].body

    async def areserve(self, queue: str, *, timeout: Optional[float] = None,
                       lease: Optional[float] = None) -> Message:
        """:meth:`reserve` for coroutines. Cancelling it reserves nothing (``attempts`` unchanged)."""
        deadline = deadline_of(timeout)
        msgs = await self._ablocking(queue, self._taker(queue, 1, "reserve", lease), deadline)
        return msgs[0]

    async def areserve_many(self, queue: str, n: int, *, timeout: Optional[float] = None,
                            lease: Optional[float] = None) -> List[Message]:
        """:meth:`reserve_many` for coroutines. Cancelling it reserves nothing."""
        check_count("n", n)
        deadline = deadline_of(timeout)
        return await self._ablocking(queue, self._taker(queue, n, "reserve", lease), deadline)
