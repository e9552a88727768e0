"""No item is stranded while a getter sleeps, whatever the order of parks, puts and
cancels (issue 14, SCALEOUT section 4).

Hypothesis draws a sequence of steps on one event loop: park getters (the view's
``get``, ``aget``, ``areserve``), put items from this loop or from a thread while the
loop is held (so the wake-ups are queued and not yet run), cancel a pending getter, let
the loop run. Once the loop has run, a ready item and a parked live getter never exist
together, and every item put was either received once by a getter that finished or is
still in the queue; a cancelled getter took nothing. The same for putters of a bounded
view: never room left while a putter sleeps, and a cancelled putter put nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, Dict, List, Set, Tuple

from async_helpers import run, settle, thread_calls
from hypothesis import given, settings
from hypothesis import strategies as st

from unidist_queue import MessageQueue


async def _reserved_body(mq: MessageQueue) -> Any:
    m = await mq.areserve("q")
    mq.ack(m)
    return m.body


GETTERS: Dict[str, Callable[[MessageQueue], Coroutine[Any, Any, Any]]] = {
    "aview.get": lambda mq: mq.aview("q").get(),
    "aget": lambda mq: mq.aget("q"),
    "areserve": _reserved_body,
}

Action = Tuple[str, int]
# a round: getters to park (the loop then runs, so they park), then puts and cancels made
# without the loop running in between, then the loop runs and the invariants are checked
Round = Tuple[List[str], List[Action]]
rounds = st.lists(
    st.tuples(
        st.lists(st.sampled_from(sorted(GETTERS)), max_size=4),
        st.lists(st.tuples(st.sampled_from(["put here", "put from a thread", "cancel"]),
                           st.integers(0, 5)), max_size=6),
    ),
    max_size=5,
)


def check(mq: MessageQueue, tasks: List[asyncio.Task[Any]], put: List[int]) -> None:
    """The invariants, once the loop has run."""
    waiting = [t for t in tasks if not t.done()]
    left = mq.all("q")
    assert not (waiting and left), f"{len(left)} items ready while {len(waiting)} getters sleep"
    received = [t.result() for t in tasks if t.done() and not t.cancelled()]
    assert sorted(received + left) == put
    assert mq.stats("q").reserved == 0


@settings(max_examples=200)
@given(rounds=rounds)
def test_no_item_is_stranded_while_a_getter_sleeps(rounds: List[Round]) -> None:
    with MessageQueue() as mq:
        aq = mq.aview("q")

        async def main() -> None:
            tasks: List[asyncio.Task[Any]] = []
            cancelled: Set[asyncio.Task[Any]] = set()
            put: List[int] = []

            def items(n: int) -> List[int]:
                new = list(range(len(put), len(put) + n))
                put.extend(new)
                return new

            for parks, actions in rounds:
                tasks += [asyncio.create_task(GETTERS[kind](mq)) for kind in parks]
                await settle()
                for kind, n in actions:
                    if kind == "put here":
                        for x in items(n):
                            aq.put_nowait(x)
                    elif kind == "put from a thread":
                        thread_calls(*[lambda x=x: aq.put_nowait(x) for x in items(n)])  # type: ignore[misc]
                    else:
                        pending = [t for t in tasks if not t.done() and t not in cancelled]
                        if pending:
                            cancelled.add(pending[n % len(pending)])
                            pending[n % len(pending)].cancel()
                await settle()
                check(mq, tasks, put)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        run(main)


# -- the same for putters waiting for room ----------------------------------------------------

MAXSIZE = 2
putter_rounds = st.lists(
    st.tuples(
        st.integers(0, 4),  # putters to park
        st.lists(st.tuples(st.sampled_from(["get here", "get from a thread", "cancel"]),
                           st.integers(0, 5)), max_size=6),
    ),
    max_size=5,
)


@settings(max_examples=150)
@given(rounds=putter_rounds)
def test_no_room_is_left_unused_while_a_putter_sleeps(rounds: List[Tuple[int, List[Action]]]) -> None:
    with MessageQueue() as mq:
        aq = mq.aview("q", maxsize=MAXSIZE)

        async def main() -> None:
            for x in range(MAXSIZE):
                aq.put_nowait(("first", x))
            putters: Dict[asyncio.Task[Any], Any] = {}
            cancelled: Set[asyncio.Task[Any]] = set()
            got: List[Any] = []

            def check() -> None:
                waiting = [t for t in putters if not t.done()]
                assert not (waiting and mq.count("q") < MAXSIZE), "room left while a putter sleeps"
                done = [item for t, item in putters.items() if t.done() and not t.cancelled()]
                assert sorted(got + mq.all("q"), key=repr) == sorted(
                    [("first", x) for x in range(MAXSIZE)] + done, key=repr)

            for parks, actions in rounds:
                for _ in range(parks):
                    item = ("put", len(putters))
                    putters[asyncio.create_task(aq.put(item))] = item
                await settle()
                for kind, n in actions:
                    if kind == "get here":
                        got.extend(aq.get_nowait() for _ in range(min(n, aq.qsize())))
                    elif kind == "get from a thread":
                        thread_calls(*[lambda: got.append(mq.get("q", timeout=0))
                                       for _ in range(min(n, mq.count("q")))])
                    else:
                        pending = [t for t in putters if not t.done() and t not in cancelled]
                        if pending:
                            cancelled.add(pending[n % len(pending)])
                            pending[n % len(pending)].cancel()
                await settle()
                check()
            for t in putters:
                t.cancel()
            await asyncio.gather(*putters, return_exceptions=True)

        run(main)
