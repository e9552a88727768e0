"""A Hypothesis state machine for timed changes (issue 11, DESIGN 3).

Two durable MessageQueues on one manual clock take the same operations, interleaved with
clock moves (``max_attempts`` and ``dead_letter`` included: a lease lapsing past
``max_attempts`` moves a message to the other queue at its due time). The second one
also gets extra looks (``count``) at random points. Timed changes (a delay falling due,
a lease ending, an age expiring) take effect at their due time, so every result must be
the same in both: a look never changes what any call returns. And a read-only reopen of
either store (a replay of its snapshot and archive at the same clock time) must give the
live state once the live reservations are ended, as a restart ends them.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any, Callable, Dict, Optional, Tuple

from conftest import ManualClock
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, precondition, rule

from unidist_queue import FileStore, Message, MessageQueue

NAMES = st.sampled_from(["a", "a", "a", "b"])  # mostly one queue: its changes interact
SECONDS = st.sampled_from([None, 0.5, 1.0, 2.0])
BEFORE = st.tuples(st.sampled_from([0.0, 0.0, 0.5, 1.0, 1.5, 3.0]), st.booleans())
Outcome = Tuple[str, Any]


def outcome(call: Callable[[], Any]) -> Outcome:
    """What a call returned, or the type of what it raised (compared across the twins)."""
    try:
        return "ok", call()
    except Exception as exc:
        return "raised", type(exc).__name__


def envelope(m: Message) -> Tuple[Any, ...]:
    return (m.id, m.queue, m.body, m.enqueued_at, m.attempts)


class TimedTwins(RuleBasedStateMachine):
    """``plain`` and ``looked`` take the same calls; ``looked`` also gets extra counts."""

    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.tmp = tempfile.mkdtemp(prefix="uq-timed-")
        self.paths = [f"{self.tmp}/plain", f"{self.tmp}/looked"]
        self.twins = [self.open(path) for path in self.paths]
        self.bodies = 0
        self.held: Dict[int, Tuple[Any, ...]] = {}  # id -> envelope of a reservation not yet settled

    def open(self, path: str) -> MessageQueue:
        return MessageQueue(FileStore(path, fsync="never"), clock=self.clock)

    def both(self, call: Callable[[MessageQueue], Any], before: Tuple[float, bool] = (0.0, False)) -> Any:
        """Run ``call`` on each twin; their outcomes must be equal. Returns the outcome.

        ``before``: first move the clock that far and, if true, let the looked twin count
        every queue (a look between a clock move and a call is where laziness would show).
        """
        wait, look = before
        self.clock.advance(wait)
        if look:
            for name in ("a", "b"):
                self.twins[1].count(name)
        plain, looked = (outcome(lambda mq=mq: call(mq)) for mq in self.twins)
        assert plain == looked
        return plain

    @initialize(
        retries=st.sampled_from([None, (1, "b"), (2, "b"), (1, None)]),
        back=st.sampled_from([None, None, (1, "a")]),
    )
    def retries(self, retries: Optional[Tuple[int, Optional[str]]], back: Optional[Tuple[int, str]]) -> None:
        """Most runs start with bounded retries on "a" (into "b", or nowhere), some with
        "b" moving back into "a" too: leases lapsing past them move messages."""
        for queue, option in (("a", retries), ("b", back)):
            if option is not None:
                self.both(lambda mq, q=queue, o=option: mq.declare(q, max_attempts=o[0], dead_letter=o[1]))

    # -- time and the extra look ----------------------------------------------------------

    @rule(
        seconds=st.sampled_from([0.25, 0.5, 1.0, 1.5, 3.0]),
        looks=st.sampled_from([(), ("a",), ("a",), ("a", "b")]),
    )
    def advance(self, seconds: float, looks: Tuple[str, ...]) -> None:
        """Move the clock; then the looked twin may count (where a look matters most)."""
        self.clock.advance(seconds)
        for queue in looks:
            self.twins[1].count(queue)

    @rule(queue=NAMES)
    def look(self, queue: str) -> None:
        """The call under test: a count on one twin only."""
        self.twins[1].count(queue)

    # -- operations -------------------------------------------------------------------------

    @rule(queue=NAMES, delay=SECONDS, before=BEFORE)
    def add(self, queue: str, delay: Optional[float], before: Tuple[float, bool]) -> None:
        self.bodies += 1
        body = self.bodies
        self.both(lambda mq: mq.add(queue, body, delay=delay), before)

    @rule(
        queue=NAMES,
        maxlen=st.sampled_from([None, 1, 2, 3]),
        max_age=st.sampled_from([None, 1.0, 2.5]),
        overflow=st.sampled_from(["drop_oldest", "reject"]),
        max_attempts=st.sampled_from([None, 1, 1, 2]),
        dead_letter=st.sampled_from([None, "a", "b", "b"]),
    )
    def declare(
        self, queue: str, maxlen: Optional[int], max_age: Optional[float], overflow: str,
        max_attempts: Optional[int], dead_letter: Optional[str],
    ) -> None:
        """Options, retries included: a lease lapsing past ``max_attempts`` moves the message
        (to the other queue, or nowhere), at its due time whichever queue is looked at."""
        self.both(lambda mq: mq.declare(queue, maxlen=maxlen, max_age=max_age, overflow=overflow,
                                        max_attempts=max_attempts, dead_letter=dead_letter))

    @rule(queue=NAMES, front=st.booleans(), remove=st.booleans(), before=BEFORE)
    def take(self, queue: str, front: bool, remove: bool, before: Tuple[float, bool]) -> None:
        self.both(lambda mq: (mq.oldest if front else mq.newest)(queue, remove=remove), before)

    @rule(target=reservations, queue=NAMES, lease=SECONDS, before=BEFORE)
    def reserve(self, queue: str, lease: Optional[float], before: Tuple[float, bool]) -> Any:
        kind, got = self.both(lambda mq: envelope(mq.reserve(queue, timeout=0, lease=lease)), before)
        if kind != "ok":
            return None
        self.held[got[0]] = got
        return got

    @rule(held=reservations, how=st.sampled_from(["ack", "nack", "nack later"]), before=BEFORE)
    def settle(self, held: Optional[Tuple[Any, ...]], how: str, before: Tuple[float, bool]) -> None:
        if held is None:
            self.clock.advance(before[0])
            return
        m = Message(*held)
        if self.held.get(m.id) == held:
            del self.held[m.id]
        if how == "ack":
            self.both(lambda mq: mq.ack(m), before)
        else:
            self.both(lambda mq: mq.nack(m, delay=1.0 if how == "nack later" else None), before)

    @rule(queue=NAMES, before=BEFORE)
    def clear(self, queue: str, before: Tuple[float, bool]) -> None:
        self.both(lambda mq: mq.clear(queue), before)

    @rule(queue=NAMES)
    def observe(self, queue: str) -> None:
        """A look on both twins: every kind of read agrees."""
        self.both(lambda mq: [envelope(m) for m in mq.messages(queue)])
        self.both(lambda mq: mq.stats(queue))

    @precondition(lambda self: self.bodies > 0)
    @rule(which=st.sampled_from([0, 1]))
    def replay_gives_the_live_state(self, which: int) -> None:
        """A read-only reopen (replay at this clock time) is the live state, reservations ended."""
        reader = MessageQueue(FileStore(self.paths[which], read_only=True), clock=self.clock)
        try:
            replayed = self.state(reader)
        finally:
            reader.close()
        self.end_reservations()
        assert self.state(self.twins[which]) == replayed

    def end_reservations(self) -> None:
        """Nack every reservation still held on both twins, in id order, as a restart ends them.

        A reservation whose lease ran out is no longer current: its nack raises
        ``ValueError`` on both twins alike, and it was returned at its due time.
        """
        for held in sorted(self.held.values()):
            m = Message(*held)
            self.both(lambda mq: mq.nack(m))  # noqa: B023 (called at once)
        self.held.clear()

    @staticmethod
    def state(mq: MessageQueue) -> Dict[str, Any]:
        """Every queue's messages (without ids: a message moved to a dead-letter queue at a
        reopen gets a new id that a read-only reader picks from the id block recorded)."""
        return {
            name: ([envelope(m)[1:] for m in mq.messages(name)], mq.stats(name).delayed,
                   mq.stats(name).reserved)
            for name in mq.queues()
        }

    def teardown(self) -> None:
        for mq in self.twins:
            mq.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


TimedTwins.TestCase.settings = settings(max_examples=500, stateful_step_count=25, deadline=None)
test_timed_changes = TimedTwins.TestCase
