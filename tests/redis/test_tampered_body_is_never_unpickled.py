"""A body changed in Redis, with an ``hmac_key`` set, is never unpickled (DESIGN 12).

Someone with write access to the server (but not the key) replaces a stored body with a
pickle whose unpickling would create a marker file. Every call that would return the
body raises ``StoreError``, the marker file never appears, and the message stays where
it was: still ready, at the same place, not reserved, its ``attempts`` unchanged; once
the genuine bytes are put back, it is delivered as if nothing happened.

The stored body is found by content (a hash field holding the body's unique text), not by
the key layout.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import pickle
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import pytest
import redis

from unidist_queue import StoreError
from unidist_queue.redisq import RedisMessageQueue

KEY = b"the right key"
TEXT = "genuine body 7c1f0e"


class Touch:
    """Unpickling this creates the file ``path`` (no shell, no ``os.system``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Tuple[Any, ...]:
        return (Path.touch, (self.path,))


def stored_body(raw: redis.Redis) -> Tuple[bytes, bytes, bytes]:
    """``(key, field, value)`` of the one hash field that holds the body ``TEXT``."""
    found = [(key, field, value) for key in raw.scan_iter() if raw.type(key) == b"hash"
             for field, value in raw.hgetall(key).items() if TEXT.encode() in value]
    assert len(found) == 1, found
    return found[0]


def tampered(genuine: bytes, evil: bytes) -> Dict[str, bytes]:
    tag = genuine[:32]
    return {
        "evil payload, genuine tag": tag + evil,
        "evil pickle, no tag": evil,
        "evil pickle signed with another key": hmac.new(b"wrong", evil, hashlib.sha256).digest() + evil,
        "one byte of the genuine payload changed": genuine[:-2] + bytes([genuine[-2] ^ 1]) + genuine[-1:],
    }


def reading_calls(mq: RedisMessageQueue) -> Dict[str, Callable[[], Any]]:
    return {
        "get": lambda: mq.get("q", timeout=0),
        "oldest": lambda: mq.oldest("q"),
        "oldest(remove=False)": lambda: mq.oldest("q", remove=False),
        "newest": lambda: mq.newest("q"),
        "all": lambda: mq.all("q"),
        "messages": lambda: mq.messages("q"),
        "reserve": lambda: mq.reserve("q", timeout=0),
        "reserve_many": lambda: mq.reserve_many("q", 5, timeout=0, lease=60),
        "aget": lambda: asyncio.run(mq.aget("q", timeout=0)),
        "areserve": lambda: asyncio.run(mq.areserve("q", timeout=0)),
    }


def test_the_evil_pickle_would_create_the_marker(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    pickle.loads(pickle.dumps(Touch(marker)))
    assert marker.exists()  # so its absence below means: never unpickled


def test_a_tampered_body_raises_store_error_and_stays(tmp_path: Path, redis_url: str) -> None:
    marker = tmp_path / "unpickled"
    evil = pickle.dumps(Touch(marker))
    raw = redis.Redis.from_url(redis_url)
    with raw, RedisMessageQueue(redis_url, hmac_key=KEY) as mq:
        msg_id = mq.add("q", TEXT)
        key, field, genuine = stored_body(raw)
        for how, value in tampered(genuine, evil).items():
            raw.hset(key, field, value)
            for name, call in reading_calls(mq).items():
                with pytest.raises(StoreError):
                    call()
                assert not marker.exists(), f"{how}: {name} unpickled it"
                stats = mq.stats("q")
                assert (stats.ready, stats.reserved, stats.removed) == (1, 0, 0), f"{how}: {name}"
            assert raw.hget(key, field) == value
        raw.hset(key, field, genuine)
        m = mq.reserve("q", timeout=0)
        assert (m.id, m.body, m.attempts) == (msg_id, TEXT, 1)
        mq.ack(m)
