"""What the async calls raise (issue 14, DESIGN 11).

``aget``/``areserve``/``areserve_many`` take the same arguments and raise the same errors
as ``get``/``reserve``/``reserve_many``: ``Empty`` on timeout, ``ValueError`` on a
negative timeout, and whatever the sync call raises for a bad argument. The view raises
``asyncio.QueueEmpty``/``asyncio.QueueFull`` that are also this library's ``Empty``/
``Full`` (and so ``queue.Empty``/``queue.Full``).
"""

from __future__ import annotations

import asyncio
import math
import queue
from typing import Any, Callable, Coroutine, Dict, Tuple

import pytest
from async_helpers import exception_of, run

from unidist_queue import Empty, Full, MessageQueue, QueueAPI


@pytest.fixture
def mq(either_mq: QueueAPI) -> QueueAPI:
    """The contract runs on both backends (DESIGN 12): see ``either_mq`` in conftest.py."""
    return either_mq

Call = Tuple[Callable[..., Any], Callable[..., Coroutine[Any, Any, Any]]]


def pairs(mq: MessageQueue) -> Dict[str, Call]:
    return {
        "get": (mq.get, mq.aget),
        "reserve": (mq.reserve, mq.areserve),
        "reserve_many": (lambda q, **kw: mq.reserve_many(q, 2, **kw),
                         lambda q, **kw: mq.areserve_many(q, 2, **kw)),
    }


@pytest.mark.parametrize("name", ["get", "reserve", "reserve_many"])
@pytest.mark.parametrize("timeout", [0, 0.0, 0.01])
def test_a_timeout_on_an_empty_queue_raises_empty(mq: MessageQueue, name: str, timeout: float) -> None:
    mq.add("q", "reserved")
    mq.reserve("q")
    _, acall = pairs(mq)[name]
    before = mq.queues()
    for q in ("q", "unknown"):
        exc = exception_of(lambda q=q: acall(q, timeout=timeout))  # type: ignore[misc]
        assert isinstance(exc, Empty) and isinstance(exc, queue.Empty), repr(exc)
    assert mq.queues() == before and mq.stats("q").reserved == 1  # nothing changed


@pytest.mark.parametrize("name", ["get", "reserve", "reserve_many"])
def test_a_negative_timeout_raises_value_error_and_waits_for_nothing(mq: MessageQueue, name: str) -> None:
    mq.add("q", "x")
    _, acall = pairs(mq)[name]
    exc = exception_of(lambda: acall("q", timeout=-1))
    assert isinstance(exc, ValueError) and "timeout" in str(exc)
    assert mq.all("q") == ["x"] and mq.stats("q").reserved == 0


BAD: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "negative timeout": ("q", {"timeout": -0.5}),
    "nan timeout": ("q", {"timeout": math.nan}),
    "str timeout": ("q", {"timeout": "1"}),
    "negative lease": ("q", {"lease": -1}),
    "nan lease": ("q", {"lease": math.nan}),
    "name not a str": (b"q", {}),  # type: ignore[dict-item]
    "unhashable name": ([], {}),  # type: ignore[dict-item]
}


@pytest.mark.parametrize(("name", "bad"), [(name, bad) for name in ("get", "reserve", "reserve_many")
                                           for bad in BAD if name != "get" or "lease" not in bad])
def test_bad_arguments_raise_what_the_sync_call_raises(mq: MessageQueue, name: str, bad: str) -> None:
    queue_name, kwargs = BAD[bad]
    mq.add("q", "x")
    call, acall = pairs(mq)[name]
    with pytest.raises(Exception) as sync_info:
        call(queue_name, **kwargs)
    exc = exception_of(lambda: acall(queue_name, **kwargs))
    assert type(exc) is type(sync_info.value), (exc, sync_info.value)
    assert mq.all("q") == ["x"] and mq.stats("q").reserved == 0


@pytest.mark.parametrize("n", [0, -1, 1.5, "2"])
def test_areserve_many_refuses_what_reserve_many_refuses(mq: MessageQueue, n: Any) -> None:
    with pytest.raises(Exception) as sync_info:
        mq.reserve_many("q", n, timeout=0)
    exc = exception_of(lambda: mq.areserve_many("q", n, timeout=0))
    assert type(exc) is type(sync_info.value)


def test_the_timeout_is_keyword_only(mq: MessageQueue) -> None:
    with pytest.raises(TypeError):
        mq.aget("q", 1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        mq.areserve("q", 1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        mq.areserve_many("q", 1, 1)  # type: ignore[misc]


def test_get_nowait_on_an_empty_view_raises_queue_empty(mq: MessageQueue) -> None:
    aq = mq.aview("q")
    with pytest.raises(asyncio.QueueEmpty) as info:
        aq.get_nowait()
    assert isinstance(info.value, Empty) and isinstance(info.value, queue.Empty)


def test_put_nowait_on_a_full_view_raises_queue_full(mq: MessageQueue) -> None:
    aq = mq.aview("q", maxsize=1)
    aq.put_nowait(1)
    with pytest.raises(asyncio.QueueFull) as info:
        aq.put_nowait(2)
    assert isinstance(info.value, Full) and isinstance(info.value, queue.Full)
    assert mq.all("q") == [1]


def test_wait_for_on_the_views_get_raises_timeout_error(mq: MessageQueue) -> None:
    aq = mq.aview("q")

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aq.get(), 0.01)

    run(main)


@pytest.mark.parametrize("maxsize", [-1, 1.5, "1"])
def test_a_bad_maxsize_raises_what_view_raises(mq: MessageQueue, maxsize: Any) -> None:
    try:
        mq.view("q", maxsize)
    except Exception as exc:
        with pytest.raises(type(exc)):
            mq.aview("q", maxsize)
    else:
        mq.aview("q", maxsize)  # accepted by both, as asyncio.Queue accepts any maxsize


@pytest.mark.parametrize("name", [b"q", 1, None])
def test_a_queue_name_that_is_not_a_str_raises_what_view_raises(mq: MessageQueue, name: Any) -> None:
    with pytest.raises(Exception) as sync_info:
        mq.view(name)
    with pytest.raises(type(sync_info.value)):
        mq.aview(name)
