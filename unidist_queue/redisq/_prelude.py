"""The Lua prelude every RedisMessageQueue operation shares (internal).

:data:`PRELUDE` holds what the operations of :mod:`._scripts` share: key names, server
time, promotions, returns, dead letters, news and the reply. It is written as the top of
a Redis 7 function library: its state lives in upvalues that :func:`begin` resets at the
start of every call (one call runs at a time on a server), so the library is loaded once
and no closure is rebuilt per call. ``keys[1]`` is the namespace's prefix ``uq:{ns}:``;
every key an operation touches is derived from it, so all carry the hash tag ``{ns}``
and a Redis Cluster keeps a namespace on one slot. ``args[1]`` is the calling client's
origin (the payload of its ``PUBLISH``es); ``A`` holds the call's arguments.

Keys (``P`` = the prefix; ``q`` = a queue name, any characters): ``P seq`` (INCR: ids),
``P queues`` (SET of names), ``P fed:<q>`` (SET of the queues whose dead letters go to
``q``), and per queue ``P q:<q>:<suffix>``: ``ready`` (ZSET id -> the time it joined, in
whole microseconds (see ``US``):
an append joins now, a delayed message at its due time, so a due message takes its place
whenever it is promoted; a return gets ``id - 2**52``, so returns sit at the front in id
order), ``delayed`` (ZSET id -> due: joins the back), ``retry`` (ZSET id -> due: a nack
with a delay, joins the front), ``leased`` (ZSET id -> lease end, in whole microseconds),
``msg`` (HASH: field
``<id>`` -> ``enqueued_at|body bytes``, so one read gives both, and ``<id>:a`` -> attempts,
written at the first reservation), ``age`` (ZSET id -> enqueued_at of the *ready*
messages, only with ``max_age``), ``viewed`` (HASH: id -> the origin of the client whose
view put the message, until it leaves), ``cfg`` (HASH: the options, ``made`` once created,
``due``, ``fed`` while other queues send it their dead letters, ``viewed`` once a view put
a message) and ``stats`` (HASH); per client ``P gone:<origin>`` (ZSET id -> server time:
the messages its views put that left undelivered, see ``left_undelivered``).
Ids are stored zero-padded to 16 digits everywhere, so that equal scores keep id order
(Redis orders equal scores by member, as strings). ``NOW`` never steps back while the
library stays loaded (a stepped clock cannot put an append before an earlier one).

Every operation returns ``{result, news, dead, now, hint, gone}`` (a take's or a look's result
is ``{ids and scores, values and attempts}``: the replies of ``ZRANGE WITHSCORES`` and
``HMGET`` as they are, no table per message): ``news`` a flat list of
``queue, kind`` (1: messages became ready, 2: only ready messages left, 3: a timed change
may now come sooner: waiters look again; each is PUBLISHed as ``origin:kind``), ``dead`` a list
of six values per message that left past ``max_attempts`` (queue, id, attempts,
max_attempts, dead-letter queue or ``""``, new id, 0 dropped, -1 refused), ``now`` the
server time and ``hint`` the queue's next timed change when it found nothing (both as
``%.17g`` strings: Lua numbers become integers in replies), ``gone`` the ids of the
messages this client's views put that left undelivered in this call.

Promotions (bounded, lazily applied) are in :mod:`._promotions`.
"""

from __future__ import annotations

from ._promotions import LIMIT, PROMOTIONS

__all__ = ["GONE_HORIZON", "GONE_MAX", "LIMIT", "PRELUDE"]

GONE_HORIZON = 86400
"""Seconds a client's record of its views' items that left undelivered keeps an entry
(and the record itself, after its last write) when the client does not collect it."""
GONE_MAX = 100000
"""The most entries a client's record of gone view items keeps (the oldest go first)."""

