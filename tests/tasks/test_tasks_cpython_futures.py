"""TaskHandler against CPython's own tests for ThreadPoolExecutor (DESIGN.md section 6).

CPython's ``test_concurrent_futures`` is the reference for the Executor part of
``TaskHandler``, as ``test_queue`` is for the view (``test_view.py``). Its thread-pool
test classes are not copied here: they are imported, unchanged, from the running
interpreter's own ``test`` package (Copyright (c) Python Software Foundation; PSF
License Agreement) and subclassed with ``executor_type = TaskHandler``, so the test
bodies are exactly CPython's, in the version that matches the interpreter: one module
on 3.9/3.10, a package (``test_thread_pool``, ``test_shutdown``, ``test_wait``,
``test_as_completed``, ``test_init``) from 3.12/3.13. Where an interpreter ships
without them (the 3.11 and 3.12 builds here do), a placeholder test is skipped saying
so; ``test_tasks_executor_contract.py`` checks the same contract on every interpreter.

Two adaptations, both to reach ``TaskHandler`` where a test names the executor another
way (the bodies are not changed):

* a few ``ThreadPoolShutdownTest`` tests build ``futures.ThreadPoolExecutor(...)``
  themselves instead of ``self.executor_type(...)``: while one of our tests runs, the
  CPython module's global ``futures`` is a copy of :mod:`concurrent.futures` whose
  ``ThreadPoolExecutor`` is ``TaskHandler``;
* the interpreter-exit tests start a child Python that imports the executor from
  :mod:`concurrent.futures` by class name: the child's script is prefixed with one line
  making ``concurrent.futures.TaskHandler`` (and ``ThreadPoolExecutor``) ours.

``TaskHandler`` also answers the two private attributes of ``ThreadPoolExecutor`` these
tests read: ``_max_workers`` (the workers hired at construction) and ``_threads``
(the threads of the current workers). Every other test passes or is skipped with the
deliberate difference of DESIGN.md that it trips on.
"""

from __future__ import annotations

import concurrent.futures as futures
import importlib
import sys
import types
import unittest
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from unidist_queue import TaskHandler


def _load() -> Optional[Dict[str, types.ModuleType]]:
    """CPython's thread-pool test modules by role, or ``None`` if this Python lacks them."""
    try:
        root = importlib.import_module("test.test_concurrent_futures")
    except (ImportError, unittest.SkipTest):
        return None
    if not hasattr(root, "__path__"):  # one module (3.9, 3.10)
        return {name: root for name in ("pool", "shutdown", "wait", "as_completed", "init")}
    parts = {"pool": "test_thread_pool", "shutdown": "test_shutdown", "wait": "test_wait",
             "as_completed": "test_as_completed", "init": "test_init"}
    package = "test.test_concurrent_futures."
    return {role: importlib.import_module(package + name) for role, name in parts.items()}


_cpython = _load()
_VERSION = ".".join(map(str, sys.version_info[:3]))

# -- why a test is skipped: each names the deliberate difference of DESIGN.md ----------------

EAGER = (
    "DESIGN.md section 6: max_workers=N hires N workers at once, where ThreadPoolExecutor "
    "starts one thread per submit up to max_workers; the test counts the threads started so far"
)
ZERO = (
    "DESIGN.md section 6: max_workers=0 is allowed and hires no worker yet (tasks wait for a "
    "hire); only a negative max_workers raises ValueError, with another message"
)
NAMES = (
    "DESIGN.md section 6: TaskHandler(max_workers=None, *, mq=None) takes no thread_name_prefix; "
    "a worker's threads are named '<worker name>_<slot>' (hire(name=...), 'worker-<id>' by default)"
)
INITIALIZER = (
    "DESIGN.md section 6: TaskHandler(max_workers=None, *, mq=None) takes no initializer and never "
    "breaks (no BrokenThreadPool); update() runs a function on every worker, and on each later "
    "hire before its first task"
)
SHUTDOWN_NAME = (
    "DESIGN.md section 2: submit after interpreter shutdown raises ShutDown, a RuntimeError "
    "subclass, so the child's traceback ends in 'unidist_queue.errors.ShutDown: ...', not in the "
    "'RuntimeError: cannot schedule new futures' the test looks for in its stderr (the same exit "
    "is checked in test_tasks_executor_contract.py)"
)

