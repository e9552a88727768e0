"""Interpreter exit for :class:`~unidist_queue.Pusher`: report the events it cannot keep.

Internal. Every open Pusher is tracked here by a weak reference to its ``close_at_exit``
method (:func:`track`; a Pusher that closes forgets itself). An :func:`atexit.register`
hook calls each one still alive: it closes the Pusher without a last attempt or a wait
and logs its unsent events (WARNING when they are lost: the queue is not durable).

Why ``atexit`` (and not ``threading._register_atexit``, as the TaskHandler's pools use):
it runs after the interpreter joined its non-daemon threads and after the TaskHandlers'
workers finished, so whatever they pushed is counted; and before ``logging``'s own
``atexit`` hook (registered earlier, run later), so the report is written. A forked
child forgets its parent's Pushers: their threads and their events are the parent's.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Callable, Dict

__all__ = ["track"]

logger = logging.getLogger("unidist_queue.push")

_lock = threading.Lock()  # guards _open and _next
_open: Dict[int, weakref.WeakMethod[Callable[[], None]]] = {}  # open Pushers, by token
_next = 0


def track(close_at_exit: Callable[[], None]) -> Callable[[], None]:
    """Call ``close_at_exit`` (a bound method, held weakly) at interpreter exit; return the
    function that stops that (idempotent). O(1). Thread-safe."""
    global _next
    method = weakref.WeakMethod(close_at_exit)
    with _lock:
        _next += 1
        token = _next
        _open[token] = method

    def untrack() -> None:
        with _lock:
            _open.pop(token, None)

    return untrack


def _at_exit() -> None:
    """The interpreter is exiting: close every Pusher still open and alive."""
    with _lock:
        methods = list(_open.values())
        _open.clear()
    for method in methods:
        close_at_exit = method()
        if close_at_exit is None:
            continue  # collected meanwhile
        try:
            close_at_exit()
        except Exception:  # pragma: no cover - _report_unsent never raises; a last resort
            logger.exception("closing a Pusher at interpreter exit failed")


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _open.clear()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
