"""The floors of the Redis benchmark: what redis-py itself does, one round trip at a time.

Each function takes a ready ``redis.Redis`` client (its own database, flushed by the
caller between repetitions where it keeps data) and returns items per second. Bodies are
the pickled benchmark event (about 150 bytes), as our queue stores them.
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
READY, LEASED, BODY = "floor:ready", "floor:leased", "floor:body"


def lpush_rate(r: redis.Redis, payload: bytes, n: int) -> float:
    """``LPUSH``es per second, one unpipelined round trip each."""
    lpush = r.lpush
    t0 = time.perf_counter()
    for _ in range(n):
        lpush("floor:list", payload)
    rate = n / (time.perf_counter() - t0)
    r.delete("floor:list")
    return rate


class LuaPair:
    """The minimal Lua reserve/ack pair (EVALSHA, scripts loaded once)."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self.reserve = r.register_script(RESERVE_LUA)
        self.ack = r.register_script(ACK_LUA)

    def fill(self, payload: bytes, n: int) -> None:
        """``n`` ready messages, ids 1..n, outside any timing."""
        self.r.delete(READY, LEASED, BODY)
        pipe = self.r.pipeline(transaction=False)
        for start in range(1, n + 1, 1000):
            ids = range(start, min(start + 1000, n + 1))
            pipe.zadd(READY, {str(i): i for i in ids})
            pipe.hset(BODY, mapping={str(i): payload for i in ids})
        pipe.execute()

    def cycle_rate(self, payload: bytes, n: int) -> float:
        """Messages per second reserved (body unpickled) and acked, one script call each."""
        self.fill(payload, n)
        reserve, ack, keys = self.reserve, self.ack, [READY, LEASED, BODY]
        bodies: List[Any] = []
        t0 = time.perf_counter()
        for _ in range(n):
            mid, data = reserve(keys=keys)
            bodies.append(pickle.loads(data))
            ack(keys=[LEASED, BODY], args=[mid])
        rate = n / (time.perf_counter() - t0)
        assert len(bodies) == n and not self.r.exists(READY, LEASED, BODY)
        return rate


def push_pop_cycle(r: redis.Redis, payload: bytes, n: int) -> None:
    """``n`` times ``LPUSH`` then ``RPOP`` on one list: two round trips per message (the
    loop the client processes run for the multi-process floor)."""
    lpush, rpop = r.lpush, r.rpop
    for _ in range(n):
        lpush("floor:shared", payload)
        rpop("floor:shared")
