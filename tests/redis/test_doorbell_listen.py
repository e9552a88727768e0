"""Listeners hear other clients' notifications, in the notifier thread (issue 15).

``listen(queue, callback)`` calls ``callback(queue)`` for notifications ``origin:1``
(messages became ready) whose origin is not this doorbell's (not for takes, kind 2, or
timed changes, kind 3); ``listen(None, ...)`` hears
every queue through one PSUBSCRIBE; a raising callback is logged at ERROR with its
traceback and the others still run; the unsubscriber stops the calls.
"""

from __future__ import annotations

import logging
import queue as stdlib_queue
import threading
from typing import List

import pytest
import redis
from doorbell_helpers import ORIGIN, WAIT, notify

from unidist_queue.redisq._doorbell import Doorbell


def heard(calls: stdlib_queue.Queue[str]) -> List[str]:
    """What was heard so far."""
    got = []
    while not calls.empty():
        got.append(calls.get_nowait())
    return got


def test_a_listener_hears_other_clients_not_its_own(bell: Doorbell, pub: redis.Redis) -> None:
    calls: stdlib_queue.Queue[str] = stdlib_queue.Queue()
    threads: List[threading.Thread] = []

    def callback(queue: str) -> None:
        threads.append(threading.current_thread())
        calls.put(queue)

    bell.listen("q", callback)
    notify(pub, "q", ORIGIN)  # our own: skipped
    notify(pub, "other")  # not listened to
    notify(pub, "q")
    assert calls.get(timeout=WAIT) == "q"
    notify(pub, "q", b"a-third-client")
    assert calls.get(timeout=WAIT) == "q"
    assert heard(calls) == []
    assert {t.name for t in threads} == {"unidist_queue-doorbell"}


def test_own_notifications_still_change_the_generation(bell: Doorbell, pub: redis.Redis) -> None:
    bell.watch("q")
    g = bell.generation("q")
    notify(pub, "q", ORIGIN)  # a promotion made by one of our scripts: waiters look
    assert bell.wait("q", g, WAIT) is True


def test_takes_and_timed_changes_wake_waiters_but_call_no_listener(
        bell: Doorbell, pub: redis.Redis) -> None:
    calls: stdlib_queue.Queue[str] = stdlib_queue.Queue()
    bell.listen("q", calls.put)
    bell.listen(None, calls.put)
    for kind in (2, 3):
        g = bell.generation("q")
        notify(pub, "q", kind=kind)
        assert bell.wait("q", g, WAIT) is True
    notify(pub, "q", kind=1)
    assert calls.get(timeout=WAIT) == "q"
    assert calls.get(timeout=WAIT) == "q"
    assert heard(calls) == []


def test_listening_to_none_hears_every_queue(bell: Doorbell, pub: redis.Redis) -> None:
    calls: stdlib_queue.Queue[str] = stdlib_queue.Queue()
    bell.listen(None, calls.put)
    names = ["a", "b:c", "*", "with space", "ünï"]
    notify(pub, names[0], ORIGIN)  # ours: skipped
    for name in names:
        notify(pub, name)
    pub.publish("elsewhere:n:x", b"another-client")  # not one of our channels
    assert [calls.get(timeout=WAIT) for _ in names] == names
    notify(pub, "last")
    assert calls.get(timeout=WAIT) == "last"
    assert heard(calls) == []


def test_a_queue_listener_and_an_every_queue_listener_each_hear_once(
    bell: Doorbell, pub: redis.Redis
) -> None:
    calls: stdlib_queue.Queue[str] = stdlib_queue.Queue()
    bell.listen(None, lambda q: calls.put("every " + q))
    bell.listen("q", lambda q: calls.put("one " + q))
    notify(pub, "q")
    notify(pub, "end")
    got = [calls.get(timeout=WAIT) for _ in range(3)]
    assert sorted(got) == ["every end", "every q", "one q"]
    assert heard(calls) == []


def test_a_raising_listener_is_logged_and_the_others_run(
    bell: Doorbell, pub: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    calls: stdlib_queue.Queue[str] = stdlib_queue.Queue()

    def broken(queue: str) -> None:
        raise RuntimeError("listener bug")

    bell.listen("q", broken)
    bell.listen("q", calls.put)
    with caplog.at_level(logging.ERROR, logger="unidist_queue.redisq._doorbell"):
        notify(pub, "q")
        assert calls.get(timeout=WAIT) == "q"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and "listener bug" in str(errors[0].exc_info[1])
    notify(pub, "q")  # the notifier still runs
    assert calls.get(timeout=WAIT) == "q"


def test_the_unsubscriber_stops_the_calls(bell: Doorbell, pub: redis.Redis) -> None:
    calls: stdlib_queue.Queue[str] = stdlib_queue.Queue()
    stop = bell.listen("q", lambda q: calls.put("stopped"))
    bell.listen("q", lambda q: calls.put("kept"))
    stop()
    stop()  # idempotent
    notify(pub, "q")
    assert calls.get(timeout=WAIT) == "kept"
    stop_all = bell.listen(None, lambda q: calls.put("every"))
    stop_all()
    notify(pub, "q")
    assert calls.get(timeout=WAIT) == "kept"
    assert heard(calls) == []
