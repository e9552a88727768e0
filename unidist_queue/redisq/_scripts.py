"""The Lua source of every RedisMessageQueue operation: one script per operation (internal).

Each operation is a body that runs after the shared prelude (:mod:`._prelude`, where the
keys and the reply are described). All of them together make one Redis 7 function library
(:data:`LIBRARY`, loaded once per server, called with ``FCALL``: nothing is rebuilt per
call); each also makes a stand-alone script (:class:`Script`) for ``EVALSHA`` on a server
without functions.
"""

from __future__ import annotations

import hashlib
from typing import Dict

from ._prelude import LIMIT, PRELUDE

__all__ = ["LIBRARY", "LIMIT", "SCRIPTS", "VERSION", "Script"]

# ARGV: origin, queue, delay ('' none), n, view ('' or 'v': put by a view of this client),
# body 1 .. body n, then ids this client counted already that leave its gone record
ADD = r"""
local q, delay, n, view = A[2], A[3], tonumber(A[4]), A[5] ~= ''
create(q)
promote(q)
local c = cfg(q)
if delay == '' and c.maxlen and c.overflow ~= 'drop_oldest' then
  if c.overflow == 'block' and n > c.maxlen then return finish({'big', c.maxlen}) end
  if redis.call('ZCARD', K(q, 'ready')) + pending(q).all + n > c.maxlen then
    return finish({'full', c.maxlen, c.overflow}, next_due(q))
  end
end
local first = redis.call('INCRBY', P .. 'seq', n) - n + 1
local enq = F(NOW)  -- stored before the body: `enqueued_at|body`
local msgs, joins = {}, {}
local due = delay ~= '' and NOW + tonumber(delay) or nil
local score = due or US(NOW)  -- (a ready one's: whole microseconds, see US)
for i = 1, n do
  local id = Z(first + i - 1)
  msgs[2 * i - 1], msgs[2 * i] = id, enq .. '|' .. A[5 + i]
  joins[2 * i - 1], joins[2 * i] = score, id
  if c.max_age and not due then timer(q, 'age', NOW, id) end
end
each('HSET', K(q, 'msg'), msgs, 1000)
if view then  -- marked with this client's origin (see left_undelivered)
  if not c.viewed then redis.call('HSET', K(q, 'cfg'), 'viewed', 1); c.viewed = '1' end
  local v = {}
  for i = 1, n do v[2 * i - 1], v[2 * i] = Z(first + i - 1), ORIGIN end
  each('HSET', K(q, 'viewed'), v, 1000)
  local done = {}
  for i = 6 + n, #A do done[#done + 1] = A[i] end
  if #done > 0 then each('ZREM', P .. 'gone:' .. ORIGIN, done, 1000) end
end
if due then
  each('ZADD', K(q, 'delayed'), joins, 1000)
  due_at(q, due)
  news(q, 3)  -- waiters time their wait again
else
  each('ZADD', K(q, 'ready'), joins, 1000)
  news(q, 1)
  evict(q)
end
stat(q, 'added', n)
return finish({'ok', first})
"""

# ARGV: origin, queue, end ('first' | 'last'), n, mode ('peek' | 'remove' | 'reserve'), lease
TAKE = r"""
local q, side, n, mode = A[2], A[3], tonumber(A[4]), A[5]
promote(q)
local got = ends(q, side, n, mode ~= 'peek')
if #got == 0 then return finish(false, next_due(q)) end
local rows = body_rows(q, got)
if mode == 'peek' then return finish(rows) end
local ids, v = {}, rows[2]
for i = 1, #got, 2 do ids[#ids + 1] = got[i] end
if mode == 'remove' then
  forget_all(q, ids, true)
  stat(q, 'removed', #ids)
else
  local lease_end = NOW + tonumber(A[6])
  local us = US(lease_end)
  local atts, leases = {}, {}
  for i, id in ipairs(ids) do  -- (the reply keeps the attempts read: the caller adds 1)
    atts[2 * i - 1], atts[2 * i] = id .. ':a', (tonumber(v[2 * i]) or 0) + 1
    leases[2 * i - 1], leases[2 * i] = us, id
  end
  each('HSET', K(q, 'msg'), atts, 1000)
  each('ZADD', K(q, 'leased'), leases, 1000)
  due_at(q, lease_end)
  if cfg(q).max_age then each('ZREM', K(q, 'age'), ids, 1000) end
  local c = cfg(q)  -- a lapse may send them on: the dead-letter queue's getters look again
  if c.dead_letter and c.max_attempts then news(c.dead_letter, 3) end
end
news(q, 2)
return finish(rows)
"""

