"""Interpreter exit for :class:`~unidist_queue.TaskHandler` pools.

Internal. As ``ThreadPoolExecutor`` does, a hook registered with
``threading._register_atexit`` (run before the interpreter joins its non-daemon threads
and before ``atexit`` functions; ``atexit`` where it is missing) shuts down every live
pool and waits for its workers, so the tasks already submitted finish before the
process ends; from then on ``submit`` raises :class:`~unidist_queue.ShutDown` (a
``RuntimeError``). A forked child forgets its parent's pools (it has none of their
threads).
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import Any, Protocol

__all__ = ["track"]


class Exiting(Protocol):
    """What the hook calls on a pool."""

    def shutdown_at_exit(self, wait: bool) -> None:
        """Shut down (waiting for the workers if ``wait``); refuse tasks from now on."""


_pools: weakref.WeakSet[Any] = weakref.WeakSet()  # pools alive, not shut down by the exit
_exit_lock = threading.Lock()  # guards _pools and _exiting
_exiting = False  # the interpreter's exit began: every pool is shut down


def track(pool: Exiting) -> bool:
    """Shut ``pool`` down at interpreter exit; ``False`` if the exit already began."""
    with _exit_lock:
        if _exiting:
            return False
        _pools.add(pool)
        return True


def _at_exit() -> None:
    """Shut down every live pool and wait for its workers (the interpreter is exiting)."""
    global _exiting
    with _exit_lock:
        _exiting = True
        pools = list(_pools)
        _pools.clear()
    for pool in pools:
        pool.shutdown_at_exit(True)


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's worker threads: forget the parent's pools."""
    global _exit_lock, _pools
    _exit_lock = threading.Lock()
    _pools = weakref.WeakSet()


def _register() -> None:
    global _exiting
    register: Any = getattr(threading, "_register_atexit", None) or atexit.register
    try:
        register(_at_exit)
    except RuntimeError:  # pragma: no cover - imported while the interpreter exits
        _exiting = True
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


_register()
