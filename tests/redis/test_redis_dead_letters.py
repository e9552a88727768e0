"""max_attempts and dead letters over Redis (DESIGN 3): nack, lapse, overflow of the target."""

from __future__ import annotations

import logging

import pytest
from doorbell_helpers import WAIT, eventually
from rq_helpers import SHORT

from unidist_queue import RedisMessageQueue


def test_a_nack_past_max_attempts_moves_the_message(rmq: RedisMessageQueue,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    rmq.declare("q", max_attempts=2, dead_letter="dead")
    rmq.add("q", "poison")
    rmq.nack(rmq.reserve("q", lease=60))
    with caplog.at_level(logging.WARNING, logger="unidist_queue.redisq"):
        rmq.nack(rmq.reserve("q", lease=60), delay=60)  # the delay does not apply
    assert rmq.count("q") == 0 and rmq.stats("q").dead == 1 and rmq.stats("q").delayed == 0
    msgs = rmq.messages("dead")
    assert [m.body for m in msgs] == ["poison"] and msgs[0].attempts == 0
    assert "moved to queue 'dead'" in caplog.text


def test_a_lapse_past_max_attempts_drops_without_dead_letter(rmq: RedisMessageQueue,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    rmq.declare("q", max_attempts=1)
    rmq.add("q", "x")
    rmq.reserve("q", lease=SHORT)
    with caplog.at_level(logging.WARNING, logger="unidist_queue.redisq"):
        eventually(lambda: rmq.stats("q").dead == 1)
    assert rmq.count("q") == 0 and "dropped (no dead_letter)" in caplog.text


def test_a_lapse_is_seen_from_the_dead_letter_queue(rmq: RedisMessageQueue) -> None:
    rmq.declare("q", max_attempts=1, dead_letter="dead")
    rmq.add("q", "x")
    rmq.reserve("q", lease=SHORT)
    assert rmq.get("dead", timeout=WAIT) == "x"  # nobody looked at "q": the move is due all the same


def test_a_full_rejecting_dead_letter_queue_drops_with_an_error(rmq: RedisMessageQueue,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    rmq.declare("dead", maxlen=1, overflow="reject")
    rmq.add("dead", "full")
    rmq.declare("q", max_attempts=1, dead_letter="dead")
    rmq.add("q", "x")
    with caplog.at_level(logging.WARNING, logger="unidist_queue.redisq"):
        rmq.nack(rmq.reserve("q", lease=60))
    assert rmq.all("dead") == ["full"] and rmq.stats("q").dead == 1
    assert any(r.levelno == logging.ERROR for r in caplog.records)