# ARGV: origin, queue, mode ('remove' | 'reserve'), then id, stored value, attempts, score
# for each message a TAKE took: puts them back where they were (a body failed its check).
RESTORE = r"""
local q, mode = A[2], A[3]
if not exists(q) then return finish(0) end
local age = cfg(q).max_age
local n = 0
for i = 4, #A, 4 do
  local id, value, att, score = Z(tonumber(A[i])), A[i + 1], A[i + 2], A[i + 3]
  local back = true
  if mode == 'remove' then
    redis.call('HSET', K(q, 'msg'), id, value)
    if att ~= '0' then redis.call('HSET', K(q, 'msg'), id .. ':a', att) end
    stat(q, 'removed', -1)
  elseif redis.call('ZREM', K(q, 'leased'), id) == 1 then
    local key = K(q, 'msg')
    if redis.call('HINCRBY', key, id .. ':a', -1) <= 0 then redis.call('HDEL', key, id .. ':a') end
  else
    back = false
  end
  if back then
    redis.call('ZADD', K(q, 'ready'), score, id)
    if age then timer(q, 'age', enq_of(q, id) or NOW, id) end
    news(q, 1)
    n = n + 1
  end
end
return finish(n)
"""

# ARGV: origin, mode ('ack' | 'nack' | 'extend' | 'renew' | 'release'), seconds ('' none),
# then queue, id (zero-padded, as stored), attempts for each reservation. ack/nack/extend:
# all or none ({'bad', i} for the first that is not a current reservation, or given
# twice); renew/release: each current one, and a 0/1 per item.
SETTLE = r"""
local mode, secs = A[2], A[3]
local strict = mode == 'ack' or mode == 'nack' or mode == 'extend'
local by, order, items = {}, {}, {}  -- by queue: its ids and their places in items
for i = 4, #A, 3 do
  local q, id = A[i], A[i + 1]
  local g = by[q]
  if not g then g = {ids = {}, at = {}}; by[q] = g; order[#order + 1] = q end
  items[#items + 1] = A[i + 2]
  g.ids[#g.ids + 1], g.at[#g.at + 1] = id, #items
end
for _, q in ipairs(order) do promote(q) end
local ok, bad = {}, nil
for _, q in ipairs(order) do
  local g, fields, seen = by[q], {}, {}
  for k, id in ipairs(g.ids) do fields[k] = id .. ':a' end
  local ends = gather('ZMSCORE', K(q, 'leased'), g.ids)
  local atts = gather('HMGET', K(q, 'msg'), fields)
  for k, id in ipairs(g.ids) do
    local i, score = g.at[k], tonumber(ends[k])
    local good = not seen[id] and score ~= nil and score > US(NOW) and atts[k] == items[i]
    seen[id] = true
    if strict and not good and (not bad or i < bad) then bad = i end
    ok[i] = good and 1 or 0
  end
end
if bad then return finish({'bad', bad}) end
local due = secs ~= '' and NOW + tonumber(secs) or nil
for _, q in ipairs(order) do
  local g, good = by[q], {}
  for k, id in ipairs(g.ids) do if ok[g.at[k]] == 1 then good[#good + 1] = id end end
  if #good > 0 then
    if mode == 'extend' or mode == 'renew' then
      local z = {}
      local us = US(due)
      for k, id in ipairs(good) do z[2 * k - 1], z[2 * k] = us, id end
      each('ZADD', K(q, 'leased'), z, 1000)
      due_at(q, due)
      if mode == 'extend' then  -- (a shorter lease: due sooner)
        news(q, 3)
        if cfg(q).dead_letter then news(cfg(q).dead_letter, 3) end
      end
    else
      each('ZREM', K(q, 'leased'), good, 1000)
      if mode == 'ack' then
        forget_all(q, good, true)
        stat(q, 'removed', #good)
      else
        for _, id in ipairs(good) do ret(q, id, due, NOW) end
      end
    end
  end
end
return finish({'ok', ok})
"""

