"""Where a :class:`~unidist_queue.TaskHandler`'s waiting tasks live: MessageQueue queues.

Internal. Series ``S`` waits in queue ``"task:S"`` of the handler's
:class:`~unidist_queue.MessageQueue`, through its package-internal fast paths. A task of
an in-memory queue is stored as the :class:`~unidist_queue.tasks.Job` itself; a task of
a durable queue as ``(function name, args, kwargs)``, with the same records the public
API writes: ``add`` when submitted, ``reserve`` when a worker takes it, ``remove`` (ack)
when it is done, ``nack`` when it goes back. The live ``Job`` of a durable message is
kept by message id in :attr:`TaskStore.by_msg`.

:meth:`encode`, :meth:`commit` and :meth:`recover` are called with no lock held. Every
other method is called with the handler's lock held, except that :meth:`push` is also
called by a submitter without it (in memory, when no worker is free) and :meth:`take`
(with :meth:`pop` through it) by a worker thread holding only its own mutex. Each takes
the queue's mutex inside (a private queue's single deque operations need none).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from ._routing import name_of, resolve
from ._task import Job
from .queues import MessageQueue

if TYPE_CHECKING:
    from ._routing import Series
    from ._state import QueueState

__all__ = ["Body", "TaskStore"]

logger = logging.getLogger("unidist_queue.tasks")

Body = Tuple[str, Tuple[Any, ...], Dict[str, Any]]
"""A durable task as stored: ``(importable function name, args, kwargs)``."""

MakeTask = Callable[[str, Callable[..., Any], Tuple[Any, ...], Dict[str, Any], int], "Job"]


class TaskStore:
    """The waiting tasks of every series, in the MessageQueue ``mq``.

    ``private``: ``mq`` is the handler's own in-memory MessageQueue, which nothing else
    can reach. Its task queues are then handed over without its mutex: a task is
    appended to, and taken from, the queue's deque by single ``deque`` operations,
    which are atomic (under the GIL, and per object on free-threaded builds), so the
    submitting thread and the workers never wait on each other. Such queues keep no
    ``added``/``removed`` counters and their message ids are the task ids; every other
    change to them (``discard``, ``take_all``, ``requeue``) is also made of single
    atomic deque operations, so it never races a take.
    """

    def __init__(self, mq: MessageQueue, private: bool = False) -> None:
        self.mq = mq
        # read once (set for the MessageQueue's life): the hot paths use them for every task
        self.queues = mq._queues
        self.clock = mq._clock
        self.private = private and not mq._persistent
        self.by_msg: Dict[int, Job] = {}  # durable message id -> its live Job
        self.make: Optional[MakeTask] = None  # builds a recovered Job (set by the handler)

    # -- outside the handler's lock ------------------------------------------------------

    def encode(
        self, queue: str, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Optional[Tuple[Body, bytes]]:
        """The stored form of a task if ``queue`` is (or will be) durable, else ``None``.

        :raises SerializationError: the function has no importable name, or the
            arguments cannot be serialized by the store.
        """
        mq = self.mq
        if not mq._persistent or mq._read_only:
            return None
        q = mq._queues.get(queue)
        if q is not None and q.exists and not q.durable:
            return None
        body: Body = (name_of(fn), tuple(args), dict(kwargs))
        return body, mq._store.encode(body)

    def commit(self, seq: int) -> None:
        """Make the records up to ``seq`` durable (no lock held); a failure is logged."""
        if seq:
            try:
                self.mq._commit(seq)
            except Exception:
                logger.exception("the task store could not commit; a restart may rerun tasks")

    def recover(self, make: MakeTask) -> List[str]:
        """At start-up: a live Job for every message of a durable ``task:*`` queue.

        Returns the series names found. Functions are imported here, with no lock held.
        """
        self.make = make
        found = []
        for queue in self.mq.queues():
            if not queue.startswith("task:") or not self.mq.stats(queue).durable:
                continue
            found.append(queue[5:])
            for message in self.mq.messages(queue):
                name, args, kwargs = message.body
                fn = _importer(name)
                self.by_msg[message.id] = make(queue[5:], fn, tuple(args), dict(kwargs), message.id)
        return found

    # -- with the handler's lock held ------------------------------------------------------

    def _queue(self, s: Series) -> Optional[QueueState]:
        """The live queue of ``s`` with something ready, or ``None``."""
        q = self.mq._queues.get(s.queue)
        if q is None or not q.exists or not (q.ready or q.timed) or self.mq._closed:
            return None
        return q

    def push(self, s: Series, task: Job) -> None:
        """Queue a task of a MessageQueue without a persistent store (nothing is durable).

        :raises ShutDown: the MessageQueue is closed.
        """
        mq = self.mq
        q = self.queues.get(s.queue)
        now = self.clock()  # calls stay out of the mutex: a thread preempted in it stalls all
        if self.private and q is not None and q.plain and q.exists:
            q.ready.append((task.id, now, task))  # atomic: see the class docstring
            return
        with mq._mutex:
            # (drop clears exists; a persistent store records id blocks: _insert does)
            if q is not None and q.plain and q.exists and not mq._closed and not mq._persistent:
                mq._last_id = msg_id = mq._last_id + 1
                q.ready.append((msg_id, now, task))
                q.added += 1
                if q.getters:
                    q.not_empty.notify()
                return
            mq._check_writable()
            q = mq._queue(s.queue, create=True)
            assert q is not None
            mq._insert(q, task, None, None)

    def discard(self, s: Series, task: Job) -> bool:
        """Remove a just-queued in-memory ``task`` if it still waits; whether it did. O(n)."""
        mq = self.mq
        with mq._mutex:
            q = mq._queues.get(s.queue)
            if q is None:
                return False
            found = [item for item in list(q.ready) if item[2] is task]  # list(): one atomic copy
            if not found:
                return False
            try:
                q.ready.remove(found[0])  # atomic; a worker may have taken it meanwhile
            except ValueError:
                return False
            if not self.private:
                q.added -= 1
            return True

    def add(
        self, s: Series, make: Callable[[int], Job], stored: Optional[Tuple[Body, bytes]], reserve: bool
    ) -> Tuple[Optional[Job], int]:
        """Queue a new task (``reserve``: and take it at once); ``None`` if it needs encoding.

        :raises ShutDown: the MessageQueue is closed.
        """
        mq = self.mq
        with mq._mutex:
            mq._check_writable()
            q = mq._queue(s.queue, create=True)
            assert q is not None
            if not q.durable:
                task = make(0)
                seq = 0 if reserve else mq._insert(q, task, None, None)[1]
                return task, seq
            if stored is None:
                return None, 0
            msg_id, seq = mq._insert(q, stored[0], stored[1], None)
            task = make(msg_id)
            if reserve:
                seq = self._reserve_id(q, msg_id) or seq
            else:
                self.by_msg[msg_id] = task
            return task, seq

    def _reserve_id(self, q: QueueState, msg_id: int) -> int:
        mq = self.mq
        seq = mq._rec(q, ("reserve", q.name, msg_id))
        item = q.pop_ready_id(msg_id)
        assert item is not None
        q.reserve(item, None)
        return seq

    def take(self, s: Series) -> Optional[Job]:
        """Take the oldest waiting task of ``s`` from a MessageQueue that is all in memory.

        The worker's hot path: it holds its own mutex, not the handler's lock.
        """
        mq = self.mq
        q = self.queues.get(s.queue)
        if q is None:
            return None
        if q.timed or not q.plain:
            return self.pop(s)[0]
        ready = q.ready
        if not ready:
            return None
        if self.private:
            try:
                item = ready.popleft()  # atomic: see the class docstring
            except IndexError:
                return None
            return item[2]  # type: ignore[no-any-return]
        with mq._mutex:  # pops and counters only: a thread preempted in here stalls all
            while ready and q.exists and not mq._closed:
                task = ready.popleft()[2]
                q.removed += 1
                if q.putters:
                    q.not_full.notify()
                if type(task) is Job:
                    return task
                # not a task (added through the public API): skipped, as pop does
        return None

    def pop(self, s: Series) -> Tuple[Optional[Job], int]:
        """Take the oldest waiting task of ``s`` (reserved if durable): ``(task, seq)``."""
        mq = self.mq
        q = mq._queues.get(s.queue)
        if q is None or not (q.ready or q.timed):
            return None, 0
        if self.private and q.plain and not q.timed:
            return self.take(s), 0
        if q.plain and not q.timed:  # the fast path: an in-memory queue
            with mq._mutex:
                while q.ready and q.exists and not mq._closed:
                    task = q.ready.popleft()[2]
                    q.removed += 1
                    if q.putters:
                        q.not_full.notify()
                    if type(task) is Job:
                        return task, 0
            return None, 0
        if not q.exists or mq._closed:
            return None, 0
        seq = 0
        with mq._mutex:
            if q.timed:
                seq = mq._refresh(q)
            while q.ready and q.exists:
                item, _, seq2 = mq._pop_for(q, None, q.durable)
                seq = seq2 or seq
                task = self._task_of(s, q, item)
                if task is not None:
                    return task, seq
        return None, seq

    def _task_of(self, s: Series, q: QueueState, item: Tuple[int, float, Any]) -> Optional[Job]:

        if not q.durable:
            return item[2] if isinstance(item[2], Job) else None
        task = self.by_msg.pop(item[0], None)
        if task is None and self.make is not None:  # added through the public API: adopt it
            name, args, kwargs = item[2]
            task = self.make(s.name, _importer(name), tuple(args), dict(kwargs), item[0])
        return task

    def ack(self, task: Job) -> int:
        """Delete a durable task's message once it ran (or failed)."""
        mq = self.mq
        with mq._mutex:
            q = mq._queues.get("task:" + task.series)
            if q is None or mq._closed or task.msg_id not in q.reserved:
                return 0
            seq = mq._rec(q, ("remove", q.name, task.msg_id))
            q.unreserve(task.msg_id)
            q.attempts.pop(task.msg_id, None)
            q.removed += 1
            return seq

    def forget(self, job: Job) -> int:
        """Delete the message of a durable ``job`` cancelled while waiting (not reserved)."""
        mq = self.mq
        with mq._mutex:
            q = mq._queues.get("task:" + job.series)
            if q is None or mq._closed or not q.durable or job.msg_id in q.reserved:
                return 0
            if not any(item[0] == job.msg_id for item in q.ready):
                return 0
            seq = mq._rec(q, ("remove", q.name, job.msg_id))
            q.pop_ready_id(job.msg_id)
            q.attempts.pop(job.msg_id, None)
            q.removed += 1
            self.by_msg.pop(job.msg_id, None)
            return seq

    def requeue(self, s: Series, tasks: List[Job]) -> int:
        """Put tasks taken from a worker back at the front of their series, oldest first."""
        mq = self.mq
        seq = 0
        with mq._mutex:
            if mq._closed:
                return 0
            q = mq._queue(s.queue, create=True)
            assert q is not None
            now = mq._clock()
            for task in sorted(tasks, key=_task_id, reverse=True):
                if task.msg_id and task.msg_id in q.reserved:
                    self.by_msg[task.msg_id] = task
                    seq = mq._return(q, task.msg_id, None, now) or seq
                elif not task.msg_id:
                    q.ready.appendleft((0, now, task))
        return seq

    def take_all(self, s: Series, remove: bool) -> Tuple[List[Job], int]:
        """Every waiting task of ``s``; removed from the queue if in memory or ``remove``."""
        q = self._queue(s)
        if q is None:
            return [], 0
        mq = self.mq
        seq = 0
        tasks: List[Job] = []
        if self.private:
            task = self.take(s)
            while task is not None:
                tasks.append(task)
                task = self.take(s)
            return tasks, 0
        with mq._mutex:
            if q.durable and not remove:
                tasks = [self.by_msg[i] for i, _, _ in q.ready if i in self.by_msg]
                return tasks, 0
            while q.ready:
                item, _, seq2 = mq._pop_for(q, None, False)
                seq = seq2 or seq
                task = self._task_of(s, q, item)
                if task is not None:
                    tasks.append(task)
        return tasks, seq

    def waiting(self, s: Series) -> int:
        q = self.mq._queues.get(s.queue)
        return 0 if q is None or not q.exists else len(q.ready)


def _task_id(task: Job) -> int:
    return task.id


def _importer(name: str) -> Callable[..., Any]:
    """The function named ``name``, or one that raises why it cannot be imported."""
    try:
        return resolve(name)
    except Exception as exc:
        error = exc

        def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise ImportError(f"task function {name!r} cannot be imported: {error}")

        return unavailable
