"""The state of one named queue, and the state changes shared by live calls and replay.

Internal. Every method here is called with the owning ``MessageQueue``'s mutex held;
none of them logs, calls user code or touches a store. The ``MessageQueue`` decides
*what* happens (and records it); this module only does it, so that replaying a record
after a restart runs the very same code as the call that wrote it.

Ready messages are kept in three parallel deques: ``ready`` (ids), ``ready_at``
(``enqueued_at``) and ``ready_bodies``, so that a waiting message costs no object of
its own. (With one tuple per message, each holding a body the cyclic collector tracks,
every collection walked the whole backlog: ``add_many`` of 100, messages piling up, ran
2.8x as fast as single adds with tuples and 7-8x without; ``benchmarks/bench_batches.py``.)
Methods that hand a ready message out build its tuple ``(id, enqueued_at, body)``
(:data:`Item`) then. Delayed messages are ``(due, id, enqueued_at, body, front)`` in a
``SortedList`` ordered by due time (``front``: rejoin at the front, as a delayed
``nack`` does, not at the back).
Reserved messages sit in a dict by id, with their lease in a ``SortedList``.
"""

from __future__ import annotations

import threading
from collections import deque
from itertools import repeat
from typing import Any, Deque, Dict, List, Optional, Tuple

from sortedcontainers import SortedList

from ._awaiting import Waiter, wake_every, wake_first
from ._watched import Watched

Item = Tuple[int, float, Any]
"""A ready message: ``(id, enqueued_at, body)``."""

INF = float("inf")

NONE, LEASE, DELAYED, EXPIRY = 0, 1, 2, 3
"""Kinds of timed change, as :meth:`QueueState.next_change` reports them."""


