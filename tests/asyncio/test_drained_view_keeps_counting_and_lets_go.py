"""A view whose items were all taken: later puts, through it, another view or ``add``,
are counted and delivered as before, and a view nobody holds any more is not kept
alive by the queue (issue 14: the core keeps an emptied watch for the next put)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
from async_helpers import run

from unidist_queue import MessageQueue

WAIT = 10.0


def test_puts_after_a_drain_are_counted_and_delivered_in_order() -> None:
    with MessageQueue() as mq:
        aq, other = mq.aview("q"), mq.aview("q")

        async def scenario() -> None:
            aq.put_nowait(1)
            assert await aq.get() == 1  # drained: nothing of aq's is in the queue
            aq.task_done()
            mq.add("q", 2)
            aq.put_nowait(3)
            other.put_nowait(4)
            aq.put_nowait(5)
            assert mq.get("q") == 2
            assert [await aq.get() for _ in range(3)] == [3, 4, 5]
            aq.task_done()
            aq.task_done()  # 3 and 5 were aq's
            await asyncio.wait_for(aq.join(), WAIT)
            with pytest.raises(ValueError):
                aq.task_done()
            other.task_done()  # 4 was other's
            await asyncio.wait_for(other.join(), WAIT)
            aq.put_nowait(6)
            assert mq.get("q") == 6  # delivered, though not through aq: aq still counts it
            mq.clear("q")  # nothing of aq's left undelivered
            aq.task_done()
            await asyncio.wait_for(aq.join(), WAIT)

        run(scenario)


def test_a_dropped_view_is_not_kept_alive_by_its_drained_queue() -> None:
    with MessageQueue() as mq:
        aq = mq.aview("q")
        aq.put_nowait("x")
        assert aq.get_nowait() == "x"
        gone = weakref.ref(aq)
        del aq
        gc.collect()
        assert gone() is None
        mq.add("q", "y")
        assert mq.get("q") == "y"
