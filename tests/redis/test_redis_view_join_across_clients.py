"""A view's join over Redis counts its items that another client makes leave undelivered
(issue 15, DESIGN 3 ``view`` and 12), and the record of such items stays bounded.

The view is on ``rmq``; the eviction, clear, drop or expiry is made by ``other``, a second
RedisMessageQueue client of the same namespace. Every join runs in a thread (or a task)
whose end the test waits for with a timeout.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Iterator, List

import pytest
from helpers import WAIT, joins

from unidist_queue import RedisMessageQueue


@pytest.fixture
def raw(redis_url: str) -> Iterator[Any]:
    """A plain redis-py client of the test server (to look at what the namespace keeps)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def gone_entries(raw: Any) -> int:
    """Entries of every client's record of view items that left undelivered."""
    return sum(raw.zcard(key) for key in raw.scan_iter(match="uq:{uq}:gone:*"))


@pytest.mark.parametrize(
    "remove",
    [lambda mq: mq.add("q", "x"), lambda mq: mq.clear("q"), lambda mq: mq.drop("q")],
    ids=["evicted", "cleared", "dropped"],
)
def test_join_returns_when_another_client_removes_the_items(
    rmq: RedisMessageQueue, other: RedisMessageQueue, remove: Callable[[RedisMessageQueue], object]
) -> None:
    rmq.declare("q", maxlen=2)
    view = rmq.view("q")
    view.put("a")
    view.put("b")
    returned = joins(view)
    assert not returned.wait(0.05)
    remove(other)
    remove(other)  # ("evicted": the second add evicts "b")
    assert returned.wait(WAIT), "join() did not return"
    assert view.unfinished_tasks == 0
    with pytest.raises(ValueError):
        view.task_done()


def test_a_join_started_after_another_client_evicted_the_items_returns(
    rmq: RedisMessageQueue, other: RedisMessageQueue
) -> None:
    rmq.declare("q", maxlen=1)
    view = rmq.view("q")
    view.put("a")
    other.add("q", "x")  # evicts "a" while nobody joins
    assert joins(view).wait(WAIT)


def test_join_returns_when_the_items_expire_while_another_client_looks(
    rmq: RedisMessageQueue, other: RedisMessageQueue
) -> None:
    rmq.declare("q", max_age=0.05)
    view = rmq.view("q")
    view.put("a")
    returned = joins(view)
    assert returned.wait(WAIT)  # join applies the expiry itself
    view.put("b")
    threading.Event().wait(0.1)
    assert other.count("q") == 0  # the other client's look expires "b"
    assert joins(view).wait(WAIT)


def test_an_async_join_is_woken_by_another_clients_clear(
    rmq: RedisMessageQueue, other: RedisMessageQueue
) -> None:
    aq = rmq.aview("q")

    async def main() -> None:
        await aq.put("a")
        joiner = asyncio.create_task(aq.join())
        await asyncio.sleep(0.05)
        assert not joiner.done()
        await asyncio.get_running_loop().run_in_executor(None, other.clear, "q")
        await asyncio.wait_for(joiner, WAIT)

    asyncio.run(main())


def test_a_delivered_item_still_waits_for_its_task_done_after_another_client_cleared(
    rmq: RedisMessageQueue, other: RedisMessageQueue
) -> None:
    view = rmq.view("q")
    view.put("a")
    view.put("b")
    assert other.get("q", timeout=0) == "a"  # delivered: "a" waits for its task_done
    other.clear("q")  # "b" left undelivered
    returned = joins(view)
    assert not returned.wait(0.1)
    view.task_done()
    assert returned.wait(WAIT)


def test_the_record_of_items_that_left_is_emptied_by_join(
    rmq: RedisMessageQueue, other: RedisMessageQueue, raw: Any
) -> None:
    rmq.declare("q", maxlen=1)
    view = rmq.view("q")
    for i in range(50):
        view.put(i)  # each evicts the one before (counted at once: this client's add)
    other.add("q", "x")  # evicts 49, recorded for rmq
    assert view.unfinished_tasks == 1
    assert joins(view).wait(WAIT)
    view.put("last")  # takes the ids counted from replies out of the record
    assert rmq.get("q", timeout=0) == "last"
    view.task_done()
    assert joins(view).wait(WAIT)
    assert gone_entries(raw) == 0
    assert raw.hlen("uq:{uq}:q:q:viewed") == 0  # delivered or gone: no mark left


def test_a_client_that_never_joins_leaves_a_record_that_expires(
    rmq: RedisMessageQueue, other: RedisMessageQueue, raw: Any
) -> None:
    view = rmq.view("q")
    for i in range(10):
        view.put(i)
    other.clear("q")
    keys: List[bytes] = list(raw.scan_iter(match="uq:{uq}:gone:*"))
    assert len(keys) == 1 and raw.zcard(keys[0]) == 10
    assert 0 < raw.ttl(keys[0]) <= 86400  # the record expires if nobody collects it


def test_a_view_that_put_many_delivered_items_still_counts_one_that_left(
    rmq: RedisMessageQueue, other: RedisMessageQueue
) -> None:
    view = rmq.view("q")
    for i in range(1500):  # more than the view core remembers before it forgets delivered ones
        view.put(i)
        assert other.get("q", timeout=0) == i
        view.task_done()
    view.put("a")
    view.put("b")
    other.clear("q")  # both left undelivered
    assert joins(view).wait(WAIT)