class QueueState:
    """One named queue: its options, messages, counters and Conditions.

    Cost: appending and taking at either end are O(1); delayed messages, leases and (with
    ``max_age``) ages are kept in ``SortedList``s, O(log n) per change.
    """

    __slots__ = (
        "added", "ages", "aget_n", "agetters", "aput_n", "aputters", "attempts", "bare", "dead",
        "dead_letter", "delayed", "dropped", "durable", "exists", "expired", "fed", "getters",
        "lean", "leases", "max_age", "max_attempts", "maxlen", "name", "not_empty", "not_full",
        "overflow", "plain", "putters", "ready", "ready_at", "ready_bodies", "removed", "reserved",
        "simple", "timed", "watch",
    )

    def __init__(self, name: str, mutex: threading.Lock, durable: bool) -> None:
        self.name = name
        self.exists = True  # False: a placeholder made by a waiting getter
        self.durable = durable
        self.maxlen: Optional[int] = None
        self.max_age: Optional[float] = None
        self.overflow = "drop_oldest"
        self.max_attempts: Optional[int] = None  # reservations that may end unacked (None: any)
        self.dead_letter: Optional[str] = None  # where a message past max_attempts goes
        self.fed = False  # another queue moves messages here past its max_attempts (core sets it)
        # ids of messages put through a QueueView and not yet delivered -> the view's
        # callback for one that leaves undelivered (None when there is none: fast paths)
        self.watch: Optional[Watched] = None
        # the ready messages, oldest first: ids, enqueued_at and bodies, always of one length
        self.ready: Deque[int] = deque()
        self.ready_at: Deque[float] = deque()
        self.ready_bodies: Deque[Any] = deque()
        self.delayed: SortedList = SortedList()
        self.reserved: Dict[int, Tuple[int, float, Any, Optional[float]]] = {}
        self.leases: SortedList = SortedList()
        self.ages: Optional[SortedList] = None  # (enqueued_at, id) of ready items, with max_age
        self.attempts: Dict[int, int] = {}
        # not_empty / agetters: woken by the core (wake) when a message becomes ready (add,
        # nack, promotion, lease expiry) and, all (wake_all), by drop, close, view shutdown.
        self.not_empty = threading.Condition(mutex)
        # not_full / aputters: woken (wake_putters) when a ready message leaves (take, clear,
        # expiry, reserve) or maxlen grows, and, all (wake_all), by drop and close.
        self.not_full = threading.Condition(mutex)
        self.getters = 0  # threads and coroutines waiting on not_empty / in agetters
        self.putters = 0  # threads and coroutines waiting on not_full / in aputters
        self.agetters: Optional[Deque[Waiter]] = None  # parked coroutines (see _awaiting)
        self.aputters: Optional[Deque[Waiter]] = None
        self.aget_n = self.aput_n = 0  # coroutines counted in getters / putters
        self.timed = False  # delayed, leases, max_age or fed: refresh before reading
        self.plain = not durable  # no maxlen, no max_age, not durable: fast paths apply
        self.lean = durable  # durable, existing, no maxlen: the durable fast path applies
        self.bare = not durable  # plain, existing, nothing timed: the in-memory fast paths apply
        self.simple = self.bare  # bare but for ``watch``: the views' fast paths apply
        self.added = self.removed = self.expired = self.dropped = self.dead = 0

    # -- options -----------------------------------------------------------------

    def configure(self, maxlen: Optional[int], max_age: Optional[float], overflow: str) -> None:
        """Set the options (no eviction: the caller evicts, and records it)."""
        self.maxlen = maxlen
        self.overflow = overflow
        if max_age is not None and self.ages is None:
            self.ages = SortedList(zip(self.ready_at, self.ready, strict=True))
        elif max_age is None:
            self.ages = None
        self.max_age = max_age
        self.retime()

    def retime(self) -> None:
        """Recompute the flags that let the fast paths skip work (after any change of
        options, durability or existence; ``timed`` is also set directly when it becomes true)."""
        self.timed = bool(self.delayed) or bool(self.leases) or self.max_age is not None or self.fed
        self.plain = self.maxlen is None and self.max_age is None and not self.durable
        self.lean = self.durable and self.exists and self.maxlen is None
        self.simple = self.plain and self.exists and not self.timed
        self.bare = self.simple and not self.watch  # watch: None or empty (kept by _pop_simple)

    # -- ready messages ------------------------------------------------------------

    def item(self, i: int) -> Item:
        """The ready message at index ``i`` (0: the oldest, -1: the newest). O(1) at either end."""
        return self.ready[i], self.ready_at[i], self.ready_bodies[i]

    def items(self) -> List[Item]:
        """The ready messages, oldest first. O(n)."""
        return list(zip(self.ready, self.ready_at, self.ready_bodies, strict=True))

    def push_back(self, item: Item) -> None:
        self.ready.append(item[0])
        self.ready_at.append(item[1])
        self.ready_bodies.append(item[2])
        if self.ages is not None:
            self.ages.add((item[1], item[0]))

    def push_front(self, item: Item) -> None:
        """Put ``item`` back at the front, after any returned messages with smaller ids."""
        ready = self.ready
        attempts = self.attempts  # returned messages were reserved: they have attempts
        i = 0
        n = len(ready)
        while i < n and ready[i] < item[0] and ready[i] in attempts:
            i += 1
        ready.insert(i, item[0])
        self.ready_at.insert(i, item[1])
        self.ready_bodies.insert(i, item[2])
        if self.ages is not None:
            self.ages.add((item[1], item[0]))

    def enqueue(self, item: Item, due: Optional[float], front: bool) -> None:
        """Make ``item`` ready now (waking a getter), or delay it until ``due``."""
        if due is None:
            if front:
                self.push_front(item)
            else:
                self.push_back(item)
            if self.getters:
                self.wake()
        else:
            self.delay(due, item, front)
            if self.getters:
                self.wake()  # a getter may sleep past the new due time

    def wake(self, k: int = 1) -> None:
        """Wake ``k`` getters (called when ``getters``): threads on ``not_empty``, and the
        first ``k`` live coroutines of ``agetters`` (see :mod:`._awaiting`). O(k)."""
        if self.getters > self.aget_n:
            self.not_empty.notify(k)
        if self.agetters:
            wake_first(self.agetters, k)

    def wake_putters(self, k: int = 1) -> None:
        """Wake ``k`` putters (called when ``putters``), as :meth:`wake` does getters. O(k)."""
        if self.putters > self.aput_n:
            self.not_full.notify(k)
        if self.aputters:
            wake_first(self.aputters, k)

    def wake_all(self, getters: bool = True) -> None:
        """Wake every putter, and every getter unless ``getters`` is false (close, drop,
        clear, declare, a view shut down): they look again. O(w) for w waiters."""
        if getters:
            self.not_empty.notify_all()
            wake_every(self.agetters)
        self.not_full.notify_all()
        wake_every(self.aputters)

    def wait_for_room(self, timeout: Optional[float]) -> None:
        """Wait on ``not_full`` (mutex held), counted in ``putters`` so takers notify."""
        self.putters += 1
        try:
            self.not_full.wait(timeout)
        finally:
            self.putters -= 1

    def pop_front(self) -> Item:
        item = self.ready.popleft(), self.ready_at.popleft(), self.ready_bodies.popleft()
        if self.ages is not None:
            self.ages.remove((item[1], item[0]))
        return item

    def pop_back(self) -> Item:
        item = self.ready.pop(), self.ready_at.pop(), self.ready_bodies.pop()
        if self.ages is not None:
            self.ages.remove((item[1], item[0]))
        return item

    def pop_ready_id(self, msg_id: int) -> Optional[Item]:
        """Remove the ready message ``msg_id`` (O(1) at either end, else O(n))."""
        ready = self.ready
        if not ready:
            return None
        if ready[0] == msg_id:
            return self.pop_front()
        if ready[-1] == msg_id:
            return self.pop_back()
        try:
            i = ready.index(msg_id)
        except ValueError:
            return None
        item = self.item(i)
        del ready[i], self.ready_at[i], self.ready_bodies[i]
        if self.ages is not None:
            self.ages.remove((item[1], item[0]))
        return item

    # -- delayed and reserved messages ------------------------------------------------

    def delay(self, due: float, item: Item, front: bool) -> None:
        self.delayed.add((due, item[0], item[1], item[2], front))
        self.timed, self.bare, self.simple = True, False, False

    def reserve(self, item: Item, lease_due: Optional[float]) -> int:
        """Move ``item`` (already taken from ready) to reserved; return its attempts."""
        msg_id = item[0]
        attempts = self.attempts.get(msg_id, 0) + 1
        self.attempts[msg_id] = attempts
        self.reserved[msg_id] = (msg_id, item[1], item[2], lease_due)
        if lease_due is not None:
            self.leases.add((lease_due, msg_id))
            self.timed, self.bare, self.simple = True, False, False
            if self.getters:
                self.wake()  # a getter may sleep past the lease's end
        return attempts

    def reserve_first(self, k: int, lease_due: Optional[float]) -> List[Tuple[Item, int]]:
        """Reserve the ``k`` oldest ready messages (there are that many); return each with
        its attempts. O(k) (O(k log n) with a lease or ``max_age``)."""
        if self.ages is not None:
            return [(item, self.reserve(item, lease_due)) for item in [self.pop_front() for _ in range(k)]]
        popleft, attempts, reserved = self.ready.popleft, self.attempts, self.reserved
        popleft_at, popleft_body = self.ready_at.popleft, self.ready_bodies.popleft
        taken = []
        for _ in range(k):
            item = popleft(), popleft_at(), popleft_body()
            msg_id = item[0]
            n = attempts[msg_id] = attempts.get(msg_id, 0) + 1
            reserved[msg_id] = (msg_id, item[1], item[2], lease_due)
            taken.append((item, n))
        if lease_due is not None:
            self.leases.update((lease_due, item[0]) for item, _ in taken)
            self.timed, self.bare, self.simple = True, False, False
            if self.getters:
                self.wake()  # a getter may sleep past the leases' end
        return taken

    def ack_ids(self, ids: List[int]) -> None:
        """Settle the reservations ``ids`` (all current) for good. O(k) (O(k log n) leased)."""
        reserved, attempts = self.reserved, self.attempts
        leased = False
        for msg_id in ids:
            entry = reserved.pop(msg_id)
            attempts.pop(msg_id, None)
            if entry[3] is not None:
                self.leases.remove((entry[3], msg_id))
                leased = True
        self.removed += len(ids)
        if leased:
            self.retime()

    def push_back_many(self, ids: List[int], now: float, bodies: List[Any]) -> None:
        """Append the messages ``ids`` (enqueued at ``now``) with their ``bodies`` at the
        back, waking a getter per message. O(k) (O(k log n) with ``max_age``)."""
        k = len(ids)
        self.ready.extend(ids)
        self.ready_at.extend(repeat(now, k))
        self.ready_bodies.extend(bodies)
        if self.ages is not None:
            self.ages.update((now, msg_id) for msg_id in ids)
        if self.getters:
            self.wake(k)

    def unreserve(self, msg_id: int) -> Optional[Item]:
        """Take ``msg_id`` out of reserved (dropping its lease); ``None`` if not reserved."""
        entry = self.reserved.pop(msg_id, None)
        if entry is None:
            return None
        if entry[3] is not None:
            self.leases.remove((entry[3], msg_id))
            self.retime()
        return entry[0], entry[1], entry[2]

    def set_lease(self, msg_id: int, due: Optional[float]) -> None:
        """Make the reservation ``msg_id`` end at ``due`` (``None``: no lease). O(log n)."""
        entry = self.reserved[msg_id]
        if entry[3] is not None:
            self.leases.remove((entry[3], msg_id))
        self.reserved[msg_id] = (*entry[:3], due)
        if due is not None:
            self.leases.add((due, msg_id))
            if self.getters:
                self.wake()  # a getter may sleep past the new end
        self.retime()

    def forget(self, msg_id: int) -> bool:
        """Remove message ``msg_id`` wherever it is (replay of ``remove``)."""
        found = self.pop_ready_id(msg_id) is not None or self.unreserve(msg_id) is not None
        if not found:
            for entry in self.delayed:
                if entry[1] == msg_id:
                    self.delayed.remove(entry)
                    self.retime()
                    found = True
                    break
        self.attempts.pop(msg_id, None)
        return found

    def promote_id(self, msg_id: int) -> None:
        """Move the delayed message ``msg_id`` to the ready deques (replay of ``promote``)."""
        for entry in self.delayed:
            if entry[1] == msg_id:
                self.delayed.remove(entry)
                self._rejoin(entry)
                break
        self.retime()

    def _rejoin(self, entry: Tuple[float, int, float, Any, bool]) -> None:
        item = (entry[1], entry[2], entry[3])
        if entry[4]:
            self.push_front(item)
        else:
            self.push_back(item)

    def next_due(self) -> float:
        """Earliest clock time of a timed change (delay due, lease end, expiry), or ``inf``."""
        return self.next_change()[0]

    def next_change(self) -> Tuple[float, int]:
        """``(time, kind)`` of the next timed change, ``(inf, NONE)`` if there is none.

        ``kind`` is :data:`LEASE`, :data:`DELAYED` or :data:`EXPIRY`. Changes are
        ordered by time, and at equal times in that order: a lease ends and a delayed
        message falls due *at* their time (``time <= now`` has happened), a message
        expires just *after* ``enqueued_at + max_age`` (``time < now``), so at equal
        times it comes last. O(1).
        """
        when, kind = INF, NONE
        if self.leases:
            when, kind = self.leases[0][0], LEASE
        if self.delayed and self.delayed[0][0] < when:
            when, kind = self.delayed[0][0], DELAYED
        if self.ages and self.max_age is not None:
            expiry = self.ages[0][0] + self.max_age
            if expiry < when:
                when, kind = expiry, EXPIRY
        return when, kind

    def pop_delayed(self) -> Tuple[float, int, float, Any, bool]:
        """Remove and return the first delayed entry ``(due, id, enqueued_at, body, front)``."""
        return self.delayed.pop(0)  # type: ignore[no-any-return]

    def rejoin(self, entry: Tuple[float, int, float, Any, bool]) -> None:
        """Make a delayed entry (from :meth:`pop_delayed`) ready, waking a getter."""
        self._rejoin(entry)
        if self.getters:
            self.wake()

    def first_lease(self) -> int:
        """The id of the reservation whose lease ends first (there must be one)."""
        return self.leases[0][1]  # type: ignore[no-any-return]

    def first_aged(self) -> int:
        """The id of the ready message enqueued first (``max_age`` set, one must be ready)."""
        assert self.ages is not None
        return self.ages[0][1]  # type: ignore[no-any-return]

    def is_expired(self, enqueued_at: float, now: float) -> bool:
        """Whether a message enqueued at ``enqueued_at`` has expired at ``now``."""
        return self.max_age is not None and enqueued_at + self.max_age < now

    def clear(self) -> int:
        """Remove every message; return how many there were."""
        n = len(self.ready) + len(self.delayed) + len(self.reserved)
        self.ready.clear()
        self.ready_at.clear()
        self.ready_bodies.clear()
        self.delayed.clear()
        self.reserved.clear()
        self.leases.clear()
        self.attempts.clear()
        if self.ages is not None:
            self.ages.clear()
        self.retime()
        return n

    # -- snapshots ---------------------------------------------------------------------

    def release_reserved(self) -> None:
        """After a restart: every reservation returns to the front as :meth:`push_front` puts it.

        That is, in id order among the returned messages (reserved before) already at the
        front, ahead of every message never reserved, which keeps its place. O(k log k).
        """
        if not self.reserved:
            return
        front = [entry[:3] for entry in self.reserved.values()]
        self.reserved.clear()
        self.leases.clear()
        top = max(item[0] for item in front)
        while self.ready and self.ready[0] < top and self.ready[0] in self.attempts:
            front.append(self.pop_front())
        front.sort()
        for item in reversed(front):
            self.ready.appendleft(item[0])
            self.ready_at.appendleft(item[1])
            self.ready_bodies.appendleft(item[2])
            if self.ages is not None:
                self.ages.add((item[1], item[0]))
        self.retime()
