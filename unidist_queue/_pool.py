"""The core of a :class:`~unidist_queue.TaskHandler`: its pool of workers.

Internal. A :class:`Pool` holds everything a handler owns and does the routing; the
:class:`~unidist_queue.TaskHandler` is the public facade the user holds, and the only
object holding it. Worker threads hold the pool, never the facade: when nobody
references the facade any more, a weak reference's callback (:meth:`Pool.orphaned`)
wakes one thread of every worker, which shuts the pool down as ``shutdown(wait=False)``
would; the workers run every task they can and their threads exit. This is
``ThreadPoolExecutor``'s arrangement, whose threads hold the work queue and the
executor only weakly.

The pool is assembled from :class:`~unidist_queue._poolbase.PoolBase` (state and
routing), :class:`~unidist_queue._running.RunMixin` (the worker side) and
:class:`~unidist_queue._lifecycle.LifecycleMixin` (terminate, update, status,
shutdown); this module adds submitting and hiring.

Dispatch happens in the submitting or finishing thread: there is no dispatcher thread.
A private handler routes a task to a free worker under the pool's lock; a submitter
that finds no free worker queues its task without it, and a busy worker takes its next
task under its own mutex (see :meth:`Pool.submit` and
:meth:`~unidist_queue._running.RunMixin.run_tasks`). Over ``mq=`` a submitter only
adds the task to its queue: the queue's subscription rings a free worker, whose thread
routes it (:meth:`~unidist_queue._poolbase.PoolBase.ring`).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple

from ._closewatch import CloseWatch
from ._future import FUTURE
from ._lifecycle import LifecycleMixin
from ._routing import Series
from ._running import RunMixin
from ._task import Job
from ._workers import ORPHANED, Update, Worker, serve

if TYPE_CHECKING:
    from .api import QueueAPI

__all__ = ["Pool"]

_monotonic = time.monotonic


class Pool(LifecycleMixin, RunMixin):
    """What a :class:`~unidist_queue.TaskHandler` owns; worker threads hold this, not it.

    ``Pool(mq)``: ``mq`` is the queue-API object holding waiting tasks (``None``: private
    deques). Series whose tasks wait in ``mq`` from before (durable ``"task:*"``
    queues) are known at once. Over ``mq``, a :class:`~unidist_queue._closewatch.CloseWatch`
    thread reads the handler's reply queue (outcomes of its tasks that other handlers
    ran: :mod:`unidist_queue._replies`) and hears ``mq.close()``
    (:meth:`~unidist_queue._lifecycle.LifecycleMixin.mq_closed`).
    """

    def __init__(self, mq: Optional[QueueAPI]) -> None:
        super().__init__(mq)
        with self._lock:
            for name in self._tasks.recover():
                self._series_of(name)
        if mq is not None and self._replies is not None:
            self._watch = CloseWatch(mq, self.mq_closed, self._replies.queue, self._replies.resolve)

    # -- submitting ---------------------------------------------------------------------------

    def submit(
        self, series: str, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Future[Any]:
        """Make the future and route the task: the submit path of the pool.

        Private: a task for a series with no free worker is appended to its deque
        without the pool's lock, so a busy pool's submitter and finishing workers do
        not contend. A worker that turns free at that moment either sees the task (it
        marks itself free, then looks at its queues: ``_mark_free``) or is seen here
        afterwards (:meth:`_settle`): every step is atomic under the GIL, so one of the
        two hands the task over. Over ``mq=``: :meth:`_submit_queued`.
        """
        if not callable(fn):
            raise TypeError("fn must be callable")
        if self._shut:
            raise self.closed()
        future: Future[Any] = FUTURE()
        job = Job(next(self._task_ids), series, fn, args, kwargs, future, _monotonic())
        if not self._private:
            self._submit_queued(series, job)
            return future
        s = self._series.get(series)
        if s is None or s.nfree:
            self._route(series, job)
        else:
            self._tasks.add(s, job)
            if self._shut or s.nfree:
                self._settle(s, job)
        return future

    def _route(self, series: str, job: Job) -> None:
        """Under the lock: give ``job`` to the best free worker, or queue it."""
        with self._lock:
            if self._shut:
                raise self.closed()
            s = self._series_of(series)
            worker = s.pick()
            if worker is None:
                self._tasks.add(s, job)
            else:
                self._assign(worker, s, job)

    def _settle(self, s: Series[Worker], job: Job) -> None:
        """``job`` was queued without the lock, but a worker is free or the pool shut down."""
        with self._lock:
            if self._shut and self._tasks.discard(s, job):
                raise self.closed()
            self._pump(s)

    def _submit_queued(self, series: str, job: Job) -> None:
        """Over ``mq=``: add the task to its queue, then route it if a worker is free.

        ``_submitting`` orders the add and the routing before or after ``shutdown``
        (which takes it too), so a task added before shutdown is routed, or waits for a
        busy worker that drains its series. The subscription's ring for this add is not
        needed (this thread routes): :meth:`ring` skips it. A task of a durable queue
        cancelled by its caller while it waits leaves the queue (:meth:`_forget`).
        """
        with self._submitting:
            if self._shut:
                raise self.closed()
            s = self._series.get(series)
            if s is None:
                with self._lock:
                    s = self._series_of(series)
            self._own_add.queue = s.queue
            try:
                self._tasks.add(s, job)
            finally:
                self._own_add.queue = None
            if s.has_free():
                with self._lock:
                    self._pump(s)
        if job.msg_id:
            job.future.add_done_callback(lambda f: self._forget(s, job) if f.cancelled() else None)

    def _forget(self, s: Series[Worker], job: Job) -> None:
        """A durable task was cancelled by its caller: it leaves its queue unless taken.

        Not after shutdown, which keeps waiting durable tasks for a restart (checked
        under the lock, which orders this against ``shutdown`` setting ``_shut``).
        """
        with self._lock:
            if not self._shut:
                self._tasks.forget(s, job)

    # -- workers ----------------------------------------------------------------------------------

    def hire(self, pairs: List[Tuple[int, str]], slots: int, name: Optional[str]) -> int:
        """Hire a worker (arguments checked by the facade); return its id."""
        with self._lock:
            if self._shut:
                raise self.closed()
            worker, replay = self._new_worker(pairs, slots, name)
            if not replay:
                self._fill(worker)
        for thread in worker.threads:
            thread.start()
        return worker.id

    def _new_worker(
        self, pairs: List[Tuple[int, str]], slots: int, name: Optional[str]
    ) -> Tuple[Worker, List[Update]]:
        self._worker_ids += 1
        wid = self._worker_ids
        worker = Worker(wid, name or f"worker-{wid}", [(p, self._series_of(n)) for p, n in pairs], slots)
        worker.last_used = next(self._stamps)
        for p, s in worker.series:
            worker.tallies[s.name] = s.join(worker, p)
        names = {n for _, n in pairs}
        replay = [Update(fn, a, k, None) for ser, fn, a, k in self._saved if ser is None or ser in names]
        for i in range(slots):
            worker.threads.append(threading.Thread(
                target=serve, args=(self, worker, replay if i == 0 else ()),
                name=f"{worker.name}_{i}", daemon=True,
            ))
        worker.live = slots
        worker.timed = not self._private
        self._live += slots
        self._workers[wid] = worker
        worker.active = not replay
        return worker, replay

    def roster(self, series: Optional[str]) -> List[int]:
        """Ids of the current workers (qualified for ``series``), in hire order."""
        with self._lock:
            if series is None:
                return [w.id for w in self._workers.values() if not w.retiring]
            s = self._series.get(series)
            return [] if s is None else [i for i in s.qualified if not self._workers[i].retiring]

    def threads(self) -> Set[threading.Thread]:
        """The threads of the current workers (retiring ones included)."""
        with self._lock:
            return {t for w in self._workers.values() for t in w.threads}

    def describe(self) -> str:
        """``"shut down"`` or how many workers (for the facade's ``repr``)."""
        return "shut down" if self._shut else f"{len(self._workers)} workers"

    # -- the end ----------------------------------------------------------------------------------

    def orphaned(self, _ref: Any = None) -> None:
        """The facade is gone (a weak reference's callback): wake a thread of every worker.

        It may run in any thread, in the middle of anything (a garbage collection), so
        it takes no lock: it only puts a mark in each worker's inbox; the thread that
        takes it calls :meth:`release`.
        """
        for worker in list(self._workers.values()):
            worker.inbox.put(ORPHANED)

    def release(self) -> None:
        """From a worker thread, once the facade is gone: ``shutdown(wait=False)``."""
        self.shutdown(False, False, None)

    def shutdown_at_exit(self, wait: bool) -> None:
        """The interpreter is exiting: shut down (see :mod:`unidist_queue._exit`); from
        now on a submit says so."""
        self._at_exit = True
        self.shutdown(wait, False, None)
