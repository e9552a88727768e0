"""Task functions for ``test_tasks_crash.py``, importable by name in the test and its child.

Imported as the top-level module ``_crash_tasks`` (its folder, ``tests/tasks/``, is on
``sys.path`` under pytest, which puts a test file's folder there, and on ``PYTHONPATH``
in the child), so a durable series stores
:func:`work` under the same name in both processes.

Every run appends lines to the log file named in its arguments, with ``O_APPEND`` and an
``fsync`` per line, so whatever a run wrote before a kill -9 is on disk:
``"start <n> <pid>"`` when it begins, ``"end <n> <pid>"`` when it is done.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import List, Tuple

HOLDING = False
"""Set by the child process: from then on every run blocks (until the process is killed)."""

HELD = threading.Semaphore(0)
"""Released by each run that starts blocking."""

_NEVER = threading.Event()  # never set: a held run waits on it

RESULTS: weakref.WeakSet[Result] = weakref.WeakSet()
"""Every result :func:`work` returned that something still refers to."""


class Result:
    """What :func:`work` returns (weak-referenceable, to see whether anything keeps it)."""

    def __init__(self, n: int) -> None:
        self.n = n


def note(log: str, line: str) -> None:
    """Append ``line`` to ``log`` and fsync it."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{line}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def work(log: str, n: int, fail: bool = False) -> Result:
    """Task ``n``: log its start, block if ``HOLDING``, log its end; raise if ``fail``."""
    note(log, f"start {n} {os.getpid()}")
    if HOLDING:
        HELD.release()
        _NEVER.wait(60.0)  # the child is killed long before; the child's faulthandler at 60 s
        raise RuntimeError(f"task {n} was held and not killed")
    note(log, f"end {n} {os.getpid()}")
    if fail:
        raise RuntimeError(f"task {n} failed on purpose")
    result = Result(n)
    RESULTS.add(result)
    return result


def read_log(log: str) -> List[Tuple[str, int, int]]:
    """The log's lines as ``(event, n, pid)``, in the order they were written."""
    if not os.path.exists(log):
        return []
    with open(log, encoding="utf-8") as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        event, n, pid = line.split()
        out.append((event, int(n), int(pid)))
    return out
