"""TaskHandler (in memory): argument checks, reprs, updates around abandoned workers, a
worker crashed from a callback, and task queues that hold more than tasks.

The task queues are ordinary queues of the handler's MessageQueue (DESIGN.md section 6):
with a MessageQueue passed in, other code may add messages to them or declare options on
them. Every wait is bounded; no sleeps.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterator, List, Tuple

import pytest
from queue_core import wait_blocked

from unidist_queue import MessageQueue, Task, TaskHandler

WAIT = 10.0


class Gate:
    """A task (or update) function that signals ``started`` and waits for ``release``."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, value: Any = None) -> Any:
        self.started.set()
        assert self.release.wait(WAIT)
        return value


def wait_until(predicate: Callable[[], bool]) -> None:
    """Bounded wait for a state another thread reaches (checked every 10 ms)."""
    done = threading.Event()
    for _ in range(int(WAIT * 100)):
        if predicate():
            done.set()
            break
        done.wait(0.01)
    assert done.is_set()


@pytest.fixture
def shared() -> Iterator[MessageQueue]:
    with MessageQueue() as mq:
        yield mq


# -- arguments and reprs --------------------------------------------------------------------------


def test_bad_hire_and_update_arguments_name_themselves(th: TaskHandler) -> None:
    with pytest.raises(TypeError, match="slots"):
        th.hire(slots="2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name"):
        th.hire(name=7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="series must be a str or a list"):
        th.hire(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fn must be callable"):
        th.update("not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="kwargs"):
        th.update(print, kwargs=[("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="series"):
        th.update(print, series=1)  # type: ignore[arg-type]
    assert th.roster() == [] and th.update(print).result(WAIT) == []


def test_reprs_of_the_handler_and_of_a_task() -> None:
    gate = Gate()
    th = TaskHandler(1)
    try:
        assert repr(th) == "<TaskHandler 1 workers>"
        th.submit(gate.__call__, "x")
        assert gate.started.wait(WAIT)
        (task,) = th.terminate(1, crash=True)
        assert repr(task) == "<Task 1 'default' 'Gate.__call__'>"
    finally:
        gate.release.set()
        assert th.shutdown(timeout=WAIT) == []
    assert repr(th) == "<TaskHandler shut down>"


# -- updates and abandoned workers ---------------------------------------------------------------------


def test_an_update_pending_on_a_crashed_worker_leaves_it_out(th: TaskHandler) -> None:
    gates = [Gate(), Gate()]
    ran: List[str] = []
    w1, w2 = th.hire(), th.hire()
    for gate in gates:
        th.submit(gate)
        assert gate.started.wait(WAIT)  # each worker runs one
    update = th.update(lambda: ran.append(threading.current_thread().name) or "updated")
    assert len(th.terminate(w1, crash=True)) == 1
    assert not update.done()  # still waits for worker 2
    for gate in gates:
        gate.release.set()
    assert update.result(WAIT) == ["updated"]  # the crashed worker is left out
    assert ran == ["worker-2_0"] and th.roster() == [w2]
    last = Gate()
    th.submit(last)
    assert last.started.wait(WAIT)
    only = th.update(lambda: ran.append("never"), ephemeral=True)
    th.terminate(w2, crash=True)
    assert only.result(WAIT) == []  # its one worker crashed before running it
    last.release.set()
    assert ran == ["worker-2_0"]


def test_a_task_given_to_a_worker_busy_with_an_update_is_reassigned_unstarted(th: TaskHandler) -> None:
    gate = Gate()
    w1 = th.hire()
    update = th.update(gate, args=("u",), ephemeral=True)
    assert gate.started.wait(WAIT)  # the worker's thread runs the update: the worker is free
    future = th.submit(str.upper, "t")  # given to it, waiting behind the update
    assert th.terminate(w1, crash=True, reassign=True) == []
    assert not future.running() and not future.done()
    th.hire()
    assert future.result(WAIT) == "T"  # the next worker ran it
    gate.release.set()
    assert update.result(WAIT) == ["u"]  # the crashed worker had started it: it counts


def test_a_saved_update_that_raises_is_logged_and_the_worker_still_works(
    th: TaskHandler, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("update broke")

    caplog.set_level(logging.ERROR, logger="unidist_queue.tasks")
    assert th.update(broken).result(WAIT) == []  # no worker yet: saved for new hires
    th.hire()
    assert th.submit(sum, [1, 2]).result(WAIT) == 3
    assert "raised in worker 1" in caplog.text and "update broke" in caplog.text


def test_a_worker_crashed_while_it_runs_its_saved_updates_runs_no_more_of_them(th: TaskHandler) -> None:
    gate = Gate()
    after: List[str] = []
    th.update(gate)
    th.update(lambda: after.append(threading.current_thread().name))
    w1 = th.hire()
    assert gate.started.wait(WAIT)
    assert th.terminate(w1, crash=True) == []
    gate.release.set()
    th.hire()  # the second hire runs both saved updates
    assert th.submit(int, "5").result(WAIT) == 5
    assert after == ["worker-2_0"]


def test_a_worker_terminated_while_it_runs_its_saved_updates_takes_no_task(th: TaskHandler) -> None:
    gate = Gate()
    th.update(gate)
    w1 = th.hire()
    assert gate.started.wait(WAIT)
    future = th.submit(str.lower, "X")  # the worker is not taking tasks yet: it waits
    returned: List[List[Task]] = []
    stopper = threading.Thread(target=lambda: returned.append(th.terminate(w1)))
    stopper.start()
    wait_until(lambda: th.roster() == [])  # retiring
    gate.release.set()
    stopper.join(WAIT)
    assert not stopper.is_alive() and returned == [[]]
    assert not future.done() and th.status()["series"]["default"]["waiting"] == 1
    th.hire()
    assert future.result(WAIT) == "x"


def test_a_callback_that_crashes_its_own_worker_gets_back_the_task_it_took_next(th: TaskHandler) -> None:
    gate = Gate()
    ran: List[str] = []
    w1 = th.hire()
    first = th.submit(gate, "first")
    assert gate.started.wait(WAIT)
    second = th.submit(ran.append, "second")  # waits: the worker takes it when "first" ends
    returned: List[List[Task]] = []
    first.add_done_callback(lambda f: returned.append(th.terminate(w1, crash=True)))
    gate.release.set()
    assert first.result(WAIT) == "first"
    wait_until(lambda: bool(returned))
    assert [t.future for t in returned[0]] == [second]  # taken, not started
    assert not second.done() and ran == []
    assert second.cancel()


# -- task queues holding more than tasks ------------------------------------------------------------


def test_messages_that_are_not_tasks_are_skipped_and_removed(shared: MessageQueue) -> None:
    gate = Gate()
    shared.add("task:default", "not a task")
    shared.add("task:other", "not a task either")
    with TaskHandler(0, mq=shared) as th:
        th.hire()  # looks at the waiting messages: nothing to run
        assert shared.count("task:default") == 0
        early = th.submit_to("other", abs, -1)  # waits (nobody serves "other") behind the junk
        th.hire("other")  # skips the junk, runs the task
        assert early.result(WAIT) == 1 and shared.count("task:other") == 0
        first = th.submit(gate, 1)
        assert gate.started.wait(WAIT)
        shared.add("task:default", "junk")
        second = th.submit(abs, -2)  # waits behind the junk
        gate.release.set()
        assert (first.result(WAIT), second.result(WAIT)) == (1, 2)
        gate2 = Gate()
        busy = th.submit(gate2, 3)
        assert gate2.started.wait(WAIT)
        shared.add("task:default", "more junk")
        waiting = th.submit(abs, -4)
        returned = th.shutdown(wait=False, cancel_futures=True)
        assert [t.future for t in returned] == [waiting] and waiting.cancelled()
        gate2.release.set()
        assert busy.result(WAIT) == 3
    assert shared.count("task:default") == 0


def test_a_task_queue_declared_with_max_age_still_runs_every_task(shared: MessageQueue) -> None:
    shared.declare("task:default", max_age=3600)
    shared.add("task:default", "not a task")
    gate = Gate()
    with TaskHandler(0, mq=shared) as th:
        th.hire()
        first = th.submit(gate, 0)
        assert gate.started.wait(WAIT)
        rest = [th.submit(abs, -i) for i in range(1, 6)]  # wait in the declared queue
        shared.add("task:default", "junk in between")
        rest += [th.submit(abs, -i) for i in range(6, 9)]
        gate.release.set()
        assert [f.result(WAIT) for f in [first, *rest]] == list(range(9))
        assert th.status()["series"]["default"]["processed"] == 9
    assert shared.count("task:default") == 0


def test_a_put_waiting_for_room_in_a_task_queue_view_wakes_when_a_worker_takes(
    shared: MessageQueue,
) -> None:
    view = shared.view("task:default", maxsize=1)
    gate = Gate()

    def put_in_thread(item: str) -> Tuple[threading.Thread, threading.Event]:
        done = threading.Event()
        putter = threading.Thread(target=lambda: (view.put(item, timeout=WAIT), done.set()))
        putter.start()
        wait_blocked(shared, "task:default", putters=1)
        return putter, done

    with TaskHandler(0, mq=shared) as th:
        first = th.submit(gate, 1)  # no worker: it waits, and the view is full
        putter, done = put_in_thread("marker 1")
        th.hire()  # takes "first": room
        assert done.wait(WAIT) and gate.started.wait(WAIT)
        putter.join(WAIT)
        second = th.submit(abs, -2)  # waits behind "marker 1"
        putter, done = put_in_thread("marker 2")
        gate.release.set()  # the worker takes the marker, then "second": room
        assert done.wait(WAIT)
        putter.join(WAIT)
        assert (first.result(WAIT), second.result(WAIT)) == (1, 2)
    assert not putter.is_alive()
