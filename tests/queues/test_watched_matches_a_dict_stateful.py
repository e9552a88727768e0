"""The watch of a queue's view-put messages (``_watched.Watched``) behaves as the dict it
replaces: message id -> the callback of the view that put it.

A unit test of an internal object (it imports ``unidist_queue._watched``): the behaviour
that relies on it, ``join`` of a view, is tested through public names in
``tests/view`` and ``tests/asyncio``; this one checks the run-plus-dict representation
itself against a plain dict, including ids removed inside the run (the split).
"""

from __future__ import annotations

import asyncio
from typing import Callable, Dict

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from unidist_queue import MessageQueue
from unidist_queue._watched import Watched


def _callback(tag: str) -> Callable[[], None]:
    def left() -> None:
        pass

    left.__name__ = tag
    return left


LEFTS = [_callback("a"), _callback("b")]


class WatchedMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.watched = Watched()
        self.model: Dict[int, Callable[[], None]] = {}
        self.next_id = 1

    @rule(view=st.sampled_from(LEFTS), gap=st.integers(0, 2), k=st.integers(1, 6))
    def put(self, view: Callable[[], None], gap: int, k: int) -> None:
        """A view puts the next ``k`` messages (ids grow; other queues may take some
        before them)."""
        self.next_id += gap
        for _ in range(k):
            self.watched[self.next_id] = view
            self.model[self.next_id] = view
            self.next_id += 1

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        """Any watched message leaves (taken in or out of order, evicted, acked...)."""
        msg_id = data.draw(st.sampled_from(sorted(self.model)))
        assert self.watched.pop(msg_id) is self.model.pop(msg_id)

    @rule(msg_id=st.integers(0, 40))
    def remove_unknown(self, msg_id: int) -> None:
        if msg_id not in self.model:
            assert self.watched.pop(msg_id, None) is None

    @rule(msg_id=st.integers(0, 40))
    def look_up(self, msg_id: int) -> None:
        assert self.watched.get(msg_id) is self.model.get(msg_id)

    @invariant()
    def same_entries(self) -> None:
        assert len(self.watched) == len(self.model)
        assert bool(self.watched) == bool(self.model)
        assert sorted(map(id, self.watched.values())) == sorted(map(id, self.model.values()))


TestWatchedMatchesADict = WatchedMachine.TestCase
TestWatchedMatchesADict.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)


def test_join_waits_for_the_items_of_two_views_taken_out_of_order() -> None:
    """Two views put in turns into one queue; items taken from both ends and a clear
    each settle the right view's count."""

    async def main() -> None:
        with MessageQueue() as mq:
            a, b = mq.aview("q"), mq.aview("q")
            for i in range(6):
                (a if i % 3 else b).put_nowait(i)
            assert mq.newest("q") == 5  # a's, taken for good: a waits for its task_done
            assert await a.get() == 0  # b's
            b.task_done()
            a.task_done()
            mq.clear("q")  # 1, 2, 4 (a's) and 3 (b's) leave undelivered
            await asyncio.wait_for(asyncio.gather(a.join(), b.join()), 10)

    asyncio.run(main())
