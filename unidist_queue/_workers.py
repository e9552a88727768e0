"""Worker threads of a :class:`~unidist_queue.TaskHandler`.

Internal. A :class:`Worker` owns ``slots`` daemon threads and one inbox: a
:class:`queue.SimpleQueue` its idle threads block on, so handing a task to a free worker
is one C-level ``put`` (no Python-level Condition). A thread that finishes a task takes
its next one itself (in :meth:`Handler.run_tasks`) and runs it at once without touching
the inbox, so a busy pool never sleeps between tasks. A :class:`~unidist_queue._routing.Series`
in the inbox is a ring: tasks of that series became ready in a queue of ``mq=`` (see
:meth:`Handler.look`). Over ``mq=`` an idle thread also wakes, without a ring, when a
task of its series may become ready by a timed change (see :func:`_wait_for_task`).

Lock order: the pool's lock, then a worker's ``mutex``. A worker's ``mutex`` guards its
pending updates, the tasks it was given (``assigned``) and its counters (``tallies``),
so a busy worker of a private handler finishes a task and takes the next one under its
own mutex, never the pool's lock. No user code runs while any lock is held.

Which tasks a worker owns is decided by ``Worker.assigned`` under the worker's mutex,
not by the inbox: a task abandoned with its worker is in the list ``terminate``
returns, and a thread that picks it from the inbox (or took it as its next task)
afterwards sees ``abandoned`` and exits without running it. A task handed to a worker
(in its inbox, or taken by one of its threads) runs even after
``shutdown(cancel_futures=True)``, which cancels only the tasks waiting in their series,
as ``ThreadPoolExecutor`` runs the work items its threads took from its queue.

Threads hold the :class:`~unidist_queue._pool.Pool`, never the user's
:class:`~unidist_queue.TaskHandler`, and drop every reference to a task once it is
finished (see :func:`serve`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Deque, Dict, List, Optional, Protocol, Sequence, Tuple, Union

from ._routing import Series, Tally
from ._task import Job
from ._util import DueOnce


class Handler(Protocol):
    """What a worker thread calls on its pool."""

    def run_tasks(self, worker: Worker, box: List[Optional[Job]]) -> Optional[Job]:
        """Run the task in ``box``, then the next ones; return one to run after an update."""

    def look(self, worker: Worker, s: Series[Worker]) -> Optional[Job]:
        """A ring for series ``s`` reached ``worker``: route its ready tasks."""

    def next_due(self, worker: Worker) -> Optional[float]:
        """The wall-clock time when a task of ``worker``'s series may become ready by
        itself (``None``: none is timed, or the worker takes no task now)."""

    def look_due(self, worker: Worker) -> Optional[Job]:
        """That time came: route the ready tasks of ``worker``'s series (as :meth:`look`)."""

    def activate(self, worker: Worker) -> None:
        """The worker ran its saved updates."""

    def exited(self, worker: Worker) -> None:
        """A thread of ``worker`` ends."""

    def release(self) -> None:
        """Nobody holds the facade any more: shut the pool down."""


__all__ = ["DUE", "ORPHANED", "Gather", "Handler", "Update", "Worker", "serve"]

logger = logging.getLogger("unidist_queue.tasks")


class Gather:
    """Collects one ``update``'s results by worker id; resolves its future when all are in.

    Thread-safe (its own lock); the future is resolved outside that lock.
    """

    def __init__(self, future: Future[List[Any]], worker_ids: Sequence[int]) -> None:
        self._future = future
        self._lock = threading.Lock()
        self._pending = set(worker_ids)
        self._results: Dict[int, Any] = {}
        self._errors: Dict[int, BaseException] = {}  # with no worker, the caller resolves

    def done(self, worker_id: int, value: Any, error: Optional[BaseException]) -> None:
        """Record one worker's outcome."""
        with self._lock:
            if worker_id not in self._pending:
                return
            self._pending.discard(worker_id)
            if error is None:
                self._results[worker_id] = value
            else:
                self._errors[worker_id] = error
            finished = not self._pending
        if finished:
            self._resolve()

    def drop(self, worker_id: int) -> None:
        """Forget a worker that was abandoned before it ran the update."""
        with self._lock:
            if worker_id not in self._pending:
                return
            self._pending.discard(worker_id)
            finished = not self._pending
        if finished:
            self._resolve()

    def _resolve(self) -> None:
        if self._errors:
            self._future.set_exception(self._errors[min(self._errors)])
        else:
            self._future.set_result([self._results[i] for i in sorted(self._results)])


