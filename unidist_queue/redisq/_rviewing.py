"""What a RedisMessageQueue offers its views' core (internal; see :mod:`._rview`).

:class:`ViewingMixin` adds to the takes of :mod:`._rtake` the few waits that
:class:`~unidist_queue.redisq._rview.RedisViewCore` needs and the queue API does not
have: the generation of a queue's notifications and a wait for it to change (a put
waiting for room wakes on any take, here or in another client), a local ring (a view
shut down wakes this client's waiters), and a blocking take that also ends when the
view is shut down. They are methods, not attributes, so the view core (another object)
uses nothing private.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from .._util import deadline_of
from ..errors import ShutDown
from ..message import Message
from ._rtake import Attempt, TakeMixin

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
