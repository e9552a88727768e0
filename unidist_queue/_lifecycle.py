"""The slower half of :class:`~unidist_queue.TaskHandler`: terminate, update, status, shutdown.

Internal. Functions here take the handler's :class:`~unidist_queue._pool.Pool` as their
first argument and are documented on the :class:`~unidist_queue.TaskHandler` methods
that call them. Helpers whose name ends in ``_locked`` are called with the pool's lock
held.

Interpreter exit (:func:`track`): as ``ThreadPoolExecutor`` does, a hook registered with
``threading._register_atexit`` (run before the interpreter joins its non-daemon threads
and before ``atexit`` functions) shuts down every live pool and waits for its workers,
so the tasks already submitted finish before the process ends; from then on
``submit`` raises :class:`~unidist_queue.ShutDown` (a ``RuntimeError``).
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ._util import check_seconds, deadline_of, remaining
from ._workers import Gather, Update, Worker

if TYPE_CHECKING:
    from ._pool import Pool
    from ._task import Job

__all__ = ["leave", "retire_tallies", "shutdown", "status", "terminate", "track", "update"]


# -- interpreter exit --------------------------------------------------------------------------

_pools: weakref.WeakSet[Pool] = weakref.WeakSet()  # pools alive, not shut down by the exit
_exit_lock = threading.Lock()  # guards _pools and _exiting
_exiting = False  # the interpreter's exit began: every pool is shut down


def track(pool: Pool) -> bool:
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
        pool._at_exit = True
        shutdown(pool, True, False, None)


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


# -- workers ------------------------------------------------------------------------------------


def leave(worker: Worker) -> None:
    """With the lock held: take ``worker`` out of every series."""
    for _, s in worker.series:
        s.leave(worker)


def retire_tallies(worker: Worker) -> None:
    """With the lock held: ``worker`` is gone; its series keep its finished counts."""
    with worker.mutex:
        for _, s in worker.series:
            s.retire_tally(worker.id)


def _retire_locked(h: Pool, worker: Worker, drain: bool) -> None:
    """Stop giving ``worker`` new tasks; its threads exit once idle.

    ``drain`` (shutdown): it keeps taking waiting tasks of its series until none is left.
    """
    worker.retiring = True
    for p, s in worker.series:
        s.set_busy(worker, p)
    if not drain:
        worker.active = False
        leave(worker)
        h._workers.pop(worker.id, None)
    worker.stop()


def _abandon_locked(h: Pool, worker: Worker) -> Tuple[List[Job], List[Update]]:
    """Give up on ``worker``'s threads: return its unfinished tasks and pending updates."""
    with worker.mutex:
        worker.abandoned = worker.retiring = True
        worker.active = False
        tasks = list(worker.assigned)
        worker.assigned.clear()
    retire_tallies(worker)
    h._live -= worker.live
    worker.live = 0
    leave(worker)
    if h._workers.get(worker.id) is worker:
        del h._workers[worker.id]
    updates = worker.take_updates()
    worker.stop()
    return tasks, updates


def _join(threads: Sequence[threading.Thread], deadline: Optional[float]) -> bool:
    """Join ``threads`` (not the current one) until ``deadline``; whether all ended."""
    me = threading.current_thread()
    for thread in threads:
        if thread is not me and thread.ident is not None:
            thread.join(remaining(deadline) if deadline is not None else None)
    return all(not t.is_alive() or t is me for t in threads)


def _drop_updates(worker: Worker, updates: List[Update]) -> None:
    for u in updates:
        if u.gather is not None:
            u.gather.drop(worker.id)


def _reassign(h: Pool, tasks: List[Job]) -> None:
    """Put abandoned tasks back at the front of their series and route them again."""
    seq = 0
    with h._lock:
        by_series: Dict[str, List[Job]] = {}
        for task in tasks:
            if task.future.running():
                h._resumed.add(task)
            by_series.setdefault(task.series, []).append(task)
        for name, group in by_series.items():
            s = h._series[name]
            seq = h._store.requeue(s, group) or seq
            seq = h._pump(s) or seq
    h._store.commit(seq)


