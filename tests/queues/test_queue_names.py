"""A queue name that is not a ``str`` is a ``TypeError`` naming the argument, in every method
that takes one (DESIGN 3), in memory and durable; ``subscribe``'s ``None`` (any queue) stays
allowed. Nothing changes: no queue is made, no message moves."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator

import pytest

from unidist_queue import FileStore, MessageQueue
from unidist_queue import messagequeue as seed

BAD_NAMES = [None, 3, 1.5, b"q", ("q",), ["q"], {"q": 1}]

Call = Callable[[MessageQueue, Any], Any]

CALLS: Dict[str, Call] = {
    "add": lambda mq, n: mq.add(n, "m"),
    "add delayed": lambda mq, n: mq.add(n, "m", delay=1.0),
    "add_many": lambda mq, n: mq.add_many(n, ["m", "n"]),
    "add_many empty": lambda mq, n: mq.add_many(n, []),
    "oldest": lambda mq, n: mq.oldest(n, default=None),
    "oldest peek": lambda mq, n: mq.oldest(n, remove=False, default=None),
    "newest": lambda mq, n: mq.newest(n, default=None),
    "get": lambda mq, n: mq.get(n, timeout=0),
    "count": lambda mq, n: mq.count(n),
    "exists": lambda mq, n: mq.exists(n),
    "all": lambda mq, n: mq.all(n),
    "messages": lambda mq, n: mq.messages(n),
    "declare": lambda mq, n: mq.declare(n, maxlen=5),
    "stats": lambda mq, n: mq.stats(n),
    "clear": lambda mq, n: mq.clear(n),
    "drop": lambda mq, n: mq.drop(n),
    "reserve": lambda mq, n: mq.reserve(n, timeout=0),
    "reserve_many": lambda mq, n: mq.reserve_many(n, 3, timeout=0),
    "view": lambda mq, n: mq.view(n),
    "next_due": lambda mq, n: mq.next_due(n),
    "subscribe": lambda mq, n: mq.subscribe(n, lambda name: None),
}

SEED_CALLS: Dict[str, Callable[[Any], Any]] = {
    "AddMessage": lambda n: seed.AddMessage(n, "m"),
    "GetMessageCount": seed.GetMessageCount,
    "GetMessage_Oldest": seed.GetMessage_Oldest,
    "GetMessage_Newest": seed.GetMessage_Newest,
    "GetAllMessages": seed.GetAllMessages,
    "QueueExists": seed.QueueExists,
}


@pytest.fixture(params=["memory", "durable"])
def any_mq(request: pytest.FixtureRequest, path: str) -> Iterator[MessageQueue]:
    """A MessageQueue (in memory, or over a FileStore) holding queue "q" with one message."""
    store = FileStore(path, fsync="never") if request.param == "durable" else None
    with MessageQueue(store) as mq:
        mq.add("q", "kept")
        yield mq


def unchanged(mq: MessageQueue) -> None:
    assert mq.queues() == ["q"]
    assert mq.all("q") == ["kept"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
@pytest.mark.parametrize("method", sorted(CALLS))
def test_a_name_that_is_not_a_str_is_a_type_error(any_mq: MessageQueue, method: str, name: Any) -> None:
    if method == "subscribe" and name is None:
        pytest.skip("subscribe(None, ...) means any queue")
    with pytest.raises(TypeError, match=r"^queue must be a str.*, not " + type(name).__name__):
        CALLS[method](any_mq, name)
    unchanged(any_mq)


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
@pytest.mark.parametrize("function", sorted(SEED_CALLS))
def test_the_seed_functions_refuse_it_too(function: str, name: Any) -> None:
    with MessageQueue() as mq:
        previous = seed.set_default(mq)
        try:
            mq.add("q", "kept")
            with pytest.raises(TypeError, match=r"^queue must be a str"):
                SEED_CALLS[function](name)
            unchanged(mq)
        finally:
            seed.set_default(previous)


def test_the_names_that_stay_allowed(any_mq: MessageQueue) -> None:
    """A str subclass is a str; ``subscribe(None, ...)`` hears of every queue; an unknown
    str name keeps its documented answers."""

    class Name(str):
        pass

    heard = []
    unsubscribe = any_mq.subscribe(None, heard.append)
    any_mq.add(Name("q"), "more")
    unsubscribe()
    assert heard == ["q"]
    assert any_mq.count(Name("q")) == 2
    assert (any_mq.count("nosuch"), any_mq.exists("nosuch"), any_mq.all("nosuch")) == (0, False, [])
    assert any_mq.oldest("nosuch", default=None) is None
    assert any_mq.queues() == ["q"]
