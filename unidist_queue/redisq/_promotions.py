"""The promotions of the Lua prelude: due timed changes applied lazily (internal).

:data:`PROMOTIONS` is the part of :data:`._prelude.PRELUDE` that applies a queue's due
timed changes (lapsed leases, due delayed messages and retries, expiry) when a call
touches the queue, and finds its next timed change. It uses the prelude's helpers
defined before it (``K``, ``cfg``, ``ret``, ``push_back``...), and the prelude's
reply (``finish``) comes after it.

Promotions are bounded: each call applies at most :data:`LIMIT` due changes per structure
of each queue it touches, in due order, so a backlog of due messages never makes one
call slow; ``count`` and ``stats`` count what is due beyond the bound as ready. A take
first applies what decides its result (:func:`catch_up`): every due return (lapsed leases
and due retries, bounded by the reservations that ran out), the ``n`` due delayed
messages nearest the end it takes from, and the expiry of what it would return; a queue
with ``maxlen`` and ``overflow="drop_oldest"`` promotes every due delayed message (the
evictions depend on all of them). ``all``/``messages`` (O(n) anyway) apply every due
change. A queue's ``cfg`` keeps ``due``, a lower bound of its next timed change, so a
queue with nothing due costs a call no look at its timed structures.
"""

from __future__ import annotations

__all__ = ["LIMIT", "PROMOTIONS"]

LIMIT = 100
"""The most due changes of one timed structure of one queue a call applies (see above)."""

PROMOTIONS = r"""
local DUE1  -- due1, defined below
local function collect(ev, q, s, max, kind, shift, limit)
  local unit = 1
  if s == 'leased' then unit, max = 1000000, US(max) end  -- (max: a time, never '(' there)
  local r = redis.call('ZRANGEBYSCORE', K(q, s), '-inf', max, 'WITHSCORES', 'LIMIT', 0, limit or LIMIT)
  for i = 1, #r, 2 do ev[#ev + 1] = {tonumber(r[i + 1]) / unit + shift, kind, r[i]} end
end
local function before(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[3] < b[3]
end
local function apply(q, e)
  local when, kind, id = e[1], e[2], e[3]
  if kind == 1 then
    if redis.call('ZREM', K(q, 'leased'), id) == 1 then ret(q, id, nil, when) end
  elseif kind == 4 then
    if redis.call('ZREM', K(q, 'ready'), id) == 1 then expire(q, id); news(q, 2) end
  else
    local enq = enq_of(q, id)
    redis.call('ZREM', K(q, kind == 2 and 'delayed' or 'retry'), id)
    if aged(q, enq, when) then expire(q, id)
    elseif kind == 3 then push_front(q, id, enq)
    else push_back(q, id, enq, when); evict(q) end
  end
end
local function run_all(q, ev)
  table.sort(ev, before)
  for _, e in ipairs(ev) do apply(q, e) end
end
local function promote1(q)
  if DONE[q] then return end
  DONE[q] = true
  local c = cfg(q)
  if not c.due or c.due > NOW then return end
  local ev = {}
  collect(ev, q, 'leased', NOW, 1, 0)
  collect(ev, q, 'delayed', NOW, 2, 0, (c.maxlen and c.overflow == 'drop_oldest') and BIG or LIMIT)
  collect(ev, q, 'retry', NOW, 3, 0)
  if c.max_age then collect(ev, q, 'age', '(' .. F(NOW - c.max_age), 4, c.max_age) end
  run_all(q, ev)
  if c.max_age then  -- messages that joined above and are already too old
    local late = {}
    collect(late, q, 'age', '(' .. F(NOW - c.max_age), 4, c.max_age)
    for _, e in ipairs(late) do apply(q, e) end
  end
  c.due = DUE1(q, nil)  -- exact again (due now if more than LIMIT were due)
end
local function promote(q)
  if cfg(q).fed then
    for _, f in ipairs(redis.call('SMEMBERS', P .. 'fed:' .. q)) do promote1(f) end
  end
  promote1(q)
end
local function first_score(q, s)
  local r = redis.call('ZRANGE', K(q, s), 0, 0, 'WITHSCORES')
  if r[2] then return tonumber(r[2]) / (s == 'leased' and 1000000 or 1) end
  return nil
end
local function due1(q, best)
  for _, s in ipairs({'leased', 'delayed', 'retry'}) do
    local x = first_score(q, s)
    if x and (not best or x < best) then best = x end
  end
  local a = cfg(q).max_age
  if a then
    local x = first_score(q, 'age')
    if x and (not best or x + a < best) then best = x + a end
  end
  return best
end
DUE1 = due1
-- before a take of n from `side` ('first' | 'last'): every due return, and up to n due
-- delayed messages from that side (those nearest it: a delayed message's place does not
-- depend on when it is promoted)
local function catch_up(q, side, n, returns)
  local c = cfg(q)
  if not c.due or c.due > NOW then return end
  if returns then
    local ev = {}
    collect(ev, q, 'leased', NOW, 1, 0, BIG)
    collect(ev, q, 'retry', NOW, 3, 0, BIG)
    run_all(q, ev)
  end
  local r
  if side == 'first' then
    r = redis.call('ZRANGEBYSCORE', K(q, 'delayed'), '-inf', NOW, 'WITHSCORES', 'LIMIT', 0, n)
  else
    r = redis.call('ZREVRANGEBYSCORE', K(q, 'delayed'), NOW, '-inf', 'WITHSCORES', 'LIMIT', 0, n)
  end
  for i = 1, #r, 2 do apply(q, {tonumber(r[i + 1]), 2, r[i]}) end
  c.due = due1(q, nil)
end
-- the n ready messages at `side` once every due change that decides them happened
-- (with `pop`, removed from ready)
local function ends(q, side, n, pop)
  local key, age = K(q, 'ready'), cfg(q).max_age
  local returns = true
  while true do
    catch_up(q, side, n, returns)
    returns = false
    local got
    if pop and not age then
      return redis.call(side == 'first' and 'ZPOPMIN' or 'ZPOPMAX', key, n)
    elseif side == 'first' then got = redis.call('ZRANGE', key, 0, n - 1, 'WITHSCORES')
    else got = redis.call('ZRANGE', key, -n, -1, 'WITHSCORES') end
    if not age then return got end
    local clean = true
    for i = 1, #got, 2 do
      if aged(q, enq_of(q, got[i]), NOW) then
        redis.call('ZREM', key, got[i]); expire(q, got[i]); news(q, 2); clean = false
      end
    end
    if clean then
      if pop and #got > 0 then
        local ids = {}
        for i = 1, #got, 2 do ids[#ids + 1] = got[i] end
        each('ZREM', key, ids, 1000)
      end
      return got
    end
  end
end
local function next_due(q)
  local best = due1(q, nil)
  if cfg(q).fed then
    for _, f in ipairs(redis.call('SMEMBERS', P .. 'fed:' .. q)) do best = due1(f, best) end
  end
  return best
end
local function pending(q)  -- per structure: what is due beyond what promote1 applied (LIMIT)
  local n = {leased = 0, delayed = 0, retry = 0}
  local c = cfg(q)
  if c.due and c.due <= NOW then
    for s in pairs(n) do n[s] = redis.call('ZCOUNT', K(q, s), '-inf', s == 'leased' and US(NOW) or NOW) end
  end
  n.all = n.leased + n.delayed + n.retry
  return n
end
"""
"""Lua; ``__LIMIT__`` stands for :data:`LIMIT` (the prelude puts it in)."""
