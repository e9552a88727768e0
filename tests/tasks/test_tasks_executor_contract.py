"""The Executor part of DESIGN.md section 6, through public behaviour.

CPython's own ``ThreadPoolExecutor`` tests run against ``TaskHandler`` in
``test_tasks_cpython_futures.py`` where the interpreter ships them; the checks here run
on every interpreter: ``ShutDown`` is a ``RuntimeError``, the default number of
workers, no stale references, ``cancel_futures`` and what a worker was handed,
interpreter exit, and a handler nobody references.
"""

from __future__ import annotations

import gc
import os
import queue
import subprocess
import sys
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Iterator, List, Optional

import pytest
from conftest import child_env
from helpers import worker_threads

import unidist_queue
from unidist_queue import ShutDown, TaskHandler, UnidistQueueError
from unidist_queue.tasks import default_workers

WAIT = 10.0  # every wait in these tests is bounded


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Objects must be freed by reference counting alone (a cycle would keep them)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# -- 1. ShutDown is a RuntimeError ----------------------------------------------------------


def test_shutdown_error_is_a_runtime_error_and_more() -> None:
    assert issubclass(ShutDown, UnidistQueueError)
    assert issubclass(ShutDown, RuntimeError)
    assert ShutDown.__mro__[1:3] == (UnidistQueueError, RuntimeError)
    if sys.version_info >= (3, 13):
        assert issubclass(ShutDown, queue.ShutDown)
    assert unidist_queue.ShutDown is ShutDown


def test_submit_after_shutdown_raises_a_runtime_error() -> None:
    th = TaskHandler(1)
    assert th.shutdown(timeout=WAIT) == []
    with pytest.raises(RuntimeError) as info:
        th.submit(abs, -1)
    assert isinstance(info.value, ShutDown)


# -- 2. max_workers=None hires as many workers as ThreadPoolExecutor() would run ------------


def _expected_default() -> int:
    """What each version's ``concurrent/futures/thread.py`` computes for ``max_workers=None``."""
    if sys.version_info >= (3, 13):
        cpus = os.process_cpu_count()
    else:
        cpus = os.cpu_count()
    return min(32, (cpus or 1) + 4)


def test_default_max_workers_is_the_thread_pool_executors() -> None:
    stdlib = ThreadPoolExecutor()
    try:
        assert stdlib._max_workers == _expected_default()
    finally:
        stdlib.shutdown()
    assert default_workers() == _expected_default()
    with TaskHandler() as th:
        n = _expected_default()
        assert th.roster() == th.roster("default") == list(range(1, n + 1))
        assert len(th.status()["workers"]) == n
        # they all run at once: each task waits at a barrier for the others
        barrier = threading.Barrier(n, timeout=WAIT)
        fs = [th.submit(barrier.wait) for _ in range(n)]
        assert sorted(f.result(WAIT) for f in fs) == list(range(n))


def test_zero_max_workers_hires_nobody_and_tasks_wait_for_a_hire() -> None:
    th = TaskHandler(0)
    assert th.roster() == []
    f = th.submit(int, "7")
    assert not f.done()
    th.hire()
    assert f.result(WAIT) == 7
    assert th.shutdown(timeout=WAIT) == []


# -- 3. a worker keeps no reference to a finished task --------------------------------------


class Payload:
    """Something only the task's function, arguments or result refer to."""

    def method(self, arg: Payload) -> Payload:
        return Payload()

    def fail(self, arg: Payload) -> None:
        raise Failure(arg)


class Failure(Exception):
    """A task's exception (weak references work on it, unlike on built-in exceptions)."""


def _frames(tb: Optional[TracebackType]) -> List[str]:
    names = []
    while tb is not None:
        names.append(os.path.basename(tb.tb_frame.f_code.co_filename))
        tb = tb.tb_next
    return names