# ARGV: origin, what ('count' | 'exists' | 'all' | 'stats' | 'next_due' | 'queues'), queue
LOOK = r"""
local what, q = A[2], A[3]
if what == 'queues' then return finish(redis.call('SMEMBERS', P .. 'queues')) end
if what == 'all' then LIMIT = 4294967295 end  -- O(n) anyway: every due change, not a bounded part
promote(q)
if what == 'exists' then return finish(exists(q) and 1 or 0) end
if what == 'next_due' then return finish(false, next_due(q)) end
if what == 'count' then return finish(redis.call('ZCARD', K(q, 'ready')) + pending(q).all) end
if what == 'stats' then
  local s = redis.call('HMGET', K(q, 'stats'), 'added', 'removed', 'expired', 'dropped', 'dead')
  local p = pending(q)
  local out = {redis.call('ZCARD', K(q, 'ready')) + p.all,
               redis.call('ZCARD', K(q, 'delayed')) + redis.call('ZCARD', K(q, 'retry'))
                 - p.delayed - p.retry,
               redis.call('ZCARD', K(q, 'leased')) - p.leased}
  for i = 1, 5 do out[#out + 1] = tonumber(s[i]) or 0 end
  return finish(out)
end
return finish(body_rows(q, redis.call('ZRANGE', K(q, 'ready'), 0, -1, 'WITHSCORES')))
"""

# ARGV: origin, queue, then for each of maxlen, max_age, overflow, max_attempts,
# dead_letter: '' (not passed), 'n' (None) or 'v' followed by the value.
DECLARE = r"""
local q = A[2]
local c = cfg(q)
local names = {'maxlen', 'max_age', 'overflow', 'max_attempts', 'dead_letter'}
local new = {}
for i, name in ipairs(names) do
  local a = A[2 + i]
  if a == '' then new[name] = c[name] elseif a == 'n' then new[name] = false
  else new[name] = string.sub(a, 2) end
end
new.maxlen = tonumber(new.maxlen) or nil
new.max_age = tonumber(new.max_age) or nil
new.max_attempts = tonumber(new.max_attempts) or nil
new.overflow = new.overflow or 'drop_oldest'
if not new.maxlen and new.overflow ~= 'drop_oldest' then
  return finish({'bound', new.overflow, A[3] == 'n' and 1 or 0})
end
create(q)
promote(q)
local key = K(q, 'cfg')
for _, name in ipairs(names) do
  local v = new[name]
  if not v then redis.call('HDEL', key, name)
  else redis.call('HSET', key, name, type(v) == 'number' and F(v) or v) end
end
if new.dead_letter ~= c.dead_letter then
  if c.dead_letter then unfeed(q, c.dead_letter) end
  if new.dead_letter then
    redis.call('SADD', P .. 'fed:' .. new.dead_letter, q)
    set_fed(new.dead_letter, true)
  end
end
if new.max_age and not c.max_age then
  local ids = redis.call('ZRANGE', K(q, 'ready'), 0, -1)
  for _, id in ipairs(ids) do redis.call('ZADD', K(q, 'age'), enq_of(q, id), id) end  -- due: below
elseif c.max_age and not new.max_age then
  redis.call('DEL', K(q, 'age'))
end
c.maxlen, c.max_age, c.overflow = new.maxlen, new.max_age, new.overflow
c.max_attempts, c.dead_letter = new.max_attempts, new.dead_letter or nil
c.due = due1(q, nil)
evict(q)
news(q, 2)
return finish('ok')
"""

SUFFIXES = "'ready', 'delayed', 'retry', 'leased', 'msg', 'age', 'viewed'"

