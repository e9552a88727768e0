"""How a RedisMessageQueue talks to the server (DESIGN 12): functions when the server has
them, scripts when it does not; connections of its own client's pool, never shared with
a forked child, given back to a client passed in at close.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator, List

import pytest
import redis
from doorbell_helpers import WAIT
from redisserver import Server, start_server

from unidist_queue import RedisMessageQueue


@pytest.fixture
def no_functions(tmp_path: Path) -> Iterator[Server]:
    """A server whose FUNCTION command is renamed away, as on a server older than Redis 7."""
    s = start_server(tmp_path / "server", aof=False, extra=["--rename-command", "FUNCTION", ""])
    yield s
    s.stop()


def test_a_server_without_functions_runs_scripts(no_functions: Server) -> None:
    with RedisMessageQueue(no_functions.url) as mq, RedisMessageQueue(no_functions.url) as other:
        first = mq.add("q", "a")
        assert mq.add_many("q", ["b", "c"]) == [first + 1, first + 2]
        m = other.reserve("q", timeout=WAIT, lease=60)
        other.ack(m)
        assert (m.body, mq.all("q"), mq.stats("q").removed) == ("a", ["b", "c"], 1)


def test_a_forked_child_makes_its_own_connections(redis_url: str) -> None:
    with RedisMessageQueue(redis_url) as mq:
        mq.add("q", "parent")  # the parent holds a connection now
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child (its coverage is not gathered)
            try:
                mq.add("q", "child")
                os._exit(0 if mq.count("q") == 2 else 1)
            finally:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert mq.all("q") == ["parent", "child"]  # the parent's connection still in step


def test_many_threads_share_the_client_and_its_connections_go_back(redis_url: str) -> None:
    threads, start = 8, threading.Barrier(8, timeout=WAIT)
    pool = redis.ConnectionPool.from_url(redis_url, max_connections=threads)  # more: an error
    client = redis.Redis(connection_pool=pool)
    ids: List[int] = []

    def work() -> None:
        start.wait()
        for i in range(50):
            ids.append(mq.add("q", i))

    with client, RedisMessageQueue(client=client) as mq:
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(WAIT)
        assert mq.count("q") == threads * 50 and len(set(ids)) == threads * 50
    held = [pool.get_connection() for _ in range(threads)]  # all back in the pool
    for conn in held:
        pool.release(conn)
    assert client.ping()  # left open, usable
    pool.disconnect()
