"""A Hypothesis state machine: MessageQueue against a dict-of-lists model (issue #2).

Rules: add, oldest, newest, reserve, ack, nack, clear, drop, declare (maxlen with
``drop_oldest`` / ``reject``, ``max_attempts`` and ``dead_letter``: a nack or a restart past
``max_attempts`` moves the message, or drops it); invariants: ``count``, ``all``, ``queues``, ``exists``,
``stats`` agree with the model after every step.

Durable stores reuse this machine: subclass :class:`QueueMachine`, override
:meth:`QueueMachine.make_queue` (e.g. ``MessageQueue(FileStore(tmpdir))``) and
:meth:`QueueMachine.reopen` (close, then return a new MessageQueue on the same store),
and add a rule that calls :meth:`QueueMachine.restart`, which reopens and moves the
model's reservations back to the front in id order, as DESIGN.md section 3 says.
:class:`DurableQueueMachine` does so on a ``FileStore``, with ``close_and_reopen`` and
``compact`` rules.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any, Dict, List, Optional

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, multiple, rule

from unidist_queue import Empty, Full, Message, MessageQueue
from unidist_queue.store.file import FileStore

NAMES = st.sampled_from(["a", "b", "c"])
MAXLENS = st.one_of(st.none(), st.integers(1, 4))
OVERFLOWS = st.sampled_from(["drop_oldest", "reject"])
OMITTED = object()


@attrs.define
class ModelQueue:
    """One queue of the model: ready ``[id, body]`` lists, oldest first, and reservations."""

    maxlen: Optional[int] = None
    overflow: str = "drop_oldest"
    max_attempts: Optional[int] = None
    dead_letter: Optional[str] = None
    dead: int = 0  # stats().dead: since the MessageQueue was opened
    ready: List[List[Any]] = attrs.Factory(list)
    reserved: Dict[int, Any] = attrs.Factory(dict)  # id -> body
    attempts: Dict[int, int] = attrs.Factory(dict)  # id -> times reserved, while it lives

    def evict_for_add(self) -> bool:
        """Make room for one add; ``False`` if the add must raise ``Full``."""
        while self.maxlen is not None and len(self.ready) >= self.maxlen:
            if self.overflow == "reject":
                return False
            self.attempts.pop(self.ready.pop(0)[0], None)
        return True

    def remove(self, msg_id: int) -> None:
        self.attempts.pop(msg_id, None)

    def return_to_front(self, msg_id: int, body: Any) -> None:
        """After the returned messages (those reserved before) with smaller ids."""
        i = 0
        while i < len(self.ready) and self.ready[i][0] < msg_id and self.ready[i][0] in self.attempts:
            i += 1
        self.ready.insert(i, [msg_id, body])


class QueueMachine(RuleBasedStateMachine):
    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.mq = self.make_queue()
        self.model: Dict[str, ModelQueue] = {}
        self.last_id = 0
        self.next_body = 0

    # -- hooks for subclasses -----------------------------------------------------------------

    def make_queue(self) -> MessageQueue:
        """The MessageQueue under test (a durable subclass passes a persistent store)."""
        return MessageQueue()

    def reopen(self) -> MessageQueue:
        """Close ``self.mq`` and return a new MessageQueue on the same store."""
        raise NotImplementedError("only durable subclasses can reopen")

    def restart(self) -> None:
        """Reopen; the model's reservations end in id order: back to the front, or (past
        ``max_attempts``) to the dead-letter queue; the counters start again."""
        self.mq = self.reopen()
        for q in self.model.values():
            q.dead = 0
        ending = sorted((i, name) for name, q in self.model.items() for i in q.reserved)
        for msg_id, name in ending:
            self.end_reservation(name, msg_id)

    def end_reservation(self, name: str, msg_id: int) -> None:
        """The model's reservation ``msg_id`` of ``name`` ends unacked (nack or restart)."""
        q = self.model[name]
        body = q.reserved.pop(msg_id)
        if q.max_attempts is None or q.attempts[msg_id] < q.max_attempts:
            q.return_to_front(msg_id, body)
            return
        q.remove(msg_id)
        q.dead += 1
        if q.dead_letter is None:
            return
        d = self.model.setdefault(q.dead_letter, ModelQueue())
        if d.evict_for_add():  # a new id, the next one (a clean close records the last id)
            self.last_id += 1
            d.ready.append([self.last_id, body])

    def teardown(self) -> None:
        self.mq.close()

    @initialize(retries=st.sampled_from([None, (1, "b"), (2, "b"), (2, None)]))
    def bound_retries(self, retries: Any) -> None:
        """Most runs bound the retries of "a" (into "b", or nowhere) from the start."""
        if retries is not None:
            self.declare("a", OMITTED, OMITTED, *retries)

    # -- rules ----------------------------------------------------------------------------------

    @rule(
        name=NAMES,
        maxlen=st.one_of(st.just(OMITTED), MAXLENS),
        overflow=st.one_of(st.just(OMITTED), OVERFLOWS),
        max_attempts=st.one_of(st.just(OMITTED), st.none(), st.integers(1, 3)),
        dead_letter=st.one_of(st.just(OMITTED), st.none(), NAMES),
    )
    def declare(self, name: str, maxlen: Any, overflow: Any, max_attempts: Any, dead_letter: Any) -> None:
        options = {"maxlen": maxlen, "overflow": overflow, "max_attempts": max_attempts}
        options["dead_letter"] = dead_letter
        kwargs = {key: value for key, value in options.items() if value is not OMITTED}
        old = self.model.get(name, ModelQueue())
        new_maxlen = old.maxlen if maxlen is OMITTED else maxlen
        new_overflow = old.overflow if overflow is OMITTED else overflow
        bounded = (maxlen is OMITTED and overflow is OMITTED) or new_maxlen is not None
        if dead_letter == name or not (bounded or new_overflow == "drop_oldest"):
            with pytest.raises(ValueError, match=r"dead_letter|maxlen"):
                self.mq.declare(name, **kwargs)
            return
        self.mq.declare(name, **kwargs)
        q = self.model.setdefault(name, ModelQueue())
        q.maxlen, q.overflow = new_maxlen, new_overflow
        if max_attempts is not OMITTED:
            q.max_attempts = max_attempts
        if dead_letter is not OMITTED:
            q.dead_letter = dead_letter
        if q.maxlen is not None and q.overflow == "drop_oldest":
            while len(q.ready) > q.maxlen:
                q.remove(q.ready.pop(0)[0])

    @rule(name=NAMES)
    def add(self, name: str) -> None:
        body = self.next_body
        self.next_body += 1
        q = self.model.get(name, ModelQueue())
        if not q.evict_for_add():
            with pytest.raises(Full):
                self.mq.add(name, body)
            return
        msg_id = self.mq.add(name, body)
        assert msg_id > self.last_id
        self.last_id = msg_id
        q.ready.append([msg_id, body])
        self.model[name] = q

    @rule(name=NAMES, remove=st.booleans(), newest=st.booleans())
    def take(self, name: str, remove: bool, newest: bool) -> None:
        q = self.model.get(name)
        take = self.mq.newest if newest else self.mq.oldest
        if q is None or not q.ready:
            with pytest.raises(Empty):
                take(name, remove=remove)
            assert take(name, remove=remove, default="default") == "default"
            return
        index = -1 if newest else 0
        assert take(name, remove=remove) == q.ready[index][1]
        if remove:
            q.remove(q.ready.pop(index)[0])

    @rule(target=reservations, name=NAMES)
    def reserve(self, name: str) -> Any:
        q = self.model.get(name)
        if q is None or not q.ready:
            with pytest.raises(Empty):
                self.mq.reserve(name, timeout=0)
            return None
        msg_id, body = q.ready.pop(0)
        q.attempts[msg_id] = q.attempts.get(msg_id, 0) + 1
        q.reserved[msg_id] = body
        message = self.mq.reserve(name, timeout=0)
        assert (message.id, message.queue, message.body) == (msg_id, name, body)
        assert message.attempts == q.attempts[msg_id]
        return message

    def _live(self, message: Optional[Message]) -> Optional[ModelQueue]:
        """The model queue holding ``message``'s reservation, if it is still live."""
        if message is None:
            return None
        q = self.model.get(message.queue)
        if q is None or message.id not in q.reserved or q.attempts.get(message.id) != message.attempts:
            return None
        return q

    @rule(message=reservations)
    def ack(self, message: Optional[Message]) -> None:
        if message is None:
            return
        q = self._live(message)
        if q is None:
            with pytest.raises(ValueError, match="message"):
                self.mq.ack(message)
            return
        self.mq.ack(message)
        del q.reserved[message.id]
        q.remove(message.id)

    @rule(message=reservations)
    def nack(self, message: Optional[Message]) -> None:
        if message is None:
            return
        q = self._live(message)
        if q is None:
            with pytest.raises(ValueError, match="message"):
                self.mq.nack(message)
            return
        self.mq.nack(message)
        self.end_reservation(message.queue, message.id)

    @rule(name=NAMES)
    def fail_once(self, name: str) -> None:
        """Reserve and nack at once: a failed attempt (past ``max_attempts``, a move)."""
        message = self.reserve(name)
        if message is not None:
            self.nack(message)

    @rule(name=NAMES)
    def clear(self, name: str) -> None:
        q = self.model.get(name)
        expected = 0 if q is None else len(q.ready) + len(q.reserved)
        assert self.mq.clear(name) == expected
        if q is not None:
            q.ready.clear()
            q.reserved.clear()
            q.attempts.clear()

    @rule(name=NAMES)
    def drop(self, name: str) -> None:
        assert self.mq.drop(name) is (name in self.model)
        self.model.pop(name, None)

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def agrees_with_model(self) -> None:
        assert self.mq.queues() == sorted(self.model)
        for name in ["a", "b", "c"]:
            q = self.model.get(name)
            bodies = [] if q is None else [body for _, body in q.ready]
            assert self.mq.exists(name) is (q is not None)
            assert self.mq.count(name) == len(bodies)
            assert self.mq.all(name) == bodies
            if q is not None:
                assert [m.id for m in self.mq.messages(name)] == [i for i, _ in q.ready]
                stats = self.mq.stats(name)
                assert (stats.ready, stats.delayed, stats.reserved) == (len(q.ready), 0, len(q.reserved))
                assert stats.dead == q.dead


QueueMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestQueueMachine = QueueMachine.TestCase


class DurableQueueMachine(QueueMachine):
    """The same rules on a FileStore, plus a close-and-reopen rule and compaction.

    ``compact_every`` is small so that automatic compaction happens between the rules too.
    Each run starts with messages in every queue, and ``reserve_two`` holds two
    reservations at once, so that restarts often find several unsettled reservations.
    """

    @initialize()
    def fill(self) -> None:
        for name in ["a", "b", "c"]:
            for _ in range(3):
                self.add(name)

    @rule(target=QueueMachine.reservations, name=NAMES)
    def reserve_two(self, name: str) -> Any:
        held = [self.reserve(name), self.reserve(name)]
        return multiple(*[m for m in held if m is not None])

    def make_queue(self) -> MessageQueue:
        self.path = tempfile.mkdtemp(prefix="unidist-machine-")
        return self._open()

    def _open(self) -> MessageQueue:
        return MessageQueue(store=FileStore(self.path, fsync="never", compact_every=7))

    def reopen(self) -> MessageQueue:
        self.mq.close()
        return self._open()

    @rule()
    def close_and_reopen(self) -> None:
        self.restart()

    @rule()
    def compact(self) -> None:
        self.mq.compact()

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            shutil.rmtree(self.path, ignore_errors=True)


DurableQueueMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestDurableQueueMachine = DurableQueueMachine.TestCase
