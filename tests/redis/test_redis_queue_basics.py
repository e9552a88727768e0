"""RedisMessageQueue: adding, taking, looking and removing, as MessageQueue does (DESIGN 3, 12)."""

from __future__ import annotations

import pytest

from unidist_queue import Empty, Message, QueueAPI, RedisMessageQueue, ShutDown


def test_fifo_ids_and_looks(rmq: RedisMessageQueue) -> None:
    ids = [rmq.add("q", n) for n in range(3)] + rmq.add_many("q", [3, 4])
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert rmq.count("q") == 5 and rmq.all("q") == [0, 1, 2, 3, 4]
    msgs = rmq.messages("q")
    assert [m.id for m in msgs] == ids and all(m.attempts == 0 and m.queue == "q" for m in msgs)
    assert rmq.oldest("q", remove=False) == 0 and rmq.newest("q", remove=False) == 4
    assert rmq.oldest("q") == 0 and rmq.newest("q") == 4 and rmq.get("q") == 1
    assert rmq.all("q") == [2, 3]
    assert rmq.exists("q") and not rmq.exists("nope") and rmq.queues() == ["q"]
    s = rmq.stats("q")
    assert (s.ready, s.added, s.removed, s.durable) == (2, 5, 3, True)


def test_empty_unknown_and_defaults(rmq: RedisMessageQueue) -> None:
    with pytest.raises(Empty):
        rmq.oldest("none")
    with pytest.raises(Empty):
        rmq.newest("none")
    assert rmq.oldest("none", default=None) is None and rmq.newest("none", default=7) == 7
    assert rmq.count("none") == 0 and rmq.all("none") == [] and rmq.messages("none") == []
    assert rmq.next_due("none") is None and rmq.add_many("none", []) == []
    with pytest.raises(Empty):
        rmq.get("none", timeout=0)
    assert rmq.stats("none").added == 0


def test_clear_and_drop(rmq: RedisMessageQueue) -> None:
    rmq.add_many("q", [1, 2, 3])
    rmq.add("q", 4, delay=60)
    m = rmq.reserve("q", lease=60)
    assert rmq.clear("q") == 4 and rmq.count("q") == 0 and rmq.exists("q")
    assert rmq.stats("q").dropped == 4
    with pytest.raises(ValueError):
        rmq.ack(m)
    assert rmq.drop("q") and not rmq.drop("q") and not rmq.exists("q") and rmq.queues() == []
    assert rmq.clear("q") == 0


def test_queue_names_are_any_str_and_only_str(rmq: RedisMessageQueue) -> None:
    for name in ("a:b:ready", "{x}", "é ü", ""):
        rmq.add(name, name)
    assert sorted(rmq.queues()) == sorted(["a:b:ready", "{x}", "é ü", ""])
    assert rmq.oldest("a:b:ready") == "a:b:ready" and rmq.count("a:b") == 0
    for call in (rmq.count, rmq.exists, rmq.all, rmq.clear, rmq.drop, rmq.next_due, rmq.stats):
        with pytest.raises(TypeError, match="queue"):
            call(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="queue"):
        rmq.add(b"q", 1)  # type: ignore[arg-type]


def test_bad_arguments_name_the_argument(rmq: RedisMessageQueue) -> None:
    with pytest.raises(ValueError, match="timeout"):
        rmq.get("q", timeout=-1)
    with pytest.raises(ValueError, match="delay"):
        rmq.add("q", 1, delay=-1)
    with pytest.raises(ValueError, match="lease"):
        rmq.reserve("q", lease=-1)
    with pytest.raises(ValueError, match="n must"):
        rmq.reserve_many("q", 0)
    with pytest.raises(TypeError, match="n must"):
        rmq.reserve_many("q", "2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="message"):
        rmq.ack("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callback"):
        rmq.subscribe("q", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="maxlen"):
        rmq.declare("q", maxlen=0)
    with pytest.raises(ValueError, match="dead_letter"):
        rmq.declare("q", dead_letter="q")


@pytest.mark.parametrize("kwargs, error", [
    ({"namespace": ""}, ValueError), ({"namespace": "a{b"}, ValueError), ({"namespace": 3}, TypeError),
    ({"serializer": "yaml"}, ValueError), ({"hmac_key": b""}, ValueError), ({"hmac_key": 5}, TypeError),
    ({"session_lease": 0}, ValueError), ({"session_lease": "1"}, TypeError), ({"require_aof": 1}, TypeError),
    ({"client": object()}, TypeError),
])
def test_constructor_checks_its_arguments(redis_url: str, kwargs: dict, error: type) -> None:  # type: ignore[type-arg]
    with pytest.raises(error):
        RedisMessageQueue(redis_url, **kwargs)


def test_the_url_must_be_a_str() -> None:
    with pytest.raises(TypeError, match="url"):
        RedisMessageQueue(b"redis://127.0.0.1:1/0")  # type: ignore[arg-type]


def test_a_client_that_decodes_responses_is_refused(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisMessageQueue(client=client)
    client.close()


def test_closed_raises_shutdown_and_close_is_idempotent(redis_url: str) -> None:
    mq = RedisMessageQueue(redis_url)
    assert isinstance(mq, QueueAPI) and "open" in repr(mq)
    mq.add("q", 1)
    mq.compact()
    mq.close()
    mq.close()
    assert mq.closed and "closed" in repr(mq)
    for call in (lambda: mq.add("q", 1), lambda: mq.oldest("q"), lambda: mq.count("q"), mq.compact,
                 lambda: mq.get("q", timeout=1), lambda: mq.ack_many([]), lambda: mq.add_many("q", []),
                 lambda: mq.subscribe("q", print), mq.queues):
        with pytest.raises(ShutDown):
            call()


def test_view_and_aview_are_not_implemented_yet(rmq: RedisMessageQueue) -> None:
    with pytest.raises(NotImplementedError):
        rmq.view("q")
    with pytest.raises(NotImplementedError):
        rmq.aview("q")


def test_namespaces_are_apart(redis_url: str, rmq: RedisMessageQueue) -> None:
    with RedisMessageQueue(redis_url, namespace="other") as mq2:
        mq2.add("q", "theirs")
        rmq.add("q", "ours")
        assert rmq.all("q") == ["ours"] and mq2.all("q") == ["theirs"]


def test_json_serializer(redis_url: str) -> None:
    from unidist_queue import SerializationError

    with RedisMessageQueue(redis_url, serializer="json") as mq:
        mq.add("q", {"a": [1, 2.5, None]})
        assert mq.oldest("q") == {"a": [1, 2.5, None]}
        with pytest.raises(SerializationError):
            mq.add("q", {1, 2})
        assert mq.count("q") == 0 and mq.stats("q").added == 1


def test_two_clients_share_a_namespace(rmq: RedisMessageQueue, other: RedisMessageQueue) -> None:
    a = [rmq.add("q", ("a", i)) for i in range(3)]
    b = [other.add("q", ("b", i)) for i in range(3)]
    assert max(a) < min(b)
    assert other.count("q") == 6 and rmq.oldest("q") == ("a", 0)
    m = other.reserve("q", lease=60)
    assert isinstance(m, Message) and m.body == ("a", 1)
    rmq.ack(m)  # any client may settle a current reservation
    assert other.stats("q").removed == 2
