"""AsyncQueueView against CPython's own tests for asyncio.Queue (DESIGN.md section 11).

CPython's ``Lib/test/test_asyncio/test_queues.py`` is the reference. Its test classes are
not copied here: they are imported, unchanged, from the running interpreter's own
``test.test_asyncio.test_queues`` (Copyright (c) Python Software Foundation; PSF License
Agreement), so the test bodies are exactly CPython's, in the version that matches the
interpreter (3.13's include the ``shutdown`` tests). They call ``asyncio.Queue(...)``;
while each runs, the module's ``asyncio`` is a copy whose ``Queue`` makes an
``AsyncQueueView`` of a fresh MessageQueue. Where an interpreter ships without its
``test`` package these classes are skipped.

Skipped, each for its reason (see ``PRIVATE``), and replaced by a test of the same
promise through public behaviour, below: the tests that read ``asyncio.Queue``'s private
members (``_getters``, ``_putters``, ``_format``, ``_unfinished_tasks``, ``_get_loop``)
or the fields of its ``repr``. The LIFO and priority queue tests are not about a FIFO
view: skipped.
"""

from __future__ import annotations

import asyncio
import inspect
import types
import unittest
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from unidist_queue import AsyncQueueView, MessageQueue

try:
    from test.test_asyncio import test_queues as _cpython
except ImportError:  # an interpreter without its test package
    _cpython = None

needs_cpython_tests = pytest.mark.skipif(_cpython is None, reason="no test.test_asyncio.test_queues here")


# What ``asyncio.Queue(maxsize)`` makes while a test runs (the last entry): a view of a
# fresh MessageQueue, or, for the Redis classes, of a fresh queue of the test's client.
_MAKE: List[Callable[[Any], Any]] = [lambda maxsize: MessageQueue().aview("cpython", maxsize)]


class Queue(AsyncQueueView):  # type: ignore[type-arg]
    """What the CPython tests get for ``asyncio.Queue(maxsize)``: a view of a fresh queue
    (``Queue[int]`` is a ``types.GenericAlias``, as ``asyncio.Queue[int]``)."""

    def __new__(cls, maxsize: Any = 0) -> Any:
        return _MAKE[-1](maxsize)


class _AsyncioWithView(types.ModuleType):
    """``asyncio`` with ``Queue`` replaced by the view (everything else is asyncio's)."""

    Queue = Queue

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


_ASYNCIO = _AsyncioWithView("asyncio")

_REPR = "reads the private fields of asyncio.Queue's repr (_getters[1], _putters[1], _queue=[1])"
_LOOP = ("calls the private _get_loop() (3.10's version): see "
         "test_producer_and_consumer_of_a_queue_made_in_a_coroutine")
_SEE_REPR = ": see test_repr_and_str_name_the_view_while_callers_wait"
# class -> test -> (text whose presence in the test's source marks it as reading a private
# member, None: always; the reason). Marked by source so that a version whose test does
# not read it runs it.
PRIVATE: Dict[str, Dict[str, Tuple[Optional[str], str]]] = {
    "QueueBasicTests": {"test_repr": (None, _REPR + _SEE_REPR), "test_str": (None, _REPR + _SEE_REPR)},
    "QueueGetTests": {
        "test_get_with_putters": ("_putters", "appends a future to the private _putters: see "
                                  "test_get_wakes_a_waiting_putter"),
        "test_cancelled_getters_not_being_held_in_self_getters":
            ("_getters", "reads the private _getters: see test_a_timed_out_getter_leaves_nothing_behind"),
        "test_why_are_getters_waiting": ("_get_loop", _LOOP),
    },
    "QueuePutTests": {
        "test_cancelled_puts_not_being_held_in_self_putters":
            ("_putters", "reads the private _putters: see test_a_cancelled_putter_leaves_nothing_behind"),
        "test_why_are_putters_waiting": ("_get_loop", _LOOP),
    },
    "QueueJoinTests": {"test_format": ("_format", "reads the private _format() and _unfinished_tasks: see "
                                                  "test_repr_shows_maxsize_and_tasks")},
    "QueueShutdownTests": {"test_format": ("_format", "reads the private _format(): see "
                                                      "test_repr_shows_shutdown")},
}
NOT_FIFO = ("LifoQueueTests", "PriorityQueueTests", "LifoQueueJoinTests", "PriorityQueueJoinTests",
            "LifoQueueShutdownTests", "PriorityQueueShutdownTests")


