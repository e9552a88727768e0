"""Outcomes of tasks that another handler ran: each submitting handler's reply queue.

Internal. Handlers over one queue backend (in one process or many) share the queues
``"task:S"``: a task one handler submits may be taken by a worker of another, which has
no live job for it (no future). The outcome reaches the submitter's future through the
queue API alone, so the same code works on every backend:

* Each handler that submits a stored task (:mod:`unidist_queue._stored`) has a
  :class:`Replies`: a random reply queue ``"task-reply:<32 hex>"``, declared on its first
  stored submit with ``max_age=``:data:`REPLY_MAX_AGE` and ``durable=False`` (replies
  mean nothing after a restart: the futures are gone), and the tasks it waits on, by key
  (the job's id, unique in the handler). The stored body names both.
* A worker that runs a task with a reply address and no live job calls :func:`send`:
  before it acks the task, it adds the outcome ``{"task": key, "result": value}`` or
  ``{"task": key, "error": exception}`` to that queue, serialized as the backend
  serializes bodies (over a backend other than an in-process ``MessageQueue``, pickled
  first into ``"result_pickle"``/``"error_pickle"`` bytes when the backend carries
  bytes, so an outcome the submitter cannot unpickle fails only its own future and
  never blocks the reply queue). One that cannot be serialized is sent as ``{"task":
  key, "unserializable": why}``; either fails the future with
  :class:`~unidist_queue.SerializationError`. Reply first, ack second: a crash in
  between runs the task again (at least once), it never loses the outcome.
* The submitter's one watching thread (:mod:`unidist_queue._closewatch`, which also hears
  ``mq.close()``) blocks in ``mq.view(reply_queue).get()`` and hands each body to
  :meth:`Replies.resolve`: the first outcome of a key resolves its future, a later one
  (a task run twice) finds no key and is ignored. No polling.
* A submitter that is gone: :meth:`Replies.close` (at its shutdown) drops its reply
  queue, and :func:`send` adds only to a reply queue that exists (``exists`` first), so
  a late reply is dropped instead of making the queue again. A submitter killed without
  a shutdown leaves its queue: the replies still sent there expire after
  :data:`REPLY_MAX_AGE` (the empty queue stays until someone drops it). A reply sent
  just as its queue is dropped (between ``exists`` and ``add``) makes the queue again
  with default options: one message, a rare race, also left for someone to drop.

Thread-safety: :meth:`Replies.resolve` runs in the watching thread, every other method in
the pool's threads; the registry is a dict whose single operations (``pop``, ``get``,
setting a key) are atomic, and each key is resolved by the one thread that pops it.
"""

from __future__ import annotations

import logging
import pickle
import uuid
from concurrent.futures import InvalidStateError
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

from .errors import SerializationError, ShutDown

if TYPE_CHECKING:
    from ._task import Job
    from .api import QueueAPI

__all__ = ["REPLY_MAX_AGE", "REPLY_PREFIX", "Outcome", "Replies", "send", "send_many"]

logger = logging.getLogger("unidist_queue.tasks")

REPLY_PREFIX = "task-reply:"
"""Reply queues are named ``"task-reply:<32 hex digits>"``; a worker sends nowhere else."""

REPLY_MAX_AGE = 3600.0
"""Seconds a reply waits in a reply queue nobody reads before it expires (one hour: a
live submitter reads its replies at once; this only bounds what a dead one leaves)."""

Outcome = Tuple[int, Any, bool]
"""One task's outcome for :func:`send_many`: ``(key, value, failed)``."""

_KINDS = ("result", "error", "unserializable", "result_pickle", "error_pickle")


