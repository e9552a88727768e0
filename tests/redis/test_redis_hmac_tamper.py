"""With hmac_key, a body changed in Redis is never unpickled and its message stays put (DESIGN 12)."""

from __future__ import annotations

import pickle

import pytest
import redis

from unidist_queue import RedisMessageQueue, StoreError


class Boom:
    """Unpickling it would record that code ran."""

    ran = False

    def __reduce__(self) -> tuple:  # type: ignore[type-arg]
        return (Boom.mark, ())

    @staticmethod
    def mark() -> None:
        Boom.ran = True


def _tamper(url: str, msg_id: int, data: bytes) -> None:
    client = redis.Redis.from_url(url)
    key = "uq:{uq}:q:q:msg"
    field = next(f for f in client.hkeys(key) if f.isdigit() and int(f) == msg_id)  # the body field
    enqueued_at = client.hget(key, field).partition(b"|")[0]  # stored as `enqueued_at|body`
    client.hset(key, field, enqueued_at + b"|" + data)
    client.close()


@pytest.mark.parametrize("key", [b"secret", "secret"])
def test_a_tampered_body_is_refused_and_stays(redis_url: str, key: object) -> None:
    with RedisMessageQueue(redis_url, hmac_key=key) as mq:  # type: ignore[arg-type]
        first = mq.add("q", "good")
        mq.add("q", "second")
        assert mq.all("q") == ["good", "second"]
        _tamper(redis_url, first, b"\0" * 32 + pickle.dumps(Boom()))
        for call in (lambda: mq.oldest("q"), lambda: mq.get("q", timeout=1), lambda: mq.reserve("q"),
                     lambda: mq.reserve_many("q", 2), lambda: mq.all("q"), lambda: mq.messages("q"),
                     lambda: mq.oldest("q", remove=False)):
            with pytest.raises(StoreError, match="HMAC"):
                call()
            assert mq.count("q") == 2  # both still ready, in place
        assert not Boom.ran
        s = mq.stats("q")
        assert (s.ready, s.reserved, s.removed) == (2, 0, 0)
        assert mq.newest("q") == "second"  # the rest of the queue works


def test_a_body_written_without_the_key_is_refused(redis_url: str) -> None:
    with RedisMessageQueue(redis_url) as plain, RedisMessageQueue(redis_url, hmac_key=b"k") as signed:
        plain.add("q", "unsigned")
        with pytest.raises(StoreError):
            signed.oldest("q")
        assert plain.oldest("q") == "unsigned"


def test_a_body_that_does_not_decode_is_a_store_error(redis_url: str) -> None:
    with RedisMessageQueue(redis_url, serializer="json") as mq:
        msg_id = mq.add("q", 1)
        _tamper(redis_url, msg_id, b"{not json")
        with pytest.raises(StoreError, match="json"):
            mq.oldest("q")
        assert mq.count("q") == 1