# -- the two adaptations ------------------------------------------------------------------------

_futures_with_ours = types.SimpleNamespace(
    **{**{name: getattr(futures, name) for name in futures.__all__}, "ThreadPoolExecutor": TaskHandler}
)
_CHILD_PRELUDE = (
    "import concurrent.futures as _cf, unidist_queue as _uq; "
    "_cf.TaskHandler = _cf.ThreadPoolExecutor = _uq.TaskHandler\n"
)


def _in_child_with_ours(run: Callable[..., Any]) -> Callable[..., Any]:
    """``assert_python_ok`` running ``-c script`` with :data:`_CHILD_PRELUDE` first."""

    def assert_python_ok(*args: str, **env_vars: Any) -> Any:
        argv = list(args)
        i = argv.index("-c")
        argv[i + 1] = _CHILD_PRELUDE + argv[i + 1]
        return run(*argv, **env_vars)

    return assert_python_ok


class _OnTaskHandler(unittest.TestCase):
    """First in the MRO of every adapted class: ``executor_type`` and the two adaptations."""

    executor_type = TaskHandler
    cpython_module: types.ModuleType

    def setUp(self) -> None:
        module = self.cpython_module
        for name, value in (("futures", _futures_with_ours), ("assert_python_ok", None)):
            if not hasattr(module, name):
                continue
            old = getattr(module, name)
            setattr(module, name, value if value is not None else _in_child_with_ours(old))
            self.addCleanup(setattr, module, name, old)
        super().setUp()


def _adapt(role: str, base_name: str, skips: Dict[str, str]) -> Tuple[str, type]:
    """``class Test<base>OnTaskHandler(_OnTaskHandler, <base>)`` with ``skips`` skipped."""
    assert _cpython is not None
    module = _cpython[role]
    base = getattr(module, base_name)
    name = f"Test{base_name}OnTaskHandler"
    attrs: Dict[str, Any] = {"cpython_module": module, "__module__": __name__, "__qualname__": name}
    for test, reason in skips.items():
        if hasattr(base, test):  # absent from some versions
            attrs[test] = unittest.skip(reason)(getattr(base, test))
    return name, type(name, (_OnTaskHandler, base), attrs)


ADAPTED: List[Tuple[str, str, Dict[str, str]]] = [
    ("pool", "ThreadPoolExecutorTest", {"test_max_workers_negative": ZERO, "test_idle_thread_reuse": EAGER}),
    ("shutdown", "ThreadPoolShutdownTest", {
        "test_threads_terminate": EAGER,
        "test_thread_names_assigned": NAMES,
        "test_thread_names_default": NAMES,
        "test_submit_after_interpreter_shutdown": SHUTDOWN_NAME,
    }),
    ("wait", "ThreadPoolWaitTests", {}),
    ("as_completed", "ThreadPoolAsCompletedTest", {}),
    ("init", "ThreadPoolInitializerTest", {"test_initializer": INITIALIZER}),
    ("init", "ThreadPoolFailingInitializerTest", {"test_initializer": INITIALIZER}),
]

if _cpython is not None:
    for _role, _base, _skips in ADAPTED:
        _name, _cls = _adapt(_role, _base, _skips)
        globals()[_name] = _cls
    del _role, _base, _skips, _name, _cls


@pytest.mark.skipif(
    _cpython is None,
    reason=f"test.test_concurrent_futures is not installed in this Python ({_VERSION}): "
    "CPython's ThreadPoolExecutor tests cannot run here",
)
def test_cpython_thread_pool_tests_were_found() -> None:
    assert _cpython is not None
    for role, base, _ in ADAPTED:
        assert hasattr(_cpython[role], base), (role, base)