@pytest.fixture
def redis_views(request: pytest.FixtureRequest) -> Iterator[None]:
    """For a Redis class: ``asyncio.Queue(maxsize)`` makes a view of a new queue of one
    RedisMessageQueue on the session's server, closed after the test."""
    from unidist_queue import RedisMessageQueue

    mq = RedisMessageQueue(request.getfixturevalue("redis_url"))
    _MAKE.append(lambda maxsize: mq.aview(uuid.uuid4().hex, maxsize))
    yield
    _MAKE.pop()
    mq.close()


def _on_the_view(base: type, redis: bool = False) -> type:
    """``base`` run with ``asyncio.Queue`` (and ``q_class``) being the view (over Redis
    with ``redis``)."""

    def setUp(self: Any) -> None:
        saved = _cpython.asyncio
        _cpython.asyncio = _ASYNCIO
        self.addCleanup(setattr, _cpython, "asyncio", saved)
        base.setUp(self)

    namespace: Dict[str, Any] = {"setUp": setUp, "__module__": __name__}
    if redis:
        namespace["pytestmark"] = [pytest.mark.usefixtures("redis_views")]
    if hasattr(base, "q_class"):
        namespace["q_class"] = Queue
    for name, (marker, reason) in PRIVATE.get(base.__name__, {}).items():
        if hasattr(base, name) and (marker is None or marker in inspect.getsource(getattr(base, name))):
            namespace[name] = unittest.skip(reason)(lambda self: None)
    return type(("TestRedisAView" if redis else "TestAView") + base.__name__, (base,), namespace)


def _not_ours(base: type) -> type:
    return unittest.skip("a LIFO or priority queue: AsyncQueueView is a FIFO")(
        type("TestNotOurs" + base.__name__, (base,), {"__module__": __name__})
    )


if _cpython is not None:
    for _name in ("QueueBasicTests", "QueueGetTests", "QueuePutTests", "QueueJoinTests",
                  "QueueShutdownTests"):
        if hasattr(_cpython, _name):
            for _redis in (False, True):
                _cls = _on_the_view(getattr(_cpython, _name), _redis)
                globals()[_cls.__name__] = _cls
    for _name in NOT_FIFO:
        if hasattr(_cpython, _name):
            _cls = _not_ours(getattr(_cpython, _name))
            globals()[_cls.__name__] = _cls
    del _cls, _name, _redis


@needs_cpython_tests
def test_cpython_suite_was_found() -> None:
    assert hasattr(_cpython, "QueueGetTests") and hasattr(_cpython, "QueuePutTests")


# -- the promises of the skipped tests, through public behaviour ------------------------------


def make(maxsize: Any = 0) -> AsyncQueueView[Any]:
    return MessageQueue().aview("q", maxsize)


def test_repr_and_str_name_the_view_while_callers_wait() -> None:
    """test_repr/test_str: repr and str describe the queue, also with waiting getters and
    putters, and looking does not disturb them."""

    async def main() -> None:
        q = make()
        assert repr(q).startswith("<AsyncQueueView") and str(q) == repr(q)
        getter = asyncio.ensure_future(q.get())
        await asyncio.sleep(0)
        assert repr(q).startswith("<AsyncQueueView 'q'")
        q.put_nowait(0)
        assert await getter == 0
        q = make(1)
        q.put_nowait(1)
        putter = asyncio.ensure_future(q.put(2))
        await asyncio.sleep(0)
        assert "maxsize=1" in repr(q)
        q.get_nowait()
        await putter
        assert q.get_nowait() == 2

    asyncio.run(main())


def test_get_wakes_a_waiting_putter() -> None:
    """test_get_with_putters: a get from a full queue wakes a putter waiting for room."""

    async def main() -> None:
        q = make(1)
        await q.put(1)
        putter = asyncio.ensure_future(q.put(2))
        await asyncio.sleep(0)
        assert not putter.done()
        assert await q.get() == 1
        await asyncio.sleep(0)
        assert putter.done() and putter.result() is None
        assert q.get_nowait() == 2

    asyncio.run(main())


def test_a_timed_out_getter_leaves_nothing_behind() -> None:
    """test_cancelled_getters_not_being_held_in_self_getters: a getter cancelled by
    ``wait_for`` leaves no waiter that would absorb a later item or wake-up."""

    async def main() -> None:
        q = make(5)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(q.get(), 0.01)
        q.put_nowait(1)
        assert q.qsize() == 1 and q.get_nowait() == 1
        getter = asyncio.ensure_future(q.get())
        await asyncio.sleep(0)
        q.put_nowait(2)  # the wake-up goes to the live getter, not to the cancelled one
        assert await asyncio.wait_for(getter, 5) == 2

    asyncio.run(main())