class Update:
    """One call of an ``update`` function, due on one worker (``gather=None``: a replay)."""

    __slots__ = ("args", "fn", "gather", "kwargs")

    def __init__(
        self, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any], gather: Optional[Gather]
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.gather = gather


class Worker:
    """A hired worker: its qualifications, its inbox, its threads and its counters.

    Fields are read and written with the handler's lock held, except ``inbox`` (a
    thread-safe ``SimpleQueue`` of tasks, update wake-ups and stop marks) and
    ``updates``, ``assigned``, ``tallies`` and ``last_used``, written under ``mutex``
    (by the handler with its lock held too, or by the worker's own threads). Threads
    read the flags without a lock: each flag change is followed by marks put in the
    inbox, which wake every idle thread.
    """

    __slots__ = (
        "abandoned",
        "active",
        "assigned",
        "id",
        "inbox",
        "last_used",
        "live",
        "mutex",
        "name",
        "retiring",
        "series",
        "slots",
        "tallies",
        "threads",
        "timed",
        "updates",
    )

    def __init__(
        self, worker_id: int, name: str, series: List[Tuple[int, Series[Worker]]], slots: int
    ) -> None:
        self.id = worker_id
        self.name = name
        self.series = series  # (priority, Series), in the order the worker listed them
        self.slots = slots
        self.assigned: Dict[Job, None] = {}  # tasks given to it (inbox or running), in order
        # inbox: tasks given to the worker, _WAKE (an update is pending) and _STOP (one per
        # thread: exit once idle). Only this worker's threads take from it.
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.updates: Deque[Update] = deque()
        self.mutex = threading.Lock()  # guards updates, assigned, tallies, last_used
        self.tallies: Dict[str, Tally] = {}  # series name -> this worker's counters
        self.threads: List[threading.Thread] = []
        self.active = False  # in the routing tables: takes tasks
        self.retiring = False  # threads exit once the inbox and updates are empty
        self.abandoned = False  # threads exit at once; their output is discarded
        self.last_used = 0  # stamp of the last task given to it (least recently used first)
        self.live = 0  # threads started and not yet exited
        self.timed = False  # its tasks wait in mq=: an idle thread also wakes when one is due

    @property
    def processed(self) -> int:
        """Tasks this worker ran, failed ones included."""
        return sum(t.processed for t in list(self.tallies.values()))

    def leave_series(self) -> None:
        """With the pool's lock held: take this worker out of the routing of every series."""
        for _, s in self.series:
            s.leave(self)

    def retire_tallies(self) -> None:
        """With the pool's lock held: the worker is gone; its series keep its finished counts."""
        with self.mutex:
            for _, s in self.series:
                s.retire_tally(self.id)

    def set_busy(self) -> None:
        """With the pool's lock held: route no task to this worker (it is not free)."""
        for p, s in self.series:
            s.set_busy(self, p)

    def put(self, task: Job) -> None:
        """Hand ``task`` to one of the worker's threads. O(1)."""
        self.inbox.put(task)

    def add_update(self, update: Update) -> None:
        """Queue ``update`` for one of the worker's threads and wake an idle one. O(1)."""
        with self.mutex:
            self.updates.append(update)
        self.inbox.put(_WAKE)

    def stop(self) -> None:
        """Wake every thread to exit once idle (after ``retiring`` or ``abandoned`` was set)."""
        for _ in range(self.slots):
            self.inbox.put(_STOP)

    def next_item(self, due: Optional[float] = None) -> Union[Job, Update, Series[Worker], object, None]:
        """Wait for an update, a task, a ring or :data:`ORPHANED`; ``None``: the thread exits.

        ``due``: a wall-clock (``time.time``) time; :data:`DUE` once it came with
        nothing else in the inbox.
        """
        while True:
            if self.updates:
                update = self.pop_update()
                if update is not None:
                    return update
            if due is None:
                item = self.inbox.get()
            else:
                try:
                    item = self.inbox.get(True, max(0.0, due - _wall()))
                except queue.Empty:
                    return DUE
            if self.abandoned or item is _STOP:
                return None
            if item is not _WAKE:
                return item  # type: ignore[no-any-return]

    def pop_update(self) -> Optional[Update]:
        with self.mutex:
            return self.updates.popleft() if self.updates and not self.abandoned else None

    def take_updates(self) -> List[Update]:
        """Remove and return the pending updates (the worker is abandoned)."""
        with self.mutex:
            updates = list(self.updates)
            self.updates.clear()
        return updates


