"""The server's settings are checked when a client connects (DESIGN 12).

* ``require_aof=True`` refuses a server without AOF (``StoreError`` from the
  constructor) and accepts one with it; without ``require_aof`` both work, and
  ``stats().durable`` tells which it is.
* A ``maxmemory-policy`` other than ``noeviction`` (eviction silently deletes queues) is
  logged at WARNING, naming the policy; ``noeviction`` logs nothing.
"""

from __future__ import annotations

import logging
from typing import Iterator

import pytest
import redis
from redisserver import Server, start_server

from unidist_queue import StoreError
from unidist_queue.redisq import RedisMessageQueue


@pytest.fixture(scope="module")
def no_aof_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A private server with ``appendonly no``."""
    server = start_server(tmp_path_factory.mktemp("no-aof"), aof=False)
    yield server
    server.stop()


def test_require_aof_refuses_a_server_without_aof(no_aof_server: Server) -> None:
    with pytest.raises(StoreError, match="AOF"):
        RedisMessageQueue(no_aof_server.url, require_aof=True)
    with RedisMessageQueue(no_aof_server.url) as mq:
        mq.add("q", 1)
        assert mq.stats("q").durable is False
        assert mq.get("q", timeout=0) == 1


def test_require_aof_accepts_a_server_with_aof(redis_url: str) -> None:
    with RedisMessageQueue(redis_url, require_aof=True) as mq:
        mq.add("q", 1)
        assert mq.stats("q").durable is True


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "allkeys-random"])
def test_an_eviction_policy_is_logged_at_warning(
        no_aof_server: Server, policy: str, caplog: pytest.LogCaptureFixture) -> None:
    raw = redis.Redis.from_url(no_aof_server.url)
    with raw:
        raw.config_set("maxmemory-policy", policy)
        try:
            with caplog.at_level(logging.WARNING, logger="unidist_queue"), \
                    RedisMessageQueue(no_aof_server.url) as mq:
                mq.count("q")
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1 and policy in warnings[0].getMessage()
            assert warnings[0].name.startswith("unidist_queue")
        finally:
            raw.config_set("maxmemory-policy", "noeviction")


def test_noeviction_logs_nothing(no_aof_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="unidist_queue"), RedisMessageQueue(no_aof_server.url) as mq:
        mq.count("q")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