@pytest.mark.usefixtures("no_gc")
@pytest.mark.parametrize("how", ["result", "exception"])
def test_an_idle_worker_keeps_nothing_of_its_finished_task(how: str) -> None:
    freed = threading.Semaphore(0)  # released by a weak reference's callback

    def watch(obj: object) -> weakref.ref[object]:
        return weakref.ref(obj, lambda _: freed.release())

    with TaskHandler(1) as th:
        obj, arg = Payload(), Payload()
        refs = [watch(obj), watch(arg)]
        f = th.submit(obj.method if how == "result" else obj.fail, arg)
        if how == "result":
            refs.append(watch(f.result(WAIT)))
        else:
            exc = f.exception(WAIT)
            assert isinstance(exc, Failure)
            assert not {"_pool.py", "_running.py"} & set(_frames(exc.__traceback__))  # no worker frame kept
            refs.append(watch(exc))
            del exc
        del obj, arg, f
        # as CPython's test_no_stale_references: nothing else runs, the worker goes idle
        assert all(freed.acquire(timeout=WAIT) for _ in refs)
        assert [r() for r in refs] == [None, None, None]


@pytest.mark.usefixtures("no_gc")
def test_a_busy_worker_keeps_nothing_of_the_task_it_finished_before() -> None:
    release_first, second_started, release_second = threading.Event(), threading.Event(), threading.Event()

    def first(arg: Payload) -> Payload:
        assert release_first.wait(WAIT)
        return Payload()

    def second() -> None:
        second_started.set()
        assert release_second.wait(WAIT)

    with TaskHandler(1) as th:
        arg = Payload()
        f1 = th.submit(first, arg)
        f2 = th.submit(second)  # waits: the worker takes it itself when the first ends
        refs = [weakref.ref(arg)]
        del arg
        release_first.set()
        assert second_started.wait(WAIT)
        refs.append(weakref.ref(f1.result(WAIT)))
        refs.append(weakref.ref(f1))  # type: ignore[arg-type]
        del f1
        try:
            assert [r() for r in refs] == [None, None, None]  # while the worker runs the second
        finally:
            release_second.set()
        assert f2.result(WAIT) is None


# -- 4. shutdown(cancel_futures=True) cancels only the tasks no worker was handed -----------


def test_cancel_futures_spares_a_task_a_worker_took_but_has_not_started() -> None:
    gate, update_started, release_update = threading.Event(), threading.Event(), threading.Event()

    def held() -> str:
        assert gate.wait(WAIT)
        return "held"

    def slow_update() -> None:
        update_started.set()
        assert release_update.wait(WAIT)

    th = TaskHandler(1)
    a = th.submit(held)
    b = th.submit(str, "taken")  # waits in the series: the only worker is busy
    u = th.update(slow_update)  # pending: the worker runs it before its next task
    gate.set()  # the worker finishes a, takes b, then runs the update first
    assert update_started.wait(WAIT)
    c = th.submit(str, "waiting")  # waits in the series
    try:
        unfinished = th.shutdown(wait=False, cancel_futures=True)
    finally:
        release_update.set()
    assert [t.future for t in unfinished] == [c]
    assert c.cancelled()
    assert b.result(WAIT) == "taken"  # a worker's thread had taken it: it ran
    assert a.result(WAIT) == "held" and u.result(WAIT) == [None]
    assert th.shutdown(timeout=WAIT) == []
    assert worker_threads() == []


def test_cancel_futures_lets_a_task_handed_to_a_worker_run() -> None:
    update_started, release_update = threading.Event(), threading.Event()

    def slow_update() -> None:
        update_started.set()
        assert release_update.wait(WAIT)

    th = TaskHandler(1)
    u = th.update(slow_update)
    assert update_started.wait(WAIT)
    d = th.submit(str, "handed over")  # the worker is free: routed to it at once
    try:
        unfinished = th.shutdown(wait=False, cancel_futures=True)
    finally:
        release_update.set()
    assert unfinished == []
    assert d.result(WAIT) == "handed over"
    assert u.result(WAIT) == [None]
    assert th.shutdown(timeout=WAIT) == []
    assert worker_threads() == []