_BASE = r"""
local P, ORIGIN, NOW, LIMIT, A
local NEWS, ORDER, DEAD, CFG, DONE, GONE
local FRONT = 4503599627370496
local BIG = 4294967295
local LAST = 0  -- the latest NOW: kept between calls of a loaded library, so NOW never steps back

local function begin(keys, args)
  P, ORIGIN, A = keys[1], args[1], args
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) + tonumber(t[2]) / 1000000
  if NOW < LAST then NOW = LAST else LAST = NOW end
  LIMIT = __LIMIT__
  NEWS, ORDER, DEAD, CFG, DONE, GONE = {}, {}, {}, {}, {}, {}
end
local function K(q, s) return P .. 'q:' .. q .. ':' .. s end
-- The scores of `ready` and `leased` (the ZSETs every add, take and settle writes) are
-- whole microseconds: Redis keeps a small ZSET as a listpack and finds an insert's place
-- by reading every score before it, which costs a float parse per entry for a float
-- score and nothing for an integer (a ZADD of 100 into a listpack: ~5x faster).
local function US(t) return math.floor(t * 1000000) end
local function F(x) return string.format('%.17g', x) end
local function Z(id) return string.format('%016d', id) end
local function news(q, kind)
  local k = NEWS[q]
  if not k then ORDER[#ORDER + 1] = q; NEWS[q] = kind elseif kind < k then NEWS[q] = kind end
end
local function exists(q) return redis.call('SISMEMBER', P .. 'queues', q) == 1 end
local function cfg(q)
  local c = CFG[q]
  if c then return c end
  local v = redis.call('HMGET', K(q, 'cfg'), 'maxlen', 'max_age', 'overflow', 'max_attempts',
                       'dead_letter', 'made', 'due', 'fed', 'viewed')
  c = {maxlen = tonumber(v[1]), max_age = tonumber(v[2]), overflow = v[3] or 'drop_oldest',
       max_attempts = tonumber(v[4]), dead_letter = v[5] or nil, made = v[6],
       due = tonumber(v[7]), fed = v[8], viewed = v[9]}
  c.due0 = c.due
  CFG[q] = c
  return c
end
local function set_fed(q, on)
  if on then redis.call('HSET', K(q, 'cfg'), 'fed', 1) else redis.call('HDEL', K(q, 'cfg'), 'fed') end
  if CFG[q] then CFG[q].fed = on and '1' or nil end
end
local function create(q)
  local c = cfg(q)
  if c.made then return end
  if redis.call('SADD', P .. 'queues', q) == 1 then
    redis.call('HSETNX', K(q, 'cfg'), 'made', 1)
    if redis.call('SCARD', P .. 'fed:' .. q) > 0 then set_fed(q, true) end
  end
  c.made = '1'
end
local function unfeed(q, d)  -- q no longer sends its dead letters to d
  redis.call('SREM', P .. 'fed:' .. d, q)
  if redis.call('SCARD', P .. 'fed:' .. d) == 0 then set_fed(d, false) end
end
-- in chunks (unpack has a limit): redis.call(cmd, key, items...) for a flat list of items
local function each(cmd, key, items, step)
  for i = 1, #items, step do
    redis.call(cmd, key, unpack(items, i, math.min(i + step - 1, #items)))
  end
end
-- every entry of a timed structure goes in here: `due` in cfg stays a lower bound of the
-- queue's next timed change (nil: nothing timed), so promote1 skips a queue with nothing due
local function due_at(q, at)  -- a timed change at `at` (already in its structure)
  local c = cfg(q)
  if not c.due or at < c.due then c.due = at end
end
local function timer(q, s, at, id)
  redis.call('ZADD', K(q, s), at, id)
  due_at(q, s == 'age' and at + cfg(q).max_age or at)
end
local function stat(q, field, n) if n ~= 0 then redis.call('HINCRBY', K(q, 'stats'), field, n) end end
-- the replies of redis.call(cmd, key, items...) for a long list, joined
local function gather(cmd, key, items)
  local out = {}
  for i = 1, #items, 1000 do
    local r = redis.call(cmd, key, unpack(items, i, math.min(i + 999, #items)))
    for k = 1, #r do out[#out + 1] = r[k] end
  end
  return out
end
-- ids of q (zero-padded) leave it undelivered: those a view put are recorded as gone for
-- the client whose view put them (its `gone:<origin>` ZSET, id -> NOW: trimmed to the last
-- GONE_HORIZON seconds and GONE_MAX entries, expiring GONE_HORIZON after its last write),
-- and the calling client's own are also returned in the reply (GONE)
local function left_undelivered(q, ids)
  if not cfg(q).viewed or #ids == 0 then return end
  local key = K(q, 'viewed')
  local owners, found, by = gather('HMGET', key, ids), {}, {}
  for i, id in ipairs(ids) do
    local o = owners[i]
    if o then
      found[#found + 1] = id
      if o == ORIGIN then GONE[#GONE + 1] = id end
      local t = by[o]
      if not t then t = {}; by[o] = t end
      t[#t + 1], t[#t + 2] = NOW, id
    end
  end
  if #found == 0 then return end
  each('HDEL', key, found, 1000)
  for o, t in pairs(by) do
    local g = P .. 'gone:' .. o
    each('ZADD', g, t, 1000)
    redis.call('ZREMRANGEBYSCORE', g, '-inf', '(' .. F(NOW - __GONE_HORIZON__))
    local over = redis.call('ZCARD', g) - __GONE_MAX__
    if over > 0 then redis.call('ZREMRANGEBYRANK', g, 0, over - 1) end
    redis.call('EXPIRE', g, __GONE_HORIZON__)
  end
end
-- a message leaves undelivered (expired, dead)
local function forget(q, id)
  left_undelivered(q, {id})
  redis.call('HDEL', K(q, 'msg'), id, id .. ':a')
  if cfg(q).max_age then redis.call('ZREM', K(q, 'age'), id) end
end
-- each of ids leaves: `taken` (delivered: removed or acked), else undelivered (evicted)
local function forget_all(q, ids, taken)
  if not cfg(q).viewed then
  elseif taken then each('HDEL', K(q, 'viewed'), ids, 1000)
  else left_undelivered(q, ids) end
  local f = {}
  for _, id in ipairs(ids) do f[#f + 1], f[#f + 2] = id, id .. ':a' end
  each('HDEL', K(q, 'msg'), f, 1000)
  if cfg(q).max_age then each('ZREM', K(q, 'age'), ids, 1000) end
end
local function expire(q, id) forget(q, id); stat(q, 'expired', 1) end
-- a message's stored value is `enqueued_at|body`: one field read gives both
local function enq_of(q, id)
  local v = redis.call('HGET', K(q, 'msg'), id)
  return v and tonumber(string.match(v, '^[^|]*')) or nil
end
local function att_of(q, id) return redis.call('HGET', K(q, 'msg'), id .. ':a') end
local function aged(q, enq, at) local a = cfg(q).max_age; return a ~= nil and enq + a < at end
local function push_back(q, id, enq, at)
  local c = cfg(q)
  redis.call('ZADD', K(q, 'ready'), US(at or NOW), id)
  if c.max_age then timer(q, 'age', enq, id) end
  news(q, 1)
end
local function push_front(q, id, enq)
  redis.call('ZADD', K(q, 'ready'), tonumber(id) - FRONT, id)
  if cfg(q).max_age then timer(q, 'age', enq, id) end
  news(q, 1)
end
local function evict(q)
  local c = cfg(q)
  if not c.maxlen or c.overflow ~= 'drop_oldest' then return end
  local over = redis.call('ZCARD', K(q, 'ready')) - c.maxlen
  if over <= 0 then return end
  local gone, ids = redis.call('ZPOPMIN', K(q, 'ready'), over), {}
  for i = 1, #gone, 2 do ids[#ids + 1] = gone[i] end
  forget_all(q, ids)
  stat(q, 'dropped', over)
end
local function dead(q, id, att)
  local c = cfg(q)
  local body = redis.call('HGET', K(q, 'msg'), id)
  forget(q, id)
  stat(q, 'dead', 1)
  local d = c.dead_letter
  local entry = {q, tonumber(id), att, c.max_attempts, d or '', 0}
  DEAD[#DEAD + 1] = entry
  if not d then return end
  create(d)
  local dc = cfg(d)
  if dc.maxlen and dc.overflow == 'reject' and redis.call('ZCARD', K(d, 'ready')) >= dc.maxlen then
    entry[6] = -1
    return
  end
  local nid = redis.call('INCR', P .. 'seq')
  local data = body and (string.match(body, '^[^|]*|(.*)$') or body) or ''
  redis.call('HSET', K(d, 'msg'), Z(nid), F(NOW) .. '|' .. data)
  push_back(d, Z(nid), NOW)
  evict(d)
  stat(d, 'added', 1)
  entry[6] = nid
end
-- a reservation ends unacked at `at`: expired, dead past max_attempts, or back (front or retry)
local function ret(q, id, due, at)
  local c = cfg(q)
  local enq = enq_of(q, id)
  if aged(q, enq, at) then expire(q, id); return end
  local att = tonumber(att_of(q, id)) or 0
  if c.max_attempts and att >= c.max_attempts then dead(q, id, att); return end
  if due then timer(q, 'retry', due, id); news(q, 3) else push_front(q, id, enq) end
end
"""

