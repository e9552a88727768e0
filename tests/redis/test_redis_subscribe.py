"""subscribe over Redis: this client's changes synchronously, other clients' from the notifier."""

from __future__ import annotations

import threading
from typing import List

import pytest
from doorbell_helpers import WAIT, eventually
from rq_helpers import SHORT

from unidist_queue import RedisMessageQueue


def test_local_changes_are_told_synchronously(rmq: RedisMessageQueue) -> None:
    heard: List[str] = []
    every: List[str] = []
    off = rmq.subscribe("q", heard.append)
    rmq.subscribe("q", every.append)()  # a second subscriber, gone at once
    off_all = rmq.subscribe(None, every.append)
    rmq.add("q", 1)
    assert heard == ["q"]  # before add returned, in this thread
    rmq.add_many("q", [2, 3])
    assert heard == ["q", "q"]
    m = rmq.reserve("q", lease=60)
    rmq.nack(m)
    assert heard == ["q"] * 3
    rmq.add("q", 4, delay=60)  # heard of when promoted, not at the add
    rmq.add("other", 1)
    assert heard == ["q"] * 3 and every[-1] == "other"
    off()
    off()
    off_all()
    rmq.add("q", 5)
    assert heard == ["q"] * 3


def test_a_raising_callback_is_logged_and_never_breaks_the_call(
        rmq: RedisMessageQueue, caplog: pytest.LogCaptureFixture) -> None:
    def bad(name: str) -> None:
        raise RuntimeError("subscriber failed")

    rmq.subscribe("q", bad)
    assert rmq.add("q", 1) > 0
    assert "subscriber failed" in caplog.text


def test_other_clients_changes_come_from_the_notifier(rmq: RedisMessageQueue,
                                                      other: RedisMessageQueue) -> None:
    heard: List[str] = []
    threads: List[threading.Thread] = []
    got = threading.Event()

    def callback(name: str) -> None:
        heard.append(name)
        threads.append(threading.current_thread())
        got.set()

    rmq.subscribe("q", callback)
    other.add("q", 1)
    assert got.wait(WAIT)
    assert heard[0] == "q" and threads[0] is not threading.current_thread()


def test_a_promotion_made_by_this_client_is_told(rmq: RedisMessageQueue) -> None:
    heard: List[str] = []
    rmq.subscribe("q", heard.append)
    rmq.add("q", 1, delay=SHORT)
    assert heard == []
    eventually(lambda: rmq.count("q") == 1)
    assert "q" in heard