def test_cancel_futures_as_cpython_checks_it() -> None:
    release = threading.Event()
    th = TaskHandler(5)
    fs = [th.submit(release.wait, WAIT) for _ in range(50)]  # one to each idle worker, then queued
    try:
        unfinished = th.shutdown(wait=False, cancel_futures=True)
    finally:
        release.set()
    assert th.shutdown(timeout=WAIT) == []
    cancelled = [f for f in fs if f.cancelled()]
    assert cancelled == fs[5:] and [t.future for t in unfinished] == cancelled
    assert [f.result(0) for f in fs[:5]] == [True] * 5


# -- 5. interpreter exit ----------------------------------------------------------------------

CHILD = r"""
import atexit, threading
import unidist_queue
from unidist_queue import TaskHandler

exit_began = threading.Event()
printing = threading.Lock()  # print() writes the line and its end separately
th = TaskHandler(2)

def task(i):
    assert exit_began.wait(60), "the task ran out of time"
    with printing:
        print(f"task {i} done", flush=True)

futures = [th.submit(task, i) for i in range(4)]
futures.append(th.submit_to("nobody", print, "never run"))
if MODE == "shutdown(wait=False)":
    th.shutdown(wait=False)
# Registered after unidist_queue's own hook, so it runs before it: the tasks end only
# once the interpreter's exit has begun.
threading._register_atexit(exit_began.set)

@atexit.register
def after_the_hooks():
    for label, handler in (("old", th), ("new", TaskHandler(1))):
        try:
            handler.submit(print, "never run")
        except RuntimeError as exc:
            kind = type(exc).__name__, isinstance(exc, unidist_queue.ShutDown)
            print(label, "submit raised", *kind, flush=True)
    print("cancelled", futures[-1].cancelled(), flush=True)

print("main done", flush=True)
"""


@pytest.mark.parametrize("mode", ["no shutdown", "shutdown(wait=False)"])
def test_tasks_finish_at_interpreter_exit_and_submit_then_raises(mode: str) -> None:
    script = f"MODE = {mode!r}\n" + CHILD
    proc = subprocess.run(
        [sys.executable, "-c", script], env=child_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.stderr == "" and proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0] == "main done"
    assert sorted(lines[1:5]) == [f"task {i} done" for i in range(4)]
    assert lines[5:] == [
        "old submit raised ShutDown True",
        "new submit raised ShutDown True",
        "cancelled True",
    ]


# -- 6. a handler nobody references shuts its workers down ------------------------------------


def test_an_unreferenced_handler_runs_what_it_can_then_its_workers_exit() -> None:
    gate = threading.Event()
    th = TaskHandler(2)
    threads = worker_threads()
    assert len(threads) == 2
    held = [th.submit(gate.wait, WAIT) for _ in range(2)]
    queued = [th.submit(abs, -i) for i in range(10)]
    unserved = th.submit_to("nobody", abs, -1)
    ref = weakref.ref(th)
    del th
    gc.collect()
    assert ref() is None
    gate.set()
    assert [f.result(WAIT) for f in held] == [True, True]
    assert [f.result(WAIT) for f in queued] == list(range(10))
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert unserved.cancelled()


@pytest.mark.usefixtures("no_gc")
def test_dropping_the_last_reference_is_enough() -> None:
    th = TaskHandler(3)
    threads = worker_threads()
    results = th.map(abs, range(-5, 5))
    del th  # reference counting alone: CPython's test_del_shutdown joins without a timeout
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert list(results) == [abs(i) for i in range(-5, 5)]


def test_a_handler_its_tasks_refer_to_lives_until_they_ran() -> None:
    gate = threading.Event()
    th = TaskHandler(1)
    threads = worker_threads()
    first = th.submit(gate.wait, WAIT)
    later = th.submit(lambda h: h.roster(), th)  # the queued task holds the handler
    ref = weakref.ref(th)
    del th
    gc.collect()
    assert ref() is not None
    gate.set()
    assert first.result(WAIT) is True
    assert later.result(WAIT) == [1]
    del later
    gc.collect()
    for t in threads:
        t.join(WAIT)
    assert ref() is None and not any(t.is_alive() for t in threads)
