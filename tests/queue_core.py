"""The one place the tests look inside the queue core (``unidist_queue._core.QueueCore``).

Nothing public tells that a thread waits in a blocking call of a MessageQueue (a
RedisMessageQueue says so through its package method ``waiting``) (``get``,
``reserve``, an ``add`` waiting for room, a view's ``get`` or ``put``): only the core's
waiting room knows. The wake-up tests wait here until the thread is parked, so that
what they check wakes a thread that really waits instead of racing it. This reads the
core's private members, which ruff.toml allows in this file only (SLF001).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from unidist_queue import MessageQueue


def wait_blocked(mq: Any, queue: str, getters: int = 0, putters: int = 0) -> None:
    """Wait (bounded) until at least ``getters`` threads wait for a message of ``queue``
    and ``putters`` for room in it."""
    if not isinstance(mq, MessageQueue):  # a RedisMessageQueue: its doorbell counts them
        _wait_until(lambda: mq.waiting(queue) >= getters + putters)
        return
    core = mq._core
    ok = threading.Event()
    for _ in range(3000):
        with core.mutex:
            q = core._queues.get(queue)
            if q is not None and q.getters >= getters and q.putters >= putters:
                ok.set()
                break
        ok.wait(0.01)
    assert ok.is_set(), "the thread never blocked"


def _wait_until(check: Callable[[], bool]) -> None:
    ok = threading.Event()
    for _ in range(3000):
        if check():
            ok.set()
            break
        ok.wait(0.01)
    assert ok.is_set(), "the thread never blocked"
