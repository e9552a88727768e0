"""The slower half of a :class:`~unidist_queue.TaskHandler`'s pool: terminate, update,
status, shutdown (also when ``mq=`` is closed under it), retry_dead.

Internal. :class:`LifecycleMixin` is the part of :class:`~unidist_queue._pool.Pool`
behind those four facade methods (documented there). Helpers whose name ends in
``_locked`` are called with the pool's lock held.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ._poolbase import PoolBase
from ._task import Job
from ._util import check_seconds, deadline_of, remaining
from ._workers import Gather, Update, Worker
from .errors import ShutDown

__all__ = ["LifecycleMixin"]

logger = logging.getLogger("unidist_queue.tasks")


class LifecycleMixin(PoolBase):
    """Removing workers, updates, status and shutdown (see the module)."""

    # -- workers --------------------------------------------------------------------------------

    def _retire_locked(self, worker: Worker, drain: bool) -> None:
        """Stop giving ``worker`` new tasks; its threads exit once idle.

        ``drain`` (shutdown): it keeps taking waiting tasks of its series until none is left.
        """
        worker.retiring = True
        worker.set_busy()
        if not drain:
            worker.active = False
            worker.leave_series()
            self._workers.pop(worker.id, None)
            self._reroute(worker)
        worker.stop()

    def _abandon_locked(self, worker: Worker) -> Tuple[List[Job], List[Update]]:
        """Give up on ``worker``'s threads: return its unfinished tasks and pending updates."""
        with worker.mutex:
            worker.abandoned = worker.retiring = True
            worker.active = False
            tasks = list(worker.assigned)
            worker.assigned.clear()
        worker.retire_tallies()
        self._live -= worker.live
        worker.live = 0
        worker.leave_series()
        if self._workers.get(worker.id) is worker:
            del self._workers[worker.id]
        if not self._shut:
            self._reroute(worker)
        updates = worker.take_updates()
        worker.stop()
        return tasks, updates

    def _reassign(self, tasks: List[Job]) -> None:
        """Put abandoned tasks back at the front of their series and route them again."""
        with self._lock:
            by_series: Dict[str, List[Job]] = {}
            for task in tasks:
                if task.future.running():
                    self._resumed.add(task)
                by_series.setdefault(task.series, []).append(task)
            for name, group in by_series.items():
                s = self._series[name]
                self._tasks.requeue(s, group)
                self._pump(s)

    def terminate(self, worker_id: int, timeout: Optional[float], crash: bool, reassign: bool) -> List[Job]:
        """See :meth:`TaskHandler.terminate <unidist_queue.TaskHandler.terminate>`."""
        deadline = deadline_of(timeout)
        with self._lock:
            worker = self._workers.get(worker_id)
            if worker is None or worker.abandoned:
                return []
            tasks: List[Job] = []
            updates: List[Update] = []
            if crash:
                tasks, updates = self._abandon_locked(worker)
            else:
                self._retire_locked(worker, drain=False)
        if not crash and not _join(worker.threads, deadline):
            with self._lock:
                if not worker.abandoned:
                    tasks, updates = self._abandon_locked(worker)
        _drop_updates(worker, updates)
        if reassign and tasks:
            self._reassign(tasks)
            return []
        if tasks:
            with self._lock:
                self._tasks.release(tasks, give_back=False)
        return tasks

    # -- updates and status -----------------------------------------------------------------------

    def update(
        self, fn: Callable[..., Any], args: Any, kwargs: Optional[Dict[str, Any]],
        series: Optional[str], ephemeral: bool,
    ) -> Future[List[Any]]:
        """See :meth:`TaskHandler.update <unidist_queue.TaskHandler.update>`."""
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
        with self._lock:
            if self._shut:
                raise self.closed()
            targets = [
                w for w in self._workers.values()
                if not w.retiring and (series is None or any(s.name == series for _, s in w.series))
            ]
            if not ephemeral:
                self._saved.append((series, fn, args, kw))
            gather = Gather(future, [w.id for w in targets])
            for w in targets:
                w.add_update(Update(fn, args, kw, gather))
        if not targets:
            future.set_result([])
        return future

    def status(self) -> Dict[str, Any]:
        """See :meth:`TaskHandler.status <unidist_queue.TaskHandler.status>`."""
        with self._lock:
            running = self._running_locked()
            series = {n: s.status(self._tasks.waiting(s), running.get(n, 0)) for n, s in self._series.items()}
            workers = {
                str(w.id): {
                    "name": w.name,
                    "series": [[p, s.name] for p, s in w.series],
                    "slots": w.slots,
                    "busy": len(w.assigned),
                    "processed": w.processed,
                }
                for w in self._workers.values()
                if not w.retiring
            }
        return {"series": series, "workers": workers}

    def _running_locked(self) -> Dict[str, int]:
        """How many tasks of each series the workers hold (in their inbox, or running)."""
        running: Dict[str, int] = {}
        for w in self._workers.values():
            with w.mutex:
                for job in w.assigned:
                    running[job.series] = running.get(job.series, 0) + 1
        return running

    # -- shutdown -----------------------------------------------------------------------------------

    def _waiting_locked(self, everywhere: bool, remove: bool) -> List[Job]:
        """Waiting tasks of every series (``everywhere``) or of series nobody serves."""
        found: List[Job] = []
        for s in self._series.values():
            if everywhere or not s.qualified:
                found += self._tasks.take_all(s, remove)
        return found

    def shutdown(self, wait: bool, cancel_futures: bool, timeout: Optional[float]) -> List[Job]:
        """See :meth:`TaskHandler.shutdown <unidist_queue.TaskHandler.shutdown>`."""
        if timeout is not None:
            check_seconds("timeout", timeout)
        deadline = deadline_of(timeout)
        unfinished: List[Job] = []
        with self._submitting, self._lock:  # a submit over mq= is before or after this
            first = not self._shut
            self._shut = True
            if first:
                # cancel_futures: the tasks waiting in their series; a task handed to a worker
                # runs (as a work item a ThreadPoolExecutor thread took from its queue)
                unfinished = self._waiting_locked(cancel_futures, cancel_futures)
                self._stop_locked(replies=wait)
            workers = list(self._workers.values())
        for task in unfinished:
            task.future.cancel()
        if wait:
            _join([t for w in workers for t in w.threads], deadline)
            if first and self._watch is not None:
                self._watch.stop()  # the replies of tasks run elsewhere were heard until now
            if self._watch is not None:
                self._watch.join(remaining(deadline) if deadline is not None else None)
            seen = set(unfinished)  # a durable queue lists its unserved tasks again
            unfinished += [t for t in self._after_wait(workers) if t not in seen]
            self._tasks.settled(remaining(deadline) if deadline is not None else None)
        if first:
            seen = set(unfinished)
            unfinished += [t for t in self._tasks.unresolved() if t not in seen and t.future.cancel()]
        return unfinished

    def _stop_locked(self, replies: bool = False) -> None:
        """The first shutdown (``_shut`` just set): retire every worker (they drain their
        series), stop listening to ``mq`` and watching it (unless ``replies``: a
        shutdown that waits keeps reading the replies of its tasks that other handlers
        run until its own workers are done, then stops)."""
        for w in list(self._workers.values()):
            self._retire_locked(w, drain=True)
        self._tasks.close()
        if self._watch is not None and not replies:
            self._watch.stop()

    def mq_closed(self) -> None:
        """``mq`` was closed under this live pool (from the watching thread, no lock held).

        Shut down as ``shutdown(wait=False)`` would, and fail the futures of the tasks
        submitted here that still wait in ``mq`` with ``ShutDown`` (a durable series
        keeps them stored: they run after a restart). Tasks already handed to a worker
        run, as at any shutdown; their messages can no longer be acked (a durable queue
        runs them again after a restart: at least once). Logged at WARNING.
        """
        with self._submitting, self._lock:
            if self._shut:
                return
            self._shut = self._mq_gone = True
            stranded = self._tasks.stranded()
            self._stop_locked()
        for job in stranded:
            with contextlib.suppress(InvalidStateError):  # cancelled by its caller meanwhile
                job.future.set_exception(ShutDown("the MessageQueue of the TaskHandler was closed"))
        logger.warning(
            "the MessageQueue under a TaskHandler was closed before it: the handler shut down, "
            "%d waiting tasks failed with ShutDown", len(stranded),
        )

    def retry_dead(self, series: str) -> int:
        """See :meth:`TaskHandler.retry_dead <unidist_queue.TaskHandler.retry_dead>`."""
        with self._submitting:  # before or after shutdown, which stops hearing of adds
            if self._shut:
                raise self.closed()
            s = self._series.get(series)
            if s is None:
                with self._lock:
                    s = self._series_of(series)
            return self._tasks.revive(s)

    def _after_wait(self, workers: List[Worker]) -> List[Job]:
        """After the joins: abandon workers still running; collect tasks nobody will run.

        What an abandoned worker held without starting it goes back to its queue.
        """
        dropped: List[Tuple[Worker, List[Update]]] = []
        unfinished: List[Job] = []
        me = threading.current_thread()
        with self._lock:
            for w in workers:
                if not w.abandoned and any(t.is_alive() and t is not me for t in w.threads):
                    tasks, updates = self._abandon_locked(w)
                    unfinished += tasks
                    dropped.append((w, updates))
            leftover = self._waiting_locked(not self._workers, False)
            self._tasks.release([t for t in unfinished if _started(t)], give_back=False)
            self._tasks.release([t for t in unfinished if not _started(t)], give_back=True)
        for w, updates in dropped:
            _drop_updates(w, updates)
        for task in leftover:
            task.future.cancel()
        return unfinished + leftover


def _started(task: Job) -> bool:
    return task.future.running()


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