_REPLY = r"""
local function finish(res, hint)
  for q, c in pairs(CFG) do
    if c.due ~= c.due0 and not c.gone then
      if c.due then redis.call('HSET', K(q, 'cfg'), 'due', F(c.due))
      else redis.call('HDEL', K(q, 'cfg'), 'due') end
    end
  end
  local n = {}
  for _, q in ipairs(ORDER) do
    redis.call('PUBLISH', P .. 'n:' .. q, ORIGIN .. ':' .. NEWS[q])
    n[#n + 1] = q
    n[#n + 1] = NEWS[q]
  end
  return {res, n, DEAD, F(NOW), hint and F(hint) or false, GONE}
end
-- the reply of a take or a look: {ids and scores as ZRANGE WITHSCORES gave them, then
-- each message's stored value and attempts (HMGET, in slices: unpack has a limit)}
local function body_rows(q, got)
  local key, out = K(q, 'msg'), {}
  for i = 1, #got, 1000 do
    local fields = {}
    for k = i, math.min(i + 999, #got), 2 do
      local id = got[k]
      fields[#fields + 1], fields[#fields + 2] = id, id .. ':a'
    end
    local v = redis.call('HMGET', key, unpack(fields))
    for k = 1, #v do out[#out + 1] = v[k] end
  end
  return {got, out}
end
"""

PRELUDE = (
    (_BASE + PROMOTIONS + _REPLY)
    .replace("__LIMIT__", str(LIMIT))
    .replace("__GONE_HORIZON__", str(GONE_HORIZON))
    .replace("__GONE_MAX__", str(GONE_MAX))
)
"""The Lua every operation starts with: the helpers, :data:`._promotions.PROMOTIONS`, the reply."""