class Replies:
    """The reply queue of one handler and the stored tasks it waits on (see the module).

    ``live``: the handler's dict of its stored tasks still waiting in ``mq`` by message
    id (:class:`~unidist_queue._queuetasks.QueueTasks`): a task resolved by a reply
    leaves it too.
    """

    def __init__(self, mq: QueueAPI, live: Dict[int, Job]) -> None:
        self.mq = mq
        #: The name of this handler's reply queue (declared on first use).
        self.queue = f"{REPLY_PREFIX}{uuid.uuid4().hex}"
        self._declared = False
        self._pending: Dict[int, Job] = {}  # key (job id) -> its job, until resolved
        self._live = live

    def address(self) -> str:
        """The reply queue, declared the first time (by a submitter, under the task
        queue's add lock). O(1) after the first call.

        :raises ShutDown, StoreError: as ``mq.declare``.
        """
        if not self._declared:
            self.mq.declare(self.queue, max_age=REPLY_MAX_AGE, durable=False)
            self._declared = True
        return self.queue

    def hold(self, job: Job) -> None:
        """Wait for ``job``'s outcome (registered before its add, so no reply comes first). O(1)."""
        self._pending[job.id] = job

    def let_go(self, job: Job) -> None:
        """Stop waiting for ``job``'s outcome (resolved here, failed, or removed). O(1)."""
        if self._pending.get(job.id) is job:
            self._pending.pop(job.id, None)

    def waiting(self, key: int) -> Optional[Job]:
        """The job of ``key`` if its outcome is still awaited. O(1)."""
        return self._pending.get(key)

    def resolve(self, body: Any) -> None:
        """A reply arrived (from the watching thread, no lock held): resolve its future.

        The first outcome of a key wins; a later one, or one for a future cancelled
        meanwhile, is ignored (logged at DEBUG); a body that is no reply is logged at
        WARNING. The future's callbacks run in this thread. O(1) plus the callbacks.
        """
        parsed = _parse(body)
        if parsed is None:
            logger.warning("a message of %r is not a task outcome: ignored", self.queue)
            return
        key, kind, value = parsed
        job = self._pending.pop(key, None)
        if job is None:
            logger.debug("outcome of task %d ignored: it was resolved before (or is gone)", key)
            return
        try:
            if kind == "result":
                job.future.set_result(value)
            elif kind == "error":
                job.future.set_exception(value)
            else:
                job.future.set_exception(SerializationError(value))
        except InvalidStateError:  # cancelled meanwhile, or run here too and resolved first
            logger.debug("future of %r already resolved", job)
        # after the future is done: a submitter that registers the job in ``live`` only
        # now sees it done and leaves it out (QueueTasks._add), or it is popped here
        if self._live.get(job.msg_id) is job:
            self._live.pop(job.msg_id, None)

    def unresolved(self) -> List[Job]:
        """Take the jobs still awaiting their outcome (their futures not done), oldest first."""
        jobs = [job for job in list(self._pending.values()) if not job.future.done()]
        self._pending.clear()
        return sorted(jobs, key=lambda job: job.id)

    def close(self) -> None:
        """Drop the reply queue if it was declared (at the handler's shutdown): later
        replies find no queue and are dropped. Never raises (a closed ``mq``: nothing to do)."""
        if not self._declared:
            return
        self._declared = False
        try:
            self.mq.drop(self.queue)
        except ShutDown:
            pass
        except Exception:
            logger.exception("could not drop the reply queue %r", self.queue)


def send(mq: QueueAPI, reply_to: str, key: int, value: Any, failed: bool, packed: bool = False) -> bool:
    """Add a task's outcome (``value``; an exception if ``failed``) to ``reply_to``, if
    that queue exists (worker side; see the module); whether it was sent.

    ``packed`` (a backend other than an in-process ``MessageQueue``): the outcome is
    pickled here, into the body as bytes (``"result_pickle"``/``"error_pickle"``), so
    that one the submitter cannot unpickle (its class not importable there, an
    exception that cannot be made again from its ``args``) fails that future with
    ``SerializationError`` instead of a reply queue whose first body cannot be read; a
    backend that cannot carry bytes (JSON) gets the outcome itself. Never raises: a
    failure is logged (the submitter's future then stays pending; the task is acked
    anyway, as a task's result never fails it). Cost: two queue calls (``exists``,
    ``add``), another for each body the backend refuses to serialize.
    """
    if not reply_to.startswith(REPLY_PREFIX):
        logger.warning("task %d names %r as its reply queue, not a reply queue: no reply sent", key, reply_to)
        return False
    try:
        if not mq.exists(reply_to):
            logger.debug("the submitter of task %d is gone (%r dropped): no reply sent", key, reply_to)
            return False
        _add_outcome(mq, reply_to, key, value, failed, packed)
        return True
    except ShutDown:
        logger.debug("the task queues are closed: the outcome of task %d was not sent", key)
    except Exception:
        logger.exception("could not send the outcome of task %d to %r", key, reply_to)
    return False


