"""The floors of the Redis benchmark: what redis-py itself does, one round trip at a time.

Each takes a ready ``redis.Redis`` client (a database of its own) and times a chunk of
calls (see ``_turns.py``). Bodies are the pickled benchmark event (about 150 bytes), as
our queue stores them.
"""

from __future__ import annotations

import pickle
import time
from typing import Any, List

import redis

# A minimal at-least-once pair: reserve = pop the oldest id and lease it (ZPOPMIN + ZADD,
# returning the body), ack = end the lease and delete the body (ZREM + HDEL).
RESERVE_LUA = """
local r = redis.call('ZPOPMIN', KEYS[1])
if #r == 0 then return false end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) + 60, r[1])
return {r[1], redis.call('HGET', KEYS[3], r[1])}
"""
ACK_LUA = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
"""
READY, LEASED, BODY, LIST = "floor:ready", "floor:leased", "floor:body", "floor:list"


def lpush_chunk(r: redis.Redis, payload: bytes, n: int) -> float:
    """Seconds ``n`` ``LPUSH``es took, one unpipelined round trip each."""
    lpush = r.lpush
    t0 = time.perf_counter()
    for _ in range(n):
        lpush(LIST, payload)
    return time.perf_counter() - t0


class LuaPair:
    """The minimal Lua reserve/ack pair (EVALSHA, scripts loaded once)."""

    def __init__(self, r: redis.Redis, payload: bytes) -> None:
        self.r = r
        self.payload = payload
        self.reserve = r.register_script(RESERVE_LUA)
        self.ack = r.register_script(ACK_LUA)
        self.bodies: List[Any] = []

    def fill(self, n: int) -> None:
        """``n`` ready messages, ids 1..n, outside any timing."""
        self.r.delete(READY, LEASED, BODY)
        self.bodies.clear()
        pipe = self.r.pipeline(transaction=False)
        for start in range(1, n + 1, 1000):
            ids = range(start, min(start + 1000, n + 1))
            pipe.zadd(READY, {str(i): i for i in ids})
            pipe.hset(BODY, mapping={str(i): self.payload for i in ids})
        pipe.execute()

    def chunk(self, n: int) -> float:
        """Seconds ``n`` messages took to be reserved (body unpickled) and acked, one
        script call each."""
        reserve, ack, keys = self.reserve, self.ack, [READY, LEASED, BODY]
        bodies = self.bodies
        t0 = time.perf_counter()
        for _ in range(n):
            mid, data = reserve(keys=keys)
            bodies.append(pickle.loads(data))
            ack(keys=[LEASED, BODY], args=[mid])
        return time.perf_counter() - t0

    def check(self) -> None:
        """Every message was taken and settled."""
        assert self.bodies and not self.r.exists(READY, LEASED, BODY)
