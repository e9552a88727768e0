"""Waiting tasks in the queues of any queue-API object: ``TaskHandler(mq=...)``.

Internal. :class:`QueueTasks` is the :class:`~unidist_queue._waiting.TaskQueue` of a
handler given a :class:`~unidist_queue.QueueAPI` object (a MessageQueue, or any other
backend): it uses its public methods only. Series ``S`` waits in queue ``"task:S"``.

* Submitting adds a message: the stored form (:mod:`unidist_queue._stored`: function
  name, args, kwargs and this handler's reply address; what cannot be stored is refused
  with ``SerializationError``) for a durable queue and for every queue of a backend that
  is not an in-process :class:`~unidist_queue.MessageQueue` (it serializes bodies and
  may be shared by processes), its live :class:`~unidist_queue._task.Job` kept here by
  message id; else (a ``MessageQueue``'s queue that is not durable) the ``Job`` itself,
  the fast path: whichever handler of the process takes it resolves its future.
* Workers take tasks with ``reserve_many(queue, n, timeout=0)``, ``n`` bounded by their
  free slots; a finished task is acked; tasks given back are nacked (to the front, in id
  order). Over a backend that is not an in-process ``MessageQueue``, takes go through
  the handler's prefetch (:mod:`unidist_queue._prefetch`: up to one extra task per
  worker slot held in hand) and finished tasks are settled in batches
  (:mod:`unidist_queue._settles`: a group commit). A message with no live job here
  (submitted by another handler, left by a process that died, added by other code) gets
  a ``recovered`` job built from its stored form (its function imported when run,
  :class:`~unidist_queue._stored.Deferred`); its outcome goes to the reply queue its
  body names, if any, before the ack (:mod:`unidist_queue._replies`), and this handler's
  own reply queue resolves the futures of its tasks others ran. A task of this handler
  met under another message id (moved by ``retry_dead``) runs as its live job; one whose
  future is already done (a second delivery) is acked without running. A message that is
  no task is removed and logged. A stored task whose function cannot be imported did not
  run: its message moves to ``"task-dead:S"`` (:mod:`unidist_queue._deadletter`);
  :meth:`QueueTasks.revive` moves such tasks back.
* Every task submitted here is remembered while it waits in ``mq`` (a durable one in
  ``_live`` by message id, any other in ``_waiting``, left by whoever takes it), so that
  once ``mq`` is closed under the handler the futures of those still waiting can be
  failed (:meth:`QueueTasks.stranded`). A task that leaves ``mq`` another way (a
  ``clear`` or ``drop`` of its queue) stays remembered until then: its future fails at
  the close too, instead of staying pending for ever.
* Messages that become ready by any other way than a submit of this handler (an add
  by other code, a nack, a lease ending) are heard of through ``subscribe``: the
  callback (the pool's ring) only wakes a free worker.
* Messages made ready by a timed change (a delayed add or nack, a lease running out)
  are promoted lazily: nobody is rung. An idle worker thread asks :meth:`next_due`
  before it waits and wakes then to look (:func:`unidist_queue._workers._wait_for_task`).
  Limit: nobody is told of a *new* timed change (a delayed add or nack by other code, a
  lease taken by another consumer): one made while every worker idles is seen when a
  thread next asks (a ring, an update, a task finishing).

Lock: ``_adding`` is held around each add and its registration, so a worker that
reserves a stored task of this handler before its submitter registered the live job
waits for it (a miss on a body naming this handler's reply queue takes ``_adding``; a
task another handler submitted never waits for this one's adds). It is the last lock
taken: a submitter holds no other (the pool's ``_submitting`` aside) while it adds.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ._deadletter import bury, revive, settle
from ._prefetch import Prefetch
from ._replies import Replies, send
from ._settles import Settles
from ._stored import Deferred, Stored, body_of, parse_body
from ._task import Job
from ._waiting import job_id
from .errors import Empty, SerializationError, ShutDown
from .queues import MessageQueue

if TYPE_CHECKING:
    from ._routing import Series
    from .api import QueueAPI
    from .message import Message

__all__ = ["QueueTasks"]

logger = logging.getLogger("unidist_queue.tasks")

MakeJob = Callable[[str, Callable[..., Any], Tuple[Any, ...], Dict[str, Any]], Job]
"""Builds a recovered job: ``make(series, fn, args, kwargs)`` (the pool numbers it)."""


class QueueTasks:
    """A :class:`~unidist_queue._waiting.TaskQueue` over the queue API (see the module).

    ``ring(queue_name)``: called by ``mq`` whenever messages become ready in a watched
    queue, in the thread that made the change; it must only wake, never block.
    ``spare(s)``: the prefetch of series ``s`` (see :mod:`unidist_queue._prefetch`).
    """

    def __init__(
        self, mq: QueueAPI, ring: Callable[[str], Any], make: MakeJob, spare: Callable[[Series[Any]], int]
    ) -> None:
        self.mq = mq
        self._ring = ring
        self._make = make
        self._live: Dict[int, Job] = {}  # stored message id -> its live Job, while it waits
        self._adding = threading.Lock()
        self._stores: Dict[str, bool] = {}  # queue -> whether tasks are stored (looked up once)
        self._durables: Dict[str, bool] = {}  # queue -> whether durable (see _durable)
        self._in_process = isinstance(mq, MessageQueue)
        self._prefetch = None if self._in_process else Prefetch(mq, spare)
        self._settles = None if self._in_process else Settles(mq)
        #: This handler's reply queue and the stored tasks whose outcome it awaits.
        self.replies = Replies(mq, self._live)
        self._unsubscribe: List[Callable[[], None]] = []
        self._waiting: Dict[Job, None] = {}  # jobs waiting in mq as themselves (see _hold)

    def watch(self, s: Series[Any]) -> None:
        self._unsubscribe.append(self.mq.subscribe(s.queue, self._ring))

    def recover(self) -> List[str]:
        """The series of the durable ``"task:*"`` queues of ``mq``: their tasks run again."""
        mq = self.mq
        return [q[5:] for q in mq.queues() if q.startswith("task:") and mq.stats(q).durable]

    def add(self, s: Series[Any], job: Job) -> None:
        """Add ``job`` to its queue: stored (registered) if durable or not in a
        ``MessageQueue``, else the job itself.

        A queue's durability cannot change while it exists, so it is looked up once; a
        queue dropped and made again the other way is looked up again when its add is
        refused.
        """
        with self._adding:
            stored = self._stores.get(s.queue)
            if stored is None:
                stored = self._stores[s.queue] = self._stored(s.queue)
            try:
                self._add(s, job, stored)
            except SerializationError:
                now = self._stores[s.queue] = self._stored(s.queue)
                if now == stored:
                    raise
                self._add(s, job, now)

    def _stored(self, queue: str) -> bool:
        """Whether tasks wait in ``queue`` in their stored form (see the module)."""
        return not self._in_process or self.mq.stats(queue).durable

    def _add(self, s: Series[Any], job: Job, stored: bool) -> None:
        if stored:
            replies = self.replies
            body = body_of(job.fn, job.args, job.kwargs, replies.address(), job.id)
            replies.hold(job)
            try:
                job.msg_id = self.mq.add(s.queue, body)
            except BaseException:
                replies.let_go(job)
                raise
            self._live[job.msg_id] = job
            if job.future.done():  # resolved by a reply already (see Replies.resolve)
                self._live.pop(job.msg_id, None)
            return
        job.home = waiting = self._waiting  # as _hold does (inlined: the submit path)
        waiting[job] = None
        try:
            self.mq.add(s.queue, job)
        except BaseException:
            del waiting[job]
            raise

    def _hold(self, job: Job) -> None:
        """Remember ``job``, about to wait in ``mq`` as itself, until a taker lets go of it
        (:meth:`_job_of`, in this handler or another one on the same ``mq``): registered
        before its add, so no taker can come first."""
        job.home = self._waiting
        self._waiting[job] = None

    def discard(self, s: Series[Any], job: Job) -> bool:
        return False  # never needed: a submit over mq= is ordered against shutdown

    def take(self, s: Series[Any], n: int) -> List[Job]:
        jobs: List[Job] = []
        while len(jobs) < n:
            messages = self._reserve(s, n - len(jobs))
            if not messages:
                break
            junk = []
            for message in messages:
                job = self._job_of(s, message)
                if job is None:
                    junk.append(message)
                else:
                    job.message = message
                    jobs.append(job)
            if junk:
                self._settle(junk, ack=True)
        return jobs

    def _reserve(self, s: Series[Any], n: int) -> List[Message]:
        """Up to ``n`` ready messages of ``s``, reserved (``[]``: none, or ``mq`` failed)."""
        mq = self.mq
        try:
            if self._prefetch is not None:
                return self._prefetch.take(s, n)
            if not mq.count(s.queue):  # a reserve that finds nothing costs ~30 times more
                return []
            return mq.reserve_many(s.queue, n, timeout=0)
        except (Empty, ShutDown):
            return []
        except Exception:
            logger.exception("could not take tasks from %r", s.queue)
            return []

    def take_one(self, s: Series[Any]) -> Optional[Job]:
        jobs = self.take(s, 1)
        return jobs[0] if jobs else None

    def _job_of(self, s: Series[Any], message: Message) -> Optional[Job]:
        """The live job of ``message``, or one built from its stored form; ``None``: no task."""
        body = message.body
        if type(body) is Job:
            home = body.home
            if home is not None:
                body.home = None
                home.pop(body, None)
            return body
        job = self._live.pop(message.id, None)
        if job is not None:
            return job
        stored = parse_body(body)
        if stored is None:
            logger.warning("message %d of %r is not a task: removed", message.id, s.queue)
            return None
        if stored.reply_to == self.replies.queue and stored.key is not None:  # submitted here
            with self._adding:  # this handler's submitter may not have registered it yet
                job = self._live.pop(message.id, None)
            return job or self._own(s, stored, stored.key, message)
        job = self._rebuilt(s, stored)
        if stored.reply_to is not None and stored.key is not None:
            job.reply = (stored.reply_to, stored.key)
        if self._durable(s):
            job.msg_id = message.id
        return job

    def _rebuilt(self, s: Series[Any], stored: Stored) -> Job:
        """A recovered job for ``stored`` (its function imported when a worker runs it)."""
        return self._make(s.name, Deferred(stored.name), stored.args, stored.kwargs)

    def _own(self, s: Series[Any], stored: Stored, key: int, message: Message) -> Job:
        """A task submitted here, met under a message id it was not added with (moved by
        ``retry_dead``, or a second delivery): its live job, or, if its future is done
        (resolved by a reply) or a worker here holds it, a cancelled job that a worker
        skips (and acks)."""
        job = self.replies.waiting(key)
        if job is None or job.message is not None:  # resolved, or held here under its first id
            job = self._rebuilt(s, stored)
            job.future.cancel()
            return job
        self._live.pop(job.msg_id, None)  # its first message is gone (ids are never reused)
        job.msg_id = message.id
        return job

    def _durable(self, s: Series[Any]) -> bool:
        """Whether ``s``'s queue is durable: asked each time of an in-process
        ``MessageQueue`` (O(1)), once per series of any other backend (a round trip; on
        Redis it is the server's AOF setting)."""
        if self._prefetch is None:
            return self._durable_queue(s.queue)
        known = self._durables.get(s.queue)
        if known is None:
            known = self._durables[s.queue] = self._durable_queue(s.queue)
        return known

    def _durable_queue(self, queue: str) -> bool:
        try:
            return self.mq.stats(queue).durable
        except ShutDown:
            return False

    def done(self, job: Job, value: Any = None, failed: bool = False) -> None:
        """``job`` ran (``value``: its result, or its exception if ``failed``) or was
        skipped: send its outcome to its submitter's reply queue if it has one (before
        the ack: a crash in between runs it again, never loses the outcome), then ack."""
        message, job.message = job.message, None
        if message is None:
            return
        fn = job.fn
        if type(fn) is Deferred and fn.missing is not None:  # it did not run: never dropped
            bury(self.mq, job.series, message, fn.missing)
            return
        reply = job.reply
        if self._settles is not None:  # batched (see _settles); an undelivered error is logged there
            if reply is not None and not job.future.running():
                reply = job.reply = None  # skipped: no outcome to send
            elif reply is None and not job.recovered:
                self.replies.let_go(job)
            self._settles.commit(None if reply is None else (reply[0], (reply[1], value, failed)), message)
            return
        if reply is not None:  # a skipped one's future is not running; undelivered: logged
            sent = job.future.running() and send(self.mq, *reply, value, failed, False)
            if not sent:
                job.reply = None
        elif not job.recovered:
            self.replies.let_go(job)
        try:
            self.mq.ack(message)
        except (ValueError, ShutDown):  # cleared or dropped meanwhile; closed
            logger.debug("task message %d is no longer reserved", message.id)
        except Exception:
            logger.exception("the task queue could not commit; a restart may rerun tasks")

    def forget(self, s: Series[Any], job: Job) -> None:
        """Remove the message of a cancelled waiting task of a durable queue.

        The queue API removes messages from the front only: the messages up to it are
        reserved at once, its own acked and the others nacked (back at the front, in
        id order; their ``attempts`` count goes up by one).
        """
        if not job.msg_id or self._live.pop(job.msg_id, None) is None:
            return  # not waiting here (taken meanwhile), or not durable
        held = self._prefetch and self._prefetch.pop(s, job.msg_id)
        if held:  # in this handler's prefetch
            self.replies.let_go(job)
            self._settle([held], ack=True)
            return
        front: List[Message] = []
        try:
            ids = [m.id for m in self.mq.messages(s.queue)]
            if job.msg_id in ids:
                front = self.mq.reserve_many(s.queue, ids.index(job.msg_id) + 1, timeout=0)
        except (Empty, ShutDown):
            pass
        mine = [m for m in front if m.id == job.msg_id]
        if not mine:  # not found at the front (taken by others meanwhile): a worker skips it
            self._live[job.msg_id] = job
        else:
            self.replies.let_go(job)
        self._settle(mine, ack=True)
        self._settle([m for m in front if m.id != job.msg_id], ack=False)

    def requeue(self, s: Series[Any], jobs: Sequence[Job]) -> None:
        messages = self._handed_back(jobs)
        if self._prefetch is not None:  # back in the queue in id order, with those held
            messages = sorted(messages + self._prefetch.give_back(s), key=lambda m: m.id)
        self._settle(messages, ack=False)

    def _handed_back(self, jobs: Sequence[Job]) -> List[Message]:
        """The reservations of ``jobs``, oldest first; each job's live entry restored."""
        messages = []
        for job in sorted(jobs, key=job_id):
            message, job.message = job.message, None
            if message is not None:
                if message.body is job:
                    self._hold(job)
                else:
                    self._live[message.id] = job
                messages.append(message)
        return messages

    def release(self, jobs: Sequence[Job], give_back: bool) -> None:
        if give_back:
            self._settle(self._handed_back(jobs), ack=False)
            return
        # handed to the caller: a durable queue keeps them reserved (they run again
        # after a restart); any other forgets them
        gone = [job.message for job in jobs if job.message is not None and not self._keeps(job)]
        self._settle(gone, ack=True)

    def _keeps(self, job: Job) -> bool:
        """Whether ``job``'s message stays reserved when its task is handed to the caller."""
        return bool(job.msg_id) and self._durable_queue(f"task:{job.series}")

    def take_all(self, s: Series[Any], remove: bool) -> List[Job]:
        """The waiting tasks of ``s`` submitted here (see :class:`~unidist_queue._waiting.TaskQueue`).

        Stored tasks of other handlers (or of a process that is gone) are not this
        handler's to cancel: listed, they are skipped; taken, they are nacked back (to
        the front, in id order, ``attempts`` up by one). A task waiting as a ``Job``
        carries its own future, whichever handler of this process submitted it.
        """
        if not remove and self._durable(s):
            try:
                messages = self.mq.messages(s.queue)
            except ShutDown:
                return []
            if self._prefetch is not None:
                messages = sorted(self._prefetch.messages(s) + messages, key=lambda m: m.id)
            listed = [self._live.get(m.id) for m in messages]
            return [job for job in listed if job is not None]
        jobs = self.take(s, sys.maxsize)
        self._settle([job.message for job in jobs if job.message is not None and not job.recovered], ack=True)
        self._settle([job.message for job in jobs if job.message is not None and job.recovered], ack=False)
        return [job for job in jobs if not job.recovered]

    def waiting(self, s: Series[Any]) -> int:
        try:
            return self.mq.count(s.queue) + self.prefetched(s)
        except ShutDown:
            return 0

    def prefetched(self, s: Series[Any]) -> int:
        return self._prefetch.held(s) if self._prefetch is not None else 0

    def next_due(self, s: Series[Any]) -> Optional[float]:
        try:
            return self.mq.next_due(s.queue)
        except ShutDown:
            return None
        except Exception:
            logger.exception("could not ask %r when its next timed change is due", s.queue)
            return None

    def stranded(self) -> List[Job]:
        """Once ``mq`` is closed, with the pool's lock held: the tasks submitted here that
        wait in ``mq`` or run elsewhere (no worker here holds them, not done; a reassigned
        task whose future is running included), oldest first. The pool takes tasks
        under its lock, so none of its own workers takes one meanwhile."""
        if self._prefetch is not None:
            self._prefetch.stop()  # held with the closed session: nothing to give back
        jobs = [
            job for job in [*self._live.values(), *list(self._waiting)]
            if not (job.recovered or job.message is not None or job.future.done())
        ]
        self._live.clear()
        self._waiting.clear()
        seen = set(jobs)  # and those taken by another handler: their reply cannot come now
        jobs += [job for job in self.replies.unresolved() if job not in seen and job.message is None]
        return sorted(jobs, key=job_id)

    def unresolved(self) -> List[Job]:
        """At the end of a shutdown: drop the reply queue and take the tasks submitted here
        whose outcome is still awaited from another handler (futures not done), oldest first."""
        self.replies.close()
        return [job for job in self.replies.unresolved() if job.message is None]

    def revive(self, s: Series[Any]) -> int:
        """Move the tasks of ``"task-dead:S"`` back to ``"task:S"``; how many (see
        :func:`unidist_queue._deadletter.revive`). The subscription rings a worker."""
        return revive(self.mq, s.name, s.queue)

    def settled(self, timeout: Optional[float]) -> None:
        """At shutdown, once the workers are done: wait (at most ``timeout`` seconds) for
        a batch of settles being written, then write what is left (see :mod:`unidist_queue._settles`)."""
        if self._settles is not None:
            self._settles.drain(timeout)

    def close(self) -> None:
        """The pool shuts down: give back the held tasks (nacked, to the front, in id
        order: another process can take them at once), hold no more, stop listening."""
        if self._prefetch is not None:
            self._settle(self._prefetch.stop(), ack=False)
        for unsubscribe in self._unsubscribe:
            try:
                unsubscribe()
            except Exception:
                logger.debug("unsubscribing from the task queues failed", exc_info=True)
        self._unsubscribe.clear()

    def _settle(self, messages: List[Message], ack: bool) -> None:
        settle(self.mq, messages, ack)