def send_many(mq: QueueAPI, reply_to: str, outcomes: List[Outcome], packed: bool) -> List[bool]:
    """Add several outcomes to ``reply_to`` in one ``add_many``, if that queue exists (a
    batched :func:`send`); whether each was sent, in order.

    Each body is the one :func:`send` tries first; if the backend refuses one
    (``SerializationError``), each outcome is added alone as :func:`send` adds it. Never raises
    (failures are logged, as :func:`send` does). Cost: two queue calls (``exists``,
    ``add_many``) for the whole batch.
    """
    if len(outcomes) == 1 or not reply_to.startswith(REPLY_PREFIX):
        return [send(mq, reply_to, key, value, failed, packed) for key, value, failed in outcomes]
    try:
        if not mq.exists(reply_to):
            logger.debug("the submitter of %d tasks is gone (%r dropped): no reply sent",
                         len(outcomes), reply_to)
            return [False] * len(outcomes)
        try:
            mq.add_many(reply_to, [next(_bodies(key, v, failed, packed)) for key, v, failed in outcomes])
        except SerializationError:  # one at a time, each in the first form the backend takes
            for key, value, failed in outcomes:
                _add_outcome(mq, reply_to, key, value, failed, packed)
        return [True] * len(outcomes)
    except ShutDown:
        logger.debug("the task queues are closed: the outcomes of %d tasks were not sent", len(outcomes))
    except Exception:
        logger.exception("could not send the outcomes of %d tasks to %r", len(outcomes), reply_to)
    return [False] * len(outcomes)


def _add_outcome(mq: QueueAPI, reply_to: str, key: int, value: Any, failed: bool, packed: bool) -> None:
    """Add the first body of the outcome (see :func:`_bodies`) that the backend can
    serialize, else one saying it could not be; raises what ``add`` raises otherwise."""
    why: Optional[BaseException] = None
    for body in _bodies(key, value, failed, packed):
        try:
            mq.add(reply_to, body)
            return
        except SerializationError as exc:
            why = exc
    mq.add(reply_to, _unserializable(key, value, failed, why))


def _bodies(key: int, value: Any, failed: bool, packed: bool) -> Iterator[Dict[str, Any]]:
    """The reply bodies to try, in order (see :func:`send`)."""
    kind = "error" if failed else "result"
    if packed:
        try:
            data = pickle.dumps(value)
        except Exception as exc:
            yield _unserializable(key, value, failed, exc)
            return
        yield {"task": key, f"{kind}_pickle": data}
    yield {"task": key, kind: value}


def _unserializable(key: int, value: Any, failed: bool, why: Optional[BaseException]) -> Dict[str, Any]:
    what = ("the task raised " if failed else "the task's result ") + _describe(value)
    return {"task": key, "unserializable": f"{what} cannot be serialized: {why}"}


def _describe(value: Any) -> str:
    """``repr(value)`` (a type name if that fails), at most 200 characters."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= 200 else text[:197] + "..."


def _parse(body: Any) -> Optional[Tuple[int, str, Any]]:
    """``(key, kind, value)`` of a reply body, or ``None`` if it is none."""
    if not isinstance(body, dict) or len(body) != 2:
        return None
    key = body.get("task")
    kinds = [k for k in _KINDS if k in body]
    if isinstance(key, bool) or not isinstance(key, int) or len(kinds) != 1:
        return None
    kind, value = kinds[0], body[kinds[0]]
    if kind.endswith("_pickle"):
        if not isinstance(value, bytes):
            return None
        kind = kind[:-7]
        try:
            value = pickle.loads(value)  # a bytes body comes only from pickle (see send)
        except Exception as exc:
            return key, "unserializable", f"the task's outcome cannot be unpickled here: {exc!r}"
    if kind == "error" and not isinstance(value, BaseException):
        return key, "unserializable", f"the task raised an exception that came back as {_describe(value)}"
    if kind == "unserializable" and not isinstance(value, str):
        value = _describe(value)
    return key, kind, value
