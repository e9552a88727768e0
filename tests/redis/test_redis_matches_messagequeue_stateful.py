"""A Hypothesis state machine: RedisMessageQueue does what MessageQueue does, step by step.

Both receive the same calls (no timed changes: leases are long); every result, every
exception class and, after each step, every look (``queues``, ``all``, ``messages`` with
ids and attempts, ``count``, ``exists``, ``stats`` but ``durable``) must agree. The ids
agree too: both hand them out from 1, one per add or dead-letter move.
"""

from __future__ import annotations

from typing import Any, Callable, List, Tuple

import attrs
import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from unidist_queue import Message, MessageQueue, RedisMessageQueue

NAMES = st.sampled_from(["a", "b", "c"])
BODIES = st.one_of(st.integers(), st.text(max_size=3), st.none())
LEASE = 600.0


def outcome(call: Callable[[], Any]) -> Tuple[str, Any]:
    """What a call did: ("ok", its result) or ("raised", the exception's class name)."""
    try:
        return "ok", call()
    except Exception as exc:  # ValueError, Empty, Full, ... compared by class
        return "raised", type(exc).__name__


def plain(value: Any) -> Any:
    """Messages without their enqueued_at (the clocks differ)."""
    if isinstance(value, Message):
        return (value.id, value.queue, value.body, value.attempts)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class Differential(RuleBasedStateMachine):
    def __init__(self, url: str) -> None:
        super().__init__()
        admin = redis.Redis.from_url(url)
        admin.flushall()
        admin.close()
        self.r = RedisMessageQueue(url)
        self.m = MessageQueue()
        self.held: List[Tuple[Message, Message]] = []

    def both(self, fn: Callable[[Any], Any]) -> Tuple[Any, Any]:
        got_r, got_m = outcome(lambda: fn(self.r)), outcome(lambda: fn(self.m))
        assert plain(got_r) == plain(got_m)
        return got_r, got_m

    @rule(q=NAMES, body=BODIES)
    def add(self, q: str, body: Any) -> None:
        self.both(lambda mq: mq.add(q, body))

    @rule(q=NAMES, bodies=st.lists(BODIES, max_size=5))
    def add_many(self, q: str, bodies: List[Any]) -> None:
        self.both(lambda mq: mq.add_many(q, bodies))

    @rule(q=NAMES, newest=st.booleans(), remove=st.booleans())
    def take(self, q: str, newest: bool, remove: bool) -> None:
        self.both(lambda mq: (mq.newest if newest else mq.oldest)(q, remove=remove))

    @rule(q=NAMES, n=st.integers(1, 3))
    def reserve(self, q: str, n: int) -> None:
        got_r, got_m = self.both(lambda mq: mq.reserve_many(q, n, timeout=0, lease=LEASE))
        if got_r[0] == "ok":
            self.held.extend(zip(got_r[1], got_m[1], strict=True))

    @rule(data=st.data(), how=st.sampled_from(["ack", "nack", "ack_many", "nack_many"]))
    def settle(self, data: st.DataObject, how: str) -> None:
        if not self.held:
            return
        picked = data.draw(st.lists(st.sampled_from(self.held), min_size=1, max_size=3))
        if how.endswith("_many"):
            self.both(lambda mq: getattr(mq, how)([p[mq is self.m] for p in picked]))
        else:
            self.both(lambda mq: getattr(mq, how)(picked[0][mq is self.m]))

    @rule(q=NAMES, maxlen=st.one_of(st.none(), st.integers(1, 4)),
          overflow=st.sampled_from(["drop_oldest", "reject"]),
          max_attempts=st.one_of(st.none(), st.integers(1, 2)), dead_letter=st.one_of(st.none(), NAMES))
    def declare(self, q: str, maxlen: Any, overflow: str, max_attempts: Any, dead_letter: Any) -> None:
        self.both(lambda mq: mq.declare(q, maxlen=maxlen, overflow=overflow, max_attempts=max_attempts,
                                        dead_letter=dead_letter))

    @rule(q=NAMES, drop=st.booleans())
    def remove(self, q: str, drop: bool) -> None:
        self.both(lambda mq: mq.drop(q) if drop else mq.clear(q))

    @invariant()
    def looks_agree(self) -> None:
        self.both(lambda mq: mq.queues())
        for name in ("a", "b", "c"):
            self.both(lambda mq, q=name: (mq.all(q), mq.messages(q), mq.count(q), mq.exists(q)))
            self.both(lambda mq, q=name: attrs.evolve(mq.stats(q), durable=False))

    def teardown(self) -> None:
        self.r.close()
        self.m.close()


def test_redis_matches_messagequeue(redis_url: str) -> None:
    run_state_machine_as_test(lambda: Differential(redis_url),
                              settings=settings(max_examples=60, stateful_step_count=30, deadline=None))
