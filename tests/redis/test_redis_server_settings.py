"""What the constructor checks in INFO: AOF (require_aof, stats().durable) and the eviction policy."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from redisserver import start_server

from unidist_queue import RedisMessageQueue, StoreError


def test_require_aof_refuses_a_server_without_aof(tmp_path: Path) -> None:
    server = start_server(tmp_path / "noaof", aof=False)
    try:
        with pytest.raises(StoreError, match="AOF"):
            RedisMessageQueue(server.url, require_aof=True)
        with RedisMessageQueue(server.url) as mq:
            assert mq.stats("q").durable is False
    finally:
        server.stop()


def test_require_aof_accepts_a_server_with_aof(redis_url: str) -> None:
    with RedisMessageQueue(redis_url, require_aof=True) as mq:
        assert mq.stats("q").durable is True


def test_an_eviction_policy_is_logged_at_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = start_server(tmp_path / "lru", aof=False, extra=["--maxmemory-policy", "allkeys-lru"])
    try:
        with caplog.at_level(logging.WARNING, logger="unidist_queue.redisq"):
            RedisMessageQueue(server.url).close()
        assert "allkeys-lru" in caplog.text
    finally:
        server.stop()


def test_an_unreachable_server_is_a_store_error(tmp_path: Path) -> None:
    server = start_server(tmp_path / "gone", aof=False)
    server.stop()
    with pytest.raises(StoreError) as info:
        RedisMessageQueue(server.url)
    assert info.value.__cause__ is not None
