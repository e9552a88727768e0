"""TaskHandler routing, after EventMQ's router: priorities, turns, listed order, hires."""

from __future__ import annotations

from typing import List

from helpers import Gate, who

from unidist_queue._routing import parse_series
from unidist_queue.tasks import TaskHandler

WAIT = 10.0


def test_parse_series() -> None:
    assert parse_series("a") == [(0, "a")]
    assert parse_series(["a", (10, "b")]) == [(0, "a"), (10, "b")]


def test_highest_priority_wins(th: TaskHandler) -> None:
    th.hire([(0, "s")], name="low")
    th.hire([(10, "s")], name="high")
    th.hire([(5, "s")], name="mid")
    assert [th.submit_to("s", who).result(WAIT) for _ in range(3)] == ["high"] * 3


def test_busy_high_priority_falls_back_to_lower(th: TaskHandler) -> None:
    gate = Gate()
    th.hire([(0, "s")], name="low")
    th.hire([(10, "s")], name="high")
    held = th.submit_to("s", gate.task(1))
    gate.wait_started()
    assert th.submit_to("s", who).result(WAIT) == "low"
    gate.opened.set()
    held.result(WAIT)


def test_equal_priorities_take_turns(th: TaskHandler) -> None:
    for name in ("a", "b", "c"):
        th.hire([(3, "s")], name=name)
    ran = [th.submit_to("s", who).result(WAIT) for _ in range(7)]
    assert ran == ["a", "b", "c", "a", "b", "c", "a"]


def test_least_recently_used_first(th: TaskHandler) -> None:
    gate = Gate()
    th.hire("s", name="a")
    th.hire("s", name="b")
    th.hire("s", name="c")
    fa = th.submit_to("s", gate.task("x"))  # a
    gate.wait_started()
    assert th.submit_to("s", who).result(WAIT) == "b"
    assert th.submit_to("s", who).result(WAIT) == "c"
    gate.opened.set()
    fa.result(WAIT)
    # a was used before b and c: it is least recently used now
    assert th.submit_to("s", who).result(WAIT) == "a"


def test_free_worker_drains_series_in_listed_order(th: TaskHandler) -> None:
    order: List[str] = []
    for i in range(2):
        th.submit_to("b", order.append, f"b{i}")
    for i in range(2):
        th.submit_to("a", order.append, f"a{i}")
    th.submit_to("c", order.append, "c0")
    th.hire(["a", "b", "c"])
    th.shutdown(timeout=WAIT)
    assert order == ["a0", "a1", "b0", "b1", "c0"]


def test_listed_order_beats_priority_when_draining(th: TaskHandler) -> None:
    order: List[str] = []
    th.submit_to("high", order.append, "high")
    th.submit_to("low", order.append, "low")
    th.hire([(0, "low"), (9, "high")])
    th.shutdown(timeout=WAIT)
    assert order == ["low", "high"]


def test_task_waits_for_a_qualified_hire(th: TaskHandler) -> None:
    th.hire("other")
    f = th.submit_to("rare", who)
    assert not f.done()
    assert th.status()["series"]["rare"]["waiting"] == 1
    th.hire(["x", "rare"], name="late")
    assert f.result(WAIT) == "late"


def test_tasks_only_run_on_qualified_workers(th: TaskHandler) -> None:
    th.hire("a", name="wa", slots=2)
    th.hire("b", name="wb", slots=2)
    fa = [th.submit_to("a", who) for _ in range(50)]
    fb = [th.submit_to("b", who) for _ in range(50)]
    assert {f.result(WAIT) for f in fa} == {"wa"}
    assert {f.result(WAIT) for f in fb} == {"wb"}


def test_slots_run_tasks_at_once(th: TaskHandler) -> None:
    gate = Gate()
    th.hire("s", slots=3, name="multi")
    fs = [th.submit_to("s", gate.task(i)) for i in range(3)]
    gate.wait_started(3)  # three at once on one worker
    assert {w for _, w in gate.log} == {"multi"}
    gate.opened.set()
    assert [f.result(WAIT) for f in fs] == [0, 1, 2]


def test_finishing_worker_takes_oldest_waiting_task(th: TaskHandler) -> None:
    gate = Gate()
    order: List[int] = []
    th.hire("s")
    first = th.submit_to("s", gate.task("first"))
    gate.wait_started()
    fs = [th.submit_to("s", order.append, i) for i in range(5)]
    gate.opened.set()
    first.result(WAIT)
    for f in fs:
        f.result(WAIT)
    assert order == [0, 1, 2, 3, 4]


def test_multi_series_worker_serves_each(th: TaskHandler) -> None:
    th.hire([(1, "a"), (2, "b")], name="both")
    assert th.submit_to("a", who).result(WAIT) == "both"
    assert th.submit_to("b", who).result(WAIT) == "both"
    assert th.roster("a") == th.roster("b") == [1]


def test_priority_is_per_series(th: TaskHandler) -> None:
    th.hire([(10, "a"), (0, "b")], name="a-first")
    th.hire([(0, "a"), (5, "b")], name="b-first")
    for _ in range(3):
        assert th.submit_to("a", who).result(WAIT) == "a-first"
        assert th.submit_to("b", who).result(WAIT) == "b-first"


def test_equals_take_turns_and_a_lower_priority_is_never_chosen(th: TaskHandler) -> None:
    th.hire([(1, "s")], name="low")
    th.hire([(7, "s")], name="x")
    th.hire([(7, "s")], name="y")
    ran = [th.submit_to("s", who).result(WAIT) for _ in range(6)]
    assert ran == ["x", "y", "x", "y", "x", "y"]


def test_busy_workers_fall_back_by_priority_then_wait(th: TaskHandler) -> None:
    gate = Gate()
    th.hire([(9, "s")], name="high")
    th.hire([(1, "s")], name="low")
    held = [th.submit_to("s", gate.task(i)) for i in range(2)]
    gate.wait_started(2)
    assert sorted(gate.log) == [(0, "high"), (1, "low")]
    waiting = th.submit_to("s", gate.task(2))  # both busy: it waits for whoever frees first
    assert th.status()["series"]["s"]["waiting"] == 1
    gate.opened.set()
    assert [f.result(WAIT) for f in [*held, waiting]] == [0, 1, 2]


def test_a_hire_takes_the_waiting_tasks_oldest_first(th: TaskHandler) -> None:
    order: List[int] = []
    for i in range(20):
        th.submit_to("s", order.append, i)
    th.hire("other")  # not qualified: takes none
    assert th.status()["series"]["s"]["waiting"] == 20
    th.hire("s")
    th.shutdown(timeout=WAIT)
    assert order == list(range(20))
