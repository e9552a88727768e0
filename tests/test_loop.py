"""Loop: the original buildbot loop's behaviours (ORIGINALS.md section 5), first tests."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, List, Optional

import pytest

from unidist_queue.loop import DelegateLoop, Loop

WAIT = 30.0


def test_one_processor_runs_once() -> None:
    calls: List[str] = []
    with Loop(lambda: calls.append("p") and None) as loop:  # type: ignore[func-returns-value]
        loop.trigger()
        assert loop.wait_quiet(WAIT)
    assert calls == ["p"]


def test_300_processors_each_once_in_order() -> None:
    calls: List[int] = []
    procs = [(lambda i=i: calls.append(i)) for i in range(300)]  # type: ignore[misc]
    with Loop(*procs) as loop:  # type: ignore[arg-type]
        loop.trigger()
        assert loop.wait_quiet(WAIT)
    assert calls == list(range(300))


def test_retrigger_three_times_gives_three_passes() -> None:
    calls: List[str] = []
    left = [3]
    loop = Loop()

    def c() -> None:
        calls.append(f"c-{left[0]}")
        if left[0] > 1:
            left[0] -= 1
            loop.trigger()

    def d() -> None:
        calls.append("d")

    loop.add(c)
    loop.add(d)
    with loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
    assert calls == ["c-3", "d", "c-2", "d", "c-1", "d"]


def test_rings_during_a_pass_merge_into_one_more_pass() -> None:
    calls: List[str] = []
    loop = Loop()
    first = [True]

    def p() -> None:
        calls.append("p")
        if first[0]:
            first[0] = False
            for _ in range(4):
                loop.trigger()

    loop.add(p)
    with loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
    assert calls == ["p", "p"]


def test_timer_uses_max_of_result_and_min_delay(clock: Any) -> None:
    """A processor asking for +10 s runs at 0, 10, 20, 30, 40 on a manual clock."""
    times: List[float] = []
    ran = threading.Condition()
    start = clock()

    def p() -> Optional[float]:
        with ran:
            times.append(clock() - start)
            ran.notify_all()
        return clock() + 10 if len(times) < 5 else None

    with Loop(p, min_delay=5.0, clock=clock) as loop:
        loop.trigger()
        for n in range(2, 6):
            with ran:
                assert ran.wait_for(lambda n=n: len(times) == n - 1, WAIT)  # type: ignore[misc]
            assert loop.wait_quiet(WAIT)
            clock.advance(10)
            loop.poke()
        with ran:
            assert ran.wait_for(lambda: len(times) == 5, WAIT)
    assert times == [0, 10, 20, 30, 40]


def test_errors_are_logged_and_the_pass_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    calls: List[str] = []

    def bad() -> None:
        raise RuntimeError("boom")

    def bool_result() -> bool:
        return True

    with Loop(bad, bool_result, lambda: calls.append("ok") and None) as loop:  # type: ignore[arg-type,func-returns-value]
        loop.trigger()
        assert loop.wait_quiet(WAIT)
    assert calls == ["ok"]
    assert "boom" in caplog.text and "Traceback" in caplog.text
    assert "returned True" in caplog.text


def test_ring_while_stopped_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    calls: List[str] = []
    caplog.set_level(logging.DEBUG, logger="unidist_queue.loop")
    loop = Loop(lambda: calls.append("p") and None)  # type: ignore[func-returns-value]
    loop.trigger()
    loop.start()
    assert loop.wait_quiet(WAIT)
    loop.stop(WAIT)
    assert calls == []
    assert "ignored" in caplog.text


def test_start_stop_start() -> None:
    calls: List[str] = []
    loop = Loop(lambda: calls.append("p") and None)  # type: ignore[func-returns-value]
    for _ in range(2):
        loop.start()
        loop.trigger()
        assert loop.wait_quiet(WAIT)
        loop.stop(WAIT)
        loop.stop(WAIT)
    assert calls == ["p", "p"]


def test_delegate_asks_each_pass_and_survives_a_raising_source(caplog: pytest.LogCaptureFixture) -> None:
    calls: List[str] = []
    sources: List[Callable[[], List[Callable[[], None]]]] = []

    def get() -> List[Callable[[], None]]:
        if not sources:
            raise RuntimeError("no processors today")
        return sources.pop()()

    with DelegateLoop(get) as loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
        sources.append(lambda: [lambda: calls.append("x") and None])  # type: ignore[func-returns-value]
        loop.trigger()
        assert loop.wait_quiet(WAIT)
    assert calls == ["x"]
    assert "no processors today" in caplog.text
