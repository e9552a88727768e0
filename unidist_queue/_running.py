"""The worker side of a :class:`~unidist_queue.TaskHandler`'s pool: running tasks.

Internal. :class:`RunMixin` is the part of :class:`~unidist_queue._pool.Pool` that
worker threads call (see :func:`unidist_queue._workers.serve`): :meth:`RunMixin.run_tasks`
runs a task and each one its thread takes next; :meth:`RunMixin.activate` and
:meth:`RunMixin.exited` mark a worker's start and its threads' ends; over ``mq=``,
:meth:`RunMixin.next_due` and :meth:`RunMixin.look_due` let an idle thread wake for a
task that becomes ready by a timed change.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import InvalidStateError
from typing import Any, List, Optional, cast

from ._poolbase import PoolBase
from ._stored import FunctionMissing
from ._task import Job
from ._workers import Worker

__all__ = ["RunMixin"]

logger = logging.getLogger("unidist_queue.tasks")
_GONE = cast(Job, object())  # not a task: the worker was abandoned
_monotonic = time.monotonic


class RunMixin(PoolBase):
    """What worker threads call on their pool."""

    def run_tasks(self, worker: Worker, box: List[Optional[Job]]) -> Optional[Job]:
        """Run the task in ``box`` (emptied) in this worker thread, then each task it takes next.

        Returns ``None`` when the worker has nothing more to run (it is marked free) or
        was abandoned, or the next task when an update is pending (the caller runs it
        first). The hot path of the pool: for each task the bookkeeping (counters, the
        slot freed, the next task taken: :meth:`_book`) is done before its future is
        resolved. In a private handler a busy worker does it under its own mutex, never
        the pool's lock, which it takes only when it turns free; over ``mq=`` it goes
        through :meth:`_finish_queued`. (Moving the bookkeeping out of this loop into
        :meth:`_book` cost about 1% of ``bench_tasks``' CPU per task, 3.90 -> 3.95 us.)

        No reference to a finished task, its function, arguments or result outlives it
        here (the caller hands the task over in ``box`` so it keeps none either), and a
        task's exception leaves without this frame in its traceback.
        """
        resumed, private = self._resumed, self._private
        task = box[0]
        box[0] = None
        while task is not None:
            if worker.abandoned:
                return None  # given to it before it was abandoned: terminate returned it
            future = task.future
            failed = False
            try:
                started = (resumed and task in resumed) or future.set_running_or_notify_cancel()
            except RuntimeError:  # failed before it started: its MessageQueue was closed
                started = False
            if started:
                start = _monotonic()
                try:
                    value = task.fn(*task.args, **task.kwargs)
                except BaseException as exc:
                    value = _without_caller(exc)
                    failed = True
                    del exc
                end = _monotonic()
            else:  # cancelled (or failed) while waiting
                start = end = -1.0
                value = None
            nxt = self._book(worker, task, start, end, failed)
            if nxt is _GONE:
                return None
            if not private:
                nxt = self._finish_queued(worker, task, value, failed)
            elif nxt is None and worker.active and len(worker.assigned) < worker.slots:
                nxt = self._turn_free(worker)
            if start >= 0:
                if failed or task.recovered:
                    _resolve(task, value, failed)
                else:
                    try:
                        future.set_result(value)
                    except InvalidStateError:  # resolved elsewhere meanwhile (reassigned)
                        logger.debug("future of %r already resolved", task)
            del value, future  # the worker keeps nothing of a finished task
            if worker.updates:
                return nxt
            task = nxt
        return None

    def _book(self, worker: Worker, task: Job, start: float, end: float, failed: bool) -> Optional[Job]:
        """Under the worker's mutex: ``task`` ended (``start < 0``: skipped, cancelled).

        Frees its slot and counts it; in a private handler, takes the worker's next task
        (returned, claimed). :data:`_GONE`: the worker was abandoned meanwhile, and the
        task with it (``terminate`` returned it).
        """
        with worker.mutex:
            if worker.assigned.pop(task, _GONE) is _GONE:
                return _GONE
            if start >= 0:
                worker.tallies[task.series].add(start - task.queued_at, end - start, failed)
            if self._resumed:
                self._resumed.discard(task)
            if self._private and worker.active:
                return self._take_next(worker)
        return None

    def _take_next(self, worker: Worker) -> Optional[Job]:
        """Under the worker's mutex: the oldest waiting task of its series, in its listed
        order, claimed (the task queue's single atomic take: no other lock)."""
        for _, ws in worker.series:
            nxt = self._tasks.take_one(ws)
            if nxt is not None:
                worker.assigned[nxt] = None
                worker.last_used = next(self._stamps)
                return nxt
        return None

    def _turn_free(self, worker: Worker) -> Optional[Job]:
        """A private worker found its queues empty: mark it free, or, while it drains at
        shutdown, look once more under the lock and return what it finds.

        The lock orders that look after ``shutdown`` set ``_shut``, so a task queued
        without the lock by a submitter that still saw the pool open is found here.
        """
        with self._lock:
            if not worker.retiring:
                self._mark_free(worker)
                return None
            jobs = self._take_for(worker, 1) if worker.active else []
        return jobs[0] if jobs else None

    def _finish_queued(self, worker: Worker, task: Job, value: Any, failed: bool) -> Optional[Job]:
        """Over ``mq=``: settle a finished ``task``'s message (its outcome ``value`` sent
        to its submitter first if another handler submitted it); take the worker's next task."""
        self._tasks.done(task, value, failed)
        with self._lock:
            free = len(worker.assigned) < worker.slots
            jobs = self._take_for(worker, 1) if worker.active and free else []
            if not jobs and free:
                self._mark_free(worker)
        return jobs[0] if jobs else None

    def next_due(self, worker: Worker) -> Optional[float]:
        """Over ``mq=``: the earliest ``next_due`` of ``worker``'s series (``None``: none,
        or the worker takes no task now: not yet active, retiring). Asked by an idle
        thread before it waits (see :func:`unidist_queue._workers._wait_for_task`)."""
        if worker.retiring or not worker.active or self._shut:
            return None
        first: Optional[float] = None
        for _, s in worker.series:
            due = self._tasks.next_due(s)
            if due is not None and (first is None or due < first):
                first = due
        return first

    def look_due(self, worker: Worker) -> Optional[Job]:
        """A due time of ``worker``'s series came: :meth:`look` at each of them (taking
        from a queue promotes what is due); a task this thread is to run, or ``None``."""
        for _, s in worker.series:
            job = self.look(worker, s)
            if job is not None:
                return job
        return None

    def activate(self, worker: Worker) -> None:
        """A new worker ran its saved updates: it starts taking tasks."""
        with self._lock:
            if self._workers.get(worker.id) is worker and not worker.retiring:
                worker.active = True
                self._fill(worker)

    def exited(self, worker: Worker) -> None:
        """A worker thread ends."""
        with self._lock:
            if not worker.abandoned:
                worker.live -= 1
                self._live -= 1
                if worker.live == 0:
                    if self._workers.get(worker.id) is worker:
                        del self._workers[worker.id]
                        worker.leave_series()
                    worker.retire_tallies()


def _resolve(task: Job, value: Any, failed: bool) -> None:
    """Settle a task that failed or was recovered (``run_tasks`` sets plain results).

    A recovered task has no caller here: its result is dropped and its exception logged,
    unless its outcome went to its submitter's reply queue (:meth:`QueueTasks.done
    <unidist_queue._queuetasks.QueueTasks.done>`).
    """
    if task.recovered:
        if failed and task.reply is None and not isinstance(value, FunctionMissing):  # moved, logged
            logger.error("recovered task %r raised", task, exc_info=value)
        return
    try:
        task.future.set_exception(value)
    except InvalidStateError:  # resolved elsewhere meanwhile (reassigned)
        logger.debug("future of %r already resolved", task)


def _without_caller(exc: BaseException) -> BaseException:
    """``exc`` caught in :meth:`RunMixin.run_tasks`, without that frame in its traceback.

    The frame holds the pool and the worker: a failed task's future would keep them
    alive (and a reference cycle through the frame would keep the task itself until a
    garbage collection). The traceback keeps the frames of the task's own code.
    """
    tb = exc.__traceback__
    return exc.with_traceback(None if tb is None else tb.tb_next)
