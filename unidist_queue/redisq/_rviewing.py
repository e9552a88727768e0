"""What a RedisMessageQueue offers its views' core (internal; see :mod:`._rview`).

:class:`ViewingMixin` adds to the takes of :mod:`._rtake` the few waits that
:class:`~unidist_queue.redisq._rview.RedisViewCore` needs and the queue API does not
have: the generation of a queue's notifications and a wait for it to change (a put
waiting for room wakes on any take, here or in another client), a local ring (a view
shut down wakes this client's waiters), a blocking take that also ends when the
view is shut down, and for ``join``: a hook called on every notification, and the
look-up of what became of the messages this client's views put (:meth:`view_states`).
They are methods, not attributes, so the view core (another object) uses nothing private.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

from .._util import deadline_of
from ..errors import ShutDown
from ..message import Message
from ._conn import Arg
from ._rtake import EPSILON, Attempt, TakeMixin

__all__ = ["ViewingMixin"]

Stop = Optional[Callable[[], bool]]


class ViewingMixin(TakeMixin):
    """changes, wait_change, await_change, ring, waiting, take_waiting, atake_waiting."""

    def changes(self, queue: str) -> int:
        """Watch ``queue``'s notifications (subscribed once the server confirmed) and return
        its generation now: a later :meth:`wait_change` with it returns once anything
        changed the queue's ready messages, here or in another client.

        Cost: one round trip the first time per queue, then O(1). Thread-safe.
        :raises ShutDown: closed. :raises StoreError: Redis cannot be reached.
        """
        bell = self._doorbell()
        bell.watch(queue)
        return bell.generation(queue)

    def generation(self, queue: str) -> int:
        """``queue``'s generation now, as :meth:`changes` returns it but without watching
        (call :meth:`changes` first). No round trip, never waits: O(1). Thread-safe.

        :raises ShutDown: closed.
        """
        return self._doorbell().generation(queue)

    def on_change(self, callback: Callable[[Optional[str]], None]) -> None:
        """Call ``callback(queue)`` for every notification of a watched queue (any kind,
        any client's, this one's included) and ``callback(None)`` when notifications may
        have been missed (a lost connection, close): from the doorbell's thread, with no
        lock held. One callback per client (the view core's); a new one replaces it.

        :raises ShutDown: closed. Thread-safe.
        """
        self._doorbell().on_change(callback)

    def view_states(self, queue: str, items: Sequence[Tuple[str, int]], counted: Sequence[int]
                    ) -> Tuple[List[int], Optional[float]]:
        """What became of messages this client's views put, as ``(queue, id)`` pairs, in
        one round trip: per pair 1 (still in its queue: ready, delayed or reserved), 2 (it
        left undelivered: taken out of this client's record of gone items) or 0
        (delivered); and the seconds until ``queue``'s next timed change (``None``:
        none), its due changes applied first (``queue`` ``""``: none applied).
        ``counted``: ids already counted, taken out of the record too. Package use.

        :raises ShutDown: closed. :raises StoreError: Redis failed.
        """
        flat: List[Arg] = [v for q, i in items for v in (q, b"%016d" % i)]
        res, now, hint = self._call("viewed", queue, len(items), *flat, *(b"%016d" % i for i in counted))
        return [int(s) for s in res], None if hint is None else max(0.0, hint - now) + EPSILON

    def take_now(self, queue: str) -> Optional[Message]:
        """Remove and return the oldest ready message (``None``: nothing ready). One round
        trip. Thread-safe. :raises ShutDown: closed."""
        msgs, _ = self._take(queue, "first", 1, "remove", None)
        return msgs[0] if msgs else None

    def wait_change(self, queue: str, generation: int, timeout: Optional[float]) -> bool:
        """Wait until ``queue``'s generation is no longer ``generation`` (``True``) or
        ``timeout`` seconds passed (``False``; ``None``: no bound). Sends nothing.

        :raises ShutDown: closed (also while waiting).
        """
        return self._doorbell().wait(queue, generation, timeout)

    async def await_change(self, queue: str, generation: int, timeout: Optional[float]) -> bool:
        """:meth:`wait_change` for coroutines; cancelling it leaves nothing behind."""
        return await self._doorbell().await_change(queue, generation, timeout)

    def ring(self, queue: str) -> None:
        """Wake this client's waiters on ``queue`` (no round trip): they look again.
        After :meth:`close` it does nothing."""
        try:
            bell = self._doorbell()
        except ShutDown:
            return
        bell.ring(queue)

    def waiting(self, queue: str) -> int:
        """How many callers of this client (threads and coroutines: blocked takes, views'
        puts waiting for room) wait now on ``queue``. O(1), no round trip. Thread-safe;
        for tests and monitoring (it may change at once)."""
        bell = self._bell_if_made()
        return 0 if bell is None else bell.waiting(queue)

    def _stoppable(self, queue: str, stop: Stop) -> Attempt[List[Message]]:
        """A take of the oldest message that raises ``ShutDown`` once ``stop()`` is true
        and nothing was ready (a shut down view still hands out what is left)."""
        take = self._taker(queue, 1, "remove", None)

        def attempt() -> Tuple[Optional[List[Message]], Optional[float]]:
            msgs, hint = take()
            if msgs is None and stop is not None and stop():
                raise ShutDown("the view is shut down")
            return msgs, hint

        return attempt

    def take_waiting(self, queue: str, timeout: Optional[float], stop: Stop) -> object:
        """Take the oldest ready body, waiting up to ``timeout`` (``None``: no bound; 0: not
        at all) as :meth:`get` does, and ending with ``ShutDown`` once ``stop()`` is true
        and nothing is ready (see :meth:`ring`). Thread-safe.

        :raises Empty: ``timeout`` passed. :raises ShutDown: stopped or closed.
        """
        return self._blocking(queue, self._stoppable(queue, stop), deadline_of(timeout))[0].body

    async def atake_waiting(self, queue: str, timeout: Optional[float], stop: Stop) -> object:
        """:meth:`take_waiting` for coroutines; a cancelled call takes nothing."""
        msgs = await self._ablocking(queue, self._stoppable(queue, stop), deadline_of(timeout))
        return msgs[0].body