def test_a_cancelled_putter_leaves_nothing_behind() -> None:
    """test_cancelled_puts_not_being_held_in_self_putters: a cancelled put leaves no
    putter behind and puts nothing; a later putter gets the room."""

    async def main() -> None:
        q = make(1)
        q.put_nowait(1)
        put_task = asyncio.ensure_future(q.put(1))
        await asyncio.sleep(0)
        put_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await put_task
        assert q.get_nowait() == 1 and q.qsize() == 0
        q.put_nowait(3)
        putter = asyncio.ensure_future(q.put(4))
        await asyncio.sleep(0)
        assert q.get_nowait() == 3
        await asyncio.wait_for(putter, 5)
        assert q.get_nowait() == 4

    asyncio.run(main())


def test_producer_and_consumer_of_a_queue_made_in_a_coroutine() -> None:
    """test_why_are_getters_waiting / putters_waiting (3.10): a bounded queue made inside
    a coroutine passes every item from a producer to a consumer, neither stuck."""

    async def main() -> List[int]:
        q = make(1)
        got: List[int] = []

        async def producer() -> None:
            for i in range(5):
                await q.put(i)

        async def consumer() -> None:
            for _ in range(5):
                got.append(await q.get())

        await asyncio.wait_for(asyncio.gather(producer(), consumer()), 5)
        return got

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_repr_shows_maxsize_and_tasks() -> None:
    """QueueJoinTests.test_format: the description gives maxsize and unfinished tasks."""
    q = make()
    assert "maxsize=0>" in repr(q)
    q.put_nowait(1)
    q.put_nowait(2)
    assert repr(q).endswith("maxsize=0 tasks=2>")


def test_repr_shows_shutdown() -> None:
    """QueueShutdownTests.test_format (3.13): the description tells it was shut down."""
    q = make()
    q.shutdown()
    assert repr(q).endswith("maxsize=0 shutdown>")
    assert q.is_shutdown


def test_view_subscripts_as_asyncio_queue() -> None:
    alias = AsyncQueueView[int]
    assert isinstance(alias, types.GenericAlias) and alias.__args__ == (int,)


def test_the_skip_table_names_real_tests() -> None:
    """Every skipped name exists in some CPython version (a typo would skip nothing)."""
    known = {"test_repr", "test_str", "test_get_with_putters", "test_why_are_getters_waiting",
             "test_cancelled_getters_not_being_held_in_self_getters", "test_why_are_putters_waiting",
             "test_cancelled_puts_not_being_held_in_self_putters", "test_format"}
    assert {n for names in PRIVATE.values() for n in names} == known



# -- view-specific checks (as tests/view/test_view.py has below CPython's mixins) --------------


def test_a_join_cancelled_by_wait_for_leaves_no_joiner() -> None:
    async def main() -> None:
        q = make()
        q.put_nowait(1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(q.join(), 0.01)
        joiner = asyncio.ensure_future(q.join())
        await asyncio.sleep(0)
        q.get_nowait()
        q.task_done()
        await asyncio.wait_for(joiner, 5)

    asyncio.run(main())


def test_subscribers_hear_of_a_put() -> None:
    mq = MessageQueue()
    heard: List[str] = []
    mq.subscribe("q", heard.append)
    q = mq.aview("q")
    q.put_nowait(1)  # made the queue: the general path
    q.put_nowait(2)  # the fast path
    assert heard == ["q", "q"] and q.qsize() == 2


def test_a_durable_queue_through_the_view(tmp_path: Any) -> None:
    """The general paths (a durable queue): put, get_nowait, and a join that waits for an
    item that expires (a recorded change)."""
    from unidist_queue import FileStore

    async def main(mq: MessageQueue) -> None:
        q = mq.aview("d")
        await q.put("a")
        assert q.get_nowait() == "a"
        q.task_done()
        mq.declare("d", max_age=0.05)
        q.put_nowait("b")
        await asyncio.wait_for(q.join(), 5)  # "b" expired: it left undelivered
        assert q.qsize() == 0

    with MessageQueue(FileStore(str(tmp_path / "store"))) as mq:
        asyncio.run(main(mq))


def test_immediate_shutdown_counts_each_removed_item() -> None:
    """As 3.13's asyncio.Queue.shutdown(immediate=True): each ready item removed counts as
    done for join, whoever added it."""

    async def main() -> None:
        mq = MessageQueue()
        q = mq.aview("q")
        q.put_nowait("a")
        assert await q.get() == "a"  # delivered: join waits for its task_done
        mq.add("q", "b")  # added by the queue API
        joiner = asyncio.ensure_future(q.join())
        await asyncio.sleep(0)
        assert not joiner.done()
        q.shutdown(immediate=True)
        await asyncio.wait_for(joiner, 5)
        assert q.qsize() == 0 and q.is_shutdown

    asyncio.run(main())
