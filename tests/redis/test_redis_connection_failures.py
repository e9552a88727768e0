"""Scripts load on demand; a lost connection fails the call (never resent); the next reconnects."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis
from doorbell_helpers import eventually
from redisserver import start_server

from unidist_queue import RedisMessageQueue, StoreError


def test_script_flush_and_function_flush_break_nothing(redis_url: str, rmq: RedisMessageQueue) -> None:
    admin = redis.Redis.from_url(redis_url)
    try:
        rmq.add("q", 1)
        admin.script_flush()
        assert rmq.oldest("q") == 1
        rmq.add("q", 2)
        admin.function_flush()
        admin.script_flush()
        assert rmq.count("q") == 1 and rmq.reserve("q", lease=60).body == 2
    finally:
        admin.close()


def test_a_lost_connection_fails_the_call_and_the_next_call_reconnects(tmp_path: Path) -> None:
    server = start_server(tmp_path / "lost")
    try:
        mq = RedisMessageQueue(server.url)
        mq.add("q", "before")
        server.stop()
        with pytest.raises(StoreError) as info:
            mq.add("q", "lost")
        assert isinstance(info.value.__cause__, (redis.RedisError, OSError))
        with pytest.raises(StoreError):
            mq.count("q")
        server.restart()  # on its AOF: every acknowledged add is there
        assert mq.all("q") == ["before"]  # the failed add was never resent
        mq.add("q", "after")
        assert mq.all("q") == ["before", "after"]
        mq.close()
    finally:
        server.stop()


def test_close_with_the_server_gone_logs_and_returns(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    server = start_server(tmp_path / "gone")
    try:
        mq = RedisMessageQueue(server.url, session_lease=0.3)
        mq.add("q", 1)
        mq.reserve("q")
        server.stop()
        with caplog.at_level(logging.WARNING, logger="unidist_queue.redisq"):
            eventually(lambda: "renewing the session leases failed" in caplog.text)
            mq.close()  # cannot give the reservation back: it returns when its lease runs out
        assert "could not give 1 session reservation(s) back" in caplog.text and mq.closed
    finally:
        server.stop()


def test_a_restart_on_the_aof_keeps_adds_delays_and_leases(tmp_path: Path) -> None:
    server = start_server(tmp_path / "restart")
    try:
        with RedisMessageQueue(server.url) as mq:
            mq.add_many("q", ["a", "b", "c"])
            mq.add("q", "delayed", delay=0.5)
            leased = mq.reserve("q", lease=0.5)
            server.restart(kill=True)  # SIGKILL: only what the AOF holds comes back
            assert mq.all("q")[-2:] in (["b", "c"], ["c", "delayed"])  # the first call works
            eventually(lambda: mq.count("q") == 4)  # the lease lapses, the delay falls due
            msgs = mq.messages("q")
            assert [m.body for m in msgs] == ["a", "b", "c", "delayed"] and msgs[0].attempts == 1
            with pytest.raises(ValueError):
                mq.ack(leased)
            assert mq.add("q", "next") > msgs[-1].id  # ids go on increasing
    finally:
        server.stop()