# ARGV: origin, queue ('' none: no promotion), k, then k pairs of queue and id, then ids
# this client counted already. For each pair: 1 still in its queue, 2 left undelivered
# (taken out of this client's gone record), 0 delivered (or never put by a view here);
# the hint: the queue's next timed change.
VIEWED = r"""
local q0, k = A[2], tonumber(A[3])
if q0 ~= '' then promote(q0) end
local g, by, order = P .. 'gone:' .. ORIGIN, {}, {}
for i = 1, k do
  local q, id = A[2 + 2 * i], A[3 + 2 * i]
  local t = by[q]
  if not t then t = {ids = {}, at = {}}; by[q] = t; order[#order + 1] = q end
  t.ids[#t.ids + 1], t.at[#t.at + 1] = id, i
end
local out, back = {}, {}
for _, q in ipairs(order) do
  local t = by[q]
  local here = gather('HMGET', K(q, 'viewed'), t.ids)
  local rest, at = {}, {}
  for j, id in ipairs(t.ids) do
    if here[j] then out[t.at[j]] = 1 else rest[#rest + 1], at[#at + 1] = id, t.at[j] end
  end
  if #rest > 0 then
    local scores = gather('ZMSCORE', g, rest)
    for j, id in ipairs(rest) do
      if scores[j] then out[at[j]] = 2; back[#back + 1] = id else out[at[j]] = 0 end
    end
  end
end
for i = 4 + 2 * k, #A do back[#back + 1] = A[i] end
if #back > 0 then each('ZREM', g, back, 1000) end
return finish(out, q0 ~= '' and next_due(q0) or nil)
"""

# ARGV: origin, queue
CLEAR = r"""
local q = A[2]
if not exists(q) then return finish(0) end
promote(q)
local n = 0
for _, s in ipairs({'ready', 'delayed', 'retry', 'leased'}) do n = n + redis.call('ZCARD', K(q, s)) end
if cfg(q).viewed then left_undelivered(q, redis.call('HKEYS', K(q, 'viewed'))) end
for _, s in ipairs({__SUFFIXES__}) do redis.call('UNLINK', K(q, s)) end
stat(q, 'dropped', n)
cfg(q).due = nil
news(q, 2)
return finish(n)
""".replace("__SUFFIXES__", SUFFIXES)

# ARGV: origin, queue
DROP = r"""
local q = A[2]
if not exists(q) then return finish(0) end
local c = cfg(q)
if c.viewed then left_undelivered(q, redis.call('HKEYS', K(q, 'viewed'))) end
redis.call('SREM', P .. 'queues', q)
if c.dead_letter then unfeed(q, c.dead_letter) end
for _, s in ipairs({__SUFFIXES__, 'cfg', 'stats'}) do redis.call('UNLINK', K(q, s)) end
c.gone = true
news(q, 2)
return finish(1)
""".replace("__SUFFIXES__", SUFFIXES)


BODIES = (("add", ADD), ("take", TAKE), ("restore", RESTORE), ("settle", SETTLE), ("look", LOOK),
          ("declare", DECLARE), ("clear", CLEAR), ("drop", DROP), ("viewed", VIEWED))
VERSION = hashlib.sha1((PRELUDE + "".join(b for _, b in BODIES)).encode("utf-8")).hexdigest()[:12]


class Script:
    """One operation: the name of its Redis function (``FCALL``), and its stand-alone Lua
    source with the SHA1 that ``EVALSHA`` names it by (for servers without functions).

    Immutable and thread-safe.
    """

    __slots__ = ("function", "name", "sha", "source")

    def __init__(self, name: str, body: str) -> None:
        self.name = name
        self.function = f"uq{VERSION}_{name}"
        self.source = PRELUDE + "begin(KEYS, ARGV)\n" + body
        self.sha = hashlib.sha1(self.source.encode("utf-8")).hexdigest()  # Redis names scripts by SHA1


SCRIPTS: Dict[str, Script] = {name: Script(name, body) for name, body in BODIES}
"""Every script by operation name."""


def _library() -> str:
    parts = [f"#!lua name=uq{VERSION}\n", PRELUDE]
    for name, body in BODIES:
        parts.append(f"local function op_{name}(keys, args)\nbegin(keys, args)\n{body}end\n"
                     f"redis.register_function('{SCRIPTS[name].function}', op_{name})\n")
    return "".join(parts)


LIBRARY = _library()
"""The Redis 7 function library of every operation (``FUNCTION LOAD`` it once per server);
its name carries :data:`VERSION`, so clients of different versions never replace each
other's functions."""
