"""The future a TaskHandler returns (``unidist_queue._future.TaskFuture``): a Future in full.

``TaskFuture`` is a ``concurrent.futures.Future`` made cheaper: its condition is a
``FutureLock`` (an ``RLock`` with ``wait``/``notify``), its callbacks list is made on
first use. CPython's own tests of the ``Future`` class (``FutureTests``) run against it
where the interpreter ships them (imported unchanged, as in
``test_tasks_cpython_futures.py``; the module's ``Future`` and ``create_future`` names
make ours while a test runs, and the ``concurrent.futures`` logger writes to stderr as
outside pytest, where two tests read it); the checks below run on every interpreter: waiting with
and without a timeout, several waiters, cancel, ``wait``/``as_completed``, callbacks,
``asyncio.wrap_future``, and that nothing is left behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import importlib
import logging
import threading
import types
import unittest
from typing import Any, List, Optional

import pytest

from unidist_queue import TaskHandler
from unidist_queue._future import _WAITERS, FUTURE, FutureLock, TaskFuture

WAIT = 10.0


def _cpython_future_tests() -> Optional[types.ModuleType]:
    """The CPython module holding ``FutureTests``, or ``None`` if this Python lacks it."""
    for name in ("test.test_concurrent_futures.test_future", "test.test_concurrent_futures"):
        try:
            module = importlib.import_module(name)
        except (ImportError, unittest.SkipTest):
            continue
        if hasattr(module, "FutureTests"):
            return module
    return None


_cpython = _cpython_future_tests()


def _create_future(state: str = "PENDING", exception: Any = None, result: Any = None) -> TaskFuture:
    f = TaskFuture()
    f._state = state
    f._exception = exception
    f._result = result
    return f


if _cpython is not None:

    class TestCPythonFutureTestsOnTaskFuture(_cpython.FutureTests):  # type: ignore[name-defined,misc]
        """CPython's ``FutureTests``, their ``Future()`` being a ``TaskFuture``."""

        def setUp(self) -> None:
            assert _cpython is not None
            for name, value in (("Future", TaskFuture), ("create_future", _create_future)):
                if hasattr(_cpython, name):
                    self.addCleanup(setattr, _cpython, name, getattr(_cpython, name))
                    setattr(_cpython, name, value)
            # two tests read a callback's error from stderr, where logging's last resort
            # writes it; pytest's capture of the root logger would take it first
            logger = logging.getLogger("concurrent.futures")
            self.addCleanup(setattr, logger, "propagate", logger.propagate)
            logger.propagate = False
            super().setUp()


@pytest.mark.skipif(_cpython is None, reason="this Python ships without CPython's FutureTests")
def test_cpython_future_tests_were_found() -> None:
    assert _cpython is not None and hasattr(_cpython, "FutureTests")


# -- on every interpreter ---------------------------------------------------------------------


def test_a_handler_returns_task_futures() -> None:
    assert FUTURE is TaskFuture  # this interpreter's Future.__init__ sets the fields we know
    with TaskHandler(1) as th:
        f = th.submit(abs, -1)
        assert isinstance(f, cf.Future) and type(f) is TaskFuture
        assert f.result(WAIT) == 1
        assert repr(f).startswith("<Future at 0x") and repr(f).endswith("state=finished returned int>")


def test_result_waits_and_times_out() -> None:
    f = TaskFuture()
    with pytest.raises(cf.TimeoutError):
        f.result(timeout=0.01)
    with pytest.raises(cf.TimeoutError):
        f.result(timeout=0)
    threading.Timer(0.01, f.set_result, ("done",)).start()
    assert f.result(WAIT) == "done"
    assert not _WAITERS


def test_every_waiter_wakes() -> None:
    f = TaskFuture()
    got: List[Any] = []
    lock = threading.Lock()
    started = threading.Barrier(6)

    def waiter() -> None:
        started.wait(WAIT)
        value = f.result(WAIT)
        with lock:
            got.append(value)

    threads = [threading.Thread(target=waiter) for _ in range(5)]
    for t in threads:
        t.start()
    started.wait(WAIT)
    f.set_result(7)
    for t in threads:
        t.join(WAIT)
    assert got == [7] * 5 and not _WAITERS


def test_cancel_wakes_a_waiter_and_exception_is_delivered() -> None:
    f = TaskFuture()
    threading.Timer(0.01, f.cancel).start()
    with pytest.raises(cf.CancelledError):
        f.result(WAIT)
    g = TaskFuture()
    threading.Timer(0.01, g.set_exception, (ValueError("no"),)).start()
    assert isinstance(g.exception(WAIT), ValueError)
    assert not _WAITERS


def test_wait_and_as_completed_see_task_futures() -> None:
    fs = [TaskFuture() for _ in range(3)]
    threading.Timer(0.01, fs[1].set_result, (1,)).start()
    done, pending = cf.wait(fs, timeout=WAIT, return_when=cf.FIRST_COMPLETED)
    assert done == {fs[1]} and pending == {fs[0], fs[2]}
    fs[2].set_result(2)
    fs[0].set_exception(ValueError("zero"))
    assert set(cf.as_completed(fs, timeout=WAIT)) == set(fs)
    assert all(not f._waiters for f in fs)


def test_callbacks_run_in_order_once_done_or_at_once() -> None:
    f = TaskFuture()
    calls: List[Any] = []
    assert f._done_callbacks == ()  # no list until the first callback
    f.add_done_callback(lambda g: calls.append(("first", g.result())))
    f.add_done_callback(lambda g: calls.append(("second", g.result())))
    f.set_result(3)
    f.add_done_callback(lambda g: calls.append(("late", g.result())))
    assert calls == [("first", 3), ("second", 3), ("late", 3)]


def test_asyncio_wraps_a_task_future() -> None:
    async def main(th: TaskHandler) -> Any:
        return await asyncio.wrap_future(th.submit(sum, [1, 2, 3]))

    with TaskHandler(1) as th:
        assert asyncio.run(main(th)) == 6


def test_the_future_lock_is_a_condition() -> None:
    lock = FutureLock()
    with pytest.raises(RuntimeError):
        lock.wait(0)
    with pytest.raises(RuntimeError):
        lock.notify()
    with lock:
        assert lock.wait(0) is False and lock.wait(0.01) is False
        lock.notify_all()  # nobody waits: nothing happens
    ready = threading.Event()
    woken: List[bool] = []

    def sleeper() -> None:
        with lock:
            ready.set()
            woken.append(lock.wait(WAIT))

    threads = [threading.Thread(target=sleeper) for _ in range(2)]
    for t in threads:
        ready.clear()
        t.start()
        assert ready.wait(WAIT)
    with lock:  # both wait (each released the lock in wait)
        lock.notify(1)
    threads[0].join(WAIT)
    with lock:
        lock.notify(5)
    threads[1].join(WAIT)
    assert woken == [True, True] and not _WAITERS
