"""An idle doorbell sends the server nothing (issue 15; SCALEOUT.md 3).

With threads and coroutines blocked on watched queues and nothing happening, the
server's ``INFO commandstats`` counts no command but the test's own ``INFO``: the
notifier blocks reading its socket, never PINGs, never polls.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Dict

import redis
from doorbell_helpers import WAIT, LoopThread, doorbell, in_thread, publisher

IDLE = 2.0  # seconds watched: several of the notifier's read timeouts


def commands(client: redis.Redis) -> Dict[str, int]:
    """How many times the server ran each command so far."""
    return {name: int(stats["calls"]) for name, stats in client.info("commandstats").items()}


def test_blocked_waiters_send_no_commands(redis_url: str) -> None:
    with doorbell(redis_url) as bell, publisher(redis_url) as admin, LoopThread() as lt:
        for q in ("a", "b"):
            bell.watch(q)
        bell.listen(None, lambda q: None)
        barrier = threading.Barrier(3)

        def blocked(queue: str) -> bool:
            barrier.wait(WAIT)
            return bell.wait(queue, bell.generation(queue), None)

        threads = [in_thread(lambda: blocked("a")), in_thread(lambda: blocked("b"))]
        coroutine = lt.submit(bell.await_change("a", bell.generation("a"), None))
        lt.submit(asyncio.sleep(0)).result(WAIT)
        barrier.wait(WAIT)
        before = commands(admin)
        time.sleep(IDLE)
        after = commands(admin)
        ran = {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name)}
        assert ran == {"cmdstat_info": 1}  # the first INFO of this test, nothing else
        for q in ("a", "b"):
            bell.ring(q)
        assert [t.result(WAIT) for t in threads] == [True, True]
        assert coroutine.result(WAIT) is True
