"""Fork safety: the descriptors a child made by ``os.fork()`` must not keep.

A store directory's lock is an ``flock`` lock, which the OS releases when its owner
dies. Such a lock belongs to the open file description, which a child made with
``os.fork()`` shares: so that the lock still dies with the process that took it (and
not with the last of its forked children), the hook registered here with
:func:`os.register_at_fork` calls, in the child, the *disown* function of every owner
tracked (:func:`track`) before ``os.fork()`` returns there (until then the child shares
the lock). A disown function closes the child's copies of its owner's descriptors and
makes the owner refuse every later use; it may take no lock (another thread of the
parent may have held one at the fork): only attribute writes and ``os.close``.

An owner opens (and records) or forgets (and closes) such descriptors while holding
:func:`guard`, the lock the hook holds across the fork, so that the child never
inherits a descriptor its owner's disown function cannot see. A child started with
``subprocess`` or ``multiprocessing``'s spawn inherits nothing: Python opens files
non-inheritable.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any, Callable, TypeVar

__all__ = ["forget", "guard", "track"]

_T = TypeVar("_T")

# Every owner tracked and not yet forgotten, with its disown function (a plain function
# of the owner: no strong reference to it). _registry guards it, see guard().
_OPEN: weakref.WeakKeyDictionary[Any, Callable[[Any], None]] = weakref.WeakKeyDictionary()
_registry = threading.RLock()


def guard() -> threading.RLock:
    """The lock the at-fork hook holds across ``os.fork()``: hold it (``with guard():``)
    from opening a descriptor a child must not keep to recording it, and from forgetting
    one to closing it. Reentrant; a new lock in a child. Thread-safe."""
    return _registry


def track(owner: _T, disown: Callable[[_T], None]) -> None:
    """With :func:`guard` held: in a child made by ``os.fork()``, call ``disown(owner)``
    (see the module docstring), until :func:`forget` or ``owner`` is garbage. O(1)."""
    _OPEN[owner] = disown


def forget(owner: object) -> None:
    """With :func:`guard` held: stop tracking ``owner`` (no-op if untracked). O(1)."""
    _OPEN.pop(owner, None)


def _before_fork() -> None:
    _registry.acquire()


def _after_fork_in_parent() -> None:
    _registry.release()


def _after_fork_in_child() -> None:
    """In a child made by ``os.fork()``: disown every owner tracked.

    The child runs one thread; the registry lock it inherited (held by the forking
    thread, see :func:`_before_fork`) is replaced, never waited for.
    """
    global _registry
    _registry = threading.RLock()
    for owner, disown in list(_OPEN.items()):
        disown(owner)
    _OPEN.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