def terminate(
    h: Pool, worker_id: int, timeout: Optional[float], crash: bool, reassign: bool
) -> List[Job]:
    deadline = deadline_of(timeout)
    with h._lock:
        worker = h._workers.get(worker_id)
        if worker is None or worker.abandoned:
            return []
        tasks: List[Job] = []
        updates: List[Update] = []
        if crash:
            tasks, updates = _abandon_locked(h, worker)
        else:
            _retire_locked(h, worker, drain=False)
    if not crash and not _join(worker.threads, deadline):
        with h._lock:
            if not worker.abandoned:
                tasks, updates = _abandon_locked(h, worker)
    _drop_updates(worker, updates)
    if reassign and tasks:
        _reassign(h, tasks)
        return []
    return tasks


def update(
    h: Pool, fn: Callable[..., Any], args: Any, kwargs: Optional[Dict[str, Any]],
    series: Optional[str], ephemeral: bool,
) -> Future[List[Any]]:
    if not callable(fn):
        raise TypeError("fn must be callable")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError(f"kwargs must be a dict or None, not {type(kwargs).__name__}")
    if series is not None and not isinstance(series, str):
        raise TypeError(f"series must be a str or None, not {type(series).__name__}")
    args = tuple(args)
    kw = dict(kwargs or {})
    future: Future[List[Any]] = Future()
    future.set_running_or_notify_cancel()
    with h._lock:
        if h._shut:
            raise h.closed()
        targets = [
            w for w in h._workers.values()
            if not w.retiring and (series is None or any(s.name == series for _, s in w.series))
        ]
        if not ephemeral:
            h._saved.append((series, fn, args, kw))
        gather = Gather(future, [w.id for w in targets])
        for w in targets:
            w.add_update(Update(fn, args, kw, gather))
    if not targets:
        future.set_result([])
    return future


def status(h: Pool) -> Dict[str, Any]:
    with h._lock:
        series = {name: s.status(h._store.waiting(s)) for name, s in h._series.items()}
        workers = {
            str(w.id): {
                "name": w.name,
                "series": [[p, s.name] for p, s in w.series],
                "slots": w.slots,
                "busy": len(w.assigned),
                "processed": w.processed,
            }
            for w in h._workers.values()
            if not w.retiring
        }
    return {"series": series, "workers": workers}


def _waiting_locked(h: Pool, everywhere: bool, remove: bool) -> Tuple[List[Job], int]:
    """Waiting tasks of every series (``everywhere``) or of series nobody serves."""
    found: List[Job] = []
    seq = 0
    for s in h._series.values():
        if everywhere or not s.qualified:
            tasks, seq2 = h._store.take_all(s, remove)
            found += tasks
            seq = seq2 or seq
    return found, seq


def shutdown(h: Pool, wait: bool, cancel_futures: bool, timeout: Optional[float]) -> List[Job]:
    if timeout is not None:
        check_seconds("timeout", timeout)
    deadline = deadline_of(timeout)
    unfinished: List[Job] = []
    with h._lock:
        first = not h._shut
        h._shut = True
        seq = 0
        if first:
            # cancel_futures: the tasks waiting in their series; a task handed to a worker
            # runs (as a work item a ThreadPoolExecutor thread took from its queue)
            unfinished, seq = _waiting_locked(h, cancel_futures, cancel_futures)
            for w in list(h._workers.values()):
                _retire_locked(h, w, drain=True)
        workers = list(h._workers.values())
    h._store.commit(seq)
    for task in unfinished:
        task.future.cancel()
    if wait:
        _join([t for w in workers for t in w.threads], deadline)
        seen = set(unfinished)  # a durable queue lists its unserved tasks again
        unfinished += [t for t in _after_wait(h, workers) if t not in seen]
    _close_mq(h)
    return unfinished


def _after_wait(h: Pool, workers: List[Worker]) -> List[Job]:
    """After the joins: abandon workers still running; collect tasks nobody will run."""
    dropped: List[Tuple[Worker, List[Update]]] = []
    unfinished: List[Job] = []
    me = threading.current_thread()
    with h._lock:
        for w in workers:
            if not w.abandoned and any(t.is_alive() and t is not me for t in w.threads):
                tasks, updates = _abandon_locked(h, w)
                unfinished += tasks
                dropped.append((w, updates))
        leftover, seq = _waiting_locked(h, not h._workers, False)
    h._store.commit(seq)
    for w, updates in dropped:
        _drop_updates(w, updates)
    for task in leftover:
        task.future.cancel()
    return unfinished + leftover


def _close_mq(h: Pool) -> None:
    with h._lock:
        close = h._own_mq and h._live == 0 and not h._mq_closed
        if close:
            h._mq_closed = True
    if close:
        h._mq.close()
