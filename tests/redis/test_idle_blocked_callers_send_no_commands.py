"""Idle blocked callers send (almost) no commands (DESIGN 12; dramatiq#691, rq#2170).

Two threads of a child process block in ``get`` with no timeout, on queues where nothing
is due for a long time (a delayed message, a reservation with a long lease), with a
short ``session_lease`` (a renewal thread with nothing to renew must not call the
server either). Over a few seconds the server's command counter grows by no
more than the ``INFO`` calls of the test itself. Then two adds wake both callers, which
shows they were blocked all along. A private server: nothing else talks to it.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis
from procs_helpers import Child, info, wait_subscribed
from redisserver import start_server

from unidist_queue.redisq import RedisMessageQueue

QUIET = 2.0  # seconds of watching the counter

CHILD = r"""
import threading
url = sys.argv[1]
mq = RedisMessageQueue(url, session_lease=0.5)
mq.add("other", "x")  # a connection in use, a script loaded: a client that worked before
mq.add("a", "later", delay=600)  # something due, but long after the test
mq.add("b", "held")
mq.reserve("b", timeout=0, lease=600)  # a lease running, ending long after the test
printing = threading.Lock()  # two threads print: a line is written whole


def take(q):
    got = mq.get(q)
    with printing:
        print("got", got, flush=True)


ts = [threading.Thread(target=take, args=(q,)) for q in ("a", "b")]
for t in ts:
    t.start()
print("waiting", flush=True)
for t in ts:
    t.join(60)
    assert not t.is_alive()
mq.close()
"""


def commands(raw: redis.Redis) -> int:
    """Commands the server ran so far, this INFO call excluded."""
    return int(info(raw, "stats")["total_commands_processed"])


def test_idle_blocked_callers_send_no_commands(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    try:
        raw = redis.Redis.from_url(server.url)
        with raw, Child(tmp_path, CHILD, server.url) as child:
            child.expect("waiting")
            wait_subscribed(raw, 2)
            time.sleep(0.5)  # the first take scripts have run
            before = commands(raw)
            time.sleep(QUIET)
            after = commands(raw)
            stats = info(raw, "commandstats")
            assert after - before <= 1, f"{after - before - 1} commands while idle: {stats}"
            with RedisMessageQueue(server.url) as mq:
                mq.add("a", 1)
                mq.add("b", 2)
                assert sorted([child.expect("got"), child.expect("got")]) == [["1"], ["2"]]
            child.finish()
    finally:
        server.stop()
