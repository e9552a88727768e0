"""``redis-server`` restarted on its AOF (``appendfsync always``) loses nothing (DESIGN 12).

A private server is stopped (SIGTERM, and SIGKILL: ``kill -9`` must not matter with
``appendfsync always``) and started again on the same directory. Then: every add that
returned is there, in order, with its id; what was taken stays taken; new ids keep
increasing; a delayed message becomes ready when it is due, not before (the server's
clock); a reservation with a lease comes back at the front when the lease ends, with
its ``attempts``. The client that was connected during the restart keeps working: its
session reservation (``lease=None``) is still renewed, and its ``close`` does not touch
the new holder's reservation (fencing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import redis
from procs_helpers import WAIT
from redisserver import Server, start_server

from unidist_queue import StoreError
from unidist_queue.redisq import RedisMessageQueue

DELAY = 1.5
LEASE = 1.0
SESSION = 0.9  # old's session lease: shorter than DELAY
EPS = 0.001  # the server's clock through floats


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path / "server")
    yield s
    s.stop()


def server_time(raw: redis.Redis) -> float:
    secs, micros = raw.time()
    return float(secs + micros / 1e6)


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_restart_on_aof_keeps_every_acknowledged_change(server: Server, kill: bool) -> None:
    old = RedisMessageQueue(server.url, session_lease=SESSION)
    try:
        ids = [*old.add_many("q", [f"m{i}" for i in range(5)]), old.add("q", "m5")]
        assert old.get("q", timeout=WAIT) == "m0"
        old.add("d", "late", delay=DELAY)
        due_d = old.next_due("d")
        lease_id = old.add("l", "job")
        held = old.reserve("l", timeout=WAIT, lease=LEASE)
        due_l = old.next_due("l")
        assert due_d is not None and due_l is not None
        session_id = old.add("s", "session job")
        session_held = old.reserve("s", timeout=WAIT)  # lease=None: renewed by old

        server.restart(kill=kill)

        raw = redis.Redis.from_url(server.url)
        with raw, RedisMessageQueue(server.url) as mq:
            assert [(m.id, m.body) for m in mq.messages("q")] == [
                (i, f"m{n}") for n, i in enumerate(ids)][1:]
            assert mq.add("q", "after") > max(*ids, lease_id)
            stats = mq.stats("d")
            ready_now, now = mq.count("d"), server_time(raw)
            assert ready_now == 0 or now >= due_d - EPS
            assert stats.delayed + stats.ready == 1 and mq.stats("q").added == 7

            again = mq.reserve("l", timeout=WAIT)  # when the lease ends
            assert server_time(raw) >= due_l - EPS
            assert (again.id, again.body, again.attempts) == (lease_id, "job", 2)
            assert mq.get("d", timeout=WAIT) == "late"  # when it is due
            assert server_time(raw) >= due_d - EPS
            # more than a session lease since the restart: old's renewals went on
            assert (mq.count("s"), mq.stats("s").reserved) == (0, 1)

            # the old client works again; its stale reservation is fenced off
            try:  # the connection it had was lost: one call may fail, the next reconnects
                assert old.count("q") == 6
            except StoreError:
                assert old.count("q") == 6
            with pytest.raises(ValueError):
                old.ack(held)
            old.ack(session_held)
            old.close()
            assert mq.stats("l").reserved == 1
            assert (mq.stats("s").removed, session_held.id) == (1, session_id)
            mq.ack(again)
            assert (mq.stats("l").reserved, mq.stats("l").removed) == (0, 1)
    finally:
        old.close()