_WAKE = object()  # in an inbox: an update is pending
_STOP = object()  # in an inbox: the thread that takes it exits
ORPHANED = object()  # in an inbox: nobody holds the handler any more; shut it down
DUE = object()  # from next_item: the time it was given came (not in an inbox)
_wall = time.time


def run_update(worker: Worker, update: Update) -> None:
    """Run one update call in this thread and report it (user code: no lock held)."""
    try:
        value = update.fn(*update.args, **update.kwargs)
    except BaseException as exc:
        if update.gather is None:
            logger.error("update %r raised in worker %d", update.fn, worker.id, exc_info=exc)
        else:
            update.gather.done(worker.id, None, exc)
        del exc
        return
    if update.gather is not None:
        update.gather.done(worker.id, value, None)


def serve(handler: Handler, worker: Worker, replay: Sequence[Update]) -> None:
    """A worker thread's body: saved updates first, then tasks until told to exit.

    ``handler`` is the pool, not the user's handler. A task is handed to
    ``run_tasks`` in ``box``, and every local naming a task or an update is cleared
    once it ran, so an idle thread keeps nothing of what it ran (``ThreadPoolExecutor``
    deletes its work item likewise).
    """
    box: List[Optional[Job]] = [None]
    try:
        if replay:
            for update in replay:
                if worker.abandoned:
                    return
                run_update(worker, update)
            del update
            handler.activate(worker)
        task: Optional[Job] = None
        while True:
            if task is None:
                if not _wait_for_task(handler, worker, box):
                    return
            elif worker.updates:
                pending = worker.pop_update()
                if pending is not None:
                    run_update(worker, pending)
                    pending = None
                continue
            else:
                box[0] = task
                task = None
            task = handler.run_tasks(worker, box)
    finally:
        handler.exited(worker)


def _wait_for_task(handler: Handler, worker: Worker, box: List[Optional[Job]]) -> bool:
    """Take inbox items until one is a task to run (put in ``box``); ``False``: exit.

    Updates run here; a ring (a series) is routed by the pool, which may give this
    thread a task; :data:`ORPHANED` shuts the pool down.

    A timed worker (its tasks wait in ``mq=``) also wakes when a task of its series may
    become ready by itself: a queue promotes delayed messages and lapsed leases lazily,
    and rings nobody until something touches it. Before each wait (so again after every
    ring, update or look) the thread asks the pool when that is (the queues'
    ``next_due``) and waits for its inbox until then at most; then the pool looks at the
    queues (which promotes what is due). No polling: with nothing timed the wait has no
    timeout, and a due time is looked at once. ``next_due`` is in the queue's clock,
    taken to be wall-clock ``time.time`` (MessageQueue's default): with another clock
    the thread may wake early or late; a due time still reported after a look made once
    it passed (a clock behind ``time.time``) is not waited for again, the thread then
    waits for a ring.
    """
    once = DueOnce()
    while True:
        due = once.due(handler.next_due(worker) if worker.timed else None)
        item = worker.next_item(due)
        if type(item) is Job:
            box[0] = item
            return True
        if item is None:
            return False
        if type(item) is Update:
            run_update(worker, item)
        elif type(item) is Series:
            box[0] = handler.look(worker, item)
            if box[0] is not None:
                return True
        elif item is DUE:
            once.looked(due)
            box[0] = handler.look_due(worker)
            if box[0] is not None:
                return True
        else:  # ORPHANED
            handler.release()
        item = None  # nothing of what ran is kept while waiting
